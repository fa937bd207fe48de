"""More univariate distributions: Cauchy, HalfNormal, StudentT, Chi2, Gumbel, Geometric."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.extend import array

from . import constraints
from .continuous import Gamma, Normal
from .distribution import (
    Distribution,
    _draw,
    _finfo,
    _host,
    _rng,
    broadcast_all,
    digamma,
    lazy_property,
    lgamma,
    logits_to_probs,
    probs_to_logits,
    softplus,
)
from .gamma_grad import standard_gamma

__all__ = ["Cauchy", "HalfNormal", "StudentT", "Chi2", "Gumbel", "Geometric"]

_EULER = 0.57721566490153286060


def _full(like: array, value: float, shape: tuple) -> array:
    return mx.full_like(mx.broadcast_to(like, shape), value)


class Cauchy(Distribution):
    """The Cauchy (Lorentz) distribution."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(tuple(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return _full(self.loc, np.nan, self._extended_shape())

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def variance(self) -> array:
        return _full(self.loc, np.inf, self._extended_shape())

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        eps = _draw(_rng().standard_cauchy(shape), self.loc)
        return self.loc + eps * self.scale

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -math.log(math.pi) - mx.log(self.scale) - mx.log1p(z**2)

    def cdf(self, value: Any) -> array:
        return mx.arctan((value - self.loc) / self.scale) / math.pi + 0.5

    def icdf(self, value: Any) -> array:
        return mx.tan(math.pi * (value - 0.5)) * self.scale + self.loc

    def entropy(self) -> array:
        return math.log(4 * math.pi) + mx.log(self.scale)


class HalfNormal(Distribution):
    """``|X|`` for ``X ~ Normal(0, scale)``."""

    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale: Any, validate_args: bool | None = None) -> None:
        self.base_dist = Normal(0.0 * _as(scale), scale, validate_args=validate_args)
        self.scale = self.base_dist.scale
        super().__init__(self.base_dist.batch_shape, validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self) -> array:
        return mx.zeros_like(self.scale)

    @property
    def variance(self) -> array:
        return self.scale**2 * (1 - 2 / math.pi)

    def rsample(self, sample_shape: Any = ()) -> array:
        return mx.abs(self.base_dist.rsample(sample_shape))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        lp = self.base_dist.log_prob(value) + math.log(2)
        return mx.where(value >= 0, lp, mx.full_like(lp, -np.inf))

    def cdf(self, value: Any) -> array:
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob: Any) -> array:
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self) -> array:
        return self.base_dist.entropy() - math.log(2)


def _as(x: Any) -> array:
    (t,) = broadcast_all(x)
    return t


class Chi2(Gamma):
    """The chi-squared distribution: ``Gamma(df / 2, 1 / 2)``."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df: Any, validate_args: bool | None = None) -> None:
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, 0.5 * mx.ones_like(df), validate_args=validate_args)

    @property
    def df(self) -> array:
        """The degrees of freedom."""
        return self.concentration * 2


class StudentT(Distribution):
    """Student's t distribution with ``df`` degrees of freedom, location and scale."""

    arg_constraints = {
        "df": constraints.positive,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(
        self, df: Any, loc: Any = 0.0, scale: Any = 1.0, validate_args: bool | None = None
    ) -> None:
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        self._chi2 = Chi2(self.df, validate_args=validate_args)  # checks df first, as PyTorch
        super().__init__(tuple(self.df.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        m = self.loc + 0 * self.df
        return mx.where(self.df > 1, m, mx.full_like(m, np.nan))

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def variance(self) -> array:
        df = self.df
        v = self.scale**2 * df / mx.where(df > 2, df - 2, mx.ones_like(df))
        v = mx.where(df > 2, v, mx.full_like(v, np.inf))
        return mx.where(df > 1, v, mx.full_like(v, np.nan))

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        x = _draw(_rng().standard_normal(shape), self.df)
        z = 2 * standard_gamma(mx.broadcast_to(0.5 * self.df, shape))  # chi-squared(df)
        y = x * mx.rsqrt(z / self.df)
        return self.loc + self.scale * y

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        df = self.df
        y = (value - self.loc) / self.scale
        z = (
            mx.log(self.scale)
            + 0.5 * mx.log(df)
            + 0.5 * math.log(math.pi)
            + lgamma(0.5 * df)
            - lgamma(0.5 * (df + 1.0))
        )
        return -0.5 * (df + 1.0) * mx.log1p(y**2.0 / df) - z

    def entropy(self) -> array:
        df = self.df
        lbeta = lgamma(0.5 * df) + math.lgamma(0.5) - lgamma(0.5 * (df + 1))
        return (
            mx.log(self.scale)
            + 0.5 * (df + 1) * (digamma(0.5 * (df + 1)) - digamma(0.5 * df))
            + 0.5 * mx.log(df)
            + lbeta
        )


class Gumbel(Distribution):
    """The Gumbel (type-I extreme value) distribution."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(tuple(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.loc + self.scale * _EULER

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def stddev(self) -> array:
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self) -> array:
        return self.stddev**2

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        tiny = float(_finfo(self.loc).tiny)
        u = _draw(_rng().uniform(tiny, 1.0, shape), self.loc)
        return self.loc - self.scale * mx.log(-mx.log(u))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(mx.log(self.scale) + z + mx.exp(-z))

    def cdf(self, value: Any) -> array:
        return mx.exp(-mx.exp(-(value - self.loc) / self.scale))

    def entropy(self) -> array:
        return mx.log(self.scale) + (1 + _EULER)


class Geometric(Distribution):
    """The number of failures before the first success, success probability ``probs``."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(
        self, probs: Any = None, logits: Any = None, validate_args: bool | None = None
    ) -> None:
        if (probs is None) == (logits is None):
            raise ValueError(
                "Geometric: Either `probs` or `logits` must be specified, but not both."
            )
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            param = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            param = self.logits
        self._param = param
        super().__init__(tuple(param.shape), validate_args=validate_args)
        if self._validate_args and probs is not None and not bool(mx.all(self.probs > 0)):
            p = _host(self.probs)
            bad = _draw(np.atleast_1d(p)[~(np.atleast_1d(p) > 0)], self.probs)
            raise ValueError(
                f"Expected parameter probs ({type(self.probs).__name__} of shape "
                f"{tuple(self.probs.shape)}) of distribution {self!r} to be positive but found "
                f"invalid values:\n{bad}"
            )

    @lazy_property
    def logits(self) -> array:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> array:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def mean(self) -> array:
        return 1.0 / self.probs - 1.0

    @property
    def mode(self) -> array:
        return mx.zeros_like(self.probs)

    @property
    def variance(self) -> array:
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        p = np.broadcast_to(_host(self.probs, np.float64), shape)
        return _draw(_rng().geometric(p) - 1, self._param)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        safe = mx.where((probs == 1) & (value == 0), mx.zeros_like(probs), probs)
        return value * mx.log1p(-safe) + mx.log(self.probs)

    def entropy(self) -> array:
        logits, probs = self.logits, self.probs
        bce = softplus(logits) - logits * probs
        return bce / probs
