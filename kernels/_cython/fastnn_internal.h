/* Shared by the C sources only: OpenMP stubs, thread policy, GEMM configuration and
 * the one-line "template" machinery (a *_impl.h file is included once per precision
 * with T = float, S = s and once with T = double, S = d). */
#ifndef FASTNN_INTERNAL_H
#define FASTNN_INTERNAL_H

#include "fastnn_c.h"

#ifdef _OPENMP
#include <omp.h>
#else  /* built without OpenMP: everything runs on the calling thread */
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_X86 1
#else
#define FNN_X86 0
#endif

#define FNN_CAT_(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT_(a, b)
#define FN(name) FNN_CAT(name, S)   /* FN(gemm_packed) -> gemm_packed_s / gemm_packed_d */

#define FNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FNN_ROUND_UP(x, m) ((((x) + (m) - 1) / (m)) * (m))

/* The largest micro-tile of any path (AVX-512: 12 x 32 floats). */
#define FNN_MAX_MR 12
#define FNN_MAX_NR 32

/* C tile += or = alpha * A_panel B_panel: the register-blocked micro-kernel. */
typedef void (*fnn_ukr_s)(fnn_idx k, const float *a, const float *b, float *c, fnn_idx ldc,
                          float alpha, float beta);
typedef void (*fnn_ukr_d)(fnn_idx k, const double *a, const double *b, double *c, fnn_idx ldc,
                          double alpha, double beta);
/* One SIMD path's micro-kernel and blocking: mr x nr micro-tile; mc x kc block of A
 * (sized for L2), kc x nc block of B (for L3); mc is a multiple of mr, nc of nr. */
typedef struct { fnn_ukr_s ukr; int mr, nr, mc, kc, nc; } fnn_gemm_cfg_s;
typedef struct { fnn_ukr_d ukr; int mr, nr, mc, kc, nc; } fnn_gemm_cfg_d;
extern const fnn_gemm_cfg_s fnn_gemm_cfgs_s[FNN_SIMD_COUNT];
extern const fnn_gemm_cfg_d fnn_gemm_cfgs_d[FNN_SIMD_COUNT];

extern int fnn_simd_current;      /* index into fnn_gemm_cfgs_* */
extern int fnn_last_workers;      /* telemetry for tests: threads that computed GEMM tiles, */
extern int fnn_last_team;         /* and the size of the team that ran the last packed GEMM */

/* Threads for a loop of `work` units when one thread should get at least `grain`. */
int fnn_team(double work, double grain);

/* Work grains (elements or flops per thread) below which a loop stays serial: an OpenMP
 * region costs a few microseconds, so small loops are faster on one thread. */
#define FNN_GRAIN_LIGHT 65536.0      /* memory-bound element-wise loops */
#define FNN_GRAIN_HEAVY 8192.0       /* loops calling exp / tanh per element */
#define FNN_GRAIN_GEMM 1.5e6         /* flops of a packed GEMM per thread */

/* Internal typed entry points shared between gemm.c, ops.c and train.c. */
typedef struct { const float *bias; int act; float alpha; } fnn_epi_s;
typedef struct { const double *bias; int act; double alpha; } fnn_epi_d;
void fnn_gemm_packed_s(fnn_idx m, fnn_idx n, fnn_idx k, float alpha, const float *a, fnn_idx rsa,
                       fnn_idx csa, const float *b, fnn_idx rsb, fnn_idx csb, float beta, float *c,
                       fnn_idx ldc, const fnn_epi_s *epi, int threads);
void fnn_gemm_packed_d(fnn_idx m, fnn_idx n, fnn_idx k, double alpha, const double *a, fnn_idx rsa,
                       fnn_idx csa, const double *b, fnn_idx rsb, fnn_idx csb, double beta, double *c,
                       fnn_idx ldc, const fnn_epi_d *epi, int threads);
int fnn_gemm_threads(fnn_idx m, fnn_idx n, fnn_idx k);
void fnn_bias_act_s(float *c, fnn_idx ldc, fnn_idx rows, fnn_idx cols, const float *bias, int act,
                    float alpha);
void fnn_bias_act_d(double *c, fnn_idx ldc, fnn_idx rows, fnn_idx cols, const double *bias, int act,
                    double alpha);
void fnn_act_grad_colsum_s(fnn_idx n, fnn_idx o, const float *y, const float *dy, float *dz,
                           float *db, int act, float alpha);
void fnn_act_grad_colsum_d(fnn_idx n, fnn_idx o, const double *y, const double *dy, double *dz,
                           double *db, int act, double alpha);

#endif
