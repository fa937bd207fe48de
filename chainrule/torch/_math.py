"""PyTorch's reductions, comparisons and elementwise functions over chainrule arrays.

``max``/``min`` with a ``dim`` return ``(values, indices)``; index results are int64;
integers sum to int64; ``std``/``var`` are unbiased by default; ``sort``/``topk`` return named
``(values, indices)`` pairs. The functions shared with the array's methods
(``x.max(dim=1)``) are defined once in :mod:`chainrule.core.tensor_functions`.
"""

from __future__ import annotations

import builtins
import collections
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import tensor_functions as _tf
from chainrule.core.extend import from_value
from chainrule.core.tensor_functions import add, div, one_dim, sub

from ._creation import _I64, as_array, takes_tensor
from ._tensor_class import takes_tensors

__all__ = [
    "add",
    "allclose",
    "argmax",
    "argmin",
    "argsort",
    "clamp",
    "clip",
    "div",
    "equal",
    "is_floating_point",
    "log_softmax",
    "max",
    "mean",
    "min",
    "numel",
    "relu",
    "softmax",
    "sort",
    "std",
    "sub",
    "sum",
    "topk",
    "var",
    "where",
]

array = mx.array
SortResult = collections.namedtuple("sort", ["values", "indices"])
TopkResult = collections.namedtuple("topk", ["values", "indices"])

# -- reductions --------------------------------------------------------------------------------

# takes_tensors (the light door, _tensor_class.door): these read only their input's slots and
# call core functions, so a tensor goes in as it is
max = takes_tensors(takes_tensor(_tf.max))
min = takes_tensors(takes_tensor(_tf.min))
argmax = takes_tensors(takes_tensor(_tf.argmax))
argmin = takes_tensors(takes_tensor(_tf.argmin))
sum = takes_tensors(takes_tensor(_tf.sum))
mean = takes_tensors(takes_tensor(_tf.mean))


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
        return fn(as_array(input), _tf.dims(dim), keepdim, ddof)

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


std = takes_tensors(_spread(mx.std, "std"))
var = takes_tensors(_spread(mx.var, "var"))

# -- elementwise and friends -------------------------------------------------------------------

softmax = takes_tensors(takes_tensor(_tf.softmax))
log_softmax = takes_tensors(takes_tensor(_tf.log_softmax))
clamp = clip = takes_tensors(takes_tensor(_tf.clamp))


@takes_tensors
def relu(input: array) -> array:
    """``max(x, 0)`` (derivative 0 at 0).

    Args:
        input: the array.

    Returns:
        The rectified array.
    """
    x = as_array(input)
    return mx.maximum(x, 0)


def where(condition: array, input: Any = None, other: Any = None) -> array | tuple[array, ...]:
    """``input`` where ``condition`` holds, else ``other``; with one argument, ``nonzero``.

    Args:
        condition: a boolean array.
        input: values where the condition holds.
        other: values elsewhere.

    Returns:
        The chosen values; or, given only ``condition``, a tuple of int64 index arrays.
    """
    if input is None and other is None:
        return tuple(from_value(i.astype(_I64)) for i in np.nonzero(as_array(condition)._data))
    return mx.where(condition, input, other)


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
    return builtins.int(as_array(input)._data.size)


def _ordered(x: array, dim: int, descending: bool) -> np.ndarray:
    d = one_dim(x, dim, "sort")
    data = x._data
    if descending:
        # Reverse a stable ascending sort of the negated order so equal values keep their order.
        idx = np.flip(np.argsort(np.flip(data, d), axis=d, kind="stable"), d)
        idx = data.shape[d] - 1 - idx if data.ndim else idx
    else:
        idx = np.argsort(data, axis=d, kind="stable")
    return idx


def sort(input: array, dim: int = -1, descending: bool = False, stable: bool = False) -> SortResult:
    """Sorted values along ``dim`` and their original positions (int64).

    Args:
        input: the array.
        dim: the dimension.
        descending: largest first.
        stable: accepted; the sort is always stable.

    Returns:
        A named tuple ``(values, indices)``.
    """
    x = as_array(input)
    if x.ndim == 0:
        return SortResult(x, from_value(_backend.same_device(np.zeros((), _I64), x._data)))
    idx = _ordered(x, dim, descending)
    values = mx.take_along_axis(x, from_value(idx), axis=one_dim(x, dim, "sort"))
    return SortResult(values, from_value(idx.astype(_I64)))


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
    x = as_array(input)
    if x.ndim == 0:
        return from_value(_backend.same_device(np.zeros((), _I64), x._data))
    return from_value(_ordered(x, dim, descending).astype(_I64))


def topk(
    input: array, k: int, dim: int = -1, largest: bool = True, sorted: bool = True
) -> TopkResult:
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
    x = as_array(input)
    d = one_dim(x, dim, "topk")
    if not 0 <= k <= (x.shape[d] if x.ndim else 1):
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of shape {x.shape}")
    key = [builtins.slice(None)] * x.ndim
    key[d] = builtins.slice(0, k)  # the first k positions, on the input's device
    idx = _ordered(x, d, largest)[tuple(key)]
    values = mx.take_along_axis(x, from_value(idx), axis=d)
    return TopkResult(values, from_value(idx.astype(_I64)))
