"""``torch.utils.data.dataloader``: the loader and its collation functions (chainrule.data's)."""

from __future__ import annotations

from chainrule.data import (
    DataLoader,
    WorkerInfo,
    default_collate,
    default_convert,
    get_worker_info,
)

__all__ = ["DataLoader", "WorkerInfo", "default_collate", "default_convert", "get_worker_info"]
