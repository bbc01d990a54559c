"""The Numba SIMD check on both kinds of x86 CPU this project runs on, whichever this one is.

LLVM can compile for a CPU other than the host (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``)
as long as the code is only inspected, never run. So the micro-kernel's assembly is checked
for an AVX2-only CPU (256-bit ``ymm`` FMAs) and an AVX-512 one (LLVM may pick 512-bit ``zmm``),
each in a fresh interpreter that imports no backend (importing one would run its kernels).
The check must pass with the SLP vectoriser on and fail with it off on both."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from test_numba import _is_vectorised

CPUS = {
    "avx2": ("haswell", "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,"
                        "-avx512f,-avx512vl,-avx512bw,-avx512dq,-avx512cd"),
    "avx512": ("znver4", "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx512cd"),
}

_SCRIPT = textwrap.dedent("""
    import json, numba
    from fastnn.kernels import numba_gemm, numba_util
    i64, f32 = numba.types.int64, numba.types.float32
    sig = (i64, f32[::1], i64, f32[::1], i64, f32[:, ::1], i64, i64, i64, i64,
           numba.types.float64, numba.types.boolean, f32[::1])
    counts = {}
    for slp in (1, 0):
        numba.config.SLP_VECTORIZE = slp
        fresh = numba.njit(sig, fastmath={"contract"})(numba_gemm._micro.py_func)
        counts[slp] = numba_util.fma_counts(fresh.inspect_asm(sig))
    print(json.dumps({"on": counts[1], "off": counts[0]}))
""")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly check")
@pytest.mark.parametrize("isa", sorted(CPUS))
def test_micro_kernel_vectorises_on_avx2_and_avx512(isa):
    import json
    name, features = CPUS[isa]
    env = dict(os.environ, NUMBA_CPU_NAME=name, NUMBA_CPU_FEATURES=features, NUMBA_CACHE_DIR=os.devnull)
    env.pop("NUMBA_SLP_VECTORIZE", None)
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    on, off = result["on"], result["off"]
    if isa == "avx2":
        assert on["zmm"] == 0, f"AVX2 code with 512-bit registers: {on}"
    assert _is_vectorised(on), f"micro-kernel lost its SIMD loop on {isa}: {on}"
    assert not _is_vectorised(off), f"the check cannot see SLP switched off on {isa}: {off}"
