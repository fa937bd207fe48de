"""MLX's dtypes: a real bfloat16, the promotion table, weak Python scalars, dtype queries,
limits, float64 kept exact, integer and bfloat16 inputs through float math."""

from __future__ import annotations

import math
from itertools import product

import ml_dtypes
import numpy as np
import pytest

import chainrule.core as mx

# bfloat16 arrays live on the CPU (CuPy has no bfloat16 type): the CPU is the default while
# each test runs, also under CHAINRULE_DEVICE=gpu
pytestmark = pytest.mark.usefixtures("cpu_default_device")

NAMES = [
    "bool_",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "complex64",
]

# MLX's promotion table (mlx/dtype.cpp), a few rows spelled out: (a, b) -> result
PROMOTIONS = [
    ("bool_", "int8", "int8"),
    ("uint8", "int8", "int16"),
    ("uint16", "int16", "int32"),
    ("uint32", "int8", "int64"),
    ("uint64", "int8", "float32"),
    ("uint64", "int64", "float32"),
    ("int64", "float16", "float16"),
    ("uint64", "bfloat16", "bfloat16"),
    ("float16", "bfloat16", "float32"),
    ("float16", "float32", "float32"),
    ("bfloat16", "float64", "float64"),
    ("float32", "complex64", "complex64"),
    ("int32", "float64", "float64"),
    # chainrule's one deviation: float64 with complex64 keeps double precision
    ("float64", "complex64", "complex128"),
]


def torch_or_skip():
    return pytest.importorskip("torch")


# -- bfloat16 is a real dtype ----------------------------------------------------------------


def test_bfloat16_is_a_two_byte_type_of_its_own():
    a = mx.array([1.0, 2.5, 3.0], dtype=mx.bfloat16)
    assert mx.bfloat16.size == 2 and a.itemsize == 2 and a.nbytes == 6
    assert a.dtype == mx.bfloat16 and mx.bfloat16 != mx.float32
    assert str(mx.bfloat16) == "bfloat16"
    assert repr(a) == "array([1, 2.5, 3], dtype=bfloat16)"
    assert np.asarray(a).dtype == np.dtype(ml_dtypes.bfloat16)


def test_bfloat16_rounds_like_pytorch():
    torch = torch_or_skip()
    x = np.random.default_rng(0).standard_normal(200).astype(np.float32)
    ours = mx.array(x).astype(mx.bfloat16).astype(mx.float32)
    theirs = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(np.asarray(ours), theirs)


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide", "maximum", "minimum"])
def test_bfloat16_binary_ops_match_pytorch(op):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, y = rng.random((5, 7), dtype=np.float32) + 0.1, rng.random((1, 7), dtype=np.float32) + 0.1
    out = getattr(mx, op)(mx.array(x).astype(mx.bfloat16), mx.array(y).astype(mx.bfloat16))
    assert out.dtype == mx.bfloat16
    ref = getattr(torch, op)(
        torch.from_numpy(x).to(torch.bfloat16), torch.from_numpy(y).to(torch.bfloat16)
    )
    np.testing.assert_array_equal(np.asarray(out.astype(mx.float32)), ref.float().numpy())


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid", "abs", "square"])
def test_bfloat16_unary_ops_compute_in_float32_and_round(op):
    torch = torch_or_skip()
    x = np.random.default_rng(2).random(50, dtype=np.float32) + 0.5
    out = getattr(mx, op)(mx.array(x).astype(mx.bfloat16))
    assert out.dtype == mx.bfloat16
    ref = getattr(torch, op)(torch.from_numpy(x).to(torch.bfloat16)).float().numpy()
    np.testing.assert_allclose(np.asarray(out.astype(mx.float32)), ref, rtol=2**-7)


def test_bfloat16_python_scalars_stay_weak():
    a = mx.array([1.0, 2.0], dtype=mx.bfloat16)
    for out in (a * 0.1, 0.1 * a, a + 3, a - True, a / 3):
        assert out.dtype == mx.bfloat16
    assert (a * 0.1).tolist() == [float(ml_dtypes.bfloat16(0.1)), 0.2001953125]
    assert (a * 1j).dtype == mx.complex64


def test_bfloat16_orders_nan_last_and_clamps_infinities():
    x = mx.array([3.0, math.nan, 2.0, 0.0], dtype=mx.bfloat16)
    assert mx.array_equal(
        mx.sort(x), mx.array([0.0, 2.0, 3.0, math.nan], dtype=mx.bfloat16), equal_nan=True
    )
    assert mx.argsort(x).tolist() == [3, 2, 0, 1]
    big = mx.finfo(mx.bfloat16).max
    y = mx.nan_to_num(mx.array([math.inf, math.nan, -math.inf], dtype=mx.bfloat16))
    assert y.dtype == mx.bfloat16 and y.tolist() == [big, 0.0, -big]


def test_bfloat16_from_pytorch_and_ml_dtypes():
    torch = torch_or_skip()
    a = mx.array(torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16))
    assert a.dtype == mx.bfloat16 and a.tolist() == [1.0, 2.0, 3.0]
    b = mx.array(np.array([1.5, 2.5], dtype=ml_dtypes.bfloat16))
    assert b.dtype == mx.bfloat16 and b.tolist() == [1.5, 2.5]
    assert mx.array(np.array(1.5, dtype=ml_dtypes.bfloat16), dtype=mx.float32).item() == 1.5


def test_bfloat16_is_floating_for_gradients_and_kinds():
    a = mx.array([1.0, 2.0], dtype=mx.bfloat16, requires_grad=True)
    assert a.requires_grad and mx.bfloat16.kind == "f"
    with pytest.raises(TypeError):
        mx.array([1, 2]).requires_grad = True


# -- promotion -------------------------------------------------------------------------------


@pytest.mark.parametrize("a,b,want", PROMOTIONS)
def test_promotion_follows_mlx_table(a, b, want):
    ta, tb, tw = getattr(mx, a), getattr(mx, b), getattr(mx, want)
    assert mx.promote_types(ta, tb) is tw and mx.promote_types(tb, ta) is tw
    assert mx.result_type(ta, tb) is tw
    assert (mx.ones((2,), dtype=ta) + mx.ones((2,), dtype=tb)).dtype is tw


def test_promotion_is_symmetric_and_idempotent():
    for a, b in product(NAMES, NAMES):
        ta, tb = getattr(mx, a), getattr(mx, b)
        assert mx.promote_types(ta, tb) is mx.promote_types(tb, ta)
    for a in NAMES:
        assert mx.promote_types(getattr(mx, a), getattr(mx, a)) is getattr(mx, a)


def test_integer_promotion_agrees_with_numpy_where_mlx_does():
    ints = ["bool_", "uint8", "uint16", "uint32", "int8", "int16", "int32", "int64"]
    for a, b in product(ints, ints):
        want = np.promote_types(getattr(np, a), getattr(np, b))
        assert mx.promote_types(getattr(mx, a), getattr(mx, b)).name == str(want)


WEAK = [  # (array dtype, Python scalar, result) as MLX
    ("bool_", False, "bool_"),
    ("bool_", 0, "int32"),
    ("bool_", 1.0, "float32"),
    ("int8", 0, "int8"),
    ("int8", 1.0, "float32"),
    ("uint64", 0, "uint64"),
    ("uint16", 1.0, "float32"),
    ("float16", 1.0, "float16"),
    ("float16", 0, "float16"),
    ("float64", 1.0, "float64"),
    ("int32", 1j, "complex64"),
    ("float64", 1j, "complex128"),
]


@pytest.mark.parametrize("dtype,scalar,want", WEAK)
def test_python_scalars_are_weak(dtype, scalar, want):
    x = mx.array(0, getattr(mx, dtype))
    assert (x * scalar).dtype is getattr(mx, want)
    assert (scalar * x).dtype is getattr(mx, want)


def test_python_ints_must_fit_narrow_integer_arrays():
    y = mx.array(2_000_000_000, dtype=mx.int32)
    with pytest.raises(ValueError, match="overflow"):
        y + 3_000_000_000
    with pytest.raises(ValueError, match="overflow"):
        mx.add(y, 3_000_000_000)
    with pytest.raises(ValueError, match="overflow"):
        mx.array([1], dtype=mx.uint8) + 256
    assert (mx.array([1], dtype=mx.int64) + 2**40).tolist() == [2**40 + 1]
    assert (mx.array([1, 2], dtype=mx.int64) + 0x80000000).dtype == mx.int64
    assert (mx.array([1], dtype=mx.uint64) + (-1)).tolist() == [0]  # wraps, as C


# -- dtype queries ---------------------------------------------------------------------------


def test_issubdtype_agrees_with_numpy():
    names = NAMES[:-2] + ["complex64"]  # NumPy has no bfloat16
    cats = ["complexfloating", "floating", "inexact", "signedinteger", "unsignedinteger"]
    cats += ["integer", "number", "generic"]
    for a, b in product(names + cats, names + cats):
        assert mx.issubdtype(getattr(mx, a), getattr(mx, b)) == np.issubdtype(
            getattr(np, a), getattr(np, b)
        ), (a, b)
    assert mx.issubdtype(mx.bfloat16, mx.floating) and mx.issubdtype(mx.bfloat16, mx.inexact)
    assert not mx.issubdtype(mx.bfloat16, mx.float32)


def test_result_type_and_can_cast():
    assert mx.result_type(mx.array([1], dtype=mx.int8), mx.int16, mx.int32) is mx.int32
    assert mx.result_type(mx.array(1.0), mx.array(1, dtype=mx.int32)) is mx.float32
    with pytest.raises(ValueError):
        mx.result_type()
    assert mx.can_cast(mx.int8, mx.int16) and not mx.can_cast(mx.int16, mx.int8)
    assert mx.can_cast(mx.uint8, mx.int16) and not mx.can_cast(mx.uint16, mx.int16)
    assert mx.can_cast(mx.float32, mx.float64) and not mx.can_cast(mx.float64, mx.float32)
    assert mx.can_cast(mx.array([1, 2], dtype=mx.int8), mx.int32)


def test_isdtype_kinds():
    assert mx.isdtype(mx.int32, "signed integer") and mx.isdtype(mx.uint8, "unsigned integer")
    assert mx.isdtype(mx.int16, "integral") and mx.isdtype(mx.bfloat16, "real floating")
    assert mx.isdtype(mx.complex64, "complex floating") and mx.isdtype(mx.bool_, "bool")
    assert not mx.isdtype(mx.bool_, "numeric") and mx.isdtype(mx.float32, "numeric")
    assert mx.isdtype(mx.int8, (mx.int8, mx.int16))
    assert not mx.isdtype(mx.int32, ("bool", "real floating"))
    with pytest.raises(ValueError):
        mx.isdtype(mx.int32, "not a kind")


def test_finfo_and_iinfo_follow_numpy_and_ml_dtypes():
    for name in ("float16", "float32", "float64"):
        ours, theirs = mx.finfo(getattr(mx, name)), np.finfo(getattr(np, name))
        assert (ours.min, ours.max, ours.eps, ours.bits) == (
            theirs.min,
            theirs.max,
            theirs.eps,
            theirs.bits,
        )
    bf = mx.finfo(mx.bfloat16)
    ref = ml_dtypes.finfo(ml_dtypes.bfloat16)
    assert (bf.bits, bf.eps, bf.max, bf.smallest_normal) == (16, ref.eps, ref.max, 2.0**-126)
    assert mx.finfo(mx.complex64).dtype is mx.float32 and mx.finfo(mx.complex64).bits == 32
    with pytest.raises(ValueError):
        mx.finfo(mx.int32)
    with pytest.raises(ValueError):
        mx.iinfo(mx.float32)
    assert (mx.iinfo(mx.uint32).min, mx.iinfo(mx.uint32).max) == (0, 2**32 - 1)


# -- float64 never passes through float32 ----------------------------------------------------


def test_float64_values_stay_exact():
    for v in (0.37, 0.1, math.pi):
        assert mx.full((3,), v, dtype=mx.float64).tolist() == [v] * 3
        assert mx.array(v, dtype=mx.float64).item() == v
        assert mx.array([v], dtype=mx.float64).item() == v
        assert (mx.array([1.0], dtype=mx.float64) * v).tolist() == [v]
    one = mx.array([1.0], dtype=mx.float64)
    assert (one * 1e300).tolist() == [1e300] and (one * 1e-300).tolist() == [1e-300]
    assert mx.linspace(0, math.pi, 2, dtype=mx.float64).tolist() == [0.0, math.pi]
    # without float64, Python floats are float32 (MLX)
    assert mx.array(0.1).item() == float(np.float32(0.1))


# -- integer, boolean and complex inputs through float math ----------------------------------


def test_float_functions_of_integers_are_float32():
    x = mx.array([1, 2, 3])
    for op in (mx.exp, mx.sqrt, mx.sin, mx.log1p):
        out = op(x)
        assert out.dtype == mx.float32
        np.testing.assert_allclose(
            np.asarray(out), getattr(np, op.__name__)(np.array([1, 2, 3], np.float32))
        )
    assert mx.exp(mx.array([True])).dtype == mx.float32


def test_kernels_refusing_a_dtype():
    # NumPy has no isneginf for integers: computed in float32, as MLX accepts them
    x = mx.array([-(2**31), 0, 2**31 - 1], dtype=mx.int32)
    assert mx.isneginf(x).tolist() == [False, False, False]
    # an unsupported dtype is MLX's ValueError (also a TypeError, as NumPy raises)
    with pytest.raises(ValueError):
        mx.floor(mx.array([1 + 2j]))
    with pytest.raises(TypeError):
        mx.remainder(mx.array([1 + 2j]), mx.array([1 + 2j]))
    with pytest.raises(ValueError):
        mx.array(1.0) & mx.array(1)


# -- creation --------------------------------------------------------------------------------


def test_arange_dtypes_and_values_match_numpy():
    cases = [(5,), (1, 3.0), (1, 5, 1.0), (0, 3, 0.2), (-1, -20, -1.2)]
    for args in cases:
        got = mx.arange(*args)
        want = np.arange(*args)
        assert got.dtype == (mx.float32 if want.dtype.kind == "f" else mx.int32)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    assert mx.arange(0, 3, 0.2, dtype=mx.int32).tolist() == [0] * 15  # NumPy's increment
    n = 2**31 - 1
    assert mx.arange(n - 1, n + 3).dtype == mx.int64
    assert mx.arange(n - 1, n + 3, dtype=mx.int32).tolist() == [n - 1, n, -(2**31), 1 - 2**31]
    assert mx.arange(-3, step=-1).tolist() == [0, -1, -2]
    assert mx.arange(stop=2, step=0.5).tolist() == [0, 0.5, 1.0, 1.5]
    assert mx.arange(0, 10, math.inf).tolist() == [0] and mx.arange(10, 0, 1).tolist() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: mx.arange(math.nan, 1, 5),
        lambda: mx.arange(0, math.inf, 1),
        lambda: mx.arange(0, 5, 0),
        lambda: mx.arange(0, 2**40),
        lambda: mx.arange(3, dtype=mx.bool_),
    ],
)
def test_arange_errors(call):
    with pytest.raises(ValueError):
        call()


def test_arange_needs_a_stop():
    with pytest.raises(TypeError):
        mx.arange(start=1, step=2)


def test_linspace_endpoint_matches_numpy():
    got = mx.linspace(0, math.pi, 4, endpoint=False, dtype=mx.float64)
    np.testing.assert_allclose(np.asarray(got), np.linspace(0, math.pi, 4, endpoint=False))
    assert mx.linspace(1, 2, 1).tolist() == [1.0]
    with pytest.raises(ValueError):
        mx.linspace(0, 1, -1)


def test_shapes_outside_int32_overflow():
    for make in (mx.zeros, mx.ones, lambda s: mx.full(s, 0.0)):
        for shape in (2**31, [2**31], [-(2**31) - 1]):
            with pytest.raises(
                OverflowError, match=str(shape if isinstance(shape, int) else shape[0])
            ):
                make(shape)
    with pytest.raises(OverflowError):
        mx.zeros((2, 2**31))
    with pytest.raises(OverflowError, match="2147483648"):
        mx.array(np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), (2**31,), (0,)))
    assert mx.full((2, 3), 1.5).tolist() == [[1.5] * 3] * 2


def test_empty_like_and_dtype_arguments():
    x = mx.array([1, 2, 3], dtype=mx.int32)
    assert mx.empty_like(x).dtype == mx.int32 and mx.empty((2,)).dtype == mx.float32
    assert mx.zeros_like(x, mx.float16).dtype == mx.float16
    assert mx.ones_like(x, dtype=mx.bfloat16).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="overflow"):
        mx.full((2,), 300, dtype=mx.int8)


# -- scalars out -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_item_and_tolist_give_python_scalars(name):
    dt = getattr(mx, name)
    a = mx.array([1, 0], dtype=dt)
    want = {"b": bool, "u": int, "i": int, "f": float, "c": complex}[dt.kind]
    assert type(a[0].item()) is want and type(a.tolist()[0]) is want
    assert a.tolist() == [want(1), want(0)]
    assert mx.array(1, dtype=dt).tolist() == want(1)


def test_bfloat16_sums_products_and_einsum_stay_bfloat16_with_float32_accumulation():
    ones = mx.ones((10000,), dtype=mx.bfloat16)
    # float32 running sums, rounded once (a bfloat16 accumulator would stop at 256)
    assert mx.sum(ones).item() == 9984.0 and mx.sum(ones).dtype == mx.bfloat16
    assert mx.cumsum(ones)[-1].item() == 9984.0
    a = mx.ones((2, 3), dtype=mx.bfloat16)
    assert (a @ a.T).dtype == mx.bfloat16
    assert mx.einsum("ij,kj->ik", a, a).dtype == mx.bfloat16


def test_gradient_flows_through_casts_from_and_to_bfloat16():
    # bfloat16's NumPy kind is "V": the cast must still be recorded (it gave zeros)
    x = mx.array([1.0, 2.0], dtype=mx.bfloat16)
    g = mx.grad(lambda v: (v.astype(mx.float32) ** 2).sum())(x)
    assert g.dtype == mx.bfloat16
    np.testing.assert_array_equal(np.asarray(g.astype(mx.float32)), [2.0, 4.0])
    h = mx.grad(lambda v: (v.astype(mx.bfloat16) ** 2).astype(mx.float32).sum())(
        mx.array([1.0, 3.0])
    )
    np.testing.assert_array_equal(np.asarray(h), [2.0, 6.0])
    # integer casts stay constants
    assert mx.grad(lambda v: (v * v.astype(mx.int32)).sum())(mx.array([1.5, 2.5])).tolist() == [
        1,
        2,
    ]


def test_dimensions_past_int32_are_mlx_overflow_errors():
    # reshape checks dimensions only when NumPy refuses (or for large and empty arrays): the
    # overflow must still win over the shape mismatch, as in MLX
    with pytest.raises(OverflowError):
        mx.reshape(mx.zeros((4,)), (2**31,))
    with pytest.raises(OverflowError):
        mx.zeros((0, 4)).reshape(0, 2**31)
    with pytest.raises(ValueError, match="cannot reshape"):
        mx.reshape(mx.zeros((4,)), (3,))
    with pytest.raises(OverflowError):
        mx.concatenate([mx.zeros((2**30, 0)), mx.zeros((2**30, 0)), mx.zeros((1, 0))])
