"""Ground costs ``delta`` on the feature space ``Z = R^k``.

==========  =====================================  ======  =========================
name        ``delta(x, y)``                        metric  dual norm of gradients
==========  =====================================  ======  =========================
``l2``      ``||x - y||_2``                        yes     ``||.||_2``
``l1``      ``||x - y||_1``                        yes     ``||.||_inf``
``chordal`` ``||x/||x|| - y/||y|| ||_2``           yes*    ``||.||_2`` on the sphere
``cosine``  ``1 - <x, y> / (||x|| ||y||)``         no      (none)
==========  =====================================  ======  =========================

(*) ``chordal`` is a metric on directions (a pseudometric on ``R^k``: ``x`` and ``2x`` are at
distance 0). A function of ``z`` is Lipschitz for it only if it depends on ``z`` through
``z/||z||``. ``cosine`` is half the squared chordal distance and breaks the triangle inequality
(``cos`` of three directions at 0, 45 and 90 degrees: ``1 > 2 (1 - 1/sqrt 2) ~ 0.586``), so
Kantorovich–Rubinstein does not apply and no bound under it is certified.

A function ``f`` with ``||grad f||_* <= L`` everywhere (``*`` the dual norm) is ``L``-Lipschitz
for the matching metric, which is how :mod:`cmkd_bounds.lipschitz` uses ``dual_norm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_EPS = 1e-12


def as_tensor(x, dtype=torch.float64) -> torch.Tensor:
    """A tensor view of ``x`` (NumPy array or tensor) in ``dtype``; device kept for tensors."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    arr = np.asarray(x)
    if not arr.flags.writeable:  # read-only (e.g. memory-mapped) arrays: torch wants its own copy
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def _euclidean(x: torch.Tensor, y: torch.Tensor, exact: bool) -> torch.Tensor:
    """Pairwise Euclidean distances by the Gram form; with ``exact``, the entries where the form
    cancels (``d^2 < 1e-4 (|x|^2 + |y|^2)``, relative error above ~1e-12) are recomputed from the
    differences, so every entry is accurate to ~1e-12 relative at matrix-multiply speed."""
    if not exact:
        return torch.cdist(x, y, p=2)
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    d2 = torch.addmm(xx[:, None] + yy[None, :], x, y.T, alpha=-2.0).clamp_min_(0.0)
    # a superset of the entries where d^2 < 1e-4 (|x_i|^2 + |y_j|^2), found with one scalar comparison
    i, j = torch.nonzero(d2 < 1e-4 * float(xx.max() + yy.max()), as_tuple=True)
    if len(i):
        d2[i, j] = ((x[i] - y[j]) ** 2).sum(1)
    return d2.sqrt_()


@dataclass(frozen=True)
class Cost:
    name: str
    is_metric: bool
    dual_norm: str | None  # "l2" or "linf": the norm of gradients that bounds Lipschitz constants

    def pairwise(self, x, y) -> torch.Tensor:
        """Cost matrix ``C[i, j] = delta(x_i, y_j)`` in float64; ``x`` ``(n, k)``, ``y`` ``(m, k)`` -> ``(n, m)``."""
        x, y = as_tensor(x), as_tensor(y)
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"cost {self.name}: expected (n, k) and (m, k) arrays, got {tuple(x.shape)}, "
                             f"{tuple(y.shape)}")
        return self.matrix(x, y, exact=True)

    def matrix(self, x: torch.Tensor, y: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """:meth:`pairwise` on tensors as given (dtype, device and autograd kept): for training losses.

        ``exact=False`` computes Euclidean distances by the Gram form ``|x|^2 + |y|^2 - 2 x.y``
        (matrix-multiply speed, cancellation error about ``sqrt(machine eps) * |x|`` between
        near-coincident points); ``exact=True`` takes the differences directly.
        """
        if self.name == "l2":
            return _euclidean(x, y, exact)
        if self.name == "l1":
            return torch.cdist(x, y, p=1)
        if self.name == "chordal":
            return _euclidean(_normalise(x), _normalise(y), exact)
        if self.name == "cosine":
            return (1.0 - _normalise(x) @ _normalise(y).T).clamp_min(0.0)
        raise AssertionError(self.name)

    def __call__(self, x, y) -> torch.Tensor:
        """Cost between matched rows: ``delta(x_i, y_i)``, shape ``(n,)``."""
        x, y = as_tensor(x), as_tensor(y)
        if self.name == "l2":
            return (x - y).norm(dim=-1)
        if self.name == "l1":
            return (x - y).abs().sum(-1)
        if self.name == "chordal":
            return (_normalise(x) - _normalise(y)).norm(dim=-1)
        return (1.0 - (_normalise(x) * _normalise(y)).sum(-1)).clamp_min(0.0)

    def diameter_of_box(self, lo, hi) -> float:
        """Diameter under this cost of the box ``[lo, hi]`` (for chordal/cosine: of the sphere)."""
        side = as_tensor(hi) - as_tensor(lo)
        if self.name == "l2":
            return float(side.norm())
        if self.name == "l1":
            return float(side.abs().sum())
        return 2.0


COSTS = {
    "l2": Cost("l2", True, "l2"),
    "l1": Cost("l1", True, "linf"),
    "chordal": Cost("chordal", True, "l2"),
    "cosine": Cost("cosine", False, None),
}


def get_cost(cost: str | Cost) -> Cost:
    if isinstance(cost, Cost):
        return cost
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")
    return COSTS[cost]
