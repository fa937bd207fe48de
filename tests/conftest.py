"""Fixtures shared across the test folders (the folders are not packages: see
tests/test_package_rules.py for the unique-basename rule)."""

from __future__ import annotations

import os

import pytest

GPU_DEFAULT = os.environ.get("CHAINRULE_DEVICE", "").strip().lower() in ("gpu", "cuda")
"""``CHAINRULE_DEVICE=gpu`` (``make gpu-check``): every array is made on the GPU by default."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``host_only`` marker."""
    config.addinivalue_line(
        "markers",
        "host_only: tests of host machinery (the vmap and compile tracers, NumPy buffer "
        "accounting, the CPU as the default device); skipped when CHAINRULE_DEVICE=gpu makes "
        "the GPU the default (make gpu-check), run on the CPU by make test",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Skip ``host_only`` tests when the GPU is the default device."""
    if not GPU_DEFAULT:
        return
    skip = pytest.mark.skip(reason="host machinery, tested on the CPU by make test")
    for item in items:
        if item.get_closest_marker("host_only"):
            item.add_marker(skip)


@pytest.fixture
def cpu_default_device():
    """The CPU as the default device (MLX's and PyTorch's) while a test runs, also under
    ``CHAINRULE_DEVICE=gpu`` (make gpu-check), for tests that choose devices themselves."""
    import chainrule.core as mx
    from chainrule.core import devices

    saved = (mx.default_device(), devices.TORCH_DEFAULT[0])
    devices._set_default(mx.cpu)
    devices.TORCH_DEFAULT[0] = None
    yield
    devices._set_default(saved[0])
    devices.TORCH_DEFAULT[0] = saved[1]
