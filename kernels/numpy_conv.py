"""NumPy convolution and pooling kernels (``kernels/conv_contract.py``): the reference
and the oracle the other backends are tested against. Exported by ``numpy_backend``.

Convolution is im2col + GEMM: ``sliding_window_view`` of the zero-padded input, taken
every ``stride`` rows and columns, is a strided view (N, C, OH, OW, KH, KW) of it; its
copy as rows (N*OH*OW, C*KH*KW) times the weights seen as (O, C*KH*KW) is the output.
The backward runs the same GEMMs transposed; col2im adds each kernel offset's slice
back, one strided slice per (i, j) of the KH*KW offsets.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
           "avgpool2d_forward", "avgpool2d_backward"]


def _windows(x, kernel, stride):
    """(N, C, OH, OW, KH, KW): a view of every window of x (N, C, H, W), no copy."""
    view = sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1]]


def _padded(x, padding):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _im2col(x, kh, kw, stride, padding):
    """(N*OH*OW, C*KH*KW) rows of windows, and (OH, OW)."""
    win = _windows(_padded(x, padding), (kh, kw), stride)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw), (oh, ow)


def conv2d_forward(x, w, b, out, stride, padding):
    """x (N,C,H,W), w (O,C,KH,KW), b (O,) -> out (N,O,OH,OW)."""
    n, o = x.shape[0], w.shape[0]
    cols, (oh, ow) = _im2col(x, w.shape[2], w.shape[3], stride, padding)
    prod = cols @ w.reshape(o, -1).T                     # (N*OH*OW, O)
    prod += b
    out[...] = prod.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


def conv2d_backward(x, w, dy, dx, dw, db, stride, padding):
    """dy (N,O,OH,OW) -> dw (O,C,KH,KW), db (O,), dx (N,C,H,W) (skipped if None)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    cols, (oh, ow) = _im2col(x, kh, kw, stride, padding)
    rows = dy.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
    dw[...] = (rows.T @ cols).reshape(w.shape)
    db[...] = dy.sum(axis=(0, 2, 3), dtype=np.float64)
    if dx is None:
        return
    dcols = (rows @ w.reshape(o, -1)).reshape(n, oh, ow, c, kh, kw)
    (ph, pw), (sh, sw) = padding, stride
    dpad = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), x.dtype)
    for i in range(kh):                                  # col2im: one strided slice per offset
        for j in range(kw):
            dpad[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    dx[...] = dpad[:, :, ph:ph + h, pw:pw + wd]


def maxpool2d_forward(x, out, argmax, kernel, stride):
    """x (N,C,H,W) -> out, argmax (N,C,OH,OW); argmax is the flat index in the plane of the
    first maximum (numpy.argmax: the first NaN if any)."""
    kh, kw = kernel
    win = _windows(x, kernel, stride)
    n, c, oh, ow = win.shape[:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    pick = np.argmax(flat, axis=-1)
    out[...] = np.take_along_axis(flat, pick[..., None], axis=-1)[..., 0]
    rows = np.arange(oh)[:, None] * stride[0] + pick // kw
    cols = np.arange(ow)[None, :] * stride[1] + pick % kw
    argmax[...] = rows * x.shape[3] + cols


def _check_argmax(argmax, size):
    if argmax.size and (argmax.min() < 0 or argmax.max() >= size):
        bad = np.flatnonzero((argmax < 0) | (argmax >= size))[0]
        raise ValueError(f"maxpool2d_backward: argmax must lie in [0, {size}), got "
                         f"{argmax.reshape(-1)[bad]} at flat position {bad}")


def maxpool2d_backward(dy, argmax, dx):
    """dy, argmax (N,C,OH,OW) -> dx (N,C,H,W): each dy added at its argmax."""
    n, c, h, w = dx.shape
    _check_argmax(argmax, h * w)
    planes = dx.reshape(n * c, h * w)
    planes[...] = 0
    np.add.at(planes, (np.arange(n * c)[:, None], argmax.reshape(n * c, -1)), dy.reshape(n * c, -1))


def avgpool2d_forward(x, out, kernel, stride):
    """x (N,C,H,W) -> out (N,C,OH,OW): each window's mean, summed in float64."""
    win = _windows(x, kernel, stride)
    out[...] = win.sum(axis=(-2, -1), dtype=np.float64) / (kernel[0] * kernel[1])


def avgpool2d_backward(dy, dx, kernel, stride):
    """dy (N,C,OH,OW) -> dx (N,C,H,W): dy / (KH KW) spread over each window."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = dy.shape[2:]
    share = dy / dy.dtype.type(kh * kw)
    dx[...] = 0
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += share
