"""The mpiexec command lines of chainrule.distributed.launch (nothing is launched here)."""

from __future__ import annotations

import sys

import pytest

from chainrule.distributed import launch


@pytest.fixture
def open_mpi(monkeypatch):
    monkeypatch.setattr(launch, "_is_open_mpi", lambda path: True)
    monkeypatch.setattr(launch.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(launch.os, "geteuid", lambda: 1000, raising=False)


def test_plain_command(open_mpi):
    cmd = launch.mpiexec_command(2, ["train.py", "--epochs", "3"], mpiexec="/x/mpiexec")
    assert cmd == ["/x/mpiexec", "-n", "2", sys.executable, "train.py", "--epochs", "3"]
    cmd = launch.mpiexec_command(2, ["no-such-command-xyz", "a"], mpiexec="/x/mpiexec")
    assert cmd[3:] == ["no-such-command-xyz", "a"]


def test_commands_installed_with_python_get_their_path(open_mpi, tmp_path, monkeypatch):
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o755)
    monkeypatch.setattr(launch.sys, "executable", str(tmp_path / "python"))
    cmd = launch.mpiexec_command(2, ["tool", "x"], mpiexec="mpiexec")
    assert cmd[3:] == [str(tmp_path / "tool"), "x"]


def test_root_and_few_cores(open_mpi, monkeypatch):
    monkeypatch.setattr(launch.os, "geteuid", lambda: 0, raising=False)
    cmd = launch.mpiexec_command(3, ["t.py"], mpiexec="mpiexec")
    assert cmd[:5] == ["mpiexec", "-n", "3", "--allow-run-as-root", "--oversubscribe"]
    cmd = launch.mpiexec_command(2, ["t.py"], mpiexec="mpiexec", hostfile="hosts")
    assert "--oversubscribe" not in cmd and cmd[4:6] == ["--hostfile", "hosts"]


def test_mpich_flags(monkeypatch):
    monkeypatch.setattr(launch, "_is_open_mpi", lambda path: False)
    monkeypatch.setattr(launch.os, "geteuid", lambda: 0, raising=False)
    cmd = launch.mpiexec_command(4, ["t.py"], mpiexec="mpiexec", hostfile="h", extra=["-v"])
    assert cmd == ["mpiexec", "-n", "4", "-f", "h", "-v", sys.executable, "t.py"]


def test_errors(monkeypatch):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        launch.mpiexec_command(0, ["t.py"], mpiexec="mpiexec")
    with pytest.raises(ValueError, match="give a program"):
        launch.mpiexec_command(2, [], mpiexec="mpiexec")
    monkeypatch.setattr(launch, "find_mpiexec", lambda: None)
    with pytest.raises(FileNotFoundError, match="chainrule\\[distributed\\]"):
        launch.mpiexec_command(2, ["t.py"])


def test_main_dry_run(open_mpi, monkeypatch, capsys):
    monkeypatch.setattr(launch, "find_mpiexec", lambda: "/bin/mpiexec")
    assert launch.main(["-n", "2", "--dry-run", "--", "train.py", "-x"]) == 0
    assert capsys.readouterr().out.split() == [
        "/bin/mpiexec",
        "-n",
        "2",
        sys.executable,
        "train.py",
        "-x",
    ]
