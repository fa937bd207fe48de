"""Every activation: function and module agree, values match PyTorch / NumPy, gradients match
finite differences, dtypes are kept and extreme inputs stay finite."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers import activations as act

# (function name, keyword arguments, module factory, reference(torch_F, x) or NumPy reference)
# A reference given as ("np", fn) needs no PyTorch.
ROWS = [
    ("sigmoid", {}, lambda: nn.Sigmoid(), lambda F, x: F.sigmoid(x)),
    ("relu", {}, lambda: nn.ReLU(), lambda F, x: F.relu(x)),
    ("relu6", {}, lambda: nn.ReLU6(), lambda F, x: F.relu6(x)),
    ("relu2", {}, lambda: nn.ReLU2(), ("np", lambda x: np.maximum(x, 0) ** 2)),
    (
        "leaky_relu",
        {"negative_slope": 0.2},
        lambda: nn.LeakyReLU(0.2),
        lambda F, x: F.leaky_relu(x, 0.2),
    ),
    ("elu", {"alpha": 0.7}, lambda: nn.ELU(alpha=0.7), lambda F, x: F.elu(x, 0.7)),
    ("selu", {}, lambda: nn.SELU(), lambda F, x: F.selu(x)),
    ("celu", {"alpha": 1.3}, lambda: nn.CELU(1.3), lambda F, x: F.celu(x, 1.3)),
    ("gelu", {}, lambda: nn.GELU(), lambda F, x: F.gelu(x)),
    (
        "gelu_approx",
        {},
        lambda: nn.GELU(approx="precise"),
        lambda F, x: F.gelu(x, approximate="tanh"),
    ),
    (
        "gelu_fast_approx",
        {},
        lambda: nn.GELU(approx="fast"),
        ("np", lambda x: x / (1 + np.exp(-1.702 * x))),
    ),
    ("silu", {}, lambda: nn.SiLU(), lambda F, x: F.silu(x)),
    ("tanh", {}, lambda: nn.Tanh(), lambda F, x: F.tanh(x)),
    ("softplus", {}, lambda: nn.Softplus(), lambda F, x: F.softplus(x)),
    ("softsign", {}, lambda: nn.Softsign(), lambda F, x: F.softsign(x)),
    ("log_sigmoid", {}, lambda: nn.LogSigmoid(), lambda F, x: F.logsigmoid(x)),
    ("mish", {}, lambda: nn.Mish(), lambda F, x: F.mish(x)),
    ("hardswish", {}, lambda: nn.Hardswish(), lambda F, x: F.hardswish(x)),
    (
        "hard_tanh",
        {"min_val": -0.5, "max_val": 2.0},
        lambda: nn.HardTanh(-0.5, 2.0),
        lambda F, x: F.hardtanh(x, -0.5, 2.0),
    ),
    ("softshrink", {"lambd": 0.3}, lambda: nn.Softshrink(0.3), lambda F, x: F.softshrink(x, 0.3)),
    (
        "hard_shrink",
        {"lambd": 0.3},
        lambda: nn.HardShrink(lambd=0.3),
        lambda F, x: F.hardshrink(x, 0.3),
    ),
    ("softmax", {"axis": 1}, lambda: nn.Softmax(dim=1), lambda F, x: F.softmax(x, dim=1)),
    ("softmin", {}, lambda: nn.Softmin(), lambda F, x: F.softmin(x, dim=-1)),
    (
        "log_softmax",
        {"axis": 0},
        lambda: nn.LogSoftmax(axis=0),
        lambda F, x: F.log_softmax(x, dim=0),
    ),
    ("glu", {"axis": -1}, lambda: nn.GLU(), lambda F, x: F.glu(x, dim=-1)),
    (
        "step",
        {"threshold": 0.1},
        lambda: nn.Step(0.1),
        ("np", lambda x: (x > 0.1).astype(np.int32)),
    ),
]

# relu6's kink at 6 is out of reach of a N(0, 1) sample, so its rows scale the input.
_SCALE = {"relu6": 4.0}
_NOT_DIFFERENTIABLE = {"step"}


def _fn(name):
    return getattr(nn, name)


def _x(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_every_activation_function_has_a_row():
    functions = {n for n in act.__all__ if inspect.isfunction(getattr(act, n))}
    covered = {r[0] for r in ROWS} | {"prelu"}  # prelu has its own tests below
    assert functions == covered, functions ^ covered


def test_every_activation_module_is_exercised():
    classes = {getattr(act, n) for n in act.__all__ if inspect.isclass(getattr(act, n))}
    covered = {type(r[2]()) for r in ROWS} | {nn.PReLU}
    assert classes == covered, classes ^ covered


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_function_and_module_agree(row):
    name, kw, make, _ = row
    x = mx.array(_x() * _SCALE.get(name, 1.0))
    np.testing.assert_array_equal(_fn(name)(x, **kw).numpy(), make()(x).numpy())


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_matches_reference(row):
    name, kw, _, ref = row
    x = _x() * _SCALE.get(name, 1.0)
    ours = _fn(name)(mx.array(x, dtype=mx.float64), **kw).numpy()
    if isinstance(ref, tuple):
        expect = ref[1](x)
    else:
        torch = pytest.importorskip("torch")
        expect = ref(torch.nn.functional, torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, expect, rtol=1e-7, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r[0] not in _NOT_DIFFERENTIABLE], ids=lambda r: r[0]
)
def test_gradients_match_finite_differences(row):
    name, kw, _, _ = row
    fn = _fn(name)
    mx.check_grads(lambda x: fn(x, **kw), [mx.array(_x(seed=1) * _SCALE.get(name, 1.0))], order=2)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
@pytest.mark.parametrize("dtype", [mx.float16, mx.float32, mx.float64], ids=str)
def test_dtype_preserved(row, dtype):
    name, kw, make, _ = row
    out = make()(mx.array(_x(), dtype=dtype))
    if name == "step":
        assert out.dtype in (mx.int32, mx.bool_)
    else:
        assert out.dtype == dtype


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r[0] not in _NOT_DIFFERENTIABLE], ids=lambda r: r[0]
)
def test_extreme_inputs_stay_finite(row):
    name, kw, _, _ = row
    fn = _fn(name)
    x = mx.array([[-1e4, -80.0, -1.0, 0.5, 80.0, 1e4]])
    x = mx.concatenate([x, x], axis=0)  # glu halves the last axis; keep it even
    y, g = mx.value_and_grad(lambda t: fn(t, **kw).sum())(x)
    assert math.isfinite(y.item()), name
    assert np.all(np.isfinite(g.numpy())), (name, g)


def test_prelu_function_module_torch_and_grad():
    m = nn.PReLU(3, init=0.1)
    assert m.weight.shape == (3,) and np.allclose(m.weight.numpy(), 0.1)
    m.weight = mx.array([0.1, 0.5, -0.2])
    x = _x((4, 3))
    y = m(mx.array(x))
    expect = np.maximum(x, 0) + np.array([0.1, 0.5, -0.2]) * np.minimum(x, 0)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(nn.prelu(mx.array(x), m.weight).numpy(), y.numpy())
    mx.check_grads(lambda t, a: nn.prelu(t, a), [mx.array(x), mx.array([0.1, 0.5, -0.2])])
    y.sum().backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), np.minimum(x, 0).sum(0), rtol=1e-5)
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.prelu(
        torch.tensor(x), torch.tensor([0.1, 0.5, -0.2], dtype=torch.float64)
    )
    np.testing.assert_allclose(y.numpy(), t.numpy(), rtol=1e-6)


def test_module_arguments():
    assert nn.LeakyReLU().negative_slope == 0.01
    assert nn.LeakyReLU(negative_slope=0.3).negative_slope == 0.3
    assert "negative_slope=0.3" in repr(nn.LeakyReLU(0.3))
    assert nn.Softmax(dim=0).axis == 0
    assert nn.GELU(approximate="tanh").approx == "tanh"
    with pytest.raises(ValueError, match="approx"):
        nn.GELU("exact")
    with pytest.raises(TypeError, match="unexpected"):
        nn.ReLU(inplace=True)
    assert nn.Hardtanh is nn.HardTanh


def test_glu_needs_even_axis():
    with pytest.raises(ValueError, match="even"):
        nn.glu(mx.zeros((2, 3)))


def test_relu_derivative_at_zero_is_zero():
    assert mx.grad(lambda x: nn.relu(x).sum())(mx.array([0.0])).item() == 0.0


def test_step_is_inclusive_at_the_threshold():
    x = mx.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(nn.step(x)), [0, 1, 1])
    np.testing.assert_array_equal(np.asarray(nn.Step(threshold=1.0)(x)), [0, 0, 1])
