"""Start-up cost of the command line; writes reports/benchmarks/startup.{json,md}.

Run: python scripts/bench_startup.py [--repeats 10]

Times (wall clock, best of the repeats, fresh interpreter each) of commands that must fail fast on bad input,
against the cost of importing torch and POT alone in the same run. Target (issue 9): ``cmkd-bounds evaluate
--features missing.npz`` fails in under 1.5 s on an idle 2-core machine.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cmkd_bounds.app.tables import markdown
from cmkd_bounds.atomic import write_text

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"
COMMANDS = {
    "cmkd-bounds evaluate --features missing.npz --out x": [sys.executable, "-m", "cmkd_bounds", "evaluate",
                                                           "--features", "missing.npz", "--out", "x"],
    "cmkd-bounds train --dataset mnist (a modality, refused)": [sys.executable, "-m", "cmkd_bounds", "train",
                                                                 "--role", "teacher", "--dataset", "mnist", "--out",
                                                                 "x"],
    "cmkd-bounds --help": [sys.executable, "-m", "cmkd_bounds", "--help"],
    "python -c 'import torch, ot' (reference)": [sys.executable, "-c", "import torch, ot"],
}


def best_time(cmd, repeats):
    best, rc = float("inf"), None
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t = time.perf_counter()
            rc = subprocess.run(cmd, capture_output=True, cwd=tmp).returncode
            best = min(best, time.perf_counter() - t)
    return best, rc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    rows = []
    for name, cmd in COMMANDS.items():
        t, rc = best_time(cmd, a.repeats)
        rows.append({"command": name, "exit code": rc, "seconds (best)": t})
        print(rows[-1], flush=True)
    res = {"repeats": a.repeats, "rows": rows, "target_seconds": 1.5}
    write_text(OUT / "startup.json", json.dumps(res, indent=2) + "\n")
    write_text(OUT / "startup.md", "\n".join([
        "# Start-up cost", "",
        f"Written by `python scripts/bench_startup.py --repeats {a.repeats}`: best wall-clock time of a fresh "
        "interpreter over the repeats. Target: a bad input fails in under 1.5 s.", "",
        markdown(rows, digits=3).strip(), ""]))


if __name__ == "__main__":
    main()
