"""Command-line wiring: ``fastnn neuron``, ``fastnn playground``, ``fastnn visualize``,
``fastnn serve`` and ``fastnn study``.

``fastnn.cli`` calls :func:`add_commands` with its argparse sub-parsers.
"""

import os
import sys

__all__ = ["add_commands", "main"]


def add_commands(subparsers):
    """Add the ``neuron``, ``playground``, ``visualize``, ``serve`` and ``study`` sub-commands."""
    _add_neuron(subparsers)
    _add_playground(subparsers)
    _add_visualize(subparsers)
    _add_serve(subparsers)
    _add_study(subparsers)


def _use_backend(name):
    import fastnn as fnn
    backend = fnn.kernels.resolve(name)
    fnn.get_backend(backend)   # fails here, with the reason, if it cannot run
    return backend


# --- neuron ----------------------------------------------------------------------------------

def _add_neuron(sub):
    from ..cli import non_negative_int, positive_float, positive_int
    from .neuron import ACTIVATIONS
    p = sub.add_parser("neuron", help="one neuron's forward pass (and a learning step), worked by hand",
                       description="Show one neuron's weighted sum, activation and confidence. With --target, "
                       "also the loss, the gradient and one gradient-descent step. With --hidden, a tiny "
                       "two-layer network instead, and whether it collapses into one linear layer.")
    p.add_argument("--inputs", type=float, nargs="+", required=True, metavar="X")
    p.add_argument("--weights", type=float, nargs="+", metavar="W", help="one weight per input")
    p.add_argument("--bias", type=float, default=0.0)
    p.add_argument("--activation", default="sigmoid", choices=ACTIVATIONS)
    p.add_argument("--target", type=float, help="desired output: adds the loss, backward pass and one update")
    p.add_argument("--lr", type=positive_float, default=0.5, help="step size of that update (default 0.5)")
    p.add_argument("--hidden", type=positive_int, nargs="?", const=3, metavar="H",
                   help="show a network inputs -> H hidden (default 3) -> 1 with seeded weights instead")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the --hidden network's weights")
    p.add_argument("--decimals", type=_decimals, default=2, help="digits after the point, 0-12 (default 2)")
    p.add_argument("--backend", default="auto")
    p.set_defaults(func=cmd_neuron)


def _decimals(text):
    import argparse
    from ..cli import non_negative_int
    value = non_negative_int(text)
    if value > 12:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 12, got {text!r}")
    return value


def cmd_neuron(args):
    from .neuron import neuron, two_layer
    backend = _use_backend(args.backend)
    if args.hidden is not None:
        result = two_layer(args.inputs, args.hidden, args.activation, args.seed, backend=backend,
                           decimals=args.decimals)
        print(result)
        return 0 if result.collapses == (args.activation == "linear") else 1
    if args.weights is None:
        raise ValueError("--weights is required (one per input), unless --hidden is given")
    print(neuron(args.inputs, args.weights, args.bias, args.activation, args.target, args.lr, backend,
                 args.decimals))
    return 0


# --- playground, serve ---------------------------------------------------------------------------

def _add_playground(sub):
    from ..cli import non_negative_int, positive_int
    from .playground import NETWORK_HIDDEN, NETWORK_SEED
    p = sub.add_parser("playground", help="write the Neuron Playground: an interactive page, works offline",
                       description="Write a self-contained HTML page (no network access) with sliders for a "
                       "neuron's inputs, weights, bias and activation, and a hidden-layer mode with the decision "
                       "map of a small two-layer network. Open it from disk or with fastnn serve.")
    p.add_argument("--out", default=os.path.join("fastnn-out", "playground"), help="folder for playground.html")
    p.add_argument("--hidden", type=positive_int, default=NETWORK_HIDDEN,
                   help=f"hidden units of the two-layer network (default {NETWORK_HIDDEN})")
    p.add_argument("--seed", type=non_negative_int, default=NETWORK_SEED,
                   help=f"seed of that network's weights (default {NETWORK_SEED})")
    p.set_defaults(func=cmd_playground)


def cmd_playground(args):
    from ..cli import writable_folder
    from .playground import write_playground
    writable_folder(args.out)
    path = write_playground(args.out, args.hidden, args.seed)
    print(f"page  {os.path.abspath(path)}")
    print(f"open it in a browser from disk, or run: fastnn serve {args.out}")
    return 0


def _add_serve(sub):
    p = sub.add_parser("serve", help="serve a folder of pages on http://127.0.0.1 (this computer only)",
                       description="Serve DIR over HTTP with Python's http.server, bound to 127.0.0.1 only "
                       "(never another interface). Prints the URL; Ctrl+C stops.")
    p.add_argument("dir", nargs="?", default="fastnn-out", help="folder to serve (default fastnn-out)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.set_defaults(func=cmd_serve)


def _port(text):
    import argparse
    from ..cli import non_negative_int
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 65535, got {text!r}")
    return value


def cmd_serve(args):
    from .serve import serve
    return serve(args.dir, args.port)


# --- visualize ----------------------------------------------------------------------------------

def _add_visualize(sub):
    from ..cli import non_negative_float, non_negative_int, positive_int
    from .visualizer import DEFAULT_NOISE, HIDDEN_ACTIVATIONS, LR_PRESETS, OPTIMIZERS
    presets = ", ".join(f"{k}={v:g}" for k, v in LR_PRESETS.items())
    p = sub.add_parser("visualize", help="train a small classifier on a 2-D toy set and draw how it learns",
                       description="Record a training run at checkpoints and write a loss curve, a grid of "
                       "decision-map snapshots (PNG) and a self-contained HTML page with an epoch slider.")
    p.add_argument("--dataset", default="seed", choices=["seed", *sorted(DEFAULT_NOISE)],
                   help="seed (default): the 8 named XOR points of the Training Loop Visualizer, six setups in "
                   "one page; or a toy set, which also gets the single-run PNGs and page")
    p.add_argument("--hidden", default="8", help="hidden widths: 0 (none), 8, 8,8, ... (default 8)")
    p.add_argument("--activation", default="tanh", choices=HIDDEN_ACTIVATIONS)
    p.add_argument("--lr", default="balanced", help=f"a preset ({presets}) or a number")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                   help="sgd (plain: the presets are tuned for it), momentum (0.9) or adam")
    p.add_argument("--epochs", type=positive_int, help="default 300 for seed, 200 for the toy sets")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--n", type=positive_int, default=200, help="number of points (at least 4)")
    p.add_argument("--noise", type=non_negative_float, help="point noise (default per data set)")
    p.add_argument("--checkpoints", type=positive_int, default=12,
                   help="snapshots, epoch 0 included (at least 2; default 12)")
    p.add_argument("--grid", type=positive_int, default=80, help="decision-map resolution (at least 2; default 80)")
    p.add_argument("--seed", type=non_negative_int, help="default 7 for seed (a coin flip at epoch 0), 0 otherwise")
    p.add_argument("--backend", default="auto")
    p.add_argument("--out", default=os.path.join("fastnn-out", "visualize"), help="folder for the PNGs and HTML")
    p.set_defaults(func=cmd_visualize)


def cmd_visualize(args):
    from ..cli import writable_folder
    from .loop import write_loop_page
    from .visualizer import visualize
    backend = _use_backend(args.backend)
    writable_folder(args.out)
    page = write_loop_page(args.out, args.dataset, epochs=args.epochs, n=args.n, seed=args.seed,
                           backend=backend)
    print(f"training loop visualizer (six setups) {os.path.abspath(page)}")
    if args.dataset == "seed":
        print(f"open it in a browser from disk, or run: fastnn serve {args.out}")
        return 0
    run = visualize(args.dataset, args.hidden, args.lr, args.epochs or 200, args.activation, args.n, args.noise,
                    args.batch_size, args.checkpoints, args.grid, args.seed or 0, backend, args.out, args.optimizer,
                    progress=True)
    print(f"{run.title}: {len(run.X)} points, batch {run.batch_size}, backend {run.backend}")
    print(f"{'epoch':>6} {'loss':>10} {'accuracy':>9}")
    for cp in run.checkpoints:
        print(f"{cp.epoch:>6} {cp.loss:>10.4g} {cp.accuracy:>9.1%}")
    if run.diverged:
        print(f"diverged: the loss became infinite or NaN in epoch {run.diverged_epoch}")
    print(f"notice: {run.lesson()}")
    for kind, path in run.files.items():
        print(f"{kind:<5} {os.path.abspath(path)}")
    return 0


# --- study -----------------------------------------------------------------------------------------

def _add_study(sub):
    from ..cli import non_negative_int, positive_int
    from .studies import STUDIES
    p = sub.add_parser("study", help="run a classic training study and plot it",
                       description="learning-rate, overfitting, vanishing-gradients, optimizers (or all): "
                       "prints the measurements and writes a PNG with a caption saying what to notice.")
    p.add_argument("name", choices=[*STUDIES, "all"])
    p.add_argument("--epochs", type=positive_int, help="override the study's default number of epochs")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--out", default=os.path.join("fastnn-out", "studies"), help="folder for the PNGs")
    p.set_defaults(func=cmd_study)


def _summary(study):
    """Lines describing a study's measurements."""
    d, lines = study.data, []
    if study.name == "learning-rate":
        lines.append(f"{'preset':<10} {'lr':>6} {'first loss':>11} {'final loss':>11} {'rises':>6}")
        for name, r in d.items():
            final = f"{r['final_loss']:.4g}" if r["diverged_epoch"] is None else f"div@{r['diverged_epoch']}"
            lines.append(f"{name:<10} {r['lr']:>6g} {r['loss'][0]:>11.4g} {final:>11} {r['rises']:>6}")
    elif study.name == "overfitting":
        lines.append(f"{'variant':<20} {'epochs':>6} {'best val loss':>14} {'at':>4} {'final val loss':>15} "
                     f"{'val acc':>8} {'train acc':>9}")
        for name, r in d.items():
            lines.append(f"{name:<20} {len(r['loss']):>6} {r['best_val_loss']:>14.4f} {r['best_epoch']:>4} "
                         f"{r['final_val_loss']:>15.4f} {r['final_val_accuracy']:>8.1%} "
                         f"{r['final_train_accuracy']:>9.1%}")
            if "restored" in r:
                lines.append(f"{'':<20} restored best weights: val loss {r['restored']['loss']:.4f}, "
                             f"val accuracy {r['restored']['accuracy']:.1%}")
    elif study.name == "vanishing-gradients":
        lines.append("gradient norm ||dL/dW|| per Dense layer, first -> last (at initialisation / after training):")
        for name, r in d.items():
            lines.append(f"{name:<21} init    " + " ".join(f"{v:8.1e}" for v in r["grad_init"]))
            lines.append(f"{'':<21} trained " + " ".join(f"{v:8.1e}" for v in r["grad_trained"]) +
                         f"   final loss {r['loss'][-1]:.3f}")
    elif study.name == "optimizers":
        lines.append(f"{'optimizer':<30} {'first loss':>11} {'final loss':>11} {'final acc':>10}")
        for name, r in d.items():
            lines.append(f"{name:<30} {r['loss'][0]:>11.4f} {r['final_loss']:>11.4f} {r['accuracy'][-1]:>10.1%}")
    return lines


def cmd_study(args):
    from ..cli import writable_folder
    from .studies import STUDIES, run_study
    backend = _use_backend(args.backend)
    names = list(STUDIES) if args.name == "all" else [args.name]
    writable_folder(args.out)
    for name in names:
        options = {"seed": args.seed, "backend": backend, "out": args.out, "progress": True}
        if args.epochs is not None:
            options["epochs"] = args.epochs
        study = run_study(name, **options)
        print(f"== study {name} (backend {backend})")
        for line in _summary(study):
            print("  " + line)
        print(f"  figure: {os.path.abspath(study.figure)}")
        print(f"  notice: {study.caption}\n")
    return 0


def main(argv=None):
    """Run one of these commands on its own, with ``fastnn``'s error handling (bad input: a
    one-line message and exit status 2)."""
    from ..cli import ArgumentParser, run_command
    parser = ArgumentParser(prog="fastnn")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
