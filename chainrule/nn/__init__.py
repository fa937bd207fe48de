"""``chainrule.nn``: modules, layers, losses and initialisers in MLX's names.

Models subclass :class:`Module` and train either way: MLX style with
:func:`value_and_grad` and ``optimizer.update(model, grads)``, or PyTorch style with
``loss.backward()`` and ``optimizer.step()``. ``nn.optim`` (the package
``chainrule.optimizers``) and ``nn.lr_scheduler`` are loaded on first use, so importing
``chainrule.nn`` does not import the optimizers.

Examples:
    >>> import chainrule.core as mx
    >>> import chainrule.nn as nn
    >>> mx.random.seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> x, y = mx.array([[1.0, 2.0], [3.0, 4.0]]), mx.array([[1.0], [2.0]])
    >>> def loss_fn(model, x, y):
    ...     return nn.losses.mse_loss(model(x), y)
    >>> loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
    >>> sorted(grads["layers"][0])  # a tree shaped like model.parameters()
    ['bias', 'weight']
    >>> grads["layers"][0]["weight"].shape
    (8, 2)
    >>> nn.MSELoss()(model(x), y).item() == loss.item()
    True
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
