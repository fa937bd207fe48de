"""The convolution and pooling kernels (issue 20): the two forms of the input gradient agree,
the phased transposed convolution matches the zero-inserting one, and pooling keeps each front
door's tie rule (PyTorch: the first maximum; MLX: ties share) and PyTorch's values.

These are the NumPy kernels: oneDNN's (test_onednn.py) are switched off here."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.core.conv as C
import chainrule.core.pooling as P
from chainrule.core import onednn


@pytest.fixture(autouse=True)
def _numpy_kernels():
    with onednn.disabled():
        yield


CASES = [
    ((2, 7, 6, 4), (6, 3, 3, 4), dict(stride=(2, 1), padding=([1, -1], [2, 0]), flip=True)),
    ((2, 7, 6, 4), (6, 3, 3, 4), dict(kernel_dilation=(1, 2), input_dilation=(2, 1))),
    ((2, 7, 6, 4), (6, 3, 3, 2), dict(stride=(2, 2), padding=1, groups=2)),
    ((2, 9, 8, 4), (6, 2, 2, 4), dict(stride=(2, 3))),
    ((2, 9, 4), (6, 3, 4), dict(stride=2, padding=([0], [-2]), kernel_dilation=2)),
    ((1, 5, 5, 5, 2), (4, 2, 3, 2, 1), dict(stride=(1, 2, 1), padding=1, groups=2)),
    (
        (1, 4, 4, 5, 2),
        (2, 2, 2, 2, 2),
        dict(input_dilation=(1, 3, 2), padding=([1, 0, 2], [0, 1, 1])),
    ),
]


# stride 1, one group, no dilation: col2im by flat offsets on the padded grid
SHIFTED = [
    ((2, 7, 6, 2), (6, 3, 2, 2), dict(padding=([1, -1], [2, 0]), flip=True)),
    ((2, 9, 3), (5, 4, 3), dict(padding=2)),
    ((1, 4, 5, 6, 2), (3, 2, 3, 2, 2), dict(padding=1)),
    ((2, 5, 5, 1), (4, 1, 1, 1), {}),
]


def _grads(f, x, w):
    first = mx.grad(f, argnums=(0, 1))(x, w)
    second = mx.grad(lambda x, w: (mx.grad(f, argnums=(0, 1))(x, w)[0] ** 2).sum(), argnums=(0, 1))
    return [*first, *second(x, w)]


@pytest.mark.parametrize("xs,ws,kw", CASES + SHIFTED)
def test_col2im_and_transposed_convolution_give_the_same_input_gradient(xs, ws, kw):
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal(xs), dtype=mx.float64)
    w = mx.array(rng.standard_normal(ws), dtype=mx.float64)

    def f(x, w):
        return (mx.conv_general(x, w, **kw) ** 2).sum()

    results = []
    try:
        for form in (True, False):
            C._COL2IM[0] = form
            results.append(_grads(f, x, w))
    finally:
        C._COL2IM[0] = None
    for a, b in zip(*results):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,ws,kw", CASES)
def test_phased_kernel_matches_the_zero_inserting_one(xs, ws, kw):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    nd = len(xs) - 2
    ones = (1,) * nd
    idil = C._tuple(kw.get("input_dilation", 1), nd, "input_dilation", "t", 1)
    lo, hi = C._padding(kw.get("padding", 0), nd, "t")
    groups = kw.get("groups", 1)
    direct = C._conv_direct(x, w, ones, lo, hi, ones, idil, groups)
    phased = C._conv_phased(x, w, lo, hi, idil, groups)
    np.testing.assert_allclose(phased, direct, rtol=1e-12, atol=1e-12)


def test_conv_transpose_matches_torch_with_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 4))
    w = rng.standard_normal((4, 3, 3, 3))  # torch: (C_in, C_out / groups, kH, kW)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1, output_padding=1)
    (ty**2).sum().backward()
    ours_w = mx.array(np.moveaxis(w, 0, -1), dtype=mx.float64)  # (C_out, kH, kW, C_in)

    def f(x, w):
        y = mx.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
        return (y**2).sum(), y

    (_, y), (gx, gw) = mx.value_and_grad(f, argnums=(0, 1))(
        mx.array(np.moveaxis(x, 1, -1), dtype=mx.float64), ours_w
    )
    np.testing.assert_allclose(np.moveaxis(np.asarray(y), -1, 1), ty.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.moveaxis(np.asarray(gx), -1, 1), tx.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.moveaxis(np.asarray(gw), -1, 0), tw.grad.numpy(), rtol=1e-10)


def _tied(shape):
    """Integers in a small range: windows hold tied maxima."""
    return np.random.default_rng(3).integers(0, 3, shape).astype(np.float64)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=1, dilation=2),
        dict(kernel_size=3, stride=2, ceil_mode=True),
    ],
)
@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_torch_max_pool_sends_the_gradient_to_the_first_maximum(kw):
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    x = _tied((2, 3, 7, 6))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, **kw)
    g = np.random.default_rng(4).standard_normal(ty.shape)
    ty.backward(torch.tensor(g))
    cx = ct.tensor(x, requires_grad=True)
    cy = ct.nn.functional.max_pool2d(cx, **kw)
    cy.backward(ct.tensor(g))
    np.testing.assert_array_equal(cy.detach().numpy(), ty.detach().numpy())
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    _, ci = ct.nn.functional.max_pool2d(ct.tensor(x), return_indices=True, **kw)
    _, ti = torch.nn.functional.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(ci.numpy(), ti.numpy())


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=1, divisor_override=5),
    ],
)
@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_torch_avg_pool_matches_torch(kw):
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, **kw)
    (ty**2).sum().backward()
    cx = ct.tensor(x, requires_grad=True)
    cy = ct.nn.functional.avg_pool2d(cx, **kw)
    (cy**2).sum().backward()
    np.testing.assert_allclose(cy.detach().numpy(), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_mlx_max_pool_shares_the_gradient_among_tied_maxima():
    import chainrule.nn as nn

    x = mx.array(_tied((2, 6, 7, 3)))
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    g = mx.grad(lambda x: (pool(x) * mx.arange(1, 1 + 2 * 3 * 4 * 3).reshape(2, 3, 4, 3)).sum())(x)
    # reference: MLX's rule, a max over each window's taps, ties sharing equally
    from chainrule.core.extend import sliding_windows

    def ref(x):
        padded = mx.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=-np.inf)
        win = sliding_windows(padded, (3, 3), (2, 2))
        return (mx.max(win, axis=-2) * mx.arange(1, 1 + 2 * 3 * 4 * 3).reshape(2, 3, 4, 3)).sum()

    np.testing.assert_allclose(np.asarray(g), np.asarray(mx.grad(ref)(x)), rtol=1e-6)
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    mpool = mnn.MaxPool2d(3, stride=2, padding=1)
    weights = mlx.arange(1, 1 + 2 * 3 * 4 * 3).reshape(2, 3, 4, 3).astype(mlx.float32)
    mg = mlx.grad(lambda v: (mpool(v) * weights).sum())(mlx.array(np.asarray(x)))
    np.testing.assert_allclose(np.asarray(g), np.array(mg), rtol=1e-6)


def test_mlx_avg_pool_matches_mlx():
    import chainrule.nn as nn

    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    x = np.random.default_rng(6).standard_normal((2, 7, 6, 3)).astype(np.float32)
    ours = mx.grad(lambda v: (nn.AvgPool2d((3, 2), stride=(2, 1), padding=1)(v) ** 2).sum())
    theirs = mlx.grad(lambda v: (mnn.AvgPool2d((3, 2), stride=(2, 1), padding=1)(v) ** 2).sum())
    np.testing.assert_allclose(
        np.asarray(ours(mx.array(x))), np.array(theirs(mlx.array(x))), rtol=1e-5, atol=1e-6
    )
    y = nn.AvgPool1d(2)(mx.array(np.arange(12, dtype=np.int32).reshape(1, 6, 2)))
    assert y.dtype == mx.float32


def test_pooling_backward_and_conv_weight_never_copy_per_tap_in_the_graph():
    # one node per pooling and per convolution: the graph holds no slicing per tap
    import chainrule.nn as nn

    x = mx.array(np.random.default_rng(7).standard_normal((2, 8, 8, 3)).astype(np.float32))
    conv, pool = nn.Conv2d(3, 4, 3), nn.MaxPool2d(2)
    seen = []

    def f(x):
        return pool(conv(x)).sum()

    y = f(mx.array(x, requires_grad=True))
    stack, names = [y._node], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.append(id(node))
        names.append(node.prim.name if node.prim is not None else None)
        stack.extend(a for a in node.args if hasattr(a, "prim"))
    assert names.count("conv") == 1 and names.count("pool_max") == 1
    assert "getitem" not in names and "concatenate" not in names


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_torch_max_pool_with_nan_and_padding_matches_torch():
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    x = np.random.default_rng(8).standard_normal((1, 2, 6, 5))
    x[0, 0, 1, 1] = x[0, 1, 4, 4] = np.nan
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, **kw)
    ty.backward(torch.ones_like(ty))
    cx = ct.tensor(x, requires_grad=True)
    cy = ct.nn.functional.max_pool2d(cx, **kw)
    cy.backward(ct.ones_like(cy))
    np.testing.assert_array_equal(cy.detach().numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(cx.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("dtype", [mx.float32, mx.float64])
def test_blocked_im2col_matches_one_block(monkeypatch, dtype):
    rng = np.random.default_rng(9)
    x = mx.array(rng.standard_normal((5, 6, 7, 8)), dtype=dtype)  # (8 x 2: not few channels)
    w = mx.array(rng.standard_normal((4, 3, 2, 8)), dtype=dtype)

    def f(x, w):
        y = mx.conv2d(x, w, stride=(1, 2), padding=1)
        return (y**2).sum(), y

    (_, y1), g1 = mx.value_and_grad(f, argnums=(0, 1))(x, w)
    monkeypatch.setattr(C, "_BLOCK_BYTES", 64)  # one example a block
    (_, y2), g2 = mx.value_and_grad(f, argnums=(0, 1))(x, w)
    tol = 1e-5 if dtype == mx.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(y2), np.asarray(y1), rtol=tol, atol=tol)
    for a, b in zip(g2, g1):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


FEW = [
    ((3, 9, 8, 1), (6, 5, 5, 1), dict(padding=2)),
    ((3, 10, 11, 3), (4, 3, 3, 3), dict(stride=(2, 1), padding=([1, 2], [0, 1]), kdil=(1, 2))),
    ((2, 7, 7, 2), (3, 3, 2, 2), dict(padding=([-1, 0], [0, -1]))),
    ((2, 9, 3), (5, 4, 3), dict(padding=1)),
    ((1, 4, 5, 6, 1), (2, 2, 3, 2, 1), dict(padding=1, flip=True)),
]


@pytest.mark.parametrize("channels_first", [False, True])
@pytest.mark.parametrize("xs,ws,kw", FEW)
def test_few_channel_columns_match_the_window_copy(monkeypatch, xs, ws, kw, channels_first):
    # the tap-major im2col for few input channels against the window view's copy, forward,
    # weight gradient and second order, from channels-last memory and from PyTorch's layout
    rng = np.random.default_rng(10)
    xd = rng.standard_normal(xs)
    if channels_first:
        xd = np.moveaxis(np.ascontiguousarray(np.moveaxis(xd, -1, 1)), 1, -1)
    x = mx.array(xd, dtype=mx.float64)
    w = mx.array(rng.standard_normal(ws), dtype=mx.float64)
    nd = len(xs) - 2
    stride = kw.get("stride", 1)
    lo, hi = C._padding(kw.get("padding", 0), nd, "t")
    kdil = kw.get("kdil", 1)
    assert C._few_channels(xd, ws[1:-1], C._tuple(stride, nd, "s", "t", 1), (1,) * nd, 1)

    def f(x, w):
        y = mx.conv_general(x, w, stride, (lo, hi), kdil, flip=kw.get("flip", False))
        return (y**2).sum(), y

    (_, y1), g1 = mx.value_and_grad(f, argnums=(0, 1))(x, w)
    assert not C._COLS  # the forward's columns went to the weight's gradient
    second1 = _grads(lambda x, w: f(x, w)[0], x, w)
    monkeypatch.setattr(C, "_FEW_CHANNELS", 0)
    (_, y2), g2 = mx.value_and_grad(f, argnums=(0, 1))(x, w)
    second2 = _grads(lambda x, w: f(x, w)[0], x, w)
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), rtol=1e-12, atol=1e-12)
    for a, b in zip([*g1, *second1], [*g2, *second2]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_few_channel_convolution_matches_torch():
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    w = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    outs = []
    for lib in (torch, ct):
        tx = lib.tensor(x, requires_grad=True)
        tw, tb = lib.tensor(w, requires_grad=True), lib.tensor(b, requires_grad=True)
        y = lib.nn.functional.conv2d(tx, tw, tb, padding=2)
        (y * y).sum().backward()
        outs.append([t.detach().numpy() for t in (y, tx.grad, tw.grad, tb.grad)])
    for a, b_ in zip(*outs):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize(
    "shape,kernel,stride,dilation",
    [
        ((2, 8, 8, 3), (2, 2), (2, 2), (1, 1)),
        ((2, 7, 6, 2), (3, 2), (2, 1), (1, 2)),
        ((2, 9, 3), (3,), (1,), (1,)),
    ],
)
def test_fused_max_pool_gradient_matches_the_mask_form(shape, kernel, stride, dilation, first):
    # the unrecorded backward's one kernel against the recorded form's mask, where and window
    # sum, with many ties and a NaN
    rng = np.random.default_rng(12)
    x = rng.integers(0, 3, shape).astype(np.float64)
    x[0, 1, 1] = np.nan
    ans = P._pool_kernel(x, kernel, stride, dilation, "max")
    g = rng.standard_normal(ans.shape)
    if first:  # a non-finite cotangent reaches only where it is sent
        g[1, 0, 0] = np.inf
    mask = P._max_mask(x, ans, kernel, stride, dilation, first)
    ge = g[..., None, :]
    if not first:
        ge = ge / mask.sum(axis=-2, keepdims=True)
    want = P._window_sum_kernel(np.where(mask, ge, 0.0), x.shape[1:-1], kernel, stride, dilation)
    got = P._pool_max_grad_kernel(x, ans, g, kernel, stride, dilation, first)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kept_columns_go_with_their_output():
    # a recorded few-channel forward keeps its columns for the weight's gradient; dropped
    # unused, they go with the output (no gradient taken, or only the input's)
    x = mx.array(np.ones((2, 6, 6, 1), np.float32))
    w = mx.array(np.ones((3, 3, 3, 1), np.float32))
    y = mx.grad(lambda x: mx.conv2d(x, w).sum())(x)  # the weight is a constant: nothing kept
    assert y.shape == x.shape and not C._COLS

    def f(w):
        out = mx.conv2d(x, w)
        assert len(C._COLS) == 1
        return out.sum()

    mx.grad(f)(w)
    assert not C._COLS
    mx.value_and_grad(lambda w: mx.conv2d(x, w).sum() * 0 + 1.0)(w)
    assert not C._COLS
