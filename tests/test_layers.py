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


def test_backward_fills_grads(backend):
    model = fnn.Sequential([fnn.Dense(3, 4), fnn.ReLU(), fnn.Dense(4, 2)], backend=backend.name, seed=0)
    x, dout = _x((5, 3)), _x((5, 2))
    model(x)
    dx = model.backward(dout)
    first = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model(x)
    model.backward(dout)
    assert dx.shape == (5, 3)
    for p, g in zip(model.parameters(), first):
        assert p.grad.shape == p.data.shape
        np.testing.assert_array_equal(p.grad, g)   # after zero_grad: the same gradient again
    assert [p.name for p in model.parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


# --- gradients accumulate until zero_grad -----------------------------------------------

def _bn_mlp(backend):
    return fnn.Sequential([fnn.Dense(3, 4, activation="tanh"), fnn.BatchNorm1d(4), fnn.Dense(4, 2)],
                          backend=backend, seed=0, dtype="float64")


def test_gradients_accumulate_until_zero_grad(backend):
    """Two backwards give twice one backward's gradient (Dense and BatchNorm1d alike);
    zero_grad resets, so the next backward gives one gradient again."""
    model = _bn_mlp(backend.name)
    x, dout = _x((5, 3)), _x((5, 2), seed=1)
    assert all(p.grad_is_zero for p in model.parameters())
    model(x)
    model.backward(dout)
    once = [p.grad.copy() for p in model.parameters()]
    assert not any(p.grad_is_zero for p in model.parameters())
    model(x)
    model.backward(dout)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12, atol=1e-15, err_msg=p.name)
    model.zero_grad()
    assert all(p.grad_is_zero for p in model.parameters())
    model(x)
    model.backward(dout)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, g, rtol=1e-12, atol=1e-15, err_msg=p.name)
    opt = fnn.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()                                   # the optimizer's zero_grad resets them too
    assert all(p.grad_is_zero for p in model.parameters())


def test_reading_grad_after_zero_grad_gives_zeros(backend):
    """zero_grad only sets a flag; reading the gradient then fills it with zeros (once)."""
    layer = fnn.Dense(3, 2, backend=backend.name, seed=0)
    layer(_x((4, 3)))
    layer.backward(_x((4, 2)))
    assert np.any(layer.weight.grad != 0)
    layer.zero_grad()
    assert layer.weight.grad_is_zero
    np.testing.assert_array_equal(layer.weight.grad, np.zeros((3, 2)))
    np.testing.assert_array_equal(layer.bias.grad, np.zeros(2))
    assert not layer.weight.grad_is_zero          # whoever read it may write into it
    assert fnn.global_grad_norm(layer.parameters()) == 0.0


def test_grad_slot_and_grad_done(backend):
    """After zero_grad the slot is the gradient itself (written directly, nothing added);
    otherwise a cached scratch array, added into the gradient by grad_done."""
    p = fnn.Dense(3, 2, backend=backend.name).weight
    g = p.gradient
    p.zero_grad()
    slot = p.grad_slot()
    assert slot is p.gradient and not p.grad_is_zero
    slot[...] = 1.0
    p.grad_done(slot)
    np.testing.assert_array_equal(p.grad, 1.0)
    scratch = p.grad_slot()
    assert scratch is not p.gradient and scratch.shape == p.shape and scratch.dtype == p.dtype
    scratch[...] = 2.0
    p.grad_done(scratch)
    np.testing.assert_array_equal(p.grad, 3.0)
    assert p.grad_slot() is scratch                   # kept for the next time
    assert p.gradient is g                            # the gradient array itself stays the same


def test_grad_for_overwrite(backend):
    p = fnn.Dense(3, 2, backend=backend.name).weight
    g = p.grad_for_overwrite()                        # zero since creation
    assert g is p.gradient and not p.grad_is_zero
    with pytest.raises(RuntimeError, match=r"parameter 'weight'.*zero_grad\(\) first"):
        p.grad_for_overwrite()
    p.zero_grad()
    assert p.grad_for_overwrite() is g


def test_to_resets_the_gradient_to_zero(backend):
    layer = fnn.Dense(3, 2, backend="numpy", seed=0)
    layer(_x((4, 3)))
    layer.backward(_x((4, 2)))
    layer.to(backend.name, "float64")
    assert layer.weight.grad_is_zero
    np.testing.assert_array_equal(layer.weight.grad, 0)


def test_shared_parameter_gets_the_sum_of_both_gradients(backend):
    """Two Dense layers with one weight Parameter (and two BatchNorm1d with one gamma):
    each shared gradient is the sum over its uses, checked against central differences
    of the model itself (float64)."""
    d1, d2 = fnn.Dense(4, 4, activation="tanh", seed=0), fnn.Dense(4, 4, seed=1)
    b1, b2 = fnn.BatchNorm1d(4), fnn.BatchNorm1d(4)
    d2.weight, b2.gamma = d1.weight, b1.gamma
    model = fnn.Sequential([d1, b1, fnn.Sigmoid(), d2, b2], backend=backend.name, dtype="float64")
    d1.weight.data = _x((4, 4), seed=3)
    b1.gamma.data = 1 + 0.5 * _x(4, seed=4)
    params = model.parameters()
    assert [p.name for p in params] == ["0.weight", "0.bias", "1.gamma", "1.beta", "3.bias", "4.beta"]
    assert d2.weight is d1.weight and b2.gamma is b1.gamma
    x, R = _x((6, 4), seed=5), _x((6, 4), seed=6)
    model.zero_grad()
    model(x)
    model.backward(R)
    for p in (d1.weight, b1.gamma):
        analytic, numeric, data = p.grad.copy(), np.zeros(p.shape), p.data.copy()
        for i in range(data.size):
            values = []
            for h in (1e-6, -1e-6):
                d = data.copy()
                d.reshape(-1)[i] += h
                p.data = d
                values.append(float(np.sum(model(x) * R)))
            numeric.reshape(-1)[i] = (values[0] - values[1]) / 2e-6
        p.data = data
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=p.name)
    assert fnn.gradcheck(model, x) < TOL


def test_a_layer_used_twice_is_refused():
    """A layer keeps one forward's cache: a second call in the same forward would give a
    wrong gradient, so containers refuse a layer that appears twice anywhere in the tree."""
    d = fnn.Dense(4, 4, backend="numpy")
    inner = fnn.Sequential([fnn.Dense(4, 4), fnn.ReLU()], backend="numpy")
    cases = [
        (lambda: fnn.Sequential([d, fnn.Tanh(), d]), "'0' and '2'"),
        (lambda: fnn.Sequential([d, fnn.Residual([fnn.Tanh(), d])]), "'0' and '1.block.1'"),
        (lambda: fnn.Residual([d, d]), "'0' and '1'"),
        (lambda: fnn.Sequential([inner, fnn.Tanh(), inner]), "'0' and '2'"),
        (lambda: fnn.Sequential([inner, fnn.Sequential([inner[1]])]), "'0.1' and '1.0'"),
    ]
    for build, places in cases:
        with pytest.raises(ValueError, match=r"the layer .* appears twice in the model") as info:
            build()
        assert places in str(info.value) and "share its Parameters" in str(info.value)
    # the same layer in two separate models is fine, and so is sharing a Parameter
    fnn.Sequential([d, fnn.ReLU()])
    d2 = fnn.Dense(4, 4, backend="numpy")
    d2.weight = d.weight
    assert len(fnn.Sequential([d, fnn.Tanh(), d2]).parameters()) == 3


def test_parameters_and_optimizers_keep_a_shared_parameter_once():
    d1, d2, d3 = fnn.Dense(3, 3, seed=0), fnn.Dense(3, 3, seed=1), fnn.Dense(3, 3, seed=2)
    d2.weight = d1.weight
    d3.bias = d2.bias
    model = fnn.Sequential([d1, fnn.ReLU(), fnn.Residual([d2]), d3], backend="numpy", dtype="float64")
    params = model.parameters()
    assert [id(p) for p in params] == [id(d1.weight), id(d1.bias), id(d2.bias), id(d3.weight)]
    assert [p.name for p in params] == ["0.weight", "0.bias", "2.block.0.bias", "3.weight"]
    assert model.summary().endswith(f"total: {9 + 3 + 3 + 9} parameters, 0 buffer values")
    doubled = [d1.weight, d1.bias, d1.weight, d2.weight, d2.bias]
    opt = fnn.SGD(doubled, lr=0.5)
    assert [id(p) for p in opt.params] == [id(d1.weight), id(d1.bias), id(d2.bias)]
    model(_x((2, 3)))
    model.backward(_x((2, 3)))
    w, g = d1.weight.data.copy(), d1.weight.grad.copy()
    opt.step()                                        # one update, not two
    np.testing.assert_allclose(d1.weight.data, w - 0.5 * g, rtol=1e-12)
    norm = np.sqrt(sum(np.sum(p.grad ** 2) for p in params))
    assert fnn.global_grad_norm(params + params) == pytest.approx(norm)


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
