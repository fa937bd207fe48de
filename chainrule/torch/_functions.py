"""PyTorch's tensor functions over chainrule arrays: names, signatures, defaults and dtypes.

The differences from the MLX names in ``chainrule.core`` are PyTorch's: ``dim``/``keepdim``
instead of ``axis``/``keepdims``; Python ints become int64; index results (``argmax``, the
indices of ``max(x, dim)``) are int64; ``max``/``min`` with a ``dim`` return
``(values, indices)``; ``squeeze(x, dim)`` leaves a dimension that is not 1 alone;
``transpose(x, d0, d1)`` swaps two dimensions; ``std``/``var`` are unbiased by default.
"""

from __future__ import annotations

import builtins
import collections
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core.array import _from_value

array = mx.array
_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)

# torch.return_types.max and friends: named (values, indices) pairs.
MaxResult = collections.namedtuple("max", ["values", "indices"])
MinResult = collections.namedtuple("min", ["values", "indices"])
SortResult = collections.namedtuple("sort", ["values", "indices"])
TopkResult = collections.namedtuple("topk", ["values", "indices"])


# -- devices -----------------------------------------------------------------------------------


class device:
    """A device name, as ``torch.device("cpu")``; only the CPU can hold arrays here.

    Args:
        type: ``"cpu"``, ``"cuda"``, ``"cuda:0"``, ``"mps"``... (or another ``device``).
        index: the device index, if not given in ``type``.
    """

    __slots__ = ("type", "index")

    def __init__(self, type: str | device = "cpu", index: int | None = None) -> None:
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {type!r}")
        name, _, idx = type.partition(":")
        if idx:
            if index is not None:
                raise ValueError(f"device: index given twice in {type!r} and index={index}")
            index = int(idx)
        self.type = name
        self.index = index

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


def check_device(dev: Any, who: str) -> None:
    """Accept ``None``/"cpu"/``device("cpu")``; refuse any other device clearly."""
    if dev is None:
        return
    if isinstance(dev, mx.Device):
        name = dev.type
    else:
        name = device(dev).type
    if name != "cpu":
        raise ValueError(
            f"{who}: device {str(dev)!r} is not available; chainrule computes on the CPU "
            "through NumPy (torch.cuda.is_available() is False), use device='cpu'"
        )


# -- random numbers ----------------------------------------------------------------------------


class Generator:
    """A private random stream (``torch.Generator``), usable by ``randn``, ``DataLoader``...

    Attributes:
        rng: the ``numpy.random.Generator`` it draws from (reseeded in place, so loaders
            holding it see ``manual_seed``).
    """

    def __init__(self, device: Any = "cpu") -> None:
        check_device(device, "Generator")
        self._seed = secrets.randbits(63)
        self.rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed``; returns the generator."""
        self._seed = int(seed)
        self.rng.bit_generator.state = np.random.default_rng(self._seed).bit_generator.state
        return self

    def seed(self) -> int:
        """Reseed from a fresh random number and return it."""
        s = secrets.randbits(63)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the stream last started from."""
        return self._seed

    def get_state(self) -> dict:
        """The stream's state (a dict, where PyTorch has a byte tensor)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        """Restore a state from ``get_state``."""
        self.rng.bit_generator.state = state
        return self


def manual_seed(seed: int) -> None:
    """Seed the global random state shared with ``mx.random.seed``.

    Args:
        seed: the seed; later draws (``randn``, shuffling ``DataLoader``s, layer
            initialisations) repeat exactly.
    """
    mx.random.seed(int(seed))


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
    check_device(dev, who)
    if requires_grad:
        out.requires_grad = True
    return out


def randn(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Standard normal draws (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        generator: a private stream; the global state when omitted.
        dtype: a floating dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array of shape ``size``.
    """
    shape = _size(size, "randn")
    d = to_np_dtype(dtype, _F32)
    if generator is None:
        out = mx.random.normal(shape, dtype=_dt.from_np(d))
    else:
        out = _from_value(generator.rng.standard_normal(shape).astype(d))
    return _finish(out, requires_grad, device, "randn")


def rand(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Uniform draws in ``[0, 1)`` (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        generator: a private stream; the global state when omitted.
        dtype: a floating dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array of shape ``size``.
    """
    shape = _size(size, "rand")
    d = to_np_dtype(dtype, _F32)
    if generator is None:
        out = mx.random.uniform(0.0, 1.0, shape, dtype=_dt.from_np(d))
    else:
        out = _from_value(generator.rng.random(shape).astype(d))
    return _finish(out, requires_grad, device, "rand")


def randint(
    *args: Any,
    size: Any = None,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Integers drawn uniformly from ``[low, high)``: ``randint(low=0, high, size)`` (int64).

    Args:
        *args: ``(high, size)`` or ``(low, high, size)``; ``size`` may also be a keyword.
        size: the shape (a sequence).
        generator: a private stream; the global state when omitted.
        dtype: the result dtype (int64 by default).
        device: only the CPU.
        requires_grad: accepted for signature compatibility (integers cannot require it).

    Returns:
        A new array of shape ``size``.
    """
    if size is None:
        if not args:
            raise TypeError("randint: missing the size argument, e.g. randint(0, 10, (3,))")
        *args, size = args
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = int(low), int(high)
    if high <= low:
        raise ValueError(f"randint: need low < high, got low={low}, high={high}")
    shape = _size((size,), "randint")
    d = to_np_dtype(dtype, _I64)
    if generator is None:
        out = mx.random.randint(low, high, shape, dtype=mx.int64)
        out = out if d == _I64 else _from_value(out._data.astype(d))
    else:
        out = _from_value(generator.rng.integers(low, high, size=shape).astype(d))
    return _finish(out, requires_grad, device, "randint")


def randperm(
    n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> array:
    """A random permutation of ``0..n-1`` (int64).

    Args:
        n: the length.
        generator: a private stream; the global state when omitted.
        dtype: the result dtype (int64 by default).
        device: only the CPU.

    Returns:
        A new 1-D array.
    """
    check_device(device, "randperm")
    d = to_np_dtype(dtype, _I64)
    if generator is None:
        return _from_value(mx.random.permutation(int(n))._data.astype(d))
    return _from_value(generator.rng.permutation(int(n)).astype(d))


def _like(rand_fn):
    def like(input: array, *, dtype: Any = None, requires_grad: bool = False, **kw) -> array:
        d = input.dtype if dtype is None else dtype
        return rand_fn(*input.shape, dtype=d, requires_grad=requires_grad, **kw)

    like.__name__ = like.__qualname__ = rand_fn.__name__ + "_like"
    like.__doc__ = f"``{rand_fn.__name__}`` with the shape (and dtype) of ``input``."
    return like


randn_like = _like(randn)
rand_like = _like(rand)


# -- dtypes and creation -----------------------------------------------------------------------


def to_np_dtype(dtype: Any, default: Any = None):
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


def _plain(data: Any) -> Any:
    """Nested Python data with chainrule arrays replaced by their values."""
    if type(data) is array:
        return data._data
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data


def _infer(data: Any) -> np.ndarray:
    """PyTorch's inference for Python data: floats -> float32, ints -> int64, bools -> bool."""
    value = np.asarray(_plain(data))
    kind = value.dtype.kind
    if kind == "f" and value.dtype == np.float64:
        return value.astype(np.float32)
    if kind in "iu":
        return value.astype(np.int64)
    if kind == "c":
        return value.astype(np.complex64)
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
    """
    if type(data) is array:
        value = data._data
    elif isinstance(data, (np.ndarray, np.generic)):
        value = np.array(data)
    else:
        value = _infer(data)
    if dtype is not None:
        value = value.astype(to_np_dtype(dtype), copy=False)
    return _finish(_from_value(value), requires_grad, device, "tensor")


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> array:
    """``data`` as an array, returning ``data`` itself when it already is one of that dtype.

    Args:
        data: a scalar, nested sequence, NumPy array or array.
        dtype: the result dtype.
        device: only the CPU.

    Returns:
        An array.
    """
    if type(data) is array and (dtype is None or to_np_dtype(dtype) == data._data.dtype):
        check_device(device, "as_tensor")
        return data
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
    return _from_value(np.array(ndarray))


def _filled(fill, size: tuple, dtype, default, requires_grad, device, who) -> array:
    shape = _size(size, who)
    out = _from_value(np.full(shape, fill, dtype=to_np_dtype(dtype, default)))
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
    return _filled(0, size, dtype, _F32, requires_grad, device, "zeros")


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
    return _filled(1, size, dtype, _F32, requires_grad, device, "ones")


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
    return _filled(0, size, dtype, _F32, requires_grad, device, "empty")


def _scalar_dtype(value: Any):
    if isinstance(value, builtins.bool):
        return np.dtype(np.bool_)
    if isinstance(value, builtins.int):
        return _I64
    if isinstance(value, builtins.float):
        return _F32
    if isinstance(value, complex):
        return np.dtype(np.complex64)
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
        return _filled(fill, (input.shape,), dtype, input._data.dtype, requires_grad, device, name)

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
    return _filled(fill_value, (input.shape,), dtype, d, requires_grad, device, "full_like")


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
    vals = [v.item() if type(v) is array else v for v in (start, end, step)]
    if vals[2] == 0:
        raise ValueError("arange: step must be nonzero")
    floaty = builtins.any(isinstance(v, (builtins.float, np.floating)) for v in vals)
    d = to_np_dtype(dtype, _F32 if floaty else _I64)
    out = _from_value(np.arange(*vals, dtype=np.float64 if d.kind == "f" else d).astype(d))
    return _finish(out, requires_grad, device, "arange")


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
    d = to_np_dtype(dtype, _F32)
    out = _from_value(np.linspace(float(start), float(end), int(steps)).astype(d))
    return _finish(out, requires_grad, device, "linspace")


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
    out = _from_value(np.eye(int(n), None if m is None else int(m), dtype=to_np_dtype(dtype, _F32)))
    return _finish(out, requires_grad, device, "eye")


# -- reductions --------------------------------------------------------------------------------


def _as(x: Any) -> array:
    return x if type(x) is array else tensor(x)


def _dims(dim: Any) -> Any:
    if dim is None or isinstance(dim, (builtins.int, np.integer)):
        return dim
    return tuple(int(d) for d in dim)


def _one_dim(x: array, dim: Any, who: str) -> int:
    nd = x.ndim
    d = int(dim)
    if not -builtins.max(nd, 1) <= d < builtins.max(nd, 1):
        raise IndexError(
            f"{who}: dim {dim} is out of range for a tensor of {nd} dimensions (shape {x.shape})"
        )
    return d % nd if nd else 0


def _indexed_extreme(x: array, dim: Any, keepdim: bool, pick, result, who: str):
    d = _one_dim(x, dim, who)
    if x.ndim == 0:
        return result(x, _from_value(np.zeros((), _I64)))
    if x.shape[d] == 0:
        raise IndexError(f"{who}: dim {dim} of shape {x.shape} is empty")
    idx = np.expand_dims(pick(x._data, axis=d), d)
    # Gather rather than reduce: the gradient goes to the selected element only (PyTorch).
    values = mx.take_along_axis(x, _from_value(idx), axis=d)
    if not keepdim:
        values = mx.squeeze(values, d)
        idx = np.squeeze(idx, d)
    return result(values, _from_value(idx.astype(_I64)))


def max(input: array, dim: Any = None, keepdim: bool = False):
    """The largest value; with ``dim``, ``(values, indices)`` along it; with an array, elementwise.

    Args:
        input: the array.
        dim: the dimension to reduce; or another array for ``maximum(input, dim)``.
        keepdim: keep the reduced dimension with length 1.

    Returns:
        A 0-d array; or a named tuple ``(values, indices)`` (indices int64) when ``dim`` is an
        int; or the elementwise maximum.
    """
    x = _as(input)
    if dim is None:
        return mx.max(x)
    if type(dim) is array:
        return mx.maximum(x, dim)
    return _indexed_extreme(x, dim, keepdim, np.argmax, MaxResult, "max")


def min(input: array, dim: Any = None, keepdim: bool = False):
    """The smallest value; with ``dim``, ``(values, indices)`` along it; with an array, elementwise.

    Args:
        input: the array.
        dim: the dimension to reduce; or another array for ``minimum(input, dim)``.
        keepdim: keep the reduced dimension with length 1.

    Returns:
        A 0-d array; or a named tuple ``(values, indices)`` (indices int64) when ``dim`` is an
        int; or the elementwise minimum.
    """
    x = _as(input)
    if dim is None:
        return mx.min(x)
    if type(dim) is array:
        return mx.minimum(x, dim)
    return _indexed_extreme(x, dim, keepdim, np.argmin, MinResult, "min")


def _arg(pick, name):
    def fn(input: array, dim: int | None = None, keepdim: bool = False) -> array:
        x = _as(input)
        data = x._data
        if data.size == 0:
            raise ValueError(f"{name}: the input of shape {x.shape} is empty")
        if dim is None:
            out = np.asarray(pick(data.reshape(-1)))
            if keepdim:
                out = out.reshape((1,) * data.ndim)
        else:
            d = _one_dim(x, dim, name)
            out = pick(data, axis=d, keepdims=keepdim) if data.ndim else np.asarray(0)
        return _from_value(np.asarray(out, dtype=_I64))

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
    x = _as(input)
    if dtype is not None:
        x = mx.astype(x, _dt.from_np(to_np_dtype(dtype)))
    elif x._data.dtype.kind in "biu":
        x = mx.astype(x, mx.int64)
    return mx.sum(x, _dims(dim), keepdim)


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
    x = _as(input)
    if dtype is not None:
        x = mx.astype(x, _dt.from_np(to_np_dtype(dtype)))
    return mx.mean(x, _dims(dim), keepdim)


def _spread(fn, name):
    def f(
        input: array,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
    ) -> array:
        if unbiased is not None and correction is not None:
            raise ValueError(f"{name}: give unbiased or correction, not both")
        ddof = 1 if correction is None and unbiased is None else correction
        if unbiased is not None:
            ddof = int(builtins.bool(unbiased))
        return fn(_as(input), _dims(dim), keepdim, ddof)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"""The {"standard deviation" if name == "std" else "variance"} over ``dim``,
    unbiased by default (``correction=1``, PyTorch's default; MLX's ``ddof`` is 0).

    Args:
        input: the array.
        dim: a dimension or a sequence of them (all by default).
        unbiased: ``False`` for the population {name}.
        keepdim: keep the reduced dimensions with length 1.
        correction: the degrees-of-freedom correction.

    Returns:
        The result.
    """
    return f


std = _spread(mx.std, "std")
var = _spread(mx.var, "var")


# -- shapes and joins --------------------------------------------------------------------------


def cat(tensors: Sequence[array], dim: int = 0) -> array:
    """Join arrays along an existing dimension.

    Args:
        tensors: the arrays (same shape off ``dim``).
        dim: the dimension.

    Returns:
        The joined array.
    """
    return mx.concatenate(list(tensors), axis=dim)


concat = concatenate = cat


def stack(tensors: Sequence[array], dim: int = 0) -> array:
    """Join arrays of one shape along a new dimension.

    Args:
        tensors: the arrays.
        dim: where the new dimension goes.

    Returns:
        The stacked array.
    """
    return mx.stack(list(tensors), axis=dim)


def flatten(input: array, start_dim: int = 0, end_dim: int = -1) -> array:
    """Merge the dimensions from ``start_dim`` to ``end_dim``.

    Args:
        input: the array.
        start_dim: the first dimension to merge.
        end_dim: the last dimension to merge.

    Returns:
        The reshaped array.
    """
    return mx.flatten(_as(input), start_dim, end_dim)


def unsqueeze(input: array, dim: int) -> array:
    """Insert a dimension of length 1 at ``dim`` (negative counts from the end of the result).

    Args:
        input: the array.
        dim: the position of the new dimension.

    Returns:
        The reshaped array.
    """
    return mx.expand_dims(_as(input), int(dim))


def squeeze(input: array, dim: Any = None) -> array:
    """Remove dimensions of length 1; a ``dim`` whose length is not 1 is left alone (PyTorch).

    Args:
        input: the array.
        dim: a dimension or a sequence of them (all length-1 dimensions by default).

    Returns:
        The reshaped array.
    """
    x = _as(input)
    if dim is None:
        return mx.squeeze(x)
    dims = (dim,) if isinstance(dim, (builtins.int, np.integer)) else tuple(dim)
    keep = [_one_dim(x, d, "squeeze") for d in dims]
    drop = tuple(d for d in keep if x.shape[d] == 1) if x.ndim else ()
    return mx.squeeze(x, drop) if drop else x


def reshape(input: array, shape: Sequence[int]) -> array:
    """A view of ``input`` with a new shape (one entry may be -1).

    Args:
        input: the array.
        shape: the new shape.

    Returns:
        The reshaped array.
    """
    return mx.reshape(_as(input), tuple(shape))


def transpose(input: array, dim0: int, dim1: int) -> array:
    """Swap two dimensions (PyTorch's ``transpose``; MLX's permutes all axes).

    Args:
        input: the array.
        dim0: one dimension.
        dim1: the other.

    Returns:
        The transposed array.
    """
    return mx.swapaxes(_as(input), dim0, dim1)


swapaxes = swapdims = transpose


def permute(input: array, dims: Sequence[int]) -> array:
    """Reorder the dimensions.

    Args:
        input: the array.
        dims: the new order.

    Returns:
        The permuted array.
    """
    return mx.transpose(_as(input), tuple(dims))


def t(input: array) -> array:
    """Transpose a matrix (0-D and 1-D inputs are returned as they are).

    Args:
        input: an array of at most two dimensions.

    Returns:
        The transposed array.
    """
    x = _as(input)
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor of at most 2 dimensions, got shape {x.shape}")
    return mx.transpose(x) if x.ndim == 2 else x


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
    x = _as(input) if dtype is None else mx.astype(_as(input), _dt.from_np(to_np_dtype(dtype)))
    return mx.softmax(x, axis=dim)


def log_softmax(input: array, dim: int, dtype: Any = None) -> array:
    """``x - logsumexp(x)`` along ``dim``.

    Args:
        input: the array.
        dim: the dimension.
        dtype: cast the input to this dtype first.

    Returns:
        The log-probabilities.
    """
    x = _as(input) if dtype is None else mx.astype(_as(input), _dt.from_np(to_np_dtype(dtype)))
    return mx.log_softmax(x, axis=dim)


def relu(input: array) -> array:
    """``max(x, 0)`` (derivative 0 at 0).

    Args:
        input: the array.

    Returns:
        The rectified array.
    """
    x = _as(input)
    return mx.maximum(x, 0)


def where(condition: array, input: Any = None, other: Any = None):
    """``input`` where ``condition`` holds, else ``other``; with one argument, ``nonzero``.

    Args:
        condition: a boolean array.
        input: values where the condition holds.
        other: values elsewhere.

    Returns:
        The chosen values; or, given only ``condition``, a tuple of int64 index arrays.
    """
    if input is None and other is None:
        return tuple(_from_value(i.astype(_I64)) for i in np.nonzero(_as(condition)._data))
    return mx.where(condition, input, other)


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
    return mx.clip(_as(input), min, max)


clip = clamp


def add(input: Any, other: Any, *, alpha: Any = 1) -> array:
    """``input + alpha * other``.

    Args:
        input: the first operand.
        other: the second operand.
        alpha: the multiplier of ``other``.

    Returns:
        The sum.
    """
    return mx.add(input, other if alpha == 1 else mx.multiply(other, alpha))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> array:
    """``input - alpha * other``.

    Args:
        input: the first operand.
        other: the second operand.
        alpha: the multiplier of ``other``.

    Returns:
        The difference.
    """
    return mx.subtract(input, other if alpha == 1 else mx.multiply(other, alpha))


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


def allclose(
    input: array, other: array, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> builtins.bool:
    """Whether every element satisfies ``|input - other| <= atol + rtol * |other|``.

    Args:
        input: the first array.
        other: the second array.
        rtol: relative tolerance.
        atol: absolute tolerance.
        equal_nan: count two NaNs as equal.

    Returns:
        A Python bool.
    """
    return builtins.bool(mx.allclose(input, other, rtol, atol, equal_nan).item())


def equal(input: array, other: array) -> builtins.bool:
    """Whether the two arrays have the same shape and values.

    Args:
        input: the first array.
        other: the second array.

    Returns:
        A Python bool.
    """
    return builtins.bool(mx.array_equal(input, other).item())


def is_tensor(obj: Any) -> builtins.bool:
    """Whether ``obj`` is a chainrule array.

    Args:
        obj: anything.

    Returns:
        A Python bool.
    """
    return isinstance(obj, array)


def is_floating_point(input: array) -> builtins.bool:
    """Whether ``input`` has a floating dtype.

    Args:
        input: the array.

    Returns:
        A Python bool.
    """
    return input._data.dtype.kind == "f"


def numel(input: array) -> builtins.int:
    """Number of elements.

    Args:
        input: the array.

    Returns:
        The count.
    """
    return builtins.int(_as(input)._data.size)


def _ordered(x: array, dim: int, descending: bool) -> np.ndarray:
    d = _one_dim(x, dim, "sort")
    data = x._data
    if descending:
        # Reverse a stable ascending sort of the negated order so equal values keep their order.
        idx = np.flip(np.argsort(np.flip(data, d), axis=d, kind="stable"), d)
        idx = data.shape[d] - 1 - idx if data.ndim else idx
    else:
        idx = np.argsort(data, axis=d, kind="stable")
    return idx


def sort(input: array, dim: int = -1, descending: bool = False, stable: bool = False):
    """Sorted values along ``dim`` and their original positions (int64).

    Args:
        input: the array.
        dim: the dimension.
        descending: largest first.
        stable: accepted; the sort is always stable.

    Returns:
        A named tuple ``(values, indices)``.
    """
    x = _as(input)
    if x.ndim == 0:
        return SortResult(x, _from_value(np.zeros((), _I64)))
    idx = _ordered(x, dim, descending)
    values = mx.take_along_axis(x, _from_value(idx), axis=_one_dim(x, dim, "sort"))
    return SortResult(values, _from_value(idx.astype(_I64)))


def argsort(input: array, dim: int = -1, descending: bool = False, stable: bool = False) -> array:
    """Positions that sort ``input`` along ``dim`` (int64).

    Args:
        input: the array.
        dim: the dimension.
        descending: largest first.
        stable: accepted; the sort is always stable.

    Returns:
        The indices.
    """
    x = _as(input)
    if x.ndim == 0:
        return _from_value(np.zeros((), _I64))
    return _from_value(_ordered(x, dim, descending).astype(_I64))


def topk(input: array, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) values along ``dim``, in order, with their indices.

    Args:
        input: the array.
        k: how many.
        dim: the dimension.
        largest: largest first (``False``: smallest first).
        sorted: accepted; results are always sorted.

    Returns:
        A named tuple ``(values, indices)`` (indices int64).
    """
    x = _as(input)
    d = _one_dim(x, dim, "topk")
    if not 0 <= k <= (x.shape[d] if x.ndim else 1):
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of shape {x.shape}")
    idx = np.take(_ordered(x, d, largest), np.arange(k), axis=d)
    values = mx.take_along_axis(x, _from_value(idx), axis=d)
    return TopkResult(values, _from_value(idx.astype(_I64)))


def get_default_dtype():
    """The dtype of new floating arrays: float32."""
    return mx.float32
