"""Tensor hooks and gradient bookkeeping as PyTorch: register_hook, retain_grad, detach_."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch

V = np.array([0.5, -1.5, 2.0], dtype=np.float32)


def _both():
    torch_ref = pytest.importorskip("torch")
    return torch_ref, torch.tensor(V, requires_grad=True), torch_ref.tensor(V, requires_grad=True)


def _close(a, b) -> None:
    np.testing.assert_allclose(np.array(a), b.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_hook_replaces_the_gradient_of_a_non_leaf_as_pytorch():
    torch_ref, x, rx = _both()
    seen, rseen = [], []
    for t, s in ((x, seen), (rx, rseen)):
        y = t * t
        y.register_hook(lambda g, s=s: (s.append(g), g * 3)[1])
        (y.sin()).sum().backward()
    _close(x.grad, rx.grad)
    _close(seen[0], rseen[0])


def test_leaf_hook_runs_before_accumulation_and_remove_stops_it():
    torch_ref, x, rx = _both()
    for t in (x, rx):
        h = t.register_hook(lambda g: g * 2)
        (t * t).sum().backward()
        h.remove()
        h.remove()  # a second remove does nothing, as in PyTorch
        (t * t).sum().backward()
    _close(x.grad, rx.grad)


def test_hooks_run_in_order_and_none_keeps_the_gradient():
    torch_ref, x, rx = _both()
    for t in (x, rx):
        y = t.exp()
        y.register_hook(lambda g: None)
        y.register_hook(lambda g: g + 1)
        y.register_hook(lambda g: g * 2)
        y.sum().backward()
    _close(x.grad, rx.grad)


def test_retain_grad_runs_after_hooks_and_accumulates():
    torch_ref, x, rx = _both()
    ys = []
    for t in (x, rx):
        y = t * 2
        y.retain_grad()
        y.register_hook(lambda g: g * 10)
        (y * y).sum().backward(retain_graph=True)
        (y * y).sum().backward()
        ys.append(y)
    assert ys[0].retains_grad and ys[1].retains_grad
    _close(ys[0].grad, ys[1].grad)
    _close(x.grad, rx.grad)


def test_retain_grad_on_a_leaf_is_a_no_op_and_flags_match():
    torch_ref, x, rx = _both()
    x.retain_grad()
    rx.retain_grad()
    assert x.retains_grad == rx.retains_grad is False
    y, ry = x + 1, rx + 1
    assert y.retains_grad == ry.retains_grad is False


def test_errors_for_tensors_without_grad():
    torch_ref = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as ref:
        torch_ref.ones(2).register_hook(lambda g: g)
    with pytest.raises(type(ref.value), match="register_hook.*doesn't require gradient"):
        torch.ones(2).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="retain_grad.*requires_grad=False"):
        torch.ones(2).retain_grad()
    with pytest.raises(TypeError, match="callable"):
        torch.ones(2, requires_grad=True).register_hook(3)


def test_hook_changing_the_shape_is_refused():
    x = torch.ones(2, requires_grad=True)
    x.register_hook(lambda g: torch.ones(3))
    with pytest.raises(RuntimeError, match=r"changed the size.*\(2,\).*\(3,\)"):
        x.sum().backward()


def test_leaf_hook_survives_an_update_of_the_leaf():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: g * 0.5)
    for _ in range(2):
        w.grad = None
        (w * w).sum().backward()
        expected = np.array(w.detach()) * 2 * 0.5
        np.testing.assert_allclose(np.array(w.grad), expected, rtol=1e-6)
        w.data = w.data - 0.1 * w.grad  # rebinds the handle to a fresh leaf node (as step())


def test_hook_inside_create_graph_is_differentiable():
    torch_ref, x, rx = _both()
    out = []
    for lib, t in ((torch, x), (torch_ref, rx)):
        y = t * t
        y.register_hook(lambda g, y=y: g * y)
        (g,) = lib.autograd.grad(y.sum(), t, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), t)
        out.append(h)
    _close(*out)


def test_detach_and_requires_grad_in_place():
    torch_ref, x, rx = _both()
    for t in (x, rx):
        y = t * 3
        assert y.detach_() is y
        assert not y.requires_grad and y.is_leaf
        assert t.detach_() is t and not t.requires_grad
        assert t.requires_grad_() is t and t.requires_grad


def test_grad_accumulates_across_backward_calls_and_graph_is_kept():
    torch_ref, x, rx = _both()
    for t in (x, rx):
        y = (t * t).sum()
        y.backward(retain_graph=True)
        y.backward()  # chainrule keeps graphs (values); PyTorch keeps it when asked
    _close(x.grad, rx.grad)


def test_hooks_die_with_their_graph():
    from chainrule.core import autograd as engine

    x = torch.ones(3, requires_grad=True)
    before = len(engine._HOOKS.nodes)
    for _ in range(5):
        y = x * 2
        y.register_hook(lambda g: g)
        y.sum().backward()
    del y
    gc.collect()
    assert len(engine._HOOKS.nodes) == before


def test_mlx_grad_runs_hooks_on_intermediates():
    seen = []

    def f(a):
        b = a * a
        b.register_hook(lambda g: seen.append(np.array(g)) or g * 2)
        return b.sum()

    g = mx.grad(f)(mx.array([1.0, 3.0]))
    np.testing.assert_allclose(np.array(g), [4.0, 12.0])
    np.testing.assert_allclose(seen[0], [1.0, 1.0])


def test_backward_inputs_accumulates_only_into_them():
    torch_ref = pytest.importorskip("torch")
    out = []
    for lib in (torch, torch_ref):
        x = lib.tensor(V, requires_grad=True)
        w = lib.tensor(V[::-1].copy(), requires_grad=True)
        z = lib.ones(3, requires_grad=True)
        h = x * w
        y = (h * h).sum()
        y.backward(inputs=[x], retain_graph=True)
        assert w.grad is None
        y.backward(inputs=[h], retain_graph=True)
        assert h.retains_grad
        y.backward(inputs=[z], retain_graph=True)  # unused: no error, no grad
        assert z.grad is None
        lib.autograd.backward([y], inputs=x)
        out.append((x.grad, h.grad))
        with pytest.raises(RuntimeError, match="cannot be empty"):
            y.backward(inputs=[])
        with pytest.raises(RuntimeError, match="requires_grad=False"):
            y.backward(inputs=[lib.ones(3)])
    for a, b in zip(*out):
        _close(a, b)


def test_grad_with_respect_to_an_input_and_a_tensor_computed_from_it():
    torch_ref = pytest.importorskip("torch")
    out = []
    for lib in (torch, torch_ref):
        x = lib.tensor(V, requires_grad=True)
        h = x.exp()
        y = (h * x).sum()
        a = lib.autograd.grad(y, [x, h], retain_graph=True)
        b = lib.autograd.grad(y, [h, x], retain_graph=True)
        y.backward(inputs=[x, h])
        out.append((*a, *b, x.grad, h.grad))
    for a, b in zip(*out):
        _close(a, b)


def test_legacy_variable():
    torch_ref = pytest.importorskip("torch")
    for lib in (torch, torch_ref):
        t = lib.ones(2)
        v = lib.autograd.Variable(t, requires_grad=True)
        assert v.requires_grad and v.is_leaf and v is not t and not t.requires_grad
        (v * 3).sum().backward()
        _close(v.grad, torch_ref.full((2,), 3.0))


def test_backward_through_a_dropped_layer_while_hooks_are_registered():
    # a leaf whose handle is gone (a temporary layer's weight) left a dead weak reference in
    # the graph; looking it up among the hooked leaves hashed it and raised TypeError
    keep = torch.ones(2, requires_grad=True)
    handle = keep.register_hook(lambda g: g * 2)
    x = torch.ones(3, 4, requires_grad=True)
    y = torch.nn.Linear(4, 2)(x)  # the layer (and its weight's handle) is dropped here
    gc.collect()
    (y.sum() + (keep * 3).sum()).backward()
    np.testing.assert_allclose(keep.grad.numpy(), [6.0, 6.0])
    assert x.grad.shape == (3, 4)
    handle.remove()
