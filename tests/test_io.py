"""Model files and IDX files: saving never destroys a good file, loading is bounded and
turns every malformed file into a ValueError naming it, models come back on the backend
they were saved on."""

import errno
import gzip
import json
import os
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastnn as fnn
from fastnn import io as fio
from fastnn.layers import Layer, layer_from_config


def _model(backend="numpy", dtype="float32", seed=0):
    return fnn.Sequential([fnn.Dense(4, 3, activation="relu"), fnn.BatchNorm1d(3), fnn.Dense(3, 2)],
                          backend=backend, seed=seed, dtype=dtype)


def _x(n=6, features=4, seed=1):
    return np.random.default_rng(seed).standard_normal((n, features))


def _header(architecture, dtype="float32", backend="numpy", **extra):
    return {"format": "fastnn-model", "version": 1, "dtype": dtype, "backend": backend,
            "architecture": architecture, **extra}


def _write(path, header, **arrays):
    """A model file with this header (a dict, list or raw JSON text) and these members."""
    text = header if isinstance(header, str) else json.dumps(header)
    np.savez(path, __header__=np.array(text), **arrays)
    return path


def _dense(n_in, n_out):
    return {"type": "Dense", "in_features": n_in, "out_features": n_out}


def _peak_bytes(fn):
    """(result or exception, peak bytes traced while running fn)."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as exc:   # the caller checks which
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- 1. saving never destroys a good file ------------------------------------------------

def _save_that_fails_midway(monkeypatch):
    """np.savez writes the start of an archive, then the disk is full."""
    def full_disk(file, *args, **kwargs):
        file.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = _model(seed=0)
    old.save(str(path))
    _save_that_fails_midway(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        _model(seed=1).save(str(path))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]           # no temporary file left behind
    loaded = fnn.load(str(path))
    for p, q in zip(old.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    os.chmod(path, 0o640)                              # a save that succeeds replaces the file,
    _model(seed=2).save(str(path))                     # keeping its permissions
    assert os.stat(path).st_mode & 0o777 == 0o640 and os.listdir(tmp_path) == ["m.npz"]


def test_unstorable_config_keeps_the_old_file(tmp_path):
    class Odd(Layer):
        def _forward(self, x):
            return x

        def get_config(self):
            return {"thing": object()}   # no JSON form

    path = tmp_path / "m.npz"
    _model().save(str(path))
    before = path.read_bytes()
    with pytest.raises(TypeError, match="save: the model's configuration cannot be stored"):
        fnn.Sequential([fnn.Dense(4, 4), Odd()], backend="numpy").save(str(path))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]
    fnn.load(str(path))


def test_a_model_with_shared_parameters_is_refused(tmp_path):
    """The file stores one array per layer parameter: it cannot say that two layers share
    one, and loading would silently untie them, so save refuses, naming the parameter."""
    d1, d2 = fnn.Dense(4, 4), fnn.Dense(4, 4)
    d2.weight = d1.weight
    model = fnn.Sequential([d1, fnn.Tanh(), fnn.Residual([d2])], backend="numpy")
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"save: parameter '0.weight' is shared by two layers "
                                         r"\(it is both '0.weight' and '2.block.0.weight'\)"):
        fio.save(model, str(path))
    assert os.listdir(tmp_path) == []
    d2.weight = fnn.Dense(4, 4).weight                 # untied: saved and loaded as usual
    model = fnn.Sequential([d1, fnn.Tanh(), fnn.Residual([d2])], backend="numpy")
    model.save(str(path))
    assert len(fnn.load(str(path)).parameters()) == 4


def test_numpy_scalars_in_the_config_are_saved_and_round_trip(tmp_path):
    path = tmp_path / "m.npz"
    model = fnn.Sequential([fnn.Dense(np.int64(4), np.int32(3)), fnn.LeakyReLU(np.float32(0.25))],
                           backend="numpy", seed=np.int64(7))
    model.save(str(path))
    loaded = fnn.load(str(path))
    assert fnn.layers.layer_config(loaded) == fnn.layers.layer_config(model)
    assert loaded.get_config()["seed"] == 7
    np.testing.assert_array_equal(fnn.predict(model, _x()), fnn.predict(loaded, _x()))


# --- 2. bounded loading --------------------------------------------------------------------

def test_a_huge_architecture_is_refused_before_anything_is_built(tmp_path):
    path = _write(tmp_path / "big.npz", _header({"type": "Sequential", "layers": [_dense(8000, 8000)]}))
    exc, peak = _peak_bytes(lambda: fnn.load(str(path)))
    assert isinstance(exc, ValueError) and "max_parameters=50,000,000" in str(exc), exc
    assert str(path) in str(exc) and "64,008,000" in str(exc)
    assert peak < 4 << 20, peak
    assert fio.MAX_PARAMETERS == 50_000_000


def test_max_parameters_can_be_raised_or_lowered(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(str(path))          # 15 + 6 + 8 parameters, 6 buffer values
    with pytest.raises(ValueError, match="holds 35 parameter and buffer values, more than max_parameters=34"):
        fnn.load(str(path), max_parameters=34)
    assert len(fnn.load(str(path), max_parameters=35)) == 3


def test_member_shapes_are_checked_before_their_data_is_read(tmp_path):
    path = tmp_path / "m.npz"
    model = fnn.Sequential([fnn.Dense(3, 2)], backend="numpy", seed=0)
    header = _header(fnn.layers.layer_config(model))
    np.savez_compressed(path, __header__=np.array(json.dumps(header)),
                        **{"param:0.weight": np.zeros((2000, 2000), np.float32),   # 16 MB, compresses to kB
                           "param:0.bias": np.zeros(2, np.float32)})
    assert os.path.getsize(path) < 200_000
    exc, peak = _peak_bytes(lambda: fnn.load(str(path)))
    assert isinstance(exc, ValueError) and "parameter 0.weight has shape (2000, 2000) float32" in str(exc), exc
    assert peak < 4 << 20, peak


def test_a_member_with_more_data_than_its_header_declares_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(str(path))
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = arrays.pop("__header__")
    # hand-made member: a (4, 3) float32 header followed by twice the data
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros((4, 3), np.float32))
    raw = npy.read_bytes() + np.zeros(12, np.float32).tobytes()
    with zipfile.ZipFile(tmp_path / "long.npz", "w") as z:
        z.writestr("__header__.npy", _npy_bytes(tmp_path, header))
        for k, v in arrays.items():
            z.writestr(f"{k}.npy", raw if k == "param:0.weight" else _npy_bytes(tmp_path, v))
    with pytest.raises(ValueError, match="member param:0.weight has data beyond its declared shape"):
        fnn.load(str(tmp_path / "long.npz"))


def _npy_bytes(tmp_path, array):
    p = tmp_path / "tmp_member.npy"
    np.save(p, array)
    return p.read_bytes()


def test_loading_draws_no_initial_weights(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = _model()
    model.save(str(path))

    def no_random_init(self, rng, next_layer=None):
        raise AssertionError("load drew random initial weights it then overwrote")
    monkeypatch.setattr(fnn.Dense, "reset_parameters", no_random_init)
    loaded = fnn.load(str(path))
    np.testing.assert_array_equal(fnn.predict(model, _x()), fnn.predict(loaded, _x()))
    loaded[0].weight.data[0, 0] = 5.0                  # loaded weights are ordinary writable arrays
    assert loaded[0].weight.data[0, 0] == 5.0


def _idx_header(shape, code=0x08):
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)


def test_read_idx_refuses_a_huge_declared_size_before_decompressing(tmp_path):
    path = tmp_path / "bomb.idx.gz"
    with gzip.open(path, "wb") as f:
        f.write(_idx_header((2 ** 16, 2 ** 15)))       # claims 2 GiB of uint8
        f.write(b"\0" * (4 << 20))                      # and holds 4 MB of zeros
    exc, peak = _peak_bytes(lambda: fnn.data.read_idx(path))
    assert isinstance(exc, ValueError) and "max_bytes=1,073,741,824" in str(exc), exc
    assert peak < 1 << 20, peak
    assert fnn.data.MAX_IDX_BYTES == 1 << 30
    with pytest.raises(ValueError, match=r"\(6 bytes of data\), more than max_bytes=5"):
        fnn.data.read_idx(_write_idx(tmp_path / "small.idx", np.zeros((2, 3), np.uint8)), max_bytes=5)


def _write_idx(path, array):
    path.write_bytes(_idx_header(array.shape) + array.tobytes())
    return path


def test_read_idx_reads_no_more_than_declared(tmp_path):
    path = tmp_path / "long.idx.gz"
    with gzip.open(path, "wb") as f:
        f.write(_idx_header((10,)) + bytes(range(10)))
        f.write(b"\0" * (16 << 20))                     # 16 MB of trailing data
    exc, peak = _peak_bytes(lambda: fnn.data.read_idx(path))
    assert isinstance(exc, ValueError) and "trailing data" in str(exc), exc
    assert peak < 1 << 20, peak
    np.testing.assert_array_equal(fnn.data.read_idx(_write_idx(tmp_path / "ok.idx", np.arange(5, dtype=np.uint8))),
                                  np.arange(5))


# --- 3. crafted files give ValueError naming the file --------------------------------------

def _deep(depth):
    config = _dense(2, 2)
    for _ in range(depth):
        config = {"type": "Sequential", "layers": [config]}
    return config


CRAFTED = {
    "header is a JSON list": ([1, 2, 3], "corrupted model header: a JSON list, expected an object"),
    "no architecture": ({"format": "fastnn-model", "version": 1, "dtype": "float32"}, "lacks 'architecture'"),
    "no dtype": ({"format": "fastnn-model", "version": 1, "architecture": _dense(2, 2)}, "lacks 'dtype'"),
    "dtype not float": (_header(_dense(2, 2), dtype="int8"), "dtype is 'int8', expected 'float32' or"),
    "5000-deep JSON": ('{"format": "fastnn-model", "version": 1, "dtype": "float32", "architecture": '
                       + '{"type": "Sequential", "layers": [' * 5000 + "]}" * 5000 + "}",
                       "not valid JSON \\(nested too deeply\\)"),
    "200-deep containers": (_header(_deep(200)), "nested deeper than 64 containers"),
    "unknown layer type": (_header({"type": "Conv9d"}), "unknown layer type 'Conv9d'"),
    "type is not a string": (_header({"type": ["Dense"]}), r"unknown layer type \['Dense'\]"),
    "unknown config key": (_header({**_dense(2, 2), "colour": "red"}),
                           r"Dense: unknown configuration keys \['colour'\]"),
    "missing config key": (_header({"type": "Dense", "in_features": 2}),
                           r"Dense: configuration lacks \['out_features'\]"),
    "bad config value": (_header({**_dense(2, 2), "alpha": [1]}), "bad Dense configuration"),
    "layers not a list": (_header({"type": "Sequential", "layers": 5}), "'layers' must be a list"),
    "backend not a name": (_header(_dense(2, 2), backend=3), "backend is 3, expected a name"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_headers_give_value_errors(tmp_path, case):
    header, message = CRAFTED[case]
    path = _write(tmp_path / "crafted.npz", header)
    with pytest.raises(ValueError, match=message) as info:
        fnn.load(str(path))
    assert str(path) in str(info.value)


def test_layer_from_config_refuses_deep_nesting_without_recursing():
    with pytest.raises(ValueError, match="nested deeper than 64 containers"):
        layer_from_config(_deep(5000))


def test_a_npy_file_is_not_a_model(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"w.npy: .*a single NumPy array \(.npy\), not a fastnn model archive"):
        fnn.load(str(tmp_path / "w.npy"))


def _saved_arrays(tmp_path):
    path = tmp_path / "good.npz"
    _model().save(str(path))
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("value, message", [(-1.0, "running_var must be >= 0"),
                                            (np.nan, "running_var must be finite"),
                                            (np.inf, "running_var must be finite")])
def test_bad_batchnorm_statistics_are_refused(tmp_path, value, message):
    arrays = _saved_arrays(tmp_path)
    arrays["buffer:1.running_var"] = np.array([1.0, value, 1.0], np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"bad.npz: bad buffer values: BatchNorm1d: {message}"):
        fnn.load(str(path))


def test_a_missing_buffer_is_named(tmp_path):
    arrays = _saved_arrays(tmp_path)
    del arrays["buffer:1.running_var"]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing \['buffer:1.running_var'\]"):
        fnn.load(str(tmp_path / "bad.npz"))


# --- 4. the backend round trip ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_restores_the_saved_backend_bit_exactly(tmp_path, backend, dtype):
    model = _model(backend.name, dtype)
    x = _x(5)
    model(x)                                           # training step: BatchNorm statistics move
    path = tmp_path / "m.npz"
    model.save(str(path))
    other = "python" if backend.name != "python" else "numpy"
    with fnn.use_backend(other):                       # the default is not where the model was saved
        loaded = fnn.load(str(path))
        moved = fnn.load(str(path), backend=other)     # backend= overrides
    assert loaded.backend_name == backend.name and moved.backend_name == other
    assert all(p.backend_name == backend.name for p in loaded.parameters())
    assert loaded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fnn.predict(model, x), fnn.predict(loaded, x))


@pytest.mark.parametrize("saved, reason", [("cuda", "no GPU here"), ("fortran", "unknown backend")])
def test_an_unavailable_saved_backend_warns_and_uses_the_default(tmp_path, monkeypatch, saved, reason):
    monkeypatch.setitem(fnn.kernels._cache, "cuda", (None, "no GPU here"))
    arrays = _saved_arrays(tmp_path)
    header = json.loads(str(arrays.pop("__header__")))
    path = _write(tmp_path / "elsewhere.npz", {**header, "backend": saved}, **arrays)
    with fnn.use_backend("numpy"):
        with pytest.warns(RuntimeWarning, match=f"saved on backend '{saved}', which cannot run here.*{reason}"
                                                ".*loading it onto 'numpy'"):
            loaded = fnn.load(str(path))
    assert loaded.backend_name == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fnn.load(str(path), backend="numpy").backend_name == "numpy"   # asked for: no warning


# --- __all__ ----------------------------------------------------------------------------------

def test_io_all():
    assert sorted(fio.__all__) == sorted(["save", "load", "FORMAT", "VERSION", "MAX_PARAMETERS",
                                          "MAX_HEADER_BYTES"])
