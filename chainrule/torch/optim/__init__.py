"""``torch.optim``: chainrule's optimizer classes, which take ``model.parameters()`` and ``lr=``.

``torch.optim.SGD is chainrule.optimizers.SGD``: the same class serves MLX's
``update(model, grads)`` and PyTorch's ``zero_grad()`` / ``step()``; called PyTorch's way it
uses PyTorch's defaults and update formulas. ``torch.optim.lr_scheduler`` is the module
``chainrule.optimizers.lr_scheduler`` itself (see ``chainrule.core.lazy.MODULE_ALIASES``).
"""

from __future__ import annotations

from chainrule.core.lazy import alias_module
from chainrule.optimizers import (
    ASGD,
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Muon,
    NAdam,
    Optimizer,
    RAdam,
    RMSprop,
    Rprop,
)
from chainrule.optimizers.lbfgs import LBFGS  # PyTorch style only: not in chainrule.optimizers

lr_scheduler = alias_module(f"{__name__}.lr_scheduler")

from . import swa_utils  # noqa: E402 - after the alias, as lr_scheduler is imported by it
from ._stateless import swap_in_optimizer_params_and_state  # noqa: E402

__all__ = [
    "ASGD",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "LBFGS",
    "Lion",
    "Muon",
    "NAdam",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "lr_scheduler",
    "swa_utils",
    "swap_in_optimizer_params_and_state",
]
