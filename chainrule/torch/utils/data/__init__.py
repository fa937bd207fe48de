"""``torch.utils.data``: chainrule.data's ``DataLoader``, datasets, samplers and ``random_split``.

The objects are chainrule.data's own, but for ``DataLoader``, ``RandomSampler`` and
``random_split``, which draw as PyTorch's do (from the default generator that
``torch.manual_seed`` seeds, or a ``Generator``); batches are chainrule arrays. PyTorch's
submodules (``dataloader``, ``dataset``, ``sampler``, ``distributed``) re-export the same
objects, and the DataPipe API (``IterDataPipe``, ``MapDataPipe``, ``functional_datapipe``,
``datapipes``, ``graph``, ``graph_settings``...) is in
:mod:`chainrule.torch.utils.data.datapipes`.
"""

from __future__ import annotations

from chainrule.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Sampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WorkerInfo,
    default_collate,
    default_convert,
    get_worker_info,
)

from . import dataloader, datapipes, dataset, distributed, graph, graph_settings, sampler
from .dataloader import DataLoader
from .datapipes.datapipe import DataChunk, DFIterDataPipe, IterDataPipe, MapDataPipe
from .datapipes.decorators import (
    argument_validation,
    functional_datapipe,
    guaranteed_datapipes_determinism,
    non_deterministic,
    runtime_validation,
    runtime_validation_disabled,
)
from .dataset import random_split
from .distributed import DistributedSampler
from .sampler import RandomSampler, WeightedRandomSampler

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DFIterDataPipe",
    "DataChunk",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterDataPipe",
    "IterableDataset",
    "MapDataPipe",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "WorkerInfo",
    "argument_validation",
    "dataloader",
    "datapipes",
    "dataset",
    "default_collate",
    "default_convert",
    "distributed",
    "functional_datapipe",
    "get_worker_info",
    "graph",
    "graph_settings",
    "guaranteed_datapipes_determinism",
    "non_deterministic",
    "random_split",
    "runtime_validation",
    "runtime_validation_disabled",
    "sampler",
]
