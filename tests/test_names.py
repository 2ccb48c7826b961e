"""Issue 21: the names of forms, headlines and terms are spelled once, in ``cmkd_bounds/names.py``; and the JSON
schema of ``bound.json`` is pinned here, by name (this test and ``names.py`` are the only places that spell them)."""

import ast
import json
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.cli import main
from cmkd_bounds.app.results import SCHEMA, read_bound

ROOT = Path(__file__).resolve().parents[1]


def _string_constants(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _sources():
    for pkg in ("cmkd_bounds", "training", "scripts"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if f != ROOT / "cmkd_bounds" / "names.py":
                yield f.relative_to(ROOT), f.read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        yield nb.relative_to(ROOT), "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("%"))


def test_names_are_spelled_only_in_names_py():
    found = [f"{path}:{line}: {value!r}" for path, src in _sources() for line, value in _string_constants(src)
             if value in names.ALL]
    assert not found, "spell these through cmkd_bounds.names:\n" + "\n".join(found)


def test_the_check_would_see_a_spelled_name():
    assert list(_string_constants('x = r["held_out_kl"]'))[0][1] in names.ALL


def test_bound_json_schema(tmp_path):
    """The layout every reader relies on, by name."""
    from training.synthetic import SyntheticWorld

    fs = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3).feature_set(120, 100, np.random.default_rng(0))
    bundle = tmp_path / "b.npz"
    np.savez(bundle, **{k: v for k, v in fs.__dict__.items() if v is not None})
    assert main(["evaluate", "--features", str(bundle), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    d = read_bound(tmp_path / "o")
    assert d["schema"] == SCHEMA == 2
    assert list(d) == ["observed_risk", "observed_risk_clipped", "observed_error01", "bound_asymptotic",
                       "bound_certified", "held_out_certificate", "error01_certificate", "bound_paper_style",
                       "certified", "gap", "bounds", "gap_explained", "summary", "terms", "transports", "observed",
                       "per_class", "temperature", "settings", "assumptions", "source", "schema"]
    assert list(d["bounds"]) == ["asymptotic_feature", "asymptotic_sharpest", "class_conditional",
                                 "certified_marginal", "certified_class_conditional", "held_out_betting",
                                 "held_out_kl", "held_out_hoeffding", "held_out_bernstein", "error01_clopper_pearson",
                                 "finite_sample_paper", "finite_sample_estimated", "paper_style"]
    assert d["held_out_certificate"]["form"] == "held_out_betting"
    assert d["error01_certificate"]["form"] == "error01_clopper_pearson"
    assert d["bound_certified"]["form"] in ("certified_marginal", "certified_class_conditional")
    assert [t["name"] for t in d["terms"]][:5] == ["teacher_term", "student_term", "student_term_upper",
                                                   "label_alignment", "label_alignment_clipped"]
    assert {"transport_feature", "transport_logit_l2", "tau_feature", "tau_lower", "class_delta"} <= {
        t["name"] for t in d["terms"]}
    assert all(set(b) == {"value", "kind", "bounds", "note", "diagnostics"} for b in d["bounds"].values())
    assert [s.get("part", "step") for s in d["gap_explained"]["certified"]] == ["start", "step", "step", "step", "end"]
    assert list(d["observed"]) == ["risk", "risk_clipped", "error01", "errors", "teacher_risk",
                                   "teacher_risk_calibrated", "teacher_error01", "teacher_head_on_student_error01",
                                   "n_student", "n_teacher"]


def test_reports_of_the_first_layout_are_read_in_the_current_one(tmp_path):
    old = {"gap_explained": {"c": [{"step": "x", "value": 1, "kind": "end"}]}}
    (tmp_path / "bound.json").write_text(json.dumps(old))
    assert read_bound(tmp_path)["gap_explained"]["c"][0] == {"step": "x", "value": 1, "part": "end"}
