"""What ``chainrule.train.fit`` does differently when several processes train together.

Batches. A global batch is ``batch_size`` examples, the same sequence of global batches as
one process would train on: rank 0 draws the epoch's order and sends it to the others, and
each global batch is split into ``size`` contiguous chunks (``numpy.array_split``: the
first ``batch_size % size`` ranks take one example more), rank ``r`` fetching only chunk
``r``. Data that is already split per rank (a ``DataLoader`` with a ``DistributedSampler``,
or any other iterable of batches) is used as each rank gives it.

Gradients. Each rank's gradient is the mean over its chunk; the step's gradient is the mean
over the global batch, ``sum_r n_r * g_r / sum_r n_r``, so chunks of unequal size (or empty
ones) give exactly one process's update. The loss and the counts ride in the same
``MPI_Allreduce`` as the gradients: one collective per gradient bucket per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import numpy as np

from chainrule.core.array import array
from chainrule.core.extend import from_value
from chainrule.utils import tree_flatten, tree_map

from .exits import waiting
from .gradients import BucketReducer, _unique, broadcast_parameters
from .group import STATS, Group, _clock, report_and_abort
from .ops import _mpi, broadcast
from .sampler import DistributedSampler

__all__ = ["DataParallel"]

_END = object()


def _n(x: Any) -> int:
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape else 1


def _chunk(n: int, size: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s part of ``n`` items split into ``size`` contiguous chunks."""
    q, r = divmod(n, size)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (rank < r)


class DataParallel:
    """Data parallelism for ``fit`` on a group of more than one process.

    Args:
        group: The group (size > 1).
        model: The model (its parameters are broadcast from rank 0 by :meth:`start`).
    """

    def __init__(self, group: Group, model: Any) -> None:
        self.group = group
        self.rank = group.rank()
        self.size = group.size()
        self.comm = group.comm
        self.model = model

    # -- start and failure ---------------------------------------------------------------------
    def start(self) -> None:
        """Give every rank rank 0's parameters and buffers."""
        broadcast_parameters(self.model, 0, self.group)

    def fail(self, where: str = "fit") -> NoReturn:
        """Print the exception being handled and stop every rank (``MPI_Abort``)."""
        report_and_abort(where, self.group)

    # -- batches -------------------------------------------------------------------------------
    def _splittable(self, loader: Any) -> bool:
        from chainrule.data import DataLoader

        return (
            isinstance(loader, DataLoader)
            and loader.batch_size is not None
            and not isinstance(loader.sampler, DistributedSampler)
        )

    def _global_batches(self, loader: Any) -> list[np.ndarray]:
        """The epoch's global batches of indices, the same on every rank."""
        from chainrule.data import Sampler, SequentialSampler

        sampler = loader.sampler
        if type(sampler) is SequentialSampler:
            order = sampler._order()
        else:
            order = None
            if self.rank == 0:
                if isinstance(sampler, Sampler):
                    order = sampler._order()
                else:
                    order = np.fromiter((int(i) for i in sampler), dtype=np.int64)
            order = broadcast(order, 0, group=self.group)
        n, b = len(order), loader.batch_size
        stop = n - n % b if loader.drop_last else n
        return [order[s : s + b] for s in range(0, stop, b)]

    def train_batches(self, loader: Iterable) -> Iterator[tuple[Any, int]]:
        """This rank's part of each step's batch: ``(batch or None, size)``.

        ``size`` is the global batch's size when known, else the local one. Every rank yields
        the same number of items (``None`` where it has nothing for a step).
        """
        if self._splittable(loader):
            fetch = loader._batch_fetcher()
            for idx in self._global_batches(loader):
                lo, hi = _chunk(len(idx), self.size, self.rank)
                yield (fetch(idx[lo:hi]) if hi > lo else None), len(idx)
            return
        # Batches already split per rank: continue while any rank has one (one small
        # collective per step), so uneven shares never leave a rank waiting alone.
        it = iter(loader)
        flag = np.zeros(1, dtype=np.int64)
        in_place, sum_op = _mpi().IN_PLACE, _mpi().SUM
        while True:
            batch = next(it, _END)
            flag[0] = batch is not _END
            t0 = _clock()
            with waiting("fit (counting the ranks' batches)", self.group):
                self.comm.Allreduce(in_place, flag, op=sum_op)
            STATS.seconds += _clock() - t0
            STATS.calls += 1
            if flag[0] == 0:
                return
            if batch is _END:
                yield None, 0
            else:
                first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
                yield batch, _n(first)

    def eval_batches(self, loader: Iterable) -> Iterator[Any]:
        """This rank's share of evaluation batches (global batches dealt round-robin)."""
        if self._splittable(loader):
            fetch = loader._batch_fetcher()
            batches = self._global_batches(loader)
            for k in range(self.rank, len(batches), self.size):
                yield fetch(batches[k])
            return
        yield from loader

    # -- steps ---------------------------------------------------------------------------------
    def step_fn(
        self,
        optimizer: Any,
        loss_fn: Callable[..., Any],
        scalar_loss: Callable[[Any], Any],
        torch_style: bool,
    ) -> Callable[[Any, Any], tuple[float, Any, int]]:
        """One data-parallel optimisation step ``step(x, y) -> (loss, outputs, n)``.

        ``x`` is ``None`` on a rank with no examples for this step. ``loss`` is the mean over
        the global batch, ``n`` its size, ``outputs`` this rank's outputs (or ``None``).
        """
        model = self.model
        if torch_style:
            params = _unique(p for g in optimizer.param_groups for p in g["params"])
            params = [p for p in params if p.requires_grad]
            reduce = BucketReducer(self.group, [(p.shape, p._data.dtype) for p in params])

            def torch_step(x: Any, y: Any) -> tuple[float, Any, int]:
                optimizer.zero_grad()
                out, value, n = None, 0.0, 0
                if x is not None:
                    out = model(x)
                    loss = scalar_loss(loss_fn(out, y))
                    loss.backward()
                    value, n = float(loss.item()), _n(x)
                datas = [None if p._grad is None else p._grad._data for p in params]
                extra = np.array([value * n, n] + [d is not None for d in datas], np.float64)
                like = [p._data for p in params]
                grads, sums = reduce(datas, scale=n, factor=_mean_of, extra=extra, like=like)
                for p, gr, present in zip(params, grads, sums[2:]):
                    p._grad = from_value(gr) if present > 0 else None
                optimizer.step()
                return float(sums[0] / sums[1]), out, int(round(sums[1]))

            return torch_step

        import chainrule.nn as nn

        template = model.trainable_parameters()
        leaves = [a for _, a in tree_flatten(template)]
        reduce = BucketReducer(self.group, [(a.shape, a._data.dtype) for a in leaves])
        box: list[Any] = [None]

        def loss_of(m: Any, x: Any, y: Any) -> Any:
            out = m(x)
            box[0] = out
            return scalar_loss(loss_fn(out, y))

        value_and_grad = nn.value_and_grad(model, loss_of)

        def mlx_step(x: Any, y: Any) -> tuple[float, Any, int]:
            out, value, n = None, 0.0, 0
            datas: list[Any] = [None] * len(leaves)
            if x is not None:
                loss, grads = value_and_grad(model, x, y)
                out, box[0] = box[0], None
                value, n = float(loss.item()), _n(x)
                flat = tree_flatten(grads)
                if len(flat) != len(leaves):
                    raise ValueError(
                        f"fit: the model has {len(leaves)} trainable arrays but the gradient "
                        f"tree has {len(flat)}; do not freeze or add parameters during fit"
                    )
                datas = [g._data if type(g) is array else g for _, g in flat]
            extra = np.array([value * n, n], np.float64)
            like = [a._data for a in leaves]
            reduced, sums = reduce(datas, scale=n, factor=_mean_of, extra=extra, like=like)
            it = iter(reduced)
            optimizer.update(model, tree_map(lambda _: from_value(next(it)), template))
            return float(sums[0] / sums[1]), out, int(round(sums[1]))

        return mlx_step

    # -- reductions ----------------------------------------------------------------------------
    def sum(self, values: Iterable[float]) -> np.ndarray:
        """Element-wise sums over the ranks (float64)."""
        buf = np.array(list(values), dtype=np.float64)
        t0 = _clock()
        with waiting("fit (summing figures)", self.group):
            self.comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
        STATS.seconds += _clock() - t0
        STATS.calls += 1
        return buf

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is true on some rank."""
        return bool(self.sum([float(bool(flag))])[0] > 0)

    def gather(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Every rank's arrays, concatenated per rank, in rank order (for epoch metrics)."""
        local = None
        if parts:
            local = np.concatenate(parts) if len(parts) > 1 else parts[0]
        t0 = _clock()
        with waiting("fit (gathering outputs)", self.group):
            gathered = self.comm.allgather(local)
        STATS.seconds += _clock() - t0
        STATS.calls += 1
        return [p for p in gathered if p is not None]

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (running statistics), which each rank updated on
        its own data."""
        handles = _buffers(self.model)
        if handles:
            broadcast_parameters(handles, 0, self.group)


def _mean_of(sums: np.ndarray) -> float:
    """The factor turning ``sum_r n_r * g_r`` into the mean over the global batch."""
    return 1.0 / sums[1] if sums[1] > 0 else 0.0


def _buffers(model: Any) -> list[array]:
    named = getattr(model, "named_modules", None)
    if named is None:
        return []
    out = []
    for _, module in named():
        # Sorted: _buffers is a set, whose order varies between processes (string hashing).
        for key in sorted(getattr(module, "_buffers", ())):
            value = module.get(key) if isinstance(module, dict) else None
            if type(value) is array:
                out.append(value)
    return out
