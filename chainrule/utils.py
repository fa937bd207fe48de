"""Tree utilities with the API of Apple MLX's ``mlx.utils``.

A *tree* is an arbitrarily nested collection of ``dict``, ``list`` and ``tuple`` objects
without cycles; anything else is a *leaf*. Subclasses count as their base container, so a
``chainrule.nn.Module`` (a ``dict`` subclass) is a dict node. Functions that build new trees
return plain ``dict`` objects for dict nodes, as MLX does.

Paths use dot notation: ``{"layers": [{"w": 1}]}`` flattens to ``[("layers.0.w", 1)]``.
Dictionary keys should therefore be valid Python identifiers (in particular, contain no dot).

MLX's :func:`tree_flatten` emits nothing for an empty container, so ``{"a": {"w": 1},
"drop": {}}`` cannot be rebuilt from its flat form alone. Code that must restore empty
sub-trees (checkpoints) saves :func:`tree_structure` next to the flat leaves and rebuilds the
tree with :func:`tree_fill`::

    pairs = tree_flatten(params)
    skeleton = tree_structure(params)  # JSON-serialisable
    ...
    params = tree_fill(skeleton, pairs)  # empty sub-trees intact

The walks themselves, and the policy of what is a container, are ``chainrule.core.tree``, which
autograd, ``mx.compile``, modules and optimizers use too; these functions are its public face.
Walks are iterative or recurse only once per nesting level, so wide trees with many leaves
never approach Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .core import tree as _tree

__all__ = [
    "tree_fill",
    "tree_flatten",
    "tree_map",
    "tree_map_with_path",
    "tree_merge",
    "tree_reduce",
    "tree_structure",
    "tree_unflatten",
]

FlatTree = list[tuple[str, Any]] | dict[str, Any]


def tree_map(
    fn: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Apply ``fn`` to every leaf of ``tree`` and return a new tree of the results.

    Every tree in ``rest`` must be a superset of ``tree`` (same containers at least where
    ``tree`` has them); its corresponding nodes are passed to ``fn`` as extra positional
    arguments, like :func:`itertools.starmap`. Lists and tuples keep their type, dict nodes
    (including dict subclasses such as ``Module``) become plain ``dict`` objects.

    Args:
        fn: Called as ``fn(leaf, *rest_leaves)`` for each leaf.
        tree: The tree whose structure drives the walk.
        *rest: Extra trees walked in lockstep with ``tree``.
        is_leaf: Optional predicate; a node for which it returns ``True`` is handed to ``fn``
            whole instead of being descended into.

    Returns:
        A tree with the structure of ``tree`` holding the values returned by ``fn``.
    """
    return _tree.map(fn, tree, *rest, is_leaf=is_leaf)


def tree_map_with_path(
    fn: Callable[..., Any],
    tree: Any,
    *rest: Any,
    is_leaf: Callable[[Any], bool] | None = None,
    path: Any | None = None,
) -> Any:
    """Like :func:`tree_map`, but ``fn`` also receives the dotted path of each leaf.

    Example: for ``{"model": [{"w": 0}]}`` the leaf is visited with path ``"model.0.w"``.
    A leaf at the root is visited with ``path`` unchanged (``None`` by default).

    Args:
        fn: Called as ``fn(path, leaf, *rest_leaves)`` for each leaf.
        tree: The tree whose structure drives the walk.
        *rest: Extra trees walked in lockstep with ``tree``.
        is_leaf: Optional predicate; a node for which it returns ``True`` is treated as a leaf.
        path: Prefix for the paths passed to ``fn``; falsy means no prefix.

    Returns:
        A tree with the structure of ``tree`` holding the values returned by ``fn``.
    """
    return _tree.map_with_path(fn, tree, *rest, is_leaf=is_leaf, path=path)


def tree_flatten(
    tree: Any,
    prefix: str = "",
    is_leaf: Callable[[Any], bool] | None = None,
    destination: list[tuple[str, Any]] | dict[str, Any] | None = None,
) -> list[tuple[str, Any]] | dict[str, Any]:
    """Flatten a tree into ``(dotted_path, leaf)`` pairs.

    ``tree_flatten([[[0]]])`` gives ``[("0.0.0", 0)]``; ``tree_flatten([[[0]]], ".hello")``
    gives ``[("hello.0.0.0", 0)]``; ``tree_flatten({"a": {"b": 1}}, destination={})`` gives
    ``{"a.b": 1}``. Empty containers contribute nothing (see :func:`tree_structure`).

    Args:
        tree: The tree to flatten.
        prefix: Prepended to every key; its first character is always discarded, so pass
            ``".name"`` to get keys starting with ``"name."``.
        is_leaf: Optional predicate; a node for which it returns ``True`` is kept whole.
        destination: A list to append pairs to, or a dict to store ``path -> leaf`` in.
            ``None`` means a new list.

    Returns:
        ``destination`` (a new list if it was ``None``) filled with the flat tree.
    """
    if destination is None:
        destination = []
    if isinstance(destination, list):
        for key, leaf in _tree.flatten_with_paths(tree, prefix, is_leaf):
            destination.append((key[1:], leaf))
    elif isinstance(destination, dict):
        for key, leaf in _tree.flatten_with_paths(tree, prefix, is_leaf):
            destination[key[1:]] = leaf
    else:
        raise ValueError("destination must be a list, a dict or None")
    return destination


class _Branch(dict):
    """Interior node built by :func:`tree_unflatten`.

    A distinct type keeps interior nodes apart from leaves that happen to be dicts, so the
    final list/dict conversion never descends into a leaf value.
    """


def _finalize(node: _Branch) -> list | dict:
    # Recurses once per nesting level of the paths, never once per leaf.
    children = {k: _finalize(v) if isinstance(v, _Branch) else v for k, v in node.items()}
    try:
        indexed = sorted((int(k), k) for k in children)
    except ValueError:
        return children
    if any(str(i) != k for i, k in indexed):  # "01" next to "1": keys, not list indices
        return children
    if not indexed:
        # No keys at all (empty input): an empty dict is the neutral, Module-friendly answer.
        return {}
    result: list = []
    for i, k in indexed:
        # MLX fills missing indices with empty dicts, which is also how an empty module in
        # a list (e.g. a parameterless layer) comes back from its flat form.
        result.extend({} for _ in range(i - len(result)))
        result.append(children[k])
    return result


def tree_unflatten(tree: FlatTree) -> Any:
    """Rebuild a tree from its flat representation.

    ``tree_unflatten([("hello.world", 42)])`` and ``tree_unflatten({"hello.world": 42})`` both
    give ``{"hello": {"world": 42}}``. A node whose child keys are all integers becomes a list
    ordered by index, with missing indices filled by ``{}``; any other node becomes a dict in
    first-seen key order. A single pair with key ``""`` is a bare leaf. If a path repeats, the
    later value wins. Empty input gives ``{}``. Empty sub-trees that :func:`tree_flatten`
    dropped do not come back; use :func:`tree_structure` with :func:`tree_fill` for that.

    Args:
        tree: A list of ``(dotted_path, leaf)`` pairs or a ``{dotted_path: leaf}`` dict, as
            returned by :func:`tree_flatten`.

    Returns:
        The rebuilt tree.

    Raises:
        ValueError: If a path is both a leaf and the parent of another path.
    """
    items = list(tree.items()) if isinstance(tree, dict) else list(tree)
    if len(items) == 1 and items[0][0] == "":
        return items[0][1]

    root = _Branch()
    for key, value in items:
        *parents, last = key.split(".")
        node = root
        for part in parents:
            child = node.get(part)
            if child is None and part not in node:
                child = node[part] = _Branch()
            elif not isinstance(child, _Branch):
                raise ValueError(f"path {key!r} runs through the leaf at {part!r}")
            node = child
        if isinstance(node.get(last), _Branch):
            raise ValueError(f"path {key!r} is a leaf but also has children")
        node[last] = value
    return _finalize(root)


def tree_reduce(
    fn: Callable[[Any, Any], Any],
    tree: Any,
    initializer: Any = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """Fold the leaves of ``tree`` left to right with ``fn``.

    ``tree_reduce(lambda acc, x: acc + x, {"a": [1, 2, 3], "b": [4, 5]}, 0)`` is ``15``.
    As in MLX, an accumulator of ``None`` means "nothing yet": the next leaf replaces it
    instead of being passed to ``fn``.

    Args:
        fn: Called as ``fn(accumulator, leaf)``; returns the new accumulator.
        tree: The tree to reduce.
        initializer: The starting accumulator; ``None`` starts from the first leaf.
        is_leaf: Optional predicate; a node for which it returns ``True`` is one leaf.

    Returns:
        The final accumulator (``initializer`` for a tree without leaves).
    """
    accumulator = initializer
    for leaf in _tree.leaves(tree, is_leaf):
        accumulator = leaf if accumulator is None else fn(accumulator, leaf)
    return accumulator


def tree_merge(
    tree_a: Any,
    tree_b: Any,
    merge_fn: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """Merge two trees into one holding the values of both, like a deep ``dict.update``.

    ``None`` and empty containers count as absent, so the other tree's value is taken there;
    lists and tuples merge element-wise (the shorter one padded with ``None``) and keep
    ``tree_a``'s type; dicts merge key-wise into a plain ``dict`` (``tree_a``'s keys first).
    Two empty containers of one type merge into an empty one of that type (an empty sub-tree
    survives, and ``merge_fn`` is not called); of different types (``{}`` and ``[]``) they
    raise, as in MLX.

    Args:
        tree_a: The first tree.
        tree_b: The second tree.
        merge_fn: Called as ``merge_fn(a, b)`` where both trees hold something at the same
            place that cannot be merged structurally (two leaves, or mismatched containers).

    Returns:
        The merged tree.

    Raises:
        ValueError: If both trees hold a value at the same place and ``merge_fn`` is None, or
            two empty containers of different types meet.
    """
    return _tree.merge(tree_a, tree_b, merge_fn)


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Return the skeleton of ``tree``: its containers, with ``None`` in place of each leaf.

    Dict nodes become plain dicts, lists stay lists and tuples stay tuples; empty containers
    are kept, which is what :func:`tree_flatten` loses. The skeleton is JSON-serialisable when
    the dict keys are strings (``json`` writes tuples as lists, so after a JSON round trip
    :func:`tree_fill` rebuilds former tuples as lists).

    Args:
        tree: The tree to describe.
        is_leaf: Optional predicate; must match the one given to :func:`tree_flatten` so the
            skeleton's leaves line up with the flat keys.

    Returns:
        The skeleton, or ``None`` if ``tree`` itself is a leaf.
    """
    return _tree.structure(tree, is_leaf)


def tree_fill(structure: Any, tree: FlatTree) -> Any:
    """Rebuild a tree from a :func:`tree_structure` skeleton and :func:`tree_flatten` pairs.

    This is :func:`tree_unflatten` with the shape taken from ``structure`` instead of guessed
    from the keys, so empty sub-trees (``{}``, ``[]``, ``()``) and dicts with numeric keys come
    back exactly: ``tree_fill(tree_structure(t), tree_flatten(t)) == t`` for any tree ``t``
    whose dict keys are strings without dots.

    Args:
        structure: A skeleton from :func:`tree_structure` (possibly after a JSON round trip).
        tree: The flat leaves, as a list of ``(dotted_path, leaf)`` pairs or a dict.

    Returns:
        A new tree shaped like ``structure`` with every ``None`` replaced by its leaf.

    Raises:
        KeyError: If a leaf of ``structure`` has no entry in ``tree``.
        ValueError: If ``tree`` has entries that are not leaves of ``structure``.
    """
    leaves = dict(tree.items() if isinstance(tree, dict) else tree)
    missing: list[str] = []
    used: set[str] = set()

    def take(path: str | None, _: Any) -> Any:
        key = path or ""
        if key not in leaves:
            missing.append(key)
            return None
        used.add(key)
        return leaves[key]

    result = tree_map_with_path(take, structure)
    if missing:
        raise KeyError(f"no value for {len(missing)} leaf path(s), e.g. {missing[:5]}")
    unused = [k for k in leaves if k not in used]
    if unused:
        raise ValueError(f"{len(unused)} path(s) are not leaves of the structure: {unused[:5]}")
    return result
