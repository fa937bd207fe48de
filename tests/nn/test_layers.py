"""Every layer of chainrule.nn: shapes, dtypes, gradients (finite differences) and PyTorch.

One table drives all tests; ``test_every_layer_is_in_the_table`` fails when a layer class is
added to ``chainrule.nn.layers`` without a row here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers import activations as _activations
from chainrule.utils import tree_flatten, tree_unflatten

# -- the table ---------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    make: Callable[[], nn.Module]
    inputs: Callable[[np.random.Generator], tuple]  # NumPy arrays; float ones are float64
    shape: tuple | list  # output shape (a list of shapes for tuple outputs)
    torch_ref: Callable | None = None  # (torch, layer, np_inputs, kwargs) -> np output(s)
    kwargs: dict = field(default_factory=dict)
    float16: bool = True
    grad: bool = True
    seeded: bool = False  # reseed before each call (random layers)


def _normal(*shape):
    return lambda rng: (rng.standard_normal(shape),)


def _params(layer) -> dict:
    return {k: np.asarray(v.numpy()) for k, v in tree_flatten(layer.parameters())}


def _cl_to_cf(a):
    """(N, *spatial, C) -> (N, C, *spatial)."""
    return np.moveaxis(a, -1, 1)


def _cf_to_cl(a):
    return np.moveaxis(a, 1, -1)


def _t(torch, a):
    return torch.tensor(np.ascontiguousarray(a))


# PyTorch references ---------------------------------------------------------------------------


def _ref_linear(torch, layer, xs, kw):
    p = _params(layer)
    b = _t(torch, p["bias"]) if "bias" in p else None
    return torch.nn.functional.linear(_t(torch, xs[0]), _t(torch, p["weight"]), b).numpy()


def _ref_bilinear(torch, layer, xs, kw):
    p = _params(layer)
    return torch.nn.functional.bilinear(
        _t(torch, xs[0]),
        _t(torch, xs[1]),
        _t(torch, p["weight"].transpose(0, 2, 1)),  # MLX's (out, in2, in1) -> PyTorch's
        _t(torch, p["bias"]),
    ).numpy()


def _ref_sequential(torch, layer, xs, kw):
    p = _params(layer)
    F = torch.nn.functional
    h = F.linear(_t(torch, xs[0]), _t(torch, p["layers.0.weight"]), _t(torch, p["layers.0.bias"]))
    return F.linear(
        F.relu(h), _t(torch, p["layers.2.weight"]), _t(torch, p["layers.2.bias"])
    ).numpy()


def _ref_embedding(torch, layer, xs, kw):
    return torch.nn.functional.embedding(
        torch.tensor(xs[0].astype(np.int64)), _t(torch, _params(layer)["weight"])
    ).numpy()


def _ref_batchnorm(torch, layer, xs, kw):
    p = _params(layer)
    x = _t(torch, _cl_to_cf(xs[0]))
    n = p["weight"].shape[0]
    y = torch.nn.functional.batch_norm(
        x,
        torch.zeros(n, dtype=torch.float64),
        torch.ones(n, dtype=torch.float64),
        _t(torch, p["weight"]),
        _t(torch, p["bias"]),
        training=True,
        eps=layer.eps,
    )
    return _cf_to_cl(y.numpy())


def _ref_layernorm(torch, layer, xs, kw):
    p = _params(layer)
    return torch.nn.functional.layer_norm(
        _t(torch, xs[0]), (xs[0].shape[-1],), _t(torch, p["weight"]), _t(torch, p["bias"]), 1e-5
    ).numpy()


def _ref_rmsnorm(torch, layer, xs, kw):
    p = _params(layer)
    return torch.nn.functional.rms_norm(
        _t(torch, xs[0]), (xs[0].shape[-1],), _t(torch, p["weight"]), eps=1e-5
    ).numpy()


def _ref_groupnorm(torch, layer, xs, kw):
    p = _params(layer)
    x = xs[0]
    dims, g = layer.dims, layer.num_groups
    if layer.pytorch_compatible:
        perm = np.arange(dims)
    else:  # MLX groups channels c % g together: reorder so PyTorch sees contiguous groups
        perm = np.array([j + g * i for j in range(g) for i in range(dims // g)])
    inv = np.argsort(perm)
    y = torch.nn.functional.group_norm(
        _t(torch, _cl_to_cf(x[..., perm])),
        g,
        _t(torch, p["weight"][perm]),
        _t(torch, p["bias"][perm]),
        eps=layer.eps,
    )
    return _cf_to_cl(y.numpy())[..., inv]


def _ref_instancenorm(torch, layer, xs, kw):
    p = _params(layer)
    y = torch.nn.functional.instance_norm(
        _t(torch, _cl_to_cf(xs[0])),
        weight=_t(torch, p["weight"]),
        bias=_t(torch, p["bias"]),
        eps=layer.eps,
    )
    return _cf_to_cl(y.numpy())


def _ref_conv(torch, layer, xs, kw):
    p = _params(layer)
    w = p["weight"]
    nd = w.ndim - 2
    fn = getattr(torch.nn.functional, f"conv{nd}d")
    y = fn(
        _t(torch, _cl_to_cf(xs[0])),
        _t(torch, np.moveaxis(w, -1, 1)),
        _t(torch, p["bias"]),
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
    )
    return _cf_to_cl(y.numpy())


def _ref_conv_transpose(torch, layer, xs, kw):
    p = _params(layer)
    w = p["weight"]  # (C_out, *K, C_in) -> PyTorch's (C_in, C_out, *K)
    nd = w.ndim - 2
    fn = getattr(torch.nn.functional, f"conv_transpose{nd}d")
    y = fn(
        _t(torch, _cl_to_cf(xs[0])),
        _t(torch, np.moveaxis(w, -1, 0)),
        _t(torch, p["bias"]),
        stride=layer.stride,
        padding=layer.padding,
        output_padding=layer.output_padding,
        dilation=layer.dilation,
    )
    return _cf_to_cl(y.numpy())


def _ref_pool(torch, layer, xs, kw):
    nd = xs[0].ndim - 2
    kind = "max" if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) else "avg"
    fn = getattr(torch.nn.functional, f"{kind}_pool{nd}d")
    y = fn(
        _t(torch, _cl_to_cf(xs[0])),
        layer._kernel_size,
        layer._stride,
        layer._padding,
    )
    return _cf_to_cl(y.numpy())


def _ref_upsample(torch, layer, xs, kw):
    nd = xs[0].ndim - 2
    mode = {
        "nearest": "nearest",
        "linear": {1: "linear", 2: "bilinear", 3: "trilinear"}[nd],
        "cubic": "bicubic",
    }[layer.mode]
    sf = layer.scale_factor
    extra = {} if mode == "nearest" else {"align_corners": layer.align_corners}
    y = torch.nn.functional.interpolate(
        _t(torch, _cl_to_cf(xs[0])), scale_factor=sf, mode=mode, **extra
    )
    return _cf_to_cl(y.numpy())


def _torch_mha(torch, p, prefix, dims, heads, bias_free=True):
    m = torch.nn.MultiheadAttention(dims, heads, bias=True, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        m.in_proj_weight.copy_(
            torch.cat([_t(torch, p[f"{prefix}{k}_proj.weight"]) for k in ("query", "key", "value")])
        )
        m.in_proj_bias.zero_()
        m.out_proj.weight.copy_(_t(torch, p[f"{prefix}out_proj.weight"]))
        m.out_proj.bias.zero_()
    return m


def _ref_mha(torch, layer, xs, kw):
    p = _params(layer)
    m = _torch_mha(torch, p, "", xs[0].shape[-1], layer.num_heads)
    mask = kw.get("mask")
    out, _ = m(
        *(_t(torch, x) for x in xs),
        attn_mask=None if mask is None else _t(torch, mask.numpy()),
        need_weights=False,
    )
    return out.detach().numpy()


def _copy(torch, dst, src):
    with torch.no_grad():
        dst.copy_(_t(torch, src))


def _torch_encoder_layer(torch, p, prefix, layer):
    dims = layer.linear1.weight.shape[1]
    t = torch.nn.TransformerEncoderLayer(
        dims,
        layer.attention.num_heads,
        layer.linear1.weight.shape[0],
        dropout=0.0,
        batch_first=True,
        norm_first=layer.norm_first,
        dtype=torch.float64,
    )
    t.self_attn = _torch_mha(torch, p, prefix + "attention.", dims, layer.attention.num_heads)
    for ours, theirs in (
        ("linear1", t.linear1),
        ("linear2", t.linear2),
        ("ln1", t.norm1),
        ("ln2", t.norm2),
    ):
        _copy(torch, theirs.weight, p[f"{prefix}{ours}.weight"])
        _copy(torch, theirs.bias, p[f"{prefix}{ours}.bias"])
    return t


def _torch_decoder_layer(torch, p, prefix, layer):
    dims = layer.linear1.weight.shape[1]
    heads = layer.self_attention.num_heads
    t = torch.nn.TransformerDecoderLayer(
        dims,
        heads,
        layer.linear1.weight.shape[0],
        dropout=0.0,
        batch_first=True,
        norm_first=layer.norm_first,
        dtype=torch.float64,
    )
    t.self_attn = _torch_mha(torch, p, prefix + "self_attention.", dims, heads)
    t.multihead_attn = _torch_mha(torch, p, prefix + "cross_attention.", dims, heads)
    for ours, theirs in (
        ("linear1", t.linear1),
        ("linear2", t.linear2),
        ("ln1", t.norm1),
        ("ln2", t.norm2),
        ("ln3", t.norm3),
    ):
        _copy(torch, theirs.weight, p[f"{prefix}{ours}.weight"])
        _copy(torch, theirs.bias, p[f"{prefix}{ours}.bias"])
    return t


def _mask(m):
    return None if m is None else np.asarray(m.numpy())


def _ref_encoder_layer(torch, layer, xs, kw):
    t = _torch_encoder_layer(torch, _params(layer), "", layer)
    mask = _mask(kw.get("mask"))
    return t(_t(torch, xs[0]), src_mask=None if mask is None else _t(torch, mask)).detach().numpy()


def _final_ln(torch, p, prefix, x):
    return torch.nn.functional.layer_norm(
        x, (x.shape[-1],), _t(torch, p[prefix + "ln.weight"]), _t(torch, p[prefix + "ln.bias"])
    )


def _run_encoder(torch, p, prefix, enc, x, mask):
    for i, layer in enumerate(enc.layers):
        t = _torch_encoder_layer(torch, p, f"{prefix}layers.{i}.", layer)
        x = t(x, src_mask=mask)
    return _final_ln(torch, p, prefix, x)


def _run_decoder(torch, p, prefix, dec, x, memory, x_mask, m_mask):
    for i, layer in enumerate(dec.layers):
        t = _torch_decoder_layer(torch, p, f"{prefix}layers.{i}.", layer)
        x = t(x, memory, tgt_mask=x_mask, memory_mask=m_mask)
    return _final_ln(torch, p, prefix, x)


def _ref_encoder(torch, layer, xs, kw):
    mask = _mask(kw.get("mask"))
    out = _run_encoder(
        torch,
        _params(layer),
        "",
        layer,
        _t(torch, xs[0]),
        None if mask is None else _t(torch, mask),
    )
    return out.detach().numpy()


def _ref_decoder_layer(torch, layer, xs, kw):
    t = _torch_decoder_layer(torch, _params(layer), "", layer)
    xm, mm = _mask(kw.get("x_mask")), _mask(kw.get("memory_mask"))
    return (
        t(
            _t(torch, xs[0]),
            _t(torch, xs[1]),
            tgt_mask=None if xm is None else _t(torch, xm),
            memory_mask=None if mm is None else _t(torch, mm),
        )
        .detach()
        .numpy()
    )


def _ref_decoder(torch, layer, xs, kw):
    xm = _mask(kw.get("x_mask"))
    out = _run_decoder(
        torch,
        _params(layer),
        "",
        layer,
        _t(torch, xs[0]),
        _t(torch, xs[1]),
        None if xm is None else _t(torch, xm),
        None,
    )
    return out.detach().numpy()


def _ref_transformer(torch, layer, xs, kw):
    p = _params(layer)
    tm = _mask(kw.get("tgt_mask"))
    memory = _run_encoder(torch, p, "encoder.", layer.encoder, _t(torch, xs[0]), None)
    out = _run_decoder(
        torch,
        p,
        "decoder.",
        layer.decoder,
        _t(torch, xs[1]),
        memory,
        None if tm is None else _t(torch, tm),
        None,
    )
    return out.detach().numpy()


def _ref_rnn(torch, layer, xs, kw):
    p = _params(layer)
    H = layer.hidden_size
    D = p["Wxh"].shape[1] if "Wxh" in p else p["Wx"].shape[1]
    x = _t(torch, xs[0])
    h0 = _t(torch, xs[1][None])
    if isinstance(layer, nn.RNN):
        t = torch.nn.RNN(D, H, batch_first=True, dtype=torch.float64)
        _copy(torch, t.weight_ih_l0, p["Wxh"])
        _copy(torch, t.weight_hh_l0, p["Whh"])
        _copy(torch, t.bias_ih_l0, p["bias"])
        _copy(torch, t.bias_hh_l0, np.zeros(H))
        return t(x, h0)[0].detach().numpy()
    if isinstance(layer, nn.GRU):
        t = torch.nn.GRU(D, H, batch_first=True, dtype=torch.float64)
        _copy(torch, t.weight_ih_l0, p["Wx"])
        _copy(torch, t.weight_hh_l0, p["Wh"])
        _copy(torch, t.bias_ih_l0, p["b"])  # MLX folds b_hr, b_hz into b; b_hn is bhn
        _copy(torch, t.bias_hh_l0, np.concatenate([np.zeros(2 * H), p["bhn"]]))
        return t(x, h0)[0].detach().numpy()
    t = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    _copy(torch, t.weight_ih_l0, p["Wx"])
    _copy(torch, t.weight_hh_l0, p["Wh"])
    _copy(torch, t.bias_ih_l0, p["bias"])
    _copy(torch, t.bias_hh_l0, np.zeros(4 * H))
    out, (_, c_n) = t(x, (h0, _t(torch, xs[2][None])))
    return out.detach().numpy(), c_n[0].detach().numpy()


# NumPy references for layers PyTorch lacks ------------------------------------------------------


def _np_rope(x, dims, traditional, base, scale, offset):
    L = x.shape[-2]
    half = dims // 2
    theta = (np.arange(offset, offset + L) * scale)[:, None] * base ** (-2 * np.arange(half) / dims)
    rot = np.exp(1j * theta)
    y = x.copy()
    if traditional:
        z = (x[..., 0:dims:2] + 1j * x[..., 1:dims:2]) * rot
        y[..., 0:dims:2], y[..., 1:dims:2] = z.real, z.imag
    else:
        z = (x[..., :half] + 1j * x[..., half:dims]) * rot
        y[..., :half], y[..., half:dims] = z.real, z.imag
    return y


def _ref_rope(torch, layer, xs, kw):
    return _np_rope(
        xs[0], layer.dims, layer.traditional, layer.base, layer.scale, kw.get("offset", 0)
    )


def _ref_alibi(torch, layer, xs, kw):
    s = xs[0]
    B, H, L, S = s.shape
    slopes = 2.0 ** (-8.0 * np.arange(1, H + 1) / H)
    dist = -np.abs(np.arange(L)[:, None] - np.arange(S)[None, :])
    return s + slopes[None, :, None, None] * dist[None, None]


def _ref_sinusoidal(torch, layer, xs, kw):
    dims = 8
    freqs = np.exp(np.linspace(np.log(1.0), np.log(1e-4), dims // 2))
    y = xs[0][..., None] * freqs
    return np.concatenate([np.sin(y), np.cos(y)], axis=-1) * np.sqrt(2 / dims)


def _ref_quantized_linear(torch, layer, xs, kw):
    # unpack MLX's 4-bit little-endian words by hand, independently of mx.dequantize
    words = np.asarray(layer.weight.numpy(), dtype=np.uint64)
    q = ((words[..., None] >> (4 * np.arange(8, dtype=np.uint64))) & 15).reshape(len(words), -1)
    gs = layer.group_size
    s, b = layer.scales.numpy(), layer.biases.numpy()
    w = (q.reshape(len(q), -1, gs) * s[..., None] + b[..., None]).reshape(len(q), -1)
    return xs[0] @ w.T + layer.bias.numpy()


_IDENTITY_REF = lambda torch, layer, xs, kw: xs[0]  # noqa: E731
_NUMPY_REFS = {_ref_rope, _ref_alibi, _ref_sinusoidal, _IDENTITY_REF, _ref_quantized_linear}


@dataclass(frozen=True)
class _causal:
    """An additive causal mask, built in the dtype of the test that uses it."""

    n: int


CASES = [
    Case("Linear", lambda: nn.Linear(5, 3), _normal(2, 4, 5), (2, 4, 3), _ref_linear),
    Case(
        "Linear-torch-names-nobias",
        lambda: nn.Linear(in_features=5, out_features=3, bias=False),
        _normal(4, 5),
        (4, 3),
        _ref_linear,
    ),
    Case(
        "Bilinear",
        lambda: nn.Bilinear(4, 3, 2),
        lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 3))),
        (6, 2),
        _ref_bilinear,
    ),
    Case("Identity", lambda: nn.Identity(7, foo=1), _normal(3, 4), (3, 4), _IDENTITY_REF),
    Case(
        "Sequential",
        lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)),
        _normal(3, 4),
        (3, 2),
        _ref_sequential,
    ),
    Case("Dropout", lambda: nn.Dropout(0.3), _normal(4, 5), (4, 5), seeded=True),
    Case("Dropout2d", lambda: nn.Dropout2d(0.3), _normal(2, 3, 3, 4), (2, 3, 3, 4), seeded=True),
    Case(
        "Dropout3d", lambda: nn.Dropout3d(0.3), _normal(2, 2, 2, 2, 3), (2, 2, 2, 2, 3), seeded=True
    ),
    Case(
        "Embedding",
        lambda: nn.Embedding(10, 4),
        lambda r: (r.integers(0, 10, (2, 5)).astype(np.int32),),
        (2, 5, 4),
        _ref_embedding,
    ),
    Case("BatchNorm-NC", lambda: nn.BatchNorm(4), _normal(8, 4), (8, 4), _ref_batchnorm),
    Case("BatchNorm-NLC", lambda: nn.BatchNorm(4), _normal(3, 5, 4), (3, 5, 4), _ref_batchnorm),
    Case(
        "BatchNorm-NHWC", lambda: nn.BatchNorm(4), _normal(2, 3, 3, 4), (2, 3, 3, 4), _ref_batchnorm
    ),
    Case("LayerNorm", lambda: nn.LayerNorm(6), _normal(2, 3, 6), (2, 3, 6), _ref_layernorm),
    Case("RMSNorm", lambda: nn.RMSNorm(6), _normal(2, 3, 6), (2, 3, 6), _ref_rmsnorm),
    Case(
        "GroupNorm-pytorch",
        lambda: nn.GroupNorm(2, 6, pytorch_compatible=True),
        _normal(2, 3, 3, 6),
        (2, 3, 3, 6),
        _ref_groupnorm,
    ),
    Case("GroupNorm-mlx", lambda: nn.GroupNorm(3, 6), _normal(2, 4, 6), (2, 4, 6), _ref_groupnorm),
    Case(
        "InstanceNorm",
        lambda: nn.InstanceNorm(4, affine=True),
        _normal(2, 5, 5, 4),
        (2, 5, 5, 4),
        _ref_instancenorm,
    ),
    Case(
        "Conv1d",
        lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
        _normal(2, 9, 4),
        (2, 5, 6),
        _ref_conv,
    ),
    Case(
        "Conv2d",
        lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
        _normal(2, 7, 8, 4),
        (2, 4, 6, 6),
        _ref_conv,
    ),
    Case(
        "Conv3d",
        lambda: nn.Conv3d(2, 3, 2, padding=1),
        _normal(1, 3, 4, 3, 2),
        (1, 4, 5, 4, 3),
        _ref_conv,
    ),
    Case(
        "ConvTranspose1d",
        lambda: nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1, output_padding=1),
        _normal(2, 5, 4),
        (2, 10, 3),
        _ref_conv_transpose,
    ),
    Case(
        "ConvTranspose2d",
        lambda: nn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
        _normal(1, 4, 3, 3),
        (1, 7, 5, 2),
        _ref_conv_transpose,
    ),
    Case(
        "ConvTranspose3d",
        lambda: nn.ConvTranspose3d(2, 2, 2, stride=2),
        _normal(1, 2, 3, 2, 2),
        (1, 4, 6, 4, 2),
        _ref_conv_transpose,
    ),
    Case("MaxPool1d", lambda: nn.MaxPool1d(3, 2, 1), _normal(2, 9, 3), (2, 5, 3), _ref_pool),
    Case(
        "MaxPool2d",
        lambda: nn.MaxPool2d((2, 3), (2, 1), (1, 1)),
        _normal(2, 6, 7, 3),
        (2, 4, 7, 3),
        _ref_pool,
    ),
    Case("MaxPool3d", lambda: nn.MaxPool3d(2), _normal(1, 4, 4, 4, 2), (1, 2, 2, 2, 2), _ref_pool),
    Case("AvgPool1d", lambda: nn.AvgPool1d(3, 2, 1), _normal(2, 9, 3), (2, 5, 3), _ref_pool),
    Case("AvgPool2d", lambda: nn.AvgPool2d(2), _normal(2, 6, 7, 3), (2, 3, 3, 3), _ref_pool),
    Case(
        "AvgPool3d",
        lambda: nn.AvgPool3d((2, 2, 1)),
        _normal(1, 4, 4, 3, 2),
        (1, 2, 2, 3, 2),
        _ref_pool,
    ),
    Case(
        "Upsample-nearest", lambda: nn.Upsample(2), _normal(2, 3, 4, 2), (2, 6, 8, 2), _ref_upsample
    ),
    Case(
        "Upsample-linear-1d",
        lambda: nn.Upsample(1.5, "linear"),
        _normal(2, 4, 3),
        (2, 6, 3),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "Upsample-bilinear",
        lambda: nn.Upsample((2, 3), "linear"),
        _normal(1, 3, 2, 2),
        (1, 6, 6, 2),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "Upsample-bilinear-corners",
        lambda: nn.Upsample(2, "linear", align_corners=True),
        _normal(1, 3, 3, 2),
        (1, 6, 6, 2),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "Upsample-trilinear",
        lambda: nn.Upsample(2, "linear"),
        _normal(1, 2, 2, 3, 1),
        (1, 4, 4, 6, 1),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "Upsample-bicubic",
        lambda: nn.Upsample(2, "cubic"),
        _normal(1, 4, 3, 2),
        (1, 8, 6, 2),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "Upsample-bicubic-corners",
        lambda: nn.Upsample(2, "cubic", align_corners=True),
        _normal(1, 3, 3, 1),
        (1, 6, 6, 1),
        _ref_upsample,
        float16=False,  # MLX's float32 interpolation weights: half in, float32 out
    ),
    Case(
        "MultiHeadAttention",
        lambda: nn.MultiHeadAttention(8, 2),
        lambda r: (
            r.standard_normal((2, 3, 8)),
            r.standard_normal((2, 4, 8)),
            r.standard_normal((2, 4, 8)),
        ),
        (2, 3, 8),
        _ref_mha,
    ),
    Case(
        "MultiHeadAttention-causal",
        lambda: nn.MultiHeadAttention(8, 4),
        lambda r: (r.standard_normal((2, 4, 8)),) * 3,
        (2, 4, 8),
        _ref_mha,
        kwargs={"mask": _causal(4)},
    ),
    Case(
        "TransformerEncoderLayer",
        lambda: nn.TransformerEncoderLayer(8, 2, 16),
        _normal(2, 4, 8),
        (2, 4, 8),
        _ref_encoder_layer,
        kwargs={"mask": _causal(4)},
    ),
    Case(
        "TransformerEncoderLayer-postnorm",
        lambda: nn.TransformerEncoderLayer(8, 2, 16, norm_first=False),
        _normal(2, 4, 8),
        (2, 4, 8),
        _ref_encoder_layer,
    ),
    Case(
        "TransformerEncoder",
        lambda: nn.TransformerEncoder(2, 8, 2, 16),
        _normal(2, 4, 8),
        (2, 4, 8),
        _ref_encoder,
        kwargs={"mask": _causal(4)},
    ),
    Case(
        "TransformerDecoderLayer",
        lambda: nn.TransformerDecoderLayer(8, 2, 16),
        lambda r: (r.standard_normal((2, 3, 8)), r.standard_normal((2, 4, 8))),
        (2, 3, 8),
        _ref_decoder_layer,
        kwargs={"x_mask": _causal(3), "memory_mask": None},
    ),
    Case(
        "TransformerDecoderLayer-postnorm",
        lambda: nn.TransformerDecoderLayer(8, 2, 16, norm_first=False),
        lambda r: (r.standard_normal((2, 3, 8)), r.standard_normal((2, 4, 8))),
        (2, 3, 8),
        _ref_decoder_layer,
    ),
    Case(
        "TransformerDecoder",
        lambda: nn.TransformerDecoder(2, 8, 2, 16),
        lambda r: (r.standard_normal((2, 3, 8)), r.standard_normal((2, 4, 8))),
        (2, 3, 8),
        _ref_decoder,
        kwargs={"x_mask": _causal(3), "memory_mask": None},
    ),
    Case(
        "Transformer",
        lambda: nn.Transformer(8, 2, 1, 1, 16),
        lambda r: (r.standard_normal((2, 4, 8)), r.standard_normal((2, 3, 8))),
        (2, 3, 8),
        _ref_transformer,
        kwargs={"src_mask": None, "tgt_mask": _causal(3), "memory_mask": None},
    ),
    Case("RoPE", lambda: nn.RoPE(6), _normal(2, 5, 8), (2, 5, 8), _ref_rope),
    Case(
        "RoPE-traditional",
        lambda: nn.RoPE(8, traditional=True, base=100, scale=0.5),
        _normal(2, 3, 5, 8),
        (2, 3, 5, 8),
        _ref_rope,
        kwargs={"offset": 3},
    ),
    Case(
        "QuantizedLinear",
        lambda: nn.QuantizedLinear(64, 3, group_size=32, bits=4),
        _normal(2, 4, 64),
        (2, 4, 3),
        _ref_quantized_linear,
    ),
    Case(
        "QuantizedEmbedding",
        lambda: nn.QuantizedEmbedding(10, 64, group_size=32, bits=8),
        lambda r: (r.integers(0, 10, (2, 3)),),
        (2, 3, 64),
        grad=False,
    ),
    # MLX's sharded layers in a group of one process: the plain linear maps
    Case(
        "AllToShardedLinear",
        lambda: nn.AllToShardedLinear(5, 4),
        _normal(2, 5),
        (2, 4),
        _ref_linear,
    ),
    Case(
        "ShardedToAllLinear",
        lambda: nn.ShardedToAllLinear(5, 4),
        _normal(2, 5),
        (2, 4),
        _ref_linear,
    ),
    Case(
        "QuantizedAllToShardedLinear",
        lambda: nn.QuantizedAllToShardedLinear(64, 3, group_size=32, bits=4),
        _normal(2, 64),
        (2, 3),
        _ref_quantized_linear,
    ),
    Case(
        "QuantizedShardedToAllLinear",
        lambda: nn.QuantizedShardedToAllLinear(64, 3, group_size=64, bits=4),
        _normal(2, 64),
        (2, 3),
        _ref_quantized_linear,
    ),
    # MLX's FSDP wrapper in a group of one process: the wrapped layer itself
    Case(
        "FullyShardedModule",
        lambda: nn.FullyShardedModule(nn.Linear(5, 4)),
        _normal(2, 5),
        (2, 4),
        lambda torch, layer, xs, kw: _ref_linear(torch, layer["module"], xs, kw),
    ),
    # quantizes its float32/float16 input (qqmm refuses float64), so no float64 gradient check
    Case("QQLinear", lambda: nn.QQLinear(32, 3, mode="mxfp8"), _normal(2, 32), (2, 3), grad=False),
    Case("ALiBi", lambda: nn.ALiBi(), _normal(2, 3, 4, 5), (2, 3, 4, 5), _ref_alibi),
    Case(
        "SinusoidalPositionalEncoding",
        lambda: nn.SinusoidalPositionalEncoding(8),
        lambda r: (r.uniform(0, 10, (2, 5)),),
        (2, 5, 8),
        _ref_sinusoidal,
        float16=False,
    ),
    Case(
        "RNN",
        lambda: nn.RNN(3, 4),
        lambda r: (r.standard_normal((2, 5, 3)), r.standard_normal((2, 4))),
        (2, 5, 4),
        _ref_rnn,
    ),
    Case(
        "GRU",
        lambda: nn.GRU(3, 4),
        lambda r: (r.standard_normal((2, 5, 3)), r.standard_normal((2, 4))),
        (2, 5, 4),
        _ref_rnn,
    ),
    Case(
        "LSTM",
        lambda: nn.LSTM(3, 4),
        lambda r: (
            r.standard_normal((2, 5, 3)),
            r.standard_normal((2, 4)),
            r.standard_normal((2, 4)),
        ),
        [(2, 5, 4), (2, 5, 4)],
        _ref_rnn,
    ),
]


# -- helpers -------------------------------------------------------------------------------------


def _inputs(case, rng, dtype):
    out = []
    for a in case.inputs(rng):
        if a.dtype.kind == "f":
            out.append(mx.array(a, dtype=dtype))
        else:
            out.append(mx.array(a))
    return out


def _call(case, layer, xs):
    if case.seeded:
        mx.random.seed(7)
    return layer(*xs, **case.kwargs)


def _as_list(out):
    return list(out) if isinstance(out, tuple) else [out]


def _kwargs_to(case, dtype):
    return {
        k: (
            nn.MultiHeadAttention.create_additive_causal_mask(v.n, dtype)
            if isinstance(v, _causal)
            else v
        )
        for k, v in case.kwargs.items()
    }


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_output_shape(case):
    layer = case.make()
    c = Case(**{**case.__dict__, "kwargs": _kwargs_to(case, mx.float32)})
    out = _call(c, layer, _inputs(case, np.random.default_rng(0), mx.float32))
    shapes = case.shape if isinstance(case.shape, list) else [case.shape]
    assert [o.shape for o in _as_list(out)] == [tuple(s) for s in shapes]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16], ids=["float32", "float16"])
def test_dtype_preserved(case, dtype):
    if dtype == mx.float16 and not case.float16:
        pytest.skip("this layer computes in float32 by design")
    layer = case.make()
    layer.set_dtype(dtype)
    c = Case(**{**case.__dict__, "kwargs": _kwargs_to(case, dtype)})
    out = _call(c, layer, _inputs(case, np.random.default_rng(0), dtype))
    for o in _as_list(out):
        assert o.dtype == dtype, (case.id, o.dtype)
        assert np.all(np.isfinite(o.numpy())), case.id


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=lambda c: c.id)
def test_gradients_match_finite_differences(case):
    layer = case.make()
    layer.set_dtype(mx.float64)
    rng = np.random.default_rng(1)
    raw = case.inputs(rng)
    float_pos = [i for i, a in enumerate(raw) if a.dtype.kind == "f"]
    fixed = [mx.array(a) for a in raw]
    flat = tree_flatten(layer.trainable_parameters())
    names = [k for k, _ in flat]
    kwargs = _kwargs_to(case, mx.float64)

    def f(*args):
        xs = list(fixed)
        for i, a in zip(float_pos, args[: len(float_pos)]):
            xs[i] = a
        layer.update(tree_unflatten(list(zip(names, args[len(float_pos) :]))))
        if case.seeded:
            mx.random.seed(3)
        out = _as_list(layer(*xs, **kwargs))
        return mx.concatenate([o.reshape(-1) for o in out])

    args = [mx.array(raw[i]) for i in float_pos] + [v for _, v in flat]
    try:
        mx.check_grads(f, args, order=1)
    finally:
        layer.update(tree_unflatten(flat))


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_ref], ids=lambda c: c.id)
def test_matches_reference(case):
    torch = None if case.torch_ref in _NUMPY_REFS else pytest.importorskip("torch")
    layer = case.make()
    layer.set_dtype(mx.float64)
    raw = case.inputs(np.random.default_rng(2))
    kwargs = _kwargs_to(case, mx.float64)
    out = _as_list(layer(*_inputs(case, np.random.default_rng(2), mx.float64), **kwargs))
    ref = case.torch_ref(torch, layer, raw, kwargs)
    ref = list(ref) if isinstance(ref, tuple) else [ref]
    if isinstance(layer, nn.LSTM):  # PyTorch returns only the last cell state
        out = [out[0], out[1][:, -1]]
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-7, atol=1e-9, err_msg=case.id)


def test_every_layer_is_in_the_table():
    covered = {type(c.make()) for c in CASES}
    activation_classes = {
        getattr(_activations, n)
        for n in _activations.__all__
        if inspect.isclass(getattr(_activations, n))
    }
    missing = []
    for name in nn.layers.__all__ if hasattr(nn.layers, "__all__") else dir(nn.layers):
        obj = getattr(nn.layers, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, nn.Module)
            and obj not in activation_classes
            and obj not in covered
        ):
            missing.append(name)
    assert not missing, f"layers without a row in CASES: {missing}"


# -- behaviour beyond the table -------------------------------------------------------------------


def test_dropout_train_and_eval():
    mx.random.seed(0)
    d = nn.Dropout(0.25)
    x = mx.ones((200, 50))
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    d.eval()
    assert d(x) is x
    d.train()
    assert (d(x).numpy() == 0).any()


@pytest.mark.parametrize(
    "cls,shape", [(nn.Dropout2d, (4, 5, 5, 16)), (nn.Dropout3d, (2, 3, 3, 3, 32))]
)
def test_channel_dropout_drops_whole_channels(cls, shape):
    mx.random.seed(1)
    y = cls(0.5)(mx.ones(shape)).numpy()
    per_channel = y.reshape(shape[0], -1, shape[-1])
    # within a sample, every channel is either all zero or all scaled by 2
    assert np.all((per_channel == 0).all(axis=1) | (per_channel == 2).all(axis=1))
    assert 0 < (per_channel == 0).mean() < 1
    with pytest.raises(ValueError, match="dimensions"):
        cls(0.5)(mx.ones((3, 4)))


def test_dropout_rejects_bad_p():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="probability"):
            nn.Dropout(p)
    d = nn.Dropout2d(0.5)
    d.p = 0.0  # PyTorch code changes p in place
    assert d.p == 0.0 and d(mx.ones((1, 2, 2, 3))).numpy().min() == 1.0
    with pytest.raises(ValueError, match="probability"):
        d.p = 1.0


def test_batchnorm_running_stats_train_and_eval():
    bn = nn.BatchNorm(3, momentum=0.2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)) * 2 + 5
    bn(mx.array(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * x.mean(0), rtol=1e-5)
    # the running variance takes the unbiased batch variance (MLX 0.32, PyTorch)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * x.var(0, ddof=1), rtol=1e-5)
    # the statistics are state: never recorded, never trainable
    assert not bn.running_mean.requires_grad
    assert "running_mean" not in bn.trainable_parameters()
    bn.unfreeze()
    assert "running_mean" not in bn.trainable_parameters()
    before = bn.running_mean.numpy()
    bn.eval()
    y = bn(mx.array(x)).numpy()
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval does not update
    expect = (x - before) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(y, expect, rtol=1e-5)


def test_batchnorm_running_var_is_unbiased_as_mlx():
    # MLX 0.32: BatchNorm(1) on [[0], [2], [4]] keeps running_var 0.9 * 1 + 0.1 * 4 = 1.3
    bn = nn.BatchNorm(1)
    bn(mx.array([[0.0], [2.0], [4.0]]))
    np.testing.assert_allclose(bn.running_var.numpy(), [1.3], rtol=1e-6)


def test_gru_without_hidden_state_keeps_the_hidden_bias():
    # MLX: GRU(1, 1), zero weights and biases but b_hn = 1, zero input:
    # r = z = 0.5, n = tanh(0.5 * 1), h = 0.5 * tanh(0.5) = 0.231059
    gru = nn.GRU(1, 1)
    gru.update(
        {"Wx": mx.zeros((3, 1)), "Wh": mx.zeros((3, 1)), "b": mx.zeros((3,)), "bhn": mx.ones((1,))}
    )
    out = gru(mx.zeros((2, 1)))
    np.testing.assert_allclose(out.numpy()[0], [0.5 * np.tanh(0.5)], rtol=1e-6)
    # and the same as an explicit zero initial state, for every step
    np.testing.assert_allclose(
        out.numpy(), gru(mx.zeros((2, 1)), mx.zeros((1,))).numpy(), rtol=1e-6
    )


def test_batchnorm_running_stats_match_torch_mean():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm(4)
    tb = torch.nn.BatchNorm2d(4, dtype=torch.float64)
    for _ in range(3):
        x = rng.standard_normal((2, 3, 3, 4))
        bn(mx.array(x))
        tb(torch.tensor(_cl_to_cf(x)))
    np.testing.assert_allclose(bn.running_mean.numpy(), tb.running_mean.numpy(), rtol=1e-5)


def test_batchnorm_inside_grad_keeps_state_out_of_the_graph():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4))
    x = mx.random.normal((8, 3))

    def loss(x):
        return (model(x) ** 2).sum()

    _, grads = nn.value_and_grad(model, loss)(x)
    rm = model.layers[1].running_mean
    assert rm._node is None  # plain state, no graph attached
    assert "running_mean" not in grads["layers"][1]


def test_mha_causal_mask_and_bool_mask():
    m = nn.MultiHeadAttention.create_additive_causal_mask(4)
    assert m.dtype == mx.float32
    a = m.numpy()
    assert np.all(a[np.tril_indices(4)] == 0) and np.all(a[np.triu_indices(4, 1)] < -1e30)
    mha = nn.MultiHeadAttention(8, 2)
    x = mx.random.normal((1, 4, 8))
    add = mha(x, x, x, mask=m).numpy()
    boolean = mha(x, x, x, mask=mx.array(np.tril(np.ones((4, 4), dtype=bool)))).numpy()
    causal = mha(x, x, x, mask="causal").numpy()
    np.testing.assert_allclose(add, boolean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(add, causal, rtol=1e-5, atol=1e-6)
    # the first position sees only itself, whatever follows it
    y = mx.concatenate([x[:, :1], mx.random.normal((1, 3, 8))], axis=1)
    np.testing.assert_allclose(mha(y, y, y, mask=m).numpy()[:, 0], add[:, 0], rtol=1e-5, atol=1e-6)


def test_embedding_as_linear_and_bad_ids():
    e = nn.Embedding(5, 3)
    x = mx.random.normal((2, 3))
    np.testing.assert_allclose(e.as_linear(x).numpy(), x.numpy() @ e.weight.numpy().T, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        e(mx.array([0, 5]))


def test_linear_init_range_and_argument_names():
    mx.random.seed(0)
    lin = nn.Linear(16, 300)
    w = lin.weight.numpy()
    bound = 1 / np.sqrt(16)
    assert w.min() >= -bound and w.max() <= bound and w.max() > 0.9 * bound
    assert lin.in_features == lin.input_dims == 16 and lin.out_features == 300
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(3, 4, in_features=5)
    assert nn.Linear(in_features=2, out_features=5).weight.shape == (5, 2)


def test_conv_weight_layout_and_errors():
    c = nn.Conv2d(3, 8, 5)
    assert c.weight.shape == (8, 5, 5, 3)
    assert np.all(c.bias.numpy() == 0)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="channels"):
        c(mx.zeros((1, 8, 8, 4)))


def test_upsample_integer_input_and_bad_mode():
    x = mx.arange(1, 5).reshape(1, 2, 2, 1)
    near = nn.Upsample(2)(x)
    assert near.dtype == mx.int32
    np.testing.assert_array_equal(
        near.numpy()[0, :, :, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    )
    lin = nn.Upsample(2, "linear", align_corners=True)(x).numpy()[0, :, :, 0]
    np.testing.assert_allclose(lin[0], [1, 4 / 3, 5 / 3, 2], rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        nn.Upsample(2, "area")


def test_pool_padding_as_each_library_allows():
    # MLX takes any padding (padded windows of -inf or zeros); PyTorch refuses more than half
    x = mx.arange(8, dtype=mx.float32).reshape(1, 8, 1)
    y = nn.MaxPool1d(3, stride=3, padding=2)(x)
    np.testing.assert_array_equal(np.asarray(y)[0, :, 0], [0, 3, 6, 7])
    import chainrule.torch as torch

    pool = torch.nn.MaxPool2d(2, padding=2)  # PyTorch refuses it when called
    with pytest.raises(ValueError, match="pad should be at most half"):
        pool(torch.zeros(1, 1, 4, 4))


def test_max_pool_pads_integers_with_their_minimum():
    x = mx.array([[[0, 1], [2, 3], [4, 5]]])  # int32
    y = nn.MaxPool1d(kernel_size=2, stride=2, padding=1)(x)
    assert y.dtype == mx.int32
    np.testing.assert_array_equal(np.asarray(y), [[[0, 1], [4, 5]]])


def test_rnn_unbatched_and_without_state():
    for layer in (nn.RNN(3, 4), nn.GRU(3, 4)):
        x = mx.random.normal((5, 3))
        y = layer(x)
        assert y.shape == (5, 4)
        np.testing.assert_allclose(layer(x[None])[0].numpy(), y.numpy(), rtol=1e-6)
    h, c = nn.LSTM(3, 4)(mx.random.normal((5, 3)))
    assert h.shape == c.shape == (5, 4)


@pytest.mark.parametrize(
    "build",
    [
        lambda eps: nn.LayerNorm(8, eps=eps),
        lambda eps: nn.RMSNorm(8, eps=eps),
        lambda eps: nn.GroupNorm(2, 8, eps=eps),
        lambda eps: nn.InstanceNorm(8, eps=eps),
        lambda eps: nn.BatchNorm(8, eps=eps),
    ],
)
def test_normalisation_layers_refuse_an_eps_that_is_not_positive(build):
    for eps in (-1.0, -1e-30, 0.0):
        with pytest.raises(ValueError, match="'eps' must be positive"):
            build(eps)
    for eps in (1e-30, 1e-5, 1.0):
        build(eps)


def test_group_norm_and_batch_norm_argument_checks():
    for groups, dims in ((0, 8), (-1, 8), (4, 0), (4, 6)):
        with pytest.raises(ValueError):
            nn.GroupNorm(groups, dims)
    bn = nn.BatchNorm(3)
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(mx.ones((1, 3)))
    bn.eval()
    assert bn(mx.ones((1, 3))).shape == (1, 3)  # evaluation uses the running statistics


def test_instance_norm_keeps_float16_statistics_finite():
    board = np.indices((4, 4)).sum(axis=0) % 2
    x = np.stack([np.where(board, -512, 512), np.where(board, -256, 256)], axis=-1)
    y = nn.InstanceNorm(dims=2)(mx.array(x.astype(np.float16))[None])
    assert y.dtype == mx.float16
    np.testing.assert_allclose(np.asarray(y).astype(np.float32), np.sign(x)[None], atol=1e-3)


def test_sinusoidal_encoding_dims_as_mlx():
    y = nn.SinusoidalPositionalEncoding(2)(mx.arange(10))
    assert y.shape == (10, 2)
    for dims in (0, 1, 3):
        with pytest.raises(ValueError, match="positive and even"):
            nn.SinusoidalPositionalEncoding(dims)
    assert nn.SinusoidalPositionalEncoding(4, scale=0.0)(mx.arange(3)).abs().max().item() == 0.0


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize(("size", "scale"), [((8, 8), 0.5), ((12, 12), 0.25), ((8, 8), 2.0)])
def test_antialiased_upsample_matches_torch(mode, size, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    got = nn.Upsample(scale_factor=scale, mode=mode, antialias=True)(mx.array(x))
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2)),
        scale_factor=scale,
        mode={"linear": "bilinear", "cubic": "bicubic"}[mode],
        align_corners=False,
        antialias=True,
    ).permute(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-5)


def test_antialiased_upsample_arguments_and_gradient():
    with pytest.raises(ValueError, match="nearest"):
        nn.Upsample(2.0, mode="nearest", antialias=True)
    with pytest.raises(ValueError, match="align_corners"):
        nn.Upsample(2.0, mode="linear", align_corners=True, antialias=True)
    up = nn.Upsample(0.5, mode="linear", antialias=True)
    x = mx.array(np.random.default_rng(1).standard_normal((1, 8, 1)))
    mx.check_grads(lambda x: up(x), [x], order=2)
    # shrinking by 2 with the triangle filter averages neighbours: no input is skipped
    y = up(mx.arange(8, dtype=mx.float32).reshape(1, 8, 1))
    assert y.shape == (1, 4, 1)
