"""``DistributedSampler``: each process's share of a dataset (PyTorch's semantics)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.data import Sampler

__all__ = ["DistributedSampler"]


def _check_count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DistributedSampler(Sampler):
    """The indices of one process's share of a dataset, for ``DataLoader(sampler=...)``.

    Every epoch the dataset's indices are put in an order that all processes agree on
    (a permutation drawn from ``seed + epoch`` when ``shuffle``, else ``0, 1, ...``), made a
    multiple of ``num_replicas`` long (by repeating indices from the start, or, with
    ``drop_last``, by dropping the tail), and dealt out: rank ``r`` takes positions
    ``r, r + num_replicas, ...``. So the shares are disjoint (apart from the padding), cover
    the dataset, and have the same length, which keeps every process at the same number of
    steps. Call :meth:`set_epoch` at the start of each epoch to reshuffle (``fit`` does).

    Args:
        dataset: Anything with ``__len__``.
        num_replicas: The number of processes (default: the size of
            ``chainrule.distributed.init()``'s group).
        rank: This process's rank (default: its rank in that group).
        shuffle: Reshuffle every epoch.
        seed: The seed shared by all processes (the same on every rank).
        drop_last: Drop the tail that does not divide evenly instead of padding.

    Raises:
        ValueError: For a rank outside ``[0, num_replicas)`` or bad counts.
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
        if not hasattr(dataset, "__len__"):
            raise TypeError(
                f"DistributedSampler: dataset must define __len__, {type(dataset).__name__} "
                "does not"
            )
        if num_replicas is None or rank is None:
            from .group import init

            world = init()
            num_replicas = world.size() if num_replicas is None else num_replicas
            rank = world.rank() if rank is None else rank
        self.num_replicas = _check_count(num_replicas, "num_replicas", 1)
        self.rank = _check_count(rank, "rank", 0)
        if self.rank >= self.num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in [0, {self.num_replicas}) for "
                f"num_replicas={self.num_replicas}, got {self.rank}"
            )
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        """The length of every process's share."""
        n, k = len(self.dataset), self.num_replicas
        if self.drop_last and n % k:
            return math.ceil((n - k) / k)
        return math.ceil(n / k)

    @property
    def total_size(self) -> int:
        """``num_samples * num_replicas``: the padded (or cut) epoch length."""
        return self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows.

        Args:
            epoch: The epoch number (the same on every process).
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def _order(self) -> np.ndarray:
        n, total = len(self.dataset), self.total_size
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n, dtype=np.int64)
        if total > n and n:
            order = np.resize(order, total)  # repeats from the start, as PyTorch pads
        else:
            order = order[:total]
        return order[self.rank : total : self.num_replicas].astype(np.int64, copy=False)
