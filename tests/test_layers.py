"""Every layer and loss: numerical gradient check (float64) on every backend, plus the
layer contract (shapes, modes, clear errors before any kernel runs)."""

import numpy as np
import pytest

import fastnn as fnn

TOL = 1e-6


def _x(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


LAYER_CASES = {
    "dense": lambda b: fnn.Dense(5, 3, backend=b, seed=1),
    "dense_relu": lambda b: fnn.Dense(5, 3, activation="relu", backend=b, seed=1),
    "dense_leaky": lambda b: fnn.Dense(5, 3, activation="leaky_relu", alpha=0.1, backend=b, seed=1),
    "dense_sigmoid": lambda b: fnn.Dense(5, 3, activation="sigmoid", backend=b, seed=1),
    "dense_tanh": lambda b: fnn.Dense(5, 3, activation="tanh", backend=b, seed=1),
    "relu": lambda b: fnn.ReLU(backend=b),
    "leaky_relu": lambda b: fnn.LeakyReLU(0.05, backend=b),
    "sigmoid": lambda b: fnn.Sigmoid(backend=b),
    "tanh": lambda b: fnn.Tanh(backend=b),
    "softmax": lambda b: fnn.Softmax(backend=b),
    "dropout": lambda b: fnn.Dropout(0.4, seed=3, backend=b),
    "batchnorm": lambda b: fnn.BatchNorm1d(5, backend=b),
    "residual": lambda b: fnn.Residual([fnn.Dense(5, 5, backend=b), fnn.Tanh(backend=b)], backend=b),
    "mlp": lambda b: fnn.Sequential([fnn.Dense(5, 4), fnn.ReLU(), fnn.Dropout(0.2),
                                     fnn.Dense(4, 4), fnn.BatchNorm1d(4), fnn.Sigmoid(),
                                     fnn.Residual([fnn.Dense(4, 4), fnn.Tanh()]),
                                     fnn.Dense(4, 3)], backend=b, seed=0),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_gradcheck(backend, case):
    layer = LAYER_CASES[case](backend.name)
    # x kept away from ReLU's kink so the finite difference never straddles it
    x = _x((4, 5), seed=2)
    x[np.abs(x) < 1e-2] = 0.5
    assert fnn.gradcheck(layer, x) < TOL


def test_flatten_gradcheck(backend):
    model = fnn.Sequential([fnn.Flatten(), fnn.Dense(6, 2)], backend=backend.name, seed=0)
    assert fnn.gradcheck(model, _x((3, 2, 3))) < TOL
    assert model.forward(_x((3, 2, 3))).shape == (3, 2)


@pytest.mark.parametrize("loss_name", ["sce", "mse", "bce"])
def test_loss_gradcheck(backend, loss_name):
    n, c = 5, 4
    if loss_name == "sce":
        loss, target = fnn.SoftmaxCrossEntropy(backend=backend.name), np.array([0, 3, 1, 1, 2])
    elif loss_name == "mse":
        loss, target = fnn.MSE(backend=backend.name), _x((n, c), seed=5)
    else:
        loss, target = fnn.BinaryCrossEntropy(backend=backend.name), (_x((n, c), seed=5) > 0).astype(float)
    assert fnn.gradcheck(loss, _x((n, c), seed=4, scale=2.0), target) < TOL


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """The checker itself can fail: break ReLU's backward and it must notice."""
    layer = fnn.ReLU(backend="numpy")
    ok = fnn.gradcheck(layer, _x((3, 4)))
    monkeypatch.setattr(fnn.ReLU, "_backward", lambda self, d, need_dx=True: self.bk.asarray(d) * 0.5)
    assert ok < TOL < fnn.gradcheck(layer, _x((3, 4)))


def test_softmax_cross_entropy_does_not_overflow(backend):
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    loss = fnn.SoftmaxCrossEntropy(backend=backend.name)
    value = loss.forward(logits, np.array([0, 2]))
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, np.log(2) / 2, rtol=1e-5)


def test_dense_computes_x_at_w_plus_b(backend):
    layer = fnn.Dense(3, 2, backend=backend.name, seed=0)
    x = _x((4, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.weight.data + layer.bias.data, rtol=1e-5, atol=1e-6)
    assert layer.weight.data.shape == (3, 2) and layer.bias.data.shape == (2,)
    assert layer.weight.data.dtype == np.float32


def test_backward_fills_grads_and_overwrites(backend):
    model = fnn.Sequential([fnn.Dense(3, 4), fnn.ReLU(), fnn.Dense(4, 2)], backend=backend.name, seed=0)
    x, dout = _x((5, 3)), _x((5, 2))
    model(x)
    dx = model.backward(dout)
    first = [p.grad.copy() for p in model.parameters()]
    model(x)
    model.backward(dout)
    assert dx.shape == (5, 3)
    for p, g in zip(model.parameters(), first):
        assert p.grad.shape == p.data.shape
        np.testing.assert_array_equal(p.grad, g)   # same gradient again: no accumulation
    assert [p.name for p in model.parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_same_seed_same_weights_on_every_backend():
    weights = {}
    for name in fnn.available_backends():
        if name == "cuda":
            continue
        model = fnn.Sequential([fnn.Dense(8, 6), fnn.ReLU(), fnn.Dense(6, 3)], backend=name, seed=42)
        weights[name] = [p.data.copy() for p in model.parameters()]
    first = next(iter(weights.values()))
    for ws in weights.values():
        for a, b in zip(first, ws):
            np.testing.assert_array_equal(a, b)


def test_init_schemes():
    he_std, xavier_std = np.sqrt(2 / 400), np.sqrt(2 / (400 + 300))   # uniform(-a, a): std a/sqrt(3)
    he = fnn.Dense(400, 300, init="he", seed=0, backend="numpy").weight.data
    xav = fnn.Dense(400, 300, init="xavier", seed=0, backend="numpy").weight.data
    assert abs(he.std() / he_std - 1) < 0.02 and abs(xav.std() / xavier_std - 1) < 0.02
    assert np.abs(xav).max() <= np.sqrt(6 / 700) + 1e-6
    # inside a Sequential, the default picks He before ReLU and Xavier before Tanh
    m = fnn.Sequential([fnn.Dense(400, 300), fnn.ReLU(), fnn.Dense(300, 300), fnn.Tanh()], seed=0,
                       backend="numpy")
    assert abs(m[0].weight.data.std() / he_std - 1) < 0.02
    assert abs(m[2].weight.data.std() / np.sqrt(2 / 600) - 1) < 0.02


def test_dropout_train_and_eval(backend):
    layer = fnn.Dropout(0.5, seed=0, backend=backend.name)
    x = np.ones((200, 50), np.float32)
    out = layer(x)
    assert set(np.unique(out)) <= {0.0, 2.0} and 0.4 < (out == 0).mean() < 0.6
    layer.eval()
    np.testing.assert_array_equal(layer(x), x)


def test_batchnorm_modes(backend):
    layer = fnn.BatchNorm1d(3, momentum=0.5, backend=backend.name)
    x = _x((64, 3), scale=3.0) + 5
    out = layer(x)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(layer.buffers()["running_mean"], 0.5 * x.mean(0), rtol=1e-5)
    layer.eval()
    rm, rv = layer.buffers()["running_mean"], layer.buffers()["running_var"]
    np.testing.assert_allclose(layer(x), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-4, atol=1e-4)


# --- bad input: clear errors before any kernel runs ------------------------------------

def test_dense_rejects_wrong_width(backend):
    layer = fnn.Dense(4, 2, backend=backend.name)
    with pytest.raises(ValueError, match=r"Dense: expected input of shape \(batch, 4\), got \(3, 5\)"):
        layer(np.zeros((3, 5)))


def test_dense_rejects_wrong_ndim(backend):
    layer = fnn.Dense(4, 2, backend=backend.name)
    with pytest.raises(ValueError, match="Dense: expected a 2-D input"):
        layer(np.zeros(4))
    with pytest.raises(TypeError, match="must be numeric"):
        layer(np.array([["a"] * 4]))


def test_backward_shape_and_order_errors(backend):
    layer = fnn.Dense(4, 2, backend=backend.name)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((3, 2)))
    layer(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"backward expected dout of shape \(3, 2\)"):
        layer.backward(np.zeros((3, 3)))


def test_cross_entropy_label_errors(backend):
    loss = fnn.SoftmaxCrossEntropy(backend=backend.name)
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        loss.forward(logits, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        loss.forward(logits, np.array([0, -1, 2]))
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        loss.forward(logits, np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        loss.forward(logits, np.array([0, 1]))


def test_mse_target_shape_error(backend):
    with pytest.raises(ValueError, match=r"MSE: target shape \(3, 1\) does not match the output shape \(3, 2\)"):
        fnn.MSE(backend=backend.name).forward(np.zeros((3, 2)), np.zeros((3, 1)))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        fnn.Dense(2, 2, activation="swish")
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        fnn.Dense(2, 2, backend="fortran")
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        fnn.set_backend("fortran")
    with pytest.raises(ValueError, match="unknown layer type 'Conv9d'"):
        fnn.layers.layer_from_config({"type": "Conv9d"})
    with pytest.raises(TypeError, match="item 1 is a str"):
        fnn.Sequential([fnn.ReLU(), "relu"])


def test_unavailable_backend_says_why(monkeypatch):
    monkeypatch.setitem(fnn.kernels._cache, "cuda", (None, "no GPU here"))
    with pytest.raises(fnn.BackendUnavailable, match="backend 'cuda' is not available: no GPU here"):
        fnn.Dense(2, 2, backend="cuda")


def test_backend_selection(monkeypatch):
    assert "numpy" in fnn.available_backends() and "python" in fnn.available_backends()
    with fnn.use_backend("python"):
        assert fnn.Dense(2, 2).backend_name == "python"
    assert fnn.get_backend_name() != "python"
    monkeypatch.setenv("FASTNN_BACKEND", "python")
    assert fnn.ReLU().backend_name == "python"
    monkeypatch.delenv("FASTNN_BACKEND")
    model = fnn.Sequential([fnn.Dense(2, 2)], backend="python").to("numpy")
    assert model[0].weight.backend_name == "numpy"
