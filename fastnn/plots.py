"""Matplotlib figures shared by the CLI, the demo and the teaching tools (headless: Agg)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_history", "plot_curves", "plot_bench"]


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


# --- fastnn bench ----------------------------------------------------------------------------

def _seconds(value):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def _speedup_panel(ax, rows, backends, colours):
    """Bars of each backend's speed-up over numpy per size, on a linear axis from 0."""
    sizes = list(dict.fromkeys(r.size for r in rows))
    width = 0.8 / max(1, len(backends))
    top = 1.15 * max([r.vs_numpy for r in rows if r.vs_numpy] + [1.0])
    for i, backend in enumerate(backends):
        for j, size in enumerate(sizes):
            r = next((r for r in rows if r.backend == backend and r.size == size), None)
            if r is None:
                continue
            x = j - 0.4 + width * (i + 0.5)
            if r.vs_numpy is not None:
                ax.bar(x, r.vs_numpy, width, color=colours[backend])
                if r.vs_numpy < 0.05 * top:   # too short to read: print the value above it
                    ax.text(x, r.vs_numpy + 0.01 * top, f"{r.vs_numpy:.2g}x", rotation=90, ha="center",
                            va="bottom", fontsize=6, color=colours[backend])
            else:   # skipped / WRONG / error: say so where the bar would be
                ax.text(x, 0.01 * top, r.status if r.status != "ok" else "no numpy time", rotation=90,
                        ha="center", va="bottom", fontsize=6, color=colours[backend])
    ax.axhline(1.0, color="0.25", ls="--", lw=0.8)
    numpy_time = {r.size: r.median_s for r in rows if r.backend == "numpy" and r.median_s}
    ax.set_xticks(range(len(sizes)), [f"{s}\nnumpy {_seconds(numpy_time[s])}" if s in numpy_time else s
                                      for s in sizes], fontsize=7)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(0, top)
    ax.set_ylabel("speed-up vs numpy (x, higher is faster)", fontsize=7)
    ax.grid(axis="y", alpha=0.3)


def _ladder_panel(ax, rows, blas):
    """GFLOP/s of every GEMM variant against n (square sizes), log-log, legend outside."""
    lines = {}
    for r in rows:
        label = blas if r.backend == blas else f"{r.backend} {r.variant or '(gemm)'}"
        lines.setdefault(label, []).append((int(r.size), r.rate))
    colours = matplotlib.colormaps["tab20"]
    for i, (label, points) in enumerate(lines.items()):
        points.sort()
        style = "--" if label == blas or "(gemm)" in label else "-"
        ax.plot(*zip(*points), style, marker="o", markersize=3, label=label, color=colours(i % 20))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    sizes = sorted({int(r.size) for r in rows})
    ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("n (square GEMM, log scale)", fontsize=8)
    ax.set_ylabel("GFLOP/s (log scale)", fontsize=8)
    ax.set_title("GEMM ladder", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.grid(alpha=0.3, which="both")


def plot_bench(rows, path, title, blas="blas (numpy @)"):
    """``fastnn bench``'s chart, one panel per case: every backend's speed-up over numpy
    (numpy's median time / the backend's; linear axis from 0, the dashed line is numpy)
    at each size, numpy's own time under each size. With GEMM ladder rows (``variant``)
    also GFLOP/s of every variant against n. ``rows``: ``fastnn.bench.Row`` objects in
    display order. Returns ``path``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    main = [r for r in rows if not r.variant]
    cases = list(dict.fromkeys(r.case for r in main))
    ladder = [r for r in rows if r.case == "gemm" and r.rate is not None and len(r.size.split("x")) == 1]
    has_ladder = any(r.variant for r in ladder)
    panels = len(cases) + has_ladder
    cols = min(panels, 4)
    lines = (panels + cols - 1) // cols
    fig, axes = plt.subplots(lines, cols, figsize=(4.8 * cols + (2.2 if has_ladder else 0), 3.9 * lines),
                             squeeze=False)
    backends = list(dict.fromkeys(r.backend for r in main))
    colours = {b: f"C{i}" for i, b in enumerate(backends)}
    for ax, case in zip(axes.flat, cases):
        _speedup_panel(ax, [r for r in main if r.case == case], backends, colours)
        ax.set_title(case, fontsize=9)
    if has_ladder:
        _ladder_panel(axes.flat[len(cases)], ladder, blas)
    for ax in list(axes.flat)[panels:]:
        ax.set_visible(False)
    handles = [Patch(color=colours[b], label=b) for b in backends]
    handles.append(Line2D([], [], color="0.25", ls="--", lw=0.8, label="numpy (1x)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07 if lines == 1 else 0.04, 1, 0.95))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
