"""CUDA kernels (numba-cuda) for every kernel of the contract except GEMM.

Only ``cuda_backend`` imports this module, and only once numba-cuda is known
to be installed. The host-side wrappers there choose launch sizes, convert
scalars and check nothing: the contract has already been checked.

Kernels are built once per float dtype by :func:`build`. Two reasons: shared
arrays need their dtype at compile time, and a float32 kernel must not quietly
compute in float64 (Numba types a Python literal such as ``1.0`` as float64,
so constants here are ``T(1)``; scalars arrive already cast to ``T``).

Launch shapes used by the wrappers:

* ``map1`` / ``map2`` / optimizer kernels: 1-D grid-stride loops over flat,
  C-ordered views (any length, any number of blocks).
* row kernels (softmax, losses, argmax): one thread per row; fine for the
  class counts of a classifier (tens to hundreds of columns).
* (N, D) element-wise kernels: one thread per element in C order.
* column kernels (bias gradient, batch norm): one thread per feature, looping
  down the batch; neighbouring threads read neighbouring addresses.
* reductions: block partial sums in float64 shared memory, then a one-block
  pass over the partials, so the result is deterministic (no atomics).
"""

import functools
import math

import numpy as np
from numba import cuda

from .contract import ACT_CODES

THREADS = 128          # most threads per block of 1-D launches (a power of two);
                       # small launches use fewer (a power of two >= 32)
MAX_BLOCKS = 1024      # grid-stride loops cover anything beyond this
REDUCE_BLOCKS = 128    # partial sums per reduction (one block sums them)

# activation codes understood by the fused GEMM epilogue and dense backward
ACTIVATION_CODES = ACT_CODES
LINEAR, RELU, LEAKY_RELU, SIGMOID, TANH = (
    ACT_CODES[name] for name in ("linear", "relu", "leaky_relu", "sigmoid", "tanh"))

# map1 ops: out[i] = f(x[i], s)
FILL, SCALE, RELU_FWD, LEAKY_FWD, SIGMOID_FWD, TANH_FWD = range(6)
# map2 ops: out[i] = f(a[i], b[i], s)
(MUL, ADD, RELU_BWD, LEAKY_BWD, SIGMOID_BWD, TANH_BWD, MSE_BWD,
 BCE_BWD) = range(8)
# reduction terms: sum over i of f(a[i], b[i]), accumulated in float64
SUM, SQUARES, ABS, SQUARED_DIFF, BCE = range(5)


@functools.cache
def build(dtype):
    """Every kernel of this module for one float dtype, as a namespace."""
    T = np.dtype(dtype).type
    ZERO, ONE, NAN = T(0), T(1), T(np.nan)

    @cuda.jit(device=True)
    def sqrt(v):
        """math.sqrt, NaN for a negative number (as on the GPU; the simulator would raise)."""
        return math.sqrt(v) if v >= ZERO else NAN

    @cuda.jit(device=True)
    def sigmoid(v):
        e = math.exp(-abs(v))          # exp of a non-positive number: never overflows
        return (ONE if v >= ZERO else e) / (ONE + e)

    @cuda.jit(device=True)
    def activate(v, act, slope):
        if act == RELU:
            return ZERO if v < ZERO else v
        if act == LEAKY_RELU:
            return v if v > ZERO else v * slope
        if act == SIGMOID:
            return sigmoid(v)
        if act == TANH:
            return math.tanh(v)
        return v

    @cuda.jit(device=True)
    def activation_grad(y, act, slope):
        """d act / d x written with the forward output y (see the contract)."""
        if act == RELU:
            return ONE if y > ZERO else ZERO
        if act == LEAKY_RELU:
            return ONE if y > ZERO else slope
        if act == SIGMOID:
            return y * (ONE - y)
        if act == TANH:
            return ONE - y * y
        return ONE

    @cuda.jit(device=True)
    def op1(kind, v, s):
        if kind == FILL:
            return s
        if kind == SCALE:
            return v * s
        if kind == RELU_FWD:
            return activate(v, RELU, s)
        if kind == LEAKY_FWD:
            return activate(v, LEAKY_RELU, s)
        if kind == SIGMOID_FWD:
            return sigmoid(v)
        return math.tanh(v)

    @cuda.jit(device=True)
    def op2(kind, a, b, s):
        if kind == MUL:
            return a * b
        if kind == ADD:
            return a + b
        if kind == RELU_BWD:           # a = y, b = dy
            return b * activation_grad(a, RELU, s)
        if kind == LEAKY_BWD:
            return b * activation_grad(a, LEAKY_RELU, s)
        if kind == SIGMOID_BWD:
            return b * activation_grad(a, SIGMOID, s)
        if kind == TANH_BWD:
            return b * activation_grad(a, TANH, s)
        if kind == MSE_BWD:            # s = 2 / size
            return (a - b) * s
        return (sigmoid(a) - b) / s    # BCE_BWD, s = size

    @cuda.jit(device=True)
    def term(kind, a, b):
        if kind == SQUARES:            # the contract: squares in float64
            x = np.float64(a)
            return x * x
        if kind == ABS:
            return np.float64(abs(a))
        if kind == SQUARED_DIFF:       # float64 before any arithmetic (the contract's rule)
            d = np.float64(a) - np.float64(b)
            return d * d
        if kind == BCE:                # max(z,0) - z t + log(1 + exp(-|z|)), stable, in float64
            z, t = np.float64(a), np.float64(b)
            return (z if z > 0.0 or z != z else 0.0) - z * t + math.log1p(math.exp(-abs(z)))
        return np.float64(a)

    # --- element-wise (flat views) ------------------------------------------

    @cuda.jit
    def map1(kind, x, out, s):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = op1(kind, x[i], s)

    @cuda.jit
    def map2(kind, a, b, out, s):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = op2(kind, a[i], b[i], s)

    @cuda.jit
    def penalty_grad(w, g, l1, l2):
        for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
            v, wi = g[i], w[i]
            if l1 != ZERO:             # two roundings, like g += l1 sign(w); g += l2 w
                v += l1 * (ONE if wi > ZERO else (-ONE if wi < ZERO else (wi if wi != wi else ZERO)))
            if l2 != ZERO:
                v += l2 * wi
            g[i] = v

    @cuda.jit
    def sgd_update(p, g, v, lr, momentum, weight_decay, nesterov):
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi = g[i]
            if weight_decay != ZERO:
                gi = gi + weight_decay * p[i]
            if momentum == ZERO:
                p[i] -= lr * gi
            else:
                vi = v[i] * momentum + gi
                v[i] = vi
                p[i] -= lr * (gi + momentum * vi if nesterov else vi)

    @cuda.jit
    def adam_update(p, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                    weight_decay, lr_wd, decoupled, correction1, correction2):
        # operation order follows the NumPy reference, so float32 rounding matches
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            gi, pi = g[i], p[i]
            if weight_decay != ZERO:
                if decoupled:
                    pi -= lr_wd * pi
                else:
                    gi = gi + weight_decay * pi
            mi = m[i] * beta1 + one_minus_beta1 * gi
            vi = v[i] * beta2 + one_minus_beta2 * gi * gi
            m[i], v[i] = mi, vi
            p[i] = pi - lr * (mi / correction1) / (sqrt(vi / correction2) + eps)

    # --- reductions -----------------------------------------------------------

    @cuda.jit
    def partial_sums(kind, a, b, partials):
        """partials[block] = sum of term(a[i], b[i]) over this block's share of i."""
        cache = cuda.shared.array(THREADS, np.float64)
        acc = 0.0
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            acc += term(kind, a[i], b[i])
        t = cuda.threadIdx.x
        cache[t] = acc
        cuda.syncthreads()
        half = cuda.blockDim.x // 2     # the block size is a power of two <= THREADS
        while half > 0:
            if t < half:
                cache[t] += cache[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            partials[cuda.blockIdx.x] = cache[0]

    # --- row kernels: one thread per row ----------------------------------------

    @cuda.jit
    def softmax_forward(x, out):
        r = cuda.grid(1)
        if r < x.shape[0]:
            c = x.shape[1]
            top = x[r, 0]
            for j in range(1, c):
                top = max(top, x[r, j])
            total = ZERO
            for j in range(c):
                e = math.exp(x[r, j] - top)
                out[r, j] = e
                total += e
            for j in range(c):
                out[r, j] /= total

    @cuda.jit
    def softmax_backward(y, dy, dx):
        r = cuda.grid(1)
        if r < y.shape[0]:
            dot = ZERO
            for j in range(y.shape[1]):
                dot += dy[r, j] * y[r, j]
            for j in range(y.shape[1]):
                dx[r, j] = y[r, j] * (dy[r, j] - dot)

    @cuda.jit
    def softmax_cross_entropy(logits, labels, probs, row_loss, bad_row):
        """probs = softmax(logits); row_loss[r] = logsumexp - (z[label] - max), the sums and
        the loss in float64. A label outside [0, C) gives NaN and sets bad_row[0] = r."""
        r = cuda.grid(1)
        if r < logits.shape[0]:
            c = logits.shape[1]
            top = logits[r, 0]
            for j in range(1, c):
                top = max(top, logits[r, j])
            total = 0.0
            for j in range(c):
                total += np.float64(math.exp(logits[r, j] - top))
            lse = math.log(total)
            tlse = T(lse)
            for j in range(c):
                probs[r, j] = math.exp((logits[r, j] - top) - tlse)
            label = labels[r]
            if 0 <= label < c:         # never read outside the row, whatever the label
                row_loss[r] = lse - (np.float64(logits[r, label]) - np.float64(top))
            else:
                row_loss[r] = math.nan
                bad_row[0] = r

    @cuda.jit
    def correct_rows(scores, labels, flags):
        """flags[r] = 1.0 when the argmax of row r (numpy.argmax's: the first NaN, else the
        first maximum) equals its label."""
        r = cuda.grid(1)
        if r < scores.shape[0]:
            best = 0
            for j in range(scores.shape[1]):
                v = scores[r, j]
                if v != v:
                    best = j
                    break
                if v > scores[r, best]:
                    best = j
            flags[r] = 1.0 if best == labels[r] else 0.0

    # --- 2-D element-wise: one thread per element, in C order ------------------

    @cuda.jit
    def softmax_cross_entropy_backward(probs, labels, dlogits, n, bad_row):
        """A label outside [0, C) gives a NaN row and sets bad_row[0] = r."""
        r, j = divmod(cuda.grid(1), probs.shape[1])
        if r < probs.shape[0]:
            label = labels[r]
            if 0 <= label < probs.shape[1]:
                v = probs[r, j]
                if j == label:
                    v -= ONE
                dlogits[r, j] = v / n
            else:
                dlogits[r, j] = math.nan
                bad_row[0] = r

    @cuda.jit
    def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps, out):
        r, j = divmod(cuda.grid(1), x.shape[1])
        if r < x.shape[0]:
            scale = gamma[j] / sqrt(running_var[j] + eps)
            out[r, j] = (x[r, j] - running_mean[j]) * scale + beta[j]

    # --- column kernels: one thread per feature ----------------------------------

    @cuda.jit
    def dense_bias_grad(y, dy, dz, db, act, slope):
        """dz = dy * act'(y) and db = column sums of dz (dz may be dy itself)."""
        j = cuda.grid(1)
        if j < dz.shape[1]:
            total = 0.0
            for r in range(dz.shape[0]):
                v = dy[r, j] * activation_grad(y[r, j], act, slope)
                dz[r, j] = v
                total += np.float64(v)
            db[j] = T(total)

    @cuda.jit
    def batchnorm_forward(x, gamma, beta, out, xhat, invstd, running_mean, running_var,
                          momentum, eps, unbias):
        j = cuda.grid(1)
        if j < x.shape[1]:
            n = x.shape[0]
            total = 0.0
            for r in range(n):
                total += np.float64(x[r, j])
            mean = T(total / n)
            total = 0.0
            for r in range(n):
                d = x[r, j] - mean
                total += np.float64(d * d)
            var = T(total / n)
            inv = ONE / sqrt(var + eps)
            invstd[j] = inv
            g, b = gamma[j], beta[j]
            for r in range(n):
                h = (x[r, j] - mean) * inv
                xhat[r, j] = h
                out[r, j] = h * g + b
            running_mean[j] = running_mean[j] * (ONE - momentum) + momentum * mean
            running_var[j] = running_var[j] * (ONE - momentum) + momentum * (var * unbias)

    @cuda.jit
    def batchnorm_backward(xhat, gamma, invstd, dy, dx, dgamma, dbeta, n):
        j = cuda.grid(1)
        if j < xhat.shape[1]:
            sum_dy, sum_dy_xhat = 0.0, 0.0
            for r in range(xhat.shape[0]):
                sum_dy += np.float64(dy[r, j])
                sum_dy_xhat += np.float64(dy[r, j] * xhat[r, j])
            db, dg = T(sum_dy), T(sum_dy_xhat)
            dbeta[j], dgamma[j] = db, dg
            scale = gamma[j] * invstd[j] / n
            for r in range(xhat.shape[0]):
                dx[r, j] = scale * (n * dy[r, j] - db - xhat[r, j] * dg)

    return _Kernels(locals())


class _Kernels:
    """The kernels of one dtype as attributes (device functions included)."""

    def __init__(self, names):
        self.__dict__.update({k: v for k, v in names.items() if not k.isupper() and k != "T"})
        self.dtype = np.dtype(names["T"])


# --- dtype-generic kernels (no constants, no shared memory) ----------------------

@cuda.jit
def copy_flat(src, dst):
    """dst[i] = src[i], converting the element type (used for casts)."""
    for i in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
        dst[i] = src[i]


@cuda.jit
def gather_rows(src, rows, dst):
    """dst[r, :] = src[rows[r], :]; rows already lie in [0, len(src))."""
    r, j = divmod(cuda.grid(1), dst.shape[1])
    if r < dst.shape[0]:
        dst[r, j] = src[rows[r], j]


@cuda.jit
def gather(src, rows, dst):
    """dst[r] = src[rows[r]] for 1-D arrays (labels)."""
    for r in range(cuda.grid(1), dst.shape[0], cuda.gridsize(1)):
        dst[r] = src[rows[r]]
