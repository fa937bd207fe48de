"""``torch.nn``: chainrule.nn's modules with PyTorch's arguments, layouts and meanings.

Every module class here is a thin subclass of the chainrule.nn class of the same name and of
``torch.nn.Module`` (``_module.py``), which gives the names MLX and PyTorch both use
(``parameters``, ``children``, ``apply``, ``repr``) PyTorch's meaning; ``isinstance(m,
torch.nn.Module)`` holds for every chainrule module. Layers whose PyTorch form is
channels-first or has other arguments or layouts (``Conv2d``, ``BatchNorm2d``, ``Linear``,
``LayerNorm``, ``Softmax(dim)``...) are written out in ``_layers``; the losses are the
chainrule.nn classes themselves. The recurrent layers (``_rnn``: ``LSTM``...) and the attention
and Transformer layers (``_transformer``) have PyTorch's layouts, arguments and parameter names.
PyTorch names listed in ``_NOT_PROVIDED`` raise an ``AttributeError`` that says what to use
instead.
"""

from __future__ import annotations

import chainrule.nn as _cnn

from .._tensor_class import install_doors as _install_doors
from . import _layers, _module, functional, init, utils
from ._layers import *

# Every class of chainrule.nn under its own name, unless PyTorch's class of that name has
# another meaning (those are adapted in _layers or listed in _NOT_PROVIDED).
_ADAPTED = set(_layers.__all__)
# PyTorch's forms of the activations, losses, pooling/padding and other layers (issue 15);
# they shadow chainrule.nn's classes of the same names.
from . import (  # noqa: E402
    _activations,
    _losses,
    _misc,
    _pool_pad,
    _rnn,
    _transformer,
    attention,
    common_types,
    grad,
    modules,
    parallel,
    parameter,
)

_BREADTH = (_activations, _losses, _misc, _pool_pad, _rnn, _transformer)
_ADAPTED |= {_n for _m in _BREADTH for _n in _m.__all__}
_NOT_PROVIDED: dict = {}  # names PyTorch has that chainrule.torch.nn does not (why)
_SAME_CLASS = ("chainrule.nn.losses_torch",)  # one class for both doors (PyTorch's already)


def _torch_flavour(name: str, cls: type) -> type:
    """``cls`` with PyTorch's meanings for the clashing Module names (_module.Module)."""
    return type(
        name,
        (cls, _module.Module),
        {"__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__},
    )


for _name, _obj in list(vars(_cnn).items()):
    if (
        isinstance(_obj, type)
        and _name[0].isupper()
        and _name not in _ADAPTED
        and _name not in _NOT_PROVIDED
        and _obj.__module__.startswith("chainrule.")
    ):
        if issubclass(_obj, _cnn.Module) and _obj.__module__ not in _SAME_CLASS:
            _obj = _torch_flavour(_name, _obj)
        globals()[_name] = _obj
del _name, _obj
for _m in _BREADTH:
    globals().update({_n: getattr(_m, _n) for _n in _m.__all__})
del _m

# torch.nn.functional's functions return tensors for tensors (docs/torch_differences.md).
_install_doors(vars(functional))

Parameter = _cnn.Parameter
Buffer = _cnn.module.Buffer


def __getattr__(name: str):
    reason = _NOT_PROVIDED.get(name)
    if reason is not None:
        raise AttributeError(
            f"chainrule.torch.nn.{name} is not provided: PyTorch's {name} differs from "
            f"chainrule.nn.{name if name != 'MultiheadAttention' else 'MultiHeadAttention'} "
            f"({reason}); use the chainrule.nn class (MLX's layout) instead"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
