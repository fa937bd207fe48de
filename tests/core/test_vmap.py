"""Vectorised ``vmap`` (``chainrule/core/batching.py``) against a per-example loop.

Every case of ``VECTORISED`` must take the batched path (one replay, no loop) and agree with
calling the function on each example; every case of ``FALLBACK`` must take the loop and agree
with it too.
"""

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import batching, ops

# The cases close over module-level arrays, which CHAINRULE_DEVICE=gpu makes on the GPU: vmap
# then loops (a closure over GPU data is what the host trace cannot follow), so these run on
# the CPU only (conftest.py); tests/core/test_vmap_gpu.py checks the GPU mode.
pytestmark = pytest.mark.host_only

RNG = np.random.default_rng(0)
B = 5


def _arr(*shape):
    return mx.array(RNG.standard_normal(shape).astype(np.float32))


X = _arr(B, 4)  # a batch of vectors
M = _arr(B, 3, 4)  # a batch of matrices
W = _arr(4, 6)
V = _arr(4)
S = _arr(2, 3, 4)  # an unmapped operand of higher rank than an example of X
POS = mx.array(RNG.uniform(0.5, 2.0, (B, 4)).astype(np.float32))
MASK = mx.array(RNG.standard_normal(4) > 0)


def _loop(fun, args, in_axes):
    """The reference: ``fun`` on each example, stacked along a new first axis."""
    size = next(np.asarray(a).shape[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = []
    for i in range(size):
        call = [a if ax is None else mx.take(a, i, ax) for a, ax in zip(args, in_axes)]
        outs.append(fun(*call))
    if isinstance(outs[0], tuple):
        return tuple(np.stack([np.asarray(o[k]) for o in outs]) for k in range(len(outs[0])))
    return np.stack([np.asarray(o) for o in outs])


def _mlp(x, w1, b1, w2, b2):
    h = mx.maximum(x @ w1 + b1, 0.0)
    return mx.log_softmax(mx.tanh(h) @ w2 + b2, axis=-1)


def _gated(x):
    s = x.sum()
    return x * (s > 0) * s


def _scatter_rows(m, i, x):
    y = m * 1.0
    y[i] = x  # a row picked by a mapped index
    return y.at[i, 1:].add(x[:3] * 2)


VECTORISED = {
    "unary": (lambda x: mx.exp(mx.sin(x)) + mx.sqrt(mx.abs(x)), (X,), (0,)),
    "binary_scalars": (lambda x: (2.0 - x) * 3 / (x * x + 1) ** 2, (X,), (0,)),
    "binary_rank_align": (lambda x: x * S + mx.minimum(S, x), (X,), (0,)),
    "both_batched": (lambda x, p: mx.logaddexp(x, p) - x / p + p**x, (X, POS), (0, 0)),
    "vec_at_mat": (lambda x: x @ W, (X,), (0,)),
    "mat_at_vec": (lambda m: m @ V, (M,), (0,)),
    "const_mat_at_batched_vec": (lambda x: W.T @ x, (X,), (0,)),
    "vec_at_vec": (lambda x, p: x @ p, (X, POS), (0, 0)),
    "mat_at_batched_mat": (lambda m, x: m @ x, (M, X), (0, 0)),
    "batched_mat_at_mat": (lambda m: m @ mx.swapaxes(m, -1, -2), (M,), (0,)),
    "stack_at_batched_vec": (lambda x: S @ x, (X,), (0,)),
    "reductions": (
        lambda m: (
            m.sum(axis=-1)
            + m.mean(axis=0).sum()
            + mx.max(m, axis=1, keepdims=True).sum(axis=-1)
            + m.min()
            + mx.logsumexp(m, axis=(0, 1)).sum()
        ),
        (M,),
        (0,),
    ),
    "softmax": (lambda m: mx.softmax(m, axis=-1) * mx.log_softmax(m, axis=0), (M,), (0,)),
    "shapes": (
        lambda m: mx.expand_dims(m.reshape(-1, 2).T, 0).squeeze(0)[1:, ::2] + m.transpose(1, 0)[0],
        (M,),
        (0,),
    ),
    "getitem": (lambda m: m[..., 1] + m[2, None, :3].sum(), (M,), (0,)),
    "where_unmapped_mask": (lambda x: mx.where(MASK, x, -x) + mx.where(MASK, 1.0, x), (X,), (0,)),
    "mask_from_example": (lambda x: mx.where(x > 0, x, 0.0) * 2, (X,), (0,)),
    "mask_product": (lambda x: x * (x > 0), (X,), (0,)),
    "mask_from_a_node": (_gated, (X,), (0,)),
    "output_is_a_mask": (lambda x: ((x > 0) & (x < 1), ~(x >= 0.5) * 2), (X,), (0,)),
    "relu_astype": (lambda x: mx.maximum(x, 0).astype(mx.float64) * 2, (X,), (0,)),
    "stack_concat": (lambda x: mx.concatenate([mx.stack([x, V]), W.T], axis=0), (X,), (0,)),
    "broadcast_to": (lambda x: mx.broadcast_to(x, (3, 4)) * 1.5, (X,), (0,)),
    "in_axes_1": (lambda x: x @ W, (mx.swapaxes(X, 0, 1),), (1,)),
    "unmapped_arg": (lambda x, w: mx.tanh(x @ w), (X, W), (0, None)),
    "constant_output": (lambda x: (x * 2, mx.ones(3)), (X,), (0,)),
    "vmap_of_grad": (mx.grad(lambda x: (mx.sin(x) * x).sum()), (X,), (0,)),
    "advanced_index": (lambda x: x[mx.array([2, 0, 2])], (X,), (0,)),
    "gather_by_mapped_index": (lambda i: W[i], (mx.array([3, 0, 1, 1, 2]),), (0,)),
    "gather_rows_and_columns": (
        lambda m, i: m[i, i] + m[:, i][1] + m[1:, None, i].sum(),
        (M, mx.array([[2, 0], [1, 1], [0, 2], [2, 2], [1, 0]])),
        (0, 0),
    ),
    "scatter_by_mapped_index": (_scatter_rows, (M, mx.array([2, 0, 1, 1, 2]), X), (0, 0, 0)),
    "scatter_into_unmapped": (_scatter_rows, (M[0], mx.array([2, 0, 1, 1, 2]), X), (None, 0, 0)),
    "mlp": (
        _mlp,
        (_arr(B, 4), _arr(4, 8), _arr(8), _arr(8, 3), _arr(3)),
        (0, None, None, None, None),
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORISED))
def test_vectorised_path_matches_the_loop(name):
    fun, args, in_axes = VECTORISED[name]
    before = dict(batching.STATS)
    got = mx.vmap(fun, in_axes=in_axes)(*args)
    assert batching.STATS["vectorised"] == before["vectorised"] + 1, batching.LAST["reason"]
    assert batching.STATS["fallback"] == before["fallback"]
    want = _loop(fun, args, in_axes)
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6, atol=1e-6)
    else:
        assert np.asarray(got).dtype == want.dtype
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


def _control_flow(x):
    return x * 2 if x.sum().item() > 0 else -x


def _noisy(x):
    return x + mx.random.normal(x.shape)


FALLBACK = {
    "mask_from_reduction": (lambda x: x * ((x > 0).sum() > 2), (X,)),
    # the sum's node is not on the output's graph, so the mask cannot be traced back to it
    "mask_from_unused_node": (lambda x: x * (x.sum() > 0), (X,)),
    "argmax_constant": (lambda x: x * (mx.argmax(x) == 1), (X,)),
    "python_control_flow": (_control_flow, (X,)),
    "sort": (lambda x: mx.sort(x) * 2, (X,)),
    "random": (_noisy, (X,)),
    "numpy_asarray": (lambda x: x * np.asarray(x).sum(), (X,)),
    "numpy_function": (lambda x: x * np.mean(x), (X,)),
    "numpy_method": (lambda x: x * float(x.numpy().max()), (X,)),
}


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_unsafe_functions_fall_back_to_the_loop(name):
    fun, args = FALLBACK[name]
    before = dict(batching.STATS)
    mx.random.seed(3)
    got = mx.vmap(fun)(*args)
    assert batching.STATS["fallback"] == before["fallback"] + 1
    assert batching.STATS["vectorised"] == before["vectorised"]
    assert batching.LAST["reason"]
    mx.random.seed(3)  # the trace must not have consumed random draws
    want = _loop(fun, args, (0,) * len(args))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


UNIT = mx.array(RNG.uniform(0.1, 0.9, (B, 4)).astype(np.float32))  # inside every domain

# The op table's primitives that have no batching rule: vmap runs one call per example.
NO_BATCH_RULE: dict[str, str] = {}

# A call that records each non-elementwise primitive: (fun, args, in_axes).
CASES = {
    "where": (lambda x, p: mx.where(x > 0.5, x, p), (UNIT, POS), (0, 0)),
    "astype": (lambda x: mx.astype(x, mx.float64) * 2, (UNIT,), (0,)),
    "broadcast_to": (lambda x: mx.broadcast_to(x, (3, 4)) * 2, (UNIT,), (0,)),
    "concatenate": (lambda x: mx.concatenate([x, V, x]), (UNIT,), (0,)),
    "contiguous": (lambda x: mx.contiguous(x) * 2, (UNIT,), (0,)),
    "cumsum": (lambda m: mx.cumsum(m, axis=-1, reverse=True), (M,), (0,)),
    "cumprod": (lambda m: mx.cumprod(m, axis=0, inclusive=False), (M,), (0,)),
    "getitem": (lambda m: m[1:, None, ::2], (M,), (0,)),
    "identity": (lambda x: mx.grad(lambda y: (y * y * y).sum())(x), (UNIT,), (0,)),
    "logsumexp": (lambda m: mx.logsumexp(m, axis=0), (M,), (0,)),
    "max": (lambda m: mx.max(m, axis=-1, keepdims=True), (M,), (0,)),
    "min": (lambda m: mx.min(m, axis=(0, 1)), (M,), (0,)),
    "prod": (lambda m: mx.prod(m, axis=1), (M,), (0,)),
    "sum": (lambda m: mx.sum(m, axis=-2), (M,), (0,)),
    "matmul": (lambda x: x @ W, (X,), (0,)),
    "addmm": (lambda m, c: mx.addmm(c, m, W, alpha=0.5, beta=2.0), (M, _arr(B, 6)), (0, 0)),
    "nan_to_num": (
        lambda x: mx.nan_to_num(mx.where(x > 0.5, x, mx.array(float("nan"))), nan=-1.0),
        (UNIT,),
        (0,),
    ),
    "reshape": (lambda m: m.reshape(4, 3), (M,), (0,)),
    "transpose": (lambda m: mx.transpose(m), (M,), (0,)),
    "rms_norm": (lambda m, x: mx.fast.rms_norm(m, x, 1e-5), (M, X), (0, 0)),
    "layer_norm": (lambda m, x: mx.fast.layer_norm(m, x, x * 2, 1e-5), (M, X), (0, 0)),
    "softmax": (lambda m: mx.softmax(m, axis=0) * mx.softmax(m), (M,), (0,)),
    "log_softmax": (lambda m: mx.log_softmax(m, axis=0) * mx.log_softmax(m), (M,), (0,)),
    "rope": (
        lambda m: mx.fast.rope(
            m.reshape(1, 2, 3, 2), 2, traditional=True, base=10.0, scale=1.0, offset=2
        ),
        (M,),
        (0,),
    ),
    "scatter_add": (lambda x: mx.zeros((3, 4)).at[mx.array([0, 2, 0])].add(x), (UNIT,), (0,)),
    "index_update": (lambda x: _set_rows(x), (UNIT,), (0,)),
    "pad": (lambda m: mx.pad(m, ((1, 0), (2, 1)), constant_values=2.0), (M,), (0,)),
    "masked_scatter": (lambda m, x: _masked_set(m, x), (M, X), (0, 0)),
    "einsum": (lambda m, x: mx.einsum("ij,j,kj->ik", m, x, W.T[:3]), (M, X), (0, 0)),
    "logcumsumexp": (lambda m: mx.logcumsumexp(m, axis=0, reverse=True), (M,), (0,)),
    "as_strided": (lambda m: mx.as_strided(m, (4, 3), (2, 1), 1), (M,), (0,)),
    "hadamard_transform": (lambda m: mx.hadamard_transform(m, scale=0.5), (M,), (0,)),
    "fft": (lambda m: mx.fft.rfftn(m, axes=(0, -1)), (M,), (0,)),
    "linalg_inv": (lambda m: mx.linalg.inv(m[:, :3] + 3 * mx.eye(3)), (M,), (0,)),
    "linalg_solve": (
        lambda m, x: mx.linalg.solve(m[:, :3] + 3 * mx.eye(3), x[:3]),
        (M, X),
        (0, 0),
    ),
    "linalg_cholesky": (lambda m: mx.linalg.cholesky(m @ m.T + mx.eye(3)), (M,), (0,)),
    "linalg_eigvalsh": (lambda m: mx.linalg.eigvalsh(m[:, :3]), (M,), (0,)),
    "linalg_eigh": (lambda m: mx.linalg.eigh(m @ m.T)[1] ** 2, (M,), (0,)),
    "linalg_det": (lambda m: mx.linalg.det(m[:, :3]), (M,), (0,)),
    "linalg_logabsdet": (lambda m: mx.linalg.slogdet(m[:, 1:])[1], (M,), (0,)),
}


def _windows(x):
    from chainrule.core.extend import sliding_windows

    return sliding_windows(x, (2, 2), (1, 2))


def _conv_weight(x, g):
    from chainrule.core.conv import conv_weight_prim

    return conv_weight_prim(x, g, (3,), (2,), (0,), (0,), (1,), (1,), 2, False)


def _conv_input(g, w):
    from chainrule.core.conv import conv_input_prim

    return conv_input_prim(g, w, (7,), (2,), (1,), (0,), (1,), (1,), 2, False)


def _pool_max(x):
    from chainrule.core.pooling import pool_max

    return pool_max(x, (2, 2), (1, 2), (1, 1), True)


def _pool_sum(x):
    from chainrule.core.pooling import pool_sum

    return pool_sum(x, (3, 2), (2, 1), (1, 1))


def _window_sum(x):
    from chainrule.core.pooling import window_sum_prim

    return window_sum_prim(x, (4, 5), (2, 2), (1, 2), (1, 1))


CASES.update(
    {
        # a batched weight becomes groups, a batched input joins the batch axis
        "conv": (
            lambda x, w: mx.conv2d(x, w, stride=2, padding=1, groups=2),
            (_arr(B, 2, 5, 5, 4), _arr(B, 6, 3, 3, 2)),
            (0, 0),
        ),
        "conv_weight": (_conv_weight, (_arr(B, 2, 7, 4), _arr(B, 2, 3, 4)), (0, 0)),
        "conv_input": (_conv_input, (_arr(B, 2, 3, 4), _arr(B, 4, 3, 1)), (0, 0)),
        "pool_max": (_pool_max, (_arr(B, 2, 5, 4, 3),), (0,)),
        "pool_sum": (_pool_sum, (_arr(B, 2, 5, 4, 3),), (0,)),
        "sliding_windows": (_windows, (_arr(B, 2, 4, 5, 3),), (0,)),
        "window_sum": (_window_sum, (_arr(B, 2, 3, 2, 4, 3),), (0,)),
    }
)


def _batch_norm(x, w, b):
    from chainrule.core.ops.normalization import batch_norm_train

    return batch_norm_train(x, w, b, 1e-5)[0]


# each example keeps its own statistics (the batch joins the channels); the weight unmapped
CASES["batch_norm_train"] = (_batch_norm, (_arr(B, 3, 2, 4), _arr(4), _arr(B, 4)), (0, None, 0))


def _bias_add(y, b):
    from chainrule.core.ops.normalization import bias_add

    return bias_add(y, b) * bias_add(y, mx.ones(4))


# both batched (tests/core/test_bias_add.py: the other combinations)
CASES["bias_add"] = (_bias_add, (_arr(B, 3, 2, 4), _arr(B, 4)), (0, 0))


def _elementwise_case(name):
    op = getattr(mx, name)
    if len(ops.PRIMITIVES[name].vjps) == 1:
        shift = 1.5 if name == "arccosh" else 0.0
        return (lambda x: op(x + shift)), (UNIT,), (0,)
    other = mx.array(RNG.uniform(0.5, 1.5, (3, 4)).astype(np.float32))
    return (lambda x, p: op(x, other) + op(p, x)), (UNIT, POS), (0, 0)


@pytest.mark.parametrize("name", sorted(ops.PRIMITIVES))
def test_every_primitive_of_the_table_batches_or_is_listed(name):
    """Looping over the op table: a primitive without a rule must be listed, with why."""
    prim = ops.PRIMITIVES[name]
    if name in NO_BATCH_RULE:
        assert prim.batch is None, f"{name} has a batching rule now: remove it from the list"
        return
    assert prim.batch is not None, (
        f"{name} has no batching rule: give its defprim a batch= rule or add it to "
        "NO_BATCH_RULE with the reason"
    )
    if getattr(prim.batch, "elementwise", False) and name not in CASES:
        fun, args, in_axes = _elementwise_case(name)
    else:
        assert name in CASES, f"add a vmap case for {name} to CASES"
        fun, args, in_axes = CASES[name]
    before = batching.STATS["vectorised"]
    got = mx.vmap(fun, in_axes=in_axes)(*args)
    assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
    np.testing.assert_allclose(np.asarray(got), _loop(fun, args, in_axes), rtol=1e-6, atol=1e-6)


# For each primitive of NO_BATCH_RULE, a call that records it (it must take the loop).
LISTED_CASES: dict = {}


def _masked_set(m, x):
    y = m * 1.0
    y[m > 0] = mx.concatenate([x, x, x])  # as many rows as MLX needs, used in order
    return y


def _set_rows(x):
    y = x * 2.0
    y[mx.array([1, 3])] = 0.5
    return y


@pytest.mark.parametrize("name", sorted(NO_BATCH_RULE))
def test_listed_primitives_fall_back_and_agree_with_the_loop(name):
    fun = LISTED_CASES[name]
    before = dict(batching.STATS)
    got = mx.vmap(fun)(UNIT)
    assert batching.STATS["vectorised"] == before["vectorised"]
    np.testing.assert_allclose(np.asarray(got), _loop(fun, (UNIT,), (0,)), rtol=1e-6)


def test_grad_of_vectorised_vmap():
    w = _arr(4, 3)
    x = _arr(B, 4)

    def loss(w):
        return mx.vmap(lambda a: mx.tanh(a @ w).sum())(x).sum()

    before = batching.STATS["vectorised"]
    g = mx.grad(loss)(w)
    assert batching.STATS["vectorised"] == before + 1
    want = mx.grad(lambda w: mx.tanh(x @ w).sum())(w)
    np.testing.assert_allclose(np.asarray(g), np.asarray(want), rtol=1e-5, atol=1e-6)
    mx.check_grads(loss, [w], order=2, modes=("rev",))


def test_backward_through_vectorised_vmap_reaches_leaves():
    w = mx.array(RNG.standard_normal((4, 3)), requires_grad=True)
    x = mx.array(RNG.standard_normal((B, 4)), requires_grad=True)
    mx.vmap(lambda a: mx.sigmoid(a @ w))(x).sum().backward()
    w2 = mx.array(np.asarray(w), requires_grad=True)
    x2 = mx.array(np.asarray(x), requires_grad=True)
    mx.sigmoid(x2 @ w2).sum().backward()
    np.testing.assert_allclose(np.asarray(w.grad), np.asarray(w2.grad), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(x.grad), np.asarray(x2.grad), rtol=1e-5)


def test_per_example_gradients():
    w = _arr(4)
    x = _arr(B, 4)
    per = mx.vmap(mx.grad(lambda w, a: mx.sin(a @ w)), in_axes=(None, 0))(w, x)
    want = np.cos(np.asarray(x) @ np.asarray(w))[:, None] * np.asarray(x)
    np.testing.assert_allclose(np.asarray(per), want, rtol=1e-5, atol=1e-6)


def test_out_axes_and_trees():
    d = {"a": _arr(3, B), "b": _arr(4)}
    before = batching.STATS["vectorised"]
    s, (p, q) = mx.vmap(
        lambda t: (t["a"].sum(), (t["a"] * 2, t["a"][:, None] * t["b"])),
        in_axes=({"a": 1, "b": None},),
        out_axes=(0, (1, -1)),
    )(d)
    assert batching.STATS["vectorised"] == before + 1
    a = np.asarray(d["a"])
    np.testing.assert_allclose(np.asarray(s), a.sum(0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p), a * 2, rtol=1e-6)
    want_q = np.moveaxis(a.T[:, :, None] * np.asarray(d["b"]), 0, -1)
    np.testing.assert_allclose(np.asarray(q), want_q, rtol=1e-6)


def test_no_grad_records_nothing():
    x = mx.array(RNG.standard_normal((B, 4)), requires_grad=True)
    with mx.no_grad():
        out = mx.vmap(lambda a: mx.exp(a) * 2)(x)
    assert out._node is None
    np.testing.assert_allclose(np.asarray(out), np.exp(np.asarray(x)) * 2, rtol=1e-12)


def test_errors_from_the_function_surface_from_the_loop():
    with pytest.raises(ValueError, match="matmul"):
        mx.vmap(lambda a: a @ mx.ones((3, 2)))(X)


def test_nested_vmap():
    m = _arr(3, B, 4)
    inner = mx.vmap(lambda r: mx.tanh(r @ W).sum(-1) * r.sum())
    before = batching.STATS["vectorised"]
    got = mx.vmap(inner, in_axes=1)(m)  # (B, 3)
    assert batching.STATS["vectorised"] >= before + 2
    want = np.stack([np.asarray(inner(m[:, i])) for i in range(B)])
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


def test_escape_before_a_nested_vmap_still_falls_back():
    def outer(x):
        scale = 2.0 if x.sum().item() > 0 else -1.0
        return mx.vmap(lambda v: v * 3)(x[None])[0] * scale

    before = batching.STATS["fallback"]
    got = mx.vmap(outer)(X)
    assert batching.STATS["fallback"] > before
    np.testing.assert_allclose(np.asarray(got), _loop(outer, (X,), (0,)), rtol=1e-6)


def test_nn_layers_vectorise():
    from chainrule import nn

    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = batching.STATS["vectorised"]
    got = mx.vmap(model)(X)
    assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(model(X)), rtol=1e-6, atol=1e-6)


def test_named_numpy_results_are_never_taken_for_constants():
    # NumPy's svd returns a named tuple; its parts come from the example and must not be
    # broadcast from the first example (they once were, silently)
    a = mx.array(RNG.uniform(size=(3, 4, 2)).astype(np.float32))
    us, ss, vts = mx.vmap(lambda x: mx.linalg.svd(x))(a)
    for i in range(3):
        u, s, vt = mx.linalg.svd(a[i])
        np.testing.assert_array_equal(np.asarray(us[i]), np.asarray(u))
        np.testing.assert_array_equal(np.asarray(ss[i]), np.asarray(s))
        np.testing.assert_array_equal(np.asarray(vts[i]), np.asarray(vt))


def test_out_axes_out_of_range_is_an_error_on_both_paths():
    with pytest.raises(ValueError, match="out_axes"):
        mx.vmap(mx.exp, out_axes=2)(mx.array([0.0, 1.0]))  # batched path
    with pytest.raises(ValueError):
        mx.vmap(lambda x: x.sum() if x.item() > 0 else x, out_axes=2)(mx.array([0.0, 1.0]))
