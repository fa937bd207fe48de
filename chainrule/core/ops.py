"""The op table: every primitive with its NumPy forward and its VJP, in one place.

A primitive is declared once with ``defprim(name, vjp_0, vjp_1, ...)``: one rule per
input, in autograd's ``g, ans, *inputs -> cotangent`` form, written with chainrule
operations so the backward pass can itself be differentiated. A rule returns a
cotangent shaped like the (broadcast) output; the engine sums it back to the input's
shape. Composite operations (softmax, var, sort, ...) are written with primitives
and need no rule of their own.
"""

from __future__ import annotations

import builtins
import math

from . import dtypes as _dt
from .array import STATE, Node, _convert, _from_value, array
from .backend import xp
from .compile import Traced, kernel

# `Node` is only ever called here (never used in isinstance/type tests): detect_anomaly
# (anomaly.py) rebinds this name to a checking factory while it is on, at no cost when off.
_sum = builtins.sum
_slice = builtins.slice
_AxisError = xp.exceptions.AxisError


class Primitive:
    """An entry of the op table.

    Attributes:
        name: the operation's name, used in error messages and graph pictures.
        vjps: one rule per input (``None`` where the input is never differentiated), or
            a single rule for a variadic primitive (called with ``argnum=i``).
        variadic: whether ``vjps[0]`` serves every input.
    """

    __slots__ = ("name", "vjps", "variadic")

    def __init__(self, name: str, vjps: tuple, variadic: bool = False) -> None:
        self.name = name
        self.vjps = vjps
        self.variadic = variadic

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


PRIMITIVES: dict[str, Primitive] = {}


def defprim(name: str, *vjps, variadic: bool = False) -> Primitive:
    """Register a primitive and its VJP rules in the op table."""
    prim = Primitive(name, vjps, variadic)
    PRIMITIVES[name] = prim
    return prim


# -- recording ---------------------------------------------------------------------------------


def _rec(prim: Primitive, out, xs: tuple, params: dict | None = None) -> array:
    """Wrap ``out``; record a node when some input is being differentiated."""
    if STATE.enabled:
        for x in xs:
            if x._node is not None:
                args = tuple(x._node if x._node is not None else x._data for x in xs)
                return _from_value(out, Node(out, prim, args, params))
    return _from_value(out)


def _as(x) -> array:
    """An input as an array (Python data follow MLX's conversion rules)."""
    if type(x) is array:
        return x
    return _from_value(_convert(x))


def _scalar_for(s, data):
    """A Python scalar meeting ``data``: it takes the array's type (MLX's weak scalars)."""
    t = type(s)
    kind = data.dtype.kind
    if t is float:
        if kind in "fc":
            return data, s
        return data.astype(xp.float32), s
    if t is int:
        if kind == "b":
            return data.astype(xp.int32), s
        if kind in "iu":
            info = xp.iinfo(data.dtype)
            if not info.min <= s <= info.max:
                return data, xp.asarray(s, dtype=xp.promote_types(data.dtype, xp.int64))
        return data, s
    if t is bool:
        return data, s
    if t is complex:
        if kind == "c":
            return data, s
        return data.astype(xp.complex128 if data.dtype == xp.float64 else xp.complex64), s
    return None


def _prep2(a, b):
    """Two operands as backend values of one dtype, plus their nodes."""
    if type(a) is array:
        da, na = a._data, a._node
        if type(b) is array:
            db, nb = b._data, b._node
            if da.dtype is not db.dtype and da.dtype != db.dtype:
                t = _dt.promote(da.dtype, db.dtype)
                da, db = da.astype(t, copy=False), db.astype(t, copy=False)
            return da, db, na, nb
        got = _scalar_for(b, da)
        if got is not None:
            return got[0], got[1], na, None
        return _prep2(a, _as(b))
    if type(b) is array:
        got = _scalar_for(a, b._data)
        if got is not None:
            return got[1], got[0], None, b._node
        return _prep2(_as(a), b)
    return _prep2(_as(a), _as(b))


def _kernel_error(name: str, da, db, err: Exception) -> ValueError:
    """The error of a failed elementwise kernel: a shape mismatch, or NumPy's own complaint."""
    sa, sb = tuple(xp.shape(da)), tuple(xp.shape(db))
    try:
        xp.broadcast_shapes(sa, sb)
    except ValueError:
        return ValueError(f"{name}: shapes {sa} and {sb} cannot be broadcast together")
    return ValueError(f"{name}: {err} (shapes {sa} and {sb})")


def _unary(name: str, kernel, vjp=None):
    """Declare an elementwise primitive of one input and return its public function."""
    prim = defprim(name, vjp) if vjp is not None else None

    def op(a, stream=None) -> array:
        if type(a) is not array:
            a = _as(a)
        out = kernel(a._data)
        if prim is not None and a._node is not None and STATE.enabled:
            return _from_value(out, Node(out, prim, (a._node,)))
        return _from_value(out)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise ``{name}`` (MLX ``mx.{name}``)."
    return op


def _binary(name: str, kernel, vjp_a=None, vjp_b=None):
    """Declare an elementwise, broadcasting primitive of two inputs."""
    prim = defprim(name, vjp_a, vjp_b) if (vjp_a or vjp_b) else None

    def op(a, b, stream=None) -> array:
        da, db, na, nb = _prep2(a, b)
        try:
            out = kernel(da, db)
        except ValueError as e:
            raise _kernel_error(name, da, db, e) from None
        if prim is None or (na is None and nb is None) or not STATE.enabled:
            return _from_value(out)
        return _from_value(
            out,
            Node(out, prim, (na if na is not None else da, nb if nb is not None else db)),
        )

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Elementwise, broadcasting ``{name}`` (MLX ``mx.{name}``)."
    return op


def _xpsigmoid(x):
    # tanh form: stable for every x and never warns of overflow
    return 0.5 * xp.tanh(0.5 * x) + 0.5


_erf_vec = xp.vectorize(math.erf, otypes=[xp.float64])


def _erf_fallback(x):
    return _erf_vec(x)


def _erfinv_fallback(y):
    y64 = xp.asarray(y, dtype=xp.float64)
    # initial guess (Giles) refined by Newton steps on erf
    w = -xp.log((1.0 - y64) * (1.0 + y64))
    x = xp.where(w < 5.0, 0.8862269 * y64 * (1 + 0.2 * w), xp.sign(y64) * xp.sqrt(w))
    for _ in range(6):
        err = _erf_vec(x) - y64
        x = x - err / (2.0 / math.sqrt(math.pi) * xp.exp(-x * x))
    return xp.where(xp.abs(y64) == 1, xp.sign(y64) * xp.inf, x)


_SPECIAL: dict = {}


def _special(name: str):
    """SciPy's exact, vectorised kernel when SciPy is installed (imported on first use, since
    importing it costs a third of a second), else a NumPy fallback."""
    fn = _SPECIAL.get(name)
    if fn is None:
        try:
            import scipy.special

            fn = getattr(scipy.special, name)
        except ImportError:  # pragma: no cover - depends on the environment
            fn = _erf_fallback if name == "erf" else _erfinv_fallback
        _SPECIAL[name] = fn
    return fn


def _erf_kernel(x):
    return _special("erf")(x).astype(x.dtype, copy=False)


def _erfinv_kernel(y):
    return _special("erfinv")(y).astype(y.dtype, copy=False)


def _float_kernel(fn):
    """Kernels of transcendental functions return float32 for integer inputs (MLX)."""

    def kernel(x):
        if x.dtype.kind in "biu":
            x = x.astype(xp.float32)
        return fn(x)

    return kernel


# -- elementwise primitives --------------------------------------------------------------------

negative = _unary("negative", xp.negative, lambda g, ans, x: -g)
abs = _unary("abs", xp.abs, lambda g, ans, x: g * sign(x))
sign = _unary("sign", xp.sign)
square = _unary("square", xp.square, lambda g, ans, x: g * (x * 2))
sqrt = _unary("sqrt", _float_kernel(xp.sqrt), lambda g, ans, x: g * 0.5 / ans)
rsqrt = _unary(
    "rsqrt", _float_kernel(lambda x: 1.0 / xp.sqrt(x)), lambda g, ans, x: g * -0.5 * ans / x
)
reciprocal = _unary("reciprocal", _float_kernel(xp.reciprocal), lambda g, ans, x: -g * ans * ans)
exp = _unary("exp", _float_kernel(xp.exp), lambda g, ans, x: g * ans)
expm1 = _unary("expm1", _float_kernel(xp.expm1), lambda g, ans, x: g * (ans + 1))
log = _unary("log", _float_kernel(xp.log), lambda g, ans, x: g / x)
log1p = _unary("log1p", _float_kernel(xp.log1p), lambda g, ans, x: g / (x + 1))
sin = _unary("sin", _float_kernel(xp.sin), lambda g, ans, x: g * cos(x))
cos = _unary("cos", _float_kernel(xp.cos), lambda g, ans, x: -g * sin(x))
tan = _unary("tan", _float_kernel(xp.tan), lambda g, ans, x: g * (ans * ans + 1))
arcsin = _unary("arcsin", _float_kernel(xp.arcsin), lambda g, ans, x: g * rsqrt(1 - x * x))
arccos = _unary("arccos", _float_kernel(xp.arccos), lambda g, ans, x: -g * rsqrt(1 - x * x))
arctan = _unary("arctan", _float_kernel(xp.arctan), lambda g, ans, x: g / (x * x + 1))
sinh = _unary("sinh", _float_kernel(xp.sinh), lambda g, ans, x: g * cosh(x))
cosh = _unary("cosh", _float_kernel(xp.cosh), lambda g, ans, x: g * sinh(x))
tanh = _unary("tanh", _float_kernel(xp.tanh), lambda g, ans, x: g * (1 - ans * ans))
arcsinh = _unary("arcsinh", _float_kernel(xp.arcsinh), lambda g, ans, x: g * rsqrt(x * x + 1))
arccosh = _unary("arccosh", _float_kernel(xp.arccosh), lambda g, ans, x: g * rsqrt(x * x - 1))
arctanh = _unary("arctanh", _float_kernel(xp.arctanh), lambda g, ans, x: g / (1 - x * x))
sigmoid = _unary("sigmoid", _float_kernel(_xpsigmoid), lambda g, ans, x: g * ans * (1 - ans))
erf = _unary(
    "erf",
    _float_kernel(_erf_kernel),
    lambda g, ans, x: g * (2.0 / math.sqrt(math.pi)) * exp(-(x * x)),
)
erfinv = _unary(
    "erfinv",
    _float_kernel(_erfinv_kernel),
    lambda g, ans, x: g * (math.sqrt(math.pi) / 2.0) * exp(ans * ans),
)
floor = _unary("floor", xp.floor)
ceil = _unary("ceil", xp.ceil)
isnan = _unary("isnan", xp.isnan)
isinf = _unary("isinf", xp.isinf)
isfinite = _unary("isfinite", xp.isfinite)
isposinf = _unary("isposinf", xp.isposinf)
isneginf = _unary("isneginf", xp.isneginf)
logical_not = _unary("logical_not", xp.logical_not)
bitwise_invert = _unary("bitwise_invert", xp.invert)
conj = _unary("conj", xp.conj, lambda g, ans, x: conj(g))
conjugate = conj
real = _unary("real", xp.real, lambda g, ans, x: astype(g, x.dtype))
imag = _unary("imag", xp.imag, lambda g, ans, x: multiply(astype(g, x.dtype), -1j))


def log2(a) -> array:
    """Base-2 logarithm."""
    return log(a) * (1.0 / math.log(2.0))


def log10(a) -> array:
    """Base-10 logarithm."""
    return log(a) * (1.0 / math.log(10.0))


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
    if (b if type(a) in _PY_SCALARS else a).dtype.kind in "fc":
        return xp.true_divide(a, b)
    return xp.true_divide(a, b, dtype=xp.float32)  # MLX: int / int is float32


add = _binary("add", xp.add, lambda g, ans, a, b: g, lambda g, ans, a, b: g)
subtract = _binary("subtract", xp.subtract, lambda g, ans, a, b: g, lambda g, ans, a, b: -g)
multiply = _binary("multiply", xp.multiply, lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a)
divide = _binary(
    "divide",
    _divide_kernel,
    lambda g, ans, a, b: g / b,
    lambda g, ans, a, b: -g * ans / b,
)
power = _binary(
    "power",
    xp.power,
    lambda g, ans, a, b: g * b * power(a, b - 1),
    _power_vjp_b,
)
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
arctan2 = _binary(
    "arctan2",
    xp.arctan2,
    lambda g, ans, a, b: g * b / (a * a + b * b),
    lambda g, ans, a, b: -g * a / (a * a + b * b),
)
logaddexp = _binary(
    "logaddexp",
    xp.logaddexp,
    lambda g, ans, a, b: g * exp(a - ans),
    lambda g, ans, a, b: g * exp(b - ans),
)
remainder = _binary(
    "remainder",
    xp.remainder,
    lambda g, ans, a, b: g,
    lambda g, ans, a, b: -g * floor_divide(a, b),
)
floor_divide = _binary("floor_divide", xp.floor_divide)
equal = _binary("equal", xp.equal)
not_equal = _binary("not_equal", xp.not_equal)
less = _binary("less", xp.less)
less_equal = _binary("less_equal", xp.less_equal)
greater = _binary("greater", xp.greater)
greater_equal = _binary("greater_equal", xp.greater_equal)
logical_and = _binary("logical_and", xp.logical_and)
logical_or = _binary("logical_or", xp.logical_or)
bitwise_and = _binary("bitwise_and", xp.bitwise_and)
bitwise_or = _binary("bitwise_or", xp.bitwise_or)
bitwise_xor = _binary("bitwise_xor", xp.bitwise_xor)
left_shift = _binary("left_shift", xp.left_shift)
right_shift = _binary("right_shift", xp.right_shift)


def divmod(a, b, stream=None) -> tuple[array, array]:
    """``(floor_divide(a, b), remainder(a, b))``."""
    return floor_divide(a, b), remainder(a, b)


_WHERE = defprim(
    "where",
    None,
    lambda g, ans, c, x, y: where(c, g, 0),
    lambda g, ans, c, x, y: where(c, 0, g),
)


_ARRAYS = (xp.ndarray, Traced)  # backend arrays, plain or being traced by mx.compile


@kernel  # one step under mx.compile, so its finiteness test is not a guard
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
    return xp.where(cd, dx, dy)


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


_NAN_TO_NUM = defprim("nan_to_num", _nan_to_num_vjp)


def nan_to_num(a, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
    """Replace NaN and infinities by finite numbers (the dtype's extremes by default)."""
    a = _as(a)
    out = xp.nan_to_num(a._data, nan=nan, posinf=posinf, neginf=neginf)
    return _rec(_NAN_TO_NUM, out, (a,), {"nan": nan, "posinf": posinf, "neginf": neginf})


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


def _astype_vjp(g, ans, x, dtype=None):
    return astype(g, x.dtype)


_ASTYPE = defprim("astype", _astype_vjp)


def astype(a, dtype, stream=None) -> array:
    """Cast to ``dtype`` (differentiable between floating types)."""
    a = _as(a)
    target = _dt.to_np(dtype)
    if a._data.dtype == target:
        return a
    d = a._data
    if d.dtype.kind == "c" and target.kind != "c":
        d = d.real  # complex to real keeps the real part (no ComplexWarning)
    out = d.astype(target)
    if target.kind not in "fc" or a._data.dtype.kind not in "fc":
        return _from_value(out)
    return _rec(_ASTYPE, out, (a,), {"dtype": target})


_CONTIGUOUS = defprim("contiguous", lambda g, ans, x: g)


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


def stop_gradient(a) -> array:
    """The same values, treated as a constant by every transform."""
    return _from_value(_as(a)._data)


# -- matrix products ---------------------------------------------------------------------------


def _matmul_vjp_a(g, ans, a, b):
    if b.ndim == 1:
        return g * b if a.ndim == 1 else expand_dims(g, -1) * b
    if a.ndim == 1:
        return squeeze(matmul(b, expand_dims(g, -1)), -1)
    return matmul(g, swapaxes(b, -1, -2))


def _matmul_vjp_b(g, ans, a, b):
    bd = b._data
    if a.ndim == 2 and bd.ndim == 2 and not bd.flags.c_contiguous and bd.flags.f_contiguous:
        # b is a transposed view (x @ W.T in Linear): build the cotangent in b's layout, so the
        # transpose rule hands the weight a row-major gradient without copying it.
        return swapaxes(matmul(swapaxes(g, -1, -2), a), -1, -2)
    if a.ndim == 1:
        return g * a if b.ndim == 1 else expand_dims(a, -1) * expand_dims(g, -2)
    if b.ndim == 1:
        return squeeze(matmul(swapaxes(a, -1, -2), expand_dims(g, -1)), -1)
    return matmul(swapaxes(a, -1, -2), g)


_MATMUL = defprim("matmul", _matmul_vjp_a, _matmul_vjp_b)


def matmul(a, b, stream=None) -> array:
    """Matrix product with NumPy's broadcasting of leading (batch) dimensions."""
    da, db, na, nb = _prep2(a, b)
    try:
        out = xp.matmul(da, db)
    except ValueError:
        raise ValueError(
            f"matmul: shapes {tuple(xp.shape(da))} and {tuple(xp.shape(db))} do not line up"
        ) from None
    if (na is None and nb is None) or not STATE.enabled:
        return _from_value(out)
    return _from_value(
        out, Node(out, _MATMUL, (na if na is not None else da, nb if nb is not None else db))
    )


def addmm(c, a, b, alpha: float = 1.0, beta: float = 1.0, stream=None) -> array:
    """``alpha * (a @ b) + beta * c``."""
    prod = matmul(a, b)
    if alpha != 1.0:
        prod = prod * alpha
    return prod + (c if beta == 1.0 else _as(c) * beta)


def inner(a, b, stream=None) -> array:
    """Inner product over the last axes."""
    a, b = _as(a), _as(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: shapes {a.shape} and {b.shape} do not line up")
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b, stream=None) -> array:
    """Outer product of two flattened arrays."""
    a, b = _as(a), _as(b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def tensordot(a, b, axes=2, stream=None) -> array:
    """Sum products over ``axes`` (an int, or two lists of axes)."""
    a, b = _as(a), _as(b)
    if isinstance(axes, int):
        ax_a = list(range(a.ndim - axes, a.ndim))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [x % a.ndim for x in ax_a]
    ax_b = [x % b.ndim for x in ax_b]
    if [a.shape[i] for i in ax_a] != [b.shape[i] for i in ax_b]:
        raise ValueError(f"tensordot: shapes {a.shape} and {b.shape} do not line up over axes")
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = 1
    for i in ax_a:
        k *= a.shape[i]
    at = reshape(transpose(a, free_a + ax_a), (-1, k))
    bt = reshape(transpose(b, ax_b + free_b), (k, -1))
    shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b)
    return reshape(matmul(at, bt), shape)


def _einsum_parse(subscripts: str, shapes: list):
    """Input terms and output term of ``subscripts``, with ellipses spelled out as letters."""
    s = subscripts.replace(" ", "")
    ins, arrow, out = s.partition("->")
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(ins)} operands, {len(shapes)} given")
    if "." in s:
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in s]
        dims = [len(sh) - (len(t) - 3) if "..." in t else 0 for t, sh in zip(ins, shapes)]
        n = builtins.max(dims)
        ell = "".join(free[:n])
        ins = [t.replace("...", ell[n - d :]) for t, d in zip(ins, dims)]
        if arrow:
            out = out.replace("...", ell)
        else:
            letters = [c for c in "".join(ins) if c not in ell]
            out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    elif not arrow:
        letters = [c for c in "".join(ins) if c.isalpha()]
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ins, out


def _einsum_vjp(g, ans, *xs, subscripts, argnum):
    ins, out = _einsum_parse(subscripts, [x.shape for x in xs])
    target = ins[argnum]
    others = [ins[j] for j in range(len(xs)) if j != argnum]
    present = set(out).union(*others) if others else set(out)
    unique = "".join(dict.fromkeys(target))  # letters in order of first appearance
    kept = "".join(c for c in unique if c in present)
    spec = ",".join([out] + others) + "->" + kept
    grad = einsum(spec, g, *[xs[j] for j in range(len(xs)) if j != argnum])
    shape = xs[argnum].shape
    if kept == target:
        return grad if grad.shape == shape else _fit_axes(grad, shape)
    # lay the gradient out over the operand's axes: first appearances carry the letter's axis,
    # summed-out letters broadcast, and repeated letters put it on the diagonal
    sizes = dict(zip(target, shape))
    first = {c: target.index(c) for c in unique}
    layout = [sizes[c] if c in kept and first[c] == i else 1 for i, c in enumerate(target)]
    grad = reshape(grad, layout)
    for i, c in enumerate(target):
        if first[c] != i:
            eye_shape = [1] * len(target)
            eye_shape[first[c]] = eye_shape[i] = sizes[c]
            grad = grad * _from_value(xp.eye(sizes[c], dtype=g._data.dtype).reshape(eye_shape))
    return _fit_axes(grad, shape)


def _fit_axes(g, shape):
    """``g`` with each axis summed or broadcast to ``shape`` (size-1 axes of the operands
    broadcast against the others both ways in einsum)."""
    summed = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    if summed:
        g = sum(g, summed, keepdims=True)
    return g if g.shape == shape else broadcast_to(g, shape)


_EINSUM = defprim("einsum", _einsum_vjp, variadic=True)


def einsum(subscripts: str, *operands, stream=None) -> array:
    """Einstein summation (``mx.einsum``), differentiable in every operand.

    Ellipses and repeated letters (diagonals) are supported.
    """
    xs = tuple(_as(o) for o in operands)
    _einsum_parse(subscripts, [x.shape for x in xs])
    try:
        out = xp.einsum(subscripts, *[x._data for x in xs], optimize=len(xs) > 2)
    except ValueError as e:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"einsum: {subscripts!r} does not fit shapes {shapes}: {e}") from None
    return _rec(_EINSUM, out, xs, {"subscripts": subscripts})


# -- reductions --------------------------------------------------------------------------------


_AXES_CACHE: dict = {}


def _axes(axis, ndim: int, name: str) -> tuple:
    """``axis`` (None, an int or a sequence) as a sorted tuple of non-negative axes.

    Normalised forms are cached: reductions sit on the hot path of every loss.
    """
    if axis is None or type(axis) is int or type(axis) is tuple:
        key = (axis, ndim)
        got = _AXES_CACHE.get(key)
        if got is None:
            got = _AXES_CACHE[key] = _axes_slow(axis, ndim, name)
        return got
    return _axes_slow(axis, ndim, name)


def _axes_slow(axis, ndim: int, name: str) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int) or hasattr(axis, "__index__"):
        axis = (int(axis),)
    out = []
    for ax in axis:
        if not -ndim <= ax < ndim or (ndim == 0 and ax not in (0, -1)):
            raise _AxisError(
                f"{name}: axis {ax} is out of bounds for an array of {ndim} dimensions"
            )
        out.append(ax % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: repeated axis in {tuple(axis)}")
    return tuple(sorted(out))


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_back(g, shape: tuple, axes: tuple, keepdims: bool):
    """A reduced cotangent broadcast back over the reduced axes."""
    if not keepdims:
        g = reshape(g, _kept_shape(shape, axes))
    return broadcast_to(g, shape)


def _reduce_vjp_sum(g, ans, x, axes, keepdims):
    return _expand_back(g, x.shape, axes, keepdims)


def _reduce_vjp_extreme(g, ans, x, axes, keepdims):
    # ties share the cotangent equally, as MLX's max/min rules do
    a = ans if keepdims else reshape(ans, _kept_shape(x.shape, axes))
    mask = astype(x == a, g.dtype)
    count = sum(mask, axis=axes, keepdims=True)
    return _expand_back(g, x.shape, axes, keepdims) * mask / count


def _reduce_vjp_prod(g, ans, x, axes, keepdims):
    # the product of all the *other* elements, from two exclusive scans: exact when x has zeros
    if not axes:
        return g
    if len(axes) == 1:
        ax = axes[0]
        others = cumprod(x, ax, inclusive=False) * cumprod(x, ax, reverse=True, inclusive=False)
    else:
        rest = [i for i in range(x.ndim) if i not in axes]
        moved = transpose(x, rest + list(axes))
        flat = reshape(moved, moved.shape[: len(rest)] + (-1,))
        others = cumprod(flat, -1, inclusive=False) * cumprod(
            flat, -1, reverse=True, inclusive=False
        )
        others = transpose(reshape(others, moved.shape), _inverse_perm(rest + list(axes)))
    return _expand_back(g, x.shape, axes, keepdims) * others


def _reduce_vjp_lse(g, ans, x, axes, keepdims):
    a = ans if keepdims else reshape(ans, _kept_shape(x.shape, axes))
    return _expand_back(g, x.shape, axes, keepdims) * exp(x - a)


_SUM = defprim("sum", _reduce_vjp_sum)
_add_reduce = xp.add.reduce  # the ufunc itself: np.sum's dispatch costs microseconds
_PROD = defprim("prod", _reduce_vjp_prod)
_MAX = defprim("max", _reduce_vjp_extreme)
_MIN = defprim("min", _reduce_vjp_extreme)
_LSE = defprim("logsumexp", _reduce_vjp_lse)
_max_reduce = xp.maximum.reduce
_isfinite = xp.isfinite


def _int_acc(d):
    """Integer sums keep their type (MLX); bools sum as int32."""
    kind = d.dtype.kind
    if kind == "b":
        return xp.int32
    if kind in "iu":
        return d.dtype
    return None


def sum(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Sum over ``axis`` (all axes by default)."""
    a = _as(a)
    d = a._data
    axes = _axes(axis, d.ndim, "sum")
    if d.dtype.kind in "fc":
        out = _add_reduce(d, axes, None, None, keepdims)
    else:
        out = _add_reduce(d, axes, _int_acc(d), None, keepdims)
    return _rec(_SUM, out, (a,), {"axes": axes, "keepdims": keepdims})


def prod(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Product over ``axis``."""
    a = _as(a)
    d = a._data
    axes = _axes(axis, d.ndim, "prod")
    out = xp.prod(d, axis=axes, keepdims=keepdims, dtype=_int_acc(d))
    return _rec(_PROD, out, (a,), {"axes": axes, "keepdims": keepdims})


def _extreme(prim, kernel, name):
    def op(a, axis=None, keepdims: bool = False, stream=None) -> array:
        a = _as(a)
        d = a._data
        axes = _axes(axis, d.ndim, name)
        if d.size == 0:
            raise ValueError(f"{name}: cannot reduce an empty array of shape {a.shape}")
        out = kernel(d, axis=axes, keepdims=keepdims)
        return _rec(prim, out, (a,), {"axes": axes, "keepdims": keepdims})

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"The {name}imum over ``axis`` (ties share the gradient equally)."
    return op


max = _extreme(_MAX, xp.max, "max")
min = _extreme(_MIN, xp.min, "min")
amax, amin = max, min


@kernel
def _lse_kernel(d, axes):
    m = _max_reduce(d, axis=axes, keepdims=True) if d.size else xp.zeros((1,) * d.ndim, d.dtype)
    if _isfinite(m).all():
        out = xp.log(_add_reduce(xp.exp(d - m), axes, None, None, True))
        out += m
    else:
        m = xp.where(xp.isfinite(m), m, 0)
        with xp.errstate(divide="ignore"):  # all -inf gives -inf, quietly (as MLX)
            out = xp.log(xp.sum(xp.exp(d - m), axis=axes, keepdims=True)) + m
    return out


def logsumexp(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """``log(sum(exp(a)))`` over ``axis``, computed stably."""
    a = _as(a)
    d = a._data
    if d.dtype.kind in "biu":
        d = d.astype(xp.float32)
        a = _from_value(d)
    axes = _axes(axis, d.ndim, "logsumexp")
    out = _lse_kernel(d, axes)
    if not keepdims:
        out = out.reshape(tuple(s for i, s in enumerate(d.shape) if i not in axes))
    return _rec(_LSE, out, (a,), {"axes": axes, "keepdims": keepdims})


def mean(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Arithmetic mean over ``axis``."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "mean")
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    return sum(a, axes, keepdims) * (1.0 / n if n else math.nan)


def var(a, axis=None, keepdims: bool = False, ddof: int = 0, stream=None) -> array:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "var")
    n = 1
    for ax in axes:
        n *= a.shape[ax]
    centred = a - mean(a, axes, keepdims=True)
    return sum(centred * centred, axes, keepdims) * (
        1.0 / builtins.max(n - ddof, 0) if n - ddof > 0 else math.inf
    )


def std(a, axis=None, keepdims: bool = False, ddof: int = 0, stream=None) -> array:
    """Standard deviation over ``axis``."""
    return sqrt(var(a, axis, keepdims, ddof))


def _arg_extreme(kernel, name):
    def op(a, axis=None, keepdims: bool = False, stream=None) -> array:
        d = _as(a)._data
        if d.size == 0:
            raise ValueError(f"{name}: cannot reduce an empty array")
        if axis is None:
            out = kernel(d.reshape(-1))
            if keepdims:
                out = xp.reshape(out, (1,) * d.ndim)
        else:
            (ax,) = _axes(axis, d.ndim, name)
            out = kernel(d, axis=ax, keepdims=keepdims)
        return _from_value(xp.asarray(out, dtype=xp.uint32))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Indices of the {name[3:]}imum along ``axis`` (uint32, as in MLX)."
    return op


argmax = _arg_extreme(xp.argmax, "argmax")
argmin = _arg_extreme(xp.argmin, "argmin")


def all(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """True where every element over ``axis`` is true."""
    d = _as(a)._data
    return _from_value(xp.all(d, axis=_axes(axis, d.ndim, "all"), keepdims=keepdims))


def any(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """True where some element over ``axis`` is true."""
    d = _as(a)._data
    return _from_value(xp.any(d, axis=_axes(axis, d.ndim, "any"), keepdims=keepdims))


def _cumsum_vjp(g, ans, x, axis, reverse, inclusive):
    return cumsum(g, axis=axis, reverse=not reverse, inclusive=inclusive)


_CUMSUM = defprim("cumsum", _cumsum_vjp)


def _scan(kernel, d, axis, reverse, inclusive, identity):
    if reverse:
        d = xp.flip(d, axis)
    out = kernel(d, axis=axis)
    if not inclusive:
        pad = [(0, 0)] * d.ndim
        pad[axis] = (1, 0)
        out = xp.pad(out, pad, constant_values=identity)
        out = xp.take(out, xp.arange(d.shape[axis]), axis=axis)
    if reverse:
        out = xp.flip(out, axis)
    return out


def _scan_axis(a, axis, name):
    if axis is None:
        return reshape(a, (-1,)), 0
    return a, _axes(axis, a.ndim, name)[0]


def cumsum(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
    """Cumulative sum along ``axis`` (the flattened array when ``axis`` is None)."""
    a, ax = _scan_axis(_as(a), axis, "cumsum")
    d = a._data
    out = _scan(xp.cumsum, d, ax, reverse, inclusive, 0)
    if d.dtype.kind in "biu":
        out = out.astype(_int_acc(d))
    return _rec(_CUMSUM, out, (a,), {"axis": ax, "reverse": reverse, "inclusive": inclusive})


def _cumprod_vjp(g, ans, x, axis, reverse, inclusive):
    # d out_j / d x_k = out_j / x_k for k in the scan of j: one scan when x has no zeros
    if x._data.all():
        return cumsum(g * ans, axis=axis, reverse=not reverse, inclusive=inclusive) / x
    return _cumprod_vjp_dense(g, x, axis, reverse, inclusive)


def _cumprod_vjp_dense(g, x, axis, reverse, inclusive):
    """The zero-safe rule: for each k, the scan of x with x_k replaced by one (n * n values).

    Exact to any order, unlike dividing by x; used only when x holds zeros.
    """
    xm, gm = moveaxis(x, axis, -1), moveaxis(g, axis, -1)
    if reverse:
        xm, gm = flip(xm, -1), flip(gm, -1)
    n = xm.shape[-1]
    skip_k = where(_from_value(xp.eye(n, dtype=bool)), 1, expand_dims(xm, -2))  # [..., k, j]
    scans = cumprod(skip_k, -1, inclusive=inclusive)
    after_k = _from_value(xp.triu(xp.ones((n, n), dtype=x._data.dtype), 0 if inclusive else 1))
    out = sum(scans * expand_dims(gm, -2) * after_k, axis=-1)
    if reverse:
        out = flip(out, -1)
    return moveaxis(out, -1, axis)


_CUMPROD = defprim("cumprod", _cumprod_vjp)


def cumprod(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
    """Cumulative product along ``axis``."""
    a, ax = _scan_axis(_as(a), axis, "cumprod")
    out = _scan(xp.cumprod, a._data, ax, reverse, inclusive, 1)
    return _rec(_CUMPROD, out, (a,), {"axis": ax, "reverse": reverse, "inclusive": inclusive})


def _extreme_identity(dtype, largest: bool):
    """The identity of a running maximum (``largest``) or minimum, for an exclusive scan."""
    if dtype.kind == "b":
        return not largest
    if dtype.kind in "iu":
        info = xp.iinfo(dtype)
        return info.min if largest else info.max
    return -math.inf if largest else math.inf


def _cum_extreme(ufunc, name):
    def op(a, axis=None, reverse: bool = False, inclusive: bool = True, stream=None) -> array:
        a, ax = _scan_axis(_as(a), axis, name)
        d = a._data
        n = d.shape[ax]
        if n == 0:
            return a
        # the running extreme comes from the latest position holding it: gather from there, so
        # the gradient reaches that element
        src = xp.flip(d, ax) if reverse else d
        pos = xp.arange(n).reshape([-1 if i == ax else 1 for i in range(d.ndim)])
        hit = xp.where(src == ufunc.accumulate(src, axis=ax), pos, 0)
        idx = xp.maximum.accumulate(xp.broadcast_to(hit, d.shape), axis=ax)
        if reverse:
            idx = xp.flip(n - 1 - idx, ax)
        out = take_along_axis(a, _from_value(idx), ax)
        if inclusive:
            return out
        # exclusive: shifted one step along the scan, the first place holds the identity
        shape = tuple(1 if i == ax else s for i, s in enumerate(d.shape))
        ident = full(shape, _extreme_identity(d.dtype, ufunc is xp.maximum), d.dtype)
        keep = [_slice(None)] * d.ndim
        keep[ax] = _slice(1, None) if reverse else _slice(None, n - 1)
        parts = [out[tuple(keep)], ident] if reverse else [ident, out[tuple(keep)]]
        return concatenate(parts, ax)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Cumulative {name[3:]}imum along ``axis`` (differentiable)."
    return op


cummax = _cum_extreme(xp.maximum, "cummax")
cummin = _cum_extreme(xp.minimum, "cummin")


# -- shapes ------------------------------------------------------------------------------------

_RESHAPE = defprim("reshape", lambda g, ans, x, shape: reshape(g, x.shape))


def reshape(a, shape, *more, stream=None) -> array:
    """A view of the values with a new shape (one dimension may be -1)."""
    a = _as(a)
    if more or isinstance(shape, int):
        shape = (shape, *more)
    shape = tuple(int(s) for s in shape)
    d = a._data
    if d.shape == shape:
        return a
    try:
        out = d.reshape(shape)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape an array of shape {d.shape} into {shape}"
        ) from None
    return _rec(_RESHAPE, out, (a,), {"shape": shape})


def _inverse_perm(axes):
    inv = [0] * len(axes)
    for i, ax in enumerate(axes):
        inv[ax] = i
    return tuple(inv)


_TRANSPOSE = defprim("transpose", lambda g, ans, x, axes: transpose(g, _inverse_perm(axes)))


_PERMS: dict = {}


def _perm(axes, nd: int, shape) -> tuple:
    """A validated permutation (cached: transposes run in every matmul's backward rule)."""
    key = (axes, nd)
    got = _PERMS.get(key)
    if got is None:
        if axes is None:
            got = tuple(range(nd - 1, -1, -1))
        else:
            got = tuple(int(ax) % nd if nd else 0 for ax in axes)
            if sorted(got) != list(range(nd)):
                raise ValueError(
                    f"transpose: {got} is not a permutation of the {nd} axes of {shape}"
                )
        _PERMS[key] = got
    return got


def transpose(a, axes=None, *more, stream=None) -> array:
    """Permute the axes (reverse them by default)."""
    if type(a) is not array:
        a = _as(a)
    d = a._data
    if isinstance(axes, int):
        axes = (axes, *more)
    elif axes is not None and type(axes) is not tuple:
        axes = tuple(axes)
    axes = _perm(axes, d.ndim, d.shape)
    return _rec(_TRANSPOSE, d.transpose(axes), (a,), {"axes": axes})


def swapaxes(a, axis1: int, axis2: int, stream=None) -> array:
    """Exchange two axes."""
    a = _as(a)
    nd = a._data.ndim
    key = (axis1, axis2, nd)
    perm = _SWAPS.get(key)
    if perm is None:
        p = list(range(nd))
        i, j = _axes(axis1, nd, "swapaxes")[0], _axes(axis2, nd, "swapaxes")[0]
        p[i], p[j] = p[j], p[i]
        perm = _SWAPS[key] = tuple(p)
    return transpose(a, perm)


_SWAPS: dict = {}


def moveaxis(a, source: int, destination: int, stream=None) -> array:
    """Move one axis to a new position."""
    a = _as(a)
    nd = a.ndim
    s, d = _axes(source, nd, "moveaxis")[0], _axes(destination, nd, "moveaxis")[0]
    perm = [i for i in range(nd) if i != s]
    perm.insert(d, s)
    return transpose(a, perm)


_BROADCAST = defprim("broadcast_to", lambda g, ans, x, shape: g)


@kernel
def _out_of_range(d, n: int) -> bool:
    """Whether some integer index in ``d`` lies outside ``[0, n)`` (labels, embedding ids): one
    boolean, so under ``mx.compile`` one guard that holds for valid data."""
    return bool(d.min() < 0) or bool(d.max() >= n)


@kernel  # writes into a new array: one step under mx.compile
def _broadcast_kernel(d, shape):
    if math.prod(shape) <= 4096:
        # a small filled array costs a microsecond; np.broadcast_to's view costs six
        out = xp.empty(shape, d.dtype)
        out[...] = d
        return out
    return xp.broadcast_to(d, shape)


def broadcast_to(a, shape, stream=None) -> array:
    """Broadcast to ``shape`` (its gradient is summed back by the engine)."""
    a = _as(a)
    shape = tuple(int(s) for s in shape)
    if a._data.shape == shape:
        return a
    try:
        out = _broadcast_kernel(a._data, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {a.shape} to {shape}") from None
    return _rec(_BROADCAST, out, (a,), {"shape": shape})


def broadcast_arrays(*arrays, stream=None) -> list[array]:
    """Broadcast arrays against each other."""
    xs = [_as(x) for x in arrays]
    try:
        shape = xp.broadcast_shapes(*[x.shape for x in xs])
    except ValueError:
        shapes = " and ".join(str(x.shape) for x in xs)
        raise ValueError(
            f"broadcast_arrays: shapes {shapes} cannot be broadcast together"
        ) from None
    return [broadcast_to(x, shape) for x in xs]


def expand_dims(a, axis, stream=None) -> array:
    """Insert axes of length one at ``axis`` (an int or a sequence)."""
    a = _as(a)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = a.ndim + len(axes)
    axes = _axes(axes, nd, "expand_dims")
    shape = list(a.shape)
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(a, shape)


def squeeze(a, axis=None, stream=None) -> array:
    """Remove axes of length one (all of them, or those in ``axis``)."""
    a = _as(a)
    if axis is None:
        axes = tuple(i for i, s in enumerate(a.shape) if s == 1)
    else:
        axes = _axes(axis, a.ndim, "squeeze")
        for ax in axes:
            if a.shape[ax] != 1:
                raise ValueError(
                    f"squeeze: axis {ax} of shape {a.shape} has length {a.shape[ax]}, not 1"
                )
    return reshape(a, [s for i, s in enumerate(a.shape) if i not in axes])


def flatten(a, start_axis: int = 0, end_axis: int = -1, stream=None) -> array:
    """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
    a = _as(a)
    if a.ndim == 0:
        return reshape(a, (1,))
    s, e = _axes(start_axis, a.ndim, "flatten")[0], _axes(end_axis, a.ndim, "flatten")[0]
    if s > e:
        raise ValueError(f"flatten: start_axis {start_axis} is after end_axis {end_axis}")
    return reshape(a, a.shape[:s] + (-1,) + a.shape[e + 1 :])


def unflatten(a, axis: int, shape, stream=None) -> array:
    """Split one axis into ``shape``."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "unflatten")[0]
    return reshape(a, a.shape[:ax] + tuple(shape) + a.shape[ax + 1 :])


def atleast_1d(*arrays, stream=None):
    """Arrays with at least one dimension."""
    out = [reshape(x, (1,)) if _as(x).ndim == 0 else _as(x) for x in arrays]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arrays, stream=None):
    """Arrays with at least two dimensions."""
    out = []
    for x in arrays:
        x = _as(x)
        out.append(reshape(x, (1,) * (2 - x.ndim) + x.shape) if x.ndim < 2 else x)
    return out[0] if len(out) == 1 else out


def atleast_3d(*arrays, stream=None):
    """Arrays with at least three dimensions."""
    out = []
    for x in arrays:
        x = _as(x)
        if x.ndim == 0:
            x = reshape(x, (1, 1, 1))
        elif x.ndim == 1:
            x = reshape(x, (1, x.shape[0], 1))
        elif x.ndim == 2:
            x = reshape(x, x.shape + (1,))
        out.append(x)
    return out[0] if len(out) == 1 else out


def _concat_vjp(g, ans, *xs, axis, argnum):
    start = _sum(x.shape[axis] for x in xs[:argnum])
    index = [_slice(None)] * g.ndim
    index[axis] = _slice(start, start + xs[argnum].shape[axis])
    return g[tuple(index)]


_CONCAT = defprim("concatenate", _concat_vjp, variadic=True)


def concatenate(arrays, axis: int | None = 0, stream=None) -> array:
    """Join arrays along an existing axis (flattened first when ``axis`` is None)."""
    xs = [_as(x) for x in arrays]
    if not xs:
        raise ValueError("concatenate: no arrays given")
    if axis is None:
        xs = [reshape(x, (-1,)) for x in xs]
        axis = 0
    datas = [x._data for x in xs]
    dt = datas[0].dtype
    for d in datas[1:]:
        if d.dtype != dt:
            dt = _dt.promote(dt, d.dtype)
    ax = _axes(axis, xs[0].ndim, "concatenate")[0]
    try:
        out = xp.concatenate([d.astype(dt, copy=False) for d in datas], axis=ax)
    except ValueError:
        shapes = ", ".join(str(x.shape) for x in xs)
        raise ValueError(f"concatenate: shapes {shapes} do not match off axis {axis}") from None
    return _rec(_CONCAT, out, tuple(xs), {"axis": ax})


def stack(arrays, axis: int = 0, stream=None) -> array:
    """Join arrays along a new axis."""
    xs = [_as(x) for x in arrays]
    if not xs:
        raise ValueError("stack: no arrays given")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"stack: all arrays must have one shape, got {sorted(shapes)}")
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(a, indices_or_sections, axis: int = 0, stream=None) -> list[array]:
    """Split into equal sections or at the given indices."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "split")[0]
    n = a.shape[ax]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(
                f"split: axis {axis} of length {n} does not divide into {indices_or_sections} "
                "equal sections"
            )
        step = n // indices_or_sections
        bounds = list(range(step, n, step))
    else:
        bounds = [int(i) for i in indices_or_sections]
    edges = [0] + bounds + [n]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        index = [_slice(None)] * a.ndim
        index[ax] = _slice(lo, hi)
        out.append(a[tuple(index)])
    return out


def unstack(a, axis: int = 0, stream=None) -> list[array]:
    """Split along ``axis`` into arrays with that axis removed."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "unstack")[0]
    return [squeeze(x, ax) for x in split(a, a.shape[ax], ax)]


# -- indexing ----------------------------------------------------------------------------------


def _clean_index(idx):
    """Turn chainrule arrays inside an index into backend values."""
    t = type(idx)
    if t is array:
        return idx._data
    if t is tuple:
        return tuple(i._data if type(i) is array else i for i in idx)
    if t is list:
        return xp.asarray([_clean_index(i) for i in idx])
    return idx


def _is_basic(idx) -> bool:
    items = idx if type(idx) is tuple else (idx,)
    for i in items:
        if not (i is None or i is Ellipsis or type(i) in (int, _slice)):
            return False
    return True


@kernel
def _scatter_add_kernel(x, idx, v):
    out = xp.array(x)
    if _is_basic(idx):
        out[idx] += v
    else:
        xp.add.at(out, idx, v)
    return out


def _getitem_vjp(g, ans, x, idx):
    return _scatter_add(zeros(x.shape, g.dtype), idx, g)


_GETITEM = defprim("getitem", _getitem_vjp)


@kernel
def _getitem_kernel(d, idx):
    return d[idx]


def _index(a, idx) -> array:
    """``a[idx]`` for a cleaned index."""
    try:
        out = _getitem_kernel(a._data, idx)
    except IndexError as e:
        raise IndexError(f"getitem: {e} (array shape {a.shape})") from None
    return _rec(_GETITEM, out, (a,), {"idx": idx})


def getitem(a, idx) -> array:
    """NumPy-style indexing: ints, slices, None, ..., boolean masks and integer arrays."""
    return _index(_as(a), _clean_index(idx))


_SCATTER_ADD = defprim(
    "scatter_add",
    lambda g, ans, x, v, idx: g,
    lambda g, ans, x, v, idx: g[idx],
)


def _scatter_add(x, idx, v) -> array:
    x, v = _as(x), _as(v)
    try:
        out = _scatter_add_kernel(x._data, idx, v._data.astype(x._data.dtype, copy=False))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"at[].add: cannot add values of shape {v.shape} at {idx!r}: {e}"
        ) from None
    return _rec(_SCATTER_ADD, out, (x, v), {"idx": idx})


@kernel
def _index_update_kernel(x, idx, v):
    out = xp.array(x)
    out[idx] = v
    return out


_INDEX_UPDATE = defprim(
    "index_update",
    lambda g, ans, x, v, idx: _index_update(g, idx, zeros((), g.dtype)),
    lambda g, ans, x, v, idx: g[idx],
)


def _index_update(x, idx, v) -> array:
    x, v = _as(x), _as(v)
    try:
        out = _index_update_kernel(x._data, idx, v._data.astype(x._data.dtype, copy=False))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"setitem: cannot assign values of shape {v.shape} to index {idx!r} of an array of "
            f"shape {x.shape}: {e}"
        ) from None
    return _rec(_INDEX_UPDATE, out, (x, v), {"idx": idx})


@kernel
def _at_kernel(ufunc, x, idx, v):
    out = xp.array(x)
    ufunc.at(out, idx, v)
    return out


def _ufunc_at(ufunc, x, idx, v):
    """The value of ``x`` with ``ufunc`` applied at ``idx`` (repeated indices accumulate)."""
    try:
        out = _at_kernel(ufunc, x._data, idx, v._data.astype(x._data.dtype, copy=False))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"at[].{ufunc.__name__}: cannot apply values of shape {v.shape} at {idx!r} of an "
            f"array of shape {x.shape}: {e}"
        ) from None
    return out


def _delta(a: array) -> array:
    """Zero in value with derivative one: lets a constant result carry a chosen gradient."""
    return a - stop_gradient(a)


class _AtIndexer:
    """``a.at[idx]``: out-of-place updates where repeated indices all take effect (MLX)."""

    __slots__ = ("_a", "_idx")

    def __init__(self, a, idx) -> None:
        self._a = a
        self._idx = _clean_index(idx)

    def add(self, v) -> array:
        """Add ``v`` at the index, accumulating over repeated indices."""
        return _scatter_add(self._a, self._idx, v)

    def subtract(self, v) -> array:
        """Subtract ``v`` at the index, accumulating over repeated indices."""
        return _scatter_add(self._a, self._idx, -_as(v))

    def _scale(self, v, who: str) -> array:
        a, v = self._a, _as(v)
        idx = self._idx
        if v._node is None or not STATE.enabled:
            return a * _from_value(_ufunc_at(xp.multiply, ones_like(a), idx, v))
        hits = _ufunc_at(xp.add, zeros_like(a, _dt.int32), idx, _from_value(xp.asarray(1)))
        if hits.max(initial=0) > 1:
            raise ValueError(
                f"at[].{who}: cannot differentiate with respect to the values when indices "
                "repeat (MLX has no gradient for a scatter product either)"
            )
        return a * _index_update(ones_like(a), idx, v)

    def multiply(self, v) -> array:
        """Multiply by ``v`` at the index, accumulating over repeated indices."""
        return self._scale(v, "multiply")

    def divide(self, v) -> array:
        """Divide by ``v`` at the index, accumulating over repeated indices."""
        return self._scale(reciprocal(_as(v)), "divide")

    def _extreme(self, ufunc, v) -> array:
        a, v = self._a, _as(v)
        if a._data.dtype != v._data.dtype and v._data.dtype.kind in "fc":
            v = astype(v, a.dtype)
        idx = self._idx
        out = _from_value(_ufunc_at(ufunc, a, idx, v))
        if (a._node is None and v._node is None) or not STATE.enabled:
            return out
        # MLX's rule: the array keeps the gradient where it still holds the result, and each
        # update gets it where it equals the result at its index (ties share)
        res = out + where(out == a, _delta(a), 0)
        if v._node is not None:
            hit = _from_value(out._data[idx]) == v
            res = _scatter_add(res, idx, where(hit, _delta(v), 0))
        return res

    def maximum(self, v) -> array:
        """Elementwise maximum with ``v`` at the index (repeated indices all count)."""
        return self._extreme(xp.maximum, v)

    def minimum(self, v) -> array:
        """Elementwise minimum with ``v`` at the index (repeated indices all count)."""
        return self._extreme(xp.minimum, v)


class _At:
    __slots__ = ("_a",)

    def __init__(self, a) -> None:
        self._a = a

    def __getitem__(self, idx) -> _AtIndexer:
        return _AtIndexer(self._a, idx)


def take(a, indices, axis: int | None = None, stream=None) -> array:
    """Elements at ``indices`` along ``axis`` (of the flattened array when None)."""
    a = _as(a)
    ind = _as(indices)._data if not isinstance(indices, int) else indices
    if axis is None:
        return _index(reshape(a, (-1,)), ind)
    ax = _axes(axis, a.ndim, "take")[0]
    return _index(a, (_slice(None),) * ax + (ind,))


def _along_index(shape, ind, ax):
    nd = len(shape)
    idx = []
    for i in range(nd):
        if i == ax:
            idx.append(ind)
        else:
            view = [1] * nd
            view[i] = shape[i]
            idx.append(xp.arange(shape[i]).reshape(view))
    return tuple(idx)


def take_along_axis(a, indices, axis: int | None = None, stream=None) -> array:
    """Gather values at ``indices`` along ``axis``, index shape broadcasting against ``a``."""
    a = _as(a)
    ind = _as(indices)._data
    if axis is None:
        return _index(reshape(a, (-1,)), ind.reshape(-1))
    ax = _axes(axis, a.ndim, "take_along_axis")[0]
    if ind.ndim != a.ndim:
        raise ValueError(
            f"take_along_axis: indices of shape {ind.shape} need {a.ndim} dimensions like the "
            f"array of shape {a.shape}"
        )
    shape = list(
        xp.broadcast_shapes(
            tuple(1 if i == ax else s for i, s in enumerate(a.shape)),
            tuple(1 if i == ax else s for i, s in enumerate(ind.shape)),
        )
    )
    shape[ax] = a.shape[ax]
    return _index(a, _along_index(shape, ind, ax))


def put_along_axis(a, indices, values, axis: int | None = None, stream=None) -> array:
    """``a`` with ``values`` written at ``indices`` along ``axis``."""
    a = _as(a)
    ind = _as(indices)._data
    if axis is None:
        return reshape(_index_update(reshape(a, (-1,)), ind.reshape(-1), values), a.shape)
    ax = _axes(axis, a.ndim, "put_along_axis")[0]
    return _index_update(a, _along_index(a.shape, ind, ax), values)


def slice(a, start_indices, axes, slice_size, stream=None) -> array:
    """``mx.slice``: a block of ``slice_size`` starting at ``start_indices`` on ``axes``."""
    a = _as(a)
    starts = [int(s) for s in _as(start_indices)._data.reshape(-1)]
    index = [_slice(None)] * a.ndim
    for ax, st in zip(axes, starts):
        index[ax] = _slice(st, st + slice_size[ax])
    return _index(a, tuple(index))


def slice_update(a, update, start_indices, axes, stream=None) -> array:
    """``mx.slice_update``: ``a`` with ``update`` written at ``start_indices`` on ``axes``."""
    a, update = _as(a), _as(update)
    starts = [int(s) for s in _as(start_indices)._data.reshape(-1)]
    index = [_slice(None)] * a.ndim
    for ax, st in zip(axes, starts):
        index[ax] = _slice(st, st + update.shape[ax])
    return _index_update(a, tuple(index), update)


def flip(a, axis=None, stream=None) -> array:
    """Reverse the order of elements along ``axis`` (all axes by default)."""
    a = _as(a)
    axes = _axes(axis, a.ndim, "flip")
    index = tuple(_slice(None, None, -1) if i in axes else _slice(None) for i in range(a.ndim))
    return _index(a, index)


def roll(a, shift, axis=None, stream=None) -> array:
    """Shift elements cyclically along ``axis``."""
    a = _as(a)
    if axis is None:
        return reshape(roll(reshape(a, (-1,)), shift, 0), a.shape)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    out = a
    for ax, s in zip(axes, shifts):
        ax = _axes(ax, a.ndim, "roll")[0]
        n = a.shape[ax]
        ind = (xp.arange(n) - s) % n if n else xp.arange(0)
        out = take(out, _from_value(ind), ax)
    return out


def repeat(a, repeats: int, axis: int | None = None, stream=None) -> array:
    """Repeat each element ``repeats`` times along ``axis``."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    ax = _axes(axis, a.ndim, "repeat")[0]
    return take(a, _from_value(xp.repeat(xp.arange(a.shape[ax]), repeats)), ax)


def tile(a, reps, stream=None) -> array:
    """Repeat the whole array ``reps`` times along each axis."""
    a = _as(a)
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    nd = builtins.max(a.ndim, len(reps))
    a = reshape(a, (1,) * (nd - a.ndim) + a.shape)
    reps = (1,) * (nd - len(reps)) + reps
    out = a
    for ax, r in enumerate(reps):
        if r != 1:
            n = a.shape[ax]
            out = take(out, _from_value(xp.tile(xp.arange(n), r)), ax)
    return out


_PAD = defprim(
    "pad",
    lambda g, ans, x, width: g[tuple(_slice(lo, lo + n) for (lo, _), n in zip(width, x.shape))],
)


def pad(a, pad_width, mode: str = "constant", constant_values=0, stream=None) -> array:
    """Pad with a constant (``mode="constant"``) or the edge values (``mode="edge"``)."""
    a = _as(a)
    nd = a.ndim
    if isinstance(pad_width, int):
        width = ((pad_width, pad_width),) * nd
    else:
        pw = list(pad_width)
        if builtins.all(isinstance(p, int) for p in pw) and len(pw) in (1, 2):
            # MLX: one int pads every side alike; one (before, after) pair serves every axis
            pw = [(pw[0], pw[-1])] * nd
        else:
            pw = [(p, p) if isinstance(p, int) else tuple(p) for p in pw]
            if len(pw) == 1:
                pw = pw * nd
        width = tuple((int(lo), int(hi)) for lo, hi in pw)
    if len(width) != nd:
        raise ValueError(f"pad: {len(width)} pad widths for an array of {nd} dimensions")
    if builtins.any(lo < 0 or hi < 0 for lo, hi in width):
        raise ValueError(f"pad: pad widths must be non-negative, got {width}")
    if mode == "constant":
        cv = constant_values._data if type(constant_values) is array else constant_values
        out = xp.pad(a._data, width, mode="constant", constant_values=cv)
        return _rec(_PAD, out, (a,), {"width": width})
    if mode == "edge":
        out = a
        for ax, (lo, hi) in enumerate(width):
            n = a.shape[ax]
            ind = xp.clip(xp.arange(-lo, n + hi), 0, n - 1)
            out = take(out, _from_value(ind), ax)
        return out
    raise ValueError(f"pad: mode must be 'constant' or 'edge', not {mode!r}")


def sort(a, axis: int | None = -1, stream=None) -> array:
    """Sorted values along ``axis`` (ties keep their order; gradients follow the values)."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    idx = argsort(a, axis)
    return take_along_axis(a, idx, axis)


def argsort(a, axis: int | None = -1, stream=None) -> array:
    """Indices that sort ``a`` along ``axis`` (stable; uint32)."""
    d = _as(a)._data
    if axis is None:
        d, axis = d.reshape(-1), 0
    ax = _axes(axis, d.ndim, "argsort")[0]
    return _from_value(xp.argsort(d, axis=ax, kind="stable").astype(xp.uint32))


def argpartition(a, kth: int, axis: int | None = -1, stream=None) -> array:
    """Indices that partition ``a`` around its ``kth`` element."""
    d = _as(a)._data
    if axis is None:
        d, axis = d.reshape(-1), 0
    ax = _axes(axis, d.ndim, "argpartition")[0]
    return _from_value(xp.argpartition(d, kth, axis=ax).astype(xp.uint32))


def partition(a, kth: int, axis: int | None = -1, stream=None) -> array:
    """``a`` partitioned around its ``kth`` element along ``axis``."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    return take_along_axis(a, argpartition(a, kth, axis), axis)


def topk(a, k: int, axis: int | None = -1, stream=None) -> array:
    """The ``k`` largest values along ``axis`` (in no guaranteed order, as in MLX)."""
    a = _as(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    ax = _axes(axis, a.ndim, "topk")[0]
    n = a.shape[ax]
    if not 0 < k <= n:
        raise ValueError(f"topk: k={k} is not in [1, {n}] for axis {axis} of shape {a.shape}")
    idx = xp.argpartition(a._data, n - k, axis=ax)
    idx = xp.take(idx, xp.arange(n - k, n), axis=ax)
    return take_along_axis(a, _from_value(idx), ax)


def median(a, axis=None, keepdims: bool = False, stream=None) -> array:
    """Median over ``axis`` (mean of the two middle values for even lengths)."""
    a = _as(a)
    if axis is None:
        out = median(reshape(a, (-1,)), 0)
        return reshape(out, (1,) * a.ndim) if keepdims else out
    ax = _axes(axis, a.ndim, "median")[0]
    s = sort(a, ax)
    n = a.shape[ax]
    lo, hi = (n - 1) // 2, n // 2
    out = (
        take(s, _from_value(xp.array([lo])), ax) + take(s, _from_value(xp.array([hi])), ax)
    ) * 0.5
    return out if keepdims else squeeze(out, ax)


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1, stream=None) -> array:
    """The diagonal of the ``axis1``/``axis2`` planes, as a last axis."""
    a = _as(a)
    a1, a2 = _axes(axis1, a.ndim, "diagonal")[0], _axes(axis2, a.ndim, "diagonal")[0]
    rest = [i for i in range(a.ndim) if i not in (a1, a2)]
    t = transpose(a, rest + [a1, a2])
    n1, n2 = a.shape[a1], a.shape[a2]
    if offset >= 0:
        k = builtins.max(0, builtins.min(n1, n2 - offset))
        r, c = xp.arange(k), xp.arange(k) + offset
    else:
        k = builtins.max(0, builtins.min(n1 + offset, n2))
        r, c = xp.arange(k) - offset, xp.arange(k)
    return _index(t, (Ellipsis, r, c))


def diag(a, k: int = 0, stream=None) -> array:
    """Extract a diagonal (2-D input) or build a diagonal matrix (1-D input)."""
    a = _as(a)
    if a.ndim == 1:
        n = a.shape[0] + builtins.abs(k)
        r = xp.arange(a.shape[0]) + builtins.max(0, -k)
        c = xp.arange(a.shape[0]) + builtins.max(0, k)
        return _index_update(zeros((n, n), a.dtype), (r, c), a)
    if a.ndim == 2:
        return diagonal(a, k)
    raise ValueError(f"diag: expected a 1-D or 2-D array, got shape {a.shape}")


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None, stream=None) -> array:
    """Sum of the diagonal."""
    out = sum(diagonal(a, offset, axis1, axis2), axis=-1)
    return astype(out, dtype) if dtype is not None else out


def diff(a, n: int = 1, axis: int = -1, stream=None) -> array:
    """``n``-th discrete difference along ``axis``."""
    a = _as(a)
    ax = _axes(axis, a.ndim, "diff")[0]
    for _ in range(n):
        hi = [_slice(None)] * a.ndim
        lo = [_slice(None)] * a.ndim
        hi[ax] = _slice(1, None)
        lo[ax] = _slice(None, -1)
        a = a[tuple(hi)] - a[tuple(lo)]
    return a


def meshgrid(*arrays, sparse: bool = False, indexing: str = "xy", stream=None) -> list[array]:
    """Coordinate grids from 1-D arrays (``indexing="xy"`` or ``"ij"``)."""
    xs = [reshape(_as(x), (-1,)) for x in arrays]
    nd = len(xs)
    shapes = []
    for i in range(nd):
        s = [1] * nd
        s[i] = -1
        shapes.append(s)
    if indexing == "xy" and nd >= 2:
        shapes[0], shapes[1] = list(shapes[0]), list(shapes[1])
        shapes[0][0], shapes[0][1] = 1, -1
        shapes[1][0], shapes[1][1] = -1, 1
    out = [reshape(x, s) for x, s in zip(xs, shapes)]
    if sparse:
        return out
    return broadcast_arrays(*out)


def tri(n: int, m: int | None = None, k: int = 0, dtype=None, stream=None) -> array:
    """Ones at and below the ``k``-th diagonal."""
    return _from_value(xp.tri(n, m, k, dtype=_dt.to_np(dtype or _dt.float32)))


def tril(a, k: int = 0, stream=None) -> array:
    """Zero the elements above the ``k``-th diagonal."""
    a = _as(a)
    mask = xp.tri(a.shape[-2], a.shape[-1], k, dtype=bool)
    return where(_from_value(mask), a, zeros((), a.dtype))


def triu(a, k: int = 0, stream=None) -> array:
    """Zero the elements below the ``k``-th diagonal."""
    a = _as(a)
    mask = xp.tri(a.shape[-2], a.shape[-1], k - 1, dtype=bool)
    return where(_from_value(mask), zeros((), a.dtype), a)


# -- composites of the elementwise table -----------------------------------------------------


def _shift_by_max(a, axis):
    """``a`` minus its (constant) maximum over ``axis``: exponentials of it cannot overflow."""
    a = _as(a)
    if a._data.dtype.kind in "biu":
        a = astype(a, _dt.float32)
    axes = _axes(axis, a.ndim, "softmax")
    m = xp.max(a._data, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return a - _from_value(m), axes


def softmax(a, axis=None, precise: bool = False, stream=None) -> array:
    """``exp(a) / sum(exp(a))`` over ``axis`` (all axes by default), computed stably."""
    z, axes = _shift_by_max(a, axis)
    e = exp(z)
    return e / sum(e, axes, keepdims=True)


def log_softmax(a, axis=None, stream=None) -> array:
    """``a - logsumexp(a)`` over ``axis``, computed stably."""
    z, axes = _shift_by_max(a, axis)
    return z - logsumexp(z, axes, keepdims=True)


def isclose(a, b, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False, stream=None):
    """Elementwise ``|a - b| <= atol + rtol * |b|``."""
    da, db, _, _ = _prep2(a, b)
    return _from_value(xp.isclose(da, db, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(a, b, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False, stream=None):
    """Whether every element of ``a`` is close to ``b`` (a boolean array)."""
    return all(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a, b, equal_nan: bool = False, stream=None) -> array:
    """Whether ``a`` and ``b`` have one shape and equal values (a boolean array)."""
    da, db = _as(a)._data, _as(b)._data
    return _from_value(xp.asarray(xp.array_equal(da, db, equal_nan=equal_nan)))


# -- creation ----------------------------------------------------------------------------------


def _np_dtype(dtype, default=_dt.float32):
    return _dt.to_np(default if dtype is None else dtype)


def _shape(shape) -> tuple:
    if isinstance(shape, int) or hasattr(shape, "__index__"):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def zeros(shape, dtype=None, stream=None) -> array:
    """An array of zeros (float32 by default)."""
    return _from_value(xp.zeros(_shape(shape), dtype=_np_dtype(dtype)))


def ones(shape, dtype=None, stream=None) -> array:
    """An array of ones (float32 by default)."""
    return _from_value(xp.ones(_shape(shape), dtype=_np_dtype(dtype)))


def full(shape, vals, dtype=None, stream=None) -> array:
    """``vals`` broadcast to ``shape`` (its dtype unless ``dtype`` is given)."""
    v = _as(vals)
    if dtype is not None:
        v = astype(v, dtype)
    return (
        broadcast_to(v, _shape(shape)) * 1
        if v._node is not None
        else _from_value(xp.array(xp.broadcast_to(v._data, _shape(shape))))
    )


def zeros_like(a, dtype=None, stream=None) -> array:
    """Zeros with the shape and dtype of ``a``."""
    d = _as(a)._data
    return _from_value(xp.zeros(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


def ones_like(a, dtype=None, stream=None) -> array:
    """Ones with the shape and dtype of ``a``."""
    d = _as(a)._data
    return _from_value(xp.ones(d.shape, dtype=d.dtype if dtype is None else _dt.to_np(dtype)))


def full_like(a, fill_value, dtype=None, stream=None) -> array:
    """``fill_value`` with the shape (and dtype) of ``a``."""
    d = _as(a)._data
    return _from_value(
        xp.full(d.shape, fill_value, dtype=d.dtype if dtype is None else _dt.to_np(dtype))
    )


def arange(start, stop=None, step=None, dtype=None, stream=None) -> array:
    """Evenly spaced values in ``[start, stop)``; int32 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    floaty = builtins.any(isinstance(v, float) for v in (start, stop, step))
    default = _dt.float32 if floaty else _dt.int32
    return _from_value(xp.arange(start, stop, step, dtype=_np_dtype(dtype, default)))


def linspace(start, stop, num: int = 50, dtype=None, stream=None) -> array:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (float32)."""
    return _from_value(xp.linspace(start, stop, num, dtype=_np_dtype(dtype)))


def eye(n: int, m: int | None = None, k: int = 0, dtype=None, stream=None) -> array:
    """Ones on the ``k``-th diagonal."""
    return _from_value(xp.eye(n, m, k, dtype=_np_dtype(dtype)))


def identity(n: int, dtype=None, stream=None) -> array:
    """The ``n`` by ``n`` identity matrix."""
    return eye(n, dtype=dtype)


def size(a) -> int:
    """Number of elements of ``a``."""
    return int(_as(a)._data.size)


# -- the array's operators and methods -------------------------------------------------------


def _r(op):
    def reflected(self, other):
        return op(other, self)

    return reflected


def _install() -> None:
    A = array
    A.__add__, A.__radd__ = add, _r(add)
    A.__sub__, A.__rsub__ = subtract, _r(subtract)
    A.__mul__, A.__rmul__ = multiply, _r(multiply)
    A.__truediv__, A.__rtruediv__ = divide, _r(divide)
    A.__floordiv__, A.__rfloordiv__ = floor_divide, _r(floor_divide)
    A.__mod__, A.__rmod__ = remainder, _r(remainder)
    A.__pow__, A.__rpow__ = power, _r(power)
    A.__matmul__, A.__rmatmul__ = matmul, _r(matmul)
    A.__and__, A.__rand__ = _logic(bitwise_and, logical_and), _r(_logic(bitwise_and, logical_and))
    A.__or__, A.__ror__ = _logic(bitwise_or, logical_or), _r(_logic(bitwise_or, logical_or))
    A.__xor__, A.__rxor__ = bitwise_xor, _r(bitwise_xor)
    A.__lshift__, A.__rlshift__ = left_shift, _r(left_shift)
    A.__rshift__, A.__rrshift__ = right_shift, _r(right_shift)
    A.__neg__ = negative
    A.__pos__ = lambda self: self
    A.__abs__ = abs
    A.__invert__ = _invert
    A.__eq__, A.__ne__ = _eq, _ne
    for name, op in (
        ("add", add),
        ("sub", subtract),
        ("mul", multiply),
        ("truediv", _itruediv),
        ("floordiv", floor_divide),
        ("mod", remainder),
        ("pow", power),
        ("matmul", matmul),
        ("and", _logic(bitwise_and, logical_and)),
        ("or", _logic(bitwise_or, logical_or)),
        ("xor", bitwise_xor),
        ("lshift", left_shift),
        ("rshift", right_shift),
    ):
        setattr(A, f"__i{name}__", _inplace(op))
    A.__format__ = _format
    A.__lt__, A.__le__, A.__gt__, A.__ge__ = less, less_equal, greater, greater_equal
    A.__hash__ = lambda self: id(self)
    A.__divmod__ = divmod
    A.__getitem__ = getitem
    A.__setitem__ = _setitem
    A.at = property(lambda self: _At(self), doc="Indexed updates: ``a.at[idx].add(v)``.")
    A.T = property(lambda self: transpose(self), doc="The transposed array.")
    A.mT = property(lambda self: swapaxes(self, -1, -2), doc="Transpose of the last two axes.")
    A.real = property(lambda self: real(self), doc="The real part.")
    A.imag = property(lambda self: imag(self), doc="The imaginary part.")
    for name in (
        "sum",
        "mean",
        "max",
        "min",
        "argmax",
        "argmin",
        "var",
        "std",
        "prod",
        "exp",
        "log",
        "sqrt",
        "square",
        "abs",
        "reshape",
        "transpose",
        "flatten",
        "squeeze",
        "astype",
        "swapaxes",
        "moveaxis",
        "logsumexp",
        "all",
        "any",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "round",
        "split",
        "diagonal",
        "diag",
        "log1p",
        "log2",
        "log10",
        "sin",
        "cos",
        "rsqrt",
        "reciprocal",
        "conj",
        "expand_dims",
        "sigmoid",
        "tanh",
        "softmax",
        "flip",
        "clip",
        "sort",
        "argsort",
        "topk",
        "take",
        "repeat",
        "tile",
        "trace",
    ):
        setattr(A, name, globals()[name])


def _eq(a, b):
    # ``a == None`` (or a string) is False, not an error, as in MLX
    return False if b is None or type(b) is str else equal(a, b)


def _ne(a, b):
    return True if b is None or type(b) is str else not_equal(a, b)


def _invert(a):
    kind = a._data.dtype.kind
    if kind == "b":
        return logical_not(a)
    if kind not in "iu":
        raise ValueError(f"~: bitwise inversion needs a boolean or integer array, not {a.dtype}")
    return bitwise_invert(a)


def _inplace(op):
    """``a op= b`` as MLX: the handle itself takes the new value (other references see it).

    Under ``no_grad`` a ``requires_grad`` leaf stays a leaf (PyTorch's manual update idiom);
    otherwise the update is recorded like any operation.
    """

    def inplace(self, other):
        new = op(self, other)
        self._set_value(new._data, new._node)
        return self

    return inplace


def _itruediv(a, b):
    if a._data.dtype.kind not in "fc":
        raise ValueError(f"/=: in-place division of a {a.dtype} array cannot keep its dtype")
    return divide(a, b)


def _format(a, spec: str) -> str:
    """``f"{a:.3f}"`` formats the value of a one-element array; ``f"{a}"`` prints it."""
    if not spec:
        return repr(a)
    if a._data.ndim == 0:
        return format(a._data.item(), spec)
    raise TypeError(f"unsupported format string {spec!r} for an array of shape {a.shape}")


def _logic(bitwise, logical):
    def op(a, b):
        da = a._data if type(a) is array else xp.asarray(a)
        if da.dtype == xp.bool_:
            return logical(a, b)
        return bitwise(a, b)

    return op


def _setitem(self: array, idx, value) -> None:
    """``a[idx] = v``: the handle takes the updated value (recorded when differentiated)."""
    new = _index_update(self, _clean_index(idx), value)
    self._set_value(new._data, new._node)


_install()

__all__ = [
    "abs",
    "add",
    "addmm",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "arange",
    "arccos",
    "arccosh",
    "arcsin",
    "arcsinh",
    "arctan",
    "arctan2",
    "arctanh",
    "argmax",
    "argmin",
    "argpartition",
    "argsort",
    "array_equal",
    "astype",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "bitwise_and",
    "bitwise_invert",
    "bitwise_or",
    "bitwise_xor",
    "broadcast_arrays",
    "broadcast_to",
    "ceil",
    "clip",
    "concatenate",
    "conj",
    "contiguous",
    "conjugate",
    "cos",
    "cosh",
    "cummax",
    "cummin",
    "cumprod",
    "cumsum",
    "diag",
    "diagonal",
    "diff",
    "divide",
    "divmod",
    "einsum",
    "equal",
    "erf",
    "erfinv",
    "exp",
    "expand_dims",
    "expm1",
    "eye",
    "flatten",
    "flip",
    "floor",
    "floor_divide",
    "full",
    "full_like",
    "getitem",
    "greater",
    "greater_equal",
    "identity",
    "imag",
    "inner",
    "isclose",
    "isfinite",
    "isinf",
    "isnan",
    "isneginf",
    "isposinf",
    "left_shift",
    "less",
    "less_equal",
    "linspace",
    "log",
    "log10",
    "log1p",
    "log2",
    "log_softmax",
    "logaddexp",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "median",
    "meshgrid",
    "min",
    "minimum",
    "moveaxis",
    "multiply",
    "nan_to_num",
    "negative",
    "not_equal",
    "ones",
    "ones_like",
    "outer",
    "pad",
    "partition",
    "power",
    "prod",
    "put_along_axis",
    "real",
    "reciprocal",
    "remainder",
    "repeat",
    "reshape",
    "right_shift",
    "roll",
    "round",
    "rsqrt",
    "sigmoid",
    "sign",
    "sin",
    "sinh",
    "size",
    "slice",
    "slice_update",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "stop_gradient",
    "subtract",
    "sum",
    "swapaxes",
    "take",
    "take_along_axis",
    "tan",
    "tanh",
    "tensordot",
    "tile",
    "topk",
    "trace",
    "transpose",
    "tri",
    "tril",
    "triu",
    "unflatten",
    "unstack",
    "var",
    "where",
    "zeros",
    "zeros_like",
]
