"""``torch.nn.modules.loss``: the names PyTorch defines there, from ``chainrule.torch.nn``."""

from __future__ import annotations

import sys as _sys

from .._losses import _Loss  # noqa: F401 (PyTorch base class)
from .utils import _WeightedLoss  # noqa: F401 (PyTorch base class)

_NAMES = (
    "_Loss",
    "_WeightedLoss",
    "L1Loss",
    "NLLLoss",
    "NLLLoss2d",
    "PoissonNLLLoss",
    "GaussianNLLLoss",
    "KLDivLoss",
    "MSELoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "HingeEmbeddingLoss",
    "MultiLabelMarginLoss",
    "SmoothL1Loss",
    "HuberLoss",
    "SoftMarginLoss",
    "CrossEntropyLoss",
    "LinearCrossEntropyLoss",
    "MultiLabelSoftMarginLoss",
    "CosineEmbeddingLoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "CTCLoss",
)
_nn = _sys.modules["chainrule.torch.nn"]
globals().update({n: getattr(_nn, n) for n in _NAMES if n not in globals() and hasattr(_nn, n)})
__all__ = [n for n in _NAMES if n in globals() and not n.startswith("_")]
