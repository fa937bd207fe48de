"""``torch.autograd.functional``: ``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp``, ``hvp``.

Written with ``torch.autograd.grad`` over the one engine, as PyTorch writes them: inputs are
detached copies that require grad (or, with ``create_graph=True``, graph-connected views of
inputs that already require grad), unused inputs get zeros, and results are detached unless
``create_graph`` is set. ``jvp`` is the double-backward trick (the VJP is linear in its
cotangent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.extend import array, from_value, xp

from .._tensor_class import tensors

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _tuple(x: Any, who: str, what: str) -> tuple[bool, tuple]:
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(items):
        if not isinstance(t, array):
            raise TypeError(
                f"{who}: the {what} given must be either a Tensor or a tuple of Tensors but "
                f"the value at index {i} has type {type(t).__name__}"
            )
    return is_tuple, items


def _prepare(inputs: tuple, create_graph: bool) -> tuple:
    out = []
    for x in inputs:
        if create_graph and x.requires_grad:
            out.append(x * 1)  # a view that keeps the graph (PyTorch's view_as)
        else:
            out.append(from_value(x._data).requires_grad_())
    return tuple(out)


def _finish(ts: tuple, create_graph: bool) -> tuple:
    return tuple(t if create_graph or t is None else from_value(t._data) for t in ts)


def _grad(outs, ins, gos, create_graph: bool, like: tuple) -> tuple:
    from . import grad as _autograd_grad

    live = [(o, g) for o, g in zip(outs, gos) if o.requires_grad]
    if not live:
        gs = (None,) * len(ins)
    else:
        gs = _autograd_grad(
            [o for o, _ in live],
            ins,
            [g for _, g in live],
            create_graph=create_graph,
            allow_unused=True,
        )
    return tuple(from_value(xp.zeros_like(x._data)) if g is None else g for g, x in zip(gs, like))


def _check_v(v: Any, outs: tuple, who: str, what: str) -> tuple:
    if v is None:
        for o in outs:
            if o._data.size != 1:
                raise RuntimeError(
                    f"{who}: the vector v can only be None if the {what} is a single element "
                    f"Tensor (got shape {o.shape})"
                )
        return tuple(from_value(xp.ones_like(o._data)) for o in outs)
    _, vs = _tuple(v, who, "v")
    if len(vs) != len(outs):
        raise RuntimeError(f"{who}: v has {len(vs)} tensors for {len(outs)} {what}s")
    for i, (a, b) in enumerate(zip(vs, outs)):
        if a.shape != b.shape:
            raise RuntimeError(
                f"{who}: entry {i} of v has shape {a.shape} but the {what} has shape {b.shape}"
            )
    return vs


def _call(func: Callable, ins: tuple, who: str) -> tuple[bool, tuple]:
    with mx.enable_grad():
        out = func(*ins)
    return _tuple(out, who, "outputs of the user-provided function")


def vjp(
    func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False
) -> tuple:
    """The outputs of ``func(*inputs)`` and the vector-Jacobian product ``v^T J``.

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        inputs: a tensor or a tuple of tensors.
        v: one cotangent per output (may be omitted for a one-element output).
        create_graph: make the results differentiable.
        strict: accepted for PyTorch code (unused inputs get zeros).

    Returns:
        ``(outputs, vjp)``, each shaped as given.
    """
    is_tuple, xs = _tuple(inputs, "vjp", "inputs")
    ins = _prepare(xs, create_graph)
    out_tuple, outs = _call(func, ins, "vjp")
    vs = _check_v(v, outs, "vjp", "output")
    gs = _finish(_grad(outs, ins, vs, create_graph, xs), create_graph)
    outs = _finish(outs, create_graph)
    return tensors(((outs if out_tuple else outs[0]), (gs if is_tuple else gs[0])))


def jvp(
    func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False
) -> tuple:
    """The outputs of ``func(*inputs)`` and the Jacobian-vector product ``J v``.

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        inputs: a tensor or a tuple of tensors.
        v: one tangent per input (may be omitted for a one-element input).
        create_graph: make the results differentiable.
        strict: accepted for PyTorch code.

    Returns:
        ``(outputs, jvp)``, each shaped as ``func``'s outputs.
    """
    is_tuple, xs = _tuple(inputs, "jvp", "inputs")
    vs = _check_v(v, xs, "jvp", "input")
    ins = _prepare(xs, create_graph)
    out_tuple, outs = _call(func, ins, "jvp")
    us = tuple(from_value(xp.zeros_like(o._data)).requires_grad_() for o in outs)
    gs = _grad(outs, ins, us, True, xs)
    pairs = [(g, w) for g, w in zip(gs, vs) if g.requires_grad]
    if pairs:
        from . import grad as _autograd_grad

        res = _autograd_grad(
            [g for g, _ in pairs],
            list(us),
            [w for _, w in pairs],
            create_graph=create_graph,
            allow_unused=True,
        )
    else:
        res = (None,) * len(us)
    res = tuple(from_value(xp.zeros_like(o._data)) if r is None else r for r, o in zip(res, outs))
    res = _finish(res, create_graph)
    outs = _finish(outs, create_graph)
    return tensors(((outs if out_tuple else outs[0]), (res if out_tuple else res[0])))


def jacobian(
    func: Callable,
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
) -> Any:
    """The Jacobian of ``func`` at ``inputs``: for output ``i`` and input ``j``, a tensor of
    shape ``outputs[i].shape + inputs[j].shape`` (nested tuples as PyTorch for tuple inputs or
    outputs).

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        inputs: a tensor or a tuple of tensors.
        create_graph: make the result differentiable.
        strict: accepted for PyTorch code.
        vectorize: accepted for PyTorch code (rows are computed one by one).
        strategy: ``"reverse-mode"`` or ``"forward-mode"`` (same result).

    Returns:
        A tensor, a tuple, or a tuple of tuples.
    """
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(
            f'jacobian: expected strategy to be either "forward-mode" or "reverse-mode", '
            f"got {strategy!r}"
        )
    is_tuple, xs = _tuple(inputs, "jacobian", "inputs")
    ins = _prepare(xs, create_graph)
    out_tuple, outs = _call(func, ins, "jacobian")
    table = []
    for o in outs:
        n = o._data.size
        rows: list[list] = [[] for _ in xs]
        for e in range(n):
            onehot = backend.array_module(o._data).zeros(n, dtype=o._data.dtype)  # o's device
            onehot[e] = 1
            go = from_value(onehot.reshape(o._data.shape))
            gs = _grad((o,), ins, (go,), create_graph, xs)
            for j, g in enumerate(gs):
                rows[j].append(g)
        blocks = []
        for j, x in enumerate(xs):
            if rows[j]:
                block = mx.stack(rows[j]).reshape(o.shape + x.shape)
            else:
                zeros = backend.array_module(x._data).zeros
                block = from_value(zeros(o._data.shape + x._data.shape, x._data.dtype))
            blocks.append(block if create_graph else from_value(block._data))
        table.append(tuple(blocks))
    if not out_tuple:
        row = table[0]
        return tensors(row if is_tuple else row[0])
    return tensors(tuple(row if is_tuple else row[0] for row in table))


def hessian(
    func: Callable,
    inputs: Any,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
) -> Any:
    """The Hessian of scalar ``func`` at ``inputs`` (shape ``x.shape + x.shape`` for one input;
    a tuple of tuples for several).

    Raises:
        RuntimeError: when ``func`` does not return a single-element tensor.
    """
    is_tuple, xs = _tuple(inputs, "hessian", "inputs")

    def jac_func(*inp):
        out_tuple, outs = _call(func, inp, "hessian")
        if out_tuple or outs[0]._data.size != 1:
            raise RuntimeError(
                "hessian: the function given to hessian should return a single Tensor "
                "containing a single element"
            )
        return jacobian(func, inp, create_graph=True)

    res = jacobian(jac_func, xs, create_graph=create_graph, strategy=outer_jacobian_strategy)
    if not is_tuple:
        return res[0][0]
    return res


def vhp(
    func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False
) -> tuple:
    """``(func(inputs), v^T H)`` for scalar ``func``."""
    is_tuple, xs = _tuple(inputs, "vhp", "inputs")

    ins = _prepare(xs, True)
    _, outs = _call(func, ins, "vhp")
    if outs[0]._data.size != 1:
        raise RuntimeError("vhp: the function given to vhp should return a single element")
    vs = _check_v(v, xs, "vhp", "input")
    gs = _grad(outs, ins, (from_value(xp.ones_like(outs[0]._data)),), True, xs)
    pairs = [(gr, w) for gr, w in zip(gs, vs) if gr.requires_grad]
    res = _grad(tuple(p[0] for p in pairs), ins, tuple(p[1] for p in pairs), create_graph, xs)
    res = _finish(res, create_graph)
    out = _finish(outs, create_graph)[0]
    return tensors((out, (res if is_tuple else res[0])))


def hvp(
    func: Callable, inputs: Any, v: Any = None, create_graph: bool = False, strict: bool = False
) -> tuple:
    """``(func(inputs), H v)`` for scalar ``func`` (the Hessian is symmetric: equals ``vhp``)."""
    return vhp(func, inputs, v, create_graph, strict)
