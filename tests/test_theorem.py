"""The assembled bounds on synthetic worlds where every quantity is known."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmkd_bounds import label_kernel as lk
from cmkd_bounds.theorem import FeatureSet, assemble
from tests.strategies import HEAVY_EXAMPLES
from training.synthetic import SyntheticWorld


def world_features(w, n=400, m=400, seed=0, student_head=None):
    rng = np.random.default_rng(seed)
    zT, yT = w.sample_latent("teacher", m, rng)
    zS, yS = w.sample_latent("student", n, rng)
    zc, yc = w.sample_latent("teacher", 200, rng)
    WT, bT = w.bayes_head("teacher")
    WS, bS = student_head if student_head is not None else w.bayes_head("student")
    return FeatureSet(zT, yT, zS, yS, WT, bT, WS, bS, zc, yc)


def true_student_risk(w, W, b, n=200_000, seed=99):
    z, y = w.sample_latent("student", n, np.random.default_rng(seed))
    return float(lk.cross_entropy(z @ W.T + b, y).mean())


@settings(max_examples=HEAVY_EXAMPLES)
@given(st.integers(2, 5), st.integers(1, 3), st.floats(0, 2), st.floats(0, 2), st.integers(0, 10**4),
       st.booleans())
def test_asymptotic_bound_dominates_true_student_risk(C, r, fshift, lshift, seed, perturb):
    w = SyntheticWorld(num_classes=C, latent_dim=r, dim_teacher=r + 2, dim_student=r + 1,
                       feature_shift=fshift, label_shift=lshift, seed=seed)
    WS, bS = w.bayes_head("student")
    if perturb:  # a student head that is not Bayes-optimal
        WS = WS + np.random.default_rng(seed).normal(size=WS.shape) * 0.5
    fs = world_features(w, seed=seed, student_head=(WS, bS))
    rep = assemble(fs, posterior="true", rate_repeats=3)
    truth = true_student_risk(w, WS, bS)
    assert rep.bounds["asymptotic"].kind == "certified"
    assert rep.bounds["asymptotic"].value >= truth
    # on the empirical measures the inequality is exact: bound - R^_S = E_T f - E_S f + tau W1 >= 0
    assert rep.bounds["asymptotic"].value >= rep.observed["risk"] - 1e-9
    # the finite-sample bounds sit above the asymptotic one and bound the clipped risk
    assert rep.bounds["finite_sample"].value >= rep.bounds["asymptotic"].value - 1e-9 or \
        rep.observed["risk"] > rep.observed["risk_clipped"]
    assert rep.bounds["class_conditional"].value >= rep.observed["risk_clipped"] - 1e-9
    assert rep.bounds["class_conditional_finite_sample"].value >= rep.bounds["class_conditional"].value


def test_kinds_follow_the_posterior_assumption_and_the_cost():
    w = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3)
    fs = world_features(w)
    cal = assemble(fs, posterior="calibrated", rate_repeats=2)
    assert cal.bounds["asymptotic"].kind == "estimated"  # D_T(y|z) assumed, not known
    assert cal.bounds["class_conditional_finite_sample"].kind == "certified"
    assert cal.to_dict()["certified"] is True
    cos = assemble(fs, posterior="true", cost="cosine", rate_repeats=2)
    assert cos.to_dict()["certified"] is False
    assert all(b.kind != "certified" for k, b in cos.bounds.items() if k != "held_out_student")
    assert any("NOT CERTIFIED" in a for a in cos.assumptions)


def test_zero_shift_same_sample_gives_equality():
    w = SyntheticWorld(num_classes=3, seed=4)
    rng = np.random.default_rng(0)
    z, y = w.sample_latent("teacher", 300, rng)
    W, b = w.bayes_head("teacher")
    rep = assemble(FeatureSet(z, y, z, y, W, b, W, b), posterior="true", rate_repeats=2)
    assert rep.term("w1").value == 0
    assert rep.bounds["asymptotic"].value == pytest.approx(rep.observed["risk"], abs=1e-9)
    assert rep.term("label_alignment").value == pytest.approx(0.0, abs=0.05)  # heads agree: LA = R_S - E f ~ 0


def test_feature_alignment_grows_linearly_with_translation():
    w = SyntheticWorld(num_classes=3, seed=5)
    rng = np.random.default_rng(1)
    z, y = w.sample_latent("teacher", 200, rng)
    W, b = w.bayes_head("teacher")
    e = np.array([1.0, 0.0])
    fa = [assemble(FeatureSet(z, y, z + s * e, y, W, b, W, b), posterior="true", rate_repeats=2)
          .term("feature_alignment").value for s in (1.0, 2.0, 4.0)]
    assert fa[1] == pytest.approx(2 * fa[0], rel=1e-6) and fa[2] == pytest.approx(4 * fa[0], rel=1e-6)


def test_bad_inputs_are_named():
    w = SyntheticWorld(num_classes=3, seed=6)
    fs = world_features(w)
    base = dict(fs.__dict__)
    with pytest.raises(ValueError, match="differ in size"):
        FeatureSet(**{**base, "student_z": np.zeros((5, 7)), "student_y": np.zeros(5, int),
                      "student_W": np.zeros((3, 7))})
    with pytest.raises(ValueError, match="outside 0..2"):
        FeatureSet(**{**base, "student_y": np.full(len(fs.student_y), 3)})
    with pytest.raises(ValueError, match="disagree on the number of classes"):
        FeatureSet(**{**base, "student_W": np.zeros((4, 2)), "student_b": np.zeros(4)})
    with pytest.raises(ValueError, match="NaN or Inf"):
        FeatureSet(**{**base, "teacher_z": np.full_like(fs.teacher_z, np.inf)})
    with pytest.raises(ValueError, match="clip must be >= ln 2"):
        assemble(fs, clip=0.5)
    assert math.isfinite(assemble(fs, rate_repeats=2).bounds["certified"].value)
