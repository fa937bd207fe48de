"""PyTorch's pooling, padding, resampling and shuffling modules: each stores its arguments and
calls ``F`` (channels-first inputs)."""

from __future__ import annotations

from typing import Any

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array

from . import functional_pool as P
from . import functional_resample as R
from ._layers import _SPATIAL, Upsample, _to_first, _to_last, _torch_class, _tuple
from ._module import Module

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
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


# -- MaxPool*d / AvgPool*d: every PyTorch option, through F -------------------------------------


def _check_pool_rank(x: array, nd: int, who: str) -> None:
    if x.ndim not in (nd + 1, nd + 2):  # a ValueError and PyTorch's RuntimeError
        raise P.InputError(
            f"{who}: expected a channels-first input (N, C, {_SPATIAL[nd]}) or "
            f"(C, {_SPATIAL[nd]}), got shape {x.shape}"
        )


def _exporting() -> bool:
    """Whether an ONNX export is recording the call."""
    from chainrule.viz.onnx import is_in_onnx_export

    return is_in_onnx_export()


def _plain_pool(self, x: array, nd: int) -> bool:
    """Set the shared layer's sizes from PyTorch's attributes; False when they are ones only
    ``F`` handles (padding over half the window, which ``F`` refuses with PyTorch's error).

    The plain cases run chainrule.nn's strided-window kernel (which exports to ONNX); the
    others (``ceil_mode``, ``dilation``, indices, divisors) run ``F``'s."""
    k = _tuple(self.kernel_size, nd)
    p = _tuple(self.padding, nd)
    if len(k) != nd or len(p) != nd or any(2 * pp > kk for pp, kk in zip(p, k)):
        return False
    object.__setattr__(self, "_kernel_size", k)
    object.__setattr__(self, "_stride", _tuple(self.stride, nd) or k)
    object.__setattr__(self, "_padding", p)
    return True


def _plain_call(self, x: array) -> array:
    nd = self._nd
    single = x.ndim == nd + 1
    if single:
        x = mx.expand_dims(x, 0)
    y = _to_first(self._shared.__call__(self, _to_last(x)))
    return mx.squeeze(y, 0) if single else y


def _max_pool(base: type, nd: int) -> type:
    name = base.__name__
    fn = getattr(P, f"max_pool{nd}d")

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        cnn.Module.__init__(self)
        for key, value in (
            ("kernel_size", kernel_size),
            ("stride", kernel_size if stride is None else stride),
            ("padding", padding),
            ("dilation", dilation),
            ("return_indices", return_indices),
            ("ceil_mode", ceil_mode),
        ):
            object.__setattr__(self, key, value)

    def __call__(self, x: array) -> Any:
        _check_pool_rank(x, nd, name)
        # F's kernel gives a tied maximum's gradient to its first position (PyTorch); the
        # shared kernel (which shares it among the ties) serves only ONNX export, which
        # cannot follow F's argmax
        plain = (
            not (self.ceil_mode or self.return_indices) and _tuple(self.dilation, nd) == (1,) * nd
        )
        if plain and _exporting() and _plain_pool(self, x, nd):
            return _plain_call(self, x)
        return fn(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )

    doc = (
        f"{nd}-d max pooling over channels-first inputs ``(N, C, {_SPATIAL[nd]})`` (PyTorch's "
        f"``F.max_pool{nd}d``).\n\n"
        "    Args:\n"
        "        kernel_size: the window size.\n"
        "        stride: the step between windows (default: ``kernel_size``).\n"
        "        padding: implicit ``-inf`` on both sides (at most half the window).\n"
        "        dilation: the spacing between taps.\n"
        "        return_indices: also return the flat spatial index of each maximum.\n"
        "        ceil_mode: round the output size up.\n"
    )
    return _torch_class(
        name,
        (base,),
        __init__,
        doc,
        __call__=__call__,
        extra_repr=extra_repr,
        _nd=nd,
        _shared=base,
        __module__=__name__,
    )


def _avg_pool_init(self, kernel_size, stride, padding, ceil_mode, count_include_pad) -> None:
    cnn.Module.__init__(self)
    for key, value in (
        ("kernel_size", kernel_size),
        ("stride", kernel_size if stride is None else stride),
        ("padding", padding),
        ("ceil_mode", ceil_mode),
        ("count_include_pad", count_include_pad),
        ("divisor_override", None),
    ):
        object.__setattr__(self, key, value)


def _avg_pool(base: type, nd: int) -> type:
    name = base.__name__
    fn = getattr(P, f"avg_pool{nd}d")

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        _avg_pool_init(self, kernel_size, stride, padding, ceil_mode, count_include_pad)
        object.__setattr__(self, "divisor_override", divisor_override)

    def init_1d(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        # PyTorch's AvgPool1d keeps its sizes as tuples and has no divisor_override
        stride = kernel_size if stride is None else stride
        kernel_size, stride, padding = (_tuple(v, 1) for v in (kernel_size, stride, padding))
        _avg_pool_init(self, kernel_size, stride, padding, ceil_mode, count_include_pad)

    def __call__(self, x: array) -> array:
        _check_pool_rank(x, nd, name)
        plain = not self.ceil_mode and self.count_include_pad and self.divisor_override is None
        if plain and _plain_pool(self, x, nd):
            return _plain_call(self, x)
        args = (x, self.kernel_size, self.stride, self.padding, self.ceil_mode)
        if nd == 1:
            return fn(*args, self.count_include_pad)
        return fn(*args, self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    doc = (
        f"{nd}-d average pooling over channels-first inputs ``(N, C, {_SPATIAL[nd]})`` "
        f"(PyTorch's ``F.avg_pool{nd}d``).\n\n"
        "    Args:\n"
        "        kernel_size: the window size.\n"
        "        stride: the step between windows (default: ``kernel_size``).\n"
        "        padding: implicit zeros on both sides (at most half the window).\n"
        "        ceil_mode: round the output size up.\n"
        "        count_include_pad: count the padded zeros in the divisor.\n"
        + ("" if nd == 1 else "        divisor_override: divide every window by this.\n")
    )
    init = init_1d if nd == 1 else __init__
    return _torch_class(
        name,
        (base,),
        init,
        doc,
        __call__=__call__,
        extra_repr=extra_repr,
        _nd=nd,
        _shared=base,
        __module__=__name__,
    )


MaxPool1d = _max_pool(cnn.MaxPool1d, 1)
MaxPool2d = _max_pool(cnn.MaxPool2d, 2)
MaxPool3d = _max_pool(cnn.MaxPool3d, 3)
AvgPool1d = _avg_pool(cnn.AvgPool1d, 1)
AvgPool2d = _avg_pool(cnn.AvgPool2d, 2)
AvgPool3d = _avg_pool(cnn.AvgPool3d, 3)
