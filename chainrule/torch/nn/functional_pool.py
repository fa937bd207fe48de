"""Pooling, padding and resampling of ``torch.nn.functional`` (helper of ``functional``).

Inputs are channels-first (``(N, C, *spatial)``, or ``(C, *spatial)`` unbatched). Windows are
combined by the ``pool_max`` / ``pool_sum`` primitives on the channels-last view (one ufunc
per tap over strided slices of the padded input, no window copy; a convolution's output is
channels-last underneath, so nothing is copied); max pooling sends each window's gradient to its first
maximum (PyTorch's index) alone, as in PyTorch. Resizing
(``interpolate``, adaptive average pooling) applies one interpolation matrix per spatial axis.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import torch_generator as _tg
from chainrule.core.array import array
from chainrule.core.extend import from_value, sliding_windows
from chainrule.core.pooling import pool_max, pool_sum

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d",
    "adaptive_max_pool3d_with_indices",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "fractional_max_pool2d",
    "fractional_max_pool2d_with_indices",
    "fractional_max_pool3d",
    "fractional_max_pool3d_with_indices",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_pool1d",
    "max_pool1d_with_indices",
    "max_pool2d",
    "max_pool2d_with_indices",
    "max_pool3d",
    "max_pool3d_with_indices",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
]


class InputError(ValueError, RuntimeError):
    """Bad input to a ``torch.nn.functional`` function: PyTorch raises ``RuntimeError`` there,
    chainrule's convention is ``ValueError``; this is both."""


def const(values: np.ndarray, like: array) -> array:
    """``values`` as a constant array of ``like``'s dtype (float64 stays float64), on its
    device (host-made, moved once)."""
    return from_value(_backend.same_device(np.asarray(values, dtype=like._data.dtype), like._data))


def ntuple(value: Any, n: int, name: str, who: str) -> tuple:
    """``value`` as an ``n``-tuple of ints (one int is repeated)."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    t = tuple(int(v) for v in value)
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise ValueError(f"{who}: {name} must be an int or {n} ints, got {value!r}")
    return t


def batched(x: array, nd: int, who: str) -> tuple[array, bool]:
    """``x`` with a batch axis, and whether one was added (an unbatched ``(C, *spatial)``)."""
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return mx.expand_dims(x, 0), True
    spatial = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
    raise InputError(
        f"{who}: expected a {nd + 1}D (C, {spatial}) or {nd + 2}D (N, C, {spatial}) input, "
        f"got shape {tuple(x.shape)}"
    )


def _unbatch(x: array, added: bool) -> array:
    return x[0] if added else x


def _padded(
    x: array, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, out: tuple, value
) -> array:
    """``x`` padded with ``value`` (and cropped) to exactly the extent ``out`` windows read."""
    width = [(0, 0), (0, 0)]
    crop = [slice(None), slice(None)]
    for size, k, s, p, d, o in zip(x.shape[2:], kernel, stride, padding, dilation, out):
        need = (o - 1) * s + (k - 1) * d + 1
        width.append((p, max(0, need - size - p)))
        crop.append(slice(0, need))
    if any(w != (0, 0) for w in width):
        x = mx.pad(x, width, constant_values=value)
    if any(n > c.stop for n, c in zip(x.shape[2:], crop[2:])):
        x = x[tuple(crop)]
    return x


def _flat(x: array) -> array:
    """``(N, C, *spatial)`` as ``(N * C, *spatial, 1)``: the pooling primitives' channels-last
    layout (a view of a contiguous input)."""
    return mx.reshape(x, (x.shape[0] * x.shape[1],) + tuple(x.shape[2:]) + (1,))


def windows(
    x: array,
    kernel: tuple,
    stride: tuple,
    padding: tuple,
    dilation: tuple,
    out: tuple,
    value: float,
) -> array:
    """``(N, C, *out, prod(kernel))``: the windows of a channels-first ``x`` padded with ``value``.

    One ``sliding_windows`` primitive: the forward copies a strided view once, the gradient
    adds the windows back (no per-tap slices in the graph).
    """
    x = _padded(x, kernel, stride, padding, dilation, out, value)
    n, c = x.shape[:2]
    win = sliding_windows(_flat(x), kernel, stride, dilation)
    return mx.reshape(win, (n, c) + tuple(out) + (math.prod(kernel),))


def _window_index_table(spatial, kernel, stride, padding, dilation, out) -> np.ndarray:
    """``(prod(out), prod(kernel))``: flat input index of each window tap."""
    grids = []
    for k, s, p, d, o in zip(kernel, stride, padding, dilation, out):
        grids.append(np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d)
    strides = np.cumprod((1,) + tuple(spatial[::-1]))[:-1][::-1]
    flat = np.zeros((1, 1), np.int64)
    for g, st in zip(grids, strides):
        flat = (flat[:, None, :, None] + g[None, :, None, :] * st).reshape(
            flat.shape[0] * g.shape[0], flat.shape[1] * g.shape[1]
        )
    return flat


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    who = f"max_pool{nd}d"
    x, added = batched(input, nd, who)
    k = ntuple(kernel_size, nd, "kernel_size", who)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    s = ntuple(s, nd, "stride", who)
    p = ntuple(padding, nd, "padding", who)
    d = ntuple(dilation, nd, "dilation", who)
    for kk, pp in zip(k, p):
        if pp * 2 > kk:
            raise InputError(
                f"{who}: pad should be at most half of effective kernel size, but got "
                f"pad={pp} and kernel_size={kk}"
            )
    out = _pool_out(x.shape[2:], k, s, p, d, ceil_mode, who)
    padded = _padded(x, k, s, p, d, out, -math.inf)
    # the maximum of the taps' strided slices; the gradient goes to each window's first
    # maximum (PyTorch's index; a NaN wins)
    values = mx.moveaxis(pool_max(mx.moveaxis(padded, 1, -1), k, s, d, first=True), -1, 1)
    values = _unbatch(values, added)
    if not return_indices:
        return values
    win = windows(x, k, s, p, d, out, -math.inf)
    arg = mx.argmax(win, axis=-1)
    table = _window_index_table(x.shape[2:], k, s, p, d, out)
    a = np.asarray(arg).astype(np.int64).reshape(x.shape[0], x.shape[1], -1)
    idx = table[np.arange(table.shape[0])[None, None, :], a].reshape(a.shape[:2] + out)
    return values, _unbatch(mx.array(idx), added)


def _pool_out(spatial, kernel, stride, padding, dilation, ceil_mode, who) -> tuple:
    out = []
    for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1
        if o < 1:
            raise InputError(
                f"{who}: the input of spatial size {tuple(spatial)} is too small for kernel "
                f"{tuple(kernel)} (stride {tuple(stride)}, padding {tuple(padding)}, "
                f"dilation {tuple(dilation)}): the output size would be {o}"
            )
        out.append(o)
    return tuple(out)


def _max_pool_fn(nd: int, with_indices: bool | None):
    def fn(
        input: array,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> Any:
        ri = return_indices if with_indices is None else with_indices
        return _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, ri)

    name = f"max_pool{nd}d" + ("_with_indices" if with_indices else "")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"{nd}-d max pooling of a channels-first input (PyTorch's ``F.{name}``).\n\n"
        "    Args:\n        input: ``(N, C, *spatial)`` or ``(C, *spatial)``.\n"
        "        kernel_size: window size.\n        stride: step (default: the kernel size).\n"
        "        padding: implicit ``-inf`` on both sides (at most half the kernel).\n"
        "        dilation: spacing between taps.\n        ceil_mode: round the output size up.\n"
        "        return_indices: also return the flat spatial index of each maximum.\n\n"
        "    Returns:\n        The pooled values (and indices)."
    )
    return fn


max_pool1d = _max_pool_fn(1, None)
max_pool2d = _max_pool_fn(2, None)
max_pool3d = _max_pool_fn(3, None)
max_pool1d_with_indices = _max_pool_fn(1, True)
max_pool2d_with_indices = _max_pool_fn(2, True)
max_pool3d_with_indices = _max_pool_fn(3, True)


def _avg_divisor(spatial, kernel, stride, padding, out, count_include_pad) -> np.ndarray:
    per_axis = []
    for size, k, s, p, o in zip(spatial, kernel, stride, padding, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        pool = end - start
        start_c = np.maximum(start, 0)
        end_c = np.minimum(end, size)
        per_axis.append(pool if count_include_pad else end_c - start_c)
    div = np.ones((), np.int64)
    for a in per_axis:
        div = np.multiply.outer(div, a)
    return div


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor):
    who = f"avg_pool{nd}d"
    x, added = batched(input, nd, who)
    k = ntuple(kernel_size, nd, "kernel_size", who)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    s = ntuple(s, nd, "stride", who)
    p = ntuple(padding, nd, "padding", who)
    for kk, pp in zip(k, p):
        if pp * 2 > kk:
            raise InputError(
                f"{who}: pad should be at most half of effective kernel size, but got "
                f"pad={pp} and kernel_size={kk}"
            )
    if divisor is not None and divisor == 0:
        raise InputError(f"{who}: divisor_override must be non-zero")
    out = _pool_out(x.shape[2:], k, s, p, (1,) * nd, ceil_mode, who)
    ones = (1,) * nd
    padded = _padded(x, k, s, p, ones, out, 0.0)
    total = mx.moveaxis(pool_sum(mx.moveaxis(padded, 1, -1), k, s, ones), -1, 1)
    if divisor is not None:
        y = total / divisor
    else:
        div = _avg_divisor(x.shape[2:], k, s, p, out, count_include_pad)
        y = total / const(div, x)
    return _unbatch(y, added)


def avg_pool1d(
    input: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> array:
    """1-d average pooling of ``(N, C, L)`` (PyTorch's ``F.avg_pool1d``).

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        kernel_size: window size.
        stride: step (default: the kernel size).
        padding: implicit zeros on both sides.
        ceil_mode: round the output size up.
        count_include_pad: count padded zeros in the divisor.

    Returns:
        The pooled values.
    """
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(
    input: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> array:
    """2-d average pooling of ``(N, C, H, W)`` (see :func:`avg_pool1d`; ``divisor_override``)."""
    return _avg_pool(
        2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def avg_pool3d(
    input: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> array:
    """3-d average pooling of ``(N, C, D, H, W)`` (see :func:`avg_pool2d`)."""
    return _avg_pool(
        3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def _lp_pool(nd, input, norm_type, kernel_size, stride, ceil_mode):
    who = f"lp_pool{nd}d"
    k = ntuple(kernel_size, nd, "kernel_size", who)
    if norm_type == math.inf:
        return _max_pool(nd, input, k, stride, 0, 1, ceil_mode, False)
    out = _avg_pool(nd, input**norm_type, k, stride, 0, ceil_mode, True, None)
    return (mx.sign(out) * mx.maximum(mx.abs(out), 0) * math.prod(k)) ** (1.0 / norm_type)


def lp_pool1d(
    input: array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> array:
    """Power-average pooling ``(sum x^p)^(1/p)`` over 1-d windows.

    Args:
        input: ``(N, C, L)`` or ``(C, L)``.
        norm_type: the power ``p``.
        kernel_size: window size.
        stride: step (default: the kernel size).
        ceil_mode: round the output size up.

    Returns:
        The pooled values.
    """
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(
    input: array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> array:
    """Power-average pooling over 2-d windows (see :func:`lp_pool1d`)."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(
    input: array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
) -> array:
    """Power-average pooling over 3-d windows (see :func:`lp_pool1d`)."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# -- adaptive pooling --------------------------------------------------------------------------


def _adaptive_sizes(x: array, nd: int, output_size: Any, who: str) -> tuple:
    sizes = (output_size,) * nd if isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != nd:
        raise ValueError(f"{who}: output_size must be an int or {nd} values, got {output_size!r}")
    return tuple(x.shape[2 + i] if o is None else int(o) for i, o in enumerate(sizes))


def _bounds(size: int, out: int) -> list[tuple[int, int]]:
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def along_axis(x: array, matrix: np.ndarray, axis: int) -> array:
    """Apply ``matrix`` (``(out, in)``) to ``x`` along ``axis``."""
    m = const(matrix, x)
    y = mx.matmul(mx.moveaxis(x, axis, -1), mx.transpose(m))
    return mx.moveaxis(y, -1, axis)


def _adaptive_avg(nd: int, input: array, output_size: Any) -> array:
    who = f"adaptive_avg_pool{nd}d"
    x, added = batched(input, nd, who)
    sizes = _adaptive_sizes(x, nd, output_size, who)
    for i, o in enumerate(sizes):
        n = x.shape[2 + i]
        if n == o:
            continue
        if n == 0 or o < 0:
            raise ValueError(f"{who}: cannot pool an input of shape {x.shape} to {sizes}")
        m = np.zeros((o, n))
        for j, (a, b) in enumerate(_bounds(n, o)):
            m[j, a:b] = 1.0 / (b - a)
        x = along_axis(x, m, 2 + i)
    return _unbatch(x, added)


def adaptive_avg_pool1d(input: array, output_size: Any) -> array:
    """Average-pool ``(N, C, L)`` to ``output_size`` with PyTorch's window bounds."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input: array, output_size: Any) -> array:
    """Average-pool ``(N, C, H, W)`` to ``output_size`` (``None`` keeps a size)."""
    return _adaptive_avg(2, input, output_size)


def adaptive_avg_pool3d(input: array, output_size: Any) -> array:
    """Average-pool ``(N, C, D, H, W)`` to ``output_size`` (``None`` keeps a size)."""
    return _adaptive_avg(3, input, output_size)


def _adaptive_max(nd: int, input: array, output_size: Any, return_indices: bool):
    who = f"adaptive_max_pool{nd}d"
    x, added = batched(input, nd, who)
    sizes = _adaptive_sizes(x, nd, output_size, who)
    spatial = x.shape[2:]
    n, c = x.shape[:2]
    flat = mx.reshape(x, (n, c, -1))
    strides = np.cumprod((1,) + tuple(spatial[::-1]))[:-1][::-1]
    # per axis: each output position's window, padded to the longest with a repeated tap
    # (a repeat cannot change a maximum, and argmax keeps the first one)
    table = np.zeros((1, 1), np.int64)
    for axis in range(nd):
        bounds = _bounds(spatial[axis], sizes[axis])
        width = max(b - a for a, b in bounds)
        taps = np.array([[min(a + k, b - 1) for k in range(width)] for a, b in bounds])
        table = (table[:, None, :, None] + taps[None, :, None, :] * int(strides[axis])).reshape(
            table.shape[0] * taps.shape[0], table.shape[1] * taps.shape[1]
        )
    gathered = mx.take(flat, mx.array(table.reshape(-1)), axis=2)
    gathered = mx.reshape(gathered, (n, c) + table.shape)
    arg = mx.argmax(gathered, axis=-1, keepdims=True)
    out = mx.reshape(mx.take_along_axis(gathered, arg, axis=-1), (n, c) + sizes)
    out = _unbatch(out, added)
    if not return_indices:
        return out
    a = np.asarray(arg)[..., 0].astype(np.int64)
    idx = table[np.arange(table.shape[0])[None, None, :], a].reshape((n, c) + sizes)
    return out, _unbatch(mx.array(idx), added)


def _adaptive_max_fn(nd: int, with_indices: bool | None):
    def fn(input: array, output_size: Any, return_indices: bool = False) -> Any:
        ri = return_indices if with_indices is None else True
        return _adaptive_max(nd, input, output_size, ri)

    name = f"adaptive_max_pool{nd}d" + ("_with_indices" if with_indices else "")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"Max-pool a channels-first {nd}-d input to ``output_size`` (PyTorch's ``F.{name}``).\n\n"
        "    Args:\n        input: ``(N, C, *spatial)`` or ``(C, *spatial)``.\n"
        "        output_size: the output's spatial size (``None`` keeps one).\n"
        "        return_indices: also return the flat spatial index of each maximum.\n\n"
        "    Returns:\n        The pooled values (and indices)."
    )
    return fn


adaptive_max_pool1d = _adaptive_max_fn(1, None)
adaptive_max_pool2d = _adaptive_max_fn(2, None)
adaptive_max_pool3d = _adaptive_max_fn(3, None)
adaptive_max_pool1d_with_indices = _adaptive_max_fn(1, True)
adaptive_max_pool2d_with_indices = _adaptive_max_fn(2, True)
adaptive_max_pool3d_with_indices = _adaptive_max_fn(3, True)


# -- unpooling and fractional pooling ----------------------------------------------------------


def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    who = f"max_unpool{nd}d"
    x, added = batched(input, nd, who)
    k = ntuple(kernel_size, nd, "kernel_size", who)
    s = ntuple(k if stride is None else stride, nd, "stride", who)
    p = ntuple(padding, nd, "padding", who)
    default = tuple((x.shape[2 + i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(nd))
    if output_size is None:
        out = default
    else:
        out = tuple(int(v) for v in output_size)[-nd:]
        for i in range(nd):
            lo, hi = default[i] - s[i], default[i] + s[i]
            if not lo < out[i] < hi:
                raise InputError(
                    f"{who}: invalid output_size {tuple(output_size)} (dim {i} must be between "
                    f"{lo} and {hi})"
                )
    if tuple(indices.shape) != tuple(input.shape):
        raise InputError(
            f"{who}: expected indices of the input's shape {tuple(input.shape)}, got "
            f"{tuple(indices.shape)}"
        )
    n, c = x.shape[:2]
    idx = mx.reshape(indices if not added else mx.expand_dims(indices, 0), (n, c, -1))
    total = math.prod(out)
    idx_np = np.asarray(idx)
    if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= total):
        raise InputError(f"{who}: found an invalid max index {int(idx_np.max())} (output {out})")
    zeros = mx.zeros((n, c, total), dtype=x.dtype)
    y = mx.put_along_axis(zeros, idx.astype(mx.int64), mx.reshape(x, (n, c, -1)), axis=2)
    return _unbatch(mx.reshape(y, (n, c) + out), added)


def max_unpool1d(
    input: array,
    indices: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> array:
    """Partial inverse of :func:`max_pool1d`: values placed at their indices, zeros elsewhere.

    Args:
        input: pooled values ``(N, C, L)``.
        indices: the indices returned by the pooling.
        kernel_size: the pooling's window.
        stride: the pooling's step (default: the kernel size).
        padding: the pooling's padding.
        output_size: the output's size (default from the arguments).

    Returns:
        The unpooled array.
    """
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(
    input: array,
    indices: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> array:
    """Partial inverse of :func:`max_pool2d` (see :func:`max_unpool1d`)."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(
    input: array,
    indices: array,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> array:
    """Partial inverse of :func:`max_pool3d` (see :func:`max_unpool1d`)."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


def _fractional_starts(size: int, k: int, out: int, u: Any) -> Any:
    """PyTorch's pseudo-random window starts for each sample ``u`` (shape ``(N, C)``), on
    ``u``'s device."""
    xpm = _backend.array_module(u)
    if out == 1:
        return xpm.full(u.shape + (1,), size - k, np.int64)
    alpha = (size - k) / (out - 1)
    i = xpm.arange(out - 1)
    seq = xpm.floor((i + u[..., None]) * alpha) - xpm.floor(u[..., None] * alpha)
    last = xpm.full(u.shape + (1,), size - k, seq.dtype)
    return xpm.concatenate([seq, last], axis=-1).astype(np.int64)


def _fractional(nd, input, kernel_size, output_size, output_ratio, return_indices, samples):
    who = f"fractional_max_pool{nd}d"
    x, added = batched(input, nd, who)
    k = ntuple(kernel_size, nd, "kernel_size", who)
    spatial = x.shape[2:]
    if output_size is None:
        if output_ratio is None:
            raise InputError(f"{who}: requires specifying either an output_size or output_ratio")
        r = (output_ratio,) * nd if isinstance(output_ratio, (int, float)) else output_ratio
        ratio = tuple(float(v) for v in r)
        out = tuple(int(spatial[i] * ratio[i]) for i in range(nd))
    else:
        out = ntuple(output_size, nd, "output_size", who)
    for i in range(nd):
        if out[i] + k[i] - 1 > spatial[i]:
            raise InputError(
                f"{who}: output_size {out} and kernel_size {k} are too large for the input of "
                f"shape {tuple(x.shape)}"
            )
    n, c = x.shape[:2]
    # the window indices are computed on x's device
    xd = x._data
    kind = "gpu" if _backend.is_gpu(xd) else "cpu"
    if samples is None:
        u = _backend.to_kind(_tg.stream().uniform((n, c, nd), xd.dtype), kind)  # torch.rand
    elif isinstance(samples, array):
        u = _backend.to_kind(samples._data, kind)
    else:
        u = _backend.same_device(np.asarray(samples), xd)
    u = u.astype(np.float64).reshape(n, c, nd)
    xpm = _backend.array_module(xd)
    strides = np.cumprod((1,) + tuple(spatial[::-1]))[:-1][::-1].tolist()
    flat = xpm.zeros((n, c, 1, 1), np.int64)
    # the window taps of each output cell, per sample: (N, C, prod(out), prod(k))
    for i in range(nd):
        # PyTorch's 2-d kernel reads sample 0 for the width, its 3-d kernel in axis order
        coord = nd - 1 - i if nd == 2 else i
        starts = _fractional_starts(spatial[i], k[i], out[i], u[..., coord])
        taps = starts[..., :, None] + xpm.arange(k[i])  # (N, C, out_i, k_i)
        flat = (flat[:, :, :, None, :, None] + taps[:, :, None, :, None, :] * strides[i]).reshape(
            n, c, flat.shape[2] * out[i], flat.shape[3] * k[i]
        )
    src = mx.reshape(x, (n, c, -1))
    gathered = mx.take_along_axis(src, from_value(flat.reshape(n, c, -1)), axis=2)
    gathered = mx.reshape(gathered, (n, c, flat.shape[2], flat.shape[3]))
    arg = mx.argmax(gathered, axis=-1, keepdims=True)
    values = mx.reshape(mx.take_along_axis(gathered, arg, axis=-1), (n, c) + out)
    values = _unbatch(values, added)
    if not return_indices:
        return values
    idx = np.take_along_axis(flat, arg._data.astype(np.int64), axis=-1).reshape((n, c) + out)
    return values, _unbatch(from_value(idx), added)


def _fractional_fn(nd: int, with_indices: bool | None):
    def fn(
        input: array,
        kernel_size: Any,
        output_size: Any = None,
        output_ratio: Any = None,
        return_indices: bool = False,
        _random_samples: array | None = None,
    ) -> Any:
        ri = return_indices if with_indices is None else True
        return _fractional(nd, input, kernel_size, output_size, output_ratio, ri, _random_samples)

    name = f"fractional_max_pool{nd}d" + ("_with_indices" if with_indices else "")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (
        f"Fractional max pooling (Graham, 2014) of a {nd}-d channels-first input.\n\n"
        "    Args:\n        input: ``(N, C, *spatial)`` or ``(C, *spatial)``.\n"
        "        kernel_size: window size.\n        output_size: the output's spatial size.\n"
        "        output_ratio: or the output's size as a fraction of the input's.\n"
        "        return_indices: also return the flat spatial index of each maximum.\n"
        "        _random_samples: ``(N, C, nd)`` samples in ``[0, 1)`` (drawn from\n"
        "            ``mx.random`` when omitted).\n\n"
        "    Returns:\n        The pooled values (and indices)."
    )
    return fn


fractional_max_pool2d = _fractional_fn(2, None)
fractional_max_pool3d = _fractional_fn(3, None)
fractional_max_pool2d_with_indices = _fractional_fn(2, True)
fractional_max_pool3d_with_indices = _fractional_fn(3, True)
