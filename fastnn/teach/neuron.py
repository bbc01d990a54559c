"""One neuron, step by step: weighted sum, activation, confidence, and one learning step.

Every number is computed twice: by hand here (plain Python floats, so the arithmetic
can be read line by line) and by a ``fastnn.Dense`` layer on the chosen backend; the
two must agree. :func:`two_layer` shows a tiny hidden layer, and why a hidden layer
without a non-linear activation adds nothing: two linear layers collapse into one.
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["ACTIVATIONS", "LEAKY_ALPHA", "activate", "derivative", "NeuronResult", "neuron",
           "TwoLayerResult", "two_layer"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "linear")
LEAKY_ALPHA = 0.01   # the slope of leaky_relu below zero (fastnn's default)


def activate(name, z):
    """act(z) for a float z."""
    if name == "sigmoid":   # written so that exp never overflows
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    if name == "tanh":
        return math.tanh(z)
    if name == "relu":
        return max(0.0, z)
    if name == "leaky_relu":
        return z if z > 0 else LEAKY_ALPHA * z
    if name == "linear":
        return z
    raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATIONS}")


def derivative(name, z, y):
    """d act / dz at z (y = act(z) already computed)."""
    return {"sigmoid": y * (1.0 - y), "tanh": 1.0 - y * y, "relu": 1.0 if z > 0 else 0.0,
            "leaky_relu": 1.0 if z > 0 else LEAKY_ALPHA, "linear": 1.0}[name]


def _numbers(values, what):
    """A non-empty list of finite floats, or a ValueError/TypeError naming ``what``."""
    if isinstance(values, (int, float, np.number)):
        values = [values]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be numbers, got {values!r}") from None
    if not out:
        raise ValueError(f"{what}: need at least one number")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be finite, got {out}")
    return out


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def _fmt(v, d):
    return f"{v:.{d}f}"


def _signed(v, d):
    """" + 0.15" or " - 0.15": a term added to a sum."""
    return f" {'-' if v < 0 else '+'} {abs(v):.{d}f}"


def _library_layer(weights, bias, activation, backend):
    """A float64 fastnn.Dense(n_in, n_out) holding the given weights (n_in, n_out) and bias (n_out,)."""
    import fastnn as fnn
    weights = np.asarray(weights, dtype=np.float64)
    layer = fnn.Dense(weights.shape[0], weights.shape[1], activation=activation, alpha=LEAKY_ALPHA,
                      backend=backend, dtype="float64")
    layer.weight.data = weights
    layer.bias.data = np.asarray(bias, dtype=np.float64)
    return layer


@dataclass
class NeuronResult:
    """Everything :func:`neuron` computed. ``str(result)`` is the printed story."""

    inputs: list
    weights: list
    bias: float
    activation: str
    products: list          # x_i * w_i
    z: float                # weighted sum plus bias
    output: float           # act(z)
    probability: float      # P(positive), or None when the output is not a probability
    confidence: float       # probability of the predicted class, or None
    label: str              # "positive" or "negative"
    library_output: float   # the same output from fastnn.Dense on ``backend``
    backend: str
    step: dict = field(default=None)   # one gradient-descent step, when a target was given
    decimals: int = 2

    def as_dict(self):
        return asdict(self)

    def __str__(self):
        d = self.decimals
        terms = " + ".join(f"({_fmt(x, d)} x {_fmt(w, d)})" for x, w in zip(self.inputs, self.weights))
        lines = [f"forward pass  {terms}{_signed(self.bias, d)} = {_fmt(self.z, d)}",
                 f"{self.activation:<13} {_fmt(self.z, d)} -> {_fmt(self.output, d)}"]
        if self.confidence is None:
            lines.append(f"confidence    n/a ({self.activation} gives a score, not a probability)"
                         f"   classification: {self.label} (output {'>' if self.label == 'positive' else '<='} 0)")
        else:
            how = "" if self.activation == "sigmoid" else "  (reading (tanh + 1) / 2 as a probability)"
            lines.append(f"confidence    {100 * self.confidence:.0f}%   classification: {self.label}{how}")
        lines.append(f"check         fastnn.Dense on backend {self.backend!r} gives "
                     f"{self.library_output:.{max(d, 6)}f}")
        if self.step:
            s = self.step
            grads = ", ".join(_fmt(g, 4) for g in s["grad_weights"])
            new_w = ", ".join(_fmt(w, 4) for w in s["new_weights"])
            lines += [
                f"loss          {s['loss_name']} against target {s['target']:g}: {s['loss']:.4f}",
                f"backward      dL/dz = {s['dz']:.4f};  dL/dw = dL/dz * x = [{grads}];  dL/db = {s['dz']:.4f}",
                f"update        w <- w - {s['lr']:g} * dL/dw = [{new_w}];  b <- {s['new_bias']:.4f}",
                f"after 1 step  output {_fmt(self.output, 4)} -> {_fmt(s['new_output'], 4)}, "
                f"loss {s['loss']:.4f} -> {s['new_loss']:.4f}",
            ]
        return "\n".join(lines)


def _interpret(activation, output):
    """(probability of "positive" or None, confidence or None, label)."""
    if activation == "sigmoid":
        p = output
    elif activation == "tanh":
        p = (output + 1.0) / 2.0   # tanh is a rescaled sigmoid: (tanh(z) + 1) / 2 = sigmoid(2z)
    else:   # relu, leaky_relu, linear: unbounded scores, classified by their sign
        return None, None, "positive" if output > 0 else "negative"
    label = "positive" if p >= 0.5 else "negative"
    return p, (p if label == "positive" else 1.0 - p), label


def _loss(activation, z, y, target):
    """(name, loss, dL/dy): cross-entropy for a sigmoid output, squared error otherwise."""
    if activation == "sigmoid":
        # -t log y - (1 - t) log(1 - y), written in z so that it stays finite when y rounds to 0 or 1
        loss = max(z, 0.0) - z * target + math.log1p(math.exp(-abs(z)))
        return "binary cross-entropy", loss, (y - target) / max(y * (1 - y), 1e-300)
    return "squared error", (y - target) ** 2, 2.0 * (y - target)


def neuron(inputs, weights, bias=0.0, activation="sigmoid", target=None, lr=0.5, backend=None,
           decimals=2):
    """One neuron's forward pass (and, with ``target``, one gradient-descent step).

    ``inputs`` and ``weights``: sequences of the same length n; ``bias`` a number.
    ``z = sum_i x_i w_i + b``, ``output = activation(z)``. With a ``target`` the loss
    (binary cross-entropy for sigmoid, squared error otherwise), its gradient and the
    weights after one step of size ``lr`` are added as ``result.step``.
    Returns a :class:`NeuronResult`; ``print(result)`` shows the worked example.
    """
    _check_activation(activation)
    x = _numbers(inputs, "inputs")
    w = _numbers(weights, "weights")
    if len(x) != len(w):
        raise ValueError(f"a neuron needs one weight per input: got {len(x)} inputs {x} "
                         f"but {len(w)} weights {w}")
    b = _numbers(bias, "bias")
    if len(b) != 1:
        raise ValueError(f"bias must be a single number, got {b}")
    b = b[0]
    products = [xi * wi for xi, wi in zip(x, w)]
    z = math.fsum(products) + b
    y = activate(activation, z)
    p, confidence, label = _interpret(activation, y)

    import fastnn as fnn
    backend = fnn.kernels.resolve(backend or fnn.get_backend_name())
    layer = _library_layer(np.array(w)[:, None], [b], activation, backend)
    library_y = float(layer.forward(np.array([x]))[0, 0])
    if not math.isclose(library_y, y, rel_tol=1e-9, abs_tol=1e-12):
        raise RuntimeError(f"backend {backend!r} computed {library_y!r} for this neuron, by hand {y!r}")

    step = None
    if target is not None:
        step = _learning_step(x, w, b, activation, z, y, float(target), float(lr), layer)
    return NeuronResult(x, w, b, activation, products, z, y, p, confidence, label, library_y,
                        backend, step, decimals)


def _learning_step(x, w, b, activation, z, y, target, lr, layer):
    """Loss, backward (chain rule) and one SGD update; the gradient is checked against the layer's."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if activation == "sigmoid" and not 0.0 <= target <= 1.0:
        raise ValueError(f"target for a sigmoid neuron must lie in [0, 1], got {target!r}")
    loss_name, loss, dy = _loss(activation, z, y, target)
    chain = dy * derivative(activation, z, y)   # chain rule: dL/dz = dL/dy * dy/dz
    layer.backward(np.array([[dy]]))
    if not np.allclose(layer.weight.grad[:, 0], [chain * xi for xi in x], rtol=1e-6, atol=1e-9):
        raise RuntimeError(f"backend gradient {layer.weight.grad[:, 0]} differs from the hand-made "
                           f"{[chain * xi for xi in x]}")
    # sigmoid + cross-entropy: the chain simplifies to y - t (exact even where sigmoid saturates)
    dz = y - target if activation == "sigmoid" else chain
    grad_w = [dz * xi for xi in x]
    new_w = [wi - lr * gi for wi, gi in zip(w, grad_w)]
    new_b = b - lr * dz
    new_z = math.fsum(xi * wi for xi, wi in zip(x, new_w)) + new_b
    new_y = activate(activation, new_z)
    return {"target": target, "lr": lr, "loss_name": loss_name, "loss": loss, "dy": dy, "dz": dz,
            "grad_weights": grad_w, "grad_bias": dz, "new_weights": new_w, "new_bias": new_b,
            "new_output": new_y, "new_loss": _loss(activation, new_z, new_y, target)[1]}


# --- two layers ------------------------------------------------------------------------

@dataclass
class TwoLayerResult:
    """A tiny network n -> hidden -> 1 and its one-layer collapse (see :func:`two_layer`)."""

    inputs: list
    activation: str
    w1: np.ndarray          # (n, hidden)
    b1: np.ndarray          # (hidden,)
    w2: np.ndarray          # (hidden, 1)
    b2: np.ndarray          # (1,)
    hidden_z: np.ndarray    # (hidden,) pre-activations
    hidden_out: np.ndarray  # (hidden,) after the activation
    output: float           # the network's (linear) output
    collapsed_w: np.ndarray  # (n, 1) = w1 @ w2
    collapsed_b: np.ndarray  # (1,)  = b1 @ w2 + b2
    collapsed_output: float
    max_difference: float   # max |network - collapsed layer| over ``trials`` random inputs
    trials: int
    collapses: bool         # True when the single layer reproduces the network
    backend: str
    decimals: int = 2

    def as_dict(self):
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}

    def __str__(self):
        d = self.decimals
        f = lambda a: "[" + ", ".join(_fmt(v, d) for v in np.ravel(a)) + "]"   # noqa: E731
        n, h = self.w1.shape
        lines = [f"network       {n} inputs -> {h} hidden ({self.activation}) -> 1 output (linear)",
                 f"inputs        {f(self.inputs)}"]
        for j in range(h):
            terms = " + ".join(f"({_fmt(x, d)} x {_fmt(self.w1[i, j], d)})" for i, x in enumerate(self.inputs))
            lines.append(f"hidden {j + 1:<6} {terms}{_signed(self.b1[j], d)} = {_fmt(self.hidden_z[j], d)}"
                         f" -> {self.activation} -> {_fmt(self.hidden_out[j], d)}")
        terms = " + ".join(f"({_fmt(a, d)} x {_fmt(self.w2[j, 0], d)})" for j, a in enumerate(self.hidden_out))
        lines.append(f"output        {terms}{_signed(self.b2[0], d)} = {_fmt(self.output, 4)}")
        e = d + 2   # products of two d-decimal numbers need 2d decimals; d + 2 is plenty to read
        g = lambda a: "[" + ", ".join(_fmt(v, e) for v in np.ravel(a)) + "]"   # noqa: E731
        one = " + ".join(f"({_fmt(x, d)} x {_fmt(w, e)})" for x, w in zip(self.inputs, self.collapsed_w[:, 0]))
        lines += [f"collapsed     W = W1 @ W2 = {g(self.collapsed_w)}   b = b1 @ W2 + b2 = {g(self.collapsed_b)}",
                  f"one layer     {one}{_signed(self.collapsed_b[0], e)} = {_fmt(self.collapsed_output, 4)}",
                  f"check         max |two layers - one layer| over these inputs and {self.trials} random "
                  f"ones: {self.max_difference:.2e}"]
        if self.collapses:
            lines.append("lesson        with a linear activation the hidden layer adds nothing: the two "
                         "layers ARE one linear layer")
        else:
            lines.append(f"lesson        the {self.activation} between the layers breaks the collapse "
                         "(they may agree at one input, not everywhere): no single linear layer matches, "
                         "which is why non-linear activations give depth its power")
        return "\n".join(lines)


def two_layer(inputs, hidden=3, activation="linear", seed=0, trials=1000, backend=None, decimals=2):
    """A tiny network ``len(inputs) -> hidden -> 1`` with weights drawn from ``seed``.

    Computes the output with fastnn layers on ``backend`` (float64) and the single
    linear layer ``W = W1 @ W2``, ``b = b1 @ W2 + b2`` that the two layers reduce to
    when the hidden activation is linear; checks them against each other on
    ``trials`` random inputs. Returns a :class:`TwoLayerResult`.
    """
    import fastnn as fnn
    _check_activation(activation)
    x = _numbers(inputs, "inputs")
    if not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
    backend = fnn.kernels.resolve(backend or fnn.get_backend_name())
    rng = np.random.default_rng(seed)
    n = len(x)
    # rounded so that the printed numbers are the numbers used
    w1, b1 = np.round(rng.normal(0, 1, (n, hidden)), decimals), np.round(rng.normal(0, 0.5, hidden), decimals)
    w2, b2 = np.round(rng.normal(0, 1, (hidden, 1)), decimals), np.round(rng.normal(0, 0.5, 1), decimals)
    first = _library_layer(w1, b1, activation, backend)
    second = _library_layer(w2, b2, "linear", backend)
    model = fnn.Sequential([first, second], backend=backend, dtype="float64")

    xs = np.array([x])
    hidden_out = first.forward(xs)[0]
    hidden_z = xs[0] @ w1 + b1
    output = float(model.forward(xs)[0, 0])

    collapsed_w, collapsed_b = w1 @ w2, b1 @ w2 + b2
    single = _library_layer(collapsed_w, collapsed_b, "linear", backend)
    collapsed_output = float(single.forward(xs)[0, 0])
    probe = np.vstack([xs, rng.normal(0, 3, (trials, n))])
    difference = float(np.max(np.abs(model.forward(probe) - single.forward(probe))))
    scale = 1.0 + float(np.max(np.abs(model.forward(probe))))
    return TwoLayerResult(x, activation, w1, b1, w2, b2, hidden_z, hidden_out, output, collapsed_w,
                          collapsed_b, collapsed_output, difference, trials, difference <= 1e-9 * scale,
                          backend, decimals)
