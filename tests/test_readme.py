"""The READMEs' code runs as shown.

Every ```python block of each document below is executed; the blocks of one document run in
order in ONE shared namespace (like a notebook: a later block may use what an earlier block
defined), in a fresh temporary working directory. Blocks that are not meant to run use
another fence: ```bash for shell commands, ```text for output. A fence without a language is
refused, so nothing is skipped by accident.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "README.zh-TW.md"]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def code_blocks(document: str) -> list[tuple[str, int, str]]:
    """(language, line number, code) of every fenced block."""
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_fence_names_its_language(document):
    blocks = code_blocks(document)
    assert blocks, f"{document} has no code blocks"
    unnamed = [line for lang, line, _ in blocks if not lang]
    assert not unnamed, f"{document}: fences without a language at lines {unnamed}"
    assert sum(lang == "python" for lang, _, _ in blocks) >= 4


@pytest.mark.parametrize("document", DOCUMENTS)
def test_readme_opens_with_the_two_commands(document):
    lang, _, code = code_blocks(document)[0]
    assert lang == "bash"
    assert [line.strip() for line in code.strip().splitlines() if not line.startswith("#")] == [
        "make demo",
        "make test",
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_blocks_run(document, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__readme__"}
    for lang, line, code in code_blocks(document):
        if lang != "python":
            continue
        compiled = compile(code, f"{document}:{line}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compiled, namespace)
            except Exception as e:  # name the block that failed
                raise AssertionError(
                    f"{document}, the python block at line {line} failed: {type(e).__name__}: {e}"
                ) from e
    assert os.getcwd() == str(tmp_path)
