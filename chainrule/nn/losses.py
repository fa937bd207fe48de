"""Loss functions: MLX's functional losses and PyTorch's loss modules, on one set of definitions.

The functions (``mse_loss``, ``cross_entropy``, ...) have the signatures and defaults of MLX's
``mlx.nn.losses`` (``cross_entropy`` and the other classification losses default to
``reduction="none"``). The classes (``MSELoss``, ``CrossEntropyLoss``, ...) have PyTorch's names,
arguments and semantics (``reduction="mean"``, class axis 1, per-class weights, ``ignore_index``)
and call the same code.

Every loss is built from chainrule operations, so it differentiates to any order. Inputs are
checked where they enter: a prediction and a target of different shapes are refused naming both
shapes (a loss never broadcasts ``(N, 1)`` against ``(N,)``), class indices out of range are
refused, and ``BCELoss`` refuses values outside ``[0, 1]``. Logits enter through stable forms
(``logaddexp``, ``logsumexp``), so logits of +-1e4 give finite losses and gradients.
"""

from __future__ import annotations

import math
from typing import Literal

from .. import core as mx
from ..core.array import array
from ..core.backend import xp
from ..core.ops import _out_of_range

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

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = ("none", "mean", "sum")
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# -- boundary checks ---------------------------------------------------------------------------


def _arr(x) -> array:
    """An argument as an array (lists and NumPy data follow ``mx.array``'s rules)."""
    return x if type(x) is array else mx.array(x)


def _check_reduction(who: str, reduction: str, allowed: tuple = _REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"{who}: invalid reduction {reduction!r}; must be one of {allowed}")
    return reduction


def _reduce(loss: array, reduction: Reduction = "none", who: str = "loss") -> array:
    """Apply ``reduction`` (``"none"``, ``"mean"`` or ``"sum"``) to an elementwise loss."""
    if reduction == "mean":
        return mx.mean(loss)
    if reduction == "sum":
        return mx.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{who}: invalid reduction {reduction!r}; must be one of {_REDUCTIONS}")


def _squeeze_to(shape: tuple, target: tuple) -> str | None:
    """``.squeeze(axis)`` (as text) that turns ``shape`` into ``target``, if one does."""
    if len(shape) == len(target) + 1:
        for k in range(len(shape) - 1, -1, -1):
            if shape[k] == 1 and shape[:k] + shape[k + 1 :] == target:
                return f".squeeze({k - len(shape)})"
    if tuple(d for d in shape if d != 1) == target:
        return ".squeeze()"
    return None


def _shape_fixes(a_shape: tuple, b_shape: tuple, a_name: str, b_name: str) -> str:
    """How to make ``b_shape`` and ``a_shape`` agree, as a sentence."""
    if math.prod(a_shape) == math.prod(b_shape):
        fixes = []
        for x, x_shape, y_shape in ((a_name, a_shape, b_shape), (b_name, b_shape, a_shape)):
            squeeze = _squeeze_to(x_shape, y_shape)
            if squeeze:
                fixes.append(f"{x}{squeeze}")
        fixes.append(f"{b_name}.reshape{a_shape}")
        return "make them one shape, e.g. " + " or ".join(fixes)
    try:
        joint = xp.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        return (
            "check that the right arrays are passed; if they are, reshape or squeeze them "
            "to one shape"
        )
    return (
        f"broadcasting would silently pair them up into shape {joint}: reshape or squeeze them "
        f"to one shape, or if each {b_name} value really stands for several {a_name} values, "
        f"broadcast it yourself: mx.broadcast_to({b_name}, {a_shape})"
    )


def _shape_problem(who: str, a: array, b: array, a_name: str, b_name: str) -> str | None:
    if a.shape == b.shape:
        return None
    return (
        f"{who}: {a_name} shape {a.shape} does not match {b_name} shape {b.shape} "
        f"(losses do not broadcast); {_shape_fixes(a.shape, b.shape, a_name, b_name)}"
    )


def _index_shape_problem(who: str, x_name: str, x_shape: tuple, t_name: str, t, ax: int) -> str:
    """Class-index targets of the wrong shape: name both shapes and the fix."""
    expected = x_shape[:ax] + x_shape[ax + 1 :]
    fix = ""
    if math.prod(t.shape) == math.prod(expected):
        squeeze = _squeeze_to(t.shape, expected)
        fix = f"; e.g. {t_name}{squeeze or '.reshape' + str(expected)}"
    return (
        f"{who}: {t_name} shape {t.shape} does not fit {x_name} shape {x_shape}: class "
        f"indices need shape {expected} (classes on axis {ax}){fix}; probabilities need "
        f"shape {x_shape}"
    )


def _same_shape(who: str, a: array, b: array, a_name: str, b_name: str) -> None:
    """Refuse two arguments of different shapes, naming both (losses never broadcast)."""
    if a.shape != b.shape:
        raise ValueError(_shape_problem(who, a, b, a_name, b_name))


def _class_axis(who: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{who}: axis {axis} is out of range for logits with {ndim} dimensions")
    return axis % ndim


def _check_indices(who: str, targets: array, num_classes: int) -> None:
    """Class indices must be integers in ``[0, num_classes)``."""
    d = targets._data
    if d.dtype.kind not in "iu":
        raise ValueError(
            f"{who}: class indices must be integers, got {targets.dtype}; to pass probabilities, "
            "give targets the logits' shape"
        )
    # one boolean test first: under mx.compile it is a guard that holds for valid labels
    if d.size and _out_of_range(d, num_classes):
        lo, hi = int(d.min()), int(d.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{who}: class index {bad} is out of range for {num_classes} classes "
                f"(indices must lie in [0, {num_classes - 1}])"
            )


def _index_targets(who: str, logits: array, targets: array, ax: int) -> None:
    expected = logits.shape[:ax] + logits.shape[ax + 1 :]
    if targets.shape != expected:
        raise ValueError(_index_shape_problem(who, "logits", logits.shape, "targets", targets, ax))
    _check_indices(who, targets, logits.shape[ax])


def _pick(logits: array, targets, ax: int) -> array:
    """``logits`` at the class ``targets`` along axis ``ax`` (that axis removed).

    One integer-array index (``x[arange(N), t]`` in 2-D): cheaper than ``take_along_axis``.
    """
    td = targets._data if type(targets) is array else targets
    shape = logits.shape
    nd = len(shape)
    idx = []
    j = 0  # position of dimension i among the targets' dimensions
    for i in range(nd):
        if i == ax:
            idx.append(td)
        else:
            view = [1] * (nd - 1)
            view[j] = shape[i]
            idx.append(xp.arange(shape[i]).reshape(view))
            j += 1
    return logits[tuple(idx)]


_LOG_FLOOR: dict = {}


def _log_floor(dtype) -> float:
    """The smallest positive value whose log stays finite in ``dtype``, near ``exp(-100)``.

    PyTorch clamps BCE's logarithms at -100; ``log(maximum(p, floor))`` does the same without
    taking ``log(0)``, and ``maximum`` sends no gradient to the clamped side, so the gradient stays
    finite when a probability is exactly 0 or 1.
    """
    floor = _LOG_FLOOR.get(dtype)
    if floor is None:
        info = xp.finfo(dtype)
        floor = _LOG_FLOOR[dtype] = max(math.exp(-100.0), float(info.smallest_subnormal))
    return floor


def _probability_problem(inputs: array) -> str | None:
    """Why ``inputs`` are not probabilities in ``[0, 1]``, or ``None`` when they are."""
    d = inputs._data
    if d.size:
        lo, hi = d.min(), d.max()
        if not (lo >= 0 and hi <= 1):  # also catches NaN
            return (
                f"inputs must be probabilities in [0, 1], got values in "
                f"[{float(lo):.4g}, {float(hi):.4g}]; for raw scores (logits) use "
                "BCEWithLogitsLoss or binary_cross_entropy(..., with_logits=True)"
            )
    return None


# -- shared kernels ----------------------------------------------------------------------------


def _bce(
    who: str,
    inputs,
    targets,
    weights,
    with_logits: bool,
    reduction: str,
    pos_weight=None,
    names: tuple = ("inputs", "targets"),
) -> array:
    inputs, targets = _arr(inputs), _arr(targets)
    shape = _shape_problem(who, inputs, targets, *names)
    values = None if with_logits else _probability_problem(inputs)
    if shape is not None:  # name every mistake at once
        raise ValueError(shape if values is None else f"{shape}; also, {values}")
    if values is not None:
        raise ValueError(f"{who}: {values}")
    if with_logits:
        if pos_weight is None:
            # softplus(x) - x * y, with softplus as logaddexp(0, x): finite for any x
            loss = mx.logaddexp(0.0, inputs) - inputs * targets
        else:
            # PyTorch's form: (1 - y) x + (1 + (pw - 1) y) softplus(-x)
            log_weight = (_arr(pos_weight) - 1) * targets + 1
            loss = (1 - targets) * inputs + log_weight * mx.logaddexp(0.0, -inputs)
    else:
        floor = _log_floor(inputs._data.dtype)
        log_p = mx.log(mx.maximum(inputs, floor))
        log_q = mx.log(mx.maximum(1 - inputs, floor))
        loss = -(log_q + targets * (log_p - log_q))
    if weights is not None:
        loss = loss * weights
    return _reduce(loss, reduction, who)


# the argument names as the user wrote them: MLX's functions and PyTorch's ``forward``
_PREDICTIONS = ("predictions", "targets")
_INPUTS = ("inputs", "targets")
_TORCH = ("input", "target")


def _pairwise(who: str, predictions, targets, names: tuple = _PREDICTIONS) -> tuple[array, array]:
    predictions, targets = _arr(predictions), _arr(targets)
    _same_shape(who, predictions, targets, *names)
    return predictions, targets


def _smooth_l1(
    who: str, predictions, targets, beta: float, reduction: str, names: tuple = _PREDICTIONS
) -> array:
    if beta < 0:
        raise ValueError(f"{who}: beta must be non-negative, got {beta}")
    predictions, targets = _pairwise(who, predictions, targets, names)
    diff = mx.abs(predictions - targets)
    if beta == 0:  # the quadratic zone vanishes: plain L1 (and no division by zero)
        return _reduce(diff, reduction, who)
    loss = mx.where(diff < beta, (0.5 / beta) * mx.square(diff), diff - 0.5 * beta)
    return _reduce(loss, reduction, who)


def _huber(
    who: str, inputs, targets, delta: float, reduction: str, names: tuple = _INPUTS
) -> array:
    if delta <= 0:
        raise ValueError(f"{who}: delta must be positive, got {delta}")
    inputs, targets = _pairwise(who, inputs, targets, names)
    abs_errors = mx.abs(inputs - targets)
    quadratic = mx.minimum(abs_errors, delta)
    loss = 0.5 * mx.square(quadratic) + delta * (abs_errors - quadratic)
    return _reduce(loss, reduction, who)


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

    Computes ``max(sqrt(sum((a - p)^p) + eps) - sqrt(sum((a - n)^p) + eps) + margin, 0)``.

    Args:
        anchors: The anchor samples.
        positives: The positive samples, shaped like ``anchors``.
        negatives: The negative samples, shaped like ``anchors``.
        axis: The feature axis. Default: ``-1``.
        p: The power in the distance. Default: ``2``.
        margin: The margin. Default: ``1.0``.
        eps: Added under the square roots. Default: ``1e-6``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"none"``.

    Returns:
        The triplet loss.
    """
    who = "triplet_loss"
    anchors, positives, negatives = _arr(anchors), _arr(positives), _arr(negatives)
    _same_shape(who, anchors, positives, "anchors", "positives")
    _same_shape(who, anchors, negatives, "anchors", "negatives")
    pos = mx.sqrt(mx.sum(mx.power(anchors - positives, p), axis=axis) + eps)
    neg = mx.sqrt(mx.sum(mx.power(anchors - negatives, p), axis=axis) + eps)
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


# -- PyTorch's semantics, shared by the loss modules ----------------------------------------------


def _torch_class_axis(x: array) -> int:
    return 1 if x.ndim >= 2 else 0


def _check_class_weight(who: str, weight: array, num_classes: int) -> None:
    if weight.shape != (num_classes,):
        raise ValueError(
            f"{who}: weight must have one entry per class, shape ({num_classes},), "
            f"got {weight.shape}"
        )


def _class_weight(who: str, weight: array, num_classes: int, ax: int, ndim: int) -> array:
    """``weight`` (one entry per class) reshaped to broadcast along the class axis."""
    _check_class_weight(who, weight, num_classes)
    shape = [1] * ndim
    shape[ax] = num_classes
    return mx.reshape(weight, tuple(shape))


def _indexed_nll(
    who: str,
    x: array,
    target: array,
    weight: array | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    log_probs: bool,
) -> array:
    """PyTorch's ``nll_loss`` / ``cross_entropy`` with class-index targets.

    ``x`` holds log probabilities when ``log_probs`` is set, else logits (then
    ``-log_softmax(x)[y] = logsumexp(x) - x[y]``, which skips building ``log_softmax``).
    """
    ax = _torch_class_axis(x)
    num_classes = x.shape[ax]
    expected = x.shape[:ax] + x.shape[ax + 1 :]
    if target.shape != expected:
        raise ValueError(_index_shape_problem(who, "input", x.shape, "target", target, ax))
    td = target._data
    if td.dtype.kind not in "iu":
        raise ValueError(
            f"{who}: class indices must be integers, got {target.dtype}; to pass "
            "probabilities, give the target the input's shape"
        )
    ignored = td == ignore_index
    any_ignored = bool(ignored.any())
    if any_ignored:
        td = xp.where(ignored, 0, td)
        kept = mx.array(~ignored)
    if td.size and _out_of_range(td, num_classes):
        lo, hi = int(td.min()), int(td.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{who}: class index {bad} is out of range for {num_classes} classes (indices "
                f"must lie in [0, {num_classes - 1}], or equal ignore_index={ignore_index})"
            )
    picked = _pick(x, td, ax)
    if log_probs:
        nll = -picked
    else:
        lse = mx.logsumexp(x, axis=ax)
        nll = lse - picked
    # per-element weight w[y] (0 where ignored); None means every weight is 1
    if weight is not None:
        w_y = mx.take(weight, mx.array(td), axis=0)
        if any_ignored:
            w_y = w_y * kept.astype(w_y.dtype)
    elif any_ignored:
        w_y = kept.astype(x.dtype)
    else:
        w_y = None
    if w_y is not None:
        nll = nll * w_y
    if label_smoothing > 0:
        # the uniform part: -sum_c w_c log p_c
        if weight is not None:
            wb = _class_weight(who, weight, num_classes, ax, x.ndim)
            logp_sum = mx.sum(x * wb, axis=ax)
            if not log_probs:
                logp_sum = logp_sum - mx.sum(weight) * lse
        else:
            logp_sum = mx.sum(x, axis=ax)
            if not log_probs:
                logp_sum = logp_sum - num_classes * lse
        smooth = -logp_sum
        if any_ignored:
            smooth = smooth * kept.astype(smooth.dtype)
        loss = (1 - label_smoothing) * nll + (label_smoothing / num_classes) * smooth
    else:
        loss = nll
    if reduction == "none":
        return loss
    if reduction == "sum":
        return mx.sum(loss)
    if w_y is None:
        return mx.mean(loss)
    return mx.sum(loss) / mx.sum(w_y)


def _torch_cross_entropy(
    input: array,
    target: array,
    weight: array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    who: str = "cross_entropy",
) -> array:
    """PyTorch's ``F.cross_entropy``: classes on axis 1, indices or probabilities as targets."""
    x, t = _arr(input), _arr(target)
    if x.ndim == 0:
        raise ValueError(f"{who}: input must have a class axis, got a scalar")
    if weight is not None:
        weight = _arr(weight)
    if t.shape == x.shape and t._data.dtype.kind == "f":
        ax = _torch_class_axis(x)
        num_classes = x.shape[ax]
        logp = mx.log_softmax(x, axis=ax)
        if label_smoothing > 0:
            t = t * (1 - label_smoothing) + label_smoothing / num_classes
        prod = logp * t
        if weight is not None:
            prod = prod * _class_weight(who, weight, num_classes, ax, x.ndim)
        return _reduce(-mx.sum(prod, axis=ax), reduction, who)
    if weight is not None:
        _check_class_weight(who, weight, x.shape[_torch_class_axis(x)])
    return _indexed_nll(who, x, t, weight, ignore_index, reduction, label_smoothing, False)


def _torch_nll_loss(
    input: array,
    target: array,
    weight: array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    who: str = "nll_loss",
) -> array:
    """PyTorch's ``F.nll_loss``: log probabilities with classes on axis 1, index targets."""
    x, t = _arr(input), _arr(target)
    if x.ndim == 0:
        raise ValueError(f"{who}: input must have a class axis, got a scalar")
    if weight is not None:
        weight = _arr(weight)
        _check_class_weight(who, weight, x.shape[_torch_class_axis(x)])
    return _indexed_nll(who, x, t, weight, ignore_index, reduction, 0.0, True)


def _torch_kl_div(
    input: array,
    target: array,
    reduction: str = "mean",
    log_target: bool = False,
    who: str = "kl_div",
) -> array:
    """PyTorch's ``F.kl_div``: ``input`` holds log probabilities; ``batchmean`` divides by N."""
    x, t = _arr(input), _arr(target)
    _same_shape(who, x, t, "input", "target")
    if log_target:
        loss = mx.exp(t) * (t - x)
    else:
        # t log t with 0 log 0 = 0; the inner where keeps log's argument positive
        positive = t > 0
        loss = t * (mx.log(mx.where(positive, t, 1)) - x)
    if reduction == "batchmean":
        total = mx.sum(loss)
        return total / x.shape[0] if x.ndim else total
    return _reduce(loss, reduction, who)


# -- PyTorch's loss modules --------------------------------------------------------------------

try:  # the loss modules are Modules once chainrule.nn.Module exists
    from .module import Module as _Base
except ImportError:  # pragma: no cover - only while chainrule.nn is being assembled

    class _Base:  # type: ignore[no-redef]
        """Stand-in for ``chainrule.nn.Module``: a loss is a callable object."""


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated ``size_average`` / ``reduce`` flags, mapped onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(_Base):
    """Base of the PyTorch-named losses: ``loss_fn(input, target)`` runs ``forward``."""

    _reductions: tuple = _REDUCTIONS

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        reduction = _legacy_reduction(size_average, reduce, reduction)
        self.reduction = _check_reduction(type(self).__name__, reduction, self._reductions)

    def __call__(self, *args, **kwargs) -> array:
        return self.forward(*args, **kwargs)

    def _weight_array(self, weight) -> array | None:
        # kept under a private key: a loss weight is a constant, not a trainable parameter
        return None if weight is None else _arr(weight)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class MSELoss(_Loss):
    """Mean squared error (PyTorch ``nn.MSELoss``); shapes must match exactly.

    Args:
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
    """

    def forward(self, input: array, target: array) -> array:
        """Return the loss of ``input`` against ``target``."""
        input, target = _pairwise("MSELoss", input, target, _TORCH)
        return _reduce(mx.square(input - target), self.reduction, "MSELoss")


class L1Loss(_Loss):
    """Mean absolute error (PyTorch ``nn.L1Loss``); shapes must match exactly.

    Args:
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
    """

    def forward(self, input: array, target: array) -> array:
        """Return the loss of ``input`` against ``target``."""
        input, target = _pairwise("L1Loss", input, target, _TORCH)
        return _reduce(mx.abs(input - target), self.reduction, "L1Loss")


class BCELoss(_Loss):
    """Binary cross entropy of probabilities (PyTorch ``nn.BCELoss``).

    Inputs outside ``[0, 1]`` are refused (use :class:`BCEWithLogitsLoss` for raw scores);
    integer 0/1 targets are accepted; the logarithms are clamped at about -100 as in PyTorch.

    Args:
        weight: Optional rescaling weight, broadcast against the input.
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
    """

    def __init__(
        self, weight: array | None = None, size_average=None, reduce=None, reduction: str = "mean"
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self._loss_weight = self._weight_array(weight)

    @property
    def weight(self) -> array | None:
        """The rescaling weight, or ``None``."""
        return self._loss_weight

    def forward(self, input: array, target: array) -> array:
        """Return the loss of probabilities ``input`` against binary ``target``."""
        return _bce(
            "BCELoss", input, target, self._loss_weight, False, self.reduction, None, _TORCH
        )


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy of logits, computed stably (PyTorch ``nn.BCEWithLogitsLoss``).

    Args:
        weight: Optional rescaling weight, broadcast against the input.
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
        pos_weight: Optional weight of positive examples, broadcast against the target
            (one entry per class along the last axis).
    """

    def __init__(
        self,
        weight: array | None = None,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
        pos_weight: array | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self._loss_weight = self._weight_array(weight)
        self._pos_weight = self._weight_array(pos_weight)

    @property
    def weight(self) -> array | None:
        """The rescaling weight, or ``None``."""
        return self._loss_weight

    @property
    def pos_weight(self) -> array | None:
        """The weight of positive examples, or ``None``."""
        return self._pos_weight

    def forward(self, input: array, target: array) -> array:
        """Return the loss of logits ``input`` against binary ``target``."""
        return _bce(
            "BCEWithLogitsLoss",
            input,
            target,
            self._loss_weight,
            True,
            self.reduction,
            self._pos_weight,
            _TORCH,
        )


class CrossEntropyLoss(_Loss):
    """Cross entropy of logits (PyTorch ``nn.CrossEntropyLoss``), classes on axis 1.

    Targets are class indices (shape ``(N,)`` or ``(N, d1, ...)``) or class probabilities
    (the input's shape). With ``reduction="mean"`` and index targets the sum is divided by the
    total weight of the targets that are not ``ignore_index`` (PyTorch's weighted mean).

    Args:
        weight: Optional weight per class, shape ``(C,)``.
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        ignore_index: Target value that contributes nothing. Default: ``-100``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
        label_smoothing: Label smoothing factor in ``[0, 1]``. Default: ``0.0``.
    """

    def __init__(
        self,
        weight: array | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}"
            )
        self._loss_weight = self._weight_array(weight)
        if self._loss_weight is not None and self._loss_weight.ndim != 1:
            raise ValueError(
                f"CrossEntropyLoss: weight must be one-dimensional (one entry per class), got "
                f"shape {self._loss_weight.shape}"
            )
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    @property
    def weight(self) -> array | None:
        """The weight per class, or ``None``."""
        return self._loss_weight

    def forward(self, input: array, target: array) -> array:
        """Return the loss of logits ``input`` against ``target``."""
        return _torch_cross_entropy(
            input,
            target,
            self._loss_weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
            "CrossEntropyLoss",
        )


class NLLLoss(_Loss):
    """Negative log likelihood of log probabilities (PyTorch ``nn.NLLLoss``), classes on axis 1.

    Args:
        weight: Optional weight per class, shape ``(C,)``.
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        ignore_index: Target value that contributes nothing. Default: ``-100``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
    """

    def __init__(
        self,
        weight: array | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self._loss_weight = self._weight_array(weight)
        self.ignore_index = int(ignore_index)

    @property
    def weight(self) -> array | None:
        """The weight per class, or ``None``."""
        return self._loss_weight

    def forward(self, input: array, target: array) -> array:
        """Return the loss of log probabilities ``input`` against class indices ``target``."""
        return _torch_nll_loss(
            input, target, self._loss_weight, self.ignore_index, self.reduction, "NLLLoss"
        )


class SmoothL1Loss(_Loss):
    """Smooth L1 loss (PyTorch ``nn.SmoothL1Loss``); shapes must match exactly.

    Args:
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
        beta: Where the loss turns from quadratic to linear. Default: ``1.0``.
    """

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta}")
        self.beta = float(beta)

    def forward(self, input: array, target: array) -> array:
        """Return the loss of ``input`` against ``target``."""
        return _smooth_l1("SmoothL1Loss", input, target, self.beta, self.reduction, _TORCH)


class HuberLoss(_Loss):
    """Huber loss (PyTorch ``nn.HuberLoss``); shapes must match exactly.

    Args:
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``. Default: ``"mean"``.
        delta: Where the loss turns from quadratic to linear. Default: ``1.0``.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(None, None, reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = float(delta)

    def forward(self, input: array, target: array) -> array:
        """Return the loss of ``input`` against ``target``."""
        return _huber("HuberLoss", input, target, self.delta, self.reduction, _TORCH)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence (PyTorch ``nn.KLDivLoss``); ``input`` holds log probabilities.

    Args:
        size_average: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduce: Deprecated PyTorch flag, mapped onto ``reduction``.
        reduction: ``"none"`` | ``"mean"`` | ``"batchmean"`` | ``"sum"``. Default: ``"mean"``
            (the mean over all elements; ``"batchmean"`` divides the sum by the batch size,
            which is the mathematical KL divergence).
        log_target: Whether ``target`` holds log probabilities. Default: ``False``.
    """

    _reductions = ("none", "mean", "batchmean", "sum")

    def __init__(
        self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = bool(log_target)

    def forward(self, input: array, target: array) -> array:
        """Return the divergence of ``target`` from ``input``."""
        return _torch_kl_div(input, target, self.reduction, self.log_target, "KLDivLoss")
