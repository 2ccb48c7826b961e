"""`cmkd-bounds evaluate --features` end to end: files, keys, kinds, atomic folders."""

import csv
import json

import numpy as np
import pytest

from cmkd_bounds.cli import main
from cmkd_bounds.evaluate import BundleError, load_bundle
from training.synthetic import SyntheticWorld


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    w = SyntheticWorld(num_classes=3, feature_shift=0.7, label_shift=0.5, seed=7)
    rng = np.random.default_rng(0)
    zT, yT = w.sample_latent("teacher", 300, rng)
    zS, yS = w.sample_latent("student", 200, rng)
    WT, bT = w.bayes_head("teacher")
    WS, bS = w.bayes_head("student")
    path = tmp_path_factory.mktemp("b") / "bundle.npz"
    np.savez(path, teacher_z=zT, teacher_y=yT, student_z=zS, student_y=yS, teacher_W=WT, teacher_b=bT,
             student_W=WS, student_b=bS)
    return path


def test_evaluate_bundle_writes_every_output(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", "--features", str(bundle), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bound certified" in printed and "gap" in printed
    names = {p.name for p in out.iterdir()}
    assert names == {"bound.json", "terms.csv", "report.md", "bound_gap.png", "rates.png", "lipschitz.png"}
    d = json.loads((out / "bound.json").read_text())
    for key in ("observed_risk", "observed_error01", "bound_asymptotic", "bound_finite_sample", "gap", "terms"):
        assert key in d
    assert all({"name", "value", "kind"} <= set(t) for t in d["terms"])
    assert d["gap"]["asymptotic"]["absolute"] == pytest.approx(d["bound_asymptotic"] - d["observed_risk"])
    rows = list(csv.DictReader((out / "terms.csv").open()))
    assert {r["kind"] for r in rows} <= {"certified", "estimated", "lower"}
    assert (out / "bound_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Assumptions" in (out / "report.md").read_text()


def test_existing_folder_needs_overwrite_and_stays_intact(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    assert main(["evaluate", "--features", str(bundle), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "previous run"
    assert main(["evaluate", "--features", str(bundle), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "bound.json").exists()  # never a mix of two runs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_non_metric_cost_is_labelled_everywhere(bundle, tmp_path, capsys):
    out = tmp_path / "cos"
    assert main(["evaluate", "--features", str(bundle), "--out", str(out), "--cost", "cosine"]) == 0
    assert "NOT CERTIFIED" in capsys.readouterr().out
    assert json.loads((out / "bound.json").read_text())["certified"] is False
    assert "NOT CERTIFIED" in (out / "report.md").read_text()


def test_bad_bundles_get_clear_errors(tmp_path, bundle):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(BundleError, match="empty"):
        load_bundle(empty)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(bundle.read_bytes()[:300])
    with pytest.raises(BundleError, match="truncated or corrupted"):
        load_bundle(trunc)
    partial = tmp_path / "partial.npz"
    np.savez(partial, teacher_z=np.zeros((3, 2)))
    with pytest.raises(BundleError, match="missing array"):
        load_bundle(partial)
    pick = tmp_path / "pickle.npz"
    np.savez(pick, **{k: np.array([object()], dtype=object) for k in ("teacher_z",)})
    with pytest.raises(BundleError, match="pickle"):
        load_bundle(pick)
