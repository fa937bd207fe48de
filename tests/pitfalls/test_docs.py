"""``docs/pitfalls.md`` and its Traditional Chinese twin: the ten points, each runnable.

The ``python`` blocks of each document run in order in one namespace, in a fresh temporary
directory (as ``tests/test_readme.py`` does for the READMEs). A block whose fence says
``needs=<module>`` runs only when that module exists (point 9 needs ``chainrule.viz``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["docs/pitfalls.md", "docs/pitfalls.zh-TW.md"]
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
TESTS = sorted(p.name for p in (ROOT / "tests" / "pitfalls").glob("test_[01][0-9]_*.py"))


def blocks(document: str) -> list[tuple[str, str, int, str]]:
    """(language, rest of the info string, line number, code) of every fenced block."""
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(2).strip(), text.count("\n", 0, m.start()) + 1, m.group(3))
        for m in FENCE.finditer(text)
    ]


def _needs(info: str) -> str | None:
    m = re.search(r"needs=(\S+)", info)
    return m.group(1) if m else None


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_ten_points_are_listed_in_order_each_with_its_test(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    headings = re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE)
    assert headings == [str(i) for i in range(1, 11)]
    sections = re.split(r"^## \d+\. ", text, flags=re.MULTILINE)[1:]
    for number, section in enumerate(sections, start=1):
        langs = [lang for lang, *_ in blocks_of(section)]
        assert "python" in langs, f"{document}: point {number} has no runnable example"
    assert [int(name[5:7]) for name in TESTS] == list(range(1, 11))  # a test per point


def blocks_of(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(text)]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_fence_names_its_language(document):
    unnamed = [line for lang, _, line, _ in blocks(document) if not lang]
    assert not unnamed, f"{document}: fences without a language at lines {unnamed}"


def test_the_twins_show_the_same_code():
    """Comments are translated; the statements are the same."""

    def statements(document):
        out = []
        for lang, _, _, code in blocks(document):
            if lang == "python":
                lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in code.splitlines()]
                out.append([line for line in lines if line and not line.lstrip().startswith("#")])
        return out

    assert statements(DOCUMENTS[0]) == statements(DOCUMENTS[1])


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_blocks_run(document, tmp_path, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    skipped = []
    for lang, info, line, code in blocks(document):
        if lang != "python":
            continue
        needs = _needs(info)
        if needs and not _available(needs):
            skipped.append((line, needs))
            continue
        compiled = compile(code, f"{document}:{line}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compiled, namespace)
            except Exception as e:  # name the block that failed
                raise AssertionError(
                    f"{document}, the python block at line {line} failed: {type(e).__name__}: {e}"
                ) from e
    assert all(needs == "chainrule.viz" for _, needs in skipped), skipped
