"""The array protocol and interop: construction with MLX's inference and errors, asarray,
NumPy's __array__, DLPack both ways, the array API namespace, operators with non-arrays,
printing options and indexed updates."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import chainrule
import chainrule.core as mx

# -- construction ----------------------------------------------------------------------------


def test_python_data_inference():
    assert mx.array([]).dtype == mx.float32 and mx.array([[], []]).shape == (2, 0)
    assert mx.array([True, False, 3]).dtype == mx.int32
    assert mx.array([True, False, 3, 4.0]).dtype == mx.float32
    assert mx.array([[True, False], (1, 3), [2, 4.0]]).dtype == mx.float32
    assert mx.array([1 + 0j, 2]).dtype == mx.complex64
    assert mx.array(2**40).dtype == mx.int64 and mx.array([2**31]).dtype == mx.int64
    assert mx.array([2**31 - 1, -(2**31)]).dtype == mx.int32
    assert mx.array([2**40, 1.5]).dtype == mx.float32
    assert mx.array([[1.0, 2.0], [0.0, 3.9]], mx.int32).tolist() == [[1, 2], [0, 3]]
    assert mx.array([1 + 0j, 2j, True, 0], mx.complex64).tolist() == [1, 2j, 1, 0]
    assert mx.array([0, 4294967295], dtype=mx.uint32).tolist() == [0, 4294967295]


@pytest.mark.parametrize(
    "value",
    [[[[], []], [[]], [[], []]], [[0, 1], [[0, 1], 1]], [[[], []], [[1.0, 2.0], []]]],
)
def test_ragged_lists_are_refused(value):
    with pytest.raises(ValueError, match="non-uniform length"):
        mx.array(value)


@pytest.mark.parametrize("value", ["hello", [[0, 1], ["hello", 1]], [None, 1], None, object()])
def test_values_that_are_not_numbers_are_refused(value):
    with pytest.raises(ValueError):
        mx.array(value)
    with pytest.raises(TypeError):  # the same error is a TypeError too
        mx.array(value)


def test_numpy_input_dtypes_and_copies():
    assert mx.array(np.ones(3)).dtype == mx.float32
    assert mx.array(np.ones(3, np.complex128)).dtype == mx.complex64
    assert mx.array(np.ones(3), dtype=mx.float64).dtype == mx.float64
    for t in (np.bool_, np.uint8, np.uint64, np.int8, np.int64, np.float16, np.complex64):
        assert mx.array(np.ones(2, t)).dtype.name == np.dtype(t).name.replace("bool", "bool")
    src = np.arange(4, dtype=np.int32)
    a = mx.array(src)
    src[0] = 99
    assert a.tolist() == [0, 1, 2, 3]
    assert mx.array(np.arange(6).reshape(2, 3).T).tolist() == np.arange(6).reshape(2, 3).T.tolist()
    with pytest.raises(ValueError):
        mx.array(np.array(["a", "b"]))


def test_buffers_become_uint8():
    assert mx.array(b"Hello").tolist() == [72, 101, 108, 108, 111]
    assert mx.array(bytearray([1, 2, 3])).dtype == mx.uint8
    assert mx.array(memoryview(np.arange(3, dtype=np.int16))).dtype == mx.int16
    assert bytes(mx.arange(3).astype(mx.int16)) == np.arange(3, dtype=np.int16).tobytes()


def test_lists_of_arrays_promote_and_keep_the_graph():
    z = mx.array([mx.array([1.0], mx.float16), mx.array([2.0], mx.int8)])
    assert z.dtype == mx.float16 and z.tolist() == [[1.0], [2.0]]
    z = mx.array([mx.array([1], mx.uint64), mx.array([2], mx.int8)])
    assert z.dtype == mx.float32
    x, y = mx.array([True]), mx.array([False])
    assert mx.array([[x, [2.0]], [[3.0], y]]).tolist() == [[[1.0], [2.0]], [[3.0], [0.0]]]
    with pytest.raises(ValueError, match="^Initialization encountered non-uniform length.$"):
        mx.array([mx.array([1.0]), 1.0])
    with pytest.raises(ValueError, match="^Initialization encountered non-uniform length.$"):
        mx.array([1.0, mx.array([1.0])])

    def f(x):
        return (2 * mx.array([x, mx.array([2.0])])).sum()

    assert mx.grad(f)(mx.array([1.0])).item() == 2.0


def test_construction_from_pytorch():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    a = mx.array(t)
    assert a.dtype == mx.float32 and a.tolist() == t.tolist()
    assert mx.array(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    assert mx.array(torch.tensor([1, 2], dtype=torch.int16)).dtype == mx.int16
    with pytest.warns(UserWarning):  # PyTorch: complex32 is experimental
        half_complex = torch.ones(3, dtype=torch.complex32)
    with pytest.raises(ValueError):
        mx.from_dlpack(half_complex)


# -- asarray and from_dlpack -----------------------------------------------------------------


def test_asarray():
    assert mx.asarray(((1, 2), [3, 4])).tolist() == [[1, 2], [3, 4]]
    assert mx.asarray(3.14).item() == float(np.float32(3.14))
    assert mx.asarray(1 + 2j).item() == 1 + 2j
    assert mx.asarray(42, dtype=mx.float16).dtype == mx.float16
    ints = mx.array([1, 2, 3])
    assert mx.asarray(ints, dtype=mx.float32).tolist() == [1.0, 2.0, 3.0]
    assert mx.asarray(ints, copy=True).tolist() == [1, 2, 3]
    for value in (ints, [1, 2, 3], np.arange(3)):
        with pytest.raises(ValueError):
            mx.asarray(value, copy=False)
    src = np.arange(3, dtype=np.int32)
    a = mx.asarray(src)
    src[0] = 7
    assert a.tolist() == [0, 1, 2]


def test_from_dlpack():
    x = np.arange(12, dtype=np.float32).reshape(3, 4).T
    assert mx.from_dlpack(x).tolist() == x.tolist()
    assert mx.from_dlpack(np.arange(20, dtype=np.int32)[2:10:2]).tolist() == [2, 4, 6, 8]
    assert mx.from_dlpack(np.broadcast_to(np.int32(7), (3,))).tolist() == [7, 7, 7]
    for t, want in (
        (np.float64, mx.float32),
        (np.complex128, mx.complex64),
        (np.uint16, mx.uint16),
    ):
        assert mx.from_dlpack(np.ones(2, t)).dtype is want
    with pytest.raises(ValueError):
        mx.from_dlpack(np.arange(5, dtype=np.float32)[::-1])
    with pytest.raises(ValueError):
        mx.from_dlpack(np.ones(2), copy=False)
    y = mx.from_dlpack(x, copy=True)
    x += 1
    assert y.tolist() == (x - 1).tolist()


# -- out to NumPy and DLPack -----------------------------------------------------------------


class _CpuDLPack:
    def __init__(self, array):
        self.array = array

    def __dlpack_device__(self):
        return (1, 0)

    def __dlpack__(self, *args, **kwargs):
        kwargs["dl_device"] = (1, 0)
        return self.array.__dlpack__(*args, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: mx.array(1, dtype=mx.int32),
        lambda: mx.array([[1.0, 2.0], [3.0, 4.0]]),
        lambda: mx.arange(16).reshape(4, 4)[::2, ::2],
        lambda: mx.broadcast_to(mx.array([1.0, 2.0]), (3, 2)),
        lambda: mx.array([1 + 2j], mx.complex64),
    ],
)
def test_dlpack_export_to_numpy_and_pytorch(make):
    x = make()
    y = np.from_dlpack(_CpuDLPack(x))
    assert y.dtype == np.asarray(x).dtype and y.tolist() == x.tolist()
    assert x.__dlpack_device__() == (1, 0)
    torch = pytest.importorskip("torch")
    assert torch.from_dlpack(x).tolist() == x.tolist()


def test_dlpack_refuses_other_devices():
    with pytest.raises(BufferError):
        mx.array([1.0]).__dlpack__(dl_device=(2, 0))


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_numpy_views_keep_the_array_alive():
    a = mx.arange(3)
    wr = weakref.ref(a)
    view = np.array(a, copy=False)
    assert not view.flags.owndata and view.tolist() == [0, 1, 2]
    a = None
    gc.collect()
    assert wr() is not None
    view = None
    gc.collect()
    assert wr() is None
    owned = np.array(mx.ones((2, 2)))
    assert owned.flags.owndata and owned.flags.writeable


def test_scalar_conversions():
    assert (int(mx.array(1.5)), float(mx.array(1)), complex(mx.array(1.5))) == (1, 1.0, 1.5)
    assert complex(mx.array(1 + 2j)) == 1 + 2j
    for conv in (int, float, complex):
        with pytest.raises(ValueError):
            conv(mx.zeros((2, 1)))


def test_array_namespace_and_version():
    ns = mx.array(1.0).__array_namespace__()
    assert ns is mx
    for name in ("asarray", "result_type", "can_cast", "isdtype", "add", "array"):
        assert hasattr(ns, name)
    with pytest.raises(ValueError):
        mx.array(1.0).__array_namespace__(api_version="2023.12")
    assert mx.__version__ == chainrule.__version__


# -- operators with other objects ------------------------------------------------------------


def test_equality_with_non_arrays_is_a_boolean():
    a = mx.array([1, 2, 3])
    assert (a == [1, 2, 3]) is False and (a == (1, 2, 3)) is False
    assert (a != [1, 2, 3]) is True and (a == "x") is False and (a != None) is True  # noqa: E711
    assert (a == np.array([1, 2, 3])).tolist() == [True, True, True]
    assert (a == 2).tolist() == [False, True, False]


@pytest.mark.parametrize(
    "op",
    [
        lambda a, o: a < o,
        lambda a, o: a >= o,
        lambda a, o: a * o,
        lambda a, o: a // o,
        lambda a, o: a % o,
        lambda a, o: a**o,
        lambda a, o: a & o,
        lambda a, o: o - a,
    ],
)
@pytest.mark.parametrize("other", ["hello", [1, 2, 3], (1, 2, 3)])
def test_operators_refuse_lists_tuples_and_strings(op, other):
    with pytest.raises(ValueError, match="Cannot perform"):
        op(mx.array([1, 2, 3]), other)


def test_in_place_operators_refuse_them_too():
    a = mx.array([1.0, 2.5, 3.25])
    with pytest.raises(ValueError):
        a *= "hello"
    with pytest.raises(ValueError):
        a /= [1, 2, 3]
    assert (mx.add(a, [1, 2, 3])).tolist() == [2.0, 4.5, 6.25]  # functions accept lists


def test_operators_accept_numpy_and_bitwise_rules():
    a = mx.array([1, 2, 3])
    assert (a + np.array([1, 1, 1], np.int32)).tolist() == [2, 3, 4]
    assert (mx.array(1) + np.array(2, dtype=np.int32)).dtype == mx.int32
    assert (mx.array(True) & True).item() is True and (mx.array(False) ^ True).item() is True
    assert (~mx.array(False)).item() is True and (mx.array([6]) | 1).tolist() == [7]
    for op in (lambda: mx.array(1.0) & mx.array(1), lambda: mx.array(1.0) | 1):
        with pytest.raises(ValueError):
            op()


# -- printing --------------------------------------------------------------------------------


def test_print_precision():
    x = mx.array([1.123456789])
    assert str(x) == "array([1.12346], dtype=float32)"
    with mx.printoptions(precision=4):
        assert str(x) == "array([1.1235], dtype=float32)"
        assert mx.get_printoptions().precision == 4
    assert str(x) == "array([1.12346], dtype=float32)"
    try:
        mx.set_printoptions(precision=2)
        assert str(mx.sin(x)) == "array([0.90], dtype=float32)"
        assert str(mx.array([1 - 2j])) == "array([1.00-2.00j], dtype=complex64)"
    finally:
        mx.set_printoptions()
    assert mx.get_printoptions().precision == -1
    assert str(mx.array([1.2], dtype=mx.float16)) == "array([1.2002], dtype=float16)"


# -- indexed updates -------------------------------------------------------------------------

AT = [
    ("add", np.add),
    ("subtract", np.subtract),
    ("multiply", np.multiply),
    ("divide", np.divide),
    ("maximum", np.maximum),
    ("minimum", np.minimum),
]


@pytest.mark.parametrize("name,ufunc", AT)
def test_at_updates_match_numpy_ufunc_at(name, ufunc):
    rng = np.random.default_rng(3)
    base = rng.random((5, 3), dtype=np.float32) + 0.5
    idx = np.array([0, 2, 0, 4])
    upd = rng.random((4, 3), dtype=np.float32) + 0.5
    got = getattr(mx.array(base).at[mx.array(idx)], name)(mx.array(upd))
    want = base.copy()
    ufunc.at(want, idx, upd)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    # the update's leading size-one axes are dropped (MLX)
    got = getattr(mx.array(base).at[1:3], name)(mx.array(upd[:1])[None, None])
    want = base.copy()
    want[1:3] = ufunc(want[1:3], upd[:1])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_at_needs_an_index_and_setitem_drops_leading_axes():
    with pytest.raises(ValueError, match="Must give indices"):
        mx.array(1).at.add(1)
    assert mx.array(1).at[None].add(1).item() == 2
    a = mx.array([1, 2, 3])
    a[0] = mx.array([[[7]]])
    assert a.tolist() == [7, 2, 3]
