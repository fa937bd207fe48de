"""Pitfall 3: no silently wrong gradient.

The complaints: in-place updates that corrupt the recorded graph (PyTorch's "one of the
variables needed for gradient computation has been modified by an inplace operation", or
no error and a wrong answer in micrograd/tinygrad-style engines), strided slices whose
scatter-back drops or duplicates elements, a node reused many times whose cotangents are
overwritten instead of summed, and the same array passed as two arguments. Each case is
compared with float64 central differences, element by element, and with ``check_grads``
(random directions, forward and reverse mode, second order).
"""

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn

EPS = 1e-6


def numeric_grads(f, args):
    """Central differences of scalar ``f`` with respect to every element of every argument."""
    args = [np.array(a, dtype=np.float64) for a in args]
    grads = []
    for i, a in enumerate(args):
        g = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            plus = [b.copy() for b in args]
            minus = [b.copy() for b in args]
            plus[i][j] += EPS
            minus[i][j] -= EPS
            hi = float(f(*[mx.array(b, dtype=mx.float64) for b in plus]).item())
            lo = float(f(*[mx.array(b, dtype=mx.float64) for b in minus]).item())
            g[j] = (hi - lo) / (2 * EPS)
        grads.append(g)
    return grads


def assert_gradients_right(f, *args, order=2):
    """``mx.grad`` equals the finite differences everywhere; ``check_grads`` agrees too."""
    points = [mx.array(np.asarray(a, dtype=np.float64), dtype=mx.float64) for a in args]
    analytic = mx.grad(f, argnums=tuple(range(len(args))))(*points)
    if len(args) == 1:  # as MLX, one argnum gives its gradient alone, even as a tuple
        analytic = (analytic,)
    for k, (ana, num) in enumerate(zip(analytic, numeric_grads(f, args))):
        np.testing.assert_allclose(
            np.array(ana), num, rtol=1e-6, atol=1e-7, err_msg=f"gradient of argument {k}"
        )
    mx.check_grads(f, points, order=order)


RNG = np.random.default_rng(0)
X5 = RNG.normal(size=5)
V2 = RNG.normal(size=2)
M = RNG.normal(size=(4, 6))


# -- in-place updates inside a traced function ------------------------------------------------------


def set_slice_of_the_argument(x, v):
    x[1:3] = v  # the traced argument itself is updated
    return (x**2 * mx.arange(1, 6)).sum()


def set_slice_of_an_intermediate(x, v):
    y = mx.sin(x)
    y[1:3] = v * y[3:5]  # the new value depends on the old one
    return (y**3).sum()


def set_strided_elements(x, v):
    y = x * 1.5
    y[::3] = v  # elements 0 and 3
    return (mx.exp(y) * x).sum()


def set_one_element_twice(x, v):
    y = x + 0.0
    y[2] = v[0]
    y[2] = y[2] * v[1]  # a second update of the same element
    return (y * y).sum()


def graph_recorded_before_an_update_keeps_the_old_value(x, v):
    y = x * 2.0
    z = y * y  # recorded with the old y
    y[0:2] = v  # PyTorch raises here at backward time; the right answer is well defined
    return z.sum() + (y * x).sum()


def add_in_place(x, v):
    x += mx.concatenate([v, v, v[:1]])  # on the argument
    x *= mx.cos(x)  # uses the updated value
    return (x**2).sum()


def in_place_on_an_intermediate(x, v):
    y = x * 1.0
    y -= x[::-1] * 0.5
    y /= 1.0 + v.sum() ** 2
    y **= 2
    return y.sum()


IN_PLACE = [
    set_slice_of_the_argument,
    set_slice_of_an_intermediate,
    set_strided_elements,
    set_one_element_twice,
    graph_recorded_before_an_update_keeps_the_old_value,
    add_in_place,
    in_place_on_an_intermediate,
]


@pytest.mark.parametrize("f", IN_PLACE, ids=lambda f: f.__name__)
def test_in_place_updates_inside_a_traced_function(f):
    assert_gradients_right(f, X5, V2)


def test_in_place_updates_do_not_touch_the_callers_arrays():
    x, v = mx.array(X5), mx.array(V2)
    before = np.array(x)
    mx.grad(set_slice_of_the_argument, argnums=(0, 1))(x, v)
    mx.grad(add_in_place, argnums=(0, 1))(x, v)
    np.testing.assert_array_equal(np.array(x), before)


def test_the_slice_that_was_overwritten_gets_no_gradient():
    """The concrete complaint: ``x[1:3] = v`` on the traced argument made every gradient 0."""
    gx, gv = mx.grad(set_slice_of_the_argument, argnums=(0, 1))(mx.array(X5), mx.array(V2))
    weights = np.arange(1, 6)
    expected = 2 * X5 * weights
    expected[1:3] = 0.0  # overwritten: the result does not depend on them
    np.testing.assert_allclose(np.array(gx), expected, rtol=1e-6)
    np.testing.assert_allclose(np.array(gv), 2 * V2 * weights[1:3], rtol=1e-6)


def test_in_place_updates_with_backward():
    """The PyTorch way in: ``requires_grad`` leaves and ``.backward()``."""
    for f in IN_PLACE:
        x = mx.array(X5, dtype=mx.float64)
        v = mx.array(V2, dtype=mx.float64)
        x0 = x  # the leaf (f may rebind the handle it receives)
        x.requires_grad = True
        v.requires_grad = True
        f(x * 1.0, v).backward()
        num = numeric_grads(lambda a, b, f=f: f(a * 1.0, b), [X5, V2])
        np.testing.assert_allclose(np.array(x0.grad), num[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.array(v.grad), num[1], rtol=1e-6, atol=1e-7)


# -- strided slices that pick single elements ---------------------------------------------------

SLICES = {
    "x[::3]": lambda m: m.reshape(-1)[::3],
    "x[1::5] (five single elements)": lambda m: m.reshape(-1)[1::5],
    "x[::-2]": lambda m: m.reshape(-1)[::-2],
    "x[2:3]": lambda m: m[2:3],
    "x[-1:, -1:]": lambda m: m[-1:, -1:],
    "x[::3, 1::4]": lambda m: m[::3, 1::4],
    "x[1, ::5]": lambda m: m[1, ::5],
    "x[..., ::7] (one column)": lambda m: m[..., ::7],
    "x[3, 5] (a scalar)": lambda m: m[3, 5],
    "x[::-3, ::-4]": lambda m: m[::-3, ::-4],
}


@pytest.mark.parametrize("pick", SLICES.values(), ids=list(SLICES))
def test_strided_slices_that_pick_single_elements(pick):
    weights = mx.array(np.arange(1.0, 25.0).reshape(4, 6), dtype=mx.float64)

    def f(m):
        part = pick(m)
        return (mx.sin(part) * pick(weights)).sum() + (part**2).sum()

    assert_gradients_right(f, M)


def test_a_slice_of_a_slice_of_a_slice():
    def f(m):
        return (m[::-1][1::2][:, ::3] ** 3).sum() + m[1:, 2:][::2, ::2].sum() * m[0, 0]

    assert_gradients_right(f, M)


# -- a node reused many times -----------------------------------------------------------------------


def reused_in_a_long_sum(x):
    y = mx.tanh(x)
    total = y
    for k in range(200):  # 201 uses of one node
        total = total + y * (k % 3)
    return total.sum()


def reused_in_many_different_ops(x):
    y = x * x
    parts = [mx.sin(y), mx.exp(-y), y**3, mx.sqrt(y + 1.0), y[::2], mx.maximum(y, 0.5), y.T]
    return sum((p * p).sum() for p in parts) + (y @ y.T).sum()


def reused_in_both_branches_of_where(x):
    y = mx.exp(x * 0.3)
    return mx.where(x > 0, y * y, y + 1.0).sum() + (y * mx.where(x < 0, y, 2.0)).sum()


def reused_through_a_loop_of_matmuls(x):
    h = x
    for _ in range(30):
        h = mx.tanh(h @ x.T @ x * 0.1 + x)
    return (h * x).sum()


REUSED = [
    reused_in_a_long_sum,
    reused_in_many_different_ops,
    reused_in_both_branches_of_where,
    reused_through_a_loop_of_matmuls,
]


@pytest.mark.parametrize("f", REUSED, ids=lambda f: f.__name__)
def test_a_node_reused_many_times(f):
    assert_gradients_right(
        f, M[:3, :4], order=2 if f is not reused_through_a_loop_of_matmuls else 1
    )


def test_a_layer_applied_several_times_sums_its_gradients():
    """Tied weights: one Linear used three times in the forward pass."""
    mx.random.seed(0)
    layer = nn.Linear(4, 4)
    layer.set_dtype(mx.float64)
    x = mx.array(M[:2, :4], dtype=mx.float64)
    w0, b0 = np.array(layer.weight), np.array(layer.bias)

    def loss(w, b):
        h = x
        for _ in range(3):
            h = mx.tanh(h @ w.T + b)
        return (h**2).sum()

    num_w, num_b = numeric_grads(loss, [w0, b0])
    _, grads = nn.value_and_grad(
        layer, lambda m, x: (mx.tanh(m(mx.tanh(m(mx.tanh(m(x)))))) ** 2).sum()
    )(layer, x)
    np.testing.assert_allclose(np.array(grads["weight"]), num_w, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.array(grads["bias"]), num_b, rtol=1e-6, atol=1e-8)


# -- the same array passed as two arguments --------------------------------------------------------


def two_arguments(a, b):
    return (a * b + mx.sin(a) * b**2).sum() + (a @ b.T).sum()


def test_the_same_array_as_two_arguments_gets_both_partial_derivatives():
    x = mx.array(M[:3, :3], dtype=mx.float64)
    ga, gb = mx.grad(two_arguments, argnums=(0, 1))(x, x)
    num_a, num_b = numeric_grads(two_arguments, [M[:3, :3], M[:3, :3]])
    np.testing.assert_allclose(np.array(ga), num_a, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.array(gb), num_b, rtol=1e-6, atol=1e-8)
    assert not np.allclose(num_a, num_b)  # the two partials really differ
    # the total derivative of x -> f(x, x) is their sum
    total = mx.grad(lambda x: two_arguments(x, x))(x)
    np.testing.assert_allclose(np.array(total), num_a + num_b, rtol=1e-6, atol=1e-8)
    mx.check_grads(lambda x: two_arguments(x, x), [x], order=2)


def test_the_same_leaf_as_two_arguments_with_backward():
    x = mx.array(M[:3, :3], dtype=mx.float64)
    x.requires_grad = True
    two_arguments(x, x).backward()
    num_a, num_b = numeric_grads(two_arguments, [M[:3, :3], M[:3, :3]])
    np.testing.assert_allclose(np.array(x.grad), num_a + num_b, rtol=1e-6, atol=1e-8)
    # a second backward accumulates, as in PyTorch
    two_arguments(x, x).backward()
    np.testing.assert_allclose(np.array(x.grad), 2 * (num_a + num_b), rtol=1e-6, atol=1e-8)


def test_the_same_array_in_a_tree_argument():
    def f(params):
        return (params["a"] * params["b"] ** 2).sum()

    x = mx.array(X5, dtype=mx.float64)
    g = mx.grad(f)({"a": x, "b": x})
    np.testing.assert_allclose(np.array(g["a"]), X5**2, rtol=1e-12)
    np.testing.assert_allclose(np.array(g["b"]), 2 * X5 * X5, rtol=1e-12)
