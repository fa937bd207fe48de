"""The operations of ``chainrule.core``: values against NumPy, dtypes, errors, and the
derivatives pinned at non-differentiable points (which follow MLX)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx

ISSUE_OPS = """
zeros ones full zeros_like ones_like full_like arange linspace eye identity tri tril triu
add subtract multiply divide floor_divide remainder power negative abs sign square sqrt rsqrt
reciprocal exp expm1 log log1p log2 log10 sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh
sigmoid erf erfinv maximum minimum clip where floor ceil round isnan isinf isfinite nan_to_num
logaddexp equal not_equal less less_equal greater greater_equal logical_and logical_or logical_not
allclose isclose array_equal sum mean prod max min var std logsumexp argmax argmin all any cumsum
cumprod cummax softmax log_softmax matmul addmm inner outer tensordot einsum reshape flatten
unflatten transpose swapaxes moveaxis expand_dims squeeze broadcast_to concatenate stack unstack
split repeat tile pad flip diff take take_along_axis put_along_axis slice slice_update sort argsort
partition argpartition topk median roll diag diagonal trace meshgrid atleast_1d atleast_2d
atleast_3d divmod cummin stop_gradient real imag conj
""".split()


def test_every_op_of_the_issue_exists():
    missing = [name for name in ISSUE_OPS if not callable(getattr(mx, name, None))]
    assert not missing
    assert callable(mx.linalg.norm)


_rng = np.random.default_rng(7)
X = _rng.uniform(-2, 2, size=(3, 4)).astype(np.float32)
POS = _rng.uniform(0.2, 2, size=(3, 4)).astype(np.float32)
UNIT = _rng.uniform(-0.9, 0.9, size=(3, 4)).astype(np.float32)

UNARY = [
    # (function, NumPy reference, input)
    (mx.negative, np.negative, X),
    (mx.abs, np.abs, X),
    (mx.sign, np.sign, X),
    (mx.square, np.square, X),
    (mx.sqrt, np.sqrt, POS),
    (mx.rsqrt, lambda x: 1 / np.sqrt(x), POS),
    (mx.reciprocal, np.reciprocal, POS),
    (mx.exp, np.exp, X),
    (mx.expm1, np.expm1, X),
    (mx.log, np.log, POS),
    (mx.log1p, np.log1p, POS),
    (mx.log2, np.log2, POS),
    (mx.log10, np.log10, POS),
    (mx.sin, np.sin, X),
    (mx.cos, np.cos, X),
    (mx.tan, np.tan, UNIT),
    (mx.arcsin, np.arcsin, UNIT),
    (mx.arccos, np.arccos, UNIT),
    (mx.arctan, np.arctan, X),
    (mx.sinh, np.sinh, X),
    (mx.cosh, np.cosh, X),
    (mx.tanh, np.tanh, X),
    (mx.arcsinh, np.arcsinh, X),
    (mx.arccosh, np.arccosh, POS + 1),
    (mx.arctanh, np.arctanh, UNIT),
    (mx.sigmoid, lambda x: 1 / (1 + np.exp(-x)), X),
    (mx.erf, np.vectorize(math.erf), X),
    (mx.floor, np.floor, X),
    (mx.ceil, np.ceil, X),
    (mx.round, np.round, X * 3),
    (mx.isnan, np.isnan, X),
    (mx.isinf, np.isinf, X),
    (mx.isfinite, np.isfinite, X),
    (mx.logical_not, np.logical_not, X > 0),
]


@pytest.mark.parametrize("fn,ref,x", UNARY, ids=[f[0].__name__ for f in UNARY])
def test_unary_values_and_dtype(fn, ref, x):
    out = fn(mx.array(x))
    expected = ref(x)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=2e-6, atol=1e-6)
    kind = np.asarray(expected).dtype.kind
    assert out.dtype == (mx.bool_ if kind == "b" else mx.float32)


def test_erfinv_inverts_erf():
    y = mx.array(UNIT)
    np.testing.assert_allclose(mx.erf(mx.erfinv(y)).numpy(), UNIT, atol=1e-6)
    assert mx.erfinv(mx.array([1.0, -1.0])).tolist() == [math.inf, -math.inf]


def test_transcendental_of_integers_is_float32():
    for fn in (mx.sqrt, mx.exp, mx.log, mx.sin, mx.sigmoid, mx.erf):
        assert fn(mx.array([1, 2])).dtype == mx.float32
    assert mx.abs(mx.array([-1, 2])).dtype == mx.int32
    assert mx.square(mx.array([3])).dtype == mx.int32


Y = _rng.uniform(0.5, 2, size=(4,)).astype(np.float32)

BINARY = [
    (mx.add, np.add),
    (mx.subtract, np.subtract),
    (mx.multiply, np.multiply),
    (mx.divide, np.divide),
    (mx.floor_divide, np.floor_divide),
    (mx.remainder, np.remainder),
    (mx.power, lambda a, b: np.power(np.abs(a), b)),
    (mx.maximum, np.maximum),
    (mx.minimum, np.minimum),
    (mx.arctan2, np.arctan2),
    (mx.logaddexp, np.logaddexp),
    (mx.equal, np.equal),
    (mx.not_equal, np.not_equal),
    (mx.less, np.less),
    (mx.less_equal, np.less_equal),
    (mx.greater, np.greater),
    (mx.greater_equal, np.greater_equal),
]


@pytest.mark.parametrize("fn,ref", BINARY, ids=[f[0].__name__ for f in BINARY])
def test_binary_values_broadcast(fn, ref):
    a = np.abs(X) if fn is mx.power else X
    for left, right in [(a, Y), (Y, a[:1]), (a, np.float32(1.5))]:
        out = fn(mx.array(left), mx.array(right))
        np.testing.assert_allclose(np.asarray(out), ref(left, right), rtol=2e-6, atol=1e-6)


def test_logical_and_bitwise():
    p, q = X > 0, Y > 1
    assert np.array_equal(np.asarray(mx.logical_and(mx.array(p), mx.array(q))), p & q)
    assert np.array_equal(np.asarray(mx.logical_or(mx.array(p), mx.array(q))), p | q)
    assert mx.logical_and(mx.array([1, 0]), mx.array([1, 1])).tolist() == [True, False]


def test_where_clip_nan_to_num():
    x = mx.array(X)
    np.testing.assert_array_equal(np.asarray(mx.where(x > 0, x, 0.0)), np.where(X > 0, X, 0))
    assert mx.where(mx.array([True, False]), 1, 2.5).dtype == mx.float32
    assert mx.where(mx.array([True, False]), mx.array([1, 2]), 0).dtype == mx.int32
    np.testing.assert_array_equal(np.asarray(mx.clip(x, -1, 1)), np.clip(X, -1, 1))
    np.testing.assert_array_equal(np.asarray(mx.clip(x, None, 0.5)), np.minimum(X, 0.5))
    np.testing.assert_array_equal(np.asarray(mx.clip(x, 0, None)), np.maximum(X, 0))
    with pytest.raises(ValueError, match="clip"):
        mx.clip(x, None, None)
    out = mx.nan_to_num(mx.array([math.nan, math.inf, -math.inf, 1.0]))
    big = np.finfo(np.float32).max
    assert out.tolist() == [0.0, big, -big, 1.0]
    assert mx.nan_to_num(mx.array([math.nan]), nan=5.0).tolist() == [5.0]


def test_closeness():
    a, b = mx.array([1.0, 2.0]), mx.array([1.0 + 1e-7, 2.1])
    assert mx.isclose(a, b).tolist() == [True, False]
    assert mx.allclose(a, a).item() is True and mx.allclose(a, b).item() is False
    assert mx.array_equal(mx.array([1, 2]), mx.array([1.0, 2.0])).item() is True
    assert mx.array_equal(mx.array([1, 2]), mx.array([1, 2, 3])).item() is False
    nan = mx.array([math.nan])
    assert mx.array_equal(nan, nan, equal_nan=True).item() is True


def test_divmod_and_integer_semantics():
    q, r = mx.divmod(mx.array([7, -7]), 3)
    assert q.tolist() == [2, -3] and r.tolist() == [1, 2]
    assert mx.remainder(mx.array([-7.0, 7.0]), 3).tolist() == [2.0, 1.0]


# -- reductions -----------------------------------------------------------------------------------

R = _rng.uniform(-2, 2, size=(2, 3, 4)).astype(np.float32)
AXES = [None, 0, -1, (0, 2), (1,)]

REDUCTIONS = [
    (mx.sum, np.sum),
    (mx.mean, np.mean),
    (mx.prod, np.prod),
    (mx.max, np.max),
    (mx.min, np.min),
    (mx.var, np.var),
    (mx.std, np.std),
    (mx.logsumexp, lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims))),
    (mx.all, lambda x, axis, keepdims: np.all(x > 0, axis, keepdims=keepdims)),
    (mx.any, lambda x, axis, keepdims: np.any(x > 0, axis, keepdims=keepdims)),
]


@pytest.mark.parametrize("fn,ref", REDUCTIONS, ids=[f[0].__name__ for f in REDUCTIONS])
@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(fn, ref, axis, keepdims):
    x = mx.array(R > 0) if fn in (mx.all, mx.any) else mx.array(R)
    out = fn(x, axis=axis, keepdims=keepdims)
    expected = ref(R, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)


def test_reduction_dtypes_and_ddof():
    assert mx.sum(mx.array([1, 2])).dtype == mx.int32  # integer sums keep their type
    assert mx.sum(mx.array([1, 2], dtype=mx.int8)).dtype == mx.int8
    assert mx.sum(mx.array([True, True])).item() == 2
    assert mx.mean(mx.array([1, 2])).dtype == mx.float32
    assert mx.max(mx.array([1, 2])).dtype == mx.int32
    np.testing.assert_allclose(mx.var(mx.array(R), axis=1, ddof=1).numpy(), R.var(1, ddof=1), 1e-5)
    np.testing.assert_allclose(mx.std(mx.array(R), ddof=1).item(), R.std(ddof=1), 1e-5)


def test_logsumexp_and_softmax_are_stable():
    big = mx.array([1000.0, 1000.0])
    assert mx.logsumexp(big).item() == pytest.approx(1000 + math.log(2))
    assert mx.softmax(big).tolist() == [0.5, 0.5]
    assert mx.log_softmax(big).tolist() == pytest.approx([-math.log(2)] * 2)
    assert mx.logsumexp(mx.array([-math.inf, -math.inf])).item() == -math.inf
    s = mx.softmax(mx.array(R), axis=-1)
    np.testing.assert_allclose(s.sum(axis=-1).numpy(), np.ones((2, 3)), rtol=1e-6)
    e = np.exp(R - R.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        mx.softmax(mx.array(R), axis=1).numpy(), e / e.sum(1, keepdims=True), 1e-6
    )


def test_log_softmax_rows_with_infinities_follow_mlx():
    # MLX's nn.log_softmax is x - logsumexp(x), whose logsumexp is +inf for a row holding +inf
    inf, nan = math.inf, math.nan
    x = mx.array([[inf, 1.0, 2.0], [-inf, -inf, -inf], [1.0, -inf, 2.0], [nan, 1.0, 2.0]])
    got = mx.log_softmax(x, axis=-1).tolist()
    np.testing.assert_equal(got[0], [nan, -inf, -inf])
    np.testing.assert_equal(got[1], [nan, nan, nan])
    np.testing.assert_allclose(got[2], [-1.3132616, -inf, -0.3132616], rtol=1e-6)
    np.testing.assert_equal(got[3], [nan, nan, nan])


def test_arg_reductions():
    x = mx.array(R)
    assert np.array_equal(np.asarray(mx.argmax(x, axis=1)), R.argmax(1))
    assert np.array_equal(np.asarray(mx.argmin(x, axis=-1)), R.argmin(-1))
    assert mx.argmax(x).item() == R.argmax()
    assert mx.argmax(x, axis=0, keepdims=True).shape == (1, 3, 4)
    assert mx.argmin(x).dtype == mx.uint32


@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
def test_scans(axis, reverse, inclusive):
    x = X[:, :3]
    flat = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis

    def reference(acc, ident):
        v = np.flip(flat, ax) if reverse else flat
        out = acc(v, axis=ax)
        if not inclusive:
            pad = [(0, 0)] * v.ndim
            pad[ax] = (1, 0)
            out = np.take(np.pad(out, pad, constant_values=ident), np.arange(v.shape[ax]), ax)
        return np.flip(out, ax) if reverse else out

    a = mx.array(x)
    for fn, acc, ident in [
        (mx.cumsum, np.cumsum, 0),
        (mx.cumprod, np.cumprod, 1),
        (mx.cummax, np.maximum.accumulate, -np.inf),
        (mx.cummin, np.minimum.accumulate, np.inf),
    ]:
        out = fn(a, axis=axis, reverse=reverse, inclusive=inclusive)
        np.testing.assert_allclose(np.asarray(out), reference(acc, ident), rtol=1e-6)


# -- linear algebra ---------------------------------------------------------------------------------


def test_matrix_products():
    a, b = _rng.standard_normal((3, 4)), _rng.standard_normal((4, 5))
    A, B = mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64)
    np.testing.assert_allclose(mx.matmul(A, B).numpy(), a @ b)
    batch = _rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(mx.matmul(mx.array(batch, mx.float64), B).numpy(), batch @ b)
    c = _rng.standard_normal((3, 5))
    np.testing.assert_allclose(
        mx.addmm(mx.array(c, mx.float64), A, B, alpha=2.0, beta=0.5).numpy(), 2 * a @ b + 0.5 * c
    )
    v, w = _rng.standard_normal(4), _rng.standard_normal(4)
    np.testing.assert_allclose(
        mx.inner(mx.array(v, mx.float64), mx.array(w, mx.float64)).item(), v @ w
    )
    np.testing.assert_allclose(
        mx.outer(mx.array(v, mx.float64), mx.array(w, mx.float64)).numpy(), np.outer(v, w)
    )
    t1, t2 = _rng.standard_normal((2, 3, 4)), _rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(
        mx.tensordot(mx.array(t1, mx.float64), mx.array(t2, mx.float64), axes=2).numpy(),
        np.tensordot(t1, t2, axes=2),
    )
    np.testing.assert_allclose(
        mx.tensordot(A, B, axes=([1], [0])).numpy(), np.tensordot(a, b, axes=([1], [0]))
    )
    for spec, ops in [
        ("ij,jk->ik", (a, b)),
        ("ij,jk", (a, b)),
        ("ii", (np.eye(3) * 2,)),
        ("bij,bjk->bik", (batch, _rng.standard_normal((2, 4, 2)))),
        ("i,j->ij", (v, w)),
    ]:
        out = mx.einsum(spec, *[mx.array(o, mx.float64) for o in ops])
        np.testing.assert_allclose(np.asarray(out), np.einsum(spec, *ops))


@pytest.mark.parametrize(
    "x,kwargs",
    [
        (np.array([3.0, -4.0]), {}),
        (np.array([3.0, -4.0]), {"ord": 1}),
        (np.array([3.0, -4.0]), {"ord": np.inf}),
        (np.array([3.0, -4.0]), {"ord": 3}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"ord": "fro"}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"ord": 1}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"ord": np.inf}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"ord": "nuc"}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"axis": 1}),
        (np.array([[1.0, -2.0], [3.0, 4.0]]), {"axis": 0, "keepdims": True}),
    ],
)
def test_linalg_norm(x, kwargs):
    out = mx.linalg.norm(mx.array(x), **kwargs)
    np.testing.assert_allclose(np.asarray(out), np.linalg.norm(x, **kwargs), rtol=1e-6)


# -- creation -----------------------------------------------------------------------------------


def test_creation():
    assert mx.zeros((2, 3)).dtype == mx.float32 and mx.zeros(3).shape == (3,)
    assert mx.ones((2,), dtype=mx.int32).tolist() == [1, 1]
    assert mx.full((2, 2), 3).dtype == mx.int32
    assert mx.full((2,), 3.0, dtype=mx.int32).tolist() == [3, 3]
    assert mx.full((2, 2), mx.array([1.0, 2.0])).tolist() == [[1, 2], [1, 2]]
    assert mx.zeros_like(mx.array([1, 2])).dtype == mx.int32
    assert mx.ones_like(mx.array([1.0]), dtype=mx.int8).dtype == mx.int8
    assert mx.full_like(mx.array([1.0, 2.0]), 7).tolist() == [7.0, 7.0]
    assert mx.arange(5).tolist() == [0, 1, 2, 3, 4] and mx.arange(5).dtype == mx.int32
    assert mx.arange(1, 2, 0.25).tolist() == [1.0, 1.25, 1.5, 1.75]
    assert mx.arange(1, 2, 0.25).dtype == mx.float32
    assert mx.arange(3, dtype=mx.float32).dtype == mx.float32
    assert mx.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert np.array_equal(np.asarray(mx.eye(2, 3, k=1)), np.eye(2, 3, k=1))
    assert np.array_equal(np.asarray(mx.identity(3)), np.eye(3))
    assert np.array_equal(np.asarray(mx.tri(3, 4, k=1)), np.tri(3, 4, k=1))
    m = _rng.standard_normal((2, 3, 3)).astype(np.float32)
    assert np.array_equal(np.asarray(mx.tril(mx.array(m))), np.tril(m))
    assert np.array_equal(np.asarray(mx.triu(mx.array(m), k=1)), np.triu(m, k=1))
    assert mx.tril(mx.ones((2, 2), dtype=mx.int32)).dtype == mx.int32


# -- shapes and selection -------------------------------------------------------------------------

S = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

SHAPE_CASES = [
    (lambda a: mx.reshape(a, (4, -1)), lambda n: n.reshape(4, -1)),
    (lambda a: mx.flatten(a), lambda n: n.reshape(-1)),
    (lambda a: mx.flatten(a, 1, 2), lambda n: n.reshape(2, 12)),
    (lambda a: mx.unflatten(a, 2, (2, 2)), lambda n: n.reshape(2, 3, 2, 2)),
    (lambda a: mx.transpose(a, (2, 0, 1)), lambda n: n.transpose(2, 0, 1)),
    (lambda a: mx.swapaxes(a, 0, 2), lambda n: n.swapaxes(0, 2)),
    (lambda a: mx.moveaxis(a, 0, -1), lambda n: np.moveaxis(n, 0, -1)),
    (lambda a: mx.expand_dims(a, (0, 4)), lambda n: n[None, ..., None]),
    (lambda a: mx.squeeze(a[:1, :, :1]), lambda n: n[:1, :, :1].squeeze()),
    (lambda a: mx.squeeze(a[:1], 0), lambda n: n[0]),
    (
        lambda a: mx.broadcast_to(a[:, :1], (2, 3, 4)),
        lambda n: np.broadcast_to(n[:, :1], (2, 3, 4)),
    ),
    (lambda a: mx.concatenate([a, a], axis=1), lambda n: np.concatenate([n, n], 1)),
    (lambda a: mx.concatenate([a, a], axis=None), lambda n: np.concatenate([n, n], None)),
    (lambda a: mx.stack([a, a], axis=-1), lambda n: np.stack([n, n], -1)),
    (lambda a: mx.stack(mx.unstack(a, 1), 1), lambda n: n),
    (lambda a: mx.split(a, 2, axis=2)[1], lambda n: np.split(n, 2, 2)[1]),
    (lambda a: mx.split(a, [1, 3], axis=2)[2], lambda n: np.split(n, [1, 3], 2)[2]),
    (lambda a: mx.repeat(a, 2, axis=1), lambda n: np.repeat(n, 2, 1)),
    (lambda a: mx.repeat(a, 2), lambda n: np.repeat(n, 2)),
    (lambda a: mx.tile(a, (2, 1, 1)), lambda n: np.tile(n, (2, 1, 1))),
    (lambda a: mx.tile(a[0, 0], 3), lambda n: np.tile(n[0, 0], 3)),
    (lambda a: mx.pad(a, 1), lambda n: np.pad(n, 1)),
    (lambda a: mx.pad(a, (1, 2)), lambda n: np.pad(n, (1, 2))),
    (
        lambda a: mx.pad(a, [(0, 0), (1, 0), (0, 2)], constant_values=-1),
        lambda n: np.pad(n, [(0, 0), (1, 0), (0, 2)], constant_values=-1),
    ),
    (lambda a: mx.pad(a, 2, mode="edge"), lambda n: np.pad(n, 2, mode="edge")),
    (lambda a: mx.flip(a, 1), lambda n: np.flip(n, 1)),
    (lambda a: mx.flip(a), lambda n: np.flip(n)),
    (lambda a: mx.diff(a * a, n=2, axis=-1), lambda n: np.diff(n * n, n=2, axis=-1)),
    (lambda a: mx.take(a, mx.array([3, 0, 3]), axis=2), lambda n: np.take(n, [3, 0, 3], 2)),
    (lambda a: mx.take(a, mx.array([5, 1])), lambda n: np.take(n, [5, 1])),
    (lambda a: mx.take(a, 1, axis=1), lambda n: np.take(n, 1, 1)),
    (
        lambda a: mx.take_along_axis(a, mx.argsort(-a, 2), 2),
        lambda n: np.take_along_axis(n, np.argsort(-n, 2), 2),
    ),
    (
        lambda a: mx.put_along_axis(a, mx.array([[[1]], [[2]]]), mx.array(-1.0), 2),
        lambda n: _put(n),
    ),
    (lambda a: mx.slice(a, mx.array([1, 2]), [1, 2], (2, 2, 2)), lambda n: n[:, 1:3, 2:4]),
    (
        lambda a: mx.slice_update(a, mx.zeros((2, 2, 1)), mx.array([1, 3]), [1, 2]),
        lambda n: _slice_upd(n),
    ),
    (lambda a: mx.sort(-a, axis=1), lambda n: np.sort(-n, 1)),
    (lambda a: mx.sort(-a, axis=None), lambda n: np.sort(-n, None)),
    (lambda a: mx.argsort(-a, axis=0), lambda n: np.argsort(-n, 0, kind="stable")),
    (lambda a: mx.sort(mx.topk(a, 2, axis=-1), -1), lambda n: np.sort(n, -1)[..., -2:]),
    (lambda a: mx.partition(-a, 1, axis=-1)[..., 1], lambda n: np.sort(-n, -1)[..., 1]),
    (
        lambda a: mx.take_along_axis(-a, mx.argpartition(-a, 2, axis=-1), -1)[..., 2],
        lambda n: np.sort(-n, -1)[..., 2],
    ),
    (lambda a: mx.median(a, axis=-1), lambda n: np.median(n, -1)),
    (lambda a: mx.median(a), lambda n: np.median(n)),
    (lambda a: mx.roll(a, 1, axis=2), lambda n: np.roll(n, 1, 2)),
    (lambda a: mx.roll(a, -2), lambda n: np.roll(n, -2)),
    (lambda a: mx.roll(a, (1, 2), axis=(0, 2)), lambda n: np.roll(n, (1, 2), (0, 2))),
    (lambda a: mx.diag(a[0, 0]), lambda n: np.diag(n[0, 0])),
    (lambda a: mx.diag(a[0, 0], k=-1), lambda n: np.diag(n[0, 0], k=-1)),
    (lambda a: mx.diag(a[0], k=1), lambda n: np.diag(n[0], k=1)),
    (lambda a: mx.diagonal(a, 1, 1, 2), lambda n: np.diagonal(n, 1, 1, 2)),
    (lambda a: mx.trace(a[0]), lambda n: np.trace(n[0])),
    (lambda a: mx.meshgrid(a[0, 0], a[0, :, 0])[1], lambda n: np.meshgrid(n[0, 0], n[0, :, 0])[1]),
    (
        lambda a: mx.meshgrid(a[0, 0], a[0, :, 0], indexing="ij")[0],
        lambda n: np.meshgrid(n[0, 0], n[0, :, 0], indexing="ij")[0],
    ),
    (lambda a: mx.atleast_1d(a[0, 0, 0]), lambda n: np.atleast_1d(n[0, 0, 0])),
    (lambda a: mx.atleast_2d(a[0, 0]), lambda n: np.atleast_2d(n[0, 0])),
    (lambda a: mx.atleast_3d(a[0]), lambda n: np.atleast_3d(n[0])),
]


def _put(n):
    out = n.copy()
    np.put_along_axis(out, np.array([[[1]], [[2]]]), -1.0, 2)
    return out


def _slice_upd(n):
    out = n.copy()
    out[:, 1:3, 3:4] = 0
    return out


@pytest.mark.parametrize("fn,ref", SHAPE_CASES, ids=[str(i) for i in range(len(SHAPE_CASES))])
def test_shape_and_selection_ops(fn, ref):
    out = fn(mx.array(S))
    expected = ref(S)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(np.asarray(out), expected)


def test_sort_family_dtypes():
    x = mx.array([3.0, 1.0, 2.0])
    assert mx.argsort(x).dtype == mx.uint32 and mx.argpartition(x, 1).dtype == mx.uint32
    assert mx.argsort(mx.array([1, 0, 1, 0])).tolist() == [1, 3, 0, 2]  # stable


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,pattern",
    [
        (
            lambda: mx.ones((2, 3)) @ mx.ones((4, 5)),
            r"matmul: shapes \(2, 3\) and \(4, 5\) do not line up",
        ),
        (lambda: mx.add(mx.ones((2, 3)), mx.ones((4, 5))), r"add: shapes \(2, 3\) and \(4, 5\)"),
        (lambda: mx.maximum(mx.ones(3), mx.ones(2)), r"maximum: shapes \(3,\) and \(2,\)"),
        (lambda: mx.where(mx.ones(3) > 0, mx.ones(2), 0), r"where: shapes"),
        (lambda: mx.reshape(mx.ones((2, 3)), (4, 5)), r"reshape: .*\(2, 3\).*\(4, 5\)"),
        (
            lambda: mx.concatenate([mx.ones((2, 3)), mx.ones((4, 5))]),
            r"concatenate: shapes \(2, 3\), \(4, 5\)",
        ),
        (lambda: mx.stack([mx.ones(2), mx.ones(3)]), r"stack: .*\(2,\).*\(3,\)"),
        (lambda: mx.broadcast_to(mx.ones(3), (2, 2)), r"broadcast_to: .*\(3,\).*\(2, 2\)"),
        (lambda: mx.squeeze(mx.ones((2, 3)), 0), r"squeeze: .*\(2, 3\)"),
        (lambda: mx.split(mx.ones(5), 2), r"split: .*5"),
        (lambda: mx.inner(mx.ones(3), mx.ones(4)), r"inner: shapes \(3,\) and \(4,\)"),
        (
            lambda: mx.tensordot(mx.ones((2, 3)), mx.ones((4, 2)), 1),
            r"tensordot: shapes \(2, 3\) and \(4, 2\)",
        ),
        (
            lambda: mx.einsum("ij,jk", mx.ones((2, 3)), mx.ones((4, 2))),
            r"einsum: .*\(2, 3\), \(4, 2\)",
        ),
        (lambda: mx.transpose(mx.ones((2, 3)), (0, 0)), r"transpose: .*\(2, 3\)"),
        (
            lambda: mx.take_along_axis(mx.ones((2, 3)), mx.array([0]), 1),
            r"take_along_axis: .*\(1,\).*\(2, 3\)",
        ),
        (lambda: mx.topk(mx.ones(3), 5), r"topk: k=5"),
        (lambda: mx.max(mx.zeros((0,))), r"max: .*\(0,\)"),
        (lambda: mx.pad(mx.ones((2, 2)), [(1, 1)] * 3), r"pad: 3 pad widths .* 2 dimensions"),
        (lambda: mx.ones(2).at[mx.array([5])].add(1.0), r"at\[\]\.add"),
    ],
)
def test_shape_errors_are_value_errors_naming_op_and_shapes(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: mx.sum(mx.ones((2, 3)), axis=2),
        lambda: mx.mean(mx.ones(3), axis=-2),
        lambda: mx.max(mx.ones(3), axis=1),
        lambda: mx.argmax(mx.ones(3), axis=1),
        lambda: mx.softmax(mx.ones(3), axis=1),
        lambda: mx.logsumexp(mx.ones(3), axis=3),
        lambda: mx.cumsum(mx.ones(3), axis=1),
        lambda: mx.concatenate([mx.ones(2), mx.ones(2)], axis=1),
        lambda: mx.expand_dims(mx.ones(2), 3),
        lambda: mx.swapaxes(mx.ones(2), 0, 1),
        lambda: mx.sort(mx.ones(2), axis=1),
        lambda: mx.take(mx.ones(2), mx.array([0]), axis=1),
    ],
)
def test_axis_errors_are_value_and_index_errors(call):
    with pytest.raises(ValueError, match="axis") as info:
        call()
    assert isinstance(info.value, IndexError)
    assert isinstance(info.value, mx.AxisError)


# -- derivatives at non-differentiable points (MLX's choices) -------------------------------------


def test_relu_and_abs_at_zero():
    x = mx.array([-1.0, 0.0, 1.0])
    assert mx.grad(lambda x: mx.maximum(x, 0).sum())(x).tolist() == [0.0, 0.0, 1.0]
    assert mx.grad(lambda x: mx.maximum(0, x).sum())(x).tolist() == [0.0, 1.0, 1.0]
    assert mx.grad(lambda x: mx.abs(x).sum())(x).tolist() == [-1.0, 0.0, 1.0]
    assert mx.grad(lambda x: mx.sign(x).sum())(x).tolist() == [0.0, 0.0, 0.0]


def test_maximum_and_minimum_ties_go_to_the_second_argument():
    a, b = mx.array([1.0, 2.0, 3.0]), mx.array([1.0, 1.0, 4.0])
    ga, gb = mx.grad(lambda a, b: mx.maximum(a, b).sum(), argnums=(0, 1))(a, b)
    assert ga.tolist() == [0.0, 1.0, 0.0] and gb.tolist() == [1.0, 0.0, 1.0]
    ga, gb = mx.grad(lambda a, b: mx.minimum(a, b).sum(), argnums=(0, 1))(a, b)
    assert ga.tolist() == [0.0, 0.0, 1.0] and gb.tolist() == [1.0, 1.0, 0.0]
    g = mx.grad(lambda x: mx.clip(x, 0.0, 1.0).sum())(mx.array([0.0, 0.5, 1.0]))
    assert g.tolist() == [0.0, 1.0, 0.0]


def test_max_and_min_reductions_share_ties_equally():
    g = mx.grad(lambda x: mx.max(x))(mx.array([1.0, 3.0, 3.0]))
    assert g.tolist() == [0.0, 0.5, 0.5]
    g = mx.grad(lambda x: mx.min(x, axis=1).sum())(mx.array([[1.0, 1.0, 1.0], [0.0, 2.0, 5.0]]))
    np.testing.assert_allclose(g.numpy(), [[1 / 3] * 3, [1.0, 0.0, 0.0]], rtol=1e-6)


def test_sort_ties_follow_the_stable_order():
    # sorted position j takes its gradient to the element a stable argsort puts there
    w = mx.array([1.0, 2.0, 3.0])
    g = mx.grad(lambda x: (mx.sort(x) * w).sum())(mx.array([2.0, 1.0, 2.0]))
    assert g.tolist() == [2.0, 1.0, 3.0]


def test_products_with_zeros_have_exact_gradients():
    assert mx.grad(lambda x: mx.prod(x))(mx.array([2.0, 0.0, 3.0])).tolist() == [0.0, 6.0, 0.0]
    assert mx.grad(lambda x: mx.prod(x))(mx.array([2.0, 0.0, 0.0])).tolist() == [0.0, 0.0, 0.0]
    g = mx.grad(lambda x: mx.cumprod(x).sum())(mx.array([2.0, 0.0, 3.0]))
    assert g.tolist() == [1.0, 8.0, 0.0]


def test_stop_gradient():
    x = mx.array([1.0, 2.0])
    assert mx.grad(lambda x: (mx.stop_gradient(x) * x).sum())(x).tolist() == [1.0, 2.0]
    assert mx.stop_gradient(x).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("axis", [(0, 1), (1, 0), (-2, -1), (-1, 0), (2, 1)])
@pytest.mark.parametrize("ord", [1, np.inf])
@pytest.mark.parametrize("keepdims", [False, True])
def test_matrix_norms_match_numpy_on_any_axis_pair(axis, ord, keepdims):
    a = np.random.default_rng(0).standard_normal((3, 4, 5))
    got = mx.linalg.norm(mx.array(a, dtype=mx.float64), ord=ord, axis=axis, keepdims=keepdims)
    want = np.linalg.norm(a, ord=ord, axis=axis, keepdims=keepdims)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want)


def test_scatter_add_of_many_whole_rows_equals_numpys_add_at():
    # 700 indices into 50 rows of 16 (an embedding's gradient): the sorted path
    rng = np.random.default_rng(5)
    base = rng.standard_normal((50, 16)).astype(np.float32)
    for idx in (rng.integers(0, 50, (35, 20)), -rng.integers(1, 51, 700), rng.integers(0, 3, 64)):
        v = rng.standard_normal(idx.shape + (16,)).astype(np.float32)
        want = base.copy()
        np.add.at(want, idx, v)
        got = mx.array(base).at[mx.array(idx)].add(mx.array(v))
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    with pytest.raises((IndexError, ValueError), match="out of bounds"):
        mx.zeros((10, 16)).at[mx.array(np.arange(70) % 11)].add(mx.ones((70, 16)))
