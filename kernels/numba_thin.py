"""GEMM for thin shapes: ``out = act(alpha op(a) op(b) + beta out + bias)`` when op(a) is a
single row, op(b) a single column, or the output has only a few elements.

The packed GEMM of ``numba_gemm`` computes whole MR x NR micro-tiles (5 x 16): for a
1 x K times K x 1 product 79 of its 80 accumulators multiply padding, and every KC
chunk of K is packed and handed out again. Here each output element is a dot product
(both operands unit-stride along K: a vectorised reduction) or, when the rows of op(b)
(or the columns of op(a)) are the contiguous direction, a sequence of axpys along them.
Big reductions are split over threads by chunks of K, each thread summing into its own
partial result; the partials are added in a fixed order, so the result does not depend
on how the threads were scheduled.
"""

import numpy as np
from numba import njit, prange

from .numba_util import FASTMATH, LINEAR, activate

THIN_MAX_ELEMENTS = 16    # outputs up to this many elements count as thin (any shape)
MIN_CHUNK = 4096          # fewest multiply-adds of K a thread gets


def is_thin(m, n):
    """True for the shapes this module handles (op(a) m x k, op(b) k x n)."""
    return m == 1 or n == 1 or m * n <= THIN_MAX_ELEMENTS


@njit(cache=True, fastmath=FASTMATH)
def _dot(a, ao, ainc, b, bo, binc, lo, hi):
    s = a.dtype.type(0)
    if ainc == 1 and binc == 1:
        x, y = a[ao + lo:ao + hi], b[bo + lo:bo + hi]   # unit stride: a vectorised reduction
        for p in range(hi - lo):
            s += x[p] * y[p]
    else:
        for p in range(lo, hi):
            s += a[ao + p * ainc] * b[bo + p * binc]
    return s


@njit(cache=True, fastmath=FASTMATH)
def _partial(a, rsa, csa, b, rsb, csb, m, n, lo, hi, acc):
    """acc[i*n + j] = sum over p in [lo, hi) of op(a)[i, p] op(b)[p, j] (a, b flat)."""
    for q in range(m * n):
        acc[q] = 0
    dot = (csa == 1 and rsb == 1) or m * n <= THIN_MAX_ELEMENTS
    if not dot and csb == 1 and (n >= m or rsa != 1):
        for i in range(m):                       # rows of op(b) are contiguous: axpy along j
            row = acc[i * n:(i + 1) * n]
            for p in range(lo, hi):
                s = a[i * rsa + p * csa]
                brow = b[p * rsb:p * rsb + n]
                for j in range(n):
                    row[j] += s * brow[j]
    elif not dot and rsa == 1:
        for j in range(n):                       # columns of op(a) are contiguous: axpy along i
            for p in range(lo, hi):
                s = b[p * rsb + j * csb]
                acol = a[p * csa:p * csa + m]
                for i in range(m):
                    acc[i * n + j] += acol[i] * s
    else:
        for i in range(m):
            for j in range(n):
                acc[i * n + j] = _dot(a, i * rsa, csa, b, j * csb, rsb, lo, hi)


@njit(cache=True, parallel=True)
def thin(a, rsa, csa, b, rsb, csb, k, out, alpha, beta, bias, act, slope, count):
    """out (m, n) = act(alpha op(a) op(b) + beta out + bias); a, b flat C-contiguous data
    with op(a)[i, p] = a[i*rsa + p*csa], op(b)[p, j] = b[p*rsb + j*csb]; ``count`` pieces
    of K (1: serial, no prange region). beta == 0 never reads out."""
    m, n = out.shape
    dtype = out.dtype
    if count <= 1:
        parts = np.empty((1, m * n), dtype)
        _partial(a, rsa, csa, b, rsb, csb, m, n, 0, k, parts[0])
    else:
        parts = np.empty((count, m * n), dtype)
        for c in prange(count):
            _partial(a, rsa, csa, b, rsb, csb, m, n, (k * c) // count, (k * (c + 1)) // count, parts[c])
    alpha, beta, slope = dtype.type(alpha), dtype.type(beta), dtype.type(slope)
    one = dtype.type(1)
    has_bias = bias.shape[0] > 0
    for i in range(m):
        for j in range(n):
            s = parts[0, i * n + j]
            for c in range(1, parts.shape[0]):   # partial sums in a fixed order
                s += parts[c, i * n + j]
            v = alpha * s if beta == 0 else alpha * s + beta * out[i, j]
            if has_bias:
                v += bias[j]
            out[i, j] = v if act == LINEAR else activate(v, act, slope, one)


def pieces(m, n, k, threads, min_fmas):
    """How many chunks of K to split a thin product into (1: serial)."""
    if threads <= 1 or m * n * k < min_fmas:
        return 1
    return max(1, min(threads, k // MIN_CHUNK))


def strides(x, trans):
    """(row stride, column stride) of op(x) in elements, for C-contiguous 2-D x."""
    return (1, x.shape[1]) if trans else (x.shape[1], 1)
