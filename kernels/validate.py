"""The building blocks of ``contract.check``: argument tests that raise clear errors.

Every function takes the kernel's name and the argument's name first, so a message
always says which kernel and which argument is wrong, what was expected and what came.
Types (not an array, wrong dtype, a string where a number belongs) raise ``TypeError``;
shapes, layouts, values and overlapping memory raise :class:`ContractError` (a
``ValueError``). Each test is O(1) in the arrays' sizes.
"""

import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ContractError(ValueError):
    """Arguments that break the kernel contract (shape, dtype, layout, value or aliasing)."""


def fail(kernel, what):
    raise ContractError(f"{kernel}: {what}")


def is_array(a):
    # host numpy arrays, or device arrays that describe themselves the same way
    return isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")


def array(kernel, name, a):
    if not is_array(a):
        raise TypeError(f"{kernel}: {name} must be a numpy.ndarray (or a device array), "
                        f"got {type(a).__name__}")
    return a


def floating(kernel, name, a, dtype=None):
    """``a`` is a float32/float64 array (of ``dtype`` when given)."""
    if not isinstance(a, np.ndarray) and not hasattr(a, "__cuda_array_interface__"):
        array(kernel, name, a)
    if dtype is None or a.dtype != dtype:
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} must be float32 or float64, got {a.dtype}")
        if dtype is not None:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected {dtype} like the other arrays")
    return a


def shaped(kernel, name, a, shape, dtype):
    """A float input of exactly ``shape`` and ``dtype`` (any strides)."""
    floating(kernel, name, a, dtype)
    if a.shape != shape and tuple(a.shape) != tuple(shape):
        fail(kernel, f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    return a


def _c_contiguous(a):
    if isinstance(a, np.ndarray):
        return a.flags.c_contiguous and a.flags.writeable
    return a.is_c_contiguous()


def output(kernel, name, a, shape, dtype):
    """A float output: exactly ``shape`` and ``dtype``, writeable and C-contiguous."""
    shaped(kernel, name, a, shape, dtype)
    if not _c_contiguous(a):
        fail(kernel, f"{name} must be a writeable C-contiguous array")
    return a


def ndim(kernel, name, a, n):
    if len(a.shape) != n:
        fail(kernel, f"{name} must be {n}-D, got shape {tuple(a.shape)}")


def rows_and_columns(kernel, name, a, min_rows=0):
    """A 2-D float array with at least one column (a row of zero classes has no softmax,
    no argmax and no valid label) and at least ``min_rows`` rows."""
    floating(kernel, name, a)
    ndim(kernel, name, a, 2)
    n, c = a.shape
    if c < 1:
        fail(kernel, f"{name} has shape {tuple(a.shape)}: rows need at least one column")
    if n < min_rows:
        fail(kernel, f"{name} has shape {tuple(a.shape)}: an empty batch has no mean")
    return n, c


# FASTNN_DEBUG_CHECKS=1: also scan class labels here. By default the range of labels is
# checked by the kernels that index rows with them (each backend, before it reads a row),
# so a training step scans its labels once, in compiled code, not once per kernel in Python.
DEBUG_CHECKS = os.environ.get("FASTNN_DEBUG_CHECKS", "0") not in ("", "0")


def labels(kernel, labels, n, classes):
    """int64 class labels of shape (n,); their range [0, classes) is checked by the kernel
    itself (and here too with FASTNN_DEBUG_CHECKS=1)."""
    if not is_array(labels) or labels.dtype != np.int64:
        raise TypeError(f"{kernel}: labels must be an int64 numpy array, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if tuple(labels.shape) != (n,):
        fail(kernel, f"labels has shape {tuple(labels.shape)}, expected ({n},)")
    if DEBUG_CHECKS and n and isinstance(labels, np.ndarray) and (labels.min() < 0 or labels.max() >= classes):
        fail(kernel, f"labels must lie in [0, {classes}), got range [{labels.min()}, {labels.max()}]")


# --- scalars ------------------------------------------------------------------------------

def real(kernel, name, v):
    """A real number: int, float or a NumPy scalar of those (not a bool, string or array)."""
    if type(v) is float or type(v) is int:     # the common case, without the ABC check
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{kernel}: {name} must be a real number, got {type(v).__name__} {v!r}")
    return v


def integer(kernel, name, v, minimum=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{kernel}: {name} must be an integer, got {type(v).__name__} {v!r}")
    if minimum is not None and v < minimum:
        fail(kernel, f"{name} must be >= {minimum}, got {v}")
    return v


def flag(kernel, name, v):
    """A truth value: bool, numpy.bool_, or the integers 0 and 1."""
    if type(v) is bool:
        return v
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Integral) and v in (0, 1)):
        return v
    raise TypeError(f"{kernel}: {name} must be a bool, got {type(v).__name__} {v!r}")


def choice(kernel, name, v, allowed):
    if not isinstance(v, str):
        raise TypeError(f"{kernel}: {name} must be a string, one of {allowed}, got {type(v).__name__}")
    if v not in allowed:
        fail(kernel, f"unknown {name} {v!r}; expected one of {allowed}")


# --- overlapping memory -------------------------------------------------------------------

def _owner(a):
    """The NumPy array that owns a's memory, or None when that is unknown (device arrays,
    arrays over other buffers such as mmap): then the bounds are compared."""
    if not isinstance(a, np.ndarray):
        return None
    base = a.base
    if base is None:
        return a
    if isinstance(base, np.ndarray) and base.base is None:
        return base
    return None


def _bounds(a):
    """[low, high) byte addresses a device (or other) array can touch."""
    face = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    start, size = face["data"][0], np.dtype(face["typestr"]).itemsize
    shape = tuple(face["shape"])
    strides = face.get("strides") or tuple(
        int(np.prod(shape[k + 1:], dtype=np.int64)) * size for k in range(len(shape)))
    if 0 in shape:
        return start, start
    low = start + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides))
    high = start + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides)) + size
    return low, high


def _overlap(a, b):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if not np.may_share_memory(a, b):
            return False
        try:   # interleaved views (x[:, ::2] and x[:, 1::2]) share bounds but no element
            return bool(np.shares_memory(a, b, max_work=10_000))
        except np.exceptions.TooHardError:
            return True
    (la, ha), (lb, hb) = _bounds(a), _bounds(b)
    return la < hb and lb < ha


def _same(a, b):
    """a and b are the very same elements in the same order (a in-place form)."""
    if a is b:
        return True
    fa = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    fb = getattr(b, "__cuda_array_interface__", None) or b.__array_interface__
    return (fa["data"][0] == fb["data"][0] and tuple(fa["shape"]) == tuple(fb["shape"])
            and fa.get("strides") == fb.get("strides") and fa["typestr"] == fb["typestr"])


def disjoint(kernel, outputs, inputs, in_place=()):
    """No output shares memory with any other argument (kernels read inputs while they
    write outputs, so an overlap silently gives wrong numbers), except the pairs
    ``(output, other)`` in ``in_place``, which may be the very same array.

    ``outputs``/``inputs``: sequences of (name, array or None)."""
    outs = [(n, a, _owner(a)) for n, a in outputs if a is not None]
    others = outs + [(n, a, _owner(a)) for n, a in inputs if a is not None]
    for i, (name, out, owner) in enumerate(outs):
        for other, a, owner_a in others[i + 1:]:
            if owner is not owner_a and owner is not None and owner_a is not None:
                continue                     # separate allocations never overlap
            if out is a and ((name, other) in in_place or (other, name) in in_place):
                continue
            if not _overlap(out, a):
                continue
            if ((name, other) in in_place or (other, name) in in_place) and _same(out, a):
                continue
            allowed = [y for x, y in in_place if x == name] + [x for x, y in in_place if y == name]
            hint = f" (it may be {' or '.join(allowed)} itself)" if allowed else ""
            fail(kernel, f"output {name} overlaps {other} in memory{hint}; outputs must not share "
                         "memory with other arguments")
