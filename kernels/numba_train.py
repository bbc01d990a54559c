"""A whole training step of a Dense MLP in one compiled call: the ``mlp_train_step``
kernel of ``fused_contract.py``.

Forward, softmax cross-entropy, backward and the SGD / Adam update in a single Numba
call, with the same kernels as the layer-by-layer path (so it produces the same
numbers) but without one Python round trip per layer and kernel: for a small model
that overhead is most of the time. Which models qualify is decided in
``fastnn/fused.py``; this module sees arrays, activation codes and numbers only.
"""

import threading

import numpy as np
from numba import njit

from . import numba_util
from .numba_gemm import packed_parallel, packed_serial
from .numba_kernels import _sce_rows, adam_update, count_correct, dense_dz_db, sgd_update
from .numba_util import pieces_for

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
    in the arrays' dtype. Returns (summed loss, correct, status): status -1 when done,
    the row of the first label outside [0, classes), or -2 - l when an array of layer l
    (or the scratch) does not have the shape the step assumes (nothing is touched then:
    the code below indexes without bounds checks)."""
    n = x.shape[0]
    L = len(Ws)
    if labels.shape[0] != n or len(acts) != L or len(slopes) != L:
        return 0.0, 0, -2
    inputs = x.shape[1]
    for l in range(L):
        rows, cols = Ws[l].shape
        if (rows != inputs or dWs[l].shape != Ws[l].shape or S1W[l].shape != Ws[l].shape
                or S2W[l].shape != Ws[l].shape or bs[l].shape[0] != cols or dbs[l].shape[0] != cols
                or S1b[l].shape[0] != cols or S2b[l].shape[0] != cols
                or Hs[l].shape[0] < n or Hs[l].shape[1] != cols or Gs[l].shape != Hs[l].shape):
            return 0.0, 0, -2 - l
        inputs = cols
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


_scratch = threading.local()   # per Python thread: steps may run in several at once


def _buffers(dtype, n, widths):
    """Per-layer output and gradient scratch of n rows, made once per shape and thread."""
    cache = getattr(_scratch, "cache", None)
    if cache is None:
        cache = _scratch.cache = {}
    key = (np.dtype(dtype), n, widths)
    bufs = cache.get(key)
    if bufs is None:
        if len(cache) > 8:
            cache.clear()
        bufs = (tuple(np.empty((n, w), dtype) for w in widths), tuple(np.empty((n, w), dtype) for w in widths))
        cache[key] = bufs
    return bufs


def mlp_train_step(x, labels, weights, biases, weight_grads, bias_grads, states, acts, slopes,
                   adam, hyper):
    """See ``fused_contract.py``; arguments already checked there."""
    dtype = weights[0].dtype
    x = np.ascontiguousarray(x, dtype)
    if not x.flags.writeable:                  # one compiled type for every batch
        x = x.copy()
    labels = np.ascontiguousarray(labels)
    lr, momentum, weight_decay, nesterov, beta1, beta2, eps, step, decoupled = hyper
    if adam:
        values = (lr, 0, weight_decay, beta1, beta2, eps, 1 - beta1 ** step, 1 - beta2 ** step)
    else:
        values = (lr, momentum, weight_decay, 0, 0, 0, 1, 1)
    outs, grads = _buffers(dtype, len(x), tuple(w.shape[1] for w in weights))
    first_w, first_b, second_w, second_b = states
    total, correct, bad = train_step(
        x, labels, tuple(weights), tuple(biases), acts, slopes, outs, grads,
        tuple(weight_grads), tuple(bias_grads), tuple(first_w), tuple(first_b), tuple(second_w),
        tuple(second_b), ADAM_KIND if adam else SGD_KIND, np.array(values, dtype), bool(nesterov),
        bool(decoupled), numba_util.threads(), numba_util.PAR_MIN_FMAS, numba_util.PAR_MIN_ELEMS)
    if bad >= 0:
        raise ValueError(f"mlp_train_step: labels must lie in [0, {weights[-1].shape[1]}), got "
                         f"{labels[bad]} at row {bad}")
    if bad < -1:                               # only when called without the contract's check
        raise ValueError(f"mlp_train_step: an array of layer {-2 - bad} does not have the shape "
                         "of its weights (see fused_contract.py)")
    return total / len(x), int(correct)
