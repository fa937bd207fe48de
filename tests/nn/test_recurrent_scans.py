"""The whole-sequence LSTM and GRU scans (issue 20): a backend loop forward, a hand-written
backward pass; they must equal the recurrence written step by step in chainrule ops, in value
and in every derivative the transforms take (grad, grad of grad, jvp, vmap, compile)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers import recurrent

RNG = np.random.default_rng(7)
T, N, H = 6, 3, 5


def _a(*shape, scale=1.0):
    return mx.array((RNG.standard_normal(shape) * scale).astype(np.float32))


def _close(a, b, tol=2e-5):
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=tol, atol=tol)


def _lstm_args():
    return _a(T, N, 4 * H), _a(N, H), _a(N, H), _a(H, 4 * H, scale=0.5)


def _gru_args():
    return _a(T, N, 3 * H), _a(N, H), _a(H, 3 * H, scale=0.5), _a(3 * H)


CASES = {
    "lstm": (recurrent.lstm_scan, recurrent._lstm_reference, _lstm_args),
    "gru": (recurrent.gru_scan, recurrent._gru_reference, _gru_args),
}


@pytest.mark.parametrize("kind", CASES)
def test_scan_equals_the_stepwise_recurrence(kind):
    scan, ref, make = CASES[kind]
    args = make()
    _close(scan(*args), ref(*args))
    w = mx.array(RNG.standard_normal(ref(*args).shape).astype(np.float32))
    argnums = tuple(range(len(args)))
    got = mx.grad(lambda *a: mx.sum(scan(*a) * w), argnums=argnums)(*args)
    want = mx.grad(lambda *a: mx.sum(ref(*a) * w), argnums=argnums)(*args)
    for g, r in zip(got, want):
        _close(g, r)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
@pytest.mark.parametrize("kind", CASES)
def test_second_derivatives_jvp_vmap_and_compile(kind):
    scan, ref, make = CASES[kind]
    args = make()
    rest = args[1:]

    def gg(f):
        inner = mx.grad(lambda x: mx.sum(f(x, *rest) ** 2))
        return mx.grad(lambda x: mx.sum(inner(x) ** 2))(args[0])

    _close(gg(scan), gg(ref), 1e-4)
    _close(
        mx.jvp(lambda x: scan(x, *rest), [args[0]], [args[0]])[1][0],
        mx.jvp(lambda x: ref(x, *rest), [args[0]], [args[0]])[1][0],
    )
    batch = mx.stack([args[0], args[0] * 0.5])
    _close(
        mx.vmap(lambda x: scan(x, *rest))(batch),
        mx.stack([ref(args[0], *rest), ref(args[0] * 0.5, *rest)]),
    )
    step = mx.compile(lambda x: mx.grad(lambda y: mx.sum(scan(y, *rest) ** 2))(x))
    want = mx.grad(lambda y: mx.sum(ref(y, *rest) ** 2))
    for x in (args[0], args[0] * 2, args[0] * 3):
        _close(step(x), want(x))
    assert step.last_reason is None  # replayed, not fallen back to eager


def test_other_dtypes_take_the_reference_path():
    xw, h0, c0, w = (a.astype(mx.float16) for a in _lstm_args())
    got = recurrent.lstm_scan(xw, h0, c0, w)
    assert got.dtype == mx.float16
    _close(got.astype(mx.float32), recurrent._lstm_reference(xw, h0, c0, w).astype(mx.float32))


def test_saved_gates_are_dropped_with_the_graph():
    gc.collect()
    before = len(recurrent._SAVED)
    args = _lstm_args()
    for _ in range(3):
        mx.grad(lambda x: mx.sum(recurrent.lstm_scan(x, *args[1:])))(args[0])
    gc.collect()
    assert len(recurrent._SAVED) == before


# -- the MLX-style layers against the step-by-step formulas with their own weights ----------


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _lstm_numpy(layer, x, h=None, c=None):
    wx, wh = np.array(layer.Wx), np.array(layer.Wh)
    b = np.array(layer.bias) if layer.bias is not None else 0.0
    hs, cs = [], []
    for t in range(x.shape[-2]):
        pre = x[..., t, :] @ wx.T + b + (h @ wh.T if h is not None else 0.0)
        i, f, g, o = np.split(pre, 4, axis=-1)
        c = _sigmoid(f) * (c if c is not None else 0.0) + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, -2), np.stack(cs, -2)


def _gru_numpy(layer, x, h=None):
    wx, wh = np.array(layer.Wx), np.array(layer.Wh)
    b = np.array(layer.b) if layer.b is not None else 0.0
    bhn = np.array(layer.bhn) if layer.bhn is not None else 0.0
    H_ = wh.shape[1]
    out = []
    for t in range(x.shape[-2]):
        xp = x[..., t, :] @ wx.T + b
        hp = h @ wh.T if h is not None else np.zeros(xp.shape[:-1] + (3 * H_,), np.float32)
        r = _sigmoid(xp[..., :H_] + hp[..., :H_])
        z = _sigmoid(xp[..., H_ : 2 * H_] + hp[..., H_ : 2 * H_])
        n = np.tanh(xp[..., 2 * H_ :] + r * (hp[..., 2 * H_ :] + bhn))
        h = (1 - z) * n + z * (h if h is not None else 0.0)
        out.append(h)
    return np.stack(out, -2)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_mlx_lstm_and_gru_layers(bias, batched, with_state):
    x_np = RNG.standard_normal((N, T, 4) if batched else (T, 4)).astype(np.float32)
    s_np = RNG.standard_normal((N, H) if batched else (H,)).astype(np.float32)
    state = mx.array(s_np) if with_state else None
    lstm, gru = nn.LSTM(4, H, bias=bias), nn.GRU(4, H, bias=bias)
    hs, cs = lstm(mx.array(x_np), state, state)
    want_h, want_c = _lstm_numpy(lstm, x_np, s_np if with_state else None,
                                 s_np if with_state else None)  # fmt: skip
    _close(hs, want_h)
    _close(cs, want_c)
    _close(gru(mx.array(x_np), state), _gru_numpy(gru, x_np, s_np if with_state else None))


def test_mlx_lstm_gradients_reach_every_parameter():
    mx.random.seed(11)  # the layer's weights: the float32 difference quotient is checked to 2%
    layer = nn.LSTM(4, H)
    x = _a(N, T, 4)

    def loss(model, x):
        h, c = model(x)
        return mx.sum(h**2) + mx.sum(c)

    _, grads = nn.value_and_grad(layer, loss)(layer, x)
    eps = 1e-2  # float32: a smaller step drowns the quotient in rounding (~1e-6 of a loss ~10)
    w = np.array(layer.Wh)
    bumped = w.copy()
    bumped[2, 1] += eps
    layer.Wh = mx.array(bumped)
    up = float(loss(layer, x))
    bumped[2, 1] -= 2 * eps
    layer.Wh = mx.array(bumped)
    down = float(loss(layer, x))
    np.testing.assert_allclose(float(grads["Wh"][2, 1]), (up - down) / (2 * eps), rtol=2e-2)
    assert set(grads) == {"Wx", "Wh", "bias"}


def test_layers_on_the_strict_gpu_match_the_cpu():
    # GPU arrays take the step-by-step recurrence (the scans build NumPy constants)
    from chainrule.core import backend

    x_np = RNG.standard_normal((2, T, 4)).astype(np.float32)

    def run():
        mx.random.seed(3)
        lstm, gru = nn.LSTM(4, H), nn.GRU(4, H)
        got = []
        for m in (lstm, gru):

            def loss(m, x):
                out = m(x)
                return mx.sum((out[0] if isinstance(out, tuple) else out) ** 2)

            value, grads = nn.value_and_grad(m, loss)(m, mx.array(x_np))
            got.append((float(value), {k: np.asarray(v.tolist()) for k, v in grads.items()}))
        got.append(np.asarray(nn.gelu(mx.array(x_np)).tolist()))
        return got

    cpu = run()
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        try:
            gpu = run()
        finally:
            mx.set_default_device(mx.cpu)
    for (vc, gc_), (vg, gg) in zip(cpu[:2], gpu[:2]):
        np.testing.assert_allclose(vc, vg, rtol=1e-5)
        for k in gc_:
            np.testing.assert_allclose(gc_[k], gg[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cpu[2], gpu[2], rtol=1e-5, atol=1e-6)


def test_layers_export_through_the_reference_recurrence(tmp_path):
    # the scans' loops are kernels outside chainrule.core, which an export cannot name
    x = _a(2, T, 4)
    for layer in (nn.LSTM(4, H), nn.GRU(4, H)):

        def f(x, layer=layer):
            out = layer(x)
            return out[0] if isinstance(out, tuple) else out

        path = str(tmp_path / f"{type(layer).__name__}.mlxfn")
        mx.export_function(path, f, x)
        _close(mx.import_function(path)(x)[0], f(x))


def test_hidden_weight_gradient_keeps_the_weight_layout():
    # whh_t is usually W.T (a column-major view): its cotangent is built column-major too, so
    # the transpose hands the weight a row-major gradient and the engine copies nothing
    xw, h0, c0, w = (np.asarray(a) for a in _lstm_args())
    for whh_t in (w, np.ascontiguousarray(w.T).T):
        y = recurrent._lstm_forward(xw, h0, c0, whh_t)
        dw = recurrent._lstm_backward(xw, h0, c0, whh_t, y, np.ones_like(y))[3]
        assert dw.strides == whh_t.strides
