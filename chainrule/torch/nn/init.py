"""``torch.nn.init``: PyTorch's in-place initialisers (``nn.init.xavier_uniform_(w)``).

Each one rebinds the array's handle to new values (``array._set_value``), so a parameter
stays the same object (and stays a ``requires_grad`` leaf) and graphs recorded earlier keep
the old values. Draws are PyTorch's (``chainrule.core.torch_generator``), from the default
generator (``torch.manual_seed``) or a ``generator``, in the tensor's dtype. Fans follow
PyTorch: ``fan_in = shape[1] * prod(shape[2:])``, ``fan_out = shape[0] * prod(shape[2:])``,
which is exact for ``chainrule.torch.nn``'s convolution weights (PyTorch's
``(out, in/groups, *k)`` layout).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule.core import backend as _backend
from chainrule.core.array import array

from .._random import _stream

__all__ = [
    "calculate_gain",
    "constant_",
    "dirac_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _dtype_of(tensor: Any) -> np.dtype:
    if not isinstance(tensor, array):
        raise TypeError(f"nn.init: expected a chainrule array, got {type(tensor).__name__}")
    return tensor._data.dtype


def _uniform(generator: Any, low: float, high: float, tensor: array, shape=None) -> np.ndarray:
    """``uniform_(low, high)`` of a new tensor of ``tensor``'s dtype: PyTorch's draws."""
    shape = tuple(tensor.shape) if shape is None else shape
    return _stream(generator).uniform(shape, _dtype_of(tensor), low, high)


def _normal(generator: Any, mean: float, std: float, tensor: array, shape=None) -> np.ndarray:
    """``normal_(mean, std)`` of a new tensor of ``tensor``'s dtype: PyTorch's draws."""
    shape = tuple(tensor.shape) if shape is None else shape
    return _stream(generator).normal(shape, _dtype_of(tensor), mean, std)


def _fill(tensor: array, values: np.ndarray) -> array:
    if not isinstance(tensor, array):
        raise TypeError(f"nn.init: expected a chainrule array, got {type(tensor).__name__}")
    data = values if _backend.is_gpu(values) else np.asarray(values)
    data = data.astype(tensor._data.dtype, copy=False)
    # the values land on the tensor's device, whichever device drew them
    tensor._set_value(_backend.to_kind(data, "gpu" if _backend.is_gpu(tensor._data) else "cpu"))
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gain for a nonlinearity.

    Args:
        nonlinearity: ``"linear"``, ``"conv2d"``, ``"sigmoid"``, ``"tanh"``, ``"relu"``,
            ``"leaky_relu"``, ``"selu"``...
        param: the negative slope of ``leaky_relu`` (0.01 by default).

    Returns:
        The gain.
    """
    linear = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d"}
    linear |= {"conv_transpose3d", "sigmoid"}
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(tensor: array, who: str) -> tuple[int, int]:
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"{who}: fans need at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def uniform_(tensor: array, a: float = 0.0, b: float = 1.0, generator: Any = None) -> array:
    """Fill with draws from ``U(a, b)``.

    Args:
        tensor: the array to fill.
        a: the lower bound.
        b: the upper bound.
        generator: a ``chainrule.torch.Generator`` (the global state by default).

    Returns:
        ``tensor``.
    """
    return _fill(tensor, _uniform(generator, a, b, tensor))


def normal_(tensor: array, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> array:
    """Fill with draws from ``N(mean, std^2)``.

    Args:
        tensor: the array to fill.
        mean: the mean.
        std: the standard deviation.
        generator: a ``chainrule.torch.Generator`` (the global state by default).

    Returns:
        ``tensor``.
    """
    return _fill(tensor, _normal(generator, mean, std, tensor))


def trunc_normal_(
    tensor: array,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Any = None,
) -> array:
    """Fill with ``N(mean, std^2)`` truncated to ``[a, b]``, by PyTorch's method (2.13):
    normal draws redrawn where they fall outside when the cut keeps more than 30% of the
    mass, else uniform proposals on ``[a, b]`` accepted against the normal density.

    Args:
        tensor: the array to fill.
        mean: the mean.
        std: the standard deviation.
        a: the lower cut (absolute, as in PyTorch).
        b: the upper cut.
        generator: a ``chainrule.torch.Generator`` (the global state by default).

    Returns:
        ``tensor``.
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    d = _dtype_of(tensor)
    one = d.type
    if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
        lo, hi = float(one(a)), float(one(b))
        out = _normal(generator, mean, std, tensor)
        while True:
            bad = (out < lo) | (out > hi)
            if not bad.any():
                break
            out = np.where(bad, _normal(generator, mean, std, tensor), out)
        return _fill(tensor, out)
    mode = max(a, min(mean, b))
    log_peak = -0.5 * ((mode - mean) / std) ** 2

    def log_density(x: np.ndarray) -> np.ndarray:  # (in the tensor's dtype, op by op)
        return ((((x - one(mean)) / one(std)) ** 2) * one(-0.5)) - one(log_peak)

    out = _uniform(generator, a, b, tensor)
    pending = np.log(_uniform(generator, 0.0, 1.0, tensor)) > log_density(out)
    while pending.any():
        candidates = _uniform(generator, a, b, tensor)
        out = np.where(pending, candidates, out)
        accept = np.log(_uniform(generator, 0.0, 1.0, tensor)) > log_density(candidates)
        pending = np.where(pending, accept, pending)
    return _fill(tensor, out)


def constant_(tensor: array, val: float) -> array:
    """Fill with ``val``."""
    return _fill(tensor, np.full(tensor.shape, val))


def ones_(tensor: array) -> array:
    """Fill with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor: array) -> array:
    """Fill with zeros."""
    return constant_(tensor, 0.0)


def eye_(tensor: array) -> array:
    """Fill a matrix with the identity."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: expected a matrix, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: array, groups: int = 1) -> array:
    """Fill a PyTorch-layout convolution weight ``(C_out, C_in, *kernel)`` with an identity."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: expected 3 to 5 dimensions, got shape {tensor.shape}")
    out = np.zeros(tensor.shape)
    per = tensor.shape[0] // groups
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for i in range(min(per, tensor.shape[1])):
            out[(g * per + i, i, *centre)] = 1.0
    return _fill(tensor, out)


def xavier_uniform_(tensor: array, gain: float = 1.0, generator: Any = None) -> array:
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(tensor, "xavier_uniform_")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: array, gain: float = 1.0, generator: Any = None) -> array:
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _default_bound(fan_in: int) -> float:
    """The bound of ``kaiming_uniform_(w, a=sqrt(5))``, PyTorch's default for linear and
    convolution weights: ``1/sqrt(fan_in)`` but for the last bits, which float32 bounds keep
    (computed as :func:`kaiming_uniform_` computes it; 0 for no inputs)."""
    if fan_in == 0:
        return 0.0
    return math.sqrt(3.0) * (calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_in))


def _kaiming_std(tensor, a, mode, nonlinearity, who) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, who)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: array,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> array:
    """He uniform: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)``.

    Args:
        tensor: the array to fill.
        a: the negative slope of the rectifier that follows (for ``leaky_relu``).
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: the nonlinearity that follows.
        generator: a ``chainrule.torch.Generator`` (the global state by default).

    Returns:
        ``tensor``.
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: array,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> array:
    """He normal: ``N(0, std^2)`` with ``std = gain / sqrt(fan)``.

    Args:
        tensor: the array to fill.
        a: the negative slope of the rectifier that follows (for ``leaky_relu``).
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: the nonlinearity that follows.
        generator: a ``chainrule.torch.Generator`` (the global state by default).

    Returns:
        ``tensor``.
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: array, gain: float = 1.0, generator: Any = None) -> array:
    """Fill with a (semi-)orthogonal matrix (trailing dimensions flattened), times ``gain``."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: expected at least 2 dimensions, got shape {tensor.shape}")
    rows = tensor.shape[0]
    cols = tensor.size // rows
    flat = _normal(generator, 0.0, 1.0, tensor, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
