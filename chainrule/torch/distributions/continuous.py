"""Continuous univariate distributions: Normal, LogNormal, Laplace, Uniform, Exponential, Gamma,
Beta, with PyTorch's parameters, formulas and constraints."""

from __future__ import annotations

import math
from typing import Any

import chainrule.core as mx
from chainrule.core.extend import array

from . import constraints
from .distribution import (
    Distribution,
    _draw,
    _dt_of,
    _finfo,
    _torch_stream,
    broadcast_all,
    digamma,
    lgamma,
    xlogy,
)
from .gamma_grad import standard_gamma

__all__ = ["Normal", "LogNormal", "Laplace", "Uniform", "Exponential", "Gamma", "Beta"]

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class Normal(Distribution):
    """The normal distribution ``N(loc, scale**2)``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(tuple(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.loc

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def stddev(self) -> array:
        return self.scale

    @property
    def variance(self) -> array:
        return self.scale**2

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        eps = _draw(_torch_stream().normal(shape, _dt_of(self.loc)), self.loc)
        return self.loc + eps * self.scale

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        var = self.scale**2
        return -((value - self.loc) ** 2) / (2 * var) - mx.log(self.scale) - _LOG_SQRT_2PI

    def cdf(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 * (1 + mx.erf((value - self.loc) / (self.scale * math.sqrt(2))))

    def icdf(self, value: Any) -> array:
        return self.loc + self.scale * mx.erfinv(2 * value - 1) * math.sqrt(2)

    def entropy(self) -> array:
        return 0.5 + 0.5 * math.log(2 * math.pi) + mx.log(self.scale)


class LogNormal(Distribution):
    """``exp(X)`` for ``X ~ Normal(loc, scale)``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: bool | None = None) -> None:
        self.base_dist = Normal(loc, scale, validate_args=validate_args)
        self.loc, self.scale = self.base_dist.loc, self.base_dist.scale
        super().__init__(self.base_dist.batch_shape, validate_args=validate_args)

    @property
    def mean(self) -> array:
        return mx.exp(self.loc + self.scale**2 / 2)

    @property
    def mode(self) -> array:
        return mx.exp(self.loc - self.scale**2)

    @property
    def variance(self) -> array:
        s2 = self.scale**2
        return mx.expm1(s2) * mx.exp(2 * self.loc + s2)

    def expand(self, batch_shape: Any, _instance: Any = None) -> LogNormal:
        shape = tuple(batch_shape)
        return LogNormal(
            mx.broadcast_to(self.loc, shape),
            mx.broadcast_to(self.scale, shape),
            validate_args=False,
        )

    def rsample(self, sample_shape: Any = ()) -> array:
        return mx.exp(self.base_dist.rsample(sample_shape))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        y = mx.log(value)
        return self.base_dist.log_prob(y) - y

    def cdf(self, value: Any) -> array:
        return self.base_dist.cdf(mx.log(value))

    def icdf(self, value: Any) -> array:
        return mx.exp(self.base_dist.icdf(value))

    def entropy(self) -> array:
        return self.base_dist.entropy() + self.loc


class Laplace(Distribution):
    """The Laplace distribution with location ``loc`` and scale ``scale``."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Any, scale: Any, validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(tuple(self.loc.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.loc

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def variance(self) -> array:
        return 2 * self.scale**2

    @property
    def stddev(self) -> array:
        return math.sqrt(2) * self.scale

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        eps = float(_finfo(self.loc).eps)
        u = _draw(_torch_stream().uniform(shape, _dt_of(self.loc), eps - 1, 1), self.loc)
        return self.loc - self.scale * mx.sign(u) * mx.log1p(-mx.abs(u))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        return -mx.log(2 * self.scale) - mx.abs(value - self.loc) / self.scale

    def cdf(self, value: Any) -> array:
        z = value - self.loc
        return 0.5 - 0.5 * mx.sign(z) * mx.expm1(-mx.abs(z) / self.scale)

    def icdf(self, value: Any) -> array:
        term = value - 0.5
        return self.loc - self.scale * mx.sign(term) * mx.log1p(-2 * mx.abs(term))

    def entropy(self) -> array:
        return 1 + mx.log(2 * self.scale)


class Uniform(Distribution):
    """The uniform distribution on ``[low, high)``."""

    has_rsample = True

    @property
    def arg_constraints(self) -> dict:  # type: ignore[override]
        return {
            "low": constraints.less_than(self.high),
            "high": constraints.greater_than(self.low),
        }

    def __init__(self, low: Any, high: Any, validate_args: bool | None = None) -> None:
        self.low, self.high = broadcast_all(low, high)
        super().__init__(tuple(self.low.shape), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> Any:
        return constraints.interval(self.low, self.high)

    @property
    def mean(self) -> array:
        return (self.high + self.low) / 2

    @property
    def stddev(self) -> array:
        return (self.high - self.low) / 12**0.5

    @property
    def variance(self) -> array:
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        u = _draw(_torch_stream().uniform(shape, _dt_of(self.low)), self.low)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        inside = (self.low <= value) & (self.high > value)
        return mx.log(inside.astype(self.low.dtype)) - mx.log(self.high - self.low)

    def cdf(self, value: Any) -> array:
        return mx.clip((value - self.low) / (self.high - self.low), 0, 1)

    def icdf(self, value: Any) -> array:
        return value * (self.high - self.low) + self.low

    def entropy(self) -> array:
        return mx.log(self.high - self.low)


class Exponential(Distribution):
    """The exponential distribution with rate ``rate``."""

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate: Any, validate_args: bool | None = None) -> None:
        (self.rate,) = broadcast_all(rate)
        super().__init__(tuple(self.rate.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return 1 / self.rate

    @property
    def mode(self) -> array:
        return mx.zeros_like(self.rate)

    @property
    def stddev(self) -> array:
        return 1 / self.rate

    @property
    def variance(self) -> array:
        return self.rate**-2

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        return _draw(_torch_stream().exponential(shape, _dt_of(self.rate)), self.rate) / self.rate

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        return mx.log(self.rate) - self.rate * value

    def cdf(self, value: Any) -> array:
        return 1 - mx.exp(-self.rate * value)

    def icdf(self, value: Any) -> array:
        return -mx.log1p(-value) / self.rate

    def entropy(self) -> array:
        return 1.0 - mx.log(self.rate)


class Gamma(Distribution):
    """The gamma distribution with shape ``concentration`` and ``rate``; ``rsample`` is
    differentiable in both (the concentration by implicit reparameterisation)."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration: Any, rate: Any, validate_args: bool | None = None) -> None:
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(tuple(self.concentration.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.concentration / self.rate

    @property
    def mode(self) -> array:
        return mx.maximum(self.concentration - 1, 0) / self.rate

    @property
    def variance(self) -> array:
        return self.concentration / self.rate**2

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        a = mx.broadcast_to(self.concentration, shape)
        x = standard_gamma(a) / mx.broadcast_to(self.rate, shape)
        tiny = float(_finfo(x).tiny)
        return mx.maximum(x, tiny)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        a, r = self.concentration, self.rate
        return xlogy(a, r) + xlogy(a - 1, value) - r * value - lgamma(a)

    def entropy(self) -> array:
        a = self.concentration
        return a - mx.log(self.rate) + lgamma(a) + (1.0 - a) * digamma(a)


class Beta(Distribution):
    """The beta distribution with concentrations ``concentration1`` (alpha) and
    ``concentration0`` (beta)."""

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }
    support = constraints.unit_interval
    has_rsample = True

    def __init__(
        self, concentration1: Any, concentration0: Any, validate_args: bool | None = None
    ) -> None:
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        super().__init__(tuple(self.concentration1.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self) -> array:
        a, b = self.concentration1, self.concentration0
        return (a - 1) / (a + b - 2)

    @property
    def variance(self) -> array:
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a * b / (total**2 * (total + 1))

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        ga = standard_gamma(mx.broadcast_to(self.concentration1, shape))
        gb = standard_gamma(mx.broadcast_to(self.concentration0, shape))
        tiny = float(_finfo(ga).tiny)
        x = ga / (ga + gb)
        return mx.clip(x, tiny, 1 - float(_finfo(ga).eps))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        return (
            xlogy(a - 1, value) + xlogy(b - 1, 1 - value) - (lgamma(a) + lgamma(b) - lgamma(a + b))
        )

    def entropy(self) -> array:
        a, b = self.concentration1, self.concentration0
        total = a + b
        lbeta = lgamma(a) + lgamma(b) - lgamma(total)
        return lbeta - (a - 1) * digamma(a) - (b - 1) * digamma(b) + (total - 2) * digamma(total)
