"""PyTorch's random functions: ``torch.manual_seed``, ``randn``, ``rand``, ``randint``, ``Generator``.

Draws come from PyTorch's CPU generator, reproduced draw for draw
(``chainrule.core.torch_generator``): after ``manual_seed(s)`` they are the numbers PyTorch
gives. ``manual_seed``, ``mx.random.seed`` and ``chainrule.seed`` reseed it together with
``mx.random``'s global state (the two are coupled: ``mx.random.get_state`` saves both), so all
three make every draw repeat.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core import torch_generator as _tg
from chainrule.core.backend import on_default
from chainrule.core.extend import from_value
from chainrule.core.tensor_functions import check_device, device_of, to_np_dtype
from chainrule.core.torch_generator import CPUGenerator

from ._creation import _I64, _finish, _float, _size

array = mx.array


class Generator:
    """A random stream (``torch.Generator``): PyTorch's CPU generator, draw for draw.

    Attributes:
        rng: the stream itself (a ``chainrule.core.torch_generator.CPUGenerator``; it also
            answers the ``numpy.random.Generator`` calls that ``DataLoader`` and
            ``random_split`` make, with PyTorch's algorithms).
    """

    def __init__(self, device: Any = "cpu", *, _rng: CPUGenerator | None = None) -> None:
        check_device(device, "Generator")
        self.device = device
        self.rng = CPUGenerator() if _rng is None else _rng

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed``; returns the generator."""
        self.rng.manual_seed(int(seed))
        return self

    def seed(self) -> int:
        """Reseed from a fresh random number and return it."""
        s = secrets.randbits(63)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the stream last started from (67280421310721 for a new one, as PyTorch)."""
        return self.rng.initial_seed()

    def get_state(self) -> dict:
        """The stream's state (a dict, where PyTorch has a byte tensor)."""
        return self.rng.state

    def set_state(self, state: dict) -> Generator:
        """Restore a state from ``get_state``."""
        self.rng.state = state
        return self


default_generator = Generator(_rng=_tg.DEFAULT)
"""``torch.default_generator``: what draws without ``generator=`` use (seeded from fresh
entropy at import, as PyTorch's; a new ``Generator()`` starts from 67280421310721)."""

_stream = _tg.stream  # (its state travels with mx.random's: core/torch_generator.py couples them)


def uniform_array(shape: tuple, low: float, high: float, dtype: Any = None) -> array:
    """``torch.empty(shape, dtype).uniform_(low, high)`` from the default stream, on the
    default device: what PyTorch's layers initialise their parameters with (float32 by
    default)."""
    d = np.dtype(np.float32) if dtype is None else to_np_dtype(dtype)
    return from_value(on_default(_stream(None).uniform(tuple(shape), d, low, high)))


def normal_array(shape: tuple, mean: float = 0.0, std: float = 1.0, dtype: Any = None) -> array:
    """``torch.empty(shape, dtype).normal_(mean, std)`` from the default stream."""
    d = np.dtype(np.float32) if dtype is None else to_np_dtype(dtype)
    return from_value(on_default(_stream(None).normal(tuple(shape), d, mean, std)))


def manual_seed(seed: int) -> Generator:
    """Seed PyTorch's default generator, and ``mx.random``'s global state with it.

    Args:
        seed: the seed; later draws (``randn``, shuffling ``DataLoader``s, layer
            initialisations) repeat exactly, and are PyTorch's.

    Returns:
        ``default_generator``.
    """
    s = int(seed)
    mx.random.seed(s % (1 << 64))  # (reseeds default_generator too: they are coupled)
    return default_generator


def randn(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Standard normal draws (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        generator: a private stream; the global state when omitted.
        dtype: a floating dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array of shape ``size``.
    """
    shape = _size(size, "randn")
    d = _floating(to_np_dtype(dtype, _float()), "randn")
    out = from_value(_stream(generator).normal(shape, d))
    return _finish(out, requires_grad, device, "randn")


def rand(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Uniform draws in ``[0, 1)`` (float32 by default).

    Args:
        *size: the shape, as integers or one sequence.
        generator: a private stream; the global state when omitted.
        dtype: a floating dtype.
        device: only the CPU.
        requires_grad: make the result a leaf that records operations.

    Returns:
        A new array of shape ``size``.
    """
    shape = _size(size, "rand")
    d = _floating(to_np_dtype(dtype, _float()), "rand")
    out = from_value(_stream(generator).uniform(shape, d))
    return _finish(out, requires_grad, device, "rand")


def randint(
    *args: Any,
    size: Any = None,
    generator: Generator | None = None,
    dtype: Any = None,
    device: Any = None,
    requires_grad: bool = False,
) -> array:
    """Integers drawn uniformly from ``[low, high)``: ``randint(low=0, high, size)`` (int64).

    Args:
        *args: ``(high, size)`` or ``(low, high, size)``; ``size`` may also be a keyword.
        size: the shape (a sequence).
        generator: a private stream; the global state when omitted.
        dtype: the result dtype (int64 by default).
        device: only the CPU.
        requires_grad: accepted for signature compatibility (integers cannot require it).

    Returns:
        A new array of shape ``size``.
    """
    if size is None:
        if not args:
            raise TypeError("randint: missing the size argument, e.g. randint(0, 10, (3,))")
        *args, size = args
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = int(low), int(high)
    if high <= low:
        raise ValueError(f"randint: need low < high, got low={low}, high={high}")
    shape = _size((size,), "randint")
    d = to_np_dtype(dtype, _I64)
    out = from_value(_stream(generator).integers(low, high, shape, d))
    return _finish(out, requires_grad, device, "randint")


def randperm(
    n: int, *, generator: Generator | None = None, dtype: Any = None, device: Any = None
) -> array:
    """A random permutation of ``0..n-1`` (int64).

    Args:
        n: the length.
        generator: a private stream; the global state when omitted.
        dtype: the result dtype (int64 by default).
        device: only the CPU.

    Returns:
        A new 1-D array.
    """
    check_device(device, "randperm")
    d = to_np_dtype(dtype, _I64)
    if int(n) < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    out = from_value(_stream(generator).permutation(int(n)).astype(d))
    return _finish(out, False, device, "randperm")


def _floating(d: np.dtype, who: str) -> np.dtype:
    """``d`` when it is a floating dtype, else PyTorch's error."""
    if _dt.kind(d) != "f":
        raise RuntimeError(f"{who}: expected a floating point dtype, got {d}")
    return d


def _like(rand_fn):
    def like(input: array, *, dtype: Any = None, requires_grad: bool = False, **kw) -> array:
        d = input.dtype if dtype is None else dtype
        kw.setdefault("device", device_of(input))  # input's device, as PyTorch
        return rand_fn(*input.shape, dtype=d, requires_grad=requires_grad, **kw)

    like.__name__ = like.__qualname__ = rand_fn.__name__ + "_like"
    like.__doc__ = f"``{rand_fn.__name__}`` with the shape (and dtype) of ``input``."
    return like


randn_like = _like(randn)
rand_like = _like(rand)
