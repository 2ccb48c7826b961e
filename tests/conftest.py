"""Shared test setup: Hypothesis profiles and cached datasets.

Profiles: ``quick`` (default, for the normal run) and ``thorough`` (select with
``CMKD_HYPOTHESIS_PROFILE=thorough`` or ``pytest --hypothesis-profile thorough``).
Failures print the seed to reproduce with ``--hypothesis-seed``.

Threads: the session runs torch (and every child process, through ``OMP_NUM_THREADS``) on one thread unless
``CMKD_TEST_THREADS`` says otherwise. On a loaded 2-core machine two threads per process wait on each other
(the default run took 622 s at load 4 with torch's default, against 45 s idle); the tests that need more
threads set them themselves.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

THREADS = int(os.environ.get("CMKD_TEST_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))

settings.register_profile(
    "quick", max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("CMKD_HYPOTHESIS_PROFILE", "quick"))


def pytest_configure(config):
    import torch

    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def avmnist():
    from training.datasets import load_pair

    return load_pair("avmnist")
