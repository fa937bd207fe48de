"""``chainrule.core``, imported as ``mx``: arrays, operations and automatic differentiation.

The names follow Apple MLX (``mx.array``, ``mx.grad``, ``mx.value_and_grad``...); the array
type also carries PyTorch's tape conveniences (``requires_grad``, ``backward()``, ``.grad``).

Examples:
    A function's gradient, and its gradient again (MLX style):

    >>> import chainrule.core as mx
    >>> def f(x):
    ...     return mx.sum(x**3)
    >>> x = mx.array([1.0, 2.0, 3.0])
    >>> mx.grad(f)(x)
    array([3, 12, 27], dtype=float32)
    >>> mx.value_and_grad(f)(x)
    (array(36, dtype=float32), array([3, 12, 27], dtype=float32))
    >>> mx.grad(lambda x: mx.grad(f)(x).sum())(x)
    array([6, 12, 18], dtype=float32)

    The same array recorded on a tape (PyTorch style):

    >>> w = mx.array([0.5, -1.0], requires_grad=True)
    >>> (w**2).sum().backward()
    >>> w.grad
    array([1, -2], dtype=float32)
    >>> with mx.no_grad():
    ...     (w * 2).requires_grad
    False
"""

from __future__ import annotations

from . import fast, fft, linalg, random
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .array import Node, PrintOptions, array, get_printoptions, printoptions, set_printoptions
from .autograd import (
    IntegerGradientWarning,
    async_eval,
    enable_grad,
    eval,
    grad,
    is_grad_enabled,
    jvp,
    no_grad,
    set_grad_enabled,
    value_and_grad,
    vjp,
)
from .compile import compile, disable_compile, enable_compile
from .custom import checkpoint, custom_function
from .devices import (
    Device,
    DeviceType,
    Stream,
    StreamContext,
    ThreadLocalStream,
    clear_streams,
    cpu,
    cuda,
    default_device,
    default_stream,
    device_count,
    device_info,
    gpu,
    is_available,
    metal,
    new_stream,
    new_thread_local_stream,
    new_thread_unsafe_stream,
    set_default_device,
    set_default_stream,
    stream,
    synchronize,
)
from .dot import export_to_dot
from .dtypes import (
    Dtype,
    DtypeCategory,
    bfloat16,
    bool_,
    can_cast,
    complex64,
    complex128,
    complexfloating,
    finfo,
    float16,
    float32,
    float64,
    floating,
    generic,
    iinfo,
    inexact,
    int8,
    int16,
    int32,
    int64,
    integer,
    isdtype,
    issubdtype,
    number,
    promote_types,
    result_type,
    signedinteger,
    uint8,
    uint16,
    uint32,
    uint64,
    unsignedinteger,
)
from .export import export_function, exporter, import_function
from .files import load, save, save_gguf, save_safetensors, savez, savez_compressed
from .gradcheck import check_grads
from .memory import (
    clear_cache,
    get_active_memory,
    get_cache_memory,
    get_peak_memory,
    reset_peak_memory,
    set_cache_limit,
    set_memory_limit,
    set_wired_limit,
)
from .ops import *  # noqa: F403  (the op table's public functions)
from .ops import PRIMITIVES, Primitive, defprim
from .threads import get_num_threads, set_num_threads  # BLAS threads (chainrule's own)
from .vmapping import vmap

__version__ = __import__("chainrule").__version__
AxisError = __import__("numpy").exceptions.AxisError
"""Raised for an axis out of range: both a ``ValueError`` and an ``IndexError``."""

pi = 3.141592653589793
e = 2.718281828459045
inf = float("inf")
nan = float("nan")
newaxis = None
euler_gamma = 0.5772156649015329
# PyTorch's tensor methods (view, float, unsqueeze, dim= reductions, ...) live on the one array
# class with only the core imported; this must stay last (it wraps methods the op table attached).
from . import lazy as _lazy  # noqa: E402
from . import pooling as _pooling  # noqa: E402  (pooling's primitives join the op table)
from .conv import *  # noqa: E402, F403  (convolutions, composites of the op table)
from .quantized import *  # noqa: E402, F403  (quantize, dequantize, quantized products)
from .tensor_methods import install as _install_tensor_methods  # noqa: E402

_install_tensor_methods(array)

# mx.distributed, as MLX spells it, imported on first use (it may start MPI): chainrule/core/lazy.py
_lazy.attach(__name__, globals())
