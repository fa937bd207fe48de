"""``chainrule.optim`` is :mod:`chainrule.optimizers`, under PyTorch's name.

Not a copy: ``chainrule.optim is chainrule.optimizers`` and ``chainrule.optim.lr_scheduler is
chainrule.optimizers.lr_scheduler`` (the module objects themselves, registered under both
names by :func:`chainrule.core.lazy.alias_module`, the one alias mechanism).
"""

from chainrule.core.lazy import alias_module

alias_module(__name__)
