"""matmul over stacked and strided operands (issue 20): a stacked operand times a matrix is
folded into one GEMM, forward and in the matrix's VJP; the results and gradients must equal
NumPy's stacked product and the per-matrix sums for every layout."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx

RNG = np.random.default_rng(20)


def _layouts(shape: tuple) -> dict:
    """The same values as a contiguous array, a transposed view and a strided slice."""
    base = RNG.standard_normal(shape).astype(np.float32)
    rev = tuple(reversed(range(len(shape))))
    transposed = np.ascontiguousarray(base.transpose(rev)).transpose(rev)
    strided = np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)
    strided[..., ::2] = base
    return {"contiguous": base, "transposed": transposed, "strided": strided[..., ::2]}


@pytest.mark.parametrize("a_layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("b_layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("a_shape", [(3, 5, 4), (2, 3, 5, 4), (1, 5, 4)])
def test_stacked_times_matrix_forward_and_gradients(a_layout, b_layout, a_shape):
    a_np = _layouts(a_shape)[a_layout]
    b_np = _layouts((4, 6))[b_layout]
    a, b = mx.array(a_np), mx.array(b_np)
    assert mx.matmul(a, b).shape == a_shape[:-1] + (6,)
    np.testing.assert_allclose(np.array(a @ b), a_np @ b_np, rtol=1e-5, atol=1e-5)
    g_np = RNG.standard_normal(a_shape[:-1] + (6,)).astype(np.float32)
    ga, gb = mx.grad(lambda x, y: mx.sum((x @ y) * mx.array(g_np)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(np.array(ga), g_np @ b_np.T, rtol=1e-5, atol=1e-5)
    want_b = a_np.reshape(-1, 4).T @ g_np.reshape(-1, 6)
    np.testing.assert_allclose(np.array(gb), want_b, rtol=1e-4, atol=1e-5)
    assert gb.shape == (4, 6)


def test_transposed_weight_gradient_keeps_shape_and_values():
    # x @ W.T as a Linear over (T, N, D): the weight's gradient is (out, in)
    x_np = RNG.standard_normal((7, 3, 4)).astype(np.float32)
    w_np = RNG.standard_normal((5, 4)).astype(np.float32)
    x, w = mx.array(x_np), mx.array(w_np)
    gw = mx.grad(lambda w: mx.sum(mx.sin(x @ w.T)), argnums=0)(w)
    want = np.einsum("tno,tni->oi", np.cos(x_np @ w_np.T), x_np)
    np.testing.assert_allclose(np.array(gw), want, rtol=1e-4, atol=1e-5)


def test_four_dimensional_transposed_views_match_numpy():
    # attention's (B, H, L, D) views taken from (L, B, H, D) with transposes
    q_np = RNG.standard_normal((6, 2, 3, 4)).astype(np.float32).transpose(1, 2, 0, 3)
    k_np = RNG.standard_normal((6, 2, 3, 4)).astype(np.float32).transpose(1, 2, 3, 0)
    out = mx.matmul(mx.array(q_np), mx.array(k_np))
    np.testing.assert_allclose(np.array(out), q_np @ k_np, rtol=1e-5, atol=1e-5)


def test_second_derivative_through_the_folded_product():
    a_np = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b_np = RNG.standard_normal((4, 2)).astype(np.float32)
    a, b = mx.array(a_np), mx.array(b_np)

    def inner(b):
        return mx.sum(mx.grad(lambda b: mx.sum((a @ b) ** 2))(b) ** 2)

    got = mx.grad(inner)(b)
    # d/db sum((2 A^T A b)^2) = 8 (A^T A)^2 b, A the rows of a
    m = a_np.reshape(-1, 4)
    ata = m.T @ m
    np.testing.assert_allclose(np.array(got), 8 * ata @ ata @ b_np, rtol=1e-4, atol=1e-3)


def test_empty_and_integer_operands():
    assert mx.matmul(mx.zeros((2, 0, 3)), mx.zeros((3, 4))).shape == (2, 0, 4)
    assert mx.matmul(mx.zeros((2, 3, 0)), mx.zeros((0, 4))).shape == (2, 3, 4)
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    b = np.arange(8, dtype=np.int32).reshape(4, 2)
    np.testing.assert_array_equal(np.array(mx.matmul(mx.array(a), mx.array(b))), a @ b)
    with pytest.raises(ValueError):
        mx.matmul(mx.zeros((2, 3, 4)), mx.zeros((5, 2)))


def test_vmap_of_the_folded_product():
    a_np = RNG.standard_normal((3, 2, 5, 4)).astype(np.float32)
    b_np = RNG.standard_normal((4, 6)).astype(np.float32)
    got = mx.vmap(lambda x: x @ mx.array(b_np))(mx.array(a_np))
    np.testing.assert_allclose(np.array(got), a_np @ b_np, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "c_shape,a_shape", [((6,), (5, 4)), ((5, 6), (3, 5, 4)), ((1, 6), (5, 4)), ((), (2, 5, 4))]
)
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0)])
def test_addmm_is_one_primitive_with_the_composite_values(c_shape, a_shape, alpha, beta):
    c_np = RNG.standard_normal(c_shape).astype(np.float32)
    a_np = RNG.standard_normal(a_shape).astype(np.float32)
    b_np = RNG.standard_normal((4, 6)).astype(np.float32)
    c, a, b = mx.array(c_np), mx.array(a_np), mx.array(b_np)

    def fused(c, a, b):
        return mx.addmm(c, a, b, alpha=alpha, beta=beta)

    def composite(c, a, b):
        return alpha * (a @ b) + beta * c

    np.testing.assert_allclose(np.array(fused(c, a, b)), np.array(composite(c, a, b)), rtol=1e-6)
    w = mx.array(RNG.standard_normal(a_shape[:-1] + (6,)).astype(np.float32))
    got = mx.grad(lambda *x: mx.sum(fused(*x) * w), argnums=(0, 1, 2))(c, a, b)
    want = mx.grad(lambda *x: mx.sum(composite(*x) * w), argnums=(0, 1, 2))(c, a, b)
    for g, r in zip(got, want):
        assert g.shape == r.shape
        np.testing.assert_allclose(np.array(g), np.array(r), rtol=1e-5, atol=1e-5)
    batched = mx.vmap(lambda a: fused(c, a, b))(mx.stack([a, a * 2]))
    np.testing.assert_allclose(
        np.array(batched), np.stack([composite(c, a, b), composite(c, a * 2, b)]), rtol=1e-5
    )


def test_addmm_keeps_one_node_and_falls_back_for_mixed_types():
    a = mx.array(RNG.standard_normal((3, 4)).astype(np.float32))
    b = mx.array(RNG.standard_normal((4, 2)).astype(np.float32))
    seen = []

    def f(a):
        out = mx.addmm(mx.zeros((2,)), a, b)
        seen.append(out)
        return mx.sum(out)

    mx.grad(f)(a)
    assert seen[0]._node.prim.name == "addmm"
    c16 = mx.zeros((2,), dtype=mx.float16)
    assert mx.addmm(c16, a, b).dtype == mx.float32  # promoted by the composite form
    with pytest.raises(ValueError, match="does not broadcast"):
        mx.addmm(mx.zeros((3,)), a, b)
