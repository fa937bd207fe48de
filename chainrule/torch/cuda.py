"""``torch.cuda`` as PyTorch programs ask it: no CUDA device is available here.

chainrule computes through NumPy (``chainrule/core/backend.py``); ``is_available()`` is True only
when that backend is CuPy and sees a GPU, which no shipped backend does yet. The queries PyTorch
answers without a device (``device_count``, ``memory_allocated``, ``is_bf16_supported``...)
answer the same; the calls that need a device raise ``DeviceUnavailableError`` (an
``AssertionError`` as PyTorch's CPU build raises, and a ``RuntimeError``) naming the call.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

from chainrule.core import backend as _backend
from chainrule.core.devices import DeviceUnavailableError

__all__ = [
    "is_available",
    "device_count",
    "is_initialized",
    "current_device",
    "get_device_name",
    "get_device_capability",
    "set_device",
    "synchronize",
    "empty_cache",
    "manual_seed",
    "manual_seed_all",
    "memory_allocated",
    "max_memory_allocated",
    "memory_reserved",
    "is_bf16_supported",
]


def _gpu_count() -> int:
    xp = getattr(_backend, "numpy", None)
    if getattr(xp, "__name__", "numpy") != "cupy":
        return 0
    try:  # pragma: no cover - needs a CuPy backend
        return int(xp.cuda.runtime.getDeviceCount())
    except Exception:  # pragma: no cover
        return 0


def is_available() -> bool:
    """Whether a CUDA device can hold tensors: False unless the backend is CuPy with a GPU."""
    return _gpu_count() > 0


def device_count() -> int:
    """The number of CUDA devices (0 here)."""
    return _gpu_count()


def is_initialized() -> bool:
    """Always False: there is no CUDA context."""
    return False


def _refuse(who: str) -> DeviceUnavailableError:
    return DeviceUnavailableError(
        f"torch.cuda.{who}: Torch not compiled with CUDA enabled (chainrule computes on the CPU "
        "through NumPy; torch.cuda.is_available() is False)"
    )


def current_device() -> int:
    """Refused: there is no CUDA device."""
    raise _refuse("current_device")


def get_device_name(device: Any = None) -> str:
    """Refused: there is no CUDA device."""
    raise _refuse("get_device_name")


def get_device_capability(device: Any = None) -> tuple:
    """Refused: there is no CUDA device."""
    raise _refuse("get_device_capability")


def set_device(device: Any) -> None:
    """Refused: there is no CUDA device."""
    raise _refuse("set_device")


def synchronize(device: Any = None) -> None:
    """Refused, as PyTorch's CPU build: there is no CUDA device to wait for."""
    raise _refuse("synchronize")


def empty_cache() -> None:
    """Nothing to free (PyTorch returns quietly too)."""


def manual_seed(seed: int) -> None:
    """Accepted for PyTorch code; there is no GPU generator to seed."""


def manual_seed_all(seed: int) -> None:
    """Accepted for PyTorch code; there is no GPU generator to seed."""


def memory_allocated(device: Any = None) -> int:
    """0 bytes, as PyTorch without CUDA."""
    return 0


def max_memory_allocated(device: Any = None) -> int:
    """0 bytes, as PyTorch without CUDA."""
    return 0


def memory_reserved(device: Any = None) -> int:
    """0 bytes, as PyTorch without CUDA."""
    return 0


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: no CUDA device."""
    return False


def _cuda_autocast(enabled: bool = True, dtype: Any = None, cache_enabled: bool = True) -> Any:
    """``torch.cuda.amp.autocast`` (deprecated in PyTorch): ``torch.amp.autocast("cuda")``,
    which warns and stays off here."""
    import chainrule.torch as _torch

    from .amp import autocast

    warnings.warn(
        "`torch.cuda.amp.autocast(args...)` is deprecated. Please use "
        "`torch.amp.autocast('cuda', args...)` instead.",
        FutureWarning,
        stacklevel=2,
    )
    return autocast("cuda", dtype=_torch.float16 if dtype is None else dtype, enabled=enabled)


def _cuda_grad_scaler(*args: Any, **kwargs: Any) -> Any:
    """``torch.cuda.amp.GradScaler`` (deprecated in PyTorch): ``torch.amp.GradScaler("cuda")``,
    disabled here with a warning."""
    from .amp import GradScaler

    warnings.warn(
        "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
        "`torch.amp.GradScaler('cuda', args...)` instead.",
        FutureWarning,
        stacklevel=2,
    )
    return GradScaler("cuda", *args, **kwargs)


amp = types.SimpleNamespace(autocast=_cuda_autocast, GradScaler=_cuda_grad_scaler)
"""``torch.cuda.amp``: PyTorch's deprecated spellings of ``torch.amp`` for CUDA."""
