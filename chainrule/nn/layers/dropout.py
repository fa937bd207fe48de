"""Dropout layers: active in training mode, the identity in evaluation mode."""

from __future__ import annotations

from ... import core as mx
from ...core.array import array
from ...core.tensor_functions import stream_of
from ..module import Module

__all__ = ["Dropout", "Dropout2d", "Dropout3d"]


def _keep(p: float, who: str) -> float:
    if not 0 <= p < 1:
        raise ValueError(f"{who}: the dropout probability p must be in [0, 1), got {p}")
    return 1.0 - p


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``.

    Args:
        p: the probability of zeroing an element.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p_1 = _keep(p, "Dropout")

    @property
    def p(self) -> float:
        """The drop probability (settable, as PyTorch code does with ``layer.p = 0.1``)."""
        return 1.0 - self._p_1

    @p.setter
    def p(self, value: float) -> None:
        self._p_1 = _keep(value, type(self).__name__)

    def _extra_repr(self) -> str:
        return f"p={self.p}"

    def __call__(self, x: array) -> array:
        if self._p_1 == 1 or not self._training:
            return x
        mask = mx.random.bernoulli(self._p_1, x.shape, stream=stream_of(x))
        return mx.where(mask, x * (1 / self._p_1), 0)


class _ChannelDropout(Module):
    _ndims: tuple = ()
    _spatial = 0

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self._p_1 = _keep(p, type(self).__name__)

    @property
    def p(self) -> float:
        """The drop probability (settable, as PyTorch code does with ``layer.p = 0.1``)."""
        return 1.0 - self._p_1

    @p.setter
    def p(self, value: float) -> None:
        self._p_1 = _keep(value, type(self).__name__)

    def _extra_repr(self) -> str:
        return f"p={self.p}"

    def __call__(self, x: array) -> array:
        if x.ndim not in self._ndims:
            raise ValueError(
                f"{type(self).__name__}: expected an input with "
                f"{' or '.join(map(str, self._ndims))} dimensions (channels last), got shape "
                f"{x.shape}"
            )
        if self._p_1 == 1 or not self._training:
            return x
        shape = list(x.shape)
        for i in range(2, 2 + self._spatial):
            shape[-i] = 1
        mask = mx.random.bernoulli(self._p_1, tuple(shape), stream=stream_of(x))
        return mx.where(mask, x * (1 / self._p_1), 0)


class Dropout2d(_ChannelDropout):
    """Zero whole channels of ``(N, H, W, C)`` or ``(H, W, C)`` inputs with probability ``p``.

    Args:
        p: the probability of zeroing a channel.
    """

    _ndims = (3, 4)
    _spatial = 2


class Dropout3d(_ChannelDropout):
    """Zero whole channels of ``(N, D, H, W, C)`` or ``(D, H, W, C)`` inputs with probability ``p``.

    Args:
        p: the probability of zeroing a channel.
    """

    _ndims = (4, 5)
    _spatial = 3
