"""``mx.fast``: MLX's fused layers (RMS norm, layer norm, RoPE, attention), as composites.

MLX ships these as hand-written kernels with their own VJPs; on the CPU it runs the same
mathematics as a graph of ordinary operations, which is what this module does. Every function
here is written with the op table's primitives, so ``grad``, ``grad(grad(...))``, ``jvp``,
``vmap`` and ``mx.compile`` go through them with no rule of their own.

Half-precision inputs are computed in float32 (as MLX's kernels accumulate) and the results
cast back; float32 and float64 inputs are computed in their own precision, so gradient
checks in float64 stay exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backend as _backend
from . import dtypes as _dt
from . import ops
from .array import _from_value, array
from .backend import xp
from .ops.table import _align, _operand, _rec, defprim
from .tracing import Traced as _Traced
from .tracing import kernel as _kernel

__all__ = [
    "cross_entropy",
    "cuda_kernel",
    "gated_delta_update",
    "layer_norm",
    "metal_kernel",
    "rms_norm",
    "rope",
    "scaled_dot_product_attention",
]


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else ops._as(x)


def _on_host(x: array) -> bool:
    """Whether ``x`` lives in host (NumPy) memory: the backend-value paths below build NumPy
    constants, which a GPU array's operations refuse."""
    return isinstance(x._data, xp.ndarray)


def _concrete(d) -> bool:
    """Whether backend data ``d`` holds values (NumPy or GPU data), not ``mx.compile``'s trace."""
    return type(d) is xp.ndarray or _backend.is_gpu(d)


def _kernel_input(d) -> bool:
    """Whether backend data ``d`` can enter the primitives' kernels below: values, or a value
    being traced by ``mx.compile`` (the kernels are opaque steps there, so a replay computes
    exactly what the eager call did)."""
    return _concrete(d) or isinstance(d, _Traced)


def _plain(*xs: array | None) -> bool:
    """Whether no input is being differentiated (then no op would record a node, and a
    function may compute on backend values directly)."""
    return all(x is None or x._node is None for x in xs)


def _promote(t1: _dt.Dtype, t2: _dt.Dtype) -> _dt.Dtype:
    """MLX's promotion of two dtypes."""
    return _dt.from_np(_dt.promote(_dt.to_np(t1), _dt.to_np(t2)))


_IS_FLOAT: dict = {}


def _is_float(dtype: _dt.Dtype) -> bool:
    got = _IS_FLOAT.get(dtype)
    if got is None:
        got = _IS_FLOAT[dtype] = _dt.issubdtype(dtype, _dt.floating)
    return got


def _compute_type(dtype: _dt.Dtype) -> _dt.Dtype:
    """The precision a computation runs in: at least float32."""
    return _dt.float64 if dtype == _dt.float64 else _dt.float32


def _check_vector(v: array, size: int, name: str, who: str) -> None:
    if v.ndim != 1:
        raise ValueError(f"[{who}] {name} must have 1 dimension but has {v.ndim} dimensions.")
    if v.shape[0] != size:
        raise ValueError(
            f"[{who}] {name} must have the same size as the last dimension of x ({size}) "
            f"but has {v.shape[0]} elements."
        )


def rms_norm(x: array, weight: array | None, eps: float, *, stream: Any = None) -> array:
    """Root-mean-square normalisation over the last axis: ``weight * x / sqrt(mean(x^2) + eps)``.

    Args:
        x: the input (at least one dimension).
        weight: ``(x.shape[-1],)`` scale, or ``None`` for none.
        eps: added to the mean square.
        stream: accepted for MLX compatibility (the CPU is the only device).

    Returns:
        An array shaped like ``x`` of type ``result_type(x, weight)``.
    """
    x = _arr(x)
    if x.ndim == 0:
        raise ValueError("[rms_norm] Input must have at least 1 dimension but got 0 dimensions.")
    out_type = x.dtype
    if weight is not None:
        weight = _arr(weight)
        _check_vector(weight, x.shape[-1], "weight", "rms_norm")
        out_type = _promote(x.dtype, weight.dtype)
    if not _is_float(out_type):
        raise ValueError(f"[rms_norm] Received unsupported type {out_type}.")
    if _kernel_input(x._data) and x.dtype == out_type == _compute_type(out_type):
        # one primitive (one node when differentiated), or with no weight and nothing to
        # differentiate the same kernel on backend values: not eight recorded ops
        if weight is not None:
            if _kernel_input(weight._data):
                return _rms_norm_prim(x, weight, eps)
        elif x._node is None:
            return _from_value(_rms_kernel(x._data, None, eps))
    y = ops.astype(x, _compute_type(out_type))
    y = y * ops.rsqrt(ops.mean(ops.square(y), axis=-1, keepdims=True) + eps)
    y = ops.astype(y, out_type)
    if weight is not None:
        y = y * ops.astype(weight, out_type)
    return y


@_kernel
def _rms_kernel(d, w, eps: float):
    """``d / sqrt(mean(d^2) + eps) [* w]`` on backend values (the last axis)."""
    m = _backend.array_module(d)
    ms = _backend.reduce_sum(m.square(d), (d.ndim - 1,), keepdims=True) * (1.0 / d.shape[-1])
    y = d * (1.0 / m.sqrt(ms + eps))
    return y if w is None else y * w


def _rms_norm_prim(x: array, w: array, eps: float) -> array:
    """``rms_norm``'s primitive: ``x`` and its weight of one floating dtype, float32 or wider."""
    return _rec(_RMS_NORM, _rms_kernel(x._data, w._data, eps), (x, w), {"eps": eps})


def _rms_normalized(x: array, eps: float) -> tuple[array, array]:
    r = ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + eps)
    return r, x * r


def _rms_vjp_x(g, ans, x, w, eps):
    # y = w x r, r = (mean(x^2) + eps)^-1/2:  dx = r (g w - n mean(g w n)), n = x r
    r, n = _rms_normalized(x, eps)
    gw = g * w
    return r * (gw - n * ops.mean(gw * n, axis=-1, keepdims=True))


def _rms_vjp_w(g, ans, x, w, eps):
    return g * _rms_normalized(x, eps)[1]  # the engine sums it back to the weight's (D,)


def _rms_batch(args, params, ex_ndim):
    (x, nx), (w, nw) = args
    x, w = _operand(x, nx), _operand(w, nw)
    if nw is None:  # a shared weight: the primitive on the whole batch
        return _rms_norm_prim(x, w, params["eps"])
    # one weight per example: the formula, the weights aligned to x's examples
    target = nx if nx is not None else x.ndim
    return _rms_normalized(x, params["eps"])[1] * _align(w, nw, target)


_RMS_NORM = defprim("rms_norm", _rms_vjp_x, _rms_vjp_w, batch=_rms_batch)


def layer_norm(
    x: array, weight: array | None, bias: array | None, eps: float, *, stream: Any = None
) -> array:
    """Layer normalisation over the last axis, then ``* weight + bias`` when given.

    Args:
        x: the input (at least one dimension).
        weight: ``(x.shape[-1],)`` scale, or ``None``.
        bias: ``(x.shape[-1],)`` shift, or ``None``.
        eps: added to the variance.
        stream: accepted for MLX compatibility.

    Returns:
        An array shaped like ``x`` of type ``result_type(x, weight, bias)``.
    """
    x = _arr(x)
    if x.ndim == 0:
        raise ValueError("[layer_norm] Input must have at least 1 dimension but got 0 dimensions.")
    out_type = x.dtype
    if weight is not None:
        weight = _arr(weight)
        _check_vector(weight, x.shape[-1], "weight", "layer_norm")
        out_type = _promote(out_type, weight.dtype)
    if bias is not None:
        bias = _arr(bias)
        _check_vector(bias, x.shape[-1], "bias", "layer_norm")
        if weight is not None:
            out_type = _promote(out_type, bias.dtype)
    if not _is_float(out_type):
        raise ValueError(f"[layer_norm] Received unsupported type {out_type}.")
    if _kernel_input(x._data) and x.dtype == out_type == _compute_type(out_type):
        # one primitive (one node when differentiated): weight and bias of x's dtype, or
        # nothing to differentiate (the same kernel on backend values), not nine recorded ops
        w_ok = weight is None or (weight.dtype == out_type and _kernel_input(weight._data))
        b_ok = bias is None or (bias.dtype == out_type and _kernel_input(bias._data))
        if w_ok and b_ok:
            if weight is not None and bias is not None:
                return _layer_norm_prim(x, weight, bias, eps)
            if _plain(x, weight, bias):
                w_d = None if weight is None else weight._data
                b_d = None if bias is None else bias._data
                return _from_value(_ln_kernel(x._data, w_d, b_d, eps))
    y = ops.astype(x, _compute_type(out_type))
    yc = y - ops.mean(y, axis=-1, keepdims=True)
    var = ops.mean(ops.square(yc), axis=-1, keepdims=True)
    y = ops.astype(yc * ops.rsqrt(var + eps), out_type)
    if weight is not None:
        y = y * ops.astype(weight, out_type)
    if bias is not None:
        y = y + ops.astype(bias, out_type)
    return y


@_kernel
def _ln_kernel(d, w, b, eps: float):
    """``(d - mean) / sqrt(var + eps) [* w] [+ b]`` on backend values (the last axis), the
    same steps as the composite form (the centred values' mean square)."""
    m = _backend.array_module(d)
    ax, inv_n = (d.ndim - 1,), 1.0 / d.shape[-1]
    yc = d - _backend.reduce_sum(d, ax, keepdims=True) * inv_n
    r = _backend.reduce_sum(m.square(yc), ax, keepdims=True)
    r *= inv_n
    r += eps
    m.sqrt(r, out=r)
    m.reciprocal(r, out=r)
    yc *= r
    if w is not None:
        yc *= w
    if b is not None:
        yc += b
    return yc


def _layer_norm_prim(x: array, w: array, b: array, eps: float) -> array:
    """``layer_norm``'s primitive: ``x``, weight and bias of one float dtype, float32 or wider."""
    out = _ln_kernel(x._data, w._data, b._data, eps)
    return _rec(_LAYER_NORM, out, (x, w, b), {"eps": eps})


def _ln_normalized(x: array, eps: float) -> tuple[array, array]:
    """``(r, (x - mean) r)`` with ``r = 1 / sqrt(var + eps)``, as chainrule ops."""
    xc = x - ops.mean(x, axis=-1, keepdims=True)
    r = ops.rsqrt(ops.mean(ops.square(xc), axis=-1, keepdims=True) + eps)
    return r, xc * r


def _ln_vjp_x(g, ans, x, w, b, eps):
    # y = n w + b, n = (x - mean) r:  dx = r (gw - mean(gw) - n mean(gw n))
    r, n = _ln_normalized(x, eps)
    gw = g * w
    mean_gw = ops.mean(gw, axis=-1, keepdims=True)
    return r * (gw - mean_gw - n * ops.mean(gw * n, axis=-1, keepdims=True))


def _ln_vjp_w(g, ans, x, w, b, eps):
    return g * _ln_normalized(x, eps)[1]  # the engine sums it back to the weight's (D,)


def _ln_vjp_b(g, ans, x, w, b, eps):
    return g  # summed back to the bias's (D,) by the engine


def _ln_batch(args, params, ex_ndim):
    (x, nx), (w, nw), (b, nb) = args
    x, w, b = _operand(x, nx), _operand(w, nw), _operand(b, nb)
    if nw is None and nb is None:  # shared weight and bias: the primitive on the whole batch
        return _layer_norm_prim(x, w, b, params["eps"])
    target = nx if nx is not None else x.ndim
    return _ln_normalized(x, params["eps"])[1] * _align(w, nw, target) + _align(b, nb, target)


_LAYER_NORM = defprim("layer_norm", _ln_vjp_x, _ln_vjp_w, _ln_vjp_b, batch=_ln_batch)


def _rope_angles(
    T: int,
    half: int,
    base: float | None,
    scale: float,
    offset: array,
    freqs: array | None,
    at: _dt.Dtype,
    host: bool = False,
) -> array:
    """``theta`` of shape ``(T, half)`` or ``(B, 1, T, half)`` (one offset per example), in
    ``at`` (float32 as MLX; float64 for float64 inputs)."""
    if freqs is None and offset._node is None and host:
        # constants (nothing to differentiate): the same ufuncs on backend values, without a
        # dozen recorded ops per call (one decoding step calls rope twice per layer)
        dt = xp.dtype(_dt.to_np(at))
        key = (half, base, dt.str)
        inv_v = _ROPE_INV.get(key)
        if inv_v is None:
            step_v = xp.arange(0, -half, -1).astype(dt)
            inv_v = _ROPE_INV.setdefault(key, xp.exp(step_v * (math.log(base) / half)))  # type: ignore[arg-type]
        off_v = _backend.to_host(offset._data).astype(dt)
        off_v = off_v.reshape(-1, 1, 1) if offset.size > 1 else off_v.reshape(())
        pos_v = (off_v + xp.arange(T, dtype=dt)) * float(scale)
        theta_v = pos_v[..., None] * inv_v
        return _from_value(theta_v[:, None] if theta_v.ndim == 3 else theta_v)
    pos = ops.arange(T, dtype=at)
    if offset.size > 1:
        pos = ops.reshape(ops.astype(offset, at), (-1, 1, 1)) + pos
    else:
        pos = ops.astype(ops.reshape(offset, ()), at) + pos
    pos = pos * float(scale)
    if freqs is not None:
        inv = ops.reciprocal(ops.astype(freqs, at))
    else:
        step = ops.astype(ops.arange(0, -half, -1), at)
        inv = ops.exp(step * (math.log(base) / half))  # type: ignore[arg-type]
    theta = ops.expand_dims(pos, -1) * inv
    return ops.expand_dims(theta, 1) if theta.ndim == 3 else theta


_ROPE_INV: dict = {}  # (half, base, dtype) -> the inverse frequencies


@_kernel
def _rope_kernel(d, c2, s2, dims: int, traditional: bool):
    """Rotate the feature pairs of backend value ``d`` (pairs laid out on an axis of two:
    ``x * [cos, cos] + swap(x) * [-sin, sin]``); features past ``dims`` pass through."""
    lead = d.shape[:-1]
    half = dims // 2
    r = (d if dims == d.shape[-1] else d[..., :dims]).reshape(
        (*lead, half, 2) if traditional else (*lead, 2, half)
    )
    swapped = r[..., ::-1] if traditional else r[..., ::-1, :]
    out = (r * c2 + swapped * s2).reshape((*lead, dims))
    if dims < d.shape[-1]:
        out = xp.concatenate([out, d[..., dims:]], axis=-1)
    return out


def _rope_rotate(x: array, c2, s2, dims: int, traditional: bool) -> array:
    """``rope``'s primitive: the rotation by constant tables ``c2``/``s2`` (backend values
    broadcasting against ``x``'s pairs)."""
    out = _rope_kernel(x._data, c2, s2, dims, traditional)
    return _rec(_ROPE, out, (x,), {"c2": c2, "s2": s2, "dims": dims, "traditional": traditional})


def _rope_vjp(g, ans, x, c2, s2, dims, traditional):
    # a rotation's transpose is the rotation by minus the angles: sin -> -sin
    return _rope_rotate(g, c2, -s2, dims, traditional)


def _rope_batch(args, params, ex_ndim):
    # the tables broadcast from the right, so the batch axis in front changes nothing
    ((x, nx),) = args
    return _rope_rotate(_operand(x, nx), **params)


_ROPE = defprim("rope", _rope_vjp, batch=_rope_batch)


def rope(
    a: array,
    dims: int,
    *,
    traditional: bool,
    base: float | None,
    scale: float,
    offset: int | array,
    freqs: array | None = None,
    stream: Any = None,
) -> array:
    """Rotary positional encoding of the first ``dims`` features of ``(B, *, T, D)`` inputs.

    Position ``p = (offset + t) * scale`` rotates feature pair ``j`` by
    ``p * base**(-2j / dims)`` (or ``p / freqs[j]``). Pairs are ``(j, j + dims/2)``, or
    neighbours ``(2j, 2j + 1)`` when ``traditional``.

    Args:
        a: the input, at least 3-d, floating.
        dims: how many features to rotate (positive, even, at most ``D``).
        traditional: rotate neighbouring pairs.
        base: the frequency base (exactly one of ``base`` and ``freqs`` is given).
        scale: multiplies the positions.
        offset: the first position: an int, a scalar array or one per example ``(B,)``.
        freqs: ``(dims // 2,)`` frequencies used instead of ``base``.
        stream: accepted for MLX compatibility.

    Returns:
        An array like ``a``.
    """
    x = _arr(a)
    if x.ndim < 3:
        raise ValueError(
            f"[rope] Input must have at least 3 dimensions but got input with {x.ndim} dimensions."
        )
    if not _is_float(x.dtype):
        raise ValueError(f"[rope] Input must be a floating type but got {x.dtype}.")
    off = _arr(offset)
    if off.ndim > 1:
        raise ValueError(
            f"[rope] offset must have at most one dimension but has shape {off.shape}."
        )
    if off.size != 1 and off.size != x.shape[0]:
        raise ValueError(
            f"[rope] offset must be a scalar or vector with {x.shape[0]} elements but has "
            f"shape {off.shape}."
        )
    if not _dt.issubdtype(off.dtype, _dt.integer):
        raise ValueError(f"[rope] offset must be an integer but got type {off.dtype}.")
    dims = int(dims)
    if dims <= 0:
        raise ValueError(f"[rope] dims must be positive but got {dims}.")
    if dims % 2:
        raise ValueError(f"[rope] dims must be even but got {dims}.")
    if dims > x.shape[-1]:
        raise ValueError(
            f"[rope] dims must not exceed the input's last dimension ({x.shape[-1]}) but got {dims}."
        )
    if freqs is not None:
        freqs = _arr(freqs)
        if base is not None:
            raise ValueError("[rope] Only one of base or freqs can have a value.")
        if freqs.ndim != 1 or freqs.shape[0] != dims // 2:
            raise ValueError(
                f"[rope] freqs must be one dimensional with size {dims // 2} but got shape "
                f"{freqs.shape}."
            )
    elif base is None:
        raise ValueError("[rope] Neither base nor freqs has a value.")

    shape, x0 = x.shape, x
    if x.ndim == 3:
        x = ops.expand_dims(x, 1)
    elif x.ndim > 4:
        x = ops.flatten(x, 1, x.ndim - 3)
    half = dims // 2
    t = x.dtype
    pair_axis = -1 if traditional else -2
    # concrete values (not traced by mx.compile): the angle tables are constants built on the
    # host and moved to x's device once
    fixed = _kernel_input(x._data) and _concrete(off._data)
    theta = _rope_angles(x.shape[-2], half, base, scale, off, freqs, _compute_type(t), fixed)
    if theta._node is None and fixed:
        th = theta._data
        m = _backend.array_module(th)
        tdt = xp.dtype(_dt.to_np(t))
        cos_v, sin_v = m.cos(th).astype(tdt), m.sin(th).astype(tdt)
        c2_v = _backend.same_device(m.stack([cos_v, cos_v], axis=pair_axis), x._data)
        s2_v = _backend.same_device(m.stack([-sin_v, sin_v], axis=pair_axis), x._data)
        # one primitive (recorded as one node when x is differentiated; its gradient is the
        # rotation by minus the angles), not a dozen recorded ops
        if c2_v.ndim == 3:  # one offset: (T, pairs) tables broadcast over any leading axes
            return _rope_rotate(x0, c2_v, s2_v, dims, traditional)
        return ops.reshape(_rope_rotate(x, c2_v, s2_v, dims, traditional), shape)
    cos, sin = ops.astype(ops.cos(theta), t), ops.astype(ops.sin(theta), t)
    c2 = ops.stack([cos, cos], axis=pair_axis)
    s2 = ops.stack([-sin, sin], axis=pair_axis)
    # each pair (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin): with the pairs laid out on an
    # axis of two, that is x * [cos, cos] + swap(x) * [-sin, sin]
    rot = x if dims == x.shape[-1] else x[..., :dims]
    lead = rot.shape[:-1]
    rot = ops.reshape(rot, (*lead, half, 2) if traditional else (*lead, 2, half))
    swapped = rot[..., ::-1] if traditional else rot[..., ::-1, :]
    out = ops.reshape(rot * c2 + swapped * s2, (*lead, dims))
    if dims < x.shape[-1]:
        out = ops.concatenate([out, x[..., dims:]], axis=-1)
    return ops.reshape(out, shape)


def cross_entropy(logits: array, targets: array, *, stream: Any = None) -> array:
    """``logsumexp(logits, axis=-1) - logits[..., targets]``, per element, in float32.

    As MLX's CPU path: the reduction runs in the logits' dtype and the result is cast to
    float32.

    Args:
        logits: unnormalised scores; the classes are the last axis.
        targets: integer class indices, shaped like ``logits`` without its last axis.
        stream: accepted for MLX compatibility (one CPU stream).

    Returns:
        The loss of each element, float32, shaped like ``targets``.
    """
    logits, targets = _arr(logits), _arr(targets)
    if logits.ndim < 1 or tuple(targets.shape) != tuple(logits.shape[:-1]):
        shape = ",".join(str(d) for d in targets.shape)
        lshape = ",".join(str(d) for d in logits.shape)
        raise ValueError(
            f"[cross_entropy] targets shape ({shape}) does not match logits shape ({lshape}) "
            "with the last axis removed."
        )
    if not _dt.issubdtype(targets.dtype, _dt.integer):
        raise ValueError(
            f"[cross_entropy] targets must be integer class indices but got {targets.dtype}."
        )
    picked = ops.take_along_axis(logits, ops.expand_dims(targets, -1), axis=-1)
    loss = ops.logsumexp(logits, axis=-1) - ops.squeeze(picked, -1)
    return loss.astype(_dt.float32)


def _check_gdu(q: array, k: array, v: array, gamma: array, beta: array, state, mask) -> None:
    who = "[gated_delta_update]"
    if q.ndim != 4 or k.shape != q.shape:
        raise ValueError(
            f"{who} q and k must have the same shape [B, T, Hk, Dk], got {q.shape} and {k.shape}."
        )
    B, T, Hk, Dk = q.shape
    if v.ndim != 4 or v.shape[:2] != (B, T) or v.shape[2] % Hk:
        raise ValueError(
            f"{who} v must be [B, T, Hv, Dv] with B={B}, T={T} and Hv a multiple of Hk={Hk}, "
            f"got {v.shape}."
        )
    Hv, Dv = v.shape[2], v.shape[3]
    if gamma.shape not in ((B, T, Hv), (B, T, Hv, Dk)):
        raise ValueError(
            f"{who} gamma must be [B, T, Hv] = {(B, T, Hv)} or [B, T, Hv, Dk], got {gamma.shape}."
        )
    if beta.shape != (B, T, Hv):
        raise ValueError(f"{who} beta must be [B, T, Hv] = {(B, T, Hv)}, got {beta.shape}.")
    if state is not None and state.shape != (B, Hv, Dv, Dk):
        raise ValueError(
            f"{who} initial_state must be [B, Hv, Dv, Dk] = {(B, Hv, Dv, Dk)}, got {state.shape}."
        )
    if mask is not None and mask.shape != (B, T):
        raise ValueError(f"{who} mask must be [B, T] = {(B, T)}, got {mask.shape}.")


def gated_delta_update(
    q: array,
    k: array,
    v: array,
    gamma: array,
    beta: array,
    initial_state: array | None = None,
    mask: array | None = None,
    stream: Any = None,
) -> list:
    """The gated delta rule over a sequence (MLX's ``mx.fast.gated_delta_update``).

    For each batch row and value head ``h`` (key/query head ``h // (Hv // Hk)``), with a state
    ``S`` of shape ``(Dv, Dk)``, step ``t`` computes::

        S = gamma_t * S                      # a scalar, or one decay per key dimension
        S = S + beta_t * (v_t - S @ k_t) k_t^T
        o_t = S @ q_t

    Masked steps (``mask[b, t]`` false) leave the state as it is and output zeros. Written
    with primitives, so it is differentiable in every argument.

    Args:
        q: queries ``[B, T, Hk, Dk]``.
        k: keys ``[B, T, Hk, Dk]``.
        v: values ``[B, T, Hv, Dv]``.
        gamma: decays ``[B, T, Hv]`` or ``[B, T, Hv, Dk]`` (linear, not log, space).
        beta: update rates ``[B, T, Hv]``.
        initial_state: the state before step 0, ``[B, Hv, Dv, Dk]`` (zeros if ``None``).
        mask: ``[B, T]``, which steps count.
        stream: accepted for MLX compatibility.

    Returns:
        ``[outputs [B, T, Hv, Dv] in the inputs' dtype, final state [B, Hv, Dv, Dk] in float32]``.
    """
    q, k, v, gamma, beta = (_arr(a) for a in (q, k, v, gamma, beta))
    state = None if initial_state is None else _arr(initial_state)
    mask = None if mask is None else _arr(mask)
    _check_gdu(q, k, v, gamma, beta, state, mask)
    B, T, Hk, Dk = q.shape
    Hv, Dv = v.shape[2], v.shape[3]
    out_dtype = _promote(_promote(q.dtype, k.dtype), v.dtype)
    ct = _dt.float64 if out_dtype == _dt.float64 else _dt.float32
    rep = Hv // Hk
    if rep > 1:
        q, k = ops.repeat(q, rep, axis=2), ops.repeat(k, rep, axis=2)
    q, k, v, gamma, beta = (a.astype(ct) for a in (q, k, v, gamma, beta))
    S = ops.zeros((B, Hv, Dv, Dk), dtype=ct) if state is None else state.astype(ct)
    keep = None if mask is None else mask.astype(_dt.bool_)
    outs = []
    for t in range(T):
        g = gamma[:, t]
        g = g[:, :, None, None] if g.ndim == 2 else g[:, :, None, :]
        kt, qt = k[:, t], q[:, t]  # (B, Hv, Dk)
        new = S * g
        mem = (new @ kt[..., None])[..., 0]  # (B, Hv, Dv)
        delta = (v[:, t] - mem) * beta[:, t][..., None]
        new = new + delta[..., None] * kt[:, :, None, :]
        o = (new @ qt[..., None])[..., 0]
        if keep is not None:
            m = keep[:, t]
            new = ops.where(m[:, None, None, None], new, S)
            o = ops.where(m[:, None, None], o, ops.zeros_like(o))
        S = new
        outs.append(o)
    out = ops.stack(outs, axis=1) if outs else ops.zeros((B, 0, Hv, Dv), dtype=ct)
    return [out.astype(out_dtype), S.astype(_dt.float32 if ct == _dt.float32 else ct)]


def _causal_mask(qL: int, kL: int) -> array:
    """``True`` where query ``i`` may see key ``j`` (lower right aligned, as MLX)."""
    return ops._as(np.tril(np.ones((qL, kL), dtype=bool), k=kL - qL))


def scaled_dot_product_attention(
    q: array,
    k: array,
    v: array,
    *,
    scale: float,
    mask: None | str | array = None,
    sinks: array | None = None,
    force_fused: bool = False,
    stream: Any = None,
) -> array:
    """``softmax(scale * q @ k.T + mask) @ v`` with grouped-query heads (MLX's ``mx.fast``).

    Args:
        q: ``(B, N_q, L, D)`` queries.
        k: ``(B, N_kv, S, D)`` keys; ``N_q`` must be a multiple of ``N_kv``.
        v: ``(B, N_kv, S, D_v)`` values.
        scale: multiplies the scores (usually ``1 / sqrt(D)``).
        mask: ``None``; ``"causal"`` (lower right aligned); a boolean array (``True`` may
            attend) or an additive one, broadcastable to ``(B, N_q, L, S)``.
        sinks: ``(N_q,)`` attention sinks: one extra logit per head that takes probability
            but contributes no value.
        force_fused: accepted for MLX compatibility; fused kernels need a GPU, so ``True``
            raises.
        stream: accepted for MLX compatibility.

    Returns:
        ``(B, N_q, L, D_v)`` of the inputs' common type.
    """
    who = "[scaled_dot_product_attention]"
    q, k, v = _arr(q), _arr(k), _arr(v)
    for t in (q, k, v):
        if t.ndim != 4:
            raise ValueError(f"{who} input with shape {t.shape} expected to be rank 4")
    if force_fused:
        raise ValueError(f"{who} fused attention kernels require a GPU.")
    B, n_q, qL, D = q.shape
    if k.shape[0] != B or v.shape[0] != B:
        raise ValueError(f"{who} mismatching batch dimension for inputs {k.shape}, {v.shape}.")
    if k.shape[-1] != D:
        raise ValueError(
            f"{who} query, keys expected to have matching last dimension; found query shape "
            f"{q.shape} for keys shape {k.shape}."
        )
    n_kv, kL = k.shape[1], k.shape[2]
    if v.shape[1] != n_kv or v.shape[2] != kL:
        raise ValueError(f"{who} keys {k.shape} and values {v.shape} do not match.")
    if n_q % n_kv:
        raise ValueError(
            f"{who} n_heads must be a multiple of n_kv_heads, found n_heads {n_q} for "
            f"n_kv_heads {n_kv}."
        )
    final = _promote(_promote(q.dtype, k.dtype), v.dtype)
    if not _is_float(final):
        raise ValueError(f"{who} Received unsupported type {final}.")
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"{who} invalid mask option {mask!r}. Must be 'causal', or an array.")
        mask = _causal_mask(qL, kL)
    elif mask is not None:
        mask = _arr(mask)
        if mask.ndim > 4:
            raise ValueError(
                f"{who} the mask with shape {mask.shape} expected to have at most rank 4."
            )
        if _promote(mask.dtype, final) != final:
            raise ValueError(f"{who} Mask type must promote to output type {final}.")
        target = (B, n_q, qL, kL)[4 - mask.ndim :]
        if any(m not in (1, t) for m, t in zip(mask.shape, target)):
            raise ValueError(
                f"{who} mask of shape {mask.shape} cannot be broadcast to the scores' shape "
                f"{(B, n_q, qL, kL)}."
            )
    if sinks is not None:
        sinks = _arr(sinks)
        if _promote(sinks.dtype, final) != final:
            raise ValueError(f"{who} Type of sinks must promote to output type {final}.")
        if sinks.ndim != 1 or sinks.shape[0] != n_q:
            raise ValueError(f"{who} Received invalid shape for sinks {sinks.shape}.")

    ct = _compute_type(final)
    rep = n_q // n_kv
    q = ops.astype(q, ct) * float(scale)
    k, v = ops.astype(k, ct), ops.astype(v, ct)
    if rep > 1:  # group the query heads that share a key/value head: no copies of k and v
        q = ops.unflatten(q, 1, (n_kv, rep))
        k, v = ops.expand_dims(k, 2), ops.expand_dims(v, 2)
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2))
    if mask is not None:
        if rep > 1 and mask.ndim >= 3:
            if mask.shape[-3] == 1:
                mask = ops.expand_dims(mask, -3)
            else:
                mask = ops.unflatten(mask, -3, (n_kv, rep))
        if mask.dtype == _dt.bool_:  # type: ignore[union-attr]
            scores = ops.where(mask, scores, float(np.finfo(_dt.to_np(ct)).min))
        else:
            scores = scores + ops.astype(mask, ct)
    if sinks is not None:
        s = ops.astype(sinks, ct)
        s = ops.reshape(s, (1, n_kv, rep, 1, 1) if rep > 1 else (1, n_q, 1, 1))
        s = ops.broadcast_to(s, (*scores.shape[:-1], 1))
        probs = ops.softmax(ops.concatenate([s, scores], axis=-1), axis=-1, precise=True)
        probs = probs[..., 1:]
    else:
        probs = ops.softmax(scores, axis=-1, precise=True)
    out = ops.matmul(probs, v)
    if rep > 1:
        out = ops.flatten(out, 1, 2)
    return ops.astype(out, final)


def _no_gpu_kernel(kind: str):
    def make(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"mx.fast.{kind}: custom {kind.split('_')[0].capitalize()} kernels need a GPU; "
            "chainrule runs on the CPU only (write the computation with mx operations instead)"
        )

    make.__name__ = make.__qualname__ = kind
    make.__doc__ = f"MLX's ``mx.fast.{kind}``: unavailable (no GPU); raises ``RuntimeError``."
    return make


cuda_kernel = _no_gpu_kernel("cuda_kernel")

_NO_METAL = "[metal_kernel] No Metal back-end."
_MATH_MODES = ("safe", "relaxed", "fast")


def _exporting() -> bool:
    """Whether ``mx.export_function`` is tracing right now."""
    from .export import _ExportTracer
    from .tracing import _LOCAL

    return isinstance(_LOCAL.tr, _ExportTracer)


@_kernel
def _metal_kernel_step(
    name: str, source: str, header: str, shape: tuple, dtype: Any, *inputs: Any
) -> Any:
    """One output of a custom Metal kernel: the step an export records for it.

    While ``export_function`` traces, the kernel cannot run (no Metal here), so the step gives
    zeros of the output's shape and dtype as the trace's placeholder; run anywhere else (an
    imported function called) it raises MLX's ``No Metal back-end`` error.
    """
    from .tracing import _LOCAL

    if _LOCAL.tr is None:
        raise RuntimeError(_NO_METAL)
    return np.zeros(shape, dtype)


class _MetalKernel:
    """A custom Metal kernel from :func:`metal_kernel`: callable, but never run on the CPU."""

    def __init__(
        self,
        name: str,
        input_names: Any,
        output_names: Any,
        source: str,
        header: str,
        compile_options: dict | None,
    ) -> None:
        self.name, self.source, self.header = name, source, header
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.compile_options = dict(compile_options or {})

    def __call__(
        self,
        *,
        inputs: Any,
        output_shapes: Any,
        output_dtypes: Any,
        grid: tuple,
        threadgroup: tuple,
        template: Any = None,
        init_value: float | None = None,
        verbose: bool = False,
        stream: Any = None,
    ) -> list:
        """Run the kernel: MLX's ``No Metal back-end`` error here, except inside
        ``mx.export_function``, which records it (for a GPU stream) without running it.

        Raises:
            ValueError: exporting a call on the CPU stream (the kernel only runs on a GPU),
                or inputs/outputs that do not match the kernel's names.
            RuntimeError: any call outside an export (there is no Metal back-end).
        """
        from . import devices

        if not _exporting():
            raise RuntimeError(_NO_METAL)
        if len(inputs) != len(self.input_names):
            raise ValueError(
                f"[metal_kernel] Expected {len(self.input_names)} inputs ({self.input_names}) "
                f"but got {len(inputs)}."
            )
        if len(output_shapes) != len(self.output_names) or len(output_dtypes) != len(
            self.output_names
        ):
            raise ValueError(
                f"[metal_kernel] Expected {len(self.output_names)} output shapes and dtypes "
                f"({self.output_names}) but got {len(output_shapes)} and {len(output_dtypes)}."
            )
        dev = getattr(stream, "device", stream)  # a Stream, a Device or a DeviceType
        if dev is None:
            dev = devices.default_device()
        if getattr(dev, "type", dev) == devices.DeviceType.cpu:
            raise ValueError("[metal_kernel] Only supports the GPU.")
        data = [_arr(x)._data for x in inputs]
        return [
            _from_value(
                _metal_kernel_step(
                    self.name, self.source, self.header, tuple(shape), _dt.to_np(dtype), *data
                )
            )
            for shape, dtype in zip(output_shapes, output_dtypes)
        ]


def metal_kernel(
    name: str,
    input_names: Any,
    output_names: Any,
    source: str,
    header: str = "",
    ensure_row_contiguous: bool = True,
    atomic_outputs: bool = False,
    compile_options: dict | None = None,
) -> _MetalKernel:
    """MLX's custom Metal kernel (``mx.fast.metal_kernel``).

    There is no Metal back-end here: calling the kernel raises ``RuntimeError`` as MLX's CPU
    build does, but ``mx.export_function`` can record a call on the GPU stream (without
    running it), as MLX exports one without evaluating it.

    Args:
        name: the kernel's name.
        input_names: the parameter names of the inputs.
        output_names: the parameter names of the outputs.
        source: the body of the Metal function.
        header: source placed before the function.
        ensure_row_contiguous: accepted for MLX compatibility.
        atomic_outputs: accepted for MLX compatibility.
        compile_options: ``{"math_mode": "safe" | "relaxed" | "fast"}``.

    Returns:
        The kernel, called as ``kernel(inputs=..., grid=..., threadgroup=...,
        output_shapes=..., output_dtypes=..., stream=...)``.
    """
    for arg, value in (("name", name), ("source", source), ("header", header)):
        if not isinstance(value, str):
            raise TypeError(f"metal_kernel: {arg} must be a str, got {type(value).__name__}")
    for arg, value in (("input_names", input_names), ("output_names", output_names)):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"metal_kernel: {arg} must be a sequence of str, got {value!r}")
    if compile_options is not None:
        if not isinstance(compile_options, dict):
            raise TypeError(
                f"metal_kernel: compile_options must be a dict, got {type(compile_options).__name__}"
            )
        mode = compile_options.get("math_mode")
        if mode is not None and mode not in _MATH_MODES:
            raise ValueError(
                f"metal_kernel: compile_options['math_mode'] must be one of {_MATH_MODES}, "
                f"got {mode!r}"
            )
    return _MetalKernel(name, input_names, output_names, source, header, compile_options)
