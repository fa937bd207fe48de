"""Pooling and sliding windows as primitives, channels-last as in MLX (split from ``conv.py``).

``pool_max`` / ``pool_sum`` are the maximum or sum of the taps' strided slices (one ufunc per
tap; NumPy reduces a short window axis twenty times slower). ``pool_max`` sends each window's
cotangent to its first maximum (PyTorch) or shares it among tied maxima (MLX) through
``window_sum``, the adjoint of ``sliding_windows`` (the windows as ``(N, *out, taps, C)``,
tap-major underneath); each of those two is the other's gradient.
"""

from __future__ import annotations

import math

from . import ops
from .array import STATE, _from_value, array
from .backend import xp
from .conv import _check_extent, _out_size, _tap_slices
from .ops.table import _rec, defprim, value_branch
from .tracing import kernel as _opaque

# -- windows (pooling) ---------------------------------------------------------------------------


@_opaque
def _windows_kernel(x, kernel, stride, dilation):
    # one slab per tap (tap-major memory, long contiguous runs), seen as (N, *out, taps, C)
    out = _pool_geometry(x, kernel, stride, dilation)
    taps = _tap_slices(out, kernel, stride, dilation)
    slabs = xp.empty_like(x, shape=(len(taps), x.shape[0]) + out + (x.shape[-1],), order="C")
    for k, index in enumerate(taps):
        slabs[k] = x[index]
    return xp.moveaxis(slabs, 0, -2)


@_opaque
def _window_sum_kernel(g, spatial, kernel, stride, dilation):
    nd = len(kernel)
    out = tuple(g.shape[1 : nd + 1])
    y = xp.zeros_like(
        g, shape=(g.shape[0],) + tuple(spatial) + (g.shape[-1],), order="C"
    )  # (vmap's mark)
    disjoint = all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel, stride, dilation))
    for k, index in enumerate(_tap_slices(out, kernel, stride, dilation)):
        if disjoint:
            y[index] = g[..., k, :]
        else:
            y[index] += g[..., k, :]
    return y


def _fold_batch(fn):
    def rule(args, params, ex_ndim):
        ((v, nv),) = args
        b, n = v.shape[:2]
        y = fn(ops.reshape(v, (b * n,) + v.shape[2:]), **params)
        return ops.reshape(y, (b, n) + y.shape[1:])

    return rule


def windows_prim(x: array, kernel: tuple, stride: tuple, dilation: tuple) -> array:
    """``(N, *out, prod(kernel), C)``: the windows of ``x`` (``(N, *spatial, C)``), copied once."""
    out = _windows_kernel(x._data, kernel, stride, dilation)
    return _rec(_WINDOWS, out, (x,), {"kernel": kernel, "stride": stride, "dilation": dilation})


def window_sum_prim(
    g: array, spatial: tuple, kernel: tuple, stride: tuple, dilation: tuple
) -> array:
    """The adjoint of ``windows_prim``: each window of ``g`` added back at its place."""
    out = _window_sum_kernel(g._data, spatial, kernel, stride, dilation)
    params = {"spatial": spatial, "kernel": kernel, "stride": stride, "dilation": dilation}
    return _rec(_WINDOW_SUM, out, (g,), params)


_WINDOWS = defprim(
    "sliding_windows",
    lambda g, ans, x, kernel, stride, dilation: window_sum_prim(
        g, tuple(x.shape[1:-1]), kernel, stride, dilation
    ),
    batch=_fold_batch(windows_prim),
)
_WINDOW_SUM = defprim(
    "window_sum",
    lambda g, ans, x, spatial, kernel, stride, dilation: windows_prim(g, kernel, stride, dilation),
    batch=_fold_batch(window_sum_prim),
)


# -- pooling: reductions over the taps --------------------------------------------------------------
#
# NumPy reduces a short axis slowly (a max over 4 taps of a copied window array costs twenty
# times the elementwise ``maximum`` of the 4 strided tap slices), so the pooling kernels combine
# the taps' strided slices with whole-array ufuncs, one per tap, and never copy the windows.


def _pool_geometry(x, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    nd = len(kernel)
    return tuple(
        _out_size(x.shape[ax + 1], kernel[ax], stride[ax], dilation[ax]) for ax in range(nd)
    )


@_opaque
def _pool_kernel(x, kernel, stride, dilation, op):
    taps = _tap_slices(_pool_geometry(x, kernel, stride, dilation), kernel, stride, dilation)
    ufunc, first = xp.maximum if op == "max" else xp.add, x[taps[0]]
    if len(taps) == 1:
        return first.copy()
    y = ufunc(first, x[taps[1]], out=xp.empty_like(first, shape=first.shape, order="C"))
    for index in taps[2:]:
        ufunc(y, x[index], out=y)
    return y


@value_branch
def _pool_hits(x, ans, kernel, stride, dilation, first) -> list:
    """Per tap, which windows send it their maximum's gradient: the first tap holding the
    maximum (row-major; a NaN maximum: the first NaN) with ``first``, as PyTorch; else every
    tap equal to it (ties share, as MLX's ``max``)."""
    nan = ans != ans
    nans = bool(nan.any())  # (reads values only to skip the NaN test: a value branch)
    hits = []
    free = xp.ones_like(nan) if first else None  # windows whose first maximum is still ahead
    for index in _tap_slices(ans.shape[1:-1], kernel, stride, dilation):
        v = x[index]
        hit = v == ans
        if nans:
            hit |= nan & (v != v)
        if free is not None:
            hit &= free
            free ^= hit
        hits.append(hit)
    return hits


@_opaque
@value_branch
def _max_mask(x, ans, kernel, stride, dilation, first):
    """``(N, *out, taps, C)``: which taps receive a window maximum's gradient."""
    return xp.stack(_pool_hits(x, ans, kernel, stride, dilation, first), axis=-2)


@_opaque
@value_branch
def _pool_max_grad_kernel(x, ans, g, kernel, stride, dilation, first):
    """``pool_max``'s input gradient, unrecorded: each tap's slice gets ``g`` times its hits
    (no mask over all taps, ``where`` and window sum; a masked copy is 6x slower)."""
    taps = _tap_slices(ans.shape[1:-1], kernel, stride, dilation)
    disjoint = all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel, stride, dilation))
    dx = xp.zeros_like(g, shape=x.shape, order="C")  # (channels-last memory, as window_sum's)
    # (a value branch) a product with the mask would turn a non-finite cotangent into NaN
    finite = bool(xp.isfinite(g).all())
    hits = _pool_hits(x, ans, kernel, stride, dilation, first)
    if not first:  # ties share equally (every window holds its maximum at least once)
        count = hits[0].astype(g.dtype)
        for hit in hits[1:]:
            count += hit
        g = g / count
    for index, hit in zip(taps, hits):
        if disjoint and finite:
            xp.multiply(g, hit, out=dx[index])
        elif disjoint:
            dx[index] = xp.where(hit, g, 0)
        else:
            dx[index] += g * hit if finite else xp.where(hit, g, 0)
    return dx


def _pool_max_vjp(g, ans, x, kernel, stride, dilation, first):
    if not STATE.enabled and type(g._data) is type(x._data):
        gd = _pool_max_grad_kernel(x._data, ans._data, g._data, kernel, stride, dilation, first)
        return _from_value(gd)
    mask = _from_value(_max_mask(x._data, ans._data, kernel, stride, dilation, first))
    ge = ops.expand_dims(g, -2)
    if not first:  # ties share the cotangent equally
        ge = ge / ops.sum(mask, axis=-2, keepdims=True).astype(g.dtype)
    return window_sum_prim(ops.where(mask, ge, 0.0), tuple(x.shape[1:-1]), kernel, stride, dilation)


def _pool_sum_vjp(g, ans, x, kernel, stride, dilation):
    spread = ops.expand_dims(g, -2)
    spread = ops.broadcast_to(spread, g.shape[:-1] + (math.prod(kernel), g.shape[-1]))
    return window_sum_prim(spread, tuple(x.shape[1:-1]), kernel, stride, dilation)


def pool_max(x: array, kernel: tuple, stride: tuple, dilation: tuple, first: bool) -> array:
    """The maximum of each window of ``x`` (``(N, *spatial, C)``, already padded).

    Args:
        x: the input, channels last.
        kernel: window size per spatial axis.
        stride: step between windows.
        dilation: spacing between taps.
        first: the gradient goes to each window's first maximum (PyTorch) instead of being
            shared among tied maxima (MLX).

    Returns:
        ``(N, *out, C)``.
    """
    out = _pool_kernel(x._data, kernel, stride, dilation, "max")
    params = {"kernel": kernel, "stride": stride, "dilation": dilation, "first": first}
    return _rec(_POOL_MAX, out, (x,), params)


def pool_sum(x: array, kernel: tuple, stride: tuple, dilation: tuple) -> array:
    """The sum of each window of ``x`` (``(N, *spatial, C)``, already padded): ``(N, *out, C)``.

    Args:
        x: the input, channels last.
        kernel: window size per spatial axis.
        stride: step between windows.
        dilation: spacing between taps.

    Returns:
        ``(N, *out, C)``.
    """
    out = _pool_kernel(x._data, kernel, stride, dilation, "sum")
    return _rec(_POOL_SUM, out, (x,), {"kernel": kernel, "stride": stride, "dilation": dilation})


_POOL_MAX = defprim("pool_max", _pool_max_vjp, batch=_fold_batch(pool_max))
_POOL_SUM = defprim("pool_sum", _pool_sum_vjp, batch=_fold_batch(pool_sum))


def _sliding_windows(
    x: array, kernel: tuple, stride: tuple, dilation: tuple | None = None, who: str = "conv"
) -> array:
    """The windows of ``x`` (``(N, *spatial, C)``) stacked as ``(N, *out, prod(kernel), C)``.

    Window tap ``k`` (in row-major order over ``kernel``) sits at index ``k`` of axis -2. One
    primitive: the forward copies a strided view once, the gradient adds the windows back.
    """
    nd = len(kernel)
    dilation = tuple(dilation or (1,) * nd)
    x = x if type(x) is array else array(x)
    _check_extent(x.shape[1:-1], tuple(kernel), dilation, who)
    return windows_prim(x, tuple(kernel), tuple(stride), dilation)
