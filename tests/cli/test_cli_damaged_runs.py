"""A damaged or hand-edited run directory: `chainrule evaluate` and `predict` say what is wrong
in one line (exit status 2) instead of a traceback (issue 12, item 7)."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import QUICK, one_error_line, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from chainrule.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--data", "iris", "--out", str(out), *QUICK]) == 0
    return out


@pytest.fixture
def damaged(trained, tmp_path):
    """A fresh copy of the trained run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _edit_config(run_dir, change):
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _both_commands_fail(run_dir, capsys, *parts):
    for command in ("evaluate", "predict"):
        status, out, err = run([command, run_dir, "--data", "iris"], capsys)
        one_error_line(status, err, *parts)
        assert out == ""


def test_the_undamaged_copy_works(damaged, capsys):
    status, _, err = run(["evaluate", damaged, "--data", "iris"], capsys)
    assert status == 0, err


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"\xff" * 64]
)
def test_corrupt_weights(damaged, capsys, content):
    (damaged / "model.safetensors").write_bytes(content)
    _both_commands_fail(damaged, capsys, "cannot load the weights", "model.safetensors")


def test_truncated_weights(damaged, capsys):
    path = damaged / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    _both_commands_fail(damaged, capsys, "cannot load the weights", "model.safetensors")


def test_weights_of_another_model(damaged, capsys):
    _edit_config(damaged, lambda c: c["model"].update(hidden=[9]))
    _both_commands_fail(damaged, capsys, "cannot load the weights")


CONFIG_DAMAGE = [
    (lambda c: c.pop("model"), ["config.json", "no 'model' entry"]),
    (lambda c: c["model"].update(activation="swish"), ["unknown activation 'swish'", "relu"]),
    (lambda c: c.update(classes=[]), ["no classes listed"]),
    (lambda c: c.pop("classes"), ["no classes listed"]),
    (lambda c: c["model"].update(input_dim=10**400), ["model.input_dim", "401 characters"]),
    (lambda c: c["model"].update(hidden=[10**400]), ["model.hidden"]),
    (lambda c: c["model"].update(hidden=[10**6, 10**6]), ["parameters", "limit"]),
    (lambda c: c["model"].update(dropout="a lot"), ["model.dropout"]),
    (lambda c: c.update(task="clustering"), ["task must be"]),
    (lambda c: c.update(features=["a"]), ["1 features for a model of 4 inputs"]),
    (lambda c: c.update(classes=["a", "b"]), ["2 classes for a model of 3 outputs"]),
    (lambda c: c["scaler"].update(mean=[10**400] * 4), ["scaler.mean", "not a finite number"]),
    (lambda c: c.pop("scaler"), ["no 'scaler' entry"]),
    (lambda c: c.pop("format"), ["not a config.json written by chainrule train"]),
]


@pytest.mark.parametrize("change, parts", CONFIG_DAMAGE)
def test_damaged_config(damaged, capsys, change, parts):
    _edit_config(damaged, change)
    _both_commands_fail(damaged, capsys, *parts)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("{", ["not valid JSON"]),
        ('{"format": ' + "7" * 5000 + "}", ["not valid JSON", "digits"]),  # int-string limit
        ("[1, 2]", ["not a config.json written by chainrule train"]),
        ("\xff\xfe", ["not valid JSON"]),
    ],
)
def test_unreadable_config(damaged, capsys, text, parts):
    (damaged / "config.json").write_bytes(text.encode("latin-1"))
    _both_commands_fail(damaged, capsys, "config.json", *parts)


def test_a_damaged_split_entry_only_matters_for_split(damaged, capsys):
    _edit_config(damaged, lambda c: c["split"].update(seed=-4))
    status, _, err = run(["evaluate", damaged, "--data", "iris"], capsys)
    assert status == 0, err
    status, _, err = run(["evaluate", damaged, "--data", "iris", "--split", "test"], capsys)
    one_error_line(status, err, "no valid 'split' entry", "--split all")
