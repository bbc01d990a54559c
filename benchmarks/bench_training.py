"""Training, float32, through the public API (``fastnn.Sequential`` of ``Dense``/``ReLU``,
``SoftmaxCrossEntropy``, ``SGD`` with momentum 0.9, ``fastnn.fit``):

* ``digits``: MLP 64-64-10, batch 32, on the bundled 8x8 digits (1,797 images);
* ``mnist``: MLP 784-256-128-10, batch 128, on random MNIST-shaped data. The epoch uses
  6,000 rows (a tenth of MNIST; 1,024 under FASTNN_BENCH_QUICK=1) so asv stays quick.

PyTorch runs the same network in eager mode (``nn.Linear``/``nn.ReLU``, ``optim.SGD``).
"""

from .common import (BACKENDS, MODELS, THREADS, TORCH, fastnn_backend, fastnn_model, pick,
                     ratio, torch_model, torch_module, torch_step, training_data)

import fastnn

# The interpreted backend needs about 30 ms for one digits step and seconds for one
# MNIST-shaped step: it runs the digits step only.
PYTHON_STEPS = {"digits"}


class _Training:
    params = [BACKENDS, list(MODELS), [THREADS]]
    param_names = ["backend", "model", "threads"]


def step_call(backend, model):
    """A zero-argument call that runs the next training step (cycling over the batches)."""
    if backend == "python" and model not in PYTHON_STEPS:
        raise NotImplementedError("python backend: only the digits step")
    X, y = training_data(model)
    batch = MODELS[model][1]
    if backend == TORCH:
        torch = torch_module()
        step = torch_step(*torch_model(model))
        put = torch.from_numpy
    else:
        bk = fastnn_backend(backend)
        step = fastnn.TrainStep(*fastnn_model(backend, model))   # exactly as fit runs a batch
        put = bk.asarray if bk.on_device else (lambda a: a)
    batches = [(put(X[i:i + batch].copy()), put(y[i:i + batch].copy()))
               for i in range(0, len(X) - batch + 1, batch)]
    position = [0]

    def call():
        x, t = batches[position[0]]
        position[0] = (position[0] + 1) % len(batches)
        step(x, t)
    return call


def epoch_call(backend, model):
    """A zero-argument call that trains one epoch (shuffled, seeded)."""
    if backend == "python":
        raise NotImplementedError("python backend: an epoch takes seconds to minutes")
    X, y = training_data(model)
    batch = MODELS[model][1]
    if backend == TORCH:
        torch = torch_module()
        step = torch_step(*torch_model(model))
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        generator = torch.Generator().manual_seed(0)

        def epoch():
            order = torch.randperm(len(Xt), generator=generator)
            for i in range(0, len(Xt), batch):
                idx = order[i:i + batch]
                step(Xt[idx], yt[idx])
        return epoch
    fastnn_backend(backend)
    net, loss, opt = fastnn_model(backend, model)
    return lambda: fastnn.fit(net, loss, opt, X, y, epochs=1, batch_size=batch, seed=0, verbose=0)


class TrainStep(_Training):
    """One mini-batch step (forward, loss, backward, SGD update) as ``fastnn.fit`` runs it."""

    def setup(self, backend, model, threads):
        self.call = step_call(backend, model)
        self.call()

    def time_step(self, backend, model, threads):
        self.call()

    def track_ratio_to_numpy(self, backend, model, threads):
        return ratio(self.call, step_call("numpy", model))

    track_ratio_to_numpy.unit = "backend time / numpy time"


class TrainEpoch(_Training):
    """One epoch of ``fastnn.fit(..., epochs=1, verbose=0)``; peak memory of the process."""

    number = 1
    repeat = (1, 5, 20.0)
    timeout = 300

    def setup(self, backend, model, threads):
        self.call = epoch_call(backend, model)
        self.call()

    def time_epoch(self, backend, model, threads):
        self.call()

    def peakmem_epoch(self, backend, model, threads):
        self.call()

    def track_ratio_to_numpy(self, backend, model, threads):
        return ratio(self.call, epoch_call("numpy", model), repeats=pick(3, 1), sample=0.0)

    track_ratio_to_numpy.unit = "backend time / numpy time"
