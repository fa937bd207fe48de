"""``torch.utils.tensorboard``: PyTorch's ``SummaryWriter``, writing TensorBoard event files.

The class is chainrule's own (``chainrule.train.tensorboard.SummaryWriter``), which has
PyTorch's signatures and defaults; it needs the ``tensorboard`` package
(``pip install 'chainrule[tensorboard]'``).
"""

from __future__ import annotations

from chainrule.train.tensorboard import SummaryWriter

__all__ = ["SummaryWriter"]
