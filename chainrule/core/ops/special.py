"""Odds and ends of MLX's API: window functions, the Hadamard transform, ``depends`` and
``empty_like`` (fp8 conversion lives with the quantization in ``core/quantized.py``)."""

from __future__ import annotations

import math

from .. import dtypes as _dt
from ..array import _from_value, array
from ..backend import array_module, xp
from .table import (
    defprim,
    export,
)

# -- window functions (NumPy's definitions, float32 as in MLX) -------------------------------


def _window(fn, m: int) -> array:
    m = int(m)
    if m < 0:
        raise ValueError(f"window: the length must be non-negative, got {m}")
    return _from_value(xp.asarray(fn(m), dtype=xp.float32))


@export
def bartlett(M: int, stream=None) -> array:
    """The Bartlett (triangular) window of ``M`` points."""
    return _window(xp.bartlett, M)


@export
def blackman(M: int, stream=None) -> array:
    """The Blackman window of ``M`` points."""
    return _window(xp.blackman, M)


@export
def hamming(M: int, stream=None) -> array:
    """The Hamming window of ``M`` points."""
    return _window(xp.hamming, M)


@export
def hanning(M: int, stream=None) -> array:
    """The Hann window of ``M`` points."""
    return _window(xp.hanning, M)


# -- the Walsh-Hadamard transform -----------------------------------------------------------

# Hadamard matrices of orders 12, 20 and 28 from N. J. A. Sloane's library
# (neilsloane.com/hadamard), the ones MLX uses, so that a length of m * 2^k (m in 12, 20, 28)
# transforms as MLX does: by the Kronecker product of this matrix and Sylvester's of 2^k.
# "+" is 1, "-" is -1; row j of the matrix is the string's row j.
_SLOANE = {
    12: (
        "+-++++++++++",
        "--+-+-+-+-+-",
        "+++-++----++",
        "+---+--+-++-",
        "+++++-++----",
        "+-+---+--+-+",
        "++--+++-++--",
        "+--++---+--+",
        "++----+++-++",
        "+--+-++---+-",
        "++++----+++-",
        "+-+--+-++---",
    ),
    20: (
        "+----+----++--++-++-",
        "-+----+---+++---+-++",
        "--+----+---+++-+-+-+",
        "---+----+---+++++-+-",
        "----+----++--++-++-+",
        "-+++++-----+--+++--+",
        "+-+++-+---+-+--+++--",
        "++-++--+---+-+--+++-",
        "+++-+---+---+-+--+++",
        "++++-----++--+-+--++",
        "--++-+-++-+-----++++",
        "---++-+-++-+---+-+++",
        "+---++-+-+--+--++-++",
        "++---++-+----+-+++-+",
        "-++---++-+----+++++-",
        "-+--+--++-+----+----",
        "+-+-----++-+----+---",
        "-+-+-+---+--+----+--",
        "--+-+++------+----+-",
        "+--+--++------+----+",
    ),
    28: (
        "+------++----++-+--+-+--++--",
        "-+-----+++-----+-+--+-+--++-",
        "--+-----+++---+-+-+----+--++",
        "---+-----+++---+-+-+-+--+--+",
        "----+-----+++---+-+-+++--+--",
        "-----+-----++++--+-+--++--+-",
        "------++----++-+--+-+--++--+",
        "--++++-+-------++--+++-+--+-",
        "---++++-+-----+-++--+-+-+--+",
        "+---+++--+----++-++--+-+-+--",
        "++---++---+----++-++--+-+-+-",
        "+++---+----+----++-++--+-+-+",
        "++++--------+-+--++-++--+-+-",
        "-++++--------+++--++--+--+-+",
        "-+-++-++--++--+--------++++-",
        "+-+-++--+--++--+--------++++",
        "-+-+-++--+--++--+----+---+++",
        "+-+-+-++--+--+---+---++---++",
        "++-+-+-++--+------+--+++---+",
        "-++-+-+-++--+------+-++++---",
        "+-++-+---++--+------+-++++--",
        "-++--++-+-++-+++----++------",
        "+-++--++-+-++-+++-----+-----",
        "++-++---+-+-++-+++-----+----",
        "-++-++-+-+-+-+--+++-----+---",
        "--++-++++-+-+----+++-----+--",
        "+--++-+-++-+-+----+++-----+-",
        "++--++-+-++-+-+----++------+",
    ),
}
_MATRICES: dict = {}


def _sloane(m: int):
    """Sloane's Hadamard matrix of order ``m`` as a float64 NumPy array (built once)."""
    h = _MATRICES.get(m)
    if h is None:
        import numpy as np

        h = np.array([[1.0 if c == "+" else -1.0 for c in row] for row in _SLOANE[m]])
        _MATRICES[m] = h
    return h


def _split_length(n: int) -> tuple[int, int]:
    """``(m, 2^k)`` with ``n = m * 2^k`` and ``m`` in 1, 12, 20, 28 (MLX's choice: the first
    of 12, 20, 28 that divides a length that is not a power of two)."""
    m = 1
    if n & (n - 1):
        m = next((f for f in _SLOANE if n % f == 0), 1)
    p = n // m
    if p & (p - 1) or (m == 1 and n & (n - 1)):
        raise ValueError(
            f"hadamard_transform: the last axis has length {n}; only m * 2^k with m in "
            "(1, 12, 20, 28) is supported"
        )
    return m, p


def _fwht(d, scale: float, transposed: bool = False):
    """The Hadamard transform of the last axis (length ``m * 2^k``), scaled: Sylvester's
    butterflies over each block of ``2^k``, then Sloane's order-``m`` matrix (or its
    transpose) across the ``m`` blocks."""
    shape = d.shape
    n = shape[-1] if d.ndim else 1
    m, p = _split_length(n)
    y = d.reshape(-1, p)
    h = 1
    while h < p:
        y = y.reshape(y.shape[0], p // (2 * h), 2, h)
        lo, hi = y[:, :, 0, :], y[:, :, 1, :]
        y = xp.stack([lo + hi, lo - hi], axis=2)
        h *= 2
    if m > 1:
        # (accumulated in float32 at least, as MLX's kernel accumulates in float)
        work = xp.result_type(y.dtype, xp.float32) if y.dtype.kind in "fc" else xp.dtype("float32")
        mat = array_module(d).asarray(_sloane(m).T if transposed else _sloane(m), dtype=work)
        y = (mat @ y.reshape(-1, m, p).astype(work, copy=False)) * work.type(scale)
        return y.astype(d.dtype, copy=False).reshape(shape)
    y = y.reshape(shape)
    return y * y.dtype.type(scale)


def _hadamard_vjp(g, ans, x, scale, transposed=False):
    # The scaled matrix's transpose: Sylvester's part is symmetric, Sloane's 20 and 28 are
    # not (MLX's rule applies the forward matrix again; this is the gradient).
    return _transform(g, scale, not transposed)


def _hadamard_batch(args, params, ex_ndim):
    ((x, nd),) = args
    if nd == 0:
        return _as(x) * params["scale"]
    return _transform(x, params["scale"], params.get("transposed", False))


_HADAMARD = defprim("hadamard_transform", _hadamard_vjp, batch=_hadamard_batch)


def _transform(a, scale: float, transposed: bool) -> array:
    a = _as(a)
    d = a._data
    if d.dtype.kind not in "fcV":  # V: bfloat16
        d = d.astype(xp.float32)
        a = _from_value(d)
    params = {"scale": scale, "transposed": True} if transposed else {"scale": scale}
    return _rec(_HADAMARD, _fwht(d, scale, transposed), (a,), params)


@export
def hadamard_transform(a, scale: float | None = None, stream=None) -> array:
    """The Hadamard transform along the last axis, times ``scale`` (default ``1 / sqrt(n)``).

    The last axis has length ``n = m * 2^k`` with ``m`` in 1, 12, 20 or 28: Sylvester's
    (Walsh-Hadamard) matrix for powers of two, its Kronecker product with Sloane's matrix of
    order ``m`` otherwise, as MLX. Integer inputs give float32."""
    a = _as(a)
    d = a._data
    if d.size == 0:
        raise ValueError("hadamard_transform: the input is empty")
    n = d.shape[-1] if d.ndim else 1
    _split_length(n)
    scale = 1.0 / math.sqrt(n) if scale is None else float(scale)
    if n == 1 and scale == 1.0:
        return a  # (nothing to do, whatever the dtype: MLX returns its input)
    return _transform(a, scale, False)


# -- graph helpers ----------------------------------------------------------------------------


@export
def depends(inputs, dependencies):
    """``inputs`` unchanged (MLX's ``depends`` orders evaluation; chainrule is eager)."""
    return inputs


@export
def empty_like(a, dtype=None, stream=None) -> array:
    """An array shaped like ``a`` (its dtype unless ``dtype`` is given); the values are
    zeros here."""
    d = _as(a)._data
    return _from_value(xp.zeros(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .table import _as, _rec  # noqa: E402
