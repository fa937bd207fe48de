"""Gradients through complex values follow MLX's (and PyTorch's) convention.

The gradient of a real loss with respect to z is dL/dRe(z) + i dL/dIm(z); the VJP of a
holomorphic f is g * conj(f'(z)); forward mode gives f'(z) t.
"""

import numpy as np

import chainrule.core as mx

RNG = np.random.default_rng(0)


def _c(*shape):
    return mx.array(
        (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)
    )


def test_vjp_of_holomorphic_functions_conjugates_the_derivative():
    z, g = _c(3, 4), _c(3, 4)
    for fn, deriv in ((mx.exp, mx.exp), (mx.sin, mx.cos), (mx.square, lambda v: 2 * v)):
        _, (v,) = mx.vjp(fn, [z], [g])
        np.testing.assert_allclose(np.asarray(v), np.asarray(g * mx.conj(deriv(z))), atol=1e-5)
    c = mx.array(0.5 - 2j, dtype=mx.complex64)
    _, (v,) = mx.vjp(lambda w: w * c, [z], [g])
    np.testing.assert_allclose(np.asarray(v), np.asarray(g * mx.conj(c)), atol=1e-6)


def test_gradients_of_real_losses_are_d_dre_plus_i_d_dim():
    z = _c(3)
    np.testing.assert_allclose(np.asarray(mx.grad(lambda w: (2 * mx.real(w)).sum())(z)), 2.0)
    np.testing.assert_allclose(np.asarray(mx.grad(lambda w: (2 * mx.imag(w)).sum())(z)), 2j)
    g = mx.grad(lambda w: mx.abs(w).sum())(z)
    np.testing.assert_allclose(np.asarray(g), np.asarray(z / mx.abs(z)), atol=1e-6)


def test_forward_mode_is_the_derivative_times_the_tangent():
    z, t = _c(5), _c(5)
    _, (j,) = mx.jvp(mx.exp, [z], [t])
    np.testing.assert_allclose(np.asarray(j), np.asarray(mx.exp(z) * t), atol=1e-5)
    _, (j,) = mx.jvp(mx.fft.fft, [z], [t])
    np.testing.assert_allclose(np.asarray(j), np.fft.fft(np.asarray(t)), atol=1e-4)
    _, (j,) = mx.jvp(mx.abs, [z], [t])  # real-valued: Re(conj(z) t) / |z|
    want = np.real(np.conj(np.asarray(z)) * np.asarray(t)) / np.abs(np.asarray(z))
    np.testing.assert_allclose(np.asarray(j), want, atol=1e-5)
    assert j.dtype == mx.float32


def test_real_functions_through_complex_values_match_torch():
    import pytest

    torch = pytest.importorskip("torch")
    x = RNG.standard_normal(4)
    y = RNG.standard_normal(4)

    def f(lib, a, b):
        z = (a + 1j * b) * (0.5 - 2j)
        return (lib.abs(lib.exp(z)) + (z * z).real).sum()

    gx, gy = mx.grad(lambda a, b: f(mx, a, b), argnums=(0, 1))(mx.array(x), mx.array(y))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    f(torch, tx, ty).backward()
    np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gy), ty.grad.numpy(), rtol=1e-4)


def test_prod_and_multiply_give_the_same_complex_vjp_to_the_bit():
    p, g = _c(2, 6), _c(6)
    _, (vp,) = mx.vjp(lambda x: x.prod(axis=0), [p], [g])
    _, vm = mx.vjp(mx.multiply, [p[0], p[1]], [g])
    assert np.array_equal(np.asarray(vp), np.asarray(mx.stack(vm)))
    assert np.array_equal(np.asarray(vp[0]), np.asarray(mx.conj(p[1]) * g))
