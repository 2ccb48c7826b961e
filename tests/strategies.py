"""Hypothesis strategies that build problems with closed-form answers (GeomLoss-style)."""

import os

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

# examples for properties whose single example costs about a second (a full bound assembly, a CLI run)
HEAVY_EXAMPLES = 60 if os.environ.get("CMKD_HYPOTHESIS_PROFILE") == "thorough" else 8

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def clouds(draw, min_n=1, max_n=30, min_d=1, max_d=5, d=None):
    """Two point clouds ``(x, y)`` in the same dimension."""
    d = d or draw(st.integers(min_d, max_d))
    n = draw(st.integers(min_n, max_n))
    m = draw(st.integers(min_n, max_n))
    x = draw(arrays(np.float64, (n, d), elements=finite))
    y = draw(arrays(np.float64, (m, d), elements=finite))
    return x, y


@st.composite
def weights(draw, n):
    w = draw(arrays(np.float64, (n,), elements=st.floats(0.01, 1.0)))
    return w / w.sum()


@st.composite
def linear_heads(draw, max_c=6, max_k=6):
    C = draw(st.integers(2, max_c))
    k = draw(st.integers(1, max_k))
    W = draw(arrays(np.float64, (C, k), elements=st.floats(-3, 3)))
    b = draw(arrays(np.float64, (C,), elements=st.floats(-3, 3)))
    return W, b
