"""Rules of the package layout (issue 13): file sizes and the public door to core.

* No file in ``chainrule/`` is longer than 1,200 lines.
* Outside ``chainrule/core``, no module imports a private core name (``from chainrule.core.x
  import _y``, or ``core_module._y``): what layers, losses, optimizers and the torch facade
  need from the engine is in ``chainrule.core.extend``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chainrule"
MAX_LINES = 1200
MODULES = sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _dotted(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_core(name: str) -> bool:
    return name == "chainrule.core" or name.startswith("chainrule.core.")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_file_is_longer_than_the_limit(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {n} lines (limit {MAX_LINES})"


def private_core_uses(path: Path) -> list[str]:
    """Private core names that a module outside core imports or reads off a core module."""
    tree = ast.parse(path.read_text())
    found, core_aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if _is_core(module) and alias.name.startswith("_"):
                    found.append(f"line {node.lineno}: from {module} import {alias.name}")
                elif _is_core(full) and not alias.name.startswith("_"):
                    core_aliases.add(alias.asname or alias.name)  # a core module bound to a name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_core(alias.name):
                    core_aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in core_aliases
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


OUTSIDE_CORE = [p for p in MODULES if not _is_core(_dotted(p))]


@pytest.mark.parametrize("path", OUTSIDE_CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_outside_core_no_private_core_names(path):
    found = private_core_uses(path)
    assert not found, (
        f"{path.relative_to(PACKAGE)} uses private core names (use chainrule.core.extend): "
        + "; ".join(found)
    )


def test_the_check_finds_what_it_looks_for(tmp_path):
    bad = PACKAGE / "nn" / "_probe_for_the_rule.py"
    bad.write_text(
        "from ..core.array import _from_value\nfrom chainrule.core import ops\nx = ops._as\n"
    )
    try:
        found = private_core_uses(bad)
    finally:
        bad.unlink()
    assert len(found) == 2, found


def test_test_files_have_unique_basenames():
    """tests/ has no __init__.py files: two test modules with one basename break collection."""
    tests = Path(__file__).resolve().parent
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted(tests.rglob("test_*.py")):
        other = seen.setdefault(path.name, path)
        if other is not path:
            clashes.append(f"{other.relative_to(tests)} and {path.relative_to(tests)}")
    assert not clashes, "test files with the same basename: " + "; ".join(clashes)
