"""What ``mx.eval`` does to the graph: release it, as MLX's evaluation detaches what it computed.

chainrule computes every array when it is made; a graph is recorded only for the backward
pass. MLX-style code never calls ``backward()``, but a ``chainrule.nn`` model's parameters are
``requires_grad`` leaves (so PyTorch-style code on the same model can), and its inference
records. Without a release, a generation loop's KV cache, grown by ``concatenate``, would hold
every earlier cache through its node, and a sampling loop every earlier step's activations;
MLX keeps neither, because ``mx.eval`` detaches the arrays it computed from their inputs.
``release`` does the same to the recorded graph.
"""

from __future__ import annotations

from .array import ORIGINS, Node, array, origin_of
from .tracing import is_tracing
from .tree import leaves

__all__ = ["RELEASED", "release"]

RELEASED = [0]
"""How many nodes ``release`` has turned into leaves (``backward()`` names ``mx.eval`` when it
reaches no leaf after some were)."""


def release(args: tuple) -> None:
    """Drop the graph recorded behind the arrays in ``args`` (trees walked) and behind the
    graph a sampled token (``argmax``, ``categorical``) was read from.

    The arrays, and every array they were computed from, become constants: the arrays passed
    lose their node, the nodes behind them become leaves without an owner (a backward pass
    reaching one ends there). ``requires_grad`` leaves stay as they are; values never change.
    The caller skips this inside ``grad``/``vjp``/``vmap``; nothing is released while a
    compiled function is traced either.
    """
    if is_tracing():
        return
    todo: list = []
    for x in leaves(args):
        if not isinstance(x, array):
            continue
        n = x._node
        if n is None:
            if ORIGINS:
                n = origin_of(x._data)
                if n is not None and n.prim is not None:
                    todo.append(n)
        elif n.prim is not None:
            x._node = None
            todo.append(n)
    _Node = Node
    count = 0
    while todo:
        n = todo.pop()
        if n.prim is None:
            continue
        count += 1
        parents = n.args
        n.prim = None
        n.args = ()
        n.params = None
        for p in parents:
            if type(p) is _Node and p.prim is not None:
                todo.append(p)
    RELEASED[0] += count
