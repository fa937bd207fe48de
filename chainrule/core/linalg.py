"""``mx.linalg``: norms and a few decompositions."""

from __future__ import annotations

from . import ops
from .array import _from_value, array
from .backend import xp


def norm(a, ord=None, axis=None, keepdims: bool = False, stream=None) -> array:
    """Vector or matrix norm (MLX's ``mx.linalg.norm``), differentiable.

    Args:
        a: the input.
        ord: ``None`` (2-norm of vectors, Frobenius of matrices), a number for vector
            p-norms, ``inf``/``-inf``, or ``"fro"``/``"nuc"``/``1``/``-1`` for matrices.
        axis: an int (vector norm) or a pair (matrix norm); all axes when ``None``.
        keepdims: keep reduced axes with length one.
    """
    a = ops._as(a)
    if ord is None or ord == "fro" and (axis is None or not isinstance(axis, int)):
        if ord == "fro" and a.ndim != 2 and axis is None:
            raise ValueError(f"norm: 'fro' needs a matrix, got shape {a.shape}")
        return ops.sqrt(
            ops.sum(ops.square(ops.abs(a) if a.dtype.kind == "c" else a), axis, keepdims)
        )
    if isinstance(axis, int) or (axis is None and a.ndim == 1):
        x = ops.abs(a)
        if ord == float("inf"):
            return ops.max(x, axis, keepdims)
        if ord == float("-inf"):
            return ops.min(x, axis, keepdims)
        if ord == 0:
            return ops.sum(ops.astype(x != 0, x.dtype), axis, keepdims)
        if ord == 1:
            return ops.sum(x, axis, keepdims)
        if ord == 2:
            return ops.sqrt(ops.sum(x * x, axis, keepdims))
        return ops.power(ops.sum(ops.power(x, ord), axis, keepdims), 1.0 / ord)
    ax = (-2, -1) if axis is None else tuple(axis)
    x = ops.abs(a)
    # max column sum (ord 1) or max row sum (inf): reduce one axis keeping it, then both
    if ord == 1:
        return ops.max(ops.sum(x, ax[0], keepdims=True), ax, keepdims)
    if ord == float("inf"):
        return ops.max(ops.sum(x, ax[1], keepdims=True), ax, keepdims)
    if ord in ("nuc", 2, -2):
        s = xp.linalg.svd(a._data, compute_uv=False)
        val = s.sum(-1) if ord == "nuc" else (s.max(-1) if ord == 2 else s.min(-1))
        return _from_value(val)
    raise ValueError(f"norm: unsupported ord {ord!r} for axis {axis!r}")


def inv(a, stream=None) -> array:
    """Matrix inverse (not differentiated)."""
    return _from_value(xp.linalg.inv(ops._as(a)._data))


def svd(a, compute_uv: bool = True, stream=None):
    """Singular value decomposition (not differentiated)."""
    out = xp.linalg.svd(ops._as(a)._data, compute_uv=compute_uv, full_matrices=False)
    if compute_uv:
        return tuple(_from_value(o) for o in out)
    return _from_value(out)


def qr(a, stream=None):
    """QR decomposition (not differentiated)."""
    q, r = xp.linalg.qr(ops._as(a)._data)
    return _from_value(q), _from_value(r)


def cholesky(a, upper: bool = False, stream=None) -> array:
    """Cholesky factor (not differentiated)."""
    c = xp.linalg.cholesky(ops._as(a)._data)
    return _from_value(xp.swapaxes(c, -1, -2) if upper else c)
