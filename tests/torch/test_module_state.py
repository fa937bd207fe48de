"""Module state as PyTorch names it: parameters vs buffers, containers' names, traversal,
repr, load_state_dict's reports and hooks, each compared with real PyTorch."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as cnn
import chainrule.torch as ct
import chainrule.torch.nn as nn


def _ref():
    return pytest.importorskip("torch")


def _build(lib):
    """The same architecture with chainrule.torch.nn or with real torch.nn."""
    tnn = lib.nn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.scale = tnn.Parameter(lib.ones(2))
            self.register_buffer("steps", lib.zeros(()))
            self.register_buffer("cache", lib.zeros(3), persistent=False)
            self.features = tnn.Sequential(
                tnn.Conv2d(1, 4, 3), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.Flatten()
            )
            self.blocks = tnn.ModuleList([tnn.Linear(4, 4) for _ in range(3)])
            self.heads = tnn.ModuleDict({"a": tnn.Linear(4, 2), "b": tnn.Linear(4, 1)})
            self.extra = tnn.ParameterList([tnn.Parameter(lib.zeros(2)) for _ in range(2)])
            self.emb = tnn.Embedding(5, 4)
            self.norm = tnn.BatchNorm1d(4, momentum=None)

        def forward(self, x):
            return self.features(x)

    return Net()


def _names(pairs):
    return [k for k, _ in pairs]


def test_batchnorm_parameters_and_buffers_as_pytorch():
    torch_ref = _ref()
    ours, ref = nn.BatchNorm1d(4), torch_ref.nn.BatchNorm1d(4)
    assert _names(ours.named_parameters()) == _names(ref.named_parameters())
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 8
    assert _names(ours.named_buffers()) == _names(ref.named_buffers())
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert ours.num_batches_tracked.dtype == mx.int64
    # MLX's BatchNorm keeps its running statistics in parameters(), but they are buffers
    mlx_bn = cnn.BatchNorm(4)
    assert set(mlx_bn.parameters().keys()) == {"weight", "bias", "running_mean", "running_var"}
    assert _names(mlx_bn.named_parameters()) == ["weight", "bias"]
    assert _names(mlx_bn.named_buffers()) == ["running_mean", "running_var"]


def test_state_names_and_order_match_pytorch():
    torch_ref = _ref()
    ours, ref = _build(ct), _build(torch_ref)
    assert _names(ours.named_parameters()) == _names(ref.named_parameters())
    assert _names(ours.named_buffers()) == _names(ref.named_buffers())
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape), k
    assert "cache" not in ours.state_dict() and "cache" in dict(ours.named_buffers())
    assert _names(ours.named_modules()) == _names(ref.named_modules())
    assert _names(ours.named_children()) == _names(ref.named_children())
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in ref.children()]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in ref.modules()]
    assert len(list(ours.parameters())) == len(list(ref.parameters()))
    assert _names(ours.named_parameters(recurse=False)) == _names(
        ref.named_parameters(recurse=False)
    )
    assert _names(ours.named_parameters(prefix="m")) == _names(ref.named_parameters(prefix="m"))
    assert list(ours.state_dict(prefix="p.")) == list(ref.state_dict(prefix="p."))


def test_apply_visits_modules_in_pytorch_order():
    torch_ref = _ref()
    ours, ref = _build(ct), _build(torch_ref)
    seen_ours, seen_ref = [], []
    assert ours.apply(lambda m: seen_ours.append(type(m).__name__)) is ours
    ref.apply(lambda m: seen_ref.append(type(m).__name__))
    assert seen_ours == seen_ref
    # a PyTorch-style initialiser through apply
    ours.apply(lambda m: nn.init.zeros_(m.weight) if isinstance(m, nn.Linear) else None)
    assert float(mx.abs(ours.blocks[1].weight).sum()) == 0.0


def test_sequential_and_containers_index_as_pytorch():
    torch_ref = _ref()
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    ref = torch_ref.nn.Sequential(
        torch_ref.nn.Linear(2, 3), torch_ref.nn.ReLU(), torch_ref.nn.Linear(3, 1)
    )
    assert (
        list(seq.state_dict())
        == list(ref.state_dict())
        == [
            "0.weight",
            "0.bias",
            "2.weight",
            "2.bias",
        ]
    )
    assert isinstance(seq[0], nn.Linear) and seq[-1] is seq[2] and len(seq) == 3
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"] and named[1] is named.act
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and isinstance(seq[3], nn.Sigmoid)
    both = seq + nn.Sequential(nn.Linear(1, 1))
    assert isinstance(both, nn.Sequential) and len(both) == 5 and both[4].weight.shape == (1, 1)
    assert seq.pop(3) is not None and len(seq) == 3
    with pytest.raises(TypeError, match="is not a Module subclass"):
        nn.Sequential(lambda x: x)
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml += [nn.Linear(1, 2)]
    ml.insert(0, nn.ReLU())
    assert [type(m).__name__ for m in ml] == ["ReLU", "Linear", "Linear"]
    assert list(ml.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    del ml[0]
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.Linear(1, 2)
    assert list(md) == ["a", "b"] and list(md.state_dict()) == [
        "a.weight",
        "a.bias",
        "b.weight",
        "b.bias",
    ]
    pd = nn.ParameterDict({"w": nn.Parameter(mx.ones(2))})
    pl = nn.ParameterList([mx.zeros(1), mx.ones(2)])
    assert list(pd.state_dict()) == ["w"] and [p.shape for p in pl] == [(1,), (2,)]
    assert isinstance(seq, nn.Module) and isinstance(cnn.Linear(1, 1), nn.Module)
    assert issubclass(cnn.Conv2d, nn.Module) and not isinstance(3, nn.Module)


def test_buffers_and_frozen_parameters():
    m = nn.Module()
    m.register_buffer("b", mx.zeros(2))
    m.register_buffer("tmp", mx.zeros(1), persistent=False)
    m.register_buffer("later", None)
    m.register_parameter("w", nn.Parameter(mx.ones(2)))
    m.frozen = nn.Parameter(mx.ones(3), requires_grad=False)
    m.counter = nn.Buffer(mx.zeros(()))
    m.hidden = nn.Buffer(mx.zeros(1), persistent=False)
    assert m.later is None
    m.later = mx.ones(4)  # assigning to a registered name keeps it a buffer
    assert _names(m.named_parameters()) == ["w", "frozen"]
    assert _names(m.named_buffers()) == ["b", "tmp", "later", "counter", "hidden"]
    assert list(m.state_dict()) == ["w", "frozen", "b", "later", "counter"]
    assert not m.frozen.requires_grad and m.w.requires_grad and not m.b.requires_grad
    assert set(m.trainable_parameters().keys()) == {"w"}
    assert m.get_parameter("w") is m.w and m.get_buffer("b") is m.b
    with pytest.raises(AttributeError, match="not a parameter"):
        m.get_parameter("b")
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", mx.zeros(1))
    with pytest.raises(TypeError, match="buffer"):
        m.register_buffer("x", 3)
    m.requires_grad_(False)
    assert not m.w.requires_grad
    m.requires_grad_(True)
    assert m.w.requires_grad and not m.b.requires_grad


def test_submodule_lookup_mode_and_dtype_as_pytorch():
    torch_ref = _ref()
    ours, ref = _build(ct), _build(torch_ref)
    assert ours.get_submodule("features.1") is ours.features[1]
    assert ours.get_submodule("heads.a") is ours.heads["a"]
    assert ours.get_parameter("blocks.2.bias") is ours.blocks[2].bias
    assert ours.get_buffer("features.1.running_var") is ours.features[1].running_var
    with pytest.raises(AttributeError, match="has no attribute `nope`"):
        ours.get_submodule("features.nope")
    ours.eval()
    ref.eval()
    assert [m.training for m in ours.modules()] == [m.training for m in ref.modules()]
    ours.train()
    assert all(m.training for m in ours.modules())
    ours.double()
    ref.double()
    for (k, a), (k2, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1], k
    ours.to(mx.float16)
    assert ours.features[0].weight.dtype == mx.float16
    assert ours.features[1].num_batches_tracked.dtype == mx.int64


def test_zero_grad_sets_none_or_zeros():
    m = nn.Linear(2, 1)
    m(ct.ones(3, 2)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.array_equal(m.weight.grad.numpy(), np.zeros((1, 2), np.float32))
    m.zero_grad()
    assert m.weight.grad is None


def test_repr_matches_pytorch():
    torch_ref = _ref()

    def build(lib):
        tnn = lib.nn

        class Model(tnn.Module):
            def __init__(self):
                super().__init__()
                self.body = tnn.Sequential(
                    tnn.Linear(2, 32),
                    tnn.Conv1d(2, 4, 3, padding=1, bias=False),
                    tnn.ConvTranspose2d(2, 4, 3, stride=2, groups=2),
                    tnn.BatchNorm1d(4),
                    tnn.LayerNorm((4, 5)),
                    tnn.MaxPool2d(2),
                    tnn.AvgPool2d(2),
                    tnn.Flatten(),
                    tnn.Softmax(dim=1),
                    tnn.GroupNorm(2, 4),
                    tnn.Identity(),
                    tnn.Dropout2d(0.25),
                    tnn.AdaptiveAvgPool2d(1),
                    tnn.AdaptiveAvgPool1d(3),
                    tnn.Upsample(scale_factor=2),
                )
                self.blocks = tnn.ModuleList(
                    [tnn.Linear(3, 3), tnn.Linear(3, 3), tnn.Linear(3, 3), tnn.Flatten()]
                )
                self.heads = tnn.ModuleDict({"a": tnn.Linear(1, 1)})

        return Model()

    assert repr(build(ct)) == repr(build(torch_ref))
    assert repr(nn.Sequential()) == repr(torch_ref.nn.Sequential())
    assert repr(nn.BatchNorm2d(3, momentum=None, affine=False)) == repr(
        torch_ref.nn.BatchNorm2d(3, momentum=None, affine=False)
    )

    class WithExtra(nn.Module):
        def extra_repr(self):
            return "k=1"

    assert repr(WithExtra()) == "WithExtra(k=1)"
    # the MLX door keeps MLX's text
    assert repr(cnn.Linear(2, 3)) == "Linear(input_dims=2, output_dims=3, bias=True)"


def _pair():
    torch_ref = _ref()
    ours = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ref = torch_ref.nn.Sequential(torch_ref.nn.Linear(2, 3), torch_ref.nn.BatchNorm1d(3))
    return torch_ref, ours, ref


def test_load_state_dict_reports_as_pytorch():
    torch_ref, ours, ref = _pair()
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert repr(ours.load_state_dict(sd)) == repr(ref.load_state_dict(ref.state_dict()))
    assert repr(ours.load_state_dict(sd)) == "<All keys matched successfully>"

    partial = {k: v for k, v in sd.items() if k != "1.bias"}
    partial["extra.w"] = np.zeros(1, np.float32)
    res = ours.load_state_dict(partial, strict=False)
    ref_res = ref.load_state_dict(
        {k: torch_ref.tensor(v) for k, v in partial.items()}, strict=False
    )
    assert res == ref_res and type(res).__name__ == type(ref_res).__name__
    assert res.missing_keys == ["1.bias"] and res.unexpected_keys == ["extra.w"]
    assert repr(res) == repr(ref_res)

    bad = dict(sd)
    bad["0.weight"] = np.zeros((3, 4), np.float32)
    bad["extra"] = np.zeros(1, np.float32)
    del bad["1.bias"]
    before = ours.state_dict()["1.weight"].numpy().copy()
    with pytest.raises(RuntimeError) as ours_err:
        ours.load_state_dict(bad)
    with pytest.raises(RuntimeError) as ref_err:
        ref.load_state_dict({k: torch_ref.tensor(v) for k, v in bad.items()})
    assert str(ours_err.value) == str(ref_err.value)
    assert str(ours_err.value).startswith("Error(s) in loading state_dict for Sequential:\n\t")
    np.testing.assert_array_equal(ours.state_dict()["1.weight"].numpy(), before)
    with pytest.raises(TypeError, match="dict-like"):
        ours.load_state_dict([("0.weight", 1)])
    # size mismatches are errors with strict=False too, as in PyTorch
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight"):
        ours.load_state_dict({"0.weight": np.zeros((1, 1), np.float32)}, strict=False)


def test_load_state_dict_copies_or_assigns():
    _, ours, _ = _pair()
    w = ours[0].weight
    new = np.arange(6, dtype=np.float64).reshape(3, 2)
    ours.load_state_dict({"0.weight": new}, strict=False)
    assert ours[0].weight is w and w.dtype == mx.float32 and w.requires_grad
    np.testing.assert_array_equal(w.numpy(), new.astype(np.float32))
    ours.load_state_dict({"0.weight": new}, strict=False, assign=True)
    assert ours[0].weight is not w and ours[0].weight.dtype == mx.float64
    assert ours[0].weight.requires_grad
    # a missing num_batches_tracked (older checkpoints) is filled, not reported (PyTorch)
    sd = {k: v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours.load_state_dict(sd).missing_keys == []


def test_batchnorm_momentum_none_matches_pytorch():
    torch_ref = _ref()
    ours, ref = nn.BatchNorm1d(3, momentum=None), torch_ref.nn.BatchNorm1d(3, momentum=None)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(size=(8, 3)).astype(np.float32) * 2 + 1
        np.testing.assert_allclose(
            ours(ct.tensor(x)).numpy(), ref(torch_ref.tensor(x)).detach().numpy(), atol=1e-5
        )
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), atol=1e-6)
    assert int(ours.num_batches_tracked.item()) == 3


def test_forward_hooks_as_pytorch():
    torch_ref = _ref()
    ours, ref = nn.Linear(2, 2), torch_ref.nn.Linear(2, 2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    cls = type(ours)
    log = []
    h1 = ours.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h2 = ours.register_forward_hook(lambda m, args, out: out + 1)
    h3 = ours.register_forward_hook(lambda m, args, out: log.append("first"), prepend=True)
    ref.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    ref.register_forward_hook(lambda m, args, out: out + 1)
    x = np.ones((1, 2), np.float32)
    np.testing.assert_allclose(
        ours(ct.tensor(x)).numpy(), ref(torch_ref.tensor(x)).detach().numpy(), atol=1e-6
    )
    assert log == ["first"] and isinstance(ours, cls) and type(ours).__name__ == "Linear"
    h4 = ours.register_forward_pre_hook(
        lambda m, args, kwargs: ((args[0] * 0,), kwargs), with_kwargs=True
    )
    assert float(mx.abs(ours(ct.tensor(x)) - 1 - ours.bias).sum()) < 1e-6
    for h in (h1, h2, h3, h4):
        h.remove()
    h1.remove()  # twice is fine
    assert type(ours) is cls  # no hooks: the plain class again, nothing paid per call
    np.testing.assert_allclose(ours(ct.tensor(x)).numpy(), ours.forward(ct.tensor(x)).numpy())
    with ours.register_forward_hook(lambda m, a, o: o * 0):
        assert float(mx.abs(ours(ct.tensor(x))).sum()) == 0.0
    assert type(ours) is cls


def test_full_backward_hook_as_pytorch():
    torch_ref = _ref()
    ours, ref = nn.Linear(3, 2), torch_ref.nn.Linear(3, 2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    got, want = [], []
    ours.register_full_backward_hook(lambda m, gi, go: got.append((gi, go)))
    ref.register_full_backward_hook(lambda m, gi, go: want.append((gi, go)))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    xo, xt = ct.tensor(x, requires_grad=True), torch_ref.tensor(x, requires_grad=True)
    (ours(xo) ** 2).sum().backward()
    (ref(xt) ** 2).sum().backward()
    assert len(got) == len(want) == 1
    for a, b in zip(got[0][0] + got[0][1], want[0][0] + want[0][1]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    # an input that needs no gradient gives grad_input (None,), as in PyTorch
    got.clear()
    want.clear()
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        (ours(ct.tensor(x)) ** 2).sum().backward()
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        (ref(torch_ref.tensor(x)) ** 2).sum().backward()
    assert got[0][0] == (None,) and want[0][0] == (None,)
    np.testing.assert_allclose(got[0][1][0].numpy(), want[0][1][0].numpy(), rtol=1e-5)
    # a hook's result replaces grad_input
    m = nn.Linear(3, 2)
    m.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 0,))
    xo = ct.tensor(x, requires_grad=True)
    m(xo).sum().backward()
    assert float(mx.abs(xo.grad).sum()) == 0.0 and m.weight.grad is not None


def test_parameters_to_vector_and_back_as_pytorch():
    torch_ref = _ref()
    ours, ref = nn.Linear(3, 2), torch_ref.nn.Linear(3, 2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    vec = nn.utils.parameters_to_vector(ours.parameters())
    want = torch_ref.nn.utils.parameters_to_vector(ref.parameters())
    np.testing.assert_array_equal(vec.numpy(), want.detach().numpy())
    w = ours.weight
    nn.utils.vector_to_parameters(ct.arange(8, dtype=ct.float32), ours.parameters())
    torch_ref.nn.utils.vector_to_parameters(torch_ref.arange(8.0), ref.parameters())
    assert ours.weight is w and w.requires_grad
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
    with pytest.raises(TypeError, match="expected torch.Tensor"):
        nn.utils.vector_to_parameters([1.0], ours.parameters())
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        nn.utils.vector_to_parameters(ct.zeros(3), ours.parameters())
    assert isinstance(nn.utils.skip_init(nn.Linear, 2, 3, device="cpu"), nn.Linear)


def test_tensor_attributes_become_trainable_parameters():
    m = nn.Linear(2, 2)
    m.bias = ct.tensor([1.0, 2.0])
    m(ct.ones(1, 2)).sum().backward()
    np.testing.assert_array_equal(m.bias.grad.numpy(), [1.0, 1.0])


def test_backward_pre_hook_and_small_pytorch_habits():
    torch_ref = _ref()
    ours, ref = nn.Linear(3, 2), torch_ref.nn.Linear(3, 2)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    ours.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))
    ref.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    xo, xt = ct.tensor(x, requires_grad=True), torch_ref.tensor(x, requires_grad=True)
    ours(xo).sum().backward()
    ref(xt).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-6)
    # next(model.parameters()) as PyTorch code writes it
    assert next(ours.parameters()) is ours.weight
    assert ours.cpu() is ours and ours.bfloat16().weight.dtype == mx.bfloat16
    m = nn.Module()
    m.register_buffer("b", mx.zeros(1))
    del m.b
    m.b = mx.zeros(1)  # a plain parameter again, as in PyTorch
    assert _names(m.named_parameters()) == ["b"] and _names(m.named_buffers()) == []
    assert m.b.requires_grad


def test_torch_module_mixes_with_abc():
    import abc

    class Base(nn.Module, abc.ABC):
        @abc.abstractmethod
        def forward(self, x): ...

    class Impl(Base):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(TypeError, match="abstract"):
        Base()
    m = Impl()
    assert m(ct.ones(1, 2)).shape == (1, 2) and isinstance(m, nn.Module)
    assert list(m.state_dict()) == ["fc.weight", "fc.bias"]


def test_checkpoints_keep_torch_buffers(tmp_path):
    import chainrule

    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = ct.optim.SGD(model.parameters(), lr=0.1)
    model(ct.randn(8, 2))
    path = tmp_path / "run.ckpt"
    chainrule.save_checkpoint(str(path), model, opt)
    other = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    chainrule.load_checkpoint(str(path), other, ct.optim.SGD(other.parameters(), lr=0.1))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    assert int(other[1].num_batches_tracked.item()) == 1


def test_shared_modules_and_parameters_listed_once_as_pytorch():
    torch_ref = _ref()

    def build(lib):
        shared = lib.nn.Linear(2, 2)
        return lib.nn.Sequential(shared, lib.nn.ReLU(), shared)

    ours, ref = build(ct), build(torch_ref)
    assert _names(ours.named_modules()) == _names(ref.named_modules())
    assert len(ours.modules()) == len(list(ref.modules()))
    assert _names(ours.named_parameters()) == _names(ref.named_parameters())
    assert _names(ours.named_parameters(remove_duplicate=False)) == _names(
        ref.named_parameters(remove_duplicate=False)
    )
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert _names(ours.named_modules(remove_duplicate=False)) == _names(
        ref.named_modules(remove_duplicate=False)
    )


def test_to_and_train_check_their_arguments_as_pytorch():
    torch_ref = _ref()
    ours, ref = nn.Linear(2, 2), torch_ref.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="only accepts floating point or complex dtypes"):
        ours.to(ct.int64)
    with pytest.raises(TypeError, match="only accepts floating point or complex dtypes"):
        ref.to(torch_ref.int64)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        ours.train(1)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        ref.train(1)
    assert ours.to(ct.zeros(1, dtype=ct.float64)).weight.dtype == mx.float64
    assert ref.to(torch_ref.zeros(1, dtype=torch_ref.float64)).weight.dtype == torch_ref.float64
    assert ours.to("cpu") is ours
