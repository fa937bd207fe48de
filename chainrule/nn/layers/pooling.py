"""Max and average pooling over channels-last inputs (``(N, *spatial, C)``)."""

from __future__ import annotations

import math

from chainrule.core.pooling import pool_max, pool_sum

from ... import core as mx
from ...core.array import array
from ..module import Module

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
]


def _ints(value, n: int, name: str, who: str, minimum: int) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value,) * n
    elif isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        out = tuple(value)
    else:
        out = ()
    if len(out) != n or any(v < minimum for v in out):
        raise ValueError(
            f"{who}: {name} must be an int or a tuple of {n} ints >= {minimum}, got {value!r}"
        )
    return out


class _Pool(Module):
    _nd = 0
    _pad_value = 0.0

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        who = type(self).__name__
        nd = self._nd
        self._kernel_size = _ints(kernel_size, nd, "kernel_size", who, 1)
        self._stride = self._kernel_size if stride is None else _ints(stride, nd, "stride", who, 1)
        self._padding = _ints(padding, nd, "padding", who, 0)

    def _extra_repr(self) -> str:
        return f"kernel_size={self._kernel_size}, stride={self._stride}, padding={self._padding}"

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        if x.ndim != self._nd + 2:
            raise ValueError(
                f"{who}: expected an input of {self._nd + 2} dimensions (N, "
                f"{'spatial, ' * self._nd}C), got shape {x.shape}"
            )
        if any(self._padding):
            width = [(0, 0)] + [(p, p) for p in self._padding] + [(0, 0)]
            value = self._pad_value
            if value == float("-inf") and not mx.issubdtype(x.dtype, mx.inexact):
                value = mx.iinfo(x.dtype).min if x.dtype != mx.bool_ else False
            x = mx.pad(x, width, constant_values=value)
        k = self._kernel_size
        if any(n < kk for n, kk in zip(x.shape[1:-1], k)):
            raise ValueError(
                f"{who}: the (padded) input has spatial shape {tuple(x.shape[1:-1])}, smaller "
                f"than the kernel {k}"
            )
        return self._pool(x, k, self._stride)

    def _pool(self, x: array, kernel: tuple, stride: tuple) -> array:
        raise NotImplementedError


class _MaxPool(_Pool):
    # MLX's max over each window: tied maxima share the gradient
    _pad_value = float("-inf")

    def _pool(self, x: array, kernel: tuple, stride: tuple) -> array:
        return pool_max(x, kernel, stride, (1,) * len(kernel), first=False)


class _AvgPool(_Pool):
    # Zero padding counts in the average (PyTorch's count_include_pad=True).
    _pad_value = 0.0

    def _pool(self, x: array, kernel: tuple, stride: tuple) -> array:
        if not mx.issubdtype(x.dtype, mx.inexact):
            x = x.astype(mx.float32)  # as mx.mean: integers average in float32
        return pool_sum(x, kernel, stride, (1,) * len(kernel)) / math.prod(kernel)


def _doc(kind: str, nd: int) -> str:
    layout = {1: "(N, L, C)", 2: "(N, H, W, C)", 3: "(N, D, H, W, C)"}[nd]
    pad = "negative infinity" if kind == "max" else "zeros (counted in the average)"
    return (
        f"{nd}-d {kind} pooling over {layout} inputs.\n\n"
        "    Args:\n"
        f"        kernel_size: the window size (an int or {nd} ints).\n"
        "        stride: the step between windows (default: ``kernel_size``).\n"
        f"        padding: amount of {pad} added on both sides of each spatial axis.\n"
    )


class MaxPool1d(_MaxPool):
    __doc__ = _doc("max", 1)
    _nd = 1


class MaxPool2d(_MaxPool):
    __doc__ = _doc("max", 2)
    _nd = 2


class MaxPool3d(_MaxPool):
    __doc__ = _doc("max", 3)
    _nd = 3


class AvgPool1d(_AvgPool):
    __doc__ = _doc("average", 1)
    _nd = 1


class AvgPool2d(_AvgPool):
    __doc__ = _doc("average", 2)
    _nd = 2


class AvgPool3d(_AvgPool):
    __doc__ = _doc("average", 3)
    _nd = 3
