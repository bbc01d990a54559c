"""Threads and processes: fork-safety of the threaded backends, thread-count validation,
concurrent use from several Python threads."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn as fnn
from fastnn import backend as fastnn_backend

from conftest import BACKENDS

THREADED = [b for b in ("numba", "cython") if b in BACKENDS]

# Parent trains with 2 threads (big enough for the parallel regions to run), then a child
# made by fork() trains and evaluates the same model: GNU OpenMP hangs or kills such a
# child unless the backend runs it serially.
_FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, sys
    import numpy as np, fastnn as fnn
    name = sys.argv[1]
    fnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2048, 64)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)

    def train(_=None):
        m = fnn.Sequential([fnn.Dense(64, 256), fnn.ReLU(), fnn.Dense(256, 2)], backend=name, seed=0)
        opt = fnn.SGD(m.parameters(), lr=0.1, momentum=0.9)
        h = fnn.fit(m, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=2, batch_size=512, verbose=0)
        a = np.ones((300, 300), np.float32); out = np.empty_like(a)
        fnn.get_backend(name).gemm(a, a, out)
        return h.loss[-1], fnn.evaluate(m, X, y)["accuracy"], float(out.sum()), fnn.get_num_threads()

    parent = train()
    with mp.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(train).get(timeout=60)
    print("parent", parent[:3])
    print("child", child[:3])
    assert np.allclose(parent[:3], child[:3], rtol=1e-5), (parent, child)
    assert parent[1] > 0.8
    print("ok")
""")


@pytest.mark.parametrize("name", THREADED)
def test_forked_child_trains_and_evaluates(name):
    """Parent trains on 2 threads; a fork()ed child then trains and evaluates, in time."""
    proc = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, name], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr


@pytest.mark.parametrize("name", THREADED)
def test_forked_child_refuses_more_threads_with_a_warning(name):
    script = textwrap.dedent(f"""
        import os, warnings
        import fastnn as fnn
        backend = fnn.get_backend({name!r})
        backend.module.set_num_threads(2)
        pid = os.fork()
        if pid == 0:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                backend.module.set_num_threads(2)
            ok = backend.module.get_num_threads() == 1 and any("fork" in str(w.message) for w in seen)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert backend.module.get_num_threads() == 2   # the parent keeps its threads
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- thread counts --------------------------------------------------------------------------

@pytest.fixture
def restore_threads():
    before = fastnn_backend._num_threads
    yield
    fastnn_backend._num_threads = before
    fastnn_backend._threads_applied.clear()
    for name in THREADED:
        fnn.get_backend(name).module.set_num_threads(before or fastnn_backend.cpu_limit())


@pytest.mark.parametrize("bad", [0, -1, 3000, True, 2.0, "2", None])
def test_set_num_threads_refuses_bad_counts_and_keeps_the_old_one(restore_threads, bad):
    fnn.set_num_threads(1)
    with pytest.raises(ValueError, match="set_num_threads"):
        fnn.set_num_threads(bad)
    assert fnn.get_num_threads() == 1
    for name in THREADED:
        assert fnn.get_backend(name).module.get_num_threads() == 1
        fnn.Sequential([fnn.Dense(3, 2)], backend=name)   # still usable


def test_set_num_threads_takes_numpy_integers_and_reaches_every_backend(restore_threads):
    fnn.set_num_threads(np.int64(1))
    assert fnn.get_num_threads() == 1
    for name in THREADED:
        assert fnn.get_backend(name).module.get_num_threads() == 1


@pytest.mark.parametrize("name", THREADED)
def test_backend_thread_setters_are_bounded(name):
    module = fnn.get_backend(name).module
    before = module.get_num_threads()
    for bad in (0, 3000, True):
        with pytest.raises(ValueError, match="thread count"):
            module.set_num_threads(bad)
    assert module.get_num_threads() == before


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba backend not available")
def test_numba_thread_count_reaches_threads_that_never_set_it(restore_threads):
    """Numba keeps its thread count per calling thread: a Python thread started after
    set_num_threads(1) would run its parallel regions on every core unless the backend
    applies the count there."""
    import numba

    from fastnn.kernels import numba_util
    fnn.set_num_threads(1)
    x = np.ones((512, 512), np.float32)
    out = np.empty_like(x)
    seen = {}

    def worker():
        seen["before"] = numba.get_num_threads()         # Numba's default in a new thread
        fnn.get_backend("numba").relu_forward(x, out)    # big enough for the threaded path
        seen["after"] = numba.get_num_threads()
        seen["ids"] = set(numba_util.prange_thread_ids(64).tolist())
        seen["backend"] = fnn.get_backend("numba").module.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    t.join(timeout=120)
    assert seen["before"] == numba.config.NUMBA_NUM_THREADS
    assert seen["after"] == 1 and seen["backend"] == 1 and len(seen["ids"]) == 1, seen
    np.testing.assert_array_equal(out, x)


def test_fastnn_num_threads_is_validated_with_its_name():
    env = dict(os.environ, FASTNN_NUM_THREADS="3000")
    proc = subprocess.run([sys.executable, "-c", "import fastnn as fnn; fnn.Dense(3, 2, backend='numpy')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "FASTNN_NUM_THREADS must be an integer from 1 to" in proc.stderr


# --- NumPy's OpenBLAS pool beside fastnn's threads ---------------------------------------------

_BLAS_SCRIPT = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    import fastnn as fnn
    from fastnn.kernels import blas_pool
    libs = [lib for lib in blas_pool.openblas_libraries()
            if blas_pool.api(lib, "get_parallel") is not None and blas_pool.api(lib, "get_parallel")() == 1]
    if not libs:
        print("NO-OPENBLAS-POOL"); sys.exit(0)
    wait = libs[0].openblas_thread_timeout
    a = np.random.default_rng(0).random((400, 400)); expected = a @ a
    if sys.argv[2] == "thread":
        threading.Thread(target=time.sleep, args=(1.0,)).start()
    before = wait()
    fnn.get_backend(sys.argv[1])
    np.testing.assert_allclose(a @ a, expected, rtol=1e-12)    # the restarted pool computes
    print(before, wait(), "OPENBLAS_THREAD_TIMEOUT" in os.environ, "|", blas_pool.status())
""")


@pytest.mark.parametrize("name", THREADED)
@pytest.mark.parametrize("setting", ["default", "user wait", "keep spin", "thread"])
def test_openblas_threads_sleep_soon_once_a_threaded_backend_runs(name, setting):
    """OpenBLAS's idle threads spin ~0.1 s after each call and take the cores fastnn's
    threads need (benchmarks/blas_interleave.py: 1 GFLOP/s instead of ~100 on 2 cores):
    fastnn shortens that wait to 2**14 cycles, unless the user set one, opted out, or
    other Python threads run (the pool is stopped and restarted, unsafe mid-call)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "FASTNN_KEEP_BLAS_SPIN")}
    env["OPENBLAS_NUM_THREADS"] = "2"
    if setting == "user wait":
        env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    if setting == "keep spin":
        env["FASTNN_KEEP_BLAS_SPIN"] = "1"
    proc = subprocess.run([sys.executable, "-c", _BLAS_SCRIPT, name, setting], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "NO-OPENBLAS-POOL" in proc.stdout:
        pytest.skip("NumPy here does not use OpenBLAS's own thread pool")
    numbers_, status = proc.stdout.strip().splitlines()[-1].split("|")
    before, after, env_left = numbers_.split()
    expected = {"default": ("0", "14", "False"), "user wait": ("20", "20", "True"),
                "keep spin": ("0", "0", "False"), "thread": ("0", "0", "False")}[setting]
    assert (before, after, env_left) == expected, proc.stdout
    words = {"default": "set by fastnn", "user wait": "OPENBLAS_THREAD_TIMEOUT",
             "keep spin": "FASTNN_KEEP_BLAS_SPIN", "thread": "other Python threads"}[setting]
    assert words in status, status


# --- several Python threads at once -----------------------------------------------------------

@pytest.mark.parametrize("name", THREADED + ["numpy"])
def test_concurrent_forward_and_backward_from_python_threads(name):
    """Four Python threads train their own model at once; each ends as it does alone."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(512, 64)).astype(np.float32)
    y = rng.integers(0, 4, 512)

    def run(seed, results):
        m = fnn.Sequential([fnn.Dense(64, 128), fnn.Tanh(), fnn.Dense(128, 4)], backend=name, seed=seed)
        fnn.fit(m, fnn.SoftmaxCrossEntropy(), fnn.SGD(m.parameters(), lr=0.05), X, y, epochs=2,
                batch_size=64, verbose=0)
        results[seed] = fnn.predict(m, X)

    alone = {}
    for seed in range(4):
        run(seed, alone)
    for _ in range(3):
        together = {}
        workers = [threading.Thread(target=run, args=(seed, together)) for seed in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        for seed in range(4):
            np.testing.assert_array_equal(together[seed], alone[seed])
