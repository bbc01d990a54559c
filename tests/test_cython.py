"""The Cython/C backend beyond the shared kernel tests: every SIMD path this CPU can run,
every rung of the GEMM ladder, OpenMP threads, clean errors from the raw compiled
functions (the fused training step is tested in test_fused.py with the other backends).

SIMD paths are switched in-process with ``set_simd`` (the same switch ``FASTNN_SIMD``
sets at import); one subprocess test checks the environment variable itself.
"""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn.kernels as K
from fastnn.kernels import cython_backend as cb
from fastnn.kernels import numpy_backend as ref
from fastnn.kernels.contract import KERNELS, ContractError
from fastnn.kernels.reference_conv import CONV_KERNEL_NAMES

if not cb.available()[0]:  # the whole module is about this backend
    pytest.fail(f"cython backend unavailable: {cb.available()[1]}", pytrace=False)

ALL_PATHS = ("generic", "avx2", "avx512")
PATHS = [p for p in ALL_PATHS if cb._k.cpu_supports(p)]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.fixture(params=PATHS)
def simd(request):
    """Run the test on one micro-kernel path, then restore the best one."""
    before = cb.simd_path()
    cb.set_simd(request.param)
    yield request.param
    cb.set_simd(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = cb.get_num_threads()
    cb.set_num_threads(request.param)
    yield request.param
    cb.set_num_threads(before)


def layout(a, kind):
    """a as C order, Fortran order, a strided view or a reversed (negative-stride) view."""
    if kind == "F":
        return np.asfortranarray(a)
    if kind == "strided":
        big = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
        big[:, ::2] = a
        return big[:, ::2]
    if kind == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    return np.ascontiguousarray(a)


# --- the GEMM ladder ------------------------------------------------------------------------

def test_ladder_goes_from_naive_to_the_backend_gemm():
    assert list(cb.GEMM_LADDER) == ["naive", "loop_reorder", "cache_blocked", "packed_simd",
                                    "packed_simd_omp"]
    assert cb.GEMM_LADDER["packed_simd_omp"] is cb.gemm
    want = inspect.signature(ref.gemm)
    for fn in cb.GEMM_LADDER.values():
        assert inspect.signature(fn) == want


# Shapes straddle every blocking edge: 1, primes, just past the micro-tile (6x16, 4x8,
# 12x32), past mc (168) and kc (256).
SHAPES = [(1, 1, 1), (7, 5, 3), (13, 17, 19), (37, 41, 257), (169, 33, 5), (5, 300, 7), (64, 65, 3)]


@pytest.mark.parametrize("name", list(cb.GEMM_LADDER))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_rung_on_odd_shapes_and_transposes(simd, threads, name, dtype):
    rng = np.random.default_rng(7)
    gemm = cb.GEMM_LADDER[name]
    for m, n, k in SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                for alpha, beta in ((1.0, 0.0), (-0.5, 0.25)):
                    a = layout(rng.standard_normal((k, m) if ta else (m, k)).astype(dtype),
                               ("C", "F", "strided", "reversed")[(m + n) % 4])
                    b = layout(rng.standard_normal((n, k) if tb else (k, n)).astype(dtype),
                               ("C", "F", "strided", "reversed")[(n + k) % 4])
                    c0 = rng.standard_normal((m, n)).astype(dtype)
                    out = c0.copy()
                    if beta == 0.0:
                        out[...] = np.nan  # beta == 0 must not read C
                    gemm(a, b, out, ta, tb, alpha, beta)
                    want = alpha * ((a.T if ta else a) @ (b.T if tb else b)) + beta * c0
                    np.testing.assert_allclose(out, want, rtol=TOL[dtype], atol=TOL[dtype] * k,
                                               err_msg=f"{name} {simd} {(m, n, k)} ta={ta} tb={tb}")


def test_odd_strides_of_length_one_axes_are_ignored():
    """NumPy allows any stride along an axis of length 1; it is never used."""
    base = np.arange(6, dtype=np.float32)
    row = np.lib.stride_tricks.as_strided(base, shape=(1, 6), strides=(3, 4))   # 3 bytes: not an element
    col = np.lib.stride_tricks.as_strided(base, shape=(6, 1), strides=(4, 5))
    out = np.empty((1, 1), np.float32)
    for gemm in cb.GEMM_LADDER.values():
        gemm(row, col, out)
        assert out[0, 0] == np.dot(base, base)
    dense = np.empty((1, 1), np.float32)
    cb.dense_forward(row, col, np.zeros(1, np.float32), dense)
    assert dense[0, 0] == np.dot(base, base)


def test_gemm_with_k_zero_scales_c():
    for gemm in cb.GEMM_LADDER.values():
        out = np.full((3, 4), 2.0)
        gemm(np.zeros((3, 0)), np.zeros((0, 4)), out, beta=0.5)
        np.testing.assert_array_equal(out, np.ones((3, 4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_gemm_crosses_every_block(simd, dtype):
    """Past nc (4080/4096 columns) would be too slow here; this crosses mc, kc and the
    4096-row round of packing in one product."""
    rng = np.random.default_rng(3)
    m, n, k = 4100, 40, 600
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    cb.gemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=TOL[dtype] * 10, atol=TOL[dtype] * k)


# --- SIMD dispatch ---------------------------------------------------------------------------

def test_simd_paths_are_dispatched_and_unsupported_ones_refused():
    assert cb._k.simd_best() == PATHS[-1]
    assert "generic" in PATHS
    for path in ALL_PATHS:
        if path in PATHS:
            cb.set_simd(path)
            assert cb.simd_path() == path
            assert cb._k.gemm_blocking(np.float32)["mr"] == cb._k.gemm_blocking(np.float32, path)["mr"]
        else:
            with pytest.raises(ValueError, match="cannot run"):
                cb.set_simd(path)
    with pytest.raises(ValueError, match="unknown SIMD path"):
        cb.set_simd("sse9")
    cb.set_simd(PATHS[-1])
    assert f"SIMD {PATHS[-1]}" in cb.available()[1]


def test_paths_have_their_own_micro_tiles():
    tiles = {p: cb._k.gemm_blocking(np.float32, p) for p in ALL_PATHS}
    assert (tiles["generic"]["mr"], tiles["generic"]["nr"]) == (4, 8)
    assert (tiles["avx2"]["mr"], tiles["avx2"]["nr"]) == (6, 16)
    assert (tiles["avx512"]["mr"], tiles["avx512"]["nr"]) == (12, 32)


def _status_with_env(**env):
    code = ("import fastnn; from fastnn.kernels import cython_backend as cb; "
            "ok, why = cb.available(); print(ok); print(why)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    ok, why = result.stdout.strip().splitlines()
    return ok == "True", why


def test_fastnn_simd_environment_variable():
    ok, why = _status_with_env(FASTNN_SIMD="generic")
    assert ok and why.startswith("SIMD generic")
    for path in ("avx512", "bogus"):
        ok, why = _status_with_env(FASTNN_SIMD=path)
        if path in PATHS:
            assert ok and why.startswith(f"SIMD {path}")
        else:  # refused with the reason; fastnn itself still imports
            assert not ok and f"FASTNN_SIMD={path}" in why


# --- OpenMP -----------------------------------------------------------------------------------

def test_openmp_runs_more_than_one_thread():
    assert cb._k.openmp_enabled()
    assert cb._k.threads_probe(2) == [0, 1]   # each thread wrote its omp_get_thread_num()
    assert cb._k.threads_probe(1) == [0]


def test_gemm_runs_on_the_requested_team():
    a = np.ones((512, 512), np.float32)
    out = np.empty_like(a)
    before = cb.get_num_threads()
    try:
        cb.set_num_threads(2)
        assert cb.get_num_threads() == 2
        cb.gemm(a, a, out)
        assert cb._k.gemm_last_team() == 2 and cb._k.gemm_last_workers() >= 1
        cb.gemm(a[:8, :8], a[:8, :8], out[:8, :8].copy())  # tiny: not worth a second thread
        assert cb._k.gemm_last_team() == 1
        cb.set_num_threads(1)
        cb.gemm(a, a, out)
        assert cb._k.gemm_last_team() == 1
        np.testing.assert_allclose(out, a @ a)
    finally:
        cb.set_num_threads(before)
    with pytest.raises(ValueError):
        cb.set_num_threads(0)


def test_parallel_element_wise_kernels_match_serial(threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 1000)).astype(np.float32)  # large enough for threads
    for act in ("relu", "sigmoid", "tanh"):
        got, want = np.empty_like(x), np.empty_like(x)
        getattr(cb, f"{act}_forward")(x, got)
        getattr(ref, f"{act}_forward")(x, want)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert cb.sum_squares(x) == pytest.approx(ref.sum_squares(x), rel=1e-12)


# --- the module's own checks --------------------------------------------------------------------

def test_signatures_match_the_reference():
    for name in KERNELS:
        assert inspect.signature(getattr(cb, name)) == inspect.signature(getattr(ref, name)), name


def _f32(*shape):
    return np.zeros(shape, np.float32)


RAW_BAD_CALLS = [
    lambda: cb.GEMM_LADDER["naive"](_f32(3, 4), _f32(5, 2), _f32(3, 2)),
    lambda: cb.GEMM_LADDER["packed_simd"](_f32(3, 4), _f32(4, 2), _f32(2, 2)),
    lambda: cb.gemm(_f32(3, 4), _f32(4, 2), _f32(3, 2), trans_a=True),
    lambda: cb.gemm(_f32(3, 4), np.zeros((4, 2)), _f32(3, 2)),
    lambda: cb.gemm(_f32(3, 4), _f32(4, 2), np.zeros((3, 2), np.float32, order="F")),
    lambda: cb.dense_forward(_f32(2, 5), _f32(4, 3), _f32(3), _f32(2, 3)),
    lambda: cb.dense_forward(_f32(2, 4), _f32(4, 3), _f32(2), _f32(2, 3)),
    lambda: cb.dense_backward(_f32(2, 4), _f32(4, 3), _f32(2, 3), _f32(2, 3), _f32(2, 3),
                              _f32(2, 4), _f32(3, 4), _f32(3)),
    lambda: cb.relu_forward(_f32(10), _f32(9)),
    lambda: cb.softmax_cross_entropy_forward(_f32(2, 3), np.array([0, 3]), _f32(2, 3)),
    lambda: cb.softmax_cross_entropy_backward(_f32(2, 3), np.array([-1, 0]), _f32(2, 3)),
    lambda: cb.batchnorm_forward(_f32(4, 3), _f32(3), _f32(2), _f32(4, 3), _f32(4, 3), _f32(3),
                                 _f32(3), _f32(3), 0.1, 1e-5),
    lambda: cb.sgd_update(_f32(5), _f32(6), _f32(5), 0.1, 0.9, 0.0, False),
    lambda: cb.adam_update(_f32(5), _f32(5), _f32(5), _f32(5), 0.1, 0.9, 0.999, 1e-8, 0.0, 0, False),
    lambda: cb.softmax_cross_entropy_forward(_f32(0, 3), np.zeros(0, np.int64), _f32(0, 3)),  # no rows
    lambda: cb.count_correct(_f32(2, 0), np.zeros(2, np.int64)),                          # no columns
    # convolution and pooling, called without the contract's checks
    lambda: cb.conv2d_forward(_f32(1, 2, 5, 5), _f32(3, 1, 3, 3), _f32(3), _f32(1, 3, 3, 3), (1, 1), (0, 0)),
    lambda: cb.conv2d_forward(_f32(1, 1, 5, 5), _f32(3, 1, 3, 3), _f32(2), _f32(1, 3, 3, 3), (1, 1), (0, 0)),
    lambda: cb.conv2d_forward(_f32(1, 1, 5, 5), _f32(3, 1, 3, 3), _f32(3), _f32(1, 3, 4, 3), (1, 1), (0, 0)),
    lambda: cb.conv2d_forward(_f32(1, 1, 2, 2), _f32(1, 1, 3, 3), _f32(1), _f32(1, 1, 1, 1), (1, 1), (0, 0)),
    lambda: cb.conv2d_forward(_f32(1, 1, 5, 5), _f32(1, 1, 3, 3), _f32(1), _f32(1, 1, 3, 3), (0, 1), (0, 0)),
    lambda: cb.conv2d_forward(_f32(1, 1, 5, 5), _f32(1, 1, 3, 3), _f32(1), _f32(1, 1, 3, 3), (1, 1), (-1, 0)),
    lambda: cb.conv2d_forward(_f32(0, 1, 5, 5), _f32(1, 1, 3, 3), _f32(1), _f32(0, 1, 3, 3), (1, 1), (0, 0)),
    lambda: cb.conv2d_backward(_f32(1, 1, 5, 5), _f32(2, 1, 3, 3), _f32(1, 2, 3, 2), _f32(1, 1, 5, 5),
                               _f32(2, 1, 3, 3), _f32(2), (1, 1), (0, 0)),
    lambda: cb.conv2d_backward(_f32(1, 1, 5, 5), _f32(2, 1, 3, 3), _f32(1, 2, 3, 3), _f32(1, 1, 5, 4),
                               _f32(2, 1, 3, 3), _f32(2), (1, 1), (0, 0)),
    lambda: cb.conv2d_backward(_f32(1, 1, 5, 5), _f32(2, 1, 3, 3), _f32(1, 2, 3, 3), None,
                               _f32(2, 1, 3, 2), _f32(2), (1, 1), (0, 0)),
    lambda: cb.maxpool2d_forward(_f32(1, 1, 4, 4), _f32(1, 1, 2, 2), np.zeros((1, 1, 2, 1), np.int64),
                                 (2, 2), (2, 2)),
    lambda: cb.maxpool2d_forward(_f32(1, 1, 4, 4), _f32(1, 1, 1, 1), np.zeros((1, 1, 1, 1), np.int64),
                                 (5, 2), (2, 2)),
    lambda: cb.maxpool2d_backward(_f32(1, 1, 2, 2), np.zeros((1, 1, 2, 2), np.int64), _f32(1, 2, 4, 4)),
    lambda: cb.maxpool2d_backward(_f32(1, 1, 2, 2), np.full((1, 1, 2, 2), 16, np.int64), _f32(1, 1, 4, 4)),
    lambda: cb.avgpool2d_forward(_f32(1, 1, 4, 4), _f32(1, 1, 3, 2), (2, 2), (2, 2)),
    lambda: cb.avgpool2d_backward(_f32(1, 1, 3, 2), _f32(1, 1, 4, 4), (2, 2), (2, 2)),
    lambda: cb.avgpool2d_backward(_f32(1, 1, 2, 2), _f32(1, 1, 4, 4), (2, 2), (2, 2)) or
    cb.avgpool2d_backward(_f32(1, 1, 2, 2), np.zeros((1, 1, 4, 4)), (2, 2), (2, 2)),  # dtypes differ
]


@pytest.mark.parametrize("call", RAW_BAD_CALLS, ids=range(len(RAW_BAD_CALLS)))
def test_raw_module_refuses_bad_shapes(call):
    """Even without the registry's contract checks the compiled code is never handed a size
    it would read or write past."""
    with pytest.raises((ValueError, TypeError)):
        call()


def test_conv_and_pool_kernels_are_native():
    """The six run as cython's own C kernels, not as references on its primitives."""
    sources = K.get("cython").sources
    assert {name: sources[name] for name in CONV_KERNEL_NAMES} == dict.fromkeys(CONV_KERNEL_NAMES, "native")


def test_raw_maxpool_backward_checks_each_index_and_writes_nothing_if_one_is_bad():
    dx = np.full((1, 2, 2, 2), 7.0, np.float32)
    arg = np.zeros((1, 2, 1, 1), np.int64)
    arg[0, 1] = 4                    # the next plane's first element: outside its own plane
    with pytest.raises(ValueError, match=r"argmax must lie in \[0, 4\), got 4 at flat position 1"):
        cb._k.maxpool2d_backward(np.ones((1, 2, 1, 1), np.float32), arg, dx)
    assert (dx == 7.0).all()
    arg[0, 1] = 3
    cb._k.maxpool2d_backward(np.ones((1, 2, 1, 1), np.float32), arg, dx)
    np.testing.assert_array_equal(dx.reshape(2, 4), [[1, 0, 0, 0], [0, 0, 0, 1]])


def test_conv_runs_in_blocks_of_images_like_one():
    """A batch whose im2col scratch spans several blocks (8 MiB each) equals the NumPy kernel."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((40, 3, 40, 40)).astype(np.float32), rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    b, dy = rng.standard_normal(4).astype(np.float32), rng.standard_normal((40, 4, 36, 36)).astype(np.float32)
    got = [np.empty((40, 4, 36, 36), np.float32), np.empty_like(x), np.empty_like(w), np.empty(4, np.float32)]
    want = [np.empty_like(a) for a in got]
    for kernels, (out, dx, dw, db) in ((cb, got), (ref, want)):
        kernels.conv2d_forward(x, w, b, out, (1, 1), (0, 0))
        kernels.conv2d_backward(x, w, dy, dx, dw, db, (1, 1), (0, 0))
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-3)


def test_registry_checks_come_first():
    backend = K.get("cython")
    with pytest.raises(ContractError, match="inner dimensions"):
        backend.gemm(_f32(3, 4), _f32(5, 2), _f32(3, 2))


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    labels = np.array([0, 2])
    probs = np.empty_like(logits)
    loss = cb.softmax_cross_entropy_forward(logits, labels, probs)
    assert np.isfinite(loss) and loss == pytest.approx(np.log(2) / 2, rel=1e-6)
    np.testing.assert_allclose(probs, [[1, 0, 0], [0, 0.5, 0.5]], atol=1e-7)


def test_raw_cross_entropy_never_reads_an_empty_row():
    """Rows of zero classes right before an inaccessible page: the raw compiled kernels
    refuse them (ValueError) without reading a first element that is not there."""
    from test_contract import assert_survived, run_guarded
    rc, out = run_guarded("""
        import numpy as np
        from fastnn.kernels._cython import _kernels
        labels = np.zeros(2, np.int64)
        for name in ("softmax_cross_entropy_forward", "softmax_forward", "count_correct"):
            args = {"softmax_forward": (guarded((2, 0)), guarded((2, 0))),
                    "count_correct": (guarded((2, 0)), labels)}.get(
                        name, (guarded((2, 0)), labels, guarded((2, 0))))
            try:
                getattr(_kernels, name)(*args)
                print(name, "returned")
            except ValueError as exc:
                print(name, "refused:", exc)
    """)
    assert_survived(rc, out)
    assert "softmax_cross_entropy_forward refused" in out and "count_correct refused" in out, out
    assert "softmax_forward returned" in out, out


# --- thin GEMMs: a row, a column or a few outputs ------------------------------------------------

THIN = [(1, 1, 1), (1, 1, 5000), (1, 37, 300), (1, 300, 37), (29, 1, 300), (300, 1, 29), (3, 4, 1000),
        (2, 2, 9000), (1, 1, 70000)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thin_products_match_numpy(simd, threads, dtype):
    """Dot / axpy code for thin shapes, every transpose, alpha and beta, the dense epilogue,
    and 1 x 4e6 x 1 (its speed is benchmarks/bench_gemm.py's "1x4000000x1")."""
    rng = np.random.default_rng(4)
    for m, n, k in THIN:
        for ta in (False, True):
            for tb in (False, True):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                want = (a.T if ta else a) @ (b.T if tb else b)
                for alpha, beta in ((1.0, 0.0), (-0.5, 0.25)):
                    c0 = rng.standard_normal((m, n)).astype(dtype)
                    out = c0.copy() if beta else np.full((m, n), np.nan, dtype)
                    cb.gemm(layout(a, "F") if ta else a, b, out, ta, tb, alpha, beta)
                    np.testing.assert_allclose(out, alpha * want + beta * c0, rtol=TOL[dtype] * 10,
                                               atol=TOL[dtype] * np.sqrt(k) * 10)
        x, w, bias = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (n,)))
        y = np.empty((m, n), dtype)
        cb.dense_forward(x, w, bias, y, "tanh")
        np.testing.assert_allclose(y, np.tanh(x @ w + bias), rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    a, b = np.ones((1, 4_000_000), dtype), np.full((4_000_000, 1), 0.5, dtype)
    out = np.empty((1, 1), dtype)
    cb.gemm(a, b, out)
    assert out[0, 0] == 2e6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_through_every_simd_path(simd, dtype):
    """The micro-kernels, packing and epilogues of each SIMD path keep NaN and infinities
    exactly where the reference has them (shapes crossing the micro-tile edges)."""
    from test_kernels import close, specials
    rng = np.random.default_rng(9)
    n, i, o = 37, 41, 29
    x, w, bias = specials(rng, (n, i), dtype, count=6), specials(rng, (i, o), dtype, count=6), \
        specials(rng, (o,), dtype, count=2)
    with np.errstate(all="ignore"):
        for act in K.contract.ACTIVATIONS:
            got, want = np.full((n, o), 7.0, dtype), np.empty((n, o), dtype)
            cb.dense_forward(x, w, bias, got, act, 0.1)
            ref.dense_forward(x, w, bias, want, act, 0.1)
            close(got, want, dtype, scale=i)
            dy = specials(rng, (n, o), dtype, count=4)
            grads = {}
            for mod in (cb, ref):
                outs = [np.zeros(s, dtype) for s in ((n, o), (n, i), (i, o), (o,))]
                mod.dense_backward(x, w, want, dy, *outs, act, 0.1)
                grads[mod] = outs
            for g, r in zip(grads[cb], grads[ref]):
                close(g, r, dtype, scale=max(n, o))
        c0 = specials(rng, (n, o), dtype, count=3)
        for alpha, beta in ((1.0, 0.0), (0.0, 0.0), (2.0, 0.5)):
            got, want = c0.copy(), c0.copy()
            cb.gemm(x, w, got, alpha=alpha, beta=beta)
            ref.gemm(x, w, want, alpha=alpha, beta=beta)
            close(got, want, dtype, scale=i)
