"""Tensor operators through the op table's fast paths (issue 20): same results as before.

The torch door hands elementwise operators the tensors themselves (no plain handles); results
keep the tensor class, MLX's weak scalars, PyTorch's dtypes and the graph.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch


def test_results_are_tensors_and_scalars_stay_weak():
    t = torch.ones(3, dtype=torch.int16)
    for r in (t + 3, 3 + t, t * 2, t - t, t == t, -t):
        assert type(r) is torch.Tensor
    assert (t + 3).dtype == torch.int16 and (3 * t).dtype == torch.int16
    d = torch.ones(2, dtype=torch.float64)
    assert (d * 2.5).dtype == torch.float64 and (2.5 * d).dtype == torch.float64
    assert (t == (t, t)) is False


def test_mixed_tensor_and_array_operands_keep_the_graph():
    a = torch.tensor(2.0, requires_grad=True)
    x = mx.array([1.0, 2.0, 3.0])  # a plain array meets a tensor
    loss = (a * x + x * a - 1.5 * a).sum()
    assert type(loss) is torch.Tensor
    loss.backward()
    assert math.isclose(float(a.grad), 2 * 6.0 - 3 * 1.5)


def test_polynomial_step_matches_pytorch():
    real_torch = pytest.importorskip("torch")
    xs = np.linspace(-math.pi, math.pi, 2000, dtype=np.float32)
    got, want = [], []
    for lib, out in ((torch, got), (real_torch, want)):
        x = lib.tensor(xs)
        y = lib.sin(x)
        p = [lib.tensor(v, requires_grad=True) for v in (0.1, -0.2, 0.3, -0.4)]
        for _ in range(3):
            y_pred = p[0] + p[1] * x + p[2] * x**2 + p[3] * x**3
            loss = (y_pred - y).pow(2).sum()
            loss.backward()
            with lib.no_grad():
                for q in p:
                    q -= 1e-6 * q.grad
                    q.grad = None
            out.append(loss.item())
        out.extend(q.item() for q in p)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_cube_of_negative_bases_is_exact_as_pytorch():
    real_torch = pytest.importorskip("torch")
    xs = np.linspace(-3, 3, 1001, dtype=np.float32)
    got = np.asarray(torch.tensor(xs) ** 3)
    np.testing.assert_array_equal(got, (real_torch.tensor(xs) ** 3).numpy())
    np.testing.assert_allclose(np.asarray(mx.array(xs) ** 3), xs.astype(np.float64) ** 3, rtol=1e-6)


def test_functions_taking_tensors_as_they_are_keep_the_door_rules():
    # elementwise ops, matmul, cat, stack and transpose skip the plain-handle conversion
    # (``takes_tensors``); their results are still tensors outside a door and plain arrays
    # inside one, where implementations keep MLX's meanings
    from chainrule.torch._tensor_class import door

    t = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], requires_grad=True)
    plain = mx.array([[1.0, 2.0, 3.0]])
    for out in (torch.sigmoid(t), torch.cat([t, t]), torch.stack([t, t]), t.transpose(0, 1)):
        assert type(out) is torch.Tensor
    assert type(torch.exp(plain)) is torch.Tensor and type(plain) is mx.array
    seen = []

    def inner(x):
        y = torch.cat([torch.sigmoid(x), x])
        seen.append(type(y))
        return y.transpose(1, 0)  # MLX's transpose inside a door: every axis reversed

    out = door(inner)(t)
    assert seen == [mx.array] and type(out) is torch.Tensor and tuple(out.shape) == (3, 4)
    out.sum().backward()
    s = 1 / (1 + np.exp(-np.asarray(t.detach())))
    np.testing.assert_allclose(np.asarray(t.grad), s * (1 - s) + 1, rtol=1e-6)


def test_shape_methods_and_indexing_take_tensors_as_they_are():
    # reshape, transpose, cast, cat, stack and indexing read only the slots: tensors in,
    # tensors out, the graph kept, the caller's tensor never rebound
    x = torch.arange(24.0).reshape(2, 3, 4).requires_grad_()
    idx = torch.tensor([2, 0])
    outs = [
        x.reshape(4, 6),
        x.reshape((2, 12)),
        x.reshape(2, 3, 4),
        x.transpose(0, 2),
        x.transpose(-1, -2),
        x.float(),
        x.double(),
        x[..., 0],
        x[:, None],
        x[1, idx],
        x[(slice(None), idx)],
        torch.cat([x, x], dim=1),
        torch.stack([x, x], dim=-1),
    ]
    for r in outs:
        assert type(r) is torch.Tensor
    assert outs[3].shape == (4, 3, 2) and outs[4].shape == (2, 4, 3)
    assert outs[6].dtype == torch.float64
    np.testing.assert_array_equal(outs[9].numpy(), x.detach().numpy()[1, [2, 0]])
    np.testing.assert_array_equal(outs[12].numpy()[..., 1], x.detach().numpy())
    sum(r.sum() * (i + 1) for i, r in enumerate(outs)).backward()
    assert x.grad.shape == (2, 3, 4) and type(x.grad) is torch.Tensor
    assert x.shape == (2, 3, 4) and x.requires_grad


def test_stack_without_a_graph_matches_numpy():
    for shape in ((), (3,), (2, 3)):
        parts = [
            np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(3)
        ]
        for axis in range(-len(shape) - 1, len(shape) + 1):
            got = mx.stack([mx.array(p) for p in parts], axis=axis)
            want = np.stack(parts, axis=axis)
            assert got.shape == want.shape and got.dtype == mx.float32
            np.testing.assert_array_equal(np.asarray(got), want)
    with pytest.raises(ValueError, match="stack"):
        mx.stack([mx.zeros((2,)), mx.zeros((3,))])


def test_arange_dtypes_follow_pytorch():
    real_torch = pytest.importorskip("torch")
    for args, kw in (
        ((5,), {}),
        ((1, 10, 3), {}),
        ((0, 1, 0.1), {}),
        ((0.5, 4), {}),
        ((0, 8, 2), {"dtype": "float32"}),
        ((3,), {"device": "cpu"}),
    ):
        ours = {k: getattr(torch, v) if k == "dtype" else v for k, v in kw.items()}
        theirs = {k: getattr(real_torch, v) if k == "dtype" else v for k, v in kw.items()}
        got, want = torch.arange(*args, **ours), real_torch.arange(*args, **theirs)
        assert type(got) is torch.Tensor
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], args
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="step must be nonzero"):
        torch.arange(0, 3, 0)


def test_softmax_and_sigmoid_of_non_finite_values_match_pytorch():
    real_torch = pytest.importorskip("torch")
    inf, nan = math.inf, math.nan
    rows = [[1.0, inf], [-inf, -inf], [1.0, -inf], [nan, 1.0], [1.0, 2.0, 3.0], [-1e30, 0.0]]
    for row in rows:
        for dtype in (np.float32, np.float64):
            v = np.array(row, dtype=dtype)
            with np.errstate(invalid="ignore"):
                got = np.asarray(torch.softmax(torch.tensor(v), dim=-1))
                got_sig = np.asarray(torch.sigmoid(torch.tensor(v)))
            want = real_torch.softmax(real_torch.tensor(v), dim=-1).numpy()
            want_sig = real_torch.sigmoid(real_torch.tensor(v)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
            np.testing.assert_allclose(got_sig, want_sig, rtol=1e-6, equal_nan=True)
    # a scalar and a half-precision input take the general path
    assert math.isclose(float(torch.sigmoid(torch.tensor(0.0))), 0.5)
    h = torch.sigmoid(torch.tensor([0.0, 2.0], dtype=torch.float16))
    assert h.dtype == torch.float16
    np.testing.assert_allclose(h.numpy().astype(np.float32), [0.5, 0.8808], rtol=1e-3)


def test_light_layer_doors_give_tensors_and_keep_the_graph():
    import chainrule.nn as cnn

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, requires_grad=True)
    layers = [
        torch.nn.Linear(8, 8),
        torch.nn.LayerNorm(8),
        torch.nn.RMSNorm(8, eps=1e-5),
        cnn.Linear(8, 8),
        cnn.RMSNorm(8),
    ]
    h = x
    for layer in layers:
        h = layer(h)
        assert type(h) is torch.Tensor, type(layer)
    ids = torch.nn.Embedding(10, 8)(torch.tensor([[1, 2], [3, 4]]))
    assert type(ids) is torch.Tensor and ids.shape == (2, 2, 8)
    (h.sum() + ids.sum()).backward()
    assert type(x.grad) is torch.Tensor and x.grad.shape == x.shape
    assert layers[0].weight.grad is not None
    # plain arrays stay plain
    assert type(cnn.Linear(8, 4)(mx.ones((2, 8)))) is mx.array


def test_a_subclass_overriding_call_keeps_the_full_door():
    import chainrule.nn as cnn

    class Swapped(cnn.Linear):
        __module__ = "chainrule.nn.layers.example"  # one of chainrule's own layers: a door

        def __call__(self, x):
            # MLX's meaning of transpose (a permutation of all axes; PyTorch's takes two)
            return super().__call__(x).transpose(2, 0, 1)

    out = Swapped(4, 3)(torch.ones(2, 5, 4))
    assert type(out) is torch.Tensor and out.shape == (3, 2, 5)


def test_python_ints_meet_tensors_as_in_pytorch():
    real_torch = pytest.importorskip("torch")
    cases = [
        lambda T: T.tensor([True, False]) + 1,
        lambda T: 1 + T.tensor([True]),
        lambda T: T.tensor([True]) * 3,
        lambda T: T.tensor([1], dtype=T.int8) + 1000,
        lambda T: T.tensor([0], dtype=T.uint8) - 1,
        lambda T: 300 - T.tensor([5], dtype=T.uint8),
        lambda T: T.tensor([1], dtype=T.int32) + 2**40,
        lambda T: T.tensor([1], dtype=T.int8) == 1000,
        lambda T: T.tensor([100], dtype=T.int16) // 7,
        lambda T: T.tensor([1.5]) + 1,
        lambda T: T.add(T.tensor([True]), 1),
        lambda T: T.add(T.tensor([1], dtype=T.int8), 100, alpha=10),
        lambda T: T.tensor([True]).add(2),
        lambda T: T.tensor([3], dtype=T.uint8).sub(5),
        lambda T: T.tensor([7, -7]).div(2, rounding_mode="trunc"),
        lambda T: T.tensor([1], dtype=T.int8).__iadd__(1000),
    ]
    for i, case in enumerate(cases):
        got, want = case(torch), case(real_torch)
        assert type(got) is torch.Tensor, i
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], i
        assert got.tolist() == want.tolist(), i
    # MLX-style arrays keep MLX's rule: bool + int is int32, an int that does not fit raises
    assert (mx.array([True]) + 1).dtype == mx.int32
    with pytest.raises(ValueError, match="overflow"):
        mx.array([1], dtype=mx.int8) + 1000


def test_binary_methods_take_tensors_as_the_operators_do():
    real_torch = pytest.importorskip("torch")
    cases = [
        lambda T: T.tensor([1, 2], dtype=T.int8).mul(1000),  # wraps, as ``t * 1000``
        lambda T: T.tensor([True, False]).mul(3),
        lambda T: T.tensor([3], dtype=T.uint8).pow(2),
        lambda T: T.tensor([1, 2], dtype=T.int8).eq(1000),
        lambda T: T.tensor([1.5, -2.0]).pow(2),
        lambda T: T.tensor([1.0, 2.0], dtype=T.float64).lt(1.5),
    ]
    for i, case in enumerate(cases):
        got, want = case(torch), case(real_torch)
        assert type(got) is torch.Tensor, i
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], i
        assert got.tolist() == want.tolist(), i


def test_augmented_updates_count_versions_and_keep_leaves():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    (a * a).sum().backward()
    v = a._version
    with torch.no_grad():
        a -= 0.5 * a.grad
        a *= 2
    assert a._version == v + 2 and a.is_leaf and a.requires_grad
    np.testing.assert_allclose(a.detach().numpy(), [0.0, 0.0])
    b = a * 3  # the updated leaf records a fresh graph
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0 + 3.0, 4.0 + 3.0])
    y = a * 2
    z = y * y
    y += 1  # replaced after z saved it: PyTorch's error on backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()
