"""Run every reliability case and write reports/reliability.md (what happens, and the test that shows it).

Run: python scripts/reliability_report.py
"""

import re
import sys
import tempfile
from pathlib import Path

from cmkd_bounds.app.reliability import CASES
from cmkd_bounds.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]

EXTRA = [
    ("training", "run killed at a random point resumes to the same final weights",
     "tests/test_training.py::test_resume_equals_uninterrupted_run"),
    ("training", "resuming with a changed configuration is refused (it would silently mix two runs)",
     "training/loop.py (resume check)"),
    ("files", "randomised malformed bundles (missing arrays, wrong shapes and dtypes, NaN/Inf, labels out of range, "
     "empty clouds) fed to `evaluate`: success with finite labelled numbers, or exit 2 with one line, nothing written",
     "tests/test_reliability.py::test_fuzz_malformed_bundles_never_crash"),
    ("outputs", "an existing output folder is replaced only with --overwrite, never mixed",
     "tests/test_evaluate.py::test_existing_folder_needs_overwrite_and_stays_intact"),
]


def main():
    lines = ["# Reliability: bad inputs and faults", "",
             "Written by `python scripts/reliability_report.py`, which runs each case below and records what "
             "happened; `tests/test_reliability.py::test_case[<case>]` asserts the same outcome.", "",
             "| area | case | what happens | as expected |", "| --- | --- | --- | --- |"]
    failures = 0
    for c in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            got = c.run(Path(tmp))
        ok = bool(re.search(c.expect, got))
        failures += not ok
        shown = got.replace("|", "\\|").replace("\n", " ")
        if len(shown) > 300:
            shown = shown[:300] + " ..."
        lines.append(f"| {c.area} | {c.name} | {shown} | {'yes' if ok else 'NO'} |")
    lines += ["", "Also covered by tests:", ""] + [f"- {a}: {what} (`{test}`)" for a, what, test in EXTRA]
    write_text(ROOT / "reports" / "reliability.md", "\n".join(lines) + "\n")
    print(f"{len(CASES)} cases, {failures} not as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
