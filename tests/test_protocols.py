"""The pairing protocols do what they say, deterministically from their seed."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from training import protocols as P

labels = st.lists(st.integers(0, 4), min_size=5, max_size=80).map(np.array)


@given(y_s=labels, y_t=labels, seed=st.integers(0, 2**31))
def test_class_resample_partners_share_the_class(y_s, y_t, seed):
    if not set(y_s) <= set(y_t):
        with pytest.raises(P.ProtocolError, match="no teacher item"):
            P.class_resample(y_s, y_t, seed)
        return
    idx = P.class_resample(y_s, y_t, seed, epoch=3)
    assert np.array_equal(y_t[idx], y_s)
    assert np.array_equal(idx, P.class_resample(y_s, y_t, seed, epoch=3))


def test_class_resample_changes_between_epochs_and_seeds():
    y = np.repeat(np.arange(10), 50)
    e0, e1 = P.class_resample(y, y, 0, 0), P.class_resample(y, y, 0, 1)
    assert (e0 != e1).mean() > 0.9
    assert (P.class_resample(y, y, 1, 0) != e0).mean() > 0.9
    # the fixed pairing is the same every time
    assert np.array_equal(P.fixed_class_pairing(y, y, 4), P.fixed_class_pairing(y, y, 4))


def test_permutation_is_a_permutation_and_ignores_labels():
    idx = P.permutation(100, 100, seed=0)
    assert sorted(idx) == list(range(100))
    y = np.repeat(np.arange(10), 10)
    assert (y[idx] == y).mean() < 0.3
    assert np.array_equal(idx, P.permutation(100, 100, seed=0))
    assert not np.array_equal(idx, P.permutation(100, 100, seed=1))
    longer = P.permutation(250, 100, seed=2)
    assert len(longer) == 250 and np.bincount(longer).min() >= 2


def test_paired_refused_without_correspondence():
    with pytest.raises(P.ProtocolError, match="needs an instance correspondence"):
        P.paired(None)
    assert np.array_equal(P.paired(np.array([2, 0, 1])), [2, 0, 1])
    with pytest.raises(P.ProtocolError, match="unknown protocol"):
        P.partners("nope", [0], [0], 0, 0)


@pytest.mark.parametrize("ratio", P.DISJOINT_PRESETS)
def test_disjoint_pools_share_no_sample(ratio):
    y = np.repeat(np.arange(10), 40)
    s, t = P.disjoint(y, ratio, seed=0)
    assert len(np.intersect1d(s, t)) == 0
    assert len(s) + len(t) == len(y)
    assert list(np.bincount(y[s])) == [round(ratio * 40)] * 10
    s2, _ = P.disjoint(y, ratio, seed=1)
    assert not np.array_equal(s, s2)


@pytest.mark.parametrize("factor", P.IMBALANCE_PRESETS)
def test_imbalance_keeps_stated_fractions(factor):
    y = np.repeat(np.arange(10), 300)
    keep = P.imbalance(y, factor, seed=0)
    frac = np.bincount(y[keep], minlength=10) / 300
    expected = P.imbalance_fractions(10, factor, seed=0)
    assert np.allclose(frac, expected, atol=1 / 300)
    assert np.isclose(expected.max(), 1.0) and np.isclose(expected.min(), 1 / factor)
    assert sorted(np.round(np.log(expected) / np.log(1 / factor) * 9).astype(int)) == list(range(10))
    assert not np.array_equal(P.imbalance_fractions(10, factor, 0), P.imbalance_fractions(10, factor, 1))


def test_domain_shift_level_and_padding():
    x = torch.ones(50, 7, 3)
    x[:, :, 0] = torch.arange(7.0)
    lengths = torch.full((50,), 4)
    out = P.domain_shift(x, 0.5, seed=0, lengths=lengths)
    assert torch.equal(out[:, 4:], x[:, 4:])
    assert torch.equal(P.domain_shift(x, 0.5, 0, lengths), out)
    noise = (out - x)[:, :4]
    assert abs(float(noise.std()) / (0.5 * float(x.std())) - 1) < 0.1
    assert P.domain_shift(x, 0.0, 0) is x
