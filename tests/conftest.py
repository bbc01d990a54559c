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


# --- comparing a backend's results with the reference ------------------------------------------

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def on(backend, a):
    """Hand an input to the backend: host arrays as they are, device copies for GPU backends."""
    return backend.asarray(a) if backend.on_device and a is not None else a


def host(backend, a):
    return np.asarray(backend.to_host(a))


def close(got, want, dtype, scale=None):
    """got == want within the dtype's tolerance; NaN, +inf and -inf must sit at exactly the
    same places (a backend may never turn a NaN into a number, or a number into a NaN)."""
    tol = TOL[np.dtype(dtype)]
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    for kind in (np.isnan, np.isposinf, np.isneginf):
        wrong = kind(got) != kind(want)
        assert not wrong.any(), (f"{kind.__name__} differs at {np.argwhere(wrong)[:4].tolist()}: "
                                 f"got {got[wrong][:4]}, want {want[wrong][:4]}")
    finite = np.isfinite(want)
    got, want = got[finite], want[finite]
    if want.size:
        scale = scale or max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
