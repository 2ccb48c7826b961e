"""Shared test setup: Hypothesis profiles and cached datasets.

Profiles: ``quick`` (default, for the normal run) and ``thorough`` (select with
``CMKD_HYPOTHESIS_PROFILE=thorough`` or ``pytest --hypothesis-profile thorough``).
Failures print the seed to reproduce with ``--hypothesis-seed``.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick", max_examples=25, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("CMKD_HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(scope="session")
def avmnist():
    from training.datasets import load_pair

    return load_pair("avmnist")
