"""MLX's rules for the transforms' arguments and results, custom_function under jvp, checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core.array import Node


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


# -- argnums and argnames ----------------------------------------------------------------------


def test_argnums_are_checked_when_the_transform_is_made():
    f = lambda x, y: (x * y).sum()  # noqa: E731
    with pytest.raises(ValueError, match="twice"):
        mx.grad(f, argnums=(0, 0))
    with pytest.raises(TypeError):
        mx.value_and_grad(f, (None, None))
    with pytest.raises(ValueError, match="no argument"):
        mx.value_and_grad(f, ())
    with pytest.raises(ValueError, match="out of range"):
        mx.grad(f, argnums=2)(mx.ones(2), mx.ones(2))


def test_one_argnum_gives_its_gradient_alone_and_several_a_tuple():
    f = lambda x, y: (x * y).sum()  # noqa: E731
    x, y = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    close(mx.grad(f, argnums=[1])(x, y), x)
    gx, gy = mx.grad(f, argnums=[0, 1])(x, y)
    close(gx, y)
    close(gy, x)
    pos, kw = mx.grad(f, argnums=[], argnames=["y"])(x, y=y)
    assert pos is None and list(kw) == ["y"]
    close(kw["y"], x)
    with pytest.raises(ValueError, match="'y'"):
        mx.grad(f, argnames="y")(x, y)  # y given positionally


def test_differentiated_trees_hold_only_arrays():
    f = lambda p: p["x"] * p["y"]  # noqa: E731
    with pytest.raises(ValueError, match="float"):
        mx.grad(f)({"x": 0.5, "y": mx.array(2.0)})
    with pytest.raises(ValueError, match="str"):
        mx.grad(lambda x: x)("hello")
    # None leaves give None, and a bare Python number is still accepted
    g = mx.grad(lambda p: p["x"] * 2.0)({"x": mx.array(1.0), "skip": None})
    assert g["skip"] is None and g["x"].item() == 2.0
    assert mx.grad(lambda x: x * x)(3.0).item() == 6.0


def test_results_must_be_scalars_and_aux_needs_value_and_grad():
    with pytest.raises(ValueError, match="scalar"):
        mx.grad(lambda x: mx.sum(x, keepdims=True))(mx.ones((2, 2)))
    with pytest.raises(ValueError):
        mx.grad(lambda x: "hello")(mx.array(1.0))

    def with_aux(x):
        return (x * x).sum(), {"twice": 2 * x, "n": 3}

    (value, aux), g = mx.value_and_grad(with_aux)(mx.array([1.0, 2.0]))
    assert value.item() == 5.0 and aux["n"] == 3
    close(aux["twice"], [2.0, 4.0])
    close(g, [2.0, 4.0])
    assert aux["twice"]._node is None  # returned values record nothing
    with pytest.raises(ValueError, match="value_and_grad"):
        mx.grad(with_aux)(mx.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="first item"):
        mx.value_and_grad(lambda x: ("loss", x))(mx.array(1.0))


def test_the_function_sees_the_callers_containers_and_its_writes_stay():
    def loss(model):
        model[1] = mx.array(2.0)  # written during the call: stays
        return model[0] * 3

    model = [mx.array(1.0), mx.array(5.0)]
    first = model[0]
    g = mx.grad(loss)(model)
    assert model[1].item() == 2.0
    assert model[0] is first and model[0]._node is None  # the tracer was taken out again
    assert g[0].item() == 3.0

    params = {"w": mx.array([1.0, 2.0])}
    w = params["w"]
    mx.grad(lambda p: (p["w"] ** 2).sum())(params)
    assert params["w"] is w


def test_tuple_subclasses_and_namedtuples_keep_their_type():
    from typing import NamedTuple

    class Pair(NamedTuple):
        a: mx.array
        b: mx.array

    class Vector(tuple):
        pass

    g = mx.grad(lambda p: (p.a * 2 + p.b).sum())(Pair(mx.ones(2), mx.ones(2)))
    assert isinstance(g, Pair)
    close(g.a, [2.0, 2.0])
    gv = mx.grad(lambda v: (v[0] * v[1]).sum())(Vector([mx.ones(2), mx.full((2,), 3.0)]))
    assert isinstance(gv, Vector)
    close(gv[0], [3.0, 3.0])


# -- integers and booleans ---------------------------------------------------------------------


def test_integer_inputs_differentiate_with_their_dtype():
    g = mx.grad(lambda x: (x * 10).sum())(mx.array([1, 2, 3]))
    assert g.dtype == mx.int32 and g.tolist() == [10, 10, 10]


def test_jvp_of_integer_reductions():
    a, t = mx.arange(4), mx.array([3, 2, 1, 0])
    assert mx.jvp(mx.sum, [a], [t])[1][0].item() == 6
    assert mx.jvp(mx.prod, [a], [t])[1][0].item() == 18
    assert mx.jvp(mx.min, [a], [t])[1][0].item() == 3
    assert mx.jvp(mx.max, [a], [t])[1][0].item() == 0


def test_boolean_outputs_have_zero_tangents_of_the_tangent_dtype():
    x = mx.array([1.0, -2.0, 3.0])
    for op in (mx.greater, mx.less, mx.equal, mx.not_equal):
        _, (t,) = mx.jvp(lambda x, op=op: op(x, 0.0), [x], [mx.ones_like(x)])
        assert t.dtype == mx.float32 and t.tolist() == [0.0, 0.0, 0.0]


# -- custom_function under jvp -----------------------------------------------------------------


def test_jvp_ignores_the_vjp_rule_and_uses_the_jvp_rule():
    f = mx.custom_function(mx.exp)

    @f.vjp
    def _(x, g, out):
        return mx.ones_like(x) * 42

    one = mx.array(1.0)
    assert mx.grad(f)(one).item() == 42.0
    _, (t,) = mx.jvp(f, [one], [one])
    assert t.item() == pytest.approx(math.e, rel=1e-6)

    @f.jvp
    def _(x, tx):
        return 7 * tx

    _, (t,) = mx.jvp(f, [one], [mx.array(2.0)])
    assert t.item() == 14.0
    assert mx.grad(f)(one).item() == 42.0  # reverse mode still follows the vjp rule


def test_a_jvp_rule_with_a_constant_part_reaches_the_outputs():
    @mx.custom_function
    def double(p):
        return {"out": 2 * p["x"] * p["y"]}

    @double.jvp
    def _(p, t):
        return {"out": 2 * p["x"] * t["y"] + 2 * p["y"] * t["x"] + 1}

    def outer(a, b):
        return 3 * double({"x": a, "y": b})["out"]

    a, b = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    ta, tb = mx.array([0.5, 1.0]), mx.array([2.0, -1.0])
    _, (t,) = mx.jvp(outer, [a, b], [ta, tb])
    close(t, 3 * (2 * a * tb + 2 * b * ta + 1))


# -- checkpoint --------------------------------------------------------------------------------


def test_checkpoint_gives_the_same_gradients_and_recomputes_in_the_backward_pass():
    calls = [0]

    def block(x, w):
        calls[0] += 1
        return mx.tanh(x @ w) * mx.sin(x @ w)

    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((3, 4)))
    w = mx.array(rng.standard_normal((4, 4)))

    def loss(f):
        return lambda x, w: f(f(x, w), w).sum()

    want = mx.grad(loss(block), argnums=(0, 1))(x, w)
    calls[0] = 0
    got = mx.grad(loss(mx.checkpoint(block)), argnums=(0, 1))(x, w)
    assert calls[0] == 4  # two forward calls, each run again in the backward pass
    for g, h in zip(got, want):
        close(g, h)


def test_checkpoint_keeps_no_activation():
    cp = mx.checkpoint(lambda x: mx.exp(mx.sin(x)) * 2)
    x = mx.array([0.1, 0.2], requires_grad=True)
    y = cp(x)
    node = y._node
    assert all(type(a) is not Node or a.prim is None for a in node.args)  # only the input
    y.sum().backward()
    close(x.grad, np.cos([0.1, 0.2]) * np.exp(np.sin([0.1, 0.2])) * 2)


def test_checkpoint_second_order_trees_and_keywords():
    @mx.checkpoint
    def f(p, scale=1.0):
        return {"y": mx.sin(p["a"]) * p["b"] * scale}

    def loss(a):
        return f({"a": a, "b": mx.array(2.0)}, scale=3.0)["y"].sum()

    a = mx.array(0.4)
    assert mx.grad(loss)(a).item() == pytest.approx(6 * math.cos(0.4), rel=1e-6)
    assert mx.grad(mx.grad(loss))(a).item() == pytest.approx(-6 * math.sin(0.4), rel=1e-6)
    _, (t,) = mx.jvp(loss, [a], [mx.array(1.0)])
    assert t.item() == pytest.approx(6 * math.cos(0.4), rel=1e-6)
    assert f({"a": a, "b": a})["y"]._node is None  # nothing recording: a plain call


# -- eval, async_eval and vmap's arguments -----------------------------------------------------


def test_eval_takes_trees_and_ignores_other_leaves():
    x = mx.array(1) + 1
    assert mx.eval([x, 0, "hello", {"k": (x, None)}]) is None
    assert mx.async_eval(x) is None


def test_async_eval_is_refused_inside_transforms():
    def fun(x):
        y = x + 1.0
        mx.async_eval(y)
        return mx.exp(y)

    with pytest.raises(ValueError, match="async_eval"):
        mx.grad(fun)(mx.array(1.0))
    with pytest.raises(ValueError, match="async_eval"):
        mx.vmap(fun)(mx.ones((2, 2)))
    assert fun(mx.array(0.0)).item() == pytest.approx(math.e)  # fine outside


def test_vmap_axes_as_tuples_of_one_and_mapped_leaves_must_be_arrays():
    a = mx.array(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    b = mx.array(np.ones((4, 2), dtype=np.float32))
    out = mx.vmap(mx.matmul, in_axes=(1, None), out_axes=(1,))(a, b)
    close(out, mx.moveaxis(mx.moveaxis(a, 1, 0) @ b, 0, 1))
    with pytest.raises(ValueError):
        mx.vmap(mx.exp)("hello")
    with pytest.raises(ValueError):
        mx.vmap(mx.exp, in_axes="hello")(mx.array([0.0, 1.0]))


# -- indices have no gradient ------------------------------------------------------------------

X4 = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
GATHERS = {
    "getitem": lambda x, i: x[i],
    "getitem-tuple": lambda x, i: x[i, None],
    "take": lambda x, i: mx.take(x, i),
    "take-axis": lambda x, i: mx.take(x, i, axis=0),
    "take_along_axis": lambda x, i: mx.take_along_axis(x[:, None], i[:, None], axis=0),
    "at-add": lambda x, i: x.at[i].add(mx.array([5.0, 6.0])),
    "at-maximum": lambda x, i: x.at[i].maximum(mx.array([5.0, 6.0])),
    "at-multiply": lambda x, i: x.at[i].multiply(mx.array([5.0, 6.0])),
    "put_along_axis": lambda x, i: mx.put_along_axis(x, i, mx.array([5.0, 6.0]), axis=0),
}


@pytest.mark.parametrize("name", sorted(GATHERS))
def test_differentiating_an_index_is_mlx_value_error(name):
    """As MLX: a VJP asked of a gather's or scatter's index raises, naming stop_gradient;
    the same call gives the value's gradient when the index is not differentiated."""
    fn = GATHERS[name]
    x, i = mx.array(X4), mx.array([1, 3])
    out = fn(x, i)
    with pytest.raises(ValueError, match="stop_gradient"):
        mx.vjp(fn, [x, i], [mx.ones(out.shape)])
    with pytest.raises(ValueError, match="stop_gradient"):  # an index computed from one
        mx.vjp(lambda x, i: fn(x, i + 0), [x, i], [mx.ones(out.shape)])
    (_,), (gx,) = mx.vjp(lambda x: fn(x, i), [x], [mx.ones(out.shape)])
    (_,), (gs,) = mx.vjp(lambda x: fn(x, mx.stop_gradient(i)), [x], [mx.ones(out.shape)])
    assert gx.shape == x.shape and np.array_equal(np.asarray(gx), np.asarray(gs))
    grads = mx.grad(lambda x, i: fn(x, i).sum(), argnums=0)(x, i)  # the index not asked for
    assert np.array_equal(np.asarray(grads), np.asarray(gx))


def test_batched_indices_are_not_differentiated():
    """vmap over an index array (a traced value too) gathers and differentiates as before."""
    rows, idx = mx.array(np.arange(12.0, dtype=np.float32).reshape(3, 4)), mx.array([0, 3, 2])
    assert mx.vmap(lambda r, i: r[i])(rows, idx).tolist() == [0.0, 7.0, 10.0]
    g = mx.grad(lambda x: mx.vmap(lambda r, i: mx.take(r, i) ** 2)(x, idx).sum())(rows)
    want = np.zeros((3, 4), np.float32)
    want[[0, 1, 2], [0, 3, 2]] = 2 * np.array([0.0, 7.0, 10.0])
    np.testing.assert_array_equal(np.asarray(g), want)
    got = mx.vmap(mx.grad(lambda r, i: (r.at[i].add(1.0) ** 2).sum()))(rows, idx)
    ref = 2 * np.asarray(rows).copy()
    ref[[0, 1, 2], [0, 3, 2]] += 2
    np.testing.assert_array_equal(np.asarray(got), ref)
