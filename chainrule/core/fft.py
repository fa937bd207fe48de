"""``mx.fft``: discrete Fourier transforms with MLX's names, arguments and gradients.

One primitive, ``fft``, does every transform on the sizes it is given (``params``: the
transformed ``axes``, negative so that ``vmap``'s leading batch axis leaves them in place,
``inverse``, ``real``, and ``n``, the output length of the last axis of an inverse real
transform). The public functions crop or zero-pad the input to ``n``/``s`` with the op table's
slicing and padding, cast it (float32 and smaller types to complex64/float32, float64 to
complex128/float64) and scale the result for ``norm``, so all of that differentiates through
the table's own rules.

The VJP of a transform is the adjoint transform of the cotangent, as MLX's ``FFT::vjp``: a
forward complex transform's is ``N * ifftn(g)``, an inverse one's ``fftn(g) / N``; the real
transforms' account for the halved spectrum (the bins that stand for two conjugate bins are
halved before ``irfftn`` or doubled after ``rfftn``). The rules call the primitive again, so
they differentiate to any order, and ``jvp`` (two reverse passes) gives the transform of the
tangent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import ops
from .array import _from_value, array
from .backend import same_device as _same_device
from .backend import xp
from .ops import _as, _rec, defprim

_NORMS = ("backward", "ortho", "forward")


def _kernel(x, axes: tuple, inverse: bool, real: bool, n: int):
    if real and inverse:
        s = [x.shape[a] for a in axes[:-1]] + [n]
        return xp.fft.irfftn(x, s=s, axes=axes)
    if real:
        return xp.fft.rfftn(x, axes=axes)
    return (xp.fft.ifftn if inverse else xp.fft.fftn)(x, axes=axes)


def _halving_mask(bins: int, real_len: int, axis: int, dtype, middle: float, ends: float):
    """``middle`` on the bins that stand for a conjugate pair, ``ends`` on DC (and Nyquist)."""
    idx = xp.arange(bins)
    last = bins - 1 + (real_len % 2)
    m = xp.where((idx > 0) & (idx < last), middle, ends).astype(dtype)
    return m.reshape((bins,) + (1,) * (-axis - 1))


def _real_dtype(d):
    return xp.float64 if d in (xp.complex128, xp.float64) else xp.float32


def _fft_vjp(g, ans, x, axes, inverse, real, n):
    if real and inverse:
        # x: the half spectrum; g: real, shaped like the output
        count = math.prod(g.shape[a] for a in axes)
        last = axes[-1]
        mask = _halving_mask(
            x.shape[last], g.shape[last], last, _real_dtype(g._data.dtype), 2 / count, 1 / count
        )
        mask = _from_value(_same_device(mask, g._data))  # on the cotangent's device
        return _fft(g, axes, False, True, 0) * mask
    if real:
        count = math.prod(x.shape[a] for a in axes)
        last = axes[-1]
        mask = _halving_mask(
            g.shape[last], x.shape[last], last, _real_dtype(g._data.dtype), 0.5, 1.0
        )
        mask = _from_value(_same_device(mask, g._data))  # on the cotangent's device
        return _fft(g * mask, axes, True, True, x.shape[last]) * float(count)
    count = math.prod(x.shape[a] for a in axes)
    if inverse:
        return _fft(g, axes, False, False, 0) * (1.0 / count)
    return _fft(g, axes, True, False, 0) * float(count)


def _fft_batch(args, params, ex_ndim):
    ((x, nd),) = args
    return _fft(x, **params)  # the axes are negative: the leading batch axis leaves them be


_FFT = defprim("fft", _fft_vjp, batch=_fft_batch)


def _fft(x: array, axes: tuple, inverse: bool, real: bool, n: int) -> array:
    """The primitive on an input already cropped/padded and cast (``axes`` negative)."""
    out = _kernel(x._data, axes, inverse, real, n)
    return _rec(_FFT, out, (x,), {"axes": axes, "inverse": inverse, "real": real, "n": n})


def _check_norm(norm: str, who: str) -> None:
    if norm not in _NORMS:
        raise ValueError(f"{who}: norm must be 'backward', 'ortho' or 'forward', got {norm!r}")


def _cast(a: array, real_input: bool) -> array:
    """The transform's input type: complex64/float32, or complex128/float64 from 64-bit input."""
    wide = a._data.dtype in (xp.float64, xp.complex128)
    if real_input:
        return ops.astype(a, xp.float64 if wide else xp.float32)
    return ops.astype(a, xp.complex128 if wide else xp.complex64)


def _resize(a: array, shape: tuple) -> array:
    """``a`` cropped and zero-padded (at the end of each axis) to ``shape``."""
    if a.shape == shape:
        return a
    if any(s < d for s, d in zip(shape, a.shape)):
        a = a[tuple(slice(0, min(s, d)) for s, d in zip(shape, a.shape))]
    if any(s > d for s, d in zip(shape, a.shape)):
        a = ops.pad(a, [(0, max(s - d, 0)) for s, d in zip(shape, a.shape)])
    return a


def _fftn_impl(a, s, axes, real: bool, inverse: bool, norm: str, who: str) -> array:
    a = _as(a)
    _check_norm(norm, who)
    if a.ndim < 1:
        raise ValueError(f"{who}: needs an array with at least one dimension, got shape ()")
    if axes is None:
        axes = tuple(range(a.ndim)) if s is None else tuple(range(a.ndim - len(s), a.ndim))
    elif isinstance(axes, int):
        axes = (axes,)
    axes = tuple(int(ax) for ax in axes)
    for ax in axes:
        if not -a.ndim <= ax < a.ndim:
            raise ValueError(f"{who}: axis {ax} is out of range for an array of shape {a.shape}")
    neg = tuple(ax % a.ndim - a.ndim for ax in axes)
    if len(set(neg)) != len(neg):
        raise ValueError(f"{who}: axes {axes} repeat an axis")
    if not axes:
        return a
    if s is None:
        s = [a.shape[ax] for ax in neg]
        if real and inverse:
            s[-1] = (s[-1] - 1) * 2
    else:
        s = [int(v) for v in ([s] if isinstance(s, int) else s)]
        if len(s) != len(axes):
            raise ValueError(f"{who}: s={tuple(s)} and axes={axes} have different lengths")
    if any(v <= 0 for v in s):
        raise ValueError(f"{who}: invalid output size {tuple(s)} requested")
    in_shape = list(a.shape)
    for ax, v in zip(neg, s):
        in_shape[ax] = v
    if real and inverse:
        in_shape[neg[-1]] = s[-1] // 2 + 1
    x = _cast(_resize(a, tuple(in_shape)), real and not inverse)
    out = _fft(x, neg, inverse, real, s[-1] if real and inverse else 0)
    count = math.prod(s)
    if norm == "ortho":
        scale = math.sqrt(count) if inverse else 1.0 / math.sqrt(count)
    elif norm == "forward":
        scale = float(count) if inverse else 1.0 / count
    else:
        scale = 1.0
    return out if scale == 1.0 else out * scale


def fft(a, n: int | None = None, axis: int = -1, norm: str = "backward", stream=None) -> array:
    """One-dimensional discrete Fourier transform along ``axis``.

    Args:
        a: the input (cast to complex64, or complex128 when 64-bit).
        n: the length to crop or zero-pad the axis to (default: its length).
        axis: the axis to transform.
        norm: ``"backward"`` (no scaling), ``"ortho"`` or ``"forward"``.
        stream: accepted for MLX compatibility.
    """
    return _fftn_impl(a, None if n is None else [n], [axis], False, False, norm, "fft")


def ifft(a, n: int | None = None, axis: int = -1, norm: str = "backward", stream=None) -> array:
    """One-dimensional inverse discrete Fourier transform along ``axis`` (see ``fft``)."""
    return _fftn_impl(a, None if n is None else [n], [axis], False, True, norm, "ifft")


def rfft(a, n: int | None = None, axis: int = -1, norm: str = "backward", stream=None) -> array:
    """Transform of a real input: the ``n // 2 + 1`` non-negative frequencies (see ``fft``)."""
    return _fftn_impl(a, None if n is None else [n], [axis], True, False, norm, "rfft")


def irfft(a, n: int | None = None, axis: int = -1, norm: str = "backward", stream=None) -> array:
    """Inverse of ``rfft``: a real output of length ``n`` (default ``2 * (a.shape[axis] - 1)``).

    Args:
        a: the half spectrum.
        n: the output length; the input is cropped or padded to ``n // 2 + 1`` bins.
        axis: the axis to transform.
        norm: ``"backward"``, ``"ortho"`` or ``"forward"``.
        stream: accepted for MLX compatibility.
    """
    return _fftn_impl(a, None if n is None else [n], [axis], True, True, norm, "irfft")


def fft2(
    a, s: Sequence[int] | None = None, axes=(-2, -1), norm: str = "backward", stream=None
) -> array:
    """Two-dimensional discrete Fourier transform over ``axes`` (sizes ``s``)."""
    return _fftn_impl(a, s, axes, False, False, norm, "fft2")


def ifft2(
    a, s: Sequence[int] | None = None, axes=(-2, -1), norm: str = "backward", stream=None
) -> array:
    """Two-dimensional inverse discrete Fourier transform over ``axes`` (sizes ``s``)."""
    return _fftn_impl(a, s, axes, False, True, norm, "ifft2")


def rfft2(
    a, s: Sequence[int] | None = None, axes=(-2, -1), norm: str = "backward", stream=None
) -> array:
    """Two-dimensional transform of a real input (the last axis keeps ``s[-1] // 2 + 1``)."""
    return _fftn_impl(a, s, axes, True, False, norm, "rfft2")


def irfft2(
    a, s: Sequence[int] | None = None, axes=(-2, -1), norm: str = "backward", stream=None
) -> array:
    """Inverse of ``rfft2``: a real output of shape ``s`` over ``axes``."""
    return _fftn_impl(a, s, axes, True, True, norm, "irfft2")


def fftn(
    a, s: Sequence[int] | None = None, axes=None, norm: str = "backward", stream=None
) -> array:
    """N-dimensional discrete Fourier transform.

    Args:
        a: the input.
        s: sizes to crop or zero-pad the transformed axes to.
        axes: the axes (default: the last ``len(s)`` axes, or all of them).
        norm: ``"backward"``, ``"ortho"`` or ``"forward"``.
        stream: accepted for MLX compatibility.
    """
    return _fftn_impl(a, s, axes, False, False, norm, "fftn")


def ifftn(
    a, s: Sequence[int] | None = None, axes=None, norm: str = "backward", stream=None
) -> array:
    """N-dimensional inverse discrete Fourier transform (see ``fftn``)."""
    return _fftn_impl(a, s, axes, False, True, norm, "ifftn")


def rfftn(
    a, s: Sequence[int] | None = None, axes=None, norm: str = "backward", stream=None
) -> array:
    """N-dimensional transform of a real input (the last axis keeps ``s[-1] // 2 + 1``)."""
    return _fftn_impl(a, s, axes, True, False, norm, "rfftn")


def irfftn(
    a, s: Sequence[int] | None = None, axes=None, norm: str = "backward", stream=None
) -> array:
    """Inverse of ``rfftn``: a real output of shape ``s`` (the last axis defaults to
    ``2 * (a.shape[axes[-1]] - 1)``)."""
    return _fftn_impl(a, s, axes, True, True, norm, "irfftn")


def _shift(a, axes, sign: int, who: str) -> array:
    a = _as(a)
    if axes is None:
        axes = tuple(range(a.ndim))
    elif isinstance(axes, int):
        axes = (axes,)
    axes = tuple(int(ax) for ax in axes)
    for ax in axes:
        if not -a.ndim <= ax < a.ndim:
            raise ValueError(f"{who}: axis {ax} is out of range for an array of shape {a.shape}")
    if a.size == 0 or not axes:
        return a
    shifts = tuple(sign * (a.shape[ax] // 2) for ax in axes)
    return ops.roll(a, shifts, axes)


def fftshift(a, axes=None, stream=None) -> array:
    """Move the zero frequency to the middle of ``axes`` (default: every axis)."""
    return _shift(a, axes, 1, "fftshift")


def ifftshift(a, axes=None, stream=None) -> array:
    """Undo ``fftshift`` (for odd lengths the two differ by one place)."""
    return _shift(a, axes, -1, "ifftshift")


def _freq_check(n: int, d: float, who: str) -> None:
    if n <= 0:
        raise ValueError(f"{who}: n must be positive, got {n}")
    if d == 0:
        raise ValueError(f"{who}: d must not be zero, got {d}")


def fftfreq(n: int, d: float = 1.0, stream=None) -> array:
    """The sample frequencies of an ``n``-point ``fft`` with sample spacing ``d`` (float32)."""
    _freq_check(n, d, "fftfreq")
    return _from_value(xp.fft.fftfreq(n, d).astype(xp.float32))


def rfftfreq(n: int, d: float = 1.0, stream=None) -> array:
    """The sample frequencies of an ``n``-point ``rfft`` with sample spacing ``d`` (float32)."""
    _freq_check(n, d, "rfftfreq")
    return _from_value(xp.fft.rfftfreq(n, d).astype(xp.float32))


__all__ = [
    "fft",
    "ifft",
    "rfft",
    "irfft",
    "fft2",
    "ifft2",
    "rfft2",
    "irfft2",
    "fftn",
    "ifftn",
    "rfftn",
    "irfftn",
    "fftshift",
    "ifftshift",
    "fftfreq",
    "rfftfreq",
]
