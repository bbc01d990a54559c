"""The GEMM optimisation ladder: ``out = alpha * op(a) @ op(b) + beta * out`` five ways.

Each rung keeps the previous one's ideas and adds one; every rung is correct for
any shape (1, primes, sizes that are no multiple of any block) and for
``trans_a``/``trans_b`` (backprop multiplies by transposes). ``benchmarks/numba_ladder.py``
measures them against NumPy's BLAS.

1. ``naive``: i-j-k. The inner loop walks down a *column* of B: one element per
   cache line, a stride of N elements, no SIMD. Memory-latency bound.
2. ``reordered``: i-k-j. The inner loop is ``c[i, :] += a[i, k] * b[k, :]``: both
   rows are contiguous, so LLVM vectorises it (8 float32 lanes with AVX2). But
   every multiply-add loads and stores ``c`` and re-reads all of B per row of C:
   bound by stores and, once B outgrows the caches, by memory bandwidth.
3. ``blocked``: the same loop tiled so a 64 x 256 block of B stays in L2 and a
   row segment of C in L1 while every row of A sweeps over them (B comes from
   memory once per block instead of once per row of C), and four rows of B are
   consumed per pass over the C segment: one load and one store of C now serve
   four FMAs instead of one.
4. ``packed``: BLIS-style. Blocks of op(A) (MC x KC) and panels of op(B) (NC x KC,
   stored transposed) are *packed* into contiguous buffers whose rows run along
   the reduction axis, whatever the input's transposition or strides. A
   register-blocked micro-kernel then computes a 2 x 4 tile of C as eight dot
   products held in eight vector registers: per step 6 vector loads feed 8 FMAs
   and nothing is stored until the tile is done (C is touched once per KC block).
   The packed rows are padded so consecutive rows never sit 4 KiB apart (L1 set
   conflicts); tiles past the edge re-use the last row instead of padding with zeros.
5. ``parallel``: rung 4 with the B panel packed by all threads and the C tiles
   (row blocks, split further by columns when there are few rows) handed out with
   ``prange``. Each thread packs its own A block; no two threads write the same C.

The ``packed``/``parallel`` rungs also take an *epilogue*: a bias vector and an
activation applied to each block of C right after its last KC chunk, while the
block is still in cache; that is how ``dense_forward`` fuses ``act(x @ w + b)``.
(Applying it element by element inside the micro-tile store was tried: the extra
branches in the tile's write-back made the whole GEMM 1.6x slower.)
"""

import numba
import numpy as np
from numba import njit, prange

from . import numba_util
from .contract import check
from .numba_util import FASTMATH, LINEAR, RELU, activate

MR, NR = 2, 4            # micro-tile of C: MR rows x NR columns (8 accumulators)
MC = 64                  # rows of op(A) per packed block (block lives in L2)
NC = 512                 # columns of op(B) per packed panel
KC_BYTES = 4096          # reduction chunk: <= 1024 float32 / 512 float64 per packed row
PAD = 16                 # extra elements per packed row: breaks 4 KiB aliasing
GROUP = 16               # rows packed together when packing reads a transposed input


# --- rung 1: naive i-j-k ------------------------------------------------------------

@njit(cache=True)
def _naive(A, B, C, alpha, beta):
    """A (M,K), B (K,N), C (M,N) row-major; C = alpha A B + beta C."""
    M, K = A.shape
    N = B.shape[1]
    alpha, beta = C.dtype.type(alpha), C.dtype.type(beta)   # keep float32 math in float32
    for i in range(M):
        for j in range(N):
            s = A.dtype.type(0)
            for k in range(K):
                s += A[i, k] * B[k, j]            # B[k, j]: stride N, a new cache line each k
            C[i, j] = alpha * s + beta * C[i, j] if beta != 0 else alpha * s


# --- rung 2: loop reorder i-k-j ---------------------------------------------------------

@njit(cache=True)
def _scale_rows(C, beta):
    """C *= beta, with beta == 0 writing zeros (C may hold NaN: never multiply it)."""
    beta = C.dtype.type(beta)
    for i in range(C.shape[0]):
        row = C[i]
        for j in range(row.shape[0]):
            row[j] = row[j] * beta if beta != 0 else 0


@njit(cache=True)
def _reordered(A, B, C, alpha, beta):
    M, K = A.shape
    N = B.shape[1]
    _scale_rows(C, beta)
    alpha = C.dtype.type(alpha)
    for i in range(M):
        c = C[i]                                  # 1-D row views: unit-stride, vectorisable
        for k in range(K):
            aik = alpha * A[i, k]
            b = B[k]
            for j in range(N):
                c[j] += aik * b[j]


# --- rung 3: cache blocking ---------------------------------------------------------------

@njit(cache=True)
def _blocked(A, B, C, alpha, beta):
    M, K = A.shape
    N = B.shape[1]
    _scale_rows(C, beta)
    alpha = C.dtype.type(alpha)
    kb, nb = 64, 256                              # B block 64 x 256: 64 KiB float32, in L2
    for j0 in range(0, N, nb):
        j1 = min(N, j0 + nb)
        for k0 in range(0, K, kb):
            k1 = min(K, k0 + kb)
            for i in range(M):                    # every row of A reuses the cached B block
                c = C[i, j0:j1]                   # 1 KiB of C: stays in L1
                k = k0
                while k + 4 <= k1:                # 4 rows of B per pass: 1 load + 1 store of c per 4 FMAs
                    a0, a1 = alpha * A[i, k], alpha * A[i, k + 1]
                    a2, a3 = alpha * A[i, k + 2], alpha * A[i, k + 3]
                    b0, b1, b2, b3 = B[k, j0:j1], B[k + 1, j0:j1], B[k + 2, j0:j1], B[k + 3, j0:j1]
                    for j in range(j1 - j0):
                        c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
                    k += 4
                for kk in range(k, k1):
                    aik = alpha * A[i, kk]
                    b = B[kk, j0:j1]
                    for j in range(j1 - j0):
                        c[j] += aik * b[j]


# --- rung 4: packing + register-blocked micro-kernel -------------------------------------------

@njit(cache=True)
def _pack(x, trans, r0, nr, c0, nc, buf, b0):
    """buf[b0 + r, c] = op(x)[r0 + r, c0 + c] for r < nr, c < nc; op(x) = x.T if trans.

    x is C-contiguous. Without trans this copies row segments. With trans, GROUP
    rows of buf are filled together from one contiguous run of each row of x, so
    every cache line read is used whole; the constant trip count lets LLVM unroll
    (2.4 elements/ns instead of 1.0 with a variable count).
    """
    if not trans:
        for r in range(nr):
            src = x[r0 + r, c0:c0 + nc]
            dst = buf[b0 + r]
            for c in range(nc):
                dst[c] = src[c]
        return
    full = nr - nr % GROUP
    for g in range(0, full, GROUP):
        for c in range(nc):
            src = x[c0 + c, r0 + g:r0 + g + GROUP]
            for r in range(GROUP):
                buf[b0 + g + r, c] = src[r]
    for r in range(full, nr):
        dst = buf[b0 + r]
        for c in range(nc):
            dst[c] = x[c0 + c, r0 + r]


@njit(cache=True, fastmath=FASTMATH)
def _micro_2x4(a0, a1, b0, b1, b2, b3):
    """Eight dot products a_r . b_c over one packed KC chunk (all 1-D, same length).

    The loop over p vectorises with one vector accumulator per (r, c): the 8
    partial sums stay in registers and 6 loads feed 8 FMAs per step."""
    z = a0.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    for p in range(a0.shape[0]):
        x0 = a0[p]
        x1 = a1[p]
        y0 = b0[p]
        y1 = b1[p]
        y2 = b2[p]
        y3 = b3[p]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
    return s00, s01, s02, s03, s10, s11, s12, s13


@njit(cache=True, fastmath=FASTMATH)
def _macro(Ap, mc, Bp, jb, nc, kc, out, ic, jc, overwrite, alpha):
    """All micro-tiles of the (mc x nc) block of C at (ic, jc), from packed Ap (rows
    0..mc) and Bp (rows jb..jb+nc), both kc long: C (=|+=) alpha * tile.

    The 4 rows of Bp stay in L1 while the loop over ir streams Ap from L2. Rows past
    the edge are clamped to the last valid row: computed, never stored. Full tiles
    are stored by straight-line code; a generic loop there costs ~25 cycles/element."""
    alpha = out.dtype.type(alpha)
    for jr in range(0, nc, NR):
        nr = min(NR, nc - jr)
        b0 = Bp[jb + jr, :kc]
        b1 = Bp[jb + jr + min(1, nr - 1), :kc]
        b2 = Bp[jb + jr + min(2, nr - 1), :kc]
        b3 = Bp[jb + jr + min(3, nr - 1), :kc]
        j = jc + jr
        for ir in range(0, mc, MR):
            mr = min(MR, mc - ir)
            s = _micro_2x4(Ap[ir, :kc], Ap[ir + mr - 1, :kc], b0, b1, b2, b3)
            if mr == MR and nr == NR:
                r0 = out[ic + ir]
                r1 = out[ic + ir + 1]
                if overwrite:
                    r0[j] = alpha * s[0]
                    r0[j + 1] = alpha * s[1]
                    r0[j + 2] = alpha * s[2]
                    r0[j + 3] = alpha * s[3]
                    r1[j] = alpha * s[4]
                    r1[j + 1] = alpha * s[5]
                    r1[j + 2] = alpha * s[6]
                    r1[j + 3] = alpha * s[7]
                else:
                    r0[j] += alpha * s[0]
                    r0[j + 1] += alpha * s[1]
                    r0[j + 2] += alpha * s[2]
                    r0[j + 3] += alpha * s[3]
                    r1[j] += alpha * s[4]
                    r1[j + 1] += alpha * s[5]
                    r1[j + 2] += alpha * s[6]
                    r1[j + 3] += alpha * s[7]
            else:
                for r in range(mr):
                    row = out[ic + ir + r]
                    for c in range(nr):
                        v = alpha * s[NR * r + c]
                        row[j + c] = v if overwrite else row[j + c] + v


@njit(cache=True)
def _epilogue(out, i0, mc, j0, nc, bias, act, slope):
    """out[i0:i0+mc, j0:j0+nc] = act(out + bias[j]): run on each block of C right
    after its last KC chunk, while the block is still in L2 (fuses dense_forward)."""
    one = out.dtype.type(1)
    slope = out.dtype.type(slope)
    has_bias = bias.shape[0] > 0
    for i in range(i0, i0 + mc):
        row = out[i, j0:j0 + nc]
        if has_bias:
            b = bias[j0:j0 + nc]
            for j in range(nc):
                row[j] += b[j]
        if act == RELU:                            # the common case, as a vectorisable loop
            for j in range(nc):
                row[j] = max(row[j], 0)
        elif act != LINEAR:
            for j in range(nc):
                row[j] = activate(row[j], act, slope, one)


@njit(cache=True)
def _prologue(out, beta):
    """Before accumulating: out *= beta (beta != 0); with beta == 0 the first KC chunk
    overwrites out instead, so NaN or garbage in out never leaks into the result."""
    for i in range(out.shape[0]):
        row = out[i]
        for j in range(row.shape[0]):
            row[j] *= beta


@njit(cache=True)
def _kc(k, itemsize):
    """Reduction chunk: at most KC_BYTES per packed row, chunks of near-equal length
    (K = 784 -> one chunk of 784, not 512 + 272: fewer partial sums to reduce)."""
    most = KC_BYTES // itemsize
    count = max(1, (k + most - 1) // most)
    return max(1, (k + count - 1) // count)


@njit(cache=True)
def _start(out, K, beta, bias, act, slope):
    """Work done before the KC loop; returns (first chunk overwrites C?, epilogue needed?)."""
    epilogue = bias.shape[0] > 0 or act != LINEAR
    if beta != 0:
        _prologue(out, out.dtype.type(beta))
    if K == 0:                                   # empty product: out = act(beta out + bias)
        if beta == 0:
            out[:] = 0
        if epilogue:
            _epilogue(out, 0, out.shape[0], 0, out.shape[1], bias, act, slope)
    return beta == 0, epilogue


@njit(cache=True, fastmath=FASTMATH)
def packed_serial(a, trans_a, b, trans_b, out, alpha, beta, bias, act, slope):
    """out = act(alpha op(a) op(b) + beta out + bias), one thread.

    a, b: C-contiguous; op(a) (M,K), op(b) (K,N); bias (N,) or empty; act: ACT_CODES."""
    M, N = out.shape
    K = a.shape[0] if trans_a else a.shape[1]
    overwrite, epilogue = _start(out, K, beta, bias, act, slope)
    kc_max = _kc(K, out.itemsize)
    Ap = np.empty((min(M, MC), kc_max + PAD), out.dtype)
    Bp = np.empty((min(N, NC), kc_max + PAD), out.dtype)
    for jc in range(0, N, NC):
        nc = min(NC, N - jc)
        for pc in range(0, K, kc_max):
            kc = min(kc_max, K - pc)
            _pack(b, not trans_b, jc, nc, pc, kc, Bp, 0)       # Bp rows = columns of op(b)
            for ic in range(0, M, MC):
                mc = min(MC, M - ic)
                _pack(a, trans_a, ic, mc, pc, kc, Ap, 0)
                _macro(Ap, mc, Bp, 0, nc, kc, out, ic, jc, overwrite and pc == 0, alpha)
                if epilogue and pc + kc == K:
                    _epilogue(out, ic, mc, jc, nc, bias, act, slope)


@njit(cache=True)
def _cdiv(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def _tiling(M, N, threads):
    """(rows per block, row blocks, column blocks per panel): at least ``threads`` tiles
    when the shape allows, row blocks first (each tile packs its own A block)."""
    mc = MC
    if M < MC * threads:                          # few rows: smaller blocks, MR-aligned
        mc = max(MR, _cdiv(_cdiv(M, threads), MR) * MR)
    row_blocks = _cdiv(M, mc)
    col_blocks = 1
    if row_blocks < threads:                      # still too few: split the panel's columns
        col_blocks = min(_cdiv(threads, row_blocks), max(1, min(N, NC) // (4 * NR)))
    return mc, row_blocks, col_blocks


@njit(cache=True, fastmath=FASTMATH, parallel=True)
def packed_parallel(a, trans_a, b, trans_b, out, alpha, beta, bias, act, slope, threads):
    """Same contract as :func:`packed_serial`; C tiles shared out over ``threads`` threads."""
    M, N = out.shape
    K = a.shape[0] if trans_a else a.shape[1]
    overwrite, epilogue = _start(out, K, beta, bias, act, slope)
    kc_max = _kc(K, out.itemsize)
    mc, row_blocks, col_blocks = _tiling(M, N, threads)
    Bp = np.empty((min(N, NC), kc_max + PAD), out.dtype)
    Aps = np.empty((row_blocks * col_blocks, mc, kc_max + PAD), out.dtype)   # one A block per tile
    for jc in range(0, N, NC):
        nc = min(NC, N - jc)
        width = _cdiv(_cdiv(nc, col_blocks), NR) * NR          # whole micro-tiles per column block
        for pc in range(0, K, kc_max):
            kc = min(kc_max, K - pc)
            for g in prange(_cdiv(nc, GROUP)):
                _pack(b, not trans_b, jc + g * GROUP, min(GROUP, nc - g * GROUP), pc, kc, Bp, g * GROUP)
            for t in prange(row_blocks * col_blocks):
                ic = (t // col_blocks) * mc
                j0 = (t % col_blocks) * width
                if j0 < nc:
                    rows, cols = min(mc, M - ic), min(width, nc - j0)
                    Ap = Aps[t]
                    _pack(a, trans_a, ic, rows, pc, kc, Ap, 0)
                    _macro(Ap, rows, Bp, j0, cols, kc, out, ic, jc + j0, overwrite and pc == 0, alpha)
                    if epilogue and pc + kc == K:
                        _epilogue(out, ic, rows, jc + j0, cols, bias, act, slope)


# --- Python entry points ------------------------------------------------------------------------

_NO_BIAS = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0, np.float64)}


def packable(x, trans):
    """(x', trans') with x' C-contiguous and op(x') == op(x): a Fortran-ordered array
    is read as its (C-ordered) transpose, anything else strided is copied once."""
    if x.flags.c_contiguous:
        return x, trans
    if x.flags.f_contiguous:
        return x.T, not trans
    return np.ascontiguousarray(x), trans


def matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
           act=0, slope=0.0, threads=None):
    """The backend's GEMM: ``out = act(alpha op(a) op(b) + beta out + bias)``.

    Serial below ``numba_util.PAR_MIN_FMAS`` multiply-adds or with one thread, else threaded.
    ``threads=False`` forces the serial code (used inside other parallel kernels)."""
    a, trans_a = packable(a, trans_a)
    b, trans_b = packable(b, trans_b)
    if bias is None:
        bias = _NO_BIAS[out.dtype]
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    count = numba.get_num_threads()
    args = (a, trans_a, b, trans_b, out, float(alpha), float(beta), bias, int(act), float(slope))
    if threads is not False and count > 1 and m * n * k >= numba_util.PAR_MIN_FMAS:
        packed_parallel(*args, count)
    else:
        packed_serial(*args)


def _rowmajor(x, trans):
    return np.ascontiguousarray(x.T if trans else x)


def naive(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Rung 1 (i-j-k). Transposed operands are first copied row-major (O(n^2) work)."""
    _naive(_rowmajor(a, trans_a), _rowmajor(b, trans_b), out, float(alpha), float(beta))


def reordered(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Rung 2 (i-k-j): unit-stride inner loop that vectorises."""
    _reordered(_rowmajor(a, trans_a), _rowmajor(b, trans_b), out, float(alpha), float(beta))


def blocked(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Rung 3: rung 2 tiled for the caches."""
    _blocked(_rowmajor(a, trans_a), _rowmajor(b, trans_b), out, float(alpha), float(beta))


def packed(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Rung 4: packed blocks and a 2x4 register-blocked micro-kernel, one thread."""
    matmul(a, b, out, trans_a, trans_b, alpha, beta, threads=False)


def parallel(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Rung 5: rung 4 on all threads (``set_num_threads``); serial for tiny products."""
    matmul(a, b, out, trans_a, trans_b, alpha, beta)


def _checked(fn):
    def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        check("gemm", a, b, out, trans_a, trans_b, alpha, beta)
        fn(a, b, out, trans_a, trans_b, alpha, beta)
    gemm.__name__ = fn.__name__
    gemm.__doc__ = fn.__doc__
    gemm.unchecked = fn
    return gemm


# name -> gemm-like function (argument-checked), slowest first, the backend's gemm last.
GEMM_LADDER = {fn.__name__: _checked(fn) for fn in (naive, reordered, blocked, packed, parallel)}

# the compiled functions behind each rung, for inspect_asm() in tests and benchmarks
LADDER_KERNELS = {"naive": _naive, "reordered": _reordered, "blocked": _blocked,
                  "packed": packed_serial, "parallel": packed_parallel}
