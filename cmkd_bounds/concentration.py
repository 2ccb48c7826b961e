r"""Concentration inequalities: every confidence term of the bounds comes from here.

All are one-sided upper confidence bounds on a population mean from ``n`` i.i.d. values that are
independent of whatever the values were computed with (held-out data), each at confidence
``1 - eta``. A bound that takes the minimum of several of them needs a union bound
(:func:`split`), unless they share one random event.

- :func:`hoeffding`: values in an interval of width ``B``: ``mean + B sqrt(log(1/eta) / 2n)``
  (Hoeffding 1963, Theorem 2).
- :func:`kl_upper`: values in ``[0, B]``: the largest ``p`` with
  ``kl(mean/B || p/B) <= log(1/eta) / n`` (Hoeffding 1963, Theorem 1, in its relative-entropy form;
  the Bernoulli ``kl`` dominates every ``[0, 1]`` variable by convexity, Maurer 2004). It is never
  above :func:`hoeffding` (Pinsker: ``kl(q||p) >= 2 (p - q)^2``) and much tighter near 0.
- :func:`empirical_bernstein`: values in ``[0, B]``:
  ``mean + sqrt(2 V log(2/eta) / n) + 7 B log(2/eta) / (3 (n - 1))`` with ``V`` the unbiased sample
  variance (Maurer & Pontil 2009, Theorem 4).
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
    return hi * value_range


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
