"""``mx.export_to_dot``: the recorded graph behind some arrays, in Graphviz's DOT language.

Arrays here are computed eagerly, so the graph of an array is the one recorded for
differentiation (inputs with ``requires_grad``, or inside ``grad``/``vjp``/...); an array that
records nothing is drawn as a lone input. As in MLX, arrays are ellipses named ``A``, ``B``,
... (or by the keyword they were passed under), primitives are boxes, and arrays that are not
computed from anything sit on the top rank. The walk is iterative, so long chains are fine.
"""

from __future__ import annotations

import os
from typing import Any

from . import tree as pytree
from .array import Node, array

__all__ = ["export_to_dot"]


def _letters(n: int) -> str:
    """``1 -> A``, ``26 -> Z``, ``27 -> AA`` (MLX's names)."""
    out = []
    while n > 0:
        n, r = divmod(n - 1, 26)
        out.append(chr(ord("A") + r))
    return "".join(reversed(out))


def _describe(value) -> str:
    shape = getattr(value, "shape", ())
    dtype = getattr(value, "dtype", type(value).__name__)
    return f"{tuple(shape)}, {getattr(dtype, 'name', dtype)}"


def _graph(roots: list, names: dict[int, str]) -> str:
    """The DOT text of the graph reaching ``roots`` (``Node`` objects or raw values)."""
    label: dict[int, str] = {}
    keep: list = []  # holds every drawn object so ids stay unique while we work
    lines = ["digraph {"]

    def name(obj) -> str:
        key = id(obj)
        got = label.get(key)
        if got is None:
            got = names.get(key) or _letters(len(label) + 1)
            label[key] = got
            keep.append(obj)
        return got

    done: set[int] = set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        obj, expanded = stack.pop()
        if type(obj) is Node and obj.prim is not None:
            if not expanded:
                if id(obj) in done:
                    continue
                done.add(id(obj))
                stack.append((obj, True))
                stack.extend((a, False) for a in reversed(obj.args) if _drawable(a))
                continue
            out = name(obj)
            prim = f"P{id(obj)}"
            lines.append(f'"{prim}" [label="{obj.prim.name}", shape=rectangle];')
            for a in obj.args:
                if _drawable(a):
                    lines.append(f'"{name(a)}" -> "{prim}";')
            lines.append(f'"{prim}" -> "{out}";')
            lines.append(f'"{out}" [label="{out}\\n{_describe(obj.value)}"];')
        else:
            if id(obj) in done:
                continue
            done.add(id(obj))
            n = name(obj)
            value = obj.value if type(obj) is Node else obj
            lines.append(f'{{ rank=source; "{n}"; }}')
            lines.append(f'"{n}" [label="{n}\\n{_describe(value)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _drawable(a) -> bool:
    """Graph inputs worth drawing: nodes and backend arrays (not Python scalars)."""
    return type(a) is Node or hasattr(a, "shape")


def export_to_dot(file: Any, *args: Any, **kwargs: Any) -> None:
    """Write the graph that computes ``args`` (and ``kwargs``) to ``file`` in DOT format.

    Args:
        file: a path (``str`` or ``os.PathLike``) or an object with a ``write`` method.
        *args: output arrays, or trees of arrays.
        **kwargs: more outputs; each is drawn under its keyword's name.

    Raises:
        ValueError: when ``file`` is neither a path nor writable.
    """
    outputs = pytree.leaves((args, kwargs))
    names: dict[int, str] = {}
    for key, value in kwargs.items():
        if isinstance(value, array):
            names[id(value._node if value._node is not None else value._data)] = str(key)
    roots = []
    for o in outputs:
        if isinstance(o, array):
            roots.append(o._node if o._node is not None else o._data)
    text = _graph(roots, names)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "w", encoding="utf-8") as f:
            f.write(text)
    elif hasattr(file, "write"):
        file.write(text)
    else:
        raise ValueError(
            "export_to_dot: file must be a path or a file-like object with a write method, "
            f"not {type(file).__name__}"
        )
