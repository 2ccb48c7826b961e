r"""Ground costs ``delta`` on the feature space ``Z = R^k``, each a small type that owns what depends on it.

==========  =====================================  ======  ==============  ==============================
name        ``delta(x, y)``                        metric  gradient norm   head Lipschitz bound certified?
==========  =====================================  ======  ==============  ==============================
``l2``      ``||x - y||_2``                        yes     ``||.||_2``     yes
``l1``      ``||x - y||_1``                        yes     ``||.||_inf``   yes
``chordal`` ``||x/||x|| - y/||y|| ||_2``           yes*    ``||.||_2``     no (head not scale-invariant)
``cosine``  ``1 - <x, y> / (||x|| ||y||)``         no      (none)          no (not a metric)
==========  =====================================  ======  ==============  ==============================

(*) ``chordal`` is a metric on directions (a pseudometric on ``R^k``: ``x`` and ``2x`` are at
distance 0). A function of ``z`` is Lipschitz for it only if it depends on ``z`` through
``z/||z||``, which a linear head does not, so Lipschitz bounds of the head are not certified under
it. ``cosine`` is half the squared chordal distance and breaks the triangle inequality (three
directions at 0, 45 and 90 degrees: ``1 > 2 (1 - 1/sqrt 2) ~ 0.586``), so Kantorovich–Rubinstein
does not apply and no bound under it is certified.

A function ``f`` with ``||grad f||_* <= L`` everywhere (``*`` the cost's gradient norm, the dual of
the norm that defines the cost) is ``L``-Lipschitz for the matching metric. For a linear head
``s = W z + b`` and a function ``phi`` of the logits, ``||W^T v||_* <= head_factor(W) ||v||_logit``
(:meth:`Cost.head_factor`), which is how :mod:`cmkd_bounds.lipschitz` uses a cost.

torch is imported inside the methods, so importing this module (the command line reads the cost
names from :data:`COSTS`) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cmkd_bounds.kinds import CERTIFIED, ESTIMATED

_EPS = 1e-12


def as_tensor(x, dtype=None):
    """A tensor view of ``x`` (NumPy array or tensor) in ``dtype`` (default float64); device kept for tensors."""
    import torch

    dtype = dtype or torch.float64
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    arr = np.asarray(x)
    if not arr.flags.writeable:  # read-only (e.g. memory-mapped) arrays: torch wants its own copy
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype)


def _normalise(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def power_of_two_unit(largest: float) -> float:
    """A power of two to divide points by when their largest coordinate ``largest`` lies outside
    ``[2^-400, 2^400]`` (the one nearest below it, exponent kept within +-1000), else 1: dividing by it is exact
    and brings coordinates near 1, where squares and their sums neither underflow (coordinates of 1e-166 gave
    distances of 0) nor overflow (1e160 gave inf); a homogeneous cost is then the unit times the cost of the
    scaled points, exactly. Inside the range nothing changes, bit for bit."""
    if not (largest > 0 and math.isfinite(largest)) or 2.0 ** -400 <= largest <= 2.0 ** 400:
        return 1.0
    return 2.0 ** min(1000, max(-1000, math.floor(math.log2(largest))))


def euclidean(x, y, exact: bool):
    """Pairwise Euclidean distances by the Gram form; with ``exact``, the entries where the form
    cancels (``d^2 < 1e-4 (|x|^2 + |y|^2)``, relative error above ~1e-12) are recomputed from the
    differences, so every entry is accurate to ~1e-12 relative at matrix-multiply speed, the points first
    divided by a power of two that brings them near unit scale (:func:`power_of_two_unit`) so that no square
    underflows or overflows. Without ``exact`` (training losses, on the hot path) the points are taken as given."""
    import torch

    if not exact:
        return torch.cdist(x, y, p=2)
    unit = power_of_two_unit(max(float(x.abs().max()) if x.numel() else 0.0,
                                 float(y.abs().max()) if y.numel() else 0.0))
    if unit != 1.0:
        x, y = x / unit, y / unit
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    d2 = torch.addmm(xx[:, None] + yy[None, :], x, y.T, alpha=-2.0).clamp_min_(0.0)
    # a superset of the entries where d^2 < 1e-4 (|x_i|^2 + |y_j|^2), found with one scalar comparison
    i, j = torch.nonzero(d2 < 1e-4 * float(xx.max() + yy.max()), as_tuple=True)
    if len(i):
        d2[i, j] = ((x[i] - y[j]) ** 2).sum(1)
    return d2.sqrt_() if unit == 1.0 else d2.sqrt_().mul_(unit)


@dataclass(frozen=True)
class Cost:
    """A ground cost. Subclasses implement :meth:`matrix` and :meth:`rows`; the rest is data.

    Attributes
    ----------
    name : registry name.
    is_metric : whether ``delta`` satisfies the triangle inequality (Kantorovich–Rubinstein applies).
    lipschitz_kind : the kind of the Lipschitz bounds of a linear head under this cost
        (``certified`` where a head's gradient bound implies a global Lipschitz bound).
    reason : why bounds under this cost are not certified ("" when they are).
    """

    name: str
    is_metric: bool
    lipschitz_kind: str
    reason: str = ""

    # ---------------------------------------------------------------- distances
    def pairwise(self, x, y):
        """Cost matrix ``C[i, j] = delta(x_i, y_j)`` in float64, accurate entries; ``(n, k), (m, k) -> (n, m)``."""
        x, y = as_tensor(x), as_tensor(y)
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"cost {self.name}: expected (n, k) and (m, k) arrays, got {tuple(x.shape)}, "
                             f"{tuple(y.shape)}")
        return self.matrix(x, y, exact=True)

    def matrix(self, x, y, exact: bool = False):
        """:meth:`pairwise` on tensors as given (dtype, device and autograd kept): for training losses.

        ``exact=False`` computes Euclidean distances by the Gram form ``|x|^2 + |y|^2 - 2 x.y``
        (matrix-multiply speed, cancellation error about ``sqrt(machine eps) * |x|`` between
        near-coincident points); ``exact=True`` takes the differences where the form cancels.
        """
        raise NotImplementedError

    def rows(self, x, y):
        """Cost between matched rows: ``delta(x_i, y_i)``, shape ``(n,)``."""
        raise NotImplementedError

    def __call__(self, x, y):
        return self.rows(as_tensor(x), as_tensor(y))

    # ---------------------------------------------------------------- what depends on the cost
    def gradient_norm(self, g):
        """The norm in which gradients are measured (dual of the cost's norm), over the last axis."""
        return g.norm(dim=-1)

    def head_factor(self, W) -> tuple[float, str]:
        """``(factor, logit_norm)`` with ``||W^T v||_* <= factor * ||v||_{logit_norm}`` for ``v`` summing to 0.

        ``W`` is ``(C, k)``. For the Euclidean costs the factor is the operator norm of the centred
        head ``Pi W`` (``Pi = I - 11^T / C``): the gradients of softmax losses sum to zero, so only
        ``Pi W`` acts on them, and ``||Pi W||_op <= ||W||_op``.
        """
        import torch

        W = as_tensor(W)
        Wc = W - W.mean(0, keepdim=True)
        return float(torch.linalg.matrix_norm(Wc, ord=2)), "l2"

    def operator_norm(self, W) -> float:
        """``||W^T||`` from the gradient norm to itself: how much a layer ``W`` ``(out, in)`` can grow a gradient."""
        import torch

        return float(torch.linalg.matrix_norm(as_tensor(W), ord=2))

    def box_diameter(self, lo, hi) -> float:
        """Diameter under this cost of the axis-aligned box ``[lo, hi]``."""
        return float(np.linalg.norm(np.asarray(hi, float) - np.asarray(lo, float)))

    def cell_diameter(self, side: float, dim: int, level: int) -> float:
        """Diameter of a level-``level`` dyadic cell of a cube of side ``side`` in ``R^dim``."""
        return side * math.sqrt(dim) * 2.0**-level

    @property
    def has_1d_formula(self) -> bool:
        """Whether on the real line the cost is ``|x - y|`` (so the 1-D closed form applies)."""
        return False

    @property
    def form(self) -> str | None:
        """How the certified bracket computes the matrix with a proved error bound (``None``: it cannot):
        ``gram`` (Euclidean distance of prepared points), ``l1``, ``dot`` (``1 - x.y`` of unit vectors),
        ``sup`` (a max over coordinate differences)."""
        return None

    @property
    def centred(self) -> bool:
        """Whether the cost is translation-invariant (points are centred before blocks; else normalised)."""
        return True

    @property
    def cap(self) -> float | None:
        """The truncation level of a truncated cost."""
        return None

    @property
    def root(self) -> Cost:
        """The cost without its truncation."""
        return self

    @property
    def sliced_is_lower(self) -> bool:
        """Whether every 1-D projection is 1-Lipschitz for the cost (sliced W1 is then a lower bound)."""
        return False


class _L2(Cost):
    def matrix(self, x, y, exact=False):
        return euclidean(x, y, exact)

    def rows(self, x, y):
        return (x - y).norm(dim=-1)

    has_1d_formula = property(lambda self: True)
    sliced_is_lower = property(lambda self: True)
    form = property(lambda self: "gram")


class _L1(Cost):
    def matrix(self, x, y, exact=False):
        import torch

        return torch.cdist(x, y, p=1)

    def rows(self, x, y):
        return (x - y).abs().sum(-1)

    def gradient_norm(self, g):
        return g.abs().max(-1).values

    def head_factor(self, W):
        """``||W^T v||_inf <= max_{y,k} |W_yk| ||v||_1``, also with ``Pi W`` in place of ``W`` (``v`` sums to 0)."""
        W = as_tensor(W)
        return min(float(W.abs().max()), float((W - W.mean(0, keepdim=True)).abs().max())), "l1"

    def operator_norm(self, W):
        """``||W^T v||_inf <= max_k sum_y |W_yk| ||v||_inf``."""
        return float(as_tensor(W).abs().sum(0).max())

    def box_diameter(self, lo, hi):
        return float(np.abs(np.asarray(hi, float) - np.asarray(lo, float)).sum())

    def cell_diameter(self, side, dim, level):
        return side * dim * 2.0**-level

    has_1d_formula = property(lambda self: True)
    sliced_is_lower = property(lambda self: True)
    form = property(lambda self: "l1")


class _Chordal(Cost):
    def matrix(self, x, y, exact=False):
        return euclidean(_normalise(x), _normalise(y), exact)

    def rows(self, x, y):
        return (_normalise(x) - _normalise(y)).norm(dim=-1)

    def box_diameter(self, lo, hi):
        return 2.0  # normalised vectors lie on the unit sphere

    def cell_diameter(self, side, dim, level):
        """Normalised vectors lie in ``[-1, 1]^dim``: cells of side ``2^(1-level)``, capped by the sphere's 2."""
        return min(2.0, 2.0 * math.sqrt(dim) * 2.0**-level)

    form = property(lambda self: "gram")
    centred = property(lambda self: False)


class _Cosine(_Chordal):
    def matrix(self, x, y, exact=False):
        return (1.0 - _normalise(x) @ _normalise(y).T).clamp_min(0.0)

    def rows(self, x, y):
        return (1.0 - (_normalise(x) * _normalise(y)).sum(-1)).clamp_min(0.0)

    form = property(lambda self: "dot")


class _Linf(Cost):
    """``max_k |x_k - y_k|``: the sup-norm metric (of the margins, in the class-conditional form)."""

    def matrix(self, x, y, exact=False):
        import torch

        return torch.cdist(x, y, p=float("inf"))

    def rows(self, x, y):
        return (x - y).abs().max(-1).values

    form = property(lambda self: "sup")


class _Oscillation(Cost):
    """``(max_k (x - y)_k - min_k (x - y)_k) / 2``: a metric on logits modulo constant shifts."""

    def matrix(self, x, y, exact=False):
        import torch

        out = torch.empty(x.shape[0], y.shape[0], dtype=x.dtype, device=x.device)
        rows = max(1, 2**24 // max(1, y.shape[0] * x.shape[1]))  # bound the (rows, m, k) difference tensor
        for s in range(0, x.shape[0], rows):
            diff = x[s : s + rows, None, :] - y[None, :, :]
            out[s : s + rows] = 0.5 * (diff.amax(-1) - diff.amin(-1))
        return out

    def rows(self, x, y):
        diff = x - y
        return 0.5 * (diff.amax(-1) - diff.amin(-1))

    form = property(lambda self: "sup")


@dataclass(frozen=True)
class Truncated(Cost):
    """``min(base(x, y), at)``: a metric whenever ``base`` is one (bounded by ``at``).

    A function ``g`` with values in an interval of width ``B`` that is ``L``-Lipschitz for ``base``
    is ``L``-Lipschitz for ``min(base, B / L)``, since ``|g(x) - g(y)| <= min(L base(x, y), B)``.
    """

    base: Cost | None = None
    at: float = float("inf")

    def matrix(self, x, y, exact=False):
        return self.base.matrix(x, y, exact).clamp_max(self.at)

    def rows(self, x, y):
        return self.base.rows(x, y).clamp_max(self.at)

    def gradient_norm(self, g):
        return self.base.gradient_norm(g)

    form = property(lambda self: self.base.form)
    centred = property(lambda self: self.base.centred)
    cap = property(lambda self: self.at)
    root = property(lambda self: self.base.root)


def truncated(base: Cost | str, at: float) -> Truncated:
    """The cost ``min(base, at)`` (``at > 0``)."""
    base = get_cost(base)
    if not at > 0:
        raise ValueError(f"truncation level must be > 0, got {at}")
    return Truncated(f"{base.name}_trunc", base.is_metric, base.lipschitz_kind, base.reason, base, float(at))


LINF = _Linf("linf", True, CERTIFIED)
OSCILLATION = _Oscillation("osc", True, CERTIFIED)

COSTS: dict[str, Cost] = {
    "l2": _L2("l2", True, CERTIFIED),
    "l1": _L1("l1", True, CERTIFIED),
    "chordal": _Chordal("chordal", True, ESTIMATED,
                        "chordal: a linear head is not scale-invariant, so its Lipschitz bounds do not hold "
                        "in this metric"),
    "cosine": _Cosine("cosine", False, ESTIMATED, "cosine is not a metric: Kantorovich-Rubinstein does not apply"),
}


def get_cost(cost: str | Cost) -> Cost:
    if isinstance(cost, Cost):
        return cost
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")
    return COSTS[cost]
