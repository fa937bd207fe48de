"""``mx.compile``: trace a function once per input signature, then replay a flat program.

How it works (docs/performance.md has the measurements):

* **Tracing.** The first call for a given signature (the shapes and dtypes of the array
  arguments and of the ``inputs=`` state, and the values of everything else) runs the function
  eagerly, with every backend value replaced by a ``Traced`` view: an ``ndarray`` subclass that
  records each NumPy call made on it (ufuncs through ``__array_ufunc__``, NumPy functions through
  ``__array_function__``, and every ``ndarray`` method) as one step of a program. The engine,
  the modules and the optimizers run unchanged, so the recorded program holds exactly the
  kernels of a forward pass, its backward pass and the optimizer's update, and none of the
  Python bookkeeping around them (graph nodes, tree walks, argument checks).
* **Random draws** from the global generator are recorded as draws, so a replay draws fresh
  numbers and advances the random state as an eager call would.
* **Python values read from arrays** (``bool(x)``, ``float(x)``, ``x.item()``: a data-dependent
  branch, a check of labels) become *guards*: the replay recomputes the value and, if it
  differs from the traced one, the call runs eagerly and the signature stops being compiled.
* **Replay** is generated Python code: one line per kernel, on plain NumPy arrays, with dead
  steps removed, each buffer released after its last use, and elementwise results written into
  a temporary that dies at that step (``out=``) instead of a new allocation.
* **A safety net.** The first replay of a signature is checked against an eager call on the
  same inputs (with the random state restored in between); any difference, any value the
  tracer could not follow, or any error turns compilation off for that signature, and the
  function then simply runs eagerly. Results therefore always equal the eager ones.

``disable_compile()`` (or the ``MLX_DISABLE_COMPILE`` / ``CHAINRULE_DISABLE_COMPILE``
environment variables) makes every compiled function run eagerly.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as _np

from .array import STATE, Node, _from_value, array

__all__ = ["compile", "disable_compile", "enable_compile", "Traced", "is_tracing", "STATS"]

_DISABLED = [
    os.environ.get("CHAINRULE_DISABLE_COMPILE", os.environ.get("MLX_DISABLE_COMPILE", ""))
    not in ("", "0")
]

_ndarray = _np.ndarray
_ndview = _np.ndarray.view
_generic = _np.generic

# Counters for tests and benchmarks: how calls were served.
STATS = {"traces": 0, "replays": 0, "eager": 0, "verified": 0, "rejected": 0}


class _Values:
    """Trace-time values by slot, held by weak reference, with the metadata steps need."""

    __slots__ = ("refs", "meta")

    def __init__(self) -> None:
        self.refs: list = []
        self.meta: list = []  # (shape, dtype, strides, C-contiguous)

    def append(self, v) -> None:
        self.refs.append(weakref.ref(v))
        self.meta.append((v.shape, v.dtype, v.strides, v.flags.c_contiguous))

    def __getitem__(self, slot: int):
        return self.refs[slot]()

    def __len__(self) -> int:
        return len(self.refs)


class _Tracer:
    """The program being recorded: values by slot, and the steps that made them."""

    __slots__ = ("values", "steps", "failed", "inputs", "rng", "by_id", "transposed", "keep")

    def __init__(self) -> None:
        # slot -> the plain value seen while tracing, held weakly: a trace keeps no more
        # memory alive than the eager call it is (inputs are held by ``keep``)
        self.values = _Values()
        self.keep: list = []
        self.steps: list = []  # (kind, fn, args, kwargs, outs, extra)
        self.failed: str | None = None
        self.inputs: list[int] = []
        self.rng = None
        self.by_id: dict[int, int] = {}  # id(plain value) -> slot
        self.transposed: dict[int, tuple] = {}  # slot made by a transpose -> (source, perm)

    def new(self, value) -> Traced:
        """A traced view of ``value`` with a fresh slot."""
        if isinstance(value, _generic) or type(value) in (bool, int, float, complex):
            value = _np.asarray(value)
        t = value.view(Traced)
        t._slot = len(self.values)
        t._tr = self
        t._plain = value
        self.by_id[id(value)] = t._slot
        self.values.append(value)
        return t

    def slot_of_plain(self, x) -> int | None:
        """The slot whose traced value is the plain array ``x`` itself, if any."""
        slot = self.by_id.get(id(x))
        if slot is not None and self.values[slot] is x:
            return slot
        return None

    def fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why


class _Local(threading.local):
    tr: _Tracer | None = None  # the tracer active in this thread


_LOCAL = _Local()


def is_tracing() -> bool:
    """Whether a compiled function is being traced right now."""
    return _LOCAL.tr is not None


class _Ref:
    """A slot reference inside a recorded step's arguments."""

    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot


def _resolve_view(tr: _Tracer, a: _ndarray):
    """A plain array viewing a traced value (``np.asarray(t)``): that value's slot, or None."""
    base = a.base
    while base is not None:
        slot = tr.slot_of_plain(base)
        if slot is not None:
            v = tr.values[slot]
            if (
                a.shape == v.shape
                and a.dtype == v.dtype
                and a.strides == v.strides
                and a.__array_interface__["data"][0] == v.__array_interface__["data"][0]
            ):
                return slot
            tr.fail(f"a NumPy array was derived from a traced value outside NumPy's API {a.shape}")
            return None
        base = getattr(base, "base", None)
    return None


def _conv(tr: _Tracer, x):
    """(template, plain value) of one argument: traced values become slot references."""
    t = type(x)
    if t is Traced:
        if x._tr is tr and x._slot is not None:
            return _Ref(x._slot), x._plain
        if x._tr is tr:
            tr.fail("a traced value was made by a NumPy path the tracer does not follow")
        plain = _ndview(x, _ndarray)  # left over from an earlier trace: a constant
        return plain, plain
    if t is tuple or t is list or t is dict:
        items = x.items() if t is dict else enumerate(x)
        tmpl, vals, changed = {}, {}, False
        for k, v in items:
            a, b = _conv(tr, v)
            changed = changed or a is not v or b is not v
            tmpl[k] = a
            vals[k] = b
        if not changed:
            return x, x
        if t is dict:
            return tmpl, vals
        return t(tmpl.values()), t(vals.values())
    if t is _ndarray:
        slot = tr.slot_of_plain(x)
        if slot is None and x.base is not None:
            slot = _resolve_view(tr, x)
        if slot is not None:
            return _Ref(slot), x
    return x, x


def _plain(x):
    """Strip traced views (no trace active, or a failed one)."""
    t = type(x)
    if t is Traced:
        return _ndview(x, _ndarray)
    if t is tuple or t is list:
        return t(_plain(v) for v in x)
    if t is dict:
        return {k: _plain(v) for k, v in x.items()}
    return x


def _same_slot(tr: _Tracer, value, slot: int) -> Traced:
    t = value.view(Traced)
    t._slot = slot
    t._tr = tr
    t._plain = value
    return t


def _wrap_out(tr: _Tracer, out, step_outs: list, aliases: dict):
    """Traced views of a step's results (appending their slots to ``step_outs``)."""
    if isinstance(out, (_ndarray, _generic)):
        hit = aliases.get(id(out))
        if hit is not None:
            step_outs.append(hit._slot)
            return hit
        t = tr.new(out)
        step_outs.append(t._slot)
        return t
    if (type(out) is tuple or type(out) is list) and not step_outs:
        return type(out)(_wrap_out(tr, o, step_outs, aliases) for o in out)
    if out is None:
        return None
    tr.fail(f"a NumPy call returned a {type(out).__name__} the tracer cannot follow")
    return out


def _call(fn, args: tuple, kwargs: dict, effect: bool = False):
    """Run ``fn`` on plain values; while tracing, record it as one step."""
    tr = _LOCAL.tr
    if tr is None or tr.failed is not None:
        return fn(*_plain(args), **_plain(kwargs))
    if effect or (kwargs and "out" in kwargs) or fn in _INPLACE_FUNCS:
        _adopt_targets(tr, fn, args, kwargs)
    targs, pargs = _conv(tr, args)
    tkw, pkw = _conv(tr, kwargs) if kwargs else (kwargs, kwargs)
    out = fn(*pargs, **pkw)
    aliases = {}
    if kwargs and "out" in kwargs:
        effect = True
        outs = kwargs["out"]
        for o in outs if type(outs) is tuple else (outs,):
            if type(o) is Traced and o._tr is tr and o._slot is not None:
                aliases[id(o._plain)] = o
    if tr.failed is not None:
        return out
    if out is not None and not isinstance(out, (_ndarray, _generic, tuple, list)):
        if fn in _STATIC:
            return out  # shapes, dtypes: fixed by the signature
        # a Python value computed from traced arrays: the replay checks it is unchanged
        tr.steps.append(("guard", fn, targs, tkw, [], out))
        return out
    if not effect and type(out) is _ndarray:
        same = tr.slot_of_plain(out)
        if same is not None:  # the call returned its argument (asarray, astype(copy=False))
            return _same_slot(tr, out, same)
        if type(fn) is _Meth and fn.name == "transpose" and type(targs[0]) is _Ref:
            folded = _fold_transpose(tr, targs[0].slot, pargs[1:], out)
            if folded is not None:
                return folded
    step_outs: list = []
    res = _wrap_out(tr, out, step_outs, aliases)
    multi = type(out) is tuple or type(out) is list
    tr.steps.append(("call", fn, targs, tkw, step_outs, (effect or out is None, multi)))
    return res


def _fold_transpose(tr: _Tracer, src: int, perm_args: tuple, out) -> Traced | None:
    """``x.T.T`` is ``x``: a transpose undoing the one that made its input is no step."""
    inner = tr.transposed.get(src)
    perm = perm_args[0] if len(perm_args) == 1 else perm_args
    if perm is None or perm == () or type(perm) not in (tuple, list):
        perm = tuple(reversed(range(out.ndim)))
    perm = tuple(perm)
    if inner is not None:
        base, p1 = inner
        if tuple(p1[i] for i in perm) == tuple(range(len(perm))):
            v = tr.values[base]
            if v is not None and v.shape == out.shape and v.strides == out.strides:
                return _same_slot(tr, v, base)
    tr.transposed[len(tr.values)] = (src, perm)  # the slot the caller is about to create
    return None


def _adopt_targets(tr: _Tracer, fn, args: tuple, kwargs: dict) -> None:
    """A constant that a step writes into becomes a program value, copied afresh from its
    current contents at each replay (otherwise every replay would write into one buffer)."""
    targets = []
    outs = kwargs.get("out") if kwargs else None
    if outs is not None:
        targets += list(outs) if type(outs) is tuple else [outs]
    elif args:
        targets.append(args[0])
    for x in targets:
        if type(x) is _ndarray and tr.slot_of_plain(x) is None and x.base is None:
            snapshot = x.copy()
            slot = len(tr.values)
            tr.by_id[id(x)] = slot
            tr.values.append(x)
            tr.keep.append(x)
            tr.steps.append(("call", _np.copy, (snapshot,), {}, [slot], (False, False)))


_INPLACE_FUNCS = {
    _np.copyto,
    _np.put_along_axis,
    _np.fill_diagonal,
    _np.place,
    _np.putmask,
    _np.put,
}

_STATIC = {
    _np.shape,
    _np.ndim,
    _np.size,
    _np.result_type,
    _np.iscomplexobj,
    _np.isrealobj,
    _np.may_share_memory,
    _np.shares_memory,
    _np.min_scalar_type,
    _np.can_cast,
}


def setting(read: Callable[[], Any], value: Any) -> None:
    """While tracing, note that the program depends on a Python setting (an optimizer's
    learning rate in PyTorch style, which schedulers change between steps): a replay first
    checks ``read() == value``, and when it differs that call runs eagerly and the next one
    traces again. No effect outside tracing."""
    tr = _LOCAL.tr
    if tr is not None and tr.failed is None:
        tr.steps.append(("setting", read, (), {}, [], value))


def _guard(self: Traced, fn):
    """A Python value read from a traced array: recorded as a guard."""
    tr = _LOCAL.tr
    val = fn(_ndview(self, _ndarray))
    if tr is None or tr.failed is not None:
        return val
    if self._tr is not tr or self._slot is None:
        if self._tr is tr:
            tr.fail("a Python value was read from an untraced view")
        return val
    tr.steps.append(("guard", fn, (_Ref(self._slot),), {}, [], val))
    return val


class Traced(_ndarray):
    """A NumPy array whose operations are recorded while a compiled function is traced."""

    def __array_finalize__(self, obj) -> None:
        self._slot = None  # made by NumPy itself (a view or a copy): not a program value
        self._tr = None
        self._plain = None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return _call(fn, inputs, kwargs, effect=(method == "at"))

    def __array_function__(self, func, types, args, kwargs):
        return _call(func, args, kwargs)

    def __reduce__(self):
        return _ndview(self, _ndarray).__reduce__()

    def __repr__(self) -> str:
        return repr(_ndview(self, _ndarray))

    def __str__(self) -> str:
        return str(_ndview(self, _ndarray))

    def __format__(self, spec: str) -> str:
        return format(_ndview(self, _ndarray), spec)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        return _guard(self, bool)

    def __int__(self) -> int:
        return _guard(self, int)

    def __float__(self) -> float:
        return _guard(self, float)

    def __complex__(self) -> complex:
        return _guard(self, complex)

    def __index__(self) -> int:
        return _guard(self, operator.index)

    def item(self, *args):
        return _guard(self, lambda v: v.item(*args))

    def tolist(self):
        return _guard(self, lambda v: v.tolist())


class _Meth:
    """An ``ndarray`` method as a program step (replayed as ``value.name(...)``, which also
    works when the replayed value is a NumPy scalar)."""

    __slots__ = ("name", "__name__")

    def __init__(self, name: str) -> None:
        self.name = name
        self.__name__ = name

    def __call__(self, obj, *args, **kwargs):
        return getattr(obj, self.name)(*args, **kwargs)


def _method(name: str):
    meth = _Meth(name)

    def m(self, *args, **kwargs):
        return _call(meth, (self, *args), kwargs)

    m.__name__ = name
    return m


def _inplace_method(name: str):
    meth = _Meth(name)

    def m(self, *args, **kwargs):
        return _call(meth, (self, *args), kwargs, effect=True)

    m.__name__ = name
    return m


def _prop(name: str):
    getter = operator.attrgetter(name)
    return property(lambda self: _call(getter, (self,), {}))


def _unsupported(name: str):
    unbound = getattr(_ndarray, name)

    def m(self, *args, **kwargs):
        tr = _LOCAL.tr
        if tr is not None and self._tr is tr:
            tr.fail(f"ndarray.{name} is not followed by the tracer")
        return unbound(_ndview(self, _ndarray), *args, **kwargs)

    m.__name__ = name
    return m


for _n in (
    "__getitem__ all any argmax argmin argpartition argsort astype byteswap choose clip compress "
    "conj conjugate copy __copy__ cumprod cumsum diagonal dot flatten max mean min nonzero prod "
    "ravel repeat reshape round searchsorted squeeze std sum swapaxes take trace transpose var "
    "view __deepcopy__"
).split():
    setattr(Traced, _n, _method(_n))
for _n in "__setitem__ fill sort partition put setfield resize itemset".split():
    if hasattr(_ndarray, _n):
        setattr(Traced, _n, _inplace_method(_n))
for _n in "T mT real imag".split():
    setattr(Traced, _n, _prop(_n))
for _n in "tobytes tofile dump dumps getfield".split():
    setattr(Traced, _n, _unsupported(_n))
Traced.flat = property(lambda self: _unsupported_flat(self))


def _unsupported_flat(self):
    tr = _LOCAL.tr
    if tr is not None and self._tr is tr:
        tr.fail("ndarray.flat is not followed by the tracer")
    return _ndview(self, _ndarray).flat


def _has_traced(x) -> bool:
    t = type(x)
    if t is Traced:
        return True
    if t is list or t is tuple:
        return any(_has_traced(v) for v in x)
    return False


def kernel(fn: Callable) -> Callable:
    """Mark a backend kernel that ``mx.compile`` records as one opaque step.

    For kernels whose only traced argument may hide inside an index (``x[idx]`` with a constant
    ``x``, ``np.add.at``): NumPy does not dispatch on indices, so without this the kernel
    would run on trace-time values and be frozen into the program. Outside tracing the cost
    is one attribute read.
    """

    @functools.wraps(fn)
    def wrapped(*args):
        if _PATCH_DEPTH[0] and _LOCAL.tr is not None and _has_traced(args):
            return _call(fn, args, {})
        return fn(*args)

    return wrapped


def _creation(fn):
    """``np.array`` and friends do not dispatch on their argument: while tracing, a call on a
    traced value is recorded like any other NumPy call."""

    def patched(obj, *args, **kwargs):
        if _LOCAL.tr is not None and _has_traced(obj):
            return _call(fn, (obj, *args), kwargs)
        return fn(obj, *args, **kwargs)

    patched.__wrapped__ = fn
    return patched


_CREATION = ("array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray")
_PATCHED = {name: _creation(getattr(_np, name)) for name in _CREATION}
_ORIGINAL = {name: getattr(_np, name) for name in _CREATION}
_PATCH_DEPTH = [0]


def _patch_numpy(on: bool) -> None:
    """Route NumPy's array constructors through the tracer while any thread traces."""
    with _PATCH_LOCK:
        _PATCH_DEPTH[0] += 1 if on else -1
        table = _PATCHED if _PATCH_DEPTH[0] > 0 else _ORIGINAL
        for name, fn in table.items():
            setattr(_np, name, fn)


_PATCH_LOCK = threading.Lock()


class _RecordingRNG:
    """Stands in for the global generator while tracing: every draw becomes a program step."""

    def __init__(self, real) -> None:
        self._real = real

    def __getattr__(self, name: str):
        real = getattr(self._real, name)
        if not callable(real) or name == "bit_generator":
            return real

        def draw(*args, **kwargs):
            return _call(_Draw(name), args, kwargs, effect=True)

        return draw


class _Draw:
    """A draw from whatever the global generator is at call time (so replays advance it)."""

    __slots__ = ("name", "__name__")

    def __init__(self, name: str) -> None:
        self.name = name
        self.__name__ = f"draw_{name}"

    def __call__(self, *args, **kwargs):
        from . import random as _random

        rng = _random._G.rng
        if type(rng) is _RecordingRNG:
            rng = rng._real
        return getattr(rng, self.name)(*args, **kwargs)

    def __eq__(self, other) -> bool:
        return type(other) is _Draw and other.name == self.name

    def __hash__(self) -> int:
        return hash(("draw", self.name))


# -- trees ------------------------------------------------------------------------------------


def _flatten(tree, arrays: list, key: list) -> None:
    """Collect the arrays of ``tree`` (depth first, insertion order) and its signature."""
    t = type(tree)
    if t is array:
        d = tree._data
        arrays.append(tree)
        key.append((d.shape, d.dtype, tree._grad is None))
        return
    if isinstance(tree, dict):
        key.append(tuple(tree))
        items = tree.values()
    elif t is list or t is tuple:
        key.append(len(tree))
        items = tree
    else:
        if tree is None or t in (int, float, bool, str, complex):
            key.append((t, tree))
        else:
            try:
                hash(tree)
                key.append((t, tree))
            except TypeError:
                key.append((t, id(tree)))
        return
    for v in items:  # arrays inline: most leaves are arrays, and a call costs more than this
        if type(v) is array:
            d = v._data
            arrays.append(v)
            key.append((d.shape, d.dtype, v._grad is None))
        else:
            _flatten(v, arrays, key)  # counts and keys come first: no end marker needed


def _replace(tree, fn, leaf: type = array):
    """A copy of ``tree`` (tuples, lists and plain dicts) with every ``leaf`` mapped by ``fn``."""
    t = type(tree)
    if t is leaf:
        return fn(tree)
    if t is dict:
        return {k: _replace(v, fn, leaf) for k, v in tree.items()}
    if t is list or t is tuple:
        return t(_replace(v, fn, leaf) for v in tree)
    return tree


class _Out:
    __slots__ = ("where",)

    def __init__(self, where) -> None:
        self.where = where  # ("slot", i) or ("const", value)


def _fill(tmpl, values) -> Any:
    """The result tree of a call: the template's markers filled with fresh arrays."""

    def value(out: _Out) -> array:
        kind, w = out.where
        v = values[w] if kind == "slot" else w
        return _from_value(v if type(v) is _ndarray else _np.asarray(v))

    return _replace(tmpl, value, _Out)


# -- the program ------------------------------------------------------------------------------


class _GuardFailed(Exception):
    pass


class _SettingChanged(Exception):
    """A Python setting the program was traced with has changed: trace again."""


_SIMPLE = (int, float, bool, str, type(None))


class _Program:
    """A traced call turned into generated Python code."""

    __slots__ = (
        "run",
        "source",
        "out_tmpl",
        "state_outs",
        "n_steps",
        "has_rng",
        "verified",
        "in_pos",
    )

    def __init__(self) -> None:
        self.verified = False


def _build(tr: _Tracer, result_slots: list) -> _Program:
    """Dead-step elimination, buffer reuse and code generation."""
    steps = tr.steps
    live = set(result_slots)
    kept = []
    for st in reversed(steps):
        kind, fn, targs, tkw, outs, extra = st
        needed = kind != "call" or extra[0] or any(o in live for o in outs)
        if not needed:
            continue
        kept.append(st)
        _collect_refs(targs, live)
        _collect_refs(tkw, live)
    kept.reverse()

    # last use of each slot, to release buffers and to write results over dying temporaries
    last: dict[int, int] = {}
    for i, st in enumerate(kept):
        refs: set = set()
        _collect_refs(st[2], refs)
        _collect_refs(st[3], refs)
        for r in refs:
            last[r] = i
    final = set(result_slots)
    for s in final:
        last[s] = len(kept)
    fresh = _fresh_buffers(kept, tr)

    ns: dict = {"_GuardFailed": _GuardFailed, "_SettingChanged": _SettingChanged}
    names: dict = {}

    def name_of(obj, prefix: str) -> str:
        key = (prefix, id(obj))
        n = names.get(key)
        if n is None:
            n = names[key] = f"{prefix}{len(names)}"
            ns[n] = obj
        return n

    def expr(x) -> str:
        t = type(x)
        if t is _Ref:
            return f"s{x.slot}"
        if t is tuple:
            inner = ", ".join(expr(v) for v in x)
            return f"({inner},)" if x else "()"
        if t is list:
            return "[" + ", ".join(expr(v) for v in x) + "]"
        if t in (int, bool, str, type(None)):
            return repr(x)
        if t is float and x == x and x not in (float("inf"), float("-inf")):
            return repr(x)
        return name_of(x, "c")

    lines = ["def _replay(" + ", ".join(f"s{s}" for s in tr.inputs) + "):"]
    has_rng = False
    for i, (kind, fn, targs, tkw, outs, extra) in enumerate(kept):
        call_args = [expr(a) for a in targs]
        for k, v in tkw.items():
            call_args.append(f"{k}={expr(v)}")
        if kind == "call" and not extra[0] and not extra[1] and len(outs) == 1 and not tkw:
            reuse = _reusable(fn, targs, outs[0], i, last, fresh, tr)
            if reuse is not None:
                call_args.append(f"out=s{reuse}")
        if type(fn) is _Draw:
            has_rng = True
        if type(fn) is _Meth:
            call = f"{call_args[0]}.{fn.name}({', '.join(call_args[1:])})"
        else:
            call = f"{name_of(fn, 'f')}({', '.join(call_args)})"
        if kind in ("guard", "setting"):
            want = expr(extra) if type(extra) in _SIMPLE else name_of(extra, "c")
            lines.append(f"    if {call} != {want}:")
            error = "_GuardFailed" if kind == "guard" else "_SettingChanged"
            lines.append(f"        raise {error}({i})")
        elif outs and any(o in last for o in outs):
            if extra[1]:
                lines.append("    " + ", ".join(f"s{o}" for o in outs) + f", = {call}")
            else:
                lines.append(f"    s{outs[0]} = {call}")
        else:
            lines.append(f"    {call}")
        dead = [r for r, at in last.items() if at == i and r not in final]
        if dead:
            lines.append("    del " + ", ".join(f"s{r}" for r in sorted(dead)))
    lines.append("    return {" + ", ".join(f"{s}: s{s}" for s in sorted(final)) + "}")
    source = "\n".join(lines)
    exec(source, ns)  # noqa: S102 - generated from the recorded steps above
    prog = _Program()
    prog.run = ns["_replay"]
    prog.source = source
    prog.n_steps = len(kept)
    prog.has_rng = has_rng
    return prog


def _collect_refs(x, acc: set) -> None:
    t = type(x)
    if t is _Ref:
        acc.add(x.slot)
    elif t is tuple or t is list:
        for v in x:
            _collect_refs(v, acc)
    elif t is dict:
        for v in x.values():
            _collect_refs(v, acc)


_ELEMENTWISE_SAFE = frozenset(
    "add subtract multiply true_divide divide negative sqrt exp log tanh square maximum minimum "
    "power absolute reciprocal sign".split()
)


def _fresh_buffers(kept: list, tr: _Tracer) -> set:
    """Slots that own a buffer nobody else views: results of plain elementwise ufunc calls
    whose buffers are never passed to a step that could return a view of them."""
    fresh = set()
    viewed = set()
    for kind, fn, targs, tkw, outs, extra in kept:
        if kind != "call":
            continue
        if type(fn) is _np.ufunc and not tkw and not extra[0] and len(outs) == 1:
            fresh.add(outs[0])
        else:
            refs: set = set()
            _collect_refs(targs, refs)
            _collect_refs(tkw, refs)
            ufunc_method = type(getattr(fn, "__self__", None)) is _np.ufunc
            if extra[0] or not (type(fn) is _np.ufunc or ufunc_method):
                viewed |= refs  # functions and methods may return views (reshape, transpose)
    return fresh - viewed


def _reusable(fn, targs, out_slot, i, last, fresh, tr):
    """An input buffer that dies here and can take this elementwise result (``out=``)."""
    if type(fn) is not _np.ufunc or fn.__name__ not in _ELEMENTWISE_SAFE:
        return None
    out_shape, out_dtype, _, out_c = tr.values.meta[out_slot]
    if len(out_shape) == 0 or not out_c:
        return None
    for a in targs:
        if type(a) is _Ref and a.slot in fresh and last.get(a.slot) == i:
            shape, dtype, _, c_contig = tr.values.meta[a.slot]
            if shape == out_shape and dtype == out_dtype and c_contig:
                return a.slot  # released by this very step
    return None


# -- compile ----------------------------------------------------------------------------------


_EAGER = object()


class _Fingerprint:
    """What the first replay's check keeps of a result: all of a small array; of a large one,
    every 17th element and its float64 sum, which together catch a difference in a single
    element (the sum, to 1e-8 of the sum of magnitudes) or in any row (the samples)."""

    __slots__ = ("full", "sample", "total", "scale", "shape", "dtype")

    def __init__(self, v) -> None:
        a = _np.asarray(v)
        self.shape, self.dtype = a.shape, a.dtype
        if a.size <= 4096 or a.dtype.kind not in "fc":
            self.full, self.sample = a, None
        else:
            self.full = None
            flat = a.reshape(-1)
            self.sample = flat[::17].copy()
            self.total = complex(flat.sum(dtype=_np.complex128 if a.dtype.kind == "c" else None))
            self.scale = float(_np.abs(flat).sum(dtype=_np.float64))

    def matches(self, b) -> bool:
        b = _np.asarray(b)
        if b.shape != self.shape or b.dtype != self.dtype:
            return False
        if self.full is not None:
            return _same(self.full, b)
        flat = b.reshape(-1)
        if not _same(self.sample, flat[::17]):
            return False
        total = complex(flat.sum(dtype=_np.complex128 if b.dtype.kind == "c" else None))
        return abs(total - self.total) <= 1e-8 * self.scale or (
            total != total and self.total != self.total
        )


def _same(a, b) -> bool:
    if type(a) is _Fingerprint:
        return a.matches(b)
    a = _np.asarray(a)
    b = _np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(_np.allclose(a, b, rtol=1e-6, atol=0.0, equal_nan=True))
    return bool(_np.array_equal(a, b))


class _Compiled:
    """The function ``mx.compile`` returns."""

    def __init__(self, fun: Callable, inputs, outputs) -> None:
        self.fun = fun
        self.inputs = inputs
        self.outputs = outputs
        self.cache: dict = {}
        self.last_reason: str | None = None  # why the latest signature runs eagerly
        functools.update_wrapper(self, fun)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if _DISABLED[0] or _LOCAL.tr is not None or STATE.depth:
            return self.fun(*args, **kwargs)
        arg_arrays: list = []
        key: list = []
        _flatten((args, kwargs), arg_arrays, key)
        for a in arg_arrays:
            if a._node is not None:  # being differentiated from outside: stay eager
                STATS["eager"] += 1
                return self.fun(*args, **kwargs)
        state_in: list = []
        n = len(key)
        _flatten(self.inputs, state_in, key)
        key.append("|")
        if self.outputs is self.inputs:  # the usual ``inputs=state, outputs=state``
            state_out = state_in
            key += key[n:-1]
        else:
            state_out = []
            _flatten(self.outputs, state_out, key)
        try:
            k = tuple(key)
            entry = self.cache.get(k)
        except TypeError:
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        if entry is None:
            return self._trace(k, args, kwargs, arg_arrays, state_in, state_out)
        if entry is _EAGER:
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        return self._replay(k, entry, args, kwargs, arg_arrays, state_in, state_out)

    # -- tracing --------------------------------------------------------------------------------
    def _trace(self, k, args, kwargs, arg_arrays, state_in, state_out):
        from . import random as _random

        STATS["traces"] += 1
        tr = _Tracer()
        # (handle, grad, input slot): not the value or its node, which the trace must not keep
        # alive once the function has replaced it (the eager call would have freed it)
        saved = {id(h): [h, h._grad, None] for h in _unique(state_in + state_out)}
        arg_map: dict[int, array] = {}
        for a in arg_arrays:
            if id(a) not in arg_map:
                arg_map[id(a)] = _from_value(self._input(tr, a._data))
        for h in _unique(state_in):
            old = h._node
            if old is not None and old.prim is not None:
                tr.fail("an input of the state is the result of a recorded operation")
            t = self._input(tr, h._data)
            saved[id(h)][2] = t._slot
            h._data = t
            if old is not None:
                h._node = Node(t, None, (), None, old.owner)
            if h._grad is not None:
                h._grad = _from_value(self._input(tr, h._grad._data))
        t_args = _replace(args, lambda a: arg_map[id(a)])
        t_kwargs = _replace(kwargs, lambda a: arg_map[id(a)])
        rng_real = _random._G.rng
        tr.rng = _RecordingRNG(rng_real)
        _random._G.rng = tr.rng
        _LOCAL.tr = tr
        _patch_numpy(True)
        try:
            result = self.fun(*t_args, **t_kwargs)
        except BaseException:
            _random._G.rng = rng_real
            for entry in saved.values():  # as an eager call leaves them, but plain values
                _unwrap(entry[0], tr)
            raise
        finally:
            _LOCAL.tr = None
            _patch_numpy(False)
        if _random._G.rng is tr.rng:
            _random._G.rng = rng_real
        else:
            tr.fail("the global random generator was replaced (seeded) inside the function")

        def where(d):
            if type(d) is Traced:
                if d._tr is tr and d._slot is not None:
                    return ("slot", d._slot)
                tr.fail("a result is a traced value the tracer did not follow")
                return ("const", _ndview(d, _ndarray))
            if type(d) is _ndarray and d.base is not None:
                slot = _resolve_view(tr, d)  # np.asarray(traced)
                if slot is not None:
                    return ("slot", slot)
            return ("const", d)

        # A result that carries a graph may be differentiated by the caller, which a replay
        # could not serve; unless the function ran its own backward pass (a PyTorch-style step:
        # some state array has a new .grad), in which case its results are returned detached.
        stepped = any(h._grad is not entry[1] for entry in saved.values() for h in entry[:1])

        graphs = []

        def graph_check(x):
            if x._node is not None and x._node.prim is not None and not stepped:
                tr.fail("a result carries a recorded graph (it is differentiated outside)")
                graphs.append(x)
            return x

        _replace(result, graph_check)
        out_tmpl = _replace(result, lambda x: _Out(where(x._data)))
        post: list = []
        post_key: list = []
        _flatten(self.outputs, post, post_key)
        structure_changed = post_key != list(k[k.index("|") + 1 :])
        plan = []
        for pos, h in enumerate(post):
            graph_check(h)
            before = saved.get(id(h))
            d_where = where(h._data)
            if before is not None and d_where == ("slot", before[2]):
                d_where = None  # unchanged
            g_where = None if h._grad is None else where(h._grad._data)
            if before is not None and before[1] is h._grad:
                g_where = None
            plan.append((pos, d_where, g_where))

        # Back to plain values everywhere the caller can see. A result with a graph keeps it, as
        # the eager call's would (the traced values inside it compute plainly from now on).
        if graphs:
            result = _replace(result, lambda x: _from_value(_plain(x._data), x._node))
        else:
            result = _fill(out_tmpl, tr.values)
        for h in _unique(post):
            _unwrap(h, tr)
        for h, g, _ in saved.values():
            gd = None if h._grad is None else h._grad._data
            _unwrap(h, tr)
            if type(gd) is Traced and gd._tr is tr and gd._slot in tr.inputs:
                h._grad = g  # a gradient nobody replaced: the same array as before

        if tr.failed is None and not structure_changed:
            slots = _slots_in(out_tmpl)
            for _, dw, gw in plan:
                slots += [w[1] for w in (dw, gw) if w is not None and w[0] == "slot"]
            prog = _build(tr, slots)
            # values that escaped (an optimizer's cached step) keep the tracer alive: drop what
            # it holds so that they do not also keep the previous state alive
            tr.keep.clear()
            tr.by_id.clear()
            tr.steps.clear()
            prog.out_tmpl = out_tmpl
            prog.state_outs = plan
            firsts = {}
            for i, h in enumerate(state_in):
                firsts.setdefault(id(h), i)
            prog.in_pos = sorted(firsts.values())
            self.cache[k] = prog
        elif not structure_changed:
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
        self.last_reason = tr.failed
        return result

    @staticmethod
    def _input(tr: _Tracer, d):
        t = tr.new(d)
        tr.inputs.append(t._slot)
        return t

    # -- replaying ------------------------------------------------------------------------------
    def _replay(self, k, prog, args, kwargs, arg_arrays, state_in, state_out):
        from . import random as _random

        inputs = [a._data for a in _unique(arg_arrays)] if len(arg_arrays) > 1 else []
        if len(arg_arrays) == 1:
            inputs.append(arg_arrays[0]._data)
        for i in prog.in_pos:  # first occurrences in the state, fixed by the signature
            h = state_in[i]
            inputs.append(h._data)
            if h._grad is not None:
                inputs.append(h._grad._data)
        rng_state = _random._G.rng.bit_generator.state if prog.has_rng else None
        try:
            values = prog.run(*inputs)
            del inputs  # the previous state can go as soon as nothing else holds it
        except _SettingChanged:
            if rng_state is not None:
                _random._G.rng.bit_generator.state = rng_state
            del self.cache[k]  # a learning rate a scheduler changed: the next call traces anew
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        except Exception as e:
            if rng_state is not None:
                _random._G.rng.bit_generator.state = rng_state
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
            self.last_reason = f"replay failed: {type(e).__name__}: {e}"
            return self.fun(*args, **kwargs)
        if not prog.verified:
            # keep fingerprints, not the results, while the eager call runs: checking must not
            # hold a second copy of the model and optimizer state
            prints = {slot: _Fingerprint(v) for slot, v in values.items()}
            del values
            return self._verify(k, prog, prints, rng_state, args, kwargs, state_out)
        STATS["replays"] += 1
        return self._apply(prog, values, state_out)

    @staticmethod
    def _apply(prog, values, state_out):
        for pos, d_where, g_where in prog.state_outs:
            h = state_out[pos]
            if d_where is not None:
                kind, w = d_where
                v = values[w] if kind == "slot" else w
                if type(v) is not _ndarray:
                    v = _np.asarray(v)
                old = h._node
                h._data = v
                if old is not None:
                    h._node = Node(v, None, (), None, old.owner)
            if g_where is not None:
                kind, w = g_where
                h._grad = _from_value(values[w] if kind == "slot" else w)
        return _fill(prog.out_tmpl, values)

    def _verify(self, k, prog, values, rng_state, args, kwargs, state_out):
        from . import random as _random

        if rng_state is not None:
            _random._G.rng.bit_generator.state = rng_state
        expected = self.fun(*args, **kwargs)
        problem = None if _matches(prog.out_tmpl, values, expected) else "the result"
        post: list = []
        _flatten(self.outputs, post, [])
        if problem is None and len(post) != len(state_out):
            problem = "the number of state arrays"
        for pos, d_where, g_where in prog.state_outs if problem is None else ():
            h = post[pos]
            for w, now in ((d_where, h._data), (g_where, h._grad)):
                if w is None:
                    continue
                if type(now) is array:
                    now = now._data
                if now is None or not _same(values[w[1]] if w[0] == "slot" else w[1], now):
                    problem = f"state array {pos} (shape {_np.shape(now)})"
                    break
            if problem is not None:
                break
        if problem is None:
            prog.verified = True
            STATS["verified"] += 1
        else:
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
            self.last_reason = f"the replay did not match an eager call: {problem} differs"
        return expected


def _matches(tmpl, values, expected) -> bool:
    t = type(tmpl)
    if t is _Out:
        if type(expected) is not array:
            return False
        kind, w = tmpl.where
        return _same(values[w] if kind == "slot" else w, expected._data)
    if t is dict:
        return (
            type(expected) is dict
            and expected.keys() == tmpl.keys()
            and all(_matches(tmpl[q], values, expected[q]) for q in tmpl)
        )
    if t is list or t is tuple:
        return (
            type(expected) is t
            and len(expected) == len(tmpl)
            and all(_matches(a, values, b) for a, b in zip(tmpl, expected))
        )
    try:
        return bool(tmpl == expected)
    except Exception:
        return False


def _slots_in(tmpl) -> list:
    t = type(tmpl)
    if t is _Out:
        return [tmpl.where[1]] if tmpl.where[0] == "slot" else []
    if t is dict:
        return [s for v in tmpl.values() for s in _slots_in(v)]
    if t is list or t is tuple:
        return [s for v in tmpl for s in _slots_in(v)]
    return []


def _unique(handles: list) -> list:
    seen = set()
    out = []
    for h in handles:
        if id(h) not in seen:
            seen.add(id(h))
            out.append(h)
    return out


def _unwrap(h: array, tr: _Tracer) -> None:
    """Give a handle its plain value back after tracing."""
    d = h._data
    if type(d) is Traced:
        v = d._plain if (d._tr is tr and d._slot is not None) else _ndview(d, _ndarray)
        old = h._node
        h._data = v
        if old is not None:
            h._node = Node(v, None, (), None, old.owner) if old.prim is None else None
    g = h._grad
    if g is not None and type(g._data) is Traced:
        gd = g._data
        h._grad = _from_value(
            gd._plain if (gd._tr is tr and gd._slot is not None) else _ndview(gd, _ndarray)
        )


def compile(
    fun: Callable, inputs: Any = None, outputs: Any = None, shapeless: bool = False
) -> Callable:
    """Return a compiled version of ``fun`` (MLX's ``mx.compile``).

    The first call for each signature traces ``fun``; later calls replay the traced program
    (module docstring). Results equal those of ``fun``.

    Args:
        fun: the function to compile. Its arguments are trees of arrays and constants.
        inputs: trees of arrays the function reads implicitly (e.g. ``[model.state,
            optimizer.state]``).
        outputs: trees of arrays the function updates implicitly (usually the same trees).
        shapeless: accepted for MLX code; programs are traced per shape.

    Returns:
        A callable with ``fun``'s signature and results.
    """
    if isinstance(fun, _Compiled):
        return fun
    return _Compiled(fun, inputs, outputs)


def disable_compile() -> None:
    """Run compiled functions eagerly (for debugging)."""
    _DISABLED[0] = True


def enable_compile() -> None:
    """Undo ``disable_compile``."""
    _DISABLED[0] = False
