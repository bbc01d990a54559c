"""The Numba backend beyond the shared kernel tests: every GEMM rung, the threaded code
paths (forced on small inputs), real multi-threading, argument checks in front of
compiled code and vectorised hot loops (the fused training step is tested in test_fused.py
with the other backends)."""

import platform

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels.contract import ContractError

numba = pytest.importorskip("numba")
if "numba" not in K.available():
    pytest.skip(f"numba backend unavailable: {K.status()['numba'][1]}", allow_module_level=True)

from fastnn.kernels import numba_backend as NB  # noqa: E402
from fastnn.kernels import numba_gemm, numba_util  # noqa: E402

TOL = {np.float32: 2e-5, np.float64: 1e-10}
# (m, n, k): ones, primes, and sizes crossing every block edge: the 5 x 16 micro-tile,
# MC=120 rows, NC=1024 columns, KC=512 (float32) / 256 (float64) reductions
SHAPES = [(1, 1, 1), (1, 7, 1), (13, 1, 17), (31, 37, 41), (127, 5, 3), (3, 1031, 5), (6, 17, 600),
          (4, 3, 1100)]


@pytest.fixture
def two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2 (a machine with at least 2 CPUs)")
    before = numba.get_num_threads()
    NB.set_num_threads(2)
    yield
    NB.set_num_threads(before)


@pytest.fixture
def force_parallel(monkeypatch, two_threads):
    """Make every kernel take its threaded path even on small inputs."""
    monkeypatch.setattr(numba_util, "PAR_MIN_ELEMS", 1)
    monkeypatch.setattr(numba_util, "PAR_MIN_FMAS", 1)


def _gemm_case(rng, m, n, k, ta, tb, dtype, fortran=False):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    if fortran:
        a, b = np.asfortranarray(a), b[:, ::-1].copy()[:, ::-1]   # F order; negative strides
    want = (a.T if ta else a) @ (b.T if tb else b)
    return a, b, want


def _close(got, want, dtype, scale=1.0):
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, scale))


# --- GEMM ladder -----------------------------------------------------------------

@pytest.mark.parametrize("rung", list(numba_gemm.GEMM_LADDER))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_rung_matches_numpy(rung, dtype):
    gemm = NB.GEMM_LADDER[rung]
    rng = np.random.default_rng(7)
    for i, (m, n, k) in enumerate(SHAPES):
        for ta in (False, True):
            for tb in (False, True):
                a, b, prod = _gemm_case(rng, m, n, k, ta, tb, dtype, fortran=i % 2 == 1)
                c0 = rng.standard_normal((m, n)).astype(dtype)
                out = np.full((m, n), np.nan, dtype)            # beta=0 must never read out
                gemm(a, b, out, ta, tb)
                _close(out, prod, dtype, k)
                out = c0.copy()
                gemm(a, b, out, ta, tb, alpha=-0.5, beta=0.25)
                _close(out, -0.5 * prod + 0.25 * c0, dtype, k)


def test_ladder_is_ordered_and_the_backend_uses_its_top():
    assert list(NB.GEMM_LADDER) == ["naive", "reordered", "blocked", "packed", "parallel"]
    assert NB.GEMM_LADDER is numba_gemm.GEMM_LADDER
    assert NB.gemm.__module__ == NB.__name__ and "matmul" in NB.gemm.__code__.co_names


@pytest.mark.parametrize("rung", list(numba_gemm.GEMM_LADDER))
def test_rungs_check_their_arguments(rung):
    f32 = np.zeros((3, 4), np.float32)
    with pytest.raises(ContractError):
        NB.GEMM_LADDER[rung](f32, np.zeros((5, 2), np.float32), np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError):
        NB.GEMM_LADDER[rung](f32, np.zeros((4, 2)), np.zeros((3, 2), np.float32))


def test_empty_reduction_gives_bias_and_activation():
    x, w = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    b = np.array([-1.0, 0.5, 2.0, -3.0], np.float32)
    out = np.full((3, 4), np.nan, np.float32)
    NB.dense_forward(x, w, b, out, "relu")
    np.testing.assert_array_equal(out, np.tile(np.maximum(b, 0), (3, 1)))


def _micro_kernel_fmas(slp):
    """FMA counts of a fresh compile of the micro-kernel with the SLP vectoriser on/off."""
    i64, f32 = numba.types.int64, numba.types.float32
    sig = (i64, f32[::1], i64, f32[::1], i64, f32[:, ::1], i64, i64, i64, i64,
           numba.types.float64, numba.types.boolean, f32[::1])
    before = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = slp
    try:
        fresh = numba.njit(sig, fastmath={"contract"})(numba_gemm._micro.py_func)
        asm = fresh.inspect_asm(sig)
    finally:
        numba.config.SLP_VECTORIZE = before
    return numba_util.fma_counts(asm), asm


def _is_vectorised(counts):
    """Packed FMAs cover all MR x NR accumulators, and few scalar FMAs are left (the
    edge and epilogue code), whatever the vector width LLVM chose for this CPU."""
    accumulators = numba_gemm.MR * numba_gemm.NR
    return counts["lanes"] >= accumulators and counts["scalar"] < accumulators // 2


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 assembly check")
def test_micro_kernel_is_vectorised():
    """The hot loop must use packed FMAs (256-bit on AVX2, 256- or 512-bit on AVX-512),
    not scalar or gathered code: Numba vectorises it only with the SLP pass on."""
    counts, asm = _micro_kernel_fmas(slp=1)
    assert _is_vectorised(counts), f"micro-kernel lost its SIMD loop: {counts}"
    assert "gather" not in asm
    # The same check must see the loss: without SLP the accumulators stay scalar.
    off, _ = _micro_kernel_fmas(slp=0)
    assert not _is_vectorised(off), f"SLP off still counted as vectorised: {off}"


# --- threaded paths ------------------------------------------------------------------

def test_prange_really_uses_two_threads(two_threads):
    ids = numba_util.prange_thread_ids(64)
    assert len(np.unique(ids)) >= 2


def test_tiling_gives_every_thread_work():
    for m, n in [(256, 256), (32, 784), (1, 600), (2, 64), (784, 256)]:
        mc, rows, cols = numba_gemm._tiling(m, n, 2)
        assert mc % numba_gemm.MR == 0 and rows * mc >= m
        if m >= 2 * numba_gemm.MR or n >= 8 * numba_gemm.NR:
            assert rows * cols >= 2, (m, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_paths_match_numpy(force_parallel, dtype):
    """Every kernel with a threaded path, forced onto it, against the NumPy reference."""
    ref = K.get("numpy")
    bk = K.get("numba")
    rng = np.random.default_rng(3)

    def r(*shape, lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, shape).astype(dtype)

    for m, n, k in [(70, 37, 41), (3, 530, 5), (2, 9, 3)]:
        for ta in (False, True):
            for tb in (False, True):
                a, b, prod = _gemm_case(rng, m, n, k, ta, tb, dtype)
                out = np.full((m, n), np.nan, dtype)
                bk.gemm(a, b, out, ta, tb)
                _close(out, prod, dtype, k)
    x, w, bias = r(33, 19), r(19, 45), r(45)
    for act in ("linear", "relu", "leaky_relu", "sigmoid", "tanh"):
        got, want = np.empty((33, 45), dtype), np.empty((33, 45), dtype)
        bk.dense_forward(x, w, bias, got, act, 0.1)
        ref.dense_forward(x, w, bias, want, act, 0.1)
        _close(got, want, dtype, 19)
        dy = r(33, 45)
        res = []
        for be in (bk, ref):
            dz, dx, dw, db = (np.empty(s, dtype) for s in ((33, 45), (33, 19), (19, 45), (45,)))
            be.dense_backward(x, w, want, dy, dz, dx, dw, db, act, 0.1)
            res.append((dz, dx, dw, db))
        for got_a, want_a in zip(*res):
            _close(got_a, want_a, dtype, 45)
    y, t = r(40, 48, lo=-20, hi=20), r(40, 48, lo=0, hi=1)
    labels = rng.integers(0, 48, 40).astype(np.int64)
    for name, args in [("relu_forward", (y,)), ("sigmoid_forward", (y,)), ("tanh_forward", (y,)),
                       ("softmax_forward", (y,)), ("add", (y, t)), ("dropout_forward", (y, t)),
                       ("mse_backward", (y, t)), ("bce_with_logits_backward", (y, t))]:
        got, want = np.empty_like(y), np.empty_like(y)
        getattr(bk, name)(*args, got)
        getattr(ref, name)(*args, want)
        _close(got, want, dtype)
    for name, args in [("mse_forward", (y, t)), ("bce_with_logits_forward", (y, t)),
                       ("sum_squares", (y,)), ("abs_sum", (y,))]:
        _close(getattr(bk, name)(*args), getattr(ref, name)(*args), dtype, abs(getattr(ref, name)(*args)))
    probs = [np.empty_like(y), np.empty_like(y)]
    losses = [be.softmax_cross_entropy_forward(y, labels, p) for be, p in zip((bk, ref), probs)]
    _close(losses[0], losses[1], dtype)
    _close(probs[0], probs[1], dtype)
    gamma, beta = r(48, lo=0.5, hi=1.5), r(48)
    outs = []
    for be in (bk, ref):
        o, xh, inv, rm, rv = np.empty_like(y), np.empty_like(y), np.empty(48, dtype), np.zeros(48, dtype), np.ones(48, dtype)
        be.batchnorm_forward(y, gamma, beta, o, xh, inv, rm, rv, 0.1, 1e-5)
        dx, dg, dbt = np.empty_like(y), np.empty(48, dtype), np.empty(48, dtype)
        be.batchnorm_backward(xh, gamma, inv, t, dx, dg, dbt)
        inf = np.empty_like(y)
        be.batchnorm_inference(y, gamma, beta, rm, rv, 1e-5, inf)
        outs.append((o, xh, inv, rm, rv, dx, dg, dbt, inf))
    for got_a, want_a in zip(*outs):
        _close(got_a, want_a, dtype, 40)
    g = r(40, 48)
    for nesterov in (False, True):
        states = []
        for be in (bk, ref):
            p, v = y.copy(), np.zeros_like(y)
            be.sgd_update(p, g, v, 0.1, 0.9, 1e-2, nesterov)
            pa, m2, v2 = y.copy(), np.zeros_like(y), np.zeros_like(y)
            be.adam_update(pa, g, m2, v2, 1e-2, 0.9, 0.999, 1e-8, 1e-2, 3, nesterov)
            states.append((p, v, pa, m2, v2))
        for got_a, want_a in zip(*states):
            _close(got_a, want_a, dtype, 20)


# --- the checked backend protects compiled code ------------------------------------------

def test_bad_arguments_raise_before_compiled_code():
    bk = K.get("numba")
    f32 = np.zeros((4, 3), np.float32)
    with pytest.raises(ContractError, match="inner dimensions"):
        bk.gemm(f32, np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(ContractError, match="bias|b has shape"):
        bk.dense_forward(f32, np.zeros((3, 5), np.float32), np.zeros(4, np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        bk.softmax_cross_entropy_forward(f32, np.array([0, 1, 2, 3]), np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        bk.relu_forward(np.zeros(3, np.int64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="thread count"):
        NB.set_num_threads(0)
    with pytest.raises(ValueError, match="thread count"):
        NB.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


def test_available_reports_version_layer_and_threads():
    ok, reason = NB.available()
    assert ok and numba.__version__ in reason and "threading layer" in reason and "threads" in reason


def test_warmup_compiles_and_returns_nothing():
    assert NB.warmup() is None


# --- thin GEMMs: a row, a column or a few outputs ------------------------------------------------

THIN = [(1, 1, 1), (1, 1, 5000), (1, 37, 300), (1, 300, 37), (29, 1, 300), (300, 1, 29), (3, 4, 1000),
        (2, 2, 9000), (1, 1, 70000)]


@pytest.mark.parametrize("m,n,k", THIN)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thin_products_match_numpy(m, n, k, dtype, monkeypatch):
    """Thin shapes never reach the packed micro-tiles (mostly padding for them)."""
    from fastnn.kernels import numba_thin
    assert numba_thin.is_thin(m, n)

    def packed(*args):
        raise AssertionError("a thin product went to the packed GEMM")
    monkeypatch.setattr(numba_gemm, "packed_serial", packed)
    monkeypatch.setattr(numba_gemm, "packed_parallel", packed)
    rng = np.random.default_rng(m * n + k)
    for ta in (False, True):
        for tb in (False, True):
            a, b, want = _gemm_case(rng, m, n, k, ta, tb, dtype)
            for alpha, beta in ((1.0, 0.0), (-0.5, 0.25)):
                c0 = rng.standard_normal((m, n)).astype(dtype)
                out = c0.copy() if beta else np.full((m, n), np.nan, dtype)
                NB.gemm(a, b, out, ta, tb, alpha, beta)
                _close(out, alpha * want + beta * c0, dtype, np.sqrt(k))


def test_thin_products_split_the_reduction_over_threads(force_parallel, monkeypatch):
    def packed(*args):
        raise AssertionError("a thin product went to the packed GEMM")
    monkeypatch.setattr(numba_gemm, "packed_serial", packed)
    monkeypatch.setattr(numba_gemm, "packed_parallel", packed)
    backend = K.get("numba")
    rng = np.random.default_rng(2)
    for m, n, k in ((1, 1, 50_000), (1, 3, 20_000), (40, 1, 9000)):
        a, b, want = _gemm_case(rng, m, n, k, False, True, np.float64)
        out = np.empty((m, n))
        backend.gemm(a, b, out, trans_b=True)
        _close(out, want, np.float64, k)
        x, w, bias = rng.standard_normal((1, k)), rng.standard_normal((k, 5)), rng.standard_normal(5)
        out = np.empty((1, 5))
        backend.dense_forward(x, w, bias, out, "tanh")
        _close(out, np.tanh(x @ w + bias), np.float64, k)
