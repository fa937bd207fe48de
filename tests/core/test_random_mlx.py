"""``mx.random`` with MLX's semantics: ``mx.random.state``, key checks, broadcasting rules,
complex normals, loc/scale as a transform of the same draw, and MLX's errors."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest

import chainrule.core as mx


def _np(a):
    return np.asarray(a)


def test_state_is_a_list_holding_the_key_and_seed_sets_it():
    assert isinstance(mx.random.state, list) and len(mx.random.state) == 1
    mx.random.seed(7)
    k = mx.random.state[0]
    assert k.dtype == mx.uint32 and _np(k).tolist() == _np(mx.random.key(7)).tolist()


def test_putting_a_key_into_state_reseeds_like_seed():
    mx.random.seed(11)
    expected = _np(mx.random.uniform(shape=(4,)))
    mx.random.uniform(shape=(3,))
    mx.random.state[0] = mx.random.key(11)
    assert np.array_equal(_np(mx.random.uniform(shape=(4,))), expected)


def test_state_restarts_from_a_key_put_back():
    mx.random.seed(3)
    saved = mx.random.key(99)
    mx.random.state[0] = saved
    a = _np(mx.random.normal((5,)))
    mx.random.state[0] = mx.random.key(5)
    mx.random.normal((5,))
    mx.random.state[0] = saved
    assert np.array_equal(_np(mx.random.normal((5,))), a)


def test_compile_with_the_random_state_draws_fresh_numbers():
    @partial(mx.compile, inputs=mx.random.state, outputs=mx.random.state)
    def fun():
        return mx.random.uniform(shape=(10, 10))

    a, b = _np(fun()), _np(fun())
    assert not np.allclose(a, b, 1e-2, 1e-2)
    mx.random.seed(42)
    c = _np(fun())
    mx.random.seed(42)
    assert np.array_equal(c, _np(fun()))


def test_keys_are_checked_like_mlx():
    with pytest.raises(ValueError, match="uint32"):
        mx.random.uniform(key=mx.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        mx.random.normal(key=mx.zeros((3,), dtype=mx.uint32))
    k = mx.random.key(2**40 + 5)
    assert _np(k).tolist() == [2**8, 5]


def test_uniform_shape_rules_and_bounds():
    k = mx.random.key(0)
    a = mx.random.uniform(-1, mx.array([1.0, 2.0, 3.0]), (4, 3), key=k)
    assert a.shape == (4, 3) and (_np(a) >= -1).all() and (_np(a) < [1, 2, 3]).all()
    with pytest.raises(ValueError):
        mx.random.uniform(shape=(2, -3))
    with pytest.raises(ValueError):
        mx.random.uniform(mx.zeros((5,)), 1.0, (2, 3))
    h = mx.random.uniform(0.0, 1.0, (20000,), dtype=mx.float16, key=k)
    assert h.dtype == mx.float16 and float(_np(h).max()) < 1.0


@pytest.mark.parametrize("sampler", [mx.random.normal, mx.random.laplace])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16])
def test_loc_and_scale_transform_the_same_draw(sampler, dtype):
    k = mx.random.key(4)
    a = sampler((3, 2), dtype=dtype, loc=1.0, scale=2.0, key=k)
    b = 2.0 * sampler((3, 2), dtype=dtype, key=k) + 1.0
    assert a.dtype == dtype and np.array_equal(_np(a), _np(b))


def test_laplace_statistics():
    x = _np(mx.random.laplace((40000,), key=mx.random.key(1)))
    assert abs(x.mean()) < 0.05 and abs(np.abs(x).mean() - 1.0) < 0.05  # E|X| = scale


def test_normal_broadcasts_array_loc_and_scale():
    b = mx.random.normal((3, 1, 2))
    s = mx.random.normal((3, 4, 2), dtype=mx.float16, loc=b, scale=b)
    assert s.shape == (3, 4, 2) and s.dtype == mx.float16
    with pytest.raises(ValueError):
        mx.random.normal((2, 10, 2), loc=mx.zeros((10,)))


def test_complex_normal():
    z = mx.random.normal((20000,), dtype=mx.complex64, key=mx.random.key(0))
    v = _np(z)
    assert z.dtype == mx.complex64
    assert abs(v.real.var() - 0.5) < 0.03 and abs(v.imag.var() - 0.5) < 0.03
    w = mx.random.normal((3,), dtype=mx.complex64, loc=3.0 + 1j, scale=2.0, key=mx.random.key(0))
    base = _np(mx.random.normal((3,), dtype=mx.complex64, key=mx.random.key(0)))
    assert np.allclose(_np(w), 2.0 * base + (3.0 + 1j))


def test_randint_edges():
    k = mx.random.key(0)
    assert mx.random.randint(10, -10, (100,), key=k).tolist() == [10] * 100
    a = mx.random.randint(2**40, 2**40 + 1024, (1000,), dtype=mx.int64, key=k)
    assert (_np(a) >= 2**40).all() and (_np(a) < 2**40 + 1024).all()
    assert sorted(set(mx.random.randint(-5, 5, (5000,), key=k).tolist())) == list(range(-5, 5))
    b = mx.random.randint(0, 2, (1000,), dtype=mx.bool_, key=k)
    assert b.dtype == mx.bool_ and sorted(set(b.tolist())) == [False, True]
    with pytest.raises(ValueError):
        mx.random.randint(0, 5, (3,), dtype=mx.float32)


def test_bernoulli_rules():
    assert mx.random.bernoulli(mx.array([2.0, -2.0])).tolist() == [True, False]
    assert mx.random.bernoulli(mx.array([0.1, 0.2, 0.3]), (4, 3)).shape == (4, 3)
    with pytest.raises(ValueError):
        mx.random.bernoulli(mx.array([0.1, 0.2, 0.3]), (2,))
    with pytest.raises(ValueError):
        mx.random.bernoulli(0, (2,))
    with pytest.raises(ValueError):
        mx.random.bernoulli(mx.array([1, 0]))


def test_truncated_normal_rules():
    lower = mx.array([[-2.0, 0.0]])
    upper = mx.array([[0.0], [1.0], [2.0]])
    a = _np(mx.random.truncated_normal(lower, upper))
    assert a.shape == (3, 2) and (a >= _np(lower)).all() and (a <= _np(upper)).all()
    assert mx.random.truncated_normal(mx.array([]), mx.array([])).shape == (0,)
    assert mx.random.truncated_normal(2.0, -2.0).item() == 2.0
    with pytest.raises(ValueError):
        mx.random.truncated_normal(mx.zeros((2,)), mx.ones((3,)))


def test_categorical_shapes_and_errors():
    logits = mx.zeros((10, 20))
    assert mx.random.categorical(logits, 0).shape == (20,)
    assert mx.random.categorical(logits, 0, (5, 20)).shape == (5, 20)
    assert mx.random.categorical(logits, 0, num_samples=7).shape == (20, 7)
    assert mx.random.categorical(mx.zeros((20,)), num_samples=0).shape == (0,)
    with pytest.raises(ValueError):
        mx.random.categorical(logits, shape=(10, 5), num_samples=5)
    with pytest.raises(ValueError):
        mx.random.categorical(logits, 2)
    with pytest.raises(ValueError):
        mx.random.categorical(logits, 1, (3,))


def test_multivariate_normal_shapes_errors_and_moments():
    mean = mx.array([[0, 7], [1, 2], [3, 4]])
    cov = mx.array([[1, 0.5], [0.5, 1]])
    assert mx.random.multivariate_normal(mean, cov, (4, 3)).shape == (4, 3, 2)
    for dtype in [mx.int32, mx.float16]:
        with pytest.raises(ValueError):
            mx.random.multivariate_normal(mx.zeros((2,)), mx.eye(2), dtype=dtype)
    for m, c in [((2, 2), (2, 2)), ((2,), (2, 2, 2)), ((3,), (2, 2)), ((2,), (2, 3))]:
        with pytest.raises(ValueError):
            mx.random.multivariate_normal(mx.zeros(m), mx.zeros(c), (3,))
    n = 100000
    cov = np.array([[2, 0.5], [0.5, 1]])
    x = _np(mx.random.multivariate_normal(mx.array([4.0, 7.0]), mx.array(cov), (n,)))
    tol = 10 * 4 / math.sqrt(n)
    assert np.allclose(x.mean(0), [4, 7], atol=tol) and np.allclose(np.cov(x.T), cov, atol=tol)


def test_permutation_keeps_shape_and_dtype():
    x = mx.arange(16).reshape(4, 4)
    out = _np(mx.random.permutation(x, axis=1))
    assert np.array_equal(np.sort(out, axis=1), _np(x))
    assert mx.random.permutation(mx.array([[1]])).shape == (1, 1)
    p = mx.random.permutation(5, key=mx.random.key(0))
    assert p.tolist() == mx.random.permutation(5, key=mx.random.key(0)).tolist()
