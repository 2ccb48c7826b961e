"""Runs of many trainings: the multi-seed runner, the avmnist results grid and the quickstart.

Every table written here is computed from the runs' ``result.json`` files, never typed by hand.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from cmkd_bounds.atomic import write_text
from training.config import TrainConfig
from training.loop import train


def _result(run: Path) -> dict:
    return json.loads((run / "result.json").read_text())


def train_teacher(base: TrainConfig, out: Path, seed: int, epochs: int | None = None) -> Path:
    """Train (or reuse, when its result exists) the teacher of ``base`` for ``seed``."""
    run = out
    if not (run / "result.json").exists():
        train(replace(base, role="teacher", method="ce", teacher=None, seed=seed, out=str(run),
                      epochs=epochs or base.epochs, labels_per_class=0, overwrite=True))
    return run / "best.safetensors"


def train_student(base: TrainConfig, teacher: Path, out: Path, seed: int, **changes) -> dict:
    if not (out / "result.json").exists():
        train(replace(base, role="student", teacher=str(teacher), seed=seed, out=str(out), overwrite=True, **changes))
    return _result(out)


def mean_std(values) -> str:
    v = np.asarray(values, float)
    return f"{100 * v.mean():.2f} ± {100 * v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"


def multiseed(base: TrainConfig, seeds, out: str | Path, teacher_epochs: int | None = None) -> Path:
    """Train ``base`` (a student config; its teacher is trained per seed unless ``base.teacher`` is
    given) over ``seeds``; write ``table.csv`` and ``table.md`` with mean ± std test accuracy."""
    out = Path(out)
    rows = []
    for s in seeds:
        teacher = Path(base.teacher) if base.teacher else train_teacher(base, out / f"seed{s}" / "teacher", s,
                                                                        teacher_epochs)
        t_acc = _result(teacher.parent)["test_acc"] if (teacher.parent / "result.json").exists() else float("nan")
        r = train_student(base, teacher, out / f"seed{s}" / "student", s)
        rows.append({"seed": s, "teacher_test_acc": t_acc, "student_test_acc": r["test_acc"],
                     "epoch_time": r["epoch_time_mean"]})
    lines = ["seed,teacher_test_acc,student_test_acc,epoch_time"] + [
        f"{r['seed']},{r['teacher_test_acc']:.4f},{r['student_test_acc']:.4f},{r['epoch_time']:.3f}" for r in rows]
    write_text(out / "table.csv", "\n".join(lines) + "\n")
    write_text(out / "table.md", (
        f"{base.method} on {base.dataset} (protocol {base.protocol}, seeds {list(seeds)}), test accuracy %\n\n"
        "| teacher | student |\n| --- | --- |\n"
        f"| {mean_std([r['teacher_test_acc'] for r in rows])} | {mean_std([r['student_test_acc'] for r in rows])} |\n"))
    return out / "table.md"


GRID_METHODS = ([("ce", "class_resample")]
                + [(m, p) for m in ("feature_kd", "joint", "ucmkd") for p in ("class_resample", "permutation")]
                + [("vanilla_kd", "fixed_class")])


def avmnist_grid(out: str | Path, seeds=(0, 1, 2, 3, 4), teacher_epochs: int = 8, student_epochs: int = 6,
                 regimes=(0, 10), directions=(False, True), quiet=True) -> Path:
    """The results grid of the default benchmark: both directions, both label regimes, every method.

    Writes ``results.csv`` (one row per run) and ``results.md`` (mean ± std over seeds) in ``out``.
    Runs already finished (their ``result.json`` exists) are reused, so the grid can be resumed.
    """
    out = Path(out)
    base = TrainConfig(dataset="avmnist", epochs=student_epochs, quiet=quiet)
    rows = []
    for swap in directions:
        direction = "audio->image" if swap else "image->audio"
        for s in seeds:
            tdir = out / ("swap" if swap else "fwd") / f"seed{s}" / "teacher"
            teacher = train_teacher(replace(base, swap=swap), tdir, s, teacher_epochs)
            rows.append({"steer_cos": float("nan"), "direction": direction, "regime": "-", "method": "teacher",
                         "protocol": "-", "seed": s,
                         "test_acc": _result(tdir)["test_acc"], "epoch_time": _result(tdir)["epoch_time_mean"]})
            for k in regimes:
                for method, protocol in GRID_METHODS:
                    if k and (method == "vanilla_kd" or protocol == "permutation"):
                        # vanilla KD distils labelled paired items only; with few labels the FA batches
                        # pair unlabelled student items with random teacher items under either protocol,
                        # so a permutation run would repeat the class_resample run exactly
                        continue
                    run = tdir.parent / f"labels{k}" / f"{method}-{protocol}"
                    r = train_student(replace(base, swap=swap), teacher, run, s, method=method, protocol=protocol,
                                      labels_per_class=k)
                    steer = [json.loads(line).get("steer_cos") for line in
                             (run / "metrics.jsonl").read_text().splitlines()]
                    steer = [v for v in steer if v is not None]
                    rows.append({"steer_cos": float(np.mean(steer)) if steer else float("nan"),
                                 "direction": direction, "regime": "all labels" if k == 0 else f"{k} labels/class",
                                 "method": method, "protocol": protocol if not k or method == "ce" else
                                 "either (FA unpaired)", "seed": s, "test_acc": r["test_acc"],
                                 "epoch_time": r["epoch_time_mean"]})
            _write_grid(out, rows, seeds, teacher_epochs, student_epochs)
    return out / "results.md"


def _write_grid(out: Path, rows, seeds, teacher_epochs, student_epochs):
    keys = ["direction", "regime", "method", "protocol", "seed", "test_acc", "epoch_time", "steer_cos"]
    write_text(out / "results.csv", ",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n"
                                                                    for r in rows))
    groups = {}
    for r in rows:
        groups.setdefault((r["direction"], r["regime"], r["method"], r["protocol"]), []).append(r)
    md = [f"# avmnist results (test accuracy %, mean ± std over seeds {list(seeds)})", "",
          f"Teacher {teacher_epochs} epochs, students {student_epochs} epochs, batch 64, AdamW lr 2e-3; "
          "model selection on the validation split. Written by `python -m training.experiments grid`.", "",
          "| direction | regime | method | protocol | seeds | test acc % | epoch time s |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for (d, reg, m, p), rs in groups.items():
        md.append(f"| {d} | {reg} | {m} | {p} | {len(rs)} | {mean_std([r['test_acc'] for r in rs])} | "
                  f"{np.mean([r['epoch_time'] for r in rs]):.2f} |")
    md += ["", "Epoch-time ratio ucmkd / ce (same direction, regime and seed; mean over runs). Epoch times are wall "
           "clock of runs that may have shared the machine with other jobs; `scripts/bench_bilevel.py` measures the "
           "step cost with the methods interleaved:", ""]
    for d in sorted({r["direction"] for r in rows}):
        for reg in sorted({r["regime"] for r in rows if r["direction"] == d and r["regime"] != "-"}):
            ratios = []
            for s in seeds:
                ce = [r["epoch_time"] for r in rows if (r["direction"], r["regime"], r["method"], r["seed"]) ==
                      (d, reg, "ce", s)]
                uc = [r["epoch_time"] for r in rows if (r["direction"], r["regime"], r["method"], r["seed"]) ==
                      (d, reg, "ucmkd", s)]
                ratios += [u / ce[0] for u in uc] if ce else []
            if ratios:
                md.append(f"- {d}, {reg}: {np.mean(ratios):.2f}x (min {np.min(ratios):.2f}, max {np.max(ratios):.2f}, "
                          f"{len(ratios)} runs)")
    steer = [r["steer_cos"] for r in rows if r["method"] == "ucmkd" and np.isfinite(r["steer_cos"])]
    if steer:
        md += ["", "Steering of the UCMKD bi-level step: cosine between the outer CE gradient at the displaced and at "
               f"the current parameters, mean {np.mean(steer):.5f} (min {np.min(steer):.5f}) over {len(steer)} runs "
               "(1 = the FA/LA inner steps do not change the update)."]
    write_text(out / "results.md", "\n".join(md) + "\n")


def quickstart(out: str | Path = "reports/quickstart", teacher_epochs: int = 5, student_epochs: int = 6,
               seed: int = 0, overwrite: bool = False, quiet: bool = False, device: str = "auto") -> dict:
    """The main job on the default benchmark: MNIST images teach spoken digits.

    Trains the teacher, a CE student and a UCMKD student (class_resample), evaluates the bounds of
    both students, and writes ``summary.md`` and ``summary.json`` beside the run folders.
    """
    import shutil

    from cmkd_bounds.pipeline import evaluate_checkpoints

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: pass --overwrite to run the quickstart again")
        shutil.rmtree(out)
    base = TrainConfig(dataset="avmnist", epochs=student_epochs, quiet=quiet, device=device, seed=seed)
    teacher = train_teacher(base, out / "teacher", seed, teacher_epochs)
    summary = {"teacher_test_acc": _result(out / "teacher")["test_acc"]}
    print(f"teacher (mnist images): test accuracy {summary['teacher_test_acc']:.4f}")
    for method in ("ce", "ucmkd"):
        r = train_student(base, teacher, out / method, seed, method=method, protocol="class_resample")
        summary[f"{method}_test_acc"] = r["test_acc"]
        summary[f"{method}_epoch_time"] = r["epoch_time_mean"]
        print(f"{method} student (spoken digits): test accuracy {r['test_acc']:.4f}")
    for method in ("ce", "ucmkd"):
        rep = evaluate_checkpoints(teacher, out / method / "best.safetensors", out / f"eval-{method}")
        d = rep.to_dict()
        summary[f"{method}_bounds"] = {k: d[k] for k in ("observed_risk", "observed_risk_clipped", "observed_error01",
                                                         "bound_asymptotic", "bound_certified", "bound_estimated")}
        summary[f"{method}_bounds"]["gap"] = d["gap"]
        print(f"{method} student bounds (nats): observed CE {d['observed_risk']:.4f}, 0-1 error "
              f"{d['observed_error01']:.4f}; asymptotic {d['bound_asymptotic']:.4g} ({d['bound_asymptotic_kind']}), "
              f"certified {d['bound_certified']:.4g}, estimated {d['bound_estimated']:.4g}; relative gap "
              f"{100 * d['gap']['certified']['relative']:.1f}% (certified), "
              f"{100 * d['gap']['estimated']['relative']:.1f}% (estimated)")
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "summary.md", _quickstart_md(summary))
    print(f"wrote {out}/summary.md; reports in {out}/eval-ce and {out}/eval-ucmkd")
    return summary


def _quickstart_md(s: dict) -> str:
    lines = ["# Quickstart: MNIST images teach spoken digits (avmnist)", "",
             "Written by `cmkd-bounds quickstart`. Accuracies on the test splits; bounds in nats on the student's "
             "test split (relative gap = (bound - observed) / bound).", "",
             f"Teacher (MNIST CNN) test accuracy: {s['teacher_test_acc']:.4f}", "",
             "| student | test acc | epoch s | observed CE | 0-1 error | asymptotic bound | certified bound | "
             "estimated bound | rel. gap certified | rel. gap estimated |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in ("ce", "ucmkd"):
        b = s[f"{m}_bounds"]
        lines.append(f"| {m} | {s[f'{m}_test_acc']:.4f} | {s[f'{m}_epoch_time']:.2f} | {b['observed_risk']:.4f} | "
                     f"{b['observed_error01']:.4f} | {b['bound_asymptotic']:.4g} | {b['bound_certified']:.4g} | "
                     f"{b['bound_estimated']:.4g} | {100 * b['gap']['certified']['relative']:.1f}% | "
                     f"{100 * b['gap']['estimated']['relative']:.1f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="avmnist results grid")
    p.add_argument("what", choices=["grid"])
    p.add_argument("--out", default="reports/avmnist")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student-epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    print(avmnist_grid(a.out, a.seeds, a.teacher_epochs, a.student_epochs))
