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

Writes go through :mod:`chainrule.core.io`: a temporary file in the destination's directory,
flushed to disk (``fsync``) and renamed over the destination (``os.replace``), so a crash or
an exception mid-write leaves the previous file intact; the file's mode follows the umask,
and temporaries that a killed process left in the folder are removed first.

Reading validates before it allocates or changes anything: the header against the file's
size, the model's names, shapes and dtypes against the header (before any tensor is read),
the optimizer's class, hyper-parameter names and per-parameter state against the optimizer
given. The ``chainrule`` metadata may nest at most :data:`MAX_DEPTH` levels (saving refuses
deeper values, loading refuses such files with a ``ValueError``, never a ``RecursionError``).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import random
from typing import Any

import numpy as np

from chainrule.core import backend as _backend

# atomic_write and atomic_path are re-exported for the modules that still import them here.
from chainrule.core.io import (
    FileFormatError,
    TensorInfo,
    atomic_path,
    atomic_write,
    clean_stale_temporaries,
    json_loads_bounded,
    read_safetensors,
    write_safetensors,
)

__all__ = ["save_checkpoint", "load_checkpoint", "atomic_write", "atomic_path"]

FORMAT = "chainrule.checkpoint"
VERSION = 1
#: The deepest nesting of JSON arrays and objects the ``chainrule`` metadata may have.
MAX_DEPTH = 100


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

    def _nest(self, path: str, depth: int) -> int:
        """The depth of a JSON container made inside ``depth`` others; refuses one too deep."""
        if depth + 1 > MAX_DEPTH:
            where = f"{self.prefix}{path}" if path else self.prefix.rstrip(".")
            raise ValueError(
                f"save_checkpoint: the value at {where} is nested deeper than {MAX_DEPTH} "
                "levels (or contains itself), more than a checkpoint stores"
            )
        return depth + 1

    def encode(self, obj: Any, path: str = "", depth: int = 1) -> Any:
        """``obj`` as JSON data; arrays go to ``self.tensors`` and are referenced by name.

        ``depth`` is the number of JSON containers around ``obj`` in the metadata; a value
        that would nest deeper than :data:`MAX_DEPTH` is refused with a ``ValueError``.
        """
        sub = f"{path}." if path else ""
        t = type(obj)
        if obj is None or t is bool or t is int or t is str:
            return obj
        if t is float:
            if math.isfinite(obj):
                return obj
            # Strict JSON has no NaN/Infinity (the safetensors reader would refuse the header).
            self._nest(path, depth)
            return {"__cr__": "float", "value": repr(obj)}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":  # np.float64 is a float
            self._nest(path, depth)
            value = obj.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = repr(value)
            return {"__cr__": "scalar", "dtype": obj.dtype.str, "value": value}
        if isinstance(obj, (bool, int, float, str)):  # IntEnum and friends: store the value
            base = next(b for b in (bool, int, float, str) if isinstance(obj, b))
            return self.encode(base(obj), path, depth)
        data = getattr(obj, "_data", None)
        if (isinstance(data, (np.ndarray, np.generic)) or _backend.is_gpu(data)) and hasattr(
            obj, "_set_value"
        ):
            # A chainrule array (0-d results of NumPy arithmetic may hold a NumPy scalar); GPU
            # values are copied to the host explicitly.
            self._nest(path, depth)
            host = _backend.to_host(data) if _backend.is_gpu(data) else np.asarray(data)
            return {"__cr__": "array", "name": self._tensor(path, host)}
        if isinstance(obj, np.ndarray):
            self._nest(path, depth)
            return {"__cr__": "ndarray", "name": self._tensor(path, obj)}
        if isinstance(obj, list):
            inner = self._nest(path, depth)
            return [self.encode(v, f"{sub}{i}", inner) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):  # {"__cr__": "tuple", "items": [...]}: two levels
            inner = self._nest(path, self._nest(path, depth))
            return {
                "__cr__": "tuple",
                "items": [self.encode(v, f"{sub}{i}", inner) for i, v in enumerate(obj)],
            }
        if isinstance(obj, dict):
            if all(type(k) is str for k in obj) and "__cr__" not in obj:
                inner = self._nest(path, depth)
                return {k: self.encode(v, f"{sub}{k}", inner) for k, v in obj.items()}
            # {"__cr__": "dict", "items": [[key, value], ...]}: three levels
            inner = self._nest(path, self._nest(path, self._nest(path, depth)))
            return {
                "__cr__": "dict",
                "items": [
                    [self.encode(k, f"{sub}key{i}", inner), self.encode(v, f"{sub}{k}", inner)]
                    for i, (k, v) in enumerate(obj.items())
                ],
            }
        where = f"{self.prefix}{path}" if path else self.prefix.rstrip(".")
        raise TypeError(
            f"save_checkpoint: cannot store {type(obj).__name__} at {where} without pickle; "
            "only arrays, numbers, strings, None, lists, tuples and dicts"
        )


def _decode(obj: Any, tensors: dict[str, np.ndarray], where: str) -> Any:
    """Inverse of :meth:`_Encoder.encode`.

    Recursive, but over JSON that :func:`json_loads_bounded` has limited to
    :data:`MAX_DEPTH` levels, so the recursion is bounded too.
    """
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
        from chainrule.core.extend import from_value

        # arrays come back on the default device; 0-d values (step counts) stay on the host
        return from_value(_backend.on_default(value) if value.ndim else value)
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


def _write_file(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    write_safetensors(path, tensors, metadata, who="save_checkpoint")


def _not_a_checkpoint(path: str, why: str) -> ValueError:
    return FileFormatError(path, f"not a chainrule checkpoint ({why})")


def _read_file(path: str, check: Any = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse and validate a checkpoint file; returns its tensors and decoded metadata.

    ``check(index, state)``, if given, sees the tensors' declared dtypes and shapes and the
    decoded ``chainrule`` metadata before any tensor data is read, and may raise.
    """
    found: dict[str, Any] = {}

    def check_header(index: dict[str, TensorInfo], meta: dict[str, str] | None) -> None:
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
        text = meta.get("chainrule")
        if not isinstance(text, str):
            raise _not_a_checkpoint(path, "no 'chainrule' metadata")
        try:
            state = json_loads_bounded(text, MAX_DEPTH)
        except ValueError as e:
            raise _not_a_checkpoint(path, f"unreadable 'chainrule' metadata: {e}") from None
        if not isinstance(state, dict):
            raise _not_a_checkpoint(path, "the 'chainrule' metadata is not a JSON object")
        if check is not None:
            check(index, state)
        found["state"] = state

    tensors, _ = read_safetensors(path, check_header, kind="a chainrule checkpoint")
    return tensors, found["state"]


def _kind(dtype: np.dtype) -> str:
    return {"b": "bool", "i": "integer", "u": "integer", "f": "floating"}.get(dtype.kind, "other")


def _check_model(
    path: str, state: dict[str, Any], index: dict[str, TensorInfo], current: list
) -> None:
    """Refuse a checkpoint whose model arrays (names, shapes, dtype kinds) differ."""
    try:
        saved_names = [str(n) for n in state["model"]]
    except (KeyError, TypeError):
        raise _not_a_checkpoint(path, "no model entry in the metadata") from None
    have = {name for name, _ in current}
    saved = set(saved_names)
    missing = [n for n, _ in current if n not in saved]
    unexpected = [n for n in saved_names if n not in have]
    if missing or unexpected:
        raise ValueError(
            f"{path}: the checkpoint does not match the model: missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}"
        )
    for name, arr in current:
        info = index.get(f"model.{name}")
        if info is None:
            raise _not_a_checkpoint(path, f"tensor 'model.{name}' is listed but absent")
        if info.shape != tuple(arr.shape):
            raise ValueError(
                f"{path}: shape mismatch for {name!r}: checkpoint {info.shape}, model "
                f"{tuple(arr.shape)}"
            )
        mine = arr._data.dtype
        if _kind(info.dtype) != _kind(mine):
            raise ValueError(
                f"{path}: dtype mismatch for {name!r}: checkpoint {info.dtype}, model {mine} "
                f"({_kind(info.dtype)} values cannot load into a {_kind(mine)} array)"
            )


# ------------------------------------------------------------------ optimizer identity


def _qualified(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _hyper_kind(value: Any) -> str:
    """A hyper-parameter's kind: none, bool, number, str, sequence, dict, schedule..."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (numbers.Number, np.generic)):
        return "number"
    if getattr(value, "size", None) == 1 and hasattr(value, "shape"):
        return "number"  # a one-element array (a learning rate as an array)
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "sequence"
    if isinstance(value, dict):
        return "dict"
    if callable(value):
        return "schedule"
    return type(value).__name__


def _signature(optimizer: Any) -> dict[str, Any]:
    """The optimizer's identity stored in a checkpoint: class, hyper-parameter kinds, parts."""
    defaults = getattr(optimizer, "defaults", None)
    sig: dict[str, Any] = {
        "class": type(optimizer).__name__,
        "qualname": _qualified(optimizer),
        "hyper": {
            str(k): _hyper_kind(v) for k, v in sorted((defaults or {}).items()) if k != "params"
        },
    }
    parts = getattr(optimizer, "optimizers", None)
    if isinstance(parts, (list, tuple)):  # MultiOptimizer
        sig["parts"] = [_signature(o) for o in parts]
    return sig


def _compatible_kinds(saved: Any, mine: str) -> bool:
    # None stands for "off" (Adafactor's beta_1), and a bool is a number in Python
    return saved == mine or "none" in (saved, mine) or {saved, mine} == {"bool", "number"}


def _check_signature(path: str, saved: dict, optimizer: Any, where: str = "") -> None:
    """Refuse optimizer state saved by another class or another set of hyper-parameters.

    Checkpoints that predate the ``qualname`` field are compared by class name only.
    """
    mine = _signature(optimizer)
    label = f" (part {where})" if where else ""
    qualname = saved.get("qualname")
    same = qualname == mine["qualname"] if qualname is not None else None
    if same is None and "class" in saved:
        same = saved["class"] == mine["class"]
    if same is False:
        raise ValueError(
            f"{path}: the checkpoint holds {saved.get('class')} optimizer state "
            f"({qualname or 'saved without its module'}){label} but the optimizer given is "
            f"{mine['class']} ({mine['qualname']}); build a {saved.get('class')} to resume, "
            "or pass optimizer=None to load the rest"
        )
    hyper = saved.get("hyper")
    if isinstance(hyper, dict):
        if set(hyper) != set(mine["hyper"]):
            raise ValueError(
                f"{path}: the checkpoint's {mine['class']}{label} has the hyper-parameters "
                f"{sorted(hyper)} but the optimizer given has {sorted(mine['hyper'])}"
            )
        for name, kind in mine["hyper"].items():
            if name != "lr" and not _compatible_kinds(hyper[name], kind):
                raise ValueError(
                    f"{path}: hyper-parameter {name!r} of the checkpoint's {mine['class']}"
                    f"{label} is a {hyper[name]}, the optimizer given has a {kind}"
                )
    parts = saved.get("parts")
    if isinstance(parts, list) and "parts" in mine:
        if len(parts) != len(mine["parts"]):
            raise ValueError(
                f"{path}: the checkpoint's {mine['class']} combines {len(parts)} optimizers, "
                f"the one given {len(mine['parts'])}"
            )
        for i, (p, o) in enumerate(zip(parts, optimizer.optimizers)):
            if isinstance(p, dict):
                _check_signature(path, p, o, f"{where}{i}" if not where else f"{where}.{i}")


# ------------------------------------------------------------ optimizer state structure


def _shape(value: Any) -> tuple | None:
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(shape)


def _expected_state(optimizer: Any, parameter: Any, group: dict | None) -> dict | None:
    """What ``optimizer.init_single`` creates for ``parameter`` (``None``: unknown)."""
    init = getattr(optimizer, "init_single", None)
    if init is None:
        return None
    had_group = "_group" in getattr(optimizer, "__dict__", {})
    previous = optimizer.__dict__.get("_group") if had_group else None
    expected: dict = {}
    try:
        if group is not None and had_group:
            optimizer._group = group
        init(parameter, expected)
    except NotImplementedError:  # an optimizer that does not use init_single
        return None
    finally:
        if had_group:
            optimizer._group = previous
    return expected


def _check_param_state(
    path: str,
    optimizer: Any,
    parameter: Any,
    group: dict | None,
    saved: Any,
    where: str,
    torch: bool,
) -> None:
    """Refuse per-parameter state that this optimizer would not have created."""
    cls = type(optimizer).__name__
    if not isinstance(saved, dict):
        raise ValueError(
            f"{path}: the optimizer state of {where} is a {type(saved).__name__}, not the "
            f"per-parameter dict {cls} keeps"
        )
    if torch and "step" not in saved:
        raise ValueError(f"{path}: the optimizer state of {where} has no 'step' count")
    expected = _expected_state(optimizer, parameter, group)
    if expected is None:
        return
    missing = [k for k in expected if k not in saved]
    if missing:
        raise ValueError(
            f"{path}: the optimizer state of {where} lacks {missing}, which {cls} keeps (it "
            f"has {sorted(map(str, saved))}): saved by another optimizer or configuration?"
        )
    for key, value in expected.items():
        if _shape(saved[key]) != _shape(value):
            raise ValueError(
                f"{path}: optimizer state {key!r} of {where} has shape {_shape(saved[key])}, "
                f"{cls} expects {_shape(value)}"
            )
    for key, value in saved.items():
        if key in expected or torch and key == "step":
            continue
        # PyTorch-style optimizers may create buffers at their first step (SGD's momentum):
        # those are accepted when shaped like their parameter; MLX style creates everything
        # in init_single.
        if not torch:
            raise ValueError(
                f"{path}: the optimizer state of {where} has {key!r}, which {cls} does not "
                "keep: saved by another optimizer or configuration?"
            )
        if _shape(value) != _shape(parameter):
            raise ValueError(
                f"{path}: the optimizer state of {where} has {key!r} of shape "
                f"{_shape(value)}, which {cls} does not keep for a parameter of shape "
                f"{_shape(parameter)}"
            )


def _check_torch_state(path: str, optimizer: Any, sd: Any) -> None:
    """Check a PyTorch-style ``state_dict()`` against the optimizer's groups and parameters."""
    if not (
        isinstance(sd, dict)
        and isinstance(sd.get("state"), dict)
        and isinstance(sd.get("param_groups"), list)
    ):
        raise _not_a_checkpoint(path, "the optimizer state is not a state_dict()")
    groups, saved_groups = optimizer.param_groups, sd["param_groups"]
    if len(saved_groups) != len(groups):
        raise ValueError(
            f"{path}: the checkpoint's optimizer has {len(saved_groups)} parameter groups, "
            f"the optimizer given has {len(groups)}"
        )
    defaults = getattr(optimizer, "defaults", {}) or {}
    owner: dict[int, tuple] = {}
    for gi, (group, saved) in enumerate(zip(groups, saved_groups)):
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
            raise _not_a_checkpoint(path, f"parameter group {gi} of the optimizer is malformed")
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"{path}: parameter group {gi} has {len(saved['params'])} parameters in the "
                f"checkpoint, {len(group['params'])} in the optimizer given"
            )
        for name, value in defaults.items():
            if name == "params":
                continue
            if name not in saved:
                raise ValueError(
                    f"{path}: parameter group {gi} of the checkpoint lacks the "
                    f"hyper-parameter {name!r} of {type(optimizer).__name__}"
                )
            kind = _hyper_kind(saved[name])
            if name != "lr" and not _compatible_kinds(kind, _hyper_kind(value)):
                raise ValueError(
                    f"{path}: hyper-parameter {name!r} of parameter group {gi} is a {kind} "
                    f"in the checkpoint, a {_hyper_kind(value)} in the optimizer given"
                )
        # the groups' hyper-parameters come from the file (load_state_dict adopts them)
        probe = {**group, **{k: v for k, v in saved.items() if k != "params"}}
        for index, parameter in zip(saved["params"], group["params"]):
            if type(index) is not int:
                raise _not_a_checkpoint(path, f"parameter index {index!r} is not an integer")
            owner[index] = (parameter, probe)
    for index, saved_state in sd["state"].items():
        if type(index) is not int or index not in owner:
            raise ValueError(
                f"{path}: the optimizer state names parameter {index!r}, which no parameter "
                "group of the checkpoint holds"
            )
        parameter, probe = owner[index]
        _check_param_state(
            path, optimizer, parameter, probe, saved_state, f"parameter {index}", True
        )


def _check_mlx_state(path: str, optimizer: Any, state: Any, params: Any) -> None:
    """Check an MLX-style state tree against the optimizer and the model's parameter tree."""
    parts = getattr(optimizer, "optimizers", None)
    if isinstance(parts, (list, tuple)):  # MultiOptimizer: {"states": [...]}
        states = state.get("states") if isinstance(state, dict) else None
        if not isinstance(states, list) or len(states) != len(parts):
            raise ValueError(
                f"{path}: the checkpoint's optimizer state is not {{'states': [...]}} with "
                f"{len(parts)} states, as the {type(optimizer).__name__} given keeps"
            )
        for o, s in zip(parts, states):
            _check_mlx_state(path, o, s, params)
        return
    cls = type(optimizer).__name__
    if not isinstance(state, dict):
        raise _not_a_checkpoint(path, "the optimizer state is not a dict")
    if not isinstance(params, dict):
        return  # a model without an MLX parameter tree: nothing to walk the state against
    current = optimizer.state if isinstance(getattr(optimizer, "state", None), dict) else {}
    scalars = {"step", "learning_rate"} | set(getattr(optimizer, "defaults", None) or {})
    for key in current:
        if key not in params and key not in state:
            raise ValueError(f"{path}: the optimizer state lacks {key!r}, which {cls} keeps")
    group = getattr(optimizer, "defaults", None)
    for key, value in state.items():
        if key in params:
            _walk_mlx(path, optimizer, group, value, params[key], key)
        elif key not in scalars:
            raise ValueError(
                f"{path}: the optimizer state has the entry {key!r}, which is neither a "
                f"parameter of the model nor a value {cls} keeps"
            )


def _walk_mlx(path: str, optimizer: Any, group: Any, state: Any, params: Any, where: str) -> None:
    if hasattr(params, "_set_value"):  # a parameter: its own state dict
        _check_param_state(path, optimizer, params, group, state, repr(where), False)
    elif isinstance(params, dict):
        if not isinstance(state, dict):
            raise ValueError(f"{path}: the optimizer state at {where!r} is not a dict")
        for key, value in state.items():
            if key not in params:
                raise ValueError(
                    f"{path}: the optimizer state has {where}.{key}, which is not a "
                    "parameter of the model"
                )
            _walk_mlx(path, optimizer, group, value, params[key], f"{where}.{key}")
    elif isinstance(params, (list, tuple)):
        if not isinstance(state, (list, tuple)) or len(state) > len(params):
            raise ValueError(
                f"{path}: the optimizer state at {where!r} does not match the model's "
                f"{len(params)} entries there"
            )
        for i, value in enumerate(state):
            _walk_mlx(path, optimizer, group, value, params[i], f"{where}.{i}")


# ---------------------------------------------------------------------- model/optimizer glue


def named_arrays(model: Any) -> list[tuple[str, Any]]:
    """The model's arrays (parameters and buffers) as ``(dotted_name, array handle)`` pairs.

    Uses MLX's ``model.parameters()`` tree; the handles are the ones the model (and any
    PyTorch-style optimizer bound to it) holds, so values can be set on them in place.
    """
    from chainrule.nn import Module
    from chainrule.utils import tree_flatten

    # Module.parameters is MLX's whole tree (buffers too); torch.nn modules' own
    # parameters() leaves the buffers out, as PyTorch's does
    params = Module.parameters(model) if isinstance(model, Module) else model.parameters()
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

    The optimizer's state is stored with its identity: its class (qualified name) and the
    names and kinds of its hyper-parameters, which :func:`load_checkpoint` checks. The file's
    mode follows the umask; temporaries a killed save left in the folder are removed first.

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
        ValueError: If some state nests deeper than :data:`MAX_DEPTH` levels (or contains
            itself).
    """
    import chainrule.core as mx

    path = os.fspath(path)
    tensors: dict[str, np.ndarray] = {}
    model_names = []
    for name, arr in named_arrays(model):
        tensors[f"model.{name}"] = _backend.to_host(arr._data)  # GPU values: explicit copies
        model_names.append(name)
    state: dict[str, Any] = {
        "epoch": epoch,
        "model": model_names,
        "random": _Encoder("random.", tensors).encode(mx.random.get_state()),
        "numpy_random": _Encoder("numpy_random.", tensors).encode(np.random.get_state()),
        "python_random": _Encoder("python_random.", tensors).encode(random.getstate()),
        "extra": _Encoder("extra.", tensors).encode(extra),
    }
    # {"loader": {"state": ...}}: the state sits inside two containers
    if loader is not None:
        state["loader"] = {
            "class": type(loader).__name__,
            "state": _Encoder("loader.", tensors).encode(loader.state_dict(), depth=2),
        }
    if optimizer is not None:
        if is_torch_style(optimizer):
            opt = {"style": "torch", "state": optimizer.state_dict()}
        else:
            opt = {"style": "mlx", "state": optimizer.state}
        opt["state"] = _Encoder("optimizer.", tensors).encode(opt["state"], depth=2)
        opt.update(_signature(optimizer))
        state["optimizer"] = opt
    if scheduler is not None:
        state["scheduler"] = {
            "class": type(scheduler).__name__,
            "state": _Encoder("scheduler.", tensors).encode(scheduler.state_dict(), depth=2),
        }
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "chainrule": json.dumps(state, separators=(",", ":"), allow_nan=False),
    }
    clean_stale_temporaries(os.path.dirname(os.path.abspath(path)))
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

    The file is validated first, and nothing changes unless all of it fits:

    * the format, the header against the file's size, every tensor's extent;
    * the model's array names, shapes and dtype kinds (floating, integer, bool), before any
      tensor data is read; a floating array may change precision to the model's dtype;
    * the optimizer: its class (qualified name; checkpoints written before that field was
      stored are compared by class name), the names and kinds of its hyper-parameters, its
      style (MLX or PyTorch), and its state's structure: every per-parameter state holds the
      entries this optimizer's ``init_single`` creates, shaped as it creates them, for a
      parameter the model (MLX style) or the parameter groups (PyTorch style) have, and
      nothing else (PyTorch style also accepts buffers made at the first step, such as
      SGD's momentum, when they are shaped like their parameter).

    Model arrays are updated in place on the model's own handles, so a PyTorch-style
    optimizer built on ``model.parameters()`` stays bound to them.

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
        ValueError: If the file is not a chainrule checkpoint, is truncated or corrupt, nests
            its metadata deeper than :data:`MAX_DEPTH`, does not match the model (missing,
            unexpected, mis-shaped or wrongly typed arrays), holds no state for a given
            optimizer, scheduler or loader, or holds another optimizer's state (another
            class, style, hyper-parameters or structure); the message names the file.
    """
    import chainrule.core as mx

    path = os.fspath(path)
    current = named_arrays(model)
    tensors, state = _read_file(path, lambda index, st: _check_model(path, st, index, current))

    # ---- validate everything before touching anything
    updates = [
        (arr, tensors[f"model.{name}"].astype(arr._data.dtype, copy=False)) for name, arr in current
    ]
    opt_state = sched_state = random_state = None
    opt = state.get("optimizer")
    sched = state.get("scheduler")
    if optimizer is not None:
        if not isinstance(opt, dict):
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        # the style first: the two styles' hyper-parameters differ (PyTorch's groups hold
        # PyTorch's keys), and the style is what the user has to change
        style = "torch" if is_torch_style(optimizer) else "mlx"
        if opt.get("style") != style:
            raise ValueError(
                f"{path}: the checkpoint holds {opt.get('style')}-style optimizer state "
                f"({opt.get('class')}) but the optimizer given is {style}-style "
                f"({type(optimizer).__name__})"
            )
        _check_signature(path, opt, optimizer)
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
        if isinstance(e, FileFormatError):
            raise
        raise _not_a_checkpoint(path, f"malformed metadata: {e}") from None
    if optimizer is not None:
        if is_torch_style(optimizer):
            _check_torch_state(path, optimizer, opt_state)
        else:
            params = model.parameters()
            _check_mlx_state(path, optimizer, opt_state, params)

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
        arr._set_value(_backend.same_device(value, arr._data))  # on the parameter's device
    if sched_state is not None:
        scheduler.load_state_dict(sched_state)
    if random_state is not None:
        mx.random.set_state(random_state)
    if numpy_state is not None:
        np.random.set_state(numpy_state)
    if python_state is not None:
        random.setstate(python_state)
    return {"epoch": state.get("epoch"), "extra": extra}
