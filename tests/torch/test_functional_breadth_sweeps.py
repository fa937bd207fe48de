"""Sweeps of ``chainrule.torch.nn.functional`` against real PyTorch (issue 15).

Where ``test_functional_breadth.py`` runs one call per function, these walk whole grids of
arguments (sizes and scales of ``interpolate``, pooling windows, paddings, convolution
arguments, loss reductions, ragged CTC batches) and double backward, comparing values, shapes,
gradients and the kinds of the errors with PyTorch's.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import chainrule.torch as ct
import chainrule.torch.nn.functional as F

torch_ref = pytest.importorskip("torch")
TF = torch_ref.nn.functional

IDX5 = np.array([3, 0, 4, 1])
PM1 = np.array([1.0, -1.0, -1.0, 1.0])
ML_TARGET = np.array([[3, 0, -1, 1, 2], [1, 4, 2, -1, 0], [0, -1, 0, 0, 0], [4, 3, 2, 1, 0]])


def _outputs(y):
    return list(y) if isinstance(y, tuple) else [y]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "mode", ["nearest", "nearest-exact", "bilinear", "bicubic", "area", "bilinear-ac"]
)
def test_interpolate_sweep_of_sizes_and_scales(mode, dtype):
    rng = np.random.default_rng(5)
    kw = {"align_corners": True} if mode.endswith("-ac") else {}
    mode = mode.removesuffix("-ac")
    tol = 2e-5 if dtype == np.float32 else 1e-9
    for h in (3, 7, 13, 31):
        for sf in (0.3, 0.77, 1.0, 1.3, 2.0, 2.7, 1 / 3):
            for recompute in (None, True):
                x = rng.standard_normal((1, 2, h, h + 2)).astype(dtype)
                args = dict(scale_factor=sf, mode=mode, recompute_scale_factor=recompute, **kw)
                try:
                    ref = TF.interpolate(torch_ref.tensor(x), **args).numpy()
                except RuntimeError:
                    with pytest.raises(RuntimeError, match="greater than 0"):
                        F.interpolate(ct.tensor(x), **args)
                    continue
                got = np.asarray(F.interpolate(ct.tensor(x), **args))
                assert got.shape == ref.shape, (h, sf, recompute)
                np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, err_msg=f"{h} {sf}")


@pytest.mark.parametrize("name", ["max_pool1d", "avg_pool1d", "lp_pool1d"])
def test_pooling_sweep_of_windows(name):
    """Every kernel / stride / padding / ceil_mode / dilation combination on short signals:
    the same output sizes, values and indices as PyTorch, and the same refusals."""
    rng = np.random.default_rng(3)
    for length, k, s, ceil, d in itertools.product(
        (4, 5, 7, 10), (1, 2, 3, 4), (1, 2, 3), (False, True), (1, 2)
    ):
        for p in range(k // 2 + 1):
            x = rng.standard_normal((2, 3, length))
            if name == "lp_pool1d":
                if p or d > 1:
                    continue
                args, kw = (2.0, k, s, ceil), {}
            elif name == "max_pool1d":
                args, kw = (k, s, p), {"dilation": d, "ceil_mode": ceil, "return_indices": True}
            else:
                args, kw = (k, s, p), {"ceil_mode": ceil, "count_include_pad": d == 1}
            try:
                ref = getattr(TF, name)(torch_ref.tensor(x), *args, **kw)
            except RuntimeError:
                with pytest.raises(RuntimeError):
                    getattr(F, name)(ct.tensor(x), *args, **kw)
                continue
            got = getattr(F, name)(ct.tensor(x), *args, **kw)
            for r, g in zip(_outputs(ref), _outputs(got)):
                assert tuple(r.shape) == tuple(g.shape), (length, k, s, p, ceil, d)
                np.testing.assert_allclose(np.asarray(g), r.numpy(), rtol=1e-9, atol=1e-9)


def test_ctc_loss_random_batches_match_pytorch():
    """Ragged input and target lengths (empty targets and impossible alignments included)."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        n, steps, classes = rng.integers(1, 5), rng.integers(1, 10), rng.integers(2, 6)
        target_len = rng.integers(0, max(1, steps // 2) + 2, n)
        input_len = rng.integers(max(1, steps // 2), steps + 1, n)
        input_len[0] = steps
        targets = rng.integers(1, classes, (n, max(1, target_len.max())))
        x = rng.standard_normal((steps, n, classes))
        args = (targets, input_len, target_len)
        tx = torch_ref.tensor(x, requires_grad=True)
        ref = TF.ctc_loss(tx.log_softmax(2), *map(torch_ref.tensor, args), zero_infinity=True)
        ref.backward()
        cx = ct.tensor(x, requires_grad=True)
        got = F.ctc_loss(cx.log_softmax(2), *map(ct.tensor, args), zero_infinity=True)
        got.backward()
        np.testing.assert_allclose(float(got.item()), ref.item(), rtol=1e-9)
        np.testing.assert_allclose(np.asarray(cx.grad), tx.grad.numpy(), atol=1e-9)


DOUBLE_BACKWARD = {
    "conv2d": (lambda F, x, w: F.conv2d(x, w, padding=1), [(2, 3, 5, 5), (4, 3, 3, 3)]),
    "max_pool2d": (lambda F, x, w: F.max_pool2d(x * w.sum(), 2), [(2, 3, 6, 6), (1,)]),
    "avg_pool2d": (lambda F, x, w: F.avg_pool2d(x, 3, 2, 1) * w.sum(), [(2, 3, 6, 6), (1,)]),
    "interpolate": (
        lambda F, x, w: F.interpolate(x * w.sum(), scale_factor=1.5, mode="bicubic"),
        [(2, 3, 4, 4), (1,)],
    ),
    "grid_sample": (
        lambda F, x, w: F.grid_sample(x, w * 0.5, align_corners=False),
        [(1, 2, 4, 5), (1, 3, 3, 2)],
    ),
    "layer_norm": (lambda F, x, w: F.layer_norm(x, (5,), w), [(3, 5), (5,)]),
    "gelu": (lambda F, x, w: F.gelu(x) * w.sum(), [(3, 5), (1,)]),
    "softplus": (lambda F, x, w: F.softplus(x * w.sum(), 2.0, 3.0), [(3, 5), (1,)]),
    "sdpa": (lambda F, x, w: F.scaled_dot_product_attention(x, x, w), [(2, 3, 4), (2, 3, 4)]),
}


@pytest.mark.parametrize("name", sorted(DOUBLE_BACKWARD))
def test_double_backward_matches_pytorch(name):
    """A gradient penalty: differentiate the norm of an input gradient (create_graph=True)."""
    f, shapes = DOUBLE_BACKWARD[name]
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in shapes]
    tx = [torch_ref.tensor(a, requires_grad=True) for a in arrays]
    (g_ref,) = torch_ref.autograd.grad(f(TF, *tx).sum(), tx[0], create_graph=True)
    (g_ref**2).sum().backward()
    cx = [ct.tensor(a, requires_grad=True) for a in arrays]
    (g,) = ct.autograd.grad(f(F, *cx).sum(), cx[0], create_graph=True)
    (g**2).sum().backward()
    np.testing.assert_allclose(np.asarray(g), g_ref.detach().numpy(), atol=1e-9)
    np.testing.assert_allclose(np.asarray(cx[1].grad), tx[1].grad.numpy(), atol=1e-8)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_sweep_with_negative_and_too_large_amounts(mode):
    """Values and refusals as PyTorch's, cropping included (negative amounts)."""
    rng = np.random.default_rng(8)
    pads = [(1, 1), (0, 2), (-1, 2), (2, -1), (3, 3), (4, 0), (1, 2, 1, 0), (-1, 0, 1, 1)]
    pads += [(1, 1, 1, 1, 1, 1), (-2, 1), (0, -4), (-3, 0)]
    for shape in [(2, 3, 4), (2, 3, 4, 5), (3, 4)]:
        for pad in pads:
            x = rng.standard_normal(shape)
            try:
                ref = TF.pad(torch_ref.tensor(x), pad, mode=mode).numpy()
            except Exception as err:  # noqa: BLE001 - the kind is compared below
                with pytest.raises(type(err)):
                    F.pad(ct.tensor(x), pad, mode=mode)
                continue
            got = np.asarray(F.pad(ct.tensor(x), pad, mode=mode))
            assert got.shape == ref.shape, (shape, pad)
            np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("transposed", [False, True])
def test_conv1d_sweep_of_arguments(transposed):
    """Stride, padding (numbers, 'same', 'valid'), dilation, groups and output_padding: values
    and refusals (their kinds too) as PyTorch's."""
    rng = np.random.default_rng(4)
    paddings = [0, 1, 2] if transposed else [0, 1, 2, "same", "valid"]
    extra = [0, 1, 2] if transposed else [None]
    for length, k, s, p, d, g, op in itertools.product(
        (5, 8), (1, 2, 3, 4), (1, 2, 3), paddings, (1, 2), (1, 2), extra
    ):
        x = rng.standard_normal((2, 4, length))
        if transposed:
            w = rng.standard_normal((4, 6 // g, k))
            args = (None, s, p, op, g, d)
            name = "conv_transpose1d"
        else:
            w = rng.standard_normal((6, 4 // g, k))
            args = (None, s, p, d, g)
            name = "conv1d"
        try:
            ref = getattr(TF, name)(torch_ref.tensor(x), torch_ref.tensor(w), *args).numpy()
        except Exception as err:  # noqa: BLE001 - the kind is compared below
            with pytest.raises(type(err)):
                getattr(F, name)(ct.tensor(x), ct.tensor(w), *args)
            continue
        got = np.asarray(getattr(F, name)(ct.tensor(x), ct.tensor(w), *args))
        assert got.shape == ref.shape, (length, k, s, p, d, g, op)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


_LOSS_X = np.random.default_rng(21).standard_normal((4, 5))
_LOSS_Y = np.random.default_rng(22).standard_normal((4, 5))
_LOSS_P = np.random.default_rng(23).random((4, 5)) * 0.9 + 0.05
_LOSS_PM = np.where(np.random.default_rng(24).random((4, 5)) > 0.5, 1.0, -1.0)
_LOSSES = {
    "l1_loss": lambda F, t, kw: F.l1_loss(t(_LOSS_X), t(_LOSS_Y), **kw),
    "mse_loss": lambda F, t, kw: F.mse_loss(t(_LOSS_X), t(_LOSS_Y), **kw),
    "cross_entropy": lambda F, t, kw: F.cross_entropy(t(_LOSS_X), t(IDX5), **kw),
    "nll_loss": lambda F, t, kw: F.nll_loss(t(_LOSS_X), t(IDX5), **kw),
    "binary_cross_entropy": lambda F, t, kw: F.binary_cross_entropy(
        t(_LOSS_P), t(_LOSS_P.T.copy().reshape(4, 5)), **kw
    ),
    "bce_with_logits": lambda F, t, kw: F.binary_cross_entropy_with_logits(
        t(_LOSS_X), t(_LOSS_P), **kw
    ),
    "kl_div": lambda F, t, kw: F.kl_div(t(_LOSS_X), t(_LOSS_P), **kw),
    "smooth_l1_loss": lambda F, t, kw: F.smooth_l1_loss(t(_LOSS_X), t(_LOSS_Y), **kw),
    "soft_margin_loss": lambda F, t, kw: F.soft_margin_loss(t(_LOSS_X), t(_LOSS_PM), **kw),
    "multilabel_soft_margin_loss": lambda F, t, kw: F.multilabel_soft_margin_loss(
        t(_LOSS_X), t((_LOSS_P > 0.5) * 1.0), **kw
    ),
    "multi_margin_loss": lambda F, t, kw: F.multi_margin_loss(t(_LOSS_X), t(IDX5), **kw),
    "multilabel_margin_loss": lambda F, t, kw: F.multilabel_margin_loss(
        t(_LOSS_X), t(ML_TARGET), **kw
    ),
    "cosine_embedding_loss": lambda F, t, kw: F.cosine_embedding_loss(
        t(_LOSS_X), t(_LOSS_Y), t(PM1), **kw
    ),
    "hinge_embedding_loss": lambda F, t, kw: F.hinge_embedding_loss(t(_LOSS_X), t(_LOSS_PM), **kw),
    "triplet_margin_loss": lambda F, t, kw: F.triplet_margin_loss(
        t(_LOSS_X), t(_LOSS_Y), t(_LOSS_P), **kw
    ),
    "poisson_nll_loss": lambda F, t, kw: F.poisson_nll_loss(t(_LOSS_X), t(_LOSS_P), **kw),
}


@pytest.mark.parametrize(
    "flags",
    [
        {"reduction": "none"},
        {"reduction": "mean"},
        {"reduction": "sum"},
        {"size_average": False},
        {"reduce": False},
        {"size_average": True, "reduce": True},
    ],
    ids=["none", "mean", "sum", "size_average=False", "reduce=False", "legacy-mean"],
)
@pytest.mark.parametrize("name", sorted(_LOSSES))
def test_loss_reductions_and_legacy_flags(name, flags):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's deprecation notes for the legacy flags
        ref = _LOSSES[name](TF, torch_ref.tensor, dict(flags)).numpy()
        got = np.asarray(_LOSSES[name](F, ct.tensor, dict(flags)))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
