"""PyTorch's short-time Fourier transforms, ``stft`` and ``istft``, from chainrule's ops.

Frames are gathered with one index matrix, windowed and transformed by ``mx.fft``; the inverse
overlap-adds with a scatter-add and divides by the summed squared window (PyTorch's NOLA
normalisation). Every step is differentiable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import chainrule.core as mx

from . import backend as _backend
from . import tensor_functions as _tf
from .array import array

_const = _tf.const  # NumPy data as it is, GPU data where it is


def _window(
    window: array | None, win_length: int, n_fft: int, dtype: Any, who: str, ref: array
) -> array:
    if window is None:  # ones on the device of the signal ``ref``
        ones = np.ones((win_length,), np.dtype(dtype.name))
        w = _const(_backend.same_device(ones, ref._data))
    else:
        if window.ndim != 1 or window.shape[0] != win_length:
            raise RuntimeError(
                f"{who}: expected a 1D window tensor of size equal to win_length={win_length}, "
                f"but got window with size {tuple(window.shape)}"
            )
        w = window
    left = (n_fft - win_length) // 2
    if left or n_fft - win_length - left:
        w = mx.pad(w, [(left, n_fft - win_length - left)])
    return w


def stft(
    input: array,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: array | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    normalized: bool = False,
    onesided: bool | None = None,
    return_complex: bool | None = None,
) -> array:
    """Short-time Fourier transform of a 1-D signal or a batch of them (PyTorch's layout:
    ``(..., n_fft // 2 + 1, n_frames)`` complex, or a trailing (real, imag) dimension)."""
    if return_complex is None and input._data.dtype.kind != "c":
        raise RuntimeError(
            "stft requires the return_complex parameter be given for real inputs, and will "
            "further require that return_complex=True in a future PyTorch release."
        )
    if input.ndim not in (1, 2):
        raise RuntimeError(f"stft: expected a 1D or 2D tensor, got shape {tuple(input.shape)}")
    hop = n_fft // 4 if hop_length is None else int(hop_length)
    win = n_fft if win_length is None else int(win_length)
    if not 0 < win <= n_fft or hop <= 0:
        raise RuntimeError(
            f"stft: expected 0 < win_length <= n_fft and hop_length > 0, got n_fft={n_fft}, "
            f"hop_length={hop}, win_length={win}"
        )
    x = input if input.ndim == 2 else mx.expand_dims(input, 0)
    if x._data.dtype.kind not in "fc":
        x = mx.astype(x, mx.float32)
    if center:
        pad = n_fft // 2
        modes = {
            "reflect": "reflect",
            "constant": "constant",
            "replicate": "edge",
            "circular": "wrap",
        }
        if pad_mode not in modes:
            raise RuntimeError(f"stft: pad_mode {pad_mode!r} is not supported")
        if modes[pad_mode] == "reflect":
            n = x.shape[-1]
            idx = np.concatenate([np.arange(pad, 0, -1), np.arange(n), n - 2 - np.arange(pad)])
            x = mx.take(x, _const(idx), axis=1)
        elif modes[pad_mode] == "wrap":
            n = x.shape[-1]
            x = mx.take(x, _const(np.arange(-pad, n + pad) % n), axis=1)
        else:
            x = mx.pad(x, [(0, 0), (pad, pad)], mode=modes[pad_mode])
    length = x.shape[-1]
    if n_fft > length:
        raise RuntimeError(f"stft: n_fft={n_fft} is larger than the (padded) input length {length}")
    frames = 1 + (length - n_fft) // hop
    idx = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
    seg = mx.take(x, _const(idx), axis=1)  # (B, frames, n_fft)
    real_dtype = mx.float64 if x._data.dtype in (np.float64, np.complex128) else mx.float32
    w = _window(window, win, n_fft, real_dtype, "stft", x)
    seg = seg * w
    complex_input = x._data.dtype.kind == "c" or (
        window is not None and window._data.dtype.kind == "c"
    )
    one = (not complex_input) if onesided is None else onesided
    spec = mx.fft.rfft(seg, axis=-1) if one else mx.fft.fft(seg, axis=-1)
    if normalized:
        spec = spec * (1.0 / np.sqrt(n_fft))
    spec = mx.swapaxes(spec, -1, -2)  # (B, freq, frames)
    if input.ndim == 1:
        spec = spec[0]
    if return_complex:
        return spec
    return mx.stack([mx.real(spec), mx.imag(spec)], axis=-1)


def istft(
    input: array,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: array | None = None,
    center: bool = True,
    normalized: bool = False,
    onesided: bool | None = None,
    length: int | None = None,
    return_complex: bool = False,
) -> array:
    """The inverse of ``stft`` (overlap-add, divided by the summed squared window)."""
    if input._data.dtype.kind != "c":
        raise RuntimeError("istft requires a complex-valued input tensor")
    spec = input if input.ndim == 3 else mx.expand_dims(input, 0)
    hop = n_fft // 4 if hop_length is None else int(hop_length)
    win = n_fft if win_length is None else int(win_length)
    frames = spec.shape[-1]
    one = spec.shape[-2] != n_fft if onesided is None else onesided
    if normalized:
        spec = spec * np.sqrt(n_fft)
    seg = mx.swapaxes(spec, -1, -2)  # (B, frames, freq)
    if one:
        if return_complex:
            raise RuntimeError("istft: cannot have onesided output when return_complex=True")
        seg = mx.fft.irfft(seg, n=n_fft, axis=-1)
    else:
        seg = mx.fft.ifft(seg, axis=-1)
        if not return_complex:
            seg = mx.real(seg)
    real_dtype = mx.float64 if input._data.dtype == np.complex128 else mx.float32
    w = _window(window, win, n_fft, real_dtype, "istft", input)
    seg = seg * w
    total = n_fft + hop * (frames - 1)
    idx = (np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]).reshape(-1)
    b = seg.shape[0]
    out = mx.zeros((b, total), dtype=seg.dtype, stream=_tf.stream_of(seg))
    idx = _backend.same_device(idx, seg._data)  # on the signal's device
    out = out.at[:, _const(idx)].add(mx.reshape(seg, (b, -1)))
    wd = w._data
    env = _backend.array_module(wd).zeros(total)  # the summed squared window, on w's device
    _backend.scatter_add(
        env, _backend.same_device(idx, wd), np.tile(wd.astype(np.float64) ** 2, frames)
    )
    start = n_fft // 2 if center else 0
    end = total - n_fft // 2 if center else total
    if length is not None:
        end = start + int(length)
    env_c = env[start:end]
    if bool(np.any(np.abs(env_c) < 1e-11)):
        raise RuntimeError("istft: window overlap add min: 0 (the window fails the NOLA check)")
    out = out[:, start:end] / _const(env_c.astype(np.dtype(real_dtype.name)))
    if length is not None and out.shape[-1] < length:
        out = mx.pad(out, [(0, 0), (0, length - out.shape[-1])])
    return out[0] if input.ndim == 2 else out
