"""torch.save / torch.load: PyTorch's zip format both ways, and a reader that never runs code."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch
from chainrule.torch import serialization

DTYPES = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "uint16",
    "uint32",
    "uint64",
]


def _np(x):
    return np.asarray(x)


def _values(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, 4)) * 50
    if dtype == "bool":
        return raw > 0
    if dtype.startswith("uint"):
        return np.abs(raw).astype(dtype)
    if dtype == "bfloat16":
        return raw.astype(np.float32)
    if dtype == "complex64":
        return (raw + 1j * raw[::-1]).astype(np.complex64)
    return raw.astype(dtype)


def _chainrule(dtype: str):
    x = torch.from_numpy(_values(dtype))
    return x.astype(mx.bfloat16) if dtype == "bfloat16" else x


def _save_load(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)


# -- chainrule to chainrule ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(dtype):
    x = _chainrule(dtype)
    y = _save_load({"x": x})["x"]
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(_np(y).astype(np.complex128), _np(x).astype(np.complex128))


def test_round_trip_containers_and_scalars(tmp_path):
    obj = OrderedDict(
        w=torch.ones(2, 3),
        nested={"a": [1, 2.5, "s", None, True, (3, 4)], 7: b"\x00raw\xff", "big": 2**80},
        empty=torch.zeros(0, 5),
        scalar=torch.tensor(3.5),
        dtype=torch.float16,
        neg=-123456,
    )
    path = tmp_path / "obj.pt"
    torch.save(obj, path)
    out = torch.load(path)
    assert type(out) is OrderedDict and list(out) == list(obj)
    assert out["nested"] == obj["nested"]
    assert out["empty"].shape == (0, 5) and out["scalar"].shape == ()
    assert float(out["scalar"].item()) == 3.5
    assert out["dtype"] == torch.float16 and out["neg"] == -123456


def test_sizes_and_tensors_keep_their_classes():
    x = torch.ones(2, 3)
    out = _save_load({"size": x.size(), "x": x})
    assert type(out["size"]) is type(x.size()) and out["size"] == (2, 3)
    assert type(out["x"]) is type(x)


def test_real_torch_reads_our_sizes():
    torch_ref = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save([torch.ones(2, 3).size()], buf)
    buf.seek(0)
    (size,) = torch_ref.load(buf, weights_only=True)
    assert type(size) is torch_ref.Size and size == (2, 3)


class _Stream(io.RawIOBase):
    """A binary stream that cannot seek (a pipe, a socket)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._buf.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_streams_that_cannot_seek_both_ways():
    class Sink(io.RawIOBase):
        def __init__(self):
            self.data = b""

        def writable(self):
            return True

        def write(self, b):
            self.data += bytes(b)
            return len(b)

    sink = Sink()
    torch.save({"x": torch.arange(4)}, sink)
    out = torch.load(_Stream(sink.data))
    np.testing.assert_array_equal(_np(out["x"]), np.arange(4))
    with pytest.raises(TypeError, match="path or a binary file"):
        torch.load(12)


def test_requires_grad_is_kept():
    x = torch.ones(2, requires_grad=True)
    assert _save_load([x])[0].requires_grad
    assert not _save_load([torch.ones(2)])[0].requires_grad


def test_save_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="cannot save a numpy.ndarray"):
        torch.save({"a": np.ones(2)}, io.BytesIO())
    with pytest.raises(TypeError, match="cannot save a builtins.function"):
        torch.save([lambda: 0], io.BytesIO())
    with pytest.raises(TypeError, match=r"module Linear itself.*state_dict\(\)"):
        torch.save(torch.nn.Linear(2, 3), io.BytesIO())
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="contains itself"):
        torch.save(cycle, io.BytesIO())


def test_save_into_a_missing_folder_is_pytorchs_error(tmp_path):
    with pytest.raises(RuntimeError, match="Parent directory .*missing does not exist"):
        torch.save({}, tmp_path / "missing" / "m.pt")


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"a": torch.ones(2)}, path)
    with pytest.raises(TypeError):
        torch.save({"a": torch.zeros(2), "b": object()}, path)
    np.testing.assert_array_equal(_np(torch.load(path)["a"]), np.ones(2, np.float32))
    assert os.listdir(tmp_path) == ["m.pt"]


def test_layout_and_alignment():
    buf = io.BytesIO()
    torch.save({"a": torch.ones(3), "b": torch.arange(5)}, buf)
    zf = zipfile.ZipFile(buf)
    names = zf.namelist()
    for record in ("data.pkl", "version", "byteorder", "data/0", "data/1", ".format_version"):
        assert f"archive/{record}" in names
    raw = buf.getvalue()
    for info in zf.infolist():
        assert info.compress_type == zipfile.ZIP_STORED
        if "/data/" in info.filename and not info.filename.endswith("serialization_id"):
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 :][:4])
            start = info.header_offset + 30 + name_len + extra_len
            assert start % 64 == 0, info.filename


# -- with real PyTorch -----------------------------------------------------------------------


def _torch_dtype(torch_ref, name):
    return getattr(torch_ref, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_real_torch_reads_our_files(tmp_path, dtype):
    torch_ref = pytest.importorskip("torch")
    x = _chainrule(dtype)
    path = tmp_path / "x.pt"
    torch.save({"x": x, "meta": [1, "two", 3.0]}, path)
    out = torch_ref.load(path, weights_only=True)
    assert out["meta"] == [1, "two", 3.0]
    assert out["x"].dtype == _torch_dtype(torch_ref, dtype)
    want = _np(x).astype(np.float64) if dtype != "complex64" else _np(x)
    got = out["x"].to(torch_ref.float64 if dtype != "complex64" else torch_ref.complex64)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_we_read_real_torch_files(tmp_path, dtype):
    torch_ref = pytest.importorskip("torch")
    base = torch_ref.from_numpy(_values(dtype))
    if dtype == "bfloat16":
        base = base.to(torch_ref.bfloat16)
    path = tmp_path / "t.pt"
    torch_ref.save({"x": base, "view": base[1:, ::2], "t": base.t()}, path)
    out = torch.load(path)
    for key in ("x", "view", "t"):
        ref = {"x": base, "view": base[1:, ::2], "t": base.t()}[key]
        assert out[key].shape == tuple(ref.shape)
        assert str(out[key].dtype).split(".")[-1].replace("bool_", "bool") == dtype
        if dtype == "bfloat16":
            ref = ref.float()
        want = ref.numpy().astype(np.complex128 if dtype == "complex64" else np.float64)
        np.testing.assert_array_equal(_np(out[key]).astype(want.dtype), want)


def test_real_torch_objects_come_back(tmp_path):
    torch_ref = pytest.importorskip("torch")
    obj = {
        "size": torch_ref.Size([2, 3]),
        "od": OrderedDict(a=torch_ref.zeros(2)),
        "param": torch_ref.nn.Parameter(torch_ref.ones(3)),
        "dtype": torch_ref.bfloat16,
        "device": torch_ref.device("cpu"),
        "bytes": b"\x01\x02",
        "set": {1, 2},
        "nested": [(1, 2.0), {"k": None}],
    }
    path = tmp_path / "o.pt"
    torch_ref.save(obj, path)
    out = torch.load(path, map_location="cpu", weights_only=True)
    assert out["size"] == (2, 3) and type(out["size"]) is type(torch.ones(2, 3).size())
    assert type(out["od"]) is OrderedDict
    assert out["param"].requires_grad and out["param"].shape == (3,)
    assert out["dtype"] == torch.bfloat16
    assert str(out["device"]) == "cpu"
    assert out["bytes"] == b"\x01\x02" and out["set"] == {1, 2}
    assert out["nested"] == [(1, 2.0), {"k": None}]


def _two_layers(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 3)
            self.fc2 = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc2(self.fc1(x))

    return Net()


def test_model_state_dict_both_ways(tmp_path):
    torch_ref = pytest.importorskip("torch")
    torch_ref.manual_seed(0)
    ref = _two_layers(torch_ref.nn)
    path = tmp_path / "ref.pt"
    torch_ref.save(ref.state_dict(), path)
    ours = _two_layers(torch.nn)
    ours.load_state_dict(torch.load(path))
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    want = ref(torch_ref.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(_np(ours(torch.tensor(x))), want, rtol=1e-6, atol=1e-6)

    back = _two_layers(torch_ref.nn)
    path2 = tmp_path / "ours.pt"
    torch.save(ours.state_dict(), path2)
    back.load_state_dict(torch_ref.load(path2, weights_only=True))
    np.testing.assert_allclose(back(torch_ref.from_numpy(x)).detach().numpy(), want, rtol=1e-6)


# -- files that must be refused --------------------------------------------------------------


def _archive(pkl: bytes, storages: dict | None = None, compress=zipfile.ZIP_STORED) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", raw)
    buf.seek(0)
    buf.name = "model.pt"
    return buf


class _System:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


class _Exec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("weights_only", [True, False, None])
@pytest.mark.parametrize("kind", ["system", "eval", "exec"])
def test_reduce_payloads_are_refused_and_never_run(tmp_path, kind, weights_only, protocol):
    marker = tmp_path / "pwned"
    if kind == "system":
        payload = _System(f"touch {marker}")
        name = os.system.__module__ + ".system"
    elif kind == "eval":
        payload = _Eval(f"open({str(marker)!r}, 'w').close()")
        name = "builtins.eval" if protocol > 2 else "__builtin__.eval"
    else:
        payload = _Exec(f"open({str(marker)!r}, 'w').close()")
        name = "builtins.exec" if protocol > 2 else "__builtin__.exec"
    f = _archive(pickle.dumps({"w": payload}, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match="refused to load") as e:
        torch.load(f, weights_only=weights_only)
    assert f"'{name}'" in str(e.value) and "model.pt" in str(e.value)
    if weights_only is False:
        assert "never unpickles code" in str(e.value)
    assert not marker.exists()


def test_a_hand_written_os_system_global_is_refused_by_name(tmp_path):
    marker = tmp_path / "pwned"
    pkl = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}"))
    pkl += f"touch {marker}".encode() + b"\x85R."
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load 'os\.system' from model"):
        torch.load(_archive(pkl))
    assert not marker.exists()


def test_unknown_class_and_object_building_opcodes_are_refused():
    pkl = b"\x80\x02cmymodule\nEvil\n)R."
    with pytest.raises(pickle.UnpicklingError, match="'mymodule.Evil'"):
        torch.load(_archive(pkl))
    # BUILD (sets attributes): only a state dict's _metadata is allowed
    pkl = b"\x80\x02ccollections\nOrderedDict\n)R}X\x09\x00\x00\x00__class__Ns."
    with pytest.raises(pickle.UnpicklingError, match="BUILD"):
        torch.load(_archive(pkl[:-1] + b"b."))
    with pytest.raises(pickle.UnpicklingError, match="BUILD"):
        torch.load(_archive(b"\x80\x02]}b."))
    # NEWOBJ on an allowed class
    pkl = b"\x80\x02ccollections\nOrderedDict\n)\x81."
    with pytest.raises(pickle.UnpicklingError, match="NEWOBJ"):
        torch.load(_archive(pkl))
    # a storage class is not callable
    pkl = b"\x80\x02ctorch\nFloatStorage\n)R."
    with pytest.raises(pickle.UnpicklingError, match="FloatStorage"):
        torch.load(_archive(pkl))


def _tensor_pkl(numel: int, size: tuple, stride: tuple, offset: int = 0) -> bytes:
    w = serialization._Writer()
    w.glob("torch._utils", "_rebuild_tensor_v2")
    w.w(b"((")
    w.string("storage")
    w.glob("torch", "FloatStorage")
    w.string("0")
    w.string("cpu")
    w.integer(numel)
    w.w(b"tQ")
    w.integer(offset)
    w.save(size)
    w.save(stride)
    w.w(b"\x89")
    w.glob("collections", "OrderedDict")
    w.w(b")Rt" + b"R.")
    return b"\x80\x02" + w.out.getvalue()


class Config:
    pass


def test_safe_globals_are_recorded_but_never_build_objects():
    f = _archive(b"\x80\x02c" + Config.__module__.encode() + b"\nConfig\n)R.")
    with torch.serialization.safe_globals([Config]):
        assert Config in torch.serialization.get_safe_globals()
        with pytest.raises(pickle.UnpicklingError, match="add_safe_globals does not extend"):
            torch.load(f)
    assert Config not in torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([Config])
    torch.serialization.clear_safe_globals()
    assert torch.serialization.get_safe_globals() == []


def test_storage_sizes_offsets_and_strides_are_checked():
    raw = np.arange(6, dtype=np.float32).tobytes()
    ok = torch.load(_archive(_tensor_pkl(6, (2, 3), (3, 1)), {"0": raw}))
    np.testing.assert_array_equal(_np(ok), np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(pickle.UnpicklingError, match=r"declares 100 elements .* holds 24 bytes"):
        torch.load(_archive(_tensor_pkl(100, (100,), (1,)), {"0": raw}))
    with pytest.raises(pickle.UnpicklingError, match="declares 4611686018427387904 elements"):
        torch.load(_archive(_tensor_pkl(2**62, (2**62,), (1,)), {"0": raw}))
    with pytest.raises(pickle.UnpicklingError, match="reaches element"):
        torch.load(_archive(_tensor_pkl(6, (3, 3), (3, 1)), {"0": raw}))
    with pytest.raises(pickle.UnpicklingError, match="reaches element"):
        torch.load(_archive(_tensor_pkl(6, (2,), (1,), offset=5), {"0": raw}))
    with pytest.raises(pickle.UnpicklingError, match="does not hold"):
        torch.load(_archive(_tensor_pkl(6, (2, 3), (3, 1)), {}))


def test_storages_saved_on_another_device_need_map_location():
    raw = np.arange(6, dtype=np.float32).tobytes()
    pkl = _tensor_pkl(6, (6,), (1,)).replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    with pytest.raises(RuntimeError, match="on a CUDA device"):
        torch.load(_archive(pkl, {"0": raw}))
    for where in ("cpu", torch.device("cpu"), {"cuda:0": "cpu"}, lambda s, loc: s):
        out = torch.load(_archive(pkl, {"0": raw}), map_location=where)
        np.testing.assert_array_equal(_np(out), np.arange(6, dtype=np.float32))
    with pytest.raises(RuntimeError, match="CPU only"):
        torch.load(_archive(pkl, {"0": raw}), map_location="cuda")


def test_a_small_file_cannot_expand_into_a_memory_bomb():
    raw = np.arange(6, dtype=np.float32).tobytes()
    # stride 0: 2**40 elements over a 6-element storage
    with pytest.raises(pickle.UnpicklingError, match="expand to far more bytes"):
        torch.load(_archive(_tensor_pkl(6, (2**40,), (0,)), {"0": raw}))
    # one 256 KiB storage referenced 400 times (100 MiB of copies from a 20 KiB pickle)
    big = np.zeros(2**16, np.float32).tobytes()
    one = _tensor_pkl(2**16, (2**16,), (1,))[2:-1]
    pkl = b"\x80\x02]" + b"(" + one * 400 + b"e."
    with pytest.raises(pickle.UnpicklingError, match="expand to far more bytes"):
        torch.load(_archive(pkl, {"0": big}))
    # a shared storage used a few times is fine
    pkl = b"\x80\x02](" + _tensor_pkl(6, (6,), (1,))[2:-1] * 3 + b"e."
    assert len(torch.load(_archive(pkl, {"0": raw}))) == 3


def test_deeply_nested_tuples_are_refused_before_anything_hashes_them():
    # {((((...)))): None}: hashing a tuple nested a million deep would crash the interpreter
    pkl = b"\x80\x02})" + b"\x85" * 1_000_000 + b"Ns."
    with pytest.raises(pickle.UnpicklingError, match="nest more than 1000 levels"):
        torch.load(_archive(pkl))
    pkl = b"\x80\x02" + b"(" * 2000 + b"\x91" * 2000 + b"."  # nested frozensets
    with pytest.raises(pickle.UnpicklingError, match="nest more than 1000 levels"):
        torch.load(_archive(pkl))
    # through REDUCE: frozenset([frozenset([...])]) and {(((...))): 1} as OrderedDict's pairs
    fs = b"c__builtin__\nfrozenset\n"
    pkl = b"\x80\x02" + (fs + b"(") * 1200 + fs + b"]\x85R" + b"l\x85R" * 1200 + b"."
    with pytest.raises(pickle.UnpicklingError, match="nest more than 1000 levels"):
        torch.load(_archive(pkl))
    shallow = b"\x80\x02})" + b"\x85" * 50 + b"Ns."
    (key,) = torch.load(_archive(shallow))
    assert isinstance(key, tuple)
    # errors quote what they read only briefly
    nested = b"\x80\x02ctorch\nSize\n" + b"]" * 50 + b"\x85R."
    with pytest.raises(pickle.UnpicklingError) as e:
        torch.load(_archive(nested))
    assert len(str(e.value)) < 400


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(pickle.UnpicklingError, match=r"junk\.pt is not a PyTorch file"):
        torch.load(path)
    legacy = tmp_path / "old.pt"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"...")
    with pytest.raises(pickle.UnpicklingError, match=r"old\.pt is in PyTorch's legacy"):
        torch.load(legacy)
    with pytest.raises(pickle.UnpicklingError, match="compressed"):
        torch.load(_archive(b"\x80\x02N.", compress=zipfile.ZIP_DEFLATED))
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        torch.load(_archive(b"\x80\x02X\xff\xff\x00\x00ab"))
    with pytest.raises(pickle.UnpicklingError, match="without STOP"):
        torch.load(_archive(b"\x80\x02N"))
    with pytest.raises(FileNotFoundError):
        torch.load(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="pickle_module"):
        torch.load(path, pickle_module=pickle)
