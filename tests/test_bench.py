"""``fastnn bench``: the command on tiny sizes, its files, and that it catches wrong kernels.

Only the python and numpy backends (plus stand-ins built from numpy) run here, so
nothing is compiled and the file takes seconds.
"""

import csv
import json
import types

import numpy as np
import pytest

import fastnn.bench as bench
import fastnn.kernels as K
from fastnn.cli import main
from fastnn.kernels import numpy_backend


def _run_cli(tmp_path, *args):
    return main(["bench", *args, "--repeats", "2", "--out", str(tmp_path), "--no-progress"])


def _rows(tmp_path, kind):
    with open(tmp_path / f"bench_{kind}.csv") as f:
        return list(csv.DictReader(f))


def test_gemm_command_prints_table_and_writes_files(tmp_path, capsys, monkeypatch):
    # a two-rung ladder on the numpy backend, so ladder rows appear without compiling anything
    ladder = {"interpreted": K.get("python").module.gemm, "blas": numpy_backend.gemm}
    monkeypatch.setattr(numpy_backend, "GEMM_LADDER", ladder, raising=False)
    assert _run_cli(tmp_path, "gemm", "--sizes", "8", "4x12x6", "--backends", "python", "numpy") == 0

    out = capsys.readouterr().out
    assert "first call" in out and "vs numpy" in out and "of BLAS" in out
    for kind in ("csv", "json", "png"):
        assert (tmp_path / f"bench_gemm.{kind}").stat().st_size > 0
    assert (tmp_path / "bench_gemm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = _rows(tmp_path, "gemm")
    seen = {(r["backend"], r["variant"], r["size"]) for r in rows}
    for size in ("8", "4x12x6"):
        assert {("python", "", size), ("numpy", "", size), (bench.BLAS, "", size),
                ("numpy", "interpreted", size), ("numpy", "blas", size)} <= seen
    assert all(r["status"] == "ok" for r in rows)
    numpy_row = next(r for r in rows if r["backend"] == "numpy" and not r["variant"] and r["size"] == "8")
    assert float(numpy_row["vs_numpy"]) == 1.0
    assert float(numpy_row["median_s"]) > 0 and float(numpy_row["rate"]) > 0
    assert float(numpy_row["min_s"]) <= float(numpy_row["median_s"]) <= float(numpy_row["max_s"])

    saved = json.loads((tmp_path / "bench_gemm.json").read_text())
    assert saved["info"]["threads"] == 1 and saved["info"]["kind"] == "gemm"
    assert len(saved["rows"]) == len(rows)


def test_wrong_gemm_is_reported_not_timed(tmp_path, capsys, monkeypatch):
    python = K.get("python")
    right = python.gemm

    def off_by_one(a, b, out, *args, **kwargs):
        right(a, b, out, *args, **kwargs)
        out[0, 0] += 1.0

    monkeypatch.setattr(python, "gemm", off_by_one)
    assert _run_cli(tmp_path, "gemm", "--sizes", "8", "--backends", "python", "numpy") == 1
    out = capsys.readouterr().out
    wrong = next(line for line in out.splitlines() if line.startswith("gemm") and " python " in line)
    assert "WRONG" in wrong and "not timed" in wrong
    row = next(r for r in _rows(tmp_path, "gemm") if r["backend"] == "python")
    assert row["status"] == "WRONG" and row["median_s"] == "" and float(row["max_error"]) > 1e-3


def test_wrong_in_place_update_is_caught(monkeypatch):
    python = K.get("python")
    right = python.sgd_update
    monkeypatch.setattr(python, "sgd_update", lambda p, g, v, lr, *rest: right(p, g, v, 2 * lr, *rest))
    rows, _ = bench.run("layers", sizes=[8], backends=["python"], repeats=2, progress=False)
    status = {(r.case, r.backend): r.status for r in rows}
    assert status[("sgd_update", "python")] == "WRONG"
    assert status[("adam_update", "python")] == "ok" and status[("relu_forward", "python")] == "ok"
    assert status[("sgd_update", "numpy")] == "ok"


def test_python_is_skipped_above_its_budget_never_extrapolated():
    rows, _ = bench.run("gemm", sizes=["8", "48"], backends=["python"], repeats=2, python_budget=1e-3,
                        progress=False)
    python = {r.size: r for r in rows if r.backend == "python"}
    assert python["8"].status == "ok"
    assert python["48"].status == "skipped" and "estimated" in python["48"].note
    assert python["48"].median_s is None and python["48"].rate is None
    assert next(r for r in rows if r.backend == "numpy" and r.size == "48").vs_python is None


def test_train_rows_compare_with_numpy(tmp_path):
    rows, info = bench.run("train", backends=["python"], repeats=2, python_budget=0.5,
                           models=("digits",), progress=False)
    by = {(r.case, r.backend): r for r in rows}
    assert by[("digits step", "python")].status == "ok"
    assert by[("digits step", "python")].max_error < 1e-3
    assert by[("digits epoch", "python")].status == "skipped"   # about 2 s: over the 0.5 s budget
    assert by[("digits epoch", "numpy")].median_s > by[("digits step", "numpy")].median_s
    paths = bench.write_files(rows, info, str(tmp_path), "train")
    assert all((tmp_path / p.split("/")[-1]).stat().st_size > 0 for p in paths)


def test_device_backend_goes_through_asarray_to_host_and_synchronize(monkeypatch):
    """A stand-in GPU backend: numpy kernels on arrays wrapped in a device type."""

    class DeviceArray(np.ndarray):
        pass

    calls = {"sync": 0, "to_host": 0}

    def to_host(a):
        assert isinstance(a, DeviceArray), "bench must hand device arrays to to_host"
        calls["to_host"] += 1
        return np.asarray(a).view(np.ndarray).copy()

    module = types.ModuleType("fake_device_backend")
    for name in K.contract.KERNELS:
        setattr(module, name, getattr(numpy_backend, name))
    module.ON_DEVICE = True
    module.asarray = lambda a, dtype=None: np.array(a, dtype=dtype).view(DeviceArray)
    module.empty = lambda shape, dtype: np.empty(shape, dtype).view(DeviceArray)
    module.zeros = lambda shape, dtype: np.zeros(shape, dtype).view(DeviceArray)
    module.to_host = to_host
    module.synchronize = lambda: calls.__setitem__("sync", calls["sync"] + 1)
    monkeypatch.setitem(K._cache, "cuda", (K.Backend("cuda", module), "stand-in device"))

    rows, _ = bench.run("gemm", sizes=["8"], backends=["cuda"], repeats=2, progress=False)
    device = next(r for r in rows if r.backend == "cuda")
    assert device.status == "ok" and device.median_s > 0
    assert calls["to_host"] >= 1 and calls["sync"] >= 3


@pytest.mark.parametrize("args, message", [
    (["gemm", "--sizes", "0"], "positive integers"),
    (["layers", "--sizes", "4x4x4"], "a size is n"),
    (["--sizes", "big"], "positive integers"),
    (["gemm", "--backends", "fortran"], "unknown backend"),
])
def test_bad_arguments_are_clear_errors(tmp_path, capsys, args, message):
    assert _run_cli(tmp_path, *args) == 2
    assert message in capsys.readouterr().err


def test_vs_numpy_is_a_speed_up_like_vs_python():
    rows, _ = bench.run("gemm", sizes=["16"], backends=["python"], repeats=2, progress=False)
    by = {r.backend: r for r in rows if not r.variant}
    numpy, python = by["numpy"], by["python"]
    assert python.vs_numpy == pytest.approx(numpy.median_s / python.median_s)
    assert python.vs_numpy < 1 < numpy.vs_python   # the interpreted loops are the slower ones
    table = bench.format_table(rows)
    head = table.splitlines()[0]
    assert "x vs numpy" in head and "x vs python" in head and "higher is faster" in table


def test_chart_bars_start_at_zero_and_no_label_or_legend_covers_another(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    ladder = {"interpreted": K.get("python").module.gemm, "blas": numpy_backend.gemm}
    monkeypatch.setattr(numpy_backend, "GEMM_LADDER", ladder, raising=False)
    rows, info = bench.run("gemm", sizes=["8", "16", "64"], backends=["python"], repeats=2,
                           python_budget=1e-4, progress=False)
    assert any(r.status == "skipped" for r in rows)   # python at 64: a label instead of a bar
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    bench.plot(rows, str(tmp_path / "chart.png"), "gemm", info)
    fig = figures[-1]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    try:
        bars = next(ax for ax in fig.axes if ax.get_title() == "gemm")
        assert bars.get_yscale() == "linear" and bars.get_ylim()[0] == 0   # a 26% gap looks like 26%
        lines = next(ax for ax in fig.axes if ax.get_title() == "GEMM ladder")
        assert "log scale" in lines.get_ylabel() and "log scale" in lines.get_xlabel()
        legend = lines.get_legend()
        assert legend is not None
        assert not legend.get_window_extent(renderer).overlaps(lines.get_window_extent(renderer))
        box = bars.get_window_extent(renderer)
        labels = [bars.yaxis.label, bars.xaxis.label, *bars.get_xticklabels()]
        skipped = [t for t in bars.texts if t.get_text() == "skipped"]
        assert skipped
        for text in skipped:
            extent = text.get_window_extent(renderer)
            assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
            assert not any(extent.overlaps(label.get_window_extent(renderer)) for label in labels
                           if label.get_text())
    finally:
        for f in figures:
            close(f)


@pytest.mark.skipif("numba" not in K.available(), reason="needs the numba backend")
def test_bench_says_the_numba_kernels_compile_in_the_first_calls(tmp_path, capsys, monkeypatch):
    from fastnn.teach import progress
    monkeypatch.setattr(progress, "numba_cache_is_cold", lambda: True)
    assert _run_cli(tmp_path, "gemm", "--sizes", "8", "--backends", "numba") == 0
    err = capsys.readouterr().err
    assert err.count("compiling the numba kernels") == 1 and "first-call times" in err
