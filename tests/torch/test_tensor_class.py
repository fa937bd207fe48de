"""The Tensor decision (docs/architecture.md, "The Tensor class"), pinned.

Today ``chainrule.torch.Tensor`` is the one array class: methods whose PyTorch meaning clashes
with MLX's keep MLX's meaning on every array, and chainrule.torch's functions give PyTorch's.
The subclass that will give tensors PyTorch's methods is specified by the strict xfail tests
at the end: they pass (and so fail as XPASS, to be unmarked) the day it lands.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch


def test_tensor_is_the_array_class_for_now():
    assert torch.Tensor is mx.array
    for x in (torch.randn(2, 3), mx.zeros((2, 3)), torch.tensor([1, 2]), mx.array(1.0)):
        assert isinstance(x, torch.Tensor) and torch.is_tensor(x)


def test_arrays_keep_mlx_transpose():
    x = mx.array(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert x.transpose(1, 2, 0).shape == (3, 4, 2)  # a permutation of all axes (MLX)
    assert x.transpose().shape == (4, 3, 2)
    assert mx.zeros((2, 3)).transpose(0, 1).shape == (2, 3)  # the identity permutation
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(-2, -1)  # two axes of three: not a permutation, refused with a message


@pytest.mark.parametrize("fn", [torch.transpose, torch.swapaxes, torch.swapdims])
def test_torch_functions_swap_two_dimensions(fn):
    a = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    y = fn(torch.tensor(a), -2, -1)
    assert y.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(y.numpy(), np.swapaxes(a, -2, -1))
    assert fn(torch.randn(2, 3), 0, 1).shape == (3, 2)
    x = torch.randn(2, 3, requires_grad=True)
    (fn(x, 0, 1) * torch.arange(6).reshape(3, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6).reshape(3, 2).T)


def test_keyword_forms_already_speak_pytorch_on_every_array():
    x = mx.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert indices.dtype == mx.int64
    assert x.max(1).tolist() == [5.0, 7.0]  # positional: MLX's values only


# -- the subclass, specified --------------------------------------------------------------------

PENDING = pytest.mark.xfail(
    strict=True,
    reason="chainrule.torch.Tensor subclass: needs the op table to accept array subclasses "
    "and keep the result's class (docs/architecture.md, The Tensor class)",
)


@PENDING
def test_tensors_from_chainrule_torch_transpose_two_dimensions():
    assert torch.randn(2, 3).transpose(0, 1).shape == (3, 2)
    assert torch.randn(2, 3, 4, 5).transpose(-2, -1).shape == (2, 3, 5, 4)


@PENDING
def test_results_of_operations_on_tensors_stay_tensors():
    x = torch.randn(2, 3)
    for y in (x + 1, x * x, mx.exp(x), x.reshape(3, 2).t(), torch.nn.Linear(3, 4)(x)):
        assert type(y) is torch.Tensor
    assert (x + 1).transpose(0, 1).shape == (3, 2)
    assert type(mx.zeros((2, 3))) is mx.array  # core arrays stay arrays
    assert mx.zeros((2, 3)).transpose(0, 1).shape == (2, 3)
