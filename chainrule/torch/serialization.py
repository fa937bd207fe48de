"""``torch.save`` / ``torch.load``: PyTorch's zip format, read without ever running code.

Files go both ways with real PyTorch (``torch.load(path, weights_only=True)`` reads what
``save`` writes; ``load`` reads what ``torch.save`` writes): tensors of every dtype (views come
back with their offsets and strides applied), state dicts, optimizer and scheduler state dicts,
and nested dicts, ordered dicts, lists and tuples of numbers, strings, bytes, ``None``,
``torch.Size``, dtypes and devices.

The layout PyTorch 2.x writes, reproduced here: a zip archive (entries stored, not compressed)
with one top folder holding ``data.pkl`` (a protocol-2 pickle in which each tensor is a call
of ``torch._utils._rebuild_tensor_v2`` on a storage named by a persistent id), ``data/<key>``
(each storage's raw little-endian bytes, aligned on 64 bytes in the file), ``version``,
``byteorder``, ``.format_version``, ``.storage_alignment`` and ``.data/serialization_id``.

Reading never calls :mod:`pickle`: :class:`_Reader` interprets the pickle opcodes itself and
builds only the values of an allow-list (containers, numbers, strings, bytes, ``None``; tensors
rebuilt by chainrule's own functions from the archive's storages; ``OrderedDict``,
``torch.Size``, dtypes, devices). Any other global (``os.system``, ``builtins.eval``, an
unknown class) is refused by name before anything runs, and so are the opcodes that build
arbitrary objects (``BUILD``, ``NEWOBJ``, ``INST``, ``OBJ``, extension codes). This is
``weights_only=True`` whatever ``weights_only`` says: with ``weights_only=False`` the same
reader runs and its refusals say that chainrule never unpickles code. Declared storage sizes,
offsets and strides are checked against the archive's members before anything is allocated.

Files are written through :func:`chainrule.core.io.atomic_write` (a temporary file, fsync,
rename), so an interrupted ``save`` leaves the previous file intact.
"""

from __future__ import annotations

import io
import os
import pickle
import reprlib
import struct
import sys
import zipfile
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import IO, Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import dtypes as _dtypes
from chainrule.core.io import atomic_write
from chainrule.core.tensor_functions import Size

__all__ = [
    "DEFAULT_PROTOCOL",
    "UnpicklingError",
    "add_safe_globals",
    "clear_safe_globals",
    "get_default_load_endianness",
    "get_safe_globals",
    "load",
    "safe_globals",
    "save",
]

DEFAULT_PROTOCOL = 2
UnpicklingError = pickle.UnpicklingError
_ALIGNMENT = 64
# load refuses files whose tensors would take more than _EXPANSION times their storages' bytes
# plus _SLACK (PyTorch files hold each tensor's storage once; views and shared storages rarely
# add more than one copy)
_EXPANSION = 8
_MAX_NESTING = 1000
_SLACK = 1 << 26
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# -- dtypes: PyTorch's storage class names and dtype names ------------------------------------

_STORAGES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_STORAGE_OF = {v: k for k, v in _STORAGES.items()}
# PyTorch's dtype names (torch.float32, torch.long, ...) as chainrule dtype names
_TORCH_DTYPES = {
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
    "complex64": "complex64",
    "cfloat": "complex64",
    "complex128": "complex128",
    "cdouble": "complex128",
}


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(_dtypes.to_np(_dtypes.from_name("bool_" if name == "bool" else name)))


def _torch_name(np_dtype: np.dtype) -> str:
    name = str(_dtypes.from_np(np_dtype))
    return "bool" if name == "bool_" else name


_SAFE_GLOBALS: list = []


def _qualname(obj: Any) -> str:
    if isinstance(obj, tuple) and len(obj) == 2:
        obj = obj[0]
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def add_safe_globals(safe_globals: list) -> None:
    """PyTorch's way to let ``weights_only`` loads build other classes: recorded, not obeyed.

    chainrule's reader builds only its fixed allow-list and never constructs other objects,
    so a file holding an object of a class given here is still refused; the refusal says so.

    Args:
        safe_globals: Classes or functions (or ``(obj, "module.name")`` pairs).
    """
    _SAFE_GLOBALS.extend(safe_globals)


def get_safe_globals() -> list:
    """The globals given to :func:`add_safe_globals`."""
    return list(_SAFE_GLOBALS)


def clear_safe_globals() -> None:
    """Forget the globals given to :func:`add_safe_globals`."""
    _SAFE_GLOBALS.clear()


class safe_globals:  # noqa: N801 - PyTorch's name
    """``with torch.serialization.safe_globals([...]):`` (recorded within the block only)."""

    def __init__(self, safe_globals: list) -> None:
        self.safe_globals = list(safe_globals)

    def __enter__(self) -> None:
        self._before = list(_SAFE_GLOBALS)
        _SAFE_GLOBALS.extend(self.safe_globals)

    def __exit__(self, *exc: Any) -> None:
        _SAFE_GLOBALS[:] = self._before


def get_default_load_endianness() -> None:
    """PyTorch's hook for files without a ``byteorder`` record: native order (``None``)."""
    return None


# -- reading ---------------------------------------------------------------------------------


class _StorageType:
    """The value of a storage class global (``torch.FloatStorage``): its element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype | None) -> None:
        self.name = name
        self.dtype = dtype  # None: UntypedStorage (bytes)


class _Storage:
    """One storage of the archive, as a flat NumPy array of its element type."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray) -> None:
        self.data = data


class _Call:
    """An allowed callable global: only these may be applied by ``REDUCE``."""

    __slots__ = ("qualname", "fn")

    def __init__(self, qualname: str, fn: Callable) -> None:
        self.qualname = qualname
        self.fn = fn


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40


def _short(value: Any) -> str:
    """A bounded repr of a value read from a file (never deep, never long)."""
    return _REPR.repr(value)


def _ints(value: Any, what: str, bad: Callable[[str], Exception]) -> tuple:
    if not isinstance(value, tuple) or not all(type(v) is int for v in value):
        raise bad(f"{what} must be a tuple of ints, got {_short(value)}")
    return value


class _Reader:
    """A pickle-opcode interpreter that builds only allow-listed values (never imports or calls
    anything named by the file)."""

    def __init__(
        self, data: bytes, where: str, storage: Callable, weights_only: bool, budget: int
    ) -> None:
        self.data = data
        self.pos = 0
        self.where = where
        self.storage = storage
        self.weights_only = weights_only
        self.globals = self._allowed()
        # the bytes the tensors may take: a few times the storages, so that a small file
        # cannot expand one storage (stride 0, or many references) into a memory bomb
        self.budget = budget

    # -- errors
    def bad(self, reason: str) -> pickle.UnpicklingError:
        return pickle.UnpicklingError(f"torch.load: {self.where} is not a valid file: {reason}")

    def refuse(self, what: str, why: str) -> pickle.UnpicklingError:
        tail = (
            " (chainrule never unpickles code, even with weights_only=False)"
            if not self.weights_only
            else " (torch.load reads only tensors, numbers, strings and containers)"
        )
        return pickle.UnpicklingError(f"refused to load {what!r} from {self.where}: {why}{tail}")

    # -- the allow-list
    def _allowed(self) -> dict:
        g: dict[tuple[str, str], Any] = {}
        for name, dt in _STORAGES.items():
            g[("torch", name)] = _StorageType(name, _np_dtype(dt))
        g[("torch", "UntypedStorage")] = _StorageType("UntypedStorage", None)
        g[("torch.storage", "UntypedStorage")] = _StorageType("UntypedStorage", None)
        for name, dt in _TORCH_DTYPES.items():
            g[("torch", name)] = getattr(mx, "bool_" if dt == "bool" else dt)
        calls = {
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
            ("collections", "OrderedDict"): OrderedDict,
            ("collections", "Counter"): Counter,
            ("torch", "Size"): _size,
            ("torch", "device"): _device,
            ("_codecs", "encode"): _encode,
            ("builtins", "set"): set,
            ("__builtin__", "set"): set,
            ("builtins", "frozenset"): frozenset,
            ("__builtin__", "frozenset"): frozenset,
            ("builtins", "complex"): complex,
            ("__builtin__", "complex"): complex,
        }
        for key, fn in calls.items():
            g[key] = _Call(".".join(key), fn)
        return g

    def find(self, module: str, name: str) -> Any:
        value = self.globals.get((module, name))
        if value is None:
            why = "it is not on the allow-list"
            if f"{module}.{name}" in {_qualname(g) for g in _SAFE_GLOBALS}:
                why += (
                    ", which add_safe_globals does not extend: chainrule builds no objects of "
                    "other classes"
                )
            raise self.refuse(f"{module}.{name}", why)
        return value

    # -- tensors
    def _rebuild_tensor_v2(
        self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None
    ):
        return self._tensor(storage, offset, size, stride, requires_grad, None)

    def _rebuild_tensor_v3(
        self, storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None
    ):
        if not isinstance(dtype, mx.Dtype):
            raise self.bad(f"_rebuild_tensor_v3 got dtype {_short(dtype)}")
        return self._tensor(storage, offset, size, stride, requires_grad, dtype)

    def _rebuild_tensor(self, storage, offset, size, stride):
        return self._tensor(storage, offset, size, stride, False, None)

    def _rebuild_parameter(self, data, requires_grad, hooks, state=None):
        if not isinstance(data, mx.array):
            raise self.bad(f"a parameter's data is a {type(data).__name__}, not a tensor")
        if requires_grad and np.asarray(data).dtype.kind in "fcV":
            data.requires_grad = True
        return data

    def _tensor(self, storage, offset, size, stride, requires_grad, dtype):
        if not isinstance(storage, _Storage):
            raise self.bad(f"a tensor's storage is a {type(storage).__name__}")
        if type(offset) is not int or offset < 0:
            raise self.bad(f"storage offset {_short(offset)} is not a non-negative int")
        size = _ints(size, "a tensor's size", self.bad)
        stride = _ints(stride, "a tensor's stride", self.bad)
        if len(size) != len(stride) or any(s < 0 for s in size + stride):
            raise self.bad(f"size {size} and stride {stride} do not describe a tensor")
        flat = storage.data
        if dtype is not None:  # an untyped (byte) storage reinterpreted
            np_dtype = np.dtype(_dtypes.to_np(dtype))
            if flat.dtype != np.uint8 or flat.size % np_dtype.itemsize:
                raise self.bad(f"a {dtype} tensor on a storage of {flat.size} bytes")
            flat = flat.view(np_dtype)
        numel = 1
        for s in size:
            numel *= s
        if numel:
            last = offset + sum((n - 1) * st for n, st in zip(size, stride))
            if last >= flat.size:
                raise self.bad(
                    f"a tensor of size {size}, stride {stride} and offset {offset} reaches "
                    f"element {last} of a storage of {flat.size} elements"
                )
            item = flat.itemsize
            self.budget -= numel * item
            if self.budget < 0:
                raise self.bad(
                    f"its tensors expand to far more bytes than its storages hold (a tensor "
                    f"of size {size} and stride {stride} over {flat.size} elements): refused"
                )
            view = np.lib.stride_tricks.as_strided(
                flat[offset:], size, tuple(st * item for st in stride), writeable=False
            )
            value = np.array(view)
        else:
            value = np.zeros(size, flat.dtype)
        import chainrule.torch as _torch  # its from_numpy gives tensors their class

        out = _torch.from_numpy(value)
        if requires_grad is True and value.dtype.kind in "fcV":
            out.requires_grad = True
        return out

    # -- the interpreter
    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise self.bad(f"data.pkl is truncated (wants {n} bytes at offset {self.pos})")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.bad("data.pkl is truncated (an unterminated line)")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def pop_mark(self) -> list:
        stack = self.stack
        if not self.marks:
            raise self.bad("data.pkl pops a mark it never set")
        items = stack[self.marks.pop() :]
        del stack[len(stack) - len(items) :]
        return items

    def pop(self, n: int = 1) -> Any:
        if len(self.stack) - (self.marks[-1] if self.marks else 0) < n:
            raise self.bad("data.pkl pops from an empty stack")
        if n == 1:
            return self.stack.pop()
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def run(self) -> Any:
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        # nesting depth of the tuples and frozensets built (hashing one recurses in C with no
        # depth check: a million levels crash the interpreter), each kept alive with its depth
        self.depths: dict[int, tuple[Any, int]] = {}
        u = struct.unpack
        while True:
            if self.pos >= len(self.data):
                raise self.bad("data.pkl ends without STOP")
            op = self.data[self.pos : self.pos + 1]
            self.pos += 1
            push = self.stack.append
            if op == b"\x80":  # PROTO
                if self.take(1)[0] > 5:
                    raise self.bad("data.pkl uses an unknown pickle protocol")
            elif op == b"\x95":  # FRAME
                self.take(8)
            elif op == b".":  # STOP
                if len(self.stack) != 1 or self.marks:
                    raise self.bad("data.pkl stops with an unbalanced stack")
                return self.stack[0]
            elif op == b"(":
                self.marks.append(len(self.stack))
            elif op == b"0":
                self.pop()
            elif op == b"1":
                self.pop_mark()
            elif op == b"2":
                push(self.top())
            elif op == b"N":
                push(None)
            elif op == b"\x88":
                push(True)
            elif op == b"\x89":
                push(False)
            elif op == b"K":
                push(self.take(1)[0])
            elif op == b"M":
                push(u("<H", self.take(2))[0])
            elif op == b"J":
                push(u("<i", self.take(4))[0])
            elif op == b"\x8a":
                push(int.from_bytes(self.take(self.take(1)[0]), "little", signed=True))
            elif op == b"\x8b":
                n = u("<i", self.take(4))[0]
                push(int.from_bytes(self.take(n), "little", signed=True))
            elif op in (b"I", b"L"):
                text = self.line().rstrip(b"L")
                flags = {b"00": False, b"01": True}
                push(flags[text] if text in flags else self.number(int, text))
            elif op == b"F":
                push(self.number(float, self.line()))
            elif op == b"G":
                push(u(">d", self.take(8))[0])
            elif op == b"X":
                push(self.text(self.take(u("<I", self.take(4))[0])))
            elif op == b"\x8c":
                push(self.text(self.take(self.take(1)[0])))
            elif op == b"\x8d":
                push(self.text(self.take(u("<Q", self.take(8))[0])))
            elif op == b"V":
                push(self.line().decode("raw-unicode-escape"))
            elif op == b"B":
                push(bytes(self.take(u("<I", self.take(4))[0])))
            elif op == b"C":
                push(bytes(self.take(self.take(1)[0])))
            elif op == b"\x8e":
                push(bytes(self.take(u("<Q", self.take(8))[0])))
            elif op == b"]":
                push([])
            elif op == b"l":
                push(self.pop_mark())
            elif op == b"a":
                value = self.pop()
                self.container(list).append(value)
            elif op == b"e":
                items = self.pop_mark()
                self.container(list).extend(items)
            elif op == b")":
                push(())
            elif op == b"t":
                push(self.nested(tuple(self.pop_mark())))
            elif op in (b"\x85", b"\x86", b"\x87"):
                n = op[0] - 0x84
                push(self.nested((self.pop(),) if n == 1 else tuple(self.pop(n))))
            elif op == b"}":
                push({})
            elif op == b"d":
                items = self.pop_mark()
                push(self.pairs({}, items))
            elif op == b"s":
                key, value = self.pop(2)
                self.pairs(self.container(dict), [key, value])
            elif op == b"u":
                items = self.pop_mark()
                self.pairs(self.container(dict), items)
            elif op == b"\x8f":
                push(set())
            elif op == b"\x90":
                items = self.pop_mark()
                self.container(set).update(self.hashable(i) for i in items)
            elif op == b"\x91":
                push(self.nested(frozenset(self.hashable(i) for i in self.pop_mark())))
            elif op == b"c":
                module = self.text(self.line())
                name = self.text(self.line())
                push(self.find(module, name))
            elif op == b"\x93":
                module, name = self.pop(2)
                if not (isinstance(module, str) and isinstance(name, str)):
                    raise self.bad("STACK_GLOBAL of non-strings")
                push(self.find(module, name))
            elif op == b"R":
                fn, args = self.pop(2)
                push(self.call(fn, args))
            elif op == b"Q":
                push(self.persistent(self.pop()))
            elif op == b"P":
                raise self.bad("text persistent ids are not PyTorch's format")
            elif op in (b"q", b"r", b"p", b"\x94"):
                if op == b"q":
                    idx = self.take(1)[0]
                elif op == b"r":
                    idx = u("<I", self.take(4))[0]
                elif op == b"p":
                    idx = self.number(int, self.line())
                else:
                    idx = len(self.memo)
                self.memo[idx] = self.top()
            elif op in (b"h", b"j", b"g"):
                if op == b"h":
                    idx = self.take(1)[0]
                elif op == b"j":
                    idx = u("<I", self.take(4))[0]
                else:
                    idx = self.number(int, self.line())
                if idx not in self.memo:
                    raise self.bad(f"data.pkl reads memo entry {idx}, which it never stored")
                push(self.memo[idx])
            elif op == b"b":
                self.build(self.pop())
            else:
                names = {
                    b"\x81": "NEWOBJ",
                    b"\x92": "NEWOBJ_EX",
                    b"i": "INST",
                    b"o": "OBJ",
                    b"\x82": "EXT1",
                    b"\x83": "EXT2",
                    b"\x84": "EXT4",
                }
                if op in names:
                    raise self.refuse(f"pickle opcode {names[op]}", "it builds arbitrary objects")
                raise self.bad(f"unsupported pickle opcode {op!r} at offset {self.pos - 1}")

    def build(self, state: Any) -> None:
        """``BUILD``: only PyTorch's ``state_dict._metadata`` on an ordered dict."""
        target = self.top()
        if not (
            type(target) is OrderedDict
            and type(state) is dict
            and set(state) <= {"_metadata"}
            and type(state.get("_metadata", {})) in (dict, OrderedDict)
        ):
            raise self.refuse(
                "pickle opcode BUILD",
                f"it sets attributes of a {type(target).__name__} (only a state dict's "
                "_metadata is allowed)",
            )
        if "_metadata" in state:
            target._metadata = state["_metadata"]

    def top(self) -> Any:
        if not self.stack or (self.marks and self.marks[-1] == len(self.stack)):
            raise self.bad("data.pkl reads an empty stack")
        return self.stack[-1]

    def text(self, raw: bytes) -> str:
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad("a string is not valid UTF-8") from None

    def number(self, kind: type, raw: bytes):
        try:
            return kind(raw)
        except ValueError:
            raise self.bad(f"{raw[:40]!r} is not a number") from None

    def container(self, kind: type):
        target = self.top()
        if not isinstance(target, kind):
            raise self.bad(f"data.pkl adds items to a {type(target).__name__}")
        return target

    def nested(self, value: tuple | frozenset) -> Any:
        """Record a new tuple's or frozenset's nesting depth; refuse one nested too deeply."""
        depths = self.depths
        depth = 1 + max((depths.get(id(v), (None, 0))[1] for v in value), default=0)
        if depth > _MAX_NESTING:
            raise self.bad(f"tuples nest more than {_MAX_NESTING} levels deep")
        depths[id(value)] = (value, depth)
        return value

    def hashable(self, key: Any) -> Any:
        try:
            hash(key)
        except TypeError:
            raise self.bad(f"an unhashable {type(key).__name__} as a key") from None
        return key

    def pairs(self, target: dict, items: list) -> dict:
        if len(items) % 2:
            raise self.bad("a dict with an odd number of items")
        for i in range(0, len(items), 2):
            target[self.hashable(items[i])] = items[i + 1]
        return target

    def call(self, fn: Any, args: Any) -> Any:
        if not isinstance(fn, _Call):
            what = getattr(fn, "name", None) or type(fn).__name__
            raise self.refuse(str(what), "it is not a callable this reader allows")
        if not isinstance(args, tuple):
            raise self.bad(f"{fn.qualname} called with {type(args).__name__} arguments")
        if fn.fn in (set, frozenset, Counter, OrderedDict):  # they hash what they are given
            for arg in args:
                for item in arg if isinstance(arg, (list, tuple)) else ():
                    self.hashable(item[0] if fn.fn is OrderedDict and type(item) is tuple else item)
        try:
            out = fn.fn(*args)
            return self.nested(out) if fn.fn is frozenset else out
        except pickle.UnpicklingError:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise self.bad(f"{fn.qualname}{_short(args)}: {e}") from None

    def persistent(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise self.bad(f"persistent id {_short(pid)} is not a storage")
        _, kind, key, location, numel = pid
        if not isinstance(kind, _StorageType):
            raise self.bad(f"storage type {_short(kind)} is not a storage class")
        if not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise self.bad(f"storage id {_short(pid)} is malformed")
        if not isinstance(location, str):
            raise self.bad(f"storage location {_short(location)} is not a string")
        return self.storage(kind, key, numel, location)


def _size(dims: Any = ()) -> tuple:
    """``torch.Size``: chainrule's (a tuple of ints)."""
    dims = tuple(dims)
    if not all(type(d) is int for d in dims):
        raise TypeError(f"torch.Size takes ints, got {_short(dims)}")
    return Size(dims)


def _device(kind: Any = "cpu", index: Any = None) -> Any:
    from chainrule.core.tensor_functions import device

    if not isinstance(kind, str) or index is not None and type(index) is not int:
        raise TypeError(f"torch.device({_short(kind)}, {_short(index)})")
    try:
        return device(kind if index is None else f"{kind}:{index}")
    except (TypeError, ValueError, RuntimeError):
        return kind if index is None else f"{kind}:{index}"


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise TypeError(f"_codecs.encode({type(text).__name__}, {_short(encoding)})")
    return text.encode("latin1")


def _open_zip(f: Any, where: str) -> zipfile.ZipFile:
    head = f.read(8)
    f.seek(-len(head), io.SEEK_CUR)
    if head[:2] == b"\x80\x02" or head[:1] == b"\x80":
        raise pickle.UnpicklingError(
            f"torch.load: {where} is in PyTorch's legacy (pre-1.6, non-zip) format, which "
            "chainrule does not read; re-save it with a recent PyTorch "
            "(torch.save(torch.load(path, weights_only=True), path))"
        )
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise pickle.UnpicklingError(
            f"torch.load: {where} is not a PyTorch file (not a zip archive: {e})"
        ) from None


def _load_zip(zf: zipfile.ZipFile, where: str, weights_only: bool, mapped: bool) -> Any:
    names = zf.namelist()
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pkls:
        if any(n.endswith("/constants.pkl") for n in names):
            raise pickle.UnpicklingError(
                f"torch.load: {where} is a TorchScript archive (torch.jit.save), which holds "
                "code; chainrule reads only data files written by torch.save"
            )
        raise pickle.UnpicklingError(f"torch.load: {where} has no data.pkl record")
    if len(pkls) > 1:
        raise pickle.UnpicklingError(f"torch.load: {where} holds several data.pkl records")
    prefix = pkls[0][: -len("data.pkl")]
    infos = {i.filename: i for i in zf.infolist()}

    def member(name: str, what: str) -> bytes:
        info = infos.get(prefix + name)
        if info is None:
            raise pickle.UnpicklingError(f"torch.load: {where} lacks the record {what}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise pickle.UnpicklingError(
                f"torch.load: {where}: record {prefix + name} is compressed; PyTorch stores "
                "its records uncompressed"
            )
        try:
            return zf.read(info)
        except (zipfile.BadZipFile, OSError, zlib.error) as e:
            raise pickle.UnpicklingError(f"torch.load: {where}: record {name}: {e}") from None

    swap = False
    if prefix + "byteorder" in infos:
        order = member("byteorder", "byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise pickle.UnpicklingError(f"torch.load: {where} has byte order {_short(order)}")
        swap = order != sys.byteorder
    storages: dict[str, _Storage] = {}

    def storage(kind: _StorageType, key: str, numel: int, location: str) -> _Storage:
        if not mapped and location.split(":")[0] not in ("cpu", "meta"):
            raise RuntimeError(  # PyTorch's error on a machine without that device
                f"Attempting to deserialize object on a {location.split(':')[0].upper()} "
                f"device ({where}) but chainrule runs on the CPU only. If you are running on "
                "a CPU-only machine, please use torch.load with "
                "map_location=torch.device('cpu') to map your storages to the CPU."
            )
        name = f"data/{key}"
        info = infos.get(prefix + name)
        if info is None or "/" in key:
            raise pickle.UnpicklingError(
                f"torch.load: {where} names storage {_short(key)}, which it does not hold"
            )
        dtype = kind.dtype if kind.dtype is not None else np.dtype(np.uint8)
        wanted = numel * dtype.itemsize
        if wanted > info.file_size:
            raise pickle.UnpicklingError(
                f"torch.load: {where}: storage {key!r} declares {numel} elements of {dtype} "
                f"({wanted} bytes) but its record holds {info.file_size} bytes"
            )
        cached = storages.get(key)
        if cached is not None and cached.data.dtype == dtype and cached.data.size >= numel:
            return _Storage(cached.data[:numel])
        raw = member(name, name)
        data = np.frombuffer(raw, dtype=dtype, count=numel)
        if swap and dtype.itemsize > 1:
            data = data.byteswap()
        storages[key] = out = _Storage(data)
        return out

    held = sum(i.file_size for n, i in infos.items() if n.startswith(prefix + "data/"))
    budget = _EXPANSION * held + _SLACK
    reader = _Reader(member("data.pkl", "data.pkl"), where, storage, weights_only, budget)
    try:
        return reader.run()
    except RecursionError:  # hashing or comparing a value nested thousands deep
        raise pickle.UnpicklingError(
            f"torch.load: {where} is not a valid file: its values nest too deeply"
        ) from None


def _check_map_location(map_location: Any) -> bool:
    """Whether ``map_location`` moves storages (to the CPU); refuse another device."""
    if map_location is None:
        return False
    if isinstance(map_location, dict) or callable(map_location):
        return True
    name = str(map_location)
    if name.split(":")[0] != "cpu":
        raise RuntimeError(
            f"torch.load: map_location={name!r}: chainrule runs on the CPU only; use "
            "map_location='cpu'"
        )
    return True


def load(
    f: str | os.PathLike | IO[bytes],
    map_location: Any = None,
    pickle_module: Any = None,
    *,
    weights_only: bool | None = None,
    mmap: bool | None = None,
    **pickle_load_args: Any,
) -> Any:
    """Read an object saved by ``torch.save`` (PyTorch's or chainrule's), without running code.

    Always ``weights_only=True`` semantics: only tensors, numbers, strings, bytes, ``None``,
    lists, tuples, dicts, ordered dicts, sets, ``torch.Size``, dtypes and devices are built.
    Anything else in the file (a ``__reduce__`` payload naming ``os.system``, an unknown
    class) is refused by name with a :class:`pickle.UnpicklingError`, before it could run.

    Args:
        f: A path or a binary file object (a stream that cannot seek is read whole first).
        map_location: Where storages go: ``"cpu"``, ``torch.device("cpu")``, a dict of
            locations or a function; every tensor loads on the CPU, the only device. Without
            it, storages saved on another device (``"cuda:0"``) raise, as PyTorch does on a
            machine without that device.
        pickle_module: Must be ``None``: chainrule never uses a pickle module to read.
        weights_only: ``True``/``None`` (PyTorch's default). ``False`` is accepted but reads
            the same way: chainrule never unpickles code.
        mmap: Accepted; the storages are read into memory.
        pickle_load_args: ``encoding`` and friends, accepted and unused.

    Returns:
        The saved object, its tensors as chainrule tensors.

    Raises:
        pickle.UnpicklingError: For a refused global or opcode, naming it and the file, and
            for a malformed or legacy-format file.
        FileNotFoundError: When ``f`` is a path that does not exist.
    """
    if pickle_module is not None:
        raise TypeError(
            "torch.load: pickle_module is not supported; chainrule reads PyTorch files with its "
            "own restricted reader and never unpickles code"
        )
    strict = weights_only is not False
    mapped = _check_map_location(map_location)
    if isinstance(f, (str, os.PathLike)):
        where = os.fspath(f)
        with open(where, "rb") as fh:
            with _open_zip(fh, where) as zf:
                return _load_zip(zf, where, strict, mapped)
    if not hasattr(f, "read"):
        raise TypeError(f"torch.load: f must be a path or a binary file, got {type(f).__name__}")
    where = str(getattr(f, "name", None) or f"<{type(f).__name__}>")
    if not getattr(f, "seekable", lambda: False)():
        f = io.BytesIO(f.read())  # a stream: read it whole, as PyTorch does
    zf = _open_zip(f, where)
    return _load_zip(zf, where, strict, mapped)


# -- writing ---------------------------------------------------------------------------------


class _Writer:
    """A protocol-2 pickle emitter for the values ``load`` accepts (never runs ``pickle``)."""

    MAX_DEPTH = 500

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.storages: list[np.ndarray] = []
        self.keys: dict[int, str] = {}
        self.active: set[int] = set()

    def w(self, b: bytes) -> None:
        self.out.write(b)

    def glob(self, module: str, name: str) -> None:
        self.w(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def string(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogatepass")
        self.w(b"X" + struct.pack("<I", len(raw)) + raw)

    def integer(self, i: int) -> None:
        if 0 <= i < 256:
            self.w(b"K" + bytes([i]))
        elif 0 <= i < 65536:
            self.w(b"M" + struct.pack("<H", i))
        elif -(2**31) <= i < 2**31:
            self.w(b"J" + struct.pack("<i", i))
        else:
            raw = i.to_bytes((i.bit_length() + 8) // 8, "little", signed=True)
            if len(raw) < 256:
                self.w(b"\x8a" + bytes([len(raw)]) + raw)
            else:
                self.w(b"\x8b" + struct.pack("<i", len(raw)) + raw)

    def save(self, obj: Any, depth: int = 0) -> None:
        if depth > self.MAX_DEPTH:
            raise ValueError(f"torch.save: the object nests deeper than {self.MAX_DEPTH} levels")
        if obj is None:
            self.w(b"N")
        elif obj is True or obj is False:
            self.w(b"\x88" if obj else b"\x89")
        elif isinstance(obj, mx.array):
            self.tensor(obj)
        elif isinstance(obj, (bool, np.bool_)):
            self.save(bool(obj), depth)
        elif isinstance(obj, (int, np.integer)):
            self.integer(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self.w(b"G" + struct.pack(">d", float(obj)))
        elif isinstance(obj, str):
            self.string(obj)
        elif isinstance(obj, (bytes, bytearray)):
            self.glob("_codecs", "encode")
            self.string(bytes(obj).decode("latin1"))
            self.string("latin1")
            self.w(b"\x86R")
        elif isinstance(obj, complex):
            self.glob("__builtin__", "complex")
            self.save((obj.real, obj.imag), depth + 1)
            self.w(b"R")
        elif isinstance(obj, mx.Dtype):
            self.glob("torch", _torch_name(np.dtype(_dtypes.to_np(obj))))
        elif isinstance(obj, Size):
            self.glob("torch", "Size")
            self.container(tuple(int(d) for d in obj), depth)
            self.w(b"\x85R")
        elif isinstance(obj, dict) and callable(getattr(obj, "state_dict", None)):
            raise TypeError(
                f"torch.save: cannot save the module {type(obj).__name__} itself (PyTorch would "
                "pickle its class, which torch.load(weights_only=True) refuses); save "
                "model.state_dict() and load it with model.load_state_dict(torch.load(path))"
            )
        elif isinstance(obj, (list, tuple, dict, set, frozenset)):
            self.container(obj, depth)
        elif type(obj).__name__ == "device" and hasattr(obj, "type"):
            self.glob("torch", "device")
            self.string(str(obj))
            self.w(b"\x85R")
        else:
            raise TypeError(
                f"torch.save: cannot save a {type(obj).__module__}.{type(obj).__qualname__}; "
                "files hold tensors, numbers, strings, bytes, None, dtypes and "
                "lists/tuples/dicts of them (convert NumPy arrays with torch.from_numpy)"
            )

    def container(self, obj: Any, depth: int) -> None:
        if id(obj) in self.active:
            raise ValueError("torch.save: the object contains itself (a reference cycle)")
        self.active.add(id(obj))
        try:
            if isinstance(obj, tuple):  # a namedtuple too, as a plain tuple
                if not obj:
                    self.w(b")")
                    return
                self.w(b"(")
                for v in obj:
                    self.save(v, depth + 1)
                self.w(b"t")
            elif isinstance(obj, (list, tuple)):
                self.w(b"]")
                if obj:
                    self.w(b"(")
                    for v in obj:
                        self.save(v, depth + 1)
                    self.w(b"e")
            elif isinstance(obj, Counter):  # MultiStepLR's milestones
                self.glob("collections", "Counter")
                self.container(dict(obj), depth)
                self.w(b"\x85R")
            elif isinstance(obj, (set, frozenset)):
                self.glob("__builtin__", type(obj).__name__)
                self.container(list(obj), depth)
                self.w(b"\x85R")
            else:
                if isinstance(obj, OrderedDict):
                    self.glob("collections", "OrderedDict")
                    self.w(b")R")
                else:
                    self.w(b"}")
                if obj:
                    self.w(b"(")
                    for k, v in obj.items():
                        self.save(k, depth + 1)
                        self.save(v, depth + 1)
                    self.w(b"u")
        finally:
            self.active.discard(id(obj))

    def tensor(self, x: mx.array) -> None:
        d = x._data
        # a CUDA tensor is written from an explicit host copy (stored as a CPU storage: the
        # file loads anywhere, as CPU tensors)
        value = _backend.to_host(d) if _backend.is_gpu(d) else np.asarray(x)
        name = _torch_name(value.dtype)
        key = self.keys.get(id(x))
        if key is None:
            key = self.keys[id(x)] = str(len(self.storages))
            self.storages.append(value)
        typed = name in _STORAGE_OF
        self.glob("torch._utils", "_rebuild_tensor_v2" if typed else "_rebuild_tensor_v3")
        self.w(b"((")
        self.string("storage")
        if typed:
            self.glob("torch", _STORAGE_OF[name])
        else:
            self.glob("torch.storage", "UntypedStorage")
        self.string(key)
        self.string("cpu")
        self.integer(value.size if typed else value.nbytes)
        self.w(b"tQ")
        self.integer(0)
        self.save(tuple(int(s) for s in value.shape))
        strides, step = [], 1
        for s in reversed(value.shape):
            strides.append(step)
            step *= max(int(s), 1)
        self.save(tuple(reversed(strides)))
        self.w(b"\x88" if getattr(x, "requires_grad", False) else b"\x89")
        self.glob("collections", "OrderedDict")
        self.w(b")R")
        if not typed:
            self.glob("torch", name)
        self.w(b"t" + b"R")


def _record(zf: zipfile.ZipFile, f: IO[bytes], start: int, name: str, data: Any) -> None:
    """Write one stored record whose data begins on a multiple of the alignment."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = view.nbytes
    zip64 = view.nbytes * 1.05 > zipfile.ZIP64_LIMIT
    header = 30 + len(name.encode("utf-8")) + (20 if zip64 else 0)
    offset = f.tell() - start + header + 4
    pad = -offset % _ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    with zf.open(info, "w", force_zip64=zip64) as dest:
        chunk = 1 << 24
        for i in range(0, view.nbytes, chunk):
            dest.write(view[i : i + chunk])


def _little(dtype: np.dtype) -> bool:
    order = dtype.byteorder
    return order == "<" or order in ("=", "|") and sys.byteorder == "little"


def _write_archive(f: IO[bytes], obj: Any) -> None:
    writer = _Writer()
    writer.save(obj)
    writer.w(b".")
    pkl = b"\x80\x02" + writer.out.getvalue()
    start = f.tell()
    prefix = "archive/"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        _record(zf, f, start, prefix + "data.pkl", pkl)
        _record(zf, f, start, prefix + ".format_version", b"1")
        _record(zf, f, start, prefix + ".storage_alignment", b"64")
        _record(zf, f, start, prefix + "byteorder", b"little")
        for key, value in enumerate(writer.storages):
            data = np.ascontiguousarray(value).reshape(-1)
            if data.dtype.itemsize > 1 and not _little(data.dtype):
                data = data.byteswap()
            _record(zf, f, start, f"{prefix}data/{key}", data.view(np.uint8))
        _record(zf, f, start, prefix + "version", b"3\n")
        sid = str(int.from_bytes(os.urandom(16), "little")).zfill(40)[:40]
        _record(zf, f, start, prefix + ".data/serialization_id", sid.encode())


def save(
    obj: Any,
    f: str | os.PathLike | IO[bytes],
    pickle_module: Any = None,
    pickle_protocol: int = DEFAULT_PROTOCOL,
    _use_new_zipfile_serialization: bool = True,
    _disable_byteorder_record: bool = False,
) -> None:
    """Write ``obj`` in PyTorch's zip format (real ``torch.load(weights_only=True)`` reads it).

    Args:
        obj: Tensors, numbers, strings, bytes, ``None``, dtypes, and lists, tuples, dicts,
            ordered dicts and sets of them (a model's ``state_dict()``, an optimizer's).
        f: A path (written atomically: a temporary file renamed over it) or a binary file
            object.
        pickle_module: Must be ``None`` (chainrule writes the pickle itself).
        pickle_protocol: Accepted for PyTorch code; the file uses protocol 2, as PyTorch's.
        _use_new_zipfile_serialization: Must be ``True``: the legacy format is not written.
        _disable_byteorder_record: Accepted; the byte order is always recorded.

    Raises:
        TypeError: For an object the format cannot hold (naming its type).
        ValueError: For a reference cycle or too deep a nesting.
    """
    if pickle_module is not None:
        raise TypeError("torch.save: pickle_module is not supported; chainrule writes the file")
    if not _use_new_zipfile_serialization:
        raise ValueError("torch.save: chainrule writes only PyTorch's zip format")
    if isinstance(f, (str, os.PathLike)):
        parent = os.path.dirname(os.path.abspath(os.fspath(f)))
        if not os.path.isdir(parent):
            raise RuntimeError(f"Parent directory {parent} does not exist.")  # PyTorch's error
        atomic_write(f, lambda fh: _write_archive(fh, obj))
        return
    if not hasattr(f, "write"):
        raise TypeError(f"torch.save: f must be a path or a binary file, got {type(f).__name__}")
    seekable = getattr(f, "seekable", lambda: False)()
    if seekable:
        _write_archive(f, obj)
    else:
        buf = io.BytesIO()
        _write_archive(buf, obj)
        f.write(buf.getvalue())
