"""ONNX export: the recorded graph of one call of a model, as an ONNX model (``onnx.helper``).

``export_onnx(model, args, f)`` runs ``model(*args)`` once with the inputs (and the
parameters, as always) being differentiated, so the engine records one node per primitive
(the same recording ``chainrule.viz.graph`` draws; see ``docs/architecture.md``). Each
primitive of that graph becomes one or a few ONNX operators; parameters and buffers become
initializers named by their ``state_dict`` names; a primitive without an ONNX form is refused
with a ``ValueError`` naming it. Composites (convolution as padding, strided slices and a
matmul; pooling as slices and a max; softmax; layer and batch norm) need nothing of their own.

Values the model computes from its input *outside* the recorded primitives (softmax's
stabilising shift, ``where``'s comparison masks, ``zeros_like(x)``) are constants of the
recording. Two more runs find them: one with the inputs' values changed and, when
``dynamic_axes`` are given, one per dynamic axis with that axis one longer. A constant that
changes between runs is rebuilt from the graph when it is recognised (the maximum of the
value it is subtracted from, ``x > 0`` and friends, a constant that is one number repeated)
and refused otherwise. The runs with longer axes also give every shape a reshape or broadcast
asks for as ``k * size`` of the dynamic axes, which the ONNX graph computes from its input's
shape at run time.

The file is written through the atomic writer of ``chainrule/core/io.py``. Needs the ``onnx``
package (``pip install 'chainrule[export]'``); ``onnxruntime`` runs the result.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.extend import Node

__all__ = ["export_onnx", "is_in_onnx_export", "DEFAULT_OPSET", "OnnxExportError"]

DEFAULT_OPSET = 18
"""The opset written when none is asked for (PyTorch's default)."""
_MIN_OPSET = 13


class OnnxExportError(ValueError):
    """The model cannot be written as ONNX (the message names the primitive or value)."""


class _Flag(threading.local):
    on = False


_FLAG = _Flag()


def is_in_onnx_export() -> bool:
    """Whether an ONNX export is running the model right now (in this thread)."""
    return _FLAG.on


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError(
            "ONNX export needs the onnx package: pip install 'chainrule[export]'"
        ) from None
    return onnx, helper, numpy_helper


# -- running the model -----------------------------------------------------------------------


class _Run:
    """One recorded call: the graph's nodes in dependency order and the call's outputs."""

    def __init__(self, fn: Callable, args: list, float_inputs: list[bool]) -> None:
        from chainrule.core import enable_grad

        leaves = [
            a.detach().clone().requires_grad_(True) if f else a for a, f in zip(args, float_inputs)
        ]
        prev = _FLAG.on
        _FLAG.on = True
        try:
            with enable_grad():
                out = fn(*leaves)
        finally:
            _FLAG.on = prev
        self.leaves = leaves
        outs = _flatten(out)
        for i, o in enumerate(outs):
            if not isinstance(o, array):
                raise OnnxExportError(
                    f"onnx export: output {i} is a {type(o).__name__}, not an array"
                )
        self.outs = outs
        self.order = _topological([o._node for o in outs if o._node is not None])

    def signature(self) -> list:
        return [(n.prim.name if n.prim else "leaf", len(n.args)) for n in self.order]


def _flatten(out: Any) -> list:
    """The outputs in order, nested tuples and lists flattened (as PyTorch's exporter does)."""
    if isinstance(out, (tuple, list)):
        return [o for item in out for o in _flatten(item)]
    return [out]


def _topological(roots: list[Node]) -> list[Node]:
    order: list[Node] = []
    seen: set[int] = set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend(
            (a, False) for a in reversed(node.args) if type(a) is Node and id(a) not in seen
        )
    return order


def _np(value: Any, dtype: Any = None) -> np.ndarray:
    """``value`` (backend data on either device, or host data) as a NumPy array: an explicit
    device-to-host copy of GPU data, as ``np.asarray`` of host data."""
    return np.asarray(backend.to_host(value), dtype)


def _is_array(value: Any) -> bool:
    """Whether ``value`` is backend data (a NumPy array, or a GPU array)."""
    return isinstance(value, np.ndarray) or backend.is_gpu(value)


def _bump(a: array, axis: int) -> array:
    """``a`` one longer along ``axis`` (its entries repeated cyclically)."""
    data = _np(a._data if hasattr(a, "_data") else a)
    n = data.shape[axis]
    longer = np.take(data, np.arange(n + 1) % n, axis=axis)
    return _like(a, longer)


def _perturb(a: array) -> array:
    data = _np(a._data)
    if data.dtype.kind not in "fc":
        return a
    rng = np.random.default_rng(1234)
    return _like(a, (data * 0.75 + rng.normal(size=data.shape) * 0.5).astype(data.dtype))


def _like(a: array, value: np.ndarray) -> array:
    """An array of ``a``'s class (a tensor stays a tensor, so its methods keep their meaning)."""
    return a.new_tensor(value)


# -- the builder -----------------------------------------------------------------------------


class _Graph:
    def __init__(self, opset: int) -> None:
        self.onnx, self.helper, self.numpy_helper = _onnx()
        self.opset = opset
        self.nodes: list = []
        self.inits: list = []
        self.names: set[str] = set()
        self.const_cache: dict = {}
        self.count = 0

    def fresh(self, base: str) -> str:
        name = base
        while name in self.names:
            self.count += 1
            name = f"{base}_{self.count}"
        self.names.add(name)
        return name

    def init(self, value: np.ndarray, name: str | None = None) -> str:
        value = _np(value)
        key = (
            (value.dtype.str, value.shape, value.tobytes())
            if value.size <= 16 and name is None
            else None
        )
        if key is not None and key in self.const_cache:
            return self.const_cache[key]
        out = self.fresh(name or "const")
        if value.dtype.kind == "V":
            raise OnnxExportError(
                "onnx export: bfloat16 constants are not written; cast the model to float32"
            )
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), out))
        if key is not None:
            self.const_cache[key] = out
        return out

    def ints(self, values: Sequence[int]) -> str:
        return self.init(_np(list(values), dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=axes, keepdims=int(keepdims))


_UNARY = {
    "exp": "Exp",
    "log": "Log",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "sqrt": "Sqrt",
    "negative": "Neg",
    "abs": "Abs",
    "erf": "Erf",
    "reciprocal": "Reciprocal",
    "sin": "Sin",
    "cos": "Cos",
    "tan": "Tan",
    "sinh": "Sinh",
    "cosh": "Cosh",
    "arcsin": "Asin",
    "arccos": "Acos",
    "arctan": "Atan",
    "arcsinh": "Asinh",
    "arccosh": "Acosh",
    "arctanh": "Atanh",
    "identity": "Identity",
    "contiguous": "Identity",
}
_BINARY = {
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "power": "Pow",
    "maximum": "Max",
    "minimum": "Min",
}
_REDUCE = {
    "sum": "ReduceSum",
    "max": "ReduceMax",
    "min": "ReduceMin",
    "prod": "ReduceProd",
    "logsumexp": "ReduceLogSumExp",
}
_SUPPORTED = sorted(
    {
        *_UNARY,
        *_BINARY,
        *_REDUCE,
        "rsqrt",
        "softmax",
        "log_softmax",
        "layer_norm",
        "rms_norm",
        "square",
        "log1p",
        "expm1",
        "matmul",
        "reshape",
        "transpose",
        "broadcast_to",
        "concatenate",
        "getitem",
        "pad",
        "where",
        "astype",
        "einsum",
        "cumsum",
        "logaddexp",
        "conv",
        "pool_max",
        "pool_sum",
    }
)


class _Dims:
    """Sizes as ``k * size(symbols) + c``: what the longer-axis runs say about each entry."""

    def __init__(self, symbols: list[tuple[int, int]], base_sizes: list[int]) -> None:
        self.symbols = symbols  # (input index, axis)
        self.base = base_sizes

    def solve(self, where: str, base: Sequence[int], bumped: list[Sequence[int]]) -> list:
        """Each entry: an int, or ``(k, [symbols], c)`` for ``k * prod(sizes) + c`` when it
        grows with the dynamic axes (checked against every run with a longer axis)."""
        out: list = []
        for j, d in enumerate(base):
            d = int(d)
            grows = [s for s, b in enumerate(bumped) if int(b[j]) != d]
            if not grows or d == -1:
                out.append(d)
                continue
            entry = None
            size = int(np.prod([self.base[s] for s in grows]))
            if size and d % size == 0:  # k * B (* T ...): a reshape to (B * T, D)
                entry = (d // size, grows, 0)
            if (entry is None or not self.fits(entry, j, bumped)) and len(grows) == 1:
                k = int(bumped[grows[0]][j]) - d  # k * B + c: a slice end t * B + B
                entry = (k, grows, d - k * self.base[grows[0]])
            if entry is None or not self.fits(entry, j, bumped):
                raise OnnxExportError(
                    f"onnx export: {where}: entry {j} ({d}) changes with the dynamic axes in a "
                    "way that is not k * size + c"
                )
            out.append(entry)
        return out

    def fits(self, entry: tuple, j: int, bumped: list[Sequence[int]]) -> bool:
        k, syms, c = entry
        for s, b in enumerate(bumped):
            sizes = [self.base[t] + (t == s) for t in syms]
            if int(b[j]) != k * int(np.prod(sizes)) + c:
                return False
        return True


class _Exporter:
    def __init__(
        self,
        runs: list[_Run],
        dims: _Dims,
        input_names: list[str],
        names: dict[int, str],
        data_names: dict[int, str],
        opset: int,
    ) -> None:
        self.base = runs[0]
        self.runs = runs
        self.dims = dims
        self.g = _Graph(opset)
        self.names = names  # id(handle) -> state_dict name
        self.data_names = data_names  # id(raw value) -> state_dict name
        self.value: dict[int, str] = {}
        self.input_names = input_names
        self.shape_of_input: dict[int, str] = {}
        for i, leaf in enumerate(self.base.leaves):
            name = input_names[i]
            self.g.names.add(name)
            if leaf._node is not None:
                self.value[id(leaf._node)] = name
            else:
                self.data_names[id(leaf._data)] = name
                self.value[("data", id(leaf._data))] = name
        self.pos = {id(n): i for i, n in enumerate(self.base.order)}

    # -- symbolic sizes ------------------------------------------------------------------------
    def symbol(self, s: int) -> str:
        i, axis = self.dims.symbols[s]
        key = (i, axis)
        if key not in self.shape_of_input:
            shape = self.g.op("Shape", [self.input_names[i]])
            self.shape_of_input[key] = self.g.op("Gather", [shape, self.g.ints([axis])], axis=0)
        return self.shape_of_input[key]

    def shape_input(self, entries: list) -> str:
        if all(isinstance(e, int) for e in entries):
            return self.g.ints(entries)
        parts = []
        for e in entries:
            if isinstance(e, int):
                parts.append(self.g.ints([e]))
                continue
            k, syms, c = e
            v = self.symbol(syms[0])
            for s in syms[1:]:
                v = self.g.op("Mul", [v, self.symbol(s)])
            if k != 1:
                v = self.g.op("Mul", [v, self.g.ints([k])])
            if c:
                v = self.g.op("Add", [v, self.g.ints([c])])
            parts.append(v)
        return self.g.op("Concat", parts, axis=0)

    def shape_param(self, node: Node, key: str) -> str:
        i = self.pos[id(node)]
        base = node.params[key]
        bumped = [r.order[i].params[key] for r in self.runs[2:]]
        return self.shape_input(self.dims.solve(f"{node.prim.name} to {base}", base, bumped))

    # -- constants -----------------------------------------------------------------------------
    def changing(self, node: Node, j: int) -> bool:
        i = self.pos[id(node)]
        a = node.args[j]
        for r in self.runs[1:]:
            b = r.order[i].args[j]
            if np.shape(a) != np.shape(b):
                return True
            with np.errstate(invalid="ignore"):
                if not np.array_equal(_np(a), _np(b), equal_nan=True):
                    return True
        return False

    def arg(self, node: Node, j: int, dtype: np.dtype | None = None) -> str:
        a = node.args[j]
        if type(a) is Node:
            name = self.value[id(a)]
            if dtype is not None and a.value.dtype != dtype:
                name = self.g.op(
                    "Cast", [name], to=self.g.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
                )
            return name
        if _is_array(a) and ("data", id(a)) in self.value:
            return self.value[("data", id(a))]
        value = _np(a)
        if self.changing(node, j):
            rebuilt = self.rebuild(node, j, dtype)
            if rebuilt is not None:
                return rebuilt
            raise OnnxExportError(
                f"onnx export: the model computes a {value.dtype} value of shape {value.shape} from "
                f"its input outside the recorded operations, or draws it at random (argument "
                f"{j} of '{node.prim.name}'); ONNX export cannot follow it. Write that "
                "computation with chainrule operations on the input (and export in eval mode)."
            )
        if dtype is not None and value.dtype != dtype and value.dtype.kind in "biuf":
            value = value.astype(dtype)
        name = self.data_names.get(id(a)) if _is_array(a) else None
        return self.g.init(value, name)

    def uniform(self, node: Node, j: int) -> bool:
        """Whether the constant is one number, the same in every run (only its shape changes)."""
        i = self.pos[id(node)]
        first = None
        for r in self.runs:
            c = _np(r.order[i].args[j])
            if c.size == 0:
                return False
            v = c.reshape(-1)[0]
            if not (c == v).all() or (first is not None and v != first):
                return False
            first = v
        return True

    def size_number(self, node: Node, j: int, dtype: np.dtype) -> str | None:
        """A scalar equal to ``k * size + c`` or its reciprocal in every run, if it is one."""
        i = self.pos[id(node)]
        values = [_np(r.order[i].args[j]) for r in self.runs]
        if len(values) < 3 or any(v.ndim or v.dtype.kind not in "iuf" for v in values):
            return None
        if values[1] != values[0]:  # changes with the input's values, not its sizes
            return None
        for inverse in (False, True):
            with np.errstate(divide="ignore", invalid="ignore"):
                ns = [1.0 / float(v) if inverse else float(v) for v in values]
            if not all(np.isfinite(n) and abs(n - round(n)) < 1e-6 * max(1.0, abs(n)) for n in ns):
                continue
            ints = [int(round(n)) for n in ns]
            try:
                entries = self.dims.solve("a size", [ints[0]], [[n] for n in ints[2:]])
            except OnnxExportError:
                continue
            if isinstance(entries[0], int):
                continue
            to = self.g.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
            v = self.g.op("Cast", [self.shape_input(entries)], to=to)
            if inverse:
                v = self.g.op("Reciprocal", [v])
            return self.g.op("Reshape", [v, self.g.ints([])])
        return None

    def rebuild(self, node: Node, j: int, dtype: np.dtype | None = None) -> str | None:
        """A constant computed from the input, rebuilt from the graph when it is recognised."""
        c = _np(node.args[j])
        others = [a for k, a in enumerate(node.args) if k != j]
        name = node.prim.name
        # one number repeated (zeros_like(x), full(x.shape, v)): a scalar broadcasts the same
        if self.uniform(node, j):
            rest = np.broadcast_shapes(
                *[np.shape(a.value if type(a) is Node else a) for a in others]
            )
            first = c.reshape(-1)[:1].reshape(())
            scalar = self.g.init(first if dtype is None else first.astype(dtype))
            if name in _BINARY or name == "where":
                if np.broadcast_shapes(rest, ()) == np.shape(node.value):
                    dtype = node.value.dtype if name != "where" or j else np.dtype(bool)
                    return self.g.init(_np(c.reshape(-1)[0], dtype=dtype))
            # elsewhere (a zero initial state fed to a matmul): expanded to its shape at run time
            i = self.pos[id(node)]
            bumped = [np.shape(r.order[i].args[j]) for r in self.runs[2:]]
            entries = self.dims.solve(f"a constant of shape {c.shape}", c.shape, bumped)
            return self.g.op("Expand", [scalar, self.shape_input(entries)])
        # a number made from sizes of dynamic axes (a mean's 1 / T): computed from the shape
        size = self.size_number(node, j, dtype or c.dtype)
        if size is not None:
            return size
        # softmax's shift: the maximum of the value it is subtracted from
        if name == "subtract" and j == 1 and type(node.args[0]) is Node:
            x = _np(node.args[0].value)
            if c.ndim == x.ndim:
                axes = [k for k in range(x.ndim) if c.shape[k] == 1 and x.shape[k] != 1]
                if axes:
                    m = x.max(axis=tuple(axes), keepdims=True)
                    m = np.where(np.isfinite(m), m, 0)
                    if m.shape == c.shape and np.array_equal(m, c):
                        return self.g.reduce("ReduceMax", self.value[id(node.args[0])], axes, True)
        # where's mask: a comparison of one of its operands with zero
        if name == "where" and j == 0 and c.dtype == bool:
            for a in others:
                if type(a) is not Node or np.shape(a.value) != c.shape:
                    continue
                v = _np(a.value)
                x = self.value[id(a)]
                zero = self.g.init(np.zeros((), v.dtype))
                for test, op, order in (
                    (v > 0, "Greater", (x, zero)),
                    (v < 0, "Less", (x, zero)),
                    (v >= 0, "GreaterOrEqual", (x, zero)),
                    (v <= 0, "LessOrEqual", (x, zero)),
                ):
                    if np.array_equal(test, c):
                        return self.g.op(op, list(order))
        return None

    # -- one primitive -------------------------------------------------------------------------
    def emit(self, node: Node) -> str:
        name = node.prim.name
        g = self.g
        out_dtype = _np(node.value).dtype
        p = node.params or {}
        if name in _UNARY:
            return g.op(_UNARY[name], [self.arg(node, 0, out_dtype)])
        if name in _BINARY:
            return g.op(_BINARY[name], [self.arg(node, 0, out_dtype), self.arg(node, 1, out_dtype)])
        if name == "rsqrt":
            return g.op("Reciprocal", [g.op("Sqrt", [self.arg(node, 0, out_dtype)])])
        if name == "square":
            x = self.arg(node, 0, out_dtype)
            return g.op("Mul", [x, x])
        if name == "log1p":
            one = g.init(np.ones((), out_dtype))
            return g.op("Log", [g.op("Add", [self.arg(node, 0, out_dtype), one])])
        if name == "expm1":
            one = g.init(np.ones((), out_dtype))
            return g.op("Sub", [g.op("Exp", [self.arg(node, 0, out_dtype)]), one])
        if name == "logaddexp":
            a, b = self.arg(node, 0, out_dtype), self.arg(node, 1, out_dtype)
            m = g.op("Max", [a, b])
            d = g.op("Neg", [g.op("Abs", [g.op("Sub", [a, b])])])
            one = g.init(np.ones((), out_dtype))
            return g.op("Add", [m, g.op("Log", [g.op("Add", [one, g.op("Exp", [d])])])])
        if name == "matmul":
            return g.op("MatMul", [self.arg(node, 0, out_dtype), self.arg(node, 1, out_dtype)])
        if name == "einsum":
            ins = [self.arg(node, j, out_dtype) for j in range(len(node.args))]
            return g.op("Einsum", ins, equation=str(p["subscripts"]).replace(" ", ""))
        if name in _REDUCE:
            axes = p.get("axes")
            x = self.arg(node, 0)
            if axes is None:
                axes = range(
                    np.ndim(node.args[0].value if type(node.args[0]) is Node else node.args[0])
                )
            return g.reduce(_REDUCE[name], x, list(axes), bool(p.get("keepdims", False)))
        if name == "softmax":
            x, axes = self.arg(node, 0, out_dtype), [int(a) for a in p["axes"]]
            if len(axes) == 1:
                return g.op("Softmax", [x], axis=axes[0])
            e = g.op("Exp", [g.op("Sub", [x, g.reduce("ReduceMax", x, axes, True)])])
            return g.op("Div", [e, g.reduce("ReduceSum", e, axes, True)])
        if name == "log_softmax":
            x, axes = self.arg(node, 0, out_dtype), [int(a) for a in p["axes"]]
            if len(axes) == 1:
                return g.op("LogSoftmax", [x], axis=axes[0])
            return g.op("Sub", [x, g.reduce("ReduceLogSumExp", x, axes, True)])
        if name == "layer_norm":
            x, w, b = (self.arg(node, j, out_dtype) for j in range(3))
            last = np.ndim(node.value) - 1
            if g.opset >= 17:
                return g.op("LayerNormalization", [x, w, b], axis=-1, epsilon=float(p["eps"]))
            xc = g.op("Sub", [x, g.reduce("ReduceMean", x, [last], True)])
            var = g.reduce("ReduceMean", g.op("Mul", [xc, xc]), [last], True)
            eps = g.init(_np(p["eps"], out_dtype))
            r = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, eps])])])
            return g.op("Add", [g.op("Mul", [g.op("Mul", [xc, r]), w]), b])
        if name == "rms_norm":
            x, w = self.arg(node, 0, out_dtype), self.arg(node, 1, out_dtype)
            last = np.ndim(node.value) - 1
            ms = g.reduce("ReduceMean", g.op("Mul", [x, x]), [last], True)
            eps = g.init(_np(p["eps"], out_dtype))
            r = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, eps])])])
            return g.op("Mul", [g.op("Mul", [x, r]), w])
        if name == "cumsum":
            if not p.get("inclusive", True):
                raise OnnxExportError("onnx export: exclusive cumsum is not mapped")
            axis = g.init(_np(p["axis"], np.int64))
            return g.op("CumSum", [self.arg(node, 0), axis], reverse=int(bool(p.get("reverse"))))
        if name == "reshape":
            return g.op("Reshape", [self.arg(node, 0), self.shape_param(node, "shape")])
        if name == "broadcast_to":
            return g.op("Expand", [self.arg(node, 0), self.shape_param(node, "shape")])
        if name == "transpose":
            return g.op("Transpose", [self.arg(node, 0)], perm=[int(a) for a in p["axes"]])
        if name == "concatenate":
            ins = [self.arg(node, j, out_dtype) for j in range(len(node.args))]
            return g.op("Concat", ins, axis=int(p["axis"]))
        if name == "astype":
            to = g.helper.np_dtype_to_tensor_dtype(out_dtype)
            return g.op("Cast", [self.arg(node, 0)], to=to)
        if name == "where":
            cond = self.arg(node, 0)
            if type(node.args[0]) is Node or _np(node.args[0]).dtype != bool:
                cond = g.op("Cast", [cond], to=g.onnx.TensorProto.BOOL)
            return g.op("Where", [cond, self.arg(node, 1, out_dtype), self.arg(node, 2, out_dtype)])
        if name == "pad":
            width = p["width"]
            pads = [int(lo) for lo, _ in width] + [int(hi) for _, hi in width]
            value = g.init(_np(p.get("value", 0) or 0, dtype=out_dtype))
            return g.op("Pad", [self.arg(node, 0), g.ints(pads), value], mode="constant")
        if name == "getitem":
            return self.getitem(node)
        if name in ("conv", "pool_max", "pool_sum"):
            return self.conv_or_pool(node, out_dtype)
        raise OnnxExportError(
            f"onnx export: the primitive '{name}' has no ONNX form here (mapped: "
            f"{', '.join(_SUPPORTED)})"
        )

    def conv_or_pool(self, node: Node, out_dtype: np.dtype) -> str:
        """chainrule's channels-last ``conv`` / ``pool_max`` / ``pool_sum`` as ONNX's
        channels-first Conv / MaxPool / AveragePool between two Transposes."""
        g, p, name = self.g, node.params or {}, node.prim.name
        value = node.args[0].value if type(node.args[0]) is Node else node.args[0]
        nd = np.ndim(value) - 2
        first = [0, nd + 1] + list(range(1, nd + 1))
        x = g.op("Transpose", [self.arg(node, 0, out_dtype)], perm=first)
        if name == "conv":
            lo, hi = list(p["lo"]), list(p["hi"])
            if any(d != 1 for d in p["idil"]) or min(lo + hi) < 0:
                raise OnnxExportError(
                    "onnx export: 'conv' with input dilation or negative padding is not mapped"
                )
            w = self.arg(node, 1, out_dtype)
            if p["flip"]:
                axes = list(range(1, nd + 1))
                big = np.iinfo(np.int64).max
                w = g.op(
                    "Slice",
                    [w, g.ints([-1] * nd), g.ints([-big] * nd), g.ints(axes), g.ints([-1] * nd)],
                )
            w = g.op("Transpose", [w], perm=first)
            y = g.op(
                "Conv",
                [x, w],
                strides=list(p["stride"]),
                pads=lo + hi,
                dilations=list(p["kdil"]),
                group=int(p["groups"]),
            )
        elif name == "pool_max":
            y = g.op(
                "MaxPool",
                [x],
                kernel_shape=list(p["kernel"]),
                strides=list(p["stride"]),
                dilations=list(p["dilation"]),
            )
        else:
            if any(d != 1 for d in p["dilation"]):
                raise OnnxExportError("onnx export: dilated 'pool_sum' is not mapped")
            y = g.op("AveragePool", [x], kernel_shape=list(p["kernel"]), strides=list(p["stride"]))
            count = g.init(_np(float(np.prod(p["kernel"])), dtype=out_dtype))
            y = g.op("Mul", [y, count])
        return g.op("Transpose", [y], perm=[0] + list(range(2, nd + 2)) + [1])

    def getitem(self, node: Node) -> str:
        g = self.g
        x = self.arg(node, 0)
        plan = _slice_plan(node)
        starts, ends, axes, steps, squeeze, unsqueeze, gathers = plan
        if axes:
            k = self.pos[id(node)]
            others = [_slice_plan(r.order[k]) for r in self.runs[2:]]
            if any(o[2:4] != plan[2:4] or o[4:6] != plan[4:6] for o in others):
                raise OnnxExportError(
                    "onnx export: 'getitem' indexes differently when a dynamic axis grows"
                )
            where = f"'getitem' {node.params['idx']}"
            begin = self.shape_input(self.dims.solve(where, starts, [o[0] for o in others]))
            end = self.shape_input(self.dims.solve(where, ends, [o[1] for o in others]))
            x = g.op("Slice", [x, begin, end, g.ints(axes), g.ints(steps)])
        if gathers:
            ax, ind, _ = gathers[0]
            if squeeze and any(s < ax for s in squeeze) or unsqueeze:
                raise OnnxExportError(
                    "onnx export: an integer-array index mixed with integers or None is not mapped"
                )
            ind_name = self.value.get(("data", id(ind)))
            if ind_name is None:
                self.check_index(node, ind)
                ind_name = g.init(_np(ind).astype(np.int64))
            x = g.op("Gather", [x, ind_name], axis=ax)
        if squeeze:
            x = g.op("Squeeze", [x, g.ints(squeeze)])
        if unsqueeze:
            x = g.op("Unsqueeze", [x, g.ints(unsqueeze)])
        return x

    def check_index(self, node: Node, ind: np.ndarray) -> None:
        """Refuse an index array the model computed from its input (it would be frozen)."""
        i = self.pos[id(node)]
        for r in self.runs[1:]:
            other = r.order[i].params["idx"]
            other = other if isinstance(other, tuple) else (other,)
            arrays = [_np(o) for o in other if _is_array(o)]
            if (
                not arrays
                or arrays[0].shape != ind.shape
                or not np.array_equal(arrays[0], _np(ind))
            ):
                raise OnnxExportError(
                    f"onnx export: 'getitem' takes an index of shape {ind.shape} computed from the "
                    "input outside the recorded operations (an argmax?); ONNX export cannot follow it"
                )

    def build(self) -> None:
        for node in self.base.order:
            if id(node) in self.value:
                continue
            if node.prim is None:
                owner = node.owner() if node.owner is not None else None
                name = self.names.get(id(owner)) or self.data_names.get(id(node.value))
                self.value[id(node)] = self.g.init(_np(node.value), name or "parameter")
                continue
            self.value[id(node)] = self.emit(node)


def _slice_plan(node: Node) -> tuple:
    """``getitem``'s index as ONNX Slice/Squeeze/Unsqueeze/Gather arguments."""
    shape = np.shape(node.args[0].value if type(node.args[0]) is Node else node.args[0])
    idx = node.params["idx"]
    idx = idx if isinstance(idx, tuple) else (idx,)
    used = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (len(shape) - used) + idx[k + 1 :]
    idx = idx + (slice(None),) * (len(shape) - sum(1 for i in idx if i is not None))
    starts, ends, axes, steps, squeeze, unsqueeze, gathers = [], [], [], [], [], [], []
    big = int(np.iinfo(np.int64).max)
    axis = out_axis = 0
    for item in idx:
        if item is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            starts.append(int(item))
            ends.append(int(item) + 1 if int(item) != -1 else big)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        elif isinstance(item, slice):
            if item != slice(None):
                step = 1 if item.step is None else int(item.step)
                start = item.start if item.start is not None else (0 if step > 0 else big)
                end = item.stop if item.stop is not None else (big if step > 0 else -big - 1)
                starts.append(int(start))
                ends.append(int(end))
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        elif _is_array(item) and item.dtype.kind in "iu" and not gathers:
            gathers.append((axis, item, out_axis))
            out_axis += item.ndim
        else:
            what = f"{item.dtype} array of shape {item.shape}" if _is_array(item) else repr(item)
            raise OnnxExportError(
                f"onnx export: the index {what} of 'getitem' is not mapped (slices, integers, "
                "None, ... and one integer array are)"
            )
        axis += 1
    return starts, ends, axes, steps, squeeze, unsqueeze, gathers


# -- the public function ---------------------------------------------------------------------


def _state_names(model: Any) -> tuple[dict[int, str], dict[int, str]]:
    handles: dict[int, str] = {}
    data: dict[int, str] = {}
    state = getattr(model, "state_dict", None)
    if callable(state):
        with contextlib.suppress(Exception):
            for name, value in state().items():
                if isinstance(value, array):
                    handles.setdefault(id(value), name)
                    data.setdefault(id(value._data), name)
    named = getattr(model, "named_parameters", None)
    if callable(named):
        with contextlib.suppress(Exception):
            for name, value in named():
                handles.setdefault(id(value), name)
                data.setdefault(id(value._data), name)
    return handles, data


def _check_names(
    names: Sequence[str] | None, n: int, what: str, default: Callable[[int], str]
) -> list[str]:
    if names is None:
        names = []
    names = list(names)
    if len(names) > n or not all(isinstance(s, str) and s for s in names):
        raise OnnxExportError(
            f"onnx export: {what} must be at most {n} non-empty strings, got {names}"
        )
    names += [default(i) for i in range(len(names), n)]
    if len(set(names)) != n:
        raise OnnxExportError(f"onnx export: {what} repeat a name: {names}")
    return names


def _dynamic(
    dynamic_axes: Any, inputs: list[str], outputs: list[str], args: list
) -> dict[str, dict[int, str]]:
    if dynamic_axes is None:
        return {}
    if not isinstance(dynamic_axes, Mapping):
        raise OnnxExportError(
            "onnx export: dynamic_axes must be a dict {name: {axis: 'label'}} or {name: [axes]}"
        )
    out: dict[str, dict[int, str]] = {}
    for name, axes in dynamic_axes.items():
        if name not in inputs and name not in outputs:
            raise OnnxExportError(
                f"onnx export: dynamic_axes names {name!r}, which is neither an input {inputs} nor an output {outputs}"
            )
        if isinstance(axes, Mapping):
            spec = {int(k): str(v) for k, v in axes.items()}
        elif isinstance(axes, (list, tuple)):
            spec = {int(k): f"{name}_dynamic_axes_{j + 1}" for j, k in enumerate(axes)}
        else:
            raise OnnxExportError(
                f"onnx export: dynamic_axes[{name!r}] must be a dict or a list of axes"
            )
        if name in inputs:
            nd = np.ndim(args[inputs.index(name)]._data)
            for k in list(spec):
                if not -nd <= k < nd:
                    raise OnnxExportError(
                        f"onnx export: input {name!r} has {nd} axes; dynamic axis {k} is not one"
                    )
                spec[k % nd] = spec.pop(k)
        out[name] = spec
    return out


def export_onnx(
    model: Callable,
    args: Any,
    f: str | os.PathLike | io.IOBase | None = None,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Any] | None = None,
    opset_version: int | None = None,
    training: bool = False,
    doc_string: str = "",
    names_from: Any = None,
    metadata: Mapping[str, str] | None = None,
) -> Any:
    """Export ``model(*args)`` as an ONNX model; write it to ``f`` when given.

    Args:
        model: a module or any function of chainrule arrays (or tensors).
        args: one array or a tuple of arrays: example inputs, run once (three more times to
            find input-dependent constants and dynamic sizes).
        f: a path (written atomically) or a binary file object; ``None`` writes nothing.
        input_names: the graph inputs' names (default ``input`` or ``input_0``, ``input_1``...).
        output_names: the outputs' names (default ``output`` or ``output_0``...).
        dynamic_axes: ``{name: {axis: label}}`` or ``{name: [axes]}``: axes whose size may
            change at run time (a batch axis).
        opset_version: the ONNX opset (13 to the installed onnx's newest; default 18).
        training: run the model in training mode (default: eval mode, restored afterwards).
        doc_string: the model's description.
        names_from: the module whose ``state_dict`` names the initializers (default: ``model``).
        metadata: strings stored in the model's ``metadata_props``.

    Returns:
        The ``onnx.ModelProto``, checked by ``onnx.checker``.

    Raises:
        OnnxExportError: a ``ValueError`` naming a primitive or value ONNX cannot express.
    """
    onnx, helper, _ = _onnx()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not _MIN_OPSET <= opset <= newest:
        raise OnnxExportError(
            f"onnx export: opset_version must be an int from {_MIN_OPSET} to {newest}, got {opset!r}"
        )
    if isinstance(args, array):
        args = (args,)
    if not isinstance(args, (tuple, list)) or not args:
        raise OnnxExportError("onnx export: args must be an array or a non-empty tuple of arrays")
    import chainrule.core as mx

    args = [a if isinstance(a, array) else mx.array(_np(a)) for a in args]
    floats = [_np(a._data).dtype.kind in "f" for a in args]
    set_mode = getattr(model, "train", None)
    was_training = getattr(model, "training", None)
    if callable(set_mode) and was_training is not None:
        set_mode(bool(training))
    try:
        base = _Run(model, args, floats)
        ins = _check_names(
            input_names,
            len(args),
            "input_names",
            lambda i: "input" if len(args) == 1 else f"input_{i}",
        )
        n_out = len(base.outs)
        outs = _check_names(
            output_names, n_out, "output_names", lambda i: "output" if n_out == 1 else f"output_{i}"
        )
        dyn = _dynamic(dynamic_axes, ins, outs, args)
        runs = [base, _Run(model, [_perturb(a) for a in args], floats)]
        symbols = [
            (ins.index(name), axis)
            for name, spec in dyn.items()
            if name in ins
            for axis in sorted(spec)
        ]
        for i, axis in symbols:
            bumped = [_bump(a, axis) if k == i else a for k, a in enumerate(args)]
            runs.append(_Run(model, bumped, floats))
    finally:
        if callable(set_mode) and was_training is not None:
            set_mode(bool(was_training))
    for r in runs[1:]:
        if r.signature() != base.signature() or len(r.outs) != n_out:
            raise OnnxExportError(
                "onnx export: the model records different operations for other input values or "
                "sizes (control flow that depends on the input), which one ONNX graph cannot hold"
            )
    handles, data = _state_names(model if names_from is None else names_from)
    dims = _Dims(symbols, [int(np.shape(args[i]._data)[axis]) for i, axis in symbols])
    ex = _Exporter(runs, dims, ins, handles, data, opset)
    ex.build()
    g = ex.g
    graph_outputs = []
    for k, (o, name) in enumerate(zip(base.outs, outs)):
        if o._node is None:
            raise OnnxExportError(
                f"onnx export: output {name!r} does not depend on the inputs or parameters"
            )
        g.nodes.append(
            helper.make_node("Identity", [ex.value[id(o._node)]], [name], name=f"{name}_identity")
        )
        shape: list = list(np.shape(o._data))
        for j in range(len(shape)):
            if any(np.shape(r.outs[k]._data)[j] != shape[j] for r in runs[2:]):
                shape[j] = dyn.get(name, {}).get(j) or f"{name}_dim_{j}"
        dtype = helper.np_dtype_to_tensor_dtype(_np(o._data).dtype)
        graph_outputs.append(helper.make_tensor_value_info(name, dtype, shape))
    graph_inputs = []
    for a, name in zip(args, ins):
        shape = list(np.shape(a._data))
        for axis, label in dyn.get(name, {}).items():
            shape[axis] = label
        dtype = helper.np_dtype_to_tensor_dtype(_np(a._data).dtype)
        graph_inputs.append(helper.make_tensor_value_info(name, dtype, shape))
    graph = helper.make_graph(
        g.nodes, "chainrule", graph_inputs, graph_outputs, g.inits, doc_string=doc_string
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="chainrule",
        producer_version=_version(),
    )
    proto.ir_version = min(proto.ir_version, 10)
    if metadata:
        helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto)
    if f is not None:
        _write(proto, f)
    return proto


def _version() -> str:
    try:
        from chainrule import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def _write(proto: Any, f: Any) -> None:
    data = proto.SerializeToString()
    if hasattr(f, "write"):
        f.write(data)
        return
    from chainrule.core.io import write_bytes

    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"onnx export: the folder {folder} does not exist")
    write_bytes(path, data)
