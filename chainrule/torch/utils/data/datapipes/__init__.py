"""``torch.utils.data.datapipes``: the DataPipe classes, decorators and common pipes."""

from __future__ import annotations

from . import datapipe, decorators, iter, map
from .datapipe import DataChunk, DFIterDataPipe, IterDataPipe, MapDataPipe

__all__ = [
    "DFIterDataPipe",
    "DataChunk",
    "IterDataPipe",
    "MapDataPipe",
    "datapipe",
    "decorators",
    "iter",
    "map",
]
