"""``torch.nn.functional`` (imported as ``F``): PyTorch's signatures, defaults and layouts.

Activations come from chainrule.nn's functions; losses run chainrule.nn's PyTorch-named loss
classes (``F.cross_entropy`` is ``nn.CrossEntropyLoss(...)(input, target)``), so the
function and module forms share one definition. Convolutions and pooling take channels-first
inputs and PyTorch's weight layout ``(C_out, C_in // groups, *kernel)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array
from chainrule.core.extend import from_value

from .. import _math as _tf
from . import _layers

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "celu",
    "conv1d",
    "conv2d",
    "cosine_similarity",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "glu",
    "hardswish",
    "hardtanh",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "logsigmoid",
    "max_pool1d",
    "max_pool2d",
    "mish",
    "mse_loss",
    "nll_loss",
    "normalize",
    "one_hot",
    "pad",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softmin",
    "softplus",
    "softsign",
    "tanh",
]


# -- activations -------------------------------------------------------------------------------


def relu(input: array, inplace: bool = False) -> array:
    """``max(x, 0)``.

    Args:
        input: the array.
        inplace: accepted; a new array is always returned.

    Returns:
        The result.
    """
    return cnn.relu(input)


def relu6(input: array, inplace: bool = False) -> array:
    """``min(max(x, 0), 6)``."""
    return cnn.relu6(input)


def leaky_relu(input: array, negative_slope: float = 0.01, inplace: bool = False) -> array:
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    return cnn.leaky_relu(input, negative_slope)


def elu(input: array, alpha: float = 1.0, inplace: bool = False) -> array:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return cnn.elu(input, alpha)


def celu(input: array, alpha: float = 1.0, inplace: bool = False) -> array:
    """Continuously differentiable ELU."""
    return cnn.celu(input, alpha)


def selu(input: array, inplace: bool = False) -> array:
    """Scaled ELU."""
    return cnn.selu(input)


def gelu(input: array, approximate: str = "none") -> array:
    """Gaussian error linear unit: exact (``"none"``) or the tanh approximation (``"tanh"``).

    Args:
        input: the array.
        approximate: ``"none"`` or ``"tanh"``.

    Returns:
        The result.
    """
    if approximate == "none":
        return cnn.gelu(input)
    if approximate == "tanh":
        return cnn.gelu_approx(input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: array, inplace: bool = False) -> array:
    """``x * sigmoid(x)``."""
    return cnn.silu(input)


def mish(input: array, inplace: bool = False) -> array:
    """``x * tanh(softplus(x))``."""
    return cnn.mish(input)


def hardswish(input: array, inplace: bool = False) -> array:
    """``x * relu6(x + 3) / 6``."""
    return cnn.hardswish(input)


def hardtanh(
    input: array, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> array:
    """Clamp to ``[min_val, max_val]``."""
    return cnn.hard_tanh(input, min_val, max_val)


def sigmoid(input: array) -> array:
    """``1 / (1 + exp(-x))``."""
    return mx.sigmoid(input)


def tanh(input: array) -> array:
    """Hyperbolic tangent."""
    return mx.tanh(input)


def softsign(input: array) -> array:
    """``x / (1 + |x|)``."""
    return cnn.softsign(input)


def logsigmoid(input: array) -> array:
    """``log(sigmoid(x))``, computed stably."""
    return cnn.log_sigmoid(input)


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
    smooth = cnn.softplus(scaled)
    if beta != 1:
        smooth = smooth * (1.0 / beta)
    return mx.where(scaled > threshold, input, smooth)


def glu(input: array, dim: int = -1) -> array:
    """Gated linear unit: the first half of ``dim`` times the sigmoid of the second."""
    return cnn.glu(input, dim)


def _implicit_dim(x: array, who: str) -> int:
    warnings.warn(
        f"{who}: implicit dimension choice is deprecated in PyTorch; pass dim=",
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


# -- layers as functions -----------------------------------------------------------------------


def linear(input: array, weight: array, bias: array | None = None) -> array:
    """``input @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    Args:
        input: ``(*, in_features)``.
        weight: ``(out_features, in_features)``.
        bias: ``(out_features,)`` or ``None``.

    Returns:
        ``(*, out_features)``.
    """
    if weight.ndim != 2 or input.shape[-1:] != weight.shape[1:]:
        raise ValueError(
            f"linear: input of shape {input.shape} does not match a weight of shape "
            f"{weight.shape} (out_features, in_features)"
        )
    y = mx.matmul(input, mx.transpose(weight))
    return y if bias is None else y + bias


def dropout(input: array, p: float = 0.5, training: bool = True, inplace: bool = False) -> array:
    """Zero elements with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    PyTorch's function form is on by default (``training=True``); pass ``self.training``.

    Args:
        input: the array.
        p: the probability of zeroing an element.
        training: drop only when true.
        inplace: accepted; a new array is always returned.

    Returns:
        The result.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0
    keep = mx.random.bernoulli(1.0 - p, input.shape)
    return mx.where(keep, input * (1.0 / (1.0 - p)), 0.0)


def embedding(input: array, weight: array, padding_idx: int | None = None, **kwargs: Any) -> array:
    """Rows of ``weight`` at the integer indices ``input``.

    Args:
        input: integer indices.
        weight: ``(num_embeddings, embedding_dim)``.
        padding_idx: accepted (its row receives gradients here).

    Returns:
        ``input.shape + (embedding_dim,)``.
    """
    return mx.take(weight, input, axis=0)


def one_hot(tensor: array, num_classes: int = -1) -> array:
    """Class indices as one-hot rows (int64), with ``max + 1`` classes when not given.

    Args:
        tensor: integer class indices.
        num_classes: the number of classes.

    Returns:
        ``tensor.shape + (num_classes,)``, int64.
    """
    data = tensor._data if type(tensor) is array else np.asarray(tensor)
    if data.dtype.kind not in "iu":
        raise ValueError(f"one_hot: expected integer class indices, got dtype {data.dtype}")
    if num_classes == -1:
        num_classes = int(data.max()) + 1 if data.size else 0
    if data.size and (data.min() < 0 or data.max() >= num_classes):
        raise ValueError(
            f"one_hot: class values must be in [0, {num_classes}), got "
            f"[{int(data.min())}, {int(data.max())}]"
        )
    return from_value((data[..., None] == np.arange(num_classes)).astype(np.int64))


def normalize(input: array, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> array:
    """Divide by the ``p``-norm along ``dim`` (at least ``eps``).

    Args:
        input: the array.
        p: the norm's exponent.
        dim: the dimension.
        eps: the smallest divisor.

    Returns:
        The normalised array.
    """
    if p == 2:
        norm = mx.sqrt(mx.sum(input * input, axis=dim, keepdims=True))
    else:
        norm = mx.power(mx.sum(mx.power(mx.abs(input), p), axis=dim, keepdims=True), 1.0 / p)
    return input / mx.maximum(norm, eps)


def cosine_similarity(x1: array, x2: array, dim: int = 1, eps: float = 1e-8) -> array:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim``.

    Args:
        x1: the first array.
        x2: the second array (broadcast against ``x1``).
        dim: the dimension.
        eps: the smallest norm.

    Returns:
        The similarities.
    """
    n1 = mx.sqrt(mx.sum(x1 * x1, axis=dim))
    n2 = mx.sqrt(mx.sum(x2 * x2, axis=dim))
    return mx.sum(x1 * x2, axis=dim) / (mx.maximum(n1, eps) * mx.maximum(n2, eps))


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
    shape = (
        tuple(normalized_shape) if isinstance(normalized_shape, Sequence) else (normalized_shape,)
    )
    if input.shape[input.ndim - len(shape) :] != shape:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end in {shape}")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    mean = mx.mean(input, axis=axes, keepdims=True)
    var = mx.var(input, axis=axes, keepdims=True)
    y = (input - mean) * mx.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def pad(input: array, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> array:
    """Pad the last ``len(pad) // 2`` dimensions: ``pad = (left_last, right_last, ...)``.

    Args:
        input: the array.
        pad: pairs of amounts, starting from the last dimension.
        mode: ``"constant"`` or ``"replicate"``.
        value: the constant.

    Returns:
        The padded array.
    """
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {tuple(pad)} must hold pairs for at most {input.ndim} dimensions")
    width = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        width[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode == "constant":
        return mx.pad(input, width, constant_values=value)
    if mode == "replicate":
        return mx.pad(input, width, mode="edge")
    raise ValueError(f"pad: mode must be 'constant' or 'replicate', got {mode!r}")


def _conv(nd: int, input, weight, bias, stride, padding, dilation, groups, who):
    if padding == "valid":
        padding = 0
    elif isinstance(padding, str):
        raise ValueError(f"{who}: padding must be a number, a tuple or 'valid', got {padding!r}")
    if input.ndim != nd + 2 or weight.ndim != nd + 2:
        raise ValueError(
            f"{who}: expected a channels-first input and a weight (C_out, C_in // groups, "
            f"*kernel) of {nd + 2} dimensions, got {input.shape} and {weight.shape}"
        )
    fn = mx.conv1d if nd == 1 else mx.conv2d
    y = fn(mx.moveaxis(input, 1, -1), mx.moveaxis(weight, 1, -1), stride, padding, dilation, groups)
    if bias is not None:
        y = y + bias
    return mx.moveaxis(y, -1, 1)


def conv1d(
    input: array,
    weight: array,
    bias: array | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> array:
    """1-d convolution of ``(N, C_in, L)`` with a weight ``(C_out, C_in // groups, K)``.

    Args:
        input: the signal, channels first.
        weight: the filters, PyTorch's layout.
        bias: ``(C_out,)`` or ``None``.
        stride: step between windows.
        padding: zeros on both sides (or ``"valid"``).
        dilation: spacing between taps.
        groups: channel groups.

    Returns:
        ``(N, C_out, L_out)``.
    """
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
    """2-d convolution of ``(N, C_in, H, W)`` with a weight ``(C_out, C_in // groups, KH, KW)``.

    Args:
        input: the images, channels first.
        weight: the filters, PyTorch's layout.
        bias: ``(C_out,)`` or ``None``.
        stride: step between windows.
        padding: zeros on both sides (or ``"valid"``).
        dilation: spacing between taps.
        groups: channel groups.

    Returns:
        ``(N, C_out, H_out, W_out)``.
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, "conv2d")


def _pool_fn(cls, name):
    def fn(input: array, kernel_size: Any, stride: Any = None, padding: Any = 0, **kwargs: Any):
        return cls(kernel_size, stride, padding, **kwargs)(input)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Functional form of ``nn.{cls.__name__}`` (channels-first input)."
    return fn


max_pool1d = _pool_fn(_layers.MaxPool1d, "max_pool1d")
max_pool2d = _pool_fn(_layers.MaxPool2d, "max_pool2d")
avg_pool1d = _pool_fn(_layers.AvgPool1d, "avg_pool1d")
avg_pool2d = _pool_fn(_layers.AvgPool2d, "avg_pool2d")


def adaptive_avg_pool1d(input: array, output_size: Any) -> array:
    """Average-pool ``(N, C, L)`` to ``output_size``."""
    return _layers.AdaptiveAvgPool1d(output_size)(input)


def adaptive_avg_pool2d(input: array, output_size: Any) -> array:
    """Average-pool ``(N, C, H, W)`` to ``output_size``."""
    return _layers.AdaptiveAvgPool2d(output_size)(input)


# -- losses: the module forms, called once ---------------------------------------------------


def cross_entropy(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> array:
    """Cross entropy of logits (classes on dimension 1) against indices or probabilities.

    Args:
        input: ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)`` logits.
        target: class indices or probabilities.
        weight: one weight per class.
        size_average: deprecated PyTorch flag.
        ignore_index: a target index that contributes nothing.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        label_smoothing: in ``[0, 1]``.

    Returns:
        The loss.
    """
    loss = cnn.CrossEntropyLoss(
        weight, size_average, ignore_index, reduce, reduction, label_smoothing
    )
    return loss(input, target)


def nll_loss(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Negative log-likelihood of log-probabilities (classes on dimension 1).

    Args:
        input: log-probabilities.
        target: class indices.
        weight: one weight per class.
        size_average: deprecated PyTorch flag.
        ignore_index: a target index that contributes nothing.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    return cnn.NLLLoss(weight, size_average, ignore_index, reduce, reduction)(input, target)


def mse_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Mean squared error (shapes must match).

    Args:
        input: predictions.
        target: targets of the same shape.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    return cnn.MSELoss(size_average, reduce, reduction)(input, target)


def l1_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Mean absolute error (shapes must match)."""
    return cnn.L1Loss(size_average, reduce, reduction)(input, target)


def smooth_l1_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> array:
    """Quadratic below ``beta``, linear above."""
    return cnn.SmoothL1Loss(size_average, reduce, reduction, beta)(input, target)


def huber_loss(input: array, target: array, reduction: str = "mean", delta: float = 1.0) -> array:
    """Quadratic below ``delta``, linear (slope ``delta``) above."""
    return cnn.HuberLoss(reduction, delta)(input, target)


def binary_cross_entropy(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Binary cross entropy of probabilities in ``[0, 1]`` (PyTorch's; MLX's takes logits).

    Args:
        input: probabilities.
        target: 0/1 targets (or soft targets) of the same shape.
        weight: rescaling weight.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    return cnn.BCELoss(weight, size_average, reduce, reduction)(input, target)


def binary_cross_entropy_with_logits(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: array | None = None,
) -> array:
    """Binary cross entropy of logits, computed stably.

    Args:
        input: logits.
        target: 0/1 targets (or soft targets) of the same shape.
        weight: rescaling weight.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        pos_weight: weight of positive examples.

    Returns:
        The loss.
    """
    loss = cnn.BCEWithLogitsLoss(weight, size_average, reduce, reduction, pos_weight)
    return loss(input, target)


def kl_div(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> array:
    """``target * (log(target) - input)`` with ``input`` given as log-probabilities."""
    return cnn.KLDivLoss(size_average, reduce, reduction, log_target)(input, target)
