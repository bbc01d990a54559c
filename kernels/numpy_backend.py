"""NumPy reference backend: the oracle every other backend is tested against.

Each kernel is the plainest correct vectorised NumPy for its formula in
``kernels/contract.py``. Results are written into the given outputs with
``out[...] =`` / ``np.<ufunc>(..., out=out)``; a few temporaries are allowed here
because clarity beats speed in the reference. NaN and infinities follow IEEE
arithmetic, and this module's behaviour is the contract's (``relu(nan)`` is NaN).
"""

import numpy as np

NAME = "numpy"
DESCRIPTION = "vectorised NumPy (BLAS matmul); the reference and speed baseline"


def available():
    """(True, reason) — NumPy is always there."""
    return True, f"numpy {np.__version__}"


def _op(a, trans):
    return a.T if trans else a


# --- matrix multiply ------------------------------------------------------

def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    prod = _op(a, trans_a) @ _op(b, trans_b)
    if beta == 0.0:
        np.multiply(prod, alpha, out=out, casting="unsafe")
    else:
        out *= beta
        out += alpha * prod


# --- activations ----------------------------------------------------------

def relu_forward(x, out):
    np.maximum(x, 0, out=out)


def relu_backward(y, dy, dx):
    np.multiply(dy, y > 0, out=dx)


def leaky_relu_forward(x, out, alpha):
    out[...] = np.where(x > 0, x, x * x.dtype.type(alpha))


def leaky_relu_backward(y, dy, dx, alpha):
    np.multiply(dy, np.where(y > 0, 1, alpha).astype(dy.dtype), out=dx)


def sigmoid_forward(x, out):
    # exp of a non-positive number only, so no overflow for large |x|
    e = np.exp(-np.abs(x))
    np.divide(np.where(x >= 0, 1, e), 1 + e, out=out)


def sigmoid_backward(y, dy, dx):
    np.multiply(dy, y * (1 - y), out=dx)


def tanh_forward(x, out):
    np.tanh(x, out=out)


def tanh_backward(y, dy, dx):
    np.multiply(dy, 1 - y * y, out=dx)


_FORWARD = {"relu": relu_forward, "sigmoid": sigmoid_forward, "tanh": tanh_forward}
_BACKWARD = {"relu": relu_backward, "sigmoid": sigmoid_backward, "tanh": tanh_backward}


def _activate(z, activation, alpha):
    if activation == "leaky_relu":
        leaky_relu_forward(z, z, alpha)
    elif activation != "linear":
        _FORWARD[activation](z, z)


# --- dense layer ----------------------------------------------------------

def dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    np.matmul(x, w, out=out)
    out += b
    _activate(out, activation, alpha)


def dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    if activation == "linear":
        dz[...] = dy
    elif activation == "leaky_relu":
        leaky_relu_backward(y, dy, dz, alpha)
    else:
        _BACKWARD[activation](y, dy, dz)
    np.matmul(x.T, dz, out=dw)
    np.sum(dz, axis=0, out=db)
    if dx is not None:
        np.matmul(dz, w.T, out=dx)


# --- softmax and losses ---------------------------------------------------

def softmax_forward(x, out):
    z = x - x.max(axis=1, keepdims=True)
    np.exp(z, out=out)
    out /= out.sum(axis=1, keepdims=True)


def softmax_backward(y, dy, dx):
    np.multiply(y, dy - (dy * y).sum(axis=1, keepdims=True), out=dx)


def _check_labels(kernel, labels, classes):
    # fancy indexing would wrap a negative label round to the last class
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= classes))[0])
        raise ValueError(f"{kernel}: labels must lie in [0, {classes}), got {labels[bad]} at row {bad}")


def softmax_cross_entropy_forward(logits, labels, probs):
    _check_labels("softmax_cross_entropy_forward", labels, logits.shape[1])
    # max, z and the probabilities in the logits' dtype; row sums, their log and each
    # row's loss in float64 (the contract's rule for reductions)
    top = logits.max(axis=1, keepdims=True)
    z = logits - top
    logsumexp = np.log(np.exp(z).sum(axis=1, dtype=np.float64))
    np.exp(z - logsumexp[:, None].astype(logits.dtype), out=probs)
    rows = np.arange(logits.shape[0])
    picked = logits[rows, labels].astype(np.float64) - top[:, 0].astype(np.float64)
    return float(np.mean(logsumexp - picked))


def softmax_cross_entropy_backward(probs, labels, dlogits):
    _check_labels("softmax_cross_entropy_backward", labels, probs.shape[1])
    n = probs.shape[0]
    dlogits[...] = probs
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n


def mse_forward(y, t):
    d = y.astype(np.float64) - t.astype(np.float64)     # float64 before any arithmetic
    return float(np.mean(d * d))


def mse_backward(y, t, dy):
    np.multiply(y - t, 2.0 / y.size, out=dy, casting="unsafe")


def bce_with_logits_forward(z, t):
    z, t = z.astype(np.float64), t.astype(np.float64)
    loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(loss))


def bce_with_logits_backward(z, t, dz):
    sigmoid_forward(z, dz)
    dz -= t
    dz /= z.size


def count_correct(scores, labels):
    # numpy.argmax: the first maximum of a row, or its first NaN
    return int(np.count_nonzero(np.argmax(scores, axis=1) == labels))


# --- dropout, residual, batch norm ----------------------------------------

def dropout_forward(x, mask, out):
    np.multiply(x, mask, out=out)


def dropout_backward(mask, dy, dx):
    np.multiply(dy, mask, out=dx)


def add(a, b, out):
    np.add(a, b, out=out)


def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    np.divide(1.0, np.sqrt(var + eps), out=invstd, casting="unsafe")
    np.multiply(x - mean, invstd, out=xhat)
    np.multiply(xhat, gamma, out=out)
    out += beta
    unbiased = var * (n / (n - 1)) if n > 1 else var
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * unbiased


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
    np.multiply(x - running_mean, gamma / np.sqrt(running_var + eps), out=out)
    out += beta


def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    n = xhat.shape[0]
    np.sum(dy, axis=0, out=dbeta)
    np.sum(dy * xhat, axis=0, out=dgamma)
    np.multiply(gamma * invstd / n, n * dy - dbeta - xhat * dgamma, out=dx)


# --- optimizers and parameter reductions ---------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    g = g + weight_decay * p if weight_decay else g
    if momentum == 0:
        p -= lr * g
        return
    v *= momentum
    v += g
    p -= lr * (g + momentum * v if nesterov else v)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    if weight_decay and decoupled:
        p -= (lr * weight_decay) * p
    elif weight_decay:
        g = g + weight_decay * p
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


def sum_squares(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(np.dot(x, x))


def abs_sum(x):
    return float(np.abs(x).sum(dtype=np.float64))


def scale_(x, s):
    x *= s


def penalty_grad(w, g, l1, l2):
    if l1:
        g += l1 * np.sign(w)
    if l2:
        g += l2 * w


# --- tier-1 primitives (kernels/primitives.py) ----------------------------------------------

_UNARY = {"copy": np.copyto, "exp": np.exp, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "abs": np.abs,
          "neg": np.negative, "reciprocal": np.reciprocal, "square": np.square, "sign": np.sign}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "maximum": np.maximum, "minimum": np.minimum}


def unary(op, x, out):
    if op == "copy":
        np.copyto(out, x)
        return
    with np.errstate(all="ignore"):          # IEEE results (log(0) = -inf), no warnings
        _UNARY[op](x, out=out)


def binary(op, a, b, out):
    with np.errstate(all="ignore"):
        _BINARY[op](a, b, out=out)


def reduce_sum(x, axis, out):
    with np.errstate(all="ignore"):          # inf + -inf is NaN, without a warning
        out[...] = x.sum(axis=axis, dtype=np.float64)


def reduce_max(x, axis, out):
    out[...] = x.max(axis=axis)


def _check_indices(kernel, indices, rows):
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        bad = int(np.flatnonzero((indices < 0) | (indices >= rows))[0])
        raise ValueError(f"{kernel}: indices must lie in [0, {rows}), got {indices[bad]} at {bad}")


def gather_rows(x, indices, out):
    _check_indices("gather_rows", indices, x.shape[0])
    out[...] = x[indices]


def scatter_add_rows(src, indices, out):
    _check_indices("scatter_add_rows", indices, out.shape[0])
    np.add.at(out, indices, src)


def gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    for i in range(out.shape[0]):
        gemm(a[i], b[i], out[i], trans_a, trans_b, alpha, beta)


# --- convolution and pooling (kernels/conv_contract.py), in their own module -----------------

from .numpy_conv import (avgpool2d_backward, avgpool2d_forward, conv2d_backward,  # noqa: E402,F401
                         conv2d_forward, maxpool2d_backward, maxpool2d_forward)
