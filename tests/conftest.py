"""Fixtures shared across the test folders (the folders are not packages: see
tests/test_package_rules.py for the unique-basename rule)."""

from __future__ import annotations

import pytest


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
