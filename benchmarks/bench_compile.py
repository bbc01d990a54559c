"""Start-up costs of each backend, every sample in a fresh interpreter (asv ``timeraw_``):

* ``import``: importing fastnn.kernels and loading the backend (eager compilation, if a
  backend does it at import, lands here);
* ``first_gemm``: the first call of a 32x32 float32 GEMM after the import (a JIT
  backend compiles it here);
* ``Warmup.timeraw_warmup``: the backend's ``warmup()`` hook, which compiles every kernel
  for float32 and float64 (skipped under FASTNN_BENCH_QUICK=1: minutes when cold).

``cache``: ``cold`` gives each sample an empty ``NUMBA_CACHE_DIR``; ``cached`` fills one
first (untimed), as a second run of a program would find it. The numpy and python rows
are the baseline: they compile nothing.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from .common import FASTNN_BACKENDS, QUICK, THREADS, fastnn_backend, optional

_ENV = """
import os, tempfile
os.environ["NUMBA_CACHE_DIR"] = {cache_dir!r} or tempfile.mkdtemp(dir={base!r})
"""
_LOAD = "import fastnn.kernels as K\nbk = K.get({backend!r})\n"
_DATA = """
import numpy as np
a = np.ones((32, 32), np.float32)
b, out = a.copy(), np.empty_like(a)
if bk.on_device:
    a, b, out = bk.asarray(a), bk.asarray(b), bk.empty((32, 32), np.float32)
"""


class _StartUp:
    params = [FASTNN_BACKENDS, ["cold", "cached"], [THREADS]]
    param_names = ["backend", "cache", "threads"]
    number = 1
    warmup_time = 0.0
    repeat = (1, 5, 60.0)
    timeout = 600
    # (setup, timed statement) of the child, for this class
    parts = ("", "")

    def setup(self, backend, cache, threads):
        fastnn_backend(backend)  # NotImplementedError (skipped) when it cannot run here
        self.base = tempfile.mkdtemp(prefix="fastnn-asv-cache-")
        self.cache_dir = os.path.join(self.base, "cached") if cache == "cached" else ""
        if cache == "cached":  # one untimed run fills the on-disk cache
            prelude, stmt = self.code(backend)
            subprocess.run([sys.executable, "-c", prelude + "\n" + stmt], check=True)

    def teardown(self, backend, cache, threads):
        if hasattr(self, "base"):  # setup may have skipped before making it
            shutil.rmtree(self.base, ignore_errors=True)

    def code(self, backend):
        """(untimed setup, timed statement) for the child interpreter."""
        env = _ENV.format(cache_dir=self.cache_dir, base=self.base)
        prelude, stmt = self.parts
        return env + prelude.format(backend=backend), stmt.format(backend=backend)


class Import(_StartUp):
    parts = ("", _LOAD)

    def timeraw_import(self, backend, cache, threads):
        prelude, stmt = self.code(backend)
        return stmt, prelude


class FirstCall(_StartUp):
    parts = (_LOAD + _DATA, "bk.gemm(a, b, out)\n")

    def timeraw_first_gemm(self, backend, cache, threads):
        prelude, stmt = self.code(backend)
        return stmt, prelude


class Warmup(_StartUp):
    parts = (_LOAD, "bk.module.warmup()\n")

    def setup(self, backend, cache, threads):
        if QUICK:
            raise NotImplementedError("warm-up of every kernel is skipped under FASTNN_BENCH_QUICK")
        if optional(fastnn_backend(backend), "warmup") is None:
            raise NotImplementedError(f"backend {backend!r} has no warmup() hook")
        super().setup(backend, cache, threads)

    def timeraw_warmup(self, backend, cache, threads):
        prelude, stmt = self.code(backend)
        return stmt, prelude
