r"""The label transport kernel ``kappa`` and the label-alignment term LA.

``kappa(y, z) = D_T(y | z) / D_S(y | z)``; for every ``z`` and ``g``,
``sum_y D_S(y|z) kappa(y, z) g(y) = sum_y D_T(y|z) g(y)``. With plug-in posteriors this identity
holds by construction for the unclipped ratio, so a numerical check of it measures nothing but the
cap ``kappa_cap``; it is therefore not reported.
``LA = E_{D_S}[ l(h_S(z), y) - kappa(y, z) l(h_T(z), y) ]``.

Estimators of ``kappa`` at a student sample ``(z, y)``:

- official (the authors' code): ``softmax(h_T(z))_y``, the teacher head on the student's feature;
  in ``[0, 1]``. It equals the ratio form only when ``D_S(y|z) = 1``.
- calibrated: the same with the teacher's logits divided by a temperature fitted on held-out
  teacher-modality data (:func:`fit_temperature`).
- ratio: ``D^_T(y|z) / D^_S(y|z)`` with a student-side posterior, capped at ``kappa_cap``.

Arrays: logits and posteriors ``(n, C)``, labels ``(n,)`` ints.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax


def softmax(logits) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, float), axis=1))


def cross_entropy(logits, y) -> np.ndarray:
    """Per-sample ``-log softmax(logits)_y``, shape ``(n,)``."""
    y = np.asarray(y)
    return -log_softmax(np.asarray(logits, float), axis=1)[np.arange(len(y)), y]


def fit_temperature(logits, y, bounds=(0.05, 20.0)) -> float:
    """Temperature ``T`` minimising the held-out NLL of ``softmax(logits / T)`` (Guo et al. 2017)."""
    logits, y = np.asarray(logits, float), np.asarray(y)
    if len(y) == 0:
        raise ValueError("temperature scaling needs held-out samples")
    res = minimize_scalar(lambda t: cross_entropy(logits / np.exp(t), y).mean(),
                          bounds=tuple(np.log(bounds)), method="bounded")
    return float(np.exp(res.x))


def kappa_official(teacher_logits_at_student, y, temperature: float = 1.0) -> np.ndarray:
    """``softmax(h_T(z_S) / T)_y`` per student sample; values in ``[0, 1]``."""
    y = np.asarray(y)
    return softmax(np.asarray(teacher_logits_at_student, float) / temperature)[np.arange(len(y)), y]


def kappa_ratio(p_teacher, p_student, y=None, kappa_cap: float = 10.0) -> np.ndarray:
    """``min(D_T(y|z) / D_S(y|z), kappa_cap)``: at the labels ``y`` ``(n,)``, or for all classes ``(n, C)``."""
    pt, ps = np.asarray(p_teacher, float), np.asarray(p_student, float)
    k = np.clip(pt / np.maximum(ps, 1e-300), 0.0, kappa_cap)
    return k if y is None else k[np.arange(len(y)), np.asarray(y)]


def label_alignment(student_loss, kappa, teacher_loss) -> float:
    """``mean(l_S - kappa * l_T)`` over student samples."""
    return float(np.mean(np.asarray(student_loss) - np.asarray(kappa) * np.asarray(teacher_loss)))
