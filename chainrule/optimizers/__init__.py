"""Optimizers, MLX schedules and PyTorch learning-rate schedulers (also ``chainrule.optim``).

Examples:
    >>> import chainrule.core as mx
    >>> import chainrule.nn as nn
    >>> import chainrule.optimizers as optim
    >>> x, y = mx.array([[1.0, 2.0], [3.0, 4.0]]), mx.array([[1.0], [2.0]])
    >>> def loss_fn(model, x, y):
    ...     return nn.losses.mse_loss(model(x), y)

    MLX style: ``update`` applies a gradient tree to the model.

    >>> mx.random.seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = optim.Adam(learning_rate=0.1)
    >>> loss_and_grad = nn.value_and_grad(model, loss_fn)
    >>> for _ in range(200):
    ...     loss, grads = loss_and_grad(model, x, y)
    ...     optimizer.update(model, grads)
    >>> loss.item() < 1e-3
    True

    PyTorch style: the same classes over ``model.parameters()``, with a scheduler.

    >>> mx.random.seed(0)
    >>> model = nn.Linear(2, 1)
    >>> optimizer = optim.Adam(model.parameters(), lr=0.1)
    >>> scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=100, gamma=0.5)
    >>> for _ in range(200):
    ...     optimizer.zero_grad()
    ...     loss = loss_fn(model, x, y)
    ...     loss.backward()
    ...     optimizer.step()
    ...     scheduler.step()
    >>> optimizer.param_groups[0]["lr"]
    0.025
    >>> loss.item() < 1e-3
    True
"""

from . import lr_scheduler, schedulers
from .adam_variants import NAdam, RAdam
from .classic import ASGD, Rprop
from .optimizers import (
    SGD,
    AdaDelta,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    MultiOptimizer,
    Muon,
    Optimizer,
    RMSprop,
    clip_grad_norm,
)
from .schedulers import (
    cosine_decay,
    exponential_decay,
    join_schedules,
    linear_schedule,
    step_decay,
)

__all__ = [
    "ASGD",
    "AdaDelta",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "MultiOptimizer",
    "Muon",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
    "clip_grad_norm",
    "cosine_decay",
    "exponential_decay",
    "join_schedules",
    "linear_schedule",
    "lr_scheduler",
    "schedulers",
    "step_decay",
]
