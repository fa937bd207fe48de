"""Odds and ends of MLX's API: window functions, the Hadamard transform, fp8 conversion,
``depends`` and ``empty_like``."""

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
    if d.dtype.kind not in "fc":
        d = d.astype(xp.float32)
        a = _from_value(d)
    scale = 1.0 / math.sqrt(n) if scale is None else float(scale)
    return _rec(_HADAMARD, _fwht(d, scale), (a,), {"scale": scale})


# -- fp8 (e4m3: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities) ----------------

_FP8_MAX = 448.0


@export
def to_fp8(a, stream=None) -> array:
    """Round to the nearest fp8 e4m3 value (saturating at +-448), as its uint8 bit pattern."""
    d = _as(a)._data.astype(xp.float32)
    sign = (xp.signbit(d)).astype(xp.uint8) << 7
    nan = xp.isnan(d)
    m = xp.minimum(xp.where(nan, 0.0, xp.abs(d)), _FP8_MAX)
    with xp.errstate(divide="ignore", invalid="ignore"):
        e = xp.floor(xp.log2(xp.where(m > 0, m, 1.0)))
    e = xp.clip(e, -6, 8)  # below 2**-6 the values are subnormal (step 2**-9)
    q = xp.round(m / xp.exp2(e - 3))  # mantissa with its leading one, in eighths
    up = q >= 16  # rounding carried into the next binade
    e = xp.where(up, e + 1, e)
    q = xp.where(up, q / 2, q)
    normal = q >= 8
    exp_bits = xp.where(normal, e + 7, 0).astype(xp.uint8)
    man_bits = xp.where(normal, q - 8, q).astype(xp.uint8)
    bits = sign | (exp_bits << 3) | man_bits
    bits = xp.where(nan, xp.uint8(0x7F) | sign, bits).astype(xp.uint8)
    return _from_value(bits)


@export
def from_fp8(a, dtype=None, stream=None) -> array:
    """The values of fp8 e4m3 bit patterns (uint8) as ``dtype`` (bfloat16 by default)."""
    b = _as(a)._data.astype(xp.uint8)
    sign = xp.where(b & 0x80, -1.0, 1.0)
    exp_bits = ((b >> 3) & 0xF).astype(xp.int32)
    man = (b & 0x7).astype(xp.float64)
    mag = xp.where(
        exp_bits == 0, man * 2.0**-9, (1.0 + man / 8.0) * xp.exp2(exp_bits.astype(float) - 7)
    )
    mag = xp.where((b & 0x7F) == 0x7F, xp.nan, mag)
    target = _dt.to_np(_dt.bfloat16 if dtype is None else dtype)
    return _from_value((sign * mag).astype(target))


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
