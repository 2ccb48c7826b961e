r"""Lipschitz constants ``tau_delta`` of the teacher's expected loss, bounded from above and below.

For logits ``s = W z + b`` (a linear head, ``W`` of shape ``(C, k)``) the chain rule gives
``grad_z f = W^T grad_s f``, so for a cost whose gradients are measured in the dual norm ``||.||_*``
(``l2`` -> ``l2``, ``l1`` -> ``l_inf``; :mod:`cmkd_bounds.costs`):

- ``l2``: ``||W^T v||_2 <= ||W||_op ||v||_2``;
- ``l1``: ``||W^T v||_inf <= max_{y,k} |W_yk| ||v||_1``.

Two functions ``f`` are used by the theorems:

1. Marginal form: ``f(z) = sum_y q_y(z) l(h(z), y)`` with the teacher's calibrated posterior
   ``q = softmax(s / T)`` and the calibrated head itself, so ``f(z) = H(softmax(s / T))`` (the
   entropy). ``grad_s H(softmax(s)) = -p * (log p + H)``, and
   ``||p * (log p + H)||_2 <= ||.||_1 <= sum_y p_y |log p_y| + H = 2 H <= 2 log C``. With the
   temperature: ``tau <= ||W||_op * 2 log C / T`` (``l2``).
2. Class-conditional form: ``g_y(z) = l(h(z), y)`` with ``grad_s = p - e_y``,
   ``||p - e_y||_2 <= sqrt 2`` and ``||p - e_y||_1 <= 2``: ``tau_y <= sqrt 2 ||W||_op`` (``l2``).
   Clipping the loss at ``c`` (``min(l, c)``) can only lower the constant.

Deeper heads (:func:`tau_upper_mlp`): the product of the layers' operator norms times the
activations' Lipschitz constants (1 for ReLU) times the logit-gradient bound.

Lower bounds (:func:`tau_lower`): the largest gradient norm found over data points and by
gradient ascent started from them, and the largest slope ``|f(z) - f(z')| / delta(z, z')`` over
random pairs. Each is a value of the true constant's defining supremum, hence ``<= tau``.

The bounds are certified for metric costs whose Lipschitz property is global on ``R^k`` (``l2``,
``l1``). Under ``chordal`` a function of ``z`` is Lipschitz only if it depends on ``z/||z||``
alone, and under ``cosine`` (not a metric) Kantorovich–Rubinstein fails: the value is then
reported as ``estimated`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from cmkd_bounds.costs import as_tensor, get_cost
from cmkd_bounds.kinds import CERTIFIED, ESTIMATED, LOWER, Term


def _norm_pair(W: torch.Tensor, cost) -> tuple[float, str]:
    """``(factor, vector-norm)``: ``||W^T v||_* <= factor * ||v||_{vector-norm}`` for the cost."""
    c = get_cost(cost)
    if c.name == "l1":
        return float(W.abs().max()), "l1"
    return float(torch.linalg.matrix_norm(W, ord=2)), "l2"


def _kind_and_note(cost) -> tuple[str, str]:
    c = get_cost(cost)
    if c.name in ("l2", "l1"):
        return CERTIFIED, ""
    if c.name == "chordal":
        return ESTIMATED, "chordal: the head is not scale-invariant, so f need not be Lipschitz in this metric"
    return ESTIMATED, "cosine is not a metric: Kantorovich-Rubinstein does not apply"


def entropy_grad_bound(num_classes: int) -> float:
    """``2 log C >= ||grad_s H(softmax(s))||_1 >= ||.||_2`` for every logit vector ``s``."""
    return 2.0 * math.log(num_classes)


def tau_upper_entropy(W, temperature: float = 1.0, cost="l2") -> Term:
    """Upper bound on the Lipschitz constant of ``z -> H(softmax((W z + b) / T))``."""
    W = as_tensor(W)
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    factor, _ = _norm_pair(W, cost)
    kind, note = _kind_and_note(cost)
    value = factor * entropy_grad_bound(W.shape[0]) / temperature
    return Term("tau_upper", value, kind, note or "linear head: ||W|| * 2 log C / T",
                {"head_norm": factor, "logit_grad_bound": entropy_grad_bound(W.shape[0]), "temperature": temperature})


def tau_upper_class_ce(W, cost="l2") -> Term:
    """Upper bound on the Lipschitz constant of every ``z -> CE(W z + b, y)`` (and its clipping)."""
    W = as_tensor(W)
    factor, vnorm = _norm_pair(W, cost)
    kind, note = _kind_and_note(cost)
    g = math.sqrt(2.0) if vnorm == "l2" else 2.0
    return Term("tau_class_upper", factor * g, kind, note or "linear head: ||W|| * ||p - e_y|| bound",
                {"head_norm": factor, "logit_grad_bound": g})


def tau_upper_mlp(weights: list, logit_grad_bound: float, activation_lipschitz: float = 1.0, cost="l2") -> Term:
    """``logit_grad_bound * act^(L-1) * prod_l ||W_l||`` for an MLP head ``W_L s(... s(W_1 z))``."""
    if not weights:
        raise ValueError("need at least one layer")
    kind, note = _kind_and_note(cost)
    c = get_cost(cost)
    norms = []
    for W in weights:
        W = as_tensor(W)
        # l1 cost: ||J^T v||_inf over layers; use the l_inf->l_inf operator norm (max row sum) of W^T
        norms.append(float(W.abs().sum(0).max()) if c.name == "l1" else float(torch.linalg.matrix_norm(W, ord=2)))
    value = logit_grad_bound * activation_lipschitz ** (len(weights) - 1) * math.prod(norms)
    return Term("tau_upper", value, kind, note or "product of layer norms", {"layer_norms": norms})


def tau_lower(f: Callable[[torch.Tensor], torch.Tensor], z, cost="l2", ascent_steps: int = 25,
              step: float = 0.05, n_start: int = 256, n_pairs: int = 4096, seed: int = 0) -> Term:
    """Largest gradient norm of ``f`` (dual norm of ``cost``) over data, ascent and random pairs.

    ``f`` maps a ``(n, k)`` float64 tensor to ``(n,)`` values; ``z`` are data points ``(N, k)``.
    """
    z = as_tensor(z)
    c = get_cost(cost)
    dual = (lambda g: g.abs().max(-1).values) if c.name == "l1" else (lambda g: g.norm(dim=-1))
    gen = torch.Generator().manual_seed(seed)

    def grad_norms(p):
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(p).sum(), p)
        return dual(g).detach(), g.detach()

    best_grad = float(grad_norms(z)[0].max())
    start = z[torch.randperm(z.shape[0], generator=gen)[:n_start]].clone()
    scale = float(z.std()) if z.shape[0] > 1 else 1.0
    p = start
    for _ in range(ascent_steps):  # ascend ||grad f|| from data points
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(p).sum(), p, create_graph=True)
        (gg,) = torch.autograd.grad(dual(g).sum(), p)
        p = p + step * scale * gg / gg.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        best_grad = max(best_grad, float(grad_norms(p)[0].max()))
    i = torch.randint(z.shape[0], (n_pairs,), generator=gen)
    j = torch.randint(z.shape[0], (n_pairs,), generator=gen)
    with torch.no_grad():
        d = c(z[i], z[j])
        ok = d > 0
        slopes = (f(z[i][ok]) - f(z[j][ok])).abs() / d[ok]
    best_slope = float(slopes.max()) if ok.any() else 0.0
    return Term("tau_lower", max(best_grad, best_slope), LOWER, "max gradient norm (data, ascent) and pair slopes",
                {"max_grad_data_or_ascent": best_grad, "max_pair_slope": best_slope})


def entropy_fn(W, b, temperature: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z -> H(softmax((z W^T + b) / T))``, the marginal-form ``f`` (float64)."""
    W, b = as_tensor(W), as_tensor(b)

    def f(z):
        logp = torch.log_softmax((z @ W.T + b) / temperature, dim=-1)
        return -(logp.exp() * logp).sum(-1)

    return f
