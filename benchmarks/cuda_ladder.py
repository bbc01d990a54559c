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

``--ptx 9.0`` needs no GPU, only numba-cuda with libNVVM and NVRTC: it compiles
every kernel of the backend (both dtypes) to PTX for that compute capability
and counts what matters in each: fused multiply-adds, float64 arithmetic
(where a float32 kernel should have none but its float64 accumulators),
shared- and local-memory use. The simulator cannot catch a kernel that fails
to compile for a real GPU; this does.

``main()`` returns the rows as a list of dicts, so other scripts can reuse it.
``--allow-simulator`` runs the script's logic under ``NUMBA_ENABLE_CUDASIM=1``
at tiny sizes (wall-clock timings, meaningless as speeds: for testing the script).
"""

import argparse
import contextlib
import json
import os
import re
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


def kernel_signatures(dtype):
    """(name, kernel, numba argument types) for every kernel, as the backend launches them."""
    from numba import types

    from fastnn.kernels import cuda_gemm as cg, cuda_kernels as ck
    T = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    c1, c2, a2 = T[::1], T[:, ::1], T[:, :]
    f64, i64, flag, code = types.float64[::1], types.int64[::1], types.boolean, types.int64
    k = ck.build(dtype)
    table = [
        ("map1", k.map1, (code, c1, c1, T)),
        ("map2", k.map2, (code, c1, c1, c1, T)),
        ("penalty_grad", k.penalty_grad, (c1, c1, T, T)),
        ("sgd_update", k.sgd_update, (c1, c1, c1, T, T, T, flag)),
        ("adam_update", k.adam_update, (c1, c1, c1, c1) + (T,) * 8 + (flag, T, T)),
        ("partial_sums", k.partial_sums, (code, c1, c1, f64)),
        ("softmax_forward", k.softmax_forward, (a2, c2)),
        ("softmax_backward", k.softmax_backward, (c2, c2, c2)),
        ("softmax_cross_entropy", k.softmax_cross_entropy, (c2, i64, c2, f64)),
        ("correct_rows", k.correct_rows, (c2, i64, f64)),
        ("softmax_cross_entropy_backward", k.softmax_cross_entropy_backward, (c2, i64, c2, T)),
        ("batchnorm_inference", k.batchnorm_inference, (c2, c1, c1, c1, c1, T, c2)),
        ("dense_bias_grad", k.dense_bias_grad, (c2, c2, c2, c1, code, T)),
        ("batchnorm_forward", k.batchnorm_forward, (c2, c1, c1, c2, c2, c1, c1, c1, T, T, T)),
        ("batchnorm_backward", k.batchnorm_backward, (c2, c1, c1, c2, c2, c1, c1, T)),
        ("copy_flat", ck.copy_flat, (c1, f64)),
        ("gather_rows", ck.gather_rows, (a2, types.int64[::1], c2)),
    ]
    for name, kernel in cg.build(dtype).items():
        table.append((f"gemm {name}", kernel, (a2, a2, c2, flag, flag, T, T, c1, flag, code, T)))
    return table


@contextlib.contextmanager
def _compiling_for(cc):
    """numba-cuda compiles device functions for the current GPU; pretend it has ``cc``."""
    import numba.cuda.dispatcher as dispatcher

    class Device:
        compute_capability = cc

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = Device
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def ptx_report(cc):
    """Compile every kernel to PTX for compute capability ``cc``; a row of counts per kernel."""
    from numba import cuda
    rows = []
    with _compiling_for(cc):
        for dtype in (np.float32, np.float64):
            for name, kernel, signature in kernel_signatures(dtype):
                row = {"kernel": name, "dtype": np.dtype(dtype).name}
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=cc)
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    rows.append(row)
                    continue
                local = re.findall(r"\.local \.align \d+ \.b8 \s*\w+\[(\d+)\]", ptx)
                row.update(fma=len(re.findall(r"\bfma\.rn\.f(?:32|64)", ptx)),
                           f64_ops=len(re.findall(r"\b(?:add|sub|mul|div|fma)\.[a-z.]*f64", ptx)),
                           shared_loads=len(re.findall(r"\bld\.shared", ptx)),
                           local_bytes=sum(map(int, local)))
                rows.append(row)
    return rows


def format_ptx(rows, cc):
    head = f"{'kernel':<32}{'dtype':>8}{'fma':>6}{'f64 ops':>9}{'ld.shared':>11}{'local B':>9}"
    lines = [f"PTX for compute capability {cc[0]}.{cc[1]}", head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['kernel']:<32}{r['dtype']:>8}  FAILED {r['error']}")
        else:
            lines.append(f"{r['kernel']:<32}{r['dtype']:>8}{r['fma']:>6}{r['f64_ops']:>9}"
                         f"{r['shared_loads']:>11}{r['local_bytes']:>9}")
    return "\n".join(lines)


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
    parser.add_argument("--ptx", metavar="CC", help="compile every kernel to PTX for this compute "
                        "capability (e.g. 9.0) and report; needs no GPU")
    args = parser.parse_args(argv)

    cb = _backend()
    if args.ptx:
        cc = tuple(int(part) for part in args.ptx.split("."))
        if not cb._numba_cuda_installed() or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
            print("cuda_ladder --ptx: needs numba-cuda and no NUMBA_ENABLE_CUDASIM", file=sys.stderr)
            return []
        cb._setup()
        rows = ptx_report(cc)
        print(format_ptx(rows, cc))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ptx_cc": list(cc), "rows": rows}, f, indent=1)
        return rows
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
