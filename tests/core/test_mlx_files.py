"""``mx.save`` / ``mx.load`` / ``mx.savez`` / ``mx.save_safetensors`` / ``mx.save_gguf``: MLX's
file functions, their formats read by NumPy and back, and loading that never trusts a file."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core.io import FileFormatError

DTYPES = ["uint8", "int16", "int64", "uint64", "float16", "float32", "float64", "complex64"]


def _eq(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("dt", DTYPES)
def test_npy_round_trips_with_numpy_both_ways(tmp_path, dt):
    x = (np.arange(24).reshape(2, 3, 4) % 7).astype(dt)
    mx.save(tmp_path / "a", mx.array(x, dtype=getattr(mx, dt)))  # ".npy" is appended, as MLX
    assert _eq(np.load(tmp_path / "a.npy"), x)
    assert _eq(mx.load(str(tmp_path / "a.npy")), x)
    np.save(tmp_path / "b.npy", x)
    assert _eq(mx.load(tmp_path / "b.npy"), x)


def test_npy_file_objects_fortran_order_and_views(tmp_path):
    x = np.asfortranarray(np.arange(12.0, dtype=np.float32).reshape(3, 4))
    np.save(tmp_path / "f.npy", x)
    with open(tmp_path / "f.npy", "rb") as f:
        assert _eq(mx.load(f), x)
    buf = io.BytesIO()
    mx.save(buf, mx.broadcast_to(mx.array([1, 2]), (3, 2)))
    buf.seek(0)
    assert _eq(mx.load(buf, format="npy"), np.array([[1, 2]] * 3, np.int32))
    big_endian = np.arange(5, dtype=">i4")
    np.save(tmp_path / "be.npy", big_endian)
    assert mx.load(tmp_path / "be.npy").tolist() == [0, 1, 2, 3, 4]


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy.*Python objects"):
        mx.load(path)
    npz = tmp_path / "obj.npz"
    np.savez(npz, ok=np.ones(2), bad=np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match="obj.npz.*'bad'.*Python objects"):
        mx.load(npz)
    raw = tmp_path / "raw.npy"
    raw.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="raw.npy"):
        mx.load(raw)


def test_truncated_and_lying_npy_headers_are_refused_before_allocating(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.arange(16, dtype=np.float32))
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 8)
    with pytest.raises(ValueError, match="t.npy.*truncated"):
        mx.load(path)
    # a header that declares an exabyte: refused from the header alone
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**20)}
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    with pytest.raises(ValueError, match="huge.npy"):
        mx.load(tmp_path / "huge.npy")


def test_complex128_is_refused_as_mlx_has_none(tmp_path):
    np.save(tmp_path / "c.npy", np.ones(3, np.complex128))
    with pytest.raises(ValueError, match="complex128"):
        mx.load(tmp_path / "c.npy")


@pytest.mark.parametrize("compressed", [False, True])
def test_savez_names_like_numpy(tmp_path, compressed):
    save = mx.savez_compressed if compressed else mx.savez
    a, b = mx.arange(6).reshape(2, 3), mx.zeros((0, 3))
    save(tmp_path / "z", a, b, w=mx.array([1.5, 2.5]))
    with np.load(tmp_path / "z.npz") as z:
        assert sorted(z.files) == ["arr_0", "arr_1", "w"]
        assert _eq(z["arr_0"], np.asarray(a)) and z["arr_1"].shape == (0, 3)
    with zipfile.ZipFile(tmp_path / "z.npz") as z:
        kinds = {i.compress_type for i in z.infolist()}
    assert kinds == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    back = mx.load(tmp_path / "z.npz")
    assert _eq(back["arr_0"], np.asarray(a)) and back["w"].tolist() == [1.5, 2.5]
    with pytest.raises(ValueError, match="arr_0"):
        save(tmp_path / "clash", a, arr_0=a)


def test_npz_from_a_file_object_and_a_lying_member(tmp_path):
    buf = io.BytesIO()
    mx.savez(buf, x=mx.ones((2, 2)))
    buf.seek(0)
    assert mx.load(buf, format="npz")["x"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    path = tmp_path / "lie.npz"
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f4", "fortran_order": False, "shape": (2**30,)}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", member.getvalue() + b"\0" * 16)
    with pytest.raises(ValueError, match="lie.npz.*'x'"):
        mx.load(path)


def test_load_format_errors(tmp_path):
    mx.save(tmp_path / "a.npy", mx.ones(2))
    with pytest.raises(ValueError, match="metadata"):
        mx.load(tmp_path / "a.npy", return_metadata=True)
    with pytest.raises(ValueError, match="Unknown file format"):
        mx.load(tmp_path / "a.npy", format="h5")
    with pytest.raises(ValueError, match="extension"):
        mx.load(tmp_path / "noext")
    with pytest.raises(ValueError, match="format="):
        mx.load(io.BytesIO(b""))


def test_safetensors_metadata_dtypes_and_file_objects(tmp_path):
    arrays = {
        "c": mx.array([1 + 2j, 3 - 1j], dtype=mx.complex64),
        "t": mx.arange(4).reshape(2, 2).T,  # column-major view
        "e": mx.zeros((0, 3)),
        "b": mx.array([True, False]),
    }
    mx.save_safetensors(tmp_path / "w", arrays, {"format": "mlx"})
    back, meta = mx.load(tmp_path / "w.safetensors", return_metadata=True)
    assert meta == {"format": "mlx"}
    for k, v in arrays.items():
        assert _eq(back[k], np.asarray(v))
    with open(tmp_path / "f.safetensors", "wb") as f:
        mx.save_safetensors(f, {"x": mx.ones(3)})
    with open(tmp_path / "f.safetensors", "rb") as f:
        assert mx.load(f)["x"].tolist() == [1.0, 1.0, 1.0]
    assert mx.load(tmp_path / "f.safetensors", return_metadata=True)[1] == {}
    with pytest.raises(ValueError, match="Metadata"):
        mx.save_safetensors(tmp_path / "m", {"x": mx.ones(1)}, {"n": 0})


@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_safetensors_fp8_and_bf16_codes_load(tmp_path):
    # F8_E4M3 loads as its raw uint8 bytes (as MLX); BF16 as bfloat16 values
    header = {
        "f8": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]},
        "bf": {"dtype": "BF16", "shape": [2], "data_offsets": [2, 6]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    bf = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype("<u2")
    path = tmp_path / "codes.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\x7e\x38" + bf.tobytes())
    out = mx.load(path)
    assert out["f8"].dtype == mx.uint8 and out["f8"].tolist() == [0x7E, 0x38]
    assert out["bf"].astype(mx.float32).tolist() == [1.5, -2.0]


def test_safetensors_lies_are_refused(tmp_path):
    raw = json.dumps({"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}})
    path = tmp_path / "lie.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw.encode() + b"\0" * 8)
    with pytest.raises(FileFormatError, match="lie.safetensors"):
        mx.load(path)


def test_gguf_round_trip_tensors_and_metadata(tmp_path):
    arrays = {
        "f32": mx.arange(24, dtype=mx.float32).reshape(2, 3, 4),
        "f16": mx.array([0.5, -1.25], dtype=mx.float16),
        "i8": mx.array([[1, -2], [3, 4]], dtype=mx.int8).T,
        "i32": mx.ones((1, 1, 1, 1, 2), dtype=mx.int32),
    }
    meta = {
        "name": "tiny",
        "tags": ["a", "bc"],
        "n": mx.array(7, dtype=mx.uint16),
        "v": mx.array([1.5, 2.5]),
        "flag": mx.array(True),
        "empty": "",
    }
    mx.save_gguf(tmp_path / "m", arrays, meta)
    back, got = mx.load(tmp_path / "m.gguf", return_metadata=True)
    for k, v in arrays.items():
        assert _eq(back[k], np.asarray(v))
    assert got["name"] == "tiny" and got["tags"] == ["a", "bc"] and got["empty"] == ""
    assert got["n"].dtype == mx.uint16 and got["n"].item() == 7
    assert got["v"].dtype == mx.float32 and got["v"].tolist() == [1.5, 2.5]
    assert got["flag"].dtype == mx.bool_ and got["flag"].item() is True
    assert set(got) == set(meta)


def test_gguf_refuses_what_mlx_refuses(tmp_path):
    with pytest.raises(ValueError):
        mx.save_gguf(tmp_path / "a", {"x": mx.ones(2, dtype=mx.uint8)})
    for bad in [mx.array(1.0, mx.float16), mx.array(1 + 1j), mx.ones((2, 2)), mx.zeros((0,))]:
        with pytest.raises(ValueError):
            mx.save_gguf(tmp_path / "a", {"x": mx.ones(2)}, {"m": bad})
    with pytest.raises(ValueError):
        mx.save_gguf(io.BytesIO(), {"x": mx.ones(2)})


def _gguf_with_tensor(path, name, ggml_type, dims, data, kv=b"", n_kv=0):
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, n_kv) + kv
    raw = name.encode()
    head += struct.pack("<Q", len(raw)) + raw + struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
    head += struct.pack("<IQ", ggml_type, 0)
    head += b"\0" * (-len(head) % 32)
    path.write_bytes(head + data)


def _dequantize(w, scales, biases, bits):
    w = np.asarray(w).astype(np.uint32)
    per = 32 // bits
    q = (w[..., None] >> (bits * np.arange(per, dtype=np.uint32))) & ((1 << bits) - 1)
    q = q.reshape(w.shape[0], -1, 32).astype(np.float32)
    s = np.asarray(scales).astype(np.float32)[..., None]
    b = np.asarray(biases).astype(np.float32)[..., None]
    return (q * s + b).reshape(w.shape[0], -1)


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0"])
def test_gguf_quantized_tensors_load_as_mlx_triplets(tmp_path, qtype):
    rows, cols = 2, 64
    nb = rows * cols // 32
    rng = np.random.default_rng(0)
    d = np.full((nb, 1), 0.5, np.float16)
    m = np.full((nb, 1), -1.25, np.float16)
    q4 = rng.integers(0, 16, (nb, 32)).astype(np.uint8)
    q8 = rng.integers(-128, 128, (nb, 32)).astype(np.int8)
    nibbles = (q4[:, :16] | (q4[:, 16:] << 4)).astype(np.uint8)
    type_id, bits, blocks, expected = {
        "Q4_0": (2, 4, [d.view(np.uint8), nibbles], 0.5 * (q4 - 8.0)),
        "Q4_1": (3, 4, [d.view(np.uint8), m.view(np.uint8), nibbles], 0.5 * q4 - 1.25),
        "Q8_0": (8, 8, [d.view(np.uint8), q8.view(np.uint8)], 0.5 * q8.astype(np.float32)),
    }[qtype]
    path = tmp_path / "q.gguf"
    _gguf_with_tensor(
        path, "blk.weight", type_id, (cols, rows), np.concatenate(blocks, 1).tobytes()
    )
    out = mx.load(path)
    assert sorted(out) == ["blk.biases", "blk.scales", "blk.weight"]
    assert out["blk.weight"].dtype == mx.uint32 and out["blk.scales"].shape == (rows, cols // 32)
    got = _dequantize(out["blk.weight"], out["blk.scales"], out["blk.biases"], bits)
    assert np.array_equal(got, expected.reshape(rows, cols))


def test_gguf_lies_are_refused(tmp_path):
    path = tmp_path / "short.gguf"
    _gguf_with_tensor(path, "x", 0, (1000,), b"\0" * 16)  # 4000 bytes declared
    with pytest.raises(FileFormatError, match="short.gguf.*past the end"):
        mx.load(path)
    # a metadata array claiming 2**60 strings in a tiny file: refused at once
    kv = struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**60)
    _gguf_with_tensor(tmp_path / "kv.gguf", "x", 0, (1,), b"\0" * 4, kv, 1)
    with pytest.raises(FileFormatError, match="kv.gguf"):
        mx.load(tmp_path / "kv.gguf")
    (tmp_path / "magic.gguf").write_bytes(b"GGML" + b"\0" * 60)
    with pytest.raises(FileFormatError, match="magic.gguf"):
        mx.load(tmp_path / "magic.gguf")


def test_gguf_other_block_types_dequantize_with_the_gguf_package(tmp_path):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import quantize

    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    qtype = gguf.GGMLQuantizationType.Q5_0
    try:
        raw = quantize(x, qtype)
    except NotImplementedError:  # pragma: no cover - depends on the package's version
        pytest.skip("this gguf version cannot quantize Q5_0")
    path = tmp_path / "q5.gguf"
    _gguf_with_tensor(path, "w", int(qtype), (32, 2), raw.tobytes())
    out = mx.load(path)["w"]
    assert out.dtype == mx.float16 and out.shape == (2, 32)
    assert np.allclose(np.asarray(out, dtype=np.float32), x, atol=0.05)


def test_written_files_are_atomic(tmp_path, monkeypatch):
    from chainrule.core import io as cio

    mx.save_safetensors(tmp_path / "w.safetensors", {"x": mx.ones(2)})
    before = (tmp_path / "w.safetensors").read_bytes()

    def fail(f, data):
        raise OSError("disk full")

    monkeypatch.setattr(cio, "_write_tensor", fail)
    with pytest.raises(OSError):
        mx.save_safetensors(tmp_path / "w.safetensors", {"x": mx.zeros(5)})
    with pytest.raises(OSError):
        mx.save_gguf(tmp_path / "g.gguf", {"x": mx.zeros(5)})
    assert (tmp_path / "w.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_bfloat16_npy_is_v2_as_mlx_writes_it(tmp_path):
    bits = (np.array([1.5, -2.25], np.float32).view(np.uint32) >> 16).astype("<u2")
    np.save(tmp_path / "v2.npy", bits.view("V2"))
    out = mx.load(tmp_path / "v2.npy")
    assert out.dtype == mx.bfloat16 and out.astype(mx.float32).tolist() == [1.5, -2.25]
    x = mx.array([0.5, 3.0], dtype=mx.bfloat16)
    mx.save(tmp_path / "b.npy", x)
    back = mx.load(tmp_path / "b.npy")
    assert back.dtype == mx.bfloat16 and back.astype(mx.float32).tolist() == [0.5, 3.0]
