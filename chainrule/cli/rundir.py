"""The run directory on disk: where it goes, how it appears all at once, and how an
interrupted run is cleaned up or put back.

`chainrule train` fills a hidden staging directory next to `--out`,
``.<name>.<pid>-<8 hex>.partial``, created before training starts (so an unwritable place is
reported at once), and renames it to `--out` when every file is written. Replacing an existing
run (`--overwrite`) takes two renames, the old run aside to ``.<name>.<pid>-<8 hex>.old`` and
the new one in, and no file system swaps two directories atomically (Windows included). So a
small journal, ``.<name>.overwrite.json``, is written first and removed last: if the process
dies between the renames, the next command that looks for the run (`train` on the same parent
folder, `evaluate`, `predict`) moves the old run back.

Hidden staging and set-aside directories whose process no longer runs, and the file writer's
temporaries (`chainrule.core.io`), are removed at the next `train` in the same folder. Nothing
else is touched: finished runs, and directories a live process is writing, stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chainrule.core.io import clean_stale_temporaries, fsync_dir, pid_alive, write_bytes

from .errors import CommandError

__all__ = [
    "default_out",
    "staging_dir",
    "recover_overwrite",
    "clean_stale",
    "check_out",
    "write_json",
    "writing",
]

_TEMP_DIR = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>partial|old)$")
_JOURNAL = re.compile(r"^\.(?P<base>.+)\.overwrite\.json$")


def default_out(spec: str) -> Path:
    """`runs/NAME` for a data source (`runs/NAME-2`, ... when taken).

    Args:
        spec: the `--data` argument.

    Returns:
        A path that does not exist yet.
    """
    name = spec.split("?", 1)[0]
    if "://" in spec:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(spec).query)
        name = query.get("table", [Path(urlsplit(spec).path).stem or "sql"])[0]
    else:
        name = Path(name).stem or "run"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "run"
    out = Path("runs") / name
    k = 2
    while out.exists():
        out = Path("runs") / f"{name}-{k}"
        k += 1
    return out


def _parent(out: Path) -> Path:
    return out.parent if str(out.parent) else Path(".")


def _hidden_dir(out: Path, kind: str) -> Path:
    return _parent(out) / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _journal(out: Path) -> Path:
    return _parent(out) / f".{out.name}.overwrite.json"


def recover_overwrite(out: Path) -> str | None:
    """Finish or undo an `--overwrite` of `out` that a dead process left half done.

    With the old run set aside and no run at `out` (the process died between the two
    renames), the old run is moved back. With the new run in place, the old one is removed.

    Args:
        out: the run directory.

    Returns:
        A sentence saying what was done, or None if there was nothing to do.

    Raises:
        CommandError: if the journal cannot be read.
    """
    journal = _journal(out)
    if not journal.is_file():
        return None
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        old = _parent(out) / str(record["old"])
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CommandError(
            f"{journal}: unreadable record of an interrupted --overwrite of {out} ({e}); "
            "look for the old run in the hidden .old folder next to it, then delete the file"
        ) from None
    if pid != os.getpid() and pid_alive(pid):
        return None  # that process is replacing the run right now
    done = None
    if not out.exists() and old.is_dir():
        os.replace(old, out)
        done = f"put back {out}: an --overwrite was interrupted before the new run was in place"
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    journal.unlink()
    fsync_dir(_parent(out))
    return done


def clean_stale(folder: Path) -> list[str]:
    """Recover interrupted overwrites in `folder`, then remove what dead runs left there.

    Removed: hidden ``.<name>.<pid>-<hex>.partial`` / ``.old`` directories and
    `chainrule.core.io` temporaries whose process no longer runs. Never removed: a run
    directory, anything of a live process, anything not named by these patterns.

    Args:
        folder: the parent folder of a run directory (a missing one is fine).

    Returns:
        Sentences saying what was put back (removals are silent).
    """
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    notes = []
    for name in names:
        m = _JOURNAL.match(name)
        if m is not None:
            note = recover_overwrite(folder / m.group("base"))
            if note:
                notes.append(note)
    for name in os.listdir(folder):
        m = _TEMP_DIR.match(name)
        path = folder / name
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
    clean_stale_temporaries(folder)
    return notes


def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file()


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an `--out` that cannot become a run directory, before any work is done.

    Args:
        out: the run directory to create.
        overwrite: whether an existing run may be replaced.

    Raises:
        CommandError: `out` is a file, exists without `overwrite`, is a non-empty folder that
            is not a run (`--overwrite` replaces runs only), or a parent is not a folder.
    """
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise CommandError(f"--out {out} is a file, not a run directory; choose another --out")
        if not overwrite:
            raise CommandError(f"{out} already exists (choose another --out, or add --overwrite)")
        if not _is_run(out) and any(out.iterdir()):
            raise CommandError(
                f"--out {out} is a folder that is not a chainrule run (no config.json); "
                "--overwrite replaces runs only"
            )
    parent = _parent(out).absolute()
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise CommandError(f"--out {out}: {existing} is a file, not a folder")


def _make_parents(parent: Path) -> list[Path]:
    """mkdir -p, returning the folders created (deepest last)."""
    missing = []
    p = parent.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    parent.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


@contextlib.contextmanager
def staging_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """A hidden directory next to `out` that becomes `out` only if the body succeeds.

    It is created on entry, so a place that cannot be written is reported before the body
    runs; if the body raises, it is removed (with any parent folders created for it).

    Args:
        out: the directory to create.
        overwrite: replace `out` if it already exists (only after success).

    Yields:
        The directory to fill.

    Raises:
        CommandError: if `out` exists and `overwrite` is false, is a file, or its folder
            cannot be created or written.
    """
    if out.exists() and not overwrite:
        raise CommandError(f"{out} already exists (choose another --out, or add --overwrite)")
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file, not a run directory; choose another --out")
    parent = _parent(out)
    try:
        created = _make_parents(parent)
    except OSError as e:
        raise CommandError(f"--out {out}: cannot create {parent}: {_reason(e)}") from None
    tmp = _hidden_dir(out, "partial")
    try:
        os.mkdir(tmp)
    except OSError as e:
        _remove_empty(created)
        raise CommandError(f"--out {out}: cannot write in {parent}: {_reason(e)}") from None
    try:
        yield tmp
        try:
            _make_ordinary(tmp)
            if out.exists():
                _replace_run(out, tmp)
            else:
                os.replace(tmp, out)
                fsync_dir(parent)
        except OSError as e:
            raise CommandError(f"cannot move the finished run to {out}: {_reason(e)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def _replace_run(out: Path, new: Path) -> None:
    """Move `new` to `out` in place of the run there, with a journal for a crash between."""
    parent = _parent(out)
    old = _hidden_dir(out, "old")
    journal = _journal(out)
    record = {"out": out.name, "old": old.name, "new": new.name, "pid": os.getpid()}
    write_bytes(journal, (json.dumps(record) + "\n").encode("utf-8"))
    os.replace(out, old)
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(old, out)  # an error (not a crash) between the renames: undo the first
        journal.unlink()
        raise
    journal.unlink()
    fsync_dir(parent)
    shutil.rmtree(old, ignore_errors=True)  # what is left is removed by the next clean_stale


def _make_ordinary(tmp: Path) -> None:
    """Give the run the modes an ordinary `mkdir` and `open(..., "w")` would (from the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    for entry in tmp.iterdir():
        if entry.is_file():
            os.chmod(entry, 0o666 & ~umask)


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failure to write `path` (a full disk, a lost mount) into one line naming it.

    Args:
        path: the file being written (as the user will know it: in the run directory, not
            the hidden staging one).

    Raises:
        CommandError: for an OSError.
    """
    try:
        yield
    except OSError as e:
        raise CommandError(f"cannot write {path}: {_reason(e)}") from None


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (no NaN: JSON cannot hold it)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    write_bytes(path, text.encode("utf-8"))
