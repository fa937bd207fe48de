"""Pitfall 2: shape mistakes are errors, with the fix.

The complaint (PyTorch's ``MSELoss`` warning that scrolls by, Keras and MLX silently
broadcasting): a model with one output gives predictions of shape ``(N, 1)``, the targets
have shape ``(N,)``, and the loss broadcasts them to ``(N, N)``, averaging every prediction
against every target; training "works" and learns the mean. Every chainrule loss refuses
such pairs, names both shapes and suggests ``reshape`` / ``squeeze``; the suggestion is
checked here by applying it. Gradients of non-scalar outputs and with respect to integer
arrays are refused with the fix as well.
"""

import re

import numpy as np
import pytest
from pitfall_helpers import LOSSES, Loss, labels, values

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.train import fit

N = 4

# (first argument's shape, other argument's shape): same size, differing by a trailing 1
SAME_SIZE = [((N, 1), (N,)), ((N,), (N, 1)), ((1, N), (N,)), ((N, 1), (1, N))]
# different sizes that NumPy would broadcast
BROADCAST = [((N, 3), (3,)), ((N, 3), (N, 1)), ((N, 3), (1, 3)), ((N,), (1,))]

PAIRWISE = [loss for loss in LOSSES if loss.kind == "pairwise"]
INDEX = [loss for loss in LOSSES if loss.kind == "index"]
FIX = re.compile(r"\b(\w+)(\.squeeze\([^)]*\)|\.reshape\([^)]*\))")


def test_every_loss_is_covered():
    exported = {name for name in nn.losses.__all__ if callable(getattr(nn.losses, name))}
    assert exported == {loss.name for loss in LOSSES}


def _pairwise_args(loss: Loss, shapes: tuple, position: int) -> list:
    """Arguments of ``loss``: all of ``shapes[0]`` except the one at ``position``."""
    args = [mx.array(values(shapes[0], seed=i)) for i in range(loss.nargs)]
    args[position] = mx.array(values(shapes[1], seed=9))
    return args


def _names(loss: Loss) -> list[str]:
    import inspect

    fn = loss.call.forward if hasattr(loss.call, "forward") else loss.call
    return list(inspect.signature(fn).parameters)[: loss.nargs]


def _apply_fix(message: str, loss: Loss, args: list) -> list:
    """Apply the first suggested ``x.squeeze(...)`` / ``x.reshape(...)`` to the arguments."""
    names = _names(loss)
    found = FIX.findall(message)
    assert found, f"no reshape/squeeze suggestion in: {message}"
    name, call = found[0]
    assert name in names, f"the fix names {name!r}, not one of the arguments {names}"
    i = names.index(name)
    fixed = list(args)
    fixed[i] = eval(f"x{call}", {"x": args[i]})  # the suggestion, exactly as printed
    return fixed


@pytest.mark.parametrize("loss", PAIRWISE, ids=lambda loss: loss.name)
@pytest.mark.parametrize("shapes", SAME_SIZE, ids=str)
def test_same_size_shapes_are_refused_with_a_fix_that_works(loss, shapes):
    for position in range(1, loss.nargs):
        args = _pairwise_args(loss, shapes, position)
        with pytest.raises(ValueError) as err:
            loss.call(*args)
        msg = str(err.value)
        assert str(shapes[0]) in msg and str(shapes[1]) in msg, msg
        assert "reshape" in msg, msg
        if shapes[0] in ((N, 1), (1, N)) and shapes[1] == (N,):
            assert "squeeze" in msg, msg
        # following the suggestions (one per message, as a user would) makes the shapes
        # agree, and the loss then works
        fixed = args
        for _ in range(loss.nargs):
            fixed = _apply_fix(msg, loss, fixed)
            try:
                result = loss.call(*fixed)
                break
            except ValueError as e:
                msg = str(e)
        else:
            raise AssertionError(f"the suggested fixes do not converge: {msg}")
        assert {a.shape for a in fixed} == {fixed[0].shape}
        assert np.all(np.isfinite(np.asarray(result)))


@pytest.mark.parametrize("loss", PAIRWISE, ids=lambda loss: loss.name)
@pytest.mark.parametrize("shapes", BROADCAST, ids=str)
def test_broadcastable_shapes_are_refused(loss, shapes):
    for position in range(1, loss.nargs):
        args = _pairwise_args(loss, shapes, position)
        with pytest.raises(ValueError) as err:
            loss.call(*args)
        msg = str(err.value)
        assert str(shapes[0]) in msg and str(shapes[1]) in msg, msg
        assert "reshape or squeeze" in msg and "broadcast_to" in msg, msg
        joint = np.broadcast_shapes(*shapes)
        assert str(joint) in msg, msg  # says what broadcasting would have done


@pytest.mark.parametrize("loss", INDEX, ids=lambda loss: loss.name)
def test_class_index_targets_with_an_extra_axis_are_refused_with_the_fix(loss):
    logits = mx.array(values((N, 3)))
    for bad in [(N, 1), (1, N)]:
        targets = mx.array(labels(bad))
        with pytest.raises(ValueError) as err:
            loss.call(logits, targets)
        msg = str(err.value)
        assert str(bad) in msg and str((N, 3)) in msg and "squeeze" in msg, msg
        name, call = FIX.findall(msg)[0]
        assert name in ("targets", "target")
        fixed = eval(f"t{call}", {"t": targets})
        assert fixed.shape == (N,)
        assert np.all(np.isfinite(np.asarray(loss.call(logits, fixed))))


@pytest.mark.parametrize("loss", [x for x in INDEX if x.probabilities], ids=lambda x: x.name)
def test_probability_targets_that_would_broadcast_are_refused(loss):
    logits = mx.array(values((N, 3)))
    for bad in [(1, 3), (N, 1)]:
        with pytest.raises(ValueError) as err:
            loss.call(logits, mx.array(values(bad)))
        msg = str(err.value)
        assert str(bad) in msg and str((N, 3)) in msg, msg


def test_the_classic_regression_mistake_stops_fit_with_the_fix():
    """One output unit, targets as a plain vector: the loss refuses before any update."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 5)).astype(np.float32)
    y = X @ rng.normal(size=5).astype(np.float32)  # shape (32,)
    model = nn.Linear(5, 1)
    before = np.array(model.weight)
    with pytest.raises(ValueError) as err:
        fit(model, optim.SGD(learning_rate=0.1), nn.MSELoss(), (X, y), metrics=(), progress=False)
    msg = str(err.value)
    assert "(32, 1)" in msg and "(32,)" in msg and "squeeze(-1)" in msg and "reshape" in msg
    np.testing.assert_array_equal(np.array(model.weight), before)
    # the fix from the message: the model's output squeezed (or the targets reshaped)
    history = fit(
        model,
        optim.SGD(learning_rate=0.05),
        nn.MSELoss(),
        (X, y.reshape(32, 1)),
        epochs=3,
        metrics=(),
        progress=False,
    )
    assert history["loss"][-1] < history["loss"][0]


# -- gradients -----------------------------------------------------------------------------------

NON_SCALAR = (
    "the output has shape (3,): reduce it (for example .sum() or .mean()) or pass a cotangent"
)


def _vector(x):
    return x * 2.0


def _model_value_and_grad(x):
    model = nn.Linear(2, 3)  # an output of shape (3,) for an input of shape (2,)
    return nn.value_and_grad(model, lambda m, x: m(x))(model, x)


@pytest.mark.parametrize(
    "who, call",
    [
        ("grad", lambda x: mx.grad(_vector)(x)),
        ("value_and_grad", lambda x: mx.value_and_grad(_vector)(x)),
        ("nn.value_and_grad", lambda x: _model_value_and_grad(x[:2])),
    ],
)
def test_gradient_of_a_non_scalar_output_says_how_to_fix_it(who, call):
    x = mx.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError) as err:
        call(x)
    assert NON_SCALAR in str(err.value), str(err.value)


def test_backward_of_a_non_scalar_output_says_how_to_fix_it():
    x = mx.array([1.0, 2.0, 3.0])
    x.requires_grad = True
    y = x * 2.0
    with pytest.raises(ValueError) as err:
        y.backward()
    assert NON_SCALAR in str(err.value)
    assert x.grad is None
    # both fixes work and agree
    y.sum().backward()
    by_sum = np.array(x.grad)
    x.grad = None
    y.backward(gradient=mx.ones((3,)))
    np.testing.assert_array_equal(np.array(x.grad), by_sum)
    np.testing.assert_array_equal(by_sum, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_gradients_with_respect_to_integer_arrays_say_to_cast(dtype):
    # MLX computes them, in the input's dtype (fractions truncated): chainrule does too, as
    # MLX code expects, and warns with the fix; PyTorch's requires_grad refuses, as PyTorch
    x = mx.array(np.array([1, 0, 1]).astype(dtype))
    for call in (
        lambda: mx.grad(lambda a: (a * 2.0).sum())(x),
        lambda: mx.value_and_grad(lambda a, b: (a * b).sum(), argnums=1)(mx.ones(3), x),
        lambda: mx.vjp(lambda a: a * 2.0, [x], [mx.ones(3)]),
    ):
        with pytest.warns(mx.IntegerGradientWarning) as record:
            call()
        msg = str(record[0].message)
        assert dtype in msg and "cast it to a float dtype" in msg and "astype" in msg, msg
    with pytest.warns(mx.IntegerGradientWarning):
        g = mx.grad(lambda a: (a * 0.5).sum())(x)
    assert g.dtype == x.dtype  # the truncation the warning is about
    with pytest.raises(TypeError) as err:  # PyTorch's way in
        x.requires_grad = True
    assert dtype in str(err.value) and "cast it to a float dtype" in str(err.value)
    # the fix works
    g = mx.grad(lambda a: (a * 2.0).sum())(x.astype(mx.float32))
    np.testing.assert_array_equal(np.array(g), [2.0, 2.0, 2.0])
