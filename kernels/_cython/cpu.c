/* CPU feature detection, the run-time SIMD switch and the thread policy.
 *
 * The library is compiled for the baseline x86-64 instruction set; only functions
 * marked __attribute__((target(...))) use AVX2/FMA or AVX-512. Which of those runs is
 * decided here, once at import (the Cython module calls fnn_simd_select with the best
 * path, or the one forced by FASTNN_SIMD), through fnn_simd_current.
 */
#include "fastnn_internal.h"

int fnn_simd_current = FNN_SIMD_GENERIC;
int fnn_last_workers = 0;
int fnn_last_team = 0;
static int fnn_threads = 0;  /* 0: not set yet, use OpenMP's default */

int fnn_cpu_supports(int simd)
{
    if (simd == FNN_SIMD_GENERIC)
        return 1;
#if FNN_X86
    /* __builtin_cpu_supports also checks that the OS saves the wide registers. */
    __builtin_cpu_init();
    if (simd == FNN_SIMD_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (simd == FNN_SIMD_AVX512)
        return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

int fnn_simd_best(void)
{
    for (int simd = FNN_SIMD_COUNT - 1; simd > FNN_SIMD_GENERIC; --simd)
        if (fnn_cpu_supports(simd))
            return simd;
    return FNN_SIMD_GENERIC;
}

int fnn_simd_select(int simd)
{
    if (simd < 0 || simd >= FNN_SIMD_COUNT || !fnn_cpu_supports(simd))
        return -1;
    fnn_simd_current = simd;
    return 0;
}

int fnn_simd_active(void) { return fnn_simd_current; }

void fnn_gemm_blocking(int dt, int simd, int *mr, int *nr, int *mc, int *kc, int *nc)
{
    if (simd < 0 || simd >= FNN_SIMD_COUNT)
        simd = fnn_simd_current;
    if (dt == FNN_F64) {
        const fnn_gemm_cfg_d *c = &fnn_gemm_cfgs_d[simd];
        *mr = c->mr; *nr = c->nr; *mc = c->mc; *kc = c->kc; *nc = c->nc;
    } else {
        const fnn_gemm_cfg_s *c = &fnn_gemm_cfgs_s[simd];
        *mr = c->mr; *nr = c->nr; *mc = c->mc; *kc = c->kc; *nc = c->nc;
    }
}

int fnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void fnn_set_threads(int n) { fnn_threads = n < 1 ? 1 : n; }

int fnn_get_threads(void)
{
    if (fnn_threads < 1)
        fnn_threads = omp_get_max_threads();
    return fnn_threads;
}

int fnn_team(double work, double grain)
{
    int threads = fnn_get_threads();
    if (threads <= 1 || work < 2 * grain)
        return 1;
    double most = work / grain;
    return most < threads ? (int)most : threads;
}

int fnn_threads_probe(int n, int *ids, int capacity)
{
    int team = 1;
    for (int i = 0; i < capacity; ++i)
        ids[i] = -1;
#pragma omp parallel num_threads(n)
    {
        int id = omp_get_thread_num();
        if (id < capacity)
            ids[id] = id;
#pragma omp single
        team = omp_get_num_threads();
    }
    return team;
}

int fnn_gemm_last_workers(void) { return __atomic_load_n(&fnn_last_workers, __ATOMIC_RELAXED); }

int fnn_gemm_last_team(void) { return __atomic_load_n(&fnn_last_team, __ATOMIC_RELAXED); }
