"""A strict stand-in for CuPy, so the GPU code paths run (and leaks fail) on any CPU machine.

``StrictArray`` wraps a NumPy array and behaves as a ``cupy.ndarray`` does toward NumPy:

* NumPy functions and ufuncs called on it (``numpy.add(a, b)``, ``numpy.concatenate``) run
  through ``__array_ufunc__`` / ``__array_function__`` (NEP 13/18): the arguments are unwrapped,
  NumPy computes, and the results are wrapped again, as CuPy computes on the GPU;
* converting it to a NumPy array implicitly (``numpy.asarray(a)``, ``numpy.array(a)``) raises
  CuPy's ``TypeError``; ``a.get()`` copies to the host explicitly;
* a NumPy array (other than a 0-d one) mixed into one of its operations raises ``TypeError``,
  as CuPy refuses host arrays in its kernels;
* ufunc methods other than calling (``numpy.add.at``, ``numpy.maximum.reduce``,
  ``.accumulate``, ``.outer``, ``.reduceat``) raise ``TypeError``: CuPy lacks most of them, so
  kernels reach them through ``backend`` helpers (``scatter_add``...);
* reductions return 0-d arrays, not NumPy scalars, as CuPy's do.

``namespace`` is the module-like object standing for ``cupy`` (``namespace.zeros``,
``namespace.asarray(host_data)``, ``namespace.linalg.solve``...). ``backend.use_strict_gpu()``
makes ``mx.gpu`` (and ``torch.device("cuda")``) available and backed by it; tests use that, and
``CHAINRULE_TEST_BACKEND=strict`` selects it at import.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from .strict_cupy_names import NAMES, NDARRAY, NUMPY_OWN, PARAMETERS

__all__ = ["StrictArray", "namespace", "IMPLICIT", "MixedDeviceError", "unwrap", "wrap"]

IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. "
    "Please use `.get()` to construct a NumPy array explicitly."
)
"""CuPy's message for ``numpy.asarray(gpu_array)``."""


class MixedDeviceError(RuntimeError, TypeError):
    """A host (NumPy) array mixed into an operation on device arrays (CuPy's ``TypeError``;
    a ``RuntimeError`` as PyTorch raises for tensors on two devices)."""


def _refuse_host(x: numpy.ndarray, who: str) -> MixedDeviceError:
    return MixedDeviceError(
        f"{who}: Expected all tensors to be on the same device, but found at least two devices, "
        f"cuda:0 and cpu! (a NumPy (host) array of shape {x.shape} was mixed with device arrays; "
        "CuPy refuses host arrays in device kernels: Unsupported type <class 'numpy.ndarray'>)"
    )


def unwrap(x: Any, who: str = "strict backend", zero_d: bool = True) -> Any:
    """The NumPy values inside ``x`` (a ``StrictArray``, or lists/tuples/dicts of them).

    ``zero_d=False`` refuses 0-d NumPy arrays too, as CuPy's kernels do (its ufuncs and
    functions take Python and NumPy scalars, never a ``numpy.ndarray``, whatever its shape).

    Raises:
        MixedDeviceError: for a NumPy array with at least one dimension (or any, with
            ``zero_d=False``).
    """
    t = type(x)
    if t is StrictArray:
        return x._a
    if t is numpy.ndarray:
        if x.ndim or not zero_d:
            raise _refuse_host(x, who)
        return x
    if t is list or t is tuple:
        return t(unwrap(v, who, zero_d) for v in x)
    if t is dict:
        return {k: unwrap(v, who, zero_d) for k, v in x.items()}
    if isinstance(x, numpy.ndarray) and (x.ndim or not zero_d):  # a NumPy subclass (a tracer's
        raise _refuse_host(x, who)  # view): host data
    return x


_UFUNC_KWARGS = frozenset({"out", "dtype", "casting"})
"""The keywords a CuPy ufunc takes (no ``where``, ``order``, ``subok``, ``signature``)."""

_COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
"""Ufuncs whose 0-d NumPy arguments CuPy's ``__array_ufunc__`` turns into scalars."""


def _unwrap_index(x: Any) -> Any:
    """An index: device arrays unwrapped; host index arrays are accepted (CuPy copies them)."""
    t = type(x)
    if t is StrictArray:
        return x._a
    if t is tuple:
        return tuple(_unwrap_index(v) for v in x)
    return x


def wrap(x: Any) -> Any:
    """NumPy results made device arrays again (NumPy scalars become 0-d arrays, as CuPy's)."""
    t = type(x)
    if t is numpy.ndarray:
        return StrictArray(x)
    if isinstance(x, numpy.generic):
        return StrictArray(numpy.asarray(x))
    if t is list:
        return [wrap(v) for v in x]
    if isinstance(x, tuple):
        vals = [wrap(v) for v in x]
        return type(x)(*vals) if hasattr(x, "_fields") else tuple(vals)
    return x


def _method(fn: Any, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        who = f"ndarray.{name}"
        return wrap(fn(*unwrap(args, who), **unwrap(kwargs, who)))

    call.__name__ = name
    return call


_NUMPY_ONLY = {numpy.vectorize}


class _Flags:
    """``cupy.ndarray.flags``: the layout flags CuPy keeps (no ``writeable``, no ``aligned``)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, a: numpy.ndarray) -> None:
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, name: str) -> bool:
        key = {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous"}
        return getattr(self, key.get(name, name.lower()))


def _cupy_has(func: Any) -> bool:
    """Whether CuPy implements NumPy function ``func`` (found, as CuPy's ``__array_function__``
    finds it, by its module below ``numpy`` and its name)."""
    module = getattr(func, "__module__", None) or ""
    if not module.startswith("numpy"):
        return True  # not NumPy's (a SciPy or chainrule function dispatching on its arguments)
    sub = module[len("numpy.") :] if "." in module else ""
    names = NAMES.get(sub)
    name = getattr(func, "__name__", None)
    return names is not None and name in names and not (sub == "" and name in NUMPY_OWN)


def unshared(a: StrictArray) -> bool:
    """Whether ``a``'s host buffer is its own and seen by nothing else (a view of the wrapped
    array takes a reference to it, not to ``a``: both are counted, as CuPy's views count)."""
    return a._a.base is None and _inner_refs(a) <= _SOLE_INNER


def _inner_refs(a: StrictArray) -> int:
    inner = a._a
    return sys.getrefcount(inner)


class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array dressed as a device array (see the module docstring)."""

    __slots__ = ("_a", "__weakref__")  # CuPy's arrays take weak references too
    __array_priority__ = 50

    def __init__(self, a: numpy.ndarray) -> None:
        if type(a) is not numpy.ndarray:
            raise TypeError(f"StrictArray wraps a numpy.ndarray, not {type(a).__name__}")
        if a.dtype.kind == "V":  # ml_dtypes' bfloat16, float8...: no CuPy dtype
            raise TypeError(f"Unsupported dtype {a.dtype} (CuPy has no {a.dtype} type)")
        self._a = a

    # -- refusing the host ---------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise TypeError(IMPLICIT)

    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> numpy.ndarray:
        """An explicit copy on the host (``cupy.ndarray.get``)."""
        return numpy.array(self._a, order=order)  # type: ignore[call-overload]

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        who = f"numpy.{ufunc.__name__}"
        if method != "__call__":
            raise TypeError(
                f"{who}.{method} is not available on the GPU backend (CuPy lacks most ufunc "
                "methods); use chainrule.core.backend's helpers (scatter_add, ...) or the "
                "function form (sum, max, cumsum)"
            )
        name = ufunc.__name__
        if name not in NAMES[""] and name not in NAMES["special"]:
            # CuPy's __array_ufunc__ looks the name up in cupy and cupyx.scipy.special
            raise TypeError(
                f"{who}: CuPy has no ufunc of this name (operand type(s) all "
                "returned NotImplemented)"
            )
        if not kwargs.keys() <= _UFUNC_KWARGS:  # what CuPy's ufunc.__call__ takes
            raise TypeError(f"{who}: Wrong arguments {sorted(kwargs.keys() - _UFUNC_KWARGS)}")
        out = kwargs.pop("out", None)
        kwargs = unwrap(kwargs, who, zero_d=False)
        if out is not None:
            kwargs["out"] = tuple(o._a if type(o) is StrictArray else _bad_out(o) for o in out)
        if ufunc.__name__ in _COMPARISONS:  # (CuPy's workaround for numpy/numpy#12142)
            inputs = tuple(
                x.item() if type(x) is numpy.ndarray and x.ndim == 0 else x for x in inputs
            )
        result = ufunc(*unwrap(inputs, who, zero_d=False), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return wrap(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        who = f"numpy.{getattr(func, '__name__', func)}"
        if func in _NUMPY_ONLY or not _cupy_has(func):
            # CuPy's __array_function__ looks the function up by its module and name
            raise TypeError(f"{who} has no GPU counterpart (CuPy implements no {who})")
        params = PARAMETERS.get(func.__name__) if func.__module__ == "numpy" else None
        if params is not None and not kwargs.keys() <= params:  # CuPy's own signature
            bad = sorted(kwargs.keys() - params)
            raise TypeError(f"cupy.{func.__name__}() got an unexpected keyword argument {bad}")
        for t in types:
            if not issubclass(t, (StrictArray, numpy.ndarray)):
                return NotImplemented
        out = kwargs.get("out")
        if out is not None and type(out) is StrictArray:
            kwargs = dict(kwargs, out=out._a)
            func(*unwrap(args, who, False), **unwrap(kwargs, who, False))
            return out
        return wrap(func(*unwrap(args, who, False), **unwrap(kwargs, who, False)))

    # -- the ndarray surface ---------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in NDARRAY:  # only what cupy.ndarray has
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        if name == "flags":
            return _Flags(self._a)
        v = getattr(self._a, name)
        if callable(v):
            return _method(v, name)
        return wrap(v)

    def __getitem__(self, key: Any) -> Any:
        return wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap_index(key)] = unwrap(value, "ndarray.__setitem__")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (wrap(v) for v in self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return f"StrictArray({self._a!r})"

    def __reduce__(self) -> Any:
        return (StrictArray, (self._a,))

    def __copy__(self) -> StrictArray:
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo: Any) -> StrictArray:
        return StrictArray(self._a.copy())

    __hash__ = None  # type: ignore[assignment]

    @property
    def shape(self) -> tuple:
        """The shape."""
        return self._a.shape

    @property
    def dtype(self) -> numpy.dtype:
        """The dtype."""
        return self._a.dtype

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self._a.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._a.size

    @property
    def T(self) -> StrictArray:
        """The transpose."""
        return StrictArray(self._a.T)

    def item(self, *args: Any) -> Any:
        """The one element as a Python scalar (a device-to-host copy, as in CuPy)."""
        return self._a.item(*args)

    def tolist(self) -> Any:
        """The values as nested lists (a device-to-host copy, as in CuPy)."""
        return self._a.tolist()

    def reshape(self, *shape: Any, **kwargs: Any) -> StrictArray:
        """``ndarray.reshape``."""
        return StrictArray(self._a.reshape(*shape, **kwargs))

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> StrictArray:
        """``ndarray.astype``."""
        return StrictArray(self._a.astype(dtype, *args, **kwargs))


def _bad_out(o: Any) -> Any:
    if type(o) is numpy.ndarray:
        raise _refuse_host(o, "out=")
    return o


# -- the namespace standing for ``cupy`` -------------------------------------------------------

_HOST_IN = frozenset(
    {"array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray", "copy"}
)


def _host_in(fn: Any, name: str) -> Any:
    """``cupy.asarray``: host data (NumPy arrays, lists, scalars) is copied to the device."""

    def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if type(obj) is StrictArray:
            obj = obj._a
        elif type(obj) is list or type(obj) is tuple:
            obj = unwrap(obj, f"{name}") if not _has_host(obj) else obj
        r = fn(obj, *args, **kwargs)
        if r is obj and type(r) is numpy.ndarray and name in ("array", "copy"):
            r = r.copy()
        return StrictArray(numpy.asarray(r) if type(r) is not numpy.ndarray else r)

    call.__name__ = name
    return call


def _has_host(seq: Any) -> bool:
    return any(type(v) is numpy.ndarray for v in seq)


def _function(fn: Any, name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        who = f"cupy.{name}"
        return wrap(fn(*unwrap(args, who), **unwrap(kwargs, who)))

    call.__name__ = name
    return call


def _scatter_add(a: StrictArray, slices: Any, value: Any) -> None:
    """``cupyx.scatter_add``: ``a[slices] += value`` with repeated indices accumulating."""
    numpy.add.at(a._a, _unwrap_index(slices), unwrap(value, "scatter_add"))


def _submodule(mod: Any, prefix: str) -> Any:
    ns: Any = types.ModuleType(prefix)
    cache: dict = {}

    known = NAMES.get(prefix[len("strict.") :] if "." in prefix else "")

    def __getattr__(name: str) -> Any:
        if name in cache:
            return cache[name]
        if (
            known is not None
            and name not in known
            and not isinstance(getattr(mod, name, None), types.ModuleType)
        ):  # only what cupy (cupy.linalg, cupy.fft, ...) has
            raise AttributeError(
                f"module '{prefix.replace('strict', 'cupy')}' has no attribute '{name}'"
            )
        v = getattr(mod, name)
        if isinstance(v, types.ModuleType):
            out = _submodule(v, f"{prefix}.{name}")
        elif callable(v) and not isinstance(v, type) and not isinstance(v, numpy.ufunc):
            if prefix == "strict" and name in _HOST_IN:
                out = _host_in(v, name)
            else:
                out = _function(v, name)
        else:
            out = v  # dtypes, constants, ufuncs (NEP 13 dispatches them), classes
        cache[name] = out
        return out

    ns.__getattr__ = __getattr__
    return ns


namespace: Any = _submodule(numpy, "strict")
"""The strict stand-in for the ``cupy`` module."""
namespace.ndarray = StrictArray
namespace.scatter_add = _scatter_add
namespace.asnumpy = lambda a: a.get() if type(a) is StrictArray else numpy.asarray(a)


_SOLE_INNER = _inner_refs(StrictArray(numpy.zeros(1)))  # only the wrapper holds it
