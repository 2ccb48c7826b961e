"""The settings of a bound evaluation: one keyword-only, validated object.

Every default lives here once; the command line reads its choices from :data:`POSTERIORS` and
:data:`W1_METHODS`, and the costs from :data:`cmkd_bounds.costs.COSTS`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from cmkd_bounds.concentration import SAMPLINGS
from cmkd_bounds.costs import get_cost

POSTERIORS = {
    "calibrated": "the teacher head's softmax at a temperature fitted on held-out teacher data (teacher_cal_*), "
                  "or, without it, on all teacher samples given (stated in the report)",
    "raw": "the teacher head's softmax at temperature 1",
    "true": "ASSERTS that the teacher head's softmax is the true posterior D_T(y|z); true only in synthetic worlds "
            "built that way, refused on checkpoints of real data",
}
W1_METHODS = ("auto", "exact", "bracket")
LN2 = math.log(2.0)


@dataclass(frozen=True, kw_only=True)
class BoundSettings:
    """What :func:`cmkd_bounds.theorem.assemble` needs besides the features.

    Attributes
    ----------
    cost : ground cost of the feature space (:data:`cmkd_bounds.costs.COSTS`).
    eta : confidence budget: every certified bound holds with probability ``>= 1 - eta`` (at most 1/2).
    sampling : how the student's held-out items were drawn (:data:`cmkd_bounds.concentration.SAMPLINGS`):
        ``iid`` (the certificates cover the population mean) or ``stratified`` (class by class: they cover the
        risk at the sample's class frequencies). Checkpoints on the shipped splits are ``stratified``.
    selected_among : the number of models compared on these held-out items to choose this one (1 when the
        items played no part in choosing it). Every certificate on the student's items is computed at
        ``eta / selected_among``: a union bound over the fixed candidates covers whichever was chosen.
    labelled : ``K > 0`` keeps the labels of only ``K`` student items, drawn uniformly at random without
        replacement (seeded by ``seed``); the report is then the few-label one (:mod:`cmkd_bounds.fewlabel`).
        0: every label given is used.
    loss_clip : ``c`` in the clipped loss ``min(l, c)`` of the finite-sample and class-conditional
        bounds (``>= ln 2``, so the 0-1 corollary ``err01 <= R^c / ln 2`` holds).
    posterior : how ``D_T(y|z)`` is modelled (:data:`POSTERIORS`).
    seed : seeds every random choice (rate-curve subsamples, gradient ascent, minibatches).
    rate_repeats, rate_sizes, rate_max_size : subsample repeats and sizes of the empirical rate curves (by
        default 8 sizes from 25 to half the sample, at most ``rate_max_size``).
    w1_method, w1_width : W1 solver (:func:`cmkd_bounds.wasserstein.wasserstein1`) and the relative
        width asked of the certified bracket when it is used.
    kappa_cap : cap of the ratio estimator of kappa (a diagnostic).
    paper_reg, paper_batch, paper_batches : entropic regularisation, minibatch size and number of
        minibatch pairs of the paper-style FA estimate (the official code's Sinkhorn, reg 0.1).
    """

    cost: str = "l2"
    eta: float = 0.05
    loss_clip: float = 5.0
    posterior: str = "calibrated"
    sampling: str = "iid"
    selected_among: int = 1
    labelled: int = 0
    seed: int = 0
    rate_repeats: int = 10
    rate_sizes: tuple[int, ...] | None = None
    rate_max_size: int = 2000
    w1_method: str = "auto"
    w1_width: float = 1e-2
    kappa_cap: float = 10.0
    paper_reg: float = 0.1
    paper_batch: int = 64
    paper_batches: int = 20

    def __post_init__(self):
        get_cost(self.cost)
        if not 0 < self.eta <= 0.5:
            raise ValueError(f"eta must lie in (0, 0.5], got {self.eta} (a certificate at confidence below 1/2 "
                             "says nothing, and Clopper-Pearson needs eta <= 1/2 under the stratified design)")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if not (isinstance(self.selected_among, int) and self.selected_among >= 1):
            raise ValueError(f"selected_among must be an integer >= 1, got {self.selected_among!r}")
        if not (isinstance(self.labelled, int) and self.labelled >= 0):
            raise ValueError(f"labelled must be an integer >= 0 (0: every label), got {self.labelled!r}")
        if not self.loss_clip >= LN2:
            raise ValueError(f"the loss clip must be >= ln 2 = {LN2:.4f} for the 0-1 corollary, got {self.loss_clip}")
        if not math.isfinite(self.loss_clip):
            raise ValueError("the loss clip must be finite: the certificates need bounded losses (CE itself is not)")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {', '.join(POSTERIORS)}, got {self.posterior!r}")
        if self.w1_method not in W1_METHODS:
            raise ValueError(f"w1_method must be one of {', '.join(W1_METHODS)}, got {self.w1_method!r}")
        if not 0 < self.w1_width < 1:
            raise ValueError(f"w1_width must lie in (0, 1), got {self.w1_width}")
        if self.rate_repeats < 2:
            raise ValueError("rate_repeats must be >= 2")
        if self.kappa_cap <= 0 or self.paper_reg <= 0 or self.paper_batch < 2 or self.paper_batches < 1:
            raise ValueError("kappa_cap and paper_reg must be > 0, paper_batch >= 2 and paper_batches >= 1")

    @property
    def eta_student(self) -> float:
        """The level of every certificate on the student's held-out items: ``eta / selected_among``."""
        return self.eta / self.selected_among

    def as_dict(self) -> dict:
        return asdict(self)
