"""The classic training studies, each a function returning its numbers (and a figure).

* :func:`learning_rate`: one model, three step sizes (too small, good, too large).
* :func:`overfitting`: a big network on 100 digits; dropout, L2 and early stopping.
* :func:`vanishing_gradients`: per-layer gradient norms of 12-layer networks.
* :func:`optimizers`: SGD, momentum and Adam on the same problem.

Every study returns a :class:`Study`: ``study.data`` holds the curves and measurements,
``study.caption`` says in one line what to notice (with the measured numbers), and
``study.figure`` is the PNG written when ``out`` (a folder) is given. The numbers are
deterministic for a given ``seed`` and backend. ``progress=True`` (the default) draws a bar
over every run's epochs on stderr when stderr is a terminal.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .progress import EpochBar
from .visualizer import DEFAULT_NOISE, LR_PRESETS, make_optimizer, parse_hidden, train_recorded

__all__ = ["Study", "STUDIES", "run_study", "learning_rate", "overfitting", "vanishing_gradients",
           "optimizers", "VANISHING_VARIANTS", "deep_network", "gradient_norms", "dense_layers"]


@dataclass
class Study:
    """A study's result: ``data`` (curves, measurements), ``caption`` (what to notice), ``figure``."""

    name: str
    caption: str
    data: dict = field(default_factory=dict)
    figure: str = None


def _backend(backend):
    import fastnn as fnn
    return fnn.kernels.resolve(backend or fnn.get_backend_name())


def _plt():
    from .. import plots   # selects the headless Agg backend
    return plots.plt


def _save(fig, out, name, caption):
    """Write the figure with its caption underneath; returns the path (None without ``out``)."""
    plt = _plt()
    path = None
    if out is not None:
        os.makedirs(out, exist_ok=True)
        fig.text(0.5, 0.01, "Notice: " + caption, ha="center", va="bottom", fontsize=9, style="italic",
                 wrap=True)
        path = os.path.join(out, f"study_{name.replace('-', '_')}.png")
        fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _epochs(epochs, low=1):
    if not isinstance(epochs, (int, np.integer)) or epochs < low:
        raise ValueError(f"epochs must be an integer >= {low}, got {epochs!r}")
    return int(epochs)


def _epochs_text(n):
    return f"{n} epoch{'s' if n != 1 else ''}"


def _bar(name, runs, epochs, progress):
    """A bar over ``runs`` training runs of ``epochs`` each (``bar.advance_to`` after a run
    that stopped early)."""
    return EpochBar(runs * epochs, f"study {name}", enabled=progress)


def _finite(values):
    return [v if math.isfinite(v) else float("nan") for v in values]


# --- learning rate ---------------------------------------------------------------------------------

def learning_rate(epochs=150, dataset="moons", hidden="8", seed=0, backend=None, out=None, progress=True):
    """The same classifier (2 -> hidden -> 2, tanh) trained with plain SGD at the three
    ``LR_PRESETS``: gentle (too small), balanced (good) and unstable (too large).

    ``data[preset]``: ``lr``, ``loss`` (per epoch), ``accuracy``, ``final_loss``,
    ``rises`` (epochs whose loss went up), ``diverged_epoch`` (None unless the loss
    became infinite).
    """
    import fastnn as fnn
    epochs, backend, hidden = _epochs(epochs, 2), _backend(backend), parse_hidden(hidden)
    X, y = fnn.data.TOY_DATASETS[dataset](n=200, noise=DEFAULT_NOISE[dataset], seed=seed)
    data = {}
    with _bar("learning-rate", len(LR_PRESETS), epochs, progress) as bar:
        for i, (name, lr) in enumerate(LR_PRESETS.items()):
            rec, diverged, _ = train_recorded(X, y, hidden, "tanh", lr, epochs, 32, seed, backend, [0], grid=None,
                                              callbacks=[bar.callback()])
            bar.advance_to((i + 1) * epochs)
            loss = rec.epoch_loss
            data[name] = {"lr": lr, "loss": loss, "accuracy": rec.epoch_accuracy, "diverged_epoch": diverged,
                          "final_loss": loss[-1] if not diverged else float("inf"),
                          "rises": int(np.sum(np.diff(loss) > 0))}
    g, b, u = data["gentle"], data["balanced"], data["unstable"]
    caption = (f"too small a step (lr {g['lr']:g}) creeps down to {g['final_loss']:.3f}; the good one "
               f"(lr {b['lr']:g}) reaches {b['final_loss']:.3f}; too large a step (lr {u['lr']:g}) "
               + (f"diverges at epoch {u['diverged_epoch']}" if u["diverged_epoch"] else
                  f"overshoots: its loss rose in {u['rises']} of {epochs - 1} epochs and ends at "
                  f"{u['final_loss']:.3g}"))

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    colours = {"gentle": "#5e9c4b", "balanced": "#2c7bb6", "unstable": "#d7301f"}
    titles = {"gentle": "too small", "balanced": "good", "unstable": "too large"}
    for ax, (name, run) in zip(axes, data.items()):
        for other, r in data.items():   # the other two, faint, for comparison
            if other != name:
                ax.plot(range(1, len(r["loss"]) + 1), _finite(r["loss"]), color=colours[other], alpha=0.18, lw=1)
        ax.plot(range(1, len(run["loss"]) + 1), _finite(run["loss"]), color=colours[name], lw=1.6,
                label=f"lr {run['lr']:g} ({name})")
        if run["diverged_epoch"]:
            ax.axvline(run["diverged_epoch"], color="red", ls="--", label=f"diverged (epoch {run['diverged_epoch']})")
        ax.set_yscale("log")
        ax.set_title(f"{titles[name]}: lr {run['lr']:g}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (cross-entropy, log scale)")
    fig.suptitle(f"Learning rate: {dataset}, hidden {','.join(map(str, hidden)) or 'none'} (tanh), plain SGD, batch 32")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return Study("learning-rate", caption, data, _save(fig, out, "learning-rate", caption))


# --- overfitting -------------------------------------------------------------------------------------

def _digits_split(n_train, n_val, seed):
    """A stratified small training set and a validation set from the bundled digits, scaled to [0, 1]."""
    import fastnn as fnn
    X, y = fnn.data.load_digits()
    if not (10 <= n_train and 10 <= n_val and n_train + n_val <= len(X)):
        raise ValueError(f"need 10 <= n_train, 10 <= n_val and n_train + n_val <= {len(X)}; "
                         f"got n_train={n_train}, n_val={n_val}")
    X_train, X_rest, y_train, y_rest = fnn.data.train_test_split(X, y, test_size=len(X) - n_train, seed=seed,
                                                                 stratify=True)
    # pixels are 0..16: a fixed scale, not statistics of 100 images (some pixels never vary there)
    return X_train / 16.0, X_rest[:n_val] / 16.0, y_train, y_rest[:n_val]


def overfitting(epochs=200, n_train=100, n_val=500, width=256, lr=1e-3, seed=0, backend=None, out=None,
                progress=True):
    """A 64-width-width-10 ReLU network (85k weights for ``width`` 256) trained with Adam
    (``lr``, batch 20) on ``n_train`` digits, validated on ``n_val`` others, four ways:
    no regularisation, dropout 0.5, L2 weight penalty 3e-3, early stopping (patience 15,
    best weights restored).

    ``data[variant]``: per-epoch ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``;
    ``best_epoch`` (1-based, lowest val_loss), ``best_val_loss``, ``final_val_loss``;
    for early stopping also ``stopped_epoch`` (1-based) and ``restored`` (the restored
    model's validation loss and accuracy).
    """
    import fastnn as fnn
    epochs, backend = _epochs(epochs, 2), _backend(backend)
    X_train, X_val, y_train, y_val = _digits_split(n_train, n_val, seed)

    def model(dropout):
        layers, w = [], 64
        for _ in range(2):
            layers += [fnn.Dense(w, width), fnn.ReLU()] + ([fnn.Dropout(dropout)] if dropout else [])
            w = width
        layers.append(fnn.Dense(w, 10))
        return fnn.Sequential(layers, backend=backend, seed=seed)

    variants = {"no regularisation": {}, "dropout 0.5": {"dropout": 0.5},
                "L2 penalty 3e-3": {"regularizers": [fnn.L2(3e-3)]},
                "early stopping": {"callbacks": [fnn.EarlyStopping(patience=15, restore_best=True)]}}
    data = {}
    with _bar("overfitting", len(variants), epochs, progress) as bar:
        for i, (name, options) in enumerate(variants.items()):
            m = model(options.get("dropout", 0.0))
            h = fnn.fit(m, fnn.SoftmaxCrossEntropy(), fnn.Adam(m.parameters(), lr=lr), X_train, y_train,
                        epochs=epochs, batch_size=20, validation_data=(X_val, y_val), seed=seed, verbose=0,
                        regularizers=options.get("regularizers", ()),
                        callbacks=[*options.get("callbacks", ()), bar.callback()])
            bar.advance_to((i + 1) * epochs)
            val = np.array(h.val_loss)
            entry = {"loss": h.loss, "val_loss": h.val_loss, "accuracy": h.accuracy, "val_accuracy": h.val_accuracy,
                     "best_epoch": int(val.argmin()) + 1, "best_val_loss": float(val.min()),
                     "final_val_loss": float(val[-1]), "final_val_accuracy": float(h.val_accuracy[-1]),
                     "final_train_accuracy": float(h.accuracy[-1])}
            if "callbacks" in options:
                restored = fnn.evaluate(m, X_val, y_val)
                entry.update({"stopped_epoch": (h.stopped_epoch + 1) if h.stopped_epoch is not None else None,
                              "restored": restored})
            data[name] = entry
    none, drop, l2, early = data.values()
    stop = early["stopped_epoch"]
    climbs = "climbs to" if none["final_val_loss"] > 1.02 * none["best_val_loss"] else "is still near it at"
    caption = (f"without regularisation the validation loss is lowest at epoch {none['best_epoch']} "
               f"({none['best_val_loss']:.3f}) and {climbs} {none['final_val_loss']:.3f} while the training "
               f"loss heads to 0; dropout ends at {drop['final_val_loss']:.3f}, L2 at {l2['final_val_loss']:.3f}; "
               + (f"early stopping stops at epoch {stop} and restores epoch {early['best_epoch']}'s weights "
                  f"(val loss {early['restored']['loss']:.3f})" if stop else
                  "early stopping never ran out of patience"))

    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), sharey=True)
    top = 1.6 * max(max(d["val_loss"][len(d["val_loss"]) // 10:]) for d in data.values())
    for ax, (name, d) in zip(axes, data.items()):
        x = range(1, len(d["loss"]) + 1)
        ax.plot(x, d["loss"], color="#2c7bb6", label="training loss")
        ax.plot(x, d["val_loss"], color="#d7301f", label="validation loss")
        ax.axvline(d["best_epoch"], color="grey", ls=":", label=f"lowest validation loss (epoch {d['best_epoch']})")
        if d.get("stopped_epoch"):
            ax.axvline(d["stopped_epoch"], color="black", ls="--", label=f"stopped (epoch {d['stopped_epoch']})")
            ax.plot([d["best_epoch"]], [d["restored"]["loss"]], "*", color="black", ms=12,
                    label=f"restored: val loss {d['restored']['loss']:.3f}, acc {d['restored']['accuracy']:.1%}")
        ax.set_xlim(0, epochs + 1)
        ax.set_ylim(0, top)   # linear: the validation loss's climb is the point; log would flatten it
        ax.set_title(f"{name}\nval accuracy {d['final_val_accuracy']:.1%} (train {d['final_train_accuracy']:.0%})",
                     fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("cross-entropy loss")
    fig.suptitle(f"Overfitting: 64-{width}-{width}-10 ReLU network, {n_train} training digits, "
                 f"{n_val} validation digits, Adam lr {lr:g}")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return Study("overfitting", caption, data, _save(fig, out, "overfitting", caption))


# --- vanishing gradients ----------------------------------------------------------------------------

VANISHING_VARIANTS = ("sigmoid", "sigmoid + batch norm", "ReLU", "ReLU + residual", "ReLU + batch norm")


def dense_layers(layer):
    """Every Dense layer inside ``layer`` (Sequential, Residual, ...), first to last."""
    import fastnn as fnn
    if isinstance(layer, fnn.Dense):
        yield layer
    for child in getattr(layer, "layers", ()):
        yield from dense_layers(child)


def deep_network(variant, depth=12, width=32, n_in=64, n_out=10, backend=None, seed=0):
    """A ``depth``-Dense-layer network n_in -> width x (depth - 1) -> n_out of the given variant.

    "ReLU + residual": the middle layers are ``Residual([Dense, ReLU])`` blocks whose
    weights are scaled by 1/sqrt(blocks), so that the sum of many blocks does not grow
    the activations (the usual practice for deep residual networks).
    """
    import fastnn as fnn
    if variant not in VANISHING_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VANISHING_VARIANTS}")
    if depth < 3:
        raise ValueError(f"depth must be >= 3, got {depth!r}")
    act = fnn.Sigmoid if variant.startswith("sigmoid") else fnn.ReLU
    norm = "batch norm" in variant

    def block(n_from):
        return [fnn.Dense(n_from, width)] + ([fnn.BatchNorm1d(width)] if norm else []) + [act()]

    layers = block(n_in)
    for _ in range(depth - 2):
        layers += [fnn.Residual(block(width))] if variant == "ReLU + residual" else block(width)
    layers.append(fnn.Dense(width, n_out))
    model = fnn.Sequential(layers, backend=backend, seed=seed)
    if variant == "ReLU + residual":
        for layer in model.layers:
            if isinstance(layer, fnn.Residual):
                for dense in dense_layers(layer):
                    dense.weight.data = dense.weight.data / np.sqrt(depth - 2)
    return model


def gradient_norms(model, X, y):
    """||dL/dW|| of every Dense weight after one forward/backward on (X, y) (cross-entropy)."""
    import fastnn as fnn
    loss = fnn.SoftmaxCrossEntropy(backend=model.backend_name)
    model.zero_grad()          # backward adds to the gradients (those of fit's last step)
    loss.forward(model.forward(X), y)
    model.backward(loss.backward())
    return [float(np.linalg.norm(d.weight.grad)) for d in dense_layers(model)]


def vanishing_gradients(epochs=8, depth=12, width=32, batch=256, lr=0.02, seed=0, backend=None, out=None,
                        progress=True):
    """Deep networks (``depth`` Dense layers of ``width``) on the digits: per-layer
    gradient norms at initialisation and after ``epochs`` epochs of SGD (momentum 0.9),
    and the loss curves, for each of ``VANISHING_VARIANTS``.

    ``data[variant]``: ``grad_init`` and ``grad_trained`` (one norm per Dense layer,
    first to last, measured on the first ``batch`` digits), ``first_over_last`` (ratio
    at initialisation) and ``loss`` per epoch.
    """
    import fastnn as fnn
    epochs, backend = _epochs(epochs), _backend(backend)
    if depth < 10:
        raise ValueError(f"the lesson needs a deep network: depth >= 10, got {depth!r}")
    X, y = fnn.data.load_digits()
    X = X / 16.0
    data = {}
    with _bar("vanishing-gradients", len(VANISHING_VARIANTS), epochs, progress) as bar:
        for i, variant in enumerate(VANISHING_VARIANTS):
            model = deep_network(variant, depth, width, backend=backend, seed=seed)
            grad_init = gradient_norms(model, X[:batch], y[:batch])
            opt = fnn.SGD(model.parameters(), lr=lr, momentum=0.9)
            try:
                h = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X, y, epochs=epochs, batch_size=64, seed=seed,
                            verbose=0, callbacks=[bar.callback()])
                loss = h.loss
            except FloatingPointError:
                loss = [float("nan")]
            bar.advance_to((i + 1) * epochs)
            data[variant] = {"grad_init": grad_init, "grad_trained": gradient_norms(model, X[:batch], y[:batch]),
                             "first_over_last": grad_init[0] / grad_init[-1], "loss": loss}
    sig, res = data["sigmoid"], data["ReLU + residual"]
    others = [v for v in VANISHING_VARIANTS if v != "sigmoid"]
    spread = max(max(data[v]["first_over_last"], 1 / data[v]["first_over_last"]) for v in others)
    caption = (f"in the {depth}-layer sigmoid network the first layer's gradient is {sig['first_over_last']:.0e} "
               f"of the last layer's, so it barely learns (loss {sig['loss'][-1]:.2f} after "
               f"{_epochs_text(epochs)}); with "
               f"ReLU, residual connections or batch norm every layer's gradient stays within {spread:.0f}x of the "
               f"last's (residual: loss {res['loss'][-1]:.2f})")

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1.25, 1.25, 1]})
    colours = dict(zip(VANISHING_VARIANTS, ["#d7301f", "#fc8d59", "#2c7bb6", "#1a9850", "#984ea3"]))
    layers = np.arange(1, depth + 1)
    bar = 0.8 / len(VANISHING_VARIANTS)
    for ax, key, title in ((axes[0], "grad_init", "at initialisation"),
                           (axes[1], "grad_trained", f"after {epochs} epochs")):
        for k, variant in enumerate(VANISHING_VARIANTS):
            ax.bar(layers - 0.4 + bar * (k + 0.5), data[variant][key], width=bar, color=colours[variant],
                   label=variant)
        ax.set_yscale("log")
        ax.set_xticks(layers)
        ax.set_xlabel("Dense layer (1 = next to the input)")
        ax.set_ylabel("gradient norm ||dL/dW|| (log scale)")
        ax.set_title(f"Per-layer gradient norms {title}")
        ax.grid(alpha=0.3, axis="y")
    for variant in VANISHING_VARIANTS:
        loss = data[variant]["loss"]
        axes[2].plot(range(1, len(loss) + 1), _finite(loss), marker="o", ms=3, color=colours[variant], label=variant)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("training loss (cross-entropy)")
    axes[2].set_title("Loss curves")
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(VANISHING_VARIANTS),
               fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.94))
    fig.suptitle(f"Vanishing gradients: {depth} Dense layers of width {width} on the digits, "
                 f"SGD lr {lr:g} momentum 0.9, batch 64")
    fig.tight_layout(rect=(0, 0.06, 1, 0.9))
    return Study("vanishing-gradients", caption, data, _save(fig, out, "vanishing-gradients", caption))


# --- optimizers ----------------------------------------------------------------------------------------

def optimizers(epochs=60, hidden="32,32", seed=0, backend=None, out=None, progress=True):
    """Plain SGD (lr 0.05), SGD with momentum 0.9 (lr 0.05) and Adam (lr 0.005) train the
    same ReLU network from the same initial weights on the two-arm spirals (400 points).

    ``data[optimizer]``: ``loss`` and ``accuracy`` per epoch, ``final_loss``.
    """
    import fastnn as fnn
    epochs, backend, hidden = _epochs(epochs, 2), _backend(backend), parse_hidden(hidden)
    X, y = fnn.data.make_spirals(n=400, seed=seed)
    choices = {"SGD (lr 0.05)": make_optimizer("sgd", 0.05),
               "SGD + momentum 0.9 (lr 0.05)": make_optimizer("momentum", 0.05),
               "Adam (lr 0.005)": make_optimizer("adam", 0.005)}
    data = {}
    with _bar("optimizers", len(choices), epochs, progress) as bar:
        for i, (name, make) in enumerate(choices.items()):
            rec, diverged, _ = train_recorded(X, y, hidden, "relu", None, epochs, 32, seed, backend, [0],
                                              grid=None, optimizer=make, callbacks=[bar.callback()])
            bar.advance_to((i + 1) * epochs)
            data[name] = {"loss": rec.epoch_loss, "accuracy": rec.epoch_accuracy, "diverged_epoch": diverged,
                          "final_loss": rec.epoch_loss[-1] if not diverged else float("inf")}
    (sgd_name, sgd), (mom_name, mom), (adam_name, adam) = data.items()
    left = max(mom["final_loss"], adam["final_loss"]) < 0.8 * sgd["final_loss"]
    caption = (f"from the same start, plain SGD is still on the plateau after {_epochs_text(epochs)} (loss "
               f"{sgd['final_loss']:.3f}, accuracy {sgd['accuracy'][-1]:.0%}) while momentum "
               f"({mom['final_loss']:.3f}) and Adam ({adam['final_loss']:.3f}) "
               + ("find their way off it" if left else "have not left it yet either: train for more epochs"))

    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.4))
    for (name, d), colour in zip(data.items(), ["#d7301f", "#2c7bb6", "#1a9850"]):
        x = range(1, len(d["loss"]) + 1)
        ax_loss.plot(x, _finite(d["loss"]), color=colour, label=name)
        ax_acc.plot(x, d["accuracy"], color=colour, label=name)
    ax_loss.set_yscale("log")
    for ax, label in ((ax_loss, "training loss (cross-entropy, log scale)"), (ax_acc, "training accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Optimizers: spirals (400 points), ReLU network 2-{'-'.join(map(str, hidden))}-2, batch 32, "
                 "same initial weights")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return Study("optimizers", caption, data, _save(fig, out, "optimizers", caption))


STUDIES = {"learning-rate": learning_rate, "overfitting": overfitting,
           "vanishing-gradients": vanishing_gradients, "optimizers": optimizers}


def run_study(name, **options):
    """Run the study called ``name`` (a key of ``STUDIES``) with its keyword options."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; expected one of {tuple(STUDIES)}")
    return STUDIES[name](**options)
