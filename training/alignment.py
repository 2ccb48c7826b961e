"""Training losses of UCMKD: feature alignment (entropic OT) and label alignment (kappa).

FA between a minibatch of student features ``z_S`` ``(B, k)`` and teacher features ``z_T``
``(B', k)`` with uniform weights is the entropic OT cost ``<C, P_eps>`` where ``P_eps`` solves

    min_P <C, P> - eps H(P)   over couplings of the uniform marginals

(the authors use POT's ``sinkhorn2`` with ``reg = 0.1`` and 100 iterations). We solve it in the log
domain (stable at any ``eps``) without gradient, then return ``<C(z_S), P_eps>`` with the plan held
fixed: by the envelope theorem its gradient in ``C`` is ``P_eps``, the gradient of the entropic
OT value, so no backward pass through the iterations is needed. The stopping tolerance is raised
to ``10 * machine epsilon`` of the dtype so a float32 run cannot silently spin to the iteration cap.

``kappa = softmax(h_T(z_S))_y`` (the teacher head on the student's feature, at the label) and
``LA = mean(CE(h_S(z), y) - kappa * CE(h_T(z), y))`` as in the official code.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from cmkd_bounds.costs import get_cost


def _sinkhorn_loop(K: torch.Tensor, KT: torch.Tensor, iters: int, log_a: float, log_b: float, tol: float,
                   check_every: int):
    """Scaled-potential iterations ``u = -lse(K + v) - log b``, ``v = -lse(K^T + u) - log a``."""
    u = torch.zeros(K.shape[0], dtype=K.dtype, device=K.device)
    v = torch.zeros(K.shape[1], dtype=K.dtype, device=K.device)
    n_a = float(K.shape[0])
    it = 0
    for i in range(iters):
        it = i + 1
        u = -torch.logsumexp(K + v, dim=1) - log_b
        v = -torch.logsumexp(KT + u, dim=1) - log_a
        if it % check_every == 0 and it < iters:
            rows = torch.logsumexp(K + v, dim=1) + u + log_a + log_b  # log of the plan's row sums
            if float((rows.exp() - 1.0 / n_a).abs().sum()) < tol:
                break
    return u, v, it


@torch.no_grad()
def _sinkhorn_kernel(C: torch.Tensor, eps: float, iters: int, tol: float, check_every: int):
    """Multiplicative Sinkhorn in float64, ``u = a / (K v)``, ``v = b / (K^T u)``, ``K = exp(-C / eps)``.

    Used only while ``max C / eps < 600``, where ``K``'s entries and the scalings stay far inside
    float64's range; four cheap operations per iteration instead of two log-sum-exps.
    """
    n, m = C.shape
    K = torch.exp(C.double() / -eps)
    a, b = 1.0 / n, 1.0 / m
    v = torch.ones(m, dtype=torch.float64, device=C.device)
    it = 0
    for i in range(iters):
        it = i + 1
        u = a / (K @ v)
        v = b / (K.T @ u)
        if it % check_every == 0 and it < iters and float((u * (K @ v) - a).abs().sum()) < tol:
            break
    return (u[:, None] * K * v[None, :]).to(C.dtype), it


@torch.no_grad()
def sinkhorn_log(C: torch.Tensor, eps: float, iters: int = 100, tol: float = 1e-6, check_every: int = 25):
    """Log-domain Sinkhorn for uniform marginals; returns the plan ``(n, m)`` and the iterations run.

    Works with scaled potentials ``u = f / eps``, ``v = g / eps`` and ``K = -C / eps`` so an
    iteration is two broadcast additions and two log-sum-exps; when ``max C / eps < 600`` the
    same iterations run in the kernel domain in float64 (:func:`_sinkhorn_kernel`). The L1 error of the row marginals
    is checked every ``check_every`` iterations against ``max(tol, 10 * machine epsilon)``.
    """
    n, m = C.shape
    log_a, log_b = -math.log(n), -math.log(m)
    tol = max(tol, 10 * torch.finfo(C.dtype).eps)
    if float(C.max()) / eps < 600:  # the kernel domain is exact here and several times cheaper
        return _sinkhorn_kernel(C, eps, iters, tol, check_every)
    K = C / -eps
    u, v, it = _sinkhorn_loop(K, K.T.contiguous(), int(iters), log_a, log_b, float(tol), int(check_every))
    return torch.exp(K + u[:, None] + v[None, :] + (log_a + log_b)), int(it)


def feature_alignment(z_s: torch.Tensor, z_t: torch.Tensor, cost: str = "l2", reg: float = 0.1,
                      iters: int = 100) -> torch.Tensor:
    """Entropic OT cost between the two minibatches; differentiable in ``z_s`` (and ``z_t``)."""
    C = get_cost(cost).matrix(z_s.float(), z_t.float())
    P, _ = sinkhorn_log(C.detach(), reg, iters)
    return (P * C).sum()


def kappa_official(teacher_logits_at_student: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``softmax(h_T(z_S))_y``, in ``[0, 1]``, no gradient."""
    return torch.softmax(teacher_logits_at_student.detach().float(), 1).gather(1, y[:, None])[:, 0]


def label_alignment(student_logits: torch.Tensor, teacher_logits_at_student: torch.Tensor,
                    y: torch.Tensor) -> torch.Tensor:
    """``mean(CE(h_S(z), y) - kappa * CE(h_T(z), y))``."""
    k = kappa_official(teacher_logits_at_student, y)
    ce_s = F.cross_entropy(student_logits.float(), y, reduction="none")
    ce_t = F.cross_entropy(teacher_logits_at_student.float(), y, reduction="none")
    return (ce_s - k * ce_t).mean()
