"""The MLX initialisers of nn.init: shapes, dtypes and distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn

BIG = mx.zeros((300, 400))


@pytest.mark.parametrize(
    "name,make,mean,std",
    [
        ("normal", lambda: nn.init.normal(1.0, 2.0), 1.0, 2.0),
        ("uniform", lambda: nn.init.uniform(-1.0, 3.0), 1.0, 4 / math.sqrt(12)),
        ("glorot_normal", lambda: nn.init.glorot_normal(), 0.0, math.sqrt(2 / 700)),
        (
            "glorot_uniform",
            lambda: nn.init.glorot_uniform(),
            0.0,
            math.sqrt(6 / 700) / math.sqrt(3),
        ),
        ("he_normal", lambda: nn.init.he_normal(), 0.0, 1 / math.sqrt(400)),
        ("he_uniform", lambda: nn.init.he_uniform(), 0.0, math.sqrt(3 / 400) / math.sqrt(3)),
    ],
)
def test_random_initialisers(name, make, mean, std):
    mx.random.seed(0)
    a = make()(BIG)
    assert a.shape == BIG.shape and a.dtype == mx.float32
    v = a.numpy()
    assert abs(v.mean() - mean) < 0.05 * std
    assert abs(v.std() - std) < 0.02 * std


def test_bounds_gain_mode_and_dtype():
    mx.random.seed(1)
    a = nn.init.he_uniform(mx.float16)(mx.zeros((8, 4, 3)), mode="fan_out", gain=2.0)
    assert a.dtype == mx.float16
    limit = 2.0 * math.sqrt(3 / (8 * 4))  # fan_out counts the receptive field
    assert np.abs(a.numpy()).max() <= limit * 1.001
    g = nn.init.glorot_uniform()(mx.zeros((10, 10)), gain=3.0)
    assert np.abs(g.numpy()).max() <= 3.0 * math.sqrt(6 / 20) * 1.0001
    with pytest.raises(ValueError, match="fan_in"):
        nn.init.he_normal()(mx.zeros((2, 2)), mode="sideways")
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.glorot_normal()(mx.zeros((3,)))


def test_constant_and_identity():
    c = nn.init.constant(0.5, mx.float64)(mx.zeros((2, 3)))
    assert c.dtype == mx.float64 and np.all(c.numpy() == 0.5)
    np.testing.assert_array_equal(nn.init.identity()(mx.zeros((3, 3))).numpy(), np.eye(3))
    with pytest.raises(ValueError, match="square"):
        nn.init.identity()(mx.zeros((2, 3)))


def test_sparse():
    mx.random.seed(2)
    a = nn.init.sparse(0.25, std=0.1)(mx.zeros((6, 8))).numpy()
    assert np.all((a == 0).sum(axis=1) == 2)
    with pytest.raises(ValueError, match="2-d"):
        nn.init.sparse(0.5)(mx.zeros((2, 2, 2)))


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (6, 3)])
def test_orthogonal(shape):
    q = nn.init.orthogonal(gain=2.0)(mx.zeros(shape)).numpy()
    small = min(shape)
    gram = q @ q.T if shape[0] == small else q.T @ q
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-5)


def test_initialiser_feeds_a_layer():
    lin = nn.Linear(4, 3)
    lin.weight = nn.init.constant(0.0)(lin.weight)
    assert lin.weight.requires_grad and np.all(lin(mx.ones((1, 4))).numpy() == lin.bias.numpy())


def test_orthogonal_names_the_dimensions_it_got():
    with pytest.raises(ValueError, match="got a 3D array of shape"):
        nn.init.orthogonal()(mx.zeros((2, 3, 4)))
