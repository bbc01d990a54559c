"""The fused training step, planned here once for every backend.

:func:`plan_mlp` decides which (model, loss, optimizer) a backend may run as one
compiled call: a ``Sequential`` of ``Dense`` layers, each optionally followed by one
activation layer (ReLU, LeakyReLU, Sigmoid, Tanh) that folds into a linear Dense,
``SoftmaxCrossEntropy``, and ``SGD`` (momentum, Nesterov, weight decay), ``Adam`` or
``AdamW`` over exactly the model's parameters, none shared. :class:`FusedMLPStep`
hands the backend's ``mlp_train_step`` kernel (``kernels/fused_contract.py``) plain
arrays, activation codes and numbers; the kernel runs the same kernels in the same
order as the layer-by-layer path, so the numbers are the same.
"""

import dataclasses
import operator

import numpy as np

from .containers import Sequential
from .core_layers import Dense, LeakyReLU, ReLU, Sigmoid, Tanh
from .kernels.contract import ACTIVATIONS
from .losses import SoftmaxCrossEntropy
from .optim import SGD, Adam, AdamW

__all__ = ["MLPPlan", "FusedMLPStep", "plan_mlp", "fused_step"]

ACTIVATION_LAYERS = {ReLU: "relu", LeakyReLU: "leaky_relu", Sigmoid: "sigmoid", Tanh: "tanh"}
_CODE = {name: code for code, name in enumerate(ACTIVATIONS)}


@dataclasses.dataclass
class MLPPlan:
    """What one fused MLP step computes.

    ``denses``: the L Dense layers in order; ``acts`` (L,) int64: the activation code
    applied to each one's output (its own, or the folded activation layer's);
    ``slopes`` (L,) float64: leaky-ReLU slopes; ``adam``: Adam/AdamW, else SGD."""

    denses: list
    acts: np.ndarray
    slopes: np.ndarray
    adam: bool


def plan_mlp(model, loss, optimizer):
    """An :class:`MLPPlan` when the step can be fused, else None (the layer-by-layer path)."""
    if type(loss) is not SoftmaxCrossEntropy or type(optimizer) not in (SGD, Adam, AdamW):
        return None
    if type(model) is not Sequential or not len(model) or model.dtype not in (np.float32, np.float64):
        return None
    denses, acts, slopes = [], [], []
    for layer in model.layers:
        if type(layer) is Dense:
            denses.append(layer)
            acts.append(_CODE[layer.activation])
            slopes.append(layer.alpha)
        elif type(layer) in ACTIVATION_LAYERS and denses and acts[-1] == _CODE["linear"]:
            acts[-1] = _CODE[ACTIVATION_LAYERS[type(layer)]]     # folds into the Dense before it
            slopes[-1] = layer.alpha
        else:
            return None
    params = [p for d in denses for p in (d.weight, d.bias)]
    ids = [id(p) for p in params]
    if len(set(ids)) != len(ids) or sorted(ids) != sorted(map(id, optimizer.params)):
        return None          # shared parameters, or an optimizer over other parameters
    if any(p.dtype != model.dtype for p in params):
        return None
    return MLPPlan(denses, np.array(acts, np.int64), np.array(slopes, np.float64),
                   type(optimizer) is not SGD)


class FusedMLPStep:
    """``step(x, labels) -> (mean loss, number correct)``: one compiled training step.

    x: (N, in_features) in the model's dtype; labels: (N,) int64 class indices. Each
    call replaces the gradients with this batch's (as ``zero_grad()`` and one backward
    would), so it needs no ``zero_grad()`` before it."""

    def __init__(self, kernel, plan, optimizer):
        self.kernel, self.plan, self.optimizer = kernel, plan, optimizer
        self.weights = [d.weight for d in plan.denses]
        self.biases = [d.bias for d in plan.denses]
        self.params = self.weights + self.biases
        self.dtype = self.weights[0].dtype
        self._cached = None

    def _arrays(self):
        """(weights, biases, weight_grads, bias_grads, states) as tuples, the same tuple
        objects while every array stays the same (the kernel's check then costs nothing;
        the optimizer's state lookup costs more than a small step)."""
        values = [p.value for p in self.params]
        grads = [p.grad_to_replace() for p in self.params]
        cached = self._cached
        if cached is None or not (all(map(operator.is_, values, cached[0]))
                                  and all(map(operator.is_, grads, cached[1]))):
            L = len(self.weights)
            cached = self._cached = (values, grads, (tuple(values[:L]), tuple(values[L:]),
                                                     tuple(grads[:L]), tuple(grads[L:]),
                                                     self._lookup_states()))
        return cached[2]

    def _lookup_states(self):
        opt = self.optimizer
        if self.plan.adam:
            w = [opt.moments(p) for p in self.weights]
            b = [opt.moments(p) for p in self.biases]
            return (tuple(m for m, _ in w), tuple(m for m, _ in b),
                    tuple(v for _, v in w), tuple(v for _, v in b))
        w = tuple(opt.velocity(p) for p in self.weights)
        b = tuple(opt.velocity(p) for p in self.biases)
        return w, b, w, b

    def _hyper(self):
        opt = self.optimizer
        if self.plan.adam:
            return (opt.lr, 0.0, opt.weight_decay, False, opt.beta1, opt.beta2, opt.eps,
                    opt.step_count, opt.decoupled)
        return (opt.lr, opt.momentum, opt.weight_decay, opt.nesterov, 0.0, 0.0, 0.0, 0, False)

    def __call__(self, x, labels):
        if type(x) is not np.ndarray or x.dtype != self.dtype:
            x = np.ascontiguousarray(x, self.dtype)
        opt = self.optimizer
        weights, biases, weight_grads, bias_grads, states = self._arrays()
        if self.plan.adam:
            opt.step_count += 1
        try:
            return self.kernel(x, labels, weights, biases, weight_grads, bias_grads, states,
                               self.plan.acts, self.plan.slopes, self.plan.adam, self._hyper())
        except BaseException:
            if self.plan.adam:
                opt.step_count -= 1          # nothing was updated
            raise


def fused_step(model, loss, optimizer):
    """A :class:`FusedMLPStep` on the model's backend, or None where the backend has no
    ``mlp_train_step`` kernel or the combination does not qualify."""
    kernel = model.bk.mlp_train_step
    plan = plan_mlp(model, loss, optimizer) if kernel is not None else None
    return None if plan is None else FusedMLPStep(kernel, plan, optimizer)
