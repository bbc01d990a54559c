"""Tier-2 kernels composed of tier-1 primitives, run on any backend that lacks them.

Each function takes the backend (a ``fastnn.kernels.Backend``) first and then the
kernel's own arguments (``contract.KERNELS``); it calls only tier-1 kernels of that
backend (``gemm``, ``unary``, ``binary``, ``reduce_sum``/``reduce_max``,
``gather_rows``, the activation maps, ``softmax_forward``), so a compiled backend
without, say, a fused batch-norm kernel still runs compiled code for it. The formulas
are the contract's; the results equal the fused kernels' to rounding (a fused kernel
keeps its sums and some differences in float64, so in float32 a value that overflows
float32 in between, such as mse_forward(3e38, -3e38), overflows here). Broadcasting a row or column vector over a
matrix is a GEMM with a vector of ones, the one broadcast the primitives need.
"""

import numpy as np

from .contract import ACTIVATIONS
from .reference_conv import CONV_REFERENCES

__all__ = ["REFERENCES", "TIER2"]

_ACT = {"relu": "relu", "leaky_relu": "leaky_relu", "sigmoid": "sigmoid", "tanh": "tanh"}


def _like(bk, a, shape=None):
    return bk.empty(tuple(a.shape) if shape is None else shape, a.dtype)


def _ones(bk, shape, dtype):
    return bk.asarray(np.ones(shape, dtype))


def _full(bk, like, value):
    return bk.asarray(np.full(tuple(like.shape), value, like.dtype))


def _rows_of(bk, v, n):
    """(n, D): the vector v (D,) on every row (ones (n, 1) @ v (1, D))."""
    out = bk.empty((n, v.shape[0]), v.dtype)
    bk.gemm(_ones(bk, (n, 1), v.dtype), v.reshape(1, -1), out)
    return out


def _cols_of(bk, v, d):
    """(N, d): the vector v (N,) in every column."""
    out = bk.empty((v.shape[0], d), v.dtype)
    bk.gemm(v.reshape(-1, 1), _ones(bk, (1, d), v.dtype), out)
    return out


def _scalar(bk, x):
    """The float64 sum of every element of x (reduce_sum over a (1, size) view)."""
    out = bk.empty((1,), x.dtype)
    bk.reduce_sum(x.reshape(1, -1), 1, out)
    return float(bk.to_host(out)[0])


def _activate(bk, activation, x, out, alpha):
    if activation == "linear":
        bk.unary("copy", x, out)
    elif activation == "leaky_relu":
        bk.leaky_relu_forward(x, out, alpha)
    else:
        getattr(bk, f"{_ACT[activation]}_forward")(x, out)


def dense_forward(bk, x, w, b, out, activation="linear", alpha=0.01):
    z = _like(bk, out)
    bk.gemm(x, w, z)
    bk.gemm(_ones(bk, (x.shape[0], 1), x.dtype), b.reshape(1, -1), z, beta=1.0)   # + b per row
    _activate(bk, activation, z, out, alpha)


def dense_backward(bk, x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    grad = _like(bk, dz)
    if activation == "linear":
        bk.unary("copy", dy, grad)
    elif activation == "leaky_relu":
        bk.leaky_relu_backward(y, dy, grad, alpha)
    else:
        getattr(bk, f"{_ACT[activation]}_backward")(y, dy, grad)
    bk.unary("copy", grad, dz)                      # dz may be dy itself
    bk.gemm(x, dz, dw, trans_a=True)
    bk.reduce_sum(dz, 0, db)
    if dx is not None:
        bk.gemm(dz, w, dx, trans_b=True)


def _label_index(bk, kernel, labels, n, c):
    """Flat indices i * c + labels[i] into an (n * c, 1) view (labels checked on the host,
    a ValueError naming ``kernel`` for one outside [0, c))."""
    host = np.asarray(bk.to_host(labels), np.int64)
    if n and (host.min() < 0 or host.max() >= c):
        bad = int(np.flatnonzero((host < 0) | (host >= c))[0])
        raise ValueError(f"{kernel}: labels must lie in [0, {c}), got {host[bad]} at row {bad}")
    return bk.asarray(np.arange(n, dtype=np.int64) * c + host)


def softmax_cross_entropy_forward(bk, logits, labels, probs):
    n, c = logits.shape
    index = _label_index(bk, "softmax_cross_entropy_forward", labels, n, c)
    top = bk.empty((n,), logits.dtype)
    bk.reduce_max(logits, 1, top)
    shifted = _like(bk, logits)
    bk.binary("sub", logits, _cols_of(bk, top, c), shifted)            # z - max
    e = _like(bk, logits)
    bk.unary("exp", shifted, e)
    sums = bk.empty((n,), logits.dtype)
    bk.reduce_sum(e, 1, sums)
    lse = bk.empty((n,), logits.dtype)
    bk.unary("log", sums, lse)
    bk.binary("sub", shifted, _cols_of(bk, lse, c), e)
    bk.unary("exp", e, probs)                                          # exp(z - max - lse)
    picked = bk.empty((n, 1), logits.dtype)
    bk.gather_rows(shifted.reshape(n * c, 1), index, picked)           # z[label] - max
    losses = bk.empty((n,), logits.dtype)
    bk.binary("sub", lse, picked.reshape(n), losses)
    return _scalar(bk, losses) / n


def softmax_cross_entropy_backward(bk, probs, labels, dlogits):
    n, c = probs.shape
    index = _label_index(bk, "softmax_cross_entropy_backward", labels, n, c)
    onehot = bk.zeros((n * c, 1), probs.dtype)
    bk.scatter_add_rows(_ones(bk, (n, 1), probs.dtype), index, onehot)
    bk.binary("sub", probs, onehot.reshape(n, c), dlogits)
    bk.scale_(dlogits, 1.0 / n)


def mse_forward(bk, y, t):
    d = _like(bk, y)
    bk.binary("sub", y, t, d)
    return bk.sum_squares(d) / d.size


def mse_backward(bk, y, t, dy):
    bk.binary("sub", y, t, dy)
    bk.scale_(dy, 2.0 / dy.size)


def bce_with_logits_forward(bk, z, t):
    # max(z, 0) - z t + log1p(exp(-|z|))
    a, b = _like(bk, z), _like(bk, z)
    bk.binary("maximum", z, bk.zeros(tuple(z.shape), z.dtype), a)
    bk.binary("mul", z, t, b)
    bk.binary("sub", a, b, a)
    bk.unary("abs", z, b)
    bk.unary("neg", b, b)
    bk.unary("exp", b, b)
    bk.unary("log1p", b, b)
    bk.binary("add", a, b, a)
    return _scalar(bk, a) / a.size


def bce_with_logits_backward(bk, z, t, dz):
    bk.sigmoid_forward(z, dz)
    bk.binary("sub", dz, t, dz)
    bk.scale_(dz, 1.0 / dz.size)


def dropout_forward(bk, x, mask, out):
    bk.binary("mul", x, mask, out)


def dropout_backward(bk, mask, dy, dx):
    bk.binary("mul", dy, mask, dx)


def _mean_var(bk, x):
    n, d = x.shape
    mean, var = bk.empty((d,), x.dtype), bk.empty((d,), x.dtype)
    bk.reduce_sum(x, 0, mean)
    bk.scale_(mean, 1.0 / n)
    centred = _like(bk, x)
    bk.binary("sub", x, _rows_of(bk, mean, n), centred)
    bk.unary("square", centred, centred)
    bk.reduce_sum(centred, 0, var)
    bk.scale_(var, 1.0 / n)
    return mean, var


def _invstd(bk, var, eps, out):
    bk.binary("add", var, _full(bk, var, eps), out)
    bk.unary("sqrt", out, out)
    bk.unary("reciprocal", out, out)


def _affine(bk, xhat, gamma, beta, out):
    n = xhat.shape[0]
    bk.binary("mul", xhat, _rows_of(bk, gamma, n), out)
    bk.binary("add", out, _rows_of(bk, beta, n), out)


def _blend(bk, running, value, momentum):
    """running = (1 - momentum) running + momentum value, in place."""
    part = _like(bk, value)
    bk.unary("copy", value, part)
    bk.scale_(part, momentum)
    bk.scale_(running, 1.0 - momentum)
    bk.binary("add", running, part, running)


def batchnorm_forward(bk, x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    n = x.shape[0]
    mean, var = _mean_var(bk, x)
    _invstd(bk, var, eps, invstd)
    bk.binary("sub", x, _rows_of(bk, mean, n), xhat)
    bk.binary("mul", xhat, _rows_of(bk, invstd, n), xhat)
    _affine(bk, xhat, gamma, beta, out)
    _blend(bk, running_mean, mean, momentum)
    if n > 1:
        bk.scale_(var, n / (n - 1))                 # the unbiased variance for the running one
    _blend(bk, running_var, var, momentum)


def batchnorm_inference(bk, x, gamma, beta, running_mean, running_var, eps, out):
    n = x.shape[0]
    inv = _like(bk, running_var)
    _invstd(bk, running_var, eps, inv)
    xhat = _like(bk, x)
    bk.binary("sub", x, _rows_of(bk, running_mean, n), xhat)
    bk.binary("mul", xhat, _rows_of(bk, inv, n), xhat)
    _affine(bk, xhat, gamma, beta, out)


def batchnorm_backward(bk, xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    n = xhat.shape[0]
    bk.reduce_sum(dy, 0, dbeta)
    prod = _like(bk, dy)
    bk.binary("mul", dy, xhat, prod)
    bk.reduce_sum(prod, 0, dgamma)
    # dx = gamma invstd / N (N dy - dbeta - xhat dgamma)
    bk.unary("copy", dy, dx)
    bk.scale_(dx, float(n))
    bk.binary("sub", dx, _rows_of(bk, dbeta, n), dx)
    bk.binary("mul", xhat, _rows_of(bk, dgamma, n), prod)
    bk.binary("sub", dx, prod, dx)
    scale = _like(bk, gamma)
    bk.binary("mul", gamma, invstd, scale)
    bk.scale_(scale, 1.0 / n)
    bk.binary("mul", dx, _rows_of(bk, scale, n), dx)


def _axpy(bk, a, x, y):
    """y += a x (element-wise, any shape), in place."""
    part = _like(bk, x)
    bk.unary("copy", x, part)
    bk.scale_(part, a)
    bk.binary("add", y, part, y)


def sgd_update(bk, p, g, v, lr, momentum, weight_decay, nesterov):
    grad = _like(bk, g)
    bk.unary("copy", g, grad)
    if weight_decay:
        _axpy(bk, weight_decay, p, grad)
    if momentum:
        bk.scale_(v, momentum)
        bk.binary("add", v, grad, v)
        if nesterov:
            _axpy(bk, momentum, v, grad)
            _axpy(bk, -lr, grad, p)
        else:
            _axpy(bk, -lr, v, p)
    else:
        _axpy(bk, -lr, grad, p)


def adam_update(bk, p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    grad = _like(bk, g)
    bk.unary("copy", g, grad)
    if decoupled and weight_decay:
        bk.scale_(p, 1.0 - lr * weight_decay)
    elif weight_decay:
        _axpy(bk, weight_decay, p, grad)
    bk.scale_(m, beta1)
    _axpy(bk, 1.0 - beta1, grad, m)
    bk.unary("square", grad, grad)
    bk.scale_(v, beta2)
    _axpy(bk, 1.0 - beta2, grad, v)
    m_hat, v_hat = _like(bk, m), _like(bk, v)
    bk.unary("copy", m, m_hat)
    bk.scale_(m_hat, 1.0 / (1.0 - beta1 ** step))
    bk.unary("copy", v, v_hat)
    bk.scale_(v_hat, 1.0 / (1.0 - beta2 ** step))
    bk.unary("sqrt", v_hat, v_hat)
    bk.binary("add", v_hat, _full(bk, v_hat, eps), v_hat)
    bk.binary("div", m_hat, v_hat, m_hat)
    _axpy(bk, -lr, m_hat, p)


def penalty_grad(bk, w, g, l1, l2):
    if l1:
        sign = _like(bk, w)
        bk.unary("sign", w, sign)
        _axpy(bk, l1, sign, g)
    if l2:
        _axpy(bk, l2, w, g)


REFERENCES = {name: fn for name, fn in globals().items()
              if name in ("dense_forward", "dense_backward", "softmax_cross_entropy_forward",
                          "softmax_cross_entropy_backward", "mse_forward", "mse_backward",
                          "bce_with_logits_forward", "bce_with_logits_backward", "dropout_forward",
                          "dropout_backward", "batchnorm_forward", "batchnorm_inference",
                          "batchnorm_backward", "sgd_update", "adam_update", "penalty_grad")}
REFERENCES.update(CONV_REFERENCES)     # convolution and pooling: kernels/reference_conv.py
TIER2 = tuple(REFERENCES)
assert all(a in ("linear",) + tuple(_ACT) for a in ACTIVATIONS)
