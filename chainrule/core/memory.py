"""Memory accounting with MLX's names (``mx.get_active_memory``, ``mx.get_peak_memory``, ...).

What is counted: the bytes of the backend buffers that live chainrule arrays and recorded
graph nodes hold, each buffer once (a view counts as the buffer it looks into, two handles on
one value count it once). NumPy allocates and frees those buffers itself, so nothing is
counted per operation: the total is summed on demand, by walking the objects the garbage
collector tracks (``array`` handles and graph ``Node`` objects), a few milliseconds.

* ``get_active_memory()`` is that sum, now.
* ``get_peak_memory()`` is the largest sum seen since the last ``reset_peak_memory()``. It is
  a high-water mark of samples: once any function of this module has been called (accounting
  is then on), ``get_active_memory`` takes a sample, and so do ``mx.eval``, ``mx.async_eval``
  and ``mx.synchronize`` when one is due. The first of them after a call into this module
  always samples; after that they sample at most 1/20 of the time (a sample costs about a
  millisecond per 30,000 live Python objects: a loop that evaluates every step, printing the
  peak now and then, must not pay it every step). Arrays created and dropped between two
  samples are not seen.
* NumPy keeps no buffer cache, so ``get_cache_memory()`` is always 0 and ``clear_cache()``
  has nothing to free.
* The limits are recorded and returned as MLX returns them (each setter gives back the
  previous value); NumPy allocates without consulting them.
"""

from __future__ import annotations

import gc
import os
from time import perf_counter as _clock

from .array import Node, array
from .backend import xp

__all__ = [
    "get_active_memory",
    "get_peak_memory",
    "reset_peak_memory",
    "get_cache_memory",
    "clear_cache",
    "set_memory_limit",
    "set_cache_limit",
    "set_wired_limit",
]


def _system_memory() -> int:
    """Physical memory in bytes (8 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 1 << 33


class _Accounting:
    """The module's state: whether sampling is on, the peak and the limits."""

    __slots__ = ("on", "peak", "due", "memory_limit", "cache_limit", "wired_limit")

    def __init__(self) -> None:
        self.on = False
        self.peak = 0
        self.due = 0.0  # (perf_counter time) when an evaluation may take its next sample
        self.memory_limit = int(0.8 * _system_memory())  # MLX's CPU allocator's default
        self.cache_limit = 32 << 20  # likewise: 32 MiB
        self.wired_limit = 0


ACCOUNTING = _Accounting()


def _buffer_of(value):
    """The object owning ``value``'s memory (a view's base), or ``None`` for a non-buffer."""
    if isinstance(value, xp.ndarray):
        while isinstance(value.base, xp.ndarray):
            value = value.base
        return value
    if isinstance(value, xp.generic):
        return value
    return None


def _array_types() -> set:
    """``array`` and its subclasses (``chainrule.torch.Tensor``): the handles to count."""
    found, todo = {array}, [array]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def live_bytes() -> int:
    """The bytes held by live arrays and recorded graph nodes, each buffer counted once.

    Returns:
        The total in bytes.
    """
    seen: dict[int, int] = {}
    kinds, _Node = _array_types(), Node
    for obj in gc.get_objects():
        t = type(obj)
        if t in kinds:
            values = (obj._data,)
        elif t is _Node:
            values = (obj.value, *obj.args)
        else:
            continue
        for v in values:
            buf = _buffer_of(v)
            if buf is not None and id(buf) not in seen:
                seen[id(buf)] = buf.nbytes
    return sum(seen.values())


def sample() -> int:
    """Measure the active memory now and raise the peak to it.

    Returns:
        The active memory in bytes.
    """
    ACCOUNTING.on = True
    active = live_bytes()
    if active > ACCOUNTING.peak:
        ACCOUNTING.peak = active
    return active


def _turn_on() -> None:
    """Start sampling; the first time, take a sample so the peak starts from the present. The
    next evaluation samples in any case (see :func:`sample_if_due`)."""
    if not ACCOUNTING.on:
        sample()
    ACCOUNTING.due = 0.0


SAMPLE_SHARE = 20
"""An evaluation's sample waits until ``SAMPLE_SHARE`` times the last one's cost has passed:
sampling takes at most about 1/20 of a loop's time."""


def sample_if_due() -> None:
    """Take a sample when accounting is on and one is due (``mx.eval``, ``mx.async_eval`` and
    ``mx.synchronize`` call this): the first after a call into this module, then at most one
    per ``SAMPLE_SHARE`` times a sample's cost."""
    acc = ACCOUNTING
    if acc.on:
        now = _clock()
        if now >= acc.due:
            sample()
            acc.due = now + SAMPLE_SHARE * (_clock() - now)


def get_active_memory() -> int:
    """The bytes held by live arrays (and the graphs they record), each buffer once.

    Returns:
        The active memory in bytes.
    """
    ACCOUNTING.due = 0.0
    return sample()


def get_peak_memory() -> int:
    """The largest active memory sampled since the last :func:`reset_peak_memory`.

    Samples are taken by :func:`get_active_memory`, and by ``mx.eval``, ``mx.async_eval`` and
    ``mx.synchronize`` when one is due (the first after any call into this module, then at
    most 1/20 of the time) once accounting is on; the first call into this module turns it
    on, and this function then takes the first sample itself.

    Returns:
        The peak in bytes.
    """
    _turn_on()
    return ACCOUNTING.peak


def reset_peak_memory() -> None:
    """Set the peak memory to zero (the next ``mx.eval`` takes a sample)."""
    ACCOUNTING.on = True
    ACCOUNTING.peak = 0
    ACCOUNTING.due = 0.0


def get_cache_memory() -> int:
    """The bytes held in a buffer cache: always 0 (NumPy keeps no cache).

    Returns:
        0.
    """
    _turn_on()
    return 0


def clear_cache() -> None:
    """Free the buffer cache (there is none to free)."""
    _turn_on()


def _limit(value, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{who}: limit must be an int (bytes), not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{who}: limit must be non-negative, got {value}")
    return value


def set_memory_limit(limit: int) -> int:
    """Record the memory limit (bytes) and return the previous one.

    MLX waits for memory to be freed past this limit; NumPy allocates without consulting it,
    so here it is recorded only.

    Args:
        limit: the new limit in bytes.

    Returns:
        The previous limit.
    """
    _turn_on()
    old, ACCOUNTING.memory_limit = ACCOUNTING.memory_limit, _limit(limit, "set_memory_limit")
    return old


def set_cache_limit(limit: int) -> int:
    """Record the cache limit (bytes) and return the previous one (there is no cache).

    Args:
        limit: the new limit in bytes.

    Returns:
        The previous limit.
    """
    _turn_on()
    old, ACCOUNTING.cache_limit = ACCOUNTING.cache_limit, _limit(limit, "set_cache_limit")
    return old


def set_wired_limit(limit: int) -> int:
    """Record the wired limit (bytes) and return the previous one (a Metal notion; no effect).

    Args:
        limit: the new limit in bytes.

    Returns:
        The previous limit.
    """
    old, ACCOUNTING.wired_limit = ACCOUNTING.wired_limit, _limit(limit, "set_wired_limit")
    return old
