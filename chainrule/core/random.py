"""Random numbers with MLX's names: a global seedable state, and explicit keys.

A key is a ``uint32`` array of shape ``(2,)``. Every function takes ``key=``; without it
the draw comes from the global generator, which ``seed(n)`` resets so that every later
draw is reproducible. ``seed(n)`` also seeds NumPy's global generator (``np.random.*``) and
Python's ``random`` module, so one call fixes every draw a training script usually makes.

A ``DataLoader`` worker thread draws from a generator of its own, seeded for each batch from
the loader's seed and the batch's position (``use_thread_generator``), so the numbers a batch
gets do not depend on which thread fetched it or when.
"""

from __future__ import annotations

import math
import random as _py_random
import threading

from . import dtypes as _dt
from . import ops
from .array import _from_value, array
from .backend import xp

__all__ = [
    "seed",
    "key",
    "split",
    "normal",
    "uniform",
    "randint",
    "bernoulli",
    "truncated_normal",
    "categorical",
    "permutation",
    "gumbel",
    "multivariate_normal",
    "laplace",
]


class _Global:
    __slots__ = ("rng",)

    def __init__(self) -> None:
        self.rng = xp.random.default_rng()


_G = _Global()
# A DataLoader worker thread's own generator (see ``use_thread_generator``).
_LOCAL = threading.local()


def _current():
    """The generator that draws without ``key=``: the thread's own, else the global one."""
    rng = getattr(_LOCAL, "rng", None)
    return _G.rng if rng is None else rng


def seed(s: int) -> None:
    """Seed every global random source a training script draws from.

    Resets chainrule's global generator (initialisation, dropout, ``DataLoader`` shuffling),
    NumPy's global generator (``np.random.rand`` and friends) and Python's ``random`` module,
    so that a script run twice with the same seed draws the same numbers.

    Args:
        s: A non-negative integer.
    """
    s = int(s)
    if s < 0:
        raise ValueError(f"seed: the seed must be a non-negative integer, got {s}")
    _G.rng = xp.random.default_rng(s)
    # NumPy's legacy global generator takes at most 32 bits: larger seeds are hashed down.
    xp.random.seed(s if s < 2**32 else xp.random.SeedSequence(s).generate_state(4))
    _py_random.seed(s)


def get_state() -> dict:
    """The state of the generator that draws without ``key=`` (for checkpoints)."""
    return _current().bit_generator.state


def set_state(state: dict) -> None:
    """Restore a state returned by ``get_state``."""
    rng = xp.random.default_rng()
    rng.bit_generator.state = state
    if getattr(_LOCAL, "rng", None) is None:
        _G.rng = rng
    else:
        _LOCAL.rng = rng


def use_thread_generator(rng) -> None:
    """Make this thread draw from ``rng`` (a ``numpy.random.Generator``); ``None`` undoes it.

    ``DataLoader`` worker threads call it before each batch, so random augmentations written
    with ``mx.random`` are reproducible whatever thread fetches the batch.

    Args:
        rng: The generator, or ``None`` to draw from the global generator again.
    """
    _LOCAL.rng = rng


def key(s: int) -> array:
    """A key for explicit, reproducible draws."""
    s = int(s)
    return _from_value(xp.array([(s >> 32) & 0xFFFFFFFF, s & 0xFFFFFFFF], dtype=xp.uint32))


def _rng(k):
    if k is None:
        rng = getattr(_LOCAL, "rng", None)
        return _G.rng if rng is None else rng
    data = ops._as(k)._data.astype(xp.uint64).reshape(-1)
    return xp.random.default_rng([int(v) for v in data])


def split(k, num: int = 2) -> array:
    """``num`` new keys derived from ``k`` (shape ``(num, 2)``)."""
    r = _rng(k)
    return _from_value(r.integers(0, 2**32, size=(num, 2), dtype=xp.uint64).astype(xp.uint32))


def _shape(shape) -> tuple:
    if shape is None:
        return ()
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def _float_dtype(dtype):
    d = _dt.to_np(dtype if dtype is not None else _dt.float32)
    if d.kind != "f":
        raise ValueError(f"random: dtype must be floating, not {d}")
    return d


def uniform(low=0.0, high=1.0, shape=(), dtype=None, key=None, stream=None) -> array:
    """Uniform draws in ``[low, high)``."""
    d = _float_dtype(dtype)
    lo, hi = ops._as(low)._data, ops._as(high)._data
    shape = _shape(shape) if shape != () else xp.broadcast_shapes(xp.shape(lo), xp.shape(hi))
    u = _rng(key).random(size=shape, dtype=xp.float64 if d == xp.float64 else xp.float32)
    return _from_value((lo + (hi - lo) * u).astype(d, copy=False))


def normal(shape=(), dtype=None, loc=0.0, scale=1.0, key=None, stream=None) -> array:
    """Normal draws with mean ``loc`` and standard deviation ``scale``."""
    d = _float_dtype(dtype)
    z = _rng(key).standard_normal(
        size=_shape(shape), dtype=xp.float64 if d == xp.float64 else xp.float32
    )
    if loc != 0.0 or scale != 1.0:
        z = z * ops._as(scale)._data + ops._as(loc)._data
    return _from_value(xp.asarray(z).astype(d, copy=False))


def randint(low, high, shape=(), dtype=None, key=None, stream=None) -> array:
    """Integer draws in ``[low, high)`` (int32 by default)."""
    d = _dt.to_np(dtype if dtype is not None else _dt.int32)
    lo, hi = ops._as(low)._data, ops._as(high)._data
    shape = _shape(shape) if shape != () else xp.broadcast_shapes(xp.shape(lo), xp.shape(hi))
    return _from_value(_rng(key).integers(lo, hi, size=shape).astype(d))


def bernoulli(p=0.5, shape=None, key=None, stream=None) -> array:
    """Boolean draws that are true with probability ``p``."""
    pd = ops._as(p)._data
    shape = xp.shape(pd) if shape is None else _shape(shape)
    return _from_value(_rng(key).random(size=shape) < pd)


def truncated_normal(lower, upper, shape=None, dtype=None, key=None, stream=None) -> array:
    """Standard normal draws truncated to ``[lower, upper]``."""
    d = _float_dtype(dtype)
    lo, hi = ops._as(lower)._data.astype(xp.float64), ops._as(upper)._data.astype(xp.float64)
    shape = xp.broadcast_shapes(lo.shape, hi.shape) if shape is None else _shape(shape)
    erf = xp.vectorize(math.erf)
    a, b = erf(lo / math.sqrt(2)), erf(hi / math.sqrt(2))
    u = _rng(key).uniform(size=shape)
    v = a + (b - a) * u
    out = ops.erfinv(_from_value(xp.clip(v, -1 + 1e-12, 1 - 1e-12)))._data * math.sqrt(2)
    return _from_value(xp.clip(out, lo, hi).astype(d))


def gumbel(shape=(), dtype=None, key=None, stream=None) -> array:
    """Standard Gumbel draws."""
    d = _float_dtype(dtype)
    u = _rng(key).random(size=_shape(shape))
    return _from_value((-xp.log(-xp.log(xp.clip(u, 1e-20, 1.0)))).astype(d))


def categorical(logits, axis: int = -1, shape=None, num_samples=None, key=None, stream=None):
    """Class draws from unnormalised log-probabilities along ``axis``."""
    lg = ops._as(logits)._data
    ax = axis % lg.ndim
    batch = lg.shape[:ax] + lg.shape[ax + 1 :]
    if num_samples is not None:
        shape = batch + (num_samples,)
        lg_b = xp.expand_dims(xp.moveaxis(lg, ax, -1), -2)
    else:
        shape = batch if shape is None else _shape(shape)
        lg_b = xp.moveaxis(lg, ax, -1)
    g = _rng(key).gumbel(size=tuple(shape) + (lg.shape[ax],))
    return _from_value(xp.argmax(lg_b + g, axis=-1).astype(xp.uint32))


def permutation(x, axis: int = 0, key=None, stream=None) -> array:
    """A random permutation of ``range(x)`` (int) or of ``x`` along ``axis``."""
    r = _rng(key)
    if isinstance(x, int):
        return _from_value(r.permutation(x).astype(xp.int32))
    a = ops._as(x)
    idx = r.permutation(a.shape[axis])
    return ops.take(a, _from_value(idx), axis)


def laplace(shape=(), dtype=None, loc=0.0, scale=1.0, key=None, stream=None) -> array:
    """Laplace draws."""
    d = _float_dtype(dtype)
    return _from_value(_rng(key).laplace(loc, scale, size=_shape(shape)).astype(d))


def multivariate_normal(mean, cov, shape=(), dtype=None, key=None, stream=None) -> array:
    """Multivariate normal draws."""
    d = _float_dtype(dtype)
    m, c = ops._as(mean)._data, ops._as(cov)._data
    out = _rng(key).multivariate_normal(m, c, size=_shape(shape) or None)
    return _from_value(out.astype(d))
