"""The array's operators and methods, installed from the registrations."""

from __future__ import annotations

from .. import dtypes as _dt
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
    logical_not,
    multiply,
    negative,
    not_equal,
    power,
    real,
    remainder,
    right_shift,
    subtract,
)
from .indexing import _At, _AtIndexer, _clean_index, _index_update, getitem
from .products import matmul
from .shapes import reshape, swapaxes, transpose
from .table import (
    METHODS,
)


def _r(op):
    def reflected(self, other):
        return op(other, self)

    reflected.handles = getattr(op, "handles", False)  # type: ignore[attr-defined]
    with_class = getattr(op, "with_class", None)
    if with_class is not None:  # the reflected operator making a subclass (see ``_binary``)
        reflected.with_class = lambda cls: _r(with_class(cls))  # type: ignore[attr-defined]
    return reflected


def _install() -> None:
    A = array
    add_, sub_, mul_ = add.operator, subtract.operator, multiply.operator
    div_, fdiv_, mod_, pow_ = (
        divide.operator,
        floor_divide.operator,
        remainder.operator,
        power.operator,
    )
    and_, or_, xor_ = (
        bitwise_and.operator,
        bitwise_or.operator,
        bitwise_xor.operator,
    )
    lsh_, rsh_ = left_shift.operator, right_shift.operator
    A.__add__, A.__radd__ = add_, _r(add_)
    A.__sub__, A.__rsub__ = sub_, _r(sub_)
    A.__mul__, A.__rmul__ = mul_, _r(mul_)
    A.__truediv__, A.__rtruediv__ = div_, _r(div_)
    A.__floordiv__, A.__rfloordiv__ = fdiv_, _r(fdiv_)
    A.__mod__, A.__rmod__ = mod_, _r(mod_)
    A.__pow__, A.__rpow__ = pow_, _r(pow_)
    A.__matmul__, A.__rmatmul__ = matmul, _r(matmul)
    A.__and__, A.__rand__ = and_, _r(and_)
    A.__or__, A.__ror__ = or_, _r(or_)
    A.__xor__, A.__rxor__ = xor_, _r(xor_)
    A.__lshift__, A.__rlshift__ = lsh_, _r(lsh_)
    A.__rshift__, A.__rrshift__ = rsh_, _r(rsh_)
    A.__neg__ = negative
    A.__pos__ = lambda self: self
    A.__abs__ = abs
    A.__invert__ = _invert
    A.__eq__, A.__ne__ = _eq, _ne
    for name, op in (
        ("add", add_),
        ("sub", sub_),
        ("mul", mul_),
        ("truediv", _itruediv),
        ("floordiv", fdiv_),
        ("mod", mod_),
        ("pow", pow_),
        ("matmul", matmul),
        ("and", and_),
        ("or", or_),
        ("xor", xor_),
        ("lshift", lsh_),
        ("rshift", rsh_),
    ):
        setattr(A, f"__i{name}__", _inplace(op))
    A.__format__ = _format
    A.__lt__, A.__le__ = less.operator, less_equal.operator
    A.__gt__, A.__ge__ = greater.operator, greater_equal.operator
    A.__hash__ = lambda self: id(self)
    A.__divmod__ = divmod  # type: ignore[operator]
    A.__getitem__ = getitem
    A.__setitem__ = _setitem
    A.at = property(lambda self: _ArrayAt(self), doc="Indexed updates: ``a.at[idx].add(v)``.")
    A.T = property(_t, doc="The transposed array.")
    A.mT = property(_mt, doc="Transpose of the last two axes.")
    A.real = property(lambda self: real(self), doc="The real part.")
    A.imag = property(lambda self: imag(self), doc="The imaginary part.")
    for name, fn in METHODS.items():  # registered with the operations: @export(method=True)
        setattr(A, name, fn)


def _t(self):
    return transpose(self)


def _mt(self):
    return swapaxes(self, -1, -2)


# read only the slots (the torch door's light path: chainrule/torch/_tensor_class.py)
_t.takes_tensors = _mt.takes_tensors = True  # type: ignore[attr-defined]


def _comparable(b) -> bool:
    """Whether ``a == b`` compares values: MLX compares arrays, scalars and array-likes, and
    says False for anything else (a list, a tuple, a string, None)."""
    return type(b) is array or isinstance(b, _COMPARABLE) or hasattr(b, "__mlx_array__")


_COMPARABLE = (array, int, float, complex, xp.ndarray, xp.generic)


def _eq(a, b):
    return equal.operator(a, b) if _comparable(b) else False


def _ne(a, b):
    return not_equal.operator(a, b) if _comparable(b) else True


_eq.handles = _ne.handles = True  # type: ignore[attr-defined]


def _squeeze_leading(v):
    """An update without its leading size-one axes (MLX drops them before broadcasting, so
    ``a[0] = mx.array([[[1]]])`` and ``x.at[0:1].add(u[None, None])`` work)."""
    shape = getattr(v, "shape", None)
    if not shape or shape[0] != 1:
        return v
    s = 0
    while s < len(shape) and shape[s] == 1:
        s += 1
    return reshape(v if type(v) is array else array(v), tuple(shape[s:]))


class _Updates(_AtIndexer):
    """``a.at[idx]``: each update kind with MLX's handling of the update's leading axes."""

    __slots__ = ()

    def add(self, v) -> array:
        """Add ``v`` at the index, accumulating over repeated indices."""
        return super().add(_squeeze_leading(v))

    def subtract(self, v) -> array:
        """Subtract ``v`` at the index, accumulating over repeated indices."""
        return super().subtract(_squeeze_leading(v))

    def multiply(self, v) -> array:
        """Multiply by ``v`` at the index, accumulating over repeated indices."""
        return super().multiply(_squeeze_leading(v))

    def divide(self, v) -> array:
        """Divide by ``v`` at the index, accumulating over repeated indices."""
        return super().divide(_squeeze_leading(v))

    def maximum(self, v) -> array:
        """Elementwise maximum with ``v`` at the index (repeated indices all count)."""
        return super().maximum(_squeeze_leading(v))

    def minimum(self, v) -> array:
        """Elementwise minimum with ``v`` at the index (repeated indices all count)."""
        return super().minimum(_squeeze_leading(v))


class _ArrayAt(_At):
    """``a.at``: indexed with ``a.at[idx]``; its update methods need the index first."""

    __slots__ = ()

    def __getitem__(self, idx) -> _Updates:
        return _Updates(self._a, idx)

    def _no_index(self, *args):
        raise ValueError("Must give indices to array.at (e.g. `x.at[0].add(4)`).")

    add = subtract = multiply = divide = maximum = minimum = _no_index


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

    if getattr(op, "handles", False):  # reads only its operands' slots: subclasses may inline
        inplace.in_place_of = op  # type: ignore[attr-defined]  # this body (chainrule.torch)
    return inplace


def _itruediv(a, b):
    if _dt.kind(a._data.dtype) not in "fc":
        raise ValueError(f"/=: in-place division of a {a.dtype} array cannot keep its dtype")
    return divide.operator(a, b)


def _format(a, spec: str) -> str:
    """``f"{a:.3f}"`` formats the value of a one-element array; ``f"{a}"`` prints it."""
    if not spec:
        return repr(a)
    if a._data.ndim == 0:
        return format(a._data.item(), spec)
    raise TypeError(f"unsupported format string {spec!r} for an array of shape {a.shape}")


def _setitem(self: array, idx, value) -> None:
    """``a[idx] = v``: the handle takes the updated value (recorded when differentiated)."""
    new = _index_update(self, _clean_index(idx), _squeeze_leading(value))
    self._set_value(new._data, new._node)


_install()
