"""Compiled Numba kernels of the contract other than GEMM (see ``numba_gemm``).

Shapes as in ``kernels/contract.py``. The Python layer (``numba_backend``) hands
these functions C-contiguous arrays only, flattened to 1-D for element-wise work,
so each kernel compiles once per dtype. The last argument, ``count``, says into how
many pieces to split the work (``numba_util.pieces``): 1 runs the serial code with
no prange region, more hands the pieces to ``prange``.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_util import FASTMATH, LINEAR, RELU, act_grad, piece, sigmoid

# --- element-wise maps ------------------------------------------------------------
# One driver for every element-wise kernel: ``op`` picks the formula (the branch is
# taken once per piece, outside the loop, so each loop vectorises on its own).
# Arguments: x, y inputs (y unused by some ops), out output, alpha/beta scalars in
# the arrays' dtype.

RELU_F, LEAKY_F, SIGMOID_F, TANH_F = 0, 1, 2, 3
RELU_B, LEAKY_B, SIGMOID_B, TANH_B = 4, 5, 6, 7
MUL, ADD, SCALED_DIFF, SIGMOID_DIFF, SCALE, PENALTY = 8, 9, 10, 11, 12, 13


@njit(cache=True, fastmath={"contract"})
def _map_span(op, x, y, out, alpha, beta, lo, hi):
    one = out.dtype.type(1)
    zero = out.dtype.type(0)
    if op == RELU_F:                       # NaN stays NaN, as np.maximum(x, 0)
        for i in range(lo, hi):
            out[i] = zero if x[i] < 0 else x[i]
    elif op == LEAKY_F:
        for i in range(lo, hi):
            out[i] = x[i] if x[i] > 0 else x[i] * alpha
    elif op == SIGMOID_F:
        for i in range(lo, hi):
            out[i] = sigmoid(x[i], one)
    elif op == TANH_F:
        for i in range(lo, hi):
            out[i] = math.tanh(x[i])
    elif op == RELU_B:                     # x = y (forward output), y = dy; dy * 0 or 1, so
        for i in range(lo, hi):            # a NaN or inf dy gives NaN as in the reference
            out[i] = y[i] * (one if x[i] > 0 else zero)
    elif op == LEAKY_B:
        for i in range(lo, hi):
            out[i] = y[i] if x[i] > 0 else y[i] * alpha
    elif op == SIGMOID_B:
        for i in range(lo, hi):
            out[i] = y[i] * (x[i] * (one - x[i]))
    elif op == TANH_B:
        for i in range(lo, hi):
            out[i] = y[i] * (one - x[i] * x[i])
    elif op == MUL:
        for i in range(lo, hi):
            out[i] = x[i] * y[i]
    elif op == ADD:
        for i in range(lo, hi):
            out[i] = x[i] + y[i]
    elif op == SCALED_DIFF:                # mse_backward: alpha (x - y)
        for i in range(lo, hi):
            out[i] = (x[i] - y[i]) * alpha
    elif op == SIGMOID_DIFF:               # bce_with_logits_backward: alpha (sigmoid(x) - y)
        for i in range(lo, hi):
            out[i] = (sigmoid(x[i], one) - y[i]) * alpha
    elif op == SCALE:                      # scale_: out *= alpha
        for i in range(lo, hi):
            out[i] *= alpha
    elif op == PENALTY:                    # penalty_grad: out += alpha sign(x); out += beta x
        if alpha != 0:                     # (a term whose coefficient is 0 is skipped)
            for i in range(lo, hi):
                w = x[i]
                sign = one if w > 0 else (-one if w < 0 else (w if w != w else zero))
                out[i] += alpha * sign
        if beta != 0:
            for i in range(lo, hi):
                out[i] += beta * x[i]


@njit(cache=True, parallel=True)
def elementwise(op, x, y, out, alpha, beta, count):
    """out = op(x, y) element by element; x, y, out 1-D of one length and dtype."""
    n = out.shape[0]
    if count == 1:
        _map_span(op, x, y, out, alpha, beta, 0, n)
        return
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _map_span(op, x, y, out, alpha, beta, lo, hi)


# --- reductions to a float64 scalar ----------------------------------------------------

SUM_SQUARES, ABS_SUM, SQUARED_DIFF, BCE_LOGITS = 0, 1, 2, 3


@njit(cache=True, fastmath=FASTMATH)
def _reduce_span(op, x, y, lo, hi):
    s = 0.0                                # float64 accumulator, whatever the input dtype
    if op == SUM_SQUARES:
        for i in range(lo, hi):
            v = np.float64(x[i])
            s += v * v
    elif op == ABS_SUM:
        for i in range(lo, hi):
            s += abs(np.float64(x[i]))
    elif op == SQUARED_DIFF:
        for i in range(lo, hi):
            d = np.float64(x[i]) - np.float64(y[i])
            s += d * d
    elif op == BCE_LOGITS:                 # max(z, 0) - z t + log(1 + exp(-|z|))
        for i in range(lo, hi):
            z, t = np.float64(x[i]), np.float64(y[i])
            s += max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
    return s


@njit(cache=True, parallel=True)
def reduce_sum(op, x, y, count):
    """sum over i of op(x[i], y[i]) in float64; x, y 1-D (y unused by some ops)."""
    n = x.shape[0]
    if count == 1:
        return _reduce_span(op, x, y, 0, n)
    parts = np.empty(count)
    for c in prange(count):
        lo, hi = piece(n, count, c)
        parts[c] = _reduce_span(op, x, y, lo, hi)
    return parts.sum()


# --- row-wise: softmax, cross-entropy, argmax ---------------------------------------------

@njit(cache=True, fastmath={"contract"})
def _softmax_row(x, out):
    """out = softmax(x) for one row, max-subtracted; returns (max, log(sum exp(x - max)))
    in float64. A row of no columns is left alone (nothing to read)."""
    if x.shape[0] == 0:
        return x.dtype.type(0), 0.0
    m = x[0]
    for j in range(1, x.shape[0]):
        m = max(m, x[j])
    s = 0.0
    for j in range(x.shape[0]):
        e = math.exp(x[j] - m)
        out[j] = e
        s += e
    inv = 1.0 / s
    for j in range(x.shape[0]):
        out[j] *= inv
    return m, math.log(s)


@njit(cache=True)
def _softmax_rows(x, out, lo, hi):
    for i in range(lo, hi):
        _softmax_row(x[i], out[i])


@njit(cache=True, parallel=True)
def softmax_forward(x, out, count):
    n, c = x.shape
    if count == 1:                           # no prange region at all for small inputs
        _softmax_rows(x, out, 0, n)
        return
    for p in prange(count):
        lo, hi = piece(n, count, p)
        _softmax_rows(x, out, lo, hi)


@njit(cache=True)
def _softmax_backward_rows(y, dy, dx, lo, hi):
    for i in range(lo, hi):
        yr, dyr, dxr = y[i], dy[i], dx[i]
        dot = 0.0
        for j in range(yr.shape[0]):
            dot += dyr[j] * yr[j]
        for j in range(yr.shape[0]):
            dxr[j] = yr[j] * (dyr[j] - dot)


@njit(cache=True, parallel=True)
def softmax_backward(y, dy, dx, count):
    n, c = y.shape
    if count == 1:
        _softmax_backward_rows(y, dy, dx, 0, n)
        return
    for p in prange(count):
        lo, hi = piece(n, count, p)
        _softmax_backward_rows(y, dy, dx, lo, hi)


@njit(cache=True)
def first_bad_label(labels, classes):
    """Index of the first label outside [0, classes), or -1: the kernels that read a row
    by its label call it first (the contract checks labels' dtype and shape only)."""
    for i in range(labels.shape[0]):
        if labels[i] < 0 or labels[i] >= classes:
            return i
    return -1


@njit(cache=True)
def _sce_rows(logits, labels, probs, lo, hi):
    """Softmax of rows [lo, hi) into probs; returns the sum of their losses (float64)."""
    total = 0.0
    for i in range(lo, hi):
        m, lse = _softmax_row(logits[i], probs[i])
        total += lse - (np.float64(logits[i, labels[i]]) - m)   # logsumexp - z[label]
    return total


@njit(cache=True, parallel=True)
def softmax_cross_entropy_forward(logits, labels, probs, count):
    """probs = softmax(logits); returns mean(-log p[label]) via log-sum-exp (never overflows)."""
    n, c = logits.shape
    if count == 1:
        return _sce_rows(logits, labels, probs, 0, n) / n
    parts = np.empty(count)
    for p in prange(count):
        lo, hi = piece(n, count, p)
        parts[p] = _sce_rows(logits, labels, probs, lo, hi)
    return parts.sum() / n


@njit(cache=True)
def softmax_cross_entropy_backward(probs, labels, dlogits):
    """dlogits = (probs - onehot(labels)) / N (memory-bound; one thread is enough)."""
    n, c = probs.shape
    inv = probs.dtype.type(1.0 / n)
    for i in range(n):
        p, d = probs[i], dlogits[i]
        for j in range(c):
            d[j] = p[j] * inv
        d[labels[i]] -= inv


@njit(cache=True)
def count_correct(scores, labels):
    """Rows whose argmax sits at the label; argmax as numpy.argmax: the first NaN of the
    row, else its first maximum."""
    n, c = scores.shape
    right = 0
    for i in range(n):
        row = scores[i]
        best = 0
        for j in range(c):
            v = row[j]
            if v != v:
                best = j
                break
            if v > row[best]:
                best = j
        right += best == labels[i]
    return right


# --- column reductions: dense bias gradient, batch norm ---------------------------------------

@njit(cache=True)
def _dz_db_cols(y, dy, dz, db, act, slope, j0, j1):
    """Columns [j0, j1): dz = dy * act'(y) and db = sum over rows of dz."""
    one = dz.dtype.type(1)
    slope = dz.dtype.type(slope)
    acc = np.zeros(j1 - j0)                    # float64 column sums
    for i in range(dy.shape[0]):
        yr, dyr, dzr = y[i], dy[i], dz[i]
        if act == LINEAR:
            for j in range(j0, j1):
                dzr[j] = dyr[j]
        elif act == RELU:                      # dy * (0 or 1): a NaN dy stays NaN
            zero = one - one
            for j in range(j0, j1):
                dzr[j] = dyr[j] * (one if yr[j] > 0 else zero)
        else:
            for j in range(j0, j1):
                dzr[j] = dyr[j] * act_grad(yr[j], act, slope, one)
        for j in range(j0, j1):
            acc[j - j0] += dzr[j]
    for j in range(j0, j1):
        db[j] = acc[j - j0]


@njit(cache=True, parallel=True)
def dense_dz_db(y, dy, dz, db, act, slope, count):
    """First half of dense_backward: the activation's chain rule and the bias gradient.

    y, dy, dz (N,O) C-contiguous (dz may be dy); db (O,). Threads split the columns."""
    n, o = dy.shape
    if count == 1:
        _dz_db_cols(y, dy, dz, db, act, slope, 0, o)
        return
    for p in prange(count):
        lo, hi = piece(o, count, p)
        _dz_db_cols(y, dy, dz, db, act, slope, lo, hi)


@njit(cache=True)
def _bn_forward_cols(x, gamma, beta, out, xhat, invstd, rmean, rvar, momentum, eps, j0, j1):
    n = x.shape[0]
    mean = np.zeros(j1 - j0)                   # float64 statistics for every dtype
    var = np.zeros(j1 - j0)
    for i in range(n):
        xr = x[i]
        for j in range(j0, j1):
            mean[j - j0] += xr[j]
    mean /= n
    for i in range(n):
        xr = x[i]
        for j in range(j0, j1):
            d = xr[j] - mean[j - j0]
            var[j - j0] += d * d
    var /= n
    unbias = n / (n - 1) if n > 1 else 1.0
    for j in range(j0, j1):
        invstd[j] = 1.0 / math.sqrt(var[j - j0] + eps)
        rmean[j] = (1 - momentum) * rmean[j] + momentum * mean[j - j0]
        rvar[j] = (1 - momentum) * rvar[j] + momentum * var[j - j0] * unbias
    for i in range(n):
        xr, hr, orow = x[i], xhat[i], out[i]
        for j in range(j0, j1):
            h = (xr[j] - mean[j - j0]) * invstd[j]
            hr[j] = h
            orow[j] = gamma[j] * h + beta[j]


@njit(cache=True, parallel=True)
def batchnorm_forward(x, gamma, beta, out, xhat, invstd, rmean, rvar, momentum, eps, count):
    n, d = x.shape
    if count == 1:
        _bn_forward_cols(x, gamma, beta, out, xhat, invstd, rmean, rvar, momentum, eps, 0, d)
        return
    for p in prange(count):
        lo, hi = piece(d, count, p)
        _bn_forward_cols(x, gamma, beta, out, xhat, invstd, rmean, rvar, momentum, eps, lo, hi)


@njit(cache=True)
def _bn_inference_rows(x, beta, rmean, scale, out, lo, hi):
    for i in range(lo, hi):
        xr, orow = x[i], out[i]
        for j in range(xr.shape[0]):
            orow[j] = (xr[j] - rmean[j]) * scale[j] + beta[j]


@njit(cache=True, parallel=True)
def batchnorm_inference(x, gamma, beta, rmean, rvar, eps, out, count):
    n, d = x.shape
    scale = np.empty(d, x.dtype)
    for j in range(d):
        scale[j] = gamma[j] / math.sqrt(rvar[j] + eps)
    if count == 1:
        _bn_inference_rows(x, beta, rmean, scale, out, 0, n)
        return
    for p in prange(count):
        lo, hi = piece(n, count, p)
        _bn_inference_rows(x, beta, rmean, scale, out, lo, hi)


@njit(cache=True)
def _bn_backward_cols(xhat, gamma, invstd, dy, dx, dgamma, dbeta, j0, j1):
    n = xhat.shape[0]
    sum_dy = np.zeros(j1 - j0)                 # float64 column sums
    sum_dyh = np.zeros(j1 - j0)
    for i in range(n):
        hr, dyr = xhat[i], dy[i]
        for j in range(j0, j1):
            sum_dy[j - j0] += dyr[j]
            sum_dyh[j - j0] += dyr[j] * hr[j]
    for j in range(j0, j1):
        dbeta[j] = sum_dy[j - j0]
        dgamma[j] = sum_dyh[j - j0]
    for i in range(n):
        hr, dyr, dxr = xhat[i], dy[i], dx[i]
        for j in range(j0, j1):
            dxr[j] = gamma[j] * invstd[j] / n * (n * dyr[j] - dbeta[j] - hr[j] * dgamma[j])


@njit(cache=True, parallel=True)
def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta, count):
    n, d = xhat.shape
    if count == 1:
        _bn_backward_cols(xhat, gamma, invstd, dy, dx, dgamma, dbeta, 0, d)
        return
    for p in prange(count):
        lo, hi = piece(d, count, p)
        _bn_backward_cols(xhat, gamma, invstd, dy, dx, dgamma, dbeta, lo, hi)


# --- optimizers (in place, flattened parameters) -------------------------------------------------

@njit(cache=True, fastmath={"contract"})
def _sgd_span(p, g, v, lr, momentum, wd, nesterov, lo, hi):
    for i in range(lo, hi):
        gi = g[i] + wd * p[i] if wd != 0 else g[i]
        if momentum == 0:
            p[i] -= lr * gi
        else:
            vi = momentum * v[i] + gi
            v[i] = vi
            p[i] -= lr * (gi + momentum * vi if nesterov else vi)


@njit(cache=True, parallel=True)
def sgd_update(p, g, v, lr, momentum, wd, nesterov, count):
    """SGD with momentum / Nesterov / coupled weight decay; p, g, v 1-D; scalars in p's dtype."""
    n = p.shape[0]
    if count == 1:
        _sgd_span(p, g, v, lr, momentum, wd, nesterov, 0, n)
        return
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _sgd_span(p, g, v, lr, momentum, wd, nesterov, lo, hi)


@njit(cache=True, fastmath={"contract"})
def _adam_span(p, g, m, v, lr, b1, b2, eps, wd, c1, c2, decoupled, lo, hi):
    """c1, c2: the bias corrections 1 - beta1**step and 1 - beta2**step."""
    for i in range(lo, hi):
        if wd != 0 and decoupled:
            p[i] -= (lr * wd) * p[i]
        gi = g[i] + wd * p[i] if wd != 0 and not decoupled else g[i]
        mi = b1 * m[i] + (1 - b1) * gi
        vi = b2 * v[i] + (1 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (mi / c1) / (math.sqrt(vi / c2) + eps)


@njit(cache=True, parallel=True)
def adam_update(p, g, m, v, lr, b1, b2, eps, wd, c1, c2, decoupled, count):
    """Adam / AdamW on 1-D arrays; scalars in p's dtype (c1, c2: bias corrections)."""
    n = p.shape[0]
    if count == 1:
        _adam_span(p, g, m, v, lr, b1, b2, eps, wd, c1, c2, decoupled, 0, n)
        return
    for c in prange(count):
        lo, hi = piece(n, count, c)
        _adam_span(p, g, m, v, lr, b1, b2, eps, wd, c1, c2, decoupled, lo, hi)

