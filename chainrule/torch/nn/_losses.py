"""PyTorch's loss modules missing from chainrule.nn: each stores its arguments and calls ``F``.

The losses chainrule.nn already has under PyTorch's names (``MSELoss``, ``CrossEntropyLoss``,
...) are used as they are; ``NLLLoss2d`` is PyTorch's deprecated alias of ``NLLLoss``.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array

from . import _layers, _module
from . import functional_act as A
from . import functional_loss as F
from ._module import Module

__all__ = [
    "AdaptiveLogSoftmaxWithLoss",
    "CTCLoss",
    "CosineEmbeddingLoss",
    "CosineSimilarity",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOptions",
    "MarginRankingLoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss2d",
    "PairwiseDistance",
    "PoissonNLLLoss",
    "SoftMarginLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
]


class _Loss(Module):
    """Base: keeps ``reduction`` (from PyTorch's deprecated flags too)."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__()
        self.reduction = F.legacy_reduction(size_average, reduce, reduction)

    def extra_repr(self) -> str:
        """Nothing, as PyTorch's losses."""
        return ""


class CosineEmbeddingLoss(_Loss):
    """``1 - cos`` for targets 1, ``max(0, cos - margin)`` for -1 (see ``F``)."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: array, input2: array, target: array) -> array:
        """The loss."""
        return F.cosine_embedding_loss(
            input1, input2, target, self.margin, reduction=self.reduction
        )


class HingeEmbeddingLoss(_Loss):
    """``x`` for targets 1, ``max(0, margin - x)`` for -1."""

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.hinge_embedding_loss(input, target, self.margin, reduction=self.reduction)


class MarginRankingLoss(_Loss):
    """``max(0, -target * (x1 - x2) + margin)``."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: array, input2: array, target: array) -> array:
        """The loss."""
        return F.margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """``log(1 + exp(-target * input))``."""

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_Loss):
    """Per-class logistic loss averaged over classes (optional class ``weight``)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight = weight

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.multilabel_soft_margin_loss(input, target, self.weight, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """Multi-label hinge loss with -1-terminated target class lists."""

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss (``p`` 1 or 2, ``margin``, class ``weight``)."""

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight=None,
        size_average=None,
        reduce=None,
        reduction="mean",
    ):
        super().__init__(size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 supported, got {p}")
        self.p = p
        self.margin = margin
        self.weight = weight

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.multi_margin_loss(
            input, target, self.p, self.margin, self.weight, reduction=self.reduction
        )


class TripletMarginLoss(_Loss):
    """``max(0, d(a, p) - d(a, n) + margin)`` with the pairwise ``p``-distance."""

    def __init__(
        self,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        size_average=None,
        reduce=None,
        reduction="mean",
    ):
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: margin must be greater than 0, got {margin}")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor: array, positive: array, negative: array) -> array:
        """The loss."""
        return F.triplet_margin_loss(
            anchor,
            positive,
            negative,
            self.margin,
            self.p,
            self.eps,
            self.swap,
            reduction=self.reduction,
        )


class TripletMarginWithDistanceLoss(_Loss):
    """Triplet loss with any distance function (default: pairwise distance)."""

    def __init__(
        self,
        *,
        distance_function: Callable | None = None,
        margin: float = 1.0,
        swap: bool = False,
        reduction: str = "mean",
    ):
        super().__init__(None, None, reduction)
        if margin <= 0:
            raise ValueError(
                "TripletMarginWithDistanceLoss: expected margin to be greater than 0, got "
                f"{margin} instead"
            )
        # PyTorch's default is a PairwiseDistance module (a child, printed by repr)
        self.distance_function = (
            distance_function if distance_function is not None else PairwiseDistance()
        )
        self.margin, self.swap = margin, swap

    def forward(self, anchor: array, positive: array, negative: array) -> array:
        """The loss."""
        return F.triplet_margin_with_distance_loss(
            anchor,
            positive,
            negative,
            distance_function=self.distance_function,
            margin=self.margin,
            swap=self.swap,
            reduction=self.reduction,
        )


class PoissonNLLLoss(_Loss):
    """Poisson negative log-likelihood (``log_input``, ``full``, ``eps``)."""

    def __init__(
        self,
        log_input: bool = True,
        full: bool = False,
        size_average=None,
        eps: float = 1e-8,
        reduce=None,
        reduction="mean",
    ):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input: array, target: array) -> array:
        """The loss."""
        return F.poisson_nll_loss(
            log_input, target, self.log_input, self.full, eps=self.eps, reduction=self.reduction
        )


class GaussianNLLLoss(_Loss):
    """Gaussian negative log-likelihood with predicted variances."""

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(None, None, reduction)
        self.full, self.eps = full, eps

    def forward(self, input: array, target: array, var: array | float) -> array:
        """The loss."""
        return F.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)


class CTCLoss(_Loss):
    """Connectionist temporal classification loss."""

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__(None, None, reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(
        self, log_probs: array, targets: array, input_lengths: Any, target_lengths: Any
    ) -> array:
        """The loss."""
        return F.ctc_loss(
            log_probs,
            targets,
            input_lengths,
            target_lengths,
            self.blank,
            self.reduction,
            self.zero_infinity,
        )


class NLLLoss2d(cnn.NLLLoss):
    """PyTorch's deprecated name of :class:`NLLLoss` for ``(N, C, H, W)`` inputs."""

    def __init__(
        self,
        weight: array | None = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        warnings.warn(
            "`NLLLoss2d` has been deprecated. Please use `NLLLoss` instead as a drop-in "
            "replacement and see https://pytorch.org/docs/main/nn.html#torch.nn.NLLLoss for "
            "more details.",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(weight, size_average, ignore_index, reduce, reduction)

    def __repr__(self) -> str:
        return "NLLLoss2d()"


class CosineSimilarity(Module):
    """Cosine similarity along ``dim`` (norms at least ``eps``)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: array, x2: array) -> array:
        """The similarities."""
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """``p``-norm of ``x1 - x2 + eps`` over the last dimension."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: array, x2: array) -> array:
        """The distances."""
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


@dataclasses.dataclass(slots=True, frozen=True)
class LinearCrossEntropyOptions:
    """Chunking options of :class:`LinearCrossEntropyLoss` (they do not change the numbers);
    a frozen dataclass, as PyTorch's.

    Args:
        allow_retain_graph: allow ``retain_graph=True`` on backward.
        batch_chunk_size: rows per chunk.
        chunking_method: how the batch is chunked.
        acc_policy: the accumulation policy.
        acc_dtype: the accumulation dtype.
    """

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: str = "auto"
    acc_dtype: Any = None


class LinearCrossEntropyLoss(Module):
    """A linear projection to class logits followed by cross entropy.

    Args:
        in_features: the input's last dimension.
        num_classes: the number of classes.
        out_features: extra output dimensions (``()`` for plain classification).
        bias: learn a bias.
        device: accepted (CPU only).
        dtype: the parameters' dtype.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        weight: one weight per class.
        ignore_index: a target that contributes nothing.
        label_smoothing: in ``[0, 1]``.
        options: :class:`LinearCrossEntropyOptions` (accepted).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        out_features: tuple = (),
        bias: bool = False,
        device: Any = None,
        dtype: Any = None,
        reduction: str = "mean",
        weight: array | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
        options: Any = None,
    ) -> None:
        super().__init__()
        if tuple(out_features):
            raise NotImplementedError("LinearCrossEntropyLoss: out_features is not supported")
        self.in_features, self.num_classes = in_features, num_classes
        self.out_features, self.bias = tuple(out_features), bias
        self.linear = _layers.Linear(in_features, num_classes, bias=bias, dtype=dtype)
        self.reduction, self.ignore_index = reduction, ignore_index
        self.label_smoothing, self.options = label_smoothing, options
        object.__setattr__(self, "_class_weight", weight)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"out_features={self.out_features}, bias={self.bias}, reduction={self.reduction}, "
            f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
            f"options={self.options}"
        )

    def forward(self, input: array, target: array) -> array:
        """The loss."""
        return F.linear_cross_entropy(
            input,
            self.linear.weight,
            target,
            linear_bias=self.linear.get("bias"),
            weight=self._class_weight,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class AdaptiveLogSoftmaxWithLoss(Module):
    """Efficient softmax over many classes (Grave et al., 2016): a head and tail clusters.

    Args:
        in_features: the input's last dimension.
        n_classes: the number of classes.
        cutoffs: increasing class cut-offs, each below ``n_classes``.
        div_value: each cluster's hidden size shrinks by this factor.
        head_bias: give the head a bias.
        device: accepted (CPU only).
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        cutoffs: Any,
        div_value: float = 4.0,
        head_bias: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if (
            not cutoffs
            or cutoffs != sorted(cutoffs)
            or min(cutoffs) <= 0
            or max(cutoffs) > n_classes - 1
            or len(set(cutoffs)) != len(cutoffs)
            or any(int(c) != c for c in cutoffs)
        ):
            raise ValueError(
                "AdaptiveLogSoftmaxWithLoss: cutoffs should be a sequence of unique, positive "
                f"integers sorted in an increasing order, where each value is between 1 and "
                f"n_classes-1, got {cutoffs}"
            )
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = _layers.Linear(in_features, self.head_size, bias=head_bias)
        tail = []
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            tail.append(
                _module.Sequential(
                    _layers.Linear(in_features, hsz, bias=False),
                    _layers.Linear(hsz, osz, bias=False),
                )
            )
        self.tail = _module.ModuleList(tail)

    def log_prob(self, input: array) -> array:
        """Log-probabilities of every class, ``(N, n_classes)``."""
        head = A.log_softmax(self.head(input), 1)
        parts = [head[:, : self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster = A.log_softmax(self.tail[i](input), 1)
            parts.append(cluster + head[:, self.shortlist_size + i : self.shortlist_size + i + 1])
        return mx.concatenate(parts, axis=1)

    def predict(self, input: array) -> array:
        """The most likely class of each row."""
        return mx.argmax(self.log_prob(input), axis=1).astype(mx.int64)

    def forward(self, input: array, target: array) -> Any:
        """``(output, loss)``: each target's log-probability and their negated mean."""
        unbatched = input.ndim == 1
        x = mx.expand_dims(input, 0) if unbatched else input
        t = np.asarray(target).reshape(-1).astype(np.int64)
        if x.ndim != 2 or x.shape[0] != t.size:
            raise ValueError(
                f"AdaptiveLogSoftmaxWithLoss: input of shape {tuple(input.shape)} and target of "
                f"shape {tuple(np.shape(target))} should be (N, in_features) and (N,)"
            )
        if t.size and (t.min() < 0 or t.max() >= self.n_classes):
            raise ValueError(
                f"AdaptiveLogSoftmaxWithLoss: target values should be in [0, {self.n_classes - 1}]"
            )
        out = mx.take_along_axis(self.log_prob(x), mx.array(t.reshape(-1, 1)), axis=1)[:, 0]
        loss = -mx.mean(out)
        if unbatched:
            out = out[0]
        return collections.namedtuple("_ASMoutput", ["output", "loss"])(out, loss)
