"""The array's operators and methods, installed from the registrations."""

from __future__ import annotations

from ..array import array
from ..backend import xp
from .elementwise import (
    abs,
    add,
    bitwise_and,
    bitwise_invert,
    bitwise_or,
    bitwise_xor,
    divide,
    divmod,
    equal,
    floor_divide,
    greater,
    greater_equal,
    imag,
    left_shift,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    multiply,
    negative,
    not_equal,
    power,
    real,
    remainder,
    right_shift,
    subtract,
)
from .indexing import _At, _clean_index, _index_update, getitem
from .products import matmul
from .shapes import swapaxes, transpose
from .table import (
    METHODS,
)


def _r(op):
    def reflected(self, other):
        return op(other, self)

    return reflected


def _install() -> None:
    A = array
    A.__add__, A.__radd__ = add, _r(add)
    A.__sub__, A.__rsub__ = subtract, _r(subtract)
    A.__mul__, A.__rmul__ = multiply, _r(multiply)
    A.__truediv__, A.__rtruediv__ = divide, _r(divide)
    A.__floordiv__, A.__rfloordiv__ = floor_divide, _r(floor_divide)
    A.__mod__, A.__rmod__ = remainder, _r(remainder)
    A.__pow__, A.__rpow__ = power, _r(power)
    A.__matmul__, A.__rmatmul__ = matmul, _r(matmul)
    A.__and__, A.__rand__ = _logic(bitwise_and, logical_and), _r(_logic(bitwise_and, logical_and))
    A.__or__, A.__ror__ = _logic(bitwise_or, logical_or), _r(_logic(bitwise_or, logical_or))
    A.__xor__, A.__rxor__ = bitwise_xor, _r(bitwise_xor)
    A.__lshift__, A.__rlshift__ = left_shift, _r(left_shift)
    A.__rshift__, A.__rrshift__ = right_shift, _r(right_shift)
    A.__neg__ = negative
    A.__pos__ = lambda self: self
    A.__abs__ = abs
    A.__invert__ = _invert
    A.__eq__, A.__ne__ = _eq, _ne
    for name, op in (
        ("add", add),
        ("sub", subtract),
        ("mul", multiply),
        ("truediv", _itruediv),
        ("floordiv", floor_divide),
        ("mod", remainder),
        ("pow", power),
        ("matmul", matmul),
        ("and", _logic(bitwise_and, logical_and)),
        ("or", _logic(bitwise_or, logical_or)),
        ("xor", bitwise_xor),
        ("lshift", left_shift),
        ("rshift", right_shift),
    ):
        setattr(A, f"__i{name}__", _inplace(op))
    A.__format__ = _format
    A.__lt__, A.__le__, A.__gt__, A.__ge__ = less, less_equal, greater, greater_equal
    A.__hash__ = lambda self: id(self)
    A.__divmod__ = divmod
    A.__getitem__ = getitem
    A.__setitem__ = _setitem
    A.at = property(lambda self: _At(self), doc="Indexed updates: ``a.at[idx].add(v)``.")
    A.T = property(lambda self: transpose(self), doc="The transposed array.")
    A.mT = property(lambda self: swapaxes(self, -1, -2), doc="Transpose of the last two axes.")
    A.real = property(lambda self: real(self), doc="The real part.")
    A.imag = property(lambda self: imag(self), doc="The imaginary part.")
    for name, fn in METHODS.items():  # registered with the operations: @export(method=True)
        setattr(A, name, fn)


def _eq(a, b):
    # ``a == None`` (or a string) is False, not an error, as in MLX
    return False if b is None or type(b) is str else equal(a, b)


def _ne(a, b):
    return True if b is None or type(b) is str else not_equal(a, b)


def _invert(a):
    kind = a._data.dtype.kind
    if kind == "b":
        return logical_not(a)
    if kind not in "iu":
        raise ValueError(f"~: bitwise inversion needs a boolean or integer array, not {a.dtype}")
    return bitwise_invert(a)


def _inplace(op):
    """``a op= b`` as MLX: the handle itself takes the new value (other references see it).

    Under ``no_grad`` a ``requires_grad`` leaf stays a leaf (PyTorch's manual update idiom);
    otherwise the update is recorded like any operation.
    """

    def inplace(self, other):
        new = op(self, other)
        self._set_value(new._data, new._node)
        return self

    return inplace


def _itruediv(a, b):
    if a._data.dtype.kind not in "fc":
        raise ValueError(f"/=: in-place division of a {a.dtype} array cannot keep its dtype")
    return divide(a, b)


def _format(a, spec: str) -> str:
    """``f"{a:.3f}"`` formats the value of a one-element array; ``f"{a}"`` prints it."""
    if not spec:
        return repr(a)
    if a._data.ndim == 0:
        return format(a._data.item(), spec)
    raise TypeError(f"unsupported format string {spec!r} for an array of shape {a.shape}")


def _logic(bitwise, logical):
    def op(a, b):
        da = a._data if type(a) is array else xp.asarray(a)
        if da.dtype == xp.bool_:
            return logical(a, b)
        return bitwise(a, b)

    return op


def _setitem(self: array, idx, value) -> None:
    """``a[idx] = v``: the handle takes the updated value (recorded when differentiated)."""
    new = _index_update(self, _clean_index(idx), value)
    self._set_value(new._data, new._node)


_install()
