"""The same 12-run mini-sweep through the three executors on this machine.

Writes reports/benchmarks/executors.{md,json}.

Run: python scripts/bench_executors.py [--jobs 2] [--epochs 3]

The mini-sweep: one teacher, then 12 students (ce, feature_kd, joint and coral, 3 seeds each) on the shipped
`synthetic` pair, one torch thread per task. Each executor trains them into a fresh folder: `local` (a pool of
`--jobs` processes), `submitit` (its local executor: one subprocess per job, the SLURM code path without SLURM)
and `dask` (a LocalCluster of `--jobs` single-threaded workers). Wall time per executor, and the overhead per task
against `local`; the runs' weights are compared with the local ones (bit for bit, the same threads).
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from cmkd_bounds.app.executors import ExecutorSpec
from cmkd_bounds.app.experiments import run_all
from cmkd_bounds.app.tables import markdown
from cmkd_bounds.atomic import write_text
from training.config import TrainConfig

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


def students(root: Path, teacher: Path, epochs: int) -> list[TrainConfig]:
    return [TrainConfig(dataset="synthetic", feat_dim=8, quiet=True, epochs=epochs, method=m, protocol="permutation",
                        seed=s, teacher=str(teacher), out=str(root / f"{m}-{s}"))
            for m in ("ce", "feature_kd", "joint", "coral") for s in (0, 1, 2)]


def same(a: list[TrainConfig], b: list[TrainConfig]) -> bool:
    from safetensors.torch import load_file

    for x, y in zip(a, b):
        wa, wb = load_file(Path(x.out) / "best.safetensors"), load_file(Path(y.out) / "best.safetensors")
        if not all(torch.equal(wa[k], wb[k]) for k in wa):
            return False
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher = tmp / "teacher"
        run_all([TrainConfig(role="teacher", dataset="synthetic", feat_dim=8, quiet=True, epochs=a.epochs,
                             out=str(teacher))], threads=1)
        specs = {"local": ExecutorSpec("local", a.jobs),
                 "submitit": ExecutorSpec("submitit", a.jobs, {"cluster": "local", "folder": str(tmp / "logs/%j"),
                                                               "timeout_min": 30}),
                 "dask": ExecutorSpec("dask", a.jobs)}
        rows, runs = [], {}
        for name, spec in specs.items():
            cfgs = students(tmp / name, teacher / "best.safetensors", a.epochs)
            t0 = time.perf_counter()
            run_all(cfgs, threads=1, executor=spec)
            runs[name] = (cfgs, time.perf_counter() - t0)
        base = runs["local"][1]
        for name, (cfgs, sec) in runs.items():
            rows.append({"executor": name, "tasks": len(cfgs), "wall s": round(sec, 2),
                         "overhead per task s (vs local)": round((sec - base) / len(cfgs), 3),
                         "runs equal to local, bit for bit": same(runs["local"][0], cfgs)})
    res = {"jobs": a.jobs, "epochs": a.epochs, "load_average_1min_before": round(load, 2),
           "load_average_1min_after": round(os.getloadavg()[0], 2), "rows": rows}
    write_text(OUT / "executors.json", json.dumps(res, indent=2) + "\n")
    md = ["# Executors: the same mini-sweep on this machine", "",
          f"Written by `python scripts/bench_executors.py --jobs {a.jobs} --epochs {a.epochs}` (1-minute load average "
          f"{res['load_average_1min_before']} before, {res['load_average_1min_after']} after): 12 students (ce, "
          "feature_kd, joint, coral x 3 seeds) on the `synthetic` pair after one teacher, one torch thread per task; "
          f"`local` is a pool of {a.jobs} processes, `submitit` its local executor (one subprocess per job: the SLURM "
          f"code path without SLURM), `dask` a LocalCluster of {a.jobs} single-threaded workers.", "",
          markdown(rows).strip(), "",
          "The overhead is the price of starting a process (and importing torch) per job, which a cluster pays once "
          "per job too; on runs of minutes or hours it vanishes. Equal weights: the executor changes where a run "
          "trains, not what it computes."]
    write_text(OUT / "executors.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
