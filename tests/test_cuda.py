"""The CUDA backend beyond the shared kernel tests: the GEMM ladder, device-resident
arrays, gradients and a short training run that keeps everything on the device.

Runs on a GPU, or without one under numba-cuda's simulator::

    NUMBA_ENABLE_CUDASIM=1 FASTNN_TEST_BACKENDS=cuda python -m pytest tests/test_kernels.py tests/test_cuda.py

The simulator runs every GPU thread in Python, so shapes stay tiny; the same
tests run unchanged on a real GPU.
"""

import collections
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
import fastnn.kernels as K

_OK, _REASON = K.status()["cuda"]
if not _OK:   # no GPU and no simulator here: nothing below can run
    pytest.skip(f"cuda backend not available: {_REASON}", allow_module_level=True)

from fastnn.kernels import cuda_backend as cb, cuda_gemm   # noqa: E402  (after the skip)

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module")
def gpu():
    return K.get("cuda")


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- the GEMM ladder ------------------------------------------------------------------

# (m, n, k): 1-sized, primes, and sizes that cross the 16-wide tiles of rungs 1-2, the
# 16-deep steps of rungs 2-3 and the 64-wide tile of rung 3 (65 rows)
LADDER_SHAPES = [(1, 1, 1), (7, 5, 3), (17, 18, 19), (65, 3, 2)]


@pytest.mark.parametrize("rung", list(cb.GEMM_LADDER))
@pytest.mark.parametrize("shape", LADDER_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_rung_matches_numpy(gpu, rung, shape):
    m, n, k = shape
    gemm = cb.GEMM_LADDER[rung]
    rng = _rng(m * n * k)
    for dtype, (ta, tb), (alpha, beta) in [(np.float64, (False, False), (1.0, 0.0)),
                                           (np.float32, (True, False), (-0.5, 1.0)),
                                           (np.float64, (False, True), (2.0, 0.25)),
                                           (np.float32, (True, True), (1.0, 0.0))]:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        out = gpu.asarray(c0)
        gemm(gpu.asarray(a), gpu.asarray(b), out, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta)
        want = alpha * (a.T if ta else a).astype(np.float64) @ (b.T if tb else b) + beta * c0
        np.testing.assert_allclose(gpu.to_host(out), want, rtol=TOL[dtype], atol=TOL[dtype] * k,
                                   err_msg=f"{rung} {dtype.__name__} trans=({ta}, {tb})")


def test_rungs_read_strided_and_fortran_inputs(gpu):
    rng = _rng(1)
    a = np.asfortranarray(rng.standard_normal((9, 6)))         # Fortran order
    b = rng.standard_normal((6, 14))[:, ::2]                   # a strided view (6, 7)
    for rung, gemm in cb.GEMM_LADDER.items():
        out = gpu.zeros((9, 7), np.float64)
        gemm(gpu.asarray(a), gpu.asarray(b), out)
        np.testing.assert_allclose(gpu.to_host(out), a @ b, rtol=1e-12, atol=1e-12, err_msg=rung)


def test_beta_zero_ignores_nan_in_out(gpu):
    a, b = np.ones((3, 2)), np.ones((2, 4))
    for rung, gemm in cb.GEMM_LADDER.items():
        out = gpu.asarray(np.full((3, 4), np.nan))
        gemm(gpu.asarray(a), gpu.asarray(b), out, beta=0.0)
        np.testing.assert_array_equal(gpu.to_host(out), np.full((3, 4), 2.0), err_msg=rung)


def test_ladder_checks_its_arguments(gpu):
    a, b, out = gpu.zeros((3, 4), np.float32), gpu.zeros((5, 2), np.float32), gpu.zeros((3, 2), np.float32)
    for gemm in cb.GEMM_LADDER.values():
        with pytest.raises(K.contract.ContractError, match="inner dimensions"):
            gemm(a, b, out)


@pytest.mark.parametrize("activation", K.contract.ACTIVATIONS)
def test_dense_layer_through_register_tiles(gpu, reference, activation):
    """Sizes above cuda_gemm.SMALL: the fused bias + activation epilogue of rung 3."""
    n, i, o = 40, 21, 40
    assert cuda_gemm.best_rung(n, o, i) == cuda_gemm.best_rung(i, o, n) == "register_tiles"
    rng = _rng(2)
    x, w, b = rng.standard_normal((n, i)), rng.standard_normal((i, o)) / 4, rng.standard_normal(o)
    dy = rng.standard_normal((n, o))
    got_y, want_y = gpu.empty((n, o), np.float64), np.empty((n, o))
    gpu.dense_forward(gpu.asarray(x), gpu.asarray(w), gpu.asarray(b), got_y, activation, 0.1)
    reference.dense_forward(x, w, b, want_y, activation, 0.1)
    np.testing.assert_allclose(gpu.to_host(got_y), want_y, rtol=1e-12, atol=1e-12)
    grads = {}
    for bk, y in ((gpu, got_y), (reference, want_y)):
        dz, dx = bk.zeros((n, o), np.float64), bk.zeros((n, i), np.float64)
        dw, db = bk.zeros((i, o), np.float64), bk.zeros(o, np.float64)
        bk.dense_backward(bk.asarray(x), bk.asarray(w), y, bk.asarray(dy), dz, dx, dw, db, activation, 0.1)
        grads[bk.name] = [bk.to_host(a) for a in (dz, dx, dw, db)]
    for got, want in zip(grads["cuda"], grads["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-11)


# --- device-resident arrays -------------------------------------------------------------

def _on_device(a):
    return hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray)


def test_round_trip_keeps_values_and_layout(gpu):
    rng = _rng(3)
    base = rng.standard_normal((5, 8)).astype(np.float32)
    for host in (base, np.asfortranarray(base), base[:, ::2], base[::2, 1::3], base.T):
        dev = gpu.asarray(host)
        assert _on_device(dev) and dev.shape == host.shape and dev.dtype == host.dtype
        assert dev.is_c_contiguous() == host.flags.c_contiguous
        back = gpu.to_host(dev)
        assert isinstance(back, np.ndarray)
        np.testing.assert_array_equal(back, host)
    dev = gpu.asarray(base)
    assert gpu.asarray(dev) is dev                         # already there: no copy
    as64 = gpu.asarray(dev, np.float64)                    # cast on the device
    assert as64.dtype == np.float64
    np.testing.assert_array_equal(gpu.to_host(as64), base.astype(np.float64))
    np.testing.assert_array_equal(gpu.to_host(gpu.asarray([[1, 2], [3, 4]], np.float32)),
                                  [[1, 2], [3, 4]])
    assert gpu.to_host(base) is base                       # host arrays pass through


def test_empty_and_zeros_live_on_the_device(gpu):
    for shape in ((4,), (3, 5), (2, 3, 4)):
        for dtype in (np.float32, np.float64, np.int64):
            z = gpu.zeros(shape, dtype)
            assert _on_device(z) and z.shape == shape and z.dtype == dtype and z.is_c_contiguous()
            np.testing.assert_array_equal(gpu.to_host(z), np.zeros(shape, dtype))
            e = gpu.empty(shape, dtype)
            assert _on_device(e) and e.shape == shape and e.dtype == dtype


def test_take_rows_gathers_on_the_device(gpu):
    rng = _rng(4)
    X = rng.standard_normal((10, 3)).astype(np.float32)
    labels = rng.integers(0, 5, 10)
    cube = rng.standard_normal((10, 2, 3))
    idx = np.array([9, 0, 3, 3, -1])                       # repeats and a negative index
    for host in (X, labels, cube, np.asfortranarray(X), X[:, ::2]):
        got = gpu.take_rows(gpu.asarray(host), idx)
        assert _on_device(got) and got.is_c_contiguous() and got.dtype == host.dtype
        np.testing.assert_array_equal(gpu.to_host(got), host[idx])
    empty = gpu.take_rows(gpu.asarray(X), np.array([], np.int64))
    assert empty.shape == (0, 3)
    with pytest.raises(IndexError, match=r"\[-10, 10\)"):
        gpu.take_rows(gpu.asarray(X), np.array([0, 10]))
    with pytest.raises(TypeError, match="integer"):
        gpu.take_rows(gpu.asarray(X), np.array([0.0, 1.0]))


def test_outputs_must_live_on_the_device(gpu):
    x = gpu.asarray(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="output arrays must be device arrays"):
        gpu.relu_forward(x, np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="output arrays must be device arrays"):
        gpu.sgd_update(np.ones(3, np.float32), x[0], x[1], 0.1, 0.0, 0.0, False)


def test_host_inputs_are_uploaded(gpu, reference):
    x = _rng(5).standard_normal((4, 3))
    out = gpu.empty((4, 3), np.float64)
    gpu.tanh_forward(x, out)                               # a NumPy input, a device output
    want = np.empty((4, 3))
    reference.tanh_forward(x, want)
    np.testing.assert_allclose(gpu.to_host(out), want, rtol=1e-12)


def test_labels_outside_the_classes_on_the_device_are_a_clear_error(gpu):
    """Device labels are not range-checked on the host: the kernels that read them flag a bad
    one (in mapped memory, no extra copy) and the call raises, naming the row and the label;
    the row itself is never read out of bounds."""
    logits = gpu.asarray(np.zeros((3, 3), np.float32))
    probs = gpu.empty((3, 3), np.float32)
    for labels, row, value in (([0, 7, 1], 1, 7), ([-1, 0, 2], 0, -1)):
        bad = gpu.asarray(np.array(labels, np.int64))
        with pytest.raises(ValueError, match=r"softmax_cross_entropy_forward: labels must lie in \[0, 3\), "
                                             rf"got {value} at row {row}"):
            gpu.softmax_cross_entropy_forward(logits, bad, probs)
        with pytest.raises(ValueError, match=rf"softmax_cross_entropy_backward: labels must lie in \[0, 3\), "
                                             rf"got {value} at row {row}"):
            gpu.softmax_cross_entropy_backward(probs, bad, gpu.empty((3, 3), np.float32))
    good = gpu.asarray(np.array([0, 1, 2], np.int64))             # the flag is reset each call
    assert np.isclose(gpu.softmax_cross_entropy_forward(logits, good, probs), np.log(3))
    dlogits = gpu.empty((3, 3), np.float32)
    gpu.softmax_cross_entropy_backward(probs, good, dlogits)
    np.testing.assert_allclose(gpu.to_host(dlogits), (1 / 3 - np.eye(3)) / 3, rtol=1e-6)


# --- gradients and training ----------------------------------------------------------------

def _model(backend, dtype="float32"):
    return fnn.Sequential([fnn.Dense(2, 6, activation="tanh"), fnn.BatchNorm1d(6), fnn.ReLU(),
                           fnn.Dense(6, 3)], backend=backend, seed=0, dtype=dtype)


def test_gradients_match_numpy_and_finite_differences(gpu):
    X, y = fnn.data.make_moons(12, seed=0)
    grads = {}
    for name in ("cuda", "numpy"):
        model, loss = _model(name, "float64"), fnn.SoftmaxCrossEntropy()
        value = loss.forward(model._forward(X), y)
        model._backward(loss._backward())
        grads[name] = (value, [p.grad for p in model.parameters()])
    assert grads["cuda"][0] == pytest.approx(grads["numpy"][0], rel=1e-12)
    for got, want in zip(grads["cuda"][1], grads["numpy"][1]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert fnn.gradcheck(_model("cuda"), X[:5], max_elements=3) < 1e-6


def _count_transfers(monkeypatch):
    """Count host->device uploads and device->host copies (with their sizes)."""
    cuda = cb._setup()
    counts = collections.Counter()
    device_class = type(cuda.device_array(1))
    upload, download = cuda.to_device, device_class.copy_to_host

    def to_device(a, *args, **kwargs):
        counts["up", np.size(a)] += 1
        return upload(a, *args, **kwargs)

    def copy_to_host(self, *args, **kwargs):
        counts["down", self.size] += 1
        return download(self, *args, **kwargs)

    monkeypatch.setattr(cuda, "to_device", to_device)
    monkeypatch.setattr(device_class, "copy_to_host", copy_to_host)
    return counts


def test_training_stays_on_the_device(gpu, monkeypatch):
    """Per step: two index uploads for the batch and two scalars back (loss, correct count)."""
    X, y = fnn.data.make_xor(32, seed=0)
    counts = _count_transfers(monkeypatch)
    per_run = []
    for epochs in (1, 3):
        model = _model("cuda")
        opt = fnn.Adam(model.parameters(), lr=1e-2)
        counts.clear()
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=16, verbose=0)
        per_run.append(collections.Counter(counts))
        assert all(_on_device(p.value) and _on_device(p.gradient) for p in model.parameters())
    extra = per_run[1] - per_run[0]                        # two more epochs: 4 more steps
    assert per_run[0] - per_run[1] == collections.Counter()
    assert extra == {("down", 1): 2 * 4, ("up", 16): 2 * 4}, extra


def test_short_training_run_learns_and_agrees_with_numpy(gpu):
    X, y = fnn.data.make_moons(48, noise=0.05, seed=2)
    models, histories = {}, {}
    for name in ("cuda", "numpy"):
        model = models[name] = _model(name)
        opt = fnn.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        histories[name] = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=4,
                                  batch_size=16, verbose=0, seed=0).history
    assert histories["cuda"]["loss"][-1] < 0.8 * histories["cuda"]["loss"][0]
    np.testing.assert_allclose(histories["cuda"]["loss"], histories["numpy"]["loss"], rtol=1e-4)
    assert histories["cuda"]["accuracy"] == histories["numpy"]["accuracy"]
    for got, want in zip(models["cuda"].parameters(), models["numpy"].parameters()):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-3, atol=1e-4)
    scores = fnn.predict(models["cuda"], X)
    assert isinstance(scores, np.ndarray) and scores.shape == (48, 3)
    np.testing.assert_allclose(scores, fnn.predict(models["numpy"], X), rtol=1e-3, atol=1e-4)


# --- availability and warm-up ---------------------------------------------------------------

def test_reason_and_description(gpu):
    assert gpu.on_device and gpu.description
    assert "numba-cuda" in _REASON


def test_available_without_numba_cuda(monkeypatch):
    monkeypatch.setattr(cb, "_numba_cuda_installed", lambda: False)
    assert cb.available() == (False, "numba-cuda is not installed: pip install fastnn[cuda]")


def test_import_fastnn_does_not_import_numba_cuda():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, fastnn\n"
            "assert 'numba_cuda' not in sys.modules and 'numba.cuda' not in sys.modules\n"
            "from fastnn.kernels import cuda_backend\n"
            "ok, reason = cuda_backend.available()\n"
            "assert isinstance(ok, bool) and reason, (ok, reason)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_every_kernel_runs_once_per_dtype(gpu):
    """What warmup() runs on a GPU (compiling each kernel); here it must simply work."""
    for dtype in (np.float32, np.float64):
        cb._exercise(dtype)
