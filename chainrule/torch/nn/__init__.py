"""``torch.nn``: chainrule.nn's modules and PyTorch-named losses, with PyTorch's layouts.

``nn.Module``, ``nn.Linear``, ``nn.Sequential``, the activations and the losses are the
chainrule.nn classes themselves (``nn.Linear(in_features, out_features)`` works on the one
class). Layers whose PyTorch form is channels-first or has other arguments (``Conv2d``,
``MaxPool2d``, ``BatchNorm2d``, ``LayerNorm``, ``Softmax(dim)``...) are thin subclasses in
``_layers``. PyTorch names with no faithful equivalent yet (``LSTM``, ``MultiheadAttention``,
``TransformerEncoderLayer``...) raise an ``AttributeError`` that says what to use instead.
"""

from __future__ import annotations

import chainrule.nn as _cnn

from . import _layers, functional, init, utils
from ._layers import *

# Every class of chainrule.nn under its own name, unless PyTorch's class of that name has
# another meaning (those are adapted in _layers or listed in _NOT_PROVIDED).
_ADAPTED = set(_layers.__all__)
_NOT_PROVIDED = {
    "RNN": "its inputs are sequence-first by default and it returns (output, h_n)",
    "GRU": "its inputs are sequence-first by default and it returns (output, h_n)",
    "LSTM": "its inputs are sequence-first by default and it returns (output, (h_n, c_n))",
    "Transformer": "its arguments (d_model, nhead, ...) and layouts differ",
    "TransformerEncoder": "its arguments and layouts differ",
    "TransformerEncoderLayer": "its arguments (d_model, nhead, ...) and layouts differ",
    "TransformerDecoder": "its arguments and layouts differ",
    "TransformerDecoderLayer": "its arguments (d_model, nhead, ...) and layouts differ",
    "MultiheadAttention": "chainrule.nn.MultiHeadAttention has MLX's arguments",
}
for _name, _obj in list(vars(_cnn).items()):
    if (
        isinstance(_obj, type)
        and _name[0].isupper()
        and _name not in _ADAPTED
        and _name not in _NOT_PROVIDED
        and _obj.__module__.startswith("chainrule.")
    ):
        globals()[_name] = _obj
del _name, _obj

Module = _cnn.Module
Parameter = _cnn.Parameter


def __getattr__(name: str):
    reason = _NOT_PROVIDED.get(name)
    if reason is not None:
        raise AttributeError(
            f"chainrule.torch.nn.{name} is not provided: PyTorch's {name} differs from "
            f"chainrule.nn.{name if name != 'MultiheadAttention' else 'MultiHeadAttention'} "
            f"({reason}); use the chainrule.nn class (MLX's layout) instead"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
