"""``torch.nn.modules.activation``: the names PyTorch defines there, from ``chainrule.torch.nn``."""

from __future__ import annotations

import sys as _sys

_NAMES = (
    "Threshold",
    "ReLU",
    "RReLU",
    "Hardtanh",
    "ReLU6",
    "Sigmoid",
    "Hardsigmoid",
    "Tanh",
    "SiLU",
    "Mish",
    "Hardswish",
    "ELU",
    "CELU",
    "SELU",
    "GLU",
    "GELU",
    "Hardshrink",
    "LeakyReLU",
    "LogSigmoid",
    "Softplus",
    "Softshrink",
    "MultiheadAttention",
    "PReLU",
    "Softsign",
    "Tanhshrink",
    "Softmin",
    "Softmax",
    "Softmax2d",
    "LogSoftmax",
)
_nn = _sys.modules["chainrule.torch.nn"]
globals().update({n: getattr(_nn, n) for n in _NAMES if n not in globals() and hasattr(_nn, n)})
__all__ = [n for n in _NAMES if n in globals() and not n.startswith("_")]
