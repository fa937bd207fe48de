"""Devices as MLX names them. The CPU is the only device here, and we say so."""

from __future__ import annotations


class DeviceType:
    """``mx.DeviceType.cpu`` / ``mx.DeviceType.gpu``."""

    cpu = "cpu"
    gpu = "gpu"


class Device:
    """A compute device (``mx.cpu`` or ``mx.gpu``)."""

    __slots__ = ("type", "index")

    def __init__(self, type, index: int = 0) -> None:
        if isinstance(type, Device):
            type = type.type
        if type not in (DeviceType.cpu, DeviceType.gpu):
            raise ValueError(f"Device: type must be 'cpu' or 'gpu', not {type!r}")
        self.type = type
        self.index = index

    def __repr__(self) -> str:
        return f"Device({self.type}, {self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):  # a DeviceType
            return self.type == other
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


cpu = Device(DeviceType.cpu)
gpu = Device(DeviceType.gpu)
_DEFAULT = [cpu]


def _device(d) -> Device:
    return d if isinstance(d, Device) else Device(d)


def is_available(device: Device) -> bool:
    """Whether ``device`` (a ``Device`` or a ``DeviceType``) can run: true only for the CPU.

    Args:
        device: ``mx.cpu``, ``mx.gpu`` or a ``DeviceType``.

    Returns:
        ``True`` for the CPU, ``False`` for the GPU (chainrule computes with NumPy).
    """
    return _device(device).type == DeviceType.cpu


def default_device() -> Device:
    """The device new arrays are computed on (always the CPU)."""
    return _DEFAULT[0]


def set_default_device(device: Device) -> None:
    """Choose the default device; asking for the GPU raises a clear error."""
    device = _device(device)
    if not is_available(device):
        raise ValueError(
            "set_default_device: chainrule runs on the CPU through NumPy; no GPU backend is "
            "available (mx.is_available(mx.gpu) is False)"
        )
    _DEFAULT[0] = device


class Stream:
    """A stream on a device (accepted for MLX code)."""

    def __init__(self, device: Device = cpu, index: int = 0) -> None:
        self.device = _device(device)
        self.index = index

    def __repr__(self) -> str:
        return f"Stream({self.device}, {self.index})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and (self.device, self.index) == (
            other.device,
            other.index,
        )

    def __hash__(self) -> int:
        return hash((self.device, self.index))


def default_stream(device: Device = cpu) -> Stream:
    """The default stream of ``device``."""
    return Stream(device)


def new_stream(device: Device = cpu) -> Stream:
    """A new stream (work still runs in order on the CPU)."""
    return Stream(device)


def synchronize(stream: Stream | None = None) -> None:
    """Nothing to wait for: work is eager."""


class stream:
    """``with mx.stream(mx.cpu):`` (accepted; work runs on the CPU)."""

    def __init__(self, s) -> None:
        if isinstance(s, Stream):
            s = s.device
        if not is_available(s):
            raise ValueError("stream: the GPU is not available in chainrule")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class metal:
    """``mx.metal``: Apple's GPU backend, which chainrule does not have."""

    @staticmethod
    def is_available() -> bool:
        """Always False."""
        return False

    @staticmethod
    def device_info() -> dict:
        """Empty: there is no Metal device."""
        return {}


class cuda:
    """``mx.cuda``: no CUDA backend here."""

    @staticmethod
    def is_available() -> bool:
        """Always False."""
        return False
