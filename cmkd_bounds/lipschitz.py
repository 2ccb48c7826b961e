r"""Lipschitz constants of the functions the bounds transport, bounded from above and below.

The marginal form transports the teacher's expected loss ``f(z) = phi(W z + b)`` with
``phi(s) = H(softmax(s / T))`` (the entropy of the calibrated teacher). Its logit gradient is
``grad_s H(softmax(s)) = v(s) = -p * (log p + H) = -J log p`` with ``J = diag(p) - p p^T``, and
``v`` sums to zero. Two constants bound it, ``K2(C) = sup_s ||v||_2`` and ``K1(C) = sup_s ||v||_1``:

- **proved** (certified): ``||J w||_2^2 <= lambda_max(J) w^T J w`` and ``w^T J w = Var_p(w)``;
  ``lambda_max(J) <= 1/2`` because ``Var_p(w) <= (max w - min w)^2 / 4 <= (w_max^2 + w_min^2) / 2``
  for a unit ``w``; and ``||J w||_1 = E_p |w - E_p w| <= sqrt(Var_p(w))``. With ``w = log p``,
  ``Var_p(log p) = V(p)`` is the varentropy, so ``||v||_2 <= sqrt(V / 2)`` and ``||v||_1 <= sqrt(V)``.
  The varentropy's maximum over the simplex is attained by a distribution with at most two distinct
  probability values (stationarity: ``(log p_i)^2 + 2 log p_i - 2 E[log p] (log p_i + 1) = const``
  is quadratic in ``log p_i``; on a face of the simplex, recurse), and among those one class against
  ``C - 1`` equal ones is the largest, so
  ``V_max(C) = max_t (log(C - 1) + t)^2 / (4 cosh^2(t / 2))`` (:func:`varentropy_max`, computed
  as a certified enclosure on a grid; closed-form bound ``sqrt(V_max) <= log(C-1)/2 + 0.66275``, the
  constant rounded up).
- **sharp** (estimated): numerically the maximiser of ``||v||`` itself is one class against ``C - 1``
  equal ones, ``K2 = sqrt(C/(C-1)) max_e e (1-e) |log((C-1)(1-e)/e)|`` and
  ``K1 = 2 max_e e (1-e) |log((C-1)(1-e)/e)|``; that two values suffice is not proved, so these are
  labelled estimated (the tests compare them with gradient ascent).

At ``C = 10``: ``K2`` proved 1.0145, sharp 0.6771, against the ``2 log C = 4.605`` of the first version.

With these, ``f`` is ``K2 / T``-Lipschitz for the l2 distance between centred logits
``||Pi W (z - z')||_2`` (``Pi = I - 11^T/C``; softmax ignores constant shifts, and ``v`` sums to 0),
and ``K1 / T``-Lipschitz for the oscillation metric ``rho(s, s') = osc(s - s') / 2`` on logits
(``osc = max - min``), because ``|<v, x>| <= ||v||_1 osc(x) / 2`` when ``v`` sums to zero. In the
feature space, ``||grad_z f|| <= ||Pi W||_op K2 / T`` (:meth:`cmkd_bounds.costs.Cost.head_factor`).

The class-conditional form transports the clipped loss ``g_y(z) = min(c, CE(W z + b, y))``. Where
``CE < c``, ``p_y > e^-c``, so ``||p - e_y||_2 <= sqrt(2) (1 - p_y) <= sqrt(2) (1 - e^-c)`` and
``||p - e_y||_1 <= 2 (1 - e^-c)``; above ``c`` the function is constant. In the margins
``m = (s_j - s_y)_j``, ``g_y = min(c, LSE(m))`` whose gradient ``softmax(m)`` has ``l1`` mass
``1 - p_y <= 1 - e^-c`` off the constant coordinate ``m_y = 0``: ``g_y`` is ``(1 - e^-c)``-Lipschitz
for the sup norm of the margins (the margin metric).

Deeper heads (:func:`tau_upper_mlp`): the product of the layers' operator norms times the
activations' Lipschitz constants (1 for ReLU) times the logit-gradient bound.

Lower bounds (:func:`tau_lower`): the largest gradient norm found over data points and by
gradient ascent started from them, and the largest slope ``|f(z) - f(z')| / delta(z, z')`` over
random pairs. Each is a value of the true constant's defining supremum, hence ``<= tau``.

Derivations: ``docs/theory.md`` of the repository.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.costs import as_tensor, get_cost
from cmkd_bounds.kinds import CERTIFIED, LOWER, Term


# ----------------------------------------------------------------------------- entropy-gradient constants
@cache
def varentropy_max(num_classes: int, cells: int = 200_000) -> float:
    """A certified upper bound on ``max_p Var_p(log p)`` over the simplex of ``C`` classes.

    ``V_max = sup_t g(t)``, ``g(t) = (t + a)^2 / (4 cosh^2(t/2))``, ``a = log(C - 1)``. On each grid
    cell the numerator (convex) is at most its larger end value and the denominator at least its
    value at the point of the cell closest to 0; beyond ``|t| >= T0 >= 2``, ``g <= (|t| + a)^2 e^-|t|``,
    which decreases, so the tail adds at most its value at ``T0``. The maximum over cells is
    inflated by ``1e-12`` relative for rounding.
    """
    if num_classes < 2:
        raise ValueError("need at least 2 classes")
    a = math.log(num_classes - 1)
    T0 = 60.0 + a
    t = np.linspace(-T0, T0, cells + 1)
    lo, hi = t[:-1], t[1:]
    num = np.maximum((lo + a) ** 2, (hi + a) ** 2)
    closest = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    den = 4 * np.cosh(closest / 2) ** 2
    tail = (T0 + a) ** 2 * math.exp(-T0)
    return float(max(np.max(num / den), tail)) * (1 + 1e-12)


def entropy_gradient_proved(num_classes: int, norm: str = "l2") -> float:
    """Certified ``sup_s ||grad_s H(softmax(s))||``: ``sqrt(V_max / 2)`` (l2) or ``sqrt(V_max)`` (l1)."""
    v = varentropy_max(num_classes)
    return math.sqrt(v / 2) if norm == "l2" else math.sqrt(v)


@cache
def _one_against_rest(num_classes: int) -> float:
    """``max_e e (1 - e) |log((C - 1)(1 - e) / e)|`` by a fine grid refined with a bounded search."""
    from scipy.optimize import minimize_scalar

    C = num_classes
    h = lambda e: e * (1 - e) * abs(math.log((C - 1) * (1 - e) / e))  # noqa: E731
    grid = np.linspace(1e-9, 1 - 1e-9, 20001)
    i = int(np.argmax([h(e) for e in grid]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    r = minimize_scalar(lambda e: -h(e), bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
    return max(h(grid[i]), -float(r.fun))


def entropy_gradient_sharp(num_classes: int, norm: str = "l2") -> float:
    """Estimated (numerically sharp) ``sup_s ||grad_s H(softmax(s))||``: one class against the rest."""
    C = num_classes
    m = _one_against_rest(C)
    return math.sqrt(C / (C - 1)) * m if norm == "l2" else 2 * m


def entropy_fn(W, b, temperature: float = 1.0) -> Callable:
    """``z -> H(softmax((z W^T + b) / T))``, the marginal-form ``f`` (float64 torch)."""
    import torch

    W, b = as_tensor(W), as_tensor(b)

    def f(z):
        logp = torch.log_softmax((z @ W.T + b) / temperature, dim=-1)
        return -(logp.exp() * logp).sum(-1)

    return f


# ----------------------------------------------------------------------------- the constants of each form
def tau_feature(W, temperature: float = 1.0, cost="l2") -> Term:
    """Certified Lipschitz constant of ``f`` in the feature space: ``head_factor(W) * K / T`` (K proved)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    c = get_cost(cost)
    factor, logit_norm = c.head_factor(W)
    C = np.shape(W)[0]
    k = entropy_gradient_proved(C, logit_norm)
    return Term(name=names.TAU_FEATURE, value=factor * k / temperature, kind=c.lipschitz_kind,
                note=c.reason or f"linear head: ||Pi W|| * K_{logit_norm[1]}(C) / T, K proved (sqrt of varentropy "
                "bound)", diagnostics={"head_factor": factor, "logit_norm": logit_norm, "K_proved": k,
                                       "temperature": temperature, "K_sharp": entropy_gradient_sharp(C, logit_norm),
                                       "two_log_C": 2 * math.log(C)})


def tau_logit(num_classes: int, temperature: float, metric: str) -> Term:
    """Certified Lipschitz constant of ``f`` for a metric on logits: ``K2 / T`` (centred l2) or ``K1 / T`` (osc)."""
    norm = {"l2": "l2", "osc": "l1"}[metric]
    k = entropy_gradient_proved(num_classes, norm)
    space = "centred-logit l2" if metric == "l2" else "oscillation"
    return Term(name={"l2": names.TAU_LOGIT_L2, "osc": names.TAU_LOGIT_OSC}[metric], value=k / temperature,
                kind=CERTIFIED, note=f"K_{norm[1]}(C) / T with the proved K, for the {space} metric",
                diagnostics={"K_proved": k, "K_sharp": entropy_gradient_sharp(num_classes, norm),
                             "temperature": temperature})


def tau_class_feature(W, loss_clip: float, cost="l2") -> Term:
    """Lipschitz constant of every ``z -> min(c, CE(W z + b, y))`` in the feature space."""
    c = get_cost(cost)
    factor, logit_norm = c.head_factor(W)
    g = (math.sqrt(2.0) if logit_norm == "l2" else 2.0) * (1 - math.exp(-loss_clip))
    return Term(name=names.TAU_CLASS_FEATURE, value=factor * g, kind=c.lipschitz_kind,
                note=c.reason or "linear head: ||Pi W|| * ||p - e_y|| bound below the clip",
                diagnostics={"head_factor": factor})


def tau_class_margin(loss_clip: float) -> Term:
    """``1 - e^-c``: Lipschitz constant of the clipped CE for the sup norm of the margins ``s_j - s_y``."""
    return Term(name=names.TAU_CLASS_MARGIN, value=1 - math.exp(-loss_clip), kind=CERTIFIED,
                note="clipped CE in the margin metric")


def tau_upper_mlp(weights: list, logit_grad_bound: float, activation_lipschitz: float = 1.0, cost="l2") -> Term:
    """``logit_grad_bound * act^(L-1) * prod_l ||W_l||`` for an MLP head ``W_L s(... s(W_1 z))``."""
    if not weights:
        raise ValueError("need at least one layer")
    c = get_cost(cost)
    norms = [c.operator_norm(W) for W in weights]
    value = logit_grad_bound * activation_lipschitz ** (len(weights) - 1) * math.prod(norms)
    return Term(name="tau_upper", value=value, kind=c.lipschitz_kind, note=c.reason or "product of layer norms",
                diagnostics={"layer_norms": norms})


def tau_lower(f: Callable, z, cost="l2", ascent_steps: int = 25, step: float = 0.05, n_start: int = 256,
              n_pairs: int = 4096, seed: int = 0) -> Term:
    """Largest gradient norm of ``f`` (in the cost's gradient norm) over data, ascent and random pairs.

    ``f`` maps a ``(n, k)`` float64 tensor to ``(n,)`` values; ``z`` are data points ``(N, k)``.
    """
    import torch

    z = as_tensor(z)
    c = get_cost(cost)
    gen = torch.Generator().manual_seed(seed)

    def grad_norms(p):
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(p).sum(), p)
        return c.gradient_norm(g).detach()

    best_grad = float(grad_norms(z).max())
    p = z[torch.randperm(z.shape[0], generator=gen)[:n_start]].clone()
    scale = float(z.std()) if z.shape[0] > 1 else 1.0
    for _ in range(ascent_steps):  # ascend ||grad f|| from data points
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(p).sum(), p, create_graph=True)
        (gg,) = torch.autograd.grad(c.gradient_norm(g).sum(), p)
        p = p + step * scale * gg / gg.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        best_grad = max(best_grad, float(grad_norms(p).max()))
    i = torch.randint(z.shape[0], (n_pairs,), generator=gen)
    j = torch.randint(z.shape[0], (n_pairs,), generator=gen)
    with torch.no_grad():
        d = c(z[i], z[j])
        ok = d > 0
        slopes = (f(z[i][ok]) - f(z[j][ok])).abs() / d[ok]
    best_slope = float(slopes.max()) if ok.any() else 0.0
    return Term(name=names.TAU_LOWER, value=max(best_grad, best_slope), kind=LOWER,
                note="max gradient norm (data, ascent) and pair slopes",
                diagnostics={"max_grad_data_or_ascent": best_grad, "max_pair_slope": best_slope})


def entropy_gradient_ascent(num_classes: int, norm: str = "l2", starts: int = 64, steps: int = 400,
                            seed: int = 0) -> float:
    """The largest ``||grad_s H(softmax(s))||`` found by gradient ascent on the logits (a lower value)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(starts, num_classes, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    opt = torch.optim.Adam([s], lr=0.05)
    best = 0.0
    for _ in range(steps):
        logp = torch.log_softmax(s, -1)
        p = logp.exp()
        H = -(p * logp).sum(-1, keepdim=True)
        v = -p * (logp + H)
        val = v.norm(dim=-1) if norm == "l2" else v.abs().sum(-1)
        best = max(best, float(val.detach().max()))
        opt.zero_grad()
        (-val.sum()).backward()
        opt.step()
    return best
