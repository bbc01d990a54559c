"""Training speed: fastnn's Numba backend against the NumPy backend and PyTorch eager.

    python benchmarks/numba_training.py [--repeats 5] [--threads 2] [--only digits|mnist]

Two workloads, SGD (momentum 0.9), softmax cross-entropy, float32:

* ``digits``: MLP 64-64-10 on the bundled 8x8 digits (1,797 images), batch 32 — a
  small model where per-layer Python overhead dominates;
* ``mnist``: MLP 784-256-128-10 on 60,000 x 784 random float32 rows, batch 128 —
  matrix products dominate.

One *epoch* (shuffle, every mini-batch step) is timed per engine in turn, ``repeats``
times after one untimed warm-up epoch each, with a 0.3 s pause before each (idle
BLAS/OpenMP threads of the previous engine keep spinning for a while and would
slow the next one down); the table shows the median epoch time
and the median of the per-round ratios (runs of one round are neighbours in time,
which keeps the ratios steady on a shared machine). fastnn epochs are ``fit(...,
epochs=1)`` calls; "numba" is the fused one-call-per-step path, "numba (layers)" the
same backend with ``fused=False``. PyTorch (optional: skipped if not installed) runs
the textbook eager loop: ``zero_grad``, forward, ``CrossEntropyLoss``, ``backward``,
``step``. Threads: ``--threads`` for Numba and PyTorch; NumPy's BLAS uses its own
default unless ``OPENBLAS_NUM_THREADS`` is set.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastnn as fnn  # noqa: E402
from fastnn.data import load_digits  # noqa: E402
from fastnn.layers import Dense, Sequential  # noqa: E402
from fastnn.losses import SoftmaxCrossEntropy  # noqa: E402
from fastnn.optim import SGD  # noqa: E402
from fastnn.training import fit  # noqa: E402

LR, MOMENTUM = 0.01, 0.9
SETTLE = 0.3   # s: OpenBLAS / OpenMP workers spin ~0.1 s after their last task, stealing cores


def workload(name):
    """(X float32, y int64, layer widths, batch size)."""
    if name == "digits":
        X, y = load_digits()
        return X / 16.0, y, [64, 64, 10], 32
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60000).astype(np.int64)
    return X, y, [784, 256, 128, 10], 128


def fastnn_epoch(backend, widths, fused):
    """A function running one training epoch of a fresh fastnn MLP on ``backend``."""
    layers = [Dense(widths[i], widths[i + 1], activation="relu" if i + 2 < len(widths) else "linear")
              for i in range(len(widths) - 1)]
    model = Sequential(layers, backend=backend, seed=0)
    opt = SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss = SoftmaxCrossEntropy()

    def epoch(X, y, batch, seed):
        fit(model, loss, opt, X, y, epochs=1, batch_size=batch, seed=seed, verbose=0, fused=fused)
    return epoch


def torch_epoch(widths):
    import torch
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(X, y, batch, seed):
        order = np.random.default_rng(seed).permutation(len(X))
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            xb, yb = torch.from_numpy(X[idx]), torch.from_numpy(y[idx])
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    return epoch


def engines(widths, with_torch):
    found = {"numpy": fastnn_epoch("numpy", widths, True),
             "numba": fastnn_epoch("numba", widths, True),
             "numba (layers)": fastnn_epoch("numba", widths, False)}
    if with_torch:
        try:
            found["torch eager"] = torch_epoch(widths)
        except ImportError:
            print("(PyTorch not installed: skipped)")
    return found


def measure(name, repeats, with_torch=True):
    X, y, widths, batch = workload(name)
    runners = engines(widths, with_torch)
    for run in runners.values():               # warm-up: JIT compilation, allocations
        run(X, y, batch, 0)
    times = {k: [] for k in runners}
    for r in range(repeats):
        for key, run in runners.items():
            time.sleep(SETTLE)                 # let the previous engine's spinning threads sleep
            start = time.perf_counter()
            run(X, y, batch, r + 1)
            times[key].append(time.perf_counter() - start)
    return widths, batch, len(X), times


def report(name, widths, batch, n, times):
    print(f"\n{name}: MLP {'-'.join(map(str, widths))}, {n} rows, batch {batch}, SGD momentum, float32")
    print(f"{'engine':<16}{'epoch (ms)':>12}{'numba is x faster':>20}")
    numba = times["numba"]
    for key, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, numba))
        print(f"{key:<16}{statistics.median(t) * 1e3:>12.2f}{ratio:>20.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", choices=["digits", "mnist"])
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        fnn.set_num_threads(args.threads)
    threads = fnn.get_backend("numba").module.get_num_threads()
    try:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        torch_note = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_note = "torch not installed"
    print(f"numba backend {threads} threads; {torch_note}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
          f"median of {args.repeats} interleaved epochs")
    results = {}
    for name in ([args.only] if args.only else ["digits", "mnist"]):
        widths, batch, n, times = measure(name, args.repeats, not args.no_torch)
        report(name, widths, batch, n, times)
        results[name] = times
    return results


if __name__ == "__main__":
    main()
