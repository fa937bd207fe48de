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

from . import ops
from .array import STATE, Node, _from_value, _node_array, array
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

_IDENTITY = ops.defprim("identity", lambda g, ans, x: g)


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


def _toposort(root: Node, is_target: Callable[[Node], bool]) -> tuple[list, set]:
    """Nodes reachable from ``root`` in post-order, and the ids of those that lead to a target.

    Iterative, so a chain of any length is fine; targets are not expanded further.
    """
    order: list = []
    seen: set = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        nid = id(node)
        if nid in seen:
            continue
        seen.add(nid)
        stack.append((node, True))
        if is_target(node):
            continue
        for p in node.args:
            if type(p) is Node and id(p) not in seen:
                stack.append((p, False))
    live: set = set()
    for node in order:  # parents come before children in post-order
        if is_target(node):
            live.add(id(node))
            continue
        for p in node.args:
            if type(p) is Node and id(p) in live:
                live.add(id(node))
                break
    return order, live


def _const(value, like) -> array:
    if type(value) is not xp.ndarray and not isinstance(value, xp.generic):
        value = xp.asarray(value, dtype=like.dtype if like.dtype.kind in "fc" else None)
    return _from_value(value)


def backward_pass(
    root: Node,
    cotangent: array,
    is_target: Callable[[Node], bool],
    create_graph: bool = False,
) -> dict[int, tuple[Node, array]]:
    """Propagate ``cotangent`` from ``root`` back to every target node.

    Args:
        root: the node of the output being differentiated.
        cotangent: an array shaped like the output.
        is_target: which nodes to stop at and report.
        create_graph: record the pass so its results can be differentiated again.

    Returns:
        ``{id(node): (node, cotangent)}`` for each target reached.
    """
    order, live = _toposort(root, is_target)
    cots: dict[int, array] = {id(root): cotangent}
    found: dict[int, tuple[Node, array]] = {}
    saved = STATE.enabled
    STATE.enabled = create_graph
    wrap = _node_array if create_graph else (lambda n: _from_value(n.value))
    try:
        for node in reversed(order):
            nid = id(node)
            g = cots.pop(nid, None)
            if g is None:
                continue
            if is_target(node):
                found[nid] = (node, g)
                continue
            prim = node.prim
            args = node.args
            params = node.params or {}
            xs = None
            ans = None
            for i, p in enumerate(args):
                if type(p) is not Node or id(p) not in live:
                    continue
                if xs is None:
                    ans = wrap(node)
                    xs = [wrap(a) if type(a) is Node else _const(a, node.value) for a in args]
                if prim.variadic:
                    gi = prim.vjps[0](g, ans, *xs, argnum=i, **params)
                else:
                    gi = prim.vjps[i](g, ans, *xs, **params)
                if gi is None:
                    continue
                if type(gi) is not array:
                    gi = _from_value(xp.asarray(gi, dtype=p.value.dtype))
                pshape = p.value.shape
                if gi._data.shape != pshape:
                    gi = _sum_to_shape(gi, pshape)
                if gi._data.dtype != p.value.dtype:
                    gi = ops.astype(gi, p.value.dtype)
                pid = id(p)
                prev = cots.get(pid)
                cots[pid] = gi if prev is None else prev + gi
    finally:
        STATE.enabled = saved
    return found


def _seed(out: array, cotangent, who: str) -> array:
    if cotangent is None:
        if out._data.size != 1:
            raise ValueError(
                f"{who}: the output has shape {out.shape}; only outputs of one element have an "
                "implicit cotangent. Pass a cotangent (gradient=...) of that shape, or reduce "
                "the output (e.g. .sum())."
            )
        return _from_value(xp.ones(out._data.shape, dtype=out._data.dtype))
    c = cotangent if type(cotangent) is array else array(cotangent, dtype=out.dtype)
    if c.shape != out.shape:
        raise ValueError(f"{who}: cotangent of shape {c.shape} for an output of shape {out.shape}")
    return c


def _has_owner(node: Node) -> bool:
    return node.owner is not None


def tape_backward(out: array, gradient=None, create_graph: bool = False) -> None:
    """``out.backward()``: add the cotangent of every ``requires_grad`` leaf into its ``.grad``."""
    node = out._node
    if node is None:
        raise RuntimeError(
            "backward: this array records no graph. Set requires_grad=True on the inputs (or "
            "parameters) before computing it, and do not compute it under no_grad()."
        )
    seed = _seed(out, gradient, "backward")
    found = backward_pass(node, seed, _has_owner, create_graph or STATE.depth > 0)
    for leaf, g in found.values():
        owner = leaf.owner()
        if owner is None:
            continue
        if not create_graph:
            g = _from_value(g._data)
        owner._grad = g if owner._grad is None else owner._grad + g


# -- grad and friends --------------------------------------------------------------------------


def _is_tree_node(x) -> bool:
    return isinstance(x, (list, tuple, dict))


def _tree_leaves_map(fn, tree):
    """Map ``fn`` over the leaves of a dict/list/tuple tree (dicts come back as dicts)."""
    if isinstance(tree, dict):
        return {k: _tree_leaves_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        out = [_tree_leaves_map(fn, v) for v in tree]
        return (
            out
            if isinstance(tree, list)
            else type(tree)(out)
            if not hasattr(tree, "_fields")
            else type(tree)(*out)
        )
    return fn(tree)


def _tree_leaves(tree) -> list:
    out = []
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, dict):
            stack.extend(reversed(list(t.values())))
        elif isinstance(t, (list, tuple)):
            stack.extend(reversed(t))
        else:
            out.append(t)
    return out


class _Tracing:
    """Creates the tracer leaves of one transform and knows which nodes are its targets."""

    __slots__ = ("targets", "who", "outer")

    def __init__(self, who: str) -> None:
        self.targets: dict[int, Node] = {}
        self.who = who
        self.outer = False

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
            raise TypeError(
                f"{self.who}: cannot differentiate with respect to {where} of integer or "
                f"boolean dtype {x.dtype.name}; convert it with .astype(mx.float32)"
            )
        parent = x._node
        if parent is not None:
            self.outer = True
            node = Node(x._data, _IDENTITY, (parent,))
        else:
            node = Node(x._data, _IDENTITY, (x._data,))
        self.targets[id(node)] = node
        return _from_value(x._data, node)

    def is_target(self, node: Node) -> bool:
        return id(node) in self.targets

    def cotangent_of(self, t, found):
        if t is None:
            return None
        hit = found.get(id(t._node))
        if hit is None:
            return _from_value(xp.zeros(t._data.shape, t._data.dtype))
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


def _run_traced(fun, args, kwargs, argnums, argnames, who):
    tr = _Tracing(who)
    single, nums = _normalise_argnums(argnums, len(args), who) if argnums != () else (False, ())
    args = list(args)
    traced_pos = {}
    for n in nums:
        args[n] = _tree_leaves_map(lambda x, n=n: tr.tracer(x, f"argument {n}"), args[n])
        traced_pos[n] = args[n]
    kwargs = dict(kwargs)
    traced_kw = {}
    for name in argnames:
        if name not in kwargs:
            raise ValueError(f"{who}: argnames names {name!r}, which the call did not pass")
        kwargs[name] = _tree_leaves_map(
            lambda x, name=name: tr.tracer(x, f"argument {name!r}"), kwargs[name]
        )
        traced_kw[name] = kwargs[name]
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    try:
        out = fun(*args, **kwargs)
    finally:
        STATE.depth -= 1
        STATE.enabled = saved
    return tr, single, nums, traced_pos, traced_kw, out


def _grads_from(tr, loss, single, nums, traced_pos, traced_kw, argnames, create_graph):
    if type(loss) is not array:
        raise TypeError(f"{tr.who}: the function must return an array, not {type(loss).__name__}")
    if loss._data.size != 1:
        raise ValueError(
            f"{tr.who}: the function's output has shape {loss.shape}; grad needs an output of "
            "one element (use vjp for other shapes)"
        )
    if loss._node is not None:
        found = backward_pass(loss._node, _seed(loss, None, tr.who), tr.is_target, create_graph)
    else:
        found = {}

    def cot(t):
        return tr.cotangent_of(t, found)

    pos = [_tree_leaves_map(cot, traced_pos[n]) for n in nums]
    pos_out = pos[0] if single else tuple(pos)
    if argnames:
        kw = {k: _tree_leaves_map(cot, v) for k, v in traced_kw.items()}
        return (pos_out if nums else None), kw
    return pos_out


def value_and_grad(
    fun: Callable, argnums: int | Sequence[int] | None = None, argnames: str | Sequence[str] = ()
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

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        if argnums != () and not args:
            raise ValueError(
                f"value_and_grad: argnums {argnums!r} given, but no positional arguments"
            )
        tr, single, nums, tp, tk, out = _run_traced(
            fun, args, kwargs, argnums, argnames, "value_and_grad"
        )
        loss = out[0] if isinstance(out, (tuple, list)) else out
        create = tr.outer or STATE.depth > 0
        grads = _grads_from(tr, loss, single, nums, tp, tk, argnames, create)
        if not create:
            out = _tree_leaves_map(_detach_leaf, out)
        return out, grads

    return wrapper


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
    vg = value_and_grad(fun, argnums, argnames)

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
    primals = list(primals)
    tr = _Tracing("vjp")
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
        raise ValueError(f"vjp: {len(cots)} cotangents for {len(outs)} outputs")
    create = tr.outer or STATE.depth > 0
    total: dict[int, tuple[Node, array]] = {}
    for o, c in zip(outs, cots):
        if type(o) is not array or o._node is None:
            continue
        found = backward_pass(o._node, _seed(o, c, "vjp"), tr.is_target, create)
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
            u = utr.tracer(ops.zeros_like(o), "cotangent")
            us.append(u)
            term = ops.sum(o * u)
            total = term if total is None else total + term
        if total is None or total._node is None:
            dots = None
        else:
            found = backward_pass(total._node, _seed(total, None, "jvp"), outer.is_target, True)
            dots = None
            for t, tr_ in zip(traced, tangents):
                hit = found.get(id(t._node))
                if hit is None:
                    continue
                term = ops.sum(hit[1] * tr_)
                dots = term if dots is None else dots + term
        if dots is None or dots._node is None:
            found2 = {}
        else:
            create = outer.outer or STATE.depth > 1
            found2 = backward_pass(dots._node, _seed(dots, None, "jvp"), utr.is_target, create)
    finally:
        STATE.depth -= 1
        STATE.enabled = saved
    results = [utr.cotangent_of(u, found2) for u in us]
    if not (outer.outer or STATE.depth > 0):
        outs = [_detach_leaf(o) for o in outs]
        results = [_detach_leaf(r) for r in results]
    return outs, results


# -- vmap --------------------------------------------------------------------------------------


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable:
    """Vectorise ``fun`` over an axis of its inputs (MLX's ``vmap``).

    Each example is computed by ``fun`` and the results stacked along ``out_axes``; gradients
    flow through, so ``grad`` of a ``vmap`` and ``vmap`` of a ``grad`` both work.

    Args:
        fun: a function of arrays (or trees of arrays).
        in_axes: the mapped axis of each argument (an int, ``None`` for unmapped, or a tuple
            with one entry per argument).
        out_axes: where the mapped axis goes in each output.

    Returns:
        The vectorised function.
    """

    @functools.wraps(fun)
    def wrapper(*args):
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(axes)} entries for {len(args)} arguments")
        size = None
        for a, ax in zip(args, axes):
            if ax is None:
                continue
            for leaf in _tree_leaves(a):
                n = ops._as(leaf).shape[ax]
                if size is not None and n != size:
                    raise ValueError(f"vmap: mapped axes have different sizes {size} and {n}")
                size = n
        if size is None:
            raise ValueError("vmap: at least one argument must be mapped (in_axes not all None)")
        results = []
        for i in range(size):
            call = []
            for a, ax in zip(args, axes):
                if ax is None:
                    call.append(a)
                else:
                    call.append(
                        _tree_leaves_map(lambda x, ax=ax, i=i: ops.take(ops._as(x), i, ax), a)
                    )
            results.append(fun(*call))
        first = results[0]
        if isinstance(first, (tuple, list)):
            oa = out_axes if isinstance(out_axes, (tuple, list)) else (out_axes,) * len(first)
            return type(first)(
                ops.stack([r[j] for r in results], axis=oa[j]) for j in range(len(first))
            )
        return ops.stack(results, axis=out_axes)

    return wrapper


# -- recording switches ------------------------------------------------------------------------


class no_grad:
    """Record nothing inside (``with mx.no_grad():``, or as a decorator)."""

    _flag = False

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

    Decorate a function, then register rules with ``@f.vjp`` (``(primals, cotangent(s),
    output(s)) -> tuple of cotangents``), ``@f.jvp`` (``(primals, tangents) -> tangent(s)``) and
    ``@f.vmap`` (``(inputs, axes) -> (outputs, axes)``).
    """

    def __init__(self, fun: Callable) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self._vjp = None
        self._jvp = None
        self._vmap = None

    def vjp(self, fn: Callable) -> Callable:
        """Register the VJP rule."""
        self._vjp = fn
        return fn

    def jvp(self, fn: Callable) -> Callable:
        """Register the JVP rule."""
        self._jvp = fn
        return fn

    def vmap(self, fn: Callable) -> Callable:
        """Register the vmap rule."""
        self._vmap = fn
        return fn

    def __call__(self, *args):
        xs = [a if type(a) is array else ops._as(a) for a in args]
        if self._vjp is None or not STATE.enabled or all(x._node is None for x in xs):
            return self.fun(*args)
        saved = STATE.enabled
        STATE.enabled = False
        try:
            out = self.fun(*[_from_value(x._data) for x in xs])
        finally:
            STATE.enabled = saved
        multi = isinstance(out, (tuple, list))
        outs = list(out) if multi else [out]
        rule = self._vjp
        n_out = len(outs)
        results = []
        for k, o in enumerate(outs):

            def make(k=k):
                def per_input(g, ans, *prims, argnum):
                    if n_out == 1:
                        cot = g
                        outputs = ans
                    else:
                        cot = [g if j == k else ops.zeros_like(outs[j]) for j in range(n_out)]
                        outputs = outs
                    got = rule(list(prims) if len(prims) > 1 else prims[0], cot, outputs)
                    if not isinstance(got, (tuple, list)):
                        got = (got,)
                    return got[argnum]

                return per_input

            prim = ops.Primitive(f"custom:{getattr(self.fun, '__name__', 'fn')}", (make(),), True)
            results.append(ops._rec(prim, o._data, tuple(xs)))
        return type(out)(results) if multi else results[0]


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

    Args:
        fun: a function of ``args`` returning an array.
        args: the point (arrays are converted to float64 copies).
        order: check derivatives up to this order (each order checks the derivative of the
            previous order's directional derivative).
        modes: ``"rev"`` checks VJPs, ``"fwd"`` checks JVPs.
        eps: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random directions.

    Raises:
        AssertionError: naming the mode, the order and the largest error found.
    """
    rng = xp.random.default_rng(seed)
    args = [
        _from_value(xp.array(a._data if type(a) is array else a, dtype=xp.float64)) for a in args
    ]

    def numeric_dir(f, xs, ts):
        plus = f(*[_from_value(x._data + eps * t._data) for x, t in zip(xs, ts)])
        minus = f(*[_from_value(x._data - eps * t._data) for x, t in zip(xs, ts)])
        return (_flat(plus) - _flat(minus)) / (2 * eps)

    def check(f, xs, level):
        ts = [_from_value(rng.standard_normal(x.shape)) for x in xs]
        num = numeric_dir(f, xs, ts)
        if "fwd" in modes:
            _, (ana,) = jvp(f, xs, ts)
            _compare(num, _flat(ana), "fwd", level)
        if "rev" in modes:
            out = f(*xs)
            u = _from_value(rng.standard_normal(out.shape))
            _, vjps = vjp(f, xs, [u])
            lhs = float(xp.dot(_flat(u), num))
            rhs = float(xp.sum([xp.dot(_flat(g), _flat(t)) for g, t in zip(vjps, ts)]))
            _compare(xp.array([lhs]), xp.array([rhs]), "rev", level)
        if level < order:
            v = _from_value(rng.standard_normal(f(*xs).shape))

            def dir_fun(*ys):
                _, g = vjp(f, ys, [v])
                return ops.concatenate([ops.reshape(gi, (-1,)) for gi in g])

            check(dir_fun, xs, level + 1)

    def _compare(num, ana, mode, level):
        err = xp.abs(num - ana)
        tol = atol + rtol * xp.abs(num)
        if xp.any(err > tol) or not xp.all(xp.isfinite(ana)):
            worst = int(xp.argmax(err - tol))
            raise AssertionError(
                f"check_grads: {mode}-mode derivative of order {level} is off: largest error "
                f"{float(err.max()):.3g} (numeric {num[worst]:.6g}, analytic {ana[worst]:.6g})"
            )

    check(fun, args, 1)
