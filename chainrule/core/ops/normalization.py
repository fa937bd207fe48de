"""Batch normalisation in training mode as one primitive (``batch_norm_train``).

``y = (x - mean) * rsqrt(var + eps) * weight + bias`` with the statistics taken over every axis
but the last (channels last; the PyTorch front door hands its channels-first tensors over as
channels-last views). As a composite it costs eight full-size operations forward (and keeps
six full-size intermediates alive in the graph) and more backward; here the forward is one
kernel (per-channel sums as BLAS matrix-vector products, broadcasts over rows tiled to long
inner loops, the output written into the one temporary) and the node keeps only ``x``, the
output and the per-channel statistics.

The VJP is the closed form ``dx = w * invstd * (g - mean(g) - xhat * mean(g * xhat))``,
``dw = sum(g * xhat)``, ``db = sum(g)``. When the backward pass is not recorded it runs as one
kernel on backend values, reusing the saved statistics (the first rule called for a node
computes all three cotangents and leaves ``dw`` and ``db`` for the rules after it); when it is
recorded (``grad`` of ``grad``, ``jvp``, ``create_graph``) the same formula is written with
chainrule operations on ``x``, statistics recomputed, so it differentiates again. The batching
rule folds the batch axis into the channels (each example keeps its own statistics).
"""

from __future__ import annotations

import weakref

from ..array import STATE, _from_value, array
from ..backend import xp
from ..tracing import kernel
from .table import _operand, _rec, defprim

__all__ = ["batch_norm_train"]

_TILE = 1024  # elements per inner loop of a tiled row broadcast


def _tiled(rows, vec):
    """``rows`` (``(M, C)``, C-contiguous) and ``vec`` (``(C,)``) as ``(M / k, k * C)`` and
    ``(k * C,)``: the same broadcast with a long inner loop (NumPy's loop over ``C = 16``
    values per row costs 3x the elementwise pass)."""
    m, c = rows.shape
    if c >= _TILE or not rows.flags.c_contiguous:
        return rows, vec
    k = 1
    while k * 2 * c <= _TILE and m % (k * 2) == 0:
        k *= 2
    if k == 1:
        return rows, vec
    return rows.reshape(m // k, k * c), vec[None].repeat(k, 0).reshape(k * c)


def _rowwise(ufunc, rows, vec, out=None):
    """``ufunc(rows, vec)`` broadcast over rows (into ``out``, shaped like ``rows``)."""
    a, v = _tiled(rows, vec)
    if out is None:
        return ufunc(a, v).reshape(rows.shape)
    ufunc(a, v, out=out.reshape(a.shape))
    return out


def _ones(m: int, like):
    return xp.ones(m, dtype=like.dtype) if type(like) is xp.ndarray else xp.ones_like(like[:, 0])


@kernel
def _bn_forward_kernel(x, w, b, eps):
    """``(y, mean, var, invstd)``: the normalised ``x`` (shape kept) and the per-channel
    statistics (biased variance)."""
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    m = rows.shape[0]
    ones = _ones(m, rows)
    mean = (ones @ rows) / m
    xc = _rowwise(xp.subtract, rows, mean)
    if not xc.flags.c_contiguous:
        xc = xc.copy()
    var = (ones @ (xc * xc)) / m
    invstd = 1.0 / xp.sqrt(var + eps)
    scale = invstd if w is None else w * invstd
    y = _rowwise(xp.multiply, xc, scale, out=xc)
    if b is not None:
        y = _rowwise(xp.add, y, b, out=y)
    return y.reshape(x.shape), mean, var, invstd


@kernel
def _bn_backward_kernel(g, x, w, mean, invstd):
    """``(dx, dw, db)`` of ``batch_norm_train`` from the saved statistics."""
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    gr = g.reshape(-1, c)
    if not gr.flags.c_contiguous:
        gr = gr.copy()
    m = rows.shape[0]
    ones = _ones(m, gr)
    sg = ones @ gr
    xc = _rowwise(xp.subtract, rows, mean)
    if not xc.flags.c_contiguous:
        xc = xc.copy()
    t = gr * xc
    sgx = ones @ t
    a = invstd if w is None else w * invstd
    k1 = a * invstd * invstd * sgx / m
    k2 = a * sg / m
    # dx = a * g - (xc * k1 + k2)
    u = _rowwise(xp.multiply, xc, k1, out=xc)
    u = _rowwise(xp.add, u, k2, out=u)
    t = _rowwise(xp.multiply, gr, a, out=t)
    xp.subtract(t, u, out=t)
    return t.reshape(g.shape), sgx * invstd, sg


class _Stash:
    """``dw`` and ``db`` computed by the first rule of a node, for the rules after it."""

    __slots__ = ("params", "gref", "dw", "db")

    def __init__(self) -> None:
        self.params = None
        self.gref = None
        self.dw = None
        self.db = None


_STASH = _Stash()


def _ref(v):
    """A weak reference to a backend value (a strong one where the type refuses weak ones)."""
    try:
        return weakref.ref(v)
    except TypeError:
        return lambda: v


def _roles(has_w: bool, has_b: bool) -> tuple:
    return ("x",) + (("w",) if has_w else ()) + (("b",) if has_b else ())


def _bn_vjp(g, ans, x, *wb, argnum, eps, has_w, has_b, stats):
    role = _roles(has_w, has_b)[argnum]
    w = wb[0] if has_w else None
    gd = g._data
    if not STATE.enabled and stats is not None and type(gd) is type(x._data):
        s = _STASH
        if role != "x" and s.params is stats and s.gref is not None and s.gref() is gd:
            out = s.dw if role == "w" else s.db
            if role == "b" or not has_b:  # the node's last rule: let go of the cotangent
                s.params = s.gref = s.dw = s.db = None
        else:
            mu, invstd = stats
            wd = None if w is None else w._data
            dx, dw, db = _bn_backward_kernel(gd, x._data, wd, mu, invstd)
            s.params, s.gref, s.dw, s.db = stats, _ref(gd), dw, db
            out = {"x": dx, "w": dw, "b": db}[role]
        return _from_value(out)
    return _bn_vjp_recorded(g, x, w, role, eps)


def _bn_vjp_recorded(g: array, x: array, w, role: str, eps: float) -> array:
    """The closed form with chainrule operations (statistics recomputed from ``x``)."""
    axes = tuple(range(x.ndim - 1))
    if role == "b":
        return sum(g, axis=axes)
    xc = x - mean(x, axis=axes, keepdims=True)
    invstd = rsqrt(mean(xc * xc, axis=axes, keepdims=True) + eps)
    xhat = xc * invstd
    if role == "w":
        return sum(g * xhat, axis=axes)
    a = invstd if w is None else invstd * w
    gm = mean(g, axis=axes, keepdims=True)
    gxm = mean(g * xhat, axis=axes, keepdims=True)
    return a * (g - gm - xhat * gxm)


def _bn_batch(args, params, ex_ndim):
    vals = [_operand(v, n) for v, n in args]
    nds = [n for _, n in args]
    b = next(v.shape[0] for v, n in zip(vals, nds) if n is not None)
    x = vals[0]
    if nds[0] is None:
        x = broadcast_to(expand_dims(x, 0), (b,) + x.shape)
    c = x.shape[-1]
    # the batch joins the channels: (B, ..., C) -> (..., B * C), so each example keeps its stats
    moved = moveaxis(x, 0, -2)
    xb = reshape(moved, moved.shape[:-2] + (b * c,))
    wb = []
    for v, n in zip(vals[1:], nds[1:]):
        if n is None:
            v = broadcast_to(expand_dims(v, 0), (b, c))
        wb.append(reshape(v, (b * c,)))
    w = wb[0] if params["has_w"] else None
    bias = wb[-1] if params["has_b"] else None
    y = batch_norm_train(xb, w, bias, params["eps"])[0]
    return moveaxis(reshape(y, moved.shape), -2, 0)


_BATCH_NORM = defprim(
    "batch_norm_train", _bn_vjp, variadic=True, batch=_bn_batch, holomorphic=False
)


def batch_norm_train(x: array, weight: array | None, bias: array | None, eps: float) -> tuple:
    """Batch normalisation with the batch's statistics over every axis but the last.

    Args:
        x: ``(..., C)``, float32 or float64, at least one value per channel.
        weight: the scale ``(C,)`` or None (x's dtype).
        bias: the shift ``(C,)`` or None (x's dtype).
        eps: added to the variance.

    Returns:
        ``(y, mean, var)``: the normalised array (recorded for differentiation) and the
        per-channel mean and biased variance as backend values (not recorded).
    """
    y, mean, var, invstd = _bn_forward_kernel(
        x._data,
        None if weight is None else weight._data,
        None if bias is None else bias._data,
        eps,
    )
    xs = (x,) + ((weight,) if weight is not None else ()) + ((bias,) if bias is not None else ())
    params = {
        "eps": eps,
        "has_w": weight is not None,
        "has_b": bias is not None,
        "stats": (mean, invstd),
    }
    return _rec(_BATCH_NORM, y, xs, params), mean, var


def fusable(x: array, *vectors: array | None) -> bool:
    """Whether ``batch_norm_train`` serves ``x`` and the per-channel ``vectors``: float32 or
    float64 values of one dtype, a channel axis last, at least one row."""
    d = x._data
    if d.dtype not in _FLOATS or d.ndim < 1 or d.size == 0 or not x.shape[-1]:
        return False
    for v in vectors:
        if v is not None and (v._data.dtype != d.dtype or v.shape != (x.shape[-1],)):
            return False
    return True


_FLOATS = (xp.dtype(xp.float32), xp.dtype(xp.float64))

from .elementwise import rsqrt  # noqa: E402
from .reductions import mean, sum  # noqa: E402
from .shapes import broadcast_to, expand_dims, moveaxis, reshape  # noqa: E402
