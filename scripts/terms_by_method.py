"""Do the domain-adaptation methods bring the class-conditional transport terms down where FA does not?

Writes reports/avmnist/terms_by_method.{md,csv} from an evaluation of the grid's runs:

    cmkd-bounds evaluate --runs runs/avmnist --out reports/avmnist/eval
    python scripts/terms_by_method.py [--eval reports/avmnist/eval]

Per student: from its ``bound.json``, the FA term ``transport_feature`` (tau W1) and the class transport term
``sum_y pi_S(y) min(c, R_T^{y,c} + L_y W1_y)`` of the class-conditional bound (``docs/theory.md`` §4; its W1 are
truncated at c / L, so a term at its cap c says the classes are farther apart than the bound can use); from the
checkpoints it names (their test features), the exact, untruncated l2 transports: the marginal W1, the class
W1 ``sum_y pi_S(y) W1(P_S^y, P_T^y)``, and the share of the marginal optimal plan's mass that joins items of
different classes (what marginal alignment mixes up; Zhao et al., ICML 2019). DeepJDOT and OT label propagation
move student items towards teacher items *of the label the plan gives them*, so they are the methods that could
lower the class-conditional terms; feature KD and UCMKD align marginals. Per (direction, label regime): mean ± std
over seeds per method, and each method's paired difference from CE over seeds with a paired t-test.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import ot
from scipy.stats import ttest_rel

from cmkd_bounds import names
from cmkd_bounds.app.bridge import features_from_checkpoints
from cmkd_bounds.app.results import read_bound
from cmkd_bounds.app.tables import csv_text, markdown
from cmkd_bounds.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
MEASURES = {"w1": "marginal W1", "class_w1": "class W1", "plan_mismatch": "plan mass across classes",
            names.TRANSPORT_FEATURE: "FA term (tau W1)", "class_transport": "class transport term",
            "test_acc": "test acc"}


def exact(x, y):
    """The exact l2 optimal plan between two uniform clouds, and its cost."""
    M = ot.dist(x, y, metric="euclidean")
    P = ot.emd(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), M, numItermax=10_000_000)
    return P, float((P * M).sum())


def measures(folder: Path, row: dict) -> dict:
    b = read_bound(folder)
    pc = b["per_class"]
    pi = np.array([c["pi_student"] for c in pc])
    fs = features_from_checkpoints(b["source"]["teacher"], b["source"]["student"]).features
    zS, zT, yS, yT = fs.student_z, fs.teacher_z, np.asarray(fs.student_y), np.asarray(fs.teacher_y)
    P, w1 = exact(zS, zT)
    class_w1 = sum(pi[c] * exact(zS[yS == c], zT[yT == c])[1] for c in range(len(pi))
                   if (yS == c).any() and (yT == c).any())
    return {"w1": w1, "class_w1": float(class_w1), "plan_mismatch": float(P[yS[:, None] != yT[None, :]].sum()),
            names.TRANSPORT_FEATURE: float(row[names.TRANSPORT_FEATURE]),
            "class_transport": float(pi @ np.array([c.get("term", 0.0) for c in pc])),
            "at_cap": float(np.mean([c.get("term", 0.0) >= b["settings"]["loss_clip"] - 1e-9 for c in pc])),
            "test_acc": float(row["test_acc"])}


def regime(k: str) -> str:
    return "all labels" if int(k) == 0 else f"{k} labels/class"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eval", default="reports/avmnist/eval")
    a = p.parse_args()
    ev = Path(a.eval)
    with open(ev / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    rows = [{"direction": r["direction"], "regime": regime(r["labels_per_class"]), "method": r["method"],
             "protocol": r["protocol"], "seed": int(r["seed"]), "run": r["run"], **measures(ev / r["run"], r)}
            for r in summary]
    groups = {}
    for r in rows:
        groups.setdefault((r["direction"], r["regime"], r["method"], r["protocol"]), []).append(r)
    table = []
    for (d, reg, m, prot), rs in sorted(groups.items()):
        row = {"direction": d, "regime": reg, "method": m, "protocol": prot, "seeds": len(rs)}
        for k, label in MEASURES.items():
            v = np.array([r[k] for r in rs])
            scale = 100 if k == "test_acc" else 1
            row[label] = f"{scale * v.mean():.3g} ± {scale * v.std(ddof=1):.2g}" if len(v) > 1 else f"{v[0]:.3g}"
        table.append(row)
    diffs = []
    for (d, reg, m, prot), rs in sorted(groups.items()):
        ce = {r["seed"]: r for r in rows if (r["direction"], r["regime"], r["method"]) == (d, reg, "ce")}
        if m == "ce" or not ce:
            continue
        common = sorted(set(ce) & {r["seed"] for r in rs})
        mine = {r["seed"]: r for r in rs}
        row = {"direction": d, "regime": reg, "method": m, "protocol": prot}
        for k in ("class_w1", "plan_mismatch", "class_transport"):
            x = np.array([mine[s][k] for s in common])
            y = np.array([ce[s][k] for s in common])
            pv = ttest_rel(x, y).pvalue if len(common) > 1 and np.ptp(x - y) > 0 else float("nan")
            row[f"{MEASURES[k]} - CE"] = f"{(x - y).mean():+.3g} (p {pv:.3f})"
        diffs.append(row)
    lower = [r for r in diffs if r["method"] in ("deepjdot", "ot_pseudo")]
    sig_lower = [r for r in lower if r["class transport term - CE"].startswith("-")
                 and float(r["class transport term - CE"].split("p ")[1].rstrip(")")) < 0.05]
    fa = [r for r in diffs if r["method"] in ("feature_kd", "ucmkd")]
    fa_lower = [r for r in fa if r["class transport term - CE"].startswith("-")
                and float(r["class transport term - CE"].split("p ")[1].rstrip(")")) < 0.05]
    cap = np.mean([r["at_cap"] for r in rows])
    reading = (f"**Reading** (computed). DeepJDOT and OT label propagation have a class transport term "
               f"significantly below CE's (paired t-test, p < 0.05) in {len(sig_lower)} of their {len(lower)} "
               f"(method, direction, regime) cells; the marginal aligners (feature KD, UCMKD) in {len(fa_lower)} of "
               f"{len(fa)}. Over all {len(rows)} students, {100 * cap:.1f} % of the per-class terms are at their "
               f"cap c.")
    out = ROOT / "reports" / "avmnist"
    write_text(out / "terms_by_method.csv", csv_text(rows))
    write_text(out / "terms_by_method.md", "\n".join([
        "# Transport terms by method (the grid's students)", "",
        f"Written by `python scripts/terms_by_method.py --eval {a.eval}` from `cmkd-bounds evaluate --runs "
        f"runs/avmnist --out {a.eval}` ({len(rows)} students). Exact, untruncated l2 transports between the "
        "student's and the teacher's test features: marginal W1; class W1 = sum_y pi_S(y) W1_y; plan mass across "
        "classes = the share of the marginal optimal plan joining items of different classes (0.9 for a plan "
        "blind to ten balanced classes). From the bound report: the FA term tau W1 and the class transport term "
        "sum_y pi_S(y) min(c, R_T^y + L_y W1_y), the class-conditional bound minus its Delta (c = the loss clip). "
        "Mean ± std over seeds.", "",
        reading, "", markdown(table).strip(), "",
        "## Difference from CE (same direction, regime and seed)", "", markdown(diffs).strip(), ""]))
    print((out / "terms_by_method.md").read_text())


if __name__ == "__main__":
    main()
