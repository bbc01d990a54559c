/* GEMM ladder (thin shapes: thin_impl.h) and the dense layer built on it, for float32 and
 * float64. */
#include <stdlib.h>

#include "fastnn_internal.h"

#define T float
#define S s
#define FNN_IS_FLOAT 1
#include "thin_impl.h"
#include "gemm_impl.h"
#undef T
#undef S
#undef FNN_IS_FLOAT

#define T double
#define S d
#define FNN_IS_FLOAT 0
#include "thin_impl.h"
#include "gemm_impl.h"
#undef T
#undef S
#undef FNN_IS_FLOAT

int fnn_gemm_threads(fnn_idx m, fnn_idx n, fnn_idx k)
{
    return fnn_team(2.0 * (double)m * (double)n * (double)k, FNN_GRAIN_GEMM);
}

void fnn_gemm(int dt, int variant, fnn_idx m, fnn_idx n, fnn_idx k, double alpha,
              const void *a, fnn_idx rsa, fnn_idx csa, const void *b, fnn_idx rsb, fnn_idx csb,
              double beta, void *c, fnn_idx ldc)
{
    if (dt == FNN_F64)
        gemm_d(variant, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
    else
        gemm_s(variant, m, n, k, (float)alpha, a, rsa, csa, b, rsb, csb, (float)beta, c, ldc);
}

/* y = act(x w + bias): the bias and activation run in the GEMM's epilogue, on each tile
 * right after its last k block, instead of as a second pass over y. */
void fnn_dense_forward(int dt, fnn_idx n, fnn_idx in, fnn_idx out,
                       const void *x, fnn_idx rsx, fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw,
                       const void *bias, void *y, int act, double alpha)
{
    int threads = fnn_gemm_threads(n, out, in);
    if (dt == FNN_F64) {
        fnn_epi_d epi = {bias, act, alpha};
        fnn_gemm_packed_d(n, out, in, 1.0, x, rsx, csx, w, rsw, csw, 0.0, y, out, &epi, threads);
    } else {
        fnn_epi_s epi = {bias, act, (float)alpha};
        fnn_gemm_packed_s(n, out, in, 1.0f, x, rsx, csx, w, rsw, csw, 0.0f, y, out, &epi, threads);
    }
}

/* dz = dy act'(y) with db = column sums of dz in the same pass; then dw = x^T dz and
 * dx = dz w^T as GEMMs whose transposes are only swapped strides. */
void fnn_dense_backward(int dt, fnn_idx n, fnn_idx in, fnn_idx out,
                        const void *x, fnn_idx rsx, fnn_idx csx, const void *w, fnn_idx rsw, fnn_idx csw,
                        const void *y, const void *dy, void *dz, void *dx, void *dw, void *db,
                        int act, double alpha)
{
    if (dt == FNN_F64) {
        fnn_act_grad_colsum_d(n, out, y, dy, dz, db, act, alpha);
        fnn_gemm_packed_d(in, out, n, 1.0, x, csx, rsx, dz, out, 1, 0.0, dw, out, NULL,
                          fnn_gemm_threads(in, out, n));
        if (dx)
            fnn_gemm_packed_d(n, in, out, 1.0, dz, out, 1, w, csw, rsw, 0.0, dx, in, NULL,
                              fnn_gemm_threads(n, in, out));
    } else {
        fnn_act_grad_colsum_s(n, out, y, dy, dz, db, act, (float)alpha);
        fnn_gemm_packed_s(in, out, n, 1.0f, x, csx, rsx, dz, out, 1, 0.0f, dw, out, NULL,
                          fnn_gemm_threads(in, out, n));
        if (dx)
            fnn_gemm_packed_s(n, in, out, 1.0f, dz, out, 1, w, csw, rsw, 0.0f, dx, in, NULL,
                              fnn_gemm_threads(n, in, out));
    }
}
