"""PyTorch's random functions: ``torch.manual_seed``, ``randn``, ``rand``, ``randint``, ``Generator``.

Draws without a ``generator=`` come from ``mx.random``'s global state, so ``manual_seed``,
``mx.random.seed`` and ``chainrule.seed`` all make them repeat.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core.extend import from_value
from chainrule.core.tensor_functions import check_device, device_of, to_np_dtype

from ._creation import _I64, _finish, _float, _size

array = mx.array

SEED: dict = {"initial": None}
"""The seed last given to ``manual_seed`` (or ``torch.seed``), for ``torch.initial_seed``."""


class Generator:
    """A private random stream (``torch.Generator``), usable by ``randn``, ``DataLoader``...

    Attributes:
        rng: the ``numpy.random.Generator`` it draws from (reseeded in place, so loaders
            holding it see ``manual_seed``).
    """

    def __init__(self, device: Any = "cpu") -> None:
        check_device(device, "Generator")
        self._seed = secrets.randbits(63)
        self.rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed``; returns the generator."""
        self._seed = int(seed)
        self.rng.bit_generator.state = np.random.default_rng(self._seed).bit_generator.state
        return self

    def seed(self) -> int:
        """Reseed from a fresh random number and return it."""
        s = secrets.randbits(63)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the stream last started from."""
        return self._seed

    def get_state(self) -> dict:
        """The stream's state (a dict, where PyTorch has a byte tensor)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> Generator:
        """Restore a state from ``get_state``."""
        self.rng.bit_generator.state = state
        return self


def manual_seed(seed: int) -> None:
    """Seed the global random state shared with ``mx.random.seed``.

    Args:
        seed: the seed; later draws (``randn``, shuffling ``DataLoader``s, layer
            initialisations) repeat exactly.
    """
    mx.random.seed(int(seed))
    SEED["initial"] = int(seed)


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
    d = to_np_dtype(dtype, _float())
    if generator is None:
        out = mx.random.normal(shape, dtype=_dt.from_np(d))
    else:
        out = from_value(generator.rng.standard_normal(shape).astype(d))
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
    d = to_np_dtype(dtype, _float())
    if generator is None:
        out = mx.random.uniform(0.0, 1.0, shape, dtype=_dt.from_np(d))
    else:
        out = from_value(generator.rng.random(shape).astype(d))
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
    if generator is None:
        out = mx.random.randint(low, high, shape, dtype=mx.int64)
        out = out if d == _I64 else from_value(out._data.astype(d))
    else:
        out = from_value(generator.rng.integers(low, high, size=shape).astype(d))
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
    if generator is None:
        out = from_value(mx.random.permutation(int(n))._data.astype(d))
    else:
        out = from_value(generator.rng.permutation(int(n)).astype(d))
    return _finish(out, False, device, "randperm")


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
