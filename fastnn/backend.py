"""Choosing the backend that runs the kernels.

A backend is chosen, from the most specific to the least:

1. per model: ``Sequential([...], backend="numba")`` or ``model.to("cython")``;
2. the global default: ``fnn.set_backend("numpy")`` or, for a block of code,
   ``with fnn.use_backend("python"): ...``;
3. the environment variable ``FASTNN_BACKEND``;
4. ``"auto"``: the fastest available (cython, then numba, then numpy).

``fnn.available_backends()`` lists what can run here; ``fastnn backends`` on the
command line also says why the others cannot.
"""

import contextlib
import numbers
import os

from . import kernels as _kernels
from .kernels import BackendUnavailable  # noqa: F401  (re-exported)

__all__ = ["BackendUnavailable", "available_backends", "backend_status", "cpu_limit", "get_backend",
           "get_backend_name", "get_num_threads", "set_backend", "set_num_threads", "use_backend",
           "warmup"]

_default = None
_num_threads = None
_threads_applied = {}  # backend name -> thread count last handed to it


def cpu_limit():
    """The most threads :func:`set_num_threads` accepts: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def _valid_threads(n, where):
    """``n`` as an int if it is an integer in [1, cpu_limit()], else ValueError naming ``where``."""
    limit = cpu_limit()
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= limit:
        raise ValueError(f"{where} must be an integer from 1 to {limit} (the CPUs this process "
                         f"may use), got {n!r}")
    return int(n)


def _env_threads():
    value = os.environ.get("FASTNN_NUM_THREADS")
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        n = value
    return _valid_threads(n, "FASTNN_NUM_THREADS")


def get_backend_name():
    """The name of the current default backend ("auto" resolved)."""
    name = _default or os.environ.get("FASTNN_BACKEND", "auto")
    return _kernels.resolve(name)


def get_backend(name=None):
    """The :class:`fastnn.kernels.Backend` called ``name`` (default: the current default).

    Raises ValueError for an unknown name and BackendUnavailable (with the reason)
    for a known one that cannot run here.
    """
    backend = _kernels.get(name or get_backend_name())
    _apply_threads(backend)
    return backend


def set_backend(name):
    """Make ``name`` ("auto", "numpy", "numba", ...) the global default backend."""
    global _default
    get_backend(name)  # fail now, with the reason, if it cannot run
    _default = name


@contextlib.contextmanager
def use_backend(name):
    """Context manager: ``with fnn.use_backend("numpy"): ...`` sets the default inside the block."""
    global _default
    previous = _default
    set_backend(name)
    try:
        yield get_backend(name)
    finally:
        _default = previous


def available_backends():
    """Names of the backends that can run on this machine."""
    return _kernels.available()


def backend_status():
    """{name: (available, reason)} for every backend fastnn knows."""
    return _kernels.status()


def set_num_threads(n):
    """Threads used by the parallel backends (numba, cython); ``FASTNN_NUM_THREADS`` sets the start value.

    ``n`` must be an integer from 1 to :func:`cpu_limit`. Every available backend takes
    it (or refuses it with ValueError, leaving all of them as they were) before it is
    stored.
    """
    global _num_threads
    n = _valid_threads(n, "set_num_threads: the thread count")
    applied = []
    try:
        for name in _kernels.available():
            backend = _kernels.get(name)
            setter = backend.optional("set_num_threads")
            if setter is not None:
                getter = backend.optional("get_num_threads")
                before = getter() if getter is not None else None
                setter(n)
                applied.append((name, setter, before))
    except ValueError:
        for name, setter, before in applied:   # all or nothing
            if before is not None:
                setter(before)
        raise
    _num_threads = n
    _threads_applied.update({name: n for name, _, _ in applied})


def get_num_threads():
    """The thread count set by :func:`set_num_threads` or ``FASTNN_NUM_THREADS`` (None: backend default)."""
    return _num_threads if _num_threads is not None else _env_threads()


def _apply_threads(backend):
    n = get_num_threads()
    if n is None or _threads_applied.get(backend.name) == n:
        return
    setter = backend.optional("set_num_threads")
    if setter is not None:
        setter(n)
    _threads_applied[backend.name] = n


def warmup(backends=None):
    """Compile every kernel of the JIT backends ahead of time.

    Returns {backend name: seconds spent}. Backends without a ``warmup`` hook are skipped.
    """
    import time

    spent = {}
    for name in backends or _kernels.available():
        hook = _kernels.get(name).optional("warmup")
        if hook is not None:
            start = time.perf_counter()
            hook()
            spent[name] = time.perf_counter() - start
    return spent
