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

``lead`` leading axes may be kept (each index with its own statistics, no affine): ``lead=1``
is instance normalisation, and GroupNorm's groups. Sums of centred values run over blocks of
256 rows added in float64, and the mean is corrected by the centred values' mean, so float32
results stay within ~1e-6 of float64 whatever the mean's size.
"""

from __future__ import annotations

import sys
import threading
import weakref

from ..array import STATE, _from_value, array
from ..backend import xp
from ..tracing import kernel
from .table import _operand, _rec, defprim

__all__ = ["batch_norm_train", "bias_add", "fusable"]

_TILE = 8192  # elements per inner loop of a tiled row broadcast (8192: ~20% faster than 1024)


def _tiled(rows, vec):
    """``rows`` (``(A, M, C)``, C-contiguous) and ``vec`` (``(A, C)``) as ``(A, M / k, k * C)``
    and ``(A, 1, k * C)``: the same broadcast with a long inner loop (NumPy's loop over
    ``C = 16`` values per row costs 3x the elementwise pass)."""
    a, m, c = rows.shape
    k = 1
    if c < _TILE and rows.flags.c_contiguous:
        while k * 2 * c <= _TILE and m % (k * 2) == 0:
            k *= 2
    if k == 1:
        return rows, vec[:, None, :]
    return rows.reshape(a, m // k, k * c), vec[:, None, :].repeat(k, 1).reshape(a, 1, k * c)


def _rowwise(ufunc, rows, vec, out=None):
    """``ufunc(rows, vec)`` broadcast over the rows of each group (into ``out``, shaped like
    ``rows``)."""
    r, v = _tiled(rows, vec)
    if out is None:
        return ufunc(r, v).reshape(rows.shape)
    ufunc(r, v, out=out.reshape(r.shape))
    return out


def _groups(x, lead: int):
    """``x`` as ``(A, M, C)``: ``A`` the product of the ``lead`` kept axes, ``M`` the values
    each statistic is taken over, ``C`` the channels."""
    c = x.shape[-1]
    a = 1
    for n in x.shape[:lead]:
        a *= n
    return x.reshape(a, -1, c)


def _ones(m: int, like):
    if type(like) is xp.ndarray:
        return xp.ones(m, dtype=like.dtype)
    return xp.ones_like(like[0, :m, 0])


_BLOCK = 256  # rows per partial sum in _colsum


def _colsum(rows):
    """The sums over the rows of ``rows`` (``(A, M, C)``, C-contiguous) as ``(A, C)``: BLAS
    matrix-vector products over blocks of 256 rows, the partial sums added in float64 (one
    product over 32k float32 rows is off by ~1e-6 relative; the blocks bring it to ~1e-8 for
    25% more time)."""
    a, m, c = rows.shape
    n = m // _BLOCK
    if n < 2:
        return _ones(m, rows) @ rows
    head = rows[:, : n * _BLOCK].reshape(a, n, _BLOCK, c)
    total = (_ones(_BLOCK, rows) @ head).sum(1, dtype=xp.float64)
    if m > n * _BLOCK:
        total += _ones(m - n * _BLOCK, rows) @ rows[:, n * _BLOCK :]
    return total.astype(rows.dtype)


def _contiguous(v):
    return v if v.flags.c_contiguous else v.copy()


@kernel
def _bn_forward_kernel(x, w, b, eps, lead):
    """``(y, mean, var, invstd)``: the normalised ``x`` (shape kept) and the statistics,
    ``(A, C)`` (biased variance)."""
    rows = _groups(x, lead)
    m = rows.shape[1]
    # a first mean, then the mean of what is left: a float32 sum of 16k values near 100 is off
    # by ~1e-3, which the centred values' sum corrects (their magnitude is the spread's)
    mean = (_ones(m, rows) @ rows) / m
    xc = _contiguous(_rowwise(xp.subtract, rows, mean))
    delta = _colsum(xc) / m
    var = _colsum(xc * xc) / m - delta * delta
    invstd = 1.0 / xp.sqrt(var + eps)
    scale = invstd if w is None else w * invstd
    shift = -delta * scale if b is None else b - delta * scale
    y = _rowwise(xp.multiply, xc, scale, out=xc)
    y = _rowwise(xp.add, y, shift, out=y)
    return y.reshape(x.shape), mean + delta, var, invstd


@kernel
def _bn_backward_kernel(g, x, w, mean, invstd, lead):
    """``(dx, dw, db)`` of ``batch_norm_train`` from the saved statistics (``dw`` and ``db``
    per group, ``(A, C)``)."""
    rows = _groups(x, lead)
    gr = _contiguous(_groups(g, lead))
    m = rows.shape[1]
    sg = _colsum(gr)
    xc = _contiguous(_rowwise(xp.subtract, rows, mean))
    t = gr * xc
    sgx = _colsum(t)
    a = invstd if w is None else w * invstd
    k1 = a * invstd * invstd * sgx / m
    k2 = a * sg / m
    # dx = a * g - (xc * k1 + k2)
    u = _rowwise(xp.multiply, xc, k1, out=xc)
    u = _rowwise(xp.add, u, k2, out=u)
    t = _rowwise(xp.multiply, gr, a, out=t)
    xp.subtract(t, u, out=t)
    return t.reshape(g.shape), sgx * invstd, sg


_STASH = threading.local()
"""Per thread, ``(stats, cotangent ref, dw, db)``: the weight's and bias's cotangents computed
by the first rule of a node, for the rules after it (``None`` when nothing waits)."""


def _ref(v):
    """A weak reference to a backend value (a strong one where the type refuses weak ones)."""
    try:
        return weakref.ref(v)
    except TypeError:
        return lambda: v


def _roles(has_w: bool, has_b: bool) -> tuple:
    return ("x",) + (("w",) if has_w else ()) + (("b",) if has_b else ())


def _bn_vjp(g, ans, x, *wb, argnum, eps, lead, has_w, has_b, stats):
    role = _roles(has_w, has_b)[argnum]
    w = wb[0] if has_w else None
    gd = g._data
    if not STATE.enabled and stats is not None and type(gd) is type(x._data):
        held = getattr(_STASH, "held", None)
        if role != "x" and held is not None and held[0] is stats and held[1]() is gd:
            out = held[2] if role == "w" else held[3]
            if role == "b" or not has_b:  # the node's last rule: let go of the cotangent
                _STASH.held = None
        else:
            mu, invstd = stats
            wd = None if w is None else w._data
            dx, dw, db = _bn_backward_kernel(gd, x._data, wd, mu, invstd, lead)
            if lead == 0:  # weight and bias come only without kept axes: (1, C) -> (C,)
                dw, db = dw.reshape(x.shape[-1]), db.reshape(x.shape[-1])
            if has_w or has_b:
                _STASH.held = (stats, _ref(gd), dw, db)
            out = {"x": dx, "w": dw, "b": db}[role]
        return _from_value(out)
    return _bn_vjp_recorded(g, x, w, role, eps, lead)


def _bn_vjp_recorded(g: array, x: array, w, role: str, eps: float, lead: int) -> array:
    """The closed form with chainrule operations (statistics recomputed from ``x``)."""
    axes = tuple(range(lead, x.ndim - 1))
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
    if len(vals) == 1:  # no weight or bias: the batch is one more kept axis
        return batch_norm_train(x, None, None, params["eps"], params["lead"] + 1)[0]
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


def batch_norm_train(
    x: array, weight: array | None, bias: array | None, eps: float, lead: int = 0
) -> tuple:
    """Normalisation by the statistics over every axis but the last and the ``lead`` first.

    ``lead=0`` is batch normalisation (channels last); ``lead=1`` on ``(N, ..., C)`` is
    instance normalisation (each sample's channel over its spatial axes).

    Args:
        x: ``(*kept, ..., C)``, float32 or float64, at least one value per statistic.
        weight: the scale ``(C,)`` or None (x's dtype; only with ``lead=0``).
        bias: the shift ``(C,)`` or None (x's dtype; only with ``lead=0``).
        eps: added to the variance.
        lead: how many leading axes are kept (each index has its own statistics).

    Returns:
        ``(y, mean, var)``: the normalised array (recorded for differentiation) and the
        mean and biased variance, ``(*kept, C)``, as backend values (not recorded).
    """
    if lead and (weight is not None or bias is not None):
        raise ValueError("batch_norm_train: a weight or bias needs lead=0")
    y, mean, var, invstd = _bn_forward_kernel(
        x._data,
        None if weight is None else weight._data,
        None if bias is None else bias._data,
        eps,
        lead,
    )
    xs = (x,) + ((weight,) if weight is not None else ()) + ((bias,) if bias is not None else ())
    params = {
        "eps": eps,
        "lead": lead,
        "has_w": weight is not None,
        "has_b": bias is not None,
        "stats": (mean, invstd),
    }
    kept = x.shape[:lead] + x.shape[-1:]
    return _rec(_BATCH_NORM, y, xs, params), mean.reshape(kept), var.reshape(kept)


def fusable(x: array, *vectors: array | None, lead: int = 0) -> bool:
    """Whether ``batch_norm_train`` serves ``x`` and the per-channel ``vectors``: float32 or
    float64 values of one dtype, a channel axis last, at least one value per statistic."""
    d = x._data
    if d.dtype not in _FLOATS or d.ndim < lead + 1 or d.size == 0:
        return False
    for v in vectors:
        if v is not None and (v._data.dtype != d.dtype or v.shape != (x.shape[-1],)):
            return False
    return True


_FLOATS = (xp.dtype(xp.float32), xp.dtype(xp.float64))


# -- a per-channel bias (convolution layers) -----------------------------------------------------
#
# ``y + b`` over the channels-last output of a convolution costs NumPy a broadcast whose inner
# loop runs over C values (0.16 ms on LeNet's first 64x28x28x6 output) and, backward, the
# engine's ``add.reduce`` over the rows (0.58 ms); tiled rows and BLAS column sums take 0.04
# and 0.05 ms.


@kernel
def _bias_add_kernel(y, b):
    """``y + b`` with ``b`` ``(C,)`` broadcast over the rows of ``y`` (``(..., C)``)."""
    c = y.shape[-1]
    if y.flags.c_contiguous and y.size:
        return _rowwise(xp.add, y.reshape(1, -1, c), b.reshape(1, c)).reshape(y.shape)
    return y + b


@kernel
def _channel_sum_kernel(g):
    """The sums of ``g`` (``(..., C)``) over every axis but the last, as ``(C,)``."""
    c = g.shape[-1]
    if g.flags.c_contiguous and g.size:
        return _colsum(g.reshape(1, -1, c)).reshape(c)
    gf = xp.moveaxis(g, -1, 0)  # channels-first memory (PyTorch's layout): pairwise row sums
    if gf.flags.c_contiguous:
        return gf.reshape(c, -1).sum(axis=1)
    return g.sum(axis=tuple(range(g.ndim - 1)))


def _bias_add_vjp_b(g, ans, y, b):
    if STATE.enabled:  # recorded: differentiable again
        return sum(g, axis=tuple(range(g.ndim - 1)))
    return _from_value(_channel_sum_kernel(g._data))


def _bias_add_batch(args, params, ex_ndim):
    (y, ny), (b, nb) = args
    y, b = _operand(y, ny), _operand(b, nb)
    if nb is None:  # the batch is one more leading axis of y; the channels stay last
        return bias_add(y, b)
    rank = y.ndim - (0 if ny is None else 1)  # y's rank per example
    return y + reshape(b, (b.shape[0],) + (1,) * (rank - 1) + (b.shape[-1],))


_BIAS_ADD = defprim("bias_add", lambda g, ans, y, b: g, _bias_add_vjp_b, batch=_bias_add_batch)


def bias_add(y: array, b: array) -> array:
    """``y + b``: a per-channel bias ``b`` (``(C,)``) added over the last axis of ``y``.

    One primitive: tiled rows forward, BLAS column sums for the bias's cotangent (the
    composite ``y + b`` pays NumPy's broadcast over short rows and ``add.reduce``). Other
    shapes or mixed dtypes fall back to ``y + b``.

    Args:
        y: ``(..., C)``, e.g. a channels-last convolution output.
        b: ``(C,)``.

    Returns:
        ``y + b``.
    """
    if not (isinstance(y, array) and isinstance(b, array)):
        return y + b
    yd, bd = y._data, b._data
    if (
        bd.ndim != 1
        or yd.ndim < 1
        or yd.shape[-1] != bd.shape[0]
        or yd.dtype != bd.dtype
        or yd.dtype not in _FLOATS
    ):
        return y + b
    onnx = sys.modules.get("chainrule.viz.onnx")
    if onnx is not None and onnx.is_in_onnx_export():  # ONNX maps add, not this
        return y + b
    return _rec(_BIAS_ADD, _bias_add_kernel(yd, bd), (y, b), {})


from .elementwise import rsqrt  # noqa: E402
from .reductions import mean, sum  # noqa: E402
from .shapes import broadcast_to, expand_dims, moveaxis, reshape  # noqa: E402
