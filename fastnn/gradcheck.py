"""Numerical gradient checking: does backward agree with the definition of a derivative?

For each input element (and each parameter element) the central difference
``(f(v + h) - f(v - h)) / 2h`` approximates df/dv with error O(h^2); backward must
give the same numbers. Done in float64, where the agreement is ~1e-8 or better.
"""

import numpy as np

from .layers import Dropout, Layer, layer_config, layer_from_config
from .losses import Loss


def _rel_error(a, b, floor):
    """||a - b|| / max(||a|| + ||b||, floor): scale-free; ``floor`` keeps an array whose true
    gradient vanishes (e.g. a bias right before BatchNorm) from dividing noise by noise."""
    denom = max(np.linalg.norm(a) + np.linalg.norm(b), floor)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def _float64_copy(layer):
    """An independent float64 copy of ``layer`` on the same backend, same weights and mode."""
    copy = layer_from_config(layer_config(layer), backend=layer.backend_name, dtype="float64")
    for p, q in zip(layer.parameters(), copy.parameters()):
        q.data = np.asarray(p.data, dtype=np.float64)
    if layer.buffers():
        copy.load_buffers({k: np.asarray(v, np.float64) for k, v in layer.buffers().items()})
    copy.train(layer.training)
    return copy


def _layers(layer):
    yield layer
    for child in getattr(layer, "layers", ()):
        yield from _layers(child)


def gradcheck(obj, x, target=None, eps=1e-5, seed=0, max_elements=None):
    """Max relative error between analytic and numerical gradients (float64).

    * ``obj`` a layer or model: checks dx and every parameter gradient of the scalar
      ``L = sum(forward(x) * R)`` for a fixed random R (so backward gets dout = R).
      Dropout layers reuse one mask throughout, so the function is deterministic.
      The object itself is not modified: a float64 copy is checked.
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
        analytic = [np.asarray(model.backward(R), dtype=np.float64)]
        analytic += [np.array(p.grad, dtype=np.float64) for p in model.parameters()]
        params = model.parameters()
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
