"""fastnn's threaded GEMM when NumPy (OpenBLAS) runs between its calls, and the reverse.

    python benchmarks/blas_interleave.py [--sizes 128 256 512] [--backends cython numba]
                                         [--threads 2] [--repeats 40]

Idle thread pools keep spinning for a while after each call: OpenBLAS's workers
(2**28 cycles, ~0.1 s, by default) and GNU OpenMP's (fastnn's numba and cython
backends). On a machine with few cores the spinning threads of one library take the
cores the other needs. fastnn shortens OpenBLAS's wait to 2**14 cycles when a threaded
backend is first used (``fastnn.kernels.blas_pool``); each row is measured in a fresh
process with that default, with ``FASTNN_KEEP_BLAS_SPIN=1`` (OpenBLAS's own wait), and
with ``OMP_WAIT_POLICY=passive`` on top of it (fastnn's threads sleep at once instead).
GFLOP/s are medians: "alone" times back-to-back calls of one library, "after numpy @"
times a fastnn call right after ``a @ b`` (and "numpy after fastnn" the reverse).

Run it with ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` unset so NumPy runs its best
kernel; the OpenBLAS kernel in use is printed (threadpoolctl).
"""

import argparse
import json
import os
import subprocess
import sys

# label -> environment changes for the measuring process
SETTINGS = {
    "fastnn default": {},
    "FASTNN_KEEP_BLAS_SPIN=1": {"FASTNN_KEEP_BLAS_SPIN": "1"},
    "KEEP_BLAS_SPIN + OMP passive": {"FASTNN_KEEP_BLAS_SPIN": "1", "OMP_WAIT_POLICY": "passive"},
}


def measure(backend, sizes, threads, repeats):
    """{n: {...GFLOP/s}} in this process (the spin setting is this process's environment)."""
    import time

    import numpy as np

    import fastnn as fnn

    fnn.set_num_threads(threads)
    gemm = fnn.get_backend(backend).gemm
    rng = np.random.default_rng(0)
    rows = {}

    def median_gflops(flops, before, call):
        times = []
        for _ in range(repeats):
            before()
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return flops / float(np.median(times)) / 1e9

    for n in sizes:
        a, b = (rng.random((n, n), dtype=np.float32) for _ in range(2))
        out = np.empty_like(a)
        fastnn_call, numpy_call = (lambda: gemm(a, b, out)), (lambda: a @ b)
        for _ in range(5):
            fastnn_call()
            numpy_call()
        flops = 2.0 * n ** 3
        rows[n] = {
            "fastnn alone": median_gflops(flops, lambda: None, fastnn_call),
            "fastnn after numpy @": median_gflops(flops, numpy_call, fastnn_call),
            "numpy alone": median_gflops(flops, lambda: None, numpy_call),
            "numpy after fastnn": median_gflops(flops, fastnn_call, numpy_call),
        }
    return rows


def _child(args):
    print(json.dumps(measure(args.backend, args.sizes, args.threads, args.repeats)))


def _run(backend, changes, args):
    env = dict(os.environ)
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "FASTNN_KEEP_BLAS_SPIN"):
        env.pop(name, None)
    env.update(changes)
    cmd = [sys.executable, __file__, "--child", "--backend", backend, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--sizes", *map(str, args.sizes)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--backends", nargs="+", default=["cython", "numba"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)

    import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"BLAS: {blas}; fastnn threads: {args.threads}; GFLOP/s, median of {args.repeats} calls, float32 n x n")
    cols = ("fastnn alone", "fastnn after numpy @", "numpy alone", "numpy after fastnn")
    print(f"{'backend':<8} {'setting':<30} {'n':>5} " + " ".join(f"{c:>21}" for c in cols))
    for backend in args.backends:
        for label, changes in SETTINGS.items():
            for n, row in _run(backend, changes, args).items():
                print(f"{backend:<8} {label:<30} {n:>5} " + " ".join(f"{row[c]:>21.1f}" for c in cols))


if __name__ == "__main__":
    main()
