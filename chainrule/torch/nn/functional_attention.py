"""``F.multi_head_attention_forward``: PyTorch's sequence-first multi-head attention function.

Inputs are sequence-first (``(L, N, E)``, or ``(L, E)`` unbatched). Boolean masks mark the
positions to *leave out* (PyTorch's convention for this function, the opposite of
``scaled_dot_product_attention``'s); float masks are added to the scores. Written with
chainrule operations, so it differentiates to any order.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import chainrule.core as mx
from chainrule.core.array import array

from .functional_misc import dropout, linear
from .functional_pool import InputError

__all__ = ["multi_head_attention_forward"]


def _float_mask(mask: array | None, dtype: Any, who: str) -> array | None:
    """A boolean mask (true = leave out) as ``-inf`` / ``0``; a float mask as it is."""
    if mask is None:
        return None
    if mask.dtype == mx.bool_:
        zeros = mx.zeros(mask.shape, dtype=dtype)
        return mx.where(mask, mx.full(mask.shape, -math.inf, dtype=dtype), zeros)
    if mask.dtype not in (mx.float16, mx.bfloat16, mx.float32, mx.float64):
        raise InputError(f"{who}: only bool and floating types of masks are supported")
    return mask.astype(dtype)


def _pad_last(mask: array | None) -> array | None:
    if mask is None:
        return None
    return mx.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, 1)])


def multi_head_attention_forward(
    query: array,
    key: array,
    value: array,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: array | None,
    in_proj_bias: array | None,
    bias_k: array | None,
    bias_v: array | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: array,
    out_proj_bias: array | None,
    training: bool = True,
    key_padding_mask: array | None = None,
    need_weights: bool = True,
    attn_mask: array | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: array | None = None,
    k_proj_weight: array | None = None,
    v_proj_weight: array | None = None,
    static_k: array | None = None,
    static_v: array | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[array, array | None]:
    """Multi-head attention of sequence-first inputs (the function behind
    ``nn.MultiheadAttention``).

    Args:
        query: ``(L, N, E)`` or ``(L, E)``.
        key: ``(S, N, E_k)`` or ``(S, E_k)``.
        value: ``(S, N, E_v)`` or ``(S, E_v)``.
        embed_dim_to_check: must equal ``E``.
        num_heads: the number of heads (divides ``E``).
        in_proj_weight: ``(3E, E)`` packed query/key/value projections.
        in_proj_bias: ``(3E,)`` or ``None``.
        bias_k: ``(1, 1, E)`` appended to the keys, or ``None``.
        bias_v: ``(1, 1, E)`` appended to the values, or ``None``.
        add_zero_attn: append a zero key and value.
        dropout_p: dropout on the attention weights (in training only).
        out_proj_weight: ``(E, E)``.
        out_proj_bias: ``(E,)`` or ``None``.
        training: apply the dropout.
        key_padding_mask: ``(N, S)`` (or ``(S,)``): true or ``-inf`` leaves a key out.
        need_weights: also return the attention weights.
        attn_mask: ``(L, S)`` or ``(N * num_heads, L, S)``: true or ``-inf`` leaves out.
        use_separate_proj_weight: use ``q/k/v_proj_weight`` instead of ``in_proj_weight``.
        q_proj_weight: ``(E, E)``.
        k_proj_weight: ``(E, E_k)``.
        v_proj_weight: ``(E, E_v)``.
        static_k: ``(N * num_heads, S, E / num_heads)`` keys used as they are.
        static_v: likewise for the values.
        average_attn_weights: average the returned weights over the heads.
        is_causal: a hint that ``attn_mask`` is causal (it must then be given).

    Returns:
        ``(output, weights)``: ``(L, N, E)`` and ``(N, L, S)`` (``(N, H, L, S)`` unaveraged),
        or ``None`` weights when ``need_weights`` is false.
    """
    who = "multi_head_attention_forward"
    unbatched = query.ndim == 2
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise InputError(
            f"{who}: query, key and value must be all 3D (L, N, E) or all 2D (L, E), got "
            f"{tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}"
        )
    if unbatched:
        query, key, value = (mx.expand_dims(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = mx.expand_dims(key_padding_mask, 0)
    length, batch, embed = query.shape
    if embed != embed_dim_to_check:
        raise InputError(
            f"{who}: was expecting embedding dimension of {embed_dim_to_check}, but got {embed}"
        )
    if embed % num_heads:
        raise InputError(f"{who}: embed_dim {embed} not divisible by num_heads {num_heads}")
    head = embed // num_heads
    if is_causal and attn_mask is None:
        raise InputError(
            f"{who}: Need attn_mask if specifying the is_causal hint. You may use the "
            "Transformer module method `generate_square_subsequent_mask` to create this mask."
        )
    if key_padding_mask is not None and attn_mask is not None:
        if (key_padding_mask.dtype == mx.bool_) != (attn_mask.dtype == mx.bool_):
            warnings.warn(
                "Support for mismatched key_padding_mask and attn_mask is deprecated. Use same "
                "type for both instead.",
                UserWarning,
                stacklevel=2,
            )

    # projections
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = (
            in_proj_bias[:embed],
            in_proj_bias[embed : 2 * embed],
            in_proj_bias[2 * embed :],
        )
    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise InputError(
                f"{who}: use_separate_proj_weight is True but q_proj_weight, k_proj_weight or "
                "v_proj_weight is None"
            )
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        if in_proj_weight is None:
            raise InputError(f"{who}: use_separate_proj_weight is False but in_proj_weight is None")
        w_q, w_k, w_v = (
            in_proj_weight[:embed],
            in_proj_weight[embed : 2 * embed],
            in_proj_weight[2 * embed :],
        )
    q = linear(query, w_q, b_q)
    k = linear(key, w_k, b_k)
    v = linear(value, w_v, b_v)

    mask = _float_mask(attn_mask, q.dtype, who)
    if mask is not None:
        if mask.ndim == 2:
            if tuple(mask.shape) != (length, key.shape[0]):
                raise InputError(
                    f"{who}: The shape of the 2D attn_mask is {tuple(mask.shape)}, but should be "
                    f"{(length, key.shape[0])}."
                )
            mask = mx.expand_dims(mask, 0)
        elif mask.ndim != 3 or tuple(mask.shape) != (batch * num_heads, length, key.shape[0]):
            raise InputError(
                f"{who}: The shape of the attn_mask is {tuple(mask.shape)}, but should be "
                f"{(batch * num_heads, length, key.shape[0])}."
            )
    padding = _float_mask(key_padding_mask, q.dtype, who)

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise InputError(f"{who}: bias cannot be added to static key or value.")
        k = mx.concatenate(
            [k, mx.broadcast_to(mx.reshape(bias_k, (1, 1, embed)), (1, batch, embed))]
        )
        v = mx.concatenate(
            [v, mx.broadcast_to(mx.reshape(bias_v, (1, 1, embed)), (1, batch, embed))]
        )
        mask = _pad_last(mask)
        padding = _pad_last(padding)
    elif (bias_k is None) != (bias_v is None):
        raise InputError(f"{who}: bias_k and bias_v must be given together")

    # heads: (N * H, L, head)
    q = mx.transpose(mx.reshape(q, (length, batch * num_heads, head)), (1, 0, 2))
    if static_k is None:
        k = mx.transpose(mx.reshape(k, (k.shape[0], batch * num_heads, head)), (1, 0, 2))
    else:
        k = static_k
    if static_v is None:
        v = mx.transpose(mx.reshape(v, (v.shape[0], batch * num_heads, head)), (1, 0, 2))
    else:
        v = static_v
    if add_zero_attn:
        k = mx.concatenate([k, mx.zeros((batch * num_heads, 1, head), dtype=k.dtype)], axis=1)
        v = mx.concatenate([v, mx.zeros((batch * num_heads, 1, head), dtype=v.dtype)], axis=1)
        mask = _pad_last(mask)
        padding = _pad_last(padding)
    source = k.shape[1]
    if padding is not None:
        if tuple(padding.shape) != (batch, source):
            raise InputError(
                f"{who}: expecting key_padding_mask shape of {(batch, source)}, but got "
                f"{tuple(padding.shape)}"
            )
        padding = mx.reshape(
            mx.broadcast_to(
                mx.reshape(padding, (batch, 1, 1, source)), (batch, num_heads, 1, source)
            ),
            (batch * num_heads, 1, source),
        )
        mask = padding if mask is None else mask + padding

    scores = mx.matmul(q * (1.0 / math.sqrt(head)), mx.swapaxes(k, -1, -2))
    if mask is not None:
        scores = scores + mask
    weights = mx.softmax(scores, axis=-1)
    if training and dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    out = mx.matmul(weights, v)  # (N * H, L, head)
    out = mx.reshape(mx.transpose(out, (1, 0, 2)), (length * batch, embed))
    out = mx.reshape(linear(out, out_proj_weight, out_proj_bias), (length, batch, embed))
    if unbatched:
        out = out[:, 0]
    if not need_weights:
        return out, None
    weights = mx.reshape(weights, (batch, num_heads, length, source))
    if average_attn_weights:
        weights = mx.mean(weights, axis=1)
    if unbatched:
        weights = weights[0]
    return out, weights
