"""``mx.linalg`` against NumPy (values, shapes, errors) and PyTorch (gradients)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import batching

RNG = np.random.default_rng(11)
INF = float("inf")


def _f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _well(*shape):
    return (RNG.uniform(-0.5, 0.5, shape) + 2 * np.eye(shape[-1])).astype(np.float32)


def _spd(*shape):
    a = RNG.uniform(-0.5, 0.5, shape)
    return (a @ np.swapaxes(a, -1, -2) + np.eye(shape[-1])).astype(np.float32)


def _close(got, want, tol=1e-5):
    got = np.asarray(got)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("ord", [None, 0.5, 0, 1, 2, 3, -1, INF, -INF])
@pytest.mark.parametrize("axis", [0, (1,), -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_vector_norms_match_numpy(ord, axis, keepdims):
    x = _f32(3, 4)
    got = mx.linalg.norm(mx.array(x), ord=ord, axis=axis, keepdims=keepdims)
    _close(got, np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims), 1e-5)


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 1, -1, 2, -2, INF, -INF])
@pytest.mark.parametrize("axis", [(0, 1), (2, 0), (-1, -2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_matrix_norms_match_numpy(ord, axis, keepdims):
    x = _f32(3, 4, 5)
    got = mx.linalg.norm(mx.array(x), ord=ord, axis=axis, keepdims=keepdims)
    _close(got, np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims), 1e-4)


def test_norm_without_axis_and_of_integers():
    x = np.arange(1, 7).reshape(2, 3)
    for ord in [None, 1, -1, INF, "fro"]:
        _close(mx.linalg.norm(mx.array(x), ord=ord), np.linalg.norm(x, ord=ord))
    _close(mx.linalg.norm(mx.array(x), keepdims=True), np.linalg.norm(x, keepdims=True))
    with pytest.raises(ValueError, match="linalg.norm: .*1-D or 2-D"):
        mx.linalg.norm(mx.zeros((2, 2, 2)), ord=1)
    with pytest.raises(ValueError, match="linalg.norm: ord 'nuc' is not a vector norm"):
        mx.linalg.norm(mx.zeros(3), ord="nuc")


def test_inverses_and_solves_match_numpy():
    a, b = _well(2, 4, 4), _f32(4, 3)
    _close(mx.linalg.inv(mx.array(a)), np.linalg.inv(a), 1e-4)
    _close(mx.linalg.solve(mx.array(a), mx.array(b)), np.linalg.solve(a, b), 1e-4)
    v = _f32(4)
    _close(mx.linalg.solve(mx.array(a[0]), mx.array(v)), np.linalg.solve(a[0], v), 1e-4)
    up = np.triu(a[0])
    got = mx.linalg.solve_triangular(mx.array(a[0]), mx.array(b), upper=True)
    _close(got, np.linalg.solve(up, b), 1e-4)
    tri = np.asarray(mx.linalg.tri_inv(mx.array(a), upper=False))
    np.testing.assert_array_equal(tri, np.tril(tri))
    _close(tri, np.linalg.inv(np.tril(a)), 1e-4)
    p = _f32(3, 5)
    _close(mx.linalg.pinv(mx.array(p)), np.linalg.pinv(p), 1e-4)


def test_cholesky_and_its_inverse():
    a = _spd(2, 3, 3)
    low = np.asarray(mx.linalg.cholesky(mx.array(a)))
    _close(low, np.linalg.cholesky(a), 1e-5)
    up = np.asarray(mx.linalg.cholesky(mx.array(a), upper=True))
    _close(up, np.swapaxes(low, -1, -2), 1e-5)
    for upper, factor in ((False, low), (True, up)):
        got = mx.linalg.cholesky_inv(mx.array(factor), upper=upper)
        _close(got, np.linalg.inv(a), 1e-4)


def test_decompositions_reconstruct_their_input():
    a = _f32(2, 4, 3)
    q, r = mx.linalg.qr(mx.array(a))
    _close(q @ r, a, 1e-5)
    u, s, vt = mx.linalg.svd(mx.array(a))
    assert u.shape == (2, 4, 4) and vt.shape == (2, 3, 3)
    _close(s, np.linalg.svd(a, compute_uv=False), 1e-5)
    sq = _f32(4, 4)
    w, v = mx.linalg.eig(mx.array(sq))
    assert w.dtype == mx.complex64
    _close(mx.array(sq) @ v, np.asarray(w)[None, :] * np.asarray(v), 1e-4)
    sym = sq + sq.T
    for uplo in ("L", "U"):
        w, v = mx.linalg.eigh(mx.array(sym), UPLO=uplo)
        _close(w, np.linalg.eigvalsh(sym, UPLO=uplo), 1e-4)
        _close(mx.linalg.eigvalsh(mx.array(sym), UPLO=uplo), np.asarray(w), 1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (3, 5), (5, 3)])
def test_lu_factorisations(shape):
    a = _f32(*shape)
    p, low, up = mx.linalg.lu(mx.array(a))
    assert p.dtype == mx.uint32
    rows = mx.take_along_axis(low, p[..., None], axis=-2)
    _close(rows @ up, a, 1e-5)
    if shape[-1] == shape[-2]:
        packed, piv = mx.linalg.lu_factor(mx.array(a))
        packed, piv = np.asarray(packed), np.asarray(piv)
        for i in np.ndindex(*shape[:-2]):
            perm = list(range(shape[-1]))
            for k, j in enumerate(piv[i]):
                perm[k], perm[j] = perm[j], perm[k]
            lu = packed[i]
            low_i = np.tril(lu, -1) + np.eye(shape[-1])
            _close(low_i @ np.triu(lu), a[i][perm], 1e-5)


def test_determinants_match_numpy():
    a = _f32(3, 4, 4)
    _close(mx.linalg.det(mx.array(a)), np.linalg.det(a), 1e-4)
    sign, logabs = mx.linalg.slogdet(mx.array(a))
    want_sign, want_log = np.linalg.slogdet(a)
    _close(sign, want_sign)
    _close(logabs, want_log, 1e-4)
    assert mx.linalg.det(mx.array([[1, 2], [3, 4]])).dtype == mx.float32


def test_cross_matches_numpy():
    a, b = _f32(2, 1, 3), _f32(1, 4, 3)
    _close(mx.linalg.cross(mx.array(a), mx.array(b)), np.cross(a, b), 1e-5)
    a, b = _f32(3, 5), _f32(3, 5)
    _close(mx.linalg.cross(mx.array(a), mx.array(b), axis=0), np.cross(a, b, axis=0), 1e-5)


def test_errors_are_value_errors_that_name_the_function():
    rect = mx.zeros((2, 3))
    for name in ("inv", "cholesky", "eig", "eigvals", "eigh", "eigvalsh", "det", "slogdet"):
        with pytest.raises(ValueError, match=f"linalg.{name}: .*square.*\\(2, 3\\)"):
            getattr(mx.linalg, name)(rect)
        with pytest.raises(ValueError, match=f"linalg.{name}: .*at least 2 dimensions"):
            getattr(mx.linalg, name)(mx.zeros(3))
    with pytest.raises(ValueError, match="linalg.qr: .*float32 or float64.*int32"):
        mx.linalg.qr(mx.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="linalg.det: complex inputs"):
        mx.linalg.det(mx.eye(3).astype(mx.complex64))
    with pytest.raises(ValueError, match="linalg.solve: shapes"):
        mx.linalg.solve(mx.eye(3), mx.zeros(4))
    with pytest.raises(ValueError, match="linalg.cross: a must have 3 elements"):
        mx.linalg.cross(mx.zeros(2), mx.zeros(3))
    with pytest.raises(ValueError, match="linalg.eigh: UPLO"):
        mx.linalg.eigh(mx.eye(2), UPLO="X")


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_solve_vmaps_over_either_operand_on_the_batched_path():
    a, b, v = mx.array(_well(5, 3, 3)), mx.array(_f32(5, 3, 2)), mx.array(_f32(5, 3))
    cases = [
        (lambda x, y: mx.linalg.solve(x, y), (a, v), (0, 0)),
        (lambda x, y: mx.linalg.solve(x, y), (a, b), (0, 0)),
        (lambda x, y: mx.linalg.solve(x, y), (a[0], v), (None, 0)),
        (lambda x, y: mx.linalg.solve(x, y), (a, b[0]), (0, None)),
    ]
    for fn, args, in_axes in cases:
        before = batching.STATS["vectorised"]
        got = mx.vmap(fn, in_axes=in_axes)(*args)
        assert batching.STATS["vectorised"] == before + 1
        want = [fn(*[x if ax is None else x[i] for x, ax in zip(args, in_axes)]) for i in range(5)]
        _close(got, np.stack([np.asarray(w) for w in want]), 1e-5)


TORCH_CASES = {
    "inv": (lambda m, x: m.linalg.inv(x).sum(), [_well(3, 3)]),
    "solve": (lambda m, x, y: (m.linalg.solve(x, y) ** 2).sum(), [_well(2, 3, 3), _f32(2, 3, 2)]),
    "cholesky": (lambda m, x: (m.linalg.cholesky(x) ** 3).sum(), [_spd(3, 3)]),
    "eigvalsh": (lambda m, x: (m.linalg.eigvalsh(x) ** 2).sum(), [_f32(4, 4)]),
    "det": (lambda m, x: m.linalg.det(x).sum(), [_f32(2, 3, 3)]),
    "slogdet": (lambda m, x: m.linalg.slogdet(x)[1].sum(), [_f32(3, 3)]),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_gradients_match_pytorch(name):
    torch = pytest.importorskip("torch")
    fn, args = TORCH_CASES[name]
    # chainrule differentiates the triangle the factorisations read (check_grads agrees);
    # PyTorch returns the symmetric gradient. They agree on symmetric perturbations.
    argnums = list(range(len(args)))
    got = mx.grad(lambda *xs: fn(mx, *xs), argnums=argnums)(*[mx.array(a) for a in args])
    want = torch.func.grad(lambda *xs: fn(torch, *xs), argnums=tuple(argnums))(
        *[torch.tensor(a) for a in args]
    )
    got = got if isinstance(got, (tuple, list)) else [got]
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g)
        if name in ("cholesky", "eigvalsh"):
            g = (g + np.swapaxes(g, -1, -2)) / 2
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-3, atol=1e-4)


def test_eigenvector_gradients_pass_the_second_order_check():
    x = mx.array(RNG.standard_normal((3, 3)), dtype=mx.float64)
    mx.check_grads(lambda a: (mx.linalg.eigh(a)[1] ** 2) * mx.linalg.eigvalsh(a), [x], order=2)
