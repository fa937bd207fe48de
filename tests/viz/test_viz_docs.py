"""docs/autodiff.md and its twin show what their code produces: outputs, pictures, commands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from chainrule.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "make_autodiff_images.py"


@pytest.fixture(scope="module")
def maker():
    spec = importlib.util.spec_from_file_location("make_autodiff_images", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pages_outputs_and_pictures_are_what_the_code_produces(maker, tmp_path):
    problems = maker.differences(tmp_path)
    assert not problems, "\n".join(problems) + "\n(run: python docs/make_autodiff_images.py)"


def test_the_twins_run_the_same_code(maker):
    def code(page):
        text = page.read_text(encoding="utf-8")
        blocks = [c for lang, *_, c in maker.blocks(text) if lang == "python"]
        # comments are translated; the statements are not
        return [[line.split("  #")[0] for line in c.splitlines()] for c in blocks]

    english, chinese = maker.PAGES
    assert code(english) == code(chinese)
    assert len(code(english)) == 7


def test_the_command_of_section_3_draws_the_same_picture(maker, tmp_path, monkeypatch):
    text = maker.PAGES[0].read_text(encoding="utf-8")
    python = [c for lang, *_, c in maker.blocks(text) if lang == "python"]
    imports = "".join(line for line in python[0].splitlines(True) if "import" in line)
    two_layer = next(c for c in python if "nn.Linear(2, 2)" in c)
    (tmp_path / "two_layer.py").write_text(imports + two_layer, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert "chainrule graph two_layer.py -o two_layer.svg" in text
    assert main(["graph", "two_layer.py", "-o", "two_layer.svg", "-q"]) == 0
    drawn = (tmp_path / "two_layer.svg").read_bytes()
    assert drawn == (ROOT / "docs" / "images" / "seed003_two_layer.svg").read_bytes()
