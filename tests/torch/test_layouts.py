"""PyTorch's weight layouts: state_dicts go from real PyTorch into chainrule.torch.nn and back
(in memory and through files) and give PyTorch's outputs, gradients and running statistics."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as ct
import chainrule.torch.nn as nn


def _ref():
    return pytest.importorskip("torch")


def _models(lib):
    """An image model and a sequence model with conv, conv-transpose, batch norm, linear,
    layer norm and embedding layers, built with ``lib`` (chainrule.torch or torch)."""
    tnn, F = lib.nn, lib.nn.functional

    class Image(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv = tnn.Conv2d(2, 4, 3, padding=1, groups=2)
            self.bn = tnn.BatchNorm2d(4)
            self.up = tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
            self.conv3 = tnn.Conv3d(1, 2, (1, 2, 2), bias=False)
            self.head = tnn.Linear(2 * 6 * 7 * 7, 5)
            self.norm = tnn.LayerNorm(5)

        def forward(self, x):
            x = F.relu(self.bn(self.conv(x)))
            x = self.up(x)
            x = self.conv3(lib.unsqueeze(x, 1))
            return self.norm(self.head(lib.flatten(x, 1)))

    class Sequence(tnn.Module):
        def __init__(self):
            super().__init__()
            self.emb = tnn.Embedding(10, 4)
            self.conv = tnn.Conv1d(4, 6, 3, padding=1)
            self.bn = tnn.BatchNorm1d(6)
            self.up = tnn.ConvTranspose1d(6, 3, 2, stride=2)
            self.out = tnn.Linear(3 * 10, 2)

        def forward(self, ids):
            x = lib.transpose(self.emb(ids), 1, 2)
            x = F.relu(self.bn(self.conv(x)))
            return self.out(lib.flatten(self.up(x), 1))

    return Image(), Sequence()


def _inputs(rng):
    image = rng.normal(size=(3, 2, 4, 4)).astype(np.float32) * 2 + 0.5
    ids = rng.integers(0, 10, size=(4, 5))
    return image, ids


def _to_ours(sd):
    return {k: ct.tensor(v.detach().numpy()) for k, v in sd.items()}


def _to_torch(torch_ref, sd):
    return {k: torch_ref.from_numpy(np.array(v.numpy())) for k, v in sd.items()}


def _same_state(ours, ref, tol=1e-5):
    sd_o, sd_r = ours.state_dict(), ref.state_dict()
    assert list(sd_o) == list(sd_r)
    for k, v in sd_r.items():
        got = sd_o[k].numpy()
        assert got.shape == tuple(v.shape), k
        assert got.dtype == v.numpy().dtype, k
        np.testing.assert_allclose(got, v.numpy(), rtol=tol, atol=tol, err_msg=k)


def _run_both(torch_ref, ours, ref, x):
    xo = ct.tensor(x)
    xt = torch_ref.from_numpy(np.array(x))
    return ours(xo).numpy(), ref(xt).detach().numpy()


def _check_exchange(torch_ref, ours, ref, x):
    """Train-mode forwards (batch statistics, running updates), then eval-mode."""
    for step in range(3):
        xs = x * (1 + step) if x.dtype.kind == "f" else (x + step) % 10
        a, b = _run_both(torch_ref, ours, ref, xs)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    _same_state(ours, ref)  # running statistics and num_batches_tracked
    ours.eval()
    ref.eval()
    a, b = _run_both(torch_ref, ours, ref, x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


CONVS = [
    ("Conv1d", (4, 6, 3), {"groups": 2}),
    ("Conv2d", (4, 6, (2, 3)), {"groups": 2, "bias": False}),
    ("Conv3d", (2, 4, 2), {"groups": 2}),
    ("ConvTranspose1d", (4, 6, 3), {"groups": 2}),
    ("ConvTranspose2d", (2, 6, (3, 2)), {"groups": 2, "stride": 2}),
    ("ConvTranspose3d", (2, 3, 2), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CONVS)
def test_conv_weights_have_pytorch_layouts(name, args, kwargs):
    torch_ref = _ref()
    ours, ref = getattr(nn, name)(*args, **kwargs), getattr(torch_ref.nn, name)(*args, **kwargs)
    shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    # PyTorch's default initialisation: weight and bias in U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = ours.weight.numpy()
    bound = 1 / np.sqrt(w.shape[1] * np.prod(w.shape[2:]))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("name, args, kwargs", CONVS)
def test_conv_gradients_in_pytorch_layout(name, args, kwargs):
    torch_ref = _ref()
    ours, ref = getattr(nn, name)(*args, **kwargs), getattr(torch_ref.nn, name)(*args, **kwargs)
    ours.load_state_dict(_to_ours(ref.state_dict()))
    nd = int(name[-2])
    shape = (2, args[0]) + (5,) * nd
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    xo, xt = ct.tensor(x, requires_grad=True), torch_ref.tensor(x, requires_grad=True)
    yo, yt = ours(xo), ref(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    (yo * yo).sum().backward()
    (yt * yt).sum().backward()
    # float32 sums of large products: compare relative to the gradient's scale, not per element
    gw = ref.weight.grad.numpy()
    np.testing.assert_allclose(
        ours.weight.grad.numpy(), gw, rtol=1e-4, atol=1e-6 * np.abs(gw).max()
    )
    gx = xt.grad.numpy()
    np.testing.assert_allclose(xo.grad.numpy(), gx, rtol=1e-4, atol=1e-6 * np.abs(gx).max())


def test_pytorch_state_dict_loads_and_gives_pytorch_outputs():
    torch_ref = _ref()
    torch_ref.manual_seed(0)
    rng = np.random.default_rng(0)
    image, ids = _inputs(rng)
    for ours, ref, x in zip(_models(ct), _models(torch_ref), (image, ids)):
        result = ours.load_state_dict(_to_ours(ref.state_dict()))
        assert result.missing_keys == [] and result.unexpected_keys == []
        _same_state(ours, ref, tol=0)
        _check_exchange(torch_ref, ours, ref, x)


def test_chainrule_state_dict_loads_into_pytorch():
    torch_ref = _ref()
    rng = np.random.default_rng(1)
    image, ids = _inputs(rng)
    for ours, ref, x in zip(_models(ct), _models(torch_ref), (image, ids)):
        # a few training forwards first: running statistics and num_batches_tracked move
        for _ in range(2):
            ours(ct.tensor(x))
        result = ref.load_state_dict(_to_torch(torch_ref, ours.state_dict()))
        assert result.missing_keys == [] and result.unexpected_keys == []
        assert int(ref.bn.num_batches_tracked) == 2
        _same_state(ours, ref, tol=0)
        _check_exchange(torch_ref, ours, ref, x)


def test_state_dict_files_go_both_ways(tmp_path):
    torch_ref = _ref()
    rng = np.random.default_rng(2)
    image, _ = _inputs(rng)
    ours, _ = _models(ct)
    ref, _ = _models(torch_ref)
    ref(torch_ref.from_numpy(image))  # move the running statistics
    path = tmp_path / "from_torch.pt"
    torch_ref.save(ref.state_dict(), path)
    ours.load_state_dict(ct.load(path))
    _same_state(ours, ref, tol=0)
    ours.eval()
    ref.eval()
    a, b = _run_both(torch_ref, ours, ref, image)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    back = tmp_path / "from_chainrule.pt"
    ours.train()
    ours(ct.tensor(image))
    ct.save(ours.state_dict(), back)
    ref2, _ = _models(torch_ref)
    ref2.load_state_dict(torch_ref.load(back))
    _same_state(ours, ref2, tol=0)
