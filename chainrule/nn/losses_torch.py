"""PyTorch's loss classes (``nn.MSELoss``, ``nn.CrossEntropyLoss``, ...), with PyTorch's semantics.

The classes have PyTorch's names, arguments and defaults (``reduction="mean"``, class axis 1,
per-class weights, ``ignore_index``, ``label_smoothing``, the deprecated ``size_average`` /
``reduce`` flags). They are ``chainrule.nn`` modules (``nn.MSELoss is
chainrule.torch.nn.MSELoss``) and run the kernels and checks of
:mod:`chainrule.nn.losses_checks` that MLX's functions (:mod:`chainrule.nn.losses`) run.
"""

from __future__ import annotations

import warnings

from chainrule.core.extend import out_of_range

from .. import core as mx
from ..core.array import array
from ..core.backend import xp
from .losses_checks import (
    _REDUCTIONS,
    _TORCH,
    _arr,
    _bce,
    _check_reduction,
    _huber,
    _index_shape_problem,
    _pairwise,
    _pick,
    _reduce,
    _same_shape,
    _smooth_l1,
)
from .module import Module

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
]


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
    if td.size and out_of_range(td, num_classes):
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


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated ``size_average`` / ``reduce`` flags, mapped onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
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
        # PyTorch's _Loss has no extra_repr: every loss prints ``Name()``
        return f"{type(self).__name__}()"


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
        """Return the divergence of ``target`` from ``input`` (warning, as PyTorch does, that
        ``'mean'`` divides by the batch and the support size)."""
        if self.reduction == "mean":
            warnings.warn(_KL_MEAN_WARNING, UserWarning, stacklevel=2)
        return _torch_kl_div(input, target, self.reduction, self.log_target, "KLDivLoss")


_KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)
