/* GEMM micro-kernels and blocking parameters for each SIMD path.
 *
 *   path     float32 tile  float64 tile  registers holding C
 *   generic  4 x 8         4 x 8         (plain C; the compiler uses SSE2)
 *   avx2     6 x 16        6 x 8         12 of 16 ymm
 *   avx512   12 x 32       12 x 16       24 of 32 zmm
 *
 * The SIMD kernels come from one template (ukernel_simd.h) instantiated with the
 * intrinsics of each instruction set inside functions carrying
 * __attribute__((target(...))), so this file compiles for baseline x86-64 and the
 * wide instructions only run when fnn_cpu_supports() said so. Blocking: kc x nr
 * panels of B stay in L1, mc x kc blocks of A in L2, kc x nc blocks of B in L3.
 */
#include "fastnn_internal.h"

/* --- generic C micro-kernels ---------------------------------------------------- */
#define GEN_MR 4
#define GEN_NR 8

#define T float
#define S s
#include "ukernel_generic.h"
#undef T
#undef S
#define T double
#define S d
#include "ukernel_generic.h"
#undef T
#undef S

#if FNN_X86
#include <immintrin.h>

#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ROWS12(X) ROWS6(X) X(6) X(7) X(8) X(9) X(10) X(11)

/* --- AVX2 + FMA: 256-bit vectors ----------------------------------------------------- */
#define UK_TARGET __attribute__((target("avx2,fma")))
#define MR 6
#define UK_ROWS ROWS6

#define UK_NAME ukr_avx2_s
#define T float
#define V __m256
#define VL 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_load_ps(p)
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VSET1(x) _mm256_set1_ps(x)
#include "ukernel_simd.h"
#undef UK_NAME
#undef T
#undef V
#undef VL
#undef VZERO
#undef VLOAD
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VMUL
#undef VSET1

#define UK_NAME ukr_avx2_d
#define T double
#define V __m256d
#define VL 4
#define VZERO() _mm256_setzero_pd()
#define VLOAD(p) _mm256_load_pd(p)
#define VLOADU(p) _mm256_loadu_pd(p)
#define VSTOREU(p, v) _mm256_storeu_pd(p, v)
#define VBCAST(p) _mm256_broadcast_sd(p)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VMUL(a, b) _mm256_mul_pd(a, b)
#define VSET1(x) _mm256_set1_pd(x)
#include "ukernel_simd.h"
#undef UK_NAME
#undef T
#undef V
#undef VL
#undef VZERO
#undef VLOAD
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VMUL
#undef VSET1
#undef UK_TARGET
#undef MR
#undef UK_ROWS

/* --- AVX-512F: 512-bit vectors ---------------------------------------------------------- */
#define UK_TARGET __attribute__((target("avx512f")))
#define MR 12
#define UK_ROWS ROWS12

#define UK_NAME ukr_avx512_s
#define T float
#define V __m512
#define VL 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_load_ps(p)
#define VLOADU(p) _mm512_loadu_ps(p)
#define VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VSET1(x) _mm512_set1_ps(x)
#include "ukernel_simd.h"
#undef UK_NAME
#undef T
#undef V
#undef VL
#undef VZERO
#undef VLOAD
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VMUL
#undef VSET1

#define UK_NAME ukr_avx512_d
#define T double
#define V __m512d
#define VL 8
#define VZERO() _mm512_setzero_pd()
#define VLOAD(p) _mm512_load_pd(p)
#define VLOADU(p) _mm512_loadu_pd(p)
#define VSTOREU(p, v) _mm512_storeu_pd(p, v)
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VMUL(a, b) _mm512_mul_pd(a, b)
#define VSET1(x) _mm512_set1_pd(x)
#include "ukernel_simd.h"
#undef UK_NAME
#undef T
#undef V
#undef VL
#undef VZERO
#undef VLOAD
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VMUL
#undef VSET1
#undef UK_TARGET
#undef MR
#undef UK_ROWS

#define AVX2_S {ukr_avx2_s, 6, 16, 168, 256, 4080}
#define AVX2_D {ukr_avx2_d, 6, 8, 96, 256, 4080}
#define AVX512_S {ukr_avx512_s, 12, 32, 144, 192, 4096}
#define AVX512_D {ukr_avx512_d, 12, 16, 96, 192, 4096}
#else  /* not x86: fnn_cpu_supports() refuses these paths; the table stays complete */
#define AVX2_S {ukr_generic_s, GEN_MR, GEN_NR, 128, 256, 4096}
#define AVX2_D {ukr_generic_d, GEN_MR, GEN_NR, 128, 256, 4096}
#define AVX512_S AVX2_S
#define AVX512_D AVX2_D
#endif

/* Indexed by FNN_SIMD_GENERIC, FNN_SIMD_AVX2, FNN_SIMD_AVX512. */
const fnn_gemm_cfg_s fnn_gemm_cfgs_s[FNN_SIMD_COUNT] = {
    {ukr_generic_s, GEN_MR, GEN_NR, 128, 256, 4096}, AVX2_S, AVX512_S};
const fnn_gemm_cfg_d fnn_gemm_cfgs_d[FNN_SIMD_COUNT] = {
    {ukr_generic_d, GEN_MR, GEN_NR, 128, 256, 4096}, AVX2_D, AVX512_D};
