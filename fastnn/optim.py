"""Optimizers: turn gradients into parameter updates, in place, with the backend's kernels.

``opt = SGD(model.parameters(), lr=0.01, momentum=0.9)``; one step is
``opt.zero_grad()``, forward, ``model.backward`` (which adds to the gradients: they
accumulate until reset, as in PyTorch), then ``opt.step()``. Optimizer state
(velocities, moments) lives next to the parameters, on their backend.
"""

import math

import numpy as np

from .backend import get_backend

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "OPTIMIZERS", "global_grad_norm", "clip_grad_norm",
           "StepLR", "CosineLR"]


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state."""

    def __init__(self, params, lr):
        self.params = _distinct(params)   # a shared Parameter listed twice is updated once
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.state = {}

    def _buffers(self, p, count):
        """The state arrays of parameter p on its backend: zeros at first; when p has moved
        (``model.to(backend, dtype)``), the old state moved the same way, values kept."""
        where = (p.backend_name, p.dtype, p.shape)
        state = self.state.get(id(p))
        if state is None or state[0] != where:
            bk = get_backend(p.backend_name)
            if state is None or state[0][2] != p.shape:
                arrays = [bk.zeros(p.shape, p.dtype) for _ in range(count)]
            else:
                old = get_backend(state[0][0])
                arrays = [bk.asarray(np.asarray(old.to_host(a), dtype=p.dtype)) for a in state[1]]
            state = (where, arrays)
            self.state[id(p)] = state
        return state[1]

    def _hyper(self):
        """{name: value} of the settings shown by repr (subclasses add theirs)."""
        return {"lr": self.lr}

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"

    def step(self):
        raise NotImplementedError

    def zero_grad(self):
        """Reset every gradient to zero (O(1) each: see ``Parameter.zero_grad``). Call it
        once per step, before the backward, since backward adds to the gradients."""
        for p in self.params:
            p.zero_grad()


def _distinct(params):
    """``params`` as a list, each Parameter once (by identity), in order of first appearance."""
    seen = set()
    return [p for p in params if not (id(p) in seen or seen.add(id(p)))]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    Coupled form: ``g' = g + weight_decay * p``; ``v = momentum * v + g'``;
    ``p -= lr * v`` (Nesterov: ``p -= lr * (g' + momentum * v)``).
    """

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay!r}")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def velocity(self, p):
        """The momentum buffer of parameter p (a backend array of p's shape)."""
        return self._buffers(p, 1)[0]

    def step(self):
        for p in self.params:
            get_backend(p.backend_name).sgd_update(p.value, p.gradient, self.velocity(p), self.lr,
                                                   self.momentum, self.weight_decay, self.nesterov)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-parameter steps from bias-corrected first and second
    moment estimates. ``weight_decay`` here is the classic L2 form (added to the gradient);
    use :class:`AdamW` for decoupled weight decay.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas!r}")
        if weight_decay < 0 or eps <= 0:
            raise ValueError(f"{type(self).__name__}: need weight_decay >= 0 and eps > 0")
        self.beta1, self.beta2, self.eps, self.weight_decay = float(b1), float(b2), float(eps), float(weight_decay)
        self.step_count = 0

    def _hyper(self):
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.eps,
                "weight_decay": self.weight_decay, "step_count": self.step_count}

    def moments(self, p):
        """(m, v): first and second moment buffers of parameter p."""
        m, v = self._buffers(p, 2)
        return m, v

    def step(self):
        self.step_count += 1
        for p in self.params:
            m, v = self.moments(p)
            get_backend(p.backend_name).adam_update(p.value, p.gradient, m, v, self.lr, self.beta1, self.beta2,
                                                    self.eps, self.weight_decay, self.step_count, self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``p -= lr * wd * p``
    separately from the adaptive step. Default ``weight_decay=0.01``."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def global_grad_norm(params):
    """sqrt of the sum of squares of every gradient: the "global norm" (a Parameter listed
    twice counts once)."""
    return math.sqrt(sum(get_backend(p.backend_name).sum_squares(p.gradient) for p in _distinct(params)))


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so their global norm is at most ``max_norm``.

    Returns the norm before clipping. Keeps the update's direction, bounds its size:
    the standard cure for exploding gradients.
    """
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm!r}")
    params = _distinct(params)   # scaled once each
    norm = global_grad_norm(params)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for p in params:
            get_backend(p.backend_name).scale_(p.gradient, scale)
    return norm


# --- learning-rate schedules (used as fit callbacks) ----------------------------------

class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr = optimizer.lr

    def __repr__(self):
        return f"StepLR(step_size={self.step_size}, gamma={self.gamma}, base_lr={self.base_lr})"

    def on_epoch_end(self, epoch, logs):
        self.optimizer.lr = self.base_lr * self.gamma ** ((epoch + 1) // self.step_size)
        return False


class CosineLR:
    """Cosine annealing from the initial lr to ``min_lr`` over ``epochs`` epochs."""

    def __init__(self, optimizer, epochs, min_lr=0.0):
        self.optimizer, self.epochs, self.min_lr = optimizer, int(epochs), float(min_lr)
        self.base_lr = optimizer.lr

    def __repr__(self):
        return f"CosineLR(epochs={self.epochs}, min_lr={self.min_lr}, base_lr={self.base_lr})"

    def on_epoch_end(self, epoch, logs):
        t = min(epoch + 1, self.epochs) / self.epochs
        self.optimizer.lr = self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))
        return False
