"""PyTorch's products and matrix functions (``addmm``, ``baddbmm``, ``mv``, ``det``, ``qr``, ...).

Written with chainrule's differentiable ops and ``mx.linalg`` (whose primitives carry their
gradients), with PyTorch's argument names, shape checks and named results.
"""

from __future__ import annotations

import builtins
import collections
import math
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import tensor_functions as _tf
from .array import array

SlogdetResult = collections.namedtuple("slogdet", ["sign", "logabsdet"])
QRResult = collections.namedtuple("qr", ["Q", "R"])
SVDResult = collections.namedtuple("svd", ["U", "S", "V"])
LstsqResult = collections.namedtuple("lstsq", ["solution", "residuals", "rank", "singular_values"])
TriangularSolveResult = collections.namedtuple(
    "triangular_solve", ["solution", "cloned_coefficient"]
)


def _need(x: array, nd: int, who: str, name: str = "input") -> None:
    if x.ndim != nd:
        raise RuntimeError(f"{who}: {name} must be a {nd}-D tensor, got shape {x.shape}")


def _scaled(beta: Any, x: array, alpha: Any, prod: array) -> array:
    term = prod if alpha == 1 else prod * alpha
    if beta == 0:
        # PyTorch ignores input then (NaN in it does not propagate; its gradient is zero).
        shape = np.broadcast_shapes(x.shape, term.shape)
        never = _tf.const(_backend.array_module(term._data).zeros(shape, bool))  # term's device
        return mx.where(never, mx.astype(x, term.dtype), mx.broadcast_to(term, shape))
    return (x if beta == 1 else x * beta) + term


def mv(input: array, vec: array) -> array:
    """Matrix times vector."""
    _need(input, 2, "mv")
    _need(vec, 1, "mv", "vec")
    return mx.matmul(input, vec)


def dot(input: array, other: array) -> array:
    """Inner product of two 1-D arrays."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(
            f"dot: 1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors"
        )
    if input.shape != other.shape:
        raise RuntimeError(
            f"dot: inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
            f"[{other.shape[0]}] to have the same number of elements"
        )
    return mx.sum(input * other)


def vdot(input: array, other: array) -> array:
    """``dot(conj(input), other)``."""
    return dot(mx.conj(input) if input._data.dtype.kind == "c" else input, other)


def inner(input: array, other: array) -> array:
    """Sum over the last dimensions of both inputs."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    return mx.inner(input, other)


def outer(input: array, vec2: array) -> array:
    """Outer product of two 1-D arrays."""
    return mx.outer(input, vec2)


ger = outer


def bmm(input: array, mat2: array) -> array:
    """Batched matrix product of two 3-D arrays."""
    _need(input, 3, "bmm", "batch1")
    _need(mat2, 3, "bmm", "batch2")
    return mx.matmul(input, mat2)


def mm(input: array, mat2: array) -> array:
    """Matrix product of two 2-D arrays."""
    _need(input, 2, "mm", "self")
    _need(mat2, 2, "mm", "mat2")
    return mx.matmul(input, mat2)


def addmm(input: array, mat1: array, mat2: array, *, beta: Any = 1, alpha: Any = 1) -> array:
    """``beta * input + alpha * (mat1 @ mat2)``."""
    return _scaled(beta, input, alpha, mm(mat1, mat2))


def addmv(input: array, mat: array, vec: array, *, beta: Any = 1, alpha: Any = 1) -> array:
    """``beta * input + alpha * (mat @ vec)``."""
    return _scaled(beta, input, alpha, mv(mat, vec))


def addr(input: array, vec1: array, vec2: array, *, beta: Any = 1, alpha: Any = 1) -> array:
    """``beta * input + alpha * outer(vec1, vec2)``."""
    return _scaled(beta, input, alpha, mx.outer(vec1, vec2))


def baddbmm(input: array, batch1: array, batch2: array, *, beta: Any = 1, alpha: Any = 1):
    """``beta * input + alpha * (batch1 @ batch2)`` for batches of matrices."""
    return _scaled(beta, input, alpha, bmm(batch1, batch2))


def addbmm(input: array, batch1: array, batch2: array, *, beta: Any = 1, alpha: Any = 1):
    """``beta * input + alpha * sum_b(batch1[b] @ batch2[b])``."""
    return _scaled(beta, input, alpha, mx.sum(bmm(batch1, batch2), axis=0))


def chain_matmul(*matrices: array) -> array:
    """The product of the given matrices, left to right."""
    out = matrices[0]
    for m in matrices[1:]:
        out = mx.matmul(out, m)
    return out


def matrix_power(input: array, n: int) -> array:
    """``input`` multiplied by itself ``n`` times (the inverse's power for negative ``n``)."""
    if input.ndim < 2 or input.shape[-1] != input.shape[-2]:
        raise RuntimeError(
            f"matrix_power: expected a batch of square matrices, got shape {input.shape}"
        )
    x = input
    if n < 0:
        x, n = mx.linalg.inv(x), -n
    if n == 0:
        eye = mx.eye(x.shape[-1], dtype=x.dtype, stream=_tf.stream_of(x))
        return mx.broadcast_to(eye, x.shape) + 0 * x
    out: Any
    out, base = None, x
    while n:
        if n & 1:
            out = base if out is None else mx.matmul(out, base)
        n >>= 1
        if n:
            base = mx.matmul(base, base)
    return out


def matrix_exp(input: array) -> array:
    """The matrix exponential (scaling and squaring with a Taylor series; differentiable)."""
    if input.ndim < 2 or input.shape[-1] != input.shape[-2]:
        raise RuntimeError(f"matrix_exp: expected square matrices, got shape {input.shape}")
    norm = float(np.max(np.sum(np.abs(input._data), axis=-1))) if input.size else 0.0
    s = builtins.max(0, int(math.ceil(math.log2(norm))) + 1) if norm > 0.5 else 0
    a = input / (2.0**s)
    eye = mx.eye(input.shape[-1], dtype=input.dtype, stream=_tf.stream_of(input))
    eye = mx.broadcast_to(eye, input.shape)
    out, term = eye, eye
    for k in range(1, 20):
        term = mx.matmul(term, a) / k
        out = out + term
    for _ in range(s):
        out = mx.matmul(out, out)
    return out


def det(input: array) -> array:
    """Determinant of (a batch of) square matrices."""
    return mx.linalg.det(input)


def logdet(input: array) -> array:
    """``log(det(input))`` (NaN for a negative determinant, -inf for zero)."""
    sign, logabs = mx.linalg.slogdet(input)
    return mx.where(
        sign < 0,
        mx.full(logabs.shape, math.nan, logabs.dtype, stream=_tf.stream_of(logabs)),
        logabs,
    )


def slogdet(input: array) -> SlogdetResult:
    """``(sign, log|det|)``."""
    return SlogdetResult(*mx.linalg.slogdet(input))


def inverse(input: array) -> array:
    """The inverse of (a batch of) square matrices."""
    return mx.linalg.inv(input)


def pinverse(input: array, rcond: float = 1e-15) -> array:
    """The Moore-Penrose pseudo-inverse.

    Of full rank: ``(A^H A)^-1 A^H`` or ``A^H (A A^H)^-1`` (differentiable through ``inv``);
    rank-deficient input goes through the SVD (values only).
    """
    m, n = input.shape[-2:]
    rank = np.linalg.matrix_rank(input._data) if input.size else 0  # on the input's device
    if input.size and bool(np.all(rank == builtins.min(m, n))):
        ah = adjoint(input)
        if m >= n:
            return mx.matmul(mx.linalg.inv(mx.matmul(ah, input)), ah)
        return mx.matmul(ah, mx.linalg.inv(mx.matmul(input, ah)))
    return mx.linalg.pinv(input)


def hermitian_view(input: array, lower: bool = True) -> array:
    """The Hermitian matrix read from one triangle of ``input``, differentiated as PyTorch's
    Hermitian decompositions are: the gradient is symmetrised, ``(G + G^H) / 2``.

    Args:
        input: (batches of) square matrices.
        lower: read the lower triangle (else the upper).

    Returns:
        The Hermitian matrices, with the symmetrising gradient.
    """
    t = mx.tril(input) if lower else mx.triu(input)
    strict = mx.tril(input, -1) if lower else mx.triu(input, 1)
    st = mx.swapaxes(strict, -1, -2)
    full = t + (mx.conj(st) if input._data.dtype.kind == "c" else st)
    sym = (input + adjoint(input)) / 2
    return sym + mx.stop_gradient(full - sym)


def cholesky(input: array, upper: bool = False) -> array:
    """The Cholesky factor (lower by default) of the matrix read from the lower triangle."""
    return mx.linalg.cholesky(hermitian_view(input), upper)


def cholesky_inverse(input: array, upper: bool = False) -> array:
    """The inverse of ``A`` given its Cholesky factor."""
    return mx.linalg.cholesky_inv(input, upper)


def cholesky_solve(input: array, input2: array, upper: bool = False) -> array:
    """Solve ``A x = input`` given ``A``'s Cholesky factor ``input2``."""
    return mx.matmul(cholesky_inverse(input2, upper), input)


def qr(input: array, some: bool = True) -> QRResult:
    """``(Q, R)`` of the reduced QR decomposition."""
    if not some:
        raise NotImplementedError("qr: some=False (the complete decomposition) is not supported")
    return QRResult(*mx.linalg.qr(input))


def svd(input: array, some: bool = True, compute_uv: bool = True) -> SVDResult:
    """``(U, S, V)`` with ``input = U diag(S) V^H`` (``V``, not ``V^H``, as ``torch.svd``)."""
    u, s, vh = mx.linalg.svd(input)
    if some:
        k = builtins.min(input.shape[-2:])
        u, vh = u[..., :k], vh[..., :k, :]
    v = mx.swapaxes(vh, -1, -2)
    if not compute_uv:
        return SVDResult(mx.zeros_like(u), s, mx.zeros_like(v))
    return SVDResult(u, s, v)


def triangular_solve(
    b: array, A: array, upper: bool = True, transpose: bool = False, unitriangular: bool = False
) -> TriangularSolveResult:
    """Solve ``A X = b`` for triangular ``A``; returns ``(X, A)``."""
    a = mx.triu(A) if upper else mx.tril(A)
    if unitriangular:
        n = A.shape[-1]
        eye = mx.eye(n, dtype=A.dtype, stream=_tf.stream_of(A))
        a = a * (1 - eye) + eye
    if transpose:
        a, upper = mx.swapaxes(a, -1, -2), not upper
    return TriangularSolveResult(mx.linalg.solve_triangular(a, b, upper), A)


def lstsq(input: array, A: array) -> LstsqResult:
    """Least squares of ``A x = input`` (``torch.lstsq``'s old order is refused in PyTorch)."""
    raise RuntimeError(
        "lstsq: this function was deprecated in favor of torch.linalg.lstsq and removed"
    )


def kron(input: array, other: array) -> array:
    """Kronecker product."""
    return mx.kron(input, other)


def cross(input: array, other: array, dim: int | None = None) -> array:
    """Cross product along ``dim`` (the first dimension of size 3 when None)."""
    if dim is None:
        sizes = [i for i, s in enumerate(np.broadcast_shapes(input.shape, other.shape)) if s == 3]
        if not sizes:
            raise RuntimeError(f"cross: no dimension of size 3 in input of shape {input.shape}")
        dim = sizes[0]
    return mx.linalg.cross(input, other, int(dim))


def tensordot(a: array, b: array, dims: Any = 2) -> array:
    """Sum products over the last ``dims`` of ``a`` and first of ``b`` (or the listed pairs)."""
    if isinstance(dims, array):
        dims = dims.tolist()
    return mx.tensordot(a, b, dims)


def cdist(x1: array, x2: array, p: float = 2.0, compute_mode: str | None = None) -> array:
    """Pairwise p-norm distances between the rows of ``x1`` and ``x2``."""
    diff = mx.expand_dims(x1, -2) - mx.expand_dims(x2, -3)
    a = mx.abs(diff)
    if p == 0:
        return mx.sum(mx.astype(a != 0, a.dtype), axis=-1)
    if p == math.inf:
        return mx.max(a, axis=-1)
    if p == 1:
        return mx.sum(a, axis=-1)
    if p == 2:
        sq = mx.sum(a * a, axis=-1)
        zero = sq == 0
        return mx.where(zero, mx.zeros_like(sq), mx.sqrt(mx.where(zero, mx.ones_like(sq), sq)))
    return mx.power(mx.sum(mx.power(a, p), axis=-1), 1.0 / p)


def cov(input: array, *, correction: int = 1, fweights: Any = None, aweights: Any = None) -> array:
    """Covariance of the variables in the rows of ``input`` (observations in columns)."""
    x = input if input.ndim == 2 else mx.reshape(input, (1, -1))
    if x._data.dtype.kind in "biu":
        x = mx.astype(x, mx.float32)
    n = x.shape[1]
    w = None
    if fweights is not None:
        w = mx.astype(fweights, x.dtype)
    if aweights is not None:
        w = mx.astype(aweights, x.dtype) if w is None else w * aweights
    if w is None:
        avg = mx.mean(x, axis=1, keepdims=True)
        wsum = n
        norm = n - correction
        xc = x - avg
        c = mx.matmul(xc, mx.swapaxes(mx.conj(xc) if x._data.dtype.kind == "c" else xc, 0, 1))
    else:
        wsum = mx.sum(w)
        avg = mx.sum(x * w, axis=1, keepdims=True) / wsum
        if correction == 0:
            norm = wsum
        elif aweights is None:
            norm = wsum - correction
        else:
            norm = wsum - correction * mx.sum(w * aweights) / wsum
        xc = x - avg
        c = mx.matmul(xc * w, mx.swapaxes(xc, 0, 1))
    del wsum
    out = c / mx.maximum(norm, 0) if isinstance(norm, array) else c / builtins.max(norm, 0)
    return mx.reshape(out, ()) if input.ndim < 2 else out


def corrcoef(input: array) -> array:
    """Pearson correlation coefficients of the variables in the rows of ``input``."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = mx.sqrt(mx.diagonal(c))
    out = c / mx.expand_dims(d, 1) / mx.expand_dims(d, 0)
    return mx.clip(out, -1, 1)


def vander(x: array, N: int | None = None, increasing: bool = False) -> array:
    """The Vandermonde matrix of a 1-D input (powers decreasing unless ``increasing``)."""
    n = x.shape[0] if N is None else int(N)
    powers = np.arange(n) if increasing else np.arange(n)[::-1]
    xx = x if x._data.dtype.kind != "b" else mx.astype(x, mx.int64)
    if xx._data.dtype.kind in "iu":
        xx = mx.astype(xx, mx.int64)
    cols = [mx.power(xx, int(p)) if p else mx.ones_like(xx) for p in powers]
    return (
        mx.stack(cols, axis=1)
        if cols
        else mx.zeros((x.shape[0], 0), dtype=xx.dtype, stream=_tf.stream_of(x))
    )


def trapezoid(y: array, x: Any = None, *, dx: Any = None, dim: int = -1) -> array:
    """The trapezoidal rule along ``dim`` (spacing ``dx`` or sample points ``x``)."""
    d = _tf.one_dim(y, dim, "trapezoid")
    n = y.shape[d]
    a = _range(y, d, 1, n)
    b = _range(y, d, 0, n - 1)
    if x is not None:
        xs = x if isinstance(x, array) else mx.array(x)
        if xs.ndim == 1:
            shape = [1] * y.ndim
            shape[d] = -1
            dxs = mx.reshape(xs[1:] - xs[:-1], tuple(shape))
        else:
            dxs = _range(xs, d, 1, n) - _range(xs, d, 0, n - 1)
        return mx.sum((a + b) * dxs, axis=d) / 2
    step = 1 if dx is None else dx
    return mx.sum(a + b, axis=d) * step / 2


trapz = trapezoid


def cumulative_trapezoid(y: array, x: Any = None, *, dx: Any = None, dim: int = -1) -> array:
    """Running trapezoidal integrals along ``dim``."""
    d = _tf.one_dim(y, dim, "cumulative_trapezoid")
    n = y.shape[d]
    a, b = _range(y, d, 1, n), _range(y, d, 0, n - 1)
    if x is not None:
        xs = x if isinstance(x, array) else mx.array(x)
        if xs.ndim == 1:
            shape = [1] * y.ndim
            shape[d] = -1
            dxs = mx.reshape(xs[1:] - xs[:-1], tuple(shape))
        else:
            dxs = _range(xs, d, 1, n) - _range(xs, d, 0, n - 1)
        return mx.cumsum((a + b) * dxs / 2, axis=d)
    step = 1 if dx is None else dx
    return mx.cumsum((a + b) * step / 2, axis=d)


def _range(x: array, d: int, start: int, stop: int) -> array:
    key = [builtins.slice(None)] * x.ndim
    key[d] = builtins.slice(start, stop)
    return x[tuple(key)]


def adjoint(input: array) -> array:
    """Conjugate transpose of the last two dimensions."""
    t = mx.swapaxes(input, -1, -2)
    return mx.conj(t) if input._data.dtype.kind == "c" else t
