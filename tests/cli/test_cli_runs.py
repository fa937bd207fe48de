"""End to end: `chainrule train` writes a run, `evaluate` and `predict` reproduce it; what the
command prints while training (early stopping, divergence)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, QUICK, leftovers, one_error_line, run

from chainrule import cli
from chainrule.cli import model as cli_model
from chainrule.cli import train as cli_train
from chainrule.cli.config import RUN_FILES, read_run
from chainrule.cli.report import REPORT_FILES

pd = pytest.importorskip("pandas")


def test_train_writes_a_complete_run_and_evaluate_reproduces_it(tmp_path, capsys):
    out = tmp_path / "iris-run"
    status, stdout, err = run(["train", "--data", "iris", "--out", out, *FAST], capsys)
    assert status == 0, err
    assert sorted(os.listdir(out)) == sorted(RUN_FILES + REPORT_FILES["classification"])
    assert leftovers(tmp_path) == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.85, metrics
    for key in ("loss", "accuracy", "precision", "recall", "f1"):
        assert key in metrics["test"]
    assert f"accuracy {metrics['test']['accuracy']:.4f}" in stdout
    assert str(out / "history.png") in stdout and str(out / "model.safetensors") in stdout
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "history.json").read_text())
    assert "val_loss" in json.dumps(history)
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["setosa", "versicolor", "virginica"]
    assert config["model"]["input_dim"] == 4 and config["model"]["output_dim"] == 3

    # the scaler in config.json is the training rows' mean and std
    import chainrule.data as data

    ds = data.load("iris")
    split = config["split"]
    assert (split["val_split"], split["test_split"], split["seed"]) == (0.1, 0.2, 0)
    train_rows, _, test_rows = data.split_indices(150, 0.1, 0.2, 0, ds.y)
    np.testing.assert_allclose(config["scaler"]["mean"], ds.X[train_rows].mean(0), rtol=1e-5)
    np.testing.assert_allclose(config["scaler"]["std"], ds.X[train_rows].std(0), rtol=1e-5)

    status, stdout, err = run(
        ["evaluate", out, "--data", "iris", "--split", "test", "--json"], capsys
    )
    assert status == 0, err
    again = json.loads(stdout)
    for key, value in metrics["test"].items():
        assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key

    preds = tmp_path / "p.csv"
    status, _, err = run(["predict", out, "--data", "iris", "--output", preds], capsys)
    assert status == 0, err
    table = pd.read_csv(preds)
    assert len(table) == 150
    assert list(table.columns) == ["prediction"] + [f"prob_{c}" for c in config["classes"]]
    np.testing.assert_allclose(table.filter(like="prob_").sum(axis=1), 1.0, rtol=1e-5)
    truth = np.asarray(config["classes"])[ds.y]
    test_accuracy = (table["prediction"].to_numpy()[test_rows] == truth[test_rows]).mean()
    assert test_accuracy == pytest.approx(metrics["test"]["accuracy"])


def test_csv_with_text_labels_and_prediction_on_unlabelled_rows(files, capsys):
    out = files / "run"
    status, _, err = run(
        ["train", "--data", files / "good.csv", "--target", "label", "--out", out, *FAST], capsys
    )
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["no", "yes"] and config["features"] == ["a", "b", "c"]
    frame = pd.read_csv(files / "good.csv")
    frame[["c", "a", "b"]].head(10).to_csv(files / "new.csv", index=False)  # no label, reordered
    status, stdout, err = run(["predict", out, "--data", files / "new.csv"], capsys)
    assert status == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0] == "prediction,prob_no,prob_yes" and len(lines) == 11
    predicted = [line.split(",")[0] for line in lines[1:]]
    agree = np.mean(np.array(predicted) == frame["label"].head(10).to_numpy())
    assert agree >= 0.8
    # evaluate refuses labels it never saw
    frame.loc[3, "label"] = "maybe"
    frame.to_csv(files / "odd.csv", index=False)
    status, _, err = run(["evaluate", out, "--data", files / "odd.csv"], capsys)
    assert status == 2 and "class 'maybe'" in err and "not among the classes" in err


def test_regression_from_sqlite(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.1 * rng.normal(size=300)
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pts (u REAL, v REAL, y REAL)")
        conn.executemany("INSERT INTO pts VALUES (?, ?, ?)", np.c_[x, y].tolist())
    conn.close()
    out = tmp_path / "reg"
    argv = ["train", "--data", f"sqlite:///{db}?table=pts", "--out", out, *FAST, "--lr", "0.01"]
    status, stdout, err = run(argv, capsys)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["r2"] > 0.9, metrics
    assert set(metrics["test"]) >= {"loss", "mse", "mae", "r2"}
    status, stdout, _ = run(["predict", out, "--data", f"sqlite:///{db}?table=pts"], capsys)
    predictions = np.array([float(v) for v in stdout.split()[1:]])
    assert np.corrcoef(predictions, y)[0, 1] > 0.95
    source = f"sqlite:///{db}?query=SELECT * FROM pts"
    status, stdout, err = run(
        ["evaluate", out, "--data", source, "--split", "test", "--json"], capsys
    )
    assert status == 0, err
    again = json.loads(stdout)
    for key, value in metrics["test"].items():
        assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_default_out_dir_does_not_clobber(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for expected in ("runs/iris", "runs/iris-2"):
        status, stdout, err = run(
            ["train", "--data", "iris", "--epochs", "2", "--no-progress"], capsys
        )
        assert status == 0, err
        assert f"weights: {expected}/model.safetensors" in stdout
    status, _, err = run(["train", "--data", "iris", "--out", "runs/iris"], capsys)
    assert status == 2 and "runs/iris already exists" in err


def test_missing_optional_package_is_reported_before_training(tmp_path, capsys, monkeypatch):
    real = cli_train.importlib.util.find_spec
    monkeypatch.setattr(
        cli_train.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    status, _, err = run(["train", "--data", "iris", "--out", tmp_path / "r"], capsys)
    assert status == 2 and "pip install 'chainrule[train]'" in err and "history.png" in err
    assert not (tmp_path / "r").exists()


def test_a_crash_while_writing_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    from chainrule.train import History

    def broken_plot(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(History, "plot", broken_plot)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main(["train", "--data", "iris", "--epochs", "2", "--no-progress", "--out", str(out)])
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("optimizer", cli_model.OPTIMIZERS)
@pytest.mark.parametrize("activation", cli_model.ACTIVATIONS)
def test_every_optimizer_and_activation_trains(tmp_path, capsys, optimizer, activation):
    out = tmp_path / "r"
    argv = [
        "train",
        "--data",
        "iris",
        "--out",
        out,
        "--optimizer",
        optimizer,
        "--activation",
        activation,
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--no-progress",
    ]
    status, _, err = run(argv, capsys)
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["optimizer"] == optimizer
    assert config["model"]["activation"] == activation
    # the weights file rebuilds the same model
    _, model, _ = read_run(str(out))
    assert model is not None


def test_digits_demo_reaches_95_percent(tmp_path, capsys):
    """What `make demo` runs (default settings)."""
    out = tmp_path / "digits"
    status, stdout, err = run(["train", "--data", "digits", "--out", out, "--no-progress"], capsys)
    assert status == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.95, metrics


def test_train_compile_gives_the_eager_run(tmp_path, capsys):
    """`chainrule train --compile` replays the traced step and ends with the eager run's
    metrics."""
    results = []
    for extra in ([], ["--compile"]):
        out = tmp_path / f"run{len(extra)}"
        argv = ["train", "--data", "iris", "--out", out, "--epochs", "5", "--hidden", "16"]
        status, _, err = run([*argv, "--no-progress", "--seed", "0", *extra], capsys)
        assert status == 0, err
        results.append(json.loads((out / "metrics.json").read_text()))
    for split in ("train", "val", "test"):
        for key, value in results[0][split].items():
            assert results[1][split][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (split, key)


# ------------------------------------------------------------------------------------------
# What training prints: early stopping, divergence
# ------------------------------------------------------------------------------------------


def test_early_stopping_says_when_and_which_weights_it_keeps(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--data", "iris", "--out", out, "--epochs", "500", "--patience", "3"]
    status, stdout, err = run([*argv, "--hidden", "8", "--no-progress", "--lr", "0.05"], capsys)
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    history = json.loads((out / "history.json").read_text())
    stopped = config["training"]["epochs_run"]
    assert stopped < 500
    kept = history["params"]["kept_epoch"] + 1
    val_loss = history["history"]["val_loss"][kept - 1]
    line = next(line for line in stdout.splitlines() if line.startswith("early stopping"))
    assert line == (
        f"early stopping at epoch {stopped}: no val_loss improvement for 3 epochs; "
        f"keeping epoch {kept}'s weights (val_loss {val_loss:.4f})"
    )
    assert stopped - kept == 3


@pytest.mark.parametrize("compile", [[], ["--compile"]])
def test_divergence_is_an_error_not_a_result(tmp_path, capsys, compile):
    out = tmp_path / "r"
    argv = ["train", "--data", "iris", "--lr", "1e30", "--out", out, *QUICK, *compile]
    status, stdout, err = run(argv, capsys)
    line = one_error_line(status, err, "training diverged", "epoch 1/2, step", "--lr")
    assert "the loss is nan" in line or "the loss is inf" in line or "parameter" in line
    assert "weights:" not in stdout
    assert not out.exists() and leftovers(tmp_path) == []
