"""Normalisation layers: BatchNorm1d (batch statistics, learned scale and shift) and
Standardize (fixed per-feature statistics, e.g. a fitted scaler's).

Their statistics are buffers: saved and loaded with the model, never trained. Both are
importable from :mod:`fastnn.layers`.
"""

import numpy as np

from .layers import Layer, _check_features, _positive_int, register
from .parameter import Parameter

__all__ = ["BatchNorm1d", "Standardize"]


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
        name = type(self).__name__            # BatchNorm2d shares this constructor
        num_features = _positive_int(name, "num_features", num_features)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
        if not 0.0 <= eps < np.inf:
            raise ValueError(f"{name}: eps must be a finite number >= 0, got {eps!r}")
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
        d = _positive_int(cls.__name__, "num_features", config["num_features"])
        return {"gamma": (d,), "beta": (d,)}, {"running_mean": (d,), "running_var": (d,)}

    def _in_features(self):
        return self.num_features

    def output_shape(self, input_shape):
        _check_features("BatchNorm1d", input_shape, self.num_features)
        return input_shape

    def load_buffers(self, buffers):
        """Set ``running_mean`` and ``running_var`` (each (num_features,), finite; the
        variance >= 0). ValueError for anything else."""
        name = type(self).__name__
        mean = _feature_vector(name, buffers, "running_mean", self.num_features)
        var = _feature_vector(name, buffers, "running_var", self.num_features)
        if np.any(var < 0):
            raise ValueError(f"{name}: running_var must be >= 0, got a minimum of {float(var.min())!r}")
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
        gamma, beta = self.gamma, self.beta
        dgamma, dbeta = gamma.grad_slot(), beta.grad_slot()   # accumulated by grad_done
        try:
            self.bk.batchnorm_backward(xhat, gamma.value, invstd, dy, dx, dgamma, dbeta)
        except BaseException:
            gamma._grad_failed(dgamma)
            beta._grad_failed(dbeta)
            raise
        gamma.grad_done(dgamma)
        beta.grad_done(dbeta)
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


