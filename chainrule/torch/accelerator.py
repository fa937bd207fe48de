"""``torch.accelerator``: the device-agnostic accelerator API; none is available here."""

from __future__ import annotations

from typing import Any

from . import cuda as _cuda

__all__ = [
    "is_available",
    "current_accelerator",
    "device_count",
    "current_device_index",
    "set_device_index",
    "synchronize",
    "empty_cache",
]


def is_available() -> bool:
    """Whether an accelerator is available (False unless a CUDA backend sees a GPU)."""
    return _cuda.is_available()


def current_accelerator(check_available: bool = False) -> Any:
    """The accelerator's device type, ``None`` when there is none (as here)."""
    if _cuda.is_available():  # pragma: no cover - needs a CuPy backend
        from chainrule.core.tensor_functions import device

        return device("cuda")
    return None


def device_count() -> int:
    """The number of accelerator devices (0 here)."""
    return _cuda.device_count()


def _refuse(who: str) -> RuntimeError:
    return RuntimeError(
        f"torch.accelerator.{who}: Cannot access accelerator device when none is available."
    )


def current_device_index() -> int:
    """Refused: no accelerator is available (PyTorch's ``RuntimeError``)."""
    raise _refuse("current_device_index")


def set_device_index(device: Any) -> None:
    """Refused: no accelerator is available (PyTorch's ``RuntimeError``)."""
    raise _refuse("set_device_index")


def synchronize(device: Any = None) -> None:
    """Refused: no accelerator is available (PyTorch's ``RuntimeError``)."""
    raise _refuse("synchronize")


def empty_cache() -> None:
    """Nothing to free."""
