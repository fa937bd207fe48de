"""``torch.utils.data.dataset``: the dataset classes (chainrule.data's) and ``random_split``
(chainrule.data's, drawing from PyTorch's default generator when none is given)."""

from __future__ import annotations

from typing import Any

from chainrule.data import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
)
from chainrule.data import random_split as _random_split

__all__ = [
    "ChainDataset",
    "ConcatDataset",
    "Dataset",
    "IterableDataset",
    "StackDataset",
    "Subset",
    "TensorDataset",
    "random_split",
]


def random_split(dataset: Dataset, lengths: Any, generator: Any = None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping subsets, as PyTorch: one ``randperm``
    of the whole from ``generator`` (the default generator when omitted).

    Args:
        dataset: the dataset to split.
        lengths: the subsets' sizes, or fractions summing to 1 (see chainrule.data's).
        generator: a ``chainrule.torch.Generator``.

    Returns:
        One ``Subset`` per length.
    """
    from ..._random import default_generator

    return _random_split(dataset, lengths, default_generator if generator is None else generator)
