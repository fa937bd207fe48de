"""``chainrule.torch.Tensor``: the array with PyTorch's meanings, over the same engine.

Where MLX and PyTorch give one call two meanings (``x.transpose(0, 1)``, ``x.max(1)``,
``x.sort()``...), arrays made through ``chainrule.core`` keep MLX's and tensors made through
``chainrule.torch`` get PyTorch's (docs/torch_differences.md lists every such name). A tensor is
a thin subclass of the one array class (``__slots__ = ()``: the same handle, value and graph
node, so no copy is ever made and gradients flow through both alike).

The rule for the class of a result is the namespace called:

* ``chainrule.torch`` functions (``torch.exp``, ``torch.cat``, ...), ``torch.nn.functional``
  functions, a tensor's methods and operators, and chainrule's layers called with a tensor
  return tensors;
* ``chainrule.core`` functions return arrays (``mx.exp(t)`` is an ``mx.array``).

Code inside chainrule always sees plain arrays: a call through one of the doors above hands
the implementation plain handles on the same nodes (``plain``), then gives the results the
tensor class (``tensors``). Calls nested inside an implementation pass straight through, so
an implementation never meets a tensor it did not expect.

``isinstance(x, torch.Tensor)`` holds for every chainrule array (parameters made by the shared
modules are arrays), as PyTorch code tests it on parameters and model outputs alike.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core.extend import STATE, from_value, new_array
from chainrule.core.tensor_functions import Size
from chainrule.core.versions import replaced, version

array = mx.array


class _TensorMeta(type):
    """``isinstance(x, Tensor)`` is true of every chainrule array, as PyTorch code expects."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, array)

    def __subclasscheck__(cls, sub: type) -> bool:
        return isinstance(sub, type) and issubclass(sub, array)


class Tensor(array, metaclass=_TensorMeta):
    """An array with PyTorch's meanings for the calls where PyTorch and MLX differ.

    ``torch.Tensor(data)`` makes a float32 tensor of ``data`` (PyTorch's legacy constructor);
    ``torch.Tensor(2, 3)`` a float32 tensor of that shape (zeros here).
    """

    __slots__ = ()
    wrapping_int_scalars = True  # ``t + 1``: PyTorch's promotion of Python ints (core/array.py)

    def __init__(self, *args: Any, dtype: Any = None, device: Any = None) -> None:
        if not args:
            value: Any = np.zeros((0,), np.float32)
        elif all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            value = np.zeros(tuple(int(a) for a in args), np.float32)
        else:
            if len(args) != 1:
                raise TypeError(f"Tensor(): expected one data argument or sizes, got {args!r}")
            value = args[0]
        array.__init__(self, value, dtype=mx.float32 if dtype is None else dtype)

    def __repr__(self) -> str:
        from ._format import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    @property
    def shape(self) -> Size:
        """The shape as a ``torch.Size`` (a tuple that prints as PyTorch prints it)."""
        return Size(self._data.shape)

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor has had (PyTorch's version counter)."""
        return version(self)

    def __reduce_ex__(self, protocol: int):
        raise TypeError("chainrule tensors are not pickled; use torch.save (a safe zip format)")

    # -- devices: a CUDA tensor reaches NumPy only through .cpu() (PyTorch's rule) -------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        """A NumPy copy of the values; a CUDA tensor is refused unless ``force=True``.

        Raises:
            TypeError: for a tensor on CUDA (PyTorch's message: use ``.cpu()`` first).
        """
        if not force and _backend.is_gpu(self._data):
            raise TypeError(_CUDA_TO_NUMPY)
        return array.numpy(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if _backend.is_gpu(self._data):
            raise TypeError(_CUDA_TO_NUMPY)
        return array.__array__(self, dtype, copy)


_CUDA_TO_NUMPY = (
    "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
    "host memory first."
)


# -- the doors: plain handles in, tensors out ----------------------------------------------------


def _plain1(x: Any, keep: list) -> Any:
    t = type(x)
    if t is Tensor:
        p = from_value(x._data, x._node)
        keep.append((p, x))
        return p
    if t is list or t is tuple:
        for v in x:
            if type(v) is Tensor:
                return t([_plain1(v, keep) for v in x])
    return x


def plain(args: tuple, kwargs: dict, keep: list) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with tensors (also inside lists and tuples) replaced by plain
    handles on the same values and nodes; ``keep`` collects ``(plain, tensor)`` pairs."""
    for a in args:  # most calls pass no tensor past the first: then args are kept as they are
        t = type(a)
        if t is Tensor or ((t is list or t is tuple) and a):
            args = tuple([_plain1(a, keep) for a in args])
            break
    if kwargs:
        for v in kwargs.values():
            t = type(v)
            if t is Tensor or ((t is list or t is tuple) and v):
                kwargs = {k: _plain1(v, keep) for k, v in kwargs.items()}
                break
    return args, kwargs


def tensors(r: Any, keep: list | None = None) -> Any:
    """Give the arrays in ``r`` (also in tuples, named tuples, lists and dicts) the tensor class.

    A result that is one of the handles ``plain`` made comes back as the caller's tensor; a
    result that is an input array itself is left alone (a parameter stays an array).
    """
    t = type(r)
    if t is array:
        if keep:
            for p, orig in keep:
                if r is p:
                    return orig
        r.__class__ = Tensor
        return r
    if t is Tensor or r is None:
        return r
    if t is tuple or t is list:
        return t(tensors(v, keep) for v in r)
    if isinstance(r, tuple) and hasattr(t, "_fields"):
        return t(*(tensors(v, keep) for v in r))
    if isinstance(r, dict) and t.__module__ in ("builtins", "collections"):
        out = t()
        for k, v in r.items():
            out[k] = tensors(v, keep)
        return out
    return r


def door(fn: Callable) -> Callable:
    """Wrap ``fn`` (a function of ``chainrule.torch``) so tensors go in as plain arrays and
    arrays come out as tensors; calls nested inside another door call pass straight through.

    A function marked ``takes_tensors`` (see :func:`takes_tensors`) takes the tensors themselves: it reads
    only their slots (or makes plain handles itself), changes nothing in place and calls no
    door, so only its result needs the tensor class (the hot elementwise and shape functions).
    """
    if getattr(fn, "takes_tensors", False):

        @functools.wraps(fn)
        def light(*args: Any, **kwargs: Any) -> Any:
            r = fn(*args, **kwargs)
            if type(r) is array and not STATE.doors:
                for a in args:
                    if r is a:
                        return r  # an input array handed back: unchanged
                r.__class__ = Tensor
                return r
            return r if STATE.doors else tensors(r)

        light.__wrapped_door__ = fn
        return light

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        state = STATE
        if state.doors:
            return fn(*args, **kwargs)
        keep: list = []
        args, kwargs = plain(args, kwargs, keep)
        state.doors = 1
        try:
            r = fn(*args, **kwargs)
        finally:
            state.doors = 0
        for p, orig in keep:  # an in-place function (F.relu_, running statistics) wrote p
            if p._data is not orig._data or p._node is not orig._node:
                replaced(orig, orig._node, p._node)
                orig._set_value(p._data, p._node)
        if type(r) is array:
            for p, orig in keep:
                if r is p:
                    return orig  # the caller's tensor handed back
            for a in args:
                if r is a:
                    return r  # an input array handed back (torch.as_tensor(param)): unchanged
            r.__class__ = Tensor
            return r
        return tensors(r, keep)

    call.__wrapped_door__ = fn
    return call


def takes_tensors(fn: Callable) -> Callable:
    """Mark ``fn`` as safe to call with tensors as they are (see :func:`door`): it turns its
    array arguments into plain handles itself (``_as``/``as_array`` then core functions), never
    calls a method whose meaning differs between MLX and PyTorch on an argument, writes nothing
    in place and calls no other door."""
    fn.takes_tensors = True  # type: ignore[attr-defined]
    return fn


def _in_place(fn: Callable) -> Callable:
    """Wrap a method that changes ``self`` (``add_``, ``__setitem__``): it gets the tensor."""

    @functools.wraps(fn)
    def call(self, *args: Any, **kwargs: Any) -> Any:
        r = fn(self, *args, **kwargs)
        return self if r is self else tensors(r)

    return call


def _augmented(fn: Callable) -> Callable:
    """Wrap an augmented assignment (``x += y``): in place on the tensor, counted by PyTorch's
    version counter as ``add_`` is."""

    op = getattr(fn, "in_place_of", None)
    if op is not None:  # an op-table operator taking tensors: its in-place form, one call less

        @functools.wraps(fn)
        def update(self, other: Any) -> Any:
            old = self._node
            new = op(self, other)
            self._set_value(new._data, new._node)
            replaced(self, old, self._node)
            return self

        return update

    @functools.wraps(fn)
    def call(self, other: Any) -> Any:
        old = self._node
        r = fn(self, other)
        if r is self:
            replaced(self, old, self._node)
            return self
        return tensors(r)

    return call


def _setitem(self, index: Any, value: Any) -> None:
    """``x[index] = value``: in place, counted as PyTorch counts it (see core/versions.py)."""
    old = self._node
    array.__setitem__(self, index, value)
    replaced(self, old, self._node)


def _method(fn: Callable) -> Callable:
    """Wrap a method with no side effect: it runs on a plain handle; results become tensors
    (a function marked ``takes_tensors`` runs on the tensor itself, as in :func:`door`)."""
    if getattr(fn, "takes_tensors", False):

        @functools.wraps(fn)
        def light(self, *args: Any, **kwargs: Any) -> Any:
            r = fn(self, *args, **kwargs)
            if type(r) is array and not STATE.doors:
                r.__class__ = Tensor
                return r
            return r if STATE.doors else tensors(r)

        return light

    @functools.wraps(fn)
    def call(self, *args: Any, **kwargs: Any) -> Any:
        state = STATE
        if state.doors:
            return fn(self, *args, **kwargs)
        p = from_value(self._data, self._node)
        keep = [(p, self)]
        args, kwargs = plain(args, kwargs, keep)
        state.doors = 1
        try:
            r = fn(p, *args, **kwargs)
        finally:
            state.doors = 0
        return tensors(r, keep)

    return call


def _operator(fn: Callable) -> Callable:
    """Wrap an operator (``x + y``, ``x[i]``, ``-x``): the hot case, without the depth count
    (an operator's implementation calls no door).

    An operator of the op table marked ``handles`` (the elementwise ones, indexing) reads only
    its operands' slots, so it takes the tensors themselves: no plain handles are made for it."""
    with_class = getattr(fn, "with_class", None)
    if with_class is not None:  # an elementwise operator of the op table: it makes tensors
        op = with_class(Tensor)
        functools.update_wrapper(op, fn)
        return op
    if getattr(fn, "handles", False):

        @functools.wraps(fn)
        def binary(self, other: Any) -> Any:
            r = fn(self, other)
            if type(r) is array:
                r.__class__ = Tensor
                return r
            return tensors(r)

        return binary

    @functools.wraps(fn)
    def call(self, other: Any = _NONE) -> Any:
        p = from_value(self._data, self._node)
        if other is _NONE:
            r = fn(p)
        else:
            if type(other) is Tensor:
                other = from_value(other._data, other._node)
            elif type(other) is tuple and any(type(v) is Tensor for v in other):
                other = tuple(_plain1(v, []) for v in other)
            r = fn(p, other)
        if type(r) is array:
            r.__class__ = Tensor
            return r
        return tensors(r, [(p, self)])

    return call


_NONE = object()
_OPERATORS = {
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__",
    "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__invert__",
    "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__",
    "__rshift__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__getitem__",
}  # fmt: skip


_AUGMENTED = {
    "add__", "sub__", "mul__", "truediv__", "floordiv__", "mod__", "pow__", "matmul__",
    "and__", "or__", "xor__", "lshift__", "rshift__",
}  # fmt: skip


def _iterate(self):
    for v in array.__iter__(self):
        v.__class__ = Tensor
        yield v


# Methods whose results are never arrays, or that must run on the tensor itself.
_PASS = {
    "__init__", "__new__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
    "__init_subclass__", "__subclasshook__", "__reduce__", "__reduce_ex__", "__sizeof__",
    "__getstate__", "__setstate__", "__repr__", "__str__", "__format__", "__hash__",
    "__class__", "__len__", "__bool__", "__float__", "__int__", "__index__", "__complex__",
    "__array__", "__dlpack__", "__dlpack_device__", "__array_namespace__", "__buffer__",
    "__iter__", "__contains__", "__copy__", "__deepcopy__",
    "item", "tolist", "numpy", "backward", "dim", "ndimension", "nelement", "numel",
    "is_floating_point", "element_size", "is_contiguous", "data_ptr", "_set_value",
}  # fmt: skip
# Methods that act on the handle itself (its value, its hooks, where its gradient goes).
_ON_SELF = {
    "__setitem__", "__delitem__", "retain_grad", "register_hook",
    "register_post_accumulate_grad_hook", "module_load",
}  # fmt: skip


def _wrap_array_methods() -> None:
    for name in dir(array):
        if name in _PASS or name in vars(Tensor):
            continue
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            continue
        attr = _static(array, name)
        if isinstance(attr, property):
            setattr(Tensor, name, _wrap_property(name, attr))
        elif isinstance(attr, (types.FunctionType, types.BuiltinFunctionType)):
            in_place = (name.endswith("_") and not name.endswith("__")) or (
                name in _ON_SELF or name.startswith("__i")
            )
            if name in _OPERATORS:
                setattr(Tensor, name, _operator(attr))
            elif name.startswith("__i") and name[3:] in _AUGMENTED:
                setattr(Tensor, name, _augmented(attr))
            else:
                setattr(Tensor, name, (_in_place if in_place else _method)(attr))
    Tensor.__iter__ = _iterate
    Tensor.__setitem__ = _setitem


def _static(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


_ARRAY_PROPERTIES = {"T", "mT", "H", "mH", "real", "imag", "data"}
"""The properties whose value is an array made from the tensor (given the tensor class); the
others (``shape``, ``requires_grad``, ``retains_grad``...) are read from the tensor itself."""


def _wrap_property(name: str, prop: property) -> property:
    if name not in _ARRAY_PROPERTIES and name != "grad":
        return prop
    if name == "data":  # read on the tensor itself: the view shares its value (DATA_LINKS)

        def get_data(self):
            view = prop.fget(self)
            view.__class__ = Tensor
            return view

        return property(get_data, prop.fset, prop.fdel, prop.__doc__)
    if name == "grad":

        def get_grad(self):
            g = self._grad  # array.grad's getter, read in place (a hot line of every update)
            if type(g) is array:
                g.__class__ = Tensor  # the tensor's own gradient: retagged in place
            return g

        return property(get_grad, prop.fset, prop.fdel, prop.__doc__)
    getter = _method(prop.fget)
    return property(getter, prop.fset, prop.fdel, prop.__doc__)


# -- the calls whose PyTorch meaning differs from MLX's --------------------------------------------


def _torch() -> types.ModuleType:
    return sys.modules["chainrule.torch"]


def _through(name: str, doc: str) -> Callable:
    base = _method(getattr(array, name))

    found: list = []  # the chainrule.torch function, once it is there

    def method(self, *args: Any, **kwargs: Any) -> Any:
        if found:
            return found[0](self, *args, **kwargs)
        fn = getattr(_torch(), name, None)
        if fn is None:  # not in chainrule.torch (yet): the array's method, PyTorch keywords
            return base(self, *args, **kwargs)
        found.append(fn)
        return fn(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc
    return method


# name -> the chainrule.torch function giving PyTorch's meaning (see docs/torch_differences.md)
PYTORCH_MEANINGS = {
    "transpose": "swaps two dimensions: ``x.transpose(0, 1)`` (MLX: a permutation of all axes)",
    "max": "``x.max(dim)`` returns ``(values, indices)`` (MLX: the values)",
    "min": "``x.min(dim)`` returns ``(values, indices)`` (MLX: the values)",
    "sort": "returns ``(values, indices)`` along ``dim`` (MLX: the sorted values)",
    "topk": "returns the ``k`` largest ``(values, indices)``, sorted (MLX: values, unsorted)",
    "split": "``split(size)`` cuts pieces of that size (MLX: ``split(n)`` cuts n pieces)",
    "std": "unbiased by default (``correction=1``; MLX: ``ddof=0``)",
    "var": "unbiased by default (``correction=1``; MLX: ``ddof=0``)",
    "squeeze": "a dimension that is not 1 is left alone (MLX: an error)",
    "sum": "integers sum to int64 (MLX: the input's integer type)",
    "prod": "integers multiply to int64 (MLX: the input's integer type)",
    "cumsum": "``dim`` is required; integers give int64",
    "cumprod": "``dim`` is required; integers give int64",
    "argmax": "indices are int64 (MLX: uint32)",
    "argmin": "indices are int64 (MLX: uint32)",
    "cummax": "returns ``(values, indices)`` (MLX: the values)",
    "cummin": "returns ``(values, indices)`` (MLX: the values)",
    "repeat": "``repeat(2, 3)`` tiles the tensor (MLX's ``mx.repeat`` repeats each element)",
}


def _repeat(self, *sizes: Any) -> Tensor:
    """PyTorch's ``Tensor.repeat``: tile the tensor ``sizes`` times along each dimension."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    if len(sizes) < self.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions "
            f"of tensor (repeat{tuple(sizes)} on a tensor of shape {tuple(self.shape)})"
        )
    return tensors(mx.tile(self, tuple(int(s) for s in sizes)))


def _install_meanings() -> None:
    for name, doc in PYTORCH_MEANINGS.items():
        if name == "repeat":
            Tensor.repeat = _repeat
        else:
            setattr(Tensor, name, _through(name, f"PyTorch's ``{name}``: {doc}."))


Tensor.__module__ = "chainrule.torch"
_wrap_array_methods()
_install_meanings()


def as_tensor_class(x: array) -> Tensor:
    """``x`` itself as a tensor (its class changed in place; the value and graph are kept)."""
    if type(x) is array:
        x.__class__ = Tensor
    return x


def tensor_of(x: array) -> Tensor:
    """A tensor handle on ``x``'s value and graph (``x`` itself is left as it is)."""
    if type(x) is Tensor:
        return x
    t = new_array(Tensor)
    t._data, t._node, t._grad = x._data, x._node, None
    return t


_NOT_DOORS = {
    "compile", "vmap", "cond", "while_loop", "fork", "is_tensor", "is_grad_enabled",
    "manual_seed", "seed",
}  # fmt: skip
"""Functions of ``chainrule.torch`` left unwrapped: those taking a function (it must see the
caller's tensors) and those that never return arrays."""


def install_doors(namespace: dict) -> None:
    """Wrap every public function of a ``chainrule.torch`` namespace in ``door``."""
    for name, obj in list(namespace.items()):
        if name.startswith("_") or name in _NOT_DOORS or hasattr(obj, "__wrapped_door__"):
            continue
        if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
            namespace[name] = door(obj)
