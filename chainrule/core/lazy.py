"""The layers of chainrule, and the one list of names a layer reaches upward for.

Packages depend one way, each only on the layers before it in :data:`LAYERS`::

    core <- nn <- optimizers <- data/train <- distributed/viz <- cli, with chainrule.torch on top

so ``import chainrule.core`` loads no optimizer and ``import chainrule.nn`` no data loader.
Two anchors still offer a few names that live higher up, because MLX and the seeds spell
them there (``mx.distributed``, ``nn.optim``, ``nn.lr_scheduler``). Those names, and every
other reference from a layer to a higher one, are listed once, here, in
:data:`LAZY_ALIASES`; each is imported on first use, never when the lower layer loads. An
anchor serves its entries as attributes through :func:`attach` (a module ``__getattr__``); any
other module listed imports its entries inside the function that needs them.
:data:`MODULE_ALIASES` makes one package answer to two names (``chainrule.optim`` *is*
``chainrule.optimizers``). ``tests/test_layer_order.py`` enforces all of this: it parses every
module's imports and refuses an upward one that is not listed here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

LAYERS: tuple[tuple[str, ...], ...] = (
    ("chainrule", "chainrule.core", "chainrule.utils"),
    ("chainrule.nn",),
    ("chainrule.optimizers", "chainrule.optim"),
    ("chainrule.data", "chainrule.vision", "chainrule.train", "chainrule.checkpoint"),
    ("chainrule.distributed", "chainrule.viz"),
    ("chainrule.cli",),
    ("chainrule.torch",),
)
"""The packages of each layer, lowest first; a module belongs to its longest listed prefix."""

LAZY_ALIASES: dict[str, dict[str, str]] = {
    # anchors: attributes served by `attach`
    "chainrule": {
        "load_checkpoint": "chainrule.checkpoint:load_checkpoint",
        "save_checkpoint": "chainrule.checkpoint:save_checkpoint",
    },
    "chainrule.core": {"distributed": "chainrule.distributed"},  # MLX's mx.distributed
    "chainrule.nn": {
        "optim": "chainrule.optimizers",  # the seeds' nn.optim.Adam(...)
        "optimizers": "chainrule.optimizers",
        "lr_scheduler": "chainrule.optimizers.lr_scheduler",  # the seeds' nn.lr_scheduler
        "average_gradients": "chainrule.distributed:average_gradients",  # MLX's nn.average_...
    },
    "chainrule.nn.utils": {
        "average_gradients": "chainrule.distributed:average_gradients",  # MLX's nn.utils.
        "clip_grad_norm_sharded": "chainrule.distributed:clip_grad_norm_sharded",
    },
    # imported inside a function: MLX's sharded linear layers take the process group, and
    # sum over it, on demand
    "chainrule.nn.layers.distributed": {
        "init": "chainrule.distributed:init",
        "all_sum": "chainrule.distributed:all_sum",
        "all_gather": "chainrule.distributed:all_gather",
        "sum_scatter": "chainrule.distributed:sum_scatter",
    },
    # imported inside a function: fit(distributed=...) starts data parallelism on demand
    "chainrule.train.fit": {
        "DataParallel": "chainrule.distributed:DataParallel",
        "Group": "chainrule.distributed:Group",
        "init": "chainrule.distributed:init",
    },
}
"""By module: each name it may take from a higher layer, as ``"package.module[:attribute]"``."""

MODULE_ALIASES: dict[str, str] = {
    "chainrule.optim": "chainrule.optimizers",
    "chainrule.torch.optim.lr_scheduler": "chainrule.optimizers.lr_scheduler",
    "chainrule.torch.vision": "chainrule.vision",  # torchvision's spelling
}
"""Module names that are the same module object as another (submodules included)."""


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of a ``chainrule`` module (its longest listed prefix).

    Args:
        module: a dotted module name such as ``"chainrule.nn.layers.linear"``.

    Returns:
        The layer's index, 0 for the core.

    Raises:
        ValueError: for a name outside every listed package.
    """
    best, length = -1, -1
    for i, packages in enumerate(LAYERS):
        for p in packages:
            if (module == p or module.startswith(p + ".")) and len(p) > length:
                best, length = i, len(p)
    if best < 0:
        raise ValueError(f"layer_of: {module!r} is not in any layer of chainrule.core.lazy.LAYERS")
    return best


def resolve(target: str) -> Any:
    """Import ``"package.module"`` or ``"package.module:attribute"`` and return the object.

    Args:
        target: an entry of :data:`LAZY_ALIASES`.

    Returns:
        The module, or the attribute of it.
    """
    module, _, attribute = target.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value


def attach(module: str, namespace: MutableMapping[str, Any], listed: bool = False) -> None:
    """Give an anchor the module ``__getattr__`` that serves its lazy aliases.

    Call as ``attach(__name__, globals())`` at the end of the anchor's ``__init__``. A name is
    imported on its first use and then stored in the module, so later reads cost nothing.

    Args:
        module: the anchor's name, a key of :data:`LAZY_ALIASES`.
        namespace: the anchor's ``globals()``.
        listed: also give it a ``__dir__`` that lists the aliases (for completion; code that
            reads every name of ``dir(anchor)`` then imports them).
    """
    aliases = LAZY_ALIASES[module]

    def __getattr__(name: str) -> Any:
        target = aliases.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = namespace[name] = resolve(target)
        return value

    namespace["__getattr__"] = __getattr__
    if listed:

        def __dir__() -> list[str]:
            return sorted(set(namespace) | set(aliases))

        namespace["__dir__"] = __dir__


def alias_module(name: str) -> ModuleType:
    """Make ``name`` (a key of :data:`MODULE_ALIASES`) the same module object as its target.

    The target and, for a package, every submodule are registered in ``sys.modules`` under
    the alias too, so ``import chainrule.optim.lr_scheduler`` finds the module that
    ``chainrule.optimizers.lr_scheduler`` is instead of loading the file a second time. A
    package's ``__init__`` calls this last; the import system then binds the alias to the
    target everywhere (``sys.modules``, the parent package's attribute).

    Args:
        name: the alias.

    Returns:
        The target module.
    """
    target_name = MODULE_ALIASES[name]
    target = importlib.import_module(target_name)
    for info in pkgutil.iter_modules(getattr(target, "__path__", [])):
        importlib.import_module(f"{target_name}.{info.name}")
    prefix = target_name + "."
    for key, module in list(sys.modules.items()):
        if key == target_name or key.startswith(prefix):
            sys.modules[name + key[len(target_name) :]] = module
    return target
