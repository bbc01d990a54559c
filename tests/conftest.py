"""Shared fixtures: the backend list every parametrised test runs over.

By default every available CPU backend is tested. ``FASTNN_TEST_BACKENDS``
(comma-separated) picks others, e.g. ``FASTNN_TEST_BACKENDS=cuda`` for the run
under the CUDA simulator or on a real GPU.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastnn.kernels as K

_CHOSEN = os.environ.get("FASTNN_TEST_BACKENDS")
BACKENDS = ([b.strip() for b in _CHOSEN.split(",")] if _CHOSEN
            else [name for name in K.available() if name != "cuda"])

# The CUDA simulator runs every GPU thread in Python: fewer examples there.
settings.register_profile(
    "fastnn", max_examples=6 if "cuda" in BACKENDS else 25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("fastnn")

# Interpreted and simulated backends are slow: keep their shapes tiny.
SMALL = {"python", "cuda"}


def max_dim(name):
    """Largest dimension hypothesis draws for this backend's kernel tests."""
    return 9 if name in SMALL else 40


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A validated fastnn Backend, one per backend under test."""
    return K.get(request.param)


@pytest.fixture(scope="session")
def reference():
    return K.get("numpy")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
