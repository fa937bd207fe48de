"""`chainrule graph SCRIPT.py`: run a script, print the tree, write the picture."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from chainrule.cli import main

SCRIPT = textwrap.dedent(
    """
    import chainrule.core as mx
    import chainrule.nn as nn

    class TwoLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(2, 3)
            self.fc2 = nn.Linear(3, 1)

        def forward(self, x):
            return mx.sigmoid(self.fc2(nn.relu(self.fc1(x))))

    mx.random.seed(0)
    model = TwoLayer()
    features = mx.array([[0.5, 0.2], [0.7, 0.1]])
    labels = mx.array([[1.0], [0.0]])
    loss = nn.losses.mse_loss(model(features), labels)
    if __name__ == "__main__":
        other = loss * 2.0
    """
)


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "two_layer.py"
    path.write_text(SCRIPT)
    return path


def svg_texts(path) -> set[str]:
    root = ET.parse(path).getroot()
    return {"".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")}


def test_graph_command_writes_the_picture_and_prints_the_tree(script, capsys):
    assert main(["graph", str(script)]) == 0
    out, err = capsys.readouterr()
    picture = script.parent / "two_layer_graph.svg"
    assert f"wrote {picture.name}" in err
    texts = svg_texts(picture)
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "features", "labels"):
        assert name in texts
        assert name in out
    assert {"addmm", "maximum", "sigmoid", "subtract", "square"} <= texts  # Linear: one addmm
    assert out.startswith("graph of ")
    assert "|grad| " in out


def test_graph_command_options(script, capsys):
    args = ["--var", "other", "-o", "g.dot", "--no-gradients", "-q"]
    assert main(["graph", script.name, *args]) == 0
    assert capsys.readouterr().out == ""
    dot = (script.parent / "g.dot").read_text()
    assert dot.startswith("digraph chainrule {") and "|grad|" not in dot
    assert 'tooltip="op: multiply"' in dot  # the extra `* 2.0` of `other`


@pytest.mark.parametrize(
    "args, message",
    [
        (["--var", "nope"], "defines no global variable 'nope'; name the array to draw with --var"),
        (["--var", "features"], "features in two_layer.py records no graph"),
        (["--var", "model"], "model in two_layer.py is a TwoLayer, not a chainrule array"),
        (["--model", "missing"], "defines no global variable 'missing' (--model)"),
        (["-o", "no/such/dir/g.svg"], "the folder no/such/dir does not exist"),
        (["-o", "g.jpeg"], "cannot tell the format"),
    ],
)
def test_graph_command_errors_are_one_line(script, capsys, args, message):
    assert main(["graph", script.name, *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_graph_command_reports_the_scripts_own_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text("x = 1\nraise KeyError('boom')\n")
    assert main(["graph", "bad.py"]) == 2
    err = capsys.readouterr().err
    assert 'bad.py", line 2' in err  # the traceback
    assert "chainrule graph: error: bad.py raised KeyError: 'boom' (traceback above)" in err
    assert main(["graph", "missing.py"]) == 2
    assert "missing.py: no such file" in capsys.readouterr().err


def test_png_without_graphviz_names_the_install(script, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(script.parent))
    assert main(["graph", str(script), "-o", "g.png", "-q"]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err


def test_the_installed_command_runs(script):
    done = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "graph", str(script), "-q", "-o", "g.svg"],
        capture_output=True,
        text=True,
        cwd=script.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "fc2.bias" in svg_texts(script.parent / "g.svg")
