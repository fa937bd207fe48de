"""``torch.nn.modules.conv``: the names PyTorch defines there, from ``chainrule.torch.nn``."""

from __future__ import annotations

import sys as _sys

_NAMES = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "LazyConv1d",
    "LazyConv2d",
    "LazyConv3d",
    "LazyConvTranspose1d",
    "LazyConvTranspose2d",
    "LazyConvTranspose3d",
)
_nn = _sys.modules["chainrule.torch.nn"]
globals().update({n: getattr(_nn, n) for n in _NAMES if n not in globals() and hasattr(_nn, n)})
__all__ = [n for n in _NAMES if n in globals() and not n.startswith("_")]
