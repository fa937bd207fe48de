"""``mx.detect_anomaly()``: stop at the first operation that makes a NaN or an infinity.

Inside ``with mx.detect_anomaly():`` every recorded operation (one that depends on an array
being differentiated) has its output checked in the forward pass, and every cotangent a
backward rule produces is checked in the backward pass. The first non-finite value raises an
``AnomalyError`` naming the operation, the shapes of its inputs and the line of your code that
created it.

Switching the mode on costs nothing while it is off:

* forward: the modules of ``chainrule.core.ops`` build nodes by calling the name ``Node``; while the mode is
  on, that name is bound to a factory that builds the same ``Node``, notes where it was created
  and checks its value. Leaving the mode binds the class back.
* backward: a checker is appended to ``autograd.OBSERVERS`` (empty otherwise).

Only recorded operations are seen: a computation on constants (no ``requires_grad`` input, not
inside ``grad``) records nothing, so it is not checked; its NaN is reported at the first
recorded operation that reads it, with a note that the input already held it.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import autograd, ops
from .array import Node
from .backend import as_array, xp

__all__ = ["AnomalyError", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(FloatingPointError):
    """An operation made a NaN or an infinity while ``detect_anomaly`` was on.

    Attributes:
        op: the operation's name (``"log"``).
        phase: ``"forward"`` or ``"backward"``.
        input_shapes: the shapes of the operation's inputs.
        location: ``"file.py:12"`` where the operation was created, or ``None``.
    """

    def __init__(
        self, message: str, op: str, phase: str, input_shapes: tuple, location: str | None
    ) -> None:
        super().__init__(message)
        self.op = op
        self.phase = phase
        self.input_shapes = input_shapes
        self.location = location


# -- where nodes were created ------------------------------------------------------------------

_LOCK = threading.Lock()
_DEPTH = 0  # nested detect_anomaly regions
_SITES: dict = {}  # Node -> (filename, lineno), for the nodes made while the mode is on
_PRUNE_AT = 4096


def _external_refs(keys: list) -> list[int]:
    """``sys.getrefcount`` of each key minus the references this very walk holds (the dict,
    the snapshot list, the loop variable, the call's argument), measured on a probe so that
    it holds on any CPython version."""
    getrc = sys.getrefcount
    return [getrc(k) - _BASE for k in keys]


def _internal_refs(keys: list) -> dict[int, int]:
    """id(node) -> how many nodes in ``_SITES`` hold it in their ``args`` (by id: a dict keyed
    by the nodes would add references; a function, so no loop variable outlives the count)."""
    internal: dict[int, int] = {}
    for node in keys:
        for a in node.args:
            if type(a) is Node and a in _SITES:
                internal[id(a)] = internal.get(id(a), 0) + 1
    return internal


def _probe_base() -> int:
    global _BASE
    _BASE = 0
    probe: dict = {object(): None}
    return _external_refs(list(probe))[0]


_BASE = _probe_base()


def _prune() -> None:
    """Forget the nodes only ``_SITES`` (or other forgotten nodes) still hold, so a long loop
    under ``detect_anomaly`` does not grow it forever.

    As CPython's own collector does: a node referenced more often than by ``_SITES`` and the
    ``args`` of nodes in ``_SITES`` is held from outside (a handle, a running pass); it and
    every node it reaches stay, the rest go.
    """
    global _PRUNE_AT
    with _LOCK:
        keys = list(_SITES)  # a snapshot: other threads may record nodes meanwhile
        internal = _internal_refs(keys)
        external = _external_refs(keys)
        stack = [n for n, r in zip(keys, external) if r > internal.get(id(n), 0)]
        alive = set(stack)
        while stack:
            for a in stack.pop().args:
                if type(a) is Node and a not in alive and a in _SITES:
                    alive.add(a)
                    stack.append(a)
        for node in keys:
            if node not in alive:
                _SITES.pop(node, None)
        _PRUNE_AT = max(4096, 2 * len(_SITES))


def _user_site() -> tuple[str, int] | None:
    """The innermost frame outside the chainrule package: the user's line."""
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return None
    return frame.f_code.co_filename, frame.f_lineno


def _describe_site(site: tuple[str, int] | None) -> tuple[str | None, str]:
    if site is None:
        return None, "created inside chainrule (no user code on the stack)"
    filename, lineno = site
    where = f"{os.path.basename(filename)}:{lineno}"
    linecache.checkcache(filename)  # the file may have changed since it was first read
    code = linecache.getline(filename, lineno).strip()
    return where, f"created at {where}: {code}" if code else f"created at {where}"


# -- the checks --------------------------------------------------------------------------------


def _bad_kind(value) -> str | None:
    """``"nan"``, ``"inf"`` or ``None`` for a finite (or non-float) value."""
    value = as_array(value)
    if value.dtype.kind not in "fc" or value.size == 0:
        return None
    if xp.isfinite(value).all():
        return None
    return "nan" if xp.isnan(value).any() else "inf"


def _count(value, kind: str) -> str:
    value = as_array(value)
    n = int((xp.isnan(value) if kind == "nan" else xp.isinf(value)).sum())
    return f"{n} of {value.size} value{'s' if value.size != 1 else ''}"


def _input_shapes(node: Node) -> tuple:
    return tuple(tuple(a.value.shape) if type(a) is Node else tuple(xp.shape(a)) for a in node.args)


def _shapes_text(shapes: tuple) -> str:
    return ", ".join(str(s) for s in shapes) or "none"


def _check_forward(node: Node, site) -> None:
    kind = _bad_kind(node.value)
    if kind is None:
        return
    name = node.prim.name
    shapes = _input_shapes(node)
    where, created = _describe_site(site)
    notes = []
    for i, a in enumerate(node.args):
        before = _bad_kind(a.value if type(a) is Node else a)
        if before is not None:
            what = "a recorded array" if type(a) is Node else "a constant, not recorded"
            notes.append(f"input {i} ({what}) already holds {before}")
    note = (
        "; " + "; ".join(notes) + ", so it was made earlier"
        if notes
        else "; its inputs are finite, so this operation made it"
    )
    raise AnomalyError(
        f"detect_anomaly: {name} produced {kind} ({_count(node.value, kind)}) in its forward "
        f"output (inputs: {_shapes_text(shapes)}), {created}{note}",
        name,
        "forward",
        shapes,
        where,
    )


def _check_backward(node: Node, g, i: int, gi) -> None:
    gd = gi._data
    if gd.dtype.kind not in "fc" or xp.isfinite(gd).all():
        return
    kind = _bad_kind(gd)
    name = node.prim.name
    shapes = _input_shapes(node)
    site = _SITES.get(node, False)
    if site is False:
        where, created = (
            None,
            (
                "created before detect_anomaly was switched on (run the forward pass inside "
                "the with block to see its line)"
            ),
        )
    else:
        where, created = _describe_site(site)
    incoming = _bad_kind(g._data)
    if incoming is None:
        cause = "from a finite incoming gradient"
    else:
        cause = f"from an incoming gradient that already held {incoming}"
    raise AnomalyError(
        f"detect_anomaly: the backward of {name} produced {kind} ({_count(gd, kind)}) in the "  # type: ignore[arg-type]
        f"gradient of its input {i} {cause} (inputs: {_shapes_text(shapes)}), {created}",
        name,
        "backward",
        shapes,
        where,
    )


def _checked_node(value, prim, args, params=None, owner=None) -> Node:
    """Stands in for ``Node`` inside ``ops`` while the mode is on: same node, plus checks."""
    node = Node(value, prim, args, params, owner)
    site = _user_site()
    _SITES[node] = site
    if len(_SITES) >= _PRUNE_AT:
        _prune()
    if prim is not None:
        _check_forward(node, site)
    return node


# -- switching the mode ------------------------------------------------------------------------


def _bind_node(factory) -> None:
    # the op modules that build nodes call the name `Node`; rebinding it costs nothing when off
    for module in ops.MODULES:
        if "Node" in vars(module):
            module.Node = factory


def _switch(on: bool) -> None:
    global _DEPTH
    with _LOCK:
        if on:
            _DEPTH += 1
            if _DEPTH == 1:
                _bind_node(_checked_node)
                autograd.OBSERVERS.append(_check_backward)
        elif _DEPTH > 0:
            _DEPTH -= 1
            if _DEPTH == 0:
                _bind_node(Node)
                if _check_backward in autograd.OBSERVERS:
                    autograd.OBSERVERS.remove(_check_backward)
                _SITES.clear()


def is_anomaly_enabled() -> bool:
    """True while ``detect_anomaly`` (or ``set_detect_anomaly(True)``) is in effect."""
    return _DEPTH > 0


def set_detect_anomaly(mode: bool) -> None:
    """Switch anomaly detection on or off for the whole process (PyTorch's name).

    ``set_detect_anomaly(True)`` enters the mode once; ``set_detect_anomaly(False)`` leaves
    it completely, even when ``detect_anomaly`` regions are still open.
    """
    global _DEPTH
    if mode:
        _switch(True)
    else:
        with _LOCK:
            _DEPTH = min(_DEPTH, 1)
        _switch(False)


class detect_anomaly:
    """Check every recorded operation for NaN and infinity (context manager or decorator).

    Example::

        with mx.detect_anomaly():
            loss = loss_fn(model(x), y)   # a forward NaN/inf raises here
            loss.backward()               # a backward NaN/inf raises here

    The first bad value raises ``AnomalyError`` (a ``FloatingPointError``) naming the
    operation, its input shapes and your line that created it. The mode slows every operation
    down (each output is scanned, each creation site looked up and remembered while its node
    is in use): use it to find a problem, not to train.
    """

    def __new__(cls, *args):
        self = super().__new__(cls)
        if len(args) == 1 and callable(args[0]):  # used bare: @detect_anomaly
            return self(args[0])
        return self

    def __enter__(self) -> detect_anomaly:
        _switch(True)
        return self

    def __exit__(self, *exc) -> None:
        _switch(False)

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with detect_anomaly():
                return fn(*args, **kwargs)

        return wrapped
