"""Time per training step of the small digits MLP (64-64-10, batch 32, SGD momentum),
through ``fnn.fit`` as a user runs it: fused step where the backend has one, and the
layer-by-layer path (``fused=False``).

    python benchmarks/step_overhead.py [--backends cython numba numpy] [--epochs 7] [--threads 1]

Per backend and path: median of the per-epoch times after one warm-up epoch, divided
by the 45 steps of an epoch (1,437 training rows). Microseconds per step.
"""

import argparse
import time

import numpy as np


def measure(backend, fused, epochs, threads):
    import fastnn as fnn

    fnn.set_num_threads(threads)
    X, y = fnn.data.load_digits()
    X = ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32)[:1437]
    y = y[:1437]
    model = fnn.Sequential([fnn.Dense(64, 64), fnn.ReLU(), fnn.Dense(64, 10)], backend=backend, seed=0)
    opt = fnn.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = fnn.SoftmaxCrossEntropy()
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        fnn.fit(model, loss, opt, X, y, epochs=1, batch_size=32, verbose=0, fused=fused, seed=0)
        times.append(time.perf_counter() - start)
    steps = -(-len(X) // 32)
    return float(np.median(times[1:])) / steps * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["cython", "numba", "numpy"])
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print(f"{'backend':<8} {'path':<16} {'us/step':>9}")
    for backend in args.backends:
        for fused in (True, False):
            us = measure(backend, fused, args.epochs, args.threads)
            print(f"{backend:<8} {'fused' if fused else 'layer by layer':<16} {us:>9.1f}")


if __name__ == "__main__":
    main()
