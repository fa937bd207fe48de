"""``chainrule.data``: datasets and the ``DataLoader`` (PyTorch's names, chainrule arrays).

Typical use::

    from chainrule.data import DataLoader, TensorDataset, random_split

    train, val = random_split(TensorDataset(X, y), [0.8, 0.2])
    for xb, yb in DataLoader(train, batch_size=64, shuffle=True):
        ...

Examples:
    >>> import numpy as np
    >>> from chainrule.data import DataLoader, TensorDataset, random_split
    >>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10) % 2
    >>> train, val = random_split(TensorDataset(X, y), [0.8, 0.2])
    >>> len(train), len(val)
    (8, 2)
    >>> [tuple(xb.shape) for xb, yb in DataLoader(train, batch_size=3)]
    [(3, 2), (3, 2), (2, 2)]
"""

from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .iterable import (
    ChainDataset,
    DistributedSampler,
    IterableDataset,
    StackDataset,
    WeightedRandomSampler,
    default_convert,
)
from .loader import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WorkerInfo,
    default_collate,
    get_worker_info,
)
from .sources import (
    BUILTIN_DATASETS,
    DataError,
    ImageFolder,
    TabularDataset,
    from_csv,
    from_json,
    from_numpy,
    load,
)
from .split import Standardizer, split_indices
from .sql import from_sql

__all__ = [
    "BUILTIN_DATASETS",
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DistributedSampler",
    "IterableDataset",
    "StackDataset",
    "WeightedRandomSampler",
    "default_convert",
    "DataLoader",
    "Dataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "DataError",
    "ImageFolder",
    "TabularDataset",
    "WorkerInfo",
    "default_collate",
    "from_csv",
    "from_json",
    "from_numpy",
    "from_sql",
    "get_worker_info",
    "load",
    "random_split",
]
