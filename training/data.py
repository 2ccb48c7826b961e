"""Data of one modality, pairs of modalities, and their splits: the types every loader returns.

A :class:`ModalityData` holds inputs ``x`` (float32 tensor ``(N, *input_shape)``, sequences
right-padded with zeros and their true ``lengths`` kept), labels ``y`` (int64 ``(N,)``), the modality
name, class names and input shape. :meth:`ModalityData.split` gives deterministic,
class-stratified train/val/test splits from a seed.

A :class:`CrossModalPair` holds a teacher and a student modality over the same classes and, where
one exists, the instance correspondence between them (``correspondence[i]`` is the teacher item
seen with student item ``i``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


class DatasetError(ValueError):
    """A dataset that cannot be loaded or used as asked; the message says what to do."""


@dataclass(frozen=True)
class ModalityData:
    """Samples of one modality.

    Attributes
    ----------
    name : dataset identifier (``"mnist"``, ``"fsdd"``, ...).
    modality : ``"image"``, ``"audio"``, ``"vector"``, ``"video"`` ...
    x : float32 tensor ``(N, *input_shape)``; sequences are right-padded with zeros.
    y : int64 tensor ``(N,)`` with values in ``0..C-1``.
    class_names : ``C`` names.
    lengths : int64 tensor ``(N,)`` of true sequence lengths, or ``None`` for fixed-size inputs.
    index : int64 tensor ``(N,)``, each sample's position in the full dataset (survives splits).
    """

    name: str
    modality: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    lengths: torch.Tensor | None = None
    index: torch.Tensor | None = None

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0]:
            raise DatasetError(f"{self.name}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        if self.y.numel() and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.class_names)):
            raise DatasetError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}, "
                f"found {int(self.y.min())}..{int(self.y.max())}"
            )
        if self.index is None:
            object.__setattr__(self, "index", torch.arange(self.x.shape[0]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=self.num_classes)

    def subset(self, idx) -> ModalityData:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            lengths=None if self.lengths is None else self.lengths[idx],
            index=self.index[idx],
        )

    def split(self, seed: int = 0, fractions=SPLIT_FRACTIONS) -> dict[str, ModalityData]:
        """Class-stratified ``train``/``val``/``test`` splits, a pure function of ``seed``."""
        parts = stratified_split(self.y.numpy(), seed, fractions)
        return {k: self.subset(v) for k, v in parts.items()}


def stratified_split(y: np.ndarray, seed: int, fractions=SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Indices of a class-stratified three-way split; each class is cut by ``fractions``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    out = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out["train"].append(idx[:n_train])
        out["val"].append(idx[n_train : n_train + n_val])
        out["test"].append(idx[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)) if v else np.zeros(0, int) for k, v in out.items()}


@dataclass(frozen=True)
class CrossModalPair:
    """A teacher modality and a student modality over the same ``C`` classes.

    ``correspondence`` is ``None`` when no instance pairing exists (the default benchmark), else an
    int64 array ``(N_student,)`` giving for each student item its teacher item. ``splits``
    optionally fixes the train/val/test indices (``{"teacher": {"train": idx, ...}, "student": ...}``;
    for paired data the teacher's alone, the student items following their partners); ``info``
    carries facts worth recording with a run (the label agreement of the pairs, what was dropped).
    """

    name: str
    teacher: ModalityData
    student: ModalityData
    correspondence: np.ndarray | None = None
    splits: dict | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.teacher.num_classes != self.student.num_classes:
            raise DatasetError(
                f"{self.name}: teacher has {self.teacher.num_classes} classes, "
                f"student {self.student.num_classes}; cross-modal distillation needs shared classes"
            )

    @property
    def paired(self) -> bool:
        return self.correspondence is not None

    def split(self, seed: int = 0, fractions=SPLIT_FRACTIONS) -> dict[str, CrossModalPair]:
        """Per-split pairs. Unpaired: each modality is split on its own. Paired: the teacher is
        split and every student item follows its teacher item, so pairs never cross splits.
        Splits given with the data (``self.splits``) are used as they are."""
        given = self.splits or {}
        t_parts = given.get("teacher") or stratified_split(self.teacher.y.numpy(), seed, fractions)
        if self.correspondence is None:
            s_parts = given.get("student") or stratified_split(self.student.y.numpy(), seed + 7919, fractions)
            return {
                k: CrossModalPair(self.name, self.teacher.subset(t_parts[k]), self.student.subset(s_parts[k]),
                                  info=self.info)
                for k in t_parts
            }
        out = {}
        for k, t_idx in t_parts.items():
            pos = np.full(len(self.teacher), -1)
            pos[t_idx] = np.arange(len(t_idx))
            s_idx = np.flatnonzero(pos[self.correspondence] >= 0)
            out[k] = CrossModalPair(
                self.name, self.teacher.subset(t_idx), self.student.subset(s_idx),
                pos[self.correspondence[s_idx]].astype(np.int64), info=self.info,
            )
        return out

    def swapped(self) -> CrossModalPair:
        """The same pair with the roles of teacher and student exchanged."""
        corr, splits = None, None
        if self.correspondence is not None:
            if len(np.unique(self.correspondence)) != len(self.correspondence) or len(
                self.correspondence
            ) != len(self.teacher):
                raise DatasetError(f"{self.name}: the correspondence does not pair every teacher item with exactly "
                                   "one student item, so the roles cannot be swapped")
            corr = np.argsort(self.correspondence)
            if self.splits:  # the student items' splits follow their partners
                inv = np.asarray(self.correspondence)
                pos = {k: np.sort(np.flatnonzero(np.isin(inv, v))) for k, v in self.splits["teacher"].items()}
                splits = {"teacher": pos}
        elif self.splits:
            splits = {"teacher": self.splits["student"], "student": self.splits["teacher"]}
        return CrossModalPair(self.name + "-swapped", self.student, self.teacher, corr, splits, self.info)
