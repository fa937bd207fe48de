"""Data types with MLX's names, sizes and promotion rules."""

from __future__ import annotations

from .backend import xp


class Dtype:
    """An array element type, such as ``mx.float32``.

    Attributes:
        name: the MLX name (``"float32"``).
        size: bytes per element.
        np: the backend dtype it maps to.
    """

    __slots__ = ("name", "size", "np", "kind")

    def __init__(self, name: str, np_dtype) -> None:
        self.name = name
        self.np = xp.dtype(np_dtype)
        self.size = self.np.itemsize
        self.kind = self.np.kind

    def __repr__(self) -> str:
        return f"chainrule.core.{self.name}"

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = Dtype("bool", xp.bool_)
int8 = Dtype("int8", xp.int8)
int16 = Dtype("int16", xp.int16)
int32 = Dtype("int32", xp.int32)
int64 = Dtype("int64", xp.int64)
uint8 = Dtype("uint8", xp.uint8)
uint16 = Dtype("uint16", xp.uint16)
uint32 = Dtype("uint32", xp.uint32)
uint64 = Dtype("uint64", xp.uint64)
float16 = Dtype("float16", xp.float16)
float32 = Dtype("float32", xp.float32)
float64 = Dtype("float64", xp.float64)
complex64 = Dtype("complex64", xp.complex64)
complex128 = Dtype("complex128", xp.complex128)
# MLX has bfloat16; NumPy does not, so it is an alias of float32 (docs/architecture.md says so).
bfloat16 = float32

ALL = (
    bool_,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
    float16,
    float32,
    float64,
    complex64,
    complex128,
)
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME["bool_"] = bool_


def from_name(name: str) -> Dtype:
    """Return the dtype called ``name`` (``"float32"``)."""
    return _BY_NAME[name]


def from_np(np_dtype) -> Dtype:
    """Return the chainrule dtype of a backend dtype."""
    d = _BY_NP.get(np_dtype)
    if d is None:
        d = _BY_NP.get(xp.dtype(np_dtype))
        if d is None:
            raise TypeError(f"unsupported dtype {np_dtype}")
    return d


def to_np(dtype):
    """Map a chainrule dtype, a NumPy dtype, a name or a Python type to a backend dtype.

    Python ``int`` and ``float`` follow MLX (int32 and float32), as do ``"int"``/``"float"``.
    """
    if type(dtype) is Dtype:
        return dtype.np
    if dtype is float:
        return xp.dtype(xp.float32)
    if dtype is int:
        return xp.dtype(xp.int32)
    if dtype is bool:
        return xp.dtype(xp.bool_)
    if dtype is complex:
        return xp.dtype(xp.complex64)
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype].np
    try:
        return xp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a data type") from None


class DtypeCategory:
    """MLX's abstract dtype categories, for ``mx.issubdtype``."""

    __slots__ = ("name", "kinds")

    def __init__(self, name: str, kinds: str) -> None:
        self.name = name
        self.kinds = kinds

    def __repr__(self) -> str:
        return f"chainrule.core.{self.name}"


number = DtypeCategory("number", "biufc")
integer = DtypeCategory("integer", "iu")
signedinteger = DtypeCategory("signedinteger", "i")
unsignedinteger = DtypeCategory("unsignedinteger", "u")
floating = DtypeCategory("floating", "f")
inexact = DtypeCategory("inexact", "fc")
complexfloating = DtypeCategory("complexfloating", "c")
generic = DtypeCategory("generic", "biufc")


def issubdtype(a, b) -> bool:
    """True when dtype ``a`` belongs to dtype or category ``b`` (``mx.issubdtype``)."""
    if isinstance(a, DtypeCategory):
        return isinstance(b, DtypeCategory) and set(a.kinds) <= set(b.kinds)
    a_np = to_np(a)
    if isinstance(b, DtypeCategory):
        return a_np.kind in b.kinds
    return a_np == to_np(b)


def promote(a, b):
    """MLX's promotion of two backend dtypes: an integer meeting a float takes the float's type."""
    if a is b:
        return a
    ka, kb = a.kind, b.kind
    if ka in "fc" and kb in "biu":
        return a
    if kb in "fc" and ka in "biu":
        return b
    return xp.promote_types(a, b)


class finfo:
    """Machine limits of a floating dtype (``mx.finfo``)."""

    def __init__(self, dtype) -> None:
        info = xp.finfo(to_np(dtype))
        self.dtype = from_np(info.dtype)
        self.min = float(info.min)
        self.max = float(info.max)
        self.eps = float(info.eps)
        self.tiny = float(info.tiny)
        self.smallest_normal = float(info.smallest_normal)
        self.bits = int(info.bits)

    def __repr__(self) -> str:
        return f"finfo(min={self.min}, max={self.max}, dtype={self.dtype.name})"


class iinfo:
    """Machine limits of an integer dtype (``mx.iinfo``)."""

    def __init__(self, dtype) -> None:
        info = xp.iinfo(to_np(dtype))
        self.dtype = from_np(xp.dtype(info.dtype))
        self.min = int(info.min)
        self.max = int(info.max)
        self.bits = int(info.bits)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype.name})"
