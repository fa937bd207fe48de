"""``mx.array``: construction and MLX's dtype rules, conversion, printing, operators, indexing
and indexed updates."""

from __future__ import annotations

import copy
import operator
import pickle

import numpy as np
import pytest

import chainrule.core as mx

# -- construction and dtype rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value,dtype",
    [
        (1.5, mx.float32),
        ([1.0, 2.0], mx.float32),
        ([1, 2.5], mx.float32),
        (np.ones(3), mx.float32),  # float64 NumPy data becomes float32
        (np.float64(2.0), mx.float32),
        (np.ones(3, dtype=np.float32), mx.float32),
        (np.ones(3, dtype=np.float16), mx.float16),
        (3, mx.int32),
        ([1, 2, 3], mx.int32),
        (2**40, mx.int64),  # too big for int32
        (np.arange(3), mx.int64),  # NumPy integers keep their width
        (np.arange(3, dtype=np.int8), mx.int8),
        (np.arange(3, dtype=np.uint8), mx.uint8),
        (np.int16(3), mx.int16),
        (True, mx.bool_),
        ([True, False], mx.bool_),
        (np.array([True]), mx.bool_),
        (1 + 2j, mx.complex64),
        ([], mx.float32),
    ],
)
def test_construction_dtype_rules(value, dtype):
    assert mx.array(value).dtype == dtype


def test_construction_from_arrays_and_nested_lists():
    a = mx.array([1.0, 2.0])
    assert mx.array(a).tolist() == [1.0, 2.0]
    assert mx.array([a, a]).shape == (2, 2)
    assert mx.array([[mx.array(1.0), 2.0]]).tolist() == [[1.0, 2.0]]
    assert mx.array([mx.array(1, dtype=mx.int8)]).dtype == mx.int8
    assert mx.array([1, 2], dtype=mx.float16).dtype == mx.float16
    assert mx.array([1, 2], dtype=float).dtype == mx.float32
    assert mx.array([1.7, 2.2], dtype=int).tolist() == [1, 2]
    assert mx.array(a, dtype=mx.int32).dtype == mx.int32


def test_construction_copies_numpy_input():
    n = np.array([1.0, 2.0], dtype=np.float32)
    a = mx.array(n)
    n[0] = 9.0
    assert a.tolist() == [1.0, 2.0]


def test_construction_errors():
    with pytest.raises(TypeError):
        mx.array("abc")
    with pytest.raises(ValueError, match="non-uniform length"):
        mx.array([[1, 2], [3]])
    with pytest.raises(TypeError):
        mx.array(None)


def test_construction_from_torch_tensor():
    torch = pytest.importorskip("torch")
    a = mx.array(torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert a.dtype == mx.float32
    assert a.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "array_dtype,scalar,expected",
    [
        (mx.float32, 2.5, mx.float32),  # Python scalars never widen
        (mx.float16, 2.5, mx.float16),
        (mx.float32, 2, mx.float32),
        (mx.int32, 2, mx.int32),
        (mx.int8, 2, mx.int8),
        (mx.int32, 2.5, mx.float32),  # an int array meeting a float becomes float32
        (mx.int64, 2.5, mx.float32),
        (mx.uint8, 3, mx.uint8),
        (mx.bool_, 2, mx.int32),
        (mx.bool_, 2.5, mx.float32),
        (mx.float64, 2.5, mx.float64),
    ],
)
def test_python_scalars_are_weakly_typed(array_dtype, scalar, expected):
    a = mx.array([1, 2], dtype=array_dtype)
    for op in (operator.add, operator.sub, operator.mul):
        assert op(a, scalar).dtype == expected
        assert op(scalar, a).dtype == expected


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (mx.int8, mx.int32, mx.int32),
        (mx.uint8, mx.int8, mx.int16),
        (mx.uint32, mx.int32, mx.int64),
        (mx.int32, mx.float16, mx.float16),  # an integer meeting a float takes the float's type
        (mx.int64, mx.float32, mx.float32),
        (mx.float16, mx.float32, mx.float32),
        (mx.float32, mx.float64, mx.float64),
        (mx.bool_, mx.int32, mx.int32),
        (mx.float32, mx.complex64, mx.complex64),
    ],
)
def test_array_promotion(a, b, expected):
    x, y = mx.array([1], dtype=a), mx.array([1], dtype=b)
    assert (x + y).dtype == expected
    assert (y + x).dtype == expected


def test_division_of_integers_is_float32():
    assert (mx.array([1, 2]) / mx.array([2, 2])).dtype == mx.float32
    assert (mx.array([1, 2]) / 2).tolist() == [0.5, 1.0]
    assert (1 / mx.array([2, 4])).tolist() == [0.5, 0.25]
    assert (mx.array([7, 8]) // 2).dtype == mx.int32


# -- conversion ---------------------------------------------------------------------------------


def test_numpy_interop():
    a = mx.array([[1.0, 2.0], [3.0, 4.0]])
    n = np.asarray(a)
    assert n.dtype == np.float32 and n.shape == (2, 2)
    assert np.array(a, dtype=np.float64).dtype == np.float64
    assert a.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    a.numpy()[0, 0] = 100.0  # a copy: the array is unchanged
    assert a[0, 0].item() == 1.0
    # NumPy functions compute on the values
    assert np.mean(a) == pytest.approx(2.5)
    assert np.sum(a, axis=0).tolist() == [4.0, 6.0]
    assert np.concatenate([a, a]).shape == (4, 2)
    assert isinstance(np.exp(a), np.ndarray)
    # NumPy arrays on the left defer to our operators
    out = np.ones(2) + a
    assert isinstance(out, mx.array) and out.dtype == mx.float32


def test_scikit_learn_accepts_arrays():
    metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = mx.array([1, 0, 1, 1]), mx.array([1, 1, 1, 0])
    assert metrics.accuracy_score(y_true, y_pred) == pytest.approx(0.5)
    assert metrics.precision_score(y_true, y_pred) == pytest.approx(2 / 3)
    assert metrics.mean_squared_error(mx.array([1.0, 2.0]), mx.array([1.0, 4.0])) == 2.0


def test_len_iter_item_tolist():
    a = mx.array([[1, 2], [3, 4], [5, 6]])
    assert len(a) == 3
    rows = list(a)
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4], [5, 6]]
    assert all(isinstance(r, mx.array) for r in rows)
    assert mx.array([2.5]).item() == 2.5
    assert isinstance(mx.array(3).item(), int)
    assert isinstance(mx.array(True).item(), bool)
    assert a.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert float(mx.array(1.5)) == 1.5 and int(mx.array(7)) == 7
    assert [10, 20, 30][mx.array(1)] == 20
    with pytest.raises(TypeError):
        len(mx.array(1.0))
    with pytest.raises(TypeError):
        iter(mx.array(1.0)).__next__()
    with pytest.raises(ValueError, match=r"\(2,\)"):
        mx.array([1, 2]).item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mx.array([1, 2]))


def test_size_is_an_int_and_callable():
    a = mx.zeros((2, 3))
    assert a.size == 6 and isinstance(a.size, int)
    assert a.size + 1 == 7
    assert a.size() == (2, 3)
    assert a.size(0) == 2 and a.size(-1) == 3
    assert a.size().numel() == 6
    assert a.numel() == 6 and a.dim() == 2
    assert a.shape == (2, 3) and a.ndim == 2
    assert a.itemsize == 4 and a.nbytes == 24


def test_methods_match_functions():
    x = mx.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    n = np.array(x)
    np.testing.assert_allclose(x.sum(axis=1).numpy(), n.sum(axis=1))
    np.testing.assert_allclose(x.mean().item(), n.mean(), rtol=1e-6)
    np.testing.assert_allclose(x.max(axis=0).numpy(), n.max(axis=0))
    np.testing.assert_allclose(x.min().item(), n.min())
    np.testing.assert_allclose(x.var(axis=0).numpy(), n.var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(x.std().item(), n.std(), rtol=1e-6)
    np.testing.assert_allclose(x.prod(axis=1).numpy(), n.prod(axis=1))
    np.testing.assert_allclose(x.abs().numpy(), np.abs(n))
    np.testing.assert_allclose(x.square().numpy(), n**2)
    np.testing.assert_allclose(x.abs().sqrt().numpy(), np.sqrt(np.abs(n)), rtol=1e-6)
    np.testing.assert_allclose(x.exp().numpy(), np.exp(n), rtol=1e-6)
    np.testing.assert_allclose(x.abs().log().numpy(), np.log(np.abs(n)), rtol=1e-6)
    assert x.argmax(axis=1).tolist() == [2, 1] and x.argmax(axis=1).dtype == mx.uint32
    assert x.argmin().item() == 5
    assert x.T.shape == (3, 2) and x.transpose().shape == (3, 2)
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((6,)).shape == (6,)
    assert x.flatten().tolist() == n.reshape(-1).tolist()
    assert mx.zeros((1, 3, 1)).squeeze().shape == (3,)
    assert x.astype(mx.int32).dtype == mx.int32
    assert mx.zeros((2, 3, 4)).transpose(2, 0, 1).shape == (4, 2, 3)


# -- printing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,kwargs,text",
    [
        ([1, 2, 3], {}, "array([1, 2, 3], dtype=int32)"),
        ([1.0, 2.5, 3.0], {}, "array([1, 2.5, 3], dtype=float32)"),
        (1.5, {}, "array(1.5, dtype=float32)"),
        ([True, False], {}, "array([True, False], dtype=bool)"),
        ([[1, 2], [3, 4]], {}, "array([[1, 2],\n       [3, 4]], dtype=int32)"),
        ([1 / 3], {}, "array([0.333333], dtype=float32)"),
        ([1e-8, float("nan"), -float("inf")], {}, "array([1e-08, nan, -inf], dtype=float32)"),
        (list(range(10)), {}, "array([0, 1, 2, ..., 7, 8, 9], dtype=int32)"),
        ([1 + 2j, 1 - 1j], {}, "array([1+2j, 1-1j], dtype=complex64)"),
        ([1, 2], {"dtype": mx.uint8}, "array([1, 2], dtype=uint8)"),
    ],
)
def test_repr_like_mlx(value, kwargs, text):
    a = mx.array(value, **kwargs)
    assert repr(a) == text
    assert str(a) == text


def test_repr_nested_and_requires_grad():
    text = repr(mx.zeros((2, 2, 2), dtype=mx.int32))
    assert text == (
        "array([[[0, 0],\n        [0, 0]],\n       [[0, 0],\n        [0, 0]]], dtype=int32)"
    )
    assert repr(mx.array([1.0], requires_grad=True)).endswith("requires_grad=True)")


# -- copying ------------------------------------------------------------------------------------


def test_copy_pickle_hash():
    a = mx.array([1.0, 2.0], requires_grad=True)
    b = copy.deepcopy(a)
    assert b.requires_grad and b.tolist() == [1.0, 2.0]
    c = pickle.loads(pickle.dumps(mx.array([[1, 2]], dtype=mx.int16)))
    assert c.dtype == mx.int16 and c.tolist() == [[1, 2]]
    assert pickle.loads(pickle.dumps(mx.float16)) is mx.float16
    assert {a: 1}[a] == 1


# -- operators ----------------------------------------------------------------------------------

A = np.array([[1.5, -2.0, 3.0], [0.5, 4.0, -1.0]], dtype=np.float32)
B = np.array([2.0, 0.5, -3.0], dtype=np.float32)


@pytest.mark.parametrize(
    "op",
    [
        operator.add,
        operator.sub,
        operator.mul,
        operator.truediv,
        operator.floordiv,
        operator.mod,
        operator.lt,
        operator.le,
        operator.gt,
        operator.ge,
        operator.eq,
        operator.ne,
    ],
)
def test_binary_operators_and_reflections(op):
    a, b = mx.array(A), mx.array(B)
    np.testing.assert_allclose(np.asarray(op(a, b)), op(A, B), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(op(a, 2.0)), op(A, np.float32(2.0)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(op(2.0, a)), op(np.float32(2.0), A), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(op(A, b)), op(A, B), rtol=1e-6)  # NumPy on the left


def test_power_and_matmul_operators():
    a = mx.array(np.abs(A))
    np.testing.assert_allclose((a**2).numpy(), np.abs(A) ** 2, rtol=1e-6)
    np.testing.assert_allclose((2**a).numpy(), 2 ** np.abs(A), rtol=1e-6)
    np.testing.assert_allclose((a**a).numpy(), np.abs(A) ** np.abs(A), rtol=1e-6)
    assert (mx.array([2, 3]) ** 2).dtype == mx.int32
    m = mx.array(A)
    np.testing.assert_allclose((m @ mx.array(B)).numpy(), A @ B, rtol=1e-6)
    np.testing.assert_allclose((A.T @ m).numpy(), A.T @ A, rtol=1e-6)
    assert (mx.array([2, 3]) ** -1).tolist() == [0, 0]  # MLX: integers to negative powers: 0


def test_unary_operators():
    a = mx.array(A)
    np.testing.assert_allclose((-a).numpy(), -A)
    np.testing.assert_allclose((+a).numpy(), A)
    np.testing.assert_allclose(abs(a).numpy(), np.abs(A))
    assert (~mx.array([True, False])).tolist() == [False, True]
    assert (~mx.array([1, 2])).tolist() == [-2, -3]


def test_bitwise_and_logical_operators():
    t, f = mx.array([True, True, False]), mx.array([True, False, False])
    assert (t & f).tolist() == [True, False, False]
    assert (t | f).tolist() == [True, True, False]
    assert (t ^ f).tolist() == [False, True, False]
    assert (True & f).tolist() == [True, False, False]
    i = mx.array([12, 10])
    assert (i & 6).tolist() == [4, 2] and (6 & i).tolist() == [4, 2]
    assert (i | 1).tolist() == [13, 11] and (1 | i).tolist() == [13, 11]
    assert (i ^ 8).tolist() == [4, 2] and (8 ^ i).tolist() == [4, 2]
    assert (i << 1).tolist() == [24, 20] and (1 << mx.array([1, 2])).tolist() == [2, 4]
    assert (i >> 2).tolist() == [3, 2] and (16 >> mx.array([1, 2])).tolist() == [8, 4]
    assert ((i > 11) & (i < 13)).tolist() == [True, False]


def test_comparison_with_none_is_not_an_error():
    a = mx.array([1, 2])
    assert (a == None) is False  # noqa: E711
    assert (a != None) is True  # noqa: E711


def test_elementwise_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\)"):
        mx.ones((2, 3)) + mx.ones((4, 5))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not line up"):
        mx.ones((2, 3)) @ mx.ones((4, 5))


# -- indexing -----------------------------------------------------------------------------------

X = np.arange(24, dtype=np.float32).reshape(4, 6)


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        (1, 2),
        (-1, -2),
        slice(1, 3),
        (slice(None), slice(1, None, 2)),
        (slice(None, None, -1),),
        None,
        (None, 1),
        Ellipsis,
        (Ellipsis, 0),
        (1, Ellipsis, None),
        X[:, 0] > 5,
        X > 10,
        np.array([3, 0, 3]),
        (np.array([0, 2]), np.array([1, 5])),
        (slice(None), np.array([0, 0, 5])),
        [1, 0],
    ],
)
def test_getitem_matches_numpy(index):
    a = mx.array(X)
    mx_index = (
        tuple(mx.array(i) if isinstance(i, np.ndarray) else i for i in index)
        if isinstance(index, tuple)
        else (mx.array(index) if isinstance(index, np.ndarray) else index)
    )
    np.testing.assert_array_equal(np.asarray(a[mx_index]), X[index])
    np.testing.assert_array_equal(np.asarray(a[index]), X[index])  # NumPy indices work too


def test_getitem_with_scalar_array_and_errors():
    a = mx.array(X)
    assert a[mx.array(2)].tolist() == X[2].tolist()
    with pytest.raises(IndexError, match=r"\(4, 6\)"):
        a[10]


def test_setitem_rebinds_and_earlier_uses_keep_old_value():
    a = mx.array([1.0, 2.0, 3.0, 4.0])
    before = a * 1
    view = a[1:3]
    a[1] = 10.0
    assert a.tolist() == [1.0, 10.0, 3.0, 4.0]
    assert before.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert view.tolist() == [2.0, 3.0]
    a[mx.array([0, 2])] = mx.array([7.0, 8.0])
    assert a.tolist() == [7.0, 10.0, 8.0, 4.0]
    a[a > 7.5] = 0.0
    assert a.tolist() == [7.0, 0.0, 0.0, 4.0]
    a[...] = 1
    assert a.tolist() == [1.0] * 4 and a.dtype == mx.float32
    m = mx.zeros((2, 3))
    m[:, 1] = mx.array([5.0, 6.0])
    assert m.tolist() == [[0, 5, 0], [0, 6, 0]]
    with pytest.raises(ValueError, match="setitem"):
        m[0] = mx.ones(4)


def test_setitem_is_differentiable_inside_grad():
    def f(x):
        y = x * 1.0
        z = y * 2  # uses the old y
        y[1] = x[0] ** 2
        return (y * z).sum()

    # y = [x0, x0^2, x2], z = 2x: f = 2x0^2 + 2 x1 x0^2 + 2 x2^2
    x = mx.array([1.0, 2.0, 3.0])
    g = mx.grad(f)(x)
    assert g.tolist() == pytest.approx([4 * 1 + 4 * 2 * 1, 2 * 1, 4 * 3])

    def h(x):
        y = mx.zeros((3,))
        y[0] = x[1]
        y[2] = x[0] * 3
        return y.sum()

    assert mx.grad(h)(x).tolist() == [3.0, 1.0, 0.0]


def test_setitem_on_requires_grad_leaf():
    w = mx.array([1.0, 2.0], requires_grad=True)
    loss_before = (w * w).sum()
    with mx.no_grad():
        w[0] = 5.0  # an unrecorded update: still a leaf, with the new value
    assert w.is_leaf is True and w.requires_grad is True
    loss_before.backward()
    assert w.grad.tolist() == [2.0, 4.0]  # the graph saw the old value
    w.grad = None
    (w * w).sum().backward()
    assert w.grad.tolist() == [10.0, 4.0]
    # a recorded update makes the handle a computed array whose gradient reaches the leaf
    w[1] = 3.0
    assert w.is_leaf is False
    (w * w).sum().backward()
    assert w.grad.tolist() == [20.0, 4.0]


@pytest.mark.parametrize(
    "method,values,expected",
    [
        ("add", 1.0, [2.0, 0.0, 1.0]),
        ("subtract", 1.0, [-2.0, 0.0, -1.0]),
        ("multiply", 3.0, None),
        ("divide", 2.0, None),
        ("maximum", [5.0, 7.0, 0.5], [7.0, 0.0, 0.5]),
        ("minimum", [-5.0, -7.0, 0.5], [-7.0, 0.0, 0.0]),
    ],
)
def test_at_accumulates_over_repeated_indices(method, values, expected):
    idx = mx.array([0, 0, 2])
    base = mx.array([2.0, 2.0, 2.0]) if expected is None else mx.zeros(3)
    out = getattr(base.at[idx], method)(mx.array(values))
    if expected is None:
        factor = values**2 if method == "multiply" else 1 / values**2
        expected = [2.0 * factor, 2.0, 2.0 * (values if method == "multiply" else 1 / values)]
    assert out.tolist() == pytest.approx(expected)
    assert base.tolist() == ([2.0, 2.0, 2.0] if method in ("multiply", "divide") else [0, 0, 0])


def test_at_with_slices_ints_and_masks():
    a = mx.array([1.0, 2.0, 3.0])
    assert a.at[1:].add(mx.array([1.0, 1.0])).tolist() == [1.0, 3.0, 4.0]
    assert a.at[1].multiply(4.0).tolist() == [1.0, 8.0, 3.0]
    assert a.at[a > 1.5].subtract(1.0).tolist() == [1.0, 1.0, 2.0]
    m = mx.zeros((2, 2))
    assert m.at[mx.array([1, 1]), 0].add(1.0).tolist() == [[0, 0], [2, 0]]
    assert mx.array([1, 2, 3]).at[mx.array([0, 0])].add(5).tolist() == [11, 2, 3]


def test_at_gradients():
    idx = mx.array([0, 0, 2])
    w = mx.array([1.0, 2.0, 3.0])

    def f(x, v):
        return (x.at[idx].add(v) * w).sum()

    gx, gv = mx.grad(f, argnums=(0, 1))(mx.zeros(3), mx.ones(3))
    assert gx.tolist() == [1.0, 2.0, 3.0] and gv.tolist() == [1.0, 1.0, 3.0]

    def g(x, v):
        return (x.at[idx].maximum(v) * w).sum()

    gx, gv = mx.grad(g, argnums=(0, 1))(mx.array([1.0, 1.0, 4.0]), mx.array([5.0, 7.0, 0.0]))
    assert gx.tolist() == [0.0, 2.0, 3.0] and gv.tolist() == [0.0, 1.0, 0.0]

    def h(x, v):
        return (x.at[mx.array([0, 2])].multiply(v) * w).sum()

    gx, gv = mx.grad(h, argnums=(0, 1))(mx.array([1.0, 1.0, 4.0]), mx.array([5.0, 7.0]))
    assert gx.tolist() == [5.0, 2.0, 21.0] and gv.tolist() == [1.0, 12.0]
    for fn, args in [
        (lambda x, v: x.at[idx].maximum(v), [[1.0, 1.0, 4.0], [5.0, 7.0, 6.0]]),
        (lambda x, v: x.at[idx].minimum(v), [[1.0, 1.0, 4.0], [5.0, -7.0, -6.0]]),
        (lambda x, v: x.at[mx.array([2, 0])].divide(v), [[1.0, 1.0, 4.0], [5.0, 7.0]]),
    ]:
        mx.check_grads(fn, [mx.array(a) for a in args])
    with pytest.raises(ValueError, match="repeat"):
        mx.grad(lambda v: mx.ones(3).at[idx].multiply(v).sum())(mx.ones(3))


# -- in-place operators and formatting ------------------------------------------------------------


def test_inplace_operators_rebind_the_handle():
    a = mx.array([1.0, 2.0])
    alias = a
    before = a * 1
    a += 1
    assert alias is a and alias.tolist() == [2.0, 3.0]
    assert before.tolist() == [1.0, 2.0]
    for op, expected in [
        (operator.isub, [1.0, 2.0]),
        (operator.imul, [3.0, 6.0]),
        (operator.itruediv, [1.5, 3.0]),
        (operator.ipow, [2.25, 9.0]),
        (operator.ifloordiv, [2.0, 9.0]),
        (operator.imod, [2.0, 0.0]),
    ]:
        operand = {operator.ipow: 2, operator.ifloordiv: 1, operator.imod: 3}.get(op, 1.0)
        operand = 3.0 if op is operator.imul else (2.0 if op is operator.itruediv else operand)
        assert op(a, operand) is a
        assert a.tolist() == expected
    i = mx.array([12, 10])
    i &= 6
    assert i.tolist() == [4, 2]
    i |= 1
    i ^= 8
    i <<= 1
    i >>= 2
    assert i.tolist() == [6, 5]
    m = mx.eye(2)
    m @= mx.array([[1.0, 2.0], [3.0, 4.0]])
    assert m.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="division"):
        i /= 2


def test_manual_sgd_update_under_no_grad_keeps_the_leaf():
    w = mx.array([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with mx.no_grad():
        w -= 0.5 * w.grad
    assert w.is_leaf and w.requires_grad and w.tolist() == [0.0, 0.0]
    w.grad = None
    ((w - 1) ** 2).sum().backward()
    assert w.grad.tolist() == [-2.0, -2.0]


def test_inplace_update_inside_grad_is_differentiable():
    def f(x):
        y = x * 1
        y *= x
        y += 1
        return y.sum()

    assert mx.grad(f)(mx.array([1.0, 3.0])).tolist() == [2.0, 6.0]


def test_format():
    assert f"{mx.array(3.14159):.2f}" == "3.14"
    assert f"{mx.array(7):d}" == "7"
    assert f"{mx.array([1, 2])}" == "array([1, 2], dtype=int32)"
    with pytest.raises(TypeError, match="format"):
        f"{mx.array([1.0, 2.0]):.2f}"
    with pytest.raises(ValueError, match="inversion"):
        ~mx.array([1.5])
    assert (mx.array([1]) == "text") is False
