r"""Complexity terms: VC-dimension bounds and the concentration terms they and held-out data give.

VC dimension (Bartlett, Harvey, Liaw & Mehrabian, "Nearly-tight VC-dimension and pseudodimension
bounds for piecewise linear neural networks", JMLR 20(63), 2019, Theorem 7): a feed-forward
network with ``W`` parameters, ``L`` layers, ``k_i`` units in layer ``i`` and piecewise-polynomial
activations with ``p`` breakpoints (ReLU: ``p = 1``) and degree 1 satisfies

.. math:: \mathrm{VCdim} \le L + \bar L W \log_2\big(4 e p \textstyle\sum_{i=1}^L i k_i\big),

with the effective depth ``bar L <= L``. We use it with ``bar L = L`` and
``sum_i i k_i <= L U`` (``U`` units in all), which can only enlarge it:
``VC <= L + L W log2(4 e p L U)``.

Uniform convergence for a loss class with values in ``[0, B]`` and VC dimension ``d``
(Mohri, Rostamizadeh & Talwalkar, Foundations of ML, 2nd ed., Corollary 3.19, scaled by ``B``):
with probability ``>= 1 - eta``, ``R <= R^ + B (sqrt(2 d log(e n / d) / n) + sqrt(log(1/eta) / (2 n)))``.
It is vacuous (we return ``B``) when ``d >= n``; for multiclass networks the VC dimension of the
network's sign outputs is used as the complexity of the clipped loss class, which is the standard
heuristic, so the term is reported as ``estimated``.

Held-out certificate (Hoeffding 1963): for ``n`` i.i.d. values in ``[lo, hi]`` independent of the
model, ``E <= mean + (hi - lo) sqrt(log(1/eta) / (2 n))`` with probability ``>= 1 - eta``.
"""

from __future__ import annotations

import math

from cmkd_bounds.kinds import CERTIFIED, ESTIMATED, Term


def vc_dimension_upper(num_params: int, num_layers: int, num_units: int, breakpoints: int = 1) -> float:
    """``L + L W log2(4 e p L U)`` (Bartlett et al. 2019, Theorem 7, with bar L <= L)."""
    if num_params < 1 or num_layers < 1 or num_units < 1:
        raise ValueError("need at least one parameter, layer and unit")
    L, W, U, p = num_layers, num_params, num_units, breakpoints
    return L + L * W * math.log2(4 * math.e * p * L * U)


def vc_uniform_term(vc: float, n: int, eta: float, loss_range: float, name: str = "vc_term") -> Term:
    """``B (sqrt(2 d log(e n/d) / n) + sqrt(log(1/eta) / (2 n)))``, capped at ``B`` (vacuous)."""
    _check(n, eta)
    if vc >= n:
        return Term(name, loss_range, ESTIMATED, f"vacuous: VC bound {vc:.3g} >= n = {n}", {"vc": vc, "n": n})
    v = loss_range * (math.sqrt(2 * vc * math.log(math.e * n / vc) / n) + math.sqrt(math.log(1 / eta) / (2 * n)))
    return Term(name, min(v, loss_range), ESTIMATED, "VC uniform convergence (Mohri et al. Cor. 3.19)",
                {"vc": vc, "n": n, "vacuous": v >= loss_range})


def hoeffding(n: int, eta: float, value_range: float) -> float:
    """``(hi - lo) sqrt(log(1/eta) / (2 n))``: one-sided deviation of a mean at confidence ``1 - eta``."""
    _check(n, eta)
    return value_range * math.sqrt(math.log(1 / eta) / (2 * n))


def hoeffding_term(mean: float, n: int, eta: float, value_range: float, name: str) -> Term:
    """Certified upper confidence bound ``mean + Hoeffding`` on a held-out mean."""
    h = hoeffding(n, eta, value_range)
    return Term(name, mean + h, CERTIFIED, f"held-out Hoeffding, range {value_range:.3g}, eta {eta:.3g}",
                {"mean": mean, "deviation": h, "n": n, "eta": eta})


def _check(n, eta):
    if n < 1:
        raise ValueError("need at least one sample")
    if not 0 < eta < 1:
        raise ValueError(f"eta must lie in (0, 1), got {eta}")
