"""``torch.utils.data.distributed``: ``DistributedSampler`` (chainrule.data's)."""

from __future__ import annotations

from chainrule.data import DistributedSampler

__all__ = ["DistributedSampler"]
