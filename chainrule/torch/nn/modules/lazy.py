"""``torch.nn.modules.lazy``: the lazy modules' base (materialised by their first call)."""

from __future__ import annotations

from .._misc import _Lazy as LazyModuleMixin

__all__ = ["LazyModuleMixin"]
