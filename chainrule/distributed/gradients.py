"""Data parallelism's two moves: average the gradients, and start from the same parameters.

Gradients travel in buckets: the leaves are copied, per dtype, into flat buffers of about
``all_reduce_size`` bytes and each buffer is summed with one ``MPI_Allreduce``, so a model
of many small parameters costs a few collectives per step, not one per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import from_value
from chainrule.utils import tree_flatten, tree_map

from .exits import waiting
from .group import STATS, Group, _clock, _world_or
from .ops import _mpi, _unwire, broadcast

__all__ = [
    "average_gradients",
    "average_parameter_grads",
    "broadcast_parameters",
    "clip_grad_norm_sharded",
]

DEFAULT_BUCKET_BYTES = 4 << 20


def _plan(
    specs: Sequence[tuple[tuple[int, ...], np.dtype]], limit: int
) -> list[tuple[np.dtype, list[int]]]:
    """Bucket the leaves: per dtype (first-seen order), in order, a bucket closing once it
    holds ``limit`` bytes or more (MLX's rule); ``limit <= 0`` gives one bucket per leaf."""
    per_dtype: dict[np.dtype, list[int]] = {}
    for i, (_, dt) in enumerate(specs):
        per_dtype.setdefault(dt, []).append(i)
    plan = []
    for dt, idx in per_dtype.items():
        itemsize = _wire_dtype(dt).itemsize
        current: list[int] = []
        nbytes = 0
        for i in idx:
            current.append(i)
            nbytes += int(np.prod(specs[i][0], dtype=np.int64)) * itemsize
            if nbytes >= limit:
                plan.append((dt, current))
                current, nbytes = [], 0
        if current:
            plan.append((dt, current))
    return plan


def _wire_dtype(dt: np.dtype) -> np.dtype:
    if dt == np.float16 or dt.kind == "V":  # half floats and bfloat16 travel as float32
        return np.dtype(np.float32)
    if dt == np.bool_:
        return np.dtype(np.int32)
    return np.dtype(dt)


class BucketReducer:
    """Sums a fixed list of arrays over a group, a bucket per ``MPI_Allreduce``.

    Args:
        group: The group.
        specs: ``(shape, dtype)`` of every array, in order.
        all_reduce_size: Bucket size in bytes (``<= 0``: one collective per array).
        communication_type: Cast floating buffers to this dtype on the wire (e.g. float16
            to halve the bytes); the results keep each array's dtype.
    """

    def __init__(
        self,
        group: Group,
        specs: Sequence[tuple[tuple[int, ...], Any]],
        all_reduce_size: int = DEFAULT_BUCKET_BYTES,
        communication_type: Any = None,
    ) -> None:
        self.group = group
        self.specs = [(tuple(s), np.dtype(d)) for s, d in specs]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s, _ in self.specs]
        self.plan = _plan(self.specs, int(all_reduce_size))
        self.wire = None if communication_type is None else _numpy_dtype(communication_type)

    @property
    def n_buckets(self) -> int:
        """Collectives per call: one per bucket."""
        return len(self.plan)

    def __call__(
        self,
        datas: Sequence[np.ndarray | None],
        scale: float = 1.0,
        factor: float | Callable[[np.ndarray], float] | None = None,
        extra: np.ndarray | None = None,
        like: Sequence[Any] | None = None,
    ) -> tuple[list[Any], np.ndarray]:
        """Sum ``scale * datas[i]`` over the group, then multiply the sums by ``factor``.

        Args:
            datas: One array per spec (host or GPU data), or ``None`` for zeros.
            scale: Applied to the local arrays while they are packed (no extra pass).
            factor: Applied to the sums, in place: a number, a function of the summed
                ``extra`` returning one, or ``None`` to keep the sums.
            extra: A vector of floats summed along (not scaled or multiplied): it rides in
                the first floating bucket, so it costs no collective of its own.
            like: One backend array per spec (the parameters' data) whose device each sum
                takes; by default the device of ``datas[i]`` (the host for a ``None``).

        Returns:
            The reduced arrays (fresh, never shared with the caller) and the summed ``extra``
            (float64; empty when not given).
        """
        comm, in_place, sum_op = self.group.comm, _mpi().IN_PLACE, _mpi().SUM
        n_extra = 0 if extra is None else len(extra)
        extra_out = None
        buffers = []
        t0 = _clock()
        for dt, idx in self.plan:
            wdt = self.wire if self.wire is not None and dt.kind == "f" else _wire_dtype(dt)
            rides = n_extra > 0 and extra_out is None and wdt.kind == "f"
            total = sum(self.sizes[i] for i in idx)
            buf = np.empty(total + (n_extra if rides else 0), dtype=wdt)
            o = 0
            for i in idx:
                n = self.sizes[i]
                d = datas[i]
                part = buf[o : o + n]
                if d is None:
                    part.fill(0)
                elif scale == 1.0:  # GPU data copied to the host: messages travel through it
                    part[...] = backend.to_host(d).reshape(-1)
                else:
                    np.multiply(backend.to_host(d).reshape(-1), scale, out=part, casting="unsafe")
                o += n
            if rides:
                buf[total:] = extra
            with waiting("gradient averaging", self.group):
                comm.Allreduce(in_place, buf, op=sum_op)
            STATS.calls += 1
            STATS.bytes += buf.nbytes
            if rides:
                extra_out = buf[total:].astype(np.float64)
                buf = buf[:total]
            buffers.append(buf)
        if extra_out is None:
            extra_out = np.array(extra if n_extra else [], dtype=np.float64)
            if n_extra:
                with waiting("gradient averaging", self.group):
                    comm.Allreduce(in_place, extra_out, op=sum_op)
                STATS.calls += 1
                STATS.bytes += extra_out.nbytes
        STATS.seconds += _clock() - t0
        if callable(factor):
            factor = factor(extra_out)
        out: list[Any] = [None] * len(self.specs)
        for (dt, idx), buf in zip(self.plan, buffers):
            if factor is not None and factor != 1.0:
                buf *= factor
            o = 0
            for i in idx:
                n = self.sizes[i]
                r = _unwire(buf[o : o + n].reshape(self.specs[i][0]), dt)
                d = datas[i] if like is None else like[i]  # back on the local device
                out[i] = r if d is None else backend.same_device(r, d)
                o += n
        return out, extra_out


def _numpy_dtype(dtype: Any) -> np.dtype:
    # A chainrule dtype (mx.float16) carries its NumPy dtype as .np; NumPy's are taken as is.
    return np.dtype(getattr(dtype, "np", dtype))


def _leaf_data(v: Any) -> np.ndarray | None:
    if type(v) is array:
        return v._data
    if isinstance(v, np.ndarray):
        return v
    return None


def average_gradients(
    gradients: Any,
    group: Group | None = None,
    all_reduce_size: int = DEFAULT_BUCKET_BYTES,
    communication_type: Any = None,
    communication_stream: Any = None,
    *,
    bucket_bytes: int | None = None,
) -> Any:
    """Average a tree of gradients over the processes of a group (MLX's
    ``nn.average_gradients``).

    The leaves are packed per dtype, in order, into flat buckets that close once they hold
    ``all_reduce_size`` bytes or more (MLX's rule); each bucket is summed with one call of
    ``chainrule.distributed.all_sum`` (looked up when called, so a replaced ``all_sum`` is
    used, as MLX's tests do), divided by the group's size, and cut back into the leaves' shapes.
    MLX sends trees of mixed dtypes one leaf at a time; here each dtype has its own buckets.
    Non-array leaves (``None``) are kept as they are.

    Args:
        gradients: A tree of arrays with the same structure, shapes and dtypes on every
            process (e.g. the grads of ``nn.value_and_grad``).
        group: The group (default: :func:`init`'s).
        all_reduce_size: Bucket size in bytes; ``<= 0`` sends one collective per array.
            4 MiB by default (MLX's is 32 MiB; smaller buckets suit CPU training).
        communication_type: Send floating buffers in this dtype (e.g. ``mx.float16``); the
            results keep each leaf's dtype.
        communication_stream: Passed to ``all_sum`` as its ``stream`` (ignored there).
        bucket_bytes: Another name for ``all_reduce_size``.

    Returns:
        A tree of the same structure holding the averages (``gradients`` itself in a group of
        one process).
    """
    import chainrule.distributed as package

    g = _world_or(group)
    n = g._size
    if n == 1:
        return gradients
    if bucket_bytes is not None:
        all_reduce_size = bucket_bytes
    datas = [_leaf_data(v) for _, v in tree_flatten(gradients)]
    arrays = [d for d in datas if d is not None]
    if not arrays:
        return gradients
    wire = None if communication_type is None else _numpy_dtype(communication_type)
    reduced: list[Any] = [None] * len(arrays)
    for dt, idx in _plan([(d.shape, d.dtype) for d in arrays], int(all_reduce_size)):
        flat = np.concatenate([arrays[i].reshape(-1) for i in idx])
        if wire is not None and dt.kind in "fV":
            flat = flat.astype(wire)
        total = package.all_sum(from_value(flat), group=g, stream=communication_stream) / n
        summed = total._data
        o = 0
        for i in idx:
            size = arrays[i].size
            part = summed[o : o + size].reshape(arrays[i].shape)
            reduced[i] = part.astype(dt) if wire is not None and dt.kind in "fV" else part
            o += size
    it = iter(reduced)

    def leaf(v: Any) -> Any:
        if type(v) is array:
            return from_value(next(it))
        if isinstance(v, np.ndarray):
            return next(it)
        return v

    return tree_map(leaf, gradients)


def clip_grad_norm_sharded(
    gradients: Any, max_norm: float, group: Group | None = None
) -> tuple[Any, array]:
    """Clip gradients sharded over a group by their global norm (MLX's
    ``nn.utils.clip_grad_norm_sharded``).

    Each process holds a shard of the gradients; the squared norms of the shards are summed
    with :func:`all_sum`, and every shard is scaled by ``min(max_norm / (norm + 1e-6), 1)``.

    Args:
        gradients: A tree of this process's gradient arrays.
        max_norm: The largest global norm allowed.
        group: The group the gradients are sharded over (default: :func:`init`'s).

    Returns:
        ``(clipped, norm)``: the scaled tree and the global norm (an array).
    """
    import chainrule.core as mx
    from chainrule.utils import tree_reduce

    from .ops import all_sum

    local = tree_reduce(lambda acc, g: acc + g.square().sum(), gradients, 0.0)
    norm = mx.sqrt(all_sum(local, group=group))
    normalizer = mx.minimum(max_norm / (norm + 1e-6), 1.0)
    return tree_map(lambda g: g * normalizer, gradients), norm


def _unique(params: Iterable[Any]) -> list[array]:
    seen: set[int] = set()
    out = []
    for p in params:
        if type(p) is array and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def average_parameter_grads(
    parameters: Iterable[Any],
    group: Group | None = None,
    all_reduce_size: int = DEFAULT_BUCKET_BYTES,
) -> None:
    """PyTorch style: replace every parameter's ``.grad`` by its average over the group.

    Call it between ``loss.backward()`` and ``optimizer.step()``. A parameter whose ``.grad``
    is ``None`` on some processes counts as zero there; it stays ``None`` only if it is
    ``None`` everywhere (so ``step()`` skips it everywhere alike).

    Args:
        parameters: ``model.parameters()`` or any iterable of parameter arrays.
        group: The group (default: :func:`init`'s).
        all_reduce_size: Bucket size in bytes.
    """
    g = _world_or(group)
    if g._size == 1:
        return
    params = [p for p in _unique(parameters) if p.requires_grad]
    if not params:
        return
    reducer = BucketReducer(g, [(p.shape, p._data.dtype) for p in params], all_reduce_size)
    datas = [None if p._grad is None else p._grad._data for p in params]
    present = np.array([d is not None for d in datas], dtype=np.float64)
    like = [p._data for p in params]
    reduced, counts = reducer(datas, factor=1.0 / g._size, extra=present, like=like)
    for p, r, c in zip(params, reduced, counts):
        p._grad = from_value(r) if c > 0 else None


def broadcast_parameters(model: Any, root: int = 0, group: Group | None = None) -> None:
    """Give every process rank ``root``'s parameters and buffers, in place.

    The values are written into the arrays the model holds (``_set_value``), so optimizers
    bound to them (PyTorch style) stay bound. Call it once before training.

    Args:
        model: A ``chainrule.nn.Module``, or an iterable of arrays.
        root: The rank whose values are kept.
        group: The group (default: :func:`init`'s).
    """
    g = _world_or(group)
    if g._size == 1:
        return
    if hasattr(model, "parameters") and callable(model.parameters):
        from chainrule.checkpoint import named_arrays

        handles = [a for _, a in named_arrays(model) if type(a) is array]
    else:
        handles = _unique(model)
    values = broadcast([h._data for h in handles], root=root, group=g)
    if g._rank != root:
        for h, v in zip(handles, values):
            h._set_value(v)
