"""``nn.Module``'s tree API and ``chainrule.utils``' tree functions against real MLX, and
weight files written by one read by the other."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")
mlx_utils = pytest.importorskip("mlx.utils")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402
import chainrule.utils as cutils  # noqa: E402

from .bridge import copy_params, flat  # noqa: E402


def _model(nn: Any) -> Any:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.heads = [nn.Linear(4, 2), nn.Linear(4, 2, bias=False)]
            self.named = {"a": nn.BatchNorm(4), "b": nn.RMSNorm(4)}

        def __call__(self, x: Any) -> Any:
            x = self.named["a"](self.norm(self.proj(x)))
            return self.heads[0](x) + self.heads[1](self.named["b"](x))

    return nn.Sequential(Block(), nn.ReLU(), nn.Linear(2, 3))


def _pair() -> tuple:
    m, c = _model(mlx_nn), _model(cnn)
    copy_params(m, c)
    return m, c


def _keys(tree: Any, utils: Any) -> list:
    return [k for k, _ in utils.tree_flatten(tree)]


def test_parameter_and_trainable_keys_match_mlx() -> None:
    """The same flattened keys, in the same order, for parameters, trainable parameters and
    after freezing and unfreezing parts."""
    m, c = _pair()
    assert _keys(c.parameters(), cutils) == _keys(m.parameters(), mlx_utils)
    assert _keys(c.trainable_parameters(), cutils) == _keys(m.trainable_parameters(), mlx_utils)

    def trainable(mod: Any, utils: Any) -> list:
        # BatchNorm's running statistics: see test_unfreeze_makes_running_stats_trainable
        return [k for k in _keys(mod.trainable_parameters(), utils) if ".running_" not in k]

    for step in (
        lambda mod: mod.freeze(keys="bias"),
        lambda mod: mod.layers[0].unfreeze(keys=["bias"], recurse=False),
        lambda mod: mod.freeze(),
        lambda mod: mod.layers[0].heads[1].unfreeze(),
        lambda mod: mod.unfreeze(),
        lambda mod: mod.layers[0].freeze(recurse=False),
    ):
        step(m)
        step(c)
        assert trainable(c, cutils) == trainable(m, mlx_utils)


@pytest.mark.xfail(
    strict=True,
    reason="chainrule keeps BatchNorm's running statistics frozen through unfreeze() (they are "
    "PyTorch buffers too); MLX's unfreeze() makes them trainable",
)
def test_unfreeze_makes_running_stats_trainable_as_mlx() -> None:
    """MLX: ``model.unfreeze()`` unfreezes every parameter, BatchNorm's statistics included."""
    m, c = _pair()
    m.unfreeze()
    c.unfreeze()
    assert _keys(c.trainable_parameters(), cutils) == _keys(m.trainable_parameters(), mlx_utils)


def test_module_walks_match_mlx() -> None:
    """named_modules, leaf_modules, children and apply_to_modules visit the same names."""
    m, c = _pair()
    # the same modules (MLX lists them from the last child back; chainrule, PyTorch's
    # pre-order: the order is not part of MLX's documented behaviour)
    assert sorted(k for k, _ in c.named_modules()) == sorted(k for k, _ in m.named_modules())
    assert _keys(c.leaf_modules(), cutils) == _keys(m.leaf_modules(), mlx_utils)
    assert sorted(c.children()) == sorted(m.children())
    seen_m, seen_c = [], []
    m.apply_to_modules(lambda k, mod: seen_m.append((k, type(mod).__name__)))
    c.apply_to_modules(lambda k, mod: seen_c.append((k, type(mod).__name__)))
    assert sorted(seen_c) == sorted(seen_m)


def test_train_eval_and_set_dtype_match_mlx() -> None:
    """``eval()``/``train()`` reach every module; ``set_dtype`` with MLX's default predicate
    changes floating parameters only; the forward pass agrees afterwards."""
    m, c = _pair()
    m.eval()
    c.eval()
    assert sorted((k, mod.training) for k, mod in c.named_modules()) == sorted(
        (k, mod.training) for k, mod in m.named_modules()
    )
    m.set_dtype(mlx_core.float16)
    c.set_dtype(cx.float16)
    for k, v in flat(m.parameters(), mlx_utils).items():
        assert str(flat(c.parameters())[k].dtype) == str(v.dtype), k
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float16)
    np.testing.assert_allclose(
        np.array(c(cx.array(x))).astype(np.float32),
        np.array(m(mlx_core.array(x))).astype(np.float32),
        rtol=2e-2,
        atol=2e-2,
    )


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_weight_files_cross_between_mlx_and_chainrule(tmp_path: Any, suffix: str) -> None:
    """Weights saved by MLX load into chainrule and the other way round, strict, exactly."""
    m, c = _model(mlx_nn), _model(cnn)
    path = str(tmp_path / f"mlx{suffix}")
    m.save_weights(path)
    c.load_weights(path)
    for k, v in flat(m.parameters(), mlx_utils).items():
        np.testing.assert_array_equal(flat(c.parameters())[k], v, err_msg=k)
    c2, m2 = _model(cnn), _model(mlx_nn)
    path = str(tmp_path / f"cx{suffix}")
    c2.save_weights(path)
    m2.load_weights(path)
    for k, v in flat(c2.parameters()).items():
        np.testing.assert_array_equal(np.array(flat(m2.parameters(), mlx_utils)[k]), v, err_msg=k)


def test_array_files_cross_between_mlx_and_chainrule(tmp_path: Any) -> None:
    """``mx.save_safetensors``/``mx.savez`` files read by the other side, dtypes kept."""
    arrays = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f16": np.linspace(-1, 1, 5).astype(np.float16),
        "i32": np.array([1, -2, 3], np.int32),
        "u8": np.array([0, 255], np.uint8),
        "b": np.array([True, False]),
    }
    mlx_core.save_safetensors(
        str(tmp_path / "m.safetensors"), {k: mlx_core.array(v) for k, v in arrays.items()}
    )
    cx.save_safetensors(
        str(tmp_path / "c.safetensors"), {k: cx.array(v) for k, v in arrays.items()}
    )
    from_m = cx.load(str(tmp_path / "m.safetensors"))
    from_c = mlx_core.load(str(tmp_path / "c.safetensors"))
    for k, v in arrays.items():
        for got in (np.array(from_m[k]), np.array(from_c[k])):
            assert got.dtype == v.dtype, (k, got.dtype)
            np.testing.assert_array_equal(got, v)


TREES = [
    {"a": [1, 2, {"b": 3}], "c": (4, [5, 6])},
    [[1, [2, 3]], {"x": 4, "y": {"z": 5}}],
    {"w": {"0": 1, "1": 2}, "lst": [{"q": 3}, 4]},
]


@pytest.mark.parametrize("tree", TREES)
def test_tree_functions_match_mlx(tree: Any) -> None:
    """tree_flatten (with prefixes), tree_unflatten, tree_map, tree_map_with_path,
    tree_reduce and tree_merge give MLX's results on nested lists, tuples and dicts."""
    assert cutils.tree_flatten(tree) == mlx_utils.tree_flatten(tree)
    assert cutils.tree_flatten(tree, prefix=".p") == mlx_utils.tree_flatten(tree, prefix=".p")
    flat_ = mlx_utils.tree_flatten(tree)
    assert cutils.tree_unflatten(flat_) == mlx_utils.tree_unflatten(flat_)
    assert cutils.tree_map(lambda v: v * 10, tree) == mlx_utils.tree_map(lambda v: v * 10, tree)
    assert cutils.tree_map_with_path(lambda p, v: (p, v), tree) == mlx_utils.tree_map_with_path(
        lambda p, v: (p, v), tree
    )
    assert cutils.tree_reduce(lambda acc, v: acc + v, tree, 0) == mlx_utils.tree_reduce(
        lambda acc, v: acc + v, tree, 0
    )
    empty = mlx_utils.tree_map(lambda v: None, tree)
    assert cutils.tree_merge(tree, empty) == mlx_utils.tree_merge(tree, empty)
