"""PyTorch's attention and Transformer layers: ``MultiheadAttention``,
``TransformerEncoderLayer``/``DecoderLayer``, ``TransformerEncoder``/``Decoder`` and
``Transformer``, with PyTorch's arguments, layouts (sequence first unless ``batch_first``),
masks (boolean ``True`` = may *not* attend, or additive floats), parameter names
(``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``...; ``q_proj_weight``... when
``kdim``/``vdim`` differ) and initialisation, so ``state_dict``s exchange with PyTorch.

Attention without returned weights runs the engine's kernel, the one behind MLX's
``mx.fast.scaled_dot_product_attention``; rows whose keys are all masked give zeros there, as
PyTorch's kernel does. With ``need_weights=True`` the weights are computed explicitly, as
PyTorch does (such rows are then NaN, as in PyTorch).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import STATE, from_value

from .._tensor_class import as_tensor_class
from . import functional as F
from . import init as _init
from ._activations import GELU, ReLU
from ._layers import Dropout, LayerNorm, Linear
from ._module import Module, ModuleList
from .functional_misc import dropout as _dropout

__all__ = [
    "MultiheadAttention",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
]


class NonDynamicallyQuantizableLinear(Linear):
    """``MultiheadAttention.out_proj``: a :class:`Linear` under PyTorch's class name (which
    ``print(model)`` shows)."""


def _float_dtype(x: array) -> bool:
    return mx.issubdtype(x.dtype, mx.floating)


def _canonical_mask(
    mask: Any, name: str, other: Any, other_name: str, target: Any, check_other: bool = True
) -> Any:
    """PyTorch's ``_canonical_mask``: a boolean mask becomes an additive one (``-inf`` where
    ``True``); a float mask is kept."""
    if mask is None:
        return None
    if not isinstance(mask, array):
        mask = mx.array(mask)
    is_bool = mask.dtype == mx.bool_
    if not is_bool and not _float_dtype(mask):
        raise AssertionError(
            f"only bool and floating types of {name} are supported, got {name} of dtype "
            f"{mask.dtype}"
        )
    if check_other and other is not None and mask.dtype != other:
        warnings.warn(
            f"Support for mismatched {name} and {other_name} is deprecated. Use same type for "
            "both instead.",
            stacklevel=4,
        )
    if is_bool:  # (on the mask's device, as PyTorch's zeros_like(mask).masked_fill_)
        return mx.where(mask, -math.inf, 0.0).astype(target)
    return mask


def _dtype_of(mask: Any) -> Any:
    return None if mask is None else mask.dtype


def _pad_last(mask: array) -> array:
    return mx.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, 1)])


def _linear(x: array, w: array, b: array | None) -> array:
    wt = mx.swapaxes(w, 0, 1)
    return x @ wt if b is None else mx.addmm(b, x, wt)


def _causal_mask(L: int, S: int, like: array) -> array:
    """The additive causal mask ``(L, S)`` (``-inf`` above the diagonal), of ``like``'s dtype,
    made on ``like``'s device."""
    xpm = backend.array_module(like._data)
    return from_value(xpm.triu(xpm.full((L, S), -np.inf, like._data.dtype), 1))


def _attention(q: array, k: array, v: array, mask: Any, p: float, causal: bool) -> array:
    """Attention over ``(N, H, L, D)`` arrays with an additive ``mask`` (or ``None``) without
    returning the weights: the engine's fused kernel (``mx.fast``), zeros for rows whose
    every key is masked (PyTorch's safe softmax), or the explicit form with dropout."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    if causal:
        L, S = q.shape[-2], k.shape[-2]
        mask = _causal_mask(L, S, q)
    dead = None
    if mask is not None:
        dead = mx.all(mx.isneginf(mask), axis=-1, keepdims=True)  # on the mask's device
        if bool(mx.any(dead)):
            mask = mx.where(dead, mx.array(0.0, dtype=mask.dtype), mask)
        else:
            dead = None
    if p > 0.0:
        scores = (q * scale) @ mx.swapaxes(k, -1, -2)
        if mask is not None:
            scores = scores + mask
        out = _dropout(mx.softmax(scores, axis=-1), p, True) @ v
    else:
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
    if dead is not None:
        out = mx.where(dead, mx.array(0.0, dtype=out.dtype), out)
    return out


class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's arguments, layouts and parameters.

    Args:
        embed_dim: the model's width ``E`` (queries and output).
        num_heads: heads; ``E`` must be a multiple of it.
        dropout: dropout on the attention weights, in training.
        bias: learn ``in_proj_bias`` and ``out_proj.bias``.
        add_bias_kv: learn ``bias_k``/``bias_v``, appended to the keys and values.
        add_zero_attn: append a zero key and value.
        kdim: the keys' width (``E`` by default).
        vdim: the values' width (``E`` by default).
        batch_first: ``(N, L, E)`` inputs and outputs instead of ``(L, N, E)``.
        device: accepted for PyTorch code.
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                "MultiheadAttention: embed_dim and num_heads must be greater than 0, got "
                f"embed_dim={embed_dim} and num_heads={num_heads} instead"
            )
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError(
                f"MultiheadAttention: embed_dim must be divisible by num_heads, got embed_dim="
                f"{embed_dim} and num_heads={num_heads}"
            )
        dt = mx.float32 if dtype is None else dtype
        E = embed_dim
        # PyTorch's draws in its order: out_proj's own initialisation, then _reset_parameters
        # (the projections, then bias_k and bias_v); the registration order stays PyTorch's.
        out_proj = NonDynamicallyQuantizableLinear(E, E, bias=bias, dtype=dt)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _init.xavier_uniform_(mx.zeros((3 * E, E), dtype=dt))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                object.__setattr__(self, n, None)
        else:
            self.q_proj_weight = _init.xavier_uniform_(mx.zeros((E, E), dtype=dt))
            self.k_proj_weight = _init.xavier_uniform_(mx.zeros((E, self.kdim), dtype=dt))
            self.v_proj_weight = _init.xavier_uniform_(mx.zeros((E, self.vdim), dtype=dt))
            object.__setattr__(self, "in_proj_weight", None)
        if bias:
            self.in_proj_bias = mx.zeros((3 * E,), dtype=dt)
        else:
            object.__setattr__(self, "in_proj_bias", None)
        if add_bias_kv:
            self.bias_k = _init.xavier_normal_(mx.zeros((1, 1, E), dtype=dt))
            self.bias_v = _init.xavier_normal_(mx.zeros((1, 1, E), dtype=dt))
        else:
            object.__setattr__(self, "bias_k", None)
            object.__setattr__(self, "bias_v", None)
        self.out_proj = out_proj
        if bias:
            self.out_proj.bias = mx.zeros((E,), dtype=dt)
        self.add_zero_attn = add_zero_attn

    def _shape_check(self, query, key, value, kpm, attn_mask) -> bool:
        if query.ndim == 3:
            if key.ndim != 3 or value.ndim != 3:
                raise AssertionError(
                    "For batched (3-D) `query`, expected `key` and `value` to be 3-D but found "
                    f"{key.ndim}-D and {value.ndim}-D tensors respectively"
                )
            if kpm is not None and kpm.ndim != 2:
                raise AssertionError(
                    "For batched (3-D) `query`, expected `key_padding_mask` to be `None` or 2-D "
                    f"but found {kpm.ndim}-D tensor instead"
                )
            if attn_mask is not None and attn_mask.ndim not in (2, 3):
                raise AssertionError(
                    "For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or 3-D "
                    f"but found {attn_mask.ndim}-D tensor instead"
                )
            return True
        if query.ndim == 2:
            if key.ndim != 2 or value.ndim != 2:
                raise AssertionError(
                    "For unbatched (2-D) `query`, expected `key` and `value` to be 2-D but "
                    f"found {key.ndim}-D and {value.ndim}-D tensors respectively"
                )
            if kpm is not None and kpm.ndim != 1:
                raise AssertionError(
                    "For unbatched (2-D) `query`, expected `key_padding_mask` to be `None` or "
                    f"1-D but found {kpm.ndim}-D tensor instead"
                )
            if attn_mask is not None:
                if attn_mask.ndim not in (2, 3):
                    raise AssertionError(
                        "For unbatched (2-D) `query`, expected `attn_mask` to be `None`, 2-D or "
                        f"3-D but found {attn_mask.ndim}-D tensor instead"
                    )
                want = (self.num_heads, query.shape[0], key.shape[0])
                if attn_mask.ndim == 3 and tuple(attn_mask.shape) != want:
                    raise AssertionError(
                        f"Expected `attn_mask` shape to be {want} but got {tuple(attn_mask.shape)}"
                    )
            return False
        raise AssertionError(
            "query should be unbatched 2D or batched 3D tensor but received "
            f"{query.ndim}-D query tensor (shape {tuple(query.shape)})"
        )

    def forward(
        self,
        query: array,
        key: array,
        value: array,
        key_padding_mask: array | None = None,
        need_weights: bool = True,
        attn_mask: array | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[array, array | None]:
        """Attend from ``query`` to ``key``/``value``.

        Args:
            query: ``(L, N, E)`` (``(N, L, E)`` with ``batch_first``) or ``(L, E)``.
            key: ``(S, N, kdim)`` or ``(S, kdim)``.
            value: ``(S, N, vdim)`` or ``(S, vdim)``.
            key_padding_mask: ``(N, S)`` (``(S,)``): ``True`` (or ``-inf``) marks padding.
            need_weights: also return the attention weights.
            attn_mask: ``(L, S)`` or ``(N * num_heads, L, S)``: ``True`` may not attend, or
                added to the scores.
            average_attn_weights: average the returned weights over the heads.
            is_causal: a hint that ``attn_mask`` is the causal mask (which is then required).

        Returns:
            ``(output, weights)``: ``output`` shaped like ``query``; ``weights``
            ``(N, L, S)`` (``(N, num_heads, L, S)`` without averaging) or ``None``.
        """
        batched = self._shape_check(query, key, value, key_padding_mask, attn_mask)
        key_padding_mask = _canonical_mask(
            key_padding_mask, "key_padding_mask", _dtype_of(attn_mask), "attn_mask", query.dtype
        )
        if self.batch_first and batched:
            query, key, value = (mx.swapaxes(t, 0, 1) for t in (query, key, value))
        if not batched:
            query, key, value = (mx.expand_dims(t, 1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = mx.expand_dims(key_padding_mask, 0)
        out, weights = self._attend(
            query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
            is_causal,
        )  # fmt: skip
        if not batched:
            out = mx.squeeze(out, 1)
            if weights is not None:
                weights = mx.squeeze(weights, 0)
        elif self.batch_first:
            out = mx.swapaxes(out, 0, 1)
        return out, weights

    def _attend(self, query, key, value, kpm, need_weights, attn_mask, average, is_causal):
        L, N, E = query.shape
        S = key.shape[0]
        heads, hd = self.num_heads, self.head_dim
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
                "module method `generate_square_subsequent_mask` to create this mask."
            )
        if is_causal and kpm is None and not need_weights:
            attn_mask = None
        else:
            attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, False)
            if kpm is not None:
                is_causal = False
        if E != self.embed_dim:
            raise AssertionError(
                f"MultiheadAttention: was expecting embedding dimension of {self.embed_dim}, "
                f"but got {E} (query shape {tuple(query.shape)})"
            )
        if self._qkv_same_embed_dim:
            if tuple(key.shape) != tuple(value.shape):
                raise AssertionError(
                    f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}"
                )
            w = self["in_proj_weight"]
            wq, wk, wv = w[:E], w[E : 2 * E], w[2 * E :]
        else:
            if tuple(key.shape[:2]) != tuple(value.shape[:2]):
                raise AssertionError(
                    f"key's sequence and batch dims {tuple(key.shape[:2])} do not match value's "
                    f"{tuple(value.shape[:2])}"
                )
            wq, wk, wv = self["q_proj_weight"], self["k_proj_weight"], self["v_proj_weight"]
        b = self.get("in_proj_bias")
        bq, bk, bv = (None,) * 3 if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        q, k, v = _linear(query, wq, bq), _linear(key, wk, bk), _linear(value, wv, bv)
        if attn_mask is not None:
            if attn_mask.ndim == 2:
                if tuple(attn_mask.shape) != (L, S):
                    raise RuntimeError(
                        f"The shape of the 2D attn_mask is {tuple(attn_mask.shape)}, but should "
                        f"be {(L, S)}."
                    )
                attn_mask = mx.expand_dims(attn_mask, 0)
            elif attn_mask.ndim == 3:
                if tuple(attn_mask.shape) != (N * heads, L, S):
                    raise RuntimeError(
                        f"The shape of the 3D attn_mask is {tuple(attn_mask.shape)}, but should "
                        f"be {(N * heads, L, S)}."
                    )
            else:
                raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")
        if self.get("bias_k") is not None:
            k = mx.concatenate([k, mx.broadcast_to(self["bias_k"], (1, N, E))], axis=0)
            v = mx.concatenate([v, mx.broadcast_to(self["bias_v"], (1, N, E))], axis=0)
            attn_mask = None if attn_mask is None else _pad_last(attn_mask)
            kpm = None if kpm is None else _pad_last(kpm)
        # (seq, N, E) -> (N * heads, seq, head_dim)
        q = mx.swapaxes(mx.reshape(q, (L, N * heads, hd)), 0, 1)
        k = mx.swapaxes(mx.reshape(k, (k.shape[0], N * heads, hd)), 0, 1)
        v = mx.swapaxes(mx.reshape(v, (v.shape[0], N * heads, hd)), 0, 1)
        if self.add_zero_attn:
            k = mx.concatenate([k, mx.zeros((N * heads, 1, hd), dtype=k.dtype)], axis=1)
            v = mx.concatenate([v, mx.zeros((N * heads, 1, hd), dtype=v.dtype)], axis=1)
            attn_mask = None if attn_mask is None else _pad_last(attn_mask)
            kpm = None if kpm is None else _pad_last(kpm)
        S = k.shape[1]
        if kpm is not None:
            if kpm.shape[0] != N:
                raise AssertionError(
                    f"Expected key_padded_mask.shape[0] to be {N}, but got {kpm.shape[0]}"
                )
            if kpm.shape[1] != S:
                raise AssertionError(
                    f"Expected key_padded_mask.shape[1] to be {S}, but got {kpm.shape[1]}"
                )
            kpm = mx.reshape(mx.broadcast_to(mx.reshape(kpm, (N, 1, 1, S)), (N, heads, 1, S)),
                             (N * heads, 1, S))  # fmt: skip
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        p = self.dropout if self.training else 0.0
        w_out, b_out = self.out_proj["weight"], self.out_proj.get("bias")
        if need_weights:
            scores = (q * math.sqrt(1.0 / hd)) @ mx.swapaxes(k, -1, -2)
            if attn_mask is not None:
                scores = attn_mask + scores
            weights = mx.softmax(scores, axis=-1)
            if p > 0.0:
                weights = _dropout(weights, p, True)
            out = mx.reshape(mx.swapaxes(weights @ v, 0, 1), (L * N, E))
            out = mx.reshape(_linear(out, w_out, b_out), (L, N, E))
            weights = mx.reshape(weights, (N, heads, L, S))
            if average:
                weights = mx.mean(weights, axis=1)
            return out, weights
        if attn_mask is not None:
            if attn_mask.shape[0] == 1 and attn_mask.ndim == 3:
                attn_mask = mx.expand_dims(attn_mask, 0)
            else:
                attn_mask = mx.reshape(attn_mask, (N, heads, -1, S))
        q = mx.reshape(q, (N, heads, L, hd))
        k = mx.reshape(k, (N, heads, S, hd))
        v = mx.reshape(v, (N, heads, S, hd))
        out = _attention(q, k, v, attn_mask, p, is_causal and attn_mask is None)
        out = mx.reshape(mx.transpose(out, (2, 0, 1, 3)), (L * N, E))
        return mx.reshape(_linear(out, w_out, b_out), (L, N, E)), None


# -- Transformer layers ------------------------------------------------------------------------


def _activation(activation: Any) -> Callable:
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    return activation


def _relu_or_gelu(activation: Any) -> int:
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    if activation is F.gelu or isinstance(activation, GELU):
        return 2
    return 0


def _seq_len(src: array, batch_first: bool) -> int:
    return src.shape[0] if src.ndim == 2 else src.shape[1 if batch_first else 0]


def _detect_is_causal_mask(mask: Any, is_causal: bool | None, size: int | None) -> bool:
    """PyTorch's rule: an explicit hint is kept; otherwise ``mask`` is causal when it equals
    :meth:`Transformer.generate_square_subsequent_mask` of its size."""
    causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        if tuple(mask.shape) == (sz, sz):
            causal = bool(mx.array_equal(mask, _causal_mask(sz, sz, mask)))
    return causal


def _to_dtype(module: Module, dtype: Any) -> None:
    if dtype is not None:
        module.to(dtype)


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and layer
    norm (after, or before with ``norm_first``), PyTorch's.

    Args:
        d_model: the model's width.
        nhead: attention heads.
        dim_feedforward: the feed-forward block's width.
        dropout: dropout after attention, in the feed-forward block and on the residuals.
        activation: ``"relu"``, ``"gelu"`` or a callable (a function or a module).
        layer_norm_eps: the norms' epsilon.
        batch_first: ``(N, S, E)`` inputs and outputs.
        norm_first: normalise before each block instead of after.
        bias: learn biases in the linear layers and norms.
        device: accepted for PyTorch code.
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        activation = _activation(activation)
        self.activation_relu_or_gelu = _relu_or_gelu(activation)
        self.activation = activation
        _to_dtype(self, dtype)

    def forward(
        self,
        src: array,
        src_mask: array | None = None,
        src_key_padding_mask: array | None = None,
        is_causal: bool = False,
    ) -> array:
        """Run the layer on ``src`` ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``).

        Args:
            src: the sequence.
            src_mask: ``(S, S)`` or ``(N * nhead, S, S)`` attention mask.
            src_key_padding_mask: ``(N, S)``, ``True`` marks padding.
            is_causal: a hint that ``src_mask`` is the causal mask.
        """
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", _dtype_of(src_mask), "src_mask",
            src.dtype,
        )  # fmt: skip
        src_mask = _canonical_mask(src_mask, "src_mask", None, "", src.dtype, False)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            need_weights=False, is_causal=is_causal,
        )[0]  # fmt: skip
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's memory and a feed-forward block, each
    with a residual connection and layer norm (PyTorch's).

    Args:
        d_model: the model's width.
        nhead: attention heads.
        dim_feedforward: the feed-forward block's width.
        dropout: dropout after the blocks and inside the feed-forward block.
        activation: ``"relu"``, ``"gelu"`` or a callable.
        layer_norm_eps: the norms' epsilon.
        batch_first: ``(N, T, E)`` inputs and outputs.
        norm_first: normalise before each block instead of after.
        bias: learn biases in the linear layers and norms.
        device: accepted for PyTorch code.
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = {"dropout": dropout, "batch_first": batch_first, "bias": bias, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)
        _to_dtype(self, dtype)

    def forward(
        self,
        tgt: array,
        memory: array,
        tgt_mask: array | None = None,
        memory_mask: array | None = None,
        tgt_key_padding_mask: array | None = None,
        memory_key_padding_mask: array | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> array:
        """Run the layer on ``tgt`` ``(T, N, E)`` attending to ``memory`` ``(S, N, E)``.

        Args:
            tgt: the target sequence.
            memory: the encoder's output.
            tgt_mask: ``(T, T)`` (or per head) mask of the self-attention.
            memory_mask: ``(T, S)`` (or per head) mask of the memory attention.
            tgt_key_padding_mask: ``(N, T)``, ``True`` marks padding.
            memory_key_padding_mask: ``(N, S)``, ``True`` marks padding.
            tgt_is_causal: a hint that ``tgt_mask`` is causal.
            memory_is_causal: a hint that ``memory_mask`` is causal.
        """
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(
                self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal
            )
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(
                x
                + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            )
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            is_causal=is_causal, need_weights=False,
        )[0]  # fmt: skip
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        x = self.multihead_attn(
            x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            is_causal=is_causal, need_weights=False,
        )[0]  # fmt: skip
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _clones(module: Module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _why_not_sparsity(layer: Any) -> str:
    """PyTorch's reasons for not using its nested-tensor path (the same warning text)."""
    name = "encoder_layer"
    if not isinstance(layer, TransformerEncoderLayer):
        return f"{name} was not TransformerEncoderLayer"
    if layer.norm_first:
        return f"{name}.norm_first was True"
    if not layer.self_attn.batch_first:
        return (
            f"{name}.self_attn.batch_first was not True"
            "(use batch_first for better inference performance)"
        )
    if not layer.self_attn._qkv_same_embed_dim:
        return f"{name}.self_attn._qkv_same_embed_dim was not True"
    if layer.self_attn.in_proj_bias is None:
        return f"{name}.self_attn was passed bias=False"
    if not layer.activation_relu_or_gelu:
        return f"{name}.activation_relu_or_gelu was not True"
    if layer.norm1.eps != layer.norm2.eps:
        return f"{name}.norm1.eps was not equal to {name}.norm2.eps"
    if layer.self_attn.num_heads % 2 == 1:
        return f"{name}.self_attn.num_heads is odd"
    return ""


class TransformerEncoder(Module):
    """``num_layers`` copies of an encoder layer, then an optional norm (PyTorch's).

    In evaluation with recording off (``no_grad``), a left-aligned ``src_key_padding_mask``
    and no ``mask``, the outputs at padded positions are zeros before the final norm, as
    PyTorch's nested-tensor path gives them (``enable_nested_tensor``).

    Args:
        encoder_layer: the layer to copy (deep copies: each has its own parameters).
        num_layers: how many.
        norm: a module applied to the output, or ``None``.
        enable_nested_tensor: use the nested-tensor path's outputs where PyTorch would.
        mask_check: check that the padding mask is left-aligned before taking that path.
    """

    def __init__(
        self,
        encoder_layer: Module,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        if norm is not None:
            self.norm = norm
        else:
            object.__setattr__(self, "norm", None)
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check
        why = _why_not_sparsity(encoder_layer)
        if enable_nested_tensor and why:
            warnings.warn(
                f"enable_nested_tensor is True, but self.use_nested_tensor is False because {why}",
                stacklevel=3,
            )
            self.use_nested_tensor = False

    def _nested_path(self, src: array, kpm: Any, mask: Any) -> bool:
        first = self.layers[0]
        if not self.use_nested_tensor or first.training or src.ndim != 3 or kpm is None:
            return False
        if mask is not None or _why_not_sparsity(first):
            return False
        if self.mask_check:
            pad = mx.isneginf(kpm)  # on the mask's device
            if bool(mx.any(pad[:, :-1] & ~pad[:, 1:])):  # padding before a token
                return False
        params = [p for _, p in first.named_parameters()]
        return not (STATE.enabled and (src.requires_grad or any(p.requires_grad for p in params)))

    def forward(
        self,
        src: array,
        mask: array | None = None,
        src_key_padding_mask: array | None = None,
        is_causal: bool | None = None,
    ) -> array:
        """Run the layers on ``src``.

        Args:
            src: ``(S, N, E)`` (``(N, S, E)`` with ``batch_first``) or ``(S, E)``.
            mask: the attention mask.
            src_key_padding_mask: ``(N, S)``, ``True`` marks padding.
            is_causal: a hint that ``mask`` is causal (detected when ``None``).
        """
        src_key_padding_mask = _canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", _dtype_of(mask), "mask", src.dtype
        )
        mask = _canonical_mask(mask, "mask", None, "", src.dtype, False)
        batch_first = self.layers[0].self_attn.batch_first
        nested = self._nested_path(src, src_key_padding_mask, mask)
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        out = src
        for layer in self.layers:
            out = layer(
                out, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask
            )
        if nested:
            pad = mx.isneginf(src_key_padding_mask)
            pad = mx.expand_dims(pad if batch_first else mx.swapaxes(pad, 0, 1), -1)
            out = mx.where(pad, mx.array(0.0, dtype=out.dtype), out)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoder(Module):
    """``num_layers`` copies of a decoder layer, then an optional norm (PyTorch's).

    Args:
        decoder_layer: the layer to copy.
        num_layers: how many.
        norm: a module applied to the output, or ``None``.
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        if norm is not None:
            self.norm = norm
        else:
            object.__setattr__(self, "norm", None)

    def forward(
        self,
        tgt: array,
        memory: array,
        tgt_mask: array | None = None,
        memory_mask: array | None = None,
        tgt_key_padding_mask: array | None = None,
        memory_key_padding_mask: array | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> array:
        """Run the layers on ``tgt`` attending to ``memory`` (arguments as
        :meth:`TransformerDecoderLayer.forward`; ``tgt_is_causal`` is detected when ``None``)."""
        seq = _seq_len(tgt, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq)
        out = tgt
        for layer in self.layers:
            out = layer(
                out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal,
            )  # fmt: skip
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need" (PyTorch's), with
    final norms on both stacks and every matrix drawn from Xavier's uniform distribution.

    Args:
        d_model: the model's width.
        nhead: attention heads.
        num_encoder_layers: encoder layers.
        num_decoder_layers: decoder layers.
        dim_feedforward: the feed-forward blocks' width.
        dropout: dropout rate.
        activation: ``"relu"``, ``"gelu"`` or a callable.
        custom_encoder: an encoder to use instead.
        custom_decoder: a decoder to use instead.
        layer_norm_eps: the norms' epsilon.
        batch_first: ``(N, S, E)`` inputs and outputs.
        norm_first: pre-norm layers.
        bias: learn biases.
        device: accepted for PyTorch code.
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable = "relu",
        custom_encoder: Any = None,
        custom_decoder: Any = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps)
        args += (batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(*args, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            _to_dtype(norm, dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(*args, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
            _to_dtype(norm, dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        for _, p in self.named_parameters():
            if p.ndim > 1:
                _init.xavier_uniform_(p)
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(
        self,
        src: array,
        tgt: array,
        src_mask: array | None = None,
        tgt_mask: array | None = None,
        memory_mask: array | None = None,
        src_key_padding_mask: array | None = None,
        tgt_key_padding_mask: array | None = None,
        memory_key_padding_mask: array | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> array:
        """Encode ``src`` ``(S, N, E)`` and decode ``tgt`` ``(T, N, E)`` against it (masks as
        in the layers); returns ``(T, N, E)`` (``(N, T, E)`` with ``batch_first``)."""
        batched = src.ndim == 3
        b = 0 if self.batch_first else 1
        if batched and src.shape[b] != tgt.shape[b]:
            raise RuntimeError(
                "the batch number of src and tgt must be equal (src shape "
                f"{tuple(src.shape)}, tgt shape {tuple(tgt.shape)}, batch_first="
                f"{self.batch_first})"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(
                f"the feature number of src and tgt must be equal to d_model ({self.d_model}), "
                f"got src shape {tuple(src.shape)} and tgt shape {tuple(tgt.shape)}"
            )
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
            is_causal=src_is_causal,
        )  # fmt: skip
        return self.decoder(
            tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal,
        )  # fmt: skip

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None) -> array:
        """The causal mask ``(sz, sz)``: ``-inf`` above the diagonal, ``0`` elsewhere.

        Args:
            sz: the sequence length.
            device: where to make it (the default device by default, as PyTorch).
            dtype: the mask's dtype (float32 by default).
        """
        from .._creation import full

        dt = mx.float32 if dtype is None else dtype
        return as_tensor_class(mx.triu(full((sz, sz), -math.inf, dtype=dt, device=device), 1))
