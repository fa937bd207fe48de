"""Array files with MLX's names: ``mx.save``, ``mx.load``, ``mx.savez``, ``mx.savez_compressed``,
``mx.save_safetensors`` and ``mx.save_gguf``.

Formats: NumPy's ``.npy`` and ``.npz``, `safetensors`, and GGUF (llama.cpp's format), chosen
from the file's extension or ``format=``. Files can be named by a ``str`` or a path object;
``.npy``, ``.npz`` and safetensors can also be open binary file objects.

Safety: loading never unpickles. Every size a file declares (an ``.npy`` header's shape, a
zip member's size, a safetensors or GGUF header) is checked against the bytes really there
before anything of that size is allocated, and a file holding Python objects is refused with
an error naming it. Every file written by name goes through ``core/io.py``'s atomic writer.

As in MLX, the ``.npy``, ``.npz``, ``.safetensors`` and ``.gguf`` extensions are appended to a
path that lacks them when saving. GGUF tensors quantized as Q4_0, Q4_1 or Q8_0 load as MLX's
``(name.weight, name.scales, name.biases)`` triplet (``mx.dequantize`` with ``group_size=32``);
other GGML block types load dequantized to float16, which needs the optional ``gguf`` package.
"""

from __future__ import annotations

import math
import os
import zipfile
from typing import IO, Any

import numpy as np

from . import backend as _backend
from . import dtypes as _dt
from .array import _from_value, array
from .backend import to_host as _to_host
from .io import (
    GGML_PLAIN_DTYPES,
    MLX_SAFETENSORS_DTYPES,
    FileFormatError,
    atomic_write,
    read_gguf,
    read_safetensors,
    read_safetensors_from,
    write_gguf,
    write_safetensors,
    write_safetensors_to,
)
from .ops import _as

__all__ = ["save", "load", "savez", "savez_compressed", "save_safetensors", "save_gguf"]

# A safetensors BF16 tensor read while chainrule has no distinct bfloat16: its raw 16 bits,
# widened to float32 after reading (bfloat16 is float32's upper half).
_CHUNK = 1 << 20


def _is_path(file: Any) -> bool:
    return isinstance(file, (str, os.PathLike))


def _with_suffix(file: str | os.PathLike, suffix: str) -> str:
    name = os.fspath(file)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    return name if name.endswith(suffix) else name + suffix


def _label(file: Any) -> str:
    if _is_path(file):
        return os.fsdecode(os.fspath(file))
    return str(getattr(file, "name", "<stream>"))


# the safetensors codes MLX reads and writes (fp8 codes read as uint8, as MLX does)
_ST_DTYPES = {
    **MLX_SAFETENSORS_DTYPES,
    "F8_E4M3": np.dtype(np.uint8),
    "F8_E8M0": np.dtype(np.uint8),
}


def _to_array(value: np.ndarray, label: str, name: str | None = None) -> array:
    """A loaded NumPy array as a chainrule array, refusing dtypes MLX has not."""
    d = value.dtype
    if d.kind == "V" and d.itemsize == 2 and d.names is None and d.subdtype is None:
        value = value.view(_dt.BFLOAT16_NP)  # MLX writes bfloat16 as "<V2" (NumPy: "|V2")
        d = value.dtype
    what = "the array" if name is None else f"array {name!r}"
    if d.hasobject:
        raise FileFormatError(label, f"{what} holds Python objects; loading never unpickles")
    if d.byteorder not in "=|" and d.kind in "biufc":
        value = value.astype(d.newbyteorder("="))
        d = value.dtype
    try:
        if d == np.complex128:
            raise TypeError
        _dt.from_np(d)
    except TypeError:
        raise FileFormatError(
            label,
            f"{what} has dtype {d}, which MLX arrays cannot hold (complex128, strings and "
            "structured dtypes are refused; load it with numpy.load and convert it)",
        ) from None
    return _from_value(value)


def _np_of(a: Any) -> np.ndarray:
    return _to_host(_as(a)._data)  # GPU values are copied to the host explicitly


# ------------------------------------------------------------------------------------ .npy


def _read_exact(f: IO[bytes], out: np.ndarray, limit: int | None) -> int:
    """Fill a C-contiguous array from ``f``; returns the bytes read."""
    view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")  # type: ignore[arg-type]
    done = 0
    readinto = getattr(f, "readinto", None)
    while done < len(view):
        if readinto is not None:
            got = readinto(view[done : done + _CHUNK])
        else:
            chunk = f.read(min(_CHUNK, len(view) - done))
            got = len(chunk)
            view[done : done + got] = chunk
        if not got:
            break
        done += got
    return done


def _remaining(f: IO[bytes]) -> int | None:
    """Bytes left in a seekable stream (``None`` when it cannot tell)."""
    try:
        if not f.seekable():
            return None
        here = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def _read_npy(f: IO[bytes], label: str, total: int | None = None, name: str | None = None):
    """One ``.npy`` array from a stream, its declared size checked before allocating.

    ``total`` is the stream's whole size when known (a zip member's); else a seekable
    stream's remaining bytes are measured."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, EOFError, SyntaxError) as e:
        raise FileFormatError(label, f"not a valid .npy file ({e})") from None
    what = "the array" if name is None else f"array {name!r}"
    if dtype.hasobject:
        raise FileFormatError(
            label, f"{what} holds Python objects (pickled); loading never unpickles"
        )
    _to_array(np.empty(0, dtype), label, name)  # refuse an unsupported dtype before reading
    nbytes = math.prod(shape) * dtype.itemsize
    left = _remaining(f) if total is None else total - f.tell()
    if left is not None and nbytes > left:
        raise FileFormatError(
            label,
            f"{what} declares shape {shape} of {dtype} ({nbytes} bytes) but only {left} bytes "
            "follow its header (truncated?)",
        )
    if left is None and nbytes > 64 * _CHUNK:  # an unbounded stream: grow as data arrives
        raw = bytearray()
        while len(raw) < nbytes:
            chunk = f.read(min(_CHUNK, nbytes - len(raw)))
            if not chunk:
                break
            raw += chunk
        if len(raw) != nbytes:
            raise FileFormatError(label, f"the file ended inside {what} (truncated?)")
        out = np.frombuffer(raw, dtype).reshape(shape[::-1] if fortran else shape)
    else:
        out = np.empty(shape[::-1] if fortran else shape, dtype)
        if _read_exact(f, out, nbytes) != nbytes:
            raise FileFormatError(label, f"the file ended inside {what} (truncated?)")
    return _to_array(out.T if fortran else out, label, name)


def save(file: str | os.PathLike | IO[bytes], arr: Any) -> None:
    """Save an array to a NumPy ``.npy`` file (``.npy`` is appended to a path without it).

    Args:
        file: a path, or a binary file object open for writing.
        arr: the array.
    """
    data = _np_of(arr)
    if _is_path(file):
        atomic_write(
            _with_suffix(file, ".npy"),  # type: ignore[arg-type]
            lambda f: np.lib.format.write_array(f, data, allow_pickle=False),
        )
    elif hasattr(file, "write"):
        np.lib.format.write_array(file, data, allow_pickle=False)  # type: ignore[arg-type]
    else:
        raise ValueError("[save] file must be a path or a binary file object")


# ------------------------------------------------------------------------------------ .npz


def _savez(file: Any, args: tuple, kwargs: dict, compressed: bool) -> None:
    arrays = dict(kwargs)
    for i, a in enumerate(args):
        key = f"arr_{i}"
        if key in arrays:
            raise ValueError(f"[savez] Cannot use un-named variables and keyword {key}")
        arrays[key] = a
    data = {k: _np_of(v) for k, v in arrays.items()}
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED

    def write(f: IO[bytes]) -> None:
        with zipfile.ZipFile(f, mode="w", compression=method, allowZip64=True) as z:
            for k, v in data.items():
                with z.open(k + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, v, allow_pickle=False)

    if _is_path(file):
        atomic_write(_with_suffix(file, ".npz"), write)
    elif hasattr(file, "write"):
        write(file)
    else:
        raise ValueError("[savez] file must be a path or a binary file object")


def savez(file: str | os.PathLike | IO[bytes], *args: Any, **kwargs: Any) -> None:
    """Save several arrays to an uncompressed ``.npz`` file, as ``numpy.savez``.

    Positional arrays are named ``arr_0``, ``arr_1``...; keyword arrays take their keyword.
    ``.npz`` is appended to a path without it.

    Args:
        file: a path, or a binary file object open for writing.
        *args: arrays named by position.
        **kwargs: arrays named by keyword.
    """
    _savez(file, args, kwargs, compressed=False)


def savez_compressed(file: str | os.PathLike | IO[bytes], *args: Any, **kwargs: Any) -> None:
    """Save several arrays to a compressed (deflate) ``.npz`` file; see :func:`savez`.

    Args:
        file: a path, or a binary file object open for writing.
        *args: arrays named by position.
        **kwargs: arrays named by keyword.
    """
    _savez(file, args, kwargs, compressed=True)


def _load_npz(file: Any, label: str) -> dict[str, array]:
    try:
        z = zipfile.ZipFile(file if not _is_path(file) else os.fspath(file))
    except zipfile.BadZipFile as e:
        raise FileFormatError(label, f"not a valid .npz file ({e})") from None
    out = {}
    with z:
        for info in z.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with z.open(info) as member:
                out[key] = _read_npy(member, label, info.file_size, key)
    return out


# ---------------------------------------------------------------------------- safetensors


def save_safetensors(
    file: str | os.PathLike | IO[bytes],
    arrays: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> None:
    """Save a dict of arrays in the safetensors format (``.safetensors`` appended to a path).

    Args:
        file: a path, or a binary file object open for writing.
        arrays: name -> array.
        metadata: strings to strings, stored in the header's ``__metadata__``.

    Raises:
        ValueError: if ``metadata`` is not a dict of strings to strings.
    """
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise ValueError(
            "[save_safetensors] Metadata must be a dictionary with string keys and values"
        )
    data = {k: _np_of(v) for k, v in arrays.items()}
    try:
        if _is_path(file):
            write_safetensors(
                _with_suffix(file, ".safetensors"),  # type: ignore[arg-type]
                data,
                metadata,
                who="save_safetensors",
                dtypes=_ST_DTYPES,
            )
        elif hasattr(file, "write"):
            write_safetensors_to(file, data, metadata, who="save_safetensors", dtypes=_ST_DTYPES)  # type: ignore[arg-type]
        else:
            raise ValueError("[save_safetensors] file must be a path or a binary file object")
    except TypeError as e:
        raise ValueError(str(e)) from None


def _load_safetensors(file: Any, label: str) -> tuple[dict[str, array], dict[str, str]]:
    if _is_path(file):
        tensors, meta = read_safetensors(file, dtypes=_ST_DTYPES)
    else:
        tensors, meta = read_safetensors_from(file, label=label, dtypes=_ST_DTYPES)
    return {k: _to_array(v, label, k) for k, v in tensors.items()}, dict(meta or {})


# ----------------------------------------------------------------------------------- GGUF

_GGUF_TENSOR_TYPES = ("float32", "float16", "int8", "int16", "int32", "int64", "float64")
_GGUF_META_TYPES = (
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float32",
)


def _gguf_meta_value(key: str, v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v):
        return list(v)
    if isinstance(v, (array, bool, int, float)):
        a = _as(v)
        if a.dtype.name not in _GGUF_META_TYPES:
            raise ValueError(f"[save_gguf] array type {a.dtype} not supported for metadata.")
        if a.ndim > 1:
            raise ValueError("[save_gguf] Cannot save arrays with more than one dimension.")
        if a.size == 0:
            raise ValueError("[save_gguf] Cannot save empty arrays.")
        return _to_host(a._data)
    raise ValueError(f"[save_gguf] Received unexpected type in metadata: {key!r}")


def save_gguf(
    file: str | os.PathLike,
    arrays: dict[str, Any],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save a dict of arrays (and metadata) as a GGUF file (``.gguf`` appended to a path).

    Args:
        file: a path (GGUF is written by name only, as in MLX).
        arrays: name -> array of float32, float16, int8, int16 or int32 (also int64 and
            float64, which GGML has too), at most 8 dimensions.
        metadata: key -> a ``str``, a list of ``str``, or a 0-d or 1-d array of bool, an
            integer type or float32.

    Raises:
        ValueError: for an unsupported dtype or metadata value.
    """
    if not _is_path(file):
        raise ValueError("[save_gguf] Input must be a string or a path")
    tensors = {}
    for k, v in arrays.items():
        a = _as(v)
        if a.dtype.name not in _GGUF_TENSOR_TYPES:
            raise ValueError(f"[save_gguf] dtype {a.dtype} is not supported")
        tensors[k] = _to_host(a._data)
    meta = {k: _gguf_meta_value(k, v) for k, v in (metadata or {}).items()}
    write_gguf(_with_suffix(file, ".gguf"), tensors, meta)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """4-bit values (last axis a multiple of 8) packed 8 to a uint32, the first lowest."""
    q = q.astype(np.uint32).reshape(*q.shape[:-1], -1, 8)
    return (q << (4 * np.arange(8, dtype=np.uint32))).sum(axis=-1, dtype=np.uint32)


def _gguf_quantized(name: str, t, label: str) -> dict[str, array]:
    """MLX's (weight, scales, biases) triplet of a Q4_0 / Q4_1 / Q8_0 tensor."""
    *lead, cols = t.shape or (1,)
    if cols % 32:
        raise FileFormatError(label, f"tensor {name!r} has a last dimension not divisible by 32")
    block_bytes = {2: 18, 3: 20, 8: 34}[t.ggml_type]
    blocks = t.data.reshape(*lead, cols // 32, block_bytes)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    if t.ggml_type == 8:  # Q8_0: 32 int8 values, stored as value + 128 in MLX's 8 bits
        q = (blocks[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint32)
        q = q.reshape(*lead, cols // 4, 4)
        weight = (q << (8 * np.arange(4, dtype=np.uint32))).sum(axis=-1, dtype=np.uint32)
        biases = (-128 * scales.astype(np.float32)).astype(np.float16)
    else:
        packed = blocks[..., 4:] if t.ggml_type == 3 else blocks[..., 2:]
        q = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)  # 32 values per block
        weight = _pack_nibbles(q.reshape(*lead, cols))
        if t.ggml_type == 3:
            biases = blocks[..., 2:4].copy().view(np.float16)[..., 0]
        else:
            biases = (-8 * scales.astype(np.float32)).astype(np.float16)
    prefix = name[: max(len(name) - len(".weight"), 0)]  # as MLX: the last 7 characters go
    return {
        name: _from_value(np.ascontiguousarray(weight)),
        prefix + ".scales": _from_value(np.ascontiguousarray(scales)),
        prefix + ".biases": _from_value(np.ascontiguousarray(biases)),
    }


def _gguf_dequantized(name: str, t, label: str) -> array:
    if t.ggml_type == 30:  # BF16 -> float16, as MLX loads it
        bits = t.data.view("<u2").astype(np.uint32) << 16
        return _from_value(bits.view(np.float32).astype(np.float16).reshape(t.shape))
    try:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize
    except ImportError:  # pragma: no cover - read_gguf already needed the package
        raise FileFormatError(
            label, f"tensor {name!r} needs the 'gguf' package to dequantize"
        ) from None
    qtype = GGMLQuantizationType(t.ggml_type)
    rows = t.data.reshape(*t.shape[:-1], -1) if t.shape else t.data
    values = dequantize(rows, qtype).reshape(t.shape)
    return _from_value(values.astype(np.float16))


def _gguf_meta_array(v: Any) -> Any:
    if isinstance(v, (str, list)):
        return v
    v = np.asarray(v)
    if v.dtype == np.float64:  # MLX reads GGUF's float64 as float32
        v = v.astype(np.float32)
    return _from_value(np.array(v))


def _load_gguf(file: Any, label: str) -> tuple[dict[str, array], dict[str, Any]]:
    if not _is_path(file):
        raise ValueError("[load_gguf] GGUF files are read from a path, not a file object")
    tensors, meta = read_gguf(file)
    out: dict[str, array] = {}
    for name, t in tensors.items():
        if t.ggml_type in (2, 3, 8):
            parts = _gguf_quantized(name, t, label)
        elif t.ggml_type in GGML_PLAIN_DTYPES:
            parts = {name: _from_value(t.data)}
        else:
            parts = {name: _gguf_dequantized(name, t, label)}
        for k, v in parts.items():
            if k in out:
                raise FileFormatError(label, f"the name {k!r} appears twice")
            out[k] = v
    return out, {k: _gguf_meta_array(v) for k, v in meta.items()}


# ------------------------------------------------------------------------------------ load


def load(
    file: str | os.PathLike | IO[bytes],
    /,
    format: str | None = None,
    return_metadata: bool = False,
    *,
    stream: Any = None,
) -> Any:
    """Load arrays from a ``.npy``, ``.npz``, ``.safetensors`` or ``.gguf`` file.

    Args:
        file: a path, or a binary file object (``.npy``, ``.npz`` and safetensors).
        format: ``"npy"``, ``"npz"``, ``"safetensors"`` or ``"gguf"``; by default the file
            name's extension.
        return_metadata: also return the file's metadata (safetensors and GGUF only).
        stream: accepted for MLX compatibility.

    Returns:
        An array (``.npy``), a dict of arrays (the others), or ``(dict, metadata)`` when
        ``return_metadata`` is set: safetensors metadata is a dict of strings, GGUF metadata
        maps keys to strings, lists of strings or arrays.

    Raises:
        ValueError: for an unknown format, or a file that is not what it claims to be
            (:class:`chainrule.core.io.FileFormatError`, which names the file).
    """
    label = _label(file)
    if format is None:
        if not _is_path(file) and not hasattr(file, "read"):
            raise ValueError(
                "[load] Input must be a file-like object opened in binary mode, or string"
            )
        if not _is_path(file) and not hasattr(file, "name"):
            raise ValueError("[load] Could not infer file format: pass format=")
        ext = os.path.splitext(label)[1]
        if not ext:
            raise ValueError("[load] Could not infer file format from extension")
        format = ext[1:]
    if return_metadata and format in ("npy", "npz"):
        raise ValueError(f"[load] metadata not supported for format {format}")
    if format == "npy":
        if _is_path(file):
            with open(os.fspath(file), "rb") as f:  # type: ignore[arg-type]
                return _placed(_read_npy(f, label))
        return _placed(_read_npy(file, label))  # type: ignore[arg-type]
    if format == "npz":
        return _placed(_load_npz(file, label))
    if format == "safetensors":
        arrays, meta = _load_safetensors(file, label)
    elif format == "gguf":
        arrays, meta = _load_gguf(file, label)
    else:
        raise ValueError(f"[load] Unknown file format {format}")
    arrays = _placed(arrays)
    return (arrays, meta) if return_metadata else arrays


def _placed(loaded: Any) -> Any:
    """Loaded arrays (one, or a dict of them) on the default device (the GPU when chosen)."""
    if _backend.DEFAULT_XP[0] is _backend.xp:
        return loaded
    if isinstance(loaded, array):
        return _from_value(_backend.on_default(loaded._data))
    return {k: _placed(v) for k, v in loaded.items()}
