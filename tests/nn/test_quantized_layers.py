"""Quantized layers: nn.quantize, to_quantized, frozen quantized weights, training the rest."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.utils import tree_flatten


def _np(a):
    return np.asarray(a.numpy())


def test_quantize_swaps_linear_and_embedding_in_place():
    m = nn.Sequential(nn.Embedding(5, 64), nn.ReLU(), nn.Linear(64, 64))
    nn.quantize(m, group_size=32, bits=4)
    assert isinstance(m.layers[0], nn.QuantizedEmbedding)
    assert isinstance(m.layers[1], nn.ReLU)
    assert isinstance(m.layers[2], nn.QuantizedLinear)
    assert m.layers[2].weight.dtype == mx.uint32 and m.layers[2].weight.shape == (64, 8)

    m = nn.Sequential(nn.Embedding(5, 64), nn.ReLU(), nn.Linear(64, 64))
    nn.quantize(m, class_predicate=lambda _, mod: isinstance(mod, nn.Linear))
    assert isinstance(m.layers[0], nn.Embedding)
    assert isinstance(m.layers[2], nn.QuantizedLinear)

    # a dict from the predicate is passed to to_quantized
    m = nn.Sequential(nn.Linear(64, 8))
    nn.quantize(m, class_predicate=lambda _, mod: {"group_size": 32, "bits": 8})
    assert (m.layers[0].group_size, m.layers[0].bits) == (32, 8)


def test_quantize_input_needs_an_fp_mode_and_a_linear_layer():
    m = nn.Sequential(nn.Linear(64, 8, bias=False))
    nn.quantize(m, mode="mxfp8", quantize_input=True)
    assert isinstance(m.layers[0], nn.QQLinear)
    with pytest.raises(ValueError):
        nn.quantize(nn.Sequential(nn.Embedding(4, 64)), mode="mxfp8", quantize_input=True)
    with pytest.raises(ValueError):
        nn.Linear(64, 8).to_quantized(quantize_input=True)  # affine


@pytest.mark.parametrize("mode", ["affine", "mxfp4", "nvfp4", "mxfp8"])
def test_quantized_linear_matches_the_dequantized_layer(mode):
    lin = nn.Linear(64, 16)
    q = lin.to_quantized(group_size=32 if mode == "affine" else None, mode=mode)
    assert isinstance(q, nn.QuantizedLinear)
    x = mx.random.normal((3, 64))
    w_hat = mx.dequantize(
        q.weight, q.scales, q.get("biases"), q.group_size, q.bits, mode=mode, dtype=mx.float32
    )
    np.testing.assert_allclose(_np(q(x)), _np(x @ w_hat.T + lin.bias), rtol=1e-5, atol=1e-5)
    # close to the float layer it came from
    assert np.abs(_np(q(x)) - _np(lin(x))).max() < 0.5


def test_quantized_weights_are_frozen_and_the_bias_trains():
    lin = nn.Linear(64, 4)
    q = nn.QuantizedLinear.from_linear(lin, group_size=32, bits=4)
    names = [k for k, _ in tree_flatten(q.trainable_parameters())]
    assert names == ["bias"]
    assert {k for k, _ in tree_flatten(q.parameters())} == {"weight", "scales", "biases", "bias"}
    q.unfreeze(keys=["scales"])
    assert "scales" in [k for k, _ in tree_flatten(q.trainable_parameters())]
    q.freeze(keys=["scales"])

    x = mx.random.normal((8, 64))
    y = mx.random.normal((8, 4))
    loss_fn = lambda model: ((model(x) - y) ** 2).mean()  # noqa: E731
    loss, grads = nn.value_and_grad(q, loss_fn)(q)
    assert [k for k, _ in tree_flatten(grads)] == ["bias"]
    # PyTorch style: only the bias gets a .grad
    out = loss_fn(q)
    out.backward()
    assert q.bias.grad is not None and q.scales.grad is None
    assert float(loss) == pytest.approx(float(out), rel=1e-6)


def test_quantized_embedding_lookup_and_as_linear():
    emb = nn.Embedding(32, 64)
    qe = nn.QuantizedEmbedding.from_embedding(emb, group_size=32, bits=8)
    ids = mx.array([2, 6, 9, 3, 0, 3])
    full = mx.dequantize(qe.weight, qe.scales, qe.biases, 32, 8)
    np.testing.assert_array_equal(_np(qe(ids)), _np(full)[_np(ids)])
    assert np.abs(_np(qe(ids)) - _np(emb(ids))).max() <= float(mx.abs(qe.scales).max())
    x = mx.random.normal((2, 64))
    np.testing.assert_allclose(_np(qe.as_linear(x)), _np(x @ full.T), rtol=1e-5, atol=1e-5)
    assert tree_flatten(qe.trainable_parameters()) == []


def test_qqlinear_trains_its_weight():
    lin = nn.Linear(32, 4, bias=False)
    qq = lin.to_quantized(mode="nvfp4", quantize_input=True)
    x = mx.random.normal((5, 32))
    loss, grads = nn.value_and_grad(qq, lambda m: m(x).sum())(qq)
    assert grads["weight"].shape == (4, 32)
    with pytest.raises(NotImplementedError):
        nn.QQLinear.from_linear(nn.Linear(32, 4))


def test_quantized_model_saves_and_loads(tmp_path):
    m = nn.Sequential(nn.Linear(64, 8))
    nn.quantize(m, group_size=64, bits=4)
    path = str(tmp_path / "q.safetensors")
    m.save_weights(path)
    m2 = nn.Sequential(nn.Linear(64, 8))
    nn.quantize(m2, group_size=64, bits=4)
    m2.load_weights(path)
    x = mx.random.normal((2, 64))
    np.testing.assert_array_equal(_np(m(x)), _np(m2(x)))
