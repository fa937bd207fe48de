"""MLX's initialisers: each function returns an initialiser ``init(array) -> new array``.

The initialiser reads only the shape of the array it is given and returns a new array of
that shape, e.g. ``linear.weight = nn.init.he_uniform()(linear.weight)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from chainrule.core.array import array
from chainrule.core.extend import from_value

from .. import core as mx

__all__ = [
    "constant",
    "normal",
    "uniform",
    "identity",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "sparse",
    "orthogonal",
]

Initializer = Callable[..., array]


def constant(value: float, dtype: mx.Dtype = mx.float32) -> Initializer:
    """An initialiser filling the array's shape with ``value``.

    Args:
        value: the fill value.
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array`` of ``a.shape``.
    """

    def initializer(a: array) -> array:
        return mx.full(a.shape, value, dtype=dtype)

    return initializer


def normal(mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """An initialiser drawing from a normal distribution.

    Args:
        mean: the mean.
        std: the standard deviation.
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array`` of ``a.shape``.
    """

    def initializer(a: array) -> array:
        return mx.random.normal(shape=a.shape, scale=std, loc=mean, dtype=dtype)

    return initializer


def uniform(low: float = 0.0, high: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """An initialiser drawing uniformly from ``[low, high)``.

    Args:
        low: lower bound.
        high: upper bound.
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array`` of ``a.shape``.
    """

    def initializer(a: array) -> array:
        return mx.random.uniform(low, high, a.shape, dtype=dtype)

    return initializer


def identity(dtype: mx.Dtype = mx.float32) -> Initializer:
    """An initialiser returning the identity matrix (for square 2-d arrays).

    Args:
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array``; raises ``ValueError`` for a non-square input.
    """

    def initializer(a: array) -> array:
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"identity: the array must be a square matrix, got shape {a.shape}")
        return mx.eye(a.shape[0], dtype=dtype)

    return initializer


def _fans(a: array, who: str) -> tuple[int, int]:
    if a.ndim < 2:
        raise ValueError(f"{who}: needs an array of at least 2 dimensions, got shape {a.shape}")
    fan_in, fan_out = a.shape[-1], a.shape[0]
    receptive = 1
    for d in a.shape[1:-1]:
        receptive *= d
    return fan_in * receptive, fan_out * receptive


def glorot_normal(dtype: mx.Dtype = mx.float32) -> Initializer:
    """Glorot (Xavier) normal: ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Args:
        dtype: the result's dtype.

    Returns:
        ``init(a, gain=1.0) -> array``.
    """

    def initializer(a: array, gain: float = 1.0) -> array:
        fan_in, fan_out = _fans(a, "glorot_normal")
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return mx.random.normal(shape=a.shape, scale=std, dtype=dtype)

    return initializer


def glorot_uniform(dtype: mx.Dtype = mx.float32) -> Initializer:
    """Glorot (Xavier) uniform on ``[-l, l]``, ``l = gain * sqrt(6 / (fan_in + fan_out))``.

    Args:
        dtype: the result's dtype.

    Returns:
        ``init(a, gain=1.0) -> array``.
    """

    def initializer(a: array, gain: float = 1.0) -> array:
        fan_in, fan_out = _fans(a, "glorot_uniform")
        limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return initializer


def _fan(a: array, mode: str, who: str) -> int:
    fan_in, fan_out = _fans(a, who)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")


def he_normal(dtype: mx.Dtype = mx.float32) -> Initializer:
    """He (Kaiming) normal: ``std = gain / sqrt(fan)``.

    Args:
        dtype: the result's dtype.

    Returns:
        ``init(a, mode="fan_in", gain=1.0) -> array``.
    """

    def initializer(
        a: array, mode: Literal["fan_in", "fan_out"] = "fan_in", gain: float = 1.0
    ) -> array:
        std = gain / math.sqrt(_fan(a, mode, "he_normal"))
        return mx.random.normal(shape=a.shape, scale=std, dtype=dtype)

    return initializer


def he_uniform(dtype: mx.Dtype = mx.float32) -> Initializer:
    """He (Kaiming) uniform on ``[-l, l]``, ``l = gain * sqrt(3 / fan)``.

    Args:
        dtype: the result's dtype.

    Returns:
        ``init(a, mode="fan_in", gain=1.0) -> array``.
    """

    def initializer(
        a: array, mode: Literal["fan_in", "fan_out"] = "fan_in", gain: float = 1.0
    ) -> array:
        limit = gain * math.sqrt(3.0 / _fan(a, mode, "he_uniform"))
        return mx.random.uniform(-limit, limit, a.shape, dtype=dtype)

    return initializer


def sparse(
    sparsity: float, mean: float = 0.0, std: float = 1.0, dtype: mx.Dtype = mx.float32
) -> Initializer:
    """Normal draws with ``ceil(sparsity * columns)`` zeros in every row of a 2-d array.

    Args:
        sparsity: the fraction of each row set to zero.
        mean: mean of the non-zero draws.
        std: standard deviation of the non-zero draws.
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array``; raises ``ValueError`` unless ``a`` is 2-d.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparse: sparsity must be in [0, 1], got {sparsity}")

    def initializer(a: array) -> array:
        if a.ndim != 2:
            raise ValueError(f"sparse: only 2-d arrays are supported, got shape {a.shape}")
        rows, cols = a.shape
        num_zeros = int(math.ceil(sparsity * cols))
        order = mx.argsort(mx.random.uniform(shape=a.shape), axis=1)._data
        values = mx.random.normal(shape=a.shape, scale=std, loc=mean, dtype=dtype)._data.copy()
        values[np.arange(rows)[:, None], order[:, :num_zeros]] = 0  # on the draws' device
        return from_value(values)

    return initializer


def orthogonal(gain: float = 1.0, dtype: mx.Dtype = mx.float32) -> Initializer:
    """A (semi-)orthogonal matrix scaled by ``gain``, from the QR decomposition of a normal draw.

    Args:
        gain: the scale.
        dtype: the result's dtype.

    Returns:
        ``init(a) -> array``; raises ``ValueError`` unless ``a`` is 2-d.
    """

    def initializer(a: array) -> array:
        if a.ndim != 2:
            raise ValueError(
                f"orthogonal: needs a 2D array, got a {a.ndim}D array of shape {a.shape}"
            )
        rows, cols = a.shape
        n = max(rows, cols)
        q, r = mx.linalg.qr(mx.random.normal(shape=(n, n)))
        # The signs of R's diagonal make Q unique, hence uniformly distributed.
        q = q * mx.sign(mx.diag(r))
        return (q[:rows, :cols] * gain).astype(dtype)

    return initializer
