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

from . import dtypes as _dt

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
    "read_safetensors_from",
    "write_safetensors",
    "write_safetensors_to",
    "read_gguf",
    "write_gguf",
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


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
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
    if os.name == "nt":
        # os.kill(pid, 0) is no probe on Windows: 0 is CTRL_C_EVENT, any other signal kills.
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or a platform that cannot tell: keep
    return True


def _windows_pid_alive(
    pid: int, kernel32: Any = None, last_error: Callable[[], int] | None = None
) -> bool:
    """``pid_alive`` on Windows: open the process and ask whether it has exited.

    Args:
        pid: the process id.
        kernel32: the Windows API (a stand-in in tests); loaded when None.
        last_error: ``ctypes.get_last_error`` (a stand-in in tests).
    """
    import ctypes

    if kernel32 is None or last_error is None:  # pragma: no cover - Windows only
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        last_error = ctypes.get_last_error  # type: ignore[attr-defined]
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.GetExitCodeProcess.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong)]
        kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        # ERROR_ACCESS_DENIED (5): someone else's live process; otherwise there is none.
        return last_error() == 5
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def clean_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Remove the temporaries of :func:`atomic_path` that a dead process left in ``directory``.

    Only files named by this module's pattern whose writing process no longer runs on this
    machine are removed; other files, and a live writer's temporaries, are left alone.

    Args:
        directory: the folder to clean (a missing folder is fine).

    Returns:
        The paths removed.
    """
    removed: list[str] = []
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

#: The codes MLX's files add: complex64 and bfloat16 (``mx.save_safetensors``, exports).
MLX_SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    **SAFETENSORS_DTYPES,
    "C64": np.dtype("<c8"),
    "BF16": np.dtype(_dt.BFLOAT16_NP),
}
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
    f.write(memoryview(data.reshape(-1).view(np.uint8)) if data.size else b"")  # type: ignore[arg-type]


def _prepare(
    name: str, value: np.ndarray, who: str, dtypes: dict[str, np.dtype] | None = None
) -> tuple[str, np.ndarray]:
    value = np.asarray(value)
    d = value.dtype
    if dtypes is None:
        table, codes = SAFETENSORS_DTYPES, _CODES
    else:
        table, codes = dtypes, _codes_of(dtypes)
    code = codes.get(d) or (codes.get((d.kind, d.itemsize)) if d.kind in "biufc" else None)  # type: ignore[call-overload]
    if code is None:
        raise TypeError(
            f"{who}: tensor {name!r} has dtype {d}, which a safetensors file cannot hold "
            f"(supported: {sorted({str(t) for t in table.values()})})"
        )
    # Not np.ascontiguousarray: it turns 0-d arrays into shape (1,).
    data = np.asarray(value, dtype=table[code])
    return code, data if data.flags.c_contiguous else data.copy(order="C")


def _codes_of(dtypes: dict[str, np.dtype]) -> dict:
    """dtype (and ``(kind, itemsize)`` for the standard kinds) -> the first code naming it."""
    codes: dict = {}
    for code, d in dtypes.items():
        codes.setdefault(d, code)
        if d.kind in "biufc":
            codes.setdefault((d.kind, d.itemsize), code)
    return codes


def write_safetensors(
    path: str | os.PathLike,
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
    *,
    who: str = "write_safetensors",
    dtypes: dict[str, np.dtype] | None = None,
) -> None:
    """Write ``tensors`` (and string ``metadata``) as a safetensors file, atomically.

    Args:
        path: the destination file.
        tensors: name -> array; the arrays are stored little-endian, C-ordered.
        metadata: the header's ``__metadata__`` (strings to strings), or ``None``.
        who: the caller's name, for error messages.
        dtypes: the code -> dtype table to write with (default :data:`SAFETENSORS_DTYPES`).

    Raises:
        TypeError: if an array's dtype has no safetensors name (complex, object...).
    """
    raw, blobs = _safetensors_payload(tensors, metadata, who, dtypes)
    atomic_write(path, lambda f: _write_payload(f, raw, blobs))


def write_safetensors_to(
    f: IO[bytes],
    tensors: dict[str, np.ndarray],
    metadata: dict[str, str] | None = None,
    *,
    who: str = "write_safetensors",
    dtypes: dict[str, np.dtype] | None = None,
) -> None:
    """Write a safetensors file into an open binary file object (the caller's, not atomic).

    Args:
        f: a binary file object open for writing.
        tensors: name -> array.
        metadata: the header's ``__metadata__`` (strings to strings), or ``None``.
        who: the caller's name, for error messages.
        dtypes: the code -> dtype table to write with (default :data:`SAFETENSORS_DTYPES`).
    """
    raw, blobs = _safetensors_payload(tensors, metadata, who, dtypes)
    _write_payload(f, raw, blobs)


def _safetensors_payload(tensors, metadata, who, dtypes) -> tuple[bytes, list]:
    header: dict[str, Any] = {} if metadata is None else {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, value in tensors.items():
        code, data = _prepare(name, value, who, dtypes)
        header[name] = {
            "dtype": code,
            "shape": list(data.shape),
            "data_offsets": [offset, offset + data.nbytes],
        }
        offset += data.nbytes
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes with spaces
    return raw, blobs


def _write_payload(f: IO[bytes], raw: bytes, blobs: list) -> None:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for data in blobs:
        _write_tensor(f, data)


def _int(value: Any) -> int:
    if type(value) is not int:  # bool, float, str... are not sizes
        raise TypeError
    return value


def _parse_entry(
    name: str, entry: Any, bad: Callable[[str], Exception], table: dict | None = None
) -> tuple:
    table = SAFETENSORS_DTYPES if table is None else table
    if not isinstance(entry, dict):
        raise bad(f"the entry of tensor {name!r} is not an object: {entry!r:.100}")
    code = entry.get("dtype")
    dtype = table.get(code) if isinstance(code, str) else None
    if dtype is None:
        raise bad(
            f"tensor {name!r} has the unknown or unsupported dtype {code!r:.40} (known: "
            f"{', '.join(table)})"
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
    dtypes: dict[str, np.dtype] | None = None,
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
        dtypes: the code -> dtype table to accept (default :data:`SAFETENSORS_DTYPES`).

    Returns:
        ``(tensors, metadata)``: name -> array in the header's order (only the names
        ``check`` chose), and the header's ``__metadata__`` (``None`` if absent).

    Raises:
        FileFormatError: a ``ValueError`` naming the file and what is wrong with it.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return _read_safetensors_open(f, 0, size, path, check, kind, dtypes)


def read_safetensors_from(
    f: IO[bytes],
    check: Callable[[dict[str, TensorInfo], dict[str, str] | None], Iterable[str] | None]
    | None = None,
    *,
    label: str | None = None,
    kind: str = "a valid safetensors file",
    dtypes: dict[str, np.dtype] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """:func:`read_safetensors` for an open, seekable binary file object.

    The file is read from its current position to its end, with the same checks.

    Args:
        f: a binary file object open for reading (seekable).
        check: as for :func:`read_safetensors`.
        label: the name used in error messages (default: ``f.name`` or ``"<stream>"``).
        kind: what the file should be, for error messages.
        dtypes: the code -> dtype table to accept (default :data:`SAFETENSORS_DTYPES`).

    Returns:
        ``(tensors, metadata)`` as :func:`read_safetensors`.
    """
    if label is None:
        label = str(getattr(f, "name", "<stream>"))
    start = f.tell()
    size = f.seek(0, os.SEEK_END) - start
    f.seek(start)
    return _read_safetensors_open(f, start, size, label, check, kind, dtypes)


def _read_safetensors_open(f, start, size, path, check, kind, dtypes):
    def bad(reason: str) -> FileFormatError:
        return FileFormatError(path, f"not {kind} ({reason})")

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
        info, begin, end = _parse_entry(name, entry, bad, dtypes)
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
        f.seek(start + 8 + n + offsets[name])
        if _read_into(f, value) != info.nbytes:
            raise bad(f"the file ended inside tensor {name!r} (did it change meanwhile?)")
        tensors[name] = value
    return tensors, metadata


def _read_into(f: IO[bytes], value: np.ndarray) -> int:
    """Fill a C-contiguous array from ``f``; returns the number of bytes read."""
    view = memoryview(value.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            break
        done += got
    return done


# ----------------------------------------------------------------------------------- GGUF

#: GGUF metadata value types (the format's numbering) -> NumPy dtypes, for numbers.
GGUF_VALUE_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<u1"),
    1: np.dtype("<i1"),
    2: np.dtype("<u2"),
    3: np.dtype("<i2"),
    4: np.dtype("<u4"),
    5: np.dtype("<i4"),
    6: np.dtype("<f4"),
    7: np.dtype(np.bool_),
    10: np.dtype("<u8"),
    11: np.dtype("<i8"),
    12: np.dtype("<f8"),
}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_VALUE_CODES = {d: code for code, d in GGUF_VALUE_DTYPES.items()}
#: GGML tensor types stored as plain arrays -> NumPy dtypes.
GGML_PLAIN_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    24: np.dtype("<i1"),
    25: np.dtype("<i2"),
    26: np.dtype("<i4"),
    27: np.dtype("<i8"),
    28: np.dtype("<f8"),
}
_GGML_CODES = {d: code for code, d in GGML_PLAIN_DTYPES.items()}
#: (elements per block, bytes per block) of the GGML types known without the ``gguf`` package.
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    **{code: (1, d.itemsize) for code, d in GGML_PLAIN_DTYPES.items()},
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    8: (32, 34),  # Q8_0
    30: (1, 2),  # BF16
}
_GGUF_MAGIC = b"GGUF"
_GGUF_ALIGNMENT = 32
_GGUF_MAX_DIMS = 8  # gguflib's bound (GGML itself uses 4)


class GGUFTensor(NamedTuple):
    """One tensor of a GGUF file: its GGML type, its shape (outermost axis first, as NumPy
    orders it; the file stores the reverse) and its data (an array of ``shape`` for the plain
    types of :data:`GGML_PLAIN_DTYPES`, else the raw bytes as ``uint8``)."""

    ggml_type: int
    shape: tuple[int, ...]
    data: np.ndarray


def _ggml_block(ggml_type: int) -> tuple[int, int] | None:
    known = GGML_BLOCKS.get(ggml_type)
    if known is not None:
        return known
    try:  # the other block types' sizes, when the optional ``gguf`` package is installed
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:
        return None
    try:
        return tuple(GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)])  # type: ignore[return-value]
    except (KeyError, ValueError):
        return None


class _Cursor:
    """Bounded reads from a GGUF file: every length is checked against the bytes left."""

    def __init__(self, f: IO[bytes], size: int, bad: Callable[[str], Exception]) -> None:
        self.f, self.size, self.bad, self.pos = f, size, bad, 0

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            raise self.bad(f"{what} ({n} bytes at offset {self.pos}) runs past the end of the file")
        raw = self.f.read(n)
        if len(raw) != n:
            raise self.bad(f"the file ended inside {what}")
        self.pos += n
        return raw

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("<Q", f"the length of {what}")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad(f"{what} is not UTF-8") from None

    def value(self, vtype: int, key: str) -> Any:
        if vtype == _GGUF_STRING:
            return self.string(f"the string value of {key!r}")
        d = GGUF_VALUE_DTYPES.get(vtype)
        if d is not None:
            return np.frombuffer(self.take(d.itemsize, f"the value of {key!r}"), d)[0]
        if vtype != _GGUF_ARRAY:
            raise self.bad(f"metadata {key!r} has the unknown value type {vtype}")
        etype = self.unpack("<I", f"the element type of {key!r}")
        count = self.unpack("<Q", f"the length of {key!r}")
        if etype == _GGUF_STRING:
            if count > (self.size - self.pos) // 8:  # each string takes 8 bytes at least
                raise self.bad(f"metadata {key!r} declares {count} strings, more than fit")
            return [self.string(f"a string of {key!r}") for _ in range(count)]
        d = GGUF_VALUE_DTYPES.get(etype)
        if d is None:
            raise self.bad(f"metadata {key!r} is an array of type {etype} (nested or unknown)")
        raw = self.take(count * d.itemsize, f"the array value of {key!r}")
        return np.frombuffer(raw, d).copy()


def read_gguf(
    path: str | os.PathLike, *, kind: str = "a valid GGUF file"
) -> tuple[dict[str, GGUFTensor], dict[str, Any]]:
    """Read a GGUF file (versions 2 and 3, little-endian), validating before allocating.

    Every length, count and tensor extent the file declares is checked against the file's
    real size before anything of that size is read or allocated.

    Args:
        path: the file.
        kind: what the file should be, for error messages.

    Returns:
        ``(tensors, metadata)``: name -> :class:`GGUFTensor`, and key -> value, where a value
        is a ``str``, a list of ``str``, a NumPy scalar or a 1-d NumPy array.

    Raises:
        FileFormatError: a ``ValueError`` naming the file and what is wrong with it.
    """
    path = os.fspath(path)

    def bad(reason: str) -> FileFormatError:
        return FileFormatError(path, f"not {kind} ({reason})")

    with open(path, "rb") as f:
        c = _Cursor(f, os.fstat(f.fileno()).st_size, bad)
        if c.take(4, "the magic number") != _GGUF_MAGIC:
            raise bad("it does not start with 'GGUF'")
        version = c.unpack("<I", "the version")
        if version not in (2, 3):
            raise bad(f"version {version} (2 and 3 are read; a big-endian file?)")
        n_tensors = c.unpack("<Q", "the tensor count")
        n_kv = c.unpack("<Q", "the metadata count")
        if n_kv > c.size // 12 or n_tensors > c.size // 24:  # the smallest entries' sizes
            raise bad(f"{n_kv} metadata entries and {n_tensors} tensors cannot fit")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = c.string("a metadata key")
            if key in metadata:
                raise bad(f"metadata {key!r} appears twice")
            metadata[key] = c.value(c.unpack("<I", f"the type of {key!r}"), key)
        infos = []
        for _ in range(n_tensors):
            name = c.string("a tensor name")
            ndim = c.unpack("<I", f"the rank of {name!r}")
            if ndim > _GGUF_MAX_DIMS:
                raise bad(
                    f"tensor {name!r} has {ndim} dimensions (at most {_GGUF_MAX_DIMS} are read)"
                )
            dims = struct.unpack(f"<{ndim}Q", c.take(8 * ndim, f"the shape of {name!r}"))
            ggml_type = c.unpack("<I", f"the type of {name!r}")
            offset = c.unpack("<Q", f"the offset of {name!r}")
            infos.append((name, tuple(reversed(dims)), ggml_type, offset))
        alignment = metadata.get("general.alignment", _GGUF_ALIGNMENT)
        alignment = int(alignment) if np.ndim(alignment) == 0 else 0
        if alignment <= 0 or alignment & (alignment - 1):
            raise bad(f"general.alignment {alignment} is not a power of two")
        data_start = c.pos + (-c.pos % alignment)
        tensors: dict[str, GGUFTensor] = {}
        extents = []
        for name, shape, ggml_type, offset in infos:
            if name in tensors:
                raise bad(f"tensor {name!r} appears twice")
            block = _ggml_block(ggml_type)
            if block is None:
                raise bad(
                    f"tensor {name!r} has GGML type {ggml_type}, unknown here (installing the "
                    "'gguf' package teaches the other block types)"
                )
            count = math.prod(shape)
            if shape and shape[-1] % block[0] or count % block[0]:
                raise bad(f"tensor {name!r} of shape {shape} is not whole blocks of {block[0]}")
            nbytes = count // block[0] * block[1]
            begin = data_start + offset
            if begin + nbytes > c.size:
                raise bad(
                    f"tensor {name!r} ({nbytes} bytes at offset {offset}) runs past the end "
                    "of the file (truncated?)"
                )
            extents.append((begin, nbytes))
            tensors[name] = GGUFTensor(ggml_type, shape, np.empty(0, np.uint8))
        for (name, info), (begin, nbytes) in zip(list(tensors.items()), extents):
            plain = GGML_PLAIN_DTYPES.get(info.ggml_type)
            value = np.empty(info.shape if plain is not None else (nbytes,), plain or np.uint8)
            f.seek(begin)
            if _read_into(f, value) != nbytes:
                raise bad(f"the file ended inside tensor {name!r} (did it change meanwhile?)")
            tensors[name] = info._replace(data=value)
    return tensors, metadata


def _gguf_value(value: Any, key: str) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return struct.pack("<IQ", _GGUF_STRING, len(raw)) + raw
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = [struct.pack("<IIQ", _GGUF_ARRAY, _GGUF_STRING, len(value))]
        for v in value:
            raw = v.encode("utf-8")
            parts.append(struct.pack("<Q", len(raw)) + raw)
        return b"".join(parts)
    arr = np.asarray(value)
    code = _GGUF_VALUE_CODES.get(
        arr.dtype.newbyteorder("<") if arr.dtype.kind != "b" else arr.dtype
    )
    if code is None or arr.ndim > 1:
        raise ValueError(
            f"write_gguf: metadata {key!r} must be a string, a list of strings or a 0-d or 1-d "
            f"array of a GGUF number type, not {arr.dtype} of shape {arr.shape}"
        )
    data = arr.astype(GGUF_VALUE_DTYPES[code], copy=False).tobytes()
    if arr.ndim == 0:
        return struct.pack("<I", code) + data
    return struct.pack("<IIQ", _GGUF_ARRAY, code, arr.size) + data


def write_gguf(
    path: str | os.PathLike,
    tensors: dict[str, np.ndarray],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write arrays (and metadata) as a GGUF version 3 file, atomically.

    Args:
        path: the destination file.
        tensors: name -> array of a type in :data:`GGML_PLAIN_DTYPES` (at most 8 dimensions).
        metadata: key -> a ``str``, a list of ``str``, or a 0-d or 1-d NumPy number array.

    Raises:
        ValueError: for a dtype, rank or metadata value GGUF cannot hold.
    """
    kv = [
        struct.pack("<Q", len(k.encode("utf-8"))) + k.encode("utf-8") + _gguf_value(v, k)
        for k, v in (metadata or {}).items()
    ]
    infos, blobs, offset = [], [], 0
    for name, value in tensors.items():
        value = np.asarray(value)
        d = value.dtype.newbyteorder("<")
        code = _GGML_CODES.get(d)
        if code is None or value.ndim > _GGUF_MAX_DIMS:
            raise ValueError(
                f"write_gguf: tensor {name!r} ({value.dtype}, {value.ndim} dimensions) cannot "
                f"be stored (types: {sorted(str(t) for t in _GGML_CODES)}, at most {_GGUF_MAX_DIMS} dimensions)"
            )
        data = np.ascontiguousarray(value, dtype=d).reshape(value.shape)
        raw = name.encode("utf-8")
        infos.append(
            struct.pack("<Q", len(raw))
            + raw
            + struct.pack(f"<I{value.ndim}QIQ", value.ndim, *reversed(value.shape), code, offset)
        )
        blobs.append(data)
        offset += data.nbytes + (-data.nbytes % _GGUF_ALIGNMENT)
    head = b"".join([_GGUF_MAGIC, struct.pack("<IQQ", 3, len(tensors), len(kv)), *kv, *infos])
    head += b"\0" * (-len(head) % _GGUF_ALIGNMENT)

    def write(f: IO[bytes]) -> None:
        f.write(head)
        for data in blobs:
            _write_tensor(f, data)
            f.write(b"\0" * (-data.nbytes % _GGUF_ALIGNMENT))

    atomic_write(path, write)
