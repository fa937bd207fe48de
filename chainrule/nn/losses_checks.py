"""The boundary checks and kernels shared by the loss functions and the loss modules.

Inputs are checked where they enter: a prediction and a target of different shapes are refused
naming both shapes (a loss never broadcasts ``(N, 1)`` against ``(N,)``), class indices out of
range are refused, and ``BCELoss`` refuses values outside ``[0, 1]``. Logits enter through
stable forms (``logaddexp``, ``logsumexp``), so logits of +-1e4 give finite losses and
gradients. :mod:`chainrule.nn.losses` (MLX's functions) and :mod:`chainrule.nn.losses_torch`
(PyTorch's classes) are both written with these.
"""

from __future__ import annotations

import math
from typing import Literal

from chainrule.core.extend import out_of_range

from .. import core as mx
from ..core.array import array
from ..core.backend import xp

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
    if d.size and out_of_range(d, num_classes):
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
