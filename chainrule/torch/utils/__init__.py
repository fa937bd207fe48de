"""``torch.utils``: ``torch.utils.data`` (chainrule.data's loader and datasets) and
``torch.utils.tensorboard`` (imported on first use, as in PyTorch)."""

from __future__ import annotations

from . import data

__all__ = ["data"]
