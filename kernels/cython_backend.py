"""Cython + C backend: SIMD micro-kernels chosen at run time, OpenMP threads.

The compiled module ``fastnn.kernels._cython._kernels`` (built by ``setup.py`` from
``kernels/_cython``) does the work: plain C for the inner loops, a BLIS-style packed
GEMM with AVX-512 / AVX2+FMA / generic micro-kernels, OpenMP for anything big enough
to be worth a thread. This module adapts it to the contract's signatures: element-wise
kernels see flat C-contiguous views (inputs of other layouts are copied once here),
GEMM, batched GEMM and the dense layer take any strides as they are (a transpose is a
swap of strides, never a copy).

Environment:

* ``FASTNN_SIMD=avx512|avx2|generic`` forces a micro-kernel path (read at import;
  ``set_simd(path)`` switches later). A path this CPU cannot run makes the backend
  unavailable, with the reason, rather than crash.
* ``FASTNN_CYTHON_BUILD=<dir>`` loads the compiled module from a separate build folder
  (``setup.py build_ext --build-lib <dir>``), e.g. the sanitizer build of
  ``kernels/_cython/sanitize.sh``.

Extras beyond the contract: ``GEMM_LADDER`` (naive -> ... -> packed SIMD + OpenMP,
each with the ``gemm`` signature), ``set_num_threads`` / ``get_num_threads``,
``set_simd`` / ``simd_path``, ``warmup`` and ``mlp_train_step`` (a whole training
step of an MLP in one compiled call).
"""

import glob
import importlib.util
import os
import sys
import warnings
from collections import OrderedDict

import numpy as np

from .contract import ACT_CODES

NAME = "cython"
DESCRIPTION = "Cython + C kernels: packed SIMD GEMM (AVX-512 / AVX2 / generic), OpenMP"

_EXTENSION = "fastnn.kernels._cython._kernels"


def _load_extension():
    """The compiled module, from FASTNN_CYTHON_BUILD if set, else the installed one."""
    build = os.environ.get("FASTNN_CYTHON_BUILD")
    if not build:
        from ._cython import _kernels
        return _kernels
    found = sorted(glob.glob(os.path.join(build, "fastnn", "kernels", "_cython", "_kernels.*"))
                   + glob.glob(os.path.join(build, "_kernels.*")))
    found = [f for f in found if f.endswith((".so", ".pyd"))]
    if not found:
        raise ImportError(f"FASTNN_CYTHON_BUILD={build!r} holds no compiled _kernels module")
    spec = importlib.util.spec_from_file_location(_EXTENSION, found[0])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_EXTENSION] = module
    spec.loader.exec_module(module)
    return module


try:
    _k = _load_extension()
    _IMPORT_ERROR = None
except ImportError as exc:  # not built: the backend is unavailable, fastnn still imports
    _k, _IMPORT_ERROR = None, exc

_SIMD_ERROR = None
if _k is not None:
    _forced = os.environ.get("FASTNN_SIMD", "").strip().lower()
    try:
        _k.simd_select(_forced or _k.simd_best())
    except ValueError as exc:
        _SIMD_ERROR = f"FASTNN_SIMD={_forced}: {exc}"


def available():
    """(ok, reason): the reason names the SIMD path and thread count in use."""
    if _k is None:
        return False, (f"compiled kernels not built ({_IMPORT_ERROR}); run "
                       "`python setup.py build_ext --inplace` or reinstall with a C compiler")
    if _SIMD_ERROR:
        return False, _SIMD_ERROR
    threads = f"OpenMP, {_k.get_num_threads()} threads" if _k.openmp_enabled() else "no OpenMP, 1 thread"
    best = _k.simd_best()
    forced = "" if _k.simd_active() == best else f" (forced; CPU supports {best})"
    return True, f"SIMD {_k.simd_active()}{forced}, {threads}"


# --- extras: threads and SIMD path ---------------------------------------------------------

# GNU OpenMP cannot run a thread team again in a child made by fork(): the child
# inherits the pool's bookkeeping but not its threads, and its first parallel region
# waits for them forever. As PyTorch does, a forked child runs the kernels on one
# thread (a one-thread region never touches the pool). os.fork and multiprocessing's
# "fork" start method run this hook; "spawn"/"forkserver" children start afresh.
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True
    _k.set_num_threads(1)


if _k is not None:
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n):
    """Threads for the OpenMP kernels, 1 <= n <= the CPU count; always 1 in a child made by fork()."""
    limit = os.cpu_count() or 1
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= limit:
        raise ValueError(f"cython backend: thread count must be an integer in [1, {limit}] "
                         f"(the CPU count), got {n!r}")
    if _forked_child and n > 1:
        warnings.warn("cython backend: this process was forked from one that may have started "
                      "OpenMP threads, which GNU OpenMP cannot restart after fork(); its kernels run "
                      "on 1 thread (use the 'spawn' or 'forkserver' start method for threaded "
                      "children)", RuntimeWarning, stacklevel=2)
        n = 1
    _k.set_num_threads(int(n))


def get_num_threads():
    return _k.get_num_threads()


def set_simd(path):
    """Use micro-kernel path "avx512", "avx2" or "generic" (ValueError if unsupported)."""
    _k.simd_select(path)


def simd_path():
    """The micro-kernel path in use."""
    return _k.simd_active()


def warmup():
    """Nothing to compile at run time; runs one tiny GEMM per dtype to fault in the code."""
    for dtype in (np.float32, np.float64):
        a = np.ones((2, 2), dtype)
        gemm(a, a, np.empty((2, 2), dtype))


# --- helpers ---------------------------------------------------------------------------------

_ACT = ACT_CODES      # the contract's codes, which the C enum FNN_LINEAR.. repeats
_RELU, _LEAKY_RELU, _SIGMOID, _TANH = (ACT_CODES[name] for name in ("relu", "leaky_relu", "sigmoid", "tanh"))


def _flat(a):
    """A 1-D C-contiguous view of a (a copy only when a is not C-contiguous)."""
    return np.ascontiguousarray(a).reshape(-1)


def _c(a):
    return np.ascontiguousarray(a)


def _strided(a):
    """a as is when its strides are whole elements; else a C-contiguous copy."""
    return a if a.flags.aligned else np.ascontiguousarray(a)


# --- matrix multiply and the GEMM ladder -------------------------------------------------------

def _rung(variant, name, doc):
    def rung(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        _k.gemm(variant, _strided(a), _strided(b), out, bool(trans_a), bool(trans_b),
                float(alpha), float(beta))
    rung.__name__ = f"gemm_{name}"
    rung.__qualname__ = rung.__name__
    rung.__doc__ = doc
    return rung


GEMM_LADDER = OrderedDict(
    (name, _rung(_k.GEMM_VARIANTS[name] if _k else -1, name, doc)) for name, doc in [
        ("naive", "i-j-p triple loop, one dot product per element (B read down columns)"),
        ("loop_reorder", "i-p-j order: the inner loop streams rows of B and C (vectorisable)"),
        ("cache_blocked", "i-p-j tiled 64 x 128 x 256 so a block of B stays in cache"),
        ("packed_simd", "BLIS-style packed panels + register-blocked SIMD micro-kernel, 1 thread"),
        ("packed_simd_omp", "packed SIMD GEMM with OpenMP threads (the backend's gemm)"),
    ])

gemm = GEMM_LADDER["packed_simd_omp"]
gemm.__name__ = "gemm"


# --- dense layer --------------------------------------------------------------------------------

def dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    _k.dense_forward(_strided(x), _strided(w), _c(b), out, _ACT[activation], float(alpha))


def dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    _k.dense_backward(_strided(x), _strided(w), _c(y), _c(dy), dz, dx, dw, db,
                      _ACT[activation], float(alpha))


# --- element-wise activations -------------------------------------------------------------------

def relu_forward(x, out):
    _k.act_forward(_RELU, _flat(x), out.reshape(-1))


def relu_backward(y, dy, dx):
    _k.act_backward(_RELU, _flat(y), _flat(dy), dx.reshape(-1))


def leaky_relu_forward(x, out, alpha):
    _k.act_forward(_LEAKY_RELU, _flat(x), out.reshape(-1), float(alpha))


def leaky_relu_backward(y, dy, dx, alpha):
    _k.act_backward(_LEAKY_RELU, _flat(y), _flat(dy), dx.reshape(-1), float(alpha))


def sigmoid_forward(x, out):
    _k.act_forward(_SIGMOID, _flat(x), out.reshape(-1))


def sigmoid_backward(y, dy, dx):
    _k.act_backward(_SIGMOID, _flat(y), _flat(dy), dx.reshape(-1))


def tanh_forward(x, out):
    _k.act_forward(_TANH, _flat(x), out.reshape(-1))


def tanh_backward(y, dy, dx):
    _k.act_backward(_TANH, _flat(y), _flat(dy), dx.reshape(-1))


# --- softmax and losses -----------------------------------------------------------------------------

def softmax_forward(x, out):
    _k.softmax_forward(_c(x), out)


def softmax_backward(y, dy, dx):
    _k.softmax_backward(_c(y), _c(dy), dx)


def softmax_cross_entropy_forward(logits, labels, probs):
    return _k.softmax_cross_entropy_forward(_c(logits), _c(labels), probs)


def softmax_cross_entropy_backward(probs, labels, dlogits):
    _k.softmax_cross_entropy_backward(_c(probs), _c(labels), dlogits)


def mse_forward(y, t):
    return _k.mse_forward(_flat(y), _flat(t))


def mse_backward(y, t, dy):
    _k.mse_backward(_flat(y), _flat(t), dy.reshape(-1))


def bce_with_logits_forward(z, t):
    return _k.bce_with_logits_forward(_flat(z), _flat(t))


def bce_with_logits_backward(z, t, dz):
    _k.bce_with_logits_backward(_flat(z), _flat(t), dz.reshape(-1))


def count_correct(scores, labels):
    return _k.count_correct(_c(scores), _c(labels))


# --- dropout, residual, batch norm ----------------------------------------------------------------

def dropout_forward(x, mask, out):
    _k.mul(_flat(x), _flat(mask), out.reshape(-1))


def dropout_backward(mask, dy, dx):
    _k.mul(_flat(dy), _flat(mask), dx.reshape(-1))


def add(a, b, out):
    _k.add(_flat(a), _flat(b), out.reshape(-1))


def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    _k.batchnorm_forward(_c(x), _c(gamma), _c(beta), out, xhat, invstd, running_mean, running_var,
                         float(momentum), float(eps))


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
    _k.batchnorm_inference(_c(x), _c(gamma), _c(beta), _c(running_mean), _c(running_var),
                           float(eps), out)


def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    _k.batchnorm_backward(_c(xhat), _c(gamma), _c(invstd), _c(dy), dx, dgamma, dbeta)


# --- optimizers and parameter reductions ------------------------------------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    _k.sgd_update(p.reshape(-1), _flat(g), v.reshape(-1), float(lr), float(momentum),
                  float(weight_decay), bool(nesterov))


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    _k.adam_update(p.reshape(-1), _flat(g), m.reshape(-1), v.reshape(-1), float(lr), float(beta1),
                   float(beta2), float(eps), float(weight_decay), int(step), bool(decoupled))


def sum_squares(x):
    return _k.sum_squares(_flat(x))


def abs_sum(x):
    return _k.abs_sum(_flat(x))


def scale_(x, s):
    _k.scale_(x.reshape(-1), float(s))


def penalty_grad(w, g, l1, l2):
    _k.penalty_grad(_flat(w), g.reshape(-1), float(l1), float(l2))


# --- tier-1 primitives (kernels/primitives.py; C in _cython/prims.c) --------------------------------

def unary(op, x, out):
    _k.unary(_k.UNARY_CODES[op], _flat(x), out.reshape(-1))


def binary(op, a, b, out):
    _k.binary(_k.BINARY_CODES[op], _flat(a), _flat(b), out.reshape(-1))


def reduce_sum(x, axis, out):
    _k.reduce_sum(_c(x), int(axis), out)


def reduce_max(x, axis, out):
    _k.reduce_max(_c(x), int(axis), out)


def gather_rows(x, indices, out):
    _k.gather_rows(_c(x), _c(indices), out)


def scatter_add_rows(src, indices, out):
    _k.scatter_add_rows(_c(src), _c(indices), out)


def gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    _k.gemm_batched(_strided(a), _strided(b), out, bool(trans_a), bool(trans_b), float(alpha),
                    float(beta))


# --- convolution and pooling (kernels/conv_contract.py; C in _cython/conv.c) -------------------------

def conv2d_forward(x, w, b, out, stride, padding):
    _k.conv2d_forward(_c(x), _c(w), _c(b), out, *stride, *padding)


def conv2d_backward(x, w, dy, dx, dw, db, stride, padding):
    # without dx, dw stands in for it (same dtype, never touched)
    _k.conv2d_backward(_c(x), _c(w), _c(dy), dw if dx is None else dx, dx is not None, dw, db,
                       *stride, *padding)


def maxpool2d_forward(x, out, argmax, kernel, stride):
    _k.maxpool2d_forward(_c(x), out, argmax, *kernel, *stride)


def maxpool2d_backward(dy, argmax, dx):
    _k.maxpool2d_backward(_c(dy), _c(argmax), dx)


def avgpool2d_forward(x, out, kernel, stride):
    _k.avgpool2d_forward(_c(x), out, *kernel, *stride)


def avgpool2d_backward(dy, dx, kernel, stride):
    _k.avgpool2d_backward(_c(dy), dx, *kernel, *stride)


# --- whole-step fusion ------------------------------------------------------------------------------

# A Dense MLP's whole training step (fused_contract.py) in one C call that holds no GIL, with
# the same kernels in the same order as the layer-by-layer path. Bound directly: a small
# model's step takes tens of microseconds, and a Python wrapper would add to every one.
if _k is not None:
    mlp_train_step = _k.mlp_train_step
