"""Datasets: indexable collections of samples, with PyTorch's names.

A dataset answers ``len(ds)`` and ``ds[i]``. Datasets that hold their samples as arrays
(``TensorDataset``, and ``Subset`` of one) also answer ``get_batch(indices)``, which fetches a
whole batch with one fancy index per array; ``DataLoader`` uses it instead of stacking samples
one by one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.extend import from_value

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "as_rng"]


class Dataset:
    """The base class of map-style datasets: subclasses define ``__getitem__`` and ``__len__``.

    A subclass whose samples live in arrays may also define ``get_batch(indices)`` returning the
    collated batch for a NumPy vector of indices (or a ``slice``); ``DataLoader`` then fetches
    each batch with it in one call instead of collating ``len(indices)`` samples.
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


def _as_array(x: Any, where: str) -> mx.array:
    if type(x) is mx.array:
        return x
    try:
        return mx.array(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: cannot make an array from {type(x).__name__}: {e}") from None


class TensorDataset(Dataset):
    """Samples are the rows of one or more arrays of equal length: ``ds[i] = (a[i], b[i], ...)``.

    Args:
        *tensors: chainrule arrays (or anything ``mx.array`` accepts: NumPy arrays, lists),
            all with the same first dimension.

    Raises:
        ValueError: when no array is given, an array is 0-d, or the lengths differ.
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset: give at least one array")
        arrays = tuple(_as_array(t, f"TensorDataset (argument {i})") for i, t in enumerate(tensors))
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(
                    f"TensorDataset: argument {i} is a 0-d array; every array needs a first "
                    "dimension that indexes the samples"
                )
        lengths = [a.shape[0] for a in arrays]
        if len(set(lengths)) > 1:
            shapes = ", ".join(f"argument {i}: shape {a.shape}" for i, a in enumerate(arrays))
            raise ValueError(
                f"TensorDataset: all arrays must have the same length (first dimension), "
                f"got lengths {lengths} ({shapes})"
            )
        self.tensors = arrays

    def __getitem__(self, index: int) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def get_batch(self, indices: np.ndarray | slice) -> tuple:
        """The batch of samples at ``indices``: one fancy index (or slice) per array.

        Args:
            indices: an integer NumPy vector, or a ``slice`` for consecutive samples.

        Returns:
            A tuple with one array per dataset array, each of length ``len(indices)``.
        """
        return tuple(
            from_value(t._data[indices]) if t._node is None else t[indices] for t in self.tensors
        )


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: the dataset to draw from.
        indices: a sequence of integer positions in ``dataset``.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices
        self._idx = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)

    # A property that raises AttributeError, so that ``hasattr(subset, "get_batch")`` is true
    # exactly when the parent dataset can fetch whole batches.
    @property
    def get_batch(self):
        """Fetch a batch through the parent's ``get_batch`` when it has one (else absent)."""
        parent = getattr(self.dataset, "get_batch", None)
        if parent is None:
            raise AttributeError("get_batch")
        idx = self._idx

        def get_batch(indices):
            return parent(idx[indices])

        return get_batch


class ConcatDataset(Dataset):
    """Several datasets one after the other.

    Args:
        datasets: the datasets to join (at least one).
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: give at least one dataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for length {n}")
        k = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


def as_rng(generator: Any = None, seed: int | None = None, who: str = "") -> Any:
    """The random source a loader or split draws from.

    Args:
        generator: ``None`` (the global ``chainrule.core.random`` state, which
            ``mx.random.seed`` and ``chainrule.torch.manual_seed`` reset), a
            ``numpy.random.Generator``, an object with such a generator (or a stream that
            answers the same calls) as ``.rng`` (``chainrule.torch.Generator``), or an
            MLX-style key (``mx.random.key(0)``).
        seed: an integer seed for a private generator (exclusive with ``generator``).
        who: the caller's name, for error messages.

    Returns:
        ``None`` for the global state, else a ``numpy.random.Generator``.
    """
    if generator is not None and seed is not None:
        raise ValueError(f"{who}: give a generator or a seed, not both")
    if seed is not None:
        return np.random.default_rng(int(seed))
    if generator is None:
        return None
    if isinstance(generator, np.random.Generator) or _generator_like(generator):
        return generator
    rng = getattr(generator, "rng", None)
    if isinstance(rng, np.random.Generator) or _generator_like(rng):
        return rng
    if type(generator) is mx.array and generator.shape == (2,) and generator.dtype == mx.uint32:
        # An MLX key names one stream: turn it into a generator that advances per epoch.
        return np.random.default_rng([int(v) for v in generator._data])
    raise TypeError(
        f"{who}: generator must be a numpy.random.Generator, a chainrule.torch.Generator or "
        f"an mx.random.key, not {type(generator).__name__}"
    )


def _generator_like(rng: Any) -> bool:
    """Whether ``rng`` answers the calls made of a ``numpy.random.Generator`` here
    (``permutation``, ``integers``, ``random``, ``bit_generator.state``): a
    ``chainrule.torch.Generator``'s stream, which answers them with PyTorch's algorithms."""
    return all(hasattr(rng, n) for n in ("permutation", "integers", "random", "bit_generator"))


def permutation(n: int, rng: Any) -> np.ndarray:
    """A random permutation of ``range(n)`` from ``rng`` (``None``: the global state)."""
    if rng is None:
        # drawn on the host (the same numbers as on any device): indices index host data
        return mx.random.permutation(n, stream=mx.cpu)._data.astype(np.int64, copy=False)
    return rng.permutation(n)


def random_split(
    dataset: Dataset, lengths: Sequence[int | float], generator: Any = None
) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping subsets (PyTorch's semantics).

    Args:
        dataset: the dataset to split.
        lengths: the subsets' sizes, summing to ``len(dataset)``; or fractions summing to 1,
            whose sizes are ``floor(fraction * n)`` with the remainder handed out one by one,
            round-robin, from the first subset.
        generator: the random source (see ``as_rng``); the global state when omitted.

    Returns:
        One ``Subset`` per length.

    Raises:
        ValueError: when the lengths neither sum to ``len(dataset)`` nor are fractions
            summing to 1, or a length is negative.
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= n:
        for i, f in enumerate(lengths):
            if not 0 <= f <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {f}, not in [0, 1]")
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, s in enumerate(sizes):
            if s == 0:
                warnings.warn(
                    f"random_split: length of split at index {i} is 0; this split will be empty",
                    stacklevel=2,
                )
        lengths = sizes
    for i, s in enumerate(lengths):
        if s != int(s) or s < 0:
            raise ValueError(
                f"random_split: length at index {i} is {s}, not a count >= 0 (give counts "
                f"summing to {n}, or fractions summing to 1; {lengths} sum to {sum(lengths)})"
            )
    lengths = [int(s) for s in lengths]
    if sum(lengths) != n:
        raise ValueError(
            f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the dataset has "
            f"{n} samples (give counts summing to {n}, or fractions summing to 1)"
        )
    perm = permutation(n, as_rng(generator, None, "random_split")).tolist()
    out, start = [], 0
    for s in lengths:
        out.append(Subset(dataset, perm[start : start + s]))
        start += s
    return out
