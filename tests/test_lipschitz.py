"""Lipschitz constants: proved >= sharp ~ ascent, upper >= every slope found, and the forms' constants."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cmkd_bounds.lipschitz import (
    entropy_fn,
    entropy_gradient_ascent,
    entropy_gradient_proved,
    entropy_gradient_sharp,
    tau_class_feature,
    tau_class_margin,
    tau_feature,
    tau_lower,
    tau_upper_mlp,
    varentropy_max,
)
from tests.strategies import linear_heads


@pytest.mark.parametrize("C", [2, 10, 100])
def test_sharp_constant_is_what_ascent_finds_and_the_proved_one_dominates(C):
    for norm in ("l2", "l1"):
        found = entropy_gradient_ascent(C, norm, starts=16, steps=120)
        assert found <= entropy_gradient_proved(C, norm) * (1 + 1e-9)
        assert found <= entropy_gradient_sharp(C, norm) * (1 + 1e-6)
        assert found >= 0.98 * entropy_gradient_sharp(C, norm)


def test_constants_match_the_review_values():
    assert entropy_gradient_sharp(10) == pytest.approx(0.6771, abs=1e-4)
    assert entropy_gradient_sharp(2) == pytest.approx(0.3166, abs=1e-4)
    assert entropy_gradient_sharp(1000) == pytest.approx(1.7628, abs=1e-4)
    assert entropy_gradient_proved(10) == pytest.approx(1.0145, abs=2e-4)
    for C in (2, 3, 10, 100, 1000):  # the closed-form bound sqrt(V_max) <= log(C-1)/2 + 0.66275
        assert math.sqrt(varentropy_max(C)) <= (math.log(C - 1) / 2 + 0.662744) * (1 + 1e-3)
        assert entropy_gradient_proved(C) < 2 * math.log(C)


@given(st.integers(2, 12), st.integers(0, 10**6))
def test_varentropy_bound_dominates_random_distributions(C, seed):
    p = np.random.default_rng(seed).dirichlet(np.full(C, 0.3))
    p = p[p > 0]
    lp = np.log(p)
    assert (p * lp**2).sum() - (p * lp).sum() ** 2 <= varentropy_max(C) * (1 + 1e-9)


@given(linear_heads(), st.floats(0.3, 3.0), st.sampled_from(["l2", "l1"]), st.integers(0, 1000))
def test_upper_dominates_slopes_and_gradients(head, T, cost, seed):
    W, b = head
    rng = np.random.default_rng(seed)
    z = torch.tensor(rng.normal(size=(200, W.shape[1])) * 3)
    f = entropy_fn(W, b, T)
    up = tau_feature(W, T, cost)
    lo = tau_lower(f, z, cost, ascent_steps=5, n_start=32, n_pairs=500, seed=seed)
    assert lo.kind == "lower" and up.kind == "certified"
    assert lo.value <= up.value * (1 + 1e-9) + 1e-12


@given(linear_heads(), st.floats(0.7, 6.0), st.integers(0, 1000))
def test_clipped_class_ce_bounds_dominate_finite_differences(head, c, seed):
    W, b = head
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=(300, W.shape[1])) * 3, rng.normal(size=(300, W.shape[1])) * 3
    y = rng.integers(0, W.shape[0], 300)

    def g(z):
        s = z @ W.T + b
        s = s - s.max(1, keepdims=True)
        return np.minimum(c, np.log(np.exp(s).sum(1)) - s[np.arange(300), y])

    feat = np.abs(g(z1) - g(z2)) / np.linalg.norm(z1 - z2, axis=1)
    assert feat.max() <= tau_class_feature(W, c).value + 1e-9
    m1, m2 = z1 @ W.T, z2 @ W.T
    margins = lambda m: m - m[np.arange(300), y][:, None]  # noqa: E731
    sup = np.abs(margins(m1) - margins(m2)).max(1)
    ok = sup > 1e-12
    assert np.all(np.abs(g(z1) - g(z2))[ok] <= tau_class_margin(c).value * sup[ok] + 1e-9)


def test_entropy_bound_values_and_chordal_is_not_certified():
    W = np.diag([2.0, 1.0, 0.5])
    Wc = W - W.mean(0)
    k = entropy_gradient_proved(3)
    assert tau_feature(W).value == pytest.approx(np.linalg.norm(Wc, 2) * k)
    assert tau_feature(W, temperature=2.0).value == pytest.approx(np.linalg.norm(Wc, 2) * k / 2)
    assert tau_feature(W, cost="chordal").kind == "estimated"
    assert tau_feature(W, cost="cosine").kind == "estimated"


def test_mlp_product_of_norms():
    W1, W2 = np.eye(3) * 2, np.ones((2, 3))
    t = tau_upper_mlp([W1, W2], logit_grad_bound=np.sqrt(2))
    assert np.isclose(t.value, np.sqrt(2) * 2 * np.linalg.norm(W2, 2))
