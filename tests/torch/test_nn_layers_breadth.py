"""``chainrule.torch.nn`` layers against real PyTorch, layer by layer (issue 15).

Each case builds the layer with one constructor call written once for both libraries
(``make(nn)``), copies the real layer's parameters and buffers into chainrule's by name (so the
state names must match too), runs both on the same seeded random inputs in float32 and float64,
and compares outputs (values, shapes, dtypes), then the gradients of the inputs and of every
parameter under a random cotangent.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import chainrule.torch as ct
import chainrule.torch.nn as cnn
from chainrule.core import backend

torch_ref = pytest.importorskip("torch")


def _n(*shape):
    return lambda r: r.standard_normal(shape)


def _pos(*shape):
    return lambda r: r.random(shape) + 0.1


def _prob(*shape):
    return lambda r: r.random(shape) * 0.9 + 0.05


def _away(*shape):
    def make(r):
        x = r.standard_normal(shape) * 2
        for k in (0.0, 0.3, 0.5, 0.8, 1.0, 1.5, 3.0, 6.0):
            for s in (k, -k):
                x = np.where(np.abs(x - s) < 0.05, x + 0.1, x)
        return x

    return make


R = np.random.default_rng(99)
IDX5 = R.integers(0, 5, (4,))
IDX10 = R.integers(0, 10, (4, 3))
PM1 = np.where(R.random(4) > 0.5, 1.0, -1.0)
ML_TARGET = np.array([[3, 0, -1, 1, 2], [1, 4, 2, -1, 0], [0, -1, 0, 0, 0], [4, 3, 2, 1, 0]])
SAMPLES = R.random((2, 3, 2))
SAMPLES3 = R.random((2, 2, 3))
IDX_2D = R.integers(0, 5, (2, 3, 2))
BAG_IDX = R.integers(0, 10, (9,))
BAG_OFF = np.array([0, 2, 2, 6])
WEIGHT5 = R.random(5) + 0.5
SIGN = np.sign(R.standard_normal((4, 3)))
POOL_SRC = R.standard_normal((2, 3, 8, 9))


def _call(m, x, a):
    return m(*x)


# id: (make(nn, a), input makers, call(module, xs, aux), options)
CASES = {
    # activations
    "ReLU": (lambda nn, a: nn.ReLU(inplace=False), [_away(3, 4)], _call, {}),
    "ReLU6": (lambda nn, a: nn.ReLU6(), [_away(3, 4)], lambda m, x, a: m(x[0] * 4), {}),
    "ELU": (lambda nn, a: nn.ELU(alpha=0.5), [_away(3, 4)], _call, {}),
    "SELU": (lambda nn, a: nn.SELU(), [_away(3, 4)], _call, {}),
    "CELU": (lambda nn, a: nn.CELU(1.5), [_away(3, 4)], _call, {}),
    "GELU": (lambda nn, a: nn.GELU(), [_n(3, 4)], _call, {}),
    "GELU_tanh": (lambda nn, a: nn.GELU(approximate="tanh"), [_n(3, 4)], _call, {}),
    "SiLU": (lambda nn, a: nn.SiLU(), [_n(3, 4)], _call, {}),
    "Mish": (lambda nn, a: nn.Mish(), [_n(3, 4)], _call, {}),
    "Hardtanh": (lambda nn, a: nn.Hardtanh(-0.5, 0.8), [_away(3, 4)], _call, {}),
    "Hardswish": (lambda nn, a: nn.Hardswish(), [_away(3, 4)], lambda m, x, a: m(x[0] * 2), {}),
    "Hardsigmoid": (lambda nn, a: nn.Hardsigmoid(), [_away(3, 4)], lambda m, x, a: m(x[0] * 2), {}),
    "LeakyReLU": (lambda nn, a: nn.LeakyReLU(0.1), [_away(3, 4)], _call, {}),
    "PReLU": (lambda nn, a: nn.PReLU(3, 0.1), [_away(2, 3, 4)], _call, {}),
    "PReLU_single": (lambda nn, a: nn.PReLU(), [_away(2, 3)], _call, {}),
    "RReLU_eval": (lambda nn, a: nn.RReLU(0.1, 0.4), [_away(3, 4)], _call, {"eval": True}),
    "Softplus": (lambda nn, a: nn.Softplus(2.0, 5.0), [_n(3, 4)], lambda m, x, a: m(x[0] * 4), {}),
    "Softsign": (lambda nn, a: nn.Softsign(), [_n(3, 4)], _call, {}),
    "Softshrink": (lambda nn, a: nn.Softshrink(0.3), [_away(3, 4)], _call, {}),
    "Hardshrink": (lambda nn, a: nn.Hardshrink(0.3), [_away(3, 4)], _call, {}),
    "Tanhshrink": (lambda nn, a: nn.Tanhshrink(), [_n(3, 4)], _call, {}),
    "Threshold": (lambda nn, a: nn.Threshold(0.3, 20.0), [_away(3, 4)], _call, {}),
    "GLU": (lambda nn, a: nn.GLU(1), [_n(3, 4)], _call, {}),
    "LogSigmoid": (lambda nn, a: nn.LogSigmoid(), [_n(3, 4)], _call, {}),
    "Softmax2d": (lambda nn, a: nn.Softmax2d(), [_n(2, 3, 4, 5)], _call, {}),
    "Sigmoid": (lambda nn, a: nn.Sigmoid(), [_n(3, 4)], _call, {}),
    "Tanh": (lambda nn, a: nn.Tanh(), [_n(3, 4)], _call, {}),
    "Softmin": (lambda nn, a: nn.Softmin(dim=1), [_n(3, 4)], _call, {}),
    # losses
    "L1Loss": (lambda nn, a: nn.L1Loss(reduction="sum"), [_n(4, 3), _n(4, 3)], _call, {}),
    "MSELoss": (lambda nn, a: nn.MSELoss(), [_n(4, 3), _n(4, 3)], _call, {}),
    "CrossEntropyLoss": (
        lambda nn, a: nn.CrossEntropyLoss(weight=a(WEIGHT5), ignore_index=1, label_smoothing=0.1),
        [_n(4, 5)],
        lambda m, x, a: m(x[0], a(IDX5)),
        {},
    ),
    "NLLLoss": (lambda nn, a: nn.NLLLoss(), [_n(4, 5)], lambda m, x, a: m(x[0], a(IDX5)), {}),
    "BCELoss": (lambda nn, a: nn.BCELoss(), [_prob(4, 3), _prob(4, 3)], _call, {}),
    "BCEWithLogitsLoss": (
        lambda nn, a: nn.BCEWithLogitsLoss(pos_weight=a(WEIGHT5[:3])),
        [_n(4, 3), _prob(4, 3)],
        _call,
        {},
    ),
    "KLDivLoss": (
        lambda nn, a: nn.KLDivLoss(reduction="batchmean", log_target=True),
        [_n(4, 3), _n(4, 3)],
        _call,
        {},
    ),
    "HuberLoss": (lambda nn, a: nn.HuberLoss(delta=0.5), [_n(4, 3), _n(4, 3)], _call, {}),
    "SmoothL1Loss": (lambda nn, a: nn.SmoothL1Loss(beta=0.5), [_n(4, 3), _n(4, 3)], _call, {}),
    "SoftMarginLoss": (
        lambda nn, a: nn.SoftMarginLoss(),
        [_n(4, 3)],
        lambda m, x, a: m(x[0], a(SIGN)),
        {},
    ),
    "MultiLabelSoftMarginLoss": (
        lambda nn, a: nn.MultiLabelSoftMarginLoss(weight=a(WEIGHT5)),
        [_n(4, 5)],
        lambda m, x, a: m(x[0], a((ML_TARGET > 1) * 1.0)),
        {},
    ),
    "MultiLabelMarginLoss": (
        lambda nn, a: nn.MultiLabelMarginLoss(),
        [_n(4, 5)],
        lambda m, x, a: m(x[0], a(ML_TARGET)),
        {},
    ),
    "MultiMarginLoss": (
        lambda nn, a: nn.MultiMarginLoss(p=2, margin=0.5, weight=a(WEIGHT5)),
        [_n(4, 5)],
        lambda m, x, a: m(x[0], a(IDX5)),
        {},
    ),
    "CosineEmbeddingLoss": (
        lambda nn, a: nn.CosineEmbeddingLoss(0.2),
        [_n(4, 6), _n(4, 6)],
        lambda m, x, a: m(x[0], x[1], a(PM1)),
        {},
    ),
    "MarginRankingLoss": (
        lambda nn, a: nn.MarginRankingLoss(0.1),
        [_n(4), _n(4)],
        lambda m, x, a: m(x[0], x[1], a(PM1)),
        {},
    ),
    "HingeEmbeddingLoss": (
        lambda nn, a: nn.HingeEmbeddingLoss(0.5),
        [_n(4)],
        lambda m, x, a: m(x[0], a(PM1)),
        {},
    ),
    "TripletMarginLoss": (
        lambda nn, a: nn.TripletMarginLoss(margin=2.0, p=1.5, swap=True),
        [_n(4, 6), _n(4, 6), _n(4, 6)],
        _call,
        {},
    ),
    "TripletMarginWithDistanceLoss": (
        lambda nn, a: nn.TripletMarginWithDistanceLoss(
            distance_function=nn.PairwiseDistance(p=3.0), margin=1.5
        ),
        [_n(4, 6), _n(4, 6), _n(4, 6)],
        _call,
        {},
    ),
    "PoissonNLLLoss": (
        lambda nn, a: nn.PoissonNLLLoss(full=True),
        [_n(4, 3), _pos(4, 3)],
        _call,
        {},
    ),
    "GaussianNLLLoss": (
        lambda nn, a: nn.GaussianNLLLoss(full=True),
        [_n(4, 3), _n(4, 3), _pos(4, 1)],
        _call,
        {},
    ),
    "CTCLoss": (
        lambda nn, a: nn.CTCLoss(blank=0, reduction="sum"),
        [_n(7, 2, 5)],
        lambda m, x, a: m(
            x[0].log_softmax(2),
            a(np.array([1, 2, 2, 3, 1])),
            a(np.array([7, 6])),
            a(np.array([3, 2])),
        ),
        {},
    ),
    "CosineSimilarity": (lambda nn, a: nn.CosineSimilarity(dim=0), [_n(4, 6), _n(4, 6)], _call, {}),
    "PairwiseDistance": (
        lambda nn, a: nn.PairwiseDistance(p=1.0, keepdim=True),
        [_n(4, 6), _n(4, 6)],
        _call,
        {},
    ),
    # pooling, padding, resampling
    "AdaptiveAvgPool3d": (
        lambda nn, a: nn.AdaptiveAvgPool3d((2, None, 3)),
        [_n(1, 2, 5, 6, 7)],
        _call,
        {},
    ),
    "AdaptiveMaxPool1d": (lambda nn, a: nn.AdaptiveMaxPool1d(4, True), [_n(2, 3, 10)], _call, {}),
    "AdaptiveMaxPool2d": (lambda nn, a: nn.AdaptiveMaxPool2d((3, 4)), [_n(2, 3, 7, 9)], _call, {}),
    "AdaptiveMaxPool3d": (lambda nn, a: nn.AdaptiveMaxPool3d(2), [_n(1, 2, 5, 6, 7)], _call, {}),
    "LPPool1d": (lambda nn, a: nn.LPPool1d(2, 3, 2), [_n(2, 3, 9)], _call, {}),
    "LPPool2d": (lambda nn, a: nn.LPPool2d(3, 2), [_pos(2, 3, 6, 7)], _call, {}),
    "LPPool3d": (lambda nn, a: nn.LPPool3d(2, 2), [_n(1, 2, 4, 4, 5)], _call, {}),
    "MaxUnpool2d": (
        lambda nn, a: nn.MaxUnpool2d(2),
        [_n(2, 3, 4, 4)],
        lambda m, x, a: m(x[0], a(_pool_indices()), output_size=(8, 9)),
        {},
    ),
    "FractionalMaxPool2d": (
        lambda nn, a: nn.FractionalMaxPool2d(2, output_size=(4, 5), _random_samples=a(SAMPLES)),
        [_n(2, 3, 9, 11)],
        _call,
        {},
    ),
    "FractionalMaxPool3d": (
        lambda nn, a: nn.FractionalMaxPool3d(
            2, output_ratio=(0.5, 0.6, 0.5), return_indices=True, _random_samples=a(SAMPLES3)
        ),
        [_n(2, 2, 7, 8, 9)],
        _call,
        {},
    ),
    "MaxUnpool1d": (
        lambda nn, a: nn.MaxUnpool1d(3, 2, 1),
        [_n(2, 3, 5)],
        lambda m, x, a: m(x[0], a(_pool_indices_1d())),
        {},
    ),
    "MaxUnpool3d": (
        lambda nn, a: nn.MaxUnpool3d(2),
        [_n(1, 2, 2, 3, 2)],
        lambda m, x, a: m(x[0], a(_pool_indices_3d()), output_size=(5, 6, 5)),
        {},
    ),
    "LinearCrossEntropyLoss": (
        lambda nn, a: nn.LinearCrossEntropyLoss(4, 5, bias=True, reduction="sum"),
        [_n(6, 4)],
        lambda m, x, a: m(x[0], a(np.array([0, 1, 4, 2, 2, 3]))),
        {},
    ),
    "NLLLoss2d": (
        lambda nn, a: nn.NLLLoss2d(),
        [_n(2, 5, 3, 2)],
        lambda m, x, a: m(x[0], a(IDX_2D)),
        {},
    ),
    "Fold": (lambda nn, a: nn.Fold((5, 6), (2, 3), padding=1, stride=2), [_n(2, 18, 9)], _call, {}),
    "Unfold": (
        lambda nn, a: nn.Unfold((2, 3), dilation=2, stride=(1, 2)),
        [_n(2, 3, 7, 9)],
        _call,
        {},
    ),
    "PixelShuffle": (lambda nn, a: nn.PixelShuffle(2), [_n(2, 8, 3, 4)], _call, {}),
    "PixelUnshuffle": (lambda nn, a: nn.PixelUnshuffle(2), [_n(2, 2, 4, 6)], _call, {}),
    "ChannelShuffle": (lambda nn, a: nn.ChannelShuffle(2), [_n(2, 6, 3, 4)], _call, {}),
    "UpsamplingNearest2d": (
        lambda nn, a: nn.UpsamplingNearest2d(scale_factor=2),
        [_n(2, 3, 4, 5)],
        _call,
        {},
    ),
    "UpsamplingBilinear2d": (
        lambda nn, a: nn.UpsamplingBilinear2d((7, 3)),
        [_n(2, 3, 4, 5)],
        _call,
        {},
    ),
    "ZeroPad1d": (lambda nn, a: nn.ZeroPad1d((2, -1)), [_n(2, 3, 5)], _call, {}),
    "ZeroPad2d": (lambda nn, a: nn.ZeroPad2d(2), [_n(2, 3, 5, 4)], _call, {}),
    "ZeroPad3d": (lambda nn, a: nn.ZeroPad3d((1, 0, 2, 1, 0, 1)), [_n(1, 2, 3, 4, 5)], _call, {}),
    "ConstantPad1d": (lambda nn, a: nn.ConstantPad1d(2, 3.5), [_n(2, 3, 5)], _call, {}),
    "ConstantPad2d": (
        lambda nn, a: nn.ConstantPad2d((1, 2, 0, 3), -1.0),
        [_n(2, 3, 5, 4)],
        _call,
        {},
    ),
    "ConstantPad3d": (lambda nn, a: nn.ConstantPad3d(1, 0.5), [_n(1, 2, 3, 4, 5)], _call, {}),
    "ReflectionPad1d": (lambda nn, a: nn.ReflectionPad1d((3, 1)), [_n(2, 3, 5)], _call, {}),
    "ReflectionPad2d": (lambda nn, a: nn.ReflectionPad2d(2), [_n(2, 3, 5, 4)], _call, {}),
    "ReflectionPad3d": (lambda nn, a: nn.ReflectionPad3d(1), [_n(1, 2, 3, 4, 5)], _call, {}),
    "ReplicationPad1d": (lambda nn, a: nn.ReplicationPad1d((3, 1)), [_n(2, 3, 5)], _call, {}),
    "ReplicationPad2d": (
        lambda nn, a: nn.ReplicationPad2d((1, 2, 3, 0)),
        [_n(2, 3, 5, 4)],
        _call,
        {},
    ),
    "ReplicationPad3d": (lambda nn, a: nn.ReplicationPad3d(2), [_n(1, 2, 3, 4, 5)], _call, {}),
    "CircularPad1d": (lambda nn, a: nn.CircularPad1d((3, 1)), [_n(2, 3, 5)], _call, {}),
    "CircularPad2d": (lambda nn, a: nn.CircularPad2d((1, 2, 3, 0)), [_n(2, 3, 5, 4)], _call, {}),
    "CircularPad3d": (lambda nn, a: nn.CircularPad3d(1), [_n(1, 2, 3, 4, 5)], _call, {}),
    # normalisation, embeddings, wrappers
    "LocalResponseNorm": (
        lambda nn, a: nn.LocalResponseNorm(3, 0.1, 0.6, 1.5),
        [_n(2, 5, 4, 3)],
        _call,
        {},
    ),
    "CrossMapLRN2d": (
        lambda nn, a: nn.CrossMapLRN2d(3, 0.1, 0.6, 1.5),
        [_n(2, 5, 4, 3)],
        _call,
        {},
    ),
    "SyncBatchNorm_eval": (
        lambda nn, a: nn.SyncBatchNorm(3),
        [_n(4, 3, 5)],
        _call,
        {"eval": True, "randomize": True},
    ),
    "Embedding": (
        lambda nn, a: nn.Embedding(10, 4, padding_idx=2, scale_grad_by_freq=True),
        [],
        lambda m, x, a: m(a(IDX10)),
        {},
    ),
    "Embedding_max_norm": (
        lambda nn, a: nn.Embedding(10, 4, max_norm=1.0, norm_type=3.0),
        [],
        lambda m, x, a: m(a(IDX10)),
        {"randomize_weight": 3.0},
    ),
    "EmbeddingBag": (
        lambda nn, a: nn.EmbeddingBag(10, 4, mode="sum"),
        [_n(9)],
        lambda m, x, a: m(a(BAG_IDX), a(BAG_OFF), per_sample_weights=x[0]),
        {},
    ),
    "EmbeddingBag_max": (
        lambda nn, a: nn.EmbeddingBag(10, 4, mode="max", padding_idx=3),
        [],
        lambda m, x, a: m(a(IDX10)),
        {},
    ),
    "Linear": (lambda nn, a: nn.Linear(3, 5), [_n(4, 3)], _call, {}),
    "Bilinear": (lambda nn, a: nn.Bilinear(3, 2, 4), [_n(5, 3), _n(5, 2)], _call, {}),
    "RMSNorm": (lambda nn, a: nn.RMSNorm((3, 4)), [_n(2, 3, 4)], _call, {}),
    "RMSNorm_eps": (
        lambda nn, a: nn.RMSNorm(4, eps=0.1, elementwise_affine=False),
        [_n(2, 3, 4)],
        _call,
        {},
    ),
    "Identity": (lambda nn, a: nn.Identity(54, unused="x"), [_n(4, 3)], _call, {}),
    "Dropout_eval": (lambda nn, a: nn.Dropout(0.3), [_n(4, 3)], _call, {"eval": True}),
    "AlphaDropout_eval": (lambda nn, a: nn.AlphaDropout(0.3), [_n(4, 3)], _call, {"eval": True}),
    "FeatureAlphaDropout_eval": (
        lambda nn, a: nn.FeatureAlphaDropout(0.3),
        [_n(4, 3, 2)],
        _call,
        {"eval": True},
    ),
    "DataParallel": (lambda nn, a: nn.DataParallel(nn.Linear(3, 2)), [_n(4, 3)], _call, {}),
    "AdaptiveLogSoftmaxWithLoss": (
        lambda nn, a: nn.AdaptiveLogSoftmaxWithLoss(8, 12, [4, 8], div_value=2.0, head_bias=True),
        [_n(4, 8)],
        lambda m, x, a: tuple(m(x[0], a(np.array([0, 5, 11, 3])))),
        {},
    ),
    # lazy modules: materialised by a first call, then compared as the layer they became
    "LazyLinear": (lambda nn, a: nn.LazyLinear(5), [_n(4, 3)], _call, {"lazy": True}),
    "LazyConv1d": (
        lambda nn, a: nn.LazyConv1d(4, 3, padding=1),
        [_n(2, 3, 7)],
        _call,
        {"lazy": True},
    ),
    "LazyConv2d": (
        lambda nn, a: nn.LazyConv2d(4, 3, stride=2),
        [_n(2, 3, 7, 6)],
        _call,
        {"lazy": True},
    ),
    "LazyConv3d": (lambda nn, a: nn.LazyConv3d(2, 2), [_n(1, 3, 4, 5, 4)], _call, {"lazy": True}),
    "LazyConvTranspose1d": (
        lambda nn, a: nn.LazyConvTranspose1d(4, 3, stride=2),
        [_n(2, 3, 5)],
        _call,
        {"lazy": True},
    ),
    "LazyConvTranspose2d": (
        lambda nn, a: nn.LazyConvTranspose2d(2, 3),
        [_n(2, 3, 4, 5)],
        _call,
        {"lazy": True},
    ),
    "LazyConvTranspose3d": (
        lambda nn, a: nn.LazyConvTranspose3d(2, 2),
        [_n(1, 3, 3, 4, 3)],
        _call,
        {"lazy": True},
    ),
    "LazyBatchNorm1d": (
        lambda nn, a: nn.LazyBatchNorm1d(),
        [_n(4, 3, 5)],
        _call,
        {"lazy": True, "eval": True},
    ),
    "LazyBatchNorm2d": (
        lambda nn, a: nn.LazyBatchNorm2d(),
        [_n(4, 3, 5, 2)],
        _call,
        {"lazy": True},
    ),
    "LazyBatchNorm3d": (
        lambda nn, a: nn.LazyBatchNorm3d(affine=False),
        [_n(2, 3, 2, 3, 2)],
        _call,
        {"lazy": True},
    ),
    "LazyInstanceNorm1d": (
        lambda nn, a: nn.LazyInstanceNorm1d(affine=True),
        [_n(4, 3, 5)],
        _call,
        {"lazy": True},
    ),
    "LazyInstanceNorm2d": (
        lambda nn, a: nn.LazyInstanceNorm2d(),
        [_n(2, 3, 5, 4)],
        _call,
        {"lazy": True},
    ),
    "LazyInstanceNorm3d": (
        lambda nn, a: nn.LazyInstanceNorm3d(),
        [_n(2, 3, 3, 4, 2)],
        _call,
        {"lazy": True},
    ),
}


def _pool_indices_1d():
    src = torch_ref.tensor(POOL_SRC[:, :, 0, :])
    return torch_ref.nn.functional.max_pool1d(src, 3, 2, 1, return_indices=True)[1].numpy()


def _pool_indices_3d():
    src = torch_ref.tensor(np.resize(POOL_SRC, (1, 2, 5, 6, 5)))
    return torch_ref.nn.functional.max_pool3d(src, 2, return_indices=True)[1].numpy()


def _pool_indices():
    return torch_ref.nn.functional.max_pool2d(torch_ref.tensor(POOL_SRC), 2, return_indices=True)[
        1
    ].numpy()


def _aux(lib, dtype):
    def convert(v):
        if callable(v):
            v = v()
        v = np.asarray(v)
        return lib.tensor(v.astype(dtype) if v.dtype.kind == "f" else v)

    return convert


def _outputs(y):
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _handle(module, name):
    obj = module
    for part in name.split("."):
        obj = obj[part] if isinstance(obj, dict) and part in obj else getattr(obj, part)
    return obj


def _copy_state(tm, cm, dtype):
    """Copy the real layer's parameters and buffers into chainrule's; return the parameter pairs."""
    pairs = []
    for name, t in itertools.chain(tm.named_parameters(), tm.named_buffers()):
        target = _handle(cm, name)
        value = t.detach().numpy().copy()  # torch updates its buffers in place
        assert tuple(target.shape) == tuple(value.shape), (name, target.shape, value.shape)
        value = value.astype(dtype) if value.dtype.kind == "f" else value
        target._set_value(backend.same_device(value, target._data))  # on the layer's device
        if isinstance(t, torch_ref.nn.Parameter):
            pairs.append((name, t, target))
    return pairs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_pytorch(name, dtype):
    make, makers, call, opts = CASES[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    torch_ref.manual_seed(0)
    tm = make(torch_ref.nn, _aux(torch_ref, dtype))
    cm = make(cnn, _aux(ct, dtype))
    xs = [np.asarray(m(rng), dtype=dtype) for m in makers]
    if dtype == np.float64:
        tm = tm.double()
    if opts.get("lazy"):
        call(tm, [torch_ref.tensor(x) for x in xs], _aux(torch_ref, dtype))
        call(cm, [ct.tensor(x) for x in xs], _aux(ct, dtype))
        assert type(cm).__name__ == type(tm).__name__, (type(cm), type(tm))
    if opts.get("randomize"):
        with torch_ref.no_grad():
            for b in tm.buffers():
                if b.dtype.is_floating_point:
                    b.copy_(torch_ref.tensor(rng.random(tuple(b.shape)) + 0.5))
    if opts.get("randomize_weight"):
        with torch_ref.no_grad():
            tm.weight.mul_(opts["randomize_weight"])  # some rows above max_norm
    if opts.get("eval"):
        tm.eval()
        cm.eval()
    pairs = _copy_state(tm, cm, dtype)
    tx = [torch_ref.tensor(x, requires_grad=True) for x in xs]
    cx = [ct.tensor(x, requires_grad=True) for x in xs]
    ty = _outputs(call(tm, tx, _aux(torch_ref, dtype)))
    cy = _outputs(call(cm, cx, _aux(ct, dtype)))
    tol = 2e-4 if dtype == np.float32 else 1e-9
    assert len(ty) == len(cy)
    for t, c in zip(ty, cy):
        assert tuple(t.shape) == tuple(c.shape), name
        assert t.detach().numpy().dtype == np.asarray(c).dtype, name
        np.testing.assert_allclose(
            np.asarray(c), t.detach().numpy(), rtol=tol, atol=tol, err_msg=name
        )
    # state after the call (running statistics)
    for bname, b in tm.named_buffers():
        np.testing.assert_allclose(
            np.asarray(_handle(cm, bname)), b.numpy(), rtol=tol, atol=tol, err_msg=bname
        )
    float_out = [i for i, t in enumerate(ty) if t.requires_grad]
    if not float_out:
        return
    i = float_out[-1]
    w = rng.standard_normal(ty[i].shape).astype(dtype)
    (ty[i] * torch_ref.tensor(w)).sum().backward()
    (cy[i] * ct.tensor(w)).sum().backward()
    grads = [(f"input {k}", t.grad, c.grad) for k, (t, c) in enumerate(zip(tx, cx))]
    grads += [(pname, t.grad, c.grad) for pname, t, c in pairs]
    for label, tg, cg in grads:
        if tg is None:
            assert cg is None or not np.asarray(cg).any(), (name, label)
            continue
        assert cg is not None, (name, label)
        np.testing.assert_allclose(
            np.asarray(cg), tg.numpy(), rtol=tol * 10, atol=tol * 10, err_msg=f"{name}: {label}"
        )


@pytest.mark.parametrize("name", sorted(n for n in CASES if not CASES[n][3].get("lazy")))
def test_layer_prints_as_pytorch(name):
    make = CASES[name][0]
    tm = make(torch_ref.nn, _aux(torch_ref, np.float32))
    cm = make(cnn, _aux(ct, np.float32))
    assert repr(cm) == repr(tm)


def test_sync_batch_norm_in_training_is_batch_norm():
    x = np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32)
    ref = torch_ref.nn.BatchNorm1d(3, momentum=None)
    ours = cnn.SyncBatchNorm(3, momentum=None)
    for _ in range(2):
        y_ref = ref(torch_ref.tensor(x)).detach().numpy()
        y = np.asarray(ours(ct.tensor(x)))
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ours.running_var), ref.running_var.numpy(), rtol=1e-5)
    assert int(ours.num_batches_tracked.item()) == 2
    assert cnn.SyncBatchNorm.convert_sync_batchnorm(ours) is ours


def test_random_layers_draw_in_training_and_are_the_identity_in_evaluation():
    x = ct.ones(200, 50)
    for layer in (cnn.Dropout(0.3), cnn.AlphaDropout(0.3), cnn.FeatureAlphaDropout(0.3)):
        layer.train()
        assert (np.asarray(layer(x)) != 1).any(), type(layer).__name__
        layer.eval()
        assert (np.asarray(layer(x)) == 1).all(), type(layer).__name__
    rrelu = cnn.RReLU(0.1, 0.3)
    y = -np.asarray(rrelu(-x))
    assert 0.1 <= y.min() < y.max() <= 0.3
    pool = cnn.FractionalMaxPool2d(2, output_ratio=0.5)
    assert pool(ct.ones(2, 3, 8, 10)).shape == (2, 3, 4, 5)


def test_submodules_exist_with_pytorch_names():
    import chainrule.torch.nn.attention as attention

    with attention.sdpa_kernel(attention.SDPBackend.MATH):
        y = cnn.functional.scaled_dot_product_attention(
            ct.ones(1, 2, 3), ct.ones(1, 2, 3), ct.ones(1, 2, 3)
        )
    assert y.shape == (1, 2, 3)
    assert cnn.parameter.Parameter is cnn.Parameter
    assert cnn.modules.Conv2d is cnn.Conv2d and cnn.modules.ELU is cnn.ELU
    assert cnn.parallel.DataParallel is cnn.DataParallel
    assert cnn.common_types._size_2_t is not None
    assert cnn.factory_kwargs({"dtype": ct.float64}) == {"dtype": ct.float64}
    with pytest.raises(TypeError, match="unexpected kwargs"):
        cnn.factory_kwargs({"bad": 1})


@pytest.mark.parametrize(
    "call, kind, pattern",
    [
        (lambda: cnn.PReLU(3)(ct.ones(2, 4)), ValueError, r"prelu: .*\(3,\).*\(2, 4\)"),
        (lambda: cnn.Softmax2d()(ct.ones(2, 3)), ValueError, r"Softmax2d: .*\(2, 3\)"),
        (lambda: cnn.MultiMarginLoss(p=3), ValueError, "p == 1 and p == 2"),
        (lambda: cnn.TripletMarginLoss(margin=0.0), ValueError, "margin must be greater than 0"),
        (lambda: cnn.ZeroPad2d((1, 2, 3)), ValueError, r"ZeroPad2d: padding must be"),
        (
            lambda: cnn.SyncBatchNorm(4)(ct.ones(2, 3, 5)),
            ValueError,
            r"SyncBatchNorm: .*\(2, 3, 5\)",
        ),
        (
            lambda: cnn.CrossMapLRN2d(3)(ct.ones(2, 3, 5)),
            ValueError,
            r"CrossMapLRN2d: .*\(2, 3, 5\)",
        ),
        (lambda: cnn.AdaptiveLogSoftmaxWithLoss(8, 10, [4, 12]), ValueError, "cutoffs"),
        (lambda: cnn.Embedding(5, 2, padding_idx=7), ValueError, "padding_idx 7"),
        (lambda: cnn.FractionalMaxPool2d(2), ValueError, "output size, or a pooling ratio"),
        (lambda: cnn.Fold((4, 4), 2)(ct.ones(1, 3, 9)), ValueError, r"fold: .*\(1, 3, 9\)"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, kind, pattern):
    with pytest.raises(kind, match=pattern):
        call()


def _params(fn):
    import inspect

    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


_BREADTH_CLASSES = sorted(
    n
    for m in (cnn._activations, cnn._losses, cnn._misc, cnn._pool_pad)
    for n in m.__all__
    if isinstance(getattr(torch_ref.nn, n, None), type)
)


@pytest.mark.parametrize("name", _BREADTH_CLASSES)
def test_constructor_has_pytorch_signature(name):
    assert _params(getattr(cnn, name).__init__) == _params(getattr(torch_ref.nn, name).__init__)


def _warnings_of(call):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return sorted((w.category.__name__, str(w.message)[:60]) for w in caught)


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_warns_like_pytorch(name):
    make, makers, call, opts = CASES[name]
    rng = np.random.default_rng(0)
    xs = [np.asarray(m(rng), dtype=np.float32) for m in makers]

    def run(lib, nn):
        layer = make(nn, _aux(lib, np.float32))
        if opts.get("eval"):
            layer.eval()
        call(layer, [lib.tensor(x) for x in xs], _aux(lib, np.float32))

    assert _warnings_of(lambda: run(ct, cnn)) == _warnings_of(lambda: run(torch_ref, torch_ref.nn))


def test_nn_modules_submodules_hold_pytorchs_names():
    import importlib
    import pkgutil

    import torch.nn.modules as ref_modules

    for info in pkgutil.iter_modules(ref_modules.__path__):
        ref = importlib.import_module(f"torch.nn.modules.{info.name}")
        names = [n for n in getattr(ref, "__all__", []) if hasattr(cnn, n)]
        if not names:
            continue
        ours = importlib.import_module(f"chainrule.torch.nn.modules.{info.name}")
        for name in names:
            assert getattr(ours, name) is getattr(cnn, name), (info.name, name)


def test_nn_modules_utils_and_loss_bases_behave_as_pytorch():
    from torch.nn.modules import utils as ref_utils

    from chainrule.torch.nn.modules import utils
    from chainrule.torch.nn.modules.loss import _WeightedLoss

    for name in ("_single", "_pair", "_triple", "_quadruple"):
        for value in (3, (1, 2)):
            assert getattr(utils, name)(value) == getattr(ref_utils, name)(value)
    assert utils._reverse_repeat_tuple((1, 2), 2) == ref_utils._reverse_repeat_tuple((1, 2), 2)
    state, ref_state = {"module.a": 1, "b": 2}, {"module.a": 1, "b": 2}
    utils.consume_prefix_in_state_dict_if_present(state, "module.")
    ref_utils.consume_prefix_in_state_dict_if_present(ref_state, "module.")
    assert state == ref_state

    class Weighted(_WeightedLoss):
        def forward(self, x, y):
            return ((x - y) ** 2 * self.weight).sum()

    loss = Weighted(ct.tensor([1.0, 2.0]), reduction="sum")
    assert loss.reduction == "sum" and list(loss.state_dict()) == ["weight"]
    assert float(loss(ct.ones(2), ct.zeros(2)).item()) == 3.0
    assert repr(loss) == "Weighted()"


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][3].get("lazy")))
def test_lazy_layer_materialises_from_a_state_dict(name):
    """Loading a state into an unused lazy layer infers its input features, as PyTorch does."""
    make, makers, call, _ = CASES[name]
    rng = np.random.default_rng(6)
    xs = [np.asarray(m(rng), dtype=np.float32) for m in makers]
    ref = make(torch_ref.nn, _aux(torch_ref, np.float32))
    call(ref, [torch_ref.tensor(x) for x in xs], _aux(torch_ref, np.float32))  # materialise
    ours = make(cnn, _aux(ct, np.float32))
    ours.load_state_dict({k: ct.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    assert type(ours).__name__ == type(ref).__name__
    ref.eval()
    ours.eval()
    want = call(ref, [torch_ref.tensor(x) for x in xs], _aux(torch_ref, np.float32))
    got = call(ours, [ct.tensor(x) for x in xs], _aux(ct, np.float32))
    np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-5, atol=1e-5)
