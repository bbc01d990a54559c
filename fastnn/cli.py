"""The ``fastnn`` command line: train, demo, backends, warmup, bench, and the teaching tools.

Every command fails the same way: bad input is one line on stderr,
``fastnn CMD: error: ...``, and exit status 2 (checked before any long work where it
can be); a training run whose loss turns NaN/Inf is ``fastnn CMD: error: fit: ...`` and
exit status 1. No traceback for either.
"""

import argparse
import math
import os
import sys
import time

__all__ = ["main", "make_parser", "train_once", "build_mlp", "load_dataset"]


# --- argument checking ------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``fastnn CMD: error: MESSAGE`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
unit_interval = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def hidden_widths(text):
    """``--hidden``: comma-separated positive widths, e.g. 64 or 128,64."""
    try:
        widths = [int(h) for h in str(text).split(",") if h.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 64 or 128,64, "
                                         f"got {text!r}") from None
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def writable_file(path, option):
    """Refuse, before any work, a file path that cannot be written (ValueError)."""
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path}: the folder {folder} is not writable")
    return path


def writable_folder(path, option="--out"):
    """Create ``path`` if needed; ValueError, before any work, if it cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path}: the folder is not writable")
    return path


def check_model_size(widths, option="--hidden"):
    """Refuse a network whose weights (with gradients and optimizer state) cannot fit in
    this machine's memory, before allocating anything."""
    weights = sum(i * o + o for i, o in zip(widths[:-1], widths[1:]))
    needed = 8 * weights   # float32 weights + gradients, more for the optimizer and init
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > memory:
        raise MemoryError(f"a {'-'.join(map(str, widths))} network has {weights:,} weights and needs "
                          f"more than {needed / 2 ** 30:,.0f} GiB; this machine has "
                          f"{memory / 2 ** 30:,.0f} GiB (choose a smaller {option})")


# --- train --------------------------------------------------------------------------------

def _add_train(sub):
    p = sub.add_parser("train", help="train an MLP on a data set and report test accuracy")
    p.add_argument("--dataset", default="digits", choices=["digits", "xor", "moons", "circles", "spirals"])
    p.add_argument("--backend", default="auto")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--hidden", type=hidden_widths, default="64",
                   help="hidden widths, comma-separated (e.g. 64 or 128,64)")
    p.add_argument("--lr", type=positive_float, default=0.1)
    p.add_argument("--momentum", type=unit_interval, default=0.0)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--save", metavar="PATH", help="write the trained model to this .npz file")
    p.add_argument("--plot", metavar="PATH", help="write loss/accuracy curves to this PNG")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"],
                   help="mlp: Dense/ReLU with --hidden widths; cnn: two 3x3 convolutions, a 2x2 max-pool "
                        "and Dense 512-64-10 (digits only)")
    p.add_argument("--distributed", action="store_true",
                   help="train data-parallel over the ranks of mpiexec -n R (pip install 'fastnn[mpi]'); "
                        "--batch-size is the global batch; only rank 0 prints and writes files")
    p.set_defaults(func=cmd_train)


def load_dataset(name, seed=0, with_scaler=False):
    """(X_train, X_test, y_train, y_test), standardised on the training part; with
    ``with_scaler`` also the fitted ``data.Standardizer``."""
    from . import data
    X, y = data.load_digits() if name == "digits" else data.TOY_DATASETS[name](n=600, seed=seed)
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.2, seed=seed, stratify=True)
    scaler = data.Standardizer().fit(X_train)
    split = (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)
    return split + (scaler,) if with_scaler else split


def with_standardizer(model, scaler):
    """``model`` (a Sequential) with the fitted ``scaler`` as its first layer, the same
    weights after it: a model that takes raw inputs. The model itself where the library
    has no such layer (``scaler.as_layer``)."""
    import fastnn as fnn
    from .layers import layer_config, layer_from_config
    as_layer = getattr(scaler, "as_layer", None)
    if as_layer is None:
        return model
    # fresh layers, not model.layers: a container names its layers' parameters by position
    layers = [as_layer(backend=model.backend_name, dtype=model.dtype)]
    layers += [layer_from_config(layer_config(layer), backend=model.backend_name, dtype=model.dtype)
               for layer in model.layers]
    raw = fnn.Sequential(layers, backend=model.backend_name)
    for new, old in zip(raw.parameters(), model.parameters(), strict=True):
        new.data = old.data
    for new, old in zip(raw.layers[1:], model.layers):
        if old.buffers():
            new.load_buffers(old.buffers())
    return raw


def mlp_layers(n_in, hidden, n_out, backend):
    """The layers of a Dense/ReLU stack n_in -> hidden... -> n_out (logits)."""
    import fastnn as fnn
    check_model_size([n_in, *hidden, n_out])
    layers, width = [], n_in
    for h in hidden:
        layers += [fnn.Dense(width, h, backend=backend), fnn.ReLU(backend=backend)]
        width = h
    layers.append(fnn.Dense(width, n_out, backend=backend))
    return layers


def build_cnn(n_out, backend, seed):
    """The digits CNN: flat 64-pixel rows back into 1 x 8 x 8 images, conv 1->16 and 16->32
    (3 x 3, padding 1, ReLU), 2 x 2 max-pool, Dense 512 -> 64 -> n_out (logits)."""
    import fastnn as fnn
    layers = [fnn.Unflatten((1, 8, 8)), fnn.Conv2d(1, 16, 3, padding=1), fnn.ReLU(),
              fnn.Conv2d(16, 32, 3, padding=1), fnn.ReLU(), fnn.MaxPool2d(2), fnn.Flatten(),
              fnn.Dense(32 * 4 * 4, 64), fnn.ReLU(), fnn.Dense(64, n_out)]
    return fnn.Sequential(layers, backend=backend, seed=seed)


def build_mlp(n_in, hidden, n_out, backend, seed):
    """Dense/ReLU stack: n_in -> hidden... -> n_out (logits), initialised from ``seed``."""
    import fastnn as fnn
    return fnn.Sequential(mlp_layers(n_in, hidden, n_out, backend), backend=backend, seed=seed)


def train_once(dataset, backend, epochs, hidden, lr, batch_size, seed, momentum=0.0, optimizer="sgd",
               verbose=1, callbacks=(), distributed=False, model="mlp"):
    """Train one MLP (or, ``model="cnn"``, the digits CNN); returns (model, history, test
    metrics, seconds, the fitted standardiser)."""
    import fastnn as fnn
    X_train, X_test, y_train, y_test, scaler = load_dataset(dataset, seed, with_scaler=True)
    n_classes = int(y_train.max()) + 1
    model = (build_cnn(n_classes, backend, seed) if model == "cnn"
             else build_mlp(X_train.shape[1], hidden, n_classes, backend, seed))
    params = model.parameters()
    opt = (fnn.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd"
           else fnn.optim.OPTIMIZERS[optimizer](params, lr=lr))
    start = time.perf_counter()
    history = fnn.fit(model, fnn.SoftmaxCrossEntropy(), opt, X_train, y_train, epochs=epochs,
                      batch_size=batch_size, validation_split=0.1, seed=seed, verbose=verbose,
                      callbacks=callbacks, distributed=distributed)
    seconds = time.perf_counter() - start
    return model, history, fnn.evaluate(model, X_test, y_test), seconds, scaler


def cmd_train(args):
    import numpy as np

    import fastnn as fnn
    if args.model == "cnn" and args.dataset != "digits":
        raise ValueError("--model cnn needs --dataset digits (its inputs are the 8 x 8 images)")
    backend = fnn.kernels.resolve(args.backend)
    fnn.get_backend(backend)
    rank, ranks = (0, 1)
    if args.distributed:
        from .distributed import _mpi, world
        _mpi()                          # ImportError naming the extra, before any work
        rank, ranks = world()
    say = print if rank == 0 else (lambda *a, **k: None)
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path and rank == 0:
            writable_file(path, option)
    hidden = "cnn" if args.model == "cnn" else ",".join(map(str, args.hidden))
    say(f"training {args.dataset} on backend {backend!r}: {'model' if args.model == 'cnn' else 'hidden'} "
        f"{hidden}, lr {args.lr}, "
        f"{args.epochs} epochs, batch {args.batch_size}" + (f", {ranks} MPI ranks" if args.distributed else ""),
        flush=True)
    with np.errstate(all="ignore"):   # a diverging run is reported by fit, in one line
        model, history, test, seconds, scaler = train_once(args.dataset, backend, args.epochs, args.hidden,
                                                           args.lr, args.batch_size, args.seed, args.momentum,
                                                           args.optimizer,
                                                           verbose=2 if not sys.stderr.isatty() else 1,
                                                           distributed=args.distributed, model=args.model)
    say(f"done in {seconds:.2f} s; final train loss {history.loss[-1]:.4f}")
    say(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}")
    if rank != 0:
        return 0
    if args.save:
        saved = with_standardizer(model, scaler)
        saved.save(args.save)
        print(f"model saved to {args.save}" + (" (its first layer standardises raw inputs as in training)"
                                               if saved is not model else ""))
    if args.plot:
        history.plot(args.plot, title=f"{args.dataset} on {backend}")
        print(f"curves written to {args.plot}")
    return 0


# --- backends, warmup ------------------------------------------------------------------------

def cmd_backends(args):
    import fastnn as fnn
    status = fnn.backend_status()
    auto = fnn.kernels.resolve("auto")
    print(f"{'backend':<8} {'available':<10} details")
    for name, (ok, reason) in status.items():
        mark = "yes" if ok else "no"
        star = "  (auto)" if name == auto else ""
        print(f"{name:<8} {mark:<10} {reason}{star}")
    if args.kernels:
        print_kernel_sources([n for n, (ok, _) in status.items() if ok])
    return 0


def print_kernel_sources(names):
    """Per kernel and backend: native, reference (tier 2 composed of the backend's own
    tier-1 primitives) or host (the NumPy kernel on host memory)."""
    import fastnn as fnn
    sources = {n: fnn.kernels.get(n).sources for n in names}
    tier2 = set(fnn.kernels.reference.TIER2)
    print()
    print(f"{'kernel':<32} {'tier':<5} " + " ".join(f"{n:<9}" for n in names))
    for kernel in fnn.kernels.contract.KERNELS:
        tier = "2" if kernel in tier2 else "1"
        print(f"{kernel:<32} {tier:<5} " + " ".join(f"{sources[n][kernel]:<9}" for n in names))


def warm_backend(name):
    """Compile (or load) ``name``'s kernels, saying first what that involves; returns seconds."""
    import fastnn as fnn
    from .teach.progress import compile_notice, elapsed
    notice = compile_notice(name)
    if not notice:   # nothing to compile: no clock
        return fnn.warmup([name]).get(name, 0.0)
    print(notice, file=sys.stderr, flush=True)
    with elapsed(f"{name}: compiling or loading"):
        return fnn.warmup([name]).get(name, 0.0)


def cmd_warmup(args):
    import fastnn as fnn
    names = [n for n in fnn.available_backends() if fnn.kernels.get(n).optional("warmup") is not None]
    if not names:
        print("no backend here compiles ahead of time")
    for name in names:
        seconds = warm_backend(name)
        print(f"{name}: every kernel compiled or loaded from cache in {seconds:.2f} s", flush=True)
    return 0


# --- demo -------------------------------------------------------------------------------------

def _add_demo(sub):
    p = sub.add_parser("demo", help="train the digits MLP on every available backend and compare")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--hidden", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--backends", nargs="*", help="limit to these backends")
    p.add_argument("--out", default="fastnn-out", help="folder for the plots")
    p.set_defaults(func=cmd_demo)


def demo_backends(requested):
    """The backends to run, in registry order: ``requested`` (every one if empty) less
    those that cannot run here, each skipped with its reason. ValueError for an unknown
    name, or when none is left."""
    import fastnn as fnn
    status = fnn.backend_status()
    if requested:
        unknown = [n for n in requested if n not in status and n != "auto"]
        if unknown:
            raise ValueError(f"unknown backend{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; choose from {', '.join(status)}")
        wanted = {fnn.kernels.resolve(n) for n in requested}
    else:
        wanted = set(status)
    names = []
    for name, (ok, reason) in status.items():
        if name not in wanted:
            continue
        if ok:
            names.append(name)
        else:
            print(f"skipping {name}: {reason}")
    if not names:
        raise ValueError(f"none of the backends asked for ({', '.join(sorted(wanted))}) can run here")
    return names


def print_demo_table(rows):
    """(backend, seconds, seconds per epoch, test accuracy) rows, with the speed-up over numpy."""
    ref = dict((r[0], r[1]) for r in rows).get("numpy")
    speedup = "speed-up vs numpy"
    print(f"\n{'backend':<8} {'wall time':>10} {'per epoch':>11} {speedup:>18} {'test acc':>9}")
    for name, seconds, per_epoch, acc in rows:
        ratio = f"{ref / seconds:.2f}x" if ref else "-"
        print(f"{name:<8} {seconds:>9.2f}s {1000 * per_epoch:>9.1f}ms {ratio:>18} {acc:>9.4f}")
    print(f"({speedup}: numpy's wall time / the backend's; higher is faster)")


def cmd_demo(args):
    """Train the digits MLP on every available backend; print times and accuracies; write plots."""
    import numpy as np

    from .plots import plot_curves
    from .teach.progress import EpochBar
    backends = demo_backends(args.backends)
    out = writable_folder(args.out)
    print(f"fastnn demo: MLP 64-{args.hidden}-10 on the 8x8 digits (1,797 images; 20% held out for test),"
          f" SGD lr {args.lr} momentum 0.9, batch 32, {args.epochs} epochs, backends: {', '.join(backends)}",
          flush=True)
    rows, curves, broken = [], {}, []
    for name in backends:
        compiled = warm_backend(name)   # JIT time: reported, not in the timing
        with EpochBar(args.epochs, f"{name}: training") as bar, np.errstate(all="ignore"):
            try:
                _, history, test, seconds, _ = train_once("digits", name, args.epochs, [args.hidden], args.lr,
                                                          32, seed=0, momentum=0.9, verbose=0,
                                                          callbacks=[bar.callback()])
            except FloatingPointError as exc:   # a broken kernel or a step too large
                broken.append(name)
                print(f"  {name:<7} training broke: {exc}", flush=True)
                continue
        rows.append((name, seconds, seconds / args.epochs, test["accuracy"]))
        curves[f"{name} (train)"] = history.loss
        print(f"  {name:<7} {seconds:8.2f} s  ({1000 * seconds / args.epochs:8.1f} ms/epoch)  "
              f"test accuracy {test['accuracy']:.4f}"
              + (f"  (compiled / loaded kernels first: {compiled:.2f} s)" if compiled >= 0.05 else ""),
              flush=True)
    if rows:
        print_demo_table(rows)
        path = plot_curves(curves, os.path.join(out, "demo_loss.png"),
                           "digits MLP: training loss per epoch, every backend", logy=True)
        print(f"\nplots written to {os.path.abspath(path)}")
    low = [r[0] for r in rows if r[3] < 0.95]
    if low:
        print(f"test accuracy below 0.95 on {', '.join(low)} after {args.epochs} epochs"
              + (" (30 epochs reach about 0.97)" if args.epochs < 30 else ""))
    if broken:
        print(f"fastnn demo: error: training broke (the loss became NaN or infinite) on {', '.join(broken)}",
              file=sys.stderr)
        return 1
    return 0


# --- the parser and the entry point -----------------------------------------------------------

# Further commands live beside what they drive: each module has add_commands(subparsers).
COMMAND_MODULES = ("fastnn.bench", "fastnn.teach")


def make_parser():
    parser = ArgumentParser(prog="fastnn", description="fastnn: see how neural networks learn, fast.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_demo(sub)
    p = sub.add_parser("backends", help="list backends and whether each can run here")
    p.add_argument("--kernels", action="store_true",
                   help="also show, per kernel, which backends run it natively and which fall back")
    p.set_defaults(func=cmd_backends)
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


def _os_error(exc):
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def run_command(args, prog="fastnn"):
    """Run the parsed command; turn its failures into one line on stderr and an exit status."""
    name = f"{prog} {args.command}"

    def fail(message, status):
        print(f"{name}: error: {message}", file=sys.stderr)
        return status
    try:
        status = args.func(args)
        sys.stdout.flush()   # a closed pipe fails here, inside the try
        return status
    except BrokenPipeError:   # `fastnn ... | head`: the reader is gone; say nothing more
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())   # Python flushes stdout again at exit
        except (OSError, ValueError, AttributeError):
            pass
        return 141   # 128 + SIGPIPE, what a shell reports for a program killed by the pipe
    except FloatingPointError as exc:   # fit: the loss became NaN/Inf
        return fail(exc, 1)
    except MemoryError as exc:
        return fail(f"not enough memory: {exc or 'an allocation failed'}", 2)
    except OSError as exc:
        return fail(_os_error(exc), 2)
    except (ValueError, TypeError, RuntimeError) as exc:
        return fail(exc, 2)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        return 130


def main(argv=None):
    return run_command(make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
