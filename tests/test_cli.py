"""The console script answers --help, --version and datasets, and fails fast on bad input."""

import subprocess
import sys
import time

from cmkd_bounds import __version__
from cmkd_bounds.app.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "cmkd_bounds", *args], capture_output=True, text=True)


def test_version_help_and_fast_failure():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cmkd-bounds {__version__}"
    r = run("--help")
    assert r.returncode == 0 and "datasets" in r.stdout and "grid" in r.stdout
    t = time.perf_counter()
    r = run("evaluate", "--features", "missing.npz", "--out", "x")
    assert r.returncode == 2 and r.stderr.strip() == "cmkd-bounds: error: --features missing.npz: no such file"
    # nothing heavy is imported before the input is checked (the benchmark measures the time properly)
    assert time.perf_counter() - t < 10


def test_datasets_table(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["mnist"][1:] == ["modality", "image", "1x28x28", "10", "3500", "750", "750"]
    assert lines["fsdd"][1:] == ["modality", "audio", "92x13", "10", "2100", "450", "450"]
    assert lines["digits"][3] == "1x8x8"
    assert "default benchmark avmnist" in out


def test_unknown_option_is_one_line_and_nonzero():
    r = run("datasets", "--bogus")
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr
    assert "Traceback" not in r.stderr
