"""Pitfall 9: pictures without system packages.

The complaint: drawing a model's graph in PyTorch (torchviz) or Keras (``plot_model``) needs
Graphviz's ``dot`` program from the operating system; ``pip install graphviz`` installs only a
wrapper, and the first ``render()`` fails with "failed to execute 'dot'" on a laptop without
admin rights, in a fresh container or on a CI runner. chainrule's ``Graph.render("g.svg")``
lays the graph out in pure Python and writes the SVG with nothing installed; Graphviz is used
when present, for large graphs and for PNG/PDF. Without it, asking for PNG says how to
install it.

The checks run with ``PATH`` pointing at an empty folder, so no ``dot`` can be found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import chainrule.core as mx
from chainrule import viz

ROOT = Path(__file__).resolve().parents[2]
SVG_TEXT = "{http://www.w3.org/2000/svg}text"


def texts_in(svg: Path) -> set[str]:
    """Every text element of an SVG file (parsing it also proves it is well-formed XML)."""
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return {"".join(t.itertext()) for t in root.iter(SVG_TEXT)}


@pytest.fixture
def no_graphviz(tmp_path, monkeypatch):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return tmp_path


def test_a_users_script_writes_the_svg_with_no_graphviz(no_graphviz):
    script = no_graphviz / "draw.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, shutil
            import chainrule.core as mx
            import chainrule.nn as nn
            from chainrule import viz

            class TwoLayer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(2, 2)
                    self.fc2 = nn.Linear(2, 1)

                def forward(self, x):
                    return mx.sigmoid(self.fc2(nn.relu(self.fc1(x))))

            model = TwoLayer()
            x = mx.array([[0.5, 0.2], [0.7, 0.1]])
            y = mx.array([[1.0], [0.0]])
            loss = nn.losses.mse_loss(model(x), y)
            g = viz.graph(loss, model, gradients=True)
            g.render("g.svg")
            print(json.dumps({
                "dot": shutil.which("dot"),
                "params": [name for name, _ in model.named_parameters()],
                "ops": g.operations,
            }))
            """
        )
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=no_graphviz, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dot"] is None  # really no Graphviz
    texts = texts_in(no_graphviz / "g.svg")
    assert set(report["params"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    for name in report["params"] + report["ops"]:
        assert name in texts, f"{name} is not in the picture"
    # the layers' operations are all there: two addmm (product and bias), the relu, the sigmoid
    assert {"addmm", "maximum", "sigmoid", "square"} <= set(report["ops"]) <= texts
    assert report["ops"].count("addmm") == 2


def test_every_operation_and_parameter_name_is_in_the_svg(no_graphviz):
    rng = np.random.default_rng(0)
    w1 = mx.array(rng.standard_normal((3, 4)), requires_grad=True)
    b1 = mx.array(rng.standard_normal(4), requires_grad=True)
    w2 = mx.array(rng.standard_normal((4, 1)), requires_grad=True)
    x = mx.array(rng.standard_normal((5, 3)))
    h = mx.tanh(mx.add(mx.matmul(x, w1), b1))
    loss = mx.mean(mx.exp(mx.matmul(h, w2)))
    g = viz.graph(loss, {"enc": {"w": w1, "b": b1}, "head": w2}, inputs={"x": x})
    svg = g.render(no_graphviz / "g.svg")
    texts = texts_in(svg)
    for name in ("matmul", "add", "tanh", "exp", "enc.w", "enc.b", "head", "x"):
        assert name in texts
    for node in g.nodes:
        assert node.name in texts
    assert sorted(os.listdir(no_graphviz)) == ["empty-path", "g.svg"]


def test_large_graphs_still_render_without_graphviz(no_graphviz):
    a = mx.array([0.3, 0.4], requires_grad=True)
    y = a
    for i in range(viz.DOT_THRESHOLD + 50):
        y = mx.sin(y) if i % 2 else mx.cos(y) * a
    g = viz.graph(mx.sum(y), {"a": a})
    texts = texts_in(g.render(no_graphviz / "big.svg"))
    assert {"sin", "cos", "multiply", "sum", "a"} <= texts


def test_png_without_graphviz_says_how_to_install_it(no_graphviz):
    a = mx.array([1.0], requires_grad=True)
    g = viz.graph(mx.exp(a), {"a": a})
    with pytest.raises(viz.GraphvizNotFoundError) as info:
        g.render(no_graphviz / "g.png")
    message = str(info.value)
    assert "g.png needs the Graphviz `dot` program" in message
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "write an .svg file, which needs no Graphviz" in message
    assert not (no_graphviz / "g.png").exists()
