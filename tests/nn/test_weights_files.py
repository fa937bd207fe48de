"""Module.save_weights / load_weights files: one atomic writer, modes, zip bombs, corruption."""

import json
import os
import stat
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.core.io as cio
import chainrule.nn as nn
import chainrule.nn.weights_files as weights_files
from chainrule.utils import tree_flatten

EXTS = [".npz", ".safetensors"]


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)


def _values(m):
    return {k: np.array(v) for k, v in tree_flatten(m.parameters())}  # a copy, from any device


def _unchanged(m, before):
    now = _values(m)
    return now.keys() == before.keys() and all(np.array_equal(now[k], before[k]) for k in now)


def _refused(path, match, model=None, strict=True):
    model = Small() if model is None else model
    before = _values(model)
    with pytest.raises(ValueError, match=match) as e:
        model.load_weights(str(path), strict=strict)
    assert str(path) in str(e.value)
    assert _unchanged(model, before)
    return str(e.value)


def _npy_header(shape, dtype="<f4"):
    d = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    text = repr(d).encode("latin1")
    pad = -(10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + pad + 1) + text + b" " * pad + b"\n"


# ------------------------------------------------------------------ the one writer


@pytest.mark.parametrize("ext", EXTS)
def test_save_weights_goes_through_core_io(tmp_path, monkeypatch, ext):
    calls = []
    real = cio.atomic_path

    def spy(path):
        calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(cio, "atomic_path", spy)
    flushed = []
    monkeypatch.setattr(cio, "fsync_dir", lambda d: flushed.append(str(d)))
    path = tmp_path / f"w{ext}"
    Small().save_weights(path)
    assert calls == [str(path)] and flushed == [str(tmp_path)]
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("ext", EXTS)
def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, ext):
    path = tmp_path / f"w{ext}"
    m = Small()
    m.save_weights(path)
    before = path.read_bytes()

    def fail(*a, **k):
        raise OSError("disk full (simulated)")

    if ext == ".npz":
        monkeypatch.setattr(np.lib.format, "write_array", fail)
    else:
        monkeypatch.setattr(cio, "_write_tensor", fail)
    with pytest.raises(OSError, match="simulated"):
        Small().save_weights(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("ext", EXTS)
@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_saved_weights_mode_follows_the_umask(tmp_path, ext, umask, expected):
    old = os.umask(umask)
    try:
        Small().save_weights(tmp_path / f"w{ext}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / f"w{ext}").st_mode) == expected


@pytest.mark.parametrize("ext", EXTS)
def test_save_weights_removes_stale_temporaries_only(tmp_path, ext):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a finished process: its pid is no longer running
    stale = tmp_path / f".w{ext}.{dead.pid}-0123abcd.tmp{ext}"
    live = tmp_path / f".w{ext}.{os.getpid()}-0123abcd.tmp{ext}"
    other = tmp_path / "notes.txt"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    Small().save_weights(tmp_path / f"w{ext}")
    assert sorted(os.listdir(tmp_path)) == sorted([f"w{ext}", live.name, other.name])


def test_safetensors_files_interoperate_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    m = Small()
    m.save_weights(tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert _unchanged(m, theirs)
    st.save_file(_values(Small()), str(tmp_path / "theirs.safetensors"))
    m.load_weights(str(tmp_path / "theirs.safetensors"))
    assert _unchanged(m, st.load_file(str(tmp_path / "theirs.safetensors")))


def test_npz_from_numpy_compressed_fortran_and_big_endian_loads(tmp_path):
    m = Small()
    values = {k: np.random.default_rng(0).normal(size=v.shape) for k, v in _values(m).items()}
    values["fc1.weight"] = np.asfortranarray(values["fc1.weight"])
    values["fc2.weight"] = values["fc2.weight"].astype(">f8")
    np.savez_compressed(tmp_path / "w.npz", **values)
    m.load_weights(str(tmp_path / "w.npz"))
    assert _unchanged(m, {k: np.asarray(v, "<f8") for k, v in values.items()})


# ------------------------------------------------------------------ zip bombs and lying headers


def _bomb(path, names_shapes):
    """An .npz whose members are zeros of the given shapes, deflated (about 1000:1)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, shape in names_shapes:
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                f.write(_npy_header(shape))
                left = int(np.prod(shape)) * 4
                while left:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    path = tmp_path / "bomb.npz"
    big = (8192, 2048)  # 64 MiB of float32 zeros in ~65 KB on disk
    _bomb(
        path, [("fc1.weight", big), ("fc1.bias", (4,)), ("fc2.weight", (2, 4)), ("fc2.bias", (2,))]
    )
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        message = _refused(path, r"fc1\.weight")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # nothing near the 64 MiB the member declares
    assert "(8192, 2048)" in message and "before reading any data" in message

    # names the model lacks are refused before decompressing too
    _bomb(path, [("huge", big)])
    tracemalloc.start()
    try:
        _refused(path, r"not in the model: huge")
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


def test_member_whose_header_disagrees_with_its_size_is_refused(tmp_path):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        # claims 1000 x 1000 float32 but holds 16 bytes of data
        zf.writestr("fc1.weight.npy", _npy_header((1000, 1000)) + bytes(16))
    message = _refused(path, r"member 'fc1\.weight\.npy'.*declares shape \(1000, 1000\)")
    assert "4000000 bytes of data" in message and "holds 16" in message


def test_implausible_compression_ratio_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    _bomb(path, [(k, v.shape) for k, v in _values(Small()).items()])
    Small().load_weights(str(path))  # zeros compress well, but are honest
    monkeypatch.setattr(weights_files, "_MAX_NPZ_RATIO", 2)
    _refused(path, r"member 'fc1\.weight\.npy'.*more than 2 times as many")


def test_overlapping_members_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    Small().save_weights(path)
    real = os.path.getsize
    monkeypatch.setattr(weights_files.os.path, "getsize", lambda p: real(p) // 4)
    _refused(path, "overlapping members")


def test_object_members_and_non_npz_files_are_refused(tmp_path):
    path = tmp_path / "w.npz"
    values = _values(Small())
    values["fc1.bias"] = np.array([{"a": 1}] * 4, dtype=object)
    np.savez(path, **values)
    _refused(path, r"member 'fc1\.bias\.npy'.*Python objects")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    os.replace(tmp_path / "plain.npy", path)
    _refused(path, "not a valid .npz archive")
    path.write_bytes(b"PK\x03\x04 but then nothing")
    _refused(path, "not a valid .npz archive")


@pytest.mark.parametrize("rows", [4, 256])  # corrupt within the header's block, or after it
def test_corrupt_npz_data_is_a_value_error(tmp_path, rows):
    m = Small()
    m.fc1.weight = mx.zeros((rows, 3 * rows))
    path = tmp_path / "w.npz"
    values = {k: np.random.default_rng(1).normal(size=v.shape) for k, v in _values(m).items()}
    np.savez_compressed(path, **values)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("fc1.weight.npy")
    data = bytearray(path.read_bytes())
    local = 30 + len(info.filename) + struct.unpack("<H", data[info.header_offset + 28 :][:2])[0]
    end = info.header_offset + local + info.compress_size
    data[end - 12 : end] = bytes(12)  # the end of its compressed data, past the .npy header
    path.write_bytes(bytes(data))
    _refused(path, r"member 'fc1\.weight\.npy' of the .npz archive.*(CRC|corrupt|invalid)", m)


def test_non_strict_reads_only_the_models_names(tmp_path):
    path = tmp_path / "w.npz"
    _bomb(path, [("fc1.bias", (4,)), ("elsewhere", (8192, 2048))])
    m = Small()
    tracemalloc.start()
    try:
        m.load_weights(str(path), strict=False)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()
    assert np.all(m.fc1.bias.numpy() == 0)


# ------------------------------------------------------------------ corrupt safetensors


def _safetensors(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _good_header(shapes=None):
    header, offset = {}, 0
    for name, shape in (shapes or {k: v.shape for k, v in _values(Small()).items()}).items():
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    return header, offset


def test_corrupt_safetensors_files_give_clear_value_errors(tmp_path):
    good = tmp_path / "good.safetensors"
    Small().save_weights(good)
    data = good.read_bytes()
    header, size = _good_header()
    cases = {
        "empty": (b"", "only 0 bytes"),
        "short": (b"\x01\x02\x03", "only 3 bytes"),
        "truncated": (data[:-5], "beyond the .* bytes of data in the file \\(truncated"),
        "garbage": (bytes(range(256)) * 4, "header length .* does not fit"),
        "header_too_long": (struct.pack("<Q", 1000) + b"{}", "header length 1000 does not fit"),
        "bad_json": (struct.pack("<Q", 6) + b"{nope}", "the header is not JSON"),
        "not_utf8": (struct.pack("<Q", 4) + b"\xff\xfe{}", "the header is not JSON"),
        "not_object": (_safetensors([1, 2]), "JSON list, not an object"),
        "deep": (struct.pack("<Q", 40000) + b"[" * 20000 + b"]" * 20000, "nested deeper than 16"),
        "unknown_dtype": (
            _safetensors({"fc1.weight": {**header["fc1.weight"], "dtype": "BF16"}}, bytes(48)),
            "'fc1.weight' has the unknown or unsupported dtype 'BF16'",
        ),
        "missing_offsets": (
            _safetensors({"fc1.weight": {"dtype": "F32", "shape": [4, 3]}}),
            "bad entry for tensor 'fc1.weight'",
        ),
        "negative_shape": (
            _safetensors({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
            "bad entry for tensor 'x'",
        ),
        "offsets_out_of_range": (
            _safetensors(header, bytes(size - 8)),
            "data_offsets \\[.*\\] beyond the",
        ),
        "offsets_not_the_size": (
            _safetensors({"x": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 8]}}),
            r"needs 4000000000000 bytes but its data_offsets \[0, 8\] span 8",
        ),
        "overlap": (
            _safetensors(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                bytes(12),
            ),
            "'b' overlaps",
        ),
        "gap": (
            _safetensors({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)),
            "4 unused bytes before tensor 'a'",
        ),
        "trailing": (data + b"xyz", "3 unexpected bytes after the last tensor"),
        "bad_metadata": (_safetensors({"__metadata__": {"a": 1}}), "'__metadata__' must map"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        message = _refused(path, match)
        assert "not a valid .safetensors weights file" in message, name


def test_safetensors_shapes_are_checked_before_reading_data(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    bigger = Small()
    bigger.fc2 = nn.Linear(4, 5)
    bigger.save_weights(path)

    def no_reading(*a):
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(cio, "_read_into", no_reading)
    message = _refused(path, r"expected shape \(2, 4\) but received shape \(5, 4\)")
    assert "fc2.weight" in message and "before reading any data" in message
    monkeypatch.undo()
    m = Small()
    m.load_weights(str(path), strict=False)  # MLX: without strict, shapes are not checked
    assert m.fc2.weight.shape == (5, 4)


def test_weights_keep_dtypes_and_zero_sized_arrays_round_trip(tmp_path):
    for ext in EXTS:
        m = Small()
        m.fc1.weight = m.fc1.weight.astype(mx.float16)
        m.count = mx.array(np.int64(7))
        m.empty = mx.zeros((0, 3))
        path = tmp_path / f"w{ext}"
        m.save_weights(path)
        other = Small()
        other.count = mx.array(np.int64(0))
        other.empty = mx.ones((0, 3))
        other.load_weights(str(path))
        assert other.fc1.weight.dtype == mx.float16 and other.count.item() == 7
        assert _unchanged(other, _values(m))
