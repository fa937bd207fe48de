"""mx.quantize / dequantize / quantized products: MLX's bit layout, rounding and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx

RNG = np.random.default_rng(0)


def _np(a):
    return np.asarray(a.numpy())


def _unpack_by_hand(words: np.ndarray, bits: int) -> np.ndarray:
    """Little-endian bit stream of ``bits``-bit values, read one bit at a time."""
    by = np.ascontiguousarray(words.astype("<u4")).view(np.uint8)
    stream = np.unpackbits(by, axis=-1, bitorder="little")
    stream = stream.reshape(*stream.shape[:-1], -1, bits)
    return (stream * (1 << np.arange(bits))).sum(-1)


def test_affine_layout_and_parameters_by_hand():
    # a group 0..63 at 4 bits: the larger edge (63) is the bias, scale = 63 / -15
    w = mx.array(np.arange(64, dtype=np.float32)[None])
    wq, s, b = mx.quantize(w, group_size=64, bits=4)
    assert wq.dtype == mx.uint32 and wq.shape == (1, 8)
    assert s.item() == pytest.approx(-4.2) and b.item() == 63.0
    # q = rint((w - 63) / -4.2): w = 0..7 -> 15 15 15 14 14 14 14 13, low nibble first
    assert int(_np(wq)[0, 0]) == 0xDEEEEFFF
    np.testing.assert_allclose(
        _np(mx.dequantize(wq, s, b, 64, 4))[0, [0, 63]], [0.0, 63.0], atol=1e-5
    )


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_affine_round_trip_and_packing(bits, group_size):
    w = RNG.standard_normal((6, 256)).astype(np.float32)
    wq, s, b = mx.quantize(mx.array(w), group_size, bits)
    assert wq.shape == (6, 256 * bits // 32) and s.shape == b.shape == (6, 256 // group_size)
    q = _unpack_by_hand(_np(wq), bits)
    assert q.max() <= 2**bits - 1
    s_, b_ = _np(s), _np(b)
    qf = q.astype(np.float32).reshape(6, -1, group_size)
    by_hand = (qf * s_[..., None] + b_[..., None]).reshape(6, 256)
    w_hat = _np(mx.dequantize(wq, s, b, group_size, bits))
    np.testing.assert_array_equal(w_hat, by_hand.astype(np.float32))
    err = np.abs(w - w_hat).reshape(6, -1, group_size)
    assert np.all(err <= np.abs(s_)[..., None] + 1e-6)
    # the edge of larger magnitude of every group is represented exactly
    g = w.reshape(6, -1, group_size)
    edge = np.where(np.abs(g.min(-1)) > np.abs(g.max(-1)), g.min(-1), g.max(-1))
    np.testing.assert_array_equal(b_, edge)


def test_affine_zeros_and_half_precision():
    wq, s, b = mx.quantize(mx.zeros((4, 64)), 32, 3)
    assert np.all(_np(mx.dequantize(wq, s, b, 32, 3)) == 0)
    w = mx.random.normal((4, 64)).astype(mx.float16)
    wq, s, b = mx.quantize(w)
    assert s.dtype == b.dtype == mx.float16
    assert mx.dequantize(wq, s, b).dtype == mx.float16


def test_fp8_codes():
    codes = np.arange(256, dtype=np.uint8)
    vals = mx.from_fp8(mx.array(codes), dtype=mx.float32)
    finite = (codes & 0x7F) != 0x7F
    np.testing.assert_array_equal(_np(mx.to_fp8(vals))[finite], codes[finite])
    x = mx.array([1.0, 448.0, 1e6, -1e6, 2.0**-9, 2.0**-10 * 1.5, 1.0625, 1.1875])
    # 1.0625 lies between 1 and 1.125: ties to the even mantissa (1.0); 1.1875 -> 1.25
    assert _np(mx.to_fp8(x)).tolist() == [0x38, 0x7E, 0x7E, 0xFE, 0x01, 0x01, 0x38, 0x3A]


@pytest.mark.parametrize("mode,group_size", [("mxfp4", 32), ("nvfp4", 16)])
@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_fp4_modes_represent_their_grid_exactly(mode, group_size):
    lut = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float32)
    w = lut[RNG.integers(0, 16, (16, 64))].reshape(-1, group_size)
    w[:, 0] = 6
    w = w.reshape(16, 64)
    wq, s = mx.quantize(mx.array(w), mode=mode)
    assert wq.shape == (16, 8) and s.dtype == mx.uint8 and s.shape == (16, 64 // group_size)
    np.testing.assert_array_equal(_np(mx.dequantize(wq, s, mode=mode)), w)
    codes = _unpack_by_hand(_np(wq), 4)
    np.testing.assert_array_equal(np.abs(lut[codes]), np.abs(w))


@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_mx_scales_are_powers_of_two_and_nvfp4_global_scale():
    w = RNG.standard_normal((8, 64)).astype(np.float32)
    for mode in ("mxfp4", "mxfp8"):
        wq, s = mx.quantize(mx.array(w), mode=mode)
        w_hat = _np(mx.dequantize(wq, s, mode=mode))
        assert np.abs(w - w_hat).max() < 0.7
    g = mx.array(np.abs(w).max(), mx.float32)
    wq, s = mx.quantize(mx.array(w), mode="nvfp4", global_scale=g)
    w_hat = _np(mx.dequantize(wq, s, mode="nvfp4", global_scale=g))
    assert np.abs(w - w_hat).max() < 0.5


def test_argument_errors():
    w = mx.random.normal((32, 64))
    with pytest.raises(ValueError, match="mode"):
        mx.quantize(w, mode="xyz")
    with pytest.raises(ValueError, match="bits"):
        mx.quantize(w, bits=7)
    with pytest.raises(ValueError, match="group size"):
        mx.quantize(w, group_size=64, mode="mxfp4")
    with pytest.raises(ValueError, match="floating"):
        mx.quantize(mx.zeros((4, 64), mx.int32))
    with pytest.raises(ValueError, match="divisible"):
        mx.quantize(mx.zeros((4, 48)))
    wq, s, b = mx.quantize(w, 32, 4)
    with pytest.raises(ValueError, match="Biases"):
        mx.dequantize(wq, s, None, 32, 4)
    with pytest.raises(ValueError, match="Biases"):
        mx.quantized_matmul(mx.ones((1, 64)), wq, s, None, group_size=32, bits=4)
    with pytest.raises(ValueError, match="does not match"):
        mx.quantized_matmul(mx.ones((1, 64)), wq, s, b, False, 32, 4)
    with pytest.raises(ValueError, match="incompatible"):
        mx.quantized_matmul(mx.ones((1, 64)), wq, s.T, b.T, True, 32, 4)


@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize("mode", ["affine", "mxfp4", "nvfp4", "mxfp8"])
@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_quantized_matmul_equals_dequantized_product(transpose, mode):
    w = RNG.standard_normal((3, 64, 64)).astype(np.float32)
    x = RNG.standard_normal((3, 5, 64)).astype(np.float32)
    q = mx.quantize(mx.array(w), mode=mode, group_size=32 if mode == "affine" else None)
    kw = dict(mode=mode, group_size=32 if mode == "affine" else None)
    w_hat = _np(mx.dequantize(*q, **kw)) if mode == "affine" else _np(mx.dequantize(*q, mode=mode))
    y = mx.quantized_matmul(mx.array(x), *q, transpose=transpose, **kw)
    ref = x @ (np.swapaxes(w_hat, -1, -2) if transpose else w_hat)
    np.testing.assert_allclose(_np(y), ref, rtol=1e-5, atol=1e-5)


def test_quantized_matmul_gradients_in_x_scales_and_biases():
    w = mx.array(RNG.standard_normal((8, 64)), mx.float64)
    wq, s, b = mx.quantize(w, 32, 4)
    assert s.dtype == mx.float64
    x = mx.array(RNG.standard_normal((3, 64)), mx.float64)

    def f(x, s, b):
        return mx.quantized_matmul(x, wq, s, b, True, 32, 4)

    mx.check_grads(f, [x, s, b], order=2)
    # the VJP in x is the product with the other orientation (MLX's definition)
    c = mx.array(RNG.standard_normal((3, 8)), mx.float64)
    _, (gx,) = mx.vjp(lambda x: f(x, s, b), [x], [c])
    np.testing.assert_allclose(_np(gx), _np(mx.quantized_matmul(c, wq, s, b, False, 32, 4)))


def test_fp_scales_are_not_differentiable():
    wq, s = mx.quantize(mx.random.normal((8, 64)), mode="mxfp4")
    x = mx.random.normal((2, 64))
    with pytest.raises(ValueError):
        mx.grad(lambda s: mx.quantized_matmul(x, wq, s, mode="mxfp4").sum())(s)


def test_gather_qmm_matches_a_loop_and_differentiates():
    E, M, N, K = 3, 2, 16, 64
    x = mx.array(RNG.standard_normal((4, M, K)), mx.float64)
    w = mx.array(RNG.standard_normal((E, N, K)), mx.float64)
    wq, s, b = mx.quantize(w, 32, 8)
    w_hat = _np(mx.dequantize(wq, s, b, 32, 8))
    lhs = np.array([[0, 3], [2, 2]])
    rhs = np.array([[2, 0], [1, 2]])
    out = mx.gather_qmm(x, wq, s, b, mx.array(lhs), mx.array(rhs), True, 32, 8)
    assert out.shape == (2, 2, M, N)
    xn = _np(x)
    ref = np.stack([xn[i] @ w_hat[j].T for i, j in zip(lhs.ravel(), rhs.ravel())])
    np.testing.assert_allclose(_np(out), ref.reshape(2, 2, M, N), rtol=1e-12)
    f = lambda x, s, b: mx.gather_qmm(  # noqa: E731
        x, wq, s, b, mx.array(lhs), mx.array(rhs), True, 32, 8, sorted_indices=False
    )
    mx.check_grads(f, [x, s, b], order=1)


def test_qqmm_quantizes_both_operands():
    x = mx.random.normal((1, 64))
    w = mx.random.normal((16, 64))
    for mode in ("nvfp4", "mxfp8"):
        wq, s = mx.quantize(w, mode=mode)
        x_hat = mx.dequantize(*mx.quantize(x, mode=mode), mode=mode, dtype=mx.float32)
        w_hat = mx.dequantize(wq, s, mode=mode, dtype=mx.float32)
        y = mx.qqmm(x, wq, s, mode=mode)
        np.testing.assert_allclose(_np(y), _np(x_hat @ w_hat.T), rtol=1e-5, atol=1e-5)
        # an unquantized w is quantized on the fly; gradients pass straight through
        np.testing.assert_allclose(_np(mx.qqmm(x, w, mode=mode)), _np(y), rtol=1e-5, atol=1e-5)
        g = mx.grad(lambda x, m=mode: mx.qqmm(x, w, mode=m).sum())(x)
        np.testing.assert_allclose(_np(g), _np(w_hat.sum(0, keepdims=True)), rtol=1e-5, atol=1e-5)
