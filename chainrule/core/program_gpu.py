"""A compiled program replayed on GPU arrays (``mx.compile`` of a call whose arrays are on the GPU).

The tracer records NumPy calls on host arrays (``Traced`` is an ``ndarray`` subclass), so a call
on GPU data is traced on host copies of its inputs (``compile.py``), and the generated code is
then run with GPU arrays. Most of its steps need nothing: NumPy's functions and ufuncs hand GPU
arrays to the GPU library (NEP 13/18, as eager code relies on), ``ndarray`` methods exist on GPU
arrays, and ``@kernel`` steps are the eager kernels themselves, which pick their GPU branch. What
the namespace of the GPU replay changes (:func:`gpu_namespace`):

* constants the trace captured (host arrays: a mask, a closure's array, a created ``zeros``)
  are copied to the GPU once, when the GPU replay is built;
* ufunc methods (``np.add.reduce``, ``np.maximum.reduce``, ``np.add.at``, ``.accumulate``...),
  which the eager code calls on host data only and CuPy lacks in part, become their GPU
  functions (``sum``, ``max``, ``cumsum``, ``backend.scatter_add``), or run on explicit host
  copies (``backend.via_host``) where the GPU library has none;
* ``np.array``/``np.asarray`` and friends (recorded on traced values) make GPU arrays;
* random draws (NumPy's generator on the host, as eager ``mx.random`` draws) are copied to the
  GPU, so a replay draws the same numbers as an eager call would.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from . import backend as _backend
from .tracing import _ORIGINAL, _Draw

__all__ = ["gpu_namespace"]

_REDUCE_AS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min"}
_REDUCE_BOOL = {"logical_and": "all", "logical_or": "any"}
_ACCUMULATE_AS = {"add": "cumsum", "multiply": "cumprod"}


def _on_gpu(x: Any) -> Any:
    """Host arrays (also inside lists and tuples) copied to the GPU; anything else as it is."""
    t = type(x)
    if t is _np.ndarray:
        return _backend.to_gpu(x)
    if t is tuple or t is list:
        return t(_on_gpu(v) for v in x)
    return x


def _gpu_xp() -> Any:
    """The GPU library's namespace."""
    g = _backend.GPU[0]
    if g is None:
        raise RuntimeError("mx.compile: a GPU replay needs the GPU backend")
    return g.xp


def _reduce(ufunc: _np.ufunc):
    name = ufunc.__name__
    as_fn = _REDUCE_AS.get(name) or _REDUCE_BOOL.get(name)

    def reduce(a, axis=0, dtype=None, out=None, keepdims=False, **kwargs):
        if as_fn is None or kwargs or not _backend.is_gpu(a):  # (initial=, where=)
            r = _backend.via_host(ufunc.reduce, a, axis, dtype, None, keepdims, **kwargs)
        elif name in _REDUCE_BOOL or name in ("maximum", "minimum"):
            r = getattr(_gpu_xp(), as_fn)(a, axis=axis, keepdims=keepdims)
            r = r if dtype is None else r.astype(dtype)
        else:
            r = getattr(_gpu_xp(), as_fn)(a, axis=axis, dtype=dtype, keepdims=keepdims)
        if out is not None:
            out[...] = r
            return out
        return r

    return reduce


def _accumulate(ufunc: _np.ufunc):
    as_fn = _ACCUMULATE_AS.get(ufunc.__name__)

    def accumulate(a, axis=0, dtype=None, out=None):
        if as_fn is None or out is not None or not _backend.is_gpu(a):
            return _backend.via_host(ufunc.accumulate, a, axis, dtype, out)
        return getattr(_gpu_xp(), as_fn)(a, axis=axis, dtype=dtype)

    return accumulate


def _at(ufunc: _np.ufunc):
    def at(a, indices, b=None):
        if ufunc is _np.add and b is not None:
            _backend.scatter_add(a, indices, b)
            return None
        host = _backend.to_host(a).copy()  # explicit copies both ways: CuPy has no ufunc.at
        rest = () if b is None else (_backend._on_host(b),)
        ufunc.at(host, _backend._on_host(indices), *rest)
        a[...] = _backend.to_gpu(host)
        return None

    return at


def _other_method(bound):
    def method(*args, **kwargs):
        return _backend.via_host(bound, *args, **kwargs)

    return method


def _ufunc_method(bound) -> Any:
    """A bound ufunc method (``np.add.reduce``) as a function of GPU arrays."""
    ufunc, name = bound.__self__, bound.__name__
    if name == "reduce":
        return _reduce(ufunc)
    if name == "accumulate":
        return _accumulate(ufunc)
    if name == "at":
        return _at(ufunc)
    return _other_method(bound)


def _creation(name: str):
    def make(obj, *args, **kwargs):
        if _backend.is_gpu(obj):
            return getattr(_backend.array_module(obj), name)(obj, *args, **kwargs)
        if type(obj) in (list, tuple) and any(_backend.is_gpu(v) for v in obj):
            return getattr(_gpu_xp(), name)(obj, *args, **kwargs)
        return _backend.to_gpu(getattr(_np, name)(obj, *args, **kwargs))

    make.__name__ = name
    return make


def _gpu_draw(draw: _Draw):
    def drawn(*args, **kwargs):
        return _on_gpu(draw(*args, **kwargs))

    drawn.__name__ = draw.__name__
    return drawn


_CREATION_FNS = {id(fn): name for name, fn in _ORIGINAL.items()}


def gpu_value(v: Any) -> Any:
    """One entry of a host program's namespace as the GPU replay's."""
    t = type(v)
    if t is _np.ndarray:
        return _backend.to_gpu(v)
    if t is _Draw:
        return _gpu_draw(v)
    if type(getattr(v, "__self__", None)) is _np.ufunc:
        return _ufunc_method(v)
    name = _CREATION_FNS.get(id(v))
    if name is not None:
        return _creation(name)
    return v


def gpu_namespace(ns: dict) -> dict:
    """The namespace a program's source runs in on the GPU (see the module docstring)."""
    return {k: gpu_value(v) for k, v in ns.items()}
