"""``Upsample``: nearest, linear and cubic interpolation of channels-last inputs."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from chainrule.core.array import array
from chainrule.core.backend import same_device
from chainrule.core.extend import from_value

from ... import core as mx
from ..module import Module

__all__ = [
    "Upsample",
    "upsample_nearest",
    "upsample_linear",
    "upsample_cubic",
    "upsample_antialiased",
]


def _check(x: array, scale_factor: tuple, who: str) -> int:
    dims = x.ndim - 2
    if dims <= 0:
        raise ValueError(
            f"{who}: expected (N, *spatial, C) with at least one spatial axis, got {x.shape}"
        )
    if len(scale_factor) != dims:
        raise ValueError(
            f"{who}: one scale per spatial axis is needed; scale_factor={scale_factor} for an "
            f"input of shape {x.shape}"
        )
    return dims


def _source_coords(n: int, scale: float, align_corners: bool) -> np.ndarray:
    """Input coordinates sampled by each output position (PyTorch's convention)."""
    m = int(scale * n)
    if align_corners:
        return np.arange(m) * ((n - 1) / (m - 1)) if m > 1 else np.zeros(m)
    return (np.arange(m) + 0.5) / scale - 0.5


def _take_axis(x: array, idx: np.ndarray, weights: list, axis: int) -> array:
    """Sum over taps of ``weight_t * x`` gathered at ``idx_t`` along ``axis``."""
    out = None
    shape = [1] * x.ndim
    shape[axis] = -1
    # the weights are float32 (float64 for float64 inputs), as MLX's: half inputs give float32
    wdtype = np.float64 if x._data.dtype == np.float64 else np.float32
    for ind, w in zip(idx, weights):
        # the gather positions and weights are made on the host: on x's device for the kernels
        term = mx.take(x, from_value(same_device(ind.astype(np.int64), x._data)), axis=axis)
        term = term * from_value(same_device(w.reshape(shape).astype(wdtype), x._data))
        out = term if out is None else out + term
    return out


def upsample_nearest(x: array, scale_factor: tuple) -> array:
    """Nearest-neighbour upsampling (integer scales repeat each element).

    Args:
        x: ``(N, *spatial, C)``.
        scale_factor: one scale per spatial axis.

    Returns:
        ``(N, *(int(s * n)), C)``.
    """
    dims = _check(x, scale_factor, "upsample_nearest")
    for d in range(dims):
        n = x.shape[d + 1]
        s = scale_factor[d]
        m = int(s * n)
        if float(s).is_integer():
            idx = np.arange(m) // int(s)
        else:
            idx = np.minimum(np.floor(np.arange(m) * (n / m)).astype(np.int64), n - 1)
        x = mx.take(x, from_value(idx.astype(np.int64)), axis=d + 1)
    return x


def upsample_linear(x: array, scale_factor: tuple, align_corners: bool = False) -> array:
    """(Bi/tri)linear upsampling, as PyTorch's ``interpolate(mode="linear"/"bilinear"/...)``.

    Args:
        x: ``(N, *spatial, C)``.
        scale_factor: one scale per spatial axis.
        align_corners: map the corner pixels of input and output onto each other.

    Returns:
        ``(N, *(int(s * n)), C)``.
    """
    dims = _check(x, scale_factor, "upsample_linear")
    for d in range(dims):
        n = x.shape[d + 1]
        c = np.clip(_source_coords(n, scale_factor[d], align_corners), 0, n - 1)
        lo = np.floor(c).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        w = c - lo
        x = _take_axis(x, [lo, hi], [1 - w, w], d + 1)
    return x


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> list:
    """Keys' cubic convolution weights for taps at offsets -1, 0, 1, 2 (``a = -0.75``)."""

    def near(s):
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):
        return ((s - 5) * s + 8) * s * a - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def upsample_cubic(x: array, scale_factor: tuple, align_corners: bool = False) -> array:
    """Bicubic (cubic per axis) upsampling, as PyTorch's ``interpolate(mode="bicubic")``.

    Args:
        x: ``(N, *spatial, C)``.
        scale_factor: one scale per spatial axis.
        align_corners: map the corner pixels of input and output onto each other.

    Returns:
        ``(N, *(int(s * n)), C)``.
    """
    dims = _check(x, scale_factor, "upsample_cubic")
    for d in range(dims):
        n = x.shape[d + 1]
        c = _source_coords(n, scale_factor[d], align_corners)
        base = np.floor(c).astype(np.int64)
        t = c - base
        idx = [np.clip(base + k, 0, n - 1) for k in (-1, 0, 1, 2)]
        x = _take_axis(x, idx, _cubic_weights(t), d + 1)
    return x


def _aa_filter(mode: str, t: np.ndarray) -> np.ndarray:
    """The antialiasing kernels: a triangle (linear) or Keys' cubic with ``a = -0.5``."""
    t = np.abs(t)
    if mode == "linear":
        return np.maximum(1 - t, 0.0)
    a = -0.5
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def _aa_matrix(n: int, scale_factor: float, mode: str) -> np.ndarray:
    """``(m, n)`` weights of an antialiased resampling of one axis (PyTorch's and PIL's).

    Each output position averages the inputs under a kernel widened by the downscaling ratio
    (so every input contributes when shrinking), normalised to sum to one.
    """
    m = int(scale_factor * n)
    ratio = 1.0 / scale_factor  # input pixels per output pixel
    widen = max(ratio, 1.0)
    support = (1.0 if mode == "linear" else 2.0) * widen
    w = np.zeros((m, n))
    for i in range(m):
        center = ratio * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n)
        taps = _aa_filter(mode, (np.arange(lo, hi) - center + 0.5) / widen)
        total = taps.sum()
        w[i, lo:hi] = taps / total if total != 0 else taps
    return w


def upsample_antialiased(x: array, scale_factor: tuple, mode: str) -> array:
    """Linear or cubic resampling with an antialiasing filter (``antialias=True``).

    Matches PyTorch's ``interpolate(..., antialias=True)`` (bilinear / bicubic with
    ``align_corners=False``): when shrinking, the kernel widens with the ratio so no input is
    skipped; when enlarging, linear equals plain linear interpolation and cubic uses Keys'
    ``a = -0.5`` (plain cubic uses ``-0.75``).

    Args:
        x: ``(N, *spatial, C)``.
        scale_factor: one scale per spatial axis.
        mode: ``"linear"`` or ``"cubic"``.

    Returns:
        ``(N, *(int(s * n)), C)``; differentiable in ``x``.
    """
    dims = _check(x, scale_factor, "upsample_antialiased")
    # the weights are float32 (float64 for float64 inputs), as MLX's: half inputs give float32
    wdtype = np.float64 if x._data.dtype == np.float64 else np.float32
    for d in range(dims):
        w = _aa_matrix(x.shape[d + 1], scale_factor[d], mode).T.astype(wdtype)
        w = from_value(same_device(w, x._data))  # on x's device
        x = mx.moveaxis(mx.moveaxis(x, d + 1, -1) @ w, -1, d + 1)
    return x


class Upsample(Module):
    """Upsample the spatial axes of ``(N, *spatial, C)`` inputs.

    Args:
        scale_factor: the multiplier of every spatial size (a number, or one per axis).
        mode: ``"nearest"``, ``"linear"`` (bi-/trilinear) or ``"cubic"``.
        align_corners: for ``"linear"`` and ``"cubic"``, map the corner pixels of input and
            output onto each other.
        antialias: for ``"linear"`` and ``"cubic"``, filter while shrinking so that every
            input contributes (PyTorch's ``antialias=True``; not with ``align_corners``).
    """

    def __init__(
        self,
        scale_factor: float | tuple,
        mode: Literal["nearest", "linear", "cubic"] = "nearest",
        align_corners: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("nearest", "linear", "cubic"):
            raise ValueError(f"Upsample: mode must be 'nearest', 'linear' or 'cubic', got {mode!r}")
        if antialias and mode == "nearest":
            raise ValueError("Upsample: antialiasing is not supported for nearest neighbours")
        if antialias and align_corners:
            raise ValueError(
                "Upsample: antialias=True with align_corners=True is not supported; use "
                "align_corners=False"
            )
        if isinstance(scale_factor, (list, tuple)):
            scale_factor = tuple(float(s) for s in scale_factor)
            bad = [s for s in scale_factor if not s > 0 or math.isinf(s)]
        else:
            scale_factor = float(scale_factor)
            bad = [] if scale_factor > 0 and not math.isinf(scale_factor) else [scale_factor]
        if bad:
            raise ValueError(f"Upsample: scale factors must be positive, got {scale_factor}")
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.antialias = antialias

    def _extra_repr(self) -> str:
        text = (
            f"scale_factor={self.scale_factor}, mode={self.mode!r}, "
            f"align_corners={self.align_corners}"
        )
        return text + (", antialias=True" if self.antialias else "")

    def __call__(self, x: array) -> array:
        dims = x.ndim - 2
        sf = self.scale_factor
        scale = sf if isinstance(sf, tuple) else (sf,) * max(dims, 0)
        if self.mode == "nearest":
            return upsample_nearest(x, scale)
        if self.antialias:
            return upsample_antialiased(x, scale, self.mode)
        if self.mode == "linear":
            return upsample_linear(x, scale, self.align_corners)
        return upsample_cubic(x, scale, self.align_corners)
