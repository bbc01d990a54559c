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
4. ``packed``: BLIS-style. A block of op(A) (MC x KC) is *packed* into panels of
   MR = 5 rows stored column by column, a panel of op(B) (KC x NC) into micro-panels
   of NR = 16 columns stored row by row, whatever the inputs' transposition or
   strides (zeros pad the last panels). A register-blocked micro-kernel then keeps a
   5 x 16 tile of C in ten 8-lane registers: per step of the reduction it loads 16
   values of B (two vectors), broadcasts 5 values of A and does 10 vector FMAs;
   C is read and written once per KC chunk, and there are no horizontal sums.
   (The first version of this rung was a 2 x 4 tile of dot products along k:
   6 loads per 8 FMAs plus 8 horizontal sums per tile, 0.66-0.78x OpenBLAS where
   this one reaches 0.8-0.9x on the same AVX2 machine.)
5. ``parallel``: rung 4 with the B panel packed by all threads and the C tiles
   (row blocks, split further by columns when there are few rows) handed out with
   ``prange``. Each thread packs its own A block; no two threads write the same C.

The ``packed``/``parallel`` rungs also take an *epilogue*: a bias vector and an
activation applied to each block of C right after its last KC chunk, while the
block is still in cache; that is how ``dense_forward`` fuses ``act(x @ w + b)``.
(Applying it element by element inside the micro-tile store was tried: the extra
branches in the tile's write-back made the whole GEMM 1.6x slower.)
"""

import numpy as np
from numba import njit, prange

from . import numba_thin as _thin
from . import numba_util
from .contract import check
from .numba_util import LINEAR, RELU, activate

MR, NR = 5, 16           # micro-tile of C: 5 rows x 16 columns (10 ymm accumulators, float32)
MC = 120                 # rows of op(A) per packed block (MC x KC lives in L2)
NC = 1024                # columns of op(B) per packed panel (KC x NC lives in L3)
KC_BYTES = 2048          # reduction chunk: 512 float32 / 256 float64; a KC x NR micro-panel of B (32 KiB) fits L1


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
def _pack(x, trans, r0, nr, c0, nc, buf, width):
    """Pack rows r0..r0+nr, columns c0..c0+nc of op(x) (x.T if trans) into panels of
    ``width`` rows stored column by column: buf[(q*nc + p)*width + r] =
    op(x)[r0 + q*width + r, c0 + p], zeros past nr in the last panel.

    Blocks of op(A) are packed with width MR (the micro-kernel reads MR values of one
    column of A together) and panels of op(B) as op(B).T with width NR (NR values of
    one row of B together), whatever the inputs' layout."""
    z = buf.dtype.type(0)
    for q in range(_cdiv(nr, width)):
        base = q * nc * width
        r1 = r0 + q * width
        rows = min(width, nr - q * width)
        if trans:                               # op(x)[r, p] = x[p, r]: contiguous in r
            for p in range(nc):
                src = x[c0 + p, r1:r1 + rows]
                o = base + p * width
                for r in range(rows):
                    buf[o + r] = src[r]
                for r in range(rows, width):
                    buf[o + r] = z
        else:                                   # contiguous in p: read along p, write stride width
            for r in range(rows):
                src = x[r1 + r, c0:c0 + nc]
                for p in range(nc):
                    buf[base + p * width + r] = src[p]
            for r in range(rows, width):
                for p in range(nc):
                    buf[base + p * width + r] = z


def _micro_kernel_source(mr, nr):
    """Python source of the MR x NR micro-kernel (printed by ``print(MICRO_SOURCE)``).

    Numba has no vector types, so the tile's mr*nr accumulators are written out as
    scalars ``c{i}_{j}``; LLVM's SLP vectoriser (switched on in ``numba_util``) packs
    each row's nr lanes into nr/8 float32 ymm registers. Per step p: nr/8 vector loads
    of B, mr broadcasts of A, mr*nr/8 FMAs, and no horizontal sums at the end.
    Partial tiles at the edges go through the small buffer T."""
    acc = [[f"c{i}_{j}" for j in range(nr)] for i in range(mr)]
    lines = ["def _micro(kc, Ap, ao, Bp, bo, out, r0, c0, rows, cols, alpha, overwrite, T):",
             "    z = Ap.dtype.type(0)",
             # views starting at 0: indices p*mr + i are then provably >= 0, so no
             # negative-index wraparound code (a select per load) blocks vectorisation
             f"    A = Ap[ao:ao + kc * {mr}]",
             f"    B = Bp[bo:bo + kc * {nr}]"]
    lines += ["    " + " = ".join(row) + " = z" for row in acc]
    lines += ["    for p in range(kc):",
              f"        a = p * {mr}",
              f"        b = p * {nr}"]
    lines += [f"        b{j} = B[b + {j}]" for j in range(nr)]
    for i in range(mr):
        lines.append(f"        x = A[a + {i}]")
        lines += [f"        {acc[i][j]} += x * b{j}" for j in range(nr)]
    lines += ["    alpha = out.dtype.type(alpha)",
              f"    if rows == {mr} and cols == {nr}:"]
    for op in ("=", "+="):
        lines.append("        if overwrite:" if op == "=" else "        else:")
        for i in range(mr):
            lines.append(f"            row = out[r0 + {i}, c0:c0 + {nr}]")
            lines += [f"            row[{j}] {op} alpha * {acc[i][j]}" for j in range(nr)]
    lines.append("    else:")
    lines += [f"        T[{i * nr + j}] = {acc[i][j]}" for i in range(mr) for j in range(nr)]
    lines += ["        for i in range(rows):",
              "            row = out[r0 + i, c0:c0 + cols]",
              f"            t = T[i * {nr}:i * {nr} + cols]",
              "            for j in range(cols):",
              "                row[j] = alpha * t[j] if overwrite else row[j] + alpha * t[j]"]
    return "\n".join(lines) + "\n"


MICRO_SOURCE = _micro_kernel_source(MR, NR)
_scope = {}
exec(compile(MICRO_SOURCE, f"<numba_gemm micro-kernel {MR}x{NR}>", "exec"), _scope)
# "contract" only (FMA), no "reassoc": with reassociation LLVM's *loop* vectoriser
# would vectorise along p, turning the 80 scalar accumulators into 80 vectors (spills).
# Not cached on its own (exec'd source has no file); its callers' caches hold it.
_micro = njit(fastmath={"contract"})(_scope["_micro"])


@njit(cache=True)
def _macro(Ap, mc, Bp, bo, nc, kc, out, ic, jc, overwrite, alpha, T):
    """All micro-tiles of the (mc x nc) block of C at (ic, jc), from packed Ap (rows
    0..mc) and the NR-panels of Bp starting at offset bo: C (=|+=) alpha * tile.

    The micro-panel of B (kc x NR) stays in L1 while the loop over ir streams the
    A block from L2."""
    for jr in range(0, nc, NR):
        cols = min(NR, nc - jr)
        b = bo + (jr // NR) * kc * NR
        for ir in range(0, mc, MR):
            _micro(kc, Ap, (ir // MR) * kc * MR, Bp, b, out, ic + ir, jc + jr,
                   min(MR, mc - ir), cols, alpha, overwrite, T)


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


@njit(cache=True)
def packed_serial(a, trans_a, b, trans_b, out, alpha, beta, bias, act, slope):
    """out = act(alpha op(a) op(b) + beta out + bias), one thread.

    a, b: C-contiguous; op(a) (M,K), op(b) (K,N); bias (N,) or empty; act: ACT_CODES."""
    M, N = out.shape
    K = a.shape[0] if trans_a else a.shape[1]
    overwrite, epilogue = _start(out, K, beta, bias, act, slope)
    kc_max = _kc(K, out.itemsize)
    Ap = np.empty(_cdiv(min(M, MC), MR) * MR * kc_max, out.dtype)
    Bp = np.empty(_cdiv(min(N, NC), NR) * NR * kc_max, out.dtype)
    T = np.empty(MR * NR, out.dtype)
    for jc in range(0, N, NC):
        nc = min(NC, N - jc)
        for pc in range(0, K, kc_max):
            kc = min(kc_max, K - pc)
            _pack(b, not trans_b, jc, nc, pc, kc, Bp, NR)     # op(b).T in NR-row panels
            for ic in range(0, M, MC):
                mc = min(MC, M - ic)
                _pack(a, trans_a, ic, mc, pc, kc, Ap, MR)
                _macro(Ap, mc, Bp, 0, nc, kc, out, ic, jc, overwrite and pc == 0, alpha, T)
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


@njit(cache=True, parallel=True)
def packed_parallel(a, trans_a, b, trans_b, out, alpha, beta, bias, act, slope, threads):
    """Same contract as :func:`packed_serial`; C tiles shared out over ``threads`` threads."""
    M, N = out.shape
    K = a.shape[0] if trans_a else a.shape[1]
    overwrite, epilogue = _start(out, K, beta, bias, act, slope)
    kc_max = _kc(K, out.itemsize)
    mc, row_blocks, col_blocks = _tiling(M, N, threads)
    tiles = row_blocks * col_blocks
    Bp = np.empty(_cdiv(min(N, NC), NR) * NR * kc_max, out.dtype)
    Aps = np.empty((tiles, _cdiv(mc, MR) * MR * kc_max), out.dtype)    # one A block per tile
    Ts = np.empty((tiles, MR * NR), out.dtype)
    for jc in range(0, N, NC):
        nc = min(NC, N - jc)
        width = _cdiv(_cdiv(nc, col_blocks), NR) * NR          # whole micro-panels per column block
        for pc in range(0, K, kc_max):
            kc = min(kc_max, K - pc)
            for q in prange(_cdiv(nc, NR)):                    # every thread packs some panels of B
                _pack(b, not trans_b, jc + q * NR, min(NR, nc - q * NR), pc, kc,
                      Bp[q * kc * NR:(q + 1) * kc * NR], NR)
            for t in prange(tiles):
                ic = (t // col_blocks) * mc
                j0 = (t % col_blocks) * width
                if j0 < nc:
                    rows, cols = min(mc, M - ic), min(width, nc - j0)
                    Ap = Aps[t]
                    _pack(a, trans_a, ic, rows, pc, kc, Ap, MR)
                    _macro(Ap, rows, Bp, (j0 // NR) * kc * NR, cols, kc, out, ic, jc + j0,
                           overwrite and pc == 0, alpha, Ts[t])
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

    Thin shapes (a single row or column of output, or a few outputs) go to
    ``numba_thin`` (dot products / axpys, K split over threads when large). Serial below ``numba_util.PAR_MIN_FMAS`` multiply-adds or with one thread, else threaded.
    ``threads=False`` forces the serial code (used inside other parallel kernels)."""
    a, trans_a = packable(a, trans_a)
    b, trans_b = packable(b, trans_b)
    if bias is None:
        bias = _NO_BIAS[out.dtype]
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    count = numba_util.threads()
    if m and n and _thin.is_thin(m, n):            # a row, a column or a few outputs
        pieces = 1 if threads is False else _thin.pieces(m, n, k, count, numba_util.PAR_MIN_FMAS)
        _thin.thin(a.reshape(-1), *_thin.strides(a, trans_a), b.reshape(-1), *_thin.strides(b, trans_b),
                   k, out, float(alpha), float(beta), bias, int(act), float(slope), pieces)
        return
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
