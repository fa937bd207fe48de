"""``torch.nn.parameter``: ``Parameter``, ``Buffer`` and the lazy placeholders."""

from __future__ import annotations

import chainrule.nn as _cnn

from ._misc import UninitializedBuffer, UninitializedParameter

Parameter = _cnn.Parameter
Buffer = _cnn.module.Buffer


def is_lazy(param: object) -> bool:
    """True for a lazy module's placeholder parameter or buffer."""
    return isinstance(param, UninitializedParameter)


__all__ = ["Buffer", "Parameter", "UninitializedBuffer", "UninitializedParameter", "is_lazy"]
