"""Matrix products: ``matmul``, ``addmm``, ``inner``, ``outer``, ``tensordot``, ``einsum``."""

from __future__ import annotations

import builtins

from ..array import STATE, Node, _from_value, array
from ..backend import xp
from .table import (
    _align,
    _nd,
    _operand,
    defprim,
    export,
)


def _matmul_vjp_a(g, ans, a, b):
    if b.ndim == 1:
        return g * b if a.ndim == 1 else expand_dims(g, -1) * b
    if a.ndim == 1:
        return squeeze(matmul(b, expand_dims(g, -1)), -1)
    return matmul(g, swapaxes(b, -1, -2))


def _matmul_vjp_b(g, ans, a, b):
    bd = b._data
    if a.ndim == 2 and bd.ndim == 2 and not bd.flags.c_contiguous and bd.flags.f_contiguous:
        # b is a transposed view (x @ W.T in Linear): build the cotangent in b's layout, so the
        # transpose rule hands the weight a row-major gradient without copying it.
        return swapaxes(matmul(swapaxes(g, -1, -2), a), -1, -2)
    if a.ndim == 1:
        return g * a if b.ndim == 1 else expand_dims(a, -1) * expand_dims(g, -2)
    if b.ndim == 1:
        return squeeze(matmul(swapaxes(a, -1, -2), expand_dims(g, -1)), -1)
    return matmul(swapaxes(a, -1, -2), g)


def _vector_as_matrix(v, other_nd: int, row: bool):
    """A batched vector ``(B, k)`` as ``(B, 1, ..., 1, k)`` (row) or ``(B, 1, ..., k, 1)``."""
    lead = (1,) * builtins.max(other_nd - 2, 0)
    tail = (1, v.shape[1]) if row else (v.shape[1], 1)
    return reshape(v, (v.shape[0], *lead, *tail))


def _matmul_batch(args, params, ex_ndim):
    (a, na), (b, nb) = args
    a, b = _operand(a, na), _operand(b, nb)
    ra = na if na is not None else _nd(a)
    rb = nb if nb is not None else _nd(b)
    if na is not None and ra == 1:
        if nb is None and rb <= 2:
            return matmul(a, b)  # (B, k) @ (k, n) or (k,): rows are the examples
        if nb is not None and rb == 1:
            return sum(a * b, axis=-1)
        return squeeze(matmul(_vector_as_matrix(a, rb, True), b), -2)
    if nb is not None and rb == 1:
        return squeeze(matmul(a, _vector_as_matrix(b, ra, False)), -1)
    r = builtins.max(ra, rb)
    return matmul(_align(a, na, r), _align(b, nb, r))


_MATMUL = defprim("matmul", _matmul_vjp_a, _matmul_vjp_b, batch=_matmul_batch)


@export
def matmul(a, b, stream=None) -> array:
    """Matrix product with NumPy's broadcasting of leading (batch) dimensions."""
    da, db, na, nb = _prep2(a, b)
    try:
        out = xp.matmul(da, db)
    except ValueError:
        raise ValueError(
            f"matmul: shapes {tuple(xp.shape(da))} and {tuple(xp.shape(db))} do not line up"
        ) from None
    if (na is None and nb is None) or not STATE.enabled:
        return _from_value(out)
    return _from_value(
        out, Node(out, _MATMUL, (na if na is not None else da, nb if nb is not None else db))
    )


@export
def addmm(c, a, b, alpha: float = 1.0, beta: float = 1.0, stream=None) -> array:
    """``alpha * (a @ b) + beta * c``."""
    prod = matmul(a, b)
    if alpha != 1.0:
        prod = prod * alpha
    return prod + (c if beta == 1.0 else _as(c) * beta)


@export
def inner(a, b, stream=None) -> array:
    """Inner product over the last axes."""
    a, b = _as(a), _as(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: shapes {a.shape} and {b.shape} do not line up")
    return tensordot(a, b, axes=([-1], [-1]))


@export
def outer(a, b, stream=None) -> array:
    """Outer product of two flattened arrays."""
    a, b = _as(a), _as(b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


@export
def tensordot(a, b, axes=2, stream=None) -> array:
    """Sum products over ``axes`` (an int, or two lists of axes)."""
    a, b = _as(a), _as(b)
    if isinstance(axes, int):
        ax_a = list(range(a.ndim - axes, a.ndim))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [x % a.ndim for x in ax_a]
    ax_b = [x % b.ndim for x in ax_b]
    if [a.shape[i] for i in ax_a] != [b.shape[i] for i in ax_b]:
        raise ValueError(f"tensordot: shapes {a.shape} and {b.shape} do not line up over axes")
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = 1
    for i in ax_a:
        k *= a.shape[i]
    at = reshape(transpose(a, free_a + ax_a), (-1, k))
    bt = reshape(transpose(b, ax_b + free_b), (k, -1))
    shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b)
    return reshape(matmul(at, bt), shape)


def _einsum_parse(subscripts: str, shapes: list):
    """Input terms and output term of ``subscripts``, with ellipses spelled out as letters."""
    s = subscripts.replace(" ", "")
    ins, arrow, out = s.partition("->")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, {len(shapes)} given")
    if "." in s:
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in s]
        dims = [len(sh) - (len(t) - 3) if "..." in t else 0 for t, sh in zip(ins, shapes)]
        n = builtins.max(dims)
        ell = "".join(free[:n])
        ins = [t.replace("...", ell[n - d :]) for t, d in zip(ins, dims)]
        if arrow:
            out = out.replace("...", ell)
        else:
            letters = [c for c in "".join(ins) if c not in ell]
            out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    elif not arrow:
        letters = [c for c in "".join(ins) if c.isalpha()]
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ins, out


def _einsum_vjp(g, ans, *xs, subscripts, argnum):
    ins, out = _einsum_parse(subscripts, [x.shape for x in xs])
    target = ins[argnum]
    others = [ins[j] for j in range(len(xs)) if j != argnum]
    present = set(out).union(*others) if others else set(out)
    unique = "".join(dict.fromkeys(target))  # letters in order of first appearance
    kept = "".join(c for c in unique if c in present)
    spec = ",".join([out] + others) + "->" + kept
    grad = einsum(spec, g, *[xs[j] for j in range(len(xs)) if j != argnum])
    shape = xs[argnum].shape
    if kept == target:
        return grad if grad.shape == shape else _fit_axes(grad, shape)
    # lay the gradient out over the operand's axes: first appearances carry the letter's axis,
    # summed-out letters broadcast, and repeated letters put it on the diagonal
    sizes = dict(zip(target, shape))
    first = {c: target.index(c) for c in unique}
    layout = [sizes[c] if c in kept and first[c] == i else 1 for i, c in enumerate(target)]
    grad = reshape(grad, layout)
    for i, c in enumerate(target):
        if first[c] != i:
            eye_shape = [1] * len(target)
            eye_shape[first[c]] = eye_shape[i] = sizes[c]
            grad = grad * _from_value(xp.eye(sizes[c], dtype=g._data.dtype).reshape(eye_shape))
    return _fit_axes(grad, shape)


def _fit_axes(g, shape):
    """``g`` with each axis summed or broadcast to ``shape`` (size-1 axes of the operands
    broadcast against the others both ways in einsum)."""
    summed = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    if summed:
        g = sum(g, summed, keepdims=True)
    return g if g.shape == shape else broadcast_to(g, shape)


_EINSUM = defprim("einsum", _einsum_vjp, variadic=True)


@export
def einsum(subscripts: str, *operands, stream=None) -> array:
    """Einstein summation (``mx.einsum``), differentiable in every operand.

    Ellipses and repeated letters (diagonals) are supported.
    """
    xs = tuple(_as(o) for o in operands)
    _einsum_parse(subscripts, [x.shape for x in xs])
    try:
        out = xp.einsum(subscripts, *[x._data for x in xs], optimize=len(xs) > 2)
    except ValueError as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"einsum: {subscripts!r} does not fit shapes {shapes}: {e}") from None
    return _rec(_EINSUM, out, xs, {"subscripts": subscripts})


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .reductions import sum  # noqa: E402
from .shapes import broadcast_to, expand_dims, reshape, squeeze, swapaxes, transpose  # noqa: E402
from .table import _as, _prep2, _rec  # noqa: E402
