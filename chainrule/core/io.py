"""The one file writer: every file chainrule writes goes through here.

A file is written to a temporary name in its destination's folder, flushed to disk
(``fsync``), renamed over the destination (``os.replace``, atomic on POSIX and Windows), and
the folder's entry is flushed too. A crash or an exception at any instant leaves either the
old file or the new one, never a half-written one.

The temporary file is created with ``os.open(..., 0o666)``, so the process's umask decides
its mode exactly as it would for ``open(path, "w")`` (``tempfile.mkstemp`` would make every
saved file 0600).

Temporary names follow one pattern, ``.<name>.<pid>-<random>.tmp<suffix>``, so the
temporaries a killed process left behind can be recognised and removed
(:func:`clean_stale_temporaries`) without touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import IO

__all__ = ["atomic_path", "atomic_write", "write_bytes", "clean_stale_temporaries", "fsync_dir"]

_TEMP = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp(?P<suffix>(\.[^.]*)?)$")


def fsync_dir(directory: str | os.PathLike) -> None:
    """Flush a folder's entries to disk (a rename is durable only then; no-op off POSIX).

    Args:
        directory: the folder.
    """
    if os.name != "posix":
        return
    fd = os.open(os.fspath(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(base: str) -> str:
    suffix = os.path.splitext(base)[1]
    return f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` atomically.

    The temporary name ends with the same suffix as ``path``, so writers that choose a format
    from the extension behave as they would for ``path``. The temporary file exists (empty,
    mode from the umask) when the body starts. If the body raises, it is removed and ``path``
    is left as it was.

    Args:
        path: the destination file.

    Yields:
        The temporary path to write to.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, _temp_name(os.path.basename(path)))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        os.close(fd)
        break
    try:
        yield tmp
        # Writers that do not fsync themselves still get durable data before the rename.
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    Args:
        path: the destination file.
        write: called with a binary file object open for writing.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: the destination file.
        data: the file's whole content.
    """
    atomic_write(path, lambda f: f.write(data))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or a platform that cannot tell: keep
    return True


def clean_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Remove the temporaries of :func:`atomic_path` that a dead process left in ``directory``.

    Only files named by this module's pattern whose writing process no longer runs on this
    machine are removed; other files, and a live writer's temporaries, are left alone.

    Args:
        directory: the folder to clean (a missing folder is fine).

    Returns:
        The paths removed.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        m = _TEMP.match(name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        full = os.path.join(directory, name)
        if os.path.isfile(full) and not os.path.islink(full):
            with contextlib.suppress(FileNotFoundError):
                os.remove(full)
                removed.append(full)
    return removed
