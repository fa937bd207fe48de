"""``chainrule.torch.Tensor``: PyTorch's meanings on tensors, MLX's on arrays, one engine.

docs/torch_differences.md lists the calls whose meanings differ; every entry is checked here in
both namespaces (PyTorch's answer on tensors, compared with real PyTorch when installed, and
MLX's on ``chainrule.core`` arrays).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.torch as torch
from chainrule.torch._tensor_class import PYTORCH_MEANINGS


def _data(*shape, seed=0, kind="f"):
    rng = np.random.default_rng(seed)
    if kind == "i":
        return rng.integers(-5, 6, size=shape).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32)


def test_tensor_is_a_thin_subclass_and_every_array_passes_isinstance():
    assert issubclass(torch.Tensor, mx.array) and torch.Tensor is not mx.array
    assert torch.Tensor.__slots__ == ()
    for x in (torch.randn(2, 3), mx.zeros((2, 3)), torch.tensor([1, 2]), nn.Linear(2, 3).weight):
        assert isinstance(x, torch.Tensor) and torch.is_tensor(x)
    assert type(torch.randn(2, 3)) is torch.Tensor
    assert type(mx.zeros((2, 3))) is mx.array  # core arrays stay arrays
    assert type(nn.Linear(2, 3).weight) is mx.array  # parameters of the shared layers too


def test_arrays_keep_mlx_transpose():
    x = mx.array(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    assert x.transpose(1, 2, 0).shape == (3, 4, 2)  # a permutation of all axes (MLX)
    assert x.transpose().shape == (4, 3, 2)
    assert mx.zeros((2, 3)).transpose(0, 1).shape == (2, 3)  # the identity permutation
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(-2, -1)


def test_tensors_transpose_two_dimensions():
    assert torch.randn(2, 3).transpose(0, 1).shape == (3, 2)
    a = _data(2, 3, 4, 5)
    y = torch.tensor(a).transpose(-2, -1)
    assert y.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(y.numpy(), np.swapaxes(a, -2, -1))
    assert torch.randn(2, 3).view(3, 2).transpose(0, 1).shape == (2, 3)


@pytest.mark.parametrize("fn", [torch.transpose, torch.swapaxes, torch.swapdims])
def test_torch_functions_swap_two_dimensions_on_arrays_too(fn):
    a = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    assert fn(mx.array(a), -2, -1).shape == (2, 3, 5, 4)
    x = torch.randn(2, 3, requires_grad=True)
    (fn(x, 0, 1) * torch.arange(6).reshape(3, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6).reshape(3, 2).T)


def test_results_of_operations_on_tensors_stay_tensors():
    x = torch.randn(2, 3)
    results = [
        x + 1, 2 * x, x * x, -x, x @ torch.randn(3, 2), x > 0, x[0], x[:, 1:], x[x > 0],
        x.reshape(3, 2).t(), x.exp(), x.T, x.sum(), torch.exp(x), torch.cat([x, x]),
        torch.nn.functional.relu(x), nn.Linear(3, 4)(x), torch.nn.Conv1d(2, 4, 1)(x[None]),
    ]  # fmt: skip
    for y in results:
        assert type(y) is torch.Tensor, y
    assert all(type(row) is torch.Tensor for row in x)
    values, indices = x.max(1)
    assert type(values) is torch.Tensor and type(indices) is torch.Tensor
    assert type(mx.exp(x)) is mx.array  # a chainrule.core function returns an array
    assert type(mx.zeros((2, 3)) + 1) is mx.array


def test_layers_see_plain_arrays_and_return_tensors():
    seen = []

    def call(self, x):
        seen.append(type(x))
        return x.transpose(2, 0, 1)  # MLX's meaning: chainrule's layers are written with it

    # a layer class as chainrule defines them (its module's name starts with "chainrule.")
    Probe = type("Probe", (nn.Module,), {"__module__": "chainrule.nn.probe", "__call__": call})
    out = Probe()(torch.randn(2, 3, 4))
    assert seen == [mx.array] and type(out) is torch.Tensor and out.shape == (4, 2, 3)
    attention = nn.MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    out = attention(x, x, x)
    assert type(out) is torch.Tensor and out.shape == (2, 5, 8)
    h, c = nn.LSTM(8, 3)(x)
    assert type(h) is torch.Tensor and type(c) is torch.Tensor


def test_gradients_flow_through_tensors_and_grad_is_a_tensor():
    w = torch.randn(3, 2, requires_grad=True)
    x = torch.randn(4, 3)
    loss = (x @ w).transpose(0, 1).pow(2).sum()
    loss.backward()
    assert type(w.grad) is torch.Tensor
    expected = 2 * x.numpy().T @ (x.numpy() @ w.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-5)
    g = mx.grad(lambda t: (t * t).sum())(torch.tensor([1.0, 2.0]))
    assert g.tolist() == [2.0, 4.0]


@pytest.mark.usefixtures("cpu_default_device")  # CPU tensors
def test_a_parameter_handed_back_stays_the_parameter():
    layer = nn.Linear(2, 3)
    w = layer.weight
    assert torch.as_tensor(w) is w and type(w) is mx.array
    t = torch.randn(2, requires_grad=True)
    assert t.to("cpu") is t and t.contiguous() is t and t.requires_grad_() is t


def test_no_copy_between_tensor_and_array():
    t = torch.randn(3, requires_grad=True)
    y = t * 2
    plain = mx.array(y)  # keeps the graph, shares the value
    assert plain._data is y._data and plain._node is y._node


def test_legacy_constructor():
    t = torch.Tensor([1, 2])
    assert type(t) is torch.Tensor and t.dtype == torch.float32 and t.tolist() == [1.0, 2.0]
    assert torch.Tensor(2, 3).shape == (2, 3)


# -- every entry of the differences list, in both namespaces -----------------------------------

# name -> (call on a tensor / an MLX array, the data, MLX's answer as a function of NumPy data)
CASES = {
    "transpose": (lambda x: x.transpose(0, 1), (3, 4), lambda a: a),  # MLX: the identity
    "max": (lambda x: x.max(1), (3, 4), lambda a: a.max(1)),
    "min": (lambda x: x.min(1), (3, 4), lambda a: a.min(1)),
    "sort": (lambda x: x.sort(), (3, 4), lambda a: np.sort(a, -1)),
    "topk": (lambda x: x.topk(2), (3, 4), None),
    "split": (lambda x: x.split(2), (6, 2), lambda a: np.split(a, 2)),
    "std": (lambda x: x.std(), (3, 4), lambda a: a.std()),
    "var": (lambda x: x.var(), (3, 4), lambda a: a.var()),
    "squeeze": (lambda x: x.squeeze(1), (3, 1, 2), lambda a: a.squeeze(1)),
    "sum": (lambda x: x.sum(1), (3, 4, "i"), lambda a: a.sum(1).astype(np.int32)),
    "prod": (lambda x: x.prod(1), (3, 2, "i"), lambda a: a.prod(1).astype(np.int32)),
    "cumsum": (lambda x: x.cumsum(0), (3, 4, "i"), lambda a: a.cumsum(0).astype(np.int32)),
    "cumprod": (lambda x: x.cumprod(1), (3, 2, "i"), lambda a: a.cumprod(1).astype(np.int32)),
    "argmax": (lambda x: x.argmax(1), (3, 4), lambda a: a.argmax(1).astype(np.uint32)),
    "argmin": (lambda x: x.argmin(1), (3, 4), lambda a: a.argmin(1).astype(np.uint32)),
    "cummax": (lambda x: x.cummax(0), (3, 4), lambda a: np.maximum.accumulate(a, 0)),
    "cummin": (lambda x: x.cummin(0), (3, 4), lambda a: np.minimum.accumulate(a, 0)),
    "repeat": (lambda x: x.repeat(2, 3), (2, 3), None),
}


def test_the_cases_cover_the_list():
    assert set(CASES) == set(PYTORCH_MEANINGS)


def _flat(r):
    if isinstance(r, (tuple, list)):
        return [v for item in r for v in _flat(item)]
    return [r]


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensors_give_pytorchs_answer(name):
    torch_ref = pytest.importorskip("torch")
    call, shape, _ = CASES[name]
    kind = shape[-1] if isinstance(shape[-1], str) else "f"
    a = _data(*[s for s in shape if not isinstance(s, str)], kind=kind)
    ours, ref = call(torch.tensor(a)), call(torch_ref.tensor(a))
    ours, ref = _flat(ours), _flat(ref)
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert type(o) is torch.Tensor
        assert o.shape == tuple(r.shape)
        assert o.dtype.name == str(r.dtype).removeprefix("torch.")
        np.testing.assert_allclose(o.numpy(), r.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][2] is not None))
def test_arrays_give_mlxs_answer(name):
    call, shape, mlx_answer = CASES[name]
    kind = shape[-1] if isinstance(shape[-1], str) else "f"
    a = _data(*[s for s in shape if not isinstance(s, str)], kind=kind)
    if kind == "i":
        a = a.astype(np.int32)  # an MLX array of Python ints is int32
    ours = call(mx.array(a))
    expected = mlx_answer(a)
    if isinstance(expected, list):
        assert [o.shape for o in ours] == [e.shape for e in expected]
        for o, e in zip(ours, expected):
            np.testing.assert_allclose(o.tolist(), e, rtol=1e-5)
        return
    assert type(ours) is mx.array
    assert ours.shape == expected.shape
    if expected.dtype != np.float32:
        assert ours.dtype.name == str(expected.dtype)
    np.testing.assert_allclose(np.asarray(ours.tolist()), expected, rtol=1e-5, atol=1e-6)


def test_mlx_refuses_what_pytorch_leaves_alone():
    with pytest.raises(ValueError):
        mx.zeros((3, 2)).squeeze(0)
    assert torch.zeros(3, 2).squeeze(0).shape == (3, 2)


# -- printing ----------------------------------------------------------------------------------

REPRS = [
    lambda t: t.tensor([1.0, 2.0]),
    lambda t: t.tensor([0.1, 2.5]),
    lambda t: t.tensor(3.0),
    lambda t: t.tensor([1e-5, 1.0]),
    lambda t: t.tensor([[1, 2], [30, 4]]),
    lambda t: t.tensor([True, False]),
    lambda t: t.zeros(0, 3),
    lambda t: t.tensor([1.0, 2.0], dtype=t.float64),
    lambda t: t.arange(2000.0).reshape(2, 1000),
    lambda t: t.tensor([1.5, 2.0], requires_grad=True),
    lambda t: t.tensor([1.5, 2.0], requires_grad=True) * 2,
    lambda t: t.tensor([float("nan"), float("inf"), 1.5]),
    lambda t: t.tensor([-1.0, 2.0]),
    lambda t: t.tensor(np.linspace(-3, 3, 60, dtype=np.float32).reshape(3, 20)),
    lambda t: t.tensor([1, 2], dtype=t.int32),
    lambda t: t.tensor([123456.7, 0.5]),
]


@pytest.mark.usefixtures("cpu_default_device")  # compares with PyTorch on the CPU
@pytest.mark.parametrize("i", range(len(REPRS)))
def test_repr_is_pytorchs(i):
    torch_ref = pytest.importorskip("torch")
    assert repr(REPRS[i](torch)) == repr(REPRS[i](torch_ref))
    assert str(REPRS[i](torch)) == str(REPRS[i](torch_ref))


def test_data_shares_the_value_both_ways_as_pytorchs_storage():
    torch_ref = pytest.importorskip("torch")
    for lib in (torch, torch_ref):
        p = lib.nn.Parameter(lib.zeros(2))
        p.data.add_(1.0)  # pytorch/examples regression's update
        assert p.detach().numpy().tolist() == [1.0, 1.0] and p.requires_grad and p.is_leaf
        t = lib.ones(3)
        d = t.data
        t.add_(1)
        assert d.numpy().tolist() == [2.0, 2.0, 2.0]
        x = lib.ones(2, requires_grad=True)
        (x * 3).sum().backward()
        x.grad.data.zero_()
        assert x.grad.numpy().tolist() == [0.0, 0.0]


def test_module_attributes_as_pytorch_registers_them():
    import chainrule.torch.nn as tnn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = tnn.Linear(2, 2)
            self.mask = torch.ones(2, 2)  # a plain tensor: not a parameter, not a buffer

    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["fc.weight", "fc.bias"]
    assert list(net.state_dict()) == ["fc.weight", "fc.bias"] and type(net.mask) is torch.Tensor
    enc, dec = tnn.Embedding(5, 4), tnn.Linear(4, 5)
    dec.weight = enc.weight  # tied weights count once, as PyTorch's parameters()
    assert len(list(tnn.ModuleList([enc, dec]).parameters())) == 2
    t = torch.ones(3, requires_grad=True)
    t.sum().backward()
    assert abs(float(torch.nn.utils.clip_grad_norm_([t], 1.0)) - 3**0.5) < 1e-6
