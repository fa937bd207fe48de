"""``DataLoader``: batches of chainrule arrays from a dataset, with PyTorch's arguments.

One epoch's order of indices is fixed in the calling thread when iteration starts (so a seed
fixes it whatever ``num_workers`` is); batches are then fetched either in that thread or, with
``num_workers > 0``, by a pool of workers that keep up to ``num_workers * prefetch_factor``
batches ready, handed out in order.

Workers are threads by default: they need no ``if __name__ == "__main__":`` guard, no
picklable dataset and no start method, so a loader works the same in a notebook, a script and
on every OS. Process workers are opt-in (``worker_type="process"``), for datasets whose
``__getitem__`` is slow pure-Python code. A worker's exception is raised in the loop that
iterates the loader, with its traceback (a process worker's as the ``__cause__``) and a note
naming the worker and the batch.

Random numbers in workers: each epoch derives its seeds from the loader's random source
(the global state that ``chainrule.seed`` resets, or the loader's own ``seed=`` /
``generator=``) and the epoch count, and each batch gets a generator seeded from those and its
position. A worker thread's ``mx.random`` draws come from that generator; a worker process
also seeds NumPy's global generator and ``random`` with it. So augmentations are reproducible
whichever worker fetches a batch. (Threads share NumPy's and ``random``'s global generators,
so with thread workers draw augmentations from ``mx.random``.)
"""

from __future__ import annotations

import collections
import itertools
import random as _py_random
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.backend import on_default as _on_default
from chainrule.core.extend import from_value

from .dataset import as_rng, permutation

__all__ = [
    "DataLoader",
    "WorkerInfo",
    "get_worker_info",
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
    if isinstance(elem, mx.array):
        if any(b._node is not None for b in batch):
            out = mx.stack(batch)
        else:
            out = from_value(_stack([b._data for b in batch], "default_collate"))
        if t is not mx.array:
            out.__class__ = t  # a subclass's samples (chainrule.torch's tensors) stay one
        return out
    if isinstance(elem, (np.ndarray, np.generic)):
        data = _stack([np.asarray(b) for b in batch], "default_collate")
        return from_value(
            _on_default(data.astype(np.float32) if data.dtype == np.float64 else data)
        )
    # host data becomes a batch on the default device (mx.set_default_device), copied there once
    if isinstance(elem, bool):
        return from_value(_on_default(np.asarray(batch, dtype=np.bool_)))
    if isinstance(elem, int):
        return from_value(_on_default(np.asarray(batch, dtype=np.int64)))
    if isinstance(elem, float):
        return from_value(_on_default(np.asarray(batch, dtype=np.float32)))
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


# -- workers -----------------------------------------------------------------------------------


class WorkerInfo:
    """What a ``DataLoader`` worker knows about itself (PyTorch's ``get_worker_info()``).

    Attributes:
        id: The worker's number, ``0 .. num_workers - 1``.
        num_workers: How many workers the loader has.
        seed: The worker's seed: the epoch's base seed plus ``id``, so distinct per worker.
        dataset: The loader's dataset (a copy, in a worker process).
        kind: ``"thread"`` or ``"process"``.
    """

    __slots__ = ("id", "num_workers", "seed", "dataset", "kind")

    def __init__(self, id: int, num_workers: int, seed: int, dataset: Any, kind: str) -> None:
        self.id, self.num_workers, self.seed = id, num_workers, seed
        self.dataset, self.kind = dataset, kind

    def __repr__(self) -> str:
        return (
            f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
            f"kind={self.kind!r})"
        )


_WORKER = threading.local()


def get_worker_info() -> WorkerInfo | None:
    """The calling worker's :class:`WorkerInfo`, or ``None`` outside ``DataLoader`` workers."""
    return getattr(_WORKER, "info", None)


def _state_ints(state: Any) -> list[int]:
    """Every integer in a bit generator's state, in order (entropy for seeding)."""
    out: list[int] = []
    stack = [state]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, np.ndarray):
            out.extend(int(x) for x in v.ravel())
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            out.append(int(v) % 2**128)
    return out


def _batch_rng(entropy: list[int], position: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(position,)))


def _base_seed(entropy: list[int]) -> int:
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 2)


def _describe(idx: Any) -> str:
    if type(idx) is slice:
        return f"samples {idx.start}..{idx.stop - 1}"
    if isinstance(idx, np.ndarray):
        items = idx.tolist()
        return f"samples {items[:8]}{' ...' if len(items) > 8 else ''}"
    return f"sample {idx!r}"


def _note(e: BaseException, position: int, idx: Any) -> None:
    info = get_worker_info()
    who = "a DataLoader worker" if info is None else f"DataLoader worker {info.kind} {info.id}"
    if hasattr(e, "add_note"):  # Python 3.11+
        e.add_note(f"(raised in {who} while fetching batch {position}: {_describe(idx)})")


def _thread_init(dataset: Any, n: int, seed: int, ids: Iterator[int], init: Any) -> None:
    wid = next(ids)
    _WORKER.info = WorkerInfo(wid, n, seed + wid, dataset, "thread")
    if init is not None:
        init(wid)


def _thread_task(fetch: Callable[[Any], Any], entropy: list[int], position: int, idx: Any):
    mx.random.use_thread_generator(_batch_rng(entropy, position))
    try:
        return fetch(idx)
    except BaseException as e:
        _note(e, position, idx)
        raise


_PROCESS: dict = {}


def _process_init(
    dataset: Any, batch_size: Any, collate_fn: Any, init: Any, counter: Any, n: int, seed: int
) -> None:
    with counter.get_lock():
        wid = counter.value
        counter.value += 1
    _WORKER.info = WorkerInfo(wid, n, seed + wid, dataset, "process")
    _PROCESS["fetch"] = _make_fetcher(dataset, batch_size, collate_fn)
    _seed_process(np.random.default_rng(seed + wid))
    # One BLAS thread per worker process, as PyTorch's workers (the workers and the main
    # process share the cores); a worker_init_fn may raise it (docs/performance.md).
    mx.set_num_threads(1)
    if init is not None:
        init(wid)


def _seed_process(rng: np.random.Generator) -> None:
    """Seed every global source of a worker process from ``rng``."""
    mx.random.use_thread_generator(rng)
    np.random.seed(rng.integers(0, 2**32, size=4, dtype=np.uint64).astype(np.uint32))
    _py_random.seed(int(rng.integers(0, 2**63)))


def _process_task(entropy: list[int], position: int, idx: Any) -> Any:
    _seed_process(_batch_rng(entropy, position))
    try:
        return _PROCESS["fetch"](idx)
    except BaseException as e:
        _note(e, position, idx)
        raise


def _make_fetcher(ds: Any, batch_size: int | None, collate_fn: Any) -> Callable[[Any], Any]:
    """``fetch(indices) -> batch`` for one dataset (also built inside worker processes)."""
    if batch_size is None:
        collate = collate_fn or _convert
        return lambda i: collate(ds[i])
    if collate_fn is None or collate_fn is default_collate:
        if type(ds) is mx.array:
            return ds.__getitem__
        get_batch = getattr(ds, "get_batch", None)
        if get_batch is not None:
            return get_batch
    collate = collate_fn or default_collate

    def fetch(idx):
        rows = range(idx.start, idx.stop) if type(idx) is slice else idx.tolist()
        return collate([ds[i] for i in rows])

    return fetch


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
        num_workers: background workers that fetch batches ahead of the training loop;
            batches come out in the same order as with ``num_workers=0``.
        persistent_workers: keep the workers alive between epochs.
        generator: random source for shuffling (a ``numpy.random.Generator``, a
            ``chainrule.torch.Generator`` or an ``mx.random.key``).
        seed: an integer seed for a private shuffling generator (exclusive with ``generator``).
        prefetch_factor: batches fetched ahead per worker (2 by default; needs workers).
        pin_memory: accepted for PyTorch code; there is only host memory.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each new worker.
        worker_type: ``"thread"`` (the default: works in notebooks and scripts alike, on every
            OS, with no ``__main__`` guard) or ``"process"`` (opt-in: for slow pure-Python
            ``__getitem__``; the dataset must be picklable unless the start method is fork).
            ``None`` means ``"process"`` when ``multiprocessing_context`` is given, else
            ``"thread"``.
        multiprocessing_context: the start method of process workers (``"spawn"``,
            ``"fork"``, ``"forkserver"`` or a context); Python's default when omitted.

    The fast path: when ``collate_fn`` is not given and the dataset has ``get_batch``
    (``TensorDataset``, a ``Subset`` of one, or a chainrule array), each batch is fetched with
    one fancy index (a slice when the order is sequential) instead of stacking samples.
    """

    _random_sampler: Any = RandomSampler  # (what shuffle=True uses: a subclass may draw its way)

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
        worker_type: str | None = None,
        multiprocessing_context: Any = None,
    ) -> None:
        iterable = getattr(dataset, "_iterable_dataset", False)
        if iterable:
            # A stream (IterableDataset): batched in order, read in the calling thread.
            if shuffle:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle option, but "
                    f"got shuffle={shuffle}"
                )
            if sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified sampler option, but "
                    f"got sampler={sampler}"
                )
            if num_workers:
                raise ValueError(
                    "DataLoader: num_workers > 0 with an IterableDataset is not supported (each "
                    "worker would replay the whole stream); use num_workers=0"
                )
        elif not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
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
        if worker_type is None:
            worker_type = "thread" if multiprocessing_context is None else "process"
        if worker_type not in ("thread", "process"):
            raise ValueError(
                f"DataLoader: worker_type must be 'thread' or 'process', not {worker_type!r}"
            )
        if worker_type == "process" and num_workers == 0:
            raise ValueError(
                "DataLoader: process workers need num_workers > 0 (with num_workers=0 the "
                "batches are fetched in the calling thread)"
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
        self.worker_type = worker_type
        self.multiprocessing_context = multiprocessing_context
        rng = as_rng(generator, seed, "DataLoader")
        self._rng = rng
        self._epochs = 0  # epochs started: part of the state, it varies the workers' seeds
        self.generator = generator
        if sampler is None and not iterable:
            sampler = (
                self._random_sampler(dataset, generator=rng)
                if shuffle
                else SequentialSampler(dataset)
            )
        self.sampler = sampler
        self._executor: Any = None

    # -- state, for exact resumption -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The loader's own random state, for checkpoints (``save_checkpoint(loader=...)``).

        Holds the number of epochs started (it varies the workers' seeds) and the state of a
        private shuffling generator (``seed=``/``generator=``); a loader that shuffles from the
        global state needs nothing more, as checkpoints store that state.
        """
        rng = self._rng
        return {
            "epochs": self._epochs,
            "generator": None if rng is None else rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Args:
            state: The saved state.

        Raises:
            ValueError: If the state is malformed or its generator does not match this loader.
        """
        try:
            epochs, gen = int(state["epochs"]), state["generator"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"DataLoader.load_state_dict: expected {{'epochs', 'generator'}}, got {state!r:.200}"
            ) from None
        if (gen is None) != (self._rng is None):
            have = "its own generator" if self._rng is not None else "the global random state"
            raise ValueError(
                f"DataLoader.load_state_dict: the state was saved from a loader that "
                f"{'shuffles from the global state' if gen is None else 'has its own generator'}"
                f", but this loader uses {have}"
            )
        if gen is not None:
            self._rng.bit_generator.state = gen  # in place: a shared Generator sees it too
        self._epochs = epochs

    # -- sizes ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    # -- one epoch -----------------------------------------------------------------------------
    def _batch_fetcher(self) -> Callable[[Any], Any]:
        return _make_fetcher(self.dataset, self.batch_size, self.collate_fn)

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
        if self.sampler is None:  # an IterableDataset
            return _stream_batches(self.dataset, self.batch_size, self.drop_last, self.collate_fn)
        batches = self._batches()
        epoch = self._epochs
        self._epochs += 1
        if self.num_workers == 0:
            return map(self._batch_fetcher(), batches)
        # Seeds for this epoch's workers, from the random source's state once the order is
        # drawn (nothing is drawn from it, so num_workers does not change the order).
        source = self._rng if self._rng is not None else mx.random._current()
        entropy = _state_ints(source.bit_generator.state) + [epoch]
        if self.persistent_workers:
            if self._executor is None:
                self._executor = self._new_executor(_base_seed(entropy))
                weakref.finalize(self, self._executor.shutdown, wait=False)
            executor, own = self._executor, False
        else:
            executor, own = self._new_executor(_base_seed(entropy)), True
        if self.worker_type == "process":

            def submit(position: int, idx: Any) -> Future:
                return executor.submit(_process_task, entropy, position, idx)

        else:
            fetch = self._batch_fetcher()

            def submit(position: int, idx: Any) -> Future:
                return executor.submit(_thread_task, fetch, entropy, position, idx)

        return _Epoch(executor, submit, batches, self._depth(), own)

    def _depth(self) -> int:
        return self.num_workers * self.prefetch_factor

    def _new_executor(self, seed: int) -> Any:
        n = self.num_workers
        if self.worker_type == "process":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = self.multiprocessing_context
            if ctx is None or isinstance(ctx, str):
                ctx = multiprocessing.get_context(ctx)
            args = (self.dataset, self.batch_size, self.collate_fn, self.worker_init_fn)
            return ProcessPoolExecutor(
                max_workers=n,
                mp_context=ctx,
                initializer=_process_init,
                initargs=(*args, ctx.Value("i", 0), n, seed),
            )
        return ThreadPoolExecutor(
            max_workers=n,
            thread_name_prefix="chainrule-loader",
            initializer=_thread_init,
            initargs=(self.dataset, n, seed, itertools.count(), self.worker_init_fn),
        )


def _stream_batches(dataset: Any, batch_size: int | None, drop_last: bool, collate_fn: Any):
    """Batches of a stream's samples, in order (PyTorch's loader over an IterableDataset)."""
    collate = default_collate if collate_fn is None else collate_fn
    if batch_size is None:
        for sample in dataset:
            yield _convert(sample) if collate_fn is None else collate_fn(sample)
        return
    batch: list = []
    for sample in dataset:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch and not drop_last:
        yield collate(batch)


class _Epoch:
    """One epoch's batches fetched by a pool of workers, handed out in order.

    Several epochs may be live at once (``zip(loader, loader)``, or a loop left with
    ``break``): each keeps its own queue of futures, so sharing a persistent pool is safe. An
    abandoned epoch cancels its queued batches when it is garbage collected.
    """

    def __init__(self, executor, submit, batches, depth: int, own: bool) -> None:
        self._executor = executor
        self._submit = submit
        self._todo = enumerate(batches)
        self._n = len(batches)
        self._pending: collections.deque = collections.deque()
        self._depth = depth
        self._own = own
        self._lock = threading.Lock()
        self._fill()

    def _fill(self) -> None:
        pending, submit = self._pending, self._submit
        while len(pending) < self._depth:
            item = next(self._todo, None)
            if item is None:
                break
            pending.append((item[0], submit(*item)))

    def __iter__(self) -> _Epoch:
        return self

    def __len__(self) -> int:
        return self._n

    def __next__(self) -> Any:
        if not self._pending:
            self.cancel()
            raise StopIteration
        position, future = self._pending.popleft()
        self._fill()  # keep the workers busy while the caller trains on this batch
        try:
            return future.result()
        except BrokenProcessPool as e:
            self.cancel()
            raise RuntimeError(
                f"DataLoader: a worker process exited unexpectedly while batch {position} was "
                "being fetched (killed, out of memory, or os._exit in the dataset); run with "
                "worker_type='thread' or num_workers=0 to see the error in this process"
            ) from e
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Drop the batches not yet handed out; shut the pool down if this epoch owns it."""
        with self._lock:
            for _, f in self._pending:
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
