"""Odds and ends of MLX's API: window functions, the Hadamard transform, ``depends`` and
``empty_like`` (fp8 conversion lives with the quantization in ``core/quantized.py``)."""

from __future__ import annotations

import math

from .. import dtypes as _dt
from ..array import _from_value, array
from ..backend import xp
from .table import (
    defprim,
    export,
)

# -- window functions (NumPy's definitions, float32 as in MLX) -------------------------------


def _window(fn, m: int) -> array:
    m = int(m)
    if m < 0:
        raise ValueError(f"window: the length must be non-negative, got {m}")
    return _from_value(xp.asarray(fn(m), dtype=xp.float32))


@export
def bartlett(M: int, stream=None) -> array:
    """The Bartlett (triangular) window of ``M`` points."""
    return _window(xp.bartlett, M)


@export
def blackman(M: int, stream=None) -> array:
    """The Blackman window of ``M`` points."""
    return _window(xp.blackman, M)


@export
def hamming(M: int, stream=None) -> array:
    """The Hamming window of ``M`` points."""
    return _window(xp.hamming, M)


@export
def hanning(M: int, stream=None) -> array:
    """The Hann window of ``M`` points."""
    return _window(xp.hanning, M)


# -- the Walsh-Hadamard transform -----------------------------------------------------------


def _fwht(d, scale: float):
    """Sylvester-ordered Walsh-Hadamard transform of the last axis (a power of two), scaled."""
    shape = d.shape
    n = shape[-1] if d.ndim else 1
    y = d.reshape(-1, n)
    h = 1
    while h < n:
        y = y.reshape(y.shape[0], n // (2 * h), 2, h)
        lo, hi = y[:, :, 0, :], y[:, :, 1, :]
        y = xp.stack([lo + hi, lo - hi], axis=2)
        h *= 2
    y = y.reshape(shape)
    return y * y.dtype.type(scale)


def _hadamard_vjp(g, ans, x, scale):
    return hadamard_transform(g, scale)  # the (scaled) Sylvester matrix is symmetric


def _hadamard_batch(args, params, ex_ndim):
    ((x, nd),) = args
    if nd == 0:
        return _as(x) * params["scale"]
    return hadamard_transform(x, params["scale"])


_HADAMARD = defprim("hadamard_transform", _hadamard_vjp, batch=_hadamard_batch)


@export
def hadamard_transform(a, scale: float | None = None, stream=None) -> array:
    """The Walsh-Hadamard transform along the last axis, times ``scale`` (default
    ``1 / sqrt(n)``). The last axis must have a power-of-two length."""
    a = _as(a)
    d = a._data
    if d.size == 0:
        raise ValueError("hadamard_transform: the input is empty")
    n = d.shape[-1] if d.ndim else 1
    if n & (n - 1):
        raise ValueError(
            f"hadamard_transform: the last axis has length {n}; only powers of two are supported"
        )
    if d.dtype.kind not in "fcV":  # V: bfloat16
        d = d.astype(xp.float32)
        a = _from_value(d)
    scale = 1.0 / math.sqrt(n) if scale is None else float(scale)
    return _rec(_HADAMARD, _fwht(d, scale), (a,), {"scale": scale})


# -- graph helpers ----------------------------------------------------------------------------


@export
def depends(inputs, dependencies):
    """``inputs`` unchanged (MLX's ``depends`` orders evaluation; chainrule is eager)."""
    return inputs


@export
def empty_like(a, dtype=None, stream=None) -> array:
    """An array shaped like ``a`` (its dtype unless ``dtype`` is given); the values are
    zeros here."""
    d = _as(a)._data
    return _from_value(xp.zeros(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .table import _as, _rec  # noqa: E402
