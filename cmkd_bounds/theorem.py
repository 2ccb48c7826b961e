r"""Assembly of the bounds of Theorems 2.6 (asymptotic) and 2.7 (finite sample) from features.

Notation of DESIGN.md section 2. Heads are linear, ``h(z) = z W^T + b``. ``f(z) = H(softmax(h_T(z)/T))``
is the teacher's expected loss under its calibrated posterior ``D^_T(y|z) = softmax(h_T(z)/T)``
(the calibrated head ``h_T / T`` is the teacher throughout the marginal form).

Marginal form (the paper's). Exactly, ``R_S = LA + E_{P_S} f``; Kantorovich–Rubinstein gives
``E_{P_S} f <= E_{P_T} f + tau W1(P_S, P_T)`` for a metric cost, hence

    (2.6)  R_S <= R_T + tau W1(P_S, P_T) + LA,    R_T = E_{P_T} f,   LA = R_S - E_{P_S} f.

On real data ``D_T(y|z)`` is unknown, so the terms that use it are *estimated* (certified when the
posterior is the truth, as in synthetic worlds). The finite-sample version (2.7) adds, with the
confidence budget ``eta`` split evenly over four terms (union bound, ``eta/4`` each):
Hoeffding on ``R^_T`` (``f`` in ``[0, log C]``), the two deviations ``W1(P^_S, P_S)`` and
``W1(P^_T, P_T)`` (:mod:`cmkd_bounds.rates`), and Hoeffding on ``LA^`` computed with the clipped
student loss ``min(l, c)`` (values in ``[-log C, c]``). It bounds the clipped risk
``R_S^c = E min(l, c)``, and so the 0-1 error: ``err01 <= R_S^c / ln 2`` for ``c >= ln 2``.

Class-conditional form (certified on real data with labels on both sides, DESIGN.md):

    R_S^c <= Delta + sum_y pi_S(y) min(c, R_T^{y,c} + tau_y W1(P_S^y, P_T^y)),
    Delta = E_{D_S}[min(l(h_S(z), y), c) - min(l(h_T(z), y), c)],   tau_y <= sqrt(2) ||W_T||.

The cap at ``c`` holds because ``E min(l, c) <= c``. The finite-sample version splits ``eta`` into
thirds: Hoeffding on ``Delta^`` (range ``2c``); the ``L1`` deviation of the class marginal,
``||pi^ - pi||_1 <= sqrt(2 (C ln 2 + ln(3/eta)) / n)`` (Weissman et al. 2003); and, over the ``C``
classes and three terms each, ``eta / (9 C)`` for the per-class teacher risk (Hoeffding, range
``c``) and the two per-class ``W1`` deviations.

A held-out certificate computed from the student's own labelled test data,
``R^_S^c + c sqrt(log(1/eta) / (2 n))``, is reported beside the bounds as a reference: it shows
how much the transfer from the teacher costs compared with measuring the student directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import log_softmax

from cmkd_bounds import label_kernel as lk
from cmkd_bounds.complexity import hoeffding, hoeffding_term
from cmkd_bounds.costs import get_cost
from cmkd_bounds.kinds import CERTIFIED, ESTIMATED, Term, weakest
from cmkd_bounds.lipschitz import entropy_fn, tau_lower, tau_upper_class_ce, tau_upper_entropy
from cmkd_bounds.rates import RateCurve, deviation_certified, deviation_estimated, rate_curve, support_box
from cmkd_bounds.wasserstein import check_cloud, wasserstein1

LN2 = math.log(2.0)


@dataclass(frozen=True)
class FeatureSet:
    """Features and linear heads of a teacher and a student, checked on construction.

    ``teacher_z`` ``(m, k)``, ``teacher_y`` ``(m,)``, ``student_z`` ``(n, k)``, ``student_y`` ``(n,)``,
    ``teacher_W``/``student_W`` ``(C, k)``, ``teacher_b``/``student_b`` ``(C,)``. Optional held-out
    teacher data ``teacher_cal_z``/``teacher_cal_y`` to fit the temperature.
    """

    teacher_z: np.ndarray
    teacher_y: np.ndarray
    student_z: np.ndarray
    student_y: np.ndarray
    teacher_W: np.ndarray
    teacher_b: np.ndarray
    student_W: np.ndarray
    student_b: np.ndarray
    teacher_cal_z: np.ndarray | None = None
    teacher_cal_y: np.ndarray | None = None

    def __post_init__(self):
        for role in ("teacher", "student"):
            z, y = getattr(self, f"{role}_z"), getattr(self, f"{role}_y")
            W, b = getattr(self, f"{role}_W"), getattr(self, f"{role}_b")
            check_cloud(z, f"{role}_z")
            if np.asarray(z).ndim != 2:
                raise ValueError(f"{role}_z must be a 2-D (samples, features) array, got shape {np.shape(z)}")
            _check_labels(y, len(z), f"{role}_y")
            W, b = np.asarray(W), np.asarray(b)
            if W.ndim != 2 or b.ndim != 1 or W.shape[0] != b.shape[0]:
                raise ValueError(f"{role} head: W must be (C, k) and b (C,), got {W.shape} and {b.shape}")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ValueError(f"{role} head: weights contain NaN or Inf")
            if W.shape[1] != np.shape(z)[1]:
                raise ValueError(f"{role} head expects {W.shape[1]} features but {role}_z has {np.shape(z)[1]}")
        if np.shape(self.teacher_z)[1] != np.shape(self.student_z)[1]:
            raise ValueError(f"teacher and student features differ in size: {np.shape(self.teacher_z)[1]} vs "
                             f"{np.shape(self.student_z)[1]}; they must live in one space Z")
        if np.shape(self.teacher_W)[0] != np.shape(self.student_W)[0]:
            raise ValueError(f"the heads disagree on the number of classes: {np.shape(self.teacher_W)[0]} vs "
                             f"{np.shape(self.student_W)[0]}")
        C = self.num_classes
        for name in ("teacher_y", "student_y", "teacher_cal_y"):
            y = getattr(self, name)
            if y is not None and len(y) and (np.min(y) < 0 or np.max(y) >= C):
                raise ValueError(f"{name} has labels outside 0..{C - 1} (the heads have {C} classes)")
        if (self.teacher_cal_z is None) != (self.teacher_cal_y is None):
            raise ValueError("give both teacher_cal_z and teacher_cal_y, or neither")
        if self.teacher_cal_z is not None:
            check_cloud(self.teacher_cal_z, "teacher_cal_z")
            _check_labels(self.teacher_cal_y, len(self.teacher_cal_z), "teacher_cal_y")

    @property
    def num_classes(self) -> int:
        return int(np.shape(self.teacher_W)[0])


def _check_labels(y, n, name):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")


def logits(z, W, b) -> np.ndarray:
    return np.asarray(z, float) @ np.asarray(W, float).T + np.asarray(b, float)


def entropy_of(logits_, temperature=1.0) -> np.ndarray:
    logp = log_softmax(np.asarray(logits_, float) / temperature, axis=1)
    return -(np.exp(logp) * logp).sum(1)


@dataclass
class BoundReport:
    """Everything :func:`assemble` computed; :meth:`to_dict` is the ``bound.json`` layout."""

    settings: dict
    observed: dict
    terms: list[Term]
    bounds: dict[str, Term]
    assumptions: list[str]
    rate_curves: dict[str, RateCurve] = field(default_factory=dict)
    per_class: list[dict] = field(default_factory=list)

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def gap(self, bound: str, observed: str = "risk") -> dict:
        b, o = self.bounds[bound].value, self.observed[observed]
        return {"absolute": b - o, "relative": (b - o) / b if b > 0 else math.nan}

    def to_dict(self) -> dict:
        obs = self.observed
        cert, est = self.bounds["certified"], self.bounds["estimated"]
        return {
            "observed_risk": obs["risk"],
            "observed_risk_clipped": obs["risk_clipped"],
            "observed_error01": obs["error01"],
            "bound_asymptotic": self.bounds["asymptotic"].value,
            "bound_asymptotic_kind": self.bounds["asymptotic"].kind,
            "bound_finite_sample": self.bounds["finite_sample"].value,
            "bound_finite_sample_kind": self.bounds["finite_sample"].kind,
            "bound_certified": cert.value,
            "bound_certified_from": cert.note,
            "bound_estimated": est.value,
            "bound_estimated_from": est.note,
            "bound_error01": {k: min(1.0, v.value / LN2) for k, v in self.bounds.items()
                              if k in ("finite_sample", "certified", "estimated")},
            "gap": {
                "asymptotic": self.gap("asymptotic", "risk"),
                "finite_sample": self.gap("finite_sample", "risk_clipped"),
                "certified": self.gap("certified", "risk_clipped"),
                "estimated": self.gap("estimated", "risk_clipped"),
            },
            "certified": cert.kind == CERTIFIED,
            "bounds": {k: v.as_dict() for k, v in self.bounds.items()},
            "terms": [t.as_dict() for t in self.terms],
            "observed": obs,
            "per_class": self.per_class,
            "settings": self.settings,
            "assumptions": self.assumptions,
        }


def _sum_term(name, parts: list[Term], note: str) -> Term:
    """The sum of ``parts``, labelled by their weakest kind."""
    return Term(name, float(sum(p.value for p in parts)), weakest(*(p.kind for p in parts)), note,
                {"parts": {p.name: p.value for p in parts}})


@dataclass(frozen=True)
class _Data:
    """The arrays every form uses, computed once: features, labels, logits and losses."""

    zT: np.ndarray
    yT: np.ndarray
    zS: np.ndarray
    yS: np.ndarray
    WT: np.ndarray
    bT: np.ndarray
    sS: np.ndarray  # student head on student features
    tT: np.ndarray  # teacher head on teacher features
    tS: np.ndarray  # teacher head on student features
    lS: np.ndarray  # student CE per student sample
    C: int

    @classmethod
    def of(cls, fs: FeatureSet) -> _Data:
        zT, yT = np.asarray(fs.teacher_z, float), np.asarray(fs.teacher_y).astype(int)
        zS, yS = np.asarray(fs.student_z, float), np.asarray(fs.student_y).astype(int)
        WT, bT = np.asarray(fs.teacher_W, float), np.asarray(fs.teacher_b, float)
        sS = logits(zS, fs.student_W, fs.student_b)
        return cls(zT, yT, zS, yS, WT, bT, sS, logits(zT, WT, bT), logits(zS, WT, bT), lk.cross_entropy(sS, yS),
                   fs.num_classes)


def _temperature(fs: FeatureSet, d: _Data, posterior: str) -> tuple[float, str]:
    """Temperature of the plug-in posterior D_T(y|z) = softmax(h_T(z) / T) and the assumption it rests on."""
    if posterior == "calibrated":
        if fs.teacher_cal_z is None:
            raise ValueError("posterior='calibrated' needs held-out teacher data (teacher_cal_z, teacher_cal_y)")
        T = lk.fit_temperature(logits(fs.teacher_cal_z, d.WT, d.bT), np.asarray(fs.teacher_cal_y).astype(int))
        return T, (f"D_T(y|z) is the teacher head's posterior calibrated by temperature scaling (T = {T:.3f}, "
                   f"fitted on {len(fs.teacher_cal_y)} held-out teacher samples)")
    if posterior == "raw":
        return 1.0, "D_T(y|z) is the teacher head's softmax posterior (T = 1, not calibrated)"
    return 1.0, "D_T(y|z) is the teacher head's softmax: given as the true posterior"


def _marginal_form(d: _Data, c, T, f_kind, eta, clip, seed, rate_repeats, rate_sizes, w1_method) -> dict:
    """Theorem 2.6 and 2.7 in the marginal form, with certified and estimated deviation terms."""
    n, m, C = len(d.yS), len(d.yT), d.C
    fT, fS = entropy_of(d.tT, T), entropy_of(d.tS, T)
    teacher_risk = Term("teacher_risk", float(fT.mean()), f_kind, "E_{P_T} f: mean entropy of the calibrated teacher")
    la = Term("label_alignment", float(d.lS.mean() - fS.mean()), f_kind, "R^_S - E_{P^_S} f")
    w1 = wasserstein1(d.zS, d.zT, cost=c, method=w1_method)
    w1_term = Term("w1", w1.value, w1.kind, f"W1(P^_S, P^_T) by {w1.method}",
                   {"lower": w1.lower, "upper": w1.upper, **{k: v for k, v in w1.diagnostics.items()
                                                            if isinstance(v, (int, float, bool, str))}})
    tau_up = tau_upper_entropy(d.WT, T, c)
    tau_lo = tau_lower(entropy_fn(d.WT, d.bT, T), torch.as_tensor(np.concatenate([d.zT, d.zS])), c, seed=seed)
    tau_up.diagnostics["ratio_to_lower"] = tau_up.value / tau_lo.value if tau_lo.value > 0 else math.inf
    fa = Term("feature_alignment", tau_up.value * w1.value, weakest(tau_up.kind, w1.kind), "tau_upper * W1")
    asym = _sum_term("asymptotic", [teacher_risk, fa, la], "R_T + tau W1 + LA (Thm 2.6)")

    # finite sample: eta/4 for each of four terms (union bound)
    e4 = eta / 4
    h = hoeffding_term(teacher_risk.value, m, e4, math.log(C), "teacher_risk_fs")
    rT_fs = Term(h.name, h.value, f_kind, h.note, h.diagnostics)
    la_c = float(np.minimum(d.lS, clip).mean() - fS.mean())
    la_fs = Term("label_alignment_fs", la_c + hoeffding(n, e4, clip + math.log(C)), f_kind,
                 f"clipped LA^ + Hoeffding (range c + log C, eta {e4:.3g})", {"mean": la_c})
    devs = []
    for role, z in (("student", d.zS), ("teacher", d.zT)):
        t = deviation_certified(z, e4, c, name=f"deviation_{role}")
        devs.append(t if c.is_metric else Term(t.name, t.value, ESTIMATED, "non-metric cost", t.diagnostics))
    w1_fs = _sum_term("w1_fs", [w1_term, *devs], "W1^ + both certified deviations")
    fa_fs = Term("feature_alignment_fs", tau_up.value * w1_fs.value, weakest(tau_up.kind, w1_fs.kind), "tau * W1_fs")
    fs_bound = _sum_term("finite_sample", [rT_fs, fa_fs, la_fs], "Thm 2.7, certified deviations, eta/4 per term")

    # estimated: fitted rates, and tau estimated by the largest gradient found on the data
    curves, est_devs = {}, devs
    if min(n, m) >= 8:
        est_devs = []
        for role, z in (("student", d.zS), ("teacher", d.zT)):
            curves[role] = rate_curve(z, sizes=_sizes(len(z), rate_sizes), repeats=rate_repeats, cost=c, seed=seed)
            est_devs.append(deviation_estimated(curves[role], len(z), support_box(z, c)[1], e4,
                                                f"deviation_{role}_est"))
    tau_est = Term("tau_estimate", tau_lo.value, ESTIMATED, "largest gradient norm of f found on and near the data")
    fa_est = Term("feature_alignment_est", tau_est.value * (w1.value + sum(t.value for t in est_devs)), ESTIMATED,
                  "tau_estimate * (W1^ + estimated deviations)")
    fs_est = _sum_term("finite_sample_estimated", [rT_fs, fa_est, la_fs], "Thm 2.7 with fitted rates and tau estimate")
    terms = [teacher_risk, la, w1_term, tau_up, tau_lo, tau_est, fa, rT_fs, la_fs, *devs,
             *(est_devs if est_devs is not devs else []), fa_fs, fa_est]
    return {"terms": terms, "asymptotic": asym, "finite_sample": fs_bound, "finite_sample_estimated": fs_est,
            "curves": curves, "w1": w1, "fS": fS}


def _class_conditional_form(d: _Data, c, eta, clip, w1_method) -> dict:
    """The certified class-conditional form and its finite-sample version (module docstring).

    Each class term is also capped at ``c``: ``E_{P_S^y} min(l, c) <= c`` holds trivially, which
    keeps a class with few samples (or none in the student sample) from dominating the bound.
    """
    n, C = len(d.yS), d.C
    tau_y = tau_upper_class_ce(d.WT, c)
    lT_c = np.minimum(lk.cross_entropy(d.tT, d.yT), clip)
    lTS_c = np.minimum(lk.cross_entropy(d.tS, d.yS), clip)
    delta = float((np.minimum(d.lS, clip) - lTS_c).mean())
    pi_S = np.bincount(d.yS, minlength=C) / n
    e3, e_cls = eta / 3, eta / (9 * C)
    per_class, A_hat, A_fs, kinds = [], np.full(C, clip), np.full(C, clip), [tau_y.kind]
    for y in range(C):
        zs_y, zt_y = d.zS[d.yS == y], d.zT[d.yT == y]
        if len(zs_y) == 0:
            per_class.append({"class": y, "n_student": 0, "n_teacher": int(len(zt_y))})
            continue
        if len(zt_y) == 0:
            raise ValueError(f"class {y} has student samples but no teacher sample: the class-conditional form "
                             "needs every student class on the teacher side")
        wy = wasserstein1(zs_y, zt_y, cost=c, method=w1_method)
        kinds.append(wy.kind)
        rty = float(lT_c[d.yT == y].mean())
        dev = hoeffding(len(zt_y), e_cls, clip) + tau_y.value * (
            deviation_certified(zs_y, e_cls, c).value + deviation_certified(zt_y, e_cls, c).value)
        A_hat[y] = min(clip, rty + tau_y.value * wy.value)
        A_fs[y] = min(clip, rty + tau_y.value * wy.value + dev)
        per_class.append({"class": y, "n_student": int(len(zs_y)), "n_teacher": int(len(zt_y)), "pi_student": pi_S[y],
                          "w1": wy.value, "teacher_risk_clipped": rty, "term": A_hat[y], "term_fs": A_fs[y]})
    kind = weakest(*kinds)
    asym = Term("class_conditional", float(delta + pi_S @ A_hat), kind,
                "Delta + sum_y pi_S(y) min(c, R_T^y + tau_y W1^y) (clipped loss)", {"delta": delta})
    eps_pi = math.sqrt(2 * (C * LN2 + math.log(1 / e3)) / n)
    fs_value = delta + hoeffding(n, e3, 2 * clip) + pi_S @ A_fs + 0.5 * eps_pi * float(A_fs.max())
    fs = Term("class_conditional_fs", float(fs_value), kind,
              "class-conditional, finite sample (eta/3 Delta, eta/3 class marginal, eta/(9C) per class term)",
              {"delta": delta, "class_marginal_l1_deviation": eps_pi})
    return {"terms": [tau_y, asym, fs], "asymptotic": asym, "finite_sample": fs, "per_class": per_class}


def assemble(
    fs: FeatureSet,
    cost="l2",
    eta: float = 0.05,
    clip: float = 5.0,
    seed: int = 0,
    posterior: str = "calibrated",
    rate_repeats: int = 10,
    rate_sizes=None,
    w1_method: str = "auto",
) -> BoundReport:
    """Every term and bound from features; see the module docstring for the mathematics.

    ``posterior``: ``"calibrated"`` (temperature fitted on ``teacher_cal_*``), ``"raw"`` (``T = 1``)
    or ``"true"`` (the teacher head is the true posterior: the marginal-form terms become certified).
    """
    c = get_cost(cost)
    if not 0 < eta < 1:
        raise ValueError(f"eta must lie in (0, 1), got {eta}")
    if clip < LN2:
        raise ValueError(f"clip must be >= ln 2 = {LN2:.4f} for the 0-1 corollary, got {clip}")
    if posterior not in ("calibrated", "raw", "true"):
        raise ValueError(f"posterior must be calibrated, raw or true, got {posterior!r}")
    d = _Data.of(fs)
    n, m = len(d.yS), len(d.yT)
    T, posterior_note = _temperature(fs, d, posterior)
    f_kind = CERTIFIED if posterior == "true" else ESTIMATED
    assumptions = [posterior_note]
    if not c.is_metric:
        assumptions.append(f"cost {c.name} is not a metric: Kantorovich-Rubinstein does not apply, NOT CERTIFIED")

    observed = {
        "risk": float(d.lS.mean()), "risk_clipped": float(np.minimum(d.lS, clip).mean()),
        "error01": float((d.sS.argmax(1) != d.yS).mean()),
        "teacher_risk": float(lk.cross_entropy(d.tT, d.yT).mean()),
        "teacher_risk_calibrated": float(lk.cross_entropy(d.tT / T, d.yT).mean()),
        "teacher_error01": float((d.tT.argmax(1) != d.yT).mean()),
        "teacher_head_on_student_error01": float((d.tS.argmax(1) != d.yS).mean()),
        "n_student": n, "n_teacher": m,
    }
    mg = _marginal_form(d, c, T, f_kind, eta, clip, seed, rate_repeats, rate_sizes, w1_method)
    cc = _class_conditional_form(d, c, eta, clip, w1_method)
    direct = hoeffding_term(observed["risk_clipped"], n, eta, clip, "held_out_student_certificate")

    # label-kernel diagnostics: the three kappa estimators and the identity sum_y D_S kappa = 1
    kappa_off, kappa_cal = lk.kappa_official(d.tS, d.yS), lk.kappa_official(d.tS, d.yS, T)
    pS_all = lk.softmax(d.sS)
    kappa_ratio_all = lk.kappa_ratio(lk.softmax(d.tS / T), pS_all, clip=10.0)
    lT_at_S = lk.cross_entropy(d.tS / T, d.yS)
    diagnostics = [
        Term("label_alignment_official", lk.label_alignment(d.lS, kappa_off, lk.cross_entropy(d.tS, d.yS)),
             ESTIMATED, "alternative LA estimator: kappa = softmax(h_T(z_S))_y"),
        Term("label_alignment_calibrated", lk.label_alignment(d.lS, kappa_cal, lT_at_S), ESTIMATED,
             "alternative LA estimator: calibrated teacher"),
        Term("label_alignment_ratio", lk.label_alignment(d.lS, kappa_ratio_all[np.arange(n), d.yS], lT_at_S),
             ESTIMATED, "alternative LA estimator: D_T / D_S with the student head as D_S, clipped at 10"),
        Term("kappa_identity_error", lk.kappa_identity_error(pS_all, kappa_ratio_all), ESTIMATED,
             "max |sum_y D_S(y|z) kappa(y,z) - 1| for the clipped ratio form"),
        Term("kappa_official_mean", float(kappa_off.mean()), ESTIMATED, "mean softmax(h_T(z_S))_y"),
    ]

    # the reported certified bound: the tightest certified finite-sample bound (else say why none is)
    finite = (mg["finite_sample"], cc["finite_sample"])
    candidates = [b for b in finite if b.kind == CERTIFIED]
    best = min(candidates or finite, key=lambda t: t.value)
    certified = Term("certified", best.value, best.kind,
                     best.name if candidates else f"{best.name} (no certified bound: {best.kind})")
    estimated = Term("estimated", mg["finite_sample_estimated"].value, mg["finite_sample_estimated"].kind,
                     mg["finite_sample_estimated"].name)

    w1 = mg["w1"]
    if w1.method == "bracket":
        assumptions.append(f"W1 by the certified Sinkhorn bracket, relative width {w1.relative_width:.2e}")
    assumptions += [
        f"finite-sample deviations: support inside the sample's bounding box, worst-case dimension {d.zS.shape[1]}",
        f"clipped loss min(l, {clip}) in the finite-sample and class-conditional bounds; eta = {eta}",
        "held-out data are independent of the models (test split)",
    ]
    bounds = {"asymptotic": mg["asymptotic"], "finite_sample": mg["finite_sample"],
              "finite_sample_estimated": mg["finite_sample_estimated"], "class_conditional": cc["asymptotic"],
              "class_conditional_finite_sample": cc["finite_sample"], "held_out_student": direct,
              "certified": certified, "estimated": estimated}
    settings = {"cost": c.name, "cost_is_metric": c.is_metric, "eta": eta, "clip": clip, "seed": seed,
                "posterior": posterior, "temperature": T, "num_classes": d.C, "feature_dim": int(d.zS.shape[1]),
                "eta_split": {"finite_sample": "eta/4 each: teacher risk, student deviation, teacher deviation, LA",
                              "class_conditional": "eta/3 Delta, eta/3 class marginal, eta/(9C) per class term"},
                "w1_method": w1.method}
    if mg["curves"]:
        settings["rates"] = {r: {"slope": cu.slope, "slope_ci": cu.slope_ci, "effective_dimension":
                                 cu.effective_dimension} for r, cu in mg["curves"].items()}
    terms = mg["terms"] + cc["terms"] + [direct] + diagnostics
    return BoundReport(settings, observed, terms, bounds, assumptions, mg["curves"], cc["per_class"])


def _sizes(N: int, sizes):
    if sizes is not None:
        return [s for s in sizes if 2 * s <= N]
    hi = N // 2
    return sorted(set(np.geomspace(max(4, min(25, hi // 8)), hi, 8).astype(int)))
