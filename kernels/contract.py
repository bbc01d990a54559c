"""The kernel contract: the one list of functions every backend implements.

Every backend module (``numpy_backend``, ``python_backend``, ``numba_backend``, ...)
defines each function below with exactly this signature. The rules:

* Kernels **write into the output arrays they are given** (``out``, ``dx``, ``dw``,
  ...) and allocate nothing the caller can see; functions that produce a scalar
  return a Python ``float`` / ``int``.
* All floating arrays of one call share one dtype: ``float32`` or ``float64``.
  Integer class labels are ``int64`` arrays. Their range [0, C) is checked by each
  backend's kernel before it reads a row by label (a ValueError naming the kernel), not
  here: a step would otherwise scan its labels once per kernel (``FASTNN_DEBUG_CHECKS=1``
  scans here too). ``count_correct`` reads no row by label: one outside [0, C) counts as
  wrong.
* **Inputs** may have any strides (non-contiguous views, Fortran order).
  **Outputs** are C-contiguous arrays owned by the caller.
* **No output overlaps another argument** in memory (a kernel reads its inputs while
  it writes its outputs). The only in-place forms are the ones named here: ``dz`` of
  ``dense_backward`` may be ``dy`` itself; ``out`` of ``add`` may be ``a`` itself
  (``a += b``: how a gradient is accumulated); ``sgd_update`` / ``adam_update`` update
  ``p`` and their state arrays, ``scale_`` its ``x`` and ``penalty_grad`` its ``g``.
* Shapes below use ``N`` = batch size, ``I`` = input features, ``O`` = output
  features, ``C`` = classes, ``D`` = features of an element-wise op
  (any shape for element-wise kernels, ``out.shape == x.shape``). Row-wise kernels
  (softmax, cross-entropy, ``count_correct``) need ``C >= 1``; kernels that average
  over the batch (the losses, batch norm's statistics) need a non-empty batch.
* Element-wise activation *backward* kernels receive the forward **output**
  ``y`` (ReLU: ``y > 0`` iff ``x > 0``; sigmoid: ``y(1-y)``; tanh: ``1-y**2``),
  so a layer only keeps one array.
* **NaN and infinities** follow IEEE arithmetic exactly as the NumPy reference
  (``numpy_backend``) does, as PyTorch does: a NaN is never turned into a number
  (``relu(nan)`` is NaN; ``relu_backward`` multiplies ``dy`` by 0 or 1, so a NaN
  ``dy`` stays NaN; a term whose coefficient is 0, such as a zero weight decay, is
  skipped, not multiplied by 0). ``count_correct`` uses ``numpy.argmax``'s rule: the
  first NaN of a row is its maximum.
* **Reductions to a scalar** (the losses' means, ``sum_squares``, ``abs_sum``) follow
  one rule on every backend: each element is converted to float64 *before* any
  arithmetic, and the per-element terms are summed in float64. (So
  ``mse_forward(3e38, 0)`` is 9e76 in float32 too, not inf.) For
  ``softmax_cross_entropy_forward`` the row maximum, ``exp(z - max)`` and the
  probabilities are in the arrays' dtype, while the row sums of exponentials, their
  log and each row's loss ``logsumexp - (z[label] - max)`` are float64.

Backends never validate: :func:`check` below does it once, in Python, before a
kernel runs (see ``kernels/__init__.py``), so compiled code is never handed a
shape that would make it read or write out of bounds. A wrong type (not an array,
a wrong dtype, a string for a number) raises ``TypeError``; a wrong shape, layout,
value or an overlap raises :class:`ContractError` (a ``ValueError``). Each message
names the kernel and the argument.

Activation names understood by the fused dense kernels: ``"linear"``, ``"relu"``,
``"leaky_relu"`` (slope ``alpha``), ``"sigmoid"``, ``"tanh"``.
"""

from .validate import FLOAT_DTYPES, ContractError  # noqa: F401  (part of the contract's API)
from . import validate as V
from .primitives import PRIMITIVE_CHECKS, PRIMITIVES
from .conv_contract import CONV_CHECKS, CONV_KERNELS

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh")
# name -> the integer code compiled kernels branch on: the one table for every backend
# (Numba, Cython, CUDA). C needs compile-time constants, so kernels/_cython/fastnn_c.h
# repeats it as the FNN_LINEAR.. enum; tests/test_activation_codes.py checks they agree.
ACT_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}

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
    "softmax_forward": "softmax_forward(x, out): row-wise, max-subtracted; x, out (N,C), C >= 1",
    "softmax_backward": "softmax_backward(y, dy, dx): dx = y * (dy - sum(dy * y, 1)); (N,C), C >= 1",
    "softmax_cross_entropy_forward": "softmax_cross_entropy_forward(logits, labels, probs) -> float: "
                                     "probs = softmax(logits); returns mean(-log p[label]) computed "
                                     "with log-sum-exp (float64 sums, see above); logits, probs (N,C) with N, C >= 1, "
                                     "labels (N,) int64 in [0, C)",
    "softmax_cross_entropy_backward": "softmax_cross_entropy_backward(probs, labels, dlogits): "
                                      "dlogits = (probs - onehot(labels)) / N; N, C >= 1",
    "mse_forward": "mse_forward(y, t) -> float: mean((y - t)**2) over all elements, in float64; "
                   "y, t (N,D), not empty",
    "mse_backward": "mse_backward(y, t, dy): dy = 2 (y - t) / y.size",
    "bce_with_logits_forward": "bce_with_logits_forward(z, t) -> float: mean over all elements of "
                               "max(z,0) - z t + log(1 + exp(-|z|)), in float64; z, t (N,D), not empty",
    "bce_with_logits_backward": "bce_with_logits_backward(z, t, dz): dz = (sigmoid(z) - t) / z.size",
    "count_correct": "count_correct(scores, labels) -> int: number of rows whose argmax (first on ties, "
                     "first NaN if any, as numpy.argmax) equals the label; scores (N,C), C >= 1, "
                     "labels (N,) int64",
    # --- dropout, residual, batch norm -----------------------------------
    "dropout_forward": "dropout_forward(x, mask, out): out = x * mask (mask already holds 0 or 1/(1-p))",
    "dropout_backward": "dropout_backward(mask, dy, dx): dx = dy * mask",
    "add": "add(a, b, out): out = a + b (same shapes; out may be a itself)",
    "batchnorm_forward": "batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, "
                         "momentum, eps): training mode; mean, var over the batch (biased var); "
                         "invstd = 1/sqrt(var + eps); xhat = (x - mean) * invstd; out = gamma * xhat + beta; "
                         "running_mean = (1-momentum) running_mean + momentum mean; running_var likewise "
                         "with the unbiased var (N/(N-1) var; var when N == 1); x, out, xhat (N,D); "
                         "gamma, beta, invstd, running_* (D,); N >= 1",
    "batchnorm_inference": "batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out): "
                           "out = gamma (x - running_mean) / sqrt(running_var + eps) + beta",
    "batchnorm_backward": "batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta): "
                          "dbeta = sum(dy, 0); dgamma = sum(dy * xhat, 0); "
                          "dx = gamma * invstd / N * (N dy - dbeta - xhat * dgamma); N >= 1",
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


def _activation(k, activation, alpha):
    V.choice(k, "activation", activation, ACTIVATIONS)
    V.real(k, "alpha", alpha)


def _check_gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    k = "gemm"
    V.floating(k, "a", a)
    V.floating(k, "b", b, a.dtype)
    V.ndim(k, "a", a, 2)
    V.ndim(k, "b", b, 2)
    V.flag(k, "trans_a", trans_a)
    V.flag(k, "trans_b", trans_b)
    V.real(k, "alpha", alpha)
    V.real(k, "beta", beta)
    m, ka = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if ka != kb:
        V.fail(k, f"inner dimensions differ: op(a) is {(m, ka)}, op(b) is {(kb, n)}")
    V.output(k, "out", out, (m, n), a.dtype)
    V.disjoint(k, [("out", out)], [("a", a), ("b", b)])


def _dense_inputs(k, x, w):
    V.floating(k, "x", x)
    V.ndim(k, "x", x, 2)
    V.floating(k, "w", w, x.dtype)
    V.ndim(k, "w", w, 2)
    if w.shape[0] != x.shape[1]:
        V.fail(k, f"x has {x.shape[1]} features but w expects {w.shape[0]} (w shape {tuple(w.shape)})")
    return x.shape[0], x.shape[1], w.shape[1]


def _check_dense_forward(x, w, b, out, activation="linear", alpha=0.01):
    k = "dense_forward"
    n, _, o = _dense_inputs(k, x, w)
    V.shaped(k, "b", b, (o,), x.dtype)
    V.output(k, "out", out, (n, o), x.dtype)
    _activation(k, activation, alpha)
    V.disjoint(k, [("out", out)], [("x", x), ("w", w), ("b", b)])


def _check_dense_backward(x, w, y, dy, dz, dx, dw, db, activation="linear", alpha=0.01):
    k = "dense_backward"
    n, i, o = _dense_inputs(k, x, w)
    V.shaped(k, "y", y, (n, o), x.dtype)
    V.shaped(k, "dy", dy, (n, o), x.dtype)
    V.output(k, "dz", dz, (n, o), x.dtype)
    if dx is not None:
        V.output(k, "dx", dx, (n, i), x.dtype)
    V.output(k, "dw", dw, (i, o), x.dtype)
    V.output(k, "db", db, (o,), x.dtype)
    _activation(k, activation, alpha)
    V.disjoint(k, [("dz", dz), ("dx", dx), ("dw", dw), ("db", db)],
               [("x", x), ("w", w), ("y", y), ("dy", dy)], in_place=(("dz", "dy"),))


def _named(kernel, fn):
    fn.__name__ = fn.__qualname__ = kernel    # "relu_forward() takes 2 positional arguments..."
    return fn


def _unary(k, x, out):
    V.floating(k, "x", x)
    V.output(k, "out", out, x.shape, x.dtype)
    V.disjoint(k, [("out", out)], [("x", x)])


def _check_unary(k):
    return _named(k, lambda x, out: _unary(k, x, out))


def _check_unary_slope(k):
    def check(x, out, alpha):
        _unary(k, x, out)
        V.real(k, "alpha", alpha)
    return _named(k, check)


def _backward(k, y, dy, dx, names=("y", "dy", "dx")):
    first, second, result = names
    V.floating(k, first, y)
    V.shaped(k, second, dy, y.shape, y.dtype)
    V.output(k, result, dx, y.shape, y.dtype)
    V.disjoint(k, [(result, dx)], [(first, y), (second, dy)])


def _check_backward(k):
    return _named(k, lambda y, dy, dx: _backward(k, y, dy, dx))


def _check_backward_slope(k):
    def check(y, dy, dx, alpha):
        _backward(k, y, dy, dx)
        V.real(k, "alpha", alpha)
    return _named(k, check)


def _check_softmax_forward(x, out):
    k = "softmax_forward"
    V.rows_and_columns(k, "x", x)
    V.output(k, "out", out, x.shape, x.dtype)
    V.disjoint(k, [("out", out)], [("x", x)])


def _check_softmax_backward(y, dy, dx):
    V.rows_and_columns("softmax_backward", "y", y)
    _backward("softmax_backward", y, dy, dx)


def _check_sce_forward(logits, labels, probs):
    k = "softmax_cross_entropy_forward"
    n, c = V.rows_and_columns(k, "logits", logits, min_rows=1)
    V.labels(k, labels, n, c)
    V.output(k, "probs", probs, logits.shape, logits.dtype)
    V.disjoint(k, [("probs", probs)], [("logits", logits), ("labels", labels)])


def _check_sce_backward(probs, labels, dlogits):
    k = "softmax_cross_entropy_backward"
    n, c = V.rows_and_columns(k, "probs", probs, min_rows=1)
    V.labels(k, labels, n, c)
    V.output(k, "dlogits", dlogits, probs.shape, probs.dtype)
    V.disjoint(k, [("dlogits", dlogits)], [("probs", probs), ("labels", labels)])


def _pair(k, first, y, t):
    V.floating(k, first, y)
    V.shaped(k, "t", t, y.shape, y.dtype)
    if y.size == 0:
        V.fail(k, f"{first} is empty (shape {tuple(y.shape)}): the mean of no elements")


def _check_pair(k, first):
    return _named(k, lambda y, t: _pair(k, first, y, t))


def _check_pair_out(k, first, result):
    def check(y, t, out):
        _pair(k, first, y, t)
        V.output(k, result, out, y.shape, y.dtype)
        V.disjoint(k, [(result, out)], [(first, y), ("t", t)])
    return _named(k, check)


def _check_count_correct(scores, labels):
    k = "count_correct"
    n, c = V.rows_and_columns(k, "scores", scores)
    V.labels(k, labels, n, c)


def _check_add(a, b, out):
    k = "add"
    V.floating(k, "a", a)
    V.shaped(k, "b", b, a.shape, a.dtype)
    V.output(k, "out", out, a.shape, a.dtype)
    V.disjoint(k, [("out", out)], [("a", a), ("b", b)], in_place=(("out", "a"),))


def _check_dropout_forward(x, mask, out):
    k = "dropout_forward"
    V.floating(k, "x", x)
    V.shaped(k, "mask", mask, x.shape, x.dtype)
    V.output(k, "out", out, x.shape, x.dtype)
    V.disjoint(k, [("out", out)], [("x", x), ("mask", mask)])


def _check_dropout_backward(mask, dy, dx):
    _backward("dropout_backward", mask, dy, dx, ("mask", "dy", "dx"))


def _check_bn_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var, momentum, eps):
    k = "batchnorm_forward"
    n, d = V.rows_and_columns(k, "x", x, min_rows=1)
    V.shaped(k, "gamma", gamma, (d,), x.dtype)
    V.shaped(k, "beta", beta, (d,), x.dtype)
    outs = [("out", out), ("xhat", xhat), ("invstd", invstd), ("running_mean", running_mean),
            ("running_var", running_var)]
    for name, a in outs:
        V.output(k, name, a, x.shape if name in ("out", "xhat") else (d,), x.dtype)
    V.real(k, "momentum", momentum)
    V.real(k, "eps", eps)
    V.disjoint(k, outs, [("x", x), ("gamma", gamma), ("beta", beta)])


def _check_bn_inference(x, gamma, beta, running_mean, running_var, eps, out):
    k = "batchnorm_inference"
    V.floating(k, "x", x)
    V.ndim(k, "x", x, 2)
    d = x.shape[1]
    ins = [("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
           ("running_var", running_var)]
    for name, a in ins[1:]:
        V.shaped(k, name, a, (d,), x.dtype)
    V.real(k, "eps", eps)
    V.output(k, "out", out, x.shape, x.dtype)
    V.disjoint(k, [("out", out)], ins)


def _check_bn_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta):
    k = "batchnorm_backward"
    n, d = V.rows_and_columns(k, "xhat", xhat, min_rows=1)
    V.shaped(k, "gamma", gamma, (d,), xhat.dtype)
    V.shaped(k, "invstd", invstd, (d,), xhat.dtype)
    V.shaped(k, "dy", dy, xhat.shape, xhat.dtype)
    V.output(k, "dx", dx, xhat.shape, xhat.dtype)
    V.output(k, "dgamma", dgamma, (d,), xhat.dtype)
    V.output(k, "dbeta", dbeta, (d,), xhat.dtype)
    V.disjoint(k, [("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)],
               [("xhat", xhat), ("gamma", gamma), ("invstd", invstd), ("dy", dy)])


def _check_param_state(k, p, g, state, reals):
    V.floating(k, "p", p)
    V.output(k, "p", p, p.shape, p.dtype)
    V.shaped(k, "g", g, p.shape, p.dtype)
    for name, s in state:
        V.output(k, name, s, p.shape, p.dtype)
    for name, value in reals:
        V.real(k, name, value)
    V.disjoint(k, [("p", p)] + list(state), [("g", g)])


def _check_sgd(p, g, v, lr, momentum, weight_decay, nesterov):
    k = "sgd_update"
    _check_param_state(k, p, g, [("v", v)],
                       [("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)])
    V.flag(k, "nesterov", nesterov)


def _check_adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    k = "adam_update"
    _check_param_state(k, p, g, [("m", m), ("v", v)],
                       [("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps),
                        ("weight_decay", weight_decay)])
    V.integer(k, "step", step, minimum=1)
    V.flag(k, "decoupled", decoupled)


def _check_reduce(kernel):
    def check(x):
        V.floating(kernel, "x", x)
    return check


def _check_scale(x, s):
    V.floating("scale_", "x", x)
    V.output("scale_", "x", x, x.shape, x.dtype)
    V.real("scale_", "s", s)


def _check_penalty(w, g, l1, l2):
    k = "penalty_grad"
    V.floating(k, "w", w)
    V.output(k, "g", g, w.shape, w.dtype)
    V.real(k, "l1", l1)
    V.real(k, "l2", l2)
    V.disjoint(k, [("g", g)], [("w", w)])


CHECKS = {
    "gemm": _check_gemm,
    "dense_forward": _check_dense_forward,
    "dense_backward": _check_dense_backward,
    "relu_forward": _check_unary("relu_forward"),
    "relu_backward": _check_backward("relu_backward"),
    "leaky_relu_forward": _check_unary_slope("leaky_relu_forward"),
    "leaky_relu_backward": _check_backward_slope("leaky_relu_backward"),
    "sigmoid_forward": _check_unary("sigmoid_forward"),
    "sigmoid_backward": _check_backward("sigmoid_backward"),
    "tanh_forward": _check_unary("tanh_forward"),
    "tanh_backward": _check_backward("tanh_backward"),
    "softmax_forward": _check_softmax_forward,
    "softmax_backward": _check_softmax_backward,
    "softmax_cross_entropy_forward": _check_sce_forward,
    "softmax_cross_entropy_backward": _check_sce_backward,
    "mse_forward": _check_pair("mse_forward", "y"),
    "mse_backward": _check_pair_out("mse_backward", "y", "dy"),
    "bce_with_logits_forward": _check_pair("bce_with_logits_forward", "z"),
    "bce_with_logits_backward": _check_pair_out("bce_with_logits_backward", "z", "dz"),
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


# The tier-1 primitives of primitives.py are kernels of the contract like the others.
KERNELS.update(PRIMITIVES)
CHECKS.update(PRIMITIVE_CHECKS)
# The convolution and pooling kernels (tier 2) of conv_contract.py likewise.
KERNELS.update(CONV_KERNELS)
CHECKS.update(CONV_CHECKS)


def check(name, *args, **kwargs):
    """Validate the arguments of kernel ``name``; raise ContractError/TypeError if bad."""
    CHECKS[name](*args, **kwargs)
