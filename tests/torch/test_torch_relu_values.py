"""``F.relu`` is ``maximum(x, 0)``: PyTorch's values for NaN, infinities, integers and the
gradient at 0 (issue 20 made it one ufunc instead of ``where`` + zeros)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch


def test_relu_keeps_nan_and_infinities_as_pytorch():
    real = pytest.importorskip("torch")
    xs = [float("nan"), -float("inf"), -1.0, -0.0, 0.0, 2.5, float("inf")]
    ours = torch.nn.functional.relu(torch.tensor(xs))
    want = real.nn.functional.relu(real.tensor(xs)).numpy()
    np.testing.assert_array_equal(np.asarray(ours), want)
    assert np.isnan(np.asarray(ours)[0])
    ints = torch.nn.functional.relu(torch.tensor([-3, 0, 4]))
    assert ints.dtype == torch.int64 and np.asarray(ints).tolist() == [0, 0, 4]


def test_relu_gradient_is_zero_at_zero_and_inplace_rebinds():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    torch.nn.functional.relu(x).sum().backward()
    assert np.asarray(x.grad).tolist() == [0.0, 0.0, 1.0]
    y = torch.tensor([-1.0, 3.0])
    out = torch.nn.ReLU(inplace=True)(y)
    assert np.asarray(y).tolist() == [0.0, 3.0] and np.asarray(out).tolist() == [0.0, 3.0]


def test_an_in_place_layer_is_seen_by_the_version_counter_as_pytorch():
    """``nn.ReLU(inplace=True)`` rebinds the caller's tensor through the layer door, so a
    backward pass that needs the old value raises PyTorch's error."""
    real = pytest.importorskip("torch")
    for lib in (torch, real):
        y = lib.tensor([1.0, -2.0], requires_grad=True).sigmoid()  # sigmoid saves its output
        lib.nn.ReLU(inplace=True)(y)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
