r"""Empirical rates of ``W1`` convergence, intrinsic dimension, and the deviation terms of Theorem 2.7.

The paper's finite-sample bound needs ``W1(P^_n, P)`` for each empirical measure. Two versions, both
**estimated**:

Dyadic (:func:`deviation_dyadic`). For ``P`` supported in an axis-aligned cube of side ``L`` in
``R^d`` and nested dyadic partitions ``Q_j`` (``2^{jd}`` cells of diameter ``D_j``, given by the
cost: ``L sqrt(d) 2^-j`` for l2, ``L d 2^-j`` for l1, ``min(2, 2 sqrt(d) 2^-j)`` for the chordal
cost of normalised vectors), matching mass inside the finest cells first and then inside ever
coarser parents gives (Dereich, Scheutzow & Schottstedt 2013, Lemma 2; Weed & Bach 2019, Prop. 1)

.. math::  W_1(\mu, \nu) \le D_J + \tfrac12 \sum_{j=0}^{J-1} D_j \sum_{Q \in \mathcal Q_{j+1}}
           |\mu(Q) - \nu(Q)|,

and with ``E|P(Q) - P^_n(Q)| <= sqrt(P(Q)/n)`` and Cauchy–Schwarz over the ``2^{(j+1)d}`` cells,
``E W1(P, P^_n) <= min_J [D_J + 1/2 sum_{j<J} D_j min(2, 2^{(j+1)d/2} n^{-1/2})]``, which decays as
``n^{-1/d}`` for ``d >= 3`` (Fournier & Guillin 2015). Changing one sample moves ``W1(P, P^_n)``
by at most ``diam / n``: McDiarmid adds ``diam sqrt(log(1/eta) / 2n)``. The cube is read off the
sample (its bounding box), and the population's support is almost surely *not* inside it (a
continuous law puts mass outside any sample's box; in 64-d with n = 45 about 94 % of a Gaussian's
mass lies outside), so the term is an estimate, not a certificate. In 64 dimensions it is also
nearly vacuous.

Fitted (:func:`deviation_estimated`): the fitted curve ``c n^s`` of ``W1`` between independent
subsamples (:func:`rate_curve`) evaluated at the sample size, plus the same McDiarmid term.

The certified bounds of :mod:`cmkd_bounds.theorem` do not use these terms: they concentrate the
student's own held-out risk instead, which needs no support assumption.

Derivations: ``docs/theory.md`` of the repository.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cmkd_bounds.concentration import mcdiarmid
from cmkd_bounds.costs import get_cost
from cmkd_bounds.kinds import ESTIMATED, Term
from cmkd_bounds.wasserstein import DEFAULT_WIDTH, check_cloud, wasserstein1


@dataclass(frozen=True, kw_only=True)
class RateCurve:
    """``W1`` between independent subsamples of size ``n``; fit ``log W1 = log c + slope log n``.

    ``values`` is ``(len(sizes), repeats)``; ``slope_ci`` and ``band`` are bootstrap percentile
    intervals (over repeats, resampled per size); ``effective_dimension = -1 / slope``.
    """

    sizes: np.ndarray
    values: np.ndarray
    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    band: np.ndarray  # (2, len(sizes)): lower and upper fitted curve over bootstrap fits
    effective_dimension: float
    diagnostics: dict = field(default_factory=dict)

    def predict(self, n) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(n, float) ** self.slope


def _fit(logn, logw):
    A = np.stack([np.ones_like(logn), logn], 1)
    coef, *_ = np.linalg.lstsq(A, logw, rcond=None)
    return coef[1], coef[0]


def _w1_value(p, q, cost, method="auto", width=DEFAULT_WIDTH) -> float:
    return wasserstein1(p, q, cost=cost, method=method, width=width).value


def rate_curve(x, sizes=None, repeats: int = 10, cost="l2", seed: int = 0, n_boot: int = 500,
               y=None, n_jobs: int = 1, method: str = "auto", width: float = DEFAULT_WIDTH) -> RateCurve:
    """``W1`` between two disjoint random subsamples of ``x`` of each size in ``sizes``.

    With ``y`` given, the two subsamples are drawn one from ``x`` and one from ``y`` (their
    distance then tends to ``W1(P_x, P_y) > 0``, so the fit is only meaningful for ``y = None``).
    ``sizes`` defaults to 8 sizes geometrically spaced from 25 to ``len(x) // 2``. ``n_jobs > 1``
    spreads the (single-threaded) network-simplex solves over processes (joblib). ``method`` and
    ``width`` choose the W1 solver as in :func:`cmkd_bounds.wasserstein.wasserstein1` (the bracket's
    upper end is used).
    """
    x = check_cloud(x).numpy()
    N = x.shape[0]
    if sizes is None:
        hi = N // 2 if y is None else min(N, len(y))
        sizes = np.unique(np.geomspace(25, max(hi, 26), 8).astype(int))
    sizes = np.asarray(sizes, int)
    if y is None and 2 * sizes.max() > N:
        raise ValueError(f"rate curve: the largest size {sizes.max()} needs 2 x {sizes.max()} points, have {N}")
    if len(sizes) < 2 or sizes.min() < 2:
        raise ValueError("rate curve: need at least two sizes, each >= 2")
    rng = np.random.default_rng(seed)
    jobs = []  # every subsample is drawn here, in order, so the values do not depend on n_jobs
    for n in sizes:
        for _ in range(repeats):
            if y is None:
                idx = rng.permutation(N)
                jobs.append((x[idx[:n]], x[idx[n : 2 * n]]))
            else:
                jobs.append((x[rng.choice(N, n, replace=False)], np.asarray(y)[rng.choice(len(y), n, replace=False)]))
    if n_jobs == 1:
        flat = [_w1_value(p, q, cost, method, width) for p, q in jobs]
    else:
        from joblib import Parallel, delayed

        flat = Parallel(n_jobs=n_jobs)(delayed(_w1_value)(p, q, cost, method, width) for p, q in jobs)
    vals = np.asarray(flat, float).reshape(len(sizes), repeats)
    logn, logw = np.log(sizes), np.log(np.maximum(vals.mean(1), 1e-300))
    slope, intercept = _fit(logn, logw)
    boot_slopes, boot_curves = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, repeats, size=(len(sizes), repeats))
        m = np.take_along_axis(vals, pick, 1).mean(1)
        s, c = _fit(logn, np.log(np.maximum(m, 1e-300)))
        boot_slopes.append(s)
        boot_curves.append(np.exp(c) * sizes.astype(float) ** s)
    lo, hi = np.percentile(boot_slopes, [2.5, 97.5])
    band = np.percentile(np.array(boot_curves), [2.5, 97.5], axis=0)
    d_eff = -1.0 / slope if slope < 0 else math.inf
    return RateCurve(sizes=sizes, values=vals, slope=float(slope), intercept=float(intercept),
                     slope_ci=(float(lo), float(hi)), band=band, effective_dimension=float(d_eff),
                     diagnostics={"repeats": repeats, "n_boot": n_boot, "cost": get_cost(cost).name, "method": method,
                                  "width": width})


def twonn_dimension(x, discard: float = 0.1) -> float:
    """TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez, Laio 2017).

    ``mu_i = r2_i / r1_i`` (second over first nearest-neighbour distance) has the Pareto law
    ``F(mu) = 1 - mu^(-d)``, so ``-log(1 - F_emp(mu)) = d log mu``; ``d`` is the slope of the
    least-squares line through the origin over the ``1 - discard`` smallest ratios (the largest,
    most noise-prone ratios are discarded, as in the paper). Duplicates (``r1 = 0``) are dropped.
    """
    from scipy.spatial import cKDTree

    x = check_cloud(x).numpy()
    if x.shape[0] < 4:
        raise ValueError("TwoNN needs at least 4 points")
    dist, _ = cKDTree(x).query(x, k=3)
    r1, r2 = dist[:, 1], dist[:, 2]
    ok = r1 > 0
    mu = np.sort(r2[ok] / r1[ok])
    N = len(mu)
    keep = max(2, int(N * (1 - discard)))
    u, v = np.log(mu[:keep]), -np.log(1 - np.arange(keep) / N)
    return float((u @ v) / (u @ u))


def expected_w1_dyadic(n: int, dim: int, side: float, cost="l2") -> float:
    """``min_J [D_J + 1/2 sum_{j<J} D_j min(2, 2^{(j+1) dim / 2} / sqrt n)]``, ``D_j`` the cost's cell diameter.

    An upper bound on ``E W1(P, P^_n)`` for ``P`` inside a cube of side ``side`` in ``R^dim``
    (module docstring).
    """
    if n < 1 or dim < 1:
        raise ValueError("need n >= 1 and dim >= 1")
    c = get_cost(cost)
    best, partial = c.cell_diameter(side, dim, 0), 0.0
    for J in range(1, 64):  # D_J < 1e-18 D_0 beyond: nothing left to gain
        j = J - 1
        log2_ratio = (j + 1) * dim / 2 - 0.5 * math.log2(n)  # log2 of 2^{(j+1)d/2} / sqrt n
        partial += 0.5 * c.cell_diameter(side, dim, j) * (2.0 if log2_ratio >= 1 else 2.0**log2_ratio)
        best = min(best, c.cell_diameter(side, dim, J) + partial)
    return best


def support_box(x, cost="l2") -> tuple[float, float]:
    """``(side, diam)``: the largest side of ``x``'s bounding box, and the diameter under ``cost`` of the
    cube of that side (which contains the box up to translation)."""
    x = check_cloud(x).numpy()
    side = float((x.max(0) - x.min(0)).max())
    d = x.shape[1]
    return side, get_cost(cost).box_diameter(np.zeros(d), np.full(d, side))


def deviation_dyadic(x, eta: float, cost="l2", name: str = "deviation") -> Term:
    """Estimated ``W1(P^_n, P)``: the dyadic bound plus McDiarmid, *if* the support were inside the sample's
    bounding box, which fails almost surely (module docstring); so not a certificate."""
    x = check_cloud(x).numpy()
    n, d = x.shape
    side, diam = support_box(x, cost)
    e = expected_w1_dyadic(n, d, side, cost)
    t = mcdiarmid(diam, n, eta)
    return Term(name=name, value=e + t, kind=ESTIMATED,
                note=f"dyadic bound in dimension {d}; assumes the population lies in the sample's bounding box "
                "(false almost surely)",
                diagnostics={"expectation_bound": e, "mcdiarmid": t, "n": n, "dim": d, "diameter": diam})


def deviation_estimated(curve: RateCurve, n: int, diameter: float, eta: float, name: str = "deviation") -> Term:
    """Estimated ``W1(P^_n, P)``: the fitted subsample curve at ``n`` plus McDiarmid."""
    e = float(curve.predict(n))
    t = mcdiarmid(diameter, n, eta)
    return Term(name=name, value=e + t, kind=ESTIMATED, note=f"fitted rate n^{curve.slope:.3f} (effective dimension "
                f"{curve.effective_dimension:.1f})", diagnostics={"fitted": e, "mcdiarmid": t, "n": n})
