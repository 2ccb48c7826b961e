"""Every reliability case gets its clear error or labelled result; malformed bundles never crash evaluate."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmkd_bounds.app.reliability import CASES, ROOT
from cmkd_bounds.kinds import KINDS
from tests.strategies import HEAVY_EXAMPLES


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c.slow else c for c in CASES],
                         ids=[c.name for c in CASES])
def test_case(case, tmp_path):
    if case.name == "--device cuda on a machine without CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    got = case.run(tmp_path)
    assert re.search(case.expect, got), got


KEYS = ["teacher_z", "teacher_y", "student_z", "student_y", "teacher_W", "teacher_b", "student_W", "student_b"]


@st.composite
def malformed_bundles(draw):
    C, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    m, n = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    shapes = {"teacher_z": (m, k), "teacher_y": (m,), "student_z": (n, k), "student_y": (n,), "teacher_W": (C, k),
              "teacher_b": (C,), "student_W": (C, k), "student_b": (C,)}
    arrays = {}
    for key in KEYS:
        if draw(st.integers(0, 15)) == 0:
            continue  # drop the array
        shape = shapes[key]
        if draw(st.integers(0, 10)) == 0:
            shape = tuple(s + draw(st.integers(-1, 2)) for s in shape if s + 2 > 0)  # wrong shape
            shape = tuple(max(0, s) for s in shape)
        if key.endswith("_y"):
            arr = np.asarray(draw(st.lists(st.integers(-1, C + 1), min_size=int(np.prod(shape)),
                                           max_size=int(np.prod(shape)))), dtype=np.int64).reshape(shape)
        else:
            arr = np.asarray(draw(st.lists(st.sampled_from([0.0, 1.0, -2.5, 1e6, np.nan, np.inf, 3.3]) |
                                           st.floats(-10, 10), min_size=int(np.prod(shape)),
                                           max_size=int(np.prod(shape)))), dtype=np.float64).reshape(shape)
        if draw(st.integers(0, 12)) == 0:
            with np.errstate(invalid="ignore"):  # NaN/Inf cast to integers on purpose
                arr = arr.astype(np.float32) if key.endswith("_y") else arr.astype(np.int32)  # wrong dtype
        arrays[key] = arr
    return arrays


@pytest.mark.slow
@settings(max_examples=HEAVY_EXAMPLES + 4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(malformed_bundles())
def test_fuzz_malformed_bundles_never_crash(tmp_path_factory, arrays):
    tmp = tmp_path_factory.mktemp("fuzz")
    np.savez(tmp / "b.npz", **arrays)
    r = subprocess.run([sys.executable, "-m", "cmkd_bounds", "evaluate", "--features", str(tmp / "b.npz"),
                        "--out", str(tmp / "out"), "--quiet"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if r.returncode == 0:
        d = json.loads((tmp / "out" / "bound.json").read_text())
        assert all(np.isfinite(t["value"]) or t["kind"] != "certified" for t in d["terms"])
        assert all(t["kind"] in KINDS for t in d["terms"])
    else:
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp / "out").exists()  # nothing half-written
