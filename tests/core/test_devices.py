"""Devices: the CPU is the only one, and the GPU says so clearly."""

from __future__ import annotations

import pytest

import chainrule.core as mx

# these tests choose devices themselves: skipped under CHAINRULE_DEVICE=gpu (make gpu-check; conftest.py)
pytestmark = pytest.mark.host_only


def test_cpu_is_the_default_and_only_device():
    assert mx.default_device() == mx.cpu
    assert mx.default_device().type == mx.DeviceType.cpu
    assert mx.is_available(mx.cpu) is True
    assert mx.is_available(mx.gpu) is False
    assert mx.is_available(mx.DeviceType.gpu) is False
    assert mx.metal.is_available() is False
    assert mx.cuda.is_available() is False
    assert repr(mx.cpu) == "Device(cpu, 0)"
    assert mx.Device(mx.DeviceType.cpu) == mx.cpu
    assert mx.Device(mx.cpu) == mx.cpu


def test_set_default_device():
    mx.set_default_device(mx.cpu)
    assert mx.default_device() == mx.cpu
    with pytest.raises(ValueError, match="GPU"):
        mx.set_default_device(mx.gpu)
    assert mx.default_device() == mx.cpu


def test_streams():
    s = mx.default_stream(mx.cpu)
    assert s.device == mx.cpu
    assert mx.new_stream(mx.cpu).device == mx.cpu
    with mx.stream(mx.cpu):
        assert (mx.ones(2) + 1).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="GPU"):
        with mx.stream(mx.gpu):
            pass
    mx.synchronize()
    assert mx.add(mx.ones(1), mx.ones(1), stream=mx.cpu).tolist() == [2.0]
