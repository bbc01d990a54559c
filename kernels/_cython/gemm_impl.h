/* The GEMM ladder for one precision (included by gemm.c with T and S defined).
 *
 * Every rung computes C = alpha op(A) op(B) + beta C for op(A) (m x k) with element
 * (i, p) at a[i*rsa + p*csa] and op(B) (k x n) at b[p*rsb + j*csb]: a transpose is
 * just swapped strides, so no rung ever materialises one. beta == 0 sets C without
 * reading it (C may hold NaN), as BLAS does.
 *
 *   1 naive          i-j-p, a dot product per element: B read down a column.
 *   2 loop reorder   i-p-j: the inner loop streams a row of B and of C.
 *   3 cache blocked  the i-p-j loops tiled so a block of B stays in cache.
 *   4 packed         BLIS: copy blocks of A and B into panels laid out in the order the
 *                    micro-kernel reads them, then a register-blocked SIMD micro-kernel.
 *   5 parallel       rung 4 with OpenMP threads sharing the packing and the tiles.
 */

/* C = beta C over an m x n block (beta == 0 writes zeros, beta == 1 does nothing). */
static void FN(scale_c)(fnn_idx m, fnn_idx n, T beta, T *c, fnn_idx ldc)
{
    if (beta == 1)
        return;
    for (fnn_idx i = 0; i < m; ++i) {
        T *ci = c + i * ldc;
        if (beta == 0)
            for (fnn_idx j = 0; j < n; ++j)
                ci[j] = 0;
        else
            for (fnn_idx j = 0; j < n; ++j)
                ci[j] *= beta;
    }
}

/* --- rung 1: naive ----------------------------------------------------------------- */
static void FN(gemm_naive)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                           fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                           fnn_idx ldc)
{
    for (fnn_idx i = 0; i < m; ++i)
        for (fnn_idx j = 0; j < n; ++j) {
            T sum = 0;
            for (fnn_idx p = 0; p < k; ++p)
                sum += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            T *cij = c + i * ldc + j;
            *cij = beta == 0 ? alpha * sum : alpha * sum + beta * *cij;
        }
}

/* C[i, j0:j1] += s * B[p, j0:j1]: the inner loop of rungs 2 and 3, unit stride when B's
 * rows are contiguous (then the compiler vectorises it). */
static inline void FN(axpy_row)(fnn_idx j0, fnn_idx j1, T s, const T *brow, fnn_idx csb, T *crow)
{
    if (csb == 1)
        for (fnn_idx j = j0; j < j1; ++j)
            crow[j] += s * brow[j];
    else
        for (fnn_idx j = j0; j < j1; ++j)
            crow[j] += s * brow[j * csb];
}

/* --- rung 2: loop reorder ------------------------------------------------------------ */
static void FN(gemm_reorder)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                             fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                             fnn_idx ldc)
{
    FN(scale_c)(m, n, beta, c, ldc);
    for (fnn_idx i = 0; i < m; ++i)
        for (fnn_idx p = 0; p < k; ++p)
            FN(axpy_row)(0, n, alpha * a[i * rsa + p * csa], b + p * rsb, csb, c + i * ldc);
}

/* --- rung 3: cache blocking -------------------------------------------------------------
 * A KB x NB block of B (128 KiB in float32) is reused by MB rows of C before moving on. */
#ifndef BLOCK_M
#define BLOCK_M 64
#define BLOCK_N 256
#define BLOCK_K 128
#endif

static void FN(gemm_blocked)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                             fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                             fnn_idx ldc)
{
    FN(scale_c)(m, n, beta, c, ldc);
    for (fnn_idx j0 = 0; j0 < n; j0 += BLOCK_N) {
        fnn_idx j1 = FNN_MIN(n, j0 + BLOCK_N);
        for (fnn_idx p0 = 0; p0 < k; p0 += BLOCK_K) {
            fnn_idx p1 = FNN_MIN(k, p0 + BLOCK_K);
            for (fnn_idx i0 = 0; i0 < m; i0 += BLOCK_M) {
                fnn_idx i1 = FNN_MIN(m, i0 + BLOCK_M);
                for (fnn_idx i = i0; i < i1; ++i)
                    for (fnn_idx p = p0; p < p1; ++p)
                        FN(axpy_row)(j0, j1, alpha * a[i * rsa + p * csa], b + p * rsb, csb,
                                     c + i * ldc);
            }
        }
    }
}

/* --- rungs 4 and 5: packed panels + SIMD micro-kernel ----------------------------------- */

/* Copy rows [0, rows) x columns [0, kc) of op(A) into one micro-panel of mr rows stored
 * column by column (dst[p*mr + r] = A(r, p)); rows past `rows` are zero so the
 * micro-kernel never needs an edge case. */
static void FN(pack_a)(fnn_idx rows, fnn_idx kc, const T *a, fnn_idx rs, fnn_idx cs, int mr, T *dst)
{
    if (rows == mr && rs == 1) {          /* A transposed: a column of the panel is contiguous */
        for (fnn_idx p = 0; p < kc; ++p)
            for (int r = 0; r < mr; ++r)
                dst[p * mr + r] = a[p * cs + r];
        return;
    }
    for (fnn_idx r = 0; r < rows; ++r) {  /* row by row: contiguous reads when cs == 1 */
        const T *src = a + r * rs;
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * mr + r] = src[p * cs];
    }
    for (fnn_idx r = rows; r < mr; ++r)
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * mr + r] = 0;
}

/* Copy rows [0, kc) x columns [0, cols) of op(B) into one micro-panel of nr columns
 * stored row by row (dst[p*nr + j] = B(p, j)), zero-padded to nr columns. */
static void FN(pack_b)(fnn_idx cols, fnn_idx kc, const T *b, fnn_idx rs, fnn_idx cs, int nr, T *dst)
{
    if (cs == 1) {                        /* row-major B: each row of the panel is contiguous */
        for (fnn_idx p = 0; p < kc; ++p) {
            const T *src = b + p * rs;
            T *d = dst + p * nr;
            for (fnn_idx j = 0; j < cols; ++j)
                d[j] = src[j];
            for (fnn_idx j = cols; j < nr; ++j)
                d[j] = 0;
        }
        return;
    }
    for (fnn_idx j = 0; j < cols; ++j) {  /* column by column: contiguous reads when rs == 1 */
        const T *src = b + j * cs;
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * nr + j] = src[p * rs];
    }
    for (fnn_idx j = cols; j < nr; ++j)
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * nr + j] = 0;
}

/* One column of micro-tiles: every mr-row panel of the packed A block times the nr-column
 * panel bq of the packed B block, written to C at c (the block's column). Edge tiles are
 * computed into a local tile and copied, so the micro-kernel always sees a full tile.
 * With an epilogue (last k block only) bias + activation are applied while the tile is
 * still in L1. */
static void FN(macro_column)(const FN(fnn_gemm_cfg) *cfg, fnn_idx mc, fnn_idx cols, fnn_idx kc,
                             T alpha, const T *ap, const T *bq, T beta, T *c, fnn_idx ldc,
                             const FN(fnn_epi) *epi, fnn_idx col0)
{
    const int mr = cfg->mr, nr = cfg->nr;
    for (fnn_idx i = 0; i < mc; i += mr) {
        fnn_idx rows = FNN_MIN(mr, mc - i);
        T *cij = c + i * ldc;
        if (rows == mr && cols == nr) {
            cfg->ukr(kc, ap + i * kc, bq, cij, ldc, alpha, beta);
        } else {
            T tile[FNN_MAX_MR * FNN_MAX_NR] __attribute__((aligned(64)));
            cfg->ukr(kc, ap + i * kc, bq, tile, nr, alpha, 0);
            for (fnn_idx r = 0; r < rows; ++r)
                for (fnn_idx j = 0; j < cols; ++j)
                    cij[r * ldc + j] = beta == 0 ? tile[r * nr + j]
                                                 : tile[r * nr + j] + beta * cij[r * ldc + j];
        }
        if (epi)
            FN(fnn_bias_act)(cij, ldc, rows, cols, epi->bias + col0, epi->act, epi->alpha);
    }
}

static void *FN(workspace)(size_t elements)
{
    void *p = NULL;
    size_t bytes = FNN_ROUND_UP(elements * sizeof(T), 64);
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

/* Rungs 4 (threads == 1) and 5. Loop nest (BLIS): jc over nc columns of C, pc over kc
 * of k (pack B block), ic over mc rows (pack A block), then the micro-tiles. The threads
 * of one team pack each block together and split the nr-column panels of C between
 * them; A blocks are double-buffered so one barrier per block suffices. */
void FN(fnn_gemm_packed)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                         fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                         fnn_idx ldc, const FN(fnn_epi) *epi, int threads)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0) {
        FN(scale_c)(m, n, beta, c, ldc);
        if (epi)
            FN(fnn_bias_act)(c, ldc, m, n, epi->bias, epi->act, epi->alpha);
        return;
    }
    const FN(fnn_gemm_cfg) *cfg = &FN(fnn_gemm_cfgs)[fnn_simd_current];
    const fnn_idx mr = cfg->mr, nr = cfg->nr;
    const fnn_idx MC = cfg->mc, KC = cfg->kc, NC = cfg->nc;
    const fnn_idx a_block = FNN_MIN(MC, FNN_ROUND_UP(m, mr)) * FNN_MIN(KC, k);
    const fnn_idx b_block = FNN_MIN(NC, FNN_ROUND_UP(n, nr)) * FNN_MIN(KC, k);
    T *ws = FN(workspace)((size_t)(2 * a_block + b_block));
    if (!ws) {  /* out of memory: the unpacked rung needs no buffers */
        FN(gemm_blocked)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        if (epi)
            FN(fnn_bias_act)(c, ldc, m, n, epi->bias, epi->act, epi->alpha);
        return;
    }
    T *bp = ws, *ap[2] = {ws + b_block, ws + b_block + a_block};
    int workers = 0;
    if (threads < 1)
        threads = 1;

#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int tiles = 0, round = 0;
        for (fnn_idx jc = 0; jc < n; jc += NC) {
            const fnn_idx nc = FNN_MIN(NC, n - jc), npanels_b = (nc + nr - 1) / nr;
            for (fnn_idx pc = 0; pc < k; pc += KC) {
                const fnn_idx kc = FNN_MIN(KC, k - pc);
                const T beta_now = pc == 0 ? beta : (T)1;
                const FN(fnn_epi) *epi_now = pc + kc == k ? epi : NULL;
#pragma omp barrier
                /* every thread is done with the previous B block */
#pragma omp for schedule(static)
                for (fnn_idx q = 0; q < npanels_b; ++q)
                    FN(pack_b)(FNN_MIN(nr, nc - q * nr), kc, b + pc * rsb + (jc + q * nr) * csb,
                               rsb, csb, (int)nr, bp + q * nr * kc);
                for (fnn_idx ic = 0; ic < m; ic += MC) {
                    const fnn_idx mc = FNN_MIN(MC, m - ic), npanels_a = (mc + mr - 1) / mr;
                    T *apc = ap[round++ & 1];
#pragma omp for schedule(static)
                    for (fnn_idx q = 0; q < npanels_a; ++q)
                        FN(pack_a)(FNN_MIN(mr, mc - q * mr), kc, a + (ic + q * mr) * rsa + pc * csa,
                                   rsa, csa, (int)mr, apc + q * mr * kc);
                    /* the barrier ending that loop also means nobody still reads the other A buffer */
#pragma omp for schedule(static) nowait
                    for (fnn_idx q = 0; q < npanels_b; ++q) {
                        FN(macro_column)(cfg, mc, FNN_MIN(nr, nc - q * nr), kc, alpha, apc,
                                         bp + q * nr * kc, beta_now, c + ic * ldc + jc + q * nr, ldc,
                                         epi_now, jc + q * nr);
                        ++tiles;
                    }
                }
            }
        }
        if (tiles) {
#pragma omp atomic
            ++workers;
        }
    }
    __atomic_store_n(&fnn_last_workers, workers, __ATOMIC_RELAXED);
    free(ws);
}

static void FN(gemm)(int variant, fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                     fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c, fnn_idx ldc)
{
    switch (variant) {
    case FNN_GEMM_NAIVE:
        FN(gemm_naive)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        break;
    case FNN_GEMM_REORDER:
        FN(gemm_reorder)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        break;
    case FNN_GEMM_BLOCKED:
        FN(gemm_blocked)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        break;
    case FNN_GEMM_PACKED:
        FN(fnn_gemm_packed)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, NULL, 1);
        break;
    default:
        FN(fnn_gemm_packed)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, NULL,
                            fnn_gemm_threads(m, n, k));
    }
}
