"""Stream datasets and the remaining samplers of ``torch.utils.data``.

``IterableDataset`` (a dataset that is a stream: ``__iter__`` instead of ``__getitem__``),
``ChainDataset`` (streams one after another), ``StackDataset`` (datasets side by side, one
sample a tuple or dict of theirs), ``WeightedRandomSampler``, ``DistributedSampler`` (one
process's share of the indices; chainrule trains in one process unless told the replica count)
and ``default_convert`` (NumPy arrays in a sample become arrays, nothing is stacked).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.extend import from_value

from .dataset import Dataset, as_rng
from .loader import Sampler

__all__ = [
    "ChainDataset",
    "DistributedSampler",
    "IterableDataset",
    "StackDataset",
    "WeightedRandomSampler",
    "default_convert",
]


class IterableDataset(Dataset):
    """A dataset read as a stream: subclasses define ``__iter__``.

    ``DataLoader`` batches what the stream yields, in order (no sampler, no shuffling, as in
    PyTorch). ``ds1 + ds2`` chains two streams.
    """

    _iterable_dataset = True

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it instead")

    def __len__(self) -> int:
        # TypeError (not NotImplementedError), so that list(stream) and len() hints work.
        raise TypeError(f"{type(self).__name__} is a stream and has no len()")

    def __add__(self, other: IterableDataset) -> ChainDataset:
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """Several iterable datasets read one after another.

    Args:
        datasets: the iterable datasets.
    """

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)

    def __iter__(self) -> Iterator[Any]:
        for d in self.datasets:
            if not getattr(d, "_iterable_dataset", False):
                raise TypeError(
                    f"ChainDataset: only supports IterableDataset, got {type(d).__name__}"
                )
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not getattr(d, "_iterable_dataset", False):
                raise TypeError(
                    f"ChainDataset: only supports IterableDataset, got {type(d).__name__}"
                )
            total += len(d)
        return total


class StackDataset(Dataset):
    """Datasets of one length side by side: sample ``i`` is a tuple (or dict) of theirs.

    Args:
        *args: datasets, for tuple samples.
        **kwargs: named datasets, for dict samples (not both).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ValueError(
                "StackDataset: supports either tuple-like (positional) or dict-like (keyword) "
                "datasets, not both"
            )
        parts = list(args) or list(kwargs.values())
        if not parts:
            raise ValueError("StackDataset: at least one dataset should be passed")
        self._length = len(parts[0])
        if any(len(p) != self._length for p in parts):
            raise ValueError(
                f"StackDataset: size mismatch between datasets: {[len(p) for p in parts]}"
            )
        self.datasets: Any = tuple(args) if args else dict(kwargs)

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: list) -> list:
        return [self[i] for i in indices]

    def __len__(self) -> int:
        return self._length


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``.

    Args:
        weights: one non-negative weight per index (need not sum to one).
        num_samples: indices per epoch.
        replacement: draw with replacement (the default); without, each index at most once.
        generator: the random source; the global state (``mx.random.seed``) when omitted.
    """

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator: Any = None,
    ) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
            raise ValueError(
                f"WeightedRandomSampler: num_samples should be a positive integer value, but "
                f"got num_samples={num_samples!r}"
            )
        if not isinstance(replacement, bool):
            raise ValueError(
                f"WeightedRandomSampler: replacement should be a boolean value, but got "
                f"replacement={replacement!r}"
            )
        # the indices drawn are Python ints: the weights are read on the host (an explicit copy
        # of GPU weights), as PyTorch's ``multinomial(...).tolist()`` ends there
        w = backend.to_host(weights._data) if isinstance(weights, mx.array) else weights
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(
                f"WeightedRandomSampler: weights should be a 1-D sequence, got shape {w.shape}"
            )
        if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise RuntimeError(
                "WeightedRandomSampler: invalid weights (they must be finite, non-negative and "
                "not all zero)"
            )
        if not replacement and num_samples > np.count_nonzero(w):
            raise RuntimeError(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                f"from {np.count_nonzero(w)} non-zero weights"
            )
        self.weights = from_value(w)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator
        self._rng = as_rng(generator, None, "WeightedRandomSampler")

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def _uniform(self, n: int) -> np.ndarray:
        if self._rng is None:  # drawn on the default device, read on the host
            return backend.to_host(mx.random.uniform(0.0, 1.0, (n,), dtype=mx.float64)._data)
        return self._rng.random(n)

    def _order(self) -> np.ndarray:
        w = backend.to_host(self.weights._data)
        p = w / w.sum()
        if self.replacement:
            cdf = np.cumsum(p)
            u = self._uniform(self.num_samples) * cdf[-1]
            return np.minimum(np.searchsorted(cdf, u, side="right"), len(p) - 1).astype(np.int64)
        # Without replacement: Gumbel top-k (each draw proportional to the remaining weights).
        with np.errstate(divide="ignore"):
            keys = np.log(p) - np.log(-np.log(np.clip(self._uniform(len(p)), 1e-300, 1.0)))
        return np.argsort(-keys, kind="stable")[: self.num_samples].astype(np.int64)


class DistributedSampler(Sampler):
    """This replica's share of a dataset's indices (``rank`` of ``num_replicas``).

    The indices are (optionally) shuffled with ``seed + epoch`` (call ``set_epoch`` each
    epoch), padded by repeating the first ones so every replica gets the same count (or cut,
    with ``drop_last``), and dealt round-robin: replica ``r`` takes positions ``r, r + R, ...``.
    Without ``num_replicas``/``rank`` it is one process, rank 0 of 1 (chainrule's training
    runs in one process unless ``chainrule.distributed`` started several).

    Args:
        dataset: the dataset whose indices are shared.
        num_replicas: how many processes share it (1 by default).
        rank: this process's rank (0 by default).
        shuffle: shuffle the indices each epoch.
        seed: the base of the shuffling seed (the same in every replica).
        drop_last: cut the tail instead of padding.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        num_replicas = 1 if num_replicas is None else int(num_replicas)
        rank = 0 if rank is None else int(rank)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                f"[0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        """Make the next epoch's order ``seed + epoch``'s (the same in every replica)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                reps = math.ceil(pad / max(n, 1))
                indices = np.concatenate([indices, np.tile(indices, reps)[:pad]])
        else:
            indices = indices[: self.total_size]
        return indices[self.rank : self.total_size : self.num_replicas].astype(np.int64)


def default_convert(data: Any) -> Any:
    """NumPy arrays (and NumPy scalars) in a sample become arrays; nothing is stacked.

    Containers (dicts, named tuples, tuples, lists) are rebuilt with converted items; strings,
    Python numbers and other objects are returned as they are.
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "SUO":  # strings and objects stay NumPy (PyTorch's rule)
            return data
        return from_value(np.array(data))
    if isinstance(data, np.generic):
        return from_value(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, Mapping):
        items = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(items)
        except TypeError:
            return items
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, tuple):
        return [default_convert(v) for v in data]
    if isinstance(data, Sequence) and not isinstance(data, mx.array):
        try:
            return type(data)([default_convert(v) for v in data])
        except TypeError:
            return [default_convert(v) for v in data]
    return data
