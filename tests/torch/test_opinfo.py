"""OpInfo-style sweep: chainrule.torch functions and tensor methods against real PyTorch.

Each entry of ``OPS`` names a ``torch`` function (and, when ``method`` is set, the tensor
method of the same name) and how to make its arguments from a seeded generator. For float32
and float64 (and int64 where meaningful) the test calls both libraries on the same values and
compares values, shapes and dtypes; for differentiable ops it compares the gradients of a
randomly weighted sum of the output with respect to every floating input (``backward()``).
In-place variants are checked in ``test_inplace_variant_matches``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

import chainrule.torch as ct

torch_ref = pytest.importorskip("torch")

F32, F64, I64 = "float32", "float64", "int64"


@dataclasses.dataclass
class Op:
    """One function under test: how to make its arguments, and what to compare."""

    name: str
    make: Callable  # (rng, dtype) -> (args, kwargs); NumPy arrays become tensors
    grad: bool = True
    dtypes: tuple = (F32, F64)
    method: bool = True
    grad_args: tuple = (0,)  # which positional arguments are differentiated
    rtol: float = 1e-5
    atol: float = 1e-6
    inplace: bool = False  # also check ``name_``


def _x(*shape, low=-2.0, high=2.0):
    def make(rng, dtype):
        return _draw(rng, shape, dtype, low, high)

    return make


def _draw(rng, shape, dtype, low=-2.0, high=2.0):
    if dtype == I64:
        return rng.integers(int(low) - 1, int(high) + 2, size=shape).astype(np.int64)
    return rng.uniform(low, high, size=shape).astype(dtype)


def unary(name, low=-2.0, high=2.0, **kw):
    return Op(name, lambda rng, dt: ((_draw(rng, (3, 4), dt, low, high),), {}), **kw)


def binary(name, low=-2.0, high=2.0, shape2=(4,), **kw):
    kw.setdefault("grad_args", (0, 1))

    def make(rng, dt):
        return (_draw(rng, (3, 4), dt, low, high), _draw(rng, shape2, dt, low, high)), {}

    return Op(name, make, **kw)


def call(make_args, **kw):
    return lambda name, **more: Op(name, make_args, **{**kw, **more})


def _idx(rng, high, shape):
    return rng.integers(0, high, size=shape).astype(np.int64)


def _with(make, value):
    """``make(rng, dtype, value)`` as a two-argument maker (binds a loop value)."""
    return lambda rng, dtype: make(rng, dtype, value)


def _scatter_reduce_case(reduce, include_self):
    def make(rng, dtype):
        index = np.array([[0, 0, 2], [1, 3, 3], [2, 2, 2]])
        args = (_draw(rng, (3, 4), dtype), 1, index, _draw(rng, (3, 3), dtype), reduce)
        return args, {"include_self": include_self}

    return make


ALL = (F32, F64, I64)
OPS = [
    # elementwise, unary
    *[
        unary(n, inplace=True)
        for n in ["abs", "neg", "negative", "sin", "cos", "tanh", "sigmoid", "exp", "expm1"]
    ],
    *[unary(n, inplace=True) for n in ["sinh", "cosh", "atan", "arctan", "asinh", "arcsinh"]],
    *[unary(n, inplace=True) for n in ["erf", "erfc", "exp2", "sinc", "deg2rad", "rad2deg"]],
    *[unary(n, low=-0.9, high=0.9, inplace=True) for n in ["acos", "asin", "atanh", "erfinv"]],
    *[unary(n, low=-0.9, high=0.9) for n in ["arccos", "arcsin", "arctanh"]],
    unary("acosh", low=1.1, high=3, inplace=True),
    unary("tan", low=-1.2, high=1.2, inplace=True),
    *[unary(n, low=0.1, high=3, inplace=True) for n in ["log", "log2", "log10", "sqrt", "rsqrt"]],
    unary("log1p", low=-0.5, high=3, inplace=True),
    unary("reciprocal", low=0.5, high=3, inplace=True),
    unary("square", inplace=True),
    unary("logit", low=0.05, high=0.95, inplace=True),
    unary("lgamma", low=-3.5, high=6, rtol=1e-4, atol=1e-5, inplace=True),
    unary("lgamma", low=0.2, high=30, rtol=1e-4, atol=1e-4),
    unary("digamma", low=0.2, high=20, rtol=1e-4, atol=1e-5, inplace=True),
    unary("digamma", low=-3.9, high=-0.1, rtol=1e-3, atol=1e-4),
    unary("i0", low=-3, high=3, rtol=1e-5, atol=1e-5, inplace=True),
    Op(
        "polygamma",
        lambda r, d: ((1, _draw(r, (3, 4), d, 0.5, 5)), {}),
        method=False,
        grad_args=(1,),
        rtol=1e-4,
        atol=1e-4,
    ),
    Op("mvlgamma", lambda r, d: ((_draw(r, (3, 4), d, 2.0, 5),), {"p": 3}), rtol=1e-4, atol=1e-4),
    *[unary(n, grad=False, dtypes=ALL, inplace=True) for n in ["ceil", "floor", "trunc", "fix"]],
    unary("frac", inplace=True),
    unary("round", grad=False, dtypes=ALL),
    Op(
        "round",
        lambda r, d: ((_draw(r, (3, 4), d, -20, 20),), {"decimals": 1}),
        grad=False,
        method=False,
    ),
    unary("sign", grad=False, dtypes=ALL, inplace=True),
    unary("sgn", grad=False, dtypes=ALL),
    unary("signbit", grad=False, dtypes=ALL),
    unary("positive", dtypes=ALL),
    unary("angle", grad=False, dtypes=(F32, F64)),
    *[
        unary(n, grad=False, dtypes=ALL)
        for n in ["isnan", "isinf", "isfinite", "isneginf", "isposinf", "isreal"]
    ],
    unary("relu", dtypes=(F32, F64), inplace=True),
    Op(
        "nan_to_num",
        lambda r, d: ((np.array([np.nan, np.inf, -np.inf, 1.5], d),), {"nan": 2.0}),
        grad=False,
    ),
    unary("bitwise_not", grad=False, dtypes=(I64,)),
    unary("logical_not", grad=False, dtypes=ALL),
    # elementwise, binary
    *[binary(n, dtypes=ALL, inplace=True) for n in ["add", "sub", "mul", "subtract", "multiply"]],
    *[binary(n, low=0.5, high=3, inplace=True) for n in ["div", "divide", "true_divide"]],
    binary("maximum", dtypes=ALL),
    binary("minimum", dtypes=ALL),
    binary("fmax", dtypes=ALL),
    binary("fmin", dtypes=ALL),
    binary("atan2", inplace=True),
    binary("arctan2"),
    binary("hypot", inplace=True),
    binary("logaddexp"),
    binary("logaddexp2"),
    binary("copysign", grad_args=(0,)),
    binary("pow", low=0.5, high=2, inplace=True),
    binary("float_power", low=0.5, high=2, grad=False),
    binary("xlogy", low=0.2, high=2, inplace=True),
    binary("fmod", low=0.5, high=5, grad_args=(0,), dtypes=ALL),
    binary("remainder", low=0.5, high=5, grad_args=(0,), dtypes=ALL),
    binary("floor_divide", low=0.5, high=5, grad=False, dtypes=ALL),
    *[
        binary(n, grad=False, dtypes=ALL)
        for n in [
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "greater",
            "greater_equal",
            "less",
            "less_equal",
            "not_equal",
            "logical_and",
            "logical_or",
            "logical_xor",
        ]
    ],
    *[
        binary(n, grad=False, dtypes=(I64,))
        for n in ["bitwise_and", "bitwise_or", "bitwise_xor", "gcd", "lcm"]
    ],
    binary("heaviside", grad=False),
    binary("nextafter", grad=False, dtypes=(F64,)),
    Op(
        "lerp",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3, 4), d), 0.3), {}),
        grad_args=(0, 1),
        inplace=True,
    ),
    Op(
        "addcmul",
        lambda r, d: (
            (_draw(r, (3, 4), d), _draw(r, (3, 4), d), _draw(r, (4,), d)),
            {"value": 0.5},
        ),
        grad_args=(0, 1, 2),
        inplace=True,
    ),
    Op(
        "addcdiv",
        lambda r, d: (
            (_draw(r, (3, 4), d), _draw(r, (3, 4), d), _draw(r, (4,), d, 0.5, 2)),
            {"value": 2},
        ),
        grad_args=(0, 1, 2),
    ),
    Op(
        "clamp",
        lambda r, d: ((_draw(r, (3, 4), d),), {"min": -0.5, "max": 0.7}),
        dtypes=ALL,
        inplace=True,
    ),
    Op("clamp_min", lambda r, d: ((_draw(r, (3, 4), d), 0.2), {}), inplace=True),
    Op("clamp_max", lambda r, d: ((_draw(r, (3, 4), d), 0.2), {}), inplace=True),
    # (float exponents: PyTorch's gradient for an int64 exponent rounds 2**-k down to 0)
    Op("ldexp", lambda r, d: ((_draw(r, (3, 4), d), r.integers(-2, 3, (4,)).astype(d)), {})),
    Op(
        "isclose",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3, 4), d)), {"atol": 0.5}),
        grad=False,
    ),
    Op(
        "dist",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3, 4), d)), {"p": 3}),
        grad_args=(0, 1),
    ),
    # reductions
    Op("amax", lambda r, d: ((_draw(r, (3, 4, 2), d),), {"dim": (0, 2)}), dtypes=ALL),
    Op("amin", lambda r, d: ((_draw(r, (3, 4, 2), d),), {"dim": 1, "keepdim": True}), dtypes=ALL),
    Op("aminmax", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), dtypes=ALL),
    Op("prod", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), dtypes=ALL),
    Op("prod", lambda r, d: ((_draw(r, (3, 4), d),), {}), dtypes=ALL),
    Op("cumsum", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), dtypes=ALL),
    Op("cumprod", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 0}), dtypes=ALL),
    Op("logcumsumexp", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), method=False),
    Op("logsumexp", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1, "keepdim": True})),
    Op("cummax", lambda r, d: ((_draw(r, (3, 5), d),), {"dim": 1}), dtypes=ALL, method=False),
    Op("cummin", lambda r, d: ((_draw(r, (3, 5), d),), {"dim": 0}), dtypes=ALL, method=False),
    Op("median", lambda r, d: ((_draw(r, (3, 5), d),), {"dim": 1}), dtypes=ALL),
    Op("median", lambda r, d: ((_draw(r, (4, 4), d),), {}), dtypes=ALL),
    Op(
        "nanmedian",
        lambda r, d: (
            (np.where(r.random((3, 5)) < 0.3, np.nan, _draw(r, (3, 5), d)).astype(d),),
            {"dim": 1},
        ),
    ),
    Op(
        "mode",
        lambda r, d: ((r.integers(0, 3, (3, 6)).astype(d),), {"dim": 1}),
        grad=False,
        dtypes=ALL,
    ),
    Op(
        "kthvalue",
        lambda r, d: (((r.permutation(15).reshape(3, 5) - 7).astype(d), 2), {"dim": 1}),
        dtypes=ALL,
    ),
    Op("quantile", lambda r, d: ((_draw(r, (3, 5), d), 0.3), {"dim": 1})),
    Op(
        "quantile",
        lambda r, d: (
            (_draw(r, (3, 5), d), np.array([0.25, 0.5, 0.9], d)),
            {"dim": 0, "keepdim": True, "interpolation": "midpoint"},
        ),
        grad=False,
    ),
    Op(
        "nanquantile",
        lambda r, d: (
            (np.where(r.random((3, 5)) < 0.3, np.nan, _draw(r, (3, 5), d)).astype(d), 0.6),
            {"dim": 1},
        ),
    ),
    Op(
        "nansum",
        lambda r, d: (
            (np.where(r.random((3, 5)) < 0.3, np.nan, _draw(r, (3, 5), d)).astype(d),),
            {"dim": 1},
        ),
    ),
    Op(
        "nanmean",
        lambda r, d: (
            (np.where(r.random((3, 5)) < 0.3, np.nan, _draw(r, (3, 5), d)).astype(d),),
            {"dim": 0},
        ),
    ),
    Op(
        "count_nonzero",
        lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {"dim": 0}),
        grad=False,
        dtypes=ALL,
    ),
    Op("std_mean", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), method=False),
    Op(
        "var_mean", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 0, "correction": 0}), method=False
    ),
    Op(
        "all",
        lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {"dim": 1}),
        grad=False,
        dtypes=ALL,
        method=False,
    ),
    Op(
        "any",
        lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {"dim": 0}),
        grad=False,
        dtypes=ALL,
        method=False,
    ),
    Op("norm", lambda r, d: ((_draw(r, (3, 4), d),), {"p": 3, "dim": 1})),
    Op("norm", lambda r, d: ((_draw(r, (3, 4), d),), {})),
    Op("renorm", lambda r, d: ((_draw(r, (3, 4), d), 2, 0, 1.0), {})),
    Op("trace", lambda r, d: ((_draw(r, (4, 4), d),), {}), dtypes=ALL),
    Op("diff", lambda r, d: ((_draw(r, (3, 5), d),), {"n": 2, "dim": 1}), dtypes=ALL),
    Op("histc", lambda r, d: ((_draw(r, (20,), d),), {"bins": 5, "min": -1, "max": 1}), grad=False),
    Op(
        "bincount",
        lambda r, d: ((r.integers(0, 5, (12,)),), {"minlength": 7}),
        grad=False,
        dtypes=(I64,),
    ),
    # products
    Op("mm", lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (4, 2), d)), {}), grad_args=(0, 1)),
    Op("mv", lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (4,), d)), {}), grad_args=(0, 1)),
    Op(
        "dot",
        lambda r, d: ((_draw(r, (4,), d), _draw(r, (4,), d)), {}),
        grad_args=(0, 1),
        dtypes=ALL,
    ),
    Op("vdot", lambda r, d: ((_draw(r, (4,), d), _draw(r, (4,), d)), {}), grad_args=(0, 1)),
    Op("inner", lambda r, d: ((_draw(r, (2, 4), d), _draw(r, (3, 4), d)), {}), grad_args=(0, 1)),
    Op("outer", lambda r, d: ((_draw(r, (3,), d), _draw(r, (4,), d)), {}), grad_args=(0, 1)),
    Op("ger", lambda r, d: ((_draw(r, (3,), d), _draw(r, (4,), d)), {}), grad_args=(0, 1)),
    Op(
        "addmm",
        lambda r, d: (
            (_draw(r, (3, 2), d), _draw(r, (3, 4), d), _draw(r, (4, 2), d)),
            {"beta": 0.5, "alpha": 2},
        ),
        grad_args=(0, 1, 2),
        inplace=True,
    ),
    Op(
        "addmv",
        lambda r, d: ((_draw(r, (3,), d), _draw(r, (3, 4), d), _draw(r, (4,), d)), {}),
        grad_args=(0, 1, 2),
    ),
    Op(
        "addr",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3,), d), _draw(r, (4,), d)), {"alpha": 3}),
        grad_args=(0, 1, 2),
    ),
    Op(
        "baddbmm",
        lambda r, d: (
            (_draw(r, (2, 3, 2), d), _draw(r, (2, 3, 4), d), _draw(r, (2, 4, 2), d)),
            {"beta": 0},
        ),
        grad_args=(0, 1, 2),
    ),
    Op(
        "addbmm",
        lambda r, d: ((_draw(r, (3, 2), d), _draw(r, (2, 3, 4), d), _draw(r, (2, 4, 2), d)), {}),
        grad_args=(0, 1, 2),
    ),
    Op(
        "bmm", lambda r, d: ((_draw(r, (2, 3, 4), d), _draw(r, (2, 4, 2), d)), {}), grad_args=(0, 1)
    ),
    Op("kron", lambda r, d: ((_draw(r, (2, 3), d), _draw(r, (2, 2), d)), {}), grad_args=(0, 1)),
    Op(
        "cross",
        lambda r, d: ((_draw(r, (4, 3), d), _draw(r, (4, 3), d)), {"dim": 1}),
        grad_args=(0, 1),
    ),
    Op(
        "tensordot",
        lambda r, d: ((_draw(r, (3, 4, 2), d), _draw(r, (4, 2, 5), d)), {"dims": 2}),
        grad_args=(0, 1),
        method=False,
    ),
    Op("matrix_power", lambda r, d: ((_draw(r, (3, 3), d), 3), {})),
    Op("matrix_exp", lambda r, d: ((_draw(r, (3, 3), d, -1, 1),), {}), rtol=1e-4, atol=1e-5),
    Op("det", lambda r, d: ((_draw(r, (3, 3), d),), {}), rtol=1e-4, atol=1e-5),
    Op(
        "logdet",
        lambda r, d: ((_draw(r, (3, 3), d) + 4 * np.eye(3, dtype=d),), {}),
        rtol=1e-4,
        atol=1e-5,
    ),
    Op("slogdet", lambda r, d: ((_draw(r, (3, 3), d),), {}), rtol=1e-4, atol=1e-5),
    Op(
        "inverse",
        lambda r, d: ((_draw(r, (3, 3), d) + 4 * np.eye(3, dtype=d),), {}),
        rtol=1e-4,
        atol=1e-5,
    ),
    Op("pinverse", lambda r, d: ((_draw(r, (3, 2), d),), {}), rtol=1e-4, atol=1e-5),
    Op("cov", lambda r, d: ((_draw(r, (3, 6), d),), {"correction": 0})),
    Op("corrcoef", lambda r, d: ((_draw(r, (3, 6), d),), {}), rtol=1e-4, atol=1e-5),
    Op(
        "cdist",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (5, 4), d)), {}),
        grad_args=(0, 1),
        method=False,
    ),
    Op("trapezoid", lambda r, d: ((_draw(r, (3, 5), d),), {"dx": 0.5}), method=False),
    # (no gradient check: PyTorch's own vander backward fails on its in-place cumprod)
    Op(
        "vander",
        lambda r, d: ((_draw(r, (4,), d),), {"N": 3}),
        method=False,
        dtypes=ALL,
        grad=False,
    ),
    # indexing, gather and scatter
    Op("gather", lambda r, d: ((_draw(r, (3, 4), d), 1, _idx(r, 4, (3, 6))), {}), dtypes=ALL),
    Op("take_along_dim", lambda r, d: ((_draw(r, (3, 4), d), _idx(r, 3, (2, 4))), {"dim": 0})),
    Op("take", lambda r, d: ((_draw(r, (3, 4), d), _idx(r, 12, (2, 5))), {}), dtypes=ALL),
    Op("index_select", lambda r, d: ((_draw(r, (3, 4), d), 1, _idx(r, 4, (5,))), {}), dtypes=ALL),
    Op(
        "scatter_add",
        lambda r, d: ((_draw(r, (3, 4), d), 1, _idx(r, 4, (3, 5)), _draw(r, (3, 5), d)), {}),
        grad_args=(0, 3),
        dtypes=ALL,
        inplace=True,
    ),
    Op(
        "scatter",
        lambda r, d: ((_draw(r, (3, 4), d), 0, np.array([[0, 1, 2, 0]]), _draw(r, (1, 4), d)), {}),
        grad_args=(0, 3),
        dtypes=ALL,
        inplace=True,
    ),
    Op(
        "scatter",
        lambda r, d: ((_draw(r, (3, 4), d), 1, np.array([[0], [3], [1]]), 1.5), {}),
        grad_args=(0,),
    ),
    *[
        Op(
            "scatter_reduce",
            _scatter_reduce_case(red, inc),
            grad_args=(0, 3),
            grad=red in ("sum", "mean"),
            dtypes=(F32, F64),
        )
        for red in ("sum", "prod", "mean", "amax", "amin")
        for inc in (True, False)
    ],
    Op(
        "index_add",
        lambda r, d: (
            (_draw(r, (3, 4), d), 0, np.array([0, 2, 0]), _draw(r, (3, 4), d)),
            {"alpha": 2},
        ),
        grad_args=(0, 3),
        dtypes=ALL,
        inplace=True,
    ),
    Op(
        "index_copy",
        lambda r, d: ((_draw(r, (3, 4), d), 1, np.array([3, 0]), _draw(r, (3, 2), d)), {}),
        grad_args=(0, 3),
        inplace=True,
    ),
    Op(
        "index_fill",
        lambda r, d: ((_draw(r, (3, 4), d), 1, np.array([1, 3]), -1.0), {}),
        inplace=True,
    ),
    Op(
        "index_reduce",
        lambda r, d: (
            (_draw(r, (3, 4), d), 0, np.array([0, 2, 0]), _draw(r, (3, 4), d), "amax"),
            {},
        ),
        grad=False,
    ),
    Op(
        "masked_fill",
        lambda r, d: ((_draw(r, (3, 4), d), r.random((3, 4)) < 0.5, 2.0), {}),
        dtypes=ALL,
        inplace=True,
    ),
    Op("masked_select", lambda r, d: ((_draw(r, (3, 4), d), r.random((4,)) < 0.5), {}), dtypes=ALL),
    Op(
        "masked_scatter",
        lambda r, d: ((_draw(r, (3, 4), d), r.random((3, 4)) < 0.5, _draw(r, (3, 4), d)), {}),
        grad_args=(0, 2),
    ),
    Op(
        "put",
        lambda r, d: (
            (_draw(r, (3, 4), d), np.array([1, 7, 3]), _draw(r, (3,), d)),
            {"accumulate": True},
        ),
        grad_args=(0, 2),
    ),
    Op(
        "index_put",
        lambda r, d: (
            (_draw(r, (3, 4), d), (np.array([0, 2]), np.array([1, 3])), _draw(r, (2,), d)),
            {"accumulate": True},
        ),
        grad_args=(0, 2),
    ),
    Op("nonzero", lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {}), grad=False, dtypes=ALL),
    Op(
        "argwhere", lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {}), grad=False, dtypes=ALL
    ),
    Op(
        "unique",
        lambda r, d: (
            (r.integers(0, 4, (10,)).astype(d),),
            {"return_inverse": True, "return_counts": True},
        ),
        grad=False,
        dtypes=ALL,
    ),
    Op(
        "unique_consecutive",
        lambda r, d: (
            (np.array([1, 1, 2, 2, 3, 1, 1], d),),
            {"return_counts": True, "return_inverse": True},
        ),
        grad=False,
        dtypes=ALL,
    ),
    Op(
        "searchsorted",
        lambda r, d: ((np.sort(_draw(r, (6,), d)), _draw(r, (2, 3), d)), {"right": True}),
        grad=False,
        method=False,
        dtypes=ALL,
    ),
    Op(
        "bucketize",
        lambda r, d: ((_draw(r, (2, 3), d), np.sort(_draw(r, (6,), d))), {}),
        grad=False,
        method=False,
        dtypes=ALL,
    ),
    Op(
        "isin",
        lambda r, d: ((r.integers(0, 5, (3, 4)).astype(d), np.array([1, 3], d)), {}),
        grad=False,
        method=False,
        dtypes=ALL,
    ),
    # shapes and slicing
    Op("narrow", lambda r, d: ((_draw(r, (3, 5), d), 1, 1, 3), {}), dtypes=ALL),
    Op("select", lambda r, d: ((_draw(r, (3, 5), d), 1, -2), {}), dtypes=ALL),
    Op("chunk", lambda r, d: ((_draw(r, (3, 5), d), 3, 1), {}), dtypes=ALL),
    Op("split", lambda r, d: ((_draw(r, (5, 3), d), 2), {}), dtypes=ALL, method=False),
    Op("split", lambda r, d: ((_draw(r, (3, 5), d), [1, 4]), {"dim": 1}), method=False),
    Op("tensor_split", lambda r, d: ((_draw(r, (7, 3), d), 3), {}), dtypes=ALL),
    Op("tensor_split", lambda r, d: ((_draw(r, (3, 7), d), [1, 5]), {"dim": 1})),
    Op("hsplit", lambda r, d: ((_draw(r, (3, 4), d), 2), {})),
    Op("vsplit", lambda r, d: ((_draw(r, (4, 3), d), [1, 3]), {})),
    Op("unbind", lambda r, d: ((_draw(r, (3, 4), d), 1), {}), dtypes=ALL),
    Op("movedim", lambda r, d: ((_draw(r, (2, 3, 4), d), (0, 1), (2, 0)), {}), dtypes=ALL),
    Op("moveaxis", lambda r, d: ((_draw(r, (2, 3, 4), d), 0, -1), {}), method=False),
    Op("flip", lambda r, d: ((_draw(r, (2, 3, 4), d), (0, 2)), {}), dtypes=ALL, method=False),
    Op("fliplr", lambda r, d: ((_draw(r, (2, 3), d),), {})),
    Op("flipud", lambda r, d: ((_draw(r, (2, 3), d),), {})),
    Op("roll", lambda r, d: ((_draw(r, (3, 4), d), (1, -1), (0, 1)), {}), dtypes=ALL),
    Op("roll", lambda r, d: ((_draw(r, (3, 4), d), 5), {})),
    Op("rot90", lambda r, d: ((_draw(r, (3, 4), d), 1, (0, 1)), {})),
    Op("rot90", lambda r, d: ((_draw(r, (3, 4), d), -1, (1, 0)), {})),
    Op(
        "repeat_interleave",
        lambda r, d: ((_draw(r, (3, 2), d), np.array([1, 0, 2])), {"dim": 0}),
        dtypes=ALL,
    ),
    Op("repeat_interleave", lambda r, d: ((_draw(r, (3, 2), d), 2), {})),
    Op("unflatten", lambda r, d: ((_draw(r, (3, 6), d), 1, (2, -1)), {})),
    Op("ravel", lambda r, d: ((_draw(r, (3, 4), d),), {})),
    Op("diag", lambda r, d: ((_draw(r, (4,), d), 1), {}), method=False, dtypes=ALL),
    Op("diag", lambda r, d: ((_draw(r, (3, 4), d), -1), {}), method=False),
    Op(
        "diagonal",
        lambda r, d: ((_draw(r, (2, 3, 4), d),), {"offset": 1, "dim1": 2, "dim2": 0}),
        method=False,
    ),
    Op("diag_embed", lambda r, d: ((_draw(r, (2, 3), d),), {"offset": -1})),
    Op("diagflat", lambda r, d: ((_draw(r, (2, 2), d),), {"offset": 1})),
    Op("tril", lambda r, d: ((_draw(r, (3, 4), d),), {"diagonal": 1}), dtypes=ALL, inplace=True),
    Op("triu", lambda r, d: ((_draw(r, (3, 4), d),), {"diagonal": -1}), dtypes=ALL, inplace=True),
    Op("tile", lambda r, d: ((_draw(r, (2, 3), d), (2, 1, 2)), {}), method=False),
    Op(
        "select_scatter",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3,), d), 1, 2), {}),
        grad_args=(0, 1),
    ),
    Op(
        "slice_scatter",
        lambda r, d: ((_draw(r, (4, 4), d), _draw(r, (2, 4), d)), {"start": 1, "step": 2}),
        grad_args=(0, 1),
    ),
    Op(
        "diagonal_scatter",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (3,), d), 1), {}),
        grad_args=(0, 1),
    ),
    Op(
        "block_diag",
        lambda r, d: ((_draw(r, (2, 2), d), _draw(r, (1, 3), d)), {}),
        grad_args=(0, 1),
        method=False,
    ),
    Op(
        "cartesian_prod",
        lambda r, d: ((_draw(r, (2,), d), _draw(r, (3,), d)), {}),
        grad_args=(0, 1),
        method=False,
    ),
    Op("combinations", lambda r, d: ((_draw(r, (4,), d),), {"r": 2}), method=False),
    Op("atleast_3d", lambda r, d: ((_draw(r, (3,), d),), {}), method=False),
    Op(
        "column_stack",
        lambda r, d: (([_draw(r, (3,), d), _draw(r, (3, 2), d)],), {}),
        grad=False,
        method=False,
    ),
    Op(
        "dstack",
        lambda r, d: (([_draw(r, (3,), d), _draw(r, (3,), d)],), {}),
        grad=False,
        method=False,
    ),
    Op("cummax", lambda r, d: ((_draw(r, (6,), d),), {"dim": 0}), method=False),
]

OPS += [
    # second batch: more arguments and more functions
    Op(
        "polygamma",
        lambda r, d: ((2, _draw(r, (3, 4), d, -2.7, 5)), {}),
        method=False,
        grad_args=(1,),
        rtol=1e-4,
        atol=1e-4,
    ),
    Op(
        "polygamma",
        lambda r, d: ((3, _draw(r, (5,), d, 0.3, 30)), {}),
        method=False,
        grad_args=(1,),
        rtol=1e-4,
        atol=1e-4,
    ),
    *[
        Op(
            "quantile",
            _with(lambda r, d, m: ((_draw(r, (3, 5), d), 0.4), {"dim": 1, "interpolation": m}), m),
            grad=False,
        )
        for m in ("lower", "higher", "nearest", "midpoint")
    ],
    Op("quantile", lambda r, d: ((_draw(r, (3, 5), d), np.array([0.1, 0.5], d)), {})),
    *[
        Op("norm", _with(lambda r, d, p: ((_draw(r, (3, 4), d),), {"p": p, "dim": 0}), p))
        for p in (1, float("inf"), -float("inf"))
    ],
    Op("norm", lambda r, d: ((_draw(r, (3, 4), d),), {"p": "fro", "dim": (0, 1)})),
    Op("norm", lambda r, d: ((_draw(r, (3, 4), d),), {"p": 0}), grad=False),
    Op("msort", lambda r, d: ((_draw(r, (4, 3), d),), {}), dtypes=ALL),
    Op(
        "unique",
        lambda r, d: ((r.integers(0, 2, (5, 2)).astype(d),), {"dim": 0}),
        grad=False,
        dtypes=ALL,
    ),
    Op(
        "trapezoid",
        lambda r, d: ((_draw(r, (3, 5), d), np.sort(_draw(r, (5,), d))), {}),
        method=False,
        grad_args=(0, 1),
    ),
    Op("cumulative_trapezoid", lambda r, d: ((_draw(r, (3, 5), d),), {"dx": 2.0}), method=False),
    Op(
        "view_as_real",
        lambda r, d: ((_draw(r, (3,), d) + 1j * _draw(r, (3,), d),), {}),
        grad=False,
        method=False,
    ),
    Op("view_as_complex", lambda r, d: ((_draw(r, (3, 2), d),), {}), grad=False, method=False),
    Op(
        "complex",
        lambda r, d: ((_draw(r, (3,), d), _draw(r, (3,), d)), {}),
        grad=False,
        method=False,
    ),
    Op(
        "polar",
        lambda r, d: ((_draw(r, (3,), d, 0, 2), _draw(r, (3,), d)), {}),
        grad=False,
        method=False,
    ),
    Op("frexp", lambda r, d: ((_draw(r, (3, 4), d, -100, 100),), {}), grad=False),
    Op("hardshrink", lambda r, d: ((_draw(r, (3, 4), d),), {"lambd": 0.7})),
    Op("threshold", lambda r, d: ((_draw(r, (3, 4), d), 0.3, -1.0), {}), method=False),
    Op(
        "rsub",
        lambda r, d: ((_draw(r, (3, 4), d), _draw(r, (4,), d)), {"alpha": 2}),
        method=False,
        grad_args=(0, 1),
    ),
    Op(
        "broadcast_tensors",
        lambda r, d: ((_draw(r, (3, 1), d), _draw(r, (4,), d)), {}),
        method=False,
        grad_args=(0, 1),
    ),
    Op("atleast_2d", lambda r, d: ((_draw(r, (3,), d),), {}), method=False),
    Op(
        "hstack",
        lambda r, d: (([_draw(r, (2, 3), d), _draw(r, (2, 1), d)],), {}),
        grad=False,
        method=False,
    ),
    Op(
        "vstack",
        lambda r, d: (([_draw(r, (3,), d), _draw(r, (2, 3), d)],), {}),
        grad=False,
        method=False,
    ),
    Op(
        "row_stack",
        lambda r, d: (([_draw(r, (3,), d), _draw(r, (3,), d)],), {}),
        grad=False,
        method=False,
    ),
    Op(
        "meshgrid",
        lambda r, d: ((_draw(r, (3,), d), _draw(r, (2,), d)), {"indexing": "xy"}),
        method=False,
        grad_args=(0, 1),
    ),
    Op(
        "unravel_index",
        lambda r, d: ((np.array([0, 5, 11]), (3, 4)), {}),
        grad=False,
        method=False,
        dtypes=(I64,),
    ),
    Op("gradient", lambda r, d: ((_draw(r, (4, 5), d),), {"spacing": 2.0, "dim": 1}), method=False),
    Op("gradient", lambda r, d: ((_draw(r, (5,), d),), {"edge_order": 2}), method=False),
    Op(
        "index_reduce",
        lambda r, d: (
            (_draw(r, (3, 4), d), 0, np.array([0, 2, 0]), _draw(r, (3, 4), d), "prod"),
            {"include_self": False},
        ),
        grad=False,
    ),
    Op(
        "index_reduce",
        lambda r, d: (
            (_draw(r, (3, 4), d), 1, np.array([0, 2, 0, 1]), _draw(r, (3, 4), d), "mean"),
            {},
        ),
        grad=False,
    ),
    Op(
        "put",
        lambda r, d: ((_draw(r, (3, 4), d), np.array([1, 7, -1]), _draw(r, (3,), d)), {}),
        grad_args=(0, 2),
    ),
    Op(
        "index_put",
        lambda r, d: ((_draw(r, (3, 4), d), (np.array([0, 2]),), _draw(r, (4,), d)), {}),
        grad_args=(0, 2),
    ),
    Op("take_along_dim", lambda r, d: ((_draw(r, (3, 4), d), _idx(r, 12, (5,))), {})),
    Op(
        "searchsorted",
        lambda r, d: ((_draw(r, (2, 6), d), _draw(r, (2, 3), d)), {"side": "right"}),
        grad=False,
        method=False,
    ),
    Op(
        "searchsorted",
        lambda r, d: (
            (_draw(r, (6,), d), _draw(r, (3,), d)),
            {"sorter": np.argsort(_draw(np.random.default_rng(5), (6,), d))},
        ),
        grad=False,
        method=False,
    ),
    Op(
        "bucketize",
        lambda r, d: (
            (_draw(r, (2, 3), d), np.sort(_draw(r, (6,), d))),
            {"right": True, "out_int32": True},
        ),
        grad=False,
        method=False,
    ),
    Op("diag_embed", lambda r, d: ((_draw(r, (2, 3), d),), {"offset": 1, "dim1": 0, "dim2": 2})),
    Op("amax", lambda r, d: ((np.array([[1, 3, 3], [2, 2, 0]], d),), {"dim": 1})),
    Op(
        "median", lambda r, d: ((np.array([[1, np.nan, 3], [2, 2, 0]], d),), {"dim": 1}), grad=False
    ),
    Op(
        "count_nonzero",
        lambda r, d: ((r.integers(0, 2, (3, 4)).astype(d),), {}),
        grad=False,
        dtypes=ALL,
    ),
    Op(
        "std_mean",
        lambda r, d: ((_draw(r, (3, 4), d),), {"dim": (0, 1), "keepdim": True}),
        method=False,
    ),
    Op(
        "tensordot",
        lambda r, d: ((_draw(r, (3, 4, 2), d), _draw(r, (2, 3, 5), d)), {"dims": ([0, 2], [1, 0])}),
        grad_args=(0, 1),
        method=False,
    ),
    Op(
        "chain_matmul",
        lambda r, d: ((_draw(r, (2, 3), d), _draw(r, (3, 4), d), _draw(r, (4, 2), d)), {}),
        grad_args=(0, 1, 2),
        method=False,
    ),
    *[
        Op(
            "cdist",
            _with(lambda r, d, p: ((_draw(r, (3, 4), d), _draw(r, (2, 4), d)), {"p": p}), p),
            grad_args=(0, 1),
            method=False,
        )
        for p in (1.0, 3.0, float("inf"))
    ],
    Op(
        "cov",
        lambda r, d: (
            (_draw(r, (2, 6), d),),
            {"fweights": r.integers(1, 3, (6,)), "aweights": _draw(r, (6,), d, 0.5, 1)},
        ),
        method=True,
    ),
    Op(
        "addmv",
        lambda r, d: (
            (_draw(r, (3,), d), _draw(r, (3, 4), d), _draw(r, (4,), d)),
            {"beta": 0, "alpha": -1},
        ),
        grad_args=(0, 1, 2),
    ),
    Op(
        "clamp",
        lambda r, d: (
            (_draw(r, (3, 4), d), _draw(r, (4,), d, -1, 0), _draw(r, (3, 1), d, 0, 1)),
            {},
        ),
        grad_args=(0, 1, 2),
    ),
    Op(
        "where",
        lambda r, d: ((r.random((3, 4)) < 0.5, _draw(r, (3, 4), d), _draw(r, (4,), d)), {}),
        grad_args=(1, 2),
        method=False,
        dtypes=ALL,
    ),
    Op("diagonal_copy", lambda r, d: ((_draw(r, (3, 4), d),), {"offset": 1}), method=False),
    Op(
        "slice_copy",
        lambda r, d: ((_draw(r, (5, 4), d),), {"dim": 0, "start": 1, "end": 4, "step": 2}),
        method=False,
    ),
    Op("permute_copy", lambda r, d: ((_draw(r, (2, 3, 4), d), (2, 0, 1)), {}), method=False),
    Op("unbind_copy", lambda r, d: ((_draw(r, (2, 3), d),), {"dim": 1}), method=False),
    Op("expand_copy", lambda r, d: ((_draw(r, (3, 1), d), (2, 3, 4)), {}), method=False),
    Op(
        "isin",
        lambda r, d: ((r.integers(0, 5, (3, 4)).astype(d), np.array([1, 3], d)), {"invert": True}),
        grad=False,
        method=False,
        dtypes=ALL,
    ),
]

OPS += [
    Op("hash_tensor", lambda r, d: ((_draw(r, (3, 4), d),), {}), grad=False, dtypes=ALL),
    Op("hash_tensor", lambda r, d: ((_draw(r, (3, 4), d),), {"dim": 1}), grad=False, dtypes=ALL),
    Op(
        "round",
        lambda r, d: ((_draw(r, (3, 4), d, -5, 5),), {}),
        grad=False,
        inplace=True,
        method=False,
    ),
]

OPS += [
    Op(
        "stft",
        lambda r, d: (
            (_draw(r, (40,), d), 16),
            {"hop_length": 4, "window": np.hanning(16).astype(d), "return_complex": False},
        ),
        rtol=1e-4,
        atol=1e-5,
    ),
    Op(
        "stft",
        lambda r, d: (
            (_draw(r, (2, 30), d), 8),
            {"center": False, "return_complex": False, "normalized": True},
        ),
        rtol=1e-4,
        atol=1e-5,
    ),
    Op(
        "stft",
        lambda r, d: (
            (_draw(r, (30,), d), 8),
            {"pad_mode": "constant", "onesided": False, "return_complex": True},
        ),
        grad=False,
        rtol=1e-4,
        atol=1e-5,
    ),
    Op(
        "istft",
        lambda r, d: (
            (_draw(r, (9, 7), d) + 1j * _draw(r, (9, 7), d), 16),
            {"hop_length": 4, "window": np.hanning(16).astype(d) + 0.1, "length": 30},
        ),
        grad=False,
        dtypes=(F64,),
        rtol=1e-5,
        atol=1e-6,
    ),
]

OPS += [
    *[
        Op(
            n,
            lambda r, d: ((_draw(r, (3, 4), d, 0.2, 6), _draw(r, (4,), d, 0.1, 8)), {}),
            grad_args=(1,),
            rtol=1e-5,
            atol=1e-6,
            inplace=True,
        )
        for n in ("igamma", "igammac")
    ],
]

OPS += [
    unary("absolute", dtypes=ALL),
    unary("arccosh", low=1.1, high=3),
    *[
        binary(n, low=0, high=3, grad=False, dtypes=(I64,))
        for n in ("bitwise_left_shift", "bitwise_right_shift")
    ],
    Op("atleast_1d", lambda r, d: ((np.array(1.5, d),), {}), grad=False, method=False),
    Op("histogram", lambda r, d: ((_draw(r, (20,), d),), {"bins": 4}), grad=False),
    Op("trapz", lambda r, d: ((_draw(r, (3, 5), d),), {"dim": 0}), method=False),
    *[
        Op(
            n,
            lambda r, d: ((_draw(r, (3,), d) + 1j * _draw(r, (3,), d),), {}),
            grad=False,
            method=False,
        )
        for n in ("conj", "conj_physical", "real", "imag", "resolve_conj", "resolve_neg")
    ],
    *[
        Op(n, lambda r, d: ((_draw(r, (3, 4), d),), {}), grad=False, method=False)
        for n in ("alias_copy", "detach_copy", "t_copy")
    ],
    Op("select_copy", lambda r, d: ((_draw(r, (3, 4), d), 1, 2), {}), method=False),
    Op("split_copy", lambda r, d: ((_draw(r, (5, 4), d), 2), {}), method=False),
    Op("split_with_sizes_copy", lambda r, d: ((_draw(r, (5, 4), d), [1, 4]), {}), method=False),
    Op("squeeze_copy", lambda r, d: ((_draw(r, (3, 1, 4), d), 1), {}), method=False),
    Op("transpose_copy", lambda r, d: ((_draw(r, (3, 4), d), 0, 1), {}), method=False),
    Op("unfold_copy", lambda r, d: ((_draw(r, (3, 6), d), 1, 2, 2), {}), method=False),
    Op("unsqueeze_copy", lambda r, d: ((_draw(r, (3, 4), d), -1), {}), method=False),
    Op("view_copy", lambda r, d: ((_draw(r, (3, 4), d), (4, 3)), {}), method=False),
    Op(
        "view_as_real_copy",
        lambda r, d: ((_draw(r, (3,), d) + 1j * _draw(r, (3,), d),), {}),
        grad=False,
        method=False,
    ),
    Op("view_as_complex_copy", lambda r, d: ((_draw(r, (3, 2), d),), {}), grad=False, method=False),
    Op("unsafe_split", lambda r, d: ((_draw(r, (5, 4), d), 2), {})),
    Op("unsafe_split_with_sizes", lambda r, d: ((_draw(r, (5, 4), d), [2, 3]), {})),
]

IDS = [f"{i}-{op.name}" for i, op in enumerate(OPS)]


def _convert(value, lib, requires_grad):
    if isinstance(value, np.ndarray):
        t = lib.tensor(value)
        if requires_grad:
            t.requires_grad_(True)
        return t
    if isinstance(value, list):
        return [_convert(v, lib, False) for v in value]
    if isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
        return tuple(_convert(v, lib, False) for v in value)
    return value


def _build(op, dtype, lib, seed=0, grad=False):
    rng = np.random.default_rng(seed)
    args, kwargs = op.make(rng, dtype)
    out = []
    for i, a in enumerate(args):
        rg = grad and i in op.grad_args and isinstance(a, np.ndarray) and a.dtype.kind == "f"
        out.append(_convert(a, lib, rg))
    return out, {k: _convert(v, lib, False) for k, v in kwargs.items()}


def _leaves(result):
    if isinstance(result, (tuple, list)):
        for r in result:
            yield from _leaves(r)
    elif result is not None:
        yield result


def _check_same(ours, theirs, op, where):
    if isinstance(theirs, (bool, int, float)):
        assert ours == theirs, where
        return
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)), f"{where}: expected a sequence, got {ours!r}"
        assert len(ours) == len(theirs), f"{where}: {len(ours)} results, PyTorch {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _check_same(a, b, op, f"{where}[{i}]")
        return
    expected = theirs.detach().resolve_conj().resolve_neg().numpy()
    got = np.asarray(ours.detach().numpy())
    assert str(ours.dtype).replace("torch.", "") == str(theirs.dtype).replace("torch.", ""), (
        f"{where}: dtype {ours.dtype}, PyTorch {theirs.dtype}"
    )
    assert got.shape == expected.shape, f"{where}: shape {got.shape}, PyTorch {expected.shape}"
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(
            got, expected, rtol=op.rtol, atol=op.atol, equal_nan=True, err_msg=where
        )
    else:
        np.testing.assert_array_equal(got, expected, err_msg=where)


def _fns(op):
    yield "function", lambda lib, args, kw: getattr(lib, op.name)(*args, **kw)
    if op.method:
        yield "method", lambda lib, args, kw: getattr(args[0], op.name)(*args[1:], **kw)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_values_shapes_dtypes_match_pytorch(op):
    for dtype in op.dtypes:
        for kind, fn in _fns(op):
            lib_args, lib_kw = _build(op, dtype, ct)
            ref_args, ref_kw = _build(op, dtype, torch_ref)
            theirs = fn(torch_ref, ref_args, ref_kw)
            ours = fn(ct, lib_args, lib_kw)
            _check_same(ours, theirs, op, f"{op.name} ({kind}, {dtype})")


GRAD_OPS = [op for op in OPS if op.grad]


@pytest.mark.parametrize("op", GRAD_OPS, ids=[f"{i}-{op.name}" for i, op in enumerate(GRAD_OPS)])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_gradients_match_pytorch(op, dtype):
    if dtype not in op.dtypes:
        pytest.skip(f"{op.name} is not tested in {dtype}")
    grads = []
    for lib in (ct, torch_ref):
        args, kw = _build(op, dtype, lib, seed=1, grad=True)
        out = getattr(lib, op.name)(*args, **kw)
        outs = [o for o in _leaves(out) if o.dtype in (lib.float32, lib.float64)]
        rng = np.random.default_rng(7)
        loss = 0
        for o in outs:
            w = lib.tensor(rng.uniform(-1, 1, tuple(o.shape)).astype(dtype))
            loss = loss + (o * w).sum()
        loss.backward()
        grads.append(
            [args[i].grad for i in op.grad_args if getattr(args[i], "requires_grad", False)]
        )
    ours, theirs = grads
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if b is None:
            assert a is None or not np.any(a.numpy()), f"{op.name}: grad {i} should be None"
            continue
        assert a is not None, f"{op.name}: no gradient for argument {op.grad_args[i]}"
        tol = dict(
            rtol=max(op.rtol, 1e-4 if dtype == F32 else 1e-6),
            atol=max(op.atol, 1e-5 if dtype == F32 else 1e-8),
        )
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), **tol, err_msg=f"{op.name} gradient {i} ({dtype})"
        )


# Every method with an in-place variant in PyTorch is checked, not only those flagged.
INPLACE_OPS = [
    op for op in OPS if op.inplace or (op.method and hasattr(torch_ref.Tensor, op.name + "_"))
]


@pytest.mark.parametrize(
    "op", INPLACE_OPS, ids=[f"{i}-{op.name}_" for i, op in enumerate(INPLACE_OPS)]
)
def test_inplace_variant_matches(op):
    for dtype in op.dtypes:
        results = []
        for lib in (ct, torch_ref):
            args, kw = _build(op, dtype, lib)
            target = args[0]
            try:
                returned = getattr(target, op.name + "_")(*args[1:], **kw)
            except RuntimeError as e:
                results.append(("error", type(e)))
                continue
            assert returned is target
            results.append(target)
        ours, theirs = results
        if isinstance(theirs, tuple):
            assert ours == theirs, f"{op.name}_ ({dtype}): PyTorch raised, we gave {ours!r}"
            continue
        assert not isinstance(ours, tuple), f"{op.name}_ ({dtype}) raised, PyTorch did not"
        _check_same(ours, theirs, op, f"{op.name}_ ({dtype})")


MODULE_INPLACE_ARGS = {
    "clamp_": (0.3, 0.6),
    "clip_": (0.3, 0.6),
    "clamp_max_": (0.5,),
    "clamp_min_": (0.5,),
    "fill_": (2.0,),
    "xlogy_": (2.0,),
    "ldexp_": ("float_tensor",),
    "addmv_": None,
    "index_put_": None,
    "lcm_": None,
    "gcd_": None,
}


@pytest.mark.parametrize(
    "name", sorted(__import__("chainrule.torch._ops", fromlist=["INPLACE"]).INPLACE)
)
def test_module_level_inplace_functions(name):
    if not hasattr(torch_ref, name) or MODULE_INPLACE_ARGS.get(name, ()) is None:
        pytest.skip(
            f"torch.{name} needs arguments checked elsewhere, or PyTorch has no torch.{name}"
        )
    v = np.random.default_rng(0).uniform(0.1, 0.9, (2, 3)).astype(np.float32)
    out = []
    for lib in (ct, torch_ref):
        x = lib.tensor(v)
        args = [
            lib.tensor(np.ones(3, np.float32)) if a == "float_tensor" else a
            for a in MODULE_INPLACE_ARGS.get(name, ())
        ]
        r = getattr(lib, name)(x, *args)
        assert r is x
        out.append(np.asarray(x.detach() if hasattr(x, "detach") else x))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5, atol=1e-6)
