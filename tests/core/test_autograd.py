"""Automatic differentiation in both styles: the functional transforms (``grad``,
``value_and_grad``, ``vjp``, ``jvp``, ``vmap``), the PyTorch-style tape (``requires_grad``,
``backward()``, ``.grad``, ``no_grad``), custom rules and ``check_grads``."""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
import pytest

import chainrule.core as mx


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


# -- grad and value_and_grad ------------------------------------------------------------------------


def test_seed004_closing_checks():
    f = lambda t: mx.sin(t) * t  # noqa: E731
    d1 = mx.grad(f)
    d2 = mx.grad(d1)
    t = mx.array(0.7)
    assert abs(d1(t).item() - (np.cos(0.7) * 0.7 + np.sin(0.7))) < 1e-6
    assert abs(d2(t).item() - (-np.sin(0.7) * 0.7 + 2 * np.cos(0.7))) < 1e-5


def test_argnums_int_tuple_and_negative():
    f = lambda a, b, c: (a * b * c).sum()  # noqa: E731
    a, b, c = mx.array([1.0, 2.0]), mx.array([3.0, 4.0]), mx.array([5.0, 6.0])
    close(mx.grad(f)(a, b, c), b * c)
    close(mx.grad(f, argnums=1)(a, b, c), a * c)
    ga, gc = mx.grad(f, argnums=(0, 2))(a, b, c)
    close(ga, b * c)
    close(gc, a * b)
    gb = mx.grad(f, argnums=(1,))(a, b, c)  # one argnum gives its gradient alone, as in MLX
    close(gb, a * c)
    close(mx.grad(f, argnums=-1)(a, b, c), a * b)


def test_argnames_and_both():
    def f(a, b=None, scale=1.0):
        return (a * b).sum() * scale

    a, b = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    pos, kw = mx.grad(f, argnames="b")(a, b=b, scale=2.0)
    assert pos is None
    close(kw["b"], 2 * a)
    pos, kw = mx.grad(f, argnums=0, argnames=["b"])(a, b=b)
    close(pos, b)
    close(kw["b"], a)


def test_trees_of_dicts_lists_tuples():
    Pair = namedtuple("Pair", "u v")
    params = {
        "w": mx.array([1.0, 2.0]),
        "layers": [mx.array(3.0), (mx.array([4.0]),)],
        "p": Pair(mx.array(1.0), mx.array(2.0)),
    }

    def loss(p):
        return (p["w"] ** 2).sum() * p["layers"][0] + p["layers"][1][0].sum() + p["p"].u * p["p"].v

    g = mx.grad(loss)(params)
    assert set(g) == {"w", "layers", "p"}
    assert isinstance(g["layers"], list) and isinstance(g["layers"][1], tuple)
    assert isinstance(g["p"], Pair)
    close(g["w"], [6.0, 12.0])
    close(g["layers"][0], 5.0)
    close(g["layers"][1][0], [1.0])
    close(g["p"].u, 2.0)
    close(g["p"].v, 1.0)


def test_tuple_output_with_aux():
    def f(x):
        return (x**2).sum(), {"double": x * 2, "note": "kept"}

    (value, aux), g = mx.value_and_grad(f)(mx.array([1.0, 3.0]))
    assert value.item() == 10.0
    close(aux["double"], [2.0, 6.0])
    assert aux["note"] == "kept"
    close(g, [2.0, 6.0])
    with pytest.raises(ValueError, match="value_and_grad"):  # grad wants the scalar alone (MLX)
        mx.grad(f)(mx.array([1.0, 3.0]))


def test_value_and_grad_results_record_nothing():
    x = mx.array([1.0, 2.0], requires_grad=True)
    value, g = mx.value_and_grad(lambda x: (x * x).sum())(x)
    assert value._node is None and g._node is None
    assert x.grad is None


def test_unused_argument_gets_zeros_and_constants_give_zero():
    ga, gb = mx.grad(lambda a, b: (a * 2).sum(), argnums=(0, 1))(mx.ones(2), mx.ones(3))
    close(gb, np.zeros(3))
    close(mx.grad(lambda x: mx.array(3.0))(mx.ones(2)), np.zeros(2))
    close(mx.grad(lambda x: mx.floor(x).sum())(mx.ones(2)), np.zeros(2))


def test_grad_works_inside_no_grad():
    with mx.no_grad():
        close(mx.grad(lambda x: (x**3).sum())(mx.array([2.0])), [12.0])


def test_python_scalar_argument():
    assert mx.grad(lambda x: x * x)(3.0).item() == 6.0


# -- vjp and jvp ------------------------------------------------------------------------------------


def test_vjp_and_jvp_match_the_jacobian():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal(4)

    def f(x, y):
        return mx.tanh(mx.array(a) @ x) * mx.sum(y * y), x * 2

    x0, y0 = mx.array(rng.standard_normal(4)), mx.array(b)
    u = [mx.array(rng.standard_normal(3)), mx.array(rng.standard_normal(4))]
    t = [mx.array(rng.standard_normal(4)), mx.array(rng.standard_normal(4))]
    outs, vjps = mx.vjp(f, [x0, y0], u)
    outs2, jvps = mx.jvp(f, [x0, y0], t)
    assert len(outs) == 2 and len(vjps) == 2 and len(jvps) == 2
    close(outs[0], outs2[0])
    # <u, J t> computed both ways
    lhs = sum(float((ui * ji).sum().item()) for ui, ji in zip(u, jvps))
    rhs = sum(float((vi * ti).sum().item()) for vi, ti in zip(vjps, t))
    assert lhs == pytest.approx(rhs, rel=1e-4)
    close(jvps[1], t[0] * 2)


def test_integer_outputs_have_zero_tangents():
    outs, (t, ti) = mx.jvp(lambda x: (x * 2, mx.argmax(x)), [mx.array([1.0, 3.0])], [mx.ones(2)])
    assert t.tolist() == [2.0, 2.0] and ti.item() == 0 and outs[1].item() == 1


def test_vjp_does_not_mutate_the_cotangent():
    u = mx.array([1.0, 2.0])
    _, (g,) = mx.vjp(lambda x: x + x * 3, [mx.array([0.5, 0.5])], [u])
    assert u.tolist() == [1.0, 2.0]
    close(g, [4.0, 8.0])


def test_vjp_cotangent_shape_error():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        mx.vjp(lambda x: x * 2, [mx.ones(2)], [mx.ones(3)])


# -- higher order -------------------------------------------------------------------------------------


def f_cubic(x):
    return (x**3 * mx.sin(x)).sum()


def hessian_cubic(x):
    x = np.asarray(x, dtype=np.float64)
    return np.diag(6 * x * np.sin(x) + 6 * x**2 * np.cos(x) - x**3 * np.sin(x))


def test_grad_of_grad_and_third_order():
    assert mx.grad(mx.grad(mx.grad(lambda a: a**4)))(mx.array(2.0)).item() == pytest.approx(48.0)
    assert mx.grad(mx.grad(lambda a: mx.exp(2 * a)))(mx.array(0.0)).item() == pytest.approx(4.0)


def test_hessian_vector_products():
    x = mx.array([0.3, -1.2, 2.0])
    v = mx.array([1.0, 0.5, -2.0])
    expected = hessian_cubic(x) @ np.asarray(v)
    # reverse over reverse
    hvp1 = mx.grad(lambda x: (mx.grad(f_cubic)(x) * v).sum())(x)
    # forward over reverse: jvp of grad
    _, (hvp2,) = mx.jvp(mx.grad(f_cubic), [x], [v])
    # vjp of grad
    _, (hvp3,) = mx.vjp(mx.grad(f_cubic), [x], [v])
    for h in (hvp1, hvp2, hvp3):
        close(h, expected, 1e-4)


def test_grad_of_jvp():
    # d/dx <J(x) t> for f = sum(x^3): jvp = sum(3 x^2 t), its gradient 6 x t
    t = mx.array([1.0, 2.0])
    g = mx.grad(lambda x: mx.jvp(lambda y: (y**3).sum(), [x], [t])[1][0])(mx.array([0.5, -1.0]))
    close(g, [3.0, -12.0])


# -- vmap ---------------------------------------------------------------------------------------------


def test_vmap_in_axes_out_axes():
    x = mx.array(np.arange(12.0).reshape(3, 4))
    close(mx.vmap(lambda a: a.sum())(x), np.arange(12.0).reshape(3, 4).sum(1))
    close(mx.vmap(lambda a: a.sum(), in_axes=1)(x), np.arange(12.0).reshape(3, 4).sum(0))
    w = mx.array([1.0, 2.0, 3.0, 4.0])
    out = mx.vmap(lambda a, b: a * b, in_axes=(0, None))(x, w)
    close(out, np.asarray(x) * np.asarray(w))
    out = mx.vmap(lambda a: a * 2, in_axes=1, out_axes=1)(x)
    close(out, np.asarray(x) * 2)
    out = mx.vmap(lambda a: mx.stack([a, a]), in_axes=0, out_axes=-1)(x)
    assert out.shape == (2, 4, 3)


def test_vmap_trees_and_multiple_outputs():
    d = {"a": mx.ones((3, 2)), "b": mx.array([1.0, 2.0])}
    out = mx.vmap(lambda t: t["a"] * t["b"], in_axes=({"a": 0, "b": None},))(d)
    close(out, [[1.0, 2.0]] * 3)
    s, (p, q) = mx.vmap(lambda a: (a.sum(), (a, a * 2)), out_axes=(0, (1, 0)))(mx.ones((3, 2)))
    assert s.shape == (3,) and p.shape == (2, 3) and q.shape == (3, 2)


def test_vmap_errors():
    with pytest.raises(ValueError, match="different sizes"):
        mx.vmap(lambda a, b: a + b)(mx.ones(3), mx.ones(4))
    with pytest.raises(ValueError, match="at least one"):
        mx.vmap(lambda a: a, in_axes=None)(mx.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        mx.vmap(lambda a: a, in_axes=2)(mx.ones((3, 2)))


def test_grad_of_vmap_and_vmap_of_grad():
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    close(mx.vmap(mx.grad(lambda a: (a**3).sum()))(x), 3 * np.asarray(x) ** 2)
    w = mx.array([1.0, -1.0])
    g = mx.grad(lambda w: mx.vmap(lambda a: (a * w).sum())(x).sum())(w)
    close(g, np.asarray(x).sum(0))
    # per-example gradients
    per = mx.vmap(mx.grad(lambda w, a: mx.sin(a @ w)), in_axes=(None, 0))(w, x)
    close(per, np.cos(np.asarray(x) @ np.asarray(w))[:, None] * np.asarray(x))


# -- the tape -----------------------------------------------------------------------------------------


def test_backward_accumulates_and_grad_none_clears():
    w = mx.array([1.0, 2.0], requires_grad=True)
    assert w.requires_grad and w.is_leaf and w.grad is None
    loss = (w * w).sum()
    assert not loss.is_leaf and loss.grad_fn is not None
    loss.backward()
    close(w.grad, [2.0, 4.0])
    (w * w).sum().backward()
    close(w.grad, [4.0, 8.0])
    loss.backward()  # the same graph again, as PyTorch with retain_graph=True
    close(w.grad, [6.0, 12.0])
    w.grad = None
    assert w.grad is None
    (w * 3).sum().backward()
    close(w.grad, [3.0, 3.0])


def test_backward_does_not_mutate_earlier_gradients():
    w = mx.array([1.0], requires_grad=True)
    (w * 2).sum().backward()
    first = w.grad
    (w * 2).sum().backward()
    assert first.tolist() == [2.0] and w.grad.tolist() == [4.0]


def test_backward_with_gradient_argument():
    w = mx.array([1.0, 2.0], requires_grad=True)
    (w * 3).backward(gradient=mx.array([1.0, 0.5]))
    close(w.grad, [3.0, 1.5])
    w2 = mx.array([1.0, 2.0], requires_grad=True)
    (w2 * w2).backward(mx.array([1.0, 1.0]), retain_graph=True)
    close(w2.grad, [2.0, 4.0])


def test_backward_reaches_only_leaves_that_ask():
    a = mx.array([1.0, 2.0], requires_grad=True)
    b = mx.array([3.0, 4.0])
    h = a * b
    (h * h).sum().backward()
    close(a.grad, 2 * np.array([1.0, 2.0]) * np.array([3.0, 4.0]) ** 2)
    assert b.grad is None and h.grad is None


def test_no_grad_context_and_decorators():
    w = mx.array([1.0], requires_grad=True)
    with mx.no_grad():
        assert not (w * 2).requires_grad
        assert not mx.is_grad_enabled()
        with mx.enable_grad():
            assert (w * 2).requires_grad
    assert mx.is_grad_enabled()

    @mx.no_grad()
    def called(a):
        return a * 2

    @mx.no_grad
    def bare(a):
        return a * 2

    assert not called(w).requires_grad and not bare(w).requires_grad
    assert mx.is_grad_enabled()
    with mx.set_grad_enabled(False):
        assert not (w * 2).requires_grad
    assert (w * 2).requires_grad


def test_requires_grad_setter_and_detach():
    a = mx.array([1.0, 2.0])
    a.requires_grad = True
    assert a.requires_grad
    assert not a.detach().requires_grad
    a.requires_grad_(False)
    assert not a.requires_grad
    with pytest.raises(TypeError, match="int32"):
        mx.array([1, 2], requires_grad=True)
    b = mx.array([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaves"):
        b.requires_grad = False
    with pytest.raises(ValueError, match=r"\(2,\).*\(1,\)"):
        mx.array([1.0], requires_grad=True).grad = mx.ones(2)


def test_create_graph_gives_second_derivatives():
    x = mx.array(0.7, requires_grad=True)
    y = mx.sin(x) * x
    y.backward(create_graph=True)
    g = x.grad
    assert g.item() == pytest.approx(math.cos(0.7) * 0.7 + math.sin(0.7))
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(-math.sin(0.7) * 0.7 + 2 * math.cos(0.7), abs=1e-6)


def test_functional_transforms_ignore_requires_grad_leaves():
    w = mx.array([1.0, 2.0], requires_grad=True)
    x = mx.array([3.0, 4.0])
    g = mx.grad(lambda w: (w * x).sum())(w)
    close(g, [3.0, 4.0])
    assert g._node is None and w.grad is None


FUNCTIONS = [
    lambda x, y: (x * y + mx.sin(x)).sum(),
    lambda x, y: mx.logsumexp(x[:, None] * y[None, :]),
    lambda x, y: (mx.softmax(x + y) * mx.arange(3)).sum(),
    lambda x, y: (mx.tanh(mx.outer(x, y)) @ y).sum(),
    lambda x, y: mx.mean((x - y) ** 2) + mx.max(x * y),
    lambda x, y: (mx.sqrt(x * x + 1) / (y * y + 1)).prod(),
    lambda x, y: mx.linalg.norm(mx.concatenate([x, y]) * 2),
    lambda x, y: (mx.where(x > 0, x, 0.1 * x) * mx.sigmoid(y)).sum(),
    lambda x, y: mx.sum(mx.cumsum(x * y) * mx.flip(x)),
    lambda x, y: (mx.sort(x * y) * mx.array([1.0, 2.0, 3.0])).sum(),
    lambda x, y: mx.var(mx.stack([x, y]), axis=0).sum(),
    lambda x, y: (mx.log1p(mx.exp(x)) * mx.erf(y)).sum(),
    lambda x, y: (mx.pad(x, 1) * mx.pad(y, 1)).sum() + mx.take(x, mx.array([0, 0, 2])).sum(),
    lambda x, y: mx.einsum("i,i->", x, y) ** 2,
    lambda x, y: (mx.maximum(x, y) + mx.minimum(x, 0.2)).sum(),
    lambda x, y: mx.matmul(mx.reshape(x, (3, 1)), mx.reshape(y, (1, 3))).trace(),
]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=[str(i) for i in range(len(FUNCTIONS))])
def test_tape_and_functional_styles_agree(fn):
    xv, yv = [0.5, -1.2, 2.0], [1.5, 0.3, -0.7]
    gx, gy = mx.grad(fn, argnums=(0, 1))(mx.array(xv), mx.array(yv))
    x = mx.array(xv, requires_grad=True)
    y = mx.array(yv, requires_grad=True)
    fn(x, y).backward()
    close(x.grad, gx)
    close(y.grad, gy)


def test_long_chain_backpropagates_iteratively():
    x = mx.array(1.0, requires_grad=True)
    h = x
    for _ in range(100_000):
        h = h * 1.0
    h.backward()
    assert x.grad.item() == 1.0

    def chain(a):
        for _ in range(100_000):
            a = a + 0.0
        return a * 3.0

    assert mx.grad(chain)(mx.array(1.0)).item() == 3.0


# -- errors -------------------------------------------------------------------------------------------


def test_non_scalar_output_without_cotangent_names_the_shape():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        mx.grad(lambda x: x * 2)(mx.ones(2))
    w = mx.array([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        (w * 2).backward()


def test_grad_with_respect_to_integers_follows_mlx():
    g = mx.grad(lambda x: (x * 3).sum())(mx.array([1, 2]))
    assert g.dtype == mx.int32 and g.tolist() == [3, 3]


def test_argnums_out_of_range_and_bad_arguments():
    with pytest.raises(ValueError, match="argnums 2"):
        mx.grad(lambda x: x.sum(), argnums=2)(mx.ones(2))
    with pytest.raises(ValueError, match="'b'"):
        mx.grad(lambda x, b=None: x.sum(), argnames="b")(mx.ones(2))
    with pytest.raises(ValueError, match="no argument"):
        mx.grad(lambda x: x.sum(), argnums=())
    with pytest.raises(TypeError, match="str"):
        mx.grad(lambda x: 1.0)("text")
    with pytest.raises(TypeError, match="float"):
        mx.grad(lambda x: 1.0)(mx.ones(1))


def test_backward_on_an_array_that_records_nothing():
    with pytest.raises(RuntimeError, match="records no graph"):
        mx.array([1.0, 2.0]).sum().backward()
    w = mx.array([1.0], requires_grad=True)
    with mx.no_grad():
        out = (w * 2).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        out.backward()


# -- custom functions ---------------------------------------------------------------------------------


def test_custom_function_vjp_is_used():
    @mx.custom_function
    def f(x, y):
        return mx.sin(x) * y

    @f.vjp
    def f_vjp(primals, cotangent, output):
        x, y = primals
        return cotangent * mx.cos(x) * y, cotangent * mx.sin(x)

    x, y = mx.array([0.3, 1.0]), mx.array([2.0, -1.0])
    close(f(x, y), np.sin([0.3, 1.0]) * np.array([2.0, -1.0]))
    gx, gy = mx.grad(lambda a, b: f(a, b).sum(), argnums=(0, 1))(x, y)
    close(gx, np.cos([0.3, 1.0]) * np.array([2.0, -1.0]))
    close(gy, np.sin([0.3, 1.0]))
    mx.check_grads(f, [x, y])  # both orders go through the rule
    xt = mx.array([0.3, 1.0], requires_grad=True)
    f(xt, y).sum().backward()
    close(xt.grad, gx)


def test_custom_function_single_argument_tuple_output_and_kwargs():
    @mx.custom_function
    def g(x, scale=1.0):
        return x * scale, x * x

    @g.vjp
    def g_vjp(x, cotangents, outputs, scale=1.0):
        c1, c2 = cotangents
        assert isinstance(x, mx.array)  # a one-argument function receives the array itself
        return c1 * scale + c2 * 2 * x

    x = mx.array([1.0, 3.0])
    close(mx.grad(lambda x: g(x, scale=5.0)[0].sum())(x), [5.0, 5.0])
    close(mx.grad(lambda x: g(x)[1].sum())(x), [2.0, 6.0])


def test_custom_function_rule_really_replaces_the_gradient():
    @mx.custom_function
    def clipped_identity(x):
        return x

    @clipped_identity.vjp
    def _(x, g, out):
        return mx.clip(g, -1.0, 1.0)

    g = mx.grad(lambda x: (clipped_identity(x) * 10).sum())(mx.array([1.0, 2.0]))
    close(g, [1.0, 1.0])


def test_custom_function_jvp_alone_serves_both_modes():
    calls = []

    @mx.custom_function
    def h(x, y):
        return mx.sin(x) * y

    @h.jvp
    def h_jvp(primals, tangents):
        calls.append(1)
        x, y = primals
        dx, dy = tangents
        return dx * mx.cos(x) * y + dy * mx.sin(x)

    x, y = mx.array([0.3, 1.0]), mx.array([2.0, -1.0])
    gx, gy = mx.grad(lambda a, b: h(a, b).sum(), argnums=(0, 1))(x, y)
    assert calls
    close(gx, np.cos([0.3, 1.0]) * np.array([2.0, -1.0]))
    close(gy, np.sin([0.3, 1.0]))
    _, (t,) = mx.jvp(h, [x, y], [mx.ones(2), mx.zeros(2)])
    close(t, np.cos([0.3, 1.0]) * np.array([2.0, -1.0]))
    mx.check_grads(h, [x, y])


def test_custom_function_vmap_rule():
    @mx.custom_function
    def f(x, y):
        return x * y

    @f.vmap
    def f_vmap(inputs, axes):
        x, y = inputs
        ax, ay = axes
        if ay is not None and ax is not None and ay != ax:
            y = mx.swapaxes(y, ay, ax)
        return x * y + 100.0, ax if ax is not None else ay  # marked so the test sees it ran

    out = mx.vmap(f, in_axes=(0, 1))(mx.ones((3, 2)), mx.ones((2, 3)))
    assert out.shape == (3, 2) and out.tolist() == [[101.0, 101.0]] * 3
    assert f(mx.ones(2), mx.ones(2)).tolist() == [1.0, 1.0]


def test_custom_function_captured_arrays_are_constants():
    y = mx.array(3.0)

    @mx.custom_function
    def f(x):
        return x * y

    @f.vjp
    def _(x, g, out):
        return g * y

    assert mx.grad(lambda x: f(x))(mx.array(2.0)).item() == 3.0


# -- check_grads ----------------------------------------------------------------------------------------


def test_check_grads_raises_on_a_wrong_rule():
    @mx.custom_function
    def wrong(x):
        return mx.sin(x)

    @wrong.vjp
    def _(x, g, out):
        return g * mx.cos(x) * 1.01  # off by one percent

    with pytest.raises(AssertionError, match="largest error"):
        mx.check_grads(wrong, [mx.array([0.3, 1.2])], modes=("rev",))
    mx.check_grads(wrong, [mx.array([0.3, 1.2])], modes=("fwd",))  # jvp ignores the vjp rule

    @wrong.jvp
    def _(x, t):
        return t * mx.cos(x) * 1.01

    with pytest.raises(AssertionError, match="fwd-mode"):
        mx.check_grads(wrong, [mx.array([0.3, 1.2])], modes=("fwd",))

    @mx.custom_function
    def first_order_only(x):
        return mx.sin(x)

    @first_order_only.vjp
    def _(x, g, out):
        return g * mx.stop_gradient(mx.cos(x))  # right value, wrong derivative

    mx.check_grads(first_order_only, [mx.array([0.3, 1.2])], order=1)
    with pytest.raises(AssertionError, match="order 2"):
        mx.check_grads(first_order_only, [mx.array([0.3, 1.2])], order=2)


def test_check_grads_accepts_tuple_outputs_and_validates_modes():
    mx.check_grads(lambda x, y: (x * y, mx.exp(x)), [mx.array([0.5, 1.0]), mx.array([2.0, 3.0])])
    with pytest.raises(ValueError, match="modes"):
        mx.check_grads(mx.sin, [mx.array(1.0)], modes=("backward",))


# -- eval ---------------------------------------------------------------------------------------------


def test_eval_accepts_trees():
    assert mx.eval(mx.ones(2), {"a": [mx.zeros(1)]}, None) is None
    assert mx.async_eval(mx.ones(2)) is None


def test_leaf_gradients_come_back_row_major():
    # x @ W.T leaves the weight's cotangent as a column-major view unless the engine lays it
    # out like the parameter (optimizers mixing layouts run several times slower).
    W = mx.array(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    x = mx.ones((4, 3))
    g = mx.grad(lambda W: (x @ W.T).sum())(W)
    assert g._data.flags.c_contiguous
    np.testing.assert_allclose(g, np.full((5, 3), 4.0))
    Wt = mx.array(W._data, requires_grad=True)
    (x @ Wt.T).sum().backward()
    assert Wt.grad._data.flags.c_contiguous


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_contiguous_is_a_noop_on_row_major_arrays():
    a = mx.ones((2, 3))
    assert mx.contiguous(a) is a
    t = mx.transpose(a)
    assert not t._data.flags.c_contiguous and mx.contiguous(t)._data.flags.c_contiguous
    assert mx.contiguous(t, allow_col_major=True) is t


# -- the backward walk (nodes sorted by creation order; branches reaching no target pruned) ------


def _edges_seen(run):
    """The ``(primitive, input)`` edges a backward pass sends cotangents along."""
    from chainrule.core import autograd

    seen = []

    def observe(node, g, i, gi):
        seen.append((node.prim.name, i))

    autograd.OBSERVERS.append(observe)
    try:
        run()
    finally:
        autograd.OBSERVERS.remove(observe)
    return seen


def test_backward_walk_prunes_what_reaches_no_target():
    w = mx.array([1.0, 2.0])
    w.requires_grad = True  # a tape leaf in the graph, but not what grad differentiates
    x = mx.array([3.0, 4.0])
    f = lambda x: (mx.exp(w) * x).sum() + (w * w).sum()  # noqa: E731
    seen = _edges_seen(lambda: close(mx.grad(f)(x), np.exp([1.0, 2.0])))
    assert ("multiply", 1) in seen  # exp(w) * x: to x
    assert ("multiply", 0) not in seen and ("exp", 0) not in seen  # to w: pruned
    assert len([e for e in seen if e[0] == "multiply"]) == 1  # w * w never runs
    # a released input (mx.eval made it a constant leaf) is an end reaching no target too
    v = mx.array([1.0, 1.0])
    v.requires_grad = True
    a = w * 2
    mx.eval(a)
    seen = _edges_seen(lambda: (a * v).sum().backward())
    assert ("multiply", 1) in seen and ("multiply", 0) not in seen
    close(v.grad, [2.0, 4.0])


def test_backward_walk_orders_reused_values_by_creation():
    x = mx.array(0.5)
    x.requires_grad = True
    ys = [x]
    for k in range(30):  # each value read by the next two: a diamond chain
        ys.append(ys[-1] * 0.5 + (ys[-2] if k else x) * 0.25)
    ys[-1].backward()
    a, b = 1.0, 0.0  # d ys[n] / dx by the recurrence itself
    for k in range(30):
        a, b = 0.5 * a + 0.25 * (b if k else 1.0), a
    close(x.grad, a)
    seqs = [y._node.seq for y in ys]
    assert seqs == sorted(seqs)
