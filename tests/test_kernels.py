"""Every kernel of every backend against the NumPy reference.

Hypothesis draws the shapes (1-sized and prime dimensions included), the dtype
and the memory layout of the inputs (C order, Fortran order, or a strided view),
so a kernel that assumes contiguity or a block size is caught here.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastnn.kernels as K
from fastnn.kernels.contract import ACTIVATIONS, ContractError
from fastnn.kernels.reference_conv import CONV_KERNEL_NAMES

from conftest import close, host, max_dim, on

DTYPES = st.sampled_from([np.float32, np.float64])
LAYOUTS = st.sampled_from(["C", "F", "strided"])


def make(data, shape, dtype, low=-1.0, high=1.0, layout=None):
    """A random array of ``shape`` in the drawn layout (inputs only)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    a = rng.uniform(low, high, size=shape).astype(dtype)
    layout = layout or data.draw(LAYOUTS, label="layout")
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype) if shape else a
        big[..., ::2] = a
        return big[..., ::2]
    return np.ascontiguousarray(a)


def dims(data, backend, n, low=1):
    hi = max_dim(backend.name)
    return [data.draw(st.integers(low, hi), label=f"d{i}") for i in range(n)]




def out_like(backend, shape, dtype, init=None):
    if init is not None:
        return backend.asarray(np.array(init, dtype=dtype, order="C"))
    return backend.asarray(np.full(shape, np.nan, dtype=dtype))






def compare(backend, reference, name, inputs, outputs, dtype, kwargs=None, scale=None):
    """Run kernel ``name`` on both backends; compare outputs and return value.

    ``inputs``: positional host inputs; ``outputs``: {position: initial value or shape}
    inserted as fresh C-contiguous output arrays.
    """
    kwargs = kwargs or {}

    def build(bk, via_device):
        args = list(inputs)
        for pos in sorted(outputs):
            init = outputs[pos]
            arr = (np.array(init, dtype=dtype, order="C") if isinstance(init, np.ndarray)
                   else np.full(init, np.nan, dtype=dtype))
            args.insert(pos, arr)
        if via_device:
            args = [on(bk, a) if isinstance(a, np.ndarray) else a for a in args]
        return args

    ref_args = build(reference, False)
    got_args = build(backend, True)
    want = getattr(reference, name)(*ref_args, **kwargs)
    got = getattr(backend, name)(*got_args, **kwargs)
    if want is not None:
        assert got is not None
        close(np.float64(got), np.float64(want), dtype)
    for pos in outputs:
        close(host(backend, got_args[pos]), ref_args[pos], dtype, scale)


# --- gemm ------------------------------------------------------------------

@given(data=st.data())
def test_gemm(backend, reference, data):
    m, n, k = dims(data, backend, 3)
    dtype = data.draw(DTYPES)
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    alpha = data.draw(st.sampled_from([1.0, -0.5, 2.0]))
    beta = data.draw(st.sampled_from([0.0, 1.0, 0.25]))
    a = make(data, (k, m) if ta else (m, k), dtype)
    b = make(data, (n, k) if tb else (k, n), dtype)
    c0 = make(data, (m, n), dtype, layout="C")
    compare(backend, reference, "gemm", [a, b], {2: c0}, dtype,
            dict(trans_a=ta, trans_b=tb, alpha=alpha, beta=beta), scale=k)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 1), (13, 1, 17), (31, 37, 41), (64, 65, 3)])
def test_gemm_odd_sizes(backend, reference, shape):
    m, n, k = shape
    if backend.name in ("python", "cuda") and m * n * k > 2000:
        m, n, k = 5, 7, 3
    rng = np.random.default_rng(0)
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k))
            b = rng.standard_normal((n, k) if tb else (k, n))
            out = backend.asarray(np.zeros((m, n)))
            backend.gemm(on(backend, a), on(backend, b), out, trans_a=ta, trans_b=tb)
            want = (a.T if ta else a) @ (b.T if tb else b)
            close(host(backend, out), want, np.float64, scale=k)


# --- dense layer -------------------------------------------------------------

@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS))
def test_dense_forward(backend, reference, data, activation):
    n, i, o = dims(data, backend, 3)
    dtype = data.draw(DTYPES)
    x, w, b = make(data, (n, i), dtype), make(data, (i, o), dtype), make(data, (o,), dtype)
    compare(backend, reference, "dense_forward", [x, w, b], {3: (n, o)}, dtype,
            dict(activation=activation, alpha=0.1), scale=i)


@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS), with_dx=st.booleans(),
       alias=st.booleans())
def test_dense_backward(backend, reference, data, activation, with_dx, alias):
    n, i, o = dims(data, backend, 3)
    dtype = data.draw(DTYPES)
    x, w, b = make(data, (n, i), dtype), make(data, (i, o), dtype), make(data, (o,), dtype)
    y = np.empty((n, o), dtype)
    reference.dense_forward(x, w, b, y, activation, 0.1)
    dy = make(data, (n, o), dtype, layout="C")
    results = {}
    for bk in (reference, backend):
        dy_b = bk.asarray(dy.copy())
        dz = dy_b if alias else bk.asarray(np.zeros((n, o), dtype))
        dx = bk.asarray(np.zeros((n, i), dtype)) if with_dx else None
        dw, db = bk.asarray(np.zeros((i, o), dtype)), bk.asarray(np.zeros((o,), dtype))
        bk.dense_backward(on(bk, x), on(bk, w), on(bk, y), dy_b, dz, dx, dw, db, activation, 0.1)
        results[bk.name] = [host(bk, a) for a in (dz, dw, db) + ((dx,) if with_dx else ())]
    for got, want in zip(results[backend.name], results["numpy"]):
        close(got, want, dtype, scale=max(n, o))


# --- element-wise activations -------------------------------------------------

ELEMENTWISE = [("relu", ()), ("leaky_relu", (0.1,)), ("sigmoid", ()), ("tanh", ())]


@pytest.mark.parametrize("act,extra", ELEMENTWISE)
@given(data=st.data(), ndim=st.integers(1, 3))
def test_activation_forward_backward(backend, reference, data, act, extra, ndim):
    shape = tuple(dims(data, backend, ndim))
    dtype = data.draw(DTYPES)
    x = make(data, shape, dtype, -8, 8)
    compare(backend, reference, f"{act}_forward", [x] + list(extra), {1: shape}, dtype)
    y = np.empty(shape, dtype)
    getattr(reference, f"{act}_forward")(np.ascontiguousarray(x), y, *extra)
    dy = make(data, shape, dtype)
    compare(backend, reference, f"{act}_backward", [y, dy] + list(extra), {2: shape}, dtype)


def test_sigmoid_extremes(backend):
    x = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], np.float32)
    out = backend.asarray(np.zeros_like(x))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        backend.sigmoid_forward(on(backend, x), out)
    got = host(backend, out)
    assert np.all(np.isfinite(got)) and got[0] == 0.0 and got[-1] == 1.0 and got[3] == 0.5


# --- softmax and losses ---------------------------------------------------------

@given(data=st.data())
def test_softmax(backend, reference, data):
    n, c = dims(data, backend, 2)
    dtype = data.draw(DTYPES)
    x = make(data, (n, c), dtype, -20, 20)
    compare(backend, reference, "softmax_forward", [x], {1: (n, c)}, dtype)
    y = np.empty((n, c), dtype)
    reference.softmax_forward(x, y)
    compare(backend, reference, "softmax_backward", [y, make(data, (n, c), dtype)], {2: (n, c)}, dtype)


@given(data=st.data(), big=st.booleans())
def test_softmax_cross_entropy(backend, reference, data, big):
    n, c = dims(data, backend, 2)
    dtype = data.draw(DTYPES)
    scale = 1e4 if big else 5.0
    logits = make(data, (n, c), dtype, -scale, scale)
    labels = np.random.default_rng(n * c).integers(0, c, n).astype(np.int64)
    compare(backend, reference, "softmax_cross_entropy_forward", [logits, labels], {2: (n, c)}, dtype)
    probs = np.empty((n, c), dtype)
    loss = reference.softmax_cross_entropy_forward(logits, labels, probs)
    assert np.isfinite(loss)
    compare(backend, reference, "softmax_cross_entropy_backward", [probs, labels], {2: (n, c)}, dtype)


@pytest.mark.parametrize("loss", ["mse", "bce_with_logits"])
@given(data=st.data())
def test_elementwise_losses(backend, reference, data, loss):
    n, d = dims(data, backend, 2)
    dtype = data.draw(DTYPES)
    y = make(data, (n, d), dtype, -30, 30)
    t = make(data, (n, d), dtype, 0, 1)
    compare(backend, reference, f"{loss}_forward", [y, t], {}, dtype)
    compare(backend, reference, f"{loss}_backward", [y, t], {2: (n, d)}, dtype)


@given(data=st.data())
def test_count_correct(backend, reference, data):
    n, c = dims(data, backend, 2)
    scores = make(data, (n, c), np.float32)
    labels = np.random.default_rng(n + c).integers(0, c, n).astype(np.int64)
    want = reference.count_correct(scores, labels)
    assert backend.count_correct(on(backend, scores), on(backend, labels)) == want


# --- dropout, residual add, batch norm --------------------------------------------

@given(data=st.data())
def test_dropout_and_add(backend, reference, data):
    n, d = dims(data, backend, 2)
    dtype = data.draw(DTYPES)
    x, dy = make(data, (n, d), dtype), make(data, (n, d), dtype)
    mask = (np.random.default_rng(n).random((n, d)) > 0.3).astype(dtype) / dtype(0.7)
    compare(backend, reference, "dropout_forward", [x, mask], {2: (n, d)}, dtype)
    compare(backend, reference, "dropout_backward", [mask, dy], {2: (n, d)}, dtype)
    compare(backend, reference, "add", [x, dy], {2: (n, d)}, dtype)


@given(data=st.data())
def test_batchnorm(backend, reference, data):
    n, d = dims(data, backend, 2)
    dtype = data.draw(DTYPES)
    x = make(data, (n, d), dtype, -3, 3)
    gamma, beta = make(data, (d,), dtype, 0.5, 1.5), make(data, (d,), dtype)
    rm, rv = make(data, (d,), dtype, layout="C"), make(data, (d,), dtype, 0.5, 2, layout="C")
    compare(backend, reference, "batchnorm_forward", [x, gamma, beta],
            {3: (n, d), 4: (n, d), 5: (d,), 6: rm, 7: rv}, dtype, dict(momentum=0.1, eps=1e-3))
    compare(backend, reference, "batchnorm_inference", [x, gamma, beta, rm, rv, 1e-3],
            {6: (n, d)}, dtype)
    out, xhat, invstd = np.empty((n, d), dtype), np.empty((n, d), dtype), np.empty(d, dtype)
    reference.batchnorm_forward(x, gamma, beta, out, xhat, invstd, rm.copy(), rv.copy(), 0.1, 1e-3)
    dy = make(data, (n, d), dtype)
    compare(backend, reference, "batchnorm_backward", [xhat, gamma, invstd, dy],
            {4: (n, d), 5: (d,), 6: (d,)}, dtype, scale=n)


# --- optimizers and reductions ----------------------------------------------------

@given(data=st.data(), momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 1e-2]))
def test_sgd_update(backend, reference, data, momentum, nesterov, wd):
    shape = tuple(dims(data, backend, data.draw(st.integers(1, 2))))
    dtype = data.draw(DTYPES)
    p, g, v = (make(data, shape, dtype, layout="C") for _ in range(3))
    results = {}
    for bk in (reference, backend):
        pp, vv = bk.asarray(p.copy()), bk.asarray(v.copy())
        for _ in range(3):
            bk.sgd_update(pp, on(bk, g), vv, 0.1, momentum, wd, nesterov)
        results[bk.name] = (host(bk, pp), host(bk, vv))
    for got, want in zip(results[backend.name], results["numpy"]):
        close(got, want, dtype)


@given(data=st.data(), decoupled=st.booleans(), wd=st.sampled_from([0.0, 1e-2]))
def test_adam_update(backend, reference, data, decoupled, wd):
    shape = tuple(dims(data, backend, data.draw(st.integers(1, 2))))
    dtype = data.draw(DTYPES)
    p, g = make(data, shape, dtype, layout="C"), make(data, shape, dtype)
    results = {}
    for bk in (reference, backend):
        pp = bk.asarray(p.copy())
        m, v = bk.asarray(np.zeros(shape, dtype)), bk.asarray(np.zeros(shape, dtype))
        for step in (1, 2, 3):
            bk.adam_update(pp, on(bk, g), m, v, 1e-2, 0.9, 0.999, 1e-8, wd, step, decoupled)
        results[bk.name] = (host(bk, pp), host(bk, m), host(bk, v))
    for got, want in zip(results[backend.name], results["numpy"]):
        close(got, want, dtype)


@given(data=st.data())
def test_reductions_and_in_place(backend, reference, data):
    shape = tuple(dims(data, backend, data.draw(st.integers(1, 3))))
    dtype = data.draw(DTYPES)
    x = make(data, shape, dtype)
    for name in ("sum_squares", "abs_sum"):
        close(np.float64(getattr(backend, name)(on(backend, x))), getattr(reference, name)(x), np.float64)
    w, g = make(data, shape, dtype), make(data, shape, dtype, layout="C")
    compare(backend, reference, "penalty_grad", [w, 1e-2, 1e-3], {1: g}, dtype)
    compare(backend, reference, "scale_", [0.5], {0: g}, dtype)


# --- NaN and infinities: exactly where the reference has them --------------------------------

SPECIAL = (np.nan, np.inf, -np.inf)


def specials(rng, shape, dtype, low=-2.0, high=2.0, count=3):
    """Uniform values with NaN, +inf and -inf (in that order) at ``count`` random places."""
    a = rng.uniform(low, high, shape)
    flat = a.reshape(-1)
    where = rng.choice(flat.size, min(count, flat.size), replace=False)
    flat[where] = [SPECIAL[i % 3] for i in range(where.size)]
    return a.astype(dtype)


def _special_cases():
    """name -> builder(rng, dtype) -> (inputs, outputs, kwargs) for compare()."""
    n, i, o = 5, 4, 6
    S = specials

    def act_pair(act, extra):
        def forward(rng, dt):
            return [S(rng, (n, o), dt, -8, 8)] + list(extra), {1: (n, o)}, {}

        def backward(rng, dt):
            y = np.empty((n, o), dt)
            getattr(K.get("numpy"), f"{act}_forward")(S(rng, (n, o), dt, -8, 8), y, *extra)
            return [y, S(rng, (n, o), dt)] + list(extra), {2: (n, o)}, {}
        return {f"{act}_forward": forward, f"{act}_backward": backward}

    cases = {
        "gemm": lambda rng, dt: ([S(rng, (i, n), dt), S(rng, (o, i), dt)], {2: S(rng, (n, o), dt)},
                                 dict(trans_a=True, trans_b=True, alpha=-0.5, beta=0.25)),
        "gemm-beta0": lambda rng, dt: ([S(rng, (n, i), dt), S(rng, (i, o), dt)], {2: (n, o)}, {}),
        "gemm-alpha0": lambda rng, dt: ([S(rng, (n, i), dt), S(rng, (i, o), dt)], {2: (n, o)},
                                        dict(alpha=0.0)),
        "softmax_forward": lambda rng, dt: ([S(rng, (n, o), dt, -20, 20, count=4)], {1: (n, o)}, {}),
        "softmax_backward": lambda rng, dt: ([S(rng, (n, o), dt, 0, 1), S(rng, (n, o), dt)], {2: (n, o)}, {}),
        "softmax_cross_entropy_forward": lambda rng, dt: (
            [S(rng, (n, o), dt, -20, 20, count=2), rng.integers(0, o, n)], {2: (n, o)}, {}),
        "softmax_cross_entropy_backward": lambda rng, dt: (
            [S(rng, (n, o), dt, 0, 1), rng.integers(0, o, n)], {2: (n, o)}, {}),
        "mse_forward": lambda rng, dt: ([S(rng, (n, o), dt), S(rng, (n, o), dt)], {}, {}),
        "mse_backward": lambda rng, dt: ([S(rng, (n, o), dt), S(rng, (n, o), dt)], {2: (n, o)}, {}),
        "bce_with_logits_forward": lambda rng, dt: ([S(rng, (n, o), dt, -30, 30), S(rng, (n, o), dt, 0, 1)],
                                                    {}, {}),
        "bce_with_logits_backward": lambda rng, dt: ([S(rng, (n, o), dt, -30, 30), S(rng, (n, o), dt, 0, 1)],
                                                     {2: (n, o)}, {}),
        "dropout_forward": lambda rng, dt: ([S(rng, (n, o), dt), S(rng, (n, o), dt)], {2: (n, o)}, {}),
        "dropout_backward": lambda rng, dt: ([S(rng, (n, o), dt), S(rng, (n, o), dt)], {2: (n, o)}, {}),
        "add": lambda rng, dt: ([S(rng, (n, o), dt), S(rng, (n, o), dt)], {2: (n, o)}, {}),
        "batchnorm_forward": lambda rng, dt: (
            [S(rng, (n, o), dt, count=2), S(rng, (o,), dt, 0.5, 1.5, 1), S(rng, (o,), dt, count=1)],
            {3: (n, o), 4: (n, o), 5: (o,), 6: S(rng, (o,), dt, count=1), 7: S(rng, (o,), dt, 0.5, 2, 1)},
            dict(momentum=0.1, eps=1e-3)),
        "batchnorm_inference": lambda rng, dt: (
            [S(rng, (n, o), dt, count=2), S(rng, (o,), dt, count=1), S(rng, (o,), dt, count=1),
             S(rng, (o,), dt, count=1), S(rng, (o,), dt, 0.5, 2, 3), 1e-3], {6: (n, o)}, {}),
        "batchnorm_backward": lambda rng, dt: (
            [S(rng, (n, o), dt, count=2), S(rng, (o,), dt, count=1), S(rng, (o,), dt, 0.5, 2, 1),
             S(rng, (n, o), dt, count=2)], {4: (n, o), 5: (o,), 6: (o,)}, {}),
        "sum_squares": lambda rng, dt: ([S(rng, (n, o), dt)], {}, {}),
        "sum_squares-inf": lambda rng, dt: ([np.array([np.inf, 1.0, -np.inf], dt)], {}, {}),
        "abs_sum": lambda rng, dt: ([S(rng, (n, o), dt)], {}, {}),
        "abs_sum-inf": lambda rng, dt: ([np.array([[-np.inf, 1.0]], dt)], {}, {}),
        "scale_": lambda rng, dt: ([0.5], {0: S(rng, (n, o), dt)}, {}),
        "scale_-by-0": lambda rng, dt: ([0.0], {0: S(rng, (n, o), dt)}, {}),
    }
    for act in ACTIVATIONS:
        cases[f"dense_forward-{act}"] = lambda rng, dt, act=act: (
            [S(rng, (n, i), dt), S(rng, (i, o), dt), S(rng, (o,), dt, count=1)], {3: (n, o)},
            dict(activation=act, alpha=0.1))
    for act, extra in ELEMENTWISE:
        cases.update(act_pair(act, extra))
    for l1, l2 in ((0.1, 0.0), (0.0, 0.1), (0.1, 0.01), (0.0, 0.0)):
        cases[f"penalty_grad-{l1}-{l2}"] = lambda rng, dt, l1=l1, l2=l2: (
            [S(rng, (n, o), dt), l1, l2], {1: S(rng, (n, o), dt)}, {})
    return cases


SPECIAL_CASES = _special_cases()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(SPECIAL_CASES))
def test_nan_and_inf_land_where_the_reference_puts_them(backend, reference, case, dtype):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    inputs, outputs, kwargs = SPECIAL_CASES[case](rng, dtype)
    with np.errstate(all="ignore"):
        compare(backend, reference, case.split("-")[0], inputs, outputs, dtype, kwargs)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_backward_with_nan_and_inf(backend, reference, activation, dtype):
    rng = np.random.default_rng(7)
    n, i, o = 5, 4, 6
    x, w = specials(rng, (n, i), dtype), specials(rng, (i, o), dtype)
    y, dy = np.empty((n, o), dtype), specials(rng, (n, o), dtype)
    with np.errstate(all="ignore"):
        reference.dense_forward(x, w, specials(rng, (o,), dtype, count=1), y, activation, 0.1)
        results = {}
        for bk in (reference, backend):
            outs = [bk.asarray(np.zeros(shape, dtype)) for shape in ((n, o), (n, i), (i, o), (o,))]
            bk.dense_backward(on(bk, x), on(bk, w), on(bk, y), on(bk, dy), *outs, activation, 0.1)
            results[bk.name] = [host(bk, a) for a in outs]
    for got, want in zip(results[backend.name], results["numpy"]):
        close(got, want, dtype)


@pytest.mark.parametrize("wd", [0.0, 1e-2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizers_with_nan_and_inf(backend, reference, wd, dtype):
    rng = np.random.default_rng(8)
    shape = (4, 5)
    p, g, v, m = (specials(rng, shape, dtype) for _ in range(4))
    v2 = specials(rng, shape, dtype, 0, 2)
    results = {}
    with np.errstate(all="ignore"):
        for bk in (reference, backend):
            arrays = [bk.asarray(a.copy()) for a in (p, v, p, m, v2)]
            bk.sgd_update(arrays[0], on(bk, g), arrays[1], 0.1, 0.9, wd, True)
            bk.sgd_update(arrays[0], on(bk, g), arrays[1], 0.1, 0.0, wd, False)
            bk.adam_update(arrays[2], on(bk, g), arrays[3], arrays[4], 1e-2, 0.9, 0.999, 1e-8, wd, 2, False)
            bk.adam_update(arrays[2], on(bk, g), arrays[3], arrays[4], 1e-2, 0.9, 0.999, 1e-8, wd, 3, True)
            results[bk.name] = [host(bk, a) for a in arrays]
    for got, want in zip(results[backend.name], results["numpy"]):
        close(got, want, dtype)


def test_count_correct_takes_the_first_nan_as_the_maximum(backend, reference):
    """numpy.argmax's rule on every backend: the first NaN of a row wins, else the first maximum."""
    nan, inf = np.nan, np.inf
    scores = np.array([[0, nan, 1], [nan, 5, nan], [1, 2, inf], [3, 3, 1], [-inf, -inf, -inf],
                       [inf, 7, nan], [2, 2, 2], [nan, nan, nan]], np.float32)
    want = np.argmax(scores, axis=1)
    for row, best in zip(scores, want):
        for label in range(3):
            got = backend.count_correct(on(backend, row[None].copy()), on(backend, np.array([label])))
            assert got == (label == best), (row, label, best)
    assert backend.count_correct(on(backend, scores), on(backend, want)) == len(scores)


@pytest.mark.parametrize("bad", [-1, 3, 2**40])
def test_labels_outside_the_classes_are_refused_by_the_kernel_that_reads_them(backend, bad):
    """The contract checks labels' dtype and shape; their range is checked once, by the
    kernel that indexes rows with them, before it reads one (a huge label would read far
    past the array otherwise). count_correct reads no row by label: it counts it wrong."""
    logits = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 1.0]], np.float32)
    labels = np.array([1, bad], np.int64)
    probs = out_like(backend, logits.shape, np.float32)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_forward: labels must lie in \[0, 3\)"):
        backend.softmax_cross_entropy_forward(on(backend, logits), on(backend, labels), probs)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_backward: labels must lie in \[0, 3\)"):
        backend.softmax_cross_entropy_backward(on(backend, logits), on(backend, labels),
                                               out_like(backend, logits.shape, np.float32))
    assert backend.count_correct(on(backend, logits), on(backend, labels)) == 1


# --- one accumulation rule for reductions to a scalar --------------------------------------------

def test_scalar_reductions_convert_to_float64_first(backend, reference):
    """float32 inputs whose terms overflow float32: every backend gives the float64 value."""
    f32 = np.float32
    cases = [
        ("mse_forward", (np.array([[3e38]], f32), np.zeros((1, 1), f32)), 9e76),
        ("mse_forward", (np.array([[3e38, -3e38]], f32), np.array([[-3e38, 3e38]], f32)), 3.6e77),
        ("bce_with_logits_forward", (np.array([[3e38]], f32), np.array([[-1.0]], f32)), 6e38),
        ("sum_squares", (np.array([3e38, 3e38], f32),), 18e76),
        ("abs_sum", (np.array([3e38, -3e38], f32),), 6e38),
    ]
    for name, args, want in cases:
        got = getattr(backend, name)(*[on(backend, a) for a in args])
        assert np.isclose(got, want, rtol=1e-6), (name, got, want)
        assert np.isclose(getattr(reference, name)(*args), want, rtol=1e-6)
    logits, labels = np.array([[3e38, -3e38], [0.0, 0.0]], f32), np.array([1, 0])
    probs = out_like(backend, (2, 2), f32)
    with np.errstate(over="ignore"):                # logits - max overflows to -inf: harmless
        loss = backend.softmax_cross_entropy_forward(on(backend, logits), on(backend, labels), probs)
    assert np.isclose(loss, (6e38 + np.log(2)) / 2, rtol=1e-6), loss
    close(host(backend, probs), [[1, 0], [0.5, 0.5]], f32)


# --- the contract protects compiled code -------------------------------------------

def _f32(*shape):
    return np.zeros(shape, np.float32)


BAD_CALLS = [
    ("gemm", lambda: (_f32(3, 4), _f32(5, 2), _f32(3, 2))),                       # inner dims
    ("gemm", lambda: (_f32(3, 4), _f32(4, 2), _f32(2, 2))),                       # out too small
    ("gemm", lambda: (_f32(3, 4), _f32(4, 2), _f32(3, 4)[:, ::2])),               # out strided
    ("gemm", lambda: (_f32(3, 4), np.zeros((4, 2)), _f32(3, 2))),                 # mixed dtypes
    ("dense_forward", lambda: (_f32(2, 5), _f32(4, 3), _f32(3), _f32(2, 3))),      # x width
    ("dense_forward", lambda: (_f32(2, 4), _f32(4, 3), _f32(2), _f32(2, 3))),      # bias length
    ("dense_backward", lambda: (_f32(2, 4), _f32(4, 3), _f32(2, 3), _f32(2, 3), _f32(2, 3),
                                _f32(2, 4), _f32(3, 4), _f32(3))),                # dw transposed
    ("relu_forward", lambda: (_f32(10), _f32(9))),
    ("softmax_cross_entropy_forward", lambda: (_f32(2, 3), np.array([0.0, 1.0]), _f32(2, 3))),
    ("softmax_cross_entropy_backward", lambda: (_f32(3, 3), np.array([0, 1]), _f32(3, 3))),
    ("mse_forward", lambda: (_f32(2, 3), _f32(3, 2))),
    ("count_correct", lambda: (_f32(4, 3), np.array([0, 1, 2]))),
    ("batchnorm_forward", lambda: (_f32(4, 3), _f32(3), _f32(2), _f32(4, 3), _f32(4, 3), _f32(3),
                                   _f32(3), _f32(3), 0.1, 1e-5)),
    ("sgd_update", lambda: (_f32(5), _f32(6), _f32(5), 0.1, 0.9, 0.0, False)),
    ("adam_update", lambda: (_f32(5), _f32(5), _f32(5), _f32(4), 0.1, 0.9, 0.999, 1e-8, 0.0, 1, False)),
    ("adam_update", lambda: (_f32(5), _f32(5), _f32(5), _f32(5), 0.1, 0.9, 0.999, 1e-8, 0.0, 0, False)),
]


@pytest.mark.parametrize("name,args", BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_bad_arguments_never_reach_the_kernel(backend, name, args):
    """Shapes that would read or write out of bounds raise before any backend code runs."""
    args = args()
    if backend.on_device:
        args = [backend.asarray(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                for a in args]
    with pytest.raises((ContractError, TypeError)):
        getattr(backend, name)(*args)


def test_every_backend_implements_the_whole_contract():
    for name in K.available():
        module = K.get(name).module
        missing = [k for k in K.contract.KERNELS if not callable(getattr(module, k, None))
                   and not (k in CONV_KERNEL_NAMES and name not in ("numpy", "cython", "numba"))]  # references
        assert not missing, f"{name} lacks {missing}"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        K.get("fortran")
