"""Array creation: ``zeros``, ``ones``, ``full``, ``arange``, ``linspace``, ``eye``, ..."""

from __future__ import annotations

import builtins

from .. import dtypes as _dt
from ..array import _from_value, array
from ..backend import xp
from .table import (
    export,
)


def _np_dtype(dtype, default=_dt.float32):
    return _dt.to_np(default if dtype is None else dtype)


def _shape(shape) -> tuple:
    if isinstance(shape, int) or hasattr(shape, "__index__"):
        return (int(shape),)
    return tuple(int(s) for s in shape)


@export
def zeros(shape, dtype=None, stream=None) -> array:
    """An array of zeros (float32 by default)."""
    return _from_value(xp.zeros(_shape(shape), dtype=_np_dtype(dtype)))


@export
def ones(shape, dtype=None, stream=None) -> array:
    """An array of ones (float32 by default)."""
    return _from_value(xp.ones(_shape(shape), dtype=_np_dtype(dtype)))


@export
def full(shape, vals, dtype=None, stream=None) -> array:
    """``vals`` broadcast to ``shape`` (its dtype unless ``dtype`` is given)."""
    v = _as(vals)
    if dtype is not None:
        v = astype(v, dtype)
    return (
        broadcast_to(v, _shape(shape)) * 1
        if v._node is not None
        else _from_value(xp.array(xp.broadcast_to(v._data, _shape(shape))))
    )


@export
def zeros_like(a, dtype=None, stream=None) -> array:
    """Zeros with the shape and dtype of ``a``."""
    d = _as(a)._data
    return _from_value(xp.zeros(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


@export
def ones_like(a, dtype=None, stream=None) -> array:
    """Ones with the shape and dtype of ``a``."""
    d = _as(a)._data
    return _from_value(xp.ones(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


@export
def full_like(a, fill_value, dtype=None, stream=None) -> array:
    """``fill_value`` with the shape (and dtype) of ``a``."""
    d = _as(a)._data
    return _from_value(
        xp.full(d.shape, fill_value, dtype=d.dtype if dtype is None else _dt.to_np(dtype))
    )


@export
def arange(start, stop=None, step=None, dtype=None, stream=None) -> array:
    """Evenly spaced values in ``[start, stop)``; int32 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    floaty = builtins.any(isinstance(v, float) for v in (start, stop, step))
    default = _dt.float32 if floaty else _dt.int32
    return _from_value(xp.arange(start, stop, step, dtype=_np_dtype(dtype, default)))


@export
def linspace(start, stop, num: int = 50, dtype=None, stream=None) -> array:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (float32)."""
    return _from_value(xp.linspace(start, stop, num, dtype=_np_dtype(dtype)))


@export
def eye(n: int, m: int | None = None, k: int = 0, dtype=None, stream=None) -> array:
    """Ones on the ``k``-th diagonal."""
    return _from_value(xp.eye(n, m, k, dtype=_np_dtype(dtype)))


@export
def identity(n: int, dtype=None, stream=None) -> array:
    """The ``n`` by ``n`` identity matrix."""
    return eye(n, dtype=dtype)


@export
def size(a) -> int:
    """Number of elements of ``a``."""
    return int(_as(a)._data.size)


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .elementwise import astype  # noqa: E402
from .shapes import broadcast_to  # noqa: E402
from .table import _as  # noqa: E402
