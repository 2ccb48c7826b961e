"""The ``cmkd-bounds`` command line.

Every failure the user can cause (a bad option, a missing file, a device that does not exist) ends
with one readable line on stderr and exit code 2; ``--debug`` shows the traceback instead. Nothing
heavy (torch, POT, the datasets) is imported before the arguments and the input files are checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmkd_bounds import __version__


class UserError(Exception):
    """An error caused by the input; printed as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``cmkd-bounds CMD: error: ... (see --help)``, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _threads(args) -> None:
    """``--threads N``: torch (and OpenMP) on N threads in this process. On a busy 2-core machine the default
    (one per core) makes the threads wait on each other: the quickstart took 17 min 46 s there against
    3 min 05 s with one thread."""
    n = getattr(args, "threads", 0)
    if n:
        import os

        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        import torch

        torch.set_num_threads(n)


def _executor(args):
    """The executor of a study's tasks (``--executor``, ``--executor-opts``, and ``--jobs`` for local processes)."""
    from cmkd_bounds.app.executors import ExecutorSpec, parse_options

    kind = getattr(args, "executor", "local")
    return ExecutorSpec(kind, max(1, getattr(args, "jobs", 1)), parse_options(getattr(args, "executor_opts", None)))


def _need_file(path, what: str) -> None:
    if path is not None and not Path(path).is_file():
        if (Path(path) / "best.safetensors").is_file():
            raise UserError(f"{what} {path}: a run folder, not a checkpoint; give {Path(path) / 'best.safetensors'}")
        raise UserError(f"{what} {path}: no such file")


def _settings(args):
    from cmkd_bounds.settings import BoundSettings

    design = {}
    if getattr(args, "split", None) is not None and getattr(args, "features", None):
        raise UserError("--split chooses a split of the checkpoints' data; a features bundle holds its items "
                        "already (describe how they were drawn with --sampling and --selected-among)")
    for name in ("sampling", "selected_among"):
        if getattr(args, name, None) is not None:
            if not getattr(args, "features", None):
                raise UserError(f"--{name.replace('_', '-')} describes the student items of a features bundle; for "
                                "checkpoints it follows from the split (the shipped splits are class-stratified, and "
                                "--split val counts the epochs compared there)")
            design[name] = getattr(args, name)
    if getattr(args, "labelled", None) is not None and getattr(args, "labelled_index", None):
        raise UserError("give --labelled K (a uniform draw by the tool) or --labelled-index FILE, not both")
    if getattr(args, "labelled", None) is not None and args.labelled < 1:
        raise UserError(f"--labelled {args.labelled}: keep at least one label (omit the option to use every label)")
    return BoundSettings(cost=args.cost, eta=args.eta, loss_clip=args.loss_clip, posterior=args.posterior,
                         seed=args.seed, w1_method=args.w1_method, w1_width=args.w1_width,
                         labelled=getattr(args, "labelled", None) or 0, **design)


# ----------------------------------------------------------------------------- commands
def _cmd_datasets(args) -> int:
    if args.arrays:
        _need_file(args.arrays, "--arrays")
        from training.arrays import describe

        print("\n".join(describe(args.arrays)))
        return 0
    from training.data import DatasetError
    from training.datasets import AUDIOVISUAL, BENCHMARKS, load_modality, load_pair

    rows = []

    def row(label, mod, sizes, what):
        rows.append((label, what, mod.modality, "x".join(map(str, mod.input_shape)), mod.num_classes, *sizes))

    def sizes_of(parts, role):
        return [len(getattr(parts[k], role)) for k in ("train", "val", "test")]

    for name in ("mnist", "fsdd", "digits"):
        m = load_modality(name)
        row(name, m, [len(v) for v in m.split(args.seed).values()], "modality")
    for name, (t, s) in BENCHMARKS.items():
        parts = load_pair(name).split(args.seed)
        for role, mod_name in (("teacher", t), ("student", s)):
            row(f"{name} ({role}: {mod_name})", getattr(parts["train"], role), sizes_of(parts, role), "pair")
    syn = load_pair("synthetic").split(args.seed)
    for role in ("teacher", "student"):
        row(f"synthetic ({role})", getattr(syn["train"], role), sizes_of(syn, role), "pair")
    missing = []
    for name in AUDIOVISUAL:
        try:
            parts = load_pair(name, data_dir=args.data_dir).split(args.seed)
        except DatasetError:
            missing.append(name)
            continue
        for role in ("teacher", "student"):
            row(f"{name} ({role})", getattr(parts["train"], role), sizes_of(parts, role), "pair")
    head = ("dataset", "what", "modality", "input shape", "classes", "train", "val", "test")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    print("\nruns use pairs (--dataset avmnist, digits-fsdd, synthetic, arrays, or an audio-visual set); the default "
          "benchmark avmnist = mnist (images, teacher) x fsdd (audio, student), unpaired; splits from seed "
          f"{args.seed}")
    if missing:
        print(f"not found locally (see README, 'Audio-visual datasets'): {', '.join(missing)}")
    return 0


def _cmd_evaluate(args) -> int:
    given = [x for x in ("features", "runs", "student") if getattr(args, x)]
    if len(given) != 1:
        raise UserError("give exactly one of --features BUNDLE.npz, --student CHECKPOINT (with or without --teacher) "
                        "or --runs FOLDER")
    if args.teacher and not args.student:
        raise UserError("--teacher goes with --student")
    _need_file(args.features, "--features")
    _need_file(args.student, "--student")
    _need_file(args.teacher, "--teacher")
    _need_file(args.labelled_index, "--labelled-index")
    if args.labelled_index and args.runs:
        raise UserError("--labelled-index names items of one evaluation; with --runs use --labelled K")
    if args.runs and not Path(args.runs).is_dir():
        raise UserError(f"--runs {args.runs}: no such folder")
    settings = _settings(args)
    if args.features:  # the bundle's keys and types, checked with NumPy alone, before torch is imported
        from cmkd_bounds.app.bundle import load_bundle

        load_bundle(args.features)
    _threads(args)
    from cmkd_bounds.app import evaluate as ev
    from cmkd_bounds.app.report import console_summary
    from cmkd_bounds.app.results import REPORT_FILES as FILES

    if args.runs:
        rows = ev.evaluate_runs(args.runs, args.out, settings, split=args.split or "test", overwrite=args.overwrite,
                                quiet=args.quiet, executor=_executor(args), threads=args.threads)
        print(f"evaluated {len(rows)} student runs; wrote {args.out}/summary.csv, summary.md, bound_gap_by_method.png "
              "and one report folder per run")
        return 0
    if args.features:
        report = ev.evaluate_bundle(args.features, args.out, settings, overwrite=args.overwrite, quiet=args.quiet,
                                    labelled_index=args.labelled_index)
    else:
        report = ev.evaluate_checkpoints(args.teacher, args.student, args.out, settings, split=args.split or "test",
                                         overwrite=args.overwrite, quiet=args.quiet,
                                         labelled_index=args.labelled_index)
    print(console_summary(report))
    print(f"wrote {args.out}/{', '.join(FILES)}")
    return 0


def _cmd_train(args) -> int:
    from training.config import from_args

    cfg = from_args(args)
    _need_file(cfg.teacher, "--teacher")
    _need_file(cfg.arrays, "--arrays")
    _threads(args)
    from training.loop import train

    run = train(cfg)
    print(run.file("result.json").read_text().strip())
    return 0


def _cmd_quickstart(args) -> int:
    for name in ("teacher_epochs", "student_epochs"):  # before the teacher trains, not after
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: at least one epoch")
    _threads(args)
    from cmkd_bounds.app.experiments import quickstart

    quickstart(args.out, args.teacher_epochs, args.student_epochs, args.seed, args.overwrite, args.quiet, args.device)
    return 0


def _cmd_multiseed(args) -> int:
    from dataclasses import replace

    from training.config import from_args

    cfg = from_args(args, role="student", teacher=args.teacher or "trained per seed")
    _need_file(args.teacher, "--teacher")
    from cmkd_bounds.app.experiments import multiseed

    _threads(args)
    table = multiseed(replace(cfg, teacher=args.teacher), args.seeds, args.out, args.teacher_epochs, args.jobs,
                      threads=args.threads)
    print(table.read_text())
    return 0


def _cmd_grid(args) -> int:
    from cmkd_bounds.app.experiments import avmnist_grid

    print(avmnist_grid(args.runs, args.seeds, args.teacher_epochs, args.student_epochs, jobs=args.jobs,
                       threads=args.threads, table_out=args.out, executor=_executor(args)).read_text())
    return 0


def _cmd_steering(args) -> int:
    from cmkd_bounds.app.experiments import steering_study

    print(steering_study(args.runs, args.out, args.seeds, args.teacher_epochs, args.student_epochs, args.jobs,
                         args.threads, executor=_executor(args)).read_text())
    return 0


def _cmd_sweep(args) -> int:
    from cmkd_bounds.app.experiments import sweep

    print(sweep(args.runs, args.out, args.seeds, args.teacher_epochs, args.student_epochs, args.jobs, args.threads,
                n_boot=args.bootstrap, executor=_executor(args)).read_text())
    return 0


def _cmd_robustness(args) -> int:
    from cmkd_bounds.app.robustness import robustness

    print(robustness(args.runs, args.out, args.seeds, args.teacher_epochs, args.student_epochs, args.jobs,
                     args.threads, executor=_executor(args)).read_text())
    return 0


def _cmd_correlate(args) -> int:
    from cmkd_bounds.app.correlate import correlate

    res = correlate(args.eval_dir, args.out, n_boot=args.bootstrap)
    print(f"{len(res)} correlations; wrote {args.out or args.eval_dir}/correlation.md, correlation.csv, "
          "correlation.png")
    return 0


# ----------------------------------------------------------------------------- the parser
def _evaluate_options(e) -> None:
    from cmkd_bounds.costs import COSTS
    from cmkd_bounds.settings import POSTERIORS, W1_METHODS, BoundSettings

    d = BoundSettings()
    e.add_argument("--cost", default=d.cost, choices=list(COSTS), help="ground cost of the feature space")
    e.add_argument("--eta", type=float, default=d.eta, help="confidence budget: certified bounds hold w.p. >= 1 - eta")
    e.add_argument("--loss-clip", type=float, default=d.loss_clip,
                   help="c in the clipped loss min(l, c) of the certified bounds (nats, >= ln 2)")
    e.add_argument("--posterior", default=d.posterior, choices=list(POSTERIORS),
                   help="; ".join(f"{k}: {v}" for k, v in POSTERIORS.items()))
    e.add_argument("--w1-method", default=d.w1_method, choices=list(W1_METHODS),
                   help=f"how every W1 is computed: exact, the certified bracket, or auto (exact while it fits in "
                        f"memory; default {d.w1_method})")
    e.add_argument("--w1-width", type=float, default=d.w1_width,
                   help="relative width asked of the certified W1 bracket when it is used")
    e.add_argument("--seed", type=int, default=d.seed,
                   help=f"seed of the random parts (rate-curve subsamples, the --labelled draw; default {d.seed})")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cmkd-bounds",
                description="Unpaired cross-modal knowledge distillation (UCMKD) and its risk bounds.")
    p.add_argument("--version", action="version", version=f"cmkd-bounds {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("datasets", help="every shipped dataset with its shapes and splits, or describe a user file")
    d.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    d.add_argument("--data-dir", default=None, help="root of the audio-visual datasets (or $CMKD_DATA)")
    d.add_argument("--arrays", default=None, help="describe a user .npz as the tool reads it")
    d.set_defaults(func=_cmd_datasets)

    e = sub.add_parser("evaluate", help="every bound term from checkpoints, a features bundle, or a folder of runs")
    e.add_argument("--student", help="student checkpoint (.safetensors); its teacher is found from its metadata")
    e.add_argument("--teacher", help="teacher checkpoint (default: the one recorded in the student)")
    e.add_argument("--features", help="features bundle .npz (see README)")
    e.add_argument("--runs", help="a folder of many student runs: one report each, one table and figure across them")
    e.add_argument("--out", required=True, help="output folder")
    _evaluate_options(e)
    e.add_argument("--split", default=None, choices=["test", "val"],
                   help="held-out split of checkpoints (default test); on val, where the best epoch was chosen, "
                        "every certificate pays a union bound over the epochs compared")
    from cmkd_bounds.concentration import SAMPLINGS

    e.add_argument("--sampling", default=None, choices=list(SAMPLINGS),
                   help="how a bundle's student items were drawn (default iid); " + "; ".join(
                       f"{k}: {v}" for k, v in SAMPLINGS.items()))
    e.add_argument("--labelled", type=int, default=None, metavar="K",
                   help="keep the labels of only K student items, drawn uniformly at random (seeded by --seed): the "
                        "few-label report (README, 'Certifying a student with few labels')")
    e.add_argument("--labelled-index", default=None, metavar="FILE",
                   help="the student items whose labels may be used (.npy or a text file of indices into the "
                        "evaluation items), assumed a uniformly random draw")
    e.add_argument("--selected-among", type=int, default=None, metavar="E",
                   help="a bundle's student was chosen among E models on these very items: certificates at eta / E "
                        "(default 1: the items played no part in choosing it)")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    e.add_argument("--quiet", action="store_true", help="no progress lines")
    _threads_option(e)
    e.add_argument("--jobs", type=int, default=1, help="--runs: evaluations in parallel processes (local executor)")
    _executor_options(e)
    e.set_defaults(func=_cmd_evaluate)

    from training.config import add_arguments

    t = sub.add_parser("train", help="train a teacher or a student (every config field is an option)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(t)
    _threads_option(t)
    t.set_defaults(func=_cmd_train)

    q = sub.add_parser("quickstart", help="the main job: teacher, CE and UCMKD students on avmnist, then bounds",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("--out", default="runs/quickstart", help="run folder (rerunning it resumes)")
    q.add_argument("--teacher-epochs", type=int, default=5)
    q.add_argument("--student-epochs", type=int, default=6)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="auto")
    q.add_argument("--overwrite", action="store_true", help="delete --out and start from scratch")
    q.add_argument("--quiet", action="store_true")
    _threads_option(q)
    q.set_defaults(func=_cmd_quickstart)

    m = sub.add_parser("multiseed", help="one configuration over several seeds: mean ± std table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(m, skip=("role", "seed", "teacher"))
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    m.add_argument("--teacher", default=None, help="a fixed teacher checkpoint; none: one trained per seed")
    m.add_argument("--teacher-epochs", type=int, default=None)
    m.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    _threads_option(m)
    m.set_defaults(func=_cmd_multiseed)

    c = sub.add_parser("correlate", help="Kendall tau and Psi between every bound or term and the test error, "
                                         "over a folder written by evaluate --runs",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("eval_dir", help="a folder written by cmkd-bounds evaluate --runs")
    c.add_argument("--out", default=None, help="where correlation.md/.csv/.png go (default: eval_dir)")
    c.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the runs")
    c.set_defaults(func=_cmd_correlate)

    g = sub.add_parser("grid", help="the results grid of the default benchmark (both directions, both label regimes)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _study_folders(g, "avmnist", "reports/avmnist", [0, 1, 2, 3, 4], "results.md and results.csv")
    _experiment_options(g)
    g.set_defaults(func=_cmd_grid)

    st = sub.add_parser("steering", help="does the UCMKD bi-level step steer? inner learning rate, order and gradient "
                                         "in the few-label regimes",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _study_folders(st, "steering", "reports/ucmkd", [0, 1, 2, 3, 4])
    _experiment_options(st)
    st.set_defaults(func=_cmd_steering)

    sw = sub.add_parser("sweep", help="train a sweep of students, evaluate their bounds and correlate them with "
                                      "the test error",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _study_folders(sw, "study", "reports/study", [0, 1, 2])
    sw.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the runs")
    _experiment_options(sw)
    sw.set_defaults(func=_cmd_sweep)

    rb = sub.add_parser("robustness", help="the paper's Table 14 analogue: label imbalance, domain shift and "
                                           "disjoint pools (clean / moderate / hard) for CE, feature KD, UCMKD and "
                                           "the domain-adaptation methods",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _study_folders(rb, "robustness", "reports/robustness", [0, 1, 2])
    _experiment_options(rb)
    rb.set_defaults(func=_cmd_robustness)
    return p


def _threads_option(p) -> None:
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default, one per core; 1 is faster on a busy machine)")


def _executor_options(p) -> None:
    from cmkd_bounds.app.executors import EXECUTORS

    p.add_argument("--executor", default="local", choices=list(EXECUTORS),
                   help="where the tasks run (one per run folder): this machine, SLURM through submitit, or a Dask "
                        "cluster (README, 'Running a study on a cluster')")
    p.add_argument("--executor-opts", nargs="*", default=None, metavar="KEY=VALUE",
                   help="the executor's parameters (partition=gpu timeout_min=120 ..., address=tcp://...), or "
                        "@file.json")


def _study_folders(p, runs: str, out: str, seeds: list, what: str = "the tables") -> None:
    """A study's ``--runs`` (``runs/<runs>``), ``--out`` (its committed report by default) and ``--seeds``."""
    p.add_argument("--runs", default=f"runs/{runs}", help="where the runs live (resumable)")
    p.add_argument("--out", default=out,
                   help=f"where {what} go (the default is the committed report, which a run there regenerates)")
    p.add_argument("--seeds", type=int, nargs="+", default=seeds)


def _experiment_options(p) -> None:
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student-epochs", type=int, default=6)
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (they resume when rerun)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    _executor_options(p)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cmkd-bounds: interrupted (rerun the same command to continue)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        known = (UserError, ValueError, FileNotFoundError, FileExistsError, RuntimeError, OSError)
        label = "error" if isinstance(e, known) else f"internal error ({type(e).__name__})"
        msg = " ".join(str(e).split())
        print(f"cmkd-bounds: {label}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
