"""``mx.fast`` and quantization against real MLX: values, gradients and packed bits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")

import chainrule.core as cx  # noqa: E402

from .bridge import to_cx, to_mlx  # noqa: E402


def _n(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _mask(q: int, k: int) -> np.ndarray:
    return np.random.default_rng(5).random((q, k)) > 0.3


# name -> (function of (lib, *args), arguments)
FAST: list[tuple[str, Callable[..., Any], Callable[[], tuple]]] = [
    ("rms_norm", lambda lib, x, w: lib.fast.rms_norm(x, w, 1e-5), lambda: (_n(2, 3, 8), _n(8, seed=1))),
    ("rms_norm-noweight", lambda lib, x: lib.fast.rms_norm(x, None, 1e-3), lambda: (_n(4, 8),)),
    ("layer_norm", lambda lib, x, w, b: lib.fast.layer_norm(x, w, b, 1e-5), lambda: (_n(2, 3, 8), _n(8, seed=1), _n(8, seed=2))),
    ("layer_norm-noaffine", lambda lib, x: lib.fast.layer_norm(x, None, None, 1e-5), lambda: (_n(3, 8),)),
    ("rope", lambda lib, x: lib.fast.rope(x, 8, traditional=False, base=10000.0, scale=1.0, offset=0), lambda: (_n(2, 2, 5, 8),)),
    ("rope-traditional-partial", lambda lib, x: lib.fast.rope(x, 4, traditional=True, base=500.0, scale=0.5, offset=3), lambda: (_n(2, 5, 6),)),
    ("rope-freqs", lambda lib, x, f: lib.fast.rope(x, 6, traditional=False, base=None, scale=1.0, offset=2, freqs=f),
     lambda: (_n(1, 4, 6), np.abs(_n(3, seed=1)) + 0.5)),
    ("sdpa", lambda lib, q, k, v: lib.fast.scaled_dot_product_attention(q, k, v, scale=0.35),
     lambda: (_n(2, 4, 5, 8), _n(2, 4, 7, 8, seed=1), _n(2, 4, 7, 8, seed=2))),
    ("sdpa-gqa-causal", lambda lib, q, k, v: lib.fast.scaled_dot_product_attention(q, k, v, scale=0.5, mask="causal"),
     lambda: (_n(1, 4, 6, 8), _n(1, 2, 6, 8, seed=1), _n(1, 2, 6, 8, seed=2))),
    ("sdpa-additive-mask", lambda lib, q, k, v, m: lib.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=m),
     lambda: (_n(2, 2, 3, 4), _n(2, 2, 5, 4, seed=1), _n(2, 2, 5, 4, seed=2), _n(3, 5, seed=3))),
    ("sdpa-bool-mask", lambda lib, q, k, v, m: lib.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=lib.array(m)),
     lambda: (_n(2, 2, 3, 4), _n(2, 2, 5, 4, seed=1), _n(2, 2, 5, 4, seed=2), _mask(3, 5))),
    ("sdpa-sinks", lambda lib, q, k, v, s: lib.fast.scaled_dot_product_attention(q, k, v, scale=0.3, sinks=s),
     lambda: (_n(1, 2, 3, 4), _n(1, 2, 5, 4, seed=1), _n(1, 2, 5, 4, seed=2), _n(2, seed=3))),
    ("cross_entropy", lambda lib, x, t: lib.fast.cross_entropy(x, t),
     lambda: (_n(3, 4, 6), np.random.default_rng(2).integers(0, 6, (3, 4)).astype(np.int32))),
]  # fmt: skip


@pytest.mark.parametrize("name,fn,make", FAST, ids=[c[0] for c in FAST])
def test_fast_matches_mlx(name: str, fn: Callable, make: Callable) -> None:
    """Value, dtype and the gradient of every float argument equal MLX's."""
    args = make()
    if name == "sdpa-bool-mask":  # the mask goes through lib.array inside fn
        want = np.array(fn(mlx_core, *to_mlx(args[:3]), args[3]))
        got = np.array(fn(cx, *to_cx(args[:3]), args[3]))
        floats = (0, 1, 2)
        gm = mlx_core.grad(
            lambda *a: (fn(mlx_core, *a, args[3]) * mlx_core.array(_n(*want.shape, seed=8))).sum(),
            argnums=floats,
        )(*to_mlx(args[:3]))
        gc = cx.grad(
            lambda *a: (fn(cx, *a, args[3]) * cx.array(_n(*want.shape, seed=8))).sum(),
            argnums=floats,
        )(*to_cx(args[:3]))
    else:
        want = np.array(fn(mlx_core, *to_mlx(args)))
        got = np.array(fn(cx, *to_cx(args)))
        floats = tuple(i for i, a in enumerate(args) if a.dtype == np.float32)
        cot = _n(*want.shape, seed=8)
        gm = mlx_core.grad(
            lambda *a: (fn(mlx_core, *a) * mlx_core.array(cot)).sum(), argnums=floats
        )(*to_mlx(args))
        gc = cx.grad(lambda *a: (fn(cx, *a) * cx.array(cot)).sum(), argnums=floats)(*to_cx(args))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    for i, g, w in zip(floats, gc, gm):
        np.testing.assert_allclose(
            np.array(g), np.array(w), rtol=5e-4, atol=5e-5, err_msg=f"arg {i}"
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["rms_norm", "layer_norm", "rope", "sdpa", "cross_entropy"])
def test_fast_half_precision_dtype_matches_mlx(name: str, dtype: str) -> None:
    """Half-precision inputs: the same result dtype and values within half precision."""
    fn, make = next((f, m) for n, f, m in FAST if n == name)
    args = make()
    m_args = [
        mlx_core.array(a).astype(getattr(mlx_core, dtype))
        if a.dtype == np.float32
        else mlx_core.array(a)
        for a in args
    ]
    c_args = [
        cx.array(a).astype(getattr(cx, dtype)) if a.dtype == np.float32 else cx.array(a)
        for a in args
    ]
    want, got = fn(mlx_core, *m_args), fn(cx, *c_args)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(
        np.array(got.astype(cx.float32)),
        np.array(want.astype(mlx_core.float32)),
        rtol=2e-2,
        atol=2e-2,
    )


QUANT = [
    ("affine", 64, 4), ("affine", 32, 8), ("affine", 128, 2), ("affine", 64, 3), ("affine", 32, 6),
    ("affine", 64, 5), ("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4),
]  # fmt: skip


@pytest.mark.parametrize("mode,group_size,bits", QUANT)
def test_quantize_bits_and_dequantize_match_mlx(mode: str, group_size: int, bits: int) -> None:
    """``quantize`` packs the same words, scales and biases; ``dequantize`` gives the same values."""
    w = _n(16, 256) * 0.2
    qm = mlx_core.quantize(mlx_core.array(w), group_size=group_size, bits=bits, mode=mode)
    qc = cx.quantize(cx.array(w), group_size=group_size, bits=bits, mode=mode)
    assert len(qc) == len(qm)
    for i, (c, m) in enumerate(zip(qc, qm)):
        c, m = np.array(c), np.array(m)
        assert c.dtype == m.dtype and c.shape == m.shape, (i, c.dtype, m.dtype, c.shape, m.shape)
        np.testing.assert_array_equal(c, m, err_msg=["words", "scales", "biases"][i])
    kw = {"group_size": group_size, "bits": bits, "mode": mode}
    dm = mlx_core.dequantize(*qm, **kw)
    dc = cx.dequantize(*[cx.array(np.array(a)) for a in qm], **kw)
    assert str(dc.dtype).split(".")[-1] == str(dm.dtype).split(".")[-1]
    dm, dc = np.array(dm.astype(mlx_core.float32)), np.array(dc.astype(cx.float32))
    np.testing.assert_allclose(dc, dm, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize(
    "mode,group_size,bits", [("affine", 64, 4), ("affine", 32, 8), ("mxfp4", 32, 4)]
)
def test_quantized_matmul_and_its_gradient_match_mlx(
    transpose: bool, mode: str, group_size: int, bits: int
) -> None:
    """``quantized_matmul`` on MLX's packed weights, and its gradient in ``x``, equal MLX's."""
    w = _n(64, 128) * 0.3 if transpose else _n(128, 64) * 0.3
    q = mlx_core.quantize(mlx_core.array(w), group_size=group_size, bits=bits, mode=mode)
    x = _n(3, 128)
    kw = {"transpose": transpose, "group_size": group_size, "bits": bits, "mode": mode}
    qc = [cx.array(np.array(a)) for a in q]
    want = mlx_core.quantized_matmul(mlx_core.array(x), *q, **kw)
    got = cx.quantized_matmul(cx.array(x), *qc, **kw)
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-4, atol=1e-4)
    cot = _n(*want.shape, seed=4)
    gm = mlx_core.grad(
        lambda a: (mlx_core.quantized_matmul(a, *q, **kw) * mlx_core.array(cot)).sum()
    )(mlx_core.array(x))
    gc = cx.grad(lambda a: (cx.quantized_matmul(a, *qc, **kw) * cx.array(cot)).sum())(cx.array(x))
    np.testing.assert_allclose(np.array(gc), np.array(gm), rtol=1e-4, atol=1e-4)


def _kernel_call(lib: Any, kernel: Any, stream: Any) -> Callable:
    def call(a: Any) -> Any:
        return kernel(
            inputs=[a],
            grid=(a.size, 1, 1),
            threadgroup=(min(a.size, 256), 1, 1),
            output_shapes=[a.shape, (2,)],
            output_dtypes=[a.dtype, lib.int32],
            stream=stream,
        )[0]

    return call


@pytest.mark.parametrize("lib_name", ["mlx", "chainrule"])
def test_metal_kernel_without_metal_behaves_as_mlx_cpu(lib_name: str, tmp_path: Any) -> None:
    """No Metal here: a call raises RuntimeError, an export on the GPU stream is written
    without running the kernel, an export on the CPU stream is a ValueError; the same on both
    sides. chainrule's imported function raises MLX's error when called."""
    lib = mlx_core if lib_name == "mlx" else cx
    kernel = lib.fast.metal_kernel(
        name="copy",
        input_names=["a"],
        output_names=["out", "count"],
        source="uint i = thread_position_in_grid.x; out[i] = a[i];",
        compile_options={"math_mode": "safe"},
    )
    a = lib.zeros((2, 2))
    for stream in (None, lib.cpu, lib.gpu):
        with pytest.raises(RuntimeError, match="No Metal back-end"):
            _kernel_call(lib, kernel, stream)(a)
    with pytest.raises(RuntimeError, match="No Metal back-end"):
        lib.eval(lib.compile(_kernel_call(lib, kernel, lib.gpu))(a))
    path = tmp_path / "k.mlxfn"
    lib.export_function(str(path), _kernel_call(lib, kernel, lib.gpu), a)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="Only supports the GPU"):
        lib.export_function(str(tmp_path / "cpu.mlxfn"), _kernel_call(lib, kernel, lib.cpu), a)
    if lib is cx:
        imported = cx.import_function(str(path))
        with pytest.raises(RuntimeError, match="No Metal back-end"):
            imported(a)
        with pytest.raises(ValueError, match="math_mode"):
            cx.fast.metal_kernel("k", ["a"], ["o"], "", compile_options={"math_mode": "exact"})
        with pytest.raises(TypeError):
            cx.fast.metal_kernel(3, ["a"], ["o"], "")


GDU = [
    # (B, T, Hk, Hv, Dk, Dv, vector gamma, initial state, mask)
    (1, 3, 1, 2, 4, 3, False, False, False),
    (2, 5, 2, 4, 8, 6, False, True, False),
    (2, 4, 1, 2, 3, 2, True, False, False),
    (2, 5, 2, 2, 4, 4, True, True, True),
]


@pytest.mark.parametrize("case", GDU, ids=[f"case{i}" for i in range(len(GDU))])
def test_gated_delta_update_matches_mlx(case: tuple) -> None:
    """Outputs, final state and gradients of every float argument equal MLX's."""
    B, T, Hk, Hv, Dk, Dv, vec, init, masked = case
    r = np.random.default_rng(0)
    args = [
        _n(B, T, Hk, Dk, seed=1),
        _n(B, T, Hk, Dk, seed=2) * 0.5,
        _n(B, T, Hv, Dv, seed=3),
        r.uniform(0.5, 1.0, (B, T, Hv, Dk) if vec else (B, T, Hv)).astype(np.float32),
        r.uniform(0.0, 1.0, (B, T, Hv)).astype(np.float32),
    ]
    kw_np = {}
    if init:
        kw_np["initial_state"] = _n(B, Hv, Dv, Dk, seed=4)
    if masked:
        kw_np["mask"] = r.random((B, T)) > 0.4
    cot_o, cot_s = _n(B, T, Hv, Dv, seed=5), _n(B, Hv, Dv, Dk, seed=6)

    def run(lib: Any, convert: Callable) -> tuple:
        kw = {key: convert(val) for key, val in kw_np.items()}
        outs = lib.fast.gated_delta_update(*convert(args), **kw)

        def loss(*a: Any) -> Any:
            o, s = lib.fast.gated_delta_update(*a, **kw)
            return (o * lib.array(cot_o)).sum() + (s * lib.array(cot_s)).sum()

        grads = lib.grad(loss, argnums=(0, 1, 2, 3, 4))(*convert(args))
        return [np.array(o) for o in outs], [np.array(g) for g in grads], [o.dtype for o in outs]

    (wo, ws), wg, wd = run(mlx_core, to_mlx)
    (go, gs), gg, gd = run(cx, to_cx)
    assert [str(d).split(".")[-1] for d in gd] == [str(d).split(".")[-1] for d in wd]
    np.testing.assert_allclose(go, wo, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gs, ws, rtol=1e-4, atol=1e-5)
    for i, (g, w) in enumerate(zip(gg, wg)):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4, err_msg=f"d/d arg {i}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gated_delta_update_dtypes_match_mlx(dtype: str) -> None:
    """Half inputs: outputs in the inputs' dtype, the state in float32, as MLX."""
    shapes = [(1, 3, 1, 4), (1, 3, 1, 4), (1, 3, 2, 3), (1, 3, 2), (1, 3, 2)]
    arrays = [np.abs(_n(*s, seed=i)) * 0.5 for i, s in enumerate(shapes)]
    wo, ws = mlx_core.fast.gated_delta_update(
        *[mlx_core.array(a).astype(getattr(mlx_core, dtype)) for a in arrays]
    )
    go, gs = cx.fast.gated_delta_update(*[cx.array(a).astype(getattr(cx, dtype)) for a in arrays])
    assert str(go.dtype).split(".")[-1] == str(wo.dtype).split(".")[-1]
    assert str(gs.dtype).split(".")[-1] == str(ws.dtype).split(".")[-1]
    np.testing.assert_allclose(
        np.array(go.astype(cx.float32)), np.array(wo.astype(mlx_core.float32)), rtol=2e-2, atol=2e-2
    )


def test_gated_delta_update_refuses_bad_shapes() -> None:
    """Shapes that do not fit are a ValueError naming the op and the argument."""
    q = cx.zeros((1, 3, 1, 4))
    v, g, b = cx.zeros((1, 3, 2, 3)), cx.zeros((1, 3, 2)), cx.zeros((1, 3, 2))
    with pytest.raises(ValueError, match="gated_delta_update.*v must be"):
        q2 = cx.zeros((1, 3, 2, 4))  # 2 key heads cannot serve 3 value heads
        cx.fast.gated_delta_update(q2, q2, cx.zeros((1, 3, 3, 3)), cx.zeros((1, 3, 3)), b)
    with pytest.raises(ValueError, match="initial_state"):
        cx.fast.gated_delta_update(q, q, v, g, b, initial_state=cx.zeros((1, 2, 4, 3)))
    with pytest.raises(ValueError, match="q and k"):
        cx.fast.gated_delta_update(q, cx.zeros((1, 3, 1, 5)), v, g, b)


def _quant_model(nn: Any) -> Any:
    return nn.Sequential(
        nn.Embedding(16, 64), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.LayerNorm(32)
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"group_size": 32, "bits": 8},
        {"mode": "mxfp4"},
        {"class_predicate": lambda path, m: path == "layers.1"},
        {
            "class_predicate": lambda path, m: (
                {"group_size": 32, "bits": 2} if path == "layers.3" else hasattr(m, "to_quantized")
            )
        },
    ],
    ids=["default", "g32-b8", "mxfp4", "predicate", "predicate-dict"],
)
def test_nn_quantize_model_matches_mlx(kw: dict) -> None:
    """``nn.quantize(model, ...)``: the same layers swapped, the same packed parameters, the
    same outputs."""
    import mlx.nn as mnn
    import mlx.utils as mutils

    import chainrule.nn as cnn
    import chainrule.utils as cutils

    from .bridge import copy_params, flat

    mlx_core.random.seed(2)
    m, c = _quant_model(mnn), _quant_model(cnn)
    copy_params(m, c)
    mnn.quantize(m, **kw)
    cnn.quantize(c, **kw)
    assert [type(x).__name__ for x in c.layers] == [type(x).__name__ for x in m.layers]
    fm, fc = flat(m.parameters(), mutils), flat(c.parameters(), cutils)
    assert sorted(fc) == sorted(fm)
    for k, v in fm.items():
        assert fc[k].dtype == v.dtype and fc[k].shape == v.shape, k
        np.testing.assert_array_equal(fc[k], v, err_msg=k)
    ids = np.array([[1, 5, 9], [0, 15, 3]], np.int32)
    # mxfp4's embedding gives bfloat16 rows, whose products both sides round to bfloat16 (MLX
    # with its own accumulation order): agreement to bfloat16's precision there
    tol = 2e-2 if kw.get("mode") == "mxfp4" else 1e-4
    got, want = c(cx.array(ids)), m(mlx_core.array(ids))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=tol, atol=tol)


def test_nn_quantize_refuses_what_mlx_refuses() -> None:
    """A predicate that selects a layer with no quantized form: ValueError on both sides."""
    import mlx.nn as mnn

    import chainrule.nn as cnn

    for nn in (mnn, cnn):
        with pytest.raises(ValueError, match="quantize"):
            nn.quantize(_quant_model(nn), class_predicate=lambda path, m: True)
