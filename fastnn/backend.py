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
import os

from . import kernels as _kernels
from .kernels import BackendUnavailable  # noqa: F401  (re-exported)

_default = None
_num_threads = None
_threads_applied = {}  # backend name -> thread count last handed to it


def _env_threads():
    value = os.environ.get("FASTNN_NUM_THREADS")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {value!r}")
    return int(value)


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
    """Threads used by the parallel backends (numba, cython); ``FASTNN_NUM_THREADS`` sets the start value."""
    global _num_threads
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n!r}")
    _num_threads = n
    for name in _kernels.available():
        _apply_threads(_kernels.get(name))


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
