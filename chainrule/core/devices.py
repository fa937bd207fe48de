"""Devices and streams as MLX names them: the CPU (NumPy) and, when CuPy sees a CUDA device,
the GPU (see ``backend`` and docs/gpu.md).

Streams follow MLX's rules even though work is eager (each operation has finished when it
returns): every stream has its own index; a stream made by :func:`new_stream` belongs to the
thread that made it, and entering ``mx.stream(s)`` on another thread raises ``RuntimeError``
as evaluating on it does in MLX; :func:`new_thread_local_stream` gives a handle that stands for
one stream per thread, and :func:`new_thread_unsafe_stream` one stream usable anywhere;
:func:`clear_streams` forgets the calling thread's streams. Where there is no GPU (no CuPy,
no CUDA device), asking for it (its default stream, a new stream on it, making it the default
device) raises ``ValueError`` naming what is missing, as MLX's CPU build refuses it.
``CHAINRULE_DEVICE=gpu`` in the environment makes the GPU the default device at import (for
MLX-style arrays, and for ``chainrule.torch`` tensors as ``torch.set_default_device("cuda")``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import platform
import threading
from collections.abc import Iterator
from typing import Any

from . import backend, memory
from .backend import xp

_F32 = xp.dtype(xp.float32)

__all__ = [
    "DeviceUnavailableError",
    "TORCH_DEVICE_TYPES",
    "TORCH_DEFAULT",
    "set_torch_default_device",
    "AUTOCAST",
    "autocast_arrays",
    "DeviceType",
    "Device",
    "cpu",
    "gpu",
    "is_available",
    "device_count",
    "device_info",
    "default_device",
    "set_default_device",
    "Stream",
    "ThreadLocalStream",
    "StreamContext",
    "default_stream",
    "set_default_stream",
    "new_stream",
    "new_thread_local_stream",
    "new_thread_unsafe_stream",
    "clear_streams",
    "stream",
    "synchronize",
    "metal",
    "cuda",
    "kind_of",
    "move",
]


class DeviceUnavailableError(RuntimeError, ValueError, AssertionError):
    """A device that exists in PyTorch's or MLX's vocabulary but not here (``cuda``, ``mps``,
    the GPU): PyTorch raises ``RuntimeError`` (``AssertionError`` for CUDA on a CPU-only
    build), MLX ``ValueError``; this is all three."""


TORCH_DEVICE_TYPES = (
    "cpu",
    "cuda",
    "ipu",
    "xpu",
    "mkldnn",
    "opengl",
    "opencl",
    "ideep",
    "hip",
    "ve",
    "fpga",
    "maia",
    "xla",
    "lazy",
    "vulkan",
    "mps",
    "meta",
    "hpu",
    "mtia",
    "privateuseone",
)
"""The device types ``torch.device`` accepts (PyTorch's list); only ``cpu`` holds arrays."""


class DeviceType:
    """``mx.DeviceType.cpu`` / ``mx.DeviceType.gpu``."""

    cpu = "cpu"
    gpu = "gpu"


class Device:
    """A compute device (``mx.cpu`` or ``mx.gpu``)."""

    __slots__ = ("type", "index")

    def __init__(self, type: Any, index: int = 0) -> None:
        if isinstance(type, Device):
            type = type.type  # type: ignore[has-type]
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


def _no_gpu(who: str) -> DeviceUnavailableError:
    return DeviceUnavailableError(
        f"{who}: the GPU is not available: {backend.gpu_unavailable_reason()} "
        "(mx.is_available(mx.gpu) is False; chainrule computes on the CPU through NumPy)"
    )


def is_available(device: Device) -> bool:
    """Whether ``device`` (a ``Device`` or a ``DeviceType``) can run.

    Args:
        device: ``mx.cpu``, ``mx.gpu`` or a ``DeviceType``.

    Returns:
        ``True`` for the CPU; for the GPU, whether CuPy is installed and sees a CUDA device.
    """
    return _device(device).type == DeviceType.cpu or backend.gpu() is not None


def device_count(device: Device | str) -> int:
    """How many devices of ``device``'s type there are.

    Args:
        device: ``mx.cpu``, ``mx.gpu`` or a ``DeviceType``.

    Returns:
        1 for the CPU; the number of CUDA devices for the GPU (0 without CuPy).
    """
    if _device(device).type == DeviceType.cpu:
        return 1
    g = backend.gpu()
    return 0 if g is None else g.count


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and ": " in line:
                    return line.split(": ", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


_INFO: dict = {}


def device_info(device: Device | str | None = None) -> dict:
    """What is known of a device: ``device_name`` and ``architecture`` for the CPU.

    Args:
        device: the device (default: the default device).

    Returns:
        A new dict.

    Raises:
        ValueError: for the GPU, which is not available.
    """
    d = default_device() if device is None else _device(device)
    if d.type != DeviceType.cpu:
        g = backend.gpu()
        if g is None:
            raise _no_gpu("device_info")
        return _gpu_info(g)
    if not _INFO:
        _INFO.update(device_name=_cpu_name(), architecture=platform.machine() or "unknown")
    return dict(_INFO)


def _gpu_info(g: backend.GpuBackend) -> dict:
    if g.name != "cupy":
        return {"device_name": f"{g.name} (CuPy stand-in on the CPU)", "architecture": "strict"}
    props = g.xp.cuda.runtime.getDeviceProperties(0)  # pragma: no cover - needs a GPU
    name = props["name"]  # pragma: no cover
    return {  # pragma: no cover
        "device_name": name.decode() if isinstance(name, bytes) else str(name),
        "architecture": f"sm_{props['major']}{props['minor']}",
        "memory_size": int(props["totalGlobalMem"]),
    }


def default_device() -> Device:
    """The device new arrays are made on (the CPU unless the GPU was chosen)."""
    return _DEFAULT[0]


def _set_default(device: Device) -> None:
    _DEFAULT[0] = device
    g = backend.GPU[0]
    backend.DEFAULT_XP[0] = g.xp if device.type == DeviceType.gpu and g is not None else xp


def set_default_device(device: Device) -> None:
    """Choose the device new arrays are made on.

    Raises:
        DeviceUnavailableError: (a ``ValueError``) for the GPU where there is none, naming what
            is missing (CuPy, or a CUDA device).
    """
    device = _device(device)
    if not is_available(device):
        raise _no_gpu("set_default_device")
    _set_default(device)


TORCH_DEFAULT: list = [None]
"""PyTorch's default device (``torch.set_default_device``): ``None`` or a CPU ``device``."""


@contextlib.contextmanager
def host_default() -> Iterator[None]:
    """The CPU as MLX's and PyTorch's default device while a block runs (the tracers of
    ``mx.compile`` and ``mx.vmap`` trace GPU calls on host copies: what the traced function
    makes must be made on the host too), restored after."""
    saved = (_DEFAULT[0], TORCH_DEFAULT[0])
    _set_default(cpu)
    TORCH_DEFAULT[0] = None
    try:
        yield
    finally:
        _set_default(saved[0])
        TORCH_DEFAULT[0] = saved[1]


def set_torch_default_device(dev) -> None:
    """``torch.set_default_device``: ``None`` or the CPU; any other device is refused.

    Raises:
        DeviceUnavailableError: for a device other than the CPU (``cuda``, ``mps``...).
        RuntimeError: for a device name PyTorch does not know.
    """
    from .tensor_functions import check_device, device

    if dev is None:
        TORCH_DEFAULT[0] = None
        return
    d = dev if isinstance(dev, device) else device(dev)
    check_device(d, "set_default_device")
    TORCH_DEFAULT[0] = d


class _Autocast(threading.local):
    """PyTorch's CPU autocast state, per thread: the dtype matmul-like operations compute in
    (``None`` when off). Set by ``chainrule.torch.amp.autocast``."""

    def __init__(self) -> None:
        self.dtype = None  # a chainrule Dtype, or None


AUTOCAST = _Autocast()


def autocast_arrays(*xs):
    """``xs`` with each float32 array cast to the autocast dtype (float64 and integer arrays
    pass through, as in PyTorch's CPU autocast); the cast is recorded, so gradients flow back
    in float32. Operations that autocast (matmul, linear, convolutions) call this first when
    ``AUTOCAST.dtype`` is set; it costs one attribute read when autocast is off."""
    dtype = AUTOCAST.dtype
    if dtype is None:
        return xs
    from . import ops
    from .array import array

    out = []
    for x in xs:
        if isinstance(x, array) and x._data.dtype == _F32:
            x = ops.astype(x, dtype)
        out.append(x)
    return tuple(out)


# -- streams -----------------------------------------------------------------------------------


class Stream:
    """A stream on a device: work submitted to it runs in order (here: eagerly)."""

    __slots__ = ("device", "index")

    def __init__(self, device: Device = cpu, index: int = 0) -> None:
        self.device = _device(device)
        self.index = index

    def __repr__(self) -> str:
        return f"Stream({self.device}, {self.index})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Stream) and self.index == other.index and self.device == other.device
        )

    def __hash__(self) -> int:
        return hash((self.device, self.index))


class ThreadLocalStream:
    """A handle that stands for one stream per thread (``mx.new_thread_local_stream``)."""

    __slots__ = ("device", "index")

    def __init__(self, device: Device, index: int) -> None:
        self.device = _device(device)
        self.index = index

    def __repr__(self) -> str:
        return f"ThreadLocalStream({self.device}, {self.index})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ThreadLocalStream)
            and self.index == other.index
            and self.device == other.device
        )

    def __hash__(self) -> int:
        return hash(("thread-local", self.device, self.index))


_STREAM_INDEX = itertools.count()  # next() on a count is atomic under the GIL
_LOCAL_INDEX = itertools.count()
_SHARED: set = set()  # indices of streams usable on any thread (new_thread_unsafe_stream)


class _ThreadStreams(threading.local):
    """The calling thread's streams: those it made, its defaults, its thread-local mapping."""

    def __init__(self) -> None:
        self.owned: set = set()
        self.defaults: dict = {}
        self.local: dict = {}
        self.current: list = []  # streams entered with `mx.stream`, innermost last


_THREAD = _ThreadStreams()


def _make(device: Device, who: str) -> Stream:
    device = _device(device)
    if not is_available(device):
        raise _no_gpu(who)
    s = Stream(device, next(_STREAM_INDEX))
    _THREAD.owned.add(s.index)
    return s


def default_stream(device: Device | str) -> Stream:
    """The calling thread's default stream of ``device``.

    Args:
        device: ``mx.cpu`` (``mx.gpu`` raises ``ValueError``: no GPU here).

    Returns:
        The stream.
    """
    device = _device(device)
    s = _THREAD.defaults.get(device)
    if s is not None and not is_available(device):  # the GPU went away (a test's stand-in)
        raise _no_gpu("default_stream")
    if s is None:
        s = _THREAD.defaults[device] = _make(device, "default_stream")
    return s


def set_default_stream(stream: Stream) -> None:
    """Make ``stream`` its device's default stream on the calling thread.

    Args:
        stream: a stream usable on this thread.
    """
    _check_usable(_resolve(stream, "set_default_stream"))
    _THREAD.defaults[stream.device] = stream


def new_stream(device: Device | str) -> Stream:
    """A new stream on ``device``, usable on the calling thread only (as in MLX).

    Args:
        device: ``mx.cpu`` (``mx.gpu`` raises ``ValueError``).

    Returns:
        The stream.
    """
    return _make(device, "new_stream")  # type: ignore[arg-type]


def new_thread_unsafe_stream(device: Device | str) -> Stream:
    """A new stream usable on any thread.

    Args:
        device: ``mx.cpu`` (``mx.gpu`` raises ``ValueError``).

    Returns:
        The stream.
    """
    s = _make(device, "new_thread_unsafe_stream")  # type: ignore[arg-type]
    _SHARED.add(s.index)
    return s


def new_thread_local_stream(device: Device | str) -> ThreadLocalStream:
    """A handle standing for one stream per thread: each thread using it gets its own.

    Args:
        device: ``mx.cpu`` (``mx.gpu`` raises ``ValueError``).

    Returns:
        The handle, usable with ``mx.stream`` on any thread.
    """
    device = _device(device)
    if not is_available(device):
        raise _no_gpu("new_thread_local_stream")
    return ThreadLocalStream(device, next(_LOCAL_INDEX))


def clear_streams() -> None:
    """Forget every stream the calling thread made (its defaults are made again on demand)."""
    _THREAD.owned.clear()
    _THREAD.defaults.clear()
    _THREAD.local.clear()


def _resolve(s, who: str) -> Stream:
    """The stream that ``s`` (a stream, thread-local handle, device or device type) means."""
    if isinstance(s, ThreadLocalStream):
        got = _THREAD.local.get(s)
        if got is None:
            got = _THREAD.local[s] = _make(s.device, who)
        return got
    if isinstance(s, Stream):
        return s
    if s is None:
        raise ValueError(f"{who}: give a stream or a device")
    return default_stream(s)


def _check_usable(s: Stream) -> None:
    if s.index not in _THREAD.owned and s.index not in _SHARED:
        raise RuntimeError(
            f"There is no {s} in the current thread: a stream from mx.new_stream belongs to "
            "the thread that made it; use mx.new_thread_local_stream (one stream per thread) "
            "or mx.new_thread_unsafe_stream to share one"
        )


def current_stream() -> Stream:
    """The stream operations run on: the innermost ``mx.stream`` context's, else the default.

    Returns:
        The stream.
    """
    if _THREAD.current:
        return _THREAD.current[-1]
    return default_stream(default_device())


class StreamContext:
    """``with mx.stream(s):`` makes ``s`` (a stream, or a device's default stream) current.

    The default device becomes the stream's device inside and is restored after.
    """

    def __init__(self, s) -> None:
        if s is None:
            raise ValueError("stream: give a stream or a device")
        self._s = s
        self._saved: Device | None = None

    def __enter__(self) -> StreamContext:
        s = _resolve(self._s, "stream")
        _check_usable(s)
        self._saved = _DEFAULT[0]
        _set_default(s.device)
        _THREAD.current.append(s)
        return self

    def __exit__(self, *exc) -> None:
        if _THREAD.current:
            _THREAD.current.pop()
        if self._saved is not None:
            _set_default(self._saved)
            self._saved = None


def stream(s) -> StreamContext:
    """A context manager running the operations inside on ``s`` (a stream or a device).

    Args:
        s: a ``Stream``, a ``ThreadLocalStream``, ``mx.cpu`` or a ``DeviceType``.

    Returns:
        The context manager.
    """
    return StreamContext(s)


def synchronize(stream: Stream | None = None) -> None:
    """Wait for the work submitted to ``stream`` (all streams by default): work is eager, so
    there is nothing to wait for on the CPU; on the GPU it waits for the device. Takes a memory
    sample when accounting is on and one is due (``chainrule.core.memory``)."""
    g = backend.GPU[0]
    if g is not None:
        g.synchronize()
    memory.sample_if_due()


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

    # MLX's older spellings of the memory functions (``mx.metal.get_peak_memory()``)
    get_active_memory = staticmethod(memory.get_active_memory)
    get_peak_memory = staticmethod(memory.get_peak_memory)
    reset_peak_memory = staticmethod(memory.reset_peak_memory)
    get_cache_memory = staticmethod(memory.get_cache_memory)
    clear_cache = staticmethod(memory.clear_cache)
    set_memory_limit = staticmethod(memory.set_memory_limit)
    set_cache_limit = staticmethod(memory.set_cache_limit)
    set_wired_limit = staticmethod(memory.set_wired_limit)


class cuda:
    """``mx.cuda``: the CUDA backend (CuPy)."""

    @staticmethod
    def is_available() -> bool:
        """Whether CuPy is installed and sees a CUDA device."""
        g = backend.gpu()
        return g is not None and g.name == "cupy"


def _from_environment() -> None:
    """``CHAINRULE_DEVICE=gpu`` (or ``cuda``) makes the GPU the default device at import."""
    want = os.environ.get("CHAINRULE_DEVICE", "").strip().lower()
    if want in ("", "cpu"):
        return
    if want not in ("gpu", "cuda"):
        raise ValueError(f"CHAINRULE_DEVICE must be 'cpu' or 'gpu', not {want!r}")
    set_default_device(gpu)
    ENV_GPU[0] = True  # tensor_functions makes torch's default device "cuda" when it loads


ENV_GPU = [False]


_from_environment()


def kind_of(data) -> str:
    """``"gpu"`` for backend data on the GPU, else ``"cpu"``."""
    return "gpu" if backend.is_gpu(data) else "cpu"


_MOVES: dict = {}


def _move_prim(kind: str):
    prim = _MOVES.get(kind)
    if prim is None:
        from . import ops

        back = "cpu" if kind == "gpu" else "gpu"

        def rule(g, ans, *xs, argnum, k):
            return move(g, back)

        prim = _MOVES[kind] = ops.Primitive(f"to_{kind}", (rule,), True, holomorphic=False)
    return prim


def move(x, kind: str):
    """Array ``x`` on the device of kind ``"cpu"`` or ``"gpu"``: ``x`` itself when it is there
    already, else a copy recorded as one differentiable operation (its gradient goes back to
    ``x``'s device), as PyTorch's ``.to("cuda")``.

    Raises:
        DeviceUnavailableError: for the GPU where there is none, naming what is missing.
    """
    data = x._data
    if kind_of(data) == kind:
        return x
    if kind == "gpu" and backend.gpu() is None:
        raise _no_gpu("to")
    from .ops.table import _rec

    return _rec(_move_prim(kind), backend.to_kind(data, kind), (x,), {"k": 0})


def namespace_of(where) -> Any:
    """The array namespace of a device, stream or device type (MLX's ``stream=`` argument).

    Raises:
        DeviceUnavailableError: for the GPU where there is none.
    """
    if isinstance(where, (Stream, ThreadLocalStream)):
        where = where.device
    d = _device(where)
    if d.type == DeviceType.cpu:
        return xp
    g = backend.gpu()
    if g is None:
        raise _no_gpu("stream")
    return g.xp
