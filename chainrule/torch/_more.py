"""PyTorch's global switches, type helpers, ``torch.compile``, control flow and legacy types.

* ``set_num_threads``/``get_num_threads`` set and read the BLAS library's thread count
  (``mx.set_num_threads``). Other switches (``set_num_interop_threads``,
  ``use_deterministic_algorithms``, ``set_float32_matmul_precision``, ``set_warn_always``...)
  are remembered and answered back; NumPy computes deterministically in one fixed precision,
  so none of them changes a result.
* ``compile`` runs ``mx.compile`` (chainrule's tracing compiler) under PyTorch's signature.
* ``cond``/``while_loop``/``fork``/``wait`` run eagerly, as PyTorch's do outside ``compile``.
* ``FloatTensor``, ``LongTensor``... are PyTorch's legacy constructors; ``isinstance`` tests the
  dtype as PyTorch's do.
* ``sym_*`` are PyTorch's symbolic-shape helpers on concrete numbers.
"""

from __future__ import annotations

import builtins
import math
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import dtypes as _dt
from chainrule.core.extend import from_value

array = mx.array

_SETTINGS: dict[str, Any] = {
    "num_interop_threads": 1,
    "deterministic": False,
    "deterministic_warn_only": False,
    "matmul_precision": "highest",
    "warn_always": False,
    "anomaly_check_nan": True,
}


def _positive(value: Any, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise RuntimeError(f"{who}: number of threads must be positive, got {value!r}")
    return int(value)


def get_num_threads() -> int:
    """The number of intra-op threads: the BLAS library's (``mx.get_num_threads``)."""
    return mx.get_num_threads()


def set_num_threads(int: int) -> None:  # noqa: A002 (PyTorch's parameter name)
    """Set the intra-op thread count (a positive integer): the BLAS library's matrix products.

    PyTorch's semantics: it applies to this process from now on (``mx.set_num_threads``).
    """
    mx.set_num_threads(_positive(int, "set_num_threads"))


def get_num_interop_threads() -> int:
    """The number of inter-op threads last set (chainrule runs operations one at a time)."""
    return _SETTINGS["num_interop_threads"]


def set_num_interop_threads(int: int) -> None:  # noqa: A002
    """Accept and remember the inter-op thread count (a positive integer); nothing uses it."""
    _SETTINGS["num_interop_threads"] = _positive(int, "set_num_interop_threads")


def init_num_threads() -> None:
    """Nothing to initialise: NumPy's threads are set up by NumPy."""


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Remember the switch; every chainrule kernel is deterministic already."""
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: expected a bool, got {mode!r}")
    _SETTINGS["deterministic"] = mode
    _SETTINGS["deterministic_warn_only"] = bool(warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    """Whether ``use_deterministic_algorithms(True)`` is in effect."""
    return _SETTINGS["deterministic"]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    """Whether the deterministic switch was set with ``warn_only=True``."""
    return _SETTINGS["deterministic_warn_only"]


def set_deterministic_debug_mode(debug_mode: str | int) -> None:
    """``"default"``/0, ``"warn"``/1 or ``"error"``/2 (the deterministic switch, by level)."""
    names = {"default": 0, "warn": 1, "error": 2}
    if isinstance(debug_mode, str):
        if debug_mode not in names:
            raise RuntimeError(
                f"invalid value of debug_mode, expected one of `default`, `warn`, `error`, but "
                f"got {debug_mode}"
            )
        level = names[debug_mode]
    elif isinstance(debug_mode, int) and 0 <= debug_mode <= 2:
        level = debug_mode
    else:
        raise RuntimeError(
            f"invalid value of debug_mode, expected 0, 1, or 2, but got {debug_mode}"
        )
    use_deterministic_algorithms(level > 0, warn_only=level == 1)


def get_deterministic_debug_mode() -> int:
    """0 (off), 1 (warn) or 2 (error)."""
    if not _SETTINGS["deterministic"]:
        return 0
    return 1 if _SETTINGS["deterministic_warn_only"] else 2


def set_float32_matmul_precision(precision: str) -> None:
    """``"highest"``, ``"high"`` or ``"medium"`` (NumPy multiplies float32 in full precision)."""
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(
            f"set_float32_matmul_precision: invalid precision {precision!r}, expected "
            "'highest', 'high' or 'medium'"
        )
    _SETTINGS["matmul_precision"] = precision


def get_float32_matmul_precision() -> str:
    """The precision last set (``"highest"`` by default)."""
    return _SETTINGS["matmul_precision"]


def set_flush_denormal(mode: bool) -> bool:
    """Returns False: flushing denormals is not supported on NumPy (as PyTorch on such CPUs)."""
    return False


def set_warn_always(b: bool) -> None:
    """Remember whether warnings that PyTorch gives once should be given every time."""
    _SETTINGS["warn_always"] = bool(b)


def is_warn_always_enabled() -> bool:
    """The value last given to ``set_warn_always``."""
    return _SETTINGS["warn_always"]


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection (``torch.autograd.set_detect_anomaly``) is on."""
    return bool(mx.is_anomaly_enabled())


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    """Switch anomaly detection (the engine's ``mx.set_detect_anomaly``)."""
    mx.set_detect_anomaly(bool(enabled))
    _SETTINGS["anomaly_check_nan"] = bool(check_nan)


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection checks for NaN (the value last given)."""
    return _SETTINGS["anomaly_check_nan"]


# -- types -------------------------------------------------------------------------------------

_LEGACY = {
    "FloatTensor": "float32",
    "DoubleTensor": "float64",
    "HalfTensor": "float16",
    "BFloat16Tensor": "bfloat16",
    "LongTensor": "int64",
    "IntTensor": "int32",
    "ShortTensor": "int16",
    "CharTensor": "int8",
    "ByteTensor": "uint8",
    "BoolTensor": "bool",
}


def typename(obj: Any, /) -> str:
    """``"torch.FloatTensor"`` and friends for tensors, else ``module.QualifiedName``."""
    if isinstance(obj, array):
        for legacy, name in _LEGACY.items():
            if obj.dtype.name == name:
                return f"torch.{legacy}"
        return f"torch.{obj.dtype.name}Tensor"
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return qual if module in (None, "builtins") else f"{module}.{qual}"


def _np(dtype: Any) -> np.dtype:
    return np.dtype(_dt.to_np(dtype))


def _category(d: np.dtype) -> int:
    kind = _dt.kind(d)
    return {"b": 0, "u": 1, "i": 1, "f": 2, "V": 2, "c": 3}[kind]


def promote_types(type1: Any, type2: Any) -> mx.Dtype:
    """The dtype both promote to under PyTorch's rules (an integer meeting a float takes the
    float's type; float16 with bfloat16 gives float32)."""
    a, b = _np(type1), _np(type2)
    ca, cb = _category(a), _category(b)
    if ca != cb and 2 in (ca, cb) and 3 not in (ca, cb):
        return _dt.from_np(a if ca > cb else b)
    if ca != cb and max(ca, cb) == 3 and min(ca, cb) < 2:
        return _dt.from_np(a if ca == 3 else b)
    bf = _dt.to_np(mx.bfloat16)
    if bf in (a, b):
        other = b if a == bf else a
        if other == bf or _category(other) < 2:
            return mx.bfloat16
        if other == np.float16:
            return mx.float32
        return _dt.from_np(np.promote_types(np.float32, other))
    for d in (a, b):
        if d.kind == "u" and d.itemsize > 1:
            other = b if d is a else a
            if other != d and _category(other) < 2:
                raise RuntimeError(
                    f"Promotion for uint16, uint32, uint64 types is not supported, attempted to "
                    f"promote {a.name} and {b.name}"
                )
    return _dt.from_np(np.promote_types(a, b))


def can_cast(from_: Any, to: Any) -> bool:
    """Whether PyTorch's type promotion allows casting ``from_`` to ``to`` (no float to integer,
    no complex to real, nothing but bool to bool)."""
    a, b = _np(from_), _np(to)
    ca, cb = _category(a), _category(b)
    return not (ca > cb and not (ca == 1 and cb == 1))


class _LegacyMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, array) and obj.dtype.name == cls._dtype_name


def _legacy(name: str, dtype_name: str) -> type:
    def __new__(cls, *args: Any, device: Any = None) -> array:
        from ._creation import tensor, zeros
        from ._tensor_class import as_tensor_class

        dtype = getattr(mx, "bool_" if dtype_name == "bool" else dtype_name)
        if not args:
            return as_tensor_class(zeros(0, dtype=dtype))
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            return as_tensor_class(zeros(*args, dtype=dtype))
        if len(args) != 1:
            raise TypeError(f"{name}(): expected one data argument or sizes, got {args!r}")
        return as_tensor_class(tensor(args[0], dtype=dtype))

    doc = (
        f"PyTorch's legacy ``torch.{name}``: ``{name}(data)`` or ``{name}(*sizes)`` make a "
        f"{dtype_name} tensor; ``isinstance(x, torch.{name})`` tests the dtype."
    )
    return _LegacyMeta(name, (), {"__new__": __new__, "_dtype_name": dtype_name, "__doc__": doc})


LEGACY_TYPES = {name: _legacy(name, d) for name, d in _LEGACY.items()}


def set_default_tensor_type(t: Any) -> None:
    """PyTorch's deprecated ``torch.set_default_tensor_type``: a floating legacy type
    (``torch.DoubleTensor`` or ``"torch.DoubleTensor"``) sets the default dtype, as
    ``torch.set_default_dtype`` does; ``"torch.cuda.FloatTensor"`` also makes CUDA the default
    device. Warns, as PyTorch does, that the two modern functions replace it.

    Raises:
        TypeError: for a type that is not a floating legacy type, or CUDA when none is here.
    """
    warnings.warn(
        "torch.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use "
        "torch.set_default_dtype() and torch.set_default_device() as alternatives.",
        UserWarning,
        stacklevel=2,
    )
    name = t if isinstance(t, str) else getattr(t, "__name__", None)
    cuda = isinstance(name, str) and name.startswith("torch.cuda.")
    if isinstance(name, str):
        name = name.rsplit(".", 1)[-1]
    dtype_name = _LEGACY.get(name) if isinstance(name, str) else None
    if dtype_name is None or (not isinstance(t, str) and LEGACY_TYPES.get(name) is not t):
        raise TypeError(
            "invalid type object: only floating-point types are supported as the default type"
        )
    if dtype_name not in ("float32", "float64", "float16", "bfloat16"):
        raise TypeError("only floating-point types are supported as the default type")
    from ._creation import set_default_device, set_default_dtype

    if cuda:
        try:
            set_default_device("cuda")
        except (RuntimeError, ValueError) as e:
            raise TypeError(f"type torch.cuda.{name} not available: {e}") from None
    set_default_dtype(getattr(mx, dtype_name))


class memory_format:
    """A memory format (``torch.contiguous_format``, ``channels_last``...); values here have
    no layout, so each is accepted and has no effect."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"torch.{self.name}"


MEMORY_FORMATS = {
    n: memory_format(n)
    for n in ("contiguous_format", "preserve_format", "channels_last", "channels_last_3d")
}
MEMORY_FORMATS["legacy_contiguous_format"] = MEMORY_FORMATS["contiguous_format"]


# -- compile and control flow ------------------------------------------------------------------

_BACKENDS = ("inductor", "eager", "aot_eager", "cudagraphs")
_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class OptimizedModule:
    """What ``torch.compile(module)`` returns: calls run through ``mx.compile``; every other
    attribute is the module's (``_orig_mod`` is the module itself)."""

    def __init__(self, mod: Any, compiled: Callable) -> None:
        object.__setattr__(self, "_orig_mod", mod)
        object.__setattr__(self, "_compiled", compiled)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orig_mod, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._orig_mod, name, value)

    def __repr__(self) -> str:
        return f"OptimizedModule({self._orig_mod!r})"


def compile(
    model: Callable | None = None,
    *,
    fullgraph: bool = False,
    dynamic: bool | None = None,
    backend: str | Callable = "inductor",
    mode: str | None = None,
    options: dict | None = None,
    disable: bool = False,
    **kwargs: Any,
) -> Any:
    """``torch.compile`` over ``mx.compile``: a function or module whose calls are traced once
    per input signature and replayed (checked against an eager call at first).

    ``backend`` must be one of PyTorch's built-in names (``"inductor"``, ``"eager"``,
    ``"aot_eager"``, ``"cudagraphs"``): all run chainrule's compiler (FX-graph callables are
    refused). ``mode``/``fullgraph``/``options`` are accepted; ``dynamic=True`` compiles
    shapelessly (one program for new shapes of the same ranks); ``disable=True`` returns
    ``model`` itself. Without ``model`` it is a decorator.
    """
    if not isinstance(backend, str):
        raise ValueError(
            "compile: custom backends (callables taking an FX graph) are not supported; use one "
            f"of {', '.join(_BACKENDS)}"
        )
    if backend not in _BACKENDS:
        raise ValueError(
            f"compile: invalid backend {backend!r}; chainrule offers {', '.join(_BACKENDS)}"
        )
    if mode not in _MODES:
        raise RuntimeError(
            f"Unrecognized mode={mode}, should be one of: "
            f"{', '.join(m for m in _MODES if m is not None)}"
        )
    if mode is not None and options is not None:
        raise RuntimeError(
            "Either mode or options can be specified, but both can't be specified at the same time."
        )
    if model is None:
        return lambda m: compile(
            m,
            fullgraph=fullgraph,
            dynamic=dynamic,
            backend=backend,
            mode=mode,
            options=options,
            disable=disable,
        )
    if not callable(model):
        raise RuntimeError(f"compile: model must be a callable, got {type(model).__name__}")
    if disable:
        return model
    shapeless = bool(dynamic)
    if hasattr(model, "parameters") and hasattr(model, "forward"):
        fn = mx.compile(lambda *a, **k: model(*a, **k), shapeless=shapeless)
        return OptimizedModule(model, fn)
    return mx.compile(model, shapeless=shapeless)


def cond(pred: Any, true_fn: Callable, false_fn: Callable, operands: tuple | list = ()) -> Any:
    """``true_fn(*operands)`` if ``pred`` (a bool or one-element tensor) else ``false_fn``."""
    if isinstance(pred, array):
        if pred.size != 1:
            raise RuntimeError(
                f"cond: expected pred to be a bool or a one-element tensor, got shape {pred.shape}"
            )
        pred = builtins.bool(pred.item())
    if not isinstance(operands, (tuple, list)):
        raise RuntimeError(f"cond: expect operands to be a tuple or list, got {type(operands)}")
    return true_fn(*operands) if pred else false_fn(*operands)


def while_loop(cond_fn: Callable, body_fn: Callable, carried_inputs: tuple | list) -> tuple:
    """Run ``carried = body_fn(*carried)`` while ``cond_fn(*carried)``; returns the carry."""
    if not isinstance(carried_inputs, (tuple, list)):
        raise RuntimeError(
            f"while_loop: carried_inputs must be a tuple or list, got {type(carried_inputs)}"
        )
    carried = tuple(carried_inputs)
    while True:
        c = cond_fn(*carried)
        if isinstance(c, array):
            c = builtins.bool(c.item())
        if not c:
            return carried
        out = body_fn(*carried)
        carried = tuple(out) if isinstance(out, (tuple, list)) else (out,)


class Future:
    """The result of ``torch.jit.fork``-style ``fork``: already computed, ``wait()`` returns it."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self._lock = threading.Lock()

    def wait(self) -> Any:
        """The value (or the error the call raised)."""
        if self._error is not None:
            raise self._error
        return self._value

    def value(self) -> Any:
        """``wait()``."""
        return self.wait()

    def done(self) -> bool:
        """True: the call has run."""
        return True

    def then(self, callback: Callable) -> Future:
        """A future of ``callback(self)``."""
        return fork(callback, self)


def fork(func: Callable, *args: Any, **kwargs: Any) -> Future:
    """Call ``func`` (here, at once) and return a ``Future`` of its result."""
    try:
        return Future(func(*args, **kwargs))
    except Exception as e:  # surfaced by wait(), as PyTorch's futures do
        return Future(error=e)


def wait(future: Future) -> Any:
    """``future.wait()``."""
    return future.wait()


# -- symbolic-shape helpers on concrete numbers -------------------------------------------------


def sym_int(a: Any) -> int:
    """``int(a)`` (toward zero)."""
    return builtins.int(math.trunc(a)) if isinstance(a, builtins.float) else builtins.int(a)


def sym_float(a: Any) -> float:
    """``float(a)``."""
    return builtins.float(a)


def sym_max(a: Any, b: Any) -> Any:
    """``max(a, b)``."""
    return builtins.max(a, b)


def sym_min(a: Any, b: Any) -> Any:
    """``min(a, b)``."""
    return builtins.min(a, b)


def sym_not(a: Any) -> bool:
    """``not a``."""
    return not a


def sym_sqrt(a: Any) -> float:
    """``math.sqrt(a)``."""
    return math.sqrt(a)


def sym_sum(args: Any) -> Any:
    """``sum(args)``."""
    return builtins.sum(args)


def sym_ite(b: Any, t: Any, f: Any) -> Any:
    """``t if b else f``."""
    return t if b else f


def sym_fresh_size(expr: Any) -> Any:
    """The size itself (there are no symbolic sizes here)."""
    return expr


def sym_constrain_range(size: Any, *, min: int | None = None, max: int | None = None) -> None:
    """Check that a concrete ``size`` lies in ``[min, max]``."""
    if (min is not None and size < min) or (max is not None and size > max):
        raise RuntimeError(f"sym_constrain_range: {size} is outside [{min}, {max}]")


def sym_constrain_range_for_size(
    size: Any, *, min: int | None = None, max: int | None = None
) -> None:
    """Check that a concrete ``size`` is a valid size in ``[min, max]``."""
    if size < 0:
        raise RuntimeError(f"sym_constrain_range_for_size: size {size} is negative")
    sym_constrain_range(size, min=min, max=max)


# -- small tensor functions --------------------------------------------------------------------


def get_device(input: array) -> int:
    """-1: every tensor is on the CPU."""
    return -1


def is_distributed(input: array) -> bool:
    """False."""
    return False


def frobenius_norm(input: array, dim: Any = (), keepdim: bool = False) -> array:
    """``sqrt(sum(|x|**2))`` over ``dim`` (all by default)."""
    d = None if dim in ((), None) else (dim if isinstance(dim, builtins.int) else tuple(dim))
    a = mx.abs(input)
    return mx.sqrt(mx.sum(a * a, d, keepdim))


def nuclear_norm(input: array, dim: Any = None, keepdim: bool = False) -> array:
    """The sum of the singular values of the matrices over ``dim`` (the last two by default)."""
    x = input if dim is None else mx.moveaxis(mx.moveaxis(input, dim[0], -2), dim[1], -1)
    out = mx.linalg.norm(x, "nuc", (-2, -1), keepdim)
    return out


def native_norm(input: array, p: Any = 2) -> array:
    """The p-norm of all elements."""
    from chainrule.core import tensor_ops_math as M

    return M.vector_norm(input, p)


def norm_except_dim(v: array, pow: Any = 2, dim: int = 0) -> array:
    """The ``pow``-norm of ``v`` over every dimension but ``dim`` (kept; others of size 1)."""
    from chainrule.core import tensor_ops_math as M

    if dim == -1:
        return M.vector_norm(v, pow)
    d = dim % v.ndim
    axes = tuple(i for i in builtins.range(v.ndim) if i != d)
    return M.vector_norm(v, pow, axes, True)


def segment_reduce(
    data: array,
    reduce: str,
    *,
    lengths: Any = None,
    indices: Any = None,
    offsets: Any = None,
    axis: int = 0,
    unsafe: bool = False,
    initial: Any = None,
) -> array:
    """Reduce consecutive segments of ``data`` along ``axis`` (``lengths`` or ``offsets``) with
    ``sum``, ``mean``, ``max``, ``min`` or ``prod``; empty segments give ``initial`` (or
    PyTorch's default: 0 for sum/mean, the identity otherwise)."""
    if reduce not in ("sum", "mean", "max", "min", "prod"):
        raise RuntimeError(
            f"segment_reduce: reduce {reduce!r} is not one of sum, mean, max, min, prod"
        )
    if lengths is not None:
        ln = (lengths._data if isinstance(lengths, array) else np.asarray(lengths)).astype(np.int64)
        bounds = np.concatenate([[0], np.cumsum(ln)])
    elif offsets is not None:
        bounds = (offsets._data if isinstance(offsets, array) else np.asarray(offsets)).astype(
            np.int64
        )
    else:
        raise RuntimeError("segment_reduce: give lengths or offsets")
    ax = axis % data.ndim
    parts = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        key = [builtins.slice(None)] * data.ndim
        key[ax] = builtins.slice(a, b)
        seg = data[tuple(key)]
        if b == a:
            shape = list(data.shape)
            del shape[ax]
            fill = initial
            if fill is None:
                fill = {"sum": 0, "mean": math.nan, "prod": 1, "max": -math.inf, "min": math.inf}[
                    reduce
                ]
            parts.append(mx.full(tuple(shape), fill, data.dtype))
            continue
        fn = {"sum": mx.sum, "mean": mx.mean, "max": mx.max, "min": mx.min, "prod": mx.prod}
        parts.append(fn[reduce](seg, ax))
    return mx.stack(parts, axis=ax)


# -- functions over torch.nn.functional and the linear-algebra methods ---------------------------


def _functional() -> Any:
    import importlib

    return importlib.import_module("chainrule.torch.nn.functional")


def lu(A: array, pivot: bool = True, get_infos: bool = False) -> tuple:
    """``(LU, pivots)`` (and ``infos``) of the LU factorisation, pivots 1-based int32."""
    if not pivot:
        raise RuntimeError("lu: LU without pivoting is not implemented on the CPU (as PyTorch)")
    return A.lu(pivot=pivot, get_infos=get_infos)


def lu_solve(b: array, LU_data: array, LU_pivots: array) -> array:
    """Solve ``A x = b`` from ``lu``'s factors."""
    return b.lu_solve(LU_data, LU_pivots)


def conj_physical_(input: array) -> array:
    """In-place ``conj_physical``."""
    return input.conj_physical_()


conj_physical_.__wrapped_door__ = True  # rebinds the caller's handle (see _ops.INPLACE)


def constant_pad_nd(input: array, pad: Any, value: float = 0) -> array:
    """Pad the last dimensions with ``value`` (``pad`` as in ``nn.functional.pad``)."""
    return _functional().pad(input, list(pad), "constant", value)


def convolution(
    input: array,
    weight: array,
    bias: array | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
) -> array:
    """N-d convolution (or transposed convolution) with every argument explicit."""
    nd = input.ndim - 2
    if nd not in (1, 2, 3):
        raise RuntimeError(
            f"convolution: expected a 3-D, 4-D or 5-D input, got shape {input.shape}"
        )
    f = _functional()
    if transposed:
        fn = getattr(f, f"conv_transpose{nd}d")
        return fn(input, weight, bias, stride, padding, output_padding, groups, dilation)
    return getattr(f, f"conv{nd}d")(input, weight, bias, stride, padding, dilation, groups)


def native_dropout(input: array, p: float, train: bool | None) -> tuple:
    """``(output, mask)``: dropout that also returns the bool mask of kept elements."""
    if not train:
        return input, from_value(np.ones(input.shape, bool))
    from chainrule.core import backend

    from ._random import _stream

    keep = _stream(None).bernoulli(1.0 - p, tuple(input.shape))  # (PyTorch's draws)
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
    mask = from_value(backend.same_device(keep, input._data))  # (on the input's device)
    return input * mx.astype(mask, input.dtype) * scale, mask


def native_layer_norm(
    input: array, normalized_shape: Any, weight: array | None, bias: array | None, eps: float
) -> tuple:
    """``(output, mean, rstd)`` of layer normalisation (statistics keep reduced dims)."""
    n = len(tuple(normalized_shape))
    axes = tuple(builtins.range(input.ndim - n, input.ndim))
    mean = mx.mean(input, axes, True)
    var = mx.var(input, axes, True)
    rstd = mx.rsqrt(var + eps)
    out = (input - mean) * rstd
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out, mean, rstd


EXPORTS: dict[str, Any] = {
    name: obj
    for name, obj in list(globals().items())
    if not name.startswith("_")
    and callable(obj)
    and getattr(obj, "__module__", None) == __name__
    and name not in ("memory_format", "OptimizedModule")
}
EXPORTS.update(LEGACY_TYPES)
EXPORTS.update(MEMORY_FORMATS)
EXPORTS.update(
    memory_format=memory_format,
    e=math.e,
    pi=math.pi,
    inf=math.inf,
    nan=math.nan,
    newaxis=None,
    has_lapack=True,
    has_mkl=False,
    has_openmp=False,
    has_spectral=True,
)
"""What ``chainrule.torch`` binds from this module."""
