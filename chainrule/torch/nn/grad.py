"""``torch.nn.grad``: gradients of convolutions with respect to their input or weight.

Each is the vector-Jacobian product of the matching ``F.conv*`` (a composite of chainrule
operations), so the numbers are those of the backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chainrule.core as mx
from chainrule.core.array import array

from . import functional_misc as M

__all__ = [
    "conv1d_input",
    "conv1d_weight",
    "conv2d_input",
    "conv2d_weight",
    "conv3d_input",
    "conv3d_weight",
]


def _vjp(nd, wrt, fixed, shape, grad_output, stride, padding, dilation, groups):
    conv = (M.conv1d, M.conv2d, M.conv3d)[nd - 1]
    probe = mx.zeros(tuple(shape), dtype=grad_output.dtype)

    def f(x):
        if wrt == "input":
            return conv(x, fixed, None, stride, padding, dilation, groups)
        return conv(fixed, x, None, stride, padding, dilation, groups)

    _, (g,) = mx.vjp(f, [probe], [grad_output])
    return g


def _make(nd: int, wrt: str):
    def fn(
        first: Sequence[int] | array,
        second: Sequence[int] | array,
        grad_output: array,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
    ) -> array:
        # conv*_input(input_size, weight, ...) and conv*_weight(input, weight_size, ...)
        shape, fixed = (first, second) if wrt == "input" else (second, first)
        return _vjp(nd, wrt, fixed, shape, grad_output, stride, padding, dilation, groups)

    name = f"conv{nd}d_{wrt}"
    other = "weight" if wrt == "input" else "input"
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"Gradient of ``conv{nd}d`` with respect to its {wrt}.\n\n    Args:\n"
        f"        first: the input's shape (or the input, for the weight's gradient).\n"
        f"        second: the weight (or the weight's shape); the {other} is given.\n"
        "        grad_output: the output's cotangent.\n        stride: as in the convolution.\n"
        "        padding: as in the convolution.\n        dilation: as in the convolution.\n"
        f"        groups: as in the convolution.\n\n    Returns:\n        The {wrt}'s gradient."
    )
    return fn


conv1d_input = _make(1, "input")
conv2d_input = _make(2, "input")
conv3d_input = _make(3, "input")
conv1d_weight = _make(1, "weight")
conv2d_weight = _make(2, "weight")
conv3d_weight = _make(3, "weight")
