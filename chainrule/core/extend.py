"""The public door for code that builds on the engine: layers, losses, optimizers, the torch facade.

Everything outside ``chainrule/core`` that makes arrays from backend values, records
primitives or walks the graph imports it from here (a test checks that no module outside
core imports a private core name). The names are stable; what they stand for inside core
may move.

Making arrays:
    ``from_value(value, node=None)`` wraps a backend array (NumPy, or CuPy on a GPU) in a new
    ``array`` without copying or converting (the hot constructor); ``as_array(x)`` converts
    Python data, NumPy arrays and arrays alike with MLX's rules; ``new_array(cls)`` makes an
    empty instance of ``array`` or a subclass, for code that fills its slots itself.
    ``BACKEND_ARRAYS`` are the backend's array types (``type(v) in BACKEND_ARRAYS``).

Adding an operation (see docs/architecture.md, "Adding an operation"):
    ``defprim(name, *vjps, batch=rule)`` registers a primitive with its VJP rules and its
    batching rule; ``record(prim, out, inputs, params)`` wraps a kernel's result and records
    the node when an input is being differentiated; ``Primitive`` is the table's entry type
    (a primitive kept out of the table, such as a collective, is built with it directly);
    ``kernel`` marks a function that must be one step under ``mx.compile``;
    ``out_of_range(d, n)`` is the compile-safe range check of integer labels.

The recording state: ``STATE`` (per thread: ``enabled``, ``depth`` of transforms, ``doors``,
the depth of calls through the tensor doors of chainrule.torch and the layers).

The graph:
    ``Node`` (a recorded value: ``value``, ``prim``, ``args``, ``params``),
    ``backward_pass(root, cotangent, targets, retain)``, ``seed_cotangent(out, cotangent, who)``,
    ``OBSERVERS`` (callables run for every cotangent of a backward pass),
    ``value_and_grad_of_leaves(fun, params, args, kwargs, who)`` (the fast path of
    ``nn.value_and_grad``: differentiate at ``requires_grad`` leaves' own nodes).

Convolution helpers: ``as_tuple(value, n, name, who, minimum)``,
``sliding_windows(x, kernel, stride, dilation, who)``.
"""

from __future__ import annotations

from .array import STATE, Node, array
from .array import _from_value as from_value
from .array import _new as new_array
from .autograd import OBSERVERS, backward_pass
from .autograd import _seed as seed_cotangent
from .autograd import _value_and_grad_of_leaves as value_and_grad_of_leaves
from .backend import xp
from .conv import _tuple as as_tuple
from .fast import _exporting
from .ops.shapes import _out_of_range as out_of_range
from .ops.table import _ARRAYS as BACKEND_ARRAYS
from .ops.table import Primitive, defprim
from .ops.table import _as as as_array
from .ops.table import _rec as record
from .pooling import _sliding_windows as sliding_windows
from .tracing import kernel

__all__ = [
    "BACKEND_ARRAYS",
    "STATE",
    "Node",
    "OBSERVERS",
    "Primitive",
    "array",
    "as_array",
    "as_tuple",
    "backward_pass",
    "defprim",
    "from_value",
    "is_exporting",
    "kernel",
    "new_array",
    "out_of_range",
    "record",
    "seed_cotangent",
    "sliding_windows",
    "value_and_grad_of_leaves",
    "xp",
]


def is_exporting() -> bool:
    """Whether ``mx.export_function`` is tracing right now: a kernel that is not a primitive
    of the op table (a layer's own loop) should take its recorded form then, since an export
    names only NumPy calls and ``chainrule.core`` kernels."""
    return _exporting()
