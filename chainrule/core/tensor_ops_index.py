"""PyTorch's indexing, scatter/gather and shape functions, written with chainrule's ops.

``gather``, ``scatter*``, ``index_*``, ``masked_*``, ``narrow``, ``chunk``, ``split``,
``unbind``, ``flip``, ``roll``, ``repeat_interleave``, ``unique``... with PyTorch's
arguments (``dim``, ``index`` as int64 arrays). Gathers are ``take_along_axis`` and scatters
are the array's ``at[]`` updates, so values and gradients follow the engine's rules: a scatter
that replaces (``scatter``, ``index_copy``, ``masked_scatter``) sends the cotangent of a
replaced element to the source, and of a kept one to the input. Where indices repeat in a
replacing scatter, the last write wins (PyTorch leaves the choice undefined).
"""

from __future__ import annotations

import builtins
import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import tensor_functions as _tf
from .array import _from_value, array

_I64 = np.dtype(np.int64)

UniqueResult = collections.namedtuple("unique", ["values", "inverse", "counts"])


_const = _tf.const


def _index_data(index: Any, who: str, ref: array | None = None) -> np.ndarray:
    """``index``'s integer data, on the device of ``ref`` when given (host data given for the
    index of a GPU array is copied there)."""
    data = index._data if isinstance(index, array) else np.asarray(index)
    if data.dtype.kind not in "iu":
        raise RuntimeError(f"{who}: index must be an integer (int64) tensor, got {data.dtype}")
    return data if ref is None else _backend.same_device(data, ref._data)


def _on(value: Any, x: array) -> Any:
    """Host-made ``value`` (a mask, an index) on the device of ``x``: a no-op on the CPU."""
    return _backend.same_device(value, x._data)


def _scalar_like(value: Any, x: array) -> array:
    """``value`` as a 0-d array of ``x``'s dtype on ``x``'s device."""
    return mx.full((), value, x.dtype, stream=_tf.stream_of(x))


def _dim(x: array, dim: int, who: str) -> int:
    return _tf.one_dim(x, dim, who)


def _coords(index: np.ndarray, d: int, size: int, who: str) -> tuple:
    """Full coordinates of every entry of ``index`` with its value along dimension ``d``."""
    if index.size and (index.min() < -size or index.max() >= size):
        raise RuntimeError(
            f"{who}: index {int(index.max() if index.max() >= size else index.min())} is out "
            f"of bounds for dimension {d} with size {size}"
        )
    xpi = _backend.array_module(index)  # the grids on the index's device
    nd = index.ndim
    grids: list = [
        xpi.arange(n).reshape((1,) * k + (n,) + (1,) * (nd - k - 1))
        for k, n in enumerate(index.shape)
    ]
    grids[d] = index % size if size else index
    return tuple(np.broadcast_to(g, index.shape) for g in grids)


# -- gather and scatter ------------------------------------------------------------------------


def gather(input: array, dim: int, index: array, *, sparse_grad: bool = False) -> array:
    """``out[i][j] = input[index[i][j]][j]`` (for ``dim=0``): values picked along ``dim``."""
    d = _dim(input, dim, "gather")
    idx = _index_data(index, "gather", input)
    if idx.ndim != input.ndim and input.ndim:
        raise RuntimeError(
            f"gather: index has {idx.ndim} dimensions but input has {input.ndim} (shape "
            f"{input.shape}); they must have the same number"
        )
    if input.ndim == 0:
        return mx.reshape(input, idx.shape)
    for i, (s, t) in enumerate(zip(idx.shape, input.shape)):
        if i != d and s > t:
            raise RuntimeError(
                f"gather: index shape {idx.shape} is larger than input shape {input.shape} "
                f"in dimension {i}"
            )
    coords = _coords(idx, d, input.shape[d], "gather")
    return input[tuple(_const(c) for c in coords)]


def _src_values(src: Any, index: np.ndarray, x: array) -> array:
    if isinstance(src, array):
        if src.ndim == 0:
            return mx.broadcast_to(mx.astype(src, x.dtype), index.shape)
        sl = tuple(builtins.slice(0, s) for s in index.shape)
        return mx.astype(src[sl], x.dtype) if src._data.dtype != x._data.dtype else src[sl]
    return mx.full(index.shape, src, x.dtype, stream=_tf.stream_of(x))


def _last_writes(coords: tuple, shape: tuple) -> tuple[tuple, np.ndarray]:
    """The coordinates each written once (the last write of a repeated one), and which entries."""
    if coords[0].size:
        flat = np.ravel_multi_index(coords, shape).reshape(-1)
    else:
        flat = _backend.array_module(coords[0]).zeros(0, _I64)
    rev = flat[::-1]
    _, first = np.unique(rev, return_index=True)
    keep = np.sort(len(flat) - 1 - first)
    return tuple(c.reshape(-1)[keep] for c in coords), keep


def scatter(
    input: array, dim: int, index: array, src: Any = None, *, value: Any = None, reduce: Any = None
) -> array:
    """Write ``src`` (or ``value``) into a copy of ``input`` at ``index`` along ``dim``.

    ``reduce="add"``/``"multiply"`` combine with the existing values instead of replacing.
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    if reduce is not None:
        names = {"add": "sum", "multiply": "prod"}
        if reduce not in names:
            raise RuntimeError(
                f"scatter: reduce argument must be 'add' or 'multiply', got {reduce!r}"
            )
        return scatter_reduce(input, dim, index, src, names[reduce])
    d = _dim(input, dim, "scatter")
    idx = _index_data(index, "scatter", input)
    if input.ndim == 0:
        return mx.reshape(_src_values(src, idx, input), ()) if idx.size else input
    coords = _coords(idx, d, input.shape[d], "scatter")
    vals = _src_values(src, idx, input)
    ucoords, keep = _last_writes(coords, input.shape)
    mask = _backend.array_module(idx).zeros(input.shape, bool)
    mask[ucoords] = True
    base = mx.where(_const(mask), mx.zeros_like(input), input)
    flat_vals = mx.reshape(vals, (-1,))[_const(keep)] if keep.size else None
    if flat_vals is None:
        return base
    return base.at[tuple(_const(c) for c in ucoords)].add(flat_vals)


def scatter_add(input: array, dim: int, index: array, src: array) -> array:
    """Add ``src`` into a copy of ``input`` at ``index`` along ``dim`` (repeats accumulate)."""
    d = _dim(input, dim, "scatter_add")
    idx = _index_data(index, "scatter_add", input)
    if input.ndim == 0:
        return input + mx.sum(_src_values(src, idx, input))
    coords = _coords(idx, d, input.shape[d], "scatter_add")
    vals = _src_values(src, idx, input)
    return input.at[tuple(_const(c) for c in coords)].add(vals)


def scatter_reduce(
    input: array, dim: int, index: array, src: Any, reduce: str, *, include_self: bool = True
) -> array:
    """Combine ``src`` into ``input`` at ``index`` with ``sum``, ``prod``, ``mean``, ``amax``
    or ``amin`` (``include_self=False`` ignores the existing values where something lands)."""
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(
            f"scatter_reduce: reduce argument must be one of sum, prod, mean, amax, amin, "
            f"got {reduce!r}"
        )
    d = _dim(input, dim, "scatter_reduce")
    idx = _index_data(index, "scatter_reduce", input)
    x = input if input.ndim else mx.reshape(input, (1,))
    if input.ndim == 0:
        idx = idx.reshape(-1)
    coords = _coords(idx, d, x.shape[d], "scatter_reduce")
    vals = _src_values(src, idx, x)
    where = tuple(_const(c) for c in coords)
    xpi = _backend.array_module(idx)
    hit = xpi.zeros(x.shape, bool)
    hit[coords] = True
    hitc = _const(hit)
    if reduce in ("sum", "mean"):
        base = x if include_self else mx.where(hitc, mx.zeros_like(x), x)
        out = base.at[where].add(vals)
        if reduce == "mean":
            flat = np.ravel_multi_index(coords, x.shape).reshape(-1)
            count = np.bincount(flat, minlength=x.size).reshape(x.shape)  # on idx's device
            count = count + (1 if include_self else 0) * hit + (~hit)
            if x._data.dtype.kind in "iu":
                out = mx.floor_divide(out, _const(count.astype(x._data.dtype)))
            else:
                out = out / _const(count.astype(x._data.dtype))
    elif reduce == "prod":
        base = x if include_self else mx.where(hitc, mx.ones_like(x), x)
        out = base.at[where].multiply(vals)
    else:
        fill = np.inf if reduce == "amin" else -np.inf
        if x._data.dtype.kind in "iu":
            info = np.iinfo(x._data.dtype)
            fill = info.max if reduce == "amin" else info.min
        base = (
            x
            if include_self
            else mx.where(hitc, mx.full(x.shape, fill, x.dtype, stream=_tf.stream_of(x)), x)
        )
        out = base.at[where].minimum(vals) if reduce == "amin" else base.at[where].maximum(vals)
    return mx.reshape(out, ()) if input.ndim == 0 else out


def _index_coords(x: array, d: int, index: np.ndarray, who: str) -> tuple[int, np.ndarray]:
    if index.ndim > 1:
        raise RuntimeError(f"{who}: index must be a 0-D or 1-D tensor, got shape {index.shape}")
    size = x.shape[d] if x.ndim else 1
    index = index.reshape(-1)
    if index.size and (index.min() < -size or index.max() >= size):
        raise IndexError(f"{who}: index out of range for dimension {d} with size {size}")
    return d, index % builtins.max(size, 1)


def _along(x: array, d: int, index: np.ndarray) -> tuple:
    key = [builtins.slice(None)] * x.ndim
    key[d] = _const(index)  # type: ignore[call-overload]
    return tuple(key)


def index_select(input: array, dim: int, index: array) -> array:
    """The slices of ``input`` at ``index`` along ``dim``."""
    d = _dim(input, dim, "index_select")
    d, idx = _index_coords(input, d, _index_data(index, "index_select", input), "index_select")
    if input.ndim == 0:
        return mx.reshape(input, (idx.size,))[...] if idx.size != 1 else input
    return mx.take(input, _const(idx), axis=d)


def index_add(input: array, dim: int, index: array, source: array, *, alpha: Any = 1) -> array:
    """Add ``alpha * source``'s slices into a copy of ``input`` at ``index`` along ``dim``."""
    d = _dim(input, dim, "index_add")
    d, idx = _index_coords(input, d, _index_data(index, "index_add", input), "index_add")
    src = source if alpha == 1 else source * alpha
    if input.ndim == 0:
        return input + mx.sum(src)
    return input.at[_along(input, d, idx)].add(mx.astype(src, input.dtype))


def index_copy(input: array, dim: int, index: array, source: array) -> array:
    """Replace the slices of a copy of ``input`` at ``index`` along ``dim`` by ``source``'s."""
    d = _dim(input, dim, "index_copy")
    d, idx = _index_coords(input, d, _index_data(index, "index_copy", input), "index_copy")
    if input.ndim == 0:
        return mx.reshape(source, ())
    mask = _backend.array_module(idx).zeros(input.shape[d], bool)
    mask[idx] = True
    shape = [1] * input.ndim
    shape[d] = -1
    base = mx.where(_const(mask.reshape(shape)), mx.zeros_like(input), input)
    # Last write wins among repeated indices.
    _, first = np.unique(idx[::-1], return_index=True)
    keep = np.sort(len(idx) - 1 - first)
    src = mx.take(mx.astype(source, input.dtype), _const(keep), axis=d)
    return base.at[_along(input, d, idx[keep])].add(src)


def index_fill(input: array, dim: int, index: array, value: Any) -> array:
    """Set the slices of a copy of ``input`` at ``index`` along ``dim`` to ``value``."""
    d = _dim(input, dim, "index_fill")
    d, idx = _index_coords(input, d, _index_data(index, "index_fill", input), "index_fill")
    mask = _backend.array_module(idx).zeros(input.shape[d] if input.ndim else 1, bool)
    mask[idx] = True
    shape = [1] * input.ndim
    if input.ndim:
        shape[d] = -1
    v = value if isinstance(value, array) else _scalar_like(value, input)
    return mx.where(
        _const(mask.reshape(shape) if input.ndim else mask[0]), mx.astype(v, input.dtype), input
    )


def index_reduce(
    input: array, dim: int, index: array, source: array, reduce: str, *, include_self: bool = True
) -> array:
    """``index_add`` with ``prod``, ``mean``, ``amax`` or ``amin`` instead of the sum."""
    d = _dim(input, dim, "index_reduce")
    d, idx = _index_coords(input, d, _index_data(index, "index_reduce", input), "index_reduce")
    shape = [1] * input.ndim
    shape[d] = -1
    full = np.broadcast_to(idx.reshape(shape), source.shape)
    return scatter_reduce(input, d, _const(full), source, reduce, include_self=include_self)


def index_put(input: array, indices: Sequence[Any], values: Any, accumulate: bool = False):
    """``input[indices] = values`` (``+=`` with ``accumulate``) on a copy."""
    key = tuple(indices)
    v = values if isinstance(values, array) else mx.array(values, dtype=input.dtype)
    v = mx.astype(v, input.dtype) if v._data.dtype != input._data.dtype else v
    if accumulate:
        return input.at[key].add(v)
    out = input * 1 if input._node is not None else _from_value(input._data.copy())
    out[key] = v
    return out


def masked_fill(input: array, mask: array, value: Any) -> array:
    """``value`` where ``mask`` is true, else ``input``."""
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill: expected a bool mask, got {mask.dtype}")
    if isinstance(value, array) and value.ndim:
        raise RuntimeError(
            f"masked_fill: only supports a 0-dimensional value tensor, got shape {value.shape}"
        )
    v = value if isinstance(value, array) else _scalar_like(value, input)
    return mx.where(mask, mx.astype(v, input.dtype), input)


def masked_select(input: array, mask: array) -> array:
    """The elements where ``mask`` is true, as a 1-D array."""
    shape = np.broadcast_shapes(input.shape, mask.shape)
    m = np.broadcast_to(mask._data, shape)
    x = mx.broadcast_to(input, shape) if input.shape != shape else input
    return (
        x[tuple(_const(c) for c in np.nonzero(m))]
        if m.ndim
        else mx.reshape(x, (-1,))[_const(np.nonzero(m.reshape(-1))[0])]
    )


def masked_scatter(input: array, mask: array, source: array) -> array:
    """Copy ``source``'s leading elements, in order, where ``mask`` is true."""
    m = np.broadcast_to(mask._data, input.shape)
    n = int(m.sum())
    if source.size < n:
        raise RuntimeError(
            f"masked_scatter: expected source to have at least {n} elements, got {source.size}"
        )
    coords = np.nonzero(m)
    vals = mx.reshape(source, (-1,))[:n]
    if input.ndim == 0:
        return mx.reshape(vals, ()) if n else input
    base = mx.where(_const(m), mx.zeros_like(input), input)
    return base.at[tuple(_const(c) for c in coords)].add(mx.astype(vals, input.dtype))


def take(input: array, index: array) -> array:
    """Elements of the flattened input at ``index`` (shaped like ``index``)."""
    idx = _index_data(index, "take")
    n = input.size
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"take: index out of range for a tensor of {n} elements")
    return mx.reshape(input, (-1,))[_const(idx % builtins.max(n, 1))]


def take_along_dim(input: array, indices: array, dim: int | None = None) -> array:
    """``gather`` with broadcasting (of the flattened input when ``dim`` is None)."""
    idx = _index_data(indices, "take_along_dim")
    if dim is None:
        return take(input, _const(idx.reshape(-1)))
    d = _dim(input, dim, "take_along_dim")
    return mx.take_along_axis(input, _const(idx % builtins.max(input.shape[d], 1)), axis=d)


def put(input: array, index: array, source: array, accumulate: bool = False) -> array:
    """Write ``source`` at flat positions ``index`` of a copy of ``input``."""
    idx = _index_data(index, "put").reshape(-1)
    flat = mx.reshape(input, (-1,))
    src = mx.reshape(mx.astype(source, input.dtype), (-1,))
    if accumulate:
        out = flat.at[_const(idx)].add(src)
    else:
        out = scatter(flat, 0, _const(idx % builtins.max(input.size, 1)), src)
    return mx.reshape(out, input.shape)


# -- slicing and splitting ---------------------------------------------------------------------


def narrow(input: array, dim: int, start: Any, length: int) -> array:
    """The slice ``start : start + length`` along ``dim``."""
    d = _dim(input, dim, "narrow")
    size = input.shape[d]
    s = int(start.item() if isinstance(start, array) else start)
    if s < 0:
        s += size
    if not 0 <= s <= size or length < 0 or s + length > size:
        raise RuntimeError(
            f"narrow: start ({start}) + length ({length}) exceeds dimension size ({size})"
        )
    key = [builtins.slice(None)] * input.ndim
    key[d] = builtins.slice(s, s + int(length))
    return input[tuple(key)]


def select(input: array, dim: int, index: int) -> array:
    """The slice at ``index`` along ``dim`` (the dimension is removed)."""
    d = _dim(input, dim, "select")
    size = input.shape[d]
    if not -size <= index < size:
        raise IndexError(
            f"select: index {index} out of range for tensor of size {input.shape} at dimension {d}"
        )
    key = [builtins.slice(None)] * input.ndim
    key[d] = int(index)  # type: ignore[call-overload]
    return input[tuple(key)]


def _split_at(input: array, d: int, sizes: list[int]) -> tuple[array, ...]:
    out, start = [], 0
    for s in sizes:
        key = [builtins.slice(None)] * input.ndim
        key[d] = builtins.slice(start, start + s)
        out.append(input[tuple(key)])
        start += s
    return tuple(out)


def split(input: array, split_size_or_sections: Any, dim: int = 0) -> tuple[array, ...]:
    """Pieces of ``split_size_or_sections`` elements along ``dim`` (the last may be shorter),
    or pieces of the given sizes when it is a list."""
    d = _dim(input, dim, "split")
    n = input.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        s = int(split_size_or_sections)
        if s <= 0 and n:
            raise RuntimeError(f"split: split_size must be positive, got {s}")
        sizes = [builtins.min(s, n - i) for i in range(0, n, s)] if n else [0]
    else:
        sizes = [int(v) for v in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise RuntimeError(
                f"split: split_with_sizes expects split_sizes to sum exactly to {n} (input "
                f"tensor's size at dimension {d}), but got split_sizes={sizes}"
            )
    return _split_at(input, d, sizes)


def split_with_sizes(input: array, split_sizes: Sequence[int], dim: int = 0) -> tuple:
    """Pieces of the given sizes along ``dim``."""
    return split(input, list(split_sizes), dim)


def chunk(input: array, chunks: int, dim: int = 0) -> tuple[array, ...]:
    """At most ``chunks`` pieces of ``ceil(size / chunks)`` elements along ``dim``."""
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunks must be greater than 0, got {chunks}")
    d = _dim(input, dim, "chunk")
    n = input.shape[d]
    size = -(-n // chunks) if n else 0
    return split(input, size if size else 1, d) if n else _split_at(input, d, [0] * chunks)


def tensor_split(input: array, indices_or_sections: Any, dim: int = 0) -> tuple[array, ...]:
    """``numpy.array_split``: ``n`` near-equal pieces, or pieces cut at the given indices."""
    d = _dim(input, dim, "tensor_split")
    n = input.shape[d]
    ios = indices_or_sections
    if isinstance(ios, array):
        ios = ios.item() if ios.ndim == 0 else ios.tolist()
    if isinstance(ios, (int, np.integer)):
        k = int(ios)
        if k <= 0:
            raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {k}")
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        return _split_at(input, d, sizes)
    cuts = [builtins.min(builtins.max(int(i) if i >= 0 else int(i) + n, 0), n) for i in ios]
    out, prev = [], 0
    for c in cuts + [n]:
        key = [builtins.slice(None)] * input.ndim
        key[d] = builtins.slice(prev, builtins.max(c, prev))
        out.append(input[tuple(key)])
        prev = builtins.max(c, prev)
    return tuple(out)


def _nsplit(input: array, ios: Any, dim: int, need: int, who: str) -> tuple:
    if input.ndim < need:
        raise RuntimeError(
            f"{who}: requires a tensor with at least {need} dimension(s), got shape {input.shape}"
        )
    if isinstance(ios, (int, np.integer)) and input.shape[dim] % int(ios):
        raise RuntimeError(
            f"{who}: dimension {dim} of size {input.shape[dim]} is not divisible by {ios}"
        )
    return tensor_split(input, ios, dim)


def hsplit(input: array, indices_or_sections: Any) -> tuple:
    """``tensor_split`` along dimension 1 (0 for 1-D input), sections must divide evenly."""
    return _nsplit(input, indices_or_sections, 1 if input.ndim > 1 else 0, 1, "hsplit")


def vsplit(input: array, indices_or_sections: Any) -> tuple:
    """``tensor_split`` along dimension 0 of an input of at least 2 dimensions."""
    return _nsplit(input, indices_or_sections, 0, 2, "vsplit")


def dsplit(input: array, indices_or_sections: Any) -> tuple:
    """``tensor_split`` along dimension 2 of an input of at least 3 dimensions."""
    return _nsplit(input, indices_or_sections, 2, 3, "dsplit")


def unbind(input: array, dim: int = 0) -> tuple[array, ...]:
    """The slices along ``dim``, with the dimension removed."""
    d = _dim(input, dim, "unbind")
    return tuple(select(input, d, i) for i in range(input.shape[d]))


def _scatter_into(input: array, key: tuple, src: array, who: str) -> array:
    target_shape = _from_value(input._data[key]).shape
    if tuple(src.shape) != tuple(target_shape):
        raise RuntimeError(
            f"{who}: expected src to have a size equal to the slice of self, got src shape "
            f"{src.shape} and slice shape {target_shape}"
        )
    mask = _backend.array_module(input._data).zeros(input.shape, bool)
    mask[key] = True
    base = mx.where(_const(mask), mx.zeros_like(input), input)
    coords = np.nonzero(mask)
    src_vals = mx.reshape(mx.astype(src, input.dtype), (-1,))
    # The slice's elements in row-major order are the mask's True entries in row-major order.
    return base.at[tuple(_const(c) for c in coords)].add(src_vals) if coords[0].size else base


def select_scatter(input: array, src: array, dim: int, index: int) -> array:
    """A copy of ``input`` whose slice ``index`` along ``dim`` is ``src``."""
    d = _dim(input, dim, "select_scatter")
    key = [builtins.slice(None)] * input.ndim
    key[d] = int(index) % input.shape[d]
    return _scatter_into(input, tuple(key), src, "select_scatter")


def slice_scatter(
    input: array,
    src: array,
    dim: int = 0,
    start: int | None = None,
    end: int | None = None,
    step: int = 1,
) -> array:
    """A copy of ``input`` whose slice ``start:end:step`` along ``dim`` is ``src``."""
    d = _dim(input, dim, "slice_scatter")
    key = [builtins.slice(None)] * input.ndim
    key[d] = builtins.slice(start, end, step)
    return _scatter_into(input, tuple(key), src, "slice_scatter")


def diagonal_scatter(
    input: array, src: array, offset: int = 0, dim1: int = 0, dim2: int = 1
) -> array:
    """A copy of ``input`` whose diagonal (``offset``, ``dim1``, ``dim2``) is ``src``."""
    d1, d2 = _dim(input, dim1, "diagonal_scatter"), _dim(input, dim2, "diagonal_scatter")
    n1, n2 = input.shape[d1], input.shape[d2]
    i = np.arange(
        builtins.max(
            0, builtins.min(n1, n2 - offset) if offset >= 0 else builtins.min(n1 + offset, n2)
        )
    )
    r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
    expected = _from_value(np.diagonal(input._data, offset, d1, d2)).shape
    if tuple(src.shape) != tuple(expected):
        raise RuntimeError(f"diagonal_scatter: src must have shape {expected}, got {src.shape}")
    # Move the two dims last, scatter on the diagonal entries, move back.
    perm = [k for k in range(input.ndim) if k not in (d1, d2)] + [d1, d2]
    xt = mx.transpose(input, perm)
    mask = np.zeros(xt.shape[-2:], bool)
    mask[r, c] = True
    base = mx.where(_const(_on(mask, input)), mx.zeros_like(xt), xt)
    lead = xt.shape[:-2]
    grids = np.indices(lead + (len(i),)).reshape(len(lead) + 1, -1)
    coords = _on(np.stack(tuple(grids[:-1]) + (r[grids[-1]], c[grids[-1]])), input)
    vals = mx.reshape(mx.astype(src, input.dtype), (-1,))
    out = base.at[tuple(_const(k) for k in coords)].add(vals) if len(i) else base
    inv = np.argsort(perm)
    return mx.transpose(out, tuple(int(k) for k in inv))


# -- shapes ------------------------------------------------------------------------------------


def movedim(input: array, source: Any, destination: Any) -> array:
    """Move dimensions ``source`` to positions ``destination``."""
    src = [source] if isinstance(source, (int, np.integer)) else list(source)
    dst = [destination] if isinstance(destination, (int, np.integer)) else list(destination)
    if len(src) != len(dst):
        raise RuntimeError(
            f"movedim: source ({src}) and destination ({dst}) must have the same "
            "number of dimensions"
        )
    nd = builtins.max(input.ndim, 1)
    src = [_dim(input, s, "movedim") for s in src]  # type: ignore[arg-type]
    dst = [int(d) % nd for d in dst]
    order = [k for k in range(input.ndim) if k not in src]
    for d_, s in sorted(zip(dst, src)):
        order.insert(d_, s)  # type: ignore[arg-type]
    return mx.transpose(input, tuple(order)) if input.ndim else input


def flip(input: array, dims: Any) -> array:
    """Reverse the order of elements along ``dims``."""
    ds = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    key = [builtins.slice(None)] * input.ndim
    for d in ds:
        key[_dim(input, d, "flip")] = builtins.slice(None, None, -1)  # type: ignore[arg-type]
    return input[tuple(key)] if input.ndim else input


def fliplr(input: array) -> array:
    """Reverse dimension 1 (input of at least 2 dimensions)."""
    if input.ndim < 2:
        raise RuntimeError(f"fliplr: input must be >= 2-d, got shape {input.shape}")
    return flip(input, 1)


def flipud(input: array) -> array:
    """Reverse dimension 0 (input of at least 1 dimension)."""
    if input.ndim < 1:
        raise RuntimeError("flipud: input must be >= 1-d")
    return flip(input, 0)


def roll(input: array, shifts: Any, dims: Any = None) -> array:
    """Rotate elements by ``shifts`` along ``dims`` (of the flattened input when None)."""
    if dims is None:
        return mx.reshape(mx.roll(mx.reshape(input, (-1,)), shifts), input.shape)
    return mx.roll(input, shifts, _tf.dims(dims))


def rot90(input: array, k: int = 1, dims: Sequence[int] = (0, 1)) -> array:
    """Rotate by 90 degrees ``k`` times in the plane of ``dims`` (from the first toward the second)."""
    if len(dims) != 2:
        raise RuntimeError(f"rot90: expected total rotation dims == 2, got {len(dims)}")
    d0, d1 = _dim(input, dims[0], "rot90"), _dim(input, dims[1], "rot90")
    if d0 == d1:
        raise RuntimeError(f"rot90: rotation dims must differ, got {dims}")
    k = k % 4
    if k == 1:
        return mx.swapaxes(flip(input, d1), d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return flip(mx.swapaxes(input, d0, d1), d1)
    return input


def repeat_interleave(
    input: Any, repeats: Any = None, dim: int | None = None, *, output_size: int | None = None
) -> array:
    """Repeat each element ``repeats`` times (a number or one count per element) along ``dim``."""
    if repeats is None:
        counts = _index_data(input, "repeat_interleave")
        host = _backend.to_host(counts)  # the output's size depends on the counts
        return _const(
            _backend.same_device(np.repeat(np.arange(host.size, dtype=_I64), host), counts)
        )
    x = input if dim is not None else mx.reshape(input, (-1,))
    d = 0 if dim is None else _dim(x, dim, "repeat_interleave")
    r = _backend.to_host(repeats._data) if isinstance(repeats, array) else np.asarray(repeats)
    n = x.shape[d] if x.ndim else 1
    r = np.broadcast_to(r.reshape(-1), (n,)) if r.size == 1 else r.reshape(-1)
    if r.size != n:
        raise RuntimeError(
            f"repeat_interleave: repeats must have the same size as input along "
            f"dim {d}, got {r.size} and {n}"
        )
    idx = np.repeat(np.arange(n), r)
    return mx.take(x, _const(_on(idx, x)), axis=d)


def unflatten(input: array, dim: int, sizes: Sequence[int]) -> array:
    """Split dimension ``dim`` into ``sizes`` (one entry may be -1)."""
    d = _dim(input, dim, "unflatten")
    sizes = [int(s) for s in sizes]
    if -1 in sizes:
        known = int(np.prod([s for s in sizes if s != -1]))
        sizes[sizes.index(-1)] = input.shape[d] // known if known else 0
    if int(np.prod(sizes)) != input.shape[d]:
        raise RuntimeError(
            f"unflatten: provided sizes {sizes} don't multiply up to the size of "
            f"dim {dim} ({input.shape[d]}) in the input tensor"
        )
    return mx.reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1 :])


def unfold(input: array, dimension: int, size: int, step: int) -> array:
    """All slices of ``size`` elements along ``dimension``, ``step`` apart, as a new last dim."""
    d = _dim(input, dimension, "unfold")
    n = input.shape[d] if input.ndim else 1
    if size > n:
        raise RuntimeError(
            f"unfold: maximum size for tensor at dimension {d} is {n} but size is {size}"
        )
    if step <= 0:
        raise RuntimeError(f"unfold: step is {step} but must be > 0")
    starts = np.arange(0, n - size + 1, step)
    idx = starts[:, None] + np.arange(size)[None, :]
    x = mx.take(input, _const(idx), axis=d)  # (..., windows, size, ...)
    return mx.moveaxis(x, d + 1, -1)


def ravel(input: array) -> array:
    """The flattened input."""
    return mx.reshape(input, (-1,))


def sum_to_size(input: array, *size: Any) -> array:
    """Sum ``input`` down to ``size`` (the inverse of broadcasting to it)."""
    shape = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
    lead = input.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"sum_to_size: size {shape} is not expandable to {input.shape}")
    out = mx.sum(input, tuple(range(lead))) if lead else input
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and out.shape[i] != 1)
    for i, s in enumerate(shape):
        if s != 1 and s != out.shape[i]:
            raise RuntimeError(f"sum_to_size: size {shape} is not expandable to {input.shape}")
    return mx.sum(out, axes, keepdims=True) if axes else out


def nonzero(input: array, *, as_tuple: bool = False) -> Any:
    """Indices of the non-zero elements: an (n, ndim) int64 array, or a tuple of 1-D ones."""
    idx = np.nonzero(np.atleast_1d(input._data)) if input.ndim == 0 else np.nonzero(input._data)
    if as_tuple:
        return tuple(_const(i.astype(_I64)) for i in idx)
    if input.ndim == 0:
        return _const(_on(np.zeros((len(idx[0]), 0), _I64), input))
    return _const(np.stack(idx, axis=1).astype(_I64) if idx else _on(np.zeros((0, 0), _I64), input))


def argwhere(input: array) -> array:
    """``nonzero(input)``: an (n, ndim) int64 array."""
    return nonzero(input)


def nonzero_static(input: array, *, size: int, fill_value: int = -1) -> array:
    """``nonzero`` padded with ``fill_value`` (or cut) to exactly ``size`` rows."""
    nz = nonzero(input)._data
    out = _backend.array_module(nz).full((int(size), builtins.max(input.ndim, 0)), fill_value, _I64)
    m = builtins.min(len(nz), int(size))
    out[:m] = nz[:m]
    return _const(out)


def unique(
    input: array,
    sorted: bool = True,
    return_inverse: bool = False,
    return_counts: bool = False,
    dim: int | None = None,
) -> Any:
    """The distinct values (sorted), with optional inverse indices and counts (int64)."""
    data = input._data
    axis = None if dim is None else _dim(input, dim, "unique")
    vals, inv, counts = np.unique(data, return_inverse=True, return_counts=True, axis=axis)
    out = [_const(vals)]
    if return_inverse:
        out.append(_const(inv.reshape(data.shape if axis is None else -1).astype(_I64)))
    if return_counts:
        out.append(_const(counts.astype(_I64)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(
    input: array, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None
) -> Any:
    """Values with consecutive repeats collapsed, with optional inverse indices and counts."""
    data = input._data
    xpi = _backend.array_module(data)
    if dim is None:
        flat = data.reshape(-1)
        change = xpi.ones(flat.shape, bool)
        change[1:] = flat[1:] != flat[:-1]
        vals = flat[change]
        inv = np.cumsum(change) - 1
        inv = inv.reshape(data.shape)
    else:
        d = _dim(input, dim, "unique_consecutive")
        moved = np.moveaxis(data, d, 0)
        change = xpi.ones(moved.shape[0], bool)
        change[1:] = np.any((moved[1:] != moved[:-1]).reshape(moved.shape[0] - 1, -1), axis=1)
        vals = np.moveaxis(moved[change], 0, d)
        inv = np.cumsum(change) - 1
    starts = np.nonzero(change)[0]
    counts = np.diff(np.append(starts, change.size))
    out = [_const(vals)]
    if return_inverse:
        out.append(_const(inv.astype(_I64)))
    if return_counts:
        out.append(_const(counts.astype(_I64)))
    return out[0] if len(out) == 1 else tuple(out)


def searchsorted(
    sorted_sequence: array,
    input: Any,
    *,
    out_int32: bool = False,
    right: bool = False,
    side: str | None = None,
    sorter: Any = None,
) -> array:
    """Insertion points of ``input`` in the last dimension of ``sorted_sequence`` (int64)."""
    seq = sorted_sequence._data
    xpi = _backend.array_module(seq)
    v = _backend.same_device(input._data if isinstance(input, array) else np.asarray(input), seq)
    s = side or ("right" if right else "left")
    if side is not None and right and side == "left":
        raise RuntimeError("searchsorted: side and right disagree")
    srt = None if sorter is None else _index_data(sorter, "searchsorted", sorted_sequence)
    if seq.ndim <= 1:
        out = np.searchsorted(seq, v, side=s, sorter=srt)  # type: ignore[call-overload]
    else:
        out = xpi.empty(v.shape, _I64)
        for pos in np.ndindex(*seq.shape[:-1]):
            out[pos] = np.searchsorted(  # type: ignore[call-overload]
                seq[pos], v[pos], side=s, sorter=None if srt is None else srt[pos]
            )
    return _const(xpi.asarray(out).astype(np.int32 if out_int32 else _I64))


def bucketize(input: Any, boundaries: array, *, out_int32: bool = False, right: bool = False):
    """The bucket of each value among 1-D ``boundaries`` (``searchsorted`` with sides swapped)."""
    if boundaries.ndim != 1:
        raise RuntimeError(f"bucketize: boundaries must be 1-D, got shape {boundaries.shape}")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


def msort(input: array) -> array:
    """Sorted along dimension 0."""
    return mx.sort(input, axis=0) if input.ndim else input


def view_as_real(input: array) -> array:
    """A complex array as a real one with a last dimension of 2 (real, imaginary)."""
    if input._data.dtype.kind != "c":
        raise RuntimeError(
            f"view_as_real: is only supported for complex tensors, got {input.dtype}"
        )
    return mx.stack([mx.real(input), mx.imag(input)], axis=-1)


def view_as_complex(input: array) -> array:
    """A real array whose last dimension is 2 as a complex one."""
    if input.ndim == 0 or input.shape[-1] != 2:
        raise RuntimeError(
            f"view_as_complex: tensor must have a last dimension of size 2, got shape {input.shape}"
        )
    if input._data.dtype not in (np.float32, np.float64):
        raise RuntimeError(
            f"view_as_complex: is only supported for float and double tensors, got {input.dtype}"
        )
    return complex(input[..., 0], input[..., 1])


def complex(real: array, imag: array) -> array:
    """``real + 1j * imag`` (complex64 for float32 parts, complex128 for float64)."""
    if real._data.dtype != imag._data.dtype or real._data.dtype.kind != "f":
        raise RuntimeError(
            f"complex: expected real and imag of the same float dtype, got "
            f"{real.dtype} and {imag.dtype}"
        )
    ctype = mx.complex128 if real._data.dtype == np.float64 else mx.complex64
    return mx.astype(real, ctype) + mx.astype(imag, ctype) * mx.array(1j, dtype=ctype)


def polar(abs: array, angle: array) -> array:
    """``abs * (cos(angle) + 1j * sin(angle))``."""
    return complex(abs * mx.cos(angle), abs * mx.sin(angle))


def diag_embed(input: array, offset: int = 0, dim1: int = -2, dim2: int = -1) -> array:
    """Square matrices whose diagonal (``offset``) holds the last dimension of ``input``."""
    n = input.shape[-1] + builtins.abs(offset)
    nd = input.ndim + 1
    i = np.arange(input.shape[-1])
    sel = np.zeros((input.shape[-1], n, n), bool)
    r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
    sel[i, r, c] = True
    x = mx.expand_dims(mx.expand_dims(input, -1), -1)  # (..., k, 1, 1)
    out = mx.sum(x * _const(_on(sel.astype(input._data.dtype), input)), axis=-3)  # (..., n, n)
    d1, d2 = int(dim1) % nd, int(dim2) % nd
    return movedim(out, (nd - 2, nd - 1), (d1, d2))


def diagflat(input: array, offset: int = 0) -> array:
    """A matrix with the flattened input on diagonal ``offset``."""
    return diag_embed(mx.reshape(input, (-1,)), offset)


def block_diag(*tensors: array) -> array:
    """A block-diagonal matrix of the given matrices (scalars and vectors count as 1-row)."""
    mats = [mx.reshape(t, (1, -1)) if t.ndim < 2 else t for t in tensors]
    if not mats:
        return _const(np.zeros((1, 0), np.float32))
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = mx.promote_types(dtype, m.dtype)
    cols = builtins.sum(m.shape[1] for m in mats)
    rows, start = [], 0
    for m in mats:
        parts = []
        if start:
            parts.append(mx.zeros((m.shape[0], start), dtype=dtype, stream=_tf.stream_of(m)))
        parts.append(mx.astype(m, dtype))
        rest = cols - start - m.shape[1]
        if rest:
            parts.append(mx.zeros((m.shape[0], rest), dtype=dtype, stream=_tf.stream_of(m)))
        rows.append(mx.concatenate(parts, axis=1))
        start += m.shape[1]
    return mx.concatenate(rows, axis=0)


def cartesian_prod(*tensors: array) -> array:
    """Every combination of one element from each 1-D input, as rows."""
    if len(tensors) == 1:
        return tensors[0]
    grids = mx.meshgrid(*tensors, indexing="ij")
    return mx.stack([mx.reshape(g, (-1,)) for g in grids], axis=1)


def combinations(input: array, r: int = 2, with_replacement: bool = False) -> array:
    """The ``r``-element combinations of a 1-D input, as rows."""
    import itertools

    n = input.shape[0]
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = np.array(list(pick(range(n), r)), dtype=_I64).reshape(-1, r)
    if idx.size == 0:
        return mx.zeros((0,) if r else (0,), dtype=input.dtype, stream=_tf.stream_of(input))
    return input[_const(idx)]


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None) -> array:
    """The (2, n) coordinates of the lower triangle of a ``row`` x ``col`` matrix."""
    r, c = np.tril_indices(row, offset, col)
    return _const(np.stack([r, c]).astype(_tf.to_np_dtype(dtype, _I64)))


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None) -> array:
    """The (2, n) coordinates of the upper triangle of a ``row`` x ``col`` matrix."""
    r, c = np.triu_indices(row, offset, col)
    return _const(np.stack([r, c]).astype(_tf.to_np_dtype(dtype, _I64)))
