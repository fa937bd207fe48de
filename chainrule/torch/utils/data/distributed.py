"""``torch.utils.data.distributed``: ``DistributedSampler``, PyTorch's to the index.

The padding, ``drop_last`` and dealing are chainrule.data's (PyTorch's rules); the shuffled
order is PyTorch's own: ``torch.randperm(n, generator=g)`` with ``g.manual_seed(seed + epoch)``
draws 32-bit outputs of a Mersenne Twister seeded as NumPy's ``RandomState`` seeds it and
swaps ``r[i]`` with ``r[i + out % (n - i)]``, which :func:`pytorch_randperm` repeats, so each
rank receives exactly the indices it would under PyTorch. Left out, ``num_replicas`` and
``rank`` come from ``torch.distributed``'s default group, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.data import DistributedSampler as _DistributedSampler

__all__ = ["DistributedSampler", "pytorch_randperm"]

# PyTorch switches to 64-bit draws from this length on (CPU randperm).
_SMALL = (2**32 - 1) // 20


def pytorch_randperm(n: int, seed: int) -> np.ndarray:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``, on the CPU.

    Args:
        n: The length (below about 214 million, where PyTorch draws 32-bit numbers).
        seed: The generator's seed (PyTorch keeps its low 32 bits).

    Returns:
        The permutation, int64.

    Raises:
        ValueError: For ``n`` at or beyond PyTorch's 64-bit threshold.
    """
    if n >= _SMALL:
        raise ValueError(f"pytorch_randperm: n={n} is beyond the 32-bit draws reproduced here")
    out = np.arange(n, dtype=np.int64)
    if n < 2:
        return out
    draws = np.random.RandomState(int(seed) & 0xFFFFFFFF).randint(
        0, 2**32, size=n - 1, dtype=np.uint32
    )
    picks = (draws.astype(np.int64) % np.arange(n, 1, -1, dtype=np.int64)).tolist()
    r = out.tolist()
    for i, z in enumerate(picks):
        j = i + z
        r[i], r[j] = r[j], r[i]
    return np.array(r, dtype=np.int64)


class DistributedSampler(_DistributedSampler):
    """This process's share of a dataset's indices (PyTorch's ``DistributedSampler``).

    Every epoch the indices are shuffled as PyTorch shuffles them for ``seed + epoch`` (call
    :meth:`set_epoch`), padded by repeating the first ones to a multiple of ``num_replicas``
    (or cut, with ``drop_last``), and dealt out: rank ``r`` takes positions
    ``r, r + num_replicas, ...``.

    Args:
        dataset: The dataset whose indices are shared.
        num_replicas: The number of processes (default: ``dist.get_world_size()``).
        rank: This process's rank (default: ``dist.get_rank()``).
        shuffle: Shuffle the indices every epoch.
        seed: The shuffling seed (the same on every process).
        drop_last: Cut the tail instead of padding.

    Raises:
        ValueError: Without ``num_replicas``/``rank`` before ``init_process_group`` (PyTorch's
            message), or for a rank outside ``[0, num_replicas - 1]``.
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
        if num_replicas is None or rank is None:
            from chainrule.torch import distributed as dist

            if not dist.is_available():
                raise RuntimeError("Requires distributed package to be available")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        super().__init__(dataset, num_replicas, rank, shuffle, seed, drop_last)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle or n >= _SMALL:
            return super()._order()
        indices = pytorch_randperm(n, self.seed + self.epoch)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                reps = -(-pad // max(n, 1))
                indices = np.concatenate([indices, np.tile(indices, reps)[:pad]])
        else:
            indices = indices[: self.total_size]
        return indices[self.rank : self.total_size : self.num_replicas].astype(np.int64)
