"""Compiled Numba kernels of the tier-1 primitives (``kernels/primitives.py``).

``numba_backend`` hands these C-contiguous arrays only (element-wise work as flat 1-D
views), so each kernel compiles once per dtype. Op names map to the small integer codes
below (``UNARY_CODES`` / ``BINARY_CODES``); the branch on the code is taken
once per piece, outside the loop. ``count`` says into how many pieces to split the work
(``numba_util.pieces``): 1 runs serially with no prange region.

IEEE results as NumPy gives them: ``error_model="numpy"`` makes 1/0 an infinity instead
of a ZeroDivisionError, and no fast-math flag that assumes finite numbers is used
(log(0) = -inf, sqrt(-1) = NaN, NaN propagates through maximum/minimum and max).
Kernels that index rows with ``indices`` scan them first and return the position of the
first one outside [0, rows) without writing anything, so no index can make them read or
write out of bounds; -1 means all were valid and the work is done.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_util import FASTMATH, piece
from .primitives import BINARY_CODES, BINARY_OPS, UNARY_CODES, UNARY_OPS

# the op codes of primitives.py, as module constants Numba compiles in
COPY, EXP, LOG, LOG1P, SQRT, ABS, NEG, RECIPROCAL, SQUARE, SIGN = (UNARY_CODES[op] for op in UNARY_OPS)
ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM = (BINARY_CODES[op] for op in BINARY_OPS)


# --- element-wise maps over flat views ---------------------------------------------------

@njit(cache=True, error_model="numpy")
def _unary_span(op, x, out, lo, hi):
    one, zero = out.dtype.type(1), out.dtype.type(0)
    if op == COPY:
        for i in range(lo, hi):
            out[i] = x[i]
    elif op == EXP:
        for i in range(lo, hi):
            out[i] = math.exp(x[i])
    elif op == LOG:
        for i in range(lo, hi):
            out[i] = math.log(x[i])
    elif op == LOG1P:
        for i in range(lo, hi):
            out[i] = math.log1p(x[i])
    elif op == SQRT:
        for i in range(lo, hi):
            out[i] = math.sqrt(x[i])
    elif op == ABS:
        for i in range(lo, hi):
            out[i] = abs(x[i])
    elif op == NEG:
        for i in range(lo, hi):
            out[i] = -x[i]
    elif op == RECIPROCAL:
        for i in range(lo, hi):
            out[i] = one / x[i]
    elif op == SQUARE:
        for i in range(lo, hi):
            out[i] = x[i] * x[i]
    elif op == SIGN:                       # sign(NaN) is NaN, as np.sign
        for i in range(lo, hi):
            v = x[i]
            out[i] = one if v > 0 else (-one if v < 0 else (v if v != v else zero))


@njit(cache=True, parallel=True, error_model="numpy")
def unary(op, x, out, count):
    """out = op(x) element by element; x, out 1-D of one length (out may be x)."""
    n = out.shape[0]
    if count == 1:
        _unary_span(op, x, out, 0, n)
        return
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _unary_span(op, x, out, lo, hi)


@njit(cache=True, error_model="numpy")
def _binary_span(op, a, b, out, lo, hi):
    if op == ADD:
        for i in range(lo, hi):
            out[i] = a[i] + b[i]
    elif op == SUB:
        for i in range(lo, hi):
            out[i] = a[i] - b[i]
    elif op == MUL:
        for i in range(lo, hi):
            out[i] = a[i] * b[i]
    elif op == DIV:
        for i in range(lo, hi):
            out[i] = a[i] / b[i]
    elif op == MAXIMUM:                    # a NaN on either side wins, as np.maximum
        for i in range(lo, hi):
            p, q = a[i], b[i]
            out[i] = p if (p >= q) | (p != p) else q
    elif op == MINIMUM:
        for i in range(lo, hi):
            p, q = a[i], b[i]
            out[i] = p if (p <= q) | (p != p) else q


@njit(cache=True, parallel=True, error_model="numpy")
def binary(op, a, b, out, count):
    """out = op(a, b) element by element; 1-D of one length (out may be a or b)."""
    n = out.shape[0]
    if count == 1:
        _binary_span(op, a, b, out, 0, n)
        return
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _binary_span(op, a, b, out, lo, hi)


# --- reductions along one axis of a (N, D) array ---------------------------------------

@njit(cache=True, fastmath=FASTMATH)
def _row_sums(x, out, lo, hi):
    for i in range(lo, hi):
        row = x[i]                          # a 1-D row: 2-D indexing here would gather
        s = 0.0                             # float64 whatever the dtype, rounded once
        for j in range(row.shape[0]):
            s += np.float64(row[j])
        out[i] = s


@njit(cache=True, fastmath=FASTMATH)
def _column_sums(x, out, acc, lo, hi):
    for j in range(lo, hi):
        acc[j] = 0.0
    for i in range(x.shape[0]):
        row = x[i]
        for j in range(lo, hi):
            acc[j] += np.float64(row[j])
    for j in range(lo, hi):
        out[j] = acc[j]


@njit(cache=True, parallel=True)
def reduce_sum(x, axis, out, count):
    """out = x.sum(axis) in float64; threads split rows (axis 1) or columns (axis 0)."""
    n, d = x.shape
    if axis == 1:
        if count == 1:
            _row_sums(x, out, 0, n)
            return
        for c in prange(count):
            lo, hi = piece(n, count, c)
            _row_sums(x, out, lo, hi)
        return
    acc = np.empty(d)
    if count == 1:
        _column_sums(x, out, acc, 0, d)
        return
    for c in prange(count):
        lo, hi = piece(d, count, c)
        _column_sums(x, out, acc, lo, hi)


@njit(cache=True)
def _bigger(m, v):
    """max(m, v), NaN if either is: once a running max is NaN nothing replaces it. ``|``,
    not ``or``: no branch, so loops of it vectorise."""
    return v if (v > m) | (v != v) else m


_LANES = 16


@njit(cache=True)
def _row_maxes(x, out, lo, hi):
    # One running max carried through a row is not vectorised (NaN makes it order-
    # dependent for LLVM): _LANES running maxima walk the row, combined at its end.
    lanes = np.empty(_LANES, x.dtype)
    for i in range(lo, hi):
        row = x[i]
        d, m, j = row.shape[0], row[0], 1
        if d >= 2 * _LANES:
            for k in range(_LANES):
                lanes[k] = row[k]
            for j0 in range(_LANES, d - _LANES + 1, _LANES):
                for k in range(_LANES):
                    lanes[k] = _bigger(lanes[k], row[j0 + k])
            j = d - (d - _LANES) % _LANES
            m = lanes[0]
            for k in range(1, _LANES):
                m = _bigger(m, lanes[k])
        for k in range(j, d):
            m = _bigger(m, row[k])
        out[i] = m


@njit(cache=True)
def _column_maxes(x, out, lo, hi):
    first = x[0]
    for j in range(lo, hi):
        out[j] = first[j]
    for i in range(1, x.shape[0]):
        row = x[i]
        for j in range(lo, hi):
            out[j] = _bigger(out[j], row[j])


@njit(cache=True, parallel=True)
def reduce_max(x, axis, out, count):
    """out = x.max(axis), NaN where the line holds one; the reduced axis is non-empty."""
    n, d = x.shape
    lines = n if axis == 1 else d
    if (d if axis == 1 else n) == 0:       # refused by the contract; never read x[0] here
        return
    if count == 1:
        if axis == 1:
            _row_maxes(x, out, 0, n)
        else:
            _column_maxes(x, out, 0, d)
        return
    for c in prange(count):
        lo, hi = piece(lines, count, c)
        if axis == 1:
            _row_maxes(x, out, lo, hi)
        else:
            _column_maxes(x, out, lo, hi)


# --- row gather and scatter-add ------------------------------------------------------------

@njit(cache=True)
def first_bad_index(indices, rows):
    """Position of the first index outside [0, rows), or -1."""
    for i in range(indices.shape[0]):
        if indices[i] < 0 or indices[i] >= rows:
            return i
    return -1


@njit(cache=True)
def _gather_span(x, indices, out, lo, hi):
    for i in range(lo, hi):
        src, dst = x[indices[i]], out[i]
        for j in range(dst.shape[0]):
            dst[j] = src[j]


@njit(cache=True, parallel=True)
def gather_rows(x, indices, out, count):
    """out[i] = x[indices[i]]; returns -1, or the first bad position (nothing written)."""
    bad = first_bad_index(indices, x.shape[0])
    if bad >= 0:
        return bad
    n = out.shape[0]
    if count == 1:
        _gather_span(x, indices, out, 0, n)
        return -1
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _gather_span(x, indices, out, lo, hi)
    return -1


@njit(cache=True)
def _scatter_columns(src, indices, out, lo, hi):
    for i in range(src.shape[0]):           # in order, so repeated indices add up as np.add.at
        s, dst = src[i], out[indices[i]]
        for j in range(lo, hi):
            dst[j] += s[j]


@njit(cache=True, parallel=True)
def scatter_add_rows(src, indices, out, count):
    """out[indices[i]] += src[i]; threads split the columns, so no two write one element.
    Returns -1, or the first bad position (out untouched)."""
    bad = first_bad_index(indices, out.shape[0])
    if bad >= 0:
        return bad
    d = out.shape[1]
    if count == 1:
        _scatter_columns(src, indices, out, 0, d)
        return -1
    for c in prange(count):
        lo, hi = piece(d, count, c)
        _scatter_columns(src, indices, out, lo, hi)
    return -1
