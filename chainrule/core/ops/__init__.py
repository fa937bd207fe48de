"""The op table: every primitive with its NumPy forward, its VJP and its batching rule.

A primitive is declared once, with ``defprim(name, vjp_0, vjp_1, ..., batch=rule)``: one VJP
rule per input, in autograd's ``g, ans, *inputs -> cotangent`` form, written with chainrule
operations so the backward pass can itself be differentiated, and the rule ``vmap`` batches
it with. A VJP rule returns a cotangent shaped like the (broadcast) output; the engine sums
it back to the input's shape. Elementwise primitives are declared with ``_unary`` /
``_binary``, which supply the batching rule themselves. Composite operations (softmax, var,
sort, ...) are written with primitives and need no rules of their own.

The public operations (``mx.<name>``) and the ``array`` methods are registered where they
are defined (``@export``, ``@export(method=True)``, ``_unary(..., method=True)``); this
package's ``__all__`` and the methods are read from those registrations. The operations
live by domain: ``table`` (registration and recording), ``elementwise``, ``products``,
``reductions``, ``shapes``, ``indexing``, ``creation``, ``special`` (windows,
Hadamard); ``methods`` installs the operators.
docs/architecture.md walks through adding an operation.
"""

from __future__ import annotations

from . import (  # noqa: I001
    creation,
    elementwise,
    indexing,
    methods,
    normalization,
    products,
    reductions,
    shapes,
    special,
    table,
)
from .elementwise import _where_kernel  # noqa: F401  (compile's tests)
from .shapes import _out_of_range  # noqa: F401  (nn's label checks; see core.extend)
from .table import (
    _ARRAYS,
    CONSTANT_MAKERS,
    EXPORTS,
    METHODS,
    PRIMITIVES,
    VALUE_BRANCHES,
    Primitive,
    Unbatchable,
    _as,
    _rec,
    defprim,
    export,
)

MODULES = (table, elementwise, products, reductions, shapes, indexing, creation, special, methods)
"""The op modules, in import order (``detect_anomaly`` rebinds ``Node`` in each)."""

globals().update(EXPORTS)
__all__ = sorted(EXPORTS)
