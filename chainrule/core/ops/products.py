"""Matrix products: ``matmul``, ``addmm``, ``inner``, ``outer``, ``tensordot``, ``einsum``."""

from __future__ import annotations

import builtins
import math
import sys

from .. import dtypes as _dt
from .. import onednn
from ..array import STATE, Node, _from_value, array
from ..backend import array_module, same_device, xp
from ..tracing import kernel
from .table import (
    _align,
    _nd,
    _operand,
    defprim,
    export,
)

_GEMM_MIN = onednn.GEMM_MIN_WORK


@kernel
def _gemm(da, db):
    """``da @ db`` of two matrices or stacks: oneDNN's GEMM where it serves (``core/onednn.py``:
    float32 host arrays), else NumPy's; callers check ``GEMM_MIN_WORK`` first (a small
    product does not pay for the kernel wrapper). One step
    under ``mx.compile``, so a replay takes the same kernel."""
    out = onednn.matmul(da, db)
    return xp.matmul(da, db) if out is None else out


@kernel
def _folded_matmul(da, db):
    """Stacked ``(..., k)`` times a ``(k, n)`` matrix with the batch axes folded into the rows
    of one GEMM (NumPy's stacked matmul makes one small BLAS call per matrix, or none on odd
    strides). One step under ``mx.compile``, so a shapeless replay folds its own shapes."""
    rows = da.reshape(-1, da.shape[-1])
    out = _gemm(rows, db) if da.size * db.shape[-1] >= _GEMM_MIN else xp.matmul(rows, db)
    return out.reshape(da.shape[:-1] + db.shape[1:])


@kernel
def _addmm_kernel(dc, da, db, alpha, beta):
    """``alpha * (da @ db) + beta * dc`` with the bias added into the product's fresh result."""
    if da.ndim > 2:
        out = _folded_matmul(da, db)
    elif da.size * db.shape[-1] >= _GEMM_MIN:
        out = _gemm(da, db)
    else:
        out = xp.matmul(da, db)
    if alpha != 1.0:
        out *= alpha
    out += dc if beta == 1.0 else dc * beta
    return out


def _matmul_vjp_a(g, ans, a, b):
    if b.ndim == 1:
        return g * b if a.ndim == 1 else expand_dims(g, -1) * b
    if a.ndim == 1:
        return squeeze(matmul(b, expand_dims(g, -1)), -1)
    return matmul(g, swapaxes(b, -1, -2))


def _matmul_vjp_b(g, ans, a, b):
    bd = b._data
    if bd.ndim == 2 and a.ndim > 2 and g.size and a.shape[-1]:
        # a stacked (x @ W in a Linear over (T, N, D)): the batch axes fold into the rows of
        # one GEMM, instead of a batch of products summed over afterwards
        a = reshape(a, (-1, a.shape[-1]))
        g = reshape(g, (-1, g.shape[-1]))
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
    if AUTOCAST.dtype is not None:  # torch.autocast: compute in its dtype (recorded casts)
        a, b = autocast_arrays(a, b)
    da, db, na, nb = _prep2(a, b)
    try:
        if da.ndim > 2 and db.ndim == 2 and da.shape[-1] == db.shape[0] and da.size and db.size:
            out = _folded_matmul(da, db)  # one GEMM over the folded batch axes
        elif da.ndim >= 2 and db.ndim >= 2 and da.size * db.shape[-1] >= _GEMM_MIN:
            out = _gemm(da, db)  # (oneDNN's, where it serves: one call for a whole stack)
        else:
            out = xp.matmul(da, db)
    except ValueError:
        raise ValueError(
            f"matmul: shapes {tuple(xp.shape(da))} and {tuple(xp.shape(db))} do not line up"
        ) from None
    if out.dtype is not da.dtype and da.dtype.kind == "V":  # bfloat16 in, bfloat16 out (MLX)
        out = out.astype(da.dtype)
    if (na is None and nb is None) or not STATE.enabled:
        return _from_value(out)
    return _from_value(
        out, Node(out, _MATMUL, (na if na is not None else da, nb if nb is not None else db))
    )


matmul.takes_tensors = True  # type: ignore[attr-defined]  # reads only its operands' slots
matmul.handles = True  # type: ignore[attr-defined]  # so its operator ``@`` takes tensors too


def _addmm_vjp_c(g, ans, c, a, b, alpha, beta):
    return g if beta == 1.0 else g * beta


def _addmm_vjp_a(g, ans, c, a, b, alpha, beta):
    return _matmul_vjp_a(g if alpha == 1.0 else g * alpha, ans, a, b)


def _addmm_vjp_b(g, ans, c, a, b, alpha, beta):
    return _matmul_vjp_b(g if alpha == 1.0 else g * alpha, ans, a, b)


def _addmm_batch(args, params, ex_ndim):
    (c, nc), (a, na), (b, nb) = args
    if na is None and nb is None:
        prod, ex = matmul(_operand(a, na), _operand(b, nb)), None
    else:
        prod = _matmul_batch(((a, na), (b, nb)), params, ex_ndim)
        ex = prod.ndim - 1
    if params["alpha"] != 1.0:
        prod = prod * params["alpha"]
    c = _operand(c, nc)
    if nc is not None:
        c = _align(c, nc, prod.ndim if ex is None else ex)
    return prod + (c if params["beta"] == 1.0 else c * params["beta"])


_ADDMM = defprim("addmm", _addmm_vjp_c, _addmm_vjp_a, _addmm_vjp_b, batch=_addmm_batch)


def _addmm_fused(c, a, b, alpha: float, beta: float):
    """``addmm`` as one recorded primitive (one GEMM, the bias added into its fresh result):
    the graph keeps one activation instead of the product and the sum. ``None`` when the
    operands are not plain floating arrays of one dtype (the composite form handles those)."""
    if (
        AUTOCAST.dtype is not None
        or type(alpha) not in (int, float)
        or type(beta)
        not in (
            int,
            float,
        )
    ):
        return None
    if not (isinstance(c, array) and isinstance(a, array) and isinstance(b, array)):
        return None
    onnx = sys.modules.get("chainrule.viz.onnx")
    if onnx is not None and onnx.is_in_onnx_export():  # ONNX maps matmul and add, not this
        return None
    dc, da, db = c._data, a._data, b._data
    t = da.dtype
    if db.dtype != t or dc.dtype != t or t.kind != "f" or da.ndim < 2 or db.ndim != 2:
        return None
    if da.shape[-1] != db.shape[0] or not da.size or not db.size:
        return None
    out_shape = da.shape[:-1] + db.shape[1:]
    cs = dc.shape
    if cs != out_shape[-1:] and cs != out_shape:  # (a bias row, or the whole: no check needed)
        try:
            if xp.broadcast_shapes(cs, out_shape) != out_shape:
                return None
        except ValueError:
            return None
    out = _addmm_kernel(dc, da, db, alpha, beta)
    return _rec(_ADDMM, out, (c, a, b), {"alpha": alpha, "beta": beta})


@export
def addmm(c, a, b, alpha: float = 1.0, beta: float = 1.0, stream=None) -> array:
    """``alpha * (a @ b) + beta * c``; ``c`` must broadcast to the product's shape."""
    fused = _addmm_fused(c, a, b, alpha, beta)
    if fused is not None:
        return fused
    prod = matmul(a, b)
    c = _as(c)
    try:
        fits = xp.broadcast_shapes(c.shape, prod.shape) == prod.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"addmm: c of shape {c.shape} does not broadcast to the product's shape {prod.shape}"
        )
    if alpha != 1.0:
        prod = prod * alpha
    return prod + (c if beta == 1.0 else c * beta)


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
    m, n = 1, 1
    for i in free_a:
        m *= a.shape[i]
    for i in free_b:
        n *= b.shape[i]
    at = reshape(transpose(a, free_a + ax_a), (m, k))
    bt = reshape(transpose(b, ax_b + free_b), (k, n))
    shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b)
    return reshape(matmul(at, bt), shape)


def _einsum_parse(subscripts: str, shapes: list):
    """Input terms and output term of ``subscripts``, with ellipses spelled out as letters."""
    s = subscripts.replace(" ", "")
    ins_text, arrow, out = s.partition("->")
    ins = ins_text.split(",")
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
            eye = array_module(g._data).eye(sizes[c], dtype=g._data.dtype)  # on g's device
            grad = grad * _from_value(eye.reshape(eye_shape))
    return _fit_axes(grad, shape)


def _fit_axes(g, shape):
    """``g`` with each axis summed or broadcast to ``shape`` (size-1 axes of the operands
    broadcast against the others both ways in einsum)."""
    summed = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    if summed:
        g = sum(g, summed, keepdims=True)
    return g if g.shape == shape else broadcast_to(g, shape)


def _einsum_batch(args, params, ex_ndim):
    shapes = [tuple(v.shape[1:]) if n is not None else tuple(_nd_shape(v)) for v, n in args]
    ins, out = _einsum_parse(params["subscripts"], shapes)
    used = set("".join(ins) + out)
    letter = next(c for c in _LETTERS if c not in used)
    terms = [letter + t if n is not None else t for t, (_, n) in zip(ins, args)]
    spec = ",".join(terms) + "->" + letter + out
    return einsum(spec, *(_operand(v, n) for v, n in args))


def _nd_shape(v):
    return v.shape if type(v) is array else xp.shape(v)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_EINSUM = defprim("einsum", _einsum_vjp, variadic=True, batch=_einsum_batch)


@export
def einsum(subscripts: str, *operands, stream=None) -> array:
    """Einstein summation (``mx.einsum``), differentiable in every operand.

    Ellipses and repeated letters (diagonals) are supported.
    """
    xs = tuple(_as(o) for o in operands)
    _einsum_parse(subscripts, [x.shape for x in xs])
    datas = [x._data for x in xs]
    low = next((d.dtype for d in datas if d.dtype.kind == "V"), None)
    if low is not None:  # bfloat16: NumPy's einsum refuses it; compute in float32, round once
        datas = [d.astype(xp.float32) if d.dtype.kind == "V" else d for d in datas]
    try:
        out = xp.einsum(subscripts, *datas, optimize=len(xs) > 2)
        if low is not None and out.dtype == xp.float32:
            out = out.astype(low)
    except ValueError as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"einsum: {subscripts!r} does not fit shapes {shapes}: {e}") from None
    return _rec(_EINSUM, out, xs, {"subscripts": subscripts})


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from ..devices import AUTOCAST, autocast_arrays  # noqa: E402
from .elementwise import astype, conj  # noqa: E402
from .indexing import take  # noqa: E402
from .reductions import sum  # noqa: E402
from .shapes import (  # noqa: E402
    _check_dims,
    broadcast_to,
    expand_dims,
    reshape,
    squeeze,
    swapaxes,
    transpose,
)
from .table import _as, _prep2, _rec  # noqa: E402


@export
def einsum_path(subscripts: str, *operands, stream=None) -> tuple[list, str]:
    """The contraction order ``einsum`` would use (NumPy's greedy ``einsum_path``).

    Returns:
        ``(path, report)``: the list of operand-index tuples contracted in turn, and the
        readable report.
    """
    xs = [_as(o) for o in operands]
    _einsum_parse(subscripts, [x.shape for x in xs])
    # only the shapes matter: zero-strided stand-ins allocate nothing
    stand_ins = [xp.broadcast_to(xp.zeros((), x._data.dtype), x.shape) for x in xs]
    try:
        path, report = xp.einsum_path(subscripts.replace(" ", ""), *stand_ins, optimize="greedy")
    except ValueError as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"einsum_path: {subscripts!r} does not fit shapes {shapes}: {e}") from None
    return [tuple(int(i) for i in step) for step in path[1:]], report


@export
def kron(a, b, stream=None) -> array:
    """The Kronecker product: every element of ``a`` times the whole of ``b``."""
    a, b = _as(a), _as(b)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"kron: empty inputs of shapes {a.shape} and {b.shape}")
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    _check_dims(tuple(x * y for x, y in zip(sa, sb)), "kron")
    ea = reshape(a, tuple(x for s in sa for x in (s, 1)))
    eb = reshape(b, tuple(x for s in sb for x in (1, s)))
    return reshape(ea * eb, tuple(x * y for x, y in zip(sa, sb)))


@export
def vecdot(a, b, axis: int = -1, stream=None) -> array:
    """``sum(conj(a) * b)`` over ``axis`` (the array API's vector dot product)."""
    a, b = _as(a), _as(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"vecdot: inputs must have at least one dimension, got {a.shape}")
    nd = builtins.max(a.ndim, b.ndim)
    if not -nd <= axis < nd:
        raise ValueError(f"vecdot: axis {axis} is out of range for shapes {a.shape}, {b.shape}")
    ax = axis % nd - nd  # counted from the end, where the shapes align
    if -ax > a.ndim or -ax > b.ndim or a.shape[ax] != b.shape[ax]:
        raise ValueError(f"vecdot: shapes {a.shape} and {b.shape} differ on axis {axis}")
    if a._data.dtype.kind == "c":
        a = conj(a)
    return sum(a * b, axis=ax)


def _matmul_operands(a, b, name: str):
    """``a``, ``b`` as floating matrices (vectors made matrices), with MLX's checks."""
    a, b = _as(a), _as(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"{name}: inputs must have at least one dimension")
    if a.ndim == 1:
        a = expand_dims(a, 0)
    if b.ndim == 1:
        b = expand_dims(b, 1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} do not line up")
    t = _dt.promote(a._data.dtype, b._data.dtype)
    if xp.dtype(t).kind not in "fV":  # V: bfloat16
        raise ValueError(f"{name}: only real floating types are supported, got {t}")
    return astype(a, t), astype(b, t)


def _gather_indices(ind, x, name: str):
    if ind is None:
        batch = x.shape[:-2]
        return xp.arange(int(math.prod(batch)), dtype=xp.uint32).reshape(batch)
    if type(ind) is array and ind._node is not None and STATE.enabled:
        raise ValueError(
            f"{name}: the indices are being differentiated; wrap them in mx.stop_gradient"
        )
    d = _as(ind)._data
    if d.dtype.kind not in "iu":
        raise ValueError(f"{name}: indices must be integers, got {d.dtype}")
    return d


@export
def gather_mm(
    a, b, lhs_indices=None, rhs_indices=None, *, sorted_indices: bool = False, stream=None
) -> array:
    """Matrix products of the matrices of ``a`` and ``b`` picked by the (broadcast) indices.

    The indices address the flattened batch axes of each operand; the result has the
    indices' broadcast shape followed by the product's two axes.
    """
    if lhs_indices is None and rhs_indices is None:
        return matmul(a, b)
    a_nd, b_nd = _as(a).ndim, _as(b).ndim
    a, b = _matmul_operands(a, b, "gather_mm")
    li = _gather_indices(lhs_indices, a, "gather_mm")
    ri = _gather_indices(rhs_indices, b, "gather_mm")
    li, ri = xp.broadcast_arrays(li, ri)
    fa = reshape(a, (-1,) + a.shape[-2:])
    fb = reshape(b, (-1,) + b.shape[-2:])
    out = matmul(take(fa, _from_value(li), 0), take(fb, _from_value(ri), 0))
    drop = ([-2] if a_nd == 1 else []) + ([-1] if b_nd == 1 else [])
    return squeeze(out, drop) if drop else out


def _block_mask(mask, block_size: int, rows: int, cols: int, dtype):
    """A block mask ``(..., rows / bs, cols / bs)`` spread over elements ``(..., rows, cols)``."""
    m = expand_dims(_as(mask), (-3, -1))
    shape = m.shape[:-4] + (m.shape[-4], block_size, m.shape[-2], block_size)
    m = reshape(broadcast_to(m, shape), shape[:-4] + (shape[-4] * block_size, -1))
    return astype(m[..., :rows, :cols], dtype)


@export
def block_masked_mm(
    a, b, block_size: int = 64, mask_out=None, mask_lhs=None, mask_rhs=None, stream=None
) -> array:
    """Matrix product with block masks (``block_size`` square blocks) on the operands and
    on the output; float masks scale their blocks (MLX's ``block_masked_mm``)."""
    if mask_out is None and mask_lhs is None and mask_rhs is None:
        return matmul(a, b)
    if block_size not in (32, 64):
        raise ValueError(f"block_masked_mm: block_size must be 32 or 64, got {block_size}")
    a_nd, b_nd = _as(a).ndim, _as(b).ndim
    a, b = _matmul_operands(a, b, "block_masked_mm")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if mask_lhs is not None:
        lhs = _as(mask_lhs)
        a = a * _block_mask(expand_dims(lhs, -2) if a_nd == 1 else lhs, block_size, m, k, a.dtype)
    if mask_rhs is not None:
        rhs = _as(mask_rhs)
        b = b * _block_mask(expand_dims(rhs, -1) if b_nd == 1 else rhs, block_size, k, n, b.dtype)
    out = matmul(a, b)
    if mask_out is not None:
        mo = _as(mask_out)
        if a_nd == 1:
            mo = expand_dims(mo, -2)
        if b_nd == 1:
            mo = expand_dims(mo, -1)
        out = out * _block_mask(mo, block_size, m, n, out.dtype)
    drop = ([-2] if a_nd == 1 else []) + ([-1] if b_nd == 1 else [])
    return squeeze(out, drop) if drop else out


@export
def segmented_mm(a, b, segments, stream=None) -> array:
    """For each ``[start, end)`` pair in ``segments`` (shape ``(..., 2)``), the product of
    ``a[:, start:end]`` and ``b[start:end, :]``: the result is ``(..., M, N)``."""
    a, b = _as(a), _as(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"segmented_mm: a and b must be matrices (no batch), got {a.shape} and {b.shape}"
        )
    a, b = _matmul_operands(a, b, "segmented_mm")
    # host segments (a list, a NumPy array) go next to a; the mask is built on their device
    seg = same_device(_as(segments)._data, a._data)
    if seg.ndim < 1 or seg.shape[-1] != 2:
        raise ValueError(f"segmented_mm: segments must have shape (..., 2), got {seg.shape}")
    k = array_module(seg).arange(a.shape[-1])
    lo, hi = seg[..., :1].astype(xp.int64), seg[..., 1:].astype(xp.int64)
    inside = ((k >= lo) & (k < hi)).astype(a._data.dtype)  # (..., K)
    picked = a * _from_value(inside[..., None, :])  # (..., M, K)
    return matmul(picked, b)
