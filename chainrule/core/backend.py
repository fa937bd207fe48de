"""The one door to the array library.

Every kernel in the op table reaches NumPy through ``xp`` defined here, so another
NumPy-compatible library (CuPy for a GPU) can later be swapped in without touching
the op table. Nothing else in ``chainrule.core`` imports NumPy for computation.
"""

from __future__ import annotations

import numpy

xp = numpy
"""The array namespace the kernels call (``xp.add``, ``xp.matmul``, ...)."""

ndarray = numpy.ndarray


def asarray(value, dtype=None):
    """Convert ``value`` to a backend array without copying when possible."""
    return xp.asarray(value, dtype=dtype)


def to_numpy(value):
    """Return ``value`` as a NumPy array (a no-op on the NumPy backend)."""
    return numpy.asarray(value)
