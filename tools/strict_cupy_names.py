"""Write ``chainrule/core/strict_cupy_names.py``: the NumPy names CuPy implements.

The strict CuPy stand-in (``chainrule/core/strict_backend.py``) refuses a NumPy function or
ufunc that CuPy's ``__array_function__`` / ``__array_ufunc__`` would not find, as CuPy does.
``NDARRAY`` lists the methods and attributes of ``cupy.ndarray`` (the stand-in's arrays have
only those). The names are read from a CuPy source tree (a git directory, e.g. one ``fetch`` brought):
the public names of ``cupy``, ``cupy.linalg``, ``cupy.fft``, ``cupy.lib.stride_tricks`` and
``cupyx.scipy.special``, less those CuPy imports from NumPy itself (CuPy's dispatch declines
a function that is NumPy's own).

    python tools/strict_cupy_names.py /path/to/cupy.git > chainrule/core/strict_cupy_names.py
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap

MODULES = {
    "": "cupy/__init__.py",
    "linalg": "cupy/linalg/__init__.py",
    "fft": "cupy/fft/__init__.py",
    "lib.stride_tricks": "cupy/lib/stride_tricks.py",
    "special": "cupyx/scipy/special/__init__.py",
}


def _source(git_dir: str, path: str) -> str:
    out = subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def public_names(source: str, from_numpy: bool = False) -> set[str]:
    """Module-level public names of ``source`` (``from_numpy``: only those it imports from
    NumPy)."""
    names: set[str] = set()
    stack = list(ast.parse(source).body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Try, ast.If)):
            stack += node.body + getattr(node, "orelse", [])
        elif isinstance(node, ast.ImportFrom):
            if (node.module == "numpy") == from_numpy:
                names.update(a.asname or a.name for a in node.names)
        elif from_numpy:
            continue
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return {n for n in names if not n.startswith("_") and n not in ("annotations", "*")}


def ndarray_attributes(core_pyx: str, core_pxd: str) -> set[str]:
    """The public methods and attributes of ``cupy.ndarray`` (``cupy/_core/core.pyx``'s
    ``_ndarray_base`` and the ``readonly`` fields of ``core.pxd``)."""
    start = core_pyx.index("cdef class _ndarray_base")
    end = re.search(r"\n(cdef class |class |cpdef |def )", core_pyx[start + 10 :])
    body = core_pyx[start : start + 10 + end.start()] if end else core_pyx[start:]
    names = set(re.findall(r"\n    (?:cpdef|def)\s+(?:[\w\[\]\.]+\s+)?(\w+)\s*\(", body))
    names |= set(re.findall(r"\n    property (\w+):", body))
    names |= set(re.findall(r"readonly [\w\.]+ (\w+)", core_pxd))
    return {n for n in names if not n.startswith("_")}


def signatures(git_dir: str, names: set[str]) -> dict[str, tuple[str, ...] | None]:
    """The keyword arguments of the functions ``names`` that CuPy writes in Python (its
    ``.py`` modules): a tuple of parameter names, or ``None`` when one takes ``**kwargs``.
    A name defined more than once keeps the union; one written in Cython is left out."""
    files = subprocess.run(
        ["git", f"--git-dir={git_dir}", "ls-tree", "-r", "--name-only", "HEAD", "cupy"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    out: dict[str, tuple[str, ...] | None] = {}
    for path in files:
        if not path.endswith(".py") or "/tests/" in path or "/_fusion" in path:
            continue
        try:
            tree = ast.parse(_source(git_dir, path))
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name not in names:
                continue
            a = node.args
            params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            if a.kwarg is not None or out.get(node.name, ()) is None:
                out[node.name] = None
            else:
                out[node.name] = tuple(sorted(set(out.get(node.name) or ()) | set(params)))
    return out


def _words(names: list[str], indent: str = "") -> str:
    """``names`` as lines of whitespace-separated words (at most 96 characters a line)."""
    return "\n".join(
        textwrap.wrap(
            " ".join(names),
            96,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    )


def main(git_dir: str) -> None:
    """Print the module."""
    commit = subprocess.run(
        ["git", f"--git-dir={git_dir}", "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    version = _source(git_dir, "cupy/_version.py").split("'")[1]
    top_source = _source(git_dir, MODULES[""])
    print('"""The NumPy names CuPy implements (generated by tools/strict_cupy_names.py from CuPy')
    print(f'{version}, commit {commit[:12]}): the strict stand-in refuses the others."""')
    print()
    print("from __future__ import annotations")
    print()
    print()
    print("def _set(words: str) -> frozenset[str]:")
    print("    return frozenset(words.split())")
    print()
    print()
    print("NAMES: dict[str, frozenset[str]] = {")
    for key, path in MODULES.items():
        src = _source(git_dir, path)
        names = sorted(public_names(src) | public_names(src, from_numpy=True))
        print(f"    {key!r}: _set(")
        print('        """')
        print(_words(names, "        "))
        print('        """')
        print("    ),")
    print("}")
    print()
    print("# ``cupy.X`` that is NumPy's own object (CuPy's __array_function__ declines those)")
    print("NUMPY_OWN: frozenset[str] = _set(")
    print('    """')
    print(_words(sorted(public_names(top_source, from_numpy=True)), "    "))
    print('    """')
    print(")")
    print()
    sigs = signatures(git_dir, public_names(top_source))
    print(
        "# the parameters of CuPy's functions written in Python (``*``: any keyword), a line each"
    )
    print('_SIGNATURES = """')
    for n in sorted(sigs):
        params = sigs[n]
        print(f"{n}: {'*' if params is None else ' '.join(params)}".rstrip())
    print('"""')
    print("PARAMETERS: dict[str, frozenset[str] | None] = {")
    print('    name: None if rest.strip() == "*" else _set(rest)')
    print('    for name, rest in (line.split(":", 1) for line in _SIGNATURES.strip().splitlines())')
    print("}")
    print()
    attrs = ndarray_attributes(
        _source(git_dir, "cupy/_core/core.pyx"), _source(git_dir, "cupy/_core/core.pxd")
    )
    print("NDARRAY: frozenset[str] = _set(")
    print('    """')
    print(_words(sorted(attrs), "    "))
    print('    """')
    print(")")


if __name__ == "__main__":
    main(sys.argv[1])
