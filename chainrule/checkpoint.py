"""Training checkpoints in one file, written atomically and read without pickle.

A checkpoint holds a model's arrays, the optimizer's state (MLX style: the ``optimizer.state``
tree; PyTorch style: ``optimizer.state_dict()``), a learning-rate scheduler's
``state_dict()``, the epoch, the global random states that ``chainrule.seed`` sets (chainrule's,
which drives ``DataLoader`` shuffling and dropout, NumPy's and Python's ``random``), a
``DataLoader``'s own state (its private ``seed=``/``generator=`` stream and its epoch count,
which seeds its workers) and any JSON-serialisable ``extra`` data. Restored into fresh objects
in a new process, training continues exactly as if it had never stopped.

The file is a `safetensors <https://github.com/huggingface/safetensors>`_ file written by
this module (no extra package needed; the ``safetensors`` library can read it): an 8-byte
little-endian header length, a JSON header describing each tensor, then the raw tensor
bytes. Everything that is not a tensor lives as one JSON string in the header's
``__metadata__`` under ``"chainrule"``, next to ``"format": "chainrule.checkpoint"``.
Non-tensor values are limited to JSON types plus tuples, dicts with non-string keys and
NumPy scalars, each encoded explicitly; nothing is ever unpickled, so a checkpoint cannot
run code when loaded.

Writes go to a temporary file in the destination's directory, are flushed to disk
(``fsync``) and then renamed over the destination (``os.replace``), so a crash or an
exception mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
from typing import IO, Any

import numpy as np

from chainrule.core.io import atomic_path, atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write", "atomic_path"]

FORMAT = "chainrule.checkpoint"
VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024  # a header larger than this is garbage, not a checkpoint

# safetensors dtype names <-> NumPy (little-endian) dtypes.
_DTYPES = {
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
_CODES = {(d.kind, d.itemsize): code for code, d in _DTYPES.items()}


# ------------------------------------------------------------------- non-tensor encoding


class _Encoder:
    """Turn a tree of containers, scalars and arrays into JSON plus named tensors."""

    def __init__(self, prefix: str, tensors: dict[str, np.ndarray]) -> None:
        self.prefix = prefix
        self.tensors = tensors

    def _tensor(self, path: str, value: np.ndarray) -> str:
        name = f"{self.prefix}{path}" if path else self.prefix.rstrip(".")
        unique, n = name, 1
        while unique in self.tensors:
            unique, n = f"{name}#{n}", n + 1
        self.tensors[unique] = value
        return unique

    def encode(self, obj: Any, path: str = "") -> Any:
        """``obj`` as JSON data; arrays go to ``self.tensors`` and are referenced by name."""
        sub = f"{path}." if path else ""
        t = type(obj)
        if obj is None or t is bool or t is int or t is str:
            return obj
        if t is float:
            # Strict JSON has no NaN/Infinity (the safetensors reader would refuse the header).
            return obj if math.isfinite(obj) else {"__cr__": "float", "value": repr(obj)}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":  # np.float64 is a float
            value = obj.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = repr(value)
            return {"__cr__": "scalar", "dtype": obj.dtype.str, "value": value}
        if isinstance(obj, (bool, int, float, str)):  # IntEnum and friends: store the value
            return self.encode(next(b for b in (bool, int, float, str) if isinstance(obj, b))(obj))
        data = getattr(obj, "_data", None)
        if isinstance(data, (np.ndarray, np.generic)) and hasattr(obj, "_set_value"):
            # A chainrule array (0-d results of NumPy arithmetic may hold a NumPy scalar).
            return {"__cr__": "array", "name": self._tensor(path, np.asarray(data))}
        if isinstance(obj, np.ndarray):
            return {"__cr__": "ndarray", "name": self._tensor(path, obj)}
        if isinstance(obj, list):
            return [self.encode(v, f"{sub}{i}") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {
                "__cr__": "tuple",
                "items": [self.encode(v, f"{sub}{i}") for i, v in enumerate(obj)],
            }
        if isinstance(obj, dict):
            if all(type(k) is str for k in obj) and "__cr__" not in obj:
                return {k: self.encode(v, f"{sub}{k}") for k, v in obj.items()}
            return {
                "__cr__": "dict",
                "items": [
                    [self.encode(k, f"{sub}key{i}"), self.encode(v, f"{sub}{k}")]
                    for i, (k, v) in enumerate(obj.items())
                ],
            }
        where = f"{self.prefix}{path}" if path else self.prefix.rstrip(".")
        raise TypeError(
            f"save_checkpoint: cannot store {type(obj).__name__} at {where} without pickle; "
            "only arrays, numbers, strings, None, lists, tuples and dicts"
        )


def _decode(obj: Any, tensors: dict[str, np.ndarray], where: str) -> Any:
    """Inverse of :meth:`_Encoder.encode`."""
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("__cr__")
    if kind is None:
        return {k: _decode(v, tensors, where) for k, v in obj.items()}
    if kind in ("array", "ndarray"):
        name = obj.get("name")
        if name not in tensors:
            raise ValueError(f"{where}: the metadata refers to a missing tensor {name!r}")
        value = tensors[name]
        if kind == "ndarray":
            return value
        from chainrule.core.array import _from_value

        return _from_value(value)
    if kind == "float":
        return float(obj["value"])
    if kind == "scalar":
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in "biuf":
            raise ValueError(f"{where}: a stored scalar has the unsupported dtype {dtype}")
        return dtype.type(obj["value"])
    if kind == "tuple":
        return tuple(_decode(v, tensors, where) for v in obj["items"])
    if kind == "dict":
        return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in obj["items"]}
    raise ValueError(f"{where}: unknown encoded value kind {kind!r}")


# -------------------------------------------------------------------------- file format


def _write_tensor(f: IO[bytes], data: np.ndarray) -> None:
    """Append one tensor's bytes (a module-level function so tests can make it fail)."""
    f.write(memoryview(data).cast("B") if data.size else b"")


def _prepare(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    d = value.dtype
    code = _CODES.get((d.kind, d.itemsize))
    if code is None:
        raise TypeError(
            f"save_checkpoint: tensor {name!r} has dtype {d}, which a checkpoint cannot hold "
            f"(supported: {sorted(str(t) for t in _DTYPES.values())})"
        )
    # Not np.ascontiguousarray: it turns 0-d arrays into shape (1,).
    data = np.asarray(value, dtype=_DTYPES[code])
    return code, data if data.flags.c_contiguous else data.copy(order="C")


def _write_file(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, value in tensors.items():
        code, data = _prepare(name, value)
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


def _not_a_checkpoint(path: str, why: str) -> ValueError:
    return ValueError(f"{path}: not a chainrule checkpoint ({why})")


def _read_file(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse and validate a checkpoint file; returns its tensors and decoded metadata."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise _not_a_checkpoint(path, f"the file has only {len(buf)} bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > min(_MAX_HEADER, len(buf) - 8):
        raise _not_a_checkpoint(
            path, f"header length {n} does not fit in a file of {len(buf)} bytes"
        )
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _not_a_checkpoint(path, f"the header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise _not_a_checkpoint(path, "the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _not_a_checkpoint(
            path,
            "no 'format': 'chainrule.checkpoint' entry; a weights-only file loads "
            "with model.load_weights",
        )
    version = meta.get("version")
    if version != str(VERSION):
        raise ValueError(
            f"{path}: checkpoint format version {version!r} is not supported (this "
            f"chainrule reads version {VERSION})"
        )
    body = memoryview(buf)[8 + n :]
    tensors: dict[str, np.ndarray] = {}
    end = 0
    entries = []
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            begin, stop = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _not_a_checkpoint(path, f"bad entry for tensor {name!r}: {info!r:.200}") from None
        entries.append((begin, stop, name, dtype, shape))
    entries.sort()
    for begin, stop, name, dtype, shape in entries:
        count = int(np.prod(shape, dtype=np.int64))
        if min(shape, default=0) < 0 or begin != end or stop - begin != count * dtype.itemsize:
            raise _not_a_checkpoint(
                path,
                f"tensor {name!r} ({dtype} {list(shape)}) has inconsistent offsets "
                f"[{begin}, {stop}]",
            )
        if stop > len(body):
            raise _not_a_checkpoint(
                path,
                f"the file is truncated: tensor {name!r} needs bytes up to {stop} of the "
                f"data section but only {len(body)} are present",
            )
        tensors[name] = (
            np.frombuffer(body[begin:stop], dtype=dtype, count=count).reshape(shape).copy()
        )
        end = stop
    if end != len(body):
        raise _not_a_checkpoint(path, f"{len(body) - end} unexpected bytes after the last tensor")
    try:
        state = json.loads(meta["chainrule"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise _not_a_checkpoint(path, f"unreadable 'chainrule' metadata: {e}") from None
    if not isinstance(state, dict):
        raise _not_a_checkpoint(path, "the 'chainrule' metadata is not a JSON object")
    return tensors, state


# ---------------------------------------------------------------------- model/optimizer glue


def named_arrays(model: Any) -> list[tuple[str, Any]]:
    """The model's arrays (parameters and buffers) as ``(dotted_name, array handle)`` pairs.

    Uses MLX's ``model.parameters()`` tree; the handles are the ones the model (and any
    PyTorch-style optimizer bound to it) holds, so values can be set on them in place.
    """
    from chainrule.utils import tree_flatten

    params = model.parameters()
    if not isinstance(params, dict):  # a PyTorch-style iterator of parameters
        state = getattr(model, "state_dict", None)
        if state is None:
            raise TypeError(
                f"checkpoint: cannot list the arrays of {type(model).__name__}; it needs an "
                "MLX-style parameters() tree or a state_dict()"
            )
        return list(state().items())
    return [(k, v) for k, v in tree_flatten(params) if hasattr(v, "_set_value")]


def is_torch_style(optimizer: Any) -> bool:
    """True for an optimizer bound to parameters (PyTorch style: ``param_groups`` with params)."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        return False
    return any(len(g.get("params", ())) for g in groups)


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    epoch: int | None = None,
    extra: Any = None,
    loader: Any = None,
) -> None:
    """Save everything needed to resume training, in one file, atomically.

    Args:
        path: The file to write (conventionally ``*.safetensors`` or ``*.ckpt``).
        model: A ``chainrule.nn.Module``.
        optimizer: An optimizer in either style, or ``None``.
        scheduler: An object with ``state_dict()`` (``lr_scheduler.StepLR``...), or ``None``.
        epoch: The number of finished epochs (or any integer you want back), or ``None``.
        extra: Any JSON-serialisable data (plus tuples, arrays and NumPy scalars).
        loader: The training ``DataLoader`` (anything with ``state_dict()``), or ``None``: its
            private shuffling generator and epoch count, so its order and its workers' seeds
            continue exactly.

    Raises:
        TypeError: If some state cannot be stored without pickle (the message names it).
    """
    import chainrule.core as mx

    path = os.fspath(path)
    tensors: dict[str, np.ndarray] = {}
    model_names = []
    for name, arr in named_arrays(model):
        tensors[f"model.{name}"] = np.asarray(arr._data)
        model_names.append(name)
    state: dict[str, Any] = {
        "epoch": epoch,
        "model": model_names,
        "random": _Encoder("random.", tensors).encode(mx.random.get_state()),
        "numpy_random": _Encoder("numpy_random.", tensors).encode(np.random.get_state()),
        "python_random": _Encoder("python_random.", tensors).encode(random.getstate()),
        "extra": _Encoder("extra.", tensors).encode(extra),
    }
    if loader is not None:
        state["loader"] = {
            "class": type(loader).__name__,
            "state": _Encoder("loader.", tensors).encode(loader.state_dict()),
        }
    if optimizer is not None:
        if is_torch_style(optimizer):
            opt = {"style": "torch", "state": optimizer.state_dict()}
        else:
            opt = {"style": "mlx", "state": optimizer.state}
        opt["state"] = _Encoder("optimizer.", tensors).encode(opt["state"])
        opt["class"] = type(optimizer).__name__
        state["optimizer"] = opt
    if scheduler is not None:
        state["scheduler"] = {
            "class": type(scheduler).__name__,
            "state": _Encoder("scheduler.", tensors).encode(scheduler.state_dict()),
        }
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "chainrule": json.dumps(state, separators=(",", ":"), allow_nan=False),
    }
    _write_file(path, tensors, metadata)


def load_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    restore_random: bool = True,
    loader: Any = None,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` into existing objects.

    The file is validated first (format, sizes, model names and shapes, optimizer style);
    only then are the model, optimizer, scheduler and random state changed. Model arrays
    are updated in place on the model's own handles, so a PyTorch-style optimizer built on
    ``model.parameters()`` stays bound to them.

    Args:
        path: The checkpoint file.
        model: The model to load the weights into (same architecture as when saved).
        optimizer: The optimizer to restore, or ``None`` to skip its state.
        scheduler: The learning-rate scheduler to restore, or ``None`` to skip it.
        restore_random: Also restore the global random states (chainrule's, NumPy's and
            Python's ``random``; the last two only if the file holds them).
        loader: The ``DataLoader`` to restore (see :func:`save_checkpoint`), or ``None``.

    Returns:
        ``{"epoch": ..., "extra": ...}`` as given to :func:`save_checkpoint`.

    Raises:
        ValueError: If the file is not a chainrule checkpoint, is truncated or corrupt, or
            does not match the model (missing, unexpected or mis-shaped arrays), or holds no
            state for a given optimizer, scheduler or loader, or the optimizer's style differs.
    """
    import chainrule.core as mx

    path = os.fspath(path)
    tensors, state = _read_file(path)
    try:
        saved_names = list(state["model"])
    except (KeyError, TypeError):
        raise _not_a_checkpoint(path, "no model entry in the metadata") from None

    # ---- validate everything before touching anything
    current = named_arrays(model)
    have = {name for name, _ in current}
    missing = [n for n, _ in current if n not in set(saved_names)]
    unexpected = [n for n in saved_names if n not in have]
    if missing or unexpected:
        raise ValueError(
            f"{path}: the checkpoint does not match the model: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}"
        )
    updates = []
    for name, arr in current:
        value = tensors.get(f"model.{name}")
        if value is None:
            raise _not_a_checkpoint(path, f"tensor 'model.{name}' is listed but absent")
        if value.shape != tuple(arr.shape):
            raise ValueError(
                f"{path}: shape mismatch for {name!r}: checkpoint {value.shape}, model "
                f"{tuple(arr.shape)}"
            )
        updates.append((arr, value.astype(np.asarray(arr._data).dtype, copy=False)))
    opt_state = sched_state = random_state = None
    opt = state.get("optimizer")
    sched = state.get("scheduler")
    if optimizer is not None:
        if not isinstance(opt, dict):
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        style = "torch" if is_torch_style(optimizer) else "mlx"
        if opt.get("style") != style:
            raise ValueError(
                f"{path}: the checkpoint holds {opt.get('style')}-style optimizer state "
                f"({opt.get('class')}) but the optimizer given is {style}-style "
                f"({type(optimizer).__name__})"
            )
    if scheduler is not None and not isinstance(sched, dict):
        raise ValueError(f"{path}: the checkpoint holds no scheduler state")
    saved_loader = state.get("loader")
    if loader is not None and not isinstance(saved_loader, dict):
        raise ValueError(
            f"{path}: the checkpoint holds no loader state (save it with "
            "save_checkpoint(..., loader=train_loader))"
        )
    loader_state = numpy_state = python_state = None
    try:
        if optimizer is not None:
            opt_state = _decode(opt.get("state"), tensors, path)
        if scheduler is not None:
            sched_state = _decode(sched.get("state"), tensors, path)
        extra = _decode(state.get("extra"), tensors, path)
        if loader is not None:
            loader_state = _decode(saved_loader.get("state"), tensors, path)
        if restore_random:
            random_state = _decode(state.get("random"), tensors, path)
            np.random.default_rng().bit_generator.state = random_state  # refuses a bad state
            if "numpy_random" in state:  # files of older versions lack the two below
                numpy_state = _decode(state["numpy_random"], tensors, path)
                np.random.RandomState().set_state(numpy_state)
            if "python_random" in state:
                python_state = _decode(state["python_random"], tensors, path)
                python_state = (python_state[0], tuple(python_state[1]), python_state[2])
                random.Random().setstate(python_state)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise _not_a_checkpoint(path, f"malformed metadata: {e}") from None

    # ---- apply: the loader and the optimizer first, as their load_state_dict may still refuse
    # the state (the loader is put back if the optimizer refuses)
    if loader_state is not None:
        previous = loader.state_dict()
        loader.load_state_dict(loader_state)
    try:
        if opt_state is not None:
            if is_torch_style(optimizer):
                optimizer.load_state_dict(opt_state)
            else:
                optimizer.state = opt_state
    except BaseException:
        if loader_state is not None:
            loader.load_state_dict(previous)
        raise
    for arr, value in updates:
        arr._set_value(value)
    if sched_state is not None:
        scheduler.load_state_dict(sched_state)
    if random_state is not None:
        mx.random.set_state(random_state)
    if numpy_state is not None:
        np.random.set_state(numpy_state)
    if python_state is not None:
        random.setstate(python_state)
    return {"epoch": state.get("epoch"), "extra": extra}
