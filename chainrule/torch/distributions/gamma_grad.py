"""Reparameterised gamma draws: ``standard_gamma(alpha)`` with the implicit gradient.

A draw ``x ~ Gamma(alpha, 1)`` is differentiated through ``F(x; alpha) = u`` held fixed (the
CDF at the draw): ``dx/dalpha = -(dF/dalpha) / f(x; alpha)``, as PyTorch's
``_standard_gamma_grad``. ``F`` is the regularised lower incomplete gamma function, computed in
float64 by its series (``x < alpha + 1``) or its continued fraction, and ``dF/dalpha`` by a
central difference; the result is accurate to about 1e-8 relative, well inside float32.
"""

from __future__ import annotations

import math

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.extend import array, from_value

from .distribution import _host, _rng

__all__ = ["standard_gamma", "standard_gamma_grad"]

_LGAMMA = np.frompyfunc(math.lgamma, 1, 1)


def _lgamma(a: np.ndarray) -> np.ndarray:
    return _LGAMMA(a).astype(np.float64)


def _gammainc(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The regularised lower incomplete gamma function ``P(a, x)`` (float64, elementwise)."""
    a, x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(x, np.float64))
    out = np.zeros(a.shape)
    pos = x > 0
    log_front = np.where(pos, -x + a * np.log(np.where(pos, x, 1.0)) - _lgamma(a), -np.inf)
    series = pos & (x < a + 1)
    if series.any():
        aa, xx = a[series], x[series]
        ap = aa.copy()
        term = 1.0 / aa
        total = term.copy()
        for _ in range(1000):
            ap += 1
            term *= xx / ap
            total += term
            if np.all(np.abs(term) < np.abs(total) * 1e-16):
                break
        out[series] = total * np.exp(log_front[series])
    frac = pos & ~series
    if frac.any():
        aa, xx = a[frac], x[frac]
        tiny = 1e-300
        b = xx + 1 - aa
        c = np.full(aa.shape, 1 / tiny)
        d = 1 / b
        h = d.copy()
        for i in range(1, 1000):
            an = -i * (i - aa)
            b = b + 2
            d = an * d + b
            d = np.where(np.abs(d) < tiny, tiny, d)
            c = b + an / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            d = 1 / d
            delta = d * c
            h *= delta
            if np.all(np.abs(delta - 1) < 1e-16):
                break
        out[frac] = 1 - np.exp(log_front[frac]) * h
    return out


def standard_gamma_grad(alpha: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dx/dalpha`` of a draw ``x ~ Gamma(alpha, 1)`` at fixed CDF (float64 NumPy)."""
    alpha = np.asarray(alpha, np.float64)
    x = np.asarray(x, np.float64)
    h = 1e-5 * np.maximum(alpha, 1.0)
    h = np.minimum(h, alpha / 2)
    dcdf = (_gammainc(alpha + h, x) - _gammainc(alpha - h, x)) / (2 * h)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        log_pdf = (alpha - 1) * np.log(x) - x - _lgamma(alpha)
        out = -dcdf / np.exp(log_pdf)
    return np.where(np.isfinite(out), out, 0.0)


@mx.custom_function
def _draw_gamma(alpha: array) -> array:
    a = _host(alpha, np.float64)
    x = _rng().standard_gamma(a)
    return from_value(backend.same_device(x.astype(np.dtype(alpha._data.dtype)), alpha._data))


@_draw_gamma.vjp
def _draw_gamma_vjp(alpha, cotangent, output):
    dxda = standard_gamma_grad(_host(alpha), _host(output))
    dxda = backend.same_device(dxda.astype(np.dtype(alpha._data.dtype)), alpha._data)
    return cotangent * from_value(dxda)


def standard_gamma(alpha: array) -> array:
    """Draws from ``Gamma(alpha, 1)``, differentiable in ``alpha`` (implicit reparam)."""
    return _draw_gamma(alpha)
