"""Reading and writing a module's weights files: ``.safetensors`` and ``.npz``.

``Module.save_weights`` writes through ``chainrule.core.io``'s atomic writer; the readers check
every declared name, shape and size against the file and the model before any data is read
or decompressed (a zip bomb or a lying header is refused, naming the file and the member).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.io import FileFormatError, TensorInfo, atomic_write, read_safetensors, write_safetensors

__all__ = ["check_names_and_shapes", "read_weights", "write_npz", "write_safetensors_file"]


def check_names_and_shapes(shapes: dict[str, tuple], current: dict, who: str) -> None:
    """Refuse names the model lacks, names it has that are missing, and other shapes."""
    extra = sorted(shapes.keys() - current.keys())
    if extra:
        raise ValueError(f"{who}: {len(extra)} parameter(s) not in the model: " + ", ".join(extra))
    missing = sorted(current.keys() - shapes.keys())
    if missing:
        raise ValueError(f"{who}: {len(missing)} parameter(s) missing: " + ", ".join(missing))
    for k, p in current.items():
        if shapes[k] != p.shape:
            raise ValueError(
                f"{who}: expected shape {p.shape} but received shape {shapes[k]} for parameter {k}"
            )


def write_npz(path: str, flat: dict) -> None:
    """Write ``{name: ndarray}`` as an uncompressed ``.npz``, atomically.

    (``np.savez`` would reject a parameter named "file", its own argument; writing the zip
    directly accepts every name.)
    """

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for k, v in flat.items():
                with zf.open(k + ".npy", "w", force_zip64=True) as m:
                    np.lib.format.write_array(m, v, allow_pickle=False)

    atomic_write(path, write)


def write_safetensors_file(path: str, flat: dict) -> None:
    """Write ``{name: ndarray}`` as a ``.safetensors`` file, atomically."""
    write_safetensors(path, flat, who="save_weights")


# DEFLATE cannot expand data more than 1032 times, so a member that declares more than this
# many bytes per compressed byte lies about its size (a zip bomb or a corrupt archive).
_MAX_NPZ_RATIO = 1100
_NPY_HEADER_LIMIT = 10000  # NumPy's own limit on a .npy header's size


def read_weights(path: str, current: dict, strict: bool) -> dict:
    """Read a weights file, refusing what does not fit ``current`` before reading data."""
    shown = f"load_weights: {path}"

    def check(index: dict[str, TensorInfo], where: str) -> set[str]:
        if strict:
            try:
                check_names_and_shapes({k: info.shape for k, info in index.items()}, current, shown)
            except ValueError as e:
                raise ValueError(f"{e} ({where} before reading any data)") from None
            return set(index)
        return {k for k in index if k in current}

    if path.endswith(".npz"):
        return _read_npz(path, lambda index: check(index, "checked"))
    if path.endswith(".safetensors"):
        tensors, _ = read_safetensors(
            path,
            lambda index, _meta: check(index, "checked"),
            kind="a valid .safetensors weights file",
        )
        return tensors
    raise ValueError(
        f"load_weights: unsupported file extension in {path!r}; use '.npz' or '.safetensors'"
    )


def _npz_members(path: str, zf: zipfile.ZipFile) -> dict[str, tuple]:
    """Every member's key, ZipInfo, dtype, shape and order, from the headers alone."""
    size = os.path.getsize(path)
    infos = zf.infolist()
    packed = sum(i.compress_size for i in infos)
    if packed > size:
        raise FileFormatError(
            path,
            f"not a valid .npz archive: its members claim {packed} compressed bytes in a "
            f"file of {size} (overlapping members, as in a zip bomb)",
        )
    members: dict[str, tuple] = {}
    for info in infos:
        name = info.filename

        def bad(reason: str, name: str = name) -> FileFormatError:
            return FileFormatError(path, f"member {name!r} of the .npz archive: {reason}")

        key = name[:-4] if name.endswith(".npy") else name
        if key in members:
            raise bad("a second member with this name")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise bad(f"compression method {info.compress_type}; .npz files are stored or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise bad(
                f"stored uncompressed, yet it declares {info.file_size} bytes in "
                f"{info.compress_size}"
            )
        if info.file_size > max(info.compress_size, 1) * _MAX_NPZ_RATIO:
            raise bad(
                f"declares {info.file_size} bytes from {info.compress_size} compressed "
                f"bytes, more than {_MAX_NPZ_RATIO} times as many, more than DEFLATE can "
                "expand (a zip bomb or a corrupt archive)"
            )
        try:
            with zf.open(info) as m:  # decompresses the first block only
                version = np.lib.format.read_magic(m)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(m, _NPY_HEADER_LIMIT)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(m, _NPY_HEADER_LIMIT)
                else:
                    raise ValueError(f".npy format version {version} is not supported")
                offset = m.tell()
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as e:
            raise bad(f"cannot read its .npy header ({e})") from None
        shape, fortran, dtype = header
        if dtype.hasobject:
            raise bad(f"dtype {dtype} holds Python objects, which would need pickle; refused")
        if dtype.kind not in "biufc" or dtype.fields is not None:
            raise bad(f"dtype {dtype} is not a numeric dtype")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            raise bad(
                f"declares shape {shape} of {dtype} ({nbytes} bytes of data) but the archive "
                f"says it holds {info.file_size - offset}"
            )
        members[key] = (info, dtype, tuple(shape), fortran, offset)
    return members


def _read_npz(path: str, check: Callable[[dict[str, TensorInfo]], set[str]]) -> dict:
    """Read an ``.npz`` without pickle; ``check`` sees every member's dtype and shape (from
    the headers) before any data is decompressed, and returns the keys to read."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise FileFormatError(
            path, f"not a valid .npz archive (it starts with {magic!r}, not a zip signature)"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise FileFormatError(path, f"not a valid .npz archive ({e})") from None
    with npz:
        zf = npz.zip
        members = _npz_members(path, zf)
        wanted = check({k: TensorInfo(m[1], m[2]) for k, m in members.items()})
        out = {}
        for key, (info, dtype, shape, fortran, offset) in members.items():
            if key not in wanted:
                continue
            flat = np.empty(math.prod(shape), dtype)
            try:
                with zf.open(info) as m:
                    m.seek(offset)
                    view = memoryview(flat.view(np.uint8))
                    done = 0
                    while done < len(view):
                        got = m.readinto(view[done:])
                        if not got:
                            break
                        done += got
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise FileFormatError(
                    path, f"member {info.filename!r} of the .npz archive is corrupt ({e})"
                ) from None
            if done != len(view):
                raise FileFormatError(
                    path,
                    f"member {info.filename!r} of the .npz archive ends after {done} of its "
                    f"{len(view)} bytes of data",
                )
            out[key] = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
        return out
