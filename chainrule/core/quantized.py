"""Quantization in MLX's formats, bit for bit: ``mx.quantize``, ``mx.dequantize``, products.

Formats (``mode``):

* ``"affine"`` (group sizes 32/64/128, 2, 3, 4, 5, 6 or 8 bits): each group of
  ``group_size`` consecutive values along the last axis is stored as unsigned integers ``q``
  with a ``scale`` and a ``bias`` of the input's type, ``w ~ scale * q + bias``. The scale and
  bias are chosen as MLX's CPU kernel chooses them (in float32: the edge of larger magnitude
  is represented exactly, ``rint`` rounds half to even), so the packed words are MLX's.
* ``"mxfp4"`` (groups of 32, 4 bits: FP4 E2M1 values with a power-of-two E8M0 scale),
  ``"nvfp4"`` (groups of 16, 4 bits, an FP8 E4M3 scale, optionally a global scale) and
  ``"mxfp8"`` (groups of 32, 8 bits: FP8 E4M3 values, E8M0 scale). Scales are ``uint8``.

Packing: the values of a row form one little-endian bit stream (value ``i`` at bit
``bits * i``), stored as ``uint32`` words, so a ``(..., K)`` matrix packs to
``(..., K * bits / 32)``.

Devices: every kernel here computes with the namespace of its input's device
(``backend.array_module``), so packing, unpacking and rounding of GPU data run on the GPU;
the small lookup tables (FP4 and FP8 values, FP4 midpoints) are built on the host once and
put next to the data (``backend.same_device``). ``gather_qmm`` copies its integer indices to
the host explicitly (``backend.to_host``) to group the rows by weight matrix.

Products are composites: the weights are unpacked, scaled with op-table
multiplications (so the scales and biases of the affine mode are differentiable, as in MLX)
and multiplied by the inputs with ``matmul``; gradients with respect to the inputs and the
affine scales and biases come from the primitives' own rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backend, ops
from . import dtypes as _dt
from .array import STATE, _from_value, array
from .backend import array_module, same_device, to_host

__all__ = [
    "dequantize",
    "from_fp8",
    "gather_qmm",
    "qqmm",
    "quantize",
    "quantized_matmul",
    "to_fp8",
]

_MODES = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}

_FP4 = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
    dtype=np.float32,
)
_FP4_MIDPOINTS = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], dtype=np.float32)


def _fp8_table() -> np.ndarray:
    """The float32 value of each FP8 E4M3 byte (as MLX reads them: 0x7F is 480, not NaN)."""
    codes = np.arange(256)
    half = ((codes & 127).astype(np.uint16) << 7).view(np.float16).astype(np.float32) * 256
    return np.where(codes & 128, -half, half).astype(np.float32)


_FP8 = _fp8_table()


# -- bits and bytes ------------------------------------------------------------------------------


def _pack(vals: np.ndarray, bits: int) -> np.ndarray:
    """``(..., K)`` integers below ``2**bits`` -> ``(..., K * bits / 32)`` uint32 words."""
    xp = array_module(vals)
    lead = vals.shape[:-1]
    if bits == 8:
        by = vals.astype(np.uint8)
    else:
        span = math.lcm(bits, 8)  # a whole number of values in a whole number of bytes
        per_chunk, chunk_bytes = span // bits, span // 8
        v = vals.astype(np.uint64).reshape(*lead, -1, per_chunk)
        chunk = (v << (xp.arange(per_chunk, dtype=np.uint64) * np.uint64(bits))).sum(-1)
        shifts = xp.arange(chunk_bytes, dtype=np.uint64) * np.uint64(8)
        by = ((chunk[..., None] >> shifts) & np.uint64(0xFF)).astype(np.uint8)
    by = xp.ascontiguousarray(by.reshape(*lead, -1))
    return by.view("<u4").astype(np.uint32, copy=False)


def _unpack(words: np.ndarray, bits: int) -> np.ndarray:
    """``(..., n)`` uint32 words -> ``(..., n * 32 / bits)`` unsigned integers."""
    xp = array_module(words)
    lead = words.shape[:-1]
    by = xp.ascontiguousarray(words, dtype="<u4").view(np.uint8)
    if bits == 8:
        return by
    span = math.lcm(bits, 8)
    per_chunk, chunk_bytes = span // bits, span // 8
    mask = (1 << bits) - 1
    if chunk_bytes == 1:  # 2 and 4 bits: shift the bytes themselves
        shifts = xp.arange(per_chunk, dtype=np.uint8) * np.uint8(bits)
        return ((by[..., None] >> shifts) & np.uint8(mask)).reshape(*lead, -1)
    b = by.reshape(*lead, -1, chunk_bytes).astype(np.uint64)
    chunk = (b << (xp.arange(chunk_bytes, dtype=np.uint64) * np.uint64(8))).sum(-1)
    shifts = xp.arange(per_chunk, dtype=np.uint64) * np.uint64(bits)
    return ((chunk[..., None] >> shifts) & np.uint64(mask)).astype(np.uint8).reshape(*lead, -1)


def _unpack_float(words: np.ndarray, bits: int, dtype, table: np.ndarray | None = None):
    """Unpacked values written straight into a float array (``table[value]`` when given).

    The same numbers as ``_unpack(words, bits)`` (looked up in ``table``), without the
    intermediate integer array: each value position of a byte is shifted out and stored in
    one strided NumPy operation.
    """
    xp = array_module(words)
    if table is not None:
        table = same_device(table, words)
    lead = words.shape[:-1]
    by = xp.ascontiguousarray(words, dtype="<u4").view(np.uint8)
    per_byte = 8 // bits if 8 % bits == 0 else 0
    if not per_byte:
        q = _unpack(words, bits)
        return (q if table is None else table[q]).astype(dtype, copy=False)
    out = xp.empty((*lead, by.shape[-1], per_byte), dtype=dtype)
    mask = np.uint8((1 << bits) - 1)
    for i in range(per_byte):
        v = by >> np.uint8(bits * i) if i else by
        if bits * (i + 1) < 8:
            v = v & mask
        out[..., i] = v if table is None else table[v]
    return out.reshape(*lead, -1)


def _to_fp8_codes(x: np.ndarray) -> np.ndarray:
    """Round to FP8 E4M3 (nearest, ties to even; saturating at 448), as MLX's ``ToFP8``."""
    xp = array_module(x)
    f = xp.ascontiguousarray(x, dtype=np.float32)
    bits = f.view(np.uint32)
    sign = bits & np.uint32(0x80000000)
    mag = bits ^ sign
    denorm = np.uint32(141 << 23)  # 2**14: adding it rounds a tiny value to the FP8 grid
    with np.errstate(over="ignore", invalid="ignore"):
        low = ((mag.view(np.float32) + denorm.view(np.float32)).view(np.uint32) - denorm).astype(
            np.uint8
        )
    odd = (mag >> np.uint32(20)) & np.uint32(1)
    rebias = np.uint32((((7 - 127) << 23) + 0x7FFFF) & 0xFFFFFFFF)
    high = ((mag + rebias + odd) >> np.uint32(20)).astype(np.uint8)
    out = xp.where(mag < np.uint32(121 << 23), low, high)
    out = xp.where(mag >= np.uint32(543 << 21), np.uint8(0x7E), out)
    return (out | (sign >> np.uint32(24)).astype(np.uint8)).astype(np.uint8)


def _fp4_codes(x: np.ndarray) -> np.ndarray:
    """The nearest FP4 E2M1 code (ties to the smaller magnitude; ``-0`` rounds to code 0)."""
    xp = array_module(x)
    m = xp.abs(x.astype(np.float32, copy=False))
    j = xp.searchsorted(same_device(_FP4_MIDPOINTS, x), m, side="left").astype(np.uint8)
    return xp.where((x < 0) & (j > 0), j + np.uint8(8), j).astype(np.uint8)


# -- argument checks -----------------------------------------------------------------------------


def _gpu_type(nt: np.dtype, ref: Any, who: str) -> None:
    """Refuse a bfloat16 result for data on a CuPy GPU (CuPy has no bfloat16 type)."""
    if nt.kind == "V" and backend.is_gpu(ref):  # (the strict stand-in refuses it too)
        raise TypeError(
            f"[{who}] a bfloat16 result (the default of the FP formats) cannot be made on the "
            "GPU: CuPy has no bfloat16 type; pass dtype=mx.float16 or dtype=mx.float32"
        )


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else ops._as(x)


def _mode_params(mode: str, group_size: int | None, bits: int | None, who: str) -> tuple:
    if mode not in _MODES:
        raise ValueError(
            f"[{who}] Invalid quantization mode '{mode}'. Valid modes are: {', '.join(_MODES)}."
        )
    gs, b = _MODES[mode]
    gs = gs if group_size is None else int(group_size)
    b = b if bits is None else int(bits)
    if mode != "affine":
        want_gs, want_bits = _MODES[mode]
        if gs != want_gs:
            raise ValueError(
                f"[{who}] {mode} quantization requires group size {want_gs} but got {gs}."
            )
        if b != want_bits:
            raise ValueError(
                f"[{who}] {mode} quantization requires bits to be {want_bits} but got {b}."
            )
    else:
        if gs not in (32, 64, 128):
            raise ValueError(
                f"[{who}] The requested group size {gs} is not supported. The supported group "
                "sizes are 32, 64, and 128."
            )
        if b not in (2, 3, 4, 5, 6, 8):
            raise ValueError(
                f"[{who}] The requested number of bits {b} is not supported. The supported bits "
                "are 2, 3, 4, 5, 6 and 8."
            )
    return gs, b


def _promote(t1: _dt.Dtype, t2: _dt.Dtype) -> _dt.Dtype:
    """MLX's promotion of two dtypes."""
    return _dt.from_np(_dt.promote(_dt.to_np(t1), _dt.to_np(t2)))


def _is_float(dtype: _dt.Dtype) -> bool:
    return _dt.issubdtype(dtype, _dt.floating)


def _mode_type(
    who: str, mode: str, scales: array, biases: array | None, out_type: Any = None
) -> _dt.Dtype:
    """MLX's ``validate_mode_with_type``: the output type, checking scales and biases."""
    if out_type is not None and not _is_float(out_type):
        raise ValueError(
            f"[{who}] Only real floating types are supported but output dtype == {out_type}."
        )
    if mode == "affine":
        if biases is None:
            raise ValueError(f"[{who}] Biases must be provided for affine quantization.")
        t = _promote(scales.dtype, biases.dtype)
        if not _is_float(t):
            raise ValueError(
                f"[{who}] Only real floating types are supported but scales.dtype() == "
                f"{scales.dtype} and biases.dtype() == {biases.dtype}."
            )
        return out_type or t
    if scales.dtype != _dt.uint8:
        raise ValueError(f"[{who}] Scale type must be uint8 but received type {scales.dtype}.")
    if biases is not None:
        raise ValueError(f"[{who}] Biases must be null for quantization mode '{mode}'.")
    return out_type or _dt.bfloat16


def _check_global_scale(who: str, mode: str, global_scale: array | None) -> None:
    if global_scale is None:
        return
    if mode != "nvfp4":
        raise ValueError(f"[{who}] Global scale is only supported for 'nvfp4' quantization mode.")
    if global_scale.size != 1:
        raise ValueError(
            f"[{who}] Global scale must be a scalar but got shape {global_scale.shape}."
        )
    if global_scale.dtype != _dt.float32:
        raise ValueError(
            f"[{who}] Global scale must have dtype float32 but got {global_scale.dtype}."
        )


def _check_quantized(
    who: str, w: array, scales: array, biases: array | None, group_size: int, bits: int
) -> None:
    if w.dtype != _dt.uint32:
        raise ValueError(f"[{who}] The weight matrix should be uint32 but received {w.dtype}")
    if biases is not None and scales.shape != biases.shape:
        raise ValueError(
            f"[{who}] Scales and biases should have the same shape. Received scales with shape "
            f"{scales.shape} and biases with {biases.shape}"
        )
    if w.ndim < 2 or scales.ndim != w.ndim or w.shape[:-2] != scales.shape[:-2]:
        raise ValueError(
            f"[{who}] Weight and scales should have the same batch shape. Received weight with "
            f"shape {w.shape}, scales with {scales.shape}."
        )
    if w.shape[-1] * 32 // bits != scales.shape[-1] * group_size:
        raise ValueError(
            f"[{who}] The shapes of the weight and scales are incompatible based on bits and "
            f"group_size. w.shape() == {w.shape} and scales.shape() == {scales.shape} with "
            f"group_size={group_size} and bits={bits}"
        )


# -- quantize / dequantize -----------------------------------------------------------------------


def _affine_quantize(w: np.ndarray, group_size: int, bits: int) -> tuple:
    xp = array_module(w)
    g = w.reshape(-1, group_size).astype(np.float32)
    n_bins = np.float32((1 << bits) - 1)
    w_max = g.max(-1, keepdims=True)
    w_min = g.min(-1, keepdims=True)
    use_min = xp.abs(w_min) > xp.abs(w_max)
    scale = xp.maximum((w_max - w_min) / n_bins, np.float32(1e-7))
    scale = xp.where(use_min, scale, -scale)
    edge = xp.where(use_min, w_min, w_max)
    q0 = xp.rint(edge / scale)
    exact = q0 != 0  # make the edge value exactly representable
    scale = xp.where(exact, edge / xp.where(exact, q0, np.float32(1)), scale)
    bias = xp.where(exact, edge, np.float32(0))
    q = xp.clip(xp.rint((g - bias) / scale), 0, n_bins).astype(np.uint32)
    lead = w.shape[:-1]
    wq = _pack(q.reshape(*lead, -1), bits)
    return wq, scale.astype(w.dtype).reshape(*lead, -1), bias.astype(w.dtype).reshape(*lead, -1)


def _fp_quantize(w: np.ndarray, group_size: int, bits: int, global_scale: np.ndarray | None):
    xp = array_module(w)
    wt = w.dtype
    g = w.reshape(-1, group_size)
    scales = xp.abs(g).max(-1, keepdims=True) / wt.type(6.0 if bits == 4 else 448.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if group_size == 16:  # nvfp4: an E4M3 scale, relative to the global scale if given
            enc = np.float32(1.0)
            if global_scale is not None:
                enc = (np.float32(448.0 * 6.0) / global_scale.astype(np.float32)).reshape(())
            codes = _to_fp8_codes(scales * enc)
            g = (g / same_device(_FP8, codes)[codes].astype(wt)) * enc
        else:  # E8M0: the power of two at or above amax / max_value (MLX's), so nothing clips
            e = xp.where(scales == 0, 0, xp.ceil(xp.log2(scales))).astype(np.int32)
            g = g / xp.power(wt.type(2.0), e).astype(wt)
            codes = (e + 127).astype(np.uint8)
    lead = w.shape[:-1]
    if bits == 4:
        wq = _pack(_fp4_codes(g).reshape(*lead, -1), 4)
    else:
        wq = _pack(_to_fp8_codes(g).reshape(*lead, -1), 8)
    return wq, codes.reshape(*lead, -1)


def quantize(
    w: array,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    *,
    global_scale: array | None = None,
    stream: Any = None,
) -> tuple:
    """Quantize the last axis of ``w`` in groups (MLX's ``mx.quantize``, bit for bit).

    Args:
        w: a floating matrix (at least 2-d) whose last axis is a multiple of ``group_size``.
        group_size: values sharing a scale (default by mode: affine 64, mxfp4 32, nvfp4 16,
            mxfp8 32).
        bits: bits per value (affine: 2, 3, 4, 5, 6 or 8, default 4; fixed by the other
            modes).
        mode: ``"affine"``, ``"mxfp4"``, ``"nvfp4"`` or ``"mxfp8"``.
        global_scale: nvfp4 only: a float32 scalar the scales are encoded relative to.
        stream: accepted for MLX compatibility.

    Returns:
        ``(w_q, scales, biases)`` for ``"affine"``, ``(w_q, scales)`` otherwise; ``w_q`` is
        uint32 of shape ``(..., K * bits / 32)``.
    """
    w = _arr(w)
    gs, b = _mode_params(mode, group_size, bits, "quantize")
    if not _is_float(w.dtype):
        raise ValueError(
            f"[quantize] Only real floating types can be quantized but w has type {w.dtype}."
        )
    if w.ndim < 2:
        raise ValueError(
            "[quantize] The matrix to be quantized must have at least 2 dimension but it has "
            f"only {w.ndim}."
        )
    if w.shape[-1] % gs:
        raise ValueError(
            "[quantize] The last dimension of the matrix needs to be divisible by the "
            f"quantization group size {gs}. However the provided matrix has shape {w.shape}"
        )
    if global_scale is not None:
        global_scale = _arr(global_scale)
    _check_global_scale("quantize", mode, global_scale)
    data = w._data
    if mode == "affine":
        return tuple(_from_value(a) for a in _affine_quantize(data, gs, b))
    gsv = None if global_scale is None else same_device(global_scale._data, data)
    return tuple(_from_value(a) for a in _fp_quantize(data, gs, b, gsv))


def _dequantize(
    w: array,
    scales: array,
    biases: array | None,
    group_size: int,
    bits: int,
    mode: str,
    out_type: _dt.Dtype,
    global_scale: array | None = None,
) -> array:
    """The dequantized matrix; differentiable in affine scales and biases."""
    nt = _dt.to_np(out_type)
    words = w._data
    _gpu_type(nt, words, "dequantize")
    xp = array_module(words)
    lead = words.shape[:-1]
    if mode == "affine":
        qf = _unpack_float(words, bits, nt).reshape(*lead, -1, group_size)
        if STATE.enabled and (scales._node is not None or biases._node is not None):  # type: ignore[union-attr]
            s = ops.expand_dims(ops.astype(scales, out_type), -1)
            b = ops.expand_dims(ops.astype(biases, out_type), -1)
            return ops.reshape(_from_value(qf) * s + b, (*lead, -1))
        qf *= scales._data.astype(nt, copy=False)[..., None]
        qf += biases._data.astype(nt, copy=False)[..., None]  # type: ignore[union-attr]
        return _from_value(qf.reshape(*lead, -1))
    vals = _unpack_float(words, bits, nt, _FP4 if bits == 4 else _FP8)
    vals = vals.reshape(*lead, -1, group_size)
    codes = scales._data
    if group_size == 16:
        sc = same_device(_FP8, codes)[codes].astype(nt)
        if global_scale is not None:
            gsv = same_device(global_scale._data, codes).reshape(())
            sc = sc * (gsv / nt.type(448.0 * 6.0)).astype(nt)
    else:
        sc = xp.power(nt.type(2.0), codes.astype(nt) - nt.type(127))
    return _from_value((vals * sc[..., None]).reshape(*lead, -1))


def dequantize(
    w: array,
    scales: array,
    biases: array | None = None,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    global_scale: array | None = None,
    dtype: _dt.Dtype | None = None,
    *,
    stream: Any = None,
) -> array:
    """Undo :func:`quantize` (MLX's ``mx.dequantize``).

    Args:
        w: the packed uint32 matrix.
        scales: the group scales (floating for affine, uint8 codes otherwise).
        biases: the affine group biases (``None`` for the other modes).
        group_size: as given to :func:`quantize`.
        bits: as given to :func:`quantize`.
        mode: the quantization mode.
        global_scale: nvfp4's global scale, if it was quantized with one.
        dtype: the output type (default: the scales' type for affine, bfloat16 otherwise).
        stream: accepted for MLX compatibility.

    Returns:
        The ``(..., K)`` floating matrix.
    """
    w, scales = _arr(w), _arr(scales)
    biases = None if biases is None else _arr(biases)
    out_type = _mode_type("dequantize", mode, scales, biases, dtype)
    gs, b = _mode_params(mode, group_size, bits, "dequantize")
    if w.dtype != _dt.uint32:
        raise ValueError("[dequantize] The matrix should be given as a uint32")
    if w.ndim < 2:
        raise ValueError(
            "[dequantize] The matrix to be dequantized must have at least 2 dimension but it "
            f"has only {w.ndim}."
        )
    if global_scale is not None:
        global_scale = _arr(global_scale)
    _check_global_scale("dequantize", mode, global_scale)
    if (
        scales.ndim != w.ndim
        or scales.shape[:-1] != w.shape[:-1]
        or (biases is not None and biases.shape != scales.shape)
        or w.shape[-1] * 32 // b != scales.shape[-1] * gs
    ):
        raise ValueError(
            "[dequantize] Shape of scales and biases does not match the matrix given the "
            f"quantization parameters. Provided matrix of shape {w.shape} and scales of shape "
            f"{scales.shape} with group_size={gs} and bits={b}."
        )
    return _dequantize(w, scales, biases, gs, b, mode, out_type, global_scale)


# -- products ------------------------------------------------------------------------------------


def _prepare(who, x, w, scales, biases, transpose, group_size, bits, mode):
    """Checked inputs of a quantized product: ``(x, w, scales, biases, gs, bits, out_type)``."""
    x, w, scales = _arr(x), _arr(w), _arr(scales)
    biases = None if biases is None else _arr(biases)
    out_type = _mode_type(who, mode, scales, biases)
    gs, b = _mode_params(mode, group_size, bits, who)
    _check_quantized(who, w, scales, biases, gs, b)
    inner = w.shape[-1] * 32 // b if transpose else w.shape[-2]
    outer = w.shape[-2] if transpose else w.shape[-1] * 32 // b
    if x.ndim == 0 or x.shape[-1] != inner:
        raise ValueError(
            f"[{who}] Last dimension of first input with shape (..., "
            f"{x.shape[-1] if x.ndim else ()}) does not match the expanded quantized matrix "
            f"({inner}, {outer}) computed from shape {w.shape} with group_size={gs}, bits={b} "
            f"and transpose={transpose}"
        )
    out_type = _promote(x.dtype, out_type) if mode == "affine" else x.dtype
    if not _is_float(out_type):
        raise ValueError(
            f"[{who}] Only real floating types are supported but x.dtype() == {x.dtype}."
        )
    if mode != "affine" and STATE.enabled and scales._node is not None:
        raise ValueError(f"[{who}] no gradient with respect to the {mode} scales (uint8 codes).")
    return x, w, scales, biases, gs, b, out_type


def _product(x: array, w_hat: array, transpose: bool) -> array:
    return ops.matmul(x, ops.swapaxes(w_hat, -1, -2) if transpose else w_hat)


def quantized_matmul(
    x: array,
    w: array,
    scales: array,
    biases: array | None = None,
    transpose: bool = True,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    *,
    stream: Any = None,
) -> array:
    """``x @ dequantize(w).T`` (``transpose=True``) or ``x @ dequantize(w)`` (MLX).

    Args:
        x: the input ``(..., K)``.
        w: the packed uint32 matrix (a batch of them broadcasts against ``x``).
        scales: its scales.
        biases: its affine biases (``None`` for the other modes).
        transpose: whether ``w`` is ``(N, K)`` (``True``) or ``(K, N)``.
        group_size: as given to :func:`quantize`.
        bits: as given to :func:`quantize`.
        mode: the quantization mode.
        stream: accepted for MLX compatibility.

    Returns:
        ``(..., N)``; the affine mode promotes ``x`` with the scales' type, the others keep
        ``x``'s type. Differentiable in ``x`` and (affine) in ``scales`` and ``biases``.
    """
    x, w, scales, biases, gs, b, out_type = _prepare(
        "quantized_matmul", x, w, scales, biases, transpose, group_size, bits, mode
    )
    w_hat = _dequantize(w, scales, biases, gs, b, mode, out_type)
    return _product(ops.astype(x, out_type), w_hat, transpose)


def _indices(idx: Any, batch: tuple) -> np.ndarray:
    """The indices on the host (an explicit copy of GPU indices: they group the rows)."""
    if idx is None:
        return np.arange(math.prod(batch), dtype=np.int64).reshape(batch)
    data = to_host(_arr(idx)._data)
    if data.dtype.kind not in "iu":
        raise ValueError(f"[gather_qmm] indices must be integers but got {data.dtype}.")
    return data.astype(np.int64)


def gather_qmm(
    x: array,
    w: array,
    scales: array,
    biases: array | None = None,
    lhs_indices: array | None = None,
    rhs_indices: array | None = None,
    transpose: bool = True,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    *,
    sorted_indices: bool = False,
    stream: Any = None,
) -> array:
    """Quantized matrix products of gathered operands (MLX's ``mx.gather_qmm``).

    ``out[i] = x_flat[lhs[i]] @ dequantize(w_flat[rhs[i]]).T`` where ``x_flat`` and
    ``w_flat`` are the batches of ``x`` ``(..., M, K)`` and ``w`` flattened, and the indices
    (default: every batch element in order) broadcast together.

    Args:
        x: the inputs ``(..., M, K)``.
        w: the packed weights ``(..., N, K * bits / 32)`` (transposed) or ``(..., K, ...)``.
        scales: their scales.
        biases: their affine biases.
        lhs_indices: indices into ``x``'s flattened batch.
        rhs_indices: indices into ``w``'s flattened batch.
        transpose: as for :func:`quantized_matmul`.
        group_size: as given to :func:`quantize`.
        bits: as given to :func:`quantize`.
        mode: the quantization mode.
        sorted_indices: a hint accepted for MLX compatibility (the result is the same).
        stream: accepted for MLX compatibility.

    Returns:
        ``indices_shape + (M, N)``.
    """
    if lhs_indices is None and rhs_indices is None:
        return quantized_matmul(x, w, scales, biases, transpose, group_size, bits, mode)
    x, w, scales, biases, gs, b, out_type = _prepare(
        "gather_qmm", x, w, scales, biases, transpose, group_size, bits, mode
    )
    if x.ndim < 2:
        x = ops.expand_dims(x, 0)
    lhs = _indices(lhs_indices, x.shape[:-2])
    rhs = _indices(rhs_indices, w.shape[:-2])
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    shape = lhs.shape
    lhs, rhs = lhs.reshape(-1), rhs.reshape(-1)
    M = x.shape[-2]
    ref = x._data

    def index(host: np.ndarray) -> array:  # host row indices, put on x's device once
        return _from_value(same_device(host, ref))

    xs = ops.take(ops.reshape(ops.astype(x, out_type), (-1, M, x.shape[-1])), index(lhs), axis=0)
    wf = _from_value(w._data.reshape(-1, *w.shape[-2:]))
    sf = ops.reshape(scales, (-1, *scales.shape[-2:]))
    bf = None if biases is None else ops.reshape(biases, (-1, *biases.shape[-2:]))
    # one product per distinct weight matrix, on the rows that use it
    order = np.argsort(rhs, kind="stable")
    experts, starts = np.unique(rhs[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    parts = []
    for i, e in enumerate(experts.tolist()):
        rows = order[bounds[i] : bounds[i + 1]]
        w_hat = _dequantize(wf[e], sf[e], None if bf is None else bf[e], gs, b, mode, out_type)
        parts.append(_product(ops.take(xs, index(rows), axis=0), w_hat, transpose))
    out = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=0)
    if len(parts) > 1 or not np.array_equal(order, np.arange(len(order))):
        out = ops.take(out, index(np.argsort(order, kind="stable")), axis=0)
    return ops.reshape(out, (*shape, M, out.shape[-1]))


def qqmm(
    x: array,
    w: array,
    scales: array | None = None,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "nvfp4",
    global_scale_x: array | None = None,
    global_scale_w: array | None = None,
    *,
    stream: Any = None,
) -> array:
    """``quantize(x) @ quantize(w).T`` with both operands in an FP mode (MLX's ``mx.qqmm``).

    ``x`` is quantized and dequantized on the fly; ``w`` is either already quantized (uint32
    with ``scales``) or a floating matrix quantized on the fly. Gradients pass straight
    through the rounding of the on-the-fly operands.

    Args:
        x: ``(..., K)`` floating inputs.
        w: ``(N, K)`` floating weights, or their packed form.
        scales: the scales of a packed ``w``.
        group_size: as for :func:`quantize`.
        bits: as for :func:`quantize`.
        mode: ``"nvfp4"`` (default), ``"mxfp8"`` or ``"mxfp4"``.
        global_scale_x: nvfp4's global scale for ``x``.
        global_scale_w: nvfp4's global scale for ``w``.
        stream: accepted for MLX compatibility.

    Returns:
        ``(..., N)`` of ``x``'s type.
    """
    who = "qqmm"
    x, w = _arr(x), _arr(w)
    if mode == "affine":
        raise ValueError(f"[{who}] affine mode is not supported; use quantized_matmul.")
    gs, b = _mode_params(mode, group_size, bits, who)
    if w.ndim > 2 or x.ndim == 0:
        raise ValueError(f"[{who}] Only 2D inputs are supported but w.ndim() == {w.ndim}.")
    for t, name in ((x, "first"), (w, "second")):
        if t.dtype != _dt.uint32 and (not _is_float(t.dtype) or t.dtype == _dt.float64):
            raise ValueError(
                f"[{who}] Only real floating types except float64 are supported but {name} "
                f"argument dtype == {t.dtype}."
            )
    gx = None if global_scale_x is None else _arr(global_scale_x)
    gw = None if global_scale_w is None else _arr(global_scale_w)
    _check_global_scale(who, mode, gx)
    _check_global_scale(who, mode, gw)
    if mode == "nvfp4" and (gx is None) != (gw is None):
        raise ValueError(
            f"[{who}] For nvfp4 mode, either both global_scale_x and global_scale_w must be "
            "provided, or neither."
        )

    def round_trip(a: array, g: array | None) -> array:
        qa = quantize(a, gs, b, mode, global_scale=g)
        a_hat = _dequantize(qa[0], qa[1], None, gs, b, mode, a.dtype, g)
        return a + ops.stop_gradient(a_hat - a)  # straight-through

    if w.dtype == _dt.uint32:
        if scales is None:
            raise ValueError(f"[{who}] Scales must be provided if second argument is quantized.")
        scales = _arr(scales)
        _check_quantized(who, w, scales, None, gs, b)
        w_hat = _dequantize(w, scales, None, gs, b, mode, x.dtype, gw)
    else:
        if x.shape[-1] != w.shape[-1]:
            raise ValueError(
                f"[{who}] Last dimension of first input with shape {x.shape} must match last "
                f"dimension of second input with shape {w.shape}."
            )
        w_hat = ops.astype(round_trip(w, gw), x.dtype)
    if x.shape[-1] != w_hat.shape[-1]:
        raise ValueError(
            f"[{who}] Last dimension of first input with shape {x.shape} does not match the "
            f"quantized matrix of shape {w_hat.shape}."
        )
    return ops.matmul(round_trip(x, gx), ops.swapaxes(w_hat, -1, -2))


def to_fp8(x: array, *, stream: Any = None) -> array:
    """Round a floating array to FP8 E4M3 codes (``uint8``), as MLX's ``mx.to_fp8``.

    Args:
        x: floating values (saturated at +-448).
        stream: accepted for MLX compatibility.

    Returns:
        The uint8 codes.
    """
    x = _arr(x)
    if not _is_float(x.dtype):
        raise ValueError(f"[to_fp8] Expected a floating point input but got {x.dtype}.")
    return _from_value(_to_fp8_codes(x._data))


def from_fp8(x: array, dtype: _dt.Dtype = _dt.bfloat16, *, stream: Any = None) -> array:
    """The values of FP8 E4M3 codes (MLX's ``mx.from_fp8``).

    Args:
        x: uint8 codes.
        dtype: the floating output type (default bfloat16).
        stream: accepted for MLX compatibility.

    Returns:
        An array of ``dtype`` shaped like ``x``.
    """
    x = _arr(x)
    if x.dtype != _dt.uint8:
        raise ValueError(f"[from_fp8] Expected a uint8 input but got {x.dtype}.")
    if not _is_float(dtype):
        raise ValueError(f"[from_fp8] Only floating output types are supported, got {dtype}.")
    nt = _dt.to_np(dtype)
    _gpu_type(nt, x._data, "from_fp8")
    return _from_value(same_device(_FP8, x._data)[x._data].astype(nt))
