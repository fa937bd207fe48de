"""The one differentiation engine and the transforms built on it.

``backward_pass`` walks a recorded graph from one output to a set of targets and
returns their cotangents. ``grad``, ``value_and_grad``, ``vjp``, ``jvp`` and
``array.backward()`` are thin callers of it. The walk is iterative, reused nodes
receive the sum of their cotangents before their own rule runs, and broadcast
cotangents are summed back to each input's shape here and nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from . import batching, ops
from . import tree as pytree
from .array import STATE, GradientDtypeError, Node, _from_value, _node_array, array
from .backend import xp

__all__ = [
    "backward_pass",
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "vmap",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "custom_function",
    "check_grads",
    "eval",
    "async_eval",
]

_IDENTITY = ops.defprim("identity", lambda g, ans, x: g, batch=ops.table.pass_rule)


# -- the engine --------------------------------------------------------------------------------


def _sum_to_shape(g: array, shape: tuple) -> array:
    """Undo broadcasting: sum ``g`` down to ``shape`` (the engine's one place for it)."""
    gs = g._data.shape
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gs[i + lead] != 1
    )
    if axes:
        g = ops.sum(g, axis=axes, keepdims=True)
    return ops.reshape(g, shape)


def _toposort(root: Node, targets: set | None) -> tuple[list, set]:
    """The nodes between ``root`` and the targets, parents before children, and that set.

    Iterative, so a chain of any length is fine. Targets (members of ``targets``, or leaves with
    an owner when it is ``None``) are not expanded further; nodes from which no target can be
    reached are left out.
    """
    order: list = []
    live: set = set()
    visited: set = set()
    stack = [(root, False)]
    push, pop = stack.append, stack.pop
    live_add, order_append, visit = live.add, order.append, visited.add
    owner_mode = targets is None
    _Node = Node
    while stack:
        node, done = pop()
        if done:
            for p in node.args:
                if type(p) is _Node and p in live:
                    live_add(node)
                    order_append(node)
                    break
            continue
        if node in visited:
            continue
        visit(node)
        if (node.owner is not None) if owner_mode else (node in targets):
            live_add(node)
            order_append(node)
            continue
        push((node, True))
        for p in node.args:
            if type(p) is _Node and p not in visited:
                push((p, False))
    return order, live


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
) -> dict[int, tuple[Node, array]]:
    """Propagate ``cotangent`` from ``root`` back to every target node.

    Args:
        root: the node of the output being differentiated.
        cotangent: an array shaped like the output.
        targets: the nodes to stop at and report; ``None`` means every leaf with an owner
            (the ``requires_grad`` leaves of the tape style).
        create_graph: record the pass so its results can be differentiated again.

    Returns:
        ``{id(node): (node, cotangent)}`` for each target reached.
    """
    order, live = _toposort(root, targets)
    if not order:
        return {}
    cots: dict = {root: cotangent}
    found: dict[int, tuple[Node, array]] = {}
    owner_mode = targets is None
    saved = STATE.enabled
    STATE.enabled = create_graph
    try:
        for node in reversed(order):
            g = cots.pop(node, None)
            if g is None:
                continue
            if (node.owner is not None) if owner_mode else (node in targets):
                # Gradients come back laid out like their parameters: transposes in the rules
                # leave column-major views, and an optimizer mixing layouts runs 2-4x slower.
                gd = g._data
                if type(gd) in ops._ARRAYS and not gd.flags.c_contiguous and gd.ndim > 1:
                    g = ops.contiguous(g)
                found[id(node)] = (node, g)
                continue
            prim = node.prim
            args = node.args
            params = node.params or _NO_PARAMS
            xs = None
            for i, p in enumerate(args):
                if type(p) is not Node or p not in live:
                    continue
                if xs is None:
                    if create_graph:
                        ans = _node_array(node)
                        xs = [
                            _node_array(a) if type(a) is Node else _const(a, node.value)
                            for a in args
                        ]
                    else:
                        ans = _from_value(node.value)
                        xs = [
                            _from_value(a.value) if type(a) is Node else _const(a, node.value)
                            for a in args
                        ]
                if prim.variadic:
                    gi = prim.vjps[0](g, ans, *xs, argnum=i, **params)
                else:
                    gi = prim.vjps[i](g, ans, *xs, **params)
                if gi is None:
                    continue
                pv = p.value
                if type(gi) is not array:
                    gi = _from_value(xp.asarray(gi, dtype=pv.dtype))
                gd = gi._data
                if gd.shape != pv.shape:
                    gi = _sum_to_shape(gi, pv.shape)
                    gd = gi._data
                if gd.dtype != pv.dtype:
                    gi = ops.astype(gi, pv.dtype)
                if OBSERVERS:  # debugging hooks (detect_anomaly, chainrule.viz); usually empty
                    for observe in OBSERVERS:
                        observe(node, g, i, gi)
                prev = cots.get(p)
                cots[p] = gi if prev is None else prev + gi
    finally:
        STATE.enabled = saved
    return found


_NO_PARAMS: dict = {}


def _seed(out: array, cotangent, who: str) -> array:
    if cotangent is None:
        if out._data.size != 1:
            raise ValueError(
                f"{who}: the output has shape {out.shape}: reduce it (for example .sum() or "
                ".mean()) or pass a cotangent of that shape (gradient=...); only outputs of one "
                "element have an implicit cotangent"
            )
        d = out._data
        if d.ndim == 0:
            return _from_value(xp.array(1, dtype=d.dtype))  # np.ones costs a microsecond more
        return _from_value(xp.ones(d.shape, dtype=d.dtype))
    c = cotangent if type(cotangent) is array else array(cotangent, dtype=out.dtype)
    if c.shape != out.shape:
        raise ValueError(f"{who}: cotangent of shape {c.shape} for an output of shape {out.shape}")
    return c


def tape_backward(out: array, gradient=None, create_graph: bool = False) -> None:
    """``out.backward()``: add the cotangent of every ``requires_grad`` leaf into its ``.grad``."""
    node = out._node
    if node is None:
        raise RuntimeError(
            "backward: this array records no graph. Set requires_grad=True on the inputs (or "
            "parameters) before computing it, and do not compute it under no_grad()."
        )
    seed = _seed(out, gradient, "backward")
    found = backward_pass(node, seed, None, create_graph or STATE.depth > 0)
    for leaf, g in found.values():
        owner = leaf.owner()
        if owner is None:
            continue
        if not create_graph:
            g = _from_value(g._data)
        owner._grad = g if owner._grad is None else owner._grad + g


# -- grad and friends --------------------------------------------------------------------------


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

    def tracer(self, x, where: str):
        if type(x) is not array:
            if isinstance(x, (float, int)) and not isinstance(x, bool):
                x = array(float(x))
            elif x is None:
                return None
            else:
                raise TypeError(
                    f"{self.who}: {where} must be an array or a tree of arrays, "
                    f"not {type(x).__name__}"
                )
        if x._data.dtype.kind not in "fc":
            raise GradientDtypeError(
                f"{self.who}: cannot differentiate with respect to {where} of integer or "
                f"boolean dtype {x.dtype.name}; cast it to a float dtype first, for example "
                "x.astype(mx.float32)"
            )
        parent = x._node
        if parent is not None:
            # a computed input may be differentiated again through this pass (tape style);
            # a plain requires_grad leaf (a model parameter) needs no recorded pass
            if parent.prim is not None:
                self.outer = True
            node = Node(x._data, _IDENTITY, (parent,))
        else:
            node = Node(x._data, _IDENTITY, (x._data,))
        self.targets.add(node)
        t = _from_value(x._data, node)
        self.origin[id(t)] = node
        return t

    def node_of(self, t):
        """The target node of tracer ``t`` (even if the function rebound ``t``)."""
        return self.origin.get(id(t), t._node)

    def cotangent_of(self, t, found):
        if t is None:
            return None
        node = self.node_of(t)
        hit = found.get(id(node))
        if hit is None:
            return _from_value(xp.zeros(node.value.shape, node.value.dtype))
        return hit[1]


def _normalise_argnums(argnums, nargs: int, who: str):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -nargs <= n < nargs:
            raise ValueError(
                f"{who}: argnums {argnums!r} is out of range for a function called with "
                f"{nargs} positional argument(s)"
            )
    return single, tuple(n % nargs for n in nums)


def _call_traced(fun, args, kwargs):
    """Run a transform's function: recording on, one transform deeper."""
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    try:
        return fun(*args, **kwargs)
    finally:
        STATE.depth -= 1
        STATE.enabled = saved


def _run_traced(fun, args, kwargs, argnums, argnames, who):
    tr = _Tracing(who)
    single, nums = _normalise_argnums(argnums, len(args), who) if argnums != () else (False, ())
    args = list(args)
    traced_pos = {}
    for n in nums:
        args[n] = pytree.map(lambda x, n=n: tr.tracer(x, f"argument {n}"), args[n])
        traced_pos[n] = args[n]
    kwargs = dict(kwargs)
    traced_kw = {}
    for name in argnames:
        if name not in kwargs:
            raise ValueError(f"{who}: argnames names {name!r}, which the call did not pass")
        kwargs[name] = pytree.map(
            lambda x, name=name: tr.tracer(x, f"argument {name!r}"), kwargs[name]
        )
        traced_kw[name] = kwargs[name]
    out = _call_traced(fun, args, kwargs)
    return tr, single, nums, traced_pos, traced_kw, out


def _grads_from(tr, loss, single, nums, traced_pos, traced_kw, argnames, create_graph):
    if type(loss) is not array:
        raise TypeError(f"{tr.who}: the function must return an array, not {type(loss).__name__}")
    if loss._data.size != 1:
        raise ValueError(
            f"{tr.who}: the output has shape {loss.shape}: reduce it (for example .sum() or "
            ".mean()) or pass a cotangent (with mx.vjp); grad needs an output of one element"
        )
    if loss._node is not None:
        found = backward_pass(loss._node, _seed(loss, None, tr.who), tr.targets, create_graph)
    else:
        found = {}

    def cot(t):
        return tr.cotangent_of(t, found)

    pos = [pytree.map(cot, traced_pos[n]) for n in nums]
    pos_out = pos[0] if single else tuple(pos)
    if argnames:
        kw = {k: pytree.map(cot, v) for k, v in traced_kw.items()}
        return (pos_out if nums else None), kw
    return pos_out


def value_and_grad(
    fun: Callable,
    argnums: int | Sequence[int] | None = None,
    argnames: str | Sequence[str] = (),
    _who: str = "value_and_grad",
) -> Callable:
    """Return a function computing ``fun``'s value and its gradient (MLX's ``value_and_grad``).

    Args:
        fun: returns a scalar array, or a tuple/list whose first element is one.
        argnums: which positional arguments to differentiate (default 0, or none when
            ``argnames`` is given).
        argnames: keyword arguments to differentiate.

    Returns:
        A function returning ``(value, grads)``; ``grads`` has the structure of the
        differentiated arguments (a tuple for several ``argnums``; with ``argnames``,
        ``(positional_grads, keyword_grads)``).
    """
    if isinstance(argnames, str):
        argnames = (argnames,)
    argnames = tuple(argnames)
    if argnums is None:
        argnums = () if argnames else 0
    if not isinstance(argnums, int):
        argnums = tuple(argnums)
        if not argnums and not argnames:
            raise ValueError(f"{_who}: gradient with respect to no argument requested")

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        if argnums != () and not args:
            raise ValueError(f"{_who}: argnums {argnums!r} given, but no positional arguments")
        tr, single, nums, tp, tk, out = _run_traced(fun, args, kwargs, argnums, argnames, _who)
        loss = out[0] if isinstance(out, (tuple, list)) else out
        create = tr.outer or STATE.depth > 0
        grads = _grads_from(tr, loss, single, nums, tp, tk, argnames, create)
        if not create:
            out = pytree.map(_detach_leaf, out)
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
        node = x._node if type(x) is array else None
        if node is None or node.prim is not None or node.owner is None:
            return None
        nodes.add(node)
    if len(nodes) != len(leaves):
        return None
    tr = _Tracing(who)
    tr.targets = nodes
    out = _call_traced(fun, args, kwargs)
    loss = out[0] if isinstance(out, (tuple, list)) else out
    grads = _grads_from(tr, loss, True, (0,), {0: params}, {}, (), False)
    return pytree.map(_detach_leaf, out), grads


def _detach_leaf(x):
    return _from_value(x._data) if type(x) is array and x._node is not None else x


def grad(
    fun: Callable, argnums: int | Sequence[int] | None = None, argnames: str | Sequence[str] = ()
) -> Callable:
    """Return a function computing the gradient of scalar-valued ``fun`` (MLX's ``grad``).

    Args:
        fun: returns a scalar array (or a tuple whose first element is one).
        argnums: positional arguments to differentiate (default 0).
        argnames: keyword arguments to differentiate.

    Returns:
        A function with ``fun``'s signature returning the gradient(s).
    """
    vg = value_and_grad(fun, argnums, argnames, _who="grad")

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
    """
    return _vjp(fun, primals, cotangents, "vjp")


def _vjp(fun, primals, cotangents, who: str, create: bool | None = None):
    """``vjp``; ``create`` forces (or forbids) recording the backward pass."""
    primals = list(primals)
    tr = _Tracing(who)
    traced = [tr.tracer(p, f"primal {i}") for i, p in enumerate(primals)]
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    try:
        out = fun(*traced)
    finally:
        STATE.depth -= 1
        STATE.enabled = saved
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    cots = list(cotangents)
    if len(cots) != len(outs):
        raise ValueError(f"{who}: {len(cots)} cotangents for {len(outs)} outputs")
    if create is None:
        create = tr.outer or STATE.depth > 0
    total: dict[int, tuple[Node, array]] = {}
    for o, c in zip(outs, cots):
        if type(o) is not array or o._node is None:
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
    """
    primals = list(primals)
    tangents = [t if type(t) is array else array(t) for t in tangents]
    if len(tangents) != len(primals):
        raise ValueError(f"jvp: {len(tangents)} tangents for {len(primals)} primals")
    for i, (p, t) in enumerate(zip(primals, tangents)):
        if tuple(xp.shape(p._data if type(p) is array else p)) != t.shape:
            raise ValueError(f"jvp: tangent {i} has shape {t.shape}, primal {i} has {xp.shape(p)}")
    outer = _Tracing("jvp")
    traced = [outer.tracer(p, f"primal {i}") for i, p in enumerate(primals)]
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    try:
        out = fun(*traced)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        us = []
        utr = _Tracing("jvp")
        total = None
        for o in outs:
            if type(o) is not array or o._data.dtype.kind not in "fc":
                us.append(None)  # integer outputs have zero tangents
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
                term = ops.sum(hit[1] * tr_)
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
        ops.zeros_like(o) if u is None else utr.cotangent_of(u, found2) for o, u in zip(outs, us)
    ]
    if not (outer.outer or STATE.depth > 0):
        outs = [_detach_leaf(o) for o in outs]
        results = [_detach_leaf(r) for r in results]
    return outs, results


# -- vmap --------------------------------------------------------------------------------------


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
            shape = ops._as(leaf).shape
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
        for i in range(size):
            picked = iter(
                leaf if ax is None else ops.take(ops._as(leaf), i, ax)
                for leaf, ax in zip(leaves, leaf_axes)
            )
            call = [pytree.map(lambda _, it=picked: next(it), a) for a in args]
            results.append(fun(*call))
        flat = [pytree.leaves(r) for r in results]
        outs = []
        for j, (_leaf, ax) in enumerate(_match_axes(results[0], out_axes, "output")):
            column = [f[j] for f in flat]
            outs.append(ops.stack(column, axis=0 if ax is None else ax))
        return _unflatten_all(results[0], outs)

    return wrapper


def _vectorised_vmap(fun, args, leaves, leaf_axes, out_axes, size):
    """One traced call on the first example, replayed on the batch (``batching.py``)."""
    examples, batched = [], []
    for leaf, ax in zip(leaves, leaf_axes):
        if ax is None:
            continue
        a = ops._as(leaf)
        ax %= a.ndim
        examples.append(xp.take(a._data, 0, axis=ax))
        batched.append(a if ax == 0 else ops.moveaxis(a, ax, 0))

    def build(marked):
        it = iter(marked)
        picked = iter(leaf if ax is None else next(it) for leaf, ax in zip(leaves, leaf_axes))
        return [pytree.map(lambda _, p=picked: next(p), a) for a in args]

    out, positions = batching.run_trace(fun, build, examples)
    out_leaves = pytree.leaves(out)
    try:
        results = batching.replay(out_leaves, positions, batched, size)
    except (ValueError, IndexError, TypeError) as e:  # a rule's gap: the loop is always right
        raise batching.Unbatchable(f"the replay failed: {e}") from None
    moved = []
    for r, (_leaf, ax) in zip(results, _match_axes(out, out_axes, "output")):
        if ax is not None and ax % r.ndim != 0:
            r = ops.moveaxis(r, 0, ax)
        moved.append(r)
    return _unflatten_all(out, moved)


def _match_axes(tree, axes, where: str):
    """Pairs ``(leaf, axis)`` for the leaves of ``tree``; ``axes`` is an int/None or a prefix tree."""
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
            if ax is not None and not isinstance(ax, int):
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


def eval(*trees) -> None:
    """Accepted for MLX code: arrays are computed eagerly, so there is nothing to do."""
    return None


def async_eval(*trees) -> None:
    """Accepted for MLX code: arrays are computed eagerly."""
    return None


# -- custom functions --------------------------------------------------------------------------


class custom_function:
    """A function with user-defined derivatives (MLX's ``mx.custom_function``).

    Decorate a function, then register rules with the decorators below; each is optional and
    an undefined one falls back to differentiating the function itself. As in MLX, the rules
    receive the positional arguments as ``primals`` (the array itself for a one-argument
    function, else a tuple; trees of arrays are allowed), keyword arguments are passed through
    unchanged, and arrays the function captures are constants.

    * ``@f.vjp``: ``(primals, cotangents, outputs, **kwargs) -> cotangents`` shaped like
      ``primals``. Used by every reverse-mode transform, and by ``jvp`` (which is derived from
      reverse passes here).
    * ``@f.jvp``: ``(primals, tangents) -> output tangent(s)``. Without a ``vjp`` rule, the
      reverse rule is its transpose (a JVP rule is linear in the tangents), so both modes use it.
    * ``@f.vmap``: ``(inputs, axes) -> (outputs, out_axes)``. Used when ``mx.vmap`` is applied
      to ``f`` directly; elsewhere ``vmap`` maps examples one at a time.
    """

    def __init__(self, fun: Callable) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self._vjp = None
        self._jvp = None
        self._vmap = None

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
        if self._vjp is None and self._jvp is None:
            return self.fun(*args, **kwargs)
        leaves = pytree.leaves(args)
        xs = tuple(x for x in leaves if type(x) is array)
        if not STATE.enabled or all(x._node is None for x in xs):
            return self.fun(*args, **kwargs)
        saved = STATE.enabled
        STATE.enabled = False
        try:
            out = self.fun(*pytree.map(_detach_leaf, args), **kwargs)
        finally:
            STATE.enabled = saved
        out_leaves = pytree.leaves(out)
        outs = [o for o in out_leaves if type(o) is array]
        name = f"custom:{getattr(self.fun, '__name__', 'fn')}"
        rule = self._make_rule(args, kwargs, out, outs)
        prim = ops.Primitive(name, (rule,), True)
        recorded = iter([ops._rec(prim, o._data, xs, {"k": k}) for k, o in enumerate(outs)])
        return pytree.map(lambda o: next(recorded) if type(o) is array else o, out)

    def _make_rule(self, args, kwargs, out, outs):
        """The variadic VJP rule shared by the recorded outputs (``k`` picks the output)."""
        n_out = len(outs)
        last: list = [None, None, None]  # (k, g, cotangents) of the latest call

        def rule(g, ans, *xs, argnum, k):
            # the engine asks once per input; the user's rule runs once per output cotangent
            if last[0] != k or last[1] is not g:
                cots = [g if j == k else ops.zeros_like(outs[j]) for j in range(n_out)]
                primals = _unflatten_like(args, xs)
                primals = primals[0] if len(primals) == 1 else primals
                if self._vjp is not None:
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
            tangents = pytree.map(lambda a: next(it) if type(a) is array else None, primals)
            res = self._jvp(primals, tangents)
            return [o for o in pytree.leaves(res) if type(o) is array]

        zeros = [ops.zeros_like(xs[i]) for i in live]
        _, grads = _vjp(tangent_map, zeros, cots, "custom_function", create=STATE.enabled)
        out = [None] * len(xs)
        for i, g in zip(live, grads):
            out[i] = g
        return out


def _unflatten_like(tree, arrays):
    """``tree`` with its array leaves replaced, in order, by ``arrays``."""
    it = iter(arrays)
    return pytree.map(lambda o: next(it) if type(o) is array else o, tree)


def _array_leaves_like(primals, got, fun) -> list:
    """The user's cotangents (a tree shaped like ``primals``) for its array leaves, in order."""
    flat_p = pytree.leaves(primals)
    flat_g = pytree.leaves(got)
    arrays = [type(a) is array for a in flat_p]
    if len(flat_g) == len(flat_p):
        return [g for a, g in zip(arrays, flat_g) if a]
    if len(flat_g) == sum(arrays):
        return flat_g
    raise ValueError(
        f"custom_function {getattr(fun, '__name__', '')}: the vjp returned {len(flat_g)} "
        f"cotangents for {sum(arrays)} array inputs"
    )


# -- numerical gradient checks -----------------------------------------------------------------


def _flat(x) -> xp.ndarray:
    return xp.asarray(x._data if type(x) is array else x, dtype=xp.float64).reshape(-1)


def check_grads(
    fun: Callable,
    args: Sequence,
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Compare analytic derivatives with float64 central differences along random directions.

    Forward mode compares ``jvp`` with the difference quotient along a random tangent; reverse
    mode compares ``<u, J t>`` from the difference quotient with ``<vjp(u), t>``. Each further
    order repeats both checks on the function ``x -> vjp(f)(x, v)`` for a random ``v``.

    Args:
        fun: a function of ``args`` returning an array (or a tree of arrays, checked together).
        args: the point (arrays are converted to float64 copies).
        order: check derivatives up to this order.
        modes: ``"rev"`` checks VJPs, ``"fwd"`` checks JVPs.
        eps: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random directions.

    Raises:
        AssertionError: naming the mode, the order and the largest error found.
    """
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"check_grads: modes must be 'fwd' or 'rev', not {m!r}")
    rng = xp.random.default_rng(seed)
    args = [
        _from_value(xp.array(a._data if type(a) is array else a, dtype=xp.float64)) for a in args
    ]

    def fresh(xs):
        # new handles for every call: the function may rebind its arguments (``x += y``)
        return [_from_value(x._data) for x in xs]

    def numeric_dir(f, xs, ts, level):
        plus = f(*[_from_value(x._data + eps * t._data) for x, t in zip(xs, ts)])
        minus = f(*[_from_value(x._data - eps * t._data) for x, t in zip(xs, ts)])
        num = (_flat(plus) - _flat(minus)) / (2 * eps)
        if not xp.all(xp.isfinite(num)):
            raise AssertionError(
                f"check_grads: the finite differences of order {level} are not finite; the "
                "function is not finite (or not smooth) near the point"
            )
        return num

    def check(f, xs, level):
        ts = [_from_value(rng.standard_normal(x.shape)) for x in xs]
        num = numeric_dir(f, xs, ts, level)
        if "fwd" in modes:
            _, (ana,) = jvp(f, xs, ts)
            _compare(num, _flat(ana), "fwd", level)
        if "rev" in modes:
            out = f(*fresh(xs))
            u = _from_value(rng.standard_normal(out.shape))
            _, vjps = vjp(f, xs, [u])
            lhs = float(xp.dot(_flat(u), num))
            rhs = float(xp.sum([xp.dot(_flat(g), _flat(t)) for g, t in zip(vjps, ts)]))
            _compare(xp.array([lhs]), xp.array([rhs]), "rev", level)
        if level < order:
            v = _from_value(rng.standard_normal(f(*fresh(xs)).shape))

            def dir_fun(*ys):
                _, g = vjp(f, ys, [v])
                return ops.concatenate([ops.reshape(gi, (-1,)) for gi in g])

            check(dir_fun, xs, level + 1)

    def _compare(num, ana, mode, level):
        err = xp.abs(num - ana)
        tol = atol + rtol * xp.abs(num)
        if xp.any(err > tol) or not xp.all(xp.isfinite(ana)):
            worst = int(xp.argmax(xp.where(xp.isfinite(err), err - tol, xp.inf)))
            raise AssertionError(
                f"check_grads: {mode}-mode derivative of order {level} is off: largest error "
                f"{float(err[worst]):.3g} (numeric {num[worst]:.6g}, analytic {ana[worst]:.6g})"
            )

    check(_one_output(fun), args, 1)


def _one_output(fun: Callable) -> Callable:
    """``fun`` with a tree of outputs joined into one flat array."""

    def joined(*xs):
        out = fun(*xs)
        if type(out) is array:
            return out
        leaves = [o for o in pytree.leaves(out) if type(o) is array]
        return ops.concatenate([ops.reshape(o, (-1,)) for o in leaves])

    return joined
