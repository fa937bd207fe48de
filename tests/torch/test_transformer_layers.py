"""chainrule.torch.nn's MultiheadAttention and Transformer layers against real PyTorch:
state_dict names and shapes, initialisation, outputs, attention weights and gradients over
the option grid (float32 to 1e-5, float64 to 1e-10), masks, errors, repr, and a small
Transformer-encoder language model trained side by side."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as ct
import chainrule.torch.nn as nn

TOL = {"float32": (2e-5, 2e-5), "float64": (1e-10, 1e-10)}


def _ref():
    return pytest.importorskip("torch")


def _to_ours(sd):
    return {k: ct.tensor(v.detach().numpy()) for k, v in sd.items()}


def _close(ours, ref, dtype, what=""):
    rtol, atol = TOL[dtype]
    ref = ref.detach().numpy()
    got = ours.numpy()
    assert got.shape == ref.shape, what
    assert got.dtype == ref.dtype, what
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def _build(torch_ref, name, dtype, *args, per_lib=None, **kw):
    """The same module in both frameworks, chainrule's loaded from PyTorch's state_dict
    (``per_lib(lib)`` gives keyword arguments made with each library, such as modules)."""
    extra = per_lib or (lambda lib: {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(torch_ref.nn, name)(
            *args, dtype=getattr(torch_ref, dtype), **kw, **extra(torch_ref)
        )
        ours = getattr(nn, name)(*args, dtype=getattr(ct, dtype), **kw, **extra(ct))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(_to_ours(ref.state_dict()))
    return ours, ref


def _grads_match(ours, ref, dtype, inputs):
    for xo, xt in inputs:
        _close(xo.grad, xt.grad, dtype, "input grad")
    grads_o = dict(ours.named_parameters())
    for name, p in ref.named_parameters():
        if p.grad is not None:
            _close(grads_o[name].grad, p.grad, dtype, name)


def _masks(rng, form, L, S, N, heads):
    """Masks as NumPy arrays (key padding ``(N, S)``, attention ``(L, S)`` or per head)."""
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True  # the first sequence is padded
    if form == "none":
        return {}
    if form == "kpm":
        return {"key_padding_mask": kpm}
    if form == "bool2d":
        return {"attn_mask": rng.random((L, S)) < 0.3}
    if form == "float3d":
        return {"attn_mask": rng.normal(size=(N * heads, L, S))}
    return {"key_padding_mask": kpm, "attn_mask": rng.random((L, S)) < 0.3}


def _both(torch_ref, arrays, dtype):
    t = {k: torch_ref.tensor(v if v.dtype == bool else v.astype(dtype)) for k, v in arrays.items()}
    o = {k: ct.tensor(v if v.dtype == bool else v.astype(dtype)) for k, v in arrays.items()}
    return t, o


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multihead_attention_matches_pytorch_over_the_option_grid(dtype):
    torch_ref = _ref()
    rng = np.random.default_rng(0)
    forms = itertools.cycle(["none", "kpm", "bool2d", "float3d", "both"])
    flags = itertools.cycle(itertools.product((True, False), (True, False), (False, True)))
    E, heads, L, S, N = 4, 2, 3, 5, 2
    for batch_first, dims, bias_kv, zero_attn, bias in itertools.product(
        (False, True), ("same", "kv"), (False, True), (False, True), (True, False)
    ):
        kd, vd = (E, E) if dims == "same" else (3, 5)
        ours, ref = _build(
            torch_ref, "MultiheadAttention", dtype, E, heads, bias=bias, add_bias_kv=bias_kv,
            add_zero_attn=zero_attn, kdim=kd, vdim=vd, batch_first=batch_first,
        )  # fmt: skip
        need_weights, average, unbatched = next(flags)
        form = next(forms)
        if unbatched and form == "float3d":
            form = "bool2d"
        q = rng.normal(size=(L, N, E))
        k, v = rng.normal(size=(S, N, kd)), rng.normal(size=(S, N, vd))
        if unbatched:
            q, k, v = q[:, 0], k[:, 0], v[:, 0]
        elif batch_first:
            q, k, v = (np.swapaxes(a, 0, 1) for a in (q, k, v))
        masks = _masks(rng, form, L, S, N, heads)
        if unbatched and "key_padding_mask" in masks:
            masks["key_padding_mask"] = masks["key_padding_mask"][0]
        mt, mo = _both(torch_ref, masks, dtype)
        (qt, kt, vt), (qo, ko, vo) = (
            [lib.tensor(a.astype(dtype), requires_grad=True) for a in (q, k, v)]
            for lib in (torch_ref, ct)
        )
        kw = {"need_weights": need_weights, "average_attn_weights": average}
        out_t, w_t = ref(qt, kt, vt, **kw, **mt)
        out_o, w_o = ours(qo, ko, vo, **kw, **mo)
        assert type(out_o) is ct.Tensor
        _close(out_o, out_t, dtype, f"output {form}")
        if need_weights:
            _close(w_o, w_t, dtype, "weights")
            (out_t.sin().sum() + (w_t * w_t).sum()).backward()
            (out_o.sin().sum() + (w_o * w_o).sum()).backward()
        else:
            assert w_o is None and w_t is None
            out_t.sin().sum().backward()
            out_o.sin().sum().backward()
        _grads_match(ours, ref, dtype, [(qo, qt), (ko, kt), (vo, vt)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_encoder_and_decoder_layers_match_pytorch(dtype):
    torch_ref = _ref()
    rng = np.random.default_rng(1)
    forms = itertools.cycle(["none", "kpm", "bool2d", "both", "float3d"])
    activations = itertools.cycle(["relu", "gelu", "module"])
    E, heads, S, T, N = 4, 2, 5, 3, 2
    for kind, norm_first, batch_first, bias in itertools.product(
        ("TransformerEncoderLayer", "TransformerDecoderLayer"), (False, True), (False, True),
        (True, False),
    ):  # fmt: skip
        act = next(activations)

        def activation(lib, act=act):
            return {"activation": lib.nn.GELU("tanh") if act == "module" else act}

        ours, ref = _build(
            torch_ref, kind, dtype, E, heads, 6, 0.0, per_lib=activation,
            batch_first=batch_first, norm_first=norm_first, bias=bias,
        )  # fmt: skip
        form = next(forms)
        src = rng.normal(size=(S, N, E))
        tgt = rng.normal(size=(T, N, E))
        if batch_first:
            src, tgt = np.swapaxes(src, 0, 1), np.swapaxes(tgt, 0, 1)
        (st, tt), (so, to) = (
            [lib.tensor(a.astype(dtype), requires_grad=True) for a in (src, tgt)]
            for lib in (torch_ref, ct)
        )
        if kind == "TransformerEncoderLayer":
            m = _masks(rng, form, S, S, N, heads)
            masks = {
                "src_mask": m.get("attn_mask"),
                "src_key_padding_mask": m.get("key_padding_mask"),
            }
            masks = {k: v for k, v in masks.items() if v is not None}
            mt, mo = _both(torch_ref, masks, dtype)
            out_t, out_o = ref(st, **mt), ours(so, **mo)
            pairs = [(so, st)]
        else:
            m = _masks(rng, form, T, S, N, heads)
            causal = np.triu(np.full((T, T), -np.inf), 1)
            masks = {"tgt_mask": causal, "memory_mask": m.get("attn_mask")}
            masks["memory_key_padding_mask"] = m.get("key_padding_mask")
            masks = {k: v for k, v in masks.items() if v is not None}
            mt, mo = _both(torch_ref, masks, dtype)
            out_t, out_o = ref(tt, st, **mt), ours(to, so, **mo)
            pairs = [(so, st), (to, tt)]
        _close(out_o, out_t, dtype, f"{kind} {form}")
        out_t.sin().sum().backward()
        out_o.sin().sum().backward()
        _grads_match(ours, ref, dtype, pairs)


@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_and_stacks_match_pytorch(batch_first):
    torch_ref = _ref()
    dtype = "float64"
    rng = np.random.default_rng(2)
    ours, ref = _build(
        torch_ref, "Transformer", dtype, 4, 2, 2, 2, 6, 0.0, batch_first=batch_first,
        norm_first=batch_first,
    )  # fmt: skip
    assert repr(ours) == repr(ref)
    src, tgt = rng.normal(size=(5, 3, 4)), rng.normal(size=(4, 3, 4))
    if batch_first:
        src, tgt = np.swapaxes(src, 0, 1), np.swapaxes(tgt, 0, 1)
    kpm = np.zeros((3, 5), bool)
    kpm[1, 3:] = True
    (st, tt, kt), (so, to, ko) = (
        (lib.tensor(src, requires_grad=True), lib.tensor(tgt, requires_grad=True), lib.tensor(kpm))
        for lib in (torch_ref, ct)
    )
    mask_t = torch_ref.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch_ref.float64)
    mask_o = nn.Transformer.generate_square_subsequent_mask(4, dtype=ct.float64)
    out_t = ref(st, tt, tgt_mask=mask_t, src_key_padding_mask=kt, memory_key_padding_mask=kt)
    out_o = ours(so, to, tgt_mask=mask_o, src_key_padding_mask=ko, memory_key_padding_mask=ko)
    _close(out_o, out_t, dtype)
    out_t.sin().sum().backward()
    out_o.sin().sum().backward()
    _grads_match(ours, ref, dtype, [(so, st), (to, tt)])


def test_square_subsequent_mask_and_causal_hints():
    torch_ref = _ref()
    for sz in (1, 4):
        got = nn.Transformer.generate_square_subsequent_mask(sz)
        assert type(got) is ct.Tensor and got.dtype == ct.float32
        np.testing.assert_array_equal(
            got.numpy(), torch_ref.nn.Transformer.generate_square_subsequent_mask(sz).numpy()
        )
    # is_causal=True with the causal mask (the encoder detects it itself) gives the same numbers
    ours, ref = _build(torch_ref, "MultiheadAttention", "float64", 4, 2)
    x = np.random.default_rng(3).normal(size=(4, 2, 4))
    mask = np.triu(np.full((4, 4), -np.inf), 1)
    out_t = ref(*[torch_ref.tensor(x)] * 3, attn_mask=torch_ref.tensor(mask), is_causal=True,
                need_weights=False)[0]  # fmt: skip
    out_o = ours(*[ct.tensor(x)] * 3, attn_mask=ct.tensor(mask), is_causal=True,
                 need_weights=False)[0]  # fmt: skip
    _close(out_o, out_t, "float64")
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        ours(*[ct.tensor(x)] * 3, is_causal=True)


def test_fully_masked_rows_follow_pytorch():
    """Keys all padded: zeros from the fused kernel (need_weights=False) with finite
    gradients, NaN with the explicit weights, as in PyTorch."""
    torch_ref = _ref()
    ours, ref = _build(torch_ref, "MultiheadAttention", "float64", 4, 2)
    x = np.random.default_rng(4).normal(size=(3, 2, 4))
    kpm = np.array([[True] * 3, [False, True, False]])
    for need_weights in (False, True):
        xt, xo = torch_ref.tensor(x, requires_grad=True), ct.tensor(x, requires_grad=True)
        out_t = ref(xt, xt, xt, key_padding_mask=torch_ref.tensor(kpm), need_weights=need_weights)[
            0
        ]
        out_o = ours(xo, xo, xo, key_padding_mask=ct.tensor(kpm), need_weights=need_weights)[0]
        np.testing.assert_allclose(out_o.numpy(), out_t.detach().numpy(), rtol=1e-10, atol=1e-10)
        assert np.isnan(out_o.numpy()).any() == need_weights
        if not need_weights:
            out_t.sum().backward()
            out_o.sum().backward()
            _grads_match(ours, ref, "float64", [(xo, xt)])


def test_encoder_in_evaluation_zeroes_padding_like_pytorchs_nested_path():
    torch_ref = _ref()
    layer_t = torch_ref.nn.TransformerEncoderLayer(4, 2, 6, batch_first=True)
    layer_o = nn.TransformerEncoderLayer(4, 2, 6, batch_first=True)
    ref = torch_ref.nn.TransformerEncoder(layer_t, 2, norm=torch_ref.nn.LayerNorm(4))
    ours = nn.TransformerEncoder(layer_o, 2, norm=nn.LayerNorm(4))
    ours.load_state_dict(_to_ours(ref.state_dict()))
    ours.eval()
    ref.eval()
    x = np.random.default_rng(5).normal(size=(2, 5, 4)).astype("float32")
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    with torch_ref.no_grad(), ct.no_grad():
        out_t = ref(torch_ref.tensor(x), src_key_padding_mask=torch_ref.tensor(kpm))
        out_o = ours(ct.tensor(x), src_key_padding_mask=ct.tensor(kpm))
    _close(out_o, out_t, "float32", "no_grad evaluation")
    # recording (gradients wanted): every position is computed
    out_t = ref(torch_ref.tensor(x), src_key_padding_mask=torch_ref.tensor(kpm))
    out_o = ours(ct.tensor(x), src_key_padding_mask=ct.tensor(kpm))
    _close(out_o, out_t, "float32", "evaluation with gradients")


def test_state_dict_initialisation_and_repr_are_pytorchs():
    torch_ref = _ref()
    cases = [
        ("MultiheadAttention", (8, 2), {}),
        ("MultiheadAttention", (8, 4), {"kdim": 3, "vdim": 5, "add_bias_kv": True}),
        ("MultiheadAttention", (8, 2), {"bias": False, "batch_first": True}),
        ("TransformerEncoderLayer", (8, 2, 16), {"activation": "gelu", "norm_first": True}),
        ("TransformerDecoderLayer", (8, 2, 16), {"bias": False}),
        ("Transformer", (8, 2, 1, 1, 16), {}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, args, kw in cases:
            ref, ours = getattr(torch_ref.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
            assert repr(ours) == repr(ref)
            sd_o, sd_t = ours.state_dict(), ref.state_dict()
            assert list(sd_o) == list(sd_t)
            assert [tuple(v.shape) for v in sd_o.values()] == [
                tuple(v.shape) for v in sd_t.values()
            ]
            for key, v in sd_o.items():
                got, want = v.numpy(), sd_t[key].numpy()
                if not want.any():  # zero-initialised biases
                    assert not got.any(), key
                elif key.endswith(("weight",)) and want.ndim == 2 and name != "LayerNorm":
                    bound = np.abs(want).max()  # PyTorch's range for this matrix
                    fan_out, fan_in = want.shape
                    xavier = math.sqrt(6 / (fan_in + fan_out))
                    linear = 1 / math.sqrt(fan_in)
                    assert bound <= max(xavier, linear) + 1e-6
                    assert np.abs(got).max() <= max(xavier, linear) + 1e-6, key
                    assert np.abs(got).max() > 0.5 * bound, key
            ours.load_state_dict(_to_ours(sd_t))
    attention = nn.MultiheadAttention(16, 4)
    w = attention.in_proj_weight.numpy()
    assert np.abs(w).max() <= math.sqrt(6 / (16 + 48)) and np.abs(w).max() > 0.9 * math.sqrt(6 / 64)
    assert attention.q_proj_weight is None and attention.bias_k is None


def _error_kind(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the kind is what is compared
        return type(e)
    return None


def test_bad_arguments_raise_pytorchs_error_kinds():
    torch_ref = _ref()

    def cases(lib):
        mha = lib.nn.MultiheadAttention(4, 2)
        x = lib.zeros(3, 2, 4)
        model = lib.nn.Transformer(4, 2, 1, 1, 8)
        return [
            lambda: lib.nn.MultiheadAttention(0, 2),
            lambda: lib.nn.MultiheadAttention(5, 2),
            lambda: mha(lib.zeros(2, 3, 2, 4), x, x),
            lambda: mha(x, lib.zeros(3, 4), x),
            lambda: mha(x, x, x, attn_mask=lib.zeros(2, 2)),
            lambda: mha(x, x, x, attn_mask=lib.zeros(3, 3, 3)),
            lambda: mha(x, x, x, key_padding_mask=lib.zeros(3, 3, dtype=lib.bool)),
            lambda: mha(x, x, x, key_padding_mask=lib.zeros(2, 3, dtype=lib.int64)),
            lambda: mha(x, x, x, is_causal=True),
            lambda: mha(lib.zeros(3, 2, 6), lib.zeros(3, 2, 6), lib.zeros(3, 2, 6)),
            lambda: lib.nn.TransformerEncoderLayer(4, 2, activation="tanh"),
            lambda: model(lib.zeros(3, 2, 4), lib.zeros(3, 1, 4)),
            lambda: model(lib.zeros(3, 2, 4), lib.zeros(3, 2, 5)),
        ]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kinds_t = [_error_kind(f) for f in cases(torch_ref)]
        kinds_o = [_error_kind(f) for f in cases(ct)]
    assert None not in kinds_t
    assert kinds_o == kinds_t


def test_warnings_are_pytorchs():
    torch_ref = _ref()
    for lib in (torch_ref, ct):
        with pytest.warns(UserWarning, match="batch_first was not True"):
            lib.nn.TransformerEncoder(lib.nn.TransformerEncoderLayer(4, 2, 8), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lib.nn.TransformerEncoder(lib.nn.TransformerEncoderLayer(4, 2, 8), 2,
                                      enable_nested_tensor=False)  # fmt: skip


def test_attention_uses_the_engines_fused_kernel(monkeypatch):
    """Without returned weights, attention runs mx.fast.scaled_dot_product_attention."""
    calls = []
    kernel = mx.fast.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(mx.fast, "scaled_dot_product_attention", spy)
    attention = nn.MultiheadAttention(4, 2)
    x = ct.randn(3, 2, 4)
    attention(x, x, x, need_weights=False)
    assert calls == [(2, 2, 3, 2)]
    attention(x, x, x)
    assert len(calls) == 1


def test_transformer_encoder_language_model_trains_like_pytorch():
    """A tiny causal Transformer-encoder language model, 20 SGD steps from the same initial
    state_dict on the same batches: per-step losses agree to 1e-4 (relative)."""
    torch_ref = _ref()
    vocab, width, steps, batch = 11, 8, 6, 4

    def build(lib):
        class TinyLM(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib.nn.Embedding(vocab, width)
                layer = lib.nn.TransformerEncoderLayer(width, 2, 16, dropout=0.0, batch_first=True)
                self.encoder = lib.nn.TransformerEncoder(layer, 2)
                self.head = lib.nn.Linear(width, vocab)

            def forward(self, ids):
                mask = lib.nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
                return self.head(self.encoder(self.embed(ids), mask=mask))

        return TinyLM()

    torch_ref.manual_seed(0)
    ref, ours = build(torch_ref), build(ct)
    ours.load_state_dict(_to_ours(ref.state_dict()))
    rng = np.random.default_rng(7)
    start = rng.integers(0, vocab, size=(20, batch, 1))
    corpus = (start + 3 * np.arange(steps + 1)) % vocab  # each word follows from the one before
    losses = {}
    for lib, model in ((torch_ref, ref), (ct, ours)):
        opt = lib.optim.SGD(model.parameters(), lr=0.3)
        loss_fn = lib.nn.CrossEntropyLoss()
        seen = []
        for chunk in corpus:
            logits = model(lib.tensor(chunk[:, :-1]))
            loss = loss_fn(logits.reshape(-1, vocab), lib.tensor(chunk[:, 1:]).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(loss.item())
        losses[lib] = seen
    np.testing.assert_allclose(losses[ct], losses[torch_ref], rtol=1e-4)
    assert losses[ct][-1] < losses[ct][0]


def test_attention_dropout_acts_in_training_only():
    torch_ref = _ref()
    ours, ref = _build(torch_ref, "MultiheadAttention", "float32", 4, 2, dropout=0.5)
    x = ct.tensor(np.random.default_rng(6).normal(size=(5, 2, 4)).astype("float32"))
    for need_weights in (True, False):
        a = ours(x, x, x, need_weights=need_weights)[0].numpy()
        b = ours(x, x, x, need_weights=need_weights)[0].numpy()
        assert not np.allclose(a, b)  # weights dropped at random
    ours.eval()
    ref.eval()
    xt = torch_ref.tensor(x.numpy())
    _close(ours(x, x, x)[0], ref(xt, xt, xt)[0], "float32", "evaluation")


def test_layers_work_without_pytorch_installed():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    x = ct.randn(2, 3, 4, requires_grad=True)
    out = layer(x, src_mask=nn.Transformer.generate_square_subsequent_mask(3))
    assert type(out) is ct.Tensor and out.shape == (2, 3, 4)
    out.sum().backward()
    assert x.grad.shape == (2, 3, 4) and layer.self_attn.in_proj_weight.grad is not None
    # causality: the first position does not see the later ones
    y = x.detach().numpy().copy()
    y[:, 1:] += 1.0
    out2 = layer(ct.tensor(y), src_mask=nn.Transformer.generate_square_subsequent_mask(3))
    np.testing.assert_allclose(out2.numpy()[:, 0], out.detach().numpy()[:, 0], rtol=1e-6)
    assert not np.allclose(out2.numpy()[:, 1:], out.detach().numpy()[:, 1:])
