"""MLX's loss functions (``nn.losses.mse_loss``, ``nn.losses.cross_entropy``, ...).

The functions have the signatures and defaults of MLX's ``mlx.nn.losses`` (``cross_entropy``
and the other classification losses default to ``reduction="none"``). PyTorch's loss classes
(``nn.MSELoss``, ``nn.CrossEntropyLoss``, ...) live in :mod:`chainrule.nn.losses_torch`; they
are also reachable here under their names (``nn.losses.MSELoss``), as before the split.

Every loss is built from chainrule operations, so it differentiates to any order; the checks
at the boundary (shapes named, indices in range, probabilities in ``[0, 1]``) are in
:mod:`chainrule.nn.losses_checks`.
"""

from __future__ import annotations

from .. import core as mx
from ..core.array import array
from .losses_checks import (
    _HALF_LOG_2PI,
    _INPUTS,
    _LOG2,
    Reduction,
    _arr,
    _bce,
    _class_axis,
    _huber,
    _index_shape_problem,
    _index_targets,
    _pairwise,
    _pick,
    _reduce,
    _same_shape,
    _smooth_l1,
)
from .losses_torch import (  # PyTorch's classes, also nn.losses.MSELoss (as before the split)
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
    "binary_cross_entropy",
    "cosine_similarity_loss",
    "cross_entropy",
    "gaussian_nll_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div_loss",
    "l1_loss",
    "log_cosh_loss",
    "margin_ranking_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
    "triplet_loss",
]


# -- MLX's functional losses -------------------------------------------------------------------


def cross_entropy(
    logits: array,
    targets: array,
    weights: array | None = None,
    axis: int = -1,
    label_smoothing: float = 0.0,
    reduction: Reduction = "none",
) -> array:
    """Cross entropy between unnormalised logits and targets (MLX ``nn.losses.cross_entropy``).

    Args:
        logits: The unnormalised logits.
        targets: Class indices (integers, shaped like ``logits`` without ``axis``) or
            probabilities (shaped like ``logits``).
        weights: Optional weights shaped like the unreduced loss.
        axis: The class axis. Default: ``-1``.
        label_smoothing: Label smoothing factor in ``[0, 1)``. Default: ``0``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The cross entropy loss.
    """
    who = "cross_entropy"
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"{who}: label_smoothing must be in [0, 1), got {label_smoothing}")
    logits, targets = _arr(logits), _arr(targets)
    ax = _class_axis(who, axis, logits.ndim)
    # The loss depends only on the gaps between logits: shift by the (constant) maximum first,
    # or a large shared offset rounds the gaps away before the subtraction (as MLX does).
    logits = logits - mx.stop_gradient(mx.max(logits, axis=ax, keepdims=True))
    if targets.ndim == logits.ndim:
        if targets.shape != logits.shape:
            raise ValueError(
                _index_shape_problem(who, "logits", logits.shape, "targets", targets, ax)
            )
        score = mx.sum(logits * targets, axis=ax)
    else:
        _index_targets(who, logits, targets, ax)
        score = _pick(logits, targets, ax)
    loss = mx.logsumexp(logits, axis=ax)
    if label_smoothing > 0:
        loss = loss - (1 - label_smoothing) * score - label_smoothing * mx.mean(logits, axis=ax)
    else:
        loss = loss - score
    if weights is not None:
        weights = _arr(weights)
        if weights.shape != loss.shape:
            raise ValueError(
                f"{who}: weights shape {weights.shape} does not match the loss shape {loss.shape}"
            )
        loss = loss * weights
    return _reduce(loss, reduction, who)


def binary_cross_entropy(
    inputs: array,
    targets: array,
    weights: array | None = None,
    with_logits: bool = True,
    reduction: Reduction = "mean",
) -> array:
    """Binary cross entropy (MLX ``nn.losses.binary_cross_entropy``).

    Args:
        inputs: Logits when ``with_logits`` is ``True``, else probabilities in ``[0, 1]``.
        targets: Binary targets (``0``/``1``, integers accepted), shaped like ``inputs``.
        weights: Optional weights shaped like ``inputs``.
        with_logits: Whether ``inputs`` are logits. Default: ``True``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.

    Returns:
        The binary cross entropy; with probabilities the logarithms are clamped at about -100.
    """
    if weights is not None:
        weights = _arr(weights)
        if weights.shape != tuple(_arr(inputs).shape):
            raise ValueError(
                f"binary_cross_entropy: weights shape {weights.shape} does not match the loss "
                f"shape {_arr(inputs).shape}"
            )
    return _bce("binary_cross_entropy", inputs, targets, weights, with_logits, reduction)


def l1_loss(predictions: array, targets: array, reduction: Reduction = "mean") -> array:
    """Mean absolute error (MLX ``nn.losses.l1_loss``).

    Args:
        predictions: The predicted values.
        targets: The target values, shaped like ``predictions``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.

    Returns:
        The L1 loss.
    """
    predictions, targets = _pairwise("l1_loss", predictions, targets)
    return _reduce(mx.abs(predictions - targets), reduction, "l1_loss")


def mse_loss(predictions: array, targets: array, reduction: Reduction = "mean") -> array:
    """Mean squared error (MLX ``nn.losses.mse_loss``).

    Args:
        predictions: The predicted values.
        targets: The target values, shaped like ``predictions``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.

    Returns:
        The mean squared error.
    """
    predictions, targets = _pairwise("mse_loss", predictions, targets)
    return _reduce(mx.square(predictions - targets), reduction, "mse_loss")


def nll_loss(inputs: array, targets: array, axis: int = -1, reduction: Reduction = "none") -> array:
    """Negative log likelihood of class indices (MLX ``nn.losses.nll_loss``).

    Args:
        inputs: Log probabilities.
        targets: Class indices, shaped like ``inputs`` without ``axis``.
        axis: The class axis. Default: ``-1``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The NLL loss.
    """
    inputs, targets = _arr(inputs), _arr(targets)
    ax = _class_axis("nll_loss", axis, inputs.ndim)
    _index_targets("nll_loss", inputs, targets, ax)
    return _reduce(-_pick(inputs, targets, ax), reduction, "nll_loss")


def gaussian_nll_loss(
    inputs: array,
    targets: array,
    vars: array,
    full: bool = False,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
) -> array:
    """Negative log likelihood of a Gaussian (MLX ``nn.losses.gaussian_nll_loss``).

    Args:
        inputs: The predicted means.
        targets: Samples, shaped like ``inputs``.
        vars: The predicted variances, shaped like ``inputs`` (clamped below at ``eps``).
        full: Whether to add the constant ``0.5 * log(2 pi)``. Default: ``False``.
        eps: Lower bound of the variances. Default: ``1e-6``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.

    Returns:
        The Gaussian NLL loss.
    """
    who = "gaussian_nll_loss"
    inputs, targets, vars = _arr(inputs), _arr(targets), _arr(vars)
    _same_shape(who, inputs, targets, "inputs", "targets")
    _same_shape(who, inputs, vars, "inputs", "vars")
    vars = mx.maximum(vars, eps)
    loss = 0.5 * (mx.log(vars) + mx.square(targets - inputs) / vars)
    if full:
        loss = loss + _HALF_LOG_2PI
    return _reduce(loss, reduction, who)


def kl_div_loss(
    inputs: array, targets: array, axis: int = -1, reduction: Reduction = "none"
) -> array:
    """Kullback-Leibler divergence of two log-distributions (MLX ``nn.losses.kl_div_loss``).

    Computes ``sum(exp(targets) * (targets - inputs), axis)``.

    Args:
        inputs: Log probabilities of the predicted distribution.
        targets: Log probabilities of the target distribution, shaped like ``inputs``.
        axis: The distribution axis. Default: ``-1``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The KL divergence.
    """
    inputs, targets = _arr(inputs), _arr(targets)
    _same_shape("kl_div_loss", inputs, targets, "inputs", "targets")
    loss = mx.sum(mx.exp(targets) * (targets - inputs), axis=axis)
    return _reduce(loss, reduction, "kl_div_loss")


def smooth_l1_loss(
    predictions: array, targets: array, beta: float = 1.0, reduction: Reduction = "mean"
) -> array:
    """Smooth L1 loss: squared below ``beta``, absolute above (MLX ``nn.losses.smooth_l1_loss``).

    Args:
        predictions: The predicted values.
        targets: The target values, shaped like ``predictions``.
        beta: Where the loss turns from quadratic to linear. Default: ``1.0``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.

    Returns:
        The smooth L1 loss.
    """
    return _smooth_l1("smooth_l1_loss", predictions, targets, beta, reduction)


def triplet_loss(
    anchors: array,
    positives: array,
    negatives: array,
    axis: int = -1,
    p: int = 2,
    margin: float = 1.0,
    eps: float = 1e-6,
    reduction: Reduction = "none",
) -> array:
    """Triplet margin loss (MLX ``nn.losses.triplet_loss``).

    Computes ``max(||a - p||_p - ||a - n||_p + margin, 0)`` with
    ``||d||_p = (sum(|d|^p) + eps)^(1/p)``.

    Args:
        anchors: The anchor samples.
        positives: The positive samples, shaped like ``anchors``.
        negatives: The negative samples, shaped like ``anchors``.
        axis: The feature axis. Default: ``-1``.
        p: The power in the distance. Default: ``2``.
        margin: The margin. Default: ``1.0``.
        eps: Added to the sums before the ``1/p`` power. Default: ``1e-6``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The triplet loss.
    """
    who = "triplet_loss"
    anchors, positives, negatives = _arr(anchors), _arr(positives), _arr(negatives)
    _same_shape(who, anchors, positives, "anchors", "positives")
    _same_shape(who, anchors, negatives, "anchors", "negatives")
    pos = mx.power(mx.sum(mx.power(mx.abs(anchors - positives), p), axis=axis) + eps, 1.0 / p)
    neg = mx.power(mx.sum(mx.power(mx.abs(anchors - negatives), p), axis=axis) + eps, 1.0 / p)
    return _reduce(mx.maximum(pos - neg + margin, 0), reduction, who)


def hinge_loss(inputs: array, targets: array, reduction: Reduction = "none") -> array:
    """Hinge loss ``max(0, 1 - targets * inputs)`` (MLX ``nn.losses.hinge_loss``).

    Args:
        inputs: The predicted values.
        targets: Targets of -1 or 1, shaped like ``inputs``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The hinge loss.
    """
    inputs, targets = _pairwise("hinge_loss", inputs, targets, _INPUTS)
    return _reduce(mx.maximum(1 - inputs * targets, 0), reduction, "hinge_loss")


def huber_loss(
    inputs: array, targets: array, delta: float = 1.0, reduction: Reduction = "none"
) -> array:
    """Huber loss: ``0.5 a^2`` for ``|a| <= delta``, else ``delta (|a| - delta / 2)`` (MLX).

    Args:
        inputs: The predicted values.
        targets: The target values, shaped like ``inputs``.
        delta: Where the loss turns from quadratic to linear. Default: ``1.0``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The Huber loss.
    """
    return _huber("huber_loss", inputs, targets, delta, reduction)


def log_cosh_loss(inputs: array, targets: array, reduction: Reduction = "none") -> array:
    """Log-cosh loss ``log(cosh(inputs - targets))`` (MLX ``nn.losses.log_cosh_loss``).

    Args:
        inputs: The predicted values.
        targets: The target values, shaped like ``inputs``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The log-cosh loss, computed stably as ``logaddexp(e, -e) - log 2``.
    """
    inputs, targets = _pairwise("log_cosh_loss", inputs, targets, _INPUTS)
    errors = inputs - targets
    return _reduce(mx.logaddexp(errors, -errors) - _LOG2, reduction, "log_cosh_loss")


def cosine_similarity_loss(
    x1: array, x2: array, axis: int = 1, eps: float = 1e-8, reduction: Reduction = "none"
) -> array:
    """Cosine similarity along ``axis`` (MLX ``nn.losses.cosine_similarity_loss``).

    Args:
        x1: The first inputs.
        x2: The second inputs, shaped like ``x1``.
        axis: The embedding axis. Default: ``1``.
        eps: Lower bound of the product of the norms. Default: ``1e-8``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        ``sum(x1 * x2) / max(|x1| |x2|, eps)`` along ``axis``.
    """
    who = "cosine_similarity_loss"
    x1, x2 = _arr(x1), _arr(x2)
    _same_shape(who, x1, x2, "x1", "x2")
    norms = mx.sqrt(mx.sum(mx.square(x1), axis=axis) * mx.sum(mx.square(x2), axis=axis))
    loss = mx.sum(x1 * x2, axis=axis) / mx.maximum(norms, eps)
    return _reduce(loss, reduction, who)


def margin_ranking_loss(
    inputs1: array,
    inputs2: array,
    targets: array,
    margin: float = 0.0,
    reduction: Reduction = "none",
) -> array:
    """Margin ranking loss ``max(0, -targets * (inputs1 - inputs2) + margin)`` (MLX).

    Args:
        inputs1: Scores of the first inputs.
        inputs2: Scores of the second inputs, shaped like ``inputs1``.
        targets: 1 where ``inputs1`` should rank higher, -1 otherwise; shaped like ``inputs1``.
        margin: The margin. Default: ``0.0``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The margin ranking loss.
    """
    who = "margin_ranking_loss"
    inputs1, inputs2, targets = _arr(inputs1), _arr(inputs2), _arr(targets)
    _same_shape(who, inputs1, inputs2, "inputs1", "inputs2")
    _same_shape(who, inputs1, targets, "inputs1", "targets")
    loss = mx.maximum(-targets * (inputs1 - inputs2) + margin, 0)
    return _reduce(loss, reduction, who)
