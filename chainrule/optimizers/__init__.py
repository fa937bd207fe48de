"""Optimizers, MLX schedules and PyTorch learning-rate schedulers (also ``chainrule.optim``).

MLX style::

    optimizer = optimizers.Adam(learning_rate=1e-3)
    loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
    optimizer.update(model, grads)

PyTorch style::

    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    optimizer.zero_grad(); loss.backward(); optimizer.step(); scheduler.step()
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
