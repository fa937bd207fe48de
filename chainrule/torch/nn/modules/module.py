"""``torch.nn.modules.module``: ``Module``."""

from __future__ import annotations

from .._module import Module

__all__ = ["Module"]
