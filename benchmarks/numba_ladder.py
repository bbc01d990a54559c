"""Measure the Numba GEMM ladder against NumPy's ``@`` (OpenBLAS).

    python benchmarks/numba_ladder.py [--sizes 256 512 1024 2048] [--threads 1 2]
                                      [--dtype float32] [--repeats 7]

For each thread count the measurement runs in a fresh subprocess whose BLAS is
pinned to that many threads (``OPENBLAS_NUM_THREADS`` & co. are read only when
the library loads; ``threadpoolctl`` is used instead when it is installed), and
Numba is set to the same count. Within one (variant, size) cell a block of ``@``
calls and a block of the variant's calls are timed alternately, ``repeats`` times
(with a pause after the BLAS block: see ``measure_cell``), and the table reports
the median GFLOP/s and the median of the per-pair ratios: on a shared, noisy
machine a ratio of neighbouring runs is steadier than either time.

``main()`` returns the rows as a list of dicts, so other scripts (asv) can reuse it.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# rungs too slow to time at large sizes: name -> largest n measured
SKIP_ABOVE = {"naive": 512, "reordered": 1024, "blocked": 1024}
SETTLE = 0.3            # seconds between timing NumPy and timing Numba, 2+ threads (see measure_cell)
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _ladder():
    sys.path.insert(0, ROOT)
    from fastnn.kernels import numba_gemm
    return numba_gemm


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _block(fn, calls):
    """Median seconds of ``calls`` back-to-back calls of fn."""
    return statistics.median(_time(fn) for _ in range(calls))


def measure_cell(fn, a, b, out, repeats, budget=1.5, settle=0.0):
    """(median seconds of fn, median seconds of a @ b, median ratio fn/@).

    Each repeat times a block of ``@`` calls, then a block of ``fn`` calls, each
    after a pause of ``settle`` s. It matters with several threads: OpenBLAS worker threads
    keep spinning on the cores for ~0.1 s after a call, and a threaded Numba kernel
    started meanwhile loses its second core to them (measured at n=256: 4-21 ms per
    product right after ``@``, 0.35 ms otherwise); Numba's OpenMP workers spin too."""
    ref = np.empty_like(out)
    fn(a, b, out)                                  # compile / warm caches
    np.matmul(a, b, out=ref)
    first = _time(lambda: fn(a, b, out))
    calls = max(1, min(5, int(0.02 / max(first, 1e-9))))
    repeats = max(1, min(repeats, int(budget / max(first * calls, 1e-9))))
    mine, blas = [], []
    for _ in range(repeats):
        time.sleep(settle)
        blas.append(_block(lambda: np.matmul(a, b, out=ref), calls))
        time.sleep(settle)
        mine.append(_block(lambda: fn(a, b, out), calls))
    ratios = [m / r for m, r in zip(mine, blas)]
    return statistics.median(mine), statistics.median(blas), statistics.median(ratios)


def _fresh(kernel):
    """A non-caching copy of a compiled kernel: Numba disables assembly inspection for
    code loaded from its on-disk cache, so the copy is compiled here to be inspected."""
    import numba
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
    copy = numba.njit(**options)(kernel.py_func)
    for signature in kernel.signatures:
        copy.compile(signature)
    return copy


def vector_report(G, dtype="float32"):
    """Per rung: counts of packed (SIMD) and scalar floating-point arithmetic in its kernel."""
    a = np.ones((8, 8), dtype)
    for fn in G.GEMM_LADDER.values():          # make sure each kernel has a signature
        fn(a, a, np.empty_like(a))
    G.packed_parallel(a, False, a, False, np.empty_like(a), 1.0, 0.0, np.zeros(0, dtype), 0, 0.0, 2)
    report = {}
    for name, kernel in G.LADDER_KERNELS.items():
        asm = "\n".join(_fresh(kernel).inspect_asm().values())
        packed = len(re.findall(r"\bv?(?:fmadd\d+|mul|add)p[sd]\b", asm))
        scalar = len(re.findall(r"\bv?(?:fmadd\d+|mul|add)s[sd]\b", asm))
        wide = {reg: len(re.findall(rf"\bv?(?:fmadd\d+|mul|add)p[sd]\s+[^\n]*%{reg}", asm))
                for reg in ("ymm", "zmm")}
        report[name] = {"packed": packed, "scalar": scalar, **wide}
    return report


def run_threads(threads, sizes, dtype, repeats):
    """Measure every rung at every size with ``threads`` threads (this process)."""
    import numba
    G = _ladder()
    numba.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:                       # the subprocess env already pinned BLAS
        limiter = None
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a = rng.random((n, n)).astype(dtype)
        b = rng.random((n, n)).astype(dtype)
        out = np.empty((n, n), dtype)
        flops = 2.0 * n ** 3
        for name, fn in G.GEMM_LADDER.items():
            if n > SKIP_ABOVE.get(name, n):
                rows.append({"variant": name, "n": n, "threads": threads, "skipped": True})
                continue
            t, t_np, ratio = measure_cell(fn.unchecked, a, b, out, repeats,
                                          settle=SETTLE if threads > 1 else 0.0)
            rows.append({"variant": name, "n": n, "threads": threads, "gflops": flops / t / 1e9,
                         "numpy_gflops": flops / t_np / 1e9, "fraction": 1.0 / ratio})
    if limiter is not None:
        limiter.restore_original_limits()
    return rows


def _subprocess(threads, args):
    env = dict(os.environ)
    for key in BLAS_ENV:
        env[key] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(threads), "--sizes",
           *map(str, args.sizes), "--dtype", args.dtype, "--repeats", str(args.repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(rows, sizes, threads_list):
    lines = []
    for threads in threads_list:
        mine = [r for r in rows if r["threads"] == threads]
        lines.append(f"\n{threads} thread(s): GFLOP/s (fraction of NumPy @ measured alongside)")
        lines.append(f"{'variant':<11}" + "".join(f"{'n=' + str(n):>18}" for n in sizes))
        blas = {r["n"]: [] for r in mine}
        for r in mine:
            if not r.get("skipped"):
                blas[r["n"]].append(r["numpy_gflops"])
        lines.append(f"{'numpy @':<11}" + "".join(
            f"{statistics.median(blas[n]):>18.1f}" if blas.get(n) else f"{'-':>18}" for n in sizes))
        for variant in dict.fromkeys(r["variant"] for r in mine):
            cells = []
            for n in sizes:
                r = next(x for x in mine if x["variant"] == variant and x["n"] == n)
                cells.append(f"{'skipped':>18}" if r.get("skipped")
                             else f"{r['gflops']:>9.1f} ({r['fraction']:.2f}x)")
            lines.append(f"{variant:<11}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(run_threads(args.worker, args.sizes, np.dtype(args.dtype), args.repeats)))
        return None
    rows = []
    for threads in args.threads:
        rows += _subprocess(threads, args)
    print(f"GEMM ladder, {args.dtype}, square n x n; median of up to {args.repeats} paired runs "
          f"per cell; {SKIP_ABOVE} = largest n timed for the slow rungs")
    print(format_table(rows, args.sizes, args.threads))
    print("\nSIMD check: floating-point arithmetic instructions in each rung's compiled kernel "
          "(static counts; packed = SIMD, ymm = 256-bit, zmm = 512-bit)")
    for name, counts in vector_report(_ladder(), args.dtype).items():
        print(f"  {name:<10} packed {counts['packed']:>4} (ymm {counts['ymm']:>4}, zmm {counts['zmm']:>4})"
              f"   scalar {counts['scalar']:>4}")
    return rows


if __name__ == "__main__":
    main()
