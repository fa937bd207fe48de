"""nn.value_and_grad (MLX) and gradient clipping (PyTorch)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.utils import tree_flatten, tree_map


def _model():
    mx.random.seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def _loss(model, x, y):
    return nn.losses.mse_loss(model(x), y, reduction="mean")


# -- value_and_grad ------------------------------------------------------------------------------


def test_value_and_grad_restores_the_model_and_matches_tape_grad():
    model = _model()
    x, y = mx.random.normal((4, 3)), mx.random.normal((4, 2))
    handles = [p for _, p in tree_flatten(model.parameters())]
    value, grads = nn.value_and_grad(model, _loss)(model, x, y)
    after = [p for _, p in tree_flatten(model.parameters())]
    assert all(a is b for a, b in zip(handles, after))  # the model's own arrays are back
    assert all(p.requires_grad and p.is_leaf and p.grad is None for p in after)
    assert value._node is None and value.shape == ()
    assert [k for k, _ in tree_flatten(grads)] == [
        k for k, _ in tree_flatten(model.trainable_parameters())
    ]
    loss = _loss(model, x, y)
    loss.backward()
    assert abs(loss.item() - value.item()) < 1e-6
    for (k, g), (_, p) in zip(tree_flatten(grads), tree_flatten(model.parameters())):
        np.testing.assert_allclose(g.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=k)


def test_value_and_grad_restores_even_when_fn_raises():
    model = _model()
    handles = [p for _, p in tree_flatten(model.parameters())]

    def bad(x):
        model(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        nn.value_and_grad(model, bad)(mx.ones((1, 3)))
    assert all(a is b for a, b in zip(handles, [p for _, p in tree_flatten(model.parameters())]))


def test_value_and_grad_skips_frozen_parameters_and_matches_finite_differences():
    model = _model()
    model.layers[0].freeze()
    model.set_dtype(mx.float64)
    x = mx.random.normal((4, 3)).astype(mx.float64)
    y = mx.random.normal((4, 2)).astype(mx.float64)
    _, grads = nn.value_and_grad(model, _loss)(model, x, y)
    assert grads["layers"][0] == {}
    w = model.layers[2].weight
    eps = 1e-6
    num = np.zeros(w.shape)
    base = w.numpy()
    for i in np.ndindex(*w.shape):
        for sign in (1, -1):
            v = base.copy()
            v[i] += sign * eps
            model.layers[2].weight = mx.array(v, dtype=mx.float64)
            num[i] += sign * _loss(model, x, y).item() / (2 * eps)
    np.testing.assert_allclose(grads["layers"][2]["weight"].numpy(), num, rtol=1e-5, atol=1e-8)


def test_value_and_grad_with_aux_outputs_and_mlx_update():
    model = _model()
    x, y = mx.random.normal((4, 3)), mx.random.normal((4, 2))

    def loss_and_pred(x, y):
        pred = model(x)
        return nn.losses.mse_loss(pred, y, reduction="mean"), pred

    (loss, pred), grads = nn.value_and_grad(model, loss_and_pred)(x, y)
    assert pred.shape == (4, 2)
    new = tree_map(lambda p, g: p - 0.1 * g, model.trainable_parameters(), grads)
    model.update(new)
    assert model.layers[0].weight.requires_grad  # tape style still works afterwards
    assert _loss(model, x, y).item() < loss.item()


def test_grad_of_value_and_grad():
    # nn.value_and_grad inside mx.grad: d/dx of dL/dw for L = (w x)^2 is 4 w x
    model = nn.Linear(1, 1, bias=False)
    w = model.weight.item()

    def f(x):
        _, g = nn.value_and_grad(model, lambda t: (model(t) ** 2).sum())(x)
        return g["weight"].sum()

    x = mx.array([[0.7]])
    assert abs(mx.grad(f)(x).item() - 4 * w * 0.7) < 1e-5


def test_checkpoint_is_transparent():
    model = _model()
    x = mx.random.normal((2, 3))
    np.testing.assert_array_equal(nn.checkpoint(model)(x).numpy(), model(x).numpy())


# -- clipping ------------------------------------------------------------------------------------


def _with_grads(scale=10.0):
    model = _model()
    x, y = mx.random.normal((4, 3)), mx.random.normal((4, 2)) * scale
    _loss(model, x, y).backward()
    return model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    model = _with_grads()
    params = [p for _, p in tree_flatten(model.parameters())]
    old = [p.grad for p in params]
    old_values = [g.numpy() for g in old]
    tparams = [torch.nn.Parameter(torch.tensor(p.numpy())) for p in params]
    for t, p in zip(tparams, params):
        t.grad = torch.tensor(p.grad.numpy())
    total = nn.utils.clip_grad_norm_(model.parameters(), 0.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 0.5, norm_type=norm_type)
    assert abs(total.item() - ttotal.item()) < 1e-4 * max(1.0, ttotal.item())
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)
    # the old gradient arrays were rebound, not modified
    for g, v in zip(old, old_values):
        np.testing.assert_array_equal(g.numpy(), v)


def test_clip_grad_norm_forms_and_no_op():
    model = _with_grads(scale=0.0)
    params = [p for _, p in tree_flatten(model.parameters())]
    before = [p.grad for p in params]
    total = nn.clip_grad_norm_(params, 1e6)
    assert total.item() > 0 and all(p.grad is g for p, g in zip(params, before))
    assert nn.clip_grad_norm_(params[0], 1e6).item() > 0
    assert nn.clip_grad_norm_([{"params": params}], 1e6).item() == pytest.approx(total.item())
    assert nn.clip_grad_norm_([mx.zeros(2)], 1.0).item() == 0.0  # no gradients at all
    with pytest.raises(ValueError, match="max_norm"):
        nn.clip_grad_norm_(params, -1.0)
    params[0].grad = mx.full(params[0].shape, float("nan"))
    with pytest.raises(RuntimeError, match="nan"):
        nn.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)


def test_clip_grad_value():
    model = _with_grads()
    params = [p for _, p in tree_flatten(model.parameters())]
    raw = [p.grad.numpy() for p in params]
    nn.utils.clip_grad_value_(model.parameters(), 0.05)
    for p, r in zip(params, raw):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(r, -0.05, 0.05))
        assert p.grad.dtype == mx.float32
    with pytest.raises(ValueError, match="clip_value"):
        nn.clip_grad_value_(params, -1)


def _tied_model():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    model.layers[1].weight = model.layers[0].weight  # one array at two places
    return model


@pytest.mark.parametrize("kind", ["plain", "tied", "nested"])
def test_value_and_grad_shortcut_equals_the_traced_path(kind):
    """Parameters that are requires_grad leaves are differentiated at their own nodes; tied
    parameters and calls inside another transform take the traced path. Both give what
    differentiating each position separately gives."""
    from chainrule.core import autograd

    mx.random.seed(1)
    model = _tied_model() if kind == "tied" else nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    x = mx.array(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))

    def loss_fn(m, x):
        return (m(x) ** 2).mean()

    vg = nn.value_and_grad(model, loss_fn)

    def by_position(params):  # the reference: plain mx.grad over the tree, position by position
        def f(p):
            model.update(p)
            return loss_fn(model, x)

        saved = model.trainable_parameters()
        try:
            return mx.value_and_grad(f)(params)
        finally:
            model.update(saved)

    called = []
    original = autograd._value_and_grad_of_leaves

    def spy(*a, **k):
        out = original(*a, **k)
        called.append(out is not None)
        return out

    utils_mod = sys.modules["chainrule.nn.utils"]
    utils_mod.value_and_grad_of_leaves = spy
    try:
        if kind == "nested":
            # d/dx of the gradient norm: nn.value_and_grad inside mx.grad
            outer = mx.grad(lambda x: vg(model, x)[1]["layers"][0]["weight"].sum())(x)
            assert outer.shape == x.shape
            value, grads = vg(model, x)
        else:
            value, grads = vg(model, x)
    finally:
        utils_mod.value_and_grad_of_leaves = original
    want_value, want = by_position(model.trainable_parameters())
    np.testing.assert_allclose(np.array(value), np.array(want_value), rtol=1e-6)
    for (k, g), (k2, w) in zip(tree_flatten(grads), tree_flatten(want)):
        assert k == k2
        np.testing.assert_allclose(np.array(g), np.array(w), rtol=1e-5, atol=1e-7)
    assert called[-1] is (kind != "tied")
    if kind == "nested":
        assert called[0] is False
