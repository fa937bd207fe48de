"""PyTorch's view of a ``Module``'s state: parameters, buffers, ``state_dict``, hooks.

``Module`` (``module.py``) is MLX's dict tree. This file reads that tree the way PyTorch reads
a module: every sub-module, plain list, tuple or dict entry is a "node" named by its dotted
path; a node's direct arrays are its parameters, except the names in ``module._buffers``
(``register_buffer``), which are its buffers; names in ``module._non_persistent`` are buffers
left out of ``state_dict``. The order is PyTorch's: node by node in pre-order, each node's
parameters, then its buffers.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from chainrule.core import backend as _backend
from chainrule.core.array import array
from chainrule.core.extend import from_value

__all__ = [
    "IncompatibleKeys",
    "RemovableHandle",
    "load_state_dict",
    "mark",
    "marked",
    "named_members",
    "nodes",
    "state_entries",
]

# Arrays made by ``Parameter(..., requires_grad=False)`` or ``Buffer(...)``: the module they
# are assigned to reads the mark (by identity; the mark dies with the array).
_MARKED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_MARK_KIND: dict = {}


def mark(a: array, kind: str) -> array:
    """Remember that ``a`` is a frozen parameter (``"frozen"``) or a buffer (``"buffer"``,
    ``"buffer_np"`` for a non-persistent one) until a module takes it."""
    _MARKED[id(a)] = a
    _MARK_KIND[id(a)] = kind
    return a


def marked(a: array) -> str | None:
    """The mark of ``a`` (see :func:`mark`), or ``None``."""
    if _MARKED and _MARKED.get(id(a)) is a:
        return _MARK_KIND.get(id(a))
    return None


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the missing and the unexpected keys (PyTorch)."""

    __slots__ = ()

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


IncompatibleKeys.__name__ = IncompatibleKeys.__qualname__ = "_IncompatibleKeys"


def _is_module(x: Any) -> bool:
    from .module import Module

    return isinstance(x, Module)


def _entries(node: Any) -> Iterator[tuple[str, Any]]:
    """A node's public entries as ``(name, value)``."""
    if isinstance(node, dict):
        is_mod = _is_module(node)
        for k, v in node.items():
            if is_mod and isinstance(k, str) and k.startswith("_"):
                continue
            yield str(k), v
    else:
        for i, v in enumerate(node):
            yield str(i), v


def nodes(root: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted_prefix, node)`` for ``root`` and every module or container below, pre-order."""
    stack = [(prefix, root)]
    while stack:
        pre, node = stack.pop()
        yield pre, node
        subs = [
            (f"{pre}.{k}" if pre else k, v)
            for k, v in _entries(node)
            if isinstance(v, (dict, list, tuple))
        ]
        stack.extend(reversed(subs))


def _local(node: Any) -> Iterator[tuple[str, array, str]]:
    """A node's direct arrays: parameters first, then buffers (``kind``: param, buffer,
    buffer_np for a non-persistent buffer)."""
    buffers = node._buffers if _is_module(node) else ()
    params, bufs = [], []
    for k, v in _entries(node):
        if isinstance(v, array):
            if k in buffers:
                kind = "buffer_np" if k in node._non_persistent else "buffer"
                bufs.append((k, v, kind))
            else:
                params.append((k, v, "param"))
    return iter(params + bufs)


def named_members(
    root: Any,
    kinds: tuple,
    prefix: str = "",
    recurse: bool = True,
    remove_duplicate: bool = True,
) -> Iterator[tuple[str, array]]:
    """``(dotted_name, array)`` for the arrays of the given kinds, PyTorch's order."""
    seen: set = set()
    walk = nodes(root, prefix) if recurse else iter([(prefix, root)])
    for pre, node in walk:
        for k, v, kind in _local(node):
            if kind not in kinds:
                continue
            if remove_duplicate:
                if id(v) in seen:
                    continue
                seen.add(id(v))
            yield (f"{pre}.{k}" if pre else k), v


def state_entries(root: Any, prefix: str = "") -> list[tuple[str, Any, str, array]]:
    """``(name, node, key, array)`` for what ``state_dict`` holds: parameters and persistent
    buffers, PyTorch's order (shared arrays appear under every name, as in PyTorch)."""
    out = []
    for pre, node in nodes(root, prefix):
        for k, v, kind in _local(node):
            if kind != "buffer_np":
                out.append((f"{pre}.{k}" if pre else k, node, k, v))
    return out


def _shape_text(shape: tuple) -> str:
    return f"torch.Size({list(shape)})"


def _value_of(v: Any) -> np.ndarray | None:
    """The NumPy value of a state_dict entry: arrays, NumPy arrays and tensor-like objects
    (DLPack exporters such as real PyTorch tensors); ``None`` for anything else."""
    if isinstance(v, array):
        return v._data
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "__dlpack__") or hasattr(v, "__array__"):
        try:
            return array(v)._data
        except (TypeError, ValueError):
            return None
    return None


def _unexpected(root: Any, given: Mapping, local_names: dict) -> list[str]:
    """PyTorch's unexpected keys: per node in pre-order, the keys under its prefix whose first
    part is neither one of its own arrays nor one of its sub-nodes."""
    out, seen = [], set()
    for pre, node in nodes(root):
        head = pre + "." if pre else ""
        children = {k for k, v in _entries(node) if isinstance(v, (dict, list, tuple))}
        own = local_names.get(id(node), set())
        for key in given:
            if key in seen or not isinstance(key, str) or not key.startswith(head):
                continue
            first = key[len(head) :].split(".", 1)[0]
            if first not in children and first not in own:
                seen.add(key)
                out.append(key)
    return out


def load_state_dict(module: Any, state_dict: Mapping, strict: bool, assign: bool, error: type):
    """``Module.load_state_dict`` (see there); ``error`` is the exception class to raise."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
    entries = state_entries(module)
    local_names: dict = {}
    for _pre, node in nodes(module):
        local_names[id(node)] = {k for k, _, _ in _local(node)}
    missing, msgs, writes = [], [], []
    for name, node, key, cur in entries:
        if name not in state_dict:
            if key not in getattr(node, "_optional_state", ()):
                missing.append(name)
            continue
        given = state_dict[name]
        value = _value_of(given)
        if value is None:
            msgs.append(
                f'While copying the parameter named "{name}", expected torch.Tensor or '
                f"Tensor-like object from checkpoint but received {type(given)}"
            )
            continue
        if tuple(value.shape) != cur.shape:
            msgs.append(
                f"size mismatch for {name}: copying a param with shape "
                f"{_shape_text(value.shape)} from checkpoint, the shape in current model is "
                f"{_shape_text(cur.shape)}."
            )
            continue
        writes.append((node, key, cur, value))
    unexpected = _unexpected(module, state_dict, local_names)
    if strict:
        if unexpected:
            keys = ", ".join(f'"{k}"' for k in unexpected)
            msgs.insert(0, f"Unexpected key(s) in state_dict: {keys}. ")
        if missing:
            keys = ", ".join(f'"{k}"' for k in missing)
            msgs.insert(0, f"Missing key(s) in state_dict: {keys}. ")
    if msgs:
        raise error(
            f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(msgs)
        )
    for node, key, cur, value in writes:
        src = value  # the loaded value (a backend value: _value_of), on its own device
        if _backend.is_gpu(value):  # a CUDA tensor: an explicit host copy
            value = _backend.to_host(value)
        if assign:  # the loaded tensor's device
            new = from_value(_backend.same_device(np.array(value), src))
            node_ = cur._node
            if node_ is not None and node_.prim is None and new._data.dtype.kind in "fc":
                new.requires_grad = True
            if isinstance(node, dict):
                dict.__setitem__(node, key, new)
            else:
                node[int(key)] = new
        else:
            host = np.array(value, dtype=cur._data.dtype, copy=True)
            cur._set_value(_backend.same_device(host, cur._data))  # the parameter's device
    return IncompatibleKeys(missing, unexpected)


def state_dict(module: Any, destination: dict | None, prefix: str, keep_vars: bool) -> dict:
    """``Module.state_dict`` (see there)."""
    out = OrderedDict() if destination is None else destination
    for name, _, _, v in state_entries(module):
        out[prefix + name] = v
    return out


# -- small helpers of Module's PyTorch methods -------------------------------------------------
MISSING = object()


def take_mark(module: Any, key: str, val: array) -> None:
    """Register ``val`` as a buffer or a frozen parameter if ``Buffer``/``Parameter`` said so."""
    kind = marked(val)
    if kind is None:
        return
    module._no_grad.add(key)
    if kind.startswith("buffer"):
        module._buffers.add(key)
        if kind == "buffer_np":
            module._non_persistent.add(key)
        else:
            module._non_persistent.discard(key)


def entry(node: Any, key: str) -> Any:
    """``node[key]`` for a module, dict, list or tuple (a dotted path's step), or MISSING."""
    if isinstance(node, dict):
        return node.get(key, MISSING)
    if isinstance(node, (list, tuple)) and key.lstrip("-").isdigit():
        i = int(key)
        return node[i] if -len(node) <= i < len(node) else MISSING
    return MISSING


def check_name(module: Any, name: Any, who: str, what: str) -> None:
    """PyTorch's checks of a name given to register_buffer / register_parameter / add_module."""
    if not isinstance(name, str):
        raise TypeError(f"{who}: {what} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{what} name can\'t contain ".", got: {name}')
    if name == "":
        raise KeyError(f'{what} name can\'t be empty string ""')
    if name not in module and hasattr(type(module), name):
        raise KeyError(f"attribute '{name}' already exists")


def named_modules_list(root: Any) -> list:
    """``(dotted_name, module)`` for every module under ``root`` (MLX's walk order)."""
    out = []
    root.apply_to_modules(lambda k, m: out.append((k, m)))
    return out


def get_array(self: Any, target: str, what: str) -> array:
    """The parameter or buffer at the dotted path ``target`` (``Module.get_parameter`` /
    ``get_buffer``)."""
    path, _, name = target.rpartition(".")
    owner: Any = self
    for item in path.split(".") if path else ():
        owner = entry(owner, item)
        if owner is MISSING:
            raise AttributeError(f"{type(self).__name__} has no attribute `{item}`")
    value = entry(owner, name)
    if value is MISSING:
        raise AttributeError(f"{type(owner).__name__} has no attribute `{name}`")
    is_buffer = _is_module(owner) and name in owner._buffers
    if not isinstance(value, array) or is_buffer != (what == "buffer"):
        raise AttributeError(f"`{name}` is not a {what}")
    return value


# -- hooks -------------------------------------------------------------------------------------
class RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` takes the hook away (PyTorch)."""

    _next_id = 0

    def __init__(self, module: Any, table: str) -> None:
        RemovableHandle._next_id += 1
        self.id = RemovableHandle._next_id
        self._module = weakref.ref(module)
        self._table = table

    def remove(self) -> None:
        """Unregister the hook (a no-op the second time)."""
        m = self._module()
        if m is None:
            return
        hooks = m.__dict__.get(self._table)
        if hooks is not None:
            hooks.pop(self.id, None)
        m.__dict__.get("_hook_kwargs", {}).pop(self.id, None)
        _refresh_class(m)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


_TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")
_HOOKED: dict = {}


def add_hook(module: Any, table: str, hook: Callable, prepend: bool, with_kwargs: bool):
    """Register ``hook`` in ``module``'s ``table`` and give the module its hooked class."""
    if not callable(hook):
        raise TypeError(f"{table[1:-1]}: hook must be callable, got {type(hook).__name__}")
    handle = RemovableHandle(module, table)
    hooks = module.__dict__.get(table)
    if hooks is None:
        hooks = {}
        object.__setattr__(module, table, hooks)
    if prepend:
        items = [(handle.id, hook), *hooks.items()]
        hooks.clear()
        hooks.update(items)
    else:
        hooks[handle.id] = hook
    if with_kwargs:
        kw = module.__dict__.get("_hook_kwargs")
        if kw is None:
            kw = {}
            object.__setattr__(module, "_hook_kwargs", kw)
        kw[handle.id] = True
    _refresh_class(module)
    return handle


def _refresh_class(module: Any) -> None:
    """Give a module with hooks a subclass whose ``__call__`` runs them, and give the class
    back when none is left: modules without hooks pay nothing per call."""
    cls = type(module)
    base = cls.__dict__.get("_hooked_base", cls)
    any_hooks = any(module.__dict__.get(t) for t in _TABLES)
    want = _hooked_class(base) if any_hooks else base
    if want is not cls:
        object.__setattr__(module, "__class__", want)


def _hooked_class(base: type) -> type:
    sub = _HOOKED.get(base)
    if sub is None:
        base_call = base.__call__

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return _call_with_hooks(self, base_call, args, kwargs)

        __call__.hook_wrapper = True
        sub = type(
            base.__name__,
            (base,),
            {
                "__call__": __call__,
                "_hooked_base": base,
                # the base's own __call__ already hands layers plain arrays (module.py's door);
                # hooks see what the caller passed, as in PyTorch
                "passes_tensors": True,
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "__doc__": base.__doc__,
            },
        )
        _HOOKED[base] = sub
    return sub


def _call_with_hooks(module: Any, call: Callable, args: tuple, kwargs: dict) -> Any:
    d = module.__dict__
    with_kw = d.get("_hook_kwargs", {})
    for hid, hook in list(d.get("_forward_pre_hooks", {}).items()):
        if hid in with_kw:
            res = hook(module, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise RuntimeError(
                        "forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                        f"but got {res}."
                    )
                args, kwargs = res
        else:
            res = hook(module, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
    backward = d.get("_backward_hooks") or d.get("_backward_pre_hooks")
    if backward:
        from .module_hooks import wrap_inputs

        args, state = wrap_inputs(module, args)
    out = call(module, *args, **kwargs)
    for hid, hook in list(d.get("_forward_hooks", {}).items()):
        res = hook(module, args, kwargs, out) if hid in with_kw else hook(module, args, out)
        if res is not None:
            out = res
    if backward:
        from .module_hooks import wrap_outputs

        out = wrap_outputs(module, out, state)
    return out
