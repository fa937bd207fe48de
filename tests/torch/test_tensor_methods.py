"""PyTorch's tensor methods on the chainrule array class (installed by chainrule.core).

The methods live in chainrule/core/tensor_methods.py; chainrule.torch compares them with its
functions here.
"""

import subprocess
import sys

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as ct
from chainrule.core.tensor_methods import install


def _name(dtype):
    return str(dtype).replace("torch.", "")


def _x():
    return np.array([[3.0, 1.0, 3.0, 0.0], [-1.0, 5.0, 2.0, 5.0]], np.float32)


METHOD_CASES = [
    ("view", lambda x: x.view(-1)),
    ("view_ints", lambda x: x.view(4, 2)),
    ("view_tuple", lambda x: x.view((2, 2, 2))),
    ("view_as", lambda x: x.view_as(x.t())),
    ("reshape_as", lambda x: x.reshape_as(x.t())),
    ("float", lambda x: x.long().float()),
    ("double", lambda x: x.double()),
    ("half", lambda x: x.half()),
    ("long", lambda x: x.long()),
    ("int", lambda x: x.int()),
    ("short", lambda x: x.short()),
    ("byte", lambda x: x.abs().byte()),
    ("bool", lambda x: x.bool()),
    ("type_as", lambda x: x.type_as(x.long())),
    ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("unsqueeze_neg", lambda x: x.unsqueeze(-1)),
    ("permute", lambda x: x.unsqueeze(0).permute(2, 0, 1)),
    ("permute_tuple", lambda x: x.unsqueeze(0).permute((1, 2, 0))),
    ("contiguous", lambda x: x.contiguous()),
    ("clone", lambda x: x.clone()),
    ("expand", lambda x: x[:1].expand(3, -1)),
    ("expand_new_dim", lambda x: x.expand(2, 2, 4)),
    ("expand_as", lambda x: x[:, :1].expand_as(x)),
    ("to_dtype", lambda x: x.to(x.long().dtype)),
    ("masked_fill", lambda x: x.masked_fill(x > 2, -9.0)),
    ("clamp", lambda x: x.clamp(0, 3)),
    ("relu", lambda x: x.relu()),
    ("log_softmax", lambda x: x.log_softmax(1)),
    ("log_softmax_kw", lambda x: x.log_softmax(dim=0)),
    ("t", lambda x: x.t()),
    ("add", lambda x: x.add(x, alpha=3)),
    ("sub", lambda x: x.sub(1)),
    ("mul", lambda x: x.mul(x)),
    ("div", lambda x: x.div(2)),
    ("pow", lambda x: x.pow(2)),
    ("matmul", lambda x: x.matmul(x.t())),
    ("mm", lambda x: x.mm(x.t())),
    ("eq", lambda x: x.eq(3)),
    ("ne", lambda x: x.ne(x.t().t())),
    ("gt", lambda x: x.gt(1)),
    ("ge", lambda x: x.ge(1)),
    ("lt", lambda x: x.lt(1)),
    ("le", lambda x: x.le(1)),
    # PyTorch semantics chosen by the dim/keepdim keywords
    ("sum_dim", lambda x: x.sum(dim=1)),
    ("sum_dim_keep", lambda x: x.sum(dim=0, keepdim=True)),
    ("sum_pos_keep", lambda x: x.sum(1, keepdim=True)),
    ("sum_int_dim", lambda x: x.long().sum(dim=0)),
    ("mean_dim", lambda x: x.mean(dim=(0, 1))),
    ("max_dim_values", lambda x: x.max(dim=1).values),
    ("max_dim_indices", lambda x: x.max(dim=1).indices),
    ("min_dim_indices", lambda x: x.min(dim=0, keepdim=True)[1]),
    ("argmax_dim", lambda x: x.argmax(dim=1)),
    ("argmin_dim_keep", lambda x: x.argmin(dim=0, keepdim=True)),
    ("softmax_dim", lambda x: x.softmax(dim=1)),
    ("logsumexp_dim", lambda x: x.logsumexp(dim=1)),
    ("cumsum_dim", lambda x: x.cumsum(dim=1)),
    ("cumprod_dim", lambda x: x.cumprod(dim=0)),
    ("all_dim", lambda x: (x > 0).all(dim=1)),
    ("any_dim", lambda x: (x > 4).any(dim=0)),
    ("squeeze_dim_not_1", lambda x: x.squeeze(dim=0)),
    ("squeeze_dim_1", lambda x: x.unsqueeze(1).squeeze(dim=1)),
    ("flatten_start_dim", lambda x: x.unsqueeze(0).flatten(start_dim=1)),
    ("flatten_end_dim", lambda x: x.unsqueeze(2).flatten(end_dim=1)),
]


@pytest.mark.parametrize("name, f", METHOD_CASES, ids=[c[0] for c in METHOD_CASES])
def test_methods_match_pytorch(name, f):
    torch = pytest.importorskip("torch")
    x = _x()
    ours, theirs = f(ct.tensor(x)), f(torch.tensor(x))
    assert ours.shape == tuple(theirs.shape)
    assert _name(ours.dtype) == _name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_positional_calls_keep_mlx_meaning():
    x = mx.array(_x())  # an MLX array: positional calls keep MLX's meanings
    assert x.max(1).tolist() == [3.0, 5.0]  # MLX: values only
    assert x.argmax(1).dtype == mx.uint32  # MLX: uint32
    assert x.sum(0, True).shape == (1, 4)  # MLX: keepdims positional
    with pytest.raises(ValueError):
        x.squeeze(0)  # MLX refuses to squeeze a dimension that is not 1
    assert x.max(dim=1).indices.dtype == ct.int64
    with pytest.raises(TypeError, match="both"):
        x.sum(1, dim=0)


def test_existing_pytorch_methods_still_work():
    x = ct.zeros(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.dim() == 2 and x.numel() == 6
    assert x.nelement() == 6 and x.ndimension() == 2 and x.is_floating_point()


def test_view_refuses_bad_shapes():
    x = ct.zeros(2, 3)
    with pytest.raises(ValueError, match="reshape"):
        x.view(4, 2)
    with pytest.raises(ValueError, match="cannot view shape"):
        x.view(ct.float64)  # 3 float32s per row are not a whole number of float64s
    with pytest.raises(TypeError, match="integers"):
        x.view(2.5, 3)


def test_view_as_another_dtype_reinterprets_the_bytes():
    x = ct.tensor([[1.0, 2.0], [3.0, 4.0]])
    bits = x.view(ct.int32)
    assert bits.dtype == ct.int32 and bits.shape == (2, 2)
    np.testing.assert_array_equal(np.asarray(bits), np.asarray(x).view(np.int32))
    z = x.view(ct.complex64)
    assert z.shape == (2, 1) and complex(z[1, 0].item()) == 3 + 4j


def test_to_cpu_cuda_and_device():
    x = ct.tensor([1.0, 2.0])
    assert x.to("cpu") is x and x.to(ct.device("cpu")) is x and x.cpu() is x
    assert x.to(ct.float32) is x
    assert x.to("cpu", ct.float64).dtype == ct.float64
    assert x.to(device="cpu", dtype=ct.int64).dtype == ct.int64
    assert x.to(ct.tensor([1])).dtype == ct.int64
    assert x.to(ct.float32, copy=True) is not x
    assert x.device == ct.device("cpu") and str(x.device) == "cpu" and x.is_cuda is False
    for call in (lambda: x.to("cuda"), lambda: x.cuda(), lambda: x.to("cuda:0", ct.float64)):
        with pytest.raises(ValueError, match="CPU"):
            call()
    with pytest.raises(TypeError, match="unexpected"):
        x.to(banana=1)


def test_clone_passes_gradients_and_conversions_are_differentiable():
    w = ct.tensor([1.0, 2.0], requires_grad=True)
    (w.clone() * 3 + w.double().float() * w.view(2, 1).view(-1)).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 3 + 2 * np.array([1.0, 2.0]))


def test_data_zero_and_fill_rebind_the_handle():
    w = ct.tensor([1.0, 2.0], requires_grad=True)
    before = w * 1  # a graph recorded before the update keeps the old value
    d = w.data
    assert not d.requires_grad and d.tolist() == [1.0, 2.0]
    w.data = w.data - 0.5
    assert w.requires_grad and w.is_leaf and w.tolist() == [0.5, 1.5]
    assert before.tolist() == [1.0, 2.0]
    w.data = np.array([7.0, 8.0])
    assert w.tolist() == [7.0, 8.0] and w.dtype == ct.float32
    assert w.fill_(3.0) is w and w.tolist() == [3.0, 3.0]
    assert w.zero_() is w and w.tolist() == [0.0, 0.0] and w.is_leaf
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0]
    assert w.grad.zero_().tolist() == [0.0, 0.0]


def test_install_is_idempotent_and_keeps_core_methods():
    sum_method = mx.array.sum
    install(mx.array)
    install()
    assert mx.array.sum is sum_method
    assert mx.array.size is mx.array.__dict__["size"]  # the core's size was not replaced


def test_methods_exist_after_importing_only_the_core():
    # The methods must not depend on the user importing chainrule.torch: the core installs
    # them (chainrule/core/tensor_methods.py, from chainrule/core/__init__.py).
    code = (
        "import sys, chainrule.core as mx; x = mx.zeros((2, 3)); "
        "print(x.view(-1).shape, x.long().dtype, x.max(dim=1).indices.dtype, x.device); "
        "assert not [m for m in sys.modules if m.startswith('chainrule.torch')]"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(6,)", "int64", "int64", "cpu"]
