"""Empirical rates, intrinsic dimension and deviation terms."""

import math

import numpy as np
import pytest

from cmkd_bounds.concentration import mcdiarmid
from cmkd_bounds.costs import get_cost
from cmkd_bounds.rates import deviation_dyadic, expected_w1_dyadic, rate_curve, twonn_dimension
from cmkd_bounds.wasserstein import w1_1d


def test_rate_fit_recovers_minus_half_in_one_dimension():
    x = np.random.default_rng(0).uniform(size=(4000, 1))
    rc = rate_curve(x, sizes=[25, 50, 100, 200, 400, 800, 1600], repeats=20, seed=1)
    assert rc.slope == pytest.approx(-0.5, abs=0.08)
    assert rc.slope_ci[0] <= rc.slope <= rc.slope_ci[1]
    assert np.all(rc.band[0] <= rc.band[1])


@pytest.mark.parametrize("d", [3, *(pytest.param(d, marks=pytest.mark.slow) for d in (4, 5, 6))])
def test_rate_fit_on_uniform_cube_is_near_minus_one_over_d(d):
    x = np.random.default_rng(d).uniform(size=(3000, d))
    rc = rate_curve(x, sizes=[40, 80, 160, 320, 640, 1280], repeats=4, seed=0)
    # finite-n curves are slightly steeper than -1/d (the constant term matters); tolerance 0.06
    assert rc.slope == pytest.approx(-1 / d, abs=0.06)


def test_twonn_on_embedded_cube():
    rng = np.random.default_rng(0)
    x = np.c_[rng.uniform(size=(3000, 3)), np.zeros((3000, 10))] @ np.linalg.qr(rng.normal(size=(13, 13)))[0]
    assert twonn_dimension(x) == pytest.approx(3.0, abs=0.5)


def test_dyadic_bound_dominates_the_truth_in_one_dimension():
    # uniform on [0, 1]: E W1(P, P_n) is about sqrt(1 / (6 n))... check it is below our bound
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, 20001)
    for n in (10, 100, 1000):
        mean_w1 = np.mean([w1_1d(rng.uniform(size=n), grid) for _ in range(50)])
        assert mean_w1 <= expected_w1_dyadic(n, 1, 1.0)


def test_dyadic_bound_orders():
    r1 = expected_w1_dyadic(10**6, 1, 1.0) / expected_w1_dyadic(10**4, 1, 1.0)
    assert r1 == pytest.approx(0.1, rel=0.35)  # n^(-1/2)
    r4 = expected_w1_dyadic(10**8, 4, 1.0) / expected_w1_dyadic(10**4, 4, 1.0)
    assert r4 == pytest.approx(0.1, rel=0.5)  # n^(-1/4)
    assert expected_w1_dyadic(1000, 64, 1.0) == 8.0  # vacuous: the cube's diameter, sqrt(64)


def test_cell_diameters_follow_the_cost():
    """Issue 11 #5: chordal cells of normalised vectors have diameter min(2, 2 sqrt(d) 2^-j)."""
    assert get_cost("chordal").cell_diameter(2.0, 16, 0) == 2.0
    assert get_cost("chordal").cell_diameter(2.0, 16, 3) == pytest.approx(min(2.0, 2 * 4 * 2**-3))
    assert get_cost("chordal").cell_diameter(2.0, 16, 5) == pytest.approx(2 * 4 * 2**-5)
    assert get_cost("l2").cell_diameter(1.0, 9, 1) == pytest.approx(3 * 0.5)
    assert get_cost("l1").cell_diameter(1.0, 9, 1) == pytest.approx(9 * 0.5)


def test_deviation_terms_shrink_with_n_and_mcdiarmid_formula():
    assert mcdiarmid(2.0, 50, 0.1) == pytest.approx(2 * math.sqrt(math.log(10) / 100))
    rng = np.random.default_rng(0)
    small = deviation_dyadic(rng.uniform(size=(100, 2)), 0.05)
    big = deviation_dyadic(rng.uniform(size=(10000, 2)), 0.05)
    assert big.value < small.value and small.kind == "estimated"
    with pytest.raises(ValueError, match="eta"):
        mcdiarmid(1.0, 10, 1.5)


def test_dyadic_deviation_rests_on_a_false_support_assumption():
    """Issue 11 #2: with a rare far mode the population leaves the sample's bounding box, and the dyadic term
    falls below the true W1(P^_n, P) in a sizeable fraction of draws: it is an estimate, never a certificate."""
    from cmkd_bounds.wasserstein import w1_1d

    rng = np.random.default_rng(0)
    pop = np.r_[rng.normal(size=95_000), rng.normal(size=5_000) + 100.0]  # 5 % of the mass far away
    fails = 0
    for _ in range(40):
        x = rng.choice(pop, 20)[:, None]
        t = deviation_dyadic(x, 0.05)
        fails += w1_1d(x[:, 0], pop[::10]) > t.value
        assert t.kind == "estimated" and "bounding box" in t.note
    assert fails >= 4


@pytest.mark.slow
def test_rate_curve_values_do_not_depend_on_the_number_of_processes():
    x = np.random.default_rng(0).normal(size=(300, 3))
    a = rate_curve(x, sizes=[20, 40, 80], repeats=3, seed=2)
    b = rate_curve(x, sizes=[20, 40, 80], repeats=3, seed=2, n_jobs=2)
    assert np.array_equal(a.values, b.values) and a.slope == b.slope
