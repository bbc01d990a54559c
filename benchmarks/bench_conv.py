"""conv2d forward and backward (dx, dw, db), float32, NCHW, stride 1, for every backend,
at LeNet-like and small-image shapes.

Shapes are "N x C x O x K x HW x P": batch, in and out channels, a K x K kernel, an
HW x HW input, padding P. PyTorch has no row here (its conv2d backward is not one call).
"""

from .common import (BACKENDS, PYTHON_MAX_FLOPS, THREADS, TORCH, Arrays, dims, pick, randn, ratio,
                     skip_python)

SHAPES = pick(["128x1x6x5x28x0", "128x6x16x5x12x0", "64x1x16x3x8x1", "64x16x32x3x8x1"],
              ["64x1x16x3x8x1"])


def conv_calls(backend, shape):
    n, c, o, k, hw, p = dims(shape)
    oh = hw + 2 * p - k + 1
    skip_python(backend, 6 * n * o * c * k * k * oh * oh, PYTHON_MAX_FLOPS)
    if backend == TORCH:
        raise NotImplementedError("no PyTorch row for conv2d")
    A = Arrays(backend)
    x, w = A.put(randn("x", (n, c, hw, hw))), A.put(randn("w", (o, c, k, k)) * 0.1)
    b, dy = A.put(randn("b", (o,))), A.put(randn("dy", (n, o, oh, oh)))
    out, dx, dw, db = A.out((n, o, oh, oh)), A.out((n, c, hw, hw)), A.out((o, c, k, k)), A.out((o,))
    bk, stride, padding = A.bk, (1, 1), (p, p)
    return {name: A.timed(fn) for name, fn in {
        "forward": lambda: bk.conv2d_forward(x, w, b, out, stride, padding),
        "backward": lambda: bk.conv2d_backward(x, w, dy, dx, dw, db, stride, padding)}.items()}


class Conv2d:
    """``out = conv2d(x, w) + b`` and its backward."""

    params = [BACKENDS, SHAPES, [THREADS]]
    param_names = ["backend", "shape", "threads"]

    def setup(self, backend, shape, threads):
        self.calls = conv_calls(backend, shape)
        for call in self.calls.values():   # warm: allocation, caches, JIT
            call()

    def _ratio(self, which, shape):
        return ratio(self.calls[which], conv_calls("numpy", shape)[which])

    def time_forward(self, backend, shape, threads):
        self.calls["forward"]()

    def time_backward(self, backend, shape, threads):
        self.calls["backward"]()

    def track_forward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("forward", shape)

    def track_backward_ratio_to_numpy(self, backend, shape, threads):
        return self._ratio("backward", shape)

    track_forward_ratio_to_numpy.unit = track_backward_ratio_to_numpy.unit = "backend time / numpy time"
