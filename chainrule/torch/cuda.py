"""``torch.cuda`` as seen from a CPU-only framework: nothing is available."""

from __future__ import annotations


def is_available() -> bool:
    """Always False: chainrule computes on the CPU through NumPy."""
    return False


def device_count() -> int:
    """Always 0."""
    return 0


def is_initialized() -> bool:
    """Always False."""
    return False


def manual_seed(seed: int) -> None:
    """Accepted for PyTorch code; there is no GPU generator to seed."""


def manual_seed_all(seed: int) -> None:
    """Accepted for PyTorch code; there is no GPU generator to seed."""


def synchronize(device: object = None) -> None:
    """Nothing to wait for."""


def empty_cache() -> None:
    """Nothing to free."""
