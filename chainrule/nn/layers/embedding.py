"""``Embedding``: a lookup table from integer ids to vectors."""

from __future__ import annotations

import math

from chainrule.core.extend import out_of_range

from ... import core as mx
from ...core.array import array
from ..module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """Maps integer ids to rows of a ``(num_embeddings, dims)`` table drawn from
    ``N(0, 1/dims)`` (MLX's initialisation).

    Args:
        num_embeddings: the number of ids (vocabulary size).
        dims: the vector size (PyTorch: ``embedding_dim``).
    """

    def __init__(
        self, num_embeddings: int, dims: int | None = None, *, embedding_dim: int | None = None
    ) -> None:
        super().__init__()
        dims = dims if dims is not None else embedding_dim
        if dims is None:
            raise TypeError("Embedding: missing dims (PyTorch: embedding_dim)")
        self.weight = mx.random.normal(shape=(num_embeddings, dims), scale=math.sqrt(1 / dims))

    def _extra_repr(self) -> str:
        n, d = self["weight"].shape
        return f"{n}, {d}"

    takes_tensors = True  # __call__ reads only its input's slots (nn/doors.py, light_door)

    def __call__(self, x: array) -> array:
        x = x if type(x) is array else mx.array(x)
        if x.dtype.name not in (
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
        ):
            raise ValueError(f"Embedding: ids must be integers, got dtype {x.dtype.name}")
        n = self["weight"].shape[0]
        if x.size and out_of_range(x._data, n):
            raise ValueError(
                f"Embedding: ids must be in [0, {n}), got values from {int(x._data.min())} to "
                f"{int(x._data.max())}"
            )
        return mx.take(self["weight"], x, axis=0)

    def as_linear(self, x: array) -> array:
        """Use the table as an output projection: ``x @ weight.T`` (for tied weights)."""
        return x @ self["weight"].T
