"""A whole training step of a Dense MLP in one compiled call.

``make_train_step(model, loss, optimizer)`` accepts a ``Sequential`` of ``Dense``
layers (activation layers ReLU/LeakyReLU/Sigmoid/Tanh right after a linear Dense are
folded into it), ``SoftmaxCrossEntropy`` and ``SGD`` (momentum, Nesterov, weight
decay), ``Adam`` or ``AdamW``. It returns ``step(x, labels) -> (mean loss, correct)``
that runs forward, loss, backward and the update in a single Numba call, using the
same kernels as the layer-by-layer path (so it produces the same numbers) but
without one Python round trip per layer and kernel: for a small model that
overhead is most of the time. Anything else gets ``None`` (use the generic path).

Gradients land in the parameters' ``gradient`` arrays and the optimizer's own state
buffers are updated, so fused and generic steps can be mixed freely.
"""

import numpy as np
from numba import njit

from . import numba_util
from .numba_gemm import packed_parallel, packed_serial
from .numba_kernels import _sce_rows, adam_update, count_correct, dense_dz_db, sgd_update
from .numba_util import ACT_CODES, pieces_for

SGD_KIND, ADAM_KIND = 0, 1


@njit(cache=True)
def _matmul(a, trans_a, b, trans_b, out, bias, act, slope, threads, min_fmas):
    """The backend's GEMM choice (threads only for big products), from compiled code."""
    m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if threads > 1 and m * n * k >= min_fmas:
        packed_parallel(a, trans_a, b, trans_b, out, 1.0, 0.0, bias, act, slope, threads)
    else:
        packed_serial(a, trans_a, b, trans_b, out, 1.0, 0.0, bias, act, slope)


@njit(cache=True)
def _update(p, g, s1, s2, kind, hyper, nesterov, decoupled, threads, min_elems):
    """One optimizer update of a flattened parameter p with gradient g, state s1 (s2)."""
    count = pieces_for(p.shape[0], threads, min_elems)
    lr, mu, wd = hyper[0], hyper[1], hyper[2]
    if kind == SGD_KIND:
        sgd_update(p, g, s1, lr, mu, wd, nesterov, count)
    else:
        adam_update(p, g, s1, s2, lr, hyper[3], hyper[4], hyper[5], wd, hyper[6], hyper[7],
                    decoupled, count)


@njit(cache=True)
def train_step(x, labels, Ws, bs, acts, slopes, Hs, Gs, dWs, dbs, S1W, S1b, S2W, S2b,
               kind, hyper, nesterov, decoupled, threads, min_fmas, min_elems):
    """Forward, softmax cross-entropy, backward and update for an MLP of L Dense layers.

    x (N, I0); labels (N,) int64; Ws[l] (I_l, O_l); bs[l] (O_l,); acts/slopes (L,)
    activation codes and leaky slopes; Hs[l], Gs[l] (>= N, O_l) scratch for layer
    outputs and their gradients; dWs, dbs the gradient arrays; S1*/S2* optimizer state
    (velocity, or Adam's m and v); hyper = (lr, momentum, wd, beta1, beta2, eps, c1, c2)
    in the arrays' dtype. Returns (summed loss, correct, first bad label index or -1)."""
    n = x.shape[0]
    L = len(Ws)
    classes = Ws[L - 1].shape[1]
    for i in range(n):                         # never index with a bad label
        if labels[i] < 0 or labels[i] >= classes:
            return 0.0, 0, i
    # Runtime values, not literals: a literal 0/True/False would make Numba compile
    # extra copies of the whole GEMM for those constant arguments.
    linear = np.int64(0)
    no, yes = n < 0, n > 0                     # n >= 1 here
    h = x
    for l in range(L):
        out = Hs[l][:n]
        _matmul(h, no, Ws[l], no, out, bs[l], acts[l], slopes[l], threads, min_fmas)
        h = out
    probs = Gs[L - 1][:n]                      # probabilities, then (probs - onehot) / N in place
    total = _sce_rows(h, labels, probs, 0, n)
    correct = count_correct(h, labels)
    inv = probs.dtype.type(1.0 / n)
    for i in range(n):
        row = probs[i]
        for j in range(classes):
            row[j] *= inv
        row[labels[i]] -= inv
    for l in range(L - 1, -1, -1):
        dz = Gs[l][:n]                         # dy of layer l, turned into dz in place
        width = dz.shape[1]
        count = min(pieces_for(n * width, threads, min_elems), max(1, width // 16))
        dense_dz_db(Hs[l][:n], dz, dz, dbs[l], acts[l], dz.dtype.type(slopes[l]), count)
        inp = x if l == 0 else Hs[l - 1][:n]
        _matmul(inp, yes, dz, no, dWs[l], bs[l][:0], linear, 0.0, threads, min_fmas)
        if l > 0:
            _matmul(dz, no, Ws[l], yes, Gs[l - 1][:n], bs[l][:0], linear, 0.0, threads, min_fmas)
    for l in range(L):
        W = Ws[l]
        _update(W.reshape(-1), dWs[l].reshape(-1), S1W[l].reshape(-1), S2W[l].reshape(-1),
                kind, hyper, nesterov, decoupled, threads, min_elems)
        _update(bs[l], dbs[l], S1b[l], S2b[l], kind, hyper, nesterov, decoupled, threads, min_elems)
    return total, correct, -1


def _fold(model):
    """[(Dense, activation code, slope)] for a foldable Sequential, else None."""
    from fastnn.layers import Dense, LeakyReLU, ReLU, Sequential, Sigmoid, Tanh
    activation_layers = {ReLU: "relu", LeakyReLU: "leaky_relu", Sigmoid: "sigmoid", Tanh: "tanh"}
    if type(model) is not Sequential or not len(model):
        return None
    plan = []
    for layer in model.layers:
        if type(layer) is Dense:
            plan.append([layer, ACT_CODES[layer.activation], layer.alpha])
        elif type(layer) in activation_layers and plan and plan[-1][1] == ACT_CODES["linear"]:
            plan[-1][1] = ACT_CODES[activation_layers[type(layer)]]
            plan[-1][2] = layer.alpha
        else:
            return None
    return plan


class FusedStep:
    """``step(x, labels) -> (mean loss, number correct)``: one compiled training step.

    x: (N, in_features) in the model's dtype (converted if not); labels: (N,) integer
    class indices in [0, classes). Built by :func:`make_train_step`."""

    def __init__(self, model, plan, optimizer, kind):
        self.model, self.plan, self.optimizer, self.kind = model, plan, optimizer, kind
        self.dtype = model.dtype
        self.acts = np.array([code for _, code, _ in plan], np.int64)
        self.slopes = np.array([slope for _, _, slope in plan], np.float64)
        self.in_features = plan[0][0].in_features
        self._scratch = {}

    def _buffers(self, n):
        """Per-batch-size scratch (layer outputs and their gradients), made once."""
        if n not in self._scratch:
            if len(self._scratch) > 4:
                self._scratch.clear()
            widths = [dense.out_features for dense, _, _ in self.plan]
            self._scratch[n] = (tuple(np.empty((n, w), self.dtype) for w in widths),
                                tuple(np.empty((n, w), self.dtype) for w in widths))
        return self._scratch[n]

    def _state(self, params):
        opt = self.optimizer
        if self.kind == SGD_KIND:
            first = [opt.velocity(p) for p in params]
            second = first
        else:
            moments = [opt.moments(p) for p in params]
            first, second = [m for m, _ in moments], [v for _, v in moments]
        return first, second

    def _check(self, denses, s1w, s2w, s1b, s2b):
        """Every array the compiled step reads or writes has the shape, dtype and layout it
        will assume (it indexes them without bounds checks)."""
        names = ("velocity", "velocity") if self.kind == SGD_KIND else ("Adam m", "Adam v")
        for l, dense in enumerate(denses):
            w, b = (dense.in_features, dense.out_features), (dense.out_features,)
            arrays = [("weight", dense.weight.value, w), ("weight gradient", dense.weight.gradient, w),
                      ("bias", dense.bias.value, b), ("bias gradient", dense.bias.gradient, b),
                      (f"weight {names[0]}", s1w[l], w), (f"bias {names[0]}", s1b[l], b)]
            if self.kind == ADAM_KIND:
                arrays += [(f"weight {names[1]}", s2w[l], w), (f"bias {names[1]}", s2b[l], b)]
            for what, a, shape in arrays:
                if not (isinstance(a, np.ndarray) and a.dtype == self.dtype and a.shape == shape
                        and a.flags.c_contiguous and a.flags.writeable):
                    raise ValueError(
                        f"fused step: layer {l} {what} must be a writeable C-contiguous {self.dtype} "
                        f"array of shape {shape}, got {type(a).__name__} {getattr(a, 'dtype', '')} "
                        f"{getattr(a, 'shape', '')}")

    def _hyper(self):
        opt = self.optimizer
        if self.kind == SGD_KIND:
            values = (opt.lr, opt.momentum, opt.weight_decay, 0, 0, 0, 1, 1)
        else:
            opt.step_count += 1
            t = opt.step_count
            values = (opt.lr, 0, opt.weight_decay, opt.beta1, opt.beta2, opt.eps,
                      1 - opt.beta1 ** t, 1 - opt.beta2 ** t)
        return np.array(values, self.dtype)

    def __call__(self, x, labels):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.in_features or not len(x):
            raise ValueError(f"fused step: x must be a non-empty (batch, {self.in_features}) array, "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        x = np.ascontiguousarray(x, self.dtype)
        if not x.flags.writeable:               # one compiled type for every batch
            x = x.copy()
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu" or labels.shape != (len(x),):
            raise ValueError(f"fused step: labels must be ({len(x)},) integers, got "
                             f"{labels.dtype} {labels.shape}")
        labels = np.ascontiguousarray(labels, np.int64)
        denses = [dense for dense, _, _ in self.plan]
        weights = [d.weight for d in denses]
        biases = [d.bias for d in denses]
        s1w, s2w = self._state(weights)
        s1b, s2b = self._state(biases)
        self._check(denses, s1w, s2w, s1b, s2b)     # before the Adam step count moves
        hyper = self._hyper()
        outs, grads = self._buffers(len(x))
        opt = self.optimizer
        threads = numba_util.threads()
        total, correct, bad = train_step(
            x, labels, tuple(p.value for p in weights), tuple(p.value for p in biases),
            self.acts, self.slopes, outs, grads,
            tuple(p.gradient for p in weights), tuple(p.gradient for p in biases),
            tuple(s1w), tuple(s1b), tuple(s2w), tuple(s2b),
            self.kind, hyper, bool(getattr(opt, "nesterov", False)), bool(getattr(opt, "decoupled", False)),
            threads, numba_util.PAR_MIN_FMAS, numba_util.PAR_MIN_ELEMS)
        if bad >= 0:
            if self.kind == ADAM_KIND:
                opt.step_count -= 1              # nothing was updated
            raise ValueError(f"fused step: label {labels[bad]} at row {bad} is outside "
                             f"[0, {self.plan[-1][0].out_features})")
        return total / len(x), int(correct)


def make_train_step(model, loss, optimizer):
    """A :class:`FusedStep` for a supported (model, loss, optimizer), else None."""
    from fastnn.losses import SoftmaxCrossEntropy
    from fastnn.optim import SGD, Adam, AdamW
    if type(loss) is not SoftmaxCrossEntropy or getattr(model, "backend_name", None) != "numba":
        return None
    kinds = {SGD: SGD_KIND, Adam: ADAM_KIND, AdamW: ADAM_KIND}
    if type(optimizer) not in kinds:
        return None
    plan = _fold(model)
    if plan is None or model.dtype not in (np.float32, np.float64):
        return None
    params = {id(p) for dense, _, _ in plan for p in (dense.weight, dense.bias)}
    if {id(p) for p in optimizer.params} != params:
        return None                            # the optimizer must own exactly these parameters
    return FusedStep(model, plan, optimizer, kinds[type(optimizer)])
