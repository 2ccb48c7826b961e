"""Seed-to-seed spread of the quickstart's numbers; writes reports/spread/quickstart.{json,md}.

The files live outside reports/quickstart/, which `cmkd-bounds quickstart --out reports/quickstart --overwrite`
replaces as a whole.

Run: python scripts/quickstart_spread.py [--seeds 0 1 2 3 4] [--runs runs/quickstart-seeds]

Each seed is a full `cmkd-bounds quickstart --seed S` (resumable) in its own folder; the table gives the mean,
standard deviation, minimum and maximum of every number the quickstart prints, so a reader knows how much a
rerun on another machine (or with another seed) can move them.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.experiments import quickstart
from cmkd_bounds.app.tables import markdown
from cmkd_bounds.atomic import write_text

OUT = Path(__file__).resolve().parents[1] / "reports" / "spread"


def flat(summary: dict) -> dict:
    out = {"teacher test acc": summary["teacher_test_acc"]}
    for m in ("ce", "ucmkd"):
        b = summary[f"{m}_bounds"]
        out.update({f"{m} test acc": summary[f"{m}_test_acc"], f"{m} observed CE": b["observed_risk"],
                    f"{m} asymptotic (sharpest)": b[names.BOUND_ASYMPTOTIC]["value"],
                    f"{m} certified": b[names.BOUND_CERTIFIED]["value"],
                    f"{m} held-out betting": b[names.HELD_OUT_CERTIFICATE]["value"],
                    f"{m} 0-1 error certified": b[names.ERROR01_CERTIFICATE]["value"]})
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--runs", default="runs/quickstart-seeds")
    a = p.parse_args()
    per_seed = {s: flat(quickstart(Path(a.runs) / f"seed{s}", seed=s, quiet=True)) for s in a.seeds}
    keys = list(next(iter(per_seed.values())))
    rows = []
    for k in keys:
        v = np.array([per_seed[s][k] for s in a.seeds])
        rows.append({"quantity": k, "mean": v.mean(), "std": v.std(ddof=1), "min": v.min(), "max": v.max()})
    ucmkd_minus_ce = [per_seed[s]["ucmkd test acc"] - per_seed[s]["ce test acc"] for s in a.seeds]
    write_text(OUT / "quickstart.json", json.dumps({"seeds": a.seeds, "per_seed": per_seed}, indent=2) + "\n")
    write_text(OUT / "quickstart.md", "\n".join([
        "# Seed-to-seed spread of the quickstart", "",
        f"Written by `python scripts/quickstart_spread.py --seeds {' '.join(map(str, a.seeds))}`: the quickstart run "
        f"once per seed ({len(a.seeds)} seeds, each its own teacher and students).", "",
        markdown(rows).strip(), "",
        f"UCMKD minus CE test accuracy per seed: {', '.join(f'{100 * d:+.2f}' for d in ucmkd_minus_ce)} points "
        f"(UCMKD ahead in {sum(d > 0 for d in ucmkd_minus_ce)} of {len(a.seeds)}).", ""]))


if __name__ == "__main__":
    main()
