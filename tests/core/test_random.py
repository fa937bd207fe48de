"""``mx.random``: reproducibility through ``seed`` and keys, and the shape, dtype and range of
every sampler."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx

SAMPLERS = {
    # name: (call with optional key, expected shape, expected dtype)
    "normal": (lambda key: mx.random.normal((3, 4), key=key), (3, 4), mx.float32),
    "uniform": (lambda key: mx.random.uniform(-1, 2, (500,), key=key), (500,), mx.float32),
    "randint": (lambda key: mx.random.randint(3, 7, (500,), key=key), (500,), mx.int32),
    "bernoulli": (lambda key: mx.random.bernoulli(0.3, (2, 500), key=key), (2, 500), mx.bool_),
    "truncated_normal": (
        lambda key: mx.random.truncated_normal(-0.5, 1.5, (500,), key=key),
        (500,),
        mx.float32,
    ),
    "categorical": (
        lambda key: mx.random.categorical(mx.log(mx.array([[0.1, 0.9], [0.9, 0.1]])), key=key),
        (2,),
        mx.uint32,
    ),
    "permutation": (lambda key: mx.random.permutation(10, key=key), (10,), mx.int32),
    "gumbel": (lambda key: mx.random.gumbel((2, 3), key=key), (2, 3), mx.float32),
    "laplace": (lambda key: mx.random.laplace((4,), key=key), (4,), mx.float32),
    "multivariate_normal": (
        lambda key: mx.random.multivariate_normal(mx.zeros(2), mx.eye(2), (5,), key=key),
        (5, 2),
        mx.float32,
    ),
    "split": (
        lambda key: mx.random.split(mx.random.key(1) if key is None else key, 3),
        (3, 2),
        mx.uint32,
    ),
}


def test_every_sampler_of_the_issue_is_tested():
    issue = "seed key split normal uniform randint bernoulli truncated_normal categorical permutation gumbel"
    assert set(issue.split()) - {"seed", "key"} <= set(SAMPLERS)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_shape_dtype_and_key_determinism(name):
    call, shape, dtype = SAMPLERS[name]
    out = call(None)
    assert out.shape == shape and out.dtype == dtype
    k = mx.random.key(42)
    a, b = call(k), call(k)
    assert np.array_equal(np.asarray(a), np.asarray(b)), "the same key gives the same draw"
    if name != "categorical":  # two classes can repeat by chance
        c = call(mx.random.key(43))
        assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_seed_makes_global_draws_reproducible(name):
    call = SAMPLERS[name][0]
    mx.random.seed(123)
    first = [np.asarray(call(None)) for _ in range(2)]
    mx.random.seed(123)
    second = [np.asarray(call(None)) for _ in range(2)]
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_keyed_draws_leave_the_global_stream_alone():
    mx.random.seed(5)
    expected = mx.random.normal((3,))
    mx.random.seed(5)
    mx.random.normal((3,), key=mx.random.key(0))
    assert np.array_equal(np.asarray(mx.random.normal((3,))), np.asarray(expected))


def test_keys_and_split():
    k = mx.random.key(0)
    assert k.shape == (2,) and k.dtype == mx.uint32
    k1, k2 = mx.random.split(k)
    assert k1.shape == (2,) and not np.array_equal(np.asarray(k1), np.asarray(k2))
    assert np.array_equal(np.asarray(mx.random.split(k)), np.asarray(mx.random.split(k)))


def test_ranges_and_statistics():
    mx.random.seed(0)
    u = mx.random.uniform(-1, 2, (4000,))
    assert float(u.min().item()) >= -1 and float(u.max().item()) < 2
    assert abs(u.mean().item() - 0.5) < 0.05
    n = mx.random.normal((4000,), loc=3.0, scale=0.5)
    assert abs(n.mean().item() - 3.0) < 0.05 and abs(n.std().item() - 0.5) < 0.05
    r = mx.random.randint(3, 7, (4000,))
    assert set(np.unique(np.asarray(r)).tolist()) == {3, 4, 5, 6}
    b = mx.random.bernoulli(0.3, (4000,))
    assert abs(b.astype(mx.float32).mean().item() - 0.3) < 0.03
    assert mx.random.bernoulli(mx.array([0.0, 1.0])).tolist() == [False, True]
    t = mx.random.truncated_normal(-0.5, 1.5, (4000,))
    assert float(t.min().item()) >= -0.5 and float(t.max().item()) <= 1.5
    c = mx.random.categorical(mx.log(mx.array([0.2, 0.8])), num_samples=4000)
    assert abs(c.astype(mx.float32).mean().item() - 0.8) < 0.03
    assert mx.random.categorical(mx.zeros((2, 3)), num_samples=5).shape == (2, 5)
    assert sorted(mx.random.permutation(10).tolist()) == list(range(10))
    p = mx.random.permutation(mx.arange(12).reshape(6, 2))
    assert sorted(p[:, 0].tolist()) == list(range(0, 12, 2))


def test_dtypes_and_errors():
    assert mx.random.normal((2,), dtype=mx.float16).dtype == mx.float16
    assert mx.random.uniform(shape=(2,), dtype=mx.float64).dtype == mx.float64
    assert mx.random.randint(0, 5, (2,), dtype=mx.int64).dtype == mx.int64
    assert mx.random.normal().shape == ()
    with pytest.raises(ValueError, match="floating"):
        mx.random.normal((2,), dtype=mx.int32)
