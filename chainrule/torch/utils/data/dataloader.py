"""``torch.utils.data.dataloader``: the loader (chainrule.data's, drawing as PyTorch's) and
its collation functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule.core.torch_generator import CPUGenerator
from chainrule.data import DataLoader as _DataLoader
from chainrule.data import (
    WorkerInfo,
    default_collate,
    default_convert,
    get_worker_info,
)

from ..._random import _stream
from .sampler import RandomSampler

__all__ = ["DataLoader", "WorkerInfo", "default_collate", "default_convert", "get_worker_info"]


class DataLoader(_DataLoader):
    """chainrule.data's ``DataLoader`` (see there for the arguments) with PyTorch's draws:
    ``shuffle=True`` uses this package's ``RandomSampler``, and each pass over the loader first
    draws PyTorch's base seed for its workers from ``generator`` (or the default generator),
    so the shuffled order is the one a seeded PyTorch program gets."""

    _random_sampler = RandomSampler

    def __iter__(self) -> Iterator[Any]:
        # PyTorch draws its workers' base seed as each pass starts, before the sampler draws
        rng = self._rng if isinstance(self._rng, CPUGenerator) else _stream(None)
        rng.random_int64()
        return super().__iter__()
