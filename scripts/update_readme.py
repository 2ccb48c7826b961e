"""Fill the generated blocks of README.md from the files under reports/ (no number is typed by hand).

Run: python scripts/update_readme.py
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cmkd_bounds.atomic import write_text  # noqa: E402


def section(md: str, start: str) -> str:
    """The lines of ``md`` from the line starting with ``start`` to the next blank line."""
    lines = md.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next((k for k in range(i, len(lines)) if not lines[k].strip()), len(lines))
    return "\n".join(lines[i:j])


def blocks() -> dict:
    out = {}
    qs = ROOT / "reports" / "quickstart" / "summary.md"
    if qs.exists():
        md = qs.read_text()
        out["quickstart"] = section(md, "Teacher") + "\n\n" + section(md, "| student")
    av = ROOT / "reports" / "avmnist" / "results.md"
    if av.exists():
        md = av.read_text()
        parts = [section(md, "Teacher "), section(md, "| direction"), section(md, "Epoch-time ratio"),
                 section(md, "- ")]
        if "\nSteering" in md:
            parts.append(section(md, "Steering"))
        out["avmnist"] = "\n\n".join(parts)
    cov = ROOT / "reports" / "theory" / "coverage.md"
    if cov.exists():
        md = cov.read_text()
        out["coverage"] = section(md, "Written by") + "\n\n" + section(md, "| bound")
    parts = []
    for name in ("w1.md", "bilevel.md"):
        f = ROOT / "reports" / "benchmarks" / name
        if f.exists():
            body = [("#### " + line[3:]) if line.startswith("## ") else line
                    for line in f.read_text().splitlines() if not line.startswith("# ")]
            parts.append(f"From `reports/benchmarks/{name}`:\n\n" + "\n".join(body).strip())
    if parts:
        out["benchmarks"] = "\n\n".join(parts)
    return out


def main():
    readme = (ROOT / "README.md").read_text()
    for name, text in blocks().items():
        pat = re.compile(rf"(<!-- BEGIN {name} [^\n]*-->\n).*?(<!-- END {name} -->)", re.S)
        readme, n = pat.subn(lambda m, text=text: m.group(1) + text.strip() + "\n" + m.group(2), readme)
        if n != 1:
            raise SystemExit(f"README.md has no block {name}")
    write_text(ROOT / "README.md", readme)


if __name__ == "__main__":
    main()
