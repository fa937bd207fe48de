"""Layers point one way: core <- nn <- optimizers <- data/train <- distributed/viz <- cli <- torch.

Two checks of chainrule/core/lazy.py's ``LAYERS``: importing a package in a fresh process loads
nothing from a higher layer, and no module's source imports from a higher layer except the
lazy references listed once in ``LAZY_ALIASES``. Then the one alias mechanism: the lazy names
resolve to the objects they name, and ``chainrule.optim`` *is* ``chainrule.optimizers``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import chainrule
from chainrule.core import lazy

ROOT = Path(chainrule.__file__).parent
PACKAGES = [p for layer in lazy.LAYERS for p in layer]


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(tree: ast.Module, module: str, is_package: bool):
    """Yield ``(target, attribute, lineno, lazy)`` for each chainrule import in a module.

    ``target`` is the module imported (``from X import a`` names ``X.a`` when that is a
    module, else ``X`` with attribute ``a``); ``lazy`` is whether the import runs inside a
    function. ``importlib.import_module("...")`` with a literal name counts as an import.
    """
    package = module if is_package else module.rpartition(".")[0]
    stack = [(node, False) for node in tree.body]
    while stack:
        node, lazy_here = stack.pop()
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno, lazy_here
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if _is_module(sub):
                    yield sub, None, node.lineno, lazy_here
                else:
                    yield base, alias.name, node.lineno, lazy_here
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, None, node.lineno, lazy_here
        inner = lazy_here or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _listed(module: str, target: str, attribute: str | None) -> bool:
    """Whether LAZY_ALIASES lets ``module`` import ``target`` (``attribute``) lazily."""
    entries = set(lazy.LAZY_ALIASES.get(module, {}).values())
    if attribute is not None:
        return f"{target}:{attribute}" in entries
    return target in entries


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        module, is_package = _module_name(path)
        yield path, module, is_package


# -- the layers, as Python loads them ------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_loads_nothing_above_it(package):
    out = _fresh(
        f"import json, sys, {package}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('chainrule'))))"
    )
    loaded = json.loads(out)
    assert package in loaded
    level = lazy.layer_of(package)
    above = [m for m in loaded if lazy.layer_of(m) > level]
    assert not above, f"import {package} loads {above}"


def test_importing_the_core_loads_only_the_core():
    # the case the layers exist for, spelled out: no torch, nn, optimizers, data, train,
    # distributed, viz, cli, and not the checkpoint module either
    loaded = json.loads(
        _fresh(
            "import json, sys, chainrule.core\n"
            "print(json.dumps([m for m in sys.modules if m.startswith('chainrule')]))"
        )
    )
    assert {m.split(".")[1] for m in loaded if "." in m} <= {"core", "utils"}, loaded


def test_the_lazy_names_load_their_layer_on_first_use():
    out = _fresh(
        "import sys, chainrule.nn as nn\n"
        "assert 'chainrule.optimizers' not in sys.modules\n"
        "opt = nn.optim\n"
        "import chainrule.optimizers\n"
        "assert opt is chainrule.optimizers and 'chainrule.distributed' not in sys.modules\n"
        "print('ok')"
    )
    assert out.split() == ["ok"]


# -- the layers, in the source -------------------------------------------------------------------


def test_every_module_has_a_layer():
    for _, module, _ in _sources():
        lazy.layer_of(module)  # raises for a package missing from LAYERS


def test_no_module_imports_from_a_higher_layer():
    problems = []
    for path, module, is_package in _sources():
        level = lazy.layer_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, attribute, line, in_function in _imports(tree, module, is_package):
            if not target.startswith("chainrule") or lazy.layer_of(target) <= level:
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {target}"
            if not in_function:
                problems.append(f"{where} when it loads")
            elif not _listed(module, target, attribute):
                problems.append(f"{where} lazily, but LAZY_ALIASES does not list it")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_upward_imports():
    eager = ast.parse("import chainrule.torch\nfrom chainrule import cli\n")
    found = [(t, a, lazy_) for t, a, _, lazy_ in _imports(eager, "chainrule.nn.x", False)]
    assert ("chainrule.torch", None, False) in found
    assert ("chainrule.cli", None, False) in found
    inner = ast.parse(
        "def f():\n    from chainrule.distributed import init\n"
        "    import importlib\n    importlib.import_module('chainrule.viz')\n"
    )
    found = [(t, a, lazy_) for t, a, _, lazy_ in _imports(inner, "chainrule.train.fit", False)]
    assert ("chainrule.distributed", "init", True) in found
    assert ("chainrule.viz", None, True) in found
    assert _listed("chainrule.train.fit", "chainrule.distributed", "init")
    assert not _listed("chainrule.train.fit", "chainrule.viz", None)
    relative = ast.parse("from ..optimizers import SGD\nfrom . import losses\n")
    found = {(t, a) for t, a, _, _ in _imports(relative, "chainrule.nn", True)}
    assert found == {("chainrule.optimizers", "SGD"), ("chainrule.nn.losses", None)}


# -- one list of lazy names, one alias mechanism -------------------------------------------------


def test_every_lazy_alias_points_upward_and_resolves():
    for module, names in lazy.LAZY_ALIASES.items():
        for name, target in names.items():
            target_module = target.partition(":")[0]
            assert lazy.layer_of(target_module) > lazy.layer_of(module), (module, name, target)
            assert lazy.resolve(target) is not None


@pytest.mark.parametrize(
    ("anchor", "name"),
    [(m, n) for m, names in lazy.LAZY_ALIASES.items() for n in names if m != "chainrule.train.fit"],
)
def test_anchors_serve_their_lazy_names(anchor, name):
    import importlib

    module = importlib.import_module(anchor)
    assert getattr(module, name) is lazy.resolve(lazy.LAZY_ALIASES[anchor][name])


def test_anchors_refuse_other_names():
    import chainrule.core as mx
    import chainrule.nn as nn

    for module in (chainrule, mx, nn):
        with pytest.raises(AttributeError, match="no_such_name"):
            module.no_such_name  # noqa: B018
    assert "optim" in dir(nn) and "lr_scheduler" in dir(nn)


def test_the_seeds_spellings():
    import chainrule.core as mx
    import chainrule.nn as nn
    import chainrule.optim as optim
    import chainrule.optimizers as optimizers

    assert nn.optim is optim is optimizers
    assert nn.lr_scheduler is optimizers.lr_scheduler
    assert nn.optim.Adam is optimizers.Adam
    assert nn.lr_scheduler.StepLR is optimizers.lr_scheduler.StepLR
    assert mx.distributed is lazy.resolve("chainrule.distributed")


@pytest.mark.parametrize(
    "first",
    [
        "import chainrule.optim.lr_scheduler",
        "import chainrule.optimizers.lr_scheduler",
        "from chainrule.optim.lr_scheduler import StepLR",
        "import chainrule.torch.optim.lr_scheduler",
        "import chainrule.nn as nn; nn.lr_scheduler",
    ],
)
def test_optim_is_the_same_modules_whatever_is_imported_first(first):
    # in a fresh process, so the first import is really first
    out = _fresh(
        f"{first}\n"
        "import sys\n"
        "import chainrule, chainrule.optim, chainrule.optimizers as o, chainrule.torch.optim as t\n"
        "import chainrule.optim.lr_scheduler as a, chainrule.optimizers.lr_scheduler as b\n"
        "import chainrule.optim.schedulers as s, chainrule.torch.optim.lr_scheduler as c\n"
        "import chainrule.nn as nn\n"
        "assert chainrule.optim is o and sys.modules['chainrule.optim'] is o\n"
        "assert a is b is c is o.lr_scheduler is t.lr_scheduler is nn.lr_scheduler\n"
        "assert s is o.schedulers and nn.optim is o\n"
        "assert a.StepLR is b.StepLR and t.Adam is o.Adam and t.SGD is o.SGD\n"
        "files = {m.__file__ for k, m in sys.modules.items() if k.endswith('lr_scheduler')}\n"
        "assert len(files) == 1, files\n"
        "print('ok')"
    )
    assert out.split() == ["ok"]


def test_module_aliases_are_the_same_objects():
    import importlib

    for alias, target in lazy.MODULE_ALIASES.items():
        assert importlib.import_module(alias) is importlib.import_module(target)
        assert sys.modules[alias] is sys.modules[target]
