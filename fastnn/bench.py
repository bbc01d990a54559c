"""``fastnn bench``: time every backend's kernels side by side, without asv.

    fastnn bench gemm   --sizes 64 128 256 --backends python numpy numba cython --threads 1
    fastnn bench layers --sizes 64 256
    fastnn bench train                      # digits MLP and MNIST-shaped MLP
    fastnn bench                            # all three, one after another

For each (case, size, backend) the harness

1. builds the inputs from a fixed seed (on the device for a GPU backend),
2. makes the **first call** and times it on its own (JIT compilation or cache loading
   lands here, not in the medians),
3. **checks** the result against the NumPy reference; a mismatch is reported as WRONG
   and is not timed,
4. warms up once, then takes ``repeats`` samples, each looping the call long enough to
   last about 20 ms; it reports the median and the min-max of the per-call times.

The table shows the time, a rate (GFLOP/s for matrix products and training, GB/s of
array traffic for memory-bound kernels), the speed-ups over ``python`` and over ``numpy``
(the other's median time / this one's: higher is faster, as in ``fastnn demo``) and, for
GEMM, the fraction of the machine's BLAS (NumPy's ``@`` on one thread unless
``--threads`` says otherwise). ``gemm`` also runs each backend's ``GEMM_LADDER``
variants. The interpreted ``python`` backend only runs where a call is estimated (from
a tiny run) to take at most ``--python-budget`` seconds; other sizes are listed as
skipped with the estimate, never filled in.

Results go to ``DIR/bench_<kind>.csv``, ``.json`` and ``.png`` (``--out``, default
``fastnn-out/bench``); the chart draws the speed-ups over numpy on a linear axis from 0.
The machine is usually shared and noisy: compare medians taken in one run, never single
times across runs.
"""

import argparse
import csv
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import types
import zlib

import numpy as np

from . import kernels as K

__all__ = ["KINDS", "Row", "Case", "run", "run_cases", "format_table", "write_files", "plot",
           "add_commands", "gemm_cases", "layer_cases", "train_cases", "train_step", "time_call"]

KINDS = ("gemm", "layers", "train")
DEFAULT_SIZES = {"gemm": ["64", "128", "256", "512"], "layers": ["64", "128", "256", "512"]}
TOLERANCE = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}
SAMPLE_SECONDS = 0.02
BLAS = "blas (numpy @)"
# name -> (layer widths, batch size, rows of data)
MODELS = {"digits": ([64, 64, 10], 32, 1797), "mnist": ([784, 256, 128, 10], 128, 6000)}


@dataclasses.dataclass
class Row:
    """One measured (kind, case, size, backend, variant). Times are seconds per call."""

    kind: str
    case: str
    size: str
    backend: str
    variant: str = ""
    status: str = "ok"          # ok, WRONG, skipped, error
    note: str = ""
    first_s: float = None
    median_s: float = None
    min_s: float = None
    max_s: float = None
    samples: int = 0
    work: float = 0.0           # FLOPs or bytes per call
    unit: str = "GFLOP/s"       # or GB/s
    rate: float = None          # work / median, in units of 1e9
    vs_python: float = None     # python time / this time
    vs_numpy: float = None      # numpy time / this time (a speed-up, like vs_python)
    of_blas: float = None       # BLAS time / this time (gemm)
    max_error: float = None     # max |result - reference| / max(1, max |reference|)


# --- threads ------------------------------------------------------------------------

def blas_threads(n=None):
    """Threads of the OpenBLAS NumPy loaded, after setting them to ``n`` if given.

    Returns None where no OpenBLAS is found (another BLAS, or a system without
    /proc/self/maps); set ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` before starting then.
    """
    try:
        from threadpoolctl import threadpool_limits
        if n is not None:
            threadpool_limits(int(n), user_api="blas")
    except ImportError:
        pass
    from .kernels.blas_pool import api, openblas_libraries
    for lib in openblas_libraries():
        getter, setter = api(lib, "get_num_threads"), api(lib, "set_num_threads")
        if getter is not None and setter is not None:
            if n is not None:
                setter(int(n))
            return int(getter())
    return None


# --- timing -------------------------------------------------------------------------

def _synchronizer(bk):
    """Wait for a GPU backend's queued work, so a timed call includes it; CPU: no-op."""
    if not bk.on_device:
        return lambda: None
    sync = bk.optional("synchronize")
    if sync is None:
        from numba import cuda
        sync = cuda.synchronize
    return sync


def _loop(call, sync, number):
    start = time.perf_counter()
    for _ in range(number):
        call()
    sync()
    return (time.perf_counter() - start) / number


def time_call(call, sync=lambda: None, repeats=5, budget=10.0):
    """(median, min, max, samples) of the per-call time of an already-checked ``call``.

    One untimed warm-up call; then ``repeats`` samples, each looping the call about
    SAMPLE_SECONDS long; stops early (with at least 3 samples) once ``budget`` seconds
    are spent, so a slow backend cannot stall the run.
    """
    start = time.perf_counter()
    single = _loop(call, sync, 1)
    number = max(1, int(SAMPLE_SECONDS / max(single, 1e-7)))
    samples = []
    while len(samples) < repeats:
        samples.append(_loop(call, sync, number))
        if len(samples) >= 3 and time.perf_counter() - start > budget:
            break
    return statistics.median(samples), min(samples), max(samples), len(samples)


def _error(got, want):
    """Largest difference, relative to the reference's scale (at least 1)."""
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape or not np.all(np.isfinite(g)):
            return float("inf")
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        worst = max(worst, float(np.max(np.abs(g - w))) / scale if w.size else 0.0)
    return worst


# --- cases --------------------------------------------------------------------------

class Case:
    """One thing to time at one size.

    ``build(bk) -> (call, outputs)``: ``call()`` runs it once on backend ``bk`` (fresh
    inputs from a fixed seed) and returns any scalar result; ``outputs(value)`` turns the
    first call's result into host arrays to compare with the NumPy reference.
    ``work`` is FLOPs or bytes per call (``unit``); ``probe`` is the same case at a tiny
    size, timed on the python backend to estimate what a larger size would cost it.
    """

    def __init__(self, kind, name, size, work, unit, build, probe=None, variant=""):
        self.kind, self.name, self.size, self.work, self.unit = kind, name, size, work, unit
        self.build, self.probe, self.variant = build, probe, variant
        self.dtype = np.dtype(np.float32)   # set by run_cases; picks the tolerance
        self.blas = None                    # gemm: a build of the same product with numpy @

    def row(self, backend, **fields):
        return Row(self.kind, self.name, self.size, backend, self.variant, work=self.work,
                   unit=self.unit, **fields)


def _data(tag, shape, dtype):
    rng = np.random.default_rng([1, zlib.crc32(tag.encode())])
    return rng.standard_normal(shape).astype(dtype)


def _labels(tag, n, classes):
    return np.random.default_rng([2, zlib.crc32(tag.encode())]).integers(0, classes, n).astype(np.int64)


def _parse_size(text, kind):
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        parts = [0]
    if any(p < 1 for p in parts) or len(parts) not in ((1, 3) if kind == "gemm" else (1,)):
        shapes = "n or MxKxN" if kind == "gemm" else "n"
        raise ValueError(f"bench {kind}: a size is {shapes} with positive integers, got {text!r}")
    return parts * 3 if len(parts) == 1 else parts


def gemm_cases(size, dtype, ladder_variants=()):
    """The contract ``gemm`` on (M,K) @ (K,N) (``size`` "n" or "MxKxN"), plus one case per
    ladder variant name (looked up per backend at build time)."""
    m, k, n = _parse_size(size, "gemm")

    def maker(variant):
        def build(bk):
            a = bk.asarray(_data("a", (m, k), dtype))
            b = bk.asarray(_data("b", (k, n), dtype))
            out = bk.empty((m, n), dtype)
            fn = bk.gemm if not variant else bk.optional("GEMM_LADDER")[variant]
            return (lambda: fn(a, b, out)), (lambda value: [bk.to_host(out)])
        return build

    def blas(_):
        a, b, out = _data("a", (m, k), dtype), _data("b", (k, n), dtype), np.empty((m, n), dtype)
        return (lambda: np.matmul(a, b, out=out)), (lambda value: [out])

    probe = None if m * k * n <= 16 ** 3 else gemm_cases("16", dtype)[0]
    label = str(size) if len(str(size).split("x")) == 3 else f"{m}"
    cases = [Case("gemm", "gemm", label, 2.0 * m * k * n, "GFLOP/s", maker(""), probe)]
    cases[0].blas = blas   # NumPy's @ straight into the output: the machine's BLAS
    cases += [Case("gemm", "gemm", label, 2.0 * m * k * n, "GFLOP/s", maker(v), variant=v)
              for v in ladder_variants]
    return cases



def _kernel_case(name, n, dtype, scales, outputs, args=(), in_place=False):
    """(build, bytes moved) for kernel ``name`` on (n, n) arrays.

    ``scales``: one per input, multiplying seeded standard-normal data (0 gives zeros);
    ``outputs``: how many fresh output arrays follow the inputs; ``in_place``: the kernel
    updates its inputs (optimizers), so those are compared too. Traffic counts each
    input read once and each output (or updated input) written once.
    """
    def build(bk):
        ins = [bk.asarray(_data(f"{name}-{i}", (n, n), dtype) * dtype(s)) for i, s in enumerate(scales)]
        outs = [bk.empty((n, n), dtype) for _ in range(outputs)]
        kernel = getattr(bk, name)
        compared = ins + outs if in_place else outs
        return (lambda: kernel(*ins, *outs, *args)), (lambda value: [bk.to_host(a) for a in compared])
    written = (len(scales) - 1 if in_place else 0) + outputs  # the gradient g is only read
    return build, (len(scales) + written) * n * n * np.dtype(dtype).itemsize


def layer_cases(size, dtype):
    """Every layer kernel on n x n arrays: dense is batch n, n -> n with ReLU fused;
    softmax-cross-entropy has n classes; optimizer updates act on an n x n parameter."""
    n = _parse_size(size, "layers")[0]
    dtype = np.dtype(dtype).type
    item = np.dtype(dtype).itemsize

    def dense(backward):
        def build(bk):
            x, w = bk.asarray(_data("x", (n, n), dtype)), bk.asarray(_data("w", (n, n), dtype) * dtype(0.1))
            b, y = bk.asarray(_data("bias", (n,), dtype)), bk.empty((n, n), dtype)
            bk.dense_forward(x, w, b, y, "relu")
            if not backward:
                return (lambda: bk.dense_forward(x, w, b, y, "relu")), (lambda v: [bk.to_host(y)])
            dy = bk.asarray(_data("dy", (n, n), dtype))
            grads = [bk.empty(shape, dtype) for shape in ((n, n), (n, n), (n, n), (n,))]
            return ((lambda: bk.dense_backward(x, w, y, dy, *grads, "relu")),
                    (lambda v: [bk.to_host(g) for g in grads]))
        return build

    def cross_entropy(backward):
        def build(bk):
            z, t = bk.asarray(_data("logits", (n, n), dtype) * dtype(3)), bk.asarray(_labels("t", n, n))
            probs, dz = bk.empty((n, n), dtype), bk.empty((n, n), dtype)
            bk.softmax_cross_entropy_forward(z, t, probs)
            if backward:
                return (lambda: bk.softmax_cross_entropy_backward(probs, t, dz)), (lambda v: [bk.to_host(dz)])
            return ((lambda: bk.softmax_cross_entropy_forward(z, t, probs)),
                    (lambda v: [np.float64(v), bk.to_host(probs)]))
        return build

    cases = [("dense_forward", dense(False), 2.0 * n ** 3, "GFLOP/s"),
             ("dense_backward", dense(True), 4.0 * n ** 3, "GFLOP/s")]   # dW and dx products
    for act in ("relu", "leaky_relu", "sigmoid", "tanh"):
        extra = (0.01,) if act == "leaky_relu" else ()
        cases.append((f"{act}_forward", *_kernel_case(f"{act}_forward", n, dtype, [3], 1, extra), "GB/s"))
        cases.append((f"{act}_backward", *_kernel_case(f"{act}_backward", n, dtype, [0.3, 1], 1, extra),
                      "GB/s"))   # y, dy -> dx
    cases += [("softmax_cross_entropy_forward", cross_entropy(False), 2.0 * n * n * item, "GB/s"),
              ("softmax_cross_entropy_backward", cross_entropy(True), 2.0 * n * n * item, "GB/s")]
    # p, g, velocity (SGD momentum 0.9); p, g, m, v (Adam, second moment starting at 0).
    # Learning rates of 0.1 make one update change p by about 0.1, far above the
    # tolerance, so a wrong update cannot hide behind a tiny step.
    cases.append(("sgd_update", *_kernel_case("sgd_update", n, dtype, [1, 1, 0.1], 0,
                                              (0.1, 0.9, 0.0, False), in_place=True), "GB/s"))
    cases.append(("adam_update", *_kernel_case("adam_update", n, dtype, [1, 1, 0.1, 0], 0,
                                               (0.1, 0.9, 0.999, 1e-8, 0.0, 1, False), in_place=True),
                  "GB/s"))
    probes = {} if n <= 16 else {c.name: c for c in layer_cases("16", dtype)}
    return [Case("layers", name, str(n), work, unit, build, probes.get(name))
            for name, build, work, unit in cases]


# --- training -----------------------------------------------------------------------

def step_flops(widths, batch):
    """FLOPs of one training step's matrix products: 2*N*I*O forward and 4*N*I*O backward
    per layer, less the first layer's input gradient, which training never needs."""
    pairs = list(zip(widths[:-1], widths[1:]))
    return sum(6.0 * batch * i * o for i, o in pairs) - 2.0 * batch * pairs[0][0] * pairs[0][1]


def training_data(model, dtype):
    """The standardised digits (1,797 images), or random MNIST-shaped rows (6,000 x 784)."""
    widths, _, rows = MODELS[model]
    if model == "digits":
        from .data import load_digits
        X, y = load_digits()
        X = (X - X.mean(0)) / (X.std(0) + 1e-6)
        return X.astype(dtype), y
    return _data("mnist-x", (rows, widths[0]), dtype), _labels("mnist-y", rows, widths[-1])


def _network(backend, widths, dtype):
    """(model, loss, optimizer) through the public API: Dense/ReLU, SGD momentum 0.9, seed 0."""
    import fastnn as fnn
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(fnn.Dense(n_in, n_out, backend=backend, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(fnn.ReLU(backend=backend, dtype=dtype))
    net = fnn.Sequential(layers, backend=backend, seed=0, dtype=dtype)
    return net, fnn.SoftmaxCrossEntropy(), fnn.SGD(net.parameters(), lr=0.01, momentum=0.9)


def train_step(net, loss, optimizer):
    """``step(x, labels) -> loss``, exactly as ``fastnn.fit`` runs one mini-batch
    (:class:`fastnn.step.TrainStep`: the backend's fused step where it has one)."""
    from .step import TrainStep
    step = TrainStep(net, loss, optimizer)
    return lambda x, t: step(x, t)[0]


def train_cases(dtype, models=tuple(MODELS)):
    """A step and an epoch of each model. The first step (or epoch) starts from the same
    seeded weights on every backend, so loss and weights are compared with numpy's."""
    import fastnn as fnn
    cases = []
    for model in models:
        widths, batch, _ = MODELS[model]
        X, y = training_data(model, dtype)
        shape = "-".join(map(str, widths)) + f" b{batch}"

        def step_build(bk, widths=widths, batch=batch, X=X, y=y):
            net, loss, opt = _network(bk.name, widths, dtype)
            step = train_step(net, loss, opt)
            batches = [(bk.asarray(X[i:i + batch]), bk.asarray(y[i:i + batch]))
                       for i in range(0, len(X) - batch + 1, batch)]
            position = [0]

            def call():
                x, t = batches[position[0]]
                position[0] = (position[0] + 1) % len(batches)
                return step(x, t)
            return call, (lambda v: [np.float64(v)] + [p.data for p in net.parameters()])

        def epoch_build(bk, widths=widths, batch=batch, X=X, y=y):
            net, loss, opt = _network(bk.name, widths, dtype)

            def call():
                return fnn.fit(net, loss, opt, X, y, epochs=1, batch_size=batch, seed=0, verbose=0).loss[-1]
            return call, (lambda v: [np.float64(v)] + [p.data for p in net.parameters()])

        flops = step_flops(widths, batch)
        # the python backend's cost is estimated from a smaller network's step: the larger
        # the probe, the less its fixed per-call overhead skews the estimate
        probe = _probe_step([16, 16, 4], 8, dtype) if model == "digits" else _probe_step([64, 64, 10], 32, dtype)
        cases.append(Case("train", f"{model} step", shape, flops, "GFLOP/s", step_build, probe))
        cases.append(Case("train", f"{model} epoch", f"{len(X)} rows", flops * (len(X) / batch), "GFLOP/s",
                          epoch_build, probe))
    return cases


def _probe_step(widths, batch, dtype):
    """A Case running one step of a small MLP on random data (for python estimates)."""
    def build(bk):
        net, loss, opt = _network(bk.name, widths, dtype)
        step = train_step(net, loss, opt)
        x = bk.asarray(_data("probe", (batch, widths[0]), dtype))
        t = bk.asarray(_labels("probe", batch, widths[-1]))
        return (lambda: step(x, t)), (lambda v: [np.float64(v)])
    size = "-".join(map(str, widths)) + f" b{batch}"
    return Case("train", "probe", size, step_flops(widths, batch), "GFLOP/s", build)


# --- running ------------------------------------------------------------------------

# what _measure needs to know of a "backend" for the plain NumPy @ row
_HOST_BLAS = types.SimpleNamespace(name=BLAS, on_device=False)


def _measure(case, bk, reference, repeats, budget):
    """(row, host outputs of the first call): first call, check against ``reference``
    (host arrays; None for the reference itself), then timing. Outputs are None when the
    row is WRONG or an error."""
    sync = _synchronizer(bk)
    try:
        call, outputs = case.build(bk)
        start = time.perf_counter()
        value = call()
        sync()
        first = time.perf_counter() - start
        # copies: on CPU backends to_host hands back the very arrays the timing loop
        # keeps updating (in-place optimizer kernels), and numpy's are the reference
        got = [np.array(a, dtype=np.float64, copy=True) for a in outputs(value)]
    except Exception as exc:  # a crashing kernel is a result too: report it, go on
        return case.row(bk.name, status="error", note=f"{type(exc).__name__}: {exc}"[:200]), None
    error = 0.0 if reference is None else _error(got, reference)
    tol = TOLERANCE[case.dtype]
    if error > tol:
        return case.row(bk.name, status="WRONG", first_s=first, max_error=error,
                        note=f"differs from numpy by {error:.3g} (tolerance {tol:g}); not timed"), None
    median, low, high, samples = time_call(call, sync, repeats, budget)
    return case.row(bk.name, first_s=first, median_s=median, min_s=low, max_s=high, samples=samples,
                    max_error=error), got


def _python_estimate(case, python_rates):
    """(seconds per call estimated for ``case`` on the python backend, what it is based on).

    The rate (work per second) comes from the last python run of the same kernel or model
    at another size where there is one, else from timing the case's tiny probe.
    """
    key = (case.kind, case.name.split()[0])
    if key not in python_rates:
        if case.probe is None:
            return 0.0, ""
        call, _ = case.probe.build(K.get("python"))
        call()
        rate = case.probe.work / time_call(call, repeats=3, budget=2.0)[0]
        python_rates[key] = (rate, f"a {case.probe.size} run")
    rate, basis = python_rates[key]
    return case.work / rate, basis


def run_cases(cases, backends, repeats=5, python_budget=2.0, budget=10.0, dtype=np.float32, progress=True):
    """Measure every case on every backend (numpy first: it is the reference). Returns rows."""
    from tqdm.auto import tqdm

    order = ["numpy"] + [b for b in backends if b != "numpy"]
    rows, python_rates = [], {}
    # disable=None: a bar on a terminal, nothing in a log file
    bar = tqdm(total=len(cases) * len(order), desc="fastnn bench", unit="run",
               disable=None if progress else True, leave=False)
    for case in cases:
        case.dtype = np.dtype(dtype)
        reference = None
        for name in order:
            bar.set_postfix_str(f"{case.name} {case.size} {case.variant} {name}".strip(), refresh=False)
            bar.update(1)
            bk = K.get(name)
            if case.variant and case.variant not in (bk.optional("GEMM_LADDER") or {}):
                continue
            if name == "python":
                estimate, basis = _python_estimate(case, python_rates)
                if estimate > python_budget:
                    rows.append(case.row(name, status="skipped",
                                         note=f"~{_fmt_time(estimate)} per call estimated from {basis} "
                                              f"> --python-budget {python_budget:g} s"))
                    continue
            row, got = _measure(case, bk, reference, repeats, budget)
            if name == "python" and row.median_s:
                python_rates[(case.kind, case.name.split()[0])] = (
                    case.work / row.median_s, f"the {case.name} {case.size} run")
            if name == "numpy" and not case.variant:
                if got is None:
                    raise RuntimeError(f"the numpy reference failed on {case.name} {case.size}: {row.note}")
                reference = got
            rows.append(row)
            if name == "numpy" and case.blas is not None:   # measured right beside numpy
                blas = Case(case.kind, case.name, case.size, case.work, case.unit, case.blas)
                blas.dtype = case.dtype
                rows.append(_measure(blas, _HOST_BLAS, reference, repeats, budget)[0])
    bar.close()
    return rows


def add_ratios(rows):
    """Fill rate, speed-ups over python and numpy and fraction of BLAS in place."""
    base = {}
    for r in rows:
        if r.median_s and not r.variant:
            base[(r.kind, r.case, r.size, r.backend)] = r.median_s
    for r in rows:
        if not r.median_s:
            continue
        r.rate = r.work / r.median_s / 1e9
        key = (r.kind, r.case, r.size)
        if key + ("python",) in base:
            r.vs_python = base[key + ("python",)] / r.median_s
        if key + ("numpy",) in base:
            r.vs_numpy = base[key + ("numpy",)] / r.median_s
        if key + (BLAS,) in base:
            r.of_blas = base[key + (BLAS,)] / r.median_s
    return rows


def run(kind, sizes=None, backends=None, threads=1, repeats=5, python_budget=2.0, dtype="float32",
        models=tuple(MODELS), progress=True):
    """Benchmark ``kind`` ("gemm", "layers" or "train"); returns (rows, info).

    ``sizes``: for gemm "n" or "MxKxN" strings (or ints), for layers ints; ignored by
    train, which runs ``models``. ``backends``: names (default: every available one);
    numpy is always included, as the reference. ``threads`` pins NumPy's BLAS and the
    parallel backends; ``info`` records what the machine and the thread settings were.
    """
    if kind not in KINDS:
        raise ValueError(f"bench: unknown kind {kind!r}; expected one of {KINDS}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"bench: repeats must be a positive integer, got {repeats!r}")
    dtype = np.dtype(dtype)
    if dtype not in TOLERANCE:
        raise ValueError(f"bench: dtype must be float32 or float64, got {dtype}")
    info = setup_threads(threads)
    names = _backends(backends, info)
    sizes = [str(s) for s in (sizes or DEFAULT_SIZES.get(kind, []))]
    if kind == "gemm":
        ladder = []
        for name in names:
            ladder += [v for v in (K.get(name).optional("GEMM_LADDER") or {}) if v not in ladder]
        cases = [c for s in sizes for c in gemm_cases(s, dtype, ladder)]
    elif kind == "layers":
        cases = [c for s in sizes for c in layer_cases(s, dtype)]
    else:
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ValueError(f"bench train: unknown models {unknown}; expected some of {tuple(MODELS)}")
        cases = train_cases(dtype, models)
    rows = run_cases(cases, names, repeats, python_budget, dtype=dtype, progress=progress)
    info.update(kind=kind, dtype=dtype.name, repeats=repeats, python_budget_s=python_budget,
                sample_s=SAMPLE_SECONDS)
    return add_ratios(rows), info


def setup_threads(threads):
    """Pin BLAS and backend threads; returns what the machine reports back."""
    import fastnn as fnn
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"bench: threads must be a positive integer, got {threads!r}")
    fnn.set_num_threads(threads)
    return {"threads": threads, "blas_threads": blas_threads(threads), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__}


def _backends(requested, info):
    status = K.status()
    if requested:
        for name in requested:
            K.resolve(name)   # ValueError for an unknown name
        missing = {n: status[n][1] for n in requested if not status[n][0]}
        if missing:
            raise ValueError("bench: backends not available here: "
                             + "; ".join(f"{n} ({why})" for n, why in missing.items()))
        names = list(dict.fromkeys(["numpy", *requested]))
    else:
        names = [n for n in K.names() if status[n][0]]
    names = sorted(names, key=list(K.names()).index)
    info["backends"] = {n: status[n][1] for n in names}
    return names


# --- reporting ----------------------------------------------------------------------

def _fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _fmt(value, spec, suffix=""):
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_table(rows):
    """The rows as a fixed-width text table (one block per kind)."""
    head = ("case", "size", "backend", "variant", "first call", "median", "min - max", "rate",
            "x vs python", "x vs numpy", "of BLAS", "note")
    lines = []
    for r in sort_rows(rows):
        if r.status == "ok":
            cells = (r.case, r.size, r.backend, r.variant, _fmt_time(r.first_s), _fmt_time(r.median_s),
                     f"{_fmt_time(r.min_s)} - {_fmt_time(r.max_s)}", _fmt(r.rate, ".3g", " " + r.unit),
                     _fmt(r.vs_python, ".3g", "x"), _fmt(r.vs_numpy, ".3g", "x"),
                     _fmt(None if r.of_blas is None else 100 * r.of_blas, ".3g", "%"), "")
        else:
            first = _fmt_time(r.first_s) if r.first_s else "-"
            cells = (r.case, r.size, r.backend, r.variant, first, r.status, "", "", "", "", "", r.note)
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    legend = ("x vs python, x vs numpy: speed-ups, that backend's median time / this one's "
              "(higher is faster); of BLAS: BLAS time / this one's")
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines] + [legend])


def sort_rows(rows):
    """Kind, then case and size as first measured, the backends' own kernels before their
    ladder variants, backends in registry order, variants in ladder order (naive first)."""
    order = {n: i for i, n in enumerate(K.names())}
    order[BLAS] = len(order)
    firsts, rungs = {}, {}
    for r in rows:
        firsts.setdefault((r.case, r.size), len(firsts))
        if r.variant and r.backend not in rungs:
            rungs[r.backend] = list(K.get(r.backend).optional("GEMM_LADDER") or [])
    rung = lambda r: rungs[r.backend].index(r.variant) if r.variant in rungs.get(r.backend, []) else -1
    return sorted(rows, key=lambda r: (KINDS.index(r.kind), firsts[(r.case, r.size)], r.variant != "",
                                       order.get(r.backend, 99), rung(r)))


def write_files(rows, info, out_dir, kind):
    """bench_<kind>.csv, .json and .png in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"bench_{kind}")
    rows = sort_rows(rows)
    fields = [f.name for f in dataclasses.fields(Row)]
    with open(base + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)
    with open(base + ".json", "w") as f:
        json.dump({"info": info, "rows": [_finite(dataclasses.asdict(r)) for r in rows]}, f, indent=1)
    plot(rows, base + ".png", kind, info)
    return [base + ext for ext in (".csv", ".json", ".png")]


def _finite(record):
    """JSON has no Infinity/NaN: such values (an infinite error) become null."""
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in record.items()}


def plot(rows, path, kind, info):
    """The chart (see :func:`fastnn.plots.plot_bench`): speed-ups over numpy per case and
    size on a linear axis from 0; for gemm also the ladder's GFLOP/s against n."""
    from .plots import plot_bench
    title = (f"fastnn bench {kind}: {info.get('dtype')}, {info.get('threads')} thread(s), "
             f"median of {info.get('repeats')} samples")
    return plot_bench(sort_rows(rows), path, title, BLAS)


# --- command line -------------------------------------------------------------------

def add_commands(subparsers):
    """Register ``fastnn bench`` on the CLI's subparsers."""
    from .cli import non_negative_float, positive_int
    p = subparsers.add_parser(
        "bench", help="time every backend's kernels side by side (gemm, layers, train)",
        description="Time kernels on every backend with warm-up and repeats; check each against "
                    "numpy first. Without a kind, runs gemm, layers and train in turn.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("kind", nargs="?", choices=KINDS + ("all",), default="all")
    p.add_argument("--sizes", nargs="+", metavar="N",
                   help="gemm: n or MxKxN (default 64 128 256 512); layers: n (same default); "
                        "train ignores sizes")
    p.add_argument("--backends", nargs="+", metavar="NAME", help="default: every available backend")
    p.add_argument("--threads", type=positive_int, default=1, help="BLAS and backend threads")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed samples per measurement")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="train only")
    p.add_argument("--python-budget", type=non_negative_float, default=2.0, metavar="SECONDS",
                   help="largest estimated time per call at which the python backend still runs")
    p.add_argument("--out", default=os.path.join("fastnn-out", "bench"), metavar="DIR",
                   help="folder for bench_<kind>.csv/.json/.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args):
    from .cli import writable_folder
    from .teach.progress import compile_notice
    kinds = KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:   # refuse bad sizes, backends and folders before any kind has run
        if kind != "train":
            [_parse_size(size, kind) for size in args.sizes or ()]
    names = _backends(args.backends, {})
    writable_folder(args.out)
    for name in names:   # their first calls compile: say so, and how long
        notice = compile_notice(name)
        if notice:
            print(notice + " (inside the first-call times)", file=sys.stderr, flush=True)
    failed = False
    for kind in kinds:
        rows, info = run(kind, None if kind == "train" else args.sizes, args.backends, args.threads,
                         args.repeats, args.python_budget, args.dtype, tuple(args.models),
                         progress=not args.no_progress)
        blas = info["blas_threads"]
        print(f"fastnn bench {kind}: {info['dtype']}, {info['threads']} thread(s) "
              f"(numpy BLAS: {blas if blas is not None else 'unknown'}), {info['cpu_count']} CPUs, "
              f"median of {info['repeats']} samples; backends: {', '.join(info['backends'])}")
        print(format_table(rows))
        paths = write_files(rows, info, args.out, kind)
        print(f"written: {', '.join(paths)}\n")
        wrong = [f"{r.backend} {r.case} {r.variant} {r.size}".replace("  ", " ") for r in rows
                 if r.status in ("WRONG", "error")]
        if wrong:
            failed = True
            print(f"results that disagree with numpy or failed: {'; '.join(wrong)}")
    return 1 if failed else 0
