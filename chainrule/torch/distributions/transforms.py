"""``torch.distributions.transforms`` and ``TransformedDistribution``: bijections with their
log-determinants, and distributions of transformed draws (``log_prob`` by change of variables).
"""

from __future__ import annotations

import math
from typing import Any

import chainrule.core as mx
from chainrule.core.extend import array

from . import constraints
from .distribution import Distribution, _tensor, softplus

__all__ = [
    "Transform",
    "ExpTransform",
    "AffineTransform",
    "SigmoidTransform",
    "TanhTransform",
    "AbsTransform",
    "PowerTransform",
    "ComposeTransform",
    "TransformedDistribution",
]


class Transform:
    """An invertible map ``y = t(x)`` with ``log|dy/dx|`` (elementwise: event dim 0)."""

    bijective = True
    domain: Any = constraints.real
    codomain: Any = constraints.real
    sign: int = 1

    @property
    def event_dim(self) -> int:
        return self.domain.event_dim

    @property
    def inv(self) -> Transform:
        """The inverse transform."""
        return _Inverse(self)

    def __call__(self, x: array) -> array:
        return self._call(x)

    def _call(self, x: array) -> array:
        raise NotImplementedError

    def _inverse(self, y: array) -> array:
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: array, y: array) -> array:
        """``log|dy/dx|`` at ``x`` (``y = t(x)``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__ + "()"


class _Inverse(Transform):
    def __init__(self, t: Transform) -> None:
        self._t = t
        self.domain, self.codomain = t.codomain, t.domain
        self.bijective = t.bijective

    @property
    def inv(self) -> Transform:
        return self._t

    def _call(self, x):
        return self._t._inverse(x)

    def _inverse(self, y):
        return self._t._call(y)

    def log_abs_det_jacobian(self, x, y):
        return -self._t.log_abs_det_jacobian(y, x)


class ExpTransform(Transform):
    """``y = exp(x)``."""

    codomain = constraints.positive

    def _call(self, x):
        return mx.exp(x)

    def _inverse(self, y):
        return mx.log(y)

    def log_abs_det_jacobian(self, x, y):
        return x


class AffineTransform(Transform):
    """``y = loc + scale * x``."""

    def __init__(self, loc: Any, scale: Any, event_dim: int = 0, cache_size: int = 0) -> None:
        self.loc, self.scale = loc, scale
        self._event_dim = event_dim

    @property
    def event_dim(self) -> int:
        return self._event_dim

    def _call(self, x):
        return self.loc + self.scale * x

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        scale = self.scale if isinstance(self.scale, array) else _tensor(float(self.scale))
        result = mx.broadcast_to(mx.log(mx.abs(scale)), x.shape)
        for _ in range(self._event_dim):
            result = mx.sum(result, axis=-1)
        return result


class SigmoidTransform(Transform):
    """``y = sigmoid(x)``."""

    codomain = constraints.unit_interval

    def _call(self, x):
        return mx.sigmoid(x)

    def _inverse(self, y):
        return mx.log(y) - mx.log1p(-y)

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x) - softplus(x)


class TanhTransform(Transform):
    """``y = tanh(x)`` (the squashing of SAC-style policies)."""

    codomain = constraints.interval(-1.0, 1.0)

    def _call(self, x):
        return mx.tanh(x)

    def _inverse(self, y):
        return mx.arctanh(y)

    def log_abs_det_jacobian(self, x, y):
        return 2.0 * (math.log(2.0) - x - softplus(-2.0 * x))


class AbsTransform(Transform):
    """``y = |x|`` (not bijective)."""

    bijective = False
    codomain = constraints.positive

    def _call(self, x):
        return mx.abs(x)

    def _inverse(self, y):
        return y


class PowerTransform(Transform):
    """``y = x ** exponent`` on positive numbers."""

    domain = constraints.positive
    codomain = constraints.positive

    def __init__(self, exponent: Any, cache_size: int = 0) -> None:
        self.exponent = exponent

    def _call(self, x):
        return x**self.exponent

    def _inverse(self, y):
        return y ** (1 / self.exponent)

    def log_abs_det_jacobian(self, x, y):
        return mx.log(mx.abs(self.exponent * y / x))


class ComposeTransform(Transform):
    """``parts[-1](...parts[0](x))``."""

    def __init__(self, parts: list, cache_size: int = 0) -> None:
        self.parts = list(parts)

    @property
    def event_dim(self) -> int:
        return max((p.event_dim for p in self.parts), default=0)

    def _call(self, x):
        for p in self.parts:
            x = p(x)
        return x

    def _inverse(self, y):
        for p in reversed(self.parts):
            y = p.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        total = 0
        for p in self.parts:
            y1 = p(x)
            total = total + p.log_abs_det_jacobian(x, y1)
            x = y1
        return total


class TransformedDistribution(Distribution):
    """The distribution of ``transforms(x)`` for ``x ~ base_distribution`` (elementwise
    transforms; ``log_prob`` by the change of variables)."""

    arg_constraints: dict = {}

    def __init__(
        self,
        base_distribution: Distribution,
        transforms: Transform | list,
        validate_args: bool | None = None,
    ) -> None:
        self.base_dist = base_distribution
        self.transforms = [transforms] if isinstance(transforms, Transform) else list(transforms)
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise ValueError(f"transforms must be a Transform or a list of them, got {t!r}")
        super().__init__(
            base_distribution.batch_shape, base_distribution.event_shape, validate_args
        )

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.base_dist.has_rsample

    @property
    def support(self) -> Any:  # type: ignore[override]
        return self.transforms[-1].codomain if self.transforms else self.base_dist.support

    def sample(self, sample_shape: Any = ()) -> array:
        with mx.no_grad():
            x = self.base_dist.sample(sample_shape)
            for t in self.transforms:
                x = t(x)
            return x

    def rsample(self, sample_shape: Any = ()) -> array:
        x = self.base_dist.rsample(sample_shape)
        for t in self.transforms:
            x = t(x)
        return x

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self._event_shape)
        lp = 0
        y = value
        for t in reversed(self.transforms):
            x = t.inv(y)
            term = t.log_abs_det_jacobian(x, y)
            for _ in range(event_dim - t.event_dim):
                term = mx.sum(term, axis=-1)
            lp = lp - term
            y = x
        base = self.base_dist.log_prob(y)
        for _ in range(event_dim - len(self.base_dist.event_shape)):
            base = mx.sum(base, axis=-1)
        return lp + base

    def cdf(self, value: Any) -> array:
        for t in reversed(self.transforms):
            value = t.inv(value)
        return self.base_dist.cdf(value)
