"""Saying what a long command is doing: progress bars and compile notices.

* :class:`EpochBar`: a tqdm bar over the epochs of one or more training runs, on
  stderr, drawn only on a terminal (a log file gets nothing); ``bar.callback()`` is a
  ``fit`` callback that advances it.
* :func:`elapsed`: a context manager showing a running clock on a terminal while work
  that cannot be counted (a JIT compilation) goes on.
* :func:`compile_notice`: one line saying what a backend's ``warmup`` is about to do
  and how long it usually takes (None for backends with nothing to compile, and for
  numba when its kernels are already in Numba's cache).
"""

import contextlib
import os
import sys
import threading

__all__ = ["EpochBar", "elapsed", "numba_cache_is_cold", "compile_notice"]

NUMBA_MODULES = ("numba_kernels", "numba_gemm", "numba_train")


def _tqdm(**options):
    from tqdm.auto import tqdm
    # disable=None: a bar on a terminal, nothing when stderr is a file or a pipe
    return tqdm(file=sys.stderr, leave=False, dynamic_ncols=True, **options)


class EpochBar:
    """A progress bar over ``total`` epochs (of one run or several), advanced by the
    :meth:`callback` it hands to ``fit``. ``enabled=False`` draws nothing."""

    def __init__(self, total, desc, enabled=True):
        self.bar = _tqdm(total=total, desc=desc, unit="epoch", disable=None if enabled else True)

    def callback(self):
        """A ``fit`` callback: one step per finished epoch, with its loss."""
        from ..training import Callback
        bar = self.bar

        class _Tick(Callback):
            def on_epoch_end(self, epoch, logs):
                if "loss" in logs:
                    bar.set_postfix_str(f"loss {logs['loss']:.4g}", refresh=False)
                bar.update(1)
                return False
        return _Tick()

    def advance_to(self, n):
        """Count epochs a run did not train (early stopping, divergence) as done."""
        if n > self.bar.n:
            self.bar.update(n - self.bar.n)

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def elapsed(desc):
    """A running clock ``desc: 0:42`` on stderr (terminals only) while the block runs."""
    bar = _tqdm(desc=desc, bar_format="{desc}: {elapsed}", disable=None)
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0):
            bar.refresh()
    thread = None if bar.disable else threading.Thread(target=tick, daemon=True)
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        bar.close()


def numba_cache_is_cold():
    """True when Numba has no usable cached machine code for some kernel module (first
    use, or its source changed since), False when every module's kernels are cached,
    None when this cannot be told (it reads Numba's cache index, not a public API)."""
    try:
        import importlib
        from numba.core.dispatcher import Dispatcher
        missing, seen = 0, 0
        for name in NUMBA_MODULES:
            module = importlib.import_module(f"fastnn.kernels.{name}")
            for value in vars(module).values():
                if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__:
                    seen += 1
                    cache = value._cache._cache_file
                    if not os.path.exists(cache._index_path) or not cache._load_index():
                        missing += 1
        return None if not seen else missing > 0
    except Exception:   # another Numba version, no numba: cannot tell
        return None


def compile_notice(backend):
    """What ``warmup`` of ``backend`` is about to do, or None when it compiles nothing."""
    if backend == "numba":
        cold = numba_cache_is_cold()
        if cold:
            return ("numba: compiling the numba kernels: about 1-3 minutes on first use, "
                    "cached afterwards")
        if cold is None:
            return ("numba: compiling or loading the numba kernels: up to 1-3 minutes when they "
                    "are not cached yet, seconds when they are")
        return None   # cached: loading takes a second or two
    if backend == "cuda":
        return "cuda: compiling or loading the cuda kernels (up to a minute when not cached yet)"
    return None
