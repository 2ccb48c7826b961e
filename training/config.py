"""Typed training configuration, with defaults, command-line overrides and JSON round-trip.

One flat dataclass: every field is a ``--option`` of ``cmkd-bounds train`` (underscores become
dashes) and the whole config is saved into every checkpoint and the run folder. This module imports
nothing heavy, so the command line can check its arguments before torch is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, fields

from training.names import DEFAULT_DATASET, METHODS, MODALITY_DATASETS, PAIR_DATASETS, PAIRED_PROTOCOLS, PROTOCOLS

FA_GRADS = ("unrolled", "envelope")
BN_UPDATES = ("official", "once")
BILEVEL_ORDERS = ("first_order", "second_order")
# fields that may change when a finished or interrupted run is continued (they do not change its result)
RESUMABLE_CHANGES = frozenset({"epochs", "quiet", "resume", "overwrite", "device"})


@dataclass
class TrainConfig:
    # what to train
    role: str = "student"  # teacher | student
    method: str = "ucmkd"  # students: ce | vanilla_kd | feature_kd | joint | ucmkd | deepjdot | dann | coral | ot_pseudo (teachers: ce)  # noqa: E501
    teacher: str | None = None  # teacher checkpoint (students)
    # data
    dataset: str = DEFAULT_DATASET
    swap: bool = False  # exchange the modalities (avmnist: spoken digits teach images)
    data_dir: str | None = None  # root of the audio-visual datasets (or $CMKD_DATA)
    arrays: str | None = None  # your own data: one .npz (README, 'Bring your own data'); implies --dataset arrays
    standardize: bool = False  # arrays: standardise each feature by its training-split mean and std (both sides)
    allow_label_disagreement: bool = False  # arrays: accept a correspondence whose paired labels agree on < 90 %
    split_seed: int = 0  # seed of the class-stratified 70/15/15 train/val/test split
    protocol: str = "class_resample"  # class_resample | permutation | paired | fixed_class
    labels_per_class: int = 0  # 0: every student training label; k: k per class, the rest unlabelled
    domain_shift: float = 0.0  # Gaussian input noise on the student modality, relative to its std
    imbalance: float = 0.0  # f > 1: keep (1/f)^(rank/(C-1)) of each student class in training (0: off)
    disjoint: float = 0.0  # r in (0, 1): paired data only, student keeps fraction r of the shared events (0: off)
    # model
    arch: str | None = None  # encoder; by default by modality: cnn, seq, mlp, resnet18
    feat_dim: int = 64  # size of the feature space Z shared by teacher and student
    # optimisation
    epochs: int = 8  # a finished run asked for more epochs is extended (said on stderr); fewer is refused
    batch_size: int = 64  # items per step
    lr: float = 2e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    grad_clip: float = 5.0  # gradient-norm clip of every optimiser step
    # alignment
    cost: str = "l2"  # ground cost of feature alignment: l2, l1, chordal, cosine
    reg: float = 0.1  # entropic regularisation of the FA Sinkhorn
    sinkhorn_iters: int = 100  # Sinkhorn iterations of FA
    lambda_fa: float = 0.1  # feature_kd, joint: weight of FA
    lambda_la: float = 1.0  # joint: weight of LA
    inner_lr: float = 1e-5  # ucmkd: learning rate of the inner AdamW steps
    inner_wd: float = 0.05  # ucmkd: weight decay of the inner AdamW steps
    n1: int = 1  # ucmkd: inner FA steps
    n2: int = 1  # ucmkd: inner LA steps
    fa_grad: str = "unrolled"  # unrolled: d<C,P(C)>/dC through the Sinkhorn iterations (official) | envelope
    bn_updates: str = "official"  # ucmkd: official: running stats updated n1 + n2 + 1 times per step | once
    label_smoothing: float = 0.0  # ucmkd: LA and outer CE (0.1: the official RAVDESS variant); teachers ignore it
    bilevel: str = "first_order"  # ucmkd: first_order (official) | second_order (through the inner steps)
    # domain adaptation (deepjdot, dann, coral, ot_pseudo)
    lambda_da: float = 1.0  # weight of the adaptation loss beside CE (dann: the gradient-reversal scale)
    jdot_alpha: float = 0.01  # deepjdot: weight of the squared feature distance in the joint cost
    jdot_lambda: float = 1.0  # deepjdot: weight of the label term CE(teacher label, h_S(z_S)) in the joint cost
    dann_hidden: int = 64  # dann: hidden units of the domain discriminator
    coral_mean: float = 1.0  # coral: weight of the mean-matching term beside the covariance one
    pseudo_every: int = 2  # ot_pseudo: epochs between two refits of the pseudo-labels
    pseudo_reg_e: float = 0.05  # ot_pseudo: entropic regularisation (cost normalised by its maximum)
    pseudo_reg_cl: float = 1.0  # ot_pseudo: class-wise group-lasso regularisation
    pseudo_teacher: int = 500  # ot_pseudo: teacher items per refit (a seeded subsample)
    pseudo_iters: int = 50  # ot_pseudo: Sinkhorn iterations per majorisation step of the group-lasso OT
    kd_temperature: float = 4.0  # vanilla_kd: softmax temperature
    kd_alpha: float = 0.9  # vanilla_kd: weight of the distillation term
    steer_every: int = 50  # steps between bi-level steering diagnostics (0: never)
    # run
    seed: int = 0  # seed of the initialisation, the epochs' order and the label draw
    out: str = "runs/run"  # run folder (reused for the same configuration, resumed when cut)
    device: str = "auto"  # auto: cuda when present, else cpu
    quiet: bool = False  # no progress on stderr
    resume: bool = True  # continue an interrupted run in --out (--no-resume refuses instead)
    overwrite: bool = False  # replace whatever --out holds

    def validate(self) -> TrainConfig:
        """Every check that needs no data, so a bad option fails before anything is written."""
        from cmkd_bounds.costs import COSTS

        if self.role not in ("teacher", "student"):
            raise ValueError(f"role must be teacher or student, got {self.role!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; known: {', '.join(PROTOCOLS)}")
        if self.dataset in MODALITY_DATASETS:
            raise ValueError(f"{self.dataset!r} is a single modality, and a run needs a teacher and a student "
                             f"modality: use a pair ({', '.join(PAIR_DATASETS)}); avmnist = mnist teaches fsdd, "
                             "digits-fsdd = digits teaches fsdd (--swap exchanges the roles)")
        if self.dataset not in PAIR_DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known pairs: {', '.join(PAIR_DATASETS)}")
        if self.arrays and self.dataset != "arrays":
            raise ValueError(f"--arrays FILE is read only with --dataset arrays (this run has --dataset "
                             f"{self.dataset})")
        if self.dataset == "arrays" and not self.arrays:
            raise ValueError("--dataset arrays needs --arrays FILE.npz")
        if self.standardize and self.dataset != "arrays":
            raise ValueError("--standardize applies to --dataset arrays (the shipped datasets are already scaled)")
        if self.cost not in COSTS:
            raise ValueError(f"unknown cost {self.cost!r}; known: {', '.join(COSTS)}")
        if self.role == "student" and not self.teacher:
            raise ValueError("a student run needs --teacher CHECKPOINT")
        for name in ("epochs", "batch_size", "sinkhorn_iters", "feat_dim", "dann_hidden", "pseudo_every",
                     "pseudo_teacher", "pseudo_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.n1 < 0 or self.n2 < 0 or self.labels_per_class < 0:
            raise ValueError("n1, n2 and labels_per_class must be >= 0")
        if self.lr <= 0 or self.reg <= 0 or self.grad_clip <= 0:
            raise ValueError("lr, reg and grad_clip must be > 0")
        if min(self.lambda_da, self.jdot_alpha, self.jdot_lambda, self.coral_mean) < 0 or \
                min(self.pseudo_reg_e, self.pseudo_reg_cl) <= 0:
            raise ValueError("lambda_da, jdot_alpha, jdot_lambda and coral_mean must be >= 0, pseudo_reg_e and "
                             "pseudo_reg_cl > 0")
        for name, choices in (("fa_grad", FA_GRADS), ("bn_updates", BN_UPDATES), ("bilevel", BILEVEL_ORDERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.role == "student":
            if self.method == "vanilla_kd" and self.protocol not in PAIRED_PROTOCOLS:
                raise ValueError(f"vanilla_kd distils each item from its paired teacher item and needs a pairing "
                                 f"(protocol paired, or fixed_class as a class-matched stand-in); {self.protocol!r} "
                                 "re-draws or ignores partners, so there is no pairing to distil from")
            if self.labels_per_class and self.protocol == "class_resample":
                raise ValueError("class_resample draws each item's partner from the item's class, and with "
                                 "--labels-per-class the unlabelled items have no class to draw from: use permutation "
                                 "(random partners), or paired / fixed_class where the data are paired")
            if self.method != "ucmkd":
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
        d = dict(d)
        if "clip" in d and "grad_clip" not in d:  # runs written before the rename
            d["grad_clip"] = d.pop("clip")
        return cls(**{k: v for k, v in d.items() if k in known})

    def differences(self, saved: dict) -> dict:
        """``{field: (saved, now)}`` for every field that differs from a saved config (except resumable ones)."""
        other = TrainConfig.from_dict(saved).to_dict()
        return {k: (other[k], v) for k, v in self.to_dict().items() if k not in RESUMABLE_CHANGES and other[k] != v}


def field_help() -> dict[str, str]:
    """Each config field's description: its trailing comment in this class's source."""
    import inspect
    import re

    out = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line)
        if m:
            text = re.sub(r"\s*#\s*noqa.*$", "", m.group(2)).strip()  # a linter's note is not the description
            out[m.group(1)] = text.replace("%", "%%")  # argparse formats help strings with %
    return out


def add_arguments(parser: argparse.ArgumentParser, skip=()) -> None:
    """One ``--option`` per config field, typed from the annotations and described by the field's comment (the
    parser's formatter appends the default)."""
    hints = typing.get_type_hints(TrainConfig)
    helps = field_help()
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        if typ is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=helps.get(f.name, " "))
            continue
        base = next((t for t in typing.get_args(typ) if t is not type(None)), typ)
        if f.name == "dataset":  # resolved in from_args (arrays or the default pair)
            parser.add_argument(flag, dest=f.name, type=base, default=argparse.SUPPRESS,
                                help=f"a pair: {', '.join(PAIR_DATASETS)} (arrays when --arrays is given, else "
                                     f"{DEFAULT_DATASET})")
            continue
        parser.add_argument(flag, dest=f.name, type=base, default=f.default, help=helps.get(f.name, " "))


def from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    d = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if d.get("dataset") is None:  # not given: the user's file when there is one, else the default pair
        d["dataset"] = "arrays" if d.get("arrays") else DEFAULT_DATASET
    d.update(overrides)
    return TrainConfig(**d).validate()
