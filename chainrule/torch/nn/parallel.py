"""``torch.nn.parallel``: single-device forms of PyTorch's data-parallel wrappers."""

from __future__ import annotations

from typing import Any

from ._misc import DataParallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


class DistributedDataParallel(DataParallel):
    """One process: runs the wrapped module as it is (gradients need no all-reduce)."""

    def __init__(self, module: Any, device_ids: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(module, device_ids)


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
