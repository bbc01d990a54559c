"""The Numba convolution and pooling kernels (kernels/numba_conv.py): native on the numba
backend, equal to the NumPy kernels on their threaded paths and with several blocks of
images, and an argmax outside its plane refused before anything is written."""

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels import numpy_conv as ref
from fastnn.kernels.reference_conv import CONV_KERNEL_NAMES

pytestmark = pytest.mark.skipif("numba" not in K.available(), reason="numba is not available")

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture
def nb():
    from fastnn.kernels import numba_conv
    return numba_conv


def test_numba_runs_the_conv_and_pool_kernels_natively(nb):
    backend = K.get("numba")
    assert {k: backend.sources[k] for k in CONV_KERNEL_NAMES} == dict.fromkeys(CONV_KERNEL_NAMES, "native")
    for name in CONV_KERNEL_NAMES:
        assert getattr(backend.module, name) is getattr(nb, name)


@pytest.fixture
def threaded_blocks(monkeypatch, nb):
    """Every loop on its threaded path (2 threads) and convolution in blocks of 2 images."""
    import numba
    from fastnn.kernels import numba_backend, numba_util
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    monkeypatch.setattr(numba_util, "PAR_MIN_ELEMS", 1)
    monkeypatch.setattr(numba_util, "PAR_MIN_FMAS", 1)
    before = numba.get_num_threads()
    numba_backend.set_num_threads(2)
    yield
    numba_backend.set_num_threads(before)


def _conv_both(x, w, b, stride, padding, rng):
    n, o = x.shape[0], w.shape[0]
    oh = (x.shape[2] + 2 * padding[0] - w.shape[2]) // stride[0] + 1
    ow = (x.shape[3] + 2 * padding[1] - w.shape[3]) // stride[1] + 1
    dy = rng.uniform(-1, 1, (n, o, oh, ow)).astype(x.dtype)
    results = []
    for module in (ref, K.get("numba").module):
        out = np.full(dy.shape, np.nan, x.dtype)           # NaN: a value left unwritten shows
        dx, dw, db = (np.full(s, np.nan, x.dtype) for s in (x.shape, w.shape, (o,)))
        module.conv2d_forward(x, w, b, out, stride, padding)
        module.conv2d_backward(x, w, dy, dx, dw, db, stride, padding)
        results.append((out, dx, dw, db))
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [((5, 3, 9, 8), (4, 3, 3, 3), (1, 1), (1, 1)),
                                  ((7, 2, 11, 7), (3, 2, 5, 2), (2, 3), (2, 0))])
def test_threaded_paths_and_several_blocks_equal_numpy(threaded_blocks, nb, monkeypatch, dtype, case):
    xs, ws, stride, padding = case
    rng = np.random.default_rng(sum(xs))
    x, w = rng.uniform(-1, 1, xs).astype(dtype), rng.uniform(-1, 1, ws).astype(dtype)
    b = rng.uniform(-1, 1, ws[0]).astype(dtype)
    oh = (xs[2] + 2 * padding[0] - ws[2]) // stride[0] + 1
    ow = (xs[3] + 2 * padding[1] - ws[3]) // stride[1] + 1
    per_image = oh * ow * max(ws[1] * ws[2] * ws[3], ws[0]) * x.itemsize
    monkeypatch.setattr(nb, "BLOCK_BYTES", 2 * per_image)   # blocks of 2 images, the last of 1
    assert nb._block(xs[0], oh * ow, ws[1] * ws[2] * ws[3], ws[0], x.itemsize) == 2
    want, got = _conv_both(x, w, b, stride, padding, rng)
    for g, r, what in zip(got, want, ("out", "dx", "dw", "db")):
        np.testing.assert_allclose(g, r, err_msg=what, **TOL[dtype])

    x[0, 1, 2, 3] = np.nan
    x[1, 0, 4, 4] = 3.0
    x[1, 0, 4, 5] = 3.0                                       # a tie: the first one wins
    outs, pooled = {}, (xs[0], xs[1], (xs[2] - 3) // 2 + 1, (xs[3] - 2) // 2 + 1)
    for module in (ref, nb):
        out, arg = np.empty(pooled, dtype), np.empty(pooled, np.int64)
        module.maxpool2d_forward(x, out, arg, (3, 2), (2, 2))
        dx = np.full(x.shape, np.nan, dtype)
        module.maxpool2d_backward(out, arg, dx)
        avg, davg = np.empty_like(out), np.full(x.shape, np.nan, dtype)
        module.avgpool2d_forward(x, avg, (3, 2), (2, 2))
        module.avgpool2d_backward(out, davg, (3, 2), (2, 2))
        outs[module] = (out, arg, dx, avg, davg)
    for g, r, what in zip(outs[nb], outs[ref], ("max", "argmax", "dmax", "avg", "davg")):
        np.testing.assert_allclose(g, r, err_msg=what, **TOL[dtype])


@pytest.mark.parametrize("bad", [-1, 16, 1 << 40])
def test_an_argmax_outside_its_plane_is_refused_before_anything_is_written(nb, bad):
    dy = np.ones((2, 3, 2, 2), np.float32)
    argmax = np.zeros((2, 3, 2, 2), np.int64)
    argmax[1, 2, 1, 0] = bad
    dx = np.full((2, 3, 4, 4), 7.0, np.float32)
    with pytest.raises(ValueError, match=rf"maxpool2d_backward: argmax must lie in \[0, 16\), "
                                         rf"got {bad} at flat position 22"):
        nb.maxpool2d_backward(dy, argmax, dx)
    assert (dx == 7.0).all()
    argmax[1, 2, 1, 0] = 15
    nb.maxpool2d_backward(dy, argmax[:, :, ::-1][:, :, ::-1], dx)   # strided indices are read too
    assert dx.sum() == dy.sum() and dx[1, 2].flat[15] == 1.0
