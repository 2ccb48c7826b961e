r"""Assembly of every bound from features: the paper's forms, sharper transports, and certificates.

Notation (the derivations are in ``docs/theory.md`` of the repository). Heads are linear,
``h(z) = z W^T + b``; ``c`` is the loss clip; ``f(z) = H(softmax(h_T(z) / T))`` is the teacher's expected
loss under its own (calibrated) posterior, with values in ``[0, log C]``; ``R^_S`` and ``R^_S^c`` are the student's
empirical risk and clipped risk on held-out data, ``E^_S`` and ``E^_T`` empirical means over the
student's and the teacher's held-out features.

**Marginal form (the paper's Theorem 2.6).** For *any* function ``f``, ``R = LA + E f`` with
``LA := R - E f``; Kantorovich–Rubinstein gives ``E_S f - E_T f <= L W1_delta(S, T)`` when ``f`` is
``L``-Lipschitz for the metric ``delta``, and ``E_S f <= log C``. So, on the empirical measures and
deterministically,

    R^_S <= LA^ + min(log C, E^_T f + L W1(P^_S, P^_T)).

The paper's form uses the feature space with ``L = tau`` (a product of norms) and no cap. Sharper
transports of the same ``f`` (:mod:`cmkd_bounds.lipschitz`): the centred logits with ``l2``
(``L = K2/T``), the logits with the oscillation metric (``L = K1/T``), each with the cost truncated at
``log C / L`` (a function of range ``log C`` is ``L``-Lipschitz for the truncated metric too). These
values are **plug-in**: they bound the *empirical* risk exactly and estimate the population bound.
When ``D_T(y|z)`` is the true posterior (``posterior="true"``), ``E_T f`` is the teacher's risk
``R_T`` and ``LA`` the paper's label alignment; otherwise they are the same quantities for the
teacher's own posterior, and the inequality still holds.

**Class-conditional form.** With ``g_y = min(c, CE(h_T(z), y))`` and ``Delta^ = E^_S[min(l_S, c) -
g_y(z)]``, per class ``E^_{S,y} g_y <= min(c, E^_{T,y} g_y + L_y W1_y)`` for the feature metric
(``L_y = sqrt 2 (1 - e^-c) ||Pi W||``) or the margin metric (``L_y = 1 - e^-c``), so

    R^_S^c <= Delta^ + sum_y pi^_S(y) min(c, R^_T^{y,c} + min_metric L_y W1_y)      (plug-in).

**Certificates (population clipped risk, probability >= 1 - eta).** The student's held-out clipped
losses lie in ``[0, c]`` and are independent of the models (i.i.d., or independent given their
labels under the stratified design: :data:`cmkd_bounds.concentration.SAMPLINGS`), so
``R_S^c <= U(R^_S^c)`` with ``U`` the headline held-out certificate, the betting bound
(:func:`cmkd_bounds.concentration.betting_upper`; the route is fixed before the data are seen, the
kl, Hoeffding and Bernstein values are shown beside it for comparison). Each transfer form adds its
deterministic slack on the same sample:

    R_S^c <= U + max(0, B_emp - R^_S^c),     B_emp >= R^_S^c the form's empirical bound,

so every transfer certificate is at least the held-out certificate: with labelled student test
data the teacher-side terms *explain* the risk, the held-out certificate *certifies* it. All
transfer certificates share the one random event of the betting step, so their minimum
(``bound_certified``) needs no union bound. Only proved ingredients enter (metric costs, proved
Lipschitz constants, exact or upper-bracket W1 on the samples). When the student was chosen among
``E`` checkpoints on its evaluation items (``selected_among``), every certificate on those items is
computed at ``eta / E``. Each certificate holds with probability ``>= 1 - eta`` on its own; two of
them hold together with probability ``>= 1 - 2 eta`` (union bound).

**The paper's finite-sample route (Theorem 2.7)**: ``eta/4`` each for Hoeffding on ``E^_T f``
(range ``log C``), the two deviations ``W1(P^_S, P_S)``, ``W1(P^_T, P_T)`` (dyadic bound, which
assumes the support lies in the sample's bounding box: estimated) and Hoeffding on the clipped
``LA^`` (range ``c + log C``). Reported, labelled estimated. ``finite_sample_estimated`` replaces the
deviations by fitted empirical rates and ``tau`` by the largest gradient found.

**Paper-style estimate** (not a bound): the quantities the official code logs: the teacher's test
CE, the minibatch Sinkhorn value (reg 0.1, the training cost) with unit ``tau``, and the
kappa-weighted LA with ``kappa = softmax(h_T(z_S))_y``.

Held-out references: Hoeffding, ``kl`` and empirical Bernstein on the clipped risk, and the
Clopper–Pearson limit on the 0-1 error (``error01_certificate``; betting is weaker on 0/1 values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cmkd_bounds import concentration as cc
from cmkd_bounds import label_kernel as lk
from cmkd_bounds.costs import LINF, OSCILLATION, get_cost, truncated
from cmkd_bounds.features import FeatureSet, entropy_of, logits
from cmkd_bounds.kinds import (
    CERTIFIED,
    EMPIRICAL_CLIPPED_RISK,
    EMPIRICAL_RISK,
    ESTIMATED,
    PLUG_IN,
    POPULATION_CLIPPED_RISK,
    POPULATION_ERROR01,
    Term,
    proved,
    weakest,
)
from cmkd_bounds.lipschitz import (
    entropy_fn,
    tau_class_feature,
    tau_class_margin,
    tau_feature,
    tau_logit,
    tau_lower,
)
from cmkd_bounds.rates import RateCurve, deviation_dyadic, deviation_estimated, rate_curve, support_box
from cmkd_bounds.settings import BoundSettings
from cmkd_bounds.wasserstein import W1Result, sinkhorn_cost, wasserstein1

HELD_OUT_DESIGN = {
    "iid": "the student's held-out items are i.i.d. draws from its test law: the certificates cover the population "
           "quantities",
    "stratified": "the student's held-out items are a class-stratified draw without replacement from a finite pool "
                  "(the shipped splits): given their labels they are independent draws from each class's law, so the "
                  "certificates cover the population risk at the sample's class frequencies, sum_y w_y R_y (the "
                  "population risk when those are the population's). Hoeffding, kl and Bernstein hold for "
                  "independent values with unequal means (Hoeffding 1963), Clopper-Pearson for unequal rates "
                  "(Hoeffding 1956), and the betting certificate bets on class-balanced blocks",
}
OSC_BUDGET = 2 * 10**9  # n * m * C above which the oscillation transport is skipped (too slow to build its costs)


# ----------------------------------------------------------------------------- the sample, computed once
@dataclass(frozen=True)
class Sample:
    """Arrays every form uses: features, labels, logits, losses and the teacher's ``f`` on both sides."""

    zT: np.ndarray
    yT: np.ndarray
    zS: np.ndarray
    yS: np.ndarray
    WT: np.ndarray
    bT: np.ndarray
    sT: np.ndarray  # teacher head on teacher features
    tS: np.ndarray  # teacher head on student features
    sS: np.ndarray  # student head on student features
    lS: np.ndarray  # student CE per student sample
    C: int
    T: float
    temperature: dict
    fT: np.ndarray
    fS: np.ndarray

    @property
    def n(self) -> int:
        return len(self.yS)

    @property
    def m(self) -> int:
        return len(self.yT)


def _temperature(fs: FeatureSet, sT, yT, posterior: str) -> tuple[float, dict]:
    """Temperature of ``D_T(y|z) = softmax(h_T(z) / T)`` and how it was obtained (an assumption line)."""
    if posterior == "raw":
        return 1.0, {"how": "raw", "note": "D_T(y|z) is the teacher head's softmax at T = 1 (not calibrated)"}
    if posterior == "true":
        return 1.0, {"how": "true", "note": "ASSERTED: the teacher head's softmax is the true posterior D_T(y|z) "
                                            "(true only in synthetic worlds built that way)"}
    if fs.teacher_cal_z is not None:
        cal_s, cal_y = logits(fs.teacher_cal_z, fs.teacher_W, fs.teacher_b), np.asarray(fs.teacher_cal_y).astype(int)
        T = lk.fit_temperature(cal_s, cal_y)
        return T, {"how": "held-out", "n_calibration": len(cal_y),
                   "note": f"D_T(y|z) is the teacher head's softmax calibrated by temperature scaling (T = {T:.3f}, "
                           f"fitted on {len(cal_y)} held-out teacher samples)"}
    # no calibration data: fit on every teacher sample, and measure the in-sample optimism by 2-fold cross-fitting
    T = lk.fit_temperature(sT, yT)
    rng = np.random.default_rng(0)
    fold = rng.permutation(len(yT)) % 2
    cross = []
    for k in (0, 1):
        if (fold == k).all() or (fold != k).all():
            continue
        Tk = lk.fit_temperature(sT[fold != k], yT[fold != k])
        cross.append(lk.cross_entropy(sT[fold == k] / Tk, yT[fold == k]))
    nll_in = float(lk.cross_entropy(sT / T, yT).mean())
    nll_cross = float(np.concatenate(cross).mean()) if cross else math.nan
    return T, {"how": "in-sample", "nll_in_sample": nll_in, "nll_cross_fitted": nll_cross,
               "note": f"D_T(y|z) is the teacher head's softmax calibrated by temperature scaling (T = {T:.3f}) fitted "
                       f"on all {len(yT)} teacher samples given (no held-out calibration data); every term uses every "
                       f"sample. In-sample NLL {nll_in:.4f}, 2-fold cross-fitted NLL {nll_cross:.4f}"}


def prepare(fs: FeatureSet, s: BoundSettings) -> Sample:
    zT, yT = np.asarray(fs.teacher_z, float), np.asarray(fs.teacher_y).astype(int)
    zS, yS = np.asarray(fs.student_z, float), np.asarray(fs.student_y).astype(int)
    WT, bT = np.asarray(fs.teacher_W, float), np.asarray(fs.teacher_b, float)
    sT, tS = logits(zT, WT, bT), logits(zS, WT, bT)
    sS = logits(zS, fs.student_W, fs.student_b)
    T, tinfo = _temperature(fs, sT, yT, s.posterior)
    return Sample(zT, yT, zS, yS, WT, bT, sT, tS, sS, lk.cross_entropy(sS, yS), fs.num_classes, T, tinfo,
                  entropy_of(sT, T), entropy_of(tS, T))


# ----------------------------------------------------------------------------- transports
@dataclass(frozen=True)
class Transport:
    """``L * W1_delta`` between the student's and the teacher's empirical measures, in one representation."""

    name: str
    lipschitz: Term
    w1: W1Result
    truncated_at: float | None

    @property
    def value(self) -> float:
        return self.lipschitz.value * self.w1.value

    @property
    def kind(self) -> str:
        return weakest(self.lipschitz.kind, self.w1.kind)


def _w1(x, y, cost, s: BoundSettings) -> W1Result:
    return wasserstein1(x, y, cost=cost, method=s.w1_method, width=s.w1_width)


def _centred(logit):
    return logit - logit.mean(1, keepdims=True)


def marginal_transports(d: Sample, s: BoundSettings) -> list[Transport]:
    """The paper's feature-space transport, its truncation, and the logit-space transports (truncated)."""
    cost, logC = get_cost(s.cost), math.log(d.C)
    tau = tau_feature(d.WT, d.T, cost)
    out = [Transport("feature", tau, _w1(d.zS, d.zT, cost, s), None)]
    if tau.value > 0:
        at = logC / tau.value
        out.append(Transport("feature_truncated", tau, _w1(d.zS, d.zT, truncated(cost, at), s), at))
    l2 = tau_logit(d.C, d.T, "l2")
    at = logC / l2.value
    out.append(Transport("logit_l2", l2, _w1(_centred(d.tS), _centred(d.sT), truncated("l2", at), s), at))
    if d.n * d.m * d.C <= OSC_BUDGET:
        osc = tau_logit(d.C, d.T, "osc")
        at = logC / osc.value
        out.append(Transport("logit_osc", osc, _w1(d.tS, d.sT, truncated(OSCILLATION, at), s), at))
    return out


# ----------------------------------------------------------------------------- the marginal form
@dataclass(frozen=True)
class MarginalForm:
    """Plug-in values of the marginal form; ``certifiable`` uses only certified transports."""

    teacher_term: float  # E^_T f
    student_term: float  # E^_S f
    la: float  # R^_S - E^_S f
    la_clipped: float  # R^_S^c - E^_S f
    transports: list[Transport]
    paper: Term  # E^_T f + tau W1_feature + LA^ (no cap, no truncation)
    sharpest: Term  # LA^ + min(log C, E^_T f + min_k L_k W1_k)
    certifiable: float | None  # LA^c + min(log C, E^_T f + min over certified transports)
    certifiable_transport: str | None


def _capped(d: Sample, transport_value: float) -> float:
    return min(math.log(d.C), float(d.fT.mean()) + transport_value)


def marginal_form(d: Sample, s: BoundSettings, lS_c: np.ndarray) -> MarginalForm:
    ET, ES = float(d.fT.mean()), float(d.fS.mean())
    la, la_c = float(d.lS.mean()) - ES, float(lS_c.mean()) - ES
    trs = marginal_transports(d, s)
    feat = trs[0]
    paper = Term("asymptotic_feature", ET + feat.value + la, weakest(PLUG_IN, feat.kind),
                 "the paper's Theorem 2.6 on the empirical measures: E^_T f + tau W1 (feature space) + LA^",
                 {"teacher_term": ET, "feature_alignment": feat.value, "label_alignment": la}, EMPIRICAL_RISK)
    best = min(trs, key=lambda t: t.value)
    sharp = Term("asymptotic_sharpest", la + _capped(d, best.value), weakest(PLUG_IN, best.kind),
                 f"LA^ + min(log C, E^_T f + L W1), transport {best.name}",
                 {"transport": best.name, "teacher_term": ET, "transport_value": best.value, "label_alignment": la,
                  "cap_binds": ET + best.value > math.log(d.C)}, EMPIRICAL_RISK)
    cert = [t for t in trs if proved(t.kind)]
    cbest = min(cert, key=lambda t: t.value) if cert else None
    return MarginalForm(ET, ES, la, la_c, trs, paper, sharp,
                        la_c + _capped(d, cbest.value) if cbest else None, cbest.name if cbest else None)


# ----------------------------------------------------------------------------- the class-conditional form
@dataclass(frozen=True)
class ClassForm:
    delta: float  # E^_S[min(l_S, c) - g_y(z)]
    per_class: list[dict]
    plug_in: Term  # Delta^ + sum_y pi^(y) A_y, best metric per class
    certifiable: float | None  # the same with certified metrics only


def class_form(d: Sample, s: BoundSettings, lS_c: np.ndarray) -> ClassForm:
    c = s.loss_clip
    cost = get_cost(s.cost)
    g_T = np.minimum(lk.cross_entropy(d.sT, d.yT), c)
    g_S = np.minimum(lk.cross_entropy(d.tS, d.yS), c)
    delta = float((lS_c - g_S).mean())
    tau_f, tau_m = tau_class_feature(d.WT, c, cost), tau_class_margin(c)
    pi = np.bincount(d.yS, minlength=d.C) / d.n
    A_all, A_cert, rows = np.zeros(d.C), np.zeros(d.C), []
    for y in range(d.C):
        iS, iT = d.yS == y, d.yT == y
        row = {"class": y, "n_student": int(iS.sum()), "n_teacher": int(iT.sum()), "pi_student": float(pi[y])}
        if not iS.any():
            rows.append(row)
            continue
        if not iT.any():  # E min(l, c) <= c: the class term is c
            A_all[y] = A_cert[y] = c
            rows.append({**row, "term": c, "note": "no teacher sample of this class: term = c"})
            continue
        rT = float(g_T[iT].mean())
        cand = []
        if tau_f.value > 0:
            w = _w1(d.zS[iS], d.zT[iT], truncated(cost, c / tau_f.value), s)
            cand.append(("feature", tau_f.value * w.value, weakest(tau_f.kind, w.kind), w.value))
        mS, mT = d.tS[iS] - d.tS[iS][:, [y]], d.sT[iT] - d.sT[iT][:, [y]]  # margins s_j - s_y
        w = _w1(mS, mT, truncated(LINF, c / tau_m.value), s)
        cand.append(("margin", tau_m.value * w.value, weakest(tau_m.kind, w.kind), w.value))
        best = min(cand, key=lambda t: t[1])
        certs = [t for t in cand if proved(t[2])]
        A_all[y] = min(c, rT + best[1])
        A_cert[y] = min(c, rT + min(t[1] for t in certs)) if certs else c
        rows.append({**row, "teacher_risk_clipped": rT, "student_teacher_loss": float(g_S[iS].mean()),
                     **{f"w1_{t[0]}": t[3] for t in cand}, **{f"transport_{t[0]}": t[1] for t in cand},
                     "metric": best[0], "term": float(A_all[y]), "slack": float(A_all[y] - g_S[iS].mean())})
    kind = weakest(PLUG_IN, tau_m.kind)  # the margin metric is always available, so a certified choice exists
    plug = Term("class_conditional", delta + float(pi @ A_all), kind,
                "Delta^ + sum_y pi^_S(y) min(c, R^_T^{y,c} + min_metric L_y W1_y) on the empirical measures",
                {"delta": delta, "tau_class_feature": tau_f.value, "tau_class_margin": tau_m.value},
                EMPIRICAL_CLIPPED_RISK)
    return ClassForm(delta, rows, plug, delta + float(pi @ A_cert))


# ----------------------------------------------------------------------------- the report
@dataclass
class BoundReport:
    """Everything :func:`assemble` computed; :meth:`to_dict` is the ``bound.json`` layout."""

    settings: BoundSettings
    observed: dict
    terms: list[Term]
    bounds: dict[str, Term]
    headline: dict[str, str]  # bound_asymptotic / bound_certified / ... -> the name in `bounds`
    assumptions: list[str]
    chains: dict[str, list[dict]]
    summary: str
    transports: list[Transport] = field(default_factory=list)
    rate_curves: dict[str, RateCurve] = field(default_factory=dict)
    per_class: list[dict] = field(default_factory=list)
    temperature: dict = field(default_factory=dict)

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def bound(self, headline: str) -> Term:
        return self.bounds[self.headline[headline]]

    def observed_for(self, b: Term) -> float:
        """The observed value a bound is compared with: the clipped risk for clipped targets, else the risk."""
        if b.target == POPULATION_ERROR01:
            return self.observed["error01"]
        return self.observed["risk_clipped" if b.target in (POPULATION_CLIPPED_RISK, EMPIRICAL_CLIPPED_RISK)
                             else "risk"]

    def gap(self, name: str) -> dict:
        b = self.bounds[name]
        o = self.observed_for(b)
        return {"absolute": b.value - o, "relative": (b.value - o) / b.value if b.value > 0 else math.nan,
                "observed": o}

    def to_dict(self) -> dict:
        def entry(key):
            name = self.headline[key]
            b = self.bounds[name]
            return {"value": b.value, "form": name, "kind": b.kind, "bounds": b.target, "note": b.note}

        return {
            "observed_risk": self.observed["risk"],
            "observed_risk_clipped": self.observed["risk_clipped"],
            "observed_error01": self.observed["error01"],
            **{k: entry(k) for k in self.headline},
            "certified": self.bound("bound_certified").kind == CERTIFIED,
            "gap": {k: self.gap(k) for k in self.bounds},
            "bounds": {k: {"value": b.value, "kind": b.kind, "bounds": b.target, "note": b.note,
                           "diagnostics": b.diagnostics} for k, b in self.bounds.items()},
            "gap_explained": self.chains,
            "summary": self.summary,
            "terms": [t.as_dict() for t in self.terms],
            "transports": [{"name": t.name, "lipschitz": t.lipschitz.value, "lipschitz_kind": t.lipschitz.kind,
                            "w1": t.w1.value, "w1_method": t.w1.method, "w1_kind": t.w1.kind,
                            "truncated_at": t.truncated_at, "value": t.value, "kind": t.kind,
                            "w1_diagnostics": {k: v for k, v in t.w1.diagnostics.items()
                                               if isinstance(v, (int, float, bool, str))}}
                           for t in self.transports],
            "observed": self.observed,
            "per_class": self.per_class,
            "temperature": self.temperature,
            "settings": self.settings.as_dict(),
            "assumptions": self.assumptions,
        }


def _paper_style(d: Sample, s: BoundSettings, observed: dict) -> Term:
    """The official code's logged quantities (not a bound): teacher CE + minibatch Sinkhorn FA + kappa-weighted LA."""
    cost = get_cost(s.cost)
    rng = np.random.default_rng([s.seed, 11])
    B = min(s.paper_batch, d.n, d.m)
    vals = []
    for _ in range(s.paper_batches):
        i, j = rng.choice(d.n, B, replace=False), rng.choice(d.m, B, replace=False)
        vals.append(sinkhorn_cost(cost.pairwise(d.zS[i], d.zT[j]).numpy(), s.paper_reg, 100))
    fa = float(np.mean(vals))
    kappa = lk.kappa_official(d.tS, d.yS)
    la = lk.label_alignment(d.lS, kappa, lk.cross_entropy(d.tS, d.yS))
    rt = observed["teacher_risk"]
    return Term("paper_style", rt + fa + la, ESTIMATED,
                "NOT a bound: teacher test CE + minibatch Sinkhorn FA (reg 0.1, unit tau) + kappa-weighted LA, the "
                "quantities the official code logs", {"teacher_test_ce": rt, "fa_sinkhorn": fa, "la_official": la,
                                                      "batch": B, "batches": s.paper_batches, "reg": s.paper_reg})


def _fs_paper(d, s, mg: MarginalForm, lS_c, curves, tau_est) -> tuple[Term, Term, list[Term]]:
    """The paper's Theorem 2.7 route: eta/4 per term; dyadic (estimated) and fitted (estimated) deviations."""
    c, logC, e4 = s.loss_clip, math.log(d.C), cc.split(s.eta, 4)
    cost = get_cost(s.cost)
    feat = mg.transports[0]
    rT = mg.teacher_term + cc.hoeffding(d.m, e4, logC)
    la = mg.la_clipped + cc.hoeffding(d.n, e4, c + logC)
    devs = [deviation_dyadic(d.zS, e4, cost, "deviation_student"), deviation_dyadic(d.zT, e4, cost,
                                                                                     "deviation_teacher")]
    w1_fs = feat.w1.value + sum(t.value for t in devs)
    kind = weakest(feat.kind, *(t.kind for t in devs))
    paper = Term("finite_sample_paper", rT + feat.lipschitz.value * w1_fs + la, kind,
                 "Theorem 2.7: E^_T f + Hoeffding + tau (W1^ + dyadic deviations) + LA^c + Hoeffding, eta/4 each; "
                 "estimated: the deviations assume the support lies in the sample's bounding box",
                 {"teacher_term_fs": rT, "w1_fs": w1_fs, "label_alignment_fs": la}, POPULATION_CLIPPED_RISK)
    terms = list(devs)
    if curves:
        est = [deviation_estimated(curves[r], len(z), support_box(z, cost)[1], e4, f"deviation_{r}_estimated")
               for r, z in (("student", d.zS), ("teacher", d.zT))]
        terms += est
        w1e = feat.w1.value + sum(t.value for t in est)
    else:
        w1e = w1_fs
    estimated = Term("finite_sample_estimated", rT + tau_est * w1e + la, ESTIMATED,
                     "Theorem 2.7 with fitted empirical rates for the deviations and tau from gradient ascent",
                     {"tau_estimate": tau_est, "w1_fs": w1e}, POPULATION_CLIPPED_RISK)
    return paper, estimated, terms


def assemble(fs: FeatureSet, settings: BoundSettings | None = None, progress=None, **kw) -> BoundReport:
    """Every term and bound from features (module docstring); ``kw`` builds :class:`BoundSettings`.

    ``progress``, when given, is called with the name of each long phase as it starts.
    """
    s = settings or BoundSettings(**kw)
    if settings is not None and kw:
        raise TypeError("give either settings or keyword settings, not both")
    say = progress or (lambda phase: None)
    say("temperature and logits")
    d = prepare(fs, s)
    c, logC = s.loss_clip, math.log(d.C)
    lS_c = np.minimum(d.lS, c)
    errors = int((d.sS.argmax(1) != d.yS).sum())
    observed = {
        "risk": float(d.lS.mean()), "risk_clipped": float(lS_c.mean()), "error01": errors / d.n, "errors": errors,
        "teacher_risk": float(lk.cross_entropy(d.sT, d.yT).mean()),
        "teacher_risk_calibrated": float(lk.cross_entropy(d.sT / d.T, d.yT).mean()),
        "teacher_error01": float((d.sT.argmax(1) != d.yT).mean()),
        "teacher_head_on_student_error01": float((d.tS.argmax(1) != d.yS).mean()),
        "n_student": d.n, "n_teacher": d.m,
    }
    say("W1 transports (marginal form)")
    mg = marginal_form(d, s, lS_c)
    say("W1 per class (class-conditional form)")
    cf = class_form(d, s, lS_c)

    # --- held-out certificates on the student's own test data (population clipped risk / 0-1 error)
    R_c, eta_s = observed["risk_clipped"], s.eta_student
    strata = fs.strata if s.sampling == "stratified" else None
    at = f" at eta / {s.selected_among} = {eta_s:.4g}" if s.selected_among > 1 else ""
    bet = cc.betting_upper(lS_c, eta_s, c, strata=strata, seed=s.seed)
    held = {
        "held_out_betting": Term("held_out_betting", bet, CERTIFIED,
                                 f"betting (Waudby-Smith & Ramdas 2024) on min(l, {c}), {s.sampling} design{at}",
                                 {"deviation": bet - R_c, "eta": eta_s, "sampling": s.sampling},
                                 POPULATION_CLIPPED_RISK),
        "held_out_kl": Term("held_out_kl", cc.kl_upper(R_c, d.n, eta_s, c), CERTIFIED,
                            f"Hoeffding's kl form on min(l, {c}) (values in [0, c]){at}", {"eta": eta_s},
                            POPULATION_CLIPPED_RISK),
        "held_out_hoeffding": Term("held_out_hoeffding", R_c + cc.hoeffding(d.n, eta_s, c), CERTIFIED,
                                   f"Hoeffding on the clipped loss{at}", {"eta": eta_s}, POPULATION_CLIPPED_RISK),
        "held_out_bernstein": Term("held_out_bernstein", cc.empirical_bernstein(lS_c, eta_s, c), CERTIFIED,
                                   f"empirical Bernstein (Maurer & Pontil 2009, Thm 4) on the clipped loss{at}",
                                   {"eta": eta_s}, POPULATION_CLIPPED_RISK),
        "error01_clopper_pearson": Term("error01_clopper_pearson", cc.clopper_pearson(errors, d.n, eta_s), CERTIFIED,
                                        f"Clopper-Pearson upper limit from {errors} errors in {d.n}{at}",
                                        {"eta": eta_s}, POPULATION_ERROR01),
    }

    # --- certified transfer bounds: betting step + deterministic slack of each form (one shared random event)
    cert_forms = {}
    if mg.certifiable is not None:
        cert_forms["certified_marginal"] = Term(
            "certified_marginal", bet + max(0.0, mg.certifiable - R_c), CERTIFIED,
            "held_out_betting + max(0, LA^c + min(log C, E^_T f + L W1) - R^_S^c), transport "
            f"{mg.certifiable_transport}",
            {"finite_sample": bet - R_c, "label_alignment_clipped": mg.la_clipped, "teacher_term": mg.teacher_term,
             "transport": mg.certifiable_transport, "slack": max(0.0, mg.certifiable - R_c)}, POPULATION_CLIPPED_RISK)
    if cf.certifiable is not None:
        cert_forms["certified_class_conditional"] = Term(
            "certified_class_conditional", bet + max(0.0, cf.certifiable - R_c), CERTIFIED,
            "held_out_betting + max(0, Delta^ + sum_y pi^(y) A_y - R^_S^c) with proved metrics",
            {"finite_sample": bet - R_c, "delta": cf.delta, "slack": max(0.0, cf.certifiable - R_c)},
            POPULATION_CLIPPED_RISK)
    best_cert = min(cert_forms, key=lambda k: cert_forms[k].value)

    # --- estimated finite-sample forms (the paper's route)
    say("empirical W1 rate curves")
    curves = {}
    for role, z in (("student", d.zS), ("teacher", d.zT)):
        sizes = _sizes(len(z), s.rate_sizes, s.rate_max_size)
        if len(sizes) >= 2 and min(sizes) >= 2:
            curves[role] = rate_curve(z, sizes=sizes, repeats=s.rate_repeats, cost=s.cost, seed=s.seed)
    if len(curves) < 2:
        curves = {}
    import torch

    say("gradient ascent on tau")
    tau_lo = tau_lower(entropy_fn(d.WT, d.bT, d.T), torch.as_tensor(np.concatenate([d.zT, d.zS])), s.cost,
                       seed=s.seed)
    fs_paper, fs_est, dev_terms = _fs_paper(d, s, mg, lS_c, curves, tau_lo.value)
    say("paper-style estimate")
    paper_style = _paper_style(d, s, observed)

    asym = {"asymptotic_feature": mg.paper, "asymptotic_sharpest": mg.sharpest, "class_conditional": cf.plug_in}
    bounds = {**asym, **cert_forms, **held, "finite_sample_paper": fs_paper, "finite_sample_estimated": fs_est,
              "paper_style": paper_style}
    headline = {"bound_asymptotic": "asymptotic_sharpest", "bound_certified": best_cert,
                "held_out_certificate": "held_out_betting", "error01_certificate": "error01_clopper_pearson",
                "bound_paper_style": "paper_style"}

    # --- terms (the parts, for the tables)
    terms = [
        Term("teacher_term", mg.teacher_term, PLUG_IN, "E^_T f: the teacher's expected loss under its posterior "
             "(its risk R_T when the posterior is the truth)", {"teacher_test_ce": observed["teacher_risk"]}),
        Term("student_term", mg.student_term, PLUG_IN, "E^_S f: the teacher's expected loss at the student's features"),
        Term("student_term_upper", cc.betting_upper(d.fS, eta_s, logC, strata=strata, seed=s.seed), CERTIFIED,
             f"E_{{P_S}} f <= betting bound on f at the student's features (values in [0, log C]){at}: needs no "
             "student label (under the stratified design the labels only form the blocks)",
             {"hoeffding": mg.student_term + cc.hoeffding(d.n, eta_s, logC)}),
        Term("label_alignment", mg.la, PLUG_IN, "LA^ = R^_S - E^_S f"),
        Term("label_alignment_clipped", mg.la_clipped, PLUG_IN, "LA^c = R^_S^c - E^_S f"),
        *[Term(f"transport_{t.name}", t.value, t.kind, f"L W1 with L = {t.lipschitz.name} ({t.lipschitz.kind}), W1 "
               f"by {t.w1.method}" + (f", cost truncated at {t.truncated_at:.4g}" if t.truncated_at else ""),
               {"lipschitz": t.lipschitz.value, "w1": t.w1.value}) for t in mg.transports],
        *[t.lipschitz for t in mg.transports[:1]] + [t.lipschitz for t in mg.transports if t.name.startswith("logit")],
        tau_lo,
        Term("class_delta", cf.delta, PLUG_IN, "Delta^ = E^_S[min(l_S, c) - min(l_T, c)] (the heads' disagreement)"),
        *dev_terms,
        Term("label_alignment_official", paper_style.diagnostics["la_official"], ESTIMATED,
             "LA with kappa = softmax(h_T(z_S))_y (the official code's)"),
        Term("label_alignment_ratio", lk.label_alignment(d.lS, lk.kappa_ratio(lk.softmax(d.tS / d.T), lk.softmax(d.sS),
                                                                            d.yS, s.kappa_cap),
                                                         lk.cross_entropy(d.tS / d.T, d.yS)), ESTIMATED,
             f"LA with kappa = D^_T/D^_S (student head as D_S), capped at {s.kappa_cap}"),
    ]

    # --- assumptions
    cost = get_cost(s.cost)
    assumptions = [
        d.temperature["note"],
        HELD_OUT_DESIGN[s.sampling],
        "the student's held-out items played no part in training or choosing either model" if s.selected_among == 1
        else f"the student was chosen among {s.selected_among} checkpoints by its accuracy on these very items: every "
             f"certificate on them is computed at eta / {s.selected_among} = {eta_s:.4g} (a union bound over the fixed "
             "candidates covers whichever was chosen)",
        f"clipped loss min(l, {c}) in the certified and class-conditional bounds; eta = {s.eta}",
        "every certified transfer bound is the held-out betting certificate plus a slack >= 0 on the same sample, so "
        "it is never below that certificate; their minimum shares one random event (no union bound needed)",
        f"each certificate holds with probability >= {1 - s.eta:g} on its own; any two of them hold together with "
        f"probability >= {1 - 2 * s.eta:g} (union bound)",
        "transports (L W1 between the two samples) are exact sample quantities (kind sample): they bound the "
        "empirical transport, not the population one",
    ]
    if not cost.is_metric or cost.lipschitz_kind != CERTIFIED:
        assumptions.append(f"feature cost {cost.name}: {cost.reason}; feature-space transports are NOT CERTIFIED "
                           "(logit-space transports are unaffected)")
    if any(t.w1.method == "bracket" for t in mg.transports):
        assumptions.append("some W1 by the certified Sinkhorn bracket (its upper end enters the bounds)")
    if d.n * d.m * d.C > OSC_BUDGET:
        assumptions.append(f"oscillation transport skipped: n*m*C = {d.n * d.m * d.C:.3g} above {OSC_BUDGET:.0e}")

    report = BoundReport(s, observed, terms, bounds, headline, assumptions, {}, "", mg.transports, curves,
                         cf.per_class, d.temperature)
    report.chains = _chains(report, mg, cf, bet)
    report.summary = _summary(report, mg)
    return report


def _chains(r: BoundReport, mg: MarginalForm, cf: ClassForm, held: float) -> dict[str, list[dict]]:
    """From the observed risk to each headline bound, one ingredient at a time (the gap explained)."""
    o = r.observed
    cert = r.bound("bound_certified")
    emp = cert.value - (held - o["risk_clipped"])  # the certified form's empirical bound
    certified = [
        {"step": "observed risk (CE)", "value": o["risk"], "kind": "start"},
        {"step": f"clipping at c = {r.settings.loss_clip}", "value": o["risk_clipped"] - o["risk"]},
        {"step": "Lipschitz slack (transport of the teacher's loss, on the samples)", "value": emp - o["risk_clipped"],
         "note": cert.note},
        {"step": "finite-sample slack (betting step)", "value": held - o["risk_clipped"]},
        {"step": f"= {cert.name}", "value": cert.value, "kind": "end"},
    ]
    sharp, paper = mg.sharpest, mg.paper
    plug = [
        {"step": "observed risk (CE)", "value": o["risk"], "kind": "start"},
        {"step": f"Lipschitz slack, sharpest transport ({sharp.diagnostics['transport']}, cap log C)",
         "value": sharp.value - o["risk"]},
        {"step": "transport slack: feature space, norm-product tau, no cap (the paper's form)",
         "value": paper.value - sharp.value},
        {"step": "= asymptotic_feature (the paper's Theorem 2.6, plug-in)", "value": paper.value, "kind": "end"},
        {"step": "finite-sample slack of the paper's route (Theorem 2.7)",
         "value": r.bounds["finite_sample_paper"].value - paper.value, "kind": "aside"},
        {"step": "calibration: E^_T f - teacher test CE", "value": mg.teacher_term - o["teacher_risk"],
         "kind": "aside"},
    ]
    return {"certified": certified, "paper": plug}


def _summary(r: BoundReport, mg: MarginalForm) -> str:
    o, s = r.observed, r.settings
    cert, held, err = r.bound("bound_certified"), r.bound("held_out_certificate"), r.bound("error01_certificate")
    asym = r.bound("bound_asymptotic")
    steps = {x["step"]: x["value"] for x in r.chains["certified"]}
    lip = next(v for k, v in steps.items() if k.startswith("Lipschitz"))
    fin = next(v for k, v in steps.items() if k.startswith("finite-sample"))
    feat = mg.transports[0]
    dominant = "the Lipschitz slack" if lip >= fin else "the finite-sample slack"
    cap = " (capped at log C: the transported teacher loss says nothing beyond its range)" \
        if mg.sharpest.diagnostics.get("cap_binds") else ""
    return (
        f"This student's held-out CE is {o['risk']:.4g} nats (clipped at {s.loss_clip}: {o['risk_clipped']:.4g}) and "
        f"its 0-1 error {o['error01']:.4g} ({o['errors']} of {o['n_student']}). Each with probability at least "
        f"{1 - s.eta:.2f} (both together with probability at least {1 - 2 * s.eta:.2f}), its population clipped "
        f"risk is at most {held.value:.4g} nats (held-out betting certificate) and its population 0-1 error at most "
        f"{err.value:.4g} (Clopper-Pearson). The sharpest certified transfer "
        f"bound ({cert.name}) is {cert.value:.4g} nats: it explains the risk through the teacher (expected loss "
        f"{mg.teacher_term:.4g} on its own features, {mg.student_term:.4g} at the student's) and the label alignment "
        f"({mg.la_clipped:.4g}), and cannot certify less than the held-out certificate. Its gap to the observed risk "
        f"is dominated by {dominant} ({lip:.4g} nats Lipschitz, {fin:.4g} finite-sample){cap}. The paper's "
        f"feature-space form gives {mg.paper.value:.4g} (plug-in; W1 = {feat.w1.value:.4g} between the feature "
        f"clouds, tau = {feat.lipschitz.value:.4g}); the sharpest plug-in form gives {asym.value:.4g} "
        f"({asym.diagnostics['transport']})."
    )


def _sizes(N: int, sizes, max_size: int = 2000):
    if sizes is not None:
        return [x for x in sizes if 2 * x <= N]
    hi = min(N // 2, max_size)
    return sorted(set(np.geomspace(max(4, min(25, hi // 8)), hi, 8).astype(int)))
