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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cmkd_bounds import concentration as cc
from cmkd_bounds import label_kernel as lk
from cmkd_bounds import names
from cmkd_bounds.bound_report import ASIDE, END, START, BoundReport, GapStep, Observed
from cmkd_bounds.complexity import vc_dimension_upper, vc_uniform_term
from cmkd_bounds.costs import LINF, OSCILLATION, get_cost, truncated
from cmkd_bounds.features import FeatureSet, entropy_of, logits
from cmkd_bounds.fewlabel import Pool, draw_labelled, few_label_certificates, predictors, surrogates
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
@dataclass(frozen=True, kw_only=True)
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
    return Sample(zT=zT, yT=yT, zS=zS, yS=yS, WT=WT, bT=bT, sT=sT, tS=tS, sS=sS, lS=lk.cross_entropy(sS, yS),
                  C=fs.num_classes, T=T, temperature=tinfo, fT=entropy_of(sT, T), fS=entropy_of(tS, T))


# ----------------------------------------------------------------------------- transports
@dataclass(frozen=True, kw_only=True)
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
    out = [Transport(name=names.FEATURE, lipschitz=tau, w1=_w1(d.zS, d.zT, cost, s), truncated_at=None)]
    if tau.value > 0:
        at = logC / tau.value
        out.append(Transport(name=names.FEATURE_TRUNCATED, lipschitz=tau, w1=_w1(d.zS, d.zT, truncated(cost, at), s),
                             truncated_at=at))
    l2 = tau_logit(d.C, d.T, "l2")
    at = logC / l2.value
    out.append(Transport(name=names.LOGIT_L2, lipschitz=l2,
                         w1=_w1(_centred(d.tS), _centred(d.sT), truncated("l2", at), s), truncated_at=at))
    if d.n * d.m * d.C <= OSC_BUDGET:
        osc = tau_logit(d.C, d.T, "osc")
        at = logC / osc.value
        out.append(Transport(name=names.LOGIT_OSC, lipschitz=osc, w1=_w1(d.tS, d.sT, truncated(OSCILLATION, at), s),
                             truncated_at=at))
    return out


# ----------------------------------------------------------------------------- the marginal form
@dataclass(frozen=True, kw_only=True)
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
    paper = Term(name=names.ASYMPTOTIC_FEATURE, value=ET + feat.value + la, kind=weakest(PLUG_IN, feat.kind),
                 note="the paper's Theorem 2.6 on the empirical measures: E^_T f + tau W1 (feature space) + LA^",
                 diagnostics={names.TEACHER_TERM: ET, "feature_alignment": feat.value, names.LABEL_ALIGNMENT: la},
                 target=EMPIRICAL_RISK)
    best = min(trs, key=lambda t: t.value)
    sharp = Term(name=names.ASYMPTOTIC_SHARPEST, value=la + _capped(d, best.value), kind=weakest(PLUG_IN, best.kind),
                 note=f"LA^ + min(log C, E^_T f + L W1), transport {best.name}",
                 diagnostics={"transport": best.name, names.TEACHER_TERM: ET, "transport_value": best.value,
                              names.LABEL_ALIGNMENT: la, "cap_binds": ET + best.value > math.log(d.C)},
                 target=EMPIRICAL_RISK)
    cert = [t for t in trs if proved(t.kind)]
    cbest = min(cert, key=lambda t: t.value) if cert else None
    return MarginalForm(teacher_term=ET, student_term=ES, la=la, la_clipped=la_c, transports=trs, paper=paper,
                        sharpest=sharp, certifiable=la_c + _capped(d, cbest.value) if cbest else None,
                        certifiable_transport=cbest.name if cbest else None)


# ----------------------------------------------------------------------------- the class-conditional form
@dataclass(frozen=True, kw_only=True)
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
    plug = Term(name=names.CLASS_CONDITIONAL, value=delta + float(pi @ A_all), kind=kind,
                note="Delta^ + sum_y pi^_S(y) min(c, R^_T^{y,c} + min_metric L_y W1_y) on the empirical measures",
                diagnostics={"delta": delta, names.TAU_CLASS_FEATURE: tau_f.value, names.TAU_CLASS_MARGIN: tau_m.value},
                target=EMPIRICAL_CLIPPED_RISK)
    return ClassForm(delta=delta, per_class=rows, plug_in=plug, certifiable=delta + float(pi @ A_cert))


# ----------------------------------------------------------------------------- the assembly
@dataclass(kw_only=True)
class Assembly:
    """What the builders share and extend: the inputs, and every form, term, headline and assumption so far."""

    fs: FeatureSet
    settings: BoundSettings
    sample: Sample
    clipped: np.ndarray  # min(l_S, c) per student item
    observed: Observed
    say: Callable[[str], None]
    structures: dict | None = None
    notes: tuple[str, ...] = ()
    bounds: dict[str, Term] = field(default_factory=dict)
    terms: list[Term] = field(default_factory=list)
    headline: dict[str, str] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    marginal: MarginalForm | None = None
    classes: ClassForm | None = None
    held: float | None = None  # the headline held-out certificate of the clipped risk
    pool: Pool | None = None  # the few-label setting: the student's pool, most of it unlabelled
    pool_logits: tuple | None = None  # (teacher head, student head) on every pool item
    curves: dict[str, RateCurve] = field(default_factory=dict)
    tau_lower: Term | None = None
    deviations: list[Term] = field(default_factory=list)

    def add(self, *forms: Term) -> None:
        for t in forms:
            self.bounds[t.name] = t


def build_marginal(a: Assembly) -> None:
    """The paper's Theorem 2.6 and its sharpest transport (plug-in); the headline asymptotic bound."""
    a.say("W1 transports (marginal form)")
    a.marginal = marginal_form(a.sample, a.settings, a.clipped)
    a.add(a.marginal.paper, a.marginal.sharpest)
    a.headline[names.BOUND_ASYMPTOTIC] = names.ASYMPTOTIC_SHARPEST


def build_class_conditional(a: Assembly) -> None:
    a.say("W1 per class (class-conditional form)")
    a.classes = class_form(a.sample, a.settings, a.clipped)
    a.add(a.classes.plug_in)


def build_held_out(a: Assembly) -> None:
    """Certificates on the student's own held-out items: betting (the headline route), kl, Hoeffding, Bernstein,
    and Clopper-Pearson for the 0-1 error, every one at ``eta / selected_among``."""
    if a.pool is not None:
        return
    d, s, o = a.sample, a.settings, a.observed
    c, R_c, eta_s = s.loss_clip, o.risk_clipped, s.eta_student
    strata = a.fs.strata if s.sampling == "stratified" else None
    at = f" at eta / {s.selected_among} = {eta_s:.4g}" if s.selected_among > 1 else ""
    a.held = bet = cc.betting_upper(a.clipped, eta_s, c, strata=strata, seed=s.seed)
    a.add(
        Term(name=names.HELD_OUT_BETTING, value=bet, kind=CERTIFIED,
             note=f"betting (Waudby-Smith & Ramdas 2024) on min(l, {c}), {s.sampling} design{at}",
             diagnostics={"deviation": bet - R_c, "eta": eta_s, "sampling": s.sampling},
             target=POPULATION_CLIPPED_RISK),
        Term(name=names.HELD_OUT_KL, value=cc.kl_upper(R_c, d.n, eta_s, c), kind=CERTIFIED,
             note=f"Hoeffding's kl form on min(l, {c}) (values in [0, c]){at}", diagnostics={"eta": eta_s},
             target=POPULATION_CLIPPED_RISK),
        Term(name=names.HELD_OUT_HOEFFDING, value=R_c + cc.hoeffding(d.n, eta_s, c), kind=CERTIFIED,
             note=f"Hoeffding on the clipped loss{at}", diagnostics={"eta": eta_s}, target=POPULATION_CLIPPED_RISK),
        Term(name=names.HELD_OUT_BERNSTEIN, value=cc.empirical_bernstein(a.clipped, eta_s, c), kind=CERTIFIED,
             note=f"empirical Bernstein (Maurer & Pontil 2009, Thm 4) on the clipped loss{at}",
             diagnostics={"eta": eta_s}, target=POPULATION_CLIPPED_RISK),
        Term(name=names.ERROR01_CLOPPER_PEARSON, value=cc.clopper_pearson(o.errors, d.n, eta_s), kind=CERTIFIED,
             note=f"Clopper-Pearson upper limit from {o.errors} errors in {d.n}{at}", diagnostics={"eta": eta_s},
             target=POPULATION_ERROR01),
    )
    a.headline[names.HELD_OUT_CERTIFICATE] = names.HELD_OUT_BETTING
    a.headline[names.ERROR01_CERTIFICATE] = names.ERROR01_CLOPPER_PEARSON


def build_few_label(a: Assembly) -> None:
    """Few labels (:mod:`cmkd_bounds.fewlabel`): direct and prediction-powered certificates of the pool, and their
    population lifts; the headlines are the lifted direct betting and hypergeometric certificates (routes fixed
    before the data)."""
    if a.pool is None:
        return
    s = a.settings
    a.add(*few_label_certificates(a.pool, s.eta_student, s.sampling, seed=s.seed))
    a.held = a.bounds[names.FEW_BETTING].value
    a.headline[names.HELD_OUT_CERTIFICATE] = names.FEW_BETTING
    a.headline[names.ERROR01_CERTIFICATE] = names.FEW01_HYPERGEOMETRIC


def build_predictors(a: Assembly) -> None:
    """Label-free error predictors of the student (estimates): DoC and COT on every pool item, ATC with its threshold
    fitted on held-out labelled student items (the validation split within the label budget) or, with few labels
    and no such split, on the labelled pool items."""
    d, fs = a.sample, a.fs
    tS, sS = a.pool_logits if a.pool is not None else (d.tS, d.sS)
    marginal = np.bincount(d.yT, minlength=d.C) / d.m  # the teacher's label marginal: no student label
    scores, correct, source = None, None, ""
    if fs.student_val_z is not None:
        sv = logits(fs.student_val_z, fs.student_W, fs.student_b)
        scores, correct = lk.softmax(sv).max(1), sv.argmax(1) == np.asarray(fs.student_val_y)
        source = f"{len(scores)} held-out labelled student items (the validation split within the label budget)"
    elif a.pool is not None:
        scores, correct = lk.softmax(d.sS).max(1), d.sS.argmax(1) == d.yS
        source = f"the {len(scores)} labelled pool items"
    a.terms += predictors(sS, marginal, scores, correct, source)


def build_transfer(a: Assembly) -> None:
    """Certified transfer bounds: the held-out certificate plus each form's slack on the sample (one random event);
    the headline is the smaller."""
    mg, cf, bet, R_c = a.marginal, a.classes, a.held, a.observed.risk_clipped
    if mg.certifiable is not None:
        a.add(Term(name=names.CERTIFIED_MARGINAL, value=bet + max(0.0, mg.certifiable - R_c), kind=CERTIFIED,
                   note=f"{a.headline[names.HELD_OUT_CERTIFICATE]} + max(0, LA^c + min(log C, E^_T f + L W1) - "
                        f"R^_S^c), transport {mg.certifiable_transport}",
                   diagnostics={"finite_sample": bet - R_c, names.LABEL_ALIGNMENT_CLIPPED: mg.la_clipped,
                                names.TEACHER_TERM: mg.teacher_term, "transport": mg.certifiable_transport,
                                "slack": max(0.0, mg.certifiable - R_c)}, target=POPULATION_CLIPPED_RISK))
    if cf.certifiable is not None:
        a.add(Term(name=names.CERTIFIED_CLASS_CONDITIONAL, value=bet + max(0.0, cf.certifiable - R_c), kind=CERTIFIED,
                   note=f"{a.headline[names.HELD_OUT_CERTIFICATE]} + max(0, Delta^ + sum_y pi^(y) A_y - R^_S^c) with "
                        "proved metrics",
                   diagnostics={"finite_sample": bet - R_c, "delta": cf.delta, "slack": max(0.0, cf.certifiable - R_c)},
                   target=POPULATION_CLIPPED_RISK))
    transfer = [k for k in names.CERTIFIED_TRANSFER if k in a.bounds]
    a.headline[names.BOUND_CERTIFIED] = min(transfer, key=lambda k: a.bounds[k].value)


def build_finite_sample(a: Assembly) -> None:
    """The paper's Theorem 2.7 route (estimated): rate curves, the ascent's tau and the dyadic deviations."""
    d, s = a.sample, a.settings
    a.say("empirical W1 rate curves")
    curves = {}
    for role, z in (("student", d.zS), ("teacher", d.zT)):
        sizes = _sizes(len(z), s.rate_sizes, s.rate_max_size)
        if len(sizes) >= 2 and min(sizes) >= 2:
            curves[role] = rate_curve(z, sizes=sizes, repeats=s.rate_repeats, cost=s.cost, seed=s.seed,
                                      method=s.w1_method, width=s.w1_width)
    a.curves = curves if len(curves) == 2 else {}
    import torch

    a.say("gradient ascent on tau")
    a.tau_lower = tau_lower(entropy_fn(d.WT, d.bT, d.T), torch.as_tensor(np.concatenate([d.zT, d.zS])), s.cost,
                            seed=s.seed)
    paper, estimated, a.deviations = _fs_paper(d, s, a.marginal, a.curves, a.tau_lower.value)
    a.add(paper, estimated)


def build_paper_style(a: Assembly) -> None:
    a.say("paper-style estimate")
    a.add(_paper_style(a.sample, a.settings, a.observed))
    a.headline[names.BOUND_PAPER_STYLE] = names.PAPER_STYLE


def build_terms(a: Assembly) -> None:
    """The parts of the bounds, for the tables."""
    d, s, mg, cf = a.sample, a.settings, a.marginal, a.classes
    eta_s = s.eta_student
    strata = a.fs.strata if s.sampling == "stratified" else None
    at = f" at eta / {s.selected_among} = {eta_s:.4g}" if s.selected_among > 1 else ""
    paper_style = a.bounds[names.PAPER_STYLE]
    a.terms += [
        Term(name=names.TEACHER_TERM, value=mg.teacher_term, kind=PLUG_IN,
             note="E^_T f: the teacher's expected loss under its posterior (its risk R_T when the posterior is the "
                  "truth)", diagnostics={"teacher_test_ce": a.observed.teacher_risk}),
        Term(name=names.STUDENT_TERM, value=mg.student_term, kind=PLUG_IN,
             note="E^_S f: the teacher's expected loss at the student's features"),
        _student_term_upper(a, strata, at),
        Term(name=names.LABEL_ALIGNMENT, value=mg.la, kind=PLUG_IN, note="LA^ = R^_S - E^_S f"),
        Term(name=names.LABEL_ALIGNMENT_CLIPPED, value=mg.la_clipped, kind=PLUG_IN, note="LA^c = R^_S^c - E^_S f"),
        *[Term(name=names.transport_term(t.name), value=t.value, kind=t.kind,
               note=f"L W1 with L = {t.lipschitz.name} ({t.lipschitz.kind}), W1 by {t.w1.method}"
                    + (f", cost truncated at {t.truncated_at:.4g}" if t.truncated_at else ""),
               diagnostics={"lipschitz": t.lipschitz.value, "w1": t.w1.value}) for t in mg.transports],
        *[t.lipschitz for t in mg.transports[:1]] + [t.lipschitz for t in mg.transports
                                                      if t.name in (names.LOGIT_L2, names.LOGIT_OSC)],
        a.tau_lower,
        Term(name=names.CLASS_DELTA, value=cf.delta, kind=PLUG_IN,
             note="Delta^ = E^_S[min(l_S, c) - min(l_T, c)] (the heads' disagreement)"),
        *a.deviations,
        Term(name=names.LABEL_ALIGNMENT_OFFICIAL, value=paper_style.diagnostics["la_official"], kind=ESTIMATED,
             note="LA with kappa = softmax(h_T(z_S))_y (the official code's)"),
        Term(name=names.LABEL_ALIGNMENT_RATIO,
             value=lk.label_alignment(d.lS, lk.kappa_ratio(lk.softmax(d.tS / d.T), lk.softmax(d.sS), d.yS,
                                                           s.kappa_cap), lk.cross_entropy(d.tS / d.T, d.yS)),
             kind=ESTIMATED, note=f"LA with kappa = D^_T/D^_S (student head as D_S), capped at {s.kappa_cap}"),
    ]


def _student_term_upper(a: Assembly, strata, at: str) -> Term:
    """A certificate of ``E_{P_S} f``: betting on ``f`` at the student's features; with few labels, the kl form over
    every pool item (no label needed, under either design: it holds for independent values with unequal means)."""
    d, s, mg = a.sample, a.settings, a.marginal
    eta_s, logC = s.eta_student, math.log(d.C)
    if a.pool is not None:
        fS = entropy_of(a.pool_logits[0], d.T)
        return Term(name=names.STUDENT_TERM_UPPER, value=cc.kl_upper(float(fS.mean()), len(fS), eta_s, logC),
                    kind=CERTIFIED, note=f"E_{{P_S}} f <= kl bound on f over the {len(fS)} pool items (values in "
                                         f"[0, log C]){at}: no student label", diagnostics={"pool_items": len(fS)})
    return Term(name=names.STUDENT_TERM_UPPER, value=cc.betting_upper(d.fS, eta_s, logC, strata=strata, seed=s.seed),
                kind=CERTIFIED,
                note=f"E_{{P_S}} f <= betting bound on f at the student's features (values in [0, log C]){at}: needs "
                     "no student label (under the stratified design the labels only form the blocks)",
                diagnostics={"hoeffding": mg.student_term + cc.hoeffding(d.n, eta_s, logC)})


def build_assumptions(a: Assembly) -> None:
    d, s = a.sample, a.settings
    eta_s, cost = s.eta_student, get_cost(s.cost)
    a.assumptions += [
        d.temperature["note"],
        HELD_OUT_DESIGN[s.sampling],
        "the student's held-out items played no part in training or choosing either model" if s.selected_among == 1
        else f"the student was chosen among {s.selected_among} checkpoints by its accuracy on these very items: every "
             f"certificate on them is computed at eta / {s.selected_among} = {eta_s:.4g} (a union bound over the fixed "
             "candidates covers whichever was chosen)",
        f"clipped loss min(l, {s.loss_clip}) in the certified and class-conditional bounds; eta = {s.eta}",
        "every certified transfer bound is the held-out betting certificate plus a slack >= 0 on the same sample, so "
        "it is never below that certificate; their minimum shares one random event (no union bound needed)",
        f"each certificate holds with probability >= {1 - s.eta:g} on its own; any two of them hold together with "
        f"probability >= {1 - 2 * s.eta:g} (union bound)",
        "transports (L W1 between the two samples) are exact sample quantities (kind sample): they bound the "
        "empirical transport, not the population one",
    ]
    if not cost.is_metric or cost.lipschitz_kind != CERTIFIED:
        a.assumptions.append(f"feature cost {cost.name}: {cost.reason}; feature-space transports are NOT CERTIFIED "
                             "(logit-space transports are unaffected)")
    if any(t.w1.method == "bracket" for t in a.marginal.transports):
        a.assumptions.append("some W1 by the certified Sinkhorn bracket (its upper end enters the bounds)")
    if d.n * d.m * d.C > OSC_BUDGET:
        a.assumptions.append(f"oscillation transport skipped: n*m*C = {d.n * d.m * d.C:.3g} above {OSC_BUDGET:.0e}")
    if a.pool is not None:
        p = a.pool
        a.assumptions.append(
            f"few labels: {p.K} of the {p.n} student items are labelled, and no other student label is read; they must "
            "be a uniformly random draw without replacement from the pool. The forms that need labels use the "
            f"{p.K} only; the *_pool certificates cover the clipped risk and 0-1 error of the {p.n}-item pool (the "
            "draw is their only randomness); the others lift them to the population by the kl step over the pool "
            f"({s.sampling} pool), eta split in halves")
    a.assumptions += list(a.notes)


def build_complexity(a: Assembly) -> None:
    """VC uniform-convergence terms of both networks, for comparison only (when their structures are given)."""
    if not a.structures:
        return
    for role, name, n in (("teacher", names.VC_TERM_TEACHER, a.sample.m), ("student", names.VC_TERM_STUDENT,
                                                                          a.sample.n)):
        st = a.structures[role]
        a.terms.append(vc_uniform_term(vc_dimension_upper(st["params"], st["units_per_layer"]), n, a.settings.eta,
                                       a.settings.loss_clip, name=name))
    a.assumptions.append("VC terms (Bartlett et al. 2019, Theorem 7) are shown for comparison only; they are not part "
                         "of any bound above")


BUILDERS: tuple[Callable[[Assembly], None], ...] = (
    build_marginal, build_class_conditional, build_held_out, build_few_label, build_transfer, build_finite_sample,
    build_paper_style, build_terms, build_predictors, build_assumptions, build_complexity,
)


def _ordered(d: dict, order) -> dict:
    """``d`` with the keys of ``order`` first, in that order, then any others as they came."""
    return {**{k: d[k] for k in order if k in d}, **{k: v for k, v in d.items() if k not in order}}


def assemble(fs: FeatureSet, settings: BoundSettings | None = None, progress=None, *, structures: dict | None = None,
             notes=(), labelled_items=None, **kw) -> BoundReport:
    """Every term and bound from features (module docstring); ``kw`` builds :class:`BoundSettings`.

    ``progress``, when given, is called with the name of each long phase as it starts. ``structures``
    (``{"teacher": {"params", "units_per_layer"}, "student": ...}``) adds the VC terms; ``notes`` are
    assumptions the caller knows about the source (the split, the data). ``labelled_items`` (indices of the
    student items whose labels may be used; by default the items whose label is not ``-1``, or the uniform draw
    of ``settings.labelled`` of them) makes the report a few-label one when it leaves items out: every form that
    needs a student label is computed on the labelled items only, the held-out certificates become the
    few-label ones of :mod:`cmkd_bounds.fewlabel` (the labelled items must be a uniformly random draw from the
    pool), and no other student label is read.
    """
    s = settings or BoundSettings(**kw)
    if settings is not None and kw:
        raise TypeError("give either settings or keyword settings, not both")
    say = progress or (lambda phase: None)
    say("temperature and logits")
    n_pool = len(fs.student_y)
    lab = fs.labelled if labelled_items is None else np.unique(np.asarray(labelled_items, int))
    draw = ("the items labelled in the data (assumed a uniformly random draw from the pool, independent of the data)"
            if labelled_items is None else "given by the caller (assumed a uniformly random draw from the pool, "
            "independent of the data)")
    if s.labelled and labelled_items is not None:
        raise ValueError("give the labelled items or their number (settings.labelled), not both")
    if s.labelled:
        lab = draw_labelled(lab, s.labelled, s.seed)
        draw = f"drawn uniformly at random without replacement by the tool (seed {s.seed})"
    if len(lab) and (lab.min() < 0 or lab.max() >= n_pool or (np.asarray(fs.student_y)[lab] < 0).any()):
        raise ValueError(f"labelled items must be labelled student items among 0..{n_pool - 1}")
    few = len(lab) < n_pool
    d = prepare(fs.restricted(lab) if few else fs, s)
    clipped = np.minimum(d.lS, s.loss_clip)
    errors = int((d.sS.argmax(1) != d.yS).sum())
    observed = Observed(
        risk=float(d.lS.mean()), risk_clipped=float(clipped.mean()), error01=errors / d.n, errors=errors,
        teacher_risk=float(lk.cross_entropy(d.sT, d.yT).mean()),
        teacher_risk_calibrated=float(lk.cross_entropy(d.sT / d.T, d.yT).mean()),
        teacher_error01=float((d.sT.argmax(1) != d.yT).mean()),
        teacher_head_on_student_error01=float((d.tS.argmax(1) != d.yS).mean()), n_student=d.n, n_teacher=d.m)
    a = Assembly(fs=fs.restricted(lab) if few else fs, settings=s, sample=d, clipped=clipped, observed=observed,
                 say=say, structures=structures, notes=tuple(notes))
    tS_all = logits(fs.student_z, d.WT, d.bT)
    sS_all = logits(fs.student_z, fs.student_W, fs.student_b)
    values, ranges = surrogates(tS_all, sS_all, d.T, s.loss_clip)
    if few:
        a.pool = Pool(n=n_pool, labelled=lab, loss=clipped, error=(d.sS.argmax(1) != d.yS).astype(float),
                      surrogates=values, ranges=ranges, clip=s.loss_clip)
        a.pool_logits = (tS_all, sS_all)
    for build in BUILDERS:
        build(a)
    report = BoundReport(settings=s, observed=observed, terms=a.terms, bounds=_ordered(a.bounds, names.FORMS),
                         headline=_ordered(a.headline, names.HEADLINES), assumptions=a.assumptions,
                         transports=a.marginal.transports, rate_curves=a.curves, per_class=a.classes.per_class,
                         temperature=d.temperature, pool=_pool_record(fs, lab, draw, s) if few else {},
                         items=_items(fs, lab, sS_all, values, s.loss_clip))
    report.chains = _chains(report, a.marginal, a.held)
    report.summary = _summary(report, a.marginal)
    return report


def _items(fs: FeatureSet, lab, sS_all, values: dict, clip: float) -> dict[str, np.ndarray]:
    """Per student item of the pool: the prediction, the label as given (-1: unlabelled), whether it was labelled
    for the certificates, the clipped loss and 0/1 error where the label is known (NaN elsewhere), and the
    surrogates. Correlations of surrogates and losses, and the disagreement of two students, are read from here."""
    y = np.asarray(fs.student_y).astype(int)
    known = y >= 0
    loss = np.full(len(y), np.nan)
    loss[known] = np.minimum(lk.cross_entropy(sS_all[known], y[known]), clip)
    err = np.where(known, (sS_all.argmax(1) != y).astype(float), np.nan)
    mask = np.zeros(len(y), bool)
    mask[lab] = True
    return {"prediction": sS_all.argmax(1).astype(np.int32), "label": y.astype(np.int32), "labelled": mask,
            "loss_clipped": loss, "error": err, **{f"surrogate_{k}": np.asarray(v, float) for k, v in values.items()}}


def _pool_record(fs: FeatureSet, lab, draw: str, s: BoundSettings) -> dict:
    """What the few-label report says about its pool; the pool's own risk when every label was given to the tool
    (a simulation: those labels are hidden from every certificate and shown only to compare)."""
    y = np.asarray(fs.student_y).astype(int)
    out = {"n": len(y), "labelled": len(lab), "draw": draw, "sampling": s.sampling}
    if (y >= 0).all():
        sS = logits(fs.student_z, fs.student_W, fs.student_b)
        out["hidden_risk_clipped"] = float(np.minimum(lk.cross_entropy(sS, y), s.loss_clip).mean())
        out["hidden_error01"] = float((sS.argmax(1) != y).mean())
        out["note"] = ("every label of the pool was given; all but the labelled ones were hidden from every "
                       "certificate and are used here only to compare")
    return out


# ----------------------------------------------------------------------------- the paper's estimates
def _paper_style(d: Sample, s: BoundSettings, observed: Observed) -> Term:
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
    rt = observed.teacher_risk
    return Term(name=names.PAPER_STYLE, value=rt + fa + la, kind=ESTIMATED,
                note="NOT a bound: teacher test CE + minibatch Sinkhorn FA (reg 0.1, unit tau) + kappa-weighted LA, "
                     "the quantities the official code logs",
                diagnostics={"teacher_test_ce": rt, "fa_sinkhorn": fa, "la_official": la, "batch": B,
                             "batches": s.paper_batches, "reg": s.paper_reg})


def _fs_paper(d: Sample, s: BoundSettings, mg: MarginalForm, curves, tau_est) -> tuple[Term, Term, list[Term]]:
    """The paper's Theorem 2.7 route: eta/4 per term; dyadic (estimated) and fitted (estimated) deviations."""
    c, logC, e4 = s.loss_clip, math.log(d.C), cc.split(s.eta, 4)
    cost = get_cost(s.cost)
    feat = mg.transports[0]
    rT = mg.teacher_term + cc.hoeffding(d.m, e4, logC)
    la = mg.la_clipped + cc.hoeffding(d.n, e4, c + logC)
    devs = [deviation_dyadic(d.zS, e4, cost, names.DEVIATION_STUDENT),
            deviation_dyadic(d.zT, e4, cost, names.DEVIATION_TEACHER)]
    w1_fs = feat.w1.value + sum(t.value for t in devs)
    kind = weakest(feat.kind, *(t.kind for t in devs))
    paper = Term(name=names.FINITE_SAMPLE_PAPER, value=rT + feat.lipschitz.value * w1_fs + la, kind=kind,
                 note="Theorem 2.7: E^_T f + Hoeffding + tau (W1^ + dyadic deviations) + LA^c + Hoeffding, eta/4 each; "
                      "estimated: the deviations assume the support lies in the sample's bounding box",
                 diagnostics={"teacher_term_fs": rT, "w1_fs": w1_fs, "label_alignment_fs": la},
                 target=POPULATION_CLIPPED_RISK)
    terms = list(devs)
    if curves:
        est = [deviation_estimated(curves[r], len(z), support_box(z, cost)[1], e4, name)
               for r, z, name in (("student", d.zS, names.DEVIATION_STUDENT_ESTIMATED),
                                  ("teacher", d.zT, names.DEVIATION_TEACHER_ESTIMATED))]
        terms += est
        w1e = feat.w1.value + sum(t.value for t in est)
    else:
        w1e = w1_fs
    estimated = Term(name=names.FINITE_SAMPLE_ESTIMATED, value=rT + tau_est * w1e + la, kind=ESTIMATED,
                     note="Theorem 2.7 with fitted empirical rates for the deviations and tau from gradient ascent",
                     diagnostics={"tau_estimate": tau_est, "w1_fs": w1e}, target=POPULATION_CLIPPED_RISK)
    return paper, estimated, terms


# ----------------------------------------------------------------------------- the gap, explained in numbers and words
def _chains(r: BoundReport, mg: MarginalForm, held: float) -> dict[str, list[GapStep]]:
    """From the observed risk to each headline bound, one ingredient at a time (the gap explained)."""
    o = r.observed
    cert = r.bound(names.BOUND_CERTIFIED)
    emp = cert.value - (held - o.risk_clipped)  # the certified form's empirical bound
    certified = [
        GapStep(step="observed risk (CE)", value=o.risk, part=START),
        GapStep(step=f"clipping at c = {r.settings.loss_clip}", value=o.risk_clipped - o.risk),
        GapStep(step=LIPSCHITZ_STEP, value=emp - o.risk_clipped, note=cert.note),
        GapStep(step=FINITE_SAMPLE_STEP, value=held - o.risk_clipped),
        GapStep(step=f"= {cert.name}", value=cert.value, part=END),
    ]
    sharp, paper = mg.sharpest, mg.paper
    plug = [
        GapStep(step="observed risk (CE)", value=o.risk, part=START),
        GapStep(step=f"Lipschitz slack, sharpest transport ({sharp.diagnostics['transport']}, cap log C)",
                value=sharp.value - o.risk),
        GapStep(step="transport slack: feature space, norm-product tau, no cap (the paper's form)",
                value=paper.value - sharp.value),
        GapStep(step=f"= {names.ASYMPTOTIC_FEATURE} (the paper's Theorem 2.6, plug-in)", value=paper.value, part=END),
        GapStep(step="finite-sample slack of the paper's route (Theorem 2.7)",
                value=r.bounds[names.FINITE_SAMPLE_PAPER].value - paper.value, part=ASIDE),
        GapStep(step="calibration: E^_T f - teacher test CE", value=mg.teacher_term - o.teacher_risk, part=ASIDE),
    ]
    return {"certified": certified, "paper": plug}


LIPSCHITZ_STEP = "Lipschitz slack (transport of the teacher's loss, on the samples)"
FINITE_SAMPLE_STEP = "finite-sample slack (betting step)"


def _summary(r: BoundReport, mg: MarginalForm) -> str:
    o, s = r.observed, r.settings
    cert, held = r.bound(names.BOUND_CERTIFIED), r.bound(names.HELD_OUT_CERTIFICATE)
    err, asym = r.bound(names.ERROR01_CERTIFICATE), r.bound(names.BOUND_ASYMPTOTIC)
    steps = {x.step: x.value for x in r.chains["certified"]}
    lip, fin = steps[LIPSCHITZ_STEP], steps[FINITE_SAMPLE_STEP]
    feat = mg.transports[0]
    dominant = "the Lipschitz slack" if lip >= fin else "the finite-sample slack"
    cap = " (capped at log C: the transported teacher loss says nothing beyond its range)" \
        if mg.sharpest.diagnostics.get("cap_binds") else ""
    if r.pool:
        p = r.pool
        pool = {k: r.bounds[names.pool_form(k)].value for k in (names.FEW_BETTING, names.FEW01_HYPERGEOMETRIC)}
        opening = (
            f"Only {p['labelled']} of this student's {p['n']} held-out items are labelled ({p['draw']}); on them its "
            f"CE is {o.risk:.4g} nats (clipped at {s.loss_clip}: {o.risk_clipped:.4g}) and its 0-1 error "
            f"{o.error01:.4g} ({o.errors} of {o.n_student}). Each with probability at least {1 - s.eta:.2f} (any two "
            f"together with probability at least {1 - 2 * s.eta:.2f}): the clipped risk of the {p['n']}-item pool "
            f"is at most {pool[names.FEW_BETTING]:.4g} nats and its 0-1 error at most "
            f"{pool[names.FEW01_HYPERGEOMETRIC]:.4g}; the population clipped risk is at most {held.value:.4g} nats "
            f"({held.name}) and the population 0-1 error at most {err.value:.4g} ({err.name}). The "
            "prediction-powered certificates are in the table below. The sharpest certified transfer ")
    else:
        opening = (
            f"This student's held-out CE is {o.risk:.4g} nats (clipped at {s.loss_clip}: {o.risk_clipped:.4g}) and "
            f"its 0-1 error {o.error01:.4g} ({o.errors} of {o.n_student}). Each with probability at least "
            f"{1 - s.eta:.2f} (both together with probability at least {1 - 2 * s.eta:.2f}), its population clipped "
            f"risk is at most {held.value:.4g} nats (held-out betting certificate) and its population 0-1 error at "
            f"most {err.value:.4g} (Clopper-Pearson). The sharpest certified transfer ")
    return (
        opening +
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
    if hi < 4:  # too few items for a rate curve (the caller then fits none)
        return []
    return sorted(set(np.geomspace(max(4, min(25, hi // 8)), hi, 8).astype(int)))
