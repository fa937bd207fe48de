"""``torch.distributions.utils``: the helpers distribution code imports from PyTorch."""

from __future__ import annotations

from typing import Any

import chainrule.core as mx
from chainrule.core.extend import array

from .distribution import _finfo, broadcast_all, lazy_property, logits_to_probs, probs_to_logits

__all__ = [
    "broadcast_all",
    "clamp_probs",
    "lazy_property",
    "logits_to_probs",
    "probs_to_logits",
]


def clamp_probs(probs: Any) -> array:
    """Probabilities clamped to ``[eps, 1 - eps]`` of their dtype."""
    eps = float(_finfo(probs).eps)
    return mx.clip(probs, eps, 1 - eps)
