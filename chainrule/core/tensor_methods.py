"""PyTorch's tensor methods on the one array class, with only ``chainrule.core`` imported.

``install(array)`` (run by ``chainrule/core/__init__.py``) adds the methods PyTorch tutorials
call (``view``, ``float``, ``long``, ``unsqueeze``, ``permute``, ``to``, ``clone``, ``eq``,
``masked_fill``, ``data``, ...). A method is here when MLX gives its name no meaning, or when
PyTorch's meaning is selected by a keyword MLX does not have: it never replaces a method the
core defines, with one exception: the reductions ``sum, mean, max, min, argmax, argmin,
softmax, logsumexp, cumsum, cumprod, all, any, squeeze, flatten`` accept PyTorch's keywords,
and a call that uses ``dim=`` or ``keepdim=`` gets PyTorch's semantics:

* ``x.max(dim=1)`` returns ``(values, indices)``; ``x.max(1)`` is MLX's (values only);
* ``x.argmax(dim=1)`` returns int64; ``x.argmax(1)`` MLX's uint32;
* ``x.sum(dim=0)`` of integers is int64; ``x.squeeze(dim=0)`` leaves a non-1 dimension alone.

Methods whose PyTorch and MLX meanings clash on the same call keep MLX's meaning on arrays:
``transpose`` (``x.transpose(0, 1)`` permutes all axes in MLX), ``repeat``, ``split``,
``sort``, ``topk``, ``std``/``var`` (MLX's ``ddof=0``). PyTorch's meanings of those belong to
``chainrule.torch`` (its functions today, ``torch.transpose(x, 0, 1)``; see "The Tensor
class" in docs/architecture.md for the subclass that will carry them as methods).

In-place methods (``add_``, ``mul_``, ``clamp_``, ``scatter_``, ``uniform_``...) compute the
out-of-place result and rebind the handle to it through one helper, :func:`_inplace`, which
refuses what PyTorch refuses (an in-place change of a leaf that requires grad while recording,
a result of another shape, a float result into an integer array); graphs recorded before keep
the old value (docs/architecture.md). ``zero_``, ``fill_`` and assigning ``x.data = ...``
rebind directly. The bulk of the methods is listed in :mod:`chainrule.core.tensor_methods_more`.

Memory: PyTorch's ``x.numpy()``, ``torch.from_numpy(a)``, ``torch.asarray(a)`` and
``torch.frombuffer(b)`` share memory with NumPy; here they copy, because an array is a value
that recorded graphs read (invariant 1 of ../shared/DESIGN.md): a NumPy view written in place
would change what a graph saw. ``np.asarray(x)`` (``__array__``, MLX's zero-copy conversion)
and ``__dlpack__`` do share the buffer; NumPy leaves that view writeable today, and writing
through it is not refused (it would break the invariant). Within chainrule, methods PyTorch calls
views (``view``, ``narrow``, ``select``, ``unfold``, ``t``...) return new handles on the values;
an in-place method on one of them rebinds that handle only (PyTorch would write through to the
base tensor).
"""

from __future__ import annotations

import weakref as _weakref
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import devices as _devices
from . import dtypes as _dt
from . import hooks as _hooks
from . import post_hooks as _post_hooks
from . import tensor_functions as F
from . import versions as _versions
from .array import DATA_LINKS, _from_value, array
from .autograd import is_grad_enabled

_MISSING = object()

# PyTorch's ordering of dtype kinds for in-place results: a result may be cast to the array's
# dtype only when its kind is not higher (a float result cannot go into an integer array).
_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2, "V": 2, "c": 3}
_KIND_NAME = {"b": "Bool", "u": "Int", "i": "Long", "f": "Float", "V": "Float", "c": "ComplexFloat"}


def _inplace(self: array, result: Any, reshape: bool = False) -> array:
    """Rebind ``self`` to ``result`` (cast to ``self``'s dtype) and return ``self``.

    The one path of every in-place method. It raises PyTorch's errors: an in-place operation
    on a leaf that requires grad while recording, a result whose broadcast shape differs from
    ``self``'s (unless ``reshape``, for ``unsqueeze_`` and friends), and a result whose dtype
    cannot be cast to ``self``'s (a float result into an integer array).

    Args:
        self: the array changed in place.
        result: the out-of-place result (an array or a number).
        reshape: allow a new shape (the view methods ``t_``, ``squeeze_``...).

    Returns:
        ``self``.
    """
    node = self._node
    if node is not None and node.prim is None and node.owner is not None and is_grad_enabled():
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    if not isinstance(result, array):
        result = mx.array(result, dtype=self.dtype)
    if not reshape and tuple(result.shape) != tuple(self.shape):
        raise RuntimeError(
            f"output with shape {list(self.shape)} doesn't match the broadcast shape "
            f"{list(result.shape)}"
        )
    mine, theirs = self._data.dtype, result._data.dtype
    if theirs != mine:
        k_mine, k_theirs = _dt.kind(mine), _dt.kind(theirs)
        if _KIND_RANK.get(k_theirs, 0) > _KIND_RANK.get(k_mine, 0):
            raise RuntimeError(
                f"result type {_KIND_NAME.get(k_theirs, theirs)} can't be cast to the desired "
                f"output type {_KIND_NAME.get(k_mine, mine)}"
            )
        result = mx.astype(result, self.dtype)
    _versions.replaced(self, self._node, result._node)  # PyTorch's version counter
    self._set_value(result._data, result._node)
    return self


def make_inplace(name: str, fn: Any = None):
    """The method ``name_``: the result of ``fn`` (default: the method ``name``) put in place.

    Args:
        name: the out-of-place method's name.
        fn: the function to call with ``self`` first; by default the class's method ``name``,
            looked up at each call so subclasses' meanings are used.

    Returns:
        The in-place method.
    """

    def method(self, *args, **kwargs):
        f = getattr(type(self), name) if fn is None else fn
        return _inplace(self, f(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = name + "_"
    method.__doc__ = f"In-place ``{name}``: rebinds this array to the result and returns it."
    return method


def _astype(dtype):
    target = np.dtype(_dt.to_np(dtype))
    d = _dt.from_np(target)

    def cast(self):
        return self if self._data.dtype == target else mx.astype(self, d)

    cast.takes_tensors = True  # type: ignore[attr-defined]  # reads only the slots
    return cast


def _shape_args(shape: tuple) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return tuple(shape[0])
    return shape


def view(self, *shape: Any) -> array:
    """A view with a new shape (``x.view(2, -1)``), or the same bytes as another dtype.

    ``x.view(mx.complex64)`` (MLX, and PyTorch's ``view(dtype)``) reinterprets the bytes: the
    last axis is scaled by the ratio of the item sizes, as NumPy's ``view`` does. The
    result is a new constant (bit reinterpretation is not differentiated).

    Args:
        *shape: the new shape (one entry may be -1), or a single dtype.

    Returns:
        The reshaped or reinterpreted array.
    """
    if len(shape) == 1 and isinstance(shape[0], (_dt.Dtype, np.dtype, type)):
        target = _dt.to_np(shape[0])
        data = self._data
        if data.ndim == 0 and target.itemsize != data.dtype.itemsize:
            raise ValueError(
                f"view: a 0-d {self.dtype} array cannot be viewed as {shape[0]} (item sizes "
                f"{data.dtype.itemsize} and {target.itemsize})"
            )
        try:
            out = _backend.array_module(data).ascontiguousarray(data).view(target)
        except ValueError as e:
            raise ValueError(f"view: cannot view shape {self.shape} as {shape[0]}: {e}") from None
        return _from_value(out)
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)):
            raise TypeError(
                f"view: expected a shape of integers, got {shape!r} (to change the dtype, "
                "use .to(dtype))"
            )
    return mx.reshape(self, tuple(int(s) for s in shape))


def view_as(self, other: array) -> array:
    """``self.view(other.shape)``."""
    return mx.reshape(self, other.shape)


view.takes_tensors = view_as.takes_tensors = True  # type: ignore[attr-defined]  # reads slots


def expand(self, *sizes: Any) -> array:
    """Broadcast to ``sizes`` (``-1`` keeps a dimension).

    Args:
        *sizes: the new shape, as integers or one sequence.

    Returns:
        The broadcast array.
    """
    sizes = _shape_args(sizes)
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes for a tensor of shape {self.shape}")
    shape = tuple(
        self.shape[i - lead] if (s == -1 and i >= lead) else int(s) for i, s in enumerate(sizes)
    )
    return mx.broadcast_to(self, shape)


def expand_as(self, other: array) -> array:
    """Broadcast to ``other.shape``."""
    return mx.broadcast_to(self, other.shape)


def type_as(self, other: array) -> array:
    """Cast to ``other``'s dtype."""
    return self if self._data.dtype == other._data.dtype else mx.astype(self, other.dtype)


def unsqueeze(self, dim: int) -> array:
    """Insert a dimension of length 1 at ``dim``."""
    return mx.expand_dims(self, int(dim))


def permute(self, *dims: Any) -> array:
    """Reorder the dimensions (``x.permute(0, 2, 1)``)."""
    return mx.transpose(self, tuple(int(d) for d in _shape_args(dims)))


def contiguous(self, memory_format: Any = None) -> array:
    """The array itself: values have no memory layout to fix here."""
    return self


def clone(self, memory_format: Any = None) -> array:
    """A new handle on the same values; differentiable (the gradient passes through)."""
    if self._node is None:
        return _from_value(self._data)
    return self * 1


def to(self, *args: Any, **kwargs: Any) -> array:
    """Convert dtype and/or device: ``x.to(torch.float64)``, ``x.to("cpu")``, ``x.to(other)``.

    Args:
        *args: a dtype, a device (``"cpu"``, ``torch.device``), both, or another array
            whose dtype to take.
        **kwargs: ``dtype=``, ``device=``, ``copy=``; ``non_blocking`` and
            ``memory_format`` are accepted and ignored.

    Returns:
        ``self`` when nothing changes (PyTorch returns the same tensor), else a new array.

    Raises:
        DeviceUnavailableError: (a ``ValueError``) for a device that is not available.
    """
    dtype = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to: unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, mx.array):
            dtype = a.dtype
        elif isinstance(a, (str, F.device, mx.Device)) or (
            type(a) is int  # a CUDA index, as torch's x.to(0)
        ):
            dev = a
        else:
            dtype = a
    kind = F.check_device(dev, "to")
    out = self
    if kind is not None:
        out = _devices.move(self, kind)  # self when it is there already
    if dtype is not None:
        target = F.to_np_dtype(dtype)
        if target != out._data.dtype:
            return mx.astype(out, _dt.from_np(target))
    return clone(out) if copy and out is self else out


def detach_(self) -> array:
    """Cut this handle off its graph in place (PyTorch's ``detach_``) and return it."""
    self._node = None
    return self


def register_hook(self, hook: Any) -> Any:
    """PyTorch's ``Tensor.register_hook`` (see ``chainrule.core.autograd.register_hook``)."""
    return _hooks.register_hook(self, hook)


def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
    """PyTorch's ``Tensor.register_post_accumulate_grad_hook``: run ``hook(tensor)`` after each
    ``backward()`` has accumulated this leaf's ``.grad`` (an optimizer step fused into the
    backward pass, as PyTorch's tutorial does). Returns a handle whose ``remove()`` unregisters
    it.

    Raises:
        RuntimeError: when the tensor does not require grad, or is not a leaf.
        TypeError: when ``hook`` is not callable.
    """
    node = self._node
    if node is None:
        raise RuntimeError(
            "register_post_accumulate_grad_hook: cannot register a hook on a tensor that "
            "doesn't require gradient"
        )
    if node.prim is not None or node.owner is None or node.owner() is not self:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {hook!r}")
    table = _post_hooks.POST_HOOKS.get(node.owner)
    if table is None:
        table = _post_hooks.POST_HOOKS[node.owner] = _hooks._HookTable()
        _weakref.finalize(self, _post_hooks.POST_HOOKS.pop, node.owner, None)
    _hooks._HOOKS.next_id += 1
    table[_hooks._HOOKS.next_id] = hook
    return _hooks.RemovableHandle(table, _hooks._HOOKS.next_id)


def retain_grad(self) -> None:
    """Keep this non-leaf's gradient in ``.grad`` during backward passes (PyTorch)."""
    _hooks.retain_grad(self)


def cpu(self, memory_format: Any = None) -> array:
    """The array on the CPU: itself when it is there, else a copy (differentiable)."""
    return _devices.move(self, "cpu")


def cuda(self, device: Any = None, non_blocking: bool = False, memory_format: Any = None) -> array:
    """The array on the GPU: itself when it is there, else a copy (differentiable).

    Raises:
        DeviceUnavailableError: without a GPU, naming what is missing (CuPy, a CUDA device).
    """
    if type(device) is int:
        device = F.device("cuda", device)
    F.check_device("cuda" if device is None else device, "cuda")
    return _devices.move(self, "gpu")


def _device(self) -> F.device:
    """Where the array lives: ``device(type='cpu')``, or ``device(type='cuda', index=0)``."""
    return F.device_of(self)


def _data_get(self):
    """The values without the graph (PyTorch's ``.data``), sharing them with ``self``: an
    in-place change of either (``p.data.add_(1)``) is seen by both; assign to replace them."""
    view = _from_value(self._data)
    DATA_LINKS.link(view, self)
    return view


def _data_set(self, value) -> None:
    value = value._data if isinstance(value, mx.array) else np.asarray(value, self._data.dtype)
    self._set_value(value)


def zero_(self) -> array:
    """Set every element to zero (rebinds the handle: earlier graphs keep the old values)."""
    self._set_value(np.zeros_like(self._data))
    return self


def fill_(self, value: Any) -> array:
    """Set every element to ``value`` (rebinds the handle, as ``zero_``)."""
    self._set_value(
        np.full_like(self._data, value.item() if isinstance(value, mx.array) else value)
    )
    return self


def masked_fill(self, mask: array, value: Any) -> array:
    """``value`` where ``mask`` is true, else ``self``."""
    if not isinstance(value, mx.array):  # a 0-d constant on self's device
        value = mx.full((), value, dtype=self.dtype, stream=F.stream_of(self))
    return mx.where(mask, value, self)


def clamp(self, min: Any = None, max: Any = None) -> array:
    """Limit values to ``[min, max]``."""
    return F.clamp(self, min, max)


def relu(self) -> array:
    """``max(x, 0)``."""
    return mx.maximum(self, 0)


def log_softmax(self, dim: int, dtype: Any = None) -> array:
    """Log-probabilities along ``dim``."""
    return F.log_softmax(self, dim, dtype)


def t(self) -> array:
    """Transpose of a matrix."""
    return F.t(self)


def _binary(op, name):
    def method(self, other):
        return op(self, other)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``{op.__name__}(self, other)``."
    # an op of the table reading only its operands' slots: the torch door hands it the tensor
    # itself (PyTorch's promotion of Python ints then applies, as for ``t * 2``)
    method.takes_tensors = getattr(op, "takes_tensors", False)  # type: ignore[attr-defined]
    return method


def add(self, other: Any, *, alpha: Any = 1) -> array:
    """``self + alpha * other``."""
    return F.add(self, other, alpha=alpha)


def sub(self, other: Any, *, alpha: Any = 1) -> array:
    """``self - alpha * other``."""
    return F.sub(self, other, alpha=alpha)


def div(self, other: Any, *, rounding_mode: str | None = None) -> array:
    """``self / other`` (optionally rounded)."""
    return F.div(self, other, rounding_mode=rounding_mode)


add.takes_tensors = sub.takes_tensors = div.takes_tensors = True  # type: ignore[attr-defined]


def is_floating_point(self) -> bool:
    """Whether the dtype is floating."""
    return self._data.dtype.kind == "f"


def nelement(self) -> int:
    """Number of elements."""
    return int(self._data.size)


def ndimension(self) -> int:
    """Number of dimensions."""
    return self._data.ndim


# -- reductions that also speak PyTorch ------------------------------------------------------


def _torch_reduction(name: str):
    """The PyTorch meaning of method ``name`` when called with ``dim``/``keepdim``."""
    if name in ("sum", "mean", "max", "min", "argmax", "argmin"):
        fn = getattr(F, name)
        return lambda x, dim, keepdim, kw: fn(x, dim, keepdim, **kw)
    if name == "softmax":
        return lambda x, dim, keepdim, kw: F.softmax(x, dim, **kw)
    if name == "squeeze":
        return lambda x, dim, keepdim, kw: F.squeeze(x, dim)
    if name in ("logsumexp", "all", "any"):
        fn = getattr(mx, name)
        return lambda x, dim, keepdim, kw: fn(x, F.dims(dim), bool(keepdim))
    if name in ("cumsum", "cumprod"):
        fn = getattr(mx, name)
        return lambda x, dim, keepdim, kw: fn(x, int(dim), **kw)
    raise KeyError(name)


_REDUCTIONS = ("sum", "mean", "max", "min", "argmax", "argmin", "logsumexp", "all", "any")


def _with_dim(name: str, mlx_method):
    torch_fn = _torch_reduction(name)
    if name in _REDUCTIONS:
        # The hot reductions get an explicit signature: no argument packing on the MLX path.
        def reduction(
            self, axis=None, keepdims=False, stream=None, *, dim=_MISSING, keepdim=_MISSING
        ):
            if dim is _MISSING and keepdim is _MISSING:
                return mlx_method(self, axis, keepdims)
            if dim is _MISSING:
                dim = axis
            elif axis is not None:
                raise TypeError(f"{name}: dim given both by position and by keyword")
            return torch_fn(self, dim, keepdim is not _MISSING and keepdim, {})

        reduction.__name__ = reduction.__qualname__ = name
        reduction.__doc__ = (
            f"{mlx_method.__doc__ or ''}\n\nWith ``dim=``/``keepdim=`` keywords: PyTorch's "
            f"``torch.{name}`` (see chainrule.torch)."
        )
        reduction.__wrapped__ = mlx_method
        return reduction

    def method(self, *args, dim=_MISSING, keepdim=_MISSING, **kwargs):
        if dim is _MISSING and keepdim is _MISSING:
            return mlx_method(self, *args, **kwargs)
        if args:
            if dim is not _MISSING:
                raise TypeError(f"{name}: dim given both by position and by keyword")
            dim, args = args[0], args[1:]
        if args:
            raise TypeError(f"{name}: too many positional arguments with dim/keepdim")
        return torch_fn(
            self, None if dim is _MISSING else dim, keepdim is not _MISSING and keepdim, kwargs
        )

    method.__name__ = method.__qualname__ = name
    method.__doc__ = (
        f"{mlx_method.__doc__ or ''}\n\nWith ``dim=``/``keepdim=`` keywords: PyTorch's "
        f"``torch.{name}`` (see chainrule.torch)."
    )
    method.__wrapped__ = mlx_method
    return method


def _flatten_with_dims(mlx_flatten):
    def flatten(self, *args, start_dim=_MISSING, end_dim=_MISSING, **kwargs):
        if start_dim is _MISSING and end_dim is _MISSING:
            return mlx_flatten(self, *args, **kwargs)
        s = 0 if start_dim is _MISSING else start_dim
        e = -1 if end_dim is _MISSING else end_dim
        return mx.flatten(self, s, e)

    flatten.__doc__ = mlx_flatten.__doc__
    flatten.__wrapped__ = mlx_flatten
    return flatten


_NEW_METHODS = {
    "view": view,
    "view_as": view_as,
    "reshape_as": view_as,
    "expand": expand,
    "expand_as": expand_as,
    "type_as": type_as,
    "float": _astype(mx.float32),
    "double": _astype(mx.float64),
    "half": _astype(mx.float16),
    "bfloat16": _astype(mx.bfloat16),
    "long": _astype(mx.int64),
    "int": _astype(mx.int32),
    "short": _astype(mx.int16),
    "char": _astype(mx.int8),
    "byte": _astype(mx.uint8),
    "bool": _astype(mx.bool_),
    "unsqueeze": unsqueeze,
    "permute": permute,
    "contiguous": contiguous,
    "clone": clone,
    "to": to,
    "cpu": cpu,
    "detach_": detach_,
    "register_hook": register_hook,
    "register_post_accumulate_grad_hook": register_post_accumulate_grad_hook,
    "retain_grad": retain_grad,
    "cuda": cuda,
    "zero_": zero_,
    "fill_": fill_,
    "masked_fill": masked_fill,
    "clamp": clamp,
    "relu": relu,
    "log_softmax": log_softmax,
    "t": t,
    "add": add,
    "sub": sub,
    "div": div,
    "mul": _binary(mx.multiply, "mul"),
    "pow": _binary(mx.power, "pow"),
    "matmul": _binary(mx.matmul, "matmul"),
    "mm": _binary(mx.matmul, "mm"),
    "eq": _binary(mx.equal, "eq"),
    "ne": _binary(mx.not_equal, "ne"),
    "gt": _binary(mx.greater, "gt"),
    "ge": _binary(mx.greater_equal, "ge"),
    "lt": _binary(mx.less, "lt"),
    "le": _binary(mx.less_equal, "le"),
    "is_floating_point": is_floating_point,
    "nelement": nelement,
    "ndimension": ndimension,
}
_NEW_PROPERTIES = {
    "data": property(_data_get, _data_set, doc=_data_get.__doc__),
    "device": property(_device, doc=_device.__doc__),
    "is_cuda": property(
        lambda self: _backend.is_gpu(self._data), doc="Whether the array lives on the GPU."
    ),
    "retains_grad": property(_hooks.retains_grad, doc=_hooks.retains_grad.__doc__),
}
_DIM_METHODS = (
    "sum",
    "mean",
    "max",
    "min",
    "argmax",
    "argmin",
    "softmax",
    "logsumexp",
    "cumsum",
    "cumprod",
    "all",
    "any",
    "squeeze",
)


def install(cls: type | None = None) -> None:
    """Give the array class PyTorch's tensor methods (idempotent; core methods are kept).

    Args:
        cls: the array class (``chainrule.core.array`` by default).
    """
    cls = mx.array if cls is None else cls
    if cls.__dict__.get("_torch_methods_installed"):
        return
    for name, fn in _NEW_METHODS.items():
        if name not in cls.__dict__:
            setattr(cls, name, fn)
    for name, prop in _NEW_PROPERTIES.items():
        if name not in cls.__dict__:
            setattr(cls, name, prop)
    for name in _DIM_METHODS:
        mlx_method = cls.__dict__.get(name)
        if mlx_method is not None:
            setattr(cls, name, _with_dim(name, mlx_method))
    if "flatten" in cls.__dict__:
        cls.flatten = _flatten_with_dims(cls.__dict__["flatten"])
    from . import tensor_methods_more as more

    for name, fn in more.METHODS.items():
        if name not in cls.__dict__:
            setattr(cls, name, fn)
    for name in more.INPLACE:
        if name + "_" not in cls.__dict__:
            setattr(cls, name + "_", make_inplace(name))
    for name, fn in more.INPLACE_SPECIAL.items():
        if name not in cls.__dict__:
            setattr(cls, name, make_inplace(name[:-1], fn))
    for name, prop in more.PROPERTIES.items():
        if name not in cls.__dict__:
            setattr(cls, name, prop)
    cls._torch_methods_installed = True
