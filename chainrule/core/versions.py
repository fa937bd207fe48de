"""PyTorch's version counter for tensors changed in place (DESIGN.md, invariant 1).

An in-place method (``x.add_(1)``, ``x.mul_(2)``) rebinds the handle to a new node, so every
graph recorded before keeps reading the old value and gradients stay correct. PyTorch instead
refuses a backward pass that needs a value replaced after it was saved; PyTorch code relies on
that error, so tensors keep its contract: ``replaced(handle, old_node)`` notes the
replacement, and the backward pass calls ``check(node, live)`` for each node it differentiates
while any replacement is noted (one truth test per node otherwise).

A node needs a replaced value when its rule reads it: the rules of the linear primitives read
no input (``add``, ``reshape``, ``sum``...), the products read only the other operand
(``multiply``, ``matmul``, ``einsum``), the primitives listed in ``SAVES_OUTPUT`` read their
own result, and every other rule reads its inputs — PyTorch's choices for the same operations.
A user's own rule (``torch.autograd.Function``) reads only what it saved.
"""

from __future__ import annotations

import weakref

from .array import Node
from .ops.table import PRIMITIVES

LINEAR = frozenset(
    {
        "add", "subtract", "negative", "reshape", "transpose", "broadcast_to", "sum",
        "concatenate", "getitem", "pad", "astype", "contiguous", "identity", "conj", "real",
        "imag", "cumsum", "degrees", "radians", "as_strided", "fft", "hadamard_transform",
        "scatter_add",
    }
)  # fmt: skip
"""Primitives whose VJP reads none of their inputs' values."""

PRODUCTS = frozenset({"multiply", "matmul", "einsum"})
"""Primitives whose VJP for one operand reads only the others."""

SAVES_OUTPUT = frozenset({"exp", "sigmoid", "tanh", "sqrt", "rsqrt", "expm1", "reciprocal"})
"""Primitives whose VJP reads their own result (so replacing the result is what matters)."""


class _Versions:
    """The replaced nodes (weakly held) and each handle's count of in-place changes (keyed by
    identity: arrays compare elementwise, so they cannot be keys of a weak dictionary)."""

    def __init__(self) -> None:
        self.nodes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.handles: dict[int, list] = {}  # id -> [weak reference, count]

    def __bool__(self) -> bool:
        return bool(self.nodes)


VERSIONS = _Versions()


def _forget(key: int):
    def gone(_ref) -> None:
        VERSIONS.handles.pop(key, None)

    return gone


def replaced(handle, old: Node | None, by: Node | None = None) -> None:
    """Note that ``handle`` (an array) was changed in place, leaving ``old`` behind; ``by`` is
    the node of the in-place operation itself, which may read ``old`` (PyTorch keeps what an
    in-place operation's own gradient needs)."""
    key = id(handle)
    entry = VERSIONS.handles.get(key)
    if entry is not None and entry[0]() is handle:  # counted before: count on in its entry
        entry[1] += 1
        count = entry[1]
    else:
        count = 1
        VERSIONS.handles[key] = [weakref.ref(handle, _forget(key)), count]
    if old is not None and old.prim is not None:
        VERSIONS.nodes[old] = (count, handle.dtype.name, tuple(handle.shape), _own(by, old))


def _own(by: Node | None, old: Node, limit: int = 256) -> frozenset:
    """The ids of the nodes an in-place operation recorded itself: those between its result
    ``by`` and the value ``old`` it replaced (a composite such as ``elu_`` records several;
    PyTorch's in-place operations keep what their own gradients need)."""
    if by is None:
        return frozenset()
    leads: dict[int, bool] = {}  # id -> reaches old
    stack = [(by, False)]
    seen = 0
    while stack and seen < limit:
        n, done = stack.pop()
        if done:
            leads[id(n)] = any(
                a is old or (type(a) is Node and leads.get(id(a), False)) for a in n.args
            )
            continue
        if id(n) in leads or n is old:
            continue
        seen += 1
        stack.append((n, True))
        stack.extend((a, False) for a in n.args if type(a) is Node and a is not old)
    return frozenset(k for k, v in leads.items() if v)


def version(handle) -> int:
    """How many times ``handle`` was changed in place (PyTorch's ``x._version``)."""
    entry = VERSIONS.handles.get(id(handle))
    return entry[1] if entry is not None and entry[0]() is handle else 0


def check(node: Node, live) -> None:
    """Raise PyTorch's error when ``node``'s rule needs a value that was replaced in place."""
    nodes = VERSIONS.nodes
    prim = node.prim
    name = prim.name
    if PRIMITIVES.get(name) is not prim:
        return  # a user's own rule (torch.autograd.Function) reads only what it saved
    if name in SAVES_OUTPUT and node in nodes:
        raise _error(node, nodes[node])
    if name in LINEAR:
        return
    args = node.args
    for i, a in enumerate(args):
        if type(a) is not Node or a not in nodes or id(node) in nodes[a][3]:
            continue
        if name in PRODUCTS:
            others = [b for j, b in enumerate(args) if j != i]
            if not any(type(b) is Node and b in live for b in others):
                continue  # no other operand needs this one's value
        elif name in SAVES_OUTPUT:
            continue
        raise _error(a, nodes[a])


_TYPE_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
    "bfloat16": "BFloat16Tensor", "complex64": "ComplexFloatTensor",
    "complex128": "ComplexDoubleTensor",
}  # fmt: skip


def _error(node: Node, info: tuple) -> RuntimeError:
    version, dtype, shape, _ = info
    op = node.prim.name.title().replace("_", "")
    kind = _TYPE_NAMES.get(dtype, dtype)
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [torch.{kind} {list(shape)}], which is output 0 of {op}Backward0, is at "
        f"version {version}; expected version {version - 1} instead. Hint: compute the "
        "out-of-place result (x = x + 1 rather than x.add_(1)) or clone() the value before "
        "changing it."
    )
