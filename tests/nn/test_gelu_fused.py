"""gelu's fused float32 path (issue 20): ``Phi`` from a rational ``erfc`` approximation and a
hand-written derivative; it must match the exact GELU (float64 ``erfc``) to float32 precision
in both tails, and every transform must see the same function as the ``erf`` formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers import activations


def _exact(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (
        x64 * 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in x64.ravel()]).reshape(x.shape)
    )


def test_values_and_derivative_match_the_exact_gelu():
    x = np.concatenate([np.linspace(-9, 9, 4001), [0.0, -0.0, 1e-6, -1e-6]]).astype(np.float32)
    got = np.array(nn.gelu(mx.array(x)))
    want = _exact(x)
    np.testing.assert_allclose(got, want, rtol=5e-5, atol=5e-7)
    g = np.array(mx.grad(lambda v: mx.sum(nn.gelu(v)))(mx.array(x)))
    x64 = x.astype(np.float64)
    dwant = _exact(x) / np.where(x64 == 0, 1, x64) + x64 * np.exp(-(x64**2) / 2) / math.sqrt(
        2 * math.pi
    )
    dwant[x64 == 0] = 0.5
    np.testing.assert_allclose(g, dwant, rtol=1e-4, atol=1e-6)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_transforms_see_the_erf_formula():
    a = mx.array(np.random.default_rng(0).standard_normal(40).astype(np.float32))
    ref = activations._gelu_reference

    def gg(f):
        return mx.grad(lambda v: mx.sum(mx.grad(lambda u: mx.sum(f(u) ** 2))(v) ** 2))(a)

    np.testing.assert_allclose(np.array(gg(nn.gelu)), np.array(gg(ref)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.array(mx.jvp(nn.gelu, [a], [a])[1][0]),
        np.array(mx.jvp(ref, [a], [a])[1][0]),
        rtol=1e-5,
        atol=1e-6,
    )
    step = mx.compile(mx.grad(lambda u: mx.sum(nn.gelu(u) ** 2)))
    want = mx.grad(lambda u: mx.sum(ref(u) ** 2))
    for v in (a, a * 3, a * 2):
        np.testing.assert_allclose(np.array(step(v)), np.array(want(v)), rtol=1e-5, atol=1e-5)
    assert step.last_reason is None  # replayed, not fallen back to eager


def test_other_dtypes_and_empty_arrays():
    x = mx.array(np.linspace(-3, 3, 13), dtype=mx.float16)
    assert nn.gelu(x).dtype == mx.float16
    assert nn.gelu(mx.zeros((0, 3))).shape == (0, 3)
    assert nn.GELU()(mx.array([1.0])).dtype == mx.float32
