"""The walks behind ``Module.update`` and ``Module.update_modules`` (MLX's semantics)."""

from __future__ import annotations

from chainrule.core.array import array


def _is_module(x) -> bool:
    from .module import Module

    return isinstance(x, Module)


def _empty_node(x) -> bool:
    """An empty dict or list in an update: nothing to replace there (as leaf_modules() gives)."""
    return type(x) in (dict, list) and not x


def _update_entry(dst, key, v, where: str, strict: bool, owner: str) -> None:
    """Put module ``v`` at ``dst[key]``, or update the container there with it."""
    if _empty_node(v):
        return
    cur = dst[key]
    if _is_module(cur) and _is_module(v):
        dst[key] = v
    elif isinstance(cur, (dict, list)):
        _update_modules(cur, v, where, strict, owner)
    elif strict:
        raise ValueError(
            f"update_modules: {where!r} holds a {type(cur).__name__}, received a {type(v).__name__}"
        )


def _update_modules(dst, new, path: str, strict: bool, owner: str) -> None:
    """``Module.update_modules``'s walk (a plain function: a recursive closure would hold the
    module in a reference cycle until the garbage collector ran)."""
    if _empty_node(new):
        return
    if isinstance(new, dict):
        for k, v in new.items():
            where = f"{path}.{k}" if path else str(k)
            if k in dst:
                _update_entry(dst, k, v, where, strict, owner)
            elif strict:
                raise ValueError(f"update_modules: {owner} has no sub-module named {where!r}")
    elif isinstance(new, list):
        if not isinstance(dst, list):
            if strict:
                raise ValueError(
                    f"update_modules: {path!r} holds a {type(dst).__name__}, received a list"
                )
            return
        if len(new) > len(dst) and strict:
            raise ValueError(
                f"update_modules: {path!r} has {len(dst)} entries, received {len(new)}"
            )
        for i, v in enumerate(new[: len(dst)]):
            _update_entry(dst, i, v, f"{path}.{i}", strict, owner)
    elif strict:
        raise ValueError(f"update_modules: received invalid type {type(new).__name__}")


def _check_update(dst, new, path: str, problems: list) -> None:
    """Collect the reasons a strict update would fail (unknown names, wrong types)."""
    if isinstance(new, (dict, list)) and not new:
        return  # an empty placeholder (MLX's trees keep {} for non-parameter entries)
    if isinstance(new, dict):
        if not isinstance(dst, dict):
            problems.append(f"{path!r} is a {type(dst).__name__}, received a dict")
            return
        for k, v in new.items():
            where = f"{path}.{k}" if path else str(k)
            if k not in dst:
                problems.append(f'the module has no parameter named "{where}"')
                continue
            cur = dst[k]
            if isinstance(cur, array):
                if not isinstance(v, array):
                    problems.append(
                        f"parameter {where!r} must be replaced by an array, received "
                        f"{type(v).__name__}"
                    )
            else:
                _check_update(cur, v, where, problems)
    elif isinstance(new, list):
        if not isinstance(dst, list):
            problems.append(f"{path!r} is a {type(dst).__name__}, received a list")
            return
        if len(new) > len(dst):
            problems.append(f"{path!r} has {len(dst)} entries, received {len(new)}")
            return
        for i, v in enumerate(new):
            where = f"{path}.{i}"
            cur = dst[i]
            if isinstance(cur, array):
                if not isinstance(v, array):
                    problems.append(
                        f"parameter {where!r} must be replaced by an array, received "
                        f"{type(v).__name__}"
                    )
            else:
                _check_update(cur, v, where, problems)
    elif not (isinstance(new, tuple) and not new):
        problems.append(f"received invalid type {type(new).__name__} at {path or 'the top'!r}")


def _replace(container, key, cur, new) -> None:
    if isinstance(new, array) and new._node is None and isinstance(cur, array):
        node = cur._node
        if node is not None and node.prim is None and new._data.dtype.kind in "fc":
            new.requires_grad = True
    container[key] = new


def _apply_update(dst, new) -> None:
    if isinstance(new, dict) and isinstance(dst, dict):
        for k, v in new.items():
            if k in dst:
                cur = dst[k]
                if isinstance(cur, array):
                    if isinstance(v, array):
                        if v._node is None:  # _replace, inline: this runs every step
                            _replace(dst, k, cur, v)
                        else:
                            dst[k] = v
                else:
                    _apply_update(cur, v)
    elif isinstance(new, list) and isinstance(dst, list):
        for i, v in enumerate(new[: len(dst)]):
            cur = dst[i]
            if isinstance(cur, array):
                if isinstance(v, array):
                    _replace(dst, i, cur, v)
            else:
                _apply_update(cur, v)
