"""Collectives on chainrule arrays (MLX's ``mx.distributed`` operations) over MPI.

``all_sum``, ``all_max``, ``all_min`` and ``all_gather`` are primitives of the engine with
MLX's rules (``mlx/distributed/primitives.cpp``). An all-reduce passes the cotangent through
unchanged (``AllReduce::vjp``): every process is taken to hold the same loss of the reduced
value, so each process's input receives that loss's cotangent once, not once per process.
Code that needs the cotangents of every process summed calls ``all_sum`` on them itself
(MLX's ``nn.layers.distributed.sum_gradients`` does, for the input of a sharded layer).
Under ``jvp`` the tangent of ``all_sum`` is the ``all_sum`` of the input's tangent (MLX's
``AllReduce::jvp``). The VJP of ``all_gather`` takes this rank's rows of the cotangent and its
JVP gathers the tangents; that rule goes through a companion primitive
(``all_gather_adjoint``) whose forward is the VJP and whose own VJP is the gather, so that
``jvp`` and higher derivatives come out right. ``sum_scatter``, ``send`` and ``recv`` are not
differentiable.

In a group of one process every operation returns its input (as MLX does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.autograd import FORWARD
from chainrule.core.extend import Primitive, from_value, record
from chainrule.utils import tree_flatten, tree_map

from .exits import waiting
from .group import STATS, Group, _clock, _world_or

__all__ = [
    "all_sum",
    "all_max",
    "all_min",
    "all_gather",
    "sum_scatter",
    "broadcast",
    "barrier",
    "send",
    "recv",
    "recv_like",
]


def _mpi() -> Any:
    from mpi4py import MPI

    return MPI


def _as_array(x: Any, who: str) -> array:
    if type(x) is array:
        return x
    try:
        return array(x)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: expected an array, got {type(x).__name__}: {e}") from None


def _wire(data: Any, copy: bool = False) -> np.ndarray:
    """A C-contiguous host buffer of ``data``'s shape that MPI can reduce (MPI has no half
    floats, no bfloat16 and no sum of bools: they travel as float32 and int32). GPU data is
    copied to the host explicitly (the messages travel through host memory)."""
    dt = data.dtype
    half = dt == np.float16 or dt.kind == "V"
    wire = np.float32 if half else np.int32 if dt == np.bool_ else dt
    if backend.is_gpu(data):
        return np.ascontiguousarray(backend.to_host(data), dtype=wire)
    return np.array(data, dtype=wire, order="C", copy=True if copy else None)


def _unwire(buf: np.ndarray, dtype: np.dtype, like: Any = None) -> Any:
    """The received host buffer as ``dtype``, on the device of ``like`` (a backend array)."""
    if buf.dtype != dtype:
        buf = (buf != 0) if dtype == np.bool_ else buf.astype(dtype)
    return buf if like is None else backend.same_device(buf, like)


def _allreduce(group: Group, data: np.ndarray, op: Any, what: str) -> np.ndarray:
    buf = _wire(data, copy=True)
    t0 = _clock()
    with waiting(what, group):
        group.comm.Allreduce(_mpi().IN_PLACE, buf.reshape(-1), op=op)
    STATS.seconds += _clock() - t0
    STATS.calls += 1
    STATS.bytes += buf.nbytes
    return _unwire(buf, data.dtype, data)


# ------------------------------------------------------------------------------- all_sum


def _pass_through(g: array, ans: array, x: array, group: Group) -> array:
    return g  # MLX's AllReduce::vjp


def _all_sum_transpose(g: array, ans: array, x: array, group: Group) -> array:
    # recorded self-adjoint again, so jvp's second reverse pass sums the tangents
    return record(
        _ALL_SUM_FORWARD, _allreduce(group, g._data, _mpi().SUM, "all_sum"), (g,), {"group": group}
    )


# Primitives of the engine built like the core's (``defprim``'s Primitive) but kept out of
# ``chainrule.core.ops.PRIMITIVES``: that registry is the core table, every entry of which
# tests/core checks by single-process finite differences, which cannot reach a collective.
# These rules are checked in tests/distributed (a simulated group and real MPI runs).
_ALL_SUM = Primitive("all_sum", (_pass_through,))
# Recorded instead under ``jvp`` (whose tangents come from two reverse passes): the
# self-adjoint rule, so the tangent of the sum is the sum of the tangents (MLX's
# AllReduce::jvp).
_ALL_SUM_FORWARD = Primitive("all_sum", (_all_sum_transpose,))
_ALL_MAX = Primitive("all_max", (_pass_through,))
_ALL_MIN = Primitive("all_min", (_pass_through,))


def _under_jvp() -> bool:
    return bool(FORWARD.stack) and FORWARD.stack[-1] is not None


def all_sum(x: Any, *, group: Group | None = None, stream: Any = None) -> array:
    """The element-wise sum of ``x`` over every process of the group (MLX's
    ``mx.distributed.all_sum``).

    Differentiable with MLX's rules: the VJP passes the cotangent through unchanged and the
    JVP is the ``all_sum`` of the tangent.

    Args:
        x: The local array (the same shape and dtype on every process).
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The sum, on every process.
    """
    x = _as_array(x, "all_sum")
    g = _world_or(group)
    if g._size == 1:
        return x
    prim = _ALL_SUM_FORWARD if _under_jvp() else _ALL_SUM
    return record(prim, _allreduce(g, x._data, _mpi().SUM, "all_sum"), (x,), {"group": g})


def _reduce_extreme(x: Any, who: str, group: Group | None, largest: bool) -> array:
    x = _as_array(x, who)
    g = _world_or(group)
    if g._size == 1:
        return x
    data = x._data
    if data.dtype.kind != "c":
        out = _allreduce(g, data, _mpi().MAX if largest else _mpi().MIN, who)
    else:
        # MPI has no order for complex numbers (nor bfloat16 buffers): gather every
        # process's array and reduce with chainrule's own max/min, as x.max(0) orders them.
        from chainrule.core import max as _max
        from chainrule.core import min as _min

        stacked = all_gather(from_value(data[None]), group=g)
        out = (_max if largest else _min)(stacked, axis=0)._data
    prim = _ALL_MAX if largest else _ALL_MIN
    return record(prim, out, (x,), {"group": g})


def all_max(x: Any, *, group: Group | None = None, stream: Any = None) -> array:
    """The element-wise maximum of ``x`` over the group (MLX's ``all_max``).

    Its VJP passes the cotangent through unchanged, as MLX's all-reduce does.

    Args:
        x: The local array.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The maximum, on every process.
    """
    return _reduce_extreme(x, "all_max", group, True)


def all_min(x: Any, *, group: Group | None = None, stream: Any = None) -> array:
    """The element-wise minimum of ``x`` over the group (MLX's ``all_min``).

    Its VJP passes the cotangent through unchanged, as MLX's all-reduce does.

    Args:
        x: The local array.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The minimum, on every process.
    """
    return _reduce_extreme(x, "all_min", group, False)


def sum_scatter(x: Any, *, group: Group | None = None, stream: Any = None) -> array:
    """The sum of ``x`` over the group, cut along the first axis: this process gets rows
    ``rank * n // size`` to ``(rank + 1) * n // size`` (MLX's ``mx.distributed.sum_scatter``,
    one ``MPI_Reduce_scatter_block``). Not differentiable.

    Args:
        x: The local array; its first axis must divide by the group's size.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        An array of shape ``(x.shape[0] // size, *x.shape[1:])``.

    Raises:
        ValueError: For a 0-d ``x`` or a first axis that the group's size does not divide.
    """
    x = _as_array(x, "sum_scatter")
    g = _world_or(group)
    data = x._data
    if data.ndim == 0 or data.shape[0] % g._size:
        shape = tuple(data.shape)
        raise ValueError(
            f"sum_scatter: the first axis of x must divide by the group's size {g._size}, "
            f"got shape {shape}"
        )
    if g._size == 1:
        return x
    buf = _wire(data, copy=True)
    out = np.empty((data.shape[0] // g._size,) + data.shape[1:], dtype=buf.dtype)
    t0 = _clock()
    with waiting("sum_scatter", g):
        g.comm.Reduce_scatter_block(buf, out, op=_mpi().SUM)
    STATS.seconds += _clock() - t0
    STATS.calls += 1
    STATS.bytes += buf.nbytes
    return from_value(_unwire(out, data.dtype, data))


# ---------------------------------------------------------------------------- all_gather


def _all_gather_vjp(g: array, ans: array, x: array, group: Group, start: int, stop: int):
    return _all_gather_adjoint(g, group, start, stop, x.shape)


def _all_gather_adjoint_vjp(
    g: array, ans: array, x: array, group: Group, start: int, stop: int, shape: tuple
) -> array:
    return all_gather(g, group=group)


_ALL_GATHER = Primitive("all_gather", (_all_gather_vjp,))
_ALL_GATHER_ADJOINT = Primitive("all_gather_adjoint", (_all_gather_adjoint_vjp,))


def _all_gather_adjoint(g: array, group: Group, start: int, stop: int, shape: tuple) -> array:
    # This rank's rows of the gathered cotangent; its own VJP gathers (MLX's JVP rule).
    out = g._data[start:stop].reshape(shape)
    params = {"group": group, "start": start, "stop": stop, "shape": shape}
    return record(_ALL_GATHER_ADJOINT, out, (g,), params)


def all_gather(x: Any, *, group: Group | None = None, stream: Any = None) -> array:
    """Every process's ``x`` concatenated along the first axis, in rank order (MLX's
    ``mx.distributed.all_gather``; a 0-d ``x`` counts as one row).

    The first axis may differ between processes; the other axes and the dtype may not.
    Differentiable: the VJP keeps this process's rows of the cotangent.

    Args:
        x: The local array.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The concatenation, on every process.

    Raises:
        ValueError: If the processes' trailing shapes or dtypes differ (on every process).
    """
    x = _as_array(x, "all_gather")
    g = _world_or(group)
    if g._size == 1:
        return x
    data = x._data.reshape(1) if x._data.ndim == 0 else x._data
    buf = _wire(data)
    comm = g.comm
    t0 = _clock()
    with waiting("all_gather", g):
        metas = comm.allgather((buf.shape, buf.dtype.str))
    shapes = [tuple(s) for s, _ in metas]
    if len({s[1:] for s in shapes}) > 1 or len({d for _, d in metas}) > 1:
        listing = ", ".join(f"rank {r}: {s} {np.dtype(d).name}" for r, (s, d) in enumerate(metas))
        raise ValueError(
            f"all_gather: every process must give the same trailing shape and dtype; got {listing}"
        )
    rows = [s[0] for s in shapes]
    out = np.empty((sum(rows),) + buf.shape[1:], dtype=buf.dtype)
    with waiting("all_gather", g):
        if len(set(rows)) == 1:
            comm.Allgather(buf, out)
        else:
            per_row = int(np.prod(buf.shape[1:], dtype=np.int64))
            counts = [r * per_row for r in rows]
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
            comm.Allgatherv(buf, [out, counts, displs, _mpi_type(buf.dtype)])
    STATS.seconds += _clock() - t0
    STATS.calls += 1
    STATS.bytes += buf.nbytes
    out = _unwire(out, data.dtype, data)
    start = sum(rows[: g._rank])
    params = {"group": g, "start": start, "stop": start + rows[g._rank]}
    return record(_ALL_GATHER, out, (x,), params)


def _mpi_type(dtype: np.dtype) -> Any:
    from mpi4py.util.dtlib import from_numpy_dtype

    return from_numpy_dtype(dtype)


# ------------------------------------------------------------------------------ broadcast


def broadcast(tree: Any, root: int = 0, *, group: Group | None = None) -> Any:
    """Rank ``root``'s values of ``tree`` on every process (not an MLX operation).

    Array leaves (chainrule or NumPy) travel in one ``MPI_Bcast`` per dtype; other leaves
    (numbers, strings, ...) are pickled. The other processes need the same tree structure,
    not the same leaves: each leaf is replaced by the root's (an array of the root's shape,
    dtype and type), so a placeholder such as ``None`` will do. Nothing is modified in place
    (see :func:`broadcast_parameters` for a model).

    Args:
        tree: An array, or a tree (dicts, lists, tuples) of arrays and other values.
        root: The rank whose values are sent.
        group: The group (default: :func:`init`'s).

    Returns:
        A tree of the same structure holding the root's values (``tree`` itself in a group
        of one process and on the root).

    Raises:
        ValueError: For a root outside the group, or when this process's tree has other
            paths than the root's.
    """
    g = _world_or(group)
    if not isinstance(root, (int, np.integer)) or not 0 <= root < g._size:
        raise ValueError(f"broadcast: root must be a rank in [0, {g._size}), got {root!r}")
    if g._size == 1:
        return tree
    comm = g.comm
    flat = tree_flatten(tree)
    keys = [k for k, _ in flat]
    is_root = g._rank == root
    if is_root:
        meta = []
        for _, v in flat:
            if type(v) is array:
                meta.append(("a", v._data.shape, v._data.dtype.str))
            elif isinstance(v, np.ndarray) or backend.is_gpu(v):
                meta.append(("n", v.shape, v.dtype.str))
            else:
                meta.append(("o", v, None))
        message: Any = (keys, meta)
    else:
        message = None
    t0 = _clock()
    with waiting("broadcast", g):
        root_keys, meta = comm.bcast(message, root=root)
    if root_keys != keys:
        mine, theirs = set(keys), set(root_keys)
        raise ValueError(
            f"broadcast: rank {g._rank}'s tree differs from rank {root}'s: missing "
            f"{sorted(theirs - mine)[:5]}, extra {sorted(mine - theirs)[:5]}"
        )
    # One buffer per dtype, in order of first appearance.
    by_dtype: dict[str, list[int]] = {}
    for i, (kind, _, dt) in enumerate(meta):
        if kind != "o":
            by_dtype.setdefault(dt, []).append(i)
    received: dict[int, np.ndarray] = {}
    for dt, idx in by_dtype.items():
        sizes = [int(np.prod(meta[i][1], dtype=np.int64)) for i in idx]
        buf = np.empty(sum(sizes), dtype=np.dtype(dt))
        if is_root:
            o = 0
            for i, n in zip(idx, sizes):
                v = flat[i][1]
                buf[o : o + n] = backend.to_host(v._data if type(v) is array else v).reshape(-1)
                o += n
        wire = _wire(buf)
        with waiting("broadcast", g):
            comm.Bcast(wire, root=root)
        STATS.bytes += wire.nbytes
        if not is_root:
            buf = _unwire(wire, buf.dtype)
            o = 0
            for i, n in zip(idx, sizes):
                received[i] = buf[o : o + n].reshape(meta[i][1])
                o += n
    STATS.seconds += _clock() - t0
    STATS.calls += 1 + len(by_dtype)
    if is_root:
        return tree
    values = iter(range(len(flat)))

    def leaf(v: Any) -> Any:
        i = next(values)
        kind, value, _ = meta[i]
        if kind == "o":
            return value
        got = received[i]
        if kind == "n":  # a backend value: on the local leaf's device
            return backend.same_device(got, v) if backend.is_gpu(v) else got
        mine = v._data if type(v) is array else None  # the local leaf's device, else the default
        return from_value(
            backend.on_default(got) if mine is None else backend.same_device(got, mine)
        )

    return tree_map(leaf, tree)


# -------------------------------------------------------------------- barrier, send, recv


def barrier(group: Group | None = None) -> None:
    """Wait until every process of the group has reached this call.

    Args:
        group: The group (default: :func:`init`'s).
    """
    g = _world_or(group)
    if g._size > 1:
        t0 = _clock()
        with waiting("barrier", g):
            g.comm.Barrier()
        STATS.seconds += _clock() - t0
        STATS.calls += 1


def _peer(rank: Any, g: Group, who: str, arg: str) -> int:
    if g._size == 1:
        raise ValueError(f"{who}: needs a group of more than one process (this one has 1)")
    if not isinstance(rank, (int, np.integer)) or not 0 <= rank < g._size or rank == g._rank:
        raise ValueError(
            f"{who}: {arg} must be another rank in [0, {g._size}) (this is rank {g._rank}), "
            f"got {rank!r}"
        )
    return int(rank)


def send(x: Any, dst: int, *, group: Group | None = None, stream: Any = None) -> array:
    """Send ``x`` to rank ``dst``, which must call :func:`recv` or :func:`recv_like` (MLX).

    Args:
        x: The array.
        dst: The receiving rank.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        ``x``.
    """
    x = _as_array(x, "send")
    g = _world_or(group)
    dst = _peer(dst, g, "send", "dst")
    buf = _wire(x._data)
    t0 = _clock()
    with waiting("send", g, dst):
        g.comm.Send(buf, dest=dst, tag=0)
    STATS.seconds += _clock() - t0
    STATS.calls += 1
    STATS.bytes += buf.nbytes
    return x


def recv(
    shape: Any, dtype: Any, src: int, *, group: Group | None = None, stream: Any = None
) -> array:
    """Receive an array of ``shape`` and ``dtype`` sent by rank ``src`` with :func:`send`.

    Args:
        shape: The array's shape.
        dtype: Its dtype (``mx.float32``, ...).
        src: The sending rank.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The received array.
    """
    from chainrule.core import zeros

    g = _world_or(group)
    src = _peer(src, g, "recv", "src")
    like = zeros(tuple(shape), dtype=dtype)._data
    buf = _wire(np.empty(like.shape, like.dtype))
    t0 = _clock()
    with waiting("recv", g, src):
        g.comm.Recv(buf, source=src, tag=0)
    STATS.seconds += _clock() - t0
    STATS.calls += 1
    return from_value(_unwire(buf, like.dtype, like))


def recv_like(x: Any, src: int, *, group: Group | None = None, stream: Any = None) -> array:
    """Receive an array shaped and typed like ``x`` from rank ``src`` (MLX's ``recv_like``).

    Args:
        x: An array of the expected shape and dtype.
        src: The sending rank.
        group: The group (default: :func:`init`'s).
        stream: Accepted for MLX code; ignored.

    Returns:
        The received array.
    """
    x = _as_array(x, "recv_like")
    return recv(x.shape, x.dtype, src, group=group)
