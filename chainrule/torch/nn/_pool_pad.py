"""PyTorch's pooling, padding, resampling and shuffling modules: each stores its arguments and
calls ``F`` (channels-first inputs)."""

from __future__ import annotations

from typing import Any

from chainrule.core.array import array

from . import functional_pool as P
from . import functional_resample as R
from ._layers import Upsample
from ._module import Module

__all__ = [
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "ChannelShuffle",
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "Fold",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "PixelShuffle",
    "PixelUnshuffle",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "Unfold",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
]


class AdaptiveAvgPool3d(Module):
    """Average-pool ``(N, C, D, H, W)`` to ``output_size``."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"output_size={self.output_size}"

    def forward(self, input: array) -> array:
        """Pool."""
        return P.adaptive_avg_pool3d(input, self.output_size)


def _adaptive_max(nd: int) -> type:
    fn = getattr(P, f"adaptive_max_pool{nd}d")

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        Module.__init__(self)
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: array) -> Any:
        """Pool (and return indices when asked)."""
        return fn(input, self.output_size, self.return_indices)

    name = f"AdaptiveMaxPool{nd}d"
    return type(
        name,
        (Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "extra_repr": lambda self: f"output_size={self.output_size}",
            "__doc__": f"Max-pool a {nd}-d channels-first input to ``output_size``.",
            "__module__": __name__,
            "__qualname__": name,
        },
    )


AdaptiveMaxPool1d = _adaptive_max(1)
AdaptiveMaxPool2d = _adaptive_max(2)
AdaptiveMaxPool3d = _adaptive_max(3)


def _lp(nd: int) -> type:
    fn = getattr(P, f"lp_pool{nd}d")

    def __init__(
        self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
    ) -> None:
        Module.__init__(self)
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, input: array) -> array:
        """Pool."""
        return fn(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    name = f"LPPool{nd}d"
    return type(
        name,
        (Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "extra_repr": lambda self: (
                f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}"
            ),
            "__doc__": f"Power-average pooling over {nd}-d windows.",
            "__module__": __name__,
            "__qualname__": name,
        },
    )


LPPool1d = _lp(1)
LPPool2d = _lp(2)
LPPool3d = _lp(3)


def _unpool(nd: int) -> type:
    fn = getattr(P, f"max_unpool{nd}d")

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        Module.__init__(self)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, input: array, indices: array, output_size: Any = None) -> array:
        """Unpool."""
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    name = f"MaxUnpool{nd}d"
    return type(
        name,
        (Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "extra_repr": lambda self: (
                f"kernel_size={P.ntuple(self.kernel_size, nd, 'kernel_size', name)}, "
                f"stride={P.ntuple(self.stride, nd, 'stride', name)}, "
                f"padding={P.ntuple(self.padding, nd, 'padding', name)}"
            ),
            "__doc__": f"Partial inverse of {nd}-d max pooling.",
            "__module__": __name__,
            "__qualname__": name,
        },
    )


MaxUnpool1d = _unpool(1)
MaxUnpool2d = _unpool(2)
MaxUnpool3d = _unpool(3)


def _fractional(nd: int) -> type:
    fn = getattr(P, f"fractional_max_pool{nd}d")

    def __init__(
        self,
        kernel_size: Any,
        output_size: Any = None,
        output_ratio: Any = None,
        return_indices: bool = False,
        _random_samples: Any = None,
    ) -> None:
        Module.__init__(self)
        if output_size is None and output_ratio is None:
            raise ValueError(
                f"FractionalMaxPool{nd}d requires specifying either an output "
                "size, or a pooling ratio"
            )
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        self.kernel_size, self.output_size = kernel_size, output_size
        self.output_ratio, self.return_indices = output_ratio, return_indices
        object.__setattr__(self, "_random_samples", _random_samples)

    def forward(self, input: array) -> Any:
        """Pool with fresh random window offsets (or the given ``_random_samples``)."""
        return fn(
            input,
            self.kernel_size,
            self.output_size,
            self.output_ratio,
            self.return_indices,
            self._random_samples,
        )

    name = f"FractionalMaxPool{nd}d"
    return type(
        name,
        (Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "__doc__": f"Fractional max pooling of a {nd}-d input.",
            "__module__": __name__,
            "__qualname__": name,
        },
    )


FractionalMaxPool2d = _fractional(2)
FractionalMaxPool3d = _fractional(3)


def _pad(name: str, nd: int, mode: str, with_value: bool) -> type:
    def __init__(self, padding: Any, value: float = 0.0) -> None:
        Module.__init__(self)
        p = (int(padding),) * (2 * nd) if isinstance(padding, int) else tuple(padding)
        if len(p) != 2 * nd:
            raise ValueError(f"{name}: padding must be an int or {2 * nd} ints, got {padding!r}")
        self.padding = p
        if with_value:
            self.value = value

    def forward(self, input: array) -> array:
        """Pad."""
        return R.pad(
            input, self.padding, mode, getattr(self, "value", None) if with_value else None
        )

    if with_value:

        def init(self, padding: Any, value: float) -> None:
            __init__(self, padding, value)

    else:

        def init(self, padding: Any) -> None:
            __init__(self, padding)

    def extra_repr(self) -> str:
        if with_value:
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"

    return type(
        name,
        (Module,),
        {
            "__init__": init,
            "forward": forward,
            "extra_repr": extra_repr,
            "__doc__": f"Pad the last {nd} dimensions (mode {mode!r}).",
            "__module__": __name__,
            "__qualname__": name,
        },
    )


ZeroPad1d = _pad("ZeroPad1d", 1, "constant", False)
ZeroPad2d = _pad("ZeroPad2d", 2, "constant", False)
ZeroPad3d = _pad("ZeroPad3d", 3, "constant", False)
ConstantPad1d = _pad("ConstantPad1d", 1, "constant", True)
ConstantPad2d = _pad("ConstantPad2d", 2, "constant", True)
ConstantPad3d = _pad("ConstantPad3d", 3, "constant", True)
ReflectionPad1d = _pad("ReflectionPad1d", 1, "reflect", False)
ReflectionPad2d = _pad("ReflectionPad2d", 2, "reflect", False)
ReflectionPad3d = _pad("ReflectionPad3d", 3, "reflect", False)
ReplicationPad1d = _pad("ReplicationPad1d", 1, "replicate", False)
ReplicationPad2d = _pad("ReplicationPad2d", 2, "replicate", False)
ReplicationPad3d = _pad("ReplicationPad3d", 3, "replicate", False)
CircularPad1d = _pad("CircularPad1d", 1, "circular", False)
CircularPad2d = _pad("CircularPad2d", 2, "circular", False)
CircularPad3d = _pad("CircularPad3d", 3, "circular", False)


class PixelShuffle(Module):
    """``(*, C * r^2, H, W)`` to ``(*, C, H * r, W * r)``."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"upscale_factor={self.upscale_factor}"

    def forward(self, input: array) -> array:
        """Rearrange."""
        return R.pixel_shuffle(input, self.upscale_factor)


class PixelUnshuffle(Module):
    """``(*, C, H * r, W * r)`` to ``(*, C * r^2, H, W)``."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"downscale_factor={self.downscale_factor}"

    def forward(self, input: array) -> array:
        """Rearrange."""
        return R.pixel_unshuffle(input, self.downscale_factor)


class ChannelShuffle(Module):
    """Interleave ``groups`` groups of channels."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"groups={self.groups}"

    def forward(self, input: array) -> array:
        """Shuffle."""
        return R.channel_shuffle(input, self.groups)


class Unfold(Module):
    """Sliding local blocks (im2col) of ``(N, C, H, W)``."""

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding}, stride={self.stride}"
        )

    def forward(self, input: array) -> array:
        """Extract the blocks."""
        return R.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(Module):
    """Sum sliding local blocks into an image (col2im)."""

    def __init__(
        self,
        output_size: Any,
        kernel_size: Any,
        dilation: Any = 1,
        padding: Any = 0,
        stride: Any = 1,
    ) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}"
        )

    def forward(self, input: array) -> array:
        """Fold the blocks."""
        return R.fold(
            input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride
        )


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour upsampling of ``(N, C, H, W)`` (PyTorch's ``Upsample`` subclass).

    Args:
        size: the output's spatial size.
        scale_factor: or the factor per spatial axis.
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear upsampling of ``(N, C, H, W)`` with ``align_corners=True`` (PyTorch's
    ``Upsample`` subclass).

    Args:
        size: the output's spatial size.
        scale_factor: or the factor per spatial axis.
    """

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
