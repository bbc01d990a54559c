"""NumPy's OpenBLAS thread pool beside fastnn's OpenMP threads.

After each call OpenBLAS's idle worker threads busy-wait for 2**28 cycles (~0.1 s)
before they sleep. On a machine with few cores a fastnn parallel region started in
that window finds its cores taken: measured on 2 cores, float32 GEMM n = 128, 2
threads, the cython GEMM right after ``a @ b`` ran at 1 GFLOP/s instead of ~100, and
``a @ b`` right after fastnn just as slowly (two spinning pools each wait for the
scheduler's time slice). A thread that *sleeps* is woken at once, so the fight ends when
OpenBLAS's workers sleep sooner: with a wait of 2**14 cycles (a few microseconds)
both directions keep their speed and NumPy's own back-to-back calls do not slow down
(``benchmarks/blas_interleave.py`` measures it).

OpenBLAS reads that wait (``OPENBLAS_THREAD_TIMEOUT``) only when it starts its
threads, so :func:`shorten_idle_wait` sets it, has OpenBLAS read it again and stops the
pool; OpenBLAS starts it again at its next threaded call. fastnn does this once, when
a threaded backend is first used, unless the user chose a wait
(``OPENBLAS_THREAD_TIMEOUT`` set), ``FASTNN_KEEP_BLAS_SPIN=1`` is set, or another
Python thread is running (it could be inside OpenBLAS while the pool stops).
"""

import ctypes
import os
import threading

__all__ = ["IDLE_WAIT_EXPONENT", "openblas_libraries", "shorten_idle_wait", "status"]

IDLE_WAIT_EXPONENT = 14          # OpenBLAS waits 2**n cycles before its idle threads sleep
_SYMBOL_FORMS = (("openblas", ""), ("scipy_openblas", "64_"), ("scipy_openblas", ""))
_status = "not checked yet"
_done = False


def openblas_libraries():
    """ctypes handles of the OpenBLAS libraries loaded in this process ([] if none or
    not on Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps
                            if "openblas" in line.lower() and "/" in line and ".so" in line})
    except OSError:
        return []
    libs = []
    for path in paths:
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def api(lib, name):
    """The OpenBLAS function ``name`` (e.g. "get_num_threads") under any of its exported
    names, or None."""
    for prefix, suffix in _SYMBOL_FORMS:
        fn = getattr(lib, f"{prefix}_{name}{suffix}", None)
        if fn is not None:
            return fn
    return None


def _shorten(lib, exponent):
    """Shorten one library's idle wait; a sentence saying what happened."""
    needed = [getattr(lib, n, None) for n in ("openblas_thread_timeout", "openblas_read_env",
                                              "blas_thread_shutdown_")]
    parallel = api(lib, "get_parallel")
    if None in needed or parallel is None:
        return "OpenBLAS without the functions to change its idle wait: left as it is"
    timeout, read_env, shutdown = needed
    if parallel() != 1:                # 0: no threads; 2: OpenMP threads (OMP_WAIT_POLICY rules)
        return "OpenBLAS without its own thread pool: nothing to change"
    if timeout() != 0:
        return f"OpenBLAS idle threads sleep after 2**{timeout()} cycles (OPENBLAS_THREAD_TIMEOUT)"
    previous = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(exponent)
    try:
        read_env()
    finally:                           # the environment stays as the user left it
        if previous is None:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        else:
            os.environ["OPENBLAS_THREAD_TIMEOUT"] = previous
    if timeout() != exponent:
        return "OpenBLAS did not take the shorter idle wait: left as it is"
    shutdown()                         # restarted, with the new wait, by its next threaded call
    return f"OpenBLAS idle threads sleep after 2**{exponent} cycles (set by fastnn)"


def shorten_idle_wait(exponent=IDLE_WAIT_EXPONENT):
    """Make NumPy's OpenBLAS threads sleep 2**exponent cycles after a call instead of
    2**28 (see the module docstring); once per process. Returns :func:`status`."""
    global _status, _done
    if _done:
        return _status
    if os.environ.get("FASTNN_KEEP_BLAS_SPIN", "0") not in ("", "0"):
        _status = "OpenBLAS idle wait left as it is (FASTNN_KEEP_BLAS_SPIN is set)"
    elif threading.active_count() > 1:
        _status = ("OpenBLAS idle wait left as it is (other Python threads were running when "
                   "fastnn started; set OPENBLAS_THREAD_TIMEOUT=14 before starting Python instead)")
        return _status                 # not final: checked again on the next first use
    else:
        libs = openblas_libraries()
        _status = "; ".join(_shorten(lib, exponent) for lib in libs) if libs else "no OpenBLAS loaded"
    _done = True
    return _status


def status():
    """What fastnn did to OpenBLAS's idle wait, in one sentence."""
    return _status
