"""PyTorch's regularized incomplete gamma functions, ``igamma`` (P) and ``igammac`` (Q).

Values are computed in float64 by the power series (``x < a + 1``) or Lentz's continued
fraction, then rounded to the inputs' dtype. The derivative in ``x`` is the gamma density
``x^(a-1) e^(-x) / Gamma(a)``, written with chainrule ops so it differentiates again; the
derivative in ``a`` is not implemented, and asking for it raises PyTorch's
``NotImplementedError``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import ops
from .array import _from_value, array

_LGAMMA = np.vectorize(math.lgamma, otypes=[np.float64])


def _lower_regularized(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(a, x) for a > 0, x > 0 (float64)."""
    out = np.empty(np.broadcast(a, x).shape)
    a, x = np.broadcast_to(a, out.shape), np.broadcast_to(x, out.shape)
    series = x < a + 1
    if np.any(series):
        aa, xx = a[series], x[series]
        term = 1.0 / aa
        total = term.copy()
        ap = aa.copy()
        for _ in range(500):
            ap = ap + 1
            term = term * xx / ap
            total = total + term
            if np.all(np.abs(term) < np.abs(total) * 1e-17):
                break
        out[series] = total * np.exp(aa * np.log(xx) - xx - _LGAMMA(aa))
    frac = ~series
    if np.any(frac):
        aa, xx = a[frac], x[frac]
        tiny = 1e-300
        b = xx + 1 - aa
        c = np.full_like(b, 1 / tiny)
        d = 1 / b
        h = d.copy()
        for i in range(1, 500):
            an = -i * (i - aa)
            b = b + 2
            d = an * d + b
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = b + an / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1 / d
            delta = d * c
            h = h * delta
            if np.all(np.abs(delta - 1) < 1e-16):
                break
        out[frac] = 1 - np.exp(aa * np.log(xx) - xx - _LGAMMA(aa)) * h
    return out


def _values(a: np.ndarray, x: np.ndarray, upper: bool) -> np.ndarray:
    a64, x64 = np.broadcast_arrays(a.astype(np.float64), x.astype(np.float64))
    p = np.full(a64.shape, np.nan)
    ok = (a64 > 0) & (x64 > 0) & np.isfinite(x64)
    if np.any(ok):
        p[ok] = _lower_regularized(a64[ok], x64[ok])
    p = np.where((a64 >= 0) & (x64 == 0) & (a64 > 0), 0.0, p)
    p = np.where((a64 == 0) & (x64 > 0), 1.0, p)
    p = np.where((a64 > 0) & np.isposinf(x64), 1.0, p)
    return 1 - p if upper else p


def _rule(upper: bool):
    name = "igammac" if upper else "igamma"

    def rule(g, ans, a, x, *, argnum, k):
        if argnum == 0:
            raise NotImplementedError(f"the derivative for '{name}: input' is not implemented.")
        a = a if isinstance(a, array) else _from_value(a)
        x = x if isinstance(x, array) else _from_value(x)
        from .tensor_ops_math import lgamma

        density = mx.exp((a - 1) * mx.log(x) - x - lgamma(a))
        return g * (-density if upper else density)

    return rule


_PRIMS = {
    upper: ops.Primitive("igammac" if upper else "igamma", (_rule(upper),), True, holomorphic=False)
    for upper in (False, True)
}


def _igamma(input: Any, other: Any, upper: bool) -> array:
    a = input if isinstance(input, array) else mx.array(input)
    x = other if isinstance(other, array) else mx.array(other)
    dtype = np.result_type(a._data.dtype, x._data.dtype)
    if dtype.kind not in "f":
        dtype = np.dtype(np.float32)
    # The series and continued fraction run on the host (NumPy's lgamma, per-step stopping
    # tests): GPU inputs are copied there and the values back, explicitly.
    value = _backend.via_host(_values, a._data, x._data, upper).astype(dtype)
    return ops._rec(_PRIMS[upper], value, (a, x), {"k": 0})


def igamma(input: Any, other: Any) -> array:
    """The regularized lower incomplete gamma function ``P(input, other)``."""
    return _igamma(input, other, False)


def igammac(input: Any, other: Any) -> array:
    """The regularized upper incomplete gamma function ``Q(input, other) = 1 - P``."""
    return _igamma(input, other, True)
