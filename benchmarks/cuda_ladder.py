"""Measure the CUDA GEMM ladder against cuBLAS (through CuPy or PyTorch).

    python benchmarks/cuda_ladder.py [--sizes 1024 2048 4096] [--dtype float32]
                                     [--repeats 15] [--json results.json]

Needs an NVIDIA GPU that numba-cuda can use; without one it says why and exits
with status 0 having measured nothing (so it can sit in scripts run anywhere).

For every rung of ``fastnn.kernels.cuda_backend.GEMM_LADDER`` and every n it
times an n x n by n x n product with CUDA events around each call, alternating
with the same product through cuBLAS on the same device arrays (zero-copy via
``__cuda_array_interface__``). The table reports median GFLOP/s of each and the
median of the per-pair ratios, which is steadier than either time on a shared
GPU. cuBLAS runs in plain FP32/FP64 (CuPy and PyTorch leave TF32 off by
default; this script does not turn it on). The first call of each rung,
which includes numba-cuda's compilation, is reported separately, and every
result is checked against cuBLAS's (NumPy's when neither CuPy nor PyTorch is
installed).

``main()`` returns the rows as a list of dicts, so other scripts can reuse it.
``--allow-simulator`` runs the script's logic under ``NUMBA_ENABLE_CUDASIM=1``
at tiny sizes (wall-clock timings, meaningless as speeds: for testing the script).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _backend():
    sys.path.insert(0, ROOT)
    from fastnn.kernels import cuda_backend
    return cuda_backend


def cublas_reference():
    """(name, matmul(a, b, out)) on numba device arrays via CuPy or PyTorch, or (None, None)."""
    try:
        import cupy
        return f"cuBLAS via CuPy {cupy.__version__}", (
            lambda a, b, out: cupy.matmul(cupy.asarray(a), cupy.asarray(b), out=cupy.asarray(out)))
    except Exception:   # not installed, or installed without a usable CUDA runtime
        pass
    try:
        import torch
        if torch.cuda.is_available():
            def matmul(a, b, out):
                torch.matmul(torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda"),
                             out=torch.as_tensor(out, device="cuda"))
            return f"cuBLAS via PyTorch {torch.__version__}", matmul
    except Exception:
        pass
    return None, None


def make_timer(cuda, simulated):
    """time_call(fn) -> seconds for one call, measured on the GPU with CUDA events."""
    if simulated:                                  # the simulator's events record nothing
        def time_call(fn):
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return time_call

    def time_call(fn):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    return time_call


def measure(sizes, dtype, repeats, budget=3.0, simulated=False):
    cb = _backend()
    cuda = cb._setup()
    ref_name, reference = cublas_reference()
    time_call = make_timer(cuda, simulated)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a_host, b_host = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        a, b, want = cb.asarray(a_host), cb.asarray(b_host), cb.empty((n, n), dtype)
        if reference is not None:
            reference(a, b, want)
            expected = cb.to_host(want)
        else:                                      # check against NumPy instead
            expected = a_host.astype(np.float64) @ b_host
        flops = 2.0 * n ** 3
        for name, gemm in cb.GEMM_LADDER.items():
            out = cb.empty((n, n), dtype)
            first = time_call(lambda: gemm(a, b, out))          # includes compilation
            row = {"variant": name, "n": n, "dtype": np.dtype(dtype).name,
                   "first_call_s": first, "reference": ref_name}
            row["max_rel_error"] = float(np.max(np.abs(cb.to_host(out) - expected))
                                         / np.max(np.abs(expected)))
            single = time_call(lambda: gemm(a, b, out))
            count = max(3, min(repeats, int(budget / max(single, 1e-9))))
            mine, theirs = [], []
            for _ in range(count):
                mine.append(time_call(lambda: gemm(a, b, out)))
                if reference is not None:
                    theirs.append(time_call(lambda: reference(a, b, want)))
            row["gflops"] = flops / statistics.median(mine) / 1e9
            row["repeats"] = count
            if theirs:
                row["cublas_gflops"] = flops / statistics.median(theirs) / 1e9
                row["fraction_of_cublas"] = statistics.median(t / m for m, t in zip(mine, theirs))
            rows.append(row)
    return rows


def format_table(rows):
    head = f"{'variant':<16}{'n':>6}{'GFLOP/s':>11}{'cuBLAS':>11}{'fraction':>10}{'1st call s':>12}{'rel err':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cublas = f"{r['cublas_gflops']:11.4g}" if "cublas_gflops" in r else f"{'n/a':>11}"
        frac = f"{r['fraction_of_cublas']:10.3f}" if "fraction_of_cublas" in r else f"{'n/a':>10}"
        err = f"{r['max_rel_error']:10.1e}"
        lines.append(f"{r['variant']:<16}{r['n']:>6}{r['gflops']:11.4g}{cublas}{frac}"
                     f"{r['first_call_s']:12.3f}{err}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=15, help="timed pairs per cell, at most")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--allow-simulator", action="store_true",
                        help="run under NUMBA_ENABLE_CUDASIM=1 (tests the script; timings meaningless)")
    args = parser.parse_args(argv)

    cb = _backend()
    ok, reason = cb.available()
    if not ok:
        print(f"cuda_ladder: nothing measured, the cuda backend cannot run here: {reason}",
              file=sys.stderr)
        return []
    if cb._SIMULATED and not args.allow_simulator:
        print("cuda_ladder: nothing measured: this is numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1), "
              "whose timings mean nothing; run on a GPU (or pass --allow-simulator to test the script)",
              file=sys.stderr)
        return []
    print(f"device: {reason}")
    rows = measure(args.sizes, np.dtype(args.dtype), args.repeats, simulated=cb._SIMULATED)
    ref = rows[0]["reference"] if rows else None
    print(f"{args.dtype}, n x n by n x n; reference: {ref or 'none (pip install cupy-cuda12x or torch)'}")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": reason, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
