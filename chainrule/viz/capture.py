"""The recorded computational graph behind an array, as data, DOT text, a picture or a tree.

``graph(loss, model)`` walks the nodes the engine recorded while ``loss`` was computed (one per
operation; see ``docs/architecture.md``) and keeps, for each, what a reader needs: the
operation's name, the shape and dtype of its output, and which nodes fed it. Leaves are
parameters (named by their dotted names when the model or a parameter tree is given), inputs or
constants. With ``gradients=True`` a backward pass from the output records the norm of the
gradient arriving at every node.

The walk is iterative, so graphs of any depth convert.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.core import backend, extend
from chainrule.core import dtypes as _dt
from chainrule.core.array import array
from chainrule.core.backend import xp
from chainrule.core.extend import OBSERVERS, Node, backward_pass, from_value

__all__ = ["graph", "Graph", "GraphNode", "GraphvizNotFoundError", "DOT_THRESHOLD"]

KINDS = ("op", "parameter", "input", "constant")

DOT_THRESHOLD = 200
"""``render(..., engine="auto")`` draws SVG pictures of up to this many nodes with the built-in
layout (the same picture on every machine) and larger ones with Graphviz when it is installed."""

_INSTALL_HINT = (
    "Install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; Fedora: sudo dnf install "
    "graphviz; macOS: brew install graphviz; conda: conda install -c conda-forge graphviz)"
)


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is needed (PNG or PDF output, ``engine="dot"``) but absent."""


@dataclass
class GraphNode:
    """One node of a captured graph.

    Attributes:
        index: position in ``Graph.nodes`` (inputs always come before the nodes they feed).
        kind: ``"op"``, ``"parameter"``, ``"input"`` or ``"constant"``.
        name: the operation's name for an op (``"matmul"``); the dotted name of a parameter
            (``"fc1.weight"``, or ``"parameter"`` when no names were given); the name given in
            ``inputs=`` (or ``"input"``); ``"constant"`` or the value of a scalar constant.
        shape: the output's shape.
        dtype: the output's dtype name (``"float32"``; ``"float"``/``"int"`` for Python scalars).
        inputs: indices of the nodes this one reads, in argument order.
        params: the operation's parameters (axes, shapes, ...) as short strings.
        grad_norm: the norm of the gradient of the output with respect to this node's value,
            when the graph was captured with ``gradients=True`` (``None`` for constants and for
            nodes the backward pass did not reach).
    """

    index: int
    kind: str
    name: str
    shape: tuple
    dtype: str
    inputs: tuple = ()
    params: dict = field(default_factory=dict)
    grad_norm: float | None = None

    @property
    def label(self) -> list[str]:
        """The lines drawn in the node's box: name, shape and dtype, gradient norm."""
        lines = [self.name]
        if self.kind == "op" and self.params:
            extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
            if len(extra) <= 40:
                lines.append(extra)
        lines.append(f"{_fmt_shape(self.shape)} {self.dtype}")
        if self.grad_norm is not None:
            lines.append(f"|grad| {_fmt_norm(self.grad_norm)}")
        return lines


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _fmt_norm(v: float) -> str:
    return f"{v:.4g}"


def _short(value: Any, limit: int = 30) -> str:
    """A parameter value in a few characters (arrays by shape, slices as ``a:b``)."""
    if isinstance(value, extend.BACKEND_ARRAYS):
        text = f"array{_fmt_shape(value.shape)}"
    elif isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        text = ":".join(parts[:2]) + (f":{parts[2]}" if value.step is not None else "")
    elif isinstance(value, tuple):
        text = "(" + ", ".join(_short(v, limit) for v in value) + ("," if len(value) == 1 else "")
        text += ")"
    elif isinstance(value, xp.dtype) or isinstance(value, type):
        text = getattr(value, "__name__", None) or str(value)
    elif value is Ellipsis:
        text = "..."
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dtype_name(value: Any) -> str:
    if isinstance(value, (bool, int, float, complex)):
        return type(value).__name__
    dt = getattr(value, "dtype", None)
    if dt is None:
        dt = xp.asarray(value).dtype
    try:
        return _dt.from_np(dt).name
    except TypeError:
        return str(dt)


def _scalar_text(value: Any) -> str:
    v = value.item() if hasattr(value, "item") else value
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _norm(value: Any) -> float:
    """The Euclidean (Frobenius) norm, computed in double precision."""
    v = xp.asarray(backend.to_host(value))
    v = v.astype(xp.complex128 if v.dtype.kind == "c" else xp.float64)
    return float(xp.linalg.norm(v.ravel()))


def _named_arrays(params: Any) -> list[tuple[str, Any]]:
    """``(dotted name, array)`` pairs from a Module, a parameter tree, a dict or pairs."""
    if params is None:
        return []
    if hasattr(params, "named_parameters") and callable(params.named_parameters):
        return list(params.named_parameters())
    if isinstance(params, dict):
        from chainrule.utils import tree_flatten

        return [(k, v) for k, v in tree_flatten(params) if type(v) is array]
    if isinstance(params, (list, tuple)) or isinstance(params, Iterable):
        pairs = list(params)
        if all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            return pairs
    raise TypeError(
        "graph: params must be a Module, a dict (tree) of arrays or (name, array) pairs such "
        f"as model.named_parameters(), not {type(params).__name__}"
    )


class Graph:
    """A captured computational graph: nodes in dependency order, the output last.

    Attributes:
        nodes: the ``GraphNode`` list; ``nodes[i].inputs`` index into it.
        output: the index of the output node (the root).
        has_gradients: whether gradient norms were recorded.
    """

    def __init__(self, nodes: list[GraphNode], output: int, has_gradients: bool) -> None:
        self.nodes = nodes
        self.output = output
        self.has_gradients = has_gradients

    # -- reading it ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[GraphNode]:
        return iter(self.nodes)

    @property
    def operations(self) -> list[str]:
        """The name of every operation node, in dependency order (repeats included)."""
        return [n.name for n in self.nodes if n.kind == "op"]

    @property
    def parameters(self) -> dict[str, GraphNode]:
        """The parameter nodes by name."""
        return {n.name: n for n in self.nodes if n.kind == "parameter"}

    def consumers(self) -> list[list[int]]:
        """For each node, the indices of the nodes that read it."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.index)
        return out

    def _counts(self) -> str:
        counts = {k: 0 for k in KINDS}
        for n in self.nodes:
            counts[n.kind] += 1
        words = ("operation", "parameter", "input", "constant")
        return ", ".join(
            f"{counts[k]} {w}{'' if counts[k] == 1 else 's'}" for k, w in zip(KINDS, words)
        )

    def __repr__(self) -> str:
        root = self.nodes[self.output]
        return (
            f"Graph({self._counts()}; output {root.name} {_fmt_shape(root.shape)}"
            f"{', with gradient norms' if self.has_gradients else ''})"
        )

    # -- DOT -----------------------------------------------------------------------------------
    def to_dot(self, name: str = "chainrule") -> str:
        """The graph in Graphviz's DOT language (no Graphviz needed to produce it).

        Data flows down: leaves at the top, the output (drawn with a double border) at the
        bottom; each node's label is its name, its shape and dtype and, when recorded, the
        norm of the gradient at it.
        """
        lines = [
            f"digraph {_dot_id(name)} {{",
            '  graph [rankdir=TB, nodesep=0.25, ranksep=0.35, fontname="Helvetica"];',
            '  node [fontname="Helvetica", fontsize=11, style="filled,rounded", shape=box];',
            '  edge [color="#555555", arrowsize=0.7];',
        ]
        for n in self.nodes:
            fill, stroke = STYLE[n.kind]
            attrs = [
                f"label={_dot_str(chr(10).join(n.label))}",
                f'fillcolor="{fill}"',
                f'color="{stroke}"',
                f"tooltip={_dot_str(n.kind + ': ' + n.name)}",
            ]
            if n.kind == "op":
                attrs.append('shape=ellipse, style="filled"')
            if n.index == self.output:
                attrs.append("peripheries=2, penwidth=1.6")
            lines.append(f"  n{n.index} [{', '.join(attrs)}];")
        for n in self.nodes:
            for i in n.inputs:
                lines.append(f"  n{i} -> n{n.index};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    # -- text ----------------------------------------------------------------------------------
    def summary(self, max_indent: int = 40) -> str:
        """A text tree for terminals: the output first, each node's inputs indented below it.

        A node read more than once is tagged ``[#k]`` and printed in full once; later
        appearances say ``(see #k above)``. Levels deeper than ``max_indent`` are not
        indented further (a long chain stays readable).
        """
        consumers = self.consumers()
        shared = {i for i, c in enumerate(consumers) if len(c) > 1}
        out = [
            f"graph of {self.nodes[self.output].name}: {self._counts()}"
            + ("; |grad| = norm of the gradient at each node" if self.has_gradients else "")
        ]
        printed: set[int] = set()
        noted_depth = False
        # (node, prefix for its own line, prefix for its children, connector, depth)
        stack = [(self.output, "", "", "", 0)]
        while stack:
            idx, prefix, child_prefix, connector, depth = stack.pop()
            n = self.nodes[idx]
            tag = f" [#{idx}]" if idx in shared else ""
            if idx in printed:
                out.append(f"{prefix}{connector}{_tree_text(n)}{tag} (see #{idx} above)")
                continue
            printed.add(idx)
            out.append(f"{prefix}{connector}{_tree_text(n)}{tag}")
            if not n.inputs:
                continue
            if depth >= max_indent and not noted_depth:
                noted_depth = True
                out.append(f"{child_prefix}(deeper levels are not indented further)")
            k = len(n.inputs)
            for j in range(k - 1, -1, -1):
                last = j == k - 1
                grow = depth < max_indent
                own = child_prefix
                below = child_prefix + (("    " if last else "│   ") if grow else "")
                stack.append((n.inputs[j], own, below, "└── " if last else "├── ", depth + 1))
        return "\n".join(out)

    # -- pictures ------------------------------------------------------------------------------
    def to_svg(self) -> str:
        """An SVG picture drawn by the built-in layered layout (no Graphviz needed)."""
        from .svg import layout_svg

        return layout_svg(self)

    def _repr_svg_(self) -> str:  # Jupyter shows the picture
        return self.to_svg()

    def render(self, path: str | os.PathLike, engine: str = "auto") -> Path:
        """Write the picture to ``path``; the suffix picks the format.

        Args:
            path: ``*.svg``, ``*.png``, ``*.pdf``, or ``*.dot`` / ``*.gv`` for the DOT text.
            engine: ``"python"`` (the built-in layout, SVG only), ``"dot"`` (Graphviz's
                ``dot`` program) or ``"auto"``: SVG of up to ``DOT_THRESHOLD`` nodes, or any
                SVG when Graphviz is missing, uses the built-in layout; larger SVGs and PNG/PDF
                use ``dot``.

        Returns:
            The path written. The file appears only when complete.

        Raises:
            GraphvizNotFoundError: PNG/PDF or ``engine="dot"`` without Graphviz installed.
        """
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in ("svg", "png", "pdf", "dot", "gv"):
            raise ValueError(
                f"render: cannot tell the format of {str(path)!r} from its suffix; use .svg "
                "(no Graphviz needed), .png or .pdf (need Graphviz) or .dot for the DOT text"
            )
        if engine not in ("auto", "python", "dot"):
            raise ValueError(f"render: engine must be 'auto', 'python' or 'dot', not {engine!r}")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"render: the folder {path.parent} does not exist")
        if fmt in ("dot", "gv"):
            _write_atomic(path, self.to_dot().encode())
            return path
        dot = shutil.which("dot")
        if fmt == "svg" and (
            engine == "python" or (engine == "auto" and (len(self) <= DOT_THRESHOLD or not dot))
        ):
            _write_atomic(path, self.to_svg().encode())
            return path
        if engine == "python":
            raise ValueError(
                f"render: the built-in layout writes SVG only, not {fmt.upper()}; write "
                f"{path.with_suffix('.svg').name} or use engine='dot' (Graphviz)"
            )
        if dot is None:
            raise GraphvizNotFoundError(
                f"render: writing {path.name} needs the Graphviz `dot` program, which is not "
                f"on PATH. {_INSTALL_HINT}, or write an .svg file, which needs no Graphviz."
            )
        _run_dot(dot, self.to_dot(), fmt, path)
        return path


# -- styles shared by DOT and the built-in SVG --------------------------------------------------

STYLE = {  # kind -> (fill, stroke)
    "op": ("#fff4cc", "#9a7b00"),
    "parameter": ("#dbe8ff", "#1f4fbf"),
    "input": ("#dcf5e3", "#1b7a3a"),
    "constant": ("#eeeeee", "#777777"),
}


def _tree_text(n: GraphNode) -> str:
    kind = "" if n.kind == "op" or n.name == n.kind else f" ({n.kind})"
    name = n.name
    if n.kind == "op" and n.params:
        name += "[" + ", ".join(f"{k}={v}" for k, v in n.params.items()) + "]"
    grad = f"  |grad| {_fmt_norm(n.grad_norm)}" if n.grad_norm is not None else ""
    return f"{name}{kind}  {_fmt_shape(n.shape)} {n.dtype}{grad}"


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_id(name: str) -> str:
    return name if name.isidentifier() else _dot_str(name)


def _partial_name(path: Path) -> Path:
    # a fresh name next to the target (created with the usual permissions, unlike mkstemp's)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")


def _write_atomic(path: Path, data: bytes) -> None:
    # the project's one file writer: temporary in the folder, fsync, rename, mode from umask
    from chainrule.core.io import write_bytes

    write_bytes(path, data)


def _run_dot(dot: str, text: str, fmt: str, path: Path) -> None:
    tmp = _partial_name(path)
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}", "-o", str(tmp)], input=text.encode(), capture_output=True
        )
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"render: Graphviz dot failed on {path.name}: {message}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- capture ------------------------------------------------------------------------------------


def graph(
    output: array,
    params: Any = None,
    inputs: dict[str, array] | None = None,
    gradients: bool = False,
    gradient: Any = None,
) -> Graph:
    """Capture the recorded graph behind ``output``.

    Operations are recorded only when some input is being differentiated: a model's
    parameters (``requires_grad`` leaves), an array made with ``requires_grad=True``, or the
    argument of ``mx.grad`` when called inside the function it differentiates.

    Args:
        output: the array whose history to capture (typically the loss).
        params: a ``Module`` (its ``named_parameters()``), a dict tree of arrays or
            ``(name, array)`` pairs: those leaves are shown as parameters by name.
        inputs: ``{"x": x, ...}``: arrays (differentiated or not) to show by name as inputs.
        gradients: run a backward pass from ``output`` and record the norm of the gradient at
            every node. It changes no ``.grad``.
        gradient: the cotangent for that pass when ``output`` has more than one element.

    Returns:
        The ``Graph``: ``.nodes``, ``.to_dot()``, ``.summary()``, ``.render(path)``.
    """
    if type(output) is not array:
        raise TypeError(f"graph: expected a chainrule array, not {type(output).__name__}")
    root = output._node
    if root is None:
        raise ValueError(
            "graph: this array records no graph, because nothing it was computed from is being "
            "differentiated. Give the inputs requires_grad=True (a Module's parameters already "
            "have it) and do not compute it under no_grad()."
        )
    by_handle: dict[int, str] = {}
    by_node: dict[int, str] = {}
    keep = []  # hold the arrays so their ids stay valid while matching
    for name, arr in _named_arrays(params):
        if type(arr) is array:
            keep.append(arr)
            by_handle[id(arr)] = name
            if arr._node is not None:
                by_node[id(arr._node)] = name
    input_handle: dict[int, str] = {}
    input_node: dict[int, str] = {}
    input_data: dict[int, str] = {}
    for name, arr in (inputs or {}).items():
        if type(arr) is not array:
            raise TypeError(f"graph: inputs[{name!r}] must be a chainrule array")
        keep.append(arr)
        input_handle[id(arr)] = name
        input_data[id(arr._data)] = name
        if arr._node is not None:
            input_node[id(arr._node)] = name

    nodes: list[GraphNode] = []
    index: dict = {}  # Node -> index
    consts: dict[int, int] = {}  # id(raw ndarray) -> index
    sources: list[tuple[Node, int]] = []  # the leaves, for the gradient pass

    def add(kind, name, value, ins=(), params=None) -> int:
        shape = tuple(xp.shape(value))
        nodes.append(
            GraphNode(len(nodes), kind, name, shape, _dtype_name(value), tuple(ins), params or {})
        )
        return len(nodes) - 1

    def constant(value) -> int:
        if isinstance(value, extend.BACKEND_ARRAYS):
            hit = consts.get(id(value))
            if hit is not None:
                return hit
            name = input_data.get(id(value))
            if name is not None:
                i = add("input", name, value)
            elif value.size == 1:
                i = add("constant", _scalar_text(value), value)
            else:
                i = add("constant", "constant", value)
            consts[id(value)] = i
            return i
        return add("constant", _scalar_text(value), value)

    def leaf_name(node: Node) -> tuple[str, str]:
        owner = node.owner() if node.owner is not None else None
        key = id(owner) if owner is not None else None
        if key in by_handle:
            return "parameter", by_handle[key]
        if id(node) in by_node:
            return "parameter", by_node[id(node)]
        if key in input_handle:
            return "input", input_handle[key]
        if id(node) in input_node:
            return "input", input_node[id(node)]
        if params is None and node.owner is not None:
            return "parameter", "parameter"
        return "input", "input"

    see_through: set = set()  # tracers shown as the node they wrap
    pending: set = set()
    stack: list = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if not expanded:
            if node in index or node in pending:
                continue
            pending.add(node)
            if (
                node.prim is not None
                and node.prim.name == "identity"
                and (
                    # a transform's tracer is a leaf when it stands for a named array (the model's
                    # parameter inside nn.value_and_grad) or for a plain value (mx.grad's argument)
                    id(node) in by_node or id(node) in input_node or type(node.args[0]) is not Node
                )
            ):
                kind, name = leaf_name(node)
                index[node] = add(kind, name, node.value)
                sources.append((node, index[node]))
                continue
            stack.append((node, True))
            for a in reversed(node.args):
                if type(a) is Node and a not in index and a not in pending:
                    stack.append((a, False))
            continue
        if node.prim is None:
            kind, name = leaf_name(node)
            index[node] = add(kind, name, node.value)
            sources.append((node, index[node]))
        elif node.prim.name == "identity":  # a transform's tracer: see through it
            index[node] = index[node.args[0]]
            see_through.add(node)
        else:
            ins = [index[a] if type(a) is Node else constant(a) for a in node.args]
            shown = {k: _short(v) for k, v in (node.params or {}).items()}
            index[node] = add("op", node.prim.name, node.value, ins, shown)
    out = index[root]
    result = Graph(nodes, out, has_gradients=False)
    if gradients:
        _record_gradients(result, root, index, see_through, sources, output, gradient)
    del keep
    return result


def _record_gradients(
    g: Graph, root: Node, index: dict, see_through: set, sources: list, output, gradient
) -> None:
    """One backward pass from the root; the observer notes the gradient at every node."""
    if gradient is None:
        if output._data.size != 1:
            raise ValueError(
                f"graph: gradients=True needs an output of one element (this one has shape "
                f"{output.shape}); reduce it (.sum(), .mean()) or pass gradient= of that shape"
            )
        seed = from_value(
            backend.array_module(output._data).ones(output._data.shape, output._data.dtype)
        )
    else:
        seed = gradient if type(gradient) is array else array(gradient, dtype=output.dtype)
        if seed.shape != output.shape:
            raise ValueError(
                f"graph: gradient of shape {seed.shape} for an output of shape {output.shape}"
            )
    norms: dict[int, float] = {}

    def observe(node, cot, i, gi) -> None:
        k = index.get(node)
        if k is not None and k not in norms and node not in see_through:
            norms[k] = _norm(cot._data)

    OBSERVERS.append(observe)
    try:
        found = backward_pass(root, seed, {n for n, _ in sources}, False)
    finally:
        OBSERVERS.remove(observe)
    for node, cot in found.values():
        norms[index[node]] = _norm(cot._data)
    if root in index and index[root] not in norms:
        norms[index[root]] = _norm(seed._data)
    for k, v in norms.items():
        g.nodes[k].grad_norm = v if math.isfinite(v) else float("nan")
    g.has_gradients = True
