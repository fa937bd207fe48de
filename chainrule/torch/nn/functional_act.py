"""Activations of ``torch.nn.functional`` with PyTorch's signatures (helper of ``functional``).

Each is a composite of chainrule operations, so it differentiates to any order. The
``*_`` forms rebind their input's handle to the result (chainrule arrays are values) and
return it, as PyTorch's in-place functions return their input.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import torch_generator as _tg
from chainrule.core.array import array

from .. import _math as _tf
from .functional_pool import InputError

__all__ = [
    "celu",
    "celu_",
    "elu",
    "elu_",
    "gelu",
    "glu",
    "gumbel_softmax",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "hardtanh_",
    "leaky_relu",
    "leaky_relu_",
    "log_softmax",
    "logsigmoid",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "relu_",
    "rrelu",
    "rrelu_",
    "selu",
    "selu_",
    "sigmoid",
    "silu",
    "softmax",
    "softmin",
    "softplus",
    "softshrink",
    "softsign",
    "tanh",
    "tanhshrink",
    "threshold",
    "threshold_",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SIXTH = float(np.float32(1.0 / 6.0))


def _rebind(input: array, out: array) -> array:
    """Rebind ``input`` to ``out`` (PyTorch's in-place update) and return the result.

    The result is returned as its own handle: ``torch.nn.functional``'s tensor door hands
    this function a fresh handle on the caller's tensor, so returning ``input`` would give
    the caller its old value back.
    """
    input._set_value(out._data, out._node)
    return out


def relu(input: array, inplace: bool = False) -> array:
    """``max(x, 0)`` (gradient 0 at 0, as PyTorch).

    Args:
        input: the array.
        inplace: rebind ``input`` to the result.

    Returns:
        The result.
    """
    out = mx.maximum(input, 0)  # NaN stays NaN, as PyTorch's; one ufunc (issue 20)
    return _rebind(input, out) if inplace else out


def relu_(input: array) -> array:
    """In-place :func:`relu`."""
    return relu(input, True)


def threshold(input: array, threshold: float, value: float, inplace: bool = False) -> array:
    """``x`` where ``x > threshold``, else ``value``.

    Args:
        input: the array.
        threshold: the cut.
        value: the replacement.
        inplace: rebind ``input`` to the result.

    Returns:
        The result.
    """
    out = mx.where(input > threshold, input, mx.full(input.shape, value, dtype=input.dtype))
    return _rebind(input, out) if inplace else out


def threshold_(input: array, threshold: float, value: float) -> array:
    """In-place :func:`threshold`."""
    return globals()["threshold"](input, threshold, value, True)


def relu6(input: array, inplace: bool = False) -> array:
    """``min(max(x, 0), 6)``."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(
    input: array, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> array:
    """Clamp to ``[min_val, max_val]`` (gradient 0 at the bounds, as PyTorch).

    Args:
        input: the array.
        min_val: the lower bound.
        max_val: the upper bound.
        inplace: rebind ``input`` to the result.

    Returns:
        The result.
    """
    if min_val > max_val:
        raise ValueError(
            f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})"
        )
    inside = (input > min_val) & (input < max_val)
    lo = mx.full(input.shape, min_val, dtype=input.dtype)
    clipped = mx.where(input <= min_val, lo, mx.full(input.shape, max_val, dtype=input.dtype))
    out = mx.where(inside, input, clipped)
    return _rebind(input, out) if inplace else out


def hardtanh_(input: array, min_val: float = -1.0, max_val: float = 1.0) -> array:
    """In-place :func:`hardtanh`."""
    return hardtanh(input, min_val, max_val, True)


def leaky_relu(input: array, negative_slope: float = 0.01, inplace: bool = False) -> array:
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    out = mx.where(input > 0, input, input * negative_slope)
    return _rebind(input, out) if inplace else out


def leaky_relu_(input: array, negative_slope: float = 0.01) -> array:
    """In-place :func:`leaky_relu`."""
    return leaky_relu(input, negative_slope, True)


def _non_positive(x: array) -> array:
    """``min(x, 0)`` whose gradient at ``x == 0`` is 1: PyTorch differentiates the ELU family
    at 0 on the exponential branch (``F.elu``'s gradient at 0 is ``alpha``)."""
    return mx.where(x > 0, mx.zeros_like(x), x)


def elu(input: array, alpha: float = 1.0, inplace: bool = False) -> array:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    out = mx.where(input > 0, input, alpha * mx.expm1(_non_positive(input)))
    return _rebind(input, out) if inplace else out


def elu_(input: array, alpha: float = 1.0) -> array:
    """In-place :func:`elu`."""
    return elu(input, alpha, True)


def selu(input: array, inplace: bool = False) -> array:
    """Scaled ELU with PyTorch's constants."""
    out = _SELU_SCALE * elu(input, _SELU_ALPHA)
    return _rebind(input, out) if inplace else out


def selu_(input: array) -> array:
    """In-place :func:`selu`."""
    return selu(input, True)


def celu(input: array, alpha: float = 1.0, inplace: bool = False) -> array:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    out = mx.where(input > 0, input, alpha * mx.expm1(_non_positive(input) * (1.0 / alpha)))
    return _rebind(input, out) if inplace else out


def celu_(input: array, alpha: float = 1.0) -> array:
    """In-place :func:`celu`."""
    return celu(input, alpha, True)


def gelu(input: array, approximate: str = "none") -> array:
    """Gaussian error linear unit: exact (``"none"``) or the tanh approximation (``"tanh"``).

    Args:
        input: the array.
        approximate: ``"none"`` or ``"tanh"``.

    Returns:
        The result.
    """
    if approximate == "none":
        from chainrule.nn.layers.activations import gelu as _exact_gelu  # fused float32 path

        return _exact_gelu(input)
    if approximate == "tanh":
        from chainrule.nn.layers.activations import gelu_approx  # fused on the GPU

        return gelu_approx(input)
    raise InputError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: array, inplace: bool = False) -> array:
    """``x * sigmoid(x)`` (one fused kernel on the GPU)."""
    from chainrule.nn.layers.activations import silu as _silu

    out = _silu(input)
    return _rebind(input, out) if inplace else out


def mish(input: array, inplace: bool = False) -> array:
    """``x * tanh(softplus(x))``."""
    out = input * mx.tanh(softplus(input))
    return _rebind(input, out) if inplace else out


def hardswish(input: array, inplace: bool = False) -> array:
    """``x * relu6(x + 3) / 6`` (PyTorch's gradient: ``x / 3 + 0.5`` inside ``[-3, 3]``)."""
    out = mx.where(
        input <= -3, mx.zeros_like(input), mx.where(input >= 3, input, input * (input + 3) / 6)
    )
    return _rebind(input, out) if inplace else out


def hardsigmoid(input: array, inplace: bool = False) -> array:
    """``relu6(x + 3) / 6`` (gradient ``1/6`` strictly inside ``(-3, 3)``)."""
    inside = (input > -3) & (input < 3)
    # PyTorch's backward uses the slope 1/6 rounded to float32, whatever the dtype
    ramp = input * _SIXTH + mx.stop_gradient(input / 6 - input * _SIXTH) + 0.5
    out = mx.where(inside, ramp, mx.where(input >= 3, 1.0, 0.0).astype(input.dtype))
    return _rebind(input, out) if inplace else out


def sigmoid(input: array) -> array:
    """``1 / (1 + exp(-x))``."""
    return mx.sigmoid(input)


def tanh(input: array) -> array:
    """Hyperbolic tangent."""
    return mx.tanh(input)


def tanhshrink(input: array) -> array:
    """``x - tanh(x)``."""
    return input - mx.tanh(input)


def softsign(input: array) -> array:
    """``x / (1 + |x|)``."""
    return input / (1 + mx.abs(input))


def logsigmoid(input: array) -> array:
    """``log(sigmoid(x))``, computed stably."""
    return -softplus(-input)


def softplus(input: array, beta: float = 1.0, threshold: float = 20.0) -> array:
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``.

    Args:
        input: the array.
        beta: the sharpness.
        threshold: above it the function is the identity (as in PyTorch).

    Returns:
        The result.
    """
    scaled = input * beta if beta != 1 else input
    safe = mx.minimum(scaled, threshold)
    smooth = mx.maximum(safe, 0) + mx.log1p(mx.exp(-mx.abs(safe)))
    if beta != 1:
        smooth = smooth * (1.0 / beta)
    return mx.where(scaled > threshold, input, smooth)


def softshrink(input: array, lambd: float = 0.5) -> array:
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be non-negative, got {lambd}")
    zero = mx.zeros_like(input)
    return mx.where(input > lambd, input - lambd, mx.where(input < -lambd, input + lambd, zero))


def hardshrink(input: array, lambd: float = 0.5) -> array:
    """``x`` where ``|x| > lambd``, else 0."""
    return mx.where((input > lambd) | (input < -lambd), input, mx.zeros_like(input))


def glu(input: array, dim: int = -1) -> array:
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second.

    Args:
        input: the array.
        dim: the dimension to halve (its size must be even).

    Returns:
        The result.
    """
    if input.ndim == 0:
        raise InputError("glu: does not support scalars because halving size must be even")
    if input.shape[dim] % 2:
        raise InputError(
            f"glu: halving dimension must be even, but dimension {dim} of input shape "
            f"{input.shape} is size {input.shape[dim]}"
        )
    a, b = mx.split(input, 2, axis=dim)
    return a * mx.sigmoid(b)


def prelu(input: array, weight: array) -> array:
    """``x`` for ``x > 0``, else ``weight * x`` with one slope per channel (dimension 1).

    Args:
        input: the array, channels on dimension 1.
        weight: one slope, or one per channel.

    Returns:
        The result.
    """
    n = weight.size
    if n != 1:
        channels = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim else 1)
        if n != channels:
            raise InputError(
                f"prelu: weight of shape {weight.shape} has {n} slopes but the input of shape "
                f"{input.shape} has {channels} channels (dimension 1)"
            )
        if input.ndim >= 2:
            weight = mx.reshape(weight, (n,) + (1,) * (input.ndim - 2))
    else:
        weight = mx.reshape(weight, ())
    return mx.where(input > 0, input, weight * input)


def rrelu(
    input: array,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> array:
    """Randomised leaky ReLU: slopes drawn from ``U(lower, upper)`` in training, else their mean.

    Args:
        input: the array.
        lower: the smallest slope.
        upper: the largest slope.
        training: draw the slopes (else use ``(lower + upper) / 2``).
        inplace: rebind ``input`` to the result.

    Returns:
        The result.
    """
    if training:  # PyTorch's draws: a float64 uniform for each element <= 0, in order
        host = _backend.to_host(input._data)
        hit = host <= 0
        lo, hi = float(np.float32(lower)), float(np.float32(upper))
        slopes = np.ones(host.shape, host.dtype)
        slopes[hit] = _tg.stream().uniform((int(hit.sum()),), np.float64, lo, hi)
        slope = mx.array(_backend.same_device(slopes, input._data))
    else:
        slope = (lower + upper) / 2
    out = mx.where(input >= 0, input, input * slope)
    return _rebind(input, out) if inplace else out


def rrelu_(
    input: array, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False
) -> array:
    """In-place :func:`rrelu`."""
    return rrelu(input, lower, upper, training, True)


def _implicit_dim(x: array, who: str) -> int:
    warnings.warn(
        f"Implicit dimension choice for {who} has been deprecated. Change the call to include "
        "dim=X as an argument.",
        UserWarning,
        stacklevel=3,
    )
    return 0 if x.ndim in (0, 1, 3) else 1


def softmax(input: array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> array:
    """Probabilities along ``dim`` (PyTorch's implicit choice, with a warning, when omitted).

    Args:
        input: the scores.
        dim: the dimension that sums to one.
        dtype: cast the input to this dtype first.

    Returns:
        The probabilities.
    """
    if dim is None:
        dim = _implicit_dim(input, "softmax")
    return _tf.softmax(input, dim, dtype)


def log_softmax(
    input: array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> array:
    """Log-probabilities along ``dim``.

    Args:
        input: the scores.
        dim: the dimension.
        dtype: cast the input to this dtype first.

    Returns:
        The log-probabilities.
    """
    if dim is None:
        dim = _implicit_dim(input, "log_softmax")
    return _tf.log_softmax(input, dim, dtype)


def softmin(input: array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> array:
    """``softmax(-x)`` along ``dim``."""
    if dim is None:
        dim = _implicit_dim(input, "softmin")
    return _tf.softmax(-input, dim, dtype)


def gumbel_softmax(
    logits: array, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> array:
    """Samples from the Gumbel-softmax distribution (straight-through one-hot when ``hard``).

    Args:
        logits: unnormalised log-probabilities.
        tau: the temperature.
        hard: return one-hot samples whose gradient is the soft sample's.
        eps: unused (PyTorch's deprecated argument).
        dim: the class dimension.

    Returns:
        Samples of ``logits``' shape.
    """
    # PyTorch's: -log of exponential_() draws in the logits' dtype
    e = _tg.stream().exponential(tuple(logits.shape), logits._data.dtype)
    gumbels = mx.array(_backend.same_device(-np.log(e), logits._data))
    soft = _tf.softmax((logits + gumbels) / tau, dim, None)
    if not hard:
        return soft
    index = mx.argmax(soft, axis=dim, keepdims=True)
    classes = mx.arange(soft.shape[dim])
    shape = [1] * soft.ndim
    shape[dim] = soft.shape[dim]
    one_hot = (mx.reshape(classes, shape) == index).astype(soft.dtype)
    return one_hot - mx.stop_gradient(soft) + soft
