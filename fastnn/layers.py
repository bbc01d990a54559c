"""Layers: forward caches what backward needs; backward applies the chain rule.

Every layer follows the same pair (as in CS231n):

* ``forward(x) -> out``: computes the output and keeps what backward will need;
* ``backward(dout) -> dx``: given dL/d(out), adds dL/d(parameter) to each parameter's
  gradient and returns dL/dx. Gradients accumulate until ``zero_grad()`` (on the model
  or the optimizer) resets them, as in PyTorch.

Layers never do arithmetic themselves: each calls a kernel of its backend
(``kernels/contract.py``). The public ``forward``/``backward`` take and return host
NumPy arrays; ``_forward``/``_backward`` keep the backend's own arrays (device
arrays on a GPU) and are what ``Sequential`` and ``fit`` chain together.

Shapes: ``N`` is the batch size throughout.

This module holds the ``Layer`` base class, the registry of layer types (``LAYERS``,
``register``) and ``layer_config``; the layers themselves live in ``core_layers``
(Dense, activations, Softmax, Dropout, Flatten), ``normalization`` (BatchNorm1d,
Standardize), ``conv_layers`` (Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d) and
``containers`` (Sequential, Residual); rebuilding a layer from its
description is in ``from_config`` (``layer_from_config``, ``config_shapes``,
``MAX_DEPTH``). Every one of those names can be imported from here.
"""

import contextlib
import contextvars
import inspect

import numpy as np

from .backend import get_backend, get_backend_name

__all__ = [
    "Layer", "Dense", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "Flatten", "Unflatten",
    "BatchNorm1d", "Standardize", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "Sequential",
    "Residual", "LAYERS", "INITS", "MAX_DEPTH", "register",
    "layer_config", "layer_from_config", "config_shapes", "he_normal", "xavier_uniform",
]

LAYERS = {}

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
        """dL/dx for dL/d(out) = ``dout``; adds to every parameter's ``.grad`` (gradients
        accumulate until :meth:`zero_grad`)."""
        return self.bk.to_host(self._backward(dout))

    __call__ = forward

    def parameters(self):
        """Learnable parameters, in a fixed order, each once (a Parameter shared by two
        layers is listed where it first appears)."""
        return []

    def zero_grad(self):
        """Reset the gradient of every parameter (of every layer inside a container) to
        zero; O(1) per parameter (see :meth:`Parameter.zero_grad`)."""
        for p in self.parameters():
            p.zero_grad()

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


def _check_features(name, input_shape, features):
    """ValueError unless ``input_shape`` (one sample's; None = unknown) is (features,)."""
    if input_shape is not None and tuple(input_shape) != (features,):
        raise ValueError(f"{name}: expected input of shape (batch, {features}), "
                         f"got (batch, {', '.join(map(str, input_shape))})")


def layer_config(layer):
    """{"type": class name, **constructor arguments}: enough to rebuild the layer."""
    return {"type": type(layer).__name__, **layer.get_config()}


# The layers, defined in their own modules (which import the names above), re-exported here.
from .core_layers import (INITS, Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid,  # noqa: E402
                          Softmax, Tanh, Unflatten, he_normal, xavier_uniform)
from .normalization import BatchNorm1d, Standardize  # noqa: E402
from .conv_layers import AvgPool2d, BatchNorm2d, Conv2d, MaxPool2d  # noqa: E402
from .containers import Residual, Sequential  # noqa: E402
from .from_config import MAX_DEPTH, config_shapes, layer_from_config  # noqa: E402
