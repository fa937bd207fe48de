"""The `chainrule` command's arguments: --help documents everything, and every bad argument or
bad data file stops it with exit status 2 and one line on stderr, before anything is written.

Most tests call `main(argv)` in-process (fast); a few run the real entry point in a subprocess
to check what a user sees. The PostgreSQL run of `chainrule train` lives in
tests/data/test_sources.py, next to the fixture that starts the server.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cli_helpers import ROOT, leftovers, one_error_line, run

from chainrule import cli

# ------------------------------------------------------------------------------------------
# --help documents everything
# ------------------------------------------------------------------------------------------


def _subparsers(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "graph"])
def test_help_documents_every_option(command, capsys):
    status, out, _ = run([command, "--help"], capsys)
    assert status == 0
    sub = _subparsers(cli.build_parser())[command]
    for action in sub._actions:
        for flag in action.option_strings:
            assert flag in out, flag
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"
    if command == "train":
        for word in ("digits", "sqlite:///", "postgresql://", ".csv", ".json", "early stopping"):
            assert word in out.replace("\n", " ").replace("  ", " "), word


def test_top_level_help_lists_commands(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    for command in ("train", "evaluate", "predict"):
        assert command in out


def test_installed_entry_point_runs():
    exe = Path(sys.executable).with_name("chainrule")
    if not exe.exists():
        pytest.skip("the chainrule script is not installed in this environment")
    proc = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--data" in proc.stdout


def test_python_dash_m_runs_the_package(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "train" in proc.stdout and "graph" in proc.stdout


def test_the_entry_point_in_pyproject_names_the_package():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'chainrule = "chainrule.cli:main"' in text
    assert callable(cli.main) and callable(cli.build_parser)


def _imported_modules(path: Path) -> set[str]:
    """The absolute names of every module a source file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_library_does_not_import_the_command():
    """Layers point one way: the command imports the library (viz included), never back."""
    for path in (ROOT / "chainrule").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "chainrule").parts:
            continue
        imported = _imported_modules(path)
        assert not any(n == "chainrule.cli" or n.startswith("chainrule.cli.") for n in imported), (
            path
        )
    assert not (ROOT / "chainrule" / "viz" / "command.py").exists()
    assert "chainrule.viz.capture" in _imported_modules(ROOT / "chainrule" / "viz" / "__init__.py")
    assert "chainrule.viz" in _imported_modules(ROOT / "chainrule" / "cli" / "graph.py")


def test_no_module_of_the_command_is_over_1200_lines():
    for path in (ROOT / "chainrule" / "cli").glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 1200, path


# ------------------------------------------------------------------------------------------
# Bad arguments and bad data: status 2, one line, no traceback, no directory
# ------------------------------------------------------------------------------------------


BAD = [
    # (argv with {tmp} for the temp folder, substrings of the one stderr line)
    (["train"], ["the following arguments are required: --data"]),
    (["train", "--data", "iris", "--hidden", "12,x"], ["--hidden", "layer sizes like 128,64"]),
    (["train", "--data", "iris", "--hidden", "-3"], ["--hidden", "must be positive"]),
    (["train", "--data", "iris", "--lr", "-1"], ["--lr", "positive number"]),
    (["train", "--data", "iris", "--lr", "nan"], ["--lr", "positive number"]),
    (["train", "--data", "iris", "--epochs", "0"], ["--epochs", "at least 1"]),
    (["train", "--data", "iris", "--val-split", "1.5"], ["--val-split", "[0, 1)"]),
    (["train", "--data", "iris", "--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["train", "--data", "iris", "--optimizer", "adagrad"], ["--optimizer", "invalid choice"]),
    (["train", "--data", "iris", "--activation", "swish"], ["--activation", "invalid choice"]),
    (["train", "--data", "iris", "--task", "clustering"], ["--task", "invalid choice"]),
    (["train", "--data", "iris", "--batch-size", "many"], ["--batch-size", "whole number"]),
    (["train", "--data", "iris", "--seed", "-1"], ["argument --seed", "0 or more", "-1"]),
    (["train", "--data", "iris", "--seed", "x"], ["argument --seed", "whole number", "'x'"]),
    (["train", "--data", "iris", "--epochs", "9" * 5000], ["--epochs", "whole number"]),
    (["train", "--data", "iris", "--hidden", "1000000000000"], ["--hidden", "too large"]),
    (
        ["train", "--data", "iris", "--hidden", "100000,100000"],
        ["--hidden 100000,100000", "10,000,", "parameters", "limit of 100,000,000"],
    ),
    (["train", "--data", "iris", "--max-classes", "0"], ["--max-classes", "at least 1"]),
    (["train", "--data", "iris", "--missing", "zero"], ["--missing", "invalid choice"]),
    (["evaluate", "{tmp}", "--data", "iris", "--missing", "x"], ["--missing", "invalid choice"]),
    (["predict", "{tmp}", "--data", "iris", "--missing", "x"], ["--missing", "invalid choice"]),
    (["train", "--data", "iris", "--val-split", "0.6", "--test-split", "0.5"], ["sum below 1"]),
    (["train", "--data", "{tmp}/few.csv"], ["only 4 rows", "a validation set", "--val-split 0"]),
    (["train", "--data", "iris", "--target", "x"], ["--target/--features do not apply"]),
    (["train", "--data", "iris", "--task", "regression"], ["'iris' is a classification task"]),
    (["train", "--data", "mnist"], ["unknown dataset 'mnist'"]),
    (["train", "--data", "{tmp}/missing.csv"], ["missing.csv: no such file"]),
    (["train", "--data", "{tmp}/notes.txt.md"], ["unknown dataset"]),
    (["train", "--data", "{tmp}/ragged.csv"], ["ragged.csv line 3", "ragged row"]),
    (["train", "--data", "{tmp}/text.csv"], ["column 'b' is not numeric", "line 3", "'oops'"]),
    (["train", "--data", "{tmp}/nan.csv"], ["missing value in column 'b'", "line 3"]),
    (["train", "--data", "{tmp}/empty.csv"], ["empty table"]),
    (["train", "--data", "{tmp}/one.csv"], ["single class ('x')", "nothing to learn"]),
    (["train", "--data", "{tmp}/bad.json"], ["bad.json", "record [1]", "missing 'label'"]),
    (["train", "--data", "{tmp}/good.csv", "--target", "z"], ["no target column 'z'", "'a'"]),
    (["train", "--data", "{tmp}/good.csv", "--features", "a,q"], ["no feature column 'q'"]),
    (["train", "--data", "sqlite:///{tmp}/none.db?table=t"], ["none.db: no such file"]),
    (["train", "--data", "sqlite:///{tmp}/db.sqlite"], ["?table=NAME"]),
    (["evaluate", "{tmp}", "--data", "iris"], ["not a run directory (no config.json)"]),
    (["evaluate", "{tmp}/nowhere", "--data", "iris"], ["nowhere: no such run directory"]),
    (["predict", "{tmp}/nowhere", "--data", "iris"], ["no such run directory"]),
    (["fly"], ["invalid choice: 'fly'"]),
]


@pytest.mark.parametrize("argv, parts", BAD)
def test_bad_input_exits_2_with_one_line(files, argv, parts, capsys, monkeypatch):
    monkeypatch.chdir(files)
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    before = sorted(os.listdir(files))
    status, out, err = run(argv, capsys)
    one_error_line(status, err, *parts)
    assert sorted(os.listdir(files)) == before  # nothing written (no runs/, no partial dir)


def test_bad_data_from_the_real_command(files):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainrule.cli",
            "train",
            "--data",
            str(files / "text.csv"),
            "--out",
            str(files / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("chainrule train: error: ") and "'oops'" in proc.stderr
    assert not (files / "run").exists() and leftovers(files) == []


def test_pyproject_license_is_an_spdx_string_without_deprecation_warnings(monkeypatch):
    """`make demo` (pip install -e) printed setuptools' "`project.license` as a TOML table is
    deprecated" warning twice."""
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)  # README.md is read relative to the project
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = pyprojecttoml.apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert not [w for w in caught if "license" in str(w.message)], caught
    assert getattr(dist.metadata, "license_expression", None) == "MIT"
    assert 'requires = ["setuptools>=77"]' in (ROOT / "pyproject.toml").read_text()
