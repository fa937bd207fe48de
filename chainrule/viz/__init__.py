"""``chainrule.viz``: see the computational graph behind an array.

    from chainrule import viz

    g = viz.graph(loss, model, gradients=True)   # capture (and one backward pass for norms)
    print(g.summary())                           # a text tree for terminals
    g.render("graph.svg")                        # a picture; no system package needed
    g.render("graph.png")                        # needs Graphviz's `dot`
    text = g.to_dot()                            # Graphviz DOT text

``chainrule graph SCRIPT.py`` draws the graph of the loss a script computes. For NaN hunting see
``mx.detect_anomaly()``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

__all__ = ["graph", "Graph", "GraphNode", "GraphvizNotFoundError", "DOT_THRESHOLD"]

if TYPE_CHECKING:  # pragma: no cover
    from .capture import DOT_THRESHOLD, Graph, GraphNode, GraphvizNotFoundError, graph


def __getattr__(name: str):
    # loaded on first use, so that importing chainrule.viz stays fast
    if name in __all__:
        value = getattr(_importlib.import_module(f"{__name__}.capture"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
