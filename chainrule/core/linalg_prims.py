"""The primitives behind ``mx.linalg``: their NumPy kernels, VJP rules and batching rules.

MLX 0.32 differentiates none of its linear-algebra primitives; chainrule gives the common ones
rules written with chainrule operations, so they differentiate to any order (real inputs):

* ``inv``: ``-A^-T g A^-T``;
* ``solve`` (``x = A^-1 b``): ``g_b = solve(A^T, g)``, ``g_A = -g_b x^T``;
* ``cholesky`` (lower factor, reading the lower triangle): Murray's rule
  ``Phi(L^-T Phi(L^T g) L^-1 + transpose)`` with ``Phi`` the lower triangle, diagonal halved;
* ``eigvalsh`` / ``eigh`` (reading one triangle, ``UPLO``): ``V diag(g_w) V^T`` and
  ``V (F * V^T g_V) V^T`` with ``F_ij = 1 / (w_j - w_i)``, folded onto the triangle read;
* ``det``: ``g det(A) A^-T``; ``slogdet``'s log-magnitude: ``g A^-T``.

Every kernel works on stacks of matrices (the last two axes), so the batching rules pass the
batched value straight through (``solve`` aligns its two operands first). The LU factorisation
(``lu_kernel``) is partial pivoting written with NumPy on stacks; it is not differentiated.
"""

from __future__ import annotations

import builtins

from . import ops
from .array import _from_value, array
from .backend import as_array as _as_array
from .backend import is_gpu as _is_gpu
from .backend import same_device as _same_device
from .backend import via_host as _via_host
from .backend import xp
from .ops import _rec, defprim
from .ops.table import _align, _nd, _operand
from .tracing import kernel


def _t(x: array) -> array:
    return ops.swapaxes(x, -1, -2)


def _fold(sym: array, uplo: str) -> array:
    """The gradient of a function that reads one triangle, from its symmetric gradient."""
    tri = ops.tril if uplo == "L" else ops.triu
    eye = _eye_like(sym)
    return tri(sym + _t(sym)) - sym * eye


def _unary_arg(args):
    """The batched operand of a one-input primitive (matrices last, so stacks pass through)."""
    return _operand(*args[0])


def _eye_like(x: array) -> array:
    n = x.shape[-1]
    return _from_value(_same_device(xp.eye(n, dtype=x._data.dtype), x._data))


# -- inverse --------------------------------------------------------------------------------


def _inv_vjp(g, ans, a):
    at = _t(ans)
    return -ops.matmul(ops.matmul(at, g), at)


_INV = defprim("linalg_inv", _inv_vjp, batch=lambda args, params, nd: inv_prim(_unary_arg(args)))


def inv_prim(a: array) -> array:
    """The inverse of each matrix of ``a`` (checked by the caller)."""
    return _rec(_INV, xp.linalg.inv(a._data), (a,))


# -- solve ----------------------------------------------------------------------------------


def _solve_kernel(a, b, vec: bool):
    if vec:
        return xp.linalg.solve(a, b[..., None])[..., 0]
    return xp.linalg.solve(a, b)


def _solve_vjp_a(g, ans, a, b, vec):
    gb = solve_prim(_t(a), g, vec)
    if vec:
        return -(ops.expand_dims(gb, -1) * ops.expand_dims(ans, -2))
    return -ops.matmul(gb, _t(ans))


def _solve_vjp_b(g, ans, a, b, vec):
    return solve_prim(_t(a), g, vec)


def _solve_batch(args, params, ex_ndim):
    (a, na), (b, nb) = args
    a, b = _operand(a, na), _operand(b, nb)
    vec = params["vec"]
    if vec:  # a vector right-hand side as a one-column matrix
        b = ops.expand_dims(b, -1)
        nb = None if nb is None else nb + 1
    ra = na if na is not None else _nd(a)
    rb = nb if nb is not None else _nd(b)
    r = builtins.max(ra, rb)
    out = solve_prim(_align(a, na, r), _align(b, nb, r), False)
    return ops.squeeze(out, -1) if vec else out


_SOLVE = defprim("linalg_solve", _solve_vjp_a, _solve_vjp_b, batch=_solve_batch)


def solve_prim(a: array, b: array, vec: bool) -> array:
    """``A^-1 b`` for each matrix of ``a``; ``vec``: ``b``'s last axis is one vector."""
    da, db = a._data, b._data
    if da.dtype != db.dtype:
        t = xp.promote_types(da.dtype, db.dtype)
        a, b = ops.astype(a, t), ops.astype(b, t)
        da, db = a._data, b._data
    return _rec(_SOLVE, _solve_kernel(da, db, vec), (a, b), {"vec": vec})


# -- Cholesky -------------------------------------------------------------------------------


def _phi(x: array) -> array:
    return ops.tril(x) - 0.5 * x * _eye_like(x)


def _cholesky_vjp(g, ans, a):
    linv = inv_prim(ans)
    s = ops.matmul(ops.matmul(_t(linv), _phi(ops.matmul(_t(ans), g))), linv)
    return _phi(s + _t(s))


_CHOLESKY = defprim(
    "linalg_cholesky", _cholesky_vjp, batch=lambda args, params, nd: cholesky_prim(_unary_arg(args))
)


def cholesky_prim(a: array) -> array:
    """The lower Cholesky factor of each matrix of ``a`` (its lower triangle is read).

    Like MLX (LAPACK's ``potrf`` without a check of its ``info``), a matrix that is not
    numerically positive definite does not raise: it is factored column by column in its own
    precision, and entries past a non-positive pivot are left as they come.
    """
    d = a._data
    try:
        out = xp.linalg.cholesky(d)
    except xp.linalg.LinAlgError:
        out = _cholesky_unchecked(d)
    return _rec(_CHOLESKY, out, (a,))


def _cholesky_unchecked(a):
    """Column-by-column Cholesky on stacks, going on past a pivot that is not positive.

    A pivot that rounding alone made slightly negative (a semi-definite matrix) becomes zero,
    and so does the column below it; a clearly negative one gives NaN, as LAPACK leaves it.
    """
    n = a.shape[-1]
    out = xp.zeros_like(a)
    eps = xp.finfo(a.dtype).eps
    with xp.errstate(all="ignore"):
        for j in range(n):
            row = out[..., j, :j]
            diag = a[..., j, j] - xp.sum(row * row.conj(), axis=-1)
            tol = 16 * n * eps * xp.abs(a[..., j, j])
            diag = xp.where((diag.real < 0) & (diag.real >= -tol), 0, diag)
            piv = xp.sqrt(diag)
            out[..., j, j] = piv
            below = a[..., j + 1 :, j] - xp.einsum(
                "...ik,...k->...i", out[..., j + 1 :, :j], row.conj()
            )
            zero = (piv == 0)[..., None]
            out[..., j + 1 :, j] = xp.where(zero, 0, below / xp.where(zero, 1, piv[..., None]))
    return out


# -- symmetric eigendecomposition -----------------------------------------------------------


def _eigvalsh_vjp(g, ans, a, UPLO):
    v = eigh_vectors_prim(a, UPLO)
    sym = ops.matmul(v * ops.expand_dims(g, -2), _t(v))
    return _fold(sym, UPLO)


def _eigh_vjp(g, ans, a, UPLO):
    w = eigvalsh_prim(a, UPLO)
    eye = _eye_like(ans)
    diff = ops.expand_dims(w, -2) - ops.expand_dims(w, -1)  # w_j - w_i
    f = ops.where(eye > 0, 0.0, 1.0 / (diff + eye))
    inner = f * ops.matmul(_t(ans), g)
    s = ops.matmul(ops.matmul(ans, inner), _t(ans))
    return _fold(0.5 * (s + _t(s)), UPLO)


def _eigh_batch(prim_fn):
    return lambda args, params, nd: prim_fn(_unary_arg(args), params["UPLO"])


_EIGVALSH = defprim("linalg_eigvalsh", _eigvalsh_vjp)
_EIGH = defprim("linalg_eigh", _eigh_vjp)


@kernel
def _eigh_kernel(a, uplo: str):
    w, v = xp.linalg.eigh(a, UPLO=uplo)  # a named tuple, which mx.compile's tracer does not follow
    return w, v


@kernel
def _eigvalsh_kernel(a, uplo: str):
    return xp.linalg.eigvalsh(a, UPLO=uplo)


@kernel
def _slogdet_kernel(a):
    sign, logabs = xp.linalg.slogdet(a)
    return _as_array(sign), _as_array(logabs)


def eigh_both(a: array, UPLO: str) -> tuple[array, array]:
    """Eigenvalues (ascending) and eigenvectors of each Hermitian matrix of ``a``."""
    w, v = _eigh_kernel(a._data, UPLO)
    params = {"UPLO": UPLO}
    return _rec(_EIGVALSH, w, (a,), params), _rec(_EIGH, v, (a,), params)


def eigvalsh_prim(a: array, UPLO: str) -> array:
    """Eigenvalues (ascending) of each Hermitian matrix of ``a``."""
    return _rec(_EIGVALSH, _eigvalsh_kernel(a._data, UPLO), (a,), {"UPLO": UPLO})


def eigh_vectors_prim(a: array, UPLO: str) -> array:
    """Eigenvectors (columns) of each Hermitian matrix of ``a``."""
    return eigh_both(a, UPLO)[1]


_EIGVALSH.batch = _eigh_batch(eigvalsh_prim)
_EIGH.batch = _eigh_batch(eigh_vectors_prim)


# -- determinants ---------------------------------------------------------------------------


def _det_vjp(g, ans, a):
    scale = ops.expand_dims(ops.expand_dims(g * ans, -1), -1)
    return scale * _t(inv_prim(a))


def _logabsdet_vjp(g, ans, a):
    return ops.expand_dims(ops.expand_dims(g, -1), -1) * _t(inv_prim(a))


_DET = defprim("linalg_det", _det_vjp, batch=lambda args, params, nd: det_prim(_unary_arg(args)))
_LOGABSDET = defprim(
    "linalg_logabsdet",
    _logabsdet_vjp,
    batch=lambda args, params, nd: slogdet_prim(_unary_arg(args))[1],
)


def det_prim(a: array) -> array:
    """The determinant of each matrix of ``a``."""
    return _rec(_DET, _as_array(xp.linalg.det(a._data)), (a,))


def slogdet_prim(a: array) -> tuple[array, array]:
    """The sign (a constant) and the log of the magnitude of each determinant of ``a``."""
    sign, logabs = _slogdet_kernel(a._data)
    return _from_value(sign), _rec(_LOGABSDET, logabs, (a,))


# -- LU (not differentiated) ----------------------------------------------------------------


def lu_kernel(a):
    """Partial-pivoting LU of each matrix of ``a`` (``M x N``): ``(lu, pivots, perm)``.

    ``lu`` holds the unit lower factor below the diagonal and the upper factor on and above it;
    ``pivots`` are LAPACK's sequential row swaps (0-based); ``perm`` orders the rows of ``a`` so
    that ``a[perm] = L @ U``. A zero pivot leaves its column as it is (no error, as LAPACK).
    GPU data are factored on the host (explicit copies there and back): a loop of small steps.
    """
    if _is_gpu(a):
        return _via_host(lu_kernel, a)
    m, n = a.shape[-2:]
    k_max = builtins.min(m, n)
    batch = a.shape[:-2]
    w = a.reshape((-1, m, n)).copy()
    count = w.shape[0]
    rows = xp.arange(count)
    perm = xp.tile(xp.arange(m), (count, 1))
    piv = xp.zeros((count, k_max), dtype=xp.int64)
    for k in range(k_max):
        p = k + xp.argmax(xp.abs(w[:, k:, k]), axis=-1) if m > k else xp.full(count, k)
        piv[:, k] = p
        top = w[rows, k].copy()
        w[rows, k] = w[rows, p]
        w[rows, p] = top
        top = perm[rows, k].copy()
        perm[rows, k] = perm[rows, p]
        perm[rows, p] = top
        pivot = w[:, k, k]
        zero = pivot == 0
        mult = w[:, k + 1 :, k] / xp.where(zero, 1, pivot)[:, None]
        mult = xp.where(zero[:, None], 0, mult)
        w[:, k + 1 :, k] = mult
        w[:, k + 1 :, k + 1 :] -= mult[:, :, None] * w[:, k, None, k + 1 :]
    return (
        w.reshape(batch + (m, n)),
        piv.reshape(batch + (k_max,)),
        perm.reshape(batch + (m,)),
    )
