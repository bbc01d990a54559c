"""The fused training step (``fastnn/fused.py`` plans it, ``mlp_train_step`` of
``kernels/fused_contract.py`` runs it) on every backend that has it: the same numbers as
the layer-by-layer path, what qualifies, what is refused before compiled code runs, and
which backends must run it natively."""

import numpy as np
import pytest

import fastnn as fnn
import fastnn.kernels as K
from fastnn.fused import plan_mlp
from fastnn.kernels.contract import ContractError

from conftest import BACKENDS

# The compiled CPU backends must fuse the step: without it a small model's step is
# several times slower, so falling back unnoticed would be a regression.
NATIVE = ("numba", "cython")
FUSED = [b for b in BACKENDS if K.get(b).mlp_train_step is not None]


def test_compiled_backends_fuse_the_step_natively():
    for name in NATIVE:
        if name in K.available():
            assert K.get(name).mlp_train_step is not None, name
    for name in ("numpy", "python"):
        assert K.get(name).mlp_train_step is None, name


def _mlp(backend, dtype, hidden):
    layers = [fnn.Dense(20, 16, activation="relu" if hidden == "fused-relu" else "linear")]
    extra = {"relu": fnn.ReLU(), "leaky_relu": fnn.LeakyReLU(0.05), "sigmoid": fnn.Sigmoid(),
             "tanh": fnn.Tanh()}.get(hidden)
    layers += [extra] if extra is not None else []
    layers += [fnn.Dense(16, 12, activation="tanh"), fnn.Dense(12, 5)]
    return fnn.Sequential(layers, backend=backend, seed=11, dtype=dtype)


OPTIMIZERS = {
    "sgd": lambda p: fnn.SGD(p, lr=0.1),
    "sgd-momentum-wd": lambda p: fnn.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda p: fnn.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: fnn.Adam(p, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda p: fnn.AdamW(p, lr=1e-2),
}


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("hidden", ["relu", "fused-relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_fit_equals_layer_by_layer_fit(backend, dtype, hidden, optimizer):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((70, 20)).astype(dtype)
    y = rng.integers(0, 5, 70)
    results = {}
    for fused in (False, True):
        model = _mlp(backend, dtype, hidden)
        opt = OPTIMIZERS[optimizer](model.parameters())
        assert fnn.TrainStep(model, fnn.SoftmaxCrossEntropy(), opt, fused=fused).fused is fused
        hist = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=2, batch_size=32,
                       seed=4, verbose=0, fused=fused)      # 3 steps an epoch, the last one short
        results[fused] = ([p.data.copy() for p in model.parameters()],
                          [p.grad.copy() for p in model.parameters()], hist.history)
    (p0, g0, h0), (p1, g1, h1) = results[False], results[True]
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(p0 + g0, p1 + g1):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    assert h1["accuracy"] == h0["accuracy"]
    np.testing.assert_allclose(h1["loss"], h0["loss"], rtol=tol)


def test_only_what_the_step_covers_is_planned():
    def sgd(model, params=None):
        return fnn.SGD(model.parameters() if params is None else params, lr=0.1)
    ok = fnn.Sequential([fnn.Dense(4, 4), fnn.ReLU(), fnn.Dense(4, 2)], backend="numpy")
    plan = plan_mlp(ok, fnn.SoftmaxCrossEntropy(), sgd(ok))
    assert plan is not None and plan.acts.tolist() == [1, 0] and not plan.adam
    assert plan_mlp(ok, fnn.SoftmaxCrossEntropy(), fnn.AdamW(ok.parameters())).adam
    sce = fnn.SoftmaxCrossEntropy()
    declined = [
        (fnn.Sequential([fnn.Dense(4, 4), fnn.Dropout(0.5), fnn.Dense(4, 2)]), sce, None),
        (fnn.Sequential([fnn.Dense(4, 4, activation="relu"), fnn.ReLU(), fnn.Dense(4, 2)]), sce, None),
        (fnn.Sequential([fnn.ReLU(), fnn.Dense(4, 2)]), sce, None),
        (ok, fnn.MSE(), None),
        (ok, sce, ok.parameters()[:2]),                      # the optimizer misses parameters
    ]
    for model, loss, params in declined:
        assert plan_mlp(model, loss, sgd(model, params)) is None, model
    shared = fnn.Sequential([fnn.Dense(4, 4), fnn.Dense(4, 4)])
    shared.layers[1].weight = shared.layers[0].weight        # one weight, two layers
    assert plan_mlp(shared, sce, sgd(shared)) is None


@pytest.mark.parametrize("backend", FUSED)
def test_bad_batches_are_refused_before_anything_changes(backend):
    model = _mlp(backend, "float32", "relu")
    opt = fnn.Adam(model.parameters())
    step = fnn.TrainStep(model, fnn.SoftmaxCrossEntropy(), opt)
    assert step.fused
    before = [p.data.copy() for p in model.parameters()]
    x = np.zeros((4, 20), np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        step(x, np.array([0, 1, 5, 2], np.int64))
    with pytest.raises(TypeError, match="labels must be an int64 array"):
        step(x, np.array([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ContractError, match="weights"):
        step(np.zeros((4, 19), np.float32), np.zeros(4, np.int64))
    assert opt.step_count == 0
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    model.layers[0].weight.value = np.zeros((3, 3), np.float32)   # a swapped-out parameter
    with pytest.raises(ContractError, match=r"weights\[0\]"):
        step(x, np.zeros(4, np.int64))
    assert opt.step_count == 0


def _arguments(backend, adam=False):
    """The arguments of one valid mlp_train_step call (2 layers, 8 -> 6 -> 3)."""
    rng = np.random.default_rng(0)
    shapes = [(8, 6), (6, 3)]
    ws = tuple(rng.standard_normal(s).astype(np.float32) for s in shapes)
    bs = tuple(np.zeros(s[1], np.float32) for s in shapes)
    grads = [tuple(np.zeros_like(a) for a in group) for group in (ws, bs)]
    states = tuple(tuple(np.zeros_like(a) for a in group) for group in (ws, bs, ws, bs))
    x = rng.standard_normal((5, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1], np.int64)
    hyper = (0.1, 0.9, 0.0, False, 0.9, 0.999, 1e-8, 1, False)
    return [x, labels, ws, bs, grads[0], grads[1], states, np.array([1, 0], np.int64),
            np.zeros(2), adam, hyper]


@pytest.mark.parametrize("backend", FUSED)
def test_every_argument_of_the_fused_kernel_is_checked(backend):
    kernel = K.get(backend).mlp_train_step
    kernel(*_arguments(backend))                               # valid: runs
    cases = {
        "x": (0, np.zeros((5, 7), np.float32), ContractError, "weights"),
        "labels": (1, np.array([0, 1, 2, 0, 3]), ValueError, r"labels must lie in \[0, 3\)"),
        "labels dtype": (1, np.zeros(5, np.int32), TypeError, "labels must be an int64"),
        "weights type": (2, [np.zeros((8, 6), np.float32)], TypeError, "weights must be"),
        "bias shape": (3, (np.zeros(5, np.float32), np.zeros(3, np.float32)), ContractError, "biases"),
        "grad dtype": (4, (np.zeros((8, 6)), np.zeros((6, 3))), TypeError, "float32"),
        "states": (6, (), TypeError, "states"),
        "acts": (7, np.array([1, 9], np.int64), ContractError, "activation codes"),
        "slopes": (8, np.zeros(3), TypeError, "slopes"),
        "hyper": (10, (0.1,), TypeError, "hyper"),
        "lr": (10, ("0.1", 0.9, 0.0, False, 0.9, 0.999, 1e-8, 1, False), TypeError, "lr"),
    }
    for what, (position, value, error, message) in cases.items():
        args = _arguments(backend)
        args[position] = value
        with pytest.raises(error, match=message):
            kernel(*args)
    args = _arguments(backend)
    args[4] = (args[2][0], args[4][1])                         # a gradient that is a weight
    with pytest.raises(ContractError, match="overlaps"):
        kernel(*args)
    args = _arguments(backend, adam=True)
    args[10] = args[10][:7] + (0,) + args[10][8:]              # Adam step count 0
    with pytest.raises(ContractError, match="step"):
        kernel(*args)


@pytest.mark.parametrize("backend", FUSED)
def test_an_array_reshaped_in_place_after_the_check_is_still_refused(backend):
    """The check remembers the tuples it accepted; a weight reshaped in place afterwards
    is caught by the kernel itself, before compiled code indexes it."""
    kernel = K.get(backend).mlp_train_step
    args = _arguments(backend)
    kernel(*args)
    args[4][0].shape = (6, 8)                                  # same tuple, same array object
    with pytest.raises(ValueError, match="shape|weight_grads"):
        kernel(*args)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("what", ["gradient", "velocity", "adam"])
def test_mis_shaped_gradients_and_state_never_reach_compiled_code(backend, what):
    """A (6, 4) gradient or optimizer state for a (6, 40) weight, its data ending right before
    an inaccessible page: the fused step (and fit) must refuse it before compiled code
    writes past it."""
    from test_contract import assert_survived, run_guarded
    rc, out = run_guarded(f"""
        import numpy as np
        import fastnn as fnn
        model = fnn.Sequential([fnn.Dense(6, 40), fnn.ReLU(), fnn.Dense(40, 3)], backend={backend!r}, seed=0)
        weight = model.layers[0].weight
        opt = fnn.Adam(model.parameters()) if {what!r} == "adam" else fnn.SGD(model.parameters(), lr=0.1, momentum=0.9)
        bad = guarded((6, 4))
        if {what!r} == "gradient":
            weight.gradient = bad
            weight.zero_grad()
        elif {what!r} == "velocity":
            opt.velocity(weight)
            opt.state[id(weight)] = (opt.state[id(weight)][0], [bad])
        else:
            opt.moments(weight)
            opt.state[id(weight)] = (opt.state[id(weight)][0], [np.zeros((6, 40), np.float32), bad])
        X = np.ones((64, 6), np.float32)
        y = np.arange(64) % 3
        step = fnn.TrainStep(model, fnn.SoftmaxCrossEntropy(), opt)
        assert step.fused
        try:
            step(X[:16], y[:16])
        except ValueError as exc:
            print("REFUSED", exc)
        try:
            fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=16, verbose=0)
        except ValueError as exc:
            print("FIT REFUSED", exc)
        print("steps", getattr(opt, "step_count", 0))
    """)
    assert_survived(rc, out)
    assert "REFUSED mlp_train_step:" in out and "FIT REFUSED" in out, out
    assert "(6, 40)" in out and "steps 0" in out, out
