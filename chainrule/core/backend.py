"""The one door to the array library.

Every kernel in the op table reaches NumPy through ``xp`` defined here, so another
NumPy-compatible library (CuPy for a GPU) can later be swapped in without touching
the op table. Nothing else in ``chainrule.core`` imports NumPy for computation.

``xp`` is NumPy's namespace with the few functions that would mishandle ``bfloat16`` (an
``ml_dtypes`` type NumPy only half knows) replaced: ordering (``sort``, ``argsort``,
``partition``, ...: ml_dtypes compares NaN as unordered, so NaNs land anywhere), ``nan_to_num``
(which skips a dtype it does not know as floating), ``finfo`` and ``issubdtype``. Those compute
on bfloat16 in float32 (exact: every bfloat16 is a float32) and round back; for every other
dtype they are NumPy's own. Every other name is NumPy's object itself (``xp.add is
numpy.add``), and the array constructors are looked up on NumPy at each call, so
``mx.compile``'s tracer, which patches them there while it traces, sees them.
"""

from __future__ import annotations

import types
from typing import Any

import ml_dtypes
import numpy

BFLOAT16 = numpy.dtype(ml_dtypes.bfloat16)
"""The backend dtype of ``mx.bfloat16``."""

ndarray = numpy.ndarray
# ``numpy`` itself is importable from here too: ``numpy.array(x)`` reads the constructor as it
# is at the call (patched by ``mx.compile`` while tracing) without ``xp.array``'s extra call.


def _is_bf16(x) -> bool:
    return getattr(x, "dtype", None) == BFLOAT16


def _widened(x):
    return x.astype(numpy.float32) if _is_bf16(x) else x


def _ordering(name: str, values: bool):
    """NumPy's ``name`` computing bfloat16 inputs in float32 (``values``: round the result back)."""
    fn = getattr(numpy, name)

    def wrapped(a, *args, **kwargs):
        if not _is_bf16(a):
            return fn(a, *args, **kwargs)
        out = fn(a.astype(numpy.float32), *args, **kwargs)
        if values and isinstance(out, tuple):
            return (out[0].astype(BFLOAT16),) + out[1:]
        return out.astype(BFLOAT16) if values else out

    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = f"``numpy.{name}``, with bfloat16 ordered as float32 (NaNs last)."
    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapped


def _searchsorted(a, v, *args, **kwargs):
    """``numpy.searchsorted`` with bfloat16 compared as float32."""
    return numpy.searchsorted(_widened(a), _widened(v), *args, **kwargs)


def _nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """``numpy.nan_to_num``; bfloat16 infinities become bfloat16's largest finite values."""
    if not _is_bf16(x):
        return numpy.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    info = ml_dtypes.finfo(BFLOAT16)
    posinf = float(info.max) if posinf is None else posinf
    neginf = float(info.min) if neginf is None else neginf
    out = numpy.nan_to_num(x.astype(numpy.float32), nan=nan, posinf=posinf, neginf=neginf)
    return out.astype(BFLOAT16)


def _finfo(dtype):
    """``numpy.finfo``, and ``ml_dtypes.finfo`` for bfloat16."""
    if getattr(dtype, "dtype", dtype) == BFLOAT16:
        return ml_dtypes.finfo(BFLOAT16)
    return numpy.finfo(dtype)


def _issubdtype(arg1, arg2) -> bool:
    """``numpy.issubdtype``, knowing bfloat16 as a floating type."""
    try:
        bf = numpy.dtype(arg1) == BFLOAT16
    except TypeError:
        bf = False
    if bf:
        return arg2 in (numpy.floating, numpy.inexact, numpy.number, numpy.generic) or (
            not isinstance(arg2, type) and numpy.dtype(arg2) == BFLOAT16
        )
    return numpy.issubdtype(arg1, arg2)


def _constructor(name: str):
    """Forward to ``numpy.<name>`` as it is at call time (``mx.compile`` patches it)."""

    def forward(*args, **kwargs):
        return getattr(numpy, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"``numpy.{name}`` (looked up at each call)."
    return forward


def _namespace() -> types.ModuleType:
    ns: Any = types.ModuleType("chainrule.core.backend.xp", "NumPy, bfloat16-aware (see backend).")
    ns.__dict__.update((k, v) for k, v in vars(numpy).items() if not k.startswith("__"))
    for name in ("sort", "partition", "unique", "median", "nanmedian", "msort"):
        if hasattr(numpy, name):
            setattr(ns, name, _ordering(name, values=True))
    for name in ("argsort", "argpartition"):
        setattr(ns, name, _ordering(name, values=False))
    ns.searchsorted = _searchsorted
    ns.nan_to_num = _nan_to_num
    ns.finfo = _finfo
    ns.issubdtype = _issubdtype
    for name in ("array", "asarray", "asanyarray", "ascontiguousarray", "asfortranarray"):
        setattr(ns, name, _constructor(name))

    def __getattr__(name: str):  # NumPy's lazily loaded submodules (testing, ...)
        return getattr(numpy, name)

    ns.__getattr__ = __getattr__
    return ns


xp: Any = _namespace()  # a module built at run time: NumPy plus the overrides above
"""The array namespace the kernels call (``xp.add``, ``xp.matmul``, ...)."""


def asarray(value, dtype=None):
    """Convert ``value`` to a backend array without copying when possible."""
    return xp.asarray(value, dtype=dtype)


def to_numpy(value):
    """Return ``value`` as a NumPy array (a no-op on the NumPy backend)."""
    return numpy.asarray(value)


# -- devices -----------------------------------------------------------------------------------
#
# An array's device is told by the type of its backend data: ``numpy.ndarray`` is the CPU; the
# GPU backend's array type (``cupy.ndarray``, or the strict stand-in's ``StrictArray`` in tests)
# is the GPU. NumPy's functions and ufuncs dispatch to CuPy's (NEP 13/18), so a kernel written
# as ``xp.add(a, b)`` runs wherever its inputs are; what cannot dispatch (making an array from
# nothing, ufunc methods such as ``.at``, converting to NumPy) goes through the helpers below.


class GpuBackend:
    """The array library behind ``mx.gpu``: its namespace, array type and the few calls that
    differ from NumPy's."""

    __slots__ = (
        "name",
        "xp",
        "ndarray",
        "scatter_add",
        "to_host",
        "synchronize",
        "count",
        "fuse",
        "unshared",
    )

    def __init__(
        self, name, xp, ndarray, scatter_add, to_host, synchronize, count, fuse=None, unshared=None
    ) -> None:
        self.name = name
        self.xp = xp
        self.ndarray = ndarray
        self.scatter_add = scatter_add
        self.to_host = to_host
        self.synchronize = synchronize
        self.count = count
        # ``fuse(fn)``: ``fn`` (arithmetic and the namespace's ufuncs on GPU arrays and
        # scalars) as one kernel (``cupy.fuse``); the strict stand-in calls ``fn`` as it is
        self.fuse = fuse
        # ``unshared(a)``: whether GPU array ``a`` owns its memory and nothing but references to
        # ``a`` itself can see it (no view; ``mx.compile``'s replay may then write into it when
        # only the state handle holds ``a``); ``None``: never
        self.unshared = unshared


GPU: list = [None]
"""``[GpuBackend]`` once the GPU is usable, else ``[None]``."""
_WHY: list = [None]  # why there is no GPU (the message the errors give), once looked up
_LOOKED: list = [False]


def _load_cupy() -> GpuBackend | None:
    try:
        import cupy  # type: ignore[import-not-found]
        import cupyx  # type: ignore[import-not-found]
    except ImportError as e:
        _WHY[0] = (
            f"CuPy is not installed ({e}); install it with `pip install chainrule[gpu]` "
            "(CUDA 12) or `pip install cupy-cuda13x` (CUDA 13)"
        )
        return None
    try:  # pragma: no cover - needs a GPU
        n = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as e:  # pragma: no cover - CuPy without a driver
        _WHY[0] = f"CuPy is installed but no CUDA device is usable ({e})"
        return None
    if n == 0:  # pragma: no cover
        _WHY[0] = "CuPy is installed but there is no CUDA device"
        return None
    return GpuBackend(  # pragma: no cover - needs a GPU
        "cupy",
        cupy,
        cupy.ndarray,
        cupyx.scatter_add,
        cupy.asnumpy,
        lambda: cupy.cuda.get_current_stream().synchronize(),
        n,
        lambda fn: cupy.fuse(kernel_name=fn.__name__)(fn),
        lambda a: a.base is None,  # (a CuPy view holds its base array)
    )


def _strict() -> GpuBackend:
    from . import strict_backend as sb

    return GpuBackend(
        "strict",
        sb.namespace,
        sb.StrictArray,
        sb.namespace.scatter_add,
        sb.namespace.asnumpy,
        lambda: None,
        1,
        lambda fn: fn,  # the same arithmetic, one ufunc call at a time
        sb.unshared,
    )


def gpu() -> GpuBackend | None:
    """The GPU backend (CuPy, or the strict test stand-in), or ``None`` when there is none."""
    if not _LOOKED[0]:
        _LOOKED[0] = True
        import os

        if os.environ.get("CHAINRULE_TEST_BACKEND", "").lower() == "strict":
            GPU[0] = _strict()
        else:
            GPU[0] = _load_cupy()
        _publish()
    return GPU[0]


_PUBLISHED: list = []  # the GPU array types added to the op table's backend array types


def _publish() -> None:
    """Make the GPU's array type one of the backend array types the engine recognises
    (``ops._ARRAYS``, ``extend.BACKEND_ARRAYS``), or take it out again."""
    import sys

    extra = () if GPU[0] is None else (GPU[0].ndarray,)
    for modname, attr in (
        ("chainrule.core.ops.table", "_ARRAYS"),
        ("chainrule.core.ops", "_ARRAYS"),
        ("chainrule.core.ops.elementwise", "_ARRAYS"),
        ("chainrule.core.extend", "BACKEND_ARRAYS"),
    ):
        m = sys.modules.get(modname)
        if m is not None and hasattr(m, attr):
            base = tuple(t for t in getattr(m, attr) if t not in _PUBLISHED)
            setattr(m, attr, base + extra)
    _PUBLISHED[:] = extra


def gpu_unavailable_reason() -> str:
    """Why there is no GPU, in words naming what is missing (empty when there is one)."""
    if gpu() is not None:
        return ""
    return _WHY[0] or "no GPU backend"


class use_strict_gpu:
    """``with use_strict_gpu():`` backs ``mx.gpu`` by the strict CuPy stand-in (tests).

    Inside, the GPU is available, arrays on it are ``StrictArray`` (which refuse implicit
    conversion to NumPy and host arrays mixed in, as CuPy's do); the default devices are
    restored on exit.
    """

    def __enter__(self) -> GpuBackend:
        from . import devices

        self._saved = (GPU[0], _LOOKED[0], devices._DEFAULT[0], devices.TORCH_DEFAULT[0])
        GPU[0] = _strict()
        _LOOKED[0] = True
        _publish()
        return GPU[0]

    def __exit__(self, *exc) -> None:
        from . import devices

        GPU[0], _LOOKED[0], dflt, tdflt = self._saved
        _publish()
        devices._set_default(dflt)
        devices.TORCH_DEFAULT[0] = tdflt


def is_gpu(data) -> bool:
    """Whether backend data ``data`` lives on the GPU."""
    return type(data) is not ndarray and (g := GPU[0]) is not None and isinstance(data, g.ndarray)


def array_module(data):
    """The namespace computing on ``data``'s device: ``xp`` for NumPy data, else the GPU's."""
    if type(data) is ndarray:
        return xp
    g = GPU[0]
    if g is not None and isinstance(data, g.ndarray):
        return g.xp
    return xp


def to_host(data):
    """``data`` as a NumPy array: an explicit device-to-host copy for GPU data, else as is."""
    if type(data) is ndarray:
        return data
    g = GPU[0]
    if g is not None and isinstance(data, g.ndarray):
        return g.to_host(data)
    return numpy.asarray(data)


def to_gpu(data):
    """``data`` (host data or GPU data) on the GPU.

    Raises:
        DeviceUnavailableError: when there is no GPU (the message says what is missing).
    """
    g = gpu()
    if g is None:
        from .devices import DeviceUnavailableError

        raise DeviceUnavailableError(f"the GPU is not available: {gpu_unavailable_reason()}")
    if isinstance(data, g.ndarray):
        return data
    dt = getattr(data, "dtype", None)
    if dt is not None and dt.kind == "V":
        raise no_gpu_dtype(dt, "cannot go to the GPU")
    return g.xp.asarray(data)


def no_gpu_dtype(dt, what: str) -> TypeError:
    """The error for an array of a dtype CuPy lacks (``ml_dtypes``' bfloat16, the float8
    types) that would be on the GPU."""
    name = getattr(dt, "name", str(dt))
    return TypeError(
        f"{name} arrays {what}: CuPy has no {name} type (use float16 or float32 on the GPU, "
        f"or keep {name} arrays on the CPU with stream=mx.cpu / .to('cpu'))"
    )


def to_kind(data, kind: str):
    """``data`` on the device of kind ``"cpu"`` or ``"gpu"``."""
    return to_gpu(data) if kind == "gpu" else to_host(data)


def same_device(data, ref):
    """``data`` (host data, a scalar, or an array) on the device of backend array ``ref``."""
    if type(ref) is ndarray or GPU[0] is None:
        return data
    if isinstance(ref, GPU[0].ndarray):
        return to_gpu(data)
    return data


def scatter_add(out, idx, values) -> None:
    """``out[idx] += values`` with repeated indices accumulating, in place (``numpy.add.at`` on
    the CPU, ``cupyx.scatter_add`` on the GPU)."""
    if not is_gpu(out):
        numpy.add.at(out, idx, values)
        return
    GPU[0].scatter_add(out, idx, same_device(values, out) if type(values) is ndarray else values)


DEFAULT_XP: list = [xp]
"""The namespace of the default device (``mx.set_default_device``): where new arrays are made."""


def default_xp():
    """The namespace making arrays on the default device (``xp`` unless the GPU is default)."""
    return DEFAULT_XP[0]


def on_default(data):
    """Host-made ``data`` moved to the default device (a no-op when the CPU is default)."""
    if DEFAULT_XP[0] is xp:
        return data
    return to_gpu(data)


def _has_gpu(a) -> bool:
    return any(is_gpu(v) for v in a) if type(a) is tuple else is_gpu(a)


def _on_host(a):
    if type(a) is tuple:
        return tuple(_on_host(v) for v in a)
    return to_host(a) if is_gpu(a) else a


def via_host(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` for a NumPy-only computation (a ufunc's ``.accumulate``, a
    ``Generator`` method): GPU inputs are copied to the host explicitly and the results copied
    back to the GPU (also the arrays of a tuple argument, such as an index). With no GPU input
    it is ``fn`` itself."""
    if GPU[0] is None or not any(_has_gpu(a) for a in args):
        return fn(*args, **kwargs)
    out = fn(*[_on_host(a) for a in args], **kwargs)
    if isinstance(out, tuple):
        return tuple(to_gpu(o) for o in out)
    return to_gpu(out)


def reduce_sum(d, axes, dtype=None, keepdims: bool = False):
    """``numpy.add.reduce`` on NumPy data (no dispatch cost), ``sum`` on GPU data."""
    if not is_gpu(d):
        return numpy.add.reduce(d, axes, dtype, None, keepdims)  # type: ignore[call-overload]
    return xp.sum(d, axis=axes, dtype=dtype, keepdims=keepdims)


def reduce_max(d, axis=None, keepdims: bool = False):
    """``numpy.maximum.reduce`` on NumPy data, ``max`` on GPU data (CuPy has no ``.reduce``
    for ``maximum``)."""
    if not is_gpu(d):
        return numpy.maximum.reduce(d, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]
    return xp.max(d, axis=axis, keepdims=keepdims)


def as_array(r):
    """A kernel's result as a backend array: NumPy scalars become 0-d NumPy arrays; arrays (on
    either device) pass through."""
    if type(r) is ndarray:
        return r
    g = GPU[0]
    if g is not None and isinstance(r, g.ndarray):
        return r
    return numpy.asarray(r)


def copy_of(x):
    """A new copy of backend array ``x`` on its device."""
    return x.copy() if is_gpu(x) else numpy.array(x)


class DeviceMismatchError(RuntimeError, TypeError):
    """Arrays on different devices in one operation: PyTorch's ``RuntimeError``, and the
    ``TypeError`` CuPy raises for a host array in a device kernel."""


def host_scalars(xs: tuple) -> tuple | None:
    """``xs`` with every 0-d host array made a NumPy scalar, when one of ``xs`` is a GPU array
    (else ``None``): MLX's arrays have no device and PyTorch lets a 0-d CPU tensor meet a CUDA
    tensor, but CuPy's kernels refuse any ``numpy.ndarray`` (they take scalars). Called only
    after a kernel refused its inputs, so it costs nothing on the way that works."""
    g = GPU[0]
    if g is None or not any(isinstance(x, g.ndarray) for x in xs):
        return None
    if not any(type(x) is ndarray and not x.ndim for x in xs):
        return None
    return tuple(scalar_if_0d(x) for x in xs)


def scalar_if_0d(d):
    """A 0-d host array as a NumPy scalar (which GPU kernels take, as NumPy's do); any other
    value as it is."""
    return d[()] if type(d) is ndarray and not d.ndim else d


def devices_mixed(name: str, xs) -> DeviceMismatchError | None:
    """The error for operation ``name`` when its inputs ``xs`` (backend values) lie on the CPU and
    the GPU both, else ``None``. Called only after a kernel failed, so it costs nothing on the
    way that works."""
    g = GPU[0]
    if g is None:
        return None
    on_gpu = on_cpu = False
    for x in xs:
        if isinstance(x, g.ndarray):
            on_gpu = True
        elif type(x) is ndarray and x.ndim:
            on_cpu = True
    if not (on_gpu and on_cpu):
        return None
    return DeviceMismatchError(
        f"{name}: Expected all tensors to be on the same device, but found at least two "
        "devices, cuda:0 and cpu! (move them with .to(device), .cuda() or .cpu(); MLX-style "
        "arrays are made on mx.default_device())"
    )


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse rather than hand it back to the kernel.

    By default glibc serves each large block (NumPy's activations and gradients: megabytes)
    with a fresh ``mmap`` and unmaps it when freed, or trims the heap's top, so the next
    array of that size page-faults its memory in again: in a transformer training step that
    was ~6,000 minor faults and ~20 ms of kernel time per step, as much as a third of the
    step (issue 20; docs/performance.md). Raising the mmap and trim thresholds keeps freed
    blocks in the heap; the process's peak memory is unchanged, but it is not returned to
    the system between steps. Skipped off glibc, when the user set glibc's own
    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, or with
    ``CHAINRULE_KEEP_FREED_MEMORY=0``.
    """
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("CHAINRULE_KEEP_FREED_MEMORY") == "0":
        return
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB come from the heap
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap top


_keep_freed_memory()
