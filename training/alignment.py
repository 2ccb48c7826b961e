"""Training losses of UCMKD: feature alignment (entropic OT) and label alignment (kappa).

Feature alignment
-----------------
FA between a minibatch of student features ``z_S`` ``(n, k)`` and teacher features ``z_T``
``(m, k)`` with uniform weights ``a = 1/n``, ``b = 1/m`` is the transport cost ``W = <C, P>`` of
the plan ``P`` that Sinkhorn's iterations return for the cost matrix ``C_ij = delta(z_S_i, z_T_j)``
and the regularisation ``eps``. The iterations are those of POT's ``sinkhorn_knopp`` (what the
authors call through ``ot.sinkhorn2(a, b, M, reg=0.1, numItermax=100)``)::

    u_0 = 1/n;   for t = 1..T:  v_t = b / (K^T u_{t-1}),  u_t = a / (K v_t),     K = exp(-C / eps)
    P = diag(u_T) K diag(v_T)

stopping after the first iteration ``t = 1, 11, 21, ...`` whose column-marginal error
``||P^T 1 - b||_2`` is below ``stop_thr = 1e-9``, or at ``T = iters``. We always iterate in float64.
The authors' float32 kernel underflows where ``C / eps`` exceeds about 103 (``exp(-103)`` is
float32's smallest subnormal), as the l2 cost does at unit feature scale: the gradient is NaN when
part of ``K`` underflows and zero when all of it does. We iterate in the kernel domain, with ``C``
shifted by its minimum (which changes neither the plan nor ``W``), while ``(max C - min C) / eps``
is below :data:`KERNEL_MAX_RANGE`, and in the log domain otherwise (both in NumPy: a handful of
array operations per iteration, no per-operation autograd bookkeeping); both give the same iterates
up to rounding.

Two gradients of ``W`` are offered (``grad=``):

- ``"unrolled"`` (the official one): the derivative of the returned value ``W(C) = <C, P_T(C)>``
  through all ``T`` iterations, as autograd gives it through POT. Written by hand in reverse mode
  (one backward loop, the same cost as the forward one) with the adjoints of ``log u`` and ``log v``:
  ``U_T = (C o P) 1``, ``V_T = (C o P)^T 1``, and for ``t = T..1``::

      alpha_t = U_t o u_t / a;   V_t <- V_t - v_t o (K^T alpha_t);   beta_t = V_t o v_t / b;
      U_{t-1} = -u_{t-1} o (K beta_t)

      dW/dC = P - (C o P) / eps + K o sum_t (alpha_t v_t^T + u_{t-1} beta_t^T) / eps

  In the log domain the scalings themselves may overflow, so the same recursion runs on the adjoints
  divided by their scalings, ``A~_t = alpha_t / u_t``, ``B~_t = beta_t / v_t``: with the plans of every
  half-step, ``Pi_t = diag(u_t) K diag(v_t)`` and ``Xi_t = diag(u_{t-1}) K diag(v_t)`` (entries in
  ``[0, 1]``, kept from the forward pass), ``B~_t = -(Pi_t^T A~_t) / b`` (plus ``(C o P)^T 1 / b`` at
  ``t = T``), ``A~_{t-1} = -(Xi_t B~_t) / a`` and
  ``dW/dC = P - (C o P) / eps + sum_t (A~_t o Pi_t + Xi_t o B~_t^T) / eps``: two matrix-vector products
  and two scaled additions per iteration, no exponential.

- ``"envelope"``: the plan held fixed, ``dW/dC = P``. At the exact optimum ``P*`` this is the
  gradient of the entropic objective ``OT_eps(C) = min_P <C, P> - eps H(P) = <C, P*> - eps H(P*)``
  (Danskin's theorem), **not** of the returned value: ``d<C, P*>/dC = P* + eps dH(P*)/dC``, and the
  second term is not zero. The forward value is the same ``W``; only the gradient differs (issue 12
  measured a cosine of 0.91 to 0.94 between the two on the default benchmark's features).

Label alignment
---------------
``kappa = softmax(h_T(z_S))_y`` (the teacher head on the student's feature, at the label, no
gradient) and ``LA = mean(CE(h_S(z), y) - kappa * CE(h_T(z), y))`` as in the official code; with
``label_smoothing`` both cross-entropies are label-smoothed (the authors' RAVDESS variant, 0.1).
"""

from __future__ import annotations

import math
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from cmkd_bounds.costs import get_cost

FA_GRADS = ("unrolled", "envelope")
STOP_THR = 1e-9  # POT's default stopThr
CHECK_EVERY = 10  # POT checks the marginal error at iterations 1, 11, 21, ...
KERNEL_MAX_RANGE = 500.0  # (max C - min C) / eps below which K = exp(-(C - min C) / eps) is safe in float64


@dataclass(frozen=True)
class SinkhornResult:
    """A Sinkhorn plan with how it was obtained.

    Attributes
    ----------
    plan : float64 tensor ``(n, m)``, on ``C``'s device.
    iterations : number ``T`` of (v, u) updates run.
    domain : ``"kernel"`` or ``"log"``.
    """

    plan: torch.Tensor
    iterations: int
    domain: str


# ----------------------------------------------------------------------------- kernel domain (NumPy, float64)
def _kernel_iterates(K: np.ndarray, iters: int, stop_thr: float, check_every: int):
    """POT's ``sinkhorn_knopp`` iterates for uniform marginals.

    Returns ``U`` ``(T + 1, n)`` (``U[0] = 1/n``), ``V`` ``(T, m)`` and ``T``; ``None`` when an
    iterate is not finite (the caller then falls back to the log domain). Written with preallocated
    outputs: four NumPy calls per iteration.
    """
    n, m = K.shape
    KT = np.ascontiguousarray(K.T)
    Kp = K * n  # (1 / a) K, as POT writes it
    b = 1.0 / m
    U = np.empty((iters + 1, n))
    V = np.empty((iters, m))
    U[0] = 1.0 / n
    Ur, Vr = list(U), list(V)  # row views, made once
    tv, tu = np.empty(m), np.empty(n)
    T = iters
    for i in range(iters):
        v, u = Vr[i], Ur[i + 1]
        np.divide(b, np.dot(KT, Ur[i], out=tv), out=v)
        np.divide(1.0, np.dot(Kp, v, out=tu), out=u)
        if i % check_every == 0:
            col = v * (KT @ u) - b
            if math.sqrt(float(col @ col)) < stop_thr:
                T = i + 1
                break
    U, V = U[: T + 1], V[:T]
    if not (np.isfinite(U[T]).all() and np.isfinite(V[T - 1]).all()):
        return None
    return U, V, T


def _kernel_backward(C: np.ndarray, K: np.ndarray, U: np.ndarray, V: np.ndarray, eps: float) -> np.ndarray:
    """``dW/dC`` through the ``T`` iterations (module docstring); ``C`` is the shifted cost.

    The recursion is run on ``alpha`` and ``beta`` directly: ``beta_t = -(K^T alpha_t) o v_t^2 / b``
    (plus ``V_T o v_T / b`` at ``t = T``) and ``alpha_{t-1} = -(K beta_t) o u_{t-1}^2 / a``, two
    matrix-vector products and two products per iteration. A non-finite result (squares beyond
    float64's range) is returned as is; the caller falls back to the log domain.
    """
    n, m = K.shape
    T = V.shape[0]
    a, b = 1.0 / n, 1.0 / m
    P = U[T][:, None] * K * V[T - 1][None, :]
    CP = C * P
    KT = np.ascontiguousarray(K.T)
    with np.errstate(over="ignore", invalid="ignore"):
        Wu = U * U * (-1.0 / a)  # -u_t^2 / a
        Wv = V * V * (-1.0 / b)  # -v_t^2 / b
        A = np.empty((T, n))
        B = np.empty((T, m))
        Ar, Br, Wur, Wvr = list(A), list(B), list(Wu), list(Wv)
        np.multiply(CP.sum(1), U[T] / a, out=Ar[T - 1])
        tv, tu = np.empty(m), np.empty(n)
        for t in range(T, 0, -1):
            np.multiply(np.dot(KT, Ar[t - 1], out=tv), Wvr[t - 1], out=Br[t - 1])
            if t == T:
                Br[T - 1] += CP.sum(0) * V[T - 1] / b
            if t > 1:
                np.multiply(np.dot(K, Br[t - 1], out=tu), Wur[t - 1], out=Ar[t - 2])
        return P - CP / eps + K * (A.T @ V + U[:T].T @ B) / eps


# ----------------------------------------------------------------------------- log domain (torch, autograd-able)
def _log_iterates(C: torch.Tensor, eps: float, iters: int, stop_thr: float, check_every: int):
    """The same iterates in the log domain, recorded by autograd when ``C`` requires grad.

    ``log u_0 = -log n``; ``log v_t = log b - lse_i(-C_ij/eps + log u_{t-1,i})``,
    ``log u_t = log a - lse_j(-C_ij/eps + log v_t,j)``. Returns the plan and ``T``.
    """
    n, m = C.shape
    log_a, log_b = -math.log(n), -math.log(m)
    Mr = C / -eps
    lu = torch.full((n,), log_a, dtype=C.dtype, device=C.device)
    lv = torch.zeros(m, dtype=C.dtype, device=C.device)
    T = iters
    for i in range(iters):
        lv = log_b - torch.logsumexp(Mr + lu[:, None], 0)
        lu = log_a - torch.logsumexp(Mr + lv[None, :], 1)
        if i % check_every == 0:
            with torch.no_grad():
                col = torch.exp(Mr + lu[:, None] + lv[None, :]).sum(0)
                if float(torch.linalg.vector_norm(col - math.exp(log_b))) < stop_thr:
                    T = i + 1
                    break
    return torch.exp(Mr + lu[:, None] + lv[None, :]), T


def _kernel_iterates_recorded(C: torch.Tensor, eps: float, iters: int, stop_thr: float, check_every: int):
    """The kernel-domain iterates as autograd-recorded torch operations (differentiable twice).

    ``C`` is shifted by its (detached) minimum, which changes neither the plan nor ``W``'s gradient.
    Returns the plan and ``T``.
    """
    n, m = C.shape
    K = torch.exp((C - C.detach().min()) / -eps)
    Kp = K * n
    b = 1.0 / m
    u = torch.full((n,), 1.0 / n, dtype=C.dtype, device=C.device)
    v = u
    T = iters
    for i in range(iters):
        v = b / (K.T @ u)
        u = 1.0 / (Kp @ v)
        if i % check_every == 0:
            with torch.no_grad():
                if float(torch.linalg.vector_norm(v * (K.T @ u) - b)) < stop_thr:
                    T = i + 1
                    break
    return u[:, None] * K * v[None, :], T


# ----------------------------------------------------------------------------- log domain (NumPy, float64)
LOG_KEEP_BYTES = 256 * 2**20  # half-step plans kept for the backward pass up to this size, recomputed beyond
EXP_FLOOR = -600.0  # exp(-600) = 3e-261: below it a term changes a log-sum-exp by < 1e-260, and products of
# such terms with the scaled adjoints stay clear of subnormal numbers (whose arithmetic is 100 times slower)


POOL_MAX_BYTES = 32 * 2**20  # half-step plan buffers up to this size are reused across calls (at most 2 per shape)
_POOL: dict[tuple, list[np.ndarray]] = {}
_POOL_LOCK = threading.Lock()


def _half_step_buffer(shape: tuple) -> np.ndarray:
    """An uninitialised float64 array of ``shape`` for the kept half-step plans, reused when no solution holds it.

    A fresh multi-megabyte array is new memory the kernel maps page by page on first touch: at a 64-item batch
    that cost the unrolled FA step about 2 ms of its 10. A pooled buffer is handed out again only when nothing
    but the pool refers to it (a :class:`_LogSolution` keeps views of it, and so a reference, until its backward
    pass is done and the graph freed), so a live solution's plans are never overwritten."""
    if 8 * math.prod(shape) > POOL_MAX_BYTES:
        return np.empty(shape)
    with _POOL_LOCK:
        pool = _POOL.setdefault(shape, [])
        for buf in pool:
            if sys.getrefcount(buf) == 3:  # the pool's list, this loop's name and getrefcount's argument
                return buf
        buf = np.empty(shape)
        if len(pool) < 2:
            if len(_POOL) > 8:  # many batch shapes: start afresh rather than grow
                _POOL.clear()
                _POOL[shape] = pool = []
            pool.append(buf)
        return buf


@dataclass
class _LogSolution:
    """The log-domain iterates: ``lu`` ``(T + 1, n)``, ``lv`` ``(T, m)``, the final plan, and, when they fit in
    :data:`LOG_KEEP_BYTES`, the half-step plans of the module docstring as the exponentials the forward pass
    computed and their scalings: ``Pi_t = diag(pi_rows[t]) Pi[t]``, ``Xi_t = Xi[t] diag(xi_cols[t])`` (``Pi``,
    ``Xi`` ``(T, n, m)``, entries in ``[exp(-600), 1]``; ``pi_rows`` ``(T, n)``, ``xi_cols`` ``(T, m)``)."""

    Cs: np.ndarray
    logK: np.ndarray
    lu: np.ndarray
    lv: np.ndarray
    T: int
    plan: np.ndarray
    Pi: np.ndarray | None = None
    Xi: np.ndarray | None = None
    pi_rows: np.ndarray | None = None
    xi_cols: np.ndarray | None = None


def _log_iterates_np(Cs: np.ndarray, eps: float, iters: int, stop_thr: float, check_every: int,
                     keep: bool) -> _LogSolution:
    """POT's iterates in the log domain: ``log v_t = log b - lse_i(log K + log u_{t-1})``,
    ``log u_t = log a - lse_j(log K + log v_t)``, each log-sum-exp shifted by its maximum.

    With ``keep`` the exponentials of each half-step are written straight into the kept arrays (no extra pass),
    with the scalings that make them the half-step plans; the plan itself is formed only where the marginal is
    checked and at the end (the same products as forming it at every iteration)."""
    n, m = Cs.shape
    a, b = 1.0 / n, 1.0 / m
    logK = Cs / -eps
    keep = keep and 2 * 8 * n * m * iters <= LOG_KEEP_BYTES
    lu = np.empty((iters + 1, n))
    lv = np.empty((iters, m))
    lu[0] = math.log(a)
    Pi, Xi = _half_step_buffer((2, iters, n, m)) if keep else (None, None)
    pi_rows, xi_cols = (np.empty((iters, n)), np.empty((iters, m))) if keep else (None, None)
    M = np.empty((n, m))
    T, plan = iters, None
    for i in range(iters):
        np.add(logK, lu[i][:, None], out=M)
        cmax = M.max(0)
        M -= cmax
        np.maximum(M, EXP_FLOOR, out=M)  # exp below this is subnormal (slow) and negligible beside the max's 1
        E = Xi[i] if keep else M
        np.exp(M, out=E)
        s1 = E.sum(0)
        lv[i] = math.log(b) - cmax - np.log(s1)
        if keep:
            np.divide(b, s1, out=xi_cols[i])
        np.add(logK, lv[i][None, :], out=M)
        rmax = M.max(1)
        M -= rmax[:, None]
        np.maximum(M, EXP_FLOOR, out=M)
        F = Pi[i] if keep else M
        np.exp(M, out=F)
        s2 = F.sum(1)
        lu[i + 1] = math.log(a) - rmax - np.log(s2)
        rows = np.divide(a, s2, out=pi_rows[i] if keep else None)
        if i % check_every == 0 or i == iters - 1:
            plan = F * rows[:, None]
            col = plan.sum(0) - b
            if math.sqrt(float(col @ col)) < stop_thr:
                T = i + 1
                break
    if not keep:
        return _LogSolution(Cs, logK, lu[: T + 1], lv[:T], T, plan)
    return _LogSolution(Cs, logK, lu[: T + 1], lv[:T], T, plan, Pi[:T], Xi[:T], pi_rows[:T], xi_cols[:T])


@contextmanager
def _subnormals_flushed():
    """Run the block with subnormal floats read and written as 0 (the CPU's FTZ/DAZ modes, through torch), then
    restore the mode found. The half-step plans hold entries down to ``exp(-600)``; their products with small
    adjoints fall below 2.2e-308, where every operation is many times slower; flushing changes a result by less
    than 1e-307 in absolute value (nothing, at the sizes of a gradient) and halves the reverse pass."""
    was = float(np.multiply(np.float64(1e-310), 1.0)) == 0.0  # already flushing?
    if was or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _log_backward(s: _LogSolution, eps: float) -> np.ndarray:
    """``dW/dC`` through the ``T`` log-domain iterations by the scaled adjoints of the module docstring."""
    with _subnormals_flushed():
        return _log_backward_flushed(s, eps)


def _log_backward_flushed(s: _LogSolution, eps: float) -> np.ndarray:
    n, m = s.Cs.shape
    a, b = 1.0 / n, 1.0 / m
    P = s.plan
    CP = s.Cs * P
    A, B = np.empty((s.T, n)), np.empty((s.T, m))  # A~_{t-1} and B~_{t-1} of step t = T..1
    G = np.zeros((n, m))
    At = CP.sum(1) / a
    for t in range(s.T, 0, -1):
        A[t - 1] = At
        if s.Pi is not None:  # kept: Pi_t = diag(rows) Pi[t], Xi_t = Xi[t] diag(cols)
            Pi, Xi, rows, cols = s.Pi[t - 1], s.Xi[t - 1], s.pi_rows[t - 1], s.xi_cols[t - 1]
        else:  # recomputed from the log-scalings, the scalings already in them
            Pi = np.exp(np.maximum(s.logK + s.lu[t][:, None] + s.lv[t - 1][None, :], EXP_FLOOR))
            Xi = np.exp(np.maximum(s.logK + s.lu[t - 1][:, None] + s.lv[t - 1][None, :], EXP_FLOOR))
            rows = cols = 1.0
        Bt = (Pi.T @ (rows * At)) * (-1.0 / b)
        if t == s.T:
            Bt += CP.sum(0) / b
        B[t - 1] = Bt
        if s.Pi is None:
            G += At[:, None] * Pi + Xi * Bt[None, :]
        if t > 1:
            At = (Xi @ (cols * Bt)) * (-1.0 / a)
    if s.Pi is not None:  # the accumulation, vectorised over the iterations, with the scalings folded in
        G = np.einsum("ti,tij->ij", A * s.pi_rows, s.Pi) + np.einsum("tij,tj->ij", s.Xi, B * s.xi_cols)
    return P - CP / eps + G / eps


def _solve(C: torch.Tensor, eps: float, iters: int, stop_thr: float, check_every: int, keep: bool = False):
    """The iterates of ``C`` in NumPy: ``(Cs, K, U, V, T)`` in the kernel domain when it is safe, else a
    :class:`_LogSolution` (with the half-step plans when ``keep``, for the backward pass)."""
    Cn = C.detach().to("cpu", torch.float64).numpy()
    lo = float(Cn.min())
    Cs = Cn - lo
    if (float(Cn.max()) - lo) / eps < KERNEL_MAX_RANGE:
        K = np.exp(Cs / -eps)
        it = _kernel_iterates(K, int(iters), float(stop_thr), int(check_every))
        if it is not None:
            U, V, T = it
            return Cs, K, U, V, T
    return _log_iterates_np(Cs, eps, int(iters), float(stop_thr), int(check_every), keep)


def sinkhorn(C: torch.Tensor, eps: float, iters: int = 100, stop_thr: float = STOP_THR,
             check_every: int = CHECK_EVERY) -> SinkhornResult:
    """Entropic OT plan between uniform marginals by POT's Sinkhorn iterations, in float64.

    Approximately solves ``min_P <C, P> - eps H(P)`` over ``P >= 0``, ``P 1 = 1/n``,
    ``P^T 1 = 1/m``, with the iterations and stopping rule of the module docstring (``T <= iters``).

    Parameters
    ----------
    C : tensor ``(n, m)``, any float dtype and device; no gradient is taken.
    eps : regularisation ``> 0``.
    iters : iteration cap.
    stop_thr : threshold on ``||P^T 1 - b||_2``, checked at iterations ``1, 1 + check_every, ...``.

    Returns
    -------
    SinkhornResult
        The float64 plan on ``C``'s device, the iterations run and the domain used.

    Examples
    --------
    >>> r = sinkhorn(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), eps=1.0)
    >>> [round(float(x), 4) for x in r.plan.flatten()]
    [0.3655, 0.1345, 0.1345, 0.3655]
    """
    with torch.no_grad():
        k = _solve(C, eps, iters, stop_thr, check_every)
        if isinstance(k, _LogSolution):
            return SinkhornResult(torch.from_numpy(k.plan).to(C.device), k.T, "log")
        _, K, U, V, T = k
        P = U[T][:, None] * K * V[T - 1][None, :]
        return SinkhornResult(torch.from_numpy(P).to(C.device), T, "kernel")


def sinkhorn_log(C: torch.Tensor, eps: float, iters: int = 100, tol: float = STOP_THR,
                 check_every: int = CHECK_EVERY):
    """Log-domain Sinkhorn (any ``C / eps``), float64; returns the plan in ``C``'s dtype and ``T``.

    The same iterates and stopping rule as :func:`sinkhorn` (``tol`` is ``stop_thr``), without the
    kernel-domain shortcut.
    """
    with torch.no_grad():
        P, T = _log_iterates(C.double(), eps, int(iters), float(tol), int(check_every))
    return P.to(C.dtype), int(T)


class _UnrolledCost(torch.autograd.Function):
    """``W(C) = <C, P_T(C)>`` with the hand-written reverse pass of the module docstring."""

    @staticmethod
    def forward(ctx, C, eps, iters, stop_thr, solved):
        if isinstance(solved, _LogSolution):
            P = torch.from_numpy(solved.plan).to(C.device)
        else:
            Cs, K, U, V, T = solved
            P = torch.from_numpy(U[T][:, None] * K * V[T - 1][None, :]).to(C.device)
        ctx.eps, ctx.iters, ctx.stop_thr, ctx.solved = eps, iters, stop_thr, solved
        ctx.save_for_backward(C)
        return (C * P).sum()

    @staticmethod
    def backward(ctx, grad):
        if isinstance(ctx.solved, _LogSolution):
            G = _log_backward(ctx.solved, ctx.eps)
        else:
            Cs, K, U, V, _ = ctx.solved
            G = _kernel_backward(Cs, K, U, V, ctx.eps)
        if np.isfinite(G).all():
            G = torch.from_numpy(G).to(grad.device)
        else:  # squared scalings beyond float64: the same derivative through the log-domain iterates
            with torch.enable_grad():
                C = ctx.saved_tensors[0].detach().requires_grad_(True)
                P, _ = _log_iterates(C, ctx.eps, int(ctx.iters), float(ctx.stop_thr), CHECK_EVERY)
                G = torch.autograd.grad((C * P).sum(), C)[0]
        return grad * G, None, None, None, None


def transport_cost(C: torch.Tensor, eps: float, iters: int = 100, grad: str = "unrolled",
                   stop_thr: float = STOP_THR, twice_differentiable: bool = False) -> torch.Tensor:
    """``W(C) = <C, P_T(C)>``, the value ``ot.sinkhorn2`` returns, with the chosen gradient.

    Parameters
    ----------
    C : tensor ``(n, m)``; the Sinkhorn iterations run in float64, the value is returned in ``C``'s
        dtype and its gradient flows into ``C``.
    eps, iters, stop_thr : as in :func:`sinkhorn`.
    grad : ``"unrolled"`` (through the iterations, the official gradient) or ``"envelope"`` (plan
        held fixed: the gradient of ``<C,P> - eps H(P)`` at the plan); same value either way.
    twice_differentiable : build the unrolled value from autograd-recorded iterations (kernel
        domain, or log domain beyond :data:`KERNEL_MAX_RANGE`), so it can be differentiated again
        (``create_graph=True``, second-order bi-level steps); the same function, several times slower.

    Returns
    -------
    Tensor
        A scalar in ``C``'s dtype.
    """
    if grad not in FA_GRADS:
        raise ValueError(f"grad must be one of {', '.join(FA_GRADS)}, got {grad!r}")
    C64 = C.double()
    if grad == "envelope" or not (torch.is_grad_enabled() and C.requires_grad):
        return (C64 * sinkhorn(C, eps, iters, stop_thr).plan).sum().to(C.dtype)
    if not twice_differentiable:
        solved = _solve(C, eps, iters, stop_thr, CHECK_EVERY, keep=True)
        return _UnrolledCost.apply(C64, eps, iters, stop_thr, solved).to(C.dtype)
    if float(C64.detach().max() - C64.detach().min()) / eps < KERNEL_MAX_RANGE:
        P, _ = _kernel_iterates_recorded(C64, eps, int(iters), float(stop_thr), CHECK_EVERY)
        if torch.isfinite(P).all():
            return (C64 * P).sum().to(C.dtype)
    P, _ = _log_iterates(C64, eps, int(iters), float(stop_thr), CHECK_EVERY)  # recorded by autograd
    return (C64 * P).sum().to(C.dtype)


def feature_alignment(z_s: torch.Tensor, z_t: torch.Tensor, cost: str = "l2", reg: float = 0.1,
                      iters: int = 100, grad: str = "unrolled", twice_differentiable: bool = False) -> torch.Tensor:
    """FA: :func:`transport_cost` of the cost matrix ``delta(z_s_i, z_t_j)`` (computed in the features' dtype,
    as the official code does in float32); differentiable in ``z_s`` (and ``z_t``)."""
    C = get_cost(cost).matrix(z_s, z_t.to(z_s.dtype))
    return transport_cost(C, reg, iters, grad, twice_differentiable=twice_differentiable)


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (autocast), the tensor itself otherwise (float64 stays float64)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def kappa_official(teacher_logits_at_student: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``softmax(h_T(z_S))_y``, in ``[0, 1]``, no gradient."""
    return torch.softmax(_upcast(teacher_logits_at_student.detach()), 1).gather(1, y[:, None])[:, 0]


def label_alignment(student_logits: torch.Tensor, teacher_logits_at_student: torch.Tensor,
                    y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """``mean(CE(h_S(z), y) - kappa * CE(h_T(z), y))``, both CEs label-smoothed by ``label_smoothing``.

    ``kappa`` and ``h_T(z)`` carry no gradient, so the gradient in the student head is that of
    ``mean CE(h_S(z), y)`` alone: the LA step moves the head as a cross-entropy step would.
    """
    k = kappa_official(teacher_logits_at_student, y)
    ce_s = F.cross_entropy(_upcast(student_logits), y, reduction="none", label_smoothing=label_smoothing)
    ce_t = F.cross_entropy(_upcast(teacher_logits_at_student.detach()), y, reduction="none",
                           label_smoothing=label_smoothing)
    return (ce_s - k * ce_t).mean()
