"""``torch.nn`` layers: chainrule.nn's layers with PyTorch's arguments, layouts and meanings.

Each is a thin subclass of the chainrule.nn layer and of ``torch.nn.Module`` (``_module.py``):
it takes PyTorch's arguments and channels-first inputs (``(N, C, L)``, ``(N, C, H, W)``,
``(N, C, D, H, W)``), moves the channel axis last and runs the shared kernel. Parameters have
PyTorch's shapes (a convolution weight is ``(C_out, C_in // groups, *K)``, a transposed one
``(C_in, C_out // groups, *K)``, LayerNorm's ``normalized_shape``), BatchNorm keeps PyTorch's
buffers (``num_batches_tracked`` too), and ``repr`` prints PyTorch's text, so ``state_dict``
and ``print(model)`` match PyTorch's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array
from chainrule.core.ops.normalization import bias_add

from .._random import normal_array, uniform_array
from . import functional_misc as F_misc
from . import functional_resample as F_resample
from . import init as _init
from ._module import (
    Container,
    Module,
    ModuleDict,
    ModuleList,
    ParameterDict,
    ParameterList,
    Sequential,
)

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Container",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "Flatten",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "Embedding",
    "LayerNorm",
    "Linear",
    "Module",
    "ModuleDict",
    "ModuleList",
    "ParameterDict",
    "ParameterList",
    "Sequential",
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


_CONV_DOC = """{nd}-d {what} over channels-first inputs ``(N, C_in, {spatial})`` (PyTorch).

    The weight has PyTorch's layout, ``{layout}``, and PyTorch's initialisation (weight and
    bias ``U(-s, s)``, ``s = 1/sqrt(fan_in)``), so ``state_dict`` exchanges with PyTorch; the
    call hands the shared kernel MLX's channels-last layout.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: filter size.
        stride: step between windows.
        padding: added on both sides (convolutions also take ``'same'`` and ``'valid'``).
        dilation: spacing between filter taps.
        groups: channel groups.
        bias: learn a bias.
        padding_mode: ``'zeros'``, or ``'reflect'``, ``'replicate'``, ``'circular'``
            (convolutions only, as in PyTorch).
"""

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "K", 2: "KH, KW", 3: "KD, KH, KW"}


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _check_padding(who: str, padding: Any, stride: Any, padding_mode: str, nd: int) -> None:
    """PyTorch's constructor checks of a convolution's ``padding`` and ``padding_mode``."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"Invalid padding string {padding!r}, should be one of {{'same', 'valid'}}"
            )
        if padding == "same" and any(s != 1 for s in _tuple(stride, nd)):
            raise ValueError("padding='same' is not supported for strided convolutions")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {{'zeros', 'reflect', 'replicate', 'circular'}}, but "
            f"got padding_mode='{padding_mode}'"
        )


def _tuple(v: Any, nd: int) -> tuple:
    return tuple(v) if isinstance(v, Iterable) else (v,) * nd


def _mlx_weight(w: array, groups: int, transpose: bool) -> array:
    """PyTorch's conv weight as the shared kernel's ``(C_out, *K, C_in // groups)``."""
    if not transpose:  # (out, in/g, *k)
        return mx.moveaxis(w, 1, -1)
    c_in, out_g, *k = w.shape  # (in, out/g, *k)
    w = mx.reshape(w, (groups, c_in // groups, out_g, *k))
    return mx.reshape(mx.moveaxis(w, 1, -1), (groups * out_g, *k, c_in // groups))


class _TorchConv:
    """What the PyTorch convolutions share (mixed into the chainrule.nn layer)."""

    _nd = 0
    _transpose = False

    def _torch_setup(self, c_in, c_out, kernel_size, groups, bias, padding_mode, extra):
        who = type(self).__name__
        nd = self._nd
        if self._transpose and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {who}')
        if not isinstance(groups, int) or groups < 1:
            raise ValueError("groups must be a positive integer")
        if c_in % groups:
            raise ValueError("in_channels must be divisible by groups")
        if c_out % groups:
            raise ValueError("out_channels must be divisible by groups")
        k = _tuple(kernel_size, nd)
        shape = (c_in, c_out // groups, *k) if self._transpose else (c_out, c_in // groups, *k)
        bound = 1.0 / math.sqrt(shape[1] * math.prod(k))
        object.__setattr__(self, "groups", groups)
        # PyTorch's reset_parameters: kaiming_uniform_(w, a=sqrt(5)), then the bias
        k_bound = _init._default_bound(shape[1] * math.prod(k))
        self.weight = uniform_array(shape, -k_bound, k_bound)
        if bias:
            self.bias = uniform_array((c_out,), -bound, bound)
        args = {"in": c_in, "out": c_out, "kernel_size": k, "groups": groups, "bias": bias}
        args.update({key: v if isinstance(v, str) else _tuple(v, nd) for key, v in extra.items()})
        object.__setattr__(self, "_torch_args", args)
        object.__setattr__(self, "padding_mode", padding_mode)
        # PyTorch's attributes (the shared layer keeps 1-d sizes as ints; PyTorch as tuples)
        for key, value in (
            ("in_channels", c_in),
            ("out_channels", c_out),
            ("transposed", self._transpose),
        ):
            object.__setattr__(self, key, value)
        for key in ("kernel_size", "stride", "dilation", "output_padding", "padding"):
            value = k if key == "kernel_size" else extra.get(key, 0)
            if not isinstance(value, str):
                self._set_size(key, _tuple(value, nd))
        padding = extra["padding"]
        if isinstance(padding, str):  # PyTorch keeps the string
            dict.pop(self, "padding", None)
            object.__setattr__(self, "padding", padding)
        # F.pad's amounts for the non-zero padding modes, last axis first (PyTorch's name)
        if padding == "same":
            halves = []
            for d, kk in zip(_tuple(extra["dilation"], nd), k):
                total = d * (kk - 1)
                halves.append((total // 2, total - total // 2))
        else:
            halves = [(p, p) for p in _tuple(0 if padding == "valid" else padding, nd)]
        twice = tuple(v for pair in reversed(halves) for v in pair)
        object.__setattr__(self, "_reversed_padding_repeated_twice", twice)

    def _set_size(self, key: str, value: tuple) -> None:
        if key in self.__dict__:
            del self.__dict__[key]
        dict.__setitem__(self, key, value)

    def extra_repr(self) -> str:
        """PyTorch's text: the non-default arguments."""
        a, nd = self._torch_args, self._nd
        text = f"{a['in']}, {a['out']}, kernel_size={a['kernel_size']}, stride={a['stride']}"
        for key, default in (("padding", 0), ("dilation", 1), ("output_padding", 0)):
            if key in a and (isinstance(a[key], str) or a[key] != (default,) * nd):
                text += f", {key}={a[key]}"
        if a["groups"] != 1:
            text += f", groups={a['groups']}"
        text += "" if a["bias"] else ", bias=False"
        return text + (
            "" if self.padding_mode == "zeros" else f", padding_mode={self.padding_mode}"
        )

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        single = _check_rank(x, self._nd, who)
        if not self._transpose:
            padding = self.padding
            if self.padding_mode != "zeros":
                x = F_resample.pad(x, self._reversed_padding_repeated_twice, self.padding_mode)
                padding = 0
            args = (self.stride, padding, self.dilation, self.groups, who)
            return F_misc._conv(self._nd, x, self["weight"], self.get("bias"), *args)
        if single:
            x = mx.expand_dims(x, 0)
        w = _mlx_weight(self["weight"], self.groups, self._transpose)
        args = (self.stride, self.padding, self.dilation)
        if self._transpose:
            args += (self.output_padding,)
        y = type(self)._fn(_to_last(x), w, *args, self.groups)
        if "bias" in self:
            y = bias_add(y, self["bias"])
        y = _to_first(y)
        return mx.squeeze(y, 0) if single else y


def _conv(base: type, nd: int) -> type:
    name = base.__name__

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
        _check_padding(name, padding, stride, padding_mode, nd)
        base.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=0 if isinstance(padding, str) else padding,
            dilation=dilation,
            bias=bias,
        )
        extra = {"stride": stride, "padding": padding, "dilation": dilation}
        self._torch_setup(in_channels, out_channels, kernel_size, groups, bias, padding_mode, extra)

    return _torch_class(
        name,
        (_TorchConv, base),
        __init__,
        _CONV_DOC.format(
            nd=nd,
            what="convolution",
            spatial=_SPATIAL[nd],
            layout=f"(C_out, C_in // groups, {_KERNEL[nd]})",
        ),
        _nd=nd,
    )


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
        base.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            output_padding=output_padding,
            bias=bias,
        )
        extra = {
            "stride": stride,
            "padding": padding,
            "output_padding": output_padding,
            "dilation": dilation,
        }
        self._torch_setup(in_channels, out_channels, kernel_size, groups, bias, padding_mode, extra)

    return _torch_class(
        name,
        (_TorchConv, base),
        __init__,
        _CONV_DOC.format(
            nd=nd,
            what="transposed convolution",
            spatial=_SPATIAL[nd],
            layout=f"(C_in, C_out // groups, {_KERNEL[nd]})",
        ),
        _nd=nd,
        _transpose=True,
    )


def _torch_class(name: str, bases: tuple, init: Any, doc: str, **attrs: Any) -> type:
    """A class of this module: ``bases`` + PyTorch's ``Module`` meanings."""
    init.__doc__ = f"Build a {name} with PyTorch's arguments."
    body = {"__init__": init, "__doc__": doc, "__module__": __name__, "__qualname__": name}
    body.update(attrs)
    return type(name, (*bases, Module), body)


Conv1d = _conv(cnn.Conv1d, 1)
Conv2d = _conv(cnn.Conv2d, 2)
Conv3d = _conv(cnn.Conv3d, 3)
ConvTranspose1d = _conv_transpose(cnn.ConvTranspose1d, 1)
ConvTranspose2d = _conv_transpose(cnn.ConvTranspose2d, 2)
ConvTranspose3d = _conv_transpose(cnn.ConvTranspose3d, 3)


def _args_repr(self) -> str:
    """PyTorch's text for layers that print their arguments as ``name=value``."""
    return ", ".join(f"{k}={v}" for k, v in self._torch_args.items())


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


class _AdaptiveAvgPool(Module):
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
        object.__setattr__(self, "output_size", output_size)  # as given, as PyTorch keeps it
        object.__setattr__(self, "_size", size)

    def _extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        single = _check_rank(x, self._nd, who)
        if single:
            x = mx.expand_dims(x, 0)
        y = _adaptive_avg(x, self._size, who)
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


class _BatchNormNd(cnn.BatchNorm, Module):
    _ranks: tuple = ()
    # PyTorch fills a missing num_batches_tracked (older checkpoints) instead of reporting it
    _optional_state = ("num_batches_tracked",)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum}"
            )
        super().__init__(num_features, eps, 0.1, affine, track_running_stats)
        object.__setattr__(self, "momentum", momentum)  # None: a cumulative average
        object.__setattr__(self, "affine", affine)
        if affine and not bias:
            dict.pop(self, "bias")
        if track_running_stats:
            self.register_buffer("num_batches_tracked", mx.array(0, dtype=mx.int64))

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={'bias' in self}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _update_running(self, mean: array, var: array) -> None:
        # PyTorch's rule: count the batch, then weight it by momentum (or 1 / count when
        # momentum is None); the handles are rebound, never mutated
        count = self["num_batches_tracked"]
        count._set_value(count._data + 1)
        m = 1.0 / float(count._data) if self.momentum is None else self.momentum
        for key, batch in (("running_mean", mean), ("running_var", var)):
            run = self[key]
            old = run._data
            new = (1 - m) * old + m * batch._data.astype(old.dtype, copy=False)
            run._set_value(new.astype(old.dtype, copy=False))

    def __call__(self, x: array) -> array:
        who = type(self).__name__
        if x.ndim not in self._ranks:
            raise ValueError(
                f"{who}: expected an input of {' or '.join(map(str, self._ranks))} dimensions "
                f"(N, C, ...), got shape {x.shape}"
            )
        moved = _to_last(x) if x.ndim > 2 else x
        rows = mx.reshape(moved, (-1, moved.shape[-1]))
        if "weight" in self and "bias" not in self:  # bias=False: the shared layer's own
            # normalisation (no affine), then PyTorch's scale
            weight = dict.pop(self, "weight")
            try:
                y = cnn.BatchNorm.__call__(self, rows) * weight
            finally:
                dict.__setitem__(self, "weight", weight)
        else:
            # the running variance is the unbiased one in both libraries (nn.BatchNorm does it)
            y = cnn.BatchNorm.__call__(self, rows)
        y = mx.reshape(y, moved.shape)
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


class GroupNorm(cnn.GroupNorm, Module):
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
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_groups, num_channels, eps, affine, pytorch_compatible=True)
        object.__setattr__(self, "affine", affine)
        if affine:  # PyTorch's order: weight, then bias (MLX registers bias first)
            b = dict.pop(self, "bias")
            self.weight = dict.pop(self, "weight")
            if bias:
                self.bias = b

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"{self.num_groups}, {self.dims}, eps={self.eps}, affine={self.affine}, "
            f"bias={'bias' in self}"
        )

    def __call__(self, x: array) -> array:
        if x.ndim < 2:
            raise ValueError(f"GroupNorm: expected an input (N, C, ...), got shape {x.shape}")
        weight = None
        if "weight" in self and "bias" not in self:  # bias=False: normalise, then scale
            weight = dict.pop(self, "weight")
        try:
            if x.ndim == 2:
                y = mx.squeeze(cnn.GroupNorm.__call__(self, mx.expand_dims(x, 1)), 1)
            else:
                y = cnn.GroupNorm.__call__(self, _to_last(x))
        finally:
            if weight is not None:
                dict.__setitem__(self, "weight", weight)
        if weight is not None:
            y = y * weight
        return _to_first(y) if x.ndim > 2 else y


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
        *,
        bias: bool = True,
    ) -> None:
        cnn.InstanceNorm.__init__(self, num_features, eps, affine)
        if affine and not bias:
            dict.pop(self, "bias")
        for key, value in (
            ("num_features", num_features),
            ("momentum", momentum),
            ("affine", affine),
            ("track_running_stats", track_running_stats),
        ):
            object.__setattr__(self, key, value)
        if track_running_stats:  # PyTorch's buffers (num_batches_tracked stays 0)
            self.register_buffer("running_mean", mx.zeros((num_features,)))
            self.register_buffer("running_var", mx.ones((num_features,)))
            self.register_buffer("num_batches_tracked", mx.array(0, dtype=mx.int64))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={'bias' in self}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def __call__(self, x: array) -> array:
        if x.ndim not in (nd + 1, nd + 2):
            raise ValueError(f"expected {nd + 1}D or {nd + 2}D input (got {x.ndim}D input)")
        feature_dim = x.ndim - nd - 1
        if x.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={feature_dim} to match num_features "
                    f"({self.num_features}), but got: {x.shape[feature_dim]}."
                )
            warnings.warn(
                f"input's size at dim={feature_dim} does not match num_features. You can "
                "silence this warning by not passing in num_features, which is not used "
                "because affine=False",
                stacklevel=2,
            )
        single = x.ndim == nd + 1
        if single:
            x = mx.expand_dims(x, 0)
        track = self.track_running_stats
        y = F_misc.instance_norm(
            x,
            self.get("running_mean") if track else None,
            self.get("running_var") if track else None,
            self.get("weight"),
            self.get("bias"),
            self.training or not track,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )
        return mx.squeeze(y, 0) if single else y

    doc = (
        f"Instance normalisation of ``(N, C, {_SPATIAL[nd]})`` inputs (PyTorch's layout).\n\n"
        "    Args:\n"
        "        num_features: ``C``.\n"
        "        eps: added to the variance.\n"
        "        momentum: the running statistics' update rate.\n"
        "        affine: learn a per-channel scale and shift (off by default, as in PyTorch).\n"
        "        track_running_stats: keep running statistics (used in evaluation).\n"
        "        bias: learn the shift (with ``affine``).\n"
    )
    return _torch_class(
        name,
        (cnn.InstanceNorm,),
        __init__,
        doc,
        __call__=__call__,
        extra_repr=extra_repr,
        _optional_state=("num_batches_tracked",),
    )


InstanceNorm1d = _instance_norm(1)
InstanceNorm2d = _instance_norm(2)
InstanceNorm3d = _instance_norm(3)


class LayerNorm(cnn.LayerNorm, Module):
    """Normalise over the trailing ``normalized_shape`` dimensions (PyTorch's ``LayerNorm``).

    The scale and shift have the shape ``normalized_shape``, as in PyTorch.

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
        for key, make in (("weight", mx.ones), ("bias", mx.zeros)):
            if key in self:  # fresh leaves of PyTorch's shape (a reshape would not be one)
                setattr(self, key, make(shape, dtype=self[key].dtype))

    def extra_repr(self) -> str:
        """PyTorch's text."""
        affine = "weight" in self
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={affine}, "
            f"bias={'bias' in self}"
        )

    def __call__(self, x: array) -> array:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm: expected an input ending in {self.normalized_shape}, got shape "
                f"{x.shape}"
            )
        flat = mx.reshape(x, x.shape[: x.ndim - k] + (-1,)) if k > 1 else x
        w, b = self.get("weight"), self.get("bias")
        if k > 1:
            w = None if w is None else mx.reshape(w, (-1,))
            b = None if b is None else mx.reshape(b, (-1,))
        y = mx.fast.layer_norm(flat, w, b, self.eps)
        return mx.reshape(y, x.shape) if k > 1 else y


def _channel_dropout(base: type, name: str, nd: int) -> type:
    dropout = getattr(F_misc, f"dropout{nd}d")  # PyTorch's rules for each input rank

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        base.__init__(self, p)
        object.__setattr__(self, "_torch_args", {"p": p, "inplace": inplace})

    def __call__(self, x: array) -> array:
        return dropout(x, self._torch_args["p"], self.training, self._torch_args["inplace"])

    return _torch_class(
        name,
        (base,),
        __init__,
        (
            f"Zero whole channels of ``(N, C, {_SPATIAL[nd]})`` inputs with probability "
            "``p`` in training, scaling the rest by ``1 / (1 - p)``.\n\n    Args:\n"
            "        p: the probability of zeroing a channel.\n"
        ),
        __call__=__call__,
        extra_repr=_args_repr,
    )


Dropout1d = _channel_dropout(cnn.Dropout2d, "Dropout1d", 1)
Dropout2d = _channel_dropout(cnn.Dropout2d, "Dropout2d", 2)
Dropout3d = _channel_dropout(cnn.Dropout3d, "Dropout3d", 3)


class Upsample(cnn.Upsample, Module):
    """Resize ``(N, C, *spatial)`` inputs to ``size`` or by ``scale_factor`` (PyTorch's
    ``nn.Upsample``, running ``F.interpolate``).

    Args:
        size: the output's spatial size (an int or one per spatial axis).
        scale_factor: or the factor per spatial axis.
        mode: ``"nearest"``, ``"nearest-exact"``, ``"linear"``, ``"bilinear"``,
            ``"bicubic"``, ``"trilinear"`` or ``"area"``.
        align_corners: align the corner pixels (linear and cubic modes).
        recompute_scale_factor: compute the scale from the sizes rather than use
            ``scale_factor``.
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        cnn.Module.__init__(self)
        if isinstance(scale_factor, tuple):
            scale_factor = tuple(float(f) for f in scale_factor)
        else:
            scale_factor = float(scale_factor) if scale_factor else None
        for key, value in (
            ("name", type(self).__name__),
            ("size", size),
            ("scale_factor", scale_factor),
            ("mode", mode),
            ("align_corners", align_corners),
            ("recompute_scale_factor", recompute_scale_factor),
        ):
            object.__setattr__(self, key, value)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"

    def __call__(self, x: array) -> array:
        return F_resample.interpolate(
            x,
            self.size,
            self.scale_factor,
            self.mode,
            self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )


def _softmax_module(base: type, name: str) -> type:
    def __init__(self, dim: int | None = None) -> None:
        base.__init__(self, axis=-1 if dim is None else dim)
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "_torch_args", {"dim": dim})

    return _torch_class(
        name,
        (base,),
        __init__,
        (
            f"{base.__doc__.splitlines()[0]}\n\n    Args:\n        dim: the axis "
            "(the last one when omitted).\n"
        ),
        extra_repr=_args_repr,
    )


Softmax = _softmax_module(cnn.Softmax, "Softmax")
LogSoftmax = _softmax_module(cnn.LogSoftmax, "LogSoftmax")
Softmin = _softmax_module(cnn.Softmin, "Softmin")


class Flatten(Module):
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


class Unflatten(Module):
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


def _linear_params(out_features: int, in_features: int, dtype: Any, bias: bool = True) -> tuple:
    """PyTorch's ``Linear.reset_parameters``, draw for draw: ``kaiming_uniform_(w,
    a=sqrt(5))``, then (with a bias) the bias from ``U(-1/sqrt(in), 1/sqrt(in))``."""
    k = _init._default_bound(in_features)
    w = uniform_array((out_features, in_features), -k, k, dtype)
    if not bias:
        return w, None
    bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
    return w, uniform_array((out_features,), -bound, bound, dtype)


class Linear(cnn.Linear, Module):
    """``y = x W^T + b`` with PyTorch's arguments; weight ``(out_features, in_features)``.

    Args:
        in_features: input size.
        out_features: output size.
        bias: learn a bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super(cnn.Linear, self).__init__()  # (the parameters: PyTorch's draws, below)
        self.weight, b = _linear_params(out_features, in_features, dtype, bias)
        if bias:
            self.bias = b

    def reset_parameters(self) -> None:
        """Draw the parameters again, as PyTorch's ``reset_parameters``."""
        w, b = _linear_params(*self["weight"].shape, self["weight"].dtype, "bias" in self)
        self["weight"]._set_value(w._data)
        if b is not None:
            self["bias"]._set_value(b._data)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        out_f, in_f = self["weight"].shape
        return f"in_features={in_f}, out_features={out_f}, bias={'bias' in self}"


class Embedding(cnn.Embedding, Module):
    """A lookup table of ``num_embeddings`` vectors drawn from ``N(0, 1)`` (PyTorch).

    Args:
        num_embeddings: the table's rows.
        embedding_dim: the vectors' size.
        padding_idx: not supported (its gradient masking is not implemented).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Any = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if padding_idx is not None or max_norm is not None or scale_grad_by_freq or sparse:
            raise ValueError(
                "Embedding: padding_idx, max_norm, scale_grad_by_freq and sparse are not "
                f"supported, got padding_idx={padding_idx!r}, max_norm={max_norm!r}"
            )
        super().__init__(num_embeddings, embedding_dim)
        self.weight = (
            normal_array((num_embeddings, embedding_dim))  # PyTorch's init.normal_
            if _weight is None
            else cnn.Parameter(_weight)
        )
        if _freeze:
            self.freeze(keys="weight")

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return "{}, {}".format(*self["weight"].shape)


class Dropout(cnn.Dropout, Module):
    """Zero entries with probability ``p`` in training, scaling the rest by ``1 / (1 - p)``.

    Args:
        p: the probability of zeroing an entry.
        inplace: accepted for PyTorch code (arrays are values).
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__(p)
        object.__setattr__(self, "_torch_args", {"p": p, "inplace": inplace})

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return _args_repr(self)
