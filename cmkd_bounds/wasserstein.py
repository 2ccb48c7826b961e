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
- :func:`w1_bracket`: a certified interval ``lower <= W1 <= upper`` whose relative width
  ``(upper - lower) / lower`` reaches a requested ``width``. Sinkhorn iterations with
  epsilon-scaling give dual potentials; every few rounds a certificate is computed from them:
  the plan they define, rounded onto the marginals (Altschuler, Weed & Rigollet 2017,
  Algorithm 2), is feasible, so its cost is an upper end; the double c-transform of the column
  potential is dual-feasible, so its value is a lower end (weak duality). Both are valid after
  any number of iterations, and every cost that enters them carries a proved floating-point
  margin (:class:`_Ground`). When the cost matrix does not fit in ``max_dense_bytes`` it is
  recomputed block by block (memory linear in ``n + m``).
- :func:`w1_sliced`: the mean over random unit directions of the 1-D distance of the projections.
  For ``l2`` (and ``l1``) each projection is 1-Lipschitz, so the value is a lower bound on ``W1``.
- :func:`w1_1d`: the exact formula in one dimension, ``int |F_mu(t) - F_nu(t)| dt``.
- :func:`wasserstein1`: ``method="auto"`` picks the exact solver or the bracket by the crossover
  measured in ``scripts/bench_w1.py`` (with a time budget and a fallback to the exact solver), and
  says why in its diagnostics.

Every computation runs in torch on the device of the input tensors (or ``device=``), so the
bracket runs on a GPU when given CUDA tensors; the exact solver runs on the CPU (POT).
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import ot
import torch

from cmkd_bounds.costs import Cost, as_tensor, get_cost, power_of_two_unit
from cmkd_bounds.kinds import ESTIMATED, LOWER, SAMPLE

DEFAULT_MAX_DENSE_BYTES = 2 * 2**30
DEFAULT_WIDTH = 1e-2

# `method="auto"`: (width, n * m) from which on the bracket at that width took at most half the network
# simplex's time in scripts/bench_w1.py (reports/benchmarks/w1.json: d = 64, 2 CPU threads, shared machine).
# Log-log interpolation between widths; below the narrowest width listed (0.003 never qualified) the
# exact solver is used wherever it fits in memory.
AUTO_CROSSOVER = ((0.03, 70_000), (0.01, 480_000))
# seconds of the network simplex at n * m pairs, fitted in the same benchmark (n >= 500): A (n m)^alpha.
# Under `auto` the bracket gets half of this; where it does not reach the width in that time (low
# dimensions, W1 far below the largest cost: Sinkhorn needs eps ~ width * W1), the exact solver runs.
EXACT_SECONDS = (2.7e-9, 1.28)


@dataclass(frozen=True, kw_only=True)
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
        """``(upper - lower) / lower``: 0 for an exact value, ``inf`` when the lower end is 0 and the upper is not."""
        if self.upper <= self.lower:
            return 0.0
        return (self.upper - self.lower) / self.lower if self.lower > 0 else math.inf


# ----------------------------------------------------------------------------- input checks
def check_cloud(x, name: str = "x") -> torch.Tensor:
    """``x`` as a float64 ``(n, k)`` tensor (detached: these distances are values, not losses); a clear
    error for empty, ragged or non-finite input."""
    x = as_tensor(x).detach()
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


def check_weights(w, n: int, name: str = "a", device=None) -> torch.Tensor:
    """Weights normalised to mass 1 (uniform when ``None``); errors on negative or zero mass."""
    if w is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=device)
    w = as_tensor(w).detach().reshape(-1).to(device)
    if w.shape[0] != n:
        raise ValueError(f"{name}: {w.shape[0]} weights for {n} points")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name}: weights must be finite and non-negative")
    s = float(w.sum())
    if s <= 0:
        raise ValueError(f"{name}: weights sum to zero")
    return w / s


def _prepare(x, y, a, b, cost, device=None):
    x, y = check_cloud(x, "x"), check_cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y live in different dimensions: {x.shape[1]} and {y.shape[1]}")
    device = torch.device(device) if device is not None else x.device
    x, y = x.to(device), y.to(device)
    a, b = check_weights(a, x.shape[0], "a", device), check_weights(b, y.shape[0], "b", device)
    keep_a, keep_b = a > 0, b > 0  # zero-mass points change nothing and break log-weights
    return x[keep_a], y[keep_b], a[keep_a], b[keep_b], get_cost(cost)


def _kind_for(cost: Cost) -> str:
    """``sample``: the value is W1 between these two empirical measures (exact, or a proved upper end); under a
    cost that is not a metric it is an optimal transport cost, not a distance a Lipschitz argument can use."""
    return SAMPLE if cost.is_metric else ESTIMATED


SMALL_PAIRS = 2**22  # CPU problems with n * m below this run on one intra-op thread (see _one_thread_if_small)


@contextmanager
def _one_thread_if_small(pairs: int, device):
    """One torch thread for a small CPU problem, restored afterwards.

    Its operations are too small to gain from a second thread, and on a shared machine each
    parallel region waits for a descheduled thread: measured with another 2-process job on the 2
    cores, the bracket at n = 500 took 0.85 s on 2 threads and 0.010 s on 1 (n = 2000: 1.24 s and
    0.14 s). Larger problems keep the caller's setting. The setting is process-wide while it lasts.
    """
    prev = torch.get_num_threads()
    if torch.device(device).type != "cpu" or pairs >= SMALL_PAIRS or prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


# ----------------------------------------------------------------------------- exact
def w1_exact(x, y, a=None, b=None, cost="l2", max_iter: int = 10_000_000) -> W1Result:
    """Exact ``W1`` by the network simplex (POT ``emd2``) on the dense ``(n, m)`` cost matrix (on the CPU)."""
    with _one_thread_if_small(len(x) * len(y), "cpu"):
        return _exact(x, y, a, b, cost, max_iter)


def _exact(x, y, a, b, cost, max_iter) -> W1Result:
    x, y, a, b, cost = _prepare(x, y, a, b, cost, device="cpu")
    need = _exact_bytes(x.shape[0], y.shape[0])
    if need > DEFAULT_MAX_DENSE_BYTES * 4:
        raise MemoryError(f"exact W1 at n={x.shape[0]}, m={y.shape[0]} needs about {need / 2**30:.1f} GiB "
                          "for the cost matrix and plan; use w1_bracket (blockwise) instead")
    C = cost.pairwise(x, y).numpy()
    # the network simplex compares reduced costs with fixed tolerances: at costs of 1e-166 it stops at once with a
    # plan that is not optimal, so costs far from unit scale are divided by a power of two (exact) first
    unit = power_of_two_unit(float(C.max()) if C.size else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value, log = ot.emd2(a.numpy(), b.numpy(), C / unit, numItermax=max_iter, log=True)
    value = value * unit
    converged = log.get("result_code", 1) == 1
    return W1Result(value=float(value), kind=_kind_for(cost) if converged else ESTIMATED, lower=float(value),
                    upper=float(value), method="exact",
                    diagnostics={"converged": converged, "warning": log.get("warning"), "n": x.shape[0],
                                 "m": y.shape[0], "cost": cost.name})


def _exact_bytes(n: int, m: int) -> int:
    """Memory of the network simplex: the float64 cost matrix and the float64 plan POT returns."""
    return 16 * n * m


# ----------------------------------------------------------------------------- 1-D and sliced
def w1_1d(u, v, a=None, b=None) -> float:
    """Exact ``W1`` between weighted samples on the real line: ``int |F(t) - G(t)| dt``."""
    u, v = as_tensor(u).detach().reshape(-1), as_tensor(v).detach().reshape(-1)
    a, b = check_weights(a, u.shape[0], "a", u.device), check_weights(b, v.shape[0], "b", v.device)
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
    x, y, a, b, cost = _prepare(x, y, a, b, cost, device="cpu")
    if not cost.sliced_is_lower:
        raise ValueError(f"sliced W1 is a lower bound only for the l2 and l1 costs, not {cost.name}")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n_projections, x.shape[1], generator=g, dtype=torch.float64)
    theta /= theta.norm(dim=1, keepdim=True)
    px, py = x @ theta.T, y @ theta.T
    vals = np.array([w1_1d(px[:, i], py[:, i], a, b) for i in range(n_projections)])
    return W1Result(value=float(vals.mean()), kind=LOWER, lower=float(vals.mean()), upper=math.inf, method="sliced",
                    diagnostics={"n_projections": n_projections, "max_projection": float(vals.max())})


# ----------------------------------------------------------------------------- costs with a proved error bound
_U64 = 2.0**-53  # unit roundoff of float64 (round to nearest)


def _gamma(k: int) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``: bounds the relative error of ``k`` float64 roundings."""
    return k * _U64 / (1 - k * _U64)


class _Ground:
    r"""The cost matrix of one problem, computed in blocks, with a proved float64 error bound.

    The points are first prepared: centred (``l2``, ``l1``: translation-invariant costs, so any
    centre gives the same distances, and centring removes the cancellation that a common offset
    causes) or normalised (``chordal``, ``cosine``, the same formula as :mod:`cmkd_bounds.costs`).
    Blocks ``Ĉ`` are then computed at matrix-multiply speed: for ``l2`` and ``chordal`` by the Gram
    form ``sqrt(max(|x|^2 + |y|^2 - 2 x.y, 0))`` (one product of the points with their squared norms
    appended), for ``l1`` by ``torch.cdist(p=1)``, for ``cosine``
    by ``1 - x.y``. In float64 (unit roundoff ``u``, ``gamma_j = j u / (1 - j u)``, dimension ``k``)
    every entry obeys

    .. math:: |\hat C_{ij} - C_{ij}| \le \kappa\,(\nu_i + \mu_j),

    with ``nu``, ``mu`` upper bounds on the norms of the prepared points and

    - ``l2``: ``kappa = 2 sqrt(gamma_{k+2})``. Proof: centring rounds each coordinate once, so
      ``|x~ - (x - c)| <= u/(1-u) |x~|`` and the distance moves by at most ``u/(1-u) (|x~| + |y~|)``;
      ``D = [-2 x~, |x~|^2, 1] . [y~, 1, |y~|^2]``, a dot product of length ``k + 2`` whose two
      squared norms carry relative errors ``gamma_k``, is within
      ``(gamma_{k+2} (1 + gamma_k) + gamma_k) (|x~| + |y~|)^2 <= 2.01 gamma_{k+2} (|x~| + |y~|)^2`` of
      ``|x~ - y~|^2`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, §3.1, for any
      summation order, blocked or fused); ``|sqrt(p) - sqrt(q)| <= sqrt(|p - q|)`` for ``p, q >= 0``
      (clamping ``D`` at 0 only moves it closer) and the rounded square root adds ``u Ĉ``. The sum
      is below ``(1.42 sqrt(gamma_{k+2}) + 3u) (|x~| + |y~|) <= kappa (nu_i + mu_j)``.
    - ``chordal``: as ``l2`` plus ``2 gamma_{k+4}`` for the normalisation (the norm has relative
      error ``gamma_{k+1}``, the division one more rounding).
    - ``l1``: ``kappa = 2 gamma_{k+2}`` with ``nu``, ``mu`` the l1 norms: a sum of ``k`` rounded
      non-negative differences is within ``gamma_k`` of the exact sum, and centring adds ``u/(1-u)``.
    - ``cosine``: ``kappa = 2 gamma_{k+4}`` with ``nu = mu = 1``: the dot product of unit vectors
      errs by ``gamma_k``, the normalisation by ``2 gamma_{k+4}``, the subtraction from 1 by ``u``.
    - ``sup`` (the sup norm of the margins, the oscillation metric of logits; translation-invariant,
      so centred): ``kappa = 4 gamma_3`` with ``nu``, ``mu`` the sup norms. Each coordinate difference
      is rounded once and centring adds ``u/(1-u)`` per coordinate, so every difference is within
      ``gamma_2 (nu_i + mu_j)`` of the exact one; a maximum moves by at most the largest
      perturbation, and ``(max - min) / 2`` adds one rounded subtraction, ``u (nu_i + mu_j)``.
    - a truncated cost ``min(C, M)``: ``t -> min(t, M)`` is 1-Lipschitz, so the bound of its base
      holds unchanged, and ``M`` bounds every entry.

    ``nu``, ``mu`` are the computed norms inflated by ``1 + 2 gamma_{k+4}`` (a computed norm has
    relative error at most ``gamma_{k+1}``, a normalised vector's norm differs from 1 by at most
    ``gamma_{k+4}``), so ``C_ij <= nu_i + mu_j`` holds for the exact cost too (triangle inequality
    through the centre; ``scale = max nu + max mu`` bounds every cost). The bound is separable, so for
    a plan ``P`` with marginals ``r, c`` it costs one scalar:
    ``<P, C> <= <P, Ĉ> + kappa (<r, nu> + <c, mu>)``.
    Blocks computed in float32 carry no bound and serve only the iterations; a float32 copy of
    float64 blocks (the dense path's stored matrix) adds a relative error ``u_32`` (``rho`` in
    :func:`_certify`).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, cost: Cost):
        if cost.form is None:
            raise ValueError(f"the bracket knows no floating-point error bound for the cost {cost.name!r}")
        self.form, self.root, self.cap = cost.form, cost.root, cost.cap
        k = x.shape[1]
        self.unit = 1.0  # the costs of the prepared points times this are the costs of the given ones
        if cost.centred:
            centre = torch.cat([x, y]).mean(0)
            x, y = x - centre, y - centre
            # a translation-invariant cost here is a norm of x - y: homogeneous, so points far from unit scale are
            # divided by a power of two (exactly) and every cost and bound multiplied back at the end
            self.unit = power_of_two_unit(float(torch.cat([x, y]).abs().max()))
            x, y = x / self.unit, y / self.unit
            self.cap = None if self.cap is None else self.cap / self.unit
        else:
            x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            y = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        self.x, self.y = x, y
        inflate = 1 + 2 * _gamma(k + 4)
        if self.form == "l1":
            self.nu, self.mu = x.abs().sum(1) * inflate, y.abs().sum(1) * inflate
            self.kappa = 2 * _gamma(k + 2)
        elif self.form == "dot":
            self.nu, self.mu = torch.ones_like(x[:, 0]), torch.ones_like(y[:, 0])
            self.kappa = 2 * _gamma(k + 4)
        elif self.form == "sup":
            self.nu, self.mu = x.abs().amax(1) * inflate, y.abs().amax(1) * inflate
            self.kappa = 4 * _gamma(3)
        else:
            self.nu, self.mu = x.norm(dim=1) * inflate, y.norm(dim=1) * inflate
            self.kappa = 2 * math.sqrt(_gamma(k + 2)) + (0.0 if cost.centred else 2 * _gamma(k + 4))
        # an upper bound on every entry of C (triangle inequality; 2 for directions; the truncation level)
        self.scale = float(self.nu.max() + self.mu.max()) if self.form != "dot" else 2.0
        if self.cap is not None:
            self.scale = min(self.scale, self.cap)
        self._cast: dict = {}

    def _points(self, dtype, transpose: bool):
        key = (dtype, transpose)
        if key not in self._cast:
            x, y = (self.y, self.x) if transpose else (self.x, self.y)
            x, y = x.to(dtype), y.to(dtype)
            if self.form == "gram":  # [-2x, |x|^2, 1] . [y, 1, |y|^2] = |x - y|^2 in one product
                one_x, one_y = torch.ones_like(x[:, :1]), torch.ones_like(y[:, :1])
                x = torch.cat([-2 * x, (x * x).sum(1, keepdim=True), one_x], 1)
                y = torch.cat([y, one_y, (y * y).sum(1, keepdim=True)], 1)
            self._cast[key] = (x, y)
        return self._cast[key]

    def block(self, rows: slice, dtype, transpose: bool = False) -> torch.Tensor:
        """``Ĉ[rows, :]`` (or ``Ĉ[:, rows].T`` with ``transpose``) as a fresh tensor in ``dtype``."""
        x, y = self._points(dtype, transpose)
        if self.form == "gram":
            C = torch.mm(x[rows], y.T).clamp_min_(0.0).sqrt_()
        elif self.form == "l1":
            C = torch.cdist(x[rows], y, p=1)
        elif self.form == "sup":
            C = self.root.matrix(x[rows], y)
        else:
            C = torch.mm(x[rows], y.T).neg_().add_(1.0).clamp_min_(0.0)
        return C.clamp_max_(self.cap) if self.cap is not None else C

    def blocks(self, dtype, block_bytes: int, transpose: bool = False):
        """Row blocks ``(slice, Ĉ block)`` of about ``block_bytes`` each."""
        n, m = (self.y.shape[0], self.x.shape[0]) if transpose else (self.x.shape[0], self.y.shape[0])
        step = max(1, block_bytes // (torch.finfo(dtype).bits // 8 * m))
        for s in range(0, n, step):
            sl = slice(s, min(s + step, n))
            yield sl, self.block(sl, dtype, transpose)


# ----------------------------------------------------------------------------- the certificate
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}  # exp() of less underflows to slow subnormals


@dataclass(frozen=True)
class _Certificate:
    lower: float
    upper: float
    plan_cost: float  # <P~, Ĉ> of the rounded plan before the rank-one repair (an estimate of W1)
    repair: float  # cost of the rank-one repair of the rounding
    mass: float  # mass moved by the repair
    margin: float  # what the floating-point error bounds added to the upper end and took from the lower
    certified: bool = True  # False: an estimate in the iteration dtype without error bounds (not returned)

    @property
    def width(self) -> float:
        if self.upper <= self.lower:
            return 0.0
        return (self.upper - self.lower) / self.lower if self.lower > 0 else math.inf


def _certify(blocks, plan, g, a, b, scale, margin) -> _Certificate:
    r"""Both ends of the bracket from a plan and a column potential ``g``, in two passes over the costs.

    ``blocks()`` yields row blocks ``(slice, Ĉ[slice, :])`` (not modified) and is called twice;
    ``plan(slice, Ĉ block)`` returns a fresh non-negative block of some matrix ``P`` (any matrix
    gives valid ends; the Sinkhorn plan, whose columns are near ``b`` since ``g`` was updated last,
    gives tight ones). ``scale`` bounds every entry of the exact ``C`` (``max nu + max mu`` by the
    triangle inequality through the centre, 2 for directions). ``margin = (kappa, nu, mu, rho)``:
    ``|Ĉ_ij - C_ij| <= rho Ĉ_ij + kappa (nu_i + mu_j)`` (:class:`_Ground`; ``rho`` is the relative
    rounding of a stored float32 copy of the float64 ``Ĉ``, 0 otherwise).

    Upper end (pass 1). Each row of ``P`` is shrunk by ``X_i = min(1, a_i / r_i)`` to ``P~``; the
    deficits ``e_a = a - P~ 1`` and ``e_b = b - P~^T 1`` (clipped at 0) are joined by the rank-one
    plan ``e_a e_b^T / |e_a|_1`` (Altschuler, Weed & Rigollet 2017, Algorithm 2; its cost
    ``e_a^T Ĉ e_b / |e_a|_1`` comes from pass 2). The result ``Q`` is feasible in exact arithmetic;
    in floating point its marginals ``r', c'`` are computed and
    ``W1 <= <Q, C> + max C (|a - r'|_1 + |b - c'|_1)``: shrink ``Q`` onto the marginals and repair
    the deficit, which is at most that L1 residual, at cost at most ``max C`` per unit. With the
    margin, ``<Q, C> <= (1 + rho) <Q, Ĉ> + kappa (<r', nu> + <c', mu>)``; the float64 sums (row sums
    of at most ``m`` terms, then at most ``n``) are inflated by ``gamma_{n+m+16}`` (Higham 2002,
    §3.1, any summation order).

    Lower end (passes 1 and 2). ``f~_i = min_j Ĉ_ij - g_j`` and ``g~_j = min_i Ĉ_ij - f~_i`` (double
    c-transform). The rounded subtraction in ``g~`` can exceed ``Ĉ_ij - f~_i`` by
    ``tau = u max |Ĉ_ij - f~_i| <= u (2 (scale + kappa max (nu + mu)) + max |f~|)``, so
    ``(1 - rho) f~ - kappa nu`` and ``(1 - rho) g~ - kappa mu - tau`` are feasible for the exact ``C``
    (``(1 - rho) Ĉ - kappa (nu_i + mu_j) <= C``), and weak duality gives
    ``W1 >= (1 - rho) (<a, f~> + <b, g~>) - kappa (<a, nu> + <b, mu>) - tau`` minus
    ``gamma_{n+m+8}`` times the absolute sums (rounding of the dot products).
    """
    dev, dtype = a.device, None
    n, m = a.shape[0], b.shape[0]
    ft = torch.empty(n, dtype=torch.float64, device=dev)
    rt = torch.empty(n, dtype=torch.float64, device=dev)
    ct = torch.zeros(m, dtype=torch.float64, device=dev)
    plan_cost = 0.0
    # pass 1: the first c-transform; the plan, its rows shrunk onto a, its cost and its marginals
    for sl, C in blocks():
        if dtype is None:
            dtype, gd = C.dtype, g.to(C.dtype)
        ft[sl] = torch.sub(C, gd).amin(1).double()
        P = plan(sl, C)
        r = P.sum(1)
        x = (a[sl].to(dtype) / r).clamp_max_(1.0)
        x[r == 0] = 0.0
        rt[sl] = (r * x).double()
        ct += (x @ P).double()
        plan_cost += float(x @ P.mul_(C).sum(1))
    ea, eb = (a - rt).clamp_min(0.0), (b - ct).clamp_min(0.0)
    # pass 2: the second c-transform and the cost of the rank-one repair
    ftd, ebd = ft.to(dtype), eb.to(dtype)
    gt = torch.full((m,), math.inf, dtype=dtype, device=dev)
    c_eb = torch.empty(n, dtype=torch.float64, device=dev)
    for sl, C in blocks():
        c_eb[sl] = (C @ ebd).double()
        gt = torch.minimum(gt, torch.sub(C, ftd[sl, None]).amin(0))
    mass = float(ea.sum())
    if mass > 0:
        repair = float(ea @ c_eb) / mass
        r1, c1 = rt + ea * (float(eb.sum()) / mass), ct + eb
    else:
        repair, r1, c1 = 0.0, rt, ct
    resid = float((a - r1).abs().sum() + (b - c1).abs().sum())
    gtd = gt.double()
    dual = float(a @ ft + b @ gtd)
    raw_upper = plan_cost + repair + scale * resid
    kappa, nu, mu, rho = margin
    g_s = _gamma(n + m + 16)
    spread_q = kappa * float(r1 @ nu + c1 @ mu)
    upper = (1 + g_s) * ((1 + rho) * (plan_cost + repair) + spread_q) + scale * (resid + 4 * g_s)
    spread = kappa * float(a @ nu + b @ mu)
    tau = _U64 * (2 * (scale + kappa * float(nu.max() + mu.max())) + float(ft.abs().max()))
    lower = ((1 - rho) * dual - spread - tau
             - _gamma(n + m + 8) * (float(a @ ft.abs() + b @ gtd.abs()) + spread))
    return _Certificate(lower, upper, plan_cost, repair, mass, (upper - raw_upper) + (dual - lower))


# ----------------------------------------------------------------------------- Sinkhorn iterations
class _DenseSinkhorn:
    r"""Sinkhorn in scaling form on a stored cost matrix, stabilised by absorption (Schmitzer 2019).

    The plan is ``P = diag(a s) K diag(b t)`` with ``K_ij = exp((f_i + g_j - M_ij) / eps)``; one
    iteration is two matrix-vector products (``a s = a / K (b t)``, then ``b t = b / K^T (a s)``, so
    the columns are exact at the end), and when a scaling leaves ``[1/tau, tau]`` (tested every
    ``check_every`` iterations) it is absorbed into the potentials (``f += eps log s``) and ``K``
    is rebuilt. POT's ``sinkhorn_stabilized`` implements the same scheme, but on a warm start it
    resets the scalings to ``1/n`` (an absorption at every iteration when ``n > tau``) and returns a
    plan scaled by ``1/(n m)`` after an absorption at its last iteration, so it is written out here.
    """

    def __init__(self, M: torch.Tensor, a: torch.Tensor, b: torch.Tensor, tau: float = 1e3):
        self.M, self.K = M, torch.empty_like(M)
        self.a, self.b = a.to(M.dtype), b.to(M.dtype)
        self.log_tau, self.tiny = math.log(tau), torch.finfo(M.dtype).tiny
        self.absorptions = 0

    def _kernel(self, f, g, eps):
        dt = self.M.dtype
        torch.sub(f.to(dt)[:, None], self.M, out=self.K)
        self.K.add_(g.to(dt)[None, :]).mul_(1.0 / eps).clamp_(min=_EXP_FLOOR[dt]).exp_()

    def run(self, f, g, eps: float, iters: int, tol: float = 0.0, check_every: int = 5):
        """Up to ``iters`` iterations at ``eps``, fewer once the row marginals are within ``tol`` (L1)."""
        a, b, K = self.a, self.b, self.K
        self._kernel(f, g, eps)
        u, v = a.clone(), b.clone()  # u = a s, v = b t: four vector operations per iteration
        done = 0
        for it in range(iters):
            u = a / (K @ v)
            v = b / (K.T @ u)
            done += 1
            if it % check_every == check_every - 1 or it == iters - 1:
                s, t = u / a, v / b
                big = float(torch.maximum(s.log().abs().max(), t.log().abs().max()))
                if not big <= self.log_tau:  # also when a scaling is 0 or inf
                    s, t = s.clamp(self.tiny, 1 / self.tiny), t.clamp(self.tiny, 1 / self.tiny)
                    f, g = f + eps * s.double().log(), g + eps * t.double().log()
                    self._kernel(f, g, eps)
                    u, v = a.clone(), b.clone()
                    self.absorptions += 1
                elif tol > 0 and float((u * (K @ v) - a).abs().sum()) < tol:
                    break
        err = float((u * (K @ v) - a).abs().sum())  # L1 error of the row marginals
        self.u, self.v = u, v  # the plan is diag(u) K diag(v), for the certificate
        return f + eps * (u / a).double().log(), g + eps * (v / b).double().log(), err, done


def _softmin_(C: torch.Tensor, h: torch.Tensor, eps: float) -> torch.Tensor:
    """``-eps log sum_j exp((h_j - C_ij) / eps)`` over the rows of ``C``, overwriting ``C``."""
    C.sub_(h[None, :]).mul_(-1.0 / eps)
    mx = C.amax(1, keepdim=True)
    s = C.sub_(mx).clamp_(min=_EXP_FLOOR[C.dtype]).exp_().sum(1)
    return (s.log_() + mx[:, 0]).mul_(-eps)


class _BlockSinkhorn:
    r"""Log-domain Sinkhorn with the cost recomputed in blocks: memory ``O((n + m) k)`` plus one block.

    ``f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)``, then the same for ``g`` (so the columns of
    the plan are exact at the end); both passes recompute ``C`` by matrix products (no library
    offers this without KeOps, which cannot be compiled here). The L1 error of the row marginals
    before each ``f`` update is ``sum_i a_i |exp((f_i - f_i') / eps) - 1|``.
    """

    def __init__(self, ground: _Ground, a, b, dtype, block_bytes: int):
        self.ground, self.dtype, self.block_bytes = ground, dtype, block_bytes
        self.a, self.b, self.la, self.lb = a, b, a.log(), b.log()
        self.absorptions = 0

    def _pass(self, pot, log_w, eps, transpose):
        h = (pot + eps * log_w).to(self.dtype)
        out = [(sl, _softmin_(C, h, eps)) for sl, C in self.ground.blocks(self.dtype, self.block_bytes, transpose)]
        return torch.cat([v for _, v in out]).double()

    def run(self, f, g, eps: float, iters: int, tol: float = 0.0):
        err, done = math.inf, 0
        for _ in range(iters):
            f_new = self._pass(g, self.lb, eps, transpose=False)
            err = float((self.a * torch.expm1((f - f_new) / eps).abs()).sum())
            f = f_new
            g = self._pass(f, self.la, eps, transpose=True)
            done += 1
            if err < tol:
                break
        return f, g, err, done


# ----------------------------------------------------------------------------- the certified bracket
_EPS_PER_WIDTH = 0.5  # the floor of eps for a width w: 0.5 w W1 (measured at d = 64, see w1_bracket)


def w1_bracket(
    x, y, a=None, b=None, cost="l2", *, width: float = DEFAULT_WIDTH, reg: float | None = None,
    max_iter: int = 10_000, tol: float = 1e-9, scaling: float | None = None, inner: int | None = None,
    eps_start: float = 0.25, check_every: int = 3, max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES,
    block_bytes: int = 256 * 2**20,
    iter_dtype=torch.float32, device=None, time_limit: float | None = None,
) -> W1Result:
    r"""Certified bracket ``lower <= W1 <= upper`` whose relative width ``(upper - lower) / lower`` reaches ``width``.

    Entropic regularisation replaces the linear programme by
    ``min_P <C, P> + eps KL(P | a b^T)``, solved by Sinkhorn iterations on the dual potentials
    ``(f, g)``; the plan it defines costs more than ``W1`` by about ``eps`` times an entropy, and
    Sinkhorn needs about ``max C / eps`` iterations from a cold start. Epsilon-scaling
    (Kosowsky & Yuille 1994; Schmitzer 2019) warm-starts each regularisation from the previous
    one: ``eps`` starts at ``eps_start * max C`` and falls by ``scaling`` per round of at most
    ``inner`` iterations (a round ends early once the marginals are within ``width / 4`` in L1)
    down to a floor ``0.5 * width * W1_est`` (``W1_est`` the current dual value; the factor 0.5 is
    where the bracket reached the width at ``d = 64``, ``n <= 5000`` in ``scripts/bench_w1.py``).
    From the floor on, the bracket is certified (:func:`_certify`: rounding for the upper end,
    c-transforms for the lower end, proved floating-point margins) and the run stops as soon as
    the certified width is at most ``width``. When it is not, the split of the gap decides the
    next round: if the rank-one repair of the rounding (non-convergence) dominates, the
    iterations continue at the same ``eps`` with checks at doubling intervals; otherwise
    (entropic bias) the floor falls by ``scaling``. The returned ends are the intersection of
    every certificate computed.

    Two iteration schemes, chosen by memory:

    - dense (``2 * itemsize * n * m <= max_dense_bytes``): the cost matrix is stored in
      ``iter_dtype`` (computed in float64 and rounded once) and Sinkhorn runs in scaling form
      (two matrix-vector products per iteration, :class:`_DenseSinkhorn`); ``inner = 20``,
      ``scaling = 0.5``. The certificate reads the stored matrix and kernel (float64 arithmetic
      on their entries; the float32 rounding of the matrix is one more relative margin).
    - blockwise: log-domain iterations recomputing the cost in blocks of ``block_bytes``
      (:class:`_BlockSinkhorn`), one iteration per regularisation (``inner = 1``,
      ``scaling = 0.6``); at the floor, then every ``check_every`` rounds (doubling while held),
      the certificate is first estimated in ``iter_dtype`` without margins (about one iteration)
      and computed in float64 (two passes, about three float32 iterations) only when the estimate
      reaches the width.

    Float32 iterations compute the blockwise costs by the Gram form, which loses the distances
    of points much closer than their norms (after centring): the iterations then converge to
    poorer potentials (the certificate stays valid, the bracket wider); ``iter_dtype=torch.float64``
    avoids it at twice the cost. On the CPU, problems with ``n * m < SMALL_PAIRS`` (4M) run on one
    torch thread (see :func:`_one_thread_if_small`).

    Parameters
    ----------
    x, y : array or tensor, shape ``(n, k)`` and ``(m, k)``
        The two clouds; tensors keep their device (the iterations and the certificate run there).
    a, b : array or tensor, shape ``(n,)`` and ``(m,)``, optional
        Non-negative weights (uniform when omitted), normalised to mass 1.
    cost : str or Cost
        ``l2``, ``l1``, ``chordal`` (metrics: the bracket is certified) or ``cosine`` (estimated).
    width : float
        Requested relative width ``(upper - lower) / lower`` (default ``1e-2``).
    reg : float, optional
        Smallest regularisation tried, relative to the largest cost (``eps >= reg * max C``);
        default ``100`` machine epsilons of ``iter_dtype`` (1.2e-5 in float32), where the
        rounding of the potentials starts to blur the kernel.
    max_iter : int
        Cap on Sinkhorn iterations over all rounds; the run then certifies its state and stops.
    tol : float
        At the smallest regularisation, the run stops when the L1 marginal error is below
        ``tol`` (raised to ``10 * machine epsilon`` of ``iter_dtype`` and reported).
    scaling, inner, eps_start, check_every : schedule (defaults above).
    max_dense_bytes, block_bytes : memory of the dense matrices, and of one block.
    iter_dtype : torch dtype of the iterations (float32 by default; the certificate is float64).
    device : torch device, optional; default the device of ``x``.
    time_limit : float, optional
        Seconds after which the run certifies its current state and stops.

    Returns
    -------
    W1Result
        ``value = upper``, ``kind`` sample for a metric cost (a proved bound on this sample's W1). ``diagnostics`` hold
        ``width_requested``, ``width_reached``, ``iterations``, ``rounds``, ``eps_schedule``
        (``eps / max C`` per round), ``checks`` (iteration, eps, whether certified, ends, width,
        repair cost and mass, seconds since the start, for every certificate and estimate),
        ``n_certificates``,
        ``seconds``, ``stopped`` (why), ``blockwise``, ``device``, ``marginal_error``,
        ``converged`` (marginal error below ``tol``), ``sinkhorn_value`` (an estimate),
        ``fp_margin`` (what the floating-point bounds cost, both ends together).

    References
    ----------
    J. Altschuler, J. Weed, P. Rigollet. Near-linear time approximation algorithms for optimal
    transport via Sinkhorn iteration. NeurIPS 2017.
    B. Schmitzer. Stabilized sparse scaling algorithms for entropy regularized transport
    problems. SIAM J. Sci. Comput. 41(3), 2019.
    G. Peyré, M. Cuturi. Computational Optimal Transport, §4.4 and §6.1, 2019.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 3))
    >>> r = w1_bracket(x, x + [1.0, 0.0, 0.0], width=1e-2)
    >>> r.lower <= 1.0 <= r.upper and r.relative_width <= 1e-2
    True
    """
    start = time.perf_counter()
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    with _one_thread_if_small(len(x) * len(y), device if device is not None else getattr(x, "device", "cpu")):
        x, y, a, b, cost = _prepare(x, y, a, b, cost, device)
        plan = _BracketPlan(width=width, reg=reg, max_iter=max_iter, tol=tol, scaling=scaling, inner=inner,
                            eps_start=eps_start, check_every=check_every, max_dense_bytes=max_dense_bytes,
                            block_bytes=block_bytes, iter_dtype=iter_dtype, time_limit=time_limit)
        return _bracket(x, y, a, b, cost, plan, start)


@dataclass(frozen=True, kw_only=True)
class _BracketPlan:
    """The options of :func:`w1_bracket` that shape the run (see its parameters)."""

    width: float
    reg: float | None
    max_iter: int
    tol: float
    scaling: float | None
    inner: int | None
    eps_start: float
    check_every: int
    max_dense_bytes: int
    block_bytes: int
    iter_dtype: torch.dtype
    time_limit: float | None


def _bracket(x, y, a, b, cost: Cost, plan: _BracketPlan, start: float) -> W1Result:
    width, reg, max_iter, tol, scaling, inner = plan.width, plan.reg, plan.max_iter, plan.tol, plan.scaling, plan.inner
    eps_start, check_every, iter_dtype, time_limit = plan.eps_start, plan.check_every, plan.iter_dtype, plan.time_limit
    max_dense_bytes, block_bytes = plan.max_dense_bytes, plan.block_bytes
    n, m = x.shape[0], y.shape[0]
    ground = _Ground(x, y, cost)
    itemsize = torch.finfo(iter_dtype).bits // 8
    dense = 2 * itemsize * n * m <= max_dense_bytes
    tol_used = max(tol, 10 * torch.finfo(iter_dtype).eps)
    diag = {"n": n, "m": m, "cost": cost.name, "blockwise": not dense, "device": str(x.device),
            "iter_dtype": str(iter_dtype).replace("torch.", ""), "width_requested": width, "tol": tol_used,
            "tol_raised": tol_used > tol}
    if ground.scale == 0.0:  # every prepared point is the same: all costs are exactly 0
        return W1Result(value=0.0, kind=_kind_for(cost), lower=0.0, upper=0.0, method="bracket",
                        diagnostics={**diag, "width_reached": 0.0, "iterations": 0, "rounds": 0, "converged": True,
                         "marginal_error": 0.0, "sinkhorn_value": 0.0, "stopped": "all points coincide",
                         "seconds": time.perf_counter() - start})
    if dense:
        M = torch.empty(n, m, dtype=iter_dtype, device=x.device)
        for sl, C in ground.blocks(torch.float64, block_bytes):
            M[sl] = C
        cmax = float(M.max()) or ground.scale
        solver = _DenseSinkhorn(M, a, b)
        rows = max(1, block_bytes // (8 * m))
        # certified on the stored matrix: M = fl(Ĉ) errs by at most u Ĉ (relative) in float32
        u_it = torch.finfo(iter_dtype).eps / 2
        margin = (ground.kappa, ground.nu, ground.mu, u_it / (1 - u_it) if iter_dtype != torch.float64 else 0.0)

        def certified():
            u, v = solver.u.double(), solver.v.double()
            return _certify(lambda: ((slice(s, s + rows), M[s:s + rows].double()) for s in range(0, n, rows)),
                            lambda sl, C: solver.K[sl].to(torch.float64, copy=True).mul_(u[sl, None]).mul_(v),
                            g, a, b, ground.scale, margin)

        inner, scaling = inner or 20, scaling or 0.5
    else:
        cmax = ground.scale  # an upper bound on max C, without a pass over the matrix
        solver = _BlockSinkhorn(ground, a, b, iter_dtype, block_bytes)
        margin = (ground.kappa, ground.nu, ground.mu, 0.0)

        def certified(dtype=torch.float64):
            hf, hg = (a.log() + f / eps).to(dtype), (b.log() + g / eps).to(dtype)
            return _certify(lambda: ground.blocks(dtype, block_bytes),
                            lambda sl, C: torch.mul(C, -1.0 / eps).add_(hg).add_(hf[sl, None])
                            .clamp_(min=_EXP_FLOOR[dtype], max=0.0).exp_(),
                            g, a, b, ground.scale, margin if dtype == torch.float64 else (0.0, *margin[1:3], 0.0))

        def estimate():  # the same computation in the iteration dtype, without margins: about an iteration
            return replace(certified(iter_dtype), certified=False)

        inner, scaling = inner or 1, scaling or 0.6
    eps_min = (100 * torch.finfo(iter_dtype).eps if reg is None else reg) * cmax
    eps = max(eps_start * cmax, eps_min)
    f = torch.zeros(n, dtype=torch.float64, device=x.device)
    g = torch.zeros(m, dtype=torch.float64, device=x.device)
    base_wait = 1 if dense else check_every
    shrink, lower, upper, last_cert, held, wait = 1.0, -math.inf, math.inf, None, False, base_wait
    iters, rounds, since, err, stopped = 0, 0, 0, math.inf, None
    schedule, checks = [], []
    while stopped is None:
        # a round stops early once the marginals are within width / 4 (their repair then costs little),
        # except while held at the floor for convergence
        f, g, err, k = solver.run(f, g, eps, min(inner, max_iter - iters), tol_used if held else width / 4)
        iters, rounds, since = iters + k, rounds + 1, since + 1
        schedule.append(eps / cmax)
        w1_est = max(float(a @ f + b @ g), 0.0)  # the entropic dual value, about W1 + O(eps)
        floor = max(eps_min, _EPS_PER_WIDTH * width * w1_est * shrink)
        at_floor = held or eps <= 1.25 * floor  # the floor drifts down with the dual value: within a quarter
        out_of_budget = iters >= max_iter or (time_limit is not None and time.perf_counter() - start > time_limit)
        check = None
        if out_of_budget or (eps <= eps_min and err < tol_used):
            check = certified()
            stopped = ("max_iter" if iters >= max_iter else "time_limit") if out_of_budget else (
                "converged at the smallest regularisation")
        elif at_floor and (not checks or since >= wait):
            if dense or iter_dtype == torch.float64:
                check = certified()
            else:  # the float64 certificate costs about three float32 iterations: estimate first
                check = estimate()
                check = certified() if check.width <= width else check
        if check is None:
            eps = eps if held else min(eps, max(floor, eps * scaling))
            continue
        since = 0
        checks.append({"iteration": iters, "eps": eps / cmax, "certified": check.certified, "lower": check.lower,
                       "upper": check.upper, "width": check.width, "repair": check.repair, "mass": check.mass,
                       "seconds": time.perf_counter() - start})
        if check.certified:
            last_cert = check
            lower, upper = max(lower, check.lower), min(upper, check.upper)
            if _width(lower, upper) <= width:
                stopped = "width reached"
        if stopped is None and at_floor:
            # what keeps the bracket wide: non-convergence (the rank-one repair costs more than moving its
            # mass at the average cost) -> iterate on at this eps, checking at doubling intervals; else the
            # entropic bias -> lower the floor
            if check.repair - check.mass * max(check.lower, 0.0) >= 0.5 * (check.upper - check.lower):
                held, wait = True, 2 * wait
            else:
                shrink, held, wait = shrink * scaling, False, base_wait
                floor = max(eps_min, floor * scaling)
        eps = eps if held else min(eps, max(floor, eps * scaling))
    u = ground.unit  # a power of two: the costs of the given points, exactly
    for c in checks:
        c.update(lower=c["lower"] * u, upper=c["upper"] * u, repair=c["repair"] * u)
    diag.update(width_reached=_width(lower, upper), iterations=iters, rounds=rounds, eps=schedule[-1],
                eps_schedule=schedule, checks=checks, n_certificates=sum(c["certified"] for c in checks),
                stopped=stopped,
                converged=err < tol_used, marginal_error=err, absorptions=solver.absorptions,
                sinkhorn_value=(last_cert.plan_cost + last_cert.repair) * u, rounding_mass=last_cert.mass,
                fp_margin=last_cert.margin * u, seconds=time.perf_counter() - start)
    return W1Result(value=upper * u, kind=_kind_for(cost), lower=max(lower, 0.0) * u, upper=upper * u,
                    method="bracket", diagnostics=diag)


def _width(lower: float, upper: float) -> float:
    if upper <= lower:
        return 0.0
    return (upper - lower) / lower if lower > 0 else math.inf


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
def _crossover(width: float) -> float | None:
    """n * m above which the bracket at ``width`` beat the exact solver (log-log interpolation of the table)."""
    table = sorted(AUTO_CROSSOVER, reverse=True)  # widest first
    if width >= table[0][0]:
        return float(table[0][1])
    for (w_hi, p_hi), (w_lo, p_lo) in zip(table, table[1:]):
        if w_lo <= width <= w_hi:
            t = math.log(w_hi / width) / math.log(w_hi / w_lo)
            return math.exp((1 - t) * math.log(p_hi) + t * math.log(p_lo))
    return None


def _auto_choice(n: int, m: int, width: float, max_dense_bytes: int) -> tuple[str, str]:
    need = _exact_bytes(n, m)
    if need > max_dense_bytes:
        return "bracket", (f"bracket: the exact solver would need {need / 2**30:.2f} GiB for its cost matrix and "
                           f"plan, above max_dense_bytes = {max_dense_bytes / 2**30:.2f} GiB")
    cross = _crossover(width)
    if cross is None:
        return "exact", (f"exact: the requested width {width:g} is narrower than any at which the bracket beat the "
                         f"network simplex in scripts/bench_w1.py (reports/benchmarks/w1.json)")
    if n * m < cross:
        return "exact", (f"exact: n * m = {n * m:.3g} is below the crossover {cross:.3g} measured at width {width:g} "
                         "(scripts/bench_w1.py, 2 CPU threads, reports/benchmarks/w1.json)")
    return "bracket", (f"bracket: n * m = {n * m:.3g} is above the crossover {cross:.3g} measured at width {width:g} "
                       "(scripts/bench_w1.py, 2 CPU threads, reports/benchmarks/w1.json)")


def wasserstein1(x, y, a=None, b=None, cost="l2", method: str = "auto", *, width: float = DEFAULT_WIDTH,
                 **kw) -> W1Result:
    """``W1`` by ``method`` in ``{"auto", "exact", "bracket", "sliced"}``.

    ``auto`` uses the 1-D formula for one-dimensional ``l1``/``l2`` problems. Otherwise, below the
    ``n * m`` from which on the bracket at the requested ``width`` took at most half the network
    simplex's time in ``scripts/bench_w1.py`` (:data:`AUTO_CROSSOVER`, measured at ``d = 64``), the
    exact solver; above it, the bracket with half the exact solver's predicted time
    (:data:`EXACT_SECONDS`) as its ``time_limit``, and the exact solver after all if the bracket
    did not reach the width in that time (Sinkhorn needs ``eps ~ width * W1``, slow where ``W1`` is
    far below the largest cost, as between samples of one law in low dimension), so ``auto`` costs
    at most about 1.5 times the faster of the two. Where the dense exact problem does not fit in
    ``max_dense_bytes``, the bracket without a time limit. The choice and its reason are in
    ``diagnostics["choice"]``. ``width`` goes to the bracket; other keywords go to the chosen solver
    (under ``auto``, to the bracket only).
    """
    if method == "exact":
        return w1_exact(x, y, a, b, cost, **kw)
    if method == "bracket":
        return w1_bracket(x, y, a, b, cost, width=width, **kw)
    if method == "sliced":
        return w1_sliced(x, y, a, b, cost=cost, **kw)
    if method != "auto":
        raise ValueError(f"unknown W1 method {method!r}; expected auto, exact, bracket or sliced")
    xc, yc = check_cloud(x, "x"), check_cloud(y, "y")
    c = get_cost(cost)
    if xc.shape[1] == 1 and c.has_1d_formula:
        v = w1_1d(xc[:, 0], yc[:, 0], a, b)
        return W1Result(value=v, kind=SAMPLE, lower=v, upper=v, method="exact-1d",
                        diagnostics={"n": xc.shape[0], "m": yc.shape[0], "cost": c.name,
                                     "choice": "exact-1d: one dimension, closed form"})
    n, m = xc.shape[0], yc.shape[0]
    max_dense = kw.get("max_dense_bytes", DEFAULT_MAX_DENSE_BYTES)
    choice, reason = _auto_choice(n, m, width, max_dense)
    if choice == "exact":
        r = w1_exact(xc, yc, a, b, c)
    elif _exact_bytes(n, m) > max_dense or "time_limit" in kw:
        r = w1_bracket(xc, yc, a, b, c, width=width, **kw)
    else:  # race: the bracket gets half the exact solver's predicted time, then the exact solver runs
        budget = 0.5 * EXACT_SECONDS[0] * (n * m) ** EXACT_SECONDS[1]
        r = w1_bracket(xc, yc, a, b, c, width=width, time_limit=budget, **kw)
        if r.relative_width > width:
            reason += (f"; the bracket reached width {r.relative_width:.3g} > {width:g} in its budget of {budget:.3g} s"
                       " (half the exact solver's predicted time), so the exact solver ran")
            r = w1_exact(xc, yc, a, b, c)
    return replace(r, diagnostics={**r.diagnostics, "choice": reason})
