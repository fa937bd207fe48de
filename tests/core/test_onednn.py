"""oneDNN's convolution kernels (chainrule/core/onednn.py) against the NumPy kernels.

Each case runs the same float32 convolution, its input and weight gradients and a second-order
gradient with oneDNN and inside ``onednn.disabled()`` (the NumPy im2col kernels, themselves
checked by central differences in float64 in test_conv.py), and asserts that oneDNN was used.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import onednn
from chainrule.utils import tree_flatten

needs_onednn = pytest.mark.skipif(not onednn.available(), reason=onednn.status())
pytestmark = pytest.mark.usefixtures("cpu_default_device")  # oneDNN serves host arrays only

CASES = [
    # input, weight, stride, padding, dilation, groups
    ((2, 9, 9, 3), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 9, 9, 4), (6, 3, 3, 4), 2, 1, 1, 1),  # strided, odd size
    ((2, 10, 11, 4), (6, 3, 2, 2), (2, 3), (1, 0), (2, 1), 2),  # grouped, dilated
    ((2, 12, 5), (6, 3, 5), 1, 0, 1, 1),  # 1-d
    ((2, 12, 5), (5, 3, 1), 1, 1, 1, 5),  # depthwise
    ((2, 5, 6, 7, 4), (3, 2, 3, 2, 4), 2, 1, 1, 1),  # 3-d
    ((2, 28, 28, 1), (6, 5, 5, 1), 1, 0, 1, 1),  # one input channel (LeNet's first layer)
    ((3, 8, 8, 16), (32, 1, 1, 16), 2, 0, 1, 1),  # 1x1 stride 2 (a ResNet shortcut)
    ((2, 8, 8, 3), (4, 3, 3, 3), 1, ([1, 2], [0, 1]), 1, 1),  # asymmetric padding
]


def _counting(monkeypatch, cls=None, names=("forward", "backward_data", "backward_weights")):
    """Count the calls of methods ``names`` of ``cls`` (the convolutions' by default)."""
    cls = onednn._Conv if cls is None else cls
    counts = dict.fromkeys(names, 0)
    for name in counts:
        original = getattr(cls, name)

        def wrapped(self, *args, _name=name, _original=original):
            counts[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, name, wrapped)
    return counts


def _close(a, b, rtol=2e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    scale = max(float(np.abs(b).max()), 1e-6)
    assert float(np.abs(a - b).max()) <= rtol * scale, (float(np.abs(a - b).max()), scale)


def _conv(x, w, stride, padding, dilation, groups):
    return mx.conv_general(
        x, w, stride=stride, padding=padding, kernel_dilation=dilation, groups=groups
    )


@needs_onednn
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_numpy_kernels(case, monkeypatch):
    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(len(xs) * 7 + ws[0])
    x = mx.array(rng.standard_normal(xs).astype(np.float32))
    w = mx.array(rng.standard_normal(ws).astype(np.float32))
    counts = _counting(monkeypatch)

    def loss(x, w):
        y = _conv(x, w, stride, padding, dilation, groups)
        return (y * mx.sin(y)).sum()

    def grad_norm(x, w):  # second order: the gradient's own gradient
        gx, gw = mx.grad(loss, argnums=(0, 1))(x, w)
        return (gx * gx).sum() + (gw * gw).sum()

    run = [
        lambda: _conv(x, w, stride, padding, dilation, groups),
        lambda: mx.grad(loss, argnums=(0, 1))(x, w),
        lambda: mx.grad(grad_norm, argnums=(0, 1))(x, w),
    ]
    ours = [f() for f in run]
    assert counts["forward"] and counts["backward_data"] and counts["backward_weights"]
    with onednn.disabled():
        before = dict(counts)
        reference = [f() for f in run]
        assert counts == before  # the NumPy kernels ran
    _close(ours[0], reference[0])
    for a, b in zip(ours[1], reference[1]):
        _close(a, b)
    for a, b in zip(ours[2], reference[2]):
        _close(a, b, rtol=1e-4)


@needs_onednn
def test_transposed_convolution_and_views(monkeypatch):
    rng = np.random.default_rng(3)
    x = mx.array(rng.standard_normal((2, 6, 5, 4)).astype(np.float32))
    w = mx.array(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
    counts = _counting(monkeypatch)
    # stride 1: a flipped-kernel convolution oneDNN runs; a transposed (non-contiguous) input
    xt = mx.transpose(mx.transpose(x, (0, 2, 1, 3)), (0, 2, 1, 3))

    def loss(x, w):
        return (mx.conv_transpose2d(x, w, padding=1) ** 2).sum()

    ours = [mx.conv_transpose2d(xt, w, padding=1), *mx.grad(loss, argnums=(0, 1))(x, w)]
    assert counts["forward"] >= 1
    with onednn.disabled():
        reference = [mx.conv_transpose2d(xt, w, padding=1), *mx.grad(loss, argnums=(0, 1))(x, w)]
    for a, b in zip(ours, reference):
        _close(a, b)


@needs_onednn
def test_compiled_matches_eager(monkeypatch):
    rng = np.random.default_rng(4)
    x = mx.array(rng.standard_normal((4, 10, 10, 8)).astype(np.float32))
    w = mx.array(rng.standard_normal((8, 3, 3, 8)).astype(np.float32))

    def loss(x, w):
        return mx.maximum(mx.conv2d(x, w, padding=1), 0).mean()

    step = mx.value_and_grad(loss, argnums=(0, 1))
    eager = step(x, w)
    counts = _counting(monkeypatch)
    compiled = mx.compile(step)
    for _ in range(2):  # the trace and a replay
        value, grads = compiled(x, w)
        _close(value, eager[0])
        for a, b in zip(grads, eager[1]):
            _close(a, b)
    assert counts["forward"] >= 1 and counts["backward_weights"] >= 1


def test_other_types_keep_numpy_kernels(monkeypatch):
    counts = _counting(monkeypatch)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 7, 3))
    w = rng.standard_normal((4, 3, 3, 3))
    y = mx.conv2d(mx.array(x, mx.float64), mx.array(w, mx.float64), padding=1)
    assert y.dtype == mx.float64
    # input dilation (a strided transposed convolution's forward)
    x32, w32 = mx.array(x.astype(np.float32)), mx.array(w.astype(np.float32))
    mx.conv_general(x32, w32, input_dilation=2)
    assert counts["forward"] == 0
    assert not onednn.takes((x.astype(np.float32),) * 2, (1, 1), (1, 1), (2, 1))
    assert not onednn.takes((x,) * 2, (1, 1), (1, 1), (1, 1))
    assert not onednn.takes((x.astype(np.float32),) * 2, (-1, 1), (1, 1), (1, 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
@pytest.mark.parametrize(
    "env, expect",
    [
        ({"CHAINRULE_ONEDNN": "0"}, "disabled"),
        ({"CHAINRULE_ONEDNN_LIBRARY": "/nonexistent/libdnnl.so.3"}, "not found"),
    ],
)
def test_switched_off_or_missing_library(env, expect):
    code = (
        "import numpy as np, chainrule.core as mx\n"
        "from chainrule.core import onednn\n"
        "x = mx.ones((1, 5, 5, 2)); w = mx.ones((3, 3, 3, 2))\n"
        "y = mx.conv2d(x, w, padding=1)\n"
        "assert float(y[0, 2, 2, 0]) == 18.0 and not onednn.available()\n"
        "print(onednn.status())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert expect in out


@needs_onednn
def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)  # NCHW
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)  # OIHW
    g = rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(xt, wt, stride=2, padding=1).backward(torch.tensor(g))

    xm = mx.array(x.transpose(0, 2, 3, 1))
    wm = mx.array(w.transpose(0, 2, 3, 1))
    gm = mx.array(g.transpose(0, 2, 3, 1))
    y, vjp = mx.vjp(lambda a, b: mx.conv2d(a, b, stride=2, padding=1), [xm, wm], [gm])
    want_y = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), stride=2, padding=1)
    np.testing.assert_allclose(np.array(y[0]).transpose(0, 3, 1, 2), want_y.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.array(vjp[0]).transpose(0, 3, 1, 2), xt.grad, atol=1e-4)
    np.testing.assert_allclose(np.array(vjp[1]).transpose(0, 3, 1, 2), wt.grad, atol=1e-4)


@needs_onednn
def test_threads_follow_set_num_threads():
    import ctypes

    gomp = ctypes.CDLL("libgomp.so.1")
    before = mx.get_num_threads()
    try:
        mx.set_num_threads(1)
        assert gomp.omp_get_max_threads() == 1
        mx.set_num_threads(2)
        assert gomp.omp_get_max_threads() == 2
    finally:
        mx.set_num_threads(before)


@needs_onednn
def test_cache_evicts_and_frees(monkeypatch):
    monkeypatch.setattr(onednn, "_CACHE_SIZE", 2)
    rng = np.random.default_rng(7)
    w = mx.array(rng.standard_normal((4, 3, 3, 2)).astype(np.float32))
    for size in (5, 6, 7, 8, 5):  # five shapes through a cache of two: made, dropped, remade
        x = rng.standard_normal((1, size, size, 2)).astype(np.float32)
        ours = mx.conv2d(mx.array(x), w, padding=1)
        with onednn.disabled():
            _close(ours, mx.conv2d(mx.array(x), w, padding=1))
    assert len(onednn._CACHE) <= 2


@needs_onednn
@pytest.mark.parametrize("layout", ["C", "F", "transposed"])
def test_packed_matmul_matches_numpy(layout):
    rng = np.random.default_rng(8)
    b = rng.standard_normal((48, 80)).astype(np.float32)
    b = {"C": b, "F": np.asfortranarray(b), "transposed": b.T.copy().T}[layout]
    packed = onednn.packed_matmul(b, 5)
    assert packed is not None
    out = np.empty((5, 80), np.float32)
    for _ in range(2):  # one packing, several products
        a = rng.standard_normal((5, 48)).astype(np.float32)
        packed(a, out)
        _close(out, a @ b)
    assert onednn.packed_matmul(b.astype(np.float64), 5) is None
    with onednn.disabled():
        assert onednn.packed_matmul(b, 5) is None


@needs_onednn
@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_recurrent_scans_match_numpy_products(layer, monkeypatch):
    import chainrule.nn as nn

    calls = _counting(monkeypatch, onednn.Packed, ("__call__",))
    mx.random.seed(9)
    model = getattr(nn, layer)(6, 8)
    x = mx.random.normal((3, 5, 6))

    def loss(params, x):
        model.update(params)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        return (out * mx.cos(out)).sum()

    params = model.parameters()
    step = mx.value_and_grad(loss, argnums=(0, 1))
    ours = step(params, x)
    assert calls["__call__"] == 10  # five steps forward, five backward
    with onednn.disabled():
        reference = step(params, x)
    assert calls["__call__"] == 10
    _close(ours[0], reference[0])
    flat = dict(tree_flatten(ours[1]))
    for key, value in tree_flatten(reference[1]):
        _close(flat[key], value)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
def test_torch_lstm_layers_use_the_fused_kernel(bias, monkeypatch):
    import chainrule.torch as torch

    calls = _counting(monkeypatch, onednn._LSTM, ("forward", "backward"))
    torch.manual_seed(0)
    model = torch.nn.LSTM(5, 4, num_layers=2, bidirectional=True, bias=bias)
    x = torch.randn(6, 3, 5)
    h0, c0 = torch.randn(4, 3, 4), torch.randn(4, 3, 4)

    def run():
        model.zero_grad()
        xg = x.clone().requires_grad_(True)
        out, (h, c) = model(xg, (h0, c0))
        (out * out.cos()).sum().add(h.sum()).add((c * c).sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        return [out.detach(), h.detach(), c.detach(), xg.grad] + grads

    ours = run()
    assert calls == {"forward": 4, "backward": 4}  # two layers, two directions
    with onednn.disabled():
        reference = run()
    assert calls == {"forward": 4, "backward": 4}
    for a, b in zip(ours, reference):
        _close(a.numpy(), b.numpy())


@needs_onednn
def test_lstm_sequence_second_order_and_compile():
    from chainrule.nn.layers.recurrent import lstm_sequence

    rng = np.random.default_rng(10)
    f = lambda *s: mx.array(rng.standard_normal(s).astype(np.float32) * 0.5)  # noqa: E731
    x, w_ih, w_hh, b, h0, c0 = f(4, 2, 3), f(8, 3), f(8, 2), f(8), f(2, 2), f(2, 2)

    def loss(x, w_hh):
        return (lstm_sequence(x, w_ih, w_hh, b, h0, c0, True) ** 2).sum()

    def grad_norm(x, w_hh):
        gx, gw = mx.grad(loss, argnums=(0, 1))(x, w_hh)
        return (gx * gx).sum() + (gw * gw).sum()

    step = mx.value_and_grad(loss, argnums=(0, 1))
    ours = [step(x, w_hh), mx.grad(grad_norm, argnums=(0, 1))(x, w_hh)]
    compiled = mx.compile(step)
    for _ in range(2):
        value, grads = compiled(x, w_hh)
        _close(value, ours[0][0])
        for a, b_ in zip(grads, ours[0][1]):
            _close(a, b_)
    with onednn.disabled():
        reference = [step(x, w_hh), mx.grad(grad_norm, argnums=(0, 1))(x, w_hh)]
    _close(ours[0][0], reference[0][0])
    for a, b_ in zip(ours[0][1], reference[0][1]):
        _close(a, b_)
    for a, b_ in zip(ours[1], reference[1]):
        _close(a, b_, rtol=1e-4)


@needs_onednn
@pytest.mark.parametrize(
    "a_shape, b_shape, a_t, b_t",
    [
        ((96, 80), (80, 72), False, False),
        ((96, 80), (80, 72), True, False),  # x.T @ g (a weight's gradient)
        ((96, 80), (80, 72), False, True),  # x @ W.T (a Linear)
        ((6, 4, 32, 24), (6, 4, 24, 40), False, True),  # attention's q @ k.T
        ((3, 1, 64, 48), (1, 5, 48, 64), False, False),  # broadcast stacks
        ((7, 64, 48), (48, 96), False, False),  # a stack times a matrix
    ],
)
def test_gemm_matches_numpy(a_shape, b_shape, a_t, b_t, monkeypatch):
    rng = np.random.default_rng(11)

    def make(shape, transposed):
        if not transposed:
            return rng.standard_normal(shape).astype(np.float32)
        swapped = shape[:-2] + (shape[-1], shape[-2])
        return np.swapaxes(rng.standard_normal(swapped).astype(np.float32), -1, -2)

    a, b = make(a_shape, a_t), make(b_shape, b_t)
    got = onednn.matmul(a, b)
    assert got is not None and got.flags.c_contiguous
    _close(got, np.matmul(a, b))
    # the engine's matmul takes it, and its gradients (products again) match NumPy's kernels
    calls = _counting(monkeypatch, onednn._Gemm, ("__call__",))
    fn = mx.grad(lambda p, q: (mx.sin(p @ q)).sum(), argnums=(0, 1))
    ours = fn(mx.array(a), mx.array(b))
    assert calls["__call__"] >= 1
    with onednn.disabled():
        reference = fn(mx.array(a), mx.array(b))
    for x, y in zip(ours, reference):
        _close(x, y, rtol=1e-4)


def test_gemm_declines_what_it_does_not_serve():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    assert onednn.matmul(a[:8, :8], a[:8, :8]) is None  # under GEMM_MIN_WORK
    assert onednn.matmul(a.astype(np.float64), a.astype(np.float64)) is None
    assert onednn.matmul(a[0], a) is None  # a vector
    assert onednn.matmul(a, a[:32]) is None  # mismatched inner sizes
    if onednn.available():
        big = rng.standard_normal((128, 128)).astype(np.float32)
        flipped = big[::-1]  # a negative stride: NumPy's
        assert onednn.matmul(flipped, big) is None
        _close(np.asarray(mx.array(flipped) @ mx.array(big)), flipped @ big)


@needs_onednn
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_hang():
    # GNU OpenMP's thread pool does not survive fork: after a two-thread product in the
    # parent, the child's first parallel region would wait forever for the parent's threads.
    code = (
        "import os, time, chainrule.core as mx\n"
        "from chainrule.core import onednn\n"
        "mx.set_num_threads(2)\n"
        "a = mx.random.normal((512, 512)); mx.eval(a @ a)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    mx.set_num_threads(2)  # stays 1 in the child\n"
        "    mx.eval(a @ a)\n"
        "    x = mx.random.normal((2, 16, 16, 8)); w = mx.random.normal((8, 3, 3, 8))\n"
        "    mx.eval(mx.conv2d(x, w))\n"
        "    os._exit(0 if onednn._STATE['threads'] == 1 else 3)\n"
        "for _ in range(300):\n"
        "    done, status = os.waitpid(pid, os.WNOHANG)\n"
        "    if done:\n"
        "        raise SystemExit(os.waitstatus_to_exitcode(status))\n"
        "    time.sleep(0.05)\n"
        "os.kill(pid, 9)\n"
        "raise SystemExit('the child hung')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("kernels", ["onednn", "numpy"])
@pytest.mark.parametrize("shape", [(0, 8, 8, 3), (0, 8, 3), (0, 8, 8, 20)])
def test_empty_batches_give_zero_gradients(kernels, shape):
    # PyTorch: a convolution of zero examples has an empty input gradient and a zero weight
    # gradient (the NumPy kernels' col2im and kept columns failed on it before)
    if kernels == "onednn" and not onednn.available():
        pytest.skip(onednn.status())
    nd = len(shape) - 2
    x = mx.zeros(shape)
    w = mx.ones((4,) + (3,) * nd + (shape[-1],))
    with contextlib.nullcontext() if kernels == "onednn" else onednn.disabled():
        for stride in (1, 2):
            gx, gw = mx.grad(
                lambda x, w, s=stride: mx.conv_general(x, w, stride=s, padding=1).sum(),
                argnums=(0, 1),
            )(x, w)
            assert gx.shape == x.shape and gw.shape == w.shape
            assert not np.asarray(gw).any()


@needs_onednn
def test_threads_share_the_cached_primitives():
    # a thread worker (DataLoader's thread workers, a user's pool) and the main thread run
    # the same cached convolution and product at once: each gets its own answer
    import threading

    rng = np.random.default_rng(13)
    w = rng.standard_normal((16, 3, 3, 8)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    inputs = [
        (rng.standard_normal((4, 12, 12, 8)).astype(np.float32), rng.standard_normal((64, 256)))
        for _ in range(4)
    ]
    inputs = [(x, a.astype(np.float32)) for x, a in inputs]
    with onednn.disabled():
        expected = [(np.asarray(mx.conv2d(mx.array(x), mx.array(w))), a @ b) for x, a in inputs]
    errors: list = []

    def work(k: int) -> None:
        x, a = inputs[k]
        for _ in range(30):
            y = np.asarray(mx.conv2d(mx.array(x), mx.array(w)))
            p = onednn.matmul(a, b)
            close = [
                np.abs(got - want).max() <= 2e-5 * np.abs(want).max()
                for got, want in zip((y, p), expected[k])
            ]
            if not all(close):
                errors.append(k)
                return

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@needs_onednn
def test_addmm_takes_the_gemm(monkeypatch):
    rng = np.random.default_rng(14)
    c = mx.array(rng.standard_normal((72,)).astype(np.float32))
    a = mx.array(rng.standard_normal((96, 80)).astype(np.float32))
    b = mx.array(rng.standard_normal((80, 72)).astype(np.float32))
    calls = _counting(monkeypatch, onednn._Gemm, ("__call__",))
    ours = mx.addmm(c, a, b, alpha=0.5, beta=2.0)
    assert calls["__call__"] == 1
    with onednn.disabled():
        _close(ours, mx.addmm(c, a, b, alpha=0.5, beta=2.0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_the_library_loads_with_chainrule_core():
    # its fixed cost is paid at import, as PyTorch's libraries' (docs/performance.md)
    code = (
        "import chainrule.core\n"
        "from chainrule.core import onednn\n"
        "print(onednn._STATE['tried'], onednn._STATE['lib'] is not None, onednn.available())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "True"  # tried at import, before any operation
    assert out[1] == out[2]  # and in use exactly when available
