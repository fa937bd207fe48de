"""``torch.utils.data.distributed``: ``DistributedSampler`` with PyTorch's defaults.

The sampler is chainrule.data's (PyTorch's padding, ``drop_last`` and dealing); left out,
``num_replicas`` and ``rank`` come from ``torch.distributed``'s default group, as in PyTorch
(which must then be initialised).
"""

from __future__ import annotations

from typing import Any

from chainrule.data import DistributedSampler as _DistributedSampler

__all__ = ["DistributedSampler"]


class DistributedSampler(_DistributedSampler):
    """This process's share of a dataset's indices (PyTorch's ``DistributedSampler``).

    Every epoch the indices are shuffled from ``seed + epoch`` (call :meth:`set_epoch`),
    padded by repeating the first ones to a multiple of ``num_replicas`` (or cut, with
    ``drop_last``), and dealt out: rank ``r`` takes positions ``r, r + num_replicas, ...``.

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
