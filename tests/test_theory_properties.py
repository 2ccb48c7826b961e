"""Property-based tests of the theory (Hypothesis): closed forms, metric axioms, Kantorovich-Rubinstein,
kinds, and how the bounds behave as worlds and samples change."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cmkd_bounds.complexity import vc_dimension_upper
from cmkd_bounds.costs import get_cost
from cmkd_bounds.features import FeatureSet
from cmkd_bounds.theorem import assemble
from cmkd_bounds.wasserstein import w1_exact
from tests.strategies import clouds, finite
from training.alignment import feature_alignment
from training.synthetic import SyntheticWorld

METRICS = st.sampled_from(["l2", "l1", "chordal"])
nonzero = st.floats(-10, 10).filter(lambda v: abs(v) > 0.1)


@given(clouds(max_n=12, max_d=4), METRICS)
def test_w1_nonnegative_zero_on_identical_and_symmetric(xy, cost):
    x, y = xy
    if cost == "chordal":
        x, y = x + 20.0, y + 20.0  # keep clear of the origin, where directions are undefined
    assert w1_exact(x, x, cost=cost).value == pytest.approx(0.0, abs=1e-9)
    a, b = w1_exact(x, y, cost=cost).value, w1_exact(y, x, cost=cost).value
    assert a >= -1e-12 and a == pytest.approx(b, rel=1e-9, abs=1e-9)


@given(st.integers(1, 4), st.integers(1, 10), st.integers(1, 10), st.integers(1, 10), METRICS, st.integers(0, 10**6))
def test_w1_triangle_inequality_for_metric_costs(d, n1, n2, n3, cost, seed):
    rng = np.random.default_rng(seed)
    x, y, z = (rng.normal(size=(n, d)) * 3 + (5 if cost == "chordal" else 0) for n in (n1, n2, n3))
    assert w1_exact(x, z, cost=cost).value <= w1_exact(x, y, cost=cost).value + w1_exact(y, z, cost=cost).value + 1e-9


def test_cosine_counterexample_exists_and_bounds_under_it_are_not_certified():
    from hypothesis import find

    cos = get_cost("cosine")

    def breaks(angles):
        pts = np.array([[np.cos(a), np.sin(a)] for a in angles])
        return float(cos(pts[:1], pts[2:])) > float(cos(pts[:1], pts[1:2])) + float(cos(pts[1:2], pts[2:])) + 1e-6

    ex = find(st.lists(st.floats(0, 3.14), min_size=3, max_size=3), breaks)
    assert breaks(ex)
    w = SyntheticWorld(num_classes=3, seed=0)
    rng = np.random.default_rng(0)
    zT, yT = w.sample_latent("teacher", 60, rng)
    zS, yS = w.sample_latent("student", 60, rng)
    W, b = w.bayes_head("teacher")
    rep = assemble(FeatureSet(zT, yT, zS, yS, W, b, W, b), cost="cosine", posterior="true", rate_repeats=2)
    assert rep.bounds["asymptotic_feature"].kind == "estimated"
    assert not rep.bounds["certified_marginal"].diagnostics["transport"].startswith("feature")


@given(arrays(np.float64, (1, 3), elements=finite), arrays(np.float64, (1, 3), elements=finite), METRICS)
def test_w1_between_diracs_is_the_cost(a, b, cost):
    if cost == "chordal" and min(np.linalg.norm(a), np.linalg.norm(b)) < 1e-3:
        return
    assert w1_exact(a, b, cost=cost).value == pytest.approx(float(get_cost(cost)(a, b)[0]), rel=1e-9, abs=1e-9)


@given(clouds(max_n=12, max_d=3), nonzero)
def test_w1_scales_with_the_cloud(xy, c):
    x, y = xy
    assert w1_exact(c * x, c * y).value == pytest.approx(abs(c) * w1_exact(x, y).value, rel=1e-7, abs=1e-7)


@given(st.integers(3, 15), st.integers(1, 3), st.integers(0, 10**6))
def test_shuffling_changes_w1_not_at_all_but_changes_a_paired_loss(n, d, seed):
    rng = np.random.default_rng(seed)
    x = np.c_[rng.permutation(n) * 2.0, rng.normal(size=(n, d - 1))]  # points at least 2 apart
    y = x + rng.normal(size=x.shape) * 0.01
    perm = rng.permutation(n)
    assert w1_exact(x, y[perm]).value == pytest.approx(w1_exact(x, y).value, rel=1e-9, abs=1e-9)
    fa = feature_alignment(torch.tensor(x), torch.tensor(y[perm]))
    assert float(fa) == pytest.approx(float(feature_alignment(torch.tensor(x), torch.tensor(y))), rel=1e-4, abs=1e-6)
    paired = lambda a, b: float(np.linalg.norm(a - b, axis=1).mean())  # noqa: E731
    if (perm != np.arange(n)).any():  # a paired feature-matching loss sees the shuffle
        assert paired(x, y[perm]) > paired(x, y) + 1.0 / n


@given(clouds(min_n=2, max_n=12, max_d=3), st.floats(0.1, 5), st.integers(0, 10**6))
def test_kantorovich_rubinstein_for_random_lipschitz_functions(xy, L, seed):
    """g(z) = L * min_k (|z - c_k| + r_k) is L-Lipschitz for l2; |E_P g - E_Q g| <= L W1(P, Q)."""
    x, y = xy
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(5, x.shape[1])) * 5
    r = rng.uniform(0, 3, size=5)
    g = lambda z: L * np.min(np.linalg.norm(z[:, None] - c[None], axis=2) + r, axis=1)  # noqa: E731
    assert abs(g(x).mean() - g(y).mean()) <= L * w1_exact(x, y).value + 1e-9


@pytest.mark.slow
def test_finite_sample_terms_shrink_as_n_grows():
    w = SyntheticWorld(num_classes=3, latent_dim=2, feature_shift=0.5, seed=1)
    extras = []
    for n in (100, 400, 1600):
        rep = assemble(w.feature_set(n, n, np.random.default_rng(n)), posterior="true", rate_repeats=2)
        extras.append(rep.bounds["held_out_kl"].value - rep.observed.risk_clipped)
        assert rep.bounds["finite_sample_paper"].value >= rep.bounds["asymptotic_feature"].value - 1e-9 or \
            rep.observed.risk > rep.observed.risk_clipped
    assert extras[0] > extras[1] > extras[2]


@given(st.integers(10, 10**6), st.lists(st.integers(1, 1000), min_size=1, max_size=20))
def test_vc_term_grows_with_parameters_and_depth(W, units):
    assert vc_dimension_upper(2 * W, units) > vc_dimension_upper(W, units)
    assert vc_dimension_upper(W, [*units, 5]) > vc_dimension_upper(W, units)


def test_vc_formula_has_its_inner_log():
    """Issue 11 #5: Bartlett et al. (2019), Theorem 7: L + L W log2(4 e p R log2(2 e p R)), R = sum_i i k_i."""
    import math

    W, units = 1000, [10, 20, 3]
    R = 1 * 10 + 2 * 20 + 3 * 3
    expected = 3 + 3 * W * math.log2(4 * math.e * R * math.log2(2 * math.e * R))
    assert vc_dimension_upper(W, units) == pytest.approx(expected)
