"""Matplotlib figures shared by the CLI, the demo and the teaching tools (headless: Agg)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history, path=None, title="Training history"):
    """Loss per epoch (train and validation) and, for classifiers, accuracy. Returns the figure."""
    has_acc = "accuracy" in history.history
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4), squeeze=False)
    epochs = [e + 1 for e in history.epochs]
    for ax, key, label in ((axes[0, 0], "loss", "loss"), (axes[0, -1], "accuracy", "accuracy")):
        if key not in history.history:
            continue
        ax.plot(epochs, history.history[key], label=f"train {label}")
        if f"val_{key}" in history.history:
            ax.plot(epochs, history.history[f"val_{key}"], label=f"validation {label}")
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch + 1, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


def plot_curves(curves, path, title, ylabel="loss", xlabel="epoch", logy=False):
    """One line per named curve {label: values}; saved to ``path``."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
