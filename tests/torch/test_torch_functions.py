"""chainrule.torch functions: PyTorch's names, dtypes and values, checked against PyTorch."""

import math
import sys

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as ct


def _name(dtype):
    """'float32' for chainrule's float32 and for torch.float32."""
    return str(dtype).replace("torch.", "")


def _torch():
    return pytest.importorskip("torch")


# -- creation ----------------------------------------------------------------------------------

TENSOR_DATA = [
    1.0,
    3,
    True,
    [1, 2],
    [1.0, 2],
    [[1, 2], [3, 4]],
    [True, False],
    [],
    np.arange(3, dtype=np.float64),
    np.arange(3, dtype=np.int32),
    np.float64(2.0),
    np.arange(4, dtype=np.uint8),
]


@pytest.mark.parametrize("data", TENSOR_DATA, ids=repr)
def test_tensor_dtype_rules_follow_pytorch(data):
    torch = _torch()
    ours, theirs = ct.tensor(data), torch.tensor(data)
    assert _name(ours.dtype) == _name(theirs.dtype)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_tensor_dtype_rules_without_torch():
    assert ct.tensor(1.0).dtype == ct.float32
    assert ct.tensor([1, 2]).dtype == ct.int64
    assert ct.tensor(True).dtype == ct.bool
    assert ct.tensor(np.zeros(2)).dtype == ct.float64
    assert ct.tensor([1, 2], dtype=ct.float).dtype == ct.float32
    assert ct.tensor([1, 2], dtype=float).dtype == ct.float64  # Python's float is double
    assert ct.tensor(2.0, requires_grad=True).requires_grad


def test_tensor_copies_and_as_tensor_shares():
    a = ct.tensor([1.0, 2.0])
    assert ct.as_tensor(a) is a
    assert ct.as_tensor(a, dtype=ct.float64).dtype == ct.float64
    src = np.arange(3.0)
    t = ct.from_numpy(src)
    src[0] = 100.0
    assert t.dtype == ct.float64 and t.tolist() == [0.0, 1.0, 2.0]  # values are immutable
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ct.from_numpy([1, 2])
    with pytest.raises(TypeError, match="floating"):
        ct.tensor([1, 2], requires_grad=True)


CREATION = [
    ("zeros", (2, 3), {}),
    ("zeros", ((2, 3),), {}),
    ("ones", ([4],), {}),
    ("ones", (2,), {"dtype": "int64"}),
    ("empty", (3, 1), {}),
    ("full", ((2,), 3), {}),
    ("full", ((2,), 3.5), {}),
    ("full", ((2, 2), True), {}),
    ("arange", (5,), {}),
    ("arange", (1, 10, 3), {}),
    ("arange", (0, 1, 0.25), {}),
    ("arange", (0.0, 3), {}),
    ("linspace", (0, 1, 5), {}),
    ("eye", (3,), {}),
    ("eye", (2, 3), {}),
]


@pytest.mark.parametrize("name, args, kwargs", CREATION, ids=lambda v: repr(v))
def test_creation_matches_pytorch(name, args, kwargs):
    torch = _torch()
    tkw = {k: getattr(torch, v) for k, v in kwargs.items()}
    ckw = {k: getattr(ct, v) for k, v in kwargs.items()}
    ours, theirs = getattr(ct, name)(*args, **ckw), getattr(torch, name)(*args, **tkw)
    assert _name(ours.dtype) == _name(theirs.dtype)
    assert ours.shape == tuple(theirs.shape)
    if name != "empty":
        np.testing.assert_allclose(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("fn", ["zeros_like", "ones_like", "empty_like", "randn_like", "rand_like"])
def test_like_functions_keep_shape_and_dtype(fn):
    src = ct.zeros(2, 5, dtype=ct.float64)
    out = getattr(ct, fn)(src)
    assert out.shape == (2, 5) and out.dtype == ct.float64
    assert ct.zeros_like(ct.tensor([1, 2])).dtype == ct.int64
    assert ct.full_like(ct.tensor([1, 2]), 7).tolist() == [7, 7]


@pytest.mark.parametrize(
    "fn, args, dtype",
    [
        ("randn", (2, 3), "float32"),
        ("rand", ((4,),), "float32"),
        ("randint", (0, 10, (3, 2)), "int64"),
        ("randint", (10, (5,)), "int64"),
        ("randperm", (6,), "int64"),
    ],
)
def test_random_functions_shapes_dtypes_and_ranges(fn, args, dtype):
    torch = _torch()
    ours, theirs = getattr(ct, fn)(*args), getattr(torch, fn)(*args)
    assert _name(ours.dtype) == _name(theirs.dtype) == dtype
    assert ours.shape == tuple(theirs.shape)
    v = ours.numpy()
    if fn == "rand":
        assert ((v >= 0) & (v < 1)).all()
    if fn == "randint":
        assert ((v >= 0) & (v < 10)).all()
    if fn == "randperm":
        assert sorted(v.tolist()) == list(range(6))


def test_randint_size_keyword_and_errors():
    assert ct.randint(3, 5, size=(4,)).shape == (4,)
    with pytest.raises(ValueError, match="low < high"):
        ct.randint(5, 5, (2,))
    with pytest.raises(TypeError, match="size"):
        ct.randint(5)


def test_manual_seed_is_the_global_seed():
    ct.manual_seed(0)
    a = (ct.randn(3), ct.rand(2), ct.randint(0, 100, (4,)))
    mx.random.seed(0)
    b = (ct.randn(3), ct.rand(2), ct.randint(0, 100, (4,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_generators_are_private_streams():
    g = ct.Generator().manual_seed(42)
    a = ct.randn(5, generator=g)
    ct.manual_seed(1)  # the global state does not matter
    b = ct.randn(5, generator=ct.Generator().manual_seed(42))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert g.initial_seed() == 42
    state = g.get_state()
    c = ct.randint(0, 9, (6,), generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(c.numpy(), ct.randint(0, 9, (6,), generator=g).numpy())


# -- reductions --------------------------------------------------------------------------------


def _matrix():
    # integer-valued floats with ties, so index conventions are exercised
    return np.array([[3.0, 1.0, 3.0, 0.0], [-1.0, 5.0, 2.0, 5.0], [0.0, 0.0, 0.0, 0.0]], np.float32)


@pytest.mark.parametrize("fn", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_int64_indices(fn, dim, keepdim):
    torch = _torch()
    x = _matrix()
    ours = getattr(ct, fn)(ct.tensor(x), dim, keepdim=keepdim)
    theirs = getattr(torch, fn)(torch.tensor(x), dim, keepdim=keepdim)
    values, indices = ours
    assert ours.values is values and ours.indices is indices
    assert indices.dtype == ct.int64
    np.testing.assert_array_equal(values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())


def test_max_min_without_dim_and_elementwise():
    torch = _torch()
    x = _matrix()
    assert ct.max(ct.tensor(x)).item() == torch.max(torch.tensor(x)).item()
    assert ct.min(ct.tensor(x)).shape == ()
    a, b = ct.tensor([1.0, 5.0]), ct.tensor([3.0, 2.0])
    assert ct.max(a, b).tolist() == [3.0, 5.0] and ct.min(a, b).tolist() == [1.0, 2.0]


def test_max_with_dim_sends_the_gradient_to_the_chosen_element():
    torch = _torch()
    x = _matrix()
    ours = ct.tensor(x, requires_grad=True)
    (ct.max(ours, 1).values * ct.tensor([1.0, 2.0, 3.0])).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    (torch.max(theirs, 1).values * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, True), (-1, False)])
def test_argmax_argmin_are_int64_like_pytorch(fn, dim, keepdim):
    torch = _torch()
    x = _matrix()
    ours = getattr(ct, fn)(ct.tensor(x), dim=dim, keepdim=keepdim)
    theirs = getattr(torch, fn)(torch.tensor(x), dim=dim, keepdim=keepdim)
    assert ours.dtype == ct.int64
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("fn", ["sum", "mean"])
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1), [1]])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_match_pytorch(fn, dim, keepdim):
    torch = _torch()
    x = _matrix()
    kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    ours, theirs = getattr(ct, fn)(ct.tensor(x), **kw), getattr(torch, fn)(torch.tensor(x), **kw)
    assert ours.shape == tuple(theirs.shape) and _name(ours.dtype) == _name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_integer_sums_are_int64():
    torch = _torch()
    for data in ([1, 2, 3], [True, False, True], np.arange(4, dtype=np.int32)):
        ours, theirs = ct.sum(ct.tensor(data)), torch.sum(torch.tensor(data))
        assert _name(ours.dtype) == _name(theirs.dtype) == "int64"
        assert ours.item() == theirs.item()


@pytest.mark.parametrize("fn", ["std", "var"])
@pytest.mark.parametrize(
    "kwargs", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"unbiased": False}, {"correction": 0}]
)
def test_std_var_are_unbiased_by_default(fn, kwargs):
    torch = _torch()
    x = _matrix()
    ours, theirs = (
        getattr(ct, fn)(ct.tensor(x), **kwargs),
        getattr(torch, fn)(torch.tensor(x), **kwargs),
    )
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5)


# -- shapes, joins and elementwise -------------------------------------------------------------


def _x3():
    return np.arange(24, dtype=np.float32).reshape(2, 3, 4)


SHAPE_CASES = [
    ("flatten", lambda m, x: m.flatten(x)),
    ("flatten_1", lambda m, x: m.flatten(x, 1)),
    ("flatten_0_1", lambda m, x: m.flatten(x, 0, 1)),
    ("unsqueeze_0", lambda m, x: m.unsqueeze(x, 0)),
    ("unsqueeze_-1", lambda m, x: m.unsqueeze(x, -1)),
    ("squeeze_not_1", lambda m, x: m.squeeze(x, 0)),
    ("squeeze_1", lambda m, x: m.squeeze(m.unsqueeze(x, 1), 1)),
    ("squeeze_all", lambda m, x: m.squeeze(m.unsqueeze(x, 0))),
    ("transpose", lambda m, x: m.transpose(x, 0, 2)),
    ("permute", lambda m, x: m.permute(x, (2, 0, 1))),
    ("reshape", lambda m, x: m.reshape(x, (4, -1))),
    ("t", lambda m, x: m.t(m.reshape(x, (6, 4)))),
    ("cat_0", lambda m, x: m.cat([x, x], 0)),
    ("cat_-1", lambda m, x: m.cat((x, x), dim=-1)),
    ("stack_1", lambda m, x: m.stack([x, x], dim=1)),
    ("softmax", lambda m, x: m.softmax(x, dim=1)),
    ("log_softmax", lambda m, x: m.log_softmax(x / 10, -1)),
    ("relu", lambda m, x: m.relu(x - 10)),
    ("clamp_min", lambda m, x: m.clamp(x, min=3)),
    ("clamp_both", lambda m, x: m.clamp(x, 2, 9)),
    ("where", lambda m, x: m.where(x > 5, x, m.zeros_like(x))),
    ("exp_log", lambda m, x: m.log(m.exp(x / 24) + 1)),
    ("sigmoid_tanh", lambda m, x: m.sigmoid(x / 10) + m.tanh(x / 10)),
    ("sqrt_abs", lambda m, x: m.sqrt(m.abs(x - 12))),
    ("matmul", lambda m, x: m.matmul(x, m.transpose(x, 1, 2))),
    ("sort_desc", lambda m, x: m.sort(x % 5, dim=1, descending=True).values),
    ("sort_asc", lambda m, x: m.sort(-x, dim=-1).values),
    ("topk_values", lambda m, x: m.topk(x, 2, dim=1).values),
    ("topk_indices", lambda m, x: m.topk(x, 2, dim=1).indices),
    ("topk_smallest", lambda m, x: m.topk(x, 3, largest=False).indices),
    ("argsort", lambda m, x: m.argsort(-x, dim=1)),
    ("div_trunc", lambda m, x: m.div(x - 12, 5, rounding_mode="trunc")),
    ("div_floor", lambda m, x: m.div(x - 12, 5, rounding_mode="floor")),
    ("add_alpha", lambda m, x: m.add(x, x, alpha=2)),
]


@pytest.mark.parametrize("name, f", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_functions_match_pytorch(name, f):
    torch = _torch()
    x = _x3()
    ours, theirs = f(ct, ct.tensor(x)), f(torch, torch.tensor(x))
    assert ours.shape == tuple(theirs.shape)
    assert _name(ours.dtype) == _name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_where_with_one_argument_is_nonzero():
    torch = _torch()
    x = _matrix()
    ours, theirs = ct.where(ct.tensor(x) > 1), torch.where(torch.tensor(x) > 1)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert o.dtype == ct.int64
        np.testing.assert_array_equal(o.numpy(), t.numpy())


def test_predicates_and_counts():
    a = ct.tensor([1.0, 2.0])
    assert ct.allclose(a, a + 1e-9) is True
    assert ct.allclose(a, a + 1) is False
    assert ct.equal(a, ct.tensor([1.0, 2.0])) is True
    assert ct.is_tensor(a) and not ct.is_tensor(np.zeros(2))
    assert ct.numel(ct.zeros(3, 4)) == 12
    assert ct.is_floating_point(a) and not ct.is_floating_point(ct.tensor([1]))
    with pytest.raises(ValueError, match="at least one of min and max"):
        ct.clamp(a)
    with pytest.raises(IndexError, match="out of range"):
        ct.argmax(a, dim=3)


# -- names, devices and switches ---------------------------------------------------------------


def test_dtype_aliases_and_tensor_class():
    assert ct.float is ct.float32 is mx.float32
    assert ct.double is ct.float64 and ct.half is ct.float16
    assert ct.long is ct.int64 and ct.int is ct.int32 and ct.short is ct.int16
    assert ct.bool is mx.bool_ and ct.uint8 is mx.uint8 and ct.int8 is mx.int8
    assert issubclass(ct.Tensor, mx.array) and ct.Tensor is not mx.array
    assert isinstance(mx.zeros(2), ct.Tensor)
    assert ct.get_default_dtype() is ct.float32


@pytest.mark.host_only  # no GPU present: on the CPU only (conftest.py)
def test_devices_are_cpu_only():
    assert ct.device("cpu") == "cpu" and str(ct.device("cuda:0")) == "cuda:0"
    assert ct.device("cuda", 1).index == 1
    assert ct.cuda.is_available() is False and ct.cuda.device_count() == 0
    assert ct.backends.mps.is_available() is False
    assert ct.zeros(2, device="cpu").shape == (2,)
    for bad in ("cuda", ct.device("cuda:0"), "mps"):
        with pytest.raises(ValueError, match="CPU"):
            ct.tensor([1.0], device=bad)
    with pytest.raises(ValueError, match="not available"):
        ct.randn(2, device="cuda")


def test_grad_switches():
    w = ct.tensor([1.0, 2.0], requires_grad=True)
    with ct.no_grad():
        assert not (w * 2).requires_grad
        with ct.enable_grad():
            assert (w * 2).requires_grad
    with ct.set_grad_enabled(False):
        assert not ct.is_grad_enabled()
    assert ct.is_grad_enabled()
    with ct.inference_mode():
        assert not (w * 2).requires_grad

    @ct.no_grad()
    def f(v):
        return v * 3

    assert not f(w).requires_grad and (w * 3).requires_grad


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_function'"):
        ct.not_a_function  # noqa: B018


# -- issue 15: torch.* breadth (chainrule/torch/_more.py, _more_creation.py) --------------------


@pytest.mark.parametrize(
    "name", ["bartlett_window", "blackman_window", "hamming_window", "hann_window", "kaiser_window"]
)
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_match_pytorch(name, periodic):
    torch = _torch()
    for n in (0, 1, 2, 7):
        ours = getattr(ct, name)(n, periodic=periodic)
        theirs = getattr(torch, name)(n, periodic=periodic)
        assert _name(ours.dtype) == _name(theirs.dtype)
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_creation_breadth_matches_pytorch():
    torch = _torch()
    pairs = [
        (ct.logspace(-1, 2, 5), torch.logspace(-1, 2, 5)),
        (
            ct.logspace(0, 3, 4, base=2, dtype=ct.float64),
            torch.logspace(0, 3, 4, base=2, dtype=torch.float64),
        ),
        (ct.range(1, 4), torch.range(1, 4)),
        (ct.range(0, 1, 0.25), torch.range(0, 1, 0.25)),
        (ct.scalar_tensor(3), torch.scalar_tensor(3)),
        (ct.tril_indices(3, 4, 1), torch.tril_indices(3, 4, 1)),
        (ct.triu_indices(4, 3, -1), torch.triu_indices(4, 3, -1)),
        (ct.empty_strided((2, 3), (3, 1)).shape, torch.empty_strided((2, 3), (3, 1)).shape),
        (ct.asarray([1, 2]), torch.asarray([1, 2])),
        (
            ct.frombuffer(bytearray(b"\x01\x00\x02\x00"), dtype=ct.int16),
            torch.frombuffer(bytearray(b"\x01\x00\x02\x00"), dtype=torch.int16),
        ),
    ]
    for ours, theirs in pairs:
        if isinstance(theirs, tuple):
            assert tuple(ours) == tuple(theirs)
            continue
        assert _name(ours.dtype) == _name(theirs.dtype)
        np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-6)


def test_random_breadth():
    ct.manual_seed(3)
    assert ct.initial_seed() == 3
    state = ct.get_rng_state()
    a = ct.normal(ct.zeros(4), ct.ones(4))
    ct.set_rng_state(state)
    assert np.array_equal(np.asarray(ct.normal(ct.zeros(4), ct.ones(4))), np.asarray(a))
    assert ct.normal(2.0, 3.0, size=(2, 3)).shape == (2, 3)
    m = ct.zeros(3, requires_grad=True)
    ct.normal(m, 1.0).sum().backward()
    assert np.array_equal(np.asarray(m.grad), np.ones(3))
    b = ct.bernoulli(ct.full((1000,), 0.3))
    assert 0.2 < float(b.mean()) < 0.4 and set(np.unique(np.asarray(b))) <= {0.0, 1.0}
    p = ct.poisson(ct.full((2000,), 4.0))
    assert abs(float(p.mean()) - 4) < 0.3 and str(p.dtype).endswith("float32")
    k = ct.binomial(ct.full((2000,), 10.0), ct.full((2000,), 0.2))
    assert abs(float(k.mean()) - 2) < 0.2
    idx = ct.multinomial(ct.tensor([0.0, 1.0, 1.0]), 2)
    assert sorted(np.asarray(idx).tolist()) == [1, 2] and str(idx.dtype).endswith("int64")
    r = ct.randint_like(ct.zeros(2, 3), 5)
    assert r.shape == (2, 3) and int(r.max()) < 5


def test_type_helpers_match_pytorch():
    torch = _torch()
    names = [
        "bool",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]
    for a in names:
        for b in names:
            theirs = torch.promote_types(getattr(torch, a), getattr(torch, b))
            assert _name(ct.promote_types(getattr(ct, a), getattr(ct, b))) == _name(theirs), (a, b)
            assert ct.can_cast(getattr(ct, a), getattr(ct, b)) == torch.can_cast(
                getattr(torch, a), getattr(torch, b)
            ), (a, b)
    assert ct.typename(ct.ones(2)) == torch.typename(torch.ones(2))
    assert ct.typename(ct.ones(2, dtype=ct.int64)) == torch.typename(torch.ones(2).long())
    assert isinstance(ct.ones(2), ct.FloatTensor) and not isinstance(ct.ones(2), ct.LongTensor)
    x = ct.LongTensor([1, 2])
    assert _name(x.dtype) == "int64" and ct.FloatTensor(2, 3).shape == (2, 3)
    s = ct.sort(ct.tensor([3.0, 1.0]))
    assert isinstance(s, ct.return_types.sort) and s.indices.tolist() == [1, 0]
    assert isinstance(ct.ones(2, 3).size(), ct.Size) and ct.Size([2, 3]).numel() == 6
    assert ct.finfo(ct.float32).eps == torch.finfo(torch.float32).eps
    assert repr(ct.strided) == repr(torch.strided) and ct.ones(1).layout is ct.strided


def test_switches_and_control_flow():
    torch = _torch()
    before = ct.get_num_threads()
    try:
        ct.set_num_threads(3)
        assert ct.get_num_threads() == 3
    finally:
        ct.set_num_threads(before)  # the BLAS count is process-wide: leave it as found
    with pytest.raises(RuntimeError):
        ct.set_num_threads(0)
    ct.use_deterministic_algorithms(True, warn_only=True)
    assert ct.are_deterministic_algorithms_enabled() and ct.get_deterministic_debug_mode() == 1
    ct.set_deterministic_debug_mode("default")
    assert not ct.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError):
        ct.set_float32_matmul_precision("fast")
    x = ct.tensor([1.0, 2.0])
    assert ct.cond(x.sum() > 0, lambda v: v * 2, lambda v: v, (x,)).tolist() == [2.0, 4.0]
    out = ct.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * 2), (0, x))
    theirs = torch.while_loop(
        lambda i, v: i < 3, lambda i, v: (i + 1, v * 2), (torch.tensor(0), torch.tensor([1.0, 2.0]))
    )
    assert out[1].tolist() == theirs[1].tolist()
    assert ct.wait(ct.fork(lambda a: a + 1, 1)) == 2
    assert ct.sym_max(2, 5) == 5 and ct.sym_int(2.7) == 2 and ct.sym_ite(False, 1, 2) == 2


def test_compile_over_mx_compile():
    f = ct.compile(lambda a, b: (a * b).sum())
    assert float(f(ct.ones(3), ct.ones(3))) == 3.0
    g = ct.compile(mode="reduce-overhead")(lambda a: a + 1)
    assert g(ct.zeros(2)).tolist() == [1.0, 1.0]
    h = ct.compile(lambda a: a, disable=True)
    assert h(1) == 1
    with pytest.raises(ValueError, match="backend"):
        ct.compile(lambda a: a, backend="tvm-nope")
    with pytest.raises(RuntimeError, match="mode"):
        ct.compile(lambda a: a, mode="turbo")
    model = ct.nn.Linear(3, 2)
    cm = ct.compile(model)
    x = ct.ones(4, 3)
    np.testing.assert_allclose(np.asarray(cm(x)), np.asarray(model(x)), rtol=1e-6)
    assert cm.weight is model.weight and cm._orig_mod is model


def test_compile_traces_tensors_once_and_keeps_their_meanings():
    # tensors are the arrays of the signature (not constants keyed by identity: every call with
    # new tensors traced again and the cache grew per call), and stay tensors inside the trace
    # (PyTorch's max(dim) with indices) and in the results
    C = sys.modules["chainrule.core.compile"]

    def f(a, b):
        values, indices = (a * b).max(1)
        return values.sum() + indices.float().mean(), a.t()

    cf = ct.compile(f)
    before = dict(C.STATS)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = (ct.tensor(rng.standard_normal((3, 4)).astype(np.float32)) for _ in range(2))
        got, want = cf(a, b), f(a, b)
        assert all(type(r) is ct.Tensor for r in got)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6)
    assert len(cf.cache) == 1 and cf.last_reason is None
    assert C.STATS["traces"] - before["traces"] == 1 and C.STATS["replays"] - before["replays"] == 3


def test_small_functions_match_pytorch():
    torch = _torch()
    rng = np.random.default_rng(0)
    v = rng.standard_normal((3, 4)).astype(np.float32)
    ours, theirs = ct.tensor(v), torch.tensor(v)
    np.testing.assert_allclose(
        np.asarray(ct.norm_except_dim(ours, 2, 0)),
        torch.norm_except_dim(theirs, 2, 0).numpy(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        np.asarray(ct.frobenius_norm(ours, (0, 1))),
        torch.frobenius_norm(theirs, (0, 1)).numpy(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        np.asarray(ct.nuclear_norm(ours)), torch.nuclear_norm(theirs).numpy(), rtol=1e-5
    )
    data = rng.standard_normal((6, 2)).astype(np.float32)
    lengths = np.array([2, 0, 3, 1])
    for red in ("sum", "mean", "max", "min", "prod"):
        a = ct.segment_reduce(ct.tensor(data), red, lengths=ct.tensor(lengths))
        b = torch.segment_reduce(torch.tensor(data), red, lengths=torch.tensor(lengths))
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-5, equal_nan=True, err_msg=red)
    pts = rng.standard_normal((20, 2)).astype(np.float32)
    a = ct.histogramdd(ct.tensor(pts), bins=[3, 4])
    b = torch.histogramdd(torch.tensor(pts), bins=[3, 4])
    np.testing.assert_allclose(np.asarray(a.hist), b.hist.numpy())
    for e1, e2 in zip(a.bin_edges, b.bin_edges):
        np.testing.assert_allclose(np.asarray(e1), e2.numpy(), rtol=1e-5)
    assert ct.get_device(ours) == torch.get_device(theirs) == -1


def test_functional_aliases_match_pytorch():
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    wt = rng.standard_normal((3, 4, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    for lib_args in [
        lambda L: (L.tensor(x), L.tensor(w), L.tensor(b), [2], [1], [1], False, [0], 1),
        lambda L: (L.tensor(x), L.tensor(wt), None, [2], [1], [1], True, [1], 1),
    ]:
        a, r = ct.convolution(*lib_args(ct)), torch.convolution(*lib_args(torch))
        np.testing.assert_allclose(np.asarray(a), r.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(ct.constant_pad_nd(ct.tensor(x), [1, 2], 3.0)),
        torch.constant_pad_nd(torch.tensor(x), [1, 2], 3.0).numpy(),
    )
    ours = ct.native_layer_norm(ct.tensor(x), [8], None, None, 1e-5)
    theirs = torch.native_layer_norm(torch.tensor(x), [8], None, None, 1e-5)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(p), q.numpy(), rtol=1e-5, atol=1e-6)
    out, mask = ct.native_dropout(ct.ones(1000), 0.25, True)
    assert _name(mask.dtype) == "bool"
    np.testing.assert_allclose(np.asarray(out), np.asarray(mask) / np.float32(0.75), rtol=1e-6)
    a = rng.standard_normal((3, 3))
    rhs = rng.standard_normal((3, 2))
    lu, piv = ct.lu(ct.tensor(a))
    lu_t, piv_t = torch.lu(torch.tensor(a))
    np.testing.assert_allclose(np.asarray(lu), lu_t.numpy(), rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(ct.lu_solve(ct.tensor(rhs), lu, piv)),
        torch.lu_solve(torch.tensor(rhs), lu_t, piv_t).numpy(),
        rtol=1e-10,
    )


def test_igamma_derivative_in_input_is_refused_as_in_pytorch():
    torch = _torch()
    for lib in (ct, torch):
        a = lib.tensor([2.0], requires_grad=True)
        with pytest.raises(NotImplementedError, match="igamma: input"):
            lib.igamma(a, lib.tensor([1.5])).sum().backward()


def test_log_softmax_gives_pytorchs_values_and_gradients_also_for_infinite_rows():
    torch = _torch()
    inf, nan = math.inf, math.nan
    x = np.array([[inf, 1.0, 2.0], [-inf] * 3, [1.0, -inf, 2.0], [nan, 1.0, 2.0]], np.float32)
    for dim in (-1, 0):
        np.testing.assert_allclose(
            ct.log_softmax(ct.tensor(x), dim).numpy(),
            torch.log_softmax(torch.tensor(x), dim).numpy(),
            rtol=1e-6,
        )
    r = np.random.default_rng(3).standard_normal((3, 5))
    ours, theirs = ct.tensor(r, requires_grad=True), torch.tensor(r, requires_grad=True)
    w = np.arange(15.0).reshape(3, 5)
    (ct.log_softmax(ours, 1) * ct.tensor(w)).sum().backward()
    (torch.log_softmax(theirs, 1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)
