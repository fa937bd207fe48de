"""mx.fast: RMS norm, layer norm, RoPE and attention against NumPy and PyTorch references."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx

RNG = np.random.default_rng(0)


def _np(a):
    return np.asarray(a.numpy())


# -- references ---------------------------------------------------------------------------------


def _ref_rms(x, w, eps):
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if w is None else y * w


def _ref_ln(x, w, b, eps):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _ref_rope(x, dims, traditional, base, scale, offset, freqs=None):
    T = x.shape[-2]
    half = dims // 2
    off = np.asarray(offset, dtype=np.float64)
    pos = (np.arange(T) + (off.reshape(-1, *([1] * (x.ndim - 2))) if off.ndim else off)) * scale
    inv = 1 / freqs if freqs is not None else base ** (-np.arange(half) / half)
    th = pos[..., None] * inv
    c, s = np.cos(th), np.sin(th)
    out = x.copy()
    if traditional:
        x1, x2 = x[..., 0:dims:2], x[..., 1:dims:2]
        out[..., 0:dims:2] = x1 * c - x2 * s
        out[..., 1:dims:2] = x1 * s + x2 * c
    else:
        x1, x2 = x[..., :half], x[..., half:dims]
        out[..., :half] = x1 * c - x2 * s
        out[..., half:dims] = x1 * s + x2 * c
    return out


def _ref_attention(q, k, v, scale, mask=None, sinks=None):
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = scale * q @ np.swapaxes(k, -1, -2)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if sinks is not None:
        sk = np.broadcast_to(sinks.reshape(1, -1, 1, 1), s.shape[:-1] + (1,))
        s = np.concatenate([sk, s], axis=-1)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    if sinks is not None:
        p = p[..., 1:]
    return p @ v


# -- norms --------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [True, False])
def test_rms_norm_matches_reference_and_keeps_dtype(weight):
    x = RNG.standard_normal((3, 5, 33))
    w = RNG.uniform(0.5, 1.5, 33) if weight else None
    out = mx.fast.rms_norm(
        mx.array(x, mx.float64), None if w is None else mx.array(w, mx.float64), 1e-5
    )
    np.testing.assert_allclose(_np(out), _ref_rms(x, w, 1e-5), rtol=1e-12)
    h = mx.fast.rms_norm(
        mx.array(x, mx.float16), None if w is None else mx.array(w, mx.float16), 1e-5
    )
    assert h.dtype == mx.float16
    np.testing.assert_allclose(_np(h).astype(np.float64), _ref_rms(x, w, 1e-5), atol=1e-2)


def test_layer_norm_matches_reference_with_each_affine_part():
    x = RNG.standard_normal((4, 17))
    w, b = RNG.standard_normal(17), RNG.standard_normal(17)
    for ww, bb in [(w, b), (w, None), (None, b), (None, None)]:
        out = mx.fast.layer_norm(
            mx.array(x, mx.float64),
            None if ww is None else mx.array(ww, mx.float64),
            None if bb is None else mx.array(bb, mx.float64),
            1e-5,
        )
        np.testing.assert_allclose(_np(out), _ref_ln(x, ww, bb, 1e-5), rtol=1e-10, atol=1e-12)


def test_norms_refuse_bad_weights():
    x = mx.ones((2, 5))
    with pytest.raises(ValueError, match="same size"):
        mx.fast.rms_norm(x, mx.ones((4,)), 1e-5)
    with pytest.raises(ValueError, match="bias"):
        mx.fast.layer_norm(x, None, mx.ones((6,)), 1e-5)
    with pytest.raises(ValueError, match="1 dimension"):
        mx.fast.layer_norm(x, mx.ones((1, 5)), None, 1e-5)


def test_norm_gradients_first_and_second_order():
    x = mx.array(RNG.standard_normal((2, 3, 6)), mx.float64)
    w = mx.array(RNG.uniform(0.5, 1.5, 6), mx.float64)
    b = mx.array(RNG.standard_normal(6), mx.float64)
    mx.check_grads(lambda x, w: mx.fast.rms_norm(x, w, 1e-5), [x, w], order=2)
    mx.check_grads(lambda x, w, b: mx.fast.layer_norm(x, w, b, 1e-5), [x, w, b], order=2)


def test_norms_match_torch():
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 4, 8))
    w, b = RNG.standard_normal(8), RNG.standard_normal(8)
    t = torch.tensor
    ln = torch.nn.functional.layer_norm(t(x), (8,), t(w), t(b), 1e-5).numpy()
    out = mx.fast.layer_norm(
        mx.array(x, mx.float64), mx.array(w, mx.float64), mx.array(b, mx.float64), 1e-5
    )
    np.testing.assert_allclose(_np(out), ln, rtol=1e-10, atol=1e-12)
    if hasattr(torch.nn.functional, "rms_norm"):
        rms = torch.nn.functional.rms_norm(t(x), (8,), t(w), 1e-5).numpy()
        out = mx.fast.rms_norm(mx.array(x, mx.float64), mx.array(w, mx.float64), 1e-5)
        np.testing.assert_allclose(_np(out), rms, rtol=1e-10, atol=1e-12)


# -- RoPE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dims", [8, 4])
def test_rope_matches_reference(traditional, dims):
    x = RNG.standard_normal((2, 3, 5, 8))
    out = mx.fast.rope(
        mx.array(x, mx.float64), dims, traditional=traditional, base=500.0, scale=0.5, offset=3
    )
    ref = _ref_rope(x, dims, traditional, 500.0, 0.5, 3)
    np.testing.assert_allclose(_np(out), ref, rtol=1e-10, atol=1e-12)


def test_rope_offsets_per_example_and_frequencies():
    x = RNG.standard_normal((3, 2, 4, 6))
    off = np.array([0, 5, 9])
    out = mx.fast.rope(
        mx.array(x, mx.float64), 6, traditional=False, base=10000.0, scale=1.0, offset=mx.array(off)
    )
    np.testing.assert_allclose(_np(out), _ref_rope(x, 6, False, 10000.0, 1.0, off), atol=1e-12)
    freqs = RNG.uniform(1, 10, 3)
    out = mx.fast.rope(
        mx.array(x, mx.float64),
        6,
        traditional=True,
        base=None,
        scale=1.0,
        offset=2,
        freqs=mx.array(freqs, mx.float64),
    )
    ref = _ref_rope(x, 6, True, None, 1.0, 2, freqs=freqs)
    np.testing.assert_allclose(_np(out), ref, atol=1e-12)


def test_rope_float32_angles_and_dtype():
    x = mx.random.uniform(shape=(1, 4, 8)).astype(mx.float16)
    out = mx.fast.rope(x, 8, traditional=False, base=10000.0, scale=1.0, offset=0)
    assert out.dtype == mx.float16 and out.shape == (1, 4, 8)


def test_rope_checks_its_arguments():
    x = mx.ones((1, 4, 8))
    kw = dict(traditional=False, base=10000.0, scale=1.0, offset=0)
    for dims in (0, -2, 7, 16):
        with pytest.raises(ValueError, match="dims"):
            mx.fast.rope(x, dims, **kw)
    with pytest.raises(ValueError, match="floating"):
        mx.fast.rope(mx.ones((1, 4, 8), mx.int32), 8, **kw)
    with pytest.raises(ValueError, match="3 dimensions"):
        mx.fast.rope(mx.ones((4, 8)), 8, **kw)
    with pytest.raises(ValueError, match="offset"):
        mx.fast.rope(mx.ones((2, 1, 4, 8)), 8, **{**kw, "offset": mx.array([1, 2, 3])})
    with pytest.raises(ValueError, match="freqs"):
        mx.fast.rope(x, 8, **{**kw, "base": None, "freqs": mx.ones((3,))})
    with pytest.raises(ValueError, match="Neither"):
        mx.fast.rope(x, 8, **{**kw, "base": None})


def test_rope_gradients_and_vmap():
    x = mx.array(RNG.standard_normal((2, 3, 4, 6)), mx.float64)
    for traditional in (False, True):
        f = lambda x, t=traditional: mx.fast.rope(  # noqa: E731
            x, 4, traditional=t, base=100.0, scale=1.0, offset=1
        )
        mx.check_grads(f, [x], order=2)
    xs = mx.random.uniform(shape=(3, 2, 4, 8))
    f = lambda x: mx.fast.rope(x, 8, traditional=False, base=10000.0, scale=1.0, offset=0)  # noqa: E731
    np.testing.assert_allclose(
        _np(mx.vmap(f)(xs)), np.stack([_np(f(xs[i])) for i in range(3)]), rtol=1e-6
    )


# -- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_kv", [4, 2, 1])
@pytest.mark.parametrize("mask", [None, "causal", "bool", "additive"])
def test_sdpa_matches_reference(n_kv, mask):
    B, n_q, L, S, D = 2, 4, 5, 7, 8
    q = RNG.standard_normal((B, n_q, L, D))
    k = RNG.standard_normal((B, n_kv, S, D))
    v = RNG.standard_normal((B, n_kv, S, D))
    m = None
    if mask == "causal":
        m_np = np.tril(np.ones((L, S), bool), k=S - L)
        m = "causal"
    elif mask == "bool":
        m_np = RNG.uniform(size=(B, 1, L, S)) < 0.7
        m_np[..., 0] = True
        m = mx.array(m_np)
    elif mask == "additive":
        m_np = RNG.standard_normal((n_q, L, S))
        m = mx.array(m_np, mx.float64)
    else:
        m_np = None
    out = mx.fast.scaled_dot_product_attention(
        mx.array(q, mx.float64),
        mx.array(k, mx.float64),
        mx.array(v, mx.float64),
        scale=0.3,
        mask=m,
    )
    np.testing.assert_allclose(_np(out), _ref_attention(q, k, v, 0.3, m_np), rtol=1e-10, atol=1e-12)


def test_sdpa_sinks_and_dtypes():
    q = RNG.standard_normal((1, 4, 3, 8))
    k = RNG.standard_normal((1, 2, 6, 8))
    v = RNG.standard_normal((1, 2, 6, 8))
    sinks = RNG.standard_normal(4)
    f64 = lambda a: mx.array(a, mx.float64)  # noqa: E731
    out = mx.fast.scaled_dot_product_attention(f64(q), f64(k), f64(v), scale=0.5, sinks=f64(sinks))
    np.testing.assert_allclose(_np(out), _ref_attention(q, k, v, 0.5, sinks=sinks), rtol=1e-10)
    h = [mx.array(a, mx.float16) for a in (q, k, v)]
    out16 = mx.fast.scaled_dot_product_attention(*h, scale=0.5)
    assert out16.dtype == mx.float16
    np.testing.assert_allclose(_np(out16), _ref_attention(q, k, v, 0.5), atol=5e-3)


def test_sdpa_fully_masked_rows_stay_finite():
    q = mx.random.normal((1, 2, 3, 4))
    k = mx.random.normal((1, 2, 5, 4))
    out = mx.fast.scaled_dot_product_attention(q, k, k, scale=1.0, mask=mx.array(False))
    assert np.all(np.isfinite(_np(out)))


def test_sdpa_checks_its_arguments():
    q = mx.ones((1, 4, 3, 8))
    k = mx.ones((1, 2, 5, 8))
    sdpa = mx.fast.scaled_dot_product_attention
    with pytest.raises(ValueError, match="rank 4"):
        sdpa(mx.ones((4, 3, 8)), k, k, scale=1.0)
    with pytest.raises(ValueError, match="multiple"):
        sdpa(q, mx.ones((1, 3, 5, 8)), mx.ones((1, 3, 5, 8)), scale=1.0)
    with pytest.raises(ValueError, match="broadcast"):
        sdpa(q, k, k, scale=1.0, mask=mx.ones((4, 2, 5), mx.bool_))
    with pytest.raises(ValueError, match="invalid mask"):
        sdpa(q, k, k, scale=1.0, mask="upper")
    with pytest.raises(ValueError, match="sinks"):
        sdpa(q, k, k, scale=1.0, sinks=mx.ones((3,)))
    with pytest.raises(ValueError, match="sinks"):
        sdpa(
            q.astype(mx.float16),
            k.astype(mx.float16),
            k.astype(mx.float16),
            scale=1.0,
            sinks=mx.ones((4,)),
        )


def test_sdpa_gradients_first_and_second_order():
    q = mx.array(RNG.standard_normal((1, 4, 3, 4)), mx.float64)
    k = mx.array(RNG.standard_normal((1, 2, 5, 4)), mx.float64)
    v = mx.array(RNG.standard_normal((1, 2, 5, 4)), mx.float64)
    s = mx.array(RNG.standard_normal(4), mx.float64)
    mask = mx.array(RNG.standard_normal((3, 5)), mx.float64)

    def f(q, k, v, s):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.5, mask=mask, sinks=s)

    mx.check_grads(f, [q, k, v, s], order=2)
    mx.check_grads(
        lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=0.5, mask="causal"),
        [q, k, v],
        order=1,
    )


@pytest.mark.parametrize("gqa", [False, True])
def test_sdpa_matches_torch(gqa):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    q = RNG.standard_normal((2, 4, 6, 8))
    n_kv = 2 if gqa else 4
    k = RNG.standard_normal((2, n_kv, 6, 8))
    v = RNG.standard_normal((2, n_kv, 6, 8))
    t = torch.tensor
    kw = {"enable_gqa": True} if gqa else {}
    try:
        ref = F.scaled_dot_product_attention(t(q), t(k), t(v), is_causal=True, scale=0.25, **kw)
    except TypeError:
        pytest.skip("this PyTorch has no enable_gqa/scale")
    out = mx.fast.scaled_dot_product_attention(
        mx.array(q, mx.float64),
        mx.array(k, mx.float64),
        mx.array(v, mx.float64),
        scale=0.25,
        mask="causal",
    )
    np.testing.assert_allclose(_np(out), ref.numpy(), rtol=1e-10, atol=1e-12)


def test_fast_layers_route_through_fast():
    import chainrule.nn as nn

    x = mx.random.normal((2, 3, 8))
    np.testing.assert_allclose(
        _np(nn.RMSNorm(8)(x)), _np(mx.fast.rms_norm(x, mx.ones((8,)), 1e-5)), rtol=1e-6
    )
    np.testing.assert_allclose(
        _np(nn.RoPE(8)(x, offset=2)),
        _np(mx.fast.rope(x, 8, traditional=False, base=10000, scale=1.0, offset=2)),
        rtol=1e-6,
    )
    mha = nn.MultiHeadAttention(8, 2)
    y = mha(x, x, x, mask="causal")
    assert y.shape == (2, 3, 8)
    assert math.isfinite(float(y.sum()))
