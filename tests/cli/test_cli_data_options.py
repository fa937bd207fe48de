"""The command's data options: --missing, --max-classes (a continuous target is not hundreds
of classes), and data errors worded for the command line (issue 12, item 12)."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from cli_helpers import QUICK, one_error_line, run

import chainrule.data
from chainrule.cli.tables import command_wording
from chainrule.data import DataError

pd = pytest.importorskip("pandas")

needs_missing = pytest.mark.skipif(
    "missing" not in inspect.signature(chainrule.data.load).parameters,
    reason="chainrule.data.load has no missing= yet",
)


@pytest.fixture
def holes(tmp_path):
    """120 rows, 2 classes; column b has 6 empty cells."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["label"] = np.where(x[:, 0] + x[:, 2] > 0, "yes", "no")
    frame.loc[[3, 20, 41, 60, 88, 101], "b"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    return path


@needs_missing
def test_missing_values_stop_by_default_naming_the_cell(holes, capsys):
    status, _, err = run(["train", "--data", holes, "--out", holes.parent / "r", *QUICK], capsys)
    one_error_line(status, err, "missing value in column 'b'", "--missing")


@needs_missing
@pytest.mark.parametrize("policy, rows", [("drop", 114), ("mean", 120)])
def test_missing_drop_or_mean_in_train_evaluate_and_predict(holes, capsys, policy, rows):
    out = holes.parent / policy
    argv = ["train", "--data", holes, "--out", out, "--missing", policy, *QUICK]
    status, stdout, err = run(argv, capsys)
    assert status == 0, err
    assert f"rows {rows} " in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["split"]["rows"] == rows and config["training"]["missing"] == policy
    argv = ["evaluate", out, "--data", holes, "--split", "test", "--missing", policy, "--json"]
    status, stdout, err = run(argv, capsys)
    assert status == 0, err
    assert 0 <= json.loads(stdout)["accuracy"] <= 1
    status, stdout, err = run(["predict", out, "--data", holes, "--missing", policy], capsys)
    assert status == 0, err
    assert len(stdout.strip().splitlines()) == rows + 1
    status, _, err = run(["predict", out, "--data", holes], capsys)
    one_error_line(status, err, "missing value in column 'b'")


@pytest.fixture
def continuous(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    frame = pd.DataFrame(x, columns=["u", "v"])
    frame["price"] = np.round(10 + 3 * x[:, 0] + rng.normal(size=300), 2)  # ~250 values
    frame["id"] = [f"row{i}" for i in range(300)]
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path


def test_classification_of_a_continuous_target_is_refused(continuous, capsys):
    argv = ["train", "--data", continuous, "--target", "price", "--features", "u,v"]
    status, _, err = run([*argv, "--task", "classification", *QUICK], capsys)
    line = one_error_line(status, err, "'price' has", "distinct classes in 300 rows")
    assert "--task regression" in line and "--max-classes" in line
    assert not (continuous.parent / "runs").exists()


def test_an_identifier_as_the_target_is_refused(continuous, capsys):
    argv = ["train", "--data", continuous, "--target", "id", "--features", "u,v", *QUICK]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "'id' has 300 distinct classes", "another --target")


def test_max_classes_lets_many_classes_through(continuous, tmp_path, capsys):
    frame = pd.read_csv(continuous)
    frame["grade"] = [f"g{i % 120}" for i in range(300)]  # 120 classes of 2-3 rows
    frame.to_csv(tmp_path / "grades.csv", index=False)
    argv = ["train", "--data", tmp_path / "grades.csv", "--target", "grade", "--features", "u,v"]
    argv += ["--val-split", "0", "--test-split", "0", "--out", tmp_path / "r", *QUICK]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "120 distinct classes", "--max-classes 120")
    status, _, err = run([*argv, "--max-classes", "119"], capsys)
    one_error_line(status, err, "(--max-classes 119)")
    status, _, err = run([*argv, "--max-classes", "120"], capsys)
    assert status == 0, err
    assert len(json.loads((tmp_path / "r" / "config.json").read_text())["classes"]) == 120


def test_python_hints_in_data_errors_become_options():
    said = "x.csv: column 'b' is not numeric (leave the column out with features=['a', 'c'])"
    assert command_wording(said).endswith("(leave the column out with --features a,c)")
    assert command_wording("use features=[...]") == "use --features A,B,..."
    assert command_wording("nothing to change") == "nothing to change"
    said = "(convert it to numbers, or leave the column out by choosing the feature columns)"
    assert command_wording(said).endswith("feature columns with --features A,B,...)")


def test_a_text_column_names_the_features_option(files, capsys):
    status, _, err = run(["train", "--data", files / "text.csv"], capsys)
    line = one_error_line(status, err, "column 'b' is not numeric", "--features")
    assert "features=[" not in line


def test_the_command_rewrites_the_hint_of_a_data_error(tmp_path, capsys, monkeypatch):
    def load(*args, **kwargs):
        raise DataError("t.csv: column 'b' is not numeric (or keep features=['a', 'c'] only)")

    monkeypatch.setattr(chainrule.data, "load", load)
    status, _, err = run(["train", "--data", tmp_path / "t.csv"], capsys)
    line = one_error_line(status, err, "--features a,c")
    assert "features=[" not in line
