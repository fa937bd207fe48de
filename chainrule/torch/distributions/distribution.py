"""The ``Distribution`` base class, its argument checks, and the shared numerical helpers.

Parameters are tensors broadcast against each other (``broadcast_all``); ``batch_shape`` and
``event_shape`` follow PyTorch. With ``validate_args`` (on by default, as PyTorch under
``__debug__``) parameters are checked against ``arg_constraints`` when the distribution is
made, and values against ``support`` in ``log_prob``, raising PyTorch's ``ValueError``.

Draws come from the global random state (``torch.manual_seed`` repeats them): each draw takes
a fresh NumPy generator seeded from it. ``rsample`` is reparameterised (differentiable with
respect to the parameters); ``sample`` is ``rsample`` without recording, or a direct draw for
distributions without ``rsample``. ``lgamma``/``digamma`` are differentiable composites
(Lanczos approximation; recurrence plus asymptotic series), accurate to about 1e-13 relative in
float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core import torch_generator as _tg
from chainrule.core.extend import array, from_value

from . import constraints

__all__ = ["Distribution", "broadcast_all", "lazy_property", "lgamma", "digamma"]


def _default_dtype():
    try:
        from .._creation import get_default_dtype

        return get_default_dtype()
    except ImportError:  # pragma: no cover
        return mx.float32


def _tensor(x: Any, dtype: Any = None) -> array:
    if isinstance(x, array):
        return x
    from .. import _creation

    return _creation.tensor(x, dtype=dtype if dtype is not None else _default_dtype())


def broadcast_all(*values: Any) -> tuple:
    """Tensors and numbers broadcast to one shape; numbers take the tensors' dtype (PyTorch)."""
    tensors = [v for v in values if isinstance(v, array)]
    for v in values:
        if not isinstance(v, (array, int, float)) or isinstance(v, bool):
            raise ValueError(
                "Input arguments must all be instances of numbers.Number or torch.tensor, got "
                f"{type(v).__name__}"
            )
    dtype = tensors[0].dtype if tensors else None
    ts = [_tensor(v, dtype) for v in values]
    shape = np.broadcast_shapes(*[tuple(t.shape) for t in ts])
    return tuple(t if tuple(t.shape) == shape else mx.broadcast_to(t, shape) for t in ts)


def _rng() -> np.random.Generator:
    """A NumPy generator seeded from PyTorch's default stream (``torch.manual_seed``), for the
    samplers whose PyTorch algorithm is not reproduced (gamma, Poisson, ...)."""
    return np.random.default_rng(_tg.stream().words(4))


def _dt_of(like: array) -> np.dtype:
    """The dtype a sample of ``like``'s parameters is drawn in."""
    return np.dtype(like._data.dtype)


def _torch_stream():
    """PyTorch's default stream: ``Normal``, ``Uniform``, ``Laplace``, ``Exponential``,
    ``Bernoulli`` and ``MultivariateNormal`` draw from it as PyTorch's do."""
    return _tg.stream()


def _draw(values: np.ndarray, like: array) -> array:
    """Drawn (or constant) host values as a tensor of ``like``'s dtype on ``like``'s device (one
    explicit host-to-device copy for a CUDA ``like``)."""
    host = np.asarray(values).astype(np.dtype(like._data.dtype))
    return _const(backend.same_device(host, like._data))


def _host(t: Any, dtype: Any = None) -> np.ndarray:
    """Tensor ``t``'s values as a NumPy array for a host-side draw: an explicit device-to-host
    copy for a CUDA tensor, no copy on the CPU (beyond ``dtype``'s conversion)."""
    data = backend.to_host(t._data if isinstance(t, array) else t)
    return data if dtype is None else data.astype(dtype, copy=False)


def _const(values: np.ndarray) -> array:
    """A backend value as a ``chainrule.torch.Tensor`` (what PyTorch code receives)."""
    from .._tensor_class import tensors

    return tensors(from_value(values))


def _finfo(t: array):
    return np.finfo(np.dtype(t._data.dtype))


# -- special functions (differentiable composites) -------------------------------------------

_LANCZOS = (
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
)


def _lgamma_pos(x: array) -> array:
    z = x - 1
    a = _LANCZOS[0]
    for i in range(1, 9):
        a = a + _LANCZOS[i] / (z + i)
    t = z + 7.5
    return 0.5 * math.log(2 * math.pi) + (z + 0.5) * mx.log(t) - t + mx.log(a)


def lgamma(x: Any) -> array:
    """``log|Gamma(x)|``, differentiable (reflection below 0.5)."""
    x = _tensor(x)
    small = x < 0.5
    xr = mx.where(small, 1 - x, x)
    big = _lgamma_pos(xr)
    refl = math.log(math.pi) - mx.log(mx.abs(mx.sin(math.pi * x))) - big
    return mx.where(small, refl, big)


def digamma(x: Any) -> array:
    """The digamma function ``d/dx log Gamma(x)`` for ``x > 0``, differentiable."""
    x = _tensor(x)
    shift = 0
    for k in range(6):
        shift = shift + 1 / (x + k)
    y = x + 6
    y2 = 1 / (y * y)
    series = y2 * (1 / 12 - y2 * (1 / 120 - y2 * (1 / 252 - y2 * (1 / 240 - y2 * (5 / 660)))))
    return mx.log(y) - 0.5 / y - series - shift


def xlogy(x: Any, y: Any) -> array:
    """``x * log(y)``, 0 where ``x == 0``."""
    x, y = _tensor(x), _tensor(y)
    safe = mx.where(x == 0, mx.ones_like(y), y)
    return mx.where(x == 0, mx.zeros_like(x * safe), x * mx.log(safe))


def softplus(x: array) -> array:
    """``log(1 + exp(x))`` computed stably (derivative ``sigmoid(x)`` everywhere, 0 included)."""
    return mx.logaddexp(mx.zeros_like(x), x)


def probs_to_logits(probs: array, is_binary: bool = False) -> array:
    """PyTorch's ``probs_to_logits``: probabilities clamped away from 0 and 1 first."""
    eps = float(_finfo(probs).eps)
    p = mx.clip(probs, eps, 1 - eps)
    return mx.log(p) - mx.log1p(-p) if is_binary else mx.log(p)


def logits_to_probs(logits: array, is_binary: bool = False) -> array:
    """PyTorch's ``logits_to_probs``: sigmoid (binary) or softmax over the last dimension."""
    return mx.sigmoid(logits) if is_binary else mx.softmax(logits, axis=-1)


class lazy_property:
    """A parameter computed from another on first use and then stored on the instance
    (``probs`` from ``logits`` and back), as PyTorch's ``lazy_property``."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.name = fn.__name__

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


# -- the base class ----------------------------------------------------------------------------


class Distribution:
    """Base class of probability distributions (PyTorch's ``torch.distributions``)."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = __debug__
    arg_constraints: dict = {}
    support: Any = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        """Switch argument validation on or off for distributions made afterwards."""
        if value not in (True, False):
            raise ValueError("set_default_validate_args: value must be True or False")
        Distribution._validate_args = value

    def __init__(
        self, batch_shape: tuple = (), event_shape: tuple = (), validate_args: bool | None = None
    ) -> None:
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            for param, constraint in self.arg_constraints.items():
                if constraints.is_dependent(constraint):
                    continue
                if param not in self.__dict__ and not isinstance(
                    getattr(type(self), param, None), property
                ):
                    continue  # not given: computed from another parameter (probs from logits)
                value = getattr(self, param)
                valid = constraint.check(value)
                if not bool(mx.all(valid)):
                    raise ValueError(
                        f"Expected parameter {param} ({type(value).__name__} of shape "
                        f"{tuple(value.shape)}) of distribution {self!r} to satisfy the "
                        f"constraint {constraint!r}, but found invalid values:\n{_value(value)}"
                    )

    @property
    def batch_shape(self) -> tuple:
        """The shape over which parameters are batched."""
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        """The shape of one sample."""
        return self._event_shape

    @property
    def mean(self) -> array:
        """The mean."""
        raise NotImplementedError

    @property
    def mode(self) -> array:
        """The mode."""
        raise NotImplementedError(f"{type(self)} does not implement mode")

    @property
    def variance(self) -> array:
        """The variance."""
        raise NotImplementedError

    @property
    def stddev(self) -> array:
        """The standard deviation."""
        return mx.sqrt(self.variance)

    def _extended_shape(self, sample_shape: Any = ()) -> tuple:
        if isinstance(sample_shape, int):
            sample_shape = (sample_shape,)
        return tuple(sample_shape) + self._batch_shape + self._event_shape

    def sample(self, sample_shape: Any = ()) -> array:
        """Draw without recording (a ``sample_shape`` batch of samples)."""
        with mx.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: Any = ()) -> array:
        """Draw with the reparameterisation trick (differentiable in the parameters)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement rsample")

    def sample_n(self, n: int) -> array:
        """``sample((n,))`` (deprecated in PyTorch)."""
        return self.sample((n,))

    def log_prob(self, value: array) -> array:
        """The log density (or mass) at ``value``."""
        raise NotImplementedError

    def cdf(self, value: array) -> array:
        """The cumulative distribution function."""
        raise NotImplementedError

    def icdf(self, value: array) -> array:
        """The inverse of ``cdf``."""
        raise NotImplementedError

    def entropy(self) -> array:
        """The entropy, one value per batch element."""
        raise NotImplementedError

    def perplexity(self) -> array:
        """``exp(entropy)``."""
        return mx.exp(self.entropy())

    def enumerate_support(self, expand: bool = True) -> array:
        """Every value of a discrete support."""
        raise NotImplementedError

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        """The distribution with its parameters broadcast to ``batch_shape``."""
        batch_shape = tuple(batch_shape)
        new = type(self).__new__(type(self))
        for k, v in self.__dict__.items():
            new.__dict__[k] = v
        for name in self.arg_constraints:
            if name in self.__dict__ and isinstance(self.__dict__[name], array):
                v = self.__dict__[name]
                extra = tuple(v.shape[len(self._batch_shape) :])
                new.__dict__[name] = mx.broadcast_to(v, batch_shape + extra)
        new._batch_shape = batch_shape
        return new

    def _validate_sample(self, value: Any) -> None:
        if not isinstance(value, array):
            raise ValueError("The value argument to log_prob must be a Tensor")
        event_dim_start = len(value.shape) - len(self._event_shape)
        if tuple(value.shape[event_dim_start:]) != self._event_shape:
            raise ValueError(
                f"The right-most size of value must match event_shape: {tuple(value.shape)} vs "
                f"{self._event_shape}."
            )
        actual = tuple(value.shape)
        expected = self._batch_shape + self._event_shape
        for i, j in zip(reversed(actual), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(
                    f"Value is not broadcastable with batch_shape+event_shape: {actual} vs "
                    f"{expected}."
                )
        support = self.support
        if support is None:
            return
        valid = support.check(value)
        if not bool(mx.all(valid)):
            raise ValueError(
                f"Expected value argument ({type(value).__name__} of shape {tuple(value.shape)}) "
                f"to be within the support ({support!r}) of the distribution {self!r}, but found "
                f"invalid values:\n{_value(value)}"
            )

    def __repr__(self) -> str:
        names = [k for k in self.arg_constraints if k in self.__dict__]
        args = ", ".join(f"{p}: {_short(self.__dict__[p])}" for p in names)
        return f"{type(self).__name__}({args})"


def _value(v: Any) -> str:
    """A tensor as PyTorch's f-strings show it (a 0-d tensor as its number)."""
    return str(v.item()) if isinstance(v, array) and v.ndim == 0 else str(v)


def _short(v: Any) -> str:
    """How PyTorch's messages show a tensor: a one-element tensor by value (0-d as a number),
    a larger one by its size."""
    if not isinstance(v, array):
        return str(v)
    if v.size == 1:
        return str(v.item()) if v.ndim == 0 else str(v)
    return f"torch.Size({list(v.shape)})"
