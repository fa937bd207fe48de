"""``torch.set_default_tensor_type`` (deprecated in PyTorch 2.1, still in older tutorials):
a floating legacy type sets the default dtype, with PyTorch's warning and errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import chainrule.torch as torch


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    torch.set_default_dtype(torch.float32)


def test_a_floating_type_sets_the_default_dtype() -> None:
    with pytest.warns(UserWarning, match="deprecated as of PyTorch 2.1"):
        torch.set_default_tensor_type(torch.DoubleTensor)
    assert torch.get_default_dtype() == torch.float64
    assert torch.tensor([1.0]).dtype == torch.float64
    with pytest.warns(UserWarning):
        torch.set_default_tensor_type("torch.FloatTensor")
    assert torch.tensor([1.0]).dtype == torch.float32


@pytest.mark.parametrize("bad", ["LongTensor", "torch.LongTensor", "float64"])
def test_anything_else_is_refused(bad) -> None:
    t = getattr(torch, bad) if "." not in bad else bad
    with pytest.warns(UserWarning), pytest.raises(TypeError, match="floating-point types"):
        torch.set_default_tensor_type(t)
    assert torch.get_default_dtype() == torch.float32


def test_cuda_types_need_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.warns(UserWarning), pytest.raises(TypeError, match="not available"):
        torch.set_default_tensor_type("torch.cuda.FloatTensor")
    assert torch.get_default_dtype() == torch.float32
