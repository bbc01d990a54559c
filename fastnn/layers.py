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

import contextlib
import contextvars
import inspect
import reprlib

import numpy as np

from .backend import get_backend, get_backend_name
from .parameter import Parameter

__all__ = [
    "Layer", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten",
    "BatchNorm1d", "Standardize", "Sequential", "Residual", "LAYERS", "INITS", "MAX_DEPTH", "register",
    "layer_config", "layer_from_config", "config_shapes", "he_normal", "xavier_uniform",
]

LAYERS = {}
MAX_DEPTH = 64   # containers nested deeper than this are refused by layer_from_config/config_shapes

# Set while fastnn.load rebuilds a model whose weights are about to be read from the file:
# layers then keep their zero-filled arrays instead of drawing random initial weights.
_SKIP_INIT = contextvars.ContextVar("fastnn_skip_init", default=False)


@contextlib.contextmanager
def _without_init():
    token = _SKIP_INIT.set(True)
    try:
        yield
    finally:
        _SKIP_INIT.reset(token)


def register(cls):
    """Make a layer class loadable by name (save/load and configs)."""
    LAYERS[cls.__name__] = cls
    return cls


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _positive_int(layer, name, value):
    """``value`` as an int, or ValueError naming ``layer`` and ``name`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _same(a, b):
    """``a == b`` for config values, without taking True for 1 or failing on arrays."""
    number = (int, float)
    comparable = type(a) is type(b) or (isinstance(a, number) and isinstance(b, number)
                                        and not isinstance(a, bool) and not isinstance(b, bool))
    try:
        return comparable and bool(a == b)
    except (TypeError, ValueError):
        return False


def _format_args(cls, config):
    """Constructor arguments as source text: required ones positional, the others as
    ``name=value`` only when they differ from the default."""
    params = _init_params(cls)
    parts = []
    for name, value in config.items():
        param = params.get(name)
        if param is None:
            parts.append(f"{name}={value!r}")
        elif param.default is inspect.Parameter.empty:
            parts.append(repr(value))
        elif not _same(value, param.default):
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def _init_params(cls):
    """{name: inspect.Parameter} of ``cls.__init__`` minus self, backend, dtype and */**."""
    skip = {"self", "backend", "dtype"}
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


class Layer:
    """Base class. Subclasses implement ``_forward``/``_backward`` and ``get_config``."""

    _keeps_shape = True   # output shape == input shape (False for Dense, Flatten, ...)

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
        """Constructor arguments (JSON types) that rebuild this layer; see :func:`layer_config`."""
        return {}

    def output_shape(self, input_shape):
        """Shape of one sample's output for one sample's input shape (the batch axis left
        out; None when unknown). Raises ValueError for a shape the layer cannot take.
        Element-wise layers keep the shape."""
        return input_shape

    def _in_features(self):
        """Input width this layer requires (None: any)."""
        return None

    @classmethod
    def _config_shapes(cls, config):
        """({parameter name: shape}, {buffer name: shape}) of a layer built from ``config``
        (validated constructor arguments), without building it; None when only building
        tells. Layers without parameters or buffers need not override this."""
        if cls.parameters is Layer.parameters and cls.buffers is Layer.buffers:
            return {}, {}
        return None

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

    def _repr(self, top=True):
        return f"{type(self).__name__}({_format_args(type(self), self.get_config())})"

    def __repr__(self):
        """The constructor call, arguments left at their defaults omitted: ``Dense(64, 10)``."""
        return self._repr(True)


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

    _keeps_shape = False

    def __init__(self, in_features, out_features, activation="linear", alpha=0.01, init=None,
                 seed=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        in_features = _positive_int("Dense", "in_features", in_features)
        out_features = _positive_int("Dense", "out_features", out_features)
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
        if not _SKIP_INIT.get():
            self.reset_parameters(np.random.default_rng(seed))
        self._x = self._y = None

    @classmethod
    def _config_shapes(cls, config):
        n_in = _positive_int("Dense", "in_features", config["in_features"])
        n_out = _positive_int("Dense", "out_features", config["out_features"])
        return {"weight": (n_in, n_out), "bias": (n_out,)}, {}

    def _in_features(self):
        return self.in_features

    def output_shape(self, input_shape):
        """(in_features,) -> (out_features,)."""
        _check_features("Dense", input_shape, self.in_features)
        return (self.out_features,)

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


def _check_features(name, input_shape, features):
    """ValueError unless ``input_shape`` (one sample's; None = unknown) is (features,)."""
    if input_shape is not None and tuple(input_shape) != (features,):
        raise ValueError(f"{name}: expected input of shape (batch, {features}), "
                         f"got (batch, {', '.join(map(str, input_shape))})")


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

    def output_shape(self, input_shape):
        if input_shape is not None and len(input_shape) != 1:
            raise ValueError(f"Softmax: expected a 2-D input (batch, classes), got (batch, "
                             f"{', '.join(map(str, input_shape))})")
        return input_shape

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

    _keeps_shape = False

    def __init__(self, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        self._shape = None

    def output_shape(self, input_shape):
        """(d1, d2, ...) -> (d1*d2*...,); unknown stays unknown."""
        return None if input_shape is None else (int(np.prod(input_shape)),)

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
        num_features = _positive_int("BatchNorm1d", "num_features", num_features)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1], got {momentum!r}")
        if not 0.0 <= eps < np.inf:
            raise ValueError(f"BatchNorm1d: eps must be a finite number >= 0, got {eps!r}")
        self.num_features, self.momentum, self.eps = num_features, float(momentum), float(eps)
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

    @classmethod
    def _config_shapes(cls, config):
        d = _positive_int("BatchNorm1d", "num_features", config["num_features"])
        return {"gamma": (d,), "beta": (d,)}, {"running_mean": (d,), "running_var": (d,)}

    def _in_features(self):
        return self.num_features

    def output_shape(self, input_shape):
        _check_features("BatchNorm1d", input_shape, self.num_features)
        return input_shape

    def load_buffers(self, buffers):
        """Set ``running_mean`` and ``running_var`` (each (num_features,), finite; the
        variance >= 0). ValueError for anything else."""
        mean = _feature_vector("BatchNorm1d", buffers, "running_mean", self.num_features)
        var = _feature_vector("BatchNorm1d", buffers, "running_var", self.num_features)
        if np.any(var < 0):
            raise ValueError(f"BatchNorm1d: running_var must be >= 0, got a minimum of {float(var.min())!r}")
        self.running_mean = self.bk.asarray(np.asarray(mean, self.dtype))
        self.running_var = self.bk.asarray(np.asarray(var, self.dtype))

    def _move_buffers(self):   # as they are: a diverged run's NaN statistics move too
        host = self.buffers()
        self.running_mean = self.bk.asarray(np.asarray(host["running_mean"], self.dtype))
        self.running_var = self.bk.asarray(np.asarray(host["running_var"], self.dtype))

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


def _feature_vector(name, buffers, key, features):
    """``buffers[key]`` as a finite float64 vector of length ``features``, else ValueError."""
    if key not in buffers:
        raise ValueError(f"{name}: buffer {key!r} is missing (got {sorted(buffers)})")
    v = np.asarray(buffers[key])
    if v.dtype.kind not in "fiu" or v.shape != (features,):
        raise ValueError(f"{name}: {key} must be a numeric array of shape ({features},), "
                         f"got {v.dtype} {v.shape}")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: {key} must be finite, got {int(np.sum(~np.isfinite(v)))} NaN/Inf values")
    return v


@register
class Standardize(Layer):
    """Per-feature standardisation: ``out = (x - mean) / std``; x, out (N, D).

    ``mean`` and ``std`` (each (D,), finite, std > 0) are buffers, not parameters:
    saved and loaded with the model, never trained. Backward: ``dx = dout / std``.
    Put it first so a saved model takes raw inputs::

        scaler = fnn.data.Standardizer().fit(X_train)
        model = fnn.Sequential([scaler.as_layer(), fnn.Dense(64, 10)])

    (``Standardize.from_scaler(scaler)`` is the same.) ``Standardize(num_features=D)`` is
    the identity (mean 0, std 1) until :meth:`load_buffers` sets the statistics.
    """

    def __init__(self, mean=None, std=None, num_features=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        if mean is None and std is None:
            if num_features is None:
                raise ValueError("Standardize: expected mean and std (or num_features for an identity layer)")
            d = _positive_int("Standardize", "num_features", num_features)
            mean, std = np.zeros(d), np.ones(d)
        elif mean is None or std is None:
            given = "std" if mean is None else "mean"
            raise ValueError(f"Standardize: expected both mean and std, got only {given}")
        d = np.shape(mean)[0] if np.ndim(mean) == 1 else None
        if not d:
            raise ValueError(f"Standardize: mean must be a non-empty 1-D array, got shape {np.shape(mean)}")
        if num_features is not None and _positive_int("Standardize", "num_features", num_features) != d:
            raise ValueError(f"Standardize: num_features={num_features!r} but mean has {d} values")
        self.num_features = d
        self.load_buffers({"mean": mean, "std": std})
        self._n = None

    @classmethod
    def from_scaler(cls, scaler, backend=None, dtype="float32"):
        """The layer applying a fitted ``fastnn.data.Standardizer`` (or ``MinMaxScaler``)."""
        if not callable(getattr(scaler, "as_layer", None)):
            raise TypeError(f"Standardize.from_scaler: expected a fitted fastnn.data scaler, "
                            f"got {type(scaler).__name__}")
        return scaler.as_layer(backend=backend, dtype=dtype)

    @classmethod
    def _config_shapes(cls, config):
        if config.get("num_features") is not None:
            d = _positive_int("Standardize", "num_features", config["num_features"])
        elif isinstance(config.get("mean"), list) and config["mean"]:
            d = len(config["mean"])
        else:
            raise ValueError("Standardize: the configuration needs num_features (or a mean list)")
        return {}, {"mean": (d,), "std": (d,)}

    def buffers(self):
        return {"mean": self._mean.astype(self.dtype), "std": self._std.astype(self.dtype)}

    def load_buffers(self, buffers):
        """Set ``mean`` and ``std`` (each (num_features,), finite, std > 0); ValueError otherwise."""
        mean = _feature_vector("Standardize", buffers, "mean", self.num_features)
        std = _feature_vector("Standardize", buffers, "std", self.num_features)
        if not np.all(std > 0):
            raise ValueError(f"Standardize: std must be > 0, got a minimum of {float(std.min())!r}")
        # host copies, rounded to the layer's dtype as saved: a loaded layer computes the same
        with np.errstate(over="ignore", divide="ignore"):
            mean, std = mean.astype(self.dtype), std.astype(self.dtype)
            scale = (1.0 / std.astype(np.float64)).astype(self.dtype)
        if not (np.all(np.isfinite(mean)) and np.all(std > 0) and np.all(np.isfinite(scale))):
            raise ValueError(f"Standardize: mean, std and 1/std must be finite (std > 0) in {self.dtype}; "
                             f"got mean in "
                             f"[{float(mean.min())!r}, {float(mean.max())!r}], std in "
                             f"[{float(std.min())!r}, {float(std.max())!r}]")
        self._mean, self._std = mean, std
        self._move_buffers()

    def _move_buffers(self):
        d, bk = self.num_features, self.bk
        self.mean = bk.asarray(self._mean.astype(self.dtype))
        self.std = bk.asarray(self._std.astype(self.dtype))
        with np.errstate(over="ignore"):
            self._scale = bk.asarray((1.0 / self._std.astype(np.float64)).astype(self.dtype))
        self._zero, self._one = bk.zeros((d,), self.dtype), bk.asarray(np.ones(d, self.dtype))

    def _in_features(self):
        return self.num_features

    def output_shape(self, input_shape):
        _check_features("Standardize", input_shape, self.num_features)
        return input_shape

    # Both directions are batch norm's inference kernel: gamma (x - m) / sqrt(v + eps) + beta
    # with gamma = 1/std, v = 1, eps = 0, beta = 0 (and m = 0 for the gradient).
    def _forward(self, x):
        x = self._input(x, ndim=2, features=self.num_features)
        out = self.bk.empty(x.shape, self.dtype)
        self.bk.batchnorm_inference(x, self._scale, self._zero, self.mean, self._one, 0.0, out)
        self._n = x.shape[0]
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, None if self._n is None else (self._n, self.num_features))
        dx = self.bk.empty(dy.shape, self.dtype)
        self.bk.batchnorm_inference(dy, self._scale, self._zero, self._zero, self._one, 0.0, dx)
        return dx

    def get_config(self):
        return {"num_features": self.num_features}


# --- containers -------------------------------------------------------------------------

def _name_parameters(layer, prefix):
    """Name ``layer``'s parameters by their path: "weight" of layer 2 becomes "2.weight".
    Names are rebuilt from the names the layers gave them, so layers taken out of one
    container into another (``Sequential([scaler_layer, *model.layers])``) are named by
    their new place, not "1.0.weight"."""
    if isinstance(layer, _Container):
        for i, child in enumerate(layer.layers):
            _name_parameters(child, prefix + layer._prefix(i))
        return
    for p in layer.parameters():
        if not hasattr(p, "_layer_name"):
            p._layer_name = p.name
        p.name = prefix + p._layer_name

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
            _name_parameters(layer, self._prefix(i))

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

    def _in_features(self):
        for layer in self.layers:
            features = layer._in_features()
            if features is not None or not layer._keeps_shape:
                return features
        return None

    @property
    def _keeps_shape(self):
        return all(layer._keeps_shape for layer in self.layers)

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

    def output_shape(self, input_shape):
        for i, layer in enumerate(self.layers):
            try:
                input_shape = layer.output_shape(input_shape)
            except ValueError as exc:
                raise ValueError(f"Sequential layer {i}: {exc}") from None
        return input_shape

    def _backward(self, dout, need_dx=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i]._backward(dout, need_dx or i > 0)
        return dout

    def summary(self, input_shape=None):
        """The model as a table (a string), one row per layer, in aligned columns:

        * ``#``: where the layer sits: ``2``, or ``5.block.0`` inside a container (the
          prefix of its parameters' names); a container's layers follow it, indented;
        * ``layer``: its repr (a container: its type);
        * ``output shape``: ``(N, 10)``, N being the batch; ``?`` where unknown;
        * ``parameters``: learnable values (a container: all of its layers').

        A header names the backend, dtype and input shape; a footer gives the totals of
        parameters and of buffer values (e.g. BatchNorm1d running statistics).

        ``input_shape``: one sample's shape, without the batch axis (``64`` or ``(8, 8)``);
        default: the input width of the first layer that has one (a Dense's
        ``in_features``), unknown when a Flatten comes first. ValueError when a layer
        cannot take the shape that reaches it.
        """
        if input_shape is None:
            features = self._in_features()
            shape = None if features is None else (features,)
        else:
            dims = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
            shape = tuple(_positive_int("Sequential.summary", "each input_shape entry", d) for d in dims)
        rows = []
        _summary_rows(self, "", 0, shape, rows)
        table = [["#", "layer", "output shape", "parameters"]]
        table += [[name, text, _shape_text(out), f"{count:,}"] for name, text, out, count in rows]
        width = [max(len(row[c]) for row in table) for c in range(4)]
        lines = [f"Sequential on backend {self.backend_name!r}, dtype {self.dtype}, input {_shape_text(shape)}"]
        lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c:<{width[2]}}  {d:>{width[3]}}".rstrip()
                  for a, b, c, d in table]
        n_params = sum(p.size for p in self.parameters())
        n_buffers = sum(int(np.size(v)) for v in self.buffers().values())
        lines.append(f"total: {n_params:,} parameters, {n_buffers:,} buffer values")
        return "\n".join(lines)

    def get_config(self):
        """{"layers": [...], "seed": the integer seed, or None (also for a Generator seed)}."""
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            seed = None
        return {"layers": [layer_config(layer) for layer in self.layers],
                "seed": None if seed is None else int(seed)}

    def _repr(self, top=True):
        tail = f", backend={self.backend_name!r}" if top else ""
        if not self.layers:
            return f"Sequential([]{tail})"
        inner = ",\n".join(layer._repr(False) for layer in self.layers).replace("\n", "\n  ")
        return f"Sequential([\n  {inner}\n]{tail})"


def _shape_text(shape):
    return "?" if shape is None else f"(N, {', '.join(map(str, shape))})"


def _summary_rows(container, path, depth, shape, rows):
    """Append [name, text, output shape, parameter count] for each layer of ``container``
    (recursing into nested containers); returns the output shape."""
    for i, layer in enumerate(container.layers):
        name = f"{path}{container._prefix(i)}".rstrip(".")
        count = sum(p.size for p in layer.parameters())
        nested = isinstance(layer, _Container)
        row = [name, "  " * depth + (type(layer).__name__ if nested else repr(layer)), None, count]
        rows.append(row)
        if nested:
            _summary_rows(layer, name + ".", depth + 1, shape, rows)
        try:
            shape = row[2] = layer.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"Sequential.summary: layer {name}: {exc}") from None
    return shape


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

    def output_shape(self, input_shape):
        out = self.block.output_shape(input_shape)
        if None not in (out, input_shape) and tuple(out) != tuple(input_shape):
            raise ValueError(f"Residual: the block maps shape {_shape_text(input_shape)} to {_shape_text(out)}; "
                             "a residual block must keep the shape")
        return input_shape if input_shape is not None else out

    def _repr(self, top=True):
        return f"Residual({self.block._repr(False)})"

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


def _split_config(config, depth):
    """(class, arguments) of one layer description, its keys checked against the
    constructor; ValueError for anything malformed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"layer description nested deeper than {MAX_DEPTH} containers (fastnn.layers.MAX_DEPTH)")
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"not a layer description (a dict with a 'type'): {reprlib.repr(config)}")
    kind = config["type"]
    if not isinstance(kind, str) or kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYERS)}")
    cls = LAYERS[kind]
    args = {k: v for k, v in config.items() if k != "type"}
    params = _init_params(cls)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = [] if takes_any else sorted(map(str, set(args) - set(params)))
    if unknown:
        raise ValueError(f"{kind}: unknown configuration keys {unknown}; {kind} takes {sorted(params)}")
    missing = [name for name, p in params.items() if p.default is p.empty and name not in args]
    if missing:
        raise ValueError(f"{kind}: configuration lacks {missing}")
    return cls, kind, args


def _children(cls, args):
    """[(name prefix, description)] of a container's layers, as the built container names them."""
    if cls is Sequential:
        layers = args["layers"]
        if not isinstance(layers, list):
            raise ValueError("Sequential: 'layers' must be a list of layer descriptions, "
                             f"got {reprlib.repr(layers)}")
        seed = args.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Sequential: seed must be an integer or null, got {reprlib.repr(seed)}")
        return [(f"{i}.", c) for i, c in enumerate(layers)]
    return [("block.", args["block"])]


def layer_from_config(config, backend=None, dtype="float32", _depth=0):
    """Rebuild a layer (recursively) from :func:`layer_config`'s output.

    ValueError, naming the layer type, for a description that is not a dict with a
    known ``type``, has keys its constructor does not take (or lacks required ones),
    holds values the constructor refuses, or nests containers deeper than MAX_DEPTH.
    A Sequential's recorded seed is kept in its config but does not redraw weights.
    """
    cls, kind, args = _split_config(config, _depth)
    if cls is Sequential or cls is Residual:
        layers = [layer_from_config(c, backend, dtype, _depth + 1) for _, c in _children(cls, args)]
        if cls is Residual:
            return Residual(layers[0], backend=backend, dtype=dtype)
        model = Sequential(layers, backend=backend, dtype=dtype, seed=None)
        model.seed = args.get("seed")
        return model
    try:
        return cls(**args, backend=backend, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad {kind} configuration {reprlib.repr(args)}: {exc}") from exc


def config_shapes(config, _depth=0):
    """({parameter name: shape}, {buffer name: shape}) of the model that ``config`` (a
    :func:`layer_config` description) builds, named as the built model names them
    (``"0.weight"``, ``"3.running_var"``), without building it.

    Returns None when a layer type cannot tell without being built (a user layer that
    does not define ``_config_shapes``). ValueError for a malformed description, as
    :func:`layer_from_config`.
    """
    cls, kind, args = _split_config(config, _depth)
    if cls is Sequential or cls is Residual:
        params, buffers = {}, {}
        for prefix, child in _children(cls, args):
            shapes = config_shapes(child, _depth + 1)
            if shapes is None:
                return None
            params.update({prefix + k: v for k, v in shapes[0].items()})
            buffers.update({prefix + k: v for k, v in shapes[1].items()})
        return params, buffers
    return cls._config_shapes(args)
