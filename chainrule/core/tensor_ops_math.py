"""PyTorch's elementwise functions and reductions, written with chainrule's differentiable ops.

These are the PyTorch meanings behind ``torch.<name>`` and the array's PyTorch-style methods
(installed by :mod:`chainrule.core.tensor_methods`). Every function takes arrays (the
``chainrule.torch`` layer converts other data first) and is built from ``chainrule.core``
operations, so gradients, ``vmap`` and ``compile`` work through them. Values that PyTorch does
not differentiate (comparisons, ``signbit``, ``gcd``, ``nextafter``, ``heaviside``) are
computed on the values and returned as constants. Index results are int64, integer sums and
products are int64 (PyTorch's rules).
"""

from __future__ import annotations

import builtins
import collections
import math
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import tensor_functions as _tf
from .array import array

_I64 = np.dtype(np.int64)

AminmaxResult = collections.namedtuple("aminmax", ["min", "max"])
CummaxResult = collections.namedtuple("cummax", ["values", "indices"])
CumminResult = collections.namedtuple("cummin", ["values", "indices"])
MedianResult = collections.namedtuple("median", ["values", "indices"])
NanmedianResult = collections.namedtuple("nanmedian", ["values", "indices"])
ModeResult = collections.namedtuple("mode", ["values", "indices"])
KthvalueResult = collections.namedtuple("kthvalue", ["values", "indices"])
FrexpResult = collections.namedtuple("frexp", ["mantissa", "exponent"])


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else mx.array(x)


def _is_float(x: array) -> bool:
    return x._data.dtype.kind in "fcV"


def _floated(x: array) -> array:
    """Integer and bool inputs as float32 (PyTorch's result dtype for float-valued functions)."""
    return x if _is_float(x) else mx.astype(x, mx.float32)


_const = _tf.const


# -- elementwise, unary ------------------------------------------------------------------------


def erfc(input: array) -> array:
    """``1 - erf(x)``."""
    return 1 - mx.erf(_floated(input))


def exp2(input: array) -> array:
    """``2 ** x``."""
    return mx.exp(_floated(input) * math.log(2.0))


def sinc(input: array) -> array:
    """Normalised sinc, ``sin(pi x) / (pi x)``, 1 at 0."""
    x = _floated(input)
    zero = x == 0
    safe = mx.where(zero, mx.ones_like(x), x) * math.pi
    return mx.where(zero, mx.ones_like(x), mx.sin(safe) / safe)


def frac(input: array) -> array:
    """``x - trunc(x)``."""
    return input - mx.trunc(input)


def fix(input: array) -> array:
    """Round toward zero (``trunc``)."""
    return mx.trunc(input)


def sgn(input: array) -> array:
    """``sign`` for real input, ``x / |x|`` (0 at 0) for complex input."""
    if input._data.dtype.kind != "c":
        return mx.sign(input)
    mag = mx.abs(input)
    zero = mag == 0
    return mx.where(zero, mx.zeros_like(input), input / mx.where(zero, mx.ones_like(mag), mag))


def signbit(input: array) -> array:
    """Whether the sign bit is set (``-0.0`` included); a bool constant."""
    return _const(np.signbit(input._data))


def positive(input: array) -> array:
    """The input itself."""
    return input


def logit(input: array, eps: float | None = None) -> array:
    """``log(p / (1 - p))``, with ``p`` clamped to ``[eps, 1 - eps]`` when ``eps`` is given."""
    p = _floated(input)
    if eps is not None:
        p = mx.clip(p, eps, 1 - eps)
    return mx.log(p) - mx.log1p(-p)


def rad2deg(input: array) -> array:
    """Radians to degrees."""
    return _floated(input) * (180.0 / math.pi)


def deg2rad(input: array) -> array:
    """Degrees to radians."""
    return _floated(input) * (math.pi / 180.0)


def angle(input: array) -> array:
    """The argument of complex values; ``pi`` for negative reals, 0 otherwise (and NaN kept)."""
    if input._data.dtype.kind == "c":
        return mx.arctan2(mx.imag(input), mx.real(input))
    x = _floated(input)
    return mx.where(x < 0, mx.full(x.shape, math.pi, x.dtype, stream=_tf.stream_of(x)), x * 0)


_LANCZOS = (
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
)


def _lgamma_pos(z: array) -> array:
    # Lanczos (g = 7) for z >= 0.5, written with differentiable ops.
    z = z - 1
    s = mx.full(z.shape, _LANCZOS[0], z.dtype, stream=_tf.stream_of(z))
    for i, c in enumerate(_LANCZOS[1:], start=1):
        s = s + c / (z + i)
    t = z + 7.5
    return 0.5 * math.log(2 * math.pi) + (z + 0.5) * mx.log(t) - t + mx.log(s)


def lgamma(input: array) -> array:
    """``log|Gamma(x)|`` (Lanczos approximation, reflection below 1/2; differentiable)."""
    x = _floated(input)
    small = x < 0.5
    right = mx.where(small, 1 - x, x)
    val = _lgamma_pos(right)
    sin_pi = mx.abs(mx.sin(math.pi * mx.where(small, x, mx.zeros_like(x))))
    refl = math.log(math.pi) - mx.log(mx.where(small, sin_pi, mx.ones_like(x))) - val
    return mx.where(small, refl, val)


def digamma(input: array) -> array:
    """``d/dx log Gamma(x)``: recurrence to ``x >= 6``, then the asymptotic series."""
    x = _floated(input)
    neg = x < 0.5
    y = mx.where(neg, 1 - x, x)
    acc = mx.zeros_like(y)
    for _ in range(6):
        low = y < 6
        acc = acc - mx.where(low, 1 / y, mx.zeros_like(y))
        y = mx.where(low, y + 1, y)
    inv2 = 1 / (y * y)
    series = (
        mx.log(y)
        - 0.5 / y
        - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    )
    val = acc + series
    tan_pi = mx.tan(
        math.pi * mx.where(neg, x, mx.full(x.shape, 0.25, x.dtype, stream=_tf.stream_of(x)))
    )
    out = mx.where(neg, val - math.pi / tan_pi, val)
    # Poles at 0 and the negative integers: NaN as PyTorch (inf at exactly 0).
    pole = (x <= 0) & (x == mx.floor(x))
    return mx.where(pole, mx.where(x == 0, -math.inf, math.nan) * mx.ones_like(x), out)


_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)


def polygamma(n: int, input: array) -> array:
    """The ``n``-th derivative of ``digamma`` (``n = 0`` is ``digamma``).

    For ``n >= 1``: the recurrence ``psi_n(x) = psi_n(x + 1) - (-1)^n n! / x^(n+1)`` shifts
    ``x`` to at least 12, where the asymptotic (Bernoulli) series is accurate to double
    precision; every step is a differentiable op.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"polygamma: n must be non-negative, got {n}")
    x = _floated(input)
    if n == 0:
        return digamma(x)
    sign = -1.0 if n % 2 == 0 else 1.0  # (-1)^(n+1)
    fact = math.factorial(n)
    lowest = float(np.nanmin(x._data)) if x.size else 12.0
    steps = builtins.max(0, int(math.ceil(12 - lowest)))
    y = x
    acc = mx.zeros_like(x)
    for _ in range(steps):
        low = y < 12
        term = sign * fact / mx.power(mx.where(low, y, mx.ones_like(y)), n + 1)
        acc = acc + mx.where(low, term, mx.zeros_like(term))
        y = mx.where(low, y + 1, y)
    series = math.factorial(n - 1) / mx.power(y, n) + fact / (2 * mx.power(y, n + 1))
    for k, b in enumerate(_BERNOULLI, start=1):
        coef = b * math.factorial(2 * k + n - 1) / math.factorial(2 * k)
        series = series + coef / mx.power(y, 2 * k + n)
    return acc + sign * series


def mvlgamma(input: array, p: int) -> array:
    """Multivariate log-gamma of dimension ``p``."""
    x = _floated(input)
    if p < 1:
        raise ValueError(f"mvlgamma: p must be at least 1, got {p}")
    out: Any = p * (p - 1) / 4 * math.log(math.pi)
    for i in range(p):
        out = out + lgamma(x - i / 2)
    return out


def i0(input: array) -> array:
    """The modified Bessel function of the first kind of order 0 (power series)."""
    x = _floated(input)
    q = (x * x) / 4
    term = mx.ones_like(x)
    out = mx.ones_like(x)
    for k in range(1, 60):
        term = term * q / (k * k)
        out = out + term
    return out


def nan_to_num(
    input: array, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
) -> array:
    """Replace NaN and infinities (the dtype's extremes by default)."""
    return mx.nan_to_num(input, nan, posinf, neginf)


def frexp(input: array) -> FrexpResult:
    """``(mantissa, exponent)`` with ``x = mantissa * 2 ** exponent`` (exponent int32)."""
    m, e = np.frexp(input._data)
    return FrexpResult(_const(m), _const(e.astype(np.int32)))


# -- elementwise, binary -----------------------------------------------------------------------


def true_divide(input: Any, other: Any) -> array:
    """``input / other``."""
    return mx.divide(input, other)


def float_power(input: Any, other: Any) -> array:
    """``input ** other`` in float64 (complex128 for complex input)."""

    def up(v):
        v = _arr(v) if not isinstance(v, (int, float)) else v
        if isinstance(v, array):
            kind = v._data.dtype.kind
            return mx.astype(v, mx.complex128 if kind == "c" else mx.float64)
        return v

    a, b = up(input), up(other)
    if not isinstance(a, array):
        a = mx.array(a, dtype=mx.float64)
    return mx.power(a, b)


def fmod(input: array, other: Any) -> array:
    """C's remainder: the sign follows the dividend (``torch.fmod``)."""
    if input._data.dtype.kind in "iu" and (
        isinstance(other, int) or (isinstance(other, array) and other._data.dtype.kind in "iu")
    ):
        b = other._data if isinstance(other, array) else other
        return _const(np.fmod(input._data, b).astype(np.result_type(input._data, b)))
    return input - mx.trunc(mx.divide(input, other)) * other


def remainder(input: Any, other: Any) -> array:
    """Python's remainder: the sign follows the divisor."""
    return mx.remainder(input, other)


def floor_divide(input: Any, other: Any) -> array:
    """``floor(input / other)`` (integers stay integers)."""
    return mx.floor_divide(input, other)


def fmax(input: array, other: array) -> array:
    """Elementwise maximum that ignores NaN (a NaN loses unless both are NaN)."""
    a, b = _arr(input), _arr(other)
    m = mx.maximum(a, b)
    if not _is_float(m):
        return m
    return mx.where(mx.isnan(a), b + 0 * a, mx.where(mx.isnan(b), a + 0 * b, m))


def fmin(input: array, other: array) -> array:
    """Elementwise minimum that ignores NaN."""
    a, b = _arr(input), _arr(other)
    m = mx.minimum(a, b)
    if not _is_float(m):
        return m
    return mx.where(mx.isnan(a), b + 0 * a, mx.where(mx.isnan(b), a + 0 * b, m))


def hypot(input: array, other: array) -> array:
    """``sqrt(input ** 2 + other ** 2)``."""
    return mx.sqrt(input * input + other * other)


def copysign(input: Any, other: Any) -> array:
    """``|input|`` with the sign of ``other`` (float result)."""
    a = _floated(_arr(input))
    o = _arr(other)
    neg = _const(np.signbit(np.broadcast_to(o._data, np.broadcast_shapes(o.shape, a.shape))))
    return mx.where(neg, -mx.abs(a), mx.abs(a))


def heaviside(input: array, values: array) -> array:
    """0 below zero, 1 above, ``values`` at zero (a constant, as PyTorch does not differentiate)."""
    x, v = input._data, _arr(values)._data
    return _const(np.heaviside(x, v).astype(np.result_type(x, v)))


def logaddexp2(input: array, other: array) -> array:
    """``log2(2 ** input + 2 ** other)``."""
    ln2 = math.log(2.0)
    return mx.logaddexp(input * ln2, other * ln2) / ln2


def xlogy(input: Any, other: Any) -> array:
    """``input * log(other)``, 0 where ``input`` is 0 (NaN ``other`` stays NaN)."""
    x, y = _floated(_arr(input)), _floated(_arr(other))
    zero = (x == 0) & ~mx.isnan(y)
    safe_y = mx.where(zero, mx.ones_like(y), y)
    return mx.where(zero, mx.zeros_like(x * y), x * mx.log(safe_y))


def ldexp(input: array, other: array) -> array:
    """``input * 2 ** other``."""
    return _floated(input) * exp2(_arr(other))


def lerp(input: array, end: array, weight: Any) -> array:
    """``input + weight * (end - input)``."""
    return input + weight * (end - input)


def nextafter(input: array, other: array) -> array:
    """The next representable value after ``input`` toward ``other`` (a constant)."""
    return _const(np.nextafter(input._data, _arr(other)._data).astype(input._data.dtype))


def gcd(input: array, other: array) -> array:
    """Greatest common divisor of integers."""
    return _const(np.gcd(input._data, _arr(other)._data))


def lcm(input: array, other: array) -> array:
    """Least common multiple of integers."""
    return _const(np.lcm(input._data, _arr(other)._data))


def _int_binary(fn, name):
    def op(input: array, other: Any) -> array:
        a = _arr(input)._data
        b = other._data if isinstance(other, array) else other
        if a.dtype.kind not in "biu" or (isinstance(b, np.ndarray) and b.dtype.kind not in "biu"):
            raise TypeError(f"{name}: expected integer or bool tensors, got {a.dtype}")
        out = _backend.array_module(a).asarray(fn(a, b))  # on the inputs' device
        return _const(out.astype(np.result_type(a, b)))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{name}`` of integer (or bool) arrays."
    return op


bitwise_and = _int_binary(np.bitwise_and, "bitwise_and")
bitwise_or = _int_binary(np.bitwise_or, "bitwise_or")
bitwise_xor = _int_binary(np.bitwise_xor, "bitwise_xor")
bitwise_left_shift = _int_binary(np.left_shift, "bitwise_left_shift")
bitwise_right_shift = _int_binary(np.right_shift, "bitwise_right_shift")


def bitwise_not(input: array) -> array:
    """Bitwise NOT of integers (logical NOT of bools)."""
    if input._data.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: expected an integer or bool tensor, got {input.dtype}")
    return _const(np.invert(input._data))


def logical_xor(input: Any, other: Any) -> array:
    """Elementwise exclusive or of truth values (bool)."""
    return mx.logical_xor(input, other)


def addcmul(input: array, tensor1: array, tensor2: array, *, value: Any = 1) -> array:
    """``input + value * tensor1 * tensor2``."""
    return input + value * tensor1 * tensor2


def addcdiv(input: array, tensor1: array, tensor2: array, *, value: Any = 1) -> array:
    """``input + value * tensor1 / tensor2``."""
    if tensor1._data.dtype.kind in "biu" and tensor2._data.dtype.kind in "biu":
        raise RuntimeError(
            "addcdiv: integer division of tensors is no longer supported; give float tensors"
        )
    return input + value * tensor1 / tensor2


def clamp_min(input: array, min: Any) -> array:
    """``max(input, min)``."""
    return _tf.clamp(input, min, None)


def clamp_max(input: array, max: Any) -> array:
    """``min(input, max)``."""
    return _tf.clamp(input, None, max)


def rsub(input: array, other: Any, *, alpha: Any = 1) -> array:
    """``other - alpha * input``."""
    return mx.subtract(other, input if alpha == 1 else input * alpha)


def isclose(
    input: array, other: array, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> array:
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (bool)."""
    return mx.isclose(input, other, rtol, atol, equal_nan)


def isreal(input: array) -> array:
    """Whether each element has a zero imaginary part (all true for real dtypes)."""
    if input._data.dtype.kind == "c":
        return _const(np.imag(input._data) == 0)
    return _const(_backend.same_device(np.ones(input.shape, bool), input._data))


def isin(
    elements: Any, test_elements: Any, *, assume_unique: bool = False, invert: bool = False
) -> array:
    """Whether each element of ``elements`` occurs in ``test_elements`` (bool)."""
    e = elements._data if isinstance(elements, array) else np.asarray(elements)
    t = test_elements._data if isinstance(test_elements, array) else np.asarray(test_elements)
    e, t = _backend.same_device(e, t), _backend.same_device(t, e)  # host data to a GPU operand
    return _const(np.isin(e, t, invert=invert))


# -- reductions --------------------------------------------------------------------------------


def _int64_if_int(x: array, dtype: Any) -> array:
    if dtype is not None:
        return mx.astype(x, _tf._dt.from_np(_tf.to_np_dtype(dtype)))
    if x._data.dtype.kind in "biu":
        return mx.astype(x, mx.int64)
    return x


def amax(input: array, dim: Any = (), keepdim: bool = False) -> array:
    """Largest values over ``dim`` (all by default); ties share the gradient evenly."""
    d = _tf.dims(dim)
    return mx.max(input, None if d == () else d, keepdim)


def amin(input: array, dim: Any = (), keepdim: bool = False) -> array:
    """Smallest values over ``dim`` (all by default); ties share the gradient evenly."""
    d = _tf.dims(dim)
    return mx.min(input, None if d == () else d, keepdim)


def aminmax(input: array, *, dim: int | None = None, keepdim: bool = False) -> AminmaxResult:
    """``(amin, amax)`` over ``dim`` (all by default)."""
    return AminmaxResult(
        amin(input, () if dim is None else dim, keepdim),
        amax(input, () if dim is None else dim, keepdim),
    )


def prod(input: array, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None):
    """Product over ``dim`` (all by default); integers multiply to int64."""
    x = _int64_if_int(input, dtype)
    if dim is None:
        return mx.prod(x)
    return mx.prod(x, _tf.one_dim(x, dim, "prod") if x.ndim else None, keepdim)


def cumsum(input: array, dim: int, *, dtype: Any = None) -> array:
    """Running sum along ``dim``; integers sum to int64."""
    x = _int64_if_int(input, dtype)
    if x.ndim == 0:
        return x
    return mx.cumsum(x, _tf.one_dim(x, dim, "cumsum"))


def cumprod(input: array, dim: int, *, dtype: Any = None) -> array:
    """Running product along ``dim``; integers multiply to int64."""
    x = _int64_if_int(input, dtype)
    if x.ndim == 0:
        return x
    return mx.cumprod(x, _tf.one_dim(x, dim, "cumprod"))


def logcumsumexp(input: array, dim: int) -> array:
    """``log(cumsum(exp(x)))`` along ``dim``, computed stably."""
    if input.ndim == 0:
        return input
    return mx.logcumsumexp(input, _tf.one_dim(input, dim, "logcumsumexp"))


def _zero_index(input: array) -> array:
    """A 0-d int64 zero on ``input``'s device (the index of a 0-d input's only element)."""
    return _const(_backend.same_device(np.zeros((), _I64), input._data))


def _cum_extreme_index(data: np.ndarray, better) -> np.ndarray:
    """Where the running extreme of ``data`` along its last axis was found (NumPy data)."""
    n = data.shape[-1]
    idx = np.zeros(data.shape, _I64)
    best = data[..., :1].copy() if n else data
    for i in range(1, n):
        cur = data[..., i : i + 1]
        take = better(cur, best) | (cur == best) | np.isnan(cur)
        take &= ~np.isnan(best) | np.isnan(cur)
        best = np.where(take, cur, best)
        idx[..., i] = np.where(take[..., 0], i, idx[..., i - 1])
    return idx


def _cum_extreme(input: array, dim: int, better, result, who: str):
    if input.ndim == 0:
        return result(input, _zero_index(input))
    d = _tf.one_dim(input, dim, who)
    data = np.moveaxis(input._data, d, -1)
    # A scan of one step per element: on the host (one explicit copy each way for GPU data),
    # like the other cumulative extremes, rather than a kernel launch per step.
    idx = np.moveaxis(_backend.via_host(_cum_extreme_index, data, better), -1, d)
    return result(mx.take_along_axis(input, _const(idx), axis=d), _const(idx))


def cummax(input: array, dim: int) -> CummaxResult:
    """Running maximum along ``dim`` and where it was found (the last index among ties)."""
    return _cum_extreme(input, dim, np.greater, CummaxResult, "cummax")


def cummin(input: array, dim: int) -> CumminResult:
    """Running minimum along ``dim`` and where it was found (the last index among ties)."""
    return _cum_extreme(input, dim, np.less, CumminResult, "cummin")


def logsumexp(input: array, dim: Any, keepdim: bool = False) -> array:
    """``log(sum(exp(x)))`` over ``dim``, computed stably (integers as float32)."""
    return mx.logsumexp(_floated(input), _tf.dims(dim), keepdim)


def _selected(input: array, dim: int | None, keepdim: bool, pick, result, who: str):
    """Values at the index ``pick(data_along_last_axis)`` returns, and the index (int64)."""
    if dim is None:
        flat = mx.reshape(input, (-1,))
        i = int(pick(flat._data[None, :])[0])
        return flat[i]
    d = _tf.one_dim(input, dim, who)
    if input.ndim == 0:
        return result(input, _zero_index(input))
    data = np.moveaxis(input._data, d, -1)
    idx = np.moveaxis(pick(data)[..., None], -1, d)
    values = mx.take_along_axis(input, _const(idx), axis=d)
    if not keepdim:
        values = mx.squeeze(values, d)
        idx = np.squeeze(idx, d)
    return result(values, _const(idx.astype(_I64)))


def _lower_median_index(data: np.ndarray, skip_nan: bool) -> np.ndarray:
    xpd = _backend.array_module(data)  # the indices stay on the data's device
    order = np.argsort(data, axis=-1, kind="stable")
    if skip_nan:
        count = np.sum(~np.isnan(data), axis=-1) if data.dtype.kind in "fc" else data.shape[-1]
        k = np.maximum((xpd.asarray(count) - 1) // 2, 0)
    else:
        n = data.shape[-1]
        has_nan = np.isnan(data).any(axis=-1) if data.dtype.kind in "fc" else False
        # NaN sorts last; a row holding NaN has median NaN (its first NaN's index).
        first_nan = np.sum(~np.isnan(data), axis=-1) if data.dtype.kind in "fc" else n
        k = np.where(has_nan, first_nan, (n - 1) // 2)
    k = np.broadcast_to(xpd.asarray(k), data.shape[:-1])
    return np.take_along_axis(order, k[..., None], -1)[..., 0]


def median(input: array, dim: int | None = None, keepdim: bool = False):
    """The lower median (of all elements, or ``(values, indices)`` along ``dim``); NaN wins."""
    return _selected(
        input, dim, keepdim, lambda d: _lower_median_index(d, False), MedianResult, "median"
    )


def nanmedian(input: array, dim: int | None = None, keepdim: bool = False):
    """The lower median ignoring NaN (``(values, indices)`` along ``dim``)."""
    return _selected(
        input, dim, keepdim, lambda d: _lower_median_index(d, True), NanmedianResult, "nanmedian"
    )


def _mode_index(data: np.ndarray) -> np.ndarray:
    out = np.zeros(data.shape[:-1], _I64)
    for pos in np.ndindex(*data.shape[:-1]):
        row = data[pos]
        vals, counts = np.unique(row, return_counts=True)
        v = vals[np.argmax(counts)]  # the smallest of the most frequent values
        out[pos] = np.nonzero(row == v)[0][-1]
    return out


def mode(input: array, dim: int = -1, keepdim: bool = False) -> ModeResult:
    """The most frequent value along ``dim`` (the smallest among ties) and an index of it."""

    def pick(data):  # one np.unique per row: on the host (copied explicitly for GPU data)
        return _backend.via_host(_mode_index, data)

    return _selected(input, dim, keepdim, pick, ModeResult, "mode")


def kthvalue(input: array, k: int, dim: int = -1, keepdim: bool = False) -> KthvalueResult:
    """The ``k``-th smallest value along ``dim`` (1-based) and its index."""
    n = input.shape[_tf.one_dim(input, dim, "kthvalue")] if input.ndim else 1
    if not 1 <= k <= n:
        raise IndexError(f"kthvalue: k={k} is out of range for a dimension of size {n}")

    def pick(data):
        return np.argsort(data, axis=-1, kind="stable")[..., k - 1]

    return _selected(input, dim, keepdim, pick, KthvalueResult, "kthvalue")


def quantile(
    input: array,
    q: Any,
    dim: int | None = None,
    keepdim: bool = False,
    *,
    interpolation: str = "linear",
) -> array:
    """Quantiles ``q`` (a number or a 1-D array in [0, 1]) over ``dim`` (flattened by default).

    A 1-D ``q`` adds a leading dimension. ``interpolation`` is ``linear``, ``lower``,
    ``higher``, ``midpoint`` or ``nearest`` (PyTorch's choices).
    """
    return _quantile(input, q, dim, keepdim, interpolation, False)


def nanquantile(
    input: array,
    q: Any,
    dim: int | None = None,
    keepdim: bool = False,
    *,
    interpolation: str = "linear",
) -> array:
    """``quantile`` ignoring NaN."""
    return _quantile(input, q, dim, keepdim, interpolation, True)


def _quantile(input, q, dim, keepdim, interpolation, skip_nan):
    who = "nanquantile" if skip_nan else "quantile"
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(
            f"{who}: interpolation {interpolation!r} is not one of linear, lower, "
            "higher, midpoint, nearest"
        )
    if not _is_float(input):
        raise RuntimeError(
            f"{who}: input tensor must be either float or double dtype, got {input.dtype}"
        )
    qv = q._data if isinstance(q, array) else np.asarray(q, dtype=np.float64)
    if np.any((qv < 0) | (qv > 1)):
        raise RuntimeError(f"{who}: q values must be in the range [0, 1], got {qv}")
    x = input
    if dim is None:
        x = mx.reshape(x, (-1,))
        d = 0
    else:
        d = _tf.one_dim(x, dim, who)
    srt = mx.sort(x, axis=d) if x.ndim else x
    data = np.moveaxis(srt._data, d, -1) if x.ndim else srt._data[None]
    xpd = _backend.array_module(data)  # positions and weights on the data's device
    count = (
        np.sum(~np.isnan(data), axis=-1) if skip_nan else xpd.full(data.shape[:-1], data.shape[-1])
    )
    outs = []
    for qi in np.atleast_1d(qv).astype(np.float64):
        pos = qi * (np.maximum(count, 1) - 1)
        lo = np.floor(pos).astype(_I64)
        hi = np.ceil(pos).astype(_I64)
        frac_ = pos - lo
        if interpolation == "lower":
            hi = lo
        elif interpolation == "higher":
            lo = hi
        elif interpolation == "nearest":
            lo = hi = np.round(pos).astype(_I64)  # round half to even, as PyTorch
        w = 0.5 if interpolation == "midpoint" else frac_
        lo_i = np.moveaxis(lo[..., None], -1, d) if x.ndim else lo
        hi_i = np.moveaxis(hi[..., None], -1, d) if x.ndim else hi
        a = mx.take_along_axis(srt, _const(lo_i), axis=d) if x.ndim else srt
        b = mx.take_along_axis(srt, _const(hi_i), axis=d) if x.ndim else srt
        wt = _const(
            np.moveaxis(xpd.asarray(w, dtype=np.float64)[..., None], -1, d)
            if x.ndim and np.ndim(w)
            else xpd.asarray(w)
        ).astype(srt.dtype)
        val = a + (b - a) * wt if interpolation in ("linear", "midpoint") else a
        if not skip_nan and x.ndim:
            has_nan = np.isnan(data).any(axis=-1)
            if has_nan.any():
                val = mx.where(
                    _const(np.moveaxis(has_nan[..., None], -1, d)),
                    mx.full(val.shape, math.nan, val.dtype, stream=_tf.stream_of(val)),
                    val,
                )
        if skip_nan and x.ndim:
            empty = np.moveaxis((count == 0)[..., None], -1, d)
            if empty.any():
                val = mx.where(
                    _const(empty),
                    mx.full(val.shape, math.nan, val.dtype, stream=_tf.stream_of(val)),
                    val,
                )
        if dim is None:
            val = mx.reshape(val, (1,) * input.ndim if keepdim else ())
        elif not keepdim and x.ndim:
            val = mx.squeeze(val, d)
        outs.append(val)
    return mx.stack(outs) if np.ndim(qv) else outs[0]


def nansum(input: array, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> array:
    """Sum treating NaN as zero."""
    x = input
    if _is_float(x):
        x = mx.where(mx.isnan(x), mx.zeros_like(x), x)
    return _tf.sum(x, dim, keepdim, dtype=dtype)


def nanmean(input: array, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> array:
    """Mean of the non-NaN elements."""
    x = input if dtype is None else mx.astype(input, _tf._dt.from_np(_tf.to_np_dtype(dtype)))
    if not _is_float(x):
        raise RuntimeError(f"nanmean: expected a floating point input, got {x.dtype}")
    keep = ~mx.isnan(x)
    total = mx.sum(mx.where(keep, x, mx.zeros_like(x)), _tf.dims(dim), keepdim)
    return total / mx.sum(mx.astype(keep, x.dtype), _tf.dims(dim), keepdim)


def count_nonzero(input: array, dim: Any = None) -> array:
    """Number of non-zero elements over ``dim`` (int64)."""
    d = _tf.dims(dim)
    return _const(np.count_nonzero(input._data, axis=d).astype(_I64))


def std_mean(input: array, dim: Any = None, *, correction: Any = 1, keepdim: bool = False):
    """``(std, mean)`` over ``dim`` with ``correction`` (1 by default)."""
    d = _tf.dims(dim)
    return (mx.std(input, d, keepdim, correction), mx.mean(input, d, keepdim))


def var_mean(input: array, dim: Any = None, *, correction: Any = 1, keepdim: bool = False):
    """``(var, mean)`` over ``dim`` with ``correction`` (1 by default)."""
    d = _tf.dims(dim)
    return (mx.var(input, d, keepdim, correction), mx.mean(input, d, keepdim))


def all(input: array, dim: Any = None, keepdim: bool = False) -> array:
    """Whether every element (over ``dim``) is non-zero (bool)."""
    return mx.all(input, _tf.dims(dim), keepdim)


def any(input: array, dim: Any = None, keepdim: bool = False) -> array:
    """Whether some element (over ``dim``) is non-zero (bool)."""
    return mx.any(input, _tf.dims(dim), keepdim)


def norm(input: array, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None):
    """Vector p-norm over ``dim`` (all elements by default), or the Frobenius/nuclear norm."""
    x = input if dtype is None else mx.astype(input, _tf._dt.from_np(_tf.to_np_dtype(dtype)))
    d = _tf.dims(dim)
    if p == "nuc":
        return mx.linalg.norm(x, "nuc", d, keepdim)
    if p == "fro" or p is None:
        p = 2
    return vector_norm(x, p, d, keepdim)


def vector_norm(x: array, p: Any = 2, dim: Any = None, keepdim: bool = False) -> array:
    """``sum(|x| ** p) ** (1 / p)`` over ``dim`` (``inf``: max, ``-inf``: min, 0: count)."""
    a = mx.abs(_floated(x))
    if p == math.inf:
        return mx.max(a, dim, keepdim)
    if p == -math.inf:
        return mx.min(a, dim, keepdim)
    if p == 0:
        return mx.sum(mx.astype(a != 0, a.dtype), dim, keepdim)
    if p == 1:
        return mx.sum(a, dim, keepdim)
    if p == 2:
        return mx.sqrt(mx.sum(a * a, dim, keepdim))
    return mx.power(mx.sum(mx.power(a, p), dim, keepdim), 1.0 / p)


def dist(input: array, other: array, p: float = 2) -> array:
    """The p-norm of ``input - other``."""
    return vector_norm(input - other, p)


def renorm(input: array, p: float, dim: int, maxnorm: float) -> array:
    """Rescale each slice along ``dim`` whose p-norm exceeds ``maxnorm`` to norm ``maxnorm``."""
    d = _tf.one_dim(input, dim, "renorm")
    others = tuple(i for i in range(input.ndim) if i != d)
    n = vector_norm(input, p, others, True)
    scale = mx.where(n > maxnorm, maxnorm / (n + 1e-7), mx.ones_like(n))
    return input * scale


def trace(input: array) -> array:
    """Sum of the main diagonal of a matrix (integers to int64)."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, got shape {input.shape}")
    return _int64_if_int(mx.sum(mx.diagonal(input)), None)


def diff(input: array, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> array:
    """The ``n``-th forward difference along ``dim`` (bools: ``!=``)."""
    d = _tf.one_dim(input, dim, "diff")
    parts = [p for p in (prepend, input, append) if p is not None]
    x = mx.concatenate(parts, axis=d) if len(parts) > 1 else input
    for _ in range(n):
        m = x.shape[d]
        a = _take_range(x, d, 1, m)
        b = _take_range(x, d, 0, m - 1)
        x = mx.not_equal(a, b) if x._data.dtype == np.bool_ else a - b
    return x


def _take_range(x: array, d: int, start: int, stop: int) -> array:
    idx = [builtins.slice(None)] * x.ndim
    idx[d] = builtins.slice(start, stop)
    return x[tuple(idx)]


def histc(input: array, bins: int = 100, min: float = 0, max: float = 0) -> array:
    """Histogram of ``bins`` equal bins over ``[min, max]`` (the data's range when both are 0)."""
    data = input._data.astype(np.float64)
    lo, hi = float(min), float(max)
    if lo == hi == 0:
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise RuntimeError(f"histc: max must be larger than min, got min={min}, max={max}")
    inside = data[(data >= lo) & (data <= hi)]
    counts, _ = np.histogram(inside, bins=int(bins), range=(lo, hi))
    return _const(counts.astype(input._data.dtype))


def bincount(input: array, weights: array | None = None, minlength: int = 0) -> array:
    """Count of each non-negative integer (weighted sums with ``weights``)."""
    data = input._data
    if data.ndim != 1 or data.dtype.kind not in "iu":
        raise RuntimeError(
            f"bincount: expected a 1-D integer tensor, got {input.dtype} of shape {input.shape}"
        )
    if data.size and data.min() < 0:
        raise RuntimeError("bincount: input must hold non-negative integers")
    if weights is None:
        return _const(np.bincount(data, minlength=int(minlength)).astype(_I64))
    n = builtins.max(int(minlength), int(data.max()) + 1 if data.size else 0)
    w = weights if _is_float(weights) else mx.astype(weights, mx.float64)
    out = mx.zeros((n,), dtype=w.dtype, stream=_tf.stream_of(w))
    return out.at[_const(data)].add(w)


def hash_tensor(input: array, dim: Any = None, *, keepdim: bool = False, mode: int = 0) -> array:
    """XOR of the elements' 64-bit patterns (floats as float64, integers as int64), uint64."""
    if mode != 0:
        raise RuntimeError(f"hash_tensor: only mode=0 (xor reduction) is supported, got {mode}")
    data = input._data
    wide = data.astype(np.float64) if _is_float(input) else data.astype(np.int64)
    bits = _backend.array_module(wide).ascontiguousarray(wide).view(np.uint64)
    axis = None if dim is None else _tf.dims(dim)
    if not bits.ndim:
        return _const(bits)
    # ufunc.reduce of bitwise_xor has no GPU counterpart: on the host, copied explicitly.
    return _const(_backend.via_host(_xor_reduce, bits, axis, keepdim))


def _xor_reduce(bits: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """XOR of the uint64 ``bits`` over ``axis`` (NumPy data), as a uint64 array."""
    out = np.bitwise_xor.reduce(bits, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]
    return np.asarray(out, np.uint64)


def histogram(
    input: array, bins: Any = 100, *, range: Any = None, weight: Any = None, density: bool = False
):
    """``(hist, bin_edges)`` as ``numpy.histogram`` computes them (float results)."""
    b = bins._data if isinstance(bins, array) else bins
    w = weight._data if isinstance(weight, array) else None
    h, e = np.histogram(input._data, bins=b, range=range, weights=w, density=density)
    dt = input._data.dtype
    return collections.namedtuple("histogram", ["hist", "bin_edges"])(  # type: ignore[call-arg]
        _const(h.astype(dt)), _const(e.astype(dt))
    )
