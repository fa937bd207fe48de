"""Activation functions, each defined once and offered as a function and as a module.

``nn.relu(x)`` and ``nn.ReLU()(x)`` run the same function: :func:`_make_activation_module`
builds the module class from the function, taking the function's keyword arguments as
constructor arguments (``nn.LeakyReLU(negative_slope=0.2)``, ``nn.Softmax(axis=-1)``; PyTorch's
``dim=`` is accepted for ``axis=``).
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from ... import core as mx
from ...core import backend as _backend
from ...core.array import array
from ...core.extend import STATE, from_value, xp
from ..module import Module, _osetattr

__all__ = [
    "celu",
    "elu",
    "gelu",
    "gelu_approx",
    "gelu_fast_approx",
    "glu",
    "hard_shrink",
    "hard_tanh",
    "hardswish",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "prelu",
    "relu",
    "relu2",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softmin",
    "softplus",
    "softshrink",
    "softsign",
    "step",
    "tanh",
    "CELU",
    "ELU",
    "GELU",
    "GLU",
    "HardShrink",
    "Hardshrink",
    "HardTanh",
    "Hardtanh",
    "Hardswish",
    "LeakyReLU",
    "LogSigmoid",
    "LogSoftmax",
    "Mish",
    "PReLU",
    "ReLU",
    "ReLU2",
    "ReLU6",
    "SELU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softmin",
    "Softplus",
    "Softshrink",
    "Softsign",
    "Step",
    "Tanh",
]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


# -- the functions --------------------------------------------------------------------------------


def sigmoid(x: array) -> array:
    """``1 / (1 + exp(-x))``, elementwise."""
    return mx.sigmoid(x)


def relu(x: array) -> array:
    """``max(x, 0)``, elementwise (derivative 0 at 0)."""
    return mx.maximum(x, 0)


def relu2(x: array) -> array:
    """``max(x, 0) ** 2``, elementwise (MLX's ReLU squared)."""
    return mx.square(mx.maximum(x, 0))


def relu6(x: array) -> array:
    """``min(max(x, 0), 6)``, elementwise."""
    return mx.minimum(mx.maximum(x, 0), 6)


def leaky_relu(x: array, negative_slope: float = 0.01) -> array:
    """``x`` for positive ``x``, ``negative_slope * x`` otherwise.

    Args:
        x: input.
        negative_slope: slope for negative inputs.
    """
    # MLX's form: at 0 the tie sends the gradient to x (derivative 1, PyTorch's is the slope).
    return mx.maximum(x * negative_slope, x)


def elu(x: array, alpha: float = 1.0) -> array:
    """``x`` for positive ``x``, ``alpha * (exp(x) - 1)`` otherwise.

    Args:
        x: input.
        alpha: scale of the negative part.
    """
    # exp of the clipped input: exp(x) of a large positive x would overflow in the branch
    # that where() discards and poison its gradient with inf * 0. The clip is a where(), not
    # minimum(x, 0), so x = 0 keeps the derivative alpha (MLX's and PyTorch's).
    return mx.where(x > 0, x, (mx.exp(mx.where(x > 0, 0, x)) - 1) * alpha)


def selu(x: array) -> array:
    """Scaled ELU with the self-normalising constants ``alpha ~ 1.6733``, ``scale ~ 1.0507``."""
    return elu(x, _SELU_ALPHA) * _SELU_SCALE


def celu(x: array, alpha: float = 1.0) -> array:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Args:
        x: input.
        alpha: scale of the negative part.
    """
    return mx.maximum(x, 0) + (mx.exp(mx.minimum(x, 0) / alpha) - 1) * alpha


def _gelu_reference(x: array) -> array:
    e = mx.erf(x / math.sqrt(2))
    if e.dtype != x.dtype:  # the core's erf returns float64 for float16 input
        e = e.astype(x.dtype)
    return x * (1 + e) / 2


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), z >= 0: Numerical Recipes' erfcc, whose
# relative error is below 1.2e-7 everywhere, so Phi(x) = erfc(-x / sqrt 2) / 2 keeps float32
# precision in both tails (1 + erf(x) would cancel for negative x). P's coefficients, highest
# power first:
_ERFC_P = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_kernel(x):
    """``(gelu(x), gelu'(x))`` of a float32 backend array, with ufuncs over the whole array."""
    z = xp.abs(x)
    z *= _SQRT_HALF
    t = z * 0.5
    t += 1.0
    xp.reciprocal(t, out=t)
    p = t * _ERFC_P[0]
    for c in _ERFC_P[1:-1]:
        p += c
        p *= t
    p += _ERFC_P[-1]
    zz = z * z
    p -= zz
    xp.exp(p, out=p)
    p *= t  # erfc(|x| / sqrt 2)
    p *= 0.5  # Phi(-|x|)
    phi = xp.negative(zz, out=zz)
    xp.exp(phi, out=phi)
    phi *= _INV_SQRT_2PI  # the normal density at x
    # Phi(x) = 1/2 + sign(x) (1/2 - Phi(-|x|)): copysign, not a branch per element (np.where
    # on a random sign costs ten times more)
    cdf = xp.subtract(0.5, p, out=p)
    xp.copysign(cdf, x, out=cdf)
    cdf += 0.5
    y = x * cdf
    phi *= x
    phi += cdf
    return y, phi


# -- GPU: each activation and its derivative as one fused kernel (issue 22) ------------------
#
# The functions below are the arithmetic of ``(f(x), f'(x))`` written as plain expressions of
# the GPU library's namespace ``g``, which ``GpuBackend.fuse`` (``cupy.fuse``) compiles into one
# kernel; the backward pass is then one multiply. The strict stand-in runs them as they are.


def _gelu_pair_math(x, g):
    z = g.abs(x) * _SQRT_HALF
    t = 1.0 / (z * 0.5 + 1.0)
    p = t * _ERFC_P[0]
    for c in _ERFC_P[1:-1]:
        p = (p + c) * t
    p = g.exp(p + _ERFC_P[-1] - z * z) * t * 0.5  # Phi(-|x|), as _gelu_kernel
    cdf = g.copysign(0.5 - p, x) + 0.5
    return x * cdf, g.exp(-(z * z)) * _INV_SQRT_2PI * x + cdf


_TANH_K = math.sqrt(2 / math.pi)


def _gelu_approx_pair_math(x, g):
    t = g.tanh(_TANH_K * (x + 0.044715 * x * x * x))
    half = 0.5 * (1.0 + t)
    return x * half, half + 0.5 * x * (1.0 - t * t) * _TANH_K * (1.0 + 3 * 0.044715 * x * x)


def _silu_pair_math(x, g):
    s = g.tanh(x * 0.5) * 0.5 + 0.5  # sigmoid(x), without overflow
    y = x * s
    return y, s + y * (1.0 - s)


_FUSED_GPU: dict = {}
"""``(backend name, activation) -> fused kernel`` (``False`` once building or running one
failed: the composite is used from then on, after one warning)."""


def _gpu_pair(name: str, math_fn: Callable, d) -> tuple | None:
    """``(f(d), f'(d))`` of GPU array ``d`` by one fused kernel, or ``None`` (no fusing GPU
    library, or the kernel failed once)."""
    gb = _backend.GPU[0]
    if gb is None or gb.fuse is None:
        return None
    key = (gb.name, name)
    fused = _FUSED_GPU.get(key)
    if fused is None:
        g = gb.xp

        def pair(x):
            return math_fn(x, g)

        pair.__name__ = f"{name}_and_derivative"
        try:
            fused = _FUSED_GPU[key] = gb.fuse(pair)
        except Exception as e:  # noqa: BLE001 - any failure: the composite instead
            _fused_failed(key, name, e)
            return None
    if fused is False:
        return None
    try:
        y, dy = fused(d)
    except Exception as e:  # noqa: BLE001
        _fused_failed(key, name, e)
        return None
    if y.dtype != d.dtype:  # (a kernel that widened a Python float constant: d's dtype)
        y, dy = y.astype(d.dtype), dy.astype(d.dtype)
    return y, dy


def _fused_failed(key: tuple, name: str, e: Exception) -> None:
    _FUSED_GPU[key] = False
    warnings.warn(
        f"{name}: the fused GPU kernel failed ({type(e).__name__}: {e}); the composite of "
        "separate kernels is used instead",
        RuntimeWarning,
        stacklevel=4,
    )


def _pair_activation(name: str, reference: Callable, host_pair: Callable | None, gpu_math):
    """A float activation as one custom function: its forward computes ``f(x)`` and ``f'(x)``
    together (``host_pair`` on NumPy data, one fused kernel on the GPU) and its backward pass
    multiplies the cotangent by the saved ``f'(x)``. Higher-order derivatives and ``jvp`` go
    through ``reference`` (the composite), so every transform sees the same function.

    Returns ``(fast, pair)``: ``fast(x)`` applies it, ``pair(d)`` is ``(f, f')`` of backend data
    or ``None`` where no fast path serves ``d``."""
    saved: dict[int, tuple] = {}  # id of a forward's output -> (weak ref to it, f'(x))

    def pair(d):
        if not _backend.is_gpu(d):  # (NumPy data, or mx.compile's traced NumPy values)
            return None if host_pair is None else host_pair(d)
        return _gpu_pair(name, gpu_math, d)

    @mx.custom_function
    def fast(x: array) -> array:
        if STATE.enabled and x._node is not None:  # under jvp: the reference formula
            return reference(x)
        got = pair(x._data)
        if got is None:  # (a fused kernel that failed just now)
            return reference(x)
        y, dy = got
        key = id(y)
        try:
            ref = weakref.ref(y, lambda _r, key=key: saved.pop(key, None))
        except TypeError:  # an array type without weak references: recompute instead
            return from_value(y)
        saved[key] = (ref, dy)
        return from_value(y)

    @fast.vjp
    def fast_vjp(x: array, cotangent: array, output: array) -> array:
        if STATE.enabled:  # create_graph: differentiate the reference formula
            return mx.vjp(reference, [x], [cotangent])[1][0]
        got = saved.get(id(output._data))
        if got is not None and got[0]() is output._data:
            dy = got[1]
        else:
            again = pair(x._data)
            if again is None:
                return mx.vjp(reference, [x], [cotangent])[1][0]
            dy = again[1]
        return from_value(cotangent._data * dy)

    return fast, pair


_gelu_fast, _gelu_pair = _pair_activation("gelu", _gelu_reference, _gelu_kernel, _gelu_pair_math)


def _gelu_approx_reference(x: array) -> array:
    return 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


_gelu_approx_fast, _ = _pair_activation(
    "gelu_approx", _gelu_approx_reference, None, _gelu_approx_pair_math
)


def _silu_reference(x: array) -> array:
    return x * mx.sigmoid(x)


_silu_fast, _ = _pair_activation("silu", _silu_reference, None, _silu_pair_math)


def _takes_fast_path(x, dtypes: tuple, host: bool) -> bool:
    """Whether ``x`` is an array of one of ``dtypes`` that a fast path serves: on the host
    when ``host`` (NumPy's kernels), on a GPU whose library fuses kernels; never while an
    ONNX export records the graph (ONNX maps the composite's primitives)."""
    if not isinstance(x, array) or x.dtype not in dtypes or not x.size:
        return False
    if isinstance(x._data, xp.ndarray):  # (mx.compile's traced values are NumPy's too)
        if not host:
            return False
    else:
        gb = _backend.GPU[0]
        if gb is None or gb.fuse is None or not _backend.is_gpu(x._data):
            return False
    onnx = sys.modules.get("chainrule.viz.onnx")
    return onnx is None or not onnx.is_in_onnx_export()


def gelu(x: array) -> array:
    """Exact GELU: ``x * Phi(x)`` with ``Phi`` the standard normal CDF.

    float32 arrays take a fused path: ``Phi`` from a rational approximation of ``erfc``
    (relative error below 1.2e-7) in one pass of ufuncs (one fused kernel on the GPU), and a
    hand-written derivative; other types, and higher-order derivatives, use ``erf``.
    """
    if _takes_fast_path(x, (mx.float32,), host=True):
        return _gelu_fast(x)
    return _gelu_reference(x)


def gelu_approx(x: array) -> array:
    """GELU's tanh approximation (PyTorch's ``approximate="tanh"``); on the GPU, float32 and
    float64 arrays take one fused kernel for the value and its derivative."""
    d = getattr(x, "_data", None)
    if d is not None and not isinstance(d, xp.ndarray):  # (host data: the composite, at once)
        if _takes_fast_path(x, (mx.float32, mx.float64), host=False):
            return _gelu_approx_fast(x)
    return _gelu_approx_reference(x)


def gelu_fast_approx(x: array) -> array:
    """GELU approximated by ``x * sigmoid(1.702 * x)``."""
    return x * mx.sigmoid(1.702 * x)


def silu(x: array) -> array:
    """``x * sigmoid(x)`` (also called swish); on the GPU, float32 and float64 arrays take one
    fused kernel for the value and its derivative."""
    d = getattr(x, "_data", None)
    if d is not None and not isinstance(d, xp.ndarray):  # (host data: the composite, at once)
        if _takes_fast_path(x, (mx.float32, mx.float64), host=False):
            return _silu_fast(x)
    return _silu_reference(x)


def tanh(x: array) -> array:
    """Hyperbolic tangent, elementwise."""
    return mx.tanh(x)


def softplus(x: array) -> array:
    """``log(1 + exp(x))``, computed stably."""
    return mx.logaddexp(x, 0)


def softsign(x: array) -> array:
    """``x / (1 + |x|)``."""
    return x / (1 + mx.abs(x))


def log_sigmoid(x: array) -> array:
    """``log(sigmoid(x)) = -softplus(-x)``, computed stably."""
    return -softplus(-x)


def mish(x: array) -> array:
    """``x * tanh(softplus(x))``."""
    return x * mx.tanh(softplus(x))


def hardswish(x: array) -> array:
    """``x * min(max(x + 3, 0), 6) / 6``."""
    return x * mx.minimum(mx.maximum(x + 3, 0), 6) / 6


def hard_tanh(x: array, min_val: float = -1.0, max_val: float = 1.0) -> array:
    """``x`` clipped to ``[min_val, max_val]``.

    Args:
        x: input.
        min_val: lower bound.
        max_val: upper bound.
    """
    return mx.minimum(mx.maximum(x, min_val), max_val)


def softshrink(x: array, lambd: float = 0.5) -> array:
    """``x - lambd * sign(x)`` where ``|x| > lambd``, else 0.

    Args:
        x: input.
        lambd: the threshold.
    """
    return mx.where(mx.abs(x) > lambd, x - mx.sign(x) * lambd, 0)


def hard_shrink(x: array, lambd: float = 0.5) -> array:
    """``x`` where ``|x| > lambd``, else 0.

    Args:
        x: input.
        lambd: the threshold.
    """
    return mx.where(mx.abs(x) > lambd, x, 0)


def softmax(x: array, axis: int = -1) -> array:
    """``exp(x) / sum(exp(x))`` along ``axis``.

    Args:
        x: input.
        axis: the axis to normalise over.
    """
    return mx.softmax(x, axis=axis)


def softmin(x: array, axis: int = -1) -> array:
    """``softmax(-x)`` along ``axis``.

    Args:
        x: input.
        axis: the axis to normalise over.
    """
    return mx.softmax(-x, axis=axis)


def log_softmax(x: array, axis: int = -1) -> array:
    """``x - logsumexp(x)`` along ``axis``.

    Args:
        x: input.
        axis: the axis to normalise over.
    """
    return mx.log_softmax(x, axis=axis)


def step(x: array, threshold: float = 0.0) -> array:
    """1 where ``x >= threshold``, else 0 (integers; no useful gradient), as MLX.

    Args:
        x: input.
        threshold: the threshold (inclusive).
    """
    return mx.where(x >= threshold, 1, 0)


def prelu(x: array, alpha: array) -> array:
    """``max(0, x) + alpha * min(0, x)`` with a learned ``alpha`` (broadcast over ``x``).

    Args:
        x: input.
        alpha: the negative slopes.
    """
    # MLX's argument order: at 0 both ties send the gradient to x (derivative 1 + alpha).
    return mx.maximum(0, x) + alpha * mx.minimum(0, x)


def glu(x: array, axis: int = -1) -> array:
    """Gated linear unit: split ``axis`` into halves ``a, b`` and return ``a * sigmoid(b)``.

    Args:
        x: input (``axis`` must have even length).
        axis: the axis to split.
    """
    if x.shape[axis] % 2:
        raise ValueError(f"glu: axis {axis} of shape {x.shape} must have even length")
    a, b = mx.split(x, 2, axis=axis)
    return a * mx.sigmoid(b)


# -- the modules ----------------------------------------------------------------------------------


def _make_activation_module(fn: Callable, name: str) -> type:
    """A ``Module`` class applying ``fn``; its constructor takes ``fn``'s keyword arguments."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    names = tuple(p.name for p in params)
    defaults = {p.name: p.default for p in params}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Module.__init__(self)
        if "dim" in kwargs and "axis" in names:
            kwargs["axis"] = kwargs.pop("dim")
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} arguments, got {len(args)}")
        values = dict(defaults)
        values.update(zip(names, args))
        for k, v in kwargs.items():
            if k not in defaults:
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            values[k] = v
        _osetattr(self, "_kwargs", values)
        for k, v in values.items():
            _osetattr(self, k, v)

    if names:

        def __call__(self, x: array) -> array:
            return fn(x, **self._kwargs)

    else:

        def __call__(self, x: array) -> array:
            return fn(x)

    def _extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())

    doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
    args_doc = "".join(
        f"\n        {k}: see :func:`{fn.__name__}` (default {defaults[k]!r})." for k in names
    )
    cls = type(
        name,
        (Module,),
        {
            "__init__": __init__,
            "__call__": __call__,
            "_extra_repr": _extra_repr,
            "__doc__": f"Module form of :func:`{fn.__name__}`: {doc}"
            + (f"\n\n    Args:{args_doc}" if names else ""),
            "__module__": __name__,
            "__qualname__": name,
        },
    )
    return cls


Sigmoid = _make_activation_module(sigmoid, "Sigmoid")
ReLU = _make_activation_module(relu, "ReLU")
ReLU2 = _make_activation_module(relu2, "ReLU2")
ReLU6 = _make_activation_module(relu6, "ReLU6")
LeakyReLU = _make_activation_module(leaky_relu, "LeakyReLU")
ELU = _make_activation_module(elu, "ELU")
SELU = _make_activation_module(selu, "SELU")
CELU = _make_activation_module(celu, "CELU")
SiLU = _make_activation_module(silu, "SiLU")
Tanh = _make_activation_module(tanh, "Tanh")
Softplus = _make_activation_module(softplus, "Softplus")
Softsign = _make_activation_module(softsign, "Softsign")
LogSigmoid = _make_activation_module(log_sigmoid, "LogSigmoid")
Mish = _make_activation_module(mish, "Mish")
Hardswish = _make_activation_module(hardswish, "Hardswish")
HardTanh = _make_activation_module(hard_tanh, "HardTanh")
Softshrink = _make_activation_module(softshrink, "Softshrink")
HardShrink = _make_activation_module(hard_shrink, "HardShrink")
Softmax = _make_activation_module(softmax, "Softmax")
Softmin = _make_activation_module(softmin, "Softmin")
LogSoftmax = _make_activation_module(log_softmax, "LogSoftmax")
Step = _make_activation_module(step, "Step")
GLU = _make_activation_module(glu, "GLU")

# PyTorch's spellings of the same classes.
Hardtanh = HardTanh
Hardshrink = HardShrink

_GELU_APPROX = {
    "none": gelu,
    "precise": gelu_approx,
    "tanh": gelu_approx,
    "fast": gelu_fast_approx,
}


class GELU(Module):
    """Module form of :func:`gelu` and its approximations.

    Args:
        approx: ``"none"`` (exact), ``"precise"`` or ``"tanh"`` (:func:`gelu_approx`) or
            ``"fast"`` (:func:`gelu_fast_approx`). PyTorch's keyword ``approximate`` is
            accepted too.
    """

    def __init__(self, approx: str = "none", *, approximate: str | None = None) -> None:
        super().__init__()
        if approximate is not None:
            approx = approximate
        if approx not in _GELU_APPROX:
            raise ValueError(f"GELU: approx must be one of {sorted(_GELU_APPROX)}, got {approx!r}")
        self.approx = approx
        self._act = _GELU_APPROX[approx]

    def _extra_repr(self) -> str:
        return f"approx={self.approx!r}"

    def __call__(self, x: array) -> array:
        return self._act(x)


class PReLU(Module):
    """Module form of :func:`prelu` with learned slopes.

    Args:
        num_parameters: number of slopes (1, or the number of channels: the last axis).
        init: the initial slope.
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        self.weight = mx.full((num_parameters,), init)

    def _extra_repr(self) -> str:
        return f"num_parameters={self.weight.shape[0]}"

    def __call__(self, x: array) -> array:
        return prelu(x, self["weight"])
