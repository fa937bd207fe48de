"""Tensor hooks: PyTorch's ``register_hook`` and ``retain_grad`` (the backward pass in
``autograd.py`` runs them through ``_run_hooks`` once ``_HOOKS.on`` is set)."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from .array import STATE, Node, _from_value, array

__all__ = ["RemovableHandle", "register_hook", "retain_grad", "retains_grad"]


class _Hooks:
    """The registered tensor hooks; ``on`` stays False until the first one, so a backward pass
    without hooks pays one truth test per node.

    Hooks of a non-leaf live on its node (a graph recorded later does not see them); hooks of a
    ``requires_grad`` leaf live on its handle, so they survive the leaf being rebound by an
    optimizer step. Both maps hold weak keys: a hook dies with its tensor's graph.
    """

    __slots__ = ("on", "nodes", "leaves", "retain", "next_id")

    def __init__(self) -> None:
        self.on = False
        self.nodes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.leaves: dict = {}  # a leaf's owner weakref (stable across rebinding) -> table
        self.retain: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.next_id = 0


_HOOKS = _Hooks()


class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` unregisters the hook (also usable as
    a context manager, removing it on exit), as PyTorch's ``RemovableHandle``."""

    __slots__ = ("_table", "_key", "id")

    def __init__(self, table: dict, key: int) -> None:
        self._table = weakref.ref(table)
        self._key = key
        self.id = key

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        table = self._table()
        if table is not None:
            table.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class _HookTable(dict):
    """The hooks of one tensor, by id, in registration order (a dict, weakly referable)."""


def _needs_node(x: array, who: str) -> Node:
    node = x._node
    if node is None:
        raise RuntimeError(
            f"{who}: cannot register a hook on a tensor that doesn't require gradient; create "
            "it with requires_grad=True (or call .requires_grad_()) first"
        )
    return node


def register_hook(x: array, hook: Callable) -> RemovableHandle:
    """Run ``hook(grad)`` whenever a backward pass computes the gradient of ``x`` (PyTorch's
    ``Tensor.register_hook``). A hook returning a tensor replaces the gradient (same shape);
    returning ``None`` keeps it. Hooks run in registration order, before a leaf's ``.grad`` is
    accumulated and before ``retain_grad`` stores a non-leaf's gradient.

    Args:
        x: an array that requires grad (a leaf or a computed array).
        hook: a callable of the gradient.

    Returns:
        A handle whose ``remove()`` unregisters the hook.

    Raises:
        RuntimeError: when ``x`` does not require grad.
        TypeError: when ``hook`` is not callable.
    """
    node = _needs_node(x, "register_hook")
    if not callable(hook):
        raise TypeError(f"register_hook: hook must be callable, got {type(hook).__name__}")
    if node.prim is None and node.owner is not None and node.owner() is x:
        table = _HOOKS.leaves.get(node.owner)
        if table is None:
            table = _HOOKS.leaves[node.owner] = _HookTable()
            weakref.finalize(x, _HOOKS.leaves.pop, node.owner, None)
    else:
        table = _HOOKS.nodes.get(node)
        if table is None:
            table = _HOOKS.nodes[node] = _HookTable()
    _HOOKS.next_id += 1
    table[_HOOKS.next_id] = hook
    _HOOKS.on = True
    return RemovableHandle(table, _HOOKS.next_id)


def retain_grad(x: array) -> None:
    """Keep the gradient of non-leaf ``x`` in ``x.grad`` during backward passes (PyTorch's
    ``Tensor.retain_grad``; accumulated across passes as a leaf's). A no-op on a leaf.

    Raises:
        RuntimeError: when ``x`` does not require grad.
    """
    node = x._node
    if node is None:
        raise RuntimeError(
            "retain_grad: can't retain_grad on a tensor that has requires_grad=False; create "
            "it from tensors that require grad"
        )
    if node.prim is None:
        return
    _HOOKS.retain[node] = weakref.ref(x)
    _HOOKS.on = True


def retains_grad(x: array) -> bool:
    """Whether ``retain_grad`` was called on non-leaf ``x`` (for its current value)."""
    node = x._node
    if node is None or node.prim is None or not _HOOKS.on:
        return False
    ref = _HOOKS.retain.get(node)
    return ref is not None and ref() is x


def _run_hooks(node: Node, g: array) -> array:
    """``node``'s tensor hooks applied to its cotangent ``g``, then ``retain_grad``."""
    table = _HOOKS.nodes.get(node)
    owner = node.owner
    if owner is not None and owner() is not None:  # a dead weak reference cannot be hashed
        table = _HOOKS.leaves.get(owner, table)
    if table:
        for hook in list(table.values()):
            r = hook(g)
            if r is None:
                continue
            if not isinstance(r, array):
                r = array(r, dtype=g.dtype)
            if r.shape != g.shape:
                raise RuntimeError(
                    f"register_hook: hook {getattr(hook, '__name__', hook)!r} has changed the "
                    f"size of the gradient from {tuple(g.shape)} to {tuple(r.shape)}"
                )
            g = r
    ref = _HOOKS.retain.get(node)
    if ref is not None:
        x = ref()
        if x is not None and x._node is node:
            gd = g if STATE.enabled else _from_value(g._data)
            x._grad = gd if x._grad is None else x._grad + gd
    return g
