"""PyTorch's shape functions: ``cat``, ``stack``, ``transpose(x, dim0, dim1)``, ``squeeze``, ...

``transpose`` swaps two dimensions (MLX's permutes all axes); ``squeeze(x, dim)`` leaves a
dimension that is not 1 alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import chainrule.core as mx
from chainrule.core import tensor_functions as _tf

from ._creation import as_array, takes_tensor
from ._tensor_class import takes_tensors

array = mx.array


@takes_tensors
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


@takes_tensors
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
    return mx.flatten(as_array(input), start_dim, end_dim)


def unsqueeze(input: array, dim: int) -> array:
    """Insert a dimension of length 1 at ``dim`` (negative counts from the end of the result).

    Args:
        input: the array.
        dim: the position of the new dimension.

    Returns:
        The reshaped array.
    """
    return mx.expand_dims(as_array(input), int(dim))


squeeze = takes_tensor(_tf.squeeze)


def reshape(input: array, shape: Sequence[int]) -> array:
    """A view of ``input`` with a new shape (one entry may be -1).

    Args:
        input: the array.
        shape: the new shape.

    Returns:
        The reshaped array.
    """
    return mx.reshape(as_array(input), tuple(shape))


@takes_tensors
def transpose(input: array, dim0: int, dim1: int) -> array:
    """Swap two dimensions (PyTorch's ``transpose``; MLX's permutes all axes).

    Args:
        input: the array.
        dim0: one dimension.
        dim1: the other.

    Returns:
        The transposed array.
    """
    return mx.swapaxes(as_array(input), dim0, dim1)


swapaxes = swapdims = transpose


def permute(input: array, dims: Sequence[int]) -> array:
    """Reorder the dimensions.

    Args:
        input: the array.
        dims: the new order.

    Returns:
        The permuted array.
    """
    return mx.transpose(as_array(input), tuple(dims))


t = takes_tensor(_tf.t)
