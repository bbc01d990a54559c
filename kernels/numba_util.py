"""Pieces shared by the Numba kernels: fast-math flags, activation codes and their
scalar formulas, the size thresholds that decide serial versus threaded code.

Everything here is imported by the other ``numba_*`` modules; nothing here is a
kernel of the contract. Note for developers: Numba's on-disk cache (``cache=True``)
keys a function on its own source file only, so after editing this file delete
``kernels/__pycache__/*.nbi``/``*.nbc`` (or touch the files that use it).
"""

import math
import os
import re

import numba
import numpy as np
from numba import njit, prange

from .contract import ACT_CODES

# LLVM may reassociate (needed to vectorise float reductions: a sum over k becomes
# 8 partial sums in one vector register), contract a*b+c into one FMA, ignore the
# sign of zero and use reciprocals. No "nnan"/"ninf": infinities and NaN keep their
# IEEE meaning, so max-subtraction and overflow-safe formulas stay correct.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

# LLVM's SLP ("straight-line") vectoriser packs isomorphic scalar operations into
# SIMD instructions; the GEMM micro-kernel (numba_gemm) needs it to turn its 80
# scalar accumulators into 10 vector registers (the kernel alone, data in L1, AVX2:
# ~4 GFLOP/s of scalar code without it, 85-95 with it). Numba leaves it off by
# default and reads the setting at every compilation, so it is switched on here,
# before any fastnn kernel compiles, for the whole process; an explicit
# NUMBA_SLP_VECTORIZE in the environment is respected.
if "NUMBA_SLP_VECTORIZE" not in os.environ:
    numba.config.SLP_VECTORIZE = 1

# Activation names of the contract -> small integers the compiled code branches on
# (Numba freezes these globals into each kernel as compile-time constants).
LINEAR, RELU, LEAKY_RELU, SIGMOID, TANH = (
    ACT_CODES[name] for name in ("linear", "relu", "leaky_relu", "sigmoid", "tanh"))

# Below these sizes a kernel runs serially: starting a prange region costs about
# 1.5 us with the OpenMP threading layer, more than a small layer's whole work.
PAR_MIN_ELEMS = 1 << 16      # element-wise and row-wise kernels: elements touched
PAR_MIN_FMAS = 1 << 18       # matrix products: multiply-adds (M * N * K)


@njit(cache=True)
def sigmoid(v, one):
    """1 / (1 + exp(-v)) without overflow: exp only ever sees a non-positive number.

    ``one`` is 1 in the working dtype, so float32 math stays float32."""
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@njit(cache=True)
def activate(v, code, slope, one):
    """act(v) for activation ``code`` (see ACT_CODES); ``slope`` is leaky ReLU's alpha."""
    if code == RELU:
        return one - one if v < 0 else v        # NaN stays NaN, as np.maximum(v, 0)
    if code == LEAKY_RELU:
        return v if v > 0 else v * slope
    if code == SIGMOID:
        return sigmoid(v, one)
    if code == TANH:
        return math.tanh(v)
    return v


@njit(cache=True)
def act_grad(y, code, slope, one):
    """act'(z) written with the activation's output y = act(z) (all the contract keeps)."""
    if code == RELU:
        return one if y > 0 else one - one
    if code == LEAKY_RELU:
        return one if y > 0 else slope
    if code == SIGMOID:
        return y * (one - y)
    if code == TANH:
        return one - y * y
    return one


@njit(cache=True)
def pieces_for(n, threads, min_size):
    """How many pieces to split ``n`` units of work into: 1 (run serially, no prange
    region at all) below ``min_size`` or with one thread, else 1-4 per thread."""
    if threads <= 1 or n < min_size:
        return 1
    return min(4 * threads, max(threads, n // max(1, min_size // 4)))


# The thread count fastnn was asked for (None: Numba's default). Numba keeps its count per
# calling thread: a Python thread that never called numba.set_num_threads runs its parallel
# regions on NUMBA_NUM_THREADS. threads() applies the wanted count to whichever thread calls.
wanted_threads = None


def threads():
    """The thread count for a parallel kernel called from this Python thread (the count
    given to ``set_num_threads``, applied to this thread first if it differs)."""
    count = numba.get_num_threads()
    if wanted_threads is not None and count != wanted_threads:
        numba.set_num_threads(wanted_threads)
        count = wanted_threads
    return count


def pieces(n):
    """:func:`pieces_for` with the current thread count and ``PAR_MIN_ELEMS``.

    Called from Python on purpose: a compiled function that asks Numba for the
    thread count cannot be cached on disk, so the count is decided here and passed
    in. The threshold is read at call time, so tests can lower it."""
    return pieces_for(n, threads(), PAR_MIN_ELEMS)


@njit(cache=True)
def piece(n, count, i):
    """Bounds [lo, hi) of piece ``i`` of ``count`` near-equal pieces of range(n)."""
    return (n * i) // count, (n * (i + 1)) // count


@njit(cache=True, parallel=True)
def prange_thread_ids(n):
    """Which thread ran each of ``n`` prange iterations (lets tests prove threads run)."""
    ids = np.empty(n, np.int64)
    for i in prange(n):
        ids[i] = numba.get_thread_id()
    return ids


# Lanes of one 32-bit float per vector register, by x86 register name.
_LANES32 = {"xmm": 4, "ymm": 8, "zmm": 16}


def fma_counts(asm, dtype="float32"):
    """Static counts of the multiply-add instructions in x86 assembly ``asm``.

    Returns ``{"xmm": n, "ymm": n, "zmm": n, "lanes": n, "scalar": n}``: packed FMAs per
    register width, the float lanes those packed FMAs cover in all, and scalar FMAs.
    LLVM picks the vector width per CPU (256-bit on AVX2, often 512-bit on AVX-512),
    so a SIMD check must count every width."""
    p, s = ("ps", "ss") if np.dtype(dtype) == np.float32 else ("pd", "sd")
    per_lane = 1 if p == "ps" else 2
    counts = {reg: len(re.findall(rf"\bvfmadd\d+{p}\s+[^\n]*%{reg}", asm)) for reg in _LANES32}
    counts["lanes"] = sum(n * _LANES32[reg] // per_lane for reg, n in list(counts.items()))
    counts["scalar"] = len(re.findall(rf"\bvfmadd\d+{s}\b", asm))
    return counts
