r"""Few labels, many unlabelled items: direct and prediction-powered certificates, and label-free error predictors.

**The pool.** The student's evaluation pool holds ``n`` items; ``K`` of them are labelled, drawn uniformly at
random without replacement (by the tool, seeded, or by the user: an assumption then). The other labels are
never used. Two targets:

- the *pool* clipped risk ``R_pool = (1/n) sum_{i <= n} min(l_i, c)`` (and the pool 0-1 error). Its
  certificates are design-based: the only randomness is the uniform draw of the labelled items, so they
  hold whatever the pool is;
- the *population* clipped risk. Its certificates lift a pool certificate ``U`` (computed at ``eta / 2``) by
  the kl step over the ``n`` pool items: ``R <= kl_upper(U, n, eta / 2)``. On the event ``R_pool <= U`` (the
  draw) and ``R <= kl_upper(R_pool, n, eta / 2)`` (the pool: i.i.d., or independent given labels under the
  stratified design, where the target is the risk at the pool's class frequencies), monotonicity of
  ``kl_upper`` gives it; a union bound makes the pair ``1 - eta``. No label of the pool enters the second
  event's bound, only its size.

**Direct certificates** on the ``K`` labelled items: betting without replacement from the pool
(:func:`cmkd_bounds.concentration.betting_upper` with ``population = n``), Hoeffding's kl form (valid
without replacement: Hoeffding 1963, Theorem 4), and for the 0-1 error the exact hypergeometric limit
(:func:`cmkd_bounds.concentration.hypergeometric_upper`) and betting.

**Prediction-powered certificates** (Angelopoulos et al., Science 2023; PPI++, Angelopoulos, Duchi & Zrnic
2023). For any label-free ``g`` (a function of the item's features only),
``R_pool = mean_pool(g) + mean_pool(l - g)``: the first part is *known exactly* (``g`` is computed on every pool
item), the second is certified by betting on the ``K`` labelled rectifiers ``l - g``, which lie in
``[-G, c]`` when ``g`` lies in ``[0, G]``. PPI++ uses ``lambda g``; ``lambda`` is taken from the fixed grid
:data:`LAMBDA_GRID` with a union bound (``eta / |grid|`` each, the smallest bound kept), chosen before the
data. Surrogates (:func:`surrogates`): the theory's ``f`` (the teacher's expected loss under its calibrated
posterior at the student's feature: the paper's decomposition ``R = E f + LA``), the student's predictive
entropy, and for the 0-1 error ``1 - max p`` of the teacher head and of the student head. A surrogate that
predicts the loss shrinks the rectifier's variance; one that does not only widens its range: the
certificate stays valid either way (``docs/theory.md`` §10 says why it rarely beats the direct one).

**Label-free error predictors** (estimates, never certificates): the student's average confidence (DoC,
Guillory et al. 2021), ATC (Garg et al., ICLR 2022: the confidence threshold at which the labelled items'
error is matched, applied to the pool), and COT (Lu et al., NeurIPS 2023: the transport cost between the
student's softmax outputs and the teacher's label marginal, cost ``1 - p_y``).

Shapes: ``n`` pool items, ``K`` labelled, ``C`` classes. References: Waudby-Smith & Ramdas (2020, 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax

from cmkd_bounds import concentration as cc
from cmkd_bounds import names
from cmkd_bounds.kinds import (
    CERTIFIED,
    ESTIMATED,
    POOL_CLIPPED_RISK,
    POOL_ERROR01,
    POPULATION_CLIPPED_RISK,
    POPULATION_ERROR01,
    Term,
)

LAMBDA_GRID = (0.25, 0.5, 0.75, 1.0)
CE_SURROGATES = (names.SURROGATE_THEORY_F, names.SURROGATE_STUDENT_ENTROPY)
ERROR_SURROGATES = (names.SURROGATE_TEACHER_CONFIDENCE, names.SURROGATE_STUDENT_CONFIDENCE)


@dataclass(frozen=True, kw_only=True)
class Pool:
    """The student's evaluation pool and its labelled items.

    ``labelled`` ``(K,)`` indices into the ``n`` pool items; ``loss`` ``(K,)`` their clipped losses in ``[0, clip]``
    and ``error`` ``(K,)`` their 0/1 errors; ``surrogates`` name -> ``(n,)`` label-free values on every item and
    ``ranges`` name -> the upper end ``G`` of that surrogate's range ``[0, G]``.
    """

    n: int
    labelled: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    surrogates: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)
    clip: float = 5.0

    def __post_init__(self):
        K = len(self.labelled)
        if not 1 <= K <= self.n or len(np.unique(self.labelled)) != K:
            raise ValueError(f"the labelled items must be 1 to {self.n} distinct pool items, got {K}")
        if len(self.loss) != K or len(self.error) != K:
            raise ValueError("one loss and one error per labelled item")
        for k, g in self.surrogates.items():
            if len(g) != self.n or np.min(g) < 0 or np.max(g) > self.ranges[k] * (1 + 1e-12):
                raise ValueError(f"surrogate {k}: {self.n} values in [0, {self.ranges[k]}] expected")

    @property
    def K(self) -> int:
        return len(self.labelled)


def surrogates(teacher_logits, student_logits, temperature: float, clip: float) -> tuple[dict, dict]:
    """The label-free surrogates of every pool item and the upper ends of their ranges.

    ``teacher_logits`` are the teacher head at the student's features ``(n, C)``, ``student_logits`` the student
    head ``(n, C)``; the teacher's posterior is ``softmax(. / temperature)``. CE surrogates are clipped at ``clip``
    like the loss they predict.
    """
    C = np.shape(teacher_logits)[1]
    lpT = log_softmax(np.asarray(teacher_logits, float) / temperature, axis=1)
    lpS = log_softmax(np.asarray(student_logits, float), axis=1)
    top = min(math.log(C), clip)
    values = {
        names.SURROGATE_THEORY_F: np.minimum(-(np.exp(lpT) * lpT).sum(1), clip),
        names.SURROGATE_STUDENT_ENTROPY: np.minimum(-(np.exp(lpS) * lpS).sum(1), clip),
        names.SURROGATE_TEACHER_CONFIDENCE: 1 - np.exp(lpT.max(1)),
        names.SURROGATE_STUDENT_CONFIDENCE: 1 - np.exp(lpS.max(1)),
    }
    values = {k: np.clip(v, 0.0, None) for k, v in values.items()}
    ranges = {names.SURROGATE_THEORY_F: top, names.SURROGATE_STUDENT_ENTROPY: top,
              names.SURROGATE_TEACHER_CONFIDENCE: 1 - 1 / C, names.SURROGATE_STUDENT_CONFIDENCE: 1 - 1 / C}
    return values, ranges


def draw_labelled(labelled, K: int, seed: int) -> np.ndarray:
    """``K`` of the items ``labelled`` (indices), drawn uniformly at random without replacement (seeded)."""
    labelled = np.asarray(labelled, int)
    if not 1 <= K <= len(labelled):
        raise ValueError(f"--labelled {K}: the student has {len(labelled)} labelled items to draw from")
    return np.sort(np.random.default_rng([seed, 19]).choice(labelled, K, replace=False))


# ----------------------------------------------------------------------------- pool certificates
def _rectified_upper(r, lo: float, hi: float, n: int, eta: float, seed: int) -> float:
    """Betting bound on the pool mean of values in ``[lo, hi]`` from a uniform sample without replacement."""
    return lo + cc.betting_upper(np.clip(np.asarray(r, float) - lo, 0, hi - lo), eta, hi - lo, population=n,
                                 seed=seed)


def _ppi(values, surrogate, G: float, top: float, pool: Pool, eta: float, lam: float, seed: int) -> float:
    """``lam mean_pool(g) + U(l - lam g)``: the pool part exact, the rectifier certified at ``eta``."""
    r = values - lam * surrogate[pool.labelled]
    return lam * float(surrogate.mean()) + _rectified_upper(r, -lam * G, top, pool.n, eta, seed)


def pool_routes(pool: Pool, seed: int = 0) -> dict[str, tuple]:
    """Every few-label route: name -> (function of eta giving the pool bound, target, note). Routes are fixed before
    any label is looked at."""
    c, n, K = pool.clip, pool.n, pool.K
    loss, err = np.asarray(pool.loss, float), np.asarray(pool.error, float)
    k = int(err.sum())
    routes = {
        names.FEW_BETTING: (lambda e: cc.betting_upper(loss, e, c, population=n, seed=seed), POOL_CLIPPED_RISK,
                            f"betting on the {K} labelled clipped losses, sampled without replacement from {n}"),
        names.FEW_KL: (lambda e: cc.kl_upper(float(loss.mean()), K, e, c), POOL_CLIPPED_RISK,
                       f"Hoeffding's kl form on the {K} labelled clipped losses (valid without replacement)"),
        names.FEW01_HYPERGEOMETRIC: (lambda e: cc.hypergeometric_upper(k, K, n, e), POOL_ERROR01,
                                     f"exact hypergeometric limit from {k} errors in {K} of {n}"),
        names.FEW01_BETTING: (lambda e: cc.betting_upper(err, e, 1.0, population=n, seed=seed), POOL_ERROR01,
                              f"betting on the {K} labelled 0/1 errors, without replacement from {n}"),
    }
    for s, values, top, target in [*((s, loss, c, POOL_CLIPPED_RISK) for s in CE_SURROGATES),
                                   *((s, err, 1.0, POOL_ERROR01) for s in ERROR_SURROGATES)]:
        if s not in pool.surrogates:
            continue
        g, G = np.asarray(pool.surrogates[s], float), float(pool.ranges[s])
        routes[names.few_ppi(s)] = (
            lambda e, g=g, G=G, v=values, t=top: _ppi(v, g, G, t, pool, e, 1.0, seed), target,
            f"prediction-powered: mean of {s} over the {n} pool items (exact) + betting on the {K} rectifiers")
        routes[names.few_ppipp(s)] = (
            lambda e, g=g, G=G, v=values, t=top: min(_ppi(v, g, G, t, pool, e / len(LAMBDA_GRID), lam, seed)
                                                     for lam in LAMBDA_GRID), target,
            f"PPI++: lambda {s}, lambda from the fixed grid {LAMBDA_GRID} with a union bound (eta / "
            f"{len(LAMBDA_GRID)} each), the smallest kept")
    return routes


def few_label_certificates(pool: Pool, eta: float, sampling: str, seed: int = 0) -> list[Term]:
    """Every route twice: its pool certificate at ``eta``, and the population certificate that lifts its pool bound
    at ``eta / 2`` by the kl step over the ``n`` pool items at ``eta / 2`` (module docstring)."""
    out = []
    for name, (bound, target, note) in pool_routes(pool, seed).items():
        clipped = target == POOL_CLIPPED_RISK
        top = pool.clip if clipped else 1.0
        value = min(bound(eta), top)
        out.append(Term(name=names.pool_form(name), value=value, kind=CERTIFIED,
                        note=f"{note}; covers the pool's {'clipped risk' if clipped else '0-1 error'} (the only "
                             "randomness: the uniform draw of the labelled items)",
                        diagnostics={"K": pool.K, "n": pool.n, "eta": eta}, target=target))
        half = min(bound(eta / 2), top)
        lifted = cc.kl_upper(half, pool.n, eta / 2, top)
        out.append(Term(name=name, value=lifted, kind=CERTIFIED,
                        note=f"{note}, at eta / 2 = {half:.4g} on the pool, lifted to the population by the kl step "
                             f"over the {pool.n} pool items at eta / 2 ({sampling} pool)",
                        diagnostics={"K": pool.K, "n": pool.n, "pool_bound_at_half_eta": half, "eta": eta},
                        target=POPULATION_CLIPPED_RISK if clipped else POPULATION_ERROR01))
    return out


# ----------------------------------------------------------------------------- label-free error predictors
def average_confidence(student_logits) -> float:
    """DoC: the predicted error ``1 - mean max p_S`` (a calibrated student's expected error)."""
    return float(1 - np.exp(log_softmax(np.asarray(student_logits, float), axis=1).max(1)).mean())


def atc(score_labelled, correct_labelled, score_pool) -> tuple[float, float]:
    """ATC: the threshold ``t`` at which the labelled items' fraction below ``t`` equals their error, and the pool's
    fraction of scores below ``t`` (the predicted error). Scores are ``max p`` (higher = more confident)."""
    s = np.sort(np.asarray(score_labelled, float))
    err = 1 - float(np.mean(correct_labelled))
    k = int(round(err * len(s)))
    t = -math.inf if k == 0 else (s[k - 1] + s[k]) / 2 if k < len(s) else math.inf
    return float(t), float(np.mean(np.asarray(score_pool, float) < t))


def cot(student_logits, label_marginal) -> float:
    """COT: the optimal transport cost between the student's softmax outputs (uniform over the pool) and the label
    marginal (one-hot vectors weighted by ``label_marginal``), with cost ``1 - p_y`` (Lu et al. 2023)."""
    import ot

    p = np.exp(log_softmax(np.asarray(student_logits, float), axis=1))
    b = np.asarray(label_marginal, float)
    keep = b > 0
    M = 1 - p[:, keep]
    a = np.full(len(p), 1.0 / len(p))
    return float(ot.emd2(a, b[keep] / b[keep].sum(), M))


def predictors(student_logits, label_marginal, atc_scores=None, atc_correct=None, atc_source: str = "") -> list[Term]:
    """The label-free error predictors of the student on its pool (estimates of its 0-1 error)."""
    out = [Term(name=names.PREDICTOR_DOC, value=average_confidence(student_logits), kind=ESTIMATED,
                note="average confidence: 1 - mean max p_S over the pool (Guillory et al. 2021); no label",
                target=None),
           Term(name=names.PREDICTOR_COT, value=cot(student_logits, label_marginal), kind=ESTIMATED,
                note="transport cost 1 - p_y between the student's softmax outputs and the teacher's label marginal "
                     "(Lu et al. 2023); no student label")]
    if atc_scores is not None and len(atc_scores):
        conf = np.exp(log_softmax(np.asarray(student_logits, float), axis=1).max(1))
        t, value = atc(atc_scores, atc_correct, conf)
        out.append(Term(name=names.PREDICTOR_ATC, value=value, kind=ESTIMATED,
                        note=f"ATC (Garg et al. 2022): fraction of pool items below the confidence threshold "
                             f"{t:.4g} fitted on {atc_source}", diagnostics={"threshold": t}))
    return out
