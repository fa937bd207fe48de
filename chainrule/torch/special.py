"""``torch.special``: PyTorch's special functions, from chainrule's differentiable ops.

The gamma-family functions (``gammaln``, ``digamma``/``psi``, ``polygamma``,
``multigammaln``) are the composites of :mod:`chainrule.core.tensor_ops_math`; the rest are
one-line formulas. Every function returns tensors.
"""

from __future__ import annotations

import math
from typing import Any

import chainrule.core as mx
from chainrule.core import tensor_functions as _tf
from chainrule.core import tensor_ops_math as _M

from ._creation import tensor
from ._tensor_class import install_doors as _install_doors

array = mx.array

__all__ = [
    "digamma",
    "entr",
    "erf",
    "erfc",
    "erfcx",
    "erfinv",
    "exp2",
    "expit",
    "expm1",
    "gammaln",
    "i0",
    "i0e",
    "log1p",
    "log_ndtr",
    "log_softmax",
    "logit",
    "logsumexp",
    "multigammaln",
    "ndtr",
    "ndtri",
    "polygamma",
    "psi",
    "round",
    "sinc",
    "softmax",
    "xlog1py",
    "xlogy",
]


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else tensor(x)


def _f(x: Any) -> array:
    x = _arr(x)
    return x if x._data.dtype.kind in "fcV" else mx.astype(x, mx.float32)


def digamma(input: Any) -> array:
    """``d/dx log Gamma(x)``."""
    return _M.digamma(_f(input))


psi = digamma


def polygamma(n: int, input: Any) -> array:
    """The ``n``-th derivative of ``digamma``."""
    return _M.polygamma(n, _f(input))


def gammaln(input: Any) -> array:
    """``log|Gamma(x)|``."""
    return _M.lgamma(_f(input))


def multigammaln(input: Any, p: int) -> array:
    """The multivariate log-gamma function of dimension ``p``."""
    return _M.mvlgamma(_f(input), p)


def entr(input: Any) -> array:
    """``-x log x`` (0 at 0, ``-inf`` below 0; the gradient there is 0 where PyTorch's is NaN)."""
    x = _f(input)
    safe = mx.where(x > 0, x, mx.ones_like(x))
    out = mx.where(x > 0, -x * mx.log(safe), mx.zeros_like(x))
    return mx.where(x < 0, mx.full(x.shape, -math.inf, x.dtype), out)


def erf(input: Any) -> array:
    """The error function."""
    return mx.erf(_f(input))


def erfc(input: Any) -> array:
    """``1 - erf(x)``."""
    return _M.erfc(_f(input))


def erfcx(input: Any) -> array:
    """The scaled complementary error function ``exp(x**2) * erfc(x)`` (computed in float64,
    where the product of a large and a small factor keeps its digits)."""
    x = _f(input)
    wide = mx.astype(x, mx.float64) if x._data.dtype.kind == "f" else x
    return mx.astype(mx.exp(wide * wide) * _M.erfc(wide), x.dtype)


def erfinv(input: Any) -> array:
    """The inverse error function."""
    return mx.erfinv(_f(input))


def exp2(input: Any) -> array:
    """``2 ** x``."""
    return _M.exp2(_arr(input))


def expm1(input: Any) -> array:
    """``exp(x) - 1``."""
    return mx.expm1(_f(input))


def log1p(input: Any) -> array:
    """``log(1 + x)``."""
    return mx.log1p(_f(input))


def expit(input: Any) -> array:
    """The logistic sigmoid."""
    return mx.sigmoid(_f(input))


def logit(input: Any, eps: float | None = None) -> array:
    """``log(p / (1 - p))`` (``p`` clamped to ``[eps, 1 - eps]`` when given)."""
    return _M.logit(_f(input), eps)


def i0(input: Any) -> array:
    """The modified Bessel function of the first kind, order 0."""
    return _M.i0(_f(input))


def i0e(input: Any) -> array:
    """``exp(-|x|) * i0(x)``."""
    x = _f(input)
    return mx.exp(-mx.abs(x)) * _M.i0(x)


def ndtr(input: Any) -> array:
    """The standard normal CDF."""
    x = _f(input)
    return 0.5 * _M.erfc(-x / math.sqrt(2))


def ndtri(input: Any) -> array:
    """The inverse of the standard normal CDF."""
    p = _f(input)
    return math.sqrt(2) * mx.erfinv(2 * p - 1)


def log_ndtr(input: Any) -> array:
    """``log(ndtr(x))``."""
    return mx.log(ndtr(input))


def sinc(input: Any) -> array:
    """``sin(pi x) / (pi x)``."""
    return _M.sinc(_arr(input))


def round(input: Any, *, decimals: int = 0) -> array:
    """Round half to even."""
    x = _arr(input)
    return x if x._data.dtype.kind in "biu" else mx.round(x, decimals)


def xlogy(input: Any, other: Any) -> array:
    """``x * log(y)`` (0 where ``x`` is 0)."""
    return _M.xlogy(input, other)


def xlog1py(input: Any, other: Any) -> array:
    """``x * log1p(y)`` (0 where ``x`` is 0)."""
    x, y = _f(input), _f(other)
    zero = (x == 0) & ~mx.isnan(y)
    safe = mx.where(zero, mx.zeros_like(y), y)
    return mx.where(zero, mx.zeros_like(x * y), x * mx.log1p(safe))


def softmax(input: Any, dim: int, *, dtype: Any = None) -> array:
    """Softmax along ``dim``."""
    return _tf.softmax(_arr(input), dim, dtype)


def log_softmax(input: Any, dim: int, *, dtype: Any = None) -> array:
    """Log-softmax along ``dim``."""
    return _tf.log_softmax(_arr(input), dim, dtype)


def logsumexp(input: Any, dim: Any, keepdim: bool = False) -> array:
    """``log(sum(exp(x)))`` over ``dim``."""
    return _M.logsumexp(_arr(input), dim, keepdim)


_install_doors(globals())
