"""Forward values and gradients of the core operations against PyTorch (skipped without it).

Each case is a pair of functions written once for ``mx`` and once for ``torch``; the test
compares the outputs, then the gradients of ``sum(output * weights)`` with respect to every
input, computed by ``mx.grad`` and by ``torch.autograd``.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx

torch = pytest.importorskip("torch")

_rng = np.random.default_rng(3)


def u(*shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, size=shape)


UNARY = {
    "abs": (mx.abs, torch.abs, u(3, 4)),
    "negative": (mx.negative, torch.neg, u(3, 4)),
    "square": (mx.square, torch.square, u(3, 4)),
    "sqrt": (mx.sqrt, torch.sqrt, u(3, 4, lo=0.2)),
    "rsqrt": (mx.rsqrt, torch.rsqrt, u(3, 4, lo=0.2)),
    "reciprocal": (mx.reciprocal, torch.reciprocal, u(3, 4, lo=0.2)),
    "exp": (mx.exp, torch.exp, u(3, 4)),
    "expm1": (mx.expm1, torch.expm1, u(3, 4)),
    "log": (mx.log, torch.log, u(3, 4, lo=0.2)),
    "log1p": (mx.log1p, torch.log1p, u(3, 4, lo=-0.5)),
    "log2": (mx.log2, torch.log2, u(3, 4, lo=0.2)),
    "log10": (mx.log10, torch.log10, u(3, 4, lo=0.2)),
    "sin": (mx.sin, torch.sin, u(3, 4)),
    "cos": (mx.cos, torch.cos, u(3, 4)),
    "tan": (mx.tan, torch.tan, u(3, 4, lo=-1.2, hi=1.2)),
    "arcsin": (mx.arcsin, torch.asin, u(3, 4, lo=-0.9, hi=0.9)),
    "arccos": (mx.arccos, torch.acos, u(3, 4, lo=-0.9, hi=0.9)),
    "arctan": (mx.arctan, torch.atan, u(3, 4)),
    "sinh": (mx.sinh, torch.sinh, u(3, 4)),
    "cosh": (mx.cosh, torch.cosh, u(3, 4)),
    "tanh": (mx.tanh, torch.tanh, u(3, 4)),
    "arcsinh": (mx.arcsinh, torch.asinh, u(3, 4)),
    "arccosh": (mx.arccosh, torch.acosh, u(3, 4, lo=1.2, hi=3)),
    "arctanh": (mx.arctanh, torch.atanh, u(3, 4, lo=-0.9, hi=0.9)),
    "sigmoid": (mx.sigmoid, torch.sigmoid, u(3, 4, lo=-6, hi=6)),
    "erf": (mx.erf, torch.erf, u(3, 4)),
    "erfinv": (mx.erfinv, torch.erfinv, u(3, 4, lo=-0.9, hi=0.9)),
    "softmax": (lambda x: mx.softmax(x, axis=-1), lambda x: torch.softmax(x, -1), u(3, 4)),
    "log_softmax": (
        lambda x: mx.log_softmax(x, axis=0),
        lambda x: torch.log_softmax(x, 0),
        u(3, 4),
    ),
    "logsumexp": (lambda x: mx.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1), u(3, 4)),
    "sum": (lambda x: mx.sum(x, axis=0), lambda x: x.sum(0), u(3, 4)),
    "mean": (
        lambda x: mx.mean(x, axis=1, keepdims=True),
        lambda x: x.mean(1, keepdim=True),
        u(3, 4),
    ),
    "prod": (lambda x: mx.prod(x, axis=1), lambda x: x.prod(1), u(3, 4)),
    "max": (lambda x: mx.max(x, axis=1), lambda x: x.amax(1), u(3, 4)),
    "min": (lambda x: mx.min(x), lambda x: x.amin(), u(3, 4)),
    "var": (lambda x: mx.var(x, axis=0, ddof=1), lambda x: x.var(0, correction=1), u(3, 4)),
    "std": (lambda x: mx.std(x, axis=1), lambda x: x.std(1, correction=0), u(3, 4)),
    "cumsum": (lambda x: mx.cumsum(x, axis=1), lambda x: torch.cumsum(x, 1), u(3, 4)),
    "cumprod": (lambda x: mx.cumprod(x, axis=0), lambda x: torch.cumprod(x, 0), u(3, 4)),
    "cummax": (lambda x: mx.cummax(x, axis=1), lambda x: torch.cummax(x, 1).values, u(3, 4)),
    "cummin": (lambda x: mx.cummin(x, axis=0), lambda x: torch.cummin(x, 0).values, u(3, 4)),
    "sort": (lambda x: mx.sort(x, axis=1), lambda x: torch.sort(x, 1).values, u(3, 4)),
    "transpose": (lambda x: mx.transpose(x), lambda x: x.T, u(3, 4)),
    "reshape": (lambda x: mx.reshape(x, (2, 6)), lambda x: x.reshape(2, 6), u(3, 4)),
    "flip": (lambda x: mx.flip(x, 1), lambda x: torch.flip(x, [1]), u(3, 4)),
    "roll": (lambda x: mx.roll(x, 1, axis=1), lambda x: torch.roll(x, 1, 1), u(3, 4)),
    "tril": (mx.tril, torch.tril, u(3, 4)),
    "pad": (
        lambda x: mx.pad(x, [(1, 0), (0, 2)]),
        lambda x: torch.nn.functional.pad(x, (0, 2, 1, 0)),
        u(3, 4),
    ),
    "index": (lambda x: x[mx.array([2, 0, 2]), 1:], lambda x: x[[2, 0, 2], 1:], u(3, 4)),
    "clip": (lambda x: mx.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7), u(3, 4)),
    "norm": (
        lambda x: mx.linalg.norm(x, axis=1),
        lambda x: torch.linalg.vector_norm(x, dim=1),
        u(3, 4),
    ),
    "nan_to_num": (mx.nan_to_num, torch.nan_to_num, u(3, 4)),
}

BINARY = {
    "add": (mx.add, torch.add, (3, 4), (4,)),
    "subtract": (mx.subtract, torch.sub, (1, 4), (3, 1)),
    "multiply": (mx.multiply, torch.mul, (3, 4), ()),
    "divide": (mx.divide, torch.div, (3, 4), (3, 4)),
    "power": (mx.power, torch.pow, (3, 4), (4,)),
    "maximum": (mx.maximum, torch.maximum, (3, 4), (4,)),
    "minimum": (mx.minimum, torch.minimum, (3, 4), (3, 4)),
    "arctan2": (mx.arctan2, torch.atan2, (3, 4), (3, 4)),
    "logaddexp": (mx.logaddexp, torch.logaddexp, (3, 4), (4,)),
    "matmul": (mx.matmul, torch.matmul, (2, 3, 4), (4, 5)),
    "matvec": (mx.matmul, torch.matmul, (3, 4), (4,)),
    "outer": (mx.outer, torch.outer, (3,), (4,)),
    "inner": (mx.inner, torch.inner, (3, 4), (2, 4)),
    "concatenate": (
        lambda a, b: mx.concatenate([a, b], 0),
        lambda a, b: torch.cat([a, b], 0),
        (2, 4),
        (3, 4),
    ),
    "stack": (
        lambda a, b: mx.stack([a, b], 1),
        lambda a, b: torch.stack([a, b], 1),
        (3, 4),
        (3, 4),
    ),
    "where": (
        lambda a, b: mx.where(a > 0, a, b),
        lambda a, b: torch.where(a > 0, a, b),
        (3, 4),
        (4,),
    ),
    "einsum": (
        lambda a, b: mx.einsum("ij,kj->ik", a, b),
        lambda a, b: torch.einsum("ij,kj->ik", a, b),
        (3, 4),
        (2, 4),
    ),
    "remainder": (mx.remainder, torch.remainder, (3, 4), (4,)),
}


def _compare(mx_fn, torch_fn, inputs):
    mx_in = [mx.array(x, dtype=mx.float64) for x in inputs]
    t_in = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    t_out = torch_fn(*t_in)
    out = mx_fn(*mx_in)
    np.testing.assert_allclose(np.asarray(out), t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = _rng.standard_normal(tuple(t_out.shape))
    (t_out * torch.tensor(w)).sum().backward()
    grads = mx.grad(
        lambda *xs: (mx_fn(*xs) * mx.array(w, dtype=mx.float64)).sum(),
        argnums=tuple(range(len(inputs))),
    )(*mx_in)
    if len(inputs) == 1:  # one argnum gives its gradient alone (MLX)
        grads = (grads,)
    for g, t in zip(grads, t_in):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_torch(name):
    mx_fn, torch_fn, x = UNARY[name]
    _compare(mx_fn, torch_fn, [x])


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_match_torch(name):
    mx_fn, torch_fn, sa, sb = BINARY[name]
    a = u(*sa, lo=0.3) if name in ("power", "remainder") else u(*sa)
    b = u(*sb, lo=0.5) if name in ("divide", "remainder") else u(*sb)
    _compare(mx_fn, torch_fn, [a, b])


def test_relu_and_abs_at_zero_match_torch():
    x = np.array([-1.0, 0.0, 1.0])
    _compare(lambda a: mx.maximum(a, 0.0), torch.relu, [x])
    _compare(mx.abs, torch.abs, [x])


def test_second_derivatives_match_torch():
    x = u(5)
    t = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad((torch.tanh(t) * t**3).sum(), t, create_graph=True)
    (h,) = torch.autograd.grad((g * torch.arange(5.0, dtype=torch.float64)).sum(), t)
    f = lambda a: (mx.tanh(a) * a**3).sum()  # noqa: E731
    h_mx = mx.grad(lambda a: (mx.grad(f)(a) * mx.arange(5, dtype=mx.float64)).sum())(
        mx.array(x, dtype=mx.float64)
    )
    np.testing.assert_allclose(np.asarray(h_mx), h.numpy(), rtol=1e-10)


def test_tape_style_matches_torch():
    w0, x0 = u(3, 4), u(2, 4)
    w = mx.array(w0, dtype=mx.float64, requires_grad=True)
    loss = mx.mean(mx.tanh(mx.array(x0, dtype=mx.float64) @ w.T) ** 2)
    loss.backward()
    tw = torch.tensor(w0, requires_grad=True)
    tloss = torch.mean(torch.tanh(torch.tensor(x0) @ tw.T) ** 2)
    tloss.backward()
    assert loss.item() == pytest.approx(tloss.item())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
