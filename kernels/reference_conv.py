"""References of the convolution and pooling kernels, composed of tier-1 primitives only
(merged into ``reference.REFERENCES``); they run on any backend without its own.

Every index is computed on the host (NumPy, cached per shape) and handed to the
backend's row primitives over (rows, 1) views of flat arrays:

* the zero-padded copy of x is ``scatter_add_rows`` of x into zeros;
* im2col is ``gather_rows`` of the padded copy: rows (n, oh, ow), columns (c, i, j);
* the convolution is ``gemm`` with the weights as (O, C*KH*KW), plus the bias as a GEMM
  with a column of ones; its (N*OH*OW, O) result is put in NCHW order by one more gather;
* col2im in the backward is ``scatter_add_rows`` (overlapping windows accumulate);
* pools gather their windows as (N*C*OH*OW, KH*KW) rows, then ``reduce_max`` or
  ``reduce_sum`` + ``scale_`` along axis 1. Max pooling's argmax is taken on the host
  from the gathered windows (``numpy.argmax``: the first maximum, the first NaN).
"""

import functools

import numpy as np

__all__ = ["CONV_REFERENCES", "CONV_KERNEL_NAMES"]


def _contiguous(bk, a):
    """A C-contiguous copy of a (any strides), so it can be seen as flat rows."""
    out = bk.empty(tuple(a.shape), a.dtype)
    bk.unary("copy", a, out)
    return out


def _rows(a):
    return a.reshape(-1, 1)


def _store(bk, dst, host):
    """Write the host int64 array ``host`` into ``dst`` (host or device memory)."""
    if isinstance(dst, np.ndarray):
        dst[...] = host
    else:
        dst.copy_to_device(np.ascontiguousarray(host, np.int64))


@functools.lru_cache(maxsize=64)
def _pad_index(n, c, h, w, ph, pw):
    """Where each element of x (N, C, H, W), in C order, sits in the flat padded copy."""
    hp, wp = h + 2 * ph, w + 2 * pw
    idx = (np.arange(n * c)[:, None, None] * (hp * wp) + (np.arange(h)[:, None] + ph) * wp
           + np.arange(w) + pw)
    return idx.reshape(-1).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _window_index(n, c, hp, wp, kh, kw, sh, sw, conv):
    """Flat indices into (N, C, Hp, Wp) of every window element, in the order
    (N, OH, OW, C, KH, KW) for im2col (``conv``) or (N, C, OH, OW, KH, KW) for pools."""
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    g = np.ix_(np.arange(n), np.arange(c), np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw))
    nn, cc, yy, xx, ii, jj = g
    idx = ((nn * c + cc) * hp + yy * sh + ii) * wp + xx * sw + jj
    if conv:
        idx = idx.transpose(0, 2, 3, 1, 4, 5)
    return np.ascontiguousarray(idx).reshape(-1).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _nhwc_of_nchw(n, o, oh, ow):
    """For each element of (N, O, OH, OW), its flat position in (N, OH, OW, O)."""
    nn, oo, yy, xx = np.ix_(np.arange(n), np.arange(o), np.arange(oh), np.arange(ow))
    return (((nn * oh + yy) * ow + xx) * o + oo).reshape(-1).astype(np.int64)


@functools.lru_cache(maxsize=64)
def _nchw_of_nhwc(n, o, oh, ow):
    """For each element of (N, OH, OW, O), its flat position in (N, O, OH, OW)."""
    nn, yy, xx, oo = np.ix_(np.arange(n), np.arange(oh), np.arange(ow), np.arange(o))
    return (((nn * o + oo) * oh + yy) * ow + xx).reshape(-1).astype(np.int64)


def _im2col(bk, x, kh, kw, stride, padding):
    """(N*OH*OW, C*KH*KW) windows of the zero-padded x, and (OH, OW)."""
    n, c, h, w = x.shape
    (ph, pw), (sh, sw) = padding, stride
    hp, wp = h + 2 * ph, w + 2 * pw
    flat = _rows(_contiguous(bk, x))
    if ph or pw:
        padded = bk.zeros((n * c * hp * wp, 1), x.dtype)
        bk.scatter_add_rows(flat, bk.asarray(_pad_index(n, c, h, w, ph, pw)), padded)
        flat = padded
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    cols = bk.empty((n * oh * ow * c * kh * kw, 1), x.dtype)
    bk.gather_rows(flat, bk.asarray(_window_index(n, c, hp, wp, kh, kw, sh, sw, True)), cols)
    return cols.reshape(n * oh * ow, c * kh * kw), (oh, ow)


def conv2d_forward(bk, x, w, b, out, stride, padding):
    n, o = x.shape[0], w.shape[0]
    cols, (oh, ow) = _im2col(bk, x, w.shape[2], w.shape[3], stride, padding)
    m = cols.shape[0]
    res = bk.empty((m, o), x.dtype)
    bk.gemm(cols, _contiguous(bk, w).reshape(o, -1), res, trans_b=True)
    bk.gemm(bk.asarray(np.ones((m, 1), x.dtype)), _contiguous(bk, b).reshape(1, o), res, beta=1.0)
    bk.gather_rows(_rows(res), bk.asarray(_nhwc_of_nchw(n, o, oh, ow)), _rows(out))


def conv2d_backward(bk, x, w, dy, dx, dw, db, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    cols, (oh, ow) = _im2col(bk, x, kh, kw, stride, padding)
    m = cols.shape[0]
    grad = bk.empty((m, o), x.dtype)                     # dy as (N*OH*OW, O) rows
    bk.gather_rows(_rows(_contiguous(bk, dy)), bk.asarray(_nchw_of_nhwc(n, o, oh, ow)), _rows(grad))
    bk.reduce_sum(grad, 0, db)
    bk.gemm(grad, cols, dw.reshape(o, -1), trans_a=True)
    if dx is None:
        return
    dcols = bk.empty(tuple(cols.shape), x.dtype)
    bk.gemm(grad, _contiguous(bk, w).reshape(o, -1), dcols)
    (ph, pw), (sh, sw) = padding, stride
    hp, wp = h + 2 * ph, wd + 2 * pw
    dpad = bk.zeros((n * c * hp * wp, 1), x.dtype)       # col2im: windows overlap, so add
    bk.scatter_add_rows(_rows(dcols), bk.asarray(_window_index(n, c, hp, wp, kh, kw, sh, sw, True)), dpad)
    if ph or pw:
        bk.gather_rows(dpad, bk.asarray(_pad_index(n, c, h, wd, ph, pw)), _rows(dx))
    else:
        bk.unary("copy", dpad.reshape(dx.shape), dx)


def _pool_windows(bk, x, kernel, stride):
    """(N*C*OH*OW, KH*KW) windows of x, and their host flat indices into x."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    index = _window_index(n, c, h, w, kh, kw, sh, sw, False)
    win = bk.empty((index.shape[0], 1), x.dtype)
    bk.gather_rows(_rows(_contiguous(bk, x)), bk.asarray(index), win)
    return win.reshape(-1, kh * kw), index.reshape(-1, kh * kw)


def maxpool2d_forward(bk, x, out, argmax, kernel, stride):
    win, index = _pool_windows(bk, x, kernel, stride)
    bk.reduce_max(win, 1, out.reshape(-1))
    pick = np.argmax(np.asarray(bk.to_host(win)), axis=1)
    plane = x.shape[2] * x.shape[3]                       # flat index into x mod H*W: in the plane
    _store(bk, argmax, (index[np.arange(index.shape[0]), pick] % plane).reshape(argmax.shape))


def _spread(bk, rows, index, dx):
    """dx = 0, then rows (M, K) added at the flat positions index (M, K) of dx."""
    flat = bk.zeros((int(np.prod(dx.shape)), 1), dx.dtype)
    bk.scatter_add_rows(_rows(rows), bk.asarray(index.reshape(-1)), flat)
    bk.unary("copy", flat.reshape(dx.shape), dx)


def maxpool2d_backward(bk, dy, argmax, dx):
    n, c, h, w = dx.shape
    host = np.asarray(bk.to_host(argmax), np.int64).reshape(n * c, -1)
    if host.size and (host.min() < 0 or host.max() >= h * w):
        bad = int(np.flatnonzero((host < 0) | (host >= h * w))[0])
        raise ValueError(f"maxpool2d_backward: argmax must lie in [0, {h * w}), got "
                         f"{host.reshape(-1)[bad]} at flat position {bad}")
    index = np.arange(n * c, dtype=np.int64)[:, None] * (h * w) + host
    _spread(bk, _rows(_contiguous(bk, dy)), index, dx)


def avgpool2d_forward(bk, x, out, kernel, stride):
    win, _ = _pool_windows(bk, x, kernel, stride)
    bk.reduce_sum(win, 1, out.reshape(-1))
    bk.scale_(out, 1.0 / (kernel[0] * kernel[1]))


def avgpool2d_backward(bk, dy, dx, kernel, stride):
    n, c, h, w = dx.shape
    (kh, kw), (sh, sw) = kernel, stride
    m = int(np.prod(dy.shape))
    share = bk.empty((m, kh * kw), dy.dtype)              # dy / (KH KW) on every window element
    bk.gemm(_rows(_contiguous(bk, dy)), bk.asarray(np.ones((1, kh * kw), dy.dtype)), share)
    bk.scale_(share, 1.0 / (kh * kw))
    _spread(bk, share, _window_index(n, c, h, w, kh, kw, sh, sw, False), dx)


CONV_KERNEL_NAMES = ("conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
                     "avgpool2d_forward", "avgpool2d_backward")
CONV_REFERENCES = {name: globals()[name] for name in CONV_KERNEL_NAMES}
