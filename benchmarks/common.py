"""Shared pieces of the asv suites: the parameter axes, seeded data, backend access,
side-by-side ratios and the training set-ups.

Axes
----
* ``backend``: every name ``fastnn.kernels.names()`` knows, plus ``torch`` (PyTorch
  eager on the CPU). A backend that cannot run here, or ``torch`` when it is not
  installed, raises ``NotImplementedError`` in ``setup``, which asv shows as skipped.
  A new backend module therefore joins every suite without new benchmark code.
* ``threads``: the pinned thread count (see ``benchmarks/__init__.py``), one value.
* sizes: strings, ``"256"`` for a square problem, ``"128x784x256"`` for
  batch x in x out.

``FASTNN_BENCH_QUICK=1`` trims every size axis to its smallest value (used by
``benchmarks/ci_check.sh``). Data are drawn from fixed seeds, so every backend and
every commit sees the same numbers.
"""

import os
import statistics
import time
import zlib

import numpy as np

import fastnn
import fastnn.kernels as K
from fastnn.bench import blas_threads

QUICK = os.environ.get("FASTNN_BENCH_QUICK", "") not in ("", "0")
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "1"))
TORCH = "torch"
FASTNN_BACKENDS = list(K.names())
BACKENDS = FASTNN_BACKENDS + [TORCH]
DTYPE = np.float32

# The interpreted backend gets only problems that take it well under a second per call
# (about 40 MFLOP/s for GEMM, so 1.1 MFLOP is ~30 ms and 5-8 million elements/s element-wise, measured).
PYTHON_MAX_FLOPS = 1.1e6
PYTHON_MAX_ELEMENTS = 64 * 1024


# (the environment variables of ``benchmarks/__init__.py`` cannot be relied on alone:
# asv's runner imports NumPy, through pympler, before any benchmark module)
if blas_threads(THREADS) not in (None, THREADS):
    raise RuntimeError(f"could not pin OpenBLAS to {THREADS} threads")


def pick(full, quick):
    """The full parameter list, or the trimmed one under FASTNN_BENCH_QUICK=1."""
    return quick if QUICK else full


def dims(shape):
    """ "64" -> (64, 64, 64); "128x784x256" -> (128, 784, 256); "128x256" -> (128, 256)."""
    parts = tuple(int(p) for p in shape.split("x"))
    return parts * 3 if len(parts) == 1 else parts


def skip_python(name, work, limit):
    """Skip the interpreted backend on problems too large for it (asv shows n/a)."""
    if name == "python" and work > limit:
        raise NotImplementedError(f"python backend skipped: {work:.3g} > {limit:.3g}")


# --- backends ----------------------------------------------------------------------

def fastnn_backend(name):
    """The fastnn Backend ``name`` with the pinned thread count applied; NotImplementedError
    when it cannot run here (asv records the benchmark as skipped)."""
    if name not in K.available():
        reason = K.status()[name][1] if hasattr(K, "status") else "unavailable"
        raise NotImplementedError(f"backend {name!r} unavailable: {reason}")
    if hasattr(fastnn, "set_num_threads"):
        fastnn.set_num_threads(THREADS)
    return fastnn.get_backend(name)


def torch_module():
    """PyTorch with the pinned thread count, or NotImplementedError when not installed."""
    try:
        import torch
    except ImportError:
        raise NotImplementedError("PyTorch is not installed") from None
    torch.set_num_threads(THREADS)
    return torch


def optional(bk, name):
    """An optional backend extra (GEMM_LADDER, ...), or None."""
    return bk.optional(name) if hasattr(bk, "optional") else getattr(bk.module, name, None)


def synchronizer(bk):
    """A function that waits for the device to finish (a no-op on CPU backends), so that a
    timed call of a GPU backend includes its work, not only the launch."""
    if not getattr(bk, "on_device", False):
        return lambda: None
    sync = optional(bk, "synchronize")
    if sync is None:
        from numba import cuda
        sync = cuda.synchronize
    return sync


def ladder_variants():
    """Names of the GEMM ladder variants of every available backend, in ladder order."""
    names = []
    for name in K.available():
        ladder = optional(K.get(name), "GEMM_LADDER") or {}
        names += [v for v in ladder if v not in names]
    return names or ["none"]


# --- data --------------------------------------------------------------------------

def rng(tag):
    """A generator seeded by a text tag, so each data set is fixed and independent."""
    return np.random.default_rng([0, zlib.crc32(tag.encode())])


def randn(tag, shape, dtype=DTYPE):
    return rng(tag).standard_normal(shape).astype(dtype)


def labels(tag, n, classes):
    return rng(tag).integers(0, classes, n).astype(np.int64)


class Arrays:
    """Host arrays handed to one backend: ``put`` places an input, ``out`` makes a fresh
    C-contiguous output. ``torch`` gives CPU tensors instead."""

    def __init__(self, backend_name):
        self.name = backend_name
        if backend_name == TORCH:
            self.torch = torch_module()
        else:
            self.bk = fastnn_backend(backend_name)

    def put(self, host):
        if self.name == TORCH:
            return self.torch.from_numpy(np.array(host))
        return self.bk.asarray(host) if self.bk.on_device else np.array(host)

    def out(self, shape, dtype=DTYPE):
        if self.name == TORCH:
            return self.torch.empty(shape, dtype=getattr(self.torch, np.dtype(dtype).name))
        return self.bk.empty(shape, dtype)

    def timed(self, fn):
        """``fn`` plus a device synchronisation where one is needed."""
        if self.name == TORCH:
            return fn
        sync = synchronizer(self.bk)
        if not self.bk.on_device:
            return fn

        def call():
            fn()
            sync()
        return call


# --- side-by-side ratios -----------------------------------------------------------

def _seconds_per_call(fn, number):
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def ratio(fn, reference, repeats=pick(15, 3), sample=pick(0.01, 0.002)):
    """Median over interleaved pairs of (time of ``fn`` / time of ``reference``), both
    measured in this process within milliseconds of each other, so a busy moment on the
    shared machine hits both sides of a pair; larger is worse. The order within a pair
    alternates, so neither side always runs second.

    Each sample loops a call long enough to last about ``sample`` seconds.
    """
    numbers = []
    for f in (fn, reference):
        f()  # warm: caches, lazy allocation, JIT
        numbers.append(max(1, int(sample / max(_seconds_per_call(f, 1), 1e-7))))
    ratios = []
    for i in range(repeats):
        if i % 2:
            ref = _seconds_per_call(reference, numbers[1])
            mine = _seconds_per_call(fn, numbers[0])
        else:
            mine = _seconds_per_call(fn, numbers[0])
            ref = _seconds_per_call(reference, numbers[1])
        ratios.append(mine / ref)
    return statistics.median(ratios)


# --- training set-ups ----------------------------------------------------------------

# name -> (layer widths, batch size)
MODELS = {
    "digits": ([64, 64, 10], 32),            # the bundled 8x8 digits: 1,797 real images
    "mnist": ([784, 256, 128, 10], 128),     # MNIST-shaped random data
}
MNIST_ROWS = pick(6000, 1024)  # a tenth of MNIST keeps one epoch well under a second


def training_data(model):
    """(X float32 (N, in), y int64 (N,)): the standardised digits, or random MNIST-shaped rows."""
    if model == "digits":
        X, y = fastnn.data.load_digits()
        X = (X - X.mean(0)) / (X.std(0) + 1e-6)
        return X.astype(DTYPE), y
    widths = MODELS[model][0]
    return randn("mnist-x", (MNIST_ROWS, widths[0])), labels("mnist-y", MNIST_ROWS, widths[-1])


def fastnn_model(backend, model):
    """(model, loss, optimizer) with the public API: Dense/ReLU stack, SGD momentum 0.9."""
    widths, _ = MODELS[model]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(fastnn.Dense(n_in, n_out, backend=backend))
        if i < len(widths) - 2:
            layers.append(fastnn.ReLU(backend=backend))
    net = fastnn.Sequential(layers, backend=backend, seed=0)
    return net, fastnn.SoftmaxCrossEntropy(), fastnn.SGD(net.parameters(), lr=0.01, momentum=0.9)


def torch_model(model):
    """(net, optimizer) of the same shape in PyTorch eager mode."""
    torch = torch_module()
    torch.manual_seed(0)
    widths, _ = MODELS[model]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    return net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)


def torch_step(net, optimizer):
    torch = torch_module()
    cross_entropy = torch.nn.functional.cross_entropy

    def step(x, t):
        optimizer.zero_grad(set_to_none=False)
        out = net(x)
        value = cross_entropy(out, t)
        value.backward()
        optimizer.step()
        return value.item()
    return step
