"""The console script answers --help, --version and datasets."""

import subprocess
import sys

from cmkd_bounds import __version__
from cmkd_bounds.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "cmkd_bounds.cli", *args], capture_output=True, text=True)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cmkd-bounds {__version__}"
    r = run("--help")
    assert r.returncode == 0 and "datasets" in r.stdout


def test_datasets_table(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["mnist"][1:] == ["image", "1x28x28", "10", "3500", "750", "750"]
    assert lines["fsdd"][1:] == ["audio", "92x13", "10", "2100", "450", "450"]
    assert lines["digits"][2] == "1x8x8"
    assert "default benchmark: avmnist" in out


def test_unknown_option_is_one_line_and_nonzero():
    r = run("datasets", "--bogus")
    assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr
    assert "Traceback" not in r.stderr
