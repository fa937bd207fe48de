"""The type stubs of what is built at run time are current (docs/make_stubs.py writes them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_stubs", ROOT / "docs" / "make_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ops_stub_is_current(maker):
    pytest.importorskip("ruff")
    assert maker.STUB.read_text(encoding="utf-8") == maker.render(), (
        "chainrule/core/ops/__init__.pyi is out of date: run python docs/make_stubs.py"
    )


def test_the_stub_names_every_operation(maker):
    import chainrule.core as mx
    from chainrule.core import ops

    text = maker.STUB.read_text(encoding="utf-8")
    for name in ops.__all__:
        assert f" as {name}\n" in text, name
        assert getattr(mx, name) is ops.EXPORTS[name]
