"""Callbacks: hook order, EarlyStopping, ModelCheckpoint, LearningRateScheduler."""

import os

import numpy as np
import pytest
from train_helpers import make_model, weights

import chainrule.nn as nn
from chainrule import load_checkpoint
from chainrule.train import (
    Callback,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    fit,
)

optim = pytest.importorskip("chainrule.optimizers")
lr_scheduler = optim.lr_scheduler


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append(("train_begin", self.model is not None, self.params["epochs"]))

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs):
        self.calls.append(("train_end", len(self.history.epoch)))


def test_custom_callback_hooks_run_in_order(data):
    train, val = data
    rec = Recorder()
    model = make_model()
    fit(
        model,
        optim.SGD(learning_rate=0.1),
        nn.CrossEntropyLoss(),
        train,
        val,
        epochs=2,
        batch_size=90,
        callbacks=[rec],
        progress=False,
    )
    keys = ["accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    per_epoch = lambda e: [  # noqa: E731
        ("epoch_begin", e),
        ("batch_begin", 0),
        ("batch_end", 0),
        ("batch_begin", 1),
        ("batch_end", 1),
        ("epoch_end", e, keys),
    ]
    assert rec.calls == [("train_begin", True, 2), *per_epoch(0), *per_epoch(1), ("train_end", 2)]


def test_callback_can_stop_training(data):
    train, _ = data

    class StopAfterOne(Callback):
        def on_epoch_end(self, epoch, logs):
            self.stop_training = True

    model = make_model()
    h = fit(
        model,
        optim.SGD(learning_rate=0.1),
        nn.CrossEntropyLoss(),
        train,
        epochs=5,
        callbacks=[StopAfterOne()],
        progress=False,
    )
    assert h.epoch == [0]
    with pytest.raises(TypeError, match="Callback"):
        fit(
            model,
            optim.SGD(learning_rate=0.1),
            nn.CrossEntropyLoss(),
            train,
            callbacks=[lambda: None],
            progress=False,
        )


class Snapshots(Callback):
    """The weights at the end of every epoch."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs):
        self.by_epoch[epoch] = weights(self.model)


@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_early_stopping_stops_and_restores_the_best_weights(style, data):
    (X, y), _ = data
    # Validation asks for the opposite of what training teaches, so val_loss rises as the
    # model learns: epoch 0 is the best and training stops after `patience` worse epochs.
    val = (X, (y + 1) % 3)
    model = make_model()
    opt = (
        optim.Adam(learning_rate=0.05)
        if style == "mlx"
        else optim.Adam(model.parameters(), lr=0.05)
    )
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best=True)
    snaps = Snapshots()
    h = fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X, y),
        val,
        epochs=20,
        callbacks=[snaps, stop],
        progress=False,
    )
    assert np.all(np.diff(h["val_loss"]) > 0)
    assert h.epoch == [0, 1, 2] and stop.stopped_epoch == 2 and stop.best_epoch == 0
    assert stop.best == h["val_loss"][0]
    final = weights(model)
    assert all(np.array_equal(final[k], snaps.by_epoch[0][k]) for k in final)
    assert not all(np.array_equal(final[k], snaps.by_epoch[2][k]) for k in final)
    if style == "torch":  # the optimizer still drives the model's own arrays
        before = weights(model)
        fit(model, opt, nn.CrossEntropyLoss(), (X, y), epochs=1, progress=False)
        after = weights(model)
        assert not np.array_equal(before["fc1.weight"], after["fc1.weight"])


def test_early_stopping_modes_and_min_delta(data):
    train, val = data
    stop = EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.5)
    assert stop.mode == "max"
    model = make_model()
    h = fit(
        model,
        optim.Adam(learning_rate=0.01),
        nn.CrossEntropyLoss(),
        train,
        val,
        epochs=10,
        callbacks=[stop],
        progress=False,
    )
    assert len(h.epoch) == 2  # no later epoch can beat the first by 0.5
    assert EarlyStopping(monitor="loss").mode == "min"
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="val_loss.*pass val_data"):
        fit(
            model,
            optim.SGD(learning_rate=0.1),
            nn.CrossEntropyLoss(),
            train,
            callbacks=[EarlyStopping()],
            progress=False,
        )


def test_model_checkpoint_keeps_the_best_epoch(data, tmp_path):
    (X, y), _ = data
    val = (X, (y + 1) % 3)  # val_loss rises: epoch 1 (index 0) stays the best
    model = make_model()
    opt = optim.Adam(learning_rate=0.05)
    best = ModelCheckpoint(tmp_path / "best.ckpt")
    every = ModelCheckpoint(
        tmp_path / "e{epoch:02d}-{val_loss:.2f}.safetensors",
        save_best_only=False,
        save_weights_only=True,
    )
    snaps = Snapshots()
    fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X, y),
        val,
        epochs=3,
        callbacks=[snaps, best, every],
        progress=False,
    )
    assert best.saved == [str(tmp_path / "best.ckpt")]
    assert len(every.saved) == 3 and os.path.basename(every.saved[0]).startswith("e01-")
    fresh = make_model(seed=9)
    info = load_checkpoint(tmp_path / "best.ckpt", fresh, optim.Adam(learning_rate=0.05))
    assert info["epoch"] == 1
    w = weights(fresh)
    assert all(np.array_equal(w[k], snaps.by_epoch[0][k]) for k in w)
    last = make_model(seed=9)
    last.load_weights(every.saved[-1])
    w = weights(last)
    assert all(np.array_equal(w[k], snaps.by_epoch[2][k]) for k in w)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_early_stopping_says_when_it_stops_and_which_weights_it_keeps(data, capsys):
    (X, y), _ = data
    val = (X, (y + 1) % 3)  # val_loss rises: epoch 1 stays the best
    stop = EarlyStopping(monitor="val_loss", patience=2, verbose=True)
    model = make_model()
    h = fit(
        model,
        optim.Adam(learning_rate=0.05),
        nn.CrossEntropyLoss(),
        (X, y),
        val,
        epochs=20,
        callbacks=[stop],
        progress="epoch",
    )
    lines = capsys.readouterr().out.splitlines()
    # after the last epoch's line, not before it
    assert [line[:11] for line in lines[:3]] == ["Epoch 1/20 ", "Epoch 2/20 ", "Epoch 3/20 "]
    assert lines[3:] == [
        "early stopping at epoch 3: no val_loss improvement for 2 epochs; keeping epoch 1's "
        f"weights (val_loss {h['val_loss'][0]:.4f})"
    ]
    assert h.params["kept_epoch"] == 0  # History.plot marks it


def test_early_stopping_without_a_stop_still_says_it_puts_weights_back(data, capsys):
    (X, y), _ = data
    stop = EarlyStopping(monitor="val_loss", patience=5, verbose=True)
    h = fit(
        make_model(),
        optim.Adam(learning_rate=0.05),
        nn.CrossEntropyLoss(),
        (X, y),
        (X, (y + 1) % 3),
        epochs=3,
        callbacks=[stop],
        progress=False,
    )
    assert stop.stopped_epoch is None
    assert capsys.readouterr().out == (
        f"end of training: keeping epoch 1's weights (val_loss {h['val_loss'][0]:.4f})\n"
    )


def test_model_checkpoint_removes_what_a_killed_save_left(data, tmp_path):
    import subprocess
    import sys

    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )
    stale = tmp_path / f".best.ckpt.{dead}-0123abcd.tmp.ckpt"
    live = tmp_path / f".best.ckpt.{os.getpid()}-89abcdef.tmp.ckpt"  # a save in progress
    for path in (stale, live):
        path.write_bytes(b"half a checkpoint")
    (tmp_path / "old.ckpt").write_bytes(b"a finished checkpoint")
    model = make_model()
    fit(
        model,
        optim.Adam(learning_rate=0.05),
        nn.CrossEntropyLoss(),
        *data,
        epochs=1,
        callbacks=[ModelCheckpoint(tmp_path / "best.ckpt")],
        progress=False,
    )
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "old.ckpt", "best.ckpt"])


def test_learning_rate_scheduler_with_a_pytorch_scheduler(data):
    train, val = data
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    h = fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        train,
        val,
        epochs=5,
        callbacks=[LearningRateScheduler(sched)],
        progress=False,
    )
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)  # after 5 steps: 0.1 * 0.5**2


def test_learning_rate_scheduler_with_plateau_scheduler(data):
    (X, y), _ = data
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    val = (X, (y + 1) % 3)  # never improves after the first epoch
    h = fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X, y),
        val,
        epochs=3,
        callbacks=[LearningRateScheduler(sched)],
        progress=False,
    )
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.05])


@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_learning_rate_scheduler_with_a_function(style, data):
    train, _ = data
    model = make_model()
    opt = optim.SGD(learning_rate=1.0) if style == "mlx" else optim.SGD(model.parameters(), lr=1)
    schedules = [lambda epoch: 0.1 * 0.5**epoch, optim.exponential_decay(0.1, 0.5)]
    for schedule in schedules:
        h = fit(
            model,
            opt,
            nn.CrossEntropyLoss(),
            train,
            epochs=3,
            callbacks=[LearningRateScheduler(schedule)],
            progress=False,
        )
        assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])
    with pytest.raises(TypeError, match="step"):
        LearningRateScheduler(0.1)


@pytest.mark.usefixtures("cpu_default_device")
def test_early_stopping_and_shuffling_on_the_gpu(data, tmp_path):
    # on the strict CuPy stand-in: the best-weights snapshot was taken through NumPy, and a
    # shuffled loader indexed host data with a permutation drawn on the GPU
    import chainrule.core as mx
    from chainrule.checkpoint import save_checkpoint
    from chainrule.cli.train_options import ResumableEarlyStopping
    from chainrule.core import backend
    from chainrule.core.strict_backend import StrictArray
    from chainrule.data import DataLoader, TensorDataset

    (X, y), _ = data
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        model = make_model()
        loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
        stop = ResumableEarlyStopping(monitor="val_loss", patience=1)  # `chainrule train`'s
        h = fit(
            model,
            optim.Adam(learning_rate=0.05),
            nn.CrossEntropyLoss(),
            loader,
            (X, (y + 1) % 3),
            epochs=10,
            callbacks=[stop],
            progress=False,
        )
        assert stop.stopped_epoch is not None and len(h.epoch) < 10
        assert all(type(a._data) is StrictArray for a in (model.fc1.weight, model.fc2.bias))
        # the restored best weights went back to the GPU, and the stopper's state is plain data
        # that a checkpoint can hold (`chainrule train` saves it every epoch)
        save_checkpoint(tmp_path / "c.ckpt", model, extra={"stopper": stop.state_dict()})
        back = make_model(seed=5)
        load_checkpoint(tmp_path / "c.ckpt", back)
        np.testing.assert_array_equal(np.asarray(back.fc1.weight), np.asarray(model.fc1.weight))
