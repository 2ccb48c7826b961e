"""Features bundles: a ``.npz`` that carries everything the bounds need from models trained anywhere.

A bundle holds exactly these arrays: ``teacher_z`` (m, k), ``teacher_y`` (m,), ``student_z`` (n, k),
``student_y`` (n,), ``teacher_W`` (C, k), ``teacher_b`` (C,), ``student_W`` (C, k), ``student_b`` (C,);
the heads are ``z @ W.T + b``. Optionally ``teacher_cal_z``/``teacher_cal_y``: held-out teacher data
for the temperature of the calibrated posterior (without them the temperature is fitted on all
teacher samples given, and the report says so; no sample is ever set aside), and ``student_strata``
(n,): the strata of a class-stratified draw of the student's items (``--sampling stratified``; by
default the student labels); ``student_val_z``/``student_val_y``: labelled student items held out from
the test items (for the ATC error predictor). A student label ``-1`` marks an unlabelled item: the report
is then the few-label one (README, "Certifying a student with few labels"). Loaded without pickles;
anything else in the file is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmkd_bounds.atomic import read_npz

BUNDLE_KEYS = ("teacher_z", "teacher_y", "student_z", "student_y", "teacher_W", "teacher_b", "student_W", "student_b")
OPTIONAL_KEYS = ("teacher_cal_z", "teacher_cal_y", "student_strata", "student_val_z", "student_val_y")


class BundleError(ValueError):
    """A features bundle that cannot be used; the message names the file and the problem."""


def load_bundle(path: str | Path) -> dict[str, np.ndarray]:
    arrays = read_npz(path, "a features bundle", BundleError)
    missing = [k for k in BUNDLE_KEYS if k not in arrays]
    if missing:
        raise BundleError(f"{path}: missing array(s) {', '.join(missing)}; a bundle needs {', '.join(BUNDLE_KEYS)}")
    unknown = [k for k in arrays if k not in BUNDLE_KEYS + OPTIONAL_KEYS]
    if unknown:
        raise BundleError(f"{path}: unknown array(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(BUNDLE_KEYS + OPTIONAL_KEYS)}")
    for k, v in arrays.items():
        if k.endswith(("_y", "_strata")):
            if not np.issubdtype(v.dtype, np.integer):
                raise BundleError(f"{path}: {k} must hold integer labels, got dtype {v.dtype}")
        elif not np.issubdtype(v.dtype, np.floating):
            raise BundleError(f"{path}: {k} must be a floating-point array, got dtype {v.dtype}")
    return arrays


def feature_set_from_bundle(arrays: dict[str, np.ndarray]):
    """A :class:`~cmkd_bounds.features.FeatureSet` of every array given (a :class:`BundleError` names what is
    wrong). Imported here, so reading and checking a bundle needs NumPy only."""
    from cmkd_bounds.features import FeatureSet

    try:
        return FeatureSet(**arrays)
    except ValueError as e:
        raise BundleError(f"bundle: {e}") from e


def save_bundle(path: str | Path, fs) -> Path:
    """Write ``fs`` as a bundle (atomically)."""
    import io

    from cmkd_bounds.atomic import write_bytes

    arrays = {k: getattr(fs, k) for k in BUNDLE_KEYS + OPTIONAL_KEYS if getattr(fs, k) is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())
