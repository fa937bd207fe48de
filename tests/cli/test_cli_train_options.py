"""`chainrule train`'s training options do what they say: --weight-decay, --grad-clip,
--class-weight balanced and the learning-rate schedules change training as described."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_helpers import one_error_line, run

from chainrule.cli.train_options import Schedule, balanced_weights

pytest.importorskip("sklearn")

BASE = ["--data", "wine", "--hidden", "16", "--epochs", "4", "--patience", "0", "--no-progress"]


def _weights(out):
    from chainrule.cli.config import read_run

    _, model, _ = read_run(str(out))
    from chainrule.checkpoint import named_arrays

    return {n: np.array(a) for n, a in named_arrays(model)}


def _train(tmp_path, capsys, name, *extra):
    out = tmp_path / name
    status, _, err = run(["train", *BASE, "--out", out, *extra], capsys)
    assert status == 0, err
    return out


def test_weight_decay_and_clipping_change_training(tmp_path, capsys):
    plain = _weights(_train(tmp_path, capsys, "plain"))
    again = _weights(_train(tmp_path, capsys, "again"))
    assert all(np.array_equal(plain[k], again[k]) for k in plain)  # same seed, same run
    for optimizer in ("adam", "adamw", "sgd"):
        a = _weights(_train(tmp_path, capsys, f"{optimizer}0", "--optimizer", optimizer))
        b = _weights(
            _train(
                tmp_path, capsys, f"{optimizer}1", "--optimizer", optimizer, "--weight-decay", "0.5"
            )
        )
        # decay pulls the weights towards 0
        norm = sum(float((v**2).sum()) for v in a.values())
        decayed = sum(float((v**2).sum()) for v in b.values())
        assert decayed < norm, optimizer
    # SGD (Adam's steps hardly depend on the gradient's scale): clipped to a tiny norm, the
    # weights barely move
    sgd = _weights(_train(tmp_path, capsys, "sgd", "--optimizer", "sgd"))
    clipped = _weights(
        _train(tmp_path, capsys, "clip", "--optimizer", "sgd", "--grad-clip", "1e-8")
    )
    out = tmp_path / "init"
    status, _, err = run(["train", *BASE, "--epochs", "1", "--lr", "1e-30", "--out", out], capsys)
    assert status == 0, err
    start = _weights(out)  # a learning rate of 1e-30: the initial weights
    moved = max(float(np.abs(clipped[k] - start[k]).max()) for k in start)
    free = max(float(np.abs(sgd[k] - start[k]).max()) for k in start)
    assert moved < 1e-6 < 1e-2 < free


def test_class_weight_balanced_is_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 30 + [1] * 5 + [2] * 65)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_weights(y, 3), expected, rtol=1e-6)


def test_class_weight_balanced_raises_the_rare_class_recall(tmp_path, capsys):
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] + 0.8 * rng.normal(size=n) > 1.6, "rare", "common")
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y}).to_csv(tmp_path / "t.csv", index=False)
    recalls = []
    for extra in ([], ["--class-weight", "balanced"]):
        out = tmp_path / f"r{len(extra)}"
        argv = ["train", "--data", tmp_path / "t.csv", "--epochs", "30", "--patience", "0"]
        status, _, err = run([*argv, "--no-progress", "--out", out, *extra], capsys)
        assert status == 0, err
        per_class = json.loads((out / "metrics.json").read_text())["per_class"]
        recalls.append(per_class["recall"][per_class["classes"].index("rare")])
    assert recalls[1] > recalls[0]


@pytest.mark.parametrize("kind", ["constant", "step", "cosine"])
def test_schedules_with_warmup(kind, tmp_path, capsys):
    out = _train(tmp_path, capsys, kind, "--epochs", "9", "--lr-schedule", kind, "--warmup", "3")
    lr = json.loads((out / "history.json").read_text())["history"]["lr"]
    base = 1e-3
    expected = [base * (e + 1) / 4 for e in range(3)]
    for e in range(3, 9):
        if kind == "constant":
            expected.append(base)
        elif kind == "step":
            expected.append(base * 0.1 ** ((e - 3) // 2))
        else:
            expected.append(base * 0.5 * (1 + math.cos(math.pi * (e - 3) / 6)))
    np.testing.assert_allclose(lr, expected, rtol=1e-5)


def test_plateau_divides_by_ten_after_patience():
    schedule = Schedule("plateau", 0.1, 20, 0, "val_loss", 2)
    rates = []
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.86]):
        rates.append(schedule.rate(epoch))
        schedule.on_epoch_end(epoch, {"val_loss": loss})
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert schedule.rate(7) == pytest.approx(0.001)


def test_option_errors(tmp_path, capsys):
    status, _, err = run(["train", "--data", "iris", "--augment"], capsys)
    one_error_line(status, err, "--augment apply to images")
    status, _, err = run(["train", "--data", "iris", "--grad-clip", "0"], capsys)
    one_error_line(status, err, "--grad-clip")
    status, _, err = run(["train", "--data", "iris", "--lr-schedule", "linear"], capsys)
    one_error_line(status, err, "--lr-schedule")
