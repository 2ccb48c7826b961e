"""The ``cmkd-bounds`` command line.

Every failure the user can cause (a bad option, a missing file, a device that does not exist)
ends with one readable line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from cmkd_bounds import __version__


class UserError(Exception):
    """An error caused by the input; printed as one line without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``cmkd-bounds CMD: error: ... (see --help)``, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_datasets(args) -> int:
    from training.datasets import AUDIOVISUAL, DatasetError, load_digits, load_pair

    rows = []

    def row(label, mod, sizes):
        rows.append((label, mod.modality, "x".join(map(str, mod.input_shape)), mod.num_classes, *sizes))

    def add(pair, label_of):
        splits = pair.split(args.seed)
        for role in ("teacher", "student"):
            row(label_of(getattr(pair, role), role), getattr(pair, role),
                [len(getattr(splits[k], role)) for k in ("train", "val", "test")])

    add(load_pair("avmnist"), lambda mod, role: mod.name)
    add(load_pair("synthetic"), lambda mod, role: f"synthetic ({role})")
    digits = load_digits()
    row("digits", digits, [len(v) for v in digits.split(args.seed).values()])
    missing = []
    for name in AUDIOVISUAL:
        try:
            pair = load_pair(name, data_dir=args.data_dir)
        except DatasetError:
            missing.append(name)
            continue
        add(pair, lambda mod, role: mod.name)
    head = ("dataset", "modality", "input shape", "classes", "train", "val", "test")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    print(f"\ndefault benchmark: avmnist = mnist (images, teacher) x fsdd (audio, student), unpaired; "
          f"splits from seed {args.seed}")
    if missing:
        print(f"not found locally (see README, 'Audio-visual datasets'): {', '.join(missing)}")
    return 0


def _cmd_evaluate(args) -> int:
    from cmkd_bounds.evaluate import evaluate_bundle
    from cmkd_bounds.report import console_summary

    if args.runs:
        from cmkd_bounds.pipeline import evaluate_runs

        rows = evaluate_runs(args.runs, args.out, cost=args.cost, eta=args.eta, seed=args.seed,
                             overwrite=args.overwrite, clip=args.clip, posterior=args.posterior, split=args.split)
        print(f"evaluated {len(rows)} student runs; wrote {args.out}/summary.csv, summary.md, "
              "bound_gap_by_method.png and one report folder per run")
        return 0
    if args.features is None:
        if not (args.teacher and args.student):
            raise UserError("give --features BUNDLE.npz, or both --teacher and --student checkpoints")
        from cmkd_bounds.pipeline import evaluate_checkpoints

        report = evaluate_checkpoints(args.teacher, args.student, args.out, cost=args.cost, eta=args.eta,
                                      seed=args.seed, overwrite=args.overwrite, clip=args.clip,
                                      posterior=args.posterior, split=args.split)
    else:
        if args.teacher or args.student:
            raise UserError("give either --features or --teacher/--student, not both")
        report = evaluate_bundle(args.features, args.out, cost=args.cost, eta=args.eta, seed=args.seed,
                                 overwrite=args.overwrite, clip=args.clip, posterior=args.posterior)
    print(console_summary(report))
    print(f"wrote {args.out}/bound.json, terms.csv, report.md, bound_gap.png, rates.png, lipschitz.png")
    return 0


def _cmd_train(args) -> int:
    from training.config import from_args
    from training.loop import train

    out = train(from_args(args))
    result = out / "result.json"
    if result.exists():
        print(result.read_text().strip())
    return 0


def _cmd_quickstart(args) -> int:
    from training.experiments import quickstart

    quickstart(args.out, args.teacher_epochs, args.student_epochs, args.seed, args.overwrite, args.quiet, args.device)
    return 0


def _cmd_multiseed(args) -> int:
    from dataclasses import replace

    from training.config import from_args
    from training.experiments import multiseed

    cfg = from_args(args, role="student", teacher=args.teacher or "trained per seed")
    table = multiseed(replace(cfg, teacher=args.teacher), args.seeds, args.out, args.teacher_epochs)
    print(table.read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cmkd-bounds",
        description="Unpaired cross-modal knowledge distillation (UCMKD) and its risk bounds.",
    )
    p.add_argument("--version", action="version", version=f"cmkd-bounds {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("datasets", help="load every shipped dataset and print a table of them")
    d.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    d.add_argument("--data-dir", default=None, help="root of the audio-visual datasets (or $CMKD_DATA)")
    d.set_defaults(func=_cmd_datasets)

    e = sub.add_parser("evaluate", help="estimate every bound term from checkpoints or a features bundle")
    e.add_argument("--teacher", help="teacher checkpoint (.safetensors)")
    e.add_argument("--student", help="student checkpoint (.safetensors)")
    e.add_argument("--features", help="features bundle .npz (see README)")
    e.add_argument("--runs", help="a folder of many student runs: one table and one figure across them")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--cost", default="l2", choices=["l2", "l1", "chordal", "cosine"])
    e.add_argument("--eta", type=float, default=0.05, help="confidence budget of the finite-sample bounds")
    e.add_argument("--clip", type=float, default=5.0, help="loss clip c (nats) of the certified bounds")
    e.add_argument("--posterior", default="calibrated", choices=["calibrated", "raw", "true"])
    e.add_argument("--split", default="test", choices=["test", "val"], help="held-out split (checkpoints)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    e.set_defaults(func=_cmd_evaluate)

    from training.config import add_arguments

    t = sub.add_parser("train", help="train a teacher or a student (every config field is an option)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(t)
    t.set_defaults(func=_cmd_train)

    q = sub.add_parser("quickstart", help="the main job: teacher, CE and UCMKD students on avmnist, then bounds")
    q.add_argument("--out", default="reports/quickstart")
    q.add_argument("--teacher-epochs", type=int, default=5)
    q.add_argument("--student-epochs", type=int, default=6)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="auto")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_cmd_quickstart)

    m = sub.add_parser("multiseed", help="one configuration over several seeds: mean ± std table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(m, skip=("role", "seed", "teacher"))
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    m.add_argument("--teacher", default=None, help="a fixed teacher checkpoint (default: one trained per seed)")
    m.add_argument("--teacher-epochs", type=int, default=None)
    m.set_defaults(func=_cmd_multiseed)

    return p


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
        print("cmkd-bounds: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        known = (UserError, ValueError, FileNotFoundError, FileExistsError, RuntimeError, OSError)
        kind = "error" if isinstance(e, known) else f"internal error ({type(e).__name__})"
        print(f"cmkd-bounds: {kind}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
