"""``mx.compile`` with MLX's signature.

For now it returns a function that runs eagerly: results and side effects (state
updates, random draws) are exactly those of the uncompiled function. A tracing
compiler that replays a flat program is the subject of the speed issue; see
docs/performance.md for its status.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

_DISABLED = [
    os.environ.get("CHAINRULE_DISABLE_COMPILE", os.environ.get("MLX_DISABLE_COMPILE", ""))
    not in ("", "0")
]


def compile(fun: Callable, inputs=None, outputs=None, shapeless: bool = False) -> Callable:
    """Return a compiled version of ``fun`` (MLX's ``mx.compile``).

    Args:
        fun: the function to compile.
        inputs: trees of arrays the function reads implicitly (e.g. a model's state).
        outputs: trees of arrays the function updates implicitly.
        shapeless: accepted for MLX code.

    Returns:
        A function with the same results as ``fun``.
    """

    @functools.wraps(fun)
    def compiled(*args, **kwargs):
        return fun(*args, **kwargs)

    compiled.__wrapped__ = fun
    return compiled


def disable_compile() -> None:
    """Run compiled functions eagerly (for debugging)."""
    _DISABLED[0] = True


def enable_compile() -> None:
    """Undo ``disable_compile``."""
    _DISABLED[0] = False
