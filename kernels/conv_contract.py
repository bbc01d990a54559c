"""The convolution and pooling kernels of the contract (tier 2), merged into
``contract.KERNELS`` / ``contract.CHECKS`` the way ``primitives.py`` is.

Layout is NCHW throughout, with PyTorch's weight layout: x (N, C, H, W), w (O, C, KH, KW),
out (N, O, OH, OW) with ``OH = (H + 2 ph - KH) // sh + 1`` (and OW likewise).
``stride``, ``padding`` and ``kernel`` are pairs of ints (rows, columns); padding is
zeros, pools take none. Every dimension of x and w is at least 1, and the kernel fits
the (padded) input.

Max pooling's ``argmax`` (int64, the shape of ``out``) holds, per output element, the
flat index ``h * W + w`` of the maximum within its input plane: the **first** maximum of
the window in row-major order on ties, and the first NaN if the window holds one (as
``numpy.argmax``). ``maxpool2d_backward`` adds each ``dy`` to ``dx`` at that index
(overlapping windows accumulate); the indices' range [0, H*W) is checked by the kernel,
which reads them, as class labels are.
"""

import numbers

import numpy as np

from . import validate as V

CONV_KERNELS = {
    "conv2d_forward": "conv2d_forward(x, w, b, out, stride, padding): out[n, o] = b[o] + sum over c, "
                      "i, j of w[o, c, i, j] xpad[n, c, oh sh + i, ow sw + j]; x (N,C,H,W), w (O,C,KH,KW), "
                      "b (O,), out (N,O,OH,OW), OH = (H + 2 ph - KH) // sh + 1; stride, padding pairs of ints",
    "conv2d_backward": "conv2d_backward(x, w, dy, dx, dw, db, stride, padding): dw, db overwritten with "
                       "the gradients of conv2d_forward for dy (N,O,OH,OW); dx (N,C,H,W) likewise "
                       "(skipped if dx is None)",
    "maxpool2d_forward": "maxpool2d_forward(x, out, argmax, kernel, stride): out = the max of each "
                         "window (NaN if it holds one); argmax (int64, out's shape) = its flat index "
                         "h * W + w in the input plane, the first maximum on ties; x (N,C,H,W), "
                         "out (N,C,OH,OW), OH = (H - KH) // sh + 1",
    "maxpool2d_backward": "maxpool2d_backward(dy, argmax, dx): dx = 0, then dx[n, c].flat[argmax] += dy "
                          "for every element; dy, argmax (N,C,OH,OW), dx (N,C,H,W), argmax in [0, H*W) "
                          "(checked by the kernel)",
    "avgpool2d_forward": "avgpool2d_forward(x, out, kernel, stride): out = the mean of each window "
                         "(summed in float64); x (N,C,H,W), out (N,C,OH,OW)",
    "avgpool2d_backward": "avgpool2d_backward(dy, dx, kernel, stride): dx = 0, then dy / (KH KW) added "
                          "to every element of its window; dy (N,C,OH,OW), dx (N,C,H,W)",
}


def _pair(k, name, v, minimum):
    """A pair (tuple or list) of two ints >= ``minimum``, returned as a tuple."""
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or any(isinstance(e, (bool, np.bool_)) or not isinstance(e, numbers.Integral) for e in v)):
        raise TypeError(f"{k}: {name} must be a pair of ints, got {type(v).__name__} {v!r}")
    if v[0] < minimum or v[1] < minimum:
        V.fail(k, f"{name} must be >= {minimum} in both dimensions, got {tuple(v)}")
    return int(v[0]), int(v[1])


def _image(k, name, a, dtype=None):
    """A 4-D float array with every dimension >= 1; returns its shape."""
    V.floating(k, name, a, dtype)
    V.ndim(k, name, a, 4)
    if min(a.shape) < 1:
        V.fail(k, f"{name} has shape {tuple(a.shape)}: every dimension must be >= 1")
    return tuple(int(d) for d in a.shape)


def out_size(k, size, kernel, stride, padding=(0, 0)):
    """(OH, OW) for input (H, W); ContractError if the kernel exceeds the padded input."""
    padded = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        V.fail(k, f"kernel {tuple(kernel)} is larger than the padded input {padded}")
    return tuple((p - q) // s + 1 for p, q, s in zip(padded, kernel, stride))


def _int_output(k, name, a, shape):
    if not V.is_array(a) or a.dtype != np.int64:
        raise TypeError(f"{k}: {name} must be an int64 array, got {getattr(a, 'dtype', type(a).__name__)}")
    if tuple(a.shape) != tuple(shape):
        V.fail(k, f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if not V._c_contiguous(a):
        V.fail(k, f"{name} must be a writeable C-contiguous array")


def _int_input(k, name, a, shape):
    if not V.is_array(a) or a.dtype != np.int64:
        raise TypeError(f"{k}: {name} must be an int64 array, got {getattr(a, 'dtype', type(a).__name__)}")
    if tuple(a.shape) != tuple(shape):
        V.fail(k, f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")


def _conv_inputs(k, x, w, stride, padding):
    n, c, h, wd = _image(k, "x", x)
    o, cw, kh, kw = _image(k, "w", w, x.dtype)
    if cw != c:
        V.fail(k, f"x has {c} channels but w expects {cw} (w shape {tuple(w.shape)})")
    stride, padding = _pair(k, "stride", stride, 1), _pair(k, "padding", padding, 0)
    return (n, c, h, wd), o, out_size(k, (h, wd), (kh, kw), stride, padding)


def _check_conv2d_forward(x, w, b, out, stride, padding):
    k = "conv2d_forward"
    (n, _, _, _), o, (oh, ow) = _conv_inputs(k, x, w, stride, padding)
    V.shaped(k, "b", b, (o,), x.dtype)
    V.output(k, "out", out, (n, o, oh, ow), x.dtype)
    V.disjoint(k, [("out", out)], [("x", x), ("w", w), ("b", b)])


def _check_conv2d_backward(x, w, dy, dx, dw, db, stride, padding):
    k = "conv2d_backward"
    (n, _, _, _), o, (oh, ow) = _conv_inputs(k, x, w, stride, padding)
    V.shaped(k, "dy", dy, (n, o, oh, ow), x.dtype)
    if dx is not None:
        V.output(k, "dx", dx, tuple(x.shape), x.dtype)
    V.output(k, "dw", dw, tuple(w.shape), x.dtype)
    V.output(k, "db", db, (o,), x.dtype)
    V.disjoint(k, [("dx", dx), ("dw", dw), ("db", db)], [("x", x), ("w", w), ("dy", dy)])


def _pool_inputs(k, x, kernel, stride, name="x"):
    n, c, h, w = _image(k, name, x)
    kernel, stride = _pair(k, "kernel", kernel, 1), _pair(k, "stride", stride, 1)
    return (n, c) + out_size(k, (h, w), kernel, stride)


def _check_maxpool2d_forward(x, out, argmax, kernel, stride):
    k = "maxpool2d_forward"
    shape = _pool_inputs(k, x, kernel, stride)
    V.output(k, "out", out, shape, x.dtype)
    _int_output(k, "argmax", argmax, shape)
    V.disjoint(k, [("out", out), ("argmax", argmax)], [("x", x)])


def _check_maxpool2d_backward(dy, argmax, dx):
    k = "maxpool2d_backward"
    n, c, _, _ = _image(k, "dy", dy)
    _int_input(k, "argmax", argmax, dy.shape)
    _, _, h, w = _image(k, "dx", dx, dy.dtype)
    V.output(k, "dx", dx, (n, c, h, w), dy.dtype)
    V.disjoint(k, [("dx", dx)], [("dy", dy), ("argmax", argmax)])


def _check_avgpool2d_forward(x, out, kernel, stride):
    k = "avgpool2d_forward"
    shape = _pool_inputs(k, x, kernel, stride)
    V.output(k, "out", out, shape, x.dtype)
    V.disjoint(k, [("out", out)], [("x", x)])


def _check_avgpool2d_backward(dy, dx, kernel, stride):
    k = "avgpool2d_backward"
    V.floating(k, "dy", dy)
    _image(k, "dx", dx, dy.dtype)
    V.output(k, "dx", dx, tuple(dx.shape), dy.dtype)
    shape = _pool_inputs(k, dx, kernel, stride, "dx")
    V.shaped(k, "dy", dy, shape, dy.dtype)
    V.disjoint(k, [("dx", dx)], [("dy", dy)])


CONV_CHECKS = {
    "conv2d_forward": _check_conv2d_forward,
    "conv2d_backward": _check_conv2d_backward,
    "maxpool2d_forward": _check_maxpool2d_forward,
    "maxpool2d_backward": _check_maxpool2d_backward,
    "avgpool2d_forward": _check_avgpool2d_forward,
    "avgpool2d_backward": _check_avgpool2d_backward,
}

assert CONV_CHECKS.keys() == CONV_KERNELS.keys()
