"""Data-parallel training under MPI (fastnn.distributed).

Every MPI run is a subprocess of a small script (written below) under the venv's
``mpiexec`` (MPICH, from the ``mpi`` extra), with a timeout, so a hang fails the test
instead of stalling the suite. The equality tests compare the weights after several
steps of ``fit(distributed=True)`` on 2 and 3 ranks with a one-process ``fit`` of the
same global batches, computed on rank 0 of the same job.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastnn.distributed import shard_bounds

BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or not MPIEXEC.exists(),
    reason="mpi4py or the venv's mpiexec is not installed (pip install -e '.[mpi]')")

SCRIPT = r'''
import json, sys
import numpy as np
import fastnn as fnn
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
mode, backend, dtype, optimizer = sys.argv[1:5]
rows, batch = int(sys.argv[5]), 16     # the last 10% of the rows validate

def data():
    rng = np.random.default_rng(1)
    return rng.normal(size=(rows, 6)), rng.integers(0, 3, rows)

def model(hidden=12, extra=()):
    return fnn.Sequential([fnn.Dense(6, hidden), fnn.Tanh(), *extra, fnn.Dense(hidden, 3)],
                          seed=3 + rank, backend=backend, dtype=dtype)   # seeds differ: rank 0's weights win

def train(distributed, m=None, **kw):
    m = m or model()
    opt = (fnn.SGD(m.parameters(), lr=0.2, momentum=0.9) if optimizer == "sgd"
           else fnn.Adam(m.parameters(), lr=0.01))
    X, y = data()
    h = fnn.fit(m, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=3, batch_size=batch, seed=5,
                verbose=kw.pop("verbose", 0), distributed=distributed, validation_split=0.1, **kw)
    return m, h

def report(result):
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)

if mode == "equal":
    kw = {"regularizers": [fnn.L2(1e-3)], "clip_norm": 1.0} if optimizer == "sgd" else {}
    m, h = train(True, **kw)
    weights = np.concatenate([p.data.ravel() for p in m.parameters()])
    spread = max(float(np.abs(w - weights).max()) for w in comm.allgather(weights))
    result = None
    if rank == 0:      # one process from rank 0's initial weights (its seed): the reference
        r, hr = train(False, **kw)
        ref_w = np.concatenate([p.data.ravel() for p in r.parameters()])
        result = {"max_diff": float(np.abs(ref_w - weights).max()), "rank_spread": spread,
                  "loss": h.loss, "ref_loss": hr.loss, "val_loss": h.val_loss, "ref_val_loss": hr.val_loss}
    report(result)
elif mode == "verbose":
    train(True, verbose=2)
elif mode == "fail-callback":
    class Boom(fnn.Callback):
        def on_epoch_end(self, epoch, logs):
            if rank == size - 1 and epoch == 1:
                raise RuntimeError(f"boom on rank {rank}")
    train(True, callbacks=[Boom()])
elif mode == "fail-data":
    X, y = data()
    if rank == 1:
        X[3, 2] = np.nan      # rank 1 fails its input check; the others wait in the start-up check
    m = model()
    fnn.fit(m, fnn.SoftmaxCrossEntropy(), fnn.SGD(m.parameters()), X, y, epochs=1, verbose=0, distributed=True)
elif mode == "mismatch":
    train(True, m=model(hidden=12 if rank == 0 else 13))
elif mode == "batchnorm":
    from fastnn.distributed import DataParallel
    m, loss = model(extra=[fnn.BatchNorm1d(12)]), fnn.SoftmaxCrossEntropy()
    try:                                    # refused alike on every rank: catchable
        DataParallel(m, fnn.SGD(m.parameters()), loss=loss, seed=7)
        error = None
    except ValueError as exc:
        error = str(exc)
    dp = DataParallel(m, fnn.SGD(m.parameters()), loss=loss, seed=7, local_batchnorm=True)
    X, y = data()
    for start in range(0, 48, batch):       # a custom loop over global batches
        lo, hi = dp.shard(batch)
        dp.step(X[start + lo:start + hi], y[start + lo:start + hi])
    dp.sync_buffers()
    stats = np.concatenate([m.layers[2].buffers()[k] for k in ("running_mean", "running_var")])
    spread = max(float(np.abs(s - stats).max()) for s in comm.allgather(stats))
    report({"error": error, "spread": spread, "moved": float(np.abs(stats[:12]).max())})
elif mode == "dropout":
    from fastnn.distributed import DataParallel
    m = model(extra=[fnn.Dropout(0.5)])
    dp = DataParallel(m, fnn.SGD(m.parameters()), loss=fnn.SoftmaxCrossEntropy(), seed=7)
    draws = comm.gather(float(m.layers[2].rng.random()), root=0)
    expected = [float(np.random.default_rng([7, r, 0]).random()) for r in range(size)]
    report({"draws": draws, "expected": expected})
'''


def _run(tmp_path, ranks, *args, timeout=60):
    """(exit status, stdout + stderr, seconds) of SCRIPT under ``mpiexec -n ranks``
    (ranks=None: plain python, one rank)."""
    script = tmp_path / "dp_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, str(script), *args]
    if ranks is not None:
        command = [str(MPIEXEC), "-n", str(ranks), *command]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def _result(output):
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, output[-3000:]
    return json.loads(lines[0][len("RESULT "):])


def test_shard_bounds_split_evenly_first_ranks_take_the_rest():
    assert [shard_bounds(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_bounds(2, 3, r) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]
    assert [shard_bounds(8, 2, r) for r in range(2)] == [(0, 4), (4, 8)]


def test_import_fastnn_does_not_import_mpi4py():
    code = "import sys, fastnn, fastnn.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_without_mpi4py_only_distributed_fit_fails_and_says_how_to_install():
    code = """
import sys
sys.modules["mpi4py"] = None          # as if it were not installed
import numpy as np, fastnn as fnn
m = fnn.Sequential([fnn.Dense(2, 2)], seed=0, backend="numpy")
X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
fnn.fit(m, fnn.SoftmaxCrossEntropy(), fnn.SGD(m.parameters()), X, y, epochs=1, verbose=0)
try:
    fnn.fit(m, fnn.SoftmaxCrossEntropy(), fnn.SGD(m.parameters()), X, y, epochs=1, verbose=0, distributed=True)
except ImportError as exc:
    print("ImportError:", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ImportError:" in out.stdout and "fastnn[mpi]" in out.stdout


# Rows: 68 -> 61 training rows, batches 16, 16, 16, 13 (13 = 7/6 on 2 ranks, 5/4/4 on 3;
# 16 = 6/5/5 on 3); 55 -> 49 training rows, a last batch of one row: ranks 1 and 2 empty.
CASES = [  # (ranks, backend, dtype, optimizer, rows, tolerance)
    (2, "numpy", "float64", "sgd", 68, 1e-12),
    (3, "numpy", "float64", "sgd", 68, 1e-12),
    (3, "numpy", "float64", "adam", 55, 1e-12),
    (3, "numba", "float32", "adam", 68, 1e-5),
    (2, "cython", "float32", "sgd", 68, 1e-5),
]


@needs_mpi
@pytest.mark.parametrize("ranks,backend,dtype,optimizer,rows,tol", CASES)
def test_mpiexec_fit_equals_one_process(tmp_path, ranks, backend, dtype, optimizer, rows, tol):
    import fastnn.kernels as K
    if backend not in K.available():
        pytest.skip(f"backend {backend} is not built here")
    status, output, _ = _run(tmp_path, ranks, "equal", backend, dtype, optimizer, str(rows))
    assert status == 0, output[-3000:]
    res = _result(output)
    print(f"{ranks} ranks {backend} {dtype} {optimizer} {rows} rows: largest weight difference "
          f"{res['max_diff']:.3g}")
    assert res["rank_spread"] == 0.0            # every rank holds the very same weights
    assert res["max_diff"] <= tol
    assert res["loss"] == pytest.approx(res["ref_loss"], rel=10 * tol)
    assert res["val_loss"] == pytest.approx(res["ref_val_loss"], rel=10 * tol)


@needs_mpi
def test_without_mpiexec_distributed_fit_runs_as_one_process(tmp_path):
    status, output, _ = _run(tmp_path, None, "equal", "numpy", "float64", "sgd", "68")
    assert status == 0, output[-3000:]
    assert _result(output)["max_diff"] <= 1e-12


@needs_mpi
@pytest.mark.parametrize("mode,message", [("fail-callback", "boom on rank 2"),
                                          ("fail-data", "contains NaN or Inf")])
def test_a_failing_rank_ends_every_rank_with_its_message(tmp_path, mode, message):
    status, output, seconds = _run(tmp_path, 3, mode, "numpy", "float64", "sgd", "68", timeout=30)
    assert status != 0
    assert message in output and "aborting all ranks" in output, output[-3000:]
    assert seconds < 20


@needs_mpi
def test_ranks_with_different_models_are_refused_at_start(tmp_path):
    status, output, seconds = _run(tmp_path, 2, "mismatch", "numpy", "float64", "sgd", "68", timeout=30)
    assert status != 0
    assert "different models or settings" in output and "rank 1: architecture" in output, output[-3000:]
    assert seconds < 20


@needs_mpi
def test_batchnorm_is_refused_with_several_ranks_unless_local_statistics_are_asked(tmp_path):
    status, output, _ = _run(tmp_path, 2, "batchnorm", "numpy", "float64", "sgd", "68", timeout=30)
    assert status == 0, output[-3000:]
    res = _result(output)
    assert "BatchNorm1d" in res["error"] and "local_batchnorm=True" in res["error"]
    assert res["moved"] > 0 and res["spread"] == 0.0     # running statistics averaged: alike


@needs_mpi
def test_dropout_masks_follow_the_documented_seed_rule(tmp_path):
    status, output, _ = _run(tmp_path, 2, "dropout", "numpy", "float64", "sgd", "68", timeout=30)
    assert status == 0, output[-3000:]
    res = _result(output)
    assert res["draws"] == res["expected"]
    assert res["draws"][0] != res["draws"][1]


@needs_mpi
def test_only_rank_0_prints_progress(tmp_path):
    status, output, _ = _run(tmp_path, 3, "verbose", "numpy", "float64", "sgd", "68", timeout=30)
    assert status == 0, output[-3000:]
    assert output.count("epoch 1/3 ") == 1 and output.count("epoch 3/3 ") == 1, output


@needs_mpi
def test_fastnn_train_distributed_matches_one_process_and_only_rank_0_writes(tmp_path):
    """``mpiexec -n 2 fastnn train --distributed``: the same final loss and test metrics as
    one process at the same global batch, printed once, the model saved once by rank 0."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    args = [str(BIN / "fastnn"), "train", "--dataset", "xor", "--epochs", "3", "--backend", "numpy", "--seed", "0"]
    one = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    many = subprocess.run([str(MPIEXEC), "-n", "2", *args, "--distributed", "--save", "m.npz"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert one.returncode == 0 and many.returncode == 0, many.stdout + many.stderr

    def finals(out):
        return [line.split(" in ")[0] if line.startswith("done") else line
                for line in out.splitlines() if line.startswith(("done", "test accuracy"))]
    assert many.stdout.count("training xor") == 1 and "2 MPI ranks" in many.stdout
    assert [line.split(";", 1)[-1] for line in finals(many.stdout)] == \
           [line.split(";", 1)[-1] for line in finals(one.stdout)]
    assert many.stdout.count("model saved to m.npz") == 1 and (tmp_path / "m.npz").exists()
