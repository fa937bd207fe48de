"""More of PyTorch's creation and random functions: ``logspace``, windows, ``normal``, ...

Like :mod:`chainrule.torch._creation`, every function returns through ``_finish`` (device
check, ``requires_grad``). Draws without a ``generator=`` come from ``mx.random``'s global
state (``torch.manual_seed`` makes them repeat); the streams differ from PyTorch's, so seeded
values are reproducible here but not equal to PyTorch's.
"""

from __future__ import annotations

import builtins
import json
import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import dtypes as _dt
from chainrule.core.extend import from_value
from chainrule.core.tensor_functions import check_device, place, to_np_dtype

from ._creation import _F32, _I64, _finish, _size, tensor
from ._random import _stream, default_generator

array = mx.array

__all__ = [
    "asarray",
    "bartlett_window",
    "bernoulli",
    "binomial",
    "blackman_window",
    "empty_permuted",
    "empty_strided",
    "from_dlpack",
    "frombuffer",
    "get_rng_state",
    "hamming_window",
    "hann_window",
    "histogramdd",
    "initial_seed",
    "kaiser_window",
    "logspace",
    "multinomial",
    "normal",
    "poisson",
    "randint_like",
    "range",
    "scalar_tensor",
    "seed",
    "set_rng_state",
    "to_dlpack",
    "tril_indices",
    "triu_indices",
]


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else tensor(x)


def logspace(
    start: Any,
    end: Any,
    steps: int,
    base: float = 10.0,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """``base ** linspace(start, end, steps)`` (float32 by default)."""
    if steps < 0:
        raise RuntimeError(f"logspace: number of steps must be non-negative, got {steps}")
    d = to_np_dtype(dtype, _F32)
    values = np.power(float(base), np.linspace(float(start), float(end), int(steps)))
    return _finish(from_value(values.astype(d)), requires_grad, device, "logspace")


def range(
    start: Any = 0,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """``start, start + step, ..., end`` including ``end`` (deprecated in PyTorch; float32)."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("range: step must be nonzero")
    n = int(math.floor((float(end) - float(start)) / float(step))) + 1
    d = to_np_dtype(dtype, _F32)
    values = float(start) + float(step) * np.arange(builtins.max(n, 0), dtype=np.float64)
    return _finish(from_value(values.astype(d)), requires_grad, device, "range")


def scalar_tensor(
    s: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    pin_memory: bool = False,
) -> array:
    """A 0-d tensor holding ``s`` (float32 by default, whatever ``s``'s type)."""
    value = s.item() if isinstance(s, array) else s
    out = from_value(np.asarray(value, dtype=to_np_dtype(dtype, _F32)))
    return _finish(out, requires_grad, device, "scalar_tensor")


def empty_strided(
    size: Any,
    stride: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    pin_memory: bool = False,
) -> array:
    """A new tensor of ``size`` (zeros; arrays here have no strides to choose)."""
    shape = _size((size,), "empty_strided")
    if len(tuple(stride)) != len(shape):
        raise RuntimeError(
            f"empty_strided: mismatch in length of strides and shape ({len(tuple(stride))} "
            f"and {len(shape)})"
        )
    out = from_value(np.zeros(shape, to_np_dtype(dtype, _F32)))
    return _finish(out, requires_grad, device, "empty_strided")


def empty_permuted(
    size: Any,
    physical_layout: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    pin_memory: bool = False,
) -> array:
    """A new tensor of ``size`` (zeros; the physical order is not observable here)."""
    shape = _size((size,), "empty_permuted")
    order = sorted(int(p) for p in physical_layout)
    if order != list(builtins.range(len(shape))):
        raise RuntimeError(
            f"empty_permuted: physical_layout {tuple(physical_layout)} is not a permutation of "
            f"the {len(shape)} dimensions"
        )
    out = from_value(np.zeros(shape, to_np_dtype(dtype, _F32)))
    return _finish(out, requires_grad, device, "empty_permuted")


def randint_like(
    input: array,
    low: int = 0,
    high: int | None = None,
    *,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
    generator: Any = None,
) -> array:
    """Integers drawn from ``[low, high)`` with ``input``'s shape and dtype."""
    from ._random import randint

    if high is None:
        low, high = 0, low
    d = input.dtype if dtype is None else dtype
    return randint(low, high, tuple(input.shape), dtype=d, device=device, generator=generator)


def _beside(values: Any, ref: Any) -> Any:
    """Drawn ``values`` (on the default device, or the host for a ``generator``) on the device
    of backend data ``ref``; as they are when ``ref`` is None."""
    if ref is None:
        return values
    return _backend.to_kind(values, "gpu" if _backend.is_gpu(ref) else "cpu")


def _standard_normal(shape: tuple, generator: Any, ref: Any = None, dtype: Any = np.float64):
    """``normal_(0, 1)`` of a new tensor of ``dtype`` (PyTorch's draws), beside ``ref``."""
    return _beside(_stream(generator).normal(tuple(shape), dtype), ref)


def _uniform(shape: tuple, generator: Any, ref: Any = None) -> np.ndarray:
    """float64 uniforms in ``[0, 1)`` (PyTorch's ``rand(dtype=float64)``), beside ``ref``."""
    return _beside(_stream(generator).uniform(tuple(shape), np.float64), ref)


def normal(
    mean: Any = 0.0,
    std: Any = 1.0,
    size: Any = None,
    *,
    generator: Any = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Normal draws with elementwise ``mean`` and ``std`` (tensors broadcast, or floats with
    ``size``); the result is differentiable in tensor ``mean`` and ``std`` (reparameterised)."""
    m_is, s_is = isinstance(mean, array), isinstance(std, array)
    if not m_is and not s_is:
        if size is None:
            raise TypeError("normal: give size= when mean and std are numbers")
        shape = _size((size,), "normal")
        d = to_np_dtype(dtype, _F32)
        if float(std) < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {float(std)}")
        out = from_value(_stream(generator).normal(shape, d, float(mean), float(std)))
        return _finish(out, requires_grad, device, "normal")
    if s_is and bool(np.any(std._data < 0)):
        raise RuntimeError(f"normal: expects all elements of std >= 0.0, got {std}")
    shape = np.broadcast_shapes(mean.shape if m_is else (), std.shape if s_is else ())
    ref = (mean if m_is else std)._data  # the draws on the parameters' device
    dt = (mean if m_is else std).dtype
    z = from_value(_standard_normal(shape, generator, ref, _dt.to_np(dt)))
    check_device(device, "normal")
    return mean + std * z  # (PyTorch: normal_(0, 1), then mul_(std), add_(mean))


def bernoulli(input: Any, p: Any = None, *, generator: Any = None) -> array:
    """0/1 draws that are 1 with probability ``input`` (or ``p``), with ``input``'s dtype."""
    x = _arr(input)
    prob = x._data if p is None else p
    if p is None and (np.any(prob < 0) or np.any(prob > 1)):
        raise RuntimeError("bernoulli: expects 0 <= p <= 1")
    if p is None:  # a tensor of probabilities: one uniform of its precision per element
        host = _backend.to_kind(prob, "cpu")
        hits = _stream(generator).bernoulli(np.asarray(host), tuple(x.shape))
        return from_value(_beside(hits.astype(x._data.dtype), x._data))
    hits = _stream(generator).bernoulli(float(prob), tuple(x.shape))
    return from_value(_beside(hits.astype(x._data.dtype), x._data))


def multinomial(
    input: Any, num_samples: int, replacement: bool = False, *, generator: Any = None
) -> array:
    """Indices drawn from the (unnormalised) probabilities in the last dimension (int64)."""
    return _arr(input).multinomial(num_samples, replacement)


def poisson(input: Any, generator: Any = None) -> array:
    """Poisson draws with rates ``input`` (same dtype), by inversion of uniform draws."""
    x = _arr(input)
    rates = x._data.astype(np.float64)  # on the input's device
    if np.any(rates < 0):
        raise RuntimeError("poisson: rates must be non-negative")
    u = _uniform(x.shape, generator, rates)
    # Inversion: count how many cumulative Poisson probabilities the uniform exceeds.
    k = _backend.array_module(rates).zeros(x.shape, np.float64)
    p = np.exp(-rates)
    cdf = p.copy()
    live = u > cdf
    while np.any(live):
        k = np.where(live, k + 1, k)
        p = np.where(live, p * rates / np.maximum(k, 1), p)
        cdf = np.where(live, cdf + p, cdf)
        live = live & (u > cdf) & (p > 0)
    return from_value(k.astype(x._data.dtype))


def binomial(count: Any, prob: Any, generator: Any = None) -> array:
    """Binomial draws: successes in ``count`` trials of probability ``prob`` (float result)."""
    n = _arr(count)
    pr = _arr(prob)
    shape = np.broadcast_shapes(n.shape, pr.shape)
    trials = np.broadcast_to(n._data, shape).astype(np.int64)
    probs = np.broadcast_to(pr._data, shape).astype(np.float64)
    top = int(trials.max()) if trials.size else 0
    u = _uniform(shape + (top,), generator, probs)
    hits = (u < probs[..., None]) & (_backend.array_module(trials).arange(top) < trials[..., None])
    return from_value(hits.sum(-1).astype(np.result_type(n._data.dtype, pr._data.dtype)))


def _window(name: str, formula):
    def window(
        window_length: int,
        periodic: bool = True,
        *,
        dtype: Any = None,
        layout: Any = None,
        device: Any = None,
        requires_grad: bool = False,
        **params: Any,
    ) -> array:
        if window_length < 0:
            raise RuntimeError(
                f"{name}: requires non-negative window_length, got window_length={window_length}"
            )
        d = to_np_dtype(dtype, _F32)
        if window_length <= 1:
            values = np.ones(window_length)
        else:
            n = window_length + 1 if periodic else window_length
            values = formula(np.arange(n, dtype=np.float64), n, **params)[:window_length]
        return _finish(from_value(values.astype(d)), requires_grad, device, name)

    window.__name__ = window.__qualname__ = name
    window.__doc__ = (
        f"PyTorch's ``{name}`` (periodic by default: the symmetric window of "
        "``window_length + 1`` points without its last one)."
    )
    return window


bartlett_window = _window("bartlett_window", lambda k, n: 1 - np.abs(2 * k / (n - 1) - 1))
hann_window = _window("hann_window", lambda k, n: 0.5 - 0.5 * np.cos(2 * np.pi * k / (n - 1)))
blackman_window = _window(
    "blackman_window",
    lambda k, n: (
        0.42 - 0.5 * np.cos(2 * np.pi * k / (n - 1)) + 0.08 * np.cos(4 * np.pi * k / (n - 1))
    ),
)


def _hamming(k, n, alpha=0.54, beta=0.46):
    return alpha - beta * np.cos(2 * np.pi * k / (n - 1))


hamming_window = _window("hamming_window", _hamming)


def _kaiser(k, n, beta=12.0):
    return np.i0(beta * np.sqrt(1 - (2 * k / (n - 1) - 1) ** 2)) / np.i0(beta)


kaiser_window = _window("kaiser_window", _kaiser)


def asarray(
    obj: Any,
    *,
    dtype: Any = None,
    device: Any = None,
    copy: bool | None = None,
    requires_grad: bool = False,
) -> array:
    """``obj`` as a tensor: the same array when no conversion is needed and ``copy`` is not
    True; NumPy arrays and buffers are copied (chainrule's arrays are immutable values)."""
    check_device(device, "asarray")
    if isinstance(obj, array):
        same = dtype is None or to_np_dtype(dtype) == obj._data.dtype
        if same and not copy:
            out = obj
        else:
            if copy is False:
                raise ValueError("asarray: copy=False is impossible when the dtype changes")
            out = from_value(obj._data.astype(to_np_dtype(dtype, obj._data.dtype), copy=True))
    elif isinstance(obj, (np.ndarray, np.generic)):
        out = from_value(np.array(obj, dtype=to_np_dtype(dtype, obj.dtype)))
    else:
        out = tensor(obj, dtype=dtype)
    if device is not None or not isinstance(obj, array):
        out = place(out, device, "asarray")
    if requires_grad:
        out.requires_grad = True
    return out


def frombuffer(
    buffer: Any, *, dtype: Any, count: int = -1, offset: int = 0, requires_grad: bool = False
) -> array:
    """A 1-D tensor of the buffer's bytes read as ``dtype`` (copied: arrays are values here)."""
    d = to_np_dtype(dtype)
    values = np.frombuffer(buffer, dtype=d, count=count, offset=offset)
    return _finish(from_value(values.copy()), requires_grad, None, "frombuffer")


def from_dlpack(ext_tensor: Any) -> array:
    """A tensor from any DLPack exporter (a PyTorch tensor, a NumPy array...)."""
    return mx.from_dlpack(ext_tensor)


def to_dlpack(tensor: array) -> Any:
    """A DLPack capsule of the tensor's values."""
    return tensor._data.__dlpack__()


def get_rng_state() -> array:
    """The global random state as a uint8 tensor (to give back to ``set_rng_state``)."""
    text = json.dumps(mx.random.get_state(), default=_jsonable)
    return from_value(np.frombuffer(text.encode(), dtype=np.uint8).copy())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"get_rng_state: cannot encode {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def set_rng_state(new_state: array) -> None:
    """Restore the global random state saved by ``get_rng_state``."""
    data = new_state._data if isinstance(new_state, array) else np.asarray(new_state)
    if data.dtype != np.uint8 or data.ndim != 1:
        raise TypeError(
            f"set_rng_state: expected a 1-D uint8 tensor, got {data.dtype} of shape {data.shape}"
        )
    try:
        state = _decode(json.loads(bytes(data).decode()))
    except (ValueError, UnicodeDecodeError):
        raise RuntimeError("set_rng_state: the tensor is not a state from get_rng_state") from None
    mx.random.set_state(state)


def seed() -> int:
    """Seed the global random state from fresh entropy and return the seed."""
    import secrets

    s = secrets.randbits(63)
    mx.random.seed(s)  # (the default generator with it)
    return s


def initial_seed() -> int:
    """The seed the default generator last started from (``manual_seed``, ``seed``,
    ``mx.random.seed``, or the fresh one it got at import)."""
    return default_generator.initial_seed()


def tril_indices(
    row: int,
    col: int,
    offset: int = 0,
    *,
    dtype: Any = None,
    device: Any = None,
    layout: Any = None,
) -> array:
    """The (2, n) int64 coordinates of the lower triangle of a ``row`` x ``col`` matrix."""
    r, c = np.tril_indices(row, offset, col)
    out = from_value(np.stack([r, c]).astype(to_np_dtype(dtype, _I64)))
    return _finish(out, False, device, "tril_indices")


def triu_indices(
    row: int,
    col: int,
    offset: int = 0,
    *,
    dtype: Any = None,
    device: Any = None,
    layout: Any = None,
) -> array:
    """The (2, n) int64 coordinates of the upper triangle of a ``row`` x ``col`` matrix."""
    r, c = np.triu_indices(row, offset, col)
    out = from_value(np.stack([r, c]).astype(to_np_dtype(dtype, _I64)))
    return _finish(out, False, device, "triu_indices")


def histogramdd(
    input: Any, bins: Any = 10, *, range: Any = None, weight: Any = None, density: bool = False
):
    """``(hist, bin_edges)`` of the rows of ``input`` (points in the last dimension)."""
    import collections

    x = _arr(input)
    pts = x._data.reshape(-1, x.shape[-1])
    b = bins.tolist() if isinstance(bins, array) else bins
    if isinstance(b, (list, tuple)) and b and isinstance(b[0], array):
        b = [e._data for e in b]
    rng = (
        None
        if range is None
        else [tuple(range[i : i + 2]) for i in builtins.range(0, len(range), 2)]
    )
    w = None if weight is None else _arr(weight)._data.reshape(-1)
    h, edges = np.histogramdd(pts, bins=b, range=rng, weights=w, density=density)
    dt = x._data.dtype
    result = collections.namedtuple("histogramdd", ["hist", "bin_edges"])
    return result(from_value(h.astype(dt)), [from_value(e.astype(dt)) for e in edges])
