"""``torch.utils``: only ``torch.utils.data`` (chainrule.data's loader and datasets)."""

from __future__ import annotations

from . import data

__all__ = ["data"]
