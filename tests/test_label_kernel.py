"""kappa: non-negative, the identity sum_y D_S kappa = 1, kappa = 1 when conditionals agree."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmkd_bounds import label_kernel as lk
from training.synthetic import SyntheticWorld


@given(st.integers(0, 10**6), st.floats(0, 3), st.floats(0, 3))
def test_kappa_identity_with_true_posteriors(seed, fshift, lshift):
    w = SyntheticWorld(num_classes=4, feature_shift=fshift, label_shift=lshift, seed=seed % 1000)
    z, _ = w.sample_latent("student", 200, np.random.default_rng(seed))
    pT, pS = w.posterior("teacher", z), w.posterior("student", z)
    k = lk.kappa_ratio(pT, pS, kappa_cap=np.inf)
    assert (k >= 0).all()
    assert np.abs((pS * k).sum(1) - 1).max() < 1e-6  # sum_y D_S kappa = 1: by construction when uncapped
    g = np.random.default_rng(seed).normal(size=4)
    assert np.allclose((pS * k) @ g, pT @ g)


def test_kappa_is_one_and_la_zero_when_conditionals_and_heads_agree():
    w = SyntheticWorld(num_classes=3, seed=2)
    rng = np.random.default_rng(0)
    z, y = w.sample_latent("student", 500, rng)
    p = w.posterior("teacher", z)
    assert np.allclose(lk.kappa_ratio(p, p), 1.0)
    W, b = w.bayes_head("teacher")
    loss = lk.cross_entropy(z @ W.T + b, y)
    assert lk.label_alignment(loss, np.ones(500), loss) == 0.0


def test_official_kappa_in_unit_interval_and_temperature_fit():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 4
    y = np.array([rng.choice(5, p=p) for p in lk.softmax(logits / 2.0)])  # true temperature 2
    k = lk.kappa_official(logits, y)
    assert ((0 <= k) & (k <= 1)).all()
    assert lk.fit_temperature(logits, y) == pytest.approx(2.0, rel=0.15)
