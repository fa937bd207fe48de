"""chainrule.viz.graph: capture, DOT, the text tree, gradient norms and rendering."""

from __future__ import annotations

import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule import viz
from chainrule.core import autograd

SVG = "{http://www.w3.org/2000/svg}"
NODE_LINE = re.compile(r'^\s*n(\d+) \[label="((?:[^"\\]|\\.)*)".*tooltip="(\w+): ([^"]*)"', re.M)
EDGE_LINE = re.compile(r"^\s*n(\d+) -> n(\d+);", re.M)


def two_layer():
    """A two-layer network written with one primitive per line, so its operations are known."""
    rng = np.random.default_rng(0)
    params = {
        "hidden": {
            "weight": mx.array(rng.standard_normal((3, 4)), requires_grad=True),
            "bias": mx.array(rng.standard_normal(4), requires_grad=True),
        },
        "out": {
            "weight": mx.array(rng.standard_normal((4, 1)), requires_grad=True),
            "bias": mx.array(rng.standard_normal(1), requires_grad=True),
        },
    }
    x = mx.array(rng.standard_normal((5, 3)))
    y = mx.array(rng.uniform(size=(5, 1)))
    h = mx.matmul(x, params["hidden"]["weight"])
    h = mx.add(h, params["hidden"]["bias"])
    h = mx.maximum(h, 0.0)
    z = mx.matmul(h, params["out"]["weight"])
    z = mx.add(z, params["out"]["bias"])
    p = mx.sigmoid(z)
    d = mx.subtract(p, y)
    loss = mx.sum(mx.square(d))
    ops = ["matmul", "add", "maximum", "matmul", "add", "sigmoid", "subtract", "square", "sum"]
    return params, x, y, loss, ops, (h, z, p)


def parse_dot(text: str):
    nodes = {int(i): (kind, name, label) for i, label, kind, name in NODE_LINE.findall(text)}
    edges = [(int(a), int(b)) for a, b in EDGE_LINE.findall(text)]
    return nodes, edges


def have_dot() -> bool:
    if shutil.which("dot"):
        return True
    if os.environ.get("CHAINRULE_REQUIRE_GRAPHVIZ"):
        pytest.fail("CHAINRULE_REQUIRE_GRAPHVIZ is set but Graphviz's `dot` is not on PATH")
    pytest.skip("Graphviz's `dot` is not installed (Debian: apt-get install graphviz)")


def test_dot_lists_exactly_the_operations_and_parameter_names():
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params)
    nodes, edges = parse_dot(g.to_dot())
    assert len(nodes) == len(g)
    assert Counter(name for kind, name, _ in nodes.values() if kind == "op") == Counter(ops)
    names = {name for kind, name, _ in nodes.values() if kind == "parameter"}
    assert names == {"hidden.weight", "hidden.bias", "out.weight", "out.bias"}
    # every edge feeds data forward, and there is one per input of every node
    assert len(edges) == sum(len(n.inputs) for n in g.nodes)
    assert all(a < b for a, b in edges)
    # x and y are constants (nobody differentiates them); 0.0 is maximum's scalar
    constants = [label for kind, _, label in nodes.values() if kind == "constant"]
    assert len(constants) == 3
    assert any(label.startswith("0\\n") for label in constants)


def test_dot_labels_show_shapes_and_dtypes():
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params)
    nodes, _ = parse_dot(g.to_dot())
    labels = {name: label for kind, name, label in nodes.values() if kind == "parameter"}
    assert labels["hidden.weight"] == "hidden.weight\\n(3, 4) float32"
    assert labels["out.bias"] == "out.bias\\n(1,) float32"
    root = g.nodes[g.output]
    assert (root.name, root.shape, root.dtype) == ("sum", (), "float32")
    assert "peripheries=2" in g.to_dot().splitlines()[4 + g.output]


def test_module_parameters_get_their_dotted_names():
    mx.random.seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = mx.array(np.ones((2, 3), dtype=np.float32))
    loss = mx.mean(model(x))
    g = viz.graph(loss, model)
    expected = {name for name, _ in model.named_parameters()}
    assert set(g.parameters) == expected
    assert {"layers.0.weight", "layers.2.bias"} <= expected
    # without names, the requires_grad leaves are still parameters
    anonymous = viz.graph(loss)
    assert [n.kind for n in anonymous.nodes].count("parameter") == len(expected)


def test_inputs_are_named_and_requires_grad_inputs_are_inputs():
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params, inputs={"x": x, "y": y})
    kinds = {n.name: n.kind for n in g.nodes}
    assert kinds["x"] == kinds["y"] == "input"
    a = mx.array([1.0, 2.0], requires_grad=True)
    w = mx.array([3.0, 4.0], requires_grad=True)
    g2 = viz.graph(mx.sum(a * w), {"w": w}, inputs={"a": a})
    assert {(n.kind, n.name) for n in g2.nodes if not n.inputs} == {
        ("parameter", "w"),
        ("input", "a"),
    }


def test_gradient_norms_match_backward_and_the_chain_rule():
    params, x, y, loss, ops, (h, z, p) = two_layer()
    g = viz.graph(loss, params, gradients=True)
    assert g.has_gradients
    # the capture's own pass leaves every .grad alone
    assert all(a.grad is None for a in (params["hidden"]["weight"], params["out"]["bias"]))
    loss.backward()
    for name, node in g.parameters.items():
        group, leaf = name.split(".")
        want = np.linalg.norm(np.asarray(params[group][leaf].grad))
        assert node.grad_norm == pytest.approx(want, rel=1e-5)
    # inner nodes, by the chain rule: dL/dp = 2 (p - y), dL/dz = dL/dp * p (1 - p)
    pv, yv = np.asarray(p, np.float64), np.asarray(y, np.float64)
    dp = 2 * (pv - yv)
    dz = dp * pv * (1 - pv)
    by_name = {}
    for n in g.nodes:
        by_name.setdefault(n.name, []).append(n)
    assert by_name["sigmoid"][0].grad_norm == pytest.approx(np.linalg.norm(dp), rel=1e-5)
    assert by_name["add"][1].grad_norm == pytest.approx(np.linalg.norm(dz), rel=1e-5)
    assert by_name["sum"][0].grad_norm == pytest.approx(1.0)
    assert all(n.grad_norm is None for n in g.nodes if n.kind == "constant")
    assert "|grad| " in g.to_dot() and "|grad| " in g.summary()
    assert autograd.OBSERVERS == []


def test_gradients_of_a_non_scalar_output_need_a_cotangent():
    a = mx.array([1.0, -2.0, 3.0], requires_grad=True)
    y = mx.square(a)
    with pytest.raises(ValueError, match=r"one element.*shape \(3,\)"):
        viz.graph(y, gradients=True)
    g = viz.graph(y, gradients=True, gradient=mx.array([1.0, 0.0, 0.0]))
    leaf = next(n for n in g.nodes if not n.inputs)
    assert leaf.grad_norm == pytest.approx(2.0)  # d(a0^2)/da0 at 1


def test_graph_of_an_array_without_history_says_what_to_do():
    with pytest.raises(ValueError, match="requires_grad=True"):
        viz.graph(mx.array([1.0]) * 2)
    with pytest.raises(TypeError, match="chainrule array"):
        viz.graph(np.ones(3))
    a = mx.array([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="named_parameters"):
        viz.graph(a * 2, params=42)


def test_graph_inside_mlx_style_transforms():
    seen = []

    def f(x):
        y = mx.sum(mx.sin(x))
        seen.append(viz.graph(y))
        return y

    mx.grad(f)(mx.array([0.1, 0.2]))
    g = seen[0]
    assert [(n.kind, n.name) for n in g.nodes] == [("input", "input"), ("op", "sin"), ("op", "sum")]

    mx.random.seed(0)
    model = nn.Linear(2, 1)
    x = mx.array([[1.0, 2.0]])

    def loss_fn(m, x):
        loss = mx.sum(m(x))
        seen.append(viz.graph(loss, m, gradients=True))
        return loss

    _, grads = nn.value_and_grad(model, loss_fn)(model, x)
    g = seen[1]
    assert set(g.parameters) == {"weight", "bias"}
    assert "identity" not in g.operations
    assert g.parameters["weight"].grad_norm == pytest.approx(
        float(np.linalg.norm(np.asarray(grads["weight"]))), rel=1e-6
    )


def test_shared_nodes_appear_once_in_the_graph_and_are_referenced_in_the_tree():
    a = mx.array([1.0, 2.0], requires_grad=True)
    s = mx.sin(a)
    loss = mx.sum(s * s + s)
    g = viz.graph(loss, {"a": a})
    assert g.operations.count("sin") == 1
    tree = g.summary()
    k = next(n.index for n in g.nodes if n.name == "sin")
    assert tree.count(f"[#{k}]") == 3
    assert tree.count(f"(see #{k} above)") == 2
    assert tree.splitlines()[1].startswith("sum")
    assert "a (parameter)  (2,) float32" in tree


def test_ten_thousand_nodes_convert_without_recursion():
    a = mx.array([0.5], requires_grad=True)
    y = a
    for _ in range(10_000):
        y = mx.sin(y)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # anything recursive over the graph would fail at once
    try:
        g = viz.graph(y, gradients=True)
        dot = g.to_dot()
        tree = g.summary()
    finally:
        sys.setrecursionlimit(limit)
    assert len(g) == 10_001
    nodes, edges = parse_dot(dot)
    assert len(nodes) == 10_001 and len(edges) == 10_000
    assert len(tree.splitlines()) == 1 + 1 + 10_001  # title, the depth note, the nodes
    assert "(deeper levels are not indented further)" in tree
    assert max(len(line) for line in tree.splitlines()) < 300
    assert g.nodes[0].grad_norm is not None


def svg_texts(path) -> list[str]:
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def test_builtin_svg_is_valid_and_holds_every_name(tmp_path):
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params, gradients=True)
    out = g.render(tmp_path / "g.svg", engine="python")
    texts = svg_texts(out)
    for name in [*ops, *g.parameters]:
        assert name in texts
    assert sum(t.startswith("|grad| ") for t in texts) == len(g) - 3  # all but 3 constants
    assert os.listdir(tmp_path) == ["g.svg"]  # no temporary file left behind
    assert g.to_svg() == out.read_text()  # the layout is deterministic


def long_chain():
    a = mx.array([0.5], requires_grad=True)
    y = a
    for _ in range(viz.DOT_THRESHOLD + 5):
        y = mx.sin(y)
    return viz.graph(y)


def test_auto_engine_draws_small_graphs_itself_even_with_graphviz(tmp_path):
    params, x, y, loss, ops, _ = two_layer()
    text = viz.graph(loss, params).render(tmp_path / "g.svg").read_text()
    assert "<title>chainrule computational graph</title>" in text


def test_auto_engine_without_graphviz_draws_large_graphs_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    text = long_chain().render(tmp_path / "big.svg").read_text()
    assert "<title>chainrule computational graph</title>" in text


def test_auto_engine_uses_graphviz_for_large_graphs(tmp_path):
    have_dot()
    text = long_chain().render(tmp_path / "big.svg").read_text()
    assert "Generated by graphviz" in text
    assert text.count(">sin</text>") == viz.DOT_THRESHOLD + 5


def test_png_without_graphviz_says_how_to_install_it(tmp_path, monkeypatch):
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(viz.GraphvizNotFoundError, match="apt-get install graphviz"):
        g.render(tmp_path / "g.png")
    with pytest.raises(viz.GraphvizNotFoundError, match="needs the Graphviz `dot` program"):
        g.render(tmp_path / "g.svg", engine="dot")
    with pytest.raises(ValueError, match="writes SVG only"):
        g.render(tmp_path / "g.png", engine="python")
    with pytest.raises(ValueError, match=r"\.svg"):
        g.render(tmp_path / "g.jpeg")
    assert os.listdir(tmp_path) == []


def test_dot_file_is_written_as_text(tmp_path):
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params)
    assert (g.render(tmp_path / "g.dot")).read_text() == g.to_dot()


def test_graphviz_renders_valid_svg_and_png(tmp_path):
    have_dot()
    params, x, y, loss, ops, _ = two_layer()
    g = viz.graph(loss, params, gradients=True)
    texts = svg_texts(g.render(tmp_path / "g.svg", engine="dot"))
    for name in [*ops, *g.parameters]:
        assert name in texts
    png = g.render(tmp_path / "g.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image = pytest.importorskip("PIL.Image")
    with Image.open(png) as im:
        im.verify()
        assert im.size[0] > 100 and im.size[1] > 100
    assert sorted(os.listdir(tmp_path)) == ["g.png", "g.svg"]
