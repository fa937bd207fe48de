"""``DataLoader``: batches of chainrule arrays from a dataset, with PyTorch's arguments.

One epoch's order of indices is fixed in the calling thread when iteration starts (so a seed
fixes it whatever ``num_workers`` is); batches are then fetched either in that thread or, with
``num_workers > 0``, by a pool of background threads that keep up to
``num_workers * prefetch_factor`` batches ready, handed out in order.
"""

from __future__ import annotations

import collections
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.array import _from_value

from .dataset import as_rng, permutation

__all__ = [
    "DataLoader",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "BatchSampler",
    "default_collate",
]


# -- samplers ----------------------------------------------------------------------------------


class Sampler:
    """The base class of index samplers: ``__iter__`` yields dataset indices."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def _order(self) -> np.ndarray:
        """One epoch's indices as an int64 vector (subclasses override for speed)."""
        return np.fromiter((int(i) for i in self), dtype=np.int64)


class SequentialSampler(Sampler):
    """``0, 1, ..., len(data_source) - 1``.

    Args:
        data_source: the dataset whose indices are produced.
    """

    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)

    def _order(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)


class RandomSampler(Sampler):
    """A fresh random permutation of the dataset's indices every epoch.

    Args:
        data_source: the dataset whose indices are shuffled.
        replacement: draw ``num_samples`` indices with replacement instead.
        num_samples: how many indices per epoch (``len(data_source)`` by default).
        generator: the random source (see ``chainrule.data.dataset.as_rng``); the global
            state, which ``mx.random.seed`` resets, when omitted.
    """

    def __init__(
        self,
        data_source: Any,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Any = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        self._rng = as_rng(generator, None, "RandomSampler")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(
                f"RandomSampler: num_samples should be a positive integer, not {num_samples!r}"
            )

    @property
    def num_samples(self) -> int:
        """Indices per epoch."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def _order(self) -> np.ndarray:
        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            if self._rng is None:
                return mx.random.randint(0, n, (k,))._data.astype(np.int64)
            return self._rng.integers(0, n, size=k, dtype=np.int64)
        parts = [permutation(n, self._rng) for _ in range(-(-k // n) if n else 0)]
        return np.concatenate(parts)[:k] if parts else np.zeros(0, np.int64)


class SubsetRandomSampler(Sampler):
    """The given indices, in a new random order every epoch.

    Args:
        indices: the dataset indices to draw from.
        generator: the random source; the global state when omitted.
    """

    def __init__(self, indices: Iterable[int], generator: Any = None) -> None:
        self.indices = np.asarray(list(indices), dtype=np.int64)
        self.generator = generator
        self._rng = as_rng(generator, None, "SubsetRandomSampler")

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self._order().tolist())

    def _order(self) -> np.ndarray:
        return self.indices[permutation(len(self.indices), self._rng)]


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of ``batch_size``.

    Args:
        sampler: yields the indices.
        batch_size: indices per batch.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        _check_batch_size(batch_size, "BatchSampler")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _check_batch_size(batch_size: Any, who: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"{who}: batch_size should be a positive integer, not {batch_size!r}")


# -- collation ---------------------------------------------------------------------------------


def _stack(datas: list, who: str):
    try:
        return np.stack(datas)
    except ValueError:
        shapes = sorted({tuple(d.shape) for d in datas})
        raise ValueError(
            f"{who}: cannot stack samples of different shapes {shapes} into one batch; "
            "make them one shape or give the DataLoader a collate_fn"
        ) from None


def default_collate(batch: list) -> Any:
    """Stack a list of samples into one batch, keeping the samples' structure.

    Arrays (chainrule or NumPy) are stacked along a new first axis; Python ints become an
    int64 array (as in PyTorch), Python floats a float32 array (the framework's default
    float: PyTorch would make float64), bools a bool array; NumPy data follow ``mx.array``
    (float64 becomes float32). Tuples, lists, named tuples and dicts are collated field by
    field; strings are returned as a list.

    Args:
        batch: the samples, all of the same structure.

    Returns:
        The batch, with the structure of one sample.

    Raises:
        ValueError: for samples of different shapes or structures.
        TypeError: for a sample type that cannot be batched.
    """
    if not batch:
        raise ValueError("default_collate: the batch is empty")
    elem = batch[0]
    t = type(elem)
    if t is mx.array:
        if any(b._node is not None for b in batch):
            return mx.stack(batch)
        return _from_value(_stack([b._data for b in batch], "default_collate"))
    if isinstance(elem, (np.ndarray, np.generic)):
        data = _stack([np.asarray(b) for b in batch], "default_collate")
        return _from_value(data.astype(np.float32) if data.dtype == np.float64 else data)
    if isinstance(elem, bool):
        return _from_value(np.asarray(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return _from_value(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _from_value(np.asarray(batch, dtype=np.float32))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return {k: default_collate([d[k] for d in batch]) for k in elem}
    if isinstance(elem, (tuple, list)):
        n = len(elem)
        if any(len(b) != n for b in batch):
            sizes = sorted({len(b) for b in batch})
            raise ValueError(f"default_collate: samples have different numbers of fields {sizes}")
        fields = [default_collate(list(f)) for f in zip(*batch)]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):
            return t(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(
        f"default_collate: samples of type {t.__name__} cannot be batched; give the DataLoader "
        "a collate_fn"
    )


def _convert(sample: Any) -> Any:
    """Without batching (``batch_size=None``): NumPy data become arrays, the rest stays."""
    if isinstance(sample, np.ndarray):
        return mx.array(sample)
    if isinstance(sample, Mapping):
        return {k: _convert(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(_convert(v) for v in sample))
    if isinstance(sample, (tuple, list)):
        return type(sample)(_convert(v) for v in sample)
    return sample


# -- the loader --------------------------------------------------------------------------------


class DataLoader:
    """Iterate over a dataset in batches of chainrule arrays (PyTorch's ``DataLoader``).

    Args:
        dataset: a ``Dataset`` or anything with ``__len__`` and ``__getitem__`` (a list of
            samples, an array whose rows are samples).
        batch_size: samples per batch; ``None`` yields the samples one at a time, unbatched.
        shuffle: a new random order every epoch (from ``generator``/``seed``, or the global
            state that ``mx.random.seed`` and ``chainrule.torch.manual_seed`` reset).
        sampler: yields the indices of one epoch (exclusive with ``shuffle``).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        collate_fn: turns a list of samples into a batch (``default_collate`` by default).
        num_workers: background threads that fetch batches ahead of the training loop;
            batches come out in the same order as with ``num_workers=0``.
        persistent_workers: keep the threads alive between epochs.
        generator: random source for shuffling (a ``numpy.random.Generator``, a
            ``chainrule.torch.Generator`` or an ``mx.random.key``).
        seed: an integer seed for a private shuffling generator (exclusive with ``generator``).
        prefetch_factor: batches fetched ahead per worker (2 by default; needs workers).
        pin_memory: accepted for PyTorch code; there is only host memory.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each new worker thread.

    The fast path: when ``collate_fn`` is not given and the dataset has ``get_batch``
    (``TensorDataset``, a ``Subset`` of one, or a chainrule array), each batch is fetched with
    one fancy index (a slice when the order is sequential) instead of stacking samples.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = False,
        sampler: Iterable[int] | None = None,
        drop_last: bool = False,
        collate_fn: Callable[[list], Any] | None = None,
        num_workers: int = 0,
        persistent_workers: bool = False,
        generator: Any = None,
        seed: int | None = None,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        worker_init_fn: Callable[[int], None] | None = None,
    ) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(
                f"DataLoader: dataset must define __getitem__ and __len__, "
                f"{type(dataset).__name__} does not"
            )
        if batch_size is not None:
            _check_batch_size(batch_size, "DataLoader")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(
                f"DataLoader: num_workers should be an integer >= 0, not {num_workers!r}"
            )
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers=True needs num_workers > 0")
        if prefetch_factor is not None:
            if num_workers == 0:
                raise ValueError(
                    "DataLoader: prefetch_factor applies to workers; give num_workers > 0 "
                    "or leave prefetch_factor=None"
                )
            bad = isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int)
            if bad or prefetch_factor < 1:
                raise ValueError(
                    "DataLoader: prefetch_factor should be an integer >= 1, not "
                    f"{prefetch_factor!r}"
                )
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler is exclusive with shuffle=True; give one of them")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: drop_last=True needs a batch_size")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.persistent_workers = bool(persistent_workers)
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers else prefetch_factor
        self.pin_memory = pin_memory
        self.worker_init_fn = worker_init_fn
        rng = as_rng(generator, seed, "DataLoader")
        self.generator = generator
        if sampler is None:
            sampler = (
                RandomSampler(dataset, generator=rng) if shuffle else SequentialSampler(dataset)
            )
        self.sampler = sampler
        self._executor: ThreadPoolExecutor | None = None

    # -- sizes ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self.sampler)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # -- one epoch -----------------------------------------------------------------------------
    def _batch_fetcher(self) -> Callable[[Any], Any]:
        ds = self.dataset
        if self.batch_size is None:
            collate = self.collate_fn or _convert
            return lambda i: collate(ds[i])
        if self.collate_fn is None or self.collate_fn is default_collate:
            if type(ds) is mx.array:
                return ds.__getitem__
            get_batch = getattr(ds, "get_batch", None)
            if get_batch is not None:
                return get_batch
        collate = self.collate_fn or default_collate

        def fetch(idx):
            rows = range(idx.start, idx.stop) if type(idx) is slice else idx.tolist()
            return collate([ds[i] for i in rows])

        return fetch

    def _batches(self) -> list:
        """This epoch's batches of indices (drawn now, in the calling thread)."""
        sampler = self.sampler
        if self.batch_size is None:
            return list(sampler)
        if type(sampler) is SequentialSampler and sampler.data_source is self.dataset:
            n, b = len(sampler), self.batch_size
            stop = n - n % b if self.drop_last else n
            return [slice(s, min(s + b, n)) for s in range(0, stop, b)]
        order = sampler._order() if isinstance(sampler, Sampler) else None
        if order is None:
            order = np.fromiter((int(i) for i in sampler), dtype=np.int64)
        n, b = len(order), self.batch_size
        stop = n - n % b if self.drop_last else n
        return [order[s : s + b] for s in range(0, stop, b)]

    def __iter__(self) -> Iterator[Any]:
        fetch = self._batch_fetcher()
        batches = self._batches()
        if self.num_workers == 0:
            return map(fetch, batches)
        if self.persistent_workers:
            if self._executor is None:
                self._executor = self._new_executor()
                weakref.finalize(self, self._executor.shutdown, wait=False)
            return _Epoch(self._executor, fetch, batches, self._depth(), own=False)
        return _Epoch(self._new_executor(), fetch, batches, self._depth(), own=True)

    def _depth(self) -> int:
        return self.num_workers * self.prefetch_factor

    def _new_executor(self) -> ThreadPoolExecutor:
        init, ids = self.worker_init_fn, itertools.count()
        return ThreadPoolExecutor(
            max_workers=self.num_workers,
            thread_name_prefix="chainrule-loader",
            initializer=None if init is None else (lambda: init(next(ids))),
        )


class _Epoch:
    """One epoch's batches fetched by a thread pool, handed out in order.

    Several epochs may be live at once (``zip(loader, loader)``, or a loop left with
    ``break``): each keeps its own queue of futures, so sharing a persistent pool is safe. An
    abandoned epoch cancels its queued batches when it is garbage collected.
    """

    def __init__(self, executor, fetch, batches, depth: int, own: bool) -> None:
        self._executor = executor
        self._fetch = fetch
        self._todo = iter(batches)
        self._n = len(batches)
        self._pending: collections.deque = collections.deque()
        self._depth = depth
        self._own = own
        self._lock = threading.Lock()
        self._fill()

    def _fill(self) -> None:
        pending, submit, fetch = self._pending, self._executor.submit, self._fetch
        while len(pending) < self._depth:
            idx = next(self._todo, None)
            if idx is None:
                break
            pending.append(submit(fetch, idx))

    def __iter__(self) -> _Epoch:
        return self

    def __len__(self) -> int:
        return self._n

    def __next__(self) -> Any:
        if not self._pending:
            self.cancel()
            raise StopIteration
        future = self._pending.popleft()
        self._fill()  # keep the workers busy while the caller trains on this batch
        try:
            return future.result()
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Drop the batches not yet handed out; shut the pool down if this epoch owns it."""
        with self._lock:
            for f in self._pending:
                f.cancel()
            self._pending.clear()
            self._todo = iter(())
            if self._own and self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def __del__(self) -> None:
        try:
            self.cancel()
        except Exception:  # interpreter shutdown: nothing left to release
            pass
