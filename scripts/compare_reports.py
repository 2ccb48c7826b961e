"""Do two evaluations say the same thing? Compares the bound.json of report folders, leaf by leaf.

Run: python scripts/compare_reports.py BEFORE AFTER [--rename OLD=NEW ...]

BEFORE and AFTER are report folders, or folders of report folders (matched by name). Timings
(``source.phase_seconds``) are ignored; ``--rename gap_explained:kind=part`` lets a key renamed between
the two versions (below the named top-level key) compare as the same key. Prints one line per
report and every leaf that differs; exits 1 when any does. Used for issue 21: the results refactor changes no number.
"""

import argparse
import json
import sys
from pathlib import Path

IGNORED = (("source", "phase_seconds"),)


def leaves(o, path=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from leaves(v, (*path, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from leaves(v, (*path, i))
    else:
        yield path, o


def compare(a: Path, b: Path, rename: dict) -> list[str]:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    def renamed(p):
        return tuple(rename.get((p[0], k), k) if isinstance(k, str) and j else k for j, k in enumerate(p))

    left = {renamed(p): v for p, v in leaves(da)}
    right = dict(leaves(db))
    diffs = []
    for p in sorted(set(left) | set(right), key=str):
        if any(p[: len(ig)] == ig for ig in IGNORED):
            continue
        if left.get(p, "<missing>") != right.get(p, "<missing>"):
            diffs.append(f"  {'/'.join(map(str, p))}: {left.get(p, '<missing>')!r} -> {right.get(p, '<missing>')!r}")
    return diffs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rename", nargs="*", default=[], help="TOP:OLD=NEW key renames below the top-level key TOP")
    args = ap.parse_args()
    rename = {}
    for r in args.rename:
        top, pair = r.split(":", 1)
        old, new = pair.split("=", 1)
        rename[(top, old)] = new
    before, after = Path(args.before), Path(args.after)
    pairs = [(before / "bound.json", after / "bound.json")] if (before / "bound.json").exists() else [
        (f, after / f.parent.name / "bound.json") for f in sorted(before.glob("*/bound.json"))]
    bad = 0
    for a, b in pairs:
        diffs = compare(a, b, rename) if b.exists() else ["  missing after"]
        bad += bool(diffs)
        print(f"{a.parent.name}: {'identical up to timings' if not diffs else f'{len(diffs)} leaves differ'}")
        print("\n".join(diffs[:20]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
