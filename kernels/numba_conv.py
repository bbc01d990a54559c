"""Compiled Numba kernels of convolution and pooling (``kernels/conv_contract.py``), with
the structure of the native C version (``kernels/_cython/conv_impl.h``); results follow
``kernels/numpy_conv.py``. Exported by ``numba_backend`` under the contract's names.

Convolution runs on blocks of images: ``_im2col`` writes a block's windows as rows
(image, oh, ow) x columns (c, i, j) into a scratch buffer (zeros where a window lies in
the padding), and the backend's packed GEMM (``numba_gemm.matmul``, threaded by its own
rule) multiplies that by the weights, the bias added to each block of the product after
it is computed. One large GEMM per block keeps the micro-kernel busy where a GEMM per
image would be a few rows of packing overhead. The backward runs the same GEMMs
transposed (``dw = rows^T cols``, ``dcols = rows w``) and ``_col2im`` adds each window's
column back at its place.

Every loop splits its units of work (output rows of im2col, (image, channel) planes
elsewhere, so that overlapping windows add without races) into ``count`` pieces, decided
in Python by ``numba_util.pieces``: 1 runs serially with no prange region. Arrays reach
the compiled code C-contiguous; the contract checked every size, and
``maxpool2d_backward`` scans its indices before it writes anything, so no argument can
make compiled code read or write out of bounds.
"""

import threading

import numpy as np
from numba import njit, prange

from . import numba_gemm as _gemm
from . import numba_util as _u
from .numba_primitives import first_bad_index
from .numba_util import piece

__all__ = ["conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
           "avgpool2d_forward", "avgpool2d_backward"]

BLOCK_BYTES = 8 << 20        # scratch per block of images (at least one image), as conv.c


# --- im2col / col2im ------------------------------------------------------------------------

@njit(cache=True)
def _im2col_span(x, n0, g, cols, lo, hi):
    C, H, W, KH, KW, OH, OW, sh, sw, ph, pw = g
    K = C * KH * KW
    zero = cols.dtype.type(0)
    for u in range(lo, hi):                  # one output row (image, oh) per unit
        n, oh = u // OH, u % OH
        xn = x[n0 + n]
        d = u * OW * K
        for ow in range(OW):
            for c in range(C):
                for i in range(KH):
                    ih = oh * sh + i - ph
                    if ih < 0 or ih >= H:
                        for j in range(KW):
                            cols[d + j] = zero
                    else:
                        xr = xn[c, ih]
                        for j in range(KW):
                            iw = ow * sw + j - pw
                            cols[d + j] = xr[iw] if iw >= 0 and iw < W else zero
                    d += KW


@njit(cache=True, parallel=True)
def im2col(x, n0, nb, g, cols, count):
    """cols (flat, nb*OH*OW*K) = the windows of images [n0, n0 + nb) of x (N, C, H, W)."""
    units = nb * g[5]
    if count == 1:
        _im2col_span(x, n0, g, cols, 0, units)
        return
    for p in prange(count):
        lo, hi = piece(units, count, p)
        _im2col_span(x, n0, g, cols, lo, hi)


@njit(cache=True)
def _col2im_span(dcols, n0, g, dx, lo, hi):
    C, H, W, KH, KW, OH, OW, sh, sw, ph, pw = g
    K = C * KH * KW
    for u in range(lo, hi):                  # one (image, channel) plane per unit
        n, c = u // C, u % C
        plane = dx[n0 + n, c]
        plane[:, :] = 0
        for oh in range(OH):
            for ow in range(OW):
                src = ((n * OH + oh) * OW + ow) * K + c * KH * KW
                for i in range(KH):
                    ih = oh * sh + i - ph
                    if ih < 0 or ih >= H:
                        continue
                    dr = plane[ih]
                    for j in range(KW):
                        iw = ow * sw + j - pw
                        if iw >= 0 and iw < W:
                            dr[iw] += dcols[src + i * KW + j]


@njit(cache=True, parallel=True)
def col2im(dcols, n0, nb, g, dx, count):
    """dx of images [n0, n0 + nb) = every window's column of dcols added at its place."""
    units = nb * g[0]
    if count == 1:
        _col2im_span(dcols, n0, g, dx, 0, units)
        return
    for p in prange(count):
        lo, hi = piece(units, count, p)
        _col2im_span(dcols, n0, g, dx, lo, hi)


@njit(cache=True)
def _swap_span(nb, P, O, src, dst, to_rows, lo, hi):
    for n in range(lo, hi):
        base = n * P * O
        for oc in range(O):
            for p in range(P):
                if to_rows:
                    dst[base + p * O + oc] = src[base + oc * P + p]
                else:
                    dst[base + oc * P + p] = src[base + p * O + oc]


@njit(cache=True, parallel=True)
def swap_po(nb, P, O, src, dst, to_rows, count):
    """Flat (nb, P, O) -> (nb, O, P), or back when ``to_rows``; a piece owns whole images."""
    if count == 1:
        _swap_span(nb, P, O, src, dst, to_rows, 0, nb)
        return
    for q in prange(count):
        lo, hi = piece(nb, count, q)
        _swap_span(nb, P, O, src, dst, to_rows, lo, hi)


@njit(cache=True)
def _sums_span(dy, db, lo, hi):
    for oc in range(lo, hi):
        acc = 0.0
        for n in range(dy.shape[0]):
            row = dy[n, oc]
            for p in range(row.shape[0]):
                acc += np.float64(row[p])
        db[oc] = acc


@njit(cache=True, parallel=True)
def channel_sums(dy, db, count):
    """db[o] = the sum of dy[:, o] (N, O, P) in float64, rounded once."""
    O = dy.shape[1]
    if count == 1:
        _sums_span(dy, db, 0, O)
        return
    for q in prange(count):
        lo, hi = piece(O, count, q)
        _sums_span(dy, db, lo, hi)


# --- convolution (Python entry points) -------------------------------------------------------

def _c(a):
    return np.ascontiguousarray(a)


def _geometry(x, w, dy_shape, stride, padding):
    _, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = dy_shape[2:]
    return (c, h, wd, kh, kw, oh, ow, int(stride[0]), int(stride[1]), int(padding[0]), int(padding[1]))


_scratch = threading.local()


def _buffers(a, b, dtype):
    """Two flat scratch buffers of at least a and b elements, kept per Python thread and
    dtype and reused: fresh pages from the OS for megabytes of scratch at every call cost
    as much as the im2col that fills them (at most 2 x BLOCK_BYTES each, plus one image)."""
    held = getattr(_scratch, "held", None)
    if held is None:
        held = _scratch.held = {}
    key = np.dtype(dtype)
    got = held.get(key)
    if got is None or got[0].size < a or got[1].size < b:
        got = held[key] = (np.empty(a, dtype), np.empty(b, dtype))
    return got


def _block(n, p, k, o, itemsize):
    """Images per block: a scratch of at most BLOCK_BYTES (at least one image)."""
    return max(1, min(n, BLOCK_BYTES // (itemsize * p * max(k, o))))


def _pieces(units, elems):
    return max(1, min(_u.pieces(elems), units))


def conv2d_forward(x, w, b, out, stride, padding):
    x, w, b = _c(x), _c(w), _c(b)
    n, o = x.shape[0], w.shape[0]
    g = _geometry(x, w, out.shape, stride, padding)
    P, K = g[5] * g[6], g[0] * g[3] * g[4]
    nb = _block(n, P, K, o, x.itemsize)
    cols, res = _buffers(nb * P * K, nb * P * o, x.dtype)
    w2, flat_out = w.reshape(o, K), out.reshape(-1)
    for n0 in range(0, n, nb):
        cnt = min(nb, n - n0)
        m = cnt * P
        im2col(x, n0, cnt, g, cols, _pieces(cnt * g[5], m * K))
        prod = res[:m * o].reshape(m, o)
        _gemm.matmul(cols[:m * K].reshape(m, K), w2, prod, trans_b=True, bias=b)
        swap_po(cnt, P, o, res, flat_out[n0 * o * P:(n0 + cnt) * o * P], False, _pieces(cnt, m * o))


def conv2d_backward(x, w, dy, dx, dw, db, stride, padding):
    x, w, dy = _c(x), _c(w), _c(dy)
    n, o = x.shape[0], w.shape[0]
    g = _geometry(x, w, dy.shape, stride, padding)
    P, K = g[5] * g[6], g[0] * g[3] * g[4]
    channel_sums(dy.reshape(n, o, P), db, max(1, min(_u.pieces(dy.size), o)))
    nb = _block(n, P, K, o, x.itemsize)
    cols, rows = _buffers(nb * P * K, nb * P * o, x.dtype)
    w2, dw2, flat_dy = w.reshape(o, K), dw.reshape(o, K), dy.reshape(-1)
    for n0 in range(0, n, nb):
        cnt = min(nb, n - n0)
        m = cnt * P
        im2col(x, n0, cnt, g, cols, _pieces(cnt * g[5], m * K))
        swap_po(cnt, P, o, flat_dy[n0 * o * P:(n0 + cnt) * o * P], rows, True, _pieces(cnt, m * o))
        r, cm = rows[:m * o].reshape(m, o), cols[:m * K].reshape(m, K)
        _gemm.matmul(r, cm, dw2, trans_a=True, beta=1.0 if n0 else 0.0)   # dw (+)= rows^T cols
        if dx is None:
            continue
        _gemm.matmul(r, w2, cm)                                          # dcols = rows w, into cols
        col2im(cols, n0, cnt, g, dx, _pieces(cnt * g[0], m * K))


# --- pooling: a piece owns whole (image, channel) planes ---------------------------------------

@njit(cache=True)
def _window_max(xp, h0, w0, KH, KW):
    """(max, flat index in the plane) of the window at (h0, w0): the first maximum in
    row-major order, or the first NaN (which wins as soon as it is seen), as numpy.argmax."""
    W = xp.shape[1]
    m = xp[h0, w0]
    best = h0 * W + w0
    if m != m:
        return m, best
    for i in range(KH):
        row = xp[h0 + i]
        for j in range(KW):
            v = row[w0 + j]
            if v > m:
                m = v
                best = (h0 + i) * W + w0 + j
            elif v != v:
                return v, (h0 + i) * W + w0 + j
    return m, best


@njit(cache=True)
def _maxpool_span(x, out, argmax, KH, KW, sh, sw, lo, hi):
    C, OH, OW = x.shape[1], out.shape[2], out.shape[3]
    for u in range(lo, hi):
        n, c = u // C, u % C
        xp, op, ap = x[n, c], out[n, c], argmax[n, c]
        for oh in range(OH):
            for ow in range(OW):
                m, at = _window_max(xp, oh * sh, ow * sw, KH, KW)
                op[oh, ow] = m
                ap[oh, ow] = at


@njit(cache=True, parallel=True)
def maxpool_forward(x, out, argmax, KH, KW, sh, sw, count):
    units = x.shape[0] * x.shape[1]
    if count == 1:
        _maxpool_span(x, out, argmax, KH, KW, sh, sw, 0, units)
        return
    for q in prange(count):
        lo, hi = piece(units, count, q)
        _maxpool_span(x, out, argmax, KH, KW, sh, sw, lo, hi)


@njit(cache=True)
def _unpool_span(dy, argmax, dx, lo, hi):
    ohw = dy.shape[1]
    for pl in range(lo, hi):
        dp, g, ap = dx[pl], dy[pl], argmax[pl]
        dp[:] = 0
        for q in range(ohw):
            dp[ap[q]] += g[q]


@njit(cache=True, parallel=True)
def maxpool_backward(dy, argmax, dx, count):
    """dx (planes, H*W) = 0, then each dy (planes, OH*OW) added at its argmax. Every index
    is scanned first: returns the flat position of the first outside [0, H*W) without
    writing anything, or -1 when the work is done."""
    planes, hw = dx.shape
    bad = first_bad_index(argmax.reshape(-1), hw)
    if bad >= 0:
        return bad
    if count == 1:
        _unpool_span(dy, argmax, dx, 0, planes)
        return -1
    for q in prange(count):
        lo, hi = piece(planes, count, q)
        _unpool_span(dy, argmax, dx, lo, hi)
    return -1


@njit(cache=True)
def _avgpool_span(x, out, KH, KW, sh, sw, lo, hi):
    C, OH, OW = x.shape[1], out.shape[2], out.shape[3]
    area = np.float64(KH * KW)
    for u in range(lo, hi):
        n, c = u // C, u % C
        xp, op = x[n, c], out[n, c]
        for oh in range(OH):
            for ow in range(OW):
                acc = 0.0                    # summed in float64, as the NumPy kernel
                for i in range(KH):
                    row = xp[oh * sh + i]
                    for j in range(KW):
                        acc += np.float64(row[ow * sw + j])
                op[oh, ow] = acc / area


@njit(cache=True, parallel=True)
def avgpool_forward(x, out, KH, KW, sh, sw, count):
    units = x.shape[0] * x.shape[1]
    if count == 1:
        _avgpool_span(x, out, KH, KW, sh, sw, 0, units)
        return
    for q in prange(count):
        lo, hi = piece(units, count, q)
        _avgpool_span(x, out, KH, KW, sh, sw, lo, hi)


@njit(cache=True)
def _avgunpool_span(dy, dx, KH, KW, sh, sw, area, lo, hi):
    C, OH, OW = dx.shape[1], dy.shape[2], dy.shape[3]
    for u in range(lo, hi):
        n, c = u // C, u % C
        dp, g = dx[n, c], dy[n, c]
        dp[:, :] = 0
        for oh in range(OH):
            for ow in range(OW):
                share = g[oh, ow] / area     # dy / (KH KW) in the arrays' dtype, as NumPy
                for i in range(KH):
                    row = dp[oh * sh + i]
                    for j in range(KW):
                        row[ow * sw + j] += share


@njit(cache=True, parallel=True)
def avgpool_backward(dy, dx, KH, KW, sh, sw, area, count):
    units = dx.shape[0] * dx.shape[1]
    if count == 1:
        _avgunpool_span(dy, dx, KH, KW, sh, sw, area, 0, units)
        return
    for q in prange(count):
        lo, hi = piece(units, count, q)
        _avgunpool_span(dy, dx, KH, KW, sh, sw, area, lo, hi)


# --- pooling (Python entry points) -------------------------------------------------------------

def _plane_pieces(planes, elems):
    return max(1, min(_u.pieces(elems), planes))


def maxpool2d_forward(x, out, argmax, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    n, c = x.shape[:2]
    maxpool_forward(_c(x), out, argmax, int(kh), int(kw), int(sh), int(sw),
                    _plane_pieces(n * c, out.size * kh * kw))


def maxpool2d_backward(dy, argmax, dx):
    n, c, h, w = dx.shape
    argmax = _c(argmax)
    planes = n * c
    bad = maxpool_backward(_c(dy).reshape(planes, -1), argmax.reshape(planes, -1),
                           dx.reshape(planes, h * w), _plane_pieces(planes, dx.size + dy.size))
    if bad >= 0:
        raise ValueError(f"maxpool2d_backward: argmax must lie in [0, {h * w}), got "
                         f"{argmax.reshape(-1)[bad]} at flat position {bad}")


def avgpool2d_forward(x, out, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    n, c = x.shape[:2]
    avgpool_forward(_c(x), out, int(kh), int(kw), int(sh), int(sw),
                    _plane_pieces(n * c, out.size * kh * kw))


def avgpool2d_backward(dy, dx, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    n, c = dx.shape[:2]
    avgpool_backward(_c(dy), dx, int(kh), int(kw), int(sh), int(sw), dx.dtype.type(kh * kw),
                     _plane_pieces(n * c, dx.size + dy.size * kh * kw))
