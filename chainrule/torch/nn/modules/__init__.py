"""``torch.nn.modules``: every module class of ``chainrule.torch.nn`` (PyTorch's package)."""

from __future__ import annotations

import sys as _sys
from typing import Any


def __getattr__(name: str) -> Any:
    nn = _sys.modules["chainrule.torch.nn"]
    obj = getattr(nn, name, None)
    if isinstance(obj, type):
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    nn = _sys.modules["chainrule.torch.nn"]
    return sorted(n for n in dir(nn) if isinstance(getattr(nn, n, None), type))
