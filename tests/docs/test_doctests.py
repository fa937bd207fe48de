"""The `>>>` examples in the docstrings of the public entry points run as shown.

Only the modules listed here are run (not the whole package through ``--doctest-modules``):
the front doors of both styles and the transforms their users meet first.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "chainrule.core",
    "chainrule.torch",
    "chainrule.nn",
    "chainrule.optimizers",
    "chainrule.data",
    "chainrule.train",
    "chainrule.core.autograd",
    "chainrule.nn.utils",
    "chainrule.torch._creation",
    "chainrule.core.vmapping",
    "chainrule.core.compile",
    "chainrule.core.gradcheck",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    # Only the module's own objects: a package re-exports names whose examples run elsewhere.
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has no >>> examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted and not failed, f"{name}: {failed} of {attempted} examples failed (above)"
