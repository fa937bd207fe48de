"""``chainrule.optim``: the optimizers package under PyTorch's name.

Every object is the one in :mod:`chainrule.optimizers` (``chainrule.optim.Adam is
chainrule.optimizers.Adam``); ``chainrule.optim.lr_scheduler`` is
:mod:`chainrule.optimizers.lr_scheduler`.
"""

from ..optimizers import *
from ..optimizers import __all__, lr_scheduler, schedulers
