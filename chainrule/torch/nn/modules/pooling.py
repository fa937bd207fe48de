"""``torch.nn.modules.pooling``: the names PyTorch defines there, from ``chainrule.torch.nn``."""

from __future__ import annotations

import sys as _sys

_NAMES = (
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "FractionalMaxPool2d",
    "FractionalMaxPool3d",
    "LPPool1d",
    "LPPool2d",
    "LPPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
)
_nn = _sys.modules["chainrule.torch.nn"]
globals().update({n: getattr(_nn, n) for n in _NAMES if n not in globals() and hasattr(_nn, n)})
__all__ = [n for n in _NAMES if n in globals() and not n.startswith("_")]
