"""``bias_add`` (a convolution layer's per-channel bias, issue 20): the composite ``y + b``'s
values and gradients in every layout, order and batching, and its fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import batching
from chainrule.core.ops.normalization import _channel_sum_kernel, bias_add


def _pair(shape, dtype=mx.float32, seed=0):
    rng = np.random.default_rng(seed)
    y = mx.array(rng.standard_normal(shape), dtype=dtype)
    b = mx.array(rng.standard_normal(shape[-1]), dtype=dtype)
    return y, b


@pytest.mark.parametrize("shape", [(7, 3), (4, 5, 6, 6), (2, 3, 1)])
def test_values_and_gradients_match_the_composite(shape):
    y, b = _pair(shape, mx.float64)
    c = mx.array(np.random.default_rng(1).standard_normal(shape), dtype=mx.float64)

    def f(op, y, b):
        return (mx.sin(op(y, b)) * c).sum()

    fused = mx.value_and_grad(lambda y, b: f(bias_add, y, b), argnums=(0, 1))(y, b)
    plain = mx.value_and_grad(lambda y, b: f(lambda u, v: u + v, y, b), argnums=(0, 1))(y, b)
    np.testing.assert_allclose(float(fused[0]), float(plain[0]), rtol=1e-12)
    for a, e in zip(fused[1], plain[1]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-12, atol=1e-12)
    # second order through the recorded rule
    gg = mx.grad(lambda b: (mx.grad(lambda y, b: f(bias_add, y, b), 1)(y, b) ** 2).sum())(b)
    ge = mx.grad(lambda b: (mx.grad(lambda y, b: f(lambda u, v: u + v, y, b), 1)(y, b) ** 2).sum())(
        b
    )
    np.testing.assert_allclose(np.asarray(gg), np.asarray(ge), rtol=1e-10, atol=1e-10)


def test_channel_sums_in_every_layout_and_precision():
    rng = np.random.default_rng(2)
    g = (rng.standard_normal((64, 28, 28, 6)) + 100.0).astype(np.float32)
    want = g.astype(np.float64).sum(axis=(0, 1, 2))
    cf = np.moveaxis(np.ascontiguousarray(np.moveaxis(g, -1, 1)), 1, -1)  # PyTorch's memory
    odd = g[:, ::2]  # neither layout
    for v in (g, cf):
        np.testing.assert_allclose(_channel_sum_kernel(v), want, rtol=1e-6)
    np.testing.assert_allclose(
        _channel_sum_kernel(odd), odd.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5
    )


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
@pytest.mark.parametrize("in_axes", [(0, None), (None, 0), (0, 0)])
def test_vmap_takes_the_batching_rule(in_axes):
    y, b = _pair((3, 2, 4), seed=3)
    ys = mx.stack([y, y * 2, y - 1])
    bs = mx.stack([b, b * 3, b + 1])
    args = tuple(s if ax == 0 else u for s, u, ax in zip((ys, bs), (y, b), in_axes))
    before = batching.STATS["vectorised"]
    got = mx.vmap(lambda y, b: bias_add(y, b) ** 2, in_axes=in_axes)(*args)
    assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
    want = [
        (args[0][i] if in_axes[0] == 0 else y) + (args[1][i] if in_axes[1] == 0 else b)
        for i in range(3)
    ]
    np.testing.assert_allclose(np.asarray(got), np.stack([np.asarray(w) ** 2 for w in want]), 1e-6)


def test_other_shapes_and_mixed_dtypes_fall_back_to_the_sum():
    y, b = _pair((2, 3))
    b64 = b.astype(mx.float64)
    assert bias_add(y, b64).dtype == (y + b64).dtype
    m = mx.ones((2, 3))
    np.testing.assert_array_equal(np.asarray(bias_add(m, mx.ones((2, 3)))), np.full((2, 3), 2.0))
    i = mx.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(np.asarray(bias_add(i, mx.array([1, 1]))), [[2, 3], [4, 5]])


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_conv_layer_bias_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 3, 10, 10)).astype(np.float32)
    grads = []
    for lib in (torch, ct):
        lib.manual_seed(0)
        conv = lib.nn.Conv2d(3, 5, 3, padding=1)
        with lib.no_grad():
            conv.weight.copy_(
                lib.tensor(np.linspace(-1, 1, 135, dtype=np.float32).reshape(5, 3, 3, 3))
            )
            conv.bias.copy_(lib.tensor(np.arange(5, dtype=np.float32)))
        y = conv(lib.tensor(x))
        (y.relu() * y).sum().backward()
        grads.append((y.detach().numpy(), conv.weight.grad.numpy(), conv.bias.grad.numpy()))
    for a, e in zip(*grads):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-3)
