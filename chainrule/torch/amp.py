"""``torch.amp``: ``autocast`` (mixed precision on the CPU) and ``GradScaler``.

``autocast("cpu", dtype=torch.bfloat16)`` (also ``torch.autocast``, a context manager and a
decorator) sets the engine's autocast state (``chainrule.core.devices.AUTOCAST``): operations
PyTorch's CPU autocast lowers (matmul, linear, convolutions) cast their float32 inputs to the
autocast dtype through ``chainrule.core.devices.autocast_arrays``; float64 and everything else
is left alone, and gradients flow back to the float32 leaves. Other device types warn and leave
autocast off, as PyTorch without CUDA does; dtypes other than bfloat16/float16 warn and disable.

``GradScaler`` has PyTorch's semantics: for ``device="cuda"`` (the default) it warns and is
disabled here (no CUDA), for ``"cpu"`` it scales the loss, ``unscale_`` divides the gradients
and records non-finite ones, ``step`` skips the optimizer step when any was found, and
``update`` backs the scale off or grows it after ``growth_interval`` clean steps.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core.devices import AUTOCAST
from chainrule.core.extend import array
from chainrule.core.tensor_functions import device as _device
from chainrule.core.tensor_functions import to_np_dtype

__all__ = ["autocast", "GradScaler", "is_autocast_available", "custom_fwd", "custom_bwd"]

_CPU_DTYPES = ("bfloat16", "float16")


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast works for ``device_type`` (only ``"cpu"`` here)."""
    return device_type == "cpu"


class autocast:
    """Run matmul-like operations in lower precision inside (PyTorch's ``torch.autocast``).

    Args:
        device_type: ``"cpu"`` (``"cuda"`` and others warn and leave autocast off).
        dtype: ``torch.bfloat16`` (the CPU default) or ``torch.float16``.
        enabled: ``False`` turns autocast off inside (also inside an enabled region).
        cache_enabled: accepted for PyTorch code.
    """

    def __init__(
        self,
        device_type: str,
        dtype: Any = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,
    ) -> None:
        if not isinstance(device_type, str):
            raise ValueError(
                f"Expected `device_type` of type `str`, got: `{type(device_type).__name__}`"
            )
        _device(device_type)  # RuntimeError for a name PyTorch does not know
        self.device = device_type
        self.fast_dtype = mx.bfloat16 if dtype is None else _dt.from_np(to_np_dtype(dtype))
        self._enabled = bool(enabled)
        if self._enabled and device_type != "cpu":
            warnings.warn(
                f"autocast: device_type {device_type!r} is not available (chainrule computes on "
                "the CPU). Disabling autocast.",
                UserWarning,
                stacklevel=2,
            )
            self._enabled = False
        elif self._enabled and self.fast_dtype.name not in _CPU_DTYPES:
            warnings.warn(
                "In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                "CPU Autocast only supports dtypes of torch.bfloat16, torch.float16 currently.",
                UserWarning,
                stacklevel=2,
            )
            self._enabled = False
        self._prev: list = []

    def __enter__(self) -> autocast:
        if self.device != "cpu":
            self._prev.append(None)
            return self
        self._prev.append(AUTOCAST.dtype)
        AUTOCAST.dtype = self.fast_dtype if self._enabled else None
        return self

    def __exit__(self, *exc: Any) -> None:
        prev = self._prev.pop()
        if self.device == "cpu":
            AUTOCAST.dtype = prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapped


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on (for ``"cpu"``; other device types are never on here).

    ``torch.is_autocast_enabled()`` without an argument asks about CUDA in PyTorch: False.
    """
    if device_type is None or device_type != "cpu":
        return False
    return AUTOCAST.dtype is not None


def get_autocast_dtype(device_type: str) -> Any:
    """The dtype autocast uses for ``device_type`` (bfloat16 for the CPU when off)."""
    if device_type == "cpu" and AUTOCAST.dtype is not None:
        return AUTOCAST.dtype
    return mx.bfloat16 if device_type == "cpu" else mx.float16


def custom_fwd(fwd: Callable | None = None, *, device_type: str = "cpu", cast_inputs: Any = None):
    """Decorator for a custom ``Function.forward`` (autocast runs through unchanged)."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    return fwd


def custom_bwd(bwd: Callable | None = None, *, device_type: str = "cpu"):
    """Decorator for a custom ``Function.backward`` (runs unchanged)."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd


class GradScaler:
    """Loss scaling against gradient underflow (PyTorch's ``torch.amp.GradScaler``).

    Args:
        device: ``"cuda"`` (PyTorch's default: disabled here with a warning) or ``"cpu"``.
        init_scale: the initial scale.
        growth_factor: the factor the scale grows by after ``growth_interval`` clean steps.
        backoff_factor: the factor the scale shrinks by after a step with non-finite grads.
        growth_interval: clean steps between growths.
        enabled: ``False`` makes every method a pass-through.
    """

    def __init__(
        self,
        device: str = "cuda",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        self._device = str(device)
        self._enabled = bool(enabled)
        if self._enabled and self._device != "cpu":
            warnings.warn(
                f"torch.amp.GradScaler is enabled for device {self._device!r}, which is not "
                "available (chainrule computes on the CPU). Disabling.",
                UserWarning,
                stacklevel=2,
            )
            self._enabled = False
        if growth_factor <= 1.0:
            raise ValueError("The growth factor must be > 1.0.")
        if backoff_factor >= 1.0:
            raise ValueError("The backoff factor must be < 1.0.")
        self._init_scale = float(init_scale)
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer: dict = {}

    def is_enabled(self) -> bool:
        """Whether scaling is on."""
        return self._enabled

    def _state(self, optimizer: Any) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": "ready", "found_inf": False})

    def scale(self, outputs: Any) -> Any:
        """``outputs`` (a tensor, or an iterable of tensors) times the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, array):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer: Any) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place, and note
        whether any is not finite."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == "unscaled":
            raise RuntimeError(
                "unscale_() has already been called on this optimizer since the last update()."
            )
        if state["stage"] == "stepped":
            raise RuntimeError("unscale_() is being called after step().")
        inv = 1.0 / self._scale
        found = False
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                g = g * inv
                if not found and not bool(mx.all(mx.isfinite(g))):  # on g's device
                    found = True
                p.grad = g
        state["found_inf"] = found
        state["stage"] = "unscaled"

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """Unscale (if not done yet) and run ``optimizer.step()`` unless a gradient was not
        finite; returns what ``step`` returned (``None`` when skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] == "stepped":
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == "ready":
            self.unscale_(optimizer)
        result = None
        if not state["found_inf"]:
            result = optimizer.step(*args, **kwargs)
        state["stage"] = "stepped"
        return result

    def update(self, new_scale: float | array | None = None) -> None:
        """Set the scale for the next iteration: ``new_scale`` if given, else back off after a
        non-finite gradient, or grow after ``growth_interval`` clean steps."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = float(new_scale)
            if isinstance(new_scale, array) and new_scale.size != 1:
                raise ValueError("new_scale should be a float or a 1-element tensor")
            self._scale = value
        else:
            if not self._per_optimizer:
                raise RuntimeError("No inf checks were recorded prior to update.")
            found = any(s["found_inf"] for s in self._per_optimizer.values())
            if found:
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
            self._scale = float(np.float32(self._scale))
        self._per_optimizer = {}

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        """The growth factor."""
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        """Set the growth factor."""
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        """The backoff factor."""
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        """Set the backoff factor."""
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        """The growth interval."""
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        """Set the growth interval."""
        self._growth_interval = int(new_interval)

    def state_dict(self) -> dict:
        """PyTorch's keys: ``scale``, ``growth_factor``, ``backoff_factor``,
        ``growth_interval``, ``_growth_tracker`` (empty when disabled)."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict``."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled "
                "instance of GradScaler."
            )
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])
