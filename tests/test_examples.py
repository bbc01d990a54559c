"""``kernels/examples.py``: one valid call of every kernel, the single list that Numba's
warm-up and the CUDA backend's first use walk through."""

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels import contract
from fastnn.kernels.examples import example_calls



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_has_a_valid_example_call(dtype):
    calls = example_calls(dtype)
    assert {name for name, _ in calls} == set(contract.KERNELS)
    for name, args in calls:
        contract.check(name, *args)          # raises if an example is not a valid call
    dense = [args[-2] for name, args in calls if name == "dense_forward"]
    assert sorted(dense) == sorted(contract.ACTIVATIONS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_backend_runs_the_example_calls_as_the_reference_does(backend, dtype):
    reference = K.get("numpy")
    for (name, args), (_, mine) in zip(example_calls(dtype), example_calls(dtype)):
        want = getattr(reference, name)(*args)
        mine = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in mine]
        got = getattr(backend, name)(*mine)
        if want is not None:
            assert got == pytest.approx(want, rel=1e-5 if dtype == np.float32 else 1e-12), name
        for a, b in zip(args, mine):         # outputs and in-place updates agree too
            if isinstance(a, np.ndarray):
                np.testing.assert_allclose(backend.to_host(b), a, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                           atol=1e-5 if dtype == np.float32 else 1e-12, err_msg=name)
