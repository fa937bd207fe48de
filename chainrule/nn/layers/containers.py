"""``Sequential``: call modules (or any callables) one after another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..module import Module

__all__ = ["Sequential"]


class Sequential(Module):
    """Calls the given callables in order, feeding each one's output to the next.

    The layers are stored in the list entry ``layers`` (MLX), so their parameters are named
    ``layers.0.weight`` and so on. ``seq[i]`` returns the ``i``-th layer, as in PyTorch.

    Args:
        *modules: the modules or plain functions to apply.
    """

    passes_tensors = True  # calls the user's modules with the caller's tensors (no door)

    def __init__(self, *modules: Callable) -> None:
        super().__init__()
        self.layers = list(modules)

    def __call__(self, x: Any) -> Any:
        for m in self["layers"]:
            x = m(x)
        return x

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return dict.__getitem__(self, "layers")[key]
        if isinstance(key, slice):
            return Sequential(*dict.__getitem__(self, "layers")[key])
        return dict.__getitem__(self, key)

    def append(self, module: Callable) -> Sequential:
        """Add a layer at the end (PyTorch).

        Args:
            module: the layer.

        Returns:
            The container.
        """
        dict.__getitem__(self, "layers").append(module)
        return self
