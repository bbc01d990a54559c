/* One register-blocked GEMM micro-kernel in SIMD intrinsics, included by ukernels.c
 * once per (instruction set, precision). The includer defines:
 *
 *   UK_NAME, UK_TARGET      function name and __attribute__((target("...")))
 *   T, V, VL, MR            scalar type, vector type, elements per vector, rows
 *   UK_ROWS(X)              X(0) X(1) ... X(MR-1): the rows, unrolled by the preprocessor
 *   VZERO() VLOAD(p) VLOADU(p) VSTOREU(p, v) VBCAST(p) VFMA(a, b, c) VMUL(a, b) VSET1(x)
 *
 * It computes the MR x 2*VL tile  C = alpha * A_panel B_panel + beta * C  where
 *   a: packed A micro-panel, k columns of MR values each (a[p*MR + i] = A(i, p));
 *   b: packed B micro-panel, k rows of 2*VL values each, 64-byte aligned;
 *   c: the tile's top-left element in row-major C with leading dimension ldc.
 * Each row of the tile lives in two vector registers for the whole k loop, so per
 * step of k it loads one row of B (2 vectors), broadcasts MR values of A and issues
 * 2*MR independent fused multiply-adds. beta == 0 writes C without reading it.
 */

UK_TARGET static void UK_NAME(fnn_idx k, const T *restrict a, const T *restrict b,
                              T *restrict c, fnn_idx ldc, T alpha, T beta)
{
#define UK_DECLARE(i) V c##i##_0 = VZERO(), c##i##_1 = VZERO();
#define UK_UPDATE(i) { V ai = VBCAST(a + (i)); \
                       c##i##_0 = VFMA(ai, b0, c##i##_0); \
                       c##i##_1 = VFMA(ai, b1, c##i##_1); }
/* Stores walk down the rows with one pointer: keeping MR row addresses live would take
 * general registers the compiler then borrows vector registers for. */
#define UK_STORE(i) VSTOREU(ci, VMUL(va, c##i##_0)); \
                    VSTOREU(ci + VL, VMUL(va, c##i##_1)); ci += ldc;
#define UK_STORE_BETA(i) VSTOREU(ci, VFMA(vb, VLOADU(ci), VMUL(va, c##i##_0))); \
                         VSTOREU(ci + VL, VFMA(vb, VLOADU(ci + VL), VMUL(va, c##i##_1))); ci += ldc;

    /* the tile of C is written at the end: start fetching it now */
#pragma GCC unroll 1
    for (int i = 0; i < MR; ++i) {
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + 2 * VL - 1, 1);
    }
    UK_ROWS(UK_DECLARE)
    for (fnn_idx p = 0; p < k; ++p) {
        V b0 = VLOAD(b), b1 = VLOAD(b + VL);
        UK_ROWS(UK_UPDATE)
        a += MR;
        b += 2 * VL;
    }
    V va = VSET1(alpha);
    T *ci = c;
    if (beta == 0) {
        UK_ROWS(UK_STORE)
    } else {
        V vb = VSET1(beta);
        UK_ROWS(UK_STORE_BETA)
    }

#undef UK_DECLARE
#undef UK_UPDATE
#undef UK_STORE
#undef UK_STORE_BETA
}
