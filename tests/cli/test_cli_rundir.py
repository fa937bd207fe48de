"""The run directory on disk: it appears whole or not at all, `--overwrite` survives a kill at
any instant, a bad `--out` is refused before training, a full disk is one line, and what a
killed run left behind is cleaned at the next run (chainrule/cli/rundir.py)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import QUICK, ROOT, leftovers, one_error_line, run

import chainrule.train
from chainrule.cli import CommandError
from chainrule.cli.rundir import clean_stale, staging_dir


def test_staging_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "runs" / "r"
    with pytest.raises(RuntimeError), staging_dir(out, overwrite=False) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise RuntimeError("crash while writing")
    assert not out.exists() and not (tmp_path / "runs").exists()  # the folder made for it too
    with staging_dir(out, overwrite=False) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(CommandError, match="already exists"), staging_dir(out, False):
        pass
    with pytest.raises(RuntimeError), staging_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(os.listdir(out)) == ["a"]  # a failed overwrite keeps the old run
    with staging_dir(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(out)) == ["b"] and leftovers(tmp_path / "runs") == []


# ------------------------------------------------------------------------------------------
# --overwrite killed between its two renames (issue 12, item 3)
# ------------------------------------------------------------------------------------------

# Runs the command with os.replace dying (as a kill would: no cleanup, no finally) at the
# second rename of a directory: the old run has been moved aside, the new one is not in place.
KILLED_BETWEEN_RENAMES = """
import os, sys
real = os.replace
moved = []
def replace(src, dst):
    if os.path.isdir(src):
        moved.append(src)
        if len(moved) == 2:
            os._exit(137)
    return real(src, dst)
os.replace = replace
from chainrule.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_then_kill_an_overwrite(out: Path, capsys) -> str:
    status, _, err = run(["train", "--data", "iris", "--out", out, *QUICK], capsys)
    assert status == 0, err
    config = (out / "config.json").read_text()
    argv = ["train", "--data", "iris", "--out", out, "--overwrite", *QUICK, "--seed", "1"]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_BETWEEN_RENAMES, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 137, proc.stderr
    assert not out.exists()  # the kill hit the window: no run at --out
    return config


def test_an_overwrite_killed_between_renames_is_put_back_by_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    config = _train_then_kill_an_overwrite(out, capsys)
    status, stdout, err = run(["evaluate", out, "--data", "iris", "--json"], capsys)
    assert status == 0, err
    assert "put back" in err and "accuracy" in json.loads(stdout)
    assert (out / "config.json").read_text() == config  # the old run, whole


def test_an_overwrite_killed_between_renames_is_put_back_by_the_next_train(tmp_path, capsys):
    out = tmp_path / "run"
    config = _train_then_kill_an_overwrite(out, capsys)
    status, _, err = run(["train", "--data", "iris", "--out", out, *QUICK], capsys)
    assert status == 2 and "put back" in err and "already exists" in err
    assert (out / "config.json").read_text() == config
    assert leftovers(tmp_path) == []  # journal, set-aside and half-written run: all gone
    argv = ["train", "--data", "iris", "--out", out, "--overwrite", *QUICK, "--seed", "2"]
    status, _, err = run(argv, capsys)
    assert status == 0, err
    assert (out / "config.json").read_text() != config and leftovers(tmp_path) == []


def test_an_error_between_the_renames_puts_the_old_run_back_at_once(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    status, _, err = run(["train", "--data", "iris", "--out", out, *QUICK], capsys)
    config = (out / "config.json").read_text()
    real, moved = os.replace, []

    def replace(src, dst):
        if os.path.isdir(src):
            moved.append(src)
            if len(moved) == 2:
                raise PermissionError(errno.EACCES, "Access is denied")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    status, _, err = run(["train", "--data", "iris", "--out", out, "--overwrite", *QUICK], capsys)
    one_error_line(status, err, f"cannot move the finished run to {out}", "Access is denied")
    assert (out / "config.json").read_text() == config and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------
# --out checked before training (item 9)
# ------------------------------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the command gets as far as training."""

    def fit(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(chainrule.train, "fit", fit)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_out_pointing_at_a_file_is_refused_before_training(
    tmp_path, capsys, no_training, overwrite
):
    (tmp_path / "notes.txt").write_text("keep me")
    argv = ["train", "--data", "iris", "--out", tmp_path / "notes.txt", *QUICK, *overwrite]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "notes.txt is a file, not a run directory")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    status, _, err = run(["train", "--data", "iris", "--out", tmp_path / "notes.txt" / "r"], capsys)
    one_error_line(status, err, "notes.txt is a file, not a folder")


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys, no_training):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    argv = ["train", "--data", "iris", "--out", tmp_path / "photos", "--overwrite", *QUICK]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "not a chainrule run", "--overwrite replaces runs only")
    assert (tmp_path / "photos" / "cat.jpg").exists()


@pytest.mark.parametrize(
    "error", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")]
)
def test_an_unwritable_out_folder_is_refused_before_training(
    tmp_path, capsys, monkeypatch, no_training, error
):
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == locked:
            raise OSError(*error)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    status, _, err = run(["train", "--data", "iris", "--out", locked / "run", *QUICK], capsys)
    one_error_line(status, err, f"cannot write in {locked}", error[1])
    assert os.listdir(locked) == []


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_a_read_only_folder_for_real(tmp_path, capsys, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, _, err = run(["train", "--data", "iris", "--out", locked / "run"], capsys)
    finally:
        locked.chmod(0o755)
    one_error_line(status, err, "cannot write in", "Permission denied")


# ------------------------------------------------------------------------------------------
# A full disk while writing the run (item 7)
# ------------------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "run"
    status, _, err = run(["train", "--data", "iris", "--out", out, *QUICK], capsys)
    one_error_line(status, err, f"cannot write {out}", "No space left on device")
    assert not out.exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------
# What a killed run left behind is cleaned at the next run (item 11)
# ------------------------------------------------------------------------------------------

# Runs the command and dies (no cleanup) while the run directory is being written.
KILLED_WHILE_WRITING = """
import os, sys
from chainrule.train import History
History.plot = lambda self, path, *a, **k: os._exit(137)
from chainrule.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_a_killed_runs_hidden_directory_is_removed_by_the_next_run(tmp_path, capsys):
    argv = ["train", "--data", "iris", "--out", tmp_path / "a", *QUICK]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_WRITING, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 137, proc.stderr
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".a.") and left[0].endswith(".partial")
    status, _, err = run(["train", "--data", "iris", "--out", tmp_path / "b", *QUICK], capsys)
    assert status == 0, err
    # the killed run's resume state stays, for `chainrule train --resume a`
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == [".a.resume", "b"]


def test_cleaning_keeps_runs_live_writers_and_other_files(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale = [
        f".a.{dead}-0123abcd.partial",
        f".b.{dead}-89abcdef.old",
        f".config.json.{dead}-deadbeef.tmp.json",  # chainrule.core.io's temporaries
    ]
    kept = [
        f".c.{alive}-0123abcd.partial",  # a run being written right now
        ".notes.partial",  # not our naming
        "finished",  # a run
        ".hidden",
    ]
    for name in stale + kept:
        if name.endswith(".tmp.json"):
            (tmp_path / name).write_text("{}")
        else:
            (tmp_path / name).mkdir()
            (tmp_path / name / "config.json").write_text("{}")
    clean_stale(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_a_set_aside_run_without_a_journal_is_not_put_back(tmp_path):
    """Only the journal says an .old folder is the run: without it (the overwrite finished
    and only the removal was cut short) nothing comes back."""
    dead = _dead_pid()
    (tmp_path / f".r.{dead}-0123abcd.old").mkdir()
    clean_stale(tmp_path)
    assert os.listdir(tmp_path) == []
