"""``chainrule.torch.vision``: torchvision's spelling, the module :mod:`chainrule.vision` itself.

``from chainrule.torch.vision import datasets, transforms`` (in place of ``from torchvision
import datasets, transforms``) gives ``chainrule.vision.datasets`` and
``chainrule.vision.transforms``: one module under two names (see
``chainrule.core.lazy.MODULE_ALIASES``).
"""

from chainrule.core.lazy import alias_module

alias_module(__name__)
