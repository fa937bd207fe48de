"""``torch.utils.data.sampler``: the index samplers (chainrule.data's), with PyTorch's draws.

``RandomSampler`` here draws as PyTorch's does, so a seeded PyTorch program shuffles its data
in the same order: without a ``generator`` each epoch seeds a fresh PyTorch generator from the
default one (``torch.empty((), dtype=torch.int64).random_()``), then takes ``randperm`` from it
(once per full pass, and once more for the remainder, as PyTorch); with replacement it takes
``randint`` in chunks of 32. ``WeightedRandomSampler`` takes PyTorch's ``multinomial`` of its
float64 weights.
"""

from __future__ import annotations

import numpy as np

import chainrule.core as mx
from chainrule.core.torch_generator import CPUGenerator
from chainrule.data import (
    BatchSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)
from chainrule.data import RandomSampler as _DataRandomSampler
from chainrule.data import WeightedRandomSampler as _DataWeightedRandomSampler

from ..._random import _stream

__all__ = [
    "BatchSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
]


class RandomSampler(_DataRandomSampler):
    """A fresh random permutation of the dataset's indices every epoch, drawn as PyTorch's.

    Args:
        data_source: the dataset whose indices are shuffled.
        replacement: draw ``num_samples`` indices with replacement instead.
        num_samples: how many indices per epoch (``len(data_source)`` by default).
        generator: a ``chainrule.torch.Generator``; without one, each epoch seeds a new
            stream from the default generator (``torch.manual_seed``), as PyTorch.
    """

    def _order(self) -> np.ndarray:
        rng = self._rng
        if not isinstance(rng, CPUGenerator):
            if rng is not None:  # (a NumPy generator or an MLX key: chainrule.data's draws)
                return super()._order()
            rng = CPUGenerator(_stream(None).random_int64())
        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            parts = [rng.integers(0, n, 32) for _ in range(k // 32)]
            parts.append(rng.integers(0, n, k % 32))
        else:
            parts = [rng.permutation(n) for _ in range(k // n)] if n else []
            parts.append(rng.permutation(n)[: k % n] if n else np.zeros(0, np.int64))
        return np.concatenate(parts).astype(np.int64, copy=False)


class WeightedRandomSampler(_DataWeightedRandomSampler):
    """Indices drawn in proportion to ``weights`` (chainrule.data's sampler; see there for the
    arguments), drawn as PyTorch's: one ``multinomial`` of the float64 weights per epoch, from
    the ``generator`` or the default generator."""

    def _order(self) -> np.ndarray:
        rng = self._rng
        if rng is not None and not isinstance(rng, CPUGenerator):
            return super()._order()  # (a NumPy generator or an MLX key: chainrule.data's draws)
        weights = mx.array(self.weights._data.astype(np.float64))
        drawn = weights.multinomial(self.num_samples, self.replacement, generator=rng)
        return np.asarray(drawn).astype(np.int64, copy=False)
