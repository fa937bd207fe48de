"""``backend._keep_freed_memory`` (issue 20): glibc keeps freed large buffers for reuse unless
the user said otherwise (its own variables, or ``CHAINRULE_KEEP_FREED_MEMORY=0``)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from chainrule.core import backend


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("CHAINRULE_KEEP_FREED_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    return fake


def test_raises_glibc_thresholds_by_default(libc):
    backend._keep_freed_memory()
    assert libc.calls == [(-3, 32 << 20), (-1, 1 << 30)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


@pytest.mark.parametrize(
    "name, value",
    [
        ("CHAINRULE_KEEP_FREED_MEMORY", "0"),
        ("MALLOC_MMAP_THRESHOLD_", "65536"),
        ("MALLOC_TRIM_THRESHOLD_", "0"),
    ],
)
def test_the_user_s_choice_wins(libc, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    backend._keep_freed_memory()
    assert libc.calls == []


def test_nothing_off_linux(libc, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    backend._keep_freed_memory()
    assert libc.calls == []
