"""Recurrent layers (MLX's ``RNN``, ``GRU`` and ``LSTM``): inputs ``(N, L, D)`` or ``(L, D)``."""

from __future__ import annotations

import math
from collections.abc import Callable

from ... import core as mx
from ...core.array import array
from ..module import Module
from .activations import tanh

__all__ = ["GRU", "LSTM", "RNN"]


def _uniform(scale: float, shape: tuple) -> array:
    return mx.random.uniform(-scale, scale, shape)


def _check_input(x: array, d: int, who: str) -> None:
    if x.ndim not in (2, 3) or x.shape[-1] != d:
        raise ValueError(
            f"{who}: expected an input of shape (N, L, {d}) or (L, {d}), got {x.shape}"
        )


class RNN(Module):
    """Elman recurrence ``h_t = f(W_xh x_t + W_hh h_{t-1} + b)``; returns every ``h_t``.

    Weights are drawn from ``U(-1/sqrt(H), 1/sqrt(H))``.

    Args:
        input_size: the input features ``D``.
        hidden_size: the hidden features ``H``.
        bias: learn a bias.
        nonlinearity: ``f`` (default :func:`tanh`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: Callable | None = None,
    ) -> None:
        super().__init__()
        self.nonlinearity = nonlinearity or tanh
        if not callable(self.nonlinearity):
            raise ValueError(f"RNN: nonlinearity must be callable, got {nonlinearity!r}")
        scale = 1.0 / math.sqrt(hidden_size)
        self.hidden_size = hidden_size
        self.Wxh = _uniform(scale, (hidden_size, input_size))
        self.Whh = _uniform(scale, (hidden_size, hidden_size))
        self.bias = _uniform(scale, (hidden_size,)) if bias else None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self['Wxh'].shape[1]}, hidden_size={self.hidden_size}, "
            f"nonlinearity={self.nonlinearity}, bias={self.bias is not None}"
        )

    def __call__(self, x: array, hidden: array | None = None) -> array:
        _check_input(x, self["Wxh"].shape[1], "RNN")
        if self.bias is not None:
            x = mx.addmm(self["bias"], x, self["Wxh"].T)
        else:
            x = x @ self["Wxh"].T
        whh_t = self["Whh"].T
        out = []
        for t in range(x.shape[-2]):
            pre = x[..., t, :]
            if hidden is not None:
                pre = mx.addmm(pre, hidden, whh_t)
            hidden = self.nonlinearity(pre)
            out.append(hidden)
        return mx.stack(out, axis=-2)


class GRU(Module):
    """Gated recurrent unit; returns every hidden state.

    ``r, z = sigmoid(W_x[r,z] x + W_h[r,z] h + b[r,z])``,
    ``n = tanh(W_xn x + b_n + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    Args:
        input_size: the input features ``D``.
        hidden_size: the hidden features ``H``.
        bias: learn biases.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wx = _uniform(scale, (3 * hidden_size, input_size))
        self.Wh = _uniform(scale, (3 * hidden_size, hidden_size))
        self.b = _uniform(scale, (3 * hidden_size,)) if bias else None
        self.bhn = _uniform(scale, (hidden_size,)) if bias else None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self['Wx'].shape[1]}, hidden_size={self.hidden_size}, "
            f"bias={self.b is not None}"
        )

    def __call__(self, x: array, hidden: array | None = None) -> array:
        _check_input(x, self["Wx"].shape[1], "GRU")
        H = self.hidden_size
        if self.b is not None:
            x = mx.addmm(self["b"], x, self["Wx"].T)
        else:
            x = x @ self["Wx"].T
        x_rz, x_n = x[..., : 2 * H], x[..., 2 * H :]
        wh_t = self["Wh"].T
        out = []
        for t in range(x.shape[-2]):
            rz = x_rz[..., t, :]
            n = x_n[..., t, :]
            if hidden is not None:
                h_proj = hidden @ wh_t
                h_rz, h_n = h_proj[..., : 2 * H], h_proj[..., 2 * H :]
                if self.bhn is not None:
                    h_n = h_n + self["bhn"]
                rz = rz + h_rz
            rz = mx.sigmoid(rz)
            r, z = rz[..., :H], rz[..., H:]
            if hidden is not None:
                n = n + r * h_n
            elif self.bhn is not None:  # no hidden state: W_hn h is zero but b_hn is not
                n = n + r * self["bhn"]
            n = mx.tanh(n)
            hidden = (1 - z) * n + z * hidden if hidden is not None else (1 - z) * n
            out.append(hidden)
        return mx.stack(out, axis=-2)


class LSTM(Module):
    """Long short-term memory; returns every hidden state and every cell state.

    Gates ``i, f, g, o`` come from ``W_x x + W_h h + b`` split in four (in that order);
    ``c' = f * c + i * g``, ``h' = o * tanh(c')``.

    Args:
        input_size: the input features ``D``.
        hidden_size: the hidden features ``H``.
        bias: learn a bias.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wx = _uniform(scale, (4 * hidden_size, input_size))
        self.Wh = _uniform(scale, (4 * hidden_size, hidden_size))
        self.bias = _uniform(scale, (4 * hidden_size,)) if bias else None

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self['Wx'].shape[1]}, hidden_size={self.hidden_size}, "
            f"bias={self.bias is not None}"
        )

    def __call__(
        self, x: array, hidden: array | None = None, cell: array | None = None
    ) -> tuple[array, array]:
        _check_input(x, self["Wx"].shape[1], "LSTM")
        H = self.hidden_size
        if self.bias is not None:
            x = mx.addmm(self["bias"], x, self["Wx"].T)
        else:
            x = x @ self["Wx"].T
        wh_t = self["Wh"].T
        hs, cs = [], []
        for t in range(x.shape[-2]):
            ifgo = x[..., t, :]
            if hidden is not None:
                ifgo = mx.addmm(ifgo, hidden, wh_t)
            i = mx.sigmoid(ifgo[..., :H])
            f = mx.sigmoid(ifgo[..., H : 2 * H])
            g = mx.tanh(ifgo[..., 2 * H : 3 * H])
            o = mx.sigmoid(ifgo[..., 3 * H :])
            cell = f * cell + i * g if cell is not None else i * g
            hidden = o * mx.tanh(cell)
            hs.append(hidden)
            cs.append(cell)
        return mx.stack(hs, axis=-2), mx.stack(cs, axis=-2)
