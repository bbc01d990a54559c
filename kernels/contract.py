"""The kernel contract: the one list of functions every backend implements.

Every backend module (``numpy_backend``, ``python_backend``, ``numba_backend``, ...)
defines each function below with exactly this signature. The rules:

* Kernels **write into the output arrays they are given** (``out``, ``dx``, ``dw``,
  ...) and allocate nothing the caller can see; functions that produce a scalar
  return a Python ``float`` / ``int``.
* All floating arrays of one call share one dtype: ``float32`` or ``float64``.
  Integer class labels are ``int64`` arrays.
* **Inputs** may have any strides (non-contiguous views, Fortran order).
  **Outputs** are C-contiguous arrays owned by the caller. In-place updates
  (``sgd_update``, ``adam_update``, ``scale_``) modify their first arrays.
* Shapes below use ``N`` = batch size, ``I`` = input features, ``O`` = output
  features, ``C`` = classes, ``D`` = features of an element-wise op
  (any shape for element-wise kernels, ``out.shape == x.shape``).
* Element-wise activation *backward* kernels receive the forward **output**
  ``y`` (ReLU: ``y > 0`` iff ``x > 0``; sigmoid: ``y(1-y)``; tanh: ``1-y**2``),
  so a layer only keeps one array.

Backends never validate: :func:`check` below does it once, in Python, before a
kernel runs (see ``kernels/__init__.py``), so compiled code is never handed a
shape that would make it read or write out of bounds.

Activation names understood by the fused dense kernels: ``"linear"``, ``"relu"``,
``"leaky_relu"`` (slope ``alpha``), ``"sigmoid"``, ``"tanh"``.
"""

import numpy as np

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# name -> one-line signature with shapes. The order is the order of the docs.
KERNELS = {
    # --- matrix multiply -------------------------------------------------
    "gemm": "gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0): "
            "out = alpha * op(a) @ op(b) + beta * out; op(a) (M,K), op(b) (K,N), out (M,N)",
    # --- dense layer, activation fused ---------------------------------
    "dense_forward": "dense_forward(x, w, b, out, activation='linear', alpha=0.01): "
                     "out = act(x @ w + b); x (N,I), w (I,O), b (O,), out (N,O)",
    "dense_backward": "dense_backward(x, w, y, dy, dz, dx, dw, db, activation='linear', alpha=0.01): "
                      "dz = dy * act'(y); dw = x^T dz; db = sum(dz, 0); dx = dz w^T (skipped if dx is None); "
                      "x (N,I), w (I,O), y, dy, dz (N,O) (dz may be dy itself), dx (N,I), dw (I,O), db (O,)",
    # --- element-wise activations (any shape) --------------------------
    "relu_forward": "relu_forward(x, out)",
    "relu_backward": "relu_backward(y, dy, dx): dx = dy * (y > 0)",
    "leaky_relu_forward": "leaky_relu_forward(x, out, alpha): out = x if x > 0 else alpha * x",
    "leaky_relu_backward": "leaky_relu_backward(y, dy, dx, alpha): dx = dy * (1 if y > 0 else alpha)",
    "sigmoid_forward": "sigmoid_forward(x, out): out = 1 / (1 + exp(-x)), overflow-safe",
    "sigmoid_backward": "sigmoid_backward(y, dy, dx): dx = dy * y * (1 - y)",
    "tanh_forward": "tanh_forward(x, out)",
    "tanh_backward": "tanh_backward(y, dy, dx): dx = dy * (1 - y**2)",
    # --- row-wise softmax and losses ------------------------------------
    "softmax_forward": "softmax_forward(x, out): row-wise, max-subtracted; x, out (N,C)",
    "softmax_backward": "softmax_backward(y, dy, dx): dx = y * (dy - sum(dy * y, 1)); (N,C)",
    "softmax_cross_entropy_forward": "softmax_cross_entropy_forward(logits, labels, probs) -> float: "
                                     "probs = softmax(logits); returns mean(-log p[label]) computed "
                                     "with log-sum-exp; logits, probs (N,C), labels (N,) int64 in [0, C)",
    "softmax_cross_entropy_backward": "softmax_cross_entropy_backward(probs, labels, dlogits): "
                                      "dlogits = (probs - onehot(labels)) / N",
    "mse_forward": "mse_forward(y, t) -> float: mean((y - t)**2) over all elements; y, t (N,D)",
    "mse_backward": "mse_backward(y, t, dy): dy = 2 (y - t) / y.size",
    "bce_with_logits_forward": "bce_with_logits_forward(z, t) -> float: mean over all elements of "
                               "max(z,0) - z t + log(1 + exp(-|z|)); z, t (N,D)",
    "bce_with_logits_backward": "bce_with_logits_backward(z, t, dz): dz = (sigmoid(z) - t) / z.size",
    "count_correct": "count_correct(scores, labels) -> int: number of rows whose argmax (first on ties) "
                     "equals the label; scores (N,C), labels (N,) int64",
    # --- dropout, residual, batch norm -----------------------------------
    "dropout_forward": "dropout_forward(x, mask, out): out = x * mask (mask already holds 0 or 1/(1-p))",
    "dropout_backward": "dropout_backward(mask, dy, dx): dx = dy * mask",
    "add": "add(a, b, out): out = a + b (same shapes)",
    "batchnorm_forward": "batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, "
                         "momentum, eps): training mode; mean, var over the batch (biased var); "
                         "invstd = 1/sqrt(var + eps); xhat = (x - mean) * invstd; out = gamma * xhat + beta; "
                         "running_mean = (1-momentum) running_mean + momentum mean; running_var likewise "
                         "with the unbiased var (N/(N-1) var; var when N == 1); x, out, xhat (N,D); "
                         "gamma, beta, invstd, running_* (D,)",
    "batchnorm_inference": "batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out): "
                           "out = gamma (x - running_mean) / sqrt(running_var + eps) + beta",
    "batchnorm_backward": "batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta): "
                          "dbeta = sum(dy, 0); dgamma = sum(dy * xhat, 0); "
                          "dx = gamma * invstd / N * (N dy - dbeta - xhat * dgamma)",
    # --- optimizers and parameter reductions (in place) --------------------
    "sgd_update": "sgd_update(p, g, v, lr, momentum, weight_decay, nesterov): "
                  "g' = g + wd p; v = mu v + g'; p -= lr * (g' + mu v if nesterov else v); "
                  "p, g, v same shape (v untouched when momentum == 0)",
    "adam_update": "adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled): "
                   "Adam (weight decay added to g) or AdamW (decoupled: p -= lr wd p); step >= 1 "
                   "for bias correction; p, g, m, v same shape",
    "sum_squares": "sum_squares(x) -> float: sum(x**2) accumulated in float64",
    "abs_sum": "abs_sum(x) -> float: sum(|x|) accumulated in float64",
    "scale_": "scale_(x, s): x *= s in place",
    "penalty_grad": "penalty_grad(w, g, l1, l2): g += l1 * sign(w) + l2 * w (in place on g)",
}


class ContractError(ValueError):
    """Arguments that break the kernel contract (shape, dtype or layout)."""


def _fail(kernel, what):
    raise ContractError(f"{kernel}: {what}")


def _is_array(a):
    # host numpy arrays, or device arrays that describe themselves the same way
    return isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")


def _c_contiguous(a):
    if isinstance(a, np.ndarray):
        return a.flags.c_contiguous and a.flags.writeable
    return a.is_c_contiguous()


def _float(kernel, name, a, dtype=None):
    if not _is_array(a):
        raise TypeError(f"{kernel}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} must be float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected {dtype} like the other arrays")
    return a


def _out(kernel, name, a, shape, dtype):
    _float(kernel, name, a, dtype)
    if a.shape != tuple(shape):
        _fail(kernel, f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if not _c_contiguous(a):
        _fail(kernel, f"{name} must be a writeable C-contiguous array")
    return a


def _shape(kernel, name, a, shape, dtype):
    _float(kernel, name, a, dtype)
    if a.shape != tuple(shape):
        _fail(kernel, f"{name} has shape {a.shape}, expected {tuple(shape)}")


def _ndim(kernel, name, a, ndim):
    if a.ndim != ndim:
        _fail(kernel, f"{name} must be {ndim}-D, got shape {a.shape}")


def _labels(kernel, labels, n, classes):
    if not _is_array(labels) or labels.dtype != np.int64:
        raise TypeError(f"{kernel}: labels must be an int64 numpy array, got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != (n,):
        _fail(kernel, f"labels has shape {labels.shape}, expected ({n},)")
    # device labels are range-checked once, on the host, when they are uploaded
    if n and isinstance(labels, np.ndarray) and (labels.min() < 0 or labels.max() >= classes):
        _fail(kernel, f"labels must lie in [0, {classes}), got range "
                      f"[{labels.min()}, {labels.max()}]")


def _activation(kernel, activation):
    if activation not in ACTIVATIONS:
        _fail(kernel, f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def _same_out(kernel, x, out, name="out"):
    _float(kernel, "x", x)
    _out(kernel, name, out, x.shape, x.dtype)


def _check_gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    k = "gemm"
    _float(k, "a", a)
    _float(k, "b", b, a.dtype)
    _ndim(k, "a", a, 2)
    _ndim(k, "b", b, 2)
    m, ka = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if ka != kb:
        _fail(k, f"inner dimensions differ: op(a) is {(m, ka)}, op(b) is {(kb, n)}")
    _out(k, "out", out, (m, n), a.dtype)


def _check_dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    k = "dense_forward"
    _float(k, "x", x)
    _ndim(k, "x", x, 2)
    _float(k, "w", w, x.dtype)
    _ndim(k, "w", w, 2)
    if w.shape[0] != x.shape[1]:
        _fail(k, f"x has {x.shape[1]} features but w expects {w.shape[0]} (w shape {w.shape})")
    _shape(k, "b", b, (w.shape[1],), x.dtype)
    _out(k, "out", out, (x.shape[0], w.shape[1]), x.dtype)
    _activation(k, activation)


def _check_dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    k = "dense_backward"
    _float(k, "x", x)
    _ndim(k, "x", x, 2)
    _float(k, "w", w, x.dtype)
    _ndim(k, "w", w, 2)
    n, i = x.shape
    if w.shape[0] != i:
        _fail(k, f"x has {i} features but w expects {w.shape[0]} (w shape {w.shape})")
    o = w.shape[1]
    _shape(k, "y", y, (n, o), x.dtype)
    _shape(k, "dy", dy, (n, o), x.dtype)
    _out(k, "dz", dz, (n, o), x.dtype)
    if dx is not None:
        _out(k, "dx", dx, (n, i), x.dtype)
    _out(k, "dw", dw, (i, o), x.dtype)
    _out(k, "db", db, (o,), x.dtype)
    _activation(k, activation)


def _check_unary(kernel):
    def check(x, out, *args):
        _same_out(kernel, x, out)
    return check


def _check_backward(kernel):
    def check(y, dy, dx, *args):
        _float(kernel, "y", y)
        _shape(kernel, "dy", dy, y.shape, y.dtype)
        _out(kernel, "dx", dx, y.shape, y.dtype)
    return check


def _check_rowwise(kernel):
    def check(x, out):
        _float(kernel, "x", x)
        _ndim(kernel, "x", x, 2)
        _out(kernel, "out", out, x.shape, x.dtype)
    return check


def _check_softmax_backward(y, dy, dx):
    _ndim("softmax_backward", "y", y, 2)
    _check_backward("softmax_backward")(y, dy, dx)


def _check_sce_forward(logits, labels, probs):
    k = "softmax_cross_entropy_forward"
    _float(k, "logits", logits)
    _ndim(k, "logits", logits, 2)
    _labels(k, labels, logits.shape[0], logits.shape[1])
    _out(k, "probs", probs, logits.shape, logits.dtype)


def _check_sce_backward(probs, labels, dlogits):
    k = "softmax_cross_entropy_backward"
    _float(k, "probs", probs)
    _ndim(k, "probs", probs, 2)
    _labels(k, labels, probs.shape[0], probs.shape[1])
    _out(k, "dlogits", dlogits, probs.shape, probs.dtype)


def _check_pair(kernel):
    def check(y, t, *out):
        _float(kernel, "y", y)
        _shape(kernel, "t", t, y.shape, y.dtype)
        if y.size == 0:
            _fail(kernel, "empty input")
        for o in out:
            _out(kernel, "out", o, y.shape, y.dtype)
    return check


def _check_count_correct(scores, labels):
    k = "count_correct"
    _float(k, "scores", scores)
    _ndim(k, "scores", scores, 2)
    _labels(k, labels, scores.shape[0], scores.shape[1])


def _check_dropout_forward(x, mask, out):
    k = "dropout_forward"
    _float(k, "x", x)
    _shape(k, "mask", mask, x.shape, x.dtype)
    _out(k, "out", out, x.shape, x.dtype)


def _check_dropout_backward(mask, dy, dx):
    _check_backward("dropout_backward")(mask, dy, dx)


def _check_add(a, b, out):
    k = "add"
    _float(k, "a", a)
    _shape(k, "b", b, a.shape, a.dtype)
    _out(k, "out", out, a.shape, a.dtype)


def _check_bn_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    k = "batchnorm_forward"
    _float(k, "x", x)
    _ndim(k, "x", x, 2)
    if x.shape[0] < 1:
        _fail(k, "needs at least one row")
    d = x.shape[1]
    _shape(k, "gamma", gamma, (d,), x.dtype)
    _shape(k, "beta", beta, (d,), x.dtype)
    _out(k, "out", out, x.shape, x.dtype)
    _out(k, "xhat", xhat, x.shape, x.dtype)
    _out(k, "invstd", invstd, (d,), x.dtype)
    _out(k, "running_mean", running_mean, (d,), x.dtype)
    _out(k, "running_var", running_var, (d,), x.dtype)


def _check_bn_inference(x, gamma, beta, running_mean, running_var, eps, out):
    k = "batchnorm_inference"
    _float(k, "x", x)
    _ndim(k, "x", x, 2)
    d = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _shape(k, name, a, (d,), x.dtype)
    _out(k, "out", out, x.shape, x.dtype)


def _check_bn_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    k = "batchnorm_backward"
    _float(k, "xhat", xhat)
    _ndim(k, "xhat", xhat, 2)
    d = xhat.shape[1]
    _shape(k, "gamma", gamma, (d,), xhat.dtype)
    _shape(k, "invstd", invstd, (d,), xhat.dtype)
    _shape(k, "dy", dy, xhat.shape, xhat.dtype)
    _out(k, "dx", dx, xhat.shape, xhat.dtype)
    _out(k, "dgamma", dgamma, (d,), xhat.dtype)
    _out(k, "dbeta", dbeta, (d,), xhat.dtype)


def _check_param_state(kernel, p, g, *state):
    _out(kernel, "p", p, p.shape, p.dtype)
    _shape(kernel, "g", g, p.shape, p.dtype)
    for s in state:
        _out(kernel, "state", s, p.shape, p.dtype)


def _check_sgd(p, g, v, lr, momentum, weight_decay, nesterov):
    _check_param_state("sgd_update", p, g, v)


def _check_adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    _check_param_state("adam_update", p, g, m, v)
    if int(step) < 1:
        _fail("adam_update", f"step must be >= 1, got {step}")


def _check_reduce(kernel):
    def check(x):
        _float(kernel, "x", x)
    return check


def _check_scale(x, s):
    _float("scale_", "x", x)
    _out("scale_", "x", x, x.shape, x.dtype)


def _check_penalty(w, g, l1, l2):
    _float("penalty_grad", "w", w)
    _out("penalty_grad", "g", g, w.shape, w.dtype)


CHECKS = {
    "gemm": _check_gemm,
    "dense_forward": _check_dense_forward,
    "dense_backward": _check_dense_backward,
    "relu_forward": _check_unary("relu_forward"),
    "relu_backward": _check_backward("relu_backward"),
    "leaky_relu_forward": _check_unary("leaky_relu_forward"),
    "leaky_relu_backward": _check_backward("leaky_relu_backward"),
    "sigmoid_forward": _check_unary("sigmoid_forward"),
    "sigmoid_backward": _check_backward("sigmoid_backward"),
    "tanh_forward": _check_unary("tanh_forward"),
    "tanh_backward": _check_backward("tanh_backward"),
    "softmax_forward": _check_rowwise("softmax_forward"),
    "softmax_backward": _check_softmax_backward,
    "softmax_cross_entropy_forward": _check_sce_forward,
    "softmax_cross_entropy_backward": _check_sce_backward,
    "mse_forward": _check_pair("mse_forward"),
    "mse_backward": _check_pair("mse_backward"),
    "bce_with_logits_forward": _check_pair("bce_with_logits_forward"),
    "bce_with_logits_backward": _check_pair("bce_with_logits_backward"),
    "count_correct": _check_count_correct,
    "dropout_forward": _check_dropout_forward,
    "dropout_backward": _check_dropout_backward,
    "add": _check_add,
    "batchnorm_forward": _check_bn_forward,
    "batchnorm_inference": _check_bn_inference,
    "batchnorm_backward": _check_bn_backward,
    "sgd_update": _check_sgd,
    "adam_update": _check_adam,
    "sum_squares": _check_reduce("sum_squares"),
    "abs_sum": _check_reduce("abs_sum"),
    "scale_": _check_scale,
    "penalty_grad": _check_penalty,
}

assert CHECKS.keys() == KERNELS.keys()


def check(name, *args, **kwargs):
    """Validate the arguments of kernel ``name``; raise ContractError/TypeError if bad."""
    CHECKS[name](*args, **kwargs)
