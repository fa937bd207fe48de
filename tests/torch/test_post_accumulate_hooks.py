"""``Tensor.register_post_accumulate_grad_hook``: PyTorch's tutorial "optimizer step in the
backward pass" (one optimizer per parameter, stepped and zeroed by the hook) trains exactly
as the usual loop does."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _data():
    rng = np.random.default_rng(0)
    return torch.tensor(rng.standard_normal((16, 4)), dtype=torch.float32), torch.tensor(
        rng.standard_normal((16, 1)), dtype=torch.float32
    )


def test_optimizer_in_backward_matches_the_usual_loop() -> None:
    x, y = _data()
    plain = _model()
    opt = torch.optim.Adam(plain.parameters(), lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(plain(x), y).backward()
        opt.step()

    fused = _model()
    opts = {p: torch.optim.Adam([p], lr=0.01) for p in fused.parameters()}
    calls = []

    def hook(p) -> None:
        calls.append(p)
        opts[p].step()
        opts[p].zero_grad()

    handles = [p.register_post_accumulate_grad_hook(hook) for p in fused.parameters()]
    for _ in range(5):
        torch.nn.functional.mse_loss(fused(x), y).backward()
    assert len(calls) == 5 * 4
    assert all(p.grad is None for p in fused.parameters())  # zeroed by the hooks
    for a, b in zip(plain.parameters(), fused.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)

    for h in handles:
        h.remove()
    before = [p.detach().numpy().copy() for p in fused.parameters()]
    torch.nn.functional.mse_loss(fused(x), y).backward()
    assert len(calls) == 20  # removed: no more steps
    for p, b in zip(fused.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), b)
        assert p.grad is not None


def test_the_hook_sees_the_accumulated_grad() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * w).sum().backward()
    (3 * w).sum().backward()
    np.testing.assert_allclose(seen[0], [2.0, 4.0])
    np.testing.assert_allclose(seen[1], [5.0, 7.0])  # accumulated, then the hook


def test_only_on_leaves_that_require_grad() -> None:
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        torch.ones(2).register_post_accumulate_grad_hook(lambda t: None)
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        w.register_post_accumulate_grad_hook(3)


def test_backward_with_inputs_runs_the_hooks_of_those_leaves_only() -> None:
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    v = torch.tensor([3.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append("w"))
    v.register_post_accumulate_grad_hook(lambda t: seen.append("v"))
    ((w * w).sum() * v).sum().backward(inputs=[w])
    assert seen == ["w"] and v.grad is None
