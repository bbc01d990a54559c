"""One valid call of every kernel of the contract, on tiny host arrays.

Whatever must touch every kernel (Numba's warm-up compiles each one, the CUDA backend's
first use compiles each one on the GPU, the tests check that the list is complete)
takes the calls from here, so a new kernel is added in one place. Each dense kernel is
called once per activation (the activation is a runtime code, but every call should
see it), the optimizers with both values of their flags, the element-wise primitives
once per op.
"""

import numpy as np

from .contract import ACTIVATIONS
from .primitives import BINARY_OPS, UNARY_OPS

__all__ = ["example_calls"]


def example_calls(dtype, rng=None):
    """[(kernel name, args)] covering every kernel of ``contract.KERNELS`` for ``dtype``
    (float32/float64): valid arguments (outputs freshly allocated), N = 4 rows."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0) if rng is None else rng

    def data(*shape, low=-1.0, high=1.0):
        return rng.uniform(low, high, shape).astype(dtype)

    def empty(*shape):
        return np.zeros(shape, dtype)

    x, w, b = data(4, 3), data(3, 5), data(5)
    y, dy = data(4, 5), data(4, 5)
    labels = np.array([0, 1, 4, 2], np.int64)
    calls = [("gemm", (x, w, empty(4, 5)))]
    for act in ACTIVATIONS:
        calls.append(("dense_forward", (x, w, b, empty(4, 5), act, 0.1)))
        calls.append(("dense_backward", (x, w, y, dy, empty(4, 5), empty(4, 3), empty(3, 5),
                                         empty(5), act, 0.1)))
    for name in ("relu", "sigmoid", "tanh"):
        calls.append((f"{name}_forward", (y, empty(4, 5))))
        calls.append((f"{name}_backward", (y, dy, empty(4, 5))))
    calls.append(("leaky_relu_forward", (y, empty(4, 5), 0.1)))
    calls.append(("leaky_relu_backward", (y, dy, empty(4, 5), 0.1)))
    probs = data(4, 5, low=0.05, high=0.35)
    calls += [
        ("softmax_forward", (y, empty(4, 5))),
        ("softmax_backward", (probs, dy, empty(4, 5))),
        ("softmax_cross_entropy_forward", (y, labels, empty(4, 5))),
        ("softmax_cross_entropy_backward", (probs, labels, empty(4, 5))),
        ("count_correct", (y, labels)),
    ]
    targets = data(4, 5, low=0.0, high=1.0)
    for loss in ("mse", "bce_with_logits"):
        calls.append((f"{loss}_forward", (y, targets)))
        calls.append((f"{loss}_backward", (y, targets, empty(4, 5))))
    mask = (rng.uniform(size=(4, 5)) > 0.5).astype(dtype) * dtype.type(2)
    calls += [
        ("dropout_forward", (y, mask, empty(4, 5))),
        ("dropout_backward", (mask, dy, empty(4, 5))),
        ("add", (y, dy, empty(4, 5))),
    ]
    gamma, beta = data(5, low=0.5, high=1.5), data(5)
    mean, var = data(5), data(5, low=0.5, high=1.5)
    xhat, invstd = data(4, 5), data(5, low=0.5, high=1.5)
    calls += [
        ("batchnorm_forward", (y, gamma, beta, empty(4, 5), empty(4, 5), empty(5), mean.copy(),
                               var.copy(), 0.1, 1e-5)),
        ("batchnorm_inference", (y, gamma, beta, mean, var, 1e-5, empty(4, 5))),
        ("batchnorm_backward", (xhat, gamma, invstd, dy, empty(4, 5), empty(5), empty(5))),
    ]
    for flag in (False, True):
        calls.append(("sgd_update", (data(3, 5), data(3, 5), empty(3, 5), 0.1, 0.9, 1e-4, flag)))
        calls.append(("adam_update", (data(3, 5), data(3, 5), empty(3, 5), empty(3, 5), 1e-3, 0.9,
                                       0.999, 1e-8, 1e-4, 1, flag)))
    calls += [
        ("sum_squares", (y,)),
        ("abs_sum", (y,)),
        ("scale_", (data(4, 5), 0.5)),
        ("penalty_grad", (w, data(3, 5), 1e-4, 1e-4)),
    ]
    positive = data(4, 5, low=0.5, high=2.0)
    calls += [("unary", (op, positive, empty(4, 5))) for op in UNARY_OPS]
    calls += [("binary", (op, y, positive, empty(4, 5))) for op in BINARY_OPS]
    rows = np.array([2, 0, 2], np.int64)
    calls += [
        ("reduce_sum", (y, 0, empty(5))), ("reduce_sum", (y, 1, empty(4))),
        ("reduce_max", (y, 0, empty(5))), ("reduce_max", (y, 1, empty(4))),
        ("gather_rows", (y, rows, empty(3, 5))),
        ("scatter_add_rows", (data(3, 5), rows, data(4, 5))),
        ("gemm_batched", (data(2, 4, 3), data(2, 3, 5), empty(2, 4, 5))),
        ("gemm_batched", (data(2, 3, 4), data(2, 5, 3), data(2, 4, 5), True, True, 0.5, 0.25)),
    ]
    calls += _conv_calls(data, empty, rng)
    return calls


def _conv_calls(data, empty, rng):
    """Convolution (padded and strided, and 1x1) and pooling (overlapping windows) calls."""
    x, w, b = data(2, 3, 7, 6), data(4, 3, 3, 2), data(4)
    calls = []
    for stride, padding, out in (((1, 1), (0, 0), (2, 4, 5, 5)), ((2, 3), (1, 2), (2, 4, 4, 3))):
        calls.append(("conv2d_forward", (x, w, b, empty(*out), stride, padding)))
        calls.append(("conv2d_backward", (x, w, data(*out), empty(2, 3, 7, 6), empty(4, 3, 3, 2),
                                          empty(4), stride, padding)))
    calls.append(("conv2d_backward", (x, data(5, 3, 1, 1), data(2, 5, 7, 6), None, empty(5, 3, 1, 1),
                                      empty(5), (1, 1), (0, 0))))
    argmax = np.zeros((2, 3, 3, 5), np.int64)                  # an output: overwritten
    picks = rng.integers(0, 7 * 6, size=(2, 3, 3, 5))          # repeated picks accumulate
    calls += [
        ("maxpool2d_forward", (x, empty(2, 3, 3, 5), argmax, (3, 2), (2, 1))),
        ("maxpool2d_backward", (data(2, 3, 3, 5), picks, empty(2, 3, 7, 6))),
        ("avgpool2d_forward", (x, empty(2, 3, 3, 5), (3, 2), (2, 1))),
        ("avgpool2d_backward", (data(2, 3, 3, 5), empty(2, 3, 7, 6), (3, 2), (2, 1))),
    ]
    return calls
