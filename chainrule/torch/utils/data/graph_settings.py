"""``torch.utils.data.graph_settings``: settings applied to every DataPipe of a graph."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from .datapipes.iter import ShardingFilter, Shuffler
from .graph import DataPipe, DataPipeGraph, traverse_dps

__all__ = [
    "DataPipe",
    "DataPipeGraph",
    "SHARDING_PRIORITIES",
    "apply_random_seed",
    "apply_sharding",
    "apply_shuffle_seed",
    "apply_shuffle_settings",
    "get_all_graph_pipes",
    "traverse_dps",
]


class SHARDING_PRIORITIES(enum.IntEnum):
    """Sharding groups (PyTorch's enumeration)."""

    DEFAULT = 1
    DISTRIBUTED = 2
    MULTIPROCESSING = 3


def get_all_graph_pipes(graph: dict) -> list:
    """Every DataPipe of a ``traverse_dps`` graph, each once."""
    out, seen = [], set()

    def walk(g: dict) -> None:
        for key, (dp, sub) in g.items():
            if key not in seen:
                seen.add(key)
                out.append(dp)
            walk(sub)

    walk(graph)
    return out


def apply_sharding(
    datapipe: Any,
    num_of_instances: int,
    instance_id: int,
    sharding_group: Any = SHARDING_PRIORITIES.DEFAULT,
) -> Any:
    """Shard every ``sharding_filter`` of the graph; returns ``datapipe``."""
    for dp in get_all_graph_pipes(traverse_dps(datapipe)):
        if isinstance(dp, ShardingFilter):
            dp.apply_sharding(num_of_instances, instance_id, sharding_group)
    return datapipe


def apply_shuffle_settings(datapipe: Any, shuffle: bool | None = None) -> Any:
    """Switch every ``shuffle`` of the graph on or off (``None`` leaves them); returns it."""
    if shuffle is None:
        return datapipe
    for dp in get_all_graph_pipes(traverse_dps(datapipe)):
        if isinstance(dp, Shuffler):
            dp.set_shuffle(shuffle)
    return datapipe


def apply_random_seed(datapipe: Any, rng: Any) -> Any:
    """Seed every ``shuffle`` of the graph from ``rng`` (a NumPy generator or a seed)."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    for dp in get_all_graph_pipes(traverse_dps(datapipe)):
        if isinstance(dp, Shuffler):
            dp.set_seed(int(gen.integers(0, 2**62)))
    return datapipe


def apply_shuffle_seed(datapipe: Any, rng: Any) -> Any:
    """``apply_random_seed`` (PyTorch's deprecated name)."""
    return apply_random_seed(datapipe, rng)
