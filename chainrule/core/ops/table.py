"""The op table itself: ``Primitive``, ``defprim`` and the helpers that record a call."""

from __future__ import annotations

import builtins
import dis
import math
import sys

from .. import dtypes as _dt
from ..array import STATE, Node, _convert_node, _from_value, array
from ..backend import devices_mixed as _devices_mixed
from ..backend import host_scalars as _host_scalars
from ..backend import is_gpu as _is_gpu
from ..backend import xp
from ..tracing import Traced

_sum = builtins.sum
_slice = builtins.slice
_AxisError = xp.exceptions.AxisError
_ARRAYS = (xp.ndarray, Traced)  # backend arrays, plain or being traced by mx.compile


class Primitive:
    """An entry of the op table.

    Attributes:
        name: the operation's name, used in error messages and graph pictures.
        vjps: one rule per input (``None`` where the input is never differentiated), or
            a single rule for a variadic primitive (called with ``argnum=i``).
        variadic: whether ``vjps[0]`` serves every input.
        batch: the batching rule ``rule(args, params, example_ndim) -> value`` that ``vmap``
            replays the primitive with on a whole batch (``args``: ``[(value, example ndim
            or None when unbatched), ...]``, batched values carry the batch axis first), or
            None: ``vmap`` then runs one call per example.
    """

    __slots__ = ("name", "vjps", "variadic", "batch", "holomorphic", "reads_result")

    def __init__(
        self, name: str, vjps: tuple, variadic: bool = False, batch=None, holomorphic: bool = True
    ) -> None:
        self.name = name
        self.vjps = vjps
        self.variadic = variadic
        self.batch = batch
        self.holomorphic = holomorphic
        # whether some rule reads its second argument, the result (the backward pass hands
        # the others None instead of wrapping the value)
        self.reads_result = any(_reads_result(r) for r in vjps if r is not None)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


def _reads_result(rule) -> bool:
    """Whether ``rule(g, ans, ...)`` may read ``ans`` (True unless its code shows it does not)."""
    code = getattr(rule, "__code__", None)
    if code is None or code.co_argcount < 2:
        return True
    name = code.co_varnames[1]
    if name in code.co_cellvars:  # read by a function defined inside the rule
        return True
    for i in dis.get_instructions(code):  # LOAD_FAST and friends; on 3.13+ also the paired
        if "FAST" in i.opname:  # forms (LOAD_FAST_LOAD_FAST), whose argval is a tuple of names
            v = i.argval
            if v == name or (type(v) is tuple and name in v):
                return True
    return False


PRIMITIVES: dict[str, Primitive] = {}
"""The op table: every primitive by name (the tests loop over it)."""

EXPORTS: dict[str, object] = {}
"""The public operations (``mx.<name>``), registered where they are defined."""

METHODS: dict[str, object] = {}
"""The operations that are also ``array`` methods (``a.<name>(...)``)."""

VALUE_BRANCHES: set = set()
"""Code of kernels that read their input's values only to pick a formula (see ``vmap``)."""

CONSTANT_MAKERS: dict = {}
"""Code of functions whose NumPy result ``vmap`` recomputes per example, by kind."""


def defprim(
    name: str, *vjps, variadic: bool = False, batch=None, holomorphic: bool = True
) -> Primitive:
    """Register a primitive: its VJP rules (one per input) and its batching rule.

    Args:
        name: the primitive's name (unique in ``PRIMITIVES``).
        *vjps: one rule ``vjp(g, ans, *inputs, **params)`` per input (None: not
            differentiable in that input), or one rule taking ``argnum=`` if ``variadic``.
        variadic: whether the single rule serves every input.
        batch: the batching rule (see ``Primitive.batch``); the elementwise helpers
            ``_unary``/``_binary`` supply theirs.

    Returns:
        The registered ``Primitive``.
    """
    if name in PRIMITIVES:
        raise ValueError(f"defprim: a primitive named {name!r} is already registered")
    prim = Primitive(name, vjps, variadic, batch, holomorphic)
    PRIMITIVES[name] = prim
    return prim


def export(fn=None, *, method: bool = False, name: str | None = None):
    """Register a public operation (``mx.<name>``), and optionally an ``array`` method.

    Usable as ``@export``, ``@export(method=True)`` or ``export(fn, name="alias")``.

    Args:
        fn: the function.
        method: also install it as ``array.<name>``.
        name: the public name (default: the function's own).

    Returns:
        ``fn`` unchanged (or a decorator).
    """

    def register(f):
        key = name or f.__name__
        EXPORTS[key] = f
        if method:
            METHODS[key] = f
        return f

    return register if fn is None else register(fn)


def value_branch(fn):
    """Mark a kernel that reads its input's values only to choose a formula.

    ``vmap`` refuses to batch a trace whose example values reach Python (control flow may
    depend on them); a kernel marked here (``logsumexp``'s, ``where``'s finiteness test)
    picks between formulas that give the same graph, so its reads are allowed.
    """
    VALUE_BRANCHES.add(fn.__code__)
    return fn


def constant_maker(kind: str):
    """Mark a function whose NumPy result ``vmap`` knows how to recompute for every example.

    Args:
        kind: the name ``vmap``'s replay knows the constant by (``"max_shift"``).
    """

    def register(fn):
        CONSTANT_MAKERS[fn.__code__] = kind
        return fn

    return register


# -- batching helpers (the rules themselves sit next to their primitives) ------------------


class Unbatchable(Exception):
    """A trace cannot be replayed on the batch; ``vmap`` falls back to one call per example."""


def _nd(v) -> int:
    return v.ndim if type(v) is array else xp.ndim(v)


def _align(v, nd: int | None, target: int):
    """A batched value with size-one axes after the batch axis up to ``target`` example ndim."""
    if nd is None or nd >= target:
        return v
    return v.reshape((v.shape[0],) + (1,) * (target - nd) + tuple(v.shape[1:]))


def _operand(v, nd):
    """An unbatched operand of a batching rule as an array: a raw backend value (NumPy, or a
    GPU value of a replay on the GPU) is wrapped as it is, never converted (float64 stays)."""
    if nd is None and type(v) is not array and (isinstance(v, xp.ndarray) or _is_gpu(v)):
        return _from_value(v)
    return v


def pass_rule(args, params, ex_ndim):
    """The batching rule of a primitive whose value is its input's (identity, contiguous)."""
    return args[0][0]


def _elementwise_rule(fn):
    """The batching rule of an elementwise primitive: align ranks, call it on the batch."""

    def rule(args, params, ex_ndim):
        target = builtins.max(n if n is not None else _nd(v) for v, n in args)
        return fn(*(_operand(_align(v, n, target), n) for v, n in args))

    rule.elementwise = True
    return rule


# -- recording ---------------------------------------------------------------------------------


def _rec(prim: Primitive, out, xs: tuple, params: dict | None = None) -> array:
    """Wrap ``out``; record a node when some input is being differentiated."""
    if STATE.enabled:
        for x in xs:
            n = x._node
            if n is not None:
                if len(xs) == 1:
                    return _from_value(out, Node(out, prim, (n,), params))
                args = []  # (a loop: a comprehension makes a function per call on 3.11)
                for x in xs:
                    args.append(x._node if x._node is not None else x._data)
                return _from_value(out, Node(out, prim, tuple(args), params))
    return _from_value(out)


_new = object.__new__

_SUBCLASSES: set = set()
"""Subclasses of ``array`` met so far (same slots: the elementwise fast paths read them as
handles, as ``_as`` would convert them)."""


def _as(x) -> array:
    """An input as an array (Python data follow MLX's conversion rules; a list holding arrays
    keeps their graph, as ``mx.array([x, y])`` does)."""
    if type(x) is array:
        return x
    if isinstance(x, array):  # a subclass (chainrule.torch.Tensor): a plain handle, same node
        _SUBCLASSES.add(type(x))  # from now on the elementwise fast paths take it as it is
        return _from_value(x._data, x._node)
    data, node = _convert_node(x)
    return _from_value(data, node)


def _handle(x) -> array:
    """``x`` itself when it is an array or a subclass met before (for functions that read only
    their operands' slots, so a ``chainrule.torch.Tensor`` needs no plain handle), else ``_as(x)``."""
    t = type(x)
    if t is array or t in _SUBCLASSES:
        return x
    return _as(x)


class DtypeError(TypeError, ValueError):
    """An operation given a dtype it does not support (MLX's ``ValueError``; a ``TypeError``
    too, as NumPy raises for the same inputs)."""


_INT_RANGE = {
    xp.dtype(t): (int(xp.iinfo(t).min), int(xp.iinfo(t).max))
    for t in (xp.int8, xp.int16, xp.int32, xp.uint8, xp.uint16, xp.uint32)
}
"""The integer dtypes narrower than 64 bits that a Python int must fit (MLX's check)."""

_U64 = xp.dtype(xp.uint64)
_F64 = xp.dtype(xp.float64)
_BF16 = _dt.BFLOAT16_NP
_PY_SCALARS = (bool, int, float, complex)


def _int_overflow(s: int, dtype) -> ValueError:
    return ValueError(f"Converting {s} to {_dt.from_np(dtype).name} would result in overflow.")


def _scalar_for(s, data):
    """A Python scalar meeting ``data``: it takes the array's type (MLX's weak scalars).

    A float makes an integer or boolean array float32; an int makes a boolean one int32 and
    must fit an integer one narrower than 64 bits (else ``ValueError``, as MLX); a complex
    makes a real array complex64 (complex128 for float64). Returns ``(data, scalar)`` or None for a non-scalar.
    """
    t = type(s)
    kind = data.dtype.kind
    if t is float:
        if kind in "fc":
            return data, s
        if kind == "V":  # bfloat16: NumPy would widen for a value it cannot hold exactly
            return data, xp.asarray(s, dtype=data.dtype)
        return data.astype(xp.float32), s
    if t is int:
        if kind in "iu":
            r = _INT_RANGE.get(data.dtype)
            if r is not None:
                if not r[0] <= s <= r[1]:
                    raise _int_overflow(s, data.dtype)
            elif s < 0 and data.dtype == _U64:
                return data, xp.asarray(s, dtype=xp.int64).astype(_U64)  # wraps, as C's cast
            return data, s
        if kind == "b":
            return data.astype(xp.int32 if -(2**31) <= s < 2**31 else xp.int64), s
        if kind == "V":
            return data, xp.asarray(s, dtype=data.dtype)
        return data, s
    if t is bool:
        if kind == "V":
            return data, xp.asarray(s, dtype=data.dtype)
        return data, s
    if t is complex:
        if kind == "c":
            return data, s
        return data.astype(xp.complex128 if data.dtype == _F64 else xp.complex64), s
    if isinstance(s, _PY_SCALARS) and not isinstance(s, (xp.generic, xp.ndarray)):
        for base in (bool, int, float, complex):  # subclasses (IntEnum, ...) are weak too
            if isinstance(s, base):
                return _scalar_for(base(s), data)
    if isinstance(s, xp.generic) and isinstance(s, (float, complex)):
        return _scalar_for(float(s) if isinstance(s, float) else complex(s), data)
    return None


def _strict_operand(x, op: str):
    """An operator's other operand, refused unless it is array-like (MLX: ``a + [1, 2]`` and
    ``a < "s"`` raise ``ValueError``; NumPy arrays and DLPack exporters are accepted)."""
    if isinstance(x, array):  # a subclass (chainrule.torch.Tensor): a plain handle, same node
        _SUBCLASSES.add(type(x))  # from now on the elementwise fast paths take it as it is
        return _from_value(x._data, x._node)
    if isinstance(x, (xp.ndarray, xp.generic, *_PY_SCALARS)) or hasattr(x, "__mlx_array__"):
        return _as(x)
    if hasattr(x, "__dlpack__") or (
        hasattr(x, "__array__") and not isinstance(x, (list, tuple, str, bytes))
    ):
        return _as(x)
    t = type(x)
    raise ValueError(f"Cannot perform {op} on an array and {t.__module__}.{t.__qualname__}")


def _prep2(a, b, op: str | None = None):
    """Two operands as backend values of one dtype (MLX's promotion), plus their nodes.

    ``op`` names the operator when called for one (``a + b``): then only arrays, scalars and
    array-likes are accepted as operands, as MLX's operators do.
    """
    if type(a) is not array and isinstance(a, array):  # a subclass: a plain handle on it
        if type(a).wrapping_int_scalars and type(b) is int:
            return _wrapped_int(a, b, False)
        a = _as(a)
    if type(b) is not array and isinstance(b, array):
        if type(b).wrapping_int_scalars and type(a) is int:
            return _wrapped_int(b, a, True)
        b = _as(b)
    if type(a) is array:
        da, na = a._data, a._node
        if type(b) is array:
            db, nb = b._data, b._node
            if da.dtype is not db.dtype and da.dtype != db.dtype:
                t = _dt.promote(da.dtype, db.dtype)
                da, db = da.astype(t, copy=False), db.astype(t, copy=False)
            return da, db, na, nb
        got = _scalar_for(b, da)
        if got is not None:
            return got[0], got[1], na, None
        return _prep2(a, _as(b) if op is None else _strict_operand(b, op))
    if type(b) is array:
        got = _scalar_for(a, b._data)
        if got is not None:
            return got[1], got[0], None, b._node
        return _prep2(_as(a) if op is None else _strict_operand(a, op), b)
    if op is not None:
        return _prep2(_strict_operand(a, op), _strict_operand(b, op))
    return _prep2(_as(a), _as(b))


def _wrapped_int(x, s: int, swap: bool):
    """PyTorch's rule for a Python int meeting a tensor (``wrapping_int_scalars``): a boolean
    tensor becomes int64, an integer tensor keeps its dtype and the int wraps to it (``int8``
    plus 1000 adds -24), other tensors take it as MLX does."""
    d = x._data
    kind = d.dtype.kind
    if kind == "b":
        d, v = d.astype(xp.int64), s
    elif kind in "iu" and d.dtype.itemsize < 8:
        r = _INT_RANGE[d.dtype]
        v = s if r[0] <= s <= r[1] else xp.asarray(s, dtype=xp.int64).astype(d.dtype)
    else:
        got = _scalar_for(s, d)
        d, v = got  # type: ignore[misc]
    return (v, d, None, x._node) if swap else (d, v, x._node, None)


def _kernel_error(name: str, da, db, err: Exception) -> ValueError:
    """The error of a failed elementwise kernel: a shape mismatch, or NumPy's own complaint."""
    sa, sb = tuple(xp.shape(da)), tuple(xp.shape(db))
    try:
        xp.broadcast_shapes(sa, sb)
    except ValueError:
        return ValueError(f"{name}: shapes {sa} and {sb} cannot be broadcast together")
    return ValueError(f"{name}: {err} (shapes {sa} and {sb})")


def _dtype_name(x) -> str:
    dt = getattr(x, "dtype", None)
    return _dt.from_np(dt).name if dt is not None and dt in _dt._BY_NP else type(x).__name__


def _retry_in_float(name: str, kernel, xs: tuple, err: TypeError):
    """A kernel that refused its inputs' dtype (NumPy's TypeError): integer and bfloat16
    inputs are computed in float32 (bfloat16 results rounded back), boolean ones too when
    the answer is boolean (``isneginf``); any other refusal is MLX's ``ValueError``
    (``negative`` of a boolean, ``floor`` of a complex)."""
    if (scalars := _host_scalars(xs)) is not None:  # 0-d host values meeting GPU data
        return kernel(*scalars)
    if (mixed := _devices_mixed(name, xs)) is not None:  # a host and a GPU array (CuPy's refusal)
        raise mixed from None
    arrays = [x for x in xs if hasattr(x, "dtype")]
    widen = [x.dtype.kind in "biu" or x.dtype == _BF16 for x in arrays]
    if arrays and all(widen):
        ys = [x.astype(xp.float32) if hasattr(x, "dtype") else x for x in xs]
        try:
            out = kernel(*ys)
        except TypeError:
            pass
        else:
            if any(x.dtype == _BF16 for x in arrays) and out.dtype == xp.float32:
                out = out.astype(_BF16)
            if out.dtype == xp.bool_ or not all(x.dtype == xp.bool_ for x in arrays):
                return out
    dtypes = " and ".join(_dtype_name(x) for x in xs)
    raise DtypeError(f"{name}: inputs of dtype {dtypes} are not supported ({err})") from None


def _unary(name: str, kernel, vjp=None, *, method: bool = False, holomorphic: bool = True):
    """Declare an elementwise primitive of one input and return its public function.

    With a ``vjp`` the operation is a primitive of the table (recorded, differentiable,
    batched by the elementwise rule); without one it is a plain kernel call (no gradient).
    Either way it is exported as ``mx.<name>`` (and as a method with ``method=True``).
    A kernel refusing an integer, boolean or bfloat16 input is retried in float32; any
    other dtype it refuses raises ``DtypeError`` (a ``ValueError``, as MLX).
    """
    prim = defprim(name, vjp, holomorphic=holomorphic) if vjp is not None else None

    def op(a, stream=None) -> array:
        if type(a) is not array:
            a = _handle(a)
        try:
            out = kernel(a._data)
        except TypeError as e:
            out = _retry_in_float(name, kernel, (a._data,), e)
        if prim is not None and a._node is not None and STATE.enabled:
            return _from_value(out, Node(out, prim, (a._node,)))
        return _from_value(out)

    op.__name__ = op.__qualname__ = name
    op.__module__ = sys._getframe(1).f_globals["__name__"]  # where it is declared
    op.__doc__ = f"Elementwise ``{name}`` (MLX ``mx.{name}``)."
    op.takes_tensors = True  # type: ignore[attr-defined]  # reads only its operand slots
    if prim is not None:
        prim.batch = _elementwise_rule(op)
    return export(op, method=method)


def _binary(name: str, kernel, vjp_a=None, vjp_b=None, *, method: bool = False):
    """Declare an elementwise, broadcasting primitive of two inputs (see ``_unary``).

    The public function accepts any array-like operands; ``op.operator`` (what the array's
    ``+``, ``<``, ... call) accepts only arrays, scalars and array-likes, as MLX's operators.
    """
    prim = defprim(name, vjp_a, vjp_b) if (vjp_a or vjp_b) else None

    def make(op_name: str | None, cls: type = array):
        def op(a, b, stream=None) -> array:
            # fast paths (no call, no tuple): two arrays of one dtype, an array and a Python
            # float or int (array subclasses such as chainrule.torch.Tensor are handles too)
            ta, tb = type(a), type(b)
            ha = ta is array or ta in _SUBCLASSES
            hb = tb is array or tb in _SUBCLASSES
            if ha and hb and a._data.dtype is b._data.dtype:
                da, db, na, nb = a._data, b._data, a._node, b._node
            elif ha and (tb is float or tb is int) and a._data.dtype.kind in "fc":
                da, db, na, nb = a._data, b, a._node, None
            elif (ta is float or ta is int) and hb and b._data.dtype.kind in "fc":
                da, db, na, nb = a, b._data, None, b._node
            else:
                da, db, na, nb = _prep2(a, b, op_name)
            try:
                out = kernel(da, db)
            except ValueError as e:
                raise _kernel_error(name, da, db, e) from None
            except TypeError as e:
                out = _retry_in_float(name, kernel, (da, db), e)
            r: array = _new(cls)  # _from_value inlined: the hottest constructor of all
            r._data = out
            r._grad = None
            if prim is None or (na is None and nb is None) or not STATE.enabled:
                r._node = None
            else:
                r._node = Node(  # (the name: detect_anomaly rebinds it to a checking factory)
                    out, prim, (na if na is not None else da, nb if nb is not None else db)
                )
            return r

        return op

    op = make(None)
    op.takes_tensors = True  # reads only its operands' slots: doors may pass subclasses
    op.operator = make(name)
    op.operator.handles = True
    op.operator.with_class = lambda cls: make(name, cls)  # the same operator, making ``cls``
    op.__name__ = op.__qualname__ = name
    op.__module__ = sys._getframe(1).f_globals["__name__"]  # where it is declared
    op.__doc__ = f"Elementwise, broadcasting ``{name}`` (MLX ``mx.{name}``)."
    if prim is not None:
        prim.batch = _elementwise_rule(op)
    return export(op, method=method)


_HALVES = {xp.dtype(xp.float32): xp.float32(0.5), xp.dtype(xp.float64): xp.float64(0.5)}


def _xpsigmoid(x):
    # tanh form: stable for every x and never warns of overflow
    return 0.5 * xp.tanh(0.5 * x) + 0.5


def _sigmoid_fast(x):
    """``_xpsigmoid`` of a float32 or float64 array of at least one dimension with one new
    buffer, the rest in place (a NumPy scalar of the array's own type combines faster than a
    Python float); ``None`` for any other input."""
    h = _HALVES.get(x.dtype)
    if h is None or not x.ndim:
        return None
    t = x * h
    xp.tanh(t, out=t)
    t *= h
    t += h
    return t


_erf_vec = xp.vectorize(math.erf, otypes=[xp.float64])


def _erf_fallback(x):
    return _erf_vec(x)


def _erfinv_fallback(y):
    y64 = xp.asarray(y, dtype=xp.float64)
    # initial guess (Giles) refined by Newton steps on erf
    w = -xp.log((1.0 - y64) * (1.0 + y64))
    x = xp.where(w < 5.0, 0.8862269 * y64 * (1 + 0.2 * w), xp.sign(y64) * xp.sqrt(w))
    for _ in range(6):
        err = _erf_vec(x) - y64
        x = x - err / (2.0 / math.sqrt(math.pi) * xp.exp(-x * x))
    return xp.where(xp.abs(y64) == 1, xp.sign(y64) * xp.inf, x)


_SPECIAL: dict = {}


def _special(name: str):
    """SciPy's exact, vectorised kernel when SciPy is installed (imported on first use, since
    importing it costs a third of a second), else a NumPy fallback."""
    fn = _SPECIAL.get(name)
    if fn is None:
        try:
            import scipy.special

            fn = getattr(scipy.special, name)
        except ImportError:  # pragma: no cover - depends on the environment
            fn = _erf_fallback if name == "erf" else _erfinv_fallback
        _SPECIAL[name] = fn
    return fn


def _erf_kernel(x):
    return _special("erf")(x).astype(x.dtype, copy=False)


def _erfinv_kernel(y):
    return _special("erfinv")(y).astype(y.dtype, copy=False)


_FLOAT_UP = {
    xp.dtype(t): None
    for t in (
        xp.bool_,
        xp.int8,
        xp.int16,
        xp.int32,
        xp.int64,
        xp.uint8,
        xp.uint16,
        xp.uint32,
        xp.uint64,
    )
}
_FLOAT_UP[_BF16] = _BF16


def _float_kernel(fn):
    """A kernel of a floating-point function, as MLX computes it: integer and boolean inputs
    in float32 (float32 result), bfloat16 in float32 rounded back to bfloat16."""

    def kernel(x):
        if x.dtype not in _FLOAT_UP:
            return fn(x)
        back = _FLOAT_UP[x.dtype]
        out = fn(x.astype(xp.float32))
        return out if back is None else out.astype(back)

    return kernel


def _float_kernel2(fn):
    """``_float_kernel`` for a function of two inputs (either may be a Python scalar)."""

    def kernel(a, b):
        ta, tb = getattr(a, "dtype", None), getattr(b, "dtype", None)
        if ta not in _FLOAT_UP and tb not in _FLOAT_UP:
            return fn(a, b)
        back = _BF16 if _BF16 in (ta, tb) else None
        a = a.astype(xp.float32) if ta in _FLOAT_UP else a
        b = b.astype(xp.float32) if tb in _FLOAT_UP else b
        out = fn(a, b)
        return out if back is None else out.astype(back)

    return kernel
