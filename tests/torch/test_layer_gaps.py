"""Gaps in ``chainrule.torch.nn``'s layers (issue 15), each checked against real PyTorch:
pooling options, convolution padding, Upsample, the norms' ``bias=`` and running statistics,
``Container``, every class's default ``repr``, KLDivLoss's warning, the ELU family at 0."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule.torch as torch
import chainrule.torch.nn.functional as F

torch_ref = pytest.importorskip("torch")


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _close(ours, ref, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(
        np.asarray(ours.detach().numpy()), ref.detach().numpy(), rtol=tol, atol=tol
    )


def _copy_state(ours, ref) -> None:
    """Give ``ours`` the parameters and buffers of ``ref``."""
    ours.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})


def _compare(ours, ref, x: np.ndarray, tol: float = 1e-5) -> None:
    """Same output, input gradient and parameter gradients as PyTorch."""
    xo, xt = torch.tensor(x, requires_grad=True), torch_ref.tensor(x, requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    _close(yo, yt, tol)
    weights = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32)
    (yo * torch.tensor(weights)).sum().backward()
    (yt * torch_ref.tensor(weights)).sum().backward()
    _close(xo.grad, xt.grad, tol)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        _close(p.grad, ref_params[name].grad, tol)


# -- pooling -----------------------------------------------------------------------------------

POOLS = [
    ("MaxPool1d", (3,), {}, (2, 3, 10)),
    ("MaxPool1d", (3, 2, 1, 2), {"ceil_mode": True}, (2, 3, 11)),
    ("MaxPool2d", (3, 2, 1, 2, False, True), {}, (2, 3, 9, 8)),
    ("MaxPool2d", ((2, 3),), {"dilation": (2, 1)}, (3, 7, 8)),
    ("MaxPool3d", (2, 1, 1), {"ceil_mode": True}, (1, 2, 4, 5, 4)),
    ("AvgPool1d", (3, 2, 1, True, False), {}, (2, 3, 10)),
    ("AvgPool2d", (3, 2, 1, True, False), {}, (2, 3, 9, 8)),
    ("AvgPool2d", (3, 1, 1, True, False, 2), {}, (2, 3, 7, 6)),
    ("AvgPool3d", (2,), {"ceil_mode": True, "divisor_override": 3}, (1, 2, 5, 4, 3)),
    ("AvgPool3d", (3, 2, 1), {"count_include_pad": False}, (1, 2, 5, 4, 6)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", POOLS)
def test_pooling_options_match_pytorch(name, args, kwargs, shape):
    ours = getattr(torch.nn, name)(*args, **kwargs)
    ref = getattr(torch_ref.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(ref)
    _compare(ours, ref, _rand(*shape))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_return_indices_matches_pytorch(nd):
    shape = (2, 3) + (7, 6, 5)[:nd]
    name = f"MaxPool{nd}d"
    ours = getattr(torch.nn, name)(3, 2, 1, return_indices=True, ceil_mode=True)
    ref = getattr(torch_ref.nn, name)(3, 2, 1, return_indices=True, ceil_mode=True)
    x = _rand(*shape)
    (yo, io), (yt, it) = ours(torch.tensor(x)), ref(torch_ref.tensor(x))
    _close(yo, yt)
    np.testing.assert_array_equal(io.numpy(), it.numpy())
    assert str(io.dtype).rsplit(".", 1)[-1] == str(it.dtype).rsplit(".", 1)[-1] == "int64"
    unpool = getattr(torch_ref.nn, f"MaxUnpool{nd}d")(3, 2, 1)
    ours_unpool = getattr(torch.nn, f"MaxUnpool{nd}d")(3, 2, 1)
    _close(ours_unpool(yo, io, output_size=shape), unpool(yt, it, output_size=shape))


def test_pooling_attributes_are_pytorchs():
    for name, args in (("MaxPool2d", (3,)), ("AvgPool1d", (2, None, 1)), ("AvgPool3d", (2,))):
        ours, ref = getattr(torch.nn, name)(*args), getattr(torch_ref.nn, name)(*args)
        for key in ("kernel_size", "stride", "padding", "ceil_mode"):
            assert getattr(ours, key) == getattr(ref, key), (name, key)
    assert torch.nn.MaxPool2d(2).return_indices is False
    assert torch.nn.AvgPool2d(2, divisor_override=3).divisor_override == 3
    assert not hasattr(torch_ref.nn.AvgPool1d(2), "divisor_override")
    with pytest.raises(TypeError):
        torch.nn.AvgPool1d(2, 2, 0, False, True, 2)  # PyTorch's AvgPool1d has no divisor


# -- activations at 0 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [("elu", {}), ("elu", {"alpha": 0.5}), ("celu", {}), ("celu", {"alpha": 0.5}), ("selu", {})],
)
def test_elu_family_gradient_at_zero_is_pytorchs(name, kwargs):
    values = np.array([-1.0, 0.0, 0.0, 2.0], np.float32)
    xo = torch.tensor(values, requires_grad=True)
    xt = torch_ref.tensor(values, requires_grad=True)
    getattr(F, name)(xo, **kwargs).sum().backward()
    getattr(torch_ref.nn.functional, name)(xt, **kwargs).sum().backward()
    _close(xo.grad, xt.grad)
    assert float(xo.grad[1]) != 0.0  # the exponential branch, not a zero
    module = {"elu": "ELU", "celu": "CELU", "selu": "SELU"}[name]
    xo = torch.zeros(1, requires_grad=True)
    xt = torch_ref.zeros(1, requires_grad=True)
    getattr(torch.nn, module)(**kwargs)(xo).sum().backward()
    getattr(torch_ref.nn, module)(**kwargs)(xt).sum().backward()
    _close(xo.grad, xt.grad)


def test_mlx_style_activations_keep_their_gradient_at_zero():
    import chainrule.core as mx
    import chainrule.nn as cnn

    # chainrule.nn follows MLX there (celu's gradient at 0 is 0), not torch.nn.functional
    for fn, expected in ((cnn.elu, 1.0), (cnn.celu, 0.0), (cnn.selu, 1.7581)):
        grad = mx.grad(lambda x, fn=fn: mx.sum(fn(x)))(mx.zeros((1,)))
        assert float(grad[0]) == pytest.approx(expected, abs=1e-4), fn.__name__


# -- losses ------------------------------------------------------------------------------------


def test_kl_div_loss_warns_for_mean_as_pytorch():
    x, t = _rand(2, 3), np.abs(_rand(2, 3, seed=1))
    for reduction in ("mean", "batchmean", "sum", "none"):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            ours = torch.nn.KLDivLoss(reduction=reduction)(torch.tensor(x), torch.tensor(t))
        with warnings.catch_warnings(record=True) as expected:
            warnings.simplefilter("always")
            ref = torch_ref.nn.KLDivLoss(reduction=reduction)(
                torch_ref.tensor(x), torch_ref.tensor(t)
            )
        _close(ours, ref)
        assert [str(w.message) for w in got] == [str(w.message) for w in expected], reduction
        assert [w.category for w in got] == [w.category for w in expected]
        with warnings.catch_warnings(record=True) as functional:
            warnings.simplefilter("always")
            F.kl_div(torch.tensor(x), torch.tensor(t), reduction=reduction)
        assert [str(w.message) for w in functional] == [str(w.message) for w in expected]
    assert repr(torch.nn.KLDivLoss(reduction="batchmean", log_target=True)) == "KLDivLoss()"


@pytest.mark.parametrize(
    "name", ["MSELoss", "L1Loss", "BCELoss", "CrossEntropyLoss", "NLLLoss", "HuberLoss"]
)
def test_loss_repr_is_pytorchs(name):
    assert repr(getattr(torch.nn, name)(reduction="sum")) == repr(
        getattr(torch_ref.nn, name)(reduction="sum")
    )
    import chainrule.nn as cnn

    assert repr(getattr(cnn, name)()) == f"{name}()"


def test_a_subclass_of_a_pooling_layer_runs_it():
    class Pool(torch.nn.MaxPool2d):
        pass

    x = _rand(1, 2, 6, 6)
    _close(Pool(2)(torch.tensor(x)), torch_ref.nn.MaxPool2d(2)(torch_ref.tensor(x)))


def test_pooling_padding_over_half_the_window_is_refused_as_pytorch():
    x = _rand(1, 2, 6, 6)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        torch_ref.nn.MaxPool2d(2, padding=2)(torch_ref.tensor(x))
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        torch.nn.MaxPool2d(2, padding=2)(torch.tensor(x))


# -- convolutions ------------------------------------------------------------------------------

CONVS = [
    ("Conv1d", (2, 4, 3), {"padding": "same"}, (2, 2, 9)),
    ("Conv1d", (2, 4, 4), {"padding": "same", "dilation": 3}, (2, 2, 9)),
    ("Conv2d", (2, 4, (3, 4)), {"padding": "same", "dilation": (2, 1)}, (2, 2, 9, 8)),
    ("Conv2d", (2, 4, 3), {"padding": "valid"}, (2, 9, 8)),
    ("Conv3d", (2, 4, 2), {"padding": "same"}, (1, 2, 5, 4, 3)),
    ("Conv2d", (2, 4, 3), {"padding": 2, "padding_mode": "reflect", "stride": 2}, (2, 2, 9, 8)),
    ("Conv1d", (2, 4, 3), {"padding": 1, "padding_mode": "replicate"}, (2, 9)),
    (
        "Conv2d",
        (4, 4, 3),
        {"padding": (1, 2), "padding_mode": "circular", "groups": 2},
        (2, 4, 9, 8),
    ),
    ("Conv3d", (2, 2, 3), {"padding": "same", "padding_mode": "reflect"}, (1, 2, 5, 4, 4)),
    (
        "Conv2d",
        (2, 4, 3),
        {"padding": "same", "padding_mode": "circular", "bias": False},
        (2, 2, 5, 6),
    ),
    (
        "Conv3d",
        (2, 4, (1, 2, 3)),
        {"padding": (0, 1, 1), "padding_mode": "replicate"},
        (1, 2, 3, 4, 5),
    ),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("name, args, kwargs, shape", CONVS)
def test_conv_padding_strings_and_modes_match_pytorch(name, args, kwargs, shape):
    ref = getattr(torch_ref.nn, name)(*args, **kwargs)
    ours = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(ref)
    assert ours.padding_mode == ref.padding_mode
    assert tuple(ours._reversed_padding_repeated_twice) == tuple(
        ref._reversed_padding_repeated_twice
    )
    if isinstance(ref.padding, str):
        assert ours.padding == ref.padding
    assert list(ours.state_dict()) == list(ref.state_dict())
    _copy_state(ours, ref)
    _compare(ours, ref, _rand(*shape), tol=1e-4)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((2, 4, 3), {"padding": "foo"}),
        ((2, 4, 3), {"padding": "same", "stride": 2}),
        ((2, 4, 3), {"padding_mode": "mirror"}),
        ((2, 4, 3), {"groups": 0}),
        ((3, 4, 3), {"groups": 2}),
        ((2, 3, 3), {"groups": 2}),
    ],
)
def test_conv_refuses_what_pytorch_refuses(args, kwargs):
    with pytest.raises(ValueError) as expected:
        torch_ref.nn.Conv2d(*args, **kwargs)
    with pytest.raises(ValueError) as got:
        torch.nn.Conv2d(*args, **kwargs)
    # PyTorch prints a set of the valid strings, whose order varies between runs
    assert str(got.value).split("{")[0] == str(expected.value).split("{")[0]


def test_conv_transpose_refuses_other_padding_modes_as_pytorch():
    with pytest.raises(
        ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'
    ):
        torch_ref.nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect")
    with pytest.raises(
        ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'
    ):
        torch.nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect")


# -- Upsample ----------------------------------------------------------------------------------

UPSAMPLES = [
    ("nearest", 1, {"size": 7}),
    ("nearest", 2, {"size": (5, 7)}),
    ("nearest", 3, {"scale_factor": (1.5, 2.0, 0.5)}),
    ("nearest-exact", 2, {"size": (3, 8)}),
    ("linear", 1, {"size": 9, "align_corners": True}),
    ("linear", 1, {"scale_factor": 1.7, "recompute_scale_factor": True}),
    ("bilinear", 2, {"size": (5, 7), "align_corners": False}),
    ("bilinear", 2, {"scale_factor": 2, "align_corners": True}),
    ("bicubic", 2, {"size": 6, "align_corners": True}),
    ("bicubic", 2, {"scale_factor": (1.5, 0.5)}),
    ("trilinear", 3, {"size": (5, 7, 6), "align_corners": True}),
    ("trilinear", 3, {"scale_factor": 2}),
    ("area", 2, {"size": (3, 2)}),
    ("area", 1, {"scale_factor": 0.5}),
]


@pytest.mark.parametrize("mode, nd, kwargs", UPSAMPLES)
def test_upsample_matches_pytorch(mode, nd, kwargs):
    ours = torch.nn.Upsample(mode=mode, **kwargs)
    ref = torch_ref.nn.Upsample(mode=mode, **kwargs)
    assert repr(ours) == repr(ref)
    for key in ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"):
        assert getattr(ours, key) == getattr(ref, key), key
    _compare(ours, ref, _rand(*(2, 3, 4, 5, 3)[: nd + 2]), tol=1e-4)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({"size": 4, "scale_factor": 2}, (1, 2, 3, 3)),
        ({}, (1, 2, 3, 3)),
        ({"size": 4, "recompute_scale_factor": True}, (1, 2, 3, 3)),
        ({"size": 4, "mode": "nearest", "align_corners": True}, (1, 2, 3, 3)),
        ({"size": 4, "mode": "bilinear"}, (1, 2, 3)),
    ],
)
def test_upsample_refuses_what_pytorch_refuses(kwargs, shape):
    x = _rand(*shape)
    with pytest.raises((ValueError, NotImplementedError)) as expected:
        torch_ref.nn.Upsample(**kwargs)(torch_ref.tensor(x))
    with pytest.raises(type(expected.value)):
        torch.nn.Upsample(**kwargs)(torch.tensor(x))


# -- norms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, kwargs",
    [((4, 5), {}), ((3, 4, 5), {}), ((4, 5), {"bias": False}), (5, {}), ((4, 5), {"eps": 1e-3})],
)
def test_layer_norm_of_any_shape_trains_weight_and_bias(shape, kwargs):
    ours, ref = torch.nn.LayerNorm(shape, **kwargs), torch_ref.nn.LayerNorm(shape, **kwargs)
    assert repr(ours) == repr(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    with torch_ref.no_grad():
        for p in ref.parameters():
            p.copy_(torch_ref.randn(p.shape))
    _copy_state(ours, ref)
    full = (2, 3, 4, 5)
    _compare(ours, ref, _rand(*full))
    assert ours.weight.grad.shape == tuple(ref.weight.shape)


NORMS = [
    ("BatchNorm1d", (3,), {"bias": False}, (6, 3, 4)),
    ("BatchNorm2d", (3,), {"bias": False, "momentum": None}, (4, 3, 2, 5)),
    ("BatchNorm3d", (2,), {"affine": False, "bias": False}, (3, 2, 2, 3, 2)),
    ("BatchNorm1d", (3,), {"bias": True}, (6, 3)),
    ("InstanceNorm1d", (3,), {"affine": True, "bias": False}, (2, 3, 7)),
    ("InstanceNorm2d", (3,), {"track_running_stats": True}, (2, 3, 4, 5)),
    ("InstanceNorm2d", (3,), {"track_running_stats": True, "affine": True}, (2, 3, 4, 5)),
    ("InstanceNorm3d", (2,), {"track_running_stats": True, "momentum": 0.3}, (2, 2, 3, 4, 2)),
    ("InstanceNorm1d", (3,), {"track_running_stats": True, "affine": True, "bias": False}, (3, 7)),
    ("GroupNorm", (2, 4), {"bias": False}, (3, 4, 5)),
    ("GroupNorm", (3, 6), {"bias": False}, (2, 6)),
    ("GroupNorm", (2, 4), {"affine": False, "bias": False}, (3, 4, 2, 2)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", NORMS)
def test_norm_bias_and_running_statistics_match_pytorch(name, args, kwargs, shape):
    ours = getattr(torch.nn, name)(*args, **kwargs)
    ref = getattr(torch_ref.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in ref.named_parameters()]
    gen = torch_ref.Generator().manual_seed(0)  # the same weights in any test order
    with torch_ref.no_grad():
        for p in ref.parameters():
            p.copy_(torch_ref.rand(p.shape, generator=gen) + 0.5)
    _copy_state(ours, ref)
    for step in range(2):  # training: batch statistics, running statistics updated
        _compare(ours, ref, _rand(*shape, seed=step))
    for key, value in ref.state_dict().items():
        _close(ours.state_dict()[key], value)
    ours.eval()
    ref.eval()
    ours.zero_grad()
    ref.zero_grad()
    _compare(ours, ref, _rand(*shape, seed=5))  # evaluation: the running statistics


def test_instance_norm_checks_its_input_as_pytorch():
    x = _rand(2, 4, 5)
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features"):
        torch_ref.nn.InstanceNorm1d(3, affine=True)(torch_ref.tensor(x))
    with pytest.raises(ValueError, match=r"expected input's size at dim=1 to match num_features"):
        torch.nn.InstanceNorm1d(3, affine=True)(torch.tensor(x))
    with pytest.warns(UserWarning, match="does not match num_features"):
        torch_ref.nn.InstanceNorm1d(3)(torch_ref.tensor(x))
    with pytest.warns(UserWarning, match="does not match num_features"):
        torch.nn.InstanceNorm1d(3)(torch.tensor(x))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        torch_ref.nn.InstanceNorm1d(3)(torch_ref.tensor(_rand(1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        torch.nn.InstanceNorm1d(3)(torch.tensor(_rand(1, 2, 3, 4)))


@pytest.mark.parametrize(
    "name", ["BatchNorm2d", "InstanceNorm2d", "LazyBatchNorm1d", "LazyInstanceNorm3d", "GroupNorm"]
)
def test_norm_bias_is_keyword_only_as_pytorch(name):
    import inspect

    ours = inspect.signature(getattr(torch.nn, name).__init__).parameters["bias"]
    ref = inspect.signature(getattr(torch_ref.nn, name).__init__).parameters["bias"]
    assert (ours.kind, ours.default) == (ref.kind, ref.default)


def test_state_dicts_exchange_with_pytorch_for_bias_free_norms():
    ref = torch_ref.nn.BatchNorm2d(3, bias=False)
    ref.train()
    ref(torch_ref.randn(4, 3, 2, 2))
    ours = torch.nn.BatchNorm2d(3, bias=False)
    _copy_state(ours, ref)
    back = torch_ref.nn.BatchNorm2d(3, bias=False)
    back.load_state_dict(
        {k: torch_ref.tensor(np.asarray(v.numpy())) for k, v in ours.state_dict().items()}
    )
    for key, value in ref.state_dict().items():
        assert torch_ref.equal(back.state_dict()[key], value), key


# -- Container ---------------------------------------------------------------------------------


def test_container_holds_its_keyword_modules_and_warns_as_pytorch():
    with pytest.warns(FutureWarning, match="`nn.Container` is deprecated") as expected:
        ref = torch_ref.nn.Container(a=torch_ref.nn.Linear(2, 3), b=torch_ref.nn.ReLU())
    with pytest.warns(FutureWarning, match="`nn.Container` is deprecated") as got:
        ours = torch.nn.Container(a=torch.nn.Linear(2, 3), b=torch.nn.ReLU())
    assert [str(w.message) for w in got] == [str(w.message) for w in expected]
    assert repr(ours) == repr(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in ours.named_children()] == ["a", "b"]
    assert isinstance(ours, torch.nn.Module)
    ours.load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ref.state_dict().items()})
    x = _rand(4, 2)
    _close(ours.b(ours.a(torch.tensor(x))), ref.b(ref.a(torch_ref.tensor(x))))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_module_without_forward_raises_pytorchs_error():
    for ours, ref in (
        (torch.nn.Container(), torch_ref.nn.Container()),
        (torch.nn.Module(), torch_ref.nn.Module()),
    ):
        with pytest.raises(NotImplementedError) as expected:
            ref(torch_ref.ones(2))
        with pytest.raises(NotImplementedError) as got:
            ours(torch.ones(2))
        assert str(got.value) == str(expected.value)


# -- repr of every class -----------------------------------------------------------------------

# constructor arguments of the classes that have required ones (the others are built bare)
REPR_ARGS: dict = {
    "AdaptiveAvgPool1d": (3,),
    "AdaptiveAvgPool2d": ((3, None),),
    "AdaptiveAvgPool3d": (3,),
    "AdaptiveLogSoftmaxWithLoss": (8, 10, [4]),
    "AdaptiveMaxPool1d": (3,),
    "AdaptiveMaxPool2d": (3,),
    "AdaptiveMaxPool3d": (3,),
    "AvgPool1d": (2,),
    "AvgPool2d": (3, 2, 1),
    "AvgPool3d": (2,),
    "BatchNorm1d": (4,),
    "BatchNorm2d": (4,),
    "BatchNorm3d": (4,),
    "Bilinear": (3, 4, 5),
    "ChannelShuffle": (2,),
    "CircularPad1d": (1,),
    "CircularPad2d": (1,),
    "CircularPad3d": (1,),
    "ConstantPad1d": (1, 0.5),
    "ConstantPad2d": (1, 0.5),
    "ConstantPad3d": (1, 0.5),
    "Conv1d": (2, 4, 3),
    "Conv2d": (2, 4, 3),
    "Conv3d": (2, 4, 3),
    "ConvTranspose1d": (2, 4, 3),
    "ConvTranspose2d": (2, 4, 3),
    "ConvTranspose3d": (2, 4, 3),
    "CrossMapLRN2d": (3,),
    "Embedding": (10, 3),
    "EmbeddingBag": (10, 3),
    "Fold": ((4, 4), 2),
    "FractionalMaxPool2d": (2, (3, 3)),
    "FractionalMaxPool3d": (2, (3, 3, 3)),
    "GroupNorm": (2, 4),
    "GRU": (3, 4),
    "GRUCell": (3, 4),
    "InstanceNorm1d": (4,),
    "InstanceNorm2d": (4,),
    "InstanceNorm3d": (4,),
    "LayerNorm": ((4, 5),),
    "LazyConv1d": (4, 3),
    "LazyConv2d": (4, 3),
    "LazyConv3d": (4, 3),
    "LazyConvTranspose1d": (4, 3),
    "LazyConvTranspose2d": (4, 3),
    "LazyConvTranspose3d": (4, 3),
    "LazyLinear": (4,),
    "Linear": (3, 4),
    "LinearCrossEntropyLoss": (4, 10),
    "LocalResponseNorm": (2,),
    "LPPool1d": (2, 3),
    "LPPool2d": (2, 3),
    "LPPool3d": (2, 3),
    "LSTM": (3, 4),
    "LSTMCell": (3, 4),
    "MaxPool1d": (2,),
    "MaxPool2d": (3, 2, 1),
    "MaxPool3d": (2,),
    "MaxUnpool1d": (2,),
    "MaxUnpool2d": (2,),
    "MaxUnpool3d": (2,),
    "MultiheadAttention": (4, 2),
    "PixelShuffle": (2,),
    "PixelUnshuffle": (2,),
    "ReflectionPad1d": (1,),
    "ReflectionPad2d": (1,),
    "ReflectionPad3d": (1,),
    "ReplicationPad1d": (1,),
    "ReplicationPad2d": (1,),
    "ReplicationPad3d": (1,),
    "RMSNorm": (4,),
    "RNN": (3, 4),
    "RNNCell": (3, 4),
    "SyncBatchNorm": (4,),
    "Threshold": (0.1, 20.0),
    "TransformerDecoderLayer": (4, 2),
    "TransformerEncoderLayer": (4, 2),
    "Unflatten": (1, (2, 3)),
    "Unfold": (2,),
    "ZeroPad1d": (1,),
    "ZeroPad2d": ((1, 2, 0, 1),),
    "ZeroPad3d": (1,),
}
# classes whose constructor takes other modules, or are not modules
_REPR_SKIP = {
    "DataParallel",
    "RNNBase",
    "RNNCellBase",
    "TransformerDecoder",
    "TransformerEncoder",
}


def _repr_names() -> list:
    return sorted(
        n
        for n in dir(torch.nn)
        if n[0].isupper()
        and n not in _REPR_SKIP
        and isinstance(getattr(torch.nn, n), type)
        and isinstance(getattr(torch_ref.nn, n, None), type)
    )


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", _repr_names())
def test_every_class_prints_as_pytorch(name):
    args = REPR_ARGS.get(name, ())
    try:
        ref = getattr(torch_ref.nn, name)(*args)
    except TypeError:
        pytest.skip(f"{name} needs constructor arguments (add them to REPR_ARGS)")
    assert repr(getattr(torch.nn, name)(*args)) == repr(ref)


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("Dropout", (0.1,), {}),
        ("Dropout", (), {"inplace": True}),
        ("ReLU", (), {"inplace": True}),
        ("LeakyReLU", (0.2, True), {}),
        ("ELU", (0.5,), {}),
        ("Hardtanh", (-2.0, 2.0), {}),
        ("ZeroPad2d", ((1, 1, 1, 1),), {}),
        ("Softmax", (1,), {}),
        ("MaxPool2d", ((2, 3),), {"dilation": 2, "ceil_mode": True}),
        ("AvgPool1d", (3, 2, 1), {}),
        ("Conv2d", (4, 8, 3), {"groups": 2, "bias": False, "padding_mode": "circular"}),
        ("BatchNorm1d", (3,), {"affine": False, "momentum": None}),
        ("Upsample", (), {"size": (3, 4), "mode": "bilinear"}),
        ("LazyConv2d", (4, 3), {"padding": "same", "groups": 2}),
        ("LazyLinear", (5, False), {}),
        ("LazyBatchNorm2d", (), {"affine": False}),
        ("TripletMarginWithDistanceLoss", (), {"margin": 2.0}),
        ("MSELoss", (), {"reduction": "sum"}),
        ("KLDivLoss", (), {"log_target": True}),
    ],
)
def test_arguments_print_as_pytorch(name, args, kwargs):
    ours = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(getattr(torch_ref.nn, name)(*args, **kwargs))


def test_printing_a_lazy_module_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    plain = torch.nn.LazyLinear(3)
    plain(torch.ones(2, 4))
    torch.manual_seed(0)
    printed = torch.nn.LazyLinear(3)
    repr(printed)
    printed(torch.ones(2, 4))
    np.testing.assert_array_equal(plain.weight.detach().numpy(), printed.weight.detach().numpy())


def test_uninitialized_placeholders_and_options_print_as_pytorch():
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

    assert repr(torch.nn.UninitializedParameter()) == repr(UninitializedParameter())
    assert repr(torch.nn.UninitializedBuffer()) == repr(UninitializedBuffer())
    ours = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=4)
    assert repr(ours) == repr(torch_ref.nn.LinearCrossEntropyOptions(batch_chunk_size=4))
    with pytest.raises(AttributeError):
        ours.acc_policy = "x"  # frozen, as PyTorch's


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("UpsamplingNearest2d", {"size": (5, 7)}),
        ("UpsamplingNearest2d", {"scale_factor": 2}),
        ("UpsamplingBilinear2d", {"scale_factor": (1.5, 2)}),
        ("UpsamplingBilinear2d", {"size": 6}),
    ],
)
def test_upsampling_2d_layers_are_upsample_as_in_pytorch(name, kwargs):
    ours, ref = getattr(torch.nn, name)(**kwargs), getattr(torch_ref.nn, name)(**kwargs)
    assert isinstance(ours, torch.nn.Upsample) and isinstance(ref, torch_ref.nn.Upsample)
    assert repr(ours) == repr(ref)
    assert (ours.mode, ours.align_corners) == (ref.mode, ref.align_corners)
    _compare(ours, ref, _rand(2, 3, 4, 5), tol=1e-4)


@pytest.mark.parametrize(
    "name, args, kwargs, shape",
    [
        ("Conv1d", (2, 4, 3), {"padding": 1, "stride": 2}, (2, 2, 9)),
        ("Conv2d", (2, 4, 3), {"padding": "same"}, (2, 2, 5, 5)),
        ("ConvTranspose1d", (2, 4, 3), {"stride": 2, "output_padding": 1}, (2, 2, 5)),
        ("ConvTranspose2d", (4, 2, 3), {"groups": 2, "dilation": 2}, (2, 4, 3, 4)),
    ],
)
def test_conv_attributes_are_pytorchs(name, args, kwargs, shape):
    ref = getattr(torch_ref.nn, name)(*args, **kwargs)
    ours = getattr(torch.nn, name)(*args, **kwargs)
    for key in (
        "in_channels",
        "out_channels",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "groups",
        "padding_mode",
        "output_padding",
        "transposed",
    ):
        assert getattr(ours, key) == getattr(ref, key), key
    _copy_state(ours, ref)
    _compare(ours, ref, _rand(*shape), tol=1e-4)


@pytest.mark.parametrize("name", ["MaxPool2d", "AvgPool2d"])
def test_pooling_an_input_of_the_wrong_rank_raises_pytorchs_runtime_error(name):
    with pytest.raises(RuntimeError):
        getattr(torch_ref.nn, name)(2)(torch_ref.zeros(4, 4, 4, 4, 4))
    with pytest.raises(RuntimeError, match=r"channels-first input \(N, C, H, W\)"):
        getattr(torch.nn, name)(2)(torch.zeros(4, 4, 4, 4, 4))


@pytest.mark.parametrize("kwargs", [{}, {"padding": 1}, {"ceil_mode": True}, {"stride": 1}])
def test_max_pool_gives_a_tied_maximum_gradient_to_its_first_position(kwargs):
    x = np.ones((1, 2, 5, 4), np.float32)
    x[0, 1, :2] = 3.0
    xo, xt = torch.tensor(x, requires_grad=True), torch_ref.tensor(x, requires_grad=True)
    torch.nn.MaxPool2d(2, **kwargs)(xo).sum().backward()
    torch_ref.nn.MaxPool2d(2, **kwargs)(xt).sum().backward()
    _close(xo.grad, xt.grad)
