"""The one door to the array library.

Every kernel in the op table reaches NumPy through ``xp`` defined here, so another
NumPy-compatible library (CuPy for a GPU) can later be swapped in without touching
the op table. Nothing else in ``chainrule.core`` imports NumPy for computation.

``xp`` is NumPy's namespace with the few functions that would mishandle ``bfloat16`` (an
``ml_dtypes`` type NumPy only half knows) replaced: ordering (``sort``, ``argsort``,
``partition``, ...: ml_dtypes compares NaN as unordered, so NaNs land anywhere), ``nan_to_num``
(which skips a dtype it does not know as floating), ``finfo`` and ``issubdtype``. Those compute
on bfloat16 in float32 (exact: every bfloat16 is a float32) and round back; for every other
dtype they are NumPy's own. Every other name is NumPy's object itself (``xp.add is
numpy.add``), and the array constructors are looked up on NumPy at each call, so
``mx.compile``'s tracer, which patches them there while it traces, sees them.
"""

from __future__ import annotations

import types
from typing import Any

import ml_dtypes
import numpy

BFLOAT16 = numpy.dtype(ml_dtypes.bfloat16)
"""The backend dtype of ``mx.bfloat16``."""

ndarray = numpy.ndarray
# ``numpy`` itself is importable from here too: ``numpy.array(x)`` reads the constructor as it
# is at the call (patched by ``mx.compile`` while tracing) without ``xp.array``'s extra call.


def _is_bf16(x) -> bool:
    return getattr(x, "dtype", None) == BFLOAT16


def _widened(x):
    return x.astype(numpy.float32) if _is_bf16(x) else x


def _ordering(name: str, values: bool):
    """NumPy's ``name`` computing bfloat16 inputs in float32 (``values``: round the result back)."""
    fn = getattr(numpy, name)

    def wrapped(a, *args, **kwargs):
        if not _is_bf16(a):
            return fn(a, *args, **kwargs)
        out = fn(a.astype(numpy.float32), *args, **kwargs)
        if values and isinstance(out, tuple):
            return (out[0].astype(BFLOAT16),) + out[1:]
        return out.astype(BFLOAT16) if values else out

    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = f"``numpy.{name}``, with bfloat16 ordered as float32 (NaNs last)."
    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapped


def _searchsorted(a, v, *args, **kwargs):
    """``numpy.searchsorted`` with bfloat16 compared as float32."""
    return numpy.searchsorted(_widened(a), _widened(v), *args, **kwargs)


def _nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """``numpy.nan_to_num``; bfloat16 infinities become bfloat16's largest finite values."""
    if not _is_bf16(x):
        return numpy.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    info = ml_dtypes.finfo(BFLOAT16)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    out = numpy.nan_to_num(x.astype(numpy.float32), nan=nan, posinf=posinf, neginf=neginf)
    return out.astype(BFLOAT16)


def _finfo(dtype):
    """``numpy.finfo``, and ``ml_dtypes.finfo`` for bfloat16."""
    if getattr(dtype, "dtype", dtype) == BFLOAT16:
        return ml_dtypes.finfo(BFLOAT16)
    return numpy.finfo(dtype)


def _issubdtype(arg1, arg2) -> bool:
    """``numpy.issubdtype``, knowing bfloat16 as a floating type."""
    try:
        bf = numpy.dtype(arg1) == BFLOAT16
    except TypeError:
        bf = False
    if bf:
        return arg2 in (numpy.floating, numpy.inexact, numpy.number, numpy.generic) or (
            not isinstance(arg2, type) and numpy.dtype(arg2) == BFLOAT16
        )
    return numpy.issubdtype(arg1, arg2)


def _constructor(name: str):
    """Forward to ``numpy.<name>`` as it is at call time (``mx.compile`` patches it)."""

    def forward(*args, **kwargs):
        return getattr(numpy, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"``numpy.{name}`` (looked up at each call)."
    return forward


def _namespace() -> types.ModuleType:
    ns: Any = types.ModuleType("chainrule.core.backend.xp", "NumPy, bfloat16-aware (see backend).")
    ns.__dict__.update((k, v) for k, v in vars(numpy).items() if not k.startswith("__"))
    for name in ("sort", "partition", "unique", "median", "nanmedian", "msort"):
        if hasattr(numpy, name):
            setattr(ns, name, _ordering(name, values=True))
    for name in ("argsort", "argpartition"):
        setattr(ns, name, _ordering(name, values=False))
    ns.searchsorted = _searchsorted
    ns.nan_to_num = _nan_to_num
    ns.finfo = _finfo
    ns.issubdtype = _issubdtype
    for name in ("array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray"):
        setattr(ns, name, _constructor(name))

    def __getattr__(name: str):  # NumPy's lazily loaded submodules (testing, ...)
        return getattr(numpy, name)

    ns.__getattr__ = __getattr__
    return ns


xp: Any = _namespace()  # a module built at run time: NumPy plus the overrides above
"""The array namespace the kernels call (``xp.add``, ``xp.matmul``, ...)."""


def asarray(value, dtype=None):
    """Convert ``value`` to a backend array without copying when possible."""
    return xp.asarray(value, dtype=dtype)


def to_numpy(value):
    """Return ``value`` as a NumPy array (a no-op on the NumPy backend)."""
    return numpy.asarray(value)
