"""Watch a classifier learn: record a training run on a 2-D toy set at checkpoints and
draw it (loss curve, decision-map snapshots, an interactive HTML page).

    run = fnn.teach.visualize("moons", hidden="8", lr="balanced", epochs=200, out="viz")
    run.checkpoints[-1].accuracy      # every checkpoint: loss, accuracy, per-sample
    run.files                         # probabilities, right/wrong, decision map on a grid

The model is ``2 -> hidden... -> 2`` (Dense layers with the hidden activation, then
logits) trained with plain SGD and softmax cross-entropy, so the learning rate alone
decides how the run behaves.
"""

import base64
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..training import Callback
from .progress import EpochBar

__all__ = ["LR_PRESETS", "HIDDEN_ACTIVATIONS", "OPTIMIZERS", "Checkpoint", "VisualRun", "visualize",
           "train_recorded", "build_classifier", "plot_decision_maps", "plot_loss", "write_html", "write_all"]

# Plain SGD step sizes that show the three classic behaviours on these toy sets.
LR_PRESETS = {"gentle": 0.02, "balanced": 0.5, "unstable": 30.0}
# Noise that makes neighbouring classes touch a little: on perfectly separable data a huge
# step can still end at a zero loss by saturating, which hides the instability lesson.
DEFAULT_NOISE = {"xor": 0.3, "moons": 0.2, "circles": 0.1, "spirals": 0.05}
HIDDEN_ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "linear")
# The presets above are step sizes for plain SGD; the others need their own (e.g. momentum 0.05, adam 0.01).
OPTIMIZERS = ("sgd", "momentum", "adam")

NEGATIVE_COLOUR = "#e8833a"   # predicted class 0
POSITIVE_COLOUR = "#2c7bb6"   # predicted class 1


# --- argument parsing shared by the CLI and the functions --------------------------------

def parse_hidden(hidden):
    """Hidden widths from "0", "8", "8,8", an int or a sequence -> tuple of ints ("0" -> ())."""
    if isinstance(hidden, (int, np.integer)):
        widths = [int(hidden)]
    elif isinstance(hidden, str):
        try:
            widths = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            raise ValueError(f"hidden must be comma-separated integers such as 0, 8 or 8,8; got {hidden!r}") from None
    else:
        widths = [int(h) for h in hidden]
    if widths == [0]:
        return ()
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden widths must be positive (or a single 0 for no hidden layer), got {hidden!r}")
    return tuple(widths)


def parse_lr(lr):
    """(value, name): a preset name (see LR_PRESETS) or a positive number."""
    if isinstance(lr, str) and lr in LR_PRESETS:
        return LR_PRESETS[lr], lr
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be one of {tuple(LR_PRESETS)} or a positive number, got {lr!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return value, f"{value:g}"


def checkpoint_epochs(epochs, count):
    """``count`` checkpoint epochs from 0 (before training) to ``epochs``, spaced
    geometrically: a model changes most in its first epochs."""
    if count < 2:
        raise ValueError(f"checkpoints must be at least 2 (before and after training), got {count}")
    k = min(count - 1, epochs)   # checkpoints after epoch 0, at most one per epoch
    targets = np.geomspace(1, epochs, k) if k > 1 else [epochs]
    at = [0]
    for i, t in enumerate(targets):   # round, but keep them distinct and leave room for the rest
        at.append(int(min(max(round(t), at[-1] + 1), epochs - (k - 1 - i))))
    return at


# --- the recorded run --------------------------------------------------------------------

@dataclass
class Checkpoint:
    """The model at the end of ``epoch`` (0 = initial weights), on the whole training set."""

    epoch: int
    loss: float             # mean cross-entropy over the training set (eval mode)
    accuracy: float
    probs: np.ndarray       # (N,) predicted probability of class 1 per sample
    correct: np.ndarray     # (N,) bool: prediction equals the label
    grid: np.ndarray        # (G, G) probability of class 1 on the grid; row 0 is the lowest y


@dataclass
class VisualRun:
    """A recorded training run; see :func:`visualize`."""

    dataset: str
    hidden: tuple
    activation: str
    lr: float
    lr_name: str
    epochs: int
    batch_size: int
    backend: str
    seed: int
    X: np.ndarray           # (N, 2) float32
    y: np.ndarray           # (N,) int64 labels 0/1
    extent: tuple           # (xmin, xmax, ymin, ymax) of the grid
    epoch_loss: list = field(default_factory=list)      # mean training loss of each epoch
    epoch_accuracy: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)
    diverged_epoch: int = None   # the epoch whose loss became NaN/Inf, else None
    files: dict = field(default_factory=dict)
    optimizer: str = "sgd"

    @property
    def diverged(self):
        return self.diverged_epoch is not None

    @property
    def title(self):
        widths = ",".join(map(str, self.hidden))
        layers = f"hidden {widths} ({self.activation})" if self.hidden else "no hidden layer"
        lr = self.lr_name if self.lr_name == f"{self.lr:g}" else f"{self.lr:g} ({self.lr_name})"
        how = "" if self.optimizer == "sgd" else f", {self.optimizer}"
        return f"{self.dataset}, {layers}, lr {lr}{how}"

    def lesson(self):
        """One sentence on what this run shows."""
        final = self.checkpoints[-1]
        if self.diverged:
            return (f"the step size {self.lr:g} overshoots so far that the loss became infinite at epoch "
                    f"{self.diverged_epoch}: training diverged")
        ups = int(np.sum(np.diff(self.epoch_loss) > 0)) if len(self.epoch_loss) > 1 else 0
        if self.lr_name == "unstable" or (ups > len(self.epoch_loss) // 3 and final.loss > 1.0):
            return (f"the step is too large: the loss rose in {ups} of {len(self.epoch_loss) - 1} epochs "
                    f"and ends at {final.loss:.3g}; each update overshoots the valley")
        if not self.hidden:
            return ("with no hidden layer the boundary is one straight line, whatever the data; "
                    f"final accuracy {final.accuracy:.1%}")
        if self.lr_name == "gentle":
            return (f"small steps: the loss falls steadily but slowly, {self.checkpoints[0].loss:.3g} -> "
                    f"{final.loss:.3g} in {self.epochs} epochs")
        if final.accuracy < 0.8:
            return (f"the boundary could bend, but after {self.epochs} epochs it does not fit the data yet "
                    f"(accuracy {final.accuracy:.1%}): try more epochs, another learning rate or optimizer "
                    "(spirals: --activation relu --optimizer momentum --lr 0.05)")
        return (f"the hidden layer lets the boundary bend; loss {self.checkpoints[0].loss:.3g} -> "
                f"{final.loss:.3g}, accuracy {final.accuracy:.1%}")

    def to_dict(self, maps=None):
        """JSON-ready description (``maps``: optional list of data-URL images, one per checkpoint)."""
        def clean(values):   # JSON has no NaN/Inf
            return [None if not math.isfinite(v) else round(float(v), 6) for v in values]
        cps = []
        for i, cp in enumerate(self.checkpoints):
            cps.append({"epoch": cp.epoch, "loss": clean([cp.loss])[0], "accuracy": cp.accuracy,
                        "probs": clean(cp.probs), "correct": [bool(c) for c in cp.correct],
                        "map": maps[i] if maps else None})
        return {"title": self.title, "dataset": self.dataset, "hidden": list(self.hidden),
                "activation": self.activation, "lr": self.lr, "lr_name": self.lr_name,
                "optimizer": self.optimizer,
                "epochs": self.epochs, "batch_size": self.batch_size, "backend": self.backend,
                "seed": self.seed, "X": np.round(self.X.astype(float), 4).tolist(), "y": self.y.tolist(),
                "epoch_loss": clean(self.epoch_loss), "epoch_accuracy": clean(self.epoch_accuracy),
                "diverged_epoch": self.diverged_epoch, "lesson": self.lesson(), "checkpoints": cps}


# --- training with a recorder ---------------------------------------------------------------

def build_classifier(hidden, activation="tanh", n_in=2, n_out=2, backend=None, seed=0):
    """Sequential ``n_in -> hidden... -> n_out``: Dense layers with ``activation``, then logits."""
    import fastnn as fnn
    layers, width = [], n_in
    for h in hidden:
        layers.append(fnn.Dense(width, h, activation=activation, backend=backend))
        width = h
    layers.append(fnn.Dense(width, n_out, backend=backend))
    return fnn.Sequential(layers, backend=backend, seed=seed)


def _class1_probability(logits):
    """P(class 1) from 2-class logits (N, 2), overflow-safe: sigmoid(z1 - z0)."""
    d = np.asarray(logits, np.float64)
    d = d[:, 1] - d[:, 0]
    p = np.empty_like(d)
    pos = d >= 0
    p[pos] = 1.0 / (1.0 + np.exp(-d[pos]))
    e = np.exp(d[~pos])
    p[~pos] = e / (1.0 + e)
    return np.nan_to_num(p, nan=0.5)


def _cross_entropy(logits, y):
    """Mean softmax cross-entropy (float64, max-subtracted)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


class _Recorder(Callback):
    """A ``fit`` callback that snapshots the model at the chosen epochs."""

    def __init__(self, X, y, at, grid_points, grid_size):
        self.X, self.y, self.at = X, y, set(at)
        self.grid_points, self.grid_size = grid_points, grid_size
        self.epoch_loss, self.epoch_accuracy, self.checkpoints = [], [], []

    def on_train_begin(self, model, history):
        self.model = model
        self.snapshot(0)

    def on_epoch_end(self, epoch, logs):
        self.epoch_loss.append(float(logs["loss"]))
        self.epoch_accuracy.append(float(logs.get("accuracy", float("nan"))))
        if epoch + 1 in self.at:
            self.snapshot(epoch + 1)
        return False

    def snapshot(self, epoch):
        import fastnn as fnn
        with np.errstate(all="ignore"):
            logits = fnn.predict(self.model, self.X)
            probs = _class1_probability(logits)
            grid = None
            if self.grid_points is not None:
                grid = _class1_probability(fnn.predict(self.model, self.grid_points))
                grid = grid.reshape(self.grid_size, self.grid_size)
            loss = _cross_entropy(logits, self.y)
        correct = (probs >= 0.5) == (self.y == 1)
        self.checkpoints.append(Checkpoint(epoch, loss, float(correct.mean()), probs, correct, grid))


def make_grid(X, size, pad=0.4):
    """Grid points (size*size, 2) float32 covering X with a margin, and the extent."""
    xmin, ymin = X.min(axis=0) - pad
    xmax, ymax = X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, size), np.linspace(ymin, ymax, size))
    points = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    return points, (float(xmin), float(xmax), float(ymin), float(ymax))


def train_recorded(X, y, hidden=(8,), activation="tanh", lr=0.5, epochs=200, batch_size=32, seed=0,
                   backend=None, checkpoints=(0,), grid=60, optimizer=None, callbacks=()):
    """Train the toy classifier on (X, y) with SGD at ``lr``; snapshot at ``checkpoints``.

    Returns ``(recorder, diverged_epoch, extent)``: the recorder's ``epoch_loss``,
    ``epoch_accuracy`` and ``checkpoints`` (a list of :class:`Checkpoint`). A run whose
    loss becomes NaN/Inf is stopped there and reported, not raised. ``grid=None``
    skips the decision maps. ``optimizer(params)`` replaces SGD when given; ``callbacks``
    go to ``fit`` after the recorder.
    """
    import fastnn as fnn
    model = build_classifier(hidden, activation, X.shape[1], 2, backend, seed)
    points, extent = make_grid(X, grid) if grid else (None, None)
    recorder = _Recorder(X, y, checkpoints, points, grid)
    opt = optimizer(model.parameters()) if optimizer else fnn.SGD(model.parameters(), lr=lr)
    diverged_epoch = None
    try:
        with np.errstate(all="ignore"):   # an unstable run overflows on purpose; fit reports it
            fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=batch_size,
                    seed=seed, callbacks=[recorder, *callbacks], verbose=0)
    except FloatingPointError:
        diverged_epoch = len(recorder.epoch_loss) + 1
    return recorder, diverged_epoch, extent


def make_optimizer(name, lr):
    """``params -> optimizer`` for "sgd", "momentum" (SGD, momentum 0.9) or "adam"."""
    import fastnn as fnn
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    return {"sgd": lambda p: fnn.SGD(p, lr=lr), "momentum": lambda p: fnn.SGD(p, lr=lr, momentum=0.9),
            "adam": lambda p: fnn.Adam(p, lr=lr)}[name]


def visualize(dataset="moons", hidden="8", lr="balanced", epochs=200, activation="tanh", n=200, noise=None,
              batch_size=32, checkpoints=12, grid=80, seed=0, backend=None, out=None, optimizer="sgd",
              progress=True):
    """Train a small classifier on a 2-D toy set and record how it learns.

    ``dataset``: a name in ``fnn.data.TOY_DATASETS`` (xor, moons, circles, spirals),
    ``n`` points with ``noise`` (default: ``DEFAULT_NOISE``). ``hidden``: "0" (no hidden
    layer: logistic regression), "8", "8,8", ... with ``activation``. ``lr``: "gentle",
    "balanced", "unstable" (see ``LR_PRESETS``) or a number. ``checkpoints`` snapshots
    (geometrically spaced epochs, 0 included) with the decision map on a
    ``grid`` x ``grid`` raster. ``optimizer``: "sgd" (plain, the default: the presets
    are tuned for it), "momentum" or "adam". With ``out`` (a folder) the loss PNG, the decision-map
    PNG and the HTML page are written there (paths in ``run.files``). ``progress``: a bar over
    the epochs on stderr, when stderr is a terminal.

    Returns a :class:`VisualRun`.
    """
    import fastnn as fnn
    if dataset not in fnn.data.TOY_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(fnn.data.TOY_DATASETS)}")
    if activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {HIDDEN_ACTIVATIONS}")
    for name, value, low in (("epochs", epochs, 1), ("n", n, 4), ("batch_size", batch_size, 1),
                             ("grid", grid, 2), ("checkpoints", checkpoints, 2)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    hidden = parse_hidden(hidden)
    lr_value, lr_name = parse_lr(lr)
    make = make_optimizer(optimizer, lr_value)
    noise = DEFAULT_NOISE[dataset] if noise is None else float(noise)
    X, y = fnn.data.TOY_DATASETS[dataset](n=n, noise=noise, seed=seed)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"visualize draws two-class problems; {dataset} gave classes {np.unique(y).tolist()}")
    backend = fnn.kernels.resolve(backend or fnn.get_backend_name())
    at = checkpoint_epochs(epochs, checkpoints)
    with EpochBar(epochs, f"visualize {dataset}", enabled=progress) as bar:
        recorder, diverged_epoch, extent = train_recorded(X, y, hidden, activation, lr_value, epochs, batch_size,
                                                          seed, backend, at, grid, optimizer=make,
                                                          callbacks=[bar.callback()])
    run = VisualRun(dataset, hidden, activation, lr_value, lr_name, epochs, batch_size, backend, seed, X, y,
                    extent, recorder.epoch_loss, recorder.epoch_accuracy, recorder.checkpoints, diverged_epoch,
                    optimizer=optimizer)
    if out is not None:
        write_all(run, out)
    return run


# --- pictures ----------------------------------------------------------------------------------

def _plt():
    from .. import plots   # selects the headless Agg backend
    return plots.plt


def _colormap():
    from matplotlib.colors import LinearSegmentedColormap
    return LinearSegmentedColormap.from_list("fastnn_decision", [NEGATIVE_COLOUR, "#ffffff", POSITIVE_COLOUR])


class _MapPainter:
    """Draws decision maps on one axes; ``show(cp)`` swaps only what changes between
    checkpoints (shading, boundary, mistake marks), so many frames render quickly."""

    def __init__(self, ax, run, legend=False):
        self.ax, self.run = ax, run
        xmin, xmax, ymin, ymax = run.extent
        self.image = ax.imshow(np.full((2, 2), 0.5), origin="lower", extent=run.extent, cmap=_colormap(),
                               vmin=0, vmax=1, alpha=0.75, interpolation="bilinear", aspect="auto")
        for cls, colour, name in ((0, NEGATIVE_COLOUR, "class 0 (negative)"),
                                  (1, POSITIVE_COLOUR, "class 1 (positive)")):
            mask = run.y == cls
            ax.scatter(run.X[mask, 0], run.X[mask, 1], s=14, c=colour, edgecolors="black", linewidths=0.4,
                       label=name)
        self.wrong = ax.scatter(np.full(1, np.nan), np.full(1, np.nan), s=22, marker="x", c="black",
                                linewidths=0.9, label="misclassified")
        self.boundary = None
        self.gx = self.gy = None
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        if legend:
            ax.legend(loc="lower left", fontsize=7, framealpha=0.85)

    def show(self, cp, title=True):
        run, ax = self.run, self.ax
        self.image.set_data(cp.grid)
        if self.boundary is not None:
            self.boundary.remove()
            self.boundary = None
        if np.nanmin(cp.grid) < 0.5 < np.nanmax(cp.grid):
            xmin, xmax, ymin, ymax = run.extent
            gx = np.linspace(xmin, xmax, cp.grid.shape[1])
            gy = np.linspace(ymin, ymax, cp.grid.shape[0])
            self.boundary = ax.contour(gx, gy, cp.grid, levels=[0.5], colors="#333333", linewidths=1.2)
        wrong = ~cp.correct
        self.wrong.set_offsets(run.X[wrong] if wrong.any() else np.full((1, 2), np.nan))
        if title:
            ax.set_title(f"epoch {cp.epoch}: loss {cp.loss:.3g}, accuracy {cp.accuracy:.0%}", fontsize=9)


def draw_decision_map(ax, run, cp, title=True, legend=False):
    """Shade the plane by P(class 1) (orange: predict negative, blue: predict positive),
    draw the 0.5 boundary and the training points (x marks the misclassified ones)."""
    _MapPainter(ax, run, legend).show(cp, title)


def plot_decision_maps(run, path, panels=8, dpi=80):
    """A grid of decision-map snapshots (up to ``panels`` checkpoints, first and last included)."""
    plt = _plt()
    from matplotlib.patches import Patch
    picks = np.unique(np.round(np.linspace(0, len(run.checkpoints) - 1, min(panels, len(run.checkpoints)))).astype(int))
    cols = min(4, len(picks))
    rows = math.ceil(len(picks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.0 * rows + 0.9), squeeze=False)
    for ax, i in zip(axes.flat, picks):
        draw_decision_map(ax, run, run.checkpoints[i])
    for ax in axes.flat[len(picks):]:
        ax.axis("off")
    handles = [Patch(color=NEGATIVE_COLOUR, label="predict negative (class 0)"),
               Patch(color=POSITIVE_COLOUR, label="predict positive (class 1)"),
               *axes.flat[0].get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1.0 - 0.05 / rows))
    fig.suptitle(f"Decision map while training: {run.title}", y=1.0 - 0.005)
    fig.text(0.5, 0.005, f"Notice: {run.lesson()}", ha="center", va="bottom", fontsize=9, style="italic", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1.0 - 0.11 / rows))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_loss(run, path):
    """Training loss (log scale) and accuracy per epoch, checkpoints marked."""
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(run.epoch_loss) + 1)
    ax_loss.plot(epochs, run.epoch_loss, color="#444444", lw=1.2, label="training loss (mean over the epoch's batches)")
    cps = [cp for cp in run.checkpoints if math.isfinite(cp.loss)]
    ax_loss.plot([cp.epoch for cp in cps], [cp.loss for cp in cps], "o", color=POSITIVE_COLOUR, ms=4,
                 label="checkpoint (loss on the whole set)")
    ax_loss.set_yscale("log")
    ax_acc.plot(epochs, run.epoch_accuracy, color="#444444", lw=1.2, label="training accuracy")
    ax_acc.plot([cp.epoch for cp in run.checkpoints], [cp.accuracy for cp in run.checkpoints], "o",
                color=POSITIVE_COLOUR, ms=4, label="checkpoint")
    ax_acc.set_ylim(0, 1.02)
    if run.diverged:
        for ax in (ax_loss, ax_acc):
            ax.axvline(run.diverged_epoch, color="red", ls="--", label=f"diverged (epoch {run.diverged_epoch})")
    for ax, name in ((ax_loss, "cross-entropy loss (log scale)"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_xlim(0, run.epochs + 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training: {run.title}")
    fig.text(0.5, 0.01, f"Notice: {run.lesson()}", ha="center", fontsize=9, style="italic")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def map_images(run, size_inches=4.0, dpi=90):
    """One decision map per checkpoint as a ``data:image/png;base64,...`` URL (for the HTML page)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(size_inches, size_inches))
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.12, top=0.97)
    painter = _MapPainter(ax, run)   # the page explains the colours beside the image
    urls = []
    for cp in run.checkpoints:
        painter.show(cp, title=False)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    plt.close(fig)
    return urls


def write_html(run, path):
    """The self-contained lesson page: no network access, images inline, plain JavaScript."""
    template_path = os.path.join(os.path.dirname(__file__), "page.html")
    with open(template_path, encoding="utf-8") as f:
        template = f.read()
    payload = json.dumps(run.to_dict(map_images(run)), separators=(",", ":"))
    payload = payload.replace("</", "<\\/")   # keep "</script>" inside a string from ending the tag
    from html import escape
    page = template.replace("__TITLE__", escape(run.title)).replace("__RUN_DATA__", payload)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def file_stem(run):
    hidden = "h" + ("0" if not run.hidden else "-".join(map(str, run.hidden)))
    how = "" if run.optimizer == "sgd" else f"_{run.optimizer}"
    return f"{run.dataset}_{hidden}_lr-{run.lr_name}{how}"


def write_all(run, out):
    """Write the loss PNG, the decision-map PNG and the HTML page into folder ``out``."""
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, file_stem(run))
    run.files = {"loss": plot_loss(run, f"{stem}_loss.png"),
                 "maps": plot_decision_maps(run, f"{stem}_maps.png"),
                 "html": write_html(run, f"{stem}.html")}
    return run.files
