r"""Complexity terms: the VC-dimension bound of piecewise-linear networks and its uniform-convergence term.

VC dimension (Bartlett, Harvey, Liaw & Mehrabian, "Nearly-tight VC-dimension and pseudodimension
bounds for piecewise linear neural networks", JMLR 20(63), 2019, Theorem 7): a feed-forward
network with ``W`` parameters, ``L`` layers of ``k_1 .. k_L`` units, and activations that are
piecewise polynomial of degree at most 1 with ``p`` breakpoints (ReLU: ``p = 1``) satisfies

.. math:: \mathrm{VCdim} \le L + \bar L\, W \log_2\!\big(4 e p R \log_2(2 e p R)\big),
          \qquad R = \sum_{i=1}^{L} i\, k_i,

with the effective depth ``bar L <= L`` (we use ``bar L = L``, which can only enlarge the bound).
The units of a convolution layer are its output channels times its output positions (each
position is a unit computing a piecewise-linear function); shared weights are counted once in
``W``. Max-pooling, normalisation layers and residual additions are not covered by the theorem as
stated, which is one more reason the term is reported for comparison only.

Uniform convergence for a loss class with values in ``[0, B]`` and VC dimension ``d``
(Mohri, Rostamizadeh & Talwalkar, Foundations of ML, 2nd ed., Corollary 3.19, scaled by ``B``):
with probability ``>= 1 - eta``, ``R <= R^ + B (sqrt(2 d log(e n / d) / n) + sqrt(log(1/eta) / (2 n)))``.
It is vacuous (we return ``B``) when ``d >= n``; for multiclass networks the VC dimension of the
network's sign outputs is used as the complexity of the clipped loss class, which is a heuristic,
so the term is reported as ``estimated``.
"""

from __future__ import annotations

import math

from cmkd_bounds.concentration import check_sample
from cmkd_bounds.kinds import ESTIMATED, Term


def vc_dimension_upper(num_params: int, units_per_layer, breakpoints: int = 1) -> float:
    """``L + L W log2(4 e p R log2(2 e p R))`` with ``R = sum_i i k_i`` (Bartlett et al. 2019, Theorem 7)."""
    units = [int(k) for k in units_per_layer]
    if num_params < 1 or not units or min(units) < 1:
        raise ValueError("need at least one parameter, one layer and one unit per layer")
    L, W, p = len(units), num_params, breakpoints
    R = sum(i * k for i, k in enumerate(units, start=1))
    inner = math.log2(2 * math.e * p * R)
    return L + L * W * math.log2(4 * math.e * p * R * inner)


def vc_uniform_term(vc: float, n: int, eta: float, loss_range: float, name: str = "vc_term") -> Term:
    """``B (sqrt(2 d log(e n/d) / n) + sqrt(log(1/eta) / (2 n)))``, capped at ``B`` (vacuous)."""
    check_sample(n, eta)
    if vc >= n:
        return Term(name=name, value=loss_range, kind=ESTIMATED, note=f"vacuous: VC bound {vc:.3g} >= n = {n}",
                    diagnostics={"vc": vc, "n": n})
    v = loss_range * (math.sqrt(2 * vc * math.log(math.e * n / vc) / n) + math.sqrt(math.log(1 / eta) / (2 * n)))
    return Term(name=name, value=min(v, loss_range), kind=ESTIMATED, note="VC uniform convergence (Mohri et al. "
                "Cor. 3.19)", diagnostics={"vc": vc, "n": n, "vacuous": v >= loss_range})
