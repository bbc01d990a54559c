"""Layer kernels, float32: dense forward/backward (ReLU fused), each activation forward and
backward, softmax-cross-entropy, and the optimizer updates, for every backend.

PyTorch rows use the plain eager operations a user would write for the same formula.
"""

import numpy as np

from .common import (BACKENDS, DTYPE, PYTHON_MAX_ELEMENTS, PYTHON_MAX_FLOPS, THREADS, TORCH, Arrays, dims,
                     labels, pick, randn, ratio, skip_python)

ALPHA = 0.01  # leaky ReLU slope


def _timed(arrays, calls):
    return {name: arrays.timed(fn) for name, fn in calls.items()}


class _Suite:
    """Shared plumbing: ``calls_for(backend, *params)`` returns {"forward": fn, "backward": fn}
    (or {"update": fn}); setup builds and warms them (the last parameter, threads, is
    fixed for the process); ratios rebuild them on numpy."""

    def setup(self, backend, *params):
        self.calls = self.calls_for(backend, *params[:-1])
        for call in self.calls.values():
            call()

    def _ratio(self, which, params):
        return ratio(self.calls[which], self.calls_for("numpy", *params)[which])


# --- dense ---------------------------------------------------------------------------

def dense_calls(backend, shape):
    n, i, o = dims(shape)
    skip_python(backend, 6 * n * i * o, PYTHON_MAX_FLOPS)
    A = Arrays(backend)
    x, w, b = A.put(randn("x", (n, i))), A.put(randn("w", (i, o)) * 0.1), A.put(randn("b", (o,)))
    y, dy = A.out((n, o)), A.put(randn("dy", (n, o)))
    dz, dx, dw, db = A.out((n, o)), A.out((n, i)), A.out((i, o)), A.out((o,))
    if backend == TORCH:
        torch = A.torch

        def forward():
            torch.addmm(b, x, w, out=y)
            torch.relu_(y)

        def backward():
            torch.mul(dy, y > 0, out=dz)
            torch.matmul(x.T, dz, out=dw)
            torch.sum(dz, 0, out=db)
            torch.matmul(dz, w.T, out=dx)
        forward()
        return {"forward": forward, "backward": backward}
    bk = A.bk
    bk.dense_forward(x, w, b, y, "relu")
    return _timed(A, {"forward": lambda: bk.dense_forward(x, w, b, y, "relu"),
                      "backward": lambda: bk.dense_backward(x, w, y, dy, dz, dx, dw, db, "relu")})


class Dense(_Suite):
    """``out = relu(x @ w + b)`` and its backward (dz, dw, db and dx)."""

    params = [BACKENDS, pick(["32x64x64", "128x784x256", "128x256x128"], ["32x64x64"]), [THREADS]]
    param_names = ["backend", "shape", "threads"]
    calls_for = staticmethod(dense_calls)

    def time_forward(self, backend, shape, threads):
        self.calls["forward"]()

    def time_backward(self, backend, shape, threads):
        self.calls["backward"]()

    def track_forward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("forward", (shape,))

    def track_backward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("backward", (shape,))

    track_forward_ratio_to_numpy.unit = track_backward_ratio_to_numpy.unit = "backend time / numpy time"


# --- activations -----------------------------------------------------------------------

def _torch_activation(torch, name, x, y, dy, dx):
    forward = {
        "relu": lambda: torch.clamp_min(x, 0, out=y),
        "leaky_relu": lambda: y.copy_(torch.nn.functional.leaky_relu(x, ALPHA)),
        "sigmoid": lambda: torch.sigmoid(x, out=y),
        "tanh": lambda: torch.tanh(x, out=y),
        "softmax": lambda: y.copy_(torch.softmax(x, 1)),
    }[name]
    backward = {
        "relu": lambda: torch.mul(dy, y > 0, out=dx),
        "leaky_relu": lambda: torch.where(y > 0, dy, dy * ALPHA, out=dx),
        "sigmoid": lambda: torch.mul(dy, y * (1 - y), out=dx),
        "tanh": lambda: torch.mul(dy, 1 - y * y, out=dx),
        "softmax": lambda: torch.mul(y, dy - (dy * y).sum(1, keepdim=True), out=dx),
    }[name]
    return forward, backward


def activation_calls(backend, activation, shape):
    n, d = dims(shape)
    skip_python(backend, n * d, PYTHON_MAX_ELEMENTS)
    A = Arrays(backend)
    x, dy = A.put(randn("x", (n, d))), A.put(randn("dy", (n, d)))
    y, dx = A.out((n, d)), A.out((n, d))
    if backend == TORCH:
        forward, backward = _torch_activation(A.torch, activation, x, y, dy, dx)
        forward()
        return {"forward": forward, "backward": backward}
    fwd, bwd = getattr(A.bk, f"{activation}_forward"), getattr(A.bk, f"{activation}_backward")
    extra = (ALPHA,) if activation == "leaky_relu" else ()
    fwd(x, y, *extra)  # backward reads the forward output
    return _timed(A, {"forward": lambda: fwd(x, y, *extra), "backward": lambda: bwd(y, dy, dx, *extra)})


class Activations(_Suite):
    """Element-wise activations and row-wise softmax on an (N, D) array."""

    params = [BACKENDS, ["relu", "leaky_relu", "sigmoid", "tanh", "softmax"],
              pick(["128x256", "1024x1024"], ["128x256"]), [THREADS]]
    param_names = ["backend", "activation", "shape", "threads"]
    calls_for = staticmethod(activation_calls)

    def time_forward(self, backend, activation, shape, threads):
        self.calls["forward"]()

    def time_backward(self, backend, activation, shape, threads):
        self.calls["backward"]()

    def track_forward_ratio_to_numpy(self, backend, activation, shape, threads):
        return self._ratio("forward", (activation, shape))

    def track_backward_ratio_to_numpy(self, backend, activation, shape, threads):
        return self._ratio("backward", (activation, shape))

    track_forward_ratio_to_numpy.unit = track_backward_ratio_to_numpy.unit = "backend time / numpy time"


# --- softmax cross-entropy ---------------------------------------------------------------

def cross_entropy_calls(backend, shape):
    n, c = dims(shape)
    skip_python(backend, n * c, PYTHON_MAX_ELEMENTS)
    A = Arrays(backend)
    host_labels = labels("labels", n, c)
    z, t = A.put(randn("logits", (n, c)) * 3), A.put(host_labels)
    probs, dz = A.out((n, c)), A.out((n, c))
    if backend == TORCH:
        torch = A.torch
        rows = torch.arange(n)

        def backward():
            dz.copy_(probs)
            dz[rows, t] -= 1
            dz.div_(n)
        forward = lambda: (probs.copy_(torch.softmax(z, 1)), torch.nn.functional.cross_entropy(z, t))
        forward()
        return {"forward": forward, "backward": backward}
    bk = A.bk
    bk.softmax_cross_entropy_forward(z, t, probs)
    return _timed(A, {"forward": lambda: bk.softmax_cross_entropy_forward(z, t, probs),
                      "backward": lambda: bk.softmax_cross_entropy_backward(probs, t, dz)})


class SoftmaxCrossEntropy(_Suite):
    """Mean softmax cross-entropy of (N, C) logits against int64 labels, and its gradient."""

    params = [BACKENDS, pick(["32x10", "128x10", "1024x1000"], ["32x10"]), [THREADS]]
    param_names = ["backend", "shape", "threads"]
    calls_for = staticmethod(cross_entropy_calls)

    def time_forward(self, backend, shape, threads):
        self.calls["forward"]()

    def time_backward(self, backend, shape, threads):
        self.calls["backward"]()

    def track_forward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("forward", (shape,))

    def track_backward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("backward", (shape,))

    track_forward_ratio_to_numpy.unit = track_backward_ratio_to_numpy.unit = "backend time / numpy time"


# --- optimizer updates ----------------------------------------------------------------------

# name -> (kernel, hyper-parameters after the state arrays)
UPDATES = {
    "sgd": ("sgd_update", (0.01, 0.0, 0.0, False)),
    "momentum": ("sgd_update", (0.01, 0.9, 0.0, False)),
    "adam": ("adam_update", (1e-3, 0.9, 0.999, 1e-8, 0.0, 1, False)),
}


def update_calls(backend, optimizer, shape):
    rows, cols = dims(shape)
    skip_python(backend, rows * cols, PYTHON_MAX_ELEMENTS)
    A = Arrays(backend)
    kernel, hyper = UPDATES[optimizer]
    p, g = A.put(randn("p", (rows, cols))), A.put(randn("g", (rows, cols)) * 1e-3)
    state = [A.put(np.zeros((rows, cols), DTYPE)) for _ in range(2 if kernel == "adam_update" else 1)]
    if backend == TORCH:
        torch = A.torch
        param = torch.nn.Parameter(p)
        param.grad = g
        lr = hyper[0]
        opt = (torch.optim.Adam([param], lr=lr) if kernel == "adam_update"
               else torch.optim.SGD([param], lr=lr, momentum=hyper[1]))
        return {"update": opt.step}
    update = getattr(A.bk, kernel)
    return _timed(A, {"update": lambda: update(p, g, *state, *hyper)})


class OptimizerUpdate(_Suite):
    """One in-place parameter update: SGD, SGD with momentum 0.9, Adam."""

    params = [BACKENDS, list(UPDATES), pick(["64x64", "784x256"], ["64x64"]), [THREADS]]
    param_names = ["backend", "optimizer", "shape", "threads"]
    calls_for = staticmethod(update_calls)

    def time_update(self, backend, optimizer, shape, threads):
        self.calls["update"]()

    def track_ratio_to_numpy(self, backend, optimizer, shape, threads):
        return self._ratio("update", (optimizer, shape))

    track_ratio_to_numpy.unit = "backend time / numpy time"
