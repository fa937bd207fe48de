"""``torch.cuda`` as PyTorch programs ask it: the GPU is CuPy's (docs/gpu.md).

``is_available()`` is True when CuPy is installed and sees a CUDA device (or, in tests, when the
strict CuPy stand-in backs the GPU: ``chainrule.core.backend.use_strict_gpu``). The queries
PyTorch answers without a device (``device_count``, ``memory_allocated``,
``is_bf16_supported``...) answer the same; without a GPU the calls that need one raise
``DeviceUnavailableError`` (an ``AssertionError`` as PyTorch's CPU build raises, and a
``RuntimeError``) naming the call and what is missing.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

from chainrule.core import backend as _backend
from chainrule.core import devices as _devices
from chainrule.core.devices import DeviceUnavailableError

__all__ = [
    "is_available",
    "device_count",
    "is_initialized",
    "current_device",
    "get_device_name",
    "get_device_capability",
    "get_device_properties",
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


def _gpu() -> Any:
    return _backend.gpu()


def is_available() -> bool:
    """Whether a CUDA device can hold tensors (CuPy installed and a GPU present)."""
    return _gpu() is not None


def device_count() -> int:
    """The number of CUDA devices (0 without CuPy or a GPU)."""
    g = _gpu()
    return 0 if g is None else g.count


def is_initialized() -> bool:
    """Whether the CUDA backend has been set up (it is, once CuPy found a device)."""
    return _backend.GPU[0] is not None


def _refuse(who: str) -> DeviceUnavailableError:
    return DeviceUnavailableError(
        f"torch.cuda.{who}: Torch not compiled with CUDA enabled "
        f"({_backend.gpu_unavailable_reason()}; torch.cuda.is_available() is False)"
    )


def _need(who: str) -> Any:
    g = _gpu()
    if g is None:
        raise _refuse(who)
    return g


def current_device() -> int:
    """The current CUDA device's index (0: chainrule uses one device)."""
    _need("current_device")
    return 0


def get_device_name(device: Any = None) -> str:
    """The GPU's name."""
    _need("get_device_name")
    return _devices.device_info(_devices.gpu)["device_name"]


def get_device_capability(device: Any = None) -> tuple:
    """The GPU's compute capability ``(major, minor)``."""
    g = _need("get_device_capability")
    if g.name != "cupy":
        return (0, 0)
    props = g.xp.cuda.runtime.getDeviceProperties(0)  # pragma: no cover - needs a GPU
    return (int(props["major"]), int(props["minor"]))  # pragma: no cover


def get_device_properties(device: Any = None) -> Any:
    """The GPU's name, capability and memory, as attributes (``.name``, ``.total_memory``)."""
    _need("get_device_properties")
    info = _devices.device_info(_devices.gpu)
    major, minor = get_device_capability(device)
    return types.SimpleNamespace(
        name=info["device_name"],
        major=major,
        minor=minor,
        total_memory=int(info.get("memory_size", 0)),
    )


def set_device(device: Any) -> None:
    """Choose the CUDA device: only device 0 is used."""
    _need("set_device")
    index = getattr(device, "index", device)
    if index not in (None, 0):
        raise DeviceUnavailableError(f"torch.cuda.set_device: invalid device ordinal {index}")


def synchronize(device: Any = None) -> None:
    """Wait for the work queued on the GPU."""
    _need("synchronize").synchronize()


def empty_cache() -> None:
    """Free the cached GPU memory CuPy's pool holds (nothing without a GPU)."""
    g = _backend.GPU[0]
    if g is not None and g.name == "cupy":  # pragma: no cover - needs a GPU
        g.xp.get_default_memory_pool().free_all_blocks()


def manual_seed(seed: int) -> None:
    """Seed the generator CUDA tensors draw from: chainrule draws them from the one generator
    ``torch.manual_seed`` seeds (so CPU and CUDA draws match), which this seeds."""
    from . import _random

    _random.manual_seed(seed)


def manual_seed_all(seed: int) -> None:
    """As :func:`manual_seed` (one device)."""
    manual_seed(seed)


def _pool_bytes(what: str) -> int:
    g = _backend.GPU[0]
    if g is None or g.name != "cupy":
        return 0
    pool = g.xp.get_default_memory_pool()  # pragma: no cover - needs a GPU
    return int(getattr(pool, what)())  # pragma: no cover


def memory_allocated(device: Any = None) -> int:
    """Bytes of GPU memory in use by arrays (CuPy's pool; 0 without a GPU)."""
    return _pool_bytes("used_bytes")


def max_memory_allocated(device: Any = None) -> int:
    """The most GPU memory in use seen (CuPy keeps no peak: the pool's total)."""
    return _pool_bytes("total_bytes")


def memory_reserved(device: Any = None) -> int:
    """Bytes CuPy's pool holds (0 without a GPU)."""
    return _pool_bytes("total_bytes")


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: CuPy has no bfloat16 type, so chainrule's bfloat16 stays on the CPU."""
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
