"""Core layers: Dense (and its weight initialisers), the element-wise activations,
Softmax, Dropout and Flatten.

Each follows the forward/backward pair described in :mod:`fastnn.layers`; all are
importable from there.
"""

import numpy as np

from .layers import _SKIP_INIT, Layer, _check_features, _positive_int, register
from .parameter import Parameter

__all__ = ["Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten", "Unflatten",
           "INITS", "he_normal", "xavier_uniform"]


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
        # chain rule: dz = dy * act'(z); dW = x^T dz; db = sum_n dz; dx = dz W^T.
        # dW and db are written into each parameter's grad slot: the gradient itself right
        # after zero_grad, else scratch that grad_done adds in (gradients accumulate).
        w, b = self.weight, self.bias
        dw, db = w.grad_slot(), b.grad_slot()
        try:
            self.bk.dense_backward(self._x, w.value, self._y, dy, dz, dx, dw, db,
                                   self.activation, self.alpha)
        except BaseException:
            w._grad_failed(dw)
            b._grad_failed(db)
            raise
        w.grad_done(dw)
        b.grad_done(db)
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
class Unflatten(Layer):
    """(N, d1*d2*...) -> (N, d1, d2, ...) for ``shape = (d1, d2, ...)``: flat rows back into
    images, e.g. ``Unflatten((1, 8, 8))`` before a ``Conv2d``; backward flattens ``dout``
    again. (PyTorch: ``nn.Unflatten(1, shape)``.)"""

    _keeps_shape = False

    def __init__(self, shape, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        if (not isinstance(shape, (tuple, list)) or not shape
                or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape)):
            raise ValueError(f"Unflatten: shape must be a non-empty tuple of positive integers, got {shape!r}")
        self.shape = tuple(int(d) for d in shape)
        self._n = None

    def output_shape(self, input_shape):
        return self.shape

    def _forward(self, x):
        x = self._input(x)
        size = int(np.prod(self.shape))
        if len(x.shape) != 2 or x.shape[1] != size:
            raise ValueError(f"Unflatten: expected input (batch, {size}) for shape {self.shape}, "
                             f"got {tuple(x.shape)}")
        self._n = x.shape[0]
        return x.reshape((x.shape[0],) + self.shape)

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, None if self._n is None else (self._n,) + self.shape)
        return dy.reshape(dy.shape[0], int(np.prod(self.shape)))

    def get_config(self):
        return {"shape": self.shape}
