"""``torch.linalg``: PyTorch's linear-algebra names over ``mx.linalg`` and chainrule's ops.

Arguments, defaults and named results are PyTorch's (``linalg.svd`` returns ``(U, S, Vh)``,
``linalg.eigh`` ``(eigenvalues, eigenvectors)``, ``linalg.solve(A, B, left=True)``...). The
decompositions with a registered gradient (``inv``, ``det``, ``slogdet``, ``solve``,
``cholesky``, ``eigh``) differentiate; norms other than the spectral and nuclear ones are
composites and differentiate too.
"""

from __future__ import annotations

import builtins
import collections
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core import tensor_functions as _tf
from chainrule.core import tensor_ops_linalg as _L
from chainrule.core import tensor_ops_math as _M
from chainrule.core.extend import from_value

from ._creation import tensor
from ._tensor_class import install_doors as _install_doors

array = mx.array

SlogdetResult = collections.namedtuple("linalg_slogdet", ["sign", "logabsdet"])
SVDResult = collections.namedtuple("linalg_svd", ["U", "S", "Vh"])
QRResult = collections.namedtuple("linalg_qr", ["Q", "R"])
EighResult = collections.namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
EigResult = collections.namedtuple("linalg_eig", ["eigenvalues", "eigenvectors"])
InvExResult = collections.namedtuple("linalg_inv_ex", ["inverse", "info"])
CholeskyExResult = collections.namedtuple("linalg_cholesky_ex", ["L", "info"])
SolveExResult = collections.namedtuple("linalg_solve_ex", ["result", "info"])
LstsqResult = collections.namedtuple(
    "linalg_lstsq", ["solution", "residuals", "rank", "singular_values"]
)
LUFactorResult = collections.namedtuple("linalg_lu_factor", ["LU", "pivots"])
LUResult = collections.namedtuple("linalg_lu", ["P", "L", "U"])

__all__ = [
    "cholesky",
    "cholesky_ex",
    "cond",
    "cross",
    "det",
    "diagonal",
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "inv",
    "inv_ex",
    "lstsq",
    "lu",
    "lu_factor",
    "lu_solve",
    "matmul",
    "matrix_exp",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "multi_dot",
    "norm",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_ex",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensorinv",
    "tensorsolve",
    "vander",
    "vecdot",
    "vector_norm",
]


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else tensor(x)


def _square(A: array, who: str) -> None:
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(
            f"linalg.{who}: A must be batches of square matrices, but they are "
            f"{A.shape[-2] if A.ndim >= 2 else '?'} by {A.shape[-1] if A.ndim else '?'} matrices"
        )


def _cast(x: array, dtype: Any) -> array:
    return x if dtype is None else mx.astype(x, _dt.from_np(_tf.to_np_dtype(dtype)))


def vector_norm(
    x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> array:
    """``sum(|x| ** ord) ** (1 / ord)`` over ``dim`` (all elements by default)."""
    x = _cast(_arr(x), dtype)
    if x._data.dtype.kind not in "fcV":
        raise RuntimeError(
            f"linalg.vector_norm: expected a floating point or complex tensor as "
            f"input. Got {x.dtype}"
        )
    return _M.vector_norm(x, ord, _tf.dims(dim), keepdim)


def matrix_norm(
    A: Any,
    ord: Any = "fro",
    dim: Sequence[int] = (-2, -1),
    keepdim: bool = False,
    *,
    dtype: Any = None,
) -> array:
    """Frobenius, nuclear, 1/-1 (column sums), inf/-inf (row sums) or 2/-2 (singular values)."""
    A = _cast(_arr(A), dtype)
    d0, d1 = (int(d) % A.ndim for d in dim)
    if ord == "fro":
        a = mx.abs(A)
        return mx.sqrt(mx.sum(a * a, (d0, d1), keepdim))
    if ord in (1, -1, math.inf, -math.inf):
        summed_axis, pick_axis = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = mx.sum(mx.abs(A), summed_axis, True)
        out = mx.max(s, pick_axis, True) if ord > 0 else mx.min(s, pick_axis, True)
        return out if keepdim else mx.squeeze(out, (d0, d1))
    if ord in ("nuc", 2, -2):
        rest = [i for i in builtins.range(A.ndim) if i not in (d0, d1)]
        moved = mx.transpose(A, rest + [d0, d1])
        s = from_value(np.linalg.svd(moved._data, compute_uv=False))
        out = mx.sum(s, -1) if ord == "nuc" else (mx.max(s, -1) if ord == 2 else mx.min(s, -1))
        if keepdim:
            out = mx.expand_dims(mx.expand_dims(out, min(d0, d1)), max(d0, d1))
        return out
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(
    A: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> array:
    """A vector norm (``dim`` an int, or 1-D input) or a matrix norm (``dim`` a pair, or 2-D
    input); with neither ``ord`` nor ``dim``, the 2-norm of all elements."""
    A = _arr(A)
    if isinstance(dim, (int, np.integer)):
        dim = (int(dim),)
    if dim is not None and len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if dim is None and ord is not None and A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if dim is None and ord is not None and A.ndim != 1:
        raise RuntimeError(
            f"linalg.norm: If dim is not specified but ord is, the input must be "
            f"1D or 2D. Got {A.ndim}D."
        )
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def inv(A: Any) -> array:
    """The inverse of (batches of) square matrices."""
    A = _arr(A)
    _square(A, "inv")
    return mx.linalg.inv(A)


def inv_ex(A: Any, *, check_errors: bool = False) -> InvExResult:
    """``(inverse, info)``; ``info`` is 0 where the inversion succeeded."""
    return InvExResult(inv(A), from_value(np.zeros(_arr(A).shape[:-2], np.int32)))


def det(A: Any) -> array:
    """Determinant."""
    A = _arr(A)
    _square(A, "det")
    return mx.linalg.det(A)


def slogdet(A: Any) -> SlogdetResult:
    """``(sign, log|det|)``."""
    A = _arr(A)
    _square(A, "slogdet")
    return SlogdetResult(*mx.linalg.slogdet(A))


def solve(A: Any, B: Any, *, left: bool = True) -> array:
    """``X`` with ``A X = B`` (``X A = B`` when ``left=False``); a vector ``B`` is a vector."""
    A, B = _arr(A), _arr(B)
    _square(A, "solve")
    if not left:
        return mx.swapaxes(solve(mx.swapaxes(A, -1, -2), mx.swapaxes(B, -1, -2)), -1, -2)
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and B.shape == A.shape[:-1])
    if vector:
        return mx.squeeze(mx.linalg.solve(A, mx.expand_dims(B, -1)), -1)
    return mx.linalg.solve(A, B)


def solve_ex(A: Any, B: Any, *, left: bool = True, check_errors: bool = False) -> SolveExResult:
    """``(solution, info)``."""
    return SolveExResult(solve(A, B, left=left), from_value(np.zeros(_arr(A).shape[:-2], np.int32)))


def cholesky(A: Any, *, upper: bool = False) -> array:
    """The Cholesky factor (lower by default)."""
    A = _arr(A)
    _square(A, "cholesky")
    return _L.cholesky(A, upper)


def cholesky_ex(A: Any, *, upper: bool = False, check_errors: bool = False) -> CholeskyExResult:
    """``(L, info)``."""
    return CholeskyExResult(
        cholesky(A, upper=upper), from_value(np.zeros(_arr(A).shape[:-2], np.int32))
    )


def qr(A: Any, mode: str = "reduced") -> QRResult:
    """``(Q, R)``: ``mode`` is ``reduced``, ``complete`` or ``r`` (Q empty)."""
    A = _arr(A)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(
            f"qr received unrecognized mode '{mode}' but expected one of "
            "'reduced' (default), 'r', or 'complete'"
        )
    if mode == "reduced":
        return QRResult(*mx.linalg.qr(A))
    q, r = np.linalg.qr(A._data, mode="complete")
    if mode == "r":
        return QRResult(from_value(np.zeros((0,), A._data.dtype)), from_value(r))
    return QRResult(from_value(q), from_value(r))


def svd(A: Any, full_matrices: bool = True, *, driver: str | None = None) -> SVDResult:
    """``(U, S, Vh)`` with ``A = U diag(S) Vh``."""
    A = _arr(A)
    u, s, vh = (from_value(v) for v in np.linalg.svd(A._data, full_matrices=full_matrices))
    return SVDResult(u, s, vh)


def svdvals(A: Any, *, driver: str | None = None) -> array:
    """The singular values, largest first."""
    return from_value(np.linalg.svd(_arr(A)._data, compute_uv=False))


def eigh(A: Any, UPLO: str = "L") -> EighResult:
    """``(eigenvalues, eigenvectors)`` of a symmetric (Hermitian) matrix, ascending."""
    A = _arr(A)
    _square(A, "eigh")
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return EighResult(*mx.linalg.eigh(_L.hermitian_view(A, UPLO == "L"), UPLO))


def eigvalsh(A: Any, UPLO: str = "L") -> array:
    """Eigenvalues of a symmetric (Hermitian) matrix, ascending."""
    return eigh(A, UPLO).eigenvalues


def eig(A: Any) -> EigResult:
    """``(eigenvalues, eigenvectors)``, complex (values only: no gradient)."""
    A = _arr(A)
    _square(A, "eig")
    w, v = np.linalg.eig(A._data)
    ctype = np.complex128 if A._data.dtype == np.float64 else np.complex64
    return EigResult(from_value(w.astype(ctype)), from_value(v.astype(ctype)))


def eigvals(A: Any) -> array:
    """Eigenvalues, complex."""
    return eig(A).eigenvalues


def pinv(A: Any, *, atol: Any = None, rtol: Any = None, hermitian: bool = False) -> array:
    """The Moore-Penrose pseudo-inverse."""
    return _L.pinverse(_arr(A))


def matrix_power(A: Any, n: int) -> array:
    """``A`` multiplied by itself ``n`` times (``inv(A)`` for negative ``n``)."""
    return _L.matrix_power(_arr(A), n)


def matrix_exp(A: Any) -> array:
    """The matrix exponential."""
    return _L.matrix_exp(_arr(A))


def matrix_rank(
    A: Any, *, atol: Any = None, rtol: Any = None, hermitian: bool = False, tol: Any = None
) -> array:
    """The number of singular values above the tolerance (int64)."""
    A = _arr(A)
    s = np.linalg.svd(A._data, compute_uv=False)
    smax = s.max(-1, keepdims=True) if s.size else np.zeros(s.shape[:-1] + (1,))
    if tol is not None:
        atol = tol
    a = 0.0 if atol is None else float(atol)
    if rtol is None:
        r = (
            0.0
            if atol is not None and atol > 0
            else np.finfo(A._data.dtype).eps * max(A.shape[-2:])
        )
    else:
        r = float(rtol)
    thresh = np.maximum(a, r * smax)
    return from_value(np.sum(s > thresh, axis=-1).astype(np.int64))


def cond(A: Any, p: Any = None) -> array:
    """The condition number ``norm(A, p) * norm(inv(A), p)`` (2-norm ratio by default)."""
    A = _arr(A)
    if p in (None, 2, -2):
        s = np.linalg.svd(A._data, compute_uv=False)
        ratio = s[..., 0] / s[..., -1] if p in (None, 2) else s[..., -1] / s[..., 0]
        return from_value(ratio.astype(A._data.dtype))
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


def cross(input: Any, other: Any, *, dim: int = -1) -> array:
    """Cross product along ``dim`` (which must have size 3)."""
    return mx.linalg.cross(_arr(input), _arr(other), dim)


def lstsq(A: Any, B: Any, rcond: float | None = None, *, driver: str | None = None) -> LstsqResult:
    """The least-squares solution of ``A X = B`` (values; ``residuals``, ``rank`` and
    ``singular_values`` are filled as PyTorch's default CPU driver ``gelsy`` does: empty)."""
    A, B = _arr(A), _arr(B)
    x = mx.matmul(_L.pinverse(A), B)
    empty = from_value(np.zeros((0,), A._data.dtype))
    return LstsqResult(x, empty, from_value(np.zeros((0,), np.int64)), empty)


def lu_factor(A: Any, *, pivot: bool = True) -> LUFactorResult:
    """``(LU, pivots)`` with 1-based int32 pivots."""
    return LUFactorResult(*_arr(A).lu(pivot=pivot))


def lu(A: Any, *, pivot: bool = True) -> LUResult:
    """``(P, L, U)`` with ``A = P L U``."""
    from ._ops import lu_unpack

    lu_, piv = _arr(A).lu(pivot=pivot)
    return LUResult(*lu_unpack(lu_, piv))


def lu_solve(LU: Any, pivots: Any, B: Any, *, left: bool = True, adjoint: bool = False):
    """Solve ``A X = B`` from ``lu_factor``'s factors."""
    if not left or adjoint:
        raise NotImplementedError("linalg.lu_solve: only left=True, adjoint=False")
    return _arr(B).lu_solve(LU, pivots)


def solve_triangular(
    A: Any, B: Any, *, upper: bool, left: bool = True, unitriangular: bool = False
) -> array:
    """``X`` with ``A X = B`` for triangular ``A`` (``X A = B`` when ``left=False``)."""
    A, B = _arr(A), _arr(B)
    if not left:
        return mx.swapaxes(
            solve_triangular(
                mx.swapaxes(A, -1, -2),
                mx.swapaxes(B, -1, -2),
                upper=not upper,
                unitriangular=unitriangular,
            ),
            -1,
            -2,
        )
    return _L.triangular_solve(B, A, upper, False, unitriangular).solution


def multi_dot(tensors: Sequence[Any]) -> array:
    """The product of the matrices (first and last may be vectors)."""
    ts = [_arr(t) for t in tensors]
    if len(ts) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = mx.expand_dims(ts[0], 0)
    if last_vec:
        ts[-1] = mx.expand_dims(ts[-1], -1)
    out = _L.chain_matmul(*ts)
    if first_vec:
        out = mx.squeeze(out, 0)
    if last_vec:
        out = mx.squeeze(out, -1)
    return out


def matmul(input: Any, other: Any) -> array:
    """``input @ other``."""
    return mx.matmul(_arr(input), _arr(other))


def vecdot(x: Any, y: Any, *, dim: int = -1) -> array:
    """``sum(conj(x) * y)`` along ``dim``."""
    x, y = _arr(x), _arr(y)
    xc = mx.conj(x) if x._data.dtype.kind == "c" else x
    return mx.sum(xc * y, dim)


def diagonal(A: Any, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> array:
    """The diagonal over the last two dimensions (by default)."""
    return mx.diagonal(_arr(A), offset, dim1, dim2)


def vander(x: Any, *, N: int | None = None) -> array:
    """Powers ``x ** 0, x ** 1, ...`` in increasing order along a new last dimension."""
    x = _arr(x)
    n = x.shape[-1] if N is None else int(N)
    return mx.stack([mx.power(x, i) if i else mx.ones_like(x) for i in builtins.range(n)], -1)


def tensorinv(A: Any, ind: int = 2) -> array:
    """The inverse of ``A`` seen as a matrix from its first ``ind`` to its last dimensions."""
    A = _arr(A)
    rows = int(np.prod(A.shape[:ind]))
    out = inv(mx.reshape(A, (rows, -1)))
    return mx.reshape(out, A.shape[ind:] + A.shape[:ind])


def tensorsolve(A: Any, B: Any, dims: Sequence[int] | None = None) -> array:
    """``X`` with ``tensordot(A, X, X.ndim) = B``."""
    A, B = _arr(A), _arr(B)
    if dims is not None:
        rest = [d for d in builtins.range(A.ndim) if d not in [d % A.ndim for d in dims]]
        A = mx.transpose(A, rest + [d % A.ndim for d in dims])
    x_shape = A.shape[B.ndim :]
    m = mx.reshape(A, (int(np.prod(B.shape)), -1))
    return mx.reshape(solve(m, mx.reshape(B, (-1,))), x_shape)


# Every public function returns tensors and hands its implementation plain arrays (the doors of
# chainrule/torch/_tensor_class.py); keep this the last statement of the module.
_install_doors(globals())
