"""`chainrule train` survives interruption: a checkpoint every epoch, `--resume OUT` continues
bit-identically to an uninterrupted run (each run its own process, the first one killed), and
Ctrl-C says how to continue. Also the training options a resumed run must carry over
(schedules with warm-up, weight decay, class weights, gradient clipping, --metric)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ROOT, one_error_line, run

pytest.importorskip("sklearn")

OPTIONS = [
    "--data", "digits", "--hidden", "32", "--dropout", "0.2", "--epochs", "14",
    "--batch-size", "8", "--patience", "14", "--metric", "accuracy", "--lr-schedule", "cosine",
    "--warmup", "2", "--weight-decay", "0.001", "--grad-clip", "5", "--class-weight",
    "balanced", "--no-progress", "--seed", "3",
]  # fmt: skip


# The CNN on the digits as images, with augmentation (its draws must resume too).
IMAGES = [
    "--data", "digits", "--model", "cnn", "--augment", "--epochs", "8", "--batch-size", "8",
    "--patience", "3", "--lr-schedule", "step", "--no-progress", "--seed", "1",
]  # fmt: skip


def _command(*argv):
    # one BLAS thread: small matrix products on a shared machine are many times faster so
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return [sys.executable, "-m", "chainrule.cli", *map(str, argv)], env


def _checkpoint(out: Path) -> Path:
    return out.parent / f".{out.name}.resume" / "checkpoint.safetensors"


def _interrupt(out: Path, sig: int, options=OPTIONS) -> subprocess.CompletedProcess:
    """Start a run, stop it with `sig` once its second epoch's checkpoint exists."""
    cmd, env = _command("train", *options, "--out", out)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = _checkpoint(out)
    deadline = time.monotonic() + 300
    first_seen = None
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.is_file():
            if first_seen is None:
                first_seen = ckpt.stat().st_mtime_ns
            elif ckpt.stat().st_mtime_ns != first_seen:
                break  # a later epoch's checkpoint replaced the first
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout.decode(), stderr.decode())


def _files(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("model.safetensors", "metrics.json")}


@pytest.mark.parametrize("options", [OPTIONS, IMAGES], ids=["table", "images"])
def test_a_killed_run_resumes_bit_identically(tmp_path, options):
    whole = tmp_path / "whole"
    cmd, env = _command("train", *options, "--out", whole)
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert not _checkpoint(whole).parent.exists()  # removed once the run is complete

    cut = tmp_path / "cut"
    killed = _interrupt(cut, signal.SIGKILL, options)
    assert killed.returncode == -signal.SIGKILL
    assert not cut.exists() and _checkpoint(cut).is_file()
    cmd, env = _command("train", "--resume", cut, "--no-progress")
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert _files(cut) == _files(whole)
    h_cut = json.loads((cut / "history.json").read_text())
    h_whole = json.loads((whole / "history.json").read_text())
    assert h_cut["epoch"] == h_whole["epoch"]
    assert h_cut["history"] == h_whole["history"]
    assert h_cut["params"]["kept_epoch"] == h_whole["params"]["kept_epoch"]
    assert not _checkpoint(cut).parent.exists()
    if options is IMAGES:
        return
    assert h_whole["epoch"] == list(range(14))
    # warm-up then cosine: the logged learning rates follow the schedule
    lr = h_whole["history"]["lr"]
    assert lr[0] == pytest.approx(1e-3 / 3, rel=1e-5)
    assert lr[1] == pytest.approx(2e-3 / 3, rel=1e-5)
    assert lr[2] == pytest.approx(1e-3, rel=1e-5)
    assert lr[8] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 6 / 12)), rel=1e-5)


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    stopped = _interrupt(out, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert f"chainrule train --resume {out}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert _checkpoint(out).is_file()


def test_resume_errors(tmp_path, capsys):
    status, _, err = run(["train", "--resume", tmp_path / "nothing"], capsys)
    one_error_line(status, err, "no interrupted run there")
    out = tmp_path / "done"
    status, _, err = run(["train", "--data", "iris", "--epochs", "1", "--out", out], capsys)
    assert status == 0, err
    status, _, err = run(["train", "--resume", out], capsys)
    one_error_line(status, err, "that run finished")


def test_metric_and_plateau_and_the_early_stopping_line(tmp_path, capsys):
    argv = ["train", "--data", "iris", "--hidden", "8", "--epochs", "60", "--patience", "2"]
    argv += ["--metric", "accuracy", "--lr-schedule", "plateau", "--out", tmp_path / "r"]
    argv += ["--no-progress", "--lr", "0.05"]
    status, out, err = run(argv, capsys)
    assert status == 0, err
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert "val_accuracy" in history["history"]
    assert len(history["epoch"]) < 60  # patience 2 on accuracy: early stopping fires
    kept = history["params"]["kept_epoch"]
    assert f"early stopping at epoch {len(history['epoch'])}: no val_accuracy improvement" in out
    assert f"keeping epoch {kept + 1}'s weights" in out
    lrs = history["history"]["lr"]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))  # plateau only ever lowers the rate
    status, _, err = run(["train", "--data", "diabetes", "--metric", "accuracy"], capsys)
    one_error_line(status, err, "--metric accuracy is a classification figure")
    status, _, err = run(["train", "--data", "diabetes", "--class-weight", "balanced"], capsys)
    one_error_line(status, err, "--class-weight balanced applies to classification only")


def test_ctrl_c_in_the_first_epoch_resumes_from_the_start(tmp_path, capsys, monkeypatch):
    """A run stopped before its first epoch ends continues from the starting state saved when
    training began (in-process: a callback raises KeyboardInterrupt in the third batch)."""
    import chainrule.train as train_package
    from chainrule.train import Callback

    argv = ["train", "--data", "iris", "--hidden", "8", "--epochs", "3", "--batch-size", "16"]
    argv += ["--no-progress", "--dropout", "0.3"]
    status, _, err = run([*argv, "--out", tmp_path / "whole"], capsys)
    assert status == 0, err

    class Stop(Callback):
        def on_batch_end(self, batch, logs):
            if batch == 2:
                raise KeyboardInterrupt

    real_fit = train_package.fit

    def fit_stopped_early(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[*callbacks, Stop()], **kwargs)

    monkeypatch.setattr(train_package, "fit", fit_stopped_early)
    status, _, err = run([*argv, "--out", tmp_path / "cut"], capsys)
    assert status == 130
    assert f"chainrule train --resume {tmp_path / 'cut'}" in err
    monkeypatch.setattr(train_package, "fit", real_fit)
    status, out, err = run(["train", "--resume", tmp_path / "cut", "--no-progress"], capsys)
    assert status == 0, err
    assert "resuming" in out and "after epoch 0" in out
    assert _files(tmp_path / "cut") == _files(tmp_path / "whole")


def test_a_run_stopped_early_and_interrupted_while_writing_trains_no_further(
    tmp_path, capsys, monkeypatch
):
    """Early stopping had ended the run when it was interrupted writing its files: --resume
    writes them, with the kept epoch's weights, without training more epochs."""
    from chainrule.cli import train_options

    argv = ["train", "--data", "iris", "--hidden", "8", "--epochs", "40", "--patience", "1"]
    argv += ["--no-progress", "--lr", "0.05"]
    status, _, err = run([*argv, "--out", tmp_path / "whole"], capsys)
    assert status == 0, err
    whole = json.loads((tmp_path / "whole" / "history.json").read_text())
    assert len(whole["epoch"]) < 40  # early stopping ended it

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_options, "run_report", interrupted)
    status, _, err = run([*argv, "--out", tmp_path / "cut"], capsys)
    assert status == 130 and _checkpoint(tmp_path / "cut").is_file()
    monkeypatch.undo()
    status, out, err = run(["train", "--resume", tmp_path / "cut", "--no-progress"], capsys)
    assert status == 0, err
    assert "early stopping at epoch" in out
    assert _files(tmp_path / "cut") == _files(tmp_path / "whole")
    cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert cut["epoch"] == whole["epoch"]


def test_resume_refuses_changed_data(tmp_path, capsys, monkeypatch):
    import chainrule.train as train_package
    from chainrule.train import Callback

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    table = "a,b,label\n" + "".join(f"{p},{q},{int(p > q)}\n" for p, q in x)
    (tmp_path / "t.csv").write_text(table)

    class Stop(Callback):
        def on_epoch_end(self, epoch, logs):
            raise KeyboardInterrupt

    real_fit = train_package.fit
    monkeypatch.setattr(
        train_package,
        "fit",
        lambda *a, callbacks=(), **k: real_fit(*a, callbacks=[*callbacks, Stop()], **k),
    )
    argv = ["train", "--data", tmp_path / "t.csv", "--epochs", "3", "--out", tmp_path / "r"]
    status, _, _ = run([*argv, "--no-progress"], capsys)
    assert status == 130
    monkeypatch.undo()
    (tmp_path / "t.csv").write_text(table.replace(",1\n", ",0\n", 1))
    status, _, err = run(["train", "--resume", tmp_path / "r"], capsys)
    one_error_line(status, err, "changed since the run started")
