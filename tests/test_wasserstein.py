"""W1 estimators against POT and closed forms; the certified bracket always contains the exact value."""

import math

import numpy as np
import ot
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

import cmkd_bounds.wasserstein as W
from cmkd_bounds.costs import COSTS, get_cost
from cmkd_bounds.wasserstein import W1Result, w1_1d, w1_bracket, w1_exact, w1_sliced, wasserstein1
from tests.strategies import clouds, weights


def exact_matrix(x, y, cost):
    """The cost matrix from coordinate differences in extended precision (no Gram form anywhere)."""
    x, y = np.asarray(x, np.longdouble), np.asarray(y, np.longdouble)
    if cost in ("chordal", "cosine"):
        x = x / np.maximum(np.sqrt((x * x).sum(1, keepdims=True)), 1e-12)
        y = y / np.maximum(np.sqrt((y * y).sum(1, keepdims=True)), 1e-12)
    diff = x[:, None, :] - y[None, :, :]
    if cost == "l1":
        return np.abs(diff).sum(-1)
    if cost == "cosine":
        return np.maximum(1 - (x[:, None, :] * y[None, :, :]).sum(-1), 0)
    return np.sqrt((diff * diff).sum(-1))


def emd(x, y, a=None, b=None, cost="l2"):
    """The reference: POT's network simplex on the exactly computed cost matrix."""
    a = np.full(len(x), 1 / len(x)) if a is None else a
    b = np.full(len(y), 1 / len(y)) if b is None else b
    C = exact_matrix(x, y, cost).astype(np.float64)
    unit = 2.0 ** np.floor(np.log2(C.max())) if C.max() > 0 else 1.0  # POT's tolerances are absolute: unit scale
    return ot.emd2(a, b, C / unit, numItermax=10**7) * unit


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


# ----------------------------------------------------------------------------- the certified bracket
@given(
    clouds(max_n=18),
    st.data(),
    st.sampled_from(["l2", "l1", "chordal"]),
    st.sampled_from([0.3, 1e-2, 1e-3]),
    st.sampled_from([torch.float32, torch.float64]),
    st.booleans(),
    st.sampled_from([2, 30, None]),
)
def test_bracket_always_contains_the_exact_value(xy, data, cost, width, dtype, blockwise, max_iter):
    """Any data, weights, cost, width, dtype, path and iteration budget: lower <= exact <= upper."""
    x, y = xy
    a = data.draw(weights(len(x)))
    b = data.draw(weights(len(y)))
    offset = data.draw(st.sampled_from([0.0, 1e4]))  # a common offset makes the Gram form cancel
    x, y = x + offset, y + offset
    exact = emd(x, y, a, b, cost)
    budget = {} if max_iter is None else {"max_iter": max_iter}
    br = w1_bracket(x, y, a, b, cost, width=width, iter_dtype=dtype,
                    max_dense_bytes=0 if blockwise else W.DEFAULT_MAX_DENSE_BYTES, **budget)
    assert br.lower <= exact <= br.upper
    assert br.value == br.upper and br.kind == "sample" and br.diagnostics["blockwise"] == blockwise


@pytest.mark.parametrize("scale", [1e-166, 1e-300, 1e160])
@pytest.mark.parametrize("cost", ["l2", "l1"])
def test_tiny_and_huge_coordinates_keep_the_bracket_and_the_exact_value(scale, cost):
    """Hypothesis found x = (0, 0), y = (2.6e-166, 2.6e-166): squares underflowed, every cost read 0 and the
    bracket [0, 0] missed W1 = 3.7e-166; coordinates of 1e160 overflow the same way, and POT's network simplex,
    whose tolerances are absolute, stops at a plan that is not optimal on costs of 1e-166. W1 of a norm is
    homogeneous, so both routes now run at unit scale (a power of two, exactly) and scale back."""
    x, y = np.array([[0.0, 0.0]]), np.array([[2.5866727e-166, 2.5866727e-166]])
    br = w1_bracket(x, y, cost="l2", width=0.3, iter_dtype=torch.float32, max_iter=2)
    assert br.lower <= emd(x, y) <= br.upper and br.upper > 0
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)) * scale, (rng.normal(size=(5, 3)) + 1) * scale
    ref = emd(x, y, cost=cost)
    assert ref == pytest.approx(emd(x / scale, y / scale, cost=cost) * scale, rel=1e-12)
    assert W.w1_exact(x, y, cost=cost).value == pytest.approx(ref, rel=1e-12)
    br = w1_bracket(x, y, cost=cost, width=1e-2)
    assert br.lower <= ref <= br.upper and (br.upper - br.lower) <= 1e-2 * br.lower * (1 + 1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blockwise_holds_where_the_gram_form_cancels(dtype):
    """A common offset of 1e4 and unit spread, the blockwise path forced at a small size: the
    certified ends contain the exact value and still reach the requested width."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)) + 1e4
    y = rng.normal(size=(50, 8)) + 1e4 + 0.3
    exact = emd(x, y)
    br = w1_bracket(x, y, width=1e-2, max_dense_bytes=0, iter_dtype=dtype)
    assert br.diagnostics["blockwise"]
    assert br.lower <= exact <= br.upper
    assert br.relative_width <= 1e-2


def test_bracket_holds_when_centring_cannot_remove_the_cancellation():
    """Two clusters at +-1e4 along an axis: near pairs have norms 1e4 even after centring, so float32
    Gram costs err by about sqrt(6e-8) * 2e4 ~ 5, far more than the distances; the iterations are poor
    but the certificate (float64, with its error bound) still contains the exact value."""
    rng = np.random.default_rng(1)
    sign = np.where(np.arange(40) % 2 == 0, 1.0, -1.0)[:, None]
    x = rng.normal(size=(40, 3)) + sign * np.array([1e4, 0, 0])
    y = x + 0.3 * rng.normal(size=(40, 3))
    exact = emd(x, y)
    for kw in ({"max_dense_bytes": 0, "iter_dtype": torch.float32}, {"iter_dtype": torch.float64}):
        br = w1_bracket(x, y, width=1e-2, **kw)
        assert br.lower <= exact <= br.upper


@pytest.mark.parametrize("cost", ["l2", "l1", "chordal", "cosine"])
def test_cost_blocks_obey_their_proved_error_bound(cost):
    """|C^_ij - C_ij| <= kappa (nu_i + mu_j) for every entry, on data where the Gram form cancels
    (norms 1e7 after centring, distances of order 1): the bound is needed (the l2 Gram error is
    far above double rounding) and it holds."""
    rng = np.random.default_rng(2)
    sign = np.where(np.arange(30) % 2 == 0, 1.0, -1.0)[:, None]
    x = rng.normal(size=(30, 5)) + sign * 1e7 * np.array([1.0, 0.5, 0, 0, 0])
    y = x + rng.normal(size=(30, 5))
    xt, yt, _, _, c = W._prepare(x, y, None, None, cost)
    ground = W._Ground(xt, yt, c)
    u = ground.unit  # blocks, nu and mu are in units of this power of two
    C_hat = torch.cat([blk for _, blk in ground.blocks(torch.float64, 4096)]).numpy() * u
    err = np.abs(C_hat.astype(np.longdouble) - exact_matrix(x, y, cost))
    bound = ground.kappa * (ground.nu.numpy()[:, None] + ground.mu.numpy()[None, :]) * u
    assert (err <= bound).all()
    if cost == "l2":
        assert err.max() > 1e3 * np.finfo(np.float64).eps * exact_matrix(x, y, cost).max()


def test_bracket_reaches_the_requested_width_and_reports_its_schedule():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 5)), rng.normal(size=(250, 5)) + 0.5
    exact = emd(x, y)
    results = {w: w1_bracket(x, y, width=w) for w in (0.2, 0.03, 0.005)}
    for w, br in results.items():
        d = br.diagnostics
        assert br.lower <= exact <= br.upper
        assert br.relative_width <= w and d["width_reached"] == pytest.approx(br.relative_width)
        assert d["width_requested"] == w and d["stopped"] == "width reached"
        assert d["iterations"] > 0 and d["seconds"] > 0 and d["n_certificates"] >= 1
        assert all(e2 <= e1 for e1, e2 in zip(d["eps_schedule"], d["eps_schedule"][1:]))
        assert d["checks"][-1]["certified"] and d["checks"][-1]["width"] <= w
    # a looser request stops earlier, at a larger regularisation
    its = [results[w].diagnostics["iterations"] for w in (0.2, 0.03, 0.005)]
    assert its[0] <= its[1] <= its[2] and its[0] < its[2]
    assert results[0.2].diagnostics["eps"] > results[0.005].diagnostics["eps"]


@given(clouds(min_n=2, max_n=20, min_d=2), st.lists(st.floats(-5, 5), min_size=5, max_size=5))
def test_bracket_of_a_translation_contains_the_norm_of_the_shift(xy, shift):
    x, _ = xy
    s = np.array(shift[: x.shape[1]])
    br = w1_bracket(x, x + s, width=1e-2)
    assert br.lower <= np.linalg.norm(s) * (1 + 1e-12) + 1e-12
    assert np.linalg.norm(s) * (1 - 1e-12) - 1e-12 <= br.upper


def test_blockwise_and_dense_agree_within_their_widths():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(150, 8)), rng.normal(size=(120, 8)) + 0.5
    dense = w1_bracket(x, y, width=1e-2)
    blocks = w1_bracket(x, y, width=1e-2, max_dense_bytes=0, block_bytes=8 * 1024)  # 17 rows a block
    assert blocks.diagnostics["blockwise"] and not dense.diagnostics["blockwise"]
    assert dense.lower <= emd(x, y) <= dense.upper and blocks.lower <= emd(x, y) <= blocks.upper
    assert blocks.relative_width <= 1e-2 and dense.relative_width <= 1e-2


def test_tiny_regularisation_and_budget_still_certify():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    exact = emd(x, y)
    for kw in ({"reg": 1e-7, "max_iter": 30}, {"max_iter": 0}, {"time_limit": 0.0}):
        br = w1_bracket(x, y, width=1e-6, **kw)  # a plain-domain kernel exp(-C/eps) would underflow to 0
        assert np.isfinite(br.upper) and br.lower <= exact <= br.upper
        assert br.diagnostics["stopped"] in ("max_iter", "time_limit", "converged at the smallest regularisation")


def test_float32_tolerance_below_precision_is_raised_and_reported():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    r = w1_bracket(x, y, width=1e-9, reg=0.05, tol=1e-12, iter_dtype=torch.float32, max_iter=5000)
    assert r.diagnostics["tol_raised"] and r.diagnostics["tol"] >= 10 * np.finfo(np.float32).eps
    assert r.diagnostics["iterations"] < 5000 and r.diagnostics["converged"]
    assert r.diagnostics["stopped"] == "converged at the smallest regularisation"
    assert r.lower <= emd(x, y) <= r.upper


def test_relative_width_is_over_the_lower_end():
    r = dict(kind="sample", method="bracket")
    assert W1Result(value=2.2, lower=2.0, upper=2.2, **r).relative_width == pytest.approx(0.1)
    assert W1Result(value=1.0, lower=0.0, upper=1.0, **r).relative_width == math.inf
    assert W1Result(value=3.0, lower=3.0, upper=3.0, **r).relative_width == 0.0


def test_bracket_runs_on_the_device_of_its_tensors():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(80, 4)), rng.normal(size=(70, 4)) + 1
    cpu = w1_bracket(torch.tensor(x, dtype=torch.float32, requires_grad=True), torch.tensor(y), width=1e-2)
    assert cpu.diagnostics["device"] == "cpu" and cpu.lower <= emd(x.astype(np.float32), y) <= cpu.upper
    assert wasserstein1(torch.tensor(x, requires_grad=True), y, method="exact").value == pytest.approx(emd(x, y))
    if torch.cuda.is_available():
        gpu = w1_bracket(torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda"), width=1e-2)
        assert gpu.diagnostics["device"].startswith("cuda")
        exact = emd(x, y)
        assert gpu.lower <= exact <= gpu.upper and gpu.relative_width <= 1e-2


def test_small_problems_run_on_one_thread_and_restore_the_setting():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []
        with W._one_thread_if_small(len(x) * len(y), "cpu"):
            seen.append(torch.get_num_threads())
        with W._one_thread_if_small(W.SMALL_PAIRS, "cpu"):
            seen.append(torch.get_num_threads())
        assert seen == [1, 2]
        w1_bracket(x, y)
        w1_exact(x, y)
        with pytest.raises(ValueError, match="different dimensions"):
            w1_bracket(x, y[:, :2])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bracket_under_a_non_metric_cost_is_an_estimate():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 1
    br = w1_bracket(x, y, cost="cosine", width=1e-2)
    assert br.kind == "estimated" and br.lower <= emd(x, y, cost="cosine") <= br.upper


def test_identical_points_give_exactly_zero():
    z = np.ones((5, 3))
    assert w1_exact(z, z).value == 0 and w1_bracket(z, z).upper == 0 and w1_bracket(z, z).lower == 0


# ----------------------------------------------------------------------------- dispatcher
def test_auto_picks_by_the_measured_crossover_and_says_why():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) + 1
    small = wasserstein1(x, y)
    assert small.method == "exact" and small.diagnostics["choice"].startswith("exact: n * m = 3e+03 is below")
    # a dense problem that does not fit: the bracket, blockwise
    big = wasserstein1(x, y, max_dense_bytes=1000)
    assert big.method == "bracket" and big.diagnostics["blockwise"]
    assert big.diagnostics["choice"].startswith("bracket: the exact solver would need")
    assert big.lower <= emd(x, y) <= big.upper
    # the table: wider requests cross over no later, a width below it means exact
    table = sorted(W.AUTO_CROSSOVER)
    assert all(p_lo >= p_hi for (_, p_lo), (_, p_hi) in zip(table, table[1:]))
    assert W._crossover(table[-1][0] * 10) == table[-1][1]
    assert W._crossover(table[0][0] / 2) is None
    mid = math.sqrt(table[0][0] * table[1][0])
    assert table[1][1] <= W._crossover(mid) <= table[0][1]
    assert W._auto_choice(10, 10, table[0][0] / 2, 2**30)[0] == "exact"
    assert W._auto_choice(10**5, 10**5, 0.05, 2**40)[0] == "bracket"


def test_auto_falls_back_to_exact_where_the_bracket_is_slow():
    """Two samples of one law in 3-d: W1 (about 0.1) is far below the largest cost (about 1.7), so
    Sinkhorn needs a tiny eps; the bracket runs out of its budget and the exact value is returned."""
    rng = np.random.default_rng(10)
    n = int(math.sqrt(W._crossover(1e-2))) + 100  # above the crossover: auto tries the bracket first
    x, y = rng.uniform(size=(n, 3)), rng.uniform(size=(n, 3))
    r = wasserstein1(x, y, width=1e-2, max_iter=40)  # stopped short of the width (as by its time budget)
    assert r.method == "exact" and "so the exact solver ran" in r.diagnostics["choice"]
    assert r.value == pytest.approx(emd(x, y), rel=1e-9)


def test_dispatcher_and_errors():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 1))
    assert wasserstein1(x, x + 1).method == "exact-1d"
    assert wasserstein1(x, x + 1).value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown W1 method"):
        wasserstein1(x, x, method="simplex")
    with pytest.raises(ValueError, match="width must be positive"):
        w1_bracket(x, x, width=0)
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


# ----------------------------------------------------------------------------- 1-D, sliced, costs
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


def test_costs_know_if_they_are_metrics():
    assert {k for k, c in COSTS.items() if c.is_metric} == {"l2", "l1", "chordal"}
    cos = get_cost("cosine")
    a, b, c = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([[0.0, 1.0]])
    assert float(cos(a, c)) > float(cos(a, b)) + float(cos(b, c))  # the triangle inequality fails


@given(arrays(np.float64, (6, 3), elements=st.floats(-3, 3)))
def test_ground_matches_the_cost_module(x):
    """The bracket's own cost blocks agree with cmkd_bounds.costs (the same definitions)."""
    y = x[::-1] + 0.5
    for name in COSTS:
        xt, yt, _, _, c = W._prepare(x, y, None, None, name)
        g = W._Ground(xt, yt, c)
        C_hat = torch.cat([blk for _, blk in g.blocks(torch.float64, 1 << 20)]) * g.unit
        assert torch.allclose(C_hat, get_cost(name).pairwise(x, y), atol=1e-6)


@pytest.mark.parametrize("which", ["l2_trunc", "osc", "osc_trunc", "linf", "linf_trunc"])
def test_bracket_handles_the_transport_costs_of_the_bounds(which):
    """The bounds transport with truncated costs and sup-type metrics (margins, logit oscillation): the bracket
    certifies them too, dense and blockwise, on offset data where rounding matters."""
    from cmkd_bounds.costs import LINF, OSCILLATION, truncated

    base = {"l2": "l2", "osc": OSCILLATION, "linf": LINF}[which.split("_")[0]]
    cost = truncated(base, 2.0) if which.endswith("trunc") else get_cost(base)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(120, 6)) * 2 + 1e3, rng.normal(size=(90, 6)) * 2 + 1e3 + 0.3
    exact = w1_exact(x, y, cost=cost).value
    for max_dense in (2**30, 0):
        br = w1_bracket(x, y, cost=cost, width=1e-2, max_dense_bytes=max_dense)
        assert br.lower <= exact <= br.upper and br.kind == "sample"
