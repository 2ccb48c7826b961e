"""Fill the generated blocks of README.md from the files under reports/ (no number is typed by hand).

Run: python scripts/update_readme.py

Each block ``<!-- BEGIN name ... -->`` ... ``<!-- END name -->`` is replaced by text cut from a report; a
block whose report is missing is left as it is and named on stdout.
"""

import re
from pathlib import Path

from cmkd_bounds.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]


def section(md: str, start: str) -> str:
    """The lines of ``md`` from the line starting with ``start`` to the next blank line."""
    lines = md.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next((k for k in range(i, len(lines)) if not lines[k].strip()), len(lines))
    return "\n".join(lines[i:j])


def body(md: str) -> str:
    """A report without its title line; its own headings become level-4 headings."""
    out = [("#### " + line.lstrip("#").strip()) if line.startswith("##") else line
           for line in md.splitlines() if not line.startswith("# ")]
    return "\n".join(out).strip()


def blocks() -> dict:
    r = ROOT / "reports"
    out = {}
    if (r / "quickstart" / "summary.md").exists():
        md = (r / "quickstart" / "summary.md").read_text()
        out["quickstart"] = section(md, "Teacher") + "\n\n" + section(md, "| student")
    if (r / "spread" / "quickstart.md").exists():
        out["spread"] = body((r / "spread" / "quickstart.md").read_text())
    if (r / "avmnist" / "results.md").exists():
        out["avmnist"] = body((r / "avmnist" / "results.md").read_text())
    if (r / "claims.md").exists():
        out["claims"] = section((r / "claims.md").read_text(), "| claim")
    if (r / "robustness" / "results.md").exists():
        out["robustness"] = body((r / "robustness" / "results.md").read_text())
    if (r / "ucmkd" / "steering.md").exists():
        out["steering"] = body((r / "ucmkd" / "steering.md").read_text())
    if (r / "study" / "correlation.md").exists():
        md = (r / "study" / "correlation.md").read_text()
        keep = [s for s in md.split("\n## ") if s.startswith(("# ", "within each stratum", "all strata"))]
        out["study"] = body("\n## ".join(keep))
    if (r / "fewlabel" / "study.md").exists():
        md = (r / "fewlabel" / "study.md").read_text()
        out["fewlabel"] = section(md, "**Reading**") + "\n\n" + section(md, "| surrogate")
    if (r / "theory" / "coverage.md").exists():
        md = (r / "theory" / "coverage.md").read_text()
        out["coverage"] = section(md, "Written by") + "\n\n" + section(md, "| value")
    if (r / "benchmarks" / "executors.md").exists():
        md = (r / "benchmarks" / "executors.md").read_text()
        out["executors"] = section(md, "| executor")
    parts = []
    for name in ("w1.md", "paper_scale.md", "bilevel.md", "startup.md", "threads.md"):
        f = r / "benchmarks" / name
        if f.exists():
            parts.append(f"From `reports/benchmarks/{name}`:\n\n" + body(f.read_text()))
    if parts:
        out["benchmarks"] = "\n\n".join(parts)
    return out


def updated(readme: str, quiet: bool = False) -> str:
    """``readme`` with every generated block rewritten from its report."""
    found = blocks()
    for name in re.findall(r"<!-- BEGIN (\w+) ", readme):
        if name not in found:
            if not quiet:
                print(f"README block {name}: no report yet, left as it is")
            continue
        pat = re.compile(rf"(<!-- BEGIN {name} [^\n]*-->\n).*?(<!-- END {name} -->)", re.S)
        readme = pat.sub(lambda m, text=found[name]: m.group(1) + text.strip() + "\n" + m.group(2), readme)
    return readme


def main():
    write_text(ROOT / "README.md", updated((ROOT / "README.md").read_text()))


if __name__ == "__main__":
    main()
