"""chainrule.torch.autograd: grad, backward and anomaly detection under PyTorch's names."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch


def _x():
    return torch.tensor([0.5, -1.0, 2.0], requires_grad=True)


def test_grad_of_a_scalar_leaves_dot_grad_alone():
    x = _x()
    y = (x * x * x).sum()
    (g,) = torch.autograd.grad(y, x)
    np.testing.assert_allclose(np.array(g), 3 * np.array([0.5, -1.0, 2.0]) ** 2, rtol=1e-6)
    assert x.grad is None


def test_grad_with_create_graph_gives_second_derivatives():
    x = _x()
    (g,) = torch.autograd.grad((x**3).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(np.array(h), 6 * np.array([0.5, -1.0, 2.0]), rtol=1e-6)


def test_grad_outputs_intermediate_inputs_and_unused():
    x = _x()
    z = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    y = h.sin()
    gh, gz = torch.autograd.grad(y, [h, z], grad_outputs=torch.ones(3), allow_unused=True)
    np.testing.assert_allclose(np.array(gh), np.cos(2 * np.array([0.5, -1.0, 2.0])), rtol=1e-6)
    assert gz is None
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        torch.autograd.grad(x.sum() * 1.0, [x, z])
    (gz,) = torch.autograd.grad(x.sum() * 1.0, [z], allow_unused=True, materialize_grads=True)
    np.testing.assert_array_equal(np.array(gz), np.zeros(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.autograd.grad(x.sum(), torch.ones(3))


def test_matches_pytorch():
    real = pytest.importorskip("torch")
    v = np.array([0.3, -0.7, 1.1, 2.0], dtype=np.float32)
    x, rx = torch.tensor(v, requires_grad=True), real.tensor(v, requires_grad=True)
    (g,) = torch.autograd.grad((x.tanh() * x).sum(), x, create_graph=True)
    (rg,) = real.autograd.grad((rx.tanh() * rx).sum(), rx, create_graph=True)
    np.testing.assert_allclose(np.array(g), rg.detach().numpy(), rtol=1e-5)
    (h,) = torch.autograd.grad(g.sum(), x)
    (rh,) = real.autograd.grad(rg.sum(), rx)
    np.testing.assert_allclose(np.array(h), rh.numpy(), rtol=1e-5)


def test_backward_accumulates_like_tensor_backward():
    x = _x()
    torch.autograd.backward([(x * x).sum(), x.sum()])
    np.testing.assert_allclose(np.array(x.grad), 2 * np.array([0.5, -1.0, 2.0]) + 1, rtol=1e-6)


def test_detect_anomaly_under_pytorchs_name():
    x = torch.tensor([1.0, 0.0], requires_grad=True)
    with pytest.raises(FloatingPointError, match="log"), np.errstate(divide="ignore"):
        with torch.autograd.detect_anomaly(check_nan=True):
            torch.log(x).sum()
    torch.autograd.set_detect_anomaly(True)
    try:
        assert torch.autograd.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)
    assert not torch.autograd.is_anomaly_enabled()
