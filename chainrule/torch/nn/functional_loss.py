"""Losses of ``torch.nn.functional`` with PyTorch's signatures (helper of ``functional``).

The losses chainrule.nn already has under PyTorch's names (``CrossEntropyLoss``, ``NLLLoss``,
``MSELoss``, ...) are called through those classes, so the module and function forms share one
definition; the others are composites of chainrule operations written here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array
from chainrule.nn.losses_torch import _torch_cross_entropy

from . import functional_act as _act
from .functional_pool import InputError, const

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "pairwise_distance",
    "pdist",
    "poisson_nll_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's deprecated ``size_average`` / ``reduce`` flags, mapped onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def reduce_loss(loss: array, reduction: str, who: str) -> array:
    """Apply ``reduction`` (``"none"``, ``"mean"`` or ``"sum"``) to an elementwise loss."""
    if reduction == "none":
        return loss
    if reduction == "mean":
        return mx.mean(loss)
    if reduction == "sum":
        return mx.sum(loss)
    raise ValueError(f"{who}: {reduction!r} is not a valid value for reduction")


def _same_shape(who: str, input: array, target: array) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"{who}: target of shape {tuple(target.shape)} must have the same shape as the "
            f"input of shape {tuple(input.shape)}"
        )


def _no_grad_clamp(x: array, lo: float) -> array:
    """``max(x, lo)`` whose gradient is the identity (PyTorch clamps such values in no_grad)."""
    return x + mx.stop_gradient(mx.maximum(x, lo) - x)


# -- losses kept in chainrule.nn (module forms) -----------------------------------------------


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
    if (
        weight is None
        and size_average is None
        and reduce is None
        and not label_smoothing
        and reduction in ("mean", "sum", "none")
    ):  # the common call: no loss module to build (its checks have nothing to check)
        return _torch_cross_entropy(input, target, None, int(ignore_index), reduction)
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
    weight: array | None = None,
) -> array:
    """Mean squared error (shapes must match).

    Args:
        input: predictions.
        target: targets of the same shape.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: optional elementwise weights (broadcast against the input).

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if weight is None:
        return cnn.MSELoss(None, None, reduction)(input, target)
    _same_shape("mse_loss", input, target)
    d = input - target
    return reduce_loss(d * d * weight, reduction, "mse_loss")


def l1_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: array | None = None,
) -> array:
    """Mean absolute error (shapes must match); ``weight`` scales each element."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if weight is None:
        return cnn.L1Loss(None, None, reduction)(input, target)
    _same_shape("l1_loss", input, target)
    return reduce_loss(mx.abs(input - target) * weight, reduction, "l1_loss")


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


def huber_loss(
    input: array,
    target: array,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: array | None = None,
) -> array:
    """Quadratic below ``delta``, linear (slope ``delta``) above; ``weight`` scales elements."""
    if weight is None:
        return cnn.HuberLoss(reduction, delta)(input, target)
    return reduce_loss(cnn.HuberLoss("none", delta)(input, target) * weight, reduction, "huber")


def binary_cross_entropy(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Binary cross entropy of probabilities in ``[0, 1]`` (logs clamped at -100).

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
    # the class warns for reduction='mean', as PyTorch's F.kl_div does
    return cnn.KLDivLoss(size_average, reduce, reduction, log_target)(input, target)


def linear_cross_entropy(
    input: array,
    linear_weight: array,
    target: array,
    *,
    linear_bias: array | None = None,
    weight: array | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: Any = None,
) -> array:
    """``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)``.

    Args:
        input: ``(N, in_features)`` samples.
        linear_weight: ``(C, in_features)``.
        target: class indices or probabilities.
        linear_bias: ``(C,)`` or ``None``.
        weight: one weight per class.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        ignore_index: a target index that contributes nothing (``None``: none).
        label_smoothing: in ``[0, 1]``.
        options: accepted (chunking options do not change the numbers).

    Returns:
        The loss.
    """
    logits = mx.matmul(input, mx.transpose(linear_weight))
    if linear_bias is not None:
        logits = logits + linear_bias
    ignore = -100 if ignore_index is None else ignore_index
    return cross_entropy(logits, target, weight, None, ignore, None, reduction, label_smoothing)


# -- distances ---------------------------------------------------------------------------------


def _vector_norm(x: array, p: float, axis: int, keepdims: bool) -> array:
    if p == 2:
        return mx.sqrt(mx.sum(x * x, axis=axis, keepdims=keepdims))
    if p == 1:
        return mx.sum(mx.abs(x), axis=axis, keepdims=keepdims)
    if p == math.inf:
        return mx.max(mx.abs(x), axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return mx.min(mx.abs(x), axis=axis, keepdims=keepdims)
    if p == 0:
        return mx.sum((x != 0).astype(x.dtype), axis=axis, keepdims=keepdims)
    return mx.power(mx.sum(mx.power(mx.abs(x), p), axis=axis, keepdims=keepdims), 1.0 / p)


def pairwise_distance(
    x1: array, x2: array, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> array:
    """``p``-norm of ``x1 - x2 + eps`` over the last dimension.

    Args:
        x1: ``(N, D)`` or ``(D,)``.
        x2: broadcastable against ``x1``.
        p: the norm's order.
        eps: added to the difference (avoids a zero norm).
        keepdim: keep the reduced dimension.

    Returns:
        The distances.
    """
    if p < 0:
        raise ValueError(f"pairwise_distance: p must be non-negative, got {p}")
    out_dim = max(x1.ndim, x2.ndim)
    diff = x1 - x2 + eps
    if diff.ndim == 0:
        return _vector_norm(mx.reshape(diff, (1,)), p, 0, False)
    return _vector_norm(diff, p, out_dim - 1, keepdim)


def cosine_similarity(x1: array, x2: array, dim: int = 1, eps: float = 1e-8) -> array:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (norms at least ``eps``).

    Args:
        x1: the first array.
        x2: the second array (broadcast against ``x1``).
        dim: the dimension.
        eps: the smallest norm.

    Returns:
        The similarities.
    """
    try:
        shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    except ValueError:
        raise ValueError(
            f"cosine_similarity: x1 of shape {tuple(x1.shape)} and x2 of shape "
            f"{tuple(x2.shape)} do not broadcast"
        ) from None
    x1 = mx.broadcast_to(x1, shape)
    x2 = mx.broadcast_to(x2, shape)
    n1 = _no_grad_clamp(_vector_norm(x1, 2, dim, True), eps)
    n2 = _no_grad_clamp(_vector_norm(x2, 2, dim, True), eps)
    return mx.sum((x1 / n1) * (x2 / n2), axis=dim)


def pdist(input: array, p: float = 2.0) -> array:
    """Distances between every pair of rows of ``(N, M)``, upper triangle in row order.

    Args:
        input: ``(N, M)``.
        p: the norm's order.

    Returns:
        ``(N * (N - 1) / 2,)``.
    """
    if input.ndim != 2:
        raise InputError(f"pdist: only supports 2D tensors, got shape {tuple(input.shape)}")
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    diff = mx.take(input, mx.array(i), axis=0) - mx.take(input, mx.array(j), axis=0)
    if p == 2:
        # PyTorch's gradient of a zero distance is zero
        sq = mx.sum(diff * diff, axis=-1)
        safe = mx.where(sq > 0, sq, mx.ones_like(sq))
        return mx.where(sq > 0, mx.sqrt(safe), mx.zeros_like(sq))
    return _vector_norm(diff, p, -1, False)


# -- margin and embedding losses ----------------------------------------------------------------


def cosine_embedding_loss(
    input1: array,
    input2: array,
    target: array,
    margin: float = 0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """``1 - cos`` for targets 1, ``max(0, cos - margin)`` for targets -1.

    Args:
        input1: ``(N, D)`` or ``(D,)``.
        input2: same shape.
        target: ``(N,)`` or ``()`` of 1 / -1.
        margin: the margin for dissimilar pairs.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise InputError(
            f"cosine_embedding_loss: expected 1D or 2D inputs of one shape, got "
            f"{tuple(input1.shape)} and {tuple(input2.shape)}"
        )
    if target.ndim != input1.ndim - 1:
        raise InputError(
            f"cosine_embedding_loss: expected a {input1.ndim - 1}D target for inputs of shape "
            f"{tuple(input1.shape)}, got shape {tuple(target.shape)}"
        )
    axis = input1.ndim - 1
    prod = mx.sum(input1 * input2, axis=axis)
    m1 = mx.sum(input1 * input1, axis=axis) + 1e-12
    m2 = mx.sum(input2 * input2, axis=axis) + 1e-12
    cos = prod / mx.sqrt(m1 * m2)
    zero = mx.zeros_like(cos)
    pos = mx.where(target == 1, 1 - cos, zero)
    neg = mx.where(target == -1, mx.maximum(cos - margin, 0), zero)
    return reduce_loss(pos + neg, reduction, "cosine_embedding_loss")


def hinge_embedding_loss(
    input: array,
    target: array,
    margin: float = 1.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """``x`` where the target is 1, ``max(0, margin - x)`` where it is -1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    zero = mx.zeros_like(input)
    out = mx.where(target != 1, mx.maximum(margin - input, 0), zero) + mx.where(
        target != -1, input, zero
    )
    return reduce_loss(out, reduction, "hinge_embedding_loss")


def margin_ranking_loss(
    input1: array,
    input2: array,
    target: array,
    margin: float = 0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """``max(0, -target * (input1 - input2) + margin)``."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if not (input1.ndim == input2.ndim == target.ndim):
        raise InputError(
            f"margin_ranking_loss: all input tensors should have the same dimension, got "
            f"input1 {tuple(input1.shape)}, input2 {tuple(input2.shape)} and target "
            f"{tuple(target.shape)}"
        )
    out = mx.maximum(-target * (input1 - input2) + margin, 0)
    return reduce_loss(out, reduction, "margin_ranking_loss")


def soft_margin_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """``log(1 + exp(-target * input))`` (two-class logistic loss)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _same_shape("soft_margin_loss", input, target)
    return reduce_loss(mx.log1p(mx.exp(-target * input)), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(
    input: array,
    target: array,
    weight: array | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Per-class logistic loss averaged over the classes (last dimension).

    Args:
        input: ``(N, C)`` or ``(C,)`` logits.
        target: 0/1 targets of the same shape.
        weight: one weight per class.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    _same_shape("multilabel_soft_margin_loss", input, target)
    loss = -(target * _act.logsigmoid(input) + (1 - target) * _act.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    axis = input.ndim - 1
    loss = mx.sum(loss, axis=axis) / input.shape[axis]
    return reduce_loss(loss, reduction, "multilabel_soft_margin_loss")


def multi_margin_loss(
    input: array,
    target: array,
    p: int = 1,
    margin: float = 1.0,
    weight: array | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Multi-class hinge loss: ``sum_{i != y} max(0, margin - x[y] + x[i])^p / C``.

    Args:
        input: ``(N, C)`` or ``(C,)`` scores.
        target: ``(N,)`` or ``()`` class indices.
        p: 1 or 2.
        margin: the margin.
        weight: one weight per class (applied at the target class).
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got {p}")
    if input.ndim not in (1, 2) or target.size != (input.shape[0] if input.ndim == 2 else 1):
        raise InputError(
            f"multi_margin_loss: expected input (N, C) or (C,) and target (N,) or (), got "
            f"input {tuple(input.shape)} and target {tuple(target.shape)}"
        )
    x = mx.reshape(input, (1, -1)) if input.ndim == 1 else input
    t = mx.reshape(target, (-1,)).astype(mx.int64)
    c = x.shape[1]
    picked = mx.take_along_axis(x, mx.reshape(t, (-1, 1)), axis=1)
    term = mx.maximum(margin - picked + x, 0)
    if p == 2:
        term = term * term
    if weight is not None:
        term = term * mx.reshape(mx.take(weight, t, axis=0), (-1, 1))
    other = mx.reshape(t, (-1, 1)) != mx.reshape(mx.arange(c), (1, -1))
    loss = mx.sum(mx.where(other, term, mx.zeros_like(term)), axis=1) / c
    if input.ndim == 1:
        loss = mx.reshape(loss, ())
    return reduce_loss(loss, reduction, "multi_margin_loss")


def multilabel_margin_loss(
    input: array,
    target: array,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Multi-label hinge loss; each target row lists classes, ended by the first -1.

    Args:
        input: ``(N, C)`` or ``(C,)`` scores.
        target: int64 of the input's shape: class indices, padded with -1.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if input.ndim not in (1, 2) or tuple(target.shape) != tuple(input.shape):
        raise InputError(
            f"multilabel_margin_loss: expected input (N, C) or (C,) and a target of the same "
            f"shape, got input {tuple(input.shape)} and target {tuple(target.shape)}"
        )
    x = mx.reshape(input, (1, -1)) if input.ndim == 1 else input
    t = np.asarray(target).reshape(x.shape).astype(np.int64)
    n, c = x.shape
    counts = np.zeros((n, c), np.float64)
    for row in range(n):
        for j in t[row]:
            if j < 0:
                break
            if j >= c:
                raise InputError(f"multilabel_margin_loss: target {j} is out of range [0, {c})")
            counts[row, j] += 1
    is_target = (counts > 0).astype(np.float64)
    cnt = mx.array(counts).astype(x.dtype)
    others = mx.array(1.0 - is_target).astype(x.dtype)
    # hinge[n, j, i] = max(0, 1 - (x[n, j] - x[n, i]))
    hinge = mx.maximum(1 - (mx.expand_dims(x, 2) - mx.expand_dims(x, 1)), 0)
    loss = mx.sum(hinge * mx.expand_dims(cnt, 2) * mx.expand_dims(others, 1), axis=(1, 2)) / c
    if input.ndim == 1:
        loss = mx.reshape(loss, ())
    return reduce_loss(loss, reduction, "multilabel_margin_loss")


def triplet_margin_loss(
    anchor: array,
    positive: array,
    negative: array,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """``max(0, d(a, p) - d(a, n) + margin)`` with the pairwise ``p``-distance.

    Args:
        anchor: ``(N, D)`` or ``(D,)``.
        positive: same shape.
        negative: same shape.
        margin: the margin.
        p: the norm's order.
        eps: added to differences.
        swap: use ``min(d(a, n), d(p, n))`` as the negative distance.
        size_average: deprecated PyTorch flag.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise InputError(
            f"triplet_margin_loss: anchor {tuple(anchor.shape)}, positive "
            f"{tuple(positive.shape)} and negative {tuple(negative.shape)} must have the same "
            "number of dimensions"
        )
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = mx.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    loss = mx.maximum(margin + d_pos - d_neg, 0)
    return reduce_loss(loss, reduction, "triplet_margin_loss")


def triplet_margin_with_distance_loss(
    anchor: array,
    positive: array,
    negative: array,
    *,
    distance_function: Callable | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> array:
    """Triplet loss with any distance (default :func:`pairwise_distance`).

    Args:
        anchor: the anchors.
        positive: the positives.
        negative: the negatives.
        distance_function: ``f(x1, x2) -> distances``.
        margin: must be positive.
        swap: use ``min(d(a, n), d(p, n))`` as the negative distance.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    if margin <= 0:
        raise ValueError(
            f"triplet_margin_with_distance_loss: margin must be greater than 0, got {margin}"
        )
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = mx.minimum(d_neg, dist(positive, negative))
    loss = mx.maximum(margin + d_pos - d_neg, 0)
    return reduce_loss(loss, reduction, "triplet_margin_with_distance_loss")


# -- likelihood losses --------------------------------------------------------------------------


def poisson_nll_loss(
    input: array,
    target: array,
    log_input: bool = True,
    full: bool = False,
    size_average: Any = None,
    eps: float = 1e-8,
    reduce: Any = None,
    reduction: str = "mean",
) -> array:
    """Poisson negative log-likelihood.

    Args:
        input: log-rates (``log_input``) or rates.
        target: counts.
        log_input: ``exp(input) - target * input``, else ``input - target * log(input + eps)``.
        full: add Stirling's approximation of ``log(target!)`` (for targets above 1).
        size_average: deprecated PyTorch flag.
        eps: keeps the log finite.
        reduce: deprecated PyTorch flag.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    if log_input:
        loss = mx.exp(input) - target * input
    else:
        loss = input - target * mx.log(input + eps)
    if full:
        safe = mx.where(target > 1, target, mx.ones_like(target))
        stirling = safe * mx.log(safe) - safe + 0.5 * mx.log(2 * math.pi * safe)
        loss = loss + mx.where(target > 1, stirling, mx.zeros_like(stirling))
    return reduce_loss(loss, reduction, "poisson_nll_loss")


def gaussian_nll_loss(
    input: array,
    target: array,
    var: array | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> array:
    """Gaussian negative log-likelihood ``0.5 * (log(var) + (input - target)^2 / var)``.

    Args:
        input: the means.
        target: the samples.
        var: the variances (the input's shape, one fewer trailing dimension, a trailing 1,
            or a number).
        full: add ``0.5 * log(2 * pi)``.
        eps: the smallest variance (clamped without changing the gradient, as PyTorch).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.

    Returns:
        The loss.
    """
    if not isinstance(var, array):
        var = mx.full(input.shape, float(var), dtype=input.dtype)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = mx.expand_dims(var, -1)
        elif not (
            tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.ndim and var.shape[-1] == 1
        ):
            raise ValueError(
                f"gaussian_nll_loss: var of shape {tuple(var.shape)} does not match the input "
                f"of shape {tuple(input.shape)}"
            )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"gaussian_nll_loss: {reduction!r} is not a valid value for reduction")
    if bool(mx.any(var < 0).item()):
        raise ValueError("gaussian_nll_loss: var has negative entry/entries")
    var = _no_grad_clamp(var, eps)
    d = input - target
    loss = 0.5 * (mx.log(var) + d * d / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction, "gaussian_nll_loss")


def _logsumexp0(x: array) -> array:
    """``logsumexp`` over axis 0 that is ``-inf`` with a zero (not NaN) gradient where every
    term is ``-inf`` (unreachable CTC states)."""
    m = mx.stop_gradient(mx.max(x, axis=0))
    m = mx.where(mx.isfinite(m), m, mx.zeros_like(m))
    total = mx.sum(mx.exp(x - m), axis=0)
    ok = total > 0
    safe = mx.where(ok, total, mx.ones_like(total))
    return mx.where(ok, mx.log(safe) + m, mx.full(total.shape, -math.inf, dtype=total.dtype))


def ctc_loss(
    log_probs: array,
    targets: array,
    input_lengths: Any,
    target_lengths: Any,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> array:
    """Connectionist temporal classification loss (the forward algorithm in log space).

    Args:
        log_probs: ``(T, N, C)`` or ``(T, C)`` log-probabilities.
        targets: ``(N, S)`` padded or ``(sum(target_lengths),)`` concatenated labels.
        input_lengths: ``(N,)`` lengths of the inputs.
        target_lengths: ``(N,)`` lengths of the targets.
        blank: the blank label.
        reduction: ``"none"``, ``"mean"`` (each loss divided by its target length, then
            averaged) or ``"sum"``.
        zero_infinity: replace infinite losses (and their gradients) by zero.

    Returns:
        The loss.
    """
    unbatched = log_probs.ndim == 2
    lp = mx.expand_dims(log_probs, 1) if unbatched else log_probs
    if lp.ndim != 3:
        raise ValueError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got {lp.shape}")
    t_max, n, _ = lp.shape
    in_len = np.asarray(input_lengths).reshape(-1).astype(np.int64)
    tg_len = np.asarray(target_lengths).reshape(-1).astype(np.int64)
    tg = np.asarray(targets).astype(np.int64)
    if unbatched:
        tg = tg.reshape(1, -1)
    rows = []
    offset = 0
    for b in range(n):
        if tg.ndim == 1:
            rows.append(tg[offset : offset + tg_len[b]])
            offset += tg_len[b]
        else:
            rows.append(tg[b, : tg_len[b]])
    # every sample at once: labels extended with blanks, padded to the longest
    s_max = 2 * max((len(r) for r in rows), default=0) + 1
    ext = np.full((n, s_max), blank, np.int64)
    for b, labels in enumerate(rows):
        ext[b, 1 : 2 * len(labels) : 2] = labels
    skip = np.zeros((n, s_max), bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    emit = mx.take_along_axis(  # (N, T, S): each state's log-probability at each step
        mx.transpose(lp, (1, 0, 2)),
        mx.array(np.ascontiguousarray(np.broadcast_to(ext[:, None, :], (n, t_max, s_max)))),
        axis=2,
    )
    init = np.full((n, s_max), -math.inf)
    init[:, :2] = 0.0
    alpha = emit[:, 0] + const(init, emit)
    blocked = const(np.where(skip, 0.0, -math.inf), emit)
    pad1 = mx.full((n, 1), -math.inf, dtype=emit.dtype)
    pad2 = mx.full((n, 2), -math.inf, dtype=emit.dtype)
    for t in range(1, int(in_len.max(initial=1))):
        a1 = mx.concatenate([pad1, alpha[:, :-1]], axis=1)
        a2 = mx.concatenate([pad2, alpha[:, :-2]], axis=1)[:, :s_max] + blocked
        new = _logsumexp0(mx.stack([alpha, a1, a2])) + emit[:, t]
        alpha = mx.where(const((t < in_len)[:, None], emit) > 0, new, alpha)
    last = np.array([2 * len(r) for r in rows])
    ends = np.stack([last, np.maximum(last - 1, 0)], axis=1)
    tails = mx.take_along_axis(alpha, mx.array(ends), axis=1)
    tails = tails + const(np.where(np.stack([last >= 0, last >= 1], 1), 0.0, -math.inf), tails)
    losses = -_logsumexp0(mx.transpose(tails))
    loss = losses
    if zero_infinity:
        loss = mx.where(mx.isinf(loss), mx.zeros_like(loss), loss)
    if reduction == "mean":
        lens = mx.array(np.maximum(tg_len, 1)).astype(loss.dtype)
        return mx.mean(loss / lens)
    if unbatched and reduction == "none":
        loss = mx.reshape(loss, ())
    return reduce_loss(loss, reduction, "ctc_loss")
