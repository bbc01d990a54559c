"""Layers: forward caches what backward needs; backward applies the chain rule.

Every layer follows the same pair (as in CS231n):

* ``forward(x) -> out``: computes the output and keeps what backward will need;
* ``backward(dout) -> dx``: given dL/d(out), fills each parameter's gradient and
  returns dL/dx.

Layers never do arithmetic themselves: each calls a kernel of its backend
(``kernels/contract.py``). The public ``forward``/``backward`` take and return host
NumPy arrays; ``_forward``/``_backward`` keep the backend's own arrays (device
arrays on a GPU) and are what ``Sequential`` and ``fit`` chain together.

Shapes: ``N`` is the batch size throughout.
"""

import numpy as np

from .backend import get_backend, get_backend_name
from .parameter import Parameter

LAYERS = {}


def register(cls):
    """Make a layer class loadable by name (save/load and configs)."""
    LAYERS[cls.__name__] = cls
    return cls


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class Layer:
    """Base class. Subclasses implement ``_forward``/``_backward`` and ``get_config``."""

    def __init__(self, backend=None, dtype="float32"):
        self.training = True
        self.dtype = _dtype(dtype)
        self.backend_name = backend or get_backend_name()
        self.bk = get_backend(self.backend_name)

    # --- public API: host arrays in, host arrays out -------------------------
    def forward(self, x):
        """Output of the layer for input ``x`` (a host NumPy array)."""
        return self.bk.to_host(self._forward(x))

    def backward(self, dout):
        """dL/dx for dL/d(out) = ``dout``; fills every parameter's ``.grad``."""
        return self.bk.to_host(self._backward(dout))

    __call__ = forward

    def parameters(self):
        """Learnable parameters, in a fixed order."""
        return []

    def buffers(self):
        """Non-learnable state saved with the model (e.g. running statistics): {name: array}."""
        return {}

    def train(self, mode=True):
        """Training mode (Dropout drops, BatchNorm uses batch statistics)."""
        self.training = mode
        return self

    def eval(self):
        """Evaluation mode: deterministic, train-only behaviour switched off."""
        return self.train(False)

    def to(self, backend=None, dtype=None):
        """Move the layer (and its parameters) to another backend and/or dtype."""
        self.backend_name = backend or self.backend_name
        self.bk = get_backend(self.backend_name)
        self.dtype = _dtype(dtype or self.dtype)
        for p in self.parameters():
            p.to(self.backend_name, self.dtype)
        self._move_buffers()
        return self

    def _move_buffers(self):
        pass

    def reset_parameters(self, rng, next_layer=None):
        """Re-draw initial weights from ``rng`` (a numpy Generator)."""

    def get_config(self):
        return {}

    def save(self, path):
        """Write architecture and weights to ``path`` (.npz); read back with ``fastnn.load``."""
        from .io import save
        save(self, path)

    # --- helpers ---------------------------------------------------------------
    def _input(self, x, ndim=None, features=None):
        """Validate ``x`` and hand it to the backend in the layer's dtype."""
        name = type(self).__name__
        if not (isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__")):
            x = np.asarray(x)
        if isinstance(x, np.ndarray) and x.dtype.kind not in "fiub":
            raise TypeError(f"{name}: input must be numeric, got dtype {x.dtype}")
        if ndim is not None and len(x.shape) != ndim:
            raise ValueError(f"{name}: expected a {ndim}-D input (batch, features), got shape {tuple(x.shape)}")
        if features is not None and x.shape[-1] != features:
            raise ValueError(f"{name}: expected input of shape (batch, {features}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: empty batch (shape {tuple(x.shape)})")
        return self.bk.asarray(x, self.dtype)

    def _grad_input(self, dout, shape):
        name = type(self).__name__
        if shape is None:
            raise RuntimeError(f"{name}: backward called before forward")
        if not (isinstance(dout, np.ndarray) or hasattr(dout, "__cuda_array_interface__")):
            dout = np.asarray(dout)
        if tuple(dout.shape) != tuple(shape):
            raise ValueError(f"{name}: backward expected dout of shape {tuple(shape)} "
                             f"(the forward output), got {tuple(dout.shape)}")
        return self.bk.asarray(dout, self.dtype)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --- Dense -------------------------------------------------------------------------

def he_normal(rng, fan_in, fan_out):
    """He/Kaiming normal: std sqrt(2 / fan_in), keeps ReLU activations' variance steady."""
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def xavier_uniform(rng, fan_in, fan_out):
    """Xavier/Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); for sigmoid/tanh/linear."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out))


INITS = {"he": he_normal, "xavier": xavier_uniform}


@register
class Dense(Layer):
    """Fully connected layer: ``out = act(x @ W + b)``.

    x: (N, in_features) -> out: (N, out_features); ``weight.data`` (in, out),
    ``bias.data`` (out,). ``activation`` (default "linear") is fused into the same
    kernel; a separate activation layer after a linear Dense computes the same thing.

    ``init``: "he" (normal, std sqrt(2/in)) or "xavier" (uniform). Default None picks
    He when a ReLU-family activation follows (fused here, or the next layer inside a
    ``Sequential``) and Xavier otherwise. Biases start at zero. Weights are drawn on
    the host from ``seed`` (or the ``Sequential``'s seed), so every backend starts
    from the same numbers.
    """

    def __init__(self, in_features, out_features, activation="linear", alpha=0.01, init=None,
                 seed=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Dense: {name} must be a positive integer, got {v!r}")
        from .kernels.contract import ACTIVATIONS
        if activation not in ACTIVATIONS:
            raise ValueError(f"Dense: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        if init is not None and init not in INITS:
            raise ValueError(f"Dense: unknown init {init!r}; expected one of {tuple(INITS)}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.activation, self.alpha, self.init = activation, float(alpha), init
        self.weight = Parameter(np.zeros((self.in_features, self.out_features), self.dtype), "weight",
                                self.backend_name)
        self.bias = Parameter(np.zeros(self.out_features, self.dtype), "bias", self.backend_name)
        self.reset_parameters(np.random.default_rng(seed))
        self._x = self._y = None

    def reset_parameters(self, rng, next_layer=None):
        init = self.init
        if init is None:
            follows = getattr(next_layer, "activation", None)
            relu_like = ("relu", "leaky_relu")
            init = "he" if self.activation in relu_like or follows in relu_like else "xavier"
        self.weight.data = INITS[init](rng, self.in_features, self.out_features)
        self.bias.data = np.zeros(self.out_features)

    def parameters(self):
        return [self.weight, self.bias]

    def _forward(self, x):
        x = self._input(x, ndim=2, features=self.in_features)
        out = self.bk.empty((x.shape[0], self.out_features), self.dtype)
        self.bk.dense_forward(x, self.weight.value, self.bias.value, out, self.activation, self.alpha)
        self._x, self._y = x, out
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, None if self._y is None else self._y.shape)
        n = dy.shape[0]
        dz = self.bk.empty((n, self.out_features), self.dtype)
        dx = self.bk.empty((n, self.in_features), self.dtype) if need_dx else None
        # chain rule: dz = dy * act'(z); dW = x^T dz; db = sum_n dz; dx = dz W^T
        self.bk.dense_backward(self._x, self.weight.value, self._y, dy, dz, dx,
                               self.weight.gradient, self.bias.gradient, self.activation, self.alpha)
        return dx

    def get_config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "alpha": self.alpha, "init": self.init}


# --- element-wise activations ------------------------------------------------------

class _Activation(Layer):
    """Element-wise activation; backward uses the cached output y (see the contract)."""

    activation = "linear"

    def __init__(self, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        self._y = None
        self.alpha = 0.0

    def _args(self):
        return ()

    def _forward(self, x):
        x = self._input(x)
        out = self.bk.empty(x.shape, self.dtype)
        getattr(self.bk, f"{self.activation}_forward")(x, out, *self._args())
        self._y = out
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, None if self._y is None else self._y.shape)
        dx = self.bk.empty(dy.shape, self.dtype)
        getattr(self.bk, f"{self.activation}_backward")(self._y, dy, dx, *self._args())
        return dx


@register
class ReLU(_Activation):
    """max(0, x), element-wise; any shape. Gradient 1 where x > 0, else 0."""
    activation = "relu"


@register
class LeakyReLU(_Activation):
    """x if x > 0 else alpha * x (alpha > 0, default 0.01); any shape."""
    activation = "leaky_relu"

    def __init__(self, alpha=0.01, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        if not alpha > 0:
            raise ValueError(f"LeakyReLU: alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def _args(self):
        return (self.alpha,)

    def get_config(self):
        return {"alpha": self.alpha}


@register
class Sigmoid(_Activation):
    """1 / (1 + exp(-x)), element-wise, overflow-safe; gradient y (1 - y)."""
    activation = "sigmoid"


@register
class Tanh(_Activation):
    """tanh(x), element-wise; gradient 1 - y^2."""
    activation = "tanh"


@register
class Softmax(Layer):
    """Row-wise softmax: (N, C) -> (N, C), rows sum to 1.

    For classification training use ``SoftmaxCrossEntropy`` on raw logits instead:
    it fuses both steps and is numerically safer.
    """

    def __init__(self, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        self._y = None

    def _forward(self, x):
        x = self._input(x, ndim=2)
        out = self.bk.empty(x.shape, self.dtype)
        self.bk.softmax_forward(x, out)
        self._y = out
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, None if self._y is None else self._y.shape)
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.softmax_backward(self._y, dy, dx)
        return dx


# --- regularisation and shape layers ---------------------------------------------------

@register
class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale
    the rest by 1/(1-p), so evaluation needs no rescaling. Identity in eval mode.

    The mask is drawn on the host from ``seed`` (re-seeded by a ``Sequential``'s seed),
    so runs are reproducible and identical across backends. Any shape.
    """

    def __init__(self, p=0.5, seed=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)
        self.freeze_mask = False  # reuse the last mask (gradient checks need a fixed function)
        self._mask = None

    def reset_parameters(self, rng, next_layer=None):
        self.rng = np.random.default_rng(rng.integers(2**63))

    def _forward(self, x):
        x = self._input(x)
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        if not (self.freeze_mask and self._mask is not None and tuple(self._mask.shape) == tuple(x.shape)):
            keep = self.rng.random(x.shape) >= self.p
            self._mask = self.bk.asarray(keep.astype(self.dtype) / self.dtype.type(1.0 - self.p))
        out = self.bk.empty(x.shape, self.dtype)
        self.bk.dropout_forward(x, self._mask, out)
        return out

    def _backward(self, dout, need_dx=True):
        if self._mask is None:
            return self.bk.asarray(dout, self.dtype)
        dy = self._grad_input(dout, self._mask.shape)
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.dropout_backward(self._mask, dy, dx)
        return dx

    def get_config(self):
        return {"p": self.p}


@register
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...); backward restores the input shape."""

    def __init__(self, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        self._shape = None

    def _forward(self, x):
        x = self._input(x)
        if len(x.shape) < 2:
            raise ValueError(f"Flatten: expected at least a 2-D input (batch, ...), got shape {tuple(x.shape)}")
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def _backward(self, dout, need_dx=True):
        n = int(np.prod(self._shape[1:])) if self._shape else None
        dy = self._grad_input(dout, None if self._shape is None else (self._shape[0], n))
        return dy.reshape(self._shape)


@register
class BatchNorm1d(Layer):
    """Batch normalisation over the batch axis: (N, D) -> (N, D).

    Training: normalise with the batch mean and (biased) variance, then scale by
    ``gamma`` and shift by ``beta``; update the running mean/variance (unbiased) with
    ``momentum``. Eval: use the running statistics. ``backward`` is defined for
    training mode (where the statistics depend on the batch).
    """

    def __init__(self, num_features, momentum=0.1, eps=1e-5, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        if not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"BatchNorm1d: num_features must be a positive integer, got {num_features!r}")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.gamma = Parameter(np.ones(self.num_features, self.dtype), "gamma", self.backend_name)
        self.beta = Parameter(np.zeros(self.num_features, self.dtype), "beta", self.backend_name)
        self.running_mean = self.bk.zeros((self.num_features,), self.dtype)
        self.running_var = self.bk.asarray(np.ones(self.num_features, self.dtype))
        self._cache = None

    def parameters(self):
        return [self.gamma, self.beta]

    def buffers(self):
        return {"running_mean": self.bk.to_host(self.running_mean),
                "running_var": self.bk.to_host(self.running_var)}

    def load_buffers(self, buffers):
        self.running_mean = self.bk.asarray(np.asarray(buffers["running_mean"], self.dtype))
        self.running_var = self.bk.asarray(np.asarray(buffers["running_var"], self.dtype))

    def _move_buffers(self):
        self.load_buffers({"running_mean": np.asarray(self.buffers()["running_mean"]),
                           "running_var": np.asarray(self.buffers()["running_var"])})

    def reset_parameters(self, rng, next_layer=None):
        self.gamma.data = np.ones(self.num_features)
        self.beta.data = np.zeros(self.num_features)
        self.load_buffers({"running_mean": np.zeros(self.num_features),
                           "running_var": np.ones(self.num_features)})

    def _forward(self, x):
        x = self._input(x, ndim=2, features=self.num_features)
        out = self.bk.empty(x.shape, self.dtype)
        if not self.training:
            self.bk.batchnorm_inference(x, self.gamma.value, self.beta.value, self.running_mean,
                                        self.running_var, self.eps, out)
            self._cache = None
            return out
        xhat = self.bk.empty(x.shape, self.dtype)
        invstd = self.bk.empty((self.num_features,), self.dtype)
        self.bk.batchnorm_forward(x, self.gamma.value, self.beta.value, out, xhat, invstd,
                                  self.running_mean, self.running_var, self.momentum, self.eps)
        self._cache = (xhat, invstd)
        return out

    def _backward(self, dout, need_dx=True):
        if self._cache is None:
            raise RuntimeError("BatchNorm1d: backward needs a forward pass in training mode")
        xhat, invstd = self._cache
        dy = self._grad_input(dout, xhat.shape)
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.batchnorm_backward(xhat, self.gamma.value, invstd, dy, dx,
                                   self.gamma.gradient, self.beta.gradient)
        return dx

    def get_config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}


# --- containers -------------------------------------------------------------------------

class _Container(Layer):
    """Shared by Sequential and Residual: children, naming, modes, moves."""

    def __init__(self, layers, backend, dtype):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__}: item {i} is a {type(layer).__name__}, not a fastnn layer")
        if dtype is None:
            dtype = layers[0].dtype if layers else "float32"
        super().__init__(backend or (layers[0].backend_name if layers else None), dtype)
        self.layers = layers
        for i, layer in enumerate(layers):
            layer.to(self.backend_name, self.dtype)
            for p in layer.parameters():   # "weight" of layer 2 becomes "2.weight"
                p.name = f"{self._prefix(i)}{p.name}"

    def _prefix(self, i):
        return f"{i}."

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def buffers(self):
        return {f"{self._prefix(i)}{k}": v for i, layer in enumerate(self.layers)
                for k, v in layer.buffers().items()}

    def load_buffers(self, buffers):
        for i, layer in enumerate(self.layers):
            prefix = self._prefix(i)
            mine = {k[len(prefix):]: v for k, v in buffers.items() if k.startswith(prefix)}
            if mine:
                layer.load_buffers(mine)

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def to(self, backend=None, dtype=None):
        super().to(backend, dtype)
        for layer in self.layers:
            layer.to(self.backend_name, self.dtype)
        return self

    def reset_parameters(self, rng, next_layer=None):
        for i, layer in enumerate(self.layers):
            following = self.layers[i + 1] if i + 1 < len(self.layers) else next_layer
            layer.reset_parameters(rng, following)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)


@register
class Sequential(_Container):
    """Layers applied one after another; backward runs them in reverse.

    ``Sequential(layers, backend=None, seed=None, dtype=None)``: ``backend`` defaults to
    the global default (see ``fastnn.backend``); ``seed`` re-initialises every layer's
    weights (and dropout masks) from one generator, so the same seed gives the same
    model on every backend; ``dtype`` (default: the first layer's, normally float32)
    converts every layer.
    """

    def __init__(self, layers, backend=None, seed=None, dtype=None):
        super().__init__(layers, backend or get_backend_name(), dtype)
        self.seed = seed
        if seed is not None:
            self.reset_parameters(np.random.default_rng(seed))

    def _forward(self, x):
        for layer in self.layers:
            x = layer._forward(x)
        return x

    def _backward(self, dout, need_dx=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i]._backward(dout, need_dx or i > 0)
        return dout

    def summary(self):
        """A table of layers, their output widths and parameter counts (as a string)."""
        rows, total = [], 0
        for i, layer in enumerate(self.layers):
            count = sum(p.size for p in layer.parameters())
            total += count
            rows.append(f"{i:>3}  {repr(layer):<60} {count:>10,}")
        head = f"Sequential on backend {self.backend_name!r}, dtype {self.dtype}"
        return "\n".join([head, *rows, f"{'total parameters':>64} {total:>10,}"])

    def get_config(self):
        return {"layers": [layer_config(layer) for layer in self.layers], "seed": self.seed}

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n  {inner}\n], backend={self.backend_name!r})"


@register
class Residual(_Container):
    """Skip connection: ``out = x + block(x)``; backward: ``dx = dout + block.backward(dout)``.

    ``block`` is a layer or a list of layers (made a Sequential); it must keep the
    shape of its input. The identity path lets gradients reach early layers of deep
    networks undiminished.
    """

    def __init__(self, block, backend=None, dtype=None):
        if isinstance(block, (list, tuple)):
            block = Sequential(list(block), backend=backend, dtype=dtype)
        super().__init__([block], backend, dtype)

    @property
    def block(self):
        return self.layers[0]

    def _prefix(self, i):
        return "block."

    def _forward(self, x):
        x = self._input(x)
        fx = self.block._forward(x)
        if tuple(fx.shape) != tuple(x.shape):
            raise ValueError(f"Residual: the block maps shape {tuple(x.shape)} to {tuple(fx.shape)}; "
                             "a residual block must keep the shape")
        out = self.bk.empty(x.shape, self.dtype)
        self.bk.add(x, fx, out)
        return out

    def _backward(self, dout, need_dx=True):
        dy = self.bk.asarray(dout, self.dtype)
        dblock = self.block._backward(dy, True)
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.add(dy, dblock, dx)
        return dx

    def get_config(self):
        return {"block": layer_config(self.block)}


def layer_config(layer):
    """{"type": class name, **constructor arguments}: enough to rebuild the layer."""
    return {"type": type(layer).__name__, **layer.get_config()}


def layer_from_config(config, backend=None, dtype="float32"):
    """Rebuild a layer (recursively) from :func:`layer_config`'s output."""
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"not a layer description: {config!r}")
    config = dict(config)
    kind = config.pop("type")
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYERS)}")
    if kind == "Sequential":
        layers = [layer_from_config(c, backend, dtype) for c in config.pop("layers")]
        return Sequential(layers, backend=backend, dtype=dtype, seed=None)
    if kind == "Residual":
        return Residual(layer_from_config(config["block"], backend, dtype), backend=backend, dtype=dtype)
    return LAYERS[kind](**config, backend=backend, dtype=dtype)
