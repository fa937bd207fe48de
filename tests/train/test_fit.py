"""fit / evaluate / predict with MLX-style and PyTorch-style optimizers."""

import numpy as np
import pytest
from train_helpers import blobs, make_model, weights

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.data import DataLoader, TensorDataset
from chainrule.train import Callback, NonFiniteError, evaluate, fit, predict

optim = pytest.importorskip("chainrule.optimizers")


def _mlx(model, lr=0.02):
    return optim.Adam(learning_rate=lr)


def _torch(model, lr=0.02):
    return optim.Adam(model.parameters(), lr=lr)


STYLES = {
    "mlx": (_mlx, nn.losses.cross_entropy),
    "torch": (_torch, nn.CrossEntropyLoss()),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_fit_reduces_loss_and_learns(style, data):
    make_opt, loss_fn = STYLES[style]
    train, val = data
    model = make_model()
    before = evaluate(model, val, loss_fn)
    h = fit(
        model,
        make_opt(model),
        loss_fn,
        train,
        val_data=val,
        epochs=8,
        batch_size=32,
        metrics=("accuracy", "f1_macro"),
        progress=False,
    )
    assert h.epoch == list(range(8))
    assert set(h.history) == {
        "loss",
        "accuracy",
        "f1_macro",
        "val_loss",
        "val_accuracy",
        "val_f1_macro",
        "lr",
    }
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_loss"][-1] < before["loss"]
    assert h["val_accuracy"][-1] >= 0.95
    assert h["lr"] == [pytest.approx(0.02)] * 8
    after = evaluate(model, val, loss_fn, metrics=("accuracy",))
    assert after["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-5)
    assert after["accuracy"] == h["val_accuracy"][-1]
    assert model.training  # fit leaves the model in the mode it found it in


def test_training_mode_and_no_recording_during_validation(data):
    train, val = data
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = make_model()

        def __call__(self, x):
            out = self.inner(x)
            seen.append((self.training, out._node is not None))
            return out

    model = Spy()
    fit(
        model,
        _torch(model),
        nn.CrossEntropyLoss(),
        train,
        val,
        epochs=1,
        batch_size=90,
        progress=False,
    )
    # two training batches (train mode, recorded), then one validation batch of 60
    assert seen == [(True, True), (True, True), (False, False)]


def test_accepts_dataset_dataloader_and_numpy_or_framework_arrays(data):
    (X, y), val = data
    loss_fn = nn.CrossEntropyLoss()
    sources = [
        (X, y),
        (mx.array(X), mx.array(y)),
        TensorDataset(X, y),
        DataLoader(TensorDataset(X, y), batch_size=45, shuffle=True),
    ]
    for src in sources:
        model = make_model()
        h = fit(model, _mlx(model), loss_fn, src, val_data=val, epochs=3, progress=False)
        assert h["loss"][-1] < h["loss"][0]
        assert h.params["steps"] == (4 if isinstance(src, DataLoader) else 6)


def test_predict_and_evaluate(data):
    (X, y), val = data
    model = make_model()
    fit(model, _mlx(model), nn.CrossEntropyLoss(), (X, y), epochs=5, progress=False)
    model.train()
    out = predict(model, X, batch_size=50)
    assert out.shape == (180, 3) and model.training
    assert predict(model, (X, y)).shape == (180, 3)
    assert predict(model, TensorDataset(X)).shape == (180, 3)
    model.eval()
    direct = model(mx.array(X))
    np.testing.assert_allclose(np.asarray(out), np.asarray(direct), rtol=1e-6, atol=1e-6)
    res = evaluate(model, (X, y), nn.CrossEntropyLoss(), metrics=("accuracy", "precision"))
    assert res["accuracy"] == np.mean(np.asarray(direct).argmax(-1) == y)
    assert set(res) == {"loss", "accuracy", "precision"}
    assert evaluate(model, (X, y), metrics=("accuracy",)).keys() == {"accuracy"}


def test_regression_with_mse_and_mlx_reduction_none():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(128, 4)).astype(np.float32)
    y = (X @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32) + 0.1).astype(np.float32)
    mx.random.seed(0)
    model = nn.Linear(4, 1)
    h = fit(
        model,
        optim.SGD(learning_rate=0.05),
        nn.losses.mse_loss,  # MLX: reduction "mean"; the loop averages "none" results too
        (X, y),
        val_data=(X, y),
        epochs=20,
        batch_size=16,
        metrics=("mse", "r2"),
        progress=False,
    )
    assert h["val_r2"][-1] > 0.99
    assert h["val_mse"][-1] == pytest.approx(h["val_loss"][-1], rel=1e-5)


def test_seed_makes_runs_repeatable(data):
    train, val = data
    runs = []
    for _ in range(2):
        model = make_model()
        h = fit(
            model, _mlx(model), nn.CrossEntropyLoss(), train, val, epochs=2, seed=3, progress=False
        )
        runs.append((weights(model), h["loss"]))
    assert runs[0][1] == runs[1][1]
    assert all(np.array_equal(runs[0][0][k], runs[1][0][k]) for k in runs[0][0])


def test_bad_inputs_are_refused_clearly(data):
    (X, y), _ = data
    model = make_model()
    opt = _mlx(model)
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="same length"):
        fit(model, opt, loss_fn, (X, y[:-1]), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, opt, loss_fn, (X, y), epochs=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, opt, loss_fn, (X, y), batch_size=0, progress=False)
    with pytest.raises(TypeError, match="train_data"):
        fit(model, opt, loss_fn, "data.csv", progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        fit(model, opt, loss_fn, (X, y), metrics=("accurcy",), progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit(model, opt, loss_fn, TensorDataset(X[:0], y[:0]), progress=False)
    Xr, yr = blobs(n=32, d=8)
    with pytest.raises(ValueError, match="metrics=\\('mse',\\)"):
        fit(
            nn.Linear(8, 1),
            optim.SGD(learning_rate=0.1),
            nn.MSELoss(),
            (Xr, yr.astype(np.float32).reshape(-1, 1) + 0.5),
            epochs=1,
            progress=False,
        )


def test_progress_output(data, capsys):
    train, val = data
    model = make_model()
    fit(model, _mlx(model), nn.CrossEntropyLoss(), train, val, epochs=2, progress=True)
    out = capsys.readouterr().out  # captured stdout is not a terminal: one plain line per epoch
    assert len(out.splitlines()) == 2 and "\r" not in out and "\x1b" not in out
    fit(model, _mlx(model), nn.CrossEntropyLoss(), train, val, epochs=2, progress=False)
    assert capsys.readouterr().out == ""
    fit(model, _mlx(model), nn.CrossEntropyLoss(), train, val, epochs=2, progress="epoch")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2 - loss ")
    assert "val_accuracy" in lines[1]


def test_initial_epoch_continues_numbering(data):
    train, _ = data
    model = make_model()
    h = fit(
        model, _mlx(model), nn.CrossEntropyLoss(), train, epochs=5, initial_epoch=3, progress=False
    )
    assert h.epoch == [3, 4]
    with pytest.raises(ValueError, match="initial_epoch"):
        fit(model, _mlx(model), nn.CrossEntropyLoss(), train, epochs=2, initial_epoch=3)


def test_callback_sees_batches(data):
    train, _ = data
    sizes = []

    class Sizes(Callback):
        def on_batch_end(self, batch, logs):
            sizes.append((batch, logs["size"], isinstance(logs["loss"], float)))

    model = make_model()
    fit(
        model,
        _mlx(model),
        nn.CrossEntropyLoss(),
        train,
        epochs=1,
        batch_size=100,
        callbacks=[Sizes()],
        progress=False,
    )
    assert sizes == [(0, 100, True), (1, 80, True)]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_digits_subset_both_styles(style):
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    make_opt, loss_fn = STYLES[style]
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))
    h = fit(
        model,
        make_opt(model, lr=0.01),
        loss_fn,
        (X[:600], y[:600]),
        val_data=(X[600:900], y[:900][600:]),
        epochs=6,
        batch_size=32,
        progress=False,
    )
    assert h["loss"][-1] < 0.3 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.8 and h["val_accuracy"][-1] > h["val_accuracy"][0]


def test_seed001_flow_binary_probabilities():
    """Seed 001's corrected flow through fit: sigmoid outputs, BCELoss, (n, 1) targets."""
    from functools import partial

    from chainrule.train import accuracy, precision, recall

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.float32).reshape(-1, 1)
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 1), nn.Sigmoid())
    opt = optim.Adam(model.parameters(), lr=0.05)
    h = fit(
        model,
        opt,
        nn.BCELoss(),
        (X[:320], y[:320]),
        val_data=(X[320:], y[320:]),
        epochs=15,
        metrics=("accuracy", "precision", "recall"),
        progress=False,
    )
    assert h["val_accuracy"][-1] >= 0.95 and h["val_precision"][-1] > 0.9
    probs = predict(model, X[320:])
    assert probs.shape == (80, 1)
    assert recall(y[320:], probs) == h["val_recall"][-1]
    assert accuracy(y[320:], probs) == h["val_accuracy"][-1]
    assert precision(y[320:], probs) == h["val_precision"][-1]
    # a single column of logits needs an explicit threshold, which partial supplies
    logits = nn.Sequential(nn.Linear(2, 1))
    h = fit(
        logits,
        optim.Adam(logits.parameters(), lr=0.05),
        nn.BCEWithLogitsLoss(),
        (X, y),
        epochs=3,
        metrics=(partial(accuracy, threshold=0.0),),
        progress=False,
    )
    assert "accuracy" in h and h["accuracy"][-1] > 0.8


@pytest.mark.host_only  # counts compiled replays (GPU data runs eagerly)
@pytest.mark.parametrize("style", ["mlx", "torch_sgd"])
def test_compiled_fit_equals_eager_fit(style, data):
    """fit(compile=True) traces the step (a new batch shape, the last partial batch, traces
    again) and gives the eager run's history and weights."""
    import sys

    stats = sys.modules["chainrule.core.compile"].STATS
    train, val = data
    runs = []
    for compiled in (False, True):
        mx.random.seed(0)
        model = make_model()
        if style == "mlx":
            opt, loss_fn = optim.Adam(learning_rate=0.02), nn.losses.cross_entropy
        else:
            opt, loss_fn = optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()
        before = stats["replays"]
        h = fit(
            model,
            opt,
            loss_fn,
            train,
            val,
            epochs=3,
            batch_size=32,
            seed=1,
            progress=False,
            compile=compiled,
        )
        runs.append((weights(model), h.history, stats["replays"] - before))
    (w1, h1, r1), (w2, h2, r2) = runs
    assert r1 == 0 and r2 > 0
    for key in h1:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5)
    for k in w1:
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ NaN and infinity stop fit


def _diverging(style, model):
    if style == "mlx":
        return optim.SGD(learning_rate=1e30), nn.losses.cross_entropy
    return optim.SGD(model.parameters(), lr=1e30), nn.CrossEntropyLoss()


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_a_diverging_loss_stops_fit_naming_epoch_step_and_parameter(style, compiled, data):
    train, val = data
    model = make_model()
    opt, loss_fn = _diverging(style, model)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError) as info:
        fit(
            model,
            opt,
            loss_fn,
            train,
            val,
            epochs=3,
            batch_size=60,
            progress=False,
            compile=compiled,
        )
    e = info.value
    assert isinstance(e, ArithmeticError)
    assert e.epoch == 1 and 2 <= e.step <= 3 and not np.isfinite(e.loss)
    assert e.parameter in weights(model) and not np.isfinite(weights(model)[e.parameter]).all()
    text = str(e)
    assert text.startswith(f"fit: the loss is {e.loss} at epoch 1/3, step {e.step}/3; ")
    assert f"the first non-finite parameter is {e.parameter!r}" in text
    assert "on_nonfinite" in text and "\n" not in text


def test_warn_and_ignore_let_a_diverging_fit_go_on(data):
    train, _ = data
    model = make_model()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="the loss is nan") as seen:
        h = fit(
            model,
            optim.SGD(learning_rate=1e30),
            nn.CrossEntropyLoss(),
            train,
            epochs=3,
            progress=False,
            on_nonfinite="warn",
        )
    assert len([w for w in seen if "fit:" in str(w.message)]) == 1  # once, not every step
    assert len(h.epoch) == 3 and np.isnan(h["loss"][-1])
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        h = fit(
            make_model(),
            optim.SGD(learning_rate=1e30),
            nn.CrossEntropyLoss(),
            train,
            epochs=2,
            progress=False,
            on_nonfinite="ignore",
        )
    assert len(h.epoch) == 2
    with pytest.raises(ValueError, match="on_nonfinite must be 'raise', 'warn' or 'ignore'"):
        fit(
            make_model(),
            optim.SGD(learning_rate=0.1),
            nn.CrossEntropyLoss(),
            train,
            epochs=1,
            progress=False,
            on_nonfinite="stop",
        )


class _Poison(Callback):
    """Makes one parameter NaN after the last batch of epoch 1 (the losses stay finite)."""

    def on_batch_end(self, batch, logs):
        if batch == self.params["steps"] - 1:
            w = self.model.fc2.bias
            w._set_value(np.full(w.shape, np.nan, dtype=np.float32))


def test_a_parameter_gone_bad_is_caught_at_the_end_of_the_epoch(data):
    train, _ = data
    model = make_model()
    with pytest.raises(NonFiniteError) as info:
        fit(
            model,
            optim.SGD(learning_rate=0.1),
            nn.CrossEntropyLoss(),
            train,
            epochs=3,
            batch_size=60,
            callbacks=[_Poison()],
            progress=False,
        )
    e = info.value
    assert (e.epoch, e.step, e.parameter, e.loss) == (1, 3, "fc2.bias", None)
    assert str(e).startswith("fit: parameter 'fc2.bias' is non-finite after epoch 1/3, step 3/3")
