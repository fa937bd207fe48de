"""torch.autograd.Function and torch.autograd.functional over the one engine, against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch
import chainrule.torch.func  # noqa: F401  (binds torch.func)
from chainrule.torch.autograd import Function, once_differentiable

V = np.array([0.3, -0.5, 0.9], dtype=np.float32)


def _legendre(base):
    """The "Learning PyTorch with Examples" LegendrePolynomial3, for either library."""

    class LegendrePolynomial3(base):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input**3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input**2 - 1)

    return LegendrePolynomial3


def _close(a, b, rtol=1e-5) -> None:
    np.testing.assert_allclose(np.array(a), b.detach().numpy(), rtol=rtol, atol=1e-6)


def test_legendre_forward_backward_and_double_backward_match_pytorch():
    torch_ref = pytest.importorskip("torch")
    res = []
    for lib in (torch, torch_ref):
        P3 = _legendre(lib.autograd.Function)
        x = lib.tensor(V, requires_grad=True)
        y = P3.apply(x)
        y.sum().backward()
        (g,) = lib.autograd.grad(P3.apply(x).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad((g * g).sum(), x)
        res.append((y, x.grad, g, h))
    for a, b in zip(*res):
        _close(a, b)


def test_legendre_training_loop_matches_pytorch():
    torch_ref = pytest.importorskip("torch")
    finals = []
    for lib in (torch, torch_ref):
        P3 = _legendre(lib.autograd.Function).apply
        x = lib.linspace(-math.pi, math.pi, 200, dtype=lib.float64)
        y = lib.sin(x)
        params = [
            lib.full((), v, dtype=lib.float64, requires_grad=True) for v in (0.1, -1, 0.2, 0.3)
        ]
        for _ in range(5):
            a, b, c, d = params
            loss = ((a + b * P3(c + d * x) - y) ** 2).sum()
            loss.backward()
            with lib.no_grad():
                for p in params:
                    p.data = p.data - 5e-5 * p.grad
                    p.grad = None
        finals.append([float(p.detach()) for p in params + [loss]])
    np.testing.assert_allclose(finals[0], finals[1], rtol=1e-9, atol=1e-12)


def test_mlx_grad_and_func_grad_run_the_users_backward():
    calls = []

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            (x,) = ctx.saved_tensors
            return 3 * g * x  # deliberately not 2x: proves this rule is the one used

    g = mx.grad(lambda a: Square.apply(a).sum())(mx.array([1.0, 2.0]))
    np.testing.assert_allclose(np.array(g), [3.0, 6.0])
    gg = mx.grad(mx.grad(lambda a: Square.apply(a)))(mx.array(2.0))
    assert float(gg) == 3.0
    g2 = torch.func.grad(lambda a: Square.apply(a).sum())(torch.tensor([1.0, 2.0]))
    np.testing.assert_allclose(np.array(g2), [3.0, 6.0])
    assert len(calls) >= 3


def test_setup_context_style_needs_input_grad_and_non_tensor_args():
    torch_ref = pytest.importorskip("torch")
    out = []
    for lib in (torch, torch_ref):

        class Scale(lib.autograd.Function):
            @staticmethod
            def forward(x, w, k):
                return x * w * k

            @staticmethod
            def setup_context(ctx, inputs, output):
                x, w, k = inputs
                ctx.save_for_backward(x, w)
                ctx.k = k

            @staticmethod
            def backward(ctx, g):
                x, w = ctx.saved_tensors
                assert ctx.needs_input_grad == (True, False, False)
                return g * w * ctx.k, None, None

        x = lib.tensor(V, requires_grad=True)
        w = lib.tensor([2.0, 3.0, 4.0])
        y = Scale.apply(x, w, 1.5)
        y.sum().backward()
        out.append((y, x.grad))
    for a, b in zip(*out):
        _close(a, b)


def test_multiple_outputs_non_differentiable_and_unmaterialized_grads():
    torch_ref = pytest.importorskip("torch")
    out, seen = [], []
    for lib in (torch, torch_ref):
        seen.clear()

        class Two(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.set_materialize_grads(False)
                idx = x.argmax()
                ctx.mark_non_differentiable(idx)
                return x * 2, x * 3, idx

            @staticmethod
            def backward(ctx, g1, g2, gi):
                seen.append((g1 is None, g2 is None))
                total = 0
                if g1 is not None:
                    total = total + 2 * g1
                if g2 is not None:
                    total = total + 3 * g2
                return total

        x = lib.tensor(V, requires_grad=True)
        a, b, i = Two.apply(x)
        assert not i.requires_grad and a.requires_grad
        a.sum().backward()
        (a * b).sum().backward()
        out.append(x.grad)
        # only the first output has a cotangent: the second one's is None, not zeros
        assert seen[0] == (False, True)
    _close(*out)


def test_a_function_used_twice_in_one_graph():
    torch_ref = pytest.importorskip("torch")
    out = []
    for lib in (torch, torch_ref):
        P3 = _legendre(lib.autograd.Function)
        x = lib.tensor(V, requires_grad=True)
        y = P3.apply(P3.apply(x) * 0.5) + P3.apply(x)
        y.sum().backward()
        out.append(x.grad)
    _close(*out)


def _once_cls(lib, decorator):
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @decorator
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x * x

    return Cube


def test_once_differentiable_runs_once_and_refuses_double_backward():
    torch_ref = pytest.importorskip("torch")
    ref_once = torch_ref.autograd.function.once_differentiable

    grads = []
    for lib, deco in ((torch, once_differentiable), (torch_ref, ref_once)):
        Cube = _once_cls(lib, deco)
        x = lib.tensor(V, requires_grad=True)
        Cube.apply(x).sum().backward()
        grads.append(x.grad)
        v = lib.ones(3, requires_grad=True)
        (g,) = lib.autograd.grad(Cube.apply(x), x, grad_outputs=v, create_graph=True)
        assert g.requires_grad
        with pytest.raises(RuntimeError, match="differentiate twice.*once_differentiable"):
            g.sum().backward()
    _close(*grads)


def test_mark_dirty_rebinds_the_input():
    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            x[...] = x * 2
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    x = torch.tensor(V, requires_grad=True)
    y = x * 1
    z = Double.apply(y)
    assert z is y
    z.sum().backward()
    np.testing.assert_allclose(np.array(x.grad), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(np.array(z), 2 * V, rtol=1e-6)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        Double.apply(x)


def _wrong_shape(lib):
    class Wrong(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return lib.ones(4)

    return Wrong


def test_bad_backward_results_are_errors_like_pytorch():
    torch_ref = pytest.importorskip("torch")
    for lib in (torch, torch_ref):

        class Few(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x, n):
                return x * n

            @staticmethod
            def backward(ctx, g):
                return g

        Wrong = _wrong_shape(lib)
        x = lib.tensor(V, requires_grad=True)
        with pytest.raises(
            RuntimeError, match=r"incorrect number of gradients \(expected 2, got 1"
        ):
            Few.apply(x, 2.0).sum().backward()
        with pytest.raises(RuntimeError, match=r"invalid gradient at index 0 - got \[4\]"):
            Wrong.apply(x).sum().backward()
        with pytest.raises(RuntimeError):
            Wrong()(x)


def test_no_input_requires_grad_records_nothing():
    P3 = _legendre(Function)
    y = P3.apply(torch.tensor(V))
    assert not y.requires_grad
    with torch.no_grad():
        assert not P3.apply(torch.tensor(V, requires_grad=True)).requires_grad


# -- torch.autograd.functional -------------------------------------------------------------


def _f(a, b):
    return (a * b.sin(), (a * a).sum() * b)


def test_functional_jacobian_hessian_vjp_jvp_match_pytorch():
    torch_ref = pytest.importorskip("torch")
    a_v = np.array([0.4, -1.2, 2.0], dtype=np.float64)
    b_v = np.array([1.5, 0.3, -0.7], dtype=np.float64)
    res = []
    for lib in (torch, torch_ref):
        F = lib.autograd.functional
        a, b = lib.tensor(a_v), lib.tensor(b_v)
        one = lambda x: (x.exp() * x).sum()  # noqa: E731
        r = [
            F.jacobian(_f, (a, b)),
            F.jacobian(lambda x: x.tanh() * 2, a),
            F.hessian(one, a),
            F.hessian(lambda x, y: (x * y * y).sum(), (a, b)),
            F.vjp(lambda x: x.sin() * x, a, b),
            F.jvp(lambda x: x.sin() * x, a, b),
            F.vhp(one, a, b),
            F.hvp(one, a, b),
        ]
        res.append(r)
    flat = []
    for r in res:
        leaves = []

        def walk(t, leaves=leaves):
            if isinstance(t, (tuple, list)):
                for u in t:
                    walk(u)
            else:
                leaves.append(t)

        walk(r)
        flat.append(leaves)
    assert len(flat[0]) == len(flat[1])
    for a, b in zip(*flat):
        assert a.shape == tuple(b.shape)
        _close(a, b, rtol=1e-10)


def test_functional_create_graph_and_errors():
    torch_ref = pytest.importorskip("torch")
    out = []
    for lib in (torch, torch_ref):
        x = lib.tensor(V, requires_grad=True)
        _, g = lib.autograd.functional.vjp(lambda t: (t**3).sum(), x, create_graph=True)
        assert g.requires_grad
        g.sum().backward()
        out.append(x.grad)
        with pytest.raises(RuntimeError, match="v can only be None"):
            lib.autograd.functional.vjp(lambda t: t * 2, x)
    _close(*out)


# -- saved outputs, gradcheck ----------------------------------------------------------------


def _exp_fn(base):
    class MyExp(base):
        @staticmethod
        def forward(ctx, x):
            out = x.exp()
            ctx.save_for_backward(out)
            return out

        @staticmethod
        def backward(ctx, g):
            (out,) = ctx.saved_tensors
            return g * out

    return MyExp


def test_saved_output_double_backward_matches_pytorch():
    torch_ref = pytest.importorskip("torch")
    res = []
    for lib in (torch, torch_ref):
        E = _exp_fn(lib.autograd.Function)
        x = lib.tensor(V.astype(np.float64), requires_grad=True)
        (g,) = lib.autograd.grad((E.apply(x) * x).sum(), x, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), x)
        res.append((g, h))
    for a, b in zip(*res):
        _close(a, b, rtol=1e-10)


def test_gradcheck_and_gradgradcheck_like_pytorch():
    torch_ref = pytest.importorskip("torch")
    for lib in (torch, torch_ref):
        x = lib.tensor(V.astype(np.float64), requires_grad=True)
        P3 = _legendre(lib.autograd.Function)
        assert lib.autograd.gradcheck(P3.apply, (x,))
        assert lib.autograd.gradgradcheck(P3.apply, (x,))
        y = lib.tensor(V[::-1].astype(np.float64), requires_grad=True)
        assert lib.autograd.gradcheck(lambda a, b: (a * b.sin(), a.exp()), (x, y))
        Bad = _wrong_factor(lib)
        with pytest.raises(RuntimeError, match="Jacobian mismatch for output 0 with respect"):
            lib.autograd.gradcheck(Bad.apply, (x,))
        assert lib.autograd.gradcheck(Bad.apply, (x,), raise_exception=False) is False
        Once = _once_cls(lib, lib.autograd.function.once_differentiable)
        with pytest.raises(RuntimeError):  # second derivatives of a once-differentiable rule
            lib.autograd.gradgradcheck(Once.apply, (x,))


def _wrong_factor(lib):
    class Bad(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    return Bad


def test_a_function_graph_is_freed_without_the_cycle_collector():
    import gc
    import weakref

    P3 = _legendre(Function)
    x = torch.tensor(V, requires_grad=True)
    gc.disable()
    try:
        y = P3.apply(x)
        ref = weakref.ref(y._node)
        y.sum().backward()
        del y
        assert ref() is None
    finally:
        gc.enable()
