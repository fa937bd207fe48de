"""`chainrule export RUN --onnx FILE` and `chainrule train --tensorboard DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import QUICK, one_error_line, run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture
def trained(files, capsys):
    out = files / "run"
    status, _, err = run(["train", "--data", files / "good.csv", "--out", out, *QUICK], capsys)
    assert status == 0, err
    return out


def test_export_gives_the_runs_outputs_for_raw_features(trained, files, capsys):
    import pandas as pd

    from chainrule.cli.config import read_run

    path = files / "model.onnx"
    status, _, err = run(["export", trained, "--onnx", path], capsys)
    assert status == 0, err
    assert "wrote" in err
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["chainrule.features"]) == ["a", "b", "c"]
    assert json.loads(meta["chainrule.classes"]) == ["no", "yes"]
    assert meta["chainrule.task"] == "classification"
    assert "layers.0.weight" in {t.name for t in proto.graph.initializer}
    raw = pd.read_csv(files / "good.csv")[["a", "b", "c"]].to_numpy(np.float32)
    sess = ort.InferenceSession(str(path))
    got = sess.run(None, {"features": raw})[0]  # every row at once: the batch axis is dynamic
    config, model, scaler = read_run(str(trained))
    import chainrule.core as mx

    with mx.no_grad():
        want = np.asarray(model(mx.array(scaler.transform(raw).astype(np.float32))))
    assert got.shape == (len(raw), 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the same predictions as `chainrule predict`
    pred = files / "pred.csv"
    assert run(["predict", trained, "--data", files / "good.csv", "--output", pred], capsys)[0] == 0
    labels = pd.read_csv(pred)["prediction"].tolist()
    assert [["no", "yes"][i] for i in got.argmax(axis=1)] == labels


def test_export_without_scaling(trained, files, capsys):
    path = files / "plain.onnx"
    assert run(["export", trained, "--onnx", path, "--no-scaling", "--opset", "17"], capsys)[0] == 0
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 17
    ops = [n.op_type for n in proto.graph.node]
    assert "Sub" not in ops[:2] and ops.count("MatMul") == 2


def test_export_errors_are_one_line(trained, files, capsys):
    status, _, err = run(["export", files / "nowhere", "--onnx", files / "m.onnx"], capsys)
    one_error_line(status, err, "no such run directory")
    status, _, err = run(["export", trained, "--onnx", files / "no" / "m.onnx"], capsys)
    one_error_line(status, err, "does not exist")
    status, _, err = run(["export", trained, "--onnx", files], capsys)
    one_error_line(status, err, "is a directory")
    status, _, err = run(["export", trained, "--onnx", files / "m.onnx", "--opset", "5"], capsys)
    one_error_line(status, err, "opset_version")
    assert not (files / "m.onnx").exists()


def test_train_writes_tensorboard_events(files, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = files / "tb"
    argv = ["train", "--data", files / "good.csv", "--out", files / "r", "--tensorboard", tb]
    status, _, err = run([*argv, *QUICK], capsys)
    assert status == 0, err
    ea = EventAccumulator(str(tb))
    ea.Reload()
    history = json.loads((files / "r" / "history.json").read_text())
    losses = [e.value for e in ea.Scalars("epoch/loss")]
    assert losses == pytest.approx(
        history["loss"] if "loss" in history else history["history"]["loss"]
    )
    assert "epoch/val_loss" in ea.Tags()["scalars"]


def test_tensorboard_folder_that_is_a_file(files, capsys):
    pytest.importorskip("tensorboard")
    argv = ["train", "--data", files / "good.csv", "--tensorboard", files / "good.csv", *QUICK]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "--tensorboard", "is a file")


@pytest.mark.parametrize(
    "activation", ["relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu"]
)
def test_every_activation_of_the_command_exports(activation):
    import io

    import chainrule.core as mx
    from chainrule.cli.model import build_model
    from chainrule.viz.onnx import export_onnx

    config = {
        "input_dim": 3,
        "output_dim": 2,
        "hidden": [8, 8],
        "activation": activation,
        "dropout": 0.1,
    }
    model = build_model(config)
    model.eval()
    buf = io.BytesIO()
    export_onnx(model, (mx.random.normal((4, 3)),), buf, dynamic_axes={"input": {0: "n"}})
    sess = ort.InferenceSession(buf.getvalue())
    x = mx.random.normal((7, 3))
    with mx.no_grad():
        want = np.asarray(model(x))
    got = sess.run(None, {"input": np.asarray(x)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
