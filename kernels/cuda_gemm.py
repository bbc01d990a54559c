"""The GEMM ladder on the GPU: ``out = alpha op(a) op(b) + beta out``, three ways.

Each rung keeps the same arguments and the same epilogue, so the only thing
that changes from one to the next is how the inner product is fed:

1. ``naive``: one thread per output element, reading ``a`` and ``b`` straight
   from global memory (every element of op(a) is read N times).
2. ``shared_tiles``: a 16x16 block stages 16x16 tiles of op(a) and op(b) in
   shared memory, so each global element is read N/16 times instead of N.
3. ``register_tiles``: a 16x16 block computes a 64x64 tile of ``out``, each
   thread a 4x4 patch held in registers. Per step of the inner loop a thread
   loads 4 values of op(a) and 4 of op(b) from shared memory and does 16
   multiply-adds (the ratio is 1:2 instead of 1:1/2 for rung 2), and the tile
   loads are laid out so neighbouring threads read neighbouring addresses for
   every combination of ``trans_a`` / ``trans_b``.

Ragged edges are handled by loading zeros outside the matrices and by not
storing outside ``out``. The epilogue (``store``) adds ``beta * out`` only when
``beta != 0`` (so an uninitialised ``out`` is fine), then an optional bias per
column and an activation: ``dense_forward`` is rung 3 with bias and activation.
"""

import functools

import numpy as np
from numba import cuda

from . import cuda_kernels

TILE = 16                   # threads per block side (rungs 1-3)
BM = BN = 64                # rung 3: output tile of one block
BK = 16                     # rung 3: depth of one shared-memory step
REG = BM // TILE            # rung 3: outputs per thread along each side (4)
LOADS = BM * BK // (TILE * TILE)   # rung 3: tile elements each thread loads (4)
PADDED = BM + 1             # rung 3: shared row length; the extra column avoids bank conflicts


@functools.cache
def build(dtype):
    """The three GEMM kernels for one float dtype, as a dict name -> kernel."""
    T = np.dtype(dtype).type
    ZERO = T(0)
    activate = cuda_kernels.build(dtype).activate

    @cuda.jit(device=True)
    def store(out, i, j, acc, alpha, beta, bias, has_bias, act, slope):
        v = alpha * acc
        if beta != ZERO:
            v += beta * out[i, j]
        if has_bias:
            v += bias[j]
        out[i, j] = activate(v, act, slope)

    @cuda.jit
    def naive(a, b, out, trans_a, trans_b, alpha, beta, bias, has_bias, act, slope):
        j, i = cuda.grid(2)
        if i < out.shape[0] and j < out.shape[1]:
            depth = a.shape[0] if trans_a else a.shape[1]
            acc = ZERO
            for p in range(depth):
                av = a[p, i] if trans_a else a[i, p]
                bv = b[j, p] if trans_b else b[p, j]
                acc += av * bv
            store(out, i, j, acc, alpha, beta, bias, has_bias, act, slope)

    @cuda.jit
    def shared_tiles(a, b, out, trans_a, trans_b, alpha, beta, bias, has_bias, act, slope):
        tile_a = cuda.shared.array((TILE, TILE), T)
        tile_b = cuda.shared.array((TILE, TILE), T)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        i = cuda.blockIdx.y * TILE + ty
        j = cuda.blockIdx.x * TILE + tx
        m, n = out.shape
        depth = a.shape[0] if trans_a else a.shape[1]
        acc = ZERO
        for k0 in range(0, depth, TILE):
            # every thread loads one element of each tile, zero outside the matrices
            k = k0 + tx
            if i < m and k < depth:
                tile_a[ty, tx] = a[k, i] if trans_a else a[i, k]
            else:
                tile_a[ty, tx] = ZERO
            k = k0 + ty
            if k < depth and j < n:
                tile_b[ty, tx] = b[j, k] if trans_b else b[k, j]
            else:
                tile_b[ty, tx] = ZERO
            cuda.syncthreads()
            for p in range(TILE):
                acc += tile_a[ty, p] * tile_b[p, tx]
            cuda.syncthreads()          # before the next step overwrites the tiles
        if i < m and j < n:
            store(out, i, j, acc, alpha, beta, bias, has_bias, act, slope)

    @cuda.jit
    def register_tiles(a, b, out, trans_a, trans_b, alpha, beta, bias, has_bias, act, slope):
        # k-major tiles (shapes must be plain constants for numba-cuda)
        tile_a = cuda.shared.array((BK, PADDED), T)
        tile_b = cuda.shared.array((BK, PADDED), T)
        acc = cuda.local.array((REG, REG), T)
        col_a = cuda.local.array(REG, T)
        row_b = cuda.local.array(REG, T)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        t = ty * TILE + tx
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        m, n = out.shape
        depth = a.shape[0] if trans_a else a.shape[1]
        for r in range(REG):
            for c in range(REG):
                acc[r, c] = ZERO
        for k0 in range(0, depth, BK):
            for q in range(LOADS):
                if trans_a:             # a is (K, M): neighbouring threads walk along M
                    ii, kk = t % BM, t // BM + q * (TILE * TILE // BM)
                else:                   # a is (M, K): neighbouring threads walk along K
                    kk, ii = t % BK, t // BK + q * (TILE * TILE // BK)
                gi, gk = row0 + ii, k0 + kk
                if gi < m and gk < depth:
                    tile_a[kk, ii] = a[gk, gi] if trans_a else a[gi, gk]
                else:
                    tile_a[kk, ii] = ZERO
            for q in range(LOADS):
                if trans_b:             # b is (N, K): along K
                    kk, jj = t % BK, t // BK + q * (TILE * TILE // BK)
                else:                   # b is (K, N): along N
                    jj, kk = t % BN, t // BN + q * (TILE * TILE // BN)
                gj, gk = col0 + jj, k0 + kk
                if gj < n and gk < depth:
                    tile_b[kk, jj] = b[gj, gk] if trans_b else b[gk, gj]
                else:
                    tile_b[kk, jj] = ZERO
            cuda.syncthreads()
            for p in range(BK):
                # rows ty, ty+16, ... and columns tx, tx+16, ...: a warp reads
                # 16 consecutive columns of tile_b and broadcasts tile_a values
                for r in range(REG):
                    col_a[r] = tile_a[p, ty + TILE * r]
                for c in range(REG):
                    row_b[c] = tile_b[p, tx + TILE * c]
                for r in range(REG):
                    for c in range(REG):
                        acc[r, c] += col_a[r] * row_b[c]
            cuda.syncthreads()
        for r in range(REG):
            i = row0 + ty + TILE * r
            for c in range(REG):
                j = col0 + tx + TILE * c
                if i < m and j < n:
                    store(out, i, j, acc[r, c], alpha, beta, bias, has_bias, act, slope)

    return {"naive": naive, "shared_tiles": shared_tiles, "register_tiles": register_tiles}


SMALL = 32 ** 3     # m * n * k up to this: every rung is launch-bound, use rung 1


def best_rung(m, n, k):
    """The rung ``gemm`` and ``dense_forward`` use for op(a) (m, k) times op(b) (k, n).

    Tiny products take rung 1: all rungs cost about one kernel launch there, and
    rung 1 runs only as many threads as there are outputs (a 64x64 tile for a
    16x2 output would idle 99% of its threads). This threshold is a judgement,
    not a measurement; ``benchmarks/cuda_ladder.py`` measures the rungs on a GPU.
    """
    return "naive" if m * n * k <= SMALL else "register_tiles"


def _pow2(n, cap):
    p = 1
    while p < n and p < cap:
        p *= 2
    return p


def launch_shape(name, m, n):
    """(blocks, threads) for an (m, n) output with rung ``name``."""
    if name == "naive":             # any block shape works; no more threads than outputs
        threads = (_pow2(n, TILE), _pow2(m, TILE))
    else:
        threads = (TILE, TILE)
    per_block = (BN, BM) if name == "register_tiles" else threads
    blocks = (-(-n // per_block[0]), -(-m // per_block[1]))
    return blocks, threads
