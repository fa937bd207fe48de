"""ONNX export: the file passes onnx.checker and onnxruntime gives chainrule's outputs."""

from __future__ import annotations

import io

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as cnn
import chainrule.torch as torch
from chainrule.torch.onnx import OnnxExportError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(model, args, **kw):
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, **kw)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(buf.getvalue()), proto


def _eager(model, *xs):
    if hasattr(model, "eval"):
        model.eval()
    with mx.no_grad():
        out = model(*xs)
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def _compare(sess, model, xs, names=None):
    names = names or [i.name for i in sess.get_inputs()]
    got = sess.run(None, {n: np.asarray(x) for n, x in zip(names, xs)})
    want = _eager(model, *xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(w).max() > 0  # a real output, not zeros
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_mlp_with_dynamic_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.GELU(),
        torch.nn.Dropout(0.5), torch.nn.Linear(16, 3), torch.nn.LogSoftmax(dim=-1),
    )  # fmt: skip
    x = torch.randn(2, 4)
    sess, proto = _session(
        model,
        (x,),
        input_names=["x"],
        output_names=["logp"],
        dynamic_axes={"x": {0: "batch"}, "logp": {0: "batch"}},
    )
    assert [i.name for i in proto.graph.input] == ["x"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.training  # the export ran in eval mode and restored training mode
    # weights are initializers named as in the state_dict
    assert {"0.weight", "0.bias", "5.weight"} <= {t.name for t in proto.graph.initializer}
    for n in (2, 7, 1):
        _compare(sess, model, [torch.randn(n, 4)])


def test_fixed_batch_refuses_another_batch_size():
    model = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    sess, proto = _session(model, x)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [4, 3]
    _compare(sess, model, [x])
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        sess.run(None, {"input": np.zeros((5, 3), np.float32)})


def test_cnn_nchw_with_batch_norm_and_pooling(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=4),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4, 5),
    )  # fmt: skip
    bn = model[1]
    bn.running_mean = torch.randn(8) * 0.1
    bn.running_var = torch.rand(8) + 0.5
    path = tmp_path / "cnn.onnx"
    torch.onnx.export(model, (torch.randn(2, 3, 8, 8),), str(path), dynamic_axes={"input": [0]})
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert "1.running_mean" in {t.name for t in proto.graph.initializer}
    sess = ort.InferenceSession(str(path))
    for n in (2, 3):
        _compare(sess, model, [torch.randn(n, 3, 8, 8)])


def test_lstm_with_dynamic_batch():
    mx.random.seed(0)
    lstm = cnn.LSTM(4, 6)
    sess, _ = _session(lstm, mx.random.normal((2, 5, 4)), dynamic_axes={"input": {0: "N"}})
    assert [o.name for o in sess.get_outputs()] == ["output_0", "output_1"]  # hidden, cell
    for n in (2, 4):
        _compare(sess, lstm, [mx.random.normal((n, 5, 4))])


def test_transformer_encoder_with_dynamic_batch_and_length():
    mx.random.seed(0)
    enc = cnn.TransformerEncoder(2, 16, 4, mlp_dims=32, activation=cnn.gelu)
    enc.eval()
    fn = lambda x: enc(x, None)  # noqa: E731
    sess, _ = _session(fn, mx.random.normal((2, 6, 16)), dynamic_axes={"input": {0: "b", 1: "t"}})
    for shape in ((2, 6, 16), (3, 4, 16), (1, 9, 16)):
        _compare(sess, fn, [mx.random.normal(shape)])


def test_two_inputs_and_opset_13():
    torch.manual_seed(2)
    lin = torch.nn.Linear(3, 3)

    def fn(a, b):
        return torch.softmax(lin(a) * b, dim=1).sum(dim=0), torch.amax(torch.tanh(a), dim=1)

    sess, proto = _session(fn, (torch.randn(2, 3), torch.randn(2, 3)), opset_version=13)
    assert proto.opset_import[0].version == 13
    assert [i.name for i in proto.graph.input] == ["input_0", "input_1"]
    _compare(sess, fn, [torch.randn(2, 3), torch.randn(2, 3)])


@pytest.mark.parametrize("opset", [13, 18])
def test_rms_norm_and_softmax_over_two_axes(opset):
    torch.manual_seed(3)
    norm = torch.nn.RMSNorm(4, eps=1e-3)
    with torch.no_grad():
        norm.weight.mul_(torch.randn(4))

    def fn(a):
        return torch.softmax(norm(a), dim=-1) * norm(a).softmax(dim=0), mx.softmax(a, axis=(0, 2))

    sess, _ = _session(fn, (torch.randn(2, 3, 4),), opset_version=opset)
    _compare(sess, fn, [torch.randn(2, 3, 4)])


@pytest.mark.parametrize("opset", [13, 18])
def test_layer_norm_and_log_softmax(opset):
    torch.manual_seed(4)
    norm = torch.nn.LayerNorm(4, eps=1e-3)
    with torch.no_grad():
        norm.weight.mul_(torch.randn(4))
        norm.bias.add_(torch.randn(4))

    def fn(a):
        return torch.log_softmax(norm(a), dim=-1), mx.log_softmax(a, axis=(0, 2))

    sess, proto = _session(fn, (torch.randn(2, 3, 4),), opset_version=opset)
    ops = {n.op_type for n in proto.graph.node}
    assert ("LayerNormalization" in ops) == (opset >= 17) and "LogSoftmax" in ops
    _compare(sess, fn, [torch.randn(2, 3, 4)])


def test_unmapped_primitive_is_named():
    def fn(x):
        return mx.linalg.inv(x @ x.T + mx.eye(3))

    with pytest.raises(OnnxExportError, match="'linalg_inv'"):
        torch.onnx.export(fn, (mx.random.normal((3, 3)),), io.BytesIO())


def test_value_read_from_the_input_is_refused():
    def fn(x):
        return x - mx.array(np.sort(np.asarray(x), axis=1))  # NumPy outside the graph

    with pytest.raises(OnnxExportError, match="outside the recorded operations"):
        torch.onnx.export(fn, (mx.random.normal((2, 3)),), io.BytesIO())


def test_bad_arguments_are_named():
    model = torch.nn.Linear(3, 2)
    x = torch.randn(2, 3)
    with pytest.raises(OnnxExportError, match="opset_version"):
        torch.onnx.export(model, (x,), io.BytesIO(), opset_version=7)
    with pytest.raises(OnnxExportError, match="'nope'"):
        torch.onnx.export(model, (x,), io.BytesIO(), dynamic_axes={"nope": [0]})
    with pytest.raises(OnnxExportError, match="dynamic axis 2"):
        torch.onnx.export(model, (x,), io.BytesIO(), dynamic_axes={"input": [2]})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        torch.onnx.export(model, (x,), "/nonexistent/folder/m.onnx")


def test_is_in_onnx_export():
    seen = []

    def fn(x):
        seen.append(torch.onnx.is_in_onnx_export())
        return x * 2

    assert torch.onnx.is_in_onnx_export() is False
    torch.onnx.export(fn, (torch.randn(2),), io.BytesIO())
    assert seen and all(seen)
    assert torch.onnx.is_in_onnx_export() is False


def test_training_mode_matches_real_pytorch():
    torch_ref = pytest.importorskip("torch")
    ref = {k: int(v) for k, v in torch_ref.onnx.TrainingMode.__members__.items()}
    assert {m.name: int(m) for m in torch.onnx.TrainingMode} == ref
    assert torch_ref.onnx.is_in_onnx_export() is torch.onnx.is_in_onnx_export() is False


def test_training_mode_keeps_dropout():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    model.eval()
    _, proto = _session(model, torch.randn(2, 3), training=torch.onnx.TrainingMode.PRESERVE)
    assert not model.training
    ops = {n.op_type for n in proto.graph.node}
    assert "MatMul" in ops and "Mul" not in ops  # eval: dropout is the identity


def test_index_computed_from_the_input_is_refused():
    def fn(x):
        return x.max(dim=1).values  # gathers at argmax positions: indices read from the input

    with pytest.raises(OnnxExportError, match="(?i)index"):
        torch.onnx.export(fn, (torch.randn(3, 4),), io.BytesIO())


def test_cnn_agrees_with_real_pytorch_on_the_same_weights():
    torch_ref = pytest.importorskip("torch")

    def build(nn):
        return nn.Sequential(
            nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 4, 3, stride=2), nn.Flatten(), nn.Linear(16, 3),
        )  # fmt: skip

    torch.manual_seed(3)
    mine = build(torch.nn)
    ref = build(torch_ref.nn)
    mine[1].running_mean = torch.randn(6) * 0.2
    mine[1].running_var = torch.rand(6) + 0.5
    ref.load_state_dict(
        {k: torch_ref.from_numpy(np.array(v)) for k, v in mine.state_dict().items()}
    )
    ref.eval()
    buf = io.BytesIO()
    torch.onnx.export(mine, (torch.randn(2, 2, 10, 10),), buf, dynamic_axes={"input": {0: "n"}})
    sess = ort.InferenceSession(buf.getvalue())
    x = np.random.default_rng(0).normal(size=(5, 2, 10, 10)).astype(np.float32)
    with torch_ref.no_grad():
        want = ref(torch_ref.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], want, rtol=1e-5, atol=1e-5)


def test_add_graph_of_a_torch_model(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from chainrule.torch.utils.tensorboard import SummaryWriter

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    with SummaryWriter(tmp_path) as w:
        w.add_graph(model, torch.randn(1, 1, 4, 4))
    ea = EventAccumulator(str(tmp_path))
    ea.Reload()
    names = {n.name for n in ea.Graph().node}
    assert {"0/weight", "2/bias", "input_0", "output_0"} <= names


def test_sizes_that_grow_with_the_batch_axis():
    # a slice ending at B - 1, a reshape to (B * 3, 2) and a zero state of the batch's size
    w = mx.random.normal((2, 2))
    w.requires_grad = True

    def fn(x):
        n = x.shape[0]
        h = mx.zeros((n * 3, 2)) @ w + x.reshape(n * 3, 2)
        return h[: n * 3 - 1] * 2

    sess, _ = _session(fn, mx.random.normal((2, 6)), dynamic_axes={"input": {0: "b"}})
    for n in (2, 4, 5):
        _compare(sess, fn, [mx.random.normal((n, 6))])


def test_torch_lstm_when_present():
    if not hasattr(torch.nn, "LSTM"):
        pytest.skip("chainrule.torch.nn.LSTM is not there yet")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 6, num_layers=2, batch_first=True)
    sess, proto = _session(lstm, torch.randn(2, 5, 4), dynamic_axes={"input": {0: "b"}})
    assert len(proto.graph.output) == 3  # output, (h_n, c_n) flattened as PyTorch does
    for n in (2, 3):
        x = torch.randn(n, 5, 4)
        got = sess.run(None, {"input": np.asarray(x)})
        with mx.no_grad():
            out, (h, c) = lstm(x)
        for g, w in zip(got, (out, h, c)):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


class _Bag(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, ids):
        return self.lin(self.emb(ids)).mean(dim=1)  # the mean's 1 / T follows the input


def test_token_ids_embedding_and_a_mean_over_a_dynamic_axis():
    torch.manual_seed(0)
    model = _Bag()
    ids = torch.tensor([[1, 2, 3], [4, 5, 9]])
    sess, proto = _session(model, (ids,), dynamic_axes={"input": {0: "batch", 1: "time"}})
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "time"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    for x in (ids, torch.tensor([[0, 7], [3, 3], [9, 1]]), torch.tensor([[2, 4, 6, 8, 1]])):
        _compare(sess, model, [x])
