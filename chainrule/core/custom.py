"""``mx.custom_function`` (user-defined derivatives) and ``mx.checkpoint`` (recomputation)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from . import ops
from . import tree as pytree
from .array import STATE, Node, _from_value, array
from .autograd import FORWARD, _detach_leaf, _vjp
from .backend import xp

__all__ = ["custom_function", "checkpoint", "record_custom"]


def record_custom(name: str, parents: tuple, values: list, rule: Callable) -> list:
    """Record ``values`` as the outputs of one user-defined operation (the engine's custom-rule
    mechanism, shared by ``custom_function`` and ``chainrule.torch.autograd.Function``).

    Args:
        name: the operation's name (graph pictures, error messages).
        parents: one entry per input: its ``Node`` when it is differentiated, else its backend
            value. Taken as given, so a caller may capture the inputs' nodes before running a
            forward that rebinds them in place.
        values: the outputs' backend values.
        rule: ``rule(g, ans, *xs, argnum, k)``: the cotangent of input ``argnum`` given the
            cotangent ``g`` of output ``k`` (the engine asks once per input and output).

    Returns:
        One ``Node`` per output value.
    """
    prim = ops.Primitive(name, (rule,), True, holomorphic=False)  # the user's own rule
    return [Node(v, prim, parents, {"k": k}) for k, v in enumerate(values)]


class custom_function:
    """A function with user-defined derivatives (MLX's ``mx.custom_function``).

    Decorate a function, then register rules with the decorators below; each is optional and
    an undefined one falls back to differentiating the function itself. As in MLX, the rules
    receive the positional arguments as ``primals`` (the array itself for a one-argument
    function, else a tuple; trees of arrays are allowed), keyword arguments are passed through
    unchanged, and arrays the function captures are constants.

    * ``@f.vjp``: ``(primals, cotangents, outputs, **kwargs) -> cotangents`` shaped like
      ``primals``. Used by every reverse-mode transform (``grad``, ``vjp``, ``.backward()``).
    * ``@f.jvp``: ``(primals, tangents) -> output tangent(s)``. Used by ``jvp``: since ``jvp``
      is derived from reverse passes here, it runs the rule's transpose (a JVP rule is linear
      in the tangents), plus the rule's value at zero tangents where that is not zero. Under
      ``jvp`` without this rule, the function itself is differentiated (the ``vjp`` rule is
      not used), as in MLX. Without a ``vjp`` rule, reverse mode uses the transpose too.
    * ``@f.vmap``: ``(inputs, axes) -> (outputs, out_axes)``. Used when ``mx.vmap`` is applied
      to ``f`` directly; elsewhere ``vmap`` maps examples one at a time.
    """

    def __init__(self, fun: Callable) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self._vjp: Callable | None = None
        self._jvp: Callable | None = None
        self._vmap: Callable | None = None

    def vjp(self, fn: Callable) -> Callable:
        """Register the VJP rule ``(primals, cotangents, outputs) -> cotangents``."""
        self._vjp = fn
        return fn

    def jvp(self, fn: Callable) -> Callable:
        """Register the JVP rule ``(primals, tangents) -> tangents of the outputs``."""
        self._jvp = fn
        return fn

    def vmap(self, fn: Callable) -> Callable:
        """Register the vmap rule ``(inputs, axes) -> (outputs, output axes)``."""
        self._vmap = fn
        return fn

    def __call__(self, *args, **kwargs):
        forward = FORWARD.stack[-1] if FORWARD.stack else None
        if forward is not None and self._jvp is None:
            return self.fun(*args, **kwargs)  # under jvp without a jvp rule: differentiate fun
        if self._vjp is None and self._jvp is None:
            return self.fun(*args, **kwargs)
        leaves = pytree.leaves(args)
        xs = tuple(x for x in leaves if isinstance(x, array))
        if not STATE.enabled or all(x._node is None for x in xs):
            return self.fun(*args, **kwargs)
        saved = STATE.enabled
        STATE.enabled = False
        try:
            out = self.fun(*pytree.map(_detach_leaf, args), **kwargs)
        finally:
            STATE.enabled = saved
        out_leaves = pytree.leaves(out)
        outs = [o for o in out_leaves if isinstance(o, array)]
        name = f"custom:{getattr(self.fun, '__name__', 'fn')}"
        rule = self._make_rule(args, kwargs, out, outs, forward is not None)
        prim = ops.Primitive(name, (rule,), True, holomorphic=False)  # the user's own rule
        recorded = [ops._rec(prim, o._data, xs, {"k": k}) for k, o in enumerate(outs)]
        if forward is not None:
            recorded = self._offsets(forward, args, recorded)
        it = iter(recorded)
        return pytree.map(lambda o: next(it) if isinstance(o, array) else o, out)

    def _offsets(self, forward, args, recorded: list) -> list:
        """Under ``jvp``: the part of the jvp rule's result that no tangent scales (its value
        at zero tangents; a linear rule has none) joins the output tangents. Each output with
        such a part gets a zero-valued tracer of the ``jvp`` added, whose cotangent tells the
        ``jvp`` how that part reaches its outputs."""
        tracing, injections = forward
        saved = STATE.enabled
        STATE.enabled = False
        try:
            primals = pytree.map(_detach_leaf, args)
            primals = primals[0] if len(primals) == 1 else primals
            zeros = pytree.map(
                lambda a: ops.zeros_like(a) if isinstance(a, array) else None, primals
            )
            parts = [o for o in pytree.leaves(self._jvp(primals, zeros)) if isinstance(o, array)]  # type: ignore[misc]
        finally:
            STATE.enabled = saved
        out = []
        for o, c in zip(recorded, parts):
            if c._data.shape == o._data.shape and xp.any(c._data != 0):
                e = tracing.tracer(ops.zeros_like(o), "a custom jvp's output")
                injections.append((e, c))
                o = o + e
            out.append(o)
        return out + recorded[len(out) :]

    def _make_rule(self, args, kwargs, out, outs, forward: bool = False):
        """The variadic VJP rule shared by the recorded outputs (``k`` picks the output)."""
        n_out = len(outs)
        last: list = [None, None, None]  # (k, g, cotangents) of the latest call

        def rule(g, ans, *xs, argnum, k):
            # the engine asks once per input; the user's rule runs once per output cotangent
            if last[0] != k or last[1] is not g:
                cots = [g if j == k else ops.zeros_like(outs[j]) for j in range(n_out)]
                primals = _unflatten_like(args, xs)
                primals = primals[0] if len(primals) == 1 else primals
                if self._vjp is not None and not forward:
                    got = self._vjp(
                        primals, _unflatten_like(out, cots), _unflatten_like(out, outs), **kwargs
                    )
                    got = _array_leaves_like(primals, got, self.fun)
                else:
                    got = self._transpose_jvp(primals, xs, cots)
                last[0], last[1], last[2] = k, g, got
            return last[2][argnum]

        return rule

    def _transpose_jvp(self, primals, xs, cots) -> list:
        """VJP from the JVP rule: ``t -> jvp(t)`` is linear, so its VJP is the transpose."""
        live = [i for i, x in enumerate(xs) if x._data.dtype.kind in "fc"]

        def tangent_map(*ts):
            full = [None] * len(xs)
            for i, t in zip(live, ts):
                full[i] = t
            it = iter(full)
            tangents = pytree.map(lambda a: next(it) if isinstance(a, array) else None, primals)
            res = self._jvp(primals, tangents)
            return [o for o in pytree.leaves(res) if isinstance(o, array)]

        zeros = [ops.zeros_like(xs[i]) for i in live]
        _, grads = _vjp(tangent_map, zeros, cots, "custom_function", create=STATE.enabled)
        out = [None] * len(xs)
        for i, g in zip(live, grads):
            out[i] = g
        return out


def _unflatten_like(tree, arrays):
    """``tree`` with its array leaves replaced, in order, by ``arrays``."""
    it = iter(arrays)
    return pytree.map(lambda o: next(it) if isinstance(o, array) else o, tree)


def _array_leaves_like(primals, got, fun) -> list:
    """The user's cotangents (a tree shaped like ``primals``) for its array leaves, in order."""
    flat_p = pytree.leaves(primals)
    flat_g = pytree.leaves(got)
    arrays = [isinstance(a, array) for a in flat_p]
    if len(flat_g) == len(flat_p):
        return [g for a, g in zip(arrays, flat_g) if a]
    if len(flat_g) == sum(arrays):
        return flat_g
    raise ValueError(
        f"custom_function {getattr(fun, '__name__', '')}: the vjp returned {len(flat_g)} "
        f"cotangents for {sum(arrays)} array inputs"
    )


# -- checkpointing -----------------------------------------------------------------------------


def checkpoint(fun: Callable) -> Callable:
    """Gradient checkpointing (MLX's ``mx.checkpoint``): recompute ``fun``'s activations in the
    backward pass instead of keeping them.

    Called while a transform (or a ``requires_grad`` input) is recording, the wrapped function
    runs ``fun`` without recording and records one node per output whose inputs are the
    array arguments of the call (positional and keyword, in trees). Nothing computed inside
    ``fun`` is kept; the backward pass runs ``fun`` again, recording, and differentiates that
    run. Higher derivatives work the same way (the rerun is recorded when the backward pass
    is). Arrays ``fun`` reads from elsewhere are constants, as in MLX.

    Args:
        fun: a function of arrays (or trees of arrays, and any other values) returning an array
            or a tree of arrays.

    Returns:
        A function with ``fun``'s signature and results.
    """
    name = getattr(fun, "__name__", "fn")

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        flat, spec = pytree.flatten((args, kwargs))
        where = [i for i, v in enumerate(flat) if isinstance(v, array)]
        xs = [flat[i] for i in where]
        if not STATE.enabled or all(x._node is None for x in xs):
            return fun(*args, **kwargs)

        def call(*arrays):
            full = list(flat)
            for i, a in zip(where, arrays):
                full[i] = a
            a2, k2 = pytree.unflatten(spec, full)
            return fun(*a2, **k2)

        saved = STATE.enabled
        STATE.enabled = False
        try:
            out = call(*[_from_value(x._data) for x in xs])
        finally:
            STATE.enabled = saved
        outs = [o for o in pytree.leaves(out) if isinstance(o, array)]
        kinds = [(o._data.shape, o._data.dtype) for o in outs]
        prim = ops.Primitive(
            f"checkpoint:{name}", (_recompute_rule(call, kinds),), True, holomorphic=False
        )
        recorded = iter([ops._rec(prim, o._data, xs, {"k": k}) for k, o in enumerate(outs)])
        return pytree.map(lambda o: next(recorded) if isinstance(o, array) else o, out)

    return wrapper


def _recompute_rule(call: Callable, kinds: list) -> Callable:
    """The VJP rule of a checkpointed call: rerun it, recording, and differentiate that run.

    Keeps no activation: only ``call`` and the outputs' shapes and dtypes. The engine asks once
    per input; the rerun happens once per output cotangent.
    """
    last: list = [None, None, None]  # (k, g, cotangents) of the latest rerun

    def outputs(*arrays):
        return [o for o in pytree.leaves(call(*arrays)) if isinstance(o, array)]

    def rule(g, ans, *xs, argnum, k):
        if last[0] != k or last[1] is not g:
            cots = [
                g if j == k else _from_value(xp.zeros(shape, dtype))
                for j, (shape, dtype) in enumerate(kinds)
            ]
            _, got = _vjp(outputs, xs, cots, "checkpoint", create=STATE.enabled)
            last[0], last[1], last[2] = k, g, got
        return last[2][argnum]

    return rule
