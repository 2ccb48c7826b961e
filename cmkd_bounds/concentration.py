r"""Concentration inequalities: every confidence term of the bounds comes from here.

All are one-sided upper confidence bounds on a population mean from ``n`` values that are
independent of whatever the values were computed with (held-out data), each at confidence
``1 - eta``. A bound that takes the minimum of several of them needs a union bound
(:func:`split`), unless they share one random event.

Two sampling designs (:data:`SAMPLINGS`), fixed before the data are seen:

- ``iid``: the values are i.i.d.; the bounds cover their mean.
- ``stratified``: the items were drawn class by class (a class-stratified split of a pool), so
  conditionally on the labels the values are independent but not identically distributed, with
  means ``mu_i = R_{y_i}``. The bounds then cover ``R_w = sum_y w_y R_y`` with ``w_y = n_y / n`` the
  sample's class frequencies: Hoeffding's and the kl (Chernoff) bounds hold for independent values
  with their average mean (Hoeffding 1963, Theorems 1-2), Clopper-Pearson holds for independent
  Bernoulli trials with unequal rates at ``eta <= 1/2`` (Hoeffding 1956, Theorem 4: the sum is
  no more spread below its mean than a binomial), and so does empirical Bernstein (Bennett's
  inequality and the self-bounding concentration of the sample variance, whose mean only grows
  with unequal means). :func:`betting_upper` has a route of its own for this design.

- :func:`hoeffding`: values in an interval of width ``B``: ``mean + B sqrt(log(1/eta) / 2n)``
  (Hoeffding 1963, Theorem 2).
- :func:`kl_upper`: values in ``[0, B]``: the largest ``p`` with
  ``kl(mean/B || p/B) <= log(1/eta) / n`` (Hoeffding 1963, Theorem 1, in its relative-entropy form;
  the Bernoulli ``kl`` dominates every ``[0, 1]`` variable by convexity, Maurer 2004). It is never
  above :func:`hoeffding` (Pinsker: ``kl(q||p) >= 2 (p - q)^2``) and much tighter near 0.
- :func:`empirical_bernstein`: values in ``[0, B]``:
  ``mean + sqrt(2 V log(2/eta) / n) + 7 B log(2/eta) / (3 (n - 1))`` with ``V`` the unbiased sample
  variance (Maurer & Pontil 2009, Theorem 4).
- :func:`betting_upper`: values in ``[0, B]``: the smallest candidate mean rejected by a betting
  capital (Waudby-Smith & Ramdas, JRSS-B 2024): variance-adaptive, never needs a range term, and
  on losses concentrated near 0 tighter than the kl form.
- :func:`clopper_pearson`: ``k`` errors out of ``n`` Bernoulli trials: the exact upper limit, the
  ``1 - eta`` quantile of ``Beta(k + 1, n - k)`` (Clopper & Pearson 1934).
- :func:`mcdiarmid`: a function of ``n`` samples with bounded differences ``D / n`` exceeds its mean
  by at most ``D sqrt(log(1/eta) / 2n)`` (McDiarmid 1989).
- :func:`class_marginal_l1`: ``||pi^ - pi||_1 <= sqrt(2 (C log 2 + log(1/eta)) / n)`` for the
  empirical class marginal of ``n`` labels in ``C`` classes (Weissman, Ordentlich, Seroussi,
  Verdu & Weinberger 2003, Theorem 2.1, with ``2^C - 2 <= 2^C``).

Derivations: ``docs/theory.md`` of the repository.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLINGS = {
    "iid": "the held-out items are i.i.d. draws from the test law (certificates cover its mean)",
    "stratified": "the held-out items were drawn class by class (a class-stratified split): conditionally on the "
                  "labels they are independent, and the certificates cover the risk at the sample's class "
                  "frequencies, sum_y w_y R_y",
}
BET_CAP = 0.75  # largest bet, as a fraction of the largest allowed (Waudby-Smith & Ramdas 2024, Section 5: c = 3/4)
BET_PERMUTATIONS = 10  # capitals averaged over this many fixed orders of the items


def check_sample(n: int, eta: float) -> None:
    if n < 1:
        raise ValueError("need at least one sample")
    if not 0 < eta < 1:
        raise ValueError(f"eta must lie in (0, 1), got {eta}")


def split(eta: float, parts: int) -> float:
    """Union bound: ``parts`` events each at ``eta / parts`` hold together with probability ``>= 1 - eta``."""
    check_sample(1, eta)
    if parts < 1:
        raise ValueError("need at least one part")
    return eta / parts


def hoeffding(n: int, eta: float, value_range: float) -> float:
    """``B sqrt(log(1/eta) / (2 n))``: one-sided deviation of a mean of values in an interval of width ``B``."""
    check_sample(n, eta)
    return value_range * math.sqrt(math.log(1 / eta) / (2 * n))


def _kl_bernoulli(q: float, p: float) -> float:
    """``kl(q || p)`` for Bernoulli parameters, with ``0 log 0 = 0``."""
    out = 0.0
    if q > 0:
        out += q * math.log(q / p) if p > 0 else math.inf
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p)) if p < 1 else math.inf
    return out


def kl_upper(mean: float, n: int, eta: float, value_range: float = 1.0) -> float:
    """The largest ``p`` in ``[mean, B]`` with ``kl(mean/B || p/B) <= log(1/eta) / n`` (values in ``[0, B]``).

    Found by bisection; the upper end of the final bracket is returned, so the value is never
    below the exact inverse.
    """
    check_sample(n, eta)
    if value_range <= 0:
        raise ValueError("value_range must be > 0")
    q = min(max(mean / value_range, 0.0), 1.0)
    budget = math.log(1 / eta) / n
    lo, hi = q, 1.0
    if _kl_bernoulli(q, hi) <= budget:
        return value_range
    for _ in range(200):  # kl(q || p) increases in p on [q, 1]
        mid = 0.5 * (lo + hi)
        if _kl_bernoulli(q, mid) <= budget:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return float(hi * value_range)


def empirical_bernstein(values, eta: float, value_range: float) -> float:
    """Maurer & Pontil (2009), Theorem 4, for values in ``[0, B]``; returns the upper bound on the mean."""
    v = np.asarray(values, float) / value_range
    n = len(v)
    check_sample(n, eta)
    if n < 2:
        return value_range
    var = float(v.var(ddof=1))
    log2 = math.log(2 / eta)
    return min(value_range, value_range * (float(v.mean()) + math.sqrt(2 * var * log2 / n) + 7 * log2 / (3 * (n - 1))))


def clopper_pearson(errors: int, n: int, eta: float) -> float:
    """One-sided Clopper–Pearson upper limit on a Bernoulli rate from ``errors`` out of ``n``."""
    from scipy.stats import beta

    check_sample(n, eta)
    if not 0 <= errors <= n:
        raise ValueError(f"errors must lie in 0..{n}, got {errors}")
    if errors == n:
        return 1.0
    return float(beta.ppf(1 - eta, errors + 1, n - errors))


def mcdiarmid(diameter: float, n: int, eta: float) -> float:
    """``D sqrt(log(1/eta) / (2 n))``: deviation above its mean of a function with differences ``D / n``."""
    return hoeffding(n, eta, diameter)


def class_marginal_l1(n: int, num_classes: int, eta: float) -> float:
    """``sqrt(2 (C log 2 + log(1/eta)) / n)`` bounds ``||pi^ - pi||_1`` with probability ``>= 1 - eta``."""
    check_sample(n, eta)
    return math.sqrt(2 * (num_classes * math.log(2) + math.log(1 / eta)) / n)


def betting_upper(values, eta: float, value_range: float = 1.0, *, strata=None, population: int | None = None,
                  permutations: int = BET_PERMUTATIONS, seed: int = 0, cap: float = BET_CAP) -> float:
    r"""Upper confidence bound on a mean by betting against it (Waudby-Smith & Ramdas, JRSS-B 2024).

    With ``x_i = v_i / B`` in ``[0, 1]`` and a candidate mean ``m``, the capital of a bettor who wagers
    that the values fall below ``m`` is

    .. math::

        K(m) = \frac{1}{P} \sum_{p=1}^{P} \prod_{b} \prod_{i \in \text{block}_b^p} (1 + \lambda_b^p a_i (m - x_i)),

    with bets ``lambda_b`` that depend only on the items of earlier blocks (never on ``m``) and
    weights ``a_i >= 0``. Each product has mean at most 1 when ``m`` is the mean being covered, so by
    Markov's inequality ``P(K(mu) >= 1/eta) <= eta``; ``K`` is nondecreasing in ``m``, so the
    smallest ``m`` with ``K(m) >= 1/eta`` (found by bisection, upper end returned) is ``>= mu`` with
    probability ``>= 1 - eta``. Averaging over ``P`` fixed random orders of the items keeps this (a
    mean of e-values is an e-value) and removes most of the order's luck.

    - ``strata=None`` (i.i.d. values): each item is a block, ``a_i = 1``; the bets are the predictable
      plug-in ``lambda_t = min(cap, sqrt(2 log(1/eta) / (n s2_{t-1})))`` with the running variance
      ``s2_t = (1/4 + sum_{i<=t} (x_i - mu_i)^2) / (t + 1)``, ``mu_t = (1/2 + sum_{i<=t} x_i) / (t + 1)``
      (their fixed-``n`` tuning; ``cap = 3/4`` as they advise). Given the past, each factor has
      mean ``1 + lambda_t (m - mu) = 1`` at ``m = mu``: a nonnegative martingale.
    - ``strata = labels`` (stratified design, :data:`SAMPLINGS`): the mean covered is
      ``R_w = sum_y w_y R_y``, ``w_y = n_y / n``. Each block holds about ``n_y / B`` items of every
      class ``y`` (``B = min_y n_y`` blocks), with ``a_i = w_{y_i} |block| / c_{block, y_i}``. Given the
      labels and the earlier blocks, the block's factors are independent with means
      ``1 + lambda a_i (R_w - R_{y_i})``, whose arithmetic mean is exactly 1; by the AM-GM
      inequality their product has mean at most 1. Bets are capped at ``cap / max_i a_i``.
    - ``population = N`` (sampling without replacement): the values are a uniformly random sample,
      without replacement, of a finite population of ``N`` values, and the mean covered is the
      population's mean ``mu``. Under ``mu = m`` the next value's mean given the earlier ones is
      ``m_t = (N m - sum_{i<t} x_i) / (N - t + 1)`` (Waudby-Smith & Ramdas, NeurIPS 2020), and the
      factors are ``1 + lambda_t (m_t - x_t)``: a martingale again; ``m_t`` grows with ``m``, so ``K``
      is still nondecreasing in ``m`` (a factor is floored at 0 for candidates the past rules out).
      Any fixed order of a uniformly random sample is one too, so averaging orders keeps validity.

    Parameters
    ----------
    values : array ``(n,)`` of values in ``[0, value_range]``.
    eta : confidence budget in ``(0, 1)``.
    value_range : ``B``.
    strata : optional ``(n,)`` labels of the stratified design.
    population : optional size ``N >= n`` of the finite population sampled without replacement.
    permutations, seed : number of fixed random orders averaged, and their seed.
    cap : largest bet as a fraction of the largest that keeps every factor positive.

    Returns
    -------
    float, the upper confidence bound (at most ``value_range``).

    Examples
    --------
    >>> x = np.r_[np.zeros(90), np.full(10, 0.1)]
    >>> round(betting_upper(x, 0.05), 3) < round(kl_upper(x.mean(), 100, 0.05), 3)
    True
    """
    v = np.asarray(values, float).reshape(-1)
    n = len(v)
    check_sample(n, eta)
    if value_range <= 0:
        raise ValueError("value_range must be > 0")
    if not np.all(np.isfinite(v)) or v.min() < 0 or v.max() > value_range * (1 + 1e-12):
        raise ValueError(f"betting_upper: values must lie in [0, {value_range}]")
    if not 0 < cap < 1 or permutations < 1:
        raise ValueError("cap must lie in (0, 1) and permutations be >= 1")
    if population is not None and (strata is not None or population < n):
        raise ValueError(f"population: a sample without replacement of {n} values needs a population of at least "
                         f"{n} (got {population}), and no strata")
    x = np.clip(v / value_range, 0.0, 1.0)
    rng = np.random.default_rng([seed, 7])
    plans = [_bet_plan(x, strata, eta, cap, rng) for _ in range(permutations)]
    xs = np.stack([p[0] for p in plans])
    steps = np.stack([p[1] for p in plans])  # lambda_b * a_i per item, in each order
    if population is None:  # the conditional mean of every item is m itself
        slope, shift = np.ones_like(xs), np.zeros_like(xs)
    else:  # m_t = (N m - S_{t-1}) / (N - t + 1)
        left = population - np.arange(n)
        slope = np.broadcast_to(population / left, xs.shape)
        shift = np.concatenate([np.zeros((len(xs), 1)), np.cumsum(xs, 1)[:, :-1]], 1) / left
    threshold = math.log(1 / eta)

    def log_capital(m: float) -> float:
        factors = 1 + steps * (slope * m - shift - xs)
        with np.errstate(divide="ignore"):
            per_order = np.log(np.maximum(factors, 0.0)).sum(1)
        top = per_order.max()
        if not math.isfinite(top):
            return -math.inf
        return float(top + math.log(np.exp(per_order - top).mean()))

    if log_capital(1.0) < threshold:
        return value_range
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if log_capital(mid) >= threshold:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-12:
            break
    return float(min(1.0, hi + 1e-12) * value_range)  # the margin covers rounding in the capital near the threshold


def _bet_plan(x: np.ndarray, strata, eta: float, cap: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """One order of the items and each item's ``lambda_b a_i`` (see :func:`betting_upper`)."""
    n = len(x)
    if strata is None:
        order = rng.permutation(n)
        block = np.arange(n)
        a = np.ones(n)
    else:
        y = np.asarray(strata).reshape(-1)
        if len(y) != n:
            raise ValueError(f"strata: {len(y)} labels for {n} values")
        classes, counts = np.unique(y, return_counts=True)
        B = int(counts.min())
        w = counts / n
        parts, blocks, a_parts = [], [], []
        chunks = {c: np.array_split(rng.permutation(np.flatnonzero(y == c)), B) for c in classes}
        for b in range(B):
            idx = np.concatenate([chunks[c][b] for c in classes])
            per_class = np.array([len(chunks[c][b]) for c in classes])
            k = np.searchsorted(classes, y[idx])
            parts.append(idx)
            blocks.append(np.full(len(idx), b))
            a_parts.append(w[k] * len(idx) / per_class[k])
        order, block, a = np.concatenate(parts), np.concatenate(blocks), np.concatenate(a_parts)
    xo = x[order]
    t = np.arange(1, n + 1)
    mu = (0.5 + np.cumsum(xo)) / (t + 1)
    s2 = (0.25 + np.cumsum((xo - mu) ** 2)) / (t + 1)
    s2_before = np.r_[0.25, s2[:-1]]  # running variance of the items before each position
    start = np.r_[0, np.flatnonzero(np.diff(block)) + 1]  # first position of each block
    first = start[np.searchsorted(start, np.arange(n), side="right") - 1]
    amax = np.maximum.reduceat(a, start)[np.searchsorted(start, np.arange(n), side="right") - 1]
    lam = np.minimum(cap / amax, np.sqrt(2 * math.log(1 / eta) / (n * s2_before[first])))
    return xo, lam * a


def hypergeometric_upper(errors: int, n: int, population: int, eta: float) -> float:
    """Exact upper limit on a finite population's error rate ``M / N`` from ``errors`` in a uniformly random sample
    of ``n`` drawn without replacement: ``max {M / N : P(Hypergeometric(N, M, n) <= errors) > eta}`` (the
    Clopper-Pearson construction for sampling without replacement; ``M`` is found by bisection, the count being
    stochastically increasing in ``M``)."""
    from scipy.stats import hypergeom

    check_sample(n, eta)
    if not 0 <= errors <= n <= population:
        raise ValueError(f"need 0 <= errors <= n <= population, got {errors}, {n}, {population}")
    lo, hi = errors, population - (n - errors)  # the values of M the sample allows
    if hypergeom.cdf(errors, population, hi, n) > eta:
        return hi / population
    while hi - lo > 1:  # invariant: cdf(M = lo) > eta >= cdf(M = hi)
        mid = (lo + hi) // 2
        if hypergeom.cdf(errors, population, mid, n) > eta:
            lo = mid
        else:
            hi = mid
    return lo / population
