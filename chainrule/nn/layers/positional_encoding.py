"""Positional encodings: rotary (RoPE), sinusoidal and ALiBi."""

from __future__ import annotations

import math

import numpy as np

from chainrule.core.array import array
from chainrule.core.backend import on_default
from chainrule.core.extend import from_value

from ... import core as mx
from ...core import dtypes as _dt
from ..module import Module

__all__ = ["ALiBi", "RoPE", "SinusoidalPositionalEncoding", "rope"]


def rope(
    x: array, dims: int, traditional: bool, base: float, scale: float, offset: int | array
) -> array:
    """Rotary positional encoding of the first ``dims`` features of ``(..., L, D)`` inputs.

    Position ``p = (offset + i) * scale`` rotates feature pair ``j`` by ``p * base**(-2j/dims)``.
    Pairs are ``(j, j + dims/2)`` by default, ``(2j, 2j + 1)`` when ``traditional``. This is
    :func:`chainrule.core.fast.rope`, which also accepts 2-d ``(L, D)`` inputs here.

    Args:
        x: ``(..., L, D)`` with ``D >= dims``.
        dims: the number of rotated features (even).
        traditional: pair neighbouring features.
        base: the frequency base.
        scale: multiplies the positions.
        offset: the position of the first row (or one per example, an array).

    Returns:
        An array like ``x``.
    """
    if dims % 2 or dims > x.shape[-1]:
        raise ValueError(
            f"RoPE: dims ({dims}) must be even and at most the feature size of {x.shape}"
        )
    lift = 3 - x.ndim if x.ndim < 3 else 0
    y = mx.reshape(x, (1,) * lift + x.shape) if lift else x
    y = mx.fast.rope(y, dims, traditional=traditional, base=base, scale=scale, offset=offset)
    return mx.reshape(y, x.shape) if lift else y


class RoPE(Module):
    """Rotary positional encoding (RoFormer), applied to ``(..., L, D)`` inputs.

    Args:
        dims: the number of features rotated (the rest pass unchanged).
        traditional: rotate neighbouring pairs instead of the two halves.
        base: the frequency base.
        scale: multiplies the positions.
    """

    def __init__(
        self, dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.dims = dims
        self.traditional = traditional
        self.base = base
        self.scale = scale

    def _extra_repr(self) -> str:
        return f"{self.dims}, traditional={self.traditional}"

    def __call__(self, x: array, offset: int | array = 0) -> array:
        return rope(x, self.dims, self.traditional, self.base, self.scale, offset)


class SinusoidalPositionalEncoding(Module):
    """Sinusoidal embeddings of (possibly fractional) positions: ``[sin(x*f); cos(x*f)]``.

    Frequencies go geometrically from ``max_freq`` to ``min_freq``.

    Args:
        dims: the embedding size (even).
        min_freq: the smallest frequency.
        max_freq: the largest frequency.
        scale: multiplies the embeddings (default ``sqrt(2 / dims)``).
        cos_first: put the cosines first.
        full_turns: multiply the frequencies by ``2 * pi``.
    """

    def __init__(
        self,
        dims: int,
        min_freq: float = 0.0001,
        max_freq: float = 1,
        scale: float | None = None,
        cos_first: bool = False,
        full_turns: bool = False,
    ) -> None:
        super().__init__()
        if dims <= 0 or dims % 2:
            raise ValueError(
                f"[SinusoidalPositionalEncoding] dims must be positive and even but got {dims}."
            )
        half = dims // 2
        one_zero = 1 - np.arange(half) / max(half - 1, 1)
        lo, hi = math.log(min_freq), math.log(max_freq)
        sigmas = np.exp(one_zero * (hi - lo) + lo)
        if full_turns:
            sigmas = sigmas * (2 * math.pi)
        # A leading underscore keeps the frequencies out of parameters().
        self._sigmas = from_value(on_default(sigmas.astype(np.float32)))
        self.scale = scale if scale is not None else (2 / dims) ** 0.5
        self.cos_first = cos_first

    def __call__(self, x: array) -> array:
        y = mx.expand_dims(x, -1) * self._sigmas
        c, s = mx.cos(y), mx.sin(y)
        y = mx.concatenate([c, s] if self.cos_first else [s, c], axis=-1)
        if self.scale != 1:
            y = y * self.scale
        return y


class ALiBi(Module):
    """Attention with linear biases: adds ``-slope_h * |i - j|`` to attention scores.

    Called on scores of shape ``(B, heads, L, S)``.
    """

    @staticmethod
    def _slopes(num_heads: int) -> np.ndarray:
        return (2.0**8) ** (-np.arange(1, num_heads + 1, dtype=np.float64) / num_heads)

    @staticmethod
    def create_alibi_slope(num_heads: int) -> array:
        """Per-head slopes ``2 ** (-8 * (h + 1) / num_heads)``, shape ``(num_heads, 1, 1)``."""
        slopes = ALiBi._slopes(num_heads).astype(np.float32).reshape(num_heads, 1, 1)
        return from_value(on_default(slopes))

    @staticmethod
    def create_alibi_matrix(
        q_sequence_length: int,
        k_sequence_length: int,
        num_heads: int,
        offset: int,
        dtype: _dt.Dtype = mx.float32,
    ) -> array:
        """The bias for queries at positions ``offset..q_sequence_length-1``, shape
        ``(1, num_heads, q_sequence_length - offset, k_sequence_length)``."""
        q = np.arange(offset, q_sequence_length)
        k = np.arange(k_sequence_length)
        distance = -np.abs(q[:, None] - k[None, :]).astype(np.float64)
        slopes = ALiBi._slopes(num_heads).reshape(1, num_heads, 1, 1)
        bias = distance[None, None] * slopes
        return from_value(on_default(bias.astype(_dt.to_np(dtype))))

    def __call__(self, attention_scores: array, offset: int = 0, mask: array | None = None):
        bias = ALiBi.create_alibi_matrix(
            attention_scores.shape[-2] + offset,
            attention_scores.shape[-1],
            attention_scores.shape[1],
            offset,
            attention_scores.dtype,
        )
        if mask is not None:
            bias = bias + mask
        return attention_scores + bias
