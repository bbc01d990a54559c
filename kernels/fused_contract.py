"""Optional fused kernels: whole pieces of training a backend may run in one compiled call.

A backend module that defines one of these gets it checked, like the kernels of
``contract.py``; one that does not leaves the work to the layer-by-layer path (the
same numbers, one kernel call per layer). What qualifies for a fused kernel (which
models, which activations fold into which Dense) is decided in ``fastnn/fused.py``;
the kernels only see arrays, activation codes and numbers.

``mlp_train_step(x, labels, weights, biases, weight_grads, bias_grads, states, acts,
slopes, adam, hyper) -> (mean loss, correct)``: forward, softmax cross-entropy,
backward and the optimizer update of L Dense layers.

* ``x`` (N, I_0) float, N >= 1, any strides; ``labels`` (N,) int64 in [0, O_{L-1}):
  the kernel itself scans them before it reads a row (ValueError for one outside), the
  one range check of the step.
* ``weights[l]`` (I_l, O_l) with I_{l+1} = O_l, ``biases[l]`` (O_l,): updated in place.
* ``weight_grads[l]``, ``bias_grads[l]``: overwritten with this step's gradients.
* ``states = (first_w, first_b, second_w, second_b)``, each L arrays shaped like the
  weights / biases: SGD's velocity (``second`` may be ``first`` itself) or Adam's m, v.
* ``acts`` (L,) int64 activation codes (``contract.ACTIVATIONS`` order), applied to
  each Dense's output; ``slopes`` (L,) float64 leaky-ReLU slopes.
* ``adam``: bool; ``hyper = (lr, momentum, weight_decay, nesterov, beta1, beta2, eps,
  step, decoupled)``: SGD reads the first four, Adam lr, weight_decay and the last five
  (``step`` >= 1, already counting this step).

Every array except ``x`` must be C-contiguous and writeable, of x's dtype, and no
updated array may share memory with another argument. The check remembers the last
tuples of parameter and state arrays it accepted, so a training loop that passes the
same tuples (``fastnn/fused.py`` does while the arrays stay the same) pays for the full
check once, not at every step.
"""

import numpy as np

from . import validate as V
from .contract import ACTIVATIONS

FUSED_KERNELS = {
    "mlp_train_step": "mlp_train_step(x, labels, weights, biases, weight_grads, bias_grads, states, "
                      "acts, slopes, adam, hyper) -> (mean loss, correct): a Dense MLP's whole "
                      "training step with softmax cross-entropy and SGD or Adam",
}

# (key, the arrays it names) of the last call checked in full: one tuple, replaced in one
# assignment, so Python threads calling at once never see a key without its arrays
_accepted = (None, None)


def _check_mlp_train_step(x, labels, weights, biases, weight_grads, bias_grads, states, acts,
                          slopes, adam, hyper):
    global _accepted
    k = "mlp_train_step"
    if type(x) is np.ndarray and x.ndim == 2 and x.dtype in V.FLOAT_DTYPES and x.size:
        n, features = x.shape                   # the common case, in a few attribute reads
    else:
        n, features = V.rows_and_columns(k, "x", x, min_rows=1)
    # The very same tuples as last time (a caller keeps them while its arrays stay the
    # same: tuples cannot change, so neither can the arrays in them): already checked in
    # full. They are kept alive below, so an id cannot be reused while it is remembered.
    # The kernels check the arrays' shapes again themselves, at the cost of a few integer
    # comparisons, in case one was reshaped in place since.
    key = (x.dtype, features, adam is True, id(weights), id(biases), id(weight_grads),
           id(bias_grads), id(states), id(acts), id(slopes))
    if key != _accepted[0]:
        _check_structure(k, weights, biases, weight_grads, bias_grads, states)
        count = len(weights)
        _check_parameters(k, features, x.dtype, (weights, biases, weight_grads, bias_grads, *states), adam)
        _check_codes(k, acts, slopes, count)
        _accepted = (key, (weights, biases, weight_grads, bias_grads, states, acts, slopes))
    if not (isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.shape == (n,)):
        raise TypeError(f"{k}: labels must be an int64 array of shape ({n},), got "
                        f"{getattr(labels, 'dtype', type(labels).__name__)} {getattr(labels, 'shape', '')}")
    V.flag(k, "adam", adam)
    if not isinstance(hyper, tuple) or len(hyper) != 9:
        raise TypeError(f"{k}: hyper must be a tuple (lr, momentum, weight_decay, nesterov, beta1, "
                        "beta2, eps, step, decoupled)")
    lr, momentum, weight_decay, nesterov, beta1, beta2, eps, step, decoupled = hyper
    for name, value in zip(_HYPER_REALS, (lr, momentum, weight_decay, beta1, beta2, eps)):
        if type(value) is not float:
            V.real(k, name, value)
    if type(nesterov) is not bool:
        V.flag(k, "nesterov", nesterov)
    if type(decoupled) is not bool:
        V.flag(k, "decoupled", decoupled)
    if adam:
        V.integer(k, "step", step, minimum=1)


def _check_structure(k, weights, biases, weight_grads, bias_grads, states):
    if not isinstance(weights, tuple) or not weights:
        raise TypeError(f"{k}: weights must be a non-empty tuple of arrays (one per layer), "
                        f"got {type(weights).__name__}")
    if not isinstance(states, tuple) or len(states) != 4:
        raise TypeError(f"{k}: states must be a tuple (first_w, first_b, second_w, second_b)")
    for name, group in zip(_GROUP_NAMES, (weights, biases, weight_grads, bias_grads, *states)):
        if not isinstance(group, tuple) or len(group) != len(weights):
            raise TypeError(f"{k}: {name} must be a tuple of {len(weights)} arrays (one per layer), "
                            f"got {type(group).__name__} {group!r:.60}")


_GROUP_NAMES = ("weights", "biases", "weight_grads", "bias_grads", "states[0]", "states[1]",
                "states[2]", "states[3]")
_HYPER_REALS = ("lr", "momentum", "weight_decay", "beta1", "beta2", "eps")


def _check_codes(k, acts, slopes, count):
    if not (isinstance(acts, np.ndarray) and acts.dtype == np.int64 and acts.shape == (count,)):
        raise TypeError(f"{k}: acts must be an int64 array of shape ({count},)")
    if acts.min() < 0 or acts.max() >= len(ACTIVATIONS):
        V.fail(k, f"acts must be activation codes in [0, {len(ACTIVATIONS)}), got {acts.tolist()}")
    if not (isinstance(slopes, np.ndarray) and slopes.dtype == np.float64 and slopes.shape == (count,)):
        raise TypeError(f"{k}: slopes must be a float64 array of shape ({count},)")


def _check_parameters(k, features, dtype, groups, adam):
    weights, biases, dws, dbs, w1, b1, w2, b2 = groups
    inputs = features
    for l, w in enumerate(weights):
        V.floating(k, f"weights[{l}]", w, dtype)
        V.ndim(k, f"weights[{l}]", w, 2)
        if w.shape[0] != inputs:
            V.fail(k, f"weights[{l}] has shape {tuple(w.shape)}: expected {inputs} rows "
                      f"({'x' if l == 0 else f'weights[{l - 1}]'} gives {inputs} features)")
        out = w.shape[1]
        for name, group, shape in (("weights", weights, w.shape), ("biases", biases, (out,)),
                                   ("weight_grads", dws, w.shape), ("bias_grads", dbs, (out,)),
                                   ("states[0]", w1, w.shape), ("states[1]", b1, (out,)),
                                   ("states[2]", w2, w.shape), ("states[3]", b2, (out,))):
            V.output(k, f"{name}[{l}]", group[l], tuple(shape), dtype)
        inputs = out
    names = ("weights", "biases", "weight_grads", "bias_grads", "states[0]", "states[1]",
             "states[2]", "states[3]")
    shared_state = not adam and all(a is b for a, b in zip(w1 + b1, w2 + b2))
    outputs = [(f"{name}[{l}]", a) for name, group in zip(names, groups)
               for l, a in enumerate(group) if not (shared_state and name.startswith(("states[2]", "states[3]")))]
    V.disjoint(k, outputs, [])


FUSED_CHECKS = {"mlp_train_step": _check_mlp_train_step}

assert FUSED_CHECKS.keys() == FUSED_KERNELS.keys()
