# Cython entry points of the tier-1 primitives (prims.c; kernels/primitives.py), included
# by _kernels.pyx after its helpers. As there, sizes and op codes are checked before the GIL
# is released, and the C code checks every index itself, so no call can make it read or
# write out of bounds.

# op name -> the C enum code, in the order of primitives.py UNARY_OPS / BINARY_OPS
UNARY_CODES = {"copy": FNN_U_COPY, "exp": FNN_U_EXP, "log": FNN_U_LOG, "log1p": FNN_U_LOG1P,
               "sqrt": FNN_U_SQRT, "abs": FNN_U_ABS, "neg": FNN_U_NEG,
               "reciprocal": FNN_U_RECIPROCAL, "square": FNN_U_SQUARE, "sign": FNN_U_SIGN}
BINARY_CODES = {"add": FNN_B_ADD, "sub": FNN_B_SUB, "mul": FNN_B_MUL, "div": FNN_B_DIV,
                "maximum": FNN_B_MAXIMUM, "minimum": FNN_B_MINIMUM}


cdef inline int _op_code(int op, int count, str kernel) except -1:
    if op < 0 or op >= count:
        raise ValueError(f"{kernel}: unknown op code {op}")
    return op


cdef inline int _axis(int axis, str kernel) except -1:
    if axis != 0 and axis != 1:
        raise ValueError(f"{kernel}: axis must be 0 or 1, got {axis}")
    return axis


def unary(int op, const real[::1] x, real[::1] out):
    """out = op(x) element-wise (op: a UNARY_CODES value); flat, equal lengths; out may be x."""
    _op_code(op, FNN_U_COUNT, "unary")
    _same(out.shape[0], x.shape[0], "unary: out vs x")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_unary(dt, op, x.shape[0], &x[0], &out[0])


def binary(int op, const real[::1] a, const real[::1] b, real[::1] out):
    """out = op(a, b) element-wise (op: a BINARY_CODES value); flat, equal lengths."""
    _op_code(op, FNN_B_COUNT, "binary")
    _same(b.shape[0], a.shape[0], "binary: b vs a")
    _same(out.shape[0], a.shape[0], "binary: out vs a")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_binary(dt, op, a.shape[0], &a[0], &b[0], &out[0])


def reduce_sum(const real[:, ::1] x, int axis, real[::1] out):
    """out = x.sum(axis), accumulated in float64; x (N, D), out (D,) or (N,)."""
    _axis(axis, "reduce_sum")
    _same(out.shape[0], x.shape[1 - axis], "reduce_sum: out vs the kept axis of x")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_reduce_sum(dt, axis, x.shape[0], x.shape[1], &x[0, 0], &out[0])


def reduce_max(const real[:, ::1] x, int axis, real[::1] out):
    """out = x.max(axis), NaN where a line holds one; the reduced axis must be non-empty."""
    _axis(axis, "reduce_max")
    _same(out.shape[0], x.shape[1 - axis], "reduce_max: out vs the kept axis of x")
    if x.shape[axis] == 0:
        raise ValueError(f"reduce_max: no elements along axis {axis} to take the max of")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_reduce_max(dt, axis, x.shape[0], x.shape[1], &x[0, 0], &out[0])


cdef inline int _indices_ok(str kernel, fnn_idx bad, const int64_t[::1] indices,
                            Py_ssize_t rows) except -1:
    if bad >= 0:
        raise ValueError(f"{kernel}: indices must lie in [0, {rows}), got {indices[bad]} at {bad}")
    return 0


def gather_rows(const real[:, ::1] x, const int64_t[::1] indices, real[:, ::1] out):
    """out[i] = x[indices[i]]; x (R, D), out (N, D). ValueError for an index outside
    [0, R) (out is then not written)."""
    _same(indices.shape[0], out.shape[0], "gather_rows: indices vs rows of out")
    _same(out.shape[1], x.shape[1], "gather_rows: columns of out vs x")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef fnn_idx bad
    with nogil:
        bad = fnn_gather_rows(dt, x.shape[0], x.shape[1], &x[0, 0], indices.shape[0],
                              &indices[0], &out[0, 0])
    _indices_ok("gather_rows", bad, indices, x.shape[0])


def scatter_add_rows(const real[:, ::1] src, const int64_t[::1] indices, real[:, ::1] out):
    """out[indices[i]] += src[i] in place (repeated indices accumulate); src (N, D), out
    (R, D). ValueError for an index outside [0, R) (out is then untouched)."""
    _same(indices.shape[0], src.shape[0], "scatter_add_rows: indices vs rows of src")
    _same(out.shape[1], src.shape[1], "scatter_add_rows: columns of out vs src")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef fnn_idx bad
    with nogil:
        bad = fnn_scatter_add_rows(dt, src.shape[0], src.shape[1], &src[0, 0], &indices[0],
                                   out.shape[0], &out[0, 0])
    _indices_ok("scatter_add_rows", bad, indices, out.shape[0])


def gemm_batched(const real[:, :, :] a, const real[:, :, :] b, real[:, :, ::1] out,
                 bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out[i] = alpha op(a[i]) op(b[i]) + beta out[i]; a, b any strides (whole elements)."""
    cdef Py_ssize_t size = sizeof(real), batch = a.shape[0]
    cdef Py_ssize_t bsa = _stride(a.strides[0], size, batch)
    cdef Py_ssize_t rsa = _stride(a.strides[1], size, a.shape[1])
    cdef Py_ssize_t csa = _stride(a.strides[2], size, a.shape[2])
    cdef Py_ssize_t bsb = _stride(b.strides[0], size, batch)
    cdef Py_ssize_t rsb = _stride(b.strides[1], size, b.shape[1])
    cdef Py_ssize_t csb = _stride(b.strides[2], size, b.shape[2])
    cdef Py_ssize_t m = a.shape[1], k = a.shape[2], kb = b.shape[1], n = b.shape[2]
    if trans_a:
        m, k, rsa, csa = k, m, csa, rsa
    if trans_b:
        kb, n, rsb, csb = n, kb, csb, rsb
    _same(b.shape[0], batch, "gemm_batched: matrices in b vs a")
    if k != kb:
        raise ValueError(f"gemm_batched: inner dimensions differ: op(a[i]) is ({m}, {k}), "
                         f"op(b[i]) is ({kb}, {n})")
    if out.shape[0] != batch or out.shape[1] != m or out.shape[2] != n:
        raise ValueError(f"gemm_batched: out has shape ({out.shape[0]}, {out.shape[1]}, "
                         f"{out.shape[2]}), expected ({batch}, {m}, {n})")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_gemm_batched(dt, batch, m, n, k, alpha, &a[0, 0, 0], bsa, rsa, csa,
                         &b[0, 0, 0], bsb, rsb, csb, beta, &out[0, 0, 0], m * n, n)
