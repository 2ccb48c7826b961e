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
