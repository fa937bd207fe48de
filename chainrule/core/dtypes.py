"""Data types with MLX's names, sizes and promotion rules.

Every MLX dtype is a real backend dtype: ``bfloat16`` is ``ml_dtypes.bfloat16`` (NumPy
computes on it through ml_dtypes' loops, in float32 rounded to bfloat16), ``float16`` is
NumPy's. ``complex128`` is chainrule's own addition (MLX has none); nothing makes it unless
asked. Promotion between two dtypes follows MLX's table (JAX's lattice: an unsigned 64-bit
integer meeting a signed one gives float32, any integer meeting a float takes the float,
float16 meeting bfloat16 gives float32), not NumPy's; float64 meeting complex64 gives
complex128, where MLX (without complex128) gives complex64.
"""

from __future__ import annotations

from typing import Any

from .backend import BFLOAT16 as _BF16_NP
from .backend import xp


class Dtype:
    """An array element type, such as ``mx.float32``.

    Attributes:
        name: the MLX name (``"float32"``).
        size: bytes per element.
        np: the backend dtype it maps to.
        kind: NumPy's kind letter (``"f"`` for every floating type, bfloat16 included).
        category: the ``DtypeCategory`` it belongs to (``mx.floating``, ...).
    """

    __slots__ = ("name", "size", "np", "kind", "category")

    def __init__(self, name: str, np_dtype, kind: str | None = None) -> None:
        self.name = name
        self.np = xp.dtype(np_dtype)
        self.size = self.np.itemsize
        self.kind = kind or self.np.kind
        self.category: Any = None  # set below, once the categories exist

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
bfloat16 = Dtype("bfloat16", _BF16_NP, kind="f")
complex64 = Dtype("complex64", xp.complex64)
complex128 = Dtype("complex128", xp.complex128)

ALL = (
    bool_,
    uint8,
    uint16,
    uint32,
    uint64,
    int8,
    int16,
    int32,
    int64,
    float16,
    float32,
    float64,
    bfloat16,
    complex64,
    complex128,
)
"""Every dtype, in MLX's order (``complex128``, chainrule's own, last)."""

_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME["bool_"] = bool_

BFLOAT16_NP = _BF16_NP
"""The backend dtype of ``bfloat16`` (``ml_dtypes.bfloat16``)."""


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
    if isinstance(dtype, DtypeCategory):
        raise TypeError(f"{dtype!r} is a category of dtypes, not a dtype")
    try:
        return xp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not a data type") from None


def kind(np_dtype) -> str:
    """The kind letter of a backend dtype, with ``"f"`` for bfloat16 (NumPy says ``"V"``)."""
    return "f" if np_dtype == _BF16_NP else np_dtype.kind


# -- categories --------------------------------------------------------------------------------


class DtypeCategory:
    """MLX's abstract dtype categories (``mx.floating``, ...), for ``mx.issubdtype``."""

    __slots__ = ("name", "parent")

    def __init__(self, name: str, parent: DtypeCategory | None) -> None:
        self.name = name
        self.parent = parent

    def __repr__(self) -> str:
        return f"DtypeCategory.{self.name}"

    def __reduce__(self):
        return (_category, (self.name,))

    def _ancestors(self):
        c = self
        while c is not None:
            yield c
            c = c.parent


generic = DtypeCategory("generic", None)
number = DtypeCategory("number", generic)
integer = DtypeCategory("integer", number)
signedinteger = DtypeCategory("signedinteger", integer)
unsignedinteger = DtypeCategory("unsignedinteger", integer)
inexact = DtypeCategory("inexact", number)
floating = DtypeCategory("floating", inexact)
complexfloating = DtypeCategory("complexfloating", inexact)
CATEGORIES = (
    complexfloating,
    floating,
    inexact,
    signedinteger,
    unsignedinteger,
    integer,
    number,
    generic,
)

_KIND_CATEGORY = {
    "b": generic,
    "u": unsignedinteger,
    "i": signedinteger,
    "f": floating,
    "c": complexfloating,
}
for _d in ALL:
    _d.category = _KIND_CATEGORY[_d.kind]


def _category(name: str) -> DtypeCategory:
    return next(c for c in CATEGORIES if c.name == name)


def _as_dtype(x, who: str) -> Dtype:
    """A dtype, an array's dtype, or a dtype-like (NumPy dtype, name) as a ``Dtype``."""
    if type(x) is Dtype:
        return x
    dt = getattr(x, "dtype", None)
    if type(dt) is Dtype:
        return dt
    try:
        return from_np(to_np(x))
    except TypeError:
        raise ValueError(f"{who}: expected an array or a dtype, got {x!r:.60}") from None


def issubdtype(arg1, arg2) -> bool:
    """Whether dtype or category ``arg1`` is a subtype of dtype or category ``arg2``.

    A dtype is a subtype only of itself and of its category's ancestors (``float32`` is
    ``floating``, ``inexact``, ``number`` and ``generic``; ``bool`` only ``generic``); a
    category is never a subtype of a dtype. As ``mx.issubdtype`` (and ``np.issubdtype``).
    """
    if isinstance(arg1, DtypeCategory):
        if isinstance(arg2, DtypeCategory):
            return arg2 in tuple(arg1._ancestors())
        return False
    t1 = _as_dtype(arg1, "issubdtype")
    if isinstance(arg2, DtypeCategory):
        return arg2 in tuple(t1.category._ancestors())
    return t1 is _as_dtype(arg2, "issubdtype")


# -- promotion ---------------------------------------------------------------------------------

# MLX's promotion table (mlx/dtype.cpp), rows and columns in the order of ``ALL`` without
# complex128: b=bool u1..u8=uint8..uint64 i1..i8=int8..int64 f2 f4 f8 bf c8.
_ORDER = "b u1 u2 u4 u8 i1 i2 i4 i8 f2 f4 f8 bf c8".split()
_TABLE = """
b  u1 u2 u4 u8 i1 i2 i4 i8 f2 f4 f8 bf c8
u1 u1 u2 u4 u8 i2 i2 i4 i8 f2 f4 f8 bf c8
u2 u2 u2 u4 u8 i4 i4 i4 i8 f2 f4 f8 bf c8
u4 u4 u4 u4 u8 i8 i8 i8 i8 f2 f4 f8 bf c8
u8 u8 u8 u8 u8 f4 f4 f4 f4 f2 f4 f8 bf c8
i1 i2 i4 i8 f4 i1 i2 i4 i8 f2 f4 f8 bf c8
i2 i2 i4 i8 f4 i2 i2 i4 i8 f2 f4 f8 bf c8
i4 i4 i4 i8 f4 i4 i4 i4 i8 f2 f4 f8 bf c8
i8 i8 i8 i8 f4 i8 i8 i8 i8 f2 f4 f8 bf c8
f2 f2 f2 f2 f2 f2 f2 f2 f2 f2 f4 f8 f4 c8
f4 f4 f4 f4 f4 f4 f4 f4 f4 f4 f4 f8 f4 c8
f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 c8
bf bf bf bf bf bf bf bf bf f4 f4 f8 bf c8
c8 c8 c8 c8 c8 c8 c8 c8 c8 c8 c8 c8 c8 c8
"""
_PROMOTE: dict = {}
for _i, _row in enumerate(_TABLE.split("\n")[1:-1]):
    for _j, _cell in enumerate(_row.split()):
        _a, _b, _r = ALL[_i], ALL[_j], ALL[_ORDER.index(_cell)]
        _PROMOTE[(_a.np, _b.np)] = _r.np
for _d in ALL:  # complex128 (chainrule's own) absorbs everything
    _PROMOTE[(_d.np, complex128.np)] = _PROMOTE[(complex128.np, _d.np)] = complex128.np
# float64 meeting complex64 keeps double precision in complex128 (MLX, which has no
# complex128, gives complex64: the one place chainrule's table differs)
_PROMOTE[(float64.np, complex64.np)] = _PROMOTE[(complex64.np, float64.np)] = complex128.np


def promote(a, b):
    """MLX's promotion of two backend dtypes (the table in ``mlx/dtype.cpp``)."""
    if a is b:
        return a
    r = _PROMOTE.get((a, b))
    if r is None:
        return _PROMOTE[(from_np(a).np, from_np(b).np)]
    return r


def promote_types(t1: Dtype, t2: Dtype) -> Dtype:
    """MLX's promotion of two dtypes (``mx.promote_types``)."""
    return _BY_NP[promote(to_np(t1), to_np(t2))]


def result_type(*arrays_and_dtypes) -> Dtype:
    """The dtype that promoting all the inputs (arrays or dtypes) together gives.

    Raises:
        ValueError: without inputs, or for an input that is neither an array nor a dtype.
    """
    if not arrays_and_dtypes:
        raise ValueError("result_type: at least one array or dtype is required")
    t = _as_dtype(arrays_and_dtypes[0], "result_type").np
    for x in arrays_and_dtypes[1:]:
        t = promote(t, _as_dtype(x, "result_type").np)
    return _BY_NP[t]


def can_cast(from_, to) -> bool:
    """Whether ``from_`` (an array or a dtype) casts to ``to`` by promotion: promoting the two
    together gives ``to`` back (MLX's ``mx.can_cast``)."""
    t_from = _as_dtype(from_, "can_cast")
    t_to = _as_dtype(to, "can_cast")
    return promote(t_from.np, t_to.np) == t_to.np


_ISDTYPE_KINDS = {
    "bool": lambda d: d is bool_,
    "signed integer": lambda d: d.category is signedinteger,
    "unsigned integer": lambda d: d.category is unsignedinteger,
    "integral": lambda d: d.kind in "iu",
    "real floating": lambda d: d.kind == "f",
    "complex floating": lambda d: d.kind == "c",
    "numeric": lambda d: d.kind in "iufc",
}


def isdtype(dtype, kind) -> bool:
    """Whether ``dtype`` is of ``kind`` (the array API's ``isdtype``).

    Args:
        dtype: the dtype to test.
        kind: a dtype, one of ``"bool"``, ``"signed integer"``, ``"unsigned integer"``,
            ``"integral"``, ``"real floating"``, ``"complex floating"``, ``"numeric"``, or a
            tuple of those (any may match).

    Raises:
        ValueError: for an unknown kind string or a kind of another type.
    """
    d = _as_dtype(dtype, "isdtype")
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if isinstance(k, str):
            test = _ISDTYPE_KINDS.get(k)
            if test is None:
                raise ValueError(f"isdtype: unknown data type kind {k!r}")
            if test(d):
                return True
        elif type(k) is Dtype:
            if d is k:
                return True
        else:
            raise ValueError(
                "isdtype: kind must be a dtype, a string, or a tuple of dtypes and strings"
            )
    return False


# -- limits ------------------------------------------------------------------------------------


class finfo:
    """Machine limits of a floating dtype (``mx.finfo``); a complex dtype reports its real part.

    Attributes:
        dtype, bits, min, max, eps, tiny, smallest_normal.
    """

    def __init__(self, dtype) -> None:
        d = _as_dtype(dtype, "finfo")
        if d.kind not in "fc":
            raise ValueError(f"finfo: {d.name} is not a floating-point dtype")
        if d.kind == "c":
            d = float32 if d is complex64 else float64
        info = xp.finfo(d.np)
        self.dtype = d
        self.min = float(info.min)
        self.max = float(info.max)
        self.eps = float(info.eps)
        self.tiny = float(info.tiny)
        self.smallest_normal = float(info.smallest_normal)
        self.bits = int(info.bits)

    def __repr__(self) -> str:
        return f"finfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype.name})"


class iinfo:
    """Machine limits of an integer dtype (``mx.iinfo``).

    Attributes:
        dtype, bits, min, max.
    """

    def __init__(self, dtype) -> None:
        d = _as_dtype(dtype, "iinfo")
        if d.kind not in "iu":
            raise ValueError(f"iinfo: {d.name} is not an integer dtype")
        info = xp.iinfo(d.np)
        self.dtype = d
        self.min = int(info.min)
        self.max = int(info.max)
        self.bits = int(info.bits)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype.name})"


# -- shapes ------------------------------------------------------------------------------------

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def check_dim(d: int) -> int:
    """A shape dimension as an ``int``, refusing values outside int32 as MLX does.

    Raises:
        OverflowError: naming the value (MLX's shapes are 32-bit).
        TypeError: for a value that is not an integer.
    """
    if type(d) is not int:
        if not hasattr(d, "__index__"):
            raise TypeError(f"shape dimensions must be integers, not {type(d).__name__}")
        d = d.__index__()
    if not _INT32_MIN <= d <= _INT32_MAX:
        raise OverflowError(
            f"Shape dimension {d} is outside the supported range [{_INT32_MIN}, "
            f"{_INT32_MAX}]. MLX currently uses 32-bit integers for shape dimensions."
        )
    return d
