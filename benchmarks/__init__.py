"""asv benchmarks of fastnn: every backend side by side with the NumPy reference.

Thread counts are pinned here, through the environment (OpenBLAS reads
``OPENBLAS_NUM_THREADS`` once, when it loads; child processes inherit it). One knob,
``FASTNN_BENCH_THREADS`` (default 1), sets the BLAS, OpenMP and fastnn thread counts;
every benchmark carries it as its ``threads`` parameter, so results taken with
different counts never mix. ``asv.conf.json`` sets the same variables for asv's own
environments.
"""

import os

THREADS = os.environ.setdefault("FASTNN_BENCH_THREADS", "1")
if not THREADS.isdigit() or int(THREADS) < 1:
    raise ValueError(f"FASTNN_BENCH_THREADS must be a positive integer, got {THREADS!r}")

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FASTNN_NUM_THREADS"):
    os.environ[_var] = THREADS
# When NumPy is already loaded (asv's runner imports it), common.py sets OpenBLAS's
# thread count through its C API instead.
