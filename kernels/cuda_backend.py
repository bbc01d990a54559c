"""CUDA backend: the kernel contract on an NVIDIA GPU, written with numba-cuda.

Arrays live on the device. The layer code allocates with :func:`empty` /
:func:`zeros`, uploads a data set once with :func:`asarray`, draws shuffled
mini-batches with :func:`take_rows` and only calls :func:`to_host` for what it
shows the user; a training step then moves nothing but the scalars that
``softmax_cross_entropy_forward`` and ``count_correct`` return.

This module is the host side: for each kernel of ``contract.py`` a thin wrapper
that uploads host *inputs* (outputs must already be device arrays, since the
kernel writes into them), casts scalars to the arrays' dtype and launches the
kernels of ``cuda_kernels.py``, ``cuda_gemm.py`` and ``cuda_primitives.py``.
Importing it is cheap and works without numba-cuda: numba-cuda is imported on
first use.

Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before Python starts) runs the
same kernels in numba-cuda's simulator: correct but very slow, for tests only.
"""

import importlib.metadata
import importlib.util
import os
import warnings

import numpy as np

from . import contract

NAME = "cuda"
DESCRIPTION = "numba-cuda kernels on an NVIDIA GPU; arrays stay on the device"
ON_DEVICE = True

_INSTALL_HINT = "numba-cuda is not installed: pip install fastnn[cuda]"

# Set by _setup() on first use: numba.cuda and this backend's kernel modules.
_cuda = _ck = _cg = _cp = None
_SIMULATED = False
_scratch_buffers = {}


# --- availability and lazy set-up ---------------------------------------------

def _numba_cuda_installed():
    try:
        return importlib.util.find_spec("numba_cuda") is not None
    except (ImportError, ValueError):
        return False


def _setup():
    """Import numba.cuda and the kernel modules once; return numba.cuda."""
    global _cuda, _ck, _cg, _cp, _SIMULATED
    if _cuda is None:
        if not _numba_cuda_installed():
            raise ImportError(_INSTALL_HINT)
        from numba import cuda
        from numba.cuda import config

        from . import cuda_gemm, cuda_kernels, cuda_primitives
        _SIMULATED = bool(config.ENABLE_CUDASIM)
        if _SIMULATED:
            _describe_simulator_arrays(cuda)
        elif "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
            # A mini-batch of 32 rows is a small grid by design; numba-cuda would warn
            # about "low occupancy" on such launches (unless the user asked for it).
            # (matched by message: numba-cuda versions differ in where the class lives)
            warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU "
                                    r"under-utilization")
        _ck, _cg, _cp, _cuda = cuda_kernels, cuda_gemm, cuda_primitives, cuda
    return _cuda


def _describe_simulator_arrays(cuda):
    """Make the simulator's arrays look like real device arrays from the host side.

    numba-cuda's simulator wraps host NumPy arrays in a class that differs from
    ``DeviceNDArray`` in two ways that matter outside kernels: it has no
    ``__cuda_array_interface__`` (by which the contract and the layers recognise
    device arrays) and its ``shape`` refuses negative indices (``x.shape[-1]``).
    This adds the interface, describing the (host) memory in the same format,
    and gives ``shape`` as a plain tuple. Real device arrays are not touched.
    """
    cls = type(cuda.device_array(1))
    if hasattr(cls, "__cuda_array_interface__"):
        return

    def interface(self):
        host = self._ary.__array_interface__
        return {"shape": tuple(self._ary.shape), "strides": host["strides"],
                "typestr": host["typestr"], "data": host["data"], "version": 3}

    cls.__cuda_array_interface__ = property(interface)
    cls.shape = property(lambda self: tuple(self._ary.shape))


def available():
    """(ok, reason): a GPU (or the simulator) that numba-cuda can use. Never raises."""
    if not _numba_cuda_installed():
        return False, _INSTALL_HINT
    try:
        cuda = _setup()
        version = importlib.metadata.version("numba-cuda")
        if _SIMULATED:
            return True, (f"CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run as Python "
                          f"threads, for tests only; numba-cuda {version}")
        if not cuda.is_available():
            return False, " ".join(str(cuda.cuda_error() or "no CUDA GPU found").split())
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        major, minor = device.compute_capability
        return True, f"{name} (compute capability {major}.{minor}), numba-cuda {version}"
    except Exception as exc:  # a broken driver or toolkit means "unavailable", with why
        return False, f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def warmup():
    """Compile every kernel for float32 and float64 (C-contiguous arrays) ahead of use.

    numba-cuda compiles a kernel on its first launch with new argument types,
    which would otherwise land in the first training steps. The simulator
    compiles nothing, so there this does nothing.
    """
    _setup()
    if not _SIMULATED:
        for dtype in (np.float32, np.float64):
            _exercise(dtype)


# --- array helpers (picked up by the registry's Backend) -------------------------

def _is_device(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


def empty(shape, dtype):
    """An uninitialised C-contiguous device array."""
    return _setup().device_array(shape, np.dtype(dtype))


def zeros(shape, dtype):
    """A device array of zeros, filled on the device (no host transfer for floats)."""
    dtype = np.dtype(dtype)
    if dtype not in contract.FLOAT_DTYPES:
        return _setup().to_device(np.zeros(shape, dtype))
    out = empty(shape, dtype)
    _map1("FILL", out, out, 0.0)
    return out


def asarray(array, dtype=None):
    """A device array: host data is uploaded (keeping its strides when it is a
    regular strided view); a device array passes through, cast on the device
    when ``dtype`` differs."""
    cuda = _setup()
    if _is_device(array) or hasattr(array, "__cuda_array_interface__"):
        array = array if _is_device(array) else cuda.as_cuda_array(array)
        if dtype is None or np.dtype(dtype) == array.dtype:
            return array
        out = empty(array.shape, dtype)
        if out.size:
            _ck.copy_flat[_loop(out.size)](_flat(array), _flat(out))
        return out
    return _upload(np.asarray(array, dtype=dtype))


def to_host(array):
    """A NumPy copy of a device array; NumPy arrays pass through."""
    if isinstance(array, np.ndarray):
        return array
    if _is_device(array):
        return array.copy_to_host()
    if hasattr(array, "__cuda_array_interface__"):
        return _setup().as_cuda_array(array).copy_to_host()
    return np.asarray(array)


def take_rows(array, indices):
    """Rows ``indices`` (host integers) of a device array, gathered on the device.

    ``array`` (R, ...) -> new C-contiguous device array (len(indices), ...).
    Negative indices count from the end, as in NumPy; others raise IndexError.
    """
    cuda = _setup()
    rows = np.asarray(to_host(indices))
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise TypeError(f"take_rows: indices must be a 1-D integer array, got "
                        f"{rows.dtype} with shape {rows.shape}")
    if not (_is_device(array) or hasattr(array, "__cuda_array_interface__")):
        return _upload(np.ascontiguousarray(np.asarray(array)[rows]))
    src = asarray(array)
    if src.ndim == 0:
        raise ValueError("take_rows: a 0-d array has no rows")
    n = src.shape[0]
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise IndexError(f"take_rows: row indices must lie in [{-n}, {n}), got "
                         f"[{rows.min()}, {rows.max()}]")
    rows = np.where(rows < 0, rows + n, rows).astype(np.int64)
    out = cuda.device_array((rows.size,) + tuple(src.shape[1:]), src.dtype)
    if out.size == 0:
        return out
    rows_on_device = cuda.to_device(rows)
    if src.ndim == 1:
        _ck.gather[_loop(rows.size)](src, rows_on_device, out)
    else:
        width = out.size // rows.size
        matrix = src if src.ndim == 2 else _flat(src).reshape(n, width)
        flat_out = out.reshape(rows.size, width)
        _ck.gather_rows[_each(flat_out.size)](matrix, rows_on_device, flat_out)
    return out


def _upload(host):
    """Copy a host array to the device, keeping its layout where that is cheap."""
    cuda = _setup()
    if host.flags.c_contiguous or host.flags.f_contiguous:
        return cuda.to_device(host)
    parent, index = _strided_parent(host)
    if parent is None:
        return cuda.to_device(np.ascontiguousarray(host))
    return cuda.to_device(parent)[index]


def _strided_parent(view):
    """(C-contiguous parent, slices) with ``parent[slices]`` laid out like ``view``.

    Works for views such as ``x[:, ::2]`` or ``x[::2, 1::3]``: positive strides,
    each (but the innermost) a multiple of the next inner one. The parent's rows
    are as long as the view's row stride; only the innermost axis is sliced with
    a step. Returns (None, None) for other layouts or when the parent would be
    much larger than the view.
    """
    axes = [k for k, size in enumerate(view.shape) if size > 1]
    elems = [view.strides[k] // view.itemsize for k in axes]
    if any(view.strides[k] <= 0 or view.strides[k] % view.itemsize for k in axes) or any(
            outer % inner for outer, inner in zip(elems[:-2], elems[1:-1])):
        return None, None
    shape, index = [1] * view.ndim, [slice(None)] * view.ndim
    for pos, k in enumerate(axes):
        size = view.shape[k]
        if pos == len(axes) - 1:      # innermost: stepped, inside a row of the outer stride
            step = elems[pos]
            shape[k] = elems[pos - 1] if pos else (size - 1) * step + 1
            index[k] = slice(0, (size - 1) * step + 1, step)
        else:
            shape[k] = elems[pos - 1] // elems[pos] if pos else size
            index[k] = slice(0, size)
        if shape[k] < index[k].indices(shape[k])[1] or (pos < len(axes) - 1 and shape[k] < size):
            return None, None
    if np.prod(shape) > 4 * view.size + 1024:
        return None, None
    parent = np.zeros(shape, view.dtype)
    parent[tuple(index)] = view
    return parent, tuple(index)


# --- host-side plumbing for the kernels -----------------------------------------

def _input(a):
    """A kernel input on the device: host arrays are uploaded."""
    return a if _is_device(a) else asarray(a)


def _target(a):
    """A kernel output: it must already live on the device, since the kernel writes into it."""
    if _is_device(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return _setup().as_cuda_array(a)
    raise TypeError(f"cuda backend: output arrays must be device arrays (make them with the "
                    f"backend's empty, zeros or asarray), got {type(a).__name__}")


def _flat(a):
    """A 1-D C-ordered view of a device array (a device-side copy if it is strided)."""
    if a.ndim == 1:
        return a
    if not a.is_c_contiguous():
        copy = _cuda.device_array(a.shape, a.dtype)
        copy[:] = a                     # numba-cuda's strided copy kernel
        a = copy
    return a.reshape(a.size)


def _threads(n):
    """Threads per block for n items: a power of two from 32 (a warp) to THREADS."""
    t = 32
    while t < n and t < _ck.THREADS:
        t *= 2
    return t


def _each(n):
    """(blocks, threads) for one thread per item (n >= 1 items)."""
    t = _threads(n)
    return -(-n // t), t


def _loop(n):
    """(blocks, threads) for a grid-stride loop over n >= 1 items."""
    t = _threads(n)
    return min(_ck.MAX_BLOCKS, -(-n // t)), t


def _kernels(dtype):
    _setup()
    return _ck.build(np.dtype(dtype))


def _scratch(name, size):
    """A reused float64 device buffer of at least ``size`` elements, as a view of ``size``."""
    buf = _scratch_buffers.get(name)
    if buf is None or buf.size < size:
        buf = _scratch_buffers[name] = _setup().device_array(max(size, 256), np.float64)
    return buf[:size]


def _map1(op, x, out, s=0.0):
    """out = f(x, s) element-wise; ``op`` names a map1 op of cuda_kernels."""
    out = _target(out)
    if out.size:
        x = _input(x)
        k = _kernels(out.dtype)
        k.map1[_loop(out.size)](getattr(_ck, op), _flat(x), _flat(out),
                                out.dtype.type(s))


def _map2(op, a, b, out, s=0.0):
    """out = f(a, b, s) element-wise; ``op`` names a map2 op of cuda_kernels."""
    out = _target(out)
    if out.size:
        a, b = _input(a), _input(b)
        k = _kernels(out.dtype)
        k.map2[_loop(out.size)](getattr(_ck, op), _flat(a), _flat(b), _flat(out),
                                out.dtype.type(s))


def _sum(term, a, b=None):
    """Sum of term(a[i], b[i]) in float64, as a Python float (one scalar copied back).

    ``term`` names a reduction term of cuda_kernels (SUM, SQUARES, ...)."""
    _setup()
    a = _flat(_input(a))
    b = a if b is None else _flat(_input(b))
    n = a.shape[0]
    if n == 0:
        return 0.0
    threads = _threads(n)
    blocks = min(_ck.REDUCE_BLOCKS, -(-n // threads))
    partials = _scratch("partials", blocks)
    _kernels(a.dtype).partial_sums[blocks, threads](getattr(_ck, term), a, b, partials)
    if blocks > 1:                      # a second pass, one block, sums the partial sums
        result = _scratch("result", 1)
        _kernels(np.float64).partial_sums[1, _threads(blocks)](_ck.SUM, partials, partials,
                                                               result)
        partials = result
    return float(partials[:1].copy_to_host()[0])


# --- matrix multiply and the dense layer ------------------------------------------

def _gemm(rung, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
          bias=None, activation="linear", slope=0.0):
    """Launch GEMM rung ``rung`` (None: chosen by size) with the fused epilogue."""
    out = _target(out)
    m, n = out.shape
    if m == 0 or n == 0:
        return
    a, b = _input(a), _input(b)
    if rung is None:
        rung = _cg.best_rung(m, n, a.shape[0] if trans_a else a.shape[1])
    T = out.dtype.type
    has_bias = bias is not None
    bias = _input(bias) if has_bias else _scratch_bias(out.dtype)
    blocks, threads = _cg.launch_shape(rung, m, n)
    _cg.build(out.dtype)[rung][blocks, threads](
        a, b, out, bool(trans_a), bool(trans_b), T(alpha), T(beta), bias, has_bias,
        _ck.ACTIVATION_CODES[activation], T(slope))


def _scratch_bias(dtype):
    """A one-element stand-in for "no bias" (the kernel never reads it)."""
    key = f"bias-{np.dtype(dtype).name}"
    if key not in _scratch_buffers:
        _scratch_buffers[key] = _setup().device_array(1, dtype)
    return _scratch_buffers[key]


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """Register tiles, or the naive kernel for tiny products (``cuda_gemm.best_rung``)."""
    _setup()
    _gemm(None, a, b, out, trans_a, trans_b, alpha, beta)


def _rung(name):
    def rung(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        contract.check("gemm", a, b, out, trans_a, trans_b, alpha, beta)
        _setup()
        _gemm(name, a, b, out, trans_a, trans_b, alpha, beta)

    rung.__name__ = f"gemm_{name}"
    rung.__doc__ = f"gemm with the {name!r} kernel of cuda_gemm.py (arguments checked)."
    return rung


# naive -> shared-memory tiles -> register tiles; ``gemm`` uses the last one except
# for tiny products
GEMM_LADDER = {name: _rung(name) for name in ("naive", "shared_tiles", "register_tiles")}


def dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    _setup()
    _gemm(None, x, w, out, bias=b, activation=activation, slope=alpha)


def dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    dz, dw, db = _target(dz), _target(dw), _target(db)
    y, dy = _input(y), _input(dy)
    k = _kernels(dz.dtype)
    if dz.shape[1]:
        k.dense_bias_grad[_each(dz.shape[1])](
            y, dy, dz, db, _ck.ACTIVATION_CODES[activation], dz.dtype.type(alpha))
    _gemm(None, x, dz, dw, trans_a=True)          # dw = x^T dz
    if dx is not None:
        _gemm(None, dz, w, dx, trans_b=True)      # dx = dz w^T


# --- element-wise activations ---------------------------------------------------

def relu_forward(x, out):
    _map1("RELU_FWD", x, out)


def relu_backward(y, dy, dx):
    _map2("RELU_BWD", y, dy, dx)


def leaky_relu_forward(x, out, alpha):
    _map1("LEAKY_FWD", x, out, alpha)


def leaky_relu_backward(y, dy, dx, alpha):
    _map2("LEAKY_BWD", y, dy, dx, alpha)


def sigmoid_forward(x, out):
    _map1("SIGMOID_FWD", x, out)


def sigmoid_backward(y, dy, dx):
    _map2("SIGMOID_BWD", y, dy, dx)


def tanh_forward(x, out):
    _map1("TANH_FWD", x, out)


def tanh_backward(y, dy, dx):
    _map2("TANH_BWD", y, dy, dx)


# --- softmax and losses -----------------------------------------------------------

def softmax_forward(x, out):
    out = _target(out)
    if out.size:
        _kernels(out.dtype).softmax_forward[_each(out.shape[0])](_input(x), out)


def softmax_backward(y, dy, dx):
    dx = _target(dx)
    if dx.size:
        _kernels(dx.dtype).softmax_backward[_each(dx.shape[0])](
            _input(y), _input(dy), dx)


def _no_classes(kernel):
    raise ValueError(f"{kernel}: scores have 0 columns, so no label can be valid")


def _bad_row_flag():
    """A one-element int64 array in mapped host memory that kernels set to the row of a
    label outside [0, C): the host reads it after the kernel without a device-to-host
    copy. Reset to -1 here."""
    flag = _scratch_buffers.get("bad-row")
    if flag is None:
        flag = _scratch_buffers["bad-row"] = _setup().mapped_array(1, np.int64)
    flag[0] = -1
    return flag


def _raise_for_bad_row(kernel, flag, labels, classes):
    """After the kernel has finished: ValueError if it saw a label outside [0, classes)."""
    row = int(flag[0])
    if row >= 0:
        value = int(to_host(labels[row:row + 1])[0])
        raise ValueError(f"{kernel}: labels must lie in [0, {classes}), got {value} at row {row} "
                         "(checked by the kernel that reads them)")


def softmax_cross_entropy_forward(logits, labels, probs):
    probs = _target(probs)
    n, c = probs.shape
    if n == 0:
        return float("nan")             # the mean of nothing, as in NumPy
    if c == 0:
        _no_classes("softmax_cross_entropy_forward")
    row_loss = _scratch("rows", n)
    labels, flag = _input(labels), _bad_row_flag()
    _kernels(probs.dtype).softmax_cross_entropy[_each(n)](
        _input(logits), labels, probs, row_loss, flag)
    loss = _sum("SUM", row_loss) / n    # copies the sum back: the kernel has finished
    _raise_for_bad_row("softmax_cross_entropy_forward", flag, labels, c)
    return loss


def softmax_cross_entropy_backward(probs, labels, dlogits):
    dlogits = _target(dlogits)
    n, c = dlogits.shape
    if dlogits.size:
        labels, flag = _input(labels), _bad_row_flag()
        _kernels(dlogits.dtype).softmax_cross_entropy_backward[_each(n * c)](
            _input(probs), labels, dlogits, dlogits.dtype.type(n), flag)
        _cuda.synchronize()
        _raise_for_bad_row("softmax_cross_entropy_backward", flag, labels, c)


def mse_forward(y, t):
    y = _input(y)
    return _sum("SQUARED_DIFF", y, t) / y.size


def mse_backward(y, t, dy):
    _map2("MSE_BWD", y, t, dy, 2.0 / dy.size)


def bce_with_logits_forward(z, t):
    z = _input(z)
    return _sum("BCE", z, t) / z.size


def bce_with_logits_backward(z, t, dz):
    _map2("BCE_BWD", z, t, dz, dz.size)


def count_correct(scores, labels):
    scores = _input(scores)
    n, c = scores.shape
    if n == 0:
        return 0
    if c == 0:
        _no_classes("count_correct")
    flags = _scratch("rows", n)
    _kernels(scores.dtype).correct_rows[_each(n)](scores, _input(labels), flags)
    return int(round(_sum("SUM", flags)))


# --- dropout, residual, batch norm -------------------------------------------------

def dropout_forward(x, mask, out):
    _map2("MUL", x, mask, out)


def dropout_backward(mask, dy, dx):
    _map2("MUL", dy, mask, dx)


def add(a, b, out):
    _map2("ADD", a, b, out)


def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var,
                      momentum, eps):
    out, xhat, invstd = _target(out), _target(xhat), _target(invstd)
    running_mean, running_var = _target(running_mean), _target(running_var)
    n, d = out.shape
    if d:
        T = out.dtype.type
        _kernels(out.dtype).batchnorm_forward[_each(d)](
            _input(x), _input(gamma), _input(beta), out, xhat, invstd, running_mean,
            running_var, T(momentum), T(eps), T(n / (n - 1) if n > 1 else 1.0))


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
    out = _target(out)
    if out.size:
        _kernels(out.dtype).batchnorm_inference[_each(out.size)](
            _input(x), _input(gamma), _input(beta), _input(running_mean),
            _input(running_var), out.dtype.type(eps), out)


def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    dx, dgamma, dbeta = _target(dx), _target(dgamma), _target(dbeta)
    n, d = dx.shape
    if d:
        _kernels(dx.dtype).batchnorm_backward[_each(d)](
            _input(xhat), _input(gamma), _input(invstd), _input(dy), dx, dgamma, dbeta,
            dx.dtype.type(n))


# --- optimizers and parameter reductions ---------------------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    p, v = _target(p), _target(v)
    if p.size:
        T = p.dtype.type
        _kernels(p.dtype).sgd_update[_loop(p.size)](
            _flat(p), _flat(_input(g)), _flat(v), T(lr), T(momentum), T(weight_decay),
            bool(nesterov))


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    p, m, v = _target(p), _target(m), _target(v)
    if p.size:
        T = p.dtype.type
        _kernels(p.dtype).adam_update[_loop(p.size)](
            _flat(p), _flat(_input(g)), _flat(m), _flat(v), T(lr), T(beta1), T(1 - beta1),
            T(beta2), T(1 - beta2), T(eps), T(weight_decay), T(lr * weight_decay),
            bool(decoupled), T(1 - beta1 ** step), T(1 - beta2 ** step))


def sum_squares(x):
    return _sum("SQUARES", x)


def abs_sum(x):
    return _sum("ABS", x)


def scale_(x, s):
    _map1("SCALE", x, x, s)


def penalty_grad(w, g, l1, l2):
    g = _target(g)
    if g.size:
        T = g.dtype.type
        _kernels(g.dtype).penalty_grad[_loop(g.size)](
            _flat(_input(w)), _flat(g), T(l1), T(l2))


# --- tier-1 primitives (kernels/primitives.py; kernels in cuda_primitives) -----------------

def _prims(dtype):
    _setup()
    return _cp.build(np.dtype(dtype))


def unary(op, x, out):
    out = _target(out)
    if out.size:
        _prims(out.dtype).unary[_loop(out.size)](_cp.UNARY_CODES[op], _flat(_input(x)), _flat(out))


def binary(op, a, b, out):
    out = _target(out)
    if out.size:
        _prims(out.dtype).binary[_loop(out.size)](_cp.BINARY_CODES[op], _flat(_input(a)),
                                                  _flat(_input(b)), _flat(out))


def _reduce(kernel, x, axis, out):
    """Each line of x (its rows for axis 1, columns for axis 0) reduced by ``width``
    threads: a power of two near the line's length, so short lines share a block."""
    out = _target(out)
    lines = out.shape[0]
    if lines == 0:
        return
    x = _input(x)
    width = min(_ck.THREADS, 1 << max(0, x.shape[axis] - 1).bit_length())
    threads = _threads(lines * width)          # a multiple of width: both powers of two
    blocks = -(-lines // (threads // width))
    getattr(_prims(out.dtype), kernel)[blocks, threads](x, int(axis), width, out)


def reduce_sum(x, axis, out):
    _reduce("line_sums", x, axis, out)


def reduce_max(x, axis, out):
    _reduce("line_maxes", x, axis, out)


def _raise_for_bad_index(kernel, flag, indices, rows):
    """After the kernel has finished: ValueError naming the first index outside
    [0, rows) if the kernel saw one (the flag holds some bad position; the message gives
    the first, as every backend does)."""
    if int(flag[0]) >= 0:
        host = to_host(indices)
        at = int(np.flatnonzero((host < 0) | (host >= rows))[0])
        raise ValueError(f"{kernel}: indices must lie in [0, {rows}), got {host[at]} at {at}")


def _check_indices(indices, rows, flag):
    if indices.shape[0]:
        _cp.check_indices[_loop(indices.shape[0])](indices, np.int64(rows), flag)


def gather_rows(x, indices, out):
    out = _target(out)
    x, indices, flag = _input(x), _input(indices), _bad_row_flag()
    if out.size:
        _prims(out.dtype).gather_rows[_each(out.size)](x, indices, out, flag)
    else:
        _check_indices(indices, x.shape[0], flag)
    _cuda.synchronize()
    _raise_for_bad_index("gather_rows", flag, indices, x.shape[0])


def scatter_add_rows(src, indices, out):
    """The indices are checked first (one synchronisation), so a bad one leaves out as it was."""
    out = _target(out)
    src, indices, flag = _input(src), _input(indices), _bad_row_flag()
    _setup()
    _check_indices(indices, out.shape[0], flag)
    _cuda.synchronize()
    _raise_for_bad_index("scatter_add_rows", flag, indices, out.shape[0])
    if src.size:
        _cp.scatter_add_rows[_each(out.shape[1])](src, indices, out)


def gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    _setup()
    a, b, out = _input(a), _input(b), _target(out)
    for i in range(out.shape[0]):              # one launch of the backend's GEMM per matrix
        _gemm(None, a[i], b[i], out[i], trans_a, trans_b, alpha, beta)


# --- warm-up: every kernel once on tiny C-contiguous arrays --------------------------

def _exercise(dtype):
    """Run every kernel of the contract once for ``dtype`` (compiles them on a GPU)."""
    from .examples import example_calls
    kernels = globals()
    for name, args in example_calls(dtype):
        if name in kernels:               # the others run as references on these kernels
            kernels[name](*[asarray(a) if isinstance(a, np.ndarray) else a for a in args])
    x, labels = asarray(np.ones((3, 4), dtype)), asarray(np.array([0, 1, 1], np.int64))
    take_rows(x, np.array([2, 0]))
    take_rows(labels, np.array([2, 0]))
