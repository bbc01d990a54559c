/* The portable micro-kernel (any CPU): same contract as ukernel_simd.h for a
 * GEN_MR x GEN_NR tile, written as plain loops over a local accumulator array that the
 * compiler keeps in (baseline SSE2) registers. Included once per precision. */

static void FN(ukr_generic)(fnn_idx k, const T *restrict a, const T *restrict b,
                            T *restrict c, fnn_idx ldc, T alpha, T beta)
{
    T acc[GEN_MR][GEN_NR] = {{0}};
    for (fnn_idx p = 0; p < k; ++p, a += GEN_MR, b += GEN_NR)
        for (int i = 0; i < GEN_MR; ++i)
            for (int j = 0; j < GEN_NR; ++j)
                acc[i][j] += a[i] * b[j];
    for (int i = 0; i < GEN_MR; ++i) {
        T *ci = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < GEN_NR; ++j)
                ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < GEN_NR; ++j)
                ci[j] = beta * ci[j] + alpha * acc[i][j];
    }
}
