"""The ``fastnn`` command line: train, demo, backends, warmup, bench, and the teaching tools."""

import argparse
import os
import sys
import time

import numpy as np


def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP on a data set and report test accuracy")
    p.add_argument("--dataset", default="digits", choices=["digits", "xor", "moons", "circles", "spirals"])
    p.add_argument("--backend", default="auto")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", default="64", help="hidden widths, comma-separated (e.g. 64 or 128,64)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", help="write the trained model to this .npz file")
    p.add_argument("--plot", metavar="PATH", help="write loss/accuracy curves to this PNG")
    p.set_defaults(func=cmd_train)


def load_dataset(name, seed=0):
    """(X_train, X_test, y_train, y_test), standardised on the training part."""
    from . import data
    X, y = data.load_digits() if name == "digits" else data.TOY_DATASETS[name](n=600, seed=seed)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.2, seed=seed, stratify=True)
    scaler = data.Standardizer().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def build_mlp(n_in, hidden, n_out, backend, seed):
    """Dense/ReLU stack: n_in -> hidden... -> n_out (logits)."""
    import fastnn as fnn
    layers, width = [], n_in
    for h in hidden:
        layers += [fnn.Dense(width, h, backend=backend), fnn.ReLU(backend=backend)]
        width = h
    layers.append(fnn.Dense(width, n_out, backend=backend))
    return fnn.Sequential(layers, backend=backend, seed=seed)


def _hidden(text):
    try:
        widths = [int(h) for h in str(text).split(",") if h.strip()]
    except ValueError:
        raise SystemExit(f"--hidden must be comma-separated integers, got {text!r}")
    if any(w < 1 for w in widths):
        raise SystemExit(f"--hidden widths must be positive, got {text!r}")
    return widths


def train_once(dataset, backend, epochs, hidden, lr, batch_size, seed, momentum=0.0, optimizer="sgd",
               verbose=1):
    """Train one MLP; returns (model, history, test metrics, seconds)."""
    import fastnn as fnn
    X_train, X_test, y_train, y_test = load_dataset(dataset, seed)
    n_classes = int(y_train.max()) + 1
    model = build_mlp(X_train.shape[1], hidden, n_classes, backend, seed)
    params = model.parameters()
    opt = (fnn.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else fnn.optim.OPTIMIZERS[optimizer](params, lr=lr))
    start = time.perf_counter()
    history = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X_train, y_train, epochs=epochs,
                      batch_size=batch_size, validation_split=0.1, seed=seed, verbose=verbose)
    seconds = time.perf_counter() - start
    return model, history, fnn.evaluate(model, X_test, y_test), seconds


def cmd_train(args):
    import fastnn as fnn
    backend = fnn.kernels.resolve(args.backend)
    fnn.get_backend(backend)
    print(f"training {args.dataset} on backend {backend!r}: hidden {args.hidden}, lr {args.lr}, "
          f"{args.epochs} epochs, batch {args.batch_size}")
    model, history, test, seconds = train_once(args.dataset, backend, args.epochs, _hidden(args.hidden),
                                               args.lr, args.batch_size, args.seed, args.momentum,
                                               args.optimizer, verbose=2 if not sys.stderr.isatty() else 1)
    print(f"done in {seconds:.2f} s; final train loss {history.loss[-1]:.4f}")
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}")
    if args.save:
        model.save(args.save)
        print(f"model saved to {args.save}")
    if args.plot:
        history.plot(args.plot, title=f"{args.dataset} on {backend}")
        print(f"curves written to {args.plot}")
    return 0


def cmd_backends(args):
    import fastnn as fnn
    status = fnn.backend_status()
    auto = fnn.kernels.resolve("auto")
    print(f"{'backend':<8} {'available':<10} details")
    for name, (ok, reason) in status.items():
        mark = "yes" if ok else "no"
        star = "  (auto)" if name == auto else ""
        print(f"{name:<8} {mark:<10} {reason}{star}")
    return 0


def cmd_warmup(args):
    import fastnn as fnn
    spent = fnn.warmup()
    if not spent:
        print("no backend here compiles ahead of time")
    for name, seconds in spent.items():
        print(f"{name}: every kernel compiled or loaded from cache in {seconds:.2f} s")
    return 0


def cmd_demo(args):
    """Train the digits MLP on every available backend; print times and accuracies; write plots."""
    import fastnn as fnn
    from .plots import plot_curves
    os.makedirs(args.out, exist_ok=True)
    backends = [b for b in fnn.available_backends() if b in (args.backends or fnn.available_backends())]
    print(f"fastnn demo: MLP 64-{args.hidden}-10 on the 8x8 digits (1,797 images; 20% held out for test),"
          f" SGD lr {args.lr} momentum 0.9, batch 32, {args.epochs} epochs, backends: {', '.join(backends)}")
    rows, curves = [], {}
    for name in backends:
        compiled = fnn.warmup([name]).get(name, 0.0)   # JIT time: reported, not in the timing
        _, history, test, seconds = train_once("digits", name, args.epochs, [args.hidden], args.lr, 32,
                                               seed=0, momentum=0.9, verbose=0)
        rows.append((name, seconds, seconds / args.epochs, test["accuracy"]))
        curves[f"{name} (train)"] = history.loss
        print(f"  {name:<7} {seconds:8.2f} s  ({1000 * seconds / args.epochs:8.1f} ms/epoch)  "
              f"test accuracy {test['accuracy']:.4f}"
              + (f"  (compiled / loaded kernels first: {compiled:.2f} s)" if compiled >= 0.05 else ""),
              flush=True)
    ref = dict((r[0], r[1]) for r in rows).get("numpy")
    print(f"\n{'backend':<8} {'wall time':>10} {'per epoch':>11} {'vs numpy':>9} {'test acc':>9}")
    for name, seconds, per_epoch, acc in rows:
        ratio = f"{ref / seconds:.2f}x" if ref else "-"
        print(f"{name:<8} {seconds:>9.2f}s {1000 * per_epoch:>9.1f}ms {ratio:>9} {acc:>9.4f}")
    path = plot_curves(curves, os.path.join(args.out, "demo_loss.png"),
                       "digits MLP: training loss per epoch, every backend", logy=True)
    print(f"\nplots written to {os.path.abspath(path)}")
    bad = [r[0] for r in rows if r[3] < 0.95]
    if bad:
        print(f"test accuracy below 0.95 on: {', '.join(bad)}")
        return 1
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="train the digits MLP on every available backend and compare")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--backends", nargs="*", help="limit to these backends")
    p.add_argument("--out", default="fastnn-out", help="folder for the plots")
    p.set_defaults(func=cmd_demo)


# Further commands live beside what they drive: each module has add_commands(subparsers).
COMMAND_MODULES = ("fastnn.bench", "fastnn.teach")


def make_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: see how neural networks learn, fast.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_demo(sub)
    sub.add_parser("backends", help="list backends and whether each can run here").set_defaults(func=cmd_backends)
    sub.add_parser("warmup", help="compile every JIT kernel ahead of time").set_defaults(func=cmd_warmup)
    import importlib
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_commands(sub)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"fastnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
