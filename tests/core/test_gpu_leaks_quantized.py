"""Quantization and ``mx.segmented_mm`` on the GPU, run against the strict CuPy stand-in.

``mx.quantize``/``dequantize`` and the quantized products pack, unpack and round bits with the
namespace of their input's device; ``segmented_mm`` builds its segment mask there. Each case
runs on the CPU and then on the strict GPU (``StrictArray``s, which refuse implicit conversion
to NumPy and host arrays mixed in, as CuPy's do), both with the GPU as the default device and
with the CPU default and the inputs moved: the results (and gradients) must stay on the GPU and
equal the CPU's (the packed words bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core import backend, devices
from chainrule.core.strict_backend import StrictArray

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

RNG = np.random.default_rng(0)
W = RNG.standard_normal((8, 128)).astype(np.float32)
X = RNG.standard_normal((3, 128)).astype(np.float32)
W3 = RNG.standard_normal((4, 8, 128)).astype(np.float32)
PLACES = ["gpu-default", "moved-to-gpu"]


def _flat(v) -> list:
    if isinstance(v, (tuple, list)):
        return [y for x in v for y in _flat(x)]
    return [v]


def _compare(fn: Callable, inputs: list, place: str, rtol: float = 1e-6) -> None:
    """``fn(*arrays)`` on the CPU and on the strict GPU: every result on the GPU, equal."""
    want = [np.asarray(a) for a in _flat(fn(*[mx.array(v) for v in inputs]))]
    with backend.use_strict_gpu():
        if place == "gpu-default":
            mx.set_default_device(mx.gpu)
            xs = [mx.array(v) for v in inputs]
        else:
            xs = [devices.move(mx.array(v), "gpu") for v in inputs]
        got = _flat(fn(*xs))
        where = {type(g._data).__name__ for g in got}
        host = [backend.to_host(g._data) for g in got]
    assert where == {StrictArray.__name__}, f"results left the GPU: {where}"
    assert len(host) == len(want)
    for g, w in zip(host, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind in "iub":
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_affine_quantize_dequantize(place, bits):
    def fn(w):
        q = mx.quantize(w, 32, bits)
        return [q, mx.dequantize(*q, group_size=32, bits=bits)]

    _compare(fn, [W], place)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("mode", ["mxfp4", "nvfp4", "mxfp8"])
def test_fp_quantize_dequantize(place, mode):
    def fn(w):
        q = mx.quantize(w, mode=mode)
        return [q, mx.dequantize(*q, mode=mode, dtype=mx.float32)]

    _compare(fn, [W], place)


@pytest.mark.parametrize("place", PLACES)
def test_nvfp4_global_scale(place):
    def fn(w, gs):
        q = mx.quantize(w, mode="nvfp4", global_scale=gs)
        return [q, mx.dequantize(*q, mode="nvfp4", global_scale=gs, dtype=mx.float16)]

    _compare(fn, [W, np.float32(3.0)], place)


@pytest.mark.parametrize("place", PLACES)
def test_fp8_round_trip(place):
    def fn(w):
        codes = mx.to_fp8(w * 50)
        return [codes, mx.from_fp8(codes, dtype=mx.float32)]

    _compare(fn, [W], place)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("transpose", [True, False])
def test_affine_quantized_matmul_and_gradients(place, transpose):
    def fn(x, w):
        wq, s, b = mx.quantize(w, 64, 4)  # (N, K) when transposed, else (K, N)
        xx = x if transpose else x[:, :8]

        def loss(x, s, b):
            return mx.quantized_matmul(x, wq, s, b, transpose=transpose).square().sum()

        out = mx.quantized_matmul(xx, wq, s, b, transpose=transpose)
        return [out, mx.grad(loss, argnums=[0, 1, 2])(xx, s, b)]

    _compare(fn, [X, W], place, rtol=1e-5)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("mode", ["mxfp4", "nvfp4", "mxfp8"])
def test_fp_quantized_matmul_and_gradient(place, mode):
    def fn(x, w):
        wq, s = mx.quantize(w, mode=mode)
        loss = lambda x: mx.quantized_matmul(x, wq, s, mode=mode).sum()  # noqa: E731
        return [mx.quantized_matmul(x, wq, s, mode=mode), mx.grad(loss)(x)]

    _compare(fn, [X, W], place, rtol=1e-5)


@pytest.mark.parametrize("place", PLACES)
def test_gather_qmm_and_gradient(place):
    def fn(x, w):
        q = mx.quantize(w, 64, 4)
        rhs = mx.array([2, 0, 2])  # made on the default device (the CPU when moved)

        def loss(x, s):
            return mx.gather_qmm(x, q[0], s, q[2], rhs_indices=rhs).sum()

        out = mx.gather_qmm(x, *q, rhs_indices=rhs)
        return [out, mx.grad(loss, argnums=[0, 1])(x, q[1])]

    _compare(fn, [X[:, None, :], W3], place, rtol=1e-5)


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8"])
def test_qqmm_and_gradient(place, mode):
    def fn(x, w):
        return [mx.qqmm(x, w, mode=mode), mx.grad(lambda x: mx.qqmm(x, w, mode=mode).sum())(x)]

    _compare(fn, [X, W], place, rtol=1e-5)


def test_fp_mode_embedding_refuses_its_bfloat16_rows_on_the_gpu():
    """The FP formats dequantize to bfloat16 by default (MLX's rule), which CuPy has no type
    for: on the GPU that is a clear error naming the way out, not CuPy's own."""
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        emb = nn.QuantizedEmbedding(10, 128, mode="mxfp8")
        with pytest.raises(TypeError, match="CuPy has no bfloat16 type"):
            emb(mx.array([[1, 4]]))


@pytest.mark.parametrize("mode", ["affine"])
def test_quantized_layers_train_on_the_gpu(mode):
    """``nn.QuantizedLinear`` and ``QuantizedEmbedding`` made on the GPU: their outputs and
    the gradient with respect to the input equal the CPU's."""

    def run():
        mx.random.seed(3)
        lin = nn.QuantizedLinear(128, 8, mode=mode)
        emb = nn.QuantizedEmbedding(10, 128, mode=mode)
        ids = mx.array([[1, 4], [9, 0]])
        x = mx.array(X)

        def loss(x):
            return (lin(x) + emb.as_linear(x)[..., :1] + emb(ids).sum()).square().sum()

        value, grad = mx.value_and_grad(loss)(x)
        return [lin(x), emb(ids), emb.as_linear(x), value, grad]

    want = [np.asarray(a) for a in run()]
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        got = run()
        assert all(type(g._data) is StrictArray for g in got)
        host = [backend.to_host(g._data) for g in got]
    for g, w in zip(host, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("place", PLACES)
def test_segmented_mm_and_gradients(place):
    a = RNG.standard_normal((3, 10))
    b = RNG.standard_normal((10, 4))

    def fn(a, b):
        seg = [[0, 4], [4, 10], [2, 2]]  # host data: put next to a
        loss = lambda a, b: mx.segmented_mm(a, b, seg).square().sum()  # noqa: E731
        out = mx.segmented_mm(a, b, mx.array(np.array([[[0, 10], [3, 7]]])))
        return [mx.segmented_mm(a, b, seg), out, mx.grad(loss, argnums=[0, 1])(a, b)]

    _compare(fn, [a, b], place, rtol=1e-12)


def test_bfloat16_results_are_refused_clearly_on_a_cupy_gpu(monkeypatch):
    """CuPy has no bfloat16: the FP formats' default output type is refused with a message
    naming the fix (the strict stand-in, which has one, is dressed as CuPy here)."""
    with backend.use_strict_gpu() as gpu:
        mx.set_default_device(mx.gpu)
        wq, s = mx.quantize(mx.array(W), mode="mxfp8")
        codes = mx.to_fp8(mx.array(W))
        monkeypatch.setattr(gpu, "name", "cupy")
        with pytest.raises(TypeError, match="dtype=mx.float16"):
            mx.dequantize(wq, s, mode="mxfp8")
        with pytest.raises(TypeError, match="CuPy has no bfloat16"):
            mx.from_fp8(codes)
        assert mx.from_fp8(codes, dtype=mx.float16).dtype == mx.float16
