"""The assembled bounds: kinds that mean what they say, deterministic inequalities, and the forms' values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmkd_bounds import concentration as cc
from cmkd_bounds.features import FeatureSet
from cmkd_bounds.settings import BoundSettings
from cmkd_bounds.theorem import assemble
from tests.strategies import HEAVY_EXAMPLES
from training.synthetic import SyntheticWorld

QUICK = dict(rate_repeats=2, rate_sizes=(8, 16, 32))


@settings(max_examples=HEAVY_EXAMPLES)
@given(st.integers(2, 5), st.integers(1, 3), st.floats(0, 2), st.floats(0, 2), st.integers(0, 10**4), st.booleans(),
       st.sampled_from(["calibrated", "raw", "true"]))
def test_deterministic_inequalities_of_every_form(C, r, fshift, lshift, seed, perturb, posterior):
    w = SyntheticWorld(num_classes=C, latent_dim=r, dim_teacher=r + 2, dim_student=r + 1,
                       feature_shift=fshift, label_shift=lshift, seed=seed)
    WS, bS = w.bayes_head("student")
    if perturb:  # a student head that is not Bayes-optimal
        WS = WS + np.random.default_rng(seed).normal(size=WS.shape) * 0.5
    rep = assemble(w.feature_set(150, 120, np.random.default_rng(seed), (WS, bS)), posterior=posterior, **QUICK)
    b, o = rep.bounds, rep.observed
    # plug-in forms bound the empirical risk exactly (Kantorovich-Rubinstein on the empirical measures)
    assert b["asymptotic_feature"].value >= o.risk - 1e-9
    assert b["asymptotic_sharpest"].value >= o.risk - 1e-9
    assert b["asymptotic_sharpest"].value <= b["asymptotic_feature"].value + 1e-9 or \
        b["asymptotic_sharpest"].value <= o.risk - rep.term("student_term").value + math.log(C) + 1e-9
    assert b["class_conditional"].value >= o.risk_clipped - 1e-9
    # every transport bounds the transported difference of means
    diff = rep.term("student_term").value - rep.term("teacher_term").value
    for t in rep.transports:
        assert t.value >= diff - 1e-9, t.name
    # certified transfer bounds = the held-out betting certificate + a non-negative slack (never below it, not even
    # by rounding); the minimum is the headline
    held = b["held_out_betting"].value
    assert rep.bound("held_out_certificate") is b["held_out_betting"]
    cert = [b[k] for k in ("certified_marginal", "certified_class_conditional")]
    assert all(x.kind == "certified" and x.target == "population clipped risk" for x in cert)
    assert all(x.value >= held for x in cert)
    kl = b["held_out_kl"].value
    assert rep.bound("bound_certified").value == min(x.value for x in cert)
    assert kl <= b["held_out_hoeffding"].value + 1e-12  # kl never above Hoeffding (Pinsker)
    # kinds: plug-in forms are never called certified, the paper's finite-sample route is an estimate
    for k in ("asymptotic_feature", "asymptotic_sharpest", "class_conditional"):
        assert b[k].kind == "plug-in" and b[k].target.startswith("empirical")
    assert b["finite_sample_paper"].kind == "estimated" and b["paper_style"].target is None


def test_plug_in_values_can_undershoot_the_population():
    """Issue 11 #1: in a constant-teacher world at n = 20 the plug-in values fall below the true risk in a
    sizeable fraction of draws, so they cannot be certified; the certified bounds hold in every draw here."""
    w = SyntheticWorld(num_classes=3, latent_dim=2, separation=1.5, seed=3)
    W0, b0 = np.zeros((3, 2)), np.zeros(3)  # the constant teacher/student head: loss log 3 everywhere
    WS, bS = w.bayes_head("student")
    truth = w.true_risk(WS, bS, loss_clip=5.0)
    under, held = 0, 0
    for d in range(40):
        rng = np.random.default_rng(d)
        fs = w.feature_set(20, 20, rng, (WS, bS))
        fs = FeatureSet(fs.teacher_z, fs.teacher_y, fs.student_z, fs.student_y, W0, b0, WS, bS)
        rep = assemble(fs, posterior="raw", **QUICK)
        under += rep.bounds["class_conditional"].value < truth
        held += rep.bound("bound_certified").value >= truth
    assert under >= 5 and held == 40


def test_headline_and_known_values_on_a_small_world():
    w = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3)
    rep = assemble(w.feature_set(300, 300, np.random.default_rng(0)), **QUICK)
    d = rep.to_dict()
    n, errs, c = rep.observed.n_student, rep.observed.errors, rep.settings.loss_clip
    assert d["error01_certificate"]["value"] == pytest.approx(cc.clopper_pearson(errs, n, 0.05))
    assert d["held_out_certificate"]["form"] == "held_out_betting"
    assert rep.bounds["held_out_kl"].value == pytest.approx(cc.kl_upper(rep.observed.risk_clipped, n, 0.05, c))
    assert d["bound_asymptotic"]["form"] == "asymptotic_sharpest"
    assert d["bound_certified"]["form"] in ("certified_marginal", "certified_class_conditional")
    assert not any(t.name == "kappa_identity_error" for t in rep.terms)  # issue 11 #5: measured only the cap


def test_non_metric_cost_excludes_feature_space_transports_from_certificates():
    w = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3)
    rep = assemble(w.feature_set(120, 120, np.random.default_rng(0)), cost="cosine", **QUICK)
    assert rep.bounds["asymptotic_feature"].kind == "estimated"
    assert rep.bounds["certified_marginal"].diagnostics["transport"].startswith("logit")
    assert any("NOT CERTIFIED" in a for a in rep.assumptions)


def test_zero_shift_same_sample_gives_equality():
    w = SyntheticWorld(num_classes=3, seed=4)
    z, y = w.sample_latent("teacher", 300, np.random.default_rng(0))
    W, b = w.bayes_head("teacher")
    rep = assemble(FeatureSet(z, y, z, y, W, b, W, b), posterior="true", **QUICK)
    assert all(t.w1.value == 0 for t in rep.transports)
    assert rep.bounds["asymptotic_feature"].value == pytest.approx(rep.observed.risk, abs=1e-9)
    assert rep.term("label_alignment").value == pytest.approx(0.0, abs=0.05)  # heads agree: LA = R_S - E f ~ 0


def test_feature_alignment_grows_linearly_with_translation():
    w = SyntheticWorld(num_classes=3, seed=5)
    z, y = w.sample_latent("teacher", 200, np.random.default_rng(1))
    W, b = w.bayes_head("teacher")
    e = np.array([1.0, 0.0])
    fa = [assemble(FeatureSet(z, y, z + s * e, y, W, b, W, b), posterior="true", **QUICK)
          .term("transport_feature").value for s in (1.0, 2.0, 4.0)]
    assert fa[1] == pytest.approx(2 * fa[0], rel=1e-6) and fa[2] == pytest.approx(4 * fa[0], rel=1e-6)


def test_bad_inputs_are_named():
    w = SyntheticWorld(num_classes=3, seed=6)
    fs = w.feature_set(100, 100, np.random.default_rng(0))
    base = dict(fs.__dict__)
    with pytest.raises(ValueError, match="differ in size"):
        FeatureSet(**{**base, "student_z": np.zeros((5, 7)), "student_y": np.zeros(5, int),
                      "student_W": np.zeros((3, 7))})
    with pytest.raises(ValueError, match="outside -1..2"):
        FeatureSet(**{**base, "student_y": np.full(len(fs.student_y), 3)})
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        FeatureSet(**{**base, "student_W": np.zeros((4, 2)), "student_b": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN or Inf"):
        FeatureSet(**{**base, "teacher_z": np.full_like(fs.teacher_z, np.inf)})
    with pytest.raises(ValueError, match="clip must be >= ln 2"):
        BoundSettings(loss_clip=0.5)
    with pytest.raises(TypeError):
        BoundSettings(0.05)  # keyword-only
    assert math.isfinite(assemble(fs, **QUICK).bound("bound_certified").value)
