"""Few-label certificates over the students of an evaluated study; writes reports/fewlabel/study.{md,csv,json}.

Run: python scripts/fewlabel_study.py [--eval reports/study/eval] [--k 20 50 100 200] [--draws 5]

For every student evaluated by ``cmkd-bounds evaluate --runs`` (its ``items.npz``: the clipped losses, 0/1
errors and label-free surrogates of its test items), for each K, several seeded uniform draws of K labelled
items: every few-label certificate of :mod:`cmkd_bounds.fewlabel`, of the pool (the student's test split) and of
the population. For each prediction-powered certificate the ratio to the best direct one of the same target and
level (betting or kl for the clipped risk; the hypergeometric limit or betting for the 0-1 error; the minimum
of the two, picked after the fact, which flatters the direct side); the median over students and draws and the
fraction of (student, draw) pairs where it is below 1; and each surrogate's correlation with the per-item loss.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.results import read_bound, read_items
from cmkd_bounds.app.tables import csv_text, markdown
from cmkd_bounds.atomic import write_text
from cmkd_bounds.fewlabel import Pool, draw_labelled, few_label_certificates

ROOT = Path(__file__).resolve().parents[1]
CE_DIRECT = (names.FEW_BETTING, names.FEW_KL)
ERR_DIRECT = (names.FEW01_HYPERGEOMETRIC, names.FEW01_BETTING)


def student(folder: Path) -> dict | None:
    d = read_bound(folder)
    it = read_items(folder)
    if "loss_clipped" not in it or np.isnan(it["loss_clipped"]).any():
        return None
    C = len(d["per_class"]) if d.get("per_class") else int(it["label"].max()) + 1
    surr = {s: it[f"surrogate_{s}"].astype(float) for s in names.SURROGATES}
    top = min(np.log(C), d["settings"]["loss_clip"])
    ranges = {s: (top if not s.endswith("confidence") else 1 - 1 / C) for s in names.SURROGATES}
    for s, g in surr.items():  # float32 storage: keep inside the stated range
        surr[s] = np.clip(g, 0, ranges[s])
    return {"run": folder.name, "loss": it["loss_clipped"].astype(float), "error": it["error"].astype(float),
            "surrogates": surr, "ranges": ranges, "clip": d["settings"]["loss_clip"], "eta": d["settings"]["eta"],
            "sampling": d["settings"]["sampling"], "n": len(it["loss_clipped"])}


def run(eval_dir: Path, ks, draws: int) -> tuple[list[dict], list[dict]]:
    rows, corr = [], []
    folders = sorted(p.parent for p in eval_dir.glob("*/items.npz"))
    t0 = time.perf_counter()
    for i, f in enumerate(folders):
        s = student(f)
        if s is None:
            continue
        for name, g in s["surrogates"].items():
            target = s["error"] if name.endswith("confidence") else s["loss"]
            r = float(np.corrcoef(g, target)[0, 1]) if np.ptp(g) > 0 and np.ptp(target) > 0 else np.nan
            corr.append({"run": s["run"], "surrogate": name, "correlation": r})
        for K in ks:
            if K >= s["n"]:
                continue
            for d in range(draws):
                lab = draw_labelled(np.arange(s["n"]), K, 1000 * d + K)
                pool = Pool(n=s["n"], labelled=lab, loss=s["loss"][lab], error=s["error"][lab],
                            surrogates=s["surrogates"], ranges=s["ranges"], clip=s["clip"])
                for t in few_label_certificates(pool, s["eta"], s["sampling"], seed=d):
                    rows.append({"run": s["run"], "K": K, "draw": d, "certificate": t.name, "value": t.value,
                                 "pool_truth": float((s["error"] if t.name.startswith("few01") else s["loss"]).mean())})
        if (i + 1) % 30 == 0:
            print(f"{i + 1} students, {time.perf_counter() - t0:.0f} s", flush=True)
    return rows, corr


def ratios(rows: list[dict]) -> list[dict]:
    """Prediction-powered / best direct, per (student, K, draw, level), for every PPI certificate."""
    by = {}
    for r in rows:
        by.setdefault((r["run"], r["K"], r["draw"]), {})[r["certificate"]] = r["value"]
    out = []
    for (run, K, d), v in by.items():
        for level, wrap in (("pool", names.pool_form), ("population", lambda x: x)):
            best = {"ce": min(v[wrap(x)] for x in CE_DIRECT), "01": min(v[wrap(x)] for x in ERR_DIRECT)}
            for s in names.SURROGATES:
                kind = "01" if s.endswith("confidence") else "ce"
                for form in (names.few_ppi(s), names.few_ppipp(s)):
                    out.append({"run": run, "K": K, "draw": d, "level": level, "certificate": form, "surrogate": s,
                                "ratio": v[wrap(form)] / best[kind] if best[kind] > 0 else np.nan})
    return out


def summary(rat: list[dict], rows: list[dict], corr: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    table = []
    for (level, form, K) in sorted({(r["level"], r["certificate"], r["K"]) for r in rat}):
        v = np.array([r["ratio"] for r in rat if (r["level"], r["certificate"], r["K"]) == (level, form, K)])
        v = v[np.isfinite(v)]
        table.append({"level": level, "certificate": form, "K": K, "pairs": len(v),
                      "median ratio to best direct": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                      "p90": float(np.percentile(v, 90)), "fraction below 1": float(np.mean(v < 1))})
    values = []
    for (form, K) in sorted({(r["certificate"], r["K"]) for r in rows}):
        mine = [r for r in rows if (r["certificate"], r["K"]) == (form, K)]
        v = np.array([r["value"] for r in mine])
        values.append({"certificate": form, "K": K, "median value": float(np.median(v)),
                       "covers its pool in": float(np.mean([r["value"] >= r["pool_truth"] - 1e-12 for r in mine]))
                       if form.endswith("_pool") else "-"})
    cs = []
    for s in names.SURROGATES:
        c = np.array([r["correlation"] for r in corr if r["surrogate"] == s])
        c = c[np.isfinite(c)]
        cs.append({"surrogate": s, "predicts": "0-1 error" if s.endswith("confidence") else "clipped CE",
                   "students": len(c), "median correlation": float(np.median(c)),
                   "p10": float(np.percentile(c, 10)), "p90": float(np.percentile(c, 90))})
    return table, values, cs


def render(table, values, cs, a, n_students, seconds) -> str:
    pop = [r for r in table if r["level"] == "population"]
    pool = [r for r in table if r["level"] == "pool"]
    best = min(table, key=lambda r: r["median ratio to best direct"])
    below = [r for r in table if r["fraction below 1"] > 0]
    lines = [
        "# Certifying a student with few labels", "",
        f"Written by `python scripts/fewlabel_study.py --eval {a.eval} --k {' '.join(map(str, a.k))} --draws "
        f"{a.draws}` in {seconds:.0f} s: {n_students} students (every evaluation under `{a.eval}`), K labelled "
        f"test items drawn uniformly at random ({a.draws} draws per K), the rest of the test split unlabelled. "
        "Ratio = prediction-powered certificate / the best direct certificate of the same target and level (betting "
        "or kl for the clipped risk, the hypergeometric limit or betting for the 0-1 error; the smaller of the two, "
        "chosen after the fact, which flatters the direct side). Below 1: the prediction-powered certificate is "
        "tighter. *pool*: the clipped risk (0-1 error) of the student's test split; *population*: lifted by the kl "
        "step over the test split, eta split in halves.", "",
        f"**Reading** (computed). The smallest median ratio is {best['median ratio to best direct']:.3f} "
        f"(`{best['certificate']}`, {best['level']}, K = {best['K']}); over the {len(table)} rows (certificate x K "
        f"x level) the median ratios run from {min(r['median ratio to best direct'] for r in table):.3f} to "
        f"{max(r['median ratio to best direct'] for r in table):.3f}, and {len(below)} rows have a (student, draw) "
        f"pair below 1 (largest fraction {max((r['fraction below 1'] for r in table), default=0):.3f}). The "
        f"surrogates' median correlations with the per-item loss: "
        + ", ".join(f"{c['surrogate']} {c['median correlation']:+.3f}" for c in cs) + ".", "",
        "## Surrogates: correlation with the per-item loss (over the test split)", "", markdown(cs).strip(), "",
        "## Prediction-powered / best direct, population level", "", markdown(pop).strip(), "",
        "## Prediction-powered / best direct, pool level", "", markdown(pool).strip(), "",
        "## Certificate values (median over students and draws) and coverage of the pool", "",
        "Every pool certificate must cover its pool's own mean in at least 1 - eta of the draws; the pool truth is "
        "known here because every label was given to the tool and hidden from the certificates. A population "
        "certificate's truth (the risk over the distribution) is not known here ('-'); `reports/theory/coverage.md` "
        "checks it on simulated worlds.", "",
        markdown(values).strip(), ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eval", default="reports/study/eval")
    p.add_argument("--k", type=int, nargs="+", default=[20, 50, 100, 200])
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "reports" / "fewlabel"))
    a = p.parse_args()
    eval_dir = Path(a.eval) if Path(a.eval).is_absolute() else ROOT / a.eval
    if not any(eval_dir.glob("*/items.npz")):
        raise SystemExit(f"{eval_dir}: no evaluation with items.npz (run cmkd-bounds sweep, or evaluate --runs)")
    t0 = time.perf_counter()
    rows, corr = run(eval_dir, a.k, a.draws)
    rat = ratios(rows)
    table, values, cs = summary(rat, rows, corr)
    n = len({r["run"] for r in rows})
    out = Path(a.out)
    write_text(out / "study.csv", csv_text(table))
    write_text(out / "study.json", json.dumps({"ratios": table, "values": values, "surrogates": cs,
                                               "students": n, "settings": vars(a)}, indent=2) + "\n")
    write_text(out / "study.md", render(table, values, cs, a, n, time.perf_counter() - t0))
    print((out / "study.md").read_text())


if __name__ == "__main__":
    main()
