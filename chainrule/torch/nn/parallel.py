"""``torch.nn.parallel``: ``DataParallel`` (single device) and ``DistributedDataParallel``
(processes over MPI, ``chainrule/torch/distributed/ddp.py``)."""

from __future__ import annotations

from typing import Any

from chainrule.torch.distributed.ddp import DistributedDataParallel

from ._misc import DataParallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


def data_parallel(
    module: Any,
    inputs: Any,
    device_ids: Any = None,
    output_device: Any = None,
    dim: int = 0,
    module_kwargs: Any = None,
) -> Any:
    """``module(*inputs, **module_kwargs)`` on the one device."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return module(*inputs, **(module_kwargs or {}))
