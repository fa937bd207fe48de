"""``chainrule.nn``: modules, layers, losses and initialisers in MLX's names.

Models subclass :class:`Module` and train either way: MLX style with
:func:`value_and_grad` and ``optimizer.update(model, grads)``, or PyTorch style with
``loss.backward()`` and ``optimizer.step()``. ``nn.optim`` (the package
``chainrule.optimizers``) and ``nn.lr_scheduler`` are loaded on first use, so importing
``chainrule.nn`` does not import the optimizers.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import init, layers, losses, utils
from .layers import *
from .losses import *
from .module import Module, Parameter, StateDictError
from .utils import checkpoint, clip_grad_norm_, clip_grad_value_, value_and_grad

_LAZY = {
    "optim": "chainrule.optimizers",
    "optimizers": "chainrule.optimizers",
    "lr_scheduler": "chainrule.optimizers.lr_scheduler",
}


def __getattr__(name: str) -> Any:
    if name == "average_gradients":  # MLX's mlx.nn.average_gradients
        from chainrule.distributed import average_gradients

        globals()[name] = average_gradients
        return average_gradients
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'chainrule.nn' has no attribute {name!r}")
    module = importlib.import_module(target)
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"average_gradients"})
