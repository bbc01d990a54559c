"""Losses and weight penalties.

A loss is a pair like a layer: ``forward(output, target) -> float`` (the mean over
the batch) caches what ``backward() -> doutput`` (dL/d output, same shape as
``output``) needs. The backend is the output's: the loss runs wherever the model
ran.
"""

import numpy as np

from .backend import get_backend

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSE", "BinaryCrossEntropy", "LOSSES", "Penalty", "L1", "L2"]


def _is_array(a):
    return isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")


class Loss:
    """Base class: validates inputs, runs the kernels of the chosen backend."""

    def __init__(self, backend=None):
        self.backend_name = backend
        self._cache = None

    def _backend(self, output):
        # a device array selects the GPU backend; otherwise the configured/default one
        if self.backend_name is None and hasattr(output, "__cuda_array_interface__"):
            return get_backend("cuda")
        return get_backend(self.backend_name)

    def _output(self, output, ndim=None):
        name = type(self).__name__
        if not _is_array(output):
            output = np.asarray(output)
        if isinstance(output, np.ndarray) and output.dtype not in (np.float32, np.float64):
            if output.dtype.kind not in "fiu":
                raise TypeError(f"{name}: output must be a float array, got dtype {output.dtype}")
            output = output.astype(np.float64)
        if ndim is not None and len(output.shape) != ndim:
            raise ValueError(f"{name}: expected output of shape (batch, classes), got {tuple(output.shape)}")
        if output.shape[0] == 0:
            raise ValueError(f"{name}: empty batch")
        bk = self._backend(output)
        return bk, bk.asarray(output)

    def __call__(self, output, target):
        return self.forward(output, target)

    def backward(self):
        """dL/d(output) for the last forward, as a host array."""
        bk = self._cache[0] if self._cache else None
        return bk.to_host(self._backward()) if bk else self._backward()

    def correct(self, output):
        """How many rows of ``output`` the last forward's targets call right (None for a
        regression loss). ``output`` is the array given to that forward."""
        return None

    def get_config(self):
        return {}

    def __repr__(self):
        """``MSE()``, or ``MSE(backend='numba')`` when a backend was chosen."""
        args = {**self.get_config(), **({"backend": self.backend_name} if self.backend_name else {})}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused: takes raw **logits** (N, C) and integer
    class labels (N,) in [0, C).

    loss = mean_n( logsumexp(z_n) - z_n[label_n] ), computed with the max subtracted,
    so logits of 1e4 do not overflow. Its gradient is (softmax(z) - onehot) / N.
    """

    def forward(self, output, target):
        bk, z = self._output(output, ndim=2)
        labels = self.labels(target, z.shape[0], z.shape[1], bk)
        probs = bk.empty(z.shape, z.dtype)
        loss = bk.softmax_cross_entropy_forward(z, labels, probs)
        self._cache = (bk, probs, labels)
        return loss

    def _backward(self):
        if self._cache is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward called before forward")
        bk, probs, labels = self._cache
        dz = bk.empty(probs.shape, probs.dtype)
        bk.softmax_cross_entropy_backward(probs, labels, dz)
        return dz

    def correct(self, output):
        """Rows whose largest logit (the first of ties, or the first NaN) is the label."""
        bk, _, labels = self._cache
        return bk.count_correct(output, labels)

    @property
    def probs(self):
        """Softmax probabilities of the last forward (host array)."""
        return self._cache[0].to_host(self._cache[1])

    @staticmethod
    def labels(target, n, classes, bk=None):
        """Validate class labels: integers in [0, classes), shape (n,); returns int64 (on bk)."""
        if hasattr(target, "__cuda_array_interface__"):
            if target.dtype != np.int64 or tuple(target.shape) != (n,):
                raise ValueError(f"SoftmaxCrossEntropy: device labels must be int64 of shape ({n},)")
            return target   # range-checked on the host when uploaded
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            if t.dtype.kind == "f" and t.size and np.all(np.isfinite(t)) and np.all(t == np.round(t)):
                t = t.astype(np.int64)
            else:
                raise TypeError("SoftmaxCrossEntropy: labels must be integer class indices, got dtype "
                                f"{t.dtype}" + (" (one-hot rows? pass labels.argmax(1))" if t.ndim == 2 else ""))
        if t.shape != (n,):
            raise ValueError(f"SoftmaxCrossEntropy: labels must have shape ({n},) to match the "
                             f"output's batch, got {t.shape}")
        if n and (t.min() < 0 or t.max() >= classes):
            raise ValueError(f"SoftmaxCrossEntropy: labels must lie in [0, {classes}) for {classes} "
                             f"outputs, got values from {t.min()} to {t.max()}")
        t = t.astype(np.int64, copy=False)
        return bk.asarray(t) if bk is not None and bk.on_device else np.ascontiguousarray(t)


class _ElementwiseLoss(Loss):
    kernel = ""

    def forward(self, output, target):
        name = type(self).__name__
        bk, y = self._output(output)
        if not _is_array(target):
            target = np.asarray(target)
        if isinstance(target, np.ndarray):
            if target.dtype.kind not in "fiub":
                raise TypeError(f"{name}: target must be numeric, got dtype {target.dtype}")
            if target.shape != tuple(y.shape) and target.size == int(np.prod(y.shape)) and target.ndim == 1:
                target = target.reshape(y.shape)   # (N,) targets for an (N, 1) output
        if tuple(target.shape) != tuple(y.shape):
            raise ValueError(f"{name}: target shape {tuple(target.shape)} does not match the "
                             f"output shape {tuple(y.shape)}")
        t = bk.asarray(target, y.dtype)
        self._check_target(t)
        self._cache = (bk, y, t)
        return getattr(bk, f"{self.kernel}_forward")(y, t)

    def _check_target(self, t):
        pass

    def _backward(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        bk, y, t = self._cache
        dy = bk.empty(y.shape, y.dtype)
        getattr(bk, f"{self.kernel}_backward")(y, t, dy)
        return dy


class MSE(_ElementwiseLoss):
    """Mean squared error: mean over all elements of (y - t)^2; target of the output's shape.

    Gradient 2 (y - t) / y.size.
    """
    kernel = "mse"


class BinaryCrossEntropy(_ElementwiseLoss):
    """Binary cross-entropy on **logits** z with targets t in [0, 1] (same shape, or (N,)
    for an (N, 1) output): mean of max(z, 0) - z t + log(1 + exp(-|z|)), the stable form
    of -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)). Gradient (sigmoid(z) - t) / size.
    """
    kernel = "bce_with_logits"

    def correct(self, output):
        """Elements whose logit has the sign of the target (z > 0 for t > 0.5)."""
        bk, _, t = self._cache
        z, t = bk.to_host(output), bk.to_host(t)
        return int(np.count_nonzero((z > 0) == (t > 0.5)))

    def _check_target(self, t):
        if isinstance(t, np.ndarray) and t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"BinaryCrossEntropy: targets must lie in [0, 1], got values from "
                             f"{t.min()} to {t.max()}")


LOSSES = {cls.__name__: cls for cls in (SoftmaxCrossEntropy, MSE, BinaryCrossEntropy)}


# --- weight penalties -----------------------------------------------------------------

class Penalty:
    """Base class for weight penalties added to the loss: ``value(params)`` and
    ``add_grad(params)`` (adds the penalty's gradient into each ``p.gradient``).

    Applied to weight matrices only (parameters named ``*weight``), not biases or
    normalisation parameters, as is customary.
    """

    l1 = 0.0
    l2 = 0.0

    def __init__(self, strength):
        if not strength >= 0:
            raise ValueError(f"{type(self).__name__}: strength must be >= 0, got {strength!r}")
        self.strength = float(strength)

    @staticmethod
    def targets(params):
        return [p for p in params if p.name.endswith("weight")]

    def value(self, params):
        total = 0.0
        for p in self.targets(params):
            bk = get_backend(p.backend_name)
            total += self.l1 * bk.abs_sum(p.value) + 0.5 * self.l2 * bk.sum_squares(p.value)
        return total

    def add_grad(self, params):
        for p in self.targets(params):
            get_backend(p.backend_name).penalty_grad(p.value, p.gradient, self.l1, self.l2)

    def __repr__(self):
        return f"{type(self).__name__}({self.strength!r})"


class L1(Penalty):
    """strength * sum |w|: pushes weights to exactly zero (sparse models)."""

    def __init__(self, strength):
        super().__init__(strength)
        self.l1 = self.strength


class L2(Penalty):
    """strength / 2 * sum w^2: shrinks weights towards zero; gradient strength * w."""

    def __init__(self, strength):
        super().__init__(strength)
        self.l2 = self.strength
