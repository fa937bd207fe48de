"""The library's file handling with what Windows hands it.

These run on any machine: they feed the library Windows-style paths and files (drive letters
and backslashes, CRLF line endings, `runs\\digits`), and check the one call that behaves
differently there (the process probe behind the clean-up of stale temporaries).
"""

from __future__ import annotations

import ctypes
import json
import os

import pytest

import chainrule.core.io as cio


class FakeKernel32:
    """The three Windows API calls `pid_alive` makes, for a table of processes."""

    def __init__(self, processes: dict[int, int | str]):
        self.processes = processes  # pid -> exit code (259: still running) or "denied"
        self.error = 0
        self.closed: list[int] = []

    def OpenProcess(self, access, inherit, pid):
        assert access == 0x1000 and inherit is False
        state = self.processes.get(pid)
        if state is None or state == "denied":
            self.error = 87 if state is None else 5
            return 0
        return 1000 + pid

    def GetExitCodeProcess(self, handle, code_ref):
        code_ref._obj.value = self.processes[handle - 1000]
        return 1

    def CloseHandle(self, handle):
        self.closed.append(handle)
        return 1


def test_the_windows_process_probe():
    kernel = FakeKernel32({10: 259, 11: 0, 12: "denied"})

    def alive(pid):
        return cio._windows_pid_alive(pid, kernel, lambda: kernel.error)

    assert alive(10) is True  # still running
    assert alive(11) is False  # exited
    assert alive(12) is True  # someone else's: keep its files
    assert alive(13) is False  # no such process
    assert kernel.closed == [1010, 1011]


class WindowsOs:
    """``os`` as chainrule.core.io sees it on Windows: ``os.name == "nt"``, and a ``kill`` that
    must never be called (signal 0 is CTRL_C_EVENT there). Only that module's ``os`` is
    replaced: pathlib and the rest of the process keep the real one."""

    name = "nt"

    def __getattr__(self, attr):
        return getattr(os, attr)

    @staticmethod
    def kill(pid, sig):
        raise AssertionError(f"os.kill({pid}, {sig}) on Windows")


@pytest.fixture
def on_windows(monkeypatch):
    """chainrule.core.io on Windows, with a process table for its probe: pid -> alive."""
    alive: dict[int, bool] = {}
    monkeypatch.setattr(cio, "os", WindowsOs())
    monkeypatch.setattr(cio, "_windows_pid_alive", lambda pid: alive.get(pid, False))
    return alive


def test_pid_alive_never_signals_on_windows(on_windows):
    on_windows[4242] = True
    assert cio.pid_alive(4242) is True
    assert cio.pid_alive(4243) is False
    assert cio.pid_alive(os.getpid()) is True


def test_stale_temporaries_are_cleaned_on_windows(tmp_path, on_windows):
    dead, live = (
        tmp_path / ".w.bin.4243-0123abcd.tmp.bin",
        tmp_path / ".w.bin.4242-0123abcd.tmp.bin",
    )
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    on_windows[4242] = True
    assert cio.clean_stale_temporaries(tmp_path) == [str(dead)]
    assert live.exists() and not dead.exists()


def test_an_interrupted_overwrite_is_recovered_on_windows(tmp_path, on_windows):
    rundir = pytest.importorskip("chainrule.cli.rundir")
    out = tmp_path / "runs" / "digits"
    old = tmp_path / "runs" / ".digits.4243-0123abcd.old"
    old.mkdir(parents=True)
    (old / "model.safetensors").write_bytes(b"old weights")
    journal = tmp_path / "runs" / ".digits.overwrite.json"
    journal.write_text(json.dumps({"old": old.name, "pid": 4243}), encoding="utf-8")
    on_windows[4243] = True  # the writer still runs: leave everything as it is
    assert rundir.recover_overwrite(out) is None and journal.exists()
    on_windows[4243] = False  # it died between the two renames: put the old run back
    assert "put back" in rundir.recover_overwrite(out)
    assert (out / "model.safetensors").read_bytes() == b"old weights"
    assert not journal.exists()


def test_ctypes_byref_carries_the_value_the_fake_writes():
    code = ctypes.c_ulong()
    FakeKernel32({1: 259}).GetExitCodeProcess(1001, ctypes.byref(code))
    assert code.value == 259


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (r"C:\Users\me\animals.csv", "no such file"),
        (r"C:\Users\me\animals.jsonl", "no such file"),
        (r"D:\data\zoo.db", r"sqlite:///D:\data\zoo.db?table=NAME"),
    ],
)
def test_load_reads_a_windows_path_as_a_file_not_a_url(spec, says):
    data = pytest.importorskip("chainrule.data")
    with pytest.raises((FileNotFoundError, ValueError)) as e:
        data.load(spec)
    assert says in str(e.value)
    assert "unknown dataset" not in str(e.value)


def test_a_sqlite_url_with_a_drive_letter_names_that_file():
    sql = pytest.importorskip("chainrule.data.sql")
    assert sql._sqlite_url_path(r"sqlite:///C:\data\zoo.db?table=t") == r"C:\data\zoo.db"
    assert sql._sqlite_url_path("sqlite:///C:/data/zoo.db?table=t") == "C:/data/zoo.db"


def test_csv_written_on_windows_reads_as_on_posix(tmp_path):
    data = pytest.importorskip("chainrule.data")
    pytest.importorskip("pandas")
    rows = ["height,weight,species", "170.0,60,cat", "165.5,62,dog", "180.0,70,cat"]
    (tmp_path / "crlf.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    (tmp_path / "lf.csv").write_bytes(("\n".join(rows) + "\n").encode())
    crlf = data.from_csv(tmp_path / "crlf.csv", target="species")
    lf = data.from_csv(tmp_path / "lf.csv", target="species")
    assert crlf.features == lf.features == ["height", "weight"]
    assert crlf.classes == lf.classes == ["cat", "dog"]
    assert (crlf.X == lf.X).all() and (crlf.y == lf.y).all()


def test_atomic_writes_without_the_posix_folder_sync(tmp_path, on_windows, monkeypatch):
    # Off POSIX there is no folder fsync (os.open of a folder fails on Windows): skipped.
    opened = []

    def recording_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return os.open(path, *args, **kwargs)

    monkeypatch.setattr(WindowsOs, "open", staticmethod(recording_open), raising=False)
    cio.write_bytes(tmp_path / "weights.bin", b"abc")
    assert (tmp_path / "weights.bin").read_bytes() == b"abc"
    assert opened and str(tmp_path) not in opened  # the folder itself was never opened
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp.bin")]
