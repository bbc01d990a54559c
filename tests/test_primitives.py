"""The tier-1 primitives (kernels/primitives.py) of every backend against the NumPy
reference: every op of unary/binary on zeros, signs, infinities and NaN, reductions along
both axes (NaN lines included), row gather/scatter-add with repeated and refused indices,
batched GEMM with every transpose. Inputs come C-ordered, Fortran-ordered and strided.
Shapes stay tiny: the python backend and the CUDA simulator run every element in Python.
"""

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels.primitives import BINARY_OPS, PRIMITIVES, UNARY_OPS

from conftest import SMALL, close, host, max_dim, on

# Infinities and NaN are the point here: NumPy (the reference) and the simulator warn on them.

DTYPES = [np.float32, np.float64]
LAYOUTS = ["C", "F", "strided"]
INF, NAN = np.inf, np.nan
# zeros of both signs, +-1, values about which log1p/sqrt/reciprocal change, overflow of
# exp and of squares in float32 and float64, infinities and NaN
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, -0.999, 3e-30, 1e30, 80.0, 100.0,
           705.0, 800.0, -800.0, INF, -INF, NAN, 7.25]
PAIRED = [0.0, -0.0, 1.0, -2.0, 0.5, INF, -INF, NAN]     # binary: every pair of these


def layout(a, kind):
    """``a`` as a C-ordered, Fortran-ordered or strided (every other column) array."""
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return np.ascontiguousarray(a)




def output(bk, init):
    """A fresh C-contiguous output (on the device for a GPU backend) holding ``init``."""
    return bk.asarray(np.array(init, order="C")) if bk.on_device else np.array(init, order="C")






# --- element-wise ---------------------------------------------------------------------

def special(dtype, shape=(4, 5)):
    return np.array(SPECIAL, np.float64).astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary(backend, reference, op, dtype):
    x = special(dtype)
    want = np.empty_like(x)
    reference.unary(op, x, want)
    for kind in LAYOUTS:
        out = output(backend, np.full(x.shape, 12.5, dtype))
        backend.unary(op, on(backend, layout(x, kind)), out)
        close(host(backend, out), want, dtype)
    inplace = output(backend, x)                    # out = x itself
    backend.unary(op, inplace, inplace)
    close(host(backend, inplace), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary(backend, reference, op, dtype):
    a, b = np.meshgrid(np.array(PAIRED, dtype), np.array(PAIRED, dtype), indexing="ij")
    a, b = a.copy(), b.copy()
    want = np.empty_like(a)
    reference.binary(op, a, b, want)
    for ka, kb in [("C", "C"), ("F", "strided"), ("strided", "F")]:
        out = output(backend, np.full(a.shape, 12.5, dtype))
        backend.binary(op, on(backend, layout(a, ka)), on(backend, layout(b, kb)), out)
        close(host(backend, out), want, dtype)
    for first in (True, False):                     # out = a, then out = b
        inplace = output(backend, a if first else b)
        other = on(backend, b if first else a)
        backend.binary(op, *((inplace, other) if first else (other, inplace)), inplace)
        close(host(backend, inplace), want, dtype)
    same = on(backend, a)                           # a and b the same array
    want_same = np.empty_like(a)
    reference.binary(op, a, a, want_same)
    out = output(backend, np.zeros_like(a))
    backend.binary(op, same, same, out)
    close(host(backend, out), want_same, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_random_shapes(backend, reference, dtype):
    rng = np.random.default_rng(7)
    hi = max_dim(backend.name)
    for shape in [(1,), (hi,), (2, 3, hi), (0, 3), ()]:
        x = rng.uniform(-3, 3, shape).astype(dtype)
        y = rng.uniform(0.1, 3, shape).astype(dtype)
        for op, args in [("exp", (x,)), ("log1p", (y,)), ("sign", (x,))]:
            want, out = np.empty_like(x), output(backend, np.zeros_like(x))
            reference.unary(op, *args, want)
            backend.unary(op, *[on(backend, a) for a in args], out)
            close(host(backend, out), want, dtype)
        want, out = np.empty_like(x), output(backend, np.zeros_like(x))
        reference.binary("div", x, y, want)
        backend.binary("div", on(backend, x), on(backend, y), out)
        close(host(backend, out), want, dtype)


# --- reductions along an axis -------------------------------------------------------------

def lines(dtype, n, d, rng):
    """An (n, d) array with NaN rows and columns, +-inf in one row and a row of -inf."""
    x = rng.uniform(-2, 2, (n, d)).astype(dtype)
    if n >= 4 and d >= 3:
        x[1, d - 1] = NAN                   # last element of a row, a column too
        x[2, 0] = NAN                       # first element of a row and of a column
        x[3, 1], x[3, 2] = INF, -INF        # inf - inf: NaN sum, max inf
    if n >= 5:
        x[4] = -INF
    if n >= 6 and d >= 3:
        x[5, d // 2] = NAN                  # mid-row: inside any vector blocking of a row
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["reduce_sum", "reduce_max"])
@pytest.mark.parametrize("axis", [0, 1])
def test_reductions(backend, reference, kernel, axis, dtype):
    rng = np.random.default_rng(3)
    hi = max_dim(backend.name)
    long_line = (1, 300) if axis == 1 else (300, 2)     # longer than a block of threads
    shapes = [(6, 5), (1, 1), (1, 7), (7, 1), (hi, 3), (3, hi), long_line]
    if backend.name not in SMALL:
        shapes += [(hi, hi), (2 * hi, 1), (1, 3 * hi)]
    for n, d in shapes:
        x = lines(dtype, n, d, rng)
        want = np.empty(x.shape[1 - axis], dtype)
        getattr(reference, kernel)(x, axis, want)
        for kind in LAYOUTS if (n, d) == (6, 5) or backend.name not in SMALL else ["C"]:
            out = output(backend, np.full(want.shape, 12.5, dtype))
            getattr(backend, kernel)(on(backend, layout(x, kind)), axis, out)
            close(host(backend, out), want, dtype, scale=n if axis == 0 else d)


@pytest.mark.parametrize("axis", [0, 1])
def test_reductions_of_empty_arrays(backend, reference, axis):
    for shape in [(0, 3), (3, 0), (0, 0)]:
        x = np.zeros(shape, np.float32)
        want = np.full(shape[1 - axis], 12.5, np.float32)
        reference.reduce_sum(x, axis, want)
        out = output(backend, np.full(want.shape, 12.5, np.float32))
        backend.reduce_sum(on(backend, x), axis, out)
        close(host(backend, out), want, np.float32)
        if shape[axis]:                     # a max needs elements along the reduced axis
            out = output(backend, np.full(want.shape, 12.5, np.float32))
            backend.reduce_max(on(backend, x), axis, out)
            assert host(backend, out).shape == (0,)
        else:
            out = output(backend, np.zeros(shape[1 - axis], np.float32))
            with pytest.raises(ValueError, match="reduce_max"):
                backend.reduce_max(on(backend, x), axis, out)


# --- rows by index ------------------------------------------------------------------

REPEATED = np.array([4, 0, 4, 4, 2, 0, 1], np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_rows(backend, reference, dtype):
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (5, 3)).astype(dtype)
    x[2, 1] = NAN
    want = np.empty((len(REPEATED), 3), dtype)
    reference.gather_rows(x, REPEATED, want)
    spaced = np.zeros(2 * len(REPEATED), np.int64)
    spaced[::2] = REPEATED
    for kind, indices in [("C", REPEATED), ("F", REPEATED), ("strided", spaced[::2])]:
        out = output(backend, np.full(want.shape, 12.5, dtype))
        backend.gather_rows(on(backend, layout(x, kind)), on(backend, indices), out)
        close(host(backend, out), want, dtype)


def test_gather_and_scatter_of_no_rows(backend):
    x = np.ones((5, 3))
    out = output(backend, x)
    backend.scatter_add_rows(on(backend, np.zeros((0, 3))), np.zeros(0, np.int64), out)
    np.testing.assert_array_equal(host(backend, out), x)
    backend.gather_rows(on(backend, x), np.zeros(0, np.int64), output(backend, np.zeros((0, 3))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_add_rows_accumulates_repeated_indices(backend, reference, dtype):
    rng = np.random.default_rng(6)
    src = rng.uniform(-1, 1, (len(REPEATED), 3)).astype(dtype)
    start = rng.uniform(-1, 1, (5, 3)).astype(dtype)
    want = start.copy()
    reference.scatter_add_rows(src, REPEATED, want)
    assert np.allclose(want[4], start[4] + src[0] + src[2] + src[3])
    spaced = np.zeros(2 * len(REPEATED), np.int64)
    spaced[::2] = REPEATED
    for kind, indices in [("C", REPEATED), ("F", spaced[::2]), ("strided", REPEATED)]:
        out = output(backend, start)
        backend.scatter_add_rows(on(backend, layout(src, kind)), on(backend, indices), out)
        close(host(backend, out), want, dtype)


BAD = [(-1, 2), (5, 2), (2**40, 2), (-(2**40), 2), (np.iinfo(np.int64).min, 2),
       (np.iinfo(np.int64).max, 2)]


@pytest.mark.parametrize("bad, at", BAD)
def test_indices_outside_the_rows_are_refused(backend, bad, at):
    x = np.arange(15, dtype=np.float64).reshape(5, 3)
    indices = np.array([0, 4, bad, 1], np.int64)
    message = rf"indices must lie in \[0, 5\), got {bad} at {at}"
    with pytest.raises(ValueError, match="gather_rows: " + message):
        backend.gather_rows(on(backend, x), on(backend, indices), output(backend, np.zeros((4, 3))))
    out = output(backend, x)
    with pytest.raises(ValueError, match="scatter_add_rows: " + message):
        backend.scatter_add_rows(on(backend, np.ones((4, 3))), on(backend, indices), out)
    np.testing.assert_array_equal(host(backend, out), x)      # left as it was


def test_first_bad_index_is_named_and_columnless_rows_are_checked(backend):
    indices = np.array([0, 9, -1, 9], np.int64)
    with pytest.raises(ValueError, match=r"got 9 at 1"):
        backend.gather_rows(on(backend, np.zeros((5, 2))), on(backend, indices),
                            output(backend, np.zeros((4, 2))))
    with pytest.raises(ValueError, match=r"got 9 at 1"):       # rows of no columns
        backend.gather_rows(on(backend, np.zeros((5, 0))), on(backend, indices),
                            output(backend, np.zeros((4, 0))))
    with pytest.raises(ValueError, match=r"got 9 at 1"):
        backend.scatter_add_rows(on(backend, np.zeros((4, 0))), on(backend, indices),
                                 output(backend, np.zeros((5, 0))))
    with pytest.raises(ValueError, match=r"\[0, 0\), got 0 at 0"):    # no rows at all
        backend.gather_rows(on(backend, np.zeros((0, 2))), on(backend, indices),
                            output(backend, np.zeros((4, 2))))
    with pytest.raises(TypeError, match="int64"):
        backend.gather_rows(on(backend, np.zeros((5, 2))), indices.astype(np.int32),
                            output(backend, np.zeros((4, 2))))


# --- batched GEMM --------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_batched(backend, reference, batch, trans_a, trans_b):
    rng = np.random.default_rng(batch)
    m, k, n = 3, 4, 5
    for dtype in DTYPES:
        a = rng.standard_normal((batch,) + ((k, m) if trans_a else (m, k))).astype(dtype)
        b = rng.standard_normal((batch,) + ((n, k) if trans_b else (k, n))).astype(dtype)
        start = rng.standard_normal((batch, m, n)).astype(dtype)
        for (alpha, beta), kinds in [((1.0, 0.0), ("C", "C")), ((0.5, 2.0), ("F", "strided")),
                                     ((-1.5, 0.0), ("strided", "F"))]:
            want = start.copy()
            reference.gemm_batched(a, b, want, trans_a, trans_b, alpha, beta)
            init = np.full_like(start, NAN) if beta == 0 else start   # beta 0 never reads out
            out = output(backend, init)
            backend.gemm_batched(on(backend, layout(a, kinds[0])), on(backend, layout(b, kinds[1])),
                                 out, trans_a, trans_b, alpha, beta)
            close(host(backend, out), want, dtype, scale=k)


def test_gemm_batched_empty_shapes(backend, reference):
    for batch, m, k, n in [(0, 2, 3, 4), (2, 3, 0, 4), (2, 3, 4, 0), (2, 0, 3, 4)]:
        a, b = np.ones((batch, m, k)), np.ones((batch, k, n))
        want = np.full((batch, m, n), 2.0)
        reference.gemm_batched(a, b, want, beta=0.5)
        out = output(backend, np.full((batch, m, n), 2.0))
        backend.gemm_batched(on(backend, a), on(backend, b), out, beta=0.5)
        close(host(backend, out), want, np.float64)


# --- threaded code paths and native kernels -------------------------------------------------

def test_threaded_paths(backend, reference, monkeypatch):
    """Large enough that the numba and cython kernels split the work over threads."""
    if backend.name not in ("numba", "cython"):
        pytest.skip("threads split this work on the numba and cython backends only")
    if backend.name == "numba":
        from fastnn.kernels import numba_util
        monkeypatch.setattr(numba_util, "PAR_MIN_ELEMS", 64)
    rng = np.random.default_rng(9)
    x = rng.uniform(-2, 2, (300, 520)).astype(np.float32)
    x[7, 300] = NAN
    calls = [("unary", ("exp", x)), ("unary", ("sqrt", x)), ("binary", ("maximum", x, x[::-1])),
             ("reduce_sum", (x, 0)), ("reduce_sum", (x, 1)), ("reduce_max", (x, 0)),
             ("reduce_max", (x, 1))]
    for name, args in calls:
        shape = x.shape if name in ("unary", "binary") else (x.shape[1 - args[1]],)
        want, got = np.empty(shape, x.dtype), np.empty(shape, x.dtype)
        getattr(reference, name)(*args, want)
        getattr(backend, name)(*args, got)
        close(got, want, x.dtype, scale=300)
    indices = rng.integers(0, 300, 400).astype(np.int64)
    want, got = np.empty((400, 520), x.dtype), np.empty((400, 520), x.dtype)
    reference.gather_rows(x, indices, want)
    backend.gather_rows(x, indices, got)
    close(got, want, x.dtype)
    src = rng.uniform(-1, 1, (400, 520)).astype(np.float32)
    want, got = x.copy(), x.copy()
    reference.scatter_add_rows(src, indices, want)
    backend.scatter_add_rows(src, indices, got)
    close(got, want, x.dtype)


@pytest.mark.parametrize("name", ["numba", "cython", "cuda"])
def test_compiled_backends_define_every_primitive_natively(name):
    ok, reason = K.status()[name]
    if not ok:
        pytest.skip(f"{name} is not available here: {reason}")
    missing = [k for k in PRIMITIVES if not callable(getattr(K.get(name).module, k, None))]
    assert not missing, f"{name} lacks native {missing}"


def test_op_tables_name_every_op_of_the_contract():
    """Numba and CUDA take their op codes from primitives.py; the C enum repeats them and must
    agree: every name there, in the contract's order, each code once."""
    from fastnn.kernels import cython_backend, numba_primitives
    tables = [numba_primitives]
    if cython_backend.available()[0]:
        tables.append(cython_backend._k)
        assert list(cython_backend._k.UNARY_CODES.values()) == list(range(len(UNARY_OPS)))
    try:
        from fastnn.kernels import cuda_primitives       # imports without a GPU too
        tables.append(cuda_primitives)
    except ImportError:                                  # no numba-cuda installed
        pass
    from fastnn.kernels import primitives
    for table in tables:
        assert table.UNARY_CODES == primitives.UNARY_CODES and table.BINARY_CODES == primitives.BINARY_CODES
        assert list(table.UNARY_CODES) == list(UNARY_OPS), table
        assert list(table.BINARY_CODES) == list(BINARY_OPS), table
        assert len(set(table.UNARY_CODES.values())) == len(UNARY_OPS), table
        assert len(set(table.BINARY_CODES.values())) == len(BINARY_OPS), table
