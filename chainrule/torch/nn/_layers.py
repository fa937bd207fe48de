"""Layers whose PyTorch form differs from chainrule.nn's (MLX's) only in layout or arguments.

Each is a thin subclass of the chainrule.nn layer: it takes PyTorch's arguments and its
channels-first inputs (``(N, C, L)``, ``(N, C, H, W)``, ``(N, C, D, H, W)``), moves the channel
axis last, runs the MLX layer and moves it back. The parameters keep the chainrule.nn layer's
shapes (a convolution weight is ``(C_out, KH, KW, C_in)``, MLX's layout), so the same
optimizers, checkpoints and ``nn.value_and_grad`` serve both front doors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "Flatten",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "ModuleDict",
    "ModuleList",
    "Softmax",
    "LogSoftmax",
    "Softmin",
    "Unflatten",
    "Upsample",
]


def _to_last(x: array) -> array:
    return mx.moveaxis(x, 1, -1)


def _to_first(x: array) -> array:
    return mx.moveaxis(x, -1, 1)


def _check_rank(x: array, nd: int, who: str, unbatched: bool = True) -> bool:
    """True when ``x`` is an unbatched ``(C, *spatial)`` input that needs a batch axis."""
    if x.ndim == nd + 2:
        return False
    if unbatched and x.ndim == nd + 1:
        return True
    spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
    raise ValueError(
        f"{who}: expected a channels-first input (N, C, {spatial})"
        + (f" or (C, {spatial})" if unbatched else "")
        + f", got shape {x.shape}"
    )


def _channels_first_call(base_call, nd: int, who: str, unbatched: bool = True):
    def __call__(self, x: array) -> array:
        single = _check_rank(x, nd, who, unbatched)
        if single:
            x = mx.expand_dims(x, 0)
        y = _to_first(base_call(self, _to_last(x)))
        return mx.squeeze(y, 0) if single else y

    __call__.__doc__ = f"Apply the layer to a channels-first input of {nd} spatial dimensions."
    return __call__


def _channels_first(base: type, nd: int, name: str, doc: str) -> type:
    return type(
        name,
        (base,),
        {
            "__call__": _channels_first_call(base.__call__, nd, name),
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
        },
    )


_CONV_DOC = """{nd}-d convolution over channels-first inputs ``(N, C_in, {spatial})``.

    The weight keeps chainrule.nn's layout ``(C_out, {kernel}, C_in // groups)``; the
    initialisation (``U(-s, s)``, ``s = 1/sqrt(fan_in)``) is the one PyTorch's default draws
    from for the weight; the bias starts at zero.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size.
        stride: step between windows.
        padding: zeros added on both sides.
        dilation: spacing between filter taps.
        groups: channel groups.
        bias: learn a bias.
"""

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "K", 2: "KH, KW", 3: "KD, KH, KW"}


def _conv_doc(nd: int, transpose: bool = False) -> str:
    doc = _CONV_DOC.format(nd=nd, spatial=_SPATIAL[nd], kernel=_KERNEL[nd])
    return doc.replace("convolution", "transposed convolution") if transpose else doc


def _refuse_padding_mode(who: str, padding_mode: str) -> None:
    if padding_mode != "zeros":
        raise ValueError(f"{who}: only padding_mode='zeros' is supported, got {padding_mode!r}")


class Conv1d(cnn.Conv1d):
    __doc__ = _conv_doc(1)
    __call__ = _channels_first_call(cnn.Conv1d.__call__, 1, "Conv1d")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_padding_mode("Conv1d", padding_mode)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )


class Conv2d(cnn.Conv2d):
    __doc__ = _conv_doc(2)
    __call__ = _channels_first_call(cnn.Conv2d.__call__, 2, "Conv2d")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_padding_mode("Conv2d", padding_mode)
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        )


class Conv3d(cnn.Conv3d):
    __doc__ = _conv_doc(3)
    __call__ = _channels_first_call(cnn.Conv3d.__call__, 3, "Conv3d")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_padding_mode("Conv3d", padding_mode)
        if groups != 1:
            raise ValueError(f"Conv3d: only groups=1 is supported, got {groups}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias)


def _conv_transpose(base: type, nd: int) -> type:
    name = base.__name__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        _refuse_padding_mode(name, padding_mode)
        if groups != 1:
            raise ValueError(f"{name}: only groups=1 is supported, got {groups}")
        # the chainrule.nn layer's own order of arguments (MLX's)
        base.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            output_padding,
            bias,
        )

    return type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__call__": _channels_first_call(base.__call__, nd, name),
            "__doc__": _conv_doc(nd, transpose=True),
            "__module__": __name__,
            "__qualname__": name,
        },
    )


ConvTranspose1d = _conv_transpose(cnn.ConvTranspose1d, 1)
ConvTranspose2d = _conv_transpose(cnn.ConvTranspose2d, 2)
ConvTranspose3d = _conv_transpose(cnn.ConvTranspose3d, 3)


def _pool(base: type, nd: int, kind: str) -> type:
    name = base.__name__

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Any = None,
    ) -> None:
        if dilation not in (1, (1,) * nd):
            raise ValueError(f"{name}: only dilation=1 is supported, got {dilation!r}")
        if return_indices or ceil_mode:
            raise ValueError(f"{name}: return_indices and ceil_mode are not supported")
        if not count_include_pad or divisor_override is not None:
            raise ValueError(
                f"{name}: only count_include_pad=True and divisor_override=None are supported"
            )
        base.__init__(self, kernel_size, stride, padding)
        for p, k in zip(self._padding, self._kernel_size):  # PyTorch's limit; MLX has none
            if p > k // 2:
                raise ValueError(
                    f"{name}: padding {self._padding} must be at most half the kernel size "
                    f"{self._kernel_size}"
                )

    doc = (
        f"{nd}-d {kind} pooling over channels-first inputs ``(N, C, {_SPATIAL[nd]})``.\n\n"
        "    Args:\n"
        "        kernel_size: the window size.\n"
        "        stride: the step between windows (default: ``kernel_size``).\n"
        "        padding: added on both sides of each spatial axis (at most half the window).\n"
    )
    return type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__call__": _channels_first_call(base.__call__, nd, name),
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
        },
    )


MaxPool1d = _pool(cnn.MaxPool1d, 1, "max")
MaxPool2d = _pool(cnn.MaxPool2d, 2, "max")
MaxPool3d = _pool(cnn.MaxPool3d, 3, "max")
AvgPool1d = _pool(cnn.AvgPool1d, 1, "average")
AvgPool2d = _pool(cnn.AvgPool2d, 2, "average")
AvgPool3d = _pool(cnn.AvgPool3d, 3, "average")


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    # PyTorch's windows: start = floor(i * size / out), end = ceil((i + 1) * size / out).
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive_avg(x: array, output_size: tuple, who: str) -> array:
    """Average pooling of ``(N, C, *spatial)`` to ``output_size`` (``None`` keeps a size)."""
    sizes = x.shape[2:]
    for axis, (size, out) in enumerate(zip(sizes, output_size)):
        if out is None or out == size:
            continue
        if out <= 0:
            raise ValueError(f"{who}: output_size {output_size} must be positive")
        ax = 2 + axis
        if size % out == 0:
            # equal windows: one reshape and a mean
            shape = x.shape[:ax] + (out, size // out) + x.shape[ax + 1 :]
            x = mx.mean(mx.reshape(x, shape), axis=ax + 1)
            continue
        index = [slice(None)] * x.ndim
        parts = []
        for start, end in _adaptive_windows(size, out):
            index[ax] = slice(start, end)
            parts.append(mx.mean(x[tuple(index)], axis=ax, keepdims=True))
        x = mx.concatenate(parts, axis=ax)
    return x


class _AdaptiveAvgPool(cnn.Module):
    _nd = 0

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        nd = self._nd
        size = (output_size,) * nd if not isinstance(output_size, Iterable) else output_size
        size = tuple(None if s is None else int(s) for s in size)
        if len(size) != nd:
            raise ValueError(
                f"{type(self).__name__}: output_size must be an int or {nd} ints, "
                f"got {output_size!r}"
            )
        self.output_size = size

    def _extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        single = _check_rank(x, self._nd, who)
        if single:
            x = mx.expand_dims(x, 0)
        y = _adaptive_avg(x, self.output_size, who)
        return mx.squeeze(y, 0) if single else y


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Average pooling of ``(N, C, L)`` inputs to a fixed length (PyTorch's windows).

    Args:
        output_size: the output length.
    """

    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Average pooling of ``(N, C, H, W)`` inputs to a fixed size (PyTorch's windows).

    Args:
        output_size: ``(H_out, W_out)`` or one int for both (``None`` keeps a size).
    """

    _nd = 2


def _flatten_channels(base_call, who: str, ranks: tuple):
    """Run a per-channel layer on ``(N, C, *rest)`` as ``(N * prod(rest), C)`` rows."""

    def __call__(self, x: array) -> array:
        if x.ndim not in ranks:
            raise ValueError(
                f"{who}: expected an input of {' or '.join(map(str, ranks))} dimensions "
                f"(N, C, ...), got shape {x.shape}"
            )
        if x.ndim == 2:
            return base_call(self, x)
        moved = _to_last(x)
        y = base_call(self, mx.reshape(moved, (-1, moved.shape[-1])))
        return _to_first(mx.reshape(y, moved.shape))

    return __call__


class _BatchNormNd(cnn.BatchNorm):
    _ranks: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if momentum is None:
            raise ValueError(
                f"{type(self).__name__}: momentum=None (a cumulative average) is not supported"
            )
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        if x.ndim not in self._ranks:
            raise ValueError(
                f"{who}: expected an input of {' or '.join(map(str, self._ranks))} dimensions "
                f"(N, C, ...), got shape {x.shape}"
            )
        moved = _to_last(x) if x.ndim > 2 else x
        rows = mx.reshape(moved, (-1, moved.shape[-1]))
        # the running variance is the unbiased one in both libraries (nn.BatchNorm does it)
        y = mx.reshape(cnn.BatchNorm.__call__(self, rows), moved.shape)
        return _to_first(y) if x.ndim > 2 else y


class BatchNorm1d(_BatchNormNd):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs (PyTorch's running statistics).

    Args:
        num_features: ``C``.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running statistics for evaluation.
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNormNd):
    """Batch normalisation of ``(N, C, H, W)`` inputs (PyTorch's running statistics).

    Args:
        num_features: ``C``.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running statistics for evaluation.
    """

    _ranks = (4,)


class BatchNorm3d(_BatchNormNd):
    """Batch normalisation of ``(N, C, D, H, W)`` inputs (PyTorch's running statistics).

    Args:
        num_features: ``C``.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running statistics for evaluation.
    """

    _ranks = (5,)


class GroupNorm(cnn.GroupNorm):
    """Group normalisation of ``(N, C, *)`` inputs, consecutive channels per group (PyTorch).

    Args:
        num_groups: the number of groups.
        num_channels: ``C``.
        eps: added to the variance.
        affine: learn a per-channel scale (ones) and shift (zeros).
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_groups, num_channels, eps, affine, pytorch_compatible=True)

    def __call__(self, x: array) -> array:
        if x.ndim < 2:
            raise ValueError(f"GroupNorm: expected an input (N, C, ...), got shape {x.shape}")
        if x.ndim == 2:
            return mx.squeeze(cnn.GroupNorm.__call__(self, mx.expand_dims(x, 1)), 1)
        return _to_first(cnn.GroupNorm.__call__(self, _to_last(x)))


def _instance_norm(nd: int) -> type:
    name = f"InstanceNorm{nd}d"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if track_running_stats:
            raise ValueError(f"{name}: track_running_stats=True is not supported")
        cnn.InstanceNorm.__init__(self, num_features, eps, affine)

    doc = (
        f"Instance normalisation of ``(N, C, {_SPATIAL[nd]})`` inputs (PyTorch's layout).\n\n"
        "    Args:\n"
        "        num_features: ``C``.\n"
        "        eps: added to the variance.\n"
        "        momentum: accepted (no running statistics are kept).\n"
        "        affine: learn a per-channel scale and shift (off by default, as in PyTorch).\n"
    )
    return type(
        name,
        (cnn.InstanceNorm,),
        {
            "__init__": __init__,
            "__call__": _channels_first_call(cnn.InstanceNorm.__call__, nd, name),
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
        },
    )


InstanceNorm1d = _instance_norm(1)
InstanceNorm2d = _instance_norm(2)
InstanceNorm3d = _instance_norm(3)


class LayerNorm(cnn.LayerNorm):
    """Normalise over the trailing ``normalized_shape`` dimensions (PyTorch's ``LayerNorm``).

    For a shape of several dimensions the scale and shift are kept flat, of
    ``prod(normalized_shape)`` entries.

    Args:
        normalized_shape: the trailing shape to normalise over (an int or a sequence).
        eps: added to the variance.
        elementwise_affine: learn a scale (ones) and shift (zeros).
        bias: learn the shift.
    """

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        shape = (
            (int(normalized_shape),)
            if not isinstance(normalized_shape, Iterable)
            else tuple(int(s) for s in normalized_shape)
        )
        super().__init__(math.prod(shape), eps, elementwise_affine, bias)
        object.__setattr__(self, "normalized_shape", shape)

    def __call__(self, x: array) -> array:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: expected an input ending in {self.normalized_shape}, got shape "
                f"{x.shape}"
            )
        if k == 1:
            return cnn.LayerNorm.__call__(self, x)
        flat = mx.reshape(x, x.shape[: x.ndim - k] + (-1,))
        return mx.reshape(cnn.LayerNorm.__call__(self, flat), x.shape)


def _channel_dropout(base: type, name: str, nd: int) -> type:
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        base.__init__(self, p)

    return type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__call__": _channels_first_call(base.__call__, nd, name),
            "__doc__": (
                f"Zero whole channels of ``(N, C, {_SPATIAL[nd]})`` inputs with probability "
                "``p`` in training, scaling the rest by ``1 / (1 - p)``.\n\n    Args:\n"
                "        p: the probability of zeroing a channel.\n"
            ),
            "__module__": __name__,
            "__qualname__": name,
        },
    )


Dropout1d = _channel_dropout(cnn.Dropout2d, "Dropout1d", 1)
Dropout2d = _channel_dropout(cnn.Dropout2d, "Dropout2d", 2)
Dropout3d = _channel_dropout(cnn.Dropout3d, "Dropout3d", 3)


class Upsample(cnn.Upsample):
    """Upsample ``(N, C, *spatial)`` inputs by ``scale_factor`` (PyTorch's layout).

    Args:
        size: not supported (give ``scale_factor``).
        scale_factor: the factor per spatial axis.
        mode: ``"nearest"``, ``"linear"``/``"bilinear"``/``"trilinear"`` or ``"bicubic"``.
        align_corners: align the corner pixels (linear and cubic modes).
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        if size is not None or scale_factor is None:
            raise ValueError("Upsample: give scale_factor (size= is not supported)")
        modes = {"nearest": "nearest", "linear": "linear", "bilinear": "linear"}
        modes.update({"trilinear": "linear", "bicubic": "cubic"})
        if mode not in modes:
            raise ValueError(f"Upsample: mode must be one of {sorted(modes)}, got {mode!r}")
        super().__init__(scale_factor, modes[mode], bool(align_corners))

    def __call__(self, x: array) -> array:
        if x.ndim < 3:
            raise ValueError(f"Upsample: expected an input (N, C, *spatial), got shape {x.shape}")
        return _to_first(cnn.Upsample.__call__(self, _to_last(x)))


def _softmax_module(base: type, name: str) -> type:
    def __init__(self, dim: int | None = None) -> None:
        base.__init__(self, axis=-1 if dim is None else dim)
        object.__setattr__(self, "dim", dim)

    return type(
        name,
        (base,),
        {
            "__init__": __init__,
            "__doc__": (
                f"{base.__doc__.splitlines()[0]}\n\n    Args:\n        dim: the axis "
                "(the last one when omitted).\n"
            ),
            "__module__": __name__,
            "__qualname__": name,
        },
    )


Softmax = _softmax_module(cnn.Softmax, "Softmax")
LogSoftmax = _softmax_module(cnn.LogSoftmax, "LogSoftmax")
Softmin = _softmax_module(cnn.Softmin, "Softmin")


class Flatten(cnn.Module):
    """Merge dimensions ``start_dim`` to ``end_dim`` (from the second one by default).

    Args:
        start_dim: the first dimension to merge.
        end_dim: the last dimension to merge.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def _extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def __call__(self, x: array) -> array:
        return mx.flatten(x, self.start_dim, self.end_dim)


class Unflatten(cnn.Module):
    """Split dimension ``dim`` into ``unflattened_size``.

    Args:
        dim: the dimension to split.
        unflattened_size: its new shape.
    """

    def __init__(self, dim: int, unflattened_size: Iterable[int]) -> None:
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def _extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"

    def __call__(self, x: array) -> array:
        return mx.unflatten(x, self.dim, self.unflattened_size)


class ModuleList(list):
    """A list of modules that a parent ``Module`` registers (PyTorch's ``nn.ModuleList``).

    Modules are dicts of their children here, so a plain list attribute already holds
    sub-modules; this class adds PyTorch's spelling and ``append``/``extend``/``insert``.

    Args:
        modules: the initial modules.
    """

    def __init__(self, modules: Iterable[Any] | None = None) -> None:
        super().__init__(modules or ())

    def __getitem__(self, index):
        out = list.__getitem__(self, index)
        return ModuleList(out) if isinstance(index, slice) else out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ModuleList is not callable: iterate over it and call each module")


class ModuleDict(dict):
    """A dict of named modules that a parent ``Module`` registers (PyTorch's ``nn.ModuleDict``).

    Args:
        modules: the initial name-to-module mapping (or pairs).
    """

    def __init__(self, modules: Mapping[str, Any] | Iterable | None = None) -> None:
        super().__init__(modules or ())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ModuleDict is not callable: index it by name and call the module")
