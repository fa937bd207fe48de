"""One version, declared once, and the project's typed-package and changelog habits."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

import chainrule

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_declared_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "chainrule.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", chainrule.__version__)


def test_the_installed_metadata_agrees():
    try:
        installed = importlib.metadata.version("chainrule")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return
    assert installed == chainrule.__version__


def test_the_changelog_names_the_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d[^\]]*)\]", text, flags=re.MULTILINE)
    assert released and released[0] == chainrule.__version__, (
        f"CHANGELOG.md's newest release is {released[:1]}, chainrule.__version__ is "
        f"{chainrule.__version__}: add its section"
    )
    assert "## [Unreleased]" in text


def test_the_package_says_it_is_typed():
    assert (ROOT / "chainrule" / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["chainrule"]
