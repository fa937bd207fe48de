"""mx.export_function / mx.import_function / mx.exporter: round trips and refused files."""

from __future__ import annotations

import json

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core import export as ex
from chainrule.core.io import FileFormatError, read_safetensors, write_safetensors


def _close(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(mx.allclose(a, b, atol=1e-5))


def test_round_trip_equals_function(tmp_path):
    path = str(tmp_path / "f.mlxfn")
    w = mx.random.normal(shape=(5, 3))

    def fun(x, y):
        h = mx.tanh(x @ w) * y.sum(axis=-1, keepdims=True)
        return mx.softmax(h, axis=-1), h.T[0]

    x, y = mx.random.normal(shape=(4, 5)), mx.random.normal(shape=(4, 2))
    mx.export_function(path, fun, x, y)
    imported = mx.import_function(path)
    for _ in range(3):  # new inputs of the traced shape
        x, y = mx.random.normal(shape=(4, 5)), mx.random.normal(shape=(4, 2))
        got = imported(x, y)
        assert isinstance(got, tuple) and len(got) == 2
        for g, e in zip(got, fun(x, y)):
            assert _close(g, e)
    with pytest.raises(ValueError):
        imported(mx.zeros((3, 5)), y)  # not the traced shape


def test_kwargs_multi_trace_and_metadata(tmp_path):
    path = str(tmp_path / "f.mlxfn")

    def fun(x, z=None):
        return x if z is None else x - z

    with mx.exporter(path, fun, metadata="cfg") as exp:
        exp(mx.array([1, 2, 3]))
        exp(mx.array([1, 2, 3]), z=mx.array([1, 1, 1]))
    with pytest.raises(RuntimeError):
        exp(mx.array([1.0]))
    imported, meta = mx.import_function(path, return_metadata=True)
    assert meta == "cfg"
    assert imported(mx.array([4, 5, 6]))[0].tolist() == [4, 5, 6]
    assert imported(mx.array([4, 5, 6]), z=mx.array([1, 2, 3]))[0].tolist() == [3, 3, 3]
    assert imported((mx.array([4, 5, 6]),), {"z": mx.array([3, 3, 3])})[0].tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        imported(mx.array([4, 5, 6]), y=mx.array([1, 2, 3]))


def test_shapeless_conv_and_matmul(tmp_path):
    path = str(tmp_path / "f.mlxfn")
    conv = nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    w = mx.random.normal(shape=(4, 6))

    def fun(x):
        return conv(x) @ w

    mx.export_function(path, fun, mx.random.normal(shape=(2, 8, 8, 3)), shapeless=True)
    imported = mx.import_function(path)
    for shape in [(2, 8, 8, 3), (1, 13, 9, 3)]:
        x = mx.random.normal(shape=shape)
        assert _close(imported(x)[0], fun(x))


def test_constants_stored_once_and_random_is_constant(tmp_path):
    path = str(tmp_path / "f.mlxfn")
    big = mx.ones((64, 256))
    noise = mx.random.uniform(shape=(3,))

    def fun(*args):
        return big + sum(args)

    with mx.exporter(path, fun) as exp:
        for i in range(4):
            exp(*[mx.array(1.0)] * i)
    tensors, _ = read_safetensors(path, dtypes=ex._TENSOR_CODES)
    assert sum(t.nbytes for t in tensors.values()) < big.nbytes + 64
    imported = mx.import_function(path)
    assert imported(mx.array(2.0), mx.array(3.0))[0].tolist()[0][0] == 6.0

    mx.export_function(path, lambda: mx.random.uniform(shape=(3,)) + noise)
    a, b = mx.import_function(path)(), mx.import_function(path)()
    assert mx.array_equal(a[0], b[0])  # a draw made while tracing is a constant


def test_callback_reports_mlx_primitives():
    seen = []

    def cb(args):
        if args["type"] == "primitive":
            seen.append((args["name"], args["arguments"]))

    mx.export_function(
        cb, lambda x, y: mx.log(mx.abs(x - y)).astype(mx.int32), mx.array(1.0), y=mx.array(2.0)
    )
    assert seen == [("Subtract", []), ("Abs", []), ("Log", [2]), ("AsType", [mx.int32])]
    with pytest.raises(ValueError):
        mx.export_function(cb, lambda x: x, mx.array(1.0), metadata="m")


def test_invalid_inputs_and_outputs(tmp_path):
    path = str(tmp_path / "f.mlxfn")
    with pytest.raises(ValueError):
        mx.export_function(path, lambda x: x, "hi")
    with pytest.raises(ValueError):
        mx.export_function(path, lambda: (mx.zeros((2,)), 1))
    with pytest.raises(TypeError):
        mx.export_function(path, lambda x: x, mx.array(1.0), metadata={"a": 1})
    # a value read into Python is a guard: the import is right for it, or refuses the input
    mx.export_function(path, lambda x: mx.array(x.item() + 1), mx.array(1.0))
    imported = mx.import_function(path)
    assert imported(mx.array(1.0))[0].item() == 2.0
    with pytest.raises(ValueError, match="data-dependent"):
        imported(mx.array(5.0))


def _tamper(path, edit) -> None:
    tensors, meta = read_safetensors(path, dtypes=ex._TENSOR_CODES)
    doc = json.loads(meta["chainrule.export"])
    edit(doc)
    meta["chainrule.export"] = json.dumps(doc)
    write_safetensors(path, tensors, meta, dtypes=ex._TENSOR_CODES)


@pytest.mark.parametrize(
    "fn",
    [
        {"np": "os.system"},
        {"np": "numpy.load"},
        {"np": "numpy._core"},
        {"kernel": "chainrule.core.io.write_bytes"},
        {"kernel": "os.system"},
        {"method": "__class__"},
        {"method": "tofile"},
        {"ufunc": "add", "method": "__call__"},
        {"py": "eval"},
        {"export": "exec"},
        "__import__('os').system('echo pwned')",
    ],
)
def test_malicious_operation_is_refused(tmp_path, fn):
    path = str(tmp_path / "f.mlxfn")
    mx.export_function(path, lambda x: mx.sin(x), mx.array([1.0, 2.0]))

    def edit(doc):
        doc["traces"][0]["steps"][0]["fn"] = fn

    _tamper(path, edit)
    with pytest.raises(FileFormatError, match="refused"):
        mx.import_function(path)


def test_malformed_programs_are_refused(tmp_path):
    path = str(tmp_path / "f.mlxfn")
    mx.export_function(path, lambda x: x * 2.0 + 1.0, mx.array([1.0]))

    def bad_ref(doc):
        doc["traces"][0]["steps"][0]["args"] = {"tuple": [{"ref": 999}, 2.0]}

    def code_arg(doc):
        doc["traces"][0]["steps"][0]["args"] = {"tuple": [{"pickle": "cos\nsystem\n"}]}

    def bad_const(doc):
        doc["traces"][0]["steps"][0]["args"] = {"tuple": [{"const": "../../etc/passwd"}]}

    for edit in (bad_ref, code_arg, bad_const):
        mx.export_function(path, lambda x: x * 2.0 + 1.0, mx.array([1.0]))
        _tamper(path, edit)
        with pytest.raises(FileFormatError, match="refused"):
            mx.import_function(path)
    with open(path, "wb") as f:
        f.write(b"\x80\x04not a safetensors file")
    with pytest.raises(FileFormatError):
        mx.import_function(path)
    write_safetensors(path, {"a": np.zeros(2, np.float32)}, {"x": "y"})
    with pytest.raises(FileFormatError, match="no chainrule.export"):
        mx.import_function(path)
