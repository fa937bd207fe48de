"""Array creation: ``zeros``, ``ones``, ``full``, ``arange``, ``linspace``, ``eye``, ..."""

from __future__ import annotations

import builtins
import math

from .. import backend as _backend
from .. import dtypes as _dt
from ..array import _convert, _from_dlpack_object, _from_ndarray, _from_value, array
from ..backend import xp
from .table import (
    export,
)


def _np_dtype(dtype, default=_dt.float32):
    return _dt.to_np(default if dtype is None else dtype)


def _shape(shape) -> tuple:
    """A shape as a tuple of ints, each checked against int32 (MLX's ``OverflowError``)."""
    if isinstance(shape, int) or hasattr(shape, "__index__"):
        return (_dt.check_dim(shape),)
    return tuple(_dt.check_dim(s) for s in shape)


def _ns(stream):
    """The namespace making arrays on ``stream``'s device (default: the default device)."""
    if stream is None:
        return _backend.DEFAULT_XP[0]
    from ..devices import namespace_of

    return namespace_of(stream)


def _device_of(a):
    """The device array ``a`` lives on (``mx.cpu`` or ``mx.gpu``): ``stream=`` for the constants
    a rule makes next to ``a``."""
    from ..devices import cpu, gpu

    return gpu if _backend.is_gpu(a._data) else cpu


def _zeros_near(shape, dtype, ref) -> array:
    """Zeros of ``shape`` and ``dtype`` on the device of backend value ``ref`` (a rule's
    constant next to its operand)."""
    ns = xp if type(ref) is xp.ndarray else _backend.array_module(ref)
    return _from_value(ns.zeros(shape, _dt.to_np(dtype)))


def _place(data, stream):
    """Host-made ``data`` on ``stream``'s device (default: the default device)."""
    ns = _ns(stream)
    return data if ns is xp else ns.asarray(data)


@export
def zeros(shape, dtype=None, stream=None) -> array:
    """An array of zeros (float32 by default)."""
    ns = _backend.DEFAULT_XP[0] if stream is None else _ns(stream)
    return _from_value(ns.zeros(_shape(shape), dtype=_np_dtype(dtype)))


@export
def ones(shape, dtype=None, stream=None) -> array:
    """An array of ones (float32 by default)."""
    ns = _backend.DEFAULT_XP[0] if stream is None else _ns(stream)
    return _from_value(ns.ones(_shape(shape), dtype=_np_dtype(dtype)))


def _fill_value(vals, dtype) -> array:
    """``full``'s value as an array of ``dtype``: a Python float asked to be float64 is read
    exactly (never through float32); an int must fit a narrow integer dtype (MLX)."""
    if dtype is None:
        return _as(vals)
    target = _dt.to_np(dtype)
    if type(vals) is int and target in _INT_RANGE:
        lo, hi = _INT_RANGE[target]
        if not lo <= vals <= hi:
            raise ValueError(
                f"Converting {vals} to {_dt.from_np(target).name} would result in overflow."
            )
    if isinstance(vals, (bool, int, float, complex)) and not isinstance(vals, xp.generic):
        return _from_value(_convert(vals, dtype))
    v = _as(vals)
    return v if v._data.dtype == target else astype(v, dtype)


@export
def full(shape, vals, dtype=None, stream=None) -> array:
    """``vals`` broadcast to ``shape`` (its dtype unless ``dtype`` is given)."""
    shape = _shape(shape)
    v = _fill_value(vals, dtype)
    if v._node is not None:
        return broadcast_to(v, shape) * 1
    d = v._data
    if type(d) is xp.ndarray or not _backend.is_gpu(d):
        return _from_value(_place(xp.array(xp.broadcast_to(d, shape)), stream))
    return _from_value(_backend.array_module(d).array(xp.broadcast_to(d, shape)))


@export
def zeros_like(a, dtype=None, stream=None) -> array:
    """Zeros with the shape and dtype of ``a``."""
    d = _as(a)._data
    ns = xp if type(d) is xp.ndarray else _backend.array_module(d)
    return _from_value(ns.zeros(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


@export
def ones_like(a, dtype=None, stream=None) -> array:
    """Ones with the shape and dtype of ``a``."""
    d = _as(a)._data
    ns = xp if type(d) is xp.ndarray else _backend.array_module(d)
    return _from_value(ns.ones(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


export(zeros, name="empty")  # MLX's empty is zeros (empty_like: ops/special.py)


@export
def full_like(a, fill_value, dtype=None, stream=None) -> array:
    """``fill_value`` with the shape (and dtype) of ``a``."""
    d = _as(a)._data
    out = full(d.shape, fill_value, _dt.from_np(d.dtype) if dtype is None else dtype)
    if _backend.GPU[0] is not None and _backend.is_gpu(d) != _backend.is_gpu(out._data):
        if out._node is not None:  # a recorded fill value: a recorded move
            from ..devices import kind_of, move

            return move(out, kind_of(d))
        out = _from_value(_backend.same_device(_backend.to_host(out._data), d))
    return out


_MISSING = object()


def _scalar_dtype(v):
    """MLX's dtype of a Python number in ``arange``: int32 (int64 past it), float32, bool."""
    if isinstance(v, bool):
        return xp.dtype(xp.bool_)
    if isinstance(v, int) or (isinstance(v, xp.integer)):
        return xp.dtype(xp.int32 if -(2**31) <= int(v) < 2**31 else xp.int64)
    if isinstance(v, (float, xp.floating)):
        return xp.dtype(xp.float32)
    raise TypeError(f"arange: expected int or float bounds, not {type(v).__name__}")


@export
def arange(*args, start=_MISSING, stop=_MISSING, step=None, dtype=None, stream=None) -> array:
    """Evenly spaced values in ``[start, stop)``, int32 or float32 by default.

    MLX's two forms: ``arange(stop, step=None, dtype=None)`` and ``arange(start, stop,
    step=None, dtype=None)``. The dtype is int32 for int bounds (int64 when one does not fit int32), float32 when one
    is a float. As in NumPy the increment used is ``dtype(start + step) - dtype(start)``.

    Raises:
        ValueError: for NaN or infinite bounds, a zero step, a bool dtype, or more than
            2**31 - 1 values.
        TypeError: without ``stop``.
    """
    if len(args) > 4:
        raise TypeError(f"arange: at most 4 positional arguments, got {len(args)}")
    if len(args) >= 2 or (args and stop is not _MISSING) or start is not _MISSING:
        names = ("start", "stop", "step", "dtype")
        given = dict(zip(names, args))
        for name, v in (("start", start), ("stop", stop)):
            if v is not _MISSING:
                if name in given:
                    raise TypeError(f"arange: got {name} twice")
                given[name] = v
        if "stop" not in given or "start" not in given:
            raise TypeError("arange: stop is required")
        start, stop = given["start"], given["stop"]
        step = given.get("step", step)
        dtype = given.get("dtype", dtype)
        if stop is None:
            start, stop = 0, start
    else:
        if not args and stop is _MISSING:
            raise TypeError("arange: stop is required")
        names = ("stop", "step", "dtype")  # type: ignore[assignment]
        given = dict(zip(names, args))
        stop = given.get("stop", stop)
        step = given.get("step", step)
        dtype = given.get("dtype", dtype)
        start = None  # not part of the dtype inference in this form
    if dtype is None:
        t = _scalar_dtype(stop)
        if step is not None:
            t = _dt.promote(t, _scalar_dtype(step))
        if start is not None:
            t = _dt.promote(_scalar_dtype(start), t)
    else:
        t = _dt.to_np(dtype)
    return _from_value(_place(_arange_values(0 if start is None else start, stop, step, t), stream))


def _arange_values(start, stop, step, t):
    if t == xp.bool_:
        raise ValueError("arange: bool is not supported")
    start, stop = float(start), float(stop)
    step = 1.0 if step is None else float(step)
    if math.isnan(start) or math.isnan(stop) or math.isnan(step):
        raise ValueError("arange: cannot compute the length of a range with a NaN")
    if math.isinf(start) or math.isinf(stop):
        raise ValueError("arange: cannot compute the length of an infinite range")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if math.isinf(step):
        n = 1 if (step > 0 and start < stop) or (step < 0 and start > stop) else 0
        return xp.full(n, start).astype(t)
    else:
        real = math.ceil((stop - start) / step)
        if real > 2**31 - 1:
            raise ValueError(f"arange: {real} values exceed the maximum size (2**31 - 1)")
        n = builtins.max(real, 0)
    if _dt.kind(t) in "iu":
        first = int(start)  # NumPy's (and MLX's) increment: dtype(start + step) - dtype(start)
        inc = int(start + step) - first if n > 1 else 0
        out = first + inc * xp.arange(n, dtype=xp.int64)
        return out.astype(t)
    return (start + step * xp.arange(n, dtype=xp.float64)).astype(t)


@export
def linspace(start, stop, num: int = 50, endpoint: bool = True, dtype=None, stream=None) -> array:
    """``num`` evenly spaced values from ``start`` to ``stop`` (inclusive unless not
    ``endpoint``), float32 by default; computed in float64 when asked for float64."""
    num = int(num)
    if num < 0:
        raise ValueError(f"linspace: the number of samples, {num}, must be non-negative")
    t = _np_dtype(dtype)
    if num == 1:
        return _from_value(_place(xp.asarray([start], dtype=xp.float64).astype(t), stream))
    inner = xp.float64 if t == xp.float64 else xp.float32
    frac = xp.arange(num, dtype=inner) / inner(num - 1 if endpoint else num)
    out = (inner(1) - frac) * inner(start) + frac * inner(stop)
    return _from_value(_place(out.astype(t), stream))


@export
def asarray(a, dtype=None, *, copy: bool | None = None) -> array:
    """``a`` as an array (MLX's ``mx.asarray``): arrays pass through (the same values),
    anything else converts as ``mx.array`` does.

    Args:
        a: an array, Python data, a NumPy array, a buffer or a DLPack exporter.
        dtype: the dtype wanted (default: the input's, or MLX's inference).
        copy: ``True`` always copies; ``None`` copies only when it must; ``False`` never
            copies, which chainrule cannot promise for any input (arrays hold values
            nothing else may change), so it raises.

    Raises:
        ValueError: for ``copy=False``.
    """
    if copy is False:
        raise ValueError(
            "asarray: copy=False cannot be honoured: an array never shares its buffer with "
            "other objects (values are immutable)"
        )
    return array(a, dtype)


@export
def from_dlpack(x, *, copy: bool | None = None) -> array:
    """An array from an object exporting DLPack (a NumPy array, a PyTorch tensor, ...).

    ``float64`` imports as float32 and ``complex128`` as complex64, as MLX; the values are
    copied (``copy=False`` raises, see ``asarray``).

    Raises:
        ValueError: for ``copy=False``, a dtype MLX has no counterpart of, or negative
            strides (as MLX).
    """
    if copy is False:
        raise ValueError("from_dlpack: copy=False cannot be honoured (values are immutable)")
    if isinstance(x, xp.ndarray):
        nd = x
    else:
        if not hasattr(x, "__dlpack__"):
            raise TypeError(f"from_dlpack: {type(x).__name__} does not export DLPack")
        nd = _from_dlpack_object(x)
    if builtins.any(s < 0 for s in nd.strides):
        raise ValueError("from_dlpack: arrays with negative strides cannot be imported")
    return _from_value(_from_ndarray(nd))


@export
def eye(n: int, m: int | None = None, k: int = 0, dtype=None, stream=None) -> array:
    """Ones on the ``k``-th diagonal."""
    return _from_value(_ns(stream).eye(n, m, k, dtype=_np_dtype(dtype)))


@export
def identity(n: int, dtype=None, stream=None) -> array:
    """The ``n`` by ``n`` identity matrix."""
    return eye(n, dtype=dtype, stream=stream)


@export
def size(a) -> int:
    """Number of elements of ``a``."""
    return int(_as(a)._data.size)


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .elementwise import astype  # noqa: E402
from .shapes import broadcast_to  # noqa: E402
from .table import _INT_RANGE, _as  # noqa: E402
