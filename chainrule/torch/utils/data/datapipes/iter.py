"""The common ``IterDataPipe`` s, each registered under its functional name (``dp.map(fn)``)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from chainrule.data import default_collate

from .datapipe import DataChunk, IterDataPipe
from .decorators import functional_datapipe

__all__ = [
    "Batcher",
    "Collator",
    "Concater",
    "Enumerator",
    "Filter",
    "Header",
    "IterableWrapper",
    "Mapper",
    "ShardingFilter",
    "Shuffler",
    "UnBatcher",
    "Zipper",
]


class IterableWrapper(IterDataPipe):
    """Any iterable as an ``IterDataPipe``."""

    def __init__(self, iterable: Iterable, deepcopy: bool = True) -> None:
        self.iterable = iterable
        self.deepcopy = deepcopy

    def __iter__(self):
        yield from self.iterable

    def __len__(self) -> int:
        return len(self.iterable)


@functional_datapipe("map")
class Mapper(IterDataPipe):
    """``fn`` applied to each item (to ``item[input_col]`` when given)."""

    def __init__(self, datapipe, fn: Callable, input_col=None, output_col=None) -> None:
        self.datapipe, self.fn, self.input_col, self.output_col = (
            datapipe,
            fn,
            input_col,
            output_col,
        )

    def _apply(self, item: Any) -> Any:
        if self.input_col is None:
            return self.fn(item)
        out = self.fn(item[self.input_col])
        item = (
            list(item)
            if isinstance(item, tuple)
            else dict(item)
            if isinstance(item, dict)
            else item
        )
        item[self.input_col if self.output_col is None else self.output_col] = out
        return item

    def __iter__(self):
        for item in self.datapipe:
            yield self._apply(item)

    def __len__(self) -> int:
        return len(self.datapipe)


@functional_datapipe("filter")
class Filter(IterDataPipe):
    """The items for which ``filter_fn`` is true."""

    def __init__(self, datapipe, filter_fn: Callable, input_col=None) -> None:
        self.datapipe, self.filter_fn, self.input_col = datapipe, filter_fn, input_col

    def __iter__(self):
        for item in self.datapipe:
            if self.filter_fn(item if self.input_col is None else item[self.input_col]):
                yield item


@functional_datapipe("batch")
class Batcher(IterDataPipe):
    """Consecutive items grouped into ``DataChunk`` s of ``batch_size``."""

    def __init__(
        self, datapipe, batch_size: int, drop_last: bool = False, wrapper_class=DataChunk
    ) -> None:
        if batch_size <= 0:
            raise AssertionError("Batch size is required to be larger than 0!")
        self.datapipe, self.batch_size = datapipe, batch_size
        self.drop_last, self.wrapper_class = drop_last, wrapper_class

    def __iter__(self):
        batch: list = []
        for item in self.datapipe:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.wrapper_class(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.wrapper_class(batch)

    def __len__(self) -> int:
        n = len(self.datapipe)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


@functional_datapipe("unbatch")
class UnBatcher(IterDataPipe):
    """The items of each batch, one by one (``unbatch_level`` levels deep)."""

    def __init__(self, datapipe, unbatch_level: int = 1) -> None:
        self.datapipe, self.unbatch_level = datapipe, unbatch_level

    def _dive(self, item: Any, level: int):
        if level == 0 or not isinstance(item, (list, DataChunk)):
            yield item
            return
        for sub in item:
            yield from self._dive(sub, level - 1)

    def __iter__(self):
        for item in self.datapipe:
            yield from self._dive(item, self.unbatch_level if self.unbatch_level >= 0 else 10**9)


@functional_datapipe("collate")
class Collator(IterDataPipe):
    """Each item (a batch) passed through ``collate_fn`` (``default_collate``)."""

    def __init__(self, datapipe, conversion=None, collate_fn: Callable | None = None) -> None:
        self.datapipe = datapipe
        self.collate_fn = collate_fn or conversion or default_collate

    def __iter__(self):
        for item in self.datapipe:
            yield self.collate_fn(item)


@functional_datapipe("shuffle")
class Shuffler(IterDataPipe):
    """Items shuffled within a buffer of ``buffer_size`` (switched by ``set_shuffle``)."""

    def __init__(self, datapipe, buffer_size: int = 10000, unbatch_level: int = 0) -> None:
        if buffer_size <= 0:
            raise AssertionError("buffer_size should be larger than 0")
        self.datapipe = UnBatcher(datapipe, unbatch_level) if unbatch_level else datapipe
        self.buffer_size = buffer_size
        self._enabled = True
        self._seed: int | None = None
        self._rng = random.Random()

    def set_shuffle(self, shuffle: bool = True) -> Shuffler:
        """Turn shuffling on or off; returns the DataPipe."""
        self._enabled = shuffle
        return self

    def set_seed(self, seed: int) -> Shuffler:
        """Seed the next iteration's order; returns the DataPipe."""
        self._seed = seed
        return self

    def __iter__(self):
        if not self._enabled:
            yield from self.datapipe
            return
        if self._seed is not None:
            self._rng.seed(self._seed)
        buffer: list = []
        for item in self.datapipe:
            if len(buffer) == self.buffer_size:
                idx = self._rng.randint(0, len(buffer) - 1)
                buffer[idx], item = item, buffer[idx]
                yield item
            else:
                buffer.append(item)
        while buffer:
            idx = self._rng.randint(0, len(buffer) - 1)
            yield buffer.pop(idx)

    def __len__(self) -> int:
        return len(self.datapipe)


@functional_datapipe("concat")
class Concater(IterDataPipe):
    """The DataPipes one after another."""

    def __init__(self, *datapipes) -> None:
        if not datapipes:
            raise ValueError("Expected at least one DataPipe, but got nothing")
        self.datapipes = datapipes

    def __iter__(self):
        for dp in self.datapipes:
            yield from dp

    def __len__(self) -> int:
        return sum(len(dp) for dp in self.datapipes)


@functional_datapipe("zip")
class Zipper(IterDataPipe):
    """Tuples of one item from each DataPipe (until the shortest ends)."""

    def __init__(self, *datapipes) -> None:
        if not all(isinstance(dp, IterDataPipe) for dp in datapipes):
            raise TypeError("All inputs are required to be `IterDataPipe` for `ZipIterDataPipe`.")
        self.datapipes = datapipes

    def __iter__(self):
        yield from zip(*self.datapipes)

    def __len__(self) -> int:
        return min(len(dp) for dp in self.datapipes)


@functional_datapipe("enumerate")
class Enumerator(IterDataPipe):
    """``(index, item)`` pairs, counting from ``starting_index``."""

    def __init__(self, datapipe, starting_index: int = 0) -> None:
        self.datapipe, self.starting_index = datapipe, starting_index

    def __iter__(self):
        yield from enumerate(self.datapipe, self.starting_index)

    def __len__(self) -> int:
        return len(self.datapipe)


@functional_datapipe("header")
class Header(IterDataPipe):
    """The first ``limit`` items."""

    def __init__(self, datapipe, limit: int | None = 10) -> None:
        self.datapipe, self.limit = datapipe, limit

    def __iter__(self):
        for i, item in enumerate(self.datapipe):
            if self.limit is not None and i >= self.limit:
                break
            yield item


@functional_datapipe("sharding_filter")
class ShardingFilter(IterDataPipe):
    """Every ``num_of_instances``-th item from ``instance_id`` (set by ``apply_sharding``)."""

    def __init__(self, source_datapipe, sharding_group_filter=None) -> None:
        self.source_datapipe = source_datapipe
        self.sharding_group_filter = sharding_group_filter
        self.num_of_instances = 1
        self.instance_id = 0

    def apply_sharding(self, num_of_instances: int, instance_id: int, sharding_group=None):
        """Keep the items ``instance_id, instance_id + num_of_instances, ...``."""
        if not 0 <= instance_id < num_of_instances:
            raise ValueError(
                f"instance_id({instance_id}) should be smaller than "
                f"num_of_instances({num_of_instances})"
            )
        self.num_of_instances, self.instance_id = num_of_instances, instance_id

    def __iter__(self):
        for i, item in enumerate(self.source_datapipe):
            if i % self.num_of_instances == self.instance_id:
                yield item
