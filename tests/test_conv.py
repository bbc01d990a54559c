"""Convolution and pooling: the NumPy kernels against direct loops, every backend's kernels
(native or the reference on its own primitives) against the NumPy kernels, the layers'
gradient checks on every backend, their errors for bad input."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastnn as fnn
import fastnn.kernels as K
from fastnn.kernels import numpy_conv as ref

from conftest import max_dim

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


# --- direct loops: the definitions, to check the NumPy kernels themselves ------------------------

def _direct_conv(x, w, b, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, _, kh, kw = w.shape
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.empty((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.einsum("ncij,ocij->no", patch, w.astype(np.float64)) + b
    return out


def _direct_pool(x, kernel, stride, how):
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out, arg = np.empty((n, c, oh, ow)), np.empty((n, c, oh, ow), np.int64)
    for a in range(n):
        for d in range(c):
            for i in range(oh):
                for j in range(ow):
                    win = x[a, d, i * sh:i * sh + kh, j * sw:j * sw + kw].astype(np.float64)
                    out[a, d, i, j] = win.max() if how == "max" else win.mean()
                    k = int(np.argmax(win))
                    arg[a, d, i, j] = (i * sh + k // kw) * w + j * sw + k % kw
    return out, arg


# --- shapes -------------------------------------------------------------------------------

# (N, C, H, W, O, KH, KW, stride, padding): batch 1, 1x1 kernels, stride larger than the
# kernel, padding, odd and prime sizes, a kernel as large as the padded input
CONV_CASES = [
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (0, 0)),
    (2, 3, 7, 5, 4, 1, 1, (1, 1), (0, 0)),
    (1, 2, 11, 7, 3, 2, 2, (3, 4), (0, 0)),
    (3, 2, 5, 7, 2, 3, 3, (1, 1), (1, 1)),
    (2, 3, 13, 11, 5, 5, 3, (2, 3), (2, 1)),
    (1, 1, 3, 2, 2, 5, 4, (1, 1), (1, 1)),
]
POOL_CASES = [  # (N, C, H, W, kernel, stride)
    (1, 1, 4, 4, (2, 2), (2, 2)),
    (2, 3, 7, 5, (3, 2), (1, 1)),
    (1, 2, 11, 13, (2, 3), (4, 5)),
    (3, 1, 5, 5, (5, 5), (1, 1)),
    (2, 2, 6, 7, (1, 1), (2, 3)),
]


def _data(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _run_conv(bk, x, w, b, dy, stride, padding, need_dx=True):
    dtype = x.dtype
    n, o = x.shape[0], w.shape[0]
    out = bk.empty((n, o) + dy.shape[2:], dtype)
    bk.conv2d_forward(*(bk.asarray(a) if bk.on_device else a for a in (x, w, b)), out, stride, padding)
    dx = bk.empty(x.shape, dtype) if need_dx else None
    dw, db = bk.empty(w.shape, dtype), bk.empty((o,), dtype)
    args = [bk.asarray(a) if bk.on_device else a for a in (x, w, dy)]
    bk.conv2d_backward(*args, dx, dw, db, stride, padding)
    return [bk.to_host(a) for a in (out, dw, db)] + ([bk.to_host(dx)] if need_dx else [])


def _conv_check(bk, shape, dtype, rng, strided=False, need_dx=True):
    n, c, h, wd, o, kh, kw, stride, padding = shape
    x = _data(rng, (n, c, h, wd), dtype)
    if strided:       # a non-contiguous input: every other row of a taller array, W reversed
        tall = _data(rng, (n, c, 2 * h, wd), dtype)
        x = tall[:, :, ::2, ::-1]
    w, b = _data(rng, (o, c, kh, kw), dtype), _data(rng, (o,), dtype)
    oh, ow = (h + 2 * padding[0] - kh) // stride[0] + 1, (wd + 2 * padding[1] - kw) // stride[1] + 1
    dy = _data(rng, (n, o, oh, ow), dtype)
    got = _run_conv(bk, x, w, b, dy, stride, padding, need_dx)
    want = _run_conv(K.get("numpy"), x, w, b, dy, stride, padding, need_dx)
    for g, r, name in zip(got, want, ("out", "dw", "db", "dx")):
        np.testing.assert_allclose(g, r, err_msg=f"{bk.name} {name} {shape}", **TOL[dtype])
    return want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", CONV_CASES)
def test_numpy_conv_equals_the_direct_loops(shape, dtype, rng):
    n, c, h, wd, o, kh, kw, stride, padding = shape
    x, w, b = _data(rng, (n, c, h, wd), dtype), _data(rng, (o, c, kh, kw), dtype), _data(rng, (o,), dtype)
    want = _direct_conv(x, w, b, stride, padding)
    out = np.empty(want.shape, dtype)
    ref.conv2d_forward(x, w, b, out, stride, padding)
    np.testing.assert_allclose(out, want, **TOL[dtype])
    # the backward is the adjoint of the forward: <dy, conv(x)> is linear in x and in w
    dy = _data(rng, want.shape, dtype).astype(np.float64)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    dx, dw, db = np.empty(x.shape), np.empty(w.shape), np.empty(o)
    ref.conv2d_backward(x64, w64, dy, dx, dw, db, stride, padding)
    zero = np.zeros(o)
    assert np.sum(dx * x64) == pytest.approx(np.sum(dy * _direct_conv(x64, w64, zero, stride, padding)))
    assert np.sum(dw * w64) == pytest.approx(np.sum(dy * _direct_conv(x64, w64, zero, stride, padding)))
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", CONV_CASES)
def test_conv_kernels_equal_numpy(backend, shape, dtype, rng):
    _conv_check(backend, shape, dtype, rng)
    _conv_check(backend, shape, dtype, rng, need_dx=False)
    if not backend.on_device:
        _conv_check(backend, shape, dtype, rng, strided=True)


@st.composite
def _conv_shapes(draw, limit):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, limit)), draw(st.integers(1, limit))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, h + 2 * ph)), draw(st.integers(1, w + 2 * pw))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (n, c, h, w, o, kh, kw, stride, (ph, pw))


@given(data=st.data())
def test_conv_kernels_equal_numpy_on_drawn_shapes(backend, data):
    shape = data.draw(_conv_shapes(min(max_dim(backend.name), 12)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    _conv_check(backend, shape, dtype, np.random.default_rng(7),
                strided=data.draw(st.booleans()) and not backend.on_device)


def _pool_check(bk, shape, dtype, rng, x=None):
    n, c, h, w, kernel, stride = shape
    x = _data(rng, (n, c, h, w), dtype) if x is None else x
    oh, ow = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
    dy = _data(rng, (n, c, oh, ow), dtype)
    results = {}
    for name, b in (("got", bk), ("want", K.get("numpy"))):
        dev = (lambda a: b.asarray(a)) if b.on_device else (lambda a: a)
        out, arg = b.empty((n, c, oh, ow), dtype), b.zeros((n, c, oh, ow), np.int64)
        b.maxpool2d_forward(dev(x), out, arg, kernel, stride)
        dmax = b.empty((n, c, h, w), dtype)
        b.maxpool2d_backward(dev(dy), arg, dmax)
        avg, davg = b.empty((n, c, oh, ow), dtype), b.empty((n, c, h, w), dtype)
        b.avgpool2d_forward(dev(x), avg, kernel, stride)
        b.avgpool2d_backward(dev(dy), davg, kernel, stride)
        results[name] = [b.to_host(a) for a in (out, arg, dmax, avg, davg)]
    for g, r, what in zip(results["got"], results["want"], ("max", "argmax", "dmax", "avg", "davg")):
        np.testing.assert_allclose(g, r, err_msg=f"{bk.name} {what} {shape}", **TOL[dtype])
    return x, dy, results["want"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", POOL_CASES)
def test_pool_kernels_equal_numpy_and_the_direct_loops(backend, shape, dtype, rng):
    x, dy, (out, arg, dmax, avg, davg) = _pool_check(backend, shape, dtype, rng)
    want_max, want_arg = _direct_pool(x, shape[4], shape[5], "max")
    np.testing.assert_array_equal(out, want_max.astype(dtype))
    np.testing.assert_array_equal(arg, want_arg)
    np.testing.assert_allclose(avg, _direct_pool(x, shape[4], shape[5], "avg")[0], **TOL[dtype])
    # backward: the adjoint of each forward
    n, c, h, w = x.shape
    planes = np.zeros((n * c, h * w))
    np.add.at(planes, (np.arange(n * c)[:, None], want_arg.reshape(n * c, -1)), dy.reshape(n * c, -1))
    np.testing.assert_allclose(dmax, planes.reshape(x.shape), **TOL[dtype])
    assert np.sum(davg * x, dtype=np.float64) == pytest.approx(np.sum(dy * avg, dtype=np.float64),
                                                               rel=1e-4 if dtype == np.float32 else 1e-10)
    if not backend.on_device:                   # a non-contiguous input
        tall = _data(rng, (n, c, h, 2 * w), dtype)
        _pool_check(backend, shape, dtype, rng, x=tall[:, :, :, ::2])


@given(data=st.data())
def test_pool_kernels_equal_numpy_on_drawn_shapes(backend, data):
    limit = min(max_dim(backend.name), 12)
    n, c, h, w = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)),
                  data.draw(st.integers(1, limit)), data.draw(st.integers(1, limit)))
    kernel = (data.draw(st.integers(1, h)), data.draw(st.integers(1, w)))
    stride = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    _pool_check(backend, (n, c, h, w, kernel, stride), dtype, np.random.default_rng(3))


def test_maxpool_ties_go_to_the_first_maximum_and_nan_wins(backend):
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 0.0, 3.0],
                    [np.nan, 5.0, 7.0, 7.0],
                    [5.0, np.nan, 7.0, 7.0]]]])
    bk = backend
    out, arg = bk.empty((1, 1, 2, 2), np.float64), bk.zeros((1, 1, 2, 2), np.int64)
    bk.maxpool2d_forward(bk.asarray(x), out, arg, (2, 2), (2, 2))
    host = bk.to_host(out)
    np.testing.assert_array_equal(bk.to_host(arg), [[[[1, 2], [8, 10]]]])
    assert host[0, 0, 0, 0] == 3.0 and host[0, 0, 0, 1] == 3.0 and np.isnan(host[0, 0, 1, 0])
    dx = bk.empty((1, 1, 4, 4), np.float64)
    bk.maxpool2d_backward(bk.asarray(np.ones((1, 1, 2, 2))), arg, dx)
    assert bk.to_host(dx).sum() == 4.0 and bk.to_host(dx)[0, 0, 0, 1] == 1.0


@pytest.mark.parametrize("bad", [-1, 16])
def test_maxpool_backward_refuses_an_argmax_outside_the_plane(backend, bad):
    arg = np.zeros((1, 2, 2, 2), np.int64)
    arg[0, 0, 1, 1] = bad           # 16 = the first element of the next plane: still refused
    dx = backend.empty((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"maxpool2d_backward: argmax must lie in \[0, 16\)"):
        backend.maxpool2d_backward(backend.asarray(np.ones((1, 2, 2, 2), np.float32)),
                                   backend.asarray(arg), dx)


@pytest.mark.parametrize("call,match", [
    (lambda bk: bk.conv2d_forward(np.ones((1, 2, 3, 3)), np.ones((1, 3, 2, 2)), np.ones(1),
                                  np.empty((1, 1, 2, 2)), (1, 1), (0, 0)), "x has 2 channels but w expects 3"),
    (lambda bk: bk.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 2)), np.ones(1),
                                  np.empty((1, 1, 1, 2)), (1, 1), (0, 0)), "larger than the padded input"),
    (lambda bk: bk.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.ones(1),
                                  np.empty((1, 1, 2, 2)), (0, 1), (0, 0)), "stride must be >= 1"),
    (lambda bk: bk.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.ones(1),
                                  np.empty((1, 1, 2, 2)), (1, 1), (0, -1)), "padding must be >= 0"),
    (lambda bk: bk.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), np.ones(1),
                                  np.empty((1, 1, 3, 3)), (1, 1), (0, 0)), r"out has shape \(1, 1, 3, 3\)"),
    (lambda bk: bk.maxpool2d_forward(np.ones((1, 1, 3, 3)), np.empty((1, 1, 1, 1)),
                                     np.zeros((1, 1, 1, 1), np.int32), (2, 2), (2, 2)), "argmax must be an int64"),
    (lambda bk: bk.avgpool2d_backward(np.ones((1, 1, 2, 2)), np.empty((1, 1, 3, 3)), (2, 2), (2, 2)),
     r"dy has shape \(1, 1, 2, 2\), expected \(1, 1, 1, 1\)"),
])
def test_bad_kernel_arguments_are_refused_before_the_kernel_runs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(K.get("numpy"))


# --- layers -------------------------------------------------------------------------------

GRAD_TOL = 1e-6


def _spaced(shape, seed):
    """Distinct values 0.1 apart, shuffled: no max-pool window has a tie to straddle."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.1 - 1.0).reshape(shape)


CONV_LAYER_CASES = {
    "conv": (lambda b: fnn.Conv2d(2, 3, 3, padding=1, seed=1, backend=b), (2, 2, 4, 5)),
    "conv_strided": (lambda b: fnn.Conv2d(2, 2, (3, 2), stride=(2, 1), padding=(0, 1), seed=1, backend=b),
                     (1, 2, 6, 3)),
    "conv_1x1_no_bias": (lambda b: fnn.Conv2d(3, 2, 1, bias=False, seed=1, backend=b), (2, 3, 3, 2)),
    "maxpool": (lambda b: fnn.MaxPool2d(2, backend=b), (2, 2, 4, 5)),
    "maxpool_overlapping": (lambda b: fnn.MaxPool2d((3, 2), stride=1, backend=b), (1, 2, 4, 4)),
    "avgpool": (lambda b: fnn.AvgPool2d((2, 3), stride=(1, 2), backend=b), (2, 2, 3, 5)),
    "batchnorm2d": (lambda b: fnn.BatchNorm2d(3, backend=b), (2, 3, 3, 2)),
    "unflatten_cnn": (lambda b: fnn.Sequential([fnn.Unflatten((2, 3, 2)), fnn.Conv2d(2, 2, 3, padding=1),
                                                fnn.Tanh(), fnn.Flatten(), fnn.Dense(12, 2)],
                                               backend=b, seed=0), (2, 12)),
    "cnn": (lambda b: fnn.Sequential([fnn.Conv2d(2, 3, 3, padding=1), fnn.BatchNorm2d(3), fnn.ReLU(),
                                      fnn.MaxPool2d(2), fnn.Dropout(0.3), fnn.Flatten(),
                                      fnn.Dense(12, 3)], backend=b, seed=0), (3, 2, 4, 4)),
}


@pytest.mark.parametrize("case", sorted(CONV_LAYER_CASES))
def test_conv_layer_gradcheck(backend, case):
    build, shape = CONV_LAYER_CASES[case]
    assert fnn.gradcheck(build(backend.name), _spaced(shape, seed=2)) < GRAD_TOL


def test_gradcheck_catches_a_wrong_conv_gradient(monkeypatch):
    layer = fnn.Conv2d(2, 2, 3, padding=1, seed=1, backend="numpy")
    x = _spaced((1, 2, 3, 3), 0)
    assert fnn.gradcheck(layer, x) < GRAD_TOL
    wrong = K.get("numpy").module.conv2d_backward

    def off_by_one(x, w, dy, dx, dw, db, stride, padding):
        wrong(x, w, dy, dx, dw, db, stride, padding)
        dw *= 1.01
    monkeypatch.setattr(K.get("numpy"), "conv2d_backward", off_by_one)
    assert fnn.gradcheck(layer, x) > GRAD_TOL


def test_conv2d_has_pytorch_layouts_and_accumulates_gradients():
    conv = fnn.Conv2d(3, 4, (3, 2), stride=2, padding=(1, 0), seed=0, backend="numpy", dtype="float64")
    assert conv.weight.data.shape == (4, 3, 3, 2) and conv.bias.data.shape == (4,)
    assert conv.weight.data.std() == pytest.approx(np.sqrt(2 / 18), rel=0.3)   # He: fan_in = 3*3*2
    x = _spaced((2, 3, 5, 4), 1)
    out = conv.forward(x)
    assert out.shape == (2, 4, 3, 2)
    np.testing.assert_allclose(out, _direct_conv(x, conv.weight.data, conv.bias.data, (2, 2), (1, 0)))
    dout = np.ones(out.shape)
    conv.backward(dout)
    once = conv.weight.grad.copy()
    conv.backward(dout)
    np.testing.assert_allclose(conv.weight.grad, 2 * once)
    np.testing.assert_allclose(conv.bias.grad, 2 * dout.sum(axis=(0, 2, 3)))


def test_cnn_saves_and_loads_with_its_batchnorm_statistics(tmp_path):
    model = fnn.Sequential([fnn.Conv2d(1, 3, 3, stride=(1, 2), padding=1, bias=False), fnn.BatchNorm2d(3),
                            fnn.ReLU(), fnn.AvgPool2d(2, stride=1), fnn.MaxPool2d((1, 2)), fnn.Flatten(),
                            fnn.Dense(9, 2)], backend="numpy", seed=0)
    x = _spaced((4, 1, 4, 7), 3)
    model.forward(x)                     # training mode: the running statistics move
    model.eval()
    model.save(tmp_path / "cnn.npz")
    loaded = fnn.load(tmp_path / "cnn.npz").eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert fnn.layers.layer_config(loaded[0]) == {"type": "Conv2d", "in_channels": 1, "out_channels": 3,
                                                  "kernel_size": 3, "stride": [1, 2], "padding": 1,
                                                  "bias": False}
    assert [p.name for p in loaded.parameters()][:3] == ["0.weight", "1.gamma", "1.beta"]
    assert model.summary((1, 4, 7)).count("(N, 3, 4, 4)") == 3


def test_dropout_and_flatten_take_images():
    drop = fnn.Dropout(0.5, seed=0, backend="numpy")
    x = np.ones((2, 3, 4, 5))
    out = drop.forward(x)
    assert out.shape == x.shape and set(np.unique(out)) <= {0.0, 2.0}
    np.testing.assert_array_equal(drop.backward(np.ones(x.shape)), out)
    flat = fnn.Flatten(backend="numpy")
    assert flat.forward(x).shape == (2, 60) and flat.backward(np.ones((2, 60))).shape == x.shape


@pytest.mark.parametrize("build,shape,error,match", [
    (lambda: fnn.Conv2d(1, 2, 3), (4, 9), ValueError,
     r"^Conv2d: expected a 4-D input \(batch, 1, height, width\), got shape \(4, 9\)"),
    (lambda: fnn.Conv2d(1, 2, 3), (1, 5, 5), ValueError, r"^Conv2d: expected a 4-D input .* got shape \(1, 5, 5\)"),
    (lambda: fnn.Conv2d(3, 2, 3), (2, 1, 5, 5), ValueError,
     r"^Conv2d: expected 3 input channels \(batch, 3, height, width\), got shape \(2, 1, 5, 5\)"),
    (lambda: fnn.Conv2d(1, 1, 5, padding=1), (1, 1, 2, 6), ValueError,
     r"^Conv2d: kernel \(5, 5\) is larger than the padded input \(4, 8\) of input shape \(1, 1, 2, 6\)"),
    (lambda: fnn.MaxPool2d(3), (1, 1, 2, 6), ValueError,
     r"^MaxPool2d: kernel \(3, 3\) is larger than the input \(2, 6\) of input shape \(1, 1, 2, 6\)"),
    (lambda: fnn.AvgPool2d(2), (2, 8), ValueError, r"^AvgPool2d: expected a 4-D input"),
    (lambda: fnn.BatchNorm2d(3), (2, 2, 4, 4), ValueError, r"^BatchNorm2d: expected 3 input channels"),
    (lambda: fnn.BatchNorm2d(3), (2, 3), ValueError, r"^BatchNorm2d: expected a 4-D input"),
])
def test_bad_input_is_refused_by_the_layer_before_any_kernel(backend, build, shape, error, match):
    with fnn.use_backend(backend.name):
        layer = build()
    with pytest.raises(error, match=match):
        layer.forward(np.ones(shape))


@pytest.mark.parametrize("build,error,match", [
    (lambda: fnn.Conv2d(1, 2, 0), ValueError, r"^Conv2d: kernel_size must be >= 1, got 0"),
    (lambda: fnn.Conv2d(1, 2, 3, stride=0), ValueError, r"^Conv2d: stride must be >= 1"),
    (lambda: fnn.Conv2d(1, 2, 3, stride=1.5), TypeError, r"^Conv2d: stride must be an int or a pair"),
    (lambda: fnn.Conv2d(1, 2, 3, padding=-1), ValueError, r"^Conv2d: padding must be >= 0"),
    (lambda: fnn.Conv2d(1, 2, "3"), TypeError, r"^Conv2d: kernel_size must be an int or a pair"),
    (lambda: fnn.Conv2d(1, 2, (3,)), TypeError, r"^Conv2d: kernel_size must be an int or a pair"),
    (lambda: fnn.Conv2d(1, 2, (3, True)), TypeError, r"^Conv2d: kernel_size"),
    (lambda: fnn.Conv2d(0, 2, 3), ValueError, r"^Conv2d: in_channels must be a positive integer"),
    (lambda: fnn.Conv2d(1, 2, 3, bias=None), TypeError, r"^Conv2d: bias must be True or False"),
    (lambda: fnn.MaxPool2d(2, stride=(1, 0)), ValueError, r"^MaxPool2d: stride must be >= 1"),
    (lambda: fnn.AvgPool2d(2.0), TypeError, r"^AvgPool2d: kernel_size must be an int or a pair"),
    (lambda: fnn.BatchNorm2d(0), ValueError, r"^BatchNorm2d: num_features must be a positive integer"),
])
def test_bad_arguments_are_refused_naming_the_layer(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_a_small_cnn_learns_the_digits_images():
    X, y = fnn.data.load_digits(images=True)
    assert X.shape == (1797, 1, 8, 8)
    Xtr, Xte, ytr, yte = fnn.data.train_test_split(X / 16.0, y, test_size=0.25, seed=0, stratify=True)
    model = fnn.Sequential([fnn.Conv2d(1, 8, 3, padding=1), fnn.ReLU(), fnn.MaxPool2d(2), fnn.Flatten(),
                            fnn.Dense(128, 10)], backend="numpy", seed=0)
    fnn.fit(model, fnn.SoftmaxCrossEntropy(), fnn.Adam(model.parameters(), lr=0.01), Xtr, ytr,
            epochs=10, batch_size=32, seed=0, verbose=0)
    assert fnn.evaluate(model, Xte, yte)["accuracy"] >= 0.95


def test_unflatten_reshapes_rows_and_refuses_other_widths():
    layer = fnn.Unflatten((1, 2, 3), backend="numpy")
    x = np.arange(12.0, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(layer(x), x.reshape(2, 1, 2, 3))
    np.testing.assert_array_equal(layer.backward(np.ones((2, 1, 2, 3), np.float32)), np.ones((2, 6)))
    with pytest.raises(ValueError, match=r"Unflatten: expected input \(batch, 6\) for shape \(1, 2, 3\), got \(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    for bad in ((), (0, 2), (2.0,), "12"):
        with pytest.raises(ValueError, match="Unflatten: shape"):
            fnn.Unflatten(bad)
    assert fnn.layers.layer_from_config(fnn.layers.layer_config(layer)).shape == (1, 2, 3)
