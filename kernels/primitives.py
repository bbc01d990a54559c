"""Tier-1 primitives beyond GEMM: element-wise maps, reductions along an axis, row
gather/scatter-add and batched GEMM, part of the kernel contract (``contract.KERNELS``).

Together with ``gemm``, the activation maps, ``softmax_forward``/``_backward``, ``add``,
``scale_``, ``sum_squares``/``abs_sum`` and ``count_correct`` they are the kernels every
backend implements natively; every other kernel of the contract (tier 2: dense, losses,
batch norm, optimizer updates, ...) has a reference composed of these
(``kernels/reference.py``) that runs on a backend lacking it. NaN and infinities follow
NumPy (``numpy.maximum`` propagates NaN; ``sign(nan)`` is NaN).
"""

import numpy as np

from . import validate as V

UNARY_OPS = ("copy", "exp", "log", "log1p", "sqrt", "abs", "neg", "reciprocal", "square", "sign")
BINARY_OPS = ("add", "sub", "mul", "div", "maximum", "minimum")
# op name -> the integer code compiled kernels branch on: the one table for Numba and CUDA;
# the C enum of fastnn_c.h repeats it (tests/test_primitives.py checks they agree).
UNARY_CODES = {name: code for code, name in enumerate(UNARY_OPS)}
BINARY_CODES = {name: code for code, name in enumerate(BINARY_OPS)}

PRIMITIVES = {
    "unary": "unary(op, x, out): out = op(x) element-wise, op one of UNARY_OPS; any shape; "
             "out may be x itself",
    "binary": "binary(op, a, b, out): out = op(a, b) element-wise, op one of BINARY_OPS; a, b, out "
              "of one shape; out may be a or b itself",
    "reduce_sum": "reduce_sum(x, axis, out): out = x.sum(axis), summed in float64 and rounded once; "
                  "x (N,D); axis 0: out (D,), axis 1: out (N,)",
    "reduce_max": "reduce_max(x, axis, out): out = x.max(axis) (NaN if the line holds one, as "
                  "numpy.max); x (N,D) with the reduced axis non-empty; axis 0: out (D,), axis 1: out (N,)",
    "gather_rows": "gather_rows(x, indices, out): out[i] = x[indices[i]]; x (R,D), indices (N,) int64 "
                   "in [0, R) (checked by the kernel), out (N,D)",
    "scatter_add_rows": "scatter_add_rows(src, indices, out): out[indices[i]] += src[i] for every i "
                        "(repeated indices accumulate), in place on out; src (N,D), indices (N,) int64 "
                        "in [0, R) (checked by the kernel), out (R,D)",
    "gemm_batched": "gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0): "
                    "out[i] = alpha op(a[i]) @ op(b[i]) + beta out[i]; a (B,M,K) or (B,K,M) with "
                    "trans_a, b (B,K,N) or (B,N,K) with trans_b, out (B,M,N)",
}


def _check_unary(op, x, out):
    k = "unary"
    V.choice(k, "op", op, UNARY_OPS)
    V.floating(k, "x", x)
    V.output(k, "out", out, tuple(x.shape), x.dtype)
    V.disjoint(k, [("out", out)], [("x", x)], in_place=(("out", "x"),))


def _check_binary(op, a, b, out):
    k = "binary"
    V.choice(k, "op", op, BINARY_OPS)
    V.floating(k, "a", a)
    V.shaped(k, "b", b, tuple(a.shape), a.dtype)
    V.output(k, "out", out, tuple(a.shape), a.dtype)
    V.disjoint(k, [("out", out)], [("a", a), ("b", b)], in_place=(("out", "a"), ("out", "b")))


def _check_reduce_sum(x, axis, out, k="reduce_sum"):
    V.floating(k, "x", x)
    V.ndim(k, "x", x, 2)
    V.integer(k, "axis", axis)
    if axis not in (0, 1):
        V.fail(k, f"axis must be 0 or 1, got {axis}")
    V.output(k, "out", out, (x.shape[1 - axis],), x.dtype)
    V.disjoint(k, [("out", out)], [("x", x)])


def _check_reduce_max(x, axis, out):
    _check_reduce_sum(x, axis, out, k="reduce_max")
    if x.shape[axis] == 0:
        V.fail("reduce_max", f"x has shape {tuple(x.shape)}: no elements along axis {axis} to take the max of")


def _indices(k, indices, n):
    if not V.is_array(indices) or indices.dtype != np.int64:
        raise TypeError(f"{k}: indices must be an int64 array, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if tuple(indices.shape) != (n,):
        V.fail(k, f"indices has shape {tuple(indices.shape)}, expected ({n},)")


def _check_gather_rows(x, indices, out):
    k = "gather_rows"
    V.floating(k, "x", x)
    V.ndim(k, "x", x, 2)
    V.floating(k, "out", out, x.dtype)
    V.ndim(k, "out", out, 2)
    _indices(k, indices, out.shape[0])
    V.output(k, "out", out, (out.shape[0], x.shape[1]), x.dtype)
    V.disjoint(k, [("out", out)], [("x", x), ("indices", indices)])


def _check_scatter_add_rows(src, indices, out):
    k = "scatter_add_rows"
    V.floating(k, "src", src)
    V.ndim(k, "src", src, 2)
    _indices(k, indices, src.shape[0])
    V.floating(k, "out", out, src.dtype)
    V.ndim(k, "out", out, 2)
    V.output(k, "out", out, (out.shape[0], src.shape[1]), src.dtype)
    V.disjoint(k, [("out", out)], [("src", src), ("indices", indices)])


def _check_gemm_batched(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    k = "gemm_batched"
    V.floating(k, "a", a)
    V.floating(k, "b", b, a.dtype)
    V.ndim(k, "a", a, 3)
    V.ndim(k, "b", b, 3)
    V.flag(k, "trans_a", trans_a)
    V.flag(k, "trans_b", trans_b)
    V.real(k, "alpha", alpha)
    V.real(k, "beta", beta)
    if a.shape[0] != b.shape[0]:
        V.fail(k, f"a holds {a.shape[0]} matrices but b holds {b.shape[0]}")
    m, ka = (a.shape[2], a.shape[1]) if trans_a else a.shape[1:]
    kb, n = (b.shape[2], b.shape[1]) if trans_b else b.shape[1:]
    if ka != kb:
        V.fail(k, f"inner dimensions differ: op(a[i]) is {(m, ka)}, op(b[i]) is {(kb, n)}")
    V.output(k, "out", out, (a.shape[0], m, n), a.dtype)
    V.disjoint(k, [("out", out)], [("a", a), ("b", b)])


PRIMITIVE_CHECKS = {
    "unary": _check_unary,
    "binary": _check_binary,
    "reduce_sum": _check_reduce_sum,
    "reduce_max": _check_reduce_max,
    "gather_rows": _check_gather_rows,
    "scatter_add_rows": _check_scatter_add_rows,
    "gemm_batched": _check_gemm_batched,
}

assert PRIMITIVE_CHECKS.keys() == PRIMITIVES.keys()
