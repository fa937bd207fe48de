"""Padding, resizing and rearranging of ``torch.nn.functional`` (helper of ``functional``).

``interpolate`` is separable: each spatial axis is multiplied by an ``(out, in)`` matrix built
from PyTorch's source-index rules (nearest, nearest-exact, linear, cubic with ``A = -0.75``,
area; anti-aliased linear and cubic), so its gradient is the transposed matrix. ``fold``
scatters with ``at[].add``; ``grid_sample`` gathers the corners and weighs them with chainrule
operations, so the grid gets a gradient as well.

Devices: the small tables built from Python values (the interpolation matrices, ``affine_grid``'s
base coordinates, ``fold``'s target indices) are made on the host with NumPy and put once on the
input's device (``backend.same_device``), so a CUDA input stays on the GPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import from_value

from .functional_pool import InputError, batched, ntuple, windows

__all__ = [
    "affine_grid",
    "channel_shuffle",
    "fold",
    "grid_sample",
    "interpolate",
    "native_channel_shuffle",
    "pad",
    "pixel_shuffle",
    "pixel_unshuffle",
    "unfold",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
]


# -- pad ---------------------------------------------------------------------------------------


def _circular(x: array, axis: int, lo: int, hi: int) -> array:
    n = x.shape[axis]
    if lo > n or hi > n:
        raise ValueError(
            f"pad: padding ({lo}, {hi}) of dimension {axis} is larger than its size {n} "
            "(mode 'circular')"
        )
    parts = []
    idx = [slice(None)] * x.ndim
    if lo > 0:
        idx[axis] = slice(n - lo, n)
        parts.append(x[tuple(idx)])
    idx[axis] = slice(max(0, -lo), n - max(0, -hi))
    parts.append(x[tuple(idx)])
    if hi > 0:
        idx[axis] = slice(0, hi)
        parts.append(x[tuple(idx)])
    return parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=axis)


def pad(
    input: array, pad: Sequence[int], mode: str = "constant", value: float | None = None
) -> array:
    """Pad the last ``len(pad) // 2`` dimensions: ``pad = (left_last, right_last, ...)``.

    Args:
        input: the array.
        pad: pairs of amounts, starting from the last dimension (negative crops, in
            ``"constant"`` and ``"circular"`` modes).
        mode: ``"constant"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        value: the constant (default 0).

    Returns:
        The padded array.
    """
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise InputError(
            f"pad: padding {pad} must hold pairs for at most {input.ndim} dimensions "
            f"(input shape {tuple(input.shape)})"
        )
    npairs = len(pad) // 2
    width = [(0, 0)] * input.ndim
    for i in range(npairs):
        width[input.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    # negative amounts crop first (every mode); the positive ones then pad the cropped array
    signed = list(width)
    crop = [slice(max(0, -lo), n - max(0, -hi)) for (lo, hi), n in zip(width, input.shape)]
    cropped = input[tuple(crop)] if any(lo < 0 or hi < 0 for lo, hi in width) else input
    width = [(max(0, lo), max(0, hi)) for lo, hi in width]
    if mode == "constant":
        if all(p == (0, 0) for p in width):
            return cropped
        return mx.pad(cropped, width, constant_values=0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    if value not in (None, 0, 0.0):
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    if npairs > 3 or input.ndim not in (npairs + 1, npairs + 2):
        raise NotImplementedError(
            f"pad: only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now "
            f"(got padding {pad} for an input of shape {tuple(input.shape)}, mode {mode!r})"
        )
    if mode == "circular":
        x = cropped
        for axis in range(input.ndim - npairs, input.ndim):
            x = _circular(x, axis, *width[axis])
        return x
    # reflect / replicate map each output position onto the original input (PyTorch's
    # kernels), so they pad the original and crop afterwards
    for axis, (lo, hi) in enumerate(width):
        n = input.shape[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise InputError(
                f"pad: reflect padding ({lo}, {hi}) should be less than the dimension {axis} of "
                f"size {n} of the input {tuple(input.shape)}"
            )
        if cropped.shape[axis] + lo + hi < 1:
            raise InputError(
                f"pad: padding {pad} gives dimension {axis} of the input {tuple(input.shape)} a "
                "size below 1"
            )
    x = input
    if any(p != (0, 0) for p in width):
        x = mx.pad(input, width, mode="reflect" if mode == "reflect" else "edge")
    if cropped is input:
        return x
    shifted = [slice(max(0, -lo), x.shape[i] - max(0, -hi)) for i, (lo, hi) in enumerate(signed)]
    return x[tuple(shifted)]


# -- interpolate -------------------------------------------------------------------------------


def _table(values: np.ndarray, like: array) -> array:
    """A host-built table as a constant of ``like``'s dtype, on ``like``'s device (one copy)."""
    return from_value(backend.same_device(np.asarray(values, dtype=like._data.dtype), like._data))


def _along(x: array, matrix: np.ndarray, axis: int) -> array:
    """Apply the host-built ``(out, in)`` ``matrix`` to ``x`` along ``axis``, on ``x``'s device."""
    y = mx.matmul(mx.moveaxis(x, axis, -1), mx.transpose(_table(matrix, x)))
    return mx.moveaxis(y, -1, axis)


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    a = -0.75

    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _matrix(
    mode: str, n_in: int, n_out: int, align: bool, scale: float | None, wide: bool = False
) -> np.ndarray:
    """The ``(n_out, n_in)`` interpolation matrix of one axis (``wide``: a float64 input, whose
    nearest indices PyTorch computes in float64 rather than float32)."""
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    dst = rows.astype(np.float64)
    if n_in == n_out and mode in ("nearest", "linear"):
        return np.eye(n_in)  # PyTorch copies an axis whose size does not change
    if mode == "nearest" and n_out == 2 * n_in:
        m[rows, rows // 2] = 1.0
        return m
    if mode in ("nearest", "nearest-exact"):
        s = (1.0 / scale) if scale else n_in / n_out
        offset = 0.5 if mode == "nearest-exact" else 0.0
        # PyTorch's index arithmetic: float32 for a float32 input; for a float64 input the
        # product is taken in float64 and rounded to float32 before the floor
        if wide:
            pos = ((dst + offset) * s).astype(np.float32)
        else:
            pos = (dst.astype(np.float32) + np.float32(offset)) * np.float32(s)
        src = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
        m[rows, src] = 1.0
        return m
    if mode == "area":
        for j in range(n_out):
            a, b = (j * n_in) // n_out, -(-((j + 1) * n_in) // n_out)
            m[j, a:b] = 1.0 / (b - a)
        return m
    if align:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = s * dst
    else:
        s = (1.0 / scale) if scale else n_in / n_out
        src = s * (dst + 0.5) - 0.5
    if mode == "cubic":
        i0 = np.floor(src).astype(np.int64)
        t = src - i0
        for tap, w in zip(range(-1, 3), _cubic(t)):
            np.add.at(m, (rows, np.clip(i0 + tap, 0, n_in - 1)), w)
        return m
    if not align:
        src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    np.add.at(m, (rows, i0), 1.0 - lam)
    np.add.at(m, (rows, i1), lam)
    return m


def _antialias_matrix(
    kind: str, n_in: int, n_out: int, align: bool, scale: float | None
) -> np.ndarray:
    """PyTorch's anti-aliased resampling: the filter widens by the downscaling factor."""
    if align:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        s = (1.0 / scale) if scale else n_in / n_out
    size = 2 if kind == "linear" else 4
    support = size * 0.5 * s if s >= 1.0 else size * 0.5
    inv = 1.0 / s if s >= 1.0 else 1.0

    def filt(x: np.ndarray) -> np.ndarray:
        x = np.abs(x)
        if kind == "linear":
            return np.where(x < 1.0, 1.0 - x, 0.0)
        a = -0.5
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = s * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = filt((j - center + 0.5) * inv)
        total = w.sum()
        m[i, lo:hi] = w / total if total != 0 else w
    return m


_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def interpolate(
    input: array,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> array:
    """Resize the spatial dimensions of a channels-first input.

    Args:
        input: ``(N, C, *spatial)`` with 1 to 3 spatial dimensions.
        size: the output's spatial size.
        scale_factor: or a multiplier per spatial dimension.
        mode: ``"nearest"``, ``"nearest-exact"``, ``"linear"``, ``"bilinear"``,
            ``"bicubic"``, ``"trilinear"`` or ``"area"``.
        align_corners: map corner pixels' centres onto each other (linear and cubic modes).
        recompute_scale_factor: compute the scale from the sizes rather than use
            ``scale_factor``.
        antialias: widen the filter when downsampling (bilinear and bicubic modes).

    Returns:
        The resized array.
    """
    nd = input.ndim - 2
    if nd < 1 or nd > 3:
        raise NotImplementedError(
            f"interpolate: input of shape {tuple(input.shape)} must be 3D, 4D or 5D "
            "(N, C, *spatial)"
        )
    need = _MODE_DIMS.get(mode)
    if mode not in ("nearest", "nearest-exact", "area") and need is None:
        raise NotImplementedError(f"interpolate: unknown mode {mode!r}")
    if need is not None and need != nd:
        raise NotImplementedError(
            f"interpolate: got {input.ndim}D input of shape {tuple(input.shape)}, but mode "
            f"{mode!r} needs a {need + 2}D input"
        )
    if align_corners is not None and need is None:
        raise ValueError(
            "interpolate: align_corners option can only be set with the interpolating modes: "
            "linear | bilinear | bicubic | trilinear"
        )
    if antialias and mode not in ("bilinear", "bicubic"):
        raise ValueError(
            f"interpolate: anti-alias option is restricted to bilinear and bicubic modes and "
            f"requires a 4-D tensor as input, got mode {mode!r}"
        )
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: either size or scale_factor should be defined (not both)")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    spatial = input.shape[2:]
    scales: tuple = (None,) * nd
    if size is not None:
        out = ntuple(size, nd, "size", "interpolate")
    else:
        sf = (
            (float(scale_factor),) * nd
            if isinstance(scale_factor, (int, float))
            else tuple(float(v) for v in scale_factor)
        )
        if len(sf) != nd:
            raise ValueError(
                f"interpolate: scale_factor {scale_factor!r} must have {nd} values for an input "
                f"of shape {tuple(input.shape)}"
            )
        out = tuple(int(math.floor(n * f)) for n, f in zip(spatial, sf))
        if not recompute_scale_factor:
            scales = sf
    if mode != "area" and (any(o < 1 for o in out) or any(n < 1 for n in spatial)):
        raise InputError(
            f"interpolate: input and output sizes should be greater than 0, but got input "
            f"{tuple(spatial)} and output {tuple(out)}"
        )
    kind = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if kind == "area":
        x = input
        for i in range(nd):
            if spatial[i] != out[i]:
                x = _along(x, _matrix("area", spatial[i], out[i], False, None), 2 + i)
        return x
    x = input
    for i in range(nd):
        if antialias:
            m = _antialias_matrix(kind, spatial[i], out[i], bool(align_corners), scales[i])
        else:
            wide = input.dtype == mx.float64
            m = _matrix(kind, spatial[i], out[i], bool(align_corners), scales[i], wide)
        x = _along(x, m, 2 + i)
    return x


def upsample(
    input: array,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> array:
    """Deprecated spelling of :func:`interpolate` (warns, as PyTorch)."""
    warnings.warn(
        "`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
        UserWarning,
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: array, size: Any = None, scale_factor: Any = None) -> array:
    """Deprecated: ``interpolate(..., mode="nearest")`` (warns, as PyTorch)."""
    warnings.warn(
        "`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
        UserWarning,
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: array, size: Any = None, scale_factor: Any = None) -> array:
    """Deprecated: ``interpolate(..., mode="bilinear", align_corners=True)`` (warns)."""
    warnings.warn(
        "`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
        UserWarning,
        stacklevel=2,
    )
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# -- unfold / fold -----------------------------------------------------------------------------


def unfold(
    input: array, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1
) -> array:
    """Sliding local blocks (im2col): ``(N, C, H, W)`` to ``(N, C * kh * kw, L)``.

    Args:
        input: ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: the block size.
        dilation: spacing between taps.
        padding: zeros on both sides.
        stride: step between blocks.

    Returns:
        ``(N, C * prod(kernel_size), L)`` blocks, channel-major as in PyTorch.
    """
    x, added = batched(input, 2, "unfold")
    k = ntuple(kernel_size, 2, "kernel_size", "unfold")
    d = ntuple(dilation, 2, "dilation", "unfold")
    p = ntuple(padding, 2, "padding", "unfold")
    s = ntuple(stride, 2, "stride", "unfold")
    out = []
    for n, kk, dd, pp, ss in zip(x.shape[2:], k, d, p, s):
        o = (n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
        if o < 1:
            raise InputError(
                f"unfold: the input of shape {tuple(input.shape)} is too small for kernel {k} "
                f"(dilation {d}, padding {p}, stride {s})"
            )
        out.append(o)
    win = windows(x, k, s, p, d, tuple(out), 0.0)  # (N, C, oh, ow, K)
    n_, c = x.shape[:2]
    y = mx.reshape(mx.moveaxis(win, -1, 2), (n_, c * k[0] * k[1], out[0] * out[1]))
    return y[0] if added else y


def fold(
    input: array,
    output_size: Any,
    kernel_size: Any,
    dilation: Any = 1,
    padding: Any = 0,
    stride: Any = 1,
) -> array:
    """Sum sliding local blocks into an image (col2im), the adjoint of :func:`unfold`.

    Args:
        input: ``(N, C * kh * kw, L)`` or ``(C * kh * kw, L)``.
        output_size: the image's ``(H, W)``.
        kernel_size: the block size.
        dilation: spacing between taps.
        padding: zeros on both sides.
        stride: step between blocks.

    Returns:
        ``(N, C, H, W)``.
    """
    added = input.ndim == 2
    if input.ndim not in (2, 3):
        raise InputError(f"fold: expected a 2D or 3D input, got shape {tuple(input.shape)}")
    x = mx.expand_dims(input, 0) if added else input
    size = ntuple(output_size, 2, "output_size", "fold")
    k = ntuple(kernel_size, 2, "kernel_size", "fold")
    d = ntuple(dilation, 2, "dilation", "fold")
    p = ntuple(padding, 2, "padding", "fold")
    s = ntuple(stride, 2, "stride", "fold")
    kk = k[0] * k[1]
    blocks = [(size[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
    n, ck, length = x.shape
    if ck % kk or length != blocks[0] * blocks[1]:
        raise InputError(
            f"fold: input of shape {tuple(input.shape)} does not match kernel_size {k} and "
            f"output_size {size}: expected (N, C * {kk}, {blocks[0] * blocks[1]})"
        )
    c = ck // kk
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    ki, kj = np.meshgrid(np.arange(k[0]), np.arange(k[1]), indexing="ij")
    oi, oj = np.meshgrid(np.arange(blocks[0]), np.arange(blocks[1]), indexing="ij")
    rows = ki.reshape(-1, 1) * d[0] + oi.reshape(1, -1) * s[0]
    cols = kj.reshape(-1, 1) * d[1] + oj.reshape(1, -1) * s[1]
    target = from_value(backend.same_device((rows * wp + cols).reshape(-1), x._data))
    vals = mx.reshape(x, (n, c, kk * length))
    device = mx.gpu if backend.is_gpu(x._data) else mx.cpu
    canvas = mx.zeros((n, c, hp * wp), dtype=x.dtype, stream=device).at[:, :, target].add(vals)
    y = mx.reshape(canvas, (n, c, hp, wp))[:, :, p[0] : p[0] + size[0], p[1] : p[1] + size[1]]
    return y[0] if added else y


# -- pixel and channel shuffles ----------------------------------------------------------------


def pixel_shuffle(input: array, upscale_factor: int) -> array:
    """``(*, C * r^2, H, W)`` to ``(*, C, H * r, W * r)``.

    Args:
        input: at least 3 dimensions.
        upscale_factor: ``r``.

    Returns:
        The rearranged array.
    """
    r = int(upscale_factor)
    if input.ndim < 3 or r <= 0 or input.shape[-3] % (r * r):
        raise InputError(
            f"pixel_shuffle: expected an input with at least 3 dimensions whose channels "
            f"(dimension -3) are divisible by upscale_factor^2 = {r * r}, got shape "
            f"{tuple(input.shape)}"
        )
    *lead, c, h, w = input.shape
    oc = c // (r * r)
    x = mx.reshape(input, (-1, oc, r, r, h, w))
    x = mx.transpose(x, (0, 1, 4, 2, 5, 3))
    return mx.reshape(x, (*lead, oc, h * r, w * r))


def pixel_unshuffle(input: array, downscale_factor: int) -> array:
    """``(*, C, H * r, W * r)`` to ``(*, C * r^2, H, W)``, the inverse of :func:`pixel_shuffle`.

    Args:
        input: at least 3 dimensions.
        downscale_factor: ``r``.

    Returns:
        The rearranged array.
    """
    r = int(downscale_factor)
    if input.ndim < 3 or r <= 0 or input.shape[-1] % r or input.shape[-2] % r:
        raise InputError(
            f"pixel_unshuffle: expected an input with at least 3 dimensions whose height and "
            f"width are divisible by downscale_factor {r}, got shape {tuple(input.shape)}"
        )
    *lead, c, h, w = input.shape
    x = mx.reshape(input, (-1, c, h // r, r, w // r, r))
    x = mx.transpose(x, (0, 1, 3, 5, 2, 4))
    return mx.reshape(x, (*lead, c * r * r, h // r, w // r))


def channel_shuffle(input: array, groups: int) -> array:
    """Interleave ``groups`` groups of channels (dimension 1).

    Args:
        input: ``(N, C, *)`` with ``C`` divisible by ``groups``.
        groups: the number of groups.

    Returns:
        The shuffled array.
    """
    if input.ndim < 3 or groups <= 0 or input.shape[1] % groups:
        raise InputError(
            f"channel_shuffle: expected an input of at least 3 dimensions whose channels are "
            f"divisible by groups={groups}, got shape {tuple(input.shape)}"
        )
    n, c, *rest = input.shape
    x = mx.reshape(input, (n, groups, c // groups, *rest))
    return mx.reshape(mx.swapaxes(x, 1, 2), input.shape)


native_channel_shuffle = channel_shuffle


# -- grids -------------------------------------------------------------------------------------


def _base_coords(n: int, align: bool) -> np.ndarray:
    if n <= 1:
        return np.zeros(max(n, 0))
    c = np.linspace(-1.0, 1.0, n)
    return c if align else c * (n - 1) / n


def affine_grid(theta: array, size: Sequence[int], align_corners: bool | None = None) -> array:
    """Sampling grid of an affine map, for :func:`grid_sample`.

    Args:
        theta: ``(N, 2, 3)`` (2-d) or ``(N, 3, 4)`` (3-d) affine matrices.
        size: the output's ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        align_corners: as in :func:`grid_sample` (default ``False``).

    Returns:
        ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` normalised coordinates ``(x, y[, z])``.
    """
    size = tuple(int(v) for v in size)
    align = _align_default(align_corners)
    nd = len(size) - 2
    if nd not in (2, 3) or theta.ndim != 3 or tuple(theta.shape[1:]) != (nd, nd + 1):
        raise ValueError(
            f"affine_grid: expected theta of shape (N, 2, 3) for a 4D size or (N, 3, 4) for a "
            f"5D size, got theta {tuple(theta.shape)} and size {size}"
        )
    if theta.shape[0] != size[0]:
        raise ValueError(
            f"affine_grid: theta of shape {tuple(theta.shape)} does not match the batch of "
            f"size {size}"
        )
    spatial = size[2:]
    axes = [_base_coords(n, align) for n in spatial]  # D?, H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = [mesh[-1], mesh[-2]] + ([mesh[0]] if nd == 3 else [])  # x, y, z
    base = np.stack(coords + [np.ones_like(mesh[0])], axis=-1).reshape(-1, nd + 1)
    b = _table(base, theta)
    grid = mx.matmul(b, mx.swapaxes(theta, 1, 2))  # (N, P, nd)
    return mx.reshape(grid, (size[0], *spatial, nd))


def _align_default(align_corners: bool | None) -> bool:
    if align_corners is None:
        warnings.warn(
            "Default grid_sample and affine_grid behavior has changed to align_corners=False "
            "since 1.3.0. Please specify align_corners=True if the old behavior is desired. See "
            "the documentation of grid_sample for details.",
            UserWarning,
            stacklevel=3,
        )
        return False
    return bool(align_corners)


def _unnormalize(coord: array, n: int, align: bool) -> array:
    if align:
        return (coord + 1) * ((n - 1) / 2)
    return ((coord + 1) * n - 1) / 2


def _reflect(coord: array, lo: float, hi: float) -> array:
    if lo == hi:
        return mx.zeros_like(coord)
    span = hi - lo
    c = mx.abs(coord - lo)
    extra = c - mx.stop_gradient(mx.floor(c / span)) * span
    flips = mx.stop_gradient(mx.floor(c / span))
    odd = mx.remainder(flips, 2) == 1
    return mx.where(odd, span - extra, extra) + lo


def _source(coord: array, n: int, align: bool, padding_mode: str) -> array:
    x = _unnormalize(coord, n, align)
    if padding_mode == "border":
        x = mx.clip(x, 0, n - 1)
    elif padding_mode == "reflection":
        x = _reflect(x, 0, n - 1) if align else _reflect(x, -0.5, n - 0.5)
        x = mx.clip(x, 0, n - 1)
    return x


def _tap(pos: array, n: int, align: bool, padding_mode: str) -> array:
    """A bicubic tap's position after the padding mode (``zeros`` leaves it to the mask)."""
    if padding_mode == "border":
        return mx.clip(pos, 0, n - 1)
    if padding_mode == "reflection":
        pos = _reflect(pos, 0, n - 1) if align else _reflect(pos, -0.5, n - 0.5)
        return mx.clip(pos, 0, n - 1)
    return pos


def grid_sample(
    input: array,
    grid: array,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool | None = None,
) -> array:
    """Sample ``input`` at the normalised coordinates of ``grid`` (2-d and 3-d).

    Args:
        input: ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
        grid: ``(N, H_out, W_out, 2)`` or ``(N, D_out, H_out, W_out, 3)`` in ``[-1, 1]``,
            ordered ``(x, y[, z])``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (4-D inputs).
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: ``-1`` and ``1`` are the corner pixels' centres (else their edges).

    Returns:
        ``(N, C, *grid.shape[1:-1])``.
    """
    nd = input.ndim - 2
    if nd not in (2, 3) or grid.ndim != input.ndim or grid.shape[-1] != nd:
        raise InputError(
            f"grid_sample: expected a 4D input with a grid (N, H, W, 2) or a 5D input with a "
            f"grid (N, D, H, W, 3), got input {tuple(input.shape)} and grid {tuple(grid.shape)}"
        )
    if grid.shape[0] != input.shape[0]:
        raise InputError(
            f"grid_sample: grid of shape {tuple(grid.shape)} and input of shape "
            f"{tuple(input.shape)} have different batch sizes"
        )
    if mode not in ("bilinear", "nearest", "bicubic") or (mode == "bicubic" and nd != 2):
        raise NotImplementedError(
            f"grid_sample: mode must be 'bilinear', 'nearest' or (for 4D inputs) 'bicubic', got "
            f"{mode!r} for an input of shape {tuple(input.shape)}"
        )
    if padding_mode not in ("zeros", "border", "reflection"):
        raise InputError(
            f"grid_sample: padding_mode must be 'zeros', 'border' or 'reflection', got "
            f"{padding_mode!r}"
        )
    align = _align_default(align_corners)
    n, c = input.shape[:2]
    spatial = input.shape[2:]  # (D,) H, W
    out = grid.shape[1:-1]
    pts = mx.reshape(grid, (n, -1, nd)).astype(input.dtype)
    # coordinate k of the grid addresses spatial axis nd - 1 - k
    src = [_source(pts[..., nd - 1 - a], spatial[a], align, padding_mode) for a in range(nd)]
    flat = mx.reshape(input, (n, c, -1))
    strides = np.cumprod((1,) + tuple(spatial[::-1]))[:-1][::-1]

    def gather(idx: list[array]) -> array:
        valid = None
        lin = None
        for a in range(nd):
            ok = (idx[a] >= 0) & (idx[a] <= spatial[a] - 1)
            valid = ok if valid is None else valid & ok
            term = mx.clip(idx[a], 0, spatial[a] - 1).astype(mx.int64) * int(strides[a])
            lin = term if lin is None else lin + term
        vals = mx.take_along_axis(
            flat, mx.broadcast_to(mx.expand_dims(lin, 1), (n, c) + lin.shape[1:]), axis=2
        )
        return vals * mx.expand_dims(valid, 1).astype(input.dtype)

    if mode == "nearest":
        idx = [mx.stop_gradient(mx.round(s)) for s in src]
        y = gather(idx)
    elif mode == "bicubic":
        # 4 x 4 taps around the unpadded source; the padding mode moves each tap
        raw = [_unnormalize(pts[..., nd - 1 - a], spatial[a], align) for a in range(nd)]
        base = [mx.stop_gradient(mx.floor(r)) for r in raw]
        weights = [_cubic(r - b) for r, b in zip(raw, base)]
        y = None
        for i in range(4):
            for j in range(4):
                idx = [
                    mx.stop_gradient(_tap(base[a] + (i, j)[a] - 1, spatial[a], align, padding_mode))
                    for a in range(nd)
                ]
                term = gather(idx) * mx.expand_dims(weights[0][i] * weights[1][j], 1)
                y = term if y is None else y + term
    else:
        lo = [mx.stop_gradient(mx.floor(s)) for s in src]
        frac = [s - f for s, f in zip(src, lo)]
        y = None
        for corner in np.ndindex(*(2,) * nd):
            idx = [lo[a] + corner[a] for a in range(nd)]
            w = None
            for a in range(nd):
                wa = frac[a] if corner[a] else 1 - frac[a]
                w = wa if w is None else w * wa
            term = gather(idx) * mx.expand_dims(w, 1)
            y = term if y is None else y + term
    return mx.reshape(y, (n, c, *out))
