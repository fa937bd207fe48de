"""Recurrent layers (MLX's ``RNN``, ``GRU`` and ``LSTM``): inputs ``(N, L, D)`` or ``(L, D)``."""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable

from ... import core as mx
from ...core import backend, extend, onednn
from ...core.array import array
from ...core.extend import STATE, from_value, kernel, xp
from ..module import Module
from .activations import tanh

__all__ = ["GRU", "LSTM", "RNN", "gru_scan", "lstm_scan", "lstm_sequence"]


# -- whole-sequence recurrences with a hand-written backward pass (issue 20) --------------------
#
# A recurrence written as chainrule ops records ~15 nodes per time step, and every step's
# slice of the input projection gets a cotangent as large as the whole projection. The scans
# below run the loop on backend arrays (one GEMM and a handful of ufuncs a step) as one
# ``custom_function``: the backward pass recomputes the gates of every step with one GEMM,
# runs the reverse recurrence (one GEMM a step), and returns the input projection's cotangent
# as one array and the hidden weights' as one GEMM over all steps. Higher-order derivatives
# (``create_graph``), ``jvp`` and inputs of other float types go through the reference
# recurrence written in chainrule ops, so every transform still sees the same function.


def _fast_dtype(*xs: array) -> bool:
    """Whether the scan may run on the backend: float32/float64 inputs, and no export
    recording the graph: ONNX maps primitives (the scan is not one), and ``mx.export_function``
    names only NumPy calls and ``chainrule.core`` kernels (the scan's loop is neither)."""
    onnx = sys.modules.get("chainrule.viz.onnx")
    if onnx is not None and onnx.is_in_onnx_export():
        return False
    if extend.is_exporting():
        return False
    # host (NumPy) arrays only: the kernels build NumPy constants, which GPU arrays refuse
    return all(x.dtype in (mx.float32, mx.float64) and isinstance(x._data, xp.ndarray) for x in xs)


def _plain_call(xs: tuple) -> bool:
    """Whether the backend path may run: nothing is recorded (no_grad, or the forward of the
    custom function) or no input is being differentiated."""
    return not STATE.enabled or all(x._node is None for x in xs)


def _gate_constants(dtype) -> tuple:
    """The per-gate scale and shift of :func:`_gates` (made once per scan, not per step)."""
    half = xp.asarray([[0.5], [0.5], [1.0], [0.5]], dtype=dtype)
    shift = xp.asarray([[0.5], [0.5], [0.0], [0.5]], dtype=dtype)
    return half, shift


def _gates(a, H: int, consts: tuple):
    """``(..., 4, H)`` activations of a ``(..., 4H)`` pre-activation: sigmoid on ``i, f, o``,
    tanh on ``g`` (sigmoid as ``0.5 tanh(x / 2) + 0.5``, so one tanh covers the whole row).

    The kernels here write no array in place (``out=`` into views included): ``mx.compile``
    records these NumPy calls as its program, and a write through a view would not be seen.
    """
    half, shift = consts
    return xp.tanh(a.reshape(a.shape[:-1] + (4, H)) * half) * half + shift


def _lstm_reference(xw: array, h0: array, c0: array, whh_t: array) -> array:
    h, c, hs, cs = h0, c0, [], []
    for t in range(xw.shape[0]):
        pre = mx.addmm(xw[t], h, whh_t)
        i, f, g, o = mx.split(pre, 4, axis=-1)
        c = mx.sigmoid(f) * c + mx.sigmoid(i) * mx.tanh(g)
        h = mx.sigmoid(o) * mx.tanh(c)
        hs.append(h)
        cs.append(c)
    return mx.stack([mx.stack(hs), mx.stack(cs)])


# The gates each forward computed, for its backward pass: keyed by the identity of the
# output's backend array (the custom function hands that same array to its VJP rule) and
# dropped with it. A miss (the entry is gone) recomputes them with one GEMM.
_SAVED: dict[int, tuple] = {}


def _save(out, saved: tuple) -> None:
    key = id(out)
    try:
        ref = weakref.ref(out, lambda _r, key=key: _SAVED.pop(key, None))
    except TypeError:  # an array type without weak references: recompute instead
        return
    _SAVED[key] = (ref, saved)


def _saved(out) -> tuple | None:
    got = _SAVED.get(id(out))
    return got[1] if got is not None and got[0]() is out else None


def _step_product(w, rows: int) -> Callable:
    """``f(a, out)``: ``a @ w`` into ``out`` for each step's ``(rows, K)`` operand. With oneDNN
    (``chainrule.core.onednn``, float32) the weight is packed once per sequence; the BLAS
    repacks it in every call (~35 of the ~110 us of an LSTM step's 20-row product)."""
    packed = onednn.packed_matmul(w, rows)
    if packed is not None:
        return packed
    return lambda a, out: xp.matmul(a, w, out=out)


def _gate_rows(dtype, G: int) -> tuple:
    """``(G,)`` rows: the sigmoid's scale and shift on the ``i, f, o`` columns, ``1`` and ``0``
    on ``g`` (a row broadcasts over a ``(N, G)`` block faster than a ``(4, 1)`` column)."""
    H = G // 4
    scale = xp.full((G,), 0.5, dtype=dtype)
    scale[2 * H : 3 * H] = 1.0
    shift = xp.full((G,), 0.5, dtype=dtype)
    shift[2 * H : 3 * H] = 0.0
    return scale, shift


@kernel  # one opaque step under mx.compile: the loop writes into its own fresh buffers
def _lstm_forward(xw, h0, c0, whh_t):
    """The scan on backend arrays: ``(2, T, N, H)`` hidden and cell states; the gate
    activations ``(T, N, 4, H)`` and ``tanh(c)`` are saved for the backward pass.

    Every step is one GEMM into a scratch row block and nine ufuncs writing into preallocated
    buffers (no allocation, no final stack): the pre-activations are scaled by the sigmoid's
    ``1/2`` up front (in ``xw`` and in the weights; a power of two, so exactly), then one
    ``tanh`` over the four gates and one multiply-add turn ``i, f, o`` into sigmoids.
    """
    T, N, G = xw.shape
    H = G // 4
    dt = xw.dtype
    scale, shift = _gate_rows(dt, G)
    a = xp.multiply(xw, scale).reshape(T, N, 4, H)  # becomes the gate activations, in place
    whh_s = xp.multiply(whh_t, scale)
    y = xp.empty((2, T, N, H), dtype=dt)
    hs, cs = y[0], y[1]
    tc = xp.empty((T, N, H), dtype=dt)
    p = xp.empty((N, G), dtype=dt)
    ig = xp.empty((N, H), dtype=dt)
    h, c = xp.ascontiguousarray(h0), c0
    step = _step_product(whh_s, N)
    for t in range(T):
        a4 = a[t]
        a2 = a4.reshape(N, G)
        step(h, p)
        xp.add(a2, p, out=a2)
        xp.tanh(a2, out=a2)
        xp.multiply(a2, scale, out=a2)
        xp.add(a2, shift, out=a2)
        c_prev, h, c = c, hs[t], cs[t]
        xp.multiply(a4[:, 1], c_prev, out=c)
        xp.multiply(a4[:, 0], a4[:, 2], out=ig)
        xp.add(c, ig, out=c)
        xp.tanh(c, out=tc[t])
        xp.multiply(a4[:, 3], tc[t], out=h)
    _save(y, (a, tc))
    return y


@kernel
def _lstm_backward(xw, h0, c0, whh_t, y, gy):
    """The reverse scan: cotangents of ``xw`` (as one ``(T, N, 4H)`` array), ``h0``, ``c0``
    and ``whh_t`` (one GEMM over all steps, laid out like ``whh_t``)."""
    T, N, G = xw.shape
    H = G // 4
    dt = xw.dtype
    hs, cs = y[0], y[1]
    saved = _saved(y)
    if saved is not None:
        a, tc = saved  # (T, N, 4, H): i, f, g, o; tanh(c)
    else:
        h_prev = xp.concatenate([h0[None], hs[:-1]])
        pre = xp.matmul(h_prev.reshape(-1, H), whh_t).reshape(T, N, G) + xw
        a, tc = _gates(pre, H, _gate_constants(dt)), xp.tanh(cs)
    i, f, g, o = a[:, :, 0], a[:, :, 1], a[:, :, 2], a[:, :, 3]
    # m[k] = d pre[k] / d c for i, f, g and d pre[o] / d h; m_c = d c / d h
    sq = xp.multiply(a, a)
    m = xp.subtract(a, sq)  # s (1 - s) for the sigmoids
    xp.multiply(m[:, :, 0], g, out=m[:, :, 0])
    xp.multiply(m[1:, :, 1], cs[:-1], out=m[1:, :, 1])
    xp.multiply(m[0, :, 1], c0, out=m[0, :, 1])
    xp.subtract(1, sq[:, :, 2], out=m[:, :, 2])
    xp.multiply(m[:, :, 2], i, out=m[:, :, 2])
    xp.multiply(m[:, :, 3], tc, out=m[:, :, 3])
    m_c = xp.multiply(tc, tc)
    xp.subtract(1, m_c, out=m_c)
    xp.multiply(m_c, o, out=m_c)
    del sq
    whh = whh_t.T
    gh, gc = gy[0], gy[1]
    with_gc = bool(gc.any())
    d = xp.empty((T, N, 4, H), dtype=dt)
    dh = gh[T - 1].copy()
    dc = gc[T - 1].copy()
    tmp = xp.empty((N, H), dtype=dt)
    step = _step_product(whh, N)
    for t in range(T - 1, -1, -1):
        d4 = d[t]
        xp.multiply(dh, m_c[t], out=tmp)
        xp.add(dc, tmp, out=dc)
        xp.multiply(m[t, :, :3], dc[:, None, :], out=d4[:, :3])
        xp.multiply(m[t, :, 3], dh, out=d4[:, 3])
        xp.multiply(dc, f[t], out=dc)
        step(d4.reshape(N, G), dh)
        if t > 0:
            xp.add(dh, gh[t - 1], out=dh)
            if with_gc:
                xp.add(dc, gc[t - 1], out=dc)
    d = d.reshape(T, N, G)
    h_prev = xp.concatenate([h0[None], hs[:-1]]).reshape(-1, H)
    if whh_t.flags.f_contiguous and not whh_t.flags.c_contiguous:
        # a transposed weight (``W.T``): its gradient comes back row-major through the transpose
        dw = xp.matmul(d.reshape(-1, G).T, h_prev).T
    else:
        dw = xp.matmul(h_prev.T, d.reshape(-1, G))
    return d, dh, dc, dw


@mx.custom_function
def _lstm_custom(xw: array, h0: array, c0: array, whh_t: array) -> array:
    if not _plain_call((xw, h0, c0, whh_t)):
        return _lstm_reference(xw, h0, c0, whh_t)
    return from_value(_lstm_forward(xw._data, h0._data, c0._data, whh_t._data))


@_lstm_custom.vjp
def _lstm_custom_vjp(primals: tuple, cotangent: array, output: array) -> tuple:
    if STATE.enabled:  # create_graph: differentiate the reference recurrence itself
        return tuple(mx.vjp(_lstm_reference, list(primals), [cotangent])[1])
    xw, h0, c0, whh_t = (p._data for p in primals)
    got = _lstm_backward(xw, h0, c0, whh_t, output._data, cotangent._data)
    return tuple(from_value(v) for v in got)


def lstm_scan(xw: array, h0: array, c0: array, whh_t: array) -> array:
    """Run an LSTM over a whole sequence.

    Args:
        xw: ``(T, N, 4H)`` input projections with the biases added (gates ``i, f, g, o``).
        h0: ``(N, H)`` initial hidden state.
        c0: ``(N, H)`` initial cell state.
        whh_t: ``(H, 4H)`` hidden weights, transposed.

    Returns:
        ``(2, T, N, H)``: every hidden state (``[0]``) and every cell state (``[1]``).
    """
    if not _fast_dtype(xw, h0, c0, whh_t) or xw.shape[0] == 0:
        return _lstm_reference(xw, h0, c0, whh_t)
    return _lstm_custom(xw, h0, c0, whh_t)


# -- a whole LSTM layer in oneDNN's fused kernel (chainrule.core.onednn, float32) -----------------


def _lstm_sequence_reference(x, w_ih, w_hh, bias, h0, c0, reverse: bool) -> array:
    xw = mx.addmm(bias, x, w_ih.T)
    y = lstm_scan(xw[::-1] if reverse else xw, h0, c0, w_hh.T)
    hs = y[0, ::-1] if reverse else y[0]
    return mx.concatenate([hs, y[1, -1:]], axis=0)


@kernel  # one opaque step under mx.compile
def _lstm_sequence_forward(x, w_ih, w_hh, bias, h0, c0, reverse: bool):
    T, N, D = x.shape
    layer = onednn.lstm_layer(T, N, D, w_hh.shape[-1], reverse)
    args = (x, w_ih, w_hh, bias, h0, c0)
    y, ws = layer.forward(*(xp.ascontiguousarray(a) for a in args))
    _save(y, (ws,))
    return y


@kernel
def _lstm_sequence_backward(x, w_ih, w_hh, bias, h0, c0, reverse: bool, y, gy):
    T, N, D = x.shape
    layer = onednn.lstm_layer(T, N, D, w_hh.shape[-1], reverse)
    args = tuple(xp.ascontiguousarray(a) for a in (x, w_ih, w_hh, bias, h0, c0))
    saved = _saved(y)
    ws = layer.forward(*args)[1] if saved is None else saved[0]  # (a miss runs it again)
    return layer.backward(*args, y, ws, xp.ascontiguousarray(gy))


def _lstm_sequence_function(reverse: bool):
    def reference(x, w_ih, w_hh, bias, h0, c0):
        return _lstm_sequence_reference(x, w_ih, w_hh, bias, h0, c0, reverse)

    @mx.custom_function
    def run(x: array, w_ih: array, w_hh: array, bias: array, h0: array, c0: array) -> array:
        primals = (x, w_ih, w_hh, bias, h0, c0)
        if not _plain_call(primals):
            return reference(*primals)
        return from_value(_lstm_sequence_forward(*(p._data for p in primals), reverse))

    @run.vjp
    def run_vjp(primals: tuple, cotangent: array, output: array) -> tuple:
        if STATE.enabled:  # create_graph: differentiate the reference recurrence itself
            return tuple(mx.vjp(reference, list(primals), [cotangent])[1])
        data = [p._data for p in primals]
        got = _lstm_sequence_backward(*data, reverse, output._data, cotangent._data)
        return tuple(from_value(v) for v in got)

    return run


_LSTM_SEQUENCE = (_lstm_sequence_function(False), _lstm_sequence_function(True))


def lstm_sequence(
    x: array,
    w_ih: array,
    w_hh: array,
    bias: array | None,
    h0: array,
    c0: array,
    reverse: bool = False,
) -> array:
    """Run one LSTM layer (PyTorch's layout) over a whole sequence.

    With oneDNN (``chainrule.core.onednn``) and float32 host arrays the layer is oneDNN's fused
    LSTM, forward and backward (PyTorch's CPU kernel); otherwise the input projection and
    :func:`lstm_scan`. Higher-order derivatives go through the latter.

    Args:
        x: ``(T, N, D)`` inputs.
        w_ih: ``(4H, D)`` input weights (gates ``i, f, g, o``).
        w_hh: ``(4H, H)`` hidden weights.
        bias: ``(4H,)`` the summed biases, or ``None``.
        h0: ``(N, H)`` initial hidden state.
        c0: ``(N, H)`` initial cell state.
        reverse: run from the last step to the first (outputs stay in time order).

    Returns:
        ``(T + 1, N, H)``: the hidden state of every step, then the last cell state.
    """
    H = w_hh.shape[-1]
    if bias is None:  # (zeros on the input's device)
        on = mx.gpu if backend.is_gpu(x._data) else mx.cpu
        bias = mx.zeros((w_hh.shape[0],), dtype=x.dtype, stream=on)
    args = (x, w_ih, w_hh, bias, h0, c0)
    fast = x.shape[0] > 0 and all(a.dtype == mx.float32 for a in args) and _fast_dtype(*args)
    if fast and onednn.lstm_layer(x.shape[0], x.shape[1], x.shape[2], H, reverse) is not None:
        return _LSTM_SEQUENCE[int(reverse)](*args)
    return _lstm_sequence_reference(*args, reverse)


def _gru_reference(xw: array, h0: array, whh_t: array, b_hh: array) -> array:
    H = h0.shape[-1]
    h, hs = h0, []
    for t in range(xw.shape[0]):
        gh = mx.addmm(b_hh, h, whh_t)
        x_t = xw[t]
        rz = mx.sigmoid(x_t[..., : 2 * H] + gh[..., : 2 * H])
        r, z = rz[..., :H], rz[..., H:]
        n = mx.tanh(x_t[..., 2 * H :] + r * gh[..., 2 * H :])
        h = (1 - z) * n + z * h
        hs.append(h)
    return mx.stack(hs)


def _gru_parts(xw, gh, H: int):
    """``r, z, n`` (``(..., H)`` each) from the projections (``gh`` includes ``b_hh``)."""
    rz = xp.tanh((xw[..., : 2 * H] + gh[..., : 2 * H]) * 0.5) * 0.5 + 0.5
    r, z = rz[..., :H], rz[..., H:]
    n = xp.tanh(r * gh[..., 2 * H :] + xw[..., 2 * H :])
    return r, z, n


@kernel  # one opaque step under mx.compile: the loop writes into its own fresh buffers
def _gru_forward(xw, h0, whh_t, b_hh):
    """The scan on backend arrays: ``(T, N, H)`` hidden states; the hidden projections and
    ``r, z, n`` are saved for the backward pass. One GEMM and twelve ufuncs a step, written
    into preallocated buffers."""
    T, N, G = xw.shape
    H = G // 3
    dt = xw.dtype
    hs = xp.empty((T, N, H), dtype=dt)
    gh = xp.empty((T, N, G), dtype=dt)
    rz = xp.empty((T, N, 2 * H), dtype=dt)
    n = xp.empty((T, N, H), dtype=dt)
    h = xp.ascontiguousarray(h0)
    step = _step_product(whh_t, N)
    for t in range(T):
        g, rz_t, n_t, x_t = gh[t], rz[t], n[t], xw[t]
        step(h, g)
        xp.add(g, b_hh, out=g)
        xp.add(x_t[:, : 2 * H], g[:, : 2 * H], out=rz_t)
        xp.multiply(rz_t, 0.5, out=rz_t)
        xp.tanh(rz_t, out=rz_t)
        xp.multiply(rz_t, 0.5, out=rz_t)
        xp.add(rz_t, 0.5, out=rz_t)
        xp.multiply(rz_t[:, :H], g[:, 2 * H :], out=n_t)
        xp.add(n_t, x_t[:, 2 * H :], out=n_t)
        xp.tanh(n_t, out=n_t)
        h_t = hs[t]
        xp.subtract(h, n_t, out=h_t)  # (1 - z) n + z h = n + z (h - n)
        xp.multiply(rz_t[:, H:], h_t, out=h_t)
        xp.add(h_t, n_t, out=h_t)
        h = h_t
    _save(hs, (gh, rz[..., :H], rz[..., H:], n))
    return hs


@kernel
def _gru_backward(xw, h0, whh_t, b_hh, hs, gy):
    """The reverse scan: cotangents of ``xw`` (one ``(T, N, 3H)`` array), ``h0``, ``whh_t``
    (one GEMM over all steps, laid out like ``whh_t``) and ``b_hh``."""
    T, N, G = xw.shape
    H = G // 3
    dt = xw.dtype
    h_prev = xp.concatenate([h0[None], hs[:-1]])
    saved = _saved(hs)
    if saved is not None:
        gh, r, z, n = saved
    else:
        gh = xp.matmul(h_prev.reshape(-1, H), whh_t).reshape(T, N, G) + b_hh
        r, z, n = _gru_parts(xw, gh, H)
    hn = gh[..., 2 * H :]
    # d a / d h' for the x projections of r, z, n (m_x) and the h projections (m_h: n's
    # times r); m_n = d a_n / d h'
    m_x = xp.empty((T, N, 3, H), dtype=dt)
    m_n = m_x[:, :, 2]
    xp.multiply(n, n, out=m_n)
    xp.subtract(1, m_n, out=m_n)
    zc = xp.subtract(1, z)
    xp.multiply(m_n, zc, out=m_n)
    m_r = m_x[:, :, 0]
    xp.subtract(1, r, out=m_r)
    xp.multiply(m_r, r, out=m_r)
    xp.multiply(m_r, hn, out=m_r)
    xp.multiply(m_r, m_n, out=m_r)
    m_z = m_x[:, :, 1]
    xp.multiply(zc, z, out=m_z)
    del zc
    xp.multiply(m_z, xp.subtract(h_prev, n), out=m_z)
    m_h = m_x.copy()
    xp.multiply(m_h[:, :, 2], r, out=m_h[:, :, 2])
    whh = whh_t.T
    dx = xp.empty((T, N, 3, H), dtype=dt)
    dgh = xp.empty((T, N, 3, H), dtype=dt)
    tmp = xp.empty((N, H), dtype=dt)
    dh = gy[T - 1].copy()
    step = _step_product(whh, N)
    for t in range(T - 1, -1, -1):
        dg = dgh[t]
        xp.multiply(m_h[t], dh[:, None, :], out=dg)
        xp.multiply(m_x[t], dh[:, None, :], out=dx[t])
        step(dg.reshape(N, G), tmp)
        xp.multiply(dh, z[t], out=dh)
        xp.add(dh, tmp, out=dh)
        if t > 0:
            xp.add(dh, gy[t - 1], out=dh)
    dgh_all = dgh.reshape(-1, G)
    h_prev = h_prev.reshape(-1, H)
    if whh_t.flags.f_contiguous and not whh_t.flags.c_contiguous:
        dw = xp.matmul(dgh_all.T, h_prev).T  # row-major through the weight's transpose
    else:
        dw = xp.matmul(h_prev.T, dgh_all)
    return dx.reshape(T, N, G), dh, dw, dgh_all.sum(axis=0)


@mx.custom_function
def _gru_custom(xw: array, h0: array, whh_t: array, b_hh: array) -> array:
    if not _plain_call((xw, h0, whh_t, b_hh)):
        return _gru_reference(xw, h0, whh_t, b_hh)
    return from_value(_gru_forward(xw._data, h0._data, whh_t._data, b_hh._data))


@_gru_custom.vjp
def _gru_custom_vjp(primals: tuple, cotangent: array, output: array) -> tuple:
    if STATE.enabled:  # create_graph: differentiate the reference recurrence itself
        return tuple(mx.vjp(_gru_reference, list(primals), [cotangent])[1])
    xw, h0, whh_t, b_hh = (p._data for p in primals)
    got = _gru_backward(xw, h0, whh_t, b_hh, output._data, cotangent._data)
    return tuple(from_value(v) for v in got)


def gru_scan(xw: array, h0: array, whh_t: array, b_hh: array | None = None) -> array:
    """Run a GRU (PyTorch's formulation) over a whole sequence.

    ``r, z = sigmoid(xw[r, z] + h W_hh[r, z] + b_hh[r, z])``,
    ``n = tanh(xw[n] + r * (h W_hn + b_hn))``, ``h' = (1 - z) n + z h``.

    Args:
        xw: ``(T, N, 3H)`` input projections with the input biases added (``r, z, n``).
        h0: ``(N, H)`` initial hidden state.
        whh_t: ``(H, 3H)`` hidden weights, transposed.
        b_hh: ``(3H,)`` hidden bias, or ``None``.

    Returns:
        ``(T, N, H)``: every hidden state.
    """
    if b_hh is None:
        b_hh = mx.zeros((xw.shape[-1],), dtype=xw.dtype)
    if not _fast_dtype(xw, h0, whh_t, b_hh) or xw.shape[0] == 0:
        return _gru_reference(xw, h0, whh_t, b_hh)
    return _gru_custom(xw, h0, whh_t, b_hh)


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
        xt = mx.swapaxes(x, 0, 1) if x.ndim == 3 else mx.expand_dims(x, 1)  # (L, N, D)
        if self.b is not None:
            xw = mx.addmm(self["b"], xt, self["Wx"].T)
        else:
            xw = xt @ self["Wx"].T
        n = xw.shape[1]
        h0 = mx.zeros((n, H), dtype=xw.dtype) if hidden is None else mx.broadcast_to(hidden, (n, H))
        b_hh = None
        if self.bhn is not None:
            b_hh = mx.concatenate([mx.zeros((2 * H,), dtype=xw.dtype), self["bhn"]])
        hs = gru_scan(xw, h0, self["Wh"].T, b_hh)  # (L, N, H)
        return mx.swapaxes(hs, 0, 1) if x.ndim == 3 else mx.squeeze(hs, 1)


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
        xt = mx.swapaxes(x, 0, 1) if x.ndim == 3 else mx.expand_dims(x, 1)  # (L, N, D)
        if self.bias is not None:
            xw = mx.addmm(self["bias"], xt, self["Wx"].T)
        else:
            xw = xt @ self["Wx"].T
        n = xw.shape[1]
        zeros = mx.zeros((n, H), dtype=xw.dtype)
        h0 = zeros if hidden is None else mx.broadcast_to(hidden, (n, H))
        c0 = zeros if cell is None else mx.broadcast_to(cell, (n, H))
        y = lstm_scan(xw, h0, c0, self["Wh"].T)  # (2, L, N, H)
        if x.ndim == 3:
            y = mx.swapaxes(y, 1, 2)
        else:
            y = mx.squeeze(y, 2)
        return y[0], y[1]
