"""Every decimal the README's prose quotes comes from a report a script wrote (the rule: no hand-typed result).

The generated blocks (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``) are written by
``scripts/update_readme.py``; the readings around them quote those reports, and this test checks that each
decimal number they quote appears verbatim in a markdown file under ``reports/``.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prose_numbers(text: str) -> set[str]:
    text = re.sub(r"<!-- BEGIN (\w+).*?<!-- END \1 -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands
    text = re.sub(r"`[^`]*`", "", text)  # code: options, file names, formulas
    text = re.sub(r"arXiv \d+\.\d+", "", text)
    return set(re.findall(r"(?<![\w.])\d+\.\d+(?!\w)(?!\.\d)", text))


def test_prose_numbers_helper_finds_decimals_outside_blocks():
    sample = "a 1.25 b `2.5` c\n<!-- BEGIN x -->3.75<!-- END x -->\n```\n4.5\n``` arXiv 2606.10504 and 0.9493."
    assert prose_numbers(sample) == {"1.25", "0.9493"}


def test_every_number_in_the_readme_prose_is_in_a_report():
    reports = "\n".join(p.read_text() for p in (ROOT / "reports").rglob("*.md"))
    missing = sorted(n for n in prose_numbers((ROOT / "README.md").read_text()) if n not in reports)
    assert not missing, f"README numbers found in no report under reports/: {missing}"


def test_the_generated_blocks_are_current():
    """Each block between BEGIN and END is what scripts/update_readme.py writes from the committed report."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (ROOT / "README.md").read_text()
    assert mod.updated(readme, quiet=True) == readme, "README blocks are stale: run python scripts/update_readme.py"


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    """Issue 21: the five-line example of the README's Python section, run as written on a bundle."""
    import numpy as np

    from training.synthetic import SyntheticWorld

    text = (ROOT / "README.md").read_text()
    example = re.search(r"### From Python.*?```python\n(.*?)```", text, re.S).group(1)
    fs = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3).feature_set(80, 60, np.random.default_rng(0))
    np.savez(tmp_path / "bundle.npz", **{k: v for k, v in fs.__dict__.items() if v is not None})
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README", "exec"), {})  # prints the certificate and the summary


def test_evaluating_a_checkpoint_imports_no_training_code(tmp_path):
    """Issue 21: features come from training/prepare.py, so an evaluation never imports the loop, the methods, their
    optimisers' code, the alignment or the distributed helpers."""
    import subprocess
    import sys

    code = ("import sys\nfrom cmkd_bounds.app.cli import main\n"
            f"assert main(['evaluate', '--student', {str(ROOT / 'reports/quickstart/ucmkd/best.safetensors')!r}, "
            f"'--out', {str(tmp_path / 'e')!r}, '--quiet']) == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith('training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    loaded = set(eval(out.strip().splitlines()[-1]))
    assert "training.prepare" in loaded
    assert not loaded & {"training.loop", "training.methods", "training.alignment", "training.distributed",
                         "training.batches", "training.run_folder"}, loaded
