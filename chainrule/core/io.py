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

The `safetensors <https://github.com/huggingface/safetensors>`_ format (an 8-byte
little-endian header length, a JSON header, then the raw tensor bytes) is written and read
here too, for checkpoints and weights files alike, without the ``safetensors`` package.
:func:`read_safetensors` validates the whole header against the file's real size before it
allocates anything, and lets the caller refuse names, shapes and dtypes before any tensor
data is read. JSON that nests deeper than a bound is refused with a ``ValueError`` before
``json.loads`` could run out of stack (:func:`json_loads_bounded`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NamedTuple

import numpy as np

__all__ = [
    "atomic_path",
    "atomic_write",
    "write_bytes",
    "clean_stale_temporaries",
    "fsync_dir",
    "pid_alive",
    "FileFormatError",
    "TensorInfo",
    "json_loads_bounded",
    "read_safetensors",
    "write_safetensors",
    "SAFETENSORS_DTYPES",
]

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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this machine (True when it cannot be told).

    Args:
        pid: a process id, as written into a temporary's name.

    Returns:
        False only when the process is known to be gone.
    """
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
        if m is None or pid_alive(int(m.group("pid"))):
            continue
        full = os.path.join(directory, name)
        if os.path.isfile(full) and not os.path.islink(full):
            with contextlib.suppress(FileNotFoundError):
                os.remove(full)
                removed.append(full)
    return removed


# ---------------------------------------------------------------------------------- JSON

# A JSON string (escapes included), an opening bracket or a closing one.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|([\[{])|([\]}])')


def json_loads_bounded(text: str, max_depth: int) -> Any:
    """``json.loads(text)``, refusing text nested deeper than ``max_depth`` levels first.

    ``json.loads`` recurses once per nesting level, so crafted input a few hundred thousand
    brackets deep would end in ``RecursionError``; the brackets outside strings are counted
    first, without recursion, and such text gets a ``ValueError`` instead.

    Args:
        text: the JSON text.
        max_depth: the deepest nesting of arrays and objects accepted.

    Returns:
        The decoded value.

    Raises:
        ValueError: if the text nests deeper than ``max_depth`` or is not JSON
            (``json.JSONDecodeError`` is a ``ValueError``).
    """
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        if m.group(1):
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif m.group(2):
            depth -= 1
    return json.loads(text)


# ---------------------------------------------------------------------------- safetensors

#: safetensors dtype names -> NumPy (little-endian) dtypes.
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_CODES = {(d.kind, d.itemsize): code for code, d in SAFETENSORS_DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # a safetensors header larger than this is garbage
_HEADER_DEPTH = 16  # a safetensors header nests 3 levels deep


class FileFormatError(ValueError):
    """A file is not what it should be; the message names the file and the problem.

    Attributes:
        path: the file.
        reason: what is wrong, without the file name.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TensorInfo(NamedTuple):
    """What a file declares about one tensor, known before its data is read."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """The size of the tensor's data in bytes."""
        return math.prod(self.shape) * self.dtype.itemsize


def _write_tensor(f: IO[bytes], data: np.ndarray) -> None:
    """Append one tensor's bytes (a module-level function so tests can make it fail)."""
    f.write(memoryview(data.reshape(-1)).cast("B") if data.size else b"")


def _prepare(name: str, value: np.ndarray, who: str) -> tuple[str, np.ndarray]:
    value = np.asarray(value)
    d = value.dtype
    code = _CODES.get((d.kind, d.itemsize)) if d.kind in "biuf" else None
    if code is None:
        raise TypeError(
            f"{who}: tensor {name!r} has dtype {d}, which a safetensors file cannot hold "
            f"(supported: {sorted(str(t) for t in SAFETENSORS_DTYPES.values())})"
        )
    # Not np.ascontiguousarray: it turns 0-d arrays into shape (1,).
    data = np.asarray(value, dtype=SAFETENSORS_DTYPES[code])
    return code, data if data.flags.c_contiguous else data.copy(order="C")


def write_safetensors(
    path: str | os.PathLike,
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
    *,
    who: str = "write_safetensors",
) -> None:
    """Write ``tensors`` (and string ``metadata``) as a safetensors file, atomically.

    Args:
        path: the destination file.
        tensors: name -> array; the arrays are stored little-endian, C-ordered.
        metadata: the header's ``__metadata__`` (strings to strings), or ``None``.
        who: the caller's name, for error messages.

    Raises:
        TypeError: if an array's dtype has no safetensors name (complex, object...).
    """
    header: dict[str, Any] = {} if metadata is None else {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, value in tensors.items():
        code, data = _prepare(name, value, who)
        header[name] = {
            "dtype": code,
            "shape": list(data.shape),
            "data_offsets": [offset, offset + data.nbytes],
        }
        offset += data.nbytes
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes with spaces

    def write(f: IO[bytes]) -> None:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for data in blobs:
            _write_tensor(f, data)

    atomic_write(path, write)


def _int(value: Any) -> int:
    if type(value) is not int:  # bool, float, str... are not sizes
        raise TypeError
    return value


def _parse_entry(name: str, entry: Any, bad: Callable[[str], Exception]) -> tuple:
    if not isinstance(entry, dict):
        raise bad(f"the entry of tensor {name!r} is not an object: {entry!r:.100}")
    code = entry.get("dtype")
    dtype = SAFETENSORS_DTYPES.get(code) if isinstance(code, str) else None
    if dtype is None:
        raise bad(
            f"tensor {name!r} has the unknown or unsupported dtype {code!r:.40} (known: "
            f"{', '.join(SAFETENSORS_DTYPES)})"
        )
    try:
        shape = tuple(_int(s) for s in entry["shape"])
        begin, end = (_int(o) for o in entry["data_offsets"])
        if min(shape, default=0) < 0 or not 0 <= begin <= end:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise bad(
            f"bad entry for tensor {name!r}: shape {entry.get('shape')!r:.60} and "
            f"data_offsets {entry.get('data_offsets')!r:.60} must be non-negative integers"
        ) from None
    info = TensorInfo(dtype, shape)
    if end - begin != info.nbytes:
        raise bad(
            f"tensor {name!r} ({code} {list(shape)}) needs {info.nbytes} bytes but its "
            f"data_offsets [{begin}, {end}] span {end - begin}"
        )
    return info, begin, end


def read_safetensors(
    path: str | os.PathLike,
    check: Callable[[dict[str, TensorInfo], dict[str, str] | None], Iterable[str] | None]
    | None = None,
    *,
    kind: str = "a valid safetensors file",
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """Read a safetensors file, validating everything it declares before allocating.

    The header length is checked against the real file size, then every entry: a known
    dtype, a non-negative shape, ``data_offsets`` that span exactly ``shape * itemsize``
    bytes inside the file, no overlaps, no gaps, nothing after the last tensor. Only then is
    ``check`` called, and only then is tensor data read, each tensor straight into its own
    array.

    Args:
        path: the file.
        check: called with ``({name: TensorInfo}, metadata)`` before any data is read; it may
            raise to refuse the file, and returns the names to read (``None``: all).
        kind: what the file should be, for error messages ("<path>: not <kind> (...)").

    Returns:
        ``(tensors, metadata)``: name -> array in the header's order (only the names
        ``check`` chose), and the header's ``__metadata__`` (``None`` if absent).

    Raises:
        FileFormatError: a ``ValueError`` naming the file and what is wrong with it.
    """
    path = os.fspath(path)

    def bad(reason: str) -> FileFormatError:
        return FileFormatError(path, f"not {kind} ({reason})")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise bad(f"the file has only {size} bytes, fewer than the 8 of a header length")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            raise bad(f"header length {n} does not fit in a file of {size} bytes")
        if n > MAX_HEADER:
            raise bad(f"header length {n} is over the {MAX_HEADER} bytes a header may have")
        raw = f.read(n)
        if len(raw) != n:
            raise bad(f"the file ended inside its {n}-byte header")
        try:
            header = json_loads_bounded(raw.decode("utf-8"), _HEADER_DEPTH)
        except (UnicodeDecodeError, ValueError) as e:
            raise bad(f"the header is not JSON: {e}") from None
        if not isinstance(header, dict):
            raise bad(f"the header is a JSON {type(header).__name__}, not an object")
        metadata = header.pop("__metadata__", None)
        if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise bad("'__metadata__' must map strings to strings")
        data_size = size - 8 - n
        index: dict[str, TensorInfo] = {}
        spans = []
        for name, entry in header.items():
            info, begin, end = _parse_entry(name, entry, bad)
            if end > data_size:
                raise bad(
                    f"tensor {name!r} has data_offsets [{begin}, {end}] beyond the "
                    f"{data_size} bytes of data in the file (truncated?)"
                )
            index[name] = info
            spans.append((begin, end, name))
        position = 0
        for begin, end, name in sorted(spans):
            if begin < position:
                raise bad(f"tensor {name!r} overlaps the one before it (offset {begin})")
            if begin > position:
                raise bad(f"{begin - position} unused bytes before tensor {name!r}")
            position = end
        if position != data_size:
            raise bad(f"{data_size - position} unexpected bytes after the last tensor")
        wanted = None if check is None else check(index, metadata)
        wanted = set(index) if wanted is None else set(wanted)
        offsets = {name: begin for begin, _, name in spans}
        tensors = {}
        for name, info in index.items():
            if name not in wanted:
                continue
            value = np.empty(info.shape, info.dtype)
            f.seek(8 + n + offsets[name])
            if _read_into(f, value) != info.nbytes:
                raise bad(f"the file ended inside tensor {name!r} (did it change meanwhile?)")
            tensors[name] = value
    return tensors, metadata


def _read_into(f: IO[bytes], value: np.ndarray) -> int:
    """Fill a C-contiguous array from ``f``; returns the number of bytes read."""
    view = memoryview(value.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            break
        done += got
    return done
