"""Values of the operations added for MLX parity, against NumPy's twins where there is one."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import batching

RNG = np.random.default_rng(7)


def test_degrees_radians_trunc_logical_xor():
    a = RNG.uniform(-4, 4, 6).astype(np.float32)
    np.testing.assert_allclose(mx.degrees(mx.array(a)), np.degrees(a), rtol=1e-6)
    np.testing.assert_allclose(mx.radians(mx.array(a)), np.radians(a), rtol=1e-6)
    np.testing.assert_array_equal(mx.trunc(mx.array(a)), np.trunc(a))
    x, y = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    assert mx.logical_xor(mx.array(x), mx.array(y)).tolist() == np.logical_xor(x, y).tolist()


def test_logcumsumexp_matches_numpy():
    a = RNG.standard_normal((3, 5)).astype(np.float32)
    for axis in (0, 1):
        want = np.logaddexp.accumulate(a, axis=axis)
        np.testing.assert_allclose(mx.logcumsumexp(mx.array(a), axis=axis), want, rtol=1e-5)
    rev = np.logaddexp.accumulate(a[:, ::-1], axis=1)[:, ::-1]
    got = mx.logcumsumexp(mx.array(a), axis=1, reverse=True)
    np.testing.assert_allclose(got, rev, rtol=1e-5)
    excl = mx.logcumsumexp(mx.array(a), axis=1, inclusive=False)
    assert np.isneginf(np.asarray(excl)[:, 0]).all()
    np.testing.assert_allclose(np.asarray(excl)[:, 1:], np.logaddexp.accumulate(a, 1)[:, :-1])


def test_count_nonzero_searchsorted_kron_vecdot():
    c = np.array([[0, 1, 0], [2, 3, 0]])
    assert mx.count_nonzero(mx.array(c), axis=0).tolist() == np.count_nonzero(c, 0).tolist()
    s = np.sort(RNG.standard_normal(9)).astype(np.float32)
    v = RNG.standard_normal(7).astype(np.float32)
    for side in ("left", "right"):
        got = mx.searchsorted(mx.array(s), mx.array(v), side=side)
        assert got.dtype == mx.uint32
        np.testing.assert_array_equal(got, np.searchsorted(s, v, side=side))
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 2, 2))
    np.testing.assert_allclose(mx.kron(mx.array(a), mx.array(b)), np.kron(a, b), rtol=1e-5)
    z = np.array([1 + 2j, 3 - 1j], np.complex64)
    np.testing.assert_allclose(mx.vecdot(mx.array(z), mx.array(z[::-1])), np.vdot(z, z[::-1]))
    with pytest.raises(ValueError):
        mx.searchsorted(mx.zeros((2, 2)), mx.array([1.0]))


def test_as_strided_broadcast_shapes_windows():
    x = RNG.standard_normal(20).astype(np.float32)
    want = np.lib.stride_tricks.as_strided(x[2:], (4, 3), (12, 4))
    np.testing.assert_array_equal(mx.as_strided(mx.array(x), (4, 3), (3, 1), 2), want)
    assert mx.broadcast_shapes((4, 1, 6), (5, 6)) == np.broadcast_shapes((4, 1, 6), (5, 6))
    with pytest.raises(ValueError):
        mx.broadcast_shapes((3, 4), (4, 3))
    for name in ("bartlett", "blackman", "hamming", "hanning"):
        np.testing.assert_allclose(getattr(mx, name)(9), getattr(np, name)(9), atol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge"])
def test_pad_modes_match_numpy(mode):
    a = RNG.standard_normal((3, 4)).astype(np.float32)
    for width in ([(2, 5), (7, 1)], [(0, 0), (3, 3)]):
        np.testing.assert_array_equal(
            mx.pad(mx.array(a), width, mode=mode), np.pad(a, width, mode=mode)
        )


def test_median_nan_and_topk_zero():
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    np.testing.assert_array_equal(mx.median(mx.array(x), axis=1), np.median(x, axis=1))
    assert mx.topk(mx.arange(5), 0).shape == (0,)
    c = mx.cummax(mx.array([1.0, np.nan, 0.5]))
    np.testing.assert_array_equal(c, np.maximum.accumulate([1.0, np.nan, 0.5]))


@pytest.mark.parametrize("axis", [(0, 2), (1, 3), (0, 1, 3), (3, 1), (-1, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_median_over_several_axes_matches_numpy(axis, keepdims):
    """MLX (and NumPy) take the median over every axis given (it was the first one only)."""
    x = RNG.standard_normal((5, 4, 3, 6)).astype(np.float32)
    got = mx.median(mx.array(x), axis=axis, keepdims=keepdims)
    want = np.median(x, axis=axis, keepdims=keepdims)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)
    g = mx.grad(lambda v: mx.median(v, axis=axis).sum())(mx.array(x))
    assert g.shape == x.shape and abs(float(g.sum()) - want.size) < 1e-4  # weights sum to one


def test_median_refuses_bad_axes():
    x = mx.array([0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="out of bounds"):
        mx.median(x, axis=(0, 1))
    with pytest.raises(ValueError, match="repeated axis"):
        mx.median(x, axis=(0, 0))


def test_integer_powers_and_einsum_path():
    assert mx.power(mx.array([2, -2, 1]), mx.array([-1, -3, 2])).tolist() == [0, 0, 1]
    shapes = [(5, 8), (8, 10), (10, 7)]
    ops = [np.ones(s) for s in shapes]
    want = np.einsum_path("ij,jk,kl", *ops, optimize="greedy")[0][1:]
    assert mx.einsum_path("ij,jk,kl", *[mx.array(o) for o in ops])[0] == want


def test_gather_mm_and_segmented_mm():
    a = RNG.standard_normal((3, 2, 4)).astype(np.float32)
    b = RNG.standard_normal((5, 4, 3)).astype(np.float32)
    li, ri = np.array([2, 0]), np.array([4, 1])
    got = mx.gather_mm(mx.array(a), mx.array(b), mx.array(li), mx.array(ri))
    np.testing.assert_allclose(got, a[li] @ b[ri], rtol=1e-5, atol=1e-6)
    a2, b2 = RNG.standard_normal((3, 6)), RNG.standard_normal((6, 2))
    seg = np.array([[0, 2], [2, 6], [1, 1]])
    got = mx.segmented_mm(mx.array(a2), mx.array(b2), mx.array(seg))
    want = np.stack([a2[:, s:e] @ b2[s:e] for s, e in seg])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_masked_assignment_uses_rows_in_order():
    x = mx.array([0, 0, 0, 0, 0])
    x[mx.array([True, False, True, False, True])] = mx.array([7, 8, 9, 10])
    assert x.tolist() == [7, 0, 8, 0, 9]


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_vmap_of_gathers_and_scatters_is_vectorised():
    m = mx.array(RNG.standard_normal((4, 3, 5)).astype(np.float32))
    idx = mx.array([[0, 2], [1, 1], [2, 0], [0, 0]])
    before = batching.STATS["vectorised"]
    got = mx.vmap(lambda a, i: a[:, i])(m, idx)
    assert batching.STATS["vectorised"] == before + 1
    want = np.stack([np.asarray(m)[k][:, np.asarray(idx)[k]] for k in range(4)])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError):
        mx.vmap(lambda a, v: mx.pad(a, 1, constant_values=v))(m, mx.arange(4.0))


def test_divmod_is_not_differentiated_and_indices_must_fit_int32():
    # MLX: divmod has zero tangents for both outputs; Python ints past int32 in an index raise
    _, (dq, dr) = mx.jvp(lambda x: mx.divmod(x, mx.array(3.0)), [mx.array(7.0)], [mx.array(1.0)])
    assert dq.item() == 0.0 and dr.item() == 0.0
    x = mx.array([0, 1, 2])
    for bad in (lambda: x[: 2**32], lambda: x[2**32], lambda: x[0, -(2**40)]):
        with pytest.raises(ValueError, match="int32 range"):
            bad()
    assert x[:2].tolist() == [0, 1]


def test_broadcast_to_never_drops_dimensions():
    with pytest.raises(ValueError, match=r"cannot broadcast shape \(1, 1, 1\) to \(2, 2\)"):
        mx.broadcast_to(mx.ones((1, 1, 1)), (2, 2))
    assert mx.broadcast_to(mx.ones((1, 2)), (3, 1, 2)).shape == (3, 1, 2)
