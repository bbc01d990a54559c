"""The ``fastnn`` command line: progress and compile notices, one-line errors with exit
status 2, demo's backends and exit status, broken pipes, check_html.sh and the Makefile.

Tiny sizes and one or two epochs throughout; in-process through ``fastnn.cli.main``
except where the real entry point's exit status and stderr are the point.
"""

import io
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import fastnn as fnn
from fastnn import cli
from fastnn.cli import main

ROOT = pathlib.Path(__file__).parents[1]
HAS_NUMBA = "numba" in fnn.available_backends()
EXAMPLE = ["--inputs", "0.9", "0.3", "--weights", "1.2", "-0.8"]


class Terminal(io.StringIO):
    """A stand-in stderr that says it is a terminal, so tqdm draws its bars into it."""

    def isatty(self):
        return True


def _fails(argv, capsys, out=None):
    """(exit status, stderr) of a command that must fail, whether argparse or the command refused
    it; ``out`` (a list) receives its stdout."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    if out is not None:
        out.append(captured.out)
    return status, captured.err


def _one_error_line(err, command):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastnn {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- 1. saying what is going on -----------------------------------------------------------------

def test_demo_draws_a_progress_bar_over_each_backends_epochs(tmp_path, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["demo", "--epochs", "2", "--backends", "numpy", "--out", str(tmp_path)]) == 0
    drawn = terminal.getvalue()
    assert "numpy: training" in drawn and "0/2 [" in drawn and "epoch/s" in drawn


@pytest.mark.skipif(not HAS_NUMBA, reason="needs the numba backend")
def test_demo_and_warmup_say_the_numba_kernels_compile_when_the_cache_is_cold(tmp_path, monkeypatch, capsys):
    from fastnn.teach import progress
    monkeypatch.setattr(progress, "numba_cache_is_cold", lambda: True)
    assert main(["demo", "--epochs", "1", "--backends", "numba", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("compiling the numba kernels") == 1 and "1-3 minutes" in err and "cached" in err
    assert main(["warmup"]) == 0
    captured = capsys.readouterr()
    assert "compiling the numba kernels" in captured.err and "numba: every kernel" in captured.out
    monkeypatch.setattr(progress, "numba_cache_is_cold", lambda: None)   # cannot tell: says both
    assert "compiling or loading" in progress.compile_notice("numba")


@pytest.mark.skipif(not HAS_NUMBA, reason="needs the numba backend")
def test_the_numba_cache_state_can_be_read_with_this_numba(tmp_path):
    from fastnn.teach import progress
    assert progress.numba_cache_is_cold() in (True, False)   # None: the cache index could not be read
    assert progress.compile_notice("numpy") is None and progress.compile_notice("python") is None
    empty = subprocess.run([sys.executable, "-c", "from fastnn.teach.progress import compile_notice; "
                            "print(compile_notice('numba'))"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})   # a cache with nothing in it
    assert "numba: compiling the numba kernels: about 1-3 minutes" in empty.stdout, empty.stderr


def test_study_draws_a_progress_bar_over_every_runs_epochs(tmp_path, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["study", "optimizers", "--epochs", "3", "--out", str(tmp_path)]) == 0
    drawn = terminal.getvalue()
    assert "study optimizers" in drawn and "0/9 [" in drawn   # three optimizers, three epochs each


# --- 3, 4. demo: its backends and its exit status -------------------------------------------------

def test_demo_rejects_an_unknown_backend_and_lists_the_valid_ones(tmp_path, capsys):
    status, err = _fails(["demo", "--backends", "nummpy", "--out", str(tmp_path / "out")], capsys)
    line = _one_error_line(err, "demo")
    assert status == 2 and "unknown backend 'nummpy'" in line
    assert all(name in line for name in fnn.kernels.names())
    assert not (tmp_path / "out").exists()


def test_demo_says_why_an_unavailable_backend_is_skipped(tmp_path, monkeypatch, capsys):
    status = dict(fnn.backend_status(), numba=(False, "numba is not installed (stand-in)"))
    monkeypatch.setattr(fnn, "backend_status", lambda: status)
    monkeypatch.setattr(fnn, "available_backends", lambda: [n for n, (ok, _) in status.items() if ok])
    assert main(["demo", "--epochs", "1", "--backends", "numpy", "numba", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipping numba: numba is not installed (stand-in)" in out
    assert "\nnumpy " in out and "\nnumba " not in out
    code, err = _fails(["demo", "--epochs", "1", "--backends", "numba", "--out", str(tmp_path)], capsys)
    assert code == 2 and "can run here" in _one_error_line(err, "demo")


def test_demo_with_few_epochs_reports_the_accuracy_and_succeeds(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--backends", "numpy", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy")[1].split()[0])
    assert accuracy < 0.95 and "below 0.95" in out   # one epoch is not enough; that is no failure


def test_demo_fails_when_training_breaks(tmp_path, capsys):
    assert main(["demo", "--epochs", "2", "--lr", "1e6", "--backends", "numpy", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "training broke" in captured.out and "the loss became" in captured.out
    assert _one_error_line(captured.err, "demo")


# --- 5. one-line errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, option", [
    (["train", "--hidden", "64x32"], "--hidden"),
    (["train", "--hidden", "64,0"], "--hidden"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--lr", "-0.1"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--momentum", "1.5"], "--momentum"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--dataset", "iris"], "--dataset"),
    (["demo", "--epochs", "-3"], "--epochs"),
    (["demo", "--hidden", "0"], "--hidden"),
    (["demo", "--lr", "0"], "--lr"),
    (["bench", "--threads", "0"], "--threads"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--python-budget", "-1"], "--python-budget"),
    (["neuron", *EXAMPLE, "--decimals", "-1"], "--decimals"),
    (["neuron", *EXAMPLE, "--hidden", "0"], "--hidden"),
    (["neuron", *EXAMPLE, "--target", "1", "--lr", "-1"], "--lr"),
    (["visualize", "--epochs", "0"], "--epochs"),
    (["visualize", "--noise", "-0.1"], "--noise"),
    (["visualize", "--batch-size", "0"], "--batch-size"),
    (["study", "optimizers", "--epochs", "0"], "--epochs"),
])
def test_bad_numbers_are_one_line_errors_naming_the_option(argv, option, capsys):
    status, err = _fails(argv, capsys)
    assert status == 2
    assert option in _one_error_line(err, argv[0])


def test_a_diverging_run_is_one_line_from_the_real_entry_point():
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", "train", "--dataset", "moons", "--backend",
                             "numpy", "--hidden", "8", "--epochs", "3", "--lr", "1e6"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    line = _one_error_line(result.stderr, "train")
    assert "the loss became" in line and "lower learning rate" in line


def _not_a_folder(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    return str(tmp_path / "file" / "out")


@pytest.mark.parametrize("argv", [
    ["train", "--save", "{missing}/model.npz"],
    ["train", "--plot", "{tmp}"],
    ["demo", "--backends", "numpy", "--out", "{file}"],
    ["visualize", "--out", "{file}"],
    ["study", "optimizers", "--out", "{file}"],
    ["bench", "gemm", "--sizes", "8", "--backends", "numpy", "--no-progress", "--out", "{file}"],
])
def test_unwritable_paths_are_refused_before_any_work(argv, tmp_path, capsys):
    paths = {"missing": str(tmp_path / "missing"), "tmp": str(tmp_path), "file": _not_a_folder(tmp_path)}
    argv = [a.format(**paths) for a in argv] + ["--epochs", "1"] * (argv[0] in ("train", "demo"))
    out = []
    status, err = _fails(argv, capsys, out)
    assert status == 2 and any(option in _one_error_line(err, argv[0]) for option in ("--save", "--plot", "--out"))
    assert out == [""]   # refused before training or timing started


def test_a_network_too_large_for_memory_is_one_line(capsys):
    status, err = _fails(["train", "--hidden", "1000000000", "--epochs", "1"], capsys)
    assert status == 2 and "not enough memory" in _one_error_line(err, "train")


def test_any_memory_error_is_one_line(monkeypatch, capsys):
    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.00 TiB for an array with shape (64, 10**12)")
    monkeypatch.setattr(cli, "build_mlp", too_big)
    status, err = _fails(["train", "--dataset", "xor", "--epochs", "1"], capsys)
    assert status == 2 and "not enough memory: Unable to allocate" in _one_error_line(err, "train")


def test_a_closed_pipe_is_no_traceback():
    # `fastnn neuron ... | head -0`: the reader is gone before anything is written
    child = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "neuron", *EXAMPLE],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --- 6. one speed-up convention -----------------------------------------------------------------

def test_demo_table_labels_its_speed_up(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--backends", "python", "numpy", "--hidden", "4",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("backend "))
    assert "speed-up vs numpy" in header and "higher is faster" in out
    python = next(line for line in out.splitlines() if line.startswith("python ") and "x " in line)
    assert float(python.split("ms")[1].split("x")[0]) < 1   # interpreted Python is slower: below 1x


# --- 2. check_html.sh ------------------------------------------------------------------------------

CHECK_HTML = ROOT / "fastnn" / "teach" / "check_html.sh"


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
def test_check_html_uses_the_project_venv_without_pythonenv(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["CHROMIUM"] = str(tmp_path / "no-such-browser")
    result = subprocess.run(["sh", str(CHECK_HTML), str(tmp_path / "out")], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    output = result.stdout + result.stderr
    assert f"python: {ROOT / '.venv' / 'bin' / 'python'}" in result.stdout
    assert "Traceback" not in output and "circular import" not in output
    assert result.returncode == 2 and "no browser" in result.stderr


def test_check_html_says_when_fastnn_cannot_be_imported(tmp_path):
    bare = tmp_path / "bare-python"   # an interpreter without site-packages: no fastnn
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    bare.chmod(0o755)
    result = subprocess.run(["sh", str(CHECK_HTML), str(tmp_path / "out")], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(bare)}, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot import fastnn" in line and "No module named 'fastnn'" in line and "make install" in line


# --- 8. make clean, make distclean ------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_removes_build_products_and_distclean_the_venv(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    made = ["kernels/_cython/_kernels.cpython-311-x86_64-linux-gnu.so",
            "kernels/__pycache__/numba_gemm._naive-56.py311.nbi",
            "kernels/__pycache__/numba_gemm._naive-56.py311.1.nbc", "kernels/_cython/_kernels.c.gen",
            "fastnn/__pycache__/cli.cpython-311.pyc", "tests/__pycache__/test_cli.cpython-311.pyc",
            "build/cython/_kernels.c", "fastnn-out/demo_loss.png", ".venv/.fastnn-installed"]
    kept = ["kernels/_cython/gemm.c", "kernels/_cython/_kernels.pyx", "kernels/numba_gemm.py", "fastnn/cli.py",
            ".venv/bin/python"]
    for name in made + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert [n for n in made if (tmp_path / n).exists()] == []
    assert [n for n in kept if not (tmp_path / n).exists()] == []
    subprocess.run(["make", "distclean"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert not (tmp_path / ".venv").exists() and (tmp_path / "kernels/_cython/gemm.c").exists()


# --- 9. a saved model takes raw inputs ---------------------------------------------------------------

def test_train_save_stores_the_standardiser_so_raw_inputs_give_the_reported_accuracy(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    assert main(["train", "--dataset", "digits", "--backend", "numpy", "--epochs", "2", "--hidden", "16",
                 "--save", str(path)]) == 0
    reported = float(capsys.readouterr().out.split("test accuracy")[1].split()[0])
    X, y = fnn.data.load_digits()
    _, X_test, _, y_test = fnn.data.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    model = fnn.load(str(path), backend="numpy")
    assert type(model.layers[0]).__name__ == "Standardize"
    assert fnn.evaluate(model, X_test, y_test)["accuracy"] == pytest.approx(reported, abs=6e-5)   # raw pixels


def test_train_cnn_beats_the_mlp_and_its_saved_model_takes_raw_pixels(tmp_path, capsys):
    """``fastnn train --model cnn`` on the digits: >= 0.97 test accuracy (the MLP reaches 0.961),
    saved with its standardiser in front, so raw 64-pixel rows give the reported accuracy."""
    path = tmp_path / "cnn.npz"
    assert main(["train", "--model", "cnn", "--backend", "numpy", "--optimizer", "adam", "--lr", "0.001",
                 "--epochs", "20", "--save", str(path)]) == 0
    reported = float(capsys.readouterr().out.split("test accuracy")[1].split()[0])
    assert reported >= 0.97
    X, y = fnn.data.load_digits()
    _, X_test, _, y_test = fnn.data.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    model = fnn.load(str(path), backend="numpy")
    assert [type(layer).__name__ for layer in model.layers[:3]] == ["Standardize", "Unflatten", "Conv2d"]
    assert fnn.evaluate(model, X_test, y_test)["accuracy"] == pytest.approx(reported, abs=6e-5)
    assert main(["train", "--model", "cnn", "--dataset", "xor"]) == 2
    assert "needs --dataset digits" in capsys.readouterr().err
