"""Pairing protocols: which teacher item a training step shows beside each student item.

All functions are pure and seeded: they take labels (and, for ``paired``, the instance
correspondence) and return index arrays; the same arguments give the same result.

- :func:`paired`: the real instance correspondence (only where one exists).
- :func:`class_resample`: each student item's partner drawn at random from the teacher items of
  the same class, anew each epoch (what the official UCMKD code calls unpaired).
- :func:`permutation`: a global random permutation, labels not matched.
- :func:`fixed_class_pairing`: one class-matched draw kept for every epoch (a stand-in "pairing"
  for paired baselines on data that has none).
- :func:`disjoint`: per class, the shared events split into disjoint pools for the two modalities,
  a fraction ``ratio`` going to the student.
- :func:`imbalance`: per class, keep the fraction ``(1/f)^(rank/(C-1))`` of a pool, random rank order.
- :func:`domain_shift`: additive Gaussian input noise of a given relative level.
"""

from __future__ import annotations

import numpy as np
import torch

from training.names import PROTOCOLS

DISJOINT_PRESETS = (0.7, 0.5, 0.3)
IMBALANCE_PRESETS = (5, 10, 50)


class ProtocolError(ValueError):
    """A protocol asked of data that cannot support it."""


_FIXED_STREAM = 2**32 - 1  # a random stream no training epoch uses


def _rng(seed: int, epoch: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch)])


def paired(correspondence: np.ndarray | None) -> np.ndarray:
    """Teacher partner of each student item under the real instance correspondence."""
    if correspondence is None:
        raise ProtocolError(
            "protocol 'paired' needs an instance correspondence between the modalities, and this "
            "dataset has none (e.g. avmnist: MNIST images and spoken digits were never recorded "
            "together). Use class_resample, permutation or fixed_class instead."
        )
    return np.asarray(correspondence, dtype=np.int64).copy()


def _class_pools(y_student: np.ndarray, y_teacher: np.ndarray) -> dict[int, np.ndarray]:
    pools = {}
    for c in np.unique(y_student):
        pool = np.flatnonzero(y_teacher == c)
        if len(pool) == 0:
            raise ProtocolError(f"class {c} has student items but no teacher item to pair with")
        pools[int(c)] = pool
    return pools


def class_resample(y_student, y_teacher, seed: int, epoch: int = 0) -> np.ndarray:
    """For each student item, a teacher item of the same class drawn uniformly; new each epoch."""
    y_student, y_teacher = np.asarray(y_student), np.asarray(y_teacher)
    rng = _rng(seed, epoch)
    out = np.empty(len(y_student), dtype=np.int64)
    for c, pool in _class_pools(y_student, y_teacher).items():
        mask = y_student == c
        out[mask] = rng.choice(pool, size=int(mask.sum()), replace=True)
    return out


def fixed_class_pairing(y_student, y_teacher, seed: int) -> np.ndarray:
    """One class-matched draw, the same in every epoch (the paired reference on unpaired data)."""
    return class_resample(y_student, y_teacher, seed, epoch=_FIXED_STREAM)


def permutation(n_student: int, n_teacher: int, seed: int, epoch: int = 0) -> np.ndarray:
    """Teacher partner ``perm[i mod n_teacher]`` of student item ``i``: labels are not matched."""
    rng = _rng(seed, epoch)
    reps = -(-n_student // n_teacher)
    return np.concatenate([rng.permutation(n_teacher) for _ in range(reps)])[:n_student].astype(np.int64)


def partners(protocol: str, y_student, y_teacher, seed: int, epoch: int, correspondence=None) -> np.ndarray:
    """Dispatch by name; the index array of teacher partners, one per student item."""
    if protocol == "class_resample":
        return class_resample(y_student, y_teacher, seed, epoch)
    if protocol == "permutation":
        return permutation(len(y_student), len(y_teacher), seed, epoch)
    if protocol == "paired":
        return paired(correspondence)
    if protocol == "fixed_class":
        return fixed_class_pairing(y_student, y_teacher, seed)
    raise ProtocolError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def disjoint(y, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split shared events per class into a student pool (fraction ``ratio``) and a teacher pool.

    ``y`` are the labels of events seen in both modalities (paired data); the two pools share no
    event, so no student item has its own teacher view. Returns ``(student_pool, teacher_pool)``.
    """
    if not 0 < ratio < 1:
        raise ProtocolError(f"disjoint ratio must lie in (0, 1), got {ratio}")
    y = np.asarray(y)
    rng = _rng(seed)
    s, t = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(ratio * len(idx)))
        s.append(idx[:k])
        t.append(idx[k:])
    return np.sort(np.concatenate(s)), np.sort(np.concatenate(t))


def imbalance_fractions(num_classes: int, factor: float, seed: int) -> np.ndarray:
    """Kept fraction per class: ``(1/f)^(rank/(C-1))`` with the ranks in random order."""
    if factor < 1:
        raise ProtocolError(f"imbalance factor must be >= 1, got {factor}")
    rank = _rng(seed).permutation(num_classes)
    return (1.0 / factor) ** (rank / max(num_classes - 1, 1))


def imbalance(y, factor: float, seed: int, num_classes: int | None = None) -> np.ndarray:
    """Indices kept from a pool with labels ``y``: per class ``round(frac_c * n_c)``, at least one."""
    y = np.asarray(y)
    C = num_classes or int(y.max()) + 1
    frac = imbalance_fractions(C, factor, seed)
    rng = _rng(seed, 1)
    keep = []
    for c in range(C):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx):
            keep.append(idx[: max(1, int(round(frac[c] * len(idx))))])
    return np.sort(np.concatenate(keep))


def domain_shift(x: torch.Tensor, level: float, seed: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``x + level * std(x) * eps`` with ``eps ~ N(0, 1)``; padded frames (beyond ``lengths``) stay 0."""
    if level < 0:
        raise ProtocolError(f"domain-shift level must be >= 0, got {level}")
    if level == 0:
        return x
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype) * level * x.std()
    if lengths is not None:
        valid = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        noise = noise * valid.reshape(*valid.shape, *([1] * (x.dim() - 2)))
    return x + noise
