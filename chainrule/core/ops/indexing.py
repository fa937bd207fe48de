"""Indexing, scatters, sorting and the diagonal/triangle helpers."""

from __future__ import annotations

import builtins
import math
from operator import index as _as_index

from .. import backend as _backend
from .. import dtypes as _dt
from ..array import STATE, Node, _from_value, array
from ..backend import DEFAULT_XP as _DEFAULT_XP
from ..backend import as_array as _as_array
from ..backend import copy_of as _copy_of
from ..backend import is_gpu as _is_gpu
from ..backend import same_device as _same_device
from ..backend import scalar_if_0d as _scalar_if_0d
from ..backend import scatter_add as _scatter_add_at
from ..backend import via_host as _via_host
from ..backend import xp
from ..tracing import kernel
from .table import (
    Primitive,
    Unbatchable,
    defprim,
    export,
    pass_rule,
    value_branch,
)

_INT32 = 2**31 - 1
_Ellipsis = type(Ellipsis)


def _check_int32(i) -> None:
    """Python ints in an index must fit int32, as MLX's indices do (ValueError otherwise)."""
    t = type(i)
    if t is int:
        if not -_INT32 - 1 <= i <= _INT32:
            raise ValueError(f"getitem: index {i} is outside the int32 range")
    elif t is _slice:
        for v in (i.start, i.stop, i.step):
            if type(v) is int and not -_INT32 - 1 <= v <= _INT32:
                raise ValueError(f"getitem: slice bound {v} is outside the int32 range")


def _clean_index(idx):
    """Turn chainrule arrays inside an index into backend values."""
    t = type(idx)
    if t is int or t is _slice:
        _check_int32(idx)
        return idx
    if t is array or t in _SUBCLASSES or (t is not tuple and isinstance(idx, array)):
        return idx._data  # (a subclass not met before is a handle too)
    if t is tuple:
        arrays = False
        for i in idx:  # one pass: the bounds checked, arrays looked for
            ti = type(i)
            if ti is int or ti is _slice:
                _check_int32(i)
            elif ti is not _Ellipsis and i is not None and isinstance(i, array):
                arrays = True
        return tuple([i._data if isinstance(i, array) else i for i in idx]) if arrays else idx
    if t is list:
        return xp.asarray([_clean_index(i) for i in idx])
    return idx


def _is_basic(idx) -> bool:
    items = idx if type(idx) is tuple else (idx,)
    for i in items:
        if not (i is None or i is Ellipsis or type(i) in (int, _slice)):
            return False
    return True


# The indexing kernels read a traced index's values (NumPy asks for ``__index__``): vmap's
# replay batches over the index itself (it is in the node's params), so the reads are allowed.
@kernel
@value_branch
def _scatter_add_kernel(x, idx, v):
    cpu = type(x) is xp.ndarray
    out = xp.array(x) if cpu else _copy_of(x)
    if _is_basic(idx):
        out[idx] += v
    elif cpu:
        if not _rows_by_sorting(out, idx, v):
            xp.add.at(out, idx, v)
    else:
        _scatter_add_at(out, idx, v)  # numpy.add.at, or cupyx.scatter_add on the GPU
    return out


def _rows_by_sorting(out, idx, v) -> bool:
    """``out[idx] += v`` for one integer index array picking whole rows of ``out`` (an
    embedding's gradient), as a stable sort of the indices, one ``add.reduceat`` of the rows in
    that order and one fancy-indexed add: twice as fast as ``add.at`` on 700 rows of 128 (the
    sums of each row's repeats in the same order; 1 ulp from ``add.at`` where three or more
    repeat). Small or negative indices, partial rows and broadcast values: ``False`` (the
    caller runs ``add.at``)."""
    if type(idx) is tuple:
        if len(idx) != 1:
            return False
        idx = idx[0]
    if type(idx) is not xp.ndarray or idx.dtype.kind not in "iu" or out.ndim < 2:
        return False
    n = idx.size
    row = out.size // out.shape[0] if out.shape[0] else 0
    if n < 64 or row < 16 or v.shape != idx.shape + out.shape[1:]:
        return False
    flat = idx.reshape(-1)
    order = xp.argsort(flat, kind="stable")
    s = flat[order]
    if s[0] < 0:
        return False  # negative indices: add.at's own wrap-around
    first = xp.empty(n, bool)
    first[0] = True
    xp.not_equal(s[1:], s[:-1], out=first[1:])
    starts = xp.flatnonzero(first)
    sums = xp.add.reduceat(v.reshape(n, row)[order], starts, axis=0)
    out.reshape(out.shape[0], row)[s[starts]] += sums
    return True


def _getitem_vjp(g, ans, x, idx):
    return _scatter_add(_zeros_near(x.shape, g.dtype, g._data), idx, g)


class Mapped:
    """An index component that differs between the examples of a ``vmap``: its batched value
    (batch axis first). ``vmap``'s replay puts these into the ``idx`` of the indexing
    primitives when an index array was computed from the mapped inputs."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _is_array_item(i) -> bool:
    return type(i) is Mapped or isinstance(i, xp.ndarray)


def _batch_index(idx, x_ndim: int, size: int):
    """``(bidx, perm)``: ``transpose(xb[bidx], perm)`` is every example's ``x[idx]``, batch
    first, for ``xb`` the batched ``x`` (``perm`` None when no transpose is needed)."""
    items = list(idx) if type(idx) is tuple else [idx]
    consumed = 0
    for i in items:
        if i is None or i is Ellipsis:
            continue
        if type(i) is Mapped:
            if i.value.dtype == xp.bool_:
                raise Unbatchable("an index mask that differs between examples")
            consumed += 1
        elif isinstance(i, xp.ndarray) and i.dtype == xp.bool_:
            consumed += i.ndim
        else:
            consumed += 1
    for k, i in enumerate(items):
        if i is Ellipsis:
            items[k : k + 1] = [_slice(None)] * (x_ndim - consumed)
            break
    flat = []
    for i in items:  # a constant mask is its integer positions
        if isinstance(i, xp.ndarray) and i.dtype == xp.bool_:
            flat.extend(xp.nonzero(i))
        else:
            flat.append(i)
    items = flat
    if not builtins.any(_is_array_item(i) for i in items):
        return (_slice(None), *items), None
    adv = [
        k for k, i in enumerate(items) if _is_array_item(i) or not (i is None or type(i) is _slice)
    ]
    shapes = [
        i.value.shape[1:] if type(i) is Mapped else xp.shape(i) for i in (items[k] for k in adv)
    ]
    adv_nd = len(xp.broadcast_shapes(*shapes))
    adjacent = adv == list(range(adv[0], adv[0] + len(adv)))
    before = builtins.sum(1 for i in items[: adv[0]] if i is None or type(i) is _slice)
    n_rest = builtins.sum(1 for i in items if i is None or type(i) is _slice)
    n_rest += x_ndim - builtins.sum(1 for i in items if i is not None)
    bidx = [xp.arange(size).reshape((size,) + (1,) * adv_nd)]
    for i in items:
        if type(i) is Mapped:
            v = i.value
            i = v.reshape((size,) + (1,) * (adv_nd - (v.ndim - 1)) + v.shape[1:])
        bidx.append(i)
    p = before if adjacent else 0
    if p == 0:
        return tuple(bidx), None
    rest = [1 + adv_nd + j for j in range(n_rest)]
    perm = [0, *rest[:p], *range(1, 1 + adv_nd), *rest[p:]]
    return tuple(bidx), tuple(perm)


def _batched_operand(x, nd, size: int, x_ndim: int):
    """``x`` with a batch axis first (an unbatched ``x`` is repeated ``size`` times)."""
    if nd is not None:
        return x
    x = _as(_operand(x, nd))
    return broadcast_to(reshape(x, (1, *x.shape)), (size, *x.shape))


def _index_size(args, idx) -> int:
    for v, n in args:
        if n is not None:
            return v.shape[0]
    items = idx if type(idx) is tuple else (idx,)
    return next(i.value.shape[0] for i in items if type(i) is Mapped)


def _traced_index(idx) -> bool:
    """Whether the index holds a value that ``vmap`` is tracing (a marked ndarray subclass)."""
    items = idx if type(idx) is tuple else (idx,)
    for i in items:
        if isinstance(i, xp.ndarray) and type(i) is not xp.ndarray:
            return True
    return False


def _rec_indexed(prim, out, xs: tuple, params: dict) -> array:
    """``_rec``, but also recorded when only the index comes from a traced ``vmap`` example:
    the replay then batches over the index."""
    if STATE.depth and STATE.enabled and _traced_index(params["idx"]):
        if builtins.all(x._node is None for x in xs):
            return _from_value(out, Node(out, prim, tuple(x._data for x in xs), params))
    return _rec(prim, out, xs, params)


def _getitem_batch(args, params, ex_ndim):
    ((x, nx),) = args
    idx = params["idx"]
    size = _index_size(args, idx)
    x_ndim = nx if nx is not None else _as(_operand(x, nx)).ndim
    bidx, perm = _batch_index(idx, x_ndim, size)
    out = _index(_batched_operand(x, nx, size, x_ndim), bidx)
    return out if perm is None else transpose(out, perm)


def _update_batch(update):
    """The batching rule of ``index_update`` / ``scatter_add`` (``update(x, idx, v)``)."""

    def rule(args, params, ex_ndim):
        (x, nx), (v, nv) = args
        idx = params["idx"]
        size = _index_size(args, idx)
        x_ndim = nx if nx is not None else _as(_operand(x, nx)).ndim
        xb = _batched_operand(x, nx, size, x_ndim)
        bidx, perm = _batch_index(idx, x_ndim, size)
        host_idx = _backend._on_host(bidx)  # (the shape only: GPU indices read on the host)
        layout = xp.broadcast_to(xp.zeros((), bool), xb.shape)[host_idx].shape  # NumPy's order
        inv = None
        if perm is not None:
            inv = _inverse_perm(perm)
            layout = tuple(layout[k] for k in perm)
        v = _as(_operand(v, nv))
        if nv is not None:
            v = reshape(v, (size,) + (1,) * (len(layout) - 1 - nv) + v.shape[1:])
        v = broadcast_to(v, layout)
        if inv is not None:
            v = transpose(v, inv)
        return update(xb, bidx, v)

    return rule


_GETITEM = defprim("getitem", _getitem_vjp, batch=_getitem_batch)


@kernel
@value_branch
def _getitem_kernel(d, idx):
    return d[idx]


def _index(a, idx) -> array:
    """``a[idx]`` for a cleaned index."""
    try:
        out = _getitem_kernel(a._data, idx)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (array shape {a.shape})") from None
    return _rec_indexed(_GETITEM, out, (a,), {"idx": idx})


@export
def getitem(a, idx) -> array:
    """NumPy-style indexing: ints, slices, None, ..., boolean masks and integer arrays."""
    clean = _clean_index(idx)
    out = _index(a if type(a) is array else _handle(a), clean)
    if clean is not idx and STATE.enabled:  # (an array or a list in the index)
        return _guard_indices(out, "gather", idx)
    return out


# -- indices are not differentiable (MLX's rule) ---------------------------------------------


def _traced_nodes(indices, found: list) -> list:
    """The nodes of the arrays in ``indices`` (nested tuples and lists) that are being
    differentiated or batched."""
    for i in indices:
        if type(i) is tuple or type(i) is list:
            _traced_nodes(i, found)
        elif isinstance(i, array) and i._node is not None:
            found.append(i._node)
    return found


def _index_rule(g, ans, *xs, argnum: int, op: str):
    if argnum == 0:
        return g
    raise ValueError(
        f"[{op}] Cannot calculate VJP with respect to indices. Use stop_gradient on indices "
        "to stop gradients from being computed."
    )


_INDEX_GUARD = Primitive("index_guard", (_index_rule,), True, pass_rule, holomorphic=False)
"""The value of a gather or scatter whose index is itself differentiated: the cotangent passes
to the value, and asking for the index's raises MLX's error. An engine marker like the
cotangent cast, not an operation of the table: it is recorded only by :func:`_guard_indices`."""


def _guard_indices(out: array, op: str, *indices) -> array:
    """``out``, with a marker node when an index array among ``indices`` carries a node:
    differentiating with respect to it is then MLX's ``ValueError`` (the index of a gather or
    scatter has no gradient; ``stop_gradient`` says so). Batching passes through it."""
    if not STATE.enabled:
        return out
    nodes = _traced_nodes(indices, [])
    if not nodes:
        return out
    d = out._data
    first = out._node if out._node is not None else d
    return _from_value(d, Node(d, _INDEX_GUARD, (first, *nodes), {"op": op}))


getitem.handles = True  # type: ignore[attr-defined]  # reads only its operands' slots


_SCATTER_ADD = defprim(
    "scatter_add",
    lambda g, ans, x, v, idx: g,
    lambda g, ans, x, v, idx: g[idx],
    batch=_update_batch(lambda x, idx, v: _scatter_add(x, idx, v)),
)


def _value_for(x, v):
    """The values ``v`` written into ``x``, of its dtype (a 0-d host value meeting GPU data as a
    NumPy scalar: GPU kernels take no host array)."""
    d = v._data.astype(x._data.dtype, copy=False)
    return _scalar_if_0d(d) if _is_gpu(x._data) else d


def _scatter_add(x, idx, v) -> array:
    x, v = _as(x), _as(v)
    try:
        out = _scatter_add_kernel(x._data, idx, _value_for(x, v))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"at[].add: cannot add values of shape {v.shape} at {idx!r}: {e}"
        ) from None
    return _rec_indexed(_SCATTER_ADD, out, (x, v), {"idx": idx})


@kernel
@value_branch
def _index_update_kernel(x, idx, v):
    out = xp.array(x) if type(x) is xp.ndarray else _copy_of(x)
    out[idx] = v
    return out


_INDEX_UPDATE = defprim(
    "index_update",
    lambda g, ans, x, v, idx: _index_update(g, idx, zeros((), g.dtype)),
    lambda g, ans, x, v, idx: g[idx],
    batch=_update_batch(lambda x, idx, v: _index_update(x, idx, v)),
)


def _index_update(x, idx, v) -> array:
    x, v = _as(x), _as(v)
    if getattr(idx, "dtype", None) == xp.bool_ and 0 < idx.ndim <= x.ndim:
        idx = _same_device(idx, x._data)  # a host mask indexes a GPU array (as in PyTorch)
        if idx.shape == x.shape[: idx.ndim]:
            return _masked_scatter(x, idx, v)
    try:
        out = _index_update_kernel(x._data, idx, _value_for(x, v))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"setitem: cannot assign values of shape {v.shape} to index {idx!r} of an array of "
            f"shape {x.shape}: {e}"
        ) from None
    return _rec_indexed(_INDEX_UPDATE, out, (x, v), {"idx": idx})


@kernel
@value_branch  # counts the mask to check it; vmap's rule recounts every example's
def _masked_scatter_kernel(x, mask, v):
    rest = x.shape[mask.ndim :]
    if v.ndim <= len(rest):
        return xp.where(mask.reshape(mask.shape + (1,) * len(rest)), v, x)
    count = int(mask.sum())
    if v.shape[0] < count:
        raise ValueError(
            f"setitem: {count} masked positions but only {v.shape[0]} values of shape {v.shape}"
        )
    out = _copy_of(x)
    out[mask] = v[:count]
    return out


def _masked_scatter_vjp_v(g, ans, x, v, idx):
    rest = x.shape[idx.ndim :]
    if v.ndim <= len(rest):
        return where(_from_value(idx.reshape(idx.shape + (1,) * len(rest))), g, 0)
    picked = g[idx]  # the masked positions in order: rows 0 .. count-1 of v
    count = picked.shape[0]
    pad_rows = [(0, v.shape[0] - count)] + [(0, 0)] * (picked.ndim - 1)
    return pad(picked, pad_rows) if v.shape[0] > count else picked


def _masked_scatter_batch(args, params, ex_ndim):
    (x, nx), (v, nv) = args
    mask = params["idx"]
    size = _index_size(args, mask)
    x_ndim = nx if nx is not None else _as(_operand(x, nx)).ndim
    xb = _batched_operand(x, nx, size, x_ndim)
    m = mask.value if type(mask) is Mapped else xp.broadcast_to(mask, (size, *mask.shape))
    rest = xb.shape[m.ndim :]
    full = _from_value(m.reshape(m.shape + (1,) * len(rest)))
    v = _as(_operand(v, nv))
    v_rest_nd = (nv if nv is not None else v.ndim) - len(rest)
    if v_rest_nd <= 0:  # no row axis: a broadcast fill
        if nv is not None:
            v = reshape(v, (size,) + (1,) * (len(xb.shape) - 1 - nv) + v.shape[1:])
        return where(full, v, xb)
    flat = m.reshape(size, -1)
    if flat.sum(axis=1).max(initial=0) > (v.shape[1] if nv is not None else v.shape[0]):
        raise ValueError("setitem: more masked positions than values")
    pos = xp.maximum(xp.cumsum(flat, axis=1) - 1, 0)  # (B, positions): the row each takes
    if nv is None:
        rows = take(v, _from_value(pos), 0)  # (B, positions, *rest)
    else:
        rows = v[_from_value(xp.arange(size)[:, None]), _from_value(pos)]
    rows = reshape(rows, m.shape + tuple(rows.shape[2:]))
    return where(full, rows, xb)


_MASKED_SCATTER = defprim(
    "masked_scatter",
    lambda g, ans, x, v, idx: where(
        _from_value(idx.reshape(idx.shape + (1,) * (x.ndim - idx.ndim))), 0, g
    ),
    _masked_scatter_vjp_v,
    batch=_masked_scatter_batch,
)


def _masked_scatter(x, mask, v) -> array:
    """``x[mask] = v`` as MLX: ``v``'s rows fill the masked positions in order (``v`` may
    have more rows than there are positions), or ``v`` is broadcast when it has no row axis."""
    rest = x.shape[mask.ndim :]
    if v.ndim > len(rest) + 1:
        raise ValueError(
            f"setitem: values of shape {v.shape} do not fit the masked positions of shape {rest}"
        )
    try:
        out = _masked_scatter_kernel(x._data, mask, _value_for(x, v))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"setitem: cannot assign values of shape {v.shape} to a mask of shape {mask.shape} "
            f"of an array of shape {x.shape}: {e}"
        ) from None
    return _rec_indexed(_MASKED_SCATTER, out, (x, v), {"idx": mask})


@kernel
def _at_kernel(ufunc, x, idx, v):
    if _is_gpu(x):  # on the GPU: add through scatter_add, the others on the host
        if ufunc is xp.add:
            out = x.copy()
            _scatter_add_at(out, idx, v)
            return out
        return _via_host(_at_kernel, ufunc, x, idx, v)
    out = xp.array(x)
    ufunc.at(out, idx, v)
    return out


def _ufunc_at(ufunc, x, idx, v):
    """The value of ``x`` with ``ufunc`` applied at ``idx`` (repeated indices accumulate)."""
    try:
        out = _at_kernel(ufunc, x._data, idx, v._data.astype(x._data.dtype, copy=False))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"at[].{ufunc.__name__}: cannot apply values of shape {v.shape} at {idx!r} of an "
            f"array of shape {x.shape}: {e}"
        ) from None
    return out


def _delta(a: array) -> array:
    """Zero in value with derivative one: lets a constant result carry a chosen gradient."""
    return a - stop_gradient(a)


class _AtIndexer:
    """``a.at[idx]``: out-of-place updates where repeated indices all take effect (MLX)."""

    __slots__ = ("_a", "_idx", "_raw")

    def __init__(self, a, idx) -> None:
        self._a = a
        self._idx = _clean_index(idx)
        self._raw = idx if self._idx is not idx else None  # (arrays in it: see _guard_indices)

    def _done(self, out: array) -> array:
        return out if self._raw is None else _guard_indices(out, "scatter", self._raw)

    def add(self, v) -> array:
        """Add ``v`` at the index, accumulating over repeated indices."""
        return self._done(_scatter_add(self._a, self._idx, v))

    def subtract(self, v) -> array:
        """Subtract ``v`` at the index, accumulating over repeated indices."""
        return self._done(_scatter_add(self._a, self._idx, -_as(v)))

    def _scale(self, v, who: str) -> array:
        a, v = self._a, _as(v)
        idx = self._idx
        if v._node is None or not STATE.enabled:
            return a * _from_value(_ufunc_at(xp.multiply, ones_like(a), idx, v))
        hits = _ufunc_at(xp.add, zeros_like(a, _dt.int32), idx, _from_value(xp.asarray(1)))
        if hits.max(initial=0) > 1:
            raise ValueError(
                f"at[].{who}: cannot differentiate with respect to the values when indices "
                "repeat (MLX has no gradient for a scatter product either)"
            )
        return a * _index_update(ones_like(a), idx, v)

    def multiply(self, v) -> array:
        """Multiply by ``v`` at the index, accumulating over repeated indices."""
        return self._done(self._scale(v, "multiply"))

    def divide(self, v) -> array:
        """Divide by ``v`` at the index, accumulating over repeated indices."""
        return self._done(self._scale(reciprocal(_as(v)), "divide"))

    def _extreme(self, ufunc, v) -> array:
        a, v = self._a, _as(v)
        if a._data.dtype != v._data.dtype and v._data.dtype.kind in "fc":
            v = astype(v, a.dtype)
        idx = self._idx
        out = _from_value(_ufunc_at(ufunc, a, idx, v))
        if (a._node is None and v._node is None) or not STATE.enabled:
            return out
        # MLX's rule: the array keeps the gradient where it still holds the result, and each
        # update gets it where it equals the result at its index (ties share)
        res = out + where(out == a, _delta(a), 0)
        if v._node is not None:
            hit = _from_value(out._data[idx]) == v
            res = _scatter_add(res, idx, where(hit, _delta(v), 0))
        return res

    def maximum(self, v) -> array:
        """Elementwise maximum with ``v`` at the index (repeated indices all count)."""
        return self._done(self._extreme(xp.maximum, v))

    def minimum(self, v) -> array:
        """Elementwise minimum with ``v`` at the index (repeated indices all count)."""
        return self._done(self._extreme(xp.minimum, v))


class _At:
    __slots__ = ("_a",)

    def __init__(self, a) -> None:
        self._a = a

    def __getitem__(self, idx) -> _AtIndexer:
        return _AtIndexer(self._a, idx)


@export(method=True)
def take(a, indices, axis: int | None = None, stream=None) -> array:
    """Elements at ``indices`` along ``axis`` (of the flattened array when None)."""
    a = _as(a)
    ind = _as(indices)._data if not isinstance(indices, int) else indices
    if axis is None:
        a, ax = reshape(a, (-1,)), 0
    else:
        ax = _axes(axis, a.ndim, "take")[0]
    n = a.shape[ax]
    if n == 0 and xp.size(ind):
        raise ValueError(f"take: cannot take from axis {ax} of length 0 (shape {a.shape})")
    if a._data.size == 0 and type(ind) is not int:
        # nothing to read: NumPy would refuse the out-of-range positions, MLX does not
        ind = xp.zeros(xp.shape(ind), dtype=xp.intp)
    return _guard_indices(_index(a, (_slice(None),) * ax + (ind,)), "gather", indices)


def _along_index(shape, ind, ax):
    nd = len(shape)
    idx = []
    for i in range(nd):
        if i == ax:
            idx.append(ind)
        else:
            view = [1] * nd
            view[i] = shape[i]
            idx.append(xp.arange(shape[i]).reshape(view))
    return tuple(idx)


@export
def take_along_axis(a, indices, axis: int | None = None, stream=None) -> array:
    """Gather values at ``indices`` along ``axis``, index shape broadcasting against ``a``."""
    a = _as(a)
    ind = _as(indices)._data
    if axis is None:
        return _guard_indices(_index(reshape(a, (-1,)), ind.reshape(-1)), "gather", indices)
    ax = _axes(axis, a.ndim, "take_along_axis")[0]
    if ind.ndim != a.ndim:
        raise ValueError(
            f"take_along_axis: indices of shape {ind.shape} need {a.ndim} dimensions like the "
            f"array of shape {a.shape}"
        )
    shape = list(
        xp.broadcast_shapes(
            tuple(1 if i == ax else s for i, s in enumerate(a.shape)),
            tuple(1 if i == ax else s for i, s in enumerate(ind.shape)),
        )
    )
    shape[ax] = a.shape[ax]
    return _guard_indices(_index(a, _along_index(shape, ind, ax)), "gather", indices)


@export
def put_along_axis(a, indices, values, axis: int | None = None, stream=None) -> array:
    """``a`` with ``values`` written at ``indices`` along ``axis``."""
    a = _as(a)
    ind = _as(indices)._data
    if ind.size == 0 and ind.dtype.kind not in "iu":
        ind = ind.astype(xp.intp)  # an empty index of any dtype selects nothing
    if axis is None:
        out = reshape(_index_update(reshape(a, (-1,)), ind.reshape(-1), values), a.shape)
    else:
        ax = _axes(axis, a.ndim, "put_along_axis")[0]
        out = _index_update(a, _along_index(a.shape, ind, ax), values)
    return _guard_indices(out, "scatter", indices)


@export
def slice(a, start_indices, axes, slice_size, stream=None) -> array:
    """``mx.slice``: a block of ``slice_size`` starting at ``start_indices`` on ``axes``."""
    a = _as(a)
    starts = [int(s) for s in _as(start_indices)._data.reshape(-1)]
    index = [_slice(None)] * a.ndim
    for ax, st in zip(axes, starts):
        index[ax] = _slice(st, st + slice_size[ax])
    return _index(a, tuple(index))


@export
def slice_update(a, update, start_indices, axes, stream=None) -> array:
    """``mx.slice_update``: ``a`` with ``update`` written at ``start_indices`` on ``axes``."""
    a, update = _as(a), _as(update)
    starts = [int(s) for s in _as(start_indices)._data.reshape(-1)]
    index = [_slice(None)] * a.ndim
    for ax, st in zip(axes, starts):
        index[ax] = _slice(st, st + update.shape[ax])
    return _index_update(a, tuple(index), update)


@export(method=True)
def flip(a, axis=None, stream=None) -> array:
    """Reverse the order of elements along ``axis`` (all axes by default)."""
    a = _as(a)
    axes = _axes(axis, a.ndim, "flip")
    index = tuple(_slice(None, None, -1) if i in axes else _slice(None) for i in range(a.ndim))
    return _index(a, index)


@export
def roll(a, shift, axis=None, stream=None) -> array:
    """Shift elements cyclically along ``axis``."""
    a = _as(a)
    if axis is None:
        total = shift if isinstance(shift, int) else builtins.sum(int(s) for s in shift)
        return reshape(roll(reshape(a, (-1,)), total, 0), a.shape)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    if len(shifts) != len(axes):  # NumPy's broadcasting of shifts against axes
        if len(axes) == 1:
            axes = axes * len(shifts)
        elif len(shifts) == 1:
            shifts = shifts * len(axes)
        else:
            raise ValueError(f"roll: {len(shifts)} shifts for {len(axes)} axes")
    out = a
    for ax, s in zip(axes, shifts):
        ax = _axes(ax, a.ndim, "roll")[0]
        n = a.shape[ax]
        ind = (xp.arange(n) - s) % n if n else xp.arange(0)
        out = take(out, _from_value(ind), ax)
    return out


@export(method=True)
def repeat(a, repeats: int, axis: int | None = None, stream=None) -> array:
    """Repeat each element ``repeats`` times along ``axis``."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    ax = _axes(axis, a.ndim, "repeat")[0]
    _check_dims((a.shape[ax] * repeats,), "repeat")
    return take(a, _from_value(xp.repeat(xp.arange(a.shape[ax]), repeats)), ax)


@export(method=True)
def tile(a, reps, stream=None) -> array:
    """Repeat the whole array ``reps`` times along each axis."""
    a = _as(a)
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    nd = builtins.max(a.ndim, len(reps))
    a = reshape(a, (1,) * (nd - a.ndim) + a.shape)
    reps = (1,) * (nd - len(reps)) + reps
    out = a
    for ax, r in enumerate(reps):
        if r != 1:
            n = a.shape[ax]
            out = take(out, _from_value(xp.tile(xp.arange(n), r)), ax)
    return out


def _pad_batch(args, params, ex_ndim):
    ((x, _),) = args
    return pad(x, ((0, 0), *params["width"]), constant_values=params["value"])


_PAD = defprim(
    "pad",
    lambda g, ans, x, width, value: g[
        tuple(_slice(lo, lo + n) for (lo, _), n in zip(width, x.shape))
    ],
    batch=_pad_batch,
)


@export
def pad(a, pad_width, mode: str = "constant", constant_values=0, stream=None) -> array:
    """Pad with a constant, the edge values, or a mirror image (``"reflect"``: about the end
    elements; ``"symmetric"``: including them), as NumPy's modes of those names."""
    a = _as(a)
    nd = a.ndim
    if isinstance(pad_width, int):
        width = ((pad_width, pad_width),) * nd
    else:
        pw = list(pad_width)
        if builtins.all(isinstance(p, int) for p in pw) and len(pw) in (1, 2):
            # MLX: one int pads every side alike; one (before, after) pair serves every axis
            pw = [(pw[0], pw[-1])] * nd
        else:
            pw = [(p, p) if isinstance(p, int) else tuple(p) for p in pw]
            if len(pw) == 1:
                pw = pw * nd
        width = tuple((int(lo), int(hi)) for lo, hi in pw)
    if len(width) != nd:
        raise ValueError(f"pad: {len(width)} pad widths for an array of {nd} dimensions")
    if builtins.any(lo < 0 or hi < 0 for lo, hi in width):
        raise ValueError(f"pad: pad widths must be non-negative, got {width}")
    if mode == "constant":
        cv = constant_values._data if type(constant_values) is array else constant_values
        if STATE.depth and type(constant_values) is array:
            from .. import batching

            if batching.is_mapped(cv):
                raise batching.MappedOperandError(
                    "pad: vmap over the constant value is not supported"
                )
        out = xp.pad(a._data, width, mode="constant", constant_values=cv)
        return _rec(_PAD, out, (a,), {"width": width, "value": cv})
    if mode in ("edge", "reflect", "symmetric"):
        out = a
        for ax, (lo, hi) in enumerate(width):
            if lo == 0 and hi == 0:
                continue
            n = a.shape[ax]
            if n == 0:
                raise ValueError(f"pad: cannot extend the empty axis {ax} in mode {mode!r}")
            ind = _pad_positions(xp.arange(-lo, n + hi), n, mode)
            out = take(out, _from_value(ind), ax)
        return out
    raise ValueError(
        f"pad: mode must be 'constant', 'edge', 'reflect' or 'symmetric', not {mode!r}"
    )


def _pad_positions(i, n: int, mode: str):
    """The source position of each padded position ``i`` (from ``-before``) on an axis of ``n``."""
    if mode == "edge" or (mode == "reflect" and n == 1):
        return xp.clip(i, 0, n - 1)
    if mode == "reflect":  # mirror about the end elements: period 2 (n - 1)
        period = 2 * (n - 1)
        j = i % period
        return xp.where(j >= n, period - j, j)
    period = 2 * n  # symmetric: mirror including the end elements
    j = i % period
    return xp.where(j >= n, period - 1 - j, j)


@export(method=True)
def sort(a, axis: int | None = -1, stream=None) -> array:
    """Sorted values along ``axis`` (ties keep their order; gradients follow the values)."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    idx = argsort(a, axis)
    return take_along_axis(a, idx, axis)


@export(method=True)
def argsort(a, axis: int | None = -1, stream=None) -> array:
    """Indices that sort ``a`` along ``axis`` (stable; uint32)."""
    d = _as(a)._data
    if axis is None:
        d, axis = d.reshape(-1), 0
    ax = _axes(axis, d.ndim, "argsort")[0]
    return _from_value(xp.argsort(d, axis=ax, kind="stable").astype(xp.uint32))


@export
def argpartition(a, kth: int, axis: int | None = -1, stream=None) -> array:
    """Indices that partition ``a`` around its ``kth`` element."""
    d = _as(a)._data
    if axis is None:
        d, axis = d.reshape(-1), 0
    ax = _axes(axis, d.ndim, "argpartition")[0]
    return _from_value(xp.argpartition(d, kth, axis=ax).astype(xp.uint32))


@export
def partition(a, kth: int, axis: int | None = -1, stream=None) -> array:
    """``a`` partitioned around its ``kth`` element along ``axis``."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return take_along_axis(a, argpartition(a, kth, axis), axis)


@export(method=True)
def topk(a, k: int, axis: int | None = -1, stream=None) -> array:
    """The ``k`` largest values along ``axis`` (in no guaranteed order, as in MLX)."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    ax = _axes(axis, a.ndim, "topk")[0]
    n = a.shape[ax]
    k = _as_index(k)
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is not in [0, {n}] for axis {axis} of shape {a.shape}")
    if k == 0 or k == n:
        idx = xp.broadcast_to(
            xp.arange(n - k, n).reshape([-1 if i == ax else 1 for i in range(a.ndim)]),
            tuple(k if i == ax else s for i, s in enumerate(a.shape)),
        )
        idx = _same_device(xp.ascontiguousarray(idx), a._data)
        return take_along_axis(a, _from_value(idx), ax)
    idx = xp.argpartition(a._data, n - k, axis=ax)
    idx = idx[(builtins.slice(None),) * ax + (builtins.slice(n - k, n),)]
    return take_along_axis(a, _from_value(idx), ax)


@export
def searchsorted(a, v, side: str = "left", stream=None) -> array:
    """Where each value of ``v`` would go in the sorted 1-D ``a`` to keep it sorted (uint32).

    ``side="left"`` gives the first such place, ``"right"`` the last; NaN sorts last.
    Under ``vmap`` only ``v`` may be mapped.
    """
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', not {side!r}")
    da, dv = _as(a)._data, _as(v)._data
    if da.ndim != 1:
        raise ValueError(f"searchsorted: the sorted array must be 1-D, got shape {da.shape}")
    if STATE.depth:
        from .. import batching

        if batching.is_mapped(da):
            raise batching.MappedOperandError(
                "searchsorted: vmap over the sorted array is not supported (map the values)"
            )
    if da.dtype != dv.dtype:
        t = _dt.to_np(_dt.promote(da.dtype, dv.dtype))
        da, dv = da.astype(t), dv.astype(t)
    return _from_value(_as_array(xp.searchsorted(da, dv, side=side)).astype(xp.uint32))


@export
def median(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Median over ``axis`` (mean of the two middle values for even lengths)."""
    a = _as(a)
    if axis is None:
        out = median(reshape(a, (-1,)), 0)
        return reshape(out, (1,) * a.ndim) if keepdims else out
    axes = _axes(axis, a.ndim, "median")
    if len(axes) > 1:  # the axes moved last and flattened into one
        rest = [i for i in range(a.ndim) if i not in axes]
        flat = reshape(
            transpose(a, rest + list(axes)),
            tuple(a.shape[i] for i in rest) + (math.prod(a.shape[i] for i in axes),),
        )
        out = median(flat, -1)
        if keepdims:
            out = reshape(out, tuple(1 if i in axes else a.shape[i] for i in range(a.ndim)))
        return out
    ax = axes[0]
    n = a.shape[ax]
    if n == 0:
        raise ValueError(f"median: cannot take the median of an empty axis (shape {a.shape})")
    s = sort(a, ax)
    lo, hi = (n - 1) // 2, n // 2
    out = (
        take(s, _from_value(xp.array([lo])), ax) + take(s, _from_value(xp.array([hi])), ax)
    ) * 0.5
    if a._data.dtype.kind in "fcV":  # V: bfloat16
        # NaN sorts last; a NaN anywhere on the axis makes the median NaN (NumPy, MLX)
        hit = _from_value(xp.isnan(a._data).any(axis=ax, keepdims=True))
        out = where(hit, float("nan"), out)
    return out if keepdims else squeeze(out, ax)


@export(method=True)
def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1, stream=None) -> array:
    """The diagonal of the ``axis1``/``axis2`` planes, as a last axis."""
    a = _as(a)
    a1, a2 = _axes(axis1, a.ndim, "diagonal")[0], _axes(axis2, a.ndim, "diagonal")[0]
    rest = [i for i in range(a.ndim) if i not in (a1, a2)]
    t = transpose(a, rest + [a1, a2])
    n1, n2 = a.shape[a1], a.shape[a2]
    if offset >= 0:
        k = builtins.max(0, builtins.min(n1, n2 - offset))
        r, c = xp.arange(k), xp.arange(k) + offset
    else:
        k = builtins.max(0, builtins.min(n1 + offset, n2))
        r, c = xp.arange(k) - offset, xp.arange(k)
    return _index(t, (Ellipsis, r, c))


@export(method=True)
def diag(a, k: int = 0, stream=None) -> array:
    """Extract a diagonal (2-D input) or build a diagonal matrix (1-D input)."""
    a = _as(a)
    if a.ndim == 1:
        n = a.shape[0] + builtins.abs(k)
        r = xp.arange(a.shape[0]) + builtins.max(0, -k)
        c = xp.arange(a.shape[0]) + builtins.max(0, k)
        return _index_update(_zeros_near((n, n), a.dtype, a._data), (r, c), a)
    if a.ndim == 2:
        return diagonal(a, k)
    raise ValueError(f"diag: expected a 1-D or 2-D array, got shape {a.shape}")


@export(method=True)
def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None, stream=None) -> array:
    """Sum of the diagonal."""
    out = sum(diagonal(a, offset, axis1, axis2), axis=-1)
    return astype(out, dtype) if dtype is not None else out


@export
def diff(a, n: int = 1, axis: int = -1, stream=None) -> array:
    """``n``-th discrete difference along ``axis``."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "diff")[0]
    for _ in range(n):
        hi = [_slice(None)] * a.ndim
        lo = [_slice(None)] * a.ndim
        hi[ax] = _slice(1, None)
        lo[ax] = _slice(None, -1)
        a = a[tuple(hi)] - a[tuple(lo)]
    return a


@export
def meshgrid(*arrays, sparse: bool = False, indexing: str = "xy", stream=None) -> tuple:
    """Coordinate grids from 1-D arrays (``indexing="xy"`` or ``"ij"``)."""
    xs = [reshape(_as(x), (-1,)) for x in arrays]
    nd = len(xs)
    shapes = []
    for i in range(nd):
        s = [1] * nd
        s[i] = -1
        shapes.append(s)
    if indexing == "xy" and nd >= 2:
        shapes[0], shapes[1] = list(shapes[0]), list(shapes[1])
        shapes[0][0], shapes[0][1] = 1, -1
        shapes[1][0], shapes[1][1] = -1, 1
    out = [reshape(x, s) for x, s in zip(xs, shapes)]
    if sparse:
        return tuple(out)
    return tuple(broadcast_arrays(*out))


@export
def tri(n: int, m: int | None = None, k: int = 0, dtype=None, stream=None) -> array:
    """Ones at and below the ``k``-th diagonal."""
    out = xp.tri(n, m, k, dtype=_dt.to_np(dtype or _dt.float32))
    return _from_value(out if stream is None and _DEFAULT_XP[0] is xp else _on(out, stream))


@export
def tril(a, k: int = 0, stream=None) -> array:
    """Zero the elements above the ``k``-th diagonal."""
    a = _as(a)
    mask = _same_device(xp.tri(a.shape[-2], a.shape[-1], k, dtype=bool), a._data)
    return where(_from_value(mask), a, _zeros_near((), a.dtype, a._data))


@export
def triu(a, k: int = 0, stream=None) -> array:
    """Zero the elements below the ``k``-th diagonal."""
    a = _as(a)
    mask = _same_device(xp.tri(a.shape[-2], a.shape[-1], k - 1, dtype=bool), a._data)
    return where(_from_value(mask), _zeros_near((), a.dtype, a._data), a)


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .creation import _place as _on  # noqa: E402
from .creation import (  # noqa: E402
    _zeros_near,
    ones_like,
    zeros,
    zeros_like,
)
from .elementwise import astype, reciprocal, stop_gradient, where  # noqa: E402
from .reductions import _axes, sum  # noqa: E402
from .shapes import (  # noqa: E402
    _check_dims,
    _inverse_perm,
    broadcast_arrays,
    broadcast_to,
    reshape,
    squeeze,
    transpose,
)
from .table import _SUBCLASSES, _as, _handle, _operand, _rec, _slice  # noqa: E402
