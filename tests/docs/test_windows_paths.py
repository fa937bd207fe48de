"""The library's file handling with what Windows hands it.

These run on any machine: they feed the library Windows-style paths and files (drive letters
and backslashes, CRLF line endings, `runs\\digits`), and check the one call that behaves
differently there (the process probe behind the clean-up of stale temporaries).
"""

from __future__ import annotations

import ctypes
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


def test_pid_alive_never_signals_on_windows(monkeypatch):
    def kill(pid, sig):  # on Windows, signal 0 is CTRL_C_EVENT: it must never be sent
        raise AssertionError(f"os.kill({pid}, {sig}) on Windows")

    asked = []
    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(cio, "_windows_pid_alive", lambda pid: asked.append(pid) or False)
    monkeypatch.setattr(os, "name", "nt")
    try:
        assert cio.pid_alive(os.getpid() + 1) is False
        assert cio.pid_alive(os.getpid()) is True
    finally:
        monkeypatch.undo()
    assert asked == [os.getpid() + 1]


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


def test_atomic_writes_without_the_posix_folder_sync(tmp_path, monkeypatch):
    # Off POSIX there is no folder fsync (os.open of a folder fails on Windows): skipped.
    opened = []
    real_open = os.open
    monkeypatch.setattr(
        os, "open", lambda path, *a, **k: opened.append(os.fspath(path)) or real_open(path, *a, **k)
    )
    monkeypatch.setattr(os, "name", "nt")
    try:
        cio.write_bytes(tmp_path / "weights.bin", b"abc")
    finally:
        monkeypatch.undo()
    assert (tmp_path / "weights.bin").read_bytes() == b"abc"
    assert str(tmp_path) not in opened  # the folder itself was never opened
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp.bin")]
