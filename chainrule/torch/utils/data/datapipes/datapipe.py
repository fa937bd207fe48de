"""PyTorch's DataPipes: ``IterDataPipe`` (a stream), ``MapDataPipe`` (indexable), ``DataChunk``.

A DataPipe's functional form (``dp.map(fn)``, ``dp.batch(4)``) is a class registered under that
name with ``functional_datapipe``; attribute lookup on a DataPipe finds it and passes the
DataPipe as the first argument, as in PyTorch.
"""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar

from chainrule.data import Dataset, IterableDataset

T_co = TypeVar("T_co", covariant=True)

__all__ = ["DFIterDataPipe", "DataChunk", "IterDataPipe", "MapDataPipe"]


class _Functional:
    """The registry of functional names of one DataPipe family."""

    functions: dict[str, type]

    @classmethod
    def register_datapipe_as_function(cls, function_name: str, cls_to_register: type) -> None:
        """Make ``dp.<function_name>(...)`` build ``cls_to_register(dp, ...)``.

        Args:
            function_name: the method name.
            cls_to_register: the DataPipe class.

        Raises:
            Exception: when the name is already registered (PyTorch's rule).
        """
        if function_name in cls.functions:
            raise Exception(
                f"Unable to add DataPipe function name {function_name} as it is already taken"
            )
        cls.functions[function_name] = cls_to_register

    def __getattr__(self, attribute_name: str) -> Any:
        fns = type(self).functions
        if attribute_name in fns:
            return functools.partial(fns[attribute_name], self)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attribute_name}'")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(type(self).functions))


class IterDataPipe(_Functional, IterableDataset, Generic[T_co]):
    """A DataPipe read as a stream (an ``IterableDataset``); subclasses define ``__iter__``."""

    functions: dict[str, type] = {}

    def __repr__(self) -> str:
        return type(self).__qualname__

    def reset(self) -> None:
        """Called before each new iteration; nothing to reset by default."""


class MapDataPipe(_Functional, Dataset, Generic[T_co]):
    """A DataPipe read by index (a map-style ``Dataset``): ``__getitem__`` and ``__len__``."""

    functions: dict[str, type] = {}

    def __repr__(self) -> str:
        return type(self).__qualname__


class DFIterDataPipe(IterDataPipe):
    """An ``IterDataPipe`` of data frames (PyTorch's marker class; no extra behaviour here)."""

    def _is_dfpipe(self) -> bool:
        return True


class DataChunk(list, Generic[T_co]):
    """A batch made by ``batch()``: a list that prints compactly."""

    def __init__(self, items: Any = ()) -> None:
        items = list(items)
        super().__init__(items)
        self.items = items

    def as_str(self, indent: str = "") -> str:
        """The items as ``indent[item, item]``."""
        return indent + "[" + ", ".join(str(i) for i in iter(self)) + "]"

    def __iter__(self):
        yield from super().__iter__()

    def raw_iterator(self):
        """The items (without any wrapping)."""
        yield from self.items
