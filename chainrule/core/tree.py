"""Trees of arrays: the one policy every walk in chainrule follows.

A *tree* is a nesting of containers; everything else is a *leaf*. The policy is MLX's
(``mlx/utils.py``):

* ``list``, ``tuple`` and ``dict`` are containers, and so are their subclasses: a namedtuple is a
  tuple, an ``nn.Module`` or a ``ParameterTree`` is a dict.
* Anything else is a leaf: arrays, numbers, strings, NumPy arrays and ``None``.
* Walks go depth first, left to right, dicts in insertion order.
* Rebuilt trees keep list and tuple types (a namedtuple is rebuilt field by field, a list or
  tuple subclass from its items) and turn dict nodes into plain ``dict`` objects.
* ``None`` is a leaf that holds nothing. :func:`map` hands it to ``fn`` as MLX's ``tree_map``
  does; the walks over arrays pass it through: ``mx.grad`` gives ``None`` as its gradient,
  an optimizer leaves the parameter of a ``None`` gradient as it is, ``mx.compile`` keys it as a
  constant of the signature, and :func:`merge` counts it as absent.

:func:`leaves`, :func:`map`, :func:`flatten` / :func:`unflatten` (structure as a hashable
``spec``) are the fast walks that autograd, ``mx.compile``, modules and optimizers use;
:mod:`chainrule.utils` is the public face with MLX's ``tree_*`` names and dotted paths.

The hot walks test an array (the usual leaf, recognised inline without a call), then
``isinstance(x, dict)``, then a plain list; anything else has its kind looked up by exact type
in one dict, computed once per type. They recurse once per nesting level, never once per leaf,
and cost what the hand-written walks they replaced did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from itertools import zip_longest
from typing import Any

from .array import array as _array

__all__ = [
    "LEAF",
    "DICT",
    "LIST",
    "TUPLE",
    "NAMEDTUPLE",
    "kind",
    "rebuild",
    "leaves",
    "map",
    "map_with_path",
    "map_keeping_types",
    "flatten",
    "unflatten",
    "signature",
    "flatten_with_paths",
    "structure",
    "merge",
]

# Kinds of node. ``LEAF`` is 0 so that ``if not k`` reads "is a leaf".
LEAF = 0
DICT = 1
LIST = 2
TUPLE = 3
NAMEDTUPLE = 4

Spec = tuple
"""A tree's structure from :func:`flatten`: hashable, equal for equal structures."""

_KINDS: dict[type, int] = {
    _array: LEAF,
    dict: DICT,
    list: LIST,
    tuple: TUPLE,
    type(None): LEAF,
    int: LEAF,
    float: LEAF,
    bool: LEAF,
    str: LEAF,
}
_MAX_CACHED = 4096  # types remembered; beyond that (classes made in a loop) they are recomputed


def _kind_of_type(t: type) -> int:
    k = _KINDS.get(t)
    if k is not None:
        return k
    if issubclass(t, dict):
        k = DICT
    elif issubclass(t, list):
        k = LIST
    elif issubclass(t, tuple):
        k = NAMEDTUPLE if hasattr(t, "_fields") else TUPLE
    else:
        k = LEAF
    if len(_KINDS) < _MAX_CACHED:
        _KINDS[t] = k
    return k


def _kind(x: Any) -> int:
    k = _KINDS.get(type(x))
    return _kind_of_type(type(x)) if k is None else k


def kind(x: Any) -> int:
    """The kind of node ``x`` is: ``LEAF``, ``DICT``, ``LIST``, ``TUPLE`` or ``NAMEDTUPLE``.

    Args:
        x: any object.

    Returns:
        One of the kind constants of this module (``LEAF`` is 0, the others are true).
    """
    k = _KINDS.get(type(x))
    return _kind_of_type(type(x)) if k is None else k


def rebuild(template: list | tuple, items: list) -> list | tuple:
    """A sequence of ``template``'s type holding ``items``.

    A namedtuple takes its fields positionally; a list or tuple subclass is built from the
    items; a plain list is ``items`` itself.

    Args:
        template: the list or tuple whose type to use.
        items: the new elements (a fresh list, which may be returned as is).

    Returns:
        The new sequence.
    """
    t = type(template)
    if t is list:
        return items
    if t is tuple:
        return tuple(items)
    if _kind_of_type(t) == NAMEDTUPLE:
        return t(*items)
    return t(items)


# -- leaves ------------------------------------------------------------------------------------


def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree`` in order (arrays, ``None`` and any other leaf).

    Args:
        tree: the tree.
        is_leaf: optional predicate; a node for which it is true is one leaf.

    Returns:
        A new list of the leaves.
    """
    out: list = []
    if is_leaf is None:
        _leaves(tree, out)
    else:
        _leaves_until(tree, out, is_leaf)
    return out


def _leaves(tree: Any, out: list) -> None:
    # The hot walks test, in order: an array (the usual leaf), a dict (isinstance: subclasses
    # such as modules included), a plain list, then the cached kind of anything else.
    if isinstance(tree, dict):
        items = tree.values()
    elif type(tree) is list or _kind(tree):
        items = tree
    else:
        out.append(tree)
        return
    for v in items:
        if type(v) is _array:  # inline: parameter trees are mostly array leaves
            out.append(v)
        else:
            _leaves(v, out)


def _leaves_until(tree: Any, out: list, is_leaf: Callable[[Any], bool]) -> None:
    if is_leaf(tree):
        out.append(tree)
        return
    k = kind(tree)
    if not k:
        out.append(tree)
        return
    for v in tree.values() if k == DICT else tree:
        _leaves_until(v, out, is_leaf)


# -- mapping -----------------------------------------------------------------------------------


def map(
    fn: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``fn`` to every leaf of ``tree``; a new tree of the results (MLX's ``tree_map``).

    Trees in ``rest`` must hold at least ``tree``'s containers; their nodes at ``tree``'s leaves
    are extra arguments of ``fn``. Dict nodes come back as plain dicts.

    Args:
        fn: called as ``fn(leaf, *rest_nodes)``.
        tree: the tree whose structure drives the walk.
        *rest: trees walked in lockstep (indexed with ``tree``'s keys).
        is_leaf: optional predicate; a node for which it is true is handed to ``fn`` whole.

    Returns:
        A tree shaped like ``tree``.

    Raises:
        KeyError, IndexError: a tree of ``rest`` lacks an entry of ``tree``.
    """
    if rest or is_leaf is not None:
        return _map_full(fn, tree, rest, is_leaf)
    return _map1(fn, tree)


def _map1(fn: Callable[[Any], Any], tree: Any) -> Any:
    if type(tree) is _array:
        return fn(tree)
    # loops, not comprehensions: on Python 3.11 each comprehension makes a function per call,
    # and this runs for every tree a transform or an optimizer step walks
    if isinstance(tree, dict):
        out: dict = {}
        for key, v in tree.items():
            out[key] = fn(v) if type(v) is _array else _map1(fn, v)
        return out
    t = type(tree)
    if t is list:
        items = []
        for v in tree:
            items.append(fn(v) if type(v) is _array else _map1(fn, v))
        return items
    if not _kind(tree):
        return fn(tree)
    return rebuild(tree, [fn(v) if type(v) is _array else _map1(fn, v) for v in tree])


def _map_full(fn: Callable, tree: Any, rest: tuple, is_leaf: Callable | None) -> Any:
    if is_leaf is not None and is_leaf(tree):
        return fn(tree, *rest)
    k = kind(tree)
    if not k:
        return fn(tree, *rest)
    if k == DICT:
        return {
            key: _map_full(fn, child, tuple(r[key] for r in rest), is_leaf)
            for key, child in tree.items()
        }
    items = [
        _map_full(fn, child, tuple(r[i] for r in rest), is_leaf) for i, child in enumerate(tree)
    ]
    return rebuild(tree, items)


def map_with_path(
    fn: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
    path: Any | None = None,
) -> Any:
    """:func:`map` whose ``fn`` also receives each leaf's dotted path (``"layers.0.w"``).

    Args:
        fn: called as ``fn(path, leaf, *rest_nodes)``.
        tree: the tree whose structure drives the walk.
        *rest: trees walked in lockstep.
        is_leaf: optional predicate; a node for which it is true is a leaf.
        path: prefix of the paths; a leaf at the root gets it unchanged.

    Returns:
        A tree shaped like ``tree``.
    """
    if is_leaf is not None and is_leaf(tree):
        return fn(path, tree, *rest)
    k = kind(tree)
    if not k:
        return fn(path, tree, *rest)
    prefix = f"{path}." if path else ""
    if k == DICT:
        return {
            key: map_with_path(
                fn, child, *(r[key] for r in rest), is_leaf=is_leaf, path=f"{prefix}{key}"
            )
            for key, child in tree.items()
        }
    items = [
        map_with_path(fn, child, *(r[i] for r in rest), is_leaf=is_leaf, path=f"{prefix}{i}")
        for i, child in enumerate(tree)
    ]
    return rebuild(tree, items)


def map_keeping_types(
    fn: Callable[[Any], Any], tree: Any, copies: dict[int, Any] | None = None
) -> Any:
    """:func:`map`, except that dict subclasses come back as their own type.

    A dict subclass (an ``nn.Module``) is shallow-copied and its entries replaced, so code that
    receives the new tree sees the objects it would have seen (``model(x)`` still works on the
    copy of a module). For ``mx.compile``, which hands traced arrays to the function it traces.

    Args:
        fn: called as ``fn(leaf)``.
        tree: the tree.
        copies: if given, receives ``id(copy) -> original`` for every dict subclass copied.

    Returns:
        A tree shaped like ``tree`` whose containers have ``tree``'s types.
    """
    t = type(tree)
    k = _KINDS.get(t)
    if k is None:
        k = _kind_of_type(t)
    if not k:
        return fn(tree)
    if k == DICT:
        new = {key: map_keeping_types(fn, v, copies) for key, v in tree.items()}
        if t is dict:
            return new
        twin = copy.copy(tree)
        for key, v in new.items():
            dict.__setitem__(twin, key, v)
        if copies is not None:
            copies[id(twin)] = tree
        return twin
    return rebuild(tree, [map_keeping_types(fn, v, copies) for v in tree])


# -- flat form ---------------------------------------------------------------------------------


def flatten(tree: Any) -> tuple[list, Spec]:
    """The leaves of ``tree`` and a hashable description of its structure.

    ``unflatten(spec, leaves)`` rebuilds the tree (dict nodes as plain dicts); two trees have
    equal specs exactly when they have the same containers (types, keys, lengths).

    Args:
        tree: the tree.

    Returns:
        ``(leaves, spec)``.
    """
    out: list = []
    spec: list = []
    _flatten(tree, out.append, spec.append)
    return out, tuple(spec)


def _flatten(tree: Any, leaf: Callable, note: Callable) -> None:
    # spec, in pre-order: None for a leaf; a container's type, then its keys (a dict) or length.
    # ``leaf`` and ``note`` are the bound ``append`` methods of the two lists.
    if isinstance(tree, dict):
        note(type(tree))
        note(tuple(tree))
        items = tree.values()
    elif type(tree) is list or _kind(tree):
        note(type(tree))
        note(len(tree))
        items = tree
    else:
        leaf(tree)
        note(None)
        return
    for v in items:
        if type(v) is _array:
            leaf(v)
            note(None)
        else:
            _flatten(v, leaf, note)


def signature(tree: Any, arrays: list) -> tuple:
    """A hashable key for what work on ``tree`` depends on (``mx.compile``'s cache key).

    The containers as in :func:`flatten`, with each leaf's marker replaced by its abstract
    value: an array by its shape, dtype and whether it has a ``.grad``; anything else by
    ``(type, value)``, or ``(type, id)`` when it cannot be hashed. One walk, no second pass
    over the leaves: this runs on every call of a compiled function.

    Args:
        tree: the tree.
        arrays: receives the array leaves, in order.

    Returns:
        The key; equal keys mean equal structures and equal abstract leaves.
    """
    key: list = []
    _signature(tree, arrays.append, key.append)
    return tuple(key)


def _signature(tree: Any, found: Callable, note: Callable) -> None:
    if isinstance(tree, dict):
        note(type(tree))
        note(tuple(tree))
        items = tree.values()
    elif type(tree) is list or _kind(tree):
        note(type(tree))
        note(len(tree))
        items = tree
    elif isinstance(tree, _array):  # (also a subclass: a chainrule.torch.Tensor)
        found(tree)
        d = tree._data
        note((d.shape, d.dtype, tree._grad is None))
        return
    else:
        note(_constant_key(tree))
        return
    for v in items:
        if type(v) is _array:
            found(v)
            d = v._data
            note((d.shape, d.dtype, v._grad is None))
        else:
            _signature(v, found, note)


def _constant_key(v: Any) -> tuple:
    t = type(v)
    if v is None or t in (int, float, bool, str, complex):
        return (t, v)
    try:
        hash(v)
    except TypeError:
        return (t, id(v))
    return (t, v)


def unflatten(spec: Spec, values: list) -> Any:
    """The tree described by ``spec`` (from :func:`flatten`) holding ``values`` as its leaves.

    Args:
        spec: a structure from :func:`flatten`.
        values: one value per leaf, in order.

    Returns:
        The rebuilt tree; dict nodes are plain dicts.
    """
    return _unflatten(iter(spec), iter(values))


def _unflatten(spec: Iterator, values: Iterator) -> Any:
    t = next(spec)
    if t is None:
        return next(values)
    n = next(spec)
    k = _kind_of_type(t)
    if k == DICT:
        return {key: _unflatten(spec, values) for key in n}
    items = [_unflatten(spec, values) for _ in range(n)]
    if t is list:
        return items
    return t(*items) if k == NAMEDTUPLE else t(items)


def flatten_with_paths(
    tree: Any, prefix: str = "", is_leaf: Callable[[Any], bool] | None = None
) -> Iterator[tuple[str, Any]]:
    """Yield ``(prefix + "." + dotted_path, leaf)`` depth first, without recursion.

    Args:
        tree: the tree.
        prefix: prepended, with a dot, to each path (so an empty prefix gives ``".a.b"``).
        is_leaf: optional predicate; a node for which it is true is one leaf.

    Yields:
        Pairs of prefixed path and leaf.
    """
    stack: list[tuple[str, Any]] = [(prefix, tree)]
    while stack:
        key, node = stack.pop()
        if is_leaf is not None and is_leaf(node):
            yield key, node
            continue
        k = kind(node)
        # the stack pops from the end, so children are pushed in reverse to come out in order
        if k == DICT:
            stack.extend((f"{key}.{c}", child) for c, child in reversed(node.items()))
        elif k:
            stack.extend((f"{key}.{i}", node[i]) for i in reversed(range(len(node))))
        else:
            yield key, node


# -- structure and merging ---------------------------------------------------------------------


def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """The containers of ``tree`` with ``None`` for each leaf (dicts, lists, plain tuples).

    Args:
        tree: the tree.
        is_leaf: optional predicate; a node for which it is true is a leaf.

    Returns:
        The skeleton, or ``None`` for a leaf.
    """
    if is_leaf is not None and is_leaf(tree):
        return None
    k = kind(tree)
    if k == DICT:
        return {key: structure(v, is_leaf) for key, v in tree.items()}
    if k == LIST:
        return [structure(v, is_leaf) for v in tree]
    if k:
        return tuple(structure(v, is_leaf) for v in tree)
    return None


def _absent(tree: Any) -> bool:
    return tree is None or (kind(tree) != LEAF and len(tree) == 0)


def merge(tree_a: Any, tree_b: Any, merge_fn: Callable[[Any, Any], Any] | None = None) -> Any:
    """Merge two trees like a deep ``dict.update`` (``None`` and empty containers are absent).

    Args:
        tree_a: the first tree (its sequence types and key order win).
        tree_b: the second tree.
        merge_fn: combines two values at the same place that cannot merge structurally.

    Returns:
        The merged tree.

    Raises:
        ValueError: both trees hold a value at one place and ``merge_fn`` is ``None``, or
            two empty containers of different types meet.
    """
    a_absent = _absent(tree_a)
    b_absent = _absent(tree_b)
    if a_absent and b_absent:
        if tree_a is None or tree_b is None:
            return tree_a if tree_a is not None else tree_b
        if type(tree_a) is not type(tree_b):  # {} and []: two different empty structures
            raise ValueError(f"Cannot merge {type(tree_a).__name__} with {type(tree_b).__name__}")
        return type(tree_a)()
    if a_absent:
        return tree_b
    if b_absent:
        return tree_a
    ka, kb = kind(tree_a), kind(tree_b)
    if ka and ka != DICT and kb and kb != DICT:
        items = [merge(a, b, merge_fn) for a, b in zip_longest(tree_a, tree_b)]
        return rebuild(tree_a, items)
    if ka == DICT and kb == DICT:
        keys = list(tree_a) + [key for key in tree_b if key not in tree_a]
        return {key: merge(tree_a.get(key), tree_b.get(key), merge_fn) for key in keys}
    if merge_fn is None:
        raise ValueError(
            "Trees contain elements at the same locations but no merge function was provided"
        )
    return merge_fn(tree_a, tree_b)
