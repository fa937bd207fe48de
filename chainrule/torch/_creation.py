"""PyTorch's creation functions (``torch.tensor``, ``zeros``, ``arange``, ...) and its dtype rules.

Python floats become float32, Python ints int64 and bools bool (``mx.array`` makes int32);
NumPy arrays and chainrule arrays keep their dtype; ``float``/``int`` as a dtype mean
float64/int64. Every function takes ``device=`` (only the CPU) and ``requires_grad=``.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import devices as _devices
from chainrule.core import dtypes as _dt
from chainrule.core.extend import from_value
from chainrule.core.tensor_functions import check_device, device_of, place, to_np_dtype
from chainrule.core.torch_generator import fma64

array = mx.array
_F32 = np.dtype(np.float32)
_DEFAULT_FLOAT = [_F32]  # torch.set_default_dtype's choice


def _float() -> np.dtype:
    """The default floating dtype (``torch.get_default_dtype``), as a NumPy dtype."""
    return _DEFAULT_FLOAT[0]


def _complex(who: str = "tensor") -> np.dtype:
    """The complex dtype paired with the default floating dtype (PyTorch's)."""
    d = _DEFAULT_FLOAT[0]
    if d == np.float64:
        return np.dtype(np.complex128)
    if d == np.float32 or d == np.float16:
        return np.dtype(np.complex64)  # PyTorch's complex32 has no NumPy counterpart
    raise RuntimeError(f"{who}: invalid default scalar type for complex (default dtype {d})")


_I64 = np.dtype(np.int64)


def _size(size: tuple, who: str) -> tuple:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all mean shape ``(2, 3)``."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: size must be integers, got {size!r}") from None
    if builtins.any(s < 0 for s in shape):
        raise ValueError(f"{who}: negative dimension in size {shape}")
    return shape


def _finish(out: array, requires_grad: bool, dev: Any, who: str) -> array:
    # The one exit of every creation function here (and in _random): where the
    # chainrule.torch.Tensor subclass will be given its class (docs/architecture.md).
    place(out, dev, who)  # on dev, or on torch's default device (the CPU unless set)
    if requires_grad:
        out.requires_grad = True
    return out


def _plain(data: Any) -> Any:
    """Nested Python data with chainrule arrays replaced by their values."""
    if isinstance(data, array):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def _infer(data: Any) -> np.ndarray:
    """PyTorch's inference for Python data: floats -> float32, ints -> int64, bools -> bool."""
    value = np.asarray(_plain(data))
    kind = value.dtype.kind
    if kind == "f" and value.dtype == np.float64:
        return value.astype(_float())
    if kind in "iu":
        return value.astype(np.int64)
    if kind == "c":
        return value.astype(_complex())
    if kind in "bf":
        return value
    raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} {data!r:.80}")


def tensor(
    data: Any,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    pin_memory: bool = False,
) -> array:
    """A new array holding a copy of ``data`` (PyTorch's ``torch.tensor``).

    Python floats become float32, Python ints int64, bools bool (PyTorch's rules, unlike
    ``mx.array``'s int32); NumPy arrays and chainrule arrays keep their dtype.

    Args:
        data: a scalar, nested sequence, NumPy array or array.
        dtype: the result dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.
        pin_memory: accepted for PyTorch code.

    Returns:
        A new array.

    Examples:
        >>> import chainrule.torch as torch
        >>> torch.tensor([1, 2, 3]).dtype == torch.int64
        True
        >>> torch.tensor([[1.0, 2.0]], requires_grad=True)
        tensor([[1., 2.]], requires_grad=True)
    """
    if isinstance(data, array):
        value = data._data
        if device is None:  # a tensor's copy stays on its device (PyTorch)
            device = device_of(data)
    elif isinstance(data, (np.ndarray, np.generic)):
        value = np.array(data)
    else:
        value = _infer(data)
    if dtype is not None:
        value = value.astype(to_np_dtype(dtype), copy=False)
    return _finish(from_value(value), requires_grad, device, "tensor")


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> array:
    """``data`` as an array, returning ``data`` itself when it already is one of that dtype.

    Args:
        data: a scalar, nested sequence, NumPy array or array.
        dtype: the result dtype.
        device: only the CPU.

    Returns:
        An array.
    """
    if isinstance(data, array) and (dtype is None or to_np_dtype(dtype) == data._data.dtype):
        kind = check_device(device, "as_tensor")
        return data if kind is None else _devices.move(data, kind)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(ndarray: np.ndarray) -> array:
    """An array with the values and dtype of a NumPy array (float64 stays float64).

    Arrays are immutable values here, so the data are copied: changing ``ndarray``
    afterwards does not change the array (in PyTorch the two share memory).

    Args:
        ndarray: the NumPy array.

    Returns:
        A new array.
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(ndarray).__name__}")
    _dt.from_np(ndarray.dtype)  # refuses object, string and other unsupported dtypes
    return _finish(from_value(np.array(ndarray)), False, "cpu", "from_numpy")


def _filled(fill, size: tuple, dtype, default, requires_grad, device, who) -> array:
    shape = _size(size, who)
    out = from_value(np.full(shape, fill, dtype=to_np_dtype(dtype, default)))
    return _finish(out, requires_grad, device, who)


def zeros(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> array:
    """Zeros of shape ``size`` (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array.
    """
    return _filled(0, size, dtype, _float(), requires_grad, device, "zeros")


def ones(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> array:
    """Ones of shape ``size`` (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array.
    """
    return _filled(1, size, dtype, _float(), requires_grad, device, "ones")


def empty(*size: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> array:
    """An array of shape ``size`` (filled with zeros: there is no uninitialised memory here).

    Args:
        *size: the shape, as integers or one sequence.
        dtype: the dtype (float32 by default).
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array.
    """
    return _filled(0, size, dtype, _float(), requires_grad, device, "empty")


def _scalar_dtype(value: Any):
    if isinstance(value, builtins.bool):
        return np.dtype(np.bool_)
    if isinstance(value, builtins.int):
        return _I64
    if isinstance(value, builtins.float):
        return _float()
    if isinstance(value, complex):
        return _complex("full")
    return np.asarray(_plain(value)).dtype


def full(
    size: Sequence[int],
    fill_value: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """``fill_value`` everywhere; the dtype follows it (int -> int64, float -> float32).

    Args:
        size: the shape.
        fill_value: the value.
        dtype: the dtype (inferred from ``fill_value`` by default).
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array.
    """
    value = _plain(fill_value)
    return _filled(value, (size,), dtype, _scalar_dtype(fill_value), requires_grad, device, "full")


def _like_filled(fill, name):
    def like(
        input: array, *, dtype: Any = None, device: Any = None, requires_grad: bool = False
    ) -> array:
        dev = device_of(input) if device is None else device  # input's device, as PyTorch
        return _filled(fill, (input.shape,), dtype, input._data.dtype, requires_grad, dev, name)

    like.__name__ = like.__qualname__ = name
    like.__doc__ = f"``{name[:-5]}`` with the shape and dtype of ``input``."
    return like


zeros_like = _like_filled(0, "zeros_like")
ones_like = _like_filled(1, "ones_like")
empty_like = _like_filled(0, "empty_like")


def full_like(
    input: array,
    fill_value: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """``fill_value`` with the shape (and dtype) of ``input``.

    Args:
        input: gives the shape and the default dtype.
        fill_value: the value.
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array.
    """
    d = input._data.dtype
    dev = device_of(input) if device is None else device  # input's device, as PyTorch
    return _filled(fill_value, (input.shape,), dtype, d, requires_grad, dev, "full_like")


def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Values from ``start`` to ``end`` (excluded) by ``step``: int64 for integers, else float32.

    Args:
        start: the first value (or ``end`` when ``end`` is omitted, starting at 0).
        end: the bound, not included.
        step: the spacing.
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new 1-D array.
    """
    if end is None:
        start, end = 0, start
    if type(start) is int and type(end) is int and type(step) is int:  # the common case
        vals: Any = (start, end, step)
        floaty = False
    else:
        vals = [v.item() if isinstance(v, array) else v for v in (start, end, step)]
        floaty = builtins.any(isinstance(v, (builtins.float, np.floating)) for v in vals)
    if vals[2] == 0:
        raise ValueError("arange: step must be nonzero")
    d = to_np_dtype(dtype, _float() if floaty else _I64)
    if d in (np.dtype(np.float32), np.dtype(np.float64)):
        n = len(np.arange(*vals, dtype=np.float64))  # (NumPy's count is PyTorch's ceil)
        data = _arange_values(float(vals[0]), float(vals[2]), n, d)
    elif d.kind == "f":  # computed in float64, rounded once
        data = np.arange(*vals, dtype=np.float64).astype(d, copy=False)
    else:
        data = np.arange(*vals, dtype=d)
    return _finish(from_value(data), requires_grad, device, "arange")


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32).

    Args:
        start: the first value.
        end: the last value.
        steps: how many values.
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new 1-D array.
    """
    if int(steps) < 0:
        raise ValueError(f"linspace: steps must be >= 0, got {steps}")
    d = to_np_dtype(dtype, _float())
    out = from_value(_linspace_values(float(start), float(end), int(steps), d))
    return _finish(out, requires_grad, device, "linspace")


_GRAIN = 32768  # (ATen's internal::GRAIN_SIZE)


def _arange_values(start: float, step: float, n: int, d: np.dtype) -> np.ndarray:
    """PyTorch's CPU ``arange`` values (its AVX2 kernel): in each thread's chunk (ATen's
    ``parallel_for``: more than 32768 values split between the threads), vectors of 8 float32
    or 4 float64 values, two vectors a step, each lane ``base + j * step`` from its vector's
    ``base = start + step * i``, the chunk's rest ``start + step * i``; in float64, every
    multiply-add fused, the float32 bases rounded to float32."""
    width = 8 if d == np.float32 else 4
    tasks = 1
    if n > _GRAIN:
        tasks = max(1, min(int(mx.get_num_threads()), -(-n // _GRAIN)))
    chunk = -(-n // tasks) if n else 1
    i = np.arange(n, dtype=np.float64)
    begin = (i // chunk) * chunk  # each value's chunk's first index
    offset = i - begin
    first = begin + (offset // width) * width  # each value's vector's first index
    base = fma64(first, step, start)
    if d == np.float32:
        base = base.astype(np.float32).astype(np.float64)
    lanes = fma64(i - first, step, base)
    rest = fma64(i, step, start)
    size = np.minimum(begin + chunk, n) - begin
    in_vectors = offset < (size // (2 * width)) * (2 * width)
    return np.where(in_vectors, lanes, rest).astype(d)


def _linspace_values(start: float, end: float, n: int, d: np.dtype) -> np.ndarray:
    """PyTorch's CPU ``linspace`` values: ``step = (end - start) / (n - 1)`` in the dtype, the
    first half ``start + step * i`` and the second ``end - step * (n - 1 - i)``, each one fused
    multiply-add (as its compiled kernel), for float32 and float64; NumPy's for the rest."""
    if d not in (np.dtype(np.float32), np.dtype(np.float64)) or n < 2:
        return np.linspace(start, end, n).astype(d)
    t = d.type
    lo, hi = t(start), t(end)
    step = t((hi - lo) / t(n - 1))
    i = np.arange(n, dtype=np.float64)
    back = (n - 1) - i
    if d == np.float32:  # (a float32 product is exact in float64: one rounding, as the FMA)
        first = np.float64(lo) + np.float64(step) * i
        second = np.float64(hi) - np.float64(step) * back
    else:
        first = fma64(i, float(step), float(lo))
        second = fma64(-back, float(step), float(hi))
    return np.where(i < n // 2, first, second).astype(d)


def eye(
    n: int,
    m: int | None = None,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """The ``n`` by ``m`` identity matrix (float32).

    Args:
        n: rows.
        m: columns (``n`` by default).
        dtype: the dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new 2-D array.
    """
    out = from_value(
        np.eye(int(n), None if m is None else int(m), dtype=to_np_dtype(dtype, _float()))
    )
    return _finish(out, requires_grad, device, "eye")


def as_array(x: Any) -> array:
    """``x`` itself when it is an array, else ``tensor(x)`` (PyTorch's dtype rules).

    Args:
        x: an array or data.

    Returns:
        An array.
    """
    return x if isinstance(x, array) else tensor(x)


def takes_tensor(fn: Callable) -> Callable:
    """``fn`` (a function of :mod:`chainrule.core.tensor_functions`) accepting data as well.

    Args:
        fn: a function whose first argument is an array.

    Returns:
        The same function, its first argument converted by :func:`as_array` first.
    """

    @functools.wraps(fn)
    def wrapper(input: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(input if isinstance(input, array) else tensor(input), *args, **kwargs)

    return wrapper


def is_tensor(obj: Any) -> builtins.bool:
    """Whether ``obj`` is a chainrule array.

    Args:
        obj: anything.

    Returns:
        A Python bool.
    """
    return isinstance(obj, array)


def get_default_dtype() -> mx.Dtype:
    """The dtype of new floating tensors made from Python data or without a dtype (float32
    unless ``set_default_dtype`` chose another)."""
    return _dt.from_np(_DEFAULT_FLOAT[0])


def set_default_dtype(d: Any) -> None:
    """Choose the dtype of new floating tensors (PyTorch's ``torch.set_default_dtype``):
    ``torch.tensor([1.0])``, ``zeros``, ``ones``, ``empty``, ``full`` of a float, ``arange``
    of floats, ``linspace``, ``eye`` (and complex data: complex128 under float64).

    Args:
        d: ``torch.float32``, ``torch.float64``, ``torch.float16`` or ``torch.bfloat16``.

    Raises:
        TypeError: for a dtype that is not floating point.
    """
    try:
        np_d = to_np_dtype(d)
    except (TypeError, ValueError, KeyError):
        np_d = None
    if np_d is None or _dt.kind(np_d) != "f":
        raise TypeError(
            f"set_default_dtype: only floating-point types are supported as the default type, "
            f"got {d!r}"
        )
    _DEFAULT_FLOAT[0] = np.dtype(np_d)


def get_default_device() -> Any:
    """The default device of new tensors: ``device(type='cpu')``."""
    from chainrule.core import devices as _devices
    from chainrule.core.tensor_functions import CPU

    return _devices.TORCH_DEFAULT[0] or CPU


def set_default_device(device: Any) -> None:
    """``torch.set_default_device``: ``None`` or ``"cpu"``; other devices are refused at once
    (a ``RuntimeError``/``ValueError`` naming the device), as none is available here."""
    from chainrule.core import devices as _devices

    _devices.set_torch_default_device(device)
