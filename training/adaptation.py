"""Domain-adaptation losses that carry the teacher's labels to the student through its features (issue 20).

Source = the frozen teacher's features ``z_T`` with the teacher's labels ``y_T``; target = the student
encoder's features ``z_S`` (trainable), most of them unlabelled. Each loss is written to equal its reference
implementation in skada (``skada.deep.losses`` / ``skada.deep._adversarial``) or POT on identical inputs
(``tests/test_adaptation.py`` runs theirs beside ours):

- :func:`deepjdot_loss` (Damodaran et al., ECCV 2018): the exact OT cost between the two minibatches for the
  joint cost ``M_ij = alpha ||z_T_i - z_S_j||^2 + lambda_t CE(h_S(z_S_j), y_T_i)``, the plan held fixed
  (``ot.emd`` on ``M`` detached; the gradient is ``sum gamma_ij dM_ij``): teacher labels reach unlabelled
  student items through the plan. skada: ``deepjdot_loss(y_T, logits_S, z_T, z_S, alpha, lambda_t)``.
- :func:`coral_loss` (Sun & Saenko 2016): ``||Cov(z_T) - Cov(z_S)||_F^2 / (4 d^2)`` (skada's
  ``deepcoral_loss``), plus ``mean_weight ||mean(z_T) - mean(z_S)||^2 / d`` (the means, which CORAL's
  centring leaves out; 0 recovers skada's value).
- :func:`dann_loss` (Ganin et al., JMLR 2016): ``BCE(D(z_T), 0) + BCE(D(z_S), 1)`` for a domain
  discriminator ``D`` (probabilities) behind a gradient-reversal layer (:func:`reverse_gradient`), as
  skada's ``DANNLoss``: the discriminator learns to tell the domains apart, the encoder to confuse it.
- :func:`ot_pseudo_labels`: OT label propagation, POT's ``SinkhornLpl1Transport(reg_e, reg_cl)`` (entropic OT
  with a class-wise group-lasso regulariser) fitted from the teacher's features and labels to the student's
  pool, ``transform_labels`` giving each student item a distribution over classes.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch.nn import functional as F


def deepjdot_loss(y_t: torch.Tensor, logits_s: torch.Tensor, z_t: torch.Tensor, z_s: torch.Tensor,
                  alpha: float, lambda_t: float) -> torch.Tensor:
    """``sum_ij gamma_ij M_ij`` with ``gamma`` the exact OT plan (uniform weights) of ``M`` held fixed.

    ``y_t`` ``(m,)`` teacher labels, ``logits_s`` ``(n, C)`` student logits, ``z_t`` ``(m, k)``, ``z_s`` ``(n, k)``.
    """
    dist = torch.cdist(z_t, z_s, p=2) ** 2  # (m, n)
    label = F.cross_entropy(logits_s[None, :, :].expand(len(y_t), -1, -1).transpose(1, 2),
                            y_t[:, None].expand(-1, len(z_s)), reduction="none")  # (m, n): CE(h_S(z_S_j), y_T_i)
    M = alpha * dist + lambda_t * label
    a = torch.full((len(z_t),), 1.0 / len(z_t), dtype=torch.float64)
    b = torch.full((len(z_s),), 1.0 / len(z_s), dtype=torch.float64)
    plan = ot.emd(a.numpy(), b.numpy(), M.detach().double().cpu().numpy())
    return (torch.as_tensor(plan, dtype=M.dtype, device=M.device) * M).sum()


def coral_loss(z_t: torch.Tensor, z_s: torch.Tensor, mean_weight: float = 0.0) -> torch.Tensor:
    """``||Cov(z_T) - Cov(z_S)||_F^2 / (4 d^2) + mean_weight ||mean(z_T) - mean(z_S)||^2 / d``."""
    d = z_t.shape[1]
    cov = torch.cov((z_t - z_t.mean(0)).T) - torch.cov((z_s - z_s.mean(0)).T)
    loss = (cov ** 2).sum() / (4 * d * d)
    if mean_weight:
        loss = loss + mean_weight * ((z_t.mean(0) - z_s.mean(0)) ** 2).sum() / d
    return loss


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The identity forward, ``-scale`` times the gradient backward (Ganin et al.'s gradient-reversal layer)."""
    return _Reverse.apply(x, scale)


def dann_loss(p_teacher: torch.Tensor, p_student: torch.Tensor) -> torch.Tensor:
    """``BCE(p_T, 0) + BCE(p_S, 1)``: the discriminator's loss on domain probabilities (teacher = source = 0)."""
    return F.binary_cross_entropy(p_teacher, torch.zeros_like(p_teacher)) + \
        F.binary_cross_entropy(p_student, torch.ones_like(p_student))


def discriminator(k: int, hidden: int) -> torch.nn.Module:
    """A small domain discriminator on ``k`` features: ``k -> hidden -> hidden -> 1``, a probability."""
    return torch.nn.Sequential(torch.nn.Linear(k, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, 1), torch.nn.Sigmoid(), torch.nn.Flatten(0))


def ot_pseudo_labels(z_t: np.ndarray, y_t: np.ndarray, z_s: np.ndarray, num_classes: int, reg_e: float,
                     reg_cl: float, inner_iters: int = 200) -> np.ndarray:
    """``(n, C)`` class distributions of the student items by OT label propagation from the teacher's labelled
    features: POT's ``SinkhornLpl1Transport(reg_e, reg_cl)`` (squared Euclidean cost normalised by its maximum;
    ``inner_iters`` Sinkhorn iterations per majorisation step, POT's ``max_inner_iter``) and its
    ``transform_labels``. Its columns are the classes present in ``y_t``; they are put back in place, and a
    student item that received no mass (all of it underflowed) gets the uniform distribution. POT's warning that
    an inner Sinkhorn stopped before its tolerance is silenced: the plan serves as a soft labelling, not as a
    bound."""
    import warnings

    y_t = np.asarray(y_t)
    tr = ot.da.SinkhornLpl1Transport(reg_e=reg_e, reg_cl=reg_cl, norm="max", max_inner_iter=inner_iters)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        tr.fit(Xs=np.asarray(z_t, float), ys=y_t, Xt=np.asarray(z_s, float))
    soft = np.zeros((len(z_s), num_classes))
    soft[:, np.unique(y_t)] = np.asarray(tr.transform_labels(y_t))
    total = soft.sum(1, keepdims=True)
    return np.where(total > 0, soft / np.where(total > 0, total, 1.0), 1.0 / num_classes)
