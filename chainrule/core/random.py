"""Random numbers with MLX's names: a global seedable state, and explicit keys.

A key is a ``uint32`` array of shape ``(2,)`` (``key(s)`` holds the high and low 32 bits of
``s``). Every function takes ``key=``: the same key always gives the same draw. Without it the
draw comes from the global generator, which ``seed(n)`` resets so that every later draw is
reproducible. ``seed(n)`` also seeds NumPy's global generator (``np.random.*``) and Python's
``random`` module, so one call fixes every draw a training script usually makes.

``state`` is MLX's ``mx.random.state``: a list holding the global generator's key. Pass it to
``mx.compile(inputs=mx.random.state, outputs=mx.random.state)`` so that a compiled function
draws fresh numbers on every call; ``seed(n)`` puts ``key(n)`` there, and putting a key there
yourself (``mx.random.state[0] = k``) reseeds the global generator from ``k``, as ``seed``
would. The generator itself is NumPy's (PCG64): draws are not bit-identical to MLX's threefry
draws, and a draw does not replace ``state[0]`` (``get_state``/``set_state`` save and restore
the generator mid-stream, as checkpoints do).

A ``DataLoader`` worker thread draws from a generator of its own, seeded for each batch from
the loader's seed and the batch's position (``use_thread_generator``), so the numbers a batch
gets do not depend on which thread fetched it or when.
"""

from __future__ import annotations

import functools
import math
import random as _py_random
import secrets
import threading
from typing import Any

from . import backend as _backend
from . import dtypes as _dt
from . import ops
from .array import _from_value, array, note_origin
from .backend import DEFAULT_XP as _DEFAULT_XP
from .backend import array_module as _array_module
from .backend import as_array as _as_array
from .backend import on_default as _on_default
from .backend import scalar_if_0d as _scalar_if_0d
from .backend import via_host as _via_host
from .backend import xp


def _to_host(v):
    return _backend.to_host(v) if _backend.is_gpu(v) else v


__all__ = [
    "state",
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

_SQRT2 = math.sqrt(2.0)


def _key_value(s: int):
    return xp.array([(s >> 32) & 0xFFFFFFFF, s & 0xFFFFFFFF], dtype=xp.uint32)


class _Global:
    __slots__ = ("rng", "key")

    def __init__(self) -> None:
        s = secrets.randbits(64)
        self.rng = xp.random.default_rng(s)
        self.key = _from_value(_key_value(s))


_G = _Global()
state: list = [_G.key]
"""The global random state, as MLX's ``mx.random.state``: a list holding one key."""
# A DataLoader worker thread's own generator (see ``use_thread_generator``).
_LOCAL = threading.local()


def _sync() -> None:
    """Reseed the global generator from ``state[0]`` when someone put a new key there."""
    if not state:  # emptied by hand: the generator goes on as it was
        state.append(_G.key)
        return
    k = state[0]
    if k is _G.key:
        return
    hi, lo = _key_words(k, "random.state")
    _G.rng = xp.random.default_rng((hi << 32) | lo)
    _G.key = k


def _current():
    """The generator that draws without ``key=``: the thread's own, else the global one."""
    rng = getattr(_LOCAL, "rng", None)
    if rng is not None:
        return rng
    if not state or state[0] is not _G.key:
        _sync()
    return _G.rng


class _Coupled:
    """A generator above core that the global state carries along (``chainrule.torch``'s,
    which draws PyTorch's numbers): ``seed`` reseeds it, ``get_state``/``set_state`` save
    and restore it under ``name``, ``use_thread_generator`` gives a worker thread its own."""

    __slots__ = ("name", "seed", "get", "set", "thread")

    def __init__(self, name: str, seed, get, set_, thread) -> None:
        self.name, self.seed, self.get, self.set, self.thread = name, seed, get, set_, thread


_COUPLED: list[_Coupled] = []


def couple(name: str, seed, get, set_, thread) -> None:
    """Carry another generator along with the global state (see :class:`_Coupled`).

    Args:
        name: the key of its state in :func:`get_state`'s dictionary.
        seed: ``seed(s)``, called by :func:`seed`.
        get: ``get()``, its state (JSON-friendly values or NumPy arrays).
        set_: ``set_(state)``, restores what ``get`` returned.
        thread: ``thread(rng)``, called by :func:`use_thread_generator` with the thread's
            ``numpy.random.Generator`` (or ``None``).
    """
    _COUPLED[:] = [c for c in _COUPLED if c.name != name]
    _COUPLED.append(_Coupled(name, seed, get, set_, thread))


def seed(s: int) -> None:
    """Seed every global random source a training script draws from.

    Resets chainrule's global generator (initialisation, dropout, ``DataLoader`` shuffling),
    NumPy's global generator (``np.random.rand`` and friends) and Python's ``random`` module,
    so that a script run twice with the same seed draws the same numbers. ``state[0]``
    becomes ``key(s)``.

    Args:
        s: A non-negative integer.
    """
    s = int(s)
    if s < 0:
        raise ValueError(f"seed: the seed must be a non-negative integer, got {s}")
    _G.rng = xp.random.default_rng(s)
    _G.key = _from_value(_key_value(s))
    if state:
        state[0] = _G.key
    else:
        state.append(_G.key)
    # NumPy's legacy global generator takes at most 32 bits: larger seeds are hashed down.
    xp.random.seed(s if s < 2**32 else xp.random.SeedSequence(s).generate_state(4))
    _py_random.seed(s)
    for c in _COUPLED:
        c.seed(s)


def get_state() -> dict:
    """The state of the generator that draws without ``key=`` (for checkpoints), with those of
    the generators coupled to it (``chainrule.torch``'s) under their names."""
    st = _current().bit_generator.state
    if _COUPLED:
        st = dict(st)
        for c in _COUPLED:
            st[c.name] = c.get()
    return st


def set_state(state: dict) -> None:
    """Restore a state returned by ``get_state``."""
    state = dict(state)
    for c in _COUPLED:
        part = state.pop(c.name, None)
        if part is not None:
            c.set(part)
    rng = xp.random.default_rng()
    rng.bit_generator.state = state
    if getattr(_LOCAL, "rng", None) is None:
        _current()  # take in a key put into ``state`` first, so it does not override this
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
    for c in _COUPLED:
        c.thread(rng)


def key(seed: int) -> array:
    """A key for explicit, reproducible draws: ``uint32`` ``[seed >> 32, seed & 0xFFFFFFFF]``.

    Args:
        seed: an integer (taken modulo 2**64).

    Returns:
        The key, shape ``(2,)``, on the default device.
    """
    return _from_value(_on_default(_key_value(int(seed))))


def _key_words(k: Any, who: str) -> tuple[int, int]:
    data = ops._as(k)._data
    if data.dtype != xp.uint32:
        raise ValueError(f"[{who}] Expected key type uint32 but received {data.dtype}.")
    if data.shape != (2,):
        raise ValueError(f"[{who}] Expected key shape (2) but received {data.shape}.")
    return int(data[0]), int(data[1])


class _OnDevice:
    """A NumPy generator whose draws land on the default device (the GPU): the same key gives
    the same numbers on every device, drawn on the host and copied over once."""

    __slots__ = ("rng",)

    def __init__(self, rng) -> None:
        self.rng = rng

    def __getattr__(self, name: str):
        fn = getattr(self.rng, name)

        def draw(*args, **kwargs):
            args = tuple(_to_host(a) for a in args)
            kwargs = {k: _to_host(v) for k, v in kwargs.items()}
            return _on_default(fn(*args, **kwargs))

        return draw


def _rng(k, who: str = "random"):
    r = _current() if k is None else xp.random.default_rng(list(_key_words(k, who)))
    return r if _DEFAULT_XP[0] is xp else _OnDevice(r)


def split(key: array, num: int = 2, stream: Any = None) -> array:
    """Split a key into ``num`` new keys (the same key always splits the same way).

    Args:
        key: the key to split.
        num: how many keys.
        stream: accepted for MLX compatibility.

    Returns:
        The keys, shape ``(num, 2)``.
    """
    r = _rng(key, "split")
    return _from_value(r.integers(0, 2**32, size=(num, 2), dtype=xp.uint64).astype(xp.uint32))


# -------------------------------------------------------------------------------- helpers


def _shape(shape, who: str) -> tuple:
    if shape is None:
        return ()
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"[{who}] Negative dimensions are not allowed: {shape}.")
    return shape


def _is_float(d) -> bool:
    return d.kind == "f" or (_dt.bfloat16 is not _dt.float32 and d == _dt.bfloat16.np)


def _float_dtype(dtype, who: str):
    d = _dt.to_np(dtype if dtype is not None else _dt.float32)
    if not _is_float(d):
        raise ValueError(f"[{who}] dtype must be a real floating type, not {d}")
    return d


def _work(d):
    """The precision to draw in for a result of dtype ``d``."""
    return xp.float64 if d == xp.float64 else xp.float32


def _below_one(d) -> float:
    """The largest value of dtype ``d`` below 1 (uniform draws stay below ``high``)."""
    bits = {2: 11, 4: 24, 8: 53}[d.itemsize] if d.kind == "f" else 8  # bfloat16: 8 bits
    return 1.0 - 2.0**-bits


def _cast(x, d):
    """A bound or scale of dtype ``d`` (a NumPy scalar when 0-d: GPU draws take scalars)."""
    return _scalar_if_0d(ops._as(x)._data.astype(d, copy=False))


def _check_broadcast(shape: tuple, *shapes: tuple, who: str) -> None:
    try:
        out = xp.broadcast_shapes(shape, *shapes)
    except ValueError:
        out = None
    if out != shape:
        raise ValueError(
            f"[{who}] Cannot generate random values of shape {shape} from broadcasted shapes "
            f"{list(shapes)}."
        )


# ---------------------------------------------------------------------------- distributions


def uniform(
    low: Any = 0.0,
    high: Any = 1.0,
    shape: Any = (),
    dtype: Any = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Uniform draws in ``[low, high)``.

    Args:
        low: the lower bound (a scalar or an array broadcastable to ``shape``).
        high: the upper bound.
        shape: the result's shape (default: the shape ``low`` and ``high`` broadcast to).
        dtype: a real floating type (float32 by default).
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    d = _float_dtype(dtype, "uniform")
    lo, hi = _cast(low, d), _cast(high, d)
    bshape = xp.broadcast_shapes(lo.shape, hi.shape)
    shape = _shape(shape, "uniform")
    if shape == ():
        shape = bshape
    _check_broadcast(shape, bshape, who="uniform")
    u = _rng(key, "uniform").random(size=shape, dtype=_work(d))
    u = xp.minimum(u, _below_one(d)).astype(d, copy=False)
    return _from_value(_as_array(lo + (hi - lo) * u).astype(d, copy=False))


def normal(
    shape: Any = (),
    dtype: Any = None,
    loc: Any = None,
    scale: Any = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Normal draws with mean ``loc`` and standard deviation ``scale``.

    ``complex64`` draws a standard complex normal (real and imaginary parts each of variance
    1/2); ``loc`` may then be complex.

    Args:
        shape: the draws' shape (``loc``/``scale`` broadcast against it).
        dtype: a real floating type or complex64 (float32 by default).
        loc: the mean (a scalar or an array), 0 by default.
        scale: the standard deviation, 1 by default.
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    shape = _shape(shape, "normal")
    d = _dt.to_np(dtype if dtype is not None else _dt.float32)
    r = _rng(key, "normal")
    if d == xp.complex64:
        z = r.standard_normal(size=shape + (2,), dtype=xp.float32) / xp.float32(_SQRT2)
        z = _array_module(z).ascontiguousarray(z).view(xp.complex64)[..., 0]
        if scale is not None:
            z = _scalar_if_0d(ops._as(scale)._data) * z
        if loc is not None:
            z = _scalar_if_0d(ops._as(loc)._data) + z
        return _from_value(_as_array(z).astype(xp.complex64, copy=False))
    if not _is_float(d):
        raise ValueError(f"[normal] Only floating point and complex64 types are supported, not {d}")
    z = r.standard_normal(size=shape, dtype=_work(d)).astype(d, copy=False)
    if scale is not None:
        z = z * _cast(scale, d)
    if loc is not None:
        z = z + _cast(loc, d)
    return _from_value(_as_array(z).astype(d, copy=False))


def laplace(
    shape: Any = (),
    dtype: Any = None,
    loc: float = 0.0,
    scale: float = 1.0,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Laplace draws (by the inverse CDF of a uniform draw, as MLX).

    Args:
        shape: the draws' shape.
        dtype: a real floating type (float32 by default).
        loc: the location.
        scale: the scale.
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    d = _float_dtype(dtype, "laplace")
    u = _rng(key, "laplace").uniform(
        -_below_one(xp.dtype(xp.float64)), 1.0, size=_shape(shape, "laplace")
    )
    z = (xp.sign(u) * xp.log1p(-xp.abs(u))).astype(d)
    if scale != 1.0:
        z = z * _cast(scale, d)
    if loc != 0.0:
        z = z + _cast(loc, d)
    return _from_value(_as_array(z).astype(d, copy=False))


def randint(
    low: Any,
    high: Any,
    shape: Any = (),
    dtype: Any = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Integer draws in ``[low, high)`` (int32 by default); ``low`` where ``high <= low``.

    Args:
        low: the lower bound, included (a scalar or an array).
        high: the upper bound, excluded.
        shape: the result's shape (default: the shape ``low`` and ``high`` broadcast to).
        dtype: an integer type or bool.
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    d = _dt.to_np(dtype if dtype is not None else _dt.int32)
    if d.kind not in "biu":
        raise ValueError("[randint] randint only accepts integer dtypes and bool.")
    lo, hi = ops._as(low)._data, ops._as(high)._data
    lo = (xp.floor(lo) if lo.dtype.kind == "f" else lo).astype(xp.int64)
    hi = (xp.ceil(hi) if hi.dtype.kind == "f" else hi).astype(xp.int64)
    bshape = xp.broadcast_shapes(lo.shape, hi.shape)
    shape = _shape(shape, "randint")
    if shape == ():
        shape = bshape
    _check_broadcast(shape, bshape, who="randint")
    empty = hi <= lo
    draws = _rng(key, "randint").integers(lo, xp.where(empty, lo + 1, hi), size=shape)
    if empty.any():
        draws = xp.where(_scalar_if_0d(empty), _scalar_if_0d(lo), draws)
    return _from_value(_as_array(draws).astype(d))


def bernoulli(
    p: Any = 0.5, shape: Any = None, key: array | None = None, stream: Any = None
) -> array:
    """Boolean draws that are true with probability ``p``.

    Args:
        p: the probability, a float or a floating array (broadcastable to ``shape``).
        shape: the result's shape (default: ``p``'s).
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws, bool.
    """
    if isinstance(p, (bool, int)):
        raise ValueError("[bernoulli] bernoulli probability `p` must be a float type.")
    pd = ops._as(p)._data
    if not _is_float(pd.dtype):
        raise ValueError("[bernoulli] bernoulli probability `p` must be a float type.")
    shape = pd.shape if shape is None else _shape(shape, "bernoulli")
    _check_broadcast(shape, pd.shape, who="bernoulli")
    return _from_value(_rng(key, "bernoulli").random(size=shape) < pd)


def truncated_normal(
    lower: Any,
    upper: Any,
    shape: Any = None,
    dtype: Any = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Standard normal draws truncated to ``[lower, upper]`` (``lower`` where they cross).

    Args:
        lower: the lower bound (a scalar or an array).
        upper: the upper bound.
        shape: the result's shape (default: the bounds' broadcast shape).
        dtype: a real floating type (float32 by default).
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    d = _float_dtype(dtype, "truncated_normal")
    lo, hi = _cast(lower, d), _cast(upper, d)
    bshape = xp.broadcast_shapes(lo.shape, hi.shape)
    shape = bshape if shape is None else _shape(shape, "truncated_normal")
    _check_broadcast(shape, bshape, who="truncated_normal")
    erf = xp.vectorize(math.erf, otypes=[xp.float64])  # NumPy-only: on the host
    a = _scalar_if_0d(_via_host(erf, lo.astype(xp.float64) / _SQRT2))
    b = _scalar_if_0d(_via_host(erf, hi.astype(xp.float64) / _SQRT2))
    u = _rng(key, "truncated_normal").uniform(size=shape)
    v = xp.clip(a + (b - a) * u, -1 + 1e-12, 1 - 1e-12)
    out = (ops.erfinv(_from_value(v))._data * _SQRT2).astype(d)
    return _from_value(_as_array(xp.maximum(xp.minimum(hi, out), lo)).astype(d, copy=False))


def gumbel(
    shape: Any = (), dtype: Any = None, key: array | None = None, stream: Any = None
) -> array:
    """Standard Gumbel draws (``-log(-log(u))`` of a uniform ``u``).

    Args:
        shape: the draws' shape.
        dtype: a real floating type (float32 by default).
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws.
    """
    d = _float_dtype(dtype, "gumbel")
    u = _rng(key, "gumbel").random(size=_shape(shape, "gumbel"))
    return _from_value((-xp.log(-xp.log(xp.clip(u, 1e-20, 1.0)))).astype(d))


def categorical(
    logits: Any,
    axis: int = -1,
    shape: Any = None,
    num_samples: int | None = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Class draws from unnormalised log-probabilities along ``axis``.

    Args:
        logits: the log-probabilities (any real dtype).
        axis: the class axis.
        shape: the draws' shape (broadcast-compatible with ``logits`` less ``axis``).
        num_samples: draws per distribution (the result gets a last axis of that length);
            exclusive with ``shape``.
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        Class indices, uint32.
    """
    if shape is not None and num_samples is not None:
        raise ValueError("[categorical] At most one of shape or num_samples can be specified.")
    la = ops._as(logits)
    lg = la._data
    if not -lg.ndim <= axis < lg.ndim:
        raise ValueError(f"[categorical] Invalid axis {axis} for logits with {lg.ndim} dimensions.")
    ax = axis % lg.ndim
    batch = lg.shape[:ax] + lg.shape[ax + 1 :]
    if num_samples is not None:
        shape = batch + (int(num_samples),)
        lg_b = xp.expand_dims(xp.moveaxis(lg, ax, -1), -2)
    else:
        shape = batch if shape is None else _shape(shape, "categorical")
        _check_broadcast(shape, batch, who="categorical")
        lg_b = xp.moveaxis(lg, ax, -1)
    g = _rng(key, "categorical").gumbel(size=tuple(shape) + (lg.shape[ax],))
    out = _array_module(lg).asarray(xp.argmax(lg_b + g, axis=-1), dtype=xp.uint32)  # 0-d: array
    if la._node is not None:  # a token drawn from a recorded graph: mx.eval releases it
        note_origin(out, la._node)
    return _from_value(out)


def permutation(x: Any, axis: int = 0, key: array | None = None, stream: Any = None) -> array:
    """A random permutation of ``range(x)`` (an int) or of ``x``'s entries along ``axis``.

    Args:
        x: an int, or an array.
        axis: the axis to permute along.
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The permutation (int32 for an int), or ``x`` permuted.
    """
    r = _rng(key, "permutation")
    if isinstance(x, int):
        return _from_value(r.permutation(x).astype(xp.int32))
    a = ops._as(x)
    idx = r.permutation(a.shape[axis])
    return ops.take(a, _from_value(idx), axis)


def multivariate_normal(
    mean: Any,
    cov: Any,
    shape: Any = (),
    dtype: Any = None,
    key: array | None = None,
    stream: Any = None,
) -> array:
    """Multivariate normal draws (``cov``'s square root by an SVD, as MLX).

    Args:
        mean: the means, shape ``(..., n)``.
        cov: the covariance matrices, shape ``(..., n, n)``.
        shape: the batch shape, broadcast with the batch shapes of ``mean`` and ``cov``.
        dtype: float32 (float64 is also accepted).
        key: a key for an explicit draw.
        stream: accepted for MLX compatibility.

    Returns:
        The draws, shape ``broadcast(shape, batch shapes) + (n,)``.
    """
    d = _dt.to_np(dtype if dtype is not None else _dt.float32)
    if d not in (xp.dtype(xp.float32), xp.dtype(xp.float64)):
        raise ValueError("[multivariate_normal] dtype must be float32.")
    m, c = ops._as(mean)._data, ops._as(cov)._data
    if m.ndim < 1:
        raise ValueError("[multivariate_normal] mean must have at least one dimension.")
    if c.ndim < 2:
        raise ValueError("[multivariate_normal] cov must have at least two dimensions.")
    n = m.shape[-1]
    if c.shape[-1] != c.shape[-2]:
        raise ValueError("[multivariate_normal] last two dimensions of cov must be equal.")
    if n != c.shape[-1]:
        raise ValueError("[multivariate_normal] mean and cov must have compatible shapes.")
    out_shape = xp.broadcast_shapes(
        c.shape[:-2], m.shape[:-1], _shape(shape, "multivariate_normal")
    )
    u, s, vh = xp.linalg.svd(c.astype(xp.float64))
    std = (u * xp.sqrt(s)[..., None, :]) @ vh
    z = _rng(key, "multivariate_normal").standard_normal(size=out_shape + (n,))
    out = m + (z[..., None, :] @ std)[..., 0, :]
    return _from_value(_as_array(out).astype(d))


def _on_stream(fn):
    """``fn`` with MLX's ``stream=`` honoured: the draws land on that stream's device (drawn
    as on the default device, then moved once, so a key gives the same numbers anywhere)."""

    @functools.wraps(fn)
    def call(*args: Any, stream: Any = None, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        if stream is None:
            return out
        from .devices import move, namespace_of

        kind = "cpu" if namespace_of(stream) is xp else "gpu"
        return move(out, kind)

    return call


split = _on_stream(split)
normal = _on_stream(normal)
uniform = _on_stream(uniform)
randint = _on_stream(randint)
bernoulli = _on_stream(bernoulli)
truncated_normal = _on_stream(truncated_normal)
categorical = _on_stream(categorical)
permutation = _on_stream(permutation)
gumbel = _on_stream(gumbel)
multivariate_normal = _on_stream(multivariate_normal)
laplace = _on_stream(laplace)
