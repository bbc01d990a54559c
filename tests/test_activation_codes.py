"""The activation codes are one table: ``kernels.contract.ACT_CODES``.

Every backend's compiled code branches on small integers for the fused activations.
Python modules take them from the contract; C cannot (its switch needs compile-time
constants), so ``kernels/_cython/fastnn_c.h`` repeats them as the ``FNN_LINEAR..``
enum and the compiled module exposes the values it was built with as
``_kernels.ACTIVATIONS``. These tests compare every copy with the contract name by
name, then run each compiled activation by its code, so a changed code, a reordered
``ACTIVATIONS`` or a stale build or Numba cache fails here.

``cuda_kernels`` imports without a GPU (numba-cuda is only needed as a package), so
its constants are always compared when numba-cuda is installed; running its device
code needs a GPU or the simulator (``NUMBA_ENABLE_CUDASIM=1``) and is skipped otherwise.
"""

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels import contract
from fastnn.kernels.contract import ACT_CODES, ACTIVATIONS

NAMES = ("linear", "relu", "leaky_relu", "sigmoid", "tanh")
ALPHA = 0.1
# Each activation maps these to different values, so a swapped code cannot pass.
X = np.array([-2.0, -0.5, 0.5, 2.0])


def _expected(name, x=X):
    return {"linear": x, "relu": np.maximum(x, 0), "leaky_relu": np.where(x > 0, x, ALPHA * x),
            "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x)}[name]


def _same_table(got, where):
    """got (name -> code) agrees with ACT_CODES name by name."""
    assert set(got) == set(ACT_CODES), f"{where}: names {sorted(got)} != {sorted(ACT_CODES)}"
    wrong = {name: (got[name], ACT_CODES[name]) for name in ACT_CODES if got[name] != ACT_CODES[name]}
    assert not wrong, f"{where}: codes differ from contract.ACT_CODES (got, want): {wrong}"


def test_contract_table():
    assert ACTIVATIONS == NAMES
    assert ACT_CODES == {name: code for code, name in enumerate(NAMES)}
    # the C entry points accept FNN_LINEAR <= code <= FNN_TANH as the valid range
    assert sorted(ACT_CODES.values()) == list(range(len(NAMES)))
    assert contract.ACT_CODES is ACT_CODES


def test_cython_table():
    from fastnn.kernels import cython_backend as cb
    if cb._k is None:
        pytest.skip("cython backend not built")
    _same_table(cb._k.ACTIVATIONS, "_kernels.ACTIVATIONS (the C enum)")
    _same_table(cb._ACT, "cython_backend._ACT")
    _same_table({"relu": cb._RELU, "leaky_relu": cb._LEAKY_RELU, "sigmoid": cb._SIGMOID,
                 "tanh": cb._TANH, "linear": ACT_CODES["linear"]}, "cython_backend constants")


@pytest.mark.parametrize("name", NAMES)
def test_cython_kernel_runs_code(name):
    from fastnn.kernels import cython_backend as cb
    if cb._k is None:
        pytest.skip("cython backend not built")
    out = np.empty_like(X)
    cb._k.act_forward(ACT_CODES[name], X, out, ALPHA)
    np.testing.assert_allclose(out, _expected(name), rtol=1e-12)


def test_numba_table():
    pytest.importorskip("numba")
    from fastnn.kernels import numba_util as u
    _same_table(u.ACT_CODES, "numba_util.ACT_CODES")
    _same_table({"linear": u.LINEAR, "relu": u.RELU, "leaky_relu": u.LEAKY_RELU,
                 "sigmoid": u.SIGMOID, "tanh": u.TANH}, "numba_util constants")


@pytest.mark.parametrize("name", NAMES)
def test_numba_kernel_runs_code(name):
    pytest.importorskip("numba")
    from fastnn.kernels import numba_util as u
    got = [u.activate(v, ACT_CODES[name], ALPHA, 1.0) for v in X]
    np.testing.assert_allclose(got, _expected(name), rtol=1e-12)


def test_cuda_table():
    pytest.importorskip("numba.cuda")
    from fastnn.kernels import cuda_kernels as ck
    _same_table(ck.ACTIVATION_CODES, "cuda_kernels.ACTIVATION_CODES")
    _same_table({"linear": ck.LINEAR, "relu": ck.RELU, "leaky_relu": ck.LEAKY_RELU,
                 "sigmoid": ck.SIGMOID, "tanh": ck.TANH}, "cuda_kernels constants")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backend_name", ["numba", "cython", "cuda"])
def test_fused_dense_by_name(backend_name, name):
    """The wrapper's name -> code and the compiled epilogue agree: x @ I + 0 = act(x)."""
    ok, reason = K.status()[backend_name]
    if not ok:
        pytest.skip(f"{backend_name} backend not available: {reason}")
    bk = K.get(backend_name)
    x = X.reshape(1, -1)
    out = bk.asarray(np.zeros_like(x))
    bk.dense_forward(bk.asarray(x), bk.asarray(np.eye(x.shape[1])), bk.asarray(np.zeros(x.shape[1])),
                     out, name, ALPHA)
    np.testing.assert_allclose(np.asarray(bk.to_host(out)).ravel(), _expected(name), rtol=1e-12)
