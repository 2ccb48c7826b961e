"""Synthetic cross-modal worlds in which every quantity of the bounds is known.

Generative model (``C`` classes, latent dimension ``r``):

- class prior ``pi_T`` uniform for the teacher modality and
  ``pi_S(y) ∝ exp(-label_shift * y / (C - 1))`` for the student modality (label shift);
- shared latent ``u | y ~ N(mu_y, s^2 I_r)``; the student sees ``v = u + feature_shift * e``
  (feature shift along a fixed unit vector ``e``), so its class conditional is
  ``N(mu_y + feature_shift * e, s^2 I_r)``;
- each modality's input is a known invertible map of its latent,
  ``x_M = A_M g(u_M) (+ noise * eps)`` with ``g(t) = t + tanh(t) / 2`` applied elementwise
  (strictly increasing) and ``A_M`` a ``(d_M, r)`` matrix of full column rank, ``d_T != d_S``.

With ``noise = 0`` the map is exactly invertible (:meth:`SyntheticWorld.latent`), so the true class
posteriors of each modality in its latent space are closed form (:meth:`SyntheticWorld.posterior`),
and the Bayes posterior is a linear softmax head (:meth:`SyntheticWorld.bayes_head`):
``log D_M(y|z) = mu_y^T z / s^2 - |mu_y|^2 / (2 s^2) + log pi_M(y) + const``
(shared isotropic covariance; for the student, ``mu_y`` is shifted by the feature shift).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from cmkd_bounds import names
from training.data import CrossModalPair, DatasetError, ModalityData


@dataclass
class SyntheticWorld:
    num_classes: int = 4
    latent_dim: int = 2
    dim_teacher: int = 8
    dim_student: int = 5
    spread: float = 1.0
    separation: float = 2.0
    feature_shift: float = 0.0
    label_shift: float = 0.0
    noise: float = 0.0
    n: int = 2000
    seed: int = 0
    means: np.ndarray = field(init=False, repr=False)
    shift: np.ndarray = field(init=False, repr=False)
    maps: dict = field(init=False, repr=False)

    def __post_init__(self):
        if self.num_classes < 2:
            raise DatasetError("synthetic: need at least 2 classes")
        if min(self.dim_teacher, self.dim_student) < self.latent_dim:
            raise DatasetError("synthetic: input dimensions must be >= latent_dim (invertible maps)")
        if self.spread <= 0 or self.noise < 0:
            raise DatasetError("synthetic: spread must be > 0 and noise >= 0")
        rng = np.random.default_rng(self.seed)
        self.means = rng.normal(size=(self.num_classes, self.latent_dim)) * self.separation
        e = rng.normal(size=self.latent_dim)
        self.shift = self.feature_shift * e / np.linalg.norm(e)
        self.maps = {
            "teacher": rng.normal(size=(self.dim_teacher, self.latent_dim)) / np.sqrt(self.latent_dim),
            "student": rng.normal(size=(self.dim_student, self.latent_dim)) / np.sqrt(self.latent_dim),
        }

    def config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("means", "shift", "maps")}

    # ---------------------------------------------------------------- true quantities
    def prior(self, role: str) -> np.ndarray:
        """Class prior ``pi_M`` of the modality ``role`` (``"teacher"`` or ``"student"``)."""
        C = self.num_classes
        if role == "teacher":
            return np.full(C, 1.0 / C)
        w = np.exp(-self.label_shift * np.arange(C) / (C - 1))
        return w / w.sum()

    def class_means(self, role: str) -> np.ndarray:
        """``(C, r)`` class means of the latent of modality ``role``."""
        return self.means + (self.shift if role == "student" else 0.0)

    def bayes_head(self, role: str) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` with ``softmax(z @ W.T + b) = D_M(y | z)`` exactly; shapes ``(C, r)``, ``(C,)``."""
        mu = self.class_means(role)
        s2 = self.spread**2
        return mu / s2, -(mu**2).sum(1) / (2 * s2) + np.log(self.prior(role))

    def posterior(self, role: str, z: np.ndarray) -> np.ndarray:
        """True class posterior ``D_M(y | z)`` at latents ``z`` ``(n, r)``; returns ``(n, C)``."""
        W, b = self.bayes_head(role)
        logits = z @ W.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def sample_latent(self, role: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` i.i.d. draws ``(z, y)`` of modality ``role`` in its latent (feature) space."""
        y = rng.choice(self.num_classes, size=n, p=self.prior(role))
        z = self.class_means(role)[y] + self.spread * rng.normal(size=(n, self.latent_dim))
        return z, y

    def forward_map(self, role: str, z: np.ndarray) -> np.ndarray:
        """The known map ``x = A_M g(z)`` (noise-free) of modality ``role``."""
        return (z + 0.5 * np.tanh(z)) @ self.maps[role].T

    def latent(self, role: str, x: np.ndarray, iters: int = 50) -> np.ndarray:
        """Inverse of :meth:`forward_map` (exact for noise-free inputs): least squares, then Newton."""
        w = np.linalg.lstsq(self.maps[role], np.asarray(x, float).T, rcond=None)[0].T
        z = w.copy()
        for _ in range(iters):  # g(z) = w, g' = 1 + (1 - tanh^2)/2 >= 1: Newton converges
            t = np.tanh(z)
            z = z - (z + 0.5 * t - w) / (1 + 0.5 * (1 - t**2))
        return z

    # ---------------------------------------------------------------- the features view (for the bounds)
    def feature_set(self, n_teacher: int, n_student: int, rng: np.random.Generator, student_head=None,
                    with_calibration: bool = True, n_calibration: int = 200):
        """Samples of both latents with the Bayes heads, as a :class:`~cmkd_bounds.features.FeatureSet`.

        ``student_head`` ``(W, b)`` replaces the student's Bayes head (to evaluate a non-optimal one);
        ``with_calibration`` adds ``n_calibration`` held-out teacher samples for the temperature.
        """
        from cmkd_bounds.features import FeatureSet

        zT, yT = self.sample_latent("teacher", n_teacher, rng)
        zS, yS = self.sample_latent("student", n_student, rng)
        cal = self.sample_latent("teacher", n_calibration, rng) if with_calibration else (None, None)
        WT, bT = self.bayes_head("teacher")
        WS, bS = student_head if student_head is not None else self.bayes_head("student")
        return FeatureSet(zT, yT, zS, yS, WT, bT, WS, bS, *cal)

    def true_risk(self, W, b, loss_clip: float | None = None, n: int = 200_000, seed: int = 99) -> float:
        """The student head's population CE (clipped at ``loss_clip`` when given), by Monte Carlo on ``n`` draws."""
        z, y = self.sample_latent("student", n, np.random.default_rng(seed))
        s = z @ np.asarray(W).T + np.asarray(b)
        s = s - s.max(1, keepdims=True)
        loss = np.log(np.exp(s).sum(1)) - s[np.arange(n), y]
        return float((loss if loss_clip is None else np.minimum(loss, loss_clip)).mean())

    # ---------------------------------------------------------------- the dataset view
    def pair(self) -> CrossModalPair:
        """``n`` teacher events and the student's view of a class-prior-matched subset of them.

        The student keeps, per class ``c``, a fraction ``pi_S(c) / max pi_S`` of the events, so
        ``correspondence`` (student item -> teacher event) is a real one-to-one pairing.
        """
        rng = np.random.default_rng(self.seed + 1)
        u, y = self.sample_latent("teacher", self.n, rng)
        keep_frac = self.prior("student") / self.prior("student").max()
        kept = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(y == c))[: int(round(keep_frac[c] * (y == c).sum()))]
                    for c in range(self.num_classes)
                ]
            )
        )
        names = tuple(f"class{c}" for c in range(self.num_classes))
        mods = []
        for role, idx in (("teacher", np.arange(self.n)), ("student", kept)):
            z = u[idx] + (self.shift if role == "student" else 0.0)
            x = self.forward_map(role, z)
            if self.noise:
                x = x + self.noise * rng.normal(size=x.shape)
            mods.append(
                ModalityData(f"synthetic-{role}", "vector", torch.tensor(x, dtype=torch.float32),
                             torch.tensor(y[idx], dtype=torch.long), names)
            )
        return CrossModalPair("synthetic", mods[0], mods[1], kept.astype(np.int64))


# ----------------------------------------------------------------------------- feature-level worlds
WORLD_FAMILIES = ("gaussian", "heavy_tails", "far_mode", "constant_teacher", "flat_teacher", "tiny_n", "many_classes",
                  "rare_mode", "stratified", "selection", "confident_wrong_student", "confident_wrong_teacher")
SELECTION_CANDIDATES = 10  # the "selection" family chooses its student head among this many on the evaluation items


@dataclass(frozen=True)
class Case:
    """One draw of a :class:`FeatureWorld`: the features, the held-out design the bounds must be told, and the
    population truths of the student head evaluated (risk, clipped risk, 0-1 error, ``E_{P_S} f`` and the
    population transport ``E_{P_S} f - E_{P_T} f`` of the teacher's expected loss ``f``)."""

    features: object  # a cmkd_bounds.features.FeatureSet
    design: dict
    truth: dict


@dataclass
class FeatureWorld:
    """A world drawn directly in the feature space, whose labels are drawn from known heads.

    Teacher features ``z ~ P_T`` and labels ``y ~ softmax(W_T z + b_T)``: the teacher head *is* the true
    posterior ``D_T(y|z)``, whatever the marginal. Student features ``z ~ P_S`` (``P_T`` moved by a
    shift and a scale) and labels ``y ~ softmax(W_* z + b_*)`` with ``W_*`` the teacher head plus a
    perturbation (a different conditional, so ``kappa != 1``). The student head under evaluation is
    ``W_*`` plus noise. Families (``family``): marginals a Gaussian mixture, multivariate t with 2.5
    degrees of freedom (heavy tails), a mixture with 2 % of the mass 30 units away (a rare far mode);
    teachers generic, constant (``W_T = 0``) or nearly flat; sample sizes from tiny to moderate; up to
    60 classes; and three worlds of issue 18:

    - ``rare_mode``: five classes, almost every item where the teacher is sure, a student mode of mass 0.1
      where every class is equally likely, ``n = m = 20`` (sample transports undershoot the population's);
    - ``stratified``: the student's items drawn class by class, equally many per class present (the
      design of the shipped splits); the truth is the risk at those class frequencies;
    - ``selection``: the student head is the best of :data:`SELECTION_CANDIDATES` heads by its error on the
      evaluation items themselves; the truth is the chosen head's;

    and two of issue 19, where the label-free surrogates of the few-label certificates are hostile:

    - ``confident_wrong_student``: the student head is the Bayes head negated and sharpened: sure of itself
      and mostly wrong, so its entropy and ``1 - max p`` are small exactly where its loss is large;
    - ``confident_wrong_teacher``: the student's labels run against a sharp teacher head, so the teacher's
      expected loss ``f`` and its ``1 - max p`` at the student's features are small where the loss is not.
    """

    family: str = "gaussian"
    seed: int = 0
    num_classes: int = field(init=False)
    dim: int = field(init=False)
    n: int = field(init=False)
    params: dict = field(init=False, repr=False)

    def __post_init__(self):
        if self.family not in WORLD_FAMILIES:
            raise DatasetError(f"unknown world family {self.family!r}; known: {', '.join(WORLD_FAMILIES)}")
        rng = np.random.default_rng([self.seed, 5])
        if self.family == "rare_mode":
            C, d = 5, 2
            mu = 3.0 * np.c_[np.cos(2 * np.pi * np.arange(C) / C), np.sin(2 * np.pi * np.arange(C) / C)]
            self.num_classes, self.dim, self.n = C, d, 20
            WT = 1.5 * mu
            self.params = dict(WT=WT, bT=np.zeros(C), Wstar=WT, bstar=np.zeros(C), centre=mu[0],
                               WS=WT + rng.normal(size=(C, d)) * 0.3, bS=np.zeros(C))
            return
        C = int(rng.integers(20, 61)) if self.family == "many_classes" else int(rng.integers(2, 8))
        d = int(rng.integers(1, 9))
        self.num_classes, self.dim = C, d
        self.n = int(rng.integers(5, 21)) if self.family == "tiny_n" else int(rng.integers(40, 501))
        scale = {"constant_teacher": 0.0, "flat_teacher": 0.01, "confident_wrong_teacher": 3.0}.get(
            self.family, float(rng.uniform(0.5, 3.0)))
        WT, bT = rng.normal(size=(C, d)) * scale, rng.normal(size=C) * (scale > 0)
        Wstar = WT + rng.normal(size=(C, d)) * rng.uniform(0, 1.0)
        if self.family == "confident_wrong_teacher":
            Wstar = -WT
        bstar = bT + rng.normal(size=C) * rng.uniform(0, 1.0)
        noise = rng.uniform(0, 1.0)
        self.params = dict(WT=WT, bT=bT, Wstar=Wstar, bstar=bstar, means=rng.normal(size=(3, d)) * 2,
                           shift=rng.normal(size=d) * rng.uniform(0, 2), stretch=float(rng.uniform(0.7, 1.5)),
                           WS=Wstar + rng.normal(size=(C, d)) * noise, bS=bstar.copy(), far=np.eye(d)[0] * 30.0)
        if self.family == "selection":
            self.params["candidates"] = [Wstar + rng.normal(size=(C, d)) * noise
                                         for _ in range(SELECTION_CANDIDATES)]
        if self.family == "confident_wrong_student":
            self.params["WS"], self.params["bS"] = -3 * Wstar, -3 * bstar

    def _marginal(self, role: str, n: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        if self.family == "rare_mode":
            z = p["centre"] + 0.01 * rng.normal(size=(n, self.dim))
            if role == "student":
                r = rng.random(n) < 0.1
                z[r] = 0.01 * rng.normal(size=(int(r.sum()), self.dim))
            return z
        z = p["means"][rng.integers(0, 3, n)] + rng.normal(size=(n, self.dim))
        if self.family == "heavy_tails":
            z = p["means"][rng.integers(0, 3, n)] + rng.standard_t(2.5, size=(n, self.dim))
        if self.family == "far_mode":
            z = z + (rng.random(n) < 0.02)[:, None] * p["far"]
        if role == "student":
            z = z * p["stretch"] + p["shift"]
        return z

    def sample(self, role: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` i.i.d. draws ``(z, y)`` of ``role`` (``"teacher"`` or ``"student"``)."""
        p = self.params
        z = self._marginal(role, n, rng)
        W, b = (p["Wstar"], p["bstar"]) if role == "student" else (p["WT"], p["bT"])
        s = z @ W.T + b
        prob = np.exp(s - s.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        y = (prob.cumsum(1) > rng.random((n, 1))).argmax(1)
        return z, y

    def _stratified_student(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Equally many student items of every class the pool holds, drawn without replacement from an i.i.d.
        pool: given the labels, each item is an independent draw from its class's law."""
        z, y = self.sample("student", 40 * self.n, rng)
        per = max(2, self.n // self.num_classes)
        present = [c for c in range(self.num_classes) if (y == c).sum() >= per]
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in present])
        return z[idx], y[idx]

    def case(self, rng: np.random.Generator) -> Case:
        """One draw: features, the held-out design, and the truths for the head evaluated."""
        from cmkd_bounds.features import FeatureSet

        p = self.params
        zT, yT = self.sample("teacher", self.n, rng)
        if self.family == "stratified":
            zS, yS = self._stratified_student(rng)
        else:
            zS, yS = self.sample("student", self.n, rng)
        WS, design = p["WS"], {}
        if self.family == "selection":  # the head with the fewest errors on these very items is evaluated on them
            errors = [int(((zS @ W.T + p["bS"]).argmax(1) != yS).sum()) for W in p["candidates"]]
            WS, design = p["candidates"][int(np.argmin(errors))], {"selected_among": SELECTION_CANDIDATES}
        if self.family == "stratified":
            design = {"sampling": "stratified"}
        weights = np.bincount(yS, minlength=self.num_classes) / len(yS) if self.family == "stratified" else None
        fs = FeatureSet(zT, yT, zS, yS, p["WT"], p["bT"], WS, p["bS"])
        return Case(fs, design, self.truth(5.0, head=(WS, p["bS"]), class_weights=weights))

    def feature_set(self, rng: np.random.Generator):
        return self.case(rng).features

    def truth(self, loss_clip: float, n: int = 200_000, seed: int = 99, head=None, class_weights=None) -> dict:
        """The student head's population risk, clipped risk and 0-1 error, the teacher's expected loss
        ``E_{P_S} f`` at the student's features and the population transport ``E_{P_S} f - E_{P_T} f`` (Monte
        Carlo). With ``class_weights``, the risks are ``sum_y w_y R_y`` (the stratified design's target)."""
        from scipy.special import log_softmax

        W, b = head if head is not None else (self.params["WS"], self.params["bS"])
        rng = np.random.default_rng(seed)
        z, y = self.sample("student", n, rng)
        zT, _ = self.sample("teacher", n, rng)
        s = z @ W.T + b
        loss = -log_softmax(s, axis=1)[np.arange(n), y]
        err = (s.argmax(1) != y).astype(float)
        clipped = np.minimum(loss, loss_clip)

        def f(zz):
            lp = log_softmax(zz @ self.params["WT"].T + self.params["bT"], axis=1)
            return -(np.exp(lp) * lp).sum(1)

        fS, fT = f(z), f(zT)
        if class_weights is None:
            risks = (loss.mean(), clipped.mean(), err.mean())
        else:
            per = [[v[y == c].mean() if (y == c).any() else 0.0 for c in range(self.num_classes)]
                   for v in (loss, clipped, err)]
            risks = tuple(float(np.dot(class_weights, r)) for r in per)
        return {"risk": float(risks[0]), "risk_clipped": float(risks[1]), "error01": float(risks[2]),
                names.STUDENT_TERM: float(fS.mean()), "transport": float(fS.mean() - fT.mean())}
