"""The Standardize layer (preprocessing saved with the model), Sequential.summary, reprs
of layers, losses and scalers, and the modules' __all__."""

import types

import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers import Standardize

TOL = 1e-6


def _stats(d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(3.0, 2.0, d), rng.uniform(0.5, 4.0, d)


# --- Standardize --------------------------------------------------------------------------

def test_standardize_gradcheck(backend):
    mean, std = _stats()
    layer = Standardize(mean, std, backend=backend.name)
    x = np.random.default_rng(2).normal(3.0, 2.0, (4, 5))
    assert fnn.gradcheck(layer, x) < TOL
    model = fnn.Sequential([Standardize(mean, std), fnn.Dense(5, 3), fnn.Tanh()], backend=backend.name, seed=0)
    assert fnn.gradcheck(model, x) < TOL


def test_standardize_computes_the_scaler_transform(backend):
    X = fnn.data.load_digits()[0][:40]
    scaler = fnn.data.Standardizer().fit(X)
    layer = scaler.as_layer(backend=backend.name)
    assert isinstance(layer, Standardize) and layer.backend_name == backend.name
    np.testing.assert_allclose(layer(X), scaler.transform(X), rtol=1e-5, atol=1e-5)
    dy = np.random.default_rng(0).standard_normal(X.shape)
    np.testing.assert_allclose(layer.backward(dy), dy / scaler.std_, rtol=1e-5, atol=1e-6)
    # statistics are buffers: saved with the model, never handed to an optimizer
    assert layer.parameters() == [] and sorted(layer.buffers()) == ["mean", "std"]
    np.testing.assert_allclose(layer.buffers()["std"], scaler.std_, rtol=1e-6)
    same = Standardize.from_scaler(scaler, backend=backend.name, dtype="float64")
    assert same.dtype == np.float64
    np.testing.assert_allclose(same(X), scaler.transform(X), rtol=1e-6, atol=1e-6)


def test_minmax_scaler_as_a_layer():
    X = np.random.default_rng(0).uniform(-5, 9, (30, 4))
    scaler = fnn.data.MinMaxScaler((-1, 1)).fit(X)
    layer = Standardize.from_scaler(scaler, backend="numpy", dtype="float64")
    np.testing.assert_allclose(layer(X), scaler.transform(X), rtol=1e-6, atol=1e-6)


def test_a_model_with_its_scaler_saves_and_scores_on_raw_inputs(tmp_path):
    X_train, X_test, y_train, y_test = fnn.data.train_test_split(*fnn.data.load_digits(), test_size=0.2, seed=0)
    scaler = fnn.data.Standardizer().fit(X_train)
    model = fnn.Sequential([scaler.as_layer(), fnn.Dense(64, 32), fnn.ReLU(), fnn.Dense(32, 10)],
                           backend="numpy", seed=0)
    opt = fnn.SGD(model.parameters(), lr=0.05, momentum=0.9)
    assert len(opt.params) == 4                        # the scaler's statistics are not trained
    fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X_train, y_train, epochs=5, verbose=0, seed=0)
    np.testing.assert_allclose(model[0].buffers()["mean"], scaler.mean_, rtol=1e-6)
    assert fnn.evaluate(model, X_test, y_test)["accuracy"] >= 0.9   # raw pixels in
    path = tmp_path / "digits.npz"
    model.save(str(path))
    loaded = fnn.load(str(path))
    assert isinstance(loaded[0], Standardize) and repr(loaded) == repr(model)
    np.testing.assert_array_equal(fnn.predict(model, X_test), fnn.predict(loaded, X_test))
    loaded.to("python")
    np.testing.assert_allclose(fnn.predict(loaded, X_test[:5]), fnn.predict(model, X_test[:5]),
                               rtol=1e-4, atol=1e-4)


def test_a_trained_model_wrapped_with_its_scaler_saves_and_loads(tmp_path):
    """Layers moved into a new Sequential are named by their new place ("1.weight")."""
    X = np.random.default_rng(0).normal(5.0, 3.0, (20, 3))
    scaler = fnn.data.Standardizer().fit(X)
    model = fnn.Sequential([fnn.Dense(3, 4), fnn.ReLU(), fnn.Residual([fnn.Dense(4, 4), fnn.Tanh()]),
                            fnn.Dense(4, 2)], backend="numpy", seed=0)
    wrapped = fnn.Sequential([scaler.as_layer(), *model.layers], backend="numpy")
    assert [p.name for p in wrapped.parameters()] == ["1.weight", "1.bias", "3.block.0.weight",
                                                      "3.block.0.bias", "4.weight", "4.bias"]
    wrapped.save(str(tmp_path / "m.npz"))
    loaded = fnn.load(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(fnn.predict(loaded, X), fnn.predict(wrapped, X))
    np.testing.assert_allclose(fnn.predict(loaded, X), fnn.predict(model, scaler.transform(X)), rtol=1e-5, atol=1e-5)


def test_standardize_rejects_bad_statistics_and_inputs():
    with pytest.raises(ValueError, match=r"Standardize: std must be > 0, got a minimum of 0.0"):
        Standardize([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="Standardize: mean must be finite, got 1 NaN/Inf values"):
        Standardize([np.nan, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"Standardize: std must be a numeric array of shape \(2,\)"):
        Standardize([1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="Standardize: expected both mean and std, got only mean"):
        Standardize([1.0, 2.0])
    with pytest.raises(ValueError, match=r"Standardize: mean must be a non-empty 1-D array, got shape \(2, 2\)"):
        Standardize(np.ones((2, 2)), np.ones((2, 2)))
    layer = Standardize([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], backend="numpy")
    with pytest.raises(ValueError, match=r"Standardize: expected input of shape \(batch, 3\), got \(2, 4\)"):
        layer(np.zeros((2, 4)))
    with pytest.raises(RuntimeError, match=r"Standardizer: call fit\(X_train\) before as_layer"):
        fnn.data.Standardizer().as_layer()
    with pytest.raises(TypeError, match="Standardize.from_scaler: expected a fitted fastnn.data scaler, got int"):
        Standardize.from_scaler(3)


# --- summary ------------------------------------------------------------------------------

def _columns(table):
    """Start of each column, from the header row of the table."""
    head = table[0]
    return [head.index(name) for name in ("layer", "output shape", "parameters")]


def test_summary_shows_output_shapes_and_counts_in_aligned_columns():
    model = fnn.Sequential([fnn.Dense(64, 32, activation="relu"), fnn.Dropout(0.1), fnn.BatchNorm1d(32),
                            fnn.Residual([fnn.Dense(32, 32), fnn.Tanh()]), fnn.Dense(32, 10)],
                           backend="numpy", seed=0)
    lines = model.summary().splitlines()
    assert lines[0] == "Sequential on backend 'numpy', dtype float32, input (N, 64)"
    table, footer = lines[1:-1], lines[-1]
    assert footer == "total: 3,530 parameters, 64 buffer values"
    layer_at, shape_at, count_at = _columns(table)
    end = len(table[0])
    rows = {row.split()[0]: row for row in table[1:]}
    assert list(rows) == ["0", "1", "2", "3", "3.block", "3.block.0", "3.block.1", "4"]
    for row in table[1:]:
        assert len(row) == end and row[count_at - 2:count_at] == "  "   # counts right-aligned
        assert row[layer_at - 2:layer_at] == "  " and row[shape_at - 2:shape_at] == "  "
    assert rows["0"][layer_at:].startswith("Dense(64, 32, activation='relu')")
    assert rows["0"][shape_at:].startswith("(N, 32)") and rows["0"].endswith(" 2,080")
    assert rows["3"][layer_at:].startswith("Residual") and rows["3"].endswith(" 1,056")
    assert rows["3.block.0"][layer_at:].startswith("    Dense(32, 32)")   # nested: indented
    assert rows["4"][shape_at:].startswith("(N, 10)") and rows["4"].endswith(" 330")


def test_summary_input_shape():
    model = fnn.Sequential([fnn.Flatten(), fnn.Dense(64, 10)], backend="numpy")
    rows = model.summary().splitlines()
    assert rows[0].endswith("input ?") and rows[2].split()[1:3] == ["Flatten()", "?"]
    assert rows[3].split()[1:5] == ["Dense(64,", "10)", "(N,", "10)"]
    assert model.summary((8, 8)).splitlines()[2].split()[1:4] == ["Flatten()", "(N,", "64)"]
    with pytest.raises(ValueError, match=r"layer 1: Dense: expected input of shape \(batch, 64\), got \(batch, 49\)"):
        model.summary((7, 7))
    assert "input (N, 64)" in fnn.Sequential([fnn.ReLU(), fnn.Dense(64, 2)], backend="numpy").summary(64)


# --- reprs --------------------------------------------------------------------------------

REPRS = {
    "dense": [(lambda: fnn.Dense(64, 10), "Dense(64, 10)"),
              (lambda: fnn.Dense(64, 10, activation="relu", init="he"), "Dense(64, 10, activation='relu', init='he')"),
              (lambda: fnn.Dense(3, 2, seed=5), "Dense(3, 2)")],
    "batchnorm": [(lambda: fnn.BatchNorm1d(8), "BatchNorm1d(8)"),
                  (lambda: fnn.BatchNorm1d(8, momentum=0.2), "BatchNorm1d(8, momentum=0.2)")],
    "leaky_relu_dropout": [(lambda: fnn.LeakyReLU(), "LeakyReLU()"), (lambda: fnn.LeakyReLU(0.2), "LeakyReLU(alpha=0.2)"),
                           (lambda: fnn.Dropout(), "Dropout()"), (lambda: fnn.Dropout(0.3), "Dropout(p=0.3)")],
    "standardize": [(lambda: Standardize([0.0, 1.0], [1.0, 2.0]), "Standardize(num_features=2)")],
    "residual": [(lambda: fnn.Residual([fnn.Dense(4, 4), fnn.Tanh()]),
                  "Residual(Sequential([\n  Dense(4, 4),\n  Tanh()\n]))")],
}


@pytest.mark.parametrize("case", sorted(REPRS))
def test_layer_reprs_omit_defaults(case):
    assert [repr(make()) for make, _ in REPRS[case]] == [text for _, text in REPRS[case]]


def test_sequential_repr_nests():
    model = fnn.Sequential([fnn.Dense(4, 4), fnn.Residual([fnn.Dense(4, 4), fnn.ReLU()])], backend="numpy")
    assert repr(model) == ("Sequential([\n  Dense(4, 4),\n  Residual(Sequential([\n    Dense(4, 4),\n"
                           "    ReLU()\n  ]))\n], backend='numpy')")


def test_loss_and_scaler_reprs():
    assert repr(fnn.MSE()) == "MSE()"
    assert repr(fnn.SoftmaxCrossEntropy(backend="numpy")) == "SoftmaxCrossEntropy(backend='numpy')"
    assert repr(fnn.BinaryCrossEntropy()) == "BinaryCrossEntropy()"
    assert repr(fnn.L2(1e-3)) == "L2(0.001)" and repr(fnn.L1(0.5)) == "L1(0.5)"
    assert repr(fnn.data.Standardizer()) == "Standardizer()"
    assert repr(fnn.data.Standardizer().fit(np.ones((4, 3)))) == "Standardizer(fitted on 3 features)"
    assert repr(fnn.data.MinMaxScaler()) == "MinMaxScaler()"
    assert repr(fnn.data.MinMaxScaler((-1, 1)).fit(np.ones((2, 2)))) == \
        "MinMaxScaler(feature_range=(-1.0, 1.0), fitted on 2 features)"


# --- __all__ ------------------------------------------------------------------------------

@pytest.mark.parametrize("module", [fnn.data, fnn.io, fnn.layers, fnn.losses], ids=lambda m: m.__name__)
def test_all_lists_the_public_names_and_only_those(module):
    names = module.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert not isinstance(getattr(module, name), types.ModuleType), name
    defined = {name for name, obj in vars(module).items()
               if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
               and isinstance(obj, (type, types.FunctionType))}
    assert defined <= set(names), sorted(defined - set(names))
    star = {}
    exec(f"from {module.__name__} import *", star)
    assert not {"np", "os", "gzip", "struct", "json"} & set(star)
