"""TensorBoard event files, read back with tensorboard's own EventAccumulator."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.train import SummaryWriter, TensorBoard, fit

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _read(folder) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0, "histograms": 0})
    ea.Reload()
    return ea


def test_scalars_read_back(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(5):
            w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_scalar("acc", mx.array(0.75), 7)
        w.add_scalar("np", np.float64(2.5), 8, new_style=True)
    ea = _read(tmp_path)
    loss = ea.Scalars("loss")
    assert [e.step for e in loss] == [0, 1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert ea.Scalars("acc")[0].value == pytest.approx(0.75) and ea.Scalars("acc")[0].step == 7
    (t,) = ea.Tensors("np")  # new_style: a tensor summary of the scalars plugin
    assert t.step == 8 and t.tensor_proto.float_val[0] == pytest.approx(2.5)
    assert ea.SummaryMetadata("np").plugin_data.plugin_name == "scalars"


def test_add_scalars_writes_one_folder_per_key(tmp_path):
    w = SummaryWriter(tmp_path)
    w.add_scalars("run", {"train": 1.0, "val": 2.0}, 3)
    w.add_scalars("run", {"train": 0.5, "val": 1.5}, 4)
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run_train", "run_val"]
    val = _read(tmp_path / "run_val").Scalars("run")
    assert [(e.step, e.value) for e in val] == [(3, 2.0), (4, 1.5)]


def test_histogram_counts_every_value(tmp_path):
    values = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    with SummaryWriter(tmp_path) as w:
        w.add_histogram("w", mx.array(values), 1)
        w.add_histogram("w10", values, 2, bins=10)
    ea = _read(tmp_path)
    h = ea.Histograms("w")[0].histogram_value
    assert h.num == 1000 and sum(h.bucket) == 1000
    assert h.min == pytest.approx(values.min()) and h.max == pytest.approx(values.max())
    assert h.sum == pytest.approx(values.astype(np.float64).sum(), rel=1e-5)
    h10 = ea.Histograms("w10")[0].histogram_value
    counts, edges = np.histogram(values, bins=10)
    assert list(h10.bucket) == list(counts)
    assert list(h10.bucket_limit) == pytest.approx(list(edges[1:]))


def test_image_round_trips_through_png(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import io

    img = np.zeros((3, 4, 5), np.float32)
    img[0, :, :2] = 1.0  # red left part
    with SummaryWriter(tmp_path) as w:
        w.add_image("chw", img, 0)
        w.add_image("hw", np.full((4, 5), 0.5), 1, dataformats="HW")
    ea = _read(tmp_path)
    ev = ea.Images("chw")[0]
    assert (ev.height, ev.width) == (4, 5)
    px = np.asarray(Image.open(io.BytesIO(ev.encoded_image_string)))
    assert px.shape == (4, 5, 3)
    assert (px[:, :2, 0] == 255).all() and (px[:, 2:] == 0).all()
    gray = np.asarray(Image.open(io.BytesIO(ea.Images("hw")[0].encoded_image_string)))
    assert (gray == 127).all()  # PyTorch truncates 127.5
    with pytest.raises(ValueError, match="5 channels"):
        SummaryWriter(tmp_path / "x").add_image("bad", img, 0, dataformats="HWC")


def test_text_and_hparams(tmp_path):
    with SummaryWriter(tmp_path) as w:
        w.add_text("notes", "hello **world**", 2)
        w.add_hparams({"lr": 0.1, "opt": "adam", "deep": True}, {"hp/acc": 0.9}, run_name="trial")
    ea = _read(tmp_path)
    (t,) = ea.Tensors("notes/text_summary")
    assert t.step == 2 and t.tensor_proto.string_val == [b"hello **world**"]
    trial = _read(tmp_path / "trial")
    assert trial.Scalars("hp/acc")[0].value == pytest.approx(0.9)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = trial.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["lr"].number_value == pytest.approx(0.1)
    assert hp["opt"].string_value == "adam" and hp["deep"].bool_value is True
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert [i.name for i in exp.experiment.hparam_infos] == ["lr", "opt", "deep"]
    assert [m.name.tag for m in exp.experiment.metric_infos] == ["hp/acc"]
    with pytest.raises(ValueError, match="'bad'.*list"):
        SummaryWriter(tmp_path / "y").add_hparams({"bad": [1, 2]}, {"m": 1.0})


def test_add_graph_names_operations_and_parameters(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with SummaryWriter(tmp_path) as w:
        w.add_graph(model, mx.zeros((5, 3)))
    g = _read(tmp_path).Graph()
    ops = [n.op for n in g.node]
    assert ops.count("addmm") == 2 and "maximum" in ops  # a Linear with bias is one addmm
    names = {n.name for n in g.node}
    assert {"layers/0/weight", "layers/2/bias", "input_0", "output_0"} <= names
    byname = {n.name: n for n in g.node}
    shape = byname["output_0"].input[0]
    assert [d.size for d in byname[shape].attr["_output_shapes"].list.shape[0].dim] == [5, 2]


def test_default_log_dir_is_pytorchs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    w = SummaryWriter(comment="_lr0.1")
    w.close()
    (run,) = os.listdir(tmp_path / "runs")
    assert re.fullmatch(r"[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+_lr0\.1", run), run
    assert w.get_logdir() == os.path.join("runs", run)


def test_bad_input_is_named(tmp_path):
    w = SummaryWriter(tmp_path)
    with pytest.raises(ValueError, match="one number"):
        w.add_scalar("x", np.ones(3))
    with pytest.raises(TypeError, match="tag"):
        w.add_scalar("", 1.0)
    with pytest.raises(TypeError, match="global_step"):
        w.add_scalar("x", 1.0, "one")
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.add_scalar("x", 1.0)


def test_callback_logs_each_epoch(tmp_path):
    mx.random.seed(0)
    X = mx.random.normal((64, 4))
    y = (X.sum(axis=1) > 0).astype(mx.int32)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    cb = TensorBoard(tmp_path / "tb", log_every_n_steps=2, histograms=True)
    history = fit(
        model,
        optim.Adam(learning_rate=1e-2),
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=(X, y),
        epochs=3,
        batch_size=16,
        callbacks=[cb],
        progress=False,
    )
    ea = _read(tmp_path / "tb")
    tags = ea.Tags()["scalars"]
    assert {"epoch/loss", "epoch/accuracy", "epoch/val_loss", "batch/loss"} <= set(tags)
    losses = [e.value for e in ea.Scalars("epoch/loss")]
    assert losses == pytest.approx(history.history["loss"])
    assert [e.step for e in ea.Scalars("batch/loss")] == [2, 4, 6, 8, 10, 12]
    assert "layers.0.weight" in ea.Tags()["histograms"]


def test_torch_front_is_the_same_class(tmp_path):
    from chainrule.torch.utils.tensorboard import SummaryWriter as TorchWriter

    assert TorchWriter is SummaryWriter
