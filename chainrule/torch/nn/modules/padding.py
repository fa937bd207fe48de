"""``torch.nn.modules.padding``: the names PyTorch defines there, from ``chainrule.torch.nn``."""

from __future__ import annotations

import sys as _sys

_NAMES = (
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
)
_nn = _sys.modules["chainrule.torch.nn"]
globals().update({n: getattr(_nn, n) for n in _NAMES if n not in globals() and hasattr(_nn, n)})
__all__ = [n for n in _NAMES if n in globals() and not n.startswith("_")]
