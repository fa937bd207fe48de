"""Reductions and scans: ``sum``, ``max``, ``logsumexp``, ``mean``, ``cumsum``, ..."""

from __future__ import annotations

import builtins
import math
from typing import Any

from .. import dtypes as _dt
from ..array import _from_value, array, note_origin
from ..backend import array_module as _array_module
from ..backend import is_gpu as _is_gpu
from ..backend import ndarray as _ndarray
from ..backend import reduce_max as _reduce_max
from ..backend import reduce_sum as _reduce_sum
from ..backend import same_device as _same_device
from ..backend import via_host as _via_host
from ..backend import xp
from ..tracing import kernel
from .table import (
    defprim,
    export,
    value_branch,
)

_AXES_CACHE: dict = {}


def _axes(axis, ndim: int, name: str) -> tuple:
    """``axis`` (None, an int or a sequence) as a sorted tuple of non-negative axes.

    Normalised forms are cached: reductions sit on the hot path of every loss.
    """
    if axis is None or type(axis) is int or type(axis) is tuple:
        key = (axis, ndim)
        got = _AXES_CACHE.get(key)
        if got is None:
            got = _AXES_CACHE[key] = _axes_slow(axis, ndim, name)
        return got
    return _axes_slow(axis, ndim, name)


def _axes_slow(axis, ndim: int, name: str) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int) or hasattr(axis, "__index__"):
        axis = (int(axis),)
    out = []
    for ax in axis:
        if not -ndim <= ax < ndim or (ndim == 0 and ax not in (0, -1)):
            raise _AxisError(
                f"{name}: axis {ax} is out of bounds for an array of {ndim} dimensions"
            )
        out.append(ax % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {tuple(axis)}")
    return tuple(sorted(out))


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_back(g, shape: tuple, axes: tuple, keepdims: bool):
    """A reduced cotangent broadcast back over the reduced axes."""
    if not keepdims and len(axes) < len(shape):  # a full reduction's 0-d g broadcasts as is
        g = reshape(g, _kept_shape(shape, axes))
    return broadcast_to_shape(g, shape)


def _reduce_vjp_sum(g, ans, x, axes, keepdims):
    return _expand_back(g, x.shape, axes, keepdims)


def _reduce_vjp_extreme(g, ans, x, axes, keepdims):
    # ties share the cotangent equally, as MLX's max/min rules do
    a = ans if keepdims else reshape(ans, _kept_shape(x.shape, axes))
    mask = astype(x == a, g.dtype)
    count = sum(mask, axis=axes, keepdims=True)
    return _expand_back(g, x.shape, axes, keepdims) * mask / count


def _reduce_vjp_prod(g, ans, x, axes, keepdims):
    # the product of all the *other* elements, from two exclusive scans: exact when x has zeros
    if not axes:
        return g
    if len(axes) == 1:
        ax = axes[0]
        others = cumprod(x, ax, inclusive=False) * cumprod(x, ax, reverse=True, inclusive=False)
    else:
        rest = [i for i in range(x.ndim) if i not in axes]
        moved = transpose(x, rest + list(axes))
        flat = reshape(moved, moved.shape[: len(rest)] + (-1,))
        others = cumprod(flat, -1, inclusive=False) * cumprod(
            flat, -1, reverse=True, inclusive=False
        )
        others = transpose(reshape(others, moved.shape), _inverse_perm(rest + list(axes)))
    return others * _expand_back(g, x.shape, axes, keepdims)


def _reduce_vjp_lse(g, ans, x, axes, keepdims):
    a = ans if keepdims else reshape(ans, _kept_shape(x.shape, axes))
    return _expand_back(g, x.shape, axes, keepdims) * exp(x - a)


def _batched_reduce(fn, args, params):
    ((x, nd),) = args
    axes = tuple(a % nd + 1 for a in params["axes"]) if nd else ()
    return fn(x, axis=axes, keepdims=params["keepdims"])


_SUM = defprim(
    "sum", _reduce_vjp_sum, batch=lambda args, params, nd: _batched_reduce(sum, args, params)
)
_add_reduce = xp.add.reduce  # the ufunc itself: np.sum's dispatch costs microseconds
_PROD = defprim(
    "prod", _reduce_vjp_prod, batch=lambda args, params, nd: _batched_reduce(prod, args, params)
)
_MAX = defprim(
    "max", _reduce_vjp_extreme, batch=lambda args, params, nd: _batched_reduce(max, args, params)
)
_MIN = defprim(
    "min", _reduce_vjp_extreme, batch=lambda args, params, nd: _batched_reduce(min, args, params)
)
_LSE = defprim(
    "logsumexp",
    _reduce_vjp_lse,
    batch=lambda args, params, nd: _batched_reduce(logsumexp, args, params),
)
_max_reduce = xp.maximum.reduce
_isfinite = xp.isfinite


def _int_acc(d):
    """Integer sums keep their type (MLX); bools sum as int32."""
    kind = d.dtype.kind
    if kind == "b":
        return xp.int32
    if kind in "iu":
        return d.dtype
    return None


@export(method=True)
def sum(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Sum over ``axis`` (all axes by default)."""
    a = _as(a)
    d = a._data
    axes = _axes(axis, d.ndim, "sum")
    kind = d.dtype.kind
    if type(d) is not _ndarray and _is_gpu(d):  # the function form (CuPy has no add.reduce)
        out = _reduce_sum(d, axes, xp.float32 if kind == "V" else _int_acc(d), keepdims)
        out = out.astype(d.dtype) if kind == "V" else out
    elif kind in "fc":
        out = _add_reduce(d, axes, None, None, keepdims)
    elif kind == "V":  # bfloat16 accumulates in float32 (MLX), then rounds once
        out = _add_reduce(d, axes, xp.float32, None, keepdims).astype(d.dtype)
    else:
        out = _add_reduce(d, axes, _int_acc(d), None, keepdims)
    return _rec(_SUM, out, (a,), {"axes": axes, "keepdims": keepdims})


def _prod_acc(d):
    """Products of small integers accumulate in 32 bits (MLX): bool and int8/16 as int32,
    uint8/16 as uint32; wider types keep theirs."""
    kind = d.dtype.kind
    if kind == "b" or (kind == "i" and d.dtype.itemsize < 4):
        return xp.int32
    if kind == "u" and d.dtype.itemsize < 4:
        return xp.uint32
    return _int_acc(d)


@export(method=True)
def prod(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Product over ``axis``."""
    a = _as(a)
    d = a._data
    axes = _axes(axis, d.ndim, "prod")
    out = xp.prod(d, axis=axes, keepdims=keepdims, dtype=_prod_acc(d))
    return _rec(_PROD, out, (a,), {"axes": axes, "keepdims": keepdims})


def _extreme(prim, kernel, name):
    def op(a, axis=None, keepdims: bool = False, stream=None) -> array:
        a = _as(a)
        d = a._data
        axes = _axes(axis, d.ndim, name)
        if d.size == 0 and (not d.ndim or builtins.any(d.shape[ax] == 0 for ax in axes)):
            raise ValueError(f"{name}: cannot reduce an empty axis of shape {a.shape}")
        out = kernel(d, axis=axes, keepdims=keepdims)
        return _rec(prim, out, (a,), {"axes": axes, "keepdims": keepdims})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The {name}imum over ``axis`` (ties share the gradient equally)."
    return op


max: Any = export(_extreme(_MAX, xp.max, "max"), method=True)
min: Any = export(_extreme(_MIN, xp.min, "min"), method=True)
amax = export(max, name="amax")
amin = export(min, name="amin")


@kernel
@value_branch
def _lse_kernel(d, axes):
    cpu = type(d) is _ndarray  # the ufuncs' reduce directly (CuPy's function forms otherwise)
    if not d.size:
        m = xp.zeros((1,) * d.ndim, d.dtype)
    else:
        m = _max_reduce(d, axis=axes, keepdims=True) if cpu else _reduce_max(d, axes, True)
    if _isfinite(m).all():
        e = xp.exp(d - m)
        out = xp.log(
            _add_reduce(e, axes, None, None, True) if cpu else _reduce_sum(e, axes, None, True)
        )
        out += m
    else:
        m = xp.where(xp.isfinite(m), m, 0)
        with xp.errstate(divide="ignore"):  # all -inf gives -inf, quietly (as MLX)
            out = xp.log(xp.sum(xp.exp(d - m), axis=axes, keepdims=True)) + m
    return out


@export(method=True)
def logsumexp(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """``log(sum(exp(a)))`` over ``axis``, computed stably."""
    a = _as(a)
    d = a._data
    if d.dtype.kind in "biu":
        d = d.astype(xp.float32)
        a = _from_value(d)
    axes = _axes(axis, d.ndim, "logsumexp")
    out = _lse_kernel(d, axes)
    if not keepdims:
        out = out.reshape(tuple(s for i, s in enumerate(d.shape) if i not in axes))
    return _rec(_LSE, out, (a,), {"axes": axes, "keepdims": keepdims})


@export(method=True)
def mean(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Arithmetic mean over ``axis``."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "mean")
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    return sum(a, axes, keepdims) * (1.0 / n if n else math.nan)


@export(method=True)
def var(a, axis=None, keepdims: bool = False, ddof: int = 0, stream=None) -> array:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "var")
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    centred = a - mean(a, axes, keepdims=True)
    if a._data.dtype.kind == "c":  # |x - mean|^2: a real variance (MLX, NumPy)
        squares = real(centred * conj(centred))
    else:
        squares = centred * centred
    return sum(squares, axes, keepdims) * (
        1.0 / builtins.max(n - ddof, 0) if n - ddof > 0 else math.inf
    )


@export(method=True)
def std(a, axis=None, keepdims: bool = False, ddof: int = 0, stream=None) -> array:
    """Standard deviation over ``axis``."""
    return sqrt(var(a, axis, keepdims, ddof))


def _arg_extreme(kernel, name):
    def op(a, axis=None, keepdims: bool = False, stream=None) -> array:
        a = _as(a)
        d = a._data
        if d.size == 0:
            raise ValueError(f"{name}: cannot reduce an empty array")
        if axis is None:
            out = kernel(d.reshape(-1))
            if keepdims:
                out = xp.reshape(out, (1,) * d.ndim)
        else:
            (ax,) = _axes(axis, d.ndim, name)
            out = kernel(d, axis=ax, keepdims=keepdims)
        out = _array_module(d).asarray(out, dtype=xp.uint32)
        if a._node is not None:  # a token read from a recorded graph: mx.eval releases it
            note_origin(out, a._node)
        return _from_value(out)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Indices of the {name[3:]}imum along ``axis`` (uint32, as in MLX)."
    return op


argmax = export(_arg_extreme(xp.argmax, "argmax"), method=True)
argmin = export(_arg_extreme(xp.argmin, "argmin"), method=True)


@export(method=True)
def all(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """True where every element over ``axis`` is true."""
    d = _as(a)._data
    return _from_value(xp.all(d, axis=_axes(axis, d.ndim, "all"), keepdims=keepdims))


@export(method=True)
def any(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """True where some element over ``axis`` is true."""
    d = _as(a)._data
    return _from_value(xp.any(d, axis=_axes(axis, d.ndim, "any"), keepdims=keepdims))


def _cumsum_vjp(g, ans, x, axis, reverse, inclusive):
    return cumsum(g, axis=axis, reverse=not reverse, inclusive=inclusive)


def _batched_scan(fn, args, params):
    ((x, nd),) = args
    axis = params["axis"] % nd + 1
    return fn(x, axis=axis, reverse=params["reverse"], inclusive=params["inclusive"])


_CUMSUM = defprim(
    "cumsum", _cumsum_vjp, batch=lambda args, params, nd: _batched_scan(cumsum, args, params)
)


def _scan(kernel, d, axis, reverse, inclusive, identity):
    if reverse:
        d = xp.flip(d, axis)
    out = kernel(d, axis=axis)
    if not inclusive:
        pad = [(0, 0)] * d.ndim
        pad[axis] = (1, 0)
        out = xp.pad(out, pad, constant_values=identity)
        out = out[(_slice(None),) * axis + (_slice(0, d.shape[axis]),)]
    if reverse:
        out = xp.flip(out, axis)
    return out


def _scan_axis(a, axis, name):
    if axis is None:
        return reshape(a, (-1,)), 0
    return a, _axes(axis, a.ndim, name)[0]


@export(method=True)
def cumsum(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
    """Cumulative sum along ``axis`` (the flattened array when ``axis`` is None)."""
    a, ax = _scan_axis(_as(a), axis, "cumsum")
    d = a._data
    acc = _int_acc(d) if d.dtype.kind != "V" else xp.float32  # bfloat16: float32 running sums
    out = _scan(lambda v, axis: xp.cumsum(v, axis=axis, dtype=acc), d, ax, reverse, inclusive, 0)
    if out.dtype != d.dtype and d.dtype.kind == "V":
        out = out.astype(d.dtype)
    return _rec(_CUMSUM, out, (a,), {"axis": ax, "reverse": reverse, "inclusive": inclusive})


def _cumprod_vjp(g, ans, x, axis, reverse, inclusive):
    # d out_j / d x_k = out_j / x_k for k in the scan of j: one scan when x has no zeros
    if x._data.all():
        return cumsum(g * ans, axis=axis, reverse=not reverse, inclusive=inclusive) / x
    return _cumprod_vjp_dense(g, x, axis, reverse, inclusive)


def _cumprod_vjp_dense(g, x, axis, reverse, inclusive):
    """The zero-safe rule: for each k, the scan of x with x_k replaced by one (n * n values).

    Exact to any order, unlike dividing by x; used only when x holds zeros.
    """
    xm, gm = moveaxis(x, axis, -1), moveaxis(g, axis, -1)
    if reverse:
        xm, gm = flip(xm, -1), flip(gm, -1)
    n = xm.shape[-1]
    dev = x._data
    eye = _same_device(xp.eye(n, dtype=bool), dev)
    skip_k = where(_from_value(eye), 1, expand_dims(xm, -2))  # [..., k, j]
    scans = cumprod(skip_k, -1, inclusive=inclusive)
    tri = xp.triu(xp.ones((n, n), dtype=x._data.dtype), 0 if inclusive else 1)
    after_k = _from_value(_same_device(tri, dev))
    out = sum(scans * expand_dims(gm, -2) * after_k, axis=-1)
    if reverse:
        out = flip(out, -1)
    return moveaxis(out, -1, axis)


_CUMPROD = defprim(
    "cumprod", _cumprod_vjp, batch=lambda args, params, nd: _batched_scan(cumprod, args, params)
)


@export(method=True)
def cumprod(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
    """Cumulative product along ``axis``."""
    a, ax = _scan_axis(_as(a), axis, "cumprod")
    acc = _int_acc(a._data)  # integers keep their type (and wrap), as in MLX
    out = _scan(
        lambda v, axis: xp.cumprod(v, axis=axis, dtype=acc), a._data, ax, reverse, inclusive, 1
    )
    return _rec(_CUMPROD, out, (a,), {"axis": ax, "reverse": reverse, "inclusive": inclusive})


def _extreme_identity(dtype, largest: bool):
    """The identity of a running maximum (``largest``) or minimum, for an exclusive scan."""
    if dtype.kind == "b":
        return not largest
    if dtype.kind in "iu":
        info = xp.iinfo(dtype)
        return info.min if largest else info.max
    return -math.inf if largest else math.inf


def _cum_extreme(ufunc, name):
    def op(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
        a, ax = _scan_axis(_as(a), axis, name)
        d = a._data
        n = d.shape[ax]
        if n == 0:
            return a
        # the running extreme comes from the latest position holding it: gather from there, so
        # the gradient reaches that element
        src = xp.flip(d, ax) if reverse else d
        pos = xp.arange(n).reshape([-1 if i == ax else 1 for i in range(d.ndim)])
        pos = _same_device(pos, d)
        acc = _via_host(ufunc.accumulate, src, axis=ax)  # CuPy has no .accumulate
        # a NaN propagates (as in NumPy and MLX): it is the extreme from its place on
        hit = xp.where((src == acc) | (src != src), pos, 0)
        idx = _via_host(xp.maximum.accumulate, xp.broadcast_to(hit, d.shape), axis=ax)
        if reverse:
            idx = xp.flip(n - 1 - idx, ax)
        out = take_along_axis(a, _from_value(idx), ax)
        if inclusive:
            return out
        # exclusive: shifted one step along the scan, the first place holds the identity
        shape = tuple(1 if i == ax else s for i, s in enumerate(d.shape))
        ident = full(shape, _extreme_identity(d.dtype, ufunc is xp.maximum), d.dtype, _device_of(a))
        keep = [_slice(None)] * d.ndim
        keep[ax] = _slice(1, None) if reverse else _slice(None, n - 1)
        parts = [out[tuple(keep)], ident] if reverse else [ident, out[tuple(keep)]]
        return concatenate(parts, ax)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Cumulative {name[3:]}imum along ``axis`` (differentiable)."
    return op


cummax = export(_cum_extreme(xp.maximum, "cummax"), method=True)
cummin = export(_cum_extreme(xp.minimum, "cummin"), method=True)


def _lcse_kernel(d, axis):
    """The inclusive forward running ``log(sum(exp))`` along ``axis``."""
    if d.dtype.kind != "c":
        return _via_host(xp.logaddexp.accumulate, d, axis=axis)  # CuPy has no .accumulate
    m = xp.max(d.real, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    with xp.errstate(divide="ignore"):
        return xp.log(xp.cumsum(xp.exp(d - m), axis=axis)) + m


def _lcse_vjp(g, ans, x, axis, reverse):
    # d out_j / d x_k = exp(x_k - out_j) for k in the scan of j; shifted by the (constant)
    # largest input so the exponentials stay in range
    shift = stop_gradient(max(x, axis=axis, keepdims=True))
    shift = where(isfinite(shift), shift, 0)
    back = cumsum(g * exp(shift - ans), axis=axis, reverse=not reverse)
    return back * exp(x - shift)


def _lcse_batch(args, params, ex_ndim):
    ((x, nd),) = args
    return _logcumsumexp_inclusive(x, params["axis"] % nd + 1, params["reverse"])


_LCSE = defprim("logcumsumexp", _lcse_vjp, batch=_lcse_batch)


def _logcumsumexp_inclusive(a, ax: int, reverse: bool) -> array:
    d = a._data
    if d.dtype.kind in "biu":
        d = d.astype(xp.float32)
        a = _from_value(d)
    with xp.errstate(invalid="ignore"):
        out = xp.flip(_lcse_kernel(xp.flip(d, ax), ax), ax) if reverse else _lcse_kernel(d, ax)
    return _rec(_LCSE, out, (a,), {"axis": ax, "reverse": reverse})


@export(method=True)
def logcumsumexp(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
    """Cumulative ``logsumexp`` along ``axis`` (the flattened array when ``axis`` is None)."""
    a, ax = _scan_axis(_as(a), axis, "logcumsumexp")
    out = _logcumsumexp_inclusive(a, ax, reverse)
    if inclusive or a.shape[ax] == 0:
        return out
    n = a.shape[ax]
    shape = tuple(1 if i == ax else s for i, s in enumerate(out.shape))
    ident = full(shape, -math.inf, out.dtype, _device_of(out))
    keep = [_slice(None)] * out.ndim
    keep[ax] = _slice(1, None) if reverse else _slice(None, n - 1)
    parts = [out[tuple(keep)], ident] if reverse else [ident, out[tuple(keep)]]
    return concatenate(parts, ax)


@export
def count_nonzero(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """The number of non-zero elements over ``axis`` (int32)."""
    a = _as(a)
    return sum(not_equal(a, 0), axis, keepdims)


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .creation import _device_of, full  # noqa: E402
from .elementwise import (  # noqa: E402
    astype,
    conj,
    exp,
    isfinite,
    not_equal,
    real,
    sqrt,
    stop_gradient,
    where,
)
from .indexing import flip, take_along_axis  # noqa: E402
from .shapes import (  # noqa: E402
    _inverse_perm,
    broadcast_to_shape,
    concatenate,
    expand_dims,
    moveaxis,
    reshape,
    transpose,
)
from .table import _as, _AxisError, _rec, _slice  # noqa: E402
