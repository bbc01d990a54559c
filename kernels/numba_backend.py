"""Numba backend: every kernel of ``kernels/contract.py`` compiled with ``@njit``.

* Matrix products (``gemm``, ``dense_forward``, ``dense_backward``) run on the packed,
  register-blocked GEMM of ``numba_gemm`` (the top of its ``GEMM_LADDER``);
  ``dense_forward`` adds the bias and applies the activation to each block of the
  output right after it is computed; ``dense_backward`` computes ``dz`` and ``db`` in
  one pass, then ``dW = x^T dz`` and ``dx = dz W^T`` with the transposes read by the
  packing code, never materialised.
* Element-wise, row-wise and optimizer kernels are in ``numba_kernels``; the tier-1
  primitives (``unary``, ``binary``, reductions along an axis, row gather/scatter-add) in
  ``numba_primitives``; ``gemm_batched`` runs the GEMM once per matrix.
* Work above a size threshold is split over threads with ``prange``
  (``set_num_threads``); small layers stay on one thread.
* Convolution (im2col + the packed GEMM, col2im) and pooling are in ``numba_conv``.
* ``mlp_train_step`` (``numba_train``) runs a Dense MLP's whole training step in one call.

The functions here are thin: they flatten or make inputs C-contiguous (a copy only
for strided/Fortran inputs), cast scalars to the arrays' dtype and call compiled
code, so each compiled kernel exists once per dtype. Arguments are validated by
``kernels/__init__.py`` (``contract.check``) before these run.
"""

import os
import time
import warnings

import numpy as np

NAME = "numba"
DESCRIPTION = "Numba @njit kernels: packed SIMD GEMM with fused bias/activation, prange threads"

try:
    import numba

    from . import numba_gemm as _gemm
    from . import numba_kernels as _k
    from . import numba_primitives as _p
    from . import numba_util as _u
    from .numba_conv import (avgpool2d_backward, avgpool2d_forward, conv2d_backward,  # noqa: F401
                             conv2d_forward, maxpool2d_backward, maxpool2d_forward)
    from .numba_gemm import GEMM_LADDER
    from .numba_train import mlp_train_step
    _IMPORT_ERROR = None
except Exception as exc:  # no numba (or a broken one): the backend is unavailable, fastnn is not
    _IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
    GEMM_LADDER = {}


def available():
    """(ok, reason): numba version, threading layer and thread count, or why not."""
    if _IMPORT_ERROR is not None:
        return False, f"numba cannot be imported ({_IMPORT_ERROR})"
    try:
        ids = _u.prange_thread_ids(4)          # starts the threading layer (cached kernel)
        layer = numba.threading_layer()
    except Exception as exc:
        return False, f"numba {numba.__version__}: parallel kernels fail ({type(exc).__name__}: {exc})"
    return True, (f"numba {numba.__version__}, threading layer {layer}, "
                  f"{numba.get_num_threads()} threads (max {numba.config.NUMBA_NUM_THREADS}); "
                  f"probe ran on {len(np.unique(ids))}")


# --- threads and compilation ------------------------------------------------------------

# Numba's OpenMP layer ends a child made by fork() at its first parallel region once the
# parent has started the threads (GNU OpenMP cannot restart them). Every kernel here runs
# with no parallel region at all when it has one thread, so a forked child is set to one
# thread (os.fork and multiprocessing's "fork" start method run this hook).
_forked_child = False


def _after_fork_in_child():
    global _forked_child
    _forked_child = True
    numba.set_num_threads(1)
    _u.wanted_threads = 1


if _IMPORT_ERROR is None:
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n):
    """Threads for the parallel kernels: 1 <= n <= NUMBA_NUM_THREADS (default: CPU count);
    always 1 in a child made by fork()."""
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= limit:
        raise ValueError(f"numba backend: thread count must be an integer in [1, {limit}] "
                         f"(NUMBA_NUM_THREADS={limit}), got {n!r}")
    if _forked_child and n > 1:
        warnings.warn("numba backend: this process was forked from one running Numba's OpenMP "
                      "threads, which cannot start again after fork(); its kernels run on 1 thread "
                      "(use the 'spawn' or 'forkserver' start method for threaded children)",
                      RuntimeWarning, stacklevel=2)
        n = 1
    numba.set_num_threads(int(n))
    _u.wanted_threads = int(n)     # applied to other Python threads when they call a kernel


def get_num_threads():
    return _u.threads()


def warmup():
    """Compile (or load from Numba's cache) every kernel for float32 and float64.

    Runs each kernel once on tiny inputs, plus the threaded GEMM, so the first real
    call pays no JIT time. The first run compiles (tens of seconds); later runs,
    even in new processes, load the cached machine code (``cache=True``)."""
    from .examples import example_calls
    kernels = globals()
    for dtype in (np.float32, np.float64):
        for name, args in example_calls(dtype):
            if name in kernels:           # the others run as references on these kernels
                kernels[name](*args)
        big = np.ones((8, 8), dtype)                  # the threaded GEMM, whatever the size rule
        _gemm.packed_parallel(big, False, big, True, np.empty_like(big), 1.0, 0.0,
                              _gemm._NO_BIAS[np.dtype(dtype)], 0, 0.0, max(1, get_num_threads()))
    _warm_fused_steps()


def _warm_fused_steps():
    """Compile the whole-step kernel for float32 MLPs of 1-3 Dense layers with SGD and
    Adam: its argument tuples have one entry per layer, so each depth is its own
    compilation (seconds each), which would otherwise land in the first epoch."""
    x = np.ones((4, 3), np.float32)
    labels = np.array([0, 1, 2, 0], np.int64)
    acts_for = {1: [0], 2: [1, 0], 3: [1, 1, 0]}
    for depth in (1, 2, 3):
        for adam in (False, True):
            arrays = [tuple(np.zeros(shape, np.float32) for _ in range(depth))
                      for shape in [(3, 3), (3,)] * 4]
            ws, bs, dws, dbs, s1w, s1b, s2w, s2b = arrays
            hyper = (1e-3, 0.9, 0.0, False, 0.9, 0.999, 1e-8, 1, False)
            mlp_train_step(x, labels, ws, bs, dws, dbs, (s1w, s1b, s2w, s2b),
                           np.array(acts_for[depth], np.int64), np.zeros(depth), adam, hyper)


def compile_times():
    """(seconds for warmup() now, seconds for a second warmup()): with a cold cache the
    first is the JIT cost, with a warm cache it is the cost of loading cached code."""
    start = time.perf_counter()
    warmup()
    first = time.perf_counter() - start
    start = time.perf_counter()
    warmup()
    return first, time.perf_counter() - start


# --- helpers ------------------------------------------------------------------------------

def _flat(a):
    """1-D C-contiguous view of a (a copy only when a is not C-contiguous)."""
    return np.ravel(a)


def _c(a):
    return np.ascontiguousarray(a)


def _pieces(n):
    return _u.pieces(n)


def _s(like, value):
    """A Python scalar as the arrays' dtype (float32 kernels then stay in float32)."""
    return like.dtype.type(value)


def _map(op, x, y, out, alpha=0.0, beta=0.0):
    _k.elementwise(op, _flat(x), _flat(y), out.reshape(-1), _s(out, alpha), _s(out, beta),
                   _pieces(out.size))


def _columns(rows, cols):
    """Pieces for kernels whose threads split columns (at least 16 columns each)."""
    return min(_pieces(rows * cols), max(1, cols // 16))


# --- matrix multiply and dense layers -------------------------------------------------------

def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    _gemm.matmul(a, b, out, trans_a, trans_b, alpha, beta)


def dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    _gemm.matmul(x, w, out, bias=_c(b), act=_u.ACT_CODES[activation], slope=alpha)


def dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    _k.dense_dz_db(_c(y), _c(dy), dz, db, _u.ACT_CODES[activation], _s(dz, alpha), _columns(*dz.shape))
    _gemm.matmul(x, dz, dw, trans_a=True)                  # dW = x^T dz
    if dx is not None:
        _gemm.matmul(dz, w, dx, trans_b=True)              # dx = dz W^T


# --- element-wise activations ----------------------------------------------------------------

def relu_forward(x, out):
    _map(_k.RELU_F, x, x, out)


def relu_backward(y, dy, dx):
    _map(_k.RELU_B, y, dy, dx)


def leaky_relu_forward(x, out, alpha):
    _map(_k.LEAKY_F, x, x, out, alpha)


def leaky_relu_backward(y, dy, dx, alpha):
    _map(_k.LEAKY_B, y, dy, dx, alpha)


def sigmoid_forward(x, out):
    _map(_k.SIGMOID_F, x, x, out)


def sigmoid_backward(y, dy, dx):
    _map(_k.SIGMOID_B, y, dy, dx)


def tanh_forward(x, out):
    _map(_k.TANH_F, x, x, out)


def tanh_backward(y, dy, dx):
    _map(_k.TANH_B, y, dy, dx)


# --- softmax and losses ------------------------------------------------------------------------

def softmax_forward(x, out):
    _k.softmax_forward(_c(x), out, _pieces(out.size))


def softmax_backward(y, dy, dx):
    _k.softmax_backward(_c(y), _c(dy), dx, _pieces(dx.size))


def _labels(kernel, labels, classes):
    """C-contiguous labels, every one in [0, classes) (the kernels index rows with them)."""
    labels = _c(labels)
    bad = _k.first_bad_label(labels, classes)
    if bad >= 0:
        raise ValueError(f"{kernel}: labels must lie in [0, {classes}), got {labels[bad]} at row {bad}")
    return labels


def softmax_cross_entropy_forward(logits, labels, probs):
    labels = _labels("softmax_cross_entropy_forward", labels, logits.shape[1])
    return float(_k.softmax_cross_entropy_forward(_c(logits), labels, probs, _pieces(probs.size)))


def softmax_cross_entropy_backward(probs, labels, dlogits):
    labels = _labels("softmax_cross_entropy_backward", labels, probs.shape[1])
    _k.softmax_cross_entropy_backward(_c(probs), labels, dlogits)


def mse_forward(y, t):
    return float(_k.reduce_sum(_k.SQUARED_DIFF, _flat(y), _flat(t), _pieces(y.size)) / y.size)


def mse_backward(y, t, dy):
    _map(_k.SCALED_DIFF, y, t, dy, 2.0 / y.size)


def bce_with_logits_forward(z, t):
    return float(_k.reduce_sum(_k.BCE_LOGITS, _flat(z), _flat(t), _pieces(z.size)) / z.size)


def bce_with_logits_backward(z, t, dz):
    _map(_k.SIGMOID_DIFF, z, t, dz, 1.0 / z.size)


def count_correct(scores, labels):
    return int(_k.count_correct(_c(scores), _c(labels)))


# --- dropout, residual, batch norm -----------------------------------------------------------------

def dropout_forward(x, mask, out):
    _map(_k.MUL, x, mask, out)


def dropout_backward(mask, dy, dx):
    _map(_k.MUL, dy, mask, dx)


def add(a, b, out):
    _map(_k.ADD, a, b, out)


def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    _k.batchnorm_forward(_c(x), _c(gamma), _c(beta), out, xhat, invstd, running_mean, running_var,
                         float(momentum), float(eps), _columns(*out.shape))


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
    _k.batchnorm_inference(_c(x), _c(gamma), _c(beta), _c(running_mean), _c(running_var),
                           float(eps), out, _pieces(out.size))


def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    _k.batchnorm_backward(_c(xhat), _c(gamma), _c(invstd), _c(dy), dx, dgamma, dbeta, _columns(*dx.shape))


# --- optimizers and parameter reductions ---------------------------------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    _k.sgd_update(p.reshape(-1), _flat(g), v.reshape(-1), _s(p, lr), _s(p, momentum),
                  _s(p, weight_decay), bool(nesterov), _pieces(p.size))


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    c1, c2 = 1.0 - beta1 ** int(step), 1.0 - beta2 ** int(step)
    _k.adam_update(p.reshape(-1), _flat(g), m.reshape(-1), v.reshape(-1), _s(p, lr), _s(p, beta1),
                   _s(p, beta2), _s(p, eps), _s(p, weight_decay), _s(p, c1), _s(p, c2), bool(decoupled),
                   _pieces(p.size))


def sum_squares(x):
    flat = _flat(x)
    return float(_k.reduce_sum(_k.SUM_SQUARES, flat, flat, _pieces(flat.size)))


def abs_sum(x):
    flat = _flat(x)
    return float(_k.reduce_sum(_k.ABS_SUM, flat, flat, _pieces(flat.size)))


def scale_(x, s):
    flat = x.reshape(-1)
    _k.elementwise(_k.SCALE, flat, flat, flat, _s(x, s), _s(x, 0.0), _pieces(flat.size))


def penalty_grad(w, g, l1, l2):
    flat = g.reshape(-1)
    _k.elementwise(_k.PENALTY, _flat(w), flat, flat, _s(g, l1), _s(g, l2), _pieces(flat.size))


# --- tier-1 primitives (kernels/primitives.py; compiled in numba_primitives) ---------------

def unary(op, x, out):
    flat = out.reshape(-1)
    _p.unary(_p.UNARY_CODES[op], _flat(x), flat, _pieces(flat.size))


def binary(op, a, b, out):
    flat = out.reshape(-1)
    _p.binary(_p.BINARY_CODES[op], _flat(a), _flat(b), flat, _pieces(flat.size))


def _lines(x, axis):
    """Pieces for a reduction: threads split rows (axis 1) or columns (axis 0, at least
    16 columns each)."""
    n, d = x.shape
    return min(_pieces(x.size), max(1, n)) if axis == 1 else _columns(n, d)


def reduce_sum(x, axis, out):
    _p.reduce_sum(_c(x), int(axis), out, _lines(x, axis))


def reduce_max(x, axis, out):
    _p.reduce_max(_c(x), int(axis), out, _lines(x, axis))


def _indices_checked(kernel, bad, indices, rows):
    """Raise for the bad position a kernel returned (it wrote nothing then)."""
    if bad >= 0:
        raise ValueError(f"{kernel}: indices must lie in [0, {rows}), got {indices[bad]} at {bad}")


def gather_rows(x, indices, out):
    indices = _c(indices)
    bad = _p.gather_rows(_c(x), indices, out, min(_pieces(out.size), max(1, out.shape[0])))
    _indices_checked("gather_rows", bad, indices, x.shape[0])


def scatter_add_rows(src, indices, out):
    indices = _c(indices)
    bad = _p.scatter_add_rows(_c(src), indices, out, _columns(*src.shape))
    _indices_checked("scatter_add_rows", bad, indices, out.shape[0])


def gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    for i in range(out.shape[0]):           # each product threaded by the GEMM's own rule
        _gemm.matmul(a[i], b[i], out[i], trans_a, trans_b, alpha, beta)
