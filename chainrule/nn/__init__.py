"""``chainrule.nn``: modules, layers, losses and initialisers in MLX's names.

Models subclass :class:`Module` and train either way: MLX style with
:func:`value_and_grad` and ``optimizer.update(model, grads)``, or PyTorch style with
``loss.backward()`` and ``optimizer.step()``. ``nn.optim`` (the package
``chainrule.optimizers``) and ``nn.lr_scheduler`` are loaded on first use, so importing
``chainrule.nn`` does not import the optimizers.
"""

from __future__ import annotations

from ..core import lazy as _lazy
from . import init, layers, losses, losses_torch, utils
from .layers import *
from .losses import *
from .losses_torch import *
from .module import Module, Parameter, StateDictError
from .utils import checkpoint, clip_grad_norm_, clip_grad_value_, value_and_grad

# nn.optim, nn.lr_scheduler, nn.average_gradients: imported on first use (chainrule/core/lazy.py)
_lazy.attach(__name__, globals(), listed=True)
