"""Vectorised ``vmap``: trace one example, check the trace, replay it on the whole batch.

``vmap(fun)`` first runs ``fun`` once on the first example with recording on. The example's
values are a NumPy subclass, ``_Tainted``, that marks every value computed from them. The
recorded graph is then replayed once on the batch (batch axis first), one batching rule per
primitive (``Primitive.batch``, declared with the primitive in the op table). The replay is refused, and ``vmap`` falls back to one call per example,
when it could differ from that loop:

* a primitive on the path from the inputs has no batching rule (sort, scatter, einsum, a
  ``custom_function``, advanced indexing, ...);
* a constant of the graph was computed from the example (a mask ``x > 0``) and cannot be
  recomputed for every example: masks made by elementwise NumPy ufuncs and casts from traced
  values are recomputed (each marked value remembers its ufunc and inputs); anything else
  (an ``argmax``, a reduction of a mask, a value whose node is not on the output's graph)
  would be the first example's constant for every example, so it is refused. The shift that
  ``softmax``/``log_softmax`` subtract is recognised by where it was made and recomputed;
* the example's values reached Python or NumPy (``item()``, ``bool()``, ``float()``,
  iteration, ``tolist()``, ``np.asarray(a)``, ``np.mean(a)``, ``a.numpy()``: the last three
  are watched by wrapping those methods of ``array`` for the duration of the trace), so
  control flow or a NumPy-made constant may depend on them;
* ``fun`` drew random numbers (each example must draw its own), raised, or returned
  something that is not an array.

Known gap: a value that a kernel copies with ``np.asarray``/``np.array`` loses its mark; the
argmax/argmin family, the usual source of such copies, is refused outright. Branches inside
``ops.logsumexp`` and ``ops._where_kernel`` read the values but only pick a formula, so they
are allowed. The trace walks the whole recorded graph behind the outputs (including an outer
transform's), which costs time proportional to that graph.

Each call adds one to ``STATS["vectorised"]`` or ``STATS["fallback"]``; ``LAST["reason"]``
says why the latest fallback happened, so tests can check that the common ops never fall back.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable
from typing import Any

from . import ops
from . import random as _random
from .array import STATE, Node, _from_value, _node_array, array
from .backend import as_array as _as_array
from .backend import xp

STATS: dict[str, int] = {"vectorised": 0, "fallback": 0}
LAST: dict[str, Any] = {"reason": None}

_ESCAPED = [False]
# results that NumPy hands back as fresh, unmarked arrays or Python data
_REFUSED_FUNCS = frozenset(
    (
        "argmax",
        "argmin",
        "argsort",
        "argpartition",
        "nonzero",
        "flatnonzero",
        "argwhere",
        "searchsorted",
    )
)


Unbatchable = ops.Unbatchable
Mapped = ops.indexing.Mapped


class MappedOperandError(ValueError):
    """An operation refuses a mapped operand under ``vmap`` (MLX raises; no loop is tried)."""


def is_mapped(value) -> bool:
    """Whether a backend value came from the example ``vmap`` is tracing."""
    return isinstance(value, _Tainted)


def _plain(x):
    if isinstance(x, _Tainted):
        return x.view(xp.ndarray)
    if type(x) in (tuple, list):
        return type(x)(_plain(i) for i in x)
    return x


def _mark(x):
    if isinstance(x, xp.ndarray):
        return x if isinstance(x, _Tainted) else x.view(_Tainted)
    if isinstance(x, xp.generic):
        return xp.asarray(x).view(_Tainted)
    if type(x) in (tuple, list):
        return type(x)(_mark(i) for i in x)
    if isinstance(x, tuple):  # NumPy's named results (SVDResult, EighResult, ...): every part
        return tuple(_mark(i) for i in x)
    return x


def _escape(*_args):
    _ESCAPED[0] = True


def _to_python():
    """A marked value is read into Python: control flow may now depend on the example."""
    # kernels marked ``@value_branch`` in the op table read values only to pick a formula
    if sys._getframe(2).f_code in ops.VALUE_BRANCHES:
        return
    _ESCAPED[0] = True


class _Tainted(xp.ndarray):
    """An ndarray whose values came from the traced example; so does everything made from it."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            if not builtins.all(isinstance(o, _Tainted) for o in out):
                _escape()  # written into an unmarked buffer: the mark would be lost
            kwargs["out"] = tuple(_plain(o) for o in out)
        res = _mark(getattr(ufunc, method)(*(_plain(i) for i in inputs), **kwargs))
        if method == "__call__" and not kwargs and ufunc.nout == 1:
            # elementwise: the replay can recompute it for every example (masks such as x > 0)
            res.derivation = (ufunc, inputs)
        return res

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ in _REFUSED_FUNCS:
            _escape()
        res = _mark(func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))
        if func is xp.where:
            caller = sys._getframe(1)
            if ops.CONSTANT_MAKERS.get(caller.f_code) == "max_shift":
                res = _shift_marker(res, caller.f_locals)
        return res

    def astype(self, dtype, *args, **kwargs):
        res = xp.ndarray.astype(self.view(xp.ndarray), dtype, *args, **kwargs).view(_Tainted)
        res.derivation = (lambda v: v.astype(dtype), (self,))
        return res

    def __getitem__(self, idx):
        return _mark(xp.ndarray.__getitem__(self.view(xp.ndarray), _plain(idx)))

    def __bool__(self):
        _to_python()
        return bool(self.view(xp.ndarray))

    def __float__(self):
        _to_python()
        return float(self.view(xp.ndarray))

    def __int__(self):
        _to_python()
        return int(self.view(xp.ndarray))

    def __index__(self):
        _to_python()
        return self.view(xp.ndarray).__index__()

    def __complex__(self):
        _to_python()
        return complex(self.view(xp.ndarray))

    def __iter__(self):
        _to_python()
        return iter(self.view(xp.ndarray))

    def item(self, *args):
        _to_python()
        return self.view(xp.ndarray).item(*args)

    def tolist(self):
        _to_python()
        return self.view(xp.ndarray).tolist()


class _MaxShift(_Tainted):
    """The constant maximum that ``ops._shift_by_max`` subtracts (softmax, log_softmax)."""


# softmax and log_softmax subtract a constant computed from their input; it is recognised by
# where it was made (the op table's ``@constant_maker("max_shift")``), not by its value, so
# the replay can recompute it for every example.


def _shift_marker(res, local_vars: dict):
    source = getattr(local_vars.get("a"), "_node", None)
    if source is None or not isinstance(res, xp.ndarray):
        return res
    res = res.view(_MaxShift)
    res.source = source
    res.axes = tuple(local_vars["axes"])
    return res


def _batched_shift(const: _MaxShift, source_value: array, nd: int):
    """``_shift_by_max``'s constant for every example at once (batch axis first)."""
    d = source_value._data
    m = xp.max(d, axis=tuple(a + 1 for a in const.axes), keepdims=True)
    return _from_value(xp.where(xp.isfinite(m), m, 0)), nd


# -- the trace ---------------------------------------------------------------------------------


# the ways an array's values leave for NumPy (np.asarray(a), np.mean(a), a.numpy()): NumPy
# copies drop the mark, so during the trace these count as values read into Python
_TO_NUMPY = ("__array__", "__array_function__", "numpy")


def _guarded(method: Callable) -> Callable:
    def guarded(self, *args, **kwargs):
        if isinstance(self._data, _Tainted):
            _escape()
        return method(self, *args, **kwargs)

    return guarded


def run_trace(fun: Callable, build_args: Callable, examples: list) -> tuple[Any, dict]:
    """Run ``fun`` once on marked copies of ``examples``.

    Args:
        fun: the function being mapped.
        build_args: called with the marked leaf arrays, returns ``fun``'s positional args.
        examples: the first example of each mapped leaf (backend values).

    Returns:
        ``fun``'s output and a dict from each leaf node's id to ``(position, node)``.

    Raises:
        Unbatchable: when ``fun`` raised, drew random numbers or let the values reach Python.
    """
    leaves = []
    positions = {}
    for k, ex in enumerate(examples):
        value = xp.asarray(ex).view(_Tainted)
        node = Node(value, None, ())
        positions[id(node)] = (k, node)
        leaves.append(_from_value(value, node))
    rng_state = _random.get_state()
    saved = STATE.enabled
    STATE.enabled = True
    STATE.depth += 1
    outer_escaped = _ESCAPED[0]  # a vmap inside a traced vmap must not clear the outer flag
    _ESCAPED[0] = False
    methods = {name: array.__dict__[name] for name in _TO_NUMPY}
    for name, method in methods.items():
        setattr(array, name, _guarded(method))
    try:
        out = fun(*build_args(leaves))
    except MappedOperandError:
        raise
    except Exception as e:  # the loop re-raises it with the user's own example
        raise Unbatchable(f"fun raised {type(e).__name__} on the traced example") from None
    finally:
        for name, method in methods.items():
            setattr(array, name, method)
        STATE.depth -= 1
        STATE.enabled = saved
        escaped = _ESCAPED[0]
        _ESCAPED[0] = outer_escaped or escaped
    if escaped:
        raise Unbatchable("the example's values reached Python or an index computation")
    if _random.get_state() != rng_state:
        _random.set_state(rng_state)
        raise Unbatchable("fun draws random numbers")
    return out, positions


# -- the replay --------------------------------------------------------------------------------


def replay(
    out_leaves: list, positions: dict, batched: list, size: int, conv: Callable | None = None
) -> list[array]:
    """Batched values of ``out_leaves`` (batch axis first), computed from ``batched`` inputs.

    Args:
        out_leaves: the traced outputs (arrays).
        positions: leaf node id -> ``(index into batched, node)`` (from ``run_trace``).
        batched: the mapped inputs with their batch axis first.
        size: the batch size.
        conv: for a trace made on host copies of GPU arrays (``vmapping.py``), maps a host
            value of the trace to the GPU replay's (``None``: values as they are).

    Returns:
        One array per output, batch axis first.

    Raises:
        Unbatchable: when some primitive has no rule or a constant came from the example
            in a way that cannot be recomputed for every example.
    """
    for leaf in out_leaves:
        if type(leaf) is not array:
            raise Unbatchable(f"fun returned a {type(leaf).__name__}, not an array")
    r = _Replay(positions, batched, [leaf._node for leaf in out_leaves if leaf._node is not None])
    r.conv = conv
    results = []
    for leaf in out_leaves:
        if leaf._node is not None:
            val, nd = r.node(leaf._node)
        elif isinstance(leaf._data, _Tainted):
            val, nd = r.constant(leaf._data, "an output")
        else:
            val, nd = (leaf if conv is None else _from_value(conv(leaf._data))), None
        if nd is None:
            val = ops.broadcast_to(ops.expand_dims(val, 0), (size, *val.shape))
        results.append(val)
    return results


class _Replay:
    """The batched value of each traced node, and of constants derived from the example."""

    def __init__(self, positions: dict, batched: list, roots: list) -> None:
        self.conv: Callable | None = None  # host values of a GPU call's trace -> the GPU's
        self.memo: dict[int, tuple] = {}  # node id -> (value, example ndim or None)
        self.by_value: dict[int, Node] = {}  # id of a traced value -> its node
        for k, node in positions.values():
            b = batched[k]
            self.memo[id(node)] = (b, b.ndim - 1)
            self.by_value[id(node.value)] = node
        stack, seen = list(roots), set()
        while stack:  # every traced node, so derived constants can find their sources
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            self.by_value.setdefault(id(node.value), node)
            stack.extend(a for a in node.args if type(a) is Node)

    def node(self, root: Node) -> tuple:
        """Fill ``memo`` for ``root`` and its ancestors, iteratively (post-order)."""
        memo = self.memo
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            key = id(node)
            if key in memo:
                continue
            if not ready:
                stack.append((node, True))
                for a in node.args:
                    if type(a) is Node and id(a) not in memo:
                        stack.append((a, False))
                continue
            args = []
            any_batched = False
            for a in node.args:
                if type(a) is Node:
                    val, nd = memo[id(a)]
                elif (
                    isinstance(a, _MaxShift)
                    and _name(node) == "subtract"
                    and (node.args[0] is a.source)
                ):
                    val, nd = memo[id(a.source)]
                    if nd is None:
                        raise Unbatchable("softmax: a shift computed from the example")
                    val, nd = _batched_shift(a, val, a.ndim)
                elif isinstance(a, _Tainted):
                    val, nd = self.constant(a, f"an input of {_name(node)}")
                else:
                    val, nd = (a if self.conv is None else self.conv(a)), None
                any_batched = any_batched or nd is not None
                args.append((val, nd))
            params = node.params or {}
            if "idx" in params and _holds_marked(params["idx"]):
                params, mapped = self.index(params, _name(node))
                any_batched = any_batched or mapped
            if not any_batched:
                if isinstance(node.value, _Tainted):
                    raise Unbatchable(f"{_name(node)}: its value was computed from the example")
                if self.conv is not None and type(node.value) is xp.ndarray:
                    # a recorded value the host trace computed from unmapped GPU arguments
                    # (grad's copy of its argument): computed again from their GPU values
                    rule = node.prim.batch if node.prim is not None else None
                    if rule is None:
                        raise Unbatchable(f"{_name(node)}: a recorded host value in a GPU call")
                    try:
                        memo[key] = (rule(args, params, node.value.ndim), None)
                    except Exception as e:  # a rule that needs a batched input: the loop
                        raise Unbatchable(f"{_name(node)}: {type(e).__name__}: {e}") from None
                    continue
                memo[key] = (_node_array(node), None)
                continue
            rule = node.prim.batch if node.prim is not None else None
            if rule is None:
                raise Unbatchable(f"no batching rule for {_name(node)}")
            ex_ndim = node.value.ndim
            memo[key] = (rule(args, params, ex_ndim), ex_ndim)
        return memo[id(root)]

    def index(self, params: dict, name: str) -> tuple[dict, bool]:
        """``params`` with the index arrays computed from the example replaced by their
        batched values (``ops.indexing.Mapped``), and whether any was."""
        idx = params["idx"]
        items = idx if type(idx) is tuple else (idx,)
        out, mapped = [], False
        for item in items:
            if isinstance(item, _Tainted):
                val, nd = self.constant(item, f"an index of {name}")
                raw = val._data if type(val) is array else val
                if nd is not None:
                    mapped = True
                    item = Mapped(raw)
                else:
                    item = _plain(raw)
            out.append(item)
        return dict(params, idx=tuple(out) if type(idx) is tuple else out[0]), mapped

    def constant(self, value, where: str) -> tuple:
        """A constant computed from the example (a mask ``x > 0``), recomputed per example.

        Only elementwise NumPy ufuncs and casts are recomputed, from traced values or plain
        constants; anything else raises ``Unbatchable``.
        """
        done: dict[int, tuple] = {}
        stack = [(value, False)]
        while stack:
            v, ready = stack.pop()
            key = id(v)
            if key in done:
                continue
            if not isinstance(v, _Tainted):
                done[key] = ((v if self.conv is None else self.conv(v)), None)
                continue
            node = self.by_value.get(key)
            if node is not None:
                val, nd = self.node(node)
                done[key] = (val._data if type(val) is array else val, nd)
                continue
            deriv = getattr(v, "derivation", None)
            if deriv is None:
                raise Unbatchable(f"{where} was computed from the example")
            fn, inputs = deriv
            if not ready:
                stack.append((v, True))
                stack.extend((i, False) for i in inputs if id(i) not in done)
                continue
            parts = [done[id(i)] for i in inputs]
            target = builtins.max(n if n is not None else xp.ndim(p) for p, n in parts)
            raw = [p if n is None else _align_raw(p, n, target) for p, n in parts]
            batched = builtins.any(n is not None for _, n in parts)
            done[key] = (fn(*raw), target if batched else None)
        val, nd = done[id(value)]
        return _from_value(xp.asarray(val) if self.conv is None else _as_array(val)), nd


def _holds_marked(idx) -> bool:
    if type(idx) is tuple:
        return builtins.any(isinstance(i, _Tainted) for i in idx)
    return isinstance(idx, _Tainted)


def _align_raw(v, nd: int, target: int):
    if nd >= target:
        return v
    return v.reshape((v.shape[0],) + (1,) * (target - nd) + tuple(v.shape[1:]))


def _name(node: Node) -> str:
    return node.prim.name if node.prim is not None else "leaf"


def batched_primitives() -> frozenset:
    """Names of the primitives that have a batching rule (the rest fall back to the loop)."""
    return frozenset(name for name, prim in ops.PRIMITIVES.items() if prim.batch is not None)
