"""Shape operations: ``reshape``, ``transpose``, ``broadcast_to``, ``concatenate``, ..."""

from __future__ import annotations

import builtins
import math
from operator import index as _index

from .. import dtypes as _dt
from ..array import STATE, _from_value, array
from ..backend import is_gpu as _is_gpu
from ..backend import xp
from ..tracing import kernel
from .table import (
    _align,
    _operand,
    defprim,
    export,
)

_INT32_MAX = 2**31 - 1


def _check_dims(shape: tuple, name: str) -> tuple:
    """``shape``, refused with MLX's OverflowError when a dimension does not fit in int32."""
    for s in shape:
        if not -_INT32_MAX - 1 <= s <= _INT32_MAX:
            raise OverflowError(f"{name}: the dimension {s} does not fit in a 32-bit integer")
    return shape


def _reshape_batch(args, params, ex_ndim):
    ((x, _),) = args
    return reshape(x, (x.shape[0], *params["shape"]))


_RESHAPE = defprim("reshape", lambda g, ans, x, shape: reshape(g, x.shape), batch=_reshape_batch)


@export(method=True)
def reshape(a, shape, *more, stream=None) -> array:
    """A view of the values with a new shape (one dimension may be -1)."""
    if type(a) is not array:
        a = _handle(a)
    if more or isinstance(shape, int):
        shape = (shape, *more)
    if type(shape) is not tuple:
        shape = tuple(map(_index, shape))  # a float or a string is a TypeError (MLX)
    else:
        for s in shape:
            if type(s) is not int:
                shape = tuple(map(_index, shape))
                break
    d = a._data
    if d.shape == shape:
        return a
    if not 0 < d.size <= _INT32_MAX:  # a dimension past int32 needs more elements than that
        _check_dims(shape, "reshape")
    try:
        out = d.reshape(shape)
    except ValueError:
        _check_dims(shape, "reshape")  # MLX's OverflowError first
        raise ValueError(
            f"reshape: cannot reshape an array of shape {d.shape} into {shape}"
        ) from None
    return _rec(_RESHAPE, out, (a,), {"shape": shape})


def _inverse_perm(axes):
    inv = [0] * len(axes)
    for i, ax in enumerate(axes):
        inv[ax] = i
    return tuple(inv)


def _transpose_batch(args, params, ex_ndim):
    ((x, nd),) = args
    return transpose(x, (0, *(a % nd + 1 for a in params["axes"])))


_TRANSPOSE = defprim(
    "transpose",
    lambda g, ans, x, axes: transpose(g, _inverse_perm(axes)),
    batch=_transpose_batch,
)


_PERMS: dict = {}


def _perm(axes, nd: int, shape) -> tuple:
    """A validated permutation (cached: transposes run in every matmul's backward rule)."""
    key = (axes, nd)
    got = _PERMS.get(key)
    if got is None:
        if axes is None:
            got = tuple(range(nd - 1, -1, -1))
        else:
            got = tuple(int(ax) % nd if nd else 0 for ax in axes)
            if sorted(got) != list(range(nd)):
                raise ValueError(
                    f"transpose: {got} is not a permutation of the {nd} axes of {shape}"
                )
        _PERMS[key] = got
    return got


@export(method=True)
def transpose(a, axes=None, *more, stream=None) -> array:
    """Permute the axes (reverse them by default)."""
    if type(a) is not array:
        a = _handle(a)
    d = a._data
    if isinstance(axes, int):
        axes = (axes, *more)
    elif axes is not None and type(axes) is not tuple:
        axes = tuple(axes)
    axes = _perm(axes, d.ndim, d.shape)
    return _rec(_TRANSPOSE, d.transpose(axes), (a,), {"axes": axes})


@export(method=True)
def swapaxes(a, axis1: int, axis2: int, stream=None) -> array:
    """Exchange two axes."""
    if type(a) is not array:
        a = _handle(a)
    nd = a._data.ndim
    key = (axis1, axis2, nd)
    perm = _SWAPS.get(key)
    if perm is None:
        p = list(range(nd))
        i, j = _axes(axis1, nd, "swapaxes")[0], _axes(axis2, nd, "swapaxes")[0]
        p[i], p[j] = p[j], p[i]
        perm = _SWAPS[key] = tuple(p)
    return _rec(_TRANSPOSE, a._data.transpose(perm), (a,), {"axes": perm})


_SWAPS: dict = {}


@export(method=True)
def moveaxis(a, source: int, destination: int, stream=None) -> array:
    """Move one axis to a new position."""
    a = _as(a)
    nd = a.ndim
    s, d = _axes(source, nd, "moveaxis")[0], _axes(destination, nd, "moveaxis")[0]
    perm = [i for i in range(nd) if i != s]
    perm.insert(d, s)
    return transpose(a, perm)


def _broadcast_batch(args, params, ex_ndim):
    ((x, nd),) = args
    shape = params["shape"]
    return broadcast_to(_align(x, nd, len(shape)), (x.shape[0], *shape))


_BROADCAST = defprim("broadcast_to", lambda g, ans, x, shape: g, batch=_broadcast_batch)


@kernel
def _out_of_range(d, n: int) -> bool:
    """Whether some integer index in ``d`` lies outside ``[0, n)`` (labels, embedding ids): one
    boolean, so under ``mx.compile`` one guard that holds for valid data."""
    return bool(d.min() < 0) or bool(d.max() >= n)


@kernel  # writes into a new array: one step under mx.compile
def _broadcast_kernel(d, shape):
    if d.ndim > len(shape):  # an assignment would drop leading ones; broadcasting never does
        raise ValueError("more dimensions than the target shape")
    if math.prod(shape) <= 4096 and (type(d) is xp.ndarray or not _is_gpu(d)):
        # a small filled array costs a microsecond; np.broadcast_to's view costs six
        out = xp.empty(shape, d.dtype)
        out[...] = d
        return out
    return xp.broadcast_to(d, shape)


@export
def broadcast_to(a, shape, stream=None) -> array:
    """Broadcast to ``shape`` (its gradient is summed back by the engine)."""
    a = _as(a)
    shape = tuple(map(int, shape))
    if a._data.shape == shape:
        return a
    _check_dims(shape, "broadcast_to")
    try:
        return broadcast_to_shape(a, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}") from None


def broadcast_to_shape(a: array, shape: tuple) -> array:
    """``broadcast_to`` of an array to a checked tuple of ints (the rules' own calls: the
    shape of an input, no conversion or checks needed)."""
    if a._data.shape == shape:
        return a
    return _rec(_BROADCAST, _broadcast_kernel(a._data, shape), (a,), {"shape": shape})


@export
def broadcast_shapes(*shapes) -> tuple:
    """The shape that ``shapes`` broadcast to together (NumPy's rules).

    Raises:
        ValueError: when no shape is given or two shapes do not broadcast.
    """
    if not shapes:
        raise ValueError("broadcast_shapes: at least one shape is required")
    try:
        return tuple(int(s) for s in xp.broadcast_shapes(*[tuple(sh) for sh in shapes]))
    except ValueError:
        raise ValueError(
            f"broadcast_shapes: shapes {' and '.join(map(str, shapes))} cannot be broadcast "
            "together"
        ) from None


def _as_strided_vjp(g, ans, x, shape, strides, offset):
    # every output element reads one input element: scatter the cotangent back to them
    flat = _as_strided_positions(x.size, shape, strides, offset).reshape(-1)
    back = _scatter_add(_zeros_near((x.size,), g.dtype, g._data), flat, reshape(g, (-1,)))
    return reshape(back, x.shape)


def _as_strided_positions(size: int, shape, strides, offset):
    pos = xp.full(shape, offset, dtype=xp.int64)
    for ax, (n, st) in enumerate(zip(shape, strides)):
        view = [1] * len(shape)
        view[ax] = n
        pos = pos + (xp.arange(n, dtype=xp.int64) * st).reshape(view)
    if pos.size and (pos.min() < 0 or pos.max() >= size):
        raise ValueError(
            f"as_strided: shape {shape}, strides {strides} and offset {offset} reach outside "
            f"the {size} elements of the array"
        )
    return pos


def _as_strided_batch(args, params, ex_ndim):
    ((x, nd),) = args
    flat = reshape(x, (x.shape[0], -1))
    pos = _as_strided_positions(flat.shape[1], params["shape"], params["strides"], params["offset"])
    return flat[_slice(None), pos]


_AS_STRIDED = defprim("as_strided", _as_strided_vjp, batch=_as_strided_batch)


@export
def as_strided(a, shape=None, strides=None, offset: int = 0, stream=None) -> array:
    """A view of ``a``'s flattened (row-major) elements with ``shape`` and ``strides``.

    Strides and offset count elements, not bytes (MLX).
    """
    a = _as(a)
    shape = a.shape if shape is None else tuple(_index(s) for s in shape)
    if builtins.any(s < 0 for s in shape):
        raise ValueError(f"as_strided: shape {shape} has a negative dimension")
    if strides is None:
        strides, acc = [], 1
        for s in reversed(shape):
            strides.insert(0, acc)
            acc *= s
    strides = tuple(_index(s) for s in strides)
    if len(strides) != len(shape):
        raise ValueError(f"as_strided: {len(strides)} strides for the shape {shape}")
    offset = _index(offset)
    pos = _as_strided_positions(a.size, shape, strides, offset)
    d = a._data
    out = d.reshape(-1)[pos] if _is_gpu(d) else xp.ascontiguousarray(d).reshape(-1)[pos]
    return _rec(_AS_STRIDED, out, (a,), {"shape": shape, "strides": strides, "offset": offset})


@export
def broadcast_arrays(*arrays, stream=None) -> list[array]:
    """Broadcast arrays against each other."""
    xs = [_as(x) for x in arrays]
    try:
        shape = xp.broadcast_shapes(*[x.shape for x in xs])
    except ValueError:
        shapes = " and ".join(str(x.shape) for x in xs)
        raise ValueError(
            f"broadcast_arrays: shapes {shapes} cannot be broadcast together"
        ) from None
    return [broadcast_to(x, shape) for x in xs]


@export(method=True)
def expand_dims(a, axis, stream=None) -> array:
    """Insert axes of length one at ``axis`` (an int or a sequence)."""
    if type(a) is not array:
        a = _handle(a)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shape = a._data.shape
    axes = _axes(axes, len(shape) + len(axes), "expand_dims")
    if len(axes) == 1:
        ax = axes[0]
        return reshape(a, (*shape[:ax], 1, *shape[ax:]))
    grown = list(shape)
    for ax in axes:
        grown.insert(ax, 1)
    return reshape(a, tuple(grown))


@export(method=True)
def squeeze(a, axis=None, stream=None) -> array:
    """Remove axes of length one (all of them, or those in ``axis``)."""
    a = _as(a)
    if axis is None:
        axes = tuple(i for i, s in enumerate(a.shape) if s == 1)
    else:
        axes = _axes(axis, a.ndim, "squeeze")
        for ax in axes:
            if a.shape[ax] != 1:
                raise ValueError(
                    f"squeeze: axis {ax} of shape {a.shape} has length {a.shape[ax]}, not 1"
                )
    return reshape(a, [s for i, s in enumerate(a.shape) if i not in axes])


@export(method=True)
def flatten(a, start_axis: int = 0, end_axis: int = -1, stream=None) -> array:
    """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
    a = _as(a)
    if a.ndim == 0:
        return reshape(a, (1,))
    s, e = _axes(start_axis, a.ndim, "flatten")[0], _axes(end_axis, a.ndim, "flatten")[0]
    if s > e:
        raise ValueError(f"flatten: start_axis {start_axis} is after end_axis {end_axis}")
    return reshape(a, a.shape[:s] + (-1,) + a.shape[e + 1 :])


@export
def unflatten(a, axis: int, shape, stream=None) -> array:
    """Split one axis into ``shape``."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "unflatten")[0]
    return reshape(a, a.shape[:ax] + tuple(shape) + a.shape[ax + 1 :])


@export
def atleast_1d(*arrays, stream=None):
    """Arrays with at least one dimension."""
    out = [reshape(x, (1,)) if _as(x).ndim == 0 else _as(x) for x in arrays]
    return out[0] if len(out) == 1 else out


@export
def atleast_2d(*arrays, stream=None):
    """Arrays with at least two dimensions."""
    out = []
    for x in arrays:
        x = _as(x)
        out.append(reshape(x, (1,) * (2 - x.ndim) + x.shape) if x.ndim < 2 else x)
    return out[0] if len(out) == 1 else out


@export
def atleast_3d(*arrays, stream=None):
    """Arrays with at least three dimensions."""
    out = []
    for x in arrays:
        x = _as(x)
        if x.ndim == 0:
            x = reshape(x, (1, 1, 1))
        elif x.ndim == 1:
            x = reshape(x, (1, x.shape[0], 1))
        elif x.ndim == 2:
            x = reshape(x, x.shape + (1,))
        out.append(x)
    return out[0] if len(out) == 1 else out


def _concat_vjp(g, ans, *xs, axis, argnum):
    start = _sum(x.shape[axis] for x in xs[:argnum])
    index = [_slice(None)] * g.ndim
    index[axis] = _slice(start, start + xs[argnum].shape[axis])
    return g[tuple(index)]


def _concat_batch(args, params, ex_ndim):
    size = next(v.shape[0] for v, n in args if n is not None)
    xs = []
    for v, n in args:
        if n is None:  # an unbatched input: the same for every example
            v = _as(_operand(v, n))
            v = broadcast_to(expand_dims(v, 0), (size, *v.shape))
        xs.append(v)
    return concatenate(xs, axis=params["axis"] + 1)


_CONCAT = defprim("concatenate", _concat_vjp, variadic=True, batch=_concat_batch)


@export
def concatenate(arrays, axis: int | None = 0, stream=None) -> array:
    """Join arrays along an existing axis (flattened first when ``axis`` is None)."""
    xs = [x if type(x) is array else _handle(x) for x in arrays]
    if not xs:
        raise ValueError("concatenate: no arrays given")
    if axis is None:
        xs = [reshape(x, (-1,)) for x in xs]
        axis = 0
    datas = [x._data for x in xs]
    d0 = datas[0]
    dt = d0.dtype
    ax = _axes(axis, d0.ndim, "concatenate")[0]
    mixed, total = False, 0
    for d in datas:
        if d.dtype is not dt and d.dtype != dt:
            dt, mixed = _dt.promote(dt, d.dtype), True
        if d.ndim > ax:
            total += d.shape[ax]
    _check_dims((total,), "concatenate")
    try:
        out = xp.concatenate([d.astype(dt, copy=False) for d in datas] if mixed else datas, ax)
    except ValueError:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"concatenate: shapes {shapes} do not match off axis {axis}") from None
    return _rec(_CONCAT, out, tuple(xs), {"axis": ax})


@export
def stack(arrays, axis: int = 0, stream=None) -> array:
    """Join arrays along a new axis."""
    xs = [x if type(x) is array else _handle(x) for x in arrays]
    if not xs:
        raise ValueError("stack: no arrays given")
    first = xs[0]._data
    shape, dt = first.shape, first.dtype
    recording = STATE.enabled
    plain = True  # host data of one dtype, nothing to record: one concatenate of views
    for x in xs:  # (one pass: the checks of a call on a few small arrays are its cost)
        d = x._data
        if d.shape != shape:
            shapes = sorted({x._data.shape for x in xs})
            raise ValueError(f"stack: all arrays must have one shape, got {shapes}")
        if type(d) is not xp.ndarray or d.dtype is not dt or (recording and x._node is not None):
            plain = False
    if plain:
        # concatenate of views with the new axis: half the cost of NumPy's stack
        ax = _axes(axis, len(shape) + 1, "stack")[0]
        grown = (*shape[:ax], 1, *shape[ax:])
        return _from_value(xp.concatenate([x._data.reshape(grown) for x in xs], ax))
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


@export(method=True)
def split(a, indices_or_sections, axis: int = 0, stream=None) -> list[array]:
    """Split into equal sections or at the given indices."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "split")[0]
    n = a.shape[ax]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0:
            raise ValueError(
                f"split: the number of sections must be positive, got {indices_or_sections}"
            )
        if n % indices_or_sections:
            raise ValueError(
                f"split: axis {axis} of length {n} does not divide into {indices_or_sections} "
                "equal sections"
            )
        step = n // indices_or_sections
        bounds = list(range(step, n, step))
    else:
        bounds = [int(i) for i in indices_or_sections]
    edges = [0] + bounds + [n]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        index = [_slice(None)] * a.ndim
        index[ax] = _slice(lo, hi)
        out.append(a[tuple(index)])
    return out


@export
def unstack(a, axis: int = 0, stream=None) -> list[array]:
    """Split along ``axis`` into arrays with that axis removed."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "unstack")[0]
    return [squeeze(x, ax) for x in split(a, a.shape[ax], ax)]


# These read only their operands' slots: the torch doors may hand them tensors as they are.
for _f in (reshape, transpose, swapaxes, expand_dims, concatenate, stack):
    _f.takes_tensors = True  # type: ignore[attr-defined]

# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .creation import _zeros_near  # noqa: E402
from .indexing import _scatter_add  # noqa: E402
from .reductions import _axes  # noqa: E402
from .table import _as, _handle, _rec, _slice, _sum  # noqa: E402
