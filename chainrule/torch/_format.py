"""PyTorch's printed form of a tensor: ``tensor([[1., 2.], ...], dtype=torch.float64)``.

The rules follow PyTorch's printing options (precision 4, summarised above 1,000 elements with
3 edge items, lines of 80 characters; ``torch.set_printoptions`` changes them): floats that are all whole print as ``1.``; otherwise
fixed ``0.1235``, or scientific ``1.0000e-05`` when the finite non-zero magnitudes span more
than 1,000 times, exceed 1e8 or go below 1e-4. The dtype is shown unless it is the default
of its kind (float32, int64, bool, complex64); a leaf that requires a gradient shows
``requires_grad=True``, a recorded result its ``grad_fn``.
"""

from __future__ import annotations

import math

import numpy as np

from chainrule.core import backend as _backend


class _PrintOptions:
    """PyTorch's printing options (``torch.set_printoptions``), one set per process."""

    __slots__ = ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")

    def __init__(self) -> None:
        self.precision = 4
        self.threshold: float = 1000
        self.edgeitems = 3
        self.linewidth = 80
        self.sci_mode: bool | None = None


OPTIONS = _PrintOptions()

_PROFILES = {
    "default": (4, 1000, 3, 80),
    "short": (2, 1000, 2, 80),
    "full": (4, math.inf, 3, 80),
}


def set_printoptions(
    precision: int | None = None,
    threshold: float | None = None,
    edgeitems: int | None = None,
    linewidth: int | None = None,
    profile: str | None = None,
    sci_mode: bool | None = None,
) -> None:
    """How tensors print, as PyTorch's ``torch.set_printoptions``.

    Args:
        precision: digits after the point (default 4).
        threshold: more elements than this print summarised (default 1000).
        edgeitems: elements shown at each end of a summarised dimension (default 3).
        linewidth: characters per line (default 80).
        profile: ``"default"``, ``"short"`` (precision 2, 2 edge items) or ``"full"`` (never
            summarised), applied first; the other arguments override it.
        sci_mode: ``True``/``False`` force or forbid scientific notation; ``None`` (the
            default, and what every call without it sets) chooses per tensor.
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(
                f"set_printoptions: profile={profile!r}; use 'default', 'short' or 'full'"
            )
        (OPTIONS.precision, OPTIONS.threshold, OPTIONS.edgeitems, OPTIONS.linewidth) = _PROFILES[
            profile
        ]
    if precision is not None:
        OPTIONS.precision = int(precision)
    if threshold is not None:
        OPTIONS.threshold = threshold
    if edgeitems is not None:
        OPTIONS.edgeitems = int(edgeitems)
    if linewidth is not None:
        OPTIONS.linewidth = int(linewidth)
    OPTIONS.sci_mode = sci_mode


_DEFAULT_DTYPES = {"float32", "int64", "bool", "complex64"}

# the backward node names PyTorch prints for the common operations
_GRAD_FN = {
    "add": "Add",
    "subtract": "Sub",
    "multiply": "Mul",
    "divide": "Div",
    "negative": "Neg",
    "power": "Pow",
    "matmul": "Mm",
    "sum": "Sum",
    "mean": "Mean",
    "exp": "Exp",
    "log": "Log",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "maximum": "Maximum",
    "reshape": "View",
    "transpose": "Transpose",
    "square": "Pow",
    "sqrt": "Sqrt",
    "abs": "Abs",
}


class _Formatter:
    """How the elements of one tensor print: the common width and the number style."""

    def __init__(self, values: np.ndarray) -> None:
        self.kind = values.dtype.kind
        self.sci = False
        self.whole = False
        self.width = 1
        if self.kind == "f":
            finite = values[np.isfinite(values)]
            self.whole = bool(finite.size == 0 or np.all(finite == np.ceil(finite)))
            nonzero = np.abs(finite[finite != 0]).astype(np.float64)
            if nonzero.size:
                lo, hi = nonzero.min(), nonzero.max()
                if self.whole:
                    self.sci = hi / lo > 1000.0 or hi > 1.0e8
                else:
                    self.sci = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        if self.kind == "f" and OPTIONS.sci_mode is not None:  # forced either way
            self.sci = OPTIONS.sci_mode
        if values.size:
            self.width = max(len(self.text(v)) for v in values.reshape(-1))

    def text(self, v) -> str:
        if self.kind == "b":
            return str(bool(v))
        if self.kind in "iu":
            return str(int(v))
        if self.kind == "c":
            return _complex(v)
        v = float(v)
        if not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if self.sci:
            return f"{v:.{OPTIONS.precision}e}"
        if self.whole:
            return f"{v:.0f}."
        return f"{v:.{OPTIONS.precision}f}"

    def __call__(self, v) -> str:
        return self.text(v).rjust(self.width)


def _complex(v) -> str:
    re, im = float(v.real), float(v.imag)
    rf = _Formatter(np.array([re]))
    imf = _Formatter(np.array([abs(im)]))
    sign = "-" if im < 0 or (im == 0 and math.copysign(1, im) < 0) else "+"
    return f"{rf.text(re)}{sign}{imf.text(abs(im))}j"


def _summary(values: np.ndarray, summarize: bool) -> np.ndarray:
    """The elements that print (the edges of every long dimension when summarising)."""
    if not summarize or values.ndim == 0:
        return values
    edge = OPTIONS.edgeitems
    for axis in range(values.ndim):
        if values.shape[axis] > 2 * edge:
            head = np.take(values, range(edge), axis=axis)
            n = values.shape[axis]
            tail = np.take(values, range(n - edge, n), axis=axis)
            values = np.concatenate([head, tail], axis=axis)
    return values


def _body(values: np.ndarray, fmt: _Formatter, indent: int, summarize: bool) -> str:
    if values.ndim == 0:
        return fmt(values[()])
    n = values.shape[0]
    edge = OPTIONS.edgeitems
    cut = summarize and n > 2 * edge
    rows = list(range(edge)) + [None] + list(range(n - edge, n)) if cut else range(n)
    if values.ndim == 1:
        items = [" ..." if i is None else fmt(values[i]) for i in rows]
        per_line = max(1, (OPTIONS.linewidth - indent) // (fmt.width + 2))
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    parts = ["..." if i is None else _body(values[i], fmt, indent + 1, summarize) for i in rows]
    sep = "," + "\n" * (values.ndim - 1) + " " * (indent + 1)
    return "[" + sep.join(parts) + "]"


def tensor_repr(t) -> str:
    """``repr`` of a ``chainrule.torch`` tensor in PyTorch's format."""
    on_gpu = _backend.is_gpu(t._data)
    values = _backend.to_host(t._data)  # a CUDA tensor's values are copied to the host to print
    if values.dtype.kind == "V" or values.dtype == np.float16:
        values = values.astype(np.float32)
    name = t.dtype.name
    suffix = ["device='cuda:0'"] if on_gpu else []
    summarize = values.size > OPTIONS.threshold
    if values.size == 0:
        body = "[]"
        if values.shape != (0,):
            suffix.append(f"size={tuple(values.shape)}")
    else:
        fmt = _Formatter(_summary(values, summarize))
        body = _body(values, fmt, len("tensor("), summarize)
    if name not in _DEFAULT_DTYPES:
        suffix.append(f"dtype=torch.{name}")
    node = t._node
    if node is not None:
        if node.prim is None:
            suffix.append("requires_grad=True")
        else:
            op = _GRAD_FN.get(node.prim.name) or node.prim.name.title().replace("_", "")
            suffix.append(f"grad_fn=<{op}Backward0>")
    return "tensor(" + ", ".join([body, *suffix]) + ")"
