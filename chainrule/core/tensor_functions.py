"""PyTorch's meanings of the functions behind the array's PyTorch-style methods.

``x.max(dim=1)``, ``x.sum(dim=0)``, ``x.squeeze(dim=0)``, ``x.to("cpu")`` and the other methods of
:mod:`chainrule.core.tensor_methods` work with only ``chainrule.core`` imported, so the code
they run lives here, in core; ``chainrule.torch`` offers the same functions under PyTorch's
names (``torch.max(x, 1)``). The differences from the MLX functions of the same names are
PyTorch's: ``dim``/``keepdim`` instead of ``axis``/``keepdims``; index results are int64;
``max``/``min`` with a ``dim`` return ``(values, indices)``; integers sum to int64;
``squeeze(x, dim)`` leaves a dimension that is not 1 alone; Python's ``float``/``int`` as a
dtype mean float64/int64. Inputs are arrays (``chainrule.torch`` converts other data first).
"""

from __future__ import annotations

import builtins
import collections
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import devices as _devices
from . import dtypes as _dt
from .array import STATE, _from_value, _Size, array
from .devices import TORCH_DEVICE_TYPES, Device, DeviceUnavailableError
from .ops.elementwise import _log_softmax

_I64 = np.dtype(np.int64)

Size = _Size
"""``torch.Size``: the tuple ``x.size()`` returns, with ``numel()``."""

# torch.return_types.max and friends: named (values, indices) pairs.
MaxResult = collections.namedtuple("max", ["values", "indices"])
MinResult = collections.namedtuple("min", ["values", "indices"])


# -- devices and dtypes ------------------------------------------------------------------------


class device:
    """A device name, as ``torch.device("cpu")`` or ``torch.device("cuda")``; the CPU holds
    arrays, and CUDA too where CuPy sees a GPU (``torch.cuda.is_available()``).

    Args:
        type: ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ``"mps"``... (or another ``device``).
        index: the device index, if not given in ``type``.
    """

    __slots__ = ("type", "index", "_saved")

    def __init__(self, type: str | device = "cpu", index: int | None = None) -> None:
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index  # type: ignore[has-type, assignment]
        if isinstance(type, builtins.int) and not isinstance(type, builtins.bool):
            if type < 0:
                raise RuntimeError(f"device: Device index must not be negative, got {type}")
            type, index = "cuda", type  # torch.device(0) is cuda:0
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {type!r}")
        name, colon, idx = type.partition(":")
        if name not in TORCH_DEVICE_TYPES:
            raise RuntimeError(
                f"device: Expected one of {', '.join(TORCH_DEVICE_TYPES)} device type at start "
                f"of device string: {type}"
            )
        if colon:
            if not idx.isdigit():
                raise RuntimeError(f"device: Invalid device string: {type!r}")
            if index is not None:
                raise ValueError(f"device: index given twice in {type!r} and index={index}")
            index = builtins.int(idx)
        if index is not None and index < 0:
            raise RuntimeError(f"device: Device index must not be negative, got {index}")
        self.type = name
        self.index = index

    def __enter__(self) -> device:
        """``with torch.device("cpu"):`` makes it the default device inside."""
        from chainrule.core import devices as _devices

        self._saved = _devices.TORCH_DEFAULT[0]
        _devices.set_torch_default_device(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        from chainrule.core import devices as _devices

        _devices.TORCH_DEFAULT[0] = self._saved

    def __repr__(self) -> str:
        extra = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{extra})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        if not isinstance(other, device):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


CPU = device("cpu")
CUDA0 = device("cuda", 0)

if _devices.ENV_GPU[0]:  # CHAINRULE_DEVICE=gpu: torch's default device is CUDA too
    _devices.TORCH_DEFAULT[0] = device("cuda")


class layout:
    """A memory layout, as ``torch.layout``; arrays here are always ``strided``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


strided = layout("strided")


def check_device(dev: Any, who: str) -> str | None:
    """The kind of device ``dev`` names (``"cpu"`` or ``"gpu"``; ``None`` for ``None``),
    refusing clearly a device that is not available.

    Args:
        dev: a device name, a ``device``, an ``mx.Device``, a CUDA index or ``None``.
        who: the calling function's name, for the message.

    Returns:
        ``"cpu"``, ``"gpu"`` (CUDA, or ``mx.gpu``), or ``None`` when ``dev`` is ``None``.

    Raises:
        DeviceUnavailableError: (a ``RuntimeError`` and ``ValueError``) for CUDA without a GPU
            (naming what is missing: CuPy, or a CUDA device) and for the devices chainrule
            has no backend for (``mps``, ``xla``...); ``RuntimeError`` for a device name PyTorch
            does not know.
    """
    if dev is None:
        return None
    if dev is CPU or (type(dev) is str and dev == "cpu"):  # the common case, no parsing
        return "cpu"
    if isinstance(dev, Device):
        name = "cuda" if dev.type == "gpu" else "cpu"
    else:
        d = dev if isinstance(dev, device) else device(dev)
        name = d.type
        if name == "cuda" and d.index not in (None, 0):
            g = _backend.gpu()
            if g is None or d.index >= g.count:
                raise DeviceUnavailableError(
                    f"{who}: CUDA error: invalid device ordinal {d.index} "
                    f"(torch.cuda.device_count() is {0 if g is None else g.count})"
                )
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        if _backend.gpu() is not None:
            return "gpu"
        raise DeviceUnavailableError(
            f"{who}: device {str(dev)!r} is not available: Torch not compiled with CUDA enabled "
            f"({_backend.gpu_unavailable_reason()}); chainrule computes on the CPU through NumPy "
            "(torch.cuda.is_available() is False), use device='cpu'"
        )
    raise DeviceUnavailableError(
        f"{who}: device {str(dev)!r} is not available; chainrule computes on the CPU through "
        "NumPy, and on CUDA through CuPy; use device='cpu'"
    )


def default_kind() -> str:
    """The kind of PyTorch's default device (``torch.set_default_device``): ``"cpu"`` or
    ``"gpu"``."""
    from .devices import TORCH_DEFAULT

    d = TORCH_DEFAULT[0]
    return "gpu" if d is not None and d.type == "cuda" else "cpu"


def place(out: Any, dev: Any, who: str) -> Any:
    """A new array ``out`` put on device ``dev`` (default: PyTorch's default device), in place:
    the one place factories choose the device of what they make.

    Raises:
        DeviceUnavailableError: for a device that is not available.
    """
    kind = check_device(dev, who) or default_kind()
    data = out._data
    if (kind == "gpu") != _backend.is_gpu(data):
        if out._node is not None:
            from .devices import move

            return move(out, kind)
        out._data = _backend.to_kind(data, kind)
    return out


def const(value: Any) -> array:
    """A new constant array of ``value``: NumPy data as it is, a GPU value (NumPy's functions
    hand CuPy arrays to CuPy) where it is.

    Args:
        value: array-like data or a backend value.

    Returns:
        An array recording nothing.
    """
    return _from_value(value if _backend.is_gpu(value) else np.asarray(value))


def stream_of(x: array) -> Any:
    """``x``'s device as the ``stream=`` of an ``mx`` factory, so that constants made to meet
    ``x`` (``mx.full(shape, v, stream=stream_of(x))``) lie on its device; ``None`` (the default
    device) when that is already ``x``'s.

    Args:
        x: the array the new constant will meet.

    Returns:
        ``mx.gpu``, ``mx.cpu`` or ``None``.
    """
    if _backend.is_gpu(x._data):
        return _devices.gpu
    return None if _backend.DEFAULT_XP[0] is _backend.xp else _devices.cpu


def device_of(x: Any) -> device:
    """The ``torch.device`` array ``x`` lives on: ``cpu``, or ``cuda:0``."""
    return CUDA0 if _backend.is_gpu(x._data) else CPU


def to_np_dtype(dtype: Any, default: Any = None) -> Any:
    """A dtype argument as a NumPy dtype; Python's ``float``/``int`` mean float64/int64 (PyTorch).

    Args:
        dtype: a chainrule dtype (``torch.float32``), a Python type, a NumPy dtype or a name.
        default: returned when ``dtype`` is ``None``.

    Returns:
        A NumPy dtype (or ``default``).
    """
    if dtype is None:
        return default
    if dtype is builtins.float:
        return np.dtype(np.float64)
    if dtype is builtins.int:
        return _I64
    if dtype is builtins.bool:
        return np.dtype(np.bool_)
    return np.dtype(_dt.to_np(dtype))


def _cast(x: array, dtype: Any) -> array:
    return x if dtype is None else mx.astype(x, _dt.from_np(to_np_dtype(dtype)))


# -- dimensions --------------------------------------------------------------------------------


def dims(dim: Any) -> Any:
    """A ``dim`` argument (``None``, an int or a sequence) as MLX's ``axis`` argument.

    Args:
        dim: ``None``, an integer or a sequence of integers.

    Returns:
        ``None``, the integer, or a tuple of ints.
    """
    if dim is None or isinstance(dim, (builtins.int, np.integer)):
        return dim
    return tuple(int(d) for d in dim)


def one_dim(x: array, dim: Any, who: str) -> int:
    """``dim`` as a non-negative dimension of ``x`` (0 for a 0-d ``x``, as PyTorch allows).

    Args:
        x: the array.
        dim: an integer, possibly negative.
        who: the calling function's name, for the message.

    Returns:
        The dimension.

    Raises:
        IndexError: when ``dim`` is out of range.
    """
    nd = x.ndim
    d = int(dim)
    if not -builtins.max(nd, 1) <= d < builtins.max(nd, 1):
        raise IndexError(
            f"{who}: dim {dim} is out of range for a tensor of {nd} dimensions (shape {x.shape})"
        )
    return d % nd if nd else 0


# -- reductions --------------------------------------------------------------------------------


def _indexed_extreme(x: array, dim: Any, keepdim: bool, pick, result, who: str):
    d = one_dim(x, dim, who)
    if x.ndim == 0:
        return result(x, _from_value(_backend.same_device(np.zeros((), _I64), x._data)))
    if x.shape[d] == 0:
        raise IndexError(f"{who}: dim {dim} of shape {x.shape} is empty")
    data = x._data
    if (x._node is None or not STATE.enabled) and type(data) is np.ndarray:
        # nothing to differentiate: the values are the reduction's (the picked elements'
        # values; a NaN is picked first and reduces to NaN), no gather needed
        idx = pick(data, axis=d, keepdims=keepdim)
        ufunc = np.maximum if pick is np.argmax else np.minimum
        vals = ufunc.reduce(data, axis=d, keepdims=keepdim)  # type: ignore[call-overload]
        return result(_from_value(vals), _from_value(idx.astype(_I64, copy=False)))
    idx = np.expand_dims(pick(data, axis=d), d)
    # Gather rather than reduce: the gradient goes to the selected element only (PyTorch).
    values = mx.take_along_axis(x, _from_value(idx), axis=d)
    if not keepdim:
        values = mx.squeeze(values, d)
        idx = np.squeeze(idx, d)
    return result(values, _from_value(idx.astype(_I64)))


def max(input: array, dim: Any = None, keepdim: bool = False) -> array | MaxResult:
    """The largest value; with ``dim``, ``(values, indices)`` along it; with an array, elementwise.

    Args:
        input: the array.
        dim: the dimension to reduce; or another array for ``maximum(input, dim)``.
        keepdim: keep the reduced dimension with length 1.

    Returns:
        A 0-d array; or a named tuple ``(values, indices)`` (indices int64) when ``dim`` is an
        int; or the elementwise maximum.
    """
    if dim is None:
        return mx.max(input)
    if isinstance(dim, array):
        return mx.maximum(input, dim)
    return _indexed_extreme(input, dim, keepdim, np.argmax, MaxResult, "max")


def min(input: array, dim: Any = None, keepdim: bool = False) -> array | MinResult:
    """The smallest value; with ``dim``, ``(values, indices)`` along it; with an array, elementwise.

    Args:
        input: the array.
        dim: the dimension to reduce; or another array for ``minimum(input, dim)``.
        keepdim: keep the reduced dimension with length 1.

    Returns:
        A 0-d array; or a named tuple ``(values, indices)`` (indices int64) when ``dim`` is an
        int; or the elementwise minimum.
    """
    if dim is None:
        return mx.min(input)
    if isinstance(dim, array):
        return mx.minimum(input, dim)
    return _indexed_extreme(input, dim, keepdim, np.argmin, MinResult, "min")


def _arg(pick, name):
    def fn(input: array, dim: int | None = None, keepdim: bool = False) -> array:
        data = input._data
        if data.size == 0:
            raise ValueError(f"{name}: the input of shape {input.shape} is empty")
        if dim is not None and data.ndim:  # the array's own method (no NumPy wrapper)
            out = getattr(data, name)(axis=one_dim(input, dim, name), keepdims=keepdim)
            return _from_value(out if out.dtype == _I64 else out.astype(_I64))
        xp = _backend.array_module(data)  # the result stays on the input's device
        if dim is None:
            out = xp.asarray(pick(data.reshape(-1)))
            if keepdim:
                out = out.reshape((1,) * data.ndim)
        else:
            one_dim(input, dim, name)  # (a 0-d input takes dim 0 or -1, as in PyTorch)
            out = xp.asarray(0)
        return _from_value(xp.asarray(out, dtype=_I64))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"""Index of the {name[3:]}imum along ``dim`` (of the flattened input when None).

    Args:
        input: the array.
        dim: the dimension; ``None`` for the flattened input.
        keepdim: keep the reduced dimension with length 1.

    Returns:
        An int64 array.
    """
    return fn


argmax = _arg(np.argmax, "argmax")
argmin = _arg(np.argmin, "argmin")


def sum(input: array, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> array:
    """Sum over ``dim`` (all dimensions by default); integers and bools sum to int64.

    Args:
        input: the array.
        dim: a dimension or a sequence of them.
        keepdim: keep the reduced dimensions with length 1.
        dtype: cast the input to this dtype first.

    Returns:
        The sums.
    """
    x = input
    if dtype is not None:
        x = _cast(x, dtype)
    elif x._data.dtype.kind in "biu":
        x = mx.astype(x, mx.int64)
    return mx.sum(x, dims(dim), keepdim)


def mean(input: array, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> array:
    """Mean over ``dim`` (all dimensions by default); integer input is averaged as float32.

    Args:
        input: the array.
        dim: a dimension or a sequence of them.
        keepdim: keep the reduced dimensions with length 1.
        dtype: cast the input to this dtype first.

    Returns:
        The means.
    """
    return mx.mean(_cast(input, dtype), dims(dim), keepdim)


# -- shapes ------------------------------------------------------------------------------------


def squeeze(input: array, dim: Any = None) -> array:
    """Remove dimensions of length 1; a ``dim`` whose length is not 1 is left alone (PyTorch).

    Args:
        input: the array.
        dim: a dimension or a sequence of them (all length-1 dimensions by default).

    Returns:
        The reshaped array.
    """
    x = input
    if dim is None:
        return mx.squeeze(x)
    ds = (dim,) if isinstance(dim, (builtins.int, np.integer)) else tuple(dim)
    keep = [one_dim(x, d, "squeeze") for d in ds]
    drop = tuple(d for d in keep if x.shape[d] == 1) if x.ndim else ()
    return mx.squeeze(x, drop) if drop else x


def t(input: array) -> array:
    """Transpose a matrix (0-D and 1-D inputs are returned as they are).

    Args:
        input: an array of at most two dimensions.

    Returns:
        The transposed array.
    """
    if input.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape {input.shape}")
    return mx.transpose(input) if input.ndim == 2 else input


# -- elementwise and friends -------------------------------------------------------------------


def softmax(input: array, dim: int, dtype: Any = None) -> array:
    """``exp(x) / sum(exp(x))`` along ``dim``.

    Args:
        input: the array.
        dim: the dimension that sums to one.
        dtype: cast the input to this dtype first.

    Returns:
        The probabilities.
    """
    return mx.softmax(_cast(input, dtype), axis=dim)


def log_softmax(input: array, dim: int, dtype: Any = None) -> array:
    """``x - logsumexp(x)`` along ``dim``.

    Args:
        input: the array.
        dim: the dimension.
        dtype: cast the input to this dtype first.

    Returns:
        The log-probabilities.
    """
    return _log_softmax(_cast(input, dtype), dim, False)  # PyTorch's NaN rows for +inf


def clamp(input: array, min: Any = None, max: Any = None) -> array:
    """Limit values to ``[min, max]``.

    Args:
        input: the array.
        min: the lower bound (or ``None``).
        max: the upper bound (or ``None``).

    Returns:
        The clamped array.
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return mx.clip(input, min, max)


def add(input: Any, other: Any, *, alpha: Any = 1) -> array:
    """``input + alpha * other``.

    Args:
        input: the first operand.
        other: the second operand.
        alpha: the multiplier of ``other``.

    Returns:
        The sum.
    """
    return mx.add(input, _scaled(other, alpha))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> array:
    """``input - alpha * other``.

    Args:
        input: the first operand.
        other: the second operand.
        alpha: the multiplier of ``other``.

    Returns:
        The difference.
    """
    return mx.subtract(input, _scaled(other, alpha))


def _scaled(other: Any, alpha: Any) -> Any:
    """``alpha * other``; two Python numbers stay one (a scalar to the tensor, as PyTorch)."""
    if alpha == 1:
        return other
    if type(other) in (int, float, bool) and type(alpha) in (int, float, bool):
        return other * alpha
    return mx.multiply(other, alpha)


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> array:
    """``input / other``, optionally rounded (``"trunc"`` or ``"floor"``).

    Args:
        input: the dividend.
        other: the divisor.
        rounding_mode: ``None`` (true division), ``"trunc"`` or ``"floor"``.

    Returns:
        The quotient.
    """
    if rounding_mode is None:
        return mx.divide(input, other)
    if rounding_mode == "floor":
        return mx.floor_divide(input, other)
    if rounding_mode == "trunc":
        q = mx.divide(input, other)
        rounded = mx.where(q < 0, mx.ceil(q), mx.floor(q))
        return mx.astype(rounded, mx.floor_divide(input, other).dtype)
    raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', not {rounding_mode!r}")


# these call only functions that read their operands' slots: the torch doors hand them the
# tensors themselves (so PyTorch's promotion of Python ints applies, as for ``t + 1``)
add.takes_tensors = sub.takes_tensors = div.takes_tensors = True  # type: ignore[attr-defined]
sum.takes_tensors = mean.takes_tensors = True  # type: ignore[attr-defined]  # mx.sum/mean/astype
