"""chainrule.save_checkpoint / load_checkpoint: one file, atomic, no pickle, validated."""

import json
import os
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest

import chainrule
import chainrule.checkpoint as ckpt
import chainrule.core as mx
import chainrule.core.io as cio
import chainrule.nn as nn
from chainrule import load_checkpoint, save_checkpoint


class Net(nn.Module):
    def __init__(self, d_in=3, hidden=5, d_out=2):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.drop = nn.Dropout(0.5)  # no parameters: an empty sub-tree
        self.fc2 = nn.Linear(hidden, d_out)

    def __call__(self, x):
        return self.fc2(self.drop(nn.relu(self.fc1(x))))


def _values(model):
    return {k: np.array(v) for k, v in ckpt.named_arrays(model)}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_round_trip_weights_epoch_extra_and_random_state(tmp_path):
    mx.random.seed(0)
    model = Net()
    path = tmp_path / "run.ckpt"
    extra = {"best": 0.25, "tags": ("a", "b"), 3: [1, None], "count": np.int64(7)}
    save_checkpoint(path, model, epoch=4, extra=extra)
    after_save = mx.random.normal((3,))
    mx.random.seed(1)
    other = Net()
    assert not _same(_values(other), _values(model))
    handles = dict(ckpt.named_arrays(other))
    info = load_checkpoint(path, other)
    assert info["epoch"] == 4
    assert info["extra"] == extra and type(info["extra"]["count"]) is np.int64
    assert _same(_values(other), _values(model))
    # arrays were updated in place on the model's own handles, still trainable leaves
    assert all(handles[k] is v for k, v in ckpt.named_arrays(other))
    assert all(v.requires_grad for _, v in ckpt.named_arrays(other))
    # the random state continues exactly where it was saved
    np.testing.assert_array_equal(np.array(mx.random.normal((3,))), np.array(after_save))


def test_file_is_plain_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = Net()
    save_checkpoint(tmp_path / "m.safetensors", model)
    tensors = st.load_file(str(tmp_path / "m.safetensors"))
    for k, v in ckpt.named_arrays(model):
        np.testing.assert_array_equal(tensors[f"model.{k}"], np.array(v))


def test_exported_from_the_package():
    assert chainrule.save_checkpoint is save_checkpoint
    assert chainrule.load_checkpoint is load_checkpoint


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    model = Net()
    save_checkpoint(path, model, epoch=1)
    before = path.read_bytes()
    calls = []
    real = cio._write_tensor

    def failing(f, data):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real(f, data)

    monkeypatch.setattr(cio, "_write_tensor", failing)
    changed = Net()
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, changed, epoch=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]  # the temporary file is gone
    monkeypatch.undo()
    assert load_checkpoint(path, Net())["epoch"] == 1


def test_interrupt_during_rename_step_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, Net(), epoch=1)
    before = path.read_bytes()

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, Net(), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.ckpt"]


def _check_refused(path, match="not a chainrule checkpoint"):
    model = Net()
    before = _values(model)
    state = mx.random.get_state()
    with pytest.raises(ValueError, match=match) as e:
        load_checkpoint(path, model)
    assert str(path) in str(e.value)
    assert _same(_values(model), before) and mx.random.get_state() == state


def test_garbage_truncated_and_foreign_files_are_refused(tmp_path):
    good = tmp_path / "good.ckpt"
    save_checkpoint(good, Net(), epoch=1)
    data = good.read_bytes()

    cases = {
        "empty": b"",
        "garbage": bytes(range(256)) * 8,
        "text": b"hello world, this is not a checkpoint at all",
        "truncated": data[:-7],
        "header_cut": data[:40],
        "trailing": data + b"xx",
        "json_not_object": struct.pack("<Q", 8) + b"[1,2,3] ",
    }
    for name, content in cases.items():
        p = tmp_path / f"{name}.ckpt"
        p.write_bytes(content)
        _check_refused(p)

    # a weights-only safetensors file written by another tool
    st = pytest.importorskip("safetensors.numpy")
    foreign = tmp_path / "weights.safetensors"
    st.save_file({"fc1.weight": np.zeros((5, 3), np.float32)}, str(foreign))
    _check_refused(foreign)

    # a corrupt entry: the dtype is not one a checkpoint holds
    text = data[8 : 8 + struct.unpack("<Q", data[:8])[0]]
    bad = text.replace(b'"F32"', b'"O\x20\x20"', 1)
    p = tmp_path / "dtype.ckpt"
    p.write_bytes(data[:8] + bad + data[8 + len(text) :])
    _check_refused(p, match="unknown or unsupported dtype 'O  '")


def test_npz_with_an_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    obj = np.empty(1, dtype=object)
    obj[0] = Bomb()
    path = tmp_path / "evil.npz"
    np.savez(path, **{"model.fc1.weight": obj, "__metadata__": np.array("chainrule")})
    with np.load(path, allow_pickle=True) as z:  # proves the file would run code if unpickled
        z["model.fc1.weight"]
    assert marker.exists()
    os.rmdir(marker)
    _check_refused(path)
    assert not marker.exists()


def test_names_and_shapes_checked_before_anything_changes(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, Net(hidden=5))
    for other in (Net(hidden=6), Net(d_out=3)):
        before = _values(other)
        with pytest.raises(ValueError, match="shape mismatch") as e:
            load_checkpoint(path, other)
        assert str(path) in str(e.value)
        assert _same(_values(other), before)

    class Bigger(Net):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 2)

    model = Bigger()
    before = _values(model)
    with pytest.raises(ValueError, match=r"missing \['head.weight', 'head.bias'\]"):
        load_checkpoint(path, model)
    assert _same(_values(model), before)


def test_values_that_need_pickle_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match=r"extra\.fn.*without pickle"):
        save_checkpoint(tmp_path / "c.ckpt", Net(), extra={"fn": len})
    assert not (tmp_path / "c.ckpt").exists()
    assert os.listdir(tmp_path) == []


def test_missing_optimizer_or_scheduler_state_is_an_error(tmp_path):
    import chainrule.optimizers as optim

    path = tmp_path / "c.ckpt"
    save_checkpoint(path, Net())
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, Net(), optimizer=optim.SGD(learning_rate=0.1))


def test_special_values_round_trip_and_keep_the_header_strict_json(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    extra = {
        "inf": float("inf"),
        "nan": float("nan"),
        "scalar": mx.array(2.5),
        "nan32": np.float32("nan"),
        "empty": {"a": {}, "b": []},
        "tuple_keys": {(1, 2): "pair"},
    }
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, Net(), extra=extra)
    st.load_file(str(path))  # the Rust reader accepts the header
    back = load_checkpoint(path, Net())["extra"]
    assert back["inf"] == float("inf") and back["nan"] != back["nan"]
    assert back["scalar"].shape == () and back["scalar"].item() == 2.5
    assert type(back["nan32"]) is np.float32 and np.isnan(back["nan32"])
    assert back["empty"] == {"a": {}, "b": []}
    assert back["tuple_keys"] == {(1, 2): "pair"}


def test_atomic_write_and_atomic_path_keep_the_old_file_on_error(tmp_path):
    path = tmp_path / "out.bin"
    ckpt.atomic_write(path, lambda f: f.write(b"old"))

    def half_then_fail(f):
        f.write(b"new but incomplete")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError, match="crash"):
        ckpt.atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    with pytest.raises(RuntimeError, match="crash"), ckpt.atomic_path(path) as tmp:
        assert tmp.endswith(".bin") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            half_then_fail(f)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with ckpt.atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.bin"]


def test_malformed_metadata_is_refused_before_changes(tmp_path):
    model = Net()
    names = [k for k, _ in ckpt.named_arrays(model)]
    tensors = {f"model.{k}": np.zeros(v.shape, np.float32) for k, v in ckpt.named_arrays(model)}
    for bad_state in (
        '{"model": %s, "random": 5}',
        '{"model": %s, "random": {"__cr__": "dict", "items": [1]}}',
        '{"model": %s, "random": {"__cr__": "ndarray", "name": "nowhere"}}',
        '{"model": %s, "random": null, "extra": {"__cr__": "scalar", "dtype": "O", "value": 1}}',
        "not json",
    ):
        path = tmp_path / "bad.ckpt"
        meta = {
            "format": ckpt.FORMAT,
            "version": "1",
            "chainrule": bad_state.replace("%s", str(names).replace("'", '"')),
        }
        ckpt._write_file(str(path), tensors, meta)
        _check_refused(path)
    meta["version"] = "99"
    ckpt._write_file(str(path), tensors, meta)
    _check_refused(path, match="version '99' is not supported")


# ------------------------------------------------------------------ optimizer identity


def _loss(model, x):
    return (model(x) ** 2).mean()


def _mlx_step(model, opt):
    _, grads = nn.value_and_grad(model, _loss)(model, mx.ones((4, 3)))
    opt.update(model, grads)


def _torch_step(model, opt):
    opt.zero_grad()
    _loss(model, mx.ones((4, 3))).backward()
    opt.step()


def _make(style, name, model, **kw):
    import chainrule.optimizers as optim

    cls = getattr(optim, name)
    return (
        cls(learning_rate=0.01, **kw) if style == "mlx" else cls(model.parameters(), lr=0.01, **kw)
    )


def _trained(style, name, **kw):
    model = Net()
    opt = _make(style, name, model, **kw)
    step = _mlx_step if style == "mlx" else _torch_step
    step(model, opt)
    step(model, opt)
    return model, opt


def _opt_values(opt):
    from chainrule.utils import tree_flatten

    state = opt.state_dict()["state"]
    return {str(k): np.array(v) for k, v in tree_flatten(state) if hasattr(v, "_data")}


def _rewrite_metadata(path, edit):
    """Rewrite the 'chainrule' metadata of a checkpoint (as an older or a crafted file)."""
    tensors, meta = cio.read_safetensors(path)
    state = json.loads(meta["chainrule"])
    edit(state)
    meta["chainrule"] = json.dumps(state)
    ckpt._write_file(str(path), tensors, meta)


@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_another_optimizers_state_is_refused_naming_both_classes(tmp_path, style):
    path = tmp_path / "adam.ckpt"
    model, adam = _trained(style, "Adam")
    save_checkpoint(path, model, adam)
    other = Net()
    sgd = _make(style, "SGD", other, momentum=0.9)
    before, opt_before = _values(other), _opt_values(sgd)
    with pytest.raises(ValueError, match=r"holds Adam optimizer state .* given is SGD") as e:
        load_checkpoint(path, other, sgd)
    assert str(path) in str(e.value) and "optimizers.Adam" in str(e.value)
    assert _same(_values(other), before) and _same(_opt_values(sgd), opt_before)
    # the same class loads, and training continues
    adam2 = _make(style, "Adam", other)
    load_checkpoint(path, other, adam2)
    assert _same(_opt_values(adam2), _opt_values(adam))
    (_mlx_step if style == "mlx" else _torch_step)(other, adam2)


@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_checkpoints_without_the_qualified_name_are_checked_by_class_and_structure(tmp_path, style):
    path = tmp_path / "old.ckpt"
    model, adam = _trained(style, "Adam")
    save_checkpoint(path, model, adam)

    def old(state):  # as written before the identity fields existed
        del state["optimizer"]["qualname"], state["optimizer"]["hyper"]

    _rewrite_metadata(path, old)
    load_checkpoint(path, Net(), _make(style, "Adam", Net()))  # same class: fine
    with pytest.raises(ValueError, match=r"holds Adam optimizer state \(saved without"):
        load_checkpoint(path, Net(), _make(style, "SGD", Net(), momentum=0.9))
    if style == "mlx":  # no class at all: the structure still tells Adam's m from SGD's v
        _rewrite_metadata(path, lambda s: s["optimizer"].pop("class"))
        with pytest.raises(ValueError, match=r"has 'm', which SGD does not keep"):
            load_checkpoint(path, Net(), _make(style, "SGD", Net(), momentum=0.9))


def test_hyper_parameter_names_and_kinds_are_checked(tmp_path):
    path = tmp_path / "c.ckpt"
    model, opt = _trained("mlx", "Adam")
    save_checkpoint(path, model, opt)
    _rewrite_metadata(path, lambda s: s["optimizer"]["hyper"].pop("eps"))
    with pytest.raises(ValueError, match=r"hyper-parameters \[.*\] but the optimizer given"):
        load_checkpoint(path, Net(), _make("mlx", "Adam", Net()))
    save_checkpoint(path, model, opt)
    _rewrite_metadata(path, lambda s: s["optimizer"]["hyper"].update(eps="str"))
    with pytest.raises(ValueError, match=r"'eps' of the checkpoint's Adam is a str"):
        load_checkpoint(path, Net(), _make("mlx", "Adam", Net()))


def test_mlx_optimizer_state_structure_is_checked(tmp_path):
    import chainrule.optimizers as optim

    path = tmp_path / "c.ckpt"
    model, opt = _trained("mlx", "Adafactor")  # beta_1=None: no first moment
    save_checkpoint(path, model, opt)
    with pytest.raises(ValueError, match=r"'fc1.weight' lacks \['exp_avg'\]"):
        load_checkpoint(path, Net(), optim.Adafactor(learning_rate=0.01, beta_1=0.9))

    model, opt = _trained("mlx", "Adam")
    save_checkpoint(path, model, opt)

    def misplace(state):
        st = state["optimizer"]["state"]
        st["head"] = st.pop("fc2")

    _rewrite_metadata(path, misplace)
    with pytest.raises(ValueError, match=r"entry 'head', which is neither a parameter"):
        load_checkpoint(path, Net(), _make("mlx", "Adam", Net()))

    save_checkpoint(path, model, opt)

    def reshape(state):
        state["optimizer"]["state"]["fc1"]["weight"]["m"]["name"] = "model.fc2.weight"

    _rewrite_metadata(path, reshape)
    with pytest.raises(ValueError, match=r"'m' of 'fc1.weight' has shape \(2, 5\).*\(5, 3\)"):
        load_checkpoint(path, Net(), _make("mlx", "Adam", Net()))


def test_torch_optimizer_state_structure_is_checked(tmp_path):
    path = tmp_path / "c.ckpt"
    model, opt = _trained("torch", "SGD", momentum=0.9)
    save_checkpoint(path, model, opt)
    other = Net()
    sgd = _make("torch", "SGD", other, momentum=0.9)
    load_checkpoint(path, other, sgd)  # SGD's momentum buffer is made at the first step: fine
    assert _same(_opt_values(sgd), _opt_values(opt))

    def wrong_shape(state):
        entry = state["optimizer"]["state"]["state"]["items"][0][1]
        entry["momentum_buffer"]["name"] = "model.fc2.bias"  # PyTorch's state names

    _rewrite_metadata(path, wrong_shape)
    with pytest.raises(
        ValueError, match=r"has 'momentum_buffer' of shape \(2,\), which SGD .* shape \(5, 3\)"
    ):
        load_checkpoint(path, Net(), _make("torch", "SGD", Net(), momentum=0.9))

    model, opt = _trained("torch", "Adam")
    save_checkpoint(path, model, opt)

    def drop_m(state):
        del state["optimizer"]["state"]["state"]["items"][0][1]["exp_avg"]

    _rewrite_metadata(path, drop_m)
    with pytest.raises(ValueError, match=r"parameter 0 lacks \['exp_avg'\]"):
        load_checkpoint(path, Net(), _make("torch", "Adam", Net()))

    save_checkpoint(path, model, opt)
    two = Net()
    groups = [
        {"params": [two.fc1.weight, two.fc1.bias]},
        {"params": [two.fc2.weight, two.fc2.bias]},
    ]
    import chainrule.optimizers as optim

    with pytest.raises(ValueError, match=r"1 parameter groups, the optimizer given has 2"):
        load_checkpoint(path, two, optim.Adam(groups, lr=0.01))


def test_multi_optimizer_round_trip_and_parts_are_checked(tmp_path):
    import chainrule.optimizers as optim

    def multi(first="SGD"):
        a = getattr(optim, first)(learning_rate=0.1)
        return optim.MultiOptimizer([a, optim.Adam(learning_rate=0.01)], [lambda p, g: "fc1" in p])

    path = tmp_path / "c.ckpt"
    model, opt = Net(), multi()
    _mlx_step(model, opt)
    save_checkpoint(path, model, opt)
    other = multi()
    load_checkpoint(path, Net(), other)
    _mlx_step(Net(), other)
    with pytest.raises(ValueError, match=r"holds SGD optimizer state .*\(part 0\).* given is Lion"):
        load_checkpoint(path, Net(), multi("Lion"))


def test_model_dtypes_are_checked_before_any_data_is_read(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, Net())
    other = Net()
    other.fc1.bias = mx.zeros((5,), dtype=mx.int32)
    before = _values(other)

    def no_reading(*a):
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(cio, "_read_into", no_reading)
    with pytest.raises(ValueError, match=r"dtype mismatch for 'fc1.bias': checkpoint float32"):
        load_checkpoint(path, other)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_checkpoint(path, Net(hidden=6))
    assert _same(_values(other), before)
    monkeypatch.undo()
    wider = Net()
    wider.fc1.weight = wider.fc1.weight.astype(mx.float64)  # same kind: loads, cast
    load_checkpoint(path, wider)
    assert wider.fc1.weight.dtype == mx.float64


# ------------------------------------------------------------------ depth, modes, temporaries


def test_deeply_nested_metadata_is_refused_clearly(tmp_path):
    model = Net()
    names = json.dumps([k for k, _ in ckpt.named_arrays(model)])
    tensors = {f"model.{k}": np.zeros(v.shape, np.float32) for k, v in ckpt.named_arrays(model)}
    deep = "[" * 200_000 + "]" * 200_000
    meta = {
        "format": ckpt.FORMAT,
        "version": "1",
        "chainrule": f'{{"model": {names}, "random": null, "extra": {deep}}}',
    }
    path = tmp_path / "deep.ckpt"
    ckpt._write_file(str(path), tensors, meta)
    _check_refused(path, match=f"nested deeper than {ckpt.MAX_DEPTH} levels")

    # the safetensors header itself nested deep
    header = b"[" * 200_000 + b"]" * 200_000
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    _check_refused(path, match="nested deeper than 16 levels")


def test_saving_refuses_values_nested_too_deep_and_the_limit_round_trips(tmp_path):
    path = tmp_path / "c.ckpt"
    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"extra\.0\.0.* nested deeper than 100 levels"):
        save_checkpoint(path, Net(), extra=deep)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        save_checkpoint(path, Net(), extra={"loop": loop})
    assert os.listdir(tmp_path) == []

    def nested(levels, leaf):
        value = leaf
        for _ in range(levels):
            value = [value]
        return value

    # the state object holds "extra": 98 lists plus a tuple's two levels make 100
    fits = nested(97, (1.5,))
    save_checkpoint(path, Net(), extra=fits)
    assert load_checkpoint(path, Net())["extra"] == fits
    with pytest.raises(ValueError, match="nested deeper than 100"):
        save_checkpoint(path, Net(), extra=nested(98, (1.5,)))


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "c.ckpt", Net())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c.ckpt").st_mode) == expected


def test_save_checkpoint_removes_stale_temporaries_only(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a finished process: its pid is no longer running
    stale = tmp_path / f".c.ckpt.{dead.pid}-0123abcd.tmp.ckpt"
    live = tmp_path / f".c.ckpt.{os.getpid()}-0123abcd.tmp.ckpt"
    other = tmp_path / "notes.txt"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    save_checkpoint(tmp_path / "c.ckpt", Net())
    assert sorted(os.listdir(tmp_path)) == sorted(["c.ckpt", live.name, other.name])
