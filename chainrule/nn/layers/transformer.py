"""Multi-head attention and the Transformer encoder/decoder of MLX (batch first)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.core.array import array
from chainrule.core.backend import on_default
from chainrule.core.extend import from_value

from ... import core as mx
from ...core import dtypes as _dt
from ..module import Module
from ..utils import checkpoint as _checkpoint
from .activations import relu
from .dropout import Dropout
from .linear import Linear
from .normalization import LayerNorm

__all__ = [
    "MultiHeadAttention",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "scaled_dot_product_attention",
]


def scaled_dot_product_attention(
    queries: array, keys: array, values: array, scale: float, mask: Any = None
) -> array:
    """``softmax(scale * q @ k.T + mask) @ v`` over ``(B, heads, L, D)`` arrays.

    Args:
        queries: ``(..., L, D)``.
        keys: ``(..., S, D)``.
        values: ``(..., S, D_v)``.
        scale: multiplies the scores (usually ``1 / sqrt(D)``).
        mask: ``None``; ``"causal"``; a boolean array (``True`` = may attend) or an additive
            array, broadcastable to ``(..., L, S)``.

    Returns:
        ``(..., L, D_v)``.
    """
    if queries.ndim == keys.ndim == values.ndim == 4:
        return mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)
    scores = (queries * scale) @ mx.swapaxes(keys, -1, -2)
    if mask is not None:
        if isinstance(mask, str):
            if mask != "causal":
                raise ValueError(f"attention: mask must be 'causal' or an array, got {mask!r}")
            L, S = scores.shape[-2], scores.shape[-1]
            keep = np.tril(np.ones((L, S), dtype=bool), k=S - L)
            mask = from_value(keep)
        elif type(mask) is not array:
            mask = mx.array(mask)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, float("-inf"))
        else:
            scores = scores + mask.astype(scores.dtype)
    return mx.softmax(scores, axis=-1) @ values


class MultiHeadAttention(Module):
    """Scaled dot-product attention with several heads and linear projections (MLX).

    Inputs are ``(B, L, dims)`` queries and ``(B, S, ...)`` keys and values; projections have no
    bias unless ``bias=True``.

    Args:
        dims: the model dimension (queries, keys and values are projected to it).
        num_heads: the number of heads (must divide ``dims``).
        query_input_dims: input size of the queries (default ``dims``).
        key_input_dims: input size of the keys (default ``dims``).
        value_input_dims: input size of the values (default ``key_input_dims``).
        value_dims: size of the projected values (default ``dims``).
        value_output_dims: output size (default ``dims``).
        bias: use biases in the projections.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        query_input_dims: int | None = None,
        key_input_dims: int | None = None,
        value_input_dims: int | None = None,
        value_dims: int | None = None,
        value_output_dims: int | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(
                f"MultiHeadAttention: dims ({dims}) must be divisible by num_heads ({num_heads})"
            )
        query_input_dims = query_input_dims or dims
        key_input_dims = key_input_dims or dims
        value_input_dims = value_input_dims or key_input_dims
        value_dims = value_dims or dims
        value_output_dims = value_output_dims or dims
        self.num_heads = num_heads
        self.query_proj = Linear(query_input_dims, dims, bias=bias)
        self.key_proj = Linear(key_input_dims, dims, bias=bias)
        self.value_proj = Linear(value_input_dims, value_dims, bias=bias)
        self.out_proj = Linear(value_dims, value_output_dims, bias=bias)

    def _extra_repr(self) -> str:
        return f"num_heads={self.num_heads}"

    def __call__(self, queries: array, keys: array, values: array, mask: Any = None) -> array:
        queries = self.query_proj(queries)
        keys = self.key_proj(keys)
        values = self.value_proj(values)
        h = self.num_heads

        def heads(t):
            return mx.transpose(mx.unflatten(t, -1, (h, -1)), (0, 2, 1, 3))

        q, k, v = heads(queries), heads(keys), heads(values)
        out = mx.fast.scaled_dot_product_attention(
            q, k, v, scale=math.sqrt(1 / q.shape[-1]), mask=mask
        )
        out = mx.flatten(mx.transpose(out, (0, 2, 1, 3)), -2, -1)
        return self.out_proj(out)

    @staticmethod
    def create_additive_causal_mask(N: int, dtype: mx.Dtype = mx.float32) -> array:
        """An ``(N, N)`` mask: 0 where a query may attend (key index <= query index), the most
        negative finite value of ``dtype`` elsewhere."""
        idx = np.arange(N)
        blocked = idx[:, None] < idx[None, :]
        np_dtype = np.dtype(_dt.to_np(dtype))
        lowest = np.asarray(mx.finfo(dtype).min, dtype=np_dtype)  # bfloat16 included
        return from_value(on_default(blocked.astype(np_dtype) * lowest))  # the default device


class TransformerEncoderLayer(Module):
    """Self-attention and an MLP, each with a residual connection and LayerNorm.

    Args:
        dims: the model dimension.
        num_heads: attention heads.
        mlp_dims: hidden size of the MLP (default ``4 * dims``).
        dropout: dropout after the attention and after the MLP's activation.
        activation: the MLP's activation (default :func:`relu`).
        norm_first: normalise before each block (pre-norm) rather than after.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: int | None = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        mlp_dims = mlp_dims or dims * 4
        self.attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def __call__(self, x: array, mask: Any = None) -> array:
        if self.norm_first:
            y = self.ln1(x)
            x = x + self.dropout1(self.attention(y, y, y, mask))
            y = self.ln2(x)
            y = self.linear2(self.dropout2(self.activation(self.linear1(y))))
            return x + y
        x = self.ln1(x + self.dropout1(self.attention(x, x, x, mask)))
        y = self.linear2(self.dropout2(self.activation(self.linear1(x))))
        return self.ln2(x + y)


class TransformerEncoder(Module):
    """A stack of :class:`TransformerEncoderLayer` followed by a LayerNorm.

    Args:
        num_layers: the number of layers.
        dims: the model dimension.
        num_heads: attention heads.
        mlp_dims: hidden size of the MLPs.
        dropout: dropout probability.
        activation: the MLPs' activation.
        norm_first: pre-norm layers.
        checkpoint: accepted for MLX code (gradients are exact; no memory is saved).
    """

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: int | None = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.layers = [
            TransformerEncoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(self, x: array, mask: Any = None) -> array:
        for layer in self["layers"]:
            layer = _checkpoint(layer) if self.checkpoint else layer
            x = layer(x, mask)
        return self.ln(x)


class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention over ``memory`` and an MLP, each with a residual
    connection and LayerNorm.

    Args:
        dims: the model dimension.
        num_heads: attention heads.
        mlp_dims: hidden size of the MLP (default ``4 * dims``).
        dropout: dropout probability.
        activation: the MLP's activation (default :func:`relu`).
        norm_first: pre-norm (``True``) or post-norm.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: int | None = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        mlp_dims = mlp_dims or dims * 4
        self.self_attention = MultiHeadAttention(dims, num_heads)
        self.cross_attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.ln3 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def __call__(self, x: array, memory: array, x_mask: Any = None, memory_mask: Any = None):
        if self.norm_first:
            y = self.ln1(x)
            x = x + self.dropout1(self.self_attention(y, y, y, x_mask))
            y = self.ln2(x)
            x = x + self.dropout2(self.cross_attention(y, memory, memory, memory_mask))
            y = self.ln3(x)
            y = self.linear2(self.dropout3(self.activation(self.linear1(y))))
            return x + y
        x = self.ln1(x + self.dropout1(self.self_attention(x, x, x, x_mask)))
        x = self.ln2(x + self.dropout2(self.cross_attention(x, memory, memory, memory_mask)))
        y = self.linear2(self.dropout3(self.activation(self.linear1(x))))
        return self.ln3(x + y)


class TransformerDecoder(Module):
    """A stack of :class:`TransformerDecoderLayer` followed by a LayerNorm.

    Args:
        num_layers: the number of layers.
        dims: the model dimension.
        num_heads: attention heads.
        mlp_dims: hidden size of the MLPs.
        dropout: dropout probability.
        activation: the MLPs' activation.
        norm_first: pre-norm layers.
        checkpoint: accepted for MLX code (gradients are exact; no memory is saved).
    """

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: int | None = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.layers = [
            TransformerDecoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(self, x: array, memory: array, x_mask: Any = None, memory_mask: Any = None):
        for layer in self["layers"]:
            layer = _checkpoint(layer) if self.checkpoint else layer
            x = layer(x, memory, x_mask, memory_mask)
        return self.ln(x)


class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need" (MLX's layout).

    Args:
        dims: the model dimension.
        num_heads: attention heads.
        num_encoder_layers: encoder depth.
        num_decoder_layers: decoder depth.
        mlp_dims: hidden size of the MLPs (default ``4 * dims``).
        dropout: dropout probability.
        activation: the MLPs' activation.
        custom_encoder: a module replacing the encoder.
        custom_decoder: a module replacing the decoder.
        norm_first: pre-norm layers.
        checkpoint: accepted for MLX code.
    """

    def __init__(
        self,
        dims: int = 512,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        mlp_dims: int | None = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        custom_encoder: Any = None,
        custom_decoder: Any = None,
        norm_first: bool = True,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        # `is None`, not `or`: a module without parameters (an empty dict) is still a module
        self.encoder = (
            custom_encoder
            if custom_encoder is not None
            else TransformerEncoder(
                num_encoder_layers,
                dims,
                num_heads,
                mlp_dims,
                dropout,
                activation,
                norm_first,
                checkpoint,
            )
        )
        self.decoder = (
            custom_decoder
            if custom_decoder is not None
            else TransformerDecoder(
                num_decoder_layers,
                dims,
                num_heads,
                mlp_dims,
                dropout,
                activation,
                norm_first,
                checkpoint,
            )
        )

    def __call__(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None) -> array:
        memory = self.encoder(src, src_mask)
        return self.decoder(tgt, memory, tgt_mask, memory_mask)
