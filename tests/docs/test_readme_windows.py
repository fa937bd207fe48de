"""The READMEs' commands work on Windows too, and their code can be run twice.

tests/test_readme.py runs every ```python block once in a fresh folder; a learner runs them
again in the folder the first run filled (files, a SQLite database), so this runs them twice.
The shell commands are pasted into cmd.exe as often as into bash: no single quotes.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "README.zh-TW.md"]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
WINDOWS_HEADING = {"README.md": "## On Windows", "README.zh-TW.md": "## 在 Windows 上"}


def blocks(document: str) -> list[tuple[str, int, str]]:
    text = (ROOT / document).read_text(encoding="utf-8")
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text)
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_python_blocks_run_twice_in_one_folder(document, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for run in ("first", "second"):
        namespace: dict = {"__name__": "__readme__"}
        for lang, line, code in blocks(document):
            if lang != "python":
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(compile(code, f"{document}:{line}", "exec"), namespace)
                except Exception as e:
                    raise AssertionError(
                        f"{document}, {run} run, the block at line {line}: {type(e).__name__}: {e}"
                    ) from e


@pytest.mark.parametrize("document", DOCUMENTS)
def test_shell_commands_use_double_quotes(document):
    single = [
        f"line {line + n}: {text.strip()}"
        for lang, line, code in blocks(document)
        if lang in ("bash", "bat", "powershell", "sh")
        for n, text in enumerate(code.splitlines(), 1)
        if "'" in text.split("#")[0]
    ]
    assert not single, f"{document}: cmd.exe does not take single quotes:\n" + "\n".join(single)
    text = (ROOT / document).read_text(encoding="utf-8")
    assert "pip install -e '" not in text


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_windows_section_says_how_to_do_what_make_does(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    heading = WINDOWS_HEADING[document]
    assert heading in text
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    commands = "\n".join(code for lang, _, code in blocks(document) if code in section)
    for needed in (
        "py -m venv .venv",
        ".venv\\Scripts\\activate",
        'pip install -e ".[data,train]"',
        "chainrule train --data digits",
        "python -m pytest",
        "ruff check",
    ):
        assert needed in commands, f"{document}: the Windows section lacks {needed!r}"
    assert "winget install Graphviz.Graphviz" in section
    assert "make " not in commands and ".venv/bin" not in commands
