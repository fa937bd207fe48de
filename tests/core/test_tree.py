"""One tree policy (chainrule/core/tree.py) seen through every walk that uses it.

Each container kind (list, tuple, namedtuple, dict, dict subclass / Module), ``None`` leaves and
nesting go through ``tree_map``, ``mx.grad``, ``mx.compile`` and ``optimizer.update``.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten, tree_map

T = sys.modules["chainrule.core.tree"]
C = sys.modules["chainrule.core.compile"]

Pair = namedtuple("Pair", "a b")


class Box(dict):
    """A dict subclass that is not a module."""


def _arr(*values):
    return mx.array(np.array(values, dtype=np.float32))


def _np(x):
    return np.array(x)


def _stats_delta(before: dict) -> dict:
    return {k: C.STATS[k] - before[k] for k in C.STATS}


# -- the policy itself -------------------------------------------------------------------------


def test_kinds_of_every_container_and_leaf():
    m = nn.Linear(2, 2)
    assert T.kind([1]) == T.LIST
    assert T.kind((1,)) == T.TUPLE
    assert T.kind(Pair(1, 2)) == T.NAMEDTUPLE
    assert T.kind({}) == T.DICT
    assert T.kind(Box()) == T.DICT
    assert T.kind(OrderedDict()) == T.DICT
    assert T.kind(m) == T.DICT
    assert T.kind(m.parameters()) == T.DICT  # ParameterTree
    for leaf in (None, 1, 2.5, "s", mx.zeros(2), np.zeros(2), {1, 2}):
        assert T.kind(leaf) == T.LEAF


def test_flatten_unflatten_round_trip_keeps_types_and_none_leaves():
    tree = {
        "l": [_arr(1), None],
        "t": (_arr(2),),
        "p": Pair(_arr(3), [None]),
        "e": [],
        "box": Box(x=4),
    }
    leaves, spec = T.flatten(tree)
    assert [type(x).__name__ for x in leaves] == [
        "array",
        "NoneType",
        "array",
        "array",
        "NoneType",
        "int",
    ]
    back = T.unflatten(spec, leaves)
    assert type(back["p"]) is Pair and type(back["t"]) is tuple and back["e"] == []
    assert type(back["box"]) is dict and back["box"] == {"x": 4}  # dict nodes come back plain
    assert back["l"][1] is None and back["p"].b == [None]
    # the spec is hashable and tells structures apart (list vs tuple, keys, namedtuple type)
    assert hash(spec) == hash(T.flatten(tree)[1])
    assert T.flatten([1, 2])[1] != T.flatten((1, 2))[1]
    assert T.flatten({"a": 1})[1] != T.flatten({"b": 1})[1]
    assert T.flatten(Pair(1, 2))[1] != T.flatten((1, 2))[1]


def test_leaves_in_order_through_modules():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    got = T.leaves(model.parameters())
    want = [v for _, v in tree_flatten(model.parameters())]
    assert len(got) == 4 and all(a is b for a, b in zip(got, want))
    assert [id(p) for p in model.parameters()] == [id(p) for p in got]


# -- tree_map ----------------------------------------------------------------------------------


def test_tree_map_over_each_container_kind():
    def inc(x):
        return None if x is None else x + 1

    assert tree_map(inc, [1, 2]) == [2, 3]
    assert tree_map(inc, (1, 2)) == (2, 3)
    out = tree_map(inc, Pair(1, (2, None)))
    assert type(out) is Pair and out == Pair(2, (3, None))
    assert tree_map(inc, {"a": 1}) == {"a": 2}
    out = tree_map(inc, Box(a=1, sub=Box(b=[2])))
    assert type(out) is dict and type(out["sub"]) is dict and out == {"a": 2, "sub": {"b": [3]}}


def test_tree_map_hands_none_to_fn_as_mlx_does():
    seen = []
    tree_map(lambda x: seen.append(x), {"a": None, "b": [None, 1]})
    assert seen == [None, None, 1]
    assert tree_flatten({"a": None, "b": [None]}) == [("a", None), ("b.0", None)]


def test_tree_map_over_a_module_gives_plain_dicts():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    out = tree_map(lambda p: p * 0, model.parameters())
    assert type(out) is dict and type(out["layers"]) is list and type(out["layers"][0]) is dict
    np.testing.assert_array_equal(_np(out["layers"][1]["weight"]), np.zeros((1, 2)))
    out = tree_map(lambda x: x, model)  # the module itself, also a dict
    assert type(out) is dict and set(out) == {"layers"}


# -- mx.grad -----------------------------------------------------------------------------------


def _loss(tree):
    return sum(mx.sum(x * x) for x in T.leaves(tree) if x is not None)


@pytest.mark.parametrize(
    "tree",
    [
        [_arr(1, 2), _arr(3)],
        (_arr(1, 2), _arr(3)),
        Pair(_arr(1, 2), _arr(3)),
        {"a": _arr(1, 2), "b": _arr(3)},
        {"a": [_arr(1, 2), (_arr(3), {"c": _arr(4)})], "n": Pair(_arr(5), [_arr(6)])},
    ],
    ids=["list", "tuple", "namedtuple", "dict", "nested"],
)
def test_grad_of_each_container_kind_has_its_structure(tree):
    g = mx.grad(_loss)(tree)
    leaves, spec = T.flatten(tree)
    g_leaves, g_spec = T.flatten(g)
    assert g_spec == spec  # same containers, namedtuples included
    for x, gx in zip(leaves, g_leaves):
        np.testing.assert_allclose(_np(gx), 2 * _np(x))


def test_grad_of_dict_subclass_is_a_plain_dict():
    box = Box(a=_arr(1, 2), sub=Box(b=_arr(3)))
    g = mx.grad(_loss)(box)
    assert type(g) is dict and type(g["sub"]) is dict
    np.testing.assert_allclose(_np(g["sub"]["b"]), [6.0])


def test_grad_with_respect_to_module_parameters_tree():
    model = nn.Linear(2, 1)
    x = _arr(1, 2)

    def loss(params):
        return mx.sum(x @ params["weight"].T + params["bias"])

    g = mx.grad(loss)(model.parameters())  # a ParameterTree, a dict subclass
    assert type(g) is dict and set(g) == {"weight", "bias"}
    np.testing.assert_allclose(_np(g["weight"]), [[1.0, 2.0]])
    np.testing.assert_allclose(_np(g["bias"]), [1.0])


def test_grad_gives_none_for_none_leaves():
    tree = {"w": _arr(2), "nothing": None, "l": [None, _arr(3)]}
    g = mx.grad(_loss)(tree)
    assert g["nothing"] is None and g["l"][0] is None
    np.testing.assert_allclose(_np(g["w"]), [4.0])
    np.testing.assert_allclose(_np(g["l"][1]), [6.0])


def test_value_and_grad_over_module_with_nested_containers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = [nn.Linear(2, 2), {"head": nn.Linear(2, 1)}]

        def __call__(self, x):
            return self.blocks[1]["head"](self.blocks[0](x))

    model = Net()
    x = _arr(1, -1)[None]
    loss, g = nn.value_and_grad(model, lambda x: mx.sum(model(x)))(x)
    assert type(g["blocks"]) is list and set(g["blocks"][1]["head"]) == {"weight", "bias"}
    np.testing.assert_allclose(_np(g["blocks"][1]["head"]["bias"]), [1.0])


# -- mx.compile --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda v: [v, v * 2],
        lambda v: (v, v * 2),
        lambda v: Pair(v, v * 2),
        lambda v: {"a": v, "b": v * 2},
        lambda v: Box(a=v, b=v * 2),
        lambda v: {"a": [v, (None, {"b": v * 2})], "n": Pair(None, v)},
    ],
    ids=["list", "tuple", "namedtuple", "dict", "dict-subclass", "nested-with-none"],
)
@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_compile_replays_each_container_kind(make):
    def f(tree):
        total = sum(mx.sum(mx.tanh(x)) for x in T.leaves(tree) if x is not None)
        # the result tree is rebuilt from the program at each replay (dict nodes as dicts)
        return {"total": total, "echo": T.map(lambda x: x if x is None else x * 3.0, tree)}

    cf = mx.compile(f)
    before = dict(C.STATS)
    for step in range(4):
        tree = make(_arr(0.5, -1.0) + step)
        got, want = cf(tree), f(tree)
        np.testing.assert_allclose(_np(got["total"]), _np(want["total"]), rtol=1e-6)
        g_leaves, g_spec = T.flatten(got["echo"])
        w_leaves, w_spec = T.flatten(want["echo"])
        assert g_spec == w_spec
        for a, b in zip(g_leaves, w_leaves):
            if b is None:
                assert a is None
            else:
                np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6)
    d = _stats_delta(before)
    assert d["traces"] == 1 and d["verified"] == 1 and d["replays"] == 2, (d, cf.last_reason)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_compile_keys_none_leaves_as_constants():
    cf = mx.compile(lambda x, extra: x * 2 if extra is None else x * extra)
    before = dict(C.STATS)
    for _ in range(3):
        np.testing.assert_allclose(_np(cf(_arr(1), None)), [2.0])
        np.testing.assert_allclose(_np(cf(_arr(1), _arr(5))), [5.0])
    assert _stats_delta(before)["traces"] == 2  # one signature each


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_compile_takes_a_frozen_module_as_an_argument():
    model = nn.Linear(3, 2)
    model.freeze()
    x = _arr(1, 2, 3)[None]
    cf = mx.compile(lambda m, x: m(x))
    before = dict(C.STATS)
    for _ in range(4):
        np.testing.assert_allclose(_np(cf(model, x)), _np(model(x)), rtol=1e-6)
        model.weight = model.weight + 1.0  # a new value each call: read, not frozen in
    d = _stats_delta(before)
    assert d["traces"] == 1 and d["replays"] == 2, (d, cf.last_reason)
    # a function returning the module it was given returns the caller's module
    same = mx.compile(lambda m: m)
    assert same(model) is model and same(model) is model


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # host tracing / CPU-only comparison: on the CPU under make gpu-check
def test_compile_updates_module_and_optimizer_state_trees():
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = optim.Adam(learning_rate=0.05)
    eager_model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    eager_model.update(tree_map(lambda p: p, model.parameters()))
    eager_opt = optim.Adam(learning_rate=0.05)
    x = mx.array(np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32))
    y = mx.sum(x, axis=1, keepdims=True)

    def make_step(m, o):
        lg = nn.value_and_grad(m, lambda x, y: mx.mean((m(x) - y) ** 2))

        def step(x, y):
            loss, grads = lg(x, y)
            o.update(m, grads)
            return loss

        return step

    opt.init(model.trainable_parameters())  # the state tree is complete before tracing
    state = [model.state, opt.state]
    cstep = mx.compile(make_step(model, opt), inputs=state, outputs=state)
    estep = make_step(eager_model, eager_opt)
    before = dict(C.STATS)
    for _ in range(5):
        np.testing.assert_allclose(_np(cstep(x, y)), _np(estep(x, y)), rtol=1e-5)
    for (k, a), (_, b) in zip(
        tree_flatten(model.parameters()), tree_flatten(eager_model.parameters())
    ):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-5, atol=1e-6, err_msg=k)
    d = _stats_delta(before)
    assert d["traces"] == 1 and d["replays"] == 3, (d, cstep.last_reason)


# -- optimizer.update --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda v: [v, v * 2],
        lambda v: (v, v * 2),
        lambda v: Pair(v, v * 2),
        lambda v: {"a": v, "b": v * 2},
        lambda v: Box(a=v, b=[v * 2, {"c": v}]),
    ],
    ids=["list", "tuple", "namedtuple", "dict", "dict-subclass-nested"],
)
def test_apply_gradients_over_each_container_kind(make):
    opt = optim.SGD(learning_rate=0.5)
    params = {"p": make(_arr(1, 2))}  # an optimizer's state is a dict: so is the root
    grads = tree_map(lambda p: mx.ones_like(p), params)
    new = opt.apply_gradients(grads, params)
    p_leaves, p_spec = T.flatten(params)
    n_leaves, n_spec = T.flatten(new)
    assert n_spec == T.flatten(grads)[1]  # shaped like the gradients (namedtuples kept)
    for p, n in zip(p_leaves, n_leaves):
        np.testing.assert_allclose(_np(n), _np(p) - 0.5)


def test_update_module_with_none_gradient_leaves_keeps_those_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    before = [np.array(p) for _, p in tree_flatten(model.parameters())]
    grads = tree_map(lambda p: mx.ones_like(p), model.parameters())
    grads["layers"][0] = {"weight": None, "bias": None}
    grads["layers"][1]["bias"] = None
    opt = optim.SGD(learning_rate=0.1)
    opt.update(model, grads)
    after = [np.array(p) for _, p in tree_flatten(model.parameters())]
    np.testing.assert_array_equal(after[0], before[0])  # layers.0.weight: None gradient
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[2], before[2] - 0.1)  # layers.1.weight
    np.testing.assert_array_equal(after[3], before[3])


def test_update_module_then_state_mirrors_the_tree():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    opt = optim.Adam(learning_rate=0.01)
    x = _arr(1, 2)[None]
    for _ in range(2):
        _, grads = nn.value_and_grad(model, lambda x: mx.sum(model(x)))(x)
        opt.update(model, grads)
    state = opt.state
    assert type(state["layers"]) is list and len(state["layers"]) == 3
    assert state["layers"][1] == {}  # the parameterless ReLU
    assert set(state["layers"][2]["weight"]) == {"m", "v"}
    assert state["step"].item() == 2


def test_pytorch_style_update_walks_the_same_trees():
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.5)
    w0 = np.array(model.weight)
    grads = {"weight": mx.ones((1, 2)), "bias": None}
    opt.update(model, grads)
    np.testing.assert_allclose(np.array(model.weight), w0 - 0.5)
