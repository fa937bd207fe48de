"""``chainrule graph SCRIPT.py``: run a script and draw the graph of the loss it computes.

The script runs as ``python SCRIPT.py`` would (``__name__ == "__main__"``, its folder first on
``sys.path``). Afterwards its global variable ``loss`` (or ``--var NAME``) is captured with
``chainrule.viz.graph``: the global ``model`` (or ``--model NAME``) names the parameters, and
the script's other global arrays that are not computed (``x``, ``targets``...) are shown by
their variable names as inputs.

This module is the command's side; the drawing itself is ``chainrule.viz`` (which knows nothing
of the command).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from .args import HelpFormatter
from .errors import CommandError

__all__ = ["add_parser", "run", "run_script"]


def run_script(path: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Run a Python file as ``__main__`` and return its global variables.

    ``sys.exit(0)`` (or ``sys.exit()``) in the script counts as success.

    Raises:
        CommandError: no such file, a syntax error, a non-zero exit, or an exception in the
            script (whose traceback is printed to stderr first).
    """
    script = Path(path)
    if not script.is_file():
        raise CommandError(f"{path}: no such file; give the path of a Python script")
    source = script.read_bytes()
    try:
        code = compile(source, str(script), "exec")
    except SyntaxError as e:
        raise CommandError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": str(script),
        "__builtins__": __builtins__,
    }
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *(argv or [])]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        exec(code, namespace)
    except SystemExit as e:
        if e.code not in (None, 0):
            raise CommandError(f"{path} exited with status {e.code}") from None
    except Exception as e:
        traceback.print_exc()
        raise CommandError(
            f"{path} raised {type(e).__name__}: {e} (traceback above)".replace("\n", " ")
        ) from None
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return namespace


def _graph_of(namespace: dict[str, Any], args: argparse.Namespace, script: str) -> Any:
    from chainrule.core import array
    from chainrule.viz import graph

    if args.var not in namespace:
        found = sorted(k for k, v in namespace.items() if type(v) is array and v._node)
        hint = f" (arrays with a graph: {', '.join(found)})" if found else ""
        raise CommandError(
            f"{script} defines no global variable {args.var!r}; name the array to draw with "
            f"--var{hint}"
        )
    output = namespace[args.var]
    if type(output) is not array:
        raise CommandError(
            f"{args.var} in {script} is a {type(output).__name__}, not a chainrule array"
        )
    if output._node is None:
        raise CommandError(
            f"{args.var} in {script} records no graph: compute it from arrays with "
            "requires_grad=True or from a Module's parameters, outside no_grad()"
        )
    params = None
    if args.model is not None:
        if args.model not in namespace:
            raise CommandError(f"{script} defines no global variable {args.model!r} (--model)")
        params = namespace[args.model]
    elif hasattr(namespace.get("model"), "named_parameters"):
        params = namespace["model"]
    inputs = {
        k: v
        for k, v in namespace.items()
        if type(v) is array
        and not k.startswith("_")
        and k != args.var
        and (v._node is None or v._node.prim is None)
    }
    if params is not None:
        try:
            owned = {id(a) for _, a in params.named_parameters()}
        except AttributeError:
            owned = set()
        inputs = {k: v for k, v in inputs.items() if id(v) not in owned}
    try:
        return graph(output, params, inputs=inputs, gradients=args.gradients)
    except ValueError as e:
        raise CommandError(f"{e} (or pass --no-gradients)") from None


def run(args: argparse.Namespace) -> int:
    """Run ``chainrule graph`` with parsed arguments; print the tree, write the picture.

    Args:
        args: the parsed arguments.

    Returns:
        0 (problems raise CommandError).
    """
    out = Path(args.output) if args.output else Path(Path(args.script).stem + "_graph.svg")
    if not out.parent.exists():  # checked before the script runs (it may take a while)
        raise CommandError(f"--output {out}: the folder {out.parent} does not exist")
    namespace = run_script(args.script)
    g = _graph_of(namespace, args, args.script)
    if not args.quiet:
        print(g.summary())
    try:
        g.render(out, engine=args.engine)
    except RuntimeError as e:  # Graphviz missing or failing
        raise CommandError(str(e)) from None
    print(f"wrote {out} ({len(g)} nodes)", file=sys.stderr)
    return 0


def add_parser(commands: Any) -> None:
    """Add ``graph`` and its options to the sub-command parsers.

    Args:
        commands: the object ``add_subparsers`` returned.
    """
    parser = commands.add_parser(
        "graph",
        help="draw the computational graph of the loss a script computes",
        description=(
            "Run a Python script, then draw the graph behind its `loss` variable: one node per "
            "operation, parameters by name, the gradient norm at each node. Prints a text tree "
            "and writes an SVG (no Graphviz needed), or PNG/PDF through Graphviz's dot. "
            "See docs/autodiff.md."
        ),
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(run=run)
    parser.add_argument("script", metavar="SCRIPT.py", help="a script that computes a loss")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the picture to write: .svg (no Graphviz needed), .png/.pdf (need Graphviz) or "
        ".dot (default: SCRIPT_graph.svg in the current folder)",
    )
    parser.add_argument(
        "--var", default="loss", metavar="NAME", help="the script's global array to draw"
    )
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="the script's global Module (or parameter dict) whose parameter names to show "
        "(default: `model` when the script defines one)",
    )
    parser.add_argument(
        "--no-gradients",
        dest="gradients",
        action="store_false",
        help="skip the backward pass that, by default, shows the gradient norm at each node",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "python", "dot"),
        default="auto",
        help="layout: the built-in one, Graphviz's dot, or auto (built-in for small SVGs)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the text tree to stdout"
    )
