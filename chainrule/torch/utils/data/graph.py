"""``torch.utils.data.graph``: the graph of DataPipes feeding a DataPipe."""

from __future__ import annotations

from typing import Any

from .datapipes.datapipe import IterDataPipe, MapDataPipe

DataPipe = (IterDataPipe, MapDataPipe)
DataPipeGraph = dict  # {id(datapipe): (datapipe, DataPipeGraph of its sources)}

__all__ = ["DataPipe", "DataPipeGraph", "traverse", "traverse_dps"]


def _sources(dp: Any) -> list:
    found = []
    for value in vars(dp).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        found.extend(v for v in items if isinstance(v, DataPipe))
    return found


def traverse_dps(datapipe: Any) -> dict:
    """``{id(dp): (dp, graph of dp's sources)}`` starting at ``datapipe``.

    Args:
        datapipe: an ``IterDataPipe`` or ``MapDataPipe``.

    Returns:
        The nested graph (each DataPipe once per path; cycles are cut).
    """
    return _walk(datapipe, set())


def _walk(dp: Any, seen: set) -> dict:
    key = id(dp)
    if key in seen:
        return {key: (dp, {})}
    children: dict = {}
    for src in _sources(dp):
        children.update(_walk(src, seen | {key}))
    return {key: (dp, children)}


def traverse(datapipe: Any, only_datapipe: bool | None = None) -> dict:
    """``traverse_dps`` (PyTorch's deprecated spelling)."""
    return traverse_dps(datapipe)
