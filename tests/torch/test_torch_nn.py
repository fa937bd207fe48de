"""chainrule.torch.nn: the same classes as chainrule.nn, PyTorch's layouts, F, init, ModuleList."""

import warnings

import numpy as np
import pytest

import chainrule.nn as cnn
import chainrule.torch as ct
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
from chainrule.torch.nn import _layers


def _torch():
    return pytest.importorskip("torch")


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _close(ours, theirs, tol=1e-5):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=tol, atol=tol)


# -- one house ---------------------------------------------------------------------------------


def test_every_class_is_a_chainrule_nn_class_or_a_thin_subclass():
    classes = {n: getattr(nn, n) for n in dir(nn) if isinstance(getattr(nn, n), type)}
    assert {"Linear", "Sequential", "ReLU", "CrossEntropyLoss", "Conv2d", "Flatten"} <= set(classes)
    for name, cls in classes.items():
        if issubclass(cls, Exception):
            continue
        if name in nn._ADAPTED and name not in _layers.__all__:
            continue  # PyTorch's forms, checked in tests/torch/test_nn_layers_breadth.py
        assert issubclass(cls, cnn.Module), name
        if name in _layers.__all__:
            continue
        # a thin subclass that only adds PyTorch's meanings (tests/torch/test_module_state.py)
        assert cls.__bases__[0] is getattr(cnn, name) or cls is getattr(cnn, name), name
    for name in ("MSELoss", "BCELoss"):
        assert getattr(nn, name) is getattr(cnn, name)
    assert issubclass(nn.Linear, cnn.Linear) and issubclass(nn.Embedding, cnn.Embedding)
    assert nn.Parameter is cnn.Parameter


def test_submodules_are_the_same_objects():
    import chainrule.data as data
    import chainrule.optimizers as optimizers

    assert ct.optim.SGD is optimizers.SGD and ct.optim.Adam is optimizers.Adam
    assert ct.optim.lr_scheduler.StepLR is optimizers.lr_scheduler.StepLR
    # the loader and the shuffling sampler are chainrule.data's, drawing as PyTorch's
    assert issubclass(ct.utils.data.DataLoader, data.DataLoader)
    assert issubclass(ct.utils.data.RandomSampler, data.RandomSampler)
    assert ct.utils.data.TensorDataset is data.TensorDataset
    assert ct.nn.functional is F and ct.nn.utils.clip_grad_norm_ is cnn.utils.clip_grad_norm_
    from chainrule.torch.optim.lr_scheduler import StepLR

    assert StepLR is optimizers.lr_scheduler.StepLR


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN", "MultiheadAttention", "Transformer"])
def test_layers_with_other_pytorch_semantics_are_pytorchs_own(name):
    # PyTorch's forms (tests/torch/test_rnn_layers.py, test_transformer_layers.py), not
    # chainrule.nn's MLX classes under PyTorch's names
    cls = getattr(nn, name)
    assert cls.__module__.startswith("chainrule.torch.nn.")
    assert cls is not getattr(cnn, name, None)
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        nn.Nonsense  # noqa: B018


def test_linear_takes_pytorch_argument_names_and_matches_pytorch():
    torch = _torch()
    ours = nn.Linear(in_features=4, out_features=3)
    ref = torch.nn.Linear(4, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.numpy()))
        ref.bias.copy_(torch.tensor(ours.bias.numpy()))
    x = _rand(5, 4)
    _close(ours(ct.tensor(x)), ref(torch.tensor(x)))
    bound = 1 / np.sqrt(4)  # PyTorch's default initialisation range
    assert np.abs(nn.Linear(4, 300).weight.numpy()).max() <= bound


# -- layers with PyTorch's layouts, against PyTorch --------------------------------------------


def _copy_conv(ours, ref, transpose=False):
    import torch

    w = ours.weight.numpy()  # PyTorch's layout: (C_out, C_in / g, *K), transposed (C_in, ...)
    assert w.shape == tuple(ref.weight.shape)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(np.ascontiguousarray(w)))
        if ours.get("bias") is not None:
            ref.bias.copy_(torch.tensor(_rand(*ours.bias.shape, seed=3)))
    if ours.get("bias") is not None:
        ours.bias = ct.tensor(_rand(*ours.bias.shape, seed=3))


CONV_CASES = [
    ("Conv1d", (3, 4, 3), {}, (2, 3, 9)),
    ("Conv1d", (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2}, (2, 4, 10)),
    ("Conv2d", (3, 5, 3), {"padding": 1}, (2, 3, 6, 7)),
    ("Conv2d", (4, 4, (2, 3)), {"stride": (2, 1), "dilation": 2, "groups": 4}, (1, 4, 9, 8)),
    ("Conv2d", (3, 2, 3), {"bias": False}, (3, 5, 5)),  # unbatched input
    ("Conv3d", (2, 3, 2), {"padding": 1}, (1, 2, 4, 5, 3)),
    ("ConvTranspose1d", (3, 2, 3), {"stride": 2}, (2, 3, 5)),
    ("ConvTranspose2d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 3, 4, 4)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", CONV_CASES)
def test_convolutions_take_nchw_and_match_pytorch(name, args, kwargs, shape):
    torch = _torch()
    ours, ref = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert isinstance(ours, getattr(cnn, name))
    _copy_conv(ours, ref, transpose=name.startswith("ConvTranspose"))
    x = _rand(*shape)
    xo, xt = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    _close(yo, yt, 1e-4)
    g = _rand(*yt.shape, seed=1)
    (yo * ct.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    _close(xo.grad, xt.grad, 1e-4)


POOL_CASES = [
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1}, (2, 3, 10)),
    ("MaxPool2d", (2,), {}, (2, 3, 6, 6)),
    ("MaxPool2d", ((3, 2),), {"stride": 1, "padding": (1, 1)}, (3, 5, 6)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1}, (2, 2, 7, 6)),
    ("AvgPool1d", (2,), {}, (1, 4, 8)),
    ("MaxPool3d", (2,), {}, (1, 2, 4, 4, 4)),
    ("AdaptiveAvgPool2d", ((1, 1),), {}, (2, 3, 5, 7)),
    ("AdaptiveAvgPool2d", ((2, 3),), {}, (2, 3, 5, 7)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (1, 2, 6, 4)),
    ("AdaptiveAvgPool1d", (3,), {}, (2, 3, 8)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", POOL_CASES)
def test_pooling_takes_nchw_and_matches_pytorch(name, args, kwargs, shape):
    torch = _torch()
    ours, ref = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    x = _rand(*shape)
    xo, xt = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    _close(yo, yt)
    yo.sum().backward()
    yt.sum().backward()
    _close(xo.grad, xt.grad)


def test_pooling_refuses_an_input_of_the_wrong_rank():
    # ceil_mode, dilation... are supported (tests/torch/test_layer_gaps.py)
    with pytest.raises(ValueError, match=r"channels-first input \(N, C, H, W\)"):
        nn.MaxPool2d(2)(ct.zeros(4, 4))


NORM_CASES = [
    ("BatchNorm1d", (4,), (8, 4)),
    ("BatchNorm1d", (3,), (5, 3, 6)),
    ("BatchNorm2d", (3,), (4, 3, 5, 5)),
    ("BatchNorm3d", (2,), (3, 2, 3, 2, 2)),
    ("GroupNorm", (2, 4), (3, 4, 5, 5)),
    ("GroupNorm", (3, 6), (2, 6)),
    ("InstanceNorm1d", (3,), (2, 3, 7)),
    ("InstanceNorm2d", (3,), (2, 3, 4, 5)),
    ("LayerNorm", (5,), (3, 4, 5)),
    ("LayerNorm", ((4, 5),), (3, 4, 5)),
]


@pytest.mark.parametrize("name, args, shape", NORM_CASES)
def test_normalisation_matches_pytorch_in_training_and_evaluation(name, args, shape):
    torch = _torch()
    ours, ref = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    for step in range(3):
        x = _rand(*shape, seed=step) * 3 + 1
        _close(ours(ct.tensor(x)), ref(torch.tensor(x)), 1e-4)
    if name.startswith("BatchNorm"):
        _close(ours.running_mean, ref.running_mean, 1e-5)
        _close(ours.running_var, ref.running_var, 1e-5)  # unbiased, as PyTorch keeps it
    ours.eval()
    ref.eval()
    x = _rand(*shape, seed=9)
    _close(ours(ct.tensor(x)), ref(torch.tensor(x)), 1e-4)


def test_batchnorm_gradients_match_pytorch():
    torch = _torch()
    ours, ref = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    x = _rand(4, 3, 2, 2)
    xo, xt = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = _rand(4, 3, 2, 2, seed=5)
    (ours(xo) * ct.tensor(g)).sum().backward()
    (ref(xt) * torch.tensor(g)).sum().backward()
    _close(xo.grad, xt.grad, 1e-4)


def test_upsample_and_shape_layers_match_pytorch():
    torch = _torch()
    x = _rand(2, 3, 4, 5)
    cases = [
        (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
        (
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        ),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
        (nn.LogSoftmax(0), torch.nn.LogSoftmax(0)),
        (nn.Softmin(dim=-1), torch.nn.Softmin(dim=-1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (
            nn.Sequential(nn.Flatten(2), nn.Unflatten(2, (5, 4))),
            torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Unflatten(2, (5, 4))),
        ),
    ]
    for ours, ref in cases:
        _close(ours(ct.tensor(x)), ref(torch.tensor(x)), 1e-5)


def test_channel_dropout_drops_whole_channels_in_training_only():
    ct.manual_seed(0)
    layer = nn.Dropout2d(0.5)
    y = layer(ct.ones(4, 16, 3, 3)).numpy()
    per_channel = y.reshape(4, 16, -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # a channel is all 0 or all 2
    assert 0 < (per_channel[..., 0] == 0).mean() < 1
    layer.eval()
    assert (layer(ct.ones(2, 3, 2, 2)).numpy() == 1).all()


# -- nn.functional -----------------------------------------------------------------------------

FUNCTIONAL = [
    ("relu", lambda f, x: f.relu(x)),
    ("relu6", lambda f, x: f.relu6(x * 4)),
    ("leaky_relu", lambda f, x: f.leaky_relu(x, 0.2)),
    ("elu", lambda f, x: f.elu(x, alpha=0.5)),
    ("celu", lambda f, x: f.celu(x)),
    ("selu", lambda f, x: f.selu(x)),
    ("gelu", lambda f, x: f.gelu(x)),
    ("gelu_tanh", lambda f, x: f.gelu(x, approximate="tanh")),
    ("silu", lambda f, x: f.silu(x)),
    ("mish", lambda f, x: f.mish(x)),
    ("hardswish", lambda f, x: f.hardswish(x * 3)),
    ("hardtanh", lambda f, x: f.hardtanh(x, -0.5, 0.5)),
    ("sigmoid", lambda f, x: f.sigmoid(x)),
    ("tanh", lambda f, x: f.tanh(x)),
    ("softsign", lambda f, x: f.softsign(x)),
    ("logsigmoid", lambda f, x: f.logsigmoid(x * 10)),
    ("softplus", lambda f, x: f.softplus(x)),
    ("softplus_beta", lambda f, x: f.softplus(x * 4, beta=2, threshold=5)),
    ("glu", lambda f, x: f.glu(x, dim=1)),
    ("softmax", lambda f, x: f.softmax(x, dim=1)),
    ("log_softmax", lambda f, x: f.log_softmax(x, dim=-1)),
    ("softmin", lambda f, x: f.softmin(x, dim=0)),
    ("normalize", lambda f, x: f.normalize(x)),
    ("normalize_p1", lambda f, x: f.normalize(x, p=1, dim=-1)),
    ("cosine_similarity", lambda f, x: f.cosine_similarity(x, x * x + 1)),
    ("layer_norm", lambda f, x: f.layer_norm(x, (4, 6))),
    ("pad", lambda f, x: f.pad(x, (1, 2))),
    ("pad_2d_value", lambda f, x: f.pad(x, (1, 0, 2, 1), value=3.0)),
    ("pad_replicate", lambda f, x: f.pad(x, (2, 1, 1, 1), mode="replicate")),
    ("max_pool1d", lambda f, x: f.max_pool1d(x, 2)),
    ("avg_pool1d", lambda f, x: f.avg_pool1d(x, 3, stride=1, padding=1)),
    ("max_pool2d", lambda f, x: f.max_pool2d(x.reshape(3, 1, 4, 6), 2)),
    ("avg_pool2d", lambda f, x: f.avg_pool2d(x.reshape(3, 1, 4, 6), (2, 3))),
    ("adaptive_avg_pool2d", lambda f, x: f.adaptive_avg_pool2d(x.reshape(3, 1, 4, 6), (3, 4))),
    ("adaptive_avg_pool1d", lambda f, x: f.adaptive_avg_pool1d(x, 4)),
    ("dropout_eval", lambda f, x: f.dropout(x, 0.3, training=False)),
]


@pytest.mark.parametrize("name, f", FUNCTIONAL, ids=[c[0] for c in FUNCTIONAL])
def test_functional_matches_pytorch_values_and_gradients(name, f):
    torch = _torch()
    tf = torch.nn.functional
    x = _rand(3, 4, 6)
    xo, xt = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = f(F, xo), f(tf, xt)
    _close(yo, yt, 1e-5)
    g = _rand(*yt.shape, seed=1)
    (yo * ct.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    _close(xo.grad, xt.grad, 1e-4)


def test_functional_layers_with_pytorch_weight_layouts():
    torch = _torch()
    tf = torch.nn.functional
    x, w, b = _rand(2, 4, 7, 6), _rand(6, 2, 3, 3, seed=1), _rand(6, seed=2)
    _close(
        F.conv2d(ct.tensor(x), ct.tensor(w), ct.tensor(b), stride=2, padding=1, groups=2),
        tf.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1, groups=2),
        1e-4,
    )
    x1, w1 = _rand(2, 3, 9), _rand(5, 3, 2, seed=4)
    _close(
        F.conv1d(ct.tensor(x1), ct.tensor(w1), padding="valid", dilation=2),
        tf.conv1d(torch.tensor(x1), torch.tensor(w1), padding="valid", dilation=2),
        1e-4,
    )
    xl, wl, bl = _rand(5, 3), _rand(4, 3, seed=1), _rand(4, seed=2)
    _close(
        F.linear(ct.tensor(xl), ct.tensor(wl), ct.tensor(bl)),
        tf.linear(torch.tensor(xl), torch.tensor(wl), torch.tensor(bl)),
    )
    idx = np.array([[0, 2], [1, 1]])
    _close(
        F.embedding(ct.tensor(idx), ct.tensor(wl)),
        tf.embedding(torch.tensor(idx), torch.tensor(wl)),
    )
    with pytest.raises(ValueError, match="linear"):
        F.linear(ct.zeros(2, 5), ct.zeros(4, 3))


def test_one_hot_matches_pytorch():
    torch = _torch()
    labels = np.array([[0, 3], [2, 1]])
    for n in (-1, 6):
        ours = F.one_hot(ct.tensor(labels), n)
        theirs = torch.nn.functional.one_hot(torch.tensor(labels), n)
        assert ours.dtype == ct.int64
        _close(ours, theirs)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.one_hot(ct.tensor([0, 3]), 3)


LOSSES = [
    ("cross_entropy", lambda f, t, x, y, p: f.cross_entropy(x, y)),
    ("cross_entropy_sum", lambda f, t, x, y, p: f.cross_entropy(x, y, reduction="sum")),
    ("cross_entropy_smooth", lambda f, t, x, y, p: f.cross_entropy(x, y, label_smoothing=0.1)),
    ("cross_entropy_ignore", lambda f, t, x, y, p: f.cross_entropy(x, y, ignore_index=2)),
    (
        "cross_entropy_weight",
        lambda f, t, x, y, p: f.cross_entropy(x, y, weight=t([1.0, 2.0, 0.5, 1.5])),
    ),
    ("cross_entropy_probs", lambda f, t, x, y, p: f.cross_entropy(x, p)),
    ("nll_loss", lambda f, t, x, y, p: f.nll_loss(f.log_softmax(x, dim=1), y)),
    ("mse_loss", lambda f, t, x, y, p: f.mse_loss(x, p)),
    ("l1_loss", lambda f, t, x, y, p: f.l1_loss(x, p, reduction="none")),
    ("smooth_l1_loss", lambda f, t, x, y, p: f.smooth_l1_loss(x, p * 3, beta=0.5)),
    ("huber_loss", lambda f, t, x, y, p: f.huber_loss(x, p * 3, delta=0.7)),
    ("bce", lambda f, t, x, y, p: f.binary_cross_entropy(f.sigmoid(x), p)),
    ("bce_logits", lambda f, t, x, y, p: f.binary_cross_entropy_with_logits(x, p)),
    (
        "bce_logits_pos_weight",
        lambda f, t, x, y, p: f.binary_cross_entropy_with_logits(
            x, p, pos_weight=t([1.0, 2.0, 3.0, 0.5])
        ),
    ),
    (
        "kl_div",
        lambda f, t, x, y, p: f.kl_div(f.log_softmax(x, dim=1), p, reduction="batchmean"),
    ),
]


@pytest.mark.parametrize("name, f", LOSSES, ids=[c[0] for c in LOSSES])
def test_functional_losses_match_pytorch(name, f):
    torch = _torch()
    x = _rand(5, 4)
    y = np.array([0, 3, 2, 1, 2])
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=5).astype(np.float32)
    xo, xt = ct.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo = f(F, ct.tensor, xo, ct.tensor(y), ct.tensor(p))
    lt = f(torch.nn.functional, torch.tensor, xt, torch.tensor(y), torch.tensor(p))
    _close(lo, lt, 1e-5)
    lo.sum().backward()
    lt.sum().backward()
    _close(xo.grad, xt.grad, 1e-5)


def test_cross_entropy_over_spatial_dimensions():
    torch = _torch()
    x = _rand(2, 3, 4, 5)
    y = np.random.default_rng(0).integers(0, 3, size=(2, 4, 5))
    _close(
        F.cross_entropy(ct.tensor(x), ct.tensor(y)),
        torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y)),
    )


def test_dropout_function_defaults_to_training():
    ct.manual_seed(1)
    x = ct.ones(1000)
    y = F.dropout(x, 0.25).numpy()
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.75).item()}
    assert 0.2 < (y == 0).mean() < 0.3
    assert F.dropout(x, 0.0) is x and (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.5)


def test_softmax_without_dim_uses_pytorch_implicit_choice_and_warns():
    x = ct.tensor(_rand(2, 3))
    with pytest.warns(UserWarning, match="(?i)implicit dimension"):
        y = F.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(1), 1, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.softmax(x, dim=0)


# -- nn.init -----------------------------------------------------------------------------------

INITS = [
    ("uniform_", lambda i, w: i.uniform_(w, -0.5, 0.5)),
    ("normal_", lambda i, w: i.normal_(w, 1.0, 0.1)),
    ("trunc_normal_", lambda i, w: i.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)),
    ("constant_", lambda i, w: i.constant_(w, 0.3)),
    ("ones_", lambda i, w: i.ones_(w)),
    ("zeros_", lambda i, w: i.zeros_(w)),
    ("eye_", lambda i, w: i.eye_(w)),
    ("xavier_uniform_", lambda i, w: i.xavier_uniform_(w)),
    ("xavier_normal_", lambda i, w: i.xavier_normal_(w, gain=2.0)),
    ("kaiming_uniform_", lambda i, w: i.kaiming_uniform_(w, a=np.sqrt(5))),
    ("kaiming_normal_", lambda i, w: i.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")),
    ("orthogonal_", lambda i, w: i.orthogonal_(w)),
]


BOUNDED_INITS = {"uniform_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_"}
BOUNDED_INITS |= {"xavier_uniform_", "kaiming_uniform_"}


@pytest.mark.parametrize("name, f", INITS, ids=[c[0] for c in INITS])
def test_init_functions_fill_in_place_with_pytorch_statistics(name, f):
    assert set(nn.init.__all__) >= {c[0] for c in INITS}
    layer = nn.Linear(400, 300)
    w = layer.weight
    before = w * 1  # recorded before: keeps the old values
    old = w.numpy()
    assert f(nn.init, w) is w
    assert layer.weight is w and w.is_leaf and w.requires_grad and w.dtype == ct.float32
    np.testing.assert_array_equal(before.numpy(), old)
    ours = w.numpy()
    torch = pytest.importorskip("torch")
    ref = torch.empty(300, 400)
    f(torch.nn.init, ref)
    ref = ref.numpy()
    np.testing.assert_allclose(ours.mean(), ref.mean(), atol=0.02 * max(1, abs(ref.mean())))
    np.testing.assert_allclose(ours.std(), ref.std(), rtol=0.05, atol=1e-6)
    # Quantiles, not extremes: the min and max of 120,000 normal draws vary by 20% between runs.
    q = [1, 10, 50, 90, 99]
    spread = max(ref.std(), 1e-6)
    np.testing.assert_allclose(
        np.percentile(ours, q), np.percentile(ref, q), rtol=0.05, atol=0.05 * spread
    )
    if name in BOUNDED_INITS:  # bounded distributions: the extremes are the bounds
        np.testing.assert_allclose(
            [ours.min(), ours.max()], [ref.min(), ref.max()], rtol=0.02, atol=0.01 * spread
        )


def test_init_is_reproducible_and_accepts_generators():
    w = ct.zeros(3, 4)
    ct.manual_seed(0)
    a = nn.init.normal_(w).numpy()
    ct.manual_seed(0)
    np.testing.assert_array_equal(nn.init.normal_(w).numpy(), a)
    g1, g2 = ct.Generator().manual_seed(5), ct.Generator().manual_seed(5)
    np.testing.assert_array_equal(
        nn.init.uniform_(w, generator=g1).numpy(),
        nn.init.uniform_(ct.zeros(3, 4), generator=g2).numpy(),
    )
    q = nn.init.orthogonal_(ct.zeros(3, 5)).numpy()
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-5)


def test_calculate_gain_and_dirac_match_pytorch():
    torch = _torch()
    for nl, param in [
        ("linear", None),
        ("relu", None),
        ("tanh", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", None),
        ("selu", None),
        ("sigmoid", None),
        ("conv2d", None),
    ]:
        assert nn.init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param)
        )
    w = ct.zeros(4, 2, 3, 3)
    ref = torch.empty(4, 2, 3, 3)
    _close(nn.init.dirac_(w, groups=2), torch.nn.init.dirac_(ref, groups=2))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("banana")


# -- containers --------------------------------------------------------------------------------


class _Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
        self.layers.append(nn.Linear(3, 2))
        self.heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)})

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return self.heads["a"](x) + self.heads["b"](x)


def test_module_list_and_dict_register_their_parameters():
    model = _Stack()
    names = [n for n, _ in model.named_parameters()]
    assert "layers.0.weight" in names and "layers.2.bias" in names and "heads.b.weight" in names
    assert len(names) == 10 and len(model.layers) == 3
    assert isinstance(model.layers[:2], nn.ModuleList)
    with pytest.raises(TypeError, match="not callable"):
        model.layers(ct.zeros(1, 3))
    opt = ct.optim.SGD(model.parameters(), lr=0.1)
    x, y = ct.randn(8, 3), ct.randn(8, 1)
    before = model.layers[0].weight.numpy()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    assert not np.array_equal(model.layers[0].weight.numpy(), before)
    assert set(model.state_dict()) == set(names)
