"""``torch.autograd.Function``: user-written forward and backward over chainrule's one engine.

``MyFn.apply(*args)`` runs ``forward`` without recording, then records its outputs as one
user-defined operation through the engine's custom-rule mechanism
(``chainrule.core.custom.record_custom``), so ``loss.backward()``, ``torch.autograd.grad``,
``torch.func.grad`` and ``mx.grad`` all run the user's ``backward``. The engine asks for one
input's cotangent at a time; ``backward`` runs once per output cotangent (the other outputs'
cotangents are zeros, or ``None`` after ``ctx.set_materialize_grads(False)``), and its result
is shared by the inputs. ``backward`` runs with recording on exactly when the backward pass is
being recorded (``create_graph=True``, or inside another transform), and ``ctx.saved_tensors``
then gives the inputs and outputs connected to the graph, so a ``backward`` written with
tensor operations differentiates again, unless it is decorated with ``once_differentiable``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core.custom import record_custom
from chainrule.core.extend import Node, Primitive, array, from_value, xp

__all__ = ["Function", "FunctionCtx", "once_differentiable", "InplaceFunction"]


class FunctionCtx:
    """The ``ctx`` handed to ``forward``/``setup_context`` and ``backward`` (any attribute may
    be stored on it, as in PyTorch)."""

    def __init__(self) -> None:
        self._saved: tuple = ()
        self._kinds: list | None = None  # per saved tensor: ("in", i) / ("out", k) / ("const",)
        self._live: tuple | None = None  # during backward: (inputs, outputs) to hand out
        self._dirty: tuple = ()
        self._non_diff: tuple = ()
        self.materialize_grads = True
        self.needs_input_grad: tuple = ()
        self._nodes: list = []

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors (or ``None``) for ``backward``, read back as ``ctx.saved_tensors``."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, array):
                raise TypeError(
                    f"save_for_backward can only save variables, but argument {i} is of type "
                    f"{type(t).__name__}"
                )
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple:
        """The saved tensors; inside a recorded backward pass, connected to the graph."""
        if self._live is None or self._kinds is None:
            return tuple(self._saved)
        ins, outs = self._live
        out = []
        for t, kind in zip(self._saved, self._kinds):
            if kind[0] == "in":
                out.append(ins[kind[1]])
            elif kind[0] == "out":
                out.append(outs[kind[1]])
            else:
                out.append(t)
        return tuple(out)

    def mark_dirty(self, *tensors: array) -> None:
        """Declare inputs that ``forward`` modified in place (and returns)."""
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors: array) -> None:
        """Declare outputs that have no gradient (indices, masks)."""
        self._non_diff = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """With ``False``, ``backward`` receives ``None`` (not zeros) for outputs without a
        cotangent."""
        self.materialize_grads = bool(value)


def _is(t: Any, group: tuple) -> bool:
    return any(t is g for g in group)


class Function:
    """Base class of user-defined differentiable operations (PyTorch's
    ``torch.autograd.Function``).

    Subclasses define ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` as static
    methods, or PyTorch 2's ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``, and
    are called through ``apply``. ``backward`` returns one gradient (or ``None``) per argument
    of ``forward``.
    """

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        """Compute the outputs (recording is off inside)."""
        raise NotImplementedError("You must implement the forward function for custom Function.")

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple, output: Any) -> Any:
        """PyTorch 2 style: save what ``backward`` needs, given the inputs and the output."""
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        """The gradients of the inputs, given one gradient per output."""
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    vjp = backward

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{type(self).__name__}: calling an autograd Function instance is the deprecated "
            f"legacy style; call {type(self).__name__}.apply(...) instead"
        )

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` and record it so that ``backward`` gives its gradients."""
        ctx = FunctionCtx()
        pos = [i for i, a in enumerate(args) if isinstance(a, array)]
        xs = [args[i] for i in pos]
        parents = tuple(x._node if x._node is not None else x._data for x in xs)
        ctx.needs_input_grad = tuple(isinstance(a, array) and a._node is not None for a in args)
        record = mx.is_grad_enabled() and any(type(p) is Node for p in parents)
        new_style = cls.setup_context is not Function.setup_context
        with mx.no_grad():
            if new_style:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not record:
            return out
        single = isinstance(out, array)
        items = [out] if single else list(out) if isinstance(out, (tuple, list)) else None
        if items is None:
            raise TypeError(
                f"{cls.__name__}.forward must return a tensor or a tuple of tensors, not "
                f"{type(out).__name__}"
            )
        outs = [o for o in items if isinstance(o, array)]
        for t in ctx._dirty:
            if not _is(t, tuple(xs)):
                raise RuntimeError(
                    f"{cls.__name__}: mark_dirty was given a tensor that is not an input"
                )
            if t._node is not None and t._node.prim is None and _is(t, tuple(outs)):
                raise RuntimeError(
                    "a leaf Variable that requires grad has been used in an in-place operation "
                    f"({cls.__name__}.forward modified an input marked dirty)"
                )
        ctx._kinds = [_kind(t, xs, outs) for t in ctx._saved]
        diff = [not _is(o, ctx._non_diff) and _floating(o) for o in outs]
        rule = _make_rule(cls, ctx, args, pos, xs, outs, diff)
        nodes = record_custom(f"{cls.__name__}Backward", parents, [o._data for o in outs], rule)
        ctx._nodes = [weakref.ref(n) for n in nodes]  # weak: no cycle ctx <-> graph
        made = []
        for o, node, d in zip(outs, nodes, diff):
            if _is(o, ctx._dirty) and d:
                o._set_value(o._data, node)
                made.append(o)
                continue
            r = from_value(o._data, node if d else None)
            if type(o) is not array:
                r.__class__ = type(o)  # a Tensor's result stays a Tensor
            made.append(r)
        it = iter(made)
        result = [next(it) if isinstance(o, array) else o for o in items]
        return result[0] if single else tuple(result)


def _floating(o: array) -> bool:
    """Integer and boolean outputs are not differentiable (PyTorch marks them so itself)."""
    return _dt.kind(o._data.dtype) in "fc"


def _kind(t: Any, xs: list, outs: list) -> tuple:
    for k, o in enumerate(outs):
        if t is o:
            return ("out", k)
    for i, x in enumerate(xs):
        if t is x:
            return ("in", i)
    return ("const",)


def _make_rule(cls, ctx: FunctionCtx, args: tuple, pos: list, xs: list, outs: list, diff: list):
    """The variadic rule of one ``apply``: ``backward`` once per output cotangent."""
    n_args = len(args)
    shapes = [x._data.shape for x in xs]
    out_vals = [o._data for o in outs]
    last: list = [None, None, None]

    def rule(g, ans, *rxs, argnum, k):
        if last[0] != k or last[1] is not g:
            recording = mx.is_grad_enabled()
            live_outs = []
            for v, ref in zip(out_vals, ctx._nodes):
                n = ref() if recording else None
                live_outs.append(from_value(v) if n is None else from_value(v, n))
            grads = []
            for j, v in enumerate(out_vals):
                if j == k:
                    grads.append(g)
                elif ctx.materialize_grads:
                    grads.append(from_value(xp.zeros_like(v)))
                else:
                    grads.append(None)
            ctx._live = (list(rxs), live_outs)
            try:
                res = cls.backward(ctx, *grads)
            finally:
                ctx._live = None
            res = (res,) if not isinstance(res, tuple) else res
            if len(res) < n_args or any(r is not None for r in res[n_args:]):
                raise RuntimeError(
                    f"function {cls.__name__}Backward returned an incorrect number of gradients "
                    f"(expected {n_args}, got {len(res)})"
                )
            got = []
            for i, p in enumerate(pos):
                r = res[p]
                if r is not None:
                    if not isinstance(r, array):
                        raise TypeError(
                            f"function {cls.__name__}Backward returned a gradient of type "
                            f"{type(r).__name__} at index {p}; expected a tensor or None"
                        )
                    if not _sums_to(r._data.shape, shapes[i]):
                        raise RuntimeError(
                            f"Function {cls.__name__}Backward returned an invalid gradient at "
                            f"index {p} - got {list(r.shape)} but expected shape compatible "
                            f"with {list(shapes[i])}"
                        )
                got.append(r)
            last[0], last[1], last[2] = k, g, got
        return last[2][argnum]

    return rule


def _sums_to(shape: tuple, target: tuple) -> bool:
    """Whether a gradient of ``shape`` sums back to ``target`` (``target`` broadcasts to it)."""
    try:
        return xp.broadcast_shapes(shape, target) == tuple(shape)
    except ValueError:
        return False


def _twice(g, ans, *xs, argnum):
    raise RuntimeError(
        "trying to differentiate twice a function that was marked with @once_differentiable"
    )


_ONCE = Primitive("once_differentiable", (_twice,), True, holomorphic=False)


def once_differentiable(fn: Callable) -> Callable:
    """Decorate a ``backward`` that is not itself differentiable: it runs without recording,
    and differentiating its result again raises ``RuntimeError`` (PyTorch's)."""

    @functools.wraps(fn)
    def wrapper(ctx: FunctionCtx, *grads: Any) -> Any:
        with mx.no_grad():
            outputs = fn(ctx, *grads)
        if not mx.is_grad_enabled():
            return outputs
        parents = tuple(g._node for g in grads if isinstance(g, array) and g._node is not None)
        if not parents:  # PyTorch: only when a gradient output itself requires grad
            return outputs
        live = ctx._live[0] if ctx._live is not None else ()
        parents += tuple(x._node for x in live if isinstance(x, array) and x._node is not None)
        single = not isinstance(outputs, tuple)
        items = (outputs,) if single else outputs
        wrapped = tuple(
            from_value(o._data, Node(o._data, _ONCE, parents))
            if isinstance(o, array) and _floating(o)
            else o
            for o in items
        )
        return wrapped[0] if single else wrapped

    return wrapper


class InplaceFunction(Function):
    """A ``Function`` taking ``inplace=`` (PyTorch's ``InplaceFunction``)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
