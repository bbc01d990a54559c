"""The contract's checks (``kernels/contract.py``): every argument of every kernel, memory
that outputs share with other arguments, empty batches and rows, and compiled code that
never reads past an array even when it is handed one at the edge of mapped memory.

``run_guarded`` runs a snippet in a fresh interpreter with ``guarded(shape, dtype)``: a
NumPy array whose last byte sits right before a page that may not be touched, so one
element read or written past its end kills that interpreter (SIGSEGV), which the test
reports as a failure instead of losing pytest itself.
"""

import inspect
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn as fnn
import fastnn.kernels as K
from fastnn.kernels import numpy_backend as ref
from fastnn.kernels.contract import KERNELS, ContractError

GUARD_SOURCE = '''
import ctypes, mmap
import numpy as np
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_maps = []

def guarded(shape, dtype=np.float32):
    """A C-contiguous array of ``shape`` whose data ends exactly where a PROT_NONE page starts."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    page = mmap.PAGESIZE
    body = -(-max(nbytes, 1) // page) * page
    region = mmap.mmap(-1, body + page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(region))
    if _libc.mprotect(start + body, page, 0) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed")
    _maps.append(region)
    flat = np.frombuffer(region, np.uint8, count=nbytes, offset=body - nbytes)
    return flat.view(dtype).reshape(shape)
'''


def run_guarded(body, timeout=300):
    """Run ``body`` (after GUARD_SOURCE) in a new interpreter; (returncode, output)."""
    env = dict(os.environ, PYTHONFAULTHANDLER="0")
    proc = subprocess.run([sys.executable, "-c", GUARD_SOURCE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def assert_survived(rc, out):
    assert rc == 0, f"the interpreter died (exit status {rc}; -11 is SIGSEGV):\n{out[-3000:]}"


# --- rows with no columns, at the edge of mapped memory -------------------------------------------

@pytest.mark.parametrize("name", [n for n in ("python", "numpy", "numba", "cython") if n in K.available()])
def test_softmax_of_rows_with_no_columns_is_refused_and_never_read(name):
    rc, out = run_guarded(f"""
        import fastnn as fnn
        import fastnn.kernels as K
        from fastnn.kernels.contract import ContractError
        x = guarded((3, 0))
        try:
            fnn.Softmax(backend={name!r}).forward(x)
        except ContractError as exc:
            print("REFUSED", exc)
        module = K.get({name!r}).module         # the raw kernel: must not read x[0] either
        try:
            module.softmax_forward(x, guarded((3, 0)))
        except ValueError:
            pass
        print("RAW OK")
    """)
    assert_survived(rc, out)
    assert "REFUSED softmax_forward: x has shape (3, 0)" in out and "RAW OK" in out, out


# --- every argument of every kernel is checked ----------------------------------------------------

def _f(*shape):
    return np.full(shape, 0.5, np.float32)


def _labels(*values):
    return np.array(values, np.int64)


# name -> a valid call; the tests below spoil one argument at a time
VALID = {
    "gemm": lambda: (_f(3, 4), _f(4, 2), _f(3, 2), False, False, 1.0, 0.0),
    "dense_forward": lambda: (_f(3, 4), _f(4, 2), _f(2), _f(3, 2), "relu", 0.01),
    "dense_backward": lambda: (_f(3, 4), _f(4, 2), _f(3, 2), _f(3, 2), _f(3, 2), _f(3, 4), _f(4, 2),
                               _f(2), "tanh", 0.01),
    "relu_forward": lambda: (_f(3, 2), _f(3, 2)),
    "relu_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "leaky_relu_forward": lambda: (_f(3, 2), _f(3, 2), 0.1),
    "leaky_relu_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2), 0.1),
    "sigmoid_forward": lambda: (_f(3, 2), _f(3, 2)),
    "sigmoid_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "tanh_forward": lambda: (_f(3, 2), _f(3, 2)),
    "tanh_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "softmax_forward": lambda: (_f(3, 2), _f(3, 2)),
    "softmax_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "softmax_cross_entropy_forward": lambda: (_f(3, 2), _labels(0, 1, 1), _f(3, 2)),
    "softmax_cross_entropy_backward": lambda: (_f(3, 2), _labels(0, 1, 1), _f(3, 2)),
    "mse_forward": lambda: (_f(3, 2), _f(3, 2)),
    "mse_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "bce_with_logits_forward": lambda: (_f(3, 2), _f(3, 2)),
    "bce_with_logits_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "count_correct": lambda: (_f(3, 2), _labels(0, 1, 1)),
    "dropout_forward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "dropout_backward": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "add": lambda: (_f(3, 2), _f(3, 2), _f(3, 2)),
    "batchnorm_forward": lambda: (_f(3, 2), _f(2), _f(2), _f(3, 2), _f(3, 2), _f(2), _f(2), _f(2),
                                  0.1, 1e-5),
    "batchnorm_inference": lambda: (_f(3, 2), _f(2), _f(2), _f(2), _f(2), 1e-5, _f(3, 2)),
    "batchnorm_backward": lambda: (_f(3, 2), _f(2), _f(2), _f(3, 2), _f(3, 2), _f(2), _f(2)),
    "sgd_update": lambda: (_f(3, 2), _f(3, 2), _f(3, 2), 0.1, 0.9, 0.0, False),
    "adam_update": lambda: (_f(3, 2), _f(3, 2), _f(3, 2), _f(3, 2), 0.1, 0.9, 0.999, 1e-8, 0.0, 1, False),
    "sum_squares": lambda: (_f(3, 2),),
    "abs_sum": lambda: (_f(3, 2),),
    "scale_": lambda: (_f(3, 2), 0.5),
    "penalty_grad": lambda: (_f(3, 2), _f(3, 2), 0.1, 0.01),
    "unary": lambda: ("exp", _f(3, 2), _f(3, 2)),
    "binary": lambda: ("mul", _f(3, 2), _f(3, 2), _f(3, 2)),
    "reduce_sum": lambda: (_f(3, 2), 0, _f(2)),
    "reduce_max": lambda: (_f(3, 2), 1, _f(3)),
    "gather_rows": lambda: (_f(3, 2), _labels(2, 0), _f(2, 2)),
    "scatter_add_rows": lambda: (_f(2, 2), _labels(2, 0), _f(3, 2)),
    "gemm_batched": lambda: (_f(2, 3, 4), _f(2, 4, 5), _f(2, 3, 5)),
    "conv2d_forward": lambda: (_f(2, 3, 5, 5), _f(4, 3, 3, 3), _f(4), _f(2, 4, 3, 3), (1, 1), (0, 0)),
    "conv2d_backward": lambda: (_f(2, 3, 5, 5), _f(4, 3, 3, 3), _f(2, 4, 3, 3), _f(2, 3, 5, 5),
                                _f(4, 3, 3, 3), _f(4), (1, 1), (0, 0)),
    "maxpool2d_forward": lambda: (_f(2, 3, 4, 4), _f(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64),
                                  (2, 2), (2, 2)),
    "maxpool2d_backward": lambda: (_f(2, 3, 2, 2), np.zeros((2, 3, 2, 2), np.int64), _f(2, 3, 4, 4)),
    "avgpool2d_forward": lambda: (_f(2, 3, 4, 4), _f(2, 3, 2, 2), (2, 2), (2, 2)),
    "avgpool2d_backward": lambda: (_f(2, 3, 2, 2), _f(2, 3, 4, 4), (2, 2), (2, 2)),
}
SHAPELESS = {"sum_squares", "abs_sum", "scale_"}      # any shape is right for these


def _params(name):
    return list(inspect.signature(getattr(ref, name)).parameters)


def _spoiled(kind):
    """pytest params (kernel, argument name, arguments with that one spoiled, expected error)
    for every argument that ``kind`` applies to."""
    cases = []
    for kernel in sorted(VALID):
        args = VALID[kernel]()
        for pos, value in enumerate(args):
            bad = list(args)
            if isinstance(value, np.ndarray) and kind in ("list", "dtype", "shape"):
                if kind == "shape" and kernel in SHAPELESS:
                    continue
                bad[pos] = {"list": value.tolist(),
                            "dtype": value.astype(np.int32 if value.dtype == np.int64 else np.float16),
                            "shape": np.zeros(value.shape + (2,), value.dtype)}[kind]
            elif not isinstance(value, np.ndarray) and kind == "scalar":
                bad[pos] = [value] if isinstance(value, str) else "0.5"
            else:
                continue
            arg = _params(kernel)[pos]
            error = ContractError if kind == "shape" else TypeError
            cases.append(pytest.param(kernel, arg, bad, error, id=f"{kernel}-{arg}-{kind}"))
    return cases


assert VALID.keys() == KERNELS.keys()


@pytest.mark.parametrize("kernel,arg,args,error",
                         [c for kind in ("list", "dtype", "scalar", "shape") for c in _spoiled(kind)])
def test_every_argument_of_every_kernel_is_checked(backend, kernel, arg, args, error):
    """A list for an array, a wrong dtype or a string for a number is a TypeError; a wrong
    shape a ContractError; each names the kernel (and for types the argument)."""
    K.contract.check(kernel, *VALID[kernel]())            # the unspoiled call is fine
    pattern = rf"^{kernel}\b.*\b{arg}\b" if error is TypeError else rf"^{kernel}: "
    with pytest.raises(error, match=pattern):
        getattr(backend, kernel)(*args)


def test_step_and_flags_are_checked(reference):
    p = _f(3)
    with pytest.raises(TypeError, match="adam_update: step must be an integer"):
        reference.adam_update(p, _f(3), _f(3), _f(3), 0.1, 0.9, 0.999, 1e-8, 0.0, 1.5, False)
    with pytest.raises(TypeError, match="gemm: trans_a must be a bool"):
        reference.gemm(_f(2, 2), _f(2, 2), _f(2, 2), trans_a="yes")
    with pytest.raises(TypeError, match="dense_forward: activation must be a string"):
        reference.dense_forward(_f(2, 2), _f(2, 2), _f(2), _f(2, 2), None)


# --- outputs that overlap other arguments ---------------------------------------------------------

def _overlapping_calls():
    buf = np.zeros(64, np.float32)
    x = _f(4, 4)
    return [
        ("gemm", (x, _f(4, 4), x)),                                          # out is a
        ("gemm", (buf[:16].reshape(4, 4), _f(4, 4), buf[8:24].reshape(4, 4))),  # partly a
        ("dense_forward", (x, _f(4, 4), _f(4), x)),
        ("dense_backward", (x, _f(4, 4), _f(4, 4), _f(4, 4), _f(4, 4), x, _f(4, 4), _f(4))),  # dx is x
        ("dense_backward", (x, x, _f(4, 4), _f(4, 4), _f(4, 4), None, x, _f(4))),          # dw is x, w
        ("dense_backward", (_f(4, 4), _f(4, 4), _f(4, 4), _f(4, 4), buf[:16].reshape(4, 4), None,
                            buf[12:28].reshape(4, 4), _f(4))),                # dz overlaps dw
        ("relu_forward", (buf[:16], buf[1:17])),                              # shifted by one
        ("sigmoid_backward", (x, _f(4, 4), x)),
        ("softmax_forward", (x, x)),
        ("softmax_cross_entropy_backward", (x, _labels(0, 1, 2, 3), x)),
        ("bce_with_logits_backward", (x, _f(4, 4), x)),
        ("mse_backward", (_f(4, 4), x, x)),
        ("add", (_f(4, 4), x, x)),                                            # out is b
        ("add", (buf[:16].reshape(4, 4), _f(4, 4), buf[4:20].reshape(4, 4))),  # partly a
        ("dropout_forward", (_f(4, 4), x, x)),
        ("batchnorm_forward", (x, _f(4), _f(4), _f(4, 4), _f(4, 4), buf[:4], buf[:4], _f(4), 0.1, 1e-5)),
        ("batchnorm_backward", (x, _f(4), _f(4), _f(4, 4), x, _f(4), _f(4))),
        ("sgd_update", (x, x, _f(4, 4), 0.1, 0.9, 0.0, False)),               # g is p
        ("adam_update", (x, _f(4, 4), _f(4, 4), x, 0.1, 0.9, 0.999, 1e-8, 0.0, 1, False)),
        ("penalty_grad", (x, x, 0.1, 0.1)),
    ]


@pytest.mark.parametrize("case", range(len(_overlapping_calls())))
def test_outputs_overlapping_other_arguments_are_refused(backend, case):
    name, args = _overlapping_calls()[case]
    with pytest.raises(ContractError, match=rf"^{name}: output \w+ overlaps"):
        getattr(backend, name)(*args)
    _the_named_in_place_forms_and_disjoint_neighbours_are_accepted(backend)


def _the_named_in_place_forms_and_disjoint_neighbours_are_accepted(backend):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    y, dy = x @ w, rng.standard_normal((4, 5))
    dz, dw, db = dy.copy(), np.empty((3, 5)), np.empty(5)
    backend.dense_backward(x, w, y, dz, dz, None, dw, db)          # dz may be dy itself
    np.testing.assert_allclose(dw, x.T @ dy, rtol=1e-12)
    buf = np.zeros(32)                                             # one buffer, disjoint parts
    a, out = buf[:12].reshape(4, 3), buf[12:32].reshape(4, 5)
    a[...] = x
    backend.gemm(a, w, out)
    np.testing.assert_allclose(out, x @ w, rtol=1e-12)
    acc, more = x.copy(), rng.standard_normal((4, 3))
    backend.add(acc, more, acc)                                    # out may be a itself
    np.testing.assert_array_equal(acc, x + more)
    p, g, v = np.ones(4), np.full(4, 0.5), np.zeros(4)
    backend.sgd_update(p, g, v, 0.1, 0.9, 0.0, False)
    backend.scale_(p, 2.0)
    backend.penalty_grad(p, g, 0.1, 0.0)
    np.testing.assert_allclose(p, 2 * (1 - 0.05))
    np.testing.assert_allclose(g, 0.6)


# --- empty batches and rows without classes -------------------------------------------------------

EMPTY_CALLS = [
    ("softmax_cross_entropy_forward", lambda: (_f(0, 3), _labels(), _f(0, 3))),
    ("softmax_cross_entropy_forward", lambda: (_f(2, 0), _labels(0, 0), _f(2, 0))),
    ("softmax_cross_entropy_backward", lambda: (_f(0, 3), _labels(), _f(0, 3))),
    ("softmax_forward", lambda: (_f(2, 0), _f(2, 0))),
    ("softmax_backward", lambda: (_f(2, 0), _f(2, 0), _f(2, 0))),
    ("count_correct", lambda: (_f(2, 0), _labels(0, 0))),
    ("mse_forward", lambda: (_f(0, 2), _f(0, 2))),
    ("bce_with_logits_backward", lambda: (_f(0, 2), _f(0, 2), _f(0, 2))),
    ("batchnorm_forward", lambda: (_f(0, 2), _f(2), _f(2), _f(0, 2), _f(0, 2), _f(2), _f(2), _f(2),
                                   0.1, 1e-5)),
    ("batchnorm_backward", lambda: (_f(0, 2), _f(2), _f(2), _f(0, 2), _f(0, 2), _f(2), _f(2))),
]


@pytest.mark.parametrize("name,args", EMPTY_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EMPTY_CALLS)])
def test_empty_batches_and_rows_without_classes_are_refused(backend, name, args):
    with pytest.raises(ContractError, match=rf"^{name}: "):
        getattr(backend, name)(*args())
    # empty inputs that mean something still work
    assert backend.count_correct(_f(0, 3), _labels()) == 0
    assert backend.sum_squares(_f(0)) == 0.0
    out = np.full((2, 3), np.nan, np.float32)
    backend.gemm(_f(2, 0), _f(0, 3), out)                   # an empty sum is 0
    np.testing.assert_array_equal(out, 0)


# --- gradcheck checks the model it is given ----------------------------------------------------------

def _direct_weight_error(model, x):
    """Relative error of model.backward's weight gradient against central differences of the
    model itself (float64 model, no copies)."""
    R = np.random.default_rng(1).standard_normal(model.forward(x).shape)
    model.forward(x)
    model.backward(R)
    weight = model.parameters()[0]
    analytic, numeric = weight.grad.copy(), np.zeros(weight.shape)
    data = weight.data.copy()
    for i in range(data.size):
        values = []
        for h in (1e-6, -1e-6):
            d = data.copy()
            d.reshape(-1)[i] += h
            weight.data = d
            values.append(float(np.sum(model.forward(x) * R)))
        numeric.reshape(-1)[i] = (values[0] - values[1]) / 2e-6
    weight.data = data
    return np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))


def test_gradcheck_checks_shared_layers_as_they_are_shared():
    """Two layers sharing one weight: gradcheck must judge the model as it computes, on a
    float64 deep copy that keeps the weight shared (it once rebuilt the model from its
    config, which would make two independent weights, and passed on anything)."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    d1 = fnn.Dense(4, 4, backend="numpy", dtype="float64", seed=0)
    d2 = fnn.Dense(4, 4, backend="numpy", dtype="float64", seed=1)
    d2.weight = d1.weight
    model = fnn.Sequential([d1, fnn.Tanh(), d2], backend="numpy", dtype="float64", seed=0)
    assert len(model.parameters()) == 3                      # the shared weight once
    truth = _direct_weight_error(model, x)
    before = [p.data.copy() for p in model.parameters()]
    grad_before = model.parameters()[0].grad.copy()
    reported = fnn.gradcheck(model, x)
    assert truth < 1e-6 and reported < 1e-6, (reported, truth)   # both gradients summed
    for p, b in zip(model.parameters(), before):             # the model itself is untouched
        np.testing.assert_array_equal(p.data, b)
    np.testing.assert_array_equal(model.parameters()[0].grad, grad_before)
    assert model.layers[0].weight is model.layers[2].weight
    from fastnn.gradcheck import _float64_copy               # what gradcheck checks: still shared
    for dtype in ("float64", "float32"):
        clone = _float64_copy(model.to(dtype=dtype))
        assert clone[0].weight is clone[2].weight and clone[0].weight is not model[0].weight
    model.to(dtype="float64")
    # the shared weight's gradient is the sum of what two unshared copies get
    unshared = fnn.Sequential([fnn.Dense(4, 4), fnn.Tanh(), fnn.Dense(4, 4)], backend="numpy",
                              dtype="float64")
    for p, q in zip(unshared.parameters(), [d1.weight, d1.bias, d1.weight, d2.bias]):
        p.data = q.data
    R = np.random.default_rng(1).standard_normal((3, 4))
    for m in (model, unshared):
        m.zero_grad()
        m.forward(x)
        m.backward(R)
    np.testing.assert_allclose(model[0].weight.grad, unshared[0].weight.grad + unshared[2].weight.grad,
                               rtol=1e-12)
    assert not np.allclose(model[0].weight.grad, unshared[2].weight.grad)
    # a float32 model is checked in float64 and left float32
    model = fnn.Sequential([fnn.Dense(3, 2), fnn.Tanh()], backend="numpy", seed=0)
    assert fnn.gradcheck(model, np.random.default_rng(0).standard_normal((2, 3))) < 1e-6
    assert model.dtype == np.float32 and model.parameters()[0].data.dtype == np.float32
