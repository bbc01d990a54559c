"""The Training Loop Visualizer: six deterministic runs (shallow/deep x gentle/balanced/
unstable) on one 2-D data set, recorded at the same epochs and embedded in one page.

    setups = fnn.teach.loop.record_setups()          # the seed's 8 named points (an XOR)
    setups["deep-balanced"]["checkpoints"][0]        # loss, accuracy, fit state, gradient norm, ...
    fnn.teach.loop.write_loop_page("out")            # out/training-loop.html

Each run is plain full-batch gradient descent (the seed set: one step per epoch) on
softmax cross-entropy, seeded, so the page shows the same numbers every time.
"""

import json
import math
import os

import numpy as np

from .visualizer import DEFAULT_NOISE, checkpoint_epochs, train_recorded

__all__ = ["SEED_POINTS", "DEPTHS", "RATES", "FIT_RULES", "DEFAULT_SETUP", "seed_dataset", "fit_state",
           "record_setups", "write_loop_page"]

# The seed's toy data set: an XOR of 8 named points (no straight line separates the labels).
SEED_POINTS = [("nw-positive", -1.0, 1.0, 1), ("se-positive", 1.0, -1.0, 1), ("ne-negative", 1.0, 1.0, 0),
               ("sw-negative", -1.0, -1.0, 0), ("nw-soft", -0.75, 0.75, 1), ("se-soft", 0.7, -0.7, 1),
               ("ne-soft", 0.72, 0.72, 0), ("sw-soft", -0.72, -0.72, 0)]

DEPTHS = {"shallow": ((), "No hidden layer: the boundary is one straight line, so an XOR stays out of reach."),
          "deep": ((4,), "One hidden layer of 4 tanh units: the boundary can bend around the XOR.")}
RATES = {"gentle": (0.05, "A small step size. Every update is safe but tiny, so progress is slow."),
         "balanced": (0.5, "A healthy step size for this toy problem. Fast enough to learn without obvious "
                           "overshoot."),
         "unstable": (12.0, "A step size far too large. Updates overshoot the valley, so the loss jumps "
                            "instead of falling.")}
DEFAULT_SETUP = "deep-balanced"
SEED = 7          # weights of epoch 0: a coin flip on the seed set (loss 0.69, accuracy 50%)
EPOCHS = 300
CHECKPOINTS = 16
GRID = 36

FIT_RULES = [
    ("unstable", "the loss is not finite, or it rose by more than 10% in one epoch since the previous "
                 "checkpoint, or it is above its epoch-0 value by more than 10%"),
    ("overfitting", "every sample is right and the loss is below 0.05: the weights keep growing to make the "
                    "training points certain, which these few points cannot justify"),
    ("fitted", "every sample is right and the loss is below 0.4"),
    ("learning", "the loss is at least 2% below the previous checkpoint's: it is still falling"),
    ("underfitting", "none of the above: samples are wrong and the loss is not falling (yet, or any more: "
                     "the model cannot fit the data)"),
]


def seed_dataset():
    """(X (8, 2) float32, y (8,) int64, names) of the seed's toy set."""
    X = np.array([(x, y) for _, x, y, _ in SEED_POINTS], np.float32)
    y = np.array([label for *_, label in SEED_POINTS], np.int64)
    return X, y, [name for name, *_ in SEED_POINTS]


def fit_state(loss, accuracy, first_loss, previous_loss=None, epoch_losses=()):
    """The fit state of a checkpoint by :data:`FIT_RULES` (the first rule that holds).

    ``epoch_losses``: the training losses of the epochs since the previous checkpoint,
    preceded by the loss before the first of them (empty at epoch 0); ``previous_loss``: the
    previous checkpoint's loss (None at epoch 0)."""
    losses = [v for v in epoch_losses]
    if loss is None or not math.isfinite(loss) or any(v is None or not math.isfinite(v) for v in losses):
        return "unstable"
    if any(b > 1.1 * a for a, b in zip(losses, losses[1:])) or loss > 1.1 * first_loss:
        return "unstable"
    if accuracy == 1.0 and loss < 0.05:
        return "overfitting"
    if accuracy == 1.0 and loss < 0.4:
        return "fitted"
    if previous_loss is not None and loss <= 0.98 * previous_loss:
        return "learning"
    return "underfitting"


class _StepRecorder:
    """A fit callback: at each checkpoint the full-set gradient norm and the parameter vector."""

    def __init__(self, X, y, at):
        self.X, self.y, self.at = X, y, set(at)
        self.grad_norm, self.weights = [], []

    def on_train_begin(self, model, history):
        self.model = model
        self.record()

    def on_epoch_end(self, epoch, logs):
        if epoch + 1 in self.at:
            self.record()
        return False

    def on_train_end(self, model, history):
        pass

    def record(self):
        import fastnn as fnn
        loss = fnn.SoftmaxCrossEntropy(backend=self.model.backend_name)
        with np.errstate(all="ignore"):
            self.model.zero_grad()   # fit zeroes (or overwrites) the gradients before its next step
            loss.forward(self.model.forward(self.X), self.y)
            self.model.backward(loss.backward())
            params = self.model.parameters()
            grads = np.concatenate([np.asarray(p.grad, np.float64).ravel() for p in params])
            self.weights.append(np.concatenate([np.asarray(p.data, np.float64).ravel() for p in params]))
        self.grad_norm.append(float(np.linalg.norm(grads)))


def _finite(v, digits=6):
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def record_setups(dataset="seed", epochs=None, n=200, seed=None, backend=None, checkpoints=CHECKPOINTS,
                  grid=GRID, deep_hidden=None):
    """Train the six setups on ``dataset`` ("seed" or a name in ``fnn.data.TOY_DATASETS``).

    Returns the page's data: the points, the setups' descriptions, the fit rules and for
    each setup (key "depth-rate") its checkpoints, all at the same epochs: loss,
    accuracy, fit state, P(positive) per point, gradient norm, update size and decision map."""
    import fastnn as fnn
    if dataset == "seed":
        X, y, names = seed_dataset()
        epochs, seed = epochs or EPOCHS, SEED if seed is None else seed
    elif dataset in fnn.data.TOY_DATASETS:
        X, y = fnn.data.TOY_DATASETS[dataset](n=n, noise=DEFAULT_NOISE[dataset], seed=seed or 0)
        names = [f"{dataset}-{i}" for i in range(len(y))]
        epochs, seed = epochs or 200, seed or 0
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'seed' or one of {tuple(fnn.data.TOY_DATASETS)}")
    backend = fnn.kernels.resolve(backend or fnn.get_backend_name())
    at = checkpoint_epochs(epochs, checkpoints)
    runs = {}
    for depth, (hidden, _) in DEPTHS.items():
        hidden = tuple(deep_hidden) if deep_hidden and hidden else hidden
        for rate, (lr, _) in RATES.items():
            steps = _StepRecorder(X, y, at)
            rec, diverged, extent = train_recorded(X, y, hidden, "tanh", lr, epochs, len(y), seed, backend, at,
                                                   grid, callbacks=[steps])
            runs[f"{depth}-{rate}"] = _run_data(rec, steps, lr, hidden, diverged, at)
    return {"dataset": dataset, "epochs": epochs, "seed": seed, "backend": backend, "extent": extent,
            "grid": grid, "points": [{"name": nm, "x": round(float(a), 4), "y": round(float(b), 4), "label": int(c)}
                                     for nm, (a, b), c in zip(names, X, y)],
            "depths": {k: {"hidden": list(v[0]), "text": v[1]} for k, v in DEPTHS.items()},
            "rates": {k: {"lr": v[0], "text": v[1]} for k, v in RATES.items()},
            "rules": [{"state": s, "rule": r} for s, r in FIT_RULES], "default": DEFAULT_SETUP, "runs": runs}


def _run_data(rec, steps, lr, hidden, diverged, at):
    cps, first = [], rec.checkpoints[0].loss
    previous = None
    for k, cp in enumerate(rec.checkpoints):
        window = [] if k == 0 else ([rec.epoch_loss[at[k - 1] - 1]] if at[k - 1] > 0 else [first]) + \
            rec.epoch_loss[at[k - 1]:cp.epoch]
        classes = cp.grid >= 0.5
        moved = None if previous is None else float(np.mean(classes != previous))
        previous = classes
        g = steps.grad_norm[k] if k < len(steps.grad_norm) else float("nan")
        w = steps.weights[k] if k < len(steps.weights) else None
        cps.append({"epoch": cp.epoch, "loss": _finite(cp.loss), "accuracy": cp.accuracy,
                    "state": fit_state(cp.loss, cp.accuracy, first, k and rec.checkpoints[k - 1].loss or None,
                                       window),
                    "probs": [_finite(p, 4) for p in cp.probs], "correct": [bool(c) for c in cp.correct],
                    "grad_norm": _finite(g), "update": _finite(lr * g),
                    "weight_norm": None if w is None else _finite(float(np.linalg.norm(w))),
                    "moved": None if moved is None else round(moved, 4),
                    "grid": np.round(100 * np.nan_to_num(cp.grid, nan=0.5)).astype(int).ravel().tolist()})
    return {"lr": lr, "hidden": list(hidden), "diverged_epoch": diverged,
            "epoch_loss": [_finite(v) for v in rec.epoch_loss], "checkpoints": cps}


def write_loop_page(out, dataset="seed", **options):
    """Write ``out/training-loop.html`` (self-contained: data inline, no network) and return its path."""
    data = record_setups(dataset, **options)
    with open(os.path.join(os.path.dirname(__file__), "loop.html"), encoding="utf-8") as f:
        template = f.read()
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "training-loop.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(template.replace("__LOOP_DATA__", payload))
    return path
