"""The array type and the graph node it points to.

An ``array`` is a mutable *handle*; the value it holds never changes. When an
operation records a graph, the handle points at an immutable ``Node`` holding
the value, the primitive that made it and its inputs (as nodes, or as raw
values for inputs nobody differentiates). ``a[idx] = v`` or an optimizer step
points the handle at a new value and a new node, so every graph recorded
earlier still sees the old value (docs/architecture.md, invariant 1).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from . import backend as _backend
from . import dtypes as _dt
from .backend import DEFAULT_XP as _DEFAULT_XP
from .backend import ndarray as _ndarray
from .backend import numpy as _numpy  # NumPy's module: its constructors as mx.compile patches them
from .backend import to_host as _to_host
from .backend import xp

__all__ = ["array", "Node", "PrintOptions", "printoptions", "set_printoptions", "get_printoptions"]


class _State(threading.local):
    """The recording switches, one set per thread, read on every operation.

    Per thread, so that a ``no_grad`` block or a transform in one thread never switches
    recording off (or on) in another (MLX's test_concurrent_transforms).
    """

    def __init__(self) -> None:
        self.enabled = True  # False inside no_grad()
        self.depth = 0  # active grad/vjp/jvp transforms, so nested backward passes record
        self.doors = 0  # inside a chainrule.torch door: nested doors pass straight through


STATE = _State()


class GradientDtypeError(TypeError, ValueError):
    """Asked to differentiate with respect to an integer or boolean array (a ``ValueError``
    for bad input, and a ``TypeError`` as it is about the dtype)."""


class Node:
    """A record of how one value was made (its value never changes; ``mx.eval`` may release
    the record, making it a leaf without an owner: ``core/release.py``).

    Attributes:
        value: the backend array (never modified).
        prim: the ``Primitive`` that made it; ``None`` for a leaf.
        args: one entry per input: a ``Node`` for an input being differentiated,
            otherwise the input's raw value (it is a constant to the graph).
        params: keyword parameters of the primitive (axes, shapes, ...) or ``None``.
        owner: for a ``requires_grad`` leaf, a weak reference to the array whose
            ``.grad`` receives its cotangent in ``backward()``.
        seq: the order of creation (a node's inputs are always older: sorting a graph's
            nodes by it puts each after its inputs, which is all the backward walk needs).
    """

    __slots__ = ("value", "prim", "args", "params", "owner", "seq", "__weakref__")  # weak: hooks

    def __init__(self, value, prim, args, params=None, owner=None) -> None:
        self.value = value
        self.prim = prim
        self.args = args
        self.params = params
        self.owner = owner
        self.seq = _next_seq()

    def __repr__(self) -> str:
        name = "leaf" if self.prim is None else self.prim.name
        return f"Node({name}, shape={tuple(self.value.shape)})"


_new = object.__new__
_next_seq = itertools.count().__next__  # one counter for every thread (atomic under the GIL)


def _from_value(value, node=None) -> array:
    """Wrap a backend value (and optionally its node) in a new handle: the hot constructor."""
    a = _new(array)
    a._data = value
    a._node = node
    a._grad = None
    return a


def _node_array(node: Node) -> array:
    """A handle on a recorded node, so a rule that reads it is itself differentiable."""
    return _from_value(node.value, node)


ORIGINS: dict[int, tuple] = {}
"""``id(value) -> (weak ref to value, node)``: for results that record no node (``argmax``,
``categorical``) computed from a recorded input, the input's node, so that ``mx.eval`` of a
sampled token releases the graph the token was read from, as MLX's evaluation does (the token
is often all a generation loop evaluates, and the logits it came from are gone by then). The
node is held while the value lives: as long as an unevaluated lazy array holds its graph in
MLX; ``mx.eval`` of the value, or dropping it, lets the graph go."""


def note_origin(value, node: Node) -> None:
    """Remember that the unrecorded ``value`` was computed from ``node``'s graph."""
    key = id(value)

    def gone(ref, key=key) -> None:
        got = ORIGINS.get(key)
        if got is not None and got[0] is ref:
            del ORIGINS[key]

    try:
        ORIGINS[key] = (weakref.ref(value, gone), node)
    except TypeError:  # a value without weak references (a NumPy scalar): nothing to note
        pass


def origin_of(value) -> Node | None:
    """The node ``note_origin`` recorded for ``value``, if any (and forget it)."""
    got = ORIGINS.get(id(value))
    if got is None or got[0]() is not value:
        return None
    ORIGINS.pop(id(value), None)
    return got[1]


class ConversionError(TypeError, ValueError):
    """A value that cannot become an array (a string, ``None``, an unsupported NumPy dtype):
    MLX's ``ValueError``, and a ``TypeError`` as it is about the value's type."""


_F64, _C128 = xp.dtype(xp.float64), xp.dtype(xp.complex128)
_F32, _C64 = xp.dtype(xp.float32), xp.dtype(xp.complex64)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_SCALARS = (bool, int, float, complex)
_NON_UNIFORM = "Initialization encountered non-uniform length."


def _default_of(np_dtype):
    """The dtype an array of ``np_dtype`` becomes (float64 -> float32, complex128 -> complex64).

    Raises:
        ConversionError: for a dtype MLX has no counterpart of (strings, objects, dates).
    """
    if np_dtype == _F64:
        return _F32
    if np_dtype == _C128:
        return _C64
    d = _dt._BY_NP.get(np_dtype)
    if d is None:
        if not np_dtype.isnative:
            return _default_of(np_dtype.newbyteorder("="))
        raise ConversionError(f"array: cannot convert a NumPy array of dtype {np_dtype}")
    return d.np


def _cast(data, target):
    """``data`` as ``target`` (complex to real keeps the real part, as MLX's ``astype``)."""
    if data.dtype == target:
        return data
    if data.dtype.kind == "c" and _dt.kind(target) != "c":
        data = data.real
    return data.astype(target)


_DEFAULT_OF = {d.np: (_F32 if d.np == _F64 else _C64 if d.np == _C128 else d.np) for d in _dt.ALL}
"""Each supported NumPy dtype and the dtype arrays of it become (``_default_of``'s fast path)."""


def _from_ndarray(nd, dtype=None):
    """A copy of a NumPy array under MLX's rules (float64 becomes float32 unless asked)."""
    if not 0 < nd.size <= _INT32_MAX:  # a dimension past int32 makes a large (or empty) array
        for d in nd.shape:
            _dt.check_dim(d)
    if dtype is None:
        target = _DEFAULT_OF.get(nd.dtype)
        if target is None:
            target = _default_of(nd.dtype)
    else:
        target = _dt.to_np(dtype)
    if nd.dtype == target:  # copy: the caller's array may be changed later
        return _numpy.array(nd) if type(nd) is _ndarray or not _backend.is_gpu(nd) else nd.copy()
    return _cast(nd, target)


def _int_dtype(v: int):
    return xp.int32 if _INT32_MIN <= v <= _INT32_MAX else xp.int64


def _from_scalar(v, dtype):
    """A Python scalar as MLX makes it: int32 (int64 past int32), float32, bool, complex64.

    A float becomes float64 exactly when asked for float64; with any other dtype it goes
    through float32 (MLX's rounding). An int given a dtype wraps into it (C's cast).
    """
    if isinstance(v, bool):
        return _numpy.asarray(v, dtype=xp.bool_ if dtype is None else _dt.to_np(dtype))
    if isinstance(v, int):
        if dtype is None:
            return _numpy.asarray(v, dtype=_int_dtype(v))
        target = _dt.to_np(dtype)
        if 0 <= v <= 2**64 - 1 and v > 2**63 - 1:
            return xp.asarray(v, dtype=xp.uint64).astype(target)
        return xp.asarray(v, dtype=xp.int64).astype(target)
    if isinstance(v, float):
        if dtype is None:
            return _numpy.asarray(v, dtype=_F32)
        target = _dt.to_np(dtype)
        if target == _F64:
            return xp.asarray(v, dtype=_F64)
        return _cast(xp.asarray(v, dtype=_C64 if _dt.kind(target) == "c" else _F32), target)
    out = xp.asarray(v, dtype=_C64)  # complex
    return out if dtype is None else _cast(out, _dt.to_np(dtype))


def _scan(seq) -> int:
    """What a nested list holds: 0 Python scalars only, 1 NumPy data too, 2 arrays too."""
    found = 0
    for v in seq:
        t = type(v)
        if t is float or t is int or t is bool or t is complex:
            continue
        if t is list or t is tuple:
            f = _scan(v)
        elif t is array or isinstance(v, array):
            return 2
        elif isinstance(v, (_ndarray, xp.generic)):
            f = 1
        else:
            continue  # a type error, reported with the element's type by the conversion
        if f > found:
            if f == 2:
                return 2
            found = f
    return found


def _bad_element(seq):
    """The first element of a nested list that is no Python scalar, list, tuple or array."""
    for v in seq:
        if isinstance(v, (list, tuple)):
            bad = _bad_element(v)
            if bad is not None:
                return bad
        elif not isinstance(v, (*_SCALARS, array, _ndarray, xp.generic)):
            return v
    return None


def _from_list(seq, dtype):
    """A nested list or tuple of scalars (and NumPy data) under MLX's inference rules.

    Python data: bool < int < float < complex decides the type (int32, or int64 when an int
    does not fit; float32; complex64); an empty list is float32. NumPy arrays inside keep
    their dtypes (float64 still becomes float32).
    """
    kind_of_data = _scan(seq)
    for d in _dt_shape_of(seq):
        _dt.check_dim(d)
    try:
        data = xp.asarray(seq)
    except (ValueError, TypeError) as e:
        bad = _bad_element(seq)
        if bad is not None:
            raise ConversionError(
                f"Invalid type {type(bad).__module__}.{type(bad).__qualname__} received in "
                "array initialization."
            ) from None
        raise ValueError(_NON_UNIFORM) from e
    kind = data.dtype.kind
    if kind not in "biufc":
        bad = _bad_element(seq)
        name = type(bad).__qualname__ if bad is not None else str(data.dtype)
        raise ConversionError(f"Invalid type {name} received in array initialization.")
    if dtype is not None:
        target = _dt.to_np(dtype)
        if kind == "f" and target != _F64 and _dt.kind(target) != "c":
            data = data.astype(_F32)  # MLX reads Python floats as float32 first
        return _cast(data, target)
    if kind_of_data == 1:
        return _cast(data, _default_of(data.dtype))
    if kind == "f":
        return data.astype(_F32)
    if kind in "iu":
        if data.size == 0:
            return data.astype(xp.int32)
        small = data.min() >= _INT32_MIN and data.max() <= _INT32_MAX
        return data.astype(xp.int32 if small else xp.int64)
    if kind == "c":
        return data.astype(_C64)
    return data


def _dt_shape_of(seq) -> list:
    """The shape a nested list claims along its first elements (for the int32 check)."""
    shape = []
    while isinstance(seq, (list, tuple)):
        shape.append(len(seq))
        if not seq:
            break
        seq = seq[0]
    return shape


def _shape_of(v) -> tuple:
    if type(v) is array:
        return v._data.shape
    if isinstance(v, (list, tuple)):
        inner = {_shape_of(u) for u in v}
        if len(inner) > 1:
            raise ValueError(_NON_UNIFORM)
        return (len(v),) + (inner.pop() if inner else ())
    return xp.shape(v)


def _stack_with_arrays(seq, dtype) -> array:
    """A nested list holding arrays: each element converted, then stacked (MLX: the graph is
    kept, so ``mx.array([x, y])`` is differentiable in ``x``; dtypes promote as MLX's)."""
    from .ops import astype, stack

    _shape_of(seq)  # uniform lengths, else MLX's error
    parts = []
    for v in seq:
        if type(v) is array:
            parts.append(v if dtype is None else astype(v, dtype))
        elif isinstance(v, (list, tuple)) and _scan(v) == 2:
            parts.append(_stack_with_arrays(v, dtype))
        else:
            parts.append(_from_value(_convert(v, dtype)))
    t = parts[0]._data.dtype
    for p in parts[1:]:
        t = _dt.promote(t, p._data.dtype)
    if _backend.GPU[0] is not None:  # host data next to GPU arrays: copied to the GPU
        gpu = next((p._data for p in parts if _backend.is_gpu(p._data)), None)
        if gpu is not None:
            parts = [p if _backend.is_gpu(p._data) else _from_value(_backend.to_gpu(p._data))
                     if p._node is None else p for p in parts]  # fmt: skip
    return stack([p if p._data.dtype == t else astype(p, _dt.from_np(t)) for p in parts])


def _torch_bfloat16(value):
    """A PyTorch bfloat16 tensor's values (NumPy's DLPack import does not know the type)."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(value, "dtype", None) is not torch.bfloat16:
        return None
    bits = xp.from_dlpack(value.detach().cpu().view(torch.int16))
    return bits.view(_dt.BFLOAT16_NP)


def _from_dlpack_object(value, copy=None):
    """A NumPy view of an object exporting DLPack (PyTorch, JAX, ...), or None if it cannot."""
    bf = _torch_bfloat16(value)
    if bf is not None:
        return bf
    detach = getattr(value, "detach", None)  # PyTorch refuses to export a tensor needing grad
    if detach is not None and getattr(value, "requires_grad", False):
        value = detach()
    try:
        return xp.from_dlpack(value)
    except (BufferError, RuntimeError, TypeError, ValueError) as e:
        raise ConversionError(f"array: cannot import {type(value).__name__}: {e}") from None


def _convert_node(value, dtype=None):
    """``value`` as a backend array, and the node to keep (a list of arrays keeps its graph)."""
    t = type(value)
    if t is array or (t is not _ndarray and isinstance(value, array)):
        data = value._data
        if dtype is None:
            return data, value._node
        target = _dt.to_np(dtype)
        if data.dtype == target:
            return data, value._node
        from .ops import astype

        out = astype(value, dtype)
        return out._data, out._node
    if t is _ndarray:
        data = _from_ndarray(value, dtype)
        if _DEFAULT_XP[0] is not xp and data.ndim:  # on the default device, as MLX's arrays
            data = _backend.to_gpu(data)
        return data, None
    if t is float and dtype is None:
        return _numpy.asarray(value, dtype=_F32), None
    if (t is list or t is tuple) and value and _scan(value) == 2:
        out = _stack_with_arrays(value, dtype)
        return out._data, out._node
    data = _convert(value, dtype)
    if _DEFAULT_XP[0] is not xp and type(data) is _ndarray and data.ndim:
        data = _backend.to_gpu(data)  # host data in an operation: on the default device (MLX)
    return data, None


def _convert(value, dtype=None):
    """Build a backend array from Python scalars, nested lists, NumPy arrays, buffers, DLPack
    exporters or arrays, with MLX's dtype rules (``mx.array``)."""
    t = type(value)
    if t is array or (t is not _ndarray and isinstance(value, array)):
        data = value._data
        return data if dtype is None else _cast(data, _dt.to_np(dtype))
    if t is list or t is tuple:
        if value and _scan(value) == 2:
            return _stack_with_arrays(value, dtype)._data
        return _from_list(value, dtype)
    if t in _SCALARS:
        return _from_scalar(value, dtype)
    if isinstance(value, _ndarray):
        return _from_ndarray(value, dtype)
    if isinstance(value, _SCALARS):  # np.float64 and np.complex128 are Python scalars too
        return _from_scalar(value, dtype)
    if isinstance(value, xp.generic):
        return _from_ndarray(xp.asarray(value), dtype)
    if isinstance(value, array):
        return _convert(_from_value(value._data), dtype)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_ndarray(xp.asarray(memoryview(value)), dtype)
    if _backend.is_gpu(value):  # a CuPy array: stays on the GPU, under MLX's dtype rules
        return _from_ndarray(value, dtype)
    mlx_array = getattr(value, "__mlx_array__", None)
    if mlx_array is not None:
        return _convert(mlx_array(), dtype)
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        return _from_ndarray(_from_dlpack_object(value), dtype)
    if hasattr(value, "__array__") or hasattr(value, "__array_interface__"):
        return _from_ndarray(xp.asarray(value), dtype)
    raise ConversionError(
        f"Invalid type {t.__module__}.{t.__qualname__} received in array initialization."
    )


_DLPACK_CPU = 1


class _Owner:
    """Lends an array's buffer to NumPy: the view NumPy makes keeps the owner, which keeps the
    array, alive (``np.array(a, copy=False)``; MLX's views count as references too)."""

    __slots__ = ("array", "__array_interface__")

    def __init__(self, a, data) -> None:
        self.array = a
        self.__array_interface__ = data.__array_interface__


def _owned_view(a, data):
    if data.dtype == _dt.BFLOAT16_NP:
        return data.view()
    view = xp.asarray(_Owner(a, data))
    if not data.flags.writeable:
        view.flags.writeable = False
    return view


class array:
    """An N-dimensional array that records how it was computed when asked to.

    ``array(value, dtype=None, requires_grad=False)`` follows MLX's conversion rules:
    Python floats and float64 NumPy data become float32, Python ints int32, NumPy
    integers keep their width and bools stay bool.
    """

    __slots__ = ("_data", "_node", "_grad", "__weakref__")
    __array_priority__ = 100  # NumPy defers to our reflected operators
    wrapping_int_scalars = False
    """How a Python int meets an array in ``a + 1``: MLX's rule (``False``: a boolean array
    becomes int32, an int that does not fit a narrow integer dtype raises) or PyTorch's
    (``True``, set by ``chainrule.torch.Tensor``: int64, and the int wraps to the dtype)."""

    if TYPE_CHECKING:
        # The operators and most methods are installed at import time, from the op table
        # (ops/methods.py) and for PyTorch's methods (tensor_methods.py); a type checker sees
        # them as these declarations.
        def __getattr__(self, name: str) -> Any: ...
        def __getitem__(self, key: Any) -> array: ...
        def __setitem__(self, key: Any, value: Any) -> None: ...
        def __neg__(self) -> array: ...
        def __pos__(self) -> array: ...
        def __abs__(self) -> array: ...
        def __invert__(self) -> array: ...
        def __eq__(self, other: Any) -> array: ...  # type: ignore[override]
        def __ne__(self, other: Any) -> array: ...  # type: ignore[override]
        def __lt__(self, other: Any) -> array: ...
        def __le__(self, other: Any) -> array: ...
        def __gt__(self, other: Any) -> array: ...
        def __ge__(self, other: Any) -> array: ...
        def __add__(self, other: Any) -> array: ...
        def __radd__(self, other: Any) -> array: ...
        def __iadd__(self, other: Any) -> array: ...
        def __sub__(self, other: Any) -> array: ...
        def __rsub__(self, other: Any) -> array: ...
        def __isub__(self, other: Any) -> array: ...
        def __mul__(self, other: Any) -> array: ...
        def __rmul__(self, other: Any) -> array: ...
        def __imul__(self, other: Any) -> array: ...
        def __truediv__(self, other: Any) -> array: ...
        def __rtruediv__(self, other: Any) -> array: ...
        def __itruediv__(self, other: Any) -> array: ...
        def __floordiv__(self, other: Any) -> array: ...
        def __rfloordiv__(self, other: Any) -> array: ...
        def __ifloordiv__(self, other: Any) -> array: ...
        def __mod__(self, other: Any) -> array: ...
        def __rmod__(self, other: Any) -> array: ...
        def __imod__(self, other: Any) -> array: ...
        def __pow__(self, other: Any) -> array: ...
        def __rpow__(self, other: Any) -> array: ...
        def __ipow__(self, other: Any) -> array: ...
        def __matmul__(self, other: Any) -> array: ...
        def __rmatmul__(self, other: Any) -> array: ...
        def __imatmul__(self, other: Any) -> array: ...
        def __and__(self, other: Any) -> array: ...
        def __rand__(self, other: Any) -> array: ...
        def __iand__(self, other: Any) -> array: ...
        def __or__(self, other: Any) -> array: ...
        def __ror__(self, other: Any) -> array: ...
        def __ior__(self, other: Any) -> array: ...
        def __xor__(self, other: Any) -> array: ...
        def __rxor__(self, other: Any) -> array: ...
        def __ixor__(self, other: Any) -> array: ...
        def __lshift__(self, other: Any) -> array: ...
        def __rlshift__(self, other: Any) -> array: ...
        def __ilshift__(self, other: Any) -> array: ...
        def __rshift__(self, other: Any) -> array: ...
        def __rrshift__(self, other: Any) -> array: ...
        def __irshift__(self, other: Any) -> array: ...

    def __init__(self, value=None, dtype=None, requires_grad: bool = False) -> None:
        if value is None:
            raise ConversionError("array: a value is required, not None")
        self._data, self._node = _convert_node(value, dtype)
        if _DEFAULT_XP[0] is not xp and self._node is None:  # the GPU is the default device
            self._data = _backend.to_gpu(self._data)
        self._grad = None
        if requires_grad:
            self.requires_grad = True

    # -- basic attributes ----------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The array's shape as a tuple of ints."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    @property
    def dtype(self) -> _dt.Dtype:
        """The element type (``mx.float32``, ...)."""
        return _dt.from_np(self._data.dtype)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes used by the data."""
        return self._data.nbytes

    @property
    def size(self) -> _SizeInt:
        """Number of elements (MLX), also callable as PyTorch's ``size(dim=None)``.

        ``a.size`` is an ``int``; ``a.size()`` returns the shape and ``a.size(0)`` one dimension.
        """
        return _SizeInt(self._data.size, self._data.shape)

    def numel(self) -> int:
        """Number of elements (PyTorch)."""
        return int(self._data.size)

    def dim(self) -> int:
        """Number of dimensions (PyTorch)."""
        return self._data.ndim

    # -- conversion ------------------------------------------------------------------------
    def item(self):
        """The single element as a Python scalar."""
        if self._data.size != 1:
            raise ValueError(
                f"item: only arrays of one element convert to Python scalars, shape is {self.shape}"
            )
        return self._data.item()

    def tolist(self):
        """The values as nested Python lists (copied from the device)."""
        return self._data.tolist()

    def numpy(self):
        """A NumPy copy of the values (changing it never changes the array); an array on the
        GPU is copied to the host."""
        data = self._data
        if type(data) is _ndarray:
            return xp.array(data)
        return xp.array(_to_host(data))

    def __array__(self, dtype=None, copy=None):
        """The values for NumPy: the array's own buffer, a copy (``copy=True``), or with
        ``copy=False`` a view that keeps this array alive (MLX's zero-copy conversion). An array
        on the GPU is copied to the host explicitly (``copy=False`` cannot be honoured then)."""
        data = self._data
        if not isinstance(data, _ndarray):
            if copy is False and _backend.is_gpu(data):
                raise ValueError("__array__: an array on the GPU cannot be viewed without a copy")
            data = _to_host(data) if _backend.is_gpu(data) else xp.asarray(data)
        if dtype is not None and data.dtype != dtype:
            if copy is False:
                raise ValueError(
                    f"__array__: cannot convert {self.dtype} to {dtype} without a copy"
                )
            return data.astype(dtype)
        if copy:
            return xp.array(data)
        if copy is False:
            return _owned_view(self, data)
        return data

    def __array_namespace__(self, api_version: str | None = None):
        """The module with the array API functions (``chainrule.core``, as MLX's)."""
        if api_version is not None:
            raise ValueError("__array_namespace__: choosing an api_version is not implemented")
        return sys.modules[__package__]

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export the values through DLPack (``np.from_dlpack(a)``, ``torch.from_dlpack(a)``).

        bfloat16 has no DLPack export here (NumPy, which makes the capsule, lacks the type).
        """
        if dl_device is not None and tuple(dl_device)[0] != _DLPACK_CPU:
            raise BufferError(
                f"__dlpack__: only the CPU device (1, 0) is available, not {dl_device}"
            )
        data = self._data
        if data.dtype == _dt.BFLOAT16_NP:
            raise BufferError("__dlpack__: bfloat16 arrays cannot be exported through DLPack")
        if not isinstance(data, _ndarray):
            data = _to_host(data)
        if not data.flags.writeable:  # DLPack before 1.0 cannot say read-only
            data = xp.array(data)
        kwargs = {"max_version": max_version} if max_version is not None else {}
        if copy:
            data = xp.array(data)
        return data.__dlpack__(stream=stream, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """The DLPack device: ``(1, 0)``, the CPU (Metal's would be 8)."""
        return (_DLPACK_CPU, 0)

    def __bytes__(self) -> bytes:
        return self._data.tobytes()

    def __complex__(self) -> complex:
        return complex(self.item())

    def __array_function__(self, func, types, args, kwargs):
        # NumPy functions (np.mean, np.concatenate, ...) compute on the values and return NumPy
        # results, instead of calling our methods with NumPy-only keywords (dtype=, out=)
        return func(*_to_numpy_tree(args), **_to_numpy_tree(kwargs))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub":
            raise TypeError(f"only integer arrays can be used as an index, not {self.dtype}")
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of an array of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self._data)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d array")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        for i in range(self._data.shape[0]):
            yield self[i]

    def __repr__(self) -> str:
        data = _to_host(self._data)
        name = _dt.from_np(data.dtype).name
        body = _format_values(data)
        extra = ", requires_grad=True" if self._node is not None and self._node.prim is None else ""
        return f"array({body}, dtype={name}{extra})"

    __str__ = __repr__  # MLX prints arrays the same way in both

    def __hash__(self) -> int:
        return id(self)

    def __copy__(self) -> array:
        return _from_value(self._data)

    def __deepcopy__(self, memo) -> array:
        d = self._data
        out = _from_value(d.copy() if _backend.is_gpu(d) else xp.array(d))
        if self._node is not None and self._node.prim is None:
            out.requires_grad = True
        return out

    def __reduce__(self):
        d = self._data
        if type(d) is _ndarray:
            return (_rebuild, (d,))
        return (_rebuild, (_to_host(d), "gpu"))  # pickles hold host values and the device

    # -- the PyTorch-style tape ------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """True when operations on this array are recorded for differentiation."""
        return self._node is not None

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag:
            if self._data.dtype.kind not in "fc" and _dt.kind(self._data.dtype) != "f":
                raise GradientDtypeError(
                    f"requires_grad: only floating-point arrays can require gradients, "
                    f"not {self.dtype.name}; cast it to a float dtype first, for example "
                    "x.astype(mx.float32)"
                )
            if self._node is None:
                self._node = Node(self._data, None, (), None, weakref.ref(self))
        elif self._node is not None:
            if self._node.prim is not None:
                raise RuntimeError(
                    "requires_grad: only leaves can stop requiring gradients; use .detach()"
                )
            self._node = None

    def requires_grad_(self, flag: bool = True) -> array:
        """Set ``requires_grad`` in place and return the array (PyTorch)."""
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self) -> bool:
        """True for arrays not produced by a recorded operation."""
        return self._node is None or self._node.prim is None

    @property
    def grad(self):
        """The accumulated gradient written by ``backward()``, or ``None``."""
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None and type(value) is not array:
            value = array(value, dtype=self.dtype)
        if value is not None and value.shape != self.shape:
            raise ValueError(
                f"grad: assigned gradient of shape {value.shape} to an array of shape {self.shape}"
            )
        self._grad = value

    @property
    def grad_fn(self):
        """The node that made this array (``None`` for leaves and constants)."""
        node = self._node
        return None if node is None or node.prim is None else node

    def detach(self) -> array:
        """The same values, cut off from any graph."""
        return _from_value(self._data)

    def backward(
        self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        Args:
            gradient: the cotangent; may be omitted for an array of one element.
            retain_graph: accepted for PyTorch code; graphs are always kept.
            create_graph: record the backward pass so the gradients can be differentiated.
            inputs: accumulate only into these tensors' ``.grad`` (PyTorch's ``inputs=``).
        """
        from .autograd import tape_backward

        tape_backward(self, gradient, create_graph, inputs)

    def _set_value(self, data, node=None) -> None:
        """Point the handle at a new value (optimizers, ``a[i] = v``).

        A ``requires_grad`` leaf stays a leaf: it gets a fresh leaf node, so graphs recorded
        before keep seeing the previous value. A handle linked to others by ``x.data``
        (PyTorch's shared storage, ``DATA_LINKS``) passes the new value on to them.
        """
        old = self._node
        if node is None and old is not None and old.prim is None:
            node = Node(data, None, (), None, old.owner)
        self._data = data
        self._node = node
        if DATA_LINKS.links:
            DATA_LINKS.share(self, data)


class _DataLinks:
    """Handles that share one value as PyTorch's ``x.data`` shares storage with ``x``.

    ``link(view, owner)`` pairs them (weakly, by identity); when either is given a new value
    in place (``p.data.add_(1)``, ``p.data.zero_()``, an optimizer's step on ``p``), the other
    gets it too, without a graph. Empty unless PyTorch code reads ``.data``; then
    ``_set_value`` pays one dictionary lookup.
    """

    def __init__(self) -> None:
        self.links: dict[int, list] = {}

    def link(self, view: array, owner: array) -> None:
        """Make ``view`` and ``owner`` share their value from now on."""
        for a, b in ((view, owner), (owner, view)):
            key = id(a)
            entry = self.links.get(key)
            if entry is None or entry[0]() is not a:
                entry = [weakref.ref(a, self._forget(key))]
                self.links[key] = entry
            entry.append(weakref.ref(b))

    def _forget(self, key: int):
        def gone(_ref) -> None:
            self.links.pop(key, None)

        return gone

    def share(self, handle: array, data) -> None:
        """Give ``data`` to every live handle linked to ``handle``."""
        entry = self.links.get(id(handle))
        if entry is None or entry[0]() is not handle:
            return
        for ref in entry[1:]:
            other = ref()
            if other is not None and other._data is not data:
                node = other._node
                if node is not None and node.prim is None:  # a leaf stays a leaf
                    other._node = Node(data, None, (), None, node.owner)
                other._data = data  # a recorded value keeps its graph, as in PyTorch


DATA_LINKS = _DataLinks()


class _SizeInt(int):
    """An element count that PyTorch code can call: ``a.size()`` or ``a.size(dim)``."""

    _shape: tuple

    def __new__(cls, n: int, shape: tuple):
        self = super().__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim: int | None = None):
        if dim is None:
            return _Size(self._shape)
        return self._shape[dim]


class _Size(tuple):
    """A shape that also answers ``numel()`` (PyTorch's ``torch.Size``, printed as PyTorch
    prints it: ``torch.Size([2, 3])``)."""

    def __repr__(self) -> str:
        return f"torch.Size({list(self)!r})"

    __str__ = __repr__

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


def _to_numpy_tree(t):
    """Arrays inside lists, tuples and dicts become NumPy arrays (for ``__array_function__``)."""
    if type(t) is array:
        return _to_host(t._data)
    if type(t) in (list, tuple):
        return type(t)(_to_numpy_tree(v) for v in t)
    if type(t) is dict:
        return {k: _to_numpy_tree(v) for k, v in t.items()}
    return t


class PrintOptions:
    """How arrays print: ``precision`` digits after the point (fixed notation), or -1 for
    C++'s default of six significant digits (MLX's ``mx.PrintOptions``)."""

    __slots__ = ("precision",)

    def __init__(self, precision: int = -1) -> None:
        self.precision = int(precision)

    def __repr__(self) -> str:
        return f"PrintOptions(precision={self.precision})"


_PRINT = PrintOptions()


def set_printoptions(precision: int = -1) -> None:
    """Set how many digits after the point arrays print with (-1: six significant digits)."""
    _PRINT.precision = int(precision)


def get_printoptions() -> PrintOptions:
    """The print options in force (a copy)."""
    return PrintOptions(_PRINT.precision)


@contextlib.contextmanager
def printoptions(precision: int = -1):
    """Print with ``precision`` digits after the point inside a ``with`` block."""
    old = _PRINT.precision
    _PRINT.precision = int(precision)
    try:
        yield get_printoptions()
    finally:
        _PRINT.precision = old


def _format_float(x: float, p: int) -> str:
    return f"{x:g}" if p < 0 else f"{x:.{p}f}"


def _format_scalar(v, kind: str) -> str:
    """One element as MLX prints it (C++ stream defaults: six significant digits)."""
    if kind == "b":
        return "True" if v else "False"
    if kind in "iu":
        return str(int(v))
    p = _PRINT.precision
    if kind == "c":
        re, im = float(v.real), float(v.imag)
        sign = "-" if im < 0 else "+"
        return f"{_format_float(re, p)}{sign}{_format_float(abs(im), p)}j"
    return _format_float(float(v), p)


def _format_values(data) -> str:
    """MLX's layout: ``[1, 2.5, 3]``, rows on new lines, at most 3 + ... + 3 items per axis."""
    kind = _dt.kind(data.dtype)
    if data.ndim == 0:
        return _format_scalar(data[()], kind)

    def block(sub, dim: int) -> str:
        n = sub.shape[0]
        last = sub.ndim == 1
        sep = ", " if last else ",\n" + " " * (7 + dim)
        idx = list(range(n)) if n <= 6 else [0, 1, 2, None, n - 3, n - 2, n - 1]
        items = []
        for i in idx:
            if i is None:
                items.append("...")
            elif last:
                items.append(_format_scalar(sub[i], kind))
            else:
                items.append(block(sub[i], dim + 1))
        return "[" + sep.join(items) + "]"

    return block(data, 0)


def _rebuild(data, kind: str = "cpu") -> array:
    if kind == "gpu" and _backend.gpu() is not None:  # back on the GPU where there is one
        data = _backend.to_gpu(data)
    return _from_value(data)
