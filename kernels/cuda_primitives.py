"""CUDA kernels (numba-cuda) of the tier-1 primitives (``kernels/primitives.py``).

Only ``cuda_backend`` imports this module, once numba-cuda is known to be installed; its
wrappers choose the launch shapes. Op names map to the codes below (``UNARY_CODES`` /
``BINARY_CODES``). Launch shapes:

* ``unary`` / ``binary``: 1-D grid-stride loops over flat, C-ordered views.
* ``line_sums`` / ``line_maxes``: each line (a row for axis 1, a column for axis 0) is
  reduced by ``width`` threads of a block (a power of two <= THREADS, about the line's
  length, so short lines share a block) striding along it, then a tree in shared
  memory. Sums accumulate in float64 and are rounded once; the order is fixed, so
  results are deterministic.
* ``gather_rows``: one thread per output element; ``scatter_add_rows``: one thread per
  column, adding the rows in order (no atomics: repeated indices sum as ``np.add.at``
  does, deterministically). Both check every index they use and never touch memory
  outside the arrays; a bad index is reported through ``bad[0]`` (its position).

IEEE results as NumPy gives them. The simulator runs ``math.log``/``exp``/``log1p``/
``sqrt`` as Python's, which raise where the GPU returns -inf, inf or NaN, so those are
wrapped in device functions that give the IEEE value for the cases Python refuses.
"""

import functools
import math

import numpy as np
from numba import cuda

from .cuda_kernels import THREADS
from .primitives import BINARY_CODES, BINARY_OPS, UNARY_CODES, UNARY_OPS

# the op codes of primitives.py, as module constants Numba compiles in
COPY, EXP, LOG, LOG1P, SQRT, ABS, NEG, RECIPROCAL, SQUARE, SIGN = (UNARY_CODES[op] for op in UNARY_OPS)
ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM = (BINARY_CODES[op] for op in BINARY_OPS)

_EXP_SPLIT = 700.0     # exp(v) = exp(v - 700) exp(700) above this: an overflow is then inf


@functools.cache
def build(dtype):
    """The primitive kernels for one float dtype, as a namespace."""
    T = np.dtype(dtype).type
    ZERO, ONE, NAN, INF = T(0), T(1), T(np.nan), T(np.inf)
    SPLIT = T(_EXP_SPLIT)
    with np.errstate(over="ignore"):
        EXP_SPLIT = T(np.exp(_EXP_SPLIT))     # inf in float32: every v > 700 overflows there

    @cuda.jit(device=True)
    def exp(v):
        if v > SPLIT:                         # inf for anything above 1400 too
            return math.exp(min(v - SPLIT, SPLIT)) * EXP_SPLIT
        return math.exp(v)

    @cuda.jit(device=True)
    def log(v):
        return math.log(v) if v > ZERO else (-INF if v == ZERO else NAN)

    @cuda.jit(device=True)
    def log1p(v):
        return math.log1p(v) if v > -ONE else (-INF if v == -ONE else NAN)

    @cuda.jit(device=True)
    def sqrt(v):
        return math.sqrt(v) if v >= ZERO else NAN

    @cuda.jit(device=True)
    def op1(kind, v):
        if kind == COPY:
            return v
        if kind == EXP:
            return exp(v)
        if kind == LOG:
            return log(v)
        if kind == LOG1P:
            return log1p(v)
        if kind == SQRT:
            return sqrt(v)
        if kind == ABS:
            return abs(v)
        if kind == NEG:
            return -v
        if kind == RECIPROCAL:
            return ONE / v
        if kind == SQUARE:
            return v * v
        return ONE if v > ZERO else (-ONE if v < ZERO else (v if v != v else ZERO))   # SIGN

    @cuda.jit(device=True)
    def bigger(a, b):
        """max(a, b), NaN if either is (as np.maximum)."""
        return b if (b > a or b != b) else a

    @cuda.jit(device=True)
    def op2(kind, a, b):
        if kind == ADD:
            return a + b
        if kind == SUB:
            return a - b
        if kind == MUL:
            return a * b
        if kind == DIV:
            return a / b
        if kind == MAXIMUM:
            return bigger(a, b)
        return a if (a <= b or a != a) else b                 # MINIMUM

    @cuda.jit
    def unary(kind, x, out):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = op1(kind, x[i])

    @cuda.jit
    def binary(kind, a, b, out):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = op2(kind, a[i], b[i])

    @cuda.jit
    def line_sums(x, axis, width, out):
        """out[line] = the float64 sum of line ``line`` of x, rounded once."""
        cache = cuda.shared.array(THREADS, np.float64)
        t = cuda.threadIdx.x
        lane = t % width
        line = cuda.blockIdx.x * (cuda.blockDim.x // width) + t // width
        length = x.shape[1] if axis == 1 else x.shape[0]
        acc = 0.0
        if line < out.shape[0]:
            for k in range(lane, length, width):
                acc += np.float64(x[line, k] if axis == 1 else x[k, line])
        cache[t] = acc
        cuda.syncthreads()
        half = width // 2
        while half > 0:                     # every thread reaches each syncthreads
            if lane < half:
                cache[t] += cache[t + half]
            cuda.syncthreads()
            half //= 2
        if lane == 0 and line < out.shape[0]:
            out[line] = T(cache[t])

    @cuda.jit
    def line_maxes(x, axis, width, out):
        """out[line] = the max of line ``line`` of x (non-empty), NaN if it holds one;
        -inf stands in for the lanes past the end of a line."""
        cache = cuda.shared.array(THREADS, T)
        t = cuda.threadIdx.x
        lane = t % width
        line = cuda.blockIdx.x * (cuda.blockDim.x // width) + t // width
        length = x.shape[1] if axis == 1 else x.shape[0]
        acc = -INF
        if line < out.shape[0]:
            for k in range(lane, length, width):
                acc = bigger(acc, x[line, k] if axis == 1 else x[k, line])
        cache[t] = acc
        cuda.syncthreads()
        half = width // 2
        while half > 0:
            if lane < half:
                cache[t] = bigger(cache[t], cache[t + half])
            cuda.syncthreads()
            half //= 2
        if lane == 0 and line < out.shape[0]:
            out[line] = cache[t]

    @cuda.jit
    def gather_rows(x, indices, out, bad):
        """out[r] = x[indices[r]]; a row whose index is outside [0, R) is NaN and sets
        bad[0] = r."""
        r, j = divmod(cuda.grid(1), out.shape[1])
        if r < out.shape[0]:
            row = indices[r]
            if 0 <= row < x.shape[0]:
                out[r, j] = x[row, j]
            else:
                out[r, j] = NAN
                bad[0] = r

    return _Kernels(locals())


class _Kernels:
    """The kernels of one dtype as attributes."""

    def __init__(self, names):
        self.__dict__.update({k: v for k, v in names.items() if not k.isupper() and k != "T"})


# --- dtype-generic kernels (no constants, no shared memory) ---------------------------

@cuda.jit
def check_indices(indices, rows, bad):
    """bad[0] = i for an index outside [0, rows) (some such i, if there are several)."""
    for i in range(cuda.grid(1), indices.shape[0], cuda.gridsize(1)):
        v = indices[i]
        if v < 0 or v >= rows:
            bad[0] = i


@cuda.jit
def scatter_add_rows(src, indices, out):
    """out[indices[i], j] += src[i, j], one thread per column j, rows in order. Run after
    check_indices; an index outside [0, R) is skipped all the same."""
    j = cuda.grid(1)
    if j < out.shape[1]:
        for i in range(src.shape[0]):
            row = indices[i]
            if 0 <= row < out.shape[0]:
                out[row, j] += src[i, j]
