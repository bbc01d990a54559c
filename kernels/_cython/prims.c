/* The tier-1 primitives of kernels/primitives.py: the typed code comes from prims_impl.h
 * (once per precision); the functions below pick the precision. gemm_batched is one call
 * of the backend's GEMM (fnn_gemm, packed SIMD + OpenMP) per matrix. */
#include <math.h>

#include "fastnn_internal.h"

/* Position of the first index outside [0, rows), or -1. */
static fnn_idx prim_first_bad(fnn_idx n, const int64_t *idx, fnn_idx rows)
{
    for (fnn_idx i = 0; i < n; ++i)
        if (idx[i] < 0 || idx[i] >= (int64_t)rows)
            return i;
    return -1;
}

#define T float
#define S s
#define EXP expf
#define LOG logf
#define LOG1P log1pf
#define SQRT sqrtf
#define FABS fabsf
#include "prims_impl.h"
#undef T
#undef S
#undef EXP
#undef LOG
#undef LOG1P
#undef SQRT
#undef FABS

#define T double
#define S d
#define EXP exp
#define LOG log
#define LOG1P log1p
#define SQRT sqrt
#define FABS fabs
#include "prims_impl.h"
#undef T
#undef S
#undef EXP
#undef LOG
#undef LOG1P
#undef SQRT
#undef FABS

#define BY_DTYPE(name, ...) (dt == FNN_F64 ? name##_d(__VA_ARGS__) : name##_s(__VA_ARGS__))

void fnn_unary(int dt, int op, fnn_idx n, const void *x, void *out)
{
    BY_DTYPE(unary, op, n, x, out);
}

void fnn_binary(int dt, int op, fnn_idx n, const void *a, const void *b, void *out)
{
    BY_DTYPE(binary, op, n, a, b, out);
}

void fnn_reduce_sum(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out)
{
    if (axis == 1)
        BY_DTYPE(row_sums, n, d, x, out);
    else
        BY_DTYPE(column_sums, n, d, x, out);
}

void fnn_reduce_max(int dt, int axis, fnn_idx n, fnn_idx d, const void *x, void *out)
{
    if ((axis == 1 ? d : n) == 0)   /* no max of nothing (the Cython layer refuses it) */
        return;
    if (axis == 1)
        BY_DTYPE(row_maxes, n, d, x, out);
    else
        BY_DTYPE(column_maxes, n, d, x, out);
}

fnn_idx fnn_gather_rows(int dt, fnn_idx r, fnn_idx d, const void *x, fnn_idx n,
                        const int64_t *indices, void *out)
{
    return BY_DTYPE(gather_rows, r, d, x, n, indices, out);
}

fnn_idx fnn_scatter_add_rows(int dt, fnn_idx n, fnn_idx d, const void *src, const int64_t *indices,
                             fnn_idx r, void *out)
{
    return BY_DTYPE(scatter_add_rows, n, d, src, indices, r, out);
}

void fnn_gemm_batched(int dt, fnn_idx batch, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
                      const void *a, fnn_idx bsa, fnn_idx rsa, fnn_idx csa,
                      const void *b, fnn_idx bsb, fnn_idx rsb, fnn_idx csb,
                      double beta, void *c, fnn_idx bsc, fnn_idx ldc)
{
    size_t size = dt == FNN_F64 ? sizeof(double) : sizeof(float);
    for (fnn_idx i = 0; i < batch; ++i)   /* each product threaded by the GEMM's own rule */
        fnn_gemm(dt, FNN_GEMM_PARALLEL, m, n, k, alpha, (const char *)a + i * bsa * size, rsa, csa,
                 (const char *)b + i * bsb * size, rsb, csb, beta, (char *)c + i * bsc * size, ldc);
}
