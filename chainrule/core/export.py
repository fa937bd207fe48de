"""``mx.export_function``, ``mx.import_function`` and ``mx.exporter`` (MLX's function export).

A function is exported by running it once on example arrays with ``mx.compile``'s tracer
(``tracing.py``): every NumPy call made on the traced values becomes one step. The steps, the
constants they read (weights, captured arrays) and the inputs' shapes and dtypes are written to
one safetensors-layout file through :mod:`chainrule.core.io`'s atomic writer:

* the tensors are the constants (``c0``, ``c1``, ...; equal constants are stored once, also
  across the traces of one :func:`exporter`);
* the header's ``__metadata__`` holds ``chainrule.export`` (a JSON document: the traces, each a
  list of steps) and ``metadata`` (the caller's string).

A step names its operation with a tag and a name, never with code: a NumPy ufunc (or one of its
``at``/``reduce``/... methods), a function of ``numpy``/``numpy.linalg``/``numpy.fft``, an
``ndarray`` method from a fixed list, or a backend kernel of ``chainrule.core`` marked
``@kernel``. Arguments are JSON values with tags for tuples, slices, dtypes, scalars, slot
references and constants. Loading checks every step against these allow-lists before anything
runs and replays the steps with a small interpreter (nothing is ``exec``-ed, nothing is
unpickled); a file naming anything else is refused with a :class:`~chainrule.core.io.FileFormatError`.

Random draws made while tracing are constants of the export (as MLX, whose keys are constants).
With ``shapeless=True`` an imported trace accepts inputs of any shape with the traced number of
dimensions; steps whose arguments hold shapes read while tracing keep those shapes (as in MLX).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import operator
import os
import re
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from . import backend as _backend
from . import devices as _devices
from . import dtypes as _dt
from .array import STATE, _from_value, array
from .autograd import no_grad
from .gpu_closure import closure_on_host
from .io import (
    MLX_SAFETENSORS_DTYPES,
    FileFormatError,
    json_loads_bounded,
    read_safetensors,
    write_safetensors,
)
from .tracing import _LOCAL, Traced, _ndarray, _ndview, _patch_numpy, _Ref, _resolve_view, _Tracer
from .tracing import _call as _tr_call
from .tracing import kernel as _kernel

__all__ = ["export_function", "import_function", "exporter", "FunctionExporter"]

_FORMAT = "chainrule.export"
_VERSION = 1
_JSON_DEPTH = 64

# -- allow-lists ---------------------------------------------------------------------------

_NP_MODULES = {
    "numpy": np,
    "numpy.linalg": np.linalg,
    "numpy.fft": np.fft,
    "numpy.lib.stride_tricks": np.lib.stride_tricks,
}
# NumPy functions that touch files, run callables or change global state: never resolved
_NP_DENIED = frozenset(
    "load save savez savez_compressed loadtxt savetxt genfromtxt fromfile fromregex memmap "
    "frompyfunc vectorize piecewise apply_along_axis apply_over_axes set_printoptions seterr "
    "seterrcall setbufsize info source lookfor DataSource get_include show_config "
    "show_runtime test".split()
)
_UFUNC_METHODS = frozenset("at reduce accumulate outer reduceat".split())
# the ndarray methods the tracer records (tracing.py)
_METHODS = frozenset(
    "__getitem__ all any argmax argmin argpartition argsort astype byteswap choose clip compress "
    "conj conjugate copy __copy__ cumprod cumsum diagonal dot flatten max mean min nonzero prod "
    "ravel repeat reshape round searchsorted squeeze std sum swapaxes take trace transpose var "
    "view __setitem__ fill sort partition put".split()
)
_ATTRS = frozenset("T mT real imag".split())
_KERNEL_CODE = _kernel(lambda: None).__code__  # the wrapper every ``@kernel`` function shares
_ITEM_CODES = frozenset(c for c in Traced.item.__code__.co_consts if isinstance(c, types.CodeType))
_PY_GUARDS: dict[str, Callable] = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "index": operator.index,
}
_PY_GUARD_NAMES = {v: k for k, v in _PY_GUARDS.items()}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ATTRGETTER = re.compile(r"operator\.attrgetter\('([A-Za-z_]+)'\)\Z")

_DTYPE_NAMES = (
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
    "complex64 complex128 bfloat16".split()
)


def _np_dtype(name: Any) -> np.dtype:
    if name not in _DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}")
    return np.dtype(_dt.BFLOAT16_NP) if name == "bfloat16" else np.dtype(name)


def _dtype_name(d: np.dtype) -> str:
    d = np.dtype(d)
    name = "bfloat16" if d == _dt.BFLOAT16_NP else d.name
    if name not in _DTYPE_NAMES or not d.isnative:
        raise ValueError(f"export_function: dtype {d} cannot be exported")
    return name


# safetensors codes of the constants (complex128 too: an export keeps float64 programs exact)
_TENSOR_CODES = {**MLX_SAFETENSORS_DTYPES, "C128": np.dtype("<c16")}


# -- encoding (export side) ----------------------------------------------------------------


class _Constants:
    """The constants of one file, stored once each (keyed by dtype, shape and content)."""

    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        self.by_key: dict = {}

    def add(self, x: np.ndarray) -> str:
        x = np.ascontiguousarray(x) if x.ndim else np.asarray(x)
        _dtype_name(x.dtype)
        key = (x.dtype.str, x.shape, hashlib.sha256(x.tobytes()).hexdigest())
        name = self.by_key.get(key)
        if name is None:
            name = self.by_key[key] = f"c{len(self.tensors)}"
            self.tensors[name] = x.copy()
        return name


def _enc(x: Any, consts: _Constants) -> Any:
    """A step argument as JSON (tags for everything JSON has no word for)."""
    t = type(x)
    if t is _Ref:
        return {"ref": x.slot}
    if x is None or t is bool or t is str or t is int:
        return x
    if t is float:
        return x if math.isfinite(x) else {"float": repr(x)}
    if t is complex:
        return {"complex": [_enc(x.real, consts), _enc(x.imag, consts)]}
    if t is tuple or t is list:
        return {t.__name__: [_enc(v, consts) for v in x]}
    if t is dict:
        if not all(type(k) is str for k in x):
            raise ValueError("export_function: a dict argument with non-string keys")
        return {"dict": [[k, _enc(v, consts)] for k, v in x.items()]}
    if t is slice:
        return {"slice": [_enc(x.start, consts), _enc(x.stop, consts), _enc(x.step, consts)]}
    if x is Ellipsis:
        return {"ellipsis": 0}
    if t is _ndarray:
        return {"const": consts.add(x)}
    if isinstance(x, np.generic):
        return {"scalar": [_dtype_name(x.dtype), _enc(x.item(), consts)]}
    if isinstance(x, np.dtype):
        return {"dtype": _dtype_name(x)}
    if isinstance(x, type) and issubclass(x, np.generic):
        return {"sctype": _dtype_name(np.dtype(x))}
    if x in (float, int, bool, complex):
        return {"pytype": x.__name__}
    if t is np.ufunc:
        return {"ufunc": x.__name__}
    raise ValueError(f"export_function: a step argument of type {t.__name__} cannot be exported")


def _enc_fn(fn: Any, guard: bool) -> dict:
    """The name of a step's operation, checked to resolve back to ``fn`` itself."""
    if fn in _EXPORT_KERNEL_NAMES:
        return {"export": _EXPORT_KERNEL_NAMES[fn]}
    if type(fn) is np.ufunc:
        return {"ufunc": fn.__name__}
    owner = getattr(fn, "__self__", None)
    if type(owner) is np.ufunc and getattr(fn, "__name__", None) in _UFUNC_METHODS:
        return {"ufunc": owner.__name__, "method": fn.__name__}
    meth = getattr(type(fn), "__name__", "")
    if meth == "_Meth" and fn.name in _METHODS:
        return {"method": fn.name}
    if type(fn) is operator.attrgetter:
        m = _ATTRGETTER.match(repr(fn))
        if m and m.group(1) in _ATTRS:
            return {"attr": m.group(1)}
    if guard:
        if fn in _PY_GUARD_NAMES:
            return {"py": _PY_GUARD_NAMES[fn]}
        code = getattr(fn, "__code__", None)
        if code in _ITEM_CODES and not any(c.cell_contents for c in fn.__closure__ or ()):
            return {"py": "item"}
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and _IDENT.match(name):
        for key, mod in _NP_MODULES.items():
            if getattr(mod, name, None) is fn and name not in _NP_DENIED:
                return {"np": f"{key}.{name}"}
        mod_name = getattr(fn, "__module__", "") or ""
        wrapped = getattr(sys.modules.get(mod_name), name, None)
        if mod_name.startswith("chainrule.core.") and getattr(wrapped, "__wrapped__", None) is fn:
            return {"kernel": f"{mod_name}.{name}"}
    raise ValueError(
        f"export_function: the traced function calls {getattr(fn, '__name__', fn)!r}, which "
        "cannot be exported (only NumPy functions and chainrule's kernels can)"
    )


# -- decoding (import side) ----------------------------------------------------------------


def _call_method(name: str) -> Callable:
    def call(obj, *args, **kwargs):
        return getattr(obj, name)(*args, **kwargs)

    call.__name__ = name
    return call


def _item(v):
    return v.item()


def _resolve_fn(spec: Any, guard: bool) -> Callable:
    """The operation a step names, from the allow-lists only (ValueError otherwise)."""
    if type(spec) is not dict or len(spec) not in (1, 2):
        raise ValueError(f"malformed operation {spec!r}")
    if "ufunc" in spec:
        u = getattr(np, str(spec["ufunc"]), None) if _IDENT.match(str(spec["ufunc"])) else None
        if type(u) is not np.ufunc:
            raise ValueError(f"unknown ufunc {spec['ufunc']!r}")
        method = spec.get("method")
        if method is None and len(spec) == 1:
            return u
        if method not in _UFUNC_METHODS:
            raise ValueError(f"ufunc method {method!r} is not allowed")
        return getattr(u, method)
    if len(spec) != 1:
        raise ValueError(f"malformed operation {spec!r}")
    ((kind, name),) = spec.items()
    if type(name) is not str:
        raise ValueError(f"malformed operation {spec!r}")
    if kind == "export" and name in _EXPORT_KERNELS:
        return _EXPORT_KERNELS[name]
    if kind == "method" and name in _METHODS:
        return _call_method(name)
    if kind == "attr" and name in _ATTRS:
        return operator.attrgetter(name)
    if kind == "py" and guard and (name in _PY_GUARDS or name == "item"):
        return _PY_GUARDS.get(name, _item)
    mod, _, attr = name.rpartition(".")
    if kind == "np" and mod in _NP_MODULES and _IDENT.match(attr) and not attr.startswith("_"):
        obj: Any = getattr(_NP_MODULES[mod], attr, None) if attr not in _NP_DENIED else None
        if callable(obj) and not isinstance(obj, (type, types.ModuleType)):
            return obj
    if kind == "kernel" and mod.startswith("chainrule.core.") and _IDENT.match(attr):
        # only a module chainrule already loaded, and only a function marked ``@kernel``
        obj = getattr(sys.modules.get(mod), attr, None)
        if getattr(obj, "__code__", None) is _KERNEL_CODE:
            return obj
    raise ValueError(f"operation {kind}:{name!r} is not in the export allow-list")


class _Dec:
    """Turns an encoded argument into a template: values, with ``_Ref`` for slots."""

    def __init__(self, consts: dict[str, np.ndarray]) -> None:
        self.consts = consts

    def __call__(self, x: Any) -> Any:
        t = type(x)
        if x is None or t in (bool, int, float, str):
            return x
        if t is not dict or len(x) != 1:
            raise ValueError(f"malformed argument {x!r:.80}")
        ((tag, v),) = x.items()
        if tag == "ref" and type(v) is int:
            return _Ref(v)
        if tag in ("tuple", "list") and type(v) is list:
            items = [self(i) for i in v]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict" and type(v) is list:
            return {str(k): self(i) for k, i in v}
        if tag == "slice" and type(v) is list and len(v) == 3:
            return slice(*(self(i) for i in v))
        if tag == "ellipsis":
            return Ellipsis
        if tag == "float" and v in ("inf", "-inf", "nan"):
            return float(v)
        if tag == "complex" and type(v) is list and len(v) == 2:
            return complex(self(v[0]), self(v[1]))
        if tag == "const" and v in self.consts:
            return self.consts[v]
        if tag == "scalar" and type(v) is list and len(v) == 2:
            return _np_dtype(v[0]).type(self(v[1]))
        if tag == "dtype":
            return _np_dtype(v)
        if tag == "sctype":
            return _np_dtype(v).type
        if tag == "pytype" and v in ("float", "int", "bool", "complex"):
            return {"float": float, "int": int, "bool": bool, "complex": complex}[v]
        if tag == "ufunc":
            return _resolve_fn({"ufunc": v}, False)
        raise ValueError(f"malformed argument {x!r:.80}")


def _refs(x: Any, acc: set) -> None:
    t = type(x)
    if t is _Ref:
        acc.add(x.slot)
    elif t is tuple or t is list:
        for v in x:
            _refs(v, acc)
    elif t is dict:
        for v in x.values():
            _refs(v, acc)


def _fill(x: Any, values: dict) -> Any:
    t = type(x)
    if t is _Ref:
        return values[x.slot]
    if t is tuple or t is list:
        return t(_fill(v, values) for v in x)
    if t is dict:
        return {k: _fill(v, values) for k, v in x.items()}
    return x


# -- convolutions as one step ---------------------------------------------------------------
# A convolution traced at the NumPy level holds its output's shape in its slices and reshapes;
# recorded as one step (the whole ``conv_general`` on plain arrays) it serves inputs of any
# shape, which a shapeless export needs.

_HOOK: dict[str, Any] = {"depth": 0, "orig": None}
_HOOK_LOCK = threading.Lock()


def _conv_kernel(x, w, stride, padding, kernel_dilation, input_dilation, groups, flip):
    """``conv_general`` on backend arrays: the replayed step of an exported convolution."""
    with no_grad():
        y = _HOOK["orig"](
            _from_value(x),
            _from_value(w),
            stride=stride,
            padding=padding,
            kernel_dilation=kernel_dilation,
            input_dilation=input_dilation,
            groups=groups,
            flip=flip,
        )
    return y._data


_EXPORT_KERNELS = {"conv": _conv_kernel}
_EXPORT_KERNEL_NAMES = {v: k for k, v in _EXPORT_KERNELS.items()}


def _conv_hook(
    input,
    weight,
    stride=1,
    padding=0,
    kernel_dilation=1,
    input_dilation=1,
    groups=1,
    flip=False,
    stream=None,
):
    orig = _HOOK["orig"]
    kw = dict(
        stride=stride,
        padding=padding,
        kernel_dilation=kernel_dilation,
        input_dilation=input_dilation,
        groups=groups,
        flip=flip,
    )
    tr = _LOCAL.tr
    if (
        tr is None
        or not getattr(tr, "exporting", False)
        or not (isinstance(input, array) and isinstance(weight, array))
        or STATE.enabled  # recording (a transform inside the function): stay differentiable
        or not (type(input._data) is Traced or type(weight._data) is Traced)
    ):
        return orig(input, weight, stream=stream, **kw)
    args = (input._data, weight._data) + tuple(kw.values())
    return _from_value(_tr_call(_conv_kernel, args, {}))


def _hook_conv(on: bool) -> None:
    _conv: Any = importlib.import_module(f"{__package__}.conv")  # ``mx.conv`` is the function

    with _HOOK_LOCK:
        if on:
            if _HOOK["depth"] == 0:
                _HOOK["orig"] = _conv.conv_general
                _conv.conv_general = _conv_hook
            _HOOK["depth"] += 1
        else:
            _HOOK["depth"] -= 1
            if _HOOK["depth"] == 0:
                _conv.conv_general = _HOOK["orig"]


# -- one trace -------------------------------------------------------------------------------


class _Trace:
    """One traced signature: its inputs, its steps and its outputs (encoded or decoded)."""

    __slots__ = ("n_args", "kwarg_keys", "inputs", "steps", "outputs", "effects", "device")
    n_args: int
    kwarg_keys: list
    inputs: list
    steps: list
    outputs: Any
    effects: Any
    device: Any  # for GPU inputs: (steps, outputs) on the GPU, or "host"

    def matches(self, args: list, kwargs: dict, shapeless: bool) -> bool:
        if len(args) != self.n_args or sorted(kwargs) != self.kwarg_keys:
            return False
        given = list(args) + [kwargs[k] for k in self.kwarg_keys]
        for a, (_, shape, dtype) in zip(given, self.inputs):
            d = a._data
            if d.dtype != dtype or d.ndim != len(shape):
                return False
            if not shapeless and tuple(d.shape) != tuple(shape):
                return False
        return True

    def run(self, given: list) -> tuple:
        """The outputs for inputs ``given`` (arrays): on the GPU when they are there."""
        if _backend.GPU[0] is not None:
            on_gpu = [_backend.is_gpu(a._data) for a in given]
            if any(on_gpu):
                if not all(on_gpu):
                    raise _backend.DeviceMismatchError(
                        "[import_function::call] Expected all tensors to be on the same "
                        "device, but found at least two devices, cuda:0 and cpu! (move the "
                        "inputs with .to(device))"
                    )
                return self._run_gpu(given)
        return self._run([a._data for a in given], self.steps, self.outputs)

    def _run_gpu(self, given: list) -> tuple:
        """GPU inputs: the steps run on the GPU with the constants copied there once (NumPy's
        calls dispatch to the GPU library); a trace holding a step the GPU library cannot take
        (a ufunc method such as ``add.at``) runs on host copies, and its results are copied
        back to the GPU (explicit copies both ways)."""
        device = getattr(self, "device", None)
        if device is None:
            device = self.device = _on_gpu_steps(self.steps, self.outputs)
        data = [a._data for a in given]
        if device != "host":
            steps, outputs = device
            try:
                return self._run(data, steps, outputs)
            except TypeError:  # a NumPy-only step (CuPy refuses it): the host from now on
                self.device = "host"
        out = self._run([_backend.to_host(d) for d in data], self.steps, self.outputs)
        return tuple(_from_value(_backend.to_gpu(o._data)) for o in out)

    def _run(self, data: list, steps: list, outputs: list) -> tuple:
        values: dict = {}
        for d, (slot, _, _) in zip(data, self.inputs):
            values[slot] = d.copy() if self.effects else d
        for kind, fn, args, kwargs, outs, want, multi in steps:
            res = fn(*_fill(args, values), **_fill(kwargs, values))
            if kind == "guard":
                if res != want:
                    raise ValueError(
                        "imported function: the inputs take a different data-dependent path "
                        f"than the traced ones ({getattr(fn, '__name__', 'a value')} gave "
                        f"{res!r}, the trace {want!r})"
                    )
                continue
            if multi:
                for o, r in zip(outs, res):
                    values[o] = r
            elif outs:
                values[outs[0]] = res
        out = []
        for where, w in outputs:
            v = values[w] if where == "slot" else w
            out.append(_from_value(v if type(v) is _ndarray else _backend.as_array(v)))
        return tuple(out)


def _on_gpu_steps(steps: list, outputs: list) -> tuple[list, list]:
    """A trace's steps and outputs for GPU inputs: constant arrays copied to the GPU, and NumPy
    functions that make arrays from nothing (``zeros``, ``arange``) taken from the GPU
    library, so that every step computes there."""
    xp = _backend.GPU[0].xp

    def dev(x: Any) -> Any:
        t = type(x)
        if t is _ndarray:
            return _backend.to_gpu(x) if x.ndim else x
        if t is tuple or t is list:
            return t(dev(v) for v in x)
        if t is dict:
            return {k: dev(v) for k, v in x.items()}
        return x

    out_steps = []
    for kind, fn, args, kwargs, outs, want, multi in steps:
        d_args, d_kwargs = dev(args), dev(kwargs)
        name = getattr(fn, "__name__", None)
        if (
            kind == "call"
            and type(fn) is not np.ufunc
            and isinstance(name, str)
            and getattr(np, name, None) is fn
            and not _holds_array((d_args, d_kwargs))
        ):
            fn = getattr(xp, name, fn)  # nothing to dispatch on: the GPU library's own
        elif kind == "call" and name == "reduce" and getattr(fn, "__self__", None) in _REDUCE:
            fn = _gpu_reduce(_REDUCE[fn.__self__])  # CuPy has no ufunc.reduce: sum, max...
        out_steps.append((kind, fn, d_args, d_kwargs, outs, want, multi))
    out_outputs = [(w, dev(v) if w == "const" else v) for w, v in outputs]
    return out_steps, out_outputs


# ``ufunc.reduce`` steps (the CPU engine's sums and maxima) as the GPU library's reductions
_REDUCE: dict[Any, Any] = {
    np.add: np.sum,
    np.multiply: np.prod,
    np.maximum: np.max,
    np.minimum: np.min,
    np.logical_and: np.all,
    np.logical_or: np.any,
}


def _gpu_reduce(fn: Callable) -> Callable:
    """``ufunc.reduce(a, axis=0, dtype=None, out=None, keepdims=False)`` by ``fn`` (``sum``...),
    which NumPy dispatches to the GPU library; other arguments raise ``TypeError`` (the trace
    then runs on host copies)."""

    def reduce(a, axis=0, dtype=None, out=None, keepdims=False, **rest):
        if out is not None or rest:
            raise TypeError("ufunc.reduce with out=, initial= or where= on the GPU")
        if dtype is not None:
            return fn(a, axis=axis, dtype=dtype, keepdims=keepdims)
        return fn(a, axis=axis, keepdims=keepdims)

    return reduce


def _holds_array(x: Any) -> bool:
    """Whether a step's arguments hold an array or a slot (NumPy dispatches on them)."""
    t = type(x)
    if t is _Ref or _backend.is_gpu(x):  # (host arrays left in the steps are 0-d)
        return True
    if t is tuple or t is list:
        return any(_holds_array(v) for v in x)
    if t is dict:
        return any(_holds_array(v) for v in x.values())
    return False


class _ExportTracer(_Tracer):
    """The tracer of an export (the convolution hook records only for these)."""

    __slots__ = ("exporting",)

    def __init__(self) -> None:
        super().__init__()
        self.exporting = True
        self.on_host = _gpu_to_host


def _gpu_to_host(x: Any) -> Any:
    """GPU data read while exporting (weights on the GPU): an explicit copy on the host, which
    the export stores as a constant, as it would a CPU array."""
    return _backend.to_host(x) if _backend.is_gpu(x) else x


def _trace(fun: Callable, args: list, kwargs: dict, consts: _Constants) -> tuple[dict, dict]:
    """Run ``fun`` on traced copies of the inputs; return (encoded trace, callback view)."""
    if _LOCAL.tr is not None:
        raise RuntimeError("export_function: cannot export while another function is traced")
    tr = _ExportTracer()
    keys = sorted(kwargs)

    def inp(a: array) -> array:
        # GPU example inputs are traced as host copies (an explicit copy): the file is the
        # same as for CPU inputs
        t = tr.new(_backend.to_host(a._data))
        tr.inputs.append(t._slot)  # type: ignore[arg-type]  # set by new()
        return _from_value(t)

    t_args = [inp(a) for a in args]
    t_kwargs = {k: inp(kwargs[k]) for k in keys}
    _hook_conv(True)
    try:
        # GPU arrays the function reads from its closure or globals (weights on the GPU) hold
        # host copies while it traces: constants of the file, as CPU arrays would be (other
        # GPU data it meets becomes a host constant where a step takes it:
        # ``_ExportTracer.on_host``). What it makes is made on the host, as in a CPU export;
        # an export has no use for graphs.
        with closure_on_host(fun, {}), _devices.host_default(), no_grad():
            _LOCAL.tr = tr
            _patch_numpy(True)
            result = fun(*t_args, **t_kwargs)
    finally:
        _LOCAL.tr = None
        _patch_numpy(False)
        _hook_conv(False)
    if isinstance(result, array):
        results = [result]
    elif type(result) in (list, tuple) and all(isinstance(r, array) for r in result):
        results = list(result)
    else:
        raise ValueError(
            "[export_function] Outputs can be either a single array, a tuple, or a list of arrays."
        )
    if tr.failed is not None:
        raise ValueError(f"export_function: the function cannot be exported: {tr.failed}")

    outputs = []
    for r in results:
        d = r._data
        if type(d) is Traced and d._tr is tr and d._slot is not None:
            outputs.append(("slot", d._slot))
            continue
        if type(d) is Traced:
            d = _ndview(d, _ndarray)
        slot = _resolve_view(tr, d) if type(d) is _ndarray and d.base is not None else None
        const = _backend.to_host(d)
        outputs.append(("slot", slot) if slot is not None else ("const", const))
    if tr.failed is not None:
        raise ValueError(f"export_function: the function cannot be exported: {tr.failed}")

    # dead steps go; guards stay (they check the data-dependent path the trace took)
    live = {w for kind, w in outputs if kind == "slot"}
    kept = []
    for st in reversed(tr.steps):
        kind, fn, targs, tkw, outs, extra = st
        if kind == "setting":
            continue  # a Python setting (a learning rate): its traced value is baked in
        if kind == "call" and not extra[0] and not any(o in live for o in outs):
            continue
        kept.append(st)
        _refs(targs, live)
        _refs(tkw, live)
    kept.reverse()

    steps = []
    view = []
    for kind, fn, targs, tkw, outs, extra in kept:
        guard = kind == "guard"
        step = {"kind": kind, "fn": _enc_fn(fn, guard), "args": _enc(tuple(targs), consts)}
        step["kwargs"] = _enc(dict(tkw), consts)
        if guard:
            step["want"] = _enc(extra, consts)
        else:
            step["outs"] = list(outs)
            step["multi"] = bool(extra[1])
            step["effect"] = bool(extra[0])
        steps.append(step)
        view.append((kind, fn, targs, tkw, outs))
    meta = tr.values.meta
    enc = {
        "n_args": len(args),
        "kwarg_keys": keys,
        "inputs": [[s, list(meta[s][0]), _dtype_name(meta[s][1])] for s in tr.inputs],
        "steps": steps,
        "outputs": [
            {"slot": w} if kind == "slot" else {"const": consts.add(w)} for kind, w in outputs
        ],
    }
    info = {"tr": tr, "steps": view, "outputs": outputs, "keys": keys}
    return enc, info


def _decode_trace(t: Any, consts: dict[str, np.ndarray]) -> _Trace:
    """A trace from the file, every name resolved from the allow-lists first."""
    dec = _Dec(consts)
    if type(t) is not dict:
        raise ValueError("a trace is not an object")
    tr = _Trace()
    tr.n_args = t["n_args"]
    tr.kwarg_keys = [str(k) for k in t["kwarg_keys"]]
    if type(tr.n_args) is not int or tr.n_args < 0:
        raise ValueError("bad input count")
    known: set = set()
    tr.inputs = []
    for slot, shape, dtype in t["inputs"]:
        if type(slot) is not int or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError("bad input")
        tr.inputs.append((slot, tuple(shape), _np_dtype(dtype)))
        known.add(slot)
    if len(tr.inputs) != tr.n_args + len(tr.kwarg_keys):
        raise ValueError("the inputs do not match the arguments")
    tr.steps = []
    tr.effects = False
    for i, st in enumerate(t["steps"]):
        kind = st["kind"]
        if kind not in ("call", "guard"):
            raise ValueError(f"step {i}: unknown kind {kind!r}")
        try:
            fn = _resolve_fn(st["fn"], kind == "guard")
        except ValueError as e:
            raise ValueError(f"step {i}: {e}") from None
        args, kwargs = dec(st["args"]), dec(st["kwargs"])
        if type(args) is not tuple or type(kwargs) is not dict:
            raise ValueError(f"step {i}: malformed arguments")
        used: set = set()
        _refs((args, kwargs), used)
        if not used <= known:
            raise ValueError(f"step {i}: reads a value no earlier step made")
        if kind == "guard":
            tr.steps.append((kind, fn, args, kwargs, [], dec(st["want"]), False))
            continue
        outs = st["outs"]
        if not all(type(o) is int for o in outs):
            raise ValueError(f"step {i}: bad outputs")
        known.update(outs)
        tr.effects = tr.effects or bool(st.get("effect"))
        tr.steps.append((kind, fn, args, kwargs, outs, None, bool(st["multi"])))
    tr.outputs = []
    for o in t["outputs"]:
        if "slot" in o and o["slot"] in known:
            tr.outputs.append(("slot", o["slot"]))
        elif "const" in o and o["const"] in consts:
            tr.outputs.append(("const", consts[o["const"]]))
        else:
            raise ValueError("an output names no value")
    return tr


# -- arguments -------------------------------------------------------------------------------


def _inputs(args: tuple, kwargs: dict, prefix: str) -> tuple[list, dict]:
    """MLX's argument forms: arrays as ``*args, **kwargs``, or one tuple/list and/or one dict."""

    def bad() -> ValueError:
        return ValueError(
            f"{prefix} Inputs can either be a variable number of positional and keyword arrays "
            "or a single tuple and/or dictionary of arrays."
        )

    def arrays(xs) -> list:
        if type(xs) not in (list, tuple) or not all(isinstance(x, array) for x in xs):
            raise bad()
        return list(xs)

    def named(d) -> dict:
        if not isinstance(d, dict) or not all(
            type(k) is str and isinstance(v, array) for k, v in d.items()
        ):
            raise bad()
        return dict(d)

    if not args:
        return [], named(kwargs)
    if isinstance(args[0], array):
        return arrays(args), named(kwargs)
    if kwargs or len(args) > 2:
        raise bad()
    if len(args) == 1:
        if isinstance(args[0], dict):
            return [], named(args[0])
        return arrays(args[0]), {}
    return arrays(args[0]), named(args[1])


# -- public API ------------------------------------------------------------------------------


_MLX_NAMES = {
    "absolute": "Abs",
    "true_divide": "Divide",
    "divide": "Divide",
    "log2": "Log",
    "log10": "Log",
    "astype": "AsType",
    "matmul": "Matmul",
    "__getitem__": "Gather",
    "__setitem__": "Scatter",
    "conv_kernel": "Convolution",
}
_LOG_BASE = {"log2": 0, "log10": 1, "log": 2}  # MLX's Log::Base


def _mlx_name(fn: Any) -> str:
    if type(fn) is operator.attrgetter:
        return "Transpose" if "T" in repr(fn) else "Attribute"
    name = getattr(fn, "name", None) or getattr(fn, "__name__", type(fn).__name__)
    name = str(name).lstrip("_")
    return _MLX_NAMES.get(name) or "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def _py_args(targs: tuple, tkw: dict) -> list:
    """The non-array arguments of a step, as MLX's callback reports a primitive's state."""
    out = []
    for v in list(targs) + list(tkw.values()):
        if type(v) is _Ref or type(v) is _ndarray:
            continue
        if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
            try:
                v = _dt.from_np(np.dtype(v))
            except TypeError:
                pass
        out.append(v)
    return out


class FunctionExporter:
    """Exports several traces of one function to one file (made by :func:`exporter`).

    Call it with example arrays (as :func:`export_function` takes them) once per signature; the
    file is rewritten, atomically, after each trace. Use it as a context manager, or call
    :meth:`close`; afterwards it refuses new traces with ``RuntimeError``.
    """

    def __init__(
        self,
        file: str | os.PathLike | Callable,
        fun: Callable,
        shapeless: bool = False,
        metadata: str | None = None,
    ) -> None:
        if metadata is not None and not isinstance(metadata, str):
            raise TypeError(f"export_function: metadata must be a str, not {type(metadata)}")
        self._callback: Any = None if isinstance(file, (str, os.PathLike)) else file
        if self._callback is not None:
            if not callable(file):
                raise TypeError("export_function: the file must be a path or a callback")
            if metadata:
                raise ValueError(
                    "[export_function] The metadata argument is only supported when exporting "
                    "to a file, not when using a callback."
                )
        self._path: Any = None if self._callback is not None else os.fspath(file)  # type: ignore[arg-type]
        self._fun = fun
        self._shapeless = bool(shapeless)
        self._metadata = metadata or ""
        self._traces: list[dict] = []
        self._signatures: list[_Trace] = []
        self._consts = _Constants()
        self._closed = False

    def __enter__(self) -> FunctionExporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting traces (the file already holds every trace made)."""
        self._closed = True

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        """Trace the function on these example arrays and add the trace to the file."""
        if self._closed:
            raise RuntimeError("[export_function] Attempting to write after exporting is closed.")
        args_, kwargs_ = _inputs(args, kwargs, "[export_function]")
        for sig in self._signatures:
            if sig.matches(args_, kwargs_, self._shapeless):
                raise RuntimeError(
                    "[export_function] Attempting to export a function twice with the same "
                    "signature is not allowed."
                )
        consts = _Constants() if self._callback is not None else self._consts
        n_before = len(consts.tensors)
        enc, info = _trace(self._fun, args_, kwargs_, consts)
        sig = _Trace()
        sig.n_args, sig.kwarg_keys = len(args_), sorted(kwargs_)
        sig.inputs = [(s, tuple(shape), _np_dtype(d)) for s, shape, d in enc["inputs"]]
        self._signatures.append(sig)
        if self._callback is not None:
            self._report(enc, info, consts, n_before)
            return
        self._traces.append(enc)
        self._write()

    def _write(self) -> None:
        doc = {
            "format": _FORMAT,
            "version": _VERSION,
            "shapeless": self._shapeless,
            "traces": self._traces,
        }
        meta = {_FORMAT: json.dumps(doc, separators=(",", ":")), "metadata": self._metadata}
        write_safetensors(
            self._path, self._consts.tensors, meta, who="export_function", dtypes=_TENSOR_CODES
        )

    def _report(self, enc: dict, info: dict, consts: _Constants, n_before: int) -> None:
        meta = info["tr"].values.meta

        def data(slots):
            return [(f"s{s}", tuple(meta[s][0]), _dt.from_np(meta[s][1])) for s in slots]

        cb = self._callback
        ins = [s for s, _, _ in enc["inputs"]]
        cb({"type": "inputs", "inputs": data(ins)})
        n_pos = enc["n_args"]
        cb(
            {
                "type": "keyword_inputs",
                "keywords": [(k, f"s{s}") for k, s in zip(info["keys"], ins[n_pos:])],
            }
        )
        outs = [w for kind, w in info["outputs"] if kind == "slot"]
        cb({"type": "outputs", "outputs": data(outs)})
        new = list(consts.tensors.items())[n_before:]
        cb({"type": "constants", "constants": [(n, _from_value(v)) for n, v in new]})
        for kind, fn, targs, tkw, s_outs in info["steps"]:
            if kind != "call":
                continue
            args = _py_args(targs, tkw)
            if type(fn) is np.ufunc and fn.__name__ in _LOG_BASE:
                args = [_LOG_BASE[fn.__name__]]
            refs: set = set()
            _refs((targs, tkw), refs)
            cb(
                {
                    "type": "primitive",
                    "inputs": data(sorted(refs)),
                    "outputs": data(s_outs),
                    "name": _mlx_name(fn),
                    "arguments": args,
                }
            )


def exporter(
    file: str | os.PathLike,
    fun: Callable,
    *,
    shapeless: bool = False,
    metadata: str | None = None,
) -> FunctionExporter:
    """Make a callable that exports several traces of ``fun`` to one file (MLX's ``mx.exporter``).

    Args:
        file: the file to write (rewritten atomically after each trace).
        fun: a function of arrays returning an array or a list/tuple of arrays.
        shapeless: whether the imported function accepts inputs of other shapes (with the same
            number of dimensions and dtypes).
        metadata: a string stored with the function (read back by :func:`import_function`).

    Returns:
        A :class:`FunctionExporter`; call it with example inputs, one call per signature.
    """
    return FunctionExporter(file, fun, shapeless, metadata)


def export_function(
    file_or_callback: str | os.PathLike | Callable,
    fun: Callable,
    *args: Any,
    shapeless: bool = False,
    metadata: str | None = None,
    **kwargs: Any,
) -> None:
    """Export ``fun`` traced on example inputs (MLX's ``mx.export_function``).

    Args:
        file_or_callback: the file to write, or a callable that receives MLX's description of
            the trace (dicts of type ``inputs``, ``keyword_inputs``, ``outputs``, ``constants``
            and one ``primitive`` per operation).
        fun: a function of arrays returning an array or a list/tuple of arrays.
        *args: example arrays (or one tuple/list of arrays and/or one dict of arrays).
        shapeless: whether the imported function accepts inputs of other shapes.
        metadata: a string stored with the function (files only).
        **kwargs: example keyword arrays.

    Raises:
        ValueError: inputs or outputs that are not arrays, metadata with a callback, or a
            function that calls something that cannot be exported.
        TypeError: metadata that is not a string.
    """
    ex = FunctionExporter(file_or_callback, fun, shapeless, metadata)
    ex(*args, **kwargs)
    ex.close()


class ImportedFunction:
    """A function read by :func:`import_function`: call it with arrays; it returns a tuple."""

    def __init__(self, traces: list[_Trace], shapeless: bool, path: str) -> None:
        self._traces = traces
        self._shapeless = shapeless
        self._path = path

    def __call__(self, *args: Any, **kwargs: Any) -> tuple:
        """Run the trace whose signature matches the inputs; return its outputs as a tuple."""
        args_, kwargs_ = _inputs(args, kwargs, "[import_function::call]")
        for t in self._traces:
            if t.matches(args_, kwargs_, self._shapeless):
                return t.run(args_ + [kwargs_[k] for k in t.kwarg_keys])
        got = ", ".join(
            [f"{a.shape} {a.dtype}" for a in args_]
            + [f"{k}={v.shape} {v.dtype}" for k, v in sorted(kwargs_.items())]
        )
        raise ValueError(
            f"[import_function::call] No imported function found which matches the given "
            f"inputs ({got}) in {self._path}."
        )

    def __repr__(self) -> str:
        return f"<imported function from {self._path!r}: {len(self._traces)} trace(s)>"


def import_function(
    file: str | os.PathLike, return_metadata: bool = False
) -> ImportedFunction | tuple[ImportedFunction, str]:
    """Read a function written by :func:`export_function` (MLX's ``mx.import_function``).

    Every step is checked against the allow-lists before the function is returned; no code
    from the file runs and nothing is unpickled.

    Args:
        file: the file.
        return_metadata: also return the metadata string saved with the function.

    Returns:
        The function (called with arrays as ``*args, **kwargs`` or a tuple and/or a dict; it
        returns a tuple of arrays), or ``(function, metadata)``.

    Raises:
        FileFormatError: (a ``ValueError``) a file that is not an exported function or names
            an operation outside the allow-lists.
    """
    path = os.fsdecode(os.fspath(file))
    kind = "an exported chainrule function"
    tensors, meta = read_safetensors(path, kind=kind, dtypes=_TENSOR_CODES)
    if not meta or _FORMAT not in meta:
        raise FileFormatError(path, f"not {kind} (no {_FORMAT} entry in its header)")
    try:
        doc = json_loads_bounded(meta[_FORMAT], _JSON_DEPTH)
        if type(doc) is not dict or doc.get("format") != _FORMAT:
            raise ValueError("wrong format tag")
        if doc.get("version") != _VERSION:
            raise ValueError(f"unsupported version {doc.get('version')!r}")
        traces = [_decode_trace(t, tensors) for t in doc["traces"]]
    except (ValueError, KeyError, TypeError) as e:
        raise FileFormatError(path, f"refused: {e}") from None
    fn = ImportedFunction(traces, bool(doc.get("shapeless")), path)
    if return_metadata:
        return fn, str(meta.get("metadata", ""))
    return fn
