"""Distributions over vectors: Dirichlet, MultivariateNormal, and Independent (batch dimensions
reinterpreted as event dimensions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.extend import array

from . import constraints
from .distribution import (
    Distribution,
    _draw,
    _dt_of,
    _finfo,
    _tensor,
    _torch_stream,
    digamma,
    lgamma,
    xlogy,
)
from .gamma_grad import standard_gamma

__all__ = ["Dirichlet", "MultivariateNormal", "Independent"]


class Dirichlet(Distribution):
    """The Dirichlet distribution over the simplex, with ``concentration`` of shape
    ``batch_shape + (K,)``; ``rsample`` is differentiable (implicit reparameterisation)."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration: Any, validate_args: bool | None = None) -> None:
        concentration = _tensor(concentration)
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        shape = tuple(concentration.shape)
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    @property
    def mean(self) -> array:
        return self.concentration / mx.sum(self.concentration, axis=-1, keepdims=True)

    @property
    def mode(self) -> array:
        am1 = mx.maximum(self.concentration - 1, 0)
        return am1 / mx.sum(am1, axis=-1, keepdims=True)

    @property
    def variance(self) -> array:
        a0 = mx.sum(self.concentration, axis=-1, keepdims=True)
        return self.concentration * (a0 - self.concentration) / (a0**2 * (a0 + 1))

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        g = standard_gamma(mx.broadcast_to(self.concentration, shape))
        tiny = float(_finfo(g).tiny)
        g = mx.maximum(g, tiny)
        return g / mx.sum(g, axis=-1, keepdims=True)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        a = self.concentration
        return (
            mx.sum(xlogy(a - 1.0, value), axis=-1)
            + lgamma(mx.sum(a, axis=-1))
            - mx.sum(lgamma(a), axis=-1)
        )

    def entropy(self) -> array:
        a = self.concentration
        k = a.shape[-1]
        a0 = mx.sum(a, axis=-1)
        return (
            mx.sum(lgamma(a), axis=-1)
            - lgamma(a0)
            - (k - a0) * digamma(a0)
            - mx.sum((a - 1.0) * digamma(a), axis=-1)
        )


def _batch_mv(mat: array, vec: array) -> array:
    return mx.matmul(mat, mx.expand_dims(vec, -1))[..., 0]


class MultivariateNormal(Distribution):
    """The multivariate normal with mean ``loc`` and one of ``covariance_matrix``,
    ``precision_matrix`` or ``scale_tril`` (lower Cholesky factor of the covariance)."""

    arg_constraints = {
        "loc": constraints.real_vector,
        "covariance_matrix": constraints.positive_definite,
        "precision_matrix": constraints.positive_definite,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        loc: Any,
        covariance_matrix: Any = None,
        precision_matrix: Any = None,
        scale_tril: Any = None,
        validate_args: bool | None = None,
    ) -> None:
        loc = _tensor(loc)
        if loc.ndim < 1:
            raise ValueError("loc must be at least one-dimensional.")
        given = [m is not None for m in (covariance_matrix, precision_matrix, scale_tril)]
        if sum(given) != 1:
            raise ValueError(
                "Exactly one of covariance_matrix or precision_matrix or scale_tril may be "
                "specified."
            )
        mat = next(m for m in (scale_tril, covariance_matrix, precision_matrix) if m is not None)
        mat = _tensor(mat)
        if mat.ndim < 2:
            raise ValueError(
                "scale_tril, covariance_matrix or precision_matrix must be at least "
                "two-dimensional, with optional leading batch dimensions"
            )
        batch_shape = tuple(np.broadcast_shapes(tuple(mat.shape[:-2]), tuple(loc.shape[:-1])))
        n = loc.shape[-1]
        if scale_tril is not None:
            self.scale_tril = mx.broadcast_to(mat, batch_shape + (n, n))
        elif covariance_matrix is not None:
            self.covariance_matrix = mx.broadcast_to(mat, batch_shape + (n, n))
        else:
            self.precision_matrix = mx.broadcast_to(mat, batch_shape + (n, n))
        self.loc = mx.broadcast_to(loc, batch_shape + (n,))
        super().__init__(batch_shape, (n,), validate_args=validate_args)
        if scale_tril is not None:
            self._unbroadcasted_scale_tril = mat
        else:
            # the symmetric part: its gradient is symmetric, as PyTorch's Cholesky gradient
            sym = (mat + mx.swapaxes(mat, -1, -2)) / 2
            if covariance_matrix is None:
                sym = mx.linalg.inv(sym)
            self._unbroadcasted_scale_tril = mx.linalg.cholesky(sym)

    def __getattr__(self, name: str) -> Any:
        tril = self.__dict__.get("_unbroadcasted_scale_tril")
        if tril is None or name not in ("scale_tril", "covariance_matrix", "precision_matrix"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        shape = self._batch_shape + self._event_shape * 2
        if name == "scale_tril":
            return mx.broadcast_to(tril, shape)
        cov = mx.matmul(tril, mx.swapaxes(tril, -1, -2))
        if name == "covariance_matrix":
            return mx.broadcast_to(cov, shape)
        return mx.broadcast_to(mx.linalg.inv(cov), shape)

    @property
    def mean(self) -> array:
        return self.loc

    @property
    def mode(self) -> array:
        return self.loc

    @property
    def variance(self) -> array:
        v = mx.sum(self._unbroadcasted_scale_tril**2, axis=-1)
        return mx.broadcast_to(v, self._batch_shape + self._event_shape)

    def rsample(self, sample_shape: Any = ()) -> array:
        shape = self._extended_shape(sample_shape)
        eps = _draw(_torch_stream().normal(shape, _dt_of(self.loc)), self.loc)
        return self.loc + _batch_mv(self._unbroadcasted_scale_tril, eps)

    def _mahalanobis(self, diff: array) -> array:
        tril = self._unbroadcasted_scale_tril
        shape = tuple(np.broadcast_shapes(tuple(diff.shape[:-1]), tuple(tril.shape[:-2])))
        n = self._event_shape[0]
        L = mx.broadcast_to(tril, shape + (n, n))
        d = mx.broadcast_to(diff, shape + (n,))
        sol = mx.linalg.solve_triangular(L, mx.expand_dims(d, -1), upper=False)[..., 0]
        return mx.sum(sol**2, axis=-1)

    def _half_log_det(self) -> array:
        diag = mx.diagonal(self._unbroadcasted_scale_tril, axis1=-2, axis2=-1)
        return mx.sum(mx.log(diag), axis=-1)

    def log_prob(self, value: Any) -> array:
        if self._validate_args:
            self._validate_sample(value)
        n = self._event_shape[0]
        m = self._mahalanobis(value - self.loc)
        return -0.5 * (n * math.log(2 * math.pi) + m) - self._half_log_det()

    def entropy(self) -> array:
        n = self._event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return mx.broadcast_to(h, self._batch_shape) if self._batch_shape else h


def _sum_rightmost(x: array, n: int) -> array:
    for _ in range(n):
        x = mx.sum(x, axis=-1)
    return x


class Independent(Distribution):
    """``base_distribution`` with its ``reinterpreted_batch_ndims`` rightmost batch dimensions
    treated as event dimensions (their log-probabilities are summed)."""

    arg_constraints: dict = {}

    def __init__(
        self,
        base_distribution: Distribution,
        reinterpreted_batch_ndims: int,
        validate_args: bool | None = None,
    ) -> None:
        n = int(reinterpreted_batch_ndims)
        if n > len(base_distribution.batch_shape):
            raise ValueError(
                "Expected reinterpreted_batch_ndims <= len(base_distribution.batch_shape), "
                f"actual {n} vs {len(base_distribution.batch_shape)}"
            )
        shape = base_distribution.batch_shape + base_distribution.event_shape
        event_dim = n + len(base_distribution.event_shape)
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = n
        cut = len(shape) - event_dim
        super().__init__(shape[:cut], shape[cut:], validate_args=validate_args)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.base_dist.has_rsample

    @property
    def has_enumerate_support(self) -> bool:  # type: ignore[override]
        if self.reinterpreted_batch_ndims > 0:
            return False
        return self.base_dist.has_enumerate_support

    @property
    def support(self) -> Any:  # type: ignore[override]
        s = self.base_dist.support
        return (
            constraints.independent(s, self.reinterpreted_batch_ndims)
            if (self.reinterpreted_batch_ndims)
            else s
        )

    @property
    def mean(self) -> array:
        return self.base_dist.mean

    @property
    def mode(self) -> array:
        return self.base_dist.mode

    @property
    def variance(self) -> array:
        return self.base_dist.variance

    def sample(self, sample_shape: Any = ()) -> array:
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape: Any = ()) -> array:
        return self.base_dist.rsample(sample_shape)

    def log_prob(self, value: Any) -> array:
        return _sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self) -> array:
        return _sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    def __repr__(self) -> str:
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"
