"""``chainrule.torch.nn.functional`` against real PyTorch, function by function (issue 15).

Each case is one call written once and run with both libraries (``call(F, xs, aux)``: ``F`` the
library's functional module, ``xs`` the differentiated float inputs, ``aux`` a converter for
targets, indices and other constants), on seeded random inputs in float32 and float64. The test
compares values, shapes and dtypes, then the gradients of every float input under a random
cotangent, as PyTorch's OpInfo tests do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.torch as ct
import chainrule.torch.nn.functional as F

torch_ref = pytest.importorskip("torch")
TF = torch_ref.nn.functional


def _n(*shape):
    return lambda r: r.standard_normal(shape)


def _pos(*shape):
    return lambda r: r.random(shape) + 0.1


def _prob(*shape):
    return lambda r: r.random(shape) * 0.9 + 0.05


def _unif(lo, hi, *shape):
    return lambda r: r.uniform(lo, hi, shape)


def _away(*shape):
    """Normal values kept away from the kinks at 0 and +-1 (and +-3, +-0.5)."""

    def make(r):
        x = r.standard_normal(shape) * 2
        for k in (0.0, 0.5, 1.0, 1.5, 3.0, 6.0):
            for s in (k, -k):
                x = np.where(np.abs(x - s) < 0.05, x + 0.1, x)
        return x

    return make


R = np.random.default_rng(1234)
IDX5 = R.integers(0, 5, (4,))
IDX5_3 = R.integers(0, 5, (4, 3))
PM1 = np.where(R.random(4) > 0.5, 1.0, -1.0)
SAMPLES2 = R.random((2, 3, 2))
SAMPLES3 = R.random((2, 2, 3))
ML_TARGET = np.array([[3, 0, -1, 1, 2], [1, 4, 2, -1, 0], [0, -1, 0, 0, 0], [4, 3, 2, 1, 0]])
BAG_IDX = R.integers(0, 10, (9,))
BAG_OFF = np.array([0, 2, 2, 6])
MASK = R.random((4, 5)) > 0.3
MASK[:, 0] = True
WEIGHT5 = R.random(5) + 0.5
KPM = R.random((3, 5)) > 0.7
KPM[:, 0] = False
FLOAT_MASK = R.standard_normal((4, 5))
R1D = R.standard_normal((2, 3, 9))
R3D = R.standard_normal((1, 2, 4, 6, 5))
SIGN43 = np.sign(R.standard_normal((4, 3)))

# id: (inputs, call)
CASES = {
    # activations
    "relu": ([_away(3, 4)], lambda F, x, a: F.relu(x[0])),
    "relu6": ([_away(3, 4)], lambda F, x, a: F.relu6(x[0] * 4)),
    "threshold": ([_away(3, 4)], lambda F, x, a: F.threshold(x[0], 0.5, -2.0)),
    "hardtanh": ([_away(3, 4)], lambda F, x, a: F.hardtanh(x[0], -0.5, 1.0)),
    "hardswish": ([_away(3, 4)], lambda F, x, a: F.hardswish(x[0] * 2)),
    "hardsigmoid": ([_away(3, 4)], lambda F, x, a: F.hardsigmoid(x[0] * 2)),
    "elu": ([_away(3, 4)], lambda F, x, a: F.elu(x[0], 0.7)),
    "selu": ([_away(3, 4)], lambda F, x, a: F.selu(x[0])),
    "celu": ([_away(3, 4)], lambda F, x, a: F.celu(x[0], 1.5)),
    "leaky_relu": ([_away(3, 4)], lambda F, x, a: F.leaky_relu(x[0], 0.2)),
    "prelu": ([_away(2, 3, 4), _pos(3)], lambda F, x, a: F.prelu(x[0], x[1])),
    "rrelu_eval": ([_away(3, 4)], lambda F, x, a: F.rrelu(x[0], 0.1, 0.3, training=False)),
    "glu": ([_n(3, 6)], lambda F, x, a: F.glu(x[0], -1)),
    "gelu": ([_n(3, 4)], lambda F, x, a: F.gelu(x[0])),
    "gelu_tanh": ([_n(3, 4)], lambda F, x, a: F.gelu(x[0], approximate="tanh")),
    "logsigmoid": ([_n(3, 4)], lambda F, x, a: F.logsigmoid(x[0] * 5)),
    "hardshrink": ([_away(3, 4)], lambda F, x, a: F.hardshrink(x[0], 0.5)),
    "softshrink": ([_away(3, 4)], lambda F, x, a: F.softshrink(x[0], 0.5)),
    "tanhshrink": ([_n(3, 4)], lambda F, x, a: F.tanhshrink(x[0])),
    "softsign": ([_n(3, 4)], lambda F, x, a: F.softsign(x[0])),
    "softplus": ([_n(3, 4)], lambda F, x, a: F.softplus(x[0] * 10, beta=2.0, threshold=5.0)),
    "softmin": ([_n(3, 4)], lambda F, x, a: F.softmin(x[0], dim=1)),
    "softmax": ([_n(3, 4, 2)], lambda F, x, a: F.softmax(x[0], dim=1)),
    "log_softmax": ([_n(3, 4)], lambda F, x, a: F.log_softmax(x[0], dim=0)),
    "silu": ([_n(3, 4)], lambda F, x, a: F.silu(x[0])),
    "mish": ([_n(3, 4)], lambda F, x, a: F.mish(x[0])),
    "sigmoid": ([_n(3, 4)], lambda F, x, a: F.sigmoid(x[0])),
    "tanh": ([_n(3, 4)], lambda F, x, a: F.tanh(x[0])),
    "relu_": ([_away(3, 4)], lambda F, x, a: F.relu_(x[0] * 1)),
    "elu_": ([_away(3, 4)], lambda F, x, a: F.elu_(x[0] * 1, 0.5)),
    "celu_": ([_away(3, 4)], lambda F, x, a: F.celu_(x[0] * 1, 2.0)),
    "selu_": ([_away(3, 4)], lambda F, x, a: F.selu_(x[0] * 1)),
    "leaky_relu_": ([_away(3, 4)], lambda F, x, a: F.leaky_relu_(x[0] * 1, 0.3)),
    "threshold_": ([_away(3, 4)], lambda F, x, a: F.threshold_(x[0] * 1, 0.5, -1.0)),
    "rrelu_": ([_away(3, 4)], lambda F, x, a: F.rrelu_(x[0] * 1, 0.1, 0.2)),
    "hardtanh_": ([_away(3, 4)], lambda F, x, a: F.hardtanh_(x[0] * 1)),
    "feature_alpha_dropout_eval": (
        [_n(2, 3, 4)],
        lambda F, x, a: F.feature_alpha_dropout(x[0], 0.3),
    ),
    "alpha_dropout_eval": ([_n(2, 3, 4)], lambda F, x, a: F.alpha_dropout(x[0], 0.3)),
    "dropout_eval": ([_n(2, 3, 4)], lambda F, x, a: F.dropout(x[0], 0.3, training=False)),
    # losses
    "l1_loss": ([_n(4, 3), _n(4, 3)], lambda F, x, a: F.l1_loss(x[0], x[1])),
    "mse_loss": ([_n(4, 3), _n(4, 3)], lambda F, x, a: F.mse_loss(x[0], x[1], reduction="sum")),
    "cross_entropy": (
        [_n(4, 5)],
        lambda F, x, a: F.cross_entropy(
            x[0], a(IDX5), weight=a(WEIGHT5), ignore_index=2, label_smoothing=0.1
        ),
    ),
    "cross_entropy_probs": (
        [_n(4, 5), _prob(4, 5)],
        lambda F, x, a: F.cross_entropy(x[0], x[1], label_smoothing=0.2),
    ),
    "cross_entropy_2d": (
        [_n(4, 5, 3)],
        lambda F, x, a: F.cross_entropy(x[0], a(IDX5_3), reduction="none"),
    ),
    "nll_loss": ([_n(4, 5)], lambda F, x, a: F.nll_loss(x[0], a(IDX5))),
    "binary_cross_entropy": (
        [_prob(4, 3), _prob(4, 3)],
        lambda F, x, a: F.binary_cross_entropy(x[0], x[1]),
    ),
    "bce_with_logits": (
        [_n(4, 3), _prob(4, 3)],
        lambda F, x, a: F.binary_cross_entropy_with_logits(x[0], x[1], pos_weight=a(WEIGHT5[:3])),
    ),
    "kl_div": ([_n(4, 3), _n(4, 3)], lambda F, x, a: F.kl_div(x[0], x[1], log_target=True)),
    "huber_loss": ([_n(4, 3), _n(4, 3)], lambda F, x, a: F.huber_loss(x[0], x[1], delta=0.5)),
    "smooth_l1_loss": (
        [_n(4, 3), _n(4, 3)],
        lambda F, x, a: F.smooth_l1_loss(x[0], x[1], beta=0.5),
    ),
    "soft_margin_loss": (
        [_n(4, 3)],
        lambda F, x, a: F.soft_margin_loss(x[0], a(SIGN43)),
    ),
    "multilabel_soft_margin": (
        [_n(4, 5), _pos(5)],
        lambda F, x, a: F.multilabel_soft_margin_loss(x[0], a((ML_TARGET > 1) * 1.0), weight=x[1]),
    ),
    "multilabel_margin": (
        [_n(4, 5)],
        lambda F, x, a: F.multilabel_margin_loss(x[0], a(ML_TARGET)),
    ),
    "multi_margin": (
        [_n(4, 5), _pos(5)],
        lambda F, x, a: F.multi_margin_loss(x[0], a(IDX5), p=2, margin=0.7, weight=a(WEIGHT5)),
    ),
    "cosine_embedding": (
        [_n(4, 6), _n(4, 6)],
        lambda F, x, a: F.cosine_embedding_loss(x[0], x[1], a(PM1), margin=0.1),
    ),
    "margin_ranking": (
        [_n(4), _n(4)],
        lambda F, x, a: F.margin_ranking_loss(x[0], x[1], a(PM1), margin=0.2),
    ),
    "hinge_embedding": (
        [_n(4)],
        lambda F, x, a: F.hinge_embedding_loss(x[0], a(PM1), margin=0.5, reduction="none"),
    ),
    "triplet_margin": (
        [_n(4, 6), _n(4, 6), _n(4, 6)],
        lambda F, x, a: F.triplet_margin_loss(x[0], x[1], x[2], margin=2.0, p=3, swap=True),
    ),
    "triplet_with_distance": (
        [_n(4, 6), _n(4, 6), _n(4, 6)],
        lambda F, x, a: F.triplet_margin_with_distance_loss(
            x[0], x[1], x[2], distance_function=lambda u, v: F.cosine_similarity(u, v), margin=3.0
        ),
    ),
    "poisson_nll": (
        [_n(4, 3), _pos(4, 3)],
        lambda F, x, a: F.poisson_nll_loss(x[0], x[1] * 3, full=True),
    ),
    "poisson_nll_rates": (
        [_pos(4, 3), _pos(4, 3)],
        lambda F, x, a: F.poisson_nll_loss(x[0], x[1], log_input=False),
    ),
    "gaussian_nll": (
        [_n(4, 3), _n(4, 3), _pos(4)],
        lambda F, x, a: F.gaussian_nll_loss(x[0], x[1], x[2], full=True),
    ),
    "ctc_loss": (
        [_n(7, 2, 5)],
        lambda F, x, a: F.ctc_loss(
            F.log_softmax(x[0], 2),
            a(np.array([[1, 2, 2], [3, 1, 0]])),
            a(np.array([7, 6])),
            a(np.array([3, 2])),
        ),
    ),
    "ctc_loss_zero_infinity": (
        [_n(4, 2, 5)],
        lambda F, x, a: F.ctc_loss(
            F.log_softmax(x[0], 2),
            a(np.array([[1, 2, 2, 3], [1, 1, 0, 0]])),
            a(np.array([4, 4])),
            a(np.array([4, 2])),
            reduction="none",
            zero_infinity=True,
        ),
    ),
    "ctc_loss_unbatched": (
        [_n(6, 5)],
        lambda F, x, a: F.ctc_loss(
            F.log_softmax(x[0], 1), a(np.array([1, 2])), a(np.array([6])), a(np.array([2]))
        ),
    ),
    "embedding_bag_last_offset_max_norm": (
        [_n(10, 4)],
        lambda F, x, a: F.embedding_bag(
            a(BAG_IDX),
            x[0] * 3,
            a(np.append(BAG_OFF, 9)),
            max_norm=1.5,
            mode="mean",
            include_last_offset=True,
        ),
    ),
    "linear_cross_entropy": (
        [_n(6, 4), _n(5, 4), _n(5)],
        lambda F, x, a: F.linear_cross_entropy(
            x[0], x[1], a(np.array([0, 1, 4, 2, 2, 3])), linear_bias=x[2], label_smoothing=0.1
        ),
    ),
    # distances
    "cosine_similarity": ([_n(4, 6), _n(1, 6)], lambda F, x, a: F.cosine_similarity(x[0], x[1])),
    "pairwise_distance": (
        [_n(4, 6), _n(4, 6)],
        lambda F, x, a: F.pairwise_distance(x[0], x[1], p=1.5, keepdim=True),
    ),
    "pdist": ([_n(5, 3)], lambda F, x, a: F.pdist(x[0])),
    "normalize": ([_n(4, 6)], lambda F, x, a: F.normalize(x[0], p=3, dim=0)),
    # pooling
    "max_pool1d_idx": (
        [_n(2, 3, 9)],
        lambda F, x, a: F.max_pool1d(x[0], 3, 2, 1, return_indices=True),
    ),
    "max_pool2d": ([_n(2, 3, 7, 8)], lambda F, x, a: F.max_pool2d(x[0], 3, 2, 1, ceil_mode=True)),
    "max_pool2d_dil": (
        [_n(2, 3, 7, 8)],
        lambda F, x, a: F.max_pool2d_with_indices(x[0], (2, 3), (1, 2), dilation=2),
    ),
    "max_pool3d": (
        [_n(1, 2, 5, 6, 5)],
        lambda F, x, a: F.max_pool3d(x[0], 2, padding=1, return_indices=True),
    ),
    "avg_pool1d": ([_n(2, 3, 9)], lambda F, x, a: F.avg_pool1d(x[0], 4, 3, 2, ceil_mode=True)),
    "avg_pool2d": ([_n(2, 3, 7, 8)], lambda F, x, a: F.avg_pool2d(x[0], 3, 2, 1, True, False)),
    "avg_pool3d": ([_n(1, 2, 5, 6, 7)], lambda F, x, a: F.avg_pool3d(x[0], 2, divisor_override=3)),
    "lp_pool1d": ([_pos(2, 3, 9)], lambda F, x, a: F.lp_pool1d(x[0], 3, 2)),
    "lp_pool2d": ([_n(2, 3, 7, 8)], lambda F, x, a: F.lp_pool2d(x[0], 2, 3, 2)),
    "lp_pool3d": ([_n(1, 2, 4, 4, 4)], lambda F, x, a: F.lp_pool3d(x[0], 2, 2)),
    "adaptive_avg_pool1d": ([_n(2, 3, 10)], lambda F, x, a: F.adaptive_avg_pool1d(x[0], 4)),
    "adaptive_avg_pool2d": (
        [_n(2, 3, 7, 9)],
        lambda F, x, a: F.adaptive_avg_pool2d(x[0], (3, None)),
    ),
    "adaptive_avg_pool3d": (
        [_n(1, 2, 5, 7, 6)],
        lambda F, x, a: F.adaptive_avg_pool3d(x[0], (3, 4, 2)),
    ),
    "adaptive_max_pool1d": ([_n(3, 10)], lambda F, x, a: F.adaptive_max_pool1d(x[0], 4, True)),
    "adaptive_max_pool2d": (
        [_n(2, 3, 7, 9)],
        lambda F, x, a: F.adaptive_max_pool2d_with_indices(x[0], (3, 4)),
    ),
    "adaptive_max_pool2d_plain": ([_n(2, 3, 7, 9)], lambda F, x, a: F.adaptive_max_pool2d(x[0], 4)),
    "adaptive_max_pool1d_wi": (
        [_n(2, 3, 10)],
        lambda F, x, a: F.adaptive_max_pool1d_with_indices(x[0], 3),
    ),
    "adaptive_max_pool3d_wi": (
        [_n(1, 2, 4, 5, 6)],
        lambda F, x, a: F.adaptive_max_pool3d_with_indices(x[0], (2, 3, 3)),
    ),
    "max_pool1d_wi": (
        [_n(2, 3, 9)],
        lambda F, x, a: F.max_pool1d_with_indices(x[0], 2, 2, 1, 1, True),
    ),
    "max_pool3d_wi": ([_n(1, 2, 5, 6, 5)], lambda F, x, a: F.max_pool3d_with_indices(x[0], 2, 1)),
    "fractional_max_pool2d_wi": (
        [_n(2, 3, 9, 11)],
        lambda F, x, a: F.fractional_max_pool2d_with_indices(
            x[0], (2, 3), output_size=(4, 5), _random_samples=a(SAMPLES2)
        ),
    ),
    "fractional_max_pool3d_wi": (
        [_n(2, 2, 7, 8, 9)],
        lambda F, x, a: F.fractional_max_pool3d_with_indices(
            x[0], 2, output_size=(3, 4, 4), _random_samples=a(SAMPLES3)
        ),
    ),
    "max_unpool1d": (
        [_n(2, 3, 4)],
        lambda F, x, a: F.max_unpool1d(
            x[0], F.max_pool1d(a(R1D), 2, return_indices=True)[1], 2, output_size=(9,)
        ),
    ),
    "max_unpool3d": (
        [_n(1, 2, 2, 3, 2)],
        lambda F, x, a: F.max_unpool3d(
            x[0], F.max_pool3d(a(R3D), 2, return_indices=True)[1], 2, output_size=(4, 6, 5)
        ),
    ),
    "adaptive_max_pool3d": (
        [_n(1, 2, 5, 6, 7)],
        lambda F, x, a: F.adaptive_max_pool3d(x[0], (2, 3, 4)),
    ),
    "fractional_max_pool2d": (
        [_n(2, 3, 9, 11)],
        lambda F, x, a: F.fractional_max_pool2d(
            x[0], 2, output_size=(4, 5), return_indices=True, _random_samples=a(SAMPLES2)
        ),
    ),
    "fractional_max_pool3d": (
        [_n(2, 2, 7, 8, 9)],
        lambda F, x, a: F.fractional_max_pool3d(
            x[0], 2, output_ratio=0.5, _random_samples=a(SAMPLES3)
        ),
    ),
    "max_unpool2d": (
        [_n(2, 3, 4, 4)],
        lambda F, x, a: F.max_unpool2d(
            x[0],
            F.max_pool2d(
                a(np.arange(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) % 17 * 1.0), 2, return_indices=True
            )[1],
            2,
            output_size=(8, 9),
        ),
    ),
    # padding, resizing, rearranging
    "pad_constant": (
        [_n(2, 3, 5, 6)],
        lambda F, x, a: F.pad(x[0], (-1, 2, 0, -2, 1, 1), value=3.0),
    ),
    "pad_reflect": ([_n(2, 3, 5, 6)], lambda F, x, a: F.pad(x[0], (1, 2, 2, 1), mode="reflect")),
    "pad_replicate": ([_n(2, 3, 5)], lambda F, x, a: F.pad(x[0], (3, 1), mode="replicate")),
    "pad_circular": (
        [_n(2, 3, 4, 5, 6)],
        lambda F, x, a: F.pad(x[0], (1, 2, 2, 1, 3, 0), mode="circular"),
    ),
    "interp_nearest": ([_n(2, 3, 5, 6)], lambda F, x, a: F.interpolate(x[0], scale_factor=1.7)),
    "interp_nearest_exact": (
        [_n(2, 3, 5, 6)],
        lambda F, x, a: F.interpolate(x[0], size=(3, 8), mode="nearest-exact"),
    ),
    "interp_linear": ([_n(2, 3, 7)], lambda F, x, a: F.interpolate(x[0], size=10, mode="linear")),
    "interp_bilinear": (
        [_n(2, 3, 5, 6)],
        lambda F, x, a: F.interpolate(x[0], scale_factor=1.7, mode="bilinear"),
    ),
    "interp_bilinear_ac": (
        [_n(2, 3, 5, 6)],
        lambda F, x, a: F.interpolate(x[0], scale_factor=0.6, mode="bilinear", align_corners=True),
    ),
    "interp_bicubic": (
        [_n(2, 3, 5, 6)],
        lambda F, x, a: F.interpolate(x[0], size=(8, 4), mode="bicubic"),
    ),
    "interp_trilinear": (
        [_n(1, 2, 3, 4, 5)],
        lambda F, x, a: F.interpolate(x[0], size=(6, 7, 8), mode="trilinear"),
    ),
    "interp_area": (
        [_n(2, 3, 9, 7)],
        lambda F, x, a: F.interpolate(x[0], size=(4, 3), mode="area"),
    ),
    "interp_bilinear_antialias": (
        [_n(2, 3, 17, 13)],
        lambda F, x, a: F.interpolate(x[0], scale_factor=0.37, mode="bilinear", antialias=True),
    ),
    "interp_bicubic_antialias": (
        [_n(2, 3, 11, 9)],
        lambda F, x, a: F.interpolate(
            x[0], size=(4, 5), mode="bicubic", align_corners=True, antialias=True
        ),
    ),
    "upsample": ([_n(2, 3, 4, 5)], lambda F, x, a: F.upsample(x[0], size=(6, 7), mode="bicubic")),
    "upsample_nearest": (
        [_n(2, 3, 4, 5)],
        lambda F, x, a: F.upsample_nearest(x[0], scale_factor=2),
    ),
    "native_channel_shuffle": ([_n(2, 6, 3)], lambda F, x, a: F.native_channel_shuffle(x[0], 2)),
    "upsample_bilinear": (
        [_n(2, 3, 4, 5)],
        lambda F, x, a: F.upsample_bilinear(x[0], scale_factor=2),
    ),
    "unfold": (
        [_n(2, 3, 7, 8)],
        lambda F, x, a: F.unfold(x[0], (2, 3), dilation=(1, 2), padding=1, stride=2),
    ),
    "fold": ([_n(2, 18, 9)], lambda F, x, a: F.fold(x[0], (5, 6), (2, 3), padding=1, stride=2)),
    "pixel_shuffle": ([_n(2, 8, 3, 4)], lambda F, x, a: F.pixel_shuffle(x[0], 2)),
    "pixel_unshuffle": ([_n(2, 2, 4, 6)], lambda F, x, a: F.pixel_unshuffle(x[0], 2)),
    "channel_shuffle": ([_n(2, 6, 3, 4)], lambda F, x, a: F.channel_shuffle(x[0], 3)),
    "affine_grid": (
        [_n(2, 2, 3)],
        lambda F, x, a: F.affine_grid(x[0], (2, 3, 4, 5), align_corners=False),
    ),
    "affine_grid_3d": (
        [_n(2, 3, 4)],
        lambda F, x, a: F.affine_grid(x[0], (2, 3, 4, 5, 3), align_corners=True),
    ),
    "grid_sample_bilinear": (
        [_n(2, 3, 6, 7), _unif(-1.3, 1.3, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(x[0], x[1], align_corners=False),
    ),
    "grid_sample_border": (
        [_n(2, 3, 6, 7), _unif(-1.3, 1.3, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(x[0], x[1], padding_mode="border", align_corners=True),
    ),
    "grid_sample_reflection": (
        [_n(2, 3, 6, 7), _unif(-2.3, 2.3, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(x[0], x[1], padding_mode="reflection", align_corners=False),
    ),
    "grid_sample_nearest": (
        [_n(2, 3, 6, 7), _unif(-1.3, 1.3, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(x[0], x[1], mode="nearest", align_corners=False),
    ),
    "grid_sample_bicubic": (
        [_n(2, 3, 6, 7), _unif(-1.5, 1.5, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(x[0], x[1], mode="bicubic", align_corners=False),
    ),
    "grid_sample_bicubic_reflection": (
        [_n(2, 3, 6, 7), _unif(-2.5, 2.5, 2, 4, 5, 2)],
        lambda F, x, a: F.grid_sample(
            x[0], x[1], mode="bicubic", padding_mode="reflection", align_corners=True
        ),
    ),
    "grid_sample_3d_nearest_border": (
        [_n(1, 2, 3, 4, 5), _unif(-1.3, 1.3, 1, 2, 3, 4, 3)],
        lambda F, x, a: F.grid_sample(
            x[0], x[1], mode="nearest", padding_mode="border", align_corners=True
        ),
    ),
    "grid_sample_3d_reflection": (
        [_n(1, 2, 3, 4, 5), _unif(-2.3, 2.3, 1, 2, 3, 4, 3)],
        lambda F, x, a: F.grid_sample(x[0], x[1], padding_mode="reflection", align_corners=False),
    ),
    "avg_pool2d_unbatched": ([_n(3, 7, 8)], lambda F, x, a: F.avg_pool2d(x[0], 2, 1, 1)),
    "max_pool3d_unbatched": (
        [_n(2, 4, 5, 4)],
        lambda F, x, a: F.max_pool3d(x[0], 2, 2, 1, return_indices=True),
    ),
    "conv2d_unbatched": (
        [_n(4, 7, 8), _n(6, 4, 3, 2)],
        lambda F, x, a: F.conv2d(x[0], x[1], padding=(1, 0)),
    ),
    "adaptive_avg_pool2d_unbatched": (
        [_n(3, 7, 9)],
        lambda F, x, a: F.adaptive_avg_pool2d(x[0], (2, 4)),
    ),
    "grid_sample_3d": (
        [_n(1, 2, 3, 4, 5), _unif(-1, 1, 1, 2, 3, 4, 3)],
        lambda F, x, a: F.grid_sample(x[0], x[1], align_corners=False),
    ),
    # layers as functions
    "linear": ([_n(5, 3), _n(6, 3), _n(6)], lambda F, x, a: F.linear(x[0], x[1], x[2])),
    "bilinear": ([_n(5, 3), _n(5, 4), _n(6, 3, 4), _n(6)], lambda F, x, a: F.bilinear(*x)),
    "grouped_mm_2d_3d": (
        [_n(8, 4), _n(3, 4, 4)],
        lambda F, x, a: F.grouped_mm(x[0], x[1], offs=a(np.array([2, 5, 8], np.int32))),
    ),
    "grouped_mm_3d_3d": ([_n(3, 4, 4), _n(3, 4, 8)], lambda F, x, a: F.grouped_mm(x[0], x[1])),
    "grouped_mm_2d_2d": (
        [_n(4, 8), _n(8, 4)],
        lambda F, x, a: F.grouped_mm(x[0], x[1], offs=a(np.array([2, 5, 8], np.int32))),
    ),
    "grouped_mm_3d_2d": (
        [_n(3, 4, 4), _n(4, 12)],
        lambda F, x, a: F.grouped_mm(x[0], x[1], offs=a(np.array([4, 8, 12], np.int32))),
    ),
    "conv1d": (
        [_n(2, 4, 9), _n(6, 2, 3), _n(6)],
        lambda F, x, a: F.conv1d(*x, stride=2, padding=1, groups=2),
    ),
    "conv2d_same": (
        [_n(2, 4, 7, 8), _n(6, 4, 3, 2)],
        lambda F, x, a: F.conv2d(x[0], x[1], padding="same", dilation=2),
    ),
    "conv3d": (
        [_n(2, 4, 5, 6, 5), _n(6, 2, 3, 2, 2), _n(6)],
        lambda F, x, a: F.conv3d(*x, stride=(1, 2, 1), padding=1, groups=2),
    ),
    "conv_transpose1d": (
        [_n(2, 4, 5), _n(4, 3, 3), _n(6)],
        lambda F, x, a: F.conv_transpose1d(*x, stride=2, padding=1, output_padding=1, groups=2),
    ),
    "conv_transpose2d": (
        [_n(2, 4, 5, 4), _n(4, 3, 3, 2), _n(3)],
        lambda F, x, a: F.conv_transpose2d(*x, stride=2, padding=1, dilation=2),
    ),
    "conv_transpose3d": (
        [_n(1, 2, 3, 4, 3), _n(2, 3, 2, 2, 2)],
        lambda F, x, a: F.conv_transpose3d(x[0], x[1], stride=2),
    ),
    "conv_tbc": ([_n(7, 2, 3), _n(3, 3, 4), _n(4)], lambda F, x, a: F.conv_tbc(*x, 1)),
    "batch_norm_eval": (
        [_n(4, 6, 3), _n(6), _n(6)],
        lambda F, x, a: F.batch_norm(
            x[0], a(np.linspace(-1, 1, 6)), a(np.linspace(0.5, 2, 6)), x[1], x[2]
        ),
    ),
    "batch_norm_train": (
        [_n(4, 6, 3)],
        lambda F, x, a: F.batch_norm(x[0], None, None, training=True),
    ),
    "instance_norm": (
        [_n(2, 6, 4, 3), _n(6), _n(6)],
        lambda F, x, a: F.instance_norm(x[0], weight=x[1], bias=x[2]),
    ),
    "group_norm": (
        [_n(2, 6, 4, 3), _n(6), _n(6)],
        lambda F, x, a: F.group_norm(x[0], 3, x[1], x[2]),
    ),
    "layer_norm": (
        [_n(2, 6, 4, 3), _n(4, 3), _n(4, 3)],
        lambda F, x, a: F.layer_norm(x[0], (4, 3), x[1], x[2]),
    ),
    "rms_norm": ([_n(2, 6, 4, 3), _n(4, 3)], lambda F, x, a: F.rms_norm(x[0], (4, 3), x[1])),
    "local_response_norm": (
        [_n(2, 7, 5)],
        lambda F, x, a: F.local_response_norm(x[0], 4, alpha=0.1, beta=0.5, k=2.0),
    ),
    "embedding": (
        [_n(10, 4)],
        lambda F, x, a: F.embedding(a(IDX5_3), x[0], padding_idx=2, scale_grad_by_freq=True),
    ),
    "embedding_bag_max": (
        [_n(10, 4)],
        lambda F, x, a: F.embedding_bag(a(IDX5_3), x[0], mode="max"),
    ),
    "embedding_bag_offsets": (
        [_n(10, 4), _n(9)],
        lambda F, x, a: F.embedding_bag(
            a(BAG_IDX), x[0], a(BAG_OFF), mode="sum", per_sample_weights=x[1]
        ),
    ),
    "embedding_bag_mean_pad": (
        [_n(10, 4)],
        lambda F, x, a: F.embedding_bag(a(BAG_IDX), x[0], a(BAG_OFF), padding_idx=int(BAG_IDX[0])),
    ),
    "multi_head_attention": (
        [_n(4, 3, 8), _n(5, 3, 8), _n(5, 3, 8), _n(24, 8), _n(24), _n(8, 8), _n(8)],
        lambda F, x, a: F.multi_head_attention_forward(
            x[0],
            x[1],
            x[2],
            8,
            2,
            x[3],
            x[4],
            None,
            None,
            False,
            0.0,
            x[5],
            x[6],
            key_padding_mask=a(KPM),
            attn_mask=a(~MASK),
            average_attn_weights=False,
        ),
    ),
    "multi_head_attention_separate_zero_attn": (
        [_n(4, 3, 8), _n(5, 3, 6), _n(5, 3, 7), _n(8, 8), _n(8, 6), _n(8, 7), _n(8, 8)],
        lambda F, x, a: F.multi_head_attention_forward(
            x[0],
            x[1],
            x[2],
            8,
            4,
            None,
            None,
            None,
            None,
            True,
            0.0,
            x[6],
            None,
            attn_mask=a(FLOAT_MASK),
            use_separate_proj_weight=True,
            q_proj_weight=x[3],
            k_proj_weight=x[4],
            v_proj_weight=x[5],
        ),
    ),
    "multi_head_attention_bias_kv_unbatched": (
        [_n(4, 8), _n(5, 8), _n(5, 8), _n(24, 8), _n(1, 1, 8), _n(1, 1, 8), _n(8, 8)],
        lambda F, x, a: F.multi_head_attention_forward(
            x[0],
            x[1],
            x[2],
            8,
            2,
            x[3],
            None,
            x[4],
            x[5],
            False,
            0.0,
            x[6],
            None,
            key_padding_mask=a(KPM[0]),
        ),
    ),
    "sdpa": (
        [_n(2, 3, 4, 8), _n(2, 3, 5, 8), _n(2, 3, 5, 6)],
        lambda F, x, a: F.scaled_dot_product_attention(*x),
    ),
    "sdpa_causal": (
        [_n(2, 3, 4, 8), _n(2, 3, 5, 8), _n(2, 3, 5, 6)],
        lambda F, x, a: F.scaled_dot_product_attention(*x, is_causal=True, scale=0.3),
    ),
    "sdpa_bool_mask": (
        [_n(2, 3, 4, 8), _n(2, 3, 5, 8), _n(2, 3, 5, 6)],
        lambda F, x, a: F.scaled_dot_product_attention(*x, attn_mask=a(MASK)),
    ),
    "sdpa_float_mask_gqa": (
        [_n(2, 4, 4, 8), _n(2, 2, 5, 8), _n(2, 2, 5, 6), _n(4, 5)],
        lambda F, x, a: F.scaled_dot_product_attention(
            x[0], x[1], x[2], attn_mask=x[3], enable_gqa=True
        ),
    ),
}


# PyTorch has no gradient for these: values only
VALUES_ONLY = {"native_channel_shuffle"}
# PyTorch's grouped_mm refuses float64
FLOAT32_ONLY = {"grouped_mm_2d_3d", "grouped_mm_3d_3d", "grouped_mm_2d_2d", "grouped_mm_3d_2d"}


def _aux(lib, dtype):
    def convert(v):
        v = np.asarray(v)
        return lib.tensor(v.astype(dtype) if v.dtype.kind == "f" else v)

    return convert


def _outputs(y):
    return list(y) if isinstance(y, tuple) else [y]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name, dtype):
    makers, call = CASES[name]
    if dtype == np.float64 and name in FLOAT32_ONLY:
        with pytest.raises(RuntimeError, match="Float32"):
            call(TF, [torch_ref.ones(2, 2, 2, dtype=torch_ref.float64)] * 2, _aux(torch_ref, dtype))
        with pytest.raises(RuntimeError, match="Float32"):
            call(F, [ct.ones(2, 2, 2, dtype=ct.float64)] * 2, _aux(ct, dtype))
        return
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    xs = [np.asarray(m(rng), dtype=dtype) for m in makers]
    tx = [torch_ref.tensor(x, requires_grad=True) for x in xs]
    cx = [ct.tensor(x, requires_grad=True) for x in xs]
    ty = _outputs(call(TF, tx, _aux(torch_ref, dtype)))
    cy = _outputs(call(F, cx, _aux(ct, dtype)))
    tol = 2e-4 if dtype == np.float32 else 1e-9
    assert len(ty) == len(cy)
    for t, c in zip(ty, cy):
        assert tuple(t.shape) == tuple(c.shape), name
        t_np = t.detach().numpy()
        c_np = np.asarray(c)
        assert t_np.dtype == c_np.dtype, (name, t_np.dtype, c_np.dtype)
        np.testing.assert_allclose(c_np, t_np, rtol=tol, atol=tol, err_msg=name)
    if name in VALUES_ONLY:
        return
    w = rng.standard_normal(ty[0].shape).astype(dtype)
    (ty[0] * torch_ref.tensor(w)).sum().backward()
    (cy[0] * ct.tensor(w)).sum().backward()
    for i, (t, c) in enumerate(zip(tx, cx)):
        if t.grad is None:
            assert c.grad is None or not np.asarray(c.grad).any(), (name, i)
            continue
        got = np.zeros_like(t.grad.numpy()) if c.grad is None else np.asarray(c.grad)
        np.testing.assert_allclose(
            got,
            t.grad.numpy(),
            rtol=tol * 10,
            atol=tol * 10,
            err_msg=f"{name}: gradient of input {i}",
        )


# -- random functions: statistics and shapes, not draws -----------------------------------------


def test_dropouts_keep_the_scale_and_zero_whole_channels():
    ct.manual_seed(0)
    x = ct.ones(400, 8, 6)
    y = np.asarray(F.dropout2d(x, 0.25, training=True))
    per_channel = y.reshape(400, 8, -1)
    assert ((per_channel == 0).all(-1) | np.isclose(per_channel, 1 / 0.75).all(-1)).all()
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.3
    assert F.dropout3d(x[None], 0.5, training=False) is not None
    y = np.asarray(
        F.alpha_dropout(ct.tensor(np.random.default_rng(0).standard_normal(200000)), 0.2, True)
    )
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02  # SELU statistics are kept
    with pytest.raises(ValueError, match="dropout1d: .*got shape"):
        F.dropout1d(ct.ones(2, 3, 4, 5), 0.5)


def test_gumbel_softmax_is_a_distribution_and_hard_is_one_hot_with_soft_gradient():
    logits = ct.tensor(np.random.default_rng(0).standard_normal((5, 4)), requires_grad=True)
    soft = F.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(np.asarray(soft).sum(-1), 1, rtol=1e-9)
    hard = F.gumbel_softmax(logits, hard=True)
    h = np.asarray(hard)
    assert set(np.unique(h)) <= {0.0, 1.0} and (h.sum(-1) == 1).all()
    (hard * ct.tensor(np.arange(4.0))).sum().backward()
    assert np.abs(np.asarray(logits.grad)).sum() > 0


def test_rrelu_in_training_draws_slopes_between_lower_and_upper():
    x = -ct.ones(1000)
    y = -np.asarray(F.rrelu(x, 0.1, 0.3, training=True))
    assert 0.1 <= y.min() and y.max() <= 0.3 and y.std() > 0.03


def test_in_place_functions_return_the_new_values():
    x = ct.tensor([-1.0, 2.0, -3.0])
    np.testing.assert_array_equal(np.asarray(F.relu_(x)), [0.0, 2.0, 0.0])
    assert np.asarray(x).tolist() == [0.0, 2.0, 0.0]  # relu_ changed x, as in PyTorch
    y = ct.tensor([-1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(F.leaky_relu(y, 0.5, inplace=True))[0], -0.5)
    assert np.asarray(y)[0] == -0.5
    np.testing.assert_array_equal(np.asarray(F.hardtanh_(ct.tensor([-3.0, 3.0]))), [-1.0, 1.0])


def test_in_place_functions_update_the_argument():
    x = ct.tensor([-1.0, 2.0])
    F.relu_(x)
    np.testing.assert_array_equal(np.asarray(x), [0.0, 2.0])


def test_one_hot_matches_pytorch():
    idx = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(
        np.asarray(F.one_hot(ct.tensor(idx), 5)), TF.one_hot(torch_ref.tensor(idx), 5).numpy()
    )
    assert F.one_hot(ct.tensor(idx)).shape == (2, 2, 4)


def test_batch_norm_updates_running_stats_like_pytorch():
    x = np.random.default_rng(0).standard_normal((8, 3, 5)).astype(np.float32)
    trm, trv = torch_ref.zeros(3), torch_ref.ones(3)
    crm, crv = ct.zeros(3), ct.ones(3)
    TF.batch_norm(torch_ref.tensor(x), trm, trv, training=True, momentum=0.3)
    F.batch_norm(ct.tensor(x), crm, crv, training=True, momentum=0.3)
    np.testing.assert_allclose(np.asarray(crm), trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(crv), trv.numpy(), rtol=1e-5, atol=1e-6)


def test_nn_grad_matches_pytorch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 3))
    g = rng.standard_normal((2, 6, 4, 3))
    kw = dict(stride=2, padding=1, groups=2)
    tgrad = torch_ref.nn.grad
    import chainrule.torch.nn.grad as cgrad

    a = cgrad.conv2d_input(x.shape, ct.tensor(w), ct.tensor(g), **kw)
    b = tgrad.conv2d_input(x.shape, torch_ref.tensor(w), torch_ref.tensor(g), **kw)
    np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-9, atol=1e-9)
    a = cgrad.conv2d_weight(ct.tensor(x), w.shape, ct.tensor(g), **kw)
    b = tgrad.conv2d_weight(torch_ref.tensor(x), w.shape, torch_ref.tensor(g), **kw)
    np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-9, atol=1e-9)


# -- bad input: clear errors naming the function, the shapes and the argument -------------------


@pytest.mark.parametrize(
    "call, kind, pattern",
    [
        (
            lambda: F.conv2d(ct.ones(1, 3, 5, 5), ct.ones(4, 2, 3, 3)),
            ValueError,
            r"conv2d: .*\(1, 3, 5, 5\).*\(4, 2, 3, 3\)",
        ),
        (
            lambda: F.linear(ct.ones(2, 3), ct.ones(4, 5)),
            ValueError,
            r"linear: .*\(2, 3\).*\(4, 5\)",
        ),
        (lambda: F.max_pool2d(ct.ones(2, 3), 2), ValueError, r"max_pool2d: .*\(2, 3\)"),
        (
            lambda: F.max_pool2d(ct.ones(1, 1, 4, 4), 2, padding=2),
            ValueError,
            "pad should be at most half",
        ),
        (lambda: F.pad(ct.ones(2, 3), (1, 1), mode="wrap"), NotImplementedError, "wrap"),
        (
            lambda: F.pad(ct.ones(1, 2, 3), (3, 3), mode="reflect"),
            ValueError,
            r"reflect.*\(1, 2, 3\)",
        ),
        (
            lambda: F.interpolate(ct.ones(1, 2, 3), size=4, mode="bilinear"),
            NotImplementedError,
            "bilinear",
        ),
        (lambda: F.glu(ct.ones(2, 3)), ValueError, r"glu: .*\(2, 3\)"),
        (
            lambda: F.pixel_shuffle(ct.ones(1, 3, 2, 2), 2),
            ValueError,
            r"pixel_shuffle: .*\(1, 3, 2, 2\)",
        ),
        (lambda: F.gelu(ct.ones(2), approximate="fast"), ValueError, "approximate"),
        (lambda: F.mse_loss(ct.ones(2, 3), ct.ones(3, 2)), ValueError, r"\(2, 3\)"),
        (
            lambda: F.embedding(ct.tensor([0, 7]), ct.ones(5, 2)),
            IndexError,
            "embedding: index out of range",
        ),
        (
            lambda: F.group_norm(ct.ones(2, 5, 3), 2),
            ValueError,
            r"group_norm: .*num_groups=2.*\(2, 5, 3\)",
        ),
        (lambda: F.layer_norm(ct.ones(2, 5), (4,)), ValueError, r"layer_norm: .*\(4,\).*\(2, 5\)"),
        (
            lambda: F.grid_sample(ct.ones(1, 1, 3, 3), ct.ones(1, 2, 2, 3)),
            ValueError,
            r"grid_sample: .*\(1, 2, 2, 3\)",
        ),
        (
            lambda: F.multi_margin_loss(ct.ones(2, 3), ct.tensor([0, 1]), p=3),
            ValueError,
            "p == 1 and p == 2",
        ),
        (lambda: F.dropout(ct.ones(2), 1.5), ValueError, r"dropout: .*1\.5"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, kind, pattern):
    with pytest.raises(kind, match=pattern) as info:
        call()
    name = pattern.split(":")[0].split("\\")[0]
    if name in _TORCH_RUNTIME_ERRORS:  # PyTorch raises RuntimeError there: so does chainrule
        assert isinstance(info.value, RuntimeError), name


_TORCH_RUNTIME_ERRORS = {
    "conv2d",
    "linear",
    "max_pool2d",
    "glu",
    "pixel_shuffle",
    "group_norm",
    "layer_norm",
    "grid_sample",
}


@pytest.mark.parametrize(
    "name, args",
    [
        ("conv2d", ((1, 3, 5, 5), (4, 2, 3, 3))),
        ("linear", ((2, 3), (4, 5))),
        ("glu", ((2, 3),)),
        ("pdist", ((2, 3, 4),)),
        ("channel_shuffle", ((1, 3, 2, 2), 2)),
        ("pixel_shuffle", ((1, 3, 2, 2), 2)),
        ("unfold", ((1, 1, 2, 2), 3)),
        ("conv_transpose2d", ((1, 3, 5, 5), (4, 2, 3, 3))),
    ],
)
def test_error_kind_is_pytorchs(name, args):
    def build(lib):
        return [lib.ones(*a) if isinstance(a, tuple) else a for a in args]

    with pytest.raises(Exception) as ref:
        getattr(TF, name)(*build(torch_ref))
    with pytest.raises(Exception) as ours:
        getattr(F, name)(*build(ct))
    assert isinstance(ours.value, type(ref.value)), (type(ours.value), type(ref.value))
    assert name.split("_")[0] in str(ours.value)


def test_pytorch_also_refuses_those_inputs():
    with pytest.raises(RuntimeError):
        TF.conv2d(torch_ref.ones(1, 3, 5, 5), torch_ref.ones(4, 2, 3, 3))
    with pytest.raises(RuntimeError):
        TF.glu(torch_ref.ones(2, 3))
    assert math.isfinite(float(TF.mse_loss(torch_ref.ones(2), torch_ref.ones(2))))


def _params(fn):
    import inspect

    fn = getattr(fn, "__wrapped_door__", fn)
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def _functions():
    import inspect

    names = []
    for name in sorted(F.__all__):
        ref = getattr(TF, name, None)
        if ref is None or isinstance(ref, type) or not callable(ref):
            continue
        try:
            params = _params(ref)
        except (TypeError, ValueError):
            continue
        if [p[1] for p in params] != [
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ]:
            names.append(name)  # PyTorch's boolean_dispatch wrappers show (*args, **kwargs)
    return names


@pytest.mark.parametrize("name", _functions())
def test_function_has_pytorch_signature(name):
    assert _params(getattr(F, name)) == _params(getattr(TF, name))


@pytest.mark.parametrize("name", ["upsample", "upsample_nearest", "upsample_bilinear"])
def test_deprecated_upsample_functions_warn_as_pytorch(name):
    x = np.ones((1, 1, 2, 2))
    with pytest.warns(UserWarning, match=f"`nn.functional.{name}` is deprecated"):
        getattr(TF, name)(torch_ref.tensor(x), scale_factor=2)
    with pytest.warns(UserWarning, match=f"`nn.functional.{name}` is deprecated"):
        getattr(F, name)(ct.tensor(x), scale_factor=2)


def _warnings_of(call):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return sorted(str(w.message)[:60] for w in caught)


@pytest.mark.parametrize("name", sorted(CASES))
def test_warns_like_pytorch(name):
    makers, call = CASES[name]
    if name in FLOAT32_ONLY:
        pytest.skip("covered by test_matches_pytorch")
    rng = np.random.default_rng(0)
    xs = [np.asarray(m(rng), dtype=np.float32) for m in makers]
    ref = _warnings_of(
        lambda: call(TF, [torch_ref.tensor(x) for x in xs], _aux(torch_ref, np.float32))
    )
    ours = _warnings_of(lambda: call(F, [ct.tensor(x) for x in xs], _aux(ct, np.float32)))
    assert ours == ref


def test_grid_functions_warn_without_align_corners():
    theta = np.eye(2, 3, dtype=np.float32)[None]
    ref = _warnings_of(lambda: TF.affine_grid(torch_ref.tensor(theta), (1, 1, 2, 2)))
    ours = _warnings_of(lambda: F.affine_grid(ct.tensor(theta), (1, 1, 2, 2)))
    assert ours == ref and len(ref) == 1
    grid = np.zeros((1, 1, 1, 2), np.float32)
    ref = _warnings_of(lambda: TF.grid_sample(torch_ref.ones(1, 1, 2, 2), torch_ref.tensor(grid)))
    ours = _warnings_of(lambda: F.grid_sample(ct.ones(1, 1, 2, 2), ct.tensor(grid)))
    assert ours == ref and len(ref) == 1
