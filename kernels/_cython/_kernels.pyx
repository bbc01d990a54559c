# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled kernels of the ``cython`` backend: typed-memoryview entry points to C.

Each function takes typed memoryviews of one precision (Cython picks the float32 or
float64 version from the arrays), checks the sizes the C code will trust, then
releases the GIL and calls the C kernel (``fastnn_c.h``). Element-wise kernels take
flat 1-D views; ``kernels/cython_backend.py`` adapts the contract's signatures (any
shape, any strides) to these. A size mismatch raises ValueError here, so C code never
reads or writes out of bounds even when called without the contract's checks.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int64_t

cimport numpy as cnp
import threading

import numpy as np

include "fastnn_c.pxi"

cnp.import_array()

ctypedef fused real:
    float
    double

SIMD_PATHS = ("generic", "avx2", "avx512")
ACTIVATIONS = {"linear": FNN_LINEAR, "relu": FNN_RELU, "leaky_relu": FNN_LEAKY_RELU,
               "sigmoid": FNN_SIGMOID, "tanh": FNN_TANH}
GEMM_VARIANTS = {"naive": FNN_GEMM_NAIVE, "loop_reorder": FNN_GEMM_REORDER,
                 "cache_blocked": FNN_GEMM_BLOCKED, "packed_simd": FNN_GEMM_PACKED,
                 "packed_simd_omp": FNN_GEMM_PARALLEL}


cdef inline int _same(Py_ssize_t got, Py_ssize_t want, str what) except -1:
    if got != want:
        raise ValueError(f"{what}: size {got} does not match {want}")
    return 0


cdef inline int _same2(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t want_rows, Py_ssize_t want_cols,
                       str what) except -1:
    if rows != want_rows or cols != want_cols:
        raise ValueError(f"{what}: shape ({rows}, {cols}) does not match ({want_rows}, {want_cols})")
    return 0


cdef inline int _act_code(int act) except -1:
    if act < FNN_LINEAR or act > FNN_TANH:
        raise ValueError(f"unknown activation code {act}")
    return act


# --- CPU, SIMD dispatch and threads -----------------------------------------------------

def cpu_supports(str path):
    """True if this CPU can run SIMD path ``path`` ("generic", "avx2", "avx512")."""
    return bool(fnn_cpu_supports(SIMD_PATHS.index(path)))


def simd_best():
    """The widest SIMD path this CPU supports."""
    return SIMD_PATHS[fnn_simd_best()]


def simd_select(str path):
    """Switch the GEMM micro-kernel to ``path``; ValueError if unknown or unsupported here."""
    if path not in SIMD_PATHS:
        raise ValueError(f"unknown SIMD path {path!r}; expected one of {SIMD_PATHS}")
    if fnn_simd_select(SIMD_PATHS.index(path)) != 0:
        raise ValueError(f"this CPU cannot run the {path} path (supported: "
                         f"{[p for p in SIMD_PATHS if fnn_cpu_supports(SIMD_PATHS.index(p))]})")


def simd_active():
    """The SIMD path the GEMM kernels use now."""
    return SIMD_PATHS[fnn_simd_active()]


def gemm_blocking(dtype, str path=None):
    """{mr, nr, mc, kc, nc} of the packed GEMM for ``dtype`` on ``path`` (default: active)."""
    cdef int mr, nr, mc, kc, nc
    fnn_gemm_blocking(FNN_F64 if np.dtype(dtype) == np.float64 else FNN_F32,
                      SIMD_PATHS.index(path) if path else -1, &mr, &nr, &mc, &kc, &nc)
    return {"mr": mr, "nr": nr, "mc": mc, "kc": kc, "nc": nc}


def openmp_enabled():
    """True if the extension was compiled with OpenMP."""
    return bool(fnn_openmp_enabled())


def set_num_threads(int n):
    """Threads used by the parallel kernels (OpenMP); n >= 1."""
    if n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, got {n}")
    fnn_set_threads(n)


def get_num_threads():
    """Threads the parallel kernels use."""
    return fnn_get_threads()


def threads_probe(int n):
    """Run one OpenMP region asking for n threads; the omp_get_thread_num() values seen."""
    if not 1 <= n <= 256:
        raise ValueError(f"threads_probe: n must be in [1, 256], got {n}")
    cdef int ids[256]
    cdef int team
    with nogil:
        team = fnn_threads_probe(n, ids, 256)
    return sorted(ids[i] for i in range(team) if ids[i] >= 0)


def gemm_last_workers():
    """Threads that computed tiles in the most recent packed GEMM (for tests)."""
    return fnn_gemm_last_workers()


def gemm_last_team():
    """Size of the OpenMP team that ran the most recent packed GEMM (for tests)."""
    return fnn_gemm_last_team()


# --- GEMM and the dense layer ----------------------------------------------------------------

cdef inline Py_ssize_t _stride(Py_ssize_t nbytes, Py_ssize_t itemsize, Py_ssize_t extent) except? -1:
    """A byte stride in elements. Along an axis of length 0 or 1 it is never used (and
    NumPy allows any value there), so it is 0."""
    if extent <= 1:
        return 0
    if nbytes % itemsize:
        raise ValueError(f"stride of {nbytes} bytes is not a multiple of the item size {itemsize}")
    return nbytes // itemsize


def gemm(int variant, const real[:, :] a, const real[:, :] b, real[:, ::1] out,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out = alpha op(a) op(b) + beta out with ladder rung ``variant`` (GEMM_VARIANTS).

    a, b: any strides (a transpose is a swap of strides, never a copy); out (M, N)
    C-contiguous. ValueError if the shapes do not chain.
    """
    cdef Py_ssize_t size = sizeof(real)
    cdef Py_ssize_t rsa = _stride(a.strides[0], size, a.shape[0]), csa = _stride(a.strides[1], size, a.shape[1])
    cdef Py_ssize_t rsb = _stride(b.strides[0], size, b.shape[0]), csb = _stride(b.strides[1], size, b.shape[1])
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1], kb = b.shape[0], n = b.shape[1]
    if trans_a:
        m, k, rsa, csa = k, m, csa, rsa
    if trans_b:
        kb, n, rsb, csb = n, kb, csb, rsb
    if variant < FNN_GEMM_NAIVE or variant > FNN_GEMM_PARALLEL:
        raise ValueError(f"unknown GEMM variant {variant}")
    if k != kb:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}), op(b) is ({kb}, {n})")
    if out.shape[0] != m or out.shape[1] != n:
        raise ValueError(f"gemm: out has shape ({out.shape[0]}, {out.shape[1]}), expected ({m}, {n})")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_gemm(dt, variant, m, n, k, alpha, &a[0, 0], rsa, csa, &b[0, 0], rsb, csb, beta,
                 &out[0, 0], n)


def dense_forward(const real[:, :] x, const real[:, :] w, const real[::1] b, real[:, ::1] out,
                  int act, double alpha):
    """out = act(x @ w + b); x (N, I) and w (I, O) any strides, b (O,), out (N, O)."""
    cdef Py_ssize_t size = sizeof(real), n = x.shape[0], i = x.shape[1], o = w.shape[1]
    _same(w.shape[0], i, "dense_forward: rows of w vs features of x")
    _same(b.shape[0], o, "dense_forward: bias length vs columns of w")
    _same2(out.shape[0], out.shape[1], n, o, "dense_forward: out")
    _act_code(act)
    cdef Py_ssize_t rsx = _stride(x.strides[0], size, n), csx = _stride(x.strides[1], size, i)
    cdef Py_ssize_t rsw = _stride(w.strides[0], size, i), csw = _stride(w.strides[1], size, o)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_dense_forward(dt, n, i, o, &x[0, 0], rsx, csx, &w[0, 0], rsw, csw, &b[0], &out[0, 0],
                          act, alpha)


def dense_backward(const real[:, :] x, const real[:, :] w, const real[:, ::1] y,
                   const real[:, ::1] dy, real[:, ::1] dz, real[:, ::1] dx, real[:, ::1] dw,
                   real[::1] db, int act, double alpha):
    """dz = dy act'(y); dw = x^T dz; db = sum(dz, 0); dx = dz w^T unless dx is None.

    x (N, I), w (I, O) any strides; y, dy, dz (N, O) (dz may be dy); dx (N, I); dw (I, O).
    """
    cdef Py_ssize_t size = sizeof(real), n = x.shape[0], i = x.shape[1], o = w.shape[1]
    _same(w.shape[0], i, "dense_backward: rows of w vs features of x")
    _same2(y.shape[0], y.shape[1], n, o, "dense_backward: y")
    _same2(dy.shape[0], dy.shape[1], n, o, "dense_backward: dy")
    _same2(dz.shape[0], dz.shape[1], n, o, "dense_backward: dz")
    _same2(dw.shape[0], dw.shape[1], i, o, "dense_backward: dw")
    _same(db.shape[0], o, "dense_backward: length of db")
    cdef void *dx_ptr = NULL
    if dx is not None:
        _same2(dx.shape[0], dx.shape[1], n, i, "dense_backward: dx")
        dx_ptr = &dx[0, 0]
    _act_code(act)
    cdef Py_ssize_t rsx = _stride(x.strides[0], size, n), csx = _stride(x.strides[1], size, i)
    cdef Py_ssize_t rsw = _stride(w.strides[0], size, i), csw = _stride(w.strides[1], size, o)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_dense_backward(dt, n, i, o, &x[0, 0], rsx, csx, &w[0, 0], rsw, csw, &y[0, 0],
                           &dy[0, 0], &dz[0, 0], dx_ptr, &dw[0, 0], &db[0], act, alpha)


# --- element-wise (flat views) -----------------------------------------------------------------

def act_forward(int act, const real[::1] x, real[::1] out, double alpha=0.0):
    """out = act(x) element-wise; x, out flat and of equal length."""
    _same(out.shape[0], x.shape[0], "act_forward: out vs x")
    _act_code(act)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_act_forward(dt, act, x.shape[0], &x[0], &out[0], alpha)


def act_backward(int act, const real[::1] y, const real[::1] dy, real[::1] dx, double alpha=0.0):
    """dx = dy act'(y) from the forward output y; flat, equal lengths."""
    _same(dy.shape[0], y.shape[0], "act_backward: dy vs y")
    _same(dx.shape[0], y.shape[0], "act_backward: dx vs y")
    _act_code(act)
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_act_backward(dt, act, y.shape[0], &y[0], &dy[0], &dx[0], alpha)


def mul(const real[::1] a, const real[::1] b, real[::1] out):
    """out = a * b element-wise (dropout forward and backward)."""
    _same(b.shape[0], a.shape[0], "mul: b vs a")
    _same(out.shape[0], a.shape[0], "mul: out vs a")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_mul(dt, a.shape[0], &a[0], &b[0], &out[0])


def add(const real[::1] a, const real[::1] b, real[::1] out):
    """out = a + b element-wise."""
    _same(b.shape[0], a.shape[0], "add: b vs a")
    _same(out.shape[0], a.shape[0], "add: out vs a")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_add(dt, a.shape[0], &a[0], &b[0], &out[0])


# --- softmax and losses ----------------------------------------------------------------------------

def softmax_forward(const real[:, ::1] x, real[:, ::1] out):
    """Row-wise softmax, max-subtracted; x, out (N, C)."""
    _same2(out.shape[0], out.shape[1], x.shape[0], x.shape[1], "softmax_forward: out")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_softmax_forward(dt, x.shape[0], x.shape[1], &x[0, 0], &out[0, 0])


def softmax_backward(const real[:, ::1] y, const real[:, ::1] dy, real[:, ::1] dx):
    """dx = y (dy - sum(dy y, 1)); (N, C)."""
    _same2(dy.shape[0], dy.shape[1], y.shape[0], y.shape[1], "softmax_backward: dy")
    _same2(dx.shape[0], dx.shape[1], y.shape[0], y.shape[1], "softmax_backward: dx")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_softmax_backward(dt, y.shape[0], y.shape[1], &y[0, 0], &dy[0, 0], &dx[0, 0])


def softmax_cross_entropy_forward(const real[:, ::1] logits, const int64_t[::1] labels,
                                  real[:, ::1] probs):
    """probs = softmax(logits); returns the mean cross-entropy (one fused pass per row)."""
    _same(labels.shape[0], logits.shape[0], "softmax_cross_entropy_forward: labels vs rows")
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"softmax_cross_entropy_forward: logits of shape ({logits.shape[0]}, "
                         f"{logits.shape[1]}) have no mean loss (need N, C >= 1)")
    _same2(probs.shape[0], probs.shape[1], logits.shape[0], logits.shape[1],
           "softmax_cross_entropy_forward: probs")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef double loss = 0.0
    cdef int rc
    with nogil:
        rc = fnn_sce_forward(dt, logits.shape[0], logits.shape[1], &logits[0, 0], &labels[0],
                             &probs[0, 0], &loss)
    if rc:
        raise ValueError(f"softmax_cross_entropy_forward: labels must lie in [0, {logits.shape[1]})")
    return loss


def softmax_cross_entropy_backward(const real[:, ::1] probs, const int64_t[::1] labels,
                                   real[:, ::1] dlogits):
    """dlogits = (probs - onehot(labels)) / N."""
    _same(labels.shape[0], probs.shape[0], "softmax_cross_entropy_backward: labels vs rows")
    _same2(dlogits.shape[0], dlogits.shape[1], probs.shape[0], probs.shape[1],
           "softmax_cross_entropy_backward: dlogits")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef int rc
    with nogil:
        rc = fnn_sce_backward(dt, probs.shape[0], probs.shape[1], &probs[0, 0], &labels[0],
                              &dlogits[0, 0])
    if rc:
        raise ValueError(f"softmax_cross_entropy_backward: labels must lie in [0, {probs.shape[1]})")


def mse_forward(const real[::1] y, const real[::1] t):
    """mean((y - t)^2) accumulated in float64; flat, non-empty."""
    _same(t.shape[0], y.shape[0], "mse_forward: t vs y")
    if y.shape[0] == 0:
        raise ValueError("mse_forward: empty input")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef double loss
    with nogil:
        loss = fnn_mse_forward(dt, y.shape[0], &y[0], &t[0])
    return loss


def mse_backward(const real[::1] y, const real[::1] t, real[::1] dy):
    """dy = 2 (y - t) / y.size."""
    _same(t.shape[0], y.shape[0], "mse_backward: t vs y")
    _same(dy.shape[0], y.shape[0], "mse_backward: dy vs y")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_mse_backward(dt, y.shape[0], &y[0], &t[0], &dy[0])


def bce_with_logits_forward(const real[::1] z, const real[::1] t):
    """mean(max(z, 0) - z t + log1p(exp(-|z|))) accumulated in float64; flat, non-empty."""
    _same(t.shape[0], z.shape[0], "bce_with_logits_forward: t vs z")
    if z.shape[0] == 0:
        raise ValueError("bce_with_logits_forward: empty input")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef double loss
    with nogil:
        loss = fnn_bce_forward(dt, z.shape[0], &z[0], &t[0])
    return loss


def bce_with_logits_backward(const real[::1] z, const real[::1] t, real[::1] dz):
    """dz = (sigmoid(z) - t) / z.size."""
    _same(t.shape[0], z.shape[0], "bce_with_logits_backward: t vs z")
    _same(dz.shape[0], z.shape[0], "bce_with_logits_backward: dz vs z")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_bce_backward(dt, z.shape[0], &z[0], &t[0], &dz[0])


def count_correct(const real[:, ::1] scores, const int64_t[::1] labels):
    """Rows whose first argmax equals the label."""
    _same(labels.shape[0], scores.shape[0], "count_correct: labels vs rows")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef fnn_idx correct
    if scores.shape[1] == 0:
        raise ValueError("count_correct: scores have 0 columns, so no row has an argmax")
    with nogil:
        correct = fnn_count_correct(dt, scores.shape[0], scores.shape[1], &scores[0, 0], &labels[0])
    return correct


# --- batch norm -----------------------------------------------------------------------------------

def batchnorm_forward(const real[:, ::1] x, const real[::1] gamma, const real[::1] beta,
                      real[:, ::1] out, real[:, ::1] xhat, real[::1] invstd,
                      real[::1] running_mean, real[::1] running_var, double momentum, double eps):
    """Training-mode batch norm over rows; x, out, xhat (N, D), the rest (D,)."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    if n < 1:
        raise ValueError("batchnorm_forward: needs at least one row")
    _same2(out.shape[0], out.shape[1], n, d, "batchnorm_forward: out")
    _same2(xhat.shape[0], xhat.shape[1], n, d, "batchnorm_forward: xhat")
    _same(gamma.shape[0], d, "batchnorm_forward: gamma")
    _same(beta.shape[0], d, "batchnorm_forward: beta")
    _same(invstd.shape[0], d, "batchnorm_forward: invstd")
    _same(running_mean.shape[0], d, "batchnorm_forward: running_mean")
    _same(running_var.shape[0], d, "batchnorm_forward: running_var")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_batchnorm_forward(dt, n, d, &x[0, 0], &gamma[0], &beta[0], &out[0, 0], &xhat[0, 0],
                              &invstd[0], &running_mean[0], &running_var[0], momentum, eps)


def batchnorm_inference(const real[:, ::1] x, const real[::1] gamma, const real[::1] beta,
                        const real[::1] running_mean, const real[::1] running_var, double eps,
                        real[:, ::1] out):
    """out = gamma (x - running_mean) / sqrt(running_var + eps) + beta."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1]
    _same2(out.shape[0], out.shape[1], n, d, "batchnorm_inference: out")
    _same(gamma.shape[0], d, "batchnorm_inference: gamma")
    _same(beta.shape[0], d, "batchnorm_inference: beta")
    _same(running_mean.shape[0], d, "batchnorm_inference: running_mean")
    _same(running_var.shape[0], d, "batchnorm_inference: running_var")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_batchnorm_inference(dt, n, d, &x[0, 0], &gamma[0], &beta[0], &running_mean[0],
                                &running_var[0], eps, &out[0, 0])


def batchnorm_backward(const real[:, ::1] xhat, const real[::1] gamma, const real[::1] invstd,
                       const real[:, ::1] dy, real[:, ::1] dx, real[::1] dgamma, real[::1] dbeta):
    """dbeta, dgamma (D,) and dx (N, D) of training-mode batch norm."""
    cdef Py_ssize_t n = xhat.shape[0], d = xhat.shape[1]
    _same2(dy.shape[0], dy.shape[1], n, d, "batchnorm_backward: dy")
    _same2(dx.shape[0], dx.shape[1], n, d, "batchnorm_backward: dx")
    _same(gamma.shape[0], d, "batchnorm_backward: gamma")
    _same(invstd.shape[0], d, "batchnorm_backward: invstd")
    _same(dgamma.shape[0], d, "batchnorm_backward: dgamma")
    _same(dbeta.shape[0], d, "batchnorm_backward: dbeta")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_batchnorm_backward(dt, n, d, &xhat[0, 0], &gamma[0], &invstd[0], &dy[0, 0], &dx[0, 0],
                               &dgamma[0], &dbeta[0])


# --- optimizers and reductions (flat views) ------------------------------------------------------------

def sgd_update(real[::1] p, const real[::1] g, real[::1] v, double lr, double momentum,
               double weight_decay, bint nesterov):
    """In place: g' = g + wd p; v = mu v + g'; p -= lr (g' + mu v if nesterov else v)."""
    _same(g.shape[0], p.shape[0], "sgd_update: g vs p")
    _same(v.shape[0], p.shape[0], "sgd_update: v vs p")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_sgd_update(dt, p.shape[0], &p[0], &g[0], &v[0], lr, momentum, weight_decay, nesterov)


def adam_update(real[::1] p, const real[::1] g, real[::1] m, real[::1] v, double lr, double beta1,
                double beta2, double eps, double weight_decay, long step, bint decoupled):
    """In place Adam / AdamW step number ``step`` (>= 1)."""
    _same(g.shape[0], p.shape[0], "adam_update: g vs p")
    _same(m.shape[0], p.shape[0], "adam_update: m vs p")
    _same(v.shape[0], p.shape[0], "adam_update: v vs p")
    if step < 1:
        raise ValueError(f"adam_update: step must be >= 1, got {step}")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_adam_update(dt, p.shape[0], &p[0], &g[0], &m[0], &v[0], lr, beta1, beta2, eps,
                        weight_decay, step, decoupled)


def sum_squares(const real[::1] x):
    """sum(x^2) accumulated in float64."""
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef double total
    with nogil:
        total = fnn_sum_squares(dt, x.shape[0], &x[0])
    return total


def abs_sum(const real[::1] x):
    """sum(|x|) accumulated in float64."""
    cdef int dt = FNN_F32 if real is float else FNN_F64
    cdef double total
    with nogil:
        total = fnn_abs_sum(dt, x.shape[0], &x[0])
    return total


def scale_(real[::1] x, double s):
    """x *= s in place."""
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_scale(dt, x.shape[0], &x[0], s)


def penalty_grad(const real[::1] w, real[::1] g, double l1, double l2):
    """g += l1 sign(w) + l2 w in place."""
    _same(g.shape[0], w.shape[0], "penalty_grad: g vs w")
    cdef int dt = FNN_F32 if real is float else FNN_F64
    with nogil:
        fnn_penalty_grad(dt, w.shape[0], &w[0], &g[0], l1, l2)


# --- tier-1 primitives: unary, binary, reductions along an axis, rows by index, batched GEMM

include "prims.pxi"


# --- convolution and pooling (NCHW) ----------------------------------------------------------------

include "conv.pxi"


# --- the fused training step ------------------------------------------------------------------------

cdef void *_param(object arr, int type_num, Py_ssize_t rows, Py_ssize_t cols, str what,
                  int index=-1) except NULL:
    """Data pointer of a parameter-like array of shape (rows, cols), or (cols,) when rows
    is -1, after checking (with C-level reads of the array header) what C will assume."""
    cdef cnp.ndarray a
    cdef int ndim = 1 if rows < 0 else 2
    if cnp.PyArray_Check(arr):
        a = <cnp.ndarray>arr
        if (cnp.PyArray_TYPE(a) == type_num and cnp.PyArray_NDIM(a) == ndim
                and cnp.PyArray_DIMS(a)[ndim - 1] == cols and (ndim == 1 or cnp.PyArray_DIMS(a)[0] == rows)
                and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISWRITEABLE(a)):
            return cnp.PyArray_DATA(a)
    if rows < 0:
        shape = (cols,)
    else:
        shape = (rows, cols)
    if index >= 0:      # the name is only formatted for the error
        what = f"{what}[{index}]"
    raise ValueError(f"mlp_train_step: {what} must be a writeable C-contiguous "
                     f"{np.dtype(np.float64 if type_num == cnp.NPY_FLOAT64 else np.float32)} array "
                     f"of shape {shape}, got {type(arr).__name__} {getattr(arr, 'dtype', '')} "
                     f"{getattr(arr, 'shape', '')}")


_step_scratch = threading.local()   # per Python thread: steps may run in several at once


cdef list _step_buffers(object dtype, Py_ssize_t n, tuple widths):
    """Per layer (y, dy) scratch arrays of n rows, made once per shape and thread."""
    cache = getattr(_step_scratch, "cache", None)
    if cache is None:
        cache = _step_scratch.cache = {}
    key = (dtype, n, widths)
    bufs = cache.get(key)
    if bufs is None:
        if len(cache) > 8:
            cache.clear()
        bufs = [(np.empty((n, w), dtype), np.empty((n, w), dtype)) for w in widths]
        cache[key] = bufs
    return bufs


cdef enum:
    MAX_FUSED_LAYERS = 16   # layers described on the stack; deeper MLPs allocate


cdef inline bint _is_c_array(object a, int type_num):
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == type_num
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


def mlp_train_step(x, labels, weights, biases, weight_grads, bias_grads, states, acts, slopes,
                   bint adam, tuple hyper):
    """One training step of a stack of Dense layers (activations fused) with softmax
    cross-entropy and SGD or Adam/AdamW, in one call that releases the GIL (the
    ``mlp_train_step`` kernel of ``fused_contract.py``). Every array is checked again
    here with C-level reads of its header, so a raw call cannot make C read out of
    bounds. A small model's step takes tens of microseconds, so the Python-level work
    here is kept to attribute-free C reads."""
    # tuples: the arrays stay referenced (and in place) while C runs without the GIL
    weights, biases, weight_grads, bias_grads = tuple(weights), tuple(biases), tuple(weight_grads), tuple(bias_grads)
    cdef Py_ssize_t nlayers = len(weights)
    cdef Py_ssize_t n, i, rows, cols, features, classes
    cdef int l, rc
    cdef fnn_layer *L
    cdef fnn_layer stack_layers[MAX_FUSED_LAYERS]
    cdef fnn_layer *layers = stack_layers
    cdef fnn_optimizer opt
    cdef double loss = 0.0
    cdef fnn_idx correct = 0
    cdef const void *xp
    states = tuple(states)
    if (nlayers < 1 or len(states) != 4 or len(acts) != nlayers or len(slopes) != nlayers
            or len(biases) != nlayers or len(weight_grads) != nlayers or len(bias_grads) != nlayers):
        raise ValueError("mlp_train_step: need one weight, bias, gradient, activation and slope per "
                         "layer and states = (first_w, first_b, second_w, second_b)")
    first_w, first_b, second_w, second_b = [tuple(group) for group in states]
    if not (len(first_w) == len(first_b) == len(second_w) == len(second_b) == nlayers):
        raise ValueError("mlp_train_step: need one optimizer state array per layer")
    w0 = weights[0]
    if not cnp.PyArray_Check(w0) or cnp.PyArray_NDIM(<cnp.ndarray>w0) != 2:
        raise ValueError("mlp_train_step: weights[0] must be a 2-D array")
    cdef int type_num = cnp.PyArray_TYPE(<cnp.ndarray>w0)
    if type_num != cnp.NPY_FLOAT32 and type_num != cnp.NPY_FLOAT64:
        raise ValueError(f"mlp_train_step: float32 or float64 weights expected, got {w0.dtype}")
    cdef int dt = FNN_F64 if type_num == cnp.NPY_FLOAT64 else FNN_F32
    dtype = w0.dtype
    if not _is_c_array(x, type_num):
        x = np.ascontiguousarray(x, dtype=dtype)
    if not _is_c_array(labels, cnp.NPY_INT64):
        labels = np.ascontiguousarray(labels, dtype=np.int64)
    features = cnp.PyArray_DIMS(<cnp.ndarray>w0)[0]
    if (cnp.PyArray_NDIM(<cnp.ndarray>x) != 2 or cnp.PyArray_DIMS(<cnp.ndarray>x)[1] != features
            or cnp.PyArray_DIMS(<cnp.ndarray>x)[0] < 1):
        raise ValueError(f"mlp_train_step: x must have shape (N >= 1, {features}), got {x.shape}")
    n = cnp.PyArray_DIMS(<cnp.ndarray>x)[0]
    if cnp.PyArray_NDIM(<cnp.ndarray>labels) != 1 or cnp.PyArray_DIMS(<cnp.ndarray>labels)[0] != n:
        raise ValueError(f"mlp_train_step: labels must have shape ({n},), got {labels.shape}")
    last = weights[nlayers - 1]
    if not cnp.PyArray_Check(last) or cnp.PyArray_NDIM(<cnp.ndarray>last) != 2:
        raise ValueError(f"mlp_train_step: weights[{nlayers - 1}] must be a 2-D array")
    classes = cnp.PyArray_DIMS(<cnp.ndarray>last)[1]
    cdef const int64_t[::1] lab = labels
    for i in range(n):
        if lab[i] < 0 or lab[i] >= classes:
            raise ValueError(f"mlp_train_step: labels must lie in [0, {classes}), got {lab[i]}")
    cdef const int64_t[::1] codes = np.ascontiguousarray(acts, dtype=np.int64)
    cdef const double[::1] alphas = np.ascontiguousarray(slopes, dtype=np.float64)

    lr, momentum, weight_decay, nesterov, beta1, beta2, eps, step, decoupled = hyper
    opt.kind = FNN_OPT_ADAM if adam else FNN_OPT_SGD
    opt.lr, opt.weight_decay = lr, weight_decay
    if adam:
        opt.beta1, opt.beta2, opt.eps, opt.decoupled, opt.step = beta1, beta2, eps, bool(decoupled), step
        opt.momentum, opt.nesterov = 0.0, 0
    else:
        opt.momentum, opt.nesterov = momentum, bool(nesterov)
        opt.beta1 = opt.beta2 = opt.eps = 0.0
        opt.decoupled, opt.step = 0, 0
    if nlayers > MAX_FUSED_LAYERS:
        layers = <fnn_layer *>PyMem_Calloc(nlayers, sizeof(fnn_layer))
        if layers == NULL:
            raise MemoryError()
    try:
        widths = []
        rows = features
        for l in range(nlayers):
            L = &layers[l]
            w = weights[l]
            cols = cnp.PyArray_DIMS(<cnp.ndarray>w)[1] if cnp.PyArray_Check(w) and cnp.PyArray_NDIM(<cnp.ndarray>w) == 2 else -1
            widths.append(cols)
            L.in_, L.out = rows, cols
            L.act = _act_code(codes[l])
            L.alpha = alphas[l]
            L.w = _param(w, type_num, rows, cols, "weights", l)
            L.gw = _param(weight_grads[l], type_num, rows, cols, "weight_grads", l)
            L.b = _param(biases[l], type_num, -1, cols, "biases", l)
            L.gb = _param(bias_grads[l], type_num, -1, cols, "bias_grads", l)
            L.w_s1 = _param(first_w[l], type_num, rows, cols, "states[0]", l)
            L.b_s1 = _param(first_b[l], type_num, -1, cols, "states[1]", l)
            L.w_s2 = _param(second_w[l], type_num, rows, cols, "states[2]", l) if adam else NULL
            L.b_s2 = _param(second_b[l], type_num, -1, cols, "states[3]", l) if adam else NULL
            rows = cols
        bufs = _step_buffers(dtype, n, tuple(widths))
        for l in range(nlayers):
            y, dy = bufs[l]
            layers[l].y = cnp.PyArray_DATA(<cnp.ndarray>y)
            layers[l].dy = cnp.PyArray_DATA(<cnp.ndarray>dy)
        xp = cnp.PyArray_DATA(<cnp.ndarray>x)
        with nogil:
            rc = fnn_mlp_train_step(dt, <int>nlayers, layers, n, xp, &lab[0], &opt, &loss, &correct)
    finally:
        if layers != stack_layers:
            PyMem_Free(layers)
    if rc:  # unreachable after the label check above; kept as a guard
        raise ValueError("mlp_train_step: a label is out of range")
    return loss, int(correct)
