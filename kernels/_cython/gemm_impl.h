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
 *
 * Rungs 4 and 5 hand thin shapes (one row or column of C, or a few elements) to the dot /
 * axpy code of thin_impl.h, where micro-tiles would multiply mostly padding. */

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

/* A full micro-panel of MR rows from row-major A (cs == 1): MR read streams, one
 * contiguous write stream; MR is a constant so the row loop unrolls completely. On x86
 * the float version moves 4 x 4 blocks through SSE registers (baseline x86-64) instead
 * of one element at a time. */
#define PACK_A_ROWS(MR)                                                                 \
    __attribute__((noinline)) static void FN(pack_a_rows##MR)(fnn_idx kc, const T *a,   \
                                                              fnn_idx rs, T *dst)       \
    {                                                                                   \
        fnn_idx p = FN(pack_a_rows_simd)(MR, kc, a, rs, dst);                           \
        for (; p < kc; ++p)                                                             \
            for (int r = 0; r < MR; ++r)                                                \
                dst[p * MR + r] = a[r * rs + p];                                        \
    }

#if FNN_X86 && FNN_IS_FLOAT
#include <emmintrin.h>
/* Columns [0, kc & ~3) of an mr-row panel (mr = 4, 6 or 12); returns the first column
 * not done. Rows go in groups of four (a 4 x 4 transpose) and a last pair (unpack). */
static inline fnn_idx FN(pack_a_rows_simd)(int mr, fnn_idx kc, const T *a, fnn_idx rs, T *dst)
{
    fnn_idx p = 0;
    for (; p + 4 <= kc; p += 4) {
        T *d = dst + p * mr;
        int r = 0;
        for (; r + 4 <= mr; r += 4) {
            __m128 r0 = _mm_loadu_ps(a + (r + 0) * rs + p), r1 = _mm_loadu_ps(a + (r + 1) * rs + p);
            __m128 r2 = _mm_loadu_ps(a + (r + 2) * rs + p), r3 = _mm_loadu_ps(a + (r + 3) * rs + p);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);   /* now r_j holds column p + j of the 4 rows */
            _mm_storeu_ps(d + 0 * mr + r, r0);
            _mm_storeu_ps(d + 1 * mr + r, r1);
            _mm_storeu_ps(d + 2 * mr + r, r2);
            _mm_storeu_ps(d + 3 * mr + r, r3);
        }
        if (r < mr) {  /* the last two rows */
            __m128 x = _mm_loadu_ps(a + r * rs + p), y = _mm_loadu_ps(a + (r + 1) * rs + p);
            __m128 lo = _mm_unpacklo_ps(x, y), hi = _mm_unpackhi_ps(x, y);
            _mm_storel_pi((__m64 *)(d + 0 * mr + r), lo);
            _mm_storeh_pi((__m64 *)(d + 1 * mr + r), lo);
            _mm_storel_pi((__m64 *)(d + 2 * mr + r), hi);
            _mm_storeh_pi((__m64 *)(d + 3 * mr + r), hi);
        }
    }
    return p;
}
#else
static inline fnn_idx FN(pack_a_rows_simd)(int mr, fnn_idx kc, const T *a, fnn_idx rs, T *dst)
{
    (void)mr; (void)kc; (void)a; (void)rs; (void)dst;
    return 0;
}
#endif

PACK_A_ROWS(4)
PACK_A_ROWS(6)
PACK_A_ROWS(12)
#undef PACK_A_ROWS

/* Copy rows [0, rows) x columns [0, kc) of op(A) into one micro-panel of mr rows stored
 * column by column (dst[p*mr + r] = A(r, p)); rows past `rows` are zero so the
 * micro-kernel never needs an edge case. */
__attribute__((noinline)) static void FN(pack_a)(fnn_idx rows, fnn_idx kc, const T *a, fnn_idx rs, fnn_idx cs, int mr, T *dst)
{
    if (rows == mr && rs == 1) {          /* A transposed: a column of the panel is contiguous */
        for (fnn_idx p = 0; p < kc; ++p)
            for (int r = 0; r < mr; ++r)
                dst[p * mr + r] = a[p * cs + r];
        return;
    }
    if (rows == mr && cs == 1) {          /* row-major A, the common case: unrolled rows */
        switch (mr) {
        case 4: FN(pack_a_rows4)(kc, a, rs, dst); return;
        case 6: FN(pack_a_rows6)(kc, a, rs, dst); return;
        case 12: FN(pack_a_rows12)(kc, a, rs, dst); return;
        }
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
__attribute__((noinline)) static void FN(pack_b)(fnn_idx cols, fnn_idx kc, const T *b, fnn_idx rs,
                                                 fnn_idx cs, int nr, T *dst)
{
    for (fnn_idx j = 0; j < cols; ++j) {  /* column by column: contiguous reads when rs == 1 */
        const T *src = b + j * cs;
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * nr + j] = src[p * rs];
    }
    for (fnn_idx j = cols; j < nr; ++j)
        for (fnn_idx p = 0; p < kc; ++p)
            dst[p * nr + j] = 0;
}

/* Rows [p0, p1) of the kc x nc block of a row-major op(B) (cs == 1) into all of its
 * panels: each row of B is read once, front to back (what the hardware prefetcher
 * likes), and scattered nr values at a time into the panels. */
__attribute__((noinline)) static void FN(pack_b_rows)(fnn_idx p0, fnn_idx p1, fnn_idx nc, fnn_idx kc,
                                                      const T *b, fnn_idx rs, int nr, T *dst)
{
    const fnn_idx full = nc / nr * nr;
    for (fnn_idx p = p0; p < p1; ++p) {
        const T *src = b + p * rs;
        T *d = dst + p * nr;
        for (fnn_idx j = 0; j < full; j += nr, d += nr * kc)
            for (int jj = 0; jj < nr; ++jj)
                d[jj] = src[j + jj];
        if (full < nc) {
            for (fnn_idx jj = 0; jj < nc - full; ++jj)
                d[jj] = src[full + jj];
            for (fnn_idx jj = nc - full; jj < nr; ++jj)
                d[jj] = 0;
        }
    }
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

/* Rows of C handled per round of packing: all of op(A)'s rows up to this many are packed
 * at once (4096 x 256 floats = 4 MiB, an L3-sized block), so one round needs only two
 * barriers however many threads share it. */
#define FNN_ROWS_PER_ROUND 4096
/* Rows of a row-major B block per packing task. */
#define B_ROWS 16

/* One packed GEMM's operands, blocking and buffers, shared by the threads running it. */
typedef struct {
    fnn_idx m, n, k;
    T alpha, beta;
    const T *a, *b;
    fnn_idx rsa, csa, rsb, csb;
    T *c;
    fnn_idx ldc;
    const FN(fnn_epi) *epi;
    const FN(fnn_gemm_cfg) *cfg;
    fnn_idx KC, rows_per_round;
    T *ap, *bp;
} FN(gemm_job);

/* The loop nest of rungs 4 and 5, run by each of `team` threads (or by the caller alone,
 * outside any parallel region: the worksharing loops then simply run in full). BLIS
 * order: jc over nc columns of C, pc over kc of k; for each (jc, pc) the team packs the
 * kc x nc block of B and a block of up to rows_per_round rows of A into micro-panels,
 * meets at a barrier, then computes work items -- an mc x (ppi * nr) tile of C: an
 * L2-sized A block times a few B panels -- and meets again before the buffers are
 * refilled. Both loops hand out one item at a time (dynamic schedule), so a thread that
 * the OS delays on a busy machine leaves its share to the others.
 * Returns the number of work items this thread computed. */
static int FN(gemm_run)(const FN(gemm_job) *job, int team)
{
    const FN(fnn_gemm_cfg) *cfg = job->cfg;
    const fnn_idx m = job->m, n = job->n, k = job->k, mr = cfg->mr, nr = cfg->nr;
    const fnn_idx MC = cfg->mc, NC = cfg->nc, KC = job->KC, ROUND = job->rows_per_round;
    const fnn_idx rsa = job->rsa, csa = job->csa, rsb = job->rsb, csb = job->csb, ldc = job->ldc;
    const T *a = job->a, *b = job->b;
    T *ap = job->ap, *bp = job->bp;
    int tiles = 0;
    for (fnn_idx jc = 0; jc < n; jc += NC) {
        const fnn_idx nc = FNN_MIN(NC, n - jc), panels_b = (nc + nr - 1) / nr;
        for (fnn_idx pc = 0; pc < k; pc += KC) {
            const fnn_idx kc = FNN_MIN(KC, k - pc);
            const T beta_now = pc == 0 ? job->beta : (T)1;
            const FN(fnn_epi) *epi_now = pc + kc == k ? job->epi : NULL;
            for (fnn_idx i0 = 0; i0 < m; i0 += ROUND) {
                const fnn_idx rows = FNN_MIN(ROUND, m - i0), panels_a = (rows + mr - 1) / mr;
                /* B is repacked only when pc or jc moved on, i.e. for the first row round:
                 * by chunks of B_ROWS rows when B is row-major, else panel by panel */
                const int b_by_rows = csb == 1;
                const fnn_idx pack_b = i0 > 0 ? 0 : b_by_rows ? (kc + B_ROWS - 1) / B_ROWS : panels_b;
                /* work items: blocks of MC rows x groups of ppi column panels; groups
                 * shrink until every thread has a few items to balance */
                const fnn_idx blocks = (rows + MC - 1) / MC;
                fnn_idx ppi = 4;
                while (ppi > 1 && blocks * ((panels_b + ppi - 1) / ppi) < 4 * team)
                    ppi /= 2;
                const fnn_idx groups = (panels_b + ppi - 1) / ppi;

#pragma omp for schedule(dynamic, 1)
                for (fnn_idx q = 0; q < pack_b + panels_a; ++q) {
                    if (q < pack_b && b_by_rows)
                        FN(pack_b_rows)(q * B_ROWS, FNN_MIN(kc, (q + 1) * B_ROWS), nc, kc,
                                        b + pc * rsb + jc, rsb, (int)nr, bp);
                    else if (q < pack_b)
                        FN(pack_b)(FNN_MIN(nr, nc - q * nr), kc, b + pc * rsb + (jc + q * nr) * csb,
                                   rsb, csb, (int)nr, bp + q * nr * kc);
                    else {
                        fnn_idx qa = q - pack_b;
                        FN(pack_a)(FNN_MIN(mr, rows - qa * mr), kc, a + (i0 + qa * mr) * rsa + pc * csa,
                                   rsa, csa, (int)mr, ap + qa * mr * kc);
                    }
                }
                /* (implicit barrier: packing done) */
#pragma omp for schedule(dynamic, 1)
                for (fnn_idx item = 0; item < blocks * groups; ++item) {
                    const fnn_idx blk = item / groups, grp = item % groups;
                    const fnn_idx ib = blk * MC, mc = FNN_MIN(MC, rows - ib);
                    const fnn_idx q1 = FNN_MIN(panels_b, (grp + 1) * ppi);
                    for (fnn_idx q = grp * ppi; q < q1; ++q)
                        FN(macro_column)(cfg, mc, FNN_MIN(nr, nc - q * nr), kc, job->alpha, ap + ib * kc,
                                         bp + q * nr * kc, beta_now,
                                         job->c + (i0 + ib) * ldc + jc + q * nr, ldc, epi_now, jc + q * nr);
                    ++tiles;
                }
                /* (implicit barrier: nobody reads the packed blocks any more) */
            }
        }
    }
    return tiles;
}

/* Rungs 4 (threads == 1: no parallel region at all) and 5 (an OpenMP team). */
void FN(fnn_gemm_packed)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                         fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                         fnn_idx ldc, const FN(fnn_epi) *epi, int threads)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {  /* (alpha == 0 is computed: 0 * NaN is NaN, as in the reference) */
        FN(scale_c)(m, n, beta, c, ldc);
        if (epi)
            FN(fnn_bias_act)(c, ldc, m, n, epi->bias, epi->act, epi->alpha);
        return;
    }
    if (FN(gemm_is_thin)(m, n)) {  /* a row, a column or a few outputs: thin_impl.h */
        FN(gemm_thin)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc, epi, threads);
        return;
    }
    const FN(fnn_gemm_cfg) *cfg = &FN(fnn_gemm_cfgs)[fnn_simd_current];
    FN(gemm_job) job = {m, n, k, alpha, beta, a, b, rsa, csa, rsb, csb, c, ldc, epi, cfg, 0, 0, NULL, NULL};
    /* equal k blocks of at most cfg->kc: 784 -> 4 x 196, not 3 x 256 + a thin 16 */
    const fnn_idx kblocks = (k + cfg->kc - 1) / cfg->kc;
    job.KC = FNN_ROUND_UP((k + kblocks - 1) / kblocks, 4);
    job.rows_per_round = FNN_ROUND_UP(FNN_ROWS_PER_ROUND, cfg->mc);
    const fnn_idx a_rows = FNN_MIN(job.rows_per_round, FNN_ROUND_UP(m, cfg->mr));
    const fnn_idx b_cols = FNN_MIN(cfg->nc, FNN_ROUND_UP(n, cfg->nr));
    const fnn_idx kc_max = FNN_MIN(job.KC, k);
    /* two allocations, not one: an overrun of either buffer then reaches memory that
     * AddressSanitizer guards (see sanitize.sh) */
    job.bp = FN(workspace)((size_t)(b_cols * kc_max));
    job.ap = FN(workspace)((size_t)(a_rows * kc_max));
    if (!job.bp || !job.ap) {  /* out of memory: the unpacked rung needs no buffers */
        free(job.bp);
        free(job.ap);
        FN(gemm_blocked)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        if (epi)
            FN(fnn_bias_act)(c, ldc, m, n, epi->bias, epi->act, epi->alpha);
        return;
    }
    int workers = 0, team_size = 1;
    if (threads <= 1) {
        workers = FN(gemm_run)(&job, 1) > 0;
    } else {
#pragma omp parallel num_threads(threads)
        {
            const int team = omp_get_num_threads();
            if (omp_get_thread_num() == 0)
                team_size = team;
            if (FN(gemm_run)(&job, team) > 0) {
#pragma omp atomic
                ++workers;
            }
        }
    }
    __atomic_store_n(&fnn_last_workers, workers, __ATOMIC_RELAXED);
    __atomic_store_n(&fnn_last_team, team_size, __ATOMIC_RELAXED);
    free(job.bp);
    free(job.ap);
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
