"""GELU (exact and tanh), SiLU on the GPU: the value and its derivative as one fused kernel
(``GpuBackend.fuse``, ``cupy.fuse`` on CuPy), under the strict CuPy stand-in (which runs the
fused function's arithmetic as it is). Values and gradients equal the CPU's composite; higher
orders go through the composite; a kernel the GPU library cannot build warns once and the
composite is used."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.torch as torch
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray

A = sys.modules["chainrule.nn.layers.activations"]

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

CASES = {
    "gelu": (nn.gelu, A._gelu_reference, (mx.float32,)),
    "gelu_approx": (nn.gelu_approx, A._gelu_approx_reference, (mx.float32, mx.float64)),
    "silu": (nn.silu, A._silu_reference, (mx.float32, mx.float64)),
}


def _x(dtype):
    v = np.random.default_rng(0).standard_normal(64) * 3
    return mx.array(np.concatenate([v, [0.0, -30.0, 30.0]]), dtype=dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_gpu_activation_equals_the_cpu_composite(name):
    fn, reference, dtypes = CASES[name]
    for dtype in dtypes:
        x = _x(dtype)
        want_y = np.array(reference(x))
        want_g = np.array(mx.grad(lambda v: (reference(v) * v).sum())(x))
        want_gg = np.array(mx.grad(lambda v: mx.grad(lambda u: reference(u).sum())(v).sum())(x))
        tol = 2e-6 if dtype == mx.float32 else 1e-12
        with backend.use_strict_gpu():
            A._FUSED_GPU.clear()
            xg = x.to(mx.gpu)
            y = fn(xg)
            g = mx.grad(lambda v: (fn(v) * v).sum())(xg)
            gg = mx.grad(lambda v: mx.grad(lambda u: fn(u).sum())(v).sum())(xg)  # composite
            assert callable(A._FUSED_GPU[("strict", name)])  # the fused kernel was built
            for got, want in ((y, want_y), (g, want_g), (gg, want_gg)):
                assert type(got._data) is StrictArray and got.dtype == dtype
                np.testing.assert_allclose(np.asarray(got), want, rtol=tol * 50, atol=tol)


def test_other_dtypes_and_the_cpu_keep_the_composite():
    with backend.use_strict_gpu():
        A._FUSED_GPU.clear()
        x16 = _x(mx.float16).to(mx.gpu)
        assert nn.silu(x16).dtype == mx.float16 and nn.gelu(x16).dtype == mx.float16
        assert nn.gelu_approx(_x(mx.float32)).dtype == mx.float32  # host: the composite
        assert A._FUSED_GPU == {}


def test_a_kernel_the_gpu_library_cannot_build_warns_once_and_falls_back(monkeypatch):
    x = _x(mx.float32)
    want = np.array(mx.grad(lambda v: nn.silu(v).sum())(x))
    with backend.use_strict_gpu() as gb:
        A._FUSED_GPU.clear()

        def broken(fn):
            raise RuntimeError("no NVRTC here")

        monkeypatch.setattr(gb, "fuse", broken)
        xg = x.to(mx.gpu)
        with pytest.warns(RuntimeWarning, match="silu: the fused GPU kernel failed"):
            got = mx.grad(lambda v: nn.silu(v).sum())(xg)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once only
            again = mx.grad(lambda v: nn.silu(v).sum())(xg)
        for g in (got, again):
            assert type(g._data) is StrictArray
            np.testing.assert_allclose(np.asarray(g), want, rtol=1e-6, atol=1e-7)
    A._FUSED_GPU.clear()


def test_pytorch_style_functions_and_modules_take_the_fused_kernels():
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    want = {}
    for name, f in (
        ("silu", lambda t: torch.nn.functional.silu(t)),
        ("tanh", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
        ("gelu", lambda t: torch.nn.GELU()(t)),
    ):
        t = torch.tensor(x, requires_grad=True)
        f(t).sum().backward()
        want[name] = (f(torch.tensor(x)).numpy(), t.grad.numpy())
    with backend.use_strict_gpu():
        A._FUSED_GPU.clear()
        for name, f in (
            ("silu", lambda t: torch.nn.functional.silu(t)),
            ("tanh", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
            ("gelu", lambda t: torch.nn.GELU()(t)),
        ):
            t = torch.tensor(x, device="cuda", requires_grad=True)
            y = f(t)
            y.sum().backward()
            assert y.device.type == "cuda" and t.grad.device.type == "cuda"
            np.testing.assert_allclose(y.cpu().numpy(), want[name][0], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(t.grad.cpu().numpy(), want[name][1], rtol=1e-5, atol=1e-6)
        assert {k[1] for k in A._FUSED_GPU} == {"silu", "gelu_approx", "gelu"}
    A._FUSED_GPU.clear()


def test_a_kernel_that_widens_python_floats_keeps_the_inputs_dtype(monkeypatch):
    """Where the GPU library's fused kernel computes a float32 input with float64 constants
    (its typing of Python floats), the results come back in the input's dtype."""
    x = _x(mx.float32)
    want = np.array(nn.silu(x))
    with backend.use_strict_gpu() as gb:
        A._FUSED_GPU.clear()

        def widening(fn):
            return lambda *args: tuple(r.astype(np.float64) for r in fn(*args))

        monkeypatch.setattr(gb, "fuse", widening)
        xg = x.to(mx.gpu)
        y = nn.silu(xg)
        g = mx.grad(lambda v: nn.silu(v).sum())(xg)
        assert y.dtype == mx.float32 and g.dtype == mx.float32
        np.testing.assert_allclose(np.asarray(y), want, rtol=1e-6, atol=1e-7)
    A._FUSED_GPU.clear()
