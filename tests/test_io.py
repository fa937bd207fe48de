"""chainrule.core.io: the one atomic writer, stale temporaries, bounded JSON, safetensors."""

import json
import os
import re
import stat
import struct
import subprocess
import sys

import numpy as np
import pytest

import chainrule.core.io as cio

TEMP = re.compile(r"^\.out\.bin\.(\d+)-[0-9a-f]{8}\.tmp\.bin$")


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _dead_pid():
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_atomic_write_replaces_and_keeps_the_old_file_on_exception(tmp_path):
    path = tmp_path / "out.bin"
    cio.atomic_write(path, lambda f: f.write(b"old"))
    assert path.read_bytes() == b"old"

    def half_then_fail(f):
        f.write(b"new but incomplete")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError, match="crash mid-write"):
        cio.atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]  # the temporary file is gone

    with pytest.raises(KeyboardInterrupt), cio.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_atomic_path_names_its_temporary_by_the_pattern_next_to_the_target(tmp_path):
    path = tmp_path / "out.bin"
    with cio.atomic_path(path) as tmp:
        name = os.path.basename(tmp)
        m = TEMP.match(name)
        assert m is not None, name
        assert int(m.group(1)) == os.getpid()
        assert os.path.dirname(tmp) == str(tmp_path)
        assert os.path.getsize(tmp) == 0  # it exists, empty, when the body starts
        assert not path.exists()
        with open(tmp, "wb") as f:
            f.write(b"data")
    assert path.read_bytes() == b"data" and os.listdir(tmp_path) == ["out.bin"]
    # two temporaries for one target never share a name
    with cio.atomic_path(path) as a, cio.atomic_path(path) as b:
        assert a != b


def test_writes_are_flushed_then_the_folder_is_flushed(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1]
    )
    monkeypatch.setattr(cio, "fsync_dir", lambda d: events.append(("dir", str(d))))
    cio.write_bytes(tmp_path / "x.txt", b"hello")
    assert events[-2:] == ["replace", ("dir", str(tmp_path))]
    assert "fsync" in events[: events.index("replace")]
    assert (tmp_path / "x.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_mode_follows_the_umask(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        cio.write_bytes(tmp_path / "a.txt", b"a")
        cio.atomic_write(tmp_path / "b.bin", lambda f: f.write(b"b"))
        with cio.atomic_path(tmp_path / "c.bin") as tmp, open(tmp, "wb") as f:
            f.write(b"c")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.bin", "c.bin"):
        assert _mode(tmp_path / name) == expected, name


def test_write_bytes_writes_and_overwrites(tmp_path):
    path = tmp_path / "x.txt"
    cio.write_bytes(path, b"first")
    cio.write_bytes(str(path), b"second, longer")
    assert path.read_bytes() == b"second, longer"
    cio.write_bytes(path, b"")
    assert path.read_bytes() == b"" and os.listdir(tmp_path) == ["x.txt"]


def test_clean_stale_temporaries_removes_only_dead_writers_temporaries(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".model.npz.{dead}-0123abcd.tmp.npz"
    mine = tmp_path / f".model.npz.{os.getpid()}-89abcdef.tmp.npz"
    parent = tmp_path / f".model.npz.{os.getppid()}-89abcdef.tmp.npz"  # a live process
    unrelated = [
        tmp_path / "model.npz",
        tmp_path / f".model.npz.{dead}-0123abcd.partial",  # not our pattern
        tmp_path / f"model.npz.{dead}-0123abcd.tmp.npz",  # no leading dot
        tmp_path / f".model.npz.{dead}-XYZ.tmp.npz",
    ]
    for p in [stale, mine, parent, *unrelated]:
        p.write_bytes(b"x")
    folder = tmp_path / f".dir.{dead}-0123abcd.tmp"  # a folder is never removed
    folder.mkdir()
    removed = cio.clean_stale_temporaries(tmp_path)
    assert removed == [str(stale)]
    assert not stale.exists()
    assert mine.exists() and parent.exists() and folder.is_dir()
    assert all(p.exists() for p in unrelated)
    assert cio.clean_stale_temporaries(tmp_path / "missing") == []


def test_json_loads_bounded_refuses_deep_nesting_without_recursion():
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(ValueError, match="nested deeper than 50 levels"):
        cio.json_loads_bounded(deep, 50)
    with pytest.raises(RecursionError):  # what the guard prevents
        json.loads(deep)
    # brackets inside strings (escaped quotes included) are not nesting
    text = json.dumps({"a": ["[" * 100 + '\\"{' * 50, {"b": '"]]]['}]})
    assert cio.json_loads_bounded(text, 3) == json.loads(text)
    assert cio.json_loads_bounded("[[1]]", 2) == [[1]]
    with pytest.raises(ValueError, match="deeper than 1 levels"):
        cio.json_loads_bounded("[[1]]", 1)
    with pytest.raises(json.JSONDecodeError):
        cio.json_loads_bounded("{nope", 5)


def test_safetensors_round_trip_every_dtype_and_shape(tmp_path):
    tensors = {
        f"t_{name}": np.arange(6).reshape(2, 3).astype(dtype)
        for name, dtype in cio.SAFETENSORS_DTYPES.items()
    }
    tensors["scalar"] = np.float32(2.5) * np.ones((), np.float32)
    tensors["empty"] = np.zeros((0, 4), np.float64)
    tensors["fortran"] = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    tensors["big_endian"] = np.arange(4, dtype=">i4")
    path = tmp_path / "t.safetensors"
    cio.write_safetensors(path, tensors, {"k": "v"})
    back, meta = cio.read_safetensors(path)
    assert meta == {"k": "v"} and list(back) == list(tensors)
    for k, v in tensors.items():
        assert back[k].shape == v.shape and np.array_equal(back[k], v), k
    assert back["big_endian"].dtype == np.dtype("<i4")
    with pytest.raises(TypeError, match=r"'c'.*complex128.*cannot hold"):
        cio.write_safetensors(tmp_path / "c.safetensors", {"c": np.ones(2, complex)})
    assert not (tmp_path / "c.safetensors").exists()


def test_read_safetensors_check_sees_the_header_before_any_data(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    cio.write_safetensors(path, {"a": np.ones((2, 3), np.float32), "b": np.zeros(4, np.int64)})
    seen = {}

    def check(index, meta):
        seen.update(index)
        return ["b"]

    back, meta = cio.read_safetensors(path, check)
    assert seen == {
        "a": cio.TensorInfo(np.dtype("<f4"), (2, 3)),
        "b": cio.TensorInfo(np.dtype("<i8"), (4,)),
    }
    assert seen["a"].nbytes == 24 and meta is None
    assert list(back) == ["b"]  # only what check chose was read

    def refuse(index, meta):
        raise ValueError("not this one")

    def no_reading(*a):
        raise AssertionError("data was read")

    monkeypatch.setattr(cio, "_read_into", no_reading)
    with pytest.raises(ValueError, match="not this one"):
        cio.read_safetensors(path, refuse)


def test_read_safetensors_errors_are_file_format_errors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(cio.FileFormatError) as e:
        cio.read_safetensors(path, kind="a test file")
    assert e.value.path == str(path) and isinstance(e.value, ValueError)
    assert str(e.value).startswith(f"{path}: not a test file (header length")


def test_files_are_read_and_written_by_the_safetensors_library(tmp_path):
    # chainrule writes the format itself: the reference library must agree, both ways
    st = pytest.importorskip("safetensors.numpy")
    import chainrule.core as mx
    import chainrule.nn as nn

    model = nn.Linear(3, 2)
    model.save_weights(str(tmp_path / "w.safetensors"))
    theirs = st.load_file(str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(theirs["weight"], np.asarray(model.weight))
    np.testing.assert_array_equal(theirs["bias"], np.asarray(model.bias))
    st.save_file(
        {"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)},
        str(tmp_path / "theirs.safetensors"),
    )
    model.load_weights(str(tmp_path / "theirs.safetensors"))
    np.testing.assert_array_equal(np.asarray(model(mx.ones((1, 3)))), [[3.0, 3.0]])
