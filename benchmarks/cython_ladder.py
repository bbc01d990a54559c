"""Measure the Cython/C GEMM ladder against NumPy's ``@`` (OpenBLAS).

    python benchmarks/cython_ladder.py [--sizes 256 512 1024 2048] [--threads 1 2]
                                       [--dtype float32] [--repeats 7] [--simd all|best]
                                       [--variants packed_simd_omp ...] [--json rows.json]

Each thread count runs in a fresh subprocess whose OpenBLAS is pinned to that many
threads through ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` (read only when the
library loads) and whose Cython kernels are set to the same count. Within one
(variant, size) cell the variant and ``@`` are timed alternately ``repeats`` times
(fewer when a call is slow), each turn after a pause that lets the other library's
idle threads stop spinning (see ``measure_cell``); the table shows the median GFLOP/s of both and the
median of the per-pair ratios, which stays steady on a shared, noisy machine where
single times do not. With ``--simd all`` the two packed rungs are measured on every
SIMD path this CPU supports (``generic`` shows what the intrinsics buy).

``main()`` returns the rows as a list of dicts.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# rungs too slow to time at large sizes: name -> largest n measured
SKIP_ABOVE = {"naive": 512, "loop_reorder": 1024, "cache_blocked": 1024}
PACKED = ("packed_simd", "packed_simd_omp")
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SETTLE = 0.12  # seconds for the other library's idle threads to stop spinning
WARM = 0.02    # seconds of untimed calls before each timed one


def _backend():
    sys.path.insert(0, ROOT)
    from fastnn.kernels import cython_backend
    ok, why = cython_backend.available()
    if not ok:
        raise SystemExit(f"cython backend unavailable: {why}")
    return cython_backend


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_cell(fn, a, b, out, repeats, budget=2.0):
    """(median s of fn, median s of a @ b, median ratio blas_time / fn_time), in pairs.

    Two thread pools share this process (OpenBLAS's and OpenMP's), and a pool that has
    just worked keeps its threads spinning for a while (OpenBLAS: up to about 2^28
    cycles, ~0.1 s), taking cores from the other library. So each library's turn starts
    after a pause of SETTLE seconds, then runs untimed for WARM seconds (at least one
    call: its threads wake, the core speeds up) before the timed call.
    """
    ref = np.empty_like(out)
    fn(a, b, out)                 # warm caches, fault in the buffers
    np.matmul(a, b, out=ref)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * a.shape[1])
    first = _time(lambda: fn(a, b, out))
    repeats = max(3, min(repeats, int(budget / max(2 * first + SETTLE + WARM, 1e-9))))
    mine, blas = [], []
    def turn(call):
        time.sleep(SETTLE)
        start = time.perf_counter()
        call()
        while time.perf_counter() - start < WARM:   # wake this library's threads and the core
            call()
        return _time(call)

    for _ in range(repeats):
        blas.append(turn(lambda: np.matmul(a, b, out=ref)))
        mine.append(turn(lambda: fn(a, b, out)))
    return statistics.median(mine), statistics.median(blas), statistics.median(
        b / m for m, b in zip(mine, blas))


def run_threads(threads, sizes, dtype, repeats, simd, variants=None):
    """Every rung (or those in ``variants``) at every size with ``threads`` threads, in
    this process."""
    cb = _backend()
    cb.set_num_threads(threads)
    paths = [p for p in ("generic", "avx2", "avx512") if cb._k.cpu_supports(p)]
    paths = paths if simd == "all" else [cb._k.simd_best()]
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        out = np.empty((n, n), dtype)
        flop = 2.0 * n ** 3
        for name, fn in cb.GEMM_LADDER.items():
            if n > SKIP_ABOVE.get(name, n) or (variants and name not in variants):
                continue
            for path in (paths if name in PACKED else ["-"]):   # unpacked rungs: plain C
                cb.set_simd(path if path != "-" else cb._k.simd_best())
                mine, blas, ratio = measure_cell(fn, a, b, out, repeats)
                rows.append({"variant": name, "simd": path, "n": n, "threads": threads,
                             "dtype": np.dtype(dtype).name, "gflops": flop / mine / 1e9,
                             "blas_gflops": flop / blas / 1e9, "fraction_of_blas": ratio,
                             "seconds": mine})
                print(f"  {name:<16}{path:<8}{n:>6}{threads:>4}{flop / mine / 1e9:>10.1f}"
                      f"{flop / blas / 1e9:>10.1f}{ratio:>9.2f}", file=sys.stderr, flush=True)
        cb.set_simd(cb._k.simd_best())
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--simd", default="all", choices=["all", "best"])
    p.add_argument("--variants", nargs="+", help="only these rungs (default: all)")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: one thread count
    args = p.parse_args(argv)

    if args.worker:
        rows = run_threads(args.worker, args.sizes, np.dtype(args.dtype), args.repeats, args.simd,
                           args.variants)
        print(json.dumps(rows))
        return rows

    rows = []
    print(f"{'variant':<16}{'simd':<8}{'n':>6}{'thr':>4}{'GFLOP/s':>10}{'BLAS':>10}{'x BLAS':>9}",
          file=sys.stderr)
    for t in args.threads:
        env = dict(os.environ, **{k: str(t) for k in BLAS_ENV})
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(t), "--dtype", args.dtype,
               "--repeats", str(args.repeats), "--simd", args.simd, "--sizes", *map(str, args.sizes)]
        if args.variants:
            cmd += ["--variants", *args.variants]
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{args.dtype} GEMM, n x n x n; GFLOP/s medians of interleaved runs; "
          "'x BLAS' = median of per-pair time ratios (>1: faster than NumPy @)")
    print(f"{'variant':<16}{'simd':<8}{'n':>6}{'threads':>8}{'GFLOP/s':>10}{'OpenBLAS':>10}{'x BLAS':>8}")
    for r in rows:
        print(f"{r['variant']:<16}{r['simd']:<8}{r['n']:>6}{r['threads']:>8}{r['gflops']:>10.1f}"
              f"{r['blas_gflops']:>10.1f}{r['fraction_of_blas']:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
