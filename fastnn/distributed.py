"""Data-parallel training across processes with MPI (mpi4py).

Run the same script on every rank: ``mpiexec -n 4 python train.py`` with
``fnn.fit(..., distributed=True)``, or wrap a custom loop in :class:`DataParallel`.

What each rank does, and why the result equals one process's at the same global batch:

* **Start**: every rank compares a hash of its architecture and its training settings
  with rank 0's (one allgather) and refuses to start on a difference. Rank 0 then
  broadcasts the parameters and the optimizer state, so all ranks start alike.
* **Batches**: every rank draws the same shuffle (the same seed; with ``seed=None``
  rank 0 draws one and broadcasts it). A global mini-batch of ``B`` rows is split into
  contiguous shards by :func:`shard_bounds`: the first ``B % size`` ranks get one row
  more, so an uneven last batch of 10 rows on 3 ranks is split 4 / 3 / 3 and a batch of
  2 rows leaves rank 2 empty (it sends zeros and weight 0).
* **Gradients**: a rank's loss gradient is the mean over its ``n_r`` rows. Each rank
  multiplies it by ``n_r``, one ``Allreduce`` sums one flat buffer (every gradient,
  then the loss sum, the number correct and ``n_r``), and each rank divides by the
  summed ``B``: ``sum_r n_r * g_r / B`` is the mean over the global batch, the
  single-process gradient up to the order of float additions. Penalties, clipping and
  the update then run on identical gradients, so parameters stay identical.
* **Metrics** come out of the same Allreduce: every rank sees the global loss, so a
  divergence stops every rank at the same step. Validation rows are sharded and reduced.
* **Dropout**: masks must differ per rank (else each shard repeats the others' noise).
  Rule: Dropout layer ``k`` (tree order) on rank ``r`` draws from
  ``np.random.default_rng([seed, r, k])`` (``seed``: fit's seed, else the model's
  integer seed, else one drawn by rank 0 and broadcast). A run with an integer seed is
  reproducible for a given number of ranks.
* **BatchNorm1d** is **refused** when ``size > 1``: its batch statistics would be each
  shard's, not the global batch's, so the result would differ from one process.
  ``local_batchnorm=True`` accepts per-shard statistics (as PyTorch DDP without
  SyncBatchNorm does) and averages the running mean/variance across ranks after each
  epoch, so evaluation agrees on every rank.
* **Faults**: in ``fit(distributed=True)`` an exception on any rank prints that rank's
  traceback and calls ``MPI_Abort``, which ends every rank with a non-zero exit within
  seconds instead of leaving the others waiting in a collective (:func:`abort_on_error`).
* **GPU backend**: gradients are staged through host buffers (``to_host`` / upload),
  which works with any MPI; a CUDA-aware MPI could reduce device arrays directly.

Without ``mpiexec`` mpi4py runs as one rank (size 1): everything works as one process.
Importing this module does not import mpi4py; asking for distributed training without
it installed raises ImportError naming the ``fastnn[mpi]`` extra.
"""

import contextlib
import hashlib
import json
import sys
import time
import traceback

import numpy as np

from .backend import get_backend
from .containers import _Container
from .core_layers import Dropout
from .layers import layer_config
from .normalization import BatchNorm1d
from .optim import _distinct, clip_grad_norm
from .losses import Loss

__all__ = ["DataParallel", "abort_on_error", "shard_bounds", "architecture_hash", "world"]


def _mpi():
    """The mpi4py ``MPI`` module, or ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("fastnn distributed training needs mpi4py and an MPI library: "
                          "pip install 'fastnn[mpi]' (mpi4py + MPICH)") from exc
    return MPI


def world():
    """(rank, size) of ``MPI.COMM_WORLD``; (0, 1) when mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return 0, 1
    return MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()


def shard_bounds(rows, size, rank):
    """(lo, hi): the rows ``[lo, hi)`` of a batch of ``rows`` that ``rank`` of ``size``
    takes. Equal shards where possible; the first ``rows % size`` ranks take one more."""
    base, extra = divmod(rows, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _without_seeds(config):
    if isinstance(config, dict):
        return {k: _without_seeds(v) for k, v in config.items() if k != "seed"}
    if isinstance(config, list):
        return [_without_seeds(v) for v in config]
    return config


def architecture_hash(model):
    """16 hex digits of SHA-256 over the model's configuration (seeds left out: the
    weights are broadcast), its dtype and its parameter shapes."""
    text = json.dumps({"config": _without_seeds(layer_config(model)), "dtype": str(model.dtype),
                       "shapes": [list(p.shape) for p in _distinct(model.parameters())]},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _layers(layer):
    """Every layer of the tree in order, containers included."""
    yield layer
    if isinstance(layer, _Container):
        for child in layer.layers:
            yield from _layers(child)


@contextlib.contextmanager
def abort_on_error(enabled=True, comm=None):
    """On an exception inside the block with more than one rank: print the rank and its
    traceback to stderr and ``comm.Abort(1)``, which ends every rank (the others would
    otherwise wait forever in their next collective). With one rank, or
    ``enabled=False``, exceptions propagate as usual."""
    if not enabled:
        yield
        return
    comm = comm or _mpi().COMM_WORLD
    try:
        yield
    except Exception:
        if comm.Get_size() == 1:
            raise
        sys.stderr.write(f"fastnn: rank {comm.Get_rank()} of {comm.Get_size()} failed; "
                         f"aborting all ranks:\n{traceback.format_exc()}")
        sys.stderr.flush()
        comm.Abort(1)


class DataParallel:
    """Synchronous data parallelism for one ``model`` and its ``optimizer`` over ``comm``.

    ``dp = DataParallel(model, optimizer, loss=loss)`` checks that every rank has the same
    architecture and settings (ValueError on every rank otherwise), broadcasts rank 0's
    parameters and optimizer state, and re-seeds Dropout (module docstring). Create it
    after ``model.to(...)``: gradients then live in one flat host buffer (``buffer``,
    the model's dtype, every gradient then 3 metric slots) that the backward pass writes
    into directly on CPU backends.

    Custom loop, per global batch ``(xb, tb)`` of B rows that every rank holds::

        lo, hi = dp.shard(len(xb))
        loss_value, correct = dp.step(xb[lo:hi], tb[lo:hi])

    or do the forward/backward yourself and call :meth:`allreduce_gradients` before
    ``optimizer.step()``. ``comm_seconds`` / ``comm_calls`` add up the time spent in
    Allreduce. ``check`` is a dict of further settings that must agree across ranks.
    """

    def __init__(self, model, optimizer, loss=None, comm=None, regularizers=(), clip_norm=None,
                 seed=None, local_batchnorm=False, check=None):
        self.comm = comm or _mpi().COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.regularizers, self.clip_norm = tuple(regularizers), clip_norm
        self.params = _distinct(model.parameters())
        self.bk = get_backend(model.backend_name)
        seed = seed if seed is not None else getattr(model, "seed", None)
        self.seed_given = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
        self._check_same({"seed": seed if self.seed_given else None, **(check or {})})
        self._batchnorms = [m for m in _layers(model) if isinstance(m, BatchNorm1d)]
        if self._batchnorms and self.size > 1 and not local_batchnorm:
            raise ValueError(
                f"DataParallel: the model has {len(self._batchnorms)} BatchNorm1d layer(s); with "
                f"{self.size} ranks each would normalise by its shard's statistics, not the global "
                "batch's, so training would differ from one process. To accept per-shard statistics "
                "(running statistics averaged every epoch) use fastnn.distributed.DataParallel(..., "
                "local_batchnorm=True) in your own loop, or train without BatchNorm1d")
        self._make_buffer()
        self._broadcast_state()
        self.seed = self._common_seed(seed)
        for k, layer in enumerate(m for m in _layers(model) if isinstance(m, Dropout)):
            layer.rng = np.random.default_rng([self.seed, self.rank, k])
        self.comm_seconds, self.comm_calls = 0.0, 0

    # --- start-up -------------------------------------------------------------------
    def _check_same(self, extra):
        opt = self.optimizer
        hyper = {k: v for k, v in opt._hyper().items() if k != "step_count"}   # step_count is state
        mine = {"architecture": architecture_hash(self.model),
                "optimizer": f"{type(opt).__name__}{sorted(hyper.items())}",
                "loss": type(self.loss).__name__ + json.dumps(self.loss.get_config(), sort_keys=True)
                if self.loss is not None else None,
                "regularizers": repr(self.regularizers), "clip_norm": self.clip_norm,
                **{k: repr(v) for k, v in extra.items()}}
        every = self.comm.allgather(mine)
        wrong = [f"rank {r}: {key} {theirs[key]!r} (rank 0: {every[0][key]!r})"
                 for r, theirs in enumerate(every) for key in every[0] if theirs.get(key) != every[0][key]]
        if wrong:
            raise ValueError("DataParallel: the ranks were started with different models or settings, "
                             "refusing to train: " + "; ".join(wrong[:6]))

    def _make_buffer(self):
        """One flat host buffer: every gradient, then loss sum, number correct, rows."""
        sizes = [p.size for p in self.params]
        self._n = int(sum(sizes))
        self.buffer = np.zeros(self._n + 3, dtype=self.model.dtype)
        ends = np.cumsum([0] + sizes)
        self._views = [self.buffer[a:b].reshape(p.shape) for p, a, b in zip(self.params, ends[:-1], ends[1:])]
        if not self.bk.on_device:   # the backward pass then writes straight into the buffer
            for p, view in zip(self.params, self._views):
                p.gradient = view
                p.zero_grad()

    def _broadcast_state(self):
        """Rank 0's parameters (one Bcast of a flat buffer) and optimizer state (pickled:
        small, once) on every rank."""
        flat = np.empty(self._n, dtype=self.model.dtype)
        if self.rank == 0:
            flat[:] = np.concatenate([p.data.ravel() for p in self.params]) if self.params else []
        self.comm.Bcast(flat, root=0)
        start = 0
        for p in self.params:
            p.data = flat[start:start + p.size].reshape(p.shape).copy()   # a copy: never alias flat
            start += p.size
        opt = self.optimizer
        state = None
        if self.rank == 0:
            state = {"arrays": {i: [self.bk.to_host(a) for a in opt.state[id(p)][1]]
                                for i, p in enumerate(opt.params) if id(p) in opt.state},
                     "step_count": getattr(opt, "step_count", None)}
        state = self.comm.bcast(state, root=0)
        if self.rank != 0:
            opt.state.clear()
            for i, arrays in state["arrays"].items():
                p = opt.params[i]
                buffers = opt._buffers(p, len(arrays))
                bk = get_backend(p.backend_name)
                buffers[:] = [bk.asarray(np.array(a, dtype=p.dtype)) for a in arrays]
            if state["step_count"] is not None:
                opt.step_count = state["step_count"]

    def _common_seed(self, seed):
        """``seed`` if it is an integer, else one drawn by rank 0, the same on every rank."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            seed = int(np.random.default_rng().integers(2**31)) if self.rank == 0 else None
            seed = self.comm.bcast(seed, root=0)
        return int(seed)

    # --- one step -------------------------------------------------------------------
    def shard(self, rows):
        """(lo, hi): this rank's rows of a global batch of ``rows``."""
        return shard_bounds(rows, self.size, self.rank)

    def step(self, x, target):
        """One synchronous training step on this rank's shard ``x`` (n_r, ...) and
        ``target`` (what the loss takes, n_r rows; n_r may be 0). Returns (the global
        batch's mean loss plus penalties, its number correct or None), equal on every rank."""
        model, loss = self.model, self.loss
        rows = len(x)
        for p in self.params:
            p.zero_grad()
        loss_sum, correct = 0.0, 0
        if rows:
            out = model._forward(x)
            loss_sum = loss.forward(out, target) * rows
            correct = loss.correct(out) or 0
            model._backward(loss._backward(), need_dx=False)
        total_rows, (loss_sum, correct) = self.allreduce_gradients(rows, (loss_sum, correct))
        value = loss_sum / total_rows
        for reg in self.regularizers:       # on identical gradients: the same on every rank
            value += reg.value(self.params)
            reg.add_grad(self.params)
        if self.clip_norm is not None:
            clip_grad_norm(self.params, self.clip_norm)
        self.optimizer.step()
        counts = type(loss).correct is not Loss.correct     # None for regression losses
        return value, (int(round(correct)) if counts else None)

    __call__ = step     # a DataParallel is the step that fit runs

    def allreduce_gradients(self, rows, metrics=(0.0, 0.0)):
        """Replace every rank's gradient (the mean over its ``rows`` rows) by the mean over
        the global batch, with one Allreduce of the flat buffer; two ``metrics`` (sums)
        travel in it. Returns (global rows, (metric sums))."""
        n, buf = self._n, self.buffer
        grads = buf[:n]
        self._gather_gradients()
        if rows:
            grads *= rows                   # a mean over rows -> a sum over rows
        else:
            grads[:] = 0                    # an empty shard adds nothing
        buf[n], buf[n + 1], buf[n + 2] = rows, metrics[0], metrics[1]
        start = time.perf_counter()
        self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
        self.comm_seconds += time.perf_counter() - start
        self.comm_calls += 1
        total = int(round(float(buf[n])))
        if total == 0:
            raise ValueError("DataParallel: the global batch has no rows")
        grads *= buf.dtype.type(1.0 / total)
        self._scatter_gradients()
        return total, (float(buf[n + 1]), float(buf[n + 2]))

    def _gather_gradients(self):
        for p, view in zip(self.params, self._views):
            if self.bk.on_device:           # staged through the host (any MPI works)
                view[...] = self.bk.to_host(p.gradient)
                continue
            g = p.gradient                  # zeros if no backward touched p
            if g is not view:               # replaced (e.g. model.to): copy, then adopt the view
                view[...] = g
                p.gradient = view

    def _scatter_gradients(self):
        if self.bk.on_device:
            for p, view in zip(self.params, self._views):
                p.gradient = self.bk.asarray(np.ascontiguousarray(view))

    # --- epochs ---------------------------------------------------------------------
    def batches(self, batches):
        """A sharded view of ``fastnn.training._Batches``: the same shuffle on every rank;
        yields (this rank's x, its targets, global batch rows) per step."""
        return _ShardedBatches(self, batches)

    def sync_buffers(self):
        """Average BatchNorm running statistics over the ranks (local_batchnorm=True)."""
        for bn in self._batchnorms:
            host = bn.buffers()
            for key in ("running_mean", "running_var"):
                value = np.ascontiguousarray(host[key], dtype=np.float64)
                self.comm.Allreduce(_mpi().IN_PLACE, value, op=_mpi().SUM)
                host[key] = value / self.size
            bn.load_buffers(host)

    def evaluate(self, model, X, y, loss=None):
        """``fastnn.evaluate`` on this rank's contiguous share of (X, y), reduced: the
        mean loss (and accuracy) over all rows, the same on every rank."""
        from .training import _is_classifier, evaluate
        lo, hi = self.shard(len(X))
        sums = np.zeros(3)
        if hi > lo:
            part = evaluate(model, X[lo:hi], y[lo:hi], loss=loss)
            sums[:] = part["loss"] * (hi - lo), part.get("accuracy", 0.0) * (hi - lo), hi - lo
        self.comm.Allreduce(_mpi().IN_PLACE, sums, op=_mpi().SUM)
        result = {"loss": float(sums[0] / sums[2])}
        if _is_classifier(loss or model.fit_loss_):
            result["accuracy"] = float(sums[1] / sums[2])
        return result

    def __repr__(self):
        return (f"DataParallel(rank {self.rank} of {self.size}, {len(self.params)} parameters, "
                f"{self._n * self.buffer.itemsize} gradient bytes per Allreduce)")


class _ShardedBatches:
    """The epochs of a ``_Batches``, each global batch cut to this rank's shard."""

    def __init__(self, dp, batches):
        self.dp, self.base = dp, batches
        if not dp.seed_given:   # a given integer seed already draws alike (as one process would)
            batches.rng = np.random.default_rng(dp.seed)

    def epoch(self):
        base, dp = self.base, self.dp
        n, size = len(base.X), base.batch_size
        order = base.rng.permutation(n) if base.shuffle else np.arange(n)
        take = base.bk.take_rows if base.bk.on_device else None
        for start in range(0, n, size):
            idx = order[start:start + size]
            lo, hi = dp.shard(len(idx))
            mine = idx[lo:hi]
            x, t = (base.X[mine], base.targets[mine]) if take is None else (take(base.X, mine), take(base.targets, mine))
            yield x, t, len(idx)
        dp.sync_buffers()
