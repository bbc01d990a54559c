"""Teaching tools: the neuron playground, the training-loop visualiser and the studies.

Small sizes and few epochs throughout: each test runs in about a second.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
import fastnn.teach as teach
from fastnn.teach.commands import main as cli_main   # the sub-commands as fastnn.cli wires them
from fastnn.teach import studies
from fastnn.teach.neuron import ACTIVATIONS
from fastnn.teach.visualizer import checkpoint_epochs

CPU_BACKENDS = [b for b in fnn.available_backends() if b != "cuda"]
EXAMPLE = ["--inputs", "0.9", "0.3", "--weights", "1.2", "-0.8", "--bias", "-0.15", "--activation", "sigmoid"]


# --- neuron ------------------------------------------------------------------------------

def test_neuron_example_numbers_from_the_function():
    r = teach.neuron([0.9, 0.3], [1.2, -0.8], bias=-0.15, activation="sigmoid")
    z = 0.9 * 1.2 + 0.3 * -0.8 - 0.15
    assert r.z == pytest.approx(z, abs=1e-12)
    assert r.output == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
    assert f"{r.z:.2f}" == "0.69" and f"{r.output:.2f}" == "0.67"
    assert r.label == "positive" and round(100 * r.confidence) == 67
    d = r.as_dict()
    assert d["z"] == r.z and d["output"] == r.output and d["products"] == pytest.approx([1.08, -0.24])


def test_neuron_example_numbers_from_the_cli(capsys):
    assert cli_main(["neuron", *EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "(0.90 x 1.20) + (0.30 x -0.80) - 0.15 = 0.69" in out
    assert re.search(r"sigmoid\s+0\.69 -> 0\.67", out)
    assert re.search(r"confidence\s+67%\s+classification: positive", out)


def test_neuron_runs_from_the_fastnn_command_line():
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", "neuron", *EXAMPLE],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "= 0.69" in result.stdout and "0.69 -> 0.67" in result.stdout


def test_neuron_rejects_mismatched_inputs_and_weights(capsys):
    with pytest.raises(ValueError, match="one weight per input: got 2 inputs .* but 3 weights"):
        teach.neuron([0.9, 0.3], [1.0, 2.0, 3.0])
    assert cli_main(["neuron", "--inputs", "0.9", "0.3", "--weights", "1.2"]) == 2
    assert "one weight per input" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown activation"):
        teach.neuron([1.0], [1.0], activation="softsign")
    with pytest.raises(TypeError, match="inputs must be numbers"):
        teach.neuron(["a"], [1.0])
    with pytest.raises(ValueError, match="finite"):
        teach.neuron([float("nan")], [1.0])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_neuron_agrees_with_the_dense_layer(activation, backend):
    x, w, b = [0.5, -1.5, 2.0], [0.3, 0.2, -0.7], 0.1
    r = teach.neuron(x, w, b, activation, backend=backend)
    z = float(np.dot(x, w) + b)
    expected = {"sigmoid": 1 / (1 + math.exp(-z)), "tanh": math.tanh(z), "relu": max(z, 0.0),
                "leaky_relu": z if z > 0 else 0.01 * z, "linear": z}[activation]
    assert r.output == pytest.approx(expected, abs=1e-12)
    assert r.library_output == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_neuron_learning_step_gradient_matches_finite_differences(activation):
    x, w, b, t = [0.9, 0.3], [1.2, -0.8], -0.15, 0.0
    step = teach.neuron(x, w, b, activation, target=t, lr=0.1).step

    def loss(weights, bias):
        return teach.neuron(x, weights, bias, activation, target=t).step["loss"]

    h = 1e-6
    for i in range(len(w)):
        up, down = list(w), list(w)
        up[i] += h
        down[i] -= h
        assert step["grad_weights"][i] == pytest.approx((loss(up, b) - loss(down, b)) / (2 * h), rel=1e-5, abs=1e-8)
    assert step["grad_bias"] == pytest.approx((loss(w, b + h) - loss(w, b - h)) / (2 * h), rel=1e-5, abs=1e-8)
    assert step["new_weights"] == pytest.approx([wi - 0.1 * g for wi, g in zip(w, step["grad_weights"])])
    assert step["new_loss"] < step["loss"]   # a small step downhill lowers the loss


def test_linear_two_layer_network_collapses_into_one_layer():
    r = teach.two_layer([0.9, 0.3], hidden=4, activation="linear", seed=3)
    np.testing.assert_allclose(r.collapsed_w, r.w1 @ r.w2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.collapsed_b, r.b1 @ r.w2 + r.b2, rtol=0, atol=1e-15)
    # independent check on fresh inputs: two matrix products against one
    X = np.random.default_rng(7).normal(0, 5, (200, 2))
    two = (X @ r.w1 + r.b1) @ r.w2 + r.b2
    one = X @ r.collapsed_w + r.collapsed_b
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-12)
    assert r.output == pytest.approx(r.collapsed_output, abs=1e-12)
    assert r.collapses and r.max_difference < 1e-9


def test_nonlinear_two_layer_network_does_not_collapse(capsys):
    r = teach.two_layer([0.9, 0.3], hidden=3, activation="tanh", seed=0)
    assert not r.collapses and r.max_difference > 0.1
    assert cli_main(["neuron", "--inputs", "0.9", "0.3", "--hidden", "3", "--activation", "linear"]) == 0
    out = capsys.readouterr().out
    assert "W = W1 @ W2" in out and "ARE one linear layer" in out


# --- visualiser -----------------------------------------------------------------------------

def _logit_linearity_residual(grid, extent):
    """RMS residual of fitting logit(p) on the grid with a plane a*x + b*y + c (0 = straight boundary)."""
    xmin, xmax, ymin, ymax = extent
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, grid.shape[1]), np.linspace(ymin, ymax, grid.shape[0]))
    keep = (grid > 1e-4) & (grid < 1 - 1e-4)
    logit = np.log(grid[keep] / (1 - grid[keep]))
    A = np.c_[gx[keep], gy[keep], np.ones(keep.sum())]
    coef, *_ = np.linalg.lstsq(A, logit, rcond=None)
    return float(np.sqrt(np.mean((A @ coef - logit) ** 2)) / (np.std(logit) + 1e-12))


def test_no_hidden_layer_draws_a_straight_boundary_and_a_hidden_layer_bends_it():
    flat = teach.visualize("moons", hidden="0", lr="balanced", epochs=30, n=100, grid=24, checkpoints=3)
    bent = teach.visualize("moons", hidden="8", lr=2.0, epochs=30, n=100, grid=24, checkpoints=3)
    assert flat.hidden == () and bent.hidden == (8,)
    assert _logit_linearity_residual(flat.checkpoints[-1].grid, flat.extent) < 1e-3
    assert _logit_linearity_residual(bent.checkpoints[-1].grid, bent.extent) > 0.05


@pytest.mark.parametrize("epochs, count", [(1, 2), (7, 2), (12, 5), (200, 12), (3, 12)])
def test_checkpoints_run_from_epoch_0_to_the_last(epochs, count):
    at = checkpoint_epochs(epochs, count)
    assert at[0] == 0 and at[-1] == epochs and len(at) <= count
    assert all(a < b for a, b in zip(at, at[1:]))
    if epochs >= 2 * count:
        assert len(at) == count


def test_visualize_records_every_checkpoint():
    run = teach.visualize("xor", hidden="8,8", lr="balanced", epochs=12, n=60, grid=10, checkpoints=5)
    epochs = [cp.epoch for cp in run.checkpoints]
    assert epochs == checkpoint_epochs(12, 5) and epochs[0] == 0 and epochs[-1] == 12
    assert len(epochs) == 5 and all(a < b for a, b in zip(epochs, epochs[1:]))
    assert len(run.epoch_loss) == 12 and not run.diverged
    for cp in run.checkpoints:
        assert cp.probs.shape == (60,) and cp.grid.shape == (10, 10)
        np.testing.assert_array_equal(cp.correct, (cp.probs >= 0.5) == (run.y == 1))
        assert cp.accuracy == pytest.approx(cp.correct.mean())
    # the checkpoint loss is the cross-entropy of the recorded probabilities
    last = run.checkpoints[-1]
    p_true = np.where(run.y == 1, last.probs, 1 - last.probs)
    assert last.loss == pytest.approx(-np.mean(np.log(p_true)), rel=1e-4)


def test_learning_rate_presets_show_their_lesson():
    runs = {name: teach.visualize("moons", hidden="8", lr=name, epochs=25, n=200, grid=4, checkpoints=2)
            for name in ("gentle", "balanced", "unstable")}
    final = {name: run.checkpoints[-1].loss for name, run in runs.items()}
    assert final["unstable"] > 5 * final["balanced"]
    assert final["gentle"] > final["balanced"]
    unstable = runs["unstable"].epoch_loss
    assert np.sum(np.diff(unstable) > 0) >= len(unstable) // 4   # it oscillates
    assert "too large" in runs["unstable"].lesson()


def test_a_diverging_run_is_recorded_not_raised():
    run = teach.visualize("xor", hidden="8", lr=1e8, activation="relu", epochs=10, n=60, grid=6, checkpoints=3)
    assert run.diverged and 1 <= run.diverged_epoch <= 10
    assert run.checkpoints[0].epoch == 0
    assert all(math.isfinite(v) for v in run.epoch_loss)   # only finite epochs are kept
    assert "diverged" in run.lesson()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_visualize_gives_the_same_run_on_every_backend(backend):
    kwargs = dict(dataset="moons", hidden="4", lr="balanced", epochs=3, n=24, grid=5, checkpoints=3)
    ref = teach.visualize(backend="numpy", **kwargs)
    run = teach.visualize(backend=backend, **kwargs)
    assert run.backend == backend
    np.testing.assert_allclose(run.epoch_loss, ref.epoch_loss, rtol=1e-4)
    for cp, cp_ref in zip(run.checkpoints, ref.checkpoints):
        np.testing.assert_allclose(cp.grid, cp_ref.grid, atol=1e-4)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradient_norms_agree_across_backends(backend):
    X, y = fnn.data.load_digits()
    norms = {}
    for name in ("numpy", backend):
        model = studies.deep_network("ReLU + batch norm", depth=10, width=8, backend=name, seed=2)
        norms[name] = studies.gradient_norms(model, X[:16] / 16, y[:16])
    np.testing.assert_allclose(norms[backend], norms["numpy"], rtol=1e-3)


def test_visualize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        teach.visualize("iris")
    with pytest.raises(ValueError, match="lr must be one of"):
        teach.visualize("moons", lr="fast")
    with pytest.raises(ValueError, match="hidden"):
        teach.visualize("moons", hidden="8,x")
    with pytest.raises(ValueError, match="epochs"):
        teach.visualize("moons", epochs=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        teach.visualize("moons", optimizer="rmsprop")


def test_visualize_with_momentum_learns_the_spirals_plain_sgd_does_not():
    kwargs = dict(dataset="spirals", hidden="16,16", activation="relu", lr=0.05, epochs=60, grid=4, checkpoints=2)
    plain = teach.visualize(**kwargs)
    momentum = teach.visualize(optimizer="momentum", **kwargs)
    assert momentum.optimizer == "momentum" and "momentum" in momentum.title
    assert momentum.checkpoints[-1].loss < 0.6 * plain.checkpoints[-1].loss


def _page_data(html):
    match = re.search(r'<script id="run-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page has no embedded run data"
    return json.loads(match.group(1))


def test_visualize_writes_pngs_and_a_self_contained_page(tmp_path):
    run = teach.visualize("circles", hidden="8", lr="balanced", epochs=10, n=50, grid=12, checkpoints=4,
                          out=str(tmp_path))
    assert set(run.files) == {"loss", "maps", "html"}
    for kind in ("loss", "maps"):
        with open(run.files[kind], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(run.files[kind]) > 5000
    with open(run.files["html"], encoding="utf-8") as f:
        html = f.read()
    data = _page_data(html)
    assert [c["epoch"] for c in data["checkpoints"]] == [cp.epoch for cp in run.checkpoints]
    for page_cp, cp in zip(data["checkpoints"], run.checkpoints):
        assert page_cp["map"].startswith("data:image/png;base64,") and len(page_cp["map"]) > 1000
        assert page_cp["correct"] == cp.correct.tolist()
        np.testing.assert_allclose(page_cp["probs"], cp.probs, atol=1e-6)
    assert len(data["X"]) == 50 and data["y"] == run.y.tolist()
    # self-contained: nothing is loaded from elsewhere
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "<script src" not in html and "@import" not in html


def test_visualize_cli(tmp_path, capsys):
    code = cli_main(["visualize", "--dataset", "xor", "--hidden", "0", "--lr", "gentle", "--epochs", "5",
                     "--n", "40", "--grid", "8", "--checkpoints", "3", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "xor, no hidden layer, lr 0.02 (gentle)" in out and "straight line" in out
    assert sorted(os.listdir(tmp_path)) == ["training-loop.html", "xor_h0_lr-gentle.html",
                                            "xor_h0_lr-gentle_loss.png", "xor_h0_lr-gentle_maps.png"]


def test_visualize_cli_defaults_to_the_seed_points(tmp_path, capsys):
    assert cli_main(["visualize", "--backend", "numpy", "--out", str(tmp_path)]) == 0
    assert "training-loop.html" in capsys.readouterr().out and os.listdir(tmp_path) == ["training-loop.html"]
    with open(tmp_path / "training-loop.html", encoding="utf-8") as f:
        html = f.read()
    data = json.loads(re.search(r'id="loop-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    from fastnn.teach.loop import record_setups
    assert data == json.loads(json.dumps(record_setups(backend="numpy")))   # the seeded runs, as embedded
    assert "nw-positive" in html and not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)


@pytest.mark.skipif(shutil.which(os.environ.get("CHROMIUM", "chromium")) is None,
                    reason="needs chromium on PATH: `make test` installs it when run as root on Debian; "
                           "elsewhere install it and run `make test-browser` (fastnn/teach/check_html.sh)")
def test_html_page_slider_works_in_headless_chromium(tmp_path):
    script = os.path.join(os.path.dirname(teach.__file__), "check_html.sh")
    result = subprocess.run(["sh", script, str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SELFTEST PASS" in result.stdout and "PASS" in result.stdout.splitlines()[-1]


# --- studies -----------------------------------------------------------------------------------

def test_learning_rate_study(tmp_path):
    s = studies.learning_rate(epochs=20, out=str(tmp_path))
    g, b, u = s.data["gentle"], s.data["balanced"], s.data["unstable"]
    assert u["final_loss"] > 5 * b["final_loss"]
    assert g["final_loss"] > b["final_loss"]
    assert g["loss"][0] > g["loss"][-1]   # gentle does learn, only slowly
    assert "overshoots" in s.caption or "diverges" in s.caption
    assert os.path.getsize(s.figure) > 5000


def test_overfitting_study(tmp_path):
    s = studies.overfitting(epochs=40, width=128, lr=3e-3, n_val=300, out=str(tmp_path))
    none, drop, l2, early = (s.data[k] for k in ("no regularisation", "dropout 0.5", "L2 penalty 3e-3",
                                                 "early stopping"))
    # training loss near zero, validation loss past its minimum and climbing
    assert none["loss"][-1] < 0.05 and none["final_val_loss"] > none["best_val_loss"] * 1.05
    assert none["best_epoch"] < 40
    assert l2["final_val_loss"] < none["final_val_loss"]
    assert drop["final_val_loss"] < none["final_val_loss"]
    # early stopping: stopped before the end, restored the best epoch's weights
    assert early["stopped_epoch"] is not None and early["stopped_epoch"] < 40
    assert early["restored"]["loss"] == pytest.approx(early["best_val_loss"], rel=1e-5)
    assert os.path.getsize(s.figure) > 5000


def test_vanishing_gradients_study(tmp_path):
    s = studies.vanishing_gradients(epochs=1, out=str(tmp_path))
    assert set(s.data) == set(studies.VANISHING_VARIANTS)
    for variant, d in s.data.items():
        assert len(d["grad_init"]) == 12 and len(d["grad_trained"]) == 12
        assert all(g > 0 and math.isfinite(g) for g in d["grad_init"])
    sigmoid = s.data["sigmoid"]["grad_init"]
    assert sigmoid[0] < 1e-3 * sigmoid[-1]              # orders of magnitude smaller at the input end
    assert all(a < b for a, b in zip(sigmoid, sigmoid[1:]))   # shrinking layer by layer
    for variant in ("ReLU", "ReLU + residual", "ReLU + batch norm", "sigmoid + batch norm"):
        ratio = s.data[variant]["first_over_last"]
        assert 0.1 < ratio < 10, (variant, ratio)
    assert os.path.getsize(s.figure) > 5000


def test_vanishing_gradient_norms_are_the_dense_weight_gradients():
    model = studies.deep_network("ReLU + residual", depth=10, width=8, seed=1)
    assert len(list(studies.dense_layers(model))) == 10
    X, y = fnn.data.load_digits()
    norms = studies.gradient_norms(model, X[:32] / 16, y[:32])
    dense = list(studies.dense_layers(model))
    assert norms == pytest.approx([np.linalg.norm(d.weight.grad) for d in dense])


def test_optimizers_study(tmp_path):
    s = studies.optimizers(epochs=25, out=str(tmp_path))
    sgd, momentum, adam = (s.data[k]["final_loss"] for k in s.data)
    assert momentum < 0.8 * sgd and adam < 0.8 * sgd
    assert os.path.getsize(s.figure) > 5000


def test_study_cli(tmp_path, capsys):
    assert cli_main(["study", "optimizers", "--epochs", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "notice:" in out and "figure:" in out and "Adam" in out
    assert os.path.exists(tmp_path / "study_optimizers.png")
    with pytest.raises(ValueError, match="unknown study"):
        teach.run_study("dropout")


# --- the Training Loop Visualizer's six setups ----------------------------------------------------

def test_fit_state_rules():
    from fastnn.teach.loop import fit_state
    assert fit_state(0.693, 0.5, 0.693) == "underfitting"                        # epoch 0
    assert fit_state(float("nan"), 0.5, 0.693) == "unstable"
    assert fit_state(0.5, 0.75, 0.693, 0.6, [0.6, 0.7, 0.5]) == "unstable"        # one epoch rose > 10%
    assert fit_state(0.9, 0.75, 0.693, 0.9, [0.9, 0.9]) == "unstable"             # above epoch 0
    assert fit_state(0.01, 1.0, 0.693, 0.02, [0.02, 0.01]) == "overfitting"
    assert fit_state(0.2, 1.0, 0.693, 0.3, [0.3, 0.2]) == "fitted"
    assert fit_state(0.5, 0.875, 0.693, 0.6, [0.6, 0.5]) == "learning"
    assert fit_state(0.6, 0.875, 0.693, 0.601, [0.601, 0.6]) == "underfitting"   # stalled
    assert fit_state(0.5, 1.0, 0.693, 0.6, [0.6, 0.5]) == "learning"              # all right, loss still high


def test_seed_setups_shallow_cannot_solve_the_xor_deep_can():
    from fastnn.teach.loop import SEED_POINTS, record_setups
    data = record_setups(backend="numpy")
    assert [(p["name"], p["x"], p["y"], p["label"]) for p in data["points"]] == [tuple(p) for p in SEED_POINTS]
    assert set(data["runs"]) == {f"{d}-{r}" for d in ("shallow", "deep") for r in ("gentle", "balanced", "unstable")}
    epochs = {tuple(c["epoch"] for c in run["checkpoints"]) for run in data["runs"].values()}
    assert len(epochs) == 1   # the same checkpoint epochs in every setup
    for name, run in data["runs"].items():
        best = max(c["accuracy"] for c in run["checkpoints"])
        if name.startswith("shallow"):   # one straight line: at most 6 of the 8 points
            assert best <= 0.75, (name, best)
        elif name != "deep-unstable":    # the hidden layer solves it (the unstable step keeps overshooting)
            assert run["checkpoints"][-1]["accuracy"] == 1.0, name
    first = data["runs"]["deep-balanced"]["checkpoints"][0]
    assert round(first["loss"], 2) == 0.69 and first["accuracy"] == 0.5 and first["state"] == "underfitting"
    states = [c["state"] for c in data["runs"]["deep-balanced"]["checkpoints"]]
    assert {"underfitting", "learning", "fitted"} <= set(states)
    assert "unstable" in [c["state"] for c in data["runs"]["deep-unstable"]["checkpoints"]]
    assert "fitted" not in {c["state"] for n, r in data["runs"].items() if n.startswith("shallow")
                            for c in r["checkpoints"]}
    for run in data["runs"].values():   # update size = learning rate x gradient norm
        for c in run["checkpoints"]:
            assert c["update"] == pytest.approx(run["lr"] * c["grad_norm"], rel=1e-5, abs=2e-6)
    assert record_setups(backend="numpy") == data   # deterministic
