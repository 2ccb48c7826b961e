"""The input of every bound: features and linear heads of a teacher and a student, checked once.

A :class:`FeatureSet` holds held-out features of both modalities in one space ``Z = R^k``, their
labels, and the two linear heads ``h(z) = z W^T + b``. It is what ``cmkd-bounds evaluate`` builds
from checkpoints or reads from a features bundle, and what :func:`cmkd_bounds.theorem.assemble`
takes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import log_softmax

from cmkd_bounds.wasserstein import check_cloud


@dataclass(frozen=True)
class FeatureSet:
    """Features and linear heads of a teacher and a student, checked on construction.

    ``teacher_z`` ``(m, k)``, ``teacher_y`` ``(m,)``, ``student_z`` ``(n, k)``, ``student_y`` ``(n,)``,
    ``teacher_W``/``student_W`` ``(C, k)``, ``teacher_b``/``student_b`` ``(C,)``. A student label ``-1`` marks an
    unlabelled item (the few-label setting, :mod:`cmkd_bounds.fewlabel`). Optional held-out teacher data
    ``teacher_cal_z``/``teacher_cal_y`` to fit the temperature, and held-out labelled student items
    ``student_val_z``/``student_val_y`` (the items that chose the student, within its label budget) for the
    ATC error predictor. Optional ``student_strata``
    ``(n,)``: the strata a class-stratified design drew the student's items by, when the loss's mean
    depends on more than the student label (paired data split by the teacher's label: the pair of
    labels); by default the student labels.
    """

    teacher_z: np.ndarray
    teacher_y: np.ndarray
    student_z: np.ndarray
    student_y: np.ndarray
    teacher_W: np.ndarray
    teacher_b: np.ndarray
    student_W: np.ndarray
    student_b: np.ndarray
    teacher_cal_z: np.ndarray | None = None
    teacher_cal_y: np.ndarray | None = None
    student_strata: np.ndarray | None = None
    student_val_z: np.ndarray | None = None
    student_val_y: np.ndarray | None = None

    def __post_init__(self):
        for role in ("teacher", "student"):
            z, y = getattr(self, f"{role}_z"), getattr(self, f"{role}_y")
            W, b = getattr(self, f"{role}_W"), getattr(self, f"{role}_b")
            check_cloud(z, f"{role}_z")
            if np.asarray(z).ndim != 2:
                raise ValueError(f"{role}_z must be a 2-D (samples, features) array, got shape {np.shape(z)}")
            _check_labels(y, len(z), f"{role}_y")
            W, b = np.asarray(W), np.asarray(b)
            if W.ndim != 2 or b.ndim != 1 or W.shape[0] != b.shape[0]:
                raise ValueError(f"{role} head: W must be (C, k) and b (C,), got {W.shape} and {b.shape}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ValueError(f"{role} head: weights contain NaN or Inf")
            if W.shape[1] != np.shape(z)[1]:
                raise ValueError(f"{role} head expects {W.shape[1]} features but {role}_z has {np.shape(z)[1]}")
        if np.shape(self.teacher_z)[1] != np.shape(self.student_z)[1]:
            raise ValueError(f"teacher and student features differ in size: {np.shape(self.teacher_z)[1]} vs "
                             f"{np.shape(self.student_z)[1]}; they must live in one space Z")
        if np.shape(self.teacher_W)[0] != np.shape(self.student_W)[0]:
            raise ValueError(f"the heads disagree on the number of classes: {np.shape(self.teacher_W)[0]} vs "
                             f"{np.shape(self.student_W)[0]}")
        C = self.num_classes
        for name in ("teacher_y", "student_y", "teacher_cal_y", "student_val_y"):
            y = getattr(self, name)
            low = -1 if name == "student_y" else 0  # -1: an unlabelled student item
            if y is not None and len(y) and (np.min(y) < low or np.max(y) >= C):
                raise ValueError(f"{name} has labels outside {low}..{C - 1} (the heads have {C} classes"
                                 + ("; -1 marks an unlabelled student item)" if low else ")"))
        if not (np.asarray(self.student_y) >= 0).any():
            raise ValueError("student_y: at least one student item must be labelled")
        if (self.student_val_z is None) != (self.student_val_y is None):
            raise ValueError("give both student_val_z and student_val_y, or neither")
        if self.student_val_z is not None:
            check_cloud(self.student_val_z, "student_val_z")
            _check_labels(self.student_val_y, len(self.student_val_z), "student_val_y")
        if (self.teacher_cal_z is None) != (self.teacher_cal_y is None):
            raise ValueError("give both teacher_cal_z and teacher_cal_y, or neither")
        if self.teacher_cal_z is not None:
            check_cloud(self.teacher_cal_z, "teacher_cal_z")
            _check_labels(self.teacher_cal_y, len(self.teacher_cal_z), "teacher_cal_y")
        if self.student_strata is not None:
            _check_labels(self.student_strata, len(self.student_y), "student_strata")

    @property
    def labelled(self) -> np.ndarray:
        """Indices of the labelled student items (label >= 0)."""
        return np.flatnonzero(np.asarray(self.student_y) >= 0)

    def restricted(self, items) -> FeatureSet:
        """The same features with the student's items restricted to ``items`` (indices)."""
        items = np.asarray(items, int)
        return replace(self, student_z=np.asarray(self.student_z)[items], student_y=np.asarray(self.student_y)[items],
                       student_strata=None if self.student_strata is None else np.asarray(self.student_strata)[items])

    @property
    def strata(self) -> np.ndarray:
        """The strata of the student's items under the stratified design (the student labels by default)."""
        return np.asarray(self.student_y if self.student_strata is None else self.student_strata).astype(int)

    @property
    def num_classes(self) -> int:
        return int(np.shape(self.teacher_W)[0])


def _check_labels(y, n, name):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")


def logits(z, W, b) -> np.ndarray:
    return np.asarray(z, float) @ np.asarray(W, float).T + np.asarray(b, float)


def entropy_of(logits_, temperature=1.0) -> np.ndarray:
    logp = log_softmax(np.asarray(logits_, float) / temperature, axis=1)
    return -(np.exp(logp) * logp).sum(1)
