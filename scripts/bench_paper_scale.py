"""Evaluation at the size of the paper's datasets, end to end; writes reports/benchmarks/paper_scale.{json,md}
and the ``paper_scale`` entry of reports/benchmarks/w1.json.

Run: python scripts/bench_paper_scale.py [--n 15000] [--dim 512] [--classes 309]

A synthetic features bundle of the size of VGGSound's test sets (n = 15,000 per side, 512-d features,
309 classes of unequal size: a Zipf-like class marginal, different for the two sides) is written to a
temporary folder, and ``cmkd-bounds evaluate --features`` runs on it in a child process; the table gives the
wall time, the child's peak resident memory and the time of each phase (from ``bound.json``). Targets
(issue 14): 15 minutes and 8 GB on the 2-core machine.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.tables import markdown
from cmkd_bounds.atomic import write_text

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


def bundle(path: Path, n: int, d: int, C: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(C, d)) * 0.35
    facts = {}
    arrays = {}
    for role, skew, shift in (("teacher", 1.0, 0.0), ("student", 0.7, 0.4)):
        p = (1.0 / np.arange(1, C + 1) ** skew)
        p = p[rng.permutation(C)]
        p /= p.sum()
        y = rng.choice(C, n, p=p)
        z = means[y] + rng.normal(size=(n, d)) + shift * rng.normal(size=d) / np.sqrt(d) * 10
        arrays[f"{role}_z"], arrays[f"{role}_y"] = z.astype(np.float32), y.astype(np.int64)
        counts = np.bincount(y, minlength=C)
        facts[f"{role}_class_sizes"] = [int(counts.min()), int(np.median(counts)), int(counts.max())]
    W = (means * 4).astype(np.float32)
    b = (-(means**2).sum(1) * 8).astype(np.float32) * 0.0
    arrays.update(teacher_W=W, teacher_b=b, student_W=W + 0.05 * rng.normal(size=W.shape).astype(np.float32),
                  student_b=b)
    np.savez(path, **arrays)
    return facts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=15_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=309)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "paper_scale.npz"
        facts = bundle(f, a.n, a.dim, a.classes)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "cmkd_bounds", "evaluate", "--features", str(f), "--out",
                            str(Path(tmp) / "eval")], capture_output=True, text=True)
        seconds = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
        if r.returncode != 0:
            raise SystemExit(f"evaluate failed:\n{r.stderr[-3000:]}")
        d = json.loads((Path(tmp) / "eval" / "bound.json").read_text())
    phases = d["source"]["phase_seconds"]
    transports = {t["name"]: {"w1": t["w1"], "method": t["w1_method"], "kind": t["w1_kind"],
                              **{k: t["w1_diagnostics"].get(k) for k in ("width_requested", "width_reached",
                                                                         "iterations", "choice")}}
                  for t in d["transports"]}
    res = {"n": a.n, "dim": a.dim, "classes": a.classes, **facts, "seconds": seconds, "peak_rss_gib": peak,
           "phases": phases, "transports": transports, "target_seconds": 900, "target_gib": 8,
           **{k: d[k] for k in (names.BOUND_CERTIFIED, names.BOUND_ASYMPTOTIC)},
           "stderr_tail": r.stderr[-1500:]}
    write_text(OUT / "paper_scale.json", json.dumps(res, indent=2) + "\n")
    w1 = OUT / "w1.json"
    if w1.exists():
        doc = json.loads(w1.read_text())
        doc["paper_scale"] = {k: res[k] for k in ("n", "dim", "classes", "seconds", "peak_rss_gib", "phases")}
        write_text(w1, json.dumps(doc, indent=2) + "\n")
    rows = [{"phase": k, "seconds": v} for k, v in phases.items()]
    trs = [{"transport": k, **v} for k, v in transports.items()]
    write_text(OUT / "paper_scale.md", "\n".join([
        "# Evaluation at the paper's scale", "",
        f"Written by `python scripts/bench_paper_scale.py --n {a.n} --dim {a.dim} --classes {a.classes}`: a synthetic "
        f"features bundle of {a.n:,} items per side in {a.dim} dimensions with {a.classes} classes of unequal size "
        f"(teacher min/median/max {facts['teacher_class_sizes']}, student {facts['student_class_sizes']}), evaluated "
        "end to end by `cmkd-bounds evaluate --features` in a child process.", "",
        f"Total {seconds:.0f} s (target <= 900 s), peak resident memory {peak:.2f} GiB (target <= 8 GiB).", "",
        markdown(rows, digits=3).strip(), "", markdown(trs, digits=4).strip(), ""]))
    print(open(OUT / "paper_scale.md").read())


if __name__ == "__main__":
    main()
