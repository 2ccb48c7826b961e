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


def _cmd_datasets(args) -> int:
    from training.datasets import AUDIOVISUAL, DatasetError, load_digits, load_pair

    rows = []

    def add(pair, label_of):
        splits = pair.split(args.seed)
        for role in ("teacher", "student"):
            mod = getattr(pair, role)
            rows.append(
                (label_of(mod, role), mod.modality, "x".join(map(str, mod.input_shape)),
                 mod.num_classes, *(len(getattr(splits[k], role)) for k in ("train", "val", "test")))
            )

    add(load_pair("avmnist"), lambda mod, role: mod.name)
    add(load_pair("synthetic"), lambda mod, role: f"synthetic ({role})")
    digits = load_digits()
    s = digits.split(args.seed)
    rows.append(("digits", digits.modality, "x".join(map(str, digits.input_shape)),
                 digits.num_classes, len(s["train"]), len(s["val"]), len(s["test"])))
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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
