/* GEMM for thin shapes, for one precision (included by gemm.c before gemm_impl.h).
 *
 * C = alpha op(A) op(B) + beta C when op(A) is one row, op(B) one column, or C has at most
 * FNN_THIN_MAX_ELEMENTS elements. The packed GEMM would compute whole MR x NR micro-tiles
 * (12 x 32 floats on AVX-512: for 1 x K x 1, 383 of 384 products are padding) and pack and
 * hand out every KC block of K. Here each element of C is a dot product (unit stride along
 * K in both operands: several partial sums, vectorised), or, when the rows of op(B) (or
 * the columns of op(A)) are the contiguous direction, a run of axpys along them. A big K
 * is split over threads; each thread sums its chunk into its own partial C, and the
 * partials are added in thread order, so the result does not depend on scheduling. */

#ifndef FNN_THIN_MAX_ELEMENTS
#define FNN_THIN_MAX_ELEMENTS 16
#define FNN_THIN_MIN_CHUNK 4096   /* fewest multiply-adds of K a thread gets */
#endif

static inline int FN(gemm_is_thin)(fnn_idx m, fnn_idx n)
{
    return m == 1 || n == 1 || m * n <= FNN_THIN_MAX_ELEMENTS;
}

/* sum x[p] y[p], both unit stride: LANES independent partial sums (no reassociation of one
 * running sum is needed for the compiler to vectorise it), added up in a fixed order. */
#define THIN_DOT_UNIT(LANES)                                            \
    {                                                                   \
        T s[LANES] = {0};                                               \
        fnn_idx p = 0;                                                  \
        for (; p + LANES <= k; p += LANES)                              \
            for (int r = 0; r < LANES; ++r)                             \
                s[r] += x[p + r] * y[p + r];                            \
        T tail = 0;                                                     \
        for (; p < k; ++p)                                              \
            tail += x[p] * y[p];                                        \
        for (int w = LANES / 2; w > 0; w /= 2)                          \
            for (int r = 0; r < w; ++r)                                 \
                s[r] += s[r + w];                                       \
        return s[0] + tail;                                             \
    }

static T FN(thin_dot_generic)(fnn_idx k, const T *restrict x, const T *restrict y)
THIN_DOT_UNIT(16)

#if FNN_X86
__attribute__((target("avx2,fma")))
static T FN(thin_dot_avx2)(fnn_idx k, const T *restrict x, const T *restrict y)
THIN_DOT_UNIT(128 / (int)sizeof(T))
#endif
#undef THIN_DOT_UNIT

static T FN(thin_dot)(fnn_idx k, const T *x, fnn_idx incx, const T *y, fnn_idx incy)
{
    if (incx == 1 && incy == 1) {
#if FNN_X86
        if (fnn_simd_current >= FNN_SIMD_AVX2)
            return FN(thin_dot_avx2)(k, x, y);
#endif
        return FN(thin_dot_generic)(k, x, y);
    }
    T s0 = 0, s1 = 0;
    fnn_idx p = 0;
    for (; p + 2 <= k; p += 2) {
        s0 += x[p * incx] * y[p * incy];
        s1 += x[(p + 1) * incx] * y[(p + 1) * incy];
    }
    if (p < k)
        s0 += x[p * incx] * y[p * incy];
    return s0 + s1;
}

/* acc[i*n + j] = sum over p in [lo, hi) of op(A)(i, p) op(B)(p, j). */
static void FN(thin_partial)(fnn_idx m, fnn_idx n, fnn_idx lo, fnn_idx hi, const T *a, fnn_idx rsa,
                             fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T *acc)
{
    const int dot = (csa == 1 && rsb == 1) || m * n <= FNN_THIN_MAX_ELEMENTS;
    for (fnn_idx q = 0; q < m * n; ++q)
        acc[q] = 0;
    if (!dot && csb == 1 && (n >= m || rsa != 1)) {      /* rows of op(B) contiguous */
        for (fnn_idx i = 0; i < m; ++i) {
            T *restrict row = acc + i * n;
            for (fnn_idx p = lo; p < hi; ++p) {
                const T s = a[i * rsa + p * csa];
                const T *restrict brow = b + p * rsb;
                for (fnn_idx j = 0; j < n; ++j)
                    row[j] += s * brow[j];
            }
        }
    } else if (!dot && rsa == 1) {                        /* columns of op(A) contiguous */
        for (fnn_idx j = 0; j < n; ++j)
            for (fnn_idx p = lo; p < hi; ++p) {
                const T s = b[p * rsb + j * csb];
                const T *restrict acol = a + p * csa;
                for (fnn_idx i = 0; i < m; ++i)
                    acc[i * n + j] += acol[i] * s;
            }
    } else {
        for (fnn_idx i = 0; i < m; ++i)
            for (fnn_idx j = 0; j < n; ++j)
                acc[i * n + j] = FN(thin_dot)(hi - lo, a + i * rsa + lo * csa, csa,
                                              b + j * csb + lo * rsb, rsb);
    }
}

/* The whole thin GEMM on up to `threads` threads, with the dense layer's epilogue. */
static void FN(gemm_thin)(fnn_idx m, fnn_idx n, fnn_idx k, T alpha, const T *a, fnn_idx rsa,
                          fnn_idx csa, const T *b, fnn_idx rsb, fnn_idx csb, T beta, T *c,
                          fnn_idx ldc, const FN(fnn_epi) *epi, int threads)
{
    const fnn_idx size = m * n;
    int team = threads;
    if (team > k / FNN_THIN_MIN_CHUNK)
        team = (int)FNN_MAX(1, k / FNN_THIN_MIN_CHUNK);
    T local[FNN_THIN_MAX_ELEMENTS];
    T *parts = team == 1 && size <= FNN_THIN_MAX_ELEMENTS ? local
                                                         : malloc((size_t)team * (size_t)size * sizeof(T));
    int used = 1;
    if (!parts) {            /* out of memory: one dot product per element, no buffer */
        for (fnn_idx i = 0; i < m; ++i)
            for (fnn_idx j = 0; j < n; ++j) {
                T s = FN(thin_dot)(k, a + i * rsa, csa, b + j * csb, rsb);
                T *cij = c + i * ldc + j;
                *cij = beta == 0 ? alpha * s : alpha * s + beta * *cij;
            }
    } else {
        if (team <= 1) {
            FN(thin_partial)(m, n, 0, k, a, rsa, csa, b, rsb, csb, parts);
        } else {
#pragma omp parallel num_threads(team)
            {
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                if (t == 0)
                    used = nt;
                FN(thin_partial)(m, n, k * t / nt, k * (t + 1) / nt, a, rsa, csa, b, rsb, csb,
                                 parts + t * size);
            }
        }
        for (fnn_idx i = 0; i < m; ++i)
            for (fnn_idx j = 0; j < n; ++j) {
                T s = parts[i * n + j];
                for (int t = 1; t < used; ++t)
                    s += parts[t * size + i * n + j];
                T *cij = c + i * ldc + j;
                *cij = beta == 0 ? alpha * s : alpha * s + beta * *cij;
            }
        if (parts != local)
            free(parts);
    }
    if (epi)
        FN(fnn_bias_act)(c, ldc, m, n, epi->bias, epi->act, epi->alpha);
    __atomic_store_n(&fnn_last_workers, used, __ATOMIC_RELAXED);
    __atomic_store_n(&fnn_last_team, used, __ATOMIC_RELAXED);
}
