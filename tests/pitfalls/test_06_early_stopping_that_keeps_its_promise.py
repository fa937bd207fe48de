"""Pitfall 6: early stopping that keeps its promise.

The complaint (Keras's ``restore_best_weights`` for years): the best weights are restored
only when the stop itself fires, so a run that reaches its last epoch keeps the last
weights, not the best ones. chainrule's ``EarlyStopping(restore_best=True)`` restores the
best epoch's weights (and buffers such as BatchNorm's running statistics) at the end of
training in every case. ``fit`` also switches ``train()`` / ``eval()`` itself and
evaluates under ``no_grad``, so dropout is off and no graph is recorded during validation.
"""

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.checkpoint import named_arrays
from chainrule.train import Callback, EarlyStopping, evaluate, fit


def _weights(model):
    return {k: np.array(v) for k, v in named_arrays(model)}


def _assert_weights(model, expected):
    got = _weights(model)
    assert got.keys() == expected.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


class Scripted(Callback):
    """Replaces ``val_loss`` by a scripted curve (callbacks run in order on one ``logs``)."""

    def __init__(self, curve):
        self.curve = curve

    def on_epoch_end(self, epoch, logs):
        logs["val_loss"] = self.curve[epoch]


class Snapshots(Callback):
    """The weights at the end of every epoch."""

    def on_train_begin(self, logs):
        self.at = []

    def on_epoch_end(self, epoch, logs):
        self.at.append(_weights(self.model))


def _model():
    mx.random.seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm(8), nn.ReLU(), nn.Linear(8, 2))


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    return X, y


def _optimizer(style, model):
    return optim.SGD(model.parameters(), lr=0.1) if style == "torch" else optim.SGD(0.1)


CASES = {
    # curve of val_loss, patience, epochs, epoch whose weights must remain, did the stop fire
    "never stops, best in the middle": ([3.0, 1.0, 2.0, 2.5, 2.7, 2.9], 10, 6, 1, False),
    "stops, best before the stop": ([3.0, 2.0, 1.0, 1.5, 1.7, 1.9, 2.0], 3, 7, 2, True),
    "best is the last epoch": ([3.0, 2.0, 1.5, 1.0], 10, 4, 3, False),
    "best is the first epoch": ([0.5, 1.0, 2.0, 3.0], 10, 4, 0, False),
}


@pytest.mark.parametrize("style", ["mlx", "torch"])
@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_the_best_weights_come_back_whether_or_not_the_stop_fired(style, case):
    curve, patience, epochs, best, fires = case
    model = _model()
    opt = _optimizer(style, model)
    stopper = EarlyStopping(monitor="val_loss", patience=patience, restore_best=True)
    snaps = Snapshots()
    X, y = _data()
    history = fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=(X, y),
        epochs=epochs,
        callbacks=[Scripted(curve), stopper, snaps],
        progress=False,
    )
    assert (stopper.stopped_epoch is not None) == fires
    assert stopper.best_epoch == best
    assert history["val_loss"] == curve[: len(history)]
    _assert_weights(model, snaps.at[best])  # BatchNorm's running statistics included
    if best != len(snaps.at) - 1:
        assert any(not np.array_equal(snaps.at[best][k], snaps.at[-1][k]) for k in snaps.at[-1])
    if style == "torch":  # the optimizer is still bound to the model's arrays
        before = _weights(model)
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(mx.array(X)), mx.array(y)).backward()
        opt.step()
        assert not np.array_equal(_weights(model)["layers.0.weight"], before["layers.0.weight"])


def test_restore_best_false_keeps_the_last_weights():
    model = _model()
    snaps = Snapshots()
    X, y = _data()
    fit(
        model,
        optim.SGD(0.1),
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=(X, y),
        epochs=5,
        callbacks=[
            Scripted([3.0, 1.0, 2.0, 2.5, 2.7]),
            EarlyStopping(patience=10, restore_best=False),
            snaps,
        ],
        progress=False,
    )
    _assert_weights(model, snaps.at[-1])


def test_a_real_run_ends_with_the_model_of_its_best_validation_loss():
    """No scripting: noisy labels and a large learning rate make val_loss go up and down."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    y = ((X[:, 0] + 0.8 * rng.normal(size=120)) > 0).astype(np.int64)
    model = _model()
    stopper = EarlyStopping(monitor="val_loss", patience=100, restore_best=True)
    history = fit(
        model,
        optim.SGD(model.parameters(), lr=0.5, momentum=0.9),
        nn.CrossEntropyLoss(),
        (X[:80], y[:80]),
        val_data=(X[80:], y[80:]),
        epochs=12,
        callbacks=[stopper],
        progress=False,
        seed=0,
    )
    curve = history["val_loss"]
    assert stopper.stopped_epoch is None and len(curve) == 12  # the stop never fired
    assert int(np.argmin(curve)) != len(curve) - 1  # the last epoch was not the best
    final = evaluate(model, (X[80:], y[80:]), nn.CrossEntropyLoss(), metrics=())["loss"]
    assert final == pytest.approx(min(curve), rel=1e-6)
    assert final < curve[-1]


class Spy(nn.Module):
    """Records, on every call, the mode and whether a graph is being recorded."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)
        self.calls = []

    def __call__(self, x):
        self.calls.append((self.training, mx.is_grad_enabled(), x.shape[0]))
        out = self.fc(self.drop(x))
        if not self.training:
            assert out._node is None  # evaluation records no graph
        return out


@pytest.mark.parametrize("style", ["mlx", "torch"])
@pytest.mark.parametrize("mode_before", [True, False])
def test_fit_switches_train_and_eval_and_validates_without_recording(style, mode_before):
    X, y = _data(n=40)
    model = Spy()
    model.train(mode_before)
    opt = optim.SGD(model.parameters(), lr=0.1) if style == "torch" else optim.SGD(0.1)
    fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X[:32], y[:32]),
        val_data=(X[32:], y[32:]),
        epochs=2,
        batch_size=8,
        progress=False,
    )
    # 4 training batches then 1 validation batch, twice
    assert [c[:2] for c in model.calls] == ([(True, True)] * 4 + [(False, False)]) * 2
    assert model.training == mode_before  # put back as it was
    assert mx.is_grad_enabled()


def test_validation_loss_is_deterministic_with_dropout():
    """Dropout is off during validation: the logged val_loss is the eval-mode loss."""
    X, y = _data(n=48)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
    history = fit(
        model,
        optim.SGD(0.0),  # no learning: every epoch sees the same model
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=(X, y),
        epochs=3,
        progress=False,
    )
    assert len(set(history["val_loss"])) == 1  # dropout would make them differ
    assert len(set(history["loss"])) > 1  # training did use dropout
    assert history["val_loss"][0] == pytest.approx(
        evaluate(model, (X, y), nn.CrossEntropyLoss(), metrics=())["loss"], rel=1e-6
    )
