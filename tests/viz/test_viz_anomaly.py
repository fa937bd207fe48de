"""mx.detect_anomaly(): the first NaN/inf in a forward output or a backward gradient."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core import anomaly, autograd, ops

HERE = "test_viz_anomaly.py"


def line_after() -> int:
    """The line number just after the caller's line (where the planted operation is)."""
    return inspect.currentframe().f_back.f_lineno + 1


@pytest.fixture(autouse=True)
def quiet_numpy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's divide-by-zero warnings
        yield
    # the mode never leaks out of a test
    assert all(m.Node is mx.Node for m in ops.MODULES if "Node" in vars(m))
    assert autograd.OBSERVERS == []
    assert not mx.is_anomaly_enabled()


def test_planted_log_of_zero_is_named_in_forward():
    x = mx.array([1.0, 0.0, 2.0], requires_grad=True)
    with pytest.raises(mx.AnomalyError) as info:
        with mx.detect_anomaly():
            y = x * 2.0
            line = line_after()
            z = mx.log(y)
            z.sum().backward()
    e = info.value
    assert isinstance(e, FloatingPointError)
    assert (e.op, e.phase, e.input_shapes) == ("log", "forward", ((3,),))
    assert e.location == f"{HERE}:{line}"
    msg = str(e)
    assert msg.startswith("detect_anomaly: log produced inf (1 of 3 values) in its forward output")
    assert "(inputs: (3,))" in msg
    assert f"created at {HERE}:{line}: z = mx.log(y)" in msg
    assert "its inputs are finite, so this operation made it" in msg
    assert x.grad is None  # stopped before the backward pass


def test_planted_sqrt_at_zero_is_named_in_backward():
    x = mx.array([4.0, 0.0, 9.0], requires_grad=True)
    with mx.detect_anomaly():
        y = x * 1.0
        line = line_after()
        r = mx.sqrt(y)  # sqrt(0) = 0 is fine going forward ...
        loss = (r * 3.0).sum()
        with pytest.raises(mx.AnomalyError) as info:
            loss.backward()  # ... but its derivative 0.5 / sqrt(0) is inf
    e = info.value
    assert (e.op, e.phase, e.input_shapes) == ("sqrt", "backward", ((3,),))
    assert e.location == f"{HERE}:{line}"
    msg = str(e)
    assert "the backward of sqrt produced inf (1 of 3 values) in the gradient of its input 0" in msg
    assert "from a finite incoming gradient" in msg
    assert f"created at {HERE}:{line}: r = mx.sqrt(y)" in msg


def test_without_the_mode_the_same_code_runs_silently():
    x = mx.array([4.0, 0.0, 9.0], requires_grad=True)
    mx.sqrt(x).sum().backward()
    assert np.isinf(np.asarray(x.grad)).sum() == 1
    assert np.isinf(np.asarray(mx.log(x))).sum() == 1


def test_finite_computations_are_unchanged():
    mx.random.seed(3)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    x = mx.random.normal((4, 3))
    loss = nn.losses.mse_loss(model(x), mx.zeros((4, 1)))
    loss.backward()
    plain = {k: np.asarray(v.grad) for k, v in model.named_parameters()}
    model.zero_grad()
    with mx.detect_anomaly():
        loss2 = nn.losses.mse_loss(model(x), mx.zeros((4, 1)))
        loss2.backward()
        g = mx.grad(lambda a: mx.sum(mx.exp(a) * a))(x)
    assert float(loss2) == float(loss)
    for k, v in model.named_parameters():
        np.testing.assert_array_equal(np.asarray(v.grad), plain[k])
    np.testing.assert_allclose(np.asarray(g), np.exp(np.asarray(x)) * (np.asarray(x) + 1), 1e-6)


@pytest.mark.parametrize(
    "op, make",
    [
        ("divide", lambda a: a / 0.0),  # an elementwise binary operation
        ("matmul", lambda a: mx.matmul(a * 1e30, mx.ones((2, 2)) * 1e30)),
        ("sum", lambda a: mx.sum(mx.ones((4,)) * 3e38 + a[0])),  # a reduction (overflow)
        ("where", lambda a: mx.where(a > 1.5, a, float("nan"))),
        ("exp", lambda a: mx.exp(a * 100.0)),
    ],
)
def test_every_kind_of_operation_is_checked(op, make):
    a = mx.array([1.0, 2.0], requires_grad=True)
    with pytest.raises(mx.AnomalyError) as info:
        with mx.detect_anomaly():
            make(a)
    assert info.value.op == op
    assert info.value.phase == "forward"


def test_nan_from_a_constant_is_reported_where_it_meets_the_graph():
    bad = mx.log(mx.array([-1.0, 1.0]))  # computed without the graph: nan, not checked
    w = mx.array([1.0, 1.0], requires_grad=True)
    with pytest.raises(mx.AnomalyError) as info:
        with mx.detect_anomaly():
            w * bad
    assert info.value.op == "multiply"
    assert "input 1 (a constant, not recorded) already holds nan, so it was made earlier" in str(
        info.value
    )


def test_inside_grad_the_traced_function_is_checked():
    with mx.detect_anomaly():
        f = mx.grad(lambda a: mx.sum(mx.log(a)))
        with pytest.raises(mx.AnomalyError, match="log produced inf"):
            f(mx.array([0.0, 1.0]))
        # a backward rule that divides by zero, under mx.grad
        with pytest.raises(mx.AnomalyError, match="the backward of sqrt"):
            mx.grad(lambda a: mx.sum(mx.sqrt(a)))(mx.array([0.0, 1.0]))


def test_forward_recorded_before_the_mode_has_no_line_but_is_still_named():
    x = mx.array([0.0, 1.0], requires_grad=True)
    loss = mx.sum(mx.sqrt(x))
    with mx.detect_anomaly():
        with pytest.raises(mx.AnomalyError, match="created before detect_anomaly was switched"):
            loss.backward()


def test_decorator_nesting_and_set_detect_anomaly():
    @mx.detect_anomaly
    def bare(a):
        assert mx.is_anomaly_enabled()
        return mx.log(a)

    @mx.detect_anomaly()
    def called(a):
        with mx.detect_anomaly():
            pass
        assert mx.is_anomaly_enabled()  # still on after an inner region ends
        return mx.log(a)

    x = mx.array([0.0], requires_grad=True)
    for fn in (bare, called):
        with pytest.raises(mx.AnomalyError):
            fn(x)
        assert not mx.is_anomaly_enabled()
    mx.set_detect_anomaly(True)
    try:
        assert ops.table.Node is not mx.Node
        with pytest.raises(mx.AnomalyError):
            mx.log(x)
    finally:
        mx.set_detect_anomaly(False)
    assert not mx.is_anomaly_enabled()


def test_a_long_loop_does_not_keep_every_graph_alive():
    x = mx.array([1.0, 2.0], requires_grad=True)
    with mx.detect_anomaly():
        kept = mx.sum(x * 3.0)
        for _ in range(6000):  # 3 nodes per step: 18,000 nodes made
            loss = mx.sum(x * 2.0 + 1.0)
            loss.backward()
        assert len(anomaly._SITES) < 6000
        assert kept._node in anomaly._SITES and loss._node in anomaly._SITES
        with pytest.raises(mx.AnomalyError) as info:
            mx.sqrt(kept * 0.0).backward()
    assert "created at test_viz_anomaly.py:" in str(info.value)
    np.testing.assert_array_equal(np.asarray(x.grad), [12000.0, 12000.0])
