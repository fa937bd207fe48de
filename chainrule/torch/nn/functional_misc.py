"""Convolutions, normalisation, embeddings, dropout and attention of ``torch.nn.functional``.

Convolutions run the shared kernels of ``chainrule/core/conv.py`` (channels-last, MLX's weight
layout) on PyTorch's layouts: the input's channel axis and the weight's
``(C_out, C_in // groups, *k)`` (transposed: ``(C_in, C_out // groups, *k)``) are moved there
and back, so the gradients flow to PyTorch-shaped weights.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import from_value
from chainrule.core.ops.normalization import batch_norm_train, bias_add, fusable

from .._random import _stream
from .functional_pool import InputError, const, ntuple

__all__ = [
    "alpha_dropout",
    "batch_norm",
    "bilinear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_tbc",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "embedding",
    "embedding_bag",
    "feature_alpha_dropout",
    "group_norm",
    "grouped_mm",
    "instance_norm",
    "layer_norm",
    "linear",
    "local_response_norm",
    "normalize",
    "one_hot",
    "rms_norm",
    "scaled_dot_product_attention",
]


# -- linear and convolutions -------------------------------------------------------------------


def linear(input: array, weight: array, bias: array | None = None) -> array:
    """``input @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    Args:
        input: ``(*, in_features)``.
        weight: ``(out_features, in_features)`` (or ``(in_features,)``).
        bias: ``(out_features,)`` or ``None``.

    Returns:
        ``(*, out_features)``.
    """
    if weight.ndim not in (1, 2) or input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise InputError(
            f"linear: input of shape {tuple(input.shape)} does not match a weight of shape "
            f"{tuple(weight.shape)} (out_features, in_features)"
        )
    if weight.ndim == 1:
        y = mx.matmul(input, weight)
        return y if bias is None else y + bias
    if bias is not None and input.ndim >= 1 and getattr(bias, "ndim", 0) <= 1:
        return mx.addmm(bias, input, weight.T)  # one product with the bias (as nn.Linear)
    y = input @ weight.T
    return y if bias is None else y + bias


def bilinear(input1: array, input2: array, weight: array, bias: array | None = None) -> array:
    """``y_k = x1 @ weight[k] @ x2 + bias_k``.

    Args:
        input1: ``(*, in1)``.
        input2: ``(*, in2)``.
        weight: ``(out, in1, in2)``.
        bias: ``(out,)`` or ``None``.

    Returns:
        ``(*, out)``.
    """
    if (
        weight.ndim != 3
        or input1.shape[-1] != weight.shape[1]
        or input2.shape[-1] != weight.shape[2]
        or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1])
    ):
        raise InputError(
            f"bilinear: inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do not "
            f"match a weight of shape {tuple(weight.shape)} (out, in1, in2)"
        )
    y = mx.einsum("...i,kij,...j->...k", input1, weight, input2)
    return y if bias is None else y + bias


def _same_padding(x: array, nd: int, weight: array, dilation: tuple, who: str) -> array:
    width = [(0, 0), (0, 0)]
    for k, d in zip(weight.shape[2:], dilation):
        total = d * (k - 1)
        width.append((total // 2, total - total // 2))
    return mx.pad(x, width)


def _conv(nd: int, input, weight, bias, stride, padding, dilation, groups, who):
    unbatched = input.ndim == nd + 1
    x = mx.expand_dims(input, 0) if unbatched else input
    if x.ndim != nd + 2 or weight.ndim != nd + 2:
        raise InputError(
            f"{who}: expected a channels-first input (N, C_in, *spatial) of {nd + 2} dimensions "
            f"and a weight (C_out, C_in // groups, *kernel) of {nd + 2} dimensions, got input "
            f"{tuple(input.shape)} and weight {tuple(weight.shape)}"
        )
    if x.shape[1] != weight.shape[1] * groups:
        raise InputError(
            f"{who}: input of shape {tuple(input.shape)} has {x.shape[1]} channels, but the "
            f"weight of shape {tuple(weight.shape)} with groups={groups} expects "
            f"{weight.shape[1] * groups}"
        )
    d = ntuple(dilation, nd, "dilation", who)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if any(s != 1 for s in ntuple(stride, nd, "stride", who)):
                raise InputError(f"{who}: padding='same' is not supported for strided convolutions")
            x = _same_padding(x, nd, weight, d, who)
            padding = 0
        else:
            raise InputError(
                f"{who}: padding must be a number, a tuple, 'valid' or 'same', got {padding!r}"
            )
    fn = (mx.conv1d, mx.conv2d, mx.conv3d)[nd - 1]
    try:
        y = fn(mx.moveaxis(x, 1, -1), mx.moveaxis(weight, 1, -1), stride, padding, d, groups)
    except InputError:
        raise
    except ValueError as err:  # the shared kernel's checks: PyTorch raises RuntimeError
        raise InputError(str(err)) from None
    if bias is not None:
        y = bias_add(y, bias) if isinstance(bias, array) else y + bias
    y = mx.moveaxis(y, -1, 1)
    return y[0] if unbatched else y


def _conv_doc(nd: int, fn):
    fn.__doc__ = (
        f"{nd}-d convolution of a channels-first input with a weight "
        "``(C_out, C_in // groups, *kernel)``.\n\n"
        "    Args:\n        input: ``(N, C_in, *spatial)`` or ``(C_in, *spatial)``.\n"
        "        weight: the filters, PyTorch's layout.\n        bias: ``(C_out,)`` or ``None``.\n"
        "        stride: step between windows.\n"
        "        padding: zeros on both sides, ``'valid'`` or ``'same'``.\n"
        "        dilation: spacing between taps.\n        groups: channel groups.\n\n"
        "    Returns:\n        ``(N, C_out, *spatial_out)``."
    )
    return fn


def conv1d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> array:
    """1-d convolution of ``(N, C_in, L)`` with a weight ``(C_out, C_in // groups, K)``."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, "conv1d")


def conv2d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> array:
    """2-d convolution of ``(N, C_in, H, W)`` with a weight ``(C_out, C_in // groups, KH, KW)``."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, "conv2d")


def conv3d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> array:
    """3-d convolution of ``(N, C_in, D, H, W)`` with a weight ``(C_out, C_in // groups, *k)``."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, "conv3d")


for _f, _n in ((conv1d, 1), (conv2d, 2), (conv3d, 3)):
    _conv_doc(_n, _f)


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    who = f"conv_transpose{nd}d"
    unbatched = input.ndim == nd + 1
    x = mx.expand_dims(input, 0) if unbatched else input
    if x.ndim != nd + 2 or weight.ndim != nd + 2 or x.shape[1] != weight.shape[0]:
        raise InputError(
            f"{who}: expected a channels-first input (N, C_in, *spatial) and a weight "
            f"(C_in, C_out // groups, *kernel) of {nd + 2} dimensions with matching C_in, got "
            f"input {tuple(input.shape)} and weight {tuple(weight.shape)}"
        )
    if weight.shape[0] % groups:
        raise InputError(
            f"{who}: weight of shape {tuple(weight.shape)} has {weight.shape[0]} input "
            f"channels, not divisible by groups={groups}"
        )
    cin_g = weight.shape[0] // groups
    cout_g = weight.shape[1]
    k = tuple(weight.shape[2:])
    w = mx.reshape(weight, (groups, cin_g, cout_g) + k)
    w = mx.transpose(w, (0, 2) + tuple(range(3, 3 + nd)) + (1,))
    w = mx.reshape(w, (groups * cout_g,) + k + (cin_g,))
    fn = (mx.conv_transpose1d, mx.conv_transpose2d, mx.conv_transpose3d)[nd - 1]
    try:
        y = fn(mx.moveaxis(x, 1, -1), w, stride, padding, dilation, output_padding, groups)
    except InputError:
        raise
    except ValueError as err:  # the shared kernel's checks: PyTorch raises RuntimeError
        raise InputError(str(err)) from None
    if bias is not None:
        y = bias_add(y, bias) if isinstance(bias, array) else y + bias
    y = mx.moveaxis(y, -1, 1)
    return y[0] if unbatched else y


def conv_transpose1d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> array:
    """1-d transposed convolution with a weight ``(C_in, C_out // groups, K)``.

    Args:
        input: ``(N, C_in, L)`` or ``(C_in, L)``.
        weight: PyTorch's transposed layout.
        bias: ``(C_out,)`` or ``None``.
        stride: upsampling step.
        padding: removed from both ends of the full output.
        output_padding: added to one end of the output.
        groups: channel groups.
        dilation: spacing between taps.

    Returns:
        ``(N, C_out, L_out)``.
    """
    return _conv_transpose(
        1, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose2d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> array:
    """2-d transposed convolution (see :func:`conv_transpose1d`)."""
    return _conv_transpose(
        2, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_transpose3d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> array:
    """3-d transposed convolution (see :func:`conv_transpose1d`)."""
    return _conv_transpose(
        3, input, weight, bias, stride, padding, output_padding, groups, dilation
    )


def conv_tbc(input: array, weight: array, bias: array, pad: int = 0) -> array:
    """1-d convolution of a time-batch-channel input ``(T, N, C_in)`` with ``(K, C_in, C_out)``.

    Args:
        input: ``(T, N, C_in)``.
        weight: ``(K, C_in, C_out)``.
        bias: ``(C_out,)``.
        pad: zeros on both ends of the time axis.

    Returns:
        ``(T_out, N, C_out)``.
    """
    if input.ndim != 3 or weight.ndim != 3 or input.shape[2] != weight.shape[1]:
        raise InputError(
            f"conv_tbc: expected input (T, N, C_in) and weight (K, C_in, C_out), got "
            f"{tuple(input.shape)} and {tuple(weight.shape)}"
        )
    x = mx.transpose(input, (1, 2, 0))
    w = mx.transpose(weight, (2, 1, 0))
    return mx.transpose(conv1d(x, w, bias, 1, pad), (2, 0, 1))


def grouped_mm(
    mat_a: array,
    mat_b: array,
    *,
    offs: array | None = None,
    bias: array | None = None,
    out_dtype: Any = None,
) -> array:
    """Matrix products of groups (Mixture-of-Experts layers), PyTorch's four layouts.

    ``offs`` holds the (exclusive) end of each group along the jagged dimension of a 2-D
    operand; elements past ``offs[-1]`` are ignored (their output rows or columns are zero).

    Args:
        mat_a: ``(M, K)`` (rows cut by ``offs``, or columns when ``mat_b`` is 2-D too) or
            ``(G, M, K)``.
        mat_b: ``(G, K, N)`` or ``(K, N)`` (rows cut by ``offs`` with a 2-D ``mat_a``, columns
            with a 3-D one).
        offs: group ends (needed when an operand is 2-D).
        bias: added to each group's product.
        out_dtype: the result's dtype (default: the inputs').

    Returns:
        ``(M, N)`` for 2-D x 3-D, ``(G, M, N)`` for 3-D x 3-D and 2-D x 2-D, ``(M, N)`` for
        3-D x 2-D (columns cut by ``offs``).
    """
    a, b = mat_a, mat_b
    if a.dtype not in (mx.float32, mx.bfloat16, mx.float16):
        raise RuntimeError(
            f"grouped_mm: Expected mat_a to be Float32, BFloat16 or Float16 matrix, got {a.dtype}"
        )
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ValueError(
            f"grouped_mm: expected 2D or 3D operands, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if (a.ndim == 2 or b.ndim == 2) and offs is None:
        raise ValueError(
            f"grouped_mm: offs is required when an operand is 2D (got {tuple(a.shape)} and "
            f"{tuple(b.shape)})"
        )
    ends = [] if offs is None else [int(v) for v in np.asarray(offs).reshape(-1)]
    starts = [0] + ends[:-1]
    if a.ndim == 3 and b.ndim == 3:
        y = mx.matmul(a, b)
        if bias is not None:
            y = y + mx.expand_dims(bias, -2)
    elif a.ndim == 2 and b.ndim == 3:
        parts = [mx.matmul(a[s:e], b[g]) for g, (s, e) in enumerate(zip(starts, ends))]
        if bias is not None:
            parts = [p + bias[g] for g, p in enumerate(parts)]
        rest = a.shape[0] - (ends[-1] if ends else 0)
        if rest:
            parts.append(mx.zeros((rest, b.shape[-1]), dtype=parts[0].dtype))
        y = mx.concatenate(parts, axis=0)
    elif a.ndim == 2 and b.ndim == 2:
        y = mx.stack([mx.matmul(a[:, s:e], b[s:e]) for s, e in zip(starts, ends)])
        if bias is not None:
            y = y + mx.expand_dims(bias, -2)
    else:
        parts = [mx.matmul(a[g], b[:, s:e]) for g, (s, e) in enumerate(zip(starts, ends))]
        if bias is not None:
            parts = [p + bias[g] for g, p in enumerate(parts)]
        rest = b.shape[1] - (ends[-1] if ends else 0)
        if rest:
            parts.append(mx.zeros((a.shape[1], rest), dtype=parts[0].dtype))
        y = mx.concatenate(parts, axis=1)
    return y if out_dtype is None else y.astype(out_dtype)


# -- normalisation -----------------------------------------------------------------------------


def _channel_shape(x: array) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _update_running_stats(running_mean, running_var, mean, var, count, momentum) -> None:
    """PyTorch's running-statistics update from the batch's backend ``mean`` and biased
    ``var`` (the unbiased variance enters), rebinding the buffers."""
    if running_mean is not None:
        new = (1 - momentum) * running_mean + momentum * from_value(mean)
        running_mean._set_value(mx.stop_gradient(new).astype(running_mean.dtype)._data)
    if running_var is not None:
        unbiased = from_value(var) * (count / (count - 1))
        new = (1 - momentum) * running_var + momentum * unbiased
        running_var._set_value(mx.stop_gradient(new).astype(running_var.dtype)._data)


def batch_norm(
    input: array,
    running_mean: array | None,
    running_var: array | None,
    weight: array | None = None,
    bias: array | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> array:
    """Normalise each channel (dimension 1) by batch statistics or running estimates.

    In training the running estimates are updated in place (rebound) with ``momentum`` and the
    unbiased batch variance, as PyTorch does.

    Args:
        input: ``(N, C, *)``.
        running_mean: ``(C,)`` or ``None``.
        running_var: ``(C,)`` or ``None``.
        weight: the scale ``(C,)`` or ``None``.
        bias: the shift ``(C,)`` or ``None``.
        training: use batch statistics.
        momentum: the running estimates' update rate.
        eps: added to the variance.

    Returns:
        The normalised array.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least a 2D input, got {tuple(input.shape)}")
    c = input.shape[1]
    shape = _channel_shape(input)
    axes = (0,) + tuple(range(2, input.ndim))
    if training:
        count = input.size // c
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input "
                f"size {tuple(input.shape)}"
            )
        moved = mx.moveaxis(input, 1, -1) if input.ndim > 2 else input
        if fusable(moved, weight, bias):
            # one primitive on the channels-last view (chainrule/core/ops/normalization.py)
            y, m, v = batch_norm_train(moved, weight, bias, eps)
            _update_running_stats(running_mean, running_var, m, v, count, momentum)
            return mx.moveaxis(y, -1, 1) if input.ndim > 2 else y
        mean = mx.mean(input, axis=axes, keepdims=True)
        var = mx.var(input, axis=axes, keepdims=True)
        if running_mean is not None:
            m = mx.reshape(mx.stop_gradient(mean), (c,))
            new = (1 - momentum) * running_mean + momentum * m
            running_mean._set_value(mx.stop_gradient(new).astype(running_mean.dtype)._data)
        if running_var is not None:
            unbiased = mx.reshape(mx.stop_gradient(var), (c,)) * (count / (count - 1))
            new = (1 - momentum) * running_var + momentum * unbiased
            running_var._set_value(mx.stop_gradient(new).astype(running_var.dtype)._data)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed in evaluation")
        # evaluation: per-channel scale and shift, then two full-size operations
        scale = mx.rsqrt(running_var + eps)
        if weight is not None:
            scale = scale * weight
        shift = -running_mean * scale
        if bias is not None:
            shift = shift + bias
        return input * mx.reshape(scale, shape) + mx.reshape(shift, shape)
    y = (input - mean) * mx.rsqrt(var + eps)
    if weight is not None:
        y = y * mx.reshape(weight, shape)
    if bias is not None:
        y = y + mx.reshape(bias, shape)
    return y


def instance_norm(
    input: array,
    running_mean: array | None = None,
    running_var: array | None = None,
    weight: array | None = None,
    bias: array | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> array:
    """Normalise each sample's channel over its spatial dimensions.

    Args:
        input: ``(N, C, *spatial)``.
        running_mean: updated with the batch-averaged statistics when given.
        running_var: likewise.
        weight: the scale ``(C,)`` or ``None``.
        bias: the shift ``(C,)`` or ``None``.
        use_input_stats: use the sample's statistics (else the running estimates).
        momentum: the running estimates' update rate.
        eps: added to the variance.

    Returns:
        The normalised array.
    """
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected at least a 3D input, got {tuple(input.shape)}")
    n, c = input.shape[:2]
    shape = _channel_shape(input)
    axes = tuple(range(2, input.ndim))
    if use_input_stats:
        mean = mx.mean(input, axis=axes, keepdims=True)
        var = mx.var(input, axis=axes, keepdims=True)
        count = math.prod(input.shape[2:])
        if running_mean is not None:
            m = mx.mean(mx.reshape(mx.stop_gradient(mean), (n, c)), axis=0)
            running_mean._set_value(((1 - momentum) * running_mean + momentum * m)._data)
        if running_var is not None:
            v = mx.reshape(mx.stop_gradient(var), (n, c)) * (count / max(count - 1, 1))
            v = mx.mean(v, axis=0)
            running_var._set_value(((1 - momentum) * running_var + momentum * v)._data)
    else:
        mean = mx.reshape(running_mean, shape)
        var = mx.reshape(running_var, shape)
    y = (input - mean) * mx.rsqrt(var + eps)
    if weight is not None:
        y = y * mx.reshape(weight, shape)
    if bias is not None:
        y = y + mx.reshape(bias, shape)
    return y


def _trailing(input: array, normalized_shape: Any, who: str) -> tuple:
    shape = (
        (int(normalized_shape),)
        if isinstance(normalized_shape, (int, np.integer))
        else tuple(int(v) for v in normalized_shape)
    )
    if tuple(input.shape[input.ndim - len(shape) :]) != shape or len(shape) > input.ndim:
        raise InputError(
            f"{who}: expected an input whose trailing dimensions are normalized_shape={shape}, "
            f"got shape {tuple(input.shape)}"
        )
    return tuple(range(input.ndim - len(shape), input.ndim))


def layer_norm(
    input: array,
    normalized_shape: Sequence[int],
    weight: array | None = None,
    bias: array | None = None,
    eps: float = 1e-5,
) -> array:
    """Normalise over the trailing ``normalized_shape`` dimensions, then scale and shift.

    Args:
        input: the array.
        normalized_shape: the trailing shape.
        weight: the scale (shape ``normalized_shape``) or ``None``.
        bias: the shift or ``None``.
        eps: added to the variance.

    Returns:
        The normalised array.
    """
    axes = _trailing(input, normalized_shape, "layer_norm")
    dt = input.dtype
    if (
        len(axes) == 1
        and input._data.dtype.kind == "f"
        and (weight is None or (weight.ndim == 1 and weight.dtype == dt))
        and (bias is None or (bias.ndim == 1 and bias.dtype == dt))
    ):  # one primitive (mx.fast.layer_norm), the same steps
        return mx.fast.layer_norm(input, weight, bias, eps)
    mean = mx.mean(input, axis=axes, keepdims=True)
    var = mx.var(input, axis=axes, keepdims=True)
    y = (input - mean) * mx.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(
    input: array,
    normalized_shape: Sequence[int],
    weight: array | None = None,
    eps: float | None = None,
) -> array:
    """Divide by the root mean square over the trailing ``normalized_shape`` dimensions.

    Args:
        input: the array.
        normalized_shape: the trailing shape.
        weight: the scale or ``None``.
        eps: added to the mean square (default: the dtype's machine epsilon).

    Returns:
        The normalised array.
    """
    axes = _trailing(input, normalized_shape, "rms_norm")
    if eps is None:
        eps = float(np.finfo(np.float64 if input.dtype == mx.float64 else np.float32).eps)
    if len(axes) == 1 and weight is not None and input.dtype == weight.dtype:
        return mx.fast.rms_norm(input, weight, eps)  # one primitive over the last axis
    y = input * mx.rsqrt(mx.mean(input * input, axis=axes, keepdims=True) + eps)
    return y if weight is None else y * weight


def group_norm(
    input: array,
    num_groups: int,
    weight: array | None = None,
    bias: array | None = None,
    eps: float = 1e-5,
) -> array:
    """Normalise each sample over groups of channels (and all spatial positions).

    Args:
        input: ``(N, C, *)``.
        num_groups: divides ``C``.
        weight: the scale ``(C,)`` or ``None``.
        bias: the shift ``(C,)`` or ``None``.
        eps: added to the variance.

    Returns:
        The normalised array.
    """
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise InputError(
            f"group_norm: expected an input (N, C, *) with C divisible by num_groups="
            f"{num_groups}, got shape {tuple(input.shape)}"
        )
    n, c = input.shape[:2]
    g = mx.reshape(input, (n, num_groups, -1))
    mean = mx.mean(g, axis=-1, keepdims=True)
    var = mx.var(g, axis=-1, keepdims=True)
    y = mx.reshape((g - mean) * mx.rsqrt(var + eps), input.shape)
    shape = _channel_shape(input)
    if weight is not None:
        y = y * mx.reshape(weight, shape)
    if bias is not None:
        y = y + mx.reshape(bias, shape)
    return y


def local_response_norm(
    input: array, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> array:
    """Normalise each channel by the squares of its ``size`` neighbouring channels.

    Args:
        input: ``(N, C, *)`` with at least 3 dimensions.
        size: the number of neighbouring channels.
        alpha: the scale.
        beta: the exponent.
        k: the additive constant.

    Returns:
        ``input / (k + alpha * mean of squares) ** beta``.
    """
    if input.ndim < 3:
        raise ValueError(
            f"local_response_norm: expected a 3D or higher input, got shape {tuple(input.shape)}"
        )
    if input.size == 0:
        return input
    sq = input * input
    width = [(0, 0)] * input.ndim
    width[1] = (size // 2, (size - 1) // 2)
    padded = mx.pad(sq, width)
    c = input.shape[1]
    total = None
    for i in range(size):
        part = padded[:, i : i + c]
        total = part if total is None else total + part
    div = (total / size) * alpha + k
    return input / div**beta


def normalize(
    input: array, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None
) -> array:
    """Divide by the ``p``-norm along ``dim`` (at least ``eps``).

    Args:
        input: the array.
        p: the norm's exponent.
        dim: the dimension.
        eps: the smallest divisor.
        out: not supported (must be ``None``).

    Returns:
        The normalised array.
    """
    if out is not None:
        raise ValueError("normalize: out= is not supported (chainrule arrays are values)")
    if p == 2:
        norm = mx.sqrt(mx.sum(input * input, axis=dim, keepdims=True))
    elif p == 1:
        norm = mx.sum(mx.abs(input), axis=dim, keepdims=True)
    elif p == math.inf:
        norm = mx.max(mx.abs(input), axis=dim, keepdims=True)
    else:
        norm = mx.power(mx.sum(mx.power(mx.abs(input), p), axis=dim, keepdims=True), 1.0 / p)
    return input / mx.maximum(norm, eps)


# -- embeddings ---------------------------------------------------------------------------------


def _renorm(weight: array, ids: np.ndarray, max_norm: float, norm_type: float) -> array:
    """PyTorch's ``embedding_renorm_``: rescale the looked-up rows above ``max_norm``.

    A leaf (a module's table) is updated in place, as PyTorch does; a computed table keeps its
    graph and is returned with the new values, whose gradient is the identity (PyTorch renorms
    in place without recording it).
    """
    w = backend.copy_of(weight._data)  # computed on the table's device
    rows = backend.same_device(np.unique(ids.reshape(-1)), w)
    picked = w[rows]
    norms = np.linalg.norm(picked.astype(np.float64), ord=norm_type, axis=1)
    scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
    w[rows] = (picked * scale[:, None]).astype(w.dtype)
    node = weight._node
    if node is None or node.prim is None:
        weight._set_value(w)
        return weight
    return weight + mx.stop_gradient(from_value(w) - weight)


def _indices(input: Any, who: str, n: int) -> tuple[array, np.ndarray]:
    ids = np.asarray(input)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{who}: expected integer indices (Long or Int), got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise IndexError(
            f"{who}: index out of range in self: indices span [{int(ids.min())}, "
            f"{int(ids.max())}] but the weight has {n} rows"
        )
    return (input if isinstance(input, array) else mx.array(ids)), ids


def embedding(
    input: array,
    weight: array,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> array:
    """Rows of ``weight`` at the integer indices ``input``.

    Args:
        input: integer indices.
        weight: ``(num_embeddings, embedding_dim)``.
        padding_idx: this row receives no gradient.
        max_norm: rows looked up are first renormalised (in place) to at most this norm.
        norm_type: the norm for ``max_norm``.
        scale_grad_by_freq: divide each row's gradient by its count in the batch.
        sparse: accepted (gradients are dense).

    Returns:
        ``input.shape + (embedding_dim,)``.
    """
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2D, got shape {tuple(weight.shape)}")
    idx, ids = _indices(input, "embedding", weight.shape[0])
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    if max_norm is not None:
        weight = _renorm(weight, ids, max_norm, norm_type)
    rows = mx.take(weight, idx.astype(mx.int64), axis=0)
    scale = None
    if padding_idx is not None:
        scale = (ids != padding_idx).astype(np.float64)
    if scale_grad_by_freq:
        _, inv, counts = np.unique(ids.reshape(-1), return_inverse=True, return_counts=True)
        freq = (1.0 / counts[inv]).reshape(ids.shape)
        scale = freq if scale is None else scale * freq
    if scale is None:
        return rows
    s = const(scale[..., None], rows)
    # value unchanged, gradient scaled: rows * s + stop_gradient(rows * (1 - s))
    return rows * s + mx.stop_gradient(rows - rows * s)


def embedding_bag(
    input: array,
    weight: array,
    offsets: array | None = None,
    max_norm: float | None = None,
    norm_type: float = 2,
    scale_grad_by_freq: bool = False,
    mode: str = "mean",
    sparse: bool = False,
    per_sample_weights: array | None = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> array:
    """Sums, means or maxima of bags of embeddings.

    Args:
        input: ``(B, N)`` bags of fixed size, or a 1-D index list cut by ``offsets``.
        weight: ``(num_embeddings, embedding_dim)``.
        offsets: starts of the bags in a 1-D ``input``.
        max_norm: renormalise looked-up rows first (in place).
        norm_type: the norm for ``max_norm``.
        scale_grad_by_freq: not supported with ``mode="max"``.
        mode: ``"sum"``, ``"mean"`` or ``"max"``.
        sparse: accepted (gradients are dense).
        per_sample_weights: weights of each index (``mode="sum"`` only).
        include_last_offset: ``offsets`` has one more entry, the end of the last bag.
        padding_idx: entries equal to it are left out of their bag.

    Returns:
        ``(B, embedding_dim)``; empty bags give zeros.
    """
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"embedding_bag: mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(
            f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
            f"supported for mode='sum' (got mode={mode!r})"
        )
    n = weight.shape[0]
    ids = np.asarray(input).astype(np.int64)
    if ids.ndim == 2:
        if offsets is not None:
            raise ValueError("embedding_bag: offsets must be None for a 2D input")
        bags = ids.shape[0]
        starts = np.arange(bags) * ids.shape[1]
        ends = starts + ids.shape[1]
        flat = ids.reshape(-1)
        psw = None if per_sample_weights is None else mx.reshape(per_sample_weights, (-1,))
    elif ids.ndim == 1:
        if offsets is None:
            raise ValueError("embedding_bag: offsets has to be a 1D tensor for a 1D input")
        off = np.asarray(offsets).astype(np.int64).reshape(-1)
        if include_last_offset:
            starts, ends = off[:-1], off[1:]
        else:
            starts, ends = off, np.append(off[1:], ids.size)
        flat = ids
        psw = per_sample_weights
    else:
        raise ValueError(f"embedding_bag: input has to be 1D or 2D, got shape {ids.shape}")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    if max_norm is not None:
        weight = _renorm(weight, flat, max_norm, norm_type)
    _indices(flat, "embedding_bag", n)
    rows = mx.take(weight, mx.array(flat), axis=0)
    if psw is not None:
        rows = rows * mx.expand_dims(psw, 1)
    keep = np.ones(flat.shape, bool) if padding_idx is None else flat != padding_idx
    d = weight.shape[1]
    bags = len(starts)
    if bags == 0:
        return mx.zeros((0, d), dtype=weight.dtype)
    # the (bag, position) of every kept entry: bags are contiguous runs of the index list
    bag_of = np.full(flat.shape, -1, np.int64)
    lengths = np.maximum(np.asarray(ends) - np.asarray(starts), 0)
    bag_of[int(starts[0]) : int(starts[0]) + int(lengths.sum())] = np.repeat(
        np.arange(bags), lengths
    )
    sel = np.nonzero(keep & (bag_of >= 0))[0]
    counts = np.bincount(bag_of[sel], minlength=bags)
    if mode in ("sum", "mean"):
        picked = mx.take(rows, mx.array(sel), axis=0)
        total = mx.zeros((bags, d), dtype=rows.dtype).at[mx.array(bag_of[sel])].add(picked)
        if mode == "sum":
            return total
        return total / const(np.maximum(counts, 1)[:, None], total)
    # max: a (bags, longest) table of entries, padded with -inf, then the first maximum
    longest = max(int(counts.max()), 1)
    slot = np.zeros((bags, longest), np.int64)
    valid = np.zeros((bags, longest), bool)
    ids = bag_of[sel]  # non-decreasing: bags are consecutive runs
    pos = np.arange(sel.size) - np.searchsorted(ids, np.arange(bags))[ids]
    slot[ids, pos] = sel
    valid[ids, pos] = True
    table = mx.take(rows, mx.array(slot.reshape(-1)), axis=0).reshape(bags, longest, d)
    mask = const(valid[..., None], table) > 0
    table = mx.where(mask, table, -math.inf)
    arg = mx.argmax(table, axis=1, keepdims=True)
    best = mx.take_along_axis(table, arg, axis=1)[:, 0]
    return mx.where(const((counts > 0)[:, None], best) > 0, best, mx.zeros_like(best))


def one_hot(tensor: array, num_classes: int = -1) -> array:
    """Class indices as one-hot rows (int64), with ``max + 1`` classes when not given.

    Args:
        tensor: integer class indices.
        num_classes: the number of classes.

    Returns:
        ``tensor.shape + (num_classes,)``, int64.
    """
    data = np.asarray(tensor)
    if data.dtype.kind not in "iu":
        raise InputError(
            f"one_hot: one_hot is only applicable to index tensor, got dtype {data.dtype}"
        )
    if num_classes == -1:
        if data.size == 0:
            raise InputError("one_hot: can not infer total number of classes from empty tensor")
        num_classes = int(data.max()) + 1
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        raise InputError(
            f"one_hot: class values must be in [0, {num_classes}), got "
            f"[{int(data.min())}, {int(data.max())}]"
        )
    return from_value((data[..., None] == np.arange(num_classes)).astype(np.int64))


# -- dropout -----------------------------------------------------------------------------------


def _check_p(p: float, who: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(
            f"{who}: dropout probability has to be between 0 and 1 (p must be in [0, 1]), got {p}"
        )


def _rebind(input: array, out: array, inplace: bool) -> array:
    # the result is returned as its own handle (see functional_act._rebind)
    if inplace:
        input._set_value(out._data, out._node)
    return out


def dropout(input: array, p: float = 0.5, training: bool = True, inplace: bool = False) -> array:
    """Zero elements with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Args:
        input: the array.
        p: the probability of zeroing an element.
        training: drop only when true (PyTorch's function form defaults to true).
        inplace: rebind ``input`` to the result.

    Returns:
        The result.
    """
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _rebind(input, input * 0, inplace)
    return _rebind(input, input * _noise(input, tuple(input.shape), p), inplace)


def _noise(input: array, shape: tuple, p: float, scaled: bool = True) -> array:
    """PyTorch's dropout noise: ``empty(shape).bernoulli_(1 - p).div_(1 - p)`` (without the
    division unless ``scaled``) in ``input``'s dtype, on its device (the draws are PyTorch's:
    see ``chainrule.core.torch_generator``)."""
    keep = _stream(None).bernoulli(1.0 - p, shape)
    d = input._data.dtype
    scale = np.asarray(1.0, d) / np.asarray(1.0 - p, d) if p < 1.0 else np.asarray(0.0, d)
    if not scaled:
        scale = np.asarray(1.0, d)
    noise = keep.astype(d) * scale
    return from_value(backend.to_kind(noise, "gpu" if backend.is_gpu(input._data) else "cpu"))


def _feature_dropout(input, p, training, inplace, nd, who):
    _check_p(p, who)
    if input.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"{who}: expected a {nd + 1}D (unbatched) or {nd + 2}D (batched) input, got shape "
            f"{tuple(input.shape)}"
        )
    if not training or p == 0.0:
        return input
    lead = input.ndim - nd
    mask_shape = tuple(input.shape[:lead]) + (1,) * nd
    return _rebind(input, input * _noise(input, mask_shape, p), inplace)


def dropout1d(input: array, p: float = 0.5, training: bool = True, inplace: bool = False) -> array:
    """Zero whole channels of ``(N, C, L)`` (or ``(C, L)``) with probability ``p``."""
    return _feature_dropout(input, p, training, inplace, 1, "dropout1d")


def dropout2d(input: array, p: float = 0.5, training: bool = True, inplace: bool = False) -> array:
    """Zero whole channels of ``(N, C, H, W)`` (or ``(C, H, W)``) with probability ``p``.

    As PyTorch 2.13, with a warning each: a 2-D input gets element-wise dropout, and a 3-D
    input is read as ``(N, C, L)`` (channel-wise 1-D dropout).
    """
    if input.ndim == 2:
        warnings.warn(
            "dropout2d: Received a 2-D input to dropout2d, which is deprecated and will result "
            "in an error in a future release. To retain the behavior and silence this warning, "
            "please use dropout instead. Note that dropout2d exists to provide channel-wise "
            "dropout on inputs with 2 spatial dimensions, a channel dimension, and an optional "
            "batch dimension (i.e. 3D or 4D inputs).",
            UserWarning,
            stacklevel=2,
        )
        return dropout(input, p, training, inplace)
    if input.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            UserWarning,
            stacklevel=2,
        )
        return _feature_dropout(input, p, training, inplace, 1, "dropout2d")
    return _feature_dropout(input, p, training, inplace, 2, "dropout2d")


def dropout3d(input: array, p: float = 0.5, training: bool = True, inplace: bool = False) -> array:
    """Zero whole channels of ``(N, C, D, H, W)`` (or ``(C, D, H, W)``) with probability ``p``."""
    return _feature_dropout(input, p, training, inplace, 3, "dropout3d")


_SELU_NEG = -1.0507009873554804934193349852946 * 1.6732632423543772848170429916717


def _alpha(input, p, training, inplace, mask_shape, who):
    _check_p(p, who)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return _rebind(input, input * 0, inplace)
    keep = _noise(input, tuple(mask_shape), p, scaled=False)  # (ones where kept)
    a = 1.0 / math.sqrt((_SELU_NEG**2 * p + 1) * (1 - p))
    b = -a * _SELU_NEG * p
    out = (input * keep + _SELU_NEG * (1 - keep)) * a + b
    return _rebind(input, out, inplace)


def alpha_dropout(
    input: array, p: float = 0.5, training: bool = False, inplace: bool = False
) -> array:
    """Dropout that keeps SELU's zero mean and unit variance (dropped values saturate)."""
    return _alpha(input, p, training, inplace, input.shape, "alpha_dropout")


def feature_alpha_dropout(
    input: array, p: float = 0.5, training: bool = False, inplace: bool = False
) -> array:
    """:func:`alpha_dropout` of whole channels (dimension 1)."""
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _alpha(input, p, training, inplace, shape, "feature_alpha_dropout")


# -- attention ---------------------------------------------------------------------------------


def scaled_dot_product_attention(
    query: array,
    key: array,
    value: array,
    attn_mask: array | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> array:
    """``softmax(q @ k^T * scale + mask) @ v`` over the last two dimensions.

    Args:
        query: ``(..., L, E)``.
        key: ``(..., S, E)``.
        value: ``(..., S, Ev)``.
        attn_mask: boolean (true = attend) or additive float, broadcast to ``(..., L, S)``.
        dropout_p: dropout on the attention weights.
        is_causal: mask out future positions (no ``attn_mask`` then).
        scale: default ``1 / sqrt(E)``.
        enable_gqa: repeat key/value heads (dimension -3) to match the query's.

    Returns:
        ``(..., L, Ev)``.
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2 or query.shape[-1] != key.shape[-1]:
        raise InputError(
            f"scaled_dot_product_attention: query {tuple(query.shape)}, key "
            f"{tuple(key.shape)} and value {tuple(value.shape)} must be (..., L, E), "
            "(..., S, E) and (..., S, Ev)"
        )
    if is_causal and attn_mask is not None:
        raise InputError(
            "scaled_dot_product_attention: _scaled_dot_product_attention: Explicit attn_mask "
            "should not be set when is_causal=True"
        )
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        rep = query.shape[-3] // key.shape[-3]
        key = mx.repeat(key, rep, axis=-3)
        value = mx.repeat(value, rep, axis=-3)
    length, source = query.shape[-2], key.shape[-2]
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = mx.matmul(query, mx.swapaxes(key, -1, -2)) * s
    if is_causal:
        causal = np.tril(np.ones((length, source), bool))
        scores = mx.where(mx.array(causal), scores, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == mx.bool_:
            scores = mx.where(attn_mask, scores, -math.inf)
        else:
            scores = scores + attn_mask
    weights = mx.softmax(scores, axis=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return mx.matmul(weights, value)
