"""The array type and the graph node it points to.

An ``array`` is a mutable *handle*; the value it holds never changes. When an
operation records a graph, the handle points at an immutable ``Node`` holding
the value, the primitive that made it and its inputs (as nodes, or as raw
values for inputs nobody differentiates). ``a[idx] = v`` or an optimizer step
points the handle at a new value and a new node, so every graph recorded
earlier still sees the old value (docs/architecture.md, invariant 1).
"""

from __future__ import annotations

import weakref

from . import dtypes as _dt
from .backend import ndarray as _ndarray
from .backend import xp

__all__ = ["array", "Node"]


class _State:
    """Process-wide recording switches, read on every operation (one attribute load)."""

    __slots__ = ("enabled", "depth")

    def __init__(self) -> None:
        self.enabled = True  # False inside no_grad()
        self.depth = 0  # active grad/vjp/jvp transforms, so nested backward passes record


STATE = _State()


class GradientDtypeError(TypeError, ValueError):
    """Asked to differentiate with respect to an integer or boolean array (a ``ValueError``
    for bad input, and a ``TypeError`` as it is about the dtype)."""


class Node:
    """An immutable record of how one value was made.

    Attributes:
        value: the backend array (never modified).
        prim: the ``Primitive`` that made it; ``None`` for a leaf.
        args: one entry per input: a ``Node`` for an input being differentiated,
            otherwise the input's raw value (it is a constant to the graph).
        params: keyword parameters of the primitive (axes, shapes, ...) or ``None``.
        owner: for a ``requires_grad`` leaf, a weak reference to the array whose
            ``.grad`` receives its cotangent in ``backward()``.
    """

    __slots__ = ("value", "prim", "args", "params", "owner")

    def __init__(self, value, prim, args, params=None, owner=None) -> None:
        self.value = value
        self.prim = prim
        self.args = args
        self.params = params
        self.owner = owner

    def __repr__(self) -> str:
        name = "leaf" if self.prim is None else self.prim.name
        return f"Node({name}, shape={tuple(self.value.shape)})"


_new = object.__new__


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


def _infer_np_dtype(value):
    """MLX's dtype rules for Python data: float -> float32, int -> int32, bool -> bool."""
    if isinstance(value, _ndarray):
        kind = value.dtype.kind
        if value.dtype == xp.float64:
            return xp.float32
        if kind in "biufc":
            return None
        raise TypeError(f"array: unsupported NumPy dtype {value.dtype}")
    if isinstance(value, xp.generic):
        return xp.float32 if value.dtype == xp.float64 else None
    if isinstance(value, bool):
        return xp.bool_
    if isinstance(value, int):
        return xp.int32 if -(2**31) <= value < 2**31 else xp.int64
    if isinstance(value, float):
        return xp.float32
    if isinstance(value, complex):
        return xp.complex64
    return "infer"


def _convert(value, dtype=None):
    """Build a backend array from Python scalars, nested lists, NumPy arrays or arrays."""
    if type(value) is array:
        data = value._data
        return data if dtype is None else data.astype(_dt.to_np(dtype), copy=False)
    if dtype is not None:
        if isinstance(value, (list, tuple)):
            value = [_as_plain(v, [False]) for v in value]
        return xp.asarray(value, dtype=_dt.to_np(dtype))
    target = _infer_np_dtype(value)
    if target == "infer":
        typed = [False]  # whether the data holds arrays, whose dtypes are kept
        if isinstance(value, (list, tuple)):
            value = [_as_plain(v, typed) for v in value]
        elif hasattr(value, "__array__"):
            typed[0] = True
        try:
            data = xp.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"array: cannot make an array from {type(value).__name__}: {e}"
            ) from None
        kind = data.dtype.kind
        if kind == "f":
            return data.astype(xp.float32) if data.dtype == xp.float64 or not typed[0] else data
        if kind in "iu":
            if typed[0]:
                return data
            small = data.size == 0 or (data.min() >= -(2**31) and data.max() < 2**31)
            return data.astype(xp.int32 if small else xp.int64)
        if kind == "c":
            return data if typed[0] else data.astype(xp.complex64)
        if kind == "b":
            return data
        raise TypeError(f"array: cannot make an array from {type(value).__name__} {value!r:.80}")
    if target is None:
        return xp.array(value)  # copy: the caller's NumPy array may be changed later
    return xp.asarray(value, dtype=target)


def _as_plain(v, typed):
    """Inside a nested list, chainrule arrays become their values (``typed`` notes arrays)."""
    if type(v) is array:
        typed[0] = True
        return v._data
    if isinstance(v, (list, tuple)):
        return [_as_plain(u, typed) for u in v]
    if isinstance(v, (_ndarray, xp.generic)):
        typed[0] = True
    return v


class array:
    """An N-dimensional array that records how it was computed when asked to.

    ``array(value, dtype=None, requires_grad=False)`` follows MLX's conversion rules:
    Python floats and float64 NumPy data become float32, Python ints int32, NumPy
    integers keep their width and bools stay bool.
    """

    __slots__ = ("_data", "_node", "_grad", "__weakref__")
    __array_priority__ = 100  # NumPy defers to our reflected operators

    def __init__(self, value=None, dtype=None, requires_grad: bool = False) -> None:
        if value is None:
            raise TypeError("array: a value is required")
        self._data = _convert(value, dtype)
        self._node = None
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
            raise ValueError(f"item: only arrays of one element convert, shape is {self.shape}")
        return self._data.item()

    def tolist(self):
        """The values as nested Python lists."""
        return self._data.tolist()

    def numpy(self):
        """A NumPy copy of the values (changing it never changes the array)."""
        return xp.array(self._data)

    def __array__(self, dtype=None, copy=None):
        data = self._data
        if not isinstance(data, _ndarray):
            data = xp.asarray(data)
        if dtype is not None and data.dtype != dtype:
            return data.astype(dtype)
        return xp.array(data) if copy else data

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
        data = xp.asarray(self._data)
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
        out = _from_value(xp.array(self._data))
        if self._node is not None and self._node.prim is None:
            out.requires_grad = True
        return out

    def __reduce__(self):
        return (_rebuild, (xp.asarray(self._data),))

    # -- the PyTorch-style tape ------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """True when operations on this array are recorded for differentiation."""
        return self._node is not None

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag:
            if self._data.dtype.kind not in "fc":
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

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it.

        Args:
            gradient: the cotangent; may be omitted for an array of one element.
            retain_graph: accepted for PyTorch code; graphs are always kept.
            create_graph: record the backward pass so the gradients can be differentiated.
        """
        from .autograd import tape_backward

        tape_backward(self, gradient, create_graph)

    def _set_value(self, data, node=None) -> None:
        """Point the handle at a new value (optimizers, ``a[i] = v``).

        A ``requires_grad`` leaf stays a leaf: it gets a fresh leaf node, so graphs recorded
        before keep seeing the previous value.
        """
        old = self._node
        if node is None and old is not None and old.prim is None:
            node = Node(data, None, (), None, old.owner)
        self._data = data
        self._node = node


class _SizeInt(int):
    """An element count that PyTorch code can call: ``a.size()`` or ``a.size(dim)``."""

    def __new__(cls, n: int, shape: tuple):
        self = super().__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim: int | None = None):
        if dim is None:
            return _Size(self._shape)
        return self._shape[dim]


class _Size(tuple):
    """A shape that also answers ``numel()`` (PyTorch's ``torch.Size``)."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


def _to_numpy_tree(t):
    """Arrays inside lists, tuples and dicts become NumPy arrays (for ``__array_function__``)."""
    if type(t) is array:
        return xp.asarray(t._data)
    if type(t) in (list, tuple):
        return type(t)(_to_numpy_tree(v) for v in t)
    if type(t) is dict:
        return {k: _to_numpy_tree(v) for k, v in t.items()}
    return t


def _format_scalar(v, kind: str) -> str:
    """One element as MLX prints it (C++ stream defaults: six significant digits)."""
    if kind == "b":
        return "True" if v else "False"
    if kind in "iu":
        return str(int(v))
    if kind == "c":
        re, im = float(v.real), float(v.imag)
        sign = "-" if im < 0 else "+"
        return f"{re:g}{sign}{abs(im):g}j"
    return f"{float(v):g}"


def _format_values(data) -> str:
    """MLX's layout: ``[1, 2.5, 3]``, rows on new lines, at most 3 + ... + 3 items per axis."""
    kind = data.dtype.kind
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


def _rebuild(data) -> array:
    return _from_value(data)
