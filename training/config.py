"""Typed training configuration, with defaults, command-line overrides and JSON round-trip.

One flat dataclass: every field is a ``--option`` of ``cmkd-bounds train`` (underscores become
dashes) and the whole config is saved into every checkpoint and the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, fields

METHODS = ("ce", "vanilla_kd", "feature_kd", "joint", "ucmkd")
FA_GRADS = ("unrolled", "envelope")
BN_UPDATES = ("official", "once")
BILEVEL_ORDERS = ("first_order", "second_order")


@dataclass
class TrainConfig:
    # what to train
    role: str = "student"  # teacher | student
    method: str = "ucmkd"  # students: ce | vanilla_kd | feature_kd | joint | ucmkd (teachers: ce)
    teacher: str | None = None  # teacher checkpoint, for students
    # data
    dataset: str = "avmnist"
    swap: bool = False  # exchange the modalities (avmnist: spoken digits teach images)
    data_dir: str | None = None
    arrays: str | None = None
    split_seed: int = 0
    protocol: str = "class_resample"  # class_resample | permutation | paired | fixed_class
    labels_per_class: int = 0  # 0: every student training label; k: k per class, the rest unlabelled (FA only)
    domain_shift: float = 0.0  # Gaussian input noise on the student modality, relative to its std
    imbalance: float = 0.0  # f > 1: keep (1/f)^(rank/(C-1)) of each student class in training (0: off)
    disjoint: float = 0.0  # r in (0, 1): paired data only, student keeps fraction r of the shared events (0: off)
    # model
    arch: str | None = None  # default by modality: cnn, seq, mlp, resnet18
    feat_dim: int = 64
    # optimisation
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    clip: float = 5.0
    # alignment
    cost: str = "l2"
    reg: float = 0.1
    sinkhorn_iters: int = 100
    lambda_fa: float = 0.1
    lambda_la: float = 1.0
    inner_lr: float = 1e-5
    inner_wd: float = 0.05
    n1: int = 1
    n2: int = 1
    fa_grad: str = "unrolled"  # unrolled: d<C,P(C)>/dC through the Sinkhorn iterations (official) | envelope
    bn_updates: str = "official"  # ucmkd: official: running stats updated n1 + n2 + 1 times per step | once
    label_smoothing: float = 0.0  # ucmkd: LA and outer CE (0.1: the official RAVDESS variant); teachers ignore it
    bilevel: str = "first_order"  # ucmkd: first_order (official) | second_order (through the inner steps)
    kd_temperature: float = 4.0
    kd_alpha: float = 0.9
    steer_every: int = 50  # steps between bi-level steering diagnostics (0: never)
    # run
    seed: int = 0
    out: str = "runs/run"
    device: str = "auto"  # auto: cuda when present, else cpu
    quiet: bool = False
    resume: bool = True
    overwrite: bool = False

    def validate(self) -> TrainConfig:
        if self.role not in ("teacher", "student"):
            raise ValueError(f"role must be teacher or student, got {self.role!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.role == "student" and not self.teacher:
            raise ValueError("a student run needs --teacher CHECKPOINT")
        for name in ("epochs", "batch_size", "sinkhorn_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.n1 < 0 or self.n2 < 0 or self.labels_per_class < 0:
            raise ValueError("n1, n2 and labels_per_class must be >= 0")
        if self.lr <= 0 or self.reg <= 0:
            raise ValueError("lr and reg must be > 0")
        for name, choices in (("fa_grad", FA_GRADS), ("bn_updates", BN_UPDATES), ("bilevel", BILEVEL_ORDERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.role == "student" and self.method != "ucmkd":
            if self.label_smoothing:
                raise ValueError("label_smoothing applies to the ucmkd step only (LA and outer CE, as in the "
                                 f"official RAVDESS code); method {self.method} would ignore it")
            if self.bilevel != "first_order":
                raise ValueError(f"bilevel {self.bilevel} is an option of the ucmkd step, not of {self.method}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def add_arguments(parser: argparse.ArgumentParser, skip=()) -> None:
    """One ``--option`` per config field, typed from the annotations."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        if typ is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default)
            continue
        base = next((t for t in typing.get_args(typ) if t is not type(None)), typ)
        parser.add_argument(flag, dest=f.name, type=base, default=f.default, help=f"default: {f.default}")


def from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    d = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    d.update(overrides)
    return TrainConfig(**d).validate()
