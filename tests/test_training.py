"""The training loop, optimizers, the public usage example, save/load."""

import os

import numpy as np
import pytest

import fastnn as fnn

from conftest import BACKENDS


def _digits():
    X_train, X_test, y_train, y_test = fnn.data.train_test_split(*fnn.data.load_digits(), test_size=0.2, seed=0)
    scaler = fnn.data.Standardizer().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _readme_example(backend, tmp_path, epochs=30):
    """The usage example of README.md, verbatim but for the backend and the file path."""
    X_train, X_test, y_train, y_test = fnn.data.train_test_split(*fnn.data.load_digits(), test_size=0.2, seed=0)
    scaler = fnn.data.Standardizer().fit(X_train)
    model = fnn.Sequential([fnn.Dense(64, 64), fnn.ReLU(), fnn.Dense(64, 10)], backend=backend, seed=0)
    opt = fnn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    history = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, scaler.transform(X_train), y_train,
                      epochs=epochs, batch_size=32, validation_split=0.1,
                      callbacks=[fnn.EarlyStopping(patience=5, restore_best=True)])
    result = fnn.evaluate(model, scaler.transform(X_test), y_test)
    path = str(tmp_path / "digits.npz")
    model.save(path)
    model2 = fnn.load(path)            # onto the backend it was saved on
    return model, model2, history, result, scaler.transform(X_test)


# The interpreted backend needs ~30 s for this run; `make demo` trains it to >= 0.95 instead.
@pytest.mark.slow
@pytest.mark.parametrize("name", [b for b in BACKENDS if b != "python"])
def test_readme_example_reaches_95_percent(name, tmp_path):
    model, model2, history, result, X_test = _readme_example(name, tmp_path)
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] >= 0.95, result
    assert len(history.loss) == len(history.val_loss) >= 6
    # save/load round-trips bit-exactly, and the loaded model predicts the same
    for p, q in zip(model.parameters(), model2.parameters()):
        assert p.name == q.name and p.data.dtype == q.data.dtype
        np.testing.assert_array_equal(p.data, q.data)
    same_backend = fnn.load(str(tmp_path / "digits.npz"), backend=name)
    np.testing.assert_array_equal(fnn.predict(model, X_test), fnn.predict(same_backend, X_test))
    np.testing.assert_allclose(fnn.predict(model2, X_test), fnn.predict(model, X_test), rtol=1e-4, atol=1e-4)


def test_same_seed_same_history(backend):
    X_train, _, y_train, _ = _digits()
    X_train, y_train = X_train[:300], y_train[:300]
    runs = []
    for _ in range(2):
        model = fnn.Sequential([fnn.Dense(64, 16), fnn.ReLU(), fnn.Dropout(0.1), fnn.Dense(16, 10)],
                               backend=backend.name, seed=7)
        opt = fnn.Adam(model.parameters(), lr=1e-2)
        h = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X_train, y_train, epochs=2, batch_size=50,
                    validation_split=0.2, verbose=0)
        runs.append((h.history, [p.data.copy() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_backends_agree_on_a_training_run():
    """A few epochs on every CPU backend end at the same weights (float64, tight tolerance)."""
    X, y = fnn.data.make_moons(n=64, seed=1)
    final = {}
    for name in fnn.available_backends():
        if name == "cuda":
            continue
        model = fnn.Sequential([fnn.Dense(2, 8), fnn.Tanh(), fnn.Dense(8, 2)], backend=name, seed=3,
                               dtype="float64")
        opt = fnn.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=3, batch_size=16, verbose=0, seed=0)
        final[name] = [p.data for p in model.parameters()]
    for name, weights in final.items():
        for a, b in zip(weights, final["numpy"]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


def _sgd_reference(p, g, v, lr, mu, wd, nesterov):
    g = g + wd * p
    v = mu * v + g
    return p - lr * (g + mu * v if nesterov else v), v


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_the_formula(backend, nesterov):
    layer = fnn.Dense(3, 2, backend=backend.name, seed=0, dtype="float64")
    opt = fnn.SGD(layer.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    p, v = layer.weight.data.copy(), np.zeros((3, 2))
    for _ in range(3):
        opt.zero_grad()
        layer(np.ones((4, 3)))
        layer.backward(np.ones((4, 2)))
        g = layer.weight.grad.copy()
        opt.step()
        p, v = _sgd_reference(p, g, v, 0.1, 0.9, 0.01, nesterov)
    np.testing.assert_allclose(layer.weight.data, p, rtol=1e-12)


@pytest.mark.parametrize("cls", [fnn.Adam, fnn.AdamW])
def test_adam_matches_the_paper(backend, cls):
    layer = fnn.Dense(3, 2, backend=backend.name, seed=0, dtype="float64")
    opt = cls(layer.parameters(), lr=0.01, weight_decay=0.1)
    p, m, v = layer.weight.data.copy(), np.zeros((3, 2)), np.zeros((3, 2))
    rng = np.random.default_rng(0)
    for t in range(1, 4):
        opt.zero_grad()
        layer(rng.standard_normal((4, 3)))
        layer.backward(rng.standard_normal((4, 2)))
        g = layer.weight.grad.copy()
        opt.step()
        if cls is fnn.AdamW:
            p = p - 0.01 * 0.1 * p
        else:
            g = g + 0.1 * p
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(layer.weight.data, p, rtol=1e-10)


def test_clip_grad_norm_and_penalties(backend):
    layer = fnn.Dense(4, 3, backend=backend.name, seed=0, dtype="float64")
    layer(np.ones((2, 4)) * 10)
    layer.backward(np.ones((2, 3)) * 10)
    before = fnn.global_grad_norm(layer.parameters())
    returned = fnn.clip_grad_norm(layer.parameters(), 1.0)
    assert returned == pytest.approx(before) and before > 1.0
    assert fnn.global_grad_norm(layer.parameters()) == pytest.approx(1.0)
    w = layer.weight.data
    assert fnn.L2(0.5).value(layer.parameters()) == pytest.approx(0.25 * np.sum(w ** 2))
    assert fnn.L1(0.5).value(layer.parameters()) == pytest.approx(0.5 * np.abs(w).sum())
    g = layer.weight.grad.copy()
    fnn.L1(0.5).add_grad(layer.parameters())
    np.testing.assert_allclose(layer.weight.grad, g + 0.5 * np.sign(w))


def test_early_stopping_restores_best_weights():
    X_train, _, y_train, _ = _digits()
    model = fnn.Sequential([fnn.Dense(64, 32), fnn.ReLU(), fnn.Dense(32, 10)], backend="numpy", seed=0)
    # a learning rate far too high makes validation loss climb: stopping must kick in
    opt = fnn.SGD(model.parameters(), lr=0.5, momentum=0.9)
    stopper = fnn.EarlyStopping(patience=2, restore_best=True)
    h = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X_train[:400], y_train[:400], epochs=40,
                validation_data=(X_train[400:600], y_train[400:600]), callbacks=[stopper], verbose=0)
    assert h.stopped_epoch is not None and h.stopped_epoch < 39
    assert h.best_epoch == int(np.argmin(h.val_loss))
    restored = fnn.evaluate(model, X_train[400:600], y_train[400:600])["loss"]
    assert restored == pytest.approx(min(h.val_loss), rel=1e-5)


def test_diverging_loss_is_a_clear_error():
    X, y = fnn.data.make_xor(n=64)
    model = fnn.Sequential([fnn.Dense(2, 8), fnn.ReLU(), fnn.Dense(8, 1)], backend="numpy", seed=0)
    opt = fnn.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+.*lower learning rate"):
        with np.errstate(all="ignore"):
            fnn.fit(model, fnn.MSE(), opt, X, y.astype(np.float32), epochs=20, verbose=0)


def test_fit_rejects_bad_data():
    X, y = fnn.data.make_moons(n=20)
    model = fnn.Sequential([fnn.Dense(2, 2)], backend="numpy", seed=0)
    opt = fnn.SGD(model.parameters(), lr=0.1)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first bad rows: \[3\]\)"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, bad, y, verbose=0)
    with pytest.raises(ValueError, match="X has 20 samples but y has 19"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y[:-1], verbose=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y + 1, verbose=0)
    with pytest.raises(ValueError, match="Dense: expected input of shape"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, np.zeros((20, 3)), y, verbose=0)


def test_regression_with_mse_and_bce():
    X, y = fnn.data.make_circles(n=200, seed=0)
    model = fnn.Sequential([fnn.Dense(2, 16), fnn.Tanh(), fnn.Dense(16, 1)], backend="numpy", seed=0)
    h = fnn.fit(model, fnn.BinaryCrossEntropy(), fnn.Adam(model.parameters(), lr=0.05), X, y,
                epochs=60, batch_size=32, verbose=0)
    assert h.loss[-1] < 0.5 * h.loss[0] and h.accuracy[-1] > 0.9
    model = fnn.Sequential([fnn.Dense(1, 16), fnn.Tanh(), fnn.Dense(16, 1)], backend="numpy", seed=0)
    x = np.linspace(-2, 2, 128)[:, None]
    h = fnn.fit(model, fnn.MSE(), fnn.Adam(model.parameters(), lr=0.02), x, np.sin(x),
                epochs=100, verbose=0, regularizers=[fnn.L2(1e-5)], clip_norm=5.0)
    assert h.loss[-1] < 0.01 and "accuracy" not in h.history


def test_schedules():
    opt = fnn.SGD([fnn.Parameter(np.zeros(2))], lr=1.0)
    step = fnn.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [step.on_epoch_end(e, {}) or opt.lr for e in range(4)]
    assert lrs == [1.0, 0.5, 0.5, 0.25]
    opt.lr = 1.0
    cos = fnn.CosineLR(opt, epochs=4, min_lr=0.0)
    cos.on_epoch_end(3, {})
    assert opt.lr == pytest.approx(0.0, abs=1e-12)


# --- save / load -------------------------------------------------------------------

def test_save_load_round_trip_every_layer(tmp_path, backend):
    model = fnn.Sequential([fnn.Flatten(), fnn.Dense(6, 5, activation="tanh"), fnn.BatchNorm1d(5),
                            fnn.LeakyReLU(0.2), fnn.Dropout(0.3),
                            fnn.Residual([fnn.Dense(5, 5), fnn.Sigmoid()]), fnn.Dense(5, 3), fnn.Softmax()],
                           backend=backend.name, seed=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((7, 2, 3))
    model(x)   # updates BatchNorm running statistics
    path = tmp_path / "m.npz"
    model.save(str(path))
    loaded = fnn.load(str(path), backend=backend.name)
    assert repr(loaded) == repr(model)
    for p, q in zip(model.parameters(), loaded.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    model.eval()
    loaded.eval()
    np.testing.assert_array_equal(model(x), loaded(x))


def test_load_rejects_bad_files(tmp_path):
    model = fnn.Sequential([fnn.Dense(3, 2)], backend="numpy", seed=0)
    good = tmp_path / "good.npz"
    model.save(str(good))
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fnn.load(str(tmp_path / "trunc.npz"))
    (tmp_path / "text.npz").write_bytes(b"hello, not a zip file at all")
    with pytest.raises(ValueError, match="not a readable fastnn model file"):
        fnn.load(str(tmp_path / "text.npz"))
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no header"):
        fnn.load(str(tmp_path / "plain.npz"))
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["param:0.weight"] = np.zeros((2, 3), np.float32)   # transposed: wrong shape
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match=r"parameter 0.weight has shape \(2, 3\)"):
        fnn.load(str(tmp_path / "shape.npz"))
    arrays["__header__"] = np.array('{"format": "something-else"}')
    np.savez(tmp_path / "foreign.npz", **arrays)
    with pytest.raises(ValueError, match="format 'something-else'"):
        fnn.load(str(tmp_path / "foreign.npz"))
    assert os.path.getsize(good) > 0


# --- arguments of fit / evaluate / predict ------------------------------------------------------

def _tiny(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64), fnn.Sequential([fnn.Dense(4, 2)], seed=0)


def test_fit_takes_integer_like_counts_and_refuses_bools():
    X, y, model = _tiny()
    opt = fnn.SGD(model.parameters(), lr=0.1)
    history = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=np.int64(2),
                      batch_size=np.int32(8), verbose=0)
    assert len(history) == 2
    for bad in (True, 2.0, 0):
        with pytest.raises(ValueError, match="fit: epochs must be a positive integer"):
            fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=bad, verbose=0)


def test_a_validation_split_that_leaves_no_training_rows_is_refused_by_fit():
    X, y, model = _tiny()
    with pytest.raises(ValueError, match=r"fit: validation_split=0.99 .* leaves none to train on"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), fnn.SGD(model.parameters()), X, y,
                validation_split=0.99, verbose=0)


def test_empty_sets_and_bad_batch_sizes_get_messages_from_the_function_called():
    X, y, model = _tiny()
    with pytest.raises(ValueError, match="evaluate: X has no samples"):
        fnn.evaluate(model, X[:0], y[:0])
    with pytest.raises(ValueError, match="fit: X has no samples"):
        fnn.fit(model, fnn.SoftmaxCrossEntropy(), fnn.SGD(model.parameters()), X[:0], y[:0], verbose=0)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="predict: batch_size must be a positive integer"):
            fnn.predict(model, X, batch_size=bad)
        with pytest.raises(ValueError, match="evaluate: batch_size must be a positive integer"):
            fnn.evaluate(model, X, y, batch_size=bad)
    assert fnn.predict(model, X, batch_size=np.int64(7)).shape == (40, 2)


# --- optimizer state follows model.to() -------------------------------------------------------

@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_optimizer_state_moves_with_the_parameters(opt_name):
    """fit -> to(backend, dtype) -> fit continues with the same velocity / moments, so it
    ends where an uninterrupted run ends."""
    X, _, y, _ = _digits()
    X, y = X[:400], y[:400]
    others = [b for b in BACKENDS if b not in ("numpy", "python")] or ["numpy"]

    def run(move):
        model = fnn.Sequential([fnn.Dense(64, 32), fnn.ReLU(), fnn.Dense(32, 10)], backend="numpy", seed=0)
        opt = (fnn.SGD(model.parameters(), lr=0.05, momentum=0.9) if opt_name == "sgd"
               else fnn.Adam(model.parameters(), lr=0.01))
        loss = fnn.SoftmaxCrossEntropy()
        fnn.fit(model, loss, opt, X, y, epochs=2, batch_size=50, shuffle=False, verbose=0)
        first = opt.velocity(model.parameters()[0]) if opt_name == "sgd" else opt.moments(model.parameters()[0])[0]
        before = np.array(first, copy=True)
        if move:
            model.to(others[0], "float64")
            moved = (opt.velocity(model.parameters()[0]) if opt_name == "sgd"
                     else opt.moments(model.parameters()[0])[0])
            np.testing.assert_allclose(fnn.get_backend(others[0]).to_host(moved), before, rtol=1e-6)
            assert moved.dtype == np.float64
        else:
            model.to(dtype="float64")
            model.to("numpy")
        return fnn.fit(model, loss, opt, X, y, epochs=1, batch_size=50, shuffle=False, verbose=0).loss[-1]

    assert abs(run(True) - run(False)) < 1e-4


def test_optimizer_reprs_show_their_settings():
    model = fnn.Sequential([fnn.Dense(3, 2)])
    assert repr(fnn.SGD(model.parameters(), lr=0.1, momentum=0.9)) == \
        "SGD(2 parameters, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)"
    assert repr(fnn.AdamW(model.parameters())).startswith("AdamW(2 parameters, lr=0.001, betas=(0.9, 0.999)")
    assert "gamma=0.5" in repr(fnn.StepLR(fnn.SGD(model.parameters()), 2, gamma=0.5))
