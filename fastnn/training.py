"""The training loop: epochs of shuffled mini-batches, each one
forward -> loss -> backward -> update, with validation after every epoch.
"""

import math
import numbers
import sys

import numpy as np

from .distributed import abort_on_error
from .losses import BinaryCrossEntropy, MSE, SoftmaxCrossEntropy
from .step import TrainStep

__all__ = ["History", "Callback", "EarlyStopping", "fit", "predict", "evaluate"]


class History:
    """Per-epoch metrics of a ``fit``: ``history.history["val_loss"]`` or ``history.val_loss``.

    Keys: ``loss`` (mean training loss of the epoch), ``accuracy`` (classification
    losses only), ``val_loss``, ``val_accuracy`` (with validation data), ``lr``.
    ``stopped_epoch`` / ``best_epoch`` are set by EarlyStopping (0-based; None otherwise).
    """

    def __init__(self):
        self.history = {}
        self.epochs = []
        self.stopped_epoch = None
        self.best_epoch = None

    def append(self, epoch, logs):
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getattr__(self, key):
        if key != "history" and key in self.history:
            return self.history[key]
        raise AttributeError(key)

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History({len(self)} epochs, last={last})"

    def plot(self, path=None, title="Training history"):
        """Loss (and accuracy) curves per epoch; saved to ``path`` if given. Returns the figure."""
        from .plots import plot_history
        return plot_history(self, path, title)


class Callback:
    """Hooks into ``fit``. ``on_epoch_end`` returns True to stop training."""

    def on_train_begin(self, model, history):
        pass

    def on_epoch_end(self, epoch, logs):
        return False

    def on_train_end(self, model, history):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``monitor`` defaults to "val_loss" ("loss" if there is no validation data); names
    containing "accuracy" are maximised, others minimised. With ``restore_best=True``
    the weights of the best epoch are put back at the end of training.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, restore_best=True):
        if patience < 0 or min_delta < 0:
            raise ValueError("EarlyStopping: patience and min_delta must be >= 0")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, int(patience), float(min_delta), restore_best

    def on_train_begin(self, model, history):
        self.model, self.history = model, history
        self.best, self.best_epoch, self.wait, self.best_weights = None, None, 0, None

    def on_epoch_end(self, epoch, logs):
        key = self.monitor if self.monitor in logs else ("val_loss" if "val_loss" in logs else "loss")
        value = logs[key]
        sign = 1.0 if "accuracy" in key else -1.0   # compare as "larger is better"
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = [np.array(p.data, copy=True) for p in self.model.parameters()]
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_train_end(self, model, history):
        history.best_epoch = self.best_epoch
        if self.restore_best and self.best_weights is not None:
            for p, w in zip(model.parameters(), self.best_weights):
                p.data = w


def _positive_int(value, what, function):
    """``value`` as an int if it is a positive integer (NumPy integers too, not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{function}: {what} must be a positive integer, got {value!r}")
    return int(value)


def _check_data(X, y, name, model):
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name}: X must be numeric, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{name}: X must be at least 2-D (samples, features), got shape {X.shape}")
    if len(X) == 0:
        raise ValueError(f"{name}: X has no samples (shape {X.shape})")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        rows = np.unique(np.nonzero(~np.isfinite(X.reshape(len(X), -1)))[0])
        raise ValueError(f"{name}: X contains NaN or Inf (first bad rows: {rows[:5].tolist()}); "
                         "clean or impute the data before training")
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"{name}: X has {len(X)} samples but y has {len(y)}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: y contains NaN or Inf")
    return np.ascontiguousarray(X, dtype=model.dtype), y


def _default_loss(model, y):
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind in "iu":
        return SoftmaxCrossEntropy()
    return MSE()


def _targets_for(loss, y, classes, dtype):
    """Targets in the form the loss wants, validated and converted once for the whole data set."""
    if isinstance(loss, SoftmaxCrossEntropy):
        return SoftmaxCrossEntropy.labels(y, len(y), classes)
    y = np.asarray(y)
    if y.dtype.kind not in "fiub":
        raise TypeError(f"fit: y must be numeric for {type(loss).__name__}, got dtype {y.dtype}")
    return np.ascontiguousarray(y, dtype=dtype)


def fit(model, loss, optimizer, X, y, epochs=10, batch_size=32, validation_data=None,
        validation_split=0.0, shuffle=True, seed=None, callbacks=(), verbose=1,
        regularizers=(), clip_norm=None, fused=True, distributed=False):
    """Train ``model`` on (X, y) with mini-batch gradient descent; returns a :class:`History`.

    Each epoch shuffles the training set (seeded by ``seed``, else the model's seed)
    and runs one :class:`fastnn.step.TrainStep` per mini-batch of ``batch_size`` rows:
    zero the gradients -> forward -> ``loss`` -> backward -> optional ``regularizers``
    (``fnn.L1``/``fnn.L2``) and gradient clipping (``clip_norm``: max global norm) ->
    ``optimizer.step()``.

    Validation: ``validation_data=(X_val, y_val)``, or ``validation_split`` (a
    fraction of the **last** rows of X held out, as in Keras). ``callbacks`` get
    ``on_epoch_end(epoch, logs)`` and may stop training. A progress bar is shown on a
    terminal unless ``verbose=0``.

    A loss that becomes NaN or Inf stops training with a FloatingPointError naming the
    epoch and step. X: (N, ...) numeric without NaN; y: (N,) int labels for
    SoftmaxCrossEntropy, or the output's shape for MSE / BinaryCrossEntropy.

    ``fused=True`` lets a backend run the whole step in one compiled call when it
    supports the model/loss/optimizer combination (numbers equal the generic path's).

    ``distributed=True`` trains data-parallel over the MPI ranks of ``mpiexec -n R``
    (mpi4py, ``pip install 'fastnn[mpi]'``; one rank without mpiexec): every rank runs
    the same call on the same data; each global batch of ``batch_size`` rows is split
    across the ranks and the gradients averaged, so the result equals one process's.
    The fused step is not used; only rank 0 shows progress; an error on any rank ends
    all of them. See :mod:`fastnn.distributed`.
    """
    with abort_on_error(distributed):
        return _fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data, validation_split,
                    shuffle, seed, callbacks, verbose, regularizers, clip_norm, fused, distributed)


def _fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data, validation_split,
         shuffle, seed, callbacks, verbose, regularizers, clip_norm, fused, distributed):
    epochs = _positive_int(epochs, "epochs", "fit")
    batch_size = _positive_int(batch_size, "batch_size", "fit")
    X, y, validation_data = _split(model, X, y, validation_data, validation_split)
    loss.backend_name = model.backend_name
    batches = _Batches(model, X, _targets_for(loss, y, _output_width(model, X), model.dtype),
                       batch_size, shuffle, seed if seed is not None else getattr(model, "seed", None))
    model.fit_loss_ = loss
    step, batches, validate, verbose = _stepper(model, loss, optimizer, batches, regularizers, clip_norm,
                                                fused, verbose, distributed and (seed, epochs, batch_size, len(X)))
    history, callbacks = History(), list(callbacks)
    for cb in callbacks:
        if hasattr(cb, "on_train_begin"):
            cb.on_train_begin(model, history)
    bar = _progress(epochs, verbose)
    try:
        for epoch in range(epochs):
            logs = _train_epoch(step, batches, epoch, _is_classifier(loss))
            if validation_data is not None:
                val = validate(model, *validation_data, loss=loss)
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["lr"] = optimizer.lr
            history.append(epoch, logs)
            _report(bar, verbose, epoch, epochs, logs)
            if any([cb.on_epoch_end(epoch, logs) for cb in callbacks]):   # every callback sees the epoch
                history.stopped_epoch = epoch
                break
    finally:
        if bar is not None:
            bar.close()
        model.train()
    for cb in callbacks:
        if hasattr(cb, "on_train_end"):
            cb.on_train_end(model, history)
    return history


def _stepper(model, loss, optimizer, batches, regularizers, clip_norm, fused, verbose, distributed):
    """(step, batches, evaluate, verbose) of one process, or of this MPI rank when
    ``distributed`` holds the (seed, epochs, batch_size, rows) the ranks must agree on."""
    if not distributed:
        return TrainStep(model, loss, optimizer, regularizers, clip_norm, fused), batches, evaluate, verbose
    from .distributed import DataParallel
    seed, epochs, batch_size, rows = distributed
    dp = DataParallel(model, optimizer, loss=loss, regularizers=regularizers, clip_norm=clip_norm, seed=seed,
                      check={"epochs": epochs, "batch_size": batch_size, "rows": rows,
                             "shuffle": batches.shuffle})
    return dp, dp.batches(batches), dp.evaluate, verbose if dp.rank == 0 else 0


def _split(model, X, y, validation_data, validation_split):
    """Checked (X, y) and validation data, holding out the last rows for ``validation_split``."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    X, y = _check_data(X, y, "fit", model)
    if validation_data is None and validation_split > 0:
        n_val = max(1, int(round(len(X) * validation_split)))
        if n_val >= len(X):
            raise ValueError(f"fit: validation_split={validation_split} holds out {n_val} of {len(X)} "
                             "rows and leaves none to train on; use a smaller split or more data")
        validation_data = (X[-n_val:], y[-n_val:])
        X, y = X[:-n_val], y[:-n_val]
    if validation_data is not None:
        validation_data = _check_data(*validation_data, "fit (validation_data)", model)
    return X, y, validation_data


def _output_width(model, X):
    """The model's output width, from a probe that leaves no trace (eval mode: no dropout
    draw, no batch-norm update)."""
    model.eval()
    try:
        return model._forward(X[:1]).shape[-1]
    finally:
        model.train()


class _Batches:
    """The mini-batches of one epoch, shuffled by a seeded generator. On a GPU backend the
    whole data set is uploaded once and batches are gathered on the device."""

    def __init__(self, model, X, targets, batch_size, shuffle, seed):
        self.bk, self.X, self.targets = model.bk, X, targets
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        if self.bk.on_device:
            self.X, self.targets = self.bk.asarray(X), self.bk.asarray(np.ascontiguousarray(targets))

    def epoch(self):
        """Yields (x, target, rows) per step."""
        n, size, X, targets = len(self.X), self.batch_size, self.X, self.targets
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        take = self.bk.take_rows if self.bk.on_device else None
        for start in range(0, n, size):
            idx = order[start:start + size]
            yield (X[idx], targets[idx], len(idx)) if take is None else (take(X, idx), take(targets, idx), len(idx))


def _train_epoch(step, batches, epoch, classifier):
    """One pass over the batches; the epoch's mean loss (and accuracy). ``rows``: the
    global batch's (distributed, ``x`` is this rank's shard and ``step`` returns the
    global batch's loss)."""
    step.model.train()
    total_loss, total_correct, counted = 0.0, 0, 0
    for number, (x, t, rows) in enumerate(batches.epoch()):
        value, correct = step(x, t)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"fit: the loss became {value} at epoch {epoch + 1}, step {number + 1}: training "
                f"diverged. Try a lower learning rate (now {step.optimizer.lr:g}), gradient "
                "clipping (clip_norm=...) or standardised inputs.")
        total_loss += value * rows
        counted += rows
        total_correct += correct or 0
    logs = {"loss": total_loss / counted}
    if classifier:
        logs["accuracy"] = total_correct / counted
    return logs


def _report(bar, verbose, epoch, epochs, logs):
    if bar is not None:
        bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "lr"})
        bar.update(1)
    elif verbose >= 2:
        print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in logs.items()))


def _is_classifier(loss):
    return isinstance(loss, (SoftmaxCrossEntropy, BinaryCrossEntropy))


def _progress(epochs, verbose):
    if not verbose or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=epochs, desc="training", unit="epoch", leave=verbose >= 1)


def predict(model, X, batch_size=1024):
    """Model outputs for X in evaluation mode, as a host array (N, outputs)."""
    batch_size = _positive_int(batch_size, "batch_size", "predict")
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"predict: X must be numeric, got dtype {X.dtype}")
    was_training = model.training
    model.eval()
    try:
        outs = [model.bk.to_host(model._forward(X[i:i + batch_size])) for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(outs) if outs else np.empty((0,))


def evaluate(model, X, y, loss=None, batch_size=1024):
    """{'loss': mean loss, 'accuracy': fraction right (classification)} on (X, y), eval mode.

    ``loss`` defaults to the loss of the last ``fit``, else SoftmaxCrossEntropy for
    integer labels and MSE otherwise.
    """
    batch_size = _positive_int(batch_size, "batch_size", "evaluate")
    X, y = _check_data(X, y, "evaluate", model)
    loss = loss or getattr(model, "fit_loss_", None) or _default_loss(model, y)
    loss.backend_name = model.backend_name
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    try:
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            out = model._forward(xb)
            total += loss.forward(out, yb) * len(xb)
            correct += loss.correct(out) or 0
    finally:
        model.train(was_training)
    result = {"loss": total / len(X)}
    if _is_classifier(loss):
        result["accuracy"] = correct / len(X)
    return result
