"""Data loaders, splits, scalers, the IDX reader, and the command line."""

import gzip
import struct

import numpy as np
import pytest

import fastnn as fnn
from fastnn import data
from fastnn.cli import main


def test_load_digits():
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and set(np.unique(y)) == set(range(10))
    images, _ = data.load_digits(images=True)
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images.reshape(1797, 64), X)


@pytest.mark.parametrize("name", sorted(data.TOY_DATASETS))
def test_toy_sets(name):
    X, y = data.TOY_DATASETS[name](n=101, seed=3)
    X2, y2 = data.TOY_DATASETS[name](n=101, seed=3)
    assert X.shape == (101, 2) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, X2)
    assert set(np.unique(y)) == {0, 1}


def test_train_test_split_stratified_and_seeded():
    X, y = data.load_digits()
    a = data.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    b = data.train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    X_train, X_test, y_train, y_test = a
    assert len(X_train) + len(X_test) == 1797 and abs(len(X_test) - 359) <= 10
    share_all, share_test = np.bincount(y) / len(y), np.bincount(y_test) / len(y_test)
    assert np.max(np.abs(share_all - share_test)) < 0.01
    # no sample in both parts
    rows = {r.tobytes() for r in X_train}
    assert sum(r.tobytes() in rows for r in X_test) <= 5   # the data has a few exact duplicates
    with pytest.raises(ValueError, match="leaves no train or no test"):
        data.train_test_split(X, y, test_size=0.0)


def test_scalers_fit_on_train_only():
    rng = np.random.default_rng(0)
    train, test = rng.normal(5, 3, (100, 4)), rng.normal(5, 3, (20, 4))
    s = data.Standardizer().fit(train)
    np.testing.assert_allclose(s.transform(train).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.transform(test), (test - train.mean(0)) / train.std(0), rtol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(s.transform(test)), test, rtol=1e-5)
    m = data.MinMaxScaler().fit(train)
    assert m.transform(train).min() == 0 and m.transform(train).max() == pytest.approx(1)
    with pytest.raises(RuntimeError, match="call fit"):
        data.Standardizer().transform(train)
    with pytest.raises(ValueError, match="fitted on 4 features"):
        s.transform(train[:, :3])


def test_one_hot_and_batches():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError):
        data.one_hot(np.array([3]), 3)
    X, y = np.arange(10)[:, None], np.arange(10)
    seen = np.concatenate([yb for _, yb in data.batches(X, y, batch_size=3, seed=0)])
    assert sorted(seen) == list(range(10))


def _idx(array, code=0x08):
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if code == 0x08 else ">f4").tobytes()


def test_idx_reader_and_mnist(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    (tmp_path / "img.idx").write_bytes(_idx(images))
    with gzip.open(tmp_path / "lab.idx.gz", "wb") as f:
        f.write(_idx(labels))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "img.idx"), images)
    X, y = data.load_mnist(tmp_path / "img.idx", tmp_path / "lab.idx.gz")
    assert X.shape == (5, 784) and X.max() <= 1.0 and y.tolist() == [3, 1, 4, 1, 5]
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tmp_path / "f.idx").write_bytes(_idx(floats, 0x0D))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), floats)


def test_idx_reader_errors(tmp_path):
    good = _idx(np.zeros((4, 3), np.uint8))
    (tmp_path / "trunc").write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "trunc")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "magic")
    (tmp_path / "tiny").write_bytes(b"\x00")
    with pytest.raises(ValueError, match="too short"):
        data.read_idx(tmp_path / "tiny")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read as gzip"):
        data.read_idx(tmp_path / "bad.gz")
    (tmp_path / "img").write_bytes(_idx(np.zeros((4, 3), np.uint8)))   # 2-D: not images
    (tmp_path / "lab").write_bytes(_idx(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, rows, cols\)"):
        data.load_mnist(tmp_path / "img", tmp_path / "lab")


# --- command line ----------------------------------------------------------------------

def test_cli_backends(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in fnn.kernels.names():
        assert name in out
    assert "numpy    yes" in out


def test_cli_train_and_save(tmp_path, capsys):
    path = tmp_path / "m.npz"
    code = main(["train", "--dataset", "moons", "--backend", "numpy", "--epochs", "5", "--hidden", "8",
                 "--lr", "0.1", "--save", str(path), "--plot", str(tmp_path / "c.png")])
    out = capsys.readouterr().out
    assert code == 0 and "test accuracy" in out and path.exists() and (tmp_path / "c.png").stat().st_size > 0
    model = fnn.load(str(path))
    assert [type(layer).__name__ for layer in model] == ["Standardize", "Dense", "ReLU", "Dense"]


def test_cli_errors(capsys):
    assert main(["train", "--backend", "fortran", "--epochs", "1"]) == 2
    assert "unknown backend 'fortran'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "a,b"])


def test_cli_demo_small(tmp_path, capsys):
    code = main(["demo", "--epochs", "3", "--backends", "numpy", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "numpy" in out and "plots written to" in out and (tmp_path / "demo_loss.png").stat().st_size > 0
    accuracy = float(out.split("test accuracy")[1].split()[0])
    assert 0.5 < accuracy <= 1.0
    assert code == 0   # fewer epochs are the user's choice, not a failure


def _setup_keywords():
    """The literal ``packages``/``package_dir``/``package_data`` given to setup() in setup.py."""
    import ast
    import pathlib
    tree = ast.parse((pathlib.Path(__file__).parents[1] / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", None) == "setup")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords
            if k.arg in ("packages", "package_dir", "package_data")}


def test_setup_installs_every_package_and_its_data():
    # A package missing here is absent from the wheel: `import fastnn` then fails in a
    # non-editable install (asv's environments, pip install .), while editable ones work.
    import fnmatch
    import pathlib
    root = pathlib.Path(__file__).parents[1]
    kw = _setup_keywords()
    folders = {}                       # package name -> its source folder, from __init__.py files
    for name, path in kw["package_dir"].items():
        for init in (root / path).rglob("__init__.py"):
            folders[".".join((name,) + init.parent.relative_to(root / path).parts)] = init.parent
    assert set(folders) == set(kw["packages"]), (
        f"setup.py packages {sorted(kw['packages'])} != packages on disk {sorted(folders)}")
    for pkg, folder in folders.items():
        # sources are compiled or imported; shell scripts are run from the source tree
        data = [p.name for p in folder.iterdir() if p.is_file() and p.suffix not in
                (".py", ".pyc", ".so", ".pyx", ".pxd", ".pxi", ".c", ".h", ".sh")]
        patterns = kw["package_data"].get(pkg, [])
        missing = [f for f in data if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
        assert not missing, f"{pkg}: files not in package_data: {missing}"
