"""GEMM, float32: ``out = op(a) @ op(b)`` for every backend, and each backend's ladder of
GEMM variants (naive first, best last).

Shapes: ``"n"`` is an n x n by n x n product; ``"MxKxN"`` an (M, K) by (K, N) product
as a Dense layer computes it (batch x in x out): the digits MLP's first layer
(32x64x64) and the MNIST-shaped MLP's two hidden layers; and two thin products (a dot
product of 4e6 terms, one row of output), which take the dot/axpy path.
"""

from .common import (BACKENDS, FASTNN_BACKENDS, PYTHON_MAX_FLOPS, THREADS, TORCH, Arrays, dims,
                     ladder_variants, optional, pick, randn, ratio, skip_python)

SHAPES = pick(["64", "256", "512", "32x64x64", "128x784x256", "128x256x128", "1x4000000x1", "1x1024x1024"],
              ["64", "32x64x64"])


def gemm_call(backend, shape, variant=None):
    """A zero-argument call of backend's GEMM (or of its ladder ``variant``) on fixed data."""
    m, k, n = dims(shape)
    skip_python(backend, 2 * m * k * n, PYTHON_MAX_FLOPS)
    arrays = Arrays(backend)
    a, b = arrays.put(randn("gemm-a", (m, k))), arrays.put(randn("gemm-b", (k, n)))
    out = arrays.out((m, n))
    if backend == TORCH:
        matmul = arrays.torch.matmul
        return lambda: matmul(a, b, out=out)
    if variant is None:
        kernel = arrays.bk.gemm
    else:
        kernel = (optional(arrays.bk, "GEMM_LADDER") or {}).get(variant)
        if kernel is None:
            raise NotImplementedError(f"backend {backend!r} has no GEMM variant {variant!r}")
    return arrays.timed(lambda: kernel(a, b, out))


class Gemm:
    """The contract's ``gemm`` (with its argument checks, as the layers call it)."""

    params = [BACKENDS, SHAPES, [THREADS]]
    param_names = ["backend", "shape", "threads"]

    def setup(self, backend, shape, threads):
        self.call = gemm_call(backend, shape)
        self.call()  # JIT compilation and first-touch happen here, not in the timing

    def time_gemm(self, backend, shape, threads):
        self.call()

    def track_ratio_to_numpy(self, backend, shape, threads):
        return ratio(self.call, gemm_call("numpy", shape))

    track_ratio_to_numpy.unit = "backend time / numpy time"


class GemmLadder:
    """Each variant of a backend's ``GEMM_LADDER`` (raw functions, no argument checks)."""

    params = [FASTNN_BACKENDS, ladder_variants(), SHAPES, [THREADS]]
    param_names = ["backend", "variant", "shape", "threads"]

    def setup(self, backend, variant, shape, threads):
        self.call = gemm_call(backend, shape, variant)
        self.call()

    def time_gemm(self, backend, variant, shape, threads):
        self.call()

    def track_ratio_to_numpy(self, backend, variant, shape, threads):
        return ratio(self.call, gemm_call("numpy", shape))

    track_ratio_to_numpy.unit = "backend time / numpy time"
