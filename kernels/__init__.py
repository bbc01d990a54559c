"""fastnn.kernels: one kernel contract, several backends.

``contract.py`` lists every kernel with its argument shapes. Each backend is one
module here implementing all of them:

=========  ==============================  ==========================================
name       module                          what it is
=========  ==============================  ==========================================
python     ``python_backend``              interpreted loops over elements (slow)
numpy      ``numpy_backend``               vectorised NumPy: the reference
numba      ``numba_backend``               Numba ``@njit`` kernels, CPU-parallel
cython     ``cython_backend``              Cython + C kernels, SIMD + OpenMP
cuda       ``cuda_backend``                numba-cuda kernels on an NVIDIA GPU
=========  ==============================  ==========================================

:func:`get` returns a :class:`Backend`: every kernel of the contract, each wrapped
so that its arguments are validated by ``contract.check`` **before** the backend's
code runs. A backend module that fails to import, or that lacks a kernel, is
reported as unavailable with the reason, never as a crash of ``import fastnn``.
"""

import functools
import importlib

import numpy as np

from . import blas_pool, contract
from .fused_contract import FUSED_CHECKS, FUSED_KERNELS
from .reference import REFERENCES

# Order matters: "auto" picks the first available of AUTO_ORDER.
BACKEND_MODULES = {
    "python": "python_backend",
    "numpy": "numpy_backend",
    "numba": "numba_backend",
    "cython": "cython_backend",
    "cuda": "cuda_backend",
}
AUTO_ORDER = ("cython", "numba", "numpy")


class BackendUnavailable(RuntimeError):
    """The named backend exists but cannot run here (the message says why)."""


class Backend:
    """A validated view of one backend module.

    Attributes are the contract's kernels (checked), plus:

    * ``name`` / ``description``
    * ``module``: the raw module (kernels without checks, optional extras such as
      fused training steps).
    * array helpers, so layers never need to know where memory lives:
      ``empty(shape, dtype)``, ``zeros(shape, dtype)``, ``asarray(host_array)``,
      ``to_host(array)``, ``take_rows(array, indices)``. CPU backends keep NumPy
      arrays; a GPU backend overrides these in its module.

    * the optional fused kernels of ``fused_contract.py`` (checked too), or None where
      the backend has none (``mlp_train_step``: a Dense MLP's whole training step).

    Optional module extras, used when present: ``set_num_threads(n)``,
    ``get_num_threads()``, ``warmup()`` and ``GEMM_LADDER`` (name -> gemm-like
    function, naive first, best last).
    """

    def __init__(self, name, module):
        self.name = name
        self.module = module
        self.description = getattr(module, "DESCRIPTION", "")
        self.on_device = bool(getattr(module, "ON_DEVICE", False))
        self.sources = {}      # kernel -> "native", "reference" (tier 2 on primitives), "host"
        for kernel in contract.KERNELS:
            fn = getattr(module, kernel, None)
            if callable(fn):
                source = "native"
            elif kernel in REFERENCES:
                fn, source = functools.partial(REFERENCES[kernel], self), "reference"
            else:
                fn, source = _on_host(kernel, self), "host"
            self.sources[kernel] = source
            setattr(self, kernel, _checked(kernel, fn))
        for kernel in FUSED_KERNELS:     # optional: None where the backend has no fused form
            fn = getattr(module, kernel, None)
            setattr(self, kernel, None if fn is None else _checked(kernel, fn, FUSED_CHECKS, FUSED_KERNELS))
        for helper in ("empty", "zeros", "asarray", "to_host", "take_rows"):
            if hasattr(module, helper):
                setattr(self, helper, getattr(module, helper))

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype)

    @staticmethod
    def asarray(array, dtype=None):
        return np.ascontiguousarray(array, dtype=dtype)

    @staticmethod
    def to_host(array):
        return array

    @staticmethod
    def take_rows(array, indices):
        """Rows ``indices`` (host int64) of ``array`` as a new C-contiguous array."""
        return np.ascontiguousarray(array[indices])

    def optional(self, name):
        """An optional extra kernel of this backend (e.g. a fused training step), or None."""
        return getattr(self.module, name, None)

    def __repr__(self):
        return f"<fastnn backend {self.name!r}: {self.description}>"


def _on_host(name, bk):
    """Kernel ``name`` of the NumPy reference for a backend that lacks a tier-1 primitive:
    on host memory as it is; device arrays copied to the host and back (slow, but the
    backend keeps working; ``fastnn backends --kernels`` shows it)."""
    from . import numpy_backend

    fn = getattr(numpy_backend, name)
    if not bk.on_device:
        return fn

    def kernel(*args, **kwargs):
        host = [bk.to_host(a) if hasattr(a, "__cuda_array_interface__") else a for a in args]
        result = fn(*host, **kwargs)
        for a, h in zip(args, host):
            if a is not h:
                a.copy_to_device(np.ascontiguousarray(h))
        return result
    return kernel


def _checked(name, fn, checks=contract.CHECKS, docs=contract.KERNELS):
    check = checks[name]

    def kernel(*args, **kwargs):
        check(*args, **kwargs)
        return fn(*args, **kwargs)

    kernel.__name__ = name
    kernel.__doc__ = docs[name]
    kernel.unchecked = fn
    return kernel


_cache = {}
_THREADED = ("numba", "cython")   # backends with OpenMP thread pools


def _load(name):
    """Return (Backend or None, reason). Never raises; the result is cached."""
    if name in _cache:
        return _cache[name]
    try:
        module = importlib.import_module(f"{__name__}.{BACKEND_MODULES[name]}")
        ok, reason = module.available()     # a missing kernel falls back (Backend.sources)
    except Exception as exc:  # any import-time failure means "unavailable", with why
        ok, reason, module = False, f"{type(exc).__name__}: {exc}", None
    result = (Backend(name, module) if ok else None, reason)
    _cache[name] = result
    return result


def names():
    """All backend names fastnn knows, available here or not."""
    return tuple(BACKEND_MODULES)


def status():
    """{name: (available, reason)} for every known backend."""
    return {name: (_load(name)[0] is not None, _load(name)[1]) for name in BACKEND_MODULES}


def available():
    """Names of the backends that can run here, in documentation order."""
    return [name for name in BACKEND_MODULES if _load(name)[0] is not None]


def resolve(name):
    """Map "auto" to the fastest available backend; validate any other name."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            if _load(candidate)[0] is not None:
                return candidate
    if name not in BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of "
                         f"{('auto',) + tuple(BACKEND_MODULES)}")
    return name


def get(name):
    """The :class:`Backend` called ``name`` (or "auto"); BackendUnavailable if it cannot run."""
    name = resolve(name)
    backend, reason = _load(name)
    if backend is None:
        raise BackendUnavailable(f"backend {name!r} is not available: {reason}")
    if name in _THREADED:
        blas_pool.shorten_idle_wait()    # once: OpenBLAS's spinning threads would take our cores
    return backend
