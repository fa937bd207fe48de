"""PyTorch's recurrent layers: ``RNN``, ``LSTM`` (with ``proj_size``), ``GRU`` and their cells.

Layouts, parameter names and numbers are PyTorch's: inputs ``(T, N, D)`` (``(N, T, D)`` with
``batch_first``, ``(T, D)`` unbatched, or a ``PackedSequence``), states
``(num_layers * num_directions, N, H)``, parameters ``weight_ih_l{k}[_reverse]``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` and ``weight_hr_l{k}`` with PyTorch's
shapes and gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``), all drawn from
``U(-1/sqrt(H), 1/sqrt(H))``. So ``state_dict``s exchange with PyTorch.

Every sequence is run as time-major rows plus the number of sequences still running at each
step (``batch_sizes``): a padded batch has ``N`` at every step, a ``PackedSequence`` its own.
Each layer projects all its input rows with one matmul; a step does one matmul with the
hidden weights. Sequences that end drop out of the running rows (forward direction) or join
them (reverse direction), as PyTorch's packed kernels do.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import from_value
from chainrule.nn.layers.recurrent import gru_scan, lstm_sequence

from .._random import uniform_array
from .._tensor_class import tensors as _tensors
from ._module import Module
from .functional_misc import dropout as _dropout
from .utils.rnn import PackedSequence

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _zeros(shape: tuple, like: array) -> array:
    """Zeros of ``like``'s dtype on ``like``'s device (the default initial states)."""
    return mx.zeros(
        shape, dtype=like.dtype, stream=mx.gpu if backend.is_gpu(like._data) else mx.cpu
    )


# -- tensors in, tensors out (also through PackedSequence and (h, c) tuples) -----------------


def _plain(x: Any) -> Any:
    if isinstance(x, array):
        return from_value(x._data, x._node) if type(x) is not array else x
    if isinstance(x, PackedSequence):
        return PackedSequence(*(_plain(v) for v in x))
    if type(x) in (tuple, list):
        return type(x)(_plain(v) for v in x)
    return x


def _subclass_in(x: Any) -> bool:
    if isinstance(x, array):
        return type(x) is not array
    if isinstance(x, tuple):  # PackedSequence, (h, c)
        return any(_subclass_in(v) for v in x)
    return False


def _dtype_text(dtype: Any) -> str:
    return f"torch.{dtype}"


def _uniform_params(module: Module, names: list, dtype: Any) -> None:
    # PyTorch's reset_parameters: every weight and bias from U(-1/sqrt(H), 1/sqrt(H))
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    for name, shape in names:  # (in registration order: PyTorch's draws, one after another)
        setattr(module, name, uniform_array(shape, -stdv, stdv, dtype))


# -- one step of each cell (rows: the running sequences) -------------------------------------


def _step(mode: str, xw: array, state: tuple, w: dict) -> tuple:
    """One time step. ``xw`` is the input projection with ``b_ih`` (and, except for GRU,
    ``b_hh``) added; ``state`` is ``(h,)`` or ``(h, c)``."""
    h = state[0]
    if mode == "GRU":
        gh = h @ w["whh_t"] if w["b_hh"] is None else mx.addmm(w["b_hh"], h, w["whh_t"])
        H = h.shape[-1]
        rz = mx.sigmoid(xw[..., : 2 * H] + gh[..., : 2 * H])
        r, z = rz[..., :H], rz[..., H:]
        n = mx.tanh(xw[..., 2 * H :] + r * gh[..., 2 * H :])
        return ((1 - z) * n + z * h,)
    pre = mx.addmm(xw, h, w["whh_t"])
    if mode == "RNN_TANH":
        return (mx.tanh(pre),)
    if mode == "RNN_RELU":
        return (mx.maximum(pre, 0),)
    H = pre.shape[-1] // 4
    i = mx.sigmoid(pre[..., :H])
    f = mx.sigmoid(pre[..., H : 2 * H])
    g = mx.tanh(pre[..., 2 * H : 3 * H])
    o = mx.sigmoid(pre[..., 3 * H :])
    c = f * state[1] + i * g
    h = o * mx.tanh(c)
    if w["whr_t"] is not None:
        h = h @ w["whr_t"]
    return (h, c)


def _run_direction(
    mode: str, xw: array, sizes: list, offsets: list, state: tuple, w: dict, reverse: bool
) -> tuple[array, tuple]:
    """Run one direction of one layer over time-major rows ``xw`` (``sizes[t]`` running rows
    from ``offsets[t]``); returns the outputs (rows in ``xw``'s order) and the final state
    of every sequence."""
    steps = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    uniform = all(s == sizes[0] for s in sizes)
    outs: list = []
    done: list = []  # forward: states of sequences that ended, latest first
    cur = 0 if reverse else sizes[0]
    running = tuple(s[:0] for s in state) if reverse and not uniform else state
    for t in steps:
        bs = sizes[t]
        if not uniform:
            if reverse and bs > cur:  # sequences that start now (read backwards) join
                running = tuple(
                    mx.concatenate([r, s[cur:bs]], axis=0) for r, s in zip(running, state)
                )
            elif not reverse and bs < cur:  # sequences that ended leave
                done.append(tuple(r[bs:] for r in running))
                running = tuple(r[:bs] for r in running)
            cur = bs
        running = _step(mode, xw[offsets[t] : offsets[t] + bs], running, w)
        outs.append(running[0])
    if reverse:
        outs.reverse()
    final = running
    if done:
        final = tuple(
            mx.concatenate([f, *(d[k] for d in reversed(done))], axis=0)
            for k, f in enumerate(final)
        )
    return mx.concatenate(outs, axis=0), final


def _gru_direction(
    xw: array, sizes: list, state: tuple, w: dict, b_hh: Any, reverse: bool
) -> tuple[array, tuple]:
    """One direction of a GRU layer over equal-length sequences as one scan (``gru_scan``: a
    hand-written backward pass, one GEMM per step). (An LSTM layer's is ``lstm_sequence``.)"""
    steps, n = len(sizes), sizes[0]
    xw = mx.reshape(xw, (steps, n, xw.shape[-1]))
    if reverse:
        xw = xw[::-1]
    hs = gru_scan(xw, state[0], w["whh_t"], b_hh)
    final = (hs[-1],)
    if reverse:
        hs = hs[::-1]
    return mx.reshape(hs, (steps * n, hs.shape[-1])), final


class RNNBase(Module):
    """The shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU` (PyTorch's
    ``RNNBase``).

    Args:
        mode: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``.
        input_size: the input features.
        hidden_size: the hidden features.
        num_layers: stacked layers.
        bias: learn ``bias_ih`` and ``bias_hh``.
        batch_first: inputs and outputs are ``(N, T, *)``.
        dropout: dropout on each layer's output but the last, in training.
        bidirectional: add a reverse direction (parameters suffixed ``_reverse``).
        proj_size: LSTM only: project ``h`` to this size (``weight_hr_l{k}``).
        device: accepted for PyTorch code (the CPU).
        dtype: the parameters' dtype (float32 by default).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                f"{name}: dropout should be a number in range [0, 1] representing the "
                f"probability of an element being zeroed, got dropout={dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                "dropout expects num_layers greater than 1, but got "
                f"dropout={dropout} and num_layers={num_layers}",
                stacklevel=3,
            )
        for arg, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(
                    f"{name}: {arg} should be of type bool, got: {type(value).__name__}"
                )
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}: {arg} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name}: {arg} must be greater than zero, got {value}")
        if num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be greater than zero, got {num_layers}")
        if proj_size < 0:
            raise ValueError(
                f"{name}: proj_size should be a positive integer or zero to disable "
                f"projections, got {proj_size}"
            )
        if proj_size >= hidden_size:
            raise ValueError(
                f"{name}: proj_size has to be smaller than hidden_size, got proj_size="
                f"{proj_size} and hidden_size={hidden_size}"
            )
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate = _GATES[mode] * hidden_size
        out_size = proj_size or hidden_size
        dirs = 2 if bidirectional else 1
        shapes, groups = [], []
        for layer in range(num_layers):
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else out_size * dirs
                group = [
                    (f"weight_ih{suffix}", (gate, in_size)),
                    (f"weight_hh{suffix}", (gate, out_size)),
                ]
                if bias:
                    group += [(f"bias_ih{suffix}", (gate,)), (f"bias_hh{suffix}", (gate,))]
                if proj_size:
                    group.append((f"weight_hr{suffix}", (proj_size, hidden_size)))
                shapes += group
                groups.append([n for n, _ in group])
        object.__setattr__(self, "_flat_weights_names", [n for n, _ in shapes])
        object.__setattr__(self, "_all_weights", groups)
        _uniform_params(self, shapes, mx.float32 if dtype is None else dtype)

    # -- PyTorch's attributes ------------------------------------------------------------------
    @property
    def _flat_weights(self) -> list:
        return [self.get(n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        """The parameters, one list per layer and direction (PyTorch's ``all_weights``)."""
        return [[self[n] for n in group] for group in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op (PyTorch packs weights for cuDNN; there is no cuDNN here)."""

    def reset_parameters(self) -> None:
        """Draw every parameter again from ``U(-1/sqrt(H), 1/sqrt(H))``."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for n in self._flat_weights_names:
            p = self[n]
            p._set_value(uniform_array(p.shape, -stdv, stdv, p.dtype)._data)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- the call --------------------------------------------------------------------------------
    def _state_shapes(self, batch: int) -> list:
        n = self.num_layers * (2 if self.bidirectional else 1)
        out = self.proj_size or self.hidden_size
        shapes = [(n, batch, out)]
        if self.mode == "LSTM":
            shapes.append((n, batch, self.hidden_size))
        return shapes

    def _check_input(self, x: array, packed: bool) -> None:
        name = type(self).__name__
        w = self[self._flat_weights_names[0]]
        if x.dtype != w.dtype:
            raise ValueError(
                f"{name}: RNN input dtype ({_dtype_text(x.dtype)}) does not match weight dtype "
                f"({_dtype_text(w.dtype)}). Convert input: input.to({_dtype_text(w.dtype)}), or "
                f"convert model: model.to({_dtype_text(x.dtype)})"
            )
        if x.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {x.shape[-1]} (input shape {tuple(x.shape)}"
                + (", packed)" if packed else ")")
            )

    def _check_states(self, states: list, batch: int) -> None:
        expected = self._state_shapes(batch)
        for k, (s, shape) in enumerate(zip(states, expected)):
            if tuple(s.shape) != shape:
                which = f"hidden[{k}]" if self.mode == "LSTM" else "hidden"
                raise RuntimeError(
                    f"{type(self).__name__}: Expected {which} size {shape}, got {list(s.shape)}"
                )

    def forward(self, input: Any, hx: Any = None) -> tuple:
        """Run the layers over ``input``.

        Args:
            input: ``(T, N, D)`` (``(N, T, D)`` with ``batch_first``), ``(T, D)`` unbatched,
                or a :class:`PackedSequence`.
            hx: the initial state (zeros when omitted): ``h_0`` of shape
                ``(num_layers * num_directions, N, H_out)``, for LSTM ``(h_0, c_0)``.

        Returns:
            ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``); ``output`` is
            ``(T, N, num_directions * H_out)`` or a :class:`PackedSequence` for one.
        """
        if _subclass_in(input) or _subclass_in(hx):
            return _tensors(self._forward(_plain(input), _plain(hx)))
        return self._forward(input, hx)

    def _forward(self, input: Any, hx: Any) -> tuple:
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        if lstm and hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        states = None if hx is None else (list(hx) if lstm else [hx])
        if isinstance(input, PackedSequence):
            data = input.data
            if data.ndim != 2:
                raise RuntimeError(
                    f"{name}: input must have 2 dimensions, got {data.ndim} (packed data "
                    f"shape {tuple(data.shape)})"
                )
            self._check_input(data, True)
            sizes = backend.to_host(input.batch_sizes._data).astype(np.int64).tolist()
            batch = sizes[0]
            order = input.sorted_indices
            if states is None:
                states = [_zeros(s, data) for s in self._state_shapes(batch)]
            elif order is not None:
                states = [mx.take(s, order, axis=1) for s in states]
            self._check_states(states, batch)
            out, finals = self._layers(data, sizes, states)
            if input.unsorted_indices is not None:
                finals = [mx.take(f, input.unsorted_indices, axis=1) for f in finals]
            packed = PackedSequence(out, *input[1:])
            return packed, (tuple(finals) if lstm else finals[0])
        if input.ndim not in (2, 3):
            raise ValueError(
                f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead (input "
                f"shape {tuple(input.shape)})"
            )
        batched = input.ndim == 3
        if states is not None:
            want = 3 if batched else 2
            if any(s.ndim != want for s in states):
                dims = ", ".join(f"{s.ndim}-D" for s in states)
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(
                    f"{name}: For {kind} input, hx should also be {want}-D but got ({dims}) tensors"
                )
            if not batched:
                states = [mx.expand_dims(s, 1) for s in states]
        x = input
        if not batched:
            x = mx.expand_dims(x, 0 if self.batch_first else 1)
        if self.batch_first:
            x = mx.swapaxes(x, 0, 1)
        self._check_input(x, False)
        steps, batch = x.shape[0], x.shape[1]
        if states is None:
            states = [_zeros(s, x) for s in self._state_shapes(batch)]
        self._check_states(states, batch)
        out, finals = self._layers(
            mx.reshape(x, (steps * batch, x.shape[2])), [batch] * steps, states
        )
        out = mx.reshape(out, (steps, batch, out.shape[-1]))
        if self.batch_first:
            out = mx.swapaxes(out, 0, 1)
        if not batched:
            out = mx.squeeze(out, 0 if self.batch_first else 1)
            finals = [mx.squeeze(f, 1) for f in finals]
        return out, (tuple(finals) if lstm else finals[0])

    def _layers(self, rows: array, sizes: list, states: list) -> tuple[array, list]:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
        dirs = 2 if self.bidirectional else 1
        uniform = all(s == sizes[0] for s in sizes)
        finals: list = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                b_ih, b_hh = self.get(f"bias_ih{suffix}"), self.get(f"bias_hh{suffix}")
                w_hr = self.get(f"weight_hr{suffix}")
                w = {
                    "whh_t": mx.swapaxes(self[f"weight_hh{suffix}"], 0, 1),
                    "b_hh": b_hh if self.mode == "GRU" else None,
                    "whr_t": None if w_hr is None else mx.swapaxes(w_hr, 0, 1),
                }
                k = layer * dirs + d
                state = tuple(s[k] for s in states)
                bias = None
                if b_ih is not None:
                    bias = b_ih if self.mode == "GRU" else b_ih + b_hh
                if uniform and self.mode == "LSTM" and w_hr is None:
                    # the whole layer at once: oneDNN's fused LSTM where it serves
                    T, n = len(sizes), sizes[0]
                    x = mx.reshape(rows, (T, n, rows.shape[-1]))
                    w_ih, w_hh = self[f"weight_ih{suffix}"], self[f"weight_hh{suffix}"]
                    y = lstm_sequence(x, w_ih, w_hh, bias, state[0], state[1], d == 1)
                    outs.append(mx.reshape(y[:T], (T * n, y.shape[-1])))
                    for acc, f in zip(finals, (y[0] if d == 1 else y[T - 1], y[T])):
                        acc.append(f)
                    continue
                wih_t = mx.swapaxes(self[f"weight_ih{suffix}"], 0, 1)
                xw = rows @ wih_t if bias is None else mx.addmm(bias, rows, wih_t)
                if uniform and self.mode == "GRU":
                    out, final = _gru_direction(xw, sizes, state, w, b_hh, d == 1)
                else:
                    out, final = _run_direction(self.mode, xw, sizes, offsets, state, w, d == 1)
                outs.append(out)
                for acc, f in zip(finals, final):
                    acc.append(f)
            rows = outs[0] if dirs == 1 else mx.concatenate(outs, axis=-1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                rows = _dropout(rows, self.dropout, True)
        return rows, [mx.stack(f, axis=0) for f in finals]


class RNN(RNNBase):
    """Elman RNN, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or ReLU), PyTorch's.

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        num_layers: stacked layers.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: learn the biases.
        batch_first: ``(N, T, *)`` inputs and outputs.
        dropout: dropout between layers in training.
        bidirectional: add a reverse direction.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__(modes[nonlinearity], *args, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory (PyTorch's): gates ``i, f, g, o``, ``c' = f c + i g``,
    ``h' = o tanh(c')``, projected by ``weight_hr`` when ``proj_size > 0``.

    Args:
        input_size: the input features.
        hidden_size: the hidden (cell) features.
        num_layers: stacked layers.
        bias: learn the biases.
        batch_first: ``(N, T, *)`` inputs and outputs.
        dropout: dropout between layers in training.
        bidirectional: add a reverse direction.
        proj_size: project ``h`` to this size.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit (PyTorch's): ``r, z = sigmoid(...)``,
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        num_layers: stacked layers.
        bias: learn the biases.
        batch_first: ``(N, T, *)`` inputs and outputs.
        dropout: dropout between layers in training.
        bidirectional: add a reverse direction.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# -- cells -------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """The shared machinery of the cells: ``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh`` with PyTorch's shapes, drawn from ``U(-1/sqrt(H), 1/sqrt(H))``.

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        bias: learn the biases.
        num_chunks: gates stacked in the weights (1, 3 or 4).
        device: accepted for PyTorch code.
        dtype: the parameters' dtype.
    """

    _mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        g = num_chunks * hidden_size
        shapes = [("weight_ih", (g, input_size)), ("weight_hh", (g, hidden_size))]
        if bias:
            shapes += [("bias_ih", (g,)), ("bias_hh", (g,))]
        _uniform_params(self, shapes, mx.float32 if dtype is None else dtype)

    def reset_parameters(self) -> None:
        """Draw every parameter again from ``U(-1/sqrt(H), 1/sqrt(H))``."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if n in self:
                p = self[n]
                p._set_value(uniform_array(p.shape, -stdv, stdv, p.dtype)._data)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = getattr(self, "nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl}"
        return s

    def _cell(self, input: array, hx: Any) -> Any:
        name = type(self).__name__
        lstm = self._mode == "LSTM"
        if input.ndim not in (1, 2):
            raise ValueError(
                f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead (input shape "
                f"{tuple(input.shape)})"
            )
        states = None if hx is None else (list(hx) if lstm else [hx])
        if states is not None:
            for k, s in enumerate(states):
                if s.ndim not in (1, 2):
                    which = f"hx[{k}]" if lstm else "hidden"
                    raise ValueError(
                        f"{name}: Expected {which} to be 1D or 2D, got {s.ndim}D instead"
                    )
        batched = input.ndim == 2
        x = input if batched else mx.expand_dims(input, 0)
        if x.shape[1] != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {x.shape[1]} expected "
                f"{self.input_size}"
            )
        if states is None:
            z = _zeros((x.shape[0], self.hidden_size), x)
            states = [z, z] if lstm else [z]
        elif not batched:
            states = [mx.expand_dims(s, 0) for s in states]
        for k, s in enumerate(states):
            if s.shape[0] != x.shape[0]:
                raise RuntimeError(
                    f"{name}: Input batch size {x.shape[0]} doesn't match hidden{k} batch size "
                    f"{s.shape[0]}"
                )
            if s.shape[1] != self.hidden_size:
                raise RuntimeError(
                    f"{name}: hidden{k} has inconsistent hidden_size: got {s.shape[1]}, "
                    f"expected {self.hidden_size}"
                )
        b_ih, b_hh = self.get("bias_ih"), self.get("bias_hh")
        wih_t = mx.swapaxes(self["weight_ih"], 0, 1)
        gru = self._mode == "GRU"
        if b_ih is None:
            xw = x @ wih_t
        else:
            xw = mx.addmm(b_ih if gru else b_ih + b_hh, x, wih_t)
        w = {
            "whh_t": mx.swapaxes(self["weight_hh"], 0, 1),
            "b_hh": b_hh if gru else None,
            "whr_t": None,
        }
        out = _step(self._mode, xw, tuple(states), w)
        if not batched:
            out = tuple(mx.squeeze(o, 0) for o in out)
        return out if lstm else out[0]

    def forward(self, input: array, hx: Any = None) -> Any:
        """One step: ``h'`` (``(h', c')`` for :class:`LSTMCell`) from ``input`` ``(N, D)`` or
        ``(D,)`` and the state (zeros when omitted)."""
        if _subclass_in(input) or _subclass_in(hx):
            return _tensors(self._cell(_plain(input), _plain(hx)))
        return self._cell(input, hx)


class RNNCell(RNNCellBase):
    """An Elman cell, ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU), PyTorch's.

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        bias: learn the biases.
        nonlinearity: ``"tanh"`` or ``"relu"``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    @property
    def _mode(self) -> str:
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if self.nonlinearity not in modes:
            raise RuntimeError(f"RNNCell: Unknown nonlinearity: {self.nonlinearity}")
        return modes[self.nonlinearity]


class LSTMCell(RNNCellBase):
    """An LSTM cell (PyTorch's): returns ``(h', c')``.

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        bias: learn the biases.
    """

    _mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)


class GRUCell(RNNCellBase):
    """A GRU cell (PyTorch's).

    Args:
        input_size: the input features.
        hidden_size: the hidden features.
        bias: learn the biases.
    """

    _mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)
