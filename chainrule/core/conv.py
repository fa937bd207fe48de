"""Convolutions with MLX's signatures and channels-last layouts, as composites of primitives.

Inputs are ``(N, *spatial, C_in)`` and weights ``(C_out, *kernel, C_in // groups)``, as in
``mx.conv2d``. Every function here is built from slicing, padding, reshaping and one matrix
product, so it differentiates (to any order) through the primitives' own rules: gathering
the ``prod(kernel)`` shifted views of the input costs one slice each, and the matrix product
runs in NumPy's BLAS.

A transposed convolution is the ordinary convolution of the input spread out by ``stride``
(zeros in between), padded by ``dilation * (kernel - 1) - padding`` and read through the
flipped kernel, which is how MLX defines it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from . import ops
from .array import array

__all__ = [
    "convolve",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_general",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]

IntOrSeq = int | Sequence[int]


def _tuple(value, n: int, name: str, who: str, minimum: int) -> tuple:
    """``value`` as a tuple of ``n`` ints, each at least ``minimum``."""
    if isinstance(value, int) or hasattr(value, "__index__"):
        out = (int(value),) * n
    else:
        out = tuple(int(v) for v in value)
        if len(out) == 1 and n > 1:
            out = out * n
    if len(out) != n:
        raise ValueError(
            f"{who}: {name} must be an int or {n} ints (one per spatial axis), got {value!r}"
        )
    if any(v < minimum for v in out):
        raise ValueError(f"{who}: {name} values must be at least {minimum}, got {value!r}")
    return out


def _padding(padding, n: int, who: str) -> tuple[tuple, tuple]:
    """MLX's padding forms: an int, one int per axis, or ``(low_list, high_list)``."""
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(p, (tuple, list)) for p in padding)
    ):
        lo = _tuple(padding[0], n, "padding", who, -(2**62))
        hi = _tuple(padding[1], n, "padding", who, -(2**62))
        return lo, hi
    both = _tuple(padding, n, "padding", who, 0)
    return both, both


def _dilate(x: array, axis: int, d: int) -> array:
    """Insert ``d - 1`` zeros between neighbours along ``axis`` (differentiably)."""
    n = x.shape[axis]
    if d == 1 or n == 0:
        return x
    y = ops.expand_dims(x, axis + 1)
    width = [(0, 0)] * y.ndim
    width[axis + 1] = (0, d - 1)
    y = ops.pad(y, width)
    shape = x.shape[:axis] + (n * d,) + x.shape[axis + 1 :]
    y = ops.reshape(y, shape)
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, (n - 1) * d + 1)
    return y[tuple(index)]


def _pad_signed(x: array, lo: tuple, hi: tuple) -> array:
    """Pad spatial axes by ``lo``/``hi``; negative amounts crop instead."""
    if any(p > 0 for p in lo + hi):
        width = [(0, 0)] + [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)] + [(0, 0)]
        x = ops.pad(x, width)
    if any(p < 0 for p in lo + hi):
        index = [slice(None)]
        for ax, (a, b) in enumerate(zip(lo, hi)):
            n = x.shape[ax + 1]
            index.append(slice(max(-a, 0), n - max(-b, 0)))
        x = x[tuple(index) + (slice(None),)]
    return x


def _sliding_windows(
    x: array, kernel: tuple, stride: tuple, dilation: tuple | None = None, who: str = "conv"
) -> array:
    """The windows of ``x`` (``(N, *spatial, C)``) stacked as ``(N, *out, prod(kernel), C)``.

    Window ``k`` (in row-major order over ``kernel``) is one strided slice of ``x``, so the
    result differentiates through slicing alone.
    """
    nd = len(kernel)
    dilation = dilation or (1,) * nd
    spatial = x.shape[1:-1]
    out = []
    for size, k, s, d in zip(spatial, kernel, stride, dilation):
        extent = (k - 1) * d + 1
        if size < extent:
            raise ValueError(
                f"{who}: the (padded) input has spatial shape {tuple(spatial)}, smaller than the "
                f"kernel's extent {tuple((kk - 1) * dd + 1 for kk, dd in zip(kernel, dilation))}"
            )
        out.append((size - extent) // s + 1)
    views = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        index = [slice(None)]
        for o, n_out, s, d in zip(offs, out, stride, dilation):
            start = o * d
            index.append(slice(start, start + (n_out - 1) * s + 1, s))
        index.append(slice(None))
        views.append(ops.expand_dims(x[tuple(index)], -2))
    if len(views) == 1:
        return views[0]
    return ops.concatenate(views, axis=-2)


def conv_general(
    input: array,
    weight: array,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | tuple[Sequence[int], Sequence[int]] = 0,
    kernel_dilation: IntOrSeq = 1,
    input_dilation: IntOrSeq = 1,
    groups: int = 1,
    flip: bool = False,
    stream=None,
) -> array:
    """General N-d convolution (``mx.conv_general``), channels last.

    Args:
        input: ``(N, *spatial, C_in)``.
        weight: ``(C_out, *kernel, C_in // groups)``.
        stride: step between windows, per spatial axis.
        padding: zeros added on both sides (an int or one per axis), or a pair
            ``(low, high)`` of per-axis lists; negative amounts crop.
        kernel_dilation: spacing between kernel taps.
        input_dilation: spacing inserted between input elements (used by transposed
            convolutions).
        groups: split the channels into this many independent groups.
        flip: convolve with the spatially flipped kernel (true convolution instead of
            cross-correlation).

    Returns:
        ``(N, *out_spatial, C_out)``.
    """
    x = input if type(input) is array else array(input)
    w = weight if type(weight) is array else array(weight)
    who = "conv_general"
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ValueError(
            f"{who}: input {x.shape} and weight {w.shape} must have the same number of "
            "dimensions, at least 3 (batch, spatial..., channels)"
        )
    nd = x.ndim - 2
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{who}: groups must be a positive int, got {groups!r}")
    c_in, c_out = x.shape[-1], w.shape[0]
    if w.shape[-1] * groups != c_in:
        raise ValueError(
            f"{who}: input has {c_in} channels but weight {w.shape} with groups={groups} "
            f"expects {w.shape[-1] * groups}"
        )
    if c_out % groups:
        raise ValueError(
            f"{who}: {c_out} output channels do not divide into groups={groups} (weight {w.shape})"
        )
    stride = _tuple(stride, nd, "stride", who, 1)
    kdil = _tuple(kernel_dilation, nd, "kernel_dilation", who, 1)
    idil = _tuple(input_dilation, nd, "input_dilation", who, 1)
    lo, hi = _padding(padding, nd, who)
    for ax, d in enumerate(idil):
        x = _dilate(x, ax + 1, d)
    x = _pad_signed(x, lo, hi)
    kernel = w.shape[1:-1]
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * nd + (slice(None),)]
    patches = _sliding_windows(x, kernel, stride, kdil, who)  # (N, *out, K, C_in)
    out_shape = patches.shape[:-2]
    kp = patches.shape[-2]
    if groups == 1:
        cols = ops.reshape(patches, (-1, kp * c_in))
        y = ops.matmul(cols, ops.transpose(ops.reshape(w, (c_out, kp * c_in))))
    else:
        cg = c_in // groups
        cols = ops.reshape(patches, (-1, kp, groups, cg))
        wg = ops.reshape(w, (groups, c_out // groups, kp, cg))
        y = ops.einsum("mkgc,gokc->mgo", cols, wg)
    return ops.reshape(y, out_shape + (c_out,))


def _conv_nd(nd, input, weight, stride, padding, dilation, groups, who):
    x = input if type(input) is array else array(input)
    if x.ndim != nd + 2 and x.ndim >= 3 and getattr(weight, "ndim", None) == x.ndim:
        nd = x.ndim - 2  # as MLX: the spatial axes come from the input, as in conv_general
    if x.ndim != nd + 2:
        raise ValueError(
            f"{who}: input must have {nd + 2} dimensions (N, {'spatial, ' * nd}C), "
            f"got shape {x.shape}"
        )
    return conv_general(
        x,
        weight,
        stride=_tuple(stride, nd, "stride", who, 1),
        padding=_tuple(padding, nd, "padding", who, 0),
        kernel_dilation=_tuple(dilation, nd, "dilation", who, 1),
        groups=groups,
    )


def conv1d(
    input: array,
    weight: array,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    stream=None,
) -> array:
    """1-d convolution over ``(N, L, C_in)`` with weight ``(C_out, K, C_in // groups)``.

    Args:
        input: the signal, channels last.
        weight: the filters.
        stride: step between windows.
        padding: zeros added on both sides.
        dilation: spacing between kernel taps.
        groups: number of channel groups.

    Returns:
        ``(N, L_out, C_out)``.
    """
    return _conv_nd(1, input, weight, stride, padding, dilation, groups, "conv1d")


def conv2d(
    input: array,
    weight: array,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    stream=None,
) -> array:
    """2-d convolution over ``(N, H, W, C_in)`` with weight ``(C_out, KH, KW, C_in // groups)``.

    Args:
        input: the images, channels last.
        weight: the filters.
        stride: step between windows (an int or one per axis).
        padding: zeros added on both sides (an int or one per axis).
        dilation: spacing between kernel taps.
        groups: number of channel groups.

    Returns:
        ``(N, H_out, W_out, C_out)``.
    """
    return _conv_nd(2, input, weight, stride, padding, dilation, groups, "conv2d")


def conv3d(
    input: array,
    weight: array,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    stream=None,
) -> array:
    """3-d convolution over ``(N, D, H, W, C_in)``, weight ``(C_out, KD, KH, KW, C_in // groups)``.

    Args:
        input: the volumes, channels last.
        weight: the filters.
        stride: step between windows (an int or one per axis).
        padding: zeros added on both sides (an int or one per axis).
        dilation: spacing between kernel taps.
        groups: number of channel groups.

    Returns:
        ``(N, D_out, H_out, W_out, C_out)``.
    """
    return _conv_nd(3, input, weight, stride, padding, dilation, groups, "conv3d")


def _conv_transpose_nd(nd, input, weight, stride, padding, dilation, output_padding, groups, who):
    x = input if type(input) is array else array(input)
    w = weight if type(weight) is array else array(weight)
    if x.ndim != nd + 2 or w.ndim != nd + 2:
        raise ValueError(
            f"{who}: input and weight must have {nd + 2} dimensions, got {x.shape} and {w.shape}"
        )
    stride = _tuple(stride, nd, "stride", who, 1)
    padding = _tuple(padding, nd, "padding", who, 0)
    dilation = _tuple(dilation, nd, "dilation", who, 1)
    output_padding = _tuple(output_padding, nd, "output_padding", who, 0)
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= max(s, d):
            raise ValueError(
                f"{who}: output_padding {output_padding} must be smaller than stride {stride} "
                f"or dilation {dilation}"
            )
    kernel = w.shape[1:-1]
    lo = tuple((k - 1) * d - p for k, d, p in zip(kernel, dilation, padding))
    hi = tuple(a + o for a, o in zip(lo, output_padding))
    return conv_general(
        x,
        w,
        stride=1,
        padding=(lo, hi),
        kernel_dilation=dilation,
        input_dilation=stride,
        groups=groups,
        flip=True,
    )


def conv_transpose1d(
    input: array,
    weight: array,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
    groups: int = 1,
    stream=None,
) -> array:
    """1-d transposed convolution over ``(N, L, C_in)`` with weight ``(C_out, K, C_in // groups)``.

    Args:
        input: the signal, channels last.
        weight: the filters.
        stride: upsampling step.
        padding: amount removed from both ends of the full output.
        dilation: spacing between kernel taps.
        output_padding: extra size added to the end of the output.
        groups: number of channel groups.

    Returns:
        ``(N, (L - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1, C_out)``.
    """
    return _conv_transpose_nd(
        1, input, weight, stride, padding, dilation, output_padding, groups, "conv_transpose1d"
    )


def conv_transpose2d(
    input: array,
    weight: array,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    stream=None,
) -> array:
    """2-d transposed convolution of ``(N, H, W, C_in)``, weight ``(C_out, KH, KW, C_in // g)``.

    Args:
        input: the images, channels last.
        weight: the filters.
        stride: upsampling step (an int or one per axis).
        padding: amount removed from both ends of the full output.
        dilation: spacing between kernel taps.
        output_padding: extra size added to the end of the output.
        groups: number of channel groups.

    Returns:
        ``(N, H_out, W_out, C_out)``.
    """
    return _conv_transpose_nd(
        2, input, weight, stride, padding, dilation, output_padding, groups, "conv_transpose2d"
    )


def conv_transpose3d(
    input: array,
    weight: array,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    stream=None,
) -> array:
    """3-d transposed convolution of ``(N, D, H, W, C_in)``, weight ``(C_out, *K, C_in // g)``.

    Args:
        input: the volumes, channels last.
        weight: the filters.
        stride: upsampling step (an int or one per axis).
        padding: amount removed from both ends of the full output.
        dilation: spacing between kernel taps.
        output_padding: extra size added to the end of the output.
        groups: number of channel groups.

    Returns:
        ``(N, D_out, H_out, W_out, C_out)``.
    """
    return _conv_transpose_nd(
        3, input, weight, stride, padding, dilation, output_padding, groups, "conv_transpose3d"
    )


def convolve(a: array, v: array, mode: str = "full", stream=None) -> array:
    """The discrete convolution of two 1-d arrays (``mx.convolve``, NumPy's ``np.convolve``).

    Args:
        a: the first 1-d array.
        v: the second 1-d array.
        mode: "full" (length ``M + N - 1``), "same" (length ``max(M, N)``, centred as NumPy)
            or "valid" (length ``max(M, N) - min(M, N) + 1``).

    Returns:
        The convolution, a 1-d array; differentiable in both inputs.

    Raises:
        ValueError: for inputs that are not 1-d or empty, or another ``mode``.
    """
    a = a if type(a) is array else array(a)
    v = v if type(v) is array else array(v)
    if a.ndim != 1 or v.ndim != 1:
        raise ValueError(f"convolve: inputs must be 1-d, got shapes {a.shape} and {v.shape}")
    if a.size == 0 or v.size == 0:
        raise ValueError("convolve: inputs cannot be empty")
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"convolve: mode must be 'full', 'same' or 'valid', got {mode!r}")
    if v.size > a.size:
        a, v = v, a
    m, n = a.size, v.size
    full = conv_general(
        ops.reshape(a, (1, m, 1)), ops.reshape(v, (1, n, 1)), padding=n - 1, flip=True
    )
    full = ops.reshape(full, (m + n - 1,))
    if mode == "full":
        return full
    if mode == "same":
        start = (n - 1) // 2
        return full[start : start + m]
    return full[n - 1 : m]
