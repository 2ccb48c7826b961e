"""W1 estimators against POT and closed forms; the certified bracket always contains the truth."""

import numpy as np
import ot
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from cmkd_bounds.costs import COSTS, get_cost
from cmkd_bounds.wasserstein import w1_1d, w1_bracket, w1_exact, w1_sliced, wasserstein1
from tests.strategies import clouds, weights


@given(clouds(max_n=25), st.data())
def test_exact_equals_pot_emd2(xy, data):
    x, y = xy
    a = data.draw(weights(len(x)))
    b = data.draw(weights(len(y)))
    ours = w1_exact(x, y, a, b).value
    # POT's own ot.dist(metric="euclidean") uses the Gram form, whose cancellation errs by ~1e-7 for
    # coincident points; compare on the exactly computed distance matrix
    ref = ot.emd2(a, b, cdist(x, y))
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-9)


@given(clouds(max_n=20), st.sampled_from([0.5, 0.05, 0.005]))
def test_bracket_contains_exact(xy, reg):
    x, y = xy
    exact = w1_exact(x, y).value
    br = w1_bracket(x, y, reg=reg, max_iter=300)
    tol = 1e-9 * (1 + exact)
    assert br.lower - tol <= exact <= br.upper + tol
    assert br.value == br.upper and br.kind == "certified"


def test_bracket_narrows_as_regularisation_falls():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 4)), rng.normal(size=(70, 4)) + 1
    widths = [w1_bracket(x, y, reg=r, max_iter=2000).relative_width for r in (0.3, 0.1, 0.03, 0.01)]
    assert all(w2 < w1 for w1, w2 in zip(widths, widths[1:]))
    assert widths[-1] < 0.05


def test_bracket_blockwise_matches_dense_and_holds_at_tiny_reg():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(120, 3)), rng.normal(size=(90, 3))
    dense = w1_bracket(x, y, reg=0.01)
    blocks = w1_bracket(x, y, reg=0.01, max_dense_bytes=0)
    assert blocks.diagnostics["blockwise"] and not dense.diagnostics["blockwise"]
    # the blockwise path computes Euclidean costs by the Gram form (BLAS speed, ~1e-8 relative error)
    assert blocks.upper == pytest.approx(dense.upper, rel=1e-6)
    assert blocks.lower == pytest.approx(dense.lower, rel=1e-6)
    exact = w1_exact(x, y).value
    tiny = w1_bracket(x, y, reg=1e-6, max_iter=50)  # a plain-domain kernel exp(-C/eps) would underflow to 0
    assert np.isfinite(tiny.upper) and tiny.lower <= exact + 1e-9 <= tiny.upper + 2e-9
    assert tiny.diagnostics["converged"] in (True, False) and tiny.diagnostics["iterations"] > 0


def test_float32_tolerance_below_precision_is_raised_and_reported():
    import torch

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    r = w1_bracket(x, y, reg=0.05, tol=1e-12, iter_dtype=torch.float32, max_iter=5000)
    assert r.diagnostics["tol_raised"] and r.diagnostics["tol"] >= 10 * np.finfo(np.float32).eps
    assert r.diagnostics["iterations"] < 5000 and r.diagnostics["converged"]
    exact = w1_exact(x, y).value
    assert r.lower <= exact + 1e-9 <= r.upper + 1e-9


@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 10**6))
def test_1d_closed_form_equals_exact(n, m, seed):
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=n), rng.normal(size=m) * 2
    assert w1_1d(u, v) == pytest.approx(w1_exact(u[:, None], v[:, None]).value, rel=1e-9, abs=1e-12)
    if n == m:  # equal sizes: mean distance between sorted samples
        assert w1_1d(u, v) == pytest.approx(np.abs(np.sort(u) - np.sort(v)).mean(), rel=1e-9, abs=1e-12)


@given(clouds(min_n=2, max_n=20), st.lists(st.floats(-5, 5), min_size=5, max_size=5))
def test_translation_gives_norm_of_shift(xy, shift):
    x, _ = xy
    a = np.array(shift[: x.shape[1]])
    assert w1_exact(x, x + a).value == pytest.approx(np.linalg.norm(a), rel=1e-7, abs=1e-7)


@given(clouds(max_n=15))
def test_sliced_is_below_exact(xy):
    x, y = xy
    s = w1_sliced(x, y, n_projections=50)
    assert s.kind == "lower" and s.value <= w1_exact(x, y).value + 1e-9


def test_dispatcher_and_errors():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 1))
    assert wasserstein1(x, x + 1).method == "exact-1d"
    assert wasserstein1(x, x + 1).value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        w1_exact(np.zeros((0, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        w1_exact(np.array([[np.nan, 0.0]]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="different dimensions"):
        w1_exact(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        w1_exact(np.zeros((2, 2)), np.zeros((3, 2)), a=[-1, 2])
    with pytest.raises(ValueError, match="unknown cost"):
        get_cost("l3")
    # identical points: zero, exactly, on both paths
    z = np.ones((5, 3))
    assert w1_exact(z, z).value == 0 and w1_bracket(z, z).upper == 0


def test_costs_know_if_they_are_metrics():
    assert {k for k, c in COSTS.items() if c.is_metric} == {"l2", "l1", "chordal"}
    cos = get_cost("cosine")
    a, b, c = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([[0.0, 1.0]])
    assert float(cos(a, c)) > float(cos(a, b)) + float(cos(b, c))  # the triangle inequality fails
