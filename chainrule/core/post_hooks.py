"""PyTorch's ``Tensor.register_post_accumulate_grad_hook``: hooks run once a backward pass
has accumulated a leaf's ``.grad`` (registered by ``tensor_methods``, run by
``autograd.tape_backward`` and ``backward(inputs=...)``)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["POST_HOOKS", "post_accumulate"]

POST_HOOKS: dict = {}
"""A leaf's owner weak reference -> its hooks (a ``_HookTable``)."""


def post_accumulate(leaves: Iterable) -> None:
    """Run the hooks of the leaf nodes ``leaves`` on their tensors (owners still alive)."""
    for leaf in leaves:
        owner = leaf.owner()
        table = POST_HOOKS.get(leaf.owner) if owner is not None else None
        for hook in list(table.values()) if table else ():
            hook(owner)
