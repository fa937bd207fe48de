"""GPU arrays a traced function reads from outside its arguments, on the host while it traces.

``mx.compile`` and ``mx.vmap`` trace a call on GPU data on host copies of its arguments (their
tracers follow NumPy values). An array the function reaches through its closure, its default
arguments, the globals its code names, a bound method's object or a ``functools.partial`` (weights of a model it
closes over, a mask made on the GPU) would meet those host values on the GPU and the trace
would fail. :func:`closure_on_host` finds such arrays and gives them host copies of their values
while the trace runs, then puts the GPU values back: the trace records them as constants, as
MLX's ``compile`` does with what a closure holds, and the GPU replay copies each constant to
the GPU once (``program_gpu.py``; the vmap replay maps each copy back to its GPU original).

The walk follows data (arrays, lists, tuples, dicts and their subclasses such as ``nn.Module``,
objects' attributes) and the closures and globals of functions it meets, within a budget of
objects and of GPU bytes; past either, nothing is swapped and the call runs as it did before
(eagerly, or by the per-example loop). Without a GPU nothing is walked. The swap is visible
to other threads while the trace runs (a DataLoader worker reading the same global array
would read the host copy): trace compiled functions before starting such threads.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import backend as _backend
from .array import Node, array

_OBJECT_BUDGET = 20_000
"""Objects visited at most (a closure reaching a whole program's state gives up)."""

_BYTES_BUDGET = 1 << 28
"""GPU bytes copied at most (256 MiB: larger constants are better passed as arguments)."""

_SKIP = (type, types.ModuleType, types.BuiltinFunctionType, str, bytes, int, float, complex)


def _reachable_gpu_arrays(fun: Callable) -> list[array] | None:
    """Every array holding GPU data that ``fun`` can reach outside its arguments, or ``None``
    when the walk ran past its budgets."""
    found: list[array] = []
    seen: set[int] = set()
    stack: list = [fun]
    budget = _OBJECT_BUDGET
    nbytes = 0
    while stack:
        v = stack.pop()
        if id(v) in seen or isinstance(v, _SKIP) or v is None:
            continue
        seen.add(id(v))
        budget -= 1
        if budget < 0:
            return None
        if isinstance(v, array):
            # (a value recorded by a graph outside keeps its node: the trace fails on it)
            if _backend.is_gpu(v._data) and (v._node is None or v._node.prim is None):
                nbytes += v._data.nbytes
                if nbytes > _BYTES_BUDGET:
                    return None
                found.append(v)
            continue
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, functools.partial):
            stack += [v.func, v.args, v.keywords]
        elif isinstance(v, types.MethodType):
            stack += [v.__func__, v.__self__]
        elif isinstance(v, types.FunctionType):
            stack += [c.cell_contents for c in v.__closure__ or () if _bound(c)]
            stack += [v.__defaults__, v.__kwdefaults__]
            g = v.__globals__
            stack += [g[name] for name in _names(v.__code__) if name in g]
        elif hasattr(v, "__dict__"):
            stack.extend(vars(v).values())
    return found


def reaches_gpu(fun: Callable) -> bool:
    """Whether ``fun`` reads GPU arrays from outside its arguments (a compiled function with no
    array argument then runs its program on the GPU)."""
    return bool(_reachable_gpu_arrays(fun))


def _bound(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018  # an unbound cell raises
    except ValueError:
        return False
    return True


def _names(code: types.CodeType) -> Iterator[str]:
    """The global names ``code`` and the code objects nested in it (lambdas, comprehensions)
    may read."""
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names(c)


@contextmanager
def closure_on_host(fun: Callable, originals: dict) -> Iterator[list | None]:
    """While the block runs, the GPU arrays ``fun`` reaches outside its arguments hold host
    copies (``originals`` maps each copy's ``id`` to the GPU value it stands for); the block
    gets the list of ``(array, copy)`` pairs, or ``None`` when the walk gave up. Afterwards
    each array still holding its copy gets its GPU value back; one the function replaced (an
    in-place update: :func:`replaced`, asked inside the block) keeps its new value, which the
    caller deals with."""
    arrays = _reachable_gpu_arrays(fun) if _backend.GPU[0] is not None else []
    if not arrays:
        yield None if arrays is None else []
        return
    swapped = []
    for a in arrays:
        d, node = a._data, a._node
        copy = _backend.to_host(d)
        originals[id(copy)] = d
        swapped.append((a, copy, d, node))
        a._data = copy
        if node is not None:
            a._node = Node(copy, None, (), None, node.owner)
    try:
        yield [(a, copy) for a, copy, _, _ in swapped]
    finally:
        for a, copy, d, node in swapped:
            if a._data is copy:
                a._data, a._node = d, node


def replaced(pairs: list | None) -> list[array]:
    """The arrays of :func:`closure_on_host`'s pairs that no longer hold their host copy."""
    return [a for a, copy in pairs or () if a._data is not copy]


def back_to_gpu(a: array) -> None:
    """An array the traced function replaced (its new value made on the host) moved to the GPU,
    with its leaf node if it has one."""
    d = a._data
    if type(d) is _backend.ndarray:
        a._data = v = _backend.to_gpu(d)
        node = a._node
        if node is not None and node.prim is None:
            a._node = Node(v, None, (), None, node.owner)
