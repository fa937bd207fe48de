import json
import sys
from collections import namedtuple

import numpy as np
import pytest

from chainrule.utils import (
    tree_fill,
    tree_flatten,
    tree_map,
    tree_map_with_path,
    tree_merge,
    tree_reduce,
    tree_structure,
    tree_unflatten,
)


class DictNode(dict):
    """Stands in for chainrule.nn.Module, which is a dict subclass."""


def nested():
    return {"a": [1, (2, 3)], "b": {"c": 4, "d": [5]}}


# tree_map


def test_tree_map_nested_keeps_container_types():
    out = tree_map(lambda x: x * 10, nested())
    assert out == {"a": [10, (20, 30)], "b": {"c": 40, "d": [50]}}
    assert type(out["a"]) is list
    assert type(out["a"][1]) is tuple


def test_tree_map_leaf_root_and_empty_containers():
    assert tree_map(lambda x: x + 1, 1) == 2
    assert tree_map(lambda x: x + 1, {"e": {}, "l": [], "t": ()}) == {"e": {}, "l": [], "t": ()}


def test_tree_map_multiple_trees():
    a = {"w": 1, "b": [2, 3]}
    b = {"w": 10, "b": [20, 30]}
    c = {"w": 100, "b": [200, 300], "extra": "ignored"}
    out = tree_map(lambda x, y, z: x + y + z, a, b, c)
    assert out == {"w": 111, "b": [222, 333]}


def test_tree_map_rest_must_cover_tree():
    with pytest.raises(KeyError):
        tree_map(lambda x, y: x + y, {"w": 1}, {"v": 2})


def test_tree_map_is_leaf():
    tree = {"pair": (1, 2), "list": [3, 4]}
    out = tree_map(
        lambda x: x if isinstance(x, int) else len(x), tree, is_leaf=lambda x: isinstance(x, tuple)
    )
    assert out == {"pair": 2, "list": [3, 4]}
    out = tree_map(lambda x: sum(x), tree, is_leaf=lambda x: isinstance(x, (tuple, list)))
    assert out == {"pair": 3, "list": 7}


def test_tree_map_is_leaf_stops_descent():
    seen = []
    tree_map(
        seen.append, {"a": {"x": 1}, "b": 2}, is_leaf=lambda x: isinstance(x, dict) and "x" in x
    )
    assert seen == [{"x": 1}, 2]


def test_tree_map_dict_subclass_becomes_plain_dict():
    module = DictNode(w=1, sub=DictNode(b=2))
    out = tree_map(lambda x: x, module)
    assert type(out) is dict
    assert type(out["sub"]) is dict
    assert out == {"w": 1, "sub": {"b": 2}}


def test_tree_map_numpy_leaves():
    tree = {"w": np.ones((2, 2)), "b": [np.zeros(3)]}
    out = tree_map(lambda x: x + 1, tree)
    np.testing.assert_array_equal(out["w"], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(out["b"][0], np.ones(3))


def test_tree_map_namedtuple():
    Point = namedtuple("Point", "x y")
    out = tree_map(lambda v: v * 2, {"p": Point(1, 2)})
    assert out["p"] == Point(2, 4)
    assert type(out["p"]) is Point


def test_tree_map_wide_tree_does_not_recurse_per_leaf():
    wide = list(range(sys.getrecursionlimit() * 3))
    assert tree_map(lambda x: x + 1, wide)[-1] == len(wide)


# tree_map_with_path


def test_tree_map_with_path_dotted_paths():
    tree = {"model": [{"w": 0, "b": 1}, {"w": 2, "b": 3}]}
    seen = []
    out = tree_map_with_path(lambda p, x: seen.append(p) or x, tree)
    assert seen == ["model.0.w", "model.0.b", "model.1.w", "model.1.b"]
    assert out == tree


def test_tree_map_with_path_prefix_rest_and_root_leaf():
    out = tree_map_with_path(lambda p, x, y: (p, x + y), {"a": (1,)}, {"a": (2,)}, path="root")
    assert out == {"a": (("root.a.0", 3),)}
    assert type(out["a"]) is tuple
    assert tree_map_with_path(lambda p, x: p, 5) is None
    assert tree_map_with_path(lambda p, x: p, 5, path="x") == "x"


def test_tree_map_with_path_is_leaf_and_subclass():
    tree = DictNode(layer=DictNode(w=[1, 2]))
    out = tree_map_with_path(lambda p, x: p, tree, is_leaf=lambda x: isinstance(x, list))
    assert out == {"layer": {"w": "layer.w"}}
    assert type(out) is dict and type(out["layer"]) is dict


# tree_flatten / tree_unflatten


def test_tree_flatten_dotted_paths_in_order():
    assert tree_flatten(nested()) == [
        ("a.0", 1),
        ("a.1.0", 2),
        ("a.1.1", 3),
        ("b.c", 4),
        ("b.d.0", 5),
    ]


def test_tree_flatten_prefix_drops_first_character():
    assert tree_flatten([[[0]]]) == [("0.0.0", 0)]
    assert tree_flatten([[[0]]], ".hello") == [("hello.0.0.0", 0)]
    assert tree_flatten([[[0]]], prefix="xhello") == [("hello.0.0.0", 0)]
    assert tree_flatten(7) == [("", 7)]


def test_tree_flatten_destination():
    assert tree_flatten({"a": {"b": 1}}, destination={}) == {"a.b": 1}
    existing = [("z", 0)]
    result = tree_flatten({"a": [1]}, destination=existing)
    assert result is existing
    assert existing == [("z", 0), ("a.0", 1)]
    existing_dict = {"z": 0}
    assert tree_flatten([1], prefix=".p", destination=existing_dict) is existing_dict
    assert existing_dict == {"z": 0, "p.0": 1}
    with pytest.raises(ValueError):
        tree_flatten({"a": 1}, destination=set())


def test_tree_flatten_is_leaf_and_empties():
    tree = {"a": (1, 2), "b": {}, "c": [], "d": [3]}
    assert tree_flatten(tree) == [("a.0", 1), ("a.1", 2), ("d.0", 3)]
    flat = tree_flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert flat == [("a", (1, 2)), ("d.0", 3)]


def test_tree_flatten_dict_subclass_and_numpy():
    w = np.arange(4.0)
    flat = tree_flatten(DictNode(layers=[DictNode(w=w)]))
    assert len(flat) == 1
    assert flat[0][0] == "layers.0.w"
    assert flat[0][1] is w


def test_tree_flatten_deep_and_wide():
    depth = 200
    deep = 1
    for _ in range(depth):
        deep = [deep]
    assert tree_flatten(deep) == [(".".join(["0"] * depth), 1)]
    wide = {f"k{i}": i for i in range(sys.getrecursionlimit() * 3)}
    assert len(tree_flatten(wide)) == len(wide)


def test_tree_unflatten_roundtrip():
    tree = [{"a": 1, "b": 2}, "c"]
    flat = tree_flatten(tree)
    assert [v for _, v in flat] == [1, 2, "c"]
    assert tree_unflatten(flat) == tree
    assert tree_unflatten(tree_flatten(nested())) == {"a": [1, [2, 3]], "b": {"c": 4, "d": [5]}}


def test_tree_unflatten_from_list_or_dict():
    assert tree_unflatten([("hello.world", 42)]) == {"hello": {"world": 42}}
    assert tree_unflatten({"hello.world": 42}) == {"hello": {"world": 42}}
    assert tree_unflatten([("", 3)]) == 3
    assert tree_unflatten({"": 3}) == 3
    assert tree_unflatten([]) == {}


def test_tree_unflatten_numeric_keys_make_lists():
    out = tree_unflatten([("layers.1.w", 1), ("layers.0.w", 0), ("layers.10.w", 10)])
    assert type(out["layers"]) is list
    assert out["layers"][0] == {"w": 0}
    assert out["layers"][1] == {"w": 1}
    assert out["layers"][10] == {"w": 10}
    # Missing indices become empty dicts, as in MLX.
    assert out["layers"][2:10] == [{}] * 8
    assert tree_unflatten([("0", "a"), ("1", "b")]) == ["a", "b"]
    # A mix of numeric and named keys is a dict.
    assert tree_unflatten([("0", "a"), ("x", "b")]) == {"0": "a", "x": "b"}


def test_tree_unflatten_keeps_first_seen_order_and_dict_leaves():
    out = tree_unflatten([("b", 1), ("a.x", 2), ("a.y", 3)])
    assert list(out) == ["b", "a"]
    assert list(out["a"]) == ["x", "y"]
    # A leaf that happens to be a dict with numeric keys is left alone.
    assert tree_unflatten([("a", {"0": 1})]) == {"a": {"0": 1}}


def test_tree_unflatten_duplicates_and_conflicts():
    assert tree_unflatten([("a", 1), ("a", 2)]) == {"a": 2}
    with pytest.raises(ValueError):
        tree_unflatten([("a", 1), ("a.b", 2)])
    with pytest.raises(ValueError):
        tree_unflatten([("a.b", 2), ("a", 1)])


def test_tree_unflatten_numpy_leaves():
    w = np.eye(2)
    out = tree_unflatten(tree_flatten({"layers": [{"w": w}]}))
    assert out["layers"][0]["w"] is w


def test_tree_unflatten_wide():
    n = sys.getrecursionlimit() * 3
    out = tree_unflatten([(f"items.{i}", i) for i in range(n)])
    assert out == {"items": list(range(n))}


# tree_reduce


def test_tree_reduce_with_initializer():
    tree = {"a": [1, 2, 3], "b": [4, 5]}
    assert tree_reduce(lambda acc, x: acc + x, tree, 0) == 15
    assert tree_reduce(lambda acc, x: acc + [x], tree, []) == [1, 2, 3, 4, 5]
    assert tree_reduce(lambda acc, x: acc + x, {}, 7) == 7


def test_tree_reduce_without_initializer():
    calls = []

    def add(acc, x):
        calls.append((acc, x))
        return acc + x

    assert tree_reduce(add, {"a": [1, 2, 3], "b": (4, 5)}) == 15
    assert calls[0] == (1, 2)
    assert tree_reduce(add, 9) == 9
    assert tree_reduce(add, {}) is None


def test_tree_reduce_is_leaf():
    tree = {"a": [1, 2], "b": [3]}
    out = tree_reduce(
        lambda acc, x: acc + [len(x)], tree, [], is_leaf=lambda x: isinstance(x, list)
    )
    assert out == [2, 1]
    assert tree_reduce(lambda acc, x: acc + sum(x), [1, 2], 10, is_leaf=lambda x: True) == 13


def test_tree_reduce_numpy_leaves():
    tree = {"w": np.ones((2, 3)), "b": [np.ones(4)]}
    assert tree_reduce(lambda acc, x: acc + x.size, tree, 0) == 10


# tree_merge


def test_tree_merge_disjoint_dicts():
    assert tree_merge({"a": 0}, {"b": 1}) == {"a": 0, "b": 1}
    assert tree_merge({"a": {"x": 1}}, {"a": {"y": 2}}) == {"a": {"x": 1, "y": 2}}


def test_tree_merge_conflicts_raise():
    with pytest.raises(ValueError):
        tree_merge({"a": 0}, {"a": 0})
    with pytest.raises(ValueError):
        tree_merge({"a": 0, "b": 1}, {"a": 0})
    with pytest.raises(ValueError):
        tree_merge({"a": [1]}, {"a": {"x": 1}})


def test_tree_merge_with_merge_fn():
    out = tree_merge({"a": 1, "b": [2]}, {"a": 10, "b": [20, 30]}, merge_fn=lambda x, y: x + y)
    assert out == {"a": 11, "b": [22, 30]}


def test_tree_merge_lists_with_none_holes():
    params1 = {"layers": [{"w": 1}]}
    params2 = {"layers": [None, {"w": 2}]}
    assert tree_merge(params1, params2) == {"layers": [{"w": 1}, {"w": 2}]}
    out = tree_merge((1, None), (None, 2))
    assert out == (1, 2)
    assert type(out) is tuple


def test_tree_merge_absent_sides():
    assert tree_merge({}, {"a": 1}) == {"a": 1}
    assert tree_merge({"a": 1}, []) == {"a": 1}
    assert tree_merge(None, 3) == 3
    assert tree_merge({"a": {}}, {"b": 1}) == {"a": {}, "b": 1}
    assert tree_merge(None, None) is None


def test_tree_merge_dict_subclass_gives_plain_dict():
    out = tree_merge(DictNode(a=DictNode(x=1)), DictNode(a=DictNode(y=2)))
    assert type(out) is dict and type(out["a"]) is dict
    assert out == {"a": {"x": 1, "y": 2}}


# tree_structure / tree_fill: empty sub-trees survive


@pytest.mark.parametrize(
    "tree",
    [
        {"a": {"w": 1}, "drop": {}},
        {"layers": [{}, {"w": 1}]},
        {"layers": [{"w": 1}, {}]},
        {"layers": [], "norm": {"scale": 2.0}},
        {"pair": (1, ()), "deep": {"x": {"y": {}}}},
        [],
        {},
        5,
    ],
)
def test_empty_subtrees_round_trip(tree):
    pairs = tree_flatten(tree)
    assert tree_fill(tree_structure(tree), pairs) == tree
    assert tree_fill(tree_structure(tree), dict(pairs)) == tree


def test_plain_unflatten_loses_empty_subtrees_like_mlx():
    assert tree_unflatten(tree_flatten({"a": {"w": 1}, "drop": {}})) == {"a": {"w": 1}}
    # Leading empty modules in a list do come back, as gap fillers.
    assert tree_unflatten(tree_flatten({"layers": [{}, {"w": 1}]})) == {"layers": [{}, {"w": 1}]}


def test_tree_structure_is_json_serialisable():
    tree = DictNode(a=np.ones(3), b=[DictNode(), (np.zeros(1), 2)], c=[])
    structure = tree_structure(tree)
    assert structure == {"a": None, "b": [{}, (None, None)], "c": []}
    assert type(structure) is dict and type(structure["b"][0]) is dict
    restored = json.loads(json.dumps(structure))
    out = tree_fill(restored, tree_flatten(tree))
    assert out["b"][0] == {} and out["c"] == []
    # JSON has no tuples, so a former tuple comes back as a list.
    assert type(out["b"][1]) is list
    np.testing.assert_array_equal(out["a"], np.ones(3))


def test_tree_structure_is_leaf():
    tree = {"pair": (1, 2), "empty": {}}

    def is_tuple(x):
        return isinstance(x, tuple)

    structure = tree_structure(tree, is_leaf=is_tuple)
    assert structure == {"pair": None, "empty": {}}
    assert tree_fill(structure, tree_flatten(tree, is_leaf=is_tuple)) == tree


def test_tree_fill_keeps_numeric_dict_keys_as_dicts():
    tree = {"by_id": {"0": 1, "1": 2}}
    assert tree_unflatten(tree_flatten(tree)) == {"by_id": [1, 2]}
    assert tree_fill(tree_structure(tree), tree_flatten(tree)) == tree


def test_tree_fill_mismatch_errors():
    structure = {"a": None, "b": {}}
    with pytest.raises(KeyError):
        tree_fill(structure, [])
    with pytest.raises(ValueError):
        tree_fill(structure, [("a", 1), ("c", 2)])


# the public face of chainrule.core.tree


def test_utils_follow_the_core_tree_policy():
    import chainrule.nn as nn

    tree = sys.modules["chainrule.core.tree"]
    Point = namedtuple("Point", "x y")
    data = {"p": Point(1, [2, None]), "d": DictNode(a=(3,)), "n": None}
    assert tree_flatten(data) == [
        ("p.0", 1),
        ("p.1.0", 2),
        ("p.1.1", None),
        ("d.a.0", 3),
        ("n", None),
    ]
    assert [leaf for _, leaf in tree_flatten(data)] == tree.leaves(data)
    assert tree_map(lambda x: x, data) == tree.map(lambda x: x, data)
    assert type(tree_map(lambda x: x, data)["p"]) is Point
    assert (
        tree_structure(data)
        == tree.structure(data)
        == {
            "p": (None, [None, None]),
            "d": {"a": (None,)},
            "n": None,
        }
    )
    merged = tree_merge(Point(1, None), Point(None, 2))
    assert type(merged) is Point and merged == Point(1, 2)
    model = nn.Linear(2, 3)
    assert [k for k, _ in tree_flatten(model)] == ["weight", "bias"]
    assert tree_reduce(lambda a, p: a + p.size, model.parameters(), 0) == 9


def test_tree_merge_of_empty_containers():
    # an empty sub-tree survives and merge_fn is not called on it; {} and [] do not merge
    def never(a, b):
        raise AssertionError("merge_fn called on empty sub-trees")

    assert tree_merge({}, {}) == {}
    assert tree_merge({"a": {}}, {"a": {}}, never) == {"a": {}}
    assert tree_merge({"a": []}, {"a": []}) == {"a": []}
    assert tree_merge({"a": ()}, {"a": ()}) == {"a": ()}
    assert tree_merge([{"a": 1}, {}], [{"b": 2}, {}]) == [{"a": 1, "b": 2}, {}]
    assert tree_merge({"a": 1, "b": {}, "c": {}}, {"a": {}, "b": {}, "c": 2}) == {
        "a": 1,
        "b": {},
        "c": 2,
    }
    with pytest.raises(ValueError, match="Cannot merge dict with list"):
        tree_merge({}, [])


def test_tree_unflatten_keeps_non_canonical_integer_keys_apart():
    tree = tree_unflatten([("01", "a"), ("1", "b"), ("2", "c")])
    assert tree == {"01": "a", "1": "b", "2": "c"}
    assert tree_unflatten([("0", "a"), ("1", "b"), ("2", "c")]) == ["a", "b", "c"]
