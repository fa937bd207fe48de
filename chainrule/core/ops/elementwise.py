"""Elementwise primitives (unary, binary, ``where``, casts) and their composites."""

from __future__ import annotations

import math
from typing import Any

from .. import backend as _backend
from .. import dtypes as _dt
from ..array import STATE, Node, _from_value, array
from ..backend import as_array as _as_array
from ..backend import host_scalars as _host_scalars
from ..backend import xp
from ..tracing import kernel
from .table import (
    _ARRAYS,
    _binary,
    _elementwise_rule,
    _erf_kernel,
    _erfinv_kernel,
    _float_kernel,
    _operand,
    _sigmoid_fast,
    _unary,
    _xpsigmoid,
    constant_maker,
    defprim,
    export,
    pass_rule,
    value_branch,
)


def _real_only(name: str, fn):
    """A kernel that refuses complex inputs with MLX's ValueError (no silent real part)."""

    def kernel(x):
        if x.dtype.kind == "c":
            raise ValueError(f"{name}: complex inputs are not supported, got {x.dtype}")
        return fn(x)

    return kernel


def _widened(fn):
    """A kernel that computes half-precision inputs in float32 and rounds once at the end."""

    def kernel(x):
        if x.dtype.kind in "fV" and x.dtype.itemsize < 4:  # float16, bfloat16
            return fn(x.astype(xp.float32)).astype(x.dtype)
        return fn(x)

    return kernel


negative = _unary("negative", xp.negative, lambda g, ans, x: -g)
# abs, conj, real and imag are not holomorphic: their rules are written for complex inputs
# directly (the gradient is d/dRe + i d/dIm, as MLX and PyTorch define it).
abs = _unary("abs", xp.abs, lambda g, ans, x: g * sign(x), method=True, holomorphic=False)
sign: Any = _unary("sign", xp.sign)
square = _unary("square", xp.square, lambda g, ans, x: g * (x * 2), method=True)
sqrt = _unary("sqrt", _float_kernel(xp.sqrt), lambda g, ans, x: g * 0.5 / ans, method=True)
rsqrt = _unary(
    "rsqrt",
    _float_kernel(lambda x: 1.0 / xp.sqrt(x)),
    lambda g, ans, x: g * -0.5 * ans / x,
    method=True,
)
reciprocal = _unary(
    "reciprocal", _float_kernel(xp.reciprocal), lambda g, ans, x: -g * ans * ans, method=True
)
exp = _unary("exp", _float_kernel(xp.exp), lambda g, ans, x: g * ans, method=True)
expm1 = _unary(
    "expm1", _real_only("expm1", _float_kernel(xp.expm1)), lambda g, ans, x: g * (ans + 1)
)
log = _unary("log", _float_kernel(xp.log), lambda g, ans, x: g / x, method=True)
log1p = _unary("log1p", _float_kernel(xp.log1p), lambda g, ans, x: g / (x + 1), method=True)
sin = _unary("sin", _float_kernel(xp.sin), lambda g, ans, x: g * cos(x), method=True)
cos: Any = _unary("cos", _float_kernel(xp.cos), lambda g, ans, x: -g * sin(x), method=True)
tan = _unary("tan", _float_kernel(xp.tan), lambda g, ans, x: g * (ans * ans + 1))
arcsin = _unary("arcsin", _float_kernel(xp.arcsin), lambda g, ans, x: g * rsqrt(1 - x * x))
arccos = _unary("arccos", _float_kernel(xp.arccos), lambda g, ans, x: -g * rsqrt(1 - x * x))
arctan = _unary("arctan", _float_kernel(xp.arctan), lambda g, ans, x: g / (x * x + 1))
sinh = _unary("sinh", _float_kernel(xp.sinh), lambda g, ans, x: g * cosh(x))
cosh: Any = _unary("cosh", _float_kernel(xp.cosh), lambda g, ans, x: g * sinh(x))
tanh = _unary("tanh", _float_kernel(xp.tanh), lambda g, ans, x: g * (1 - ans * ans), method=True)
arcsinh = _unary("arcsinh", _float_kernel(xp.arcsinh), lambda g, ans, x: g * rsqrt(x * x + 1))
arccosh = _unary("arccosh", _float_kernel(xp.arccosh), lambda g, ans, x: g * rsqrt(x * x - 1))
arctanh = _unary("arctanh", _float_kernel(xp.arctanh), lambda g, ans, x: g / (1 - x * x))
_sigmoid_general = _real_only("sigmoid", _float_kernel(_widened(_xpsigmoid)))


def _sigmoid_kernel(x):
    out = _sigmoid_fast(x)
    return _sigmoid_general(x) if out is None else out


sigmoid = _unary(
    "sigmoid",
    _sigmoid_kernel,
    lambda g, ans, x: g * ans * (1 - ans),
    method=True,
)
erf = _unary(
    "erf",
    _real_only("erf", _float_kernel(_erf_kernel)),
    lambda g, ans, x: g * (2.0 / math.sqrt(math.pi)) * exp(-(x * x)),
)
erfinv = _unary(
    "erfinv",
    _real_only("erfinv", _float_kernel(_erfinv_kernel)),
    lambda g, ans, x: g * (math.sqrt(math.pi) / 2.0) * exp(ans * ans),
)
degrees = _unary(
    "degrees",
    _float_kernel(lambda x: x * x.dtype.type(180.0 / math.pi)),
    lambda g, ans, x: g * (180.0 / math.pi),
)
radians = _unary(
    "radians",
    _float_kernel(lambda x: x * x.dtype.type(math.pi / 180.0)),
    lambda g, ans, x: g * (math.pi / 180.0),
)
floor = _unary("floor", xp.floor)
trunc = _unary("trunc", lambda x: x if x.dtype.kind in "biu" else xp.trunc(x))
ceil = _unary("ceil", xp.ceil)
isnan = _unary("isnan", xp.isnan)
isinf = _unary("isinf", xp.isinf)
isfinite = _unary("isfinite", xp.isfinite)
isposinf = _unary("isposinf", lambda x: x == xp.inf if x.dtype.kind == "c" else xp.isposinf(x))
isneginf = _unary("isneginf", lambda x: x == -xp.inf if x.dtype.kind == "c" else xp.isneginf(x))
logical_not = _unary("logical_not", xp.logical_not)
bitwise_invert = _unary("bitwise_invert", xp.invert)
conj: Any = _unary("conj", xp.conj, lambda g, ans, x: conj(g), method=True, holomorphic=False)
conjugate = export(conj, name="conjugate")
real = _unary("real", xp.real, lambda g, ans, x: astype(g, x.dtype), holomorphic=False)
imag = _unary(
    "imag", xp.imag, lambda g, ans, x: multiply(astype(g, x.dtype), 1j), holomorphic=False
)


@export(method=True)
def log2(a) -> array:
    """Base-2 logarithm."""
    return log(a) * (1.0 / math.log(2.0))


@export(method=True)
def log10(a) -> array:
    """Base-10 logarithm."""
    return log(a) * (1.0 / math.log(10.0))


@export(method=True)
def round(a, decimals: int = 0, stream=None) -> array:
    """Round half to even to ``decimals`` places (zero gradient, as in MLX)."""
    a = _as(a)
    return _from_value(xp.round(a._data, decimals))


def _power_vjp_b(g, ans, a, b):
    safe = where(a == 0, 1, a)
    return g * ans * log(safe)


_PY_SCALARS = (int, float, bool, complex)


def _divide_kernel(a, b):
    # after _prep2 at most one side is a Python scalar; the other carries the dtype
    if (b if type(a) in _PY_SCALARS else a).dtype.kind in "fcV":  # V: bfloat16
        return xp.true_divide(a, b)
    return xp.true_divide(a, b, dtype=xp.float32)  # MLX: int / int is float32


add = _binary("add", xp.add, lambda g, ans, a, b: g, lambda g, ans, a, b: g)
subtract = _binary("subtract", xp.subtract, lambda g, ans, a, b: g, lambda g, ans, a, b: -g)
# (b * g, not g * b: NumPy's complex product is not commutative to the last bit, and MLX's
# prod and multiply agree exactly in this order)
multiply: Any = _binary(
    "multiply", xp.multiply, lambda g, ans, a, b: b * g, lambda g, ans, a, b: a * g
)
divide = _binary(
    "divide",
    _divide_kernel,
    lambda g, ans, a, b: g / b,
    lambda g, ans, a, b: -g * ans / b,
)


def _power_kernel(a, b):
    # small integer powers as PyTorch computes them: libm's pow of a negative base is ~50x
    # slower than x * x * x, and NumPy's power loop 3x slower than a multiply (same bits for 2, 1)
    if type(b) in (int, float) and a.dtype.kind == "f" and a.dtype.itemsize >= 4:
        if b == 2:
            return a * a
        if b == 3:
            return a * a * a
        if b == 1:
            return xp.positive(a)
    try:
        return xp.power(a, b)
    except ValueError:
        # integers to negative integer powers: MLX gives 0 (no error, no hang)
        neg = xp.less(b, 0)
        if not xp.ndim(neg):  # one exponent (a scalar: GPU kernels take no 0-d host array)
            return xp.zeros_like(a, dtype=xp.result_type(a, b))
        return xp.where(neg, 0, xp.power(a, xp.where(neg, 0, b))).astype(
            xp.result_type(a, b), copy=False
        )


def _power_vjp_a(g, ans, a, b):
    if type(b) in (int, float) and b == 2:  # the square of a loss: 2 a g, one op fewer
        return (a + a) * g  # the same bits as g * 2 * a (doubling is exact), no scalar operand
    return g * b * power(a, b - 1)


power: Any = _binary("power", _power_kernel, _power_vjp_a, _power_vjp_b)
maximum = _binary(
    "maximum",
    xp.maximum,
    lambda g, ans, a, b: where(a > b, g, 0),
    lambda g, ans, a, b: where(a > b, 0, g),
)
minimum = _binary(
    "minimum",
    xp.minimum,
    lambda g, ans, a, b: where(a < b, g, 0),
    lambda g, ans, a, b: where(a < b, 0, g),
)


def _arctan2_kernel(a, b):
    if xp.iscomplexobj(a) or xp.iscomplexobj(b):
        raise ValueError("arctan2: complex inputs are not supported")
    return xp.arctan2(a, b)


arctan2 = _binary(
    "arctan2",
    _arctan2_kernel,
    lambda g, ans, a, b: g * b / (a * a + b * b),
    lambda g, ans, a, b: -g * a / (a * a + b * b),
)


def _logaddexp_kernel(a, b):
    if not (xp.iscomplexobj(a) or xp.iscomplexobj(b)):
        return xp.logaddexp(a, b)
    # complex: shift by the operand of larger real part, as the real formula does
    m = xp.where(xp.real(a) >= xp.real(b), a, b)
    with xp.errstate(invalid="ignore", over="ignore"):
        return m + xp.log(xp.exp(a - m) + xp.exp(b - m))


logaddexp = _binary(
    "logaddexp",
    _logaddexp_kernel,
    lambda g, ans, a, b: g * exp(a - ans),
    lambda g, ans, a, b: g * exp(b - ans),
)
remainder = _binary(
    "remainder",
    xp.remainder,
    lambda g, ans, a, b: g,
    lambda g, ans, a, b: -g * floor_divide(a, b),
)
floor_divide: Any = _binary("floor_divide", xp.floor_divide)
equal = _binary("equal", xp.equal)
not_equal = _binary("not_equal", xp.not_equal)
less = _binary("less", xp.less)
less_equal = _binary("less_equal", xp.less_equal)
greater = _binary("greater", xp.greater)
greater_equal = _binary("greater_equal", xp.greater_equal)
logical_and = _binary("logical_and", xp.logical_and)
logical_or = _binary("logical_or", xp.logical_or)
logical_xor = _binary("logical_xor", xp.logical_xor)
bitwise_and = _binary("bitwise_and", xp.bitwise_and)
bitwise_or = _binary("bitwise_or", xp.bitwise_or)
bitwise_xor = _binary("bitwise_xor", xp.bitwise_xor)
left_shift = _binary("left_shift", xp.left_shift)
right_shift = _binary("right_shift", xp.right_shift)


@export
def divmod(a, b, stream=None) -> tuple[array, array]:
    """``(floor_divide(a, b), remainder(a, b))``; not differentiated (zero gradients, as MLX)."""
    return stop_gradient(floor_divide(a, b)), stop_gradient(remainder(a, b))


_WHERE = defprim(
    "where",
    None,
    lambda g, ans, c, x, y: where(c, g, 0),
    lambda g, ans, c, x, y: where(c, 0, g),
    batch=_elementwise_rule(lambda c, x, y: where(c, x, y)),
)


@kernel  # one step under mx.compile, so its finiteness test is not a guard
@value_branch
def _where_kernel(cd, dx, dy):
    # Masking with a zero branch (every ReLU and maximum gradient) is ten times faster as a
    # product than as np.where, whose per-element branch mispredicts on random masks. The
    # product is only right where the kept values are finite (inf * 0 is nan), so it is checked.
    if type(dy) in (int, float) and dy == 0 and type(dx) in _ARRAYS and dx.dtype.kind == "f":
        if _isfinite(dx).all():
            return dx * cd
    elif type(dx) in (int, float) and dx == 0 and type(dy) in _ARRAYS and dy.dtype.kind == "f":
        if _isfinite(dy).all():
            return dy * ~cd
    try:
        return xp.where(cd, dx, dy)
    except TypeError:  # 0-d host values meeting GPU data (GPU kernels take scalars)
        scalars = _host_scalars((cd, dx, dy))
        if scalars is None:
            raise
        return xp.where(*scalars)


@export
def where(condition, x, y, stream=None) -> array:
    """Choose ``x`` where ``condition`` holds and ``y`` elsewhere (broadcasting)."""
    c = _as(condition)
    dx, dy, nx, ny = _prep2(x, y)
    cd = c._data if c._data.dtype == xp.bool_ else c._data.astype(bool)
    try:
        out = _where_kernel(cd, dx, dy)
    except ValueError:
        raise ValueError(
            f"where: shapes {c.shape}, {xp.shape(dx)} and {xp.shape(dy)} cannot be broadcast "
            "together"
        ) from None
    if (nx is None and ny is None) or not STATE.enabled:
        return _from_value(out)
    args = (cd, nx if nx is not None else dx, ny if ny is not None else dy)
    return _from_value(out, Node(out, _WHERE, args))


def _nan_to_num_vjp(g, ans, x, nan=0.0, posinf=None, neginf=None):
    return where(isfinite(x), g, 0)


def _nan_to_num_batch(args, params, ex_ndim):
    ((x, _),) = args
    return nan_to_num(x, **params)


_NAN_TO_NUM = defprim("nan_to_num", _nan_to_num_vjp, batch=_nan_to_num_batch)


@export
def nan_to_num(a, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
    """Replace NaN and infinities by finite numbers (the dtype's extremes by default)."""
    a = _as(a)
    out = xp.nan_to_num(a._data, nan=nan, posinf=posinf, neginf=neginf)
    return _rec(_NAN_TO_NUM, out, (a,), {"nan": nan, "posinf": posinf, "neginf": neginf})


@export(method=True)
def clip(a, a_min, a_max, stream=None) -> array:
    """Clip to ``[a_min, a_max]`` (either may be ``None``)."""
    if a_min is None and a_max is None:
        raise ValueError("clip: at least one of a_min and a_max must be given")
    out = _as(a)
    if a_min is not None:
        out = maximum(out, a_min)
    if a_max is not None:
        out = minimum(out, a_max)
    return out


def _inexact(dt) -> bool:
    """Floating or complex, bfloat16 included (its NumPy kind is ``V``)."""
    return dt.kind in "fc" or dt == _dt.BFLOAT16_NP


def _astype_vjp(g, ans, x, dtype=None):
    return astype(g, x.dtype)


def _astype_batch(args, params, ex_ndim):
    ((x, _),) = args
    return astype(x, params["dtype"])


_ASTYPE = defprim("astype", _astype_vjp, batch=_astype_batch)


@export(method=True)
def astype(a, dtype, stream=None) -> array:
    """Cast to ``dtype`` (differentiable between floating types)."""
    if type(a) is not array:
        a = _handle(a)
    target = _dt.to_np(dtype)
    if a._data.dtype == target:
        return a
    d = a._data
    if d.dtype.kind == "c" and target.kind != "c":
        d = d.real  # complex to real keeps the real part (no ComplexWarning)
    if target.kind == "V" and type(d) is not xp.ndarray and _backend.is_gpu(d):
        raise _backend.no_gpu_dtype(target, "cannot be made on the GPU by astype")
    out = d.astype(target)
    if not (_inexact(target) and _inexact(a._data.dtype)):  # casts to or from integers
        return _from_value(out)
    return _rec(_ASTYPE, out, (a,), {"dtype": target})


_CONTIGUOUS = defprim("contiguous", lambda g, ans, x: g, batch=pass_rule)


@export
def contiguous(a, allow_col_major: bool = False, stream=None) -> array:
    """The values laid out row-major in memory (MLX's ``mx.contiguous``); a no-op when they are.

    Args:
        a: the input.
        allow_col_major: accept a column-major layout as it is.
    """
    a = _as(a)
    d = a._data
    if type(d) is not xp.ndarray or d.flags.c_contiguous:
        return a
    if allow_col_major and d.flags.f_contiguous:
        return a
    return _rec(_CONTIGUOUS, xp.ascontiguousarray(d), (a,))


@export
def stop_gradient(a) -> array:
    """The same values, treated as a constant by every transform."""
    return _from_value(_as(a)._data)


@constant_maker("max_shift")
def _shift_by_max(a, axis):
    """``a`` minus its (constant) maximum over ``axis``: exponentials of it cannot overflow."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "softmax")
    m = xp.max(a._data, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return a - _from_value(m), axes


@export(method=True)
def softmax(a, axis=None, precise: bool = False, stream=None) -> array:
    """``exp(a) / sum(exp(a))`` over ``axis`` (all axes by default), computed stably.

    With ``precise`` a half-precision input is computed in float32 and rounded once.
    """
    a = _as(a)
    if axis is not None and a.ndim == 0:
        raise ValueError("softmax: an axis was given for a scalar (0-d) array")
    if precise and a._data.dtype.kind in "fV" and a._data.dtype.itemsize < 4:
        return astype(softmax(astype(a, _dt.float32), axis), a.dtype)
    d = a._data
    if d.dtype.kind == "f" and (isinstance(d, _ARRAYS) or _backend.is_gpu(d)):  # one primitive
        axes = _axes(axis, d.ndim, "softmax")
        return _rec(_SOFTMAX, _softmax_kernel(d, axes), (a,), {"axes": axes})
    z, axes = _shift_by_max(a, axis)
    e = exp(z)
    return e / sum(e, axes, keepdims=True)


@kernel  # one opaque step under mx.compile, so a replay computes exactly what eager did
def _softmax_kernel(d, axes: tuple):
    """``exp(d - max) / sum(exp(d - max))`` over ``axes``: a row holding ``inf``, or only
    ``-inf``, gives NaNs, as MLX's and PyTorch's kernels do."""
    m_ = _backend.array_module(d)
    m = _backend.reduce_max(d, axes, keepdims=True) if d.size else d.sum(axes, keepdims=True)
    e = d - m
    m_.exp(e, out=e)
    s = _backend.reduce_sum(e, axes, keepdims=True)
    e *= m_.reciprocal(s, out=s)  # one division a row, as MLX's and PyTorch's kernels
    return e


def _softmax_vjp(g, ans, a, axes):
    # d softmax: s * (g - sum(g s))
    gs = g * ans
    return gs - ans * sum(gs, axes, keepdims=True)


def _softmax_batch(args, params, ex_ndim):
    ((a, na),) = args
    axes = tuple(ax + 1 for ax in params["axes"]) if na is not None else params["axes"]
    return softmax(_operand(a, na), axes)


_SOFTMAX = defprim("softmax", _softmax_vjp, batch=_softmax_batch)


@export
def log_softmax(a, axis=None, stream=None) -> array:
    """``a - logsumexp(a)`` over ``axis``, computed stably (one primitive for float input).

    A row whose maximum is ``+inf`` gives MLX's ``x - logsumexp(x)``: NaN at the ``inf``,
    ``-inf`` elsewhere (PyTorch's ``log_softmax`` gives NaN for the whole row:
    :func:`_log_softmax` with ``mlx_inf=False``).
    """
    return _log_softmax(a, axis, True)


def _log_softmax(a, axis, mlx_inf: bool) -> array:
    """``log_softmax`` over ``axis``; ``mlx_inf`` picks MLX's values for rows holding ``+inf``
    (else PyTorch's NaN rows)."""
    a = _as(a)
    d = a._data
    if d.dtype.kind == "f" and (isinstance(d, _ARRAYS) or _backend.is_gpu(d)):  # one primitive
        axes = _axes(axis, d.ndim, "log_softmax")
        params = {"axes": axes, "mlx_inf": mlx_inf}
        return _rec(_LOG_SOFTMAX, _log_softmax_kernel(d, axes, mlx_inf), (a,), params)
    z, axes = _shift_by_max(a, axis)
    return z - logsumexp(z, axes, keepdims=True)


@kernel  # one opaque step under mx.compile
@value_branch  # the finiteness test reads values (allowed under vmap's replay)
def _log_softmax_kernel(d, axes: tuple, mlx_inf: bool):
    """``(d - max) - log(sum(exp(d - max)))`` over ``axes``: a row of ``-inf`` or holding a
    NaN gives NaNs (as MLX and PyTorch); a row holding ``+inf`` gives NaNs too, or with
    ``mlx_inf`` MLX's ``x - logsumexp(x)`` (NaN at the ``inf``, ``-inf`` elsewhere)."""
    m_ = _backend.array_module(d)
    m = _backend.reduce_max(d, axes, keepdims=True) if d.size else d.sum(axes, keepdims=True)
    if mlx_inf and _isfinite(m).all():  # no row can warn: skip errstate's cost
        return _log_softmax_rows(m_, d, m, axes)
    with xp.errstate(invalid="ignore", divide="ignore"):  # the NaN and -inf rows, quietly
        if mlx_inf:
            m = m_.where(m_.isfinite(m), m, 0)  # MLX's composite, whose logsumexp is inf there
        return _log_softmax_rows(m_, d, m, axes)


def _log_softmax_rows(m_, d, m, axes):
    z = d - m
    s = _backend.reduce_sum(m_.exp(z), axes, keepdims=True)
    m_.log(s, out=s)
    z -= s
    return z


def _log_softmax_vjp(g, ans, a, axes, mlx_inf):
    # d log_softmax: g - softmax * sum(g)
    return g - exp(ans) * sum(g, axes, keepdims=True)


def _log_softmax_batch(args, params, ex_ndim):
    ((a, na),) = args
    axes = tuple(ax + 1 for ax in params["axes"]) if na is not None else params["axes"]
    return _log_softmax(_operand(a, na), axes, params["mlx_inf"])


_LOG_SOFTMAX = defprim("log_softmax", _log_softmax_vjp, batch=_log_softmax_batch)


@export
def isclose(a, b, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False, stream=None):
    """Elementwise ``|a - b| <= atol + rtol * |b|``."""
    da, db, _, _ = _prep2(a, b)
    return _from_value(xp.isclose(da, db, rtol=rtol, atol=atol, equal_nan=equal_nan))


@export
def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False, stream=None):
    """Whether every element of ``a`` is close to ``b`` (a boolean array)."""
    return all(isclose(a, b, rtol, atol, equal_nan))


@export
def array_equal(a, b, equal_nan: bool = False, stream=None) -> array:
    """Whether ``a`` and ``b`` have one shape and equal values (a boolean array)."""
    da, db = _as(a)._data, _as(b)._data
    return _from_value(_as_array(xp.array_equal(da, db, equal_nan=equal_nan)))


# Names from the other op modules that the functions above call (bound after this
# module's own definitions, so the modules may call each other).
from .reductions import _axes, _isfinite, all, logsumexp, sum  # noqa: E402
from .table import _as, _handle, _prep2, _rec  # noqa: E402

astype.takes_tensors = True  # type: ignore[attr-defined]  # reads only its operand's slots
