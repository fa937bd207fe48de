"""The one differentiation engine and the transforms built on it.

``backward_pass`` walks a recorded graph from one output to a set of targets and
returns their cotangents. ``grad``, ``value_and_grad``, ``vjp``, ``jvp`` and
``array.backward()`` are thin callers of it. The walk is iterative, reused nodes
receive the sum of their cotangents before their own rule runs, and broadcast
cotangents are summed back to each input's shape here and nowhere else.
"""

from __future__ import annotations

import functools
import math
import operator
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from . import backend as _backend
from . import memory, ops
from . import tree as pytree
from . import versions as _versions
from .array import STATE, Node, _from_value, _node_array, array
from .backend import ndarray as _ndarray
from .backend import xp
from .hooks import _HOOKS, RemovableHandle, _run_hooks, register_hook, retain_grad, retains_grad
from .ops.normalization import _colsum
from .post_hooks import POST_HOOKS, post_accumulate
from .release import RELEASED, release
from .tracing import Traced as _Traced
from .tracing import kernel as _kernel

__all__ = [
    "backward_pass",
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "eval",
    "async_eval",
    "register_hook",
    "retain_grad",
    "retains_grad",
    "RemovableHandle",
]

_add_reduce = xp.add.reduce
_IDENTITY = ops.defprim("identity", lambda g, ans, x: g, batch=ops.table.pass_rule)


# -- the engine --------------------------------------------------------------------------------


_SUM_PLANS: dict = {}
"""``(broadcast shape, input shape) -> (axes, keepdims)``: how ``_sum_to_shape`` sums."""


def _sum_plan(gs: tuple, shape: tuple) -> tuple:
    lead = len(gs) - len(shape)
    inner = tuple(i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1)
    if lead > 0 and not inner:  # only leading axes: one sum without kept axes gives the shape
        plan = (tuple(range(lead)), False)
    else:
        plan = (tuple(range(lead)) + inner, True)
    _SUM_PLANS[gs, shape] = plan
    return plan


@_kernel  # one opaque step under mx.compile: a replay sums exactly as the eager pass did
def _lead_sum(gd, axes: tuple, shape: tuple):
    """``gd`` summed over its leading ``axes`` down to ``shape`` (a bias's cotangent): BLAS
    sums over rows when contiguous, several columns wide and not tiny (faster than
    ``add.reduce``: 3x on 2000x2, 10x for narrow rows of many; float64 partial sums, so more
    accurate), else NumPy's reduce."""
    if not isinstance(gd, _ndarray):  # GPU data (a compiled replay on the GPU)
        return _backend.reduce_sum(gd, axes)
    cols = math.prod(shape)
    if cols > 1 and gd.size >= 2048 and gd.flags.c_contiguous:
        return _colsum(gd.reshape(1, -1, cols))[0].reshape(shape)
    return _add_reduce(gd, axes)  # a sum to one value, or a small one: NumPy's own is faster


_lead_sum_value = _lead_sum.__wrapped__  # type: ignore[attr-defined]  # without the tracer


def _sum_to_shape(g: array, shape: tuple) -> array:
    """Undo broadcasting: sum ``g`` down to ``shape`` (the engine's one place for it)."""
    gd = g._data
    gs = gd.shape
    if gs == shape:
        return g
    plan = _SUM_PLANS.get((gs, shape)) or _sum_plan(gs, shape)
    axes, keep = plan
    if not keep and not STATE.enabled:  # unrecorded: one sum (recorded, vmap wants the pair)
        if gd.dtype is _F32 or gd.dtype is _F64:  # the common case
            if type(gd) is _ndarray:
                return _from_value(_lead_sum_value(gd, axes, shape))
            if type(gd) is _Traced:
                return _from_value(_lead_sum(gd, axes, shape))
        return ops.sum(g, axis=axes)
    if axes:
        g = ops.sum(g, axis=axes, keepdims=True)
    return ops.reshape(g, shape)


def _toposort(root: Node, targets: set | None, through: bool = False) -> tuple[list, set]:
    """The nodes between ``root`` and the targets, parents before children, and that set.

    Iterative, so a chain of any length is fine. Targets (members of ``targets``, or leaves with
    an owner when it is ``None``) are not expanded further unless ``through`` is set (a target
    computed from another target); nodes from which no target can be reached are left out.
    One walk collects what ``root`` reaches, sorted by ``Node.seq`` (creation: inputs first);
    when every end of the walk is a target, everything reached leads to one (no second pass).
    """
    reached = {root}
    stack = [root]
    push, pop, reach = stack.append, stack.pop, reached.add
    owner_mode = targets is None
    dead = False  # an end of the walk that is no target: some nodes may lead to none
    _Node = Node
    while stack:
        node = pop()
        if (node.owner is not None) if owner_mode else (node in targets):  # type: ignore[operator]
            if not through or node.prim is None:
                continue
        inner = False
        for p in node.args:
            if type(p) is _Node:
                inner = True
                if p not in reached:
                    reach(p)
                    push(p)
        if not inner:
            dead = True
    order = sorted(reached, key=_SEQ)
    if not dead:
        return order, reached
    live: set = set()
    for node in order:  # inputs first: a node is live when it is a target or an input is live
        if (node.owner is not None) if owner_mode else (node in targets):  # type: ignore[operator]
            live.add(node)
            continue
        if any(type(p) is _Node and p in live for p in node.args):
            live.add(node)
    return [n for n in order if n in live], live


_SEQ = operator.attrgetter("seq")


_PY_SCALARS = (float, int, bool, complex)

OBSERVERS: list = []
"""Callables ``f(node, g, i, gi)`` that ``backward_pass`` runs for every cotangent ``gi`` that
``node``'s rule sends to its input ``i`` (``g`` is ``node``'s own cotangent; ``gi`` is already
shaped like the input). ``detect_anomaly`` and ``chainrule.viz`` add one while they need it;
when the list is empty the pass pays one truth test per edge."""


def _const(value, like):
    """A constant input as rules see it: backend values wrapped, Python scalars as they are
    (they stay weakly typed in the rule's arithmetic, and cost no conversion)."""
    t = type(value)
    if t in ops._ARRAYS:
        return _from_value(value)
    if t in _PY_SCALARS:
        return value
    if not isinstance(value, xp.generic):
        value = xp.asarray(value, dtype=like.dtype if like.dtype.kind in "fc" else None)
    return _from_value(value)


def backward_pass(
    root: Node,
    cotangent: array,
    targets: set | None = None,
    create_graph: bool = False,
    through: bool = False,
) -> dict[int, tuple[Node, array]]:
    """Propagate ``cotangent`` from ``root`` back to every target node.

    Args:
        root: the node of the output being differentiated.
        cotangent: an array shaped like the output.
        targets: the nodes to stop at and report; ``None`` means every leaf with an owner
            (the ``requires_grad`` leaves of the tape style).
        create_graph: record the pass so its results can be differentiated again.
        through: also propagate through targets to the targets they were computed from
            (PyTorch's ``autograd.grad(y, [x, f(x)])``: ``x`` gets both paths). Tracers of
            the transforms never need it, so the walk stops at them.

    Returns:
        ``{id(node): (node, cotangent)}`` for each target reached.
    """
    order, live = _toposort(root, targets, through)
    if not order:
        return {}
    cots: dict = {root: cotangent}
    found: dict[int, tuple[Node, array]] = {}
    owner_mode = targets is None
    hooked = _HOOKS.on  # tensor hooks and retain_grad: one truth test per node when none
    # values replaced in place (PyTorch's version check); the weak dictionary's own dict, read
    # without its Python-level __len__ (an entry dying meanwhile costs one needless check)
    versioned = bool(_versions.VERSIONS.nodes.data)  # type: ignore[attr-defined]
    saved = STATE.enabled
    STATE.enabled = create_graph
    try:
        for node in reversed(order):
            g = cots.pop(node, None)
            if g is None:
                continue
            if hooked:
                g = _run_hooks(node, g)
            if (node.owner is not None) if owner_mode else (node in targets):  # type: ignore[operator]
                # Gradients come back laid out like their parameters: transposes in the rules
                # leave column-major views, and an optimizer mixing layouts runs 2-4x slower.
                gd = g._data
                if gd.ndim > 1 and type(gd) in ops._ARRAYS and not gd.flags.c_contiguous:
                    g = ops.contiguous(g)
                found[id(node)] = (node, g)
                if not through or node.prim is None:
                    continue
            if versioned:
                _versions.check(node, live)
            prim = node.prim
            args = node.args
            params = node.params
            xs: Any = None
            for i, p in enumerate(args):
                if type(p) is not Node or p not in live:
                    continue
                if xs is None:
                    if prim in _BLIND:  # its rules read neither the inputs nor the result
                        ans = None
                        xs = _NONES[len(args)]
                    elif create_graph:
                        ans = _node_array(node) if prim.reads_result else None
                        xs = [
                            _node_array(a) if type(a) is Node else _const(a, node.value)
                            for a in args
                        ]
                    else:
                        nv = node.value
                        ans = _from_value(nv) if prim.reads_result else None
                        xs = []  # (a loop: a comprehension makes a function at every node)
                        for a in args:
                            ta = type(a)
                            if ta is Node:
                                xs.append(_from_value(a.value))
                            else:
                                xs.append(_from_value(a) if ta is _ndarray else _const(a, nv))
                    vdt = node.value.dtype
                    if (
                        vdt is not _F32
                        and vdt is not _F64
                        and prim.holomorphic
                        and vdt.kind == "c"
                        and prim not in _BLIND
                    ):
                        # MLX's convention for complex values: the VJP of a holomorphic f is
                        # g * conj(f'(z)). The rules are written g * f'(z) with real
                        # coefficients, so they give it when fed the conjugated point.
                        ans = None if ans is None else ops.conj(ans)
                        xs = [_conj_point(x) for x in xs]
                if prim.variadic:
                    gi = prim.vjps[0](g, ans, *xs, argnum=i, **(params or _NO_PARAMS))
                elif params is None:
                    gi = prim.vjps[i](g, ans, *xs)
                else:
                    gi = prim.vjps[i](g, ans, *xs, **params)
                if gi is None:
                    continue
                pv = p.value
                if type(gi) is not array and not isinstance(gi, array):
                    gi = _from_value(xp.asarray(gi, dtype=pv.dtype))
                gd = gi._data
                if gd.shape != pv.shape:
                    gi = _sum_to_shape(gi, pv.shape)
                    gd = gi._data
                if gd.dtype is not pv.dtype and gd.dtype != pv.dtype:
                    gi = _cast(gi, pv.dtype)
                if OBSERVERS:  # debugging hooks (detect_anomaly, chainrule.viz); usually empty
                    for observe in OBSERVERS:
                        observe(node, g, i, gi)
                prev = cots.get(p)
                cots[p] = gi if prev is None else prev + gi
    finally:
        STATE.enabled = saved
    return found


_NO_PARAMS: dict = {}


# A cotangent cast to its input's dtype is recorded even where `astype` records nothing (to or
# from an integer type), so that `jvp` (two reverse passes) sees through the cast.
_F32, _F64 = xp.dtype(xp.float32), xp.dtype(xp.float64)  # the usual, real, value dtypes


def _conj_point(x):
    """The complex conjugate of an input of a rule (arrays, backend values, Python numbers)."""
    if isinstance(x, array):
        return ops.conj(x) if x._data.dtype.kind == "c" else x
    if isinstance(x, complex):
        return x.conjugate()
    if getattr(getattr(x, "dtype", None), "kind", None) == "c":
        return xp.conj(x)
    return x


_CAST = ops.Primitive("cast_cotangent", (lambda g, ans, x, dtype: g,), batch=ops.table.pass_rule)


_BLIND = frozenset({_IDENTITY, _CAST, ops.PRIMITIVES["add"], ops.PRIMITIVES["subtract"]})
"""Primitives whose rules read only the cotangent (``backward_pass`` builds no inputs for them)."""
_NONES = [(None,) * n for n in range(4)]


def _cast(g: array, dtype) -> array:
    """``g`` as ``dtype``, recorded when the backward pass itself is being recorded."""
    if dtype.kind in "fc" and g._data.dtype.kind in "fc":
        return ops.astype(g, dtype)
    return ops._rec(_CAST, g._data.astype(dtype), (g,), {"dtype": dtype})


_HOST_VALUES = (xp.ndarray, xp.generic)  # a full reduction's value is a NumPy scalar


def _seed(out: array, cotangent, who: str) -> array:
    if cotangent is None:
        if out._data.size != 1:
            raise ValueError(
                f"{who}: the output has shape {out.shape}: reduce it (for example .sum() or "
                ".mean()) or pass a cotangent of that shape (gradient=...); only outputs of one "
                "element have an implicit cotangent"
            )
        d = out._data
        if not isinstance(d, _HOST_VALUES):  # on the GPU (ones_like dispatches to its library;
            # NumPy subclasses such as vmap's marked examples, and scalars, take the paths below)
            return _from_value(xp.ones_like(d))
        if d.ndim == 0:
            return _from_value(xp.array(1, dtype=d.dtype))  # np.ones costs a microsecond more
        return _from_value(xp.ones(d.shape, dtype=d.dtype))
    c = cotangent if isinstance(cotangent, array) else array(cotangent, dtype=out.dtype)
    if c.shape != out.shape:
        raise ValueError(f"{who}: cotangent of shape {c.shape} for an output of shape {out.shape}")
    return c


def tape_backward(out: array, gradient=None, create_graph: bool = False, inputs=None) -> None:
    """``out.backward()``: add the cotangent of every ``requires_grad`` leaf into its ``.grad``
    (only of ``inputs`` when given: leaves, or computed arrays, which then retain their grad as
    PyTorch's ``backward(inputs=...)`` does)."""
    node = out._node
    if node is None:
        raise RuntimeError(
            "backward: this array records no graph. Set requires_grad=True on the inputs (or "
            "parameters) before computing it, do not compute it under no_grad(), and call "
            "backward() before mx.eval() of it (evaluation releases the graph, as in MLX)."
        )
    seed = _seed(out, gradient, "backward")
    if inputs is not None:
        _backward_to(node, seed, inputs, create_graph)
        return
    found = backward_pass(node, seed, None, create_graph or STATE.depth > 0)
    if not found and RELEASED[0]:
        warnings.warn(
            "backward: no requires_grad leaf was reached; mx.eval() released part of this "
            "graph (evaluation detaches what it computed, as in MLX): call backward() before "
            "mx.eval() of anything it was computed from",
            RuntimeWarning,
            stacklevel=3,
        )
    for leaf, g in found.values():
        owner = leaf.owner()
        if owner is None:
            continue
        if not create_graph:
            g = _from_value(g._data)
        owner._grad = g if owner._grad is None else owner._grad + g
    if POST_HOOKS:  # register_post_accumulate_grad_hook: once every .grad is in place
        post_accumulate(leaf for leaf, _ in found.values())


def _backward_to(node: Node, seed: array, inputs, create_graph: bool) -> None:
    """``backward(inputs=...)``: accumulate into the ``.grad`` of ``inputs`` only."""
    ins = [inputs] if isinstance(inputs, array) else list(inputs)
    if not ins:
        raise RuntimeError("backward: `inputs` argument to `backward()` cannot be empty.")
    for i, x in enumerate(ins):
        if not isinstance(x, array):
            raise TypeError(f"backward: inputs[{i}] must be a tensor, not {type(x).__name__}")
        if x._node is None:
            raise RuntimeError(
                f"backward: inputs[{i}] (shape {x.shape}) does not require grad: can't "
                "retain_grad on Tensor that has requires_grad=False"
            )
        if x._node.prim is not None:
            retain_grad(x)  # the retain hook stores its gradient during the pass
    through = sum(x._node.prim is not None for x in ins) > 0 and len(ins) > 1
    found = backward_pass(
        node, seed, {x._node for x in ins}, create_graph or STATE.depth > 0, through
    )
    for x in ins:
        hit = found.get(id(x._node))
        if hit is None or x._node.prim is not None:
            continue
        g = hit[1] if create_graph else _from_value(hit[1]._data)
        x._grad = g if x._grad is None else x._grad + g
    if POST_HOOKS:
        post_accumulate(x._node for x in ins if x._node.prim is None and id(x._node) in found)


# -- grad and friends --------------------------------------------------------------------------


class ArgumentError(TypeError, ValueError):
    """A transform was given something it cannot differentiate (a non-array where arrays
    belong, a function returning no array, bad ``argnums``). A ``ValueError`` as in MLX, and a
    ``TypeError`` since it is about what kind of object was given."""


class _Tracing:
    """Creates the tracer leaves of one transform and knows which nodes are its targets."""

    __slots__ = ("targets", "who", "outer", "origin")

    def __init__(self, who: str) -> None:
        self.targets: set = set()
        self.who = who
        self.outer = False
        # tracer handle id -> its target node: the function may rebind the handle
        # (``x[1:3] = v``, ``x += y``), after which ``handle._node`` is no longer the target
        self.origin: dict = {}

    def tracer(self, x, where: str, numbers: bool = False):
        """A tracer for ``x``; ``None`` stays ``None``; Python numbers only with ``numbers``."""
        if type(x) is not array and not isinstance(x, array):
            if x is None:
                return None
            if numbers and isinstance(x, (float, int)) and not isinstance(x, bool):
                x = array(float(x))
            else:
                raise ArgumentError(
                    f"{self.who}: {where} must be an array or a tree of arrays, "
                    f"not {type(x).__name__}"
                )
        d = x._data
        if d.dtype.kind in "biu" and where != "cotangent":
            warnings.warn(
                f"{self.who}: {where} has dtype {x.dtype}: as in MLX, its gradient comes back "
                f"in {x.dtype} (fractions are truncated); cast it to a float dtype first for "
                "exact gradients, for example x.astype(mx.float32)",
                IntegerGradientWarning,
                stacklevel=4,
            )
        parent = x._node
        if parent is not None:
            # a computed input may be differentiated again through this pass (tape style);
            # a plain requires_grad leaf (a model parameter) needs no recorded pass
            if parent.prim is not None:
                self.outer = True
            node = Node(d, _IDENTITY, (parent,))
        else:
            node = Node(d, _IDENTITY, (d,))
        self.targets.add(node)
        t = _from_value(d, node)
        if type(x) is not array:
            t.__class__ = type(x)  # a subclass's tracer keeps its meanings (chainrule.torch)
        self.origin[id(t)] = node
        return t

    def node_of(self, t):
        """The target node of tracer ``t`` (even if the function rebound ``t``)."""
        return self.origin.get(id(t), t._node)

    def cotangent_of(self, t, found):
        if t is None:
            return None
        node = self.origin.get(id(t), t._node)  # node_of(t), inlined: once per leaf
        hit = found.get(id(node))
        if hit is None:
            v = node.value
            if isinstance(v, xp.ndarray):  # a plain zero (zeros_like keeps NumPy subclasses)
                return _from_value(xp.zeros(v.shape, v.dtype))
            return _from_value(xp.zeros_like(v))  # on the value's device
        return hit[1]


class IntegerGradientWarning(UserWarning):
    """Differentiating with respect to an integer or boolean array (allowed, as in MLX)."""


def _check_argnums(argnums, argnames, who: str) -> tuple[bool, tuple, tuple]:
    """MLX's checks when the transform is made: ``(single, argnums, argnames)``."""
    if isinstance(argnames, str):
        argnames = (argnames,)
    argnames = tuple(argnames)
    for name in argnames:
        if not isinstance(name, str):
            raise ArgumentError(f"{who}: argnames must be strings, not {type(name).__name__}")
    if argnums is None:
        argnums = () if argnames else 0
    if isinstance(argnums, bool) or not isinstance(argnums, (int, list, tuple)):
        raise ArgumentError(
            f"{who}: argnums must be an int or a sequence of ints, not {type(argnums).__name__}"
        )
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ArgumentError(f"{who}: argnums must hold ints, not {type(n).__name__}")
    if not nums and not argnames:
        raise ValueError(f"{who}: gradient with respect to no argument requested")
    if len(set(nums)) != len(nums):
        raise ValueError(f"{who}: argnums {argnums!r} names an argument twice")
    # as in MLX, one argument number (an int or a sequence of one) gives its gradient alone
    return len(nums) == 1, nums, argnames


def _resolve_argnums(nums: tuple, nargs: int, who: str) -> tuple:
    out = []
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(
                f"{who}: argnums {n} is out of range for a function called with {nargs} "
                "positional argument(s)"
            )
        out.append(n % nargs)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: argnums {nums!r} names an argument twice")
    if len(_RESOLVED) < 256:
        _RESOLVED[nums, nargs] = tuple(out)
    return tuple(out)


_RESOLVED: dict = {}  # (argnums, number of arguments) -> resolved: the same every step


class _Forward:
    """The ``jvp`` calls running their function, innermost last (``custom_function`` reads it).

    Each entry is ``(tracing, injections)`` for a ``jvp``, or ``None`` for a reverse transform
    started inside one (a ``custom_function`` then follows its reverse rules again).
    """

    __slots__ = ("stack",)

    def __init__(self) -> None:
        self.stack: list = []


FORWARD = _Forward()


def _call_traced(fun, args, kwargs):
    """Run a transform's function: recording on, one transform deeper."""
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    inside_jvp = bool(FORWARD.stack)
    if inside_jvp:
        FORWARD.stack.append(None)
    try:
        return fun(*args, **kwargs)
    finally:
        if inside_jvp:
            FORWARD.stack.pop()
        STATE.depth -= 1
        STATE.enabled = saved


def _fill(tree, traced, undo: list):
    """Put the tracers of ``traced`` into ``tree``: lists and dicts in place (as MLX does, so
    the function sees the caller's containers; each change is noted in ``undo``), tuples
    rebuilt. Returns what to pass for ``tree``."""
    if isinstance(tree, array):
        return traced
    k = pytree.kind(tree)
    if not k:
        return traced if isinstance(traced, array) else tree  # a Python number made a tracer
    if k == pytree.DICT:
        for key, v in tree.items():  # (values replaced, no key added: iterating is safe)
            new = traced[key] if isinstance(v, array) else _fill(v, traced[key], undo)
            if new is not v:
                dict.__setitem__(tree, key, new)
                undo.append((tree, key, new, v))
        return tree
    if k == pytree.LIST:
        for i, v in enumerate(tree):
            new = traced[i] if isinstance(v, array) else _fill(v, traced[i], undo)
            if new is not v:
                list.__setitem__(tree, i, new)
                undo.append((tree, i, new, v))
        return tree
    items = [_fill(v, t, undo) for v, t in zip(tree, traced)]
    if all(a is b for a, b in zip(items, tree)):
        return tree
    return pytree.rebuild(tree, items)


def _unfill(undo: list) -> None:
    """Put the caller's arrays back where the function left a tracer (what it wrote stays)."""
    for container, key, new, old in reversed(undo):
        if isinstance(container, dict):
            if dict.get(container, key) is new:  # a removed key gives None: left alone
                dict.__setitem__(container, key, old)
        elif key < len(container) and list.__getitem__(container, key) is new:
            list.__setitem__(container, key, old)


def _run_traced(fun, args, kwargs, nums, argnames, who):
    """Trace the differentiated arguments, call ``fun``, put the caller's arrays back."""
    tr = _Tracing(who)
    nums = _RESOLVED.get((nums, len(args))) or _resolve_argnums(nums, len(args), who)
    call_args = list(args)
    call_kwargs = dict(kwargs)
    traced_pos = {}
    traced_kw = {}
    undo: list = []
    try:
        for n in nums:
            a = args[n]
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                traced_pos[n] = tr.tracer(a, f"argument {n}", numbers=True)  # grad(f)(3.0)
            else:
                where = f"argument {n}"
                traced_pos[n] = pytree.map(lambda x, where=where: tr.tracer(x, where), a)
        for name in argnames:
            if name not in kwargs:
                raise ValueError(
                    f"{who}: argnames names {name!r}, which the call did not pass (keyword "
                    f"arguments given: {sorted(kwargs)})"
                )
            traced_kw[name] = pytree.map(
                lambda x, name=name: tr.tracer(x, f"argument {name!r}"), kwargs[name]
            )
        for n in nums:
            call_args[n] = _fill(args[n], traced_pos[n], undo)
        for name in argnames:
            call_kwargs[name] = _fill(kwargs[name], traced_kw[name], undo)
        out = _call_traced(fun, call_args, call_kwargs)
    finally:
        _unfill(undo)
    return tr, nums, traced_pos, traced_kw, out


def _loss_of(out, who: str, aux: bool):
    """The scalar to differentiate: ``out`` itself, or with ``aux`` the first item of a tuple."""
    loss = out
    if not isinstance(out, array):
        if not aux:
            raise ArgumentError(
                f"{who}: the function must return a scalar array, not {type(out).__name__} "
                "(use value_and_grad for a function that also returns other values)"
            )
        if not isinstance(out, (tuple, list)) or not out or not isinstance(out[0], array):
            got = type(out[0] if isinstance(out, (tuple, list)) and out else out).__name__
            raise ArgumentError(
                f"{who}: the function must return a scalar array or a tuple whose first item "
                f"is one, not {got}"
            )
        loss = out[0]
    if loss._data.ndim != 0:
        raise ValueError(
            f"{who}: the output has shape {loss.shape}: reduce it (for example .sum() or "
            ".mean()) or pass a cotangent (with mx.vjp); grad needs a scalar (0-d) output"
        )
    return loss


def _grads_from(tr, loss, single, nums, traced_pos, traced_kw, argnames, create_graph):
    if loss._node is not None:
        found = backward_pass(loss._node, _seed(loss, None, tr.who), tr.targets, create_graph)
    else:
        found = {}

    def cot(t):
        return tr.cotangent_of(t, found)

    if single:
        pos_out = pytree.map(cot, traced_pos[nums[0]])
    else:
        pos_out = tuple([pytree.map(cot, traced_pos[n]) for n in nums]) if nums else None
    if argnames:
        kw = {k: pytree.map(cot, v) for k, v in traced_kw.items()}
        return pos_out, kw
    return pos_out


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] | None = None,
    argnames: str | Sequence[str] = (),
    _who: str = "value_and_grad",
) -> Callable:
    """Return a function computing ``fun``'s value and its gradient (MLX's ``value_and_grad``).

    The differentiated arguments may be arrays or trees of arrays (``None`` leaves give
    ``None``); their lists and dicts are handed to ``fun`` themselves, holding the tracers
    during the call, so what ``fun`` writes into them stays (as in MLX).

    Args:
        fun: returns a scalar array, or a tuple whose first item is one (the rest is returned
            with the value, untouched by differentiation).
        argnums: which positional arguments to differentiate (default 0, or none when
            ``argnames`` is given); negative numbers count from the end.
        argnames: keyword arguments to differentiate.

    Returns:
        A function returning ``(value, grads)``; ``grads`` has the structure of the
        differentiated argument (a tuple of them for several ``argnums``; with ``argnames``,
        ``(positional_grads or None, keyword_grads)``).

    Raises:
        ValueError: (when made) no argument to differentiate, or one named twice; (when
            called) ``argnums`` out of range, a missing keyword, a non-array leaf in a
            differentiated argument, an output that is not a scalar array.
        TypeError: argnums that are not ints.

    Examples:
        >>> import chainrule.core as mx
        >>> def loss(params):
        ...     return (params["w"] ** 2).sum() + params["b"]
        >>> params = {"w": mx.array([1.0, -2.0]), "b": mx.array(0.5)}
        >>> value, grads = mx.value_and_grad(loss)(params)
        >>> value
        array(5.5, dtype=float32)
        >>> grads["w"], grads["b"]
        (array([2, -4], dtype=float32), array(1, dtype=float32))
    """
    return _value_and_grad(fun, argnums, argnames, _who, aux=True)


def _value_and_grad(fun, argnums, argnames, who: str, aux: bool) -> Callable:
    single, nums, argnames = _check_argnums(argnums, argnames, who)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        tr, res, tp, tk, out = _run_traced(fun, args, kwargs, nums, argnames, who)
        loss = out if type(out) is array and not out._data.ndim else _loss_of(out, who, aux)
        create = tr.outer or STATE.depth > 0
        grads = _grads_from(tr, loss, single, res, tp, tk, argnames, create)
        if not create:
            out = _detach_leaf(out) if type(out) is array else pytree.map(_detach_leaf, out)
        return out, grads

    return wrapper


def _value_and_grad_of_leaves(fun: Callable, params, args: tuple, kwargs: dict, who: str):
    """``value_and_grad`` with respect to ``params``, a tree of ``requires_grad`` leaves that
    ``fun`` reads by itself (a model's parameters), with the leaves' own nodes as the targets:
    no tracers to make, install and remove. ``None`` when that does not apply (inside another
    transform, an array that is not such a leaf, or one array at two places of the tree)."""
    if STATE.depth:
        return None
    leaves = pytree.leaves(params)
    nodes = set()
    for x in leaves:
        node = x._node if isinstance(x, array) else None
        if node is None or node.prim is not None or node.owner is None:
            return None
        nodes.add(node)
    if len(nodes) != len(leaves):
        return None
    tr = _Tracing(who)
    tr.targets = nodes
    out = _call_traced(fun, args, kwargs)
    loss = _loss_of(out, who, aux=True)
    grads = _grads_from(tr, loss, True, (0,), {0: params}, {}, (), False)
    return pytree.map(_detach_leaf, out), grads


def _detach_leaf(x):
    return _from_value(x._data) if isinstance(x, array) and x._node is not None else x


def grad(
    fun: Callable, argnums: int | Sequence[int] | None = None, argnames: str | Sequence[str] = ()
) -> Callable:
    """Return a function computing the gradient of scalar-valued ``fun`` (MLX's ``grad``).

    Args:
        fun: returns a scalar array (use ``value_and_grad`` for a function that also returns
            other values).
        argnums: positional arguments to differentiate (default 0); one number, as an int or
            a sequence of one, gives that argument's gradient alone.
        argnames: keyword arguments to differentiate.

    Returns:
        A function with ``fun``'s signature returning the gradient(s), structured as
        ``value_and_grad`` describes.

    Examples:
        >>> import chainrule.core as mx
        >>> df = mx.grad(lambda x, y: (x * y).sum(), argnums=(0, 1))
        >>> df(mx.array([1.0, 2.0]), mx.array([3.0, 4.0]))
        (array([3, 4], dtype=float32), array([1, 2], dtype=float32))
    """
    vg = _value_and_grad(fun, argnums, argnames, "grad", aux=False)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapper


def vjp(fun: Callable, primals: Sequence, cotangents: Sequence) -> tuple[list, list]:
    """Vector-Jacobian product (MLX's ``vjp``).

    Args:
        fun: takes ``len(primals)`` arrays and returns an array or a list/tuple of arrays.
        primals: the point at which to differentiate.
        cotangents: one array per output, shaped like it.

    Returns:
        ``(outputs, vjps)``: lists of the outputs and of one cotangent per primal.

    Examples:
        >>> import chainrule.core as mx
        >>> mx.vjp(lambda x: x**2, [mx.array([1.0, 3.0])], [mx.array([1.0, 0.5])])
        ([array([1, 9], dtype=float32)], [array([2, 3], dtype=float32)])
    """
    return _vjp(fun, primals, cotangents, "vjp")


def _vjp(fun, primals, cotangents, who: str, create: bool | None = None):
    """``vjp``; ``create`` forces (or forbids) recording the backward pass."""
    primals = list(primals)
    tr = _Tracing(who)
    traced = [tr.tracer(p, f"primal {i}", numbers=True) for i, p in enumerate(primals)]
    out = _call_traced(fun, traced, {})
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    cots = list(cotangents)
    if len(cots) != len(outs):
        raise ValueError(f"{who}: {len(cots)} cotangents for {len(outs)} outputs")
    if create is None:
        create = tr.outer or STATE.depth > 0
    total: dict[int, tuple[Node, array]] = {}
    for o, c in zip(outs, cots):
        if not isinstance(o, array) or o._node is None:
            continue
        found = backward_pass(o._node, _seed(o, c, who), tr.targets, create)
        for k, (n, g) in found.items():
            total[k] = (n, g if k not in total else total[k][1] + g)
    grads = [tr.cotangent_of(t, total) for t in traced]
    if not create:
        outs = [_detach_leaf(o) for o in outs]
        grads = [_detach_leaf(g) for g in grads]
    return outs, grads


def jvp(fun: Callable, primals: Sequence, tangents: Sequence) -> tuple[list, list]:
    """Jacobian-vector product (MLX's ``jvp``), derived from two reverse passes.

    The VJP ``u -> J^T u`` is linear in ``u``, so differentiating ``<J^T u, t>`` with respect
    to ``u`` gives ``J t``.

    Args:
        fun: takes ``len(primals)`` arrays and returns an array or a list/tuple of arrays.
        primals: the point at which to differentiate.
        tangents: one array per primal, shaped like it.

    Returns:
        ``(outputs, jvps)``: lists of the outputs and one tangent per output.

    Examples:
        >>> import chainrule.core as mx
        >>> mx.jvp(lambda x: x**2, [mx.array([1.0, 3.0])], [mx.array([1.0, 0.5])])
        ([array([1, 9], dtype=float32)], [array([2, 3], dtype=float32)])
    """
    primals = list(primals)
    tangents = [t if isinstance(t, array) else array(t) for t in tangents]
    if len(tangents) != len(primals):
        raise ValueError(f"jvp: {len(tangents)} tangents for {len(primals)} primals")
    for i, (p, t) in enumerate(zip(primals, tangents)):
        if tuple(xp.shape(p._data if isinstance(p, array) else p)) != t.shape:
            raise ValueError(f"jvp: tangent {i} has shape {t.shape}, primal {i} has {xp.shape(p)}")
    outer = _Tracing("jvp")
    traced = [outer.tracer(p, f"primal {i}", numbers=True) for i, p in enumerate(primals)]
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    injections: list = []  # (tracer, tangent): a custom jvp rule's part that no tangent scales
    FORWARD.stack.append((outer, injections))
    try:
        try:
            out = fun(*traced)
        finally:
            FORWARD.stack.pop()
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        us: list = []
        utr = _Tracing("jvp")
        total = None
        for o in outs:
            if not isinstance(o, array) or o._data.dtype.kind == "b":
                us.append(None)  # boolean outputs (comparisons) have zero tangents
                continue
            u = utr.tracer(ops.zeros_like(o), "cotangent")
            us.append(u)
            term = ops.sum(o * u)
            total = term if total is None else total + term
        if total is None or total._node is None:
            dots = None
        else:
            found = backward_pass(total._node, _seed(total, None, "jvp"), outer.targets, True)
            dots = None
            for t, tr_ in zip(traced, tangents):
                hit = found.get(id(outer.node_of(t)))
                if hit is None:
                    continue
                # with MLX's convention the reverse pass gives J^H u; the gradient of
                # <J^H u, conj(t)> with respect to u is conj(J t), conjugated back below
                term = ops.sum(hit[1] * (ops.conj(tr_) if tr_._data.dtype.kind == "c" else tr_))
                dots = term if dots is None else dots + term
            for e, c in injections:
                hit = found.get(id(outer.node_of(e)))
                if hit is not None:
                    term = ops.sum(hit[1] * c)
                    dots = term if dots is None else dots + term
        if dots is None or dots._node is None:
            found2 = {}
        else:
            create = outer.outer or STATE.depth > 1
            found2 = backward_pass(dots._node, _seed(dots, None, "jvp"), utr.targets, create)
    finally:
        STATE.depth -= 1
        STATE.enabled = saved
    results = [
        _zero_tangent(o, tangents) if u is None else _conj_point(utr.cotangent_of(u, found2))
        for o, u in zip(outs, us)
    ]
    if not (outer.outer or STATE.depth > 0):
        outs = [_detach_leaf(o) for o in outs]
        results = [_detach_leaf(r) for r in results]
    return outs, results


def _zero_tangent(out, tangents: list) -> array:
    """The tangent of an output that does not vary: zeros shaped like it, of the tangents'
    dtype for a boolean output (as MLX's comparisons), else of the output's."""
    dtype = out._data.dtype if isinstance(out, array) else None
    if dtype is None or dtype.kind == "b":
        dtype = next((t._data.dtype for t in tangents if t._data.dtype.kind != "b"), xp.float32)
    return _from_value(xp.zeros(xp.shape(out._data if isinstance(out, array) else out), dtype))


# -- recording switches ------------------------------------------------------------------------


class no_grad:
    """Record nothing inside (``with mx.no_grad():``, ``@mx.no_grad()`` or ``@mx.no_grad``)."""

    _flag = False

    def __new__(cls, *args):
        self = super().__new__(cls)
        if len(args) == 1 and callable(args[0]):  # used bare: @no_grad
            return self(args[0])
        return self

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._flag
        return self

    def __exit__(self, *exc) -> None:
        STATE.enabled = self._prev

    def __call__(self, fn):
        flag = self._flag

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            prev = STATE.enabled
            STATE.enabled = flag
            try:
                return fn(*args, **kwargs)
            finally:
                STATE.enabled = prev

        return wrapped


class enable_grad(no_grad):
    """Record again inside a ``no_grad`` region."""

    _flag = True


class set_grad_enabled(no_grad):
    """Turn recording on or off, as a call, a context manager or a decorator."""

    def __init__(self, mode: bool) -> None:
        self._flag = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self._flag

    def __enter__(self):
        return self


def is_grad_enabled() -> bool:
    """Whether operations are being recorded."""
    return STATE.enabled


class _Mapping(threading.local):
    """How many per-example ``vmap`` loops the calling thread is inside (``async_eval``)."""

    def __init__(self) -> None:
        self.depth = 0


MAPPING = _Mapping()


def eval(*args: Any) -> None:
    """Compute ``args`` (arrays or trees; other leaves are ignored), as MLX's ``mx.eval``.

    Arrays are computed when they are made, so there is nothing to wait for. As in MLX, the
    graph behind what is evaluated is released: the arrays and those they were computed from
    become constants (so call ``backward()`` before ``mx.eval`` of its loss, not after).
    Inside ``grad``, ``vjp``, ``vmap`` or a compiled trace nothing is released. Once memory
    accounting is on (``mx.get_peak_memory`` and friends) it takes a sample for the peak when
    one is due (``chainrule.core.memory``).
    """
    if not (STATE.depth or MAPPING.depth):
        release(args)
    if memory.ACCOUNTING.on:
        memory.sample_if_due()


def async_eval(*args: Any) -> None:
    """Start computing ``args`` (arrays or trees), as MLX's ``mx.async_eval``.

    Raises:
        ValueError: inside a transform (``grad``, ``vjp``, ``jvp``, ``vmap``) for an array it
            is tracing, as in MLX.
    """
    if MAPPING.depth or STATE.depth:
        for x in pytree.leaves(args):
            if isinstance(x, array) and (MAPPING.depth or x._node is not None):
                raise ValueError(
                    "async_eval: not allowed inside a function transformation (grad, vjp, "
                    "jvp, vmap) on an array the transformation is tracing; use mx.eval"
                )
    if not (STATE.depth or MAPPING.depth):
        release(args)
    if memory.ACCOUNTING.on:
        memory.sample_if_due()
