"""Concentration inequalities against closed forms and their defining properties."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import beta

from cmkd_bounds import concentration as cc


def test_hoeffding_and_mcdiarmid_closed_forms():
    assert cc.hoeffding(450, 0.05, 5.0) == pytest.approx(5 * math.sqrt(math.log(20) / 900))
    assert cc.mcdiarmid(2.0, 50, 0.1) == pytest.approx(2 * math.sqrt(math.log(10) / 100))
    assert cc.split(0.05, 4) == 0.0125
    with pytest.raises(ValueError, match="eta"):
        cc.hoeffding(10, 1.5, 1.0)


def test_review_values_of_the_held_out_certificates():
    """The quickstart numbers of the review (n = 450, eta = 0.05, clipped risk 0.067 at c = 5): Hoeffding 0.356,
    kl 0.156; and Clopper-Pearson on 3 errors of 450: 0.0171."""
    assert 0.067 + cc.hoeffding(450, 0.05, 5.0) == pytest.approx(0.356, abs=1e-3)
    assert cc.kl_upper(0.067, 450, 0.05, 5.0) == pytest.approx(0.156, abs=2e-3)
    assert cc.clopper_pearson(3, 450, 0.05) == pytest.approx(0.0171, abs=1e-4)


@given(st.floats(0, 1), st.integers(1, 5000), st.floats(0.001, 0.5), st.floats(0.1, 10))
def test_kl_upper_solves_its_equation_and_never_exceeds_hoeffding(q, n, eta, B):
    p = cc.kl_upper(q * B, n, eta, B)
    assert q * B <= p <= B * (1 + 1e-12)
    assert p <= q * B + cc.hoeffding(n, eta, B) + 1e-9
    if p < B * (1 - 1e-9):  # on the boundary of its constraint set
        assert cc._kl_bernoulli(q, p / B) == pytest.approx(math.log(1 / eta) / n, rel=1e-6, abs=1e-12)


@given(st.integers(0, 59), st.integers(60, 200), st.floats(0.01, 0.3))
def test_clopper_pearson_is_the_beta_quantile(k, n, eta):
    assert cc.clopper_pearson(k, n, eta) == pytest.approx(beta.ppf(1 - eta, k + 1, n - k))


def test_coverage_of_the_certificates_by_simulation():
    """Each certificate covers the true mean in >= 1 - eta of 2000 simulated samples (Bernoulli 0.05, n = 200)."""
    rng = np.random.default_rng(0)
    eta, n, p = 0.05, 200, 0.05
    x = rng.binomial(1, p, size=(2000, n)).astype(float)
    kl = np.array([cc.kl_upper(v.mean(), n, eta) for v in x])
    eb = np.array([cc.empirical_bernstein(v, eta, 1.0) for v in x])
    cp = np.array([cc.clopper_pearson(int(v.sum()), n, eta) for v in x])
    for ub in (kl, eb, cp):
        assert (ub >= p).mean() >= 1 - eta


def test_class_marginal_deviation():
    rng = np.random.default_rng(1)
    pi = np.array([0.5, 0.3, 0.2])
    n, eta = 300, 0.05
    dev = [np.abs(np.bincount(rng.choice(3, n, p=pi), minlength=3) / n - pi).sum() for _ in range(500)]
    assert np.mean(np.array(dev) <= cc.class_marginal_l1(n, 3, eta)) >= 1 - eta


# ----------------------------------------------------------------------------- betting (issue 18 #5)
def _iid(law, n):
    return lambda rng: (law(rng, n), None)


def _two_classes(law_a, n_a, law_b, n_b):
    return lambda rng: (np.r_[law_a(rng, n_a), law_b(rng, n_b)], np.r_[np.zeros(n_a, int), np.ones(n_b, int)])


BERNOULLI = lambda p: lambda rng, n: (rng.random(n) < p).astype(float)  # noqa: E731
WORLDS = [  # (name, draw, mean covered): laws chosen to hurt, i.i.d. and class by class
    ("two-point 0.5, n = 10", _iid(BERNOULLI(0.5), 10), 0.5),
    ("two-point 0.05, n = 60", _iid(BERNOULLI(0.05), 60), 0.05),
    ("two-point 0.9, n = 30", _iid(BERNOULLI(0.9), 30), 0.9),
    ("mass near 0, rare 1, n = 100", _iid(lambda rng, n: np.where(rng.random(n) < 0.03, 1.0, 0.01 * rng.random(n)),
                                          100), 0.03 + 0.97 * 0.005),
    ("stratified: constant 0.5 x 5 and {0, 0.2} x 45",
     _two_classes(lambda rng, n: np.full(n, 0.5), 5, lambda rng, n: 0.2 * (rng.random(n) < 0.5), 45),
     (5 * 0.5 + 45 * 0.1) / 50),
    ("stratified: Bernoulli 0.05 x 30 and 0.6 x 3", _two_classes(BERNOULLI(0.05), 30, BERNOULLI(0.6), 3),
     (30 * 0.05 + 3 * 0.6) / 33),
]


@pytest.mark.parametrize("name,draw,mean", WORLDS, ids=[w[0] for w in WORLDS])
def test_betting_covers_laws_chosen_to_hurt(name, draw, mean):
    """The betting bound covers the mean in >= 1 - eta of 400 draws (eta = 0.1), up to three binomial standard
    errors; under the stratified design the mean covered is the class-frequency-weighted one."""
    rng, eta, reps = np.random.default_rng(0), 0.1, 400
    miss = 0
    for r in range(reps):
        x, strata = draw(rng)
        miss += cc.betting_upper(x, eta, 1.0, strata=strata, permutations=3, seed=r) < mean
    assert miss / reps <= eta + 3 * math.sqrt(eta * (1 - eta) / reps)


def test_betting_adapts_to_the_variance_and_costs_little_on_two_point_laws():
    rng = np.random.default_rng(1)
    n, eta = 450, 0.05
    low_var = np.minimum(rng.exponential(0.06, n), 5.0) / 5.0  # losses shaped like a good student's clipped CE
    assert cc.betting_upper(low_var, eta) < 0.9 * cc.kl_upper(low_var.mean(), n, eta)
    coin = (rng.random(n) < 0.1).astype(float)  # a two-point law: the kl form is tight there
    assert cc.betting_upper(coin, eta) < 1.15 * cc.kl_upper(coin.mean(), n, eta)


def test_betting_bounds_and_errors():
    x = np.linspace(0, 2, 50)
    hi, lo = cc.betting_upper(x, 0.01, 2.0), cc.betting_upper(x, 0.2, 2.0)
    assert x.mean() <= lo <= hi <= 2.0
    assert cc.betting_upper(np.full(20, 3.0), 0.05, 3.0) == 3.0  # nothing below the top to bet on
    with pytest.raises(ValueError, match=r"values must lie in \[0, 1.0\]"):
        cc.betting_upper(np.array([0.5, 1.5]), 0.05)
    with pytest.raises(ValueError, match="strata"):
        cc.betting_upper(np.zeros(5), 0.05, strata=np.zeros(4))
