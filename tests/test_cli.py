"""Tests for the `chainrule` command (chainrule/cli.py).

Most tests call `main(argv)` in-process (fast); a few run the real entry point in a subprocess
to check what a user sees: the exit status, one line on stderr and no traceback. The
PostgreSQL run of `chainrule train` lives in tests/data/test_sources.py, next to the fixture
that starts the server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule import cli

pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "40", "--hidden", "32", "--no-progress", "--seed", "0"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of `chainrule ARGV` run in-process."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse exits on its own for --help and bad arguments
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or ".old" in p.name)


# ------------------------------------------------------------------------------------------
# --help documents everything
# ------------------------------------------------------------------------------------------


def _subparsers(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_help_documents_every_option(command, capsys):
    status, out, _ = run([command, "--help"], capsys)
    assert status == 0
    sub = _subparsers(cli.build_parser())[command]
    for action in sub._actions:
        for flag in action.option_strings:
            assert flag in out, flag
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"
    if command == "train":
        for word in ("digits", "sqlite:///", "postgresql://", ".csv", ".json", "early stopping"):
            assert word in out.replace("\n", " ").replace("  ", " "), word


def test_top_level_help_lists_commands(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    for command in ("train", "evaluate", "predict"):
        assert command in out


def test_installed_entry_point_runs():
    exe = Path(sys.executable).with_name("chainrule")
    if not exe.exists():
        pytest.skip("the chainrule script is not installed in this environment")
    proc = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--data" in proc.stdout


# ------------------------------------------------------------------------------------------
# Bad arguments and bad data: status 2, one line, no traceback, no directory
# ------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["label"] = np.where(x[:, 0] - x[:, 1] > 0, "yes", "no")
    frame.to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,x\n3,4,5,y\n")
    (tmp_path / "text.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    (tmp_path / "nan.csv").write_text("a,b,label\n1,2,x\n3,,y\n")
    (tmp_path / "empty.csv").write_text("a,b,label\n")
    (tmp_path / "one.csv").write_text("a,b,label\n1,2,x\n3,4,x\n")
    (tmp_path / "bad.json").write_text('[{"a": 1, "label": 0}, {"a": 2}]')
    (tmp_path / "notes.txt.md").write_text("hello")
    return tmp_path


BAD = [
    # (argv with {tmp} for the temp folder, substrings of the one stderr line)
    (["train"], ["the following arguments are required: --data"]),
    (["train", "--data", "iris", "--hidden", "12,x"], ["--hidden", "layer sizes like 128,64"]),
    (["train", "--data", "iris", "--hidden", "-3"], ["--hidden", "must be positive"]),
    (["train", "--data", "iris", "--lr", "-1"], ["--lr", "positive number"]),
    (["train", "--data", "iris", "--lr", "nan"], ["--lr", "positive number"]),
    (["train", "--data", "iris", "--epochs", "0"], ["--epochs", "at least 1"]),
    (["train", "--data", "iris", "--val-split", "1.5"], ["--val-split", "[0, 1)"]),
    (["train", "--data", "iris", "--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["train", "--data", "iris", "--optimizer", "adagrad"], ["--optimizer", "invalid choice"]),
    (["train", "--data", "iris", "--activation", "swish"], ["--activation", "invalid choice"]),
    (["train", "--data", "iris", "--task", "clustering"], ["--task", "invalid choice"]),
    (["train", "--data", "iris", "--batch-size", "many"], ["--batch-size", "whole number"]),
    (["train", "--data", "iris", "--val-split", "0.6", "--test-split", "0.5"], ["sum below 1"]),
    (["train", "--data", "iris", "--target", "x"], ["--target/--features do not apply"]),
    (["train", "--data", "iris", "--task", "regression"], ["'iris' is a classification task"]),
    (["train", "--data", "mnist"], ["unknown dataset 'mnist'"]),
    (["train", "--data", "{tmp}/missing.csv"], ["missing.csv: no such file"]),
    (["train", "--data", "{tmp}/notes.txt.md"], ["unknown dataset"]),
    (["train", "--data", "{tmp}/ragged.csv"], ["ragged.csv line 3", "ragged row"]),
    (["train", "--data", "{tmp}/text.csv"], ["column 'b' is not numeric", "line 3", "'oops'"]),
    (["train", "--data", "{tmp}/nan.csv"], ["missing value in column 'b'", "line 3"]),
    (["train", "--data", "{tmp}/empty.csv"], ["empty table"]),
    (["train", "--data", "{tmp}/one.csv"], ["single class ('x')", "nothing to learn"]),
    (["train", "--data", "{tmp}/bad.json"], ["bad.json", "record [1]", "missing 'label'"]),
    (["train", "--data", "{tmp}/good.csv", "--target", "z"], ["no target column 'z'", "'a'"]),
    (["train", "--data", "{tmp}/good.csv", "--features", "a,q"], ["no feature column 'q'"]),
    (["train", "--data", "sqlite:///{tmp}/none.db?table=t"], ["none.db: no such file"]),
    (["train", "--data", "sqlite:///{tmp}/db.sqlite"], ["?table=NAME"]),
    (["evaluate", "{tmp}", "--data", "iris"], ["not a run directory (no config.json)"]),
    (["evaluate", "{tmp}/nowhere", "--data", "iris"], ["nowhere: no such run directory"]),
    (["predict", "{tmp}/nowhere", "--data", "iris"], ["no such run directory"]),
    (["fly"], ["invalid choice: 'fly'"]),
]


@pytest.mark.parametrize("argv, parts", BAD)
def test_bad_input_exits_2_with_one_line(files, argv, parts, capsys, monkeypatch):
    monkeypatch.chdir(files)
    argv = [a.replace("{tmp}", str(files)) for a in argv]
    before = sorted(os.listdir(files))
    status, out, err = run(argv, capsys)
    assert status == 2, (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    assert sorted(os.listdir(files)) == before  # nothing written (no runs/, no partial dir)


def test_bad_data_from_the_real_command(files):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainrule.cli",
            "train",
            "--data",
            str(files / "text.csv"),
            "--out",
            str(files / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("chainrule train: error: ") and "'oops'" in proc.stderr
    assert not (files / "run").exists() and leftovers(files) == []


# ------------------------------------------------------------------------------------------
# Helpers: splitting, standardising, the staging directory
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stratified", [False, True])
def test_split_indices_partition_and_stratify(stratified):
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    parts = cli.split_indices(100, 0.2, 0.1, seed=3, labels=labels if stratified else None)
    train, val, test = parts
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(100))  # disjoint and complete
    assert len(val) == 20 and len(test) == 10 and len(train) == 70
    if stratified:
        for c, n in ((0, 50), (1, 30), (2, 20)):
            assert (labels[val] == c).sum() == round(n * 0.2)
            assert (labels[test] == c).sum() == round(n * 0.1)
    again = cli.split_indices(100, 0.2, 0.1, seed=3, labels=labels if stratified else None)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a, b)
    other = cli.split_indices(100, 0.2, 0.1, seed=4, labels=labels if stratified else None)
    assert not np.array_equal(parts[2], other[2])


def test_split_indices_refuses_tiny_data():
    with pytest.raises(cli.CommandError, match="only 3 rows: too few for a test set"):
        cli.split_indices(3, 0.0, 0.1, seed=0)
    train, val, test = cli.split_indices(3, 0.0, 0.0, seed=0)
    assert len(train) == 3 and len(val) == len(test) == 0


def test_standardizer_matches_scikit_learn():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    X = rng.normal(3, 2, size=(40, 4))
    X[:, 2] = 7.0  # constant: scaled to 0, not NaN
    scaler = cli.Standardizer.fit(X[:30])
    reference = preprocessing.StandardScaler().fit(X[:30])
    np.testing.assert_allclose(scaler.transform(X), reference.transform(X), rtol=1e-5, atol=1e-6)
    assert scaler.transform(X).dtype == np.float32
    again = cli.Standardizer(**scaler.to_dict())
    np.testing.assert_array_equal(again.transform(X), scaler.transform(X))


def test_staging_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "runs" / "r"
    with pytest.raises(RuntimeError), cli.staging_dir(out, overwrite=False) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise RuntimeError("crash while writing")
    assert not out.exists() and leftovers(tmp_path / "runs") == []
    with cli.staging_dir(out, overwrite=False) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(cli.CommandError, match="already exists"), cli.staging_dir(out, False):
        pass
    with pytest.raises(RuntimeError), cli.staging_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(os.listdir(out)) == ["a"]  # a failed overwrite keeps the old run
    with cli.staging_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(out)) == ["b"] and leftovers(tmp_path / "runs") == []


# ------------------------------------------------------------------------------------------
# End to end: train, evaluate, predict
# ------------------------------------------------------------------------------------------


def test_train_writes_a_complete_run_and_evaluate_reproduces_it(tmp_path, capsys):
    out = tmp_path / "iris-run"
    status, stdout, err = run(["train", "--data", "iris", "--out", out, *FAST], capsys)
    assert status == 0, err
    assert sorted(os.listdir(out)) == sorted(cli.RUN_FILES)
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
    train_rows, _, test_rows = cli.split_indices(150, 0.1, 0.2, 0, ds.y)
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
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util,
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


@pytest.mark.parametrize("optimizer", cli.OPTIMIZERS)
@pytest.mark.parametrize("activation", cli.ACTIVATIONS)
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
    _, model, _ = cli._read_run(str(out))
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
    for split in results[0]:
        for key, value in results[0][split].items():
            assert results[1][split][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (split, key)
