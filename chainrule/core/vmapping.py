"""``mx.vmap``: argument handling, axes trees, the vectorised path and its per-example fallback.

The batching itself (tracing one example, replaying the graph with each primitive's batching
rule) is ``batching.py``; this module matches ``in_axes``/``out_axes`` to the argument and output
trees, picks the path and moves the mapped axes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as _np

from . import backend as _backend
from . import batching, ops
from . import devices as _devices
from . import tree as pytree
from .array import _from_value, array
from .autograd import MAPPING, ArgumentError
from .backend import xp
from .custom import custom_function
from .gpu_closure import back_to_gpu, closure_on_host, replaced

__all__ = ["vmap"]


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
    """Vectorise ``fun`` over an axis of its inputs (MLX's ``vmap``).

    ``fun`` runs once on the first example with recording on, and the recorded graph is
    replayed on the whole batch with one batching rule per primitive (``batching.py``). When
    the replay could differ from a per-example loop (a primitive without a rule, a constant
    computed from the example, values read into Python, random draws), ``fun`` instead runs
    once per example and the results are stacked; ``batching.STATS`` counts both paths.
    Gradients flow through either (``grad`` of a ``vmap`` and ``vmap`` of a ``grad``). A
    ``custom_function`` with a ``.vmap`` rule is batched by that rule.

    Args:
        fun: a function of arrays or trees of arrays, returning an array or a tree of arrays.
        in_axes: the mapped axis of each argument: an int, ``None`` for unmapped, or a tuple
            with one entry per argument (each an int, ``None`` or a tree matching the argument).
        out_axes: where the mapped axis goes in the outputs (an int, or a tree matching them).

    Returns:
        The vectorised function.

    Examples:
        >>> import chainrule.core as mx
        >>> xs = mx.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> mx.vmap(lambda x: x @ x)(xs)  # one dot product per row
        array([5, 25, 61], dtype=float32)
        >>> mx.vmap(mx.grad(lambda x: (x**3).sum()))(xs)  # per-example gradients
        array([[3, 12],
               [27, 48],
               [75, 108]], dtype=float32)
    """

    @functools.wraps(fun)
    def wrapper(*args):
        if isinstance(in_axes, (tuple, list)) and not (len(args) == 1 and len(in_axes) != 1):
            axes = tuple(in_axes)
        else:
            axes = (in_axes,) * len(args) if not isinstance(in_axes, (tuple, list)) else (in_axes,)
        if len(axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(axes)} entries for {len(args)} arguments")
        leaves, leaf_axes = [], []
        for i, (a, ax) in enumerate(zip(args, axes)):
            for leaf, lax in _match_axes(a, ax, f"argument {i}"):
                leaves.append(leaf)
                leaf_axes.append(lax)
        size = None
        for leaf, ax in zip(leaves, leaf_axes):
            if ax is None:
                continue
            if not isinstance(leaf, array):
                raise ArgumentError(
                    f"vmap: the mapped arguments must hold only arrays, not {type(leaf).__name__}"
                )
            shape = leaf.shape
            if not -len(shape) <= ax < len(shape):
                raise ValueError(
                    f"vmap: in_axes {ax} is out of range for an input of shape {shape}"
                )
            n = shape[ax]
            if size is not None and n != size:
                raise ValueError(f"vmap: mapped axes have different sizes {size} and {n}")
            size = n
        if size is None:
            raise ValueError("vmap: at least one argument must be mapped (in_axes not all None)")
        if isinstance(fun, custom_function) and fun._vmap is not None:
            return _custom_vmap(fun, args, axes, out_axes, size)
        try:
            out = _vectorised_vmap(fun, args, leaves, leaf_axes, out_axes, size)
        except batching.Unbatchable as e:
            batching.STATS["fallback"] += 1
            batching.LAST["reason"] = str(e)
        else:
            batching.STATS["vectorised"] += 1
            return out
        results = []
        MAPPING.depth += 1  # the loop is inside the transform (mx.async_eval refuses)
        try:
            for i in range(size):
                picked = iter(
                    leaf if ax is None else ops.take(ops._as(leaf), i, ax)
                    for leaf, ax in zip(leaves, leaf_axes)
                )
                call = [pytree.map(lambda _, it=picked: next(it), a) for a in args]
                results.append(fun(*call))
        finally:
            MAPPING.depth -= 1
        flat = [pytree.leaves(r) for r in results]
        outs = []
        for j, (_leaf, ax) in enumerate(_match_axes(results[0], out_axes, "output")):
            column = [f[j] for f in flat]
            outs.append(ops.stack(column, axis=0 if ax is None else ax))
        return _unflatten_all(results[0], outs)

    return wrapper


def _vectorised_vmap(fun, args, leaves, leaf_axes, out_axes, size):
    """One traced call on the first example, replayed on the batch (``batching.py``).

    GPU arrays: the tracer is a NumPy subclass, so the trace runs on host copies (the first
    example, and the unmapped array arguments, which keep their nodes), with the CPU as the
    default device; the replay then computes on the GPU arrays themselves (constants the trace
    made are copied over, the unmapped arguments and the GPU arrays the function reads from its
    closure or globals are the caller's own GPU arrays). Arguments on both devices fall back to
    the loop."""
    gpu = any(isinstance(leaf, array) and _backend.is_gpu(leaf._data) for leaf in leaves)
    examples, batched = [], []
    originals: dict = {}  # id(host copy) -> the caller's GPU value (gpu mode)
    leaves = list(leaves)
    for i, (leaf, ax) in enumerate(zip(leaves, leaf_axes)):
        if ax is None:
            if gpu and isinstance(leaf, array):
                d = leaf._data
                if not _backend.is_gpu(d):
                    if d.ndim:
                        raise batching.Unbatchable("host and GPU arrays in one call")
                    continue
                copy = _backend.to_host(d)
                originals[id(copy)] = d
                leaves[i] = _from_value(copy, leaf._node)
            continue
        a = ops._as(leaf)
        if gpu != _backend.is_gpu(a._data):
            raise batching.Unbatchable("host and GPU arrays in one call")
        ax %= a.ndim
        example = xp.take(_backend.to_host(a._data) if gpu else a._data, 0, axis=ax)
        examples.append(example)
        batched.append(a if ax == 0 else ops.moveaxis(a, ax, 0))

    def build(marked):
        it = iter(marked)
        picked = iter(leaf if ax is None else next(it) for leaf, ax in zip(leaves, leaf_axes))
        return [pytree.map(lambda _, p=picked: next(p), a) for a in args]

    if gpu:
        # what fun makes is made on the host, as its inputs are; GPU arrays it reads from its
        # closure or globals hold host copies meanwhile (mapped back to them by ``conv``)
        with _devices.host_default(), closure_on_host(fun, originals) as pairs:
            out, positions = batching.run_trace(fun, build, examples)
            changed = replaced(pairs)
        for a in changed:  # written in place while tracing (once, as on the CPU): to the GPU
            back_to_gpu(a)
    else:
        out, positions = batching.run_trace(fun, build, examples)
    out_leaves = pytree.leaves(out)
    conv = None
    if gpu:

        def conv(v):
            """A host value of the trace as the GPU replay's."""
            if type(v) is not _np.ndarray:
                return v
            got = originals.get(id(v))
            return got if got is not None else _backend.to_gpu(v)

    try:
        results = batching.replay(out_leaves, positions, batched, size, conv)
    except (ValueError, IndexError, TypeError) as e:  # a rule's gap: the loop is always right
        raise batching.Unbatchable(f"the replay failed: {e}") from None
    moved = []
    for r, (_leaf, ax) in zip(results, _match_axes(out, out_axes, "output")):
        if ax is not None and not -r.ndim <= ax < r.ndim:
            raise ValueError(
                f"vmap: out_axes {ax} is out of range for an output of {r.ndim - 1} dimensions"
            )
        if ax is not None and ax % r.ndim != 0:
            r = ops.moveaxis(r, 0, ax)
        moved.append(r)
    return _unflatten_all(out, moved)


def _match_axes(tree, axes, where: str):
    """Pairs ``(leaf, axis)`` for the leaves of ``tree``; ``axes`` is an int/None or a prefix tree.

    As in MLX, a tree that is one array also takes its axis as a tuple of one (``(1,)``).
    """
    if (
        not pytree.kind(tree)
        and isinstance(axes, tuple)
        and len(axes) == 1
        and (axes[0] is None or (isinstance(axes[0], int) and not isinstance(axes[0], bool)))
    ):
        return [(tree, axes[0])]
    out = []
    stack = [(tree, axes)]
    while stack:
        t, ax = stack.pop()
        node_kind = pytree.kind(t)
        if node_kind:
            keys = list(t.keys()) if node_kind == pytree.DICT else list(range(len(t)))
            if ax is None or isinstance(ax, int):
                subs = [(t[k], ax) for k in keys]
            else:
                try:
                    subs = [(t[k], ax[k]) for k in keys]
                except (KeyError, IndexError, TypeError):
                    raise ValueError(
                        f"vmap: the axes {ax!r} do not match the structure of the {where}"
                    ) from None
            stack.extend(reversed(subs))
        else:
            if ax is not None and (not isinstance(ax, int) or isinstance(ax, bool)):
                raise ValueError(
                    f"vmap: axis {ax!r} for a leaf of the {where} must be an int or None"
                )
            out.append((t, ax))
    return out


def _unflatten_all(tree, leaves):
    """``tree`` with its leaves replaced, in order, by ``leaves``."""
    return pytree.unflatten(pytree.flatten(tree)[1], leaves)


def _custom_vmap(fun, args, axes, out_axes, size):
    """Batch a ``custom_function`` with its own rule, then move axes to ``out_axes``."""
    inputs = args[0] if len(args) == 1 else tuple(args)
    in_ax = axes[0] if len(args) == 1 else tuple(axes)
    outs, got_axes = fun._vmap(inputs, in_ax)
    pairs = _match_axes(outs, got_axes, "custom vmap output")
    wanted = [ax for _, ax in _match_axes(outs, out_axes, "output")]
    moved = []
    for (o, have), want in zip(pairs, wanted):
        o = ops._as(o)
        if have is None:
            o = ops.stack([o] * size, axis=0)
            have = 0
        want = 0 if want is None else want
        moved.append(ops.moveaxis(o, have, want) if have != want % o.ndim else o)
    return _unflatten_all(outs, moved)
