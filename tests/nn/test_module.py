"""The Module API: MLX's dict-based tree and PyTorch's habits on the same class."""

from __future__ import annotations

import copy
import os
import pickle
import zipfile

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.utils import tree_flatten


class MLP(nn.Module):
    def __init__(self):
        super(MLP, self).__init__()  # noqa: UP008  (the PyTorch habit under test)
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.blocks = [nn.Linear(4, 4), {"norm": nn.LayerNorm(4)}]
        self.fc2 = nn.Linear(4, 2)
        self.scale = mx.array([2.0])
        self.steps = 3  # not an array: a plain attribute

    def forward(self, x):
        x = self.act(self.fc1(x))
        x = self.blocks[1]["norm"](self.blocks[0](x))
        return self.fc2(x) * self.scale


def _names(tree):
    return [k for k, _ in tree_flatten(tree)]


def _values(model):
    return {k: v.numpy() for k, v in tree_flatten(model.parameters())}


# -- entries, attributes, calling -----------------------------------------------------------------


def test_attributes_become_entries():
    m = MLP()
    assert isinstance(m, dict)
    assert set(m.keys()) == {"fc1", "act", "blocks", "fc2", "scale"}
    assert m.fc1 is m["fc1"] and m.steps == 3 and "steps" not in m
    m.fc1 = None  # a non-array value replaces the entry with a plain attribute
    assert "fc1" not in m and m.fc1 is None
    with pytest.raises(AttributeError, match="nothing"):
        m.nothing  # noqa: B018
    del m.scale
    assert "scale" not in m


@pytest.mark.parametrize("name", ["values", "keys", "items", "update", "parameters", "state"])
def test_attribute_may_not_shadow_a_method(name):
    m = nn.Module()
    with pytest.raises(AttributeError, match=name):
        setattr(m, name, mx.zeros(2))
    assert name not in m


def test_forward_is_what_call_runs():
    m = MLP()
    x = mx.random.normal((5, 3))
    np.testing.assert_array_equal(m(x).numpy(), m.forward(x).numpy())

    class Twice(nn.Linear):  # a PyTorch-style subclass of an MLX-style layer
        def forward(self, x):
            return super().forward(x) * 2

    t = Twice(3, 2)
    np.testing.assert_allclose(t(x).numpy(), 2 * nn.Linear.__call__(t, x).numpy(), rtol=1e-6)

    class Nothing(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        Nothing()(x)


def test_super_init_is_optional():
    class NoSuper(nn.Module):
        def __init__(self):
            self.w = mx.ones((2,))

        def __call__(self, x):
            return x * self.w

    m = NoSuper()
    assert m.training and _names(m.trainable_parameters()) == ["w"]


def test_modules_compare_and_hash_by_identity():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.update(a.parameters())
    assert a != b and a == a and len({a, b}) == 2
    assert a in [a, b]


def test_repr_like_mlx():
    text = repr(MLP())
    assert text.startswith("MLP(\n  (fc1): Linear(input_dims=3, output_dims=4, bias=True)")
    assert "(blocks.1.norm): LayerNorm(4, eps=1e-05, affine=True)" in text
    assert repr(nn.ReLU()) == "ReLU()"


# -- trees ----------------------------------------------------------------------------------------


def test_parameters_trainable_children_leaf_modules():
    m = MLP()
    assert _names(m.parameters()) == [
        "fc1.weight",
        "fc1.bias",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.norm.weight",
        "blocks.1.norm.bias",
        "fc2.weight",
        "fc2.bias",
        "scale",
    ]
    assert m.parameters()["act"] == {}
    # the tree holds the very handles the layers use (a PyTorch optimizer can bind them)
    assert m.parameters()["fc1"]["weight"] is m.fc1.weight
    assert set(m.children()) == {"fc1", "act", "blocks", "fc2"}
    assert m.children()["blocks"][1]["norm"] is m.blocks[1]["norm"]
    leaves = [k for k, _ in tree_flatten(m.leaf_modules(), is_leaf=nn.Module.is_module)]
    assert leaves == ["fc1", "act", "blocks.0", "blocks.1.norm", "fc2"]


def test_modules_and_named_modules():
    m = MLP()
    names = [k for k, _ in m.named_modules()]
    assert names == ["", "fc1", "act", "blocks.0", "blocks.1.norm", "fc2"]
    assert m.modules()[0] is m and len(m.modules()) == 6
    seen = []
    m.apply_to_modules(lambda k, mod: seen.append(type(mod).__name__))
    assert seen == ["MLP", "Linear", "ReLU", "Linear", "LayerNorm", "Linear"]
    assert [k for k, _ in m.named_children()] == ["fc1", "act", "blocks.0", "blocks.1.norm", "fc2"]


def test_named_parameters_and_state_dict():
    m = MLP()
    pairs = list(m.named_parameters())
    # PyTorch's order: a module's own parameters first, then its sub-modules' in order
    pytorch_order = ["scale"] + [k for k in _names(m.parameters()) if k != "scale"]
    assert [k for k, _ in pairs] == pytorch_order
    assert pairs[1][1] is m.fc1.weight
    assert [k for k, _ in m.named_parameters(prefix="net")][1] == "net.fc1.weight"
    sd = m.state_dict()
    assert list(sd) == pytorch_order and sd["fc2.bias"] is m.fc2.bias
    assert "model.scale" in m.state_dict(prefix="model.")


# -- the tape: requires_grad, freeze -------------------------------------------------------------


def test_trainable_float_parameters_are_grad_leaves():
    m = MLP()
    for _, p in tree_flatten(m.parameters()):
        assert p.requires_grad and p.is_leaf
    x = mx.random.normal((5, 3))
    m(x).sum().backward()
    for k, p in tree_flatten(m.parameters()):
        assert p.grad is not None and p.grad.shape == p.shape, k


def test_freeze_and_unfreeze():
    m = MLP()
    m.freeze(keys="bias")
    assert "bias" not in m.trainable_parameters()["fc1"]
    assert not m.fc1.bias.requires_grad and m.fc1.weight.requires_grad
    m(mx.random.normal((2, 3))).sum().backward()
    assert m.fc1.bias.grad is None and m.fc1.weight.grad is not None
    m.unfreeze(keys=["bias"])
    assert m.fc1.bias.requires_grad and "bias" in m.trainable_parameters()["fc1"]
    m.freeze()
    assert m.trainable_parameters() == {
        "fc1": {},
        "act": {},
        "blocks": [{}, {"norm": {}}],
        "fc2": {},
    }
    assert not any(p.requires_grad for _, p in tree_flatten(m.parameters()))
    m.unfreeze()
    assert all(p.requires_grad for _, p in tree_flatten(m.parameters()))
    m.freeze(recurse=False)
    assert not m.scale.requires_grad and m.fc1.weight.requires_grad
    with pytest.raises(KeyError, match="nope"):
        m.freeze(keys="nope", strict=True)


def test_requires_grad_and_zero_grad():
    m = MLP()
    m.requires_grad_(False)
    assert not m.fc2.weight.requires_grad and _names(m.trainable_parameters()) == []
    m.requires_grad_(True)
    m(mx.random.normal((2, 3))).sum().backward()
    g = m.fc1.weight.grad
    m.zero_grad(set_to_none=False)
    assert np.all(m.fc1.weight.grad.numpy() == 0) and np.any(g.numpy() != 0)  # old grad intact
    m.zero_grad()
    assert all(p.grad is None for _, p in tree_flatten(m.parameters()))


def test_buffers_stay_frozen():
    m = nn.Module()
    m.register_buffer("stats", mx.zeros((3,)))
    m.register_parameter("w", nn.Parameter(mx.ones((2,))))
    m.add_module("lin", nn.Linear(2, 2))
    m.unfreeze()
    assert "stats" in m.parameters() and "stats" not in m.trainable_parameters()
    assert not m.stats.requires_grad and m.w.requires_grad
    p = nn.Parameter(mx.ones(2), requires_grad=False)
    assert not p.requires_grad


# -- update, apply, dtypes ----------------------------------------------------------------------


def test_update_replaces_and_keeps_tape_training():
    m = MLP()
    new = mx.zeros((4, 3))
    m.update({"fc1": {"weight": new}})
    assert m.fc1.weight is new and new.requires_grad  # a constant replacing a leaf becomes one
    m(mx.ones((1, 3))).sum().backward()
    assert m.fc1.weight.grad is not None


def test_update_refuses_unknown_keys_and_changes_nothing():
    m = MLP()
    before = _values(m)
    w = m.fc1.weight
    with pytest.raises(ValueError) as e:
        m.update({"fc1": {"weight": mx.zeros((4, 3)), "wieght": mx.zeros(1)}, "fc9": {}})
    assert "fc1.wieght" in str(e.value) and "fc9" in str(e.value)
    assert m.fc1.weight is w
    with pytest.raises(ValueError, match="fc2.bias"):
        m.update({"fc2": {"bias": [1.0, 2.0]}})
    assert all(np.array_equal(v, _values(m)[k]) for k, v in before.items())
    m.update({"fc9": {"w": mx.zeros(1)}}, strict=False)  # ignored
    assert "fc9" not in m


def test_update_modules():
    m = MLP()
    new = nn.Linear(4, 2, bias=False)
    m.update_modules({"fc2": new, "blocks": [nn.Identity(), {}]})
    assert m.fc2 is new and isinstance(m.blocks[0], nn.Identity)
    with pytest.raises(ValueError, match="fc7"):
        m.update_modules({"fc7": nn.Identity()})


def test_apply_and_set_dtype():
    m = MLP()
    m.apply(lambda p: p * 0, filter_fn=lambda mod, k, v: k != "scale")
    assert np.all(m.fc1.weight.numpy() == 0) and m.scale.item() == 2.0
    assert m.fc1.weight.requires_grad and m.fc1.weight.is_leaf  # no graph to the old values
    m.set_dtype(mx.float16)
    assert {p.dtype for _, p in tree_flatten(m.parameters())} == {mx.float16}
    assert m(mx.ones((1, 3), dtype=mx.float16)).dtype == mx.float16
    e = nn.Embedding(3, 2)
    e.weight = e.weight.astype(mx.float64)
    ints = nn.Module()
    ints.idx = mx.array([1, 2])
    ints.set_dtype(mx.float32)
    assert ints.idx.dtype == mx.int32  # integers are left alone by default
    ints.set_dtype(mx.float32, predicate=None)
    assert ints.idx.dtype == mx.float32


def test_to_and_double_cast_in_place():
    m = MLP()
    w = m.fc1.weight
    m.double()
    assert m.fc1.weight is w and w.dtype == mx.float64 and w.requires_grad
    m.to(mx.float32)
    assert w.dtype == mx.float32
    assert m.to("cpu") is m


def test_train_eval_and_state():
    m = MLP()
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m and not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m.training = False
    assert not m.training and m.fc1.training
    assert m.state is m


def test_deepcopy():
    m = MLP()
    c = copy.deepcopy(m)
    assert type(c) is MLP and c is not m and c.fc1 is not m.fc1
    assert c.fc1.weight.requires_grad and c.steps == 3
    np.testing.assert_array_equal(c.fc1.weight.numpy(), m.fc1.weight.numpy())


def test_pickle_keeps_trainable_leaves_and_frozen_state():
    m = MLP()
    m.fc1.freeze(keys="bias")
    c = pickle.loads(pickle.dumps(m))
    assert type(c) is MLP and c.steps == 3
    assert c.fc1.weight.requires_grad and not c.fc1.bias.requires_grad
    assert "bias" not in c.trainable_parameters()["fc1"]
    c(mx.ones((1, 3))).sum().backward()
    assert c.fc2.weight.grad is not None and c.fc1.bias.grad is None
    assert "fc1" in dir(c)


def test_sequential_indexing():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert isinstance(s[0], nn.Linear) and isinstance(s[-1], nn.ReLU)
    assert isinstance(s[:1], nn.Sequential) and len(s[:1].layers) == 1
    assert s["layers"] is s.layers


# -- checkpoints ---------------------------------------------------------------------------------


def test_load_state_dict_in_place_and_strict():
    m, other = MLP(), MLP()
    w = m.fc1.weight
    result = m.load_state_dict(other.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert m.fc1.weight is w  # handles kept: optimizers stay bound
    np.testing.assert_array_equal(w.numpy(), other.fc1.weight.numpy())
    assert w.requires_grad and w.is_leaf

    before = _values(m)
    bad = other.state_dict()
    bad["fc2.weight"] = mx.zeros((3, 3))
    bad["extra"] = mx.zeros(1)
    del bad["scale"]
    with pytest.raises(nn.StateDictError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert "fc2.weight" in msg and "extra" in msg and "scale" in msg and "torch.Size([3, 3])" in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, RuntimeError)
    assert all(np.array_equal(v, _values(m)[k]) for k, v in before.items())

    partial = {"fc2.bias": np.array([1.0, 2.0])}  # NumPy float64 is cast to the model's dtype
    res = m.load_state_dict(partial, strict=False)
    assert "fc1.weight" in res.missing_keys and m.fc2.bias.dtype == mx.float32
    np.testing.assert_array_equal(m.fc2.bias.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_save_and_load_weights_round_trip(tmp_path, ext):
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    m, other = MLP(), MLP()
    other.fc1.weight = other.fc1.weight.astype(mx.float64)
    path = tmp_path / f"w{ext}"
    other.save_weights(str(path))
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind
    w = m.fc1.weight
    m.load_weights(str(path))
    assert m.fc1.weight is w and w.dtype == mx.float64  # the file's dtype, in place
    for k, v in _values(other).items():
        np.testing.assert_array_equal(_values(m)[k], v)
    other.save_weights(path)  # overwrite an existing file (and accept a Path)
    m.load_weights(path)


@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_load_weights_refuses_mismatch_and_changes_nothing(tmp_path, ext):
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    bigger = MLP()
    bigger.fc2 = nn.Linear(4, 5)
    path = str(tmp_path / f"w{ext}")
    bigger.save_weights(path)
    m = MLP()
    before = _values(m)
    with pytest.raises(ValueError, match=r"fc2\.weight"):
        m.load_weights(path)
    assert all(np.array_equal(v, _values(m)[k]) for k, v in before.items())

    extra = MLP()
    extra.more = mx.zeros((2,))
    extra.save_weights(path)
    with pytest.raises(ValueError, match="more"):
        m.load_weights(path)
    m.load_weights(path, strict=False)  # loads what fits, ignores the rest
    np.testing.assert_array_equal(m.fc1.weight.numpy(), extra.fc1.weight.numpy())

    missing = list(tree_flatten(MLP().parameters()))[:-1]
    with pytest.raises(ValueError, match="scale"):
        m.load_weights(missing)


def test_load_weights_from_pairs_and_bad_extension(tmp_path):
    m = MLP()
    pairs = [(k, mx.zeros(v.shape)) for k, v in tree_flatten(m.parameters())]
    m.load_weights(pairs)
    assert np.all(m.fc1.weight.numpy() == 0)
    with pytest.raises(ValueError, match="extension"):
        m.save_weights(str(tmp_path / "w.pt"))
    with pytest.raises(ValueError, match="extension"):
        m.load_weights(str(tmp_path / "w.bin"))


def test_npz_is_read_without_pickle(tmp_path, monkeypatch):
    m = MLP()
    path = str(tmp_path / "w.npz")
    m.save_weights(path)
    seen = {}
    real = np.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    m.load_weights(path)
    assert seen.get("allow_pickle") is False
    monkeypatch.undo()

    # an object array (which would need pickle) is refused
    evil = str(tmp_path / "evil.npz")
    np.savez(evil, **{"fc1.weight": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError):
        m.load_weights(evil)


def test_npz_accepts_any_parameter_name(tmp_path):
    m = nn.Module()
    m.file = mx.ones((2,))  # np.savez(file, **kw) would choke on this name
    path = str(tmp_path / "w.npz")
    m.save_weights(path)
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["file.npy"]
    m.file = mx.zeros((2,))
    m.load_weights(path)
    assert m.file.numpy().tolist() == [1.0, 1.0]


def _models_for_trainable():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = [nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)]
            self.extra = mx.zeros((2,))
            self.table = {"a": mx.ones((2,)), "b": [mx.zeros((1,)), nn.Linear(2, 2)]}
            self._hidden = mx.zeros((3,))
            self.tag = "not a parameter"

    frozen = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    frozen.layers[0].freeze()
    partly = nn.Linear(2, 2)
    partly.freeze(keys=["bias"])
    return [
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
        Holder(),
        frozen,
        partly,
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm(2), nn.LayerNorm(2)),
        nn.TransformerEncoderLayer(8, 2),
        nn.LSTM(3, 4),
    ]


@pytest.mark.parametrize("index", range(7))
def test_trainable_parameters_fast_path_equals_the_filter(index):
    model = _models_for_trainable()[index]
    fast = model.trainable_parameters()
    slow = model.filter_and_map(nn.Module.trainable_parameter_filter)
    got, want = tree_flatten(dict(fast.items())), tree_flatten(slow)
    assert [k for k, _ in got] == [k for k, _ in want]
    assert all(a is b for (_, a), (_, b) in zip(got, want))
    if index == 0:  # the common case takes the fast path
        from chainrule.nn.module import _trainable_tree

        assert _trainable_tree(model) is not None


def test_recursive_freeze_with_strict_keys_needs_each_key_somewhere():
    m = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2))
    m.freeze(keys="bias", strict=True)
    assert not any(k.endswith("bias") for k, _ in tree_flatten(m.trainable_parameters()))
    m.unfreeze(keys="bias", strict=True)
    assert any(k.endswith("bias") for k, _ in tree_flatten(m.trainable_parameters()))
    with pytest.raises(KeyError, match="not_a_member"):
        m.freeze(keys="not_a_member", strict=True)
    with pytest.raises(KeyError, match="bias"):  # not recursing: this module has no bias
        m.layers[0].freeze(keys="bias", strict=True, recurse=False)


def test_update_modules_skips_empty_nodes_and_checks_lengths():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.stuff = [nn.Linear(2, 2), 0, nn.Linear(2, 2)]
            self.more = {"hi": nn.Linear(2, 2), "bye": 0}

    h = Holder()
    h.update_modules(h.leaf_modules())  # the plain 0s come back as {}: nothing to do
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    m.update_modules({"layers": [{}, nn.Linear(3, 4)]})
    assert m.layers[1].weight.shape == (4, 3)
    with pytest.raises(ValueError, match="2 entries, received 3"):
        m.update_modules({"layers": [{}, {}, nn.Linear(3, 4)]})
    m.update_modules({"layers": [{}, nn.Linear(3, 5), nn.Linear(5, 5)]}, strict=False)
    assert len(m.layers) == 2 and m.layers[1].weight.shape == (5, 3)
    with pytest.raises(ValueError):
        m.update_modules({"layers": [0, 1]})


def test_update_modules_leaves_no_reference_cycle():
    import weakref

    m = nn.Linear(8, 4)
    m.update_modules({})
    m.update_modules({"weight": {}}, strict=False)
    ref = weakref.ref(m)
    del m
    assert ref() is None  # freed at once, without waiting for the garbage collector
