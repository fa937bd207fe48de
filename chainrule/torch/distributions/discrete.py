"""Discrete distributions: Bernoulli, Categorical, OneHotCategorical, Poisson, Binomial.

``probs`` or ``logits`` is given (exactly one); the other is computed on first use, as in
PyTorch (``probs_to_logits`` clamps probabilities away from 0 and 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.extend import array, from_value

from . import constraints
from .distribution import (
    Distribution,
    _const,
    _draw,
    _finfo,
    _host,
    _rng,
    _tensor,
    _torch_stream,
    broadcast_all,
    lazy_property,
    lgamma,
    logits_to_probs,
    probs_to_logits,
    softplus,
    xlogy,
)

__all__ = ["Bernoulli", "Categorical", "OneHotCategorical", "Poisson", "Binomial"]


def _one_of(probs: Any, logits: Any, who: str) -> None:
    if (probs is None) == (logits is None):
        raise ValueError(f"{who}: Either `probs` or `logits` must be specified, but not both.")


def _bce_with_logits(logits: array, target: array) -> array:
    return softplus(logits) - logits * target


class Bernoulli(Distribution):
    """A coin with probability ``probs`` (or ``sigmoid(logits)``) of 1."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(
        self, probs: Any = None, logits: Any = None, validate_args: bool | None = None
    ) -> None:
        _one_of(probs, logits, "Bernoulli")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            param = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            param = self.logits
        self._param = param
        super().__init__(tuple(param.shape), validate_args=validate_args)

    @lazy_property
    def logits(self) -> array:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> array:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def mean(self) -> array:
        return self.probs

    @property
    def mode(self) -> array:
        mode = (self.probs >= 0.5).astype(self.probs.dtype)
        return mx.where(self.probs == 0.5, mx.full_like(mode, np.nan), mode)

    @property
    def variance(self) -> array:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        p = np.broadcast_to(_host(self.probs), shape)
        return _draw(_torch_stream().bernoulli(np.ascontiguousarray(p), shape), self._param)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -_bce_with_logits(logits, value)

    def entropy(self) -> array:
        return _bce_with_logits(self.logits, self.probs)

    def enumerate_support(self, expand: bool = True) -> array:
        values = _draw(np.arange(2), self._param)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return mx.broadcast_to(values, (2,) + self._batch_shape) if expand else values


class Categorical(Distribution):
    """One of ``K`` categories with probabilities ``probs`` (normalised over the last
    dimension) or ``softmax(logits)``."""

    arg_constraints = {
        "probs": constraints.simplex,
        "logits": constraints.independent(constraints.real, 1),
    }
    has_enumerate_support = True

    def __init__(
        self, probs: Any = None, logits: Any = None, validate_args: bool | None = None
    ) -> None:
        _one_of(probs, logits, "Categorical")
        if probs is not None:
            probs = _tensor(probs)
            if probs.ndim < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / mx.sum(probs, axis=-1, keepdims=True)
            param = self.probs
        else:
            logits = _tensor(logits)
            if logits.ndim < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            param = self.logits
        self._param = param
        self._num_events = param.shape[-1]
        super().__init__(tuple(param.shape[:-1]), validate_args=validate_args)

    @lazy_property
    def logits(self) -> array:
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self) -> array:
        return logits_to_probs(self.logits)

    @property
    def param_shape(self) -> tuple:
        return tuple(self._param.shape)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> Any:
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def mean(self) -> array:
        return mx.full_like(self.probs[..., 0], np.nan)

    @property
    def mode(self) -> array:
        return mx.argmax(self.probs, axis=-1).astype(mx.int64)

    @property
    def variance(self) -> array:
        return mx.full_like(self.probs[..., 0], np.nan)

    def sample(self, sample_shape: Any = ()) -> array:
        # PyTorch's: one multinomial draw with replacement per distribution (its draws)
        shape = self._extended_shape(sample_shape)
        n = math.prod(shape[: len(shape) - len(self._batch_shape)])
        probs_2d = mx.reshape(self.probs, (-1, self._num_events))
        samples = np.asarray(probs_2d.multinomial(n, True)).T  # (host indices)
        idx = samples.reshape(shape)
        return _const(backend.same_device(idx.astype(np.int64), self._param._data))

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        value = _tensor(value)
        v = mx.expand_dims(value.astype(mx.int64), -1)
        shape = np.broadcast_shapes(tuple(v.shape[:-1]), tuple(self.logits.shape[:-1]))
        v = mx.broadcast_to(v, shape + (1,))
        lp = mx.broadcast_to(self.logits, shape + (self._num_events,))
        return mx.take_along_axis(lp, v, axis=-1)[..., 0]

    def entropy(self) -> array:
        lowest = np.asarray(_finfo(self.logits).min, dtype=np.dtype(self.logits._data.dtype))
        logits = mx.maximum(self.logits, from_value(lowest))  # a 0-d constant: any device
        return -mx.sum(logits * self.probs, axis=-1)

    def enumerate_support(self, expand: bool = True) -> array:
        values = np.arange(self._num_events, dtype=np.int64)
        values = _const(backend.same_device(values, self._param._data))
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return (
            mx.broadcast_to(values, (self._num_events,) + self._batch_shape) if expand else values
        )


class OneHotCategorical(Distribution):
    """A ``Categorical`` whose samples are one-hot vectors (event shape ``(K,)``)."""

    arg_constraints = {
        "probs": constraints.simplex,
        "logits": constraints.independent(constraints.real, 1),
    }
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(
        self, probs: Any = None, logits: Any = None, validate_args: bool | None = None
    ) -> None:
        self._categorical = Categorical(probs, logits, validate_args=False)
        batch_shape = self._categorical.batch_shape
        event_shape = (self._categorical.param_shape[-1],)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def probs(self) -> array:
        return self._categorical.probs

    @property
    def logits(self) -> array:
        return self._categorical.logits

    @property
    def param_shape(self) -> tuple:
        return self._categorical.param_shape

    @property
    def mean(self) -> array:
        return self._categorical.probs

    @property
    def mode(self) -> array:
        k = self._categorical._num_events
        idx = mx.argmax(self.probs, axis=-1)
        return (mx.expand_dims(idx, -1) == _draw(np.arange(k), idx)).astype(self.probs.dtype)

    @property
    def variance(self) -> array:
        p = self._categorical.probs
        return p * (1 - p)

    def sample(self, sample_shape: Any = ()) -> array:
        k = self._categorical._num_events
        idx = self._categorical.sample(sample_shape)
        return (mx.expand_dims(idx, -1) == _draw(np.arange(k), idx)).astype(self.probs.dtype)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(mx.argmax(value, axis=-1))

    def entropy(self) -> array:
        return self._categorical.entropy()

    def enumerate_support(self, expand: bool = True) -> array:
        k = self._categorical._num_events
        values = _draw(np.eye(k), self.probs).reshape((k,) + (1,) * len(self._batch_shape) + (k,))
        return mx.broadcast_to(values, (k,) + self._batch_shape + (k,)) if expand else values


class Poisson(Distribution):
    """The Poisson distribution with rate ``rate``."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate: Any, validate_args: bool | None = None) -> None:
        (self.rate,) = broadcast_all(rate)
        super().__init__(tuple(self.rate.shape), validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.rate

    @property
    def mode(self) -> array:
        return mx.floor(self.rate)

    @property
    def variance(self) -> array:
        return self.rate

    def sample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        lam = np.broadcast_to(_host(self.rate, np.float64), shape)
        return _draw(_rng().poisson(lam), self.rate)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return xlogy(value, rate) - rate - lgamma(value + 1)


def _clamp_by_zero(x: array) -> array:
    return (mx.maximum(x, 0) + x - mx.minimum(x, 0)) / 2


class Binomial(Distribution):
    """The number of successes in ``total_count`` Bernoulli trials."""

    arg_constraints = {
        "total_count": constraints.nonnegative_integer,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    has_enumerate_support = True

    def __init__(
        self,
        total_count: Any = 1,
        probs: Any = None,
        logits: Any = None,
        validate_args: bool | None = None,
    ) -> None:
        _one_of(probs, logits, "Binomial")
        if probs is not None:
            self.total_count, self.probs = broadcast_all(total_count, probs)
            self.total_count = self.total_count.astype(self.probs.dtype)
            param = self.probs
        else:
            self.total_count, self.logits = broadcast_all(total_count, logits)
            self.total_count = self.total_count.astype(self.logits.dtype)
            param = self.logits
        self._param = param
        super().__init__(tuple(param.shape), validate_args=validate_args)

    @lazy_property
    def logits(self) -> array:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> array:
        return logits_to_probs(self.logits, is_binary=True)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> Any:
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self) -> array:
        return self.total_count * self.probs

    @property
    def mode(self) -> array:
        return mx.minimum(mx.floor((self.total_count + 1) * self.probs), self.total_count)

    @property
    def variance(self) -> array:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        n = np.broadcast_to(_host(self.total_count, np.int64), shape)
        p = np.broadcast_to(_host(self.probs, np.float64), shape)
        return _draw(_rng().binomial(n, p), self._param)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        log_factorial_n = lgamma(n + 1)
        log_factorial_k = lgamma(value + 1)
        log_factorial_nmk = lgamma(n - value + 1)
        logits = self.logits
        normalize_term = (
            n * _clamp_by_zero(logits) + n * mx.log1p(mx.exp(-mx.abs(logits))) - log_factorial_n
        )
        return value * logits - log_factorial_k - log_factorial_nmk - normalize_term

    def entropy(self) -> array:
        total = int(mx.max(self.total_count).item())
        if not bool(mx.all(self.total_count == total)):
            raise NotImplementedError("Inhomogeneous total count not supported by `entropy`.")
        lp = self.log_prob(self.enumerate_support(expand=False))
        return -mx.sum(mx.exp(lp) * lp, axis=0)

    def enumerate_support(self, expand: bool = True) -> array:
        total = int(mx.max(self.total_count).item())
        if not bool(mx.all(self.total_count == total)):
            raise NotImplementedError(
                "Inhomogeneous total count not supported by `enumerate_support`."
            )
        values = _draw(np.arange(1 + total), self._param)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return mx.broadcast_to(values, (1 + total,) + self._batch_shape) if expand else values


class Multinomial(Distribution):
    """Counts of ``total_count`` draws from ``K`` categories (event shape ``(K,)``)."""

    arg_constraints = {
        "probs": constraints.simplex,
        "logits": constraints.independent(constraints.real, 1),
    }

    def __init__(
        self,
        total_count: int = 1,
        probs: Any = None,
        logits: Any = None,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits, validate_args=False)
        batch_shape = self._categorical.batch_shape
        event_shape = (self._categorical.param_shape[-1],)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def probs(self) -> array:
        return self._categorical.probs

    @property
    def logits(self) -> array:
        return self._categorical.logits

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> Any:
        return constraints.independent(constraints.integer_interval(0, self.total_count), 1)

    @property
    def mean(self) -> array:
        return self.probs * self.total_count

    @property
    def variance(self) -> array:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        p = _host(self.probs, np.float64)
        p = np.broadcast_to(p / p.sum(-1, keepdims=True), shape)
        draws = _rng().multinomial(self.total_count, p.reshape(-1, shape[-1]))
        return _draw(draws.reshape(shape), self.probs)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        logits = self.logits
        shape = np.broadcast_shapes(tuple(logits.shape), tuple(value.shape))
        logits = mx.broadcast_to(logits, shape)
        value = mx.broadcast_to(value, shape)
        log_factorial_n = lgamma(mx.sum(value, axis=-1) + 1)
        log_factorial_xs = mx.sum(lgamma(value + 1), axis=-1)
        safe = mx.where((value == 0) & mx.isinf(logits), mx.zeros_like(logits), logits)
        log_powers = mx.sum(safe * value, axis=-1)
        return log_factorial_n - log_factorial_xs + log_powers

    def entropy(self) -> array:
        n = self.total_count
        term1 = n * self._categorical.entropy() - math.lgamma(n + 1)
        binom = Binomial(n, self.probs, validate_args=False)
        support = _draw(np.arange(1, n + 1), self.probs).reshape((n,) + (1,) * self.probs.ndim)
        weights = mx.exp(binom.log_prob(support)) * lgamma(support + 1)
        return term1 + mx.sum(mx.sum(weights, axis=0), axis=-1)
