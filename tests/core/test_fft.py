"""``mx.fft`` against NumPy (values, dtypes, errors) and PyTorch (gradients)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import batching

RNG = np.random.default_rng(7)


def _c64(*shape):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def _f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("n", [None, 5, 12])
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_one_dimensional_transforms_match_numpy(name, n, axis, norm):
    x = _f32(8, 6) if name == "rfft" else _c64(8, 6)
    got = getattr(mx.fft, name)(mx.array(x), n=n, axis=axis, norm=norm)
    want = getattr(np.fft, name)(x, n=n, axis=axis, norm=norm)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn", "rfftn"])
@pytest.mark.parametrize("s,axes", [(None, None), ((5, 10), (1, 2)), ((4, 3), (2, 0))])
def test_multi_dimensional_transforms_match_numpy(name, s, axes):
    x = _f32(4, 6, 8) if name.startswith("rfft") else _c64(4, 6, 8)
    kwargs = {} if axes is None and name.endswith("2") else {"s": s, "axes": axes}
    got = getattr(mx.fft, name)(mx.array(x), **kwargs)
    want = getattr(np.fft, name)(x, **kwargs)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_irfftn_matches_numpy_with_an_odd_output_size():
    x = np.fft.rfftn(_f32(4, 7), axes=(0, 1))
    got = mx.fft.irfftn(mx.array(x), s=(4, 7), axes=(0, 1))
    np.testing.assert_allclose(np.asarray(got), np.fft.irfftn(x, s=(4, 7), axes=(0, 1)), atol=1e-5)


def test_result_types_follow_mlx_and_keep_64_bit_inputs():
    assert mx.fft.fft(mx.array(_f32(4))).dtype == mx.complex64
    assert mx.fft.fft(mx.array([1, 2, 3])).dtype == mx.complex64
    assert mx.fft.rfft(mx.array(_f32(4))).dtype == mx.complex64
    assert mx.fft.irfft(mx.array(_c64(4))).dtype == mx.float32
    x64 = mx.array(RNG.standard_normal(6), dtype=mx.float64)
    assert mx.fft.rfft(x64).dtype == mx.complex128
    assert mx.fft.irfft(mx.fft.rfft(x64)).dtype == mx.float64
    np.testing.assert_allclose(
        np.asarray(mx.fft.irfft(mx.fft.rfft(x64), n=6)), np.asarray(x64), atol=1e-12
    )


@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
@pytest.mark.parametrize("axes", [None, 0, [1], [0, -1]])
def test_shifts_match_numpy(name, axes):
    x = _f32(5, 6)
    got = getattr(mx.fft, name)(mx.array(x), axes=axes)
    np.testing.assert_array_equal(np.asarray(got), getattr(np.fft, name)(x, axes=axes))


def test_frequencies_match_numpy():
    for n, d in [(1, 1.0), (5, 0.25), (8, -0.5)]:
        np.testing.assert_array_equal(
            np.asarray(mx.fft.fftfreq(n, d)), np.fft.fftfreq(n, d).astype(np.float32)
        )
        np.testing.assert_array_equal(
            np.asarray(mx.fft.rfftfreq(n, d)), np.fft.rfftfreq(n, d).astype(np.float32)
        )


def test_errors_name_the_function_and_the_argument():
    with pytest.raises(ValueError, match="fft: norm .*'sideways'"):
        mx.fft.fft(mx.array([1.0, 2.0]), norm="sideways")
    with pytest.raises(ValueError, match="irfftn: .*at least one dimension"):
        mx.fft.irfftn(mx.array(3.0))
    with pytest.raises(ValueError, match="fft2: axis 2 is out of range"):
        mx.fft.fft2(mx.zeros((3, 3)), axes=(0, 2))
    with pytest.raises(ValueError, match="fftn: axes .* repeat"):
        mx.fft.fftn(mx.zeros((3, 3)), axes=(0, -2))
    with pytest.raises(ValueError, match="fft: invalid output size"):
        mx.fft.fft(mx.zeros(3), n=0)
    with pytest.raises(ValueError, match="fftshift: axis -3"):
        mx.fft.fftshift(mx.zeros((2, 2)), axes=[-3])
    with pytest.raises(ValueError, match="fftfreq: n must be positive"):
        mx.fft.fftfreq(0)
    with pytest.raises(ValueError, match="rfftfreq: d must not be zero"):
        mx.fft.rfftfreq(4, d=0.0)


def test_jvp_is_the_transform_of_the_tangent():
    for fn, x in [
        (mx.fft.fftn, _c64(3, 4)),
        (mx.fft.rfftn, _f32(3, 4)),
        (mx.fft.irfftn, _c64(3, 4)),
    ]:
        t = _c64(3, 4) if x.dtype == np.complex64 else _f32(3, 4)
        _, (out,) = mx.jvp(fn, [mx.array(x)], [mx.array(t)])
        np.testing.assert_allclose(np.asarray(out), np.asarray(fn(mx.array(t))), atol=1e-5)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_vmap_takes_the_batched_path():
    x = mx.array(_c64(4, 3, 6))
    before = batching.STATS["vectorised"]
    got = mx.vmap(lambda v: mx.fft.fft2(v, norm="ortho"))(x)
    assert batching.STATS["vectorised"] == before + 1
    np.testing.assert_allclose(np.asarray(got), np.fft.fft2(np.asarray(x), norm="ortho"), atol=1e-5)


def test_second_order_gradients_of_real_transforms():
    x = mx.array(RNG.standard_normal((3, 6)), dtype=mx.float64)
    mx.check_grads(lambda v: mx.fft.irfft(mx.fft.rfft(v) * 1.0, n=6) * v, [x], order=2)
    mx.check_grads(lambda v: mx.real(mx.fft.fftn(v, s=(4, 5))) * 2, [x], order=2)


@pytest.mark.parametrize(
    "real,inverse", [(True, True), (True, False), (False, True), (False, False)]
)
@pytest.mark.parametrize("shape,axes", [((4, 4), (-1,)), ((2, 7), (-2, -1)), ((7, 7), (-1,))])
def test_gradients_match_pytorch(real, inverse, shape, axes):
    torch = pytest.importorskip("torch")
    name = ("i" if inverse else "") + ("r" if real else "") + "fftn"
    x = _f32(*shape) if real and not inverse else _c64(*shape)

    def f(v):
        return (mx.abs(getattr(mx.fft, name)(v, axes=axes)) ** 2).sum()

    def g(v):
        return (torch.abs(getattr(torch.fft, name)(v, dim=axes)) ** 2).sum()

    xt = torch.tensor(x)
    np.testing.assert_allclose(float(f(mx.array(x))), float(g(xt)), rtol=1e-5)
    want = torch.func.grad(g)(xt).numpy()
    got = np.asarray(mx.grad(f)(mx.array(x)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).mean())
