"""Convolution layers with MLX's channels-last layouts and initialisation."""

from __future__ import annotations

import math

from chainrule.core.extend import as_tuple

from ... import core as mx
from ...core.array import array
from ...core.ops.normalization import bias_add
from ..module import Module

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
]


class _ConvNd(Module):
    _nd = 0
    _fn = None
    _transpose = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        output_padding=0,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        nd = self._nd
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{who}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups})"
            )
        kernel = as_tuple(kernel_size, nd, "kernel_size", who, 1)
        # MLX's fan-in: one group's input channels (a transposed convolution: all of them)
        fan_in = in_channels if self._transpose else in_channels // groups
        scale = math.sqrt(1.0 / (fan_in * math.prod(kernel)))
        self.weight = mx.random.uniform(
            -scale, scale, (out_channels, *kernel, in_channels // groups)
        )
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride = as_tuple(stride, nd, "stride", who, 1)
        self.padding = as_tuple(padding, nd, "padding", who, 0)
        self.dilation = as_tuple(dilation, nd, "dilation", who, 1)
        self.groups = groups
        if self._transpose:
            self.output_padding = as_tuple(output_padding, nd, "output_padding", who, 0)
        if nd == 1:  # MLX keeps plain ints for the 1-d layers
            self.stride, self.padding, self.dilation = (
                self.stride[0],
                self.padding[0],
                self.dilation[0],
            )
            if self._transpose:
                self.output_padding = self.output_padding[0]

    def _extra_repr(self) -> str:
        w = self["weight"]
        kernel = w.shape[1:-1]
        text = (
            f"{w.shape[-1] * self.groups}, {w.shape[0]}, kernel_size="
            f"{kernel[0] if self._nd == 1 else kernel}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, "
        )
        if self._transpose:
            text += f"output_padding={self.output_padding}, "
        return text + f"groups={self.groups}, bias={'bias' in self}"

    def __call__(self, x: array) -> array:
        if self._transpose:
            y = type(self)._fn(
                x,
                self["weight"],
                self.stride,
                self.padding,
                self.dilation,
                self.output_padding,
                self.groups,
            )
        else:
            y = type(self)._fn(
                x, self["weight"], self.stride, self.padding, self.dilation, self.groups
            )
        if "bias" in self:
            y = bias_add(y, self["bias"])
        return y


class Conv1d(_ConvNd):
    """1-d convolution over ``(N, L, C_in)`` inputs; weight ``(C_out, K, C_in // groups)``.

    The weight is drawn from ``U(-s, s)`` with ``s = 1/sqrt(C_in * K)``; the bias starts at 0
    (MLX's initialisation).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter length.
        stride: step between windows.
        padding: zeros added at both ends.
        dilation: spacing between filter taps.
        groups: channel groups.
        bias: learn a bias.
    """

    _nd = 1
    _fn = staticmethod(mx.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )


class Conv2d(_ConvNd):
    """2-d convolution over ``(N, H, W, C_in)`` inputs; weight ``(C_out, KH, KW, C_in // groups)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size (an int or ``(KH, KW)``).
        stride: step between windows.
        padding: zeros added on both sides.
        dilation: spacing between filter taps.
        groups: channel groups.
        bias: learn a bias.
    """

    _nd = 2
    _fn = staticmethod(mx.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )


class Conv3d(_ConvNd):
    """3-d convolution over ``(N, D, H, W, C_in)`` inputs; weight ``(C_out, KD, KH, KW, C_in)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size (an int or three ints).
        stride: step between windows.
        padding: zeros added on both sides.
        dilation: spacing between filter taps.
        bias: learn a bias.
    """

    _nd = 3
    _fn = staticmethod(mx.conv3d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 1, bias)


class ConvTranspose1d(_ConvNd):
    """1-d transposed convolution over ``(N, L, C_in)``; weight ``(C_out, K, C_in)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter length.
        stride: upsampling step.
        padding: amount removed from both ends of the output.
        dilation: spacing between filter taps.
        output_padding: extra length added at the end of the output.
        bias: learn a bias.
    """

    _nd = 1
    _fn = staticmethod(mx.conv_transpose1d)
    _transpose = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        output_padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            1,
            bias,
            output_padding,
        )


class ConvTranspose2d(_ConvNd):
    """2-d transposed convolution over ``(N, H, W, C_in)``; weight ``(C_out, KH, KW, C_in)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size.
        stride: upsampling step.
        padding: amount removed from both sides of the output.
        dilation: spacing between filter taps.
        output_padding: extra size added at the end of the output.
        bias: learn a bias.
    """

    _nd = 2
    _fn = staticmethod(mx.conv_transpose2d)
    _transpose = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        output_padding=0,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            1,
            bias,
            output_padding,
        )


class ConvTranspose3d(_ConvNd):
    """3-d transposed convolution over ``(N, D, H, W, C_in)``; weight ``(C_out, *K, C_in)``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size.
        stride: upsampling step.
        padding: amount removed from both sides of the output.
        dilation: spacing between filter taps.
        output_padding: extra size added at the end of the output.
        bias: learn a bias.
    """

    _nd = 3
    _fn = staticmethod(mx.conv_transpose3d)
    _transpose = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        output_padding=0,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            1,
            bias,
            output_padding,
        )
