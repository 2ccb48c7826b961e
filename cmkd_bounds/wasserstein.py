r"""Wasserstein-1 distances between two weighted point clouds.

.. math::

    W_1(\mu, \nu) = \min_{P \in \Pi(a, b)} \langle C, P \rangle
                 = \max_{f_i + g_j \le C_{ij}} \langle a, f \rangle + \langle b, g \rangle,
    \qquad C_{ij} = \delta(x_i, y_j),

for ``mu = sum_i a_i delta_{x_i}`` and ``nu = sum_j b_j delta_{y_j}``; ``x`` is ``(n, k)``,
``y`` is ``(m, k)``, ``a`` and ``b`` are non-negative weights (uniform when omitted, normalised
to total mass 1).

Estimators
----------
- :func:`w1_exact`: the network simplex (POT ``emd2``) on the dense cost matrix. Exact.
- :func:`w1_bracket`: a certified interval ``[lower, upper]`` at Sinkhorn speed. Log-domain
  Sinkhorn with epsilon-scaling gives potentials ``(f, g)`` and a plan ``P``; rounding ``P`` onto
  the marginals (Altschuler, Weed, Rigollet, NeurIPS 2017, Algorithm 2) gives a feasible plan whose
  cost is an upper bound; the double c-transform of ``g`` gives feasible dual potentials whose
  value is a lower bound (weak duality). Valid after any number of iterations; the width shrinks
  as the regularisation falls and the iterations converge. When the dense cost matrix does not fit
  in ``max_dense_bytes`` it is recomputed block by block: memory linear in ``n + m``.
- :func:`w1_sliced`: the mean over random unit directions of the 1-D distance of the projections.
  For ``l2`` (and ``l1``) each projection is 1-Lipschitz, so the value is a lower bound on ``W1``.
- :func:`w1_1d`: the exact formula in one dimension, ``int |F_mu(t) - F_nu(t)| dt``.
- :func:`wasserstein1`: picks exact where the dense problem is small enough, else the bracket.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import ot
import torch

from cmkd_bounds.costs import Cost, as_tensor, get_cost
from cmkd_bounds.kinds import CERTIFIED, ESTIMATED, LOWER

DEFAULT_MAX_DENSE_BYTES = 2 * 2**30
EXACT_MAX_PAIRS = 25_000_000  # n * m up to which 'auto' uses the network simplex (5,000 x 5,000)


@dataclass(frozen=True)
class W1Result:
    """``value`` is the number to use in an upper bound: exact, or the bracket's upper end."""

    value: float
    kind: str
    lower: float
    upper: float
    method: str
    diagnostics: dict = field(default_factory=dict)

    @property
    def relative_width(self) -> float:
        return 0.0 if self.upper <= 0 else (self.upper - self.lower) / self.upper


# ----------------------------------------------------------------------------- input checks
def check_cloud(x, name: str = "x") -> torch.Tensor:
    """``x`` as a float64 ``(n, k)`` tensor; a clear error for empty, ragged or non-finite input."""
    x = as_tensor(x)
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise ValueError(f"{name}: expected an (n, k) array of points, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the point cloud is empty")
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise ValueError(f"{name}: {bad} point(s) contain NaN or Inf")
    return x


def check_weights(w, n: int, name: str = "a") -> torch.Tensor:
    """Weights normalised to mass 1 (uniform when ``None``); errors on negative or zero mass."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    w = as_tensor(w).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{name}: {w.shape[0]} weights for {n} points")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name}: weights must be finite and non-negative")
    s = float(w.sum())
    if s <= 0:
        raise ValueError(f"{name}: weights sum to zero")
    return w / s


def _prepare(x, y, a, b, cost):
    x, y = check_cloud(x, "x"), check_cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y live in different dimensions: {x.shape[1]} and {y.shape[1]}")
    a, b = check_weights(a, x.shape[0], "a"), check_weights(b, y.shape[0], "b")
    keep_a, keep_b = a > 0, b > 0  # zero-mass points change nothing and break log-weights
    return x[keep_a], y[keep_b], a[keep_a], b[keep_b], get_cost(cost)


def _kind_for(cost: Cost) -> str:
    return CERTIFIED if cost.is_metric else ESTIMATED


# ----------------------------------------------------------------------------- exact
def w1_exact(x, y, a=None, b=None, cost="l2", max_iter: int = 10_000_000) -> W1Result:
    """Exact ``W1`` by the network simplex (POT ``emd2``) on the dense ``(n, m)`` cost matrix."""
    x, y, a, b, cost = _prepare(x, y, a, b, cost)
    need = 8 * x.shape[0] * y.shape[0] * 2
    if need > DEFAULT_MAX_DENSE_BYTES * 4:
        raise MemoryError(f"exact W1 at n={x.shape[0]}, m={y.shape[0]} needs about {need / 2**30:.1f} GiB "
                          "for the cost matrix and plan; use w1_bracket (blockwise) instead")
    C = cost.pairwise(x, y).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value, log = ot.emd2(a.numpy(), b.numpy(), C, numItermax=max_iter, log=True)
    converged = log.get("result_code", 1) == 1
    return W1Result(float(value), _kind_for(cost) if converged else ESTIMATED, float(value), float(value),
                    "exact", {"converged": converged, "warning": log.get("warning"),
                              "n": x.shape[0], "m": y.shape[0], "cost": cost.name})


# ----------------------------------------------------------------------------- 1-D and sliced
def w1_1d(u, v, a=None, b=None) -> float:
    """Exact ``W1`` between weighted samples on the real line: ``int |F(t) - G(t)| dt``."""
    u, v = as_tensor(u).reshape(-1), as_tensor(v).reshape(-1)
    a, b = check_weights(a, u.shape[0], "a"), check_weights(b, v.shape[0], "b")
    pts = torch.cat([u, v])
    mass = torch.cat([a, -b])
    order = torch.argsort(pts, stable=True)
    pts, diff = pts[order], torch.cumsum(mass[order], 0)
    return float((diff[:-1].abs() * (pts[1:] - pts[:-1])).sum())


def w1_sliced(x, y, a=None, b=None, n_projections: int = 200, seed: int = 0, cost="l2") -> W1Result:
    """Mean over random unit directions ``theta`` of ``W1`` of ``theta^T x`` and ``theta^T y``.

    ``|theta^T (x - y)| <= ||x - y||_2`` (and ``<= ||x - y||_1``), so projecting any coupling
    shows that each sliced term, hence their mean, is ``<= W1`` for ``l2`` and ``l1``.
    """
    x, y, a, b, cost = _prepare(x, y, a, b, cost)
    if not cost.sliced_is_lower:
        raise ValueError(f"sliced W1 is a lower bound only for the l2 and l1 costs, not {cost.name}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n_projections, x.shape[1], generator=g, dtype=torch.float64)
    theta /= theta.norm(dim=1, keepdim=True)
    px, py = x @ theta.T, y @ theta.T
    vals = np.array([w1_1d(px[:, i], py[:, i], a, b) for i in range(n_projections)])
    return W1Result(float(vals.mean()), LOWER, float(vals.mean()), math.inf, "sliced",
                    {"n_projections": n_projections, "max_projection": float(vals.max())})


# ----------------------------------------------------------------------------- the certified bracket
class _Blocks:
    """The cost matrix, dense when it fits in ``max_bytes`` and recomputed in row blocks otherwise."""

    def __init__(self, x, y, cost: Cost, max_bytes: int, block_bytes: int = 64 * 2**20, dtype=torch.float64):
        n, m = x.shape[0], y.shape[0]
        self.dense = cost.pairwise(x, y).to(dtype) if 8 * n * m <= max_bytes else None
        self.x, self.y, self.cost, self.dtype = x.to(dtype), y.to(dtype), cost, dtype  # blocks in the iteration dtype
        # blockwise: Euclidean costs by the Gram form (matrix-multiply speed; exact to about
        # sqrt(machine eps) * |x|), since the direct differences cost n * m * k without BLAS
        self.rows = max(1, block_bytes // (8 * m))
        self.cols = max(1, block_bytes // (8 * n))

    def by_rows(self):
        for s in range(0, self.x.shape[0], self.rows):
            sl = slice(s, s + self.rows)
            if self.dense is not None:
                yield sl, self.dense[sl]
            else:
                yield sl, self.cost.matrix(self.x[sl], self.y).to(self.dtype)

    def by_cols(self):
        """Blocks of ``C^T`` (all our costs are symmetric)."""
        for s in range(0, self.y.shape[0], self.cols):
            sl = slice(s, s + self.cols)
            yield sl, (self.dense[:, sl].T if self.dense is not None
                       else self.cost.matrix(self.y[sl], self.x).to(self.dtype))


def _softmin_rows(blocks_iter, pot, log_w, eps, out):
    """``out[i] = -eps * logsumexp_j(log_w[j] + (pot[j] - C[i, j]) / eps)`` over row blocks."""
    for sl, Cb in blocks_iter:
        out[sl] = -eps * torch.logsumexp(log_w[None, :] + (pot[None, :] - Cb) / eps, dim=1)
    return out


def w1_bracket(
    x, y, a=None, b=None, cost="l2", reg: float = 1e-3, max_iter: int = 1000, tol: float = 1e-9,
    scaling: float = 0.5, max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES, iter_dtype=torch.float64,
) -> W1Result:
    """Certified bracket ``lower <= W1 <= upper`` from log-domain Sinkhorn.

    Parameters
    ----------
    reg : final entropic regularisation, relative to the largest cost (``eps = reg * max C``).
    max_iter, tol : Sinkhorn iterations at the final ``eps`` stop when the L1 marginal error of
        the rows falls below ``tol`` (a tolerance below the iteration dtype's precision is raised
        to ``10 * machine epsilon`` and reported, so it cannot silently run to the cap).
    scaling : epsilon-scaling factor; ``eps`` goes ``max C, scaling * max C, ...`` down to the target.
    max_dense_bytes : above this the cost matrix is recomputed in row blocks (memory ``O(n + m)``).
    iter_dtype : dtype of the Sinkhorn iterations (float32 halves their time on large problems);
        the certification passes always run in float64, so the bracket stays valid.

    Returns a :class:`W1Result` with ``value = upper``; diagnostics hold the Sinkhorn value (an
    estimate), iterations, the marginal error, ``converged`` and whether the blockwise path ran.
    """
    x, y, a, b, cost = _prepare(x, y, a, b, cost)
    n, m = x.shape[0], y.shape[0]
    finfo = torch.finfo(iter_dtype)
    tol_used = max(tol, 10 * finfo.eps)
    blk = _Blocks(x, y, cost, max_dense_bytes, dtype=iter_dtype)
    cmax = max(float(Cb.max()) for _, Cb in blk.by_rows())
    diag = {"n": n, "m": m, "cost": cost.name, "blockwise": blk.dense is None, "tol": tol_used,
            "tol_raised": tol_used > tol, "iter_dtype": str(iter_dtype).replace("torch.", "")}
    if cmax == 0.0:  # every pair of points coincides
        return W1Result(0.0, _kind_for(cost), 0.0, 0.0, "bracket", {**diag, "iterations": 0, "converged": True,
                                                                  "marginal_error": 0.0, "sinkhorn_value": 0.0})
    la, lb = a.log().to(iter_dtype), b.log().to(iter_dtype)
    f = torch.zeros(n, dtype=iter_dtype)
    g = torch.zeros(m, dtype=iter_dtype)
    eps_final = reg * cmax
    schedule = []
    e = cmax
    while e > eps_final:
        schedule.append(e)
        e *= scaling
    schedule.append(eps_final)
    iters, err = 0, math.inf
    for k, eps in enumerate(schedule):
        final = k == len(schedule) - 1
        for _ in range(max_iter if final else 3):
            g = _softmin_rows(blk.by_cols(), f, la, eps, g)
            # row marginals of the plan after the g-update: a_i * exp((f_i - f_next_i) / eps)
            f_next = _softmin_rows(blk.by_rows(), g, lb, eps, torch.empty_like(f))
            err = float((a.to(iter_dtype) * torch.expm1((f - f_next) / eps).abs()).sum())
            f = f_next
            iters += 1
            if final and err < tol_used:
                break
    # ---- certification, float64 throughout
    f, g = f.double(), g.double()
    la, lb = a.log(), b.log()
    eps = eps_final
    cert = _Blocks(x, y, cost, max_dense_bytes) if iter_dtype != torch.float64 else blk
    # rounding (Altschuler et al. 2017, Alg. 2): P = diag(a e^{f/eps}) K diag(b e^{g/eps})
    log_r = torch.empty(n, dtype=torch.float64)
    for sl, Cb in cert.by_rows():
        log_r[sl] = la[sl] + f[sl] / eps + torch.logsumexp(lb[None, :] + (g[None, :] - Cb) / eps, dim=1)
    log_x = torch.clamp(la - log_r, max=0.0)
    log_c = torch.empty(m, dtype=torch.float64)
    for sl, CbT in cert.by_cols():
        log_c[sl] = lb[sl] + g[sl] / eps + torch.logsumexp((la + log_x)[None, :] + (f[None, :] - CbT) / eps, dim=1)
    log_y = torch.clamp(lb - log_c, max=0.0)
    col_sums = torch.exp(log_c + log_y)
    err_b = (b - col_sums).clamp_min(0.0)
    row_sums = torch.empty(n, dtype=torch.float64)
    transport_cost = 0.0
    C_err_b = torch.empty(n, dtype=torch.float64)
    g_tilde = lb + log_y + g / eps
    for sl, Cb in cert.by_rows():
        logP = (la[sl] + log_x[sl] + f[sl] / eps)[:, None] + g_tilde[None, :] - Cb / eps
        P = torch.exp(logP)
        row_sums[sl] = P.sum(1)
        transport_cost += float((P * Cb).sum())
        C_err_b[sl] = Cb @ err_b
    err_a = (a - row_sums).clamp_min(0.0)
    mass = float(err_a.sum())
    upper = transport_cost + (float(err_a @ C_err_b) / mass if mass > 0 else 0.0)
    # dual feasibility by the double c-transform of g: f_c = min_j C_ij - g_j, g_cc = min_i C_ij - f_c
    f_c = torch.empty(n, dtype=torch.float64)
    for sl, Cb in cert.by_rows():
        f_c[sl] = (Cb - g[None, :]).min(1).values
    g_cc = torch.empty(m, dtype=torch.float64)
    for sl, CbT in cert.by_cols():
        g_cc[sl] = (CbT - f_c[None, :]).min(1).values
    lower = float(a @ f_c + b @ g_cc)
    lower = min(lower, upper)  # equal up to rounding when the plan is optimal
    diag.update(iterations=iters, converged=err < tol_used, marginal_error=err, eps=eps,
                sinkhorn_value=transport_cost, rounding_mass=mass)
    return W1Result(upper, _kind_for(cost), max(lower, 0.0), upper, "bracket", diag)


# ----------------------------------------------------------------------------- the entropic value (an estimate)
def sinkhorn_cost(M, reg: float, iters: int = 100) -> float:
    """``<M, P_reg>`` after ``iters`` log-domain Sinkhorn iterations between uniform weights (POT's
    ``sinkhorn2(..., method="sinkhorn_log")``): the FA value the official UCMKD code logs. An estimate,
    not a bound (it is neither above nor below ``W1`` in general). ``M`` is an ``(n, m)`` NumPy array.
    """
    M = np.asarray(M, float)
    n, m = M.shape
    K = -M / reg
    la, lb = -math.log(n), -math.log(m)
    u, v = np.zeros(n), np.zeros(m)

    def lse(A, axis):
        mx = A.max(axis, keepdims=True)
        return (mx + np.log(np.exp(A - mx).sum(axis, keepdims=True))).squeeze(axis)

    for _ in range(iters):
        u = la - lse(K + v[None, :], 1)
        v = lb - lse(K + u[:, None], 0)
    return float((np.exp(K + u[:, None] + v[None, :]) * M).sum())


# ----------------------------------------------------------------------------- dispatcher
def wasserstein1(x, y, a=None, b=None, cost="l2", method: str = "auto", **kw) -> W1Result:
    """``W1`` by ``method`` in ``{"auto", "exact", "bracket", "sliced"}``.

    ``auto`` uses the 1-D formula for one-dimensional ``l1``/``l2`` problems, the network simplex
    while ``n * m <= 25e6``, and the certified bracket beyond.
    """
    if method == "exact":
        return w1_exact(x, y, a, b, cost, **kw)
    if method == "bracket":
        return w1_bracket(x, y, a, b, cost, **kw)
    if method == "sliced":
        return w1_sliced(x, y, a, b, cost=cost, **kw)
    if method != "auto":
        raise ValueError(f"unknown W1 method {method!r}")
    xc, yc = check_cloud(x, "x"), check_cloud(y, "y")
    c = get_cost(cost)
    if xc.shape[1] == 1 and c.has_1d_formula:
        v = w1_1d(xc[:, 0], yc[:, 0], a, b)
        return W1Result(v, CERTIFIED, v, v, "exact-1d", {"n": xc.shape[0], "m": yc.shape[0], "cost": c.name})
    if xc.shape[0] * yc.shape[0] <= EXACT_MAX_PAIRS:
        return w1_exact(xc, yc, a, b, cost)
    return w1_bracket(xc, yc, a, b, cost, **kw)
