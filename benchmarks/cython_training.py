"""Training speed: fastnn's Cython backend against the NumPy backend and PyTorch eager.

    python benchmarks/cython_training.py [--repeats 5] [--threads 2] [--only digits|mnist]
                                         [--no-torch] [--json rows.json]

Two workloads, SGD (momentum 0.9), softmax cross-entropy, float32:

* ``digits``: MLP 64-64-10 on the bundled 8x8 digits (1,797 images), batch 32 -- a
  small model where per-step overhead dominates;
* ``mnist``: MLP 784-256-128-10 on 60,000 x 784 random float32 rows, batch 128 --
  matrix products dominate.

One *epoch* (shuffle, every mini-batch step) is timed per engine in turn, ``repeats``
times after one untimed warm-up epoch each (each turn starts after a pause that lets
the previous engine's idle threads stop spinning; epochs under 0.2 s run once untimed
first); the table shows the median epoch time and
the median of the per-round ratios (runs of one round are neighbours in time, which
keeps ratios steady on a shared machine). fastnn epochs are ``fit(..., epochs=1)``:
"cython" is the fused one-call-per-step path, "cython (layers)" the same kernels
called layer by layer (``fused=False``), "numpy" the reference backend. PyTorch runs
the textbook eager loop (``zero_grad``, forward, ``CrossEntropyLoss``, ``backward``,
``step``) on the same shuffled batches.

Threads: the whole run happens in a subprocess whose OpenBLAS (NumPy), OpenMP (Cython)
and PyTorch are all pinned to ``--threads`` (default: the number of CPUs).

``main()`` returns {workload: {engine: [epoch seconds, ...]}}.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR, MOMENTUM = 0.01, 0.9
SETTLE = 0.12  # seconds for the previous engine's idle threads to stop spinning
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def workload(name):
    """(X float32, y int64, layer widths, batch size)."""
    import numpy as np
    if name == "digits":
        from fastnn.data import load_digits
        X, y = load_digits()
        return X / 16.0, y, [64, 64, 10], 32
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60000).astype(np.int64)
    return X, y, [784, 256, 128, 10], 128


def fastnn_epoch(backend, widths, fused):
    """A function running one training epoch of a fresh fastnn MLP on ``backend``."""
    import fastnn as fnn
    layers = [fnn.Dense(widths[i], widths[i + 1], activation="relu" if i + 2 < len(widths) else "linear")
              for i in range(len(widths) - 1)]
    model = fnn.Sequential(layers, backend=backend, seed=0)
    opt = fnn.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss = fnn.SoftmaxCrossEntropy()
    if fused and backend == "cython":
        assert fnn.TrainStep(model, loss, opt).fused

    def epoch(X, y, batch, seed):
        fnn.fit(model, loss, opt, X, y, epochs=1, batch_size=batch, seed=seed, verbose=0, fused=fused)
    return epoch


def torch_epoch(widths):
    import numpy as np
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


def measure(name, repeats, with_torch):
    X, y, widths, batch = workload(name)
    runners = {"cython": fastnn_epoch("cython", widths, True),
               "cython (layers)": fastnn_epoch("cython", widths, False),
               "numpy": fastnn_epoch("numpy", widths, True)}
    if with_torch:
        try:
            runners["torch eager"] = torch_epoch(widths)
        except ImportError:
            print("(PyTorch not installed: skipped)", file=sys.stderr)
    last = {}
    for key, run in runners.items():           # warm-up: allocations, caches, lazy imports
        start = time.perf_counter()
        run(X, y, batch, 0)
        last[key] = time.perf_counter() - start
    times = {k: [] for k in runners}
    for r in range(repeats):
        for key, run in runners.items():
            # Three thread pools share this process (OpenBLAS, OpenMP, PyTorch's OpenMP) and
            # a pool that has just worked keeps spinning for a while (OpenBLAS ~0.1 s): each
            # engine starts after a pause, and short epochs after an untimed one.
            time.sleep(SETTLE)
            if last[key] < 0.2:
                run(X, y, batch, r + 1)
            start = time.perf_counter()
            run(X, y, batch, r + 1)
            last[key] = time.perf_counter() - start
            times[key].append(last[key])
    return widths, batch, len(X), times


def report(name, widths, batch, n, times):
    print(f"\n{name}: MLP {'-'.join(map(str, widths))}, {n} rows, batch {batch}, SGD momentum, float32")
    print(f"{'engine':<18}{'epoch (ms)':>12}{'cython is x faster':>20}")
    mine = times["cython"]
    for key, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, mine))
        print(f"{key:<18}{statistics.median(t) * 1e3:>12.2f}{ratio:>20.2f}")


def run(args):
    """The measurement itself (in the pinned subprocess)."""
    sys.path.insert(0, ROOT)
    import fastnn as fnn
    fnn.set_num_threads(args.threads)
    cb = fnn.get_backend("cython").module
    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_note = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_note = "torch not installed"
    print(f"cython backend: {cb.available()[1]}; {torch_note}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; "
          f"median of {args.repeats} interleaved epochs")
    results = {}
    for name in ([args.only] if args.only else ["digits", "mnist"]):
        widths, batch, n, times = measure(name, args.repeats, not args.no_torch)
        report(name, widths, batch, n, times)
        results[name] = times
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", choices=["digits", "mnist"])
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", help="also write the epoch times to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        results = run(args)
        print(json.dumps(results))
        return results
    env = dict(os.environ, **{k: str(args.threads) for k in BLAS_ENV})
    cmd = [sys.executable, os.path.abspath(__file__), "--worker"] + list(argv if argv is not None else sys.argv[1:])
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    results = json.loads(lines[-1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
