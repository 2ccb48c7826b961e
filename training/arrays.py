"""Bring your own data: a cross-modal pair from one ``.npz``, checked key by key.

Keys (anything else is refused, so a misspelt key cannot silently change the meaning):

==========================  ===============  ==================================================
key                         shape            meaning
==========================  ===============  ==================================================
``teacher_x``               ``(m, ...)``     teacher-modality inputs (finite numbers)
``teacher_y``               ``(m,)``         integer labels in ``0..C-1``
``student_x``               ``(n, ...)``     student-modality inputs
``student_y``               ``(n,)``         integer labels in ``0..C-1``
``teacher_lengths``         ``(m,)``         optional: true lengths of right-padded sequences
``student_lengths``         ``(n,)``         optional: the same for the student
``correspondence``          ``(n,)``         optional: the teacher item seen with each student item
                                             (paired data); one-to-one
``class_names``             ``(C,)``         optional: names; ``C`` is then their number
``teacher_train`` ...       index arrays     optional: ``teacher_train``, ``teacher_val``,
``student_test``                             ``teacher_test`` (and the same for the student when
                                             the data are unpaired): your own splits
==========================  ===============  ==================================================

Labels must be ``0..C-1``: without ``class_names``, every class from 0 to the largest label must
occur (labels ``1..10`` are refused rather than becoming 11 classes); with ``class_names``, ``C`` is
their number. A correspondence is validated on load: indices in range, no teacher item used twice,
and the fraction of pairs whose labels agree is reported; below 100 % a warning, below 90 % a
refusal unless ``allow_label_disagreement``. Feature scales that differ by more than three orders
of magnitude get a warning (``--standardize`` fits a per-feature standardisation on the training
split).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from cmkd_bounds.atomic import read_npz
from training.data import CrossModalPair, DatasetError, ModalityData

REQUIRED = ("teacher_x", "teacher_y", "student_x", "student_y")
SPLIT_KEYS = tuple(f"{r}_{s}" for r in ("teacher", "student") for s in ("train", "val", "test"))
OPTIONAL = ("teacher_lengths", "student_lengths", "correspondence", "class_names", *SPLIT_KEYS)
AGREEMENT_REFUSED_BELOW = 0.9


def _labels(arrays) -> tuple[int, tuple[str, ...]]:
    for k in ("teacher_y", "student_y"):
        v = arrays[k]
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer):
            raise DatasetError(f"arrays: {k} must be a 1-D integer array, got {v.dtype} {v.shape}")
        if len(v) == 0:
            raise DatasetError(f"arrays: {k} is empty")
    both = np.concatenate([arrays["teacher_y"], arrays["student_y"]])
    if both.min() < 0:
        raise DatasetError(f"arrays: labels must be 0..C-1, found {int(both.min())}")
    if "class_names" in arrays:
        names = tuple(str(s) for s in np.asarray(arrays["class_names"]).reshape(-1))
        if both.max() >= len(names):
            raise DatasetError(f"arrays: {len(names)} class_names but labels up to {int(both.max())}; labels must "
                               f"be 0..{len(names) - 1}")
        return len(names), names
    C = int(both.max()) + 1
    absent = sorted(set(range(C)) - set(np.unique(both).tolist()))
    if absent:
        raise DatasetError(f"arrays: labels must be 0..C-1, but class(es) {absent[:5]} never occur among labels "
                           f"{int(both.min())}..{int(both.max())} (labels 1..10 would silently become 11 classes): "
                           "remap them to 0..C-1, or give class_names to fix C explicitly")
    return C, tuple(str(c) for c in range(C))


def _modality(arrays, role: str, names) -> ModalityData:
    x = arrays[f"{role}_x"]
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"arrays: {role}_x must be an (items, features...) array of numbers, got {x.dtype} "
                           f"{x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x.reshape(len(x), -1))).any(1).sum())
        raise DatasetError(f"arrays: {role}_x has NaN or Inf in {bad} item(s); every input must be finite")
    if len(x) != len(arrays[f"{role}_y"]):
        raise DatasetError(f"arrays: {role}_x has {len(x)} items but {role}_y {len(arrays[f'{role}_y'])} labels")
    lengths = arrays.get(f"{role}_lengths")
    if lengths is not None:
        lengths = np.asarray(lengths)
        if x.ndim < 3 or lengths.shape != (len(x),) or not np.issubdtype(lengths.dtype, np.integer) or \
                lengths.min() < 1 or lengths.max() > x.shape[1]:
            raise DatasetError(f"arrays: {role}_lengths must be ({len(x)},) integers in 1..{x.shape[1]} for padded "
                               f"sequences {role}_x (items, time, features)")
    flat = x.reshape(len(x), -1).astype(float)
    std = flat.std(0)
    std = std[std > 0]
    if len(std) > 1 and std.max() / std.min() > 1e3:
        warnings.warn(f"arrays: the features of {role}_x differ in scale by {std.max() / std.min():.0e} (std "
                      f"{std.min():.3g} to {std.max():.3g}); consider --standardize", UserWarning, stacklevel=3)
    return ModalityData(f"arrays-{role}", "vector" if x.ndim == 2 else "array", torch.tensor(x, dtype=torch.float32),
                        torch.tensor(arrays[f"{role}_y"], dtype=torch.long), names,
                        lengths=None if lengths is None else torch.tensor(lengths, dtype=torch.long))


def check_correspondence(corr, y_teacher, y_student, allow_label_disagreement: bool, where: str) -> dict:
    """Validate a correspondence (student item -> teacher item); return facts to record."""
    corr = np.asarray(corr)
    if corr.shape != (len(y_student),) or not np.issubdtype(corr.dtype, np.integer):
        raise DatasetError(f"{where}: correspondence must give one integer teacher index per student item "
                           f"({len(y_student)}), got {corr.dtype} {corr.shape}")
    if len(corr) and (corr.min() < 0 or corr.max() >= len(y_teacher)):
        raise DatasetError(f"{where}: correspondence indices must lie in 0..{len(y_teacher) - 1}")
    dup = len(corr) - len(np.unique(corr))
    if dup:
        raise DatasetError(f"{where}: the correspondence uses {dup} teacher item(s) more than once; a pairing must "
                           "be one-to-one")
    agree = float((np.asarray(y_teacher)[corr] == np.asarray(y_student)).mean()) if len(corr) else 1.0
    if agree < AGREEMENT_REFUSED_BELOW and not allow_label_disagreement:
        raise DatasetError(f"{where}: only {100 * agree:.1f} % of the paired items have the same label (a shuffled or "
                           f"wrong correspondence?); refused below {100 * AGREEMENT_REFUSED_BELOW:.0f} % unless "
                           "--allow-label-disagreement")
    if agree < 1.0:
        warnings.warn(f"{where}: {100 * agree:.1f} % of the paired items have the same label", UserWarning,
                      stacklevel=3)
    return {"pairs": len(corr), "label_agreement": agree}


def _splits(arrays, m: int, n: int, paired: bool) -> dict | None:
    given = [k for k in SPLIT_KEYS if k in arrays]
    if not given:
        return None
    out = {}
    for role, size in (("teacher", m), ("student", n)):
        keys = [f"{role}_{s}" for s in ("train", "val", "test")]
        have = [k for k in keys if k in arrays]
        if not have:
            continue
        if paired and role == "student":
            raise DatasetError("arrays: with a correspondence give teacher_train/val/test only; each student item "
                               "follows its paired teacher item")
        if len(have) != 3:
            raise DatasetError(f"arrays: give all of {', '.join(keys)} or none")
        parts = {}
        for k in keys:
            v = np.asarray(arrays[k])
            if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer) or (len(v) and (v.min() < 0 or v.max() >= size)):
                raise DatasetError(f"arrays: {k} must be a 1-D integer index array into 0..{size - 1}")
            parts[k.split("_")[1]] = np.sort(v.astype(np.int64))
        allidx = np.concatenate(list(parts.values()))
        if len(np.unique(allidx)) != len(allidx):
            raise DatasetError(f"arrays: the {role} splits overlap (an item is in two splits, or twice in one)")
        out[role] = parts
    if not paired and len(out) != 2:
        raise DatasetError("arrays: unpaired data need splits for both modalities (teacher_* and student_*), or none")
    return out


def load_arrays(path: str | os.PathLike, allow_label_disagreement: bool = False) -> CrossModalPair:
    """A user's own cross-modal data from one ``.npz`` (module docstring for the keys and the rules)."""
    path = Path(path)
    arrays = read_npz(path, "an arrays file", DatasetError)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise DatasetError(f"arrays: {path} lacks {', '.join(missing)}")
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise DatasetError(f"arrays: {path} has unknown array(s) {', '.join(unknown)}; allowed: "
                           f"{', '.join(REQUIRED + OPTIONAL)} (see README, 'Bring your own data')")
    C, names = _labels(arrays)
    teacher, student = _modality(arrays, "teacher", names), _modality(arrays, "student", names)
    corr, info = None, {"file": str(path.resolve()), "classes": C}
    if "correspondence" in arrays:
        info.update(check_correspondence(arrays["correspondence"], arrays["teacher_y"], arrays["student_y"],
                                         allow_label_disagreement, f"arrays {path.name}"))
        corr = np.asarray(arrays["correspondence"], dtype=np.int64)
    splits = _splits(arrays, len(teacher), len(student), corr is not None)
    return CrossModalPair("arrays", teacher, student, corr, splits, info)


def describe(path: str | os.PathLike) -> list[str]:
    """Lines describing a user file as the tool will read it (``cmkd-bounds datasets --arrays FILE``)."""
    pair = load_arrays(path, allow_label_disagreement=True)
    lines = [f"{path}: {pair.teacher.num_classes} classes ({', '.join(pair.teacher.class_names[:10])}"
             f"{', ...' if pair.teacher.num_classes > 10 else ''})"]
    for role in ("teacher", "student"):
        m = getattr(pair, role)
        counts = m.class_counts()
        lines.append(f"  {role}: {len(m)} items, input shape {'x'.join(map(str, m.input_shape))}"
                     f"{', padded sequences with lengths' if m.lengths is not None else ''}; per class "
                     f"{counts.min()}..{counts.max()}; feature std {float(m.x.std()):.3g}")
    if pair.paired:
        agree = 100 * pair.info["label_agreement"]
        lines.append(f"  paired: {pair.info['pairs']} pairs, label agreement {agree:.1f} %")
    else:
        lines.append("  unpaired (no correspondence)")
    given = "given in the file" if pair.splits else "drawn from --split-seed (70/15/15, stratified)"
    lines.append(f"  splits: {given}")
    return lines
