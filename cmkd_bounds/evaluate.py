"""The evaluation pipeline: checkpoints or a features bundle -> features -> terms -> report.

Features bundle (``.npz``, loaded without pickles) with exactly these arrays:
``teacher_z`` (m, k), ``teacher_y`` (m,), ``student_z`` (n, k), ``student_y`` (n,),
``teacher_W`` (C, k), ``teacher_b`` (C,), ``student_W`` (C, k), ``student_b`` (C,); the heads are
``z @ W.T + b``. Optionally ``teacher_cal_z``/``teacher_cal_y``: held-out teacher data for the
temperature; without them a seeded half of the teacher samples is set aside for it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cmkd_bounds.atomic import output_folder
from cmkd_bounds.report import write_report
from cmkd_bounds.theorem import BoundReport, FeatureSet, assemble

BUNDLE_KEYS = ("teacher_z", "teacher_y", "student_z", "student_y", "teacher_W", "teacher_b", "student_W", "student_b")
OPTIONAL_KEYS = ("teacher_cal_z", "teacher_cal_y")


class BundleError(ValueError):
    """A features bundle that cannot be used; the message names the file and the problem."""


def load_bundle(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BundleError(f"{path}: the file is empty")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise BundleError(f"{path}: not an .npz archive (a single array?)")
            arrays = {k: z[k] for k in z.files}
    except BundleError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise BundleError(f"{path}: holds pickled objects, which are refused (they can run code)") from e
        raise BundleError(f"{path}: unreadable .npz ({e})") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise BundleError(f"{path}: truncated or corrupted .npz ({type(e).__name__}: {e})") from e
    missing = [k for k in BUNDLE_KEYS if k not in arrays]
    if missing:
        raise BundleError(f"{path}: missing array(s) {', '.join(missing)}; a bundle needs {', '.join(BUNDLE_KEYS)}")
    unknown = [k for k in arrays if k not in BUNDLE_KEYS + OPTIONAL_KEYS]
    if unknown:
        raise BundleError(f"{path}: unknown array(s) {', '.join(unknown)}")
    for k, v in arrays.items():
        if k.endswith("_y"):
            if not np.issubdtype(v.dtype, np.integer):
                raise BundleError(f"{path}: {k} must hold integer labels, got dtype {v.dtype}")
        elif not np.issubdtype(v.dtype, np.floating):
            raise BundleError(f"{path}: {k} must be a floating-point array, got dtype {v.dtype}")
    return arrays


def feature_set_from_bundle(arrays: dict[str, np.ndarray], seed: int = 0) -> FeatureSet:
    """A :class:`FeatureSet`; without calibration arrays, half the teacher samples are held out for it."""
    a = dict(arrays)
    if "teacher_cal_z" not in a:
        n = len(a["teacher_y"])
        if n < 4:
            raise BundleError(f"teacher side has {n} samples; need at least 4 (half fit the temperature)")
        perm = np.random.default_rng(seed).permutation(n)
        cal, keep = np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])
        a["teacher_cal_z"], a["teacher_cal_y"] = a["teacher_z"][cal], a["teacher_y"][cal]
        a["teacher_z"], a["teacher_y"] = a["teacher_z"][keep], a["teacher_y"][keep]
    try:
        return FeatureSet(**a)
    except ValueError as e:
        raise BundleError(f"bundle: {e}") from e


def evaluate_features(fs: FeatureSet, out: str | Path, *, cost="l2", eta=0.05, seed=0, overwrite=False,
                      title="Bound report", source: dict | None = None, extra_terms=(), extra_assumptions=(),
                      **kw) -> BoundReport:
    """Assemble the bounds and write the report folder ``out`` atomically.

    ``extra_terms`` are shown in the report beside the bound's own terms (not added to any bound).
    """
    with output_folder(out, overwrite) as tmp:
        report = assemble(fs, cost=cost, eta=eta, seed=seed, **kw)
        report.terms.extend(extra_terms)
        report.assumptions.extend(extra_assumptions)
        write_report(report, tmp, title=title, extra=source)
    return report


def evaluate_bundle(path, out, *, cost="l2", eta=0.05, seed=0, overwrite=False, **kw) -> BoundReport:
    fs = feature_set_from_bundle(load_bundle(path), seed)
    return evaluate_features(fs, out, cost=cost, eta=eta, seed=seed, overwrite=overwrite,
                             title=f"Bound report for {Path(path).name}", source={"bundle": str(path)}, **kw)

