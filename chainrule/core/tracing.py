"""The trace side of ``mx.compile``: ``Traced`` arrays that record NumPy calls as steps.

While a compiled function is traced (``chainrule/core/compile.py`` drives it), every backend
value is a :class:`Traced` view: an ``ndarray`` subclass whose ufuncs (``__array_ufunc__``),
NumPy functions (``__array_function__``) and methods append one step each to the active
:class:`_Tracer`. Python values read from a traced array (``bool(x)``, ``x.item()``) become
*guards*; draws from the global generator become *draws*; NumPy's array constructors are routed
through the tracer while any thread traces; and backend kernels whose traced input may hide in
an index are marked with :func:`kernel` and recorded as one opaque step.

Outside tracing, nothing here costs more than one attribute read per marked kernel. This module
needs only NumPy, so the op table (``ops.py``) imports it without the program machinery
(``program.py``: dead steps, buffer reuse, code generation; ``compile.py``: signatures, replay
and checking).
"""

from __future__ import annotations

import functools
import operator
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as _np

__all__ = ["Traced", "is_tracing", "kernel", "setting"]

_ndarray = _np.ndarray
_ndview = _np.ndarray.view
_generic = _np.generic


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

    __slots__ = (
        "values",
        "steps",
        "failed",
        "inputs",
        "rng",
        "by_id",
        "transposed",
        "keep",
        "on_host",
    )

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
        # for an export: a function giving other arrays (GPU data a function reads from a
        # closure, such as a model's weights) as host constants (an explicit copy), else None
        self.on_host: Callable | None = None

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
    elif tr.on_host is not None:
        h = tr.on_host(x)
        if h is not x:
            return h, h
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
    aliases: dict = {}
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
Traced.flat = property(lambda self: _unsupported_flat(self))  # type: ignore[method-assign, assignment]


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
