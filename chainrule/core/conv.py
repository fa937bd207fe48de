"""Convolutions with MLX's signatures and channels-last layouts, as primitives.

Inputs are ``(N, *spatial, C_in)`` and weights ``(C_out, *kernel, C_in // groups)``, as in
``mx.conv2d``. Every convolution is one call of the ``conv`` primitive. Its kernel pads and
dilates the input once, reads the windows through one strided view (``as_strided``, no copy per
tap) and multiplies the contiguous ``(positions, taps * channels)`` copy of that view with the
weight (per group) in BLAS, by blocks of a few examples so that each block stays in the cache
between the copy and the GEMM. An input dilation with stride 1 runs by phases: ``prod(idil)``
stride-1 GEMMs with sub-kernels, never multiplying an inserted zero. Few input channels (LeNet's
1, an RGB stem) copy tap-major instead (``_tap_columns``), kept for the weight's gradient.

Its gradients are primitives whose own gradients are convolutions again (any order, and no
scatter-add anywhere):

* ``conv_weight`` (the weight's): the input's windows against the cotangent, one GEMM per block;
* the input's: ``conv_input`` (a GEMM per tap into tap-major slabs added back where each window
  was read, col2im) when the weight has more output than input channels per group, else the
  convolution of the cotangent spread out by ``stride``, padded to "full", through the
  flipped, channel-transposed weight.

A transposed convolution is the ordinary convolution of the input spread out by ``stride``
(zeros in between), padded by ``dilation * (kernel - 1) - padding`` and read through the
flipped kernel, which is how MLX defines it: one ``conv`` call with ``input_dilation``.

Pooling and the sliding windows are in ``pooling.py``.
"""

from __future__ import annotations

import functools
import itertools
import math
import weakref
from collections.abc import Sequence

from . import dtypes as _dt
from . import onednn, ops
from .array import STATE, _from_value, array
from .backend import array_module, xp
from .ops.table import _operand, _rec, defprim
from .tracing import kernel as _opaque

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


# -- kernels (backend arrays in, backend arrays out) --------------------------------------------


def _strided(x, shape: tuple, strides: tuple):
    """A view of ``x`` with the given shape and byte strides (no copy)."""
    return array_module(x).lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def _out_size(size: int, k: int, s: int, d: int) -> int:
    return (size - (k - 1) * d - 1) // s + 1


def _pad_dilate(x, lo: tuple, hi: tuple, idil: tuple):
    """``x`` (``(N, *spatial, C)``) spread out by ``idil`` and padded by ``lo``/``hi`` (negative
    amounts crop): a view when nothing is added, else one zero-filled array written once."""
    nd = x.ndim - 2
    if all(d == 1 for d in idil) and not any(p > 0 for p in lo + hi):
        if any(lo + hi):
            index: tuple = (slice(None),)
            for ax in range(nd):
                index += (slice(-lo[ax], x.shape[ax + 1] + hi[ax]),)
            return x[index + (slice(None),)]
        return x
    shape = [x.shape[0]]
    src, dst = [slice(None)], [slice(None)]
    for ax in range(nd):
        n, d, a = x.shape[ax + 1], idil[ax], lo[ax]
        total = max((n - 1) * d + 1, 0) + a + hi[ax]
        shape.append(max(total, 0))
        j0 = (-a + d - 1) // d if a < 0 else 0  # first element landing at or after 0
        j1 = min(n, (total - 1 - a) // d + 1) if total - 1 - a >= 0 else 0
        j1 = max(j1, j0)
        src.append(slice(j0, j1))
        dst.append(slice(a + j0 * d, a + (j1 - 1) * d + 1 if j1 > j0 else a + j0 * d, d))
    out = xp.zeros_like(x, shape=tuple(shape) + (x.shape[-1],), order="C")  # (keeps vmap's mark)
    out[tuple(dst) + (slice(None),)] = x[tuple(src) + (slice(None),)]
    return out


def _window_view(p, kernel: tuple, stride: tuple, dilation: tuple):
    """``(N, *out, *kernel, C)``: every window of ``p`` (``(N, *spatial, C)``) as one view."""
    nd = len(kernel)
    out = tuple(
        _out_size(p.shape[ax + 1], kernel[ax], stride[ax], dilation[ax]) for ax in range(nd)
    )
    st = p.strides
    shape = (p.shape[0],) + out + tuple(kernel) + (p.shape[-1],)
    strides = (
        (st[0],)
        + tuple(st[ax + 1] * stride[ax] for ax in range(nd))
        + tuple(st[ax + 1] * dilation[ax] for ax in range(nd))
        + (st[-1],)
    )
    return _strided(p, shape, strides), out


def _columns(p, kernel: tuple, stride: tuple, kdil: tuple, groups: int):
    """The im2col matrices of ``p`` (padded, ``(N, *spatial, C)``) per group: ``(groups, M,
    taps * C / groups)``; one copy of the strided window view."""
    nd = len(kernel)
    if p.shape[-1] > 1 and p.strides[-1] != p.itemsize:
        p = p.copy()  # channels contiguous: the window copy reads rows
    view, out = _window_view(p, kernel, stride, kdil)
    n, c = p.shape[0], p.shape[-1]
    m, taps = n * math.prod(out), math.prod(kernel)
    v = view.reshape(view.shape[:-1] + (groups, c // groups))
    return xp.moveaxis(v, 2 * nd + 1, 0).reshape(groups, m, taps * (c // groups)), out


_BLOCK_BYTES = 1 << 19
"""The im2col block size: copying the windows of a few examples and multiplying them at once
keeps the block in the core's cache between the copy and the GEMM (a whole-batch im2col of a
CIFAR-size layer is ~19 MB, and its skinny GEMM then runs at half speed)."""


_BLAS_TYPES = (xp.dtype(xp.float32), xp.dtype(xp.float64))
_COL2IM_BLOCK_BYTES = 1 << 21  # col2im's: fewer, larger blocks (LeNet's 6 -> 16: 1.27 -> 1.05 ms)


def _batch_blocks(n: int, rows: int, row_bytes: int, size: int = 0) -> list:
    """Slices of the batch axis whose blocks hold about ``size`` (``_BLOCK_BYTES``) bytes."""
    per = max(1, (size or _BLOCK_BYTES) // max(1, rows * row_bytes))
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


_FEW_CHANNELS = 16  # below this many values per window row (C_in * kernel_w), _tap_columns


def _few_channels(x, kernel: tuple, stride: tuple, idil: tuple, groups: int) -> bool:
    """Whether ``_tap_columns`` serves this convolution: the window view's runs of ``C_in *
    kernel_w`` values (LeNet's 1 x 5, a stem's 3 x 3) are too short for a fast copy."""
    few = groups == 1 and x.shape[-1] * kernel[-1] < _FEW_CHANNELS and stride[-1] == 1
    return few and all(d == 1 for d in idil) and x.dtype in _BLAS_TYPES


def _tap_columns(x, kernel: tuple, stride: tuple, lo: tuple, hi: tuple, kdil: tuple):
    """The transposed im2col matrix ``(taps * C, M)`` (rows ordered tap, channel; columns the
    output positions ``(N, *out)``) for inputs with few channels: one padded channels-first
    copy, then one copy per (tap, all channels) whose runs are a whole output row (the window
    view's runs are ``C * kernel_w`` values: 5 for LeNet's first layer, 3x slower)."""
    nd = x.ndim - 2
    c = x.shape[-1]
    xf = xp.moveaxis(x, -1, 0)  # (C, N, *spatial): a view (no copy from PyTorch's layout)
    if any(lo + hi):
        padded = tuple(n + a + b for n, a, b in zip(x.shape[1:-1], lo, hi))
        pc = xp.zeros_like(x, shape=(c, x.shape[0]) + padded, order="C")
        src, dst = [slice(None), slice(None)], [slice(None), slice(None)]
        for ax in range(nd):
            n, a, b = x.shape[ax + 1], lo[ax], hi[ax]
            src.append(slice(max(-a, 0), n - max(-b, 0)))
            dst.append(slice(max(a, 0), max(a, 0) + n - max(-a, 0) - max(-b, 0)))
        pc[tuple(dst)] = xf[tuple(src)]
    else:
        pc = xf
    out = tuple(_out_size(pc.shape[ax + 2], kernel[ax], stride[ax], kdil[ax]) for ax in range(nd))
    taps = _tap_slices(out, kernel, stride, kdil)
    cols = xp.empty_like(x, shape=(len(taps), c, x.shape[0]) + out, order="C")
    for t, index in enumerate(taps):
        cols[t] = pc[(slice(None),) + index]
    return cols.reshape(len(taps) * c, -1), out


def _conv_direct(x, w, stride, lo, hi, kdil, idil, groups):
    """Pad and dilate, im2col copies and GEMMs by blocks of examples (per group)."""
    kernel = tuple(w.shape[1:-1])
    c_out = w.shape[0]
    if groups == 1:
        p = _pad_dilate(x, lo, hi, idil)
        if p.shape[-1] > 1 and p.strides[-1] != p.itemsize:
            p = p.copy()
        view, out = _window_view(p, kernel, stride, kdil)
        n, width = p.shape[0], math.prod(kernel) * p.shape[-1]
        wt = w.reshape(c_out, width).T
        rows = math.prod(out)
        blocks = _batch_blocks(n, rows, width * p.itemsize)
        if len(blocks) == 1 or p.dtype not in _BLAS_TYPES or w.dtype != p.dtype:
            y = xp.matmul(view.reshape(n * rows, width), wt)
            return y.reshape((n,) + out + (c_out,))
        y = xp.empty_like(p, shape=(n, rows, c_out), order="C")
        for b in blocks:
            k = b.stop - b.start
            xp.matmul(view[b].reshape(k * rows, width), wt, out=y[b].reshape(k * rows, c_out))
        return y.reshape((n,) + out + (c_out,))
    cols, out = _columns(_pad_dilate(x, lo, hi, idil), kernel, stride, kdil, groups)
    og = c_out // groups
    y = xp.matmul(cols, w.reshape(groups, og, cols.shape[-1]).transpose(0, 2, 1))
    y = y.transpose(1, 0, 2).reshape(cols.shape[1], c_out)
    return y.reshape((x.shape[0],) + out + (c_out,))


def _conv_phased(x, w, lo: tuple, hi: tuple, idil: tuple, groups: int):
    """A stride-1 convolution of ``x`` spread out by ``idil``, without the zeros.

    Output positions ``j`` with the same ``(j - lo) mod idil`` (per axis) read the input only
    through the taps ``k = -(j - lo) mod idil (+ multiples of idil)``: each such phase is a
    stride-1 convolution of the undilated input with that sub-kernel, written to every
    ``idil``-th output (``prod(idil)`` GEMMs that together do the work of one, with no
    multiplication by an inserted zero).
    """
    nd = x.ndim - 2
    kernel, spatial = tuple(w.shape[1:-1]), tuple(x.shape[1:-1])
    out = tuple(
        (n - 1) * d + 1 + a + b - k + 1 for n, d, a, b, k in zip(spatial, idil, lo, hi, kernel)
    )
    y = xp.zeros_like(x, shape=(x.shape[0],) + out + (w.shape[0],), order="C")
    per_axis = []
    for ax in range(nd):
        d, k, n = idil[ax], kernel[ax], spatial[ax]
        phases = []
        for j0 in range(min(d, out[ax])):
            k0 = (lo[ax] - j0) % d
            if k0 >= k:
                continue  # no tap reaches an input element: zeros
            count = (out[ax] - j0 + d - 1) // d
            base = (j0 - lo[ax] + k0) // d
            sub = len(range(k0, k, d))
            phases.append((j0, k0, -base, count + sub - 1 - n + base))
        per_axis.append(phases)
    for combo in itertools.product(*per_axis):
        ws = w[(slice(None),) + tuple(slice(c[1], None, d) for c, d in zip(combo, idil))]
        lo2 = tuple(c[2] for c in combo)
        hi2 = tuple(c[3] for c in combo)
        ones = (1,) * nd
        part = _conv_direct(x, ws, ones, lo2, hi2, ones, ones, groups)
        y[(slice(None),) + tuple(slice(c[0], None, d) for c, d in zip(combo, idil))] = part
    return y


def _flipped(w, nd: int):
    return w[(slice(None),) + (slice(None, None, -1),) * nd]


@_opaque
def _conv_few_kernel(x, w, stride, lo, hi, kdil, flip):
    """``_conv_kernel`` on the few-channel path, also returning the columns (kept for the
    weight gradient, which then needs no second copy of the taps)."""
    cols, out = _tap_columns(x, tuple(w.shape[1:-1]), stride, lo, hi, kdil)
    w = _flipped(w, x.ndim - 2) if flip else w
    y = xp.matmul(cols.T, w.reshape(w.shape[0], cols.shape[0]).T)
    return y.reshape((x.shape[0],) + out + (w.shape[0],)), cols


@_opaque
def _cols_weight_kernel(g, cols, kernel, flip):
    """The weight gradient from a forward's kept few-channel columns (``_conv_few_kernel``)."""
    if g.size == 0:  # an empty batch: the weight gets nothing
        c = cols.shape[0] // math.prod(kernel)
        return xp.zeros_like(g, shape=(g.shape[-1],) + tuple(kernel) + (c,))
    gw = xp.matmul(g.reshape(cols.shape[1], -1).T, cols.T)
    gw = gw.reshape((g.shape[-1],) + tuple(kernel) + (cols.shape[0] // math.prod(kernel),))
    return _flipped(gw, len(kernel)) if flip else gw


_COLS: dict = {}  # id of a recorded few-channel conv's output -> (weak ref to it, its columns)


def _keep_columns(y, cols) -> None:
    """Keep a forward's columns for its weight's rule (which takes them); gone with ``y``."""
    try:
        ref = weakref.ref(y)
    except TypeError:  # a backend value without weak references: no reuse
        return
    _COLS[id(y)] = (ref, cols)
    weakref.finalize(y, _COLS.pop, id(y), None)


@_opaque
def _conv_kernel(x, w, stride, lo, hi, kdil, idil, groups, flip):
    """The convolution of ``x`` (``(N, *spatial, C)``) with ``w`` (``(O, *kernel, C / g)``)."""
    nd = x.ndim - 2
    if flip:
        w = _flipped(w, nd)
    y = onednn.conv_forward(x, w, stride, lo, hi, kdil, idil, groups)
    if y is not None:
        return y
    if any(d > 1 for d in idil) and all(s == 1 for s in stride) and all(d == 1 for d in kdil):
        y = _conv_phased(x, w, lo, hi, idil, groups)
    else:
        y = _conv_direct(x, w, stride, lo, hi, kdil, idil, groups)
    return y if y.dtype == x.dtype else y.astype(x.dtype)


@_opaque
def _conv_weight_kernel(x, g, kernel, stride, lo, hi, kdil, idil, groups, flip):
    """The weight gradient of ``conv``: the input's windows against the cotangent ``g``."""
    nd = x.ndim - 2
    c_out = g.shape[-1]
    if g.size == 0:  # an empty batch: the weight gets nothing
        return xp.zeros_like(x, shape=(c_out,) + tuple(kernel) + (x.shape[-1] // groups,))
    gw = onednn.conv_backward_weights(x, g, kernel, stride, lo, hi, kdil, idil, groups)
    if gw is not None:
        return _flipped(gw, nd) if flip else gw
    if _few_channels(x, kernel, stride, idil, groups) and g.dtype == x.dtype:
        cols = _tap_columns(x, kernel, stride, lo, hi, kdil)[0]
        return _cols_weight_kernel(g, cols, kernel, flip)
    p = _pad_dilate(x, lo, hi, idil)
    row_bytes = math.prod(kernel) * p.shape[-1] * p.itemsize
    blocks = _batch_blocks(p.shape[0], math.prod(g.shape[1:-1]), row_bytes)
    if groups == 1 and len(blocks) > 1 and p.dtype in _BLAS_TYPES and g.dtype == p.dtype:
        # by blocks of examples, each block's windows copied and multiplied while in cache
        if p.shape[-1] > 1 and p.strides[-1] != p.itemsize:
            p = p.copy()
        view, out = _window_view(p, kernel, stride, kdil)
        width = math.prod(kernel) * p.shape[-1]
        gw = None
        for b in blocks:
            k = (b.stop - b.start) * math.prod(out)
            part = xp.matmul(g[b].reshape(k, c_out).T, view[b].reshape(k, width))
            gw = part if gw is None else xp.add(gw, part, out=gw)
    else:
        cols, out = _columns(p, kernel, stride, kdil, groups)
        og = c_out // groups
        gw = xp.matmul(g.reshape(cols.shape[1], groups, og).transpose(1, 2, 0), cols)
    gw = gw.reshape((c_out,) + tuple(kernel) + (x.shape[-1] // groups,))
    if flip:
        gw = _flipped(gw, nd)
    return gw if gw.dtype == x.dtype else gw.astype(x.dtype)


# -- the convolution primitive -------------------------------------------------------------------


def _conv_vjp_input(g, ans, x, w, stride, lo, hi, kdil, idil, groups, flip):
    # col2im when it moves less than the transposed convolution's windows (LeNet's 6 -> 16: 2x),
    # except strided windows of several taps (ResNet's 16 -> 32 3x3 stride 2: phases 1.15x faster)
    col2im = _COL2IM[0]
    if col2im is None and onednn.takes((g._data, w._data), lo, hi, idil):
        col2im = True  # oneDNN's backward-data kernel
    if col2im is None:
        few_taps = max(stride) == 1 or math.prod(w.shape[1:-1]) == 1
        col2im = w.shape[0] // groups > w.shape[-1] and few_taps
    if col2im:
        return conv_input_prim(g, w, x.shape[1:-1], stride, lo, hi, kdil, idil, groups, flip)
    return _conv_vjp_input_as_conv(g, ans, x, w, stride, lo, hi, kdil, idil, groups, flip)


_COL2IM: list = [None]  # force one form of the input gradient (tests): True, False or None


def _conv_vjp_input_as_conv(g, ans, x, w, stride, lo, hi, kdil, idil, groups, flip):
    """The input gradient as a convolution of the cotangent (spread out by ``stride``, padded
    to "full") with the flipped, channel-transposed weight."""
    nd = x.ndim - 2
    kernel, c_out, cg = w.shape[1:-1], w.shape[0], w.shape[-1]
    og = c_out // groups
    # (C_out, *K, cg) -> (C_in, *K, og): per group, the channel axes swap
    wt = ops.reshape(w, (groups, og) + kernel + (cg,))
    wt = ops.transpose(wt, (0, nd + 2) + tuple(range(2, nd + 2)) + (1,))
    wt = ops.reshape(wt, (groups * cg,) + kernel + (og,))
    lo2, hi2 = [], []
    for ax in range(nd):
        k, d, s, i = kernel[ax], kdil[ax], stride[ax], idil[ax]
        n, o = x.shape[ax + 1], g.shape[ax + 1]
        a = (k - 1) * d - lo[ax]
        lo2.append(a)
        hi2.append((n - 1) * i + (k - 1) * d + 1 - ((o - 1) * s + 1) - a)
    return conv_prim(g, wt, idil, tuple(lo2), tuple(hi2), kdil, stride, groups, not flip)


def _conv_vjp_weight(g, ans, x, w, stride, lo, hi, kdil, idil, groups, flip):
    kernel = tuple(w.shape[1:-1])
    if not STATE.enabled and ans is not None:
        entry = _COLS.pop(id(ans._data), None)
        if entry is not None and entry[0]() is ans._data and g._data.dtype == x._data.dtype:
            return _from_value(_cols_weight_kernel(g._data, entry[1], kernel, flip))
    return conv_weight_prim(x, g, kernel, stride, lo, hi, kdil, idil, groups, flip)


def _conv_weight_vjp_input(gg, ans, x, g, kernel, stride, lo, hi, kdil, idil, groups, flip):
    # the weight gradient is linear in x: its adjoint is conv's input gradient at weight gg
    return _conv_vjp_input(g, None, x, gg, stride, lo, hi, kdil, idil, groups, flip)


def _conv_weight_vjp_cotangent(gg, ans, x, g, kernel, stride, lo, hi, kdil, idil, groups, flip):
    # ... and linear in g: its adjoint is the convolution itself, with weight gg
    return conv_prim(x, gg, stride, lo, hi, kdil, idil, groups, flip)


def _conv_weight_batch(args, params, ex_ndim):
    (x, nx), (g, ng) = args
    x, g = _operand(x, nx), _operand(g, ng)
    b = x.shape[0] if nx is not None else g.shape[0]
    if nx is None:
        x = ops.broadcast_to(ops.expand_dims(x, 0), (b,) + x.shape)
    if ng is None:
        g = ops.broadcast_to(ops.expand_dims(g, 0), (b,) + g.shape)
    # the batch becomes groups (channels ordered batch, group, c), as for a batched weight
    c_out = g.shape[-1]
    xb = ops.reshape(ops.moveaxis(x, 0, -2), x.shape[1:-1] + (b * x.shape[-1],))
    gb = ops.reshape(ops.moveaxis(g, 0, -2), g.shape[1:-1] + (b * c_out,))
    p = dict(params)
    p["groups"] = b * params["groups"]
    gw = conv_weight_prim(xb, gb, **p)
    return ops.reshape(gw, (b, c_out) + gw.shape[1:])


def _conv_batch(args, params, ex_ndim):
    (x, nx), (w, nw) = args
    x, w = _operand(x, nx), _operand(w, nw)
    if nw is None:  # the batch joins the examples' own batch axis
        b, n = x.shape[:2]
        y = conv_prim(ops.reshape(x, (b * n,) + x.shape[2:]), w, **params)
        return ops.reshape(y, (b, n) + y.shape[1:])
    b = w.shape[0]
    if nx is None:
        x = ops.broadcast_to(ops.expand_dims(x, 0), (b,) + x.shape)
    # one weight per example: the batch becomes groups (channels ordered batch, group, c)
    n, c, c_out = x.shape[1], x.shape[-1], w.shape[1]
    xb = ops.reshape(ops.moveaxis(x, 0, -2), (n,) + x.shape[2:-1] + (b * c,))
    wb = ops.reshape(w, (b * c_out,) + w.shape[2:])
    p = dict(params)
    p["groups"] = b * params["groups"]
    y = conv_prim(xb, wb, **p)
    y = ops.reshape(y, y.shape[:-1] + (b, c_out))
    return ops.moveaxis(y, -2, 0)


_CONV = defprim("conv", _conv_vjp_input, _conv_vjp_weight, batch=_conv_batch)


def conv_prim(
    x: array,
    w: array,
    stride: tuple,
    lo: tuple,
    hi: tuple,
    kdil: tuple,
    idil: tuple,
    groups: int,
    flip: bool,
) -> array:
    """The ``conv`` primitive on checked arguments (one dtype, per-axis tuples)."""
    xd, wd = x._data, w._data
    cols = None
    few = _few_channels(xd, tuple(wd.shape[1:-1]), stride, idil, groups) and wd.dtype == xd.dtype
    if few and not onednn.takes((xd, wd), lo, hi, idil):
        out, cols = _conv_few_kernel(xd, wd, stride, lo, hi, kdil, flip)
    else:
        out = _conv_kernel(xd, wd, stride, lo, hi, kdil, idil, groups, flip)
    params = {
        "stride": stride,
        "lo": lo,
        "hi": hi,
        "kdil": kdil,
        "idil": idil,
        "groups": groups,
        "flip": flip,
    }
    y = _rec(_CONV, out, (x, w), params)
    if cols is not None and y._node is not None and w._node is not None:
        _keep_columns(out, cols)
    return y


_CONV_WEIGHT = defprim(
    "conv_weight",
    _conv_weight_vjp_input,
    _conv_weight_vjp_cotangent,
    batch=_conv_weight_batch,
)


def conv_weight_prim(
    x: array,
    g: array,
    kernel: tuple,
    stride: tuple,
    lo: tuple,
    hi: tuple,
    kdil: tuple,
    idil: tuple,
    groups: int,
    flip: bool,
) -> array:
    """The gradient of ``conv`` for its weight, given the input ``x`` and the cotangent ``g``."""
    out = _conv_weight_kernel(x._data, g._data, kernel, stride, lo, hi, kdil, idil, groups, flip)
    params = {
        "kernel": kernel,
        "stride": stride,
        "lo": lo,
        "hi": hi,
        "kdil": kdil,
        "idil": idil,
        "groups": groups,
        "flip": flip,
    }
    return _rec(_CONV_WEIGHT, out, (x, g), params)


def _crop_undilate(p, spatial: tuple, lo: tuple, idil: tuple):
    """The inverse of ``_pad_dilate``'s placement: the elements of ``p`` where the input's
    elements were put (zeros for those the padding cropped away)."""
    nd = len(spatial)
    src, dst, whole = [slice(None)], [slice(None)], True
    for ax in range(nd):
        n, d, a, total = spatial[ax], idil[ax], lo[ax], p.shape[ax + 1]
        j0 = (-a + d - 1) // d if a < 0 else 0
        j1 = min(n, (total - 1 - a) // d + 1) if total - 1 - a >= 0 else 0
        j1 = max(j1, j0)
        whole = whole and j0 == 0 and j1 == n
        dst.append(slice(j0, j1))
        src.append(slice(a + j0 * d, a + (j1 - 1) * d + 1 if j1 > j0 else a + j0 * d, d))
    if whole:
        return p[tuple(src)]
    out = xp.zeros_like(p, shape=(p.shape[0],) + tuple(spatial) + (p.shape[-1],), order="C")
    out[tuple(dst)] = p[tuple(src)]
    return out


def _col2im_shifted(g, w, padded: tuple):
    """Stride-1 col2im (``(N, *padded, C_in)``): one GEMM, the cotangent laid channels-first
    on the padded grid (zeros past the output but along the first axis), so each tap's share
    is a slab added at a flat offset (LeNet's 6 -> 16 input gradient: 1.08 -> 0.91 ms)."""
    n, out, c_out = g.shape[0], g.shape[1:-1], g.shape[-1]
    kernel, c = tuple(w.shape[1:-1]), w.shape[-1]
    gf = xp.zeros_like(g, shape=(c_out, n, out[0]) + padded[1:], order="C")
    gf[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)] = xp.moveaxis(g, -1, 0)
    z = xp.matmul(w.reshape(c_out, -1).T, gf.reshape(c_out, -1))
    z = z.reshape((math.prod(kernel), c, n, -1))  # (taps, C_in, N, grid)
    size, length = math.prod(padded), z.shape[-1]
    p = xp.zeros_like(g, shape=(c, n, size), order="C")
    for t, tap in enumerate(itertools.product(*(range(k) for k in kernel))):
        at = sum(a * math.prod(padded[ax + 1 :]) for ax, a in enumerate(tap))
        p[:, :, at : at + length] += z[t, :, :, : size - at]  # (cut: zeros past the output)
    return xp.moveaxis(p.reshape((c, n) + padded), 0, -1).copy()  # (C order)


@_opaque
def _conv_input_kernel(g, w, spatial, stride, lo, hi, kdil, idil, groups, flip):
    """The input gradient of ``conv``: one GEMM of the cotangent with the weight gives every
    window's share, added back where the window was read (col2im)."""
    nd = g.ndim - 2
    if flip:
        w = _flipped(w, nd)
    if g.size == 0:  # an empty batch (or output): nothing reaches the input
        return xp.zeros_like(g, shape=(g.shape[0],) + tuple(spatial) + (w.shape[-1] * groups,))
    y = onednn.conv_backward_data(g, w, spatial, stride, lo, hi, kdil, idil, groups)
    if y is not None:
        return y
    n, out = g.shape[0], tuple(g.shape[1:-1])
    c_out, kernel, cg = w.shape[0], tuple(w.shape[1:-1]), w.shape[-1]
    c, m, taps = cg * groups, n * math.prod(out), math.prod(kernel)
    padded = tuple(max((s - 1) * d + 1, 0) + a + b for s, d, a, b in zip(spatial, idil, lo, hi))
    disjoint = all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel, stride, kdil))
    shifted = groups == 1 and all(d == 1 for d in stride + kdil + idil) and 1 < taps and c < 16
    if shifted and g.dtype in _BLAS_TYPES and w.dtype == g.dtype:  # (few C_in: slower at 64)
        return _crop_undilate(_col2im_shifted(g, w, padded), tuple(spatial), lo, idil)
    p = xp.zeros_like(g, shape=(n,) + padded + (c,), order="C")
    if groups == 1:
        # one GEMM per tap into tap-major slabs: each add reads a contiguous slab and writes rows
        # of out_w * C contiguous values (a window-major array would give runs of C)
        wt = w.reshape(c_out, taps, cg).transpose(1, 0, 2)
        tap_index = _tap_slices(out, kernel, stride, kdil)
        rows = math.prod(out)
        for b in _batch_blocks(n, rows, taps * c * g.itemsize, _COL2IM_BLOCK_BYTES):
            e = b.stop - b.start
            slabs = xp.matmul(g[b].reshape(e * rows, c_out), wt).reshape((taps, e) + out + (c,))
            for k, index in enumerate(tap_index):
                where = (b,) + index[1:]
                if disjoint:
                    p[where] = slabs[k]
                else:
                    p[where] += slabs[k]
    else:
        og = c_out // groups
        g3 = g.reshape(m, groups, og).transpose(1, 0, 2)
        cols = xp.matmul(g3, w.reshape(groups, og, taps * cg))  # (G, m, taps * cg)
        cols = xp.moveaxis(cols.reshape(groups, m, taps, cg), 0, 2)
        cols = cols.reshape((n,) + out + kernel + (c,))
        if disjoint:
            view, _ = _window_view(p, kernel, stride, kdil)  # disjoint windows: one write
            view[...] = cols
        else:
            lead = (slice(None),) * (nd + 1)
            for t, index in zip(
                itertools.product(*(range(k) for k in kernel)),
                _tap_slices(out, kernel, stride, kdil),
            ):
                p[index] += cols[lead + t]
    y = _crop_undilate(p, tuple(spatial), lo, idil)
    return y if y.dtype == g.dtype else y.astype(g.dtype)


def _conv_input_vjp_cotangent(gg, ans, g, w, spatial, stride, lo, hi, kdil, idil, groups, flip):
    # linear in the cotangent: its adjoint is the convolution itself
    return conv_prim(gg, w, stride, lo, hi, kdil, idil, groups, flip)


def _conv_input_vjp_weight(gg, ans, g, w, spatial, stride, lo, hi, kdil, idil, groups, flip):
    kernel = tuple(w.shape[1:-1])
    return conv_weight_prim(gg, g, kernel, stride, lo, hi, kdil, idil, groups, flip)


def _conv_input_batch(args, params, ex_ndim):
    (g, ng), (w, nw) = args
    g, w = _operand(g, ng), _operand(w, nw)
    if nw is None:
        b, n = g.shape[:2]
        y = conv_input_prim(ops.reshape(g, (b * n,) + g.shape[2:]), w, **params)
        return ops.reshape(y, (b, n) + y.shape[1:])
    b = w.shape[0]
    if ng is None:
        g = ops.broadcast_to(ops.expand_dims(g, 0), (b,) + g.shape)
    c_out, c = w.shape[1], w.shape[-1] * params["groups"]
    gb = ops.reshape(ops.moveaxis(g, 0, -2), g.shape[1:-1] + (b * c_out,))
    wb = ops.reshape(w, (b * c_out,) + w.shape[2:])
    p = dict(params)
    p["groups"] = b * params["groups"]
    y = conv_input_prim(gb, wb, **p)
    y = ops.reshape(y, y.shape[:-1] + (b, c))
    return ops.moveaxis(y, -2, 0)


_CONV_INPUT = defprim(
    "conv_input",
    _conv_input_vjp_cotangent,
    _conv_input_vjp_weight,
    batch=_conv_input_batch,
)


def conv_input_prim(
    g: array,
    w: array,
    spatial: tuple,
    stride: tuple,
    lo: tuple,
    hi: tuple,
    kdil: tuple,
    idil: tuple,
    groups: int,
    flip: bool,
) -> array:
    """The gradient of ``conv`` for its input (spatial shape ``spatial``), given the cotangent
    ``g`` and the weight ``w``: a GEMM and col2im (no inserted zeros, no "full" padding)."""
    out = _conv_input_kernel(g._data, w._data, spatial, stride, lo, hi, kdil, idil, groups, flip)
    params = {
        "spatial": spatial,
        "stride": stride,
        "lo": lo,
        "hi": hi,
        "kdil": kdil,
        "idil": idil,
        "groups": groups,
        "flip": flip,
    }
    return _rec(_CONV_INPUT, out, (g, w), params)


@functools.lru_cache(maxsize=512)
def _tap_slices(out: tuple, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """The index (into ``(N, *spatial, C)``) of each tap's strided slice, row-major taps
    (cached: every pooling and col2im call asks for the same few)."""
    taps = []
    for t in itertools.product(*(range(k) for k in kernel)):
        index: tuple = (slice(None),)
        for tap, o, s, d in zip(t, out, stride, dilation):
            index += (slice(tap * d, tap * d + (o - 1) * s + 1, s),)
        taps.append(index)
    return tuple(taps)


def _check_extent(spatial: tuple, kernel: tuple, dilation: tuple, who: str) -> None:
    if any(n < (k - 1) * d + 1 for n, k, d in zip(spatial, kernel, dilation)):
        raise ValueError(
            f"{who}: the (padded) input has spatial shape {tuple(spatial)}, smaller than the "
            f"kernel's extent {tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))}"
        )


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
    kernel = tuple(w.shape[1:-1])
    padded = tuple(
        max((n - 1) * d + 1, 0) + a + b for n, d, a, b in zip(x.shape[1:-1], idil, lo, hi)
    )
    _check_extent(padded, kernel, kdil, who)
    dx, dw = x._data.dtype, w._data.dtype
    if dx != dw:
        t = _dt.promote(dx, dw)
        x, w = ops.astype(x, _dt.from_np(t)), ops.astype(w, _dt.from_np(t))
    return conv_prim(x, w, stride, lo, hi, kdil, idil, groups, bool(flip))


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

    The arguments are ``conv2d``'s, one value per axis; returns ``(N, L_out, C_out)``.
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

    The arguments are ``conv2d``'s; returns ``(N, D_out, H_out, W_out, C_out)``.
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

    The arguments are ``conv_transpose2d``'s, one value per axis. Returns ``(N, (L - 1) *
    stride - 2 * padding + dilation * (K - 1) + output_padding + 1, C_out)``.
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

    The arguments are ``conv_transpose2d``'s; returns ``(N, D_out, H_out, W_out, C_out)``.
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
