"""``torch.inference_mode`` and ``torch.is_inference_mode_enabled`` (PyTorch's meanings: a
``no_grad`` region that says it is one; ``mode=False`` turns both off inside it)."""

from __future__ import annotations

import chainrule.torch as torch


def test_context_manager_nested() -> None:
    assert not torch.is_inference_mode_enabled()
    with torch.inference_mode():
        assert torch.is_inference_mode_enabled() and not torch.is_grad_enabled()
        with torch.inference_mode(False):
            assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
        assert torch.is_inference_mode_enabled()
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()


def test_decorators_with_and_without_a_call() -> None:
    @torch.inference_mode()
    def called():
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    @torch.inference_mode
    def bare():
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    assert called() == (True, False) and bare() == (True, False)
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    w = torch.ones(2, requires_grad=True)
    assert torch.inference_mode()(lambda: (w * 2).requires_grad)() is False
