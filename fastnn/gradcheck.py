"""Numerical gradient checking: does backward agree with the definition of a derivative?

For each input element (and each parameter element) the central difference
``(f(v + h) - f(v - h)) / 2h`` approximates df/dv with error O(h^2); backward must
give the same numbers. Done in float64, where the agreement is ~1e-8 or better.
"""

import copy
import types

import numpy as np

from .kernels import Backend
from .layers import Dropout, Layer
from .losses import Loss

__all__ = ["gradcheck"]


def _rel_error(a, b, floor):
    """||a - b|| / max(||a|| + ||b||, floor): scale-free; ``floor`` keeps an array whose true
    gradient vanishes (e.g. a bias right before BatchNorm) from dividing noise by noise."""
    denom = max(np.linalg.norm(a) + np.linalg.norm(b), floor)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def _keep_or_copy(value, bk, memo, seen):
    """Prepare ``copy.deepcopy``'s memo for what it cannot copy itself: backends and modules
    are kept, device arrays get a fresh device copy on ``bk`` (deepcopy would turn them into
    host arrays, or fail)."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (Backend, types.ModuleType)):
        memo[id(value)] = value
    elif not isinstance(value, np.ndarray) and hasattr(value, "__cuda_array_interface__"):
        memo[id(value)] = bk.asarray(bk.to_host(value))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _keep_or_copy(item, bk, memo, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _keep_or_copy(item, bk, memo, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        bk = getattr(value, "bk", bk) if isinstance(value, Layer) else bk
        for item in vars(value).values():
            _keep_or_copy(item, bk, memo, seen)


def _float64_copy(layer):
    """A float64 deep copy of ``layer`` (same backend, weights, buffers and mode).

    The copy is of the object itself, not rebuilt from its config: a Parameter that
    several layers share is shared in the copy too, so what is checked is the model as
    it computes."""
    memo = {}
    _keep_or_copy(layer, layer.bk, memo, set())
    clone = copy.deepcopy(layer, memo)
    if clone.dtype != np.float64 or any(p.dtype != np.float64 for p in clone.parameters()):
        clone.to(dtype="float64")
    return clone


def _distinct(params):
    """Parameters in order, each once (a user layer's ``parameters()`` may repeat one)."""
    seen = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


def _layers(layer):
    yield layer
    for child in getattr(layer, "layers", ()):
        yield from _layers(child)


def gradcheck(obj, x, target=None, eps=1e-5, seed=0, max_elements=None):
    """Max relative error between analytic and numerical gradients (float64).

    * ``obj`` a layer or model: checks dx and every parameter gradient of the scalar
      ``L = sum(forward(x) * R)`` for a fixed random R (so backward gets dout = R).
      Dropout layers reuse one mask throughout, so the function is deterministic.
      The object itself is not modified: a float64 deep copy of it is checked (so
      Parameters shared by several layers stay shared, and get the sum of their
      gradients, as in the model).
    * ``obj`` a loss: checks d loss.forward(x, target) / dx against ``loss.backward()``.

    ``max_elements`` limits how many elements per array are perturbed (sampled with
    ``seed``) to keep big layers quick. Returns the largest relative error
    ``||analytic - numeric|| / (||analytic|| + ||numeric||)`` over x and the parameters
    (the denominator is at least 1e-3 times the largest analytic gradient norm, so an
    array whose exact gradient is zero is judged on the scale of the whole check).
    """
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)

    if isinstance(obj, Loss):
        def f(v):
            return obj.forward(v, target)
        f(x)
        analytic = [np.asarray(obj.backward(), dtype=np.float64)]
        arrays = [x]
    elif isinstance(obj, Layer):
        model = _float64_copy(obj)
        for layer in _layers(model):
            if isinstance(layer, Dropout):
                layer.freeze_mask = True
        R = rng.standard_normal(np.shape(model.forward(x)))

        def f(_):
            return float(np.sum(model.forward(x) * R))
        model.forward(x)
        model.zero_grad()      # backward adds to the gradients: start from zero
        analytic = [np.asarray(model.backward(R), dtype=np.float64)]
        params = _distinct(model.parameters())
        analytic += [np.array(p.grad, dtype=np.float64) for p in params]
        arrays = [x] + [np.array(p.data) for p in params]
    else:
        raise TypeError(f"gradcheck: expected a fastnn layer, model or loss, got {type(obj).__name__}")

    worst = 0.0
    floor = 1e-3 * max(np.linalg.norm(g) for g in analytic)
    for k, (array, grad) in enumerate(zip(arrays, analytic)):
        numeric = np.zeros_like(array)
        flat = array.reshape(-1)
        chosen = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            chosen = rng.choice(flat.size, max_elements, replace=False)
        for i in chosen:
            old = flat[i]
            values = []
            for h in (eps, -eps):
                flat[i] = old + h
                if k > 0:   # perturbing a parameter: upload the changed array
                    params[k - 1].data = array
                values.append(f(x))
            flat[i] = old
            if k > 0:
                params[k - 1].data = array
            numeric.reshape(-1)[i] = (values[0] - values[1]) / (2 * eps)
        worst = max(worst, _rel_error(grad.reshape(-1)[chosen], numeric.reshape(-1)[chosen], floor))
    return worst
