"""Every layer of ``chainrule.nn`` that real MLX has, against real MLX.

Each case builds the layer on both sides with the same arguments, copies MLX's freshly
initialised parameters into chainrule's module (same keys, shapes and dtypes are asserted),
runs the same inputs and compares the outputs, the parameter gradients from
``nn.value_and_grad`` and the gradient with respect to the first input, at float32 tolerance.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402

from .bridge import assert_trees_close, copy_params, to_cx, to_mlx, to_numpy  # noqa: E402

# MLX's FSDP wrapper (gathers parameter shards around each call) needs several processes:
# tests/distributed/test_tensor_parallel.py checks it on 2 and 4 against one process.
DISTRIBUTED = {"FullyShardedModule"}
# Base classes and containers, exercised through the cases below (Sequential) or abstract.
NOT_LAYERS = {"Module"}
# MLX's CPU build cannot evaluate QQLinear's product ("[QQMatmul] NYI for the general case"):
# its parameters in both modes are compared in test_qqlinear_modes_match_mlx.
NO_MLX_CPU = {"QQLinear"}


def rng(seed: int = 0) -> np.random.Generator:
    """The seeded NumPy generator that makes every input."""
    return np.random.default_rng(seed)


def normal(*shape: int, seed: int = 0) -> np.ndarray:
    """Float32 standard normal values."""
    return rng(seed).standard_normal(shape).astype(np.float32)


class Case:
    """One comparison: ``build(nn)`` makes the layer, ``inputs()`` its NumPy arguments."""

    def __init__(
        self,
        cls: str,
        build: Callable[[Any], Any],
        inputs: Callable[[], tuple],
        *,
        call: Callable[..., Any] | None = None,
        train: bool = True,
        tag: str = "",
        tol: dict | None = None,
        input_grad: bool = True,
        warmup: int = 0,
    ) -> None:
        self.cls, self.build, self.inputs = cls, build, inputs
        self.call = call or (lambda m, *xs: m(*xs))
        self.train, self.tol, self.input_grad = train, tol or {}, input_grad
        self.warmup = warmup  # training calls before the compared one (running statistics)
        self.id = cls + (f"-{tag}" if tag else "")


def _mha_call(m: Any, q: Any, k: Any, v: Any, mask: Any) -> Any:
    return m(q, k, v, mask=mask)


def _causal(n: int) -> np.ndarray:
    return np.triu(np.full((n, n), -1e4, np.float32), 1)  # finite in float16 too


def _ints(high: int, *shape: int) -> Callable[[], tuple]:
    return lambda: (rng(1).integers(0, high, shape).astype(np.int32),)


def _x(*shape: int) -> Callable[[], tuple]:
    return lambda: (normal(*shape),)


ACTIVATION_ARGS: dict[str, tuple[tuple, dict]] = {
    "LeakyReLU": ((0.2,), {}),
    "ELU": ((), {"alpha": 0.7}),
    "CELU": ((), {"alpha": 1.3}),
    "Softshrink": ((), {"lambd": 0.3}),
    "HardShrink": ((), {"lambd": 0.3}),
    "Step": ((), {"threshold": 0.2}),
    "PReLU": ((3,), {"init": 0.1}),
}
ACTIVATIONS = [
    "CELU", "ELU", "GELU", "GLU", "HardShrink", "HardTanh", "Hardswish", "LeakyReLU",
    "LogSigmoid", "LogSoftmax", "Mish", "PReLU", "ReLU", "ReLU2", "ReLU6", "SELU", "SiLU",
    "Sigmoid", "Softmax", "Softmin", "Softplus", "Softshrink", "Softsign", "Step", "Tanh",
]  # fmt: skip


def _activation_case(name: str) -> Case:
    args, kwargs = ACTIVATION_ARGS.get(name, ((), {}))
    return Case(
        name, lambda nn: getattr(nn, name)(*args, **kwargs), _x(2, 5, 6 if name != "PReLU" else 3)
    )


CASES: list[Case] = [
    Case("Identity", lambda nn: nn.Identity(), _x(2, 3)),
    Case("Linear", lambda nn: nn.Linear(4, 3), _x(2, 5, 4)),
    Case("Linear", lambda nn: nn.Linear(4, 3, bias=False), _x(2, 4), tag="nobias"),
    Case("Bilinear", lambda nn: nn.Bilinear(3, 4, 5), lambda: (normal(2, 3), normal(2, 4, seed=1))),
    Case("Bilinear", lambda nn: nn.Bilinear(3, 4, 5, bias=False), lambda: (normal(3), normal(4, seed=1)), tag="nobias-unbatched"),
    Case("Conv1d", lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=1), _x(2, 9, 3)),
    Case("Conv1d", lambda nn: nn.Conv1d(4, 6, 3, dilation=2, groups=2, bias=False), _x(2, 11, 4), tag="dilated-groups"),
    Case("Conv2d", lambda nn: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1), _x(2, 7, 6, 3)),
    Case("Conv2d", lambda nn: nn.Conv2d(4, 4, 3, groups=4, dilation=(1, 2)), _x(1, 6, 8, 4), tag="depthwise"),
    Case("Conv3d", lambda nn: nn.Conv3d(2, 3, 2, stride=(1, 2, 1), padding=1), _x(1, 4, 5, 4, 2)),
    Case("ConvTranspose1d", lambda nn: nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), _x(2, 5, 3)),
    Case("ConvTranspose1d", lambda nn: nn.ConvTranspose1d(3, 2, 2, dilation=2, bias=False), _x(1, 4, 3), tag="dilated"),
    Case("ConvTranspose2d", lambda nn: nn.ConvTranspose2d(3, 4, (3, 2), stride=2, padding=(1, 0)), _x(2, 4, 3, 3)),
    Case("ConvTranspose3d", lambda nn: nn.ConvTranspose3d(2, 3, 2, stride=2), _x(1, 2, 3, 2, 2)),
    Case("Embedding", lambda nn: nn.Embedding(10, 4), _ints(10, 2, 5), input_grad=False),
    Case("Embedding", lambda nn: nn.Embedding(10, 4), _x(2, 4), call=lambda m, x: m.as_linear(x), tag="as_linear"),
    Case("LayerNorm", lambda nn: nn.LayerNorm(6), _x(2, 3, 6)),
    Case("LayerNorm", lambda nn: nn.LayerNorm(6, eps=1e-3, affine=False, bias=False), _x(2, 6), tag="noaffine"),
    Case("LayerNorm", lambda nn: nn.LayerNorm(6, bias=False), _x(2, 6), tag="nobias"),
    Case("RMSNorm", lambda nn: nn.RMSNorm(6), _x(2, 3, 6)),
    Case("GroupNorm", lambda nn: nn.GroupNorm(2, 4), _x(2, 3, 5, 4)),
    Case("GroupNorm", lambda nn: nn.GroupNorm(2, 4, pytorch_compatible=True), _x(2, 3, 5, 4), tag="pytorch"),
    Case("GroupNorm", lambda nn: nn.GroupNorm(4, 8, affine=False), _x(2, 6, 8), tag="noaffine"),
    Case("InstanceNorm", lambda nn: nn.InstanceNorm(4), _x(2, 5, 5, 4)),
    Case("InstanceNorm", lambda nn: nn.InstanceNorm(4, affine=True), _x(2, 7, 4), tag="affine"),
    Case("BatchNorm", lambda nn: nn.BatchNorm(4), _x(6, 4)),
    Case("BatchNorm", lambda nn: nn.BatchNorm(4), _x(3, 5, 5, 4), tag="2d"),
    Case("BatchNorm", lambda nn: nn.BatchNorm(4, affine=False, track_running_stats=False), _x(6, 3, 4), tag="nostats"),
    Case("BatchNorm", lambda nn: nn.BatchNorm(4, momentum=0.3), _x(6, 3, 4), train=False, warmup=2, tag="eval"),
    Case("RNN", lambda nn: nn.RNN(3, 4), _x(2, 5, 3)),
    Case("RNN", lambda nn: nn.RNN(3, 4, bias=False, nonlinearity=nn.relu), _x(5, 3), tag="relu-unbatched"),
    Case("GRU", lambda nn: nn.GRU(3, 4), _x(2, 5, 3)),
    Case("GRU", lambda nn: nn.GRU(3, 4, bias=False), _x(5, 3), tag="nobias-unbatched"),
    Case("LSTM", lambda nn: nn.LSTM(3, 4), _x(2, 5, 3)),
    Case("LSTM", lambda nn: nn.LSTM(3, 4, bias=False), _x(5, 3), tag="nobias-unbatched"),
    Case("RNN", lambda nn: nn.RNN(3, 4), lambda: (normal(2, 5, 3), normal(2, 4, seed=1)),
         call=lambda m, x, h: m(x, hidden=h), tag="hidden"),
    Case("GRU", lambda nn: nn.GRU(3, 4), lambda: (normal(2, 5, 3), normal(2, 4, seed=1)),
         call=lambda m, x, h: m(x, hidden=h), tag="hidden"),
    Case("LSTM", lambda nn: nn.LSTM(3, 4), lambda: (normal(2, 5, 3), normal(2, 4, seed=1), normal(2, 4, seed=2)),
         call=lambda m, x, h, c: m(x, hidden=h, cell=c), tag="hidden-cell"),
    Case("MultiHeadAttention", lambda nn: nn.MultiHeadAttention(8, 2),
         lambda: (normal(2, 4, 8), normal(2, 5, 8, seed=1), normal(2, 5, 8, seed=2), None),
         call=_mha_call),
    Case("MultiHeadAttention", lambda nn: nn.MultiHeadAttention(8, 2, query_input_dims=6, key_input_dims=5, value_input_dims=3, value_dims=4, value_output_dims=7, bias=True),
         lambda: (normal(2, 4, 6), normal(2, 4, 5, seed=1), normal(2, 4, 3, seed=2), _causal(4)),
         call=_mha_call, tag="dims-bias-mask"),
    Case("TransformerEncoderLayer", lambda nn: nn.TransformerEncoderLayer(8, 2, mlp_dims=16),
         lambda: (normal(2, 4, 8), _causal(4)), call=lambda m, x, mask: m(x, mask)),
    Case("TransformerEncoderLayer", lambda nn: nn.TransformerEncoderLayer(8, 2, norm_first=False, activation=nn.gelu),
         lambda: (normal(2, 4, 8), None), call=lambda m, x, mask: m(x, mask), tag="postnorm-gelu"),
    Case("TransformerDecoderLayer", lambda nn: nn.TransformerDecoderLayer(8, 2, mlp_dims=16),
         lambda: (normal(2, 4, 8), normal(2, 3, 8, seed=1), _causal(4), None),
         call=lambda m, x, mem, xm, mm: m(x, mem, xm, mm)),
    Case("TransformerEncoder", lambda nn: nn.TransformerEncoder(2, 8, 2),
         lambda: (normal(2, 4, 8), None), call=lambda m, x, mask: m(x, mask)),
    Case("TransformerDecoder", lambda nn: nn.TransformerDecoder(2, 8, 2, norm_first=False),
         lambda: (normal(2, 4, 8), normal(2, 3, 8, seed=1), _causal(4), None),
         call=lambda m, x, mem, xm, mm: m(x, mem, xm, mm)),
    Case("Transformer", lambda nn: nn.Transformer(8, 2, 1, 1, 16),
         lambda: (normal(2, 3, 8), normal(2, 4, 8, seed=1), None, _causal(4), None),
         call=lambda m, *a: m(*a)),
    Case("Transformer", lambda nn: nn.Transformer(8, 2, 2, 1, norm_first=False),
         lambda: (normal(2, 3, 8), normal(2, 4, 8, seed=1), None, _causal(4), None),
         call=lambda m, *a: m(*a), tag="postnorm"),
    Case("MaxPool1d", lambda nn: nn.MaxPool1d(3, stride=2, padding=1), _x(2, 9, 3)),
    Case("MaxPool2d", lambda nn: nn.MaxPool2d(2), _x(2, 6, 5, 3)),
    Case("MaxPool2d", lambda nn: nn.MaxPool2d((3, 2), stride=(1, 2), padding=(1, 0)), _x(1, 5, 6, 2), tag="padded"),
    Case("MaxPool3d", lambda nn: nn.MaxPool3d(2, stride=1), _x(1, 3, 4, 3, 2)),
    Case("AvgPool1d", lambda nn: nn.AvgPool1d(3, stride=2, padding=1), _x(2, 9, 3)),
    Case("AvgPool2d", lambda nn: nn.AvgPool2d((2, 3), stride=1, padding=1), _x(2, 5, 6, 3)),
    Case("AvgPool3d", lambda nn: nn.AvgPool3d(2), _x(1, 4, 4, 4, 2)),
    Case("Upsample", lambda nn: nn.Upsample(2), _x(2, 3, 4, 3)),
    Case("Upsample", lambda nn: nn.Upsample((2, 1.5), mode="linear"), _x(2, 3, 4, 3), tag="linear"),
    Case("Upsample", lambda nn: nn.Upsample(2, mode="linear", align_corners=True), _x(1, 4, 3, 2), tag="linear-align"),
    Case("Upsample", lambda nn: nn.Upsample(2, mode="cubic"), _x(1, 4, 3, 2), tag="cubic"),
    Case("Upsample", lambda nn: nn.Upsample(3, mode="cubic", align_corners=True), _x(1, 3, 3, 2), tag="cubic-align"),
    Case("Upsample", lambda nn: nn.Upsample(2, mode="linear"), _x(2, 5, 3), tag="1d"),
    Case("Upsample", lambda nn: nn.Upsample(2, mode="nearest"), _x(1, 2, 3, 2, 2), tag="3d"),
    Case("Dropout", lambda nn: nn.Dropout(0.3), _x(2, 6), train=False),
    Case("Dropout2d", lambda nn: nn.Dropout2d(0.3), _x(2, 4, 4, 3), train=False),
    Case("Dropout3d", lambda nn: nn.Dropout3d(0.3), _x(2, 3, 4, 4, 3), train=False),
    Case("RoPE", lambda nn: nn.RoPE(8), _x(2, 3, 5, 8)),
    Case("RoPE", lambda nn: nn.RoPE(6, traditional=True, base=500.0, scale=0.5), _x(2, 5, 8),
         call=lambda m, x: m(x, offset=3), tag="traditional-partial-offset"),
    Case("SinusoidalPositionalEncoding", lambda nn: nn.SinusoidalPositionalEncoding(8), lambda: (np.arange(6, dtype=np.float32),)),
    Case("SinusoidalPositionalEncoding", lambda nn: nn.SinusoidalPositionalEncoding(6, min_freq=0.01, max_freq=2.0, scale=0.5, cos_first=True, full_turns=True),
         lambda: (normal(2, 3),), tag="options"),
    Case("ALiBi", lambda nn: nn.ALiBi(), lambda: (normal(2, 4, 3, 5), None), call=lambda m, s, mask: m(s)),
    Case("ALiBi", lambda nn: nn.ALiBi(), lambda: (normal(2, 4, 3, 5), _causal(5)[:3]),
         call=lambda m, s, mask: m(s, offset=2, mask=mask), tag="offset-mask"),
    Case("QuantizedLinear", lambda nn: nn.QuantizedLinear(64, 8), _x(2, 3, 64)),
    Case("QuantizedLinear", lambda nn: nn.QuantizedLinear(128, 8, bias=False, group_size=32, bits=3), _x(2, 128), tag="g32-b3"),
    Case("QuantizedLinear", lambda nn: nn.QuantizedLinear(64, 8, group_size=32, mode="mxfp4"), _x(2, 64), tag="mxfp4"),
    Case("QuantizedLinear", lambda nn: nn.QuantizedLinear.from_linear(nn.Linear(64, 16), 32, 8), _x(3, 64), tag="from_linear"),
    Case("QuantizedEmbedding", lambda nn: nn.QuantizedEmbedding(10, 64), _ints(10, 2, 3), input_grad=False),
    Case("QuantizedEmbedding", lambda nn: nn.QuantizedEmbedding(10, 64, group_size=32, bits=4),
         _x(2, 64), call=lambda m, x: m.as_linear(x), tag="as_linear"),
    # the sharded layers in a group of one process (both sides' default group here)
    Case("AllToShardedLinear", lambda nn: nn.AllToShardedLinear(6, 4), _x(3, 6)),
    Case("AllToShardedLinear", lambda nn: nn.AllToShardedLinear.from_linear(nn.Linear(6, 6, bias=False), segments=3), _x(2, 6), tag="from_linear-segments"),
    Case("ShardedToAllLinear", lambda nn: nn.ShardedToAllLinear(6, 4), _x(3, 6)),
    Case("ShardedToAllLinear", lambda nn: nn.layers.distributed.shard_linear(nn.Linear(6, 4), "sharded-to-all"), _x(3, 6), tag="shard_linear"),
    Case("QuantizedAllToShardedLinear", lambda nn: nn.QuantizedAllToShardedLinear(64, 8), _x(2, 64)),
    Case("QuantizedAllToShardedLinear", lambda nn: nn.QuantizedAllToShardedLinear.from_quantized_linear(nn.QuantizedLinear(64, 8, bits=3)), _x(2, 64), tag="from_quantized_linear"),
    Case("QuantizedShardedToAllLinear", lambda nn: nn.QuantizedShardedToAllLinear(64, 8, bias=False, group_size=32, bits=8), _x(2, 64)),
    Case("QuantizedShardedToAllLinear", lambda nn: nn.layers.distributed.shard_linear(nn.QuantizedLinear(64, 8), "sharded-to-all"), _x(2, 64), tag="shard_linear"),
    Case("Sequential", lambda nn: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), _x(3, 4)),
] + [_activation_case(name) for name in ACTIVATIONS]  # fmt: skip


def _mlx_layer_names() -> list[str]:
    return sorted(
        n
        for n, v in vars(mlx_nn).items()
        if inspect.isclass(v) and issubclass(v, mlx_nn.Module) and n[0].isupper()
    )


def test_every_mlx_layer_has_a_case() -> None:
    """Each layer class MLX exports is in chainrule.nn and compared below (or listed why not)."""
    names = set(_mlx_layer_names()) - DISTRIBUTED - NOT_LAYERS - NO_MLX_CPU
    missing_in_cx = sorted(n for n in names if not hasattr(cnn, n))
    assert not missing_in_cx, f"chainrule.nn lacks MLX layers {missing_in_cx}"
    covered = {c.cls for c in CASES}
    assert not sorted(names - covered), f"no oracle case for {sorted(names - covered)}"


def _loss(outs: Any, cots: list, lib: Any) -> Any:
    leaves = outs if isinstance(outs, (tuple, list)) else (outs,)
    total = 0.0
    for o, c in zip(leaves, cots):
        total = total + lib.sum(o * lib.array(c))
    return total


def _run(case: Case, nn: Any, lib: Any, model: Any, inputs: tuple, cots: list) -> dict:
    """Forward, parameter gradients and first-input gradient on one side."""
    model.train(case.train)
    out = case.call(model, *inputs)
    res = {"out": to_numpy(out)}

    def f(*xs: Any) -> Any:
        return _loss(case.call(model, *xs), cots, lib)

    if model.trainable_parameters() and cots:
        _, g = nn.value_and_grad(model, f)(*inputs)
        res["param_grads"] = g
    if case.input_grad and cots:
        res["input_grad"] = to_numpy(lib.grad(f)(*inputs))
    if case.train:
        res["params_after"] = model.parameters()
    return res


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_layer_matches_mlx(case: Case) -> None:
    """Outputs, parameter gradients and input gradients equal MLX's for MLX's own weights."""
    mlx_core.random.seed(3)
    m_model = case.build(mlx_nn)
    c_model = case.build(cnn)
    copy_params(m_model, c_model)
    import mlx.utils as mutils

    t_m = sorted(k for k, _ in mutils.tree_flatten(m_model.trainable_parameters()))
    t_c = sorted(
        k
        for k, _ in __import__("chainrule.utils").utils.tree_flatten(c_model.trainable_parameters())
    )
    assert t_c == t_m, f"trainable parameters differ: cx {t_c} mlx {t_m}"
    raw = case.inputs()
    for model, convert in ((m_model, to_mlx), (c_model, to_cx)):
        model.train(True)
        for _ in range(case.warmup):
            case.call(model, *convert(raw))
    m_model.eval()  # the shapes of the outputs, without moving running statistics
    m_out = case.call(m_model, *to_mlx(raw))
    outs = m_out if isinstance(m_out, (tuple, list)) else (m_out,)
    r = rng(7)
    cots = [
        r.standard_normal(o.shape).astype(np.float32) for o in outs if o.dtype == mlx_core.float32
    ]
    want = _run(case, mlx_nn, mlx_core, m_model, to_mlx(raw), cots)
    got = _run(case, cnn, cx, c_model, to_cx(raw), cots)
    assert sorted(got) == sorted(want)
    assert_trees_close(
        list(got["out"]) if isinstance(got["out"], tuple) else got["out"],
        list(want["out"]) if isinstance(want["out"], tuple) else want["out"],
        "output",
        **case.tol,
    )
    for k in ("param_grads", "input_grad", "params_after"):
        if k in want:
            assert_trees_close(got[k], want[k], k, **case.tol)


FUNCTION_ARGS: dict[str, dict] = {
    "leaky_relu": {"negative_slope": 0.2},
    "elu": {"alpha": 0.7},
    "celu": {"alpha": 1.3},
    "hard_tanh": {"min_val": -0.5, "max_val": 2.0},
    "softshrink": {"lambd": 0.3},
    "hard_shrink": {"lambd": 0.3},
    "step": {"threshold": 0.2},
    "softmax": {"axis": 1},
    "log_softmax": {"axis": 0},
    "glu": {"axis": 1},
}
NOT_ACTIVATIONS = {"quantize", "value_and_grad", "average_gradients", "fully_shard"}


def _mlx_activation_functions() -> list[str]:
    return sorted(
        n
        for n, v in vars(mlx_nn).items()
        if callable(v) and not inspect.isclass(v) and not inspect.ismodule(v) and n[0].islower()
        and n not in NOT_ACTIVATIONS and not n.startswith("_")
    )  # fmt: skip


@pytest.mark.parametrize("name", _mlx_activation_functions())
def test_activation_function_matches_mlx(name: str) -> None:
    """``nn.<activation>(x, ...)``: values and gradients equal MLX's, including at 0 and ties."""
    x = normal(4, 6)
    x[0, :3] = [0.0, 0.3, -0.3]  # the kinks (relu at 0, shrink thresholds)
    kw = FUNCTION_ARGS.get(name, {})
    extra = (normal(6, seed=2),) if name == "prelu" else ()
    fm, fc = getattr(mlx_nn, name), getattr(cnn, name)
    cot = normal(*np.array(fm(to_mlx(x), *to_mlx(extra), **kw)).shape, seed=5)

    def loss(lib: Any, f: Callable) -> Callable:
        return lambda v, *e: lib.sum(f(v, *e, **kw) * lib.array(cot))

    want = [np.array(fm(to_mlx(x), *to_mlx(extra), **kw))]
    want += [
        np.array(g)
        for g in mlx_core.grad(loss(mlx_core, fm), argnums=tuple(range(1 + len(extra))))(
            to_mlx(x), *to_mlx(extra)
        )
    ]
    got = [np.array(fc(to_cx(x), *to_cx(extra), **kw))]
    got += [
        np.array(g)
        for g in cx.grad(loss(cx, fc), argnums=tuple(range(1 + len(extra))))(
            to_cx(x), *to_cx(extra)
        )
    ]
    for g, w, what in zip(got, want, ("value", "grad x", "grad alpha")):
        assert g.dtype == w.dtype and g.shape == w.shape, (what, g.dtype, w.dtype, g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5, err_msg=f"{name} {what}")


HALF_SKIP = {"QuantizedLinear-mxfp4"}  # MLX: mxfp4 scales in half precision are not supported


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", [c for c in CASES if c.id not in HALF_SKIP], ids=lambda c: c.id)
def test_layer_half_precision_matches_mlx(case: Case, dtype: str) -> None:
    """``set_dtype(half)`` and half inputs: the same output dtypes as MLX, values within half
    precision (forward only)."""
    mlx_core.random.seed(3)
    m_model, c_model = case.build(mlx_nn), case.build(cnn)
    copy_params(m_model, c_model)
    m_model.set_dtype(getattr(mlx_core, dtype))
    c_model.set_dtype(getattr(cx, dtype))
    raw = case.inputs()
    m_in = [
        mlx_core.array(a).astype(getattr(mlx_core, dtype))
        if isinstance(a, np.ndarray) and a.dtype == np.float32
        else to_mlx(a)
        for a in raw
    ]
    c_in = [
        cx.array(a).astype(getattr(cx, dtype))
        if isinstance(a, np.ndarray) and a.dtype == np.float32
        else to_cx(a)
        for a in raw
    ]
    for model in (m_model, c_model):
        model.train(True)
        for _ in range(case.warmup):
            case.call(model, *(m_in if model is m_model else c_in))
        model.train(case.train)
    want, got = case.call(m_model, *m_in), case.call(c_model, *c_in)
    want = want if isinstance(want, (tuple, list)) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1], (g.dtype, w.dtype)
        assert g.shape == w.shape
        gv, wv = np.array(g.astype(cx.float32)), np.array(w.astype(mlx_core.float32))
        np.testing.assert_array_equal(np.isfinite(gv), np.isfinite(wv))
        finite = np.isfinite(wv)
        scale = max(1.0, float(np.abs(wv[finite]).max())) if finite.any() else 1.0
        gv, wv = np.where(finite, gv, 0), np.where(finite, wv, 0)
        np.testing.assert_allclose(gv, wv, rtol=0.05, atol=0.05 * scale)


@pytest.mark.parametrize("n", [1, 4, 7])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_additive_causal_mask_matches_mlx(n: int, dtype: str) -> None:
    """``MultiHeadAttention.create_additive_causal_mask``: same values and dtype."""
    want = mlx_nn.MultiHeadAttention.create_additive_causal_mask(n, getattr(mlx_core, dtype))
    got = cnn.MultiHeadAttention.create_additive_causal_mask(n, getattr(cx, dtype))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_array_equal(np.array(got), np.array(want))


@pytest.mark.parametrize(
    "name,shape,channel_axes",
    [
        ("Dropout", (64, 512), ()),
        ("Dropout2d", (8, 4, 4, 256), (1, 2)),
        ("Dropout3d", (4, 2, 3, 3, 256), (1, 2, 3)),
    ],
)
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_training_matches_mlx(
    name: str, shape: tuple, channel_axes: tuple, p: float
) -> None:
    """In training: kept values are ``x / (1 - p)`` exactly, whole channels drop together for
    the 2-d/3-d forms, and the kept share agrees with MLX's within 6 standard errors."""
    x = np.abs(normal(*shape)) + 0.5  # no zeros of its own
    shares = []
    for lib, nn in ((mlx_core, mlx_nn), (cx, cnn)):
        lib.random.seed(5)
        layer = getattr(nn, name)(p)
        layer.train(True)
        y = np.array(layer(lib.array(x)))
        kept = y != 0
        np.testing.assert_allclose(y[kept], (x / (1 - p))[kept], rtol=1e-6)
        if channel_axes:  # a channel is kept or dropped as a whole
            assert np.all(kept.all(axis=channel_axes) | (~kept).all(axis=channel_axes))
            shares.append(kept.all(axis=channel_axes).mean())
        else:
            shares.append(kept.mean())
    n = np.prod([d for i, d in enumerate(shape) if i not in channel_axes])
    assert abs(shares[1] - shares[0]) <= 6 * np.sqrt(2 * p * (1 - p) / n), shares


@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8", "mxfp4"])
def test_qqlinear_modes_match_mlx(mode: str) -> None:
    """``eval()`` packs the weight as MLX does (same words, scales, trainable keys and repr);
    ``train()`` restores MLX's dequantized (bfloat16) weight. (MLX's CPU build cannot
    evaluate the product itself, so outputs are not compared.)"""
    import mlx.utils as mutils

    import chainrule.utils as cutils

    from .bridge import flat

    mlx_core.random.seed(4)
    m = mlx_nn.QQLinear.from_linear(mlx_nn.Linear(64, 16, bias=False), mode=mode)
    c = cnn.QQLinear.from_linear(cnn.Linear(64, 16, bias=False), mode=mode)
    copy_params(m, c)
    for step in ("eval", "train", "eval"):
        getattr(m, step)()
        getattr(c, step)()
        fm, fc = flat(m.parameters(), mutils), flat(c.parameters(), cutils)
        assert sorted(fc) == sorted(fm), step
        for k, v in fm.items():
            assert fc[k].dtype == v.dtype and fc[k].shape == v.shape, (
                step,
                k,
                fc[k].dtype,
                v.dtype,
            )
            np.testing.assert_array_equal(fc[k], v, err_msg=f"{step} {k}")
        assert sorted(k for k, _ in cutils.tree_flatten(c.trainable_parameters())) == sorted(
            k for k, _ in mutils.tree_flatten(m.trainable_parameters())
        )
        assert repr(c).split("(", 1)[1] == repr(m).split("(", 1)[1]
    x = cx.array(normal(3, 64))
    w = cx.dequantize(c["weight"], c["scales"], mode=mode)
    # the packed weight gives what its dequantized values give
    np.testing.assert_allclose(np.array(c(x)), np.array(cx.qqmm(x, w, mode=mode)), rtol=1e-6)
