"""tau: lower <= upper, and the certified upper bound dominates every slope found."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from cmkd_bounds.lipschitz import (
    entropy_fn,
    tau_lower,
    tau_upper_class_ce,
    tau_upper_entropy,
    tau_upper_mlp,
)
from tests.strategies import linear_heads


@given(linear_heads(), st.floats(0.3, 3.0), st.sampled_from(["l2", "l1"]), st.integers(0, 1000))
def test_upper_dominates_slopes_and_gradients(head, T, cost, seed):
    W, b = head
    rng = np.random.default_rng(seed)
    z = torch.tensor(rng.normal(size=(200, W.shape[1])) * 3)
    f = entropy_fn(W, b, T)
    up = tau_upper_entropy(W, T, cost)
    lo = tau_lower(f, z, cost, ascent_steps=5, n_start=32, n_pairs=500, seed=seed)
    assert lo.kind == "lower" and up.kind == "certified"
    assert lo.value <= up.value * (1 + 1e-9) + 1e-12


@given(linear_heads(), st.integers(0, 1000))
def test_class_ce_bound_dominates_finite_differences(head, seed):
    W, b = head
    rng = np.random.default_rng(seed)
    z1, z2 = rng.normal(size=(300, W.shape[1])) * 3, rng.normal(size=(300, W.shape[1])) * 3
    y = rng.integers(0, W.shape[0], 300)

    def ce(z):
        s = z @ W.T + b
        s = s - s.max(1, keepdims=True)
        return -(s[np.arange(300), y] - np.log(np.exp(s).sum(1)))

    slopes = np.abs(ce(z1) - ce(z2)) / np.linalg.norm(z1 - z2, axis=1)
    assert slopes.max() <= tau_upper_class_ce(W).value + 1e-9


def test_entropy_bound_value_and_chordal_is_not_certified():
    W = np.diag([2.0, 1.0, 0.5])
    assert tau_upper_entropy(W).value == 2.0 * 2 * np.log(3)
    assert tau_upper_entropy(W, temperature=2.0).value == 2 * np.log(3)
    assert tau_upper_entropy(W, cost="l1").value == 2.0 * 2 * np.log(3)  # max |W_yk| * 2 log C
    assert tau_upper_entropy(W, cost="chordal").kind == "estimated"
    assert tau_upper_entropy(W, cost="cosine").kind == "estimated"


def test_mlp_product_of_norms():
    W1, W2 = np.eye(3) * 2, np.ones((2, 3))
    t = tau_upper_mlp([W1, W2], logit_grad_bound=np.sqrt(2))
    assert np.isclose(t.value, np.sqrt(2) * 2 * np.linalg.norm(W2, 2))
