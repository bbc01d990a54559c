"""Two tiers of kernels: tier-2 kernels have a reference composed of tier-1 primitives
(``kernels/reference.py``) that runs on a backend lacking them, on that backend's own
primitives; a backend missing a kernel is never dropped; the hot kernels of the compiled
backends are native (pinned here, so one cannot fall back unnoticed)."""

import subprocess
import sys
import types

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels import contract
from fastnn.kernels.examples import example_calls
from fastnn.kernels.reference import REFERENCES, TIER2
from fastnn.kernels.reference_conv import CONV_KERNEL_NAMES


COMPILED = ("numba", "cython", "cuda")


def _without(module, names):
    """The backend module with the kernels ``names`` hidden."""
    view = types.ModuleType(f"{module.__name__}_without_tier2")
    for attr in dir(module):
        if attr not in names and not attr.startswith("__"):
            setattr(view, attr, getattr(module, attr))
    return view


def test_every_tier2_kernel_has_a_reference_and_tier1_is_the_rest():
    assert set(TIER2) <= set(contract.KERNELS)
    tier1 = set(contract.KERNELS) - set(TIER2)
    for primitive in ("gemm", "unary", "binary", "reduce_sum", "reduce_max", "gather_rows",
                      "scatter_add_rows", "gemm_batched", "softmax_forward", "relu_forward"):
        assert primitive in tier1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_references_on_each_backends_primitives_equal_the_reference_kernels(backend, dtype):
    """Every tier-2 kernel, run as its reference on this backend's own primitives (the
    backend's fused kernels hidden), against the NumPy kernel on the same example call."""
    forced = K.Backend(backend.name, _without(backend.module, TIER2))
    assert all(forced.sources[k] == "reference" for k in TIER2)
    reference = K.get("numpy")
    rtol = 2e-4 if dtype == np.float32 else 1e-9
    for (name, want_args), (_, got_args) in zip(example_calls(dtype), example_calls(dtype)):
        if name not in TIER2:
            continue
        want = getattr(reference, name)(*want_args)
        got_args = [forced.asarray(a) if isinstance(a, np.ndarray) else a for a in got_args]
        got = getattr(forced, name)(*got_args)
        if want is not None:
            assert got == pytest.approx(want, rel=rtol, abs=rtol), name
        for a, b in zip(want_args, got_args):
            if isinstance(a, np.ndarray):
                np.testing.assert_allclose(forced.to_host(b), a, rtol=rtol, atol=rtol, err_msg=name)


def test_a_backend_missing_a_kernel_still_runs_it():
    """A backend module without dense_forward (tier 2) or unary (tier 1) is not dropped: the
    first runs as its reference on the backend's primitives, the second on the host."""
    module = _without(K.get("numpy").module, {"dense_forward", "unary"})
    bk = K.Backend("numpy", module)
    assert bk.sources["dense_forward"] == "reference" and bk.sources["unary"] == "host"
    x, w, b = np.ones((2, 3), np.float32), np.full((3, 4), 0.5, np.float32), np.arange(4, dtype=np.float32)
    out = np.empty((2, 4), np.float32)
    bk.dense_forward(x, w, b, out, "relu")
    np.testing.assert_allclose(out, np.maximum(x @ w + b, 0))
    with pytest.raises(ValueError, match="unknown op"):      # still checked by the contract
        bk.unary("cube", x, np.empty_like(x))


@pytest.mark.parametrize("name", [n for n in COMPILED if n in K.available()])
def test_the_compiled_backends_run_every_tier2_kernel_natively(name):
    """All of them on cython and numba; on cuda all but the convolution and pooling kernels,
    which run as references (on the backend's own primitives) until it has its own."""
    sources = K.get(name).sources
    exempt = CONV_KERNEL_NAMES if name == "cuda" else ()
    assert [k for k in TIER2 if sources[k] != "native" and k not in exempt] == []
    assert {sources[k] for k in CONV_KERNEL_NAMES} <= {"native", "reference"}


@pytest.mark.parametrize("name", ["numpy", "python"])
def test_the_reference_backends_implement_the_whole_contract(name):
    sources = K.get(name).sources
    assert [k for k, s in sources.items() if s != "native" and k not in CONV_KERNEL_NAMES] == []
    assert all(sources[k] == "native" for k in CONV_KERNEL_NAMES) or name == "python"


def test_backends_kernels_lists_each_kernels_source():
    proc = subprocess.run([sys.executable, "-m", "fastnn.cli", "backends", "--kernels"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert lines["dense_forward"][0] == "2" and lines["unary"][0] == "1"
    assert "native" in lines["gemm"]
    assert set(contract.KERNELS) <= set(lines)


def test_reference_functions_take_the_contracts_arguments():
    import inspect
    for name, fn in REFERENCES.items():
        params = list(inspect.signature(fn).parameters)[1:]          # after the backend
        sig = contract.KERNELS[name].split("(", 1)[1].split(")", 1)[0]
        want = [p.split("=")[0].strip() for p in sig.split(",")]
        assert params == want, name
