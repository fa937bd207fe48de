"""``mx.linalg``: norms, inverses, solvers and factorisations with MLX's names and checks.

``norm``, ``inv``, ``tri_inv``, ``solve``, ``solve_triangular``, ``cholesky``, ``cholesky_inv``,
``eigh``/``eigvalsh``, ``det``, ``slogdet`` and ``cross`` are differentiable (the primitives and
their rules are in ``linalg_prims.py``; the rest are composites of them). ``qr``, ``svd``,
``pinv``, ``eig``/``eigvals`` and ``lu``/``lu_factor`` return constants, as in MLX, which
differentiates none of them. Every function takes MLX's ``stream=`` and ignores it. Errors are
``ValueError`` naming the function, as MLX's ``std::invalid_argument``.
"""

from __future__ import annotations

from . import ops
from .array import _from_value, array
from .backend import array_module, xp
from .linalg_prims import (
    cholesky_prim,
    det_prim,
    eigh_both,
    eigvalsh_prim,
    inv_prim,
    lu_kernel,
    slogdet_prim,
    solve_prim,
)

_INF = float("inf")


def _matrix(a, who: str, complex_ok: bool = False, promote: bool = False) -> array:
    """``a`` as an array of matrices (``ndim >= 2``) of a floating (or complex) type."""
    a = ops._as(a)
    if a.ndim < 2:
        raise ValueError(
            f"linalg.{who}: the input must have at least 2 dimensions, got shape {a.shape}"
        )
    kind = a._data.dtype.kind
    if kind == "c" and not complex_ok:
        raise ValueError(f"linalg.{who}: complex inputs are not supported, got {a.dtype}")
    if kind not in "fc":
        if not promote:
            raise ValueError(
                f"linalg.{who}: the input must be float32 or float64"
                + (" or complex64" if complex_ok else "")
                + f", got {a.dtype}"
            )
        a = ops.astype(a, xp.float32)
    elif kind == "f" and a._data.dtype.itemsize < 4:
        a = ops.astype(a, xp.float32)
    return a


def _square(a, who: str, complex_ok: bool = False, promote: bool = False) -> array:
    a = _matrix(a, who, complex_ok, promote)
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"linalg.{who}: the input must be square matrices, got shape {a.shape}")
    return a


# -- norms ----------------------------------------------------------------------------------


def _sum_abs_sq(a: array, axes, keepdims: bool) -> array:
    x = ops.abs(a) if a._data.dtype.kind == "c" else a
    return ops.sqrt(ops.sum(x * x, axes, keepdims))


def _vector_norm(a: array, ord, ax: int, keepdims: bool) -> array:
    if isinstance(ord, str):
        raise ValueError(f"linalg.norm: ord {ord!r} is not a vector norm (axis {ax})")
    if ord is None or ord == 2:
        return _sum_abs_sq(a, ax, keepdims)
    x = ops.abs(a)
    if ord == _INF:
        return ops.max(x, ax, keepdims)
    if ord == -_INF:
        return ops.min(x, ax, keepdims)
    if ord == 0:
        return ops.sum(ops.astype(x != 0, x.dtype), ax, keepdims)
    if ord == 1:
        return ops.sum(x, ax, keepdims)
    return ops.power(ops.sum(ops.power(x, float(ord)), ax, keepdims), 1.0 / ord)


def _singular_values(a: array, r: int, c: int, keepdims: bool):
    moved = xp.moveaxis(a._data, (r, c), (-2, -1))
    s = xp.linalg.svd(moved, compute_uv=False)
    return s, lambda v: _from_value(xp.expand_dims(v, tuple(sorted((r, c)))) if keepdims else v)


def _matrix_norm(a: array, ord, r: int, c: int, keepdims: bool) -> array:
    if r == c:
        raise ValueError(f"linalg.norm: the two axes must differ, got ({r}, {c})")
    pair = (r, c)
    if ord is None or ord == "fro":
        return _sum_abs_sq(a, pair, keepdims)
    if ord in ("nuc", 2, -2):
        s, wrap = _singular_values(a, r, c, keepdims)
        if ord == "nuc":
            return wrap(s.sum(-1))
        return wrap(s.max(-1) if ord == 2 else s.min(-1))
    x = ops.abs(a)
    pick = {1: ops.max, -1: ops.min, _INF: ops.max, -_INF: ops.min}.get(ord)
    if pick is None or isinstance(ord, str):
        raise ValueError(f"linalg.norm: unsupported matrix norm ord {ord!r}")
    # 1/-1: extreme column sum (reduce rows first); inf/-inf: extreme row sum
    first = r if ord in (1, -1) else c
    return pick(ops.sum(x, first, keepdims=True), pair, keepdims)


def norm(a, ord=None, axis=None, keepdims: bool = False, stream=None) -> array:
    """Vector or matrix norm (MLX's ``mx.linalg.norm``), differentiable except through SVD ords.

    Args:
        a: the input (integers are cast to float32).
        ord: ``None`` (2-norm of vectors, Frobenius of matrices); for vectors a number,
            ``inf`` or ``-inf``; for matrices ``"fro"``, ``"nuc"``, ``1``, ``-1``, ``2``,
            ``-2``, ``inf`` or ``-inf``.
        axis: an int or one axis (a vector norm) or two axes (a matrix norm); ``None``: the
            whole array when ``ord`` is ``None``, else the vector or matrix ``a`` is.
        keepdims: keep the reduced axes with length one.
        stream: accepted for MLX compatibility.
    """
    a = ops._as(a)
    if a._data.dtype.kind not in "fc":
        a = ops.astype(a, xp.float32)
    if axis is None:
        if ord is None:
            return _sum_abs_sq(a, tuple(range(a.ndim)), keepdims)
        axes: tuple[int, ...]
        if a.ndim == 1:
            axes = (0,)
        elif a.ndim == 2:
            axes = (0, 1)
        else:
            raise ValueError(
                f"linalg.norm: with ord={ord!r} and no axis the input must be 1-D or 2-D, "
                f"got shape {a.shape}"
            )
    else:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for ax in axes:
        if not -a.ndim <= ax < a.ndim:
            raise ValueError(f"linalg.norm: axis {ax} is out of range for shape {a.shape}")
    axes = tuple(ax % a.ndim for ax in axes)
    if len(axes) == 1:
        return _vector_norm(a, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(a, ord, axes[0], axes[1], keepdims)
    raise ValueError(f"linalg.norm: axis must name one or two axes, got {axis!r}")


# -- inverses and solvers -------------------------------------------------------------------


def inv(a, stream=None) -> array:
    """The inverse of each square matrix of ``a`` (differentiable)."""
    return inv_prim(_square(a, "inv"))


def tri_inv(a, upper: bool = False, stream=None) -> array:
    """The inverse of each triangular matrix of ``a`` (only that triangle is read, and the
    result's other triangle is exactly zero); differentiable."""
    a = _square(a, "tri_inv")
    tri = ops.triu if upper else ops.tril
    return tri(inv_prim(tri(a)))


def pinv(a, stream=None) -> array:
    """The Moore-Penrose pseudo-inverse of each matrix of ``a`` (shape ``(..., N, M)``)."""
    a = _matrix(a, "pinv")
    d = a._data
    if d.size == 0:
        ns = array_module(d)
        return _from_value(ns.zeros(d.shape[:-2] + (d.shape[-1], d.shape[-2]), d.dtype))
    return _from_value(xp.linalg.pinv(d).astype(d.dtype, copy=False))


def solve(a, b, stream=None) -> array:
    """``x`` with ``a @ x = b`` (``b`` a vector when 1-D, else matrices); differentiable."""
    a = _square(a, "solve")
    b = ops._as(b)
    if b.ndim < 1:
        raise ValueError("linalg.solve: b must have at least 1 dimension, got shape ()")
    rows = b.shape[-2] if b.ndim > 1 else b.shape[-1]
    if rows != a.shape[-1]:
        raise ValueError(f"linalg.solve: shapes {a.shape} and {b.shape} do not line up")
    if b._data.dtype.kind not in "f":
        if b._data.dtype.kind == "c":
            raise ValueError(f"linalg.solve: complex inputs are not supported, got {b.dtype}")
        b = ops.astype(b, a._data.dtype)
    try:
        return solve_prim(a, b, b.ndim == 1)
    except ValueError as e:
        raise ValueError(f"linalg.solve: shapes {a.shape} and {b.shape}: {e}") from None


def solve_triangular(a, b, upper: bool = False, stream=None) -> array:
    """``x`` with ``a @ x = b`` for triangular ``a`` (only its ``upper`` or lower triangle is
    read); differentiable."""
    a = _square(a, "solve_triangular")
    return solve((ops.triu if upper else ops.tril)(a), b)


def cholesky(a, upper: bool = False, stream=None) -> array:
    """The Cholesky factor of each symmetric positive-definite matrix of ``a``.

    Args:
        a: the matrices; only the lower triangle (``upper``: the upper one) is read.
        upper: return ``U`` with ``a = U^T U`` instead of ``L`` with ``a = L L^T``.
        stream: accepted for MLX compatibility.
    """
    a = _square(a, "cholesky")
    if upper:
        return ops.swapaxes(cholesky_prim(ops.swapaxes(a, -1, -2)), -1, -2)
    return cholesky_prim(a)


def cholesky_inv(a, upper: bool = False, stream=None) -> array:
    """The inverse of ``L L^T`` (``upper``: ``U^T U``) from its Cholesky factor ``a``."""
    a = _square(a, "cholesky_inv")
    t = tri_inv(a, upper=upper)
    if upper:
        return ops.matmul(t, ops.swapaxes(t, -1, -2))
    return ops.matmul(ops.swapaxes(t, -1, -2), t)


# -- decompositions -------------------------------------------------------------------------


def qr(a, stream=None) -> tuple[array, array]:
    """Reduced QR decomposition of each matrix of ``a``: ``Q (..., M, K)``, ``R (..., K, N)``."""
    a = _matrix(a, "qr")
    d = a._data
    if d.size == 0:
        m, n = d.shape[-2:]
        k = min(m, n)
        return (
            _from_value(array_module(d).zeros(d.shape[:-2] + (m, k), d.dtype)),
            _from_value(array_module(d).zeros(d.shape[:-2] + (k, n), d.dtype)),
        )
    q, r = xp.linalg.qr(d)
    return _from_value(q), _from_value(r)


def svd(a, compute_uv: bool = True, stream=None):
    """Singular value decomposition: ``U, S, Vt`` (full ``U`` and ``Vt``) or ``S`` alone.

    Complex inputs give complex ``U``/``Vt`` and real ``S``; not differentiated (as MLX).
    """
    a = _matrix(a, "svd", complex_ok=True)
    d = a._data
    wide = {"f": xp.float64, "c": xp.complex128}.get(d.dtype.kind)
    if wide is not None and d.dtype.itemsize < xp.dtype(wide).itemsize:
        # single precision: factor in double and round once, so U diag(S) Vt reproduces the
        # input to float32 rounding (LAPACK's single-precision SVD is off by a few ulps more)
        work = d.astype(wide)
        if compute_uv:
            u, s, vt = xp.linalg.svd(work, full_matrices=True)
            return (
                _from_value(u.astype(d.dtype)),
                _from_value(s.astype(xp.float32)),
                _from_value(vt.astype(d.dtype)),
            )
        return _from_value(xp.linalg.svd(work, compute_uv=False).astype(xp.float32))
    if compute_uv:
        return tuple(_from_value(o) for o in xp.linalg.svd(d, full_matrices=True))
    return _from_value(xp.linalg.svd(d, compute_uv=False))


def eig(a, stream=None) -> tuple[array, array]:
    """Eigenvalues and right eigenvectors (columns) of each square matrix, as complex64."""
    a = _square(a, "eig", complex_ok=True)
    w, v = xp.linalg.eig(a._data)
    return _from_value(w.astype(xp.complex64)), _from_value(v.astype(xp.complex64))


def eigvals(a, stream=None) -> array:
    """Eigenvalues of each square matrix, as complex64."""
    a = _square(a, "eigvals", complex_ok=True)
    return _from_value(xp.linalg.eigvals(a._data).astype(xp.complex64))


def _uplo(UPLO: str, who: str) -> str:
    if UPLO not in ("L", "U"):
        raise ValueError(f"linalg.{who}: UPLO must be 'L' or 'U', got {UPLO!r}")
    return UPLO


def eigh(a, UPLO: str = "L", stream=None) -> tuple[array, array]:
    """Eigenvalues (ascending) and eigenvectors of each symmetric/Hermitian matrix.

    Args:
        a: the matrices; only the ``UPLO`` triangle (``"L"`` or ``"U"``) is read.
        UPLO: which triangle.
        stream: accepted for MLX compatibility.

    Differentiable for real inputs (eigenvalues must be distinct for the eigenvectors').
    """
    a = _square(a, "eigh", complex_ok=True)
    return eigh_both(a, _uplo(UPLO, "eigh"))


def eigvalsh(a, UPLO: str = "L", stream=None) -> array:
    """Eigenvalues (ascending) of each symmetric/Hermitian matrix (see ``eigh``)."""
    a = _square(a, "eigvalsh", complex_ok=True)
    return eigvalsh_prim(a, _uplo(UPLO, "eigvalsh"))


def lu(a, stream=None) -> tuple[array, array, array]:
    """LU factorisation with partial pivoting: ``P, L, U`` with ``L[P] @ U == a``.

    ``P`` (uint32) gives, for each row of ``a``, the row of ``L`` that makes it; ``L`` is
    ``(..., M, K)`` with a unit diagonal, ``U`` is ``(..., K, N)``, ``K = min(M, N)``.
    """
    a = _matrix(a, "lu")
    d = a._data
    packed, _, perm = lu_kernel(d)
    m, n = d.shape[-2:]
    k = min(m, n)
    low = xp.tril(packed[..., :, :k], -1) + array_module(d).eye(m, k, dtype=d.dtype)
    up = xp.triu(packed[..., :k, :])
    rows = xp.argsort(perm, axis=-1).astype(xp.uint32)
    return _from_value(rows), _from_value(low), _from_value(up)


def lu_factor(a, stream=None) -> tuple[array, array]:
    """LU factorisation in LAPACK's packed form: ``LU`` and the sequential row swaps (uint32)."""
    a = _matrix(a, "lu_factor")
    packed, piv, _ = lu_kernel(a._data)
    return _from_value(packed), _from_value(piv.astype(xp.uint32))


def det(a, stream=None) -> array:
    """The determinant of each square matrix (integers promote to float32); differentiable."""
    return det_prim(_square(a, "det", promote=True))


def slogdet(a, stream=None) -> tuple[array, array]:
    """The sign and the log of the absolute value of each determinant (the latter
    differentiable); a singular matrix gives ``(0, -inf)``."""
    return slogdet_prim(_square(a, "slogdet", promote=True))


def cross(a, b, axis: int = -1, stream=None) -> array:
    """The cross product of 3-vectors along ``axis`` (inputs broadcast); differentiable."""
    a, b = ops._as(a), ops._as(b)
    for name, x in (("a", a), ("b", b)):
        if x.ndim == 0 or not -x.ndim <= axis < x.ndim or x.shape[axis] != 3:
            raise ValueError(
                f"linalg.cross: {name} must have 3 elements along axis {axis}, got shape {x.shape}"
            )
    a, b = ops.broadcast_arrays(a, b)
    ax = axis % a.ndim
    tail = (slice(None),) * (a.ndim - ax - 1)

    def comp(x, i):
        return x[(slice(None),) * ax + (i,) + tail]

    a0, a1, a2 = (comp(a, i) for i in range(3))
    b0, b1, b2 = (comp(b, i) for i in range(3))
    return ops.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=ax)


__all__ = [
    "norm",
    "inv",
    "tri_inv",
    "pinv",
    "solve",
    "solve_triangular",
    "cholesky",
    "cholesky_inv",
    "qr",
    "svd",
    "eig",
    "eigvals",
    "eigh",
    "eigvalsh",
    "lu",
    "lu_factor",
    "det",
    "slogdet",
    "cross",
]
