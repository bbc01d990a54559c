"""Interpreted backend: every kernel as plain Python loops over Python floats.

This is the slow end of the compiled-vs-interpreted study: each kernel copies
its inputs into nested Python lists (``tolist``), computes with ordinary ``for``
loops and ``math`` functions, and writes the result into the output array in one
assignment. No NumPy arithmetic runs inside a loop. It is correct (tested against
the NumPy reference) but only practical for small sizes: a 256x256 matrix
multiply takes seconds here and about a millisecond with BLAS.
"""

import math

import numpy as np

NAME = "python"
DESCRIPTION = "interpreted Python loops (slow; for small sizes and for reading)"


def available():
    return True, "pure Python (practical only at small sizes)"


def _rows(a, trans=False):
    """A 2-D array (or its transpose) as a list of row lists of Python floats."""
    return (a.T if trans else a).tolist()


# --- matrix multiply ------------------------------------------------------

def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    if out.size == 0:                # no rows or no columns: nothing to write
        return
    A = _rows(a, trans_a)            # (M, K)
    Bt = _rows(b, not trans_b)       # op(b) transposed: (N, K), so each column is a row
    C = out.tolist()
    for i, a_row in enumerate(A):
        c_row = C[i]
        for j, b_col in enumerate(Bt):
            s = 0.0
            for k in range(len(a_row)):
                s += a_row[k] * b_col[k]
            c_row[j] = alpha * s + (beta * c_row[j] if beta != 0.0 else 0.0)
    out[...] = C


# --- activations (element-wise over flat lists) -----------------------------

def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _sqrt(v):
    """math.sqrt, but NaN (as NumPy gives) rather than ValueError for a negative number."""
    return math.sqrt(v) if v >= 0 else math.nan


def _act(v, activation, alpha):
    if activation == "relu":
        return 0.0 if v < 0 else v          # NaN stays NaN
    if activation == "leaky_relu":
        return v if v > 0 else alpha * v
    if activation == "sigmoid":
        return _sigmoid(v)
    if activation == "tanh":
        return math.tanh(v)
    return v


def _act_grad(y, activation, alpha):
    """Derivative of the activation, written in terms of its output y."""
    if activation == "relu":
        return 1.0 if y > 0 else 0.0
    if activation == "leaky_relu":
        return 1.0 if y > 0 else alpha
    if activation == "sigmoid":
        return y * (1.0 - y)
    if activation == "tanh":
        return 1.0 - y * y
    return 1.0


def _map(x, out, fn):
    out.reshape(-1)[...] = [fn(v) for v in x.reshape(-1).tolist()]


def _backward(y, dy, dx, activation, alpha=0.0):
    ys, dys = y.reshape(-1).tolist(), dy.reshape(-1).tolist()
    dx.reshape(-1)[...] = [dys[i] * _act_grad(ys[i], activation, alpha) for i in range(len(ys))]


def relu_forward(x, out):
    _map(x, out, lambda v: _act(v, "relu", 0.0))


def relu_backward(y, dy, dx):
    _backward(y, dy, dx, "relu")


def leaky_relu_forward(x, out, alpha):
    _map(x, out, lambda v: _act(v, "leaky_relu", alpha))


def leaky_relu_backward(y, dy, dx, alpha):
    _backward(y, dy, dx, "leaky_relu", alpha)


def sigmoid_forward(x, out):
    _map(x, out, _sigmoid)


def sigmoid_backward(y, dy, dx):
    _backward(y, dy, dx, "sigmoid")


def tanh_forward(x, out):
    _map(x, out, math.tanh)


def tanh_backward(y, dy, dx):
    _backward(y, dy, dx, "tanh")


# --- dense layer ----------------------------------------------------------

def dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    X, Wt, B = _rows(x), _rows(w, True), b.tolist()
    result = []
    for x_row in X:
        row = []
        for j, w_col in enumerate(Wt):
            s = B[j]
            for k in range(len(x_row)):
                s += x_row[k] * w_col[k]
            row.append(_act(s, activation, alpha))
        result.append(row)
    out[...] = result


def dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    X, W, Y, DY = _rows(x), _rows(w), _rows(y), _rows(dy)
    n, (n_in, n_out) = len(X), w.shape
    # dz = dy * act'(y): the chain rule through the activation
    DZ = [[DY[r][j] * _act_grad(Y[r][j], activation, alpha) for j in range(n_out)] for r in range(n)]
    # dw[i][j] = sum_r x[r][i] dz[r][j];  db[j] = sum_r dz[r][j]
    DW = [[0.0] * n_out for _ in range(n_in)]
    DB = [0.0] * n_out
    for r in range(n):
        for j in range(n_out):
            DB[j] += DZ[r][j]
        for i in range(n_in):
            xi = X[r][i]
            for j in range(n_out):
                DW[i][j] += xi * DZ[r][j]
    dz[...] = DZ
    dw[...] = DW
    db[...] = DB
    if dx is not None:
        # dx[r][i] = sum_j dz[r][j] w[i][j]
        dx[...] = [[sum(DZ[r][j] * W[i][j] for j in range(n_out)) for i in range(n_in)]
                   for r in range(n)]


# --- softmax and losses ---------------------------------------------------

def _softmax_row(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e], m, s


def softmax_forward(x, out):
    out[...] = [_softmax_row(row)[0] for row in _rows(x)]


def softmax_backward(y, dy, dx):
    result = []
    for y_row, dy_row in zip(_rows(y), _rows(dy)):
        dot = sum(a * b for a, b in zip(y_row, dy_row))
        result.append([a * (b - dot) for a, b in zip(y_row, dy_row)])
    dx[...] = result


def _check_labels(kernel, labels, classes):
    for row, label in enumerate(labels.tolist()):   # list indexing would wrap a negative label
        if not 0 <= label < classes:
            raise ValueError(f"{kernel}: labels must lie in [0, {classes}), got {label} at row {row}")


def softmax_cross_entropy_forward(logits, labels, probs):
    _check_labels("softmax_cross_entropy_forward", labels, logits.shape[1])
    P, total = [], 0.0
    for row, label in zip(_rows(logits), labels.tolist()):
        p, m, s = _softmax_row(row)
        P.append(p)
        total += math.log(s) - (row[label] - m)   # -log softmax, via log-sum-exp
    probs[...] = P
    return total / len(P)


def softmax_cross_entropy_backward(probs, labels, dlogits):
    _check_labels("softmax_cross_entropy_backward", labels, probs.shape[1])
    P, n = _rows(probs), probs.shape[0]
    for row, label in zip(P, labels.tolist()):
        row[label] -= 1.0
        for j in range(len(row)):
            row[j] /= n
    dlogits[...] = P


def mse_forward(y, t):
    ys, ts = y.reshape(-1).tolist(), t.reshape(-1).tolist()
    return sum((a - b) * (a - b) for a, b in zip(ys, ts)) / len(ys)


def mse_backward(y, t, dy):
    ys, ts = y.reshape(-1).tolist(), t.reshape(-1).tolist()
    dy.reshape(-1)[...] = [2.0 * (a - b) / len(ys) for a, b in zip(ys, ts)]


def bce_with_logits_forward(z, t):
    zs, ts = z.reshape(-1).tolist(), t.reshape(-1).tolist()
    total = 0.0
    for a, b in zip(zs, ts):
        total += max(a, 0.0) - a * b + math.log1p(math.exp(-abs(a)))
    return total / len(zs)


def bce_with_logits_backward(z, t, dz):
    zs, ts = z.reshape(-1).tolist(), t.reshape(-1).tolist()
    dz.reshape(-1)[...] = [(_sigmoid(a) - b) / len(zs) for a, b in zip(zs, ts)]


def _argmax(row):
    """numpy.argmax's rule: the first NaN, else the first maximum."""
    best = 0
    for j, v in enumerate(row):
        if v != v:
            return j
        if v > row[best]:
            best = j
    return best


def count_correct(scores, labels):
    return sum(_argmax(row) == label for row, label in zip(_rows(scores), labels.tolist()))


# --- dropout, residual, batch norm ----------------------------------------

def _zip_map(a, b, out, fn):
    av, bv = a.reshape(-1).tolist(), b.reshape(-1).tolist()
    out.reshape(-1)[...] = [fn(p, q) for p, q in zip(av, bv)]


def dropout_forward(x, mask, out):
    _zip_map(x, mask, out, lambda v, m: v * m)


def dropout_backward(mask, dy, dx):
    _zip_map(dy, mask, dx, lambda v, m: v * m)


def add(a, b, out):
    _zip_map(a, b, out, lambda p, q: p + q)


def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    X, G, B = _rows(x), gamma.tolist(), beta.tolist()
    n, d = len(X), len(G)
    M = [sum(X[r][j] for r in range(n)) / n for j in range(d)]
    V = [sum((X[r][j] - M[j]) * (X[r][j] - M[j]) for r in range(n)) / n for j in range(d)]
    S = [1.0 / _sqrt(v + eps) for v in V]
    XH = [[(X[r][j] - M[j]) * S[j] for j in range(d)] for r in range(n)]
    out[...] = [[G[j] * XH[r][j] + B[j] for j in range(d)] for r in range(n)]
    xhat[...] = XH
    invstd[...] = S
    correction = n / (n - 1) if n > 1 else 1.0
    RM, RV = running_mean.tolist(), running_var.tolist()
    running_mean[...] = [(1 - momentum) * RM[j] + momentum * M[j] for j in range(d)]
    running_var[...] = [(1 - momentum) * RV[j] + momentum * V[j] * correction for j in range(d)]


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
    G, B, RM, RV = gamma.tolist(), beta.tolist(), running_mean.tolist(), running_var.tolist()
    S = [G[j] / _sqrt(RV[j] + eps) for j in range(len(G))]
    out[...] = [[(v - RM[j]) * S[j] + B[j] for j, v in enumerate(row)] for row in _rows(x)]


def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    XH, G, S, DY = _rows(xhat), gamma.tolist(), invstd.tolist(), _rows(dy)
    n, d = len(XH), len(G)
    DB = [sum(DY[r][j] for r in range(n)) for j in range(d)]
    DG = [sum(DY[r][j] * XH[r][j] for r in range(n)) for j in range(d)]
    dx[...] = [[G[j] * S[j] / n * (n * DY[r][j] - DB[j] - XH[r][j] * DG[j]) for j in range(d)]
               for r in range(n)]
    dgamma[...] = DG
    dbeta[...] = DB


# --- optimizers and parameter reductions ---------------------------------

def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
    P, G, V = p.reshape(-1).tolist(), g.reshape(-1).tolist(), v.reshape(-1).tolist()
    for i in range(len(P)):
        grad = G[i] + weight_decay * P[i] if weight_decay else G[i]
        if momentum == 0:
            P[i] -= lr * grad
            continue
        V[i] = momentum * V[i] + grad
        P[i] -= lr * (grad + momentum * V[i] if nesterov else V[i])
    p.reshape(-1)[...] = P
    if momentum != 0:
        v.reshape(-1)[...] = V


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    P, G = p.reshape(-1).tolist(), g.reshape(-1).tolist()
    M, V = m.reshape(-1).tolist(), v.reshape(-1).tolist()
    c1, c2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
    for i in range(len(P)):
        grad = G[i]
        if weight_decay and decoupled:
            P[i] -= lr * weight_decay * P[i]
        elif weight_decay:
            grad += weight_decay * P[i]
        M[i] = beta1 * M[i] + (1.0 - beta1) * grad
        V[i] = beta2 * V[i] + (1.0 - beta2) * grad * grad
        P[i] -= lr * (M[i] / c1) / (_sqrt(V[i] / c2) + eps)
    p.reshape(-1)[...] = P
    m.reshape(-1)[...] = M
    v.reshape(-1)[...] = V


def sum_squares(x):
    return sum(v * v for v in x.reshape(-1).tolist())


def abs_sum(x):
    return sum(abs(v) for v in x.reshape(-1).tolist())


def scale_(x, s):
    x.reshape(-1)[...] = [v * s for v in x.reshape(-1).tolist()]


def penalty_grad(w, g, l1, l2):
    ws, gs = w.reshape(-1).tolist(), g.reshape(-1).tolist()
    if l1:      # two steps, each skipped when its coefficient is 0, as in the reference
        gs = [gv + l1 * (wv if wv != wv else (wv > 0) - (wv < 0)) for wv, gv in zip(ws, gs)]
    if l2:
        gs = [gv + l2 * wv for wv, gv in zip(ws, gs)]
    g.reshape(-1)[...] = gs


# --- tier-1 primitives (kernels/primitives.py), with NumPy's IEEE results ----------------

def _exp(v):
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _log(v):
    return math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)


def _log1p(v):
    return math.log1p(v) if v > -1 else (-math.inf if v == -1 else math.nan)


def _reciprocal(v):
    return 1.0 / v if v != 0 else math.copysign(math.inf, v)


def _div(a, b):
    if b != 0 or a != a or b != b:
        return a / b if b != 0 else math.nan
    return math.nan if a == 0 else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _maximum(a, b):
    return math.nan if a != a or b != b else (a if a >= b else b)


def _minimum(a, b):
    return math.nan if a != a or b != b else (a if a <= b else b)


_UNARY = {"copy": lambda v: v, "exp": _exp, "log": _log, "log1p": _log1p, "sqrt": _sqrt, "abs": abs, "neg": lambda v: -v,
          "reciprocal": _reciprocal, "square": lambda v: v * v,
          "sign": lambda v: v if v != v else float((v > 0) - (v < 0))}
_BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": _div, "maximum": _maximum, "minimum": _minimum}


def unary(op, x, out):
    fn = _UNARY[op]
    values = [fn(v) for v in x.reshape(-1).tolist()]
    with np.errstate(over="ignore"):         # a float64 result beyond float32 becomes inf
        out.reshape(-1)[...] = values


def binary(op, a, b, out):
    fn = _BINARY[op]
    values = [fn(p, q) for p, q in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())]
    with np.errstate(over="ignore"):
        out.reshape(-1)[...] = values


def reduce_sum(x, axis, out):
    rows = _rows(x, trans=axis == 0)             # the lines summed, each as a list
    out[...] = [sum(line) for line in rows]          # Python floats: float64


def reduce_max(x, axis, out):
    out[...] = [math.nan if any(v != v for v in line) else max(line) for line in _rows(x, trans=axis == 0)]


def _check_indices(kernel, indices, rows):
    for i, r in enumerate(indices.tolist()):     # list indexing would wrap a negative index
        if not 0 <= r < rows:
            raise ValueError(f"{kernel}: indices must lie in [0, {rows}), got {r} at {i}")
    return indices.tolist()


def gather_rows(x, indices, out):
    rows = _rows(x)
    picked = [rows[r] for r in _check_indices("gather_rows", indices, len(rows))]
    if picked:                       # (an empty list cannot fill an out of shape (0, D))
        out[...] = picked


def scatter_add_rows(src, indices, out):
    dst = out.tolist()
    for row, r in zip(_rows(src), _check_indices("scatter_add_rows", indices, len(dst))):
        target = dst[r]
        for j, v in enumerate(row):
            target[j] += v
    out[...] = dst


def gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    for i in range(out.shape[0]):
        gemm(a[i], b[i], out[i], trans_a, trans_b, alpha, beta)
