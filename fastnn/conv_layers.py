"""Convolutional layers, NCHW as in PyTorch (same names, arguments and parameter layouts,
so weights compare one-to-one): Conv2d, MaxPool2d, AvgPool2d and BatchNorm2d.

Each checks its input (4-D, the channel count, a kernel that fits) with a message naming
the layer, the expected and the actual shape, before any kernel runs; the kernels are
those of ``kernels/conv_contract.py`` (BatchNorm2d reuses the batch-norm kernels on the
input seen as (N*H*W, C)). All are importable from :mod:`fastnn.layers`.
"""

import functools
import numbers

import numpy as np

from .layers import _SKIP_INIT, Layer, _positive_int, register
from .normalization import BatchNorm1d
from .parameter import Parameter

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d"]


def _pair(layer, name, value, minimum=1):
    """An int or a pair of ints >= ``minimum`` as a tuple (rows, columns): TypeError for a
    non-integer, ValueError for one too small, each naming the layer."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral)
                              for v in items):
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def _config_pair(pair):
    """The JSON form of a pair: one int when both are equal (as it is usually written)."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def _out_hw(layer, chw, kernel, stride, padding, input_text):
    """(OH, OW) for one sample's (C, H, W); ValueError if the kernel exceeds the padded input."""
    padded = (chw[1] + 2 * padding[0], chw[2] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        pad = f"padded input {padded}" if any(padding) else f"input {padded}"
        raise ValueError(f"{layer}: kernel {kernel} is larger than the {pad} of input shape {input_text}")
    return tuple((p - k) // s + 1 for p, k, s in zip(padded, kernel, stride))


def _image_shape(layer, shape, channels, batch=True):
    """Check a 4-D (N, C, H, W) shape (3-D (C, H, W) when not ``batch``); return (C, H, W)."""
    want = 4 if batch else 3
    text = f"(batch, {channels if channels else 'channels'}, height, width)"
    if len(shape) != want:
        got = tuple(shape) if batch else "(batch, " + ", ".join(map(str, shape)) + ")"
        raise ValueError(f"{layer}: expected a 4-D input {text}, got shape {got}")
    chw = tuple(int(d) for d in shape[-3:])
    if channels is not None and chw[0] != channels:
        got = tuple(shape) if batch else (("batch",) + chw)
        raise ValueError(f"{layer}: expected {channels} input channels {text}, got shape {got}")
    return chw


def _host_shape(x):
    return x if isinstance(x, np.ndarray) or hasattr(x, "__cuda_array_interface__") else np.asarray(x)


@register
class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in PyTorch): x (N, C, H, W) -> (N, O, OH, OW),
    ``OH = (H + 2 ph - KH) // sh + 1``.

    ``weight.data`` (out_channels, in_channels, KH, KW), ``bias.data`` (out_channels,) (no
    bias with ``bias=False``). ``kernel_size``, ``stride``, ``padding``: an int or a pair
    (rows, columns); padding is zeros. Weights start He-normal (std sqrt(2 / fan_in),
    fan_in = in_channels * KH * KW), drawn on the host from ``seed`` (or the
    ``Sequential``'s seed) so every backend starts from the same numbers; biases at zero.
    """

    _keeps_shape = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 seed=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size)
        self.stride = _pair("Conv2d", "stride", stride)
        self.padding = _pair("Conv2d", "padding", padding, minimum=0)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"Conv2d: bias must be True or False, got {bias!r}")
        self.use_bias = bool(bias)
        shapes = self._config_shapes(self.get_config())[0]
        self.weight = Parameter(np.zeros(shapes["weight"], self.dtype), "weight", self.backend_name)
        self.bias = Parameter(np.zeros(self.out_channels, self.dtype), "bias", self.backend_name) if bias else None
        if not _SKIP_INIT.get():
            self.reset_parameters(np.random.default_rng(seed))
        self._x = self._out_shape = None

    @classmethod
    def _config_shapes(cls, config):
        c = _positive_int("Conv2d", "in_channels", config["in_channels"])
        o = _positive_int("Conv2d", "out_channels", config["out_channels"])
        kh, kw = _pair("Conv2d", "kernel_size", config["kernel_size"])
        params = {"weight": (o, c, kh, kw)}
        if config.get("bias", True):
            params["bias"] = (o,)
        return params, {}

    def reset_parameters(self, rng, next_layer=None):
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.weight.data = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=tuple(self.weight.value.shape))
        if self.bias is not None:
            self.bias.data = np.zeros(self.out_channels)

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def output_shape(self, input_shape):
        """(in_channels, H, W) -> (out_channels, OH, OW); unknown stays unknown."""
        if input_shape is None:
            return None
        chw = _image_shape("Conv2d", input_shape, self.in_channels, batch=False)
        text = "(batch, " + ", ".join(map(str, chw)) + ")"
        return (self.out_channels,) + _out_hw("Conv2d", chw, self.kernel_size, self.stride, self.padding, text)

    def _forward(self, x):
        x = _host_shape(x)
        chw = _image_shape("Conv2d", x.shape, self.in_channels)
        oh, ow = _out_hw("Conv2d", chw, self.kernel_size, self.stride, self.padding, tuple(x.shape))
        x = self._input(x)
        out = self.bk.empty((x.shape[0], self.out_channels, oh, ow), self.dtype)
        bias = self.bias.value if self.bias is not None else self.bk.zeros((self.out_channels,), self.dtype)
        self.bk.conv2d_forward(x, self.weight.value, bias, out, self.stride, self.padding)
        self._x, self._out_shape = x, tuple(out.shape)
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, self._out_shape)
        dx = self.bk.empty(tuple(self._x.shape), self.dtype) if need_dx else None
        # dW = sum over windows of dy x-window; db = sum of dy over (N, OH, OW); dx = col2im(W^T dy).
        # They go into the grad slots (gradients accumulate); without a bias db is scratch.
        w, b = self.weight, self.bias
        dw = w.grad_slot()
        db = b.grad_slot() if b is not None else self.bk.empty((self.out_channels,), self.dtype)
        try:
            self.bk.conv2d_backward(self._x, w.value, dy, dx, dw, db, self.stride, self.padding)
        except BaseException:
            w._grad_failed(dw)
            if b is not None:
                b._grad_failed(db)
            raise
        w.grad_done(dw)
        if b is not None:
            b.grad_done(db)
        return dx

    def get_config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": _config_pair(self.kernel_size), "stride": _config_pair(self.stride),
                "padding": _config_pair(self.padding), "bias": self.use_bias}


class _Pool2d(Layer):
    """Shared by the pools: kernel and stride (default: the kernel), no padding."""

    _keeps_shape = False

    def __init__(self, kernel_size, stride=None, backend=None, dtype="float32"):
        super().__init__(backend, dtype)
        name = type(self).__name__
        self.kernel_size = _pair(name, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(name, "stride", stride)
        self._stride_given = stride is not None
        self._in_shape = self._out_shape = None

    def output_shape(self, input_shape):
        """(C, H, W) -> (C, OH, OW), OH = (H - KH) // sh + 1."""
        if input_shape is None:
            return None
        name = type(self).__name__
        chw = _image_shape(name, input_shape, None, batch=False)
        text = "(batch, " + ", ".join(map(str, chw)) + ")"
        return (chw[0],) + _out_hw(name, chw, self.kernel_size, self.stride, (0, 0), text)

    def _checked_input(self, x):
        x = _host_shape(x)
        name = type(self).__name__
        chw = _image_shape(name, x.shape, None)
        oh, ow = _out_hw(name, chw, self.kernel_size, self.stride, (0, 0), tuple(x.shape))
        x = self._input(x)
        self._in_shape, self._out_shape = tuple(x.shape), (x.shape[0], chw[0], oh, ow)
        return x

    def get_config(self):
        return {"kernel_size": _config_pair(self.kernel_size),
                "stride": _config_pair(self.stride) if self._stride_given else None}


@register
class MaxPool2d(_Pool2d):
    """Max over each KH x KW window: (N, C, H, W) -> (N, C, OH, OW); ``stride`` defaults to
    ``kernel_size``. The gradient of a window goes to its **first** maximum (row-major) on
    ties, to its first NaN if it holds one; overlapping windows add."""

    def _forward(self, x):
        x = self._checked_input(x)
        out = self.bk.empty(self._out_shape, self.dtype)
        self._argmax = self.bk.empty(self._out_shape, np.int64)
        self.bk.maxpool2d_forward(x, out, self._argmax, self.kernel_size, self.stride)
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, self._out_shape)
        dx = self.bk.empty(self._in_shape, self.dtype)
        self.bk.maxpool2d_backward(dy, self._argmax, dx)
        return dx


@register
class AvgPool2d(_Pool2d):
    """Mean over each KH x KW window: (N, C, H, W) -> (N, C, OH, OW); ``stride`` defaults
    to ``kernel_size``. Backward spreads dy / (KH KW) over the window."""

    def _forward(self, x):
        x = self._checked_input(x)
        out = self.bk.empty(self._out_shape, self.dtype)
        self.bk.avgpool2d_forward(x, out, self.kernel_size, self.stride)
        return out

    def _backward(self, dout, need_dx=True):
        dy = self._grad_input(dout, self._out_shape)
        dx = self.bk.empty(self._in_shape, self.dtype)
        self.bk.avgpool2d_backward(dy, dx, self.kernel_size, self.stride)
        return dx


@functools.lru_cache(maxsize=32)
def _channels_last(n, c, h, w, inverse):
    """Flat gather indices: NCHW -> NHWC (each NHWC element's NCHW position), or back."""
    if inverse:
        return np.arange(n * h * w * c, dtype=np.int64).reshape(n, h, w, c).transpose(0, 3, 1, 2).reshape(-1)
    return np.arange(n * c * h * w, dtype=np.int64).reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(-1)


@register
class BatchNorm2d(BatchNorm1d):
    """Batch normalisation per channel: (N, C, H, W) -> (N, C, H, W), statistics over
    (N, H, W) (the running variance unbiased over N*H*W values, as in PyTorch);
    ``gamma``, ``beta``, ``running_mean``, ``running_var`` (C,). Computed by BatchNorm1d's
    kernels on the input seen as (N*H*W, C) rows (a gather each way, any backend)."""

    def _in_features(self):
        return None

    def output_shape(self, input_shape):
        if input_shape is not None:
            _image_shape("BatchNorm2d", input_shape, self.num_features, batch=False)
        return input_shape

    def _permute(self, x, shape, inverse):
        out = self.bk.empty((int(np.prod(shape)), 1), self.dtype)
        self.bk.gather_rows(x.reshape(-1, 1), self.bk.asarray(_channels_last(*shape, inverse)), out)
        return out

    def _forward(self, x):
        x = _host_shape(x)
        _image_shape("BatchNorm2d", x.shape, self.num_features)
        x = self._input(x)
        shape = tuple(int(d) for d in x.shape)
        rows = self._permute(x, shape, False).reshape(-1, self.num_features)
        self._shape = shape
        out = super()._forward(rows)
        return self._permute(out, shape, True).reshape(shape)

    def _backward(self, dout, need_dx=True):
        if self._cache is None:
            raise RuntimeError("BatchNorm2d: backward needs a forward pass in training mode")
        dy = self._grad_input(dout, self._shape)
        rows = self._permute(dy, self._shape, False).reshape(-1, self.num_features)
        dx = super()._backward(rows, need_dx)
        return self._permute(dx, self._shape, True).reshape(self._shape)
