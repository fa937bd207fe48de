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


@pytest.mark.host_only  # .to("cuda") without a GPU
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


@pytest.mark.host_only  # the subprocess's default device is the CPU
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


# -- issue 15: in-place methods, creation from a tensor, the rest of the breadth ---------------


def _ref():
    return pytest.importorskip("torch")


def _pair(values, dtype="float32"):
    torch_ref = _ref()
    v = np.asarray(values, dtype=dtype)
    return ct.tensor(v), torch_ref.tensor(v)


def test_inplace_refuses_what_pytorch_refuses():
    torch_ref = _ref()
    for lib in (ct, torch_ref):
        leaf = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            leaf.add_(1)
        with lib.no_grad():
            assert leaf.add_(1) is leaf
        assert leaf.tolist() == [2.0, 2.0, 2.0]
        with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
            lib.ones(3).add_(lib.ones(2, 3))
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            lib.tensor([1, 2]).mul_(1.5)
    a, b = ct.tensor([1, 2]), torch_ref.tensor([1, 2])
    a.add_(True), b.add_(True)
    assert a.tolist() == b.tolist() and _name(a.dtype) == _name(b.dtype)
    x, y = ct.tensor([0.5, 2.0]), torch_ref.tensor([0.5, 2.0])
    x.gt_(1.0), y.gt_(1.0)  # a bool result is written into the float tensor
    assert x.tolist() == y.tolist() and _name(x.dtype) == "float32"


def test_inplace_keeps_graphs_recorded_before():
    w = ct.tensor([1.0, 2.0], requires_grad=True)
    h = w * 3
    saved = h * 1
    h.mul_(2)  # h is not a leaf: rebinding is allowed, the graph follows
    h.sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]
    assert saved.tolist() == [3.0, 6.0]


def test_shape_changing_inplace_methods():
    torch_ref = _ref()
    v = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    for name, args in [
        ("unsqueeze_", (0,)),
        ("squeeze_", (1,)),
        ("transpose_", (0, 2)),
        ("swapdims_", (1, 2)),
        ("t_", ()),
    ]:
        ours, theirs = (
            ct.tensor(v if name != "t_" else v[:, 0]),
            torch_ref.tensor(v if name != "t_" else v[:, 0]),
        )
        assert getattr(ours, name)(*args) is ours
        getattr(theirs, name)(*args)
        assert ours.shape == tuple(theirs.shape) and ours.tolist() == theirs.tolist()


def test_new_methods_and_types_match_pytorch():
    _ref()
    ours, theirs = _pair([[1, 2], [3, 4]], "int32")
    for call in [
        lambda t: t.new_zeros(2, 3),
        lambda t: t.new_ones((2,)),
        lambda t: t.new_full((2, 2), 7),
        lambda t: t.new_empty(3).shape,
        lambda t: t.new_tensor([1.5, 2.5]),
        lambda t: t.new_zeros(2, dtype=t.float().dtype),
        lambda t: t.type(),
        lambda t: t.element_size(),
        lambda t: t.stride(),
        lambda t: t.stride(1),
        lambda t: t.is_contiguous(),
        lambda t: t.is_signed(),
        lambda t: t.is_complex(),
        lambda t: t.get_device(),
        lambda t: t.dim_order(),
    ]:
        a, b = call(ours), call(theirs)
        if hasattr(b, "numpy"):
            assert _name(a.dtype) == _name(b.dtype) and a.tolist() == b.tolist()
        else:
            assert (tuple(a) if isinstance(a, tuple) else a) == (
                tuple(b) if isinstance(b, tuple) else b
            )
    assert _name(ours.type(ct.float64).dtype) == "float64"
    assert _name(ours.type("torch.LongTensor").dtype) == "int64"
    assert ct.ones(1).is_nonzero() and ours.is_same_size(ours * 2)
    with pytest.raises(RuntimeError):
        ct.ones(2).is_nonzero()


def test_copy_fill_apply_map():
    torch_ref = _ref()
    ours, theirs = _pair(np.zeros((2, 3)))
    ours.copy_(ct.tensor([1, 2, 3])), theirs.copy_(torch_ref.tensor([1, 2, 3]))
    assert ours.tolist() == theirs.tolist() and _name(ours.dtype) == "float32"
    ours, theirs = _pair(np.zeros((3, 3)))
    ours.fill_diagonal_(5), theirs.fill_diagonal_(5)
    assert ours.tolist() == theirs.tolist()
    ours, theirs = _pair(np.zeros((7, 3)))
    ours.fill_diagonal_(1, wrap=True), theirs.fill_diagonal_(1, wrap=True)
    assert ours.tolist() == theirs.tolist()
    ours, theirs = _pair([1.0, 2.0])
    ours.apply_(lambda v: v * 10), theirs.apply_(lambda v: v * 10)
    assert ours.tolist() == theirs.tolist()
    ours.map_(ct.tensor([1.0, 1.0]), lambda a, b: a + b)
    assert ours.tolist() == [11.0, 21.0]


@pytest.mark.parametrize(
    "name,args,check",
    [
        ("uniform_", (2.0, 3.0), lambda v: (v >= 2).all() and (v < 3).all()),
        ("normal_", (5.0, 0.1), lambda v: abs(v.mean() - 5) < 0.05),
        (
            "bernoulli_",
            (0.25,),
            lambda v: set(np.unique(v)) <= {0, 1} and abs(v.mean() - 0.25) < 0.1,
        ),
        ("exponential_", (2.0,), lambda v: (v >= 0).all() and abs(v.mean() - 0.5) < 0.1),
        ("geometric_", (0.5,), lambda v: (v >= 1).all() and abs(v.mean() - 2) < 0.3),
        ("log_normal_", (0.0, 0.25), lambda v: (v > 0).all()),
        ("cauchy_", (0.0, 1.0), lambda v: abs(np.median(v)) < 0.2),
        ("random_", (0, 10), lambda v: (v == np.floor(v)).all() and v.min() >= 0 and v.max() < 10),
    ],
)
def test_random_inplace_methods(name, args, check):
    ct.manual_seed(0)
    x = ct.zeros(2000)
    assert getattr(x, name)(*args) is x
    assert check(np.asarray(x))
    ct.manual_seed(0)
    y = getattr(ct.zeros(2000), name)(*args)
    assert np.array_equal(np.asarray(x), np.asarray(y))


def test_matrix_methods_match_pytorch():
    torch_ref = _ref()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    spd = a @ a.T
    ours, theirs = ct.tensor(spd), torch_ref.tensor(spd)
    for call in [
        lambda t: t.cholesky(),
        lambda t: t.cholesky_inverse(),
        lambda t: t.inverse(),
        lambda t: t.det(),
        lambda t: t.logdet(),
        lambda t: t.slogdet(),
        lambda t: t.mH,
        lambda t: t.adjoint(),
        lambda t: t.H,
        lambda t: t.matrix_power(-2),
        lambda t: t.cholesky_solve(t.cholesky()),
        lambda t: t.triangular_solve(t.triu()).solution,
        lambda t: t.qr().R.abs(),
        lambda t: t.svd().S,
    ]:
        x, y = call(ours), call(theirs)
        xs = x if isinstance(x, tuple) else (x,)
        ys = y if isinstance(y, tuple) else (y,)
        for p, q in zip(xs, ys):
            np.testing.assert_allclose(np.asarray(p), q.numpy(), rtol=1e-6, atol=1e-8)
    lu, piv = ours.lu()
    lu_t, piv_t = theirs.lu()
    np.testing.assert_allclose(np.asarray(lu), lu_t.numpy(), rtol=1e-6)
    assert np.asarray(piv).tolist() == piv_t.tolist()
    b = rng.standard_normal((4, 2))
    np.testing.assert_allclose(
        np.asarray(ct.tensor(b).lu_solve(lu, piv)),
        torch_ref.tensor(b).lu_solve(lu_t, piv_t).numpy(),
        rtol=1e-6,
    )
    p, l_, u = ct.lu_unpack(lu, piv)
    pt, lt, ut = torch_ref.lu_unpack(lu_t, piv_t)
    for m1, m2 in ((p, pt), (l_, lt), (u, ut)):
        np.testing.assert_allclose(np.asarray(m1), m2.numpy(), rtol=1e-6, atol=1e-12)
    with pytest.raises(RuntimeError, match="removed"):
        ours.lstsq(ours)


def test_more_shape_methods_match_pytorch():
    torch_ref = _ref()
    v = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ours, theirs = ct.tensor(v), torch_ref.tensor(v)
    for call in [
        lambda t: t.unfold(2, 2, 1),
        lambda t: t.unfold(1, 2, 2),
        lambda t: t.sum_to_size(1, 3, 1),
        lambda t: t.nonzero_static(size=30),
        lambda t: t.narrow_copy(2, 1, 2),
        lambda t: t.split_with_sizes([1, 3], 2),
        lambda t: t.unsafe_chunk(2, 2),
        lambda t: t.dsplit(2),
        lambda t: t.swapdims(0, 2),
        lambda t: t.broadcast_to((2, 2, 3, 4)),
        lambda t: t.diff(dim=0, prepend=t[:1]),
        lambda t: t.logit(0.1),
    ]:
        x, y = call(ours), call(theirs)
        xs = x if isinstance(x, tuple) else (x,)
        ys = y if isinstance(y, tuple) else (y,)
        assert len(xs) == len(ys)
        for p, q in zip(xs, ys):
            assert tuple(p.shape) == tuple(q.shape) and _name(p.dtype) == _name(q.dtype)
            np.testing.assert_allclose(np.asarray(p), q.numpy(), rtol=1e-6)


def test_module_load_and_as_subclass_match_pytorch():
    torch_ref = _ref()
    # Parameters are arrays (made by the shared modules): module_load is called on them.
    for lib, make in ((ct, lambda: mx.zeros(2)), (torch_ref, lambda: torch_ref.zeros(2))):
        p = make()
        out = p.module_load(lib.ones(2))
        assert out.tolist() == [1.0, 1.0] and p.tolist() == [1.0, 1.0]
        other = lib.full((2,), 3.0)
        assert p.module_load(other, assign=True).tolist() == [3.0, 3.0]
        assert p.tolist() == [1.0, 1.0]
    x = ct.ones(2, requires_grad=True)
    y = x.as_subclass(ct.Tensor)
    (y * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    with pytest.raises(TypeError, match="as_subclass"):
        x.as_subclass(int)
