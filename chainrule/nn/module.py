"""``Module``: MLX's dict-based module, which also answers PyTorch's habits.

A ``Module`` is a ``dict``: every array, list, dict, tuple or sub-module assigned as an
attribute becomes an entry (``self.fc = Linear(2, 3)`` stores ``self["fc"]``), so the
parameters form a plain nested tree that ``chainrule.utils`` walks with no special case.
Other attributes (ints, strings, functions) live in the instance ``__dict__``.

Trainable floating-point arrays are ``requires_grad`` leaves, so PyTorch-style code can call
``loss.backward()`` and read ``model.fc.weight.grad``; ``freeze()`` turns that off for the
frozen arrays and ``unfreeze()`` turns it back on. MLX-style code uses
:func:`chainrule.nn.value_and_grad`, which differentiates with respect to
``trainable_parameters()`` and puts the model's own arrays back afterwards.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..core import backend as _backend
from ..core import dtypes as _dt
from ..core import tree as pytree
from ..core.autograd import no_grad
from ..core.io import (
    clean_stale_temporaries,
)
from ..utils import tree_flatten
from . import module_state
from .doors import light_door, subclass_door
from .module_tree import _apply_update, _check_update, _update_modules
from .weights_files import check_names_and_shapes, read_weights, write_npz, write_safetensors_file

__all__ = ["Buffer", "Module", "Parameter", "StateDictError"]

_osetattr = object.__setattr__
_dict_get = dict.__getitem__
_MISSING = object()


class StateDictError(ValueError, RuntimeError):
    """A checkpoint does not fit the model (a ``ValueError`` for MLX code and a
    ``RuntimeError`` for PyTorch code, which catches that)."""


_IncompatibleKeys = module_state.IncompatibleKeys


def _is_float(a: array) -> bool:
    return a._data.dtype.kind in "fc"


def _make_leaf(a: array) -> None:
    """Make a constant floating array a ``requires_grad`` leaf (no-op otherwise)."""
    if a._node is None and a._data.dtype.kind in "fc":
        a.requires_grad = True


def _drop_leaf(a: array) -> None:
    """Stop a leaf from requiring gradients (arrays computed by an op are left alone)."""
    node = a._node
    if node is not None and node.prim is None:
        a._node = None


def _walk_arrays(value: Any, fn: Callable[[array], None]) -> None:
    """Apply ``fn`` to the arrays of the tree ``value`` (core/tree.py), not entering modules."""
    for v in pytree.leaves(value, Module.is_module):
        if isinstance(v, array):
            fn(v)


def Parameter(data: Any = None, requires_grad: bool = True) -> array:
    """A trainable array, as PyTorch's ``nn.Parameter`` (an ordinary array that requires grad).

    With ``requires_grad=False`` the module it is assigned to keeps it as a frozen parameter
    (listed by ``named_parameters()``, left out of ``trainable_parameters()``).

    Args:
        data: an array or anything ``mx.array`` accepts (an empty array by default).
        requires_grad: whether ``backward()`` should fill its ``.grad``.

    Returns:
        A new array handle on the same (immutable) value.
    """
    if data is None:
        data = np.empty((0,), np.float32)
    out = from_value(data._data) if isinstance(data, array) else array(data)
    if requires_grad:
        out.requires_grad = True
    else:
        module_state.mark(out, "frozen")
    return out


def Buffer(data: Any, persistent: bool = True) -> array:
    """An array that a module registers as a buffer when it is assigned (PyTorch's
    ``nn.Buffer``): ``self.steps = nn.Buffer(torch.zeros(()))``.

    Args:
        data: an array or anything ``mx.array`` accepts.
        persistent: whether ``state_dict()`` includes it.

    Returns:
        A new array handle on the same (immutable) value.
    """
    out = from_value(data._data) if isinstance(data, array) else array(data)
    return module_state.mark(out, "buffer" if persistent else "buffer_np")


class ParameterTree(dict):
    """A module's parameter tree: a plain MLX dict tree whose iteration yields the arrays.

    MLX code indexes it and walks it with ``.items()`` / ``tree_flatten``; PyTorch code writes
    ``for p in model.parameters()`` or ``sum(p.numel() for p in model.parameters())``. Only
    direct iteration differs from a ``dict``: use ``.keys()`` for the names.
    """

    def __iter__(self):
        # walks .values(), not this __iter__; a shared (tied) array comes once, as PyTorch's
        # parameters() gives it
        seen: set[int] = set()
        return iter([p for p in pytree.leaves(self) if not (id(p) in seen or seen.add(id(p)))])

    def __next__(self) -> array:
        # PyTorch's parameters() is a generator: next(model.parameters()) is its first array
        it = self.__dict__.get("_cursor")
        if it is None:
            it = self._cursor = iter(self)
        return next(it)


class Module(dict):
    """Base class of layers and models (MLX's ``nn.Module``, usable the PyTorch way too).

    Subclasses define ``__call__`` (MLX) or ``forward`` (PyTorch); calling the module runs
    whichever the subclass defines. ``super().__init__()`` is optional: the bookkeeping is set
    up when the instance is created.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Module:
        self = dict.__new__(cls)
        _osetattr(self, "_no_grad", set())
        _osetattr(self, "_training", True)
        # Names that stay frozen through unfreeze() (PyTorch's buffers, BatchNorm's running
        # statistics).
        _osetattr(self, "_buffers", set())
        _osetattr(self, "_non_persistent", set())
        return self

    def __init__(self) -> None:
        """Set up an empty module (kept for ``super().__init__()`` calls)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A PyTorch-style subclass of a layer that overrides only forward() must have its
        # forward() run, not the inherited __call__.
        if "forward" in cls.__dict__ and "__call__" not in cls.__dict__:
            cls.__call__ = Module.__call__
        # chainrule's own layers compute on plain arrays: see nn/doors.py.
        call = cls.__call__  # its own or inherited (a factory may set it after the class)
        if (
            cls.__module__.startswith("chainrule.")
            and not getattr(cls, "passes_tensors", False)
            and not hasattr(call, "__wrapped_call__")
        ):
            light = cls.__dict__.get("takes_tensors", False) and "__call__" in cls.__dict__
            cls.__call__ = (light_door if light else subclass_door)(call)

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation (PyTorch's name); layers define ``__call__`` and this calls it."""
        call = _own_call(type(self))
        if call is None:
            raise NotImplementedError(
                f"{type(self).__name__} defines neither __call__ nor forward(); define one of "
                "them to say what the module computes"
            )
        return call(self, *args, **kwargs)

    # -- attributes are entries ----------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        try:
            return _dict_get(self, key)
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {key!r}"
            ) from None

    def __setattr__(self, key: str, val: Any) -> None:
        if isinstance(val, (array, dict, list, tuple)):
            attr = getattr(type(self), key, _MISSING)
            if attr is not _MISSING:
                if hasattr(attr, "__set__"):  # a property with a setter handles it
                    _osetattr(self, key, val)
                    return
                owner = next(c.__name__ for c in type(self).__mro__ if key in c.__dict__)
                raise AttributeError(
                    f"{type(self).__name__}: cannot store the {type(val).__name__} attribute "
                    f"{key!r}: the name belongs to {owner}.{key}, which would hide it; choose "
                    "another name"
                )
            d = self.__dict__
            if key in d:
                del d[key]
            if module_state._MARKED and isinstance(val, array):
                module_state.take_mark(self, key, val)
            if not key.startswith("_") and key not in self._no_grad:
                if isinstance(val, array):
                    _make_leaf(val)
                else:
                    _walk_arrays(val, _make_leaf)
            dict.__setitem__(self, key, val)
        else:
            _osetattr(self, key, val)
            if key in self:
                del self[key]

    def __delattr__(self, key: str) -> None:
        if key in self:
            del self[key]
            if key in self._buffers:  # PyTorch: deleting a buffer unregisters it
                self._buffers.discard(key)
                self._non_persistent.discard(key)
                self._no_grad.discard(key)
        else:
            object.__delattr__(self, key)

    def __setstate__(self, state: dict) -> None:
        # pickle restores the entries first, then this state; arrays come back as constants,
        # so the trainable ones become requires_grad leaves again.
        self.__dict__.update(state)
        for k, v in self.items():
            if not k.startswith("_") and k not in self._no_grad:
                _walk_arrays(v, _make_leaf)

    def __dir__(self) -> list:
        return sorted(set(super().__dir__()) | {k for k in self if isinstance(k, str)})

    # dict equality would compare arrays elementwise; modules are compared and hashed by
    # identity, as PyTorch modules are.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    # -- training mode -----------------------------------------------------------------------
    @property
    def training(self) -> bool:
        """True in training mode (``Dropout`` drops, ``BatchNorm`` uses batch statistics)."""
        return self._training

    @training.setter
    def training(self, mode: bool) -> None:
        _osetattr(self, "_training", bool(mode))

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every sub-module.

        Args:
            mode: ``True`` for training, ``False`` for evaluation.

        Returns:
            The module.
        """
        mode = bool(mode)

        def _set(_, m):
            _osetattr(m, "_training", mode)

        return self.apply_to_modules(_set)

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``).

        Returns:
            The module.
        """
        return self.train(False)

    @property
    def state(self) -> Module:
        """The module's state: the module itself (changes to it change the module)."""
        return self

    # -- representation ------------------------------------------------------------------------
    def _extra_repr(self) -> str:
        return ""

    def extra_repr(self) -> str:
        """PyTorch's name for the text inside the parentheses of ``repr``."""
        return self._extra_repr()

    def __repr__(self) -> str:
        children = tree_flatten(Module.children(self), is_leaf=self.is_module)
        text = f"{type(self).__name__}({self._extra_repr()}"
        for k, v in children:
            text += "\n" + textwrap.indent(f"({k}): {v!r}", prefix="  ")
        if children:
            text += "\n"
        return text + ")"

    # -- filtering the tree --------------------------------------------------------------------
    @staticmethod
    def is_module(value: Any) -> bool:
        """True if ``value`` is a ``Module``."""
        return isinstance(value, Module)

    @staticmethod
    def valid_child_filter(module: Module, key: str, value: Any) -> bool:
        """Entries that may hold sub-modules."""
        return isinstance(value, (dict, list))

    @staticmethod
    def valid_parameter_filter(module: Module, key: str, value: Any) -> bool:
        """Entries that are parameters or may hold them (names starting with ``_`` are private)."""
        return isinstance(value, (dict, list, array)) and not key.startswith("_")

    @staticmethod
    def trainable_parameter_filter(module: Module, key: str, value: Any) -> bool:
        """Parameters that are not frozen."""
        return Module.valid_parameter_filter(module, key, value) and key not in module._no_grad

    def filter_and_map(
        self,
        filter_fn: Callable[[Module, str, Any], bool],
        map_fn: Callable | None = None,
        is_leaf_fn: Callable[[Module, str, Any], bool] | None = None,
    ) -> dict:
        """The module's contents kept by ``filter_fn``, as nested plain dicts and lists.

        Args:
            filter_fn: ``(module, key, value) -> bool``; nested entries are offered with dotted
                keys (``"layers.0"``) relative to the module that holds them.
            map_fn: applied to every kept leaf (default: identity).
            is_leaf_fn: ``(module, key, value) -> bool`` deciding where to stop descending
                (default: anything that is not a module, dict or list).

        Returns:
            A dict tree.
        """
        map_fn = map_fn or (lambda x: x)
        is_leaf_fn = is_leaf_fn or (lambda m, k, v: not isinstance(v, (Module, dict, list)))
        return {
            k: _unwrap(self, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in self.items()
            if filter_fn(self, k, v)
        }

    def parameters(self) -> ParameterTree:
        """Every array of the module (recursively) as a tree of dicts and lists (MLX).

        The tree is a ``dict`` (``["fc1"]["weight"]``, ``tree_flatten``, ``.items()`` work as in
        MLX) that PyTorch code can also iterate: ``for p in model.parameters()`` yields the
        arrays. Handing it to a PyTorch-style optimizer binds the very arrays the layers use.
        """
        return ParameterTree(self.filter_and_map(self.valid_parameter_filter))

    def trainable_parameters(self) -> ParameterTree:
        """The arrays that are not frozen, as a tree of dicts and lists (iterable like
        ``parameters()``)."""
        tree = None
        if type(self).trainable_parameter_filter is Module.trainable_parameter_filter:
            tree = _trainable_tree(self)  # every step of MLX-style training asks for it
        if tree is None:
            tree = self.filter_and_map(self.trainable_parameter_filter)
        return ParameterTree(tree)

    def children(self) -> dict:
        """The direct sub-modules, as a tree (MLX)."""
        return self.filter_and_map(
            self.valid_child_filter, is_leaf_fn=lambda m, k, v: isinstance(v, Module)
        )

    def leaf_modules(self) -> dict:
        """The sub-modules that contain no other module, as a tree."""

        def is_leaf(m, k, v):
            return isinstance(v, Module) and not tree_flatten(Module.children(v))

        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=is_leaf)

    def apply_to_modules(self, apply_fn: Callable[[str, Module], Any]) -> Module:
        """Call ``apply_fn(dotted_name, module)`` on this module and every sub-module.

        Args:
            apply_fn: called with ``""`` for this module first.

        Returns:
            The module.
        """
        stack = [("", self)]
        while stack:
            prefix, mod = stack.pop()
            apply_fn(prefix, mod)
            children = tree_flatten(
                Module.children(mod),
                prefix="." + prefix if prefix else "",
                is_leaf=Module.is_module,
            )
            stack.extend(reversed(children))
        return self

    def modules(self) -> list:
        """All modules in this module, itself included (a list)."""
        out = []
        self.apply_to_modules(lambda k, m: out.append(m))
        return out

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> list:
        """``(dotted_name, module)`` for every module, ``("", self)`` included, in pre-order.

        Args:
            memo: modules to leave out (PyTorch); filled with those listed.
            prefix: prepended to every name.
            remove_duplicate: list a module reached twice only once (PyTorch).
        """
        out = []
        seen = set() if memo is None else memo
        for k, m in module_state.named_modules_list(self):
            if remove_duplicate:
                if m in seen:
                    continue
                seen.add(m)
            out.append((prefix + ("." if prefix and k else "") + k, m))
        return out

    # -- replacing parameters and modules ------------------------------------------------------
    def update(self, parameters: dict, strict: bool = True) -> Module:
        """Replace parameters by the arrays in ``parameters`` (a full or partial tree).

        An entry that was a ``requires_grad`` leaf and is replaced by a constant array makes
        the new array a leaf too, so tape-style training keeps working after an MLX-style
        update.

        Args:
            parameters: a tree shaped like (part of) :meth:`parameters`.
            strict: refuse names the module does not have and non-array values where it has
                arrays; nothing is changed when a name is refused.

        Returns:
            The module.

        Raises:
            ValueError: naming the unknown keys or the wrong type.
        """
        if strict:
            problems = []
            _check_update(self, parameters, "", problems)
            if problems:
                raise ValueError(
                    f"{type(self).__name__}.update: "
                    + "; ".join(problems[:20])
                    + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
                )
        _apply_update(self, parameters)
        return self

    def apply(
        self,
        map_fn: Callable[[array], array],
        filter_fn: Callable[[Module, str, Any], bool] | None = None,
    ) -> Module:
        """Map the parameters with ``map_fn`` and put the results in the module.

        ``map_fn`` runs without recording gradients: it transforms parameters (casting,
        re-initialising), it is not part of a model's computation.

        Args:
            map_fn: array -> array.
            filter_fn: which entries to map (default :meth:`valid_parameter_filter`).

        Returns:
            The module.
        """
        filter_fn = filter_fn or Module.valid_parameter_filter
        with no_grad():
            mapped = self.filter_and_map(filter_fn, map_fn)
        return self.update(mapped)

    def update_modules(self, modules: dict, strict: bool = True) -> Module:
        """Replace sub-modules by the modules in ``modules`` (a full or partial tree).

        Args:
            modules: a tree shaped like (part of) :meth:`children`.
            strict: refuse names the module does not have.

        Returns:
            The module.
        """

        _update_modules(self, modules, "", strict, type(self).__name__)
        return self

    def set_dtype(
        self,
        dtype: _dt.Dtype,
        predicate: Callable[[_dt.Dtype], bool] | None = lambda x: _dt.issubdtype(x, _dt.floating),
    ) -> Module:
        """Cast parameters to ``dtype`` (by default only floating-point ones).

        Args:
            dtype: the new dtype.
            predicate: which current dtypes to cast; ``None`` casts everything.

        Returns:
            The module.
        """
        if predicate is None:
            predicate = lambda _: True  # noqa: E731
        return self.apply(lambda x: x.astype(dtype) if predicate(x.dtype) else x)

    # -- freezing --------------------------------------------------------------------------------
    def _validate_keys(self, keys, strict: bool) -> list:
        keys = keys if isinstance(keys, list) else [keys]
        if strict:
            for k in keys:
                if k not in self:
                    raise KeyError(f"{type(self).__name__} has no member {k!r}")
        return keys

    def _present_keys(self, keys, found: set) -> list:
        """The ``keys`` this module has (noted in ``found``); a recursive walk's share."""
        keys = keys if isinstance(keys, list) else [keys]
        mine = [k for k in keys if k in self]
        found.update(mine)
        return mine

    def _check_found(self, keys, found: set, strict: bool) -> None:
        if strict and keys is not None:
            missing = [k for k in (keys if isinstance(keys, list) else [keys]) if k not in found]
            if missing:
                raise KeyError(f"{type(self).__name__} has no member {missing[0]!r}")

    def _set_requires_grad(self, keys, flag: bool) -> None:
        """Switch ``requires_grad`` on the arrays under ``keys`` (dotted, relative to self)."""
        fn = _make_leaf if flag else _drop_leaf
        for key in keys:
            node = self
            for part in str(key).split("."):
                if isinstance(node, dict) and not (node is not self and Module.is_module(node)):
                    node = node.get(part, _MISSING)
                elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    node = _MISSING
                if node is _MISSING:
                    break
            if node is not _MISSING:
                _walk_arrays(node, fn)

    def freeze(
        self,
        *,
        recurse: bool = True,
        keys: str | list[str] | None = None,
        strict: bool = False,
    ) -> Module:
        """Freeze parameters: leave them out of ``trainable_parameters()`` and ``backward()``.

        Args:
            recurse: freeze the sub-modules' parameters too.
            keys: only these names (e.g. ``"bias"``), in every visited module.
            strict: raise ``KeyError`` if one of ``keys`` is not a member of the module (with
                ``recurse``, of any module visited).

        Returns:
            The module.
        """
        found: set = set()

        def _freeze(_, m):
            local = keys
            if local is None:
                local = [
                    k
                    for k, _ in tree_flatten(
                        m.filter_and_map(
                            lambda m_, k_, v_: (
                                not isinstance(v_, Module) and m_.valid_parameter_filter(m_, k_, v_)
                            )
                        )
                    )
                ]
            if keys is not None and recurse:  # a key may be in some sub-modules only
                local = m._present_keys(local, found)
            else:
                local = m._validate_keys(local, strict)
            m._no_grad.update(local)
            m._set_requires_grad(local, False)

        if recurse:
            self.apply_to_modules(_freeze)
            self._check_found(keys, found, strict)
        else:
            _freeze("", self)
        return self

    def unfreeze(
        self,
        *,
        recurse: bool = True,
        keys: str | list[str] | None = None,
        strict: bool = False,
    ) -> Module:
        """Undo :meth:`freeze` for all parameters or for ``keys``.

        Args:
            recurse: unfreeze the sub-modules' parameters too.
            keys: only these names.
            strict: raise ``KeyError`` if one of ``keys`` is not a member of the module (with
                ``recurse``, of any module visited).

        Returns:
            The module.
        """
        found: set = set()

        def _unfreeze(_, m):
            if keys is None:
                local = list(m._no_grad)
            elif recurse:
                local = m._present_keys(keys, found)
            else:
                local = m._validate_keys(keys, strict)
            local = [k for k in local if k not in m._buffers]
            m._no_grad.difference_update(local)
            m._set_requires_grad([k for k in local if not str(k).startswith("_")], True)

        if recurse:
            self.apply_to_modules(_unfreeze)
            self._check_found(keys, found, strict)
        else:
            _unfreeze("", self)
        return self

    # -- PyTorch habits (PyTorch's meaning; module_state.py reads the tree PyTorch's way) -----
    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple]:
        """Yield ``(dotted_name, array)`` for every parameter, buffers excluded (PyTorch).

        Args:
            prefix: prepended to every name.
            recurse: include the sub-modules' parameters.
            remove_duplicate: yield an array shared by several modules once.
        """
        yield from module_state.named_members(self, ("param",), prefix, recurse, remove_duplicate)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple]:
        """Yield ``(dotted_name, array)`` for every buffer, persistent or not (PyTorch).

        Args:
            prefix: prepended to every name.
            recurse: include the sub-modules' buffers.
            remove_duplicate: yield an array shared by several modules once.
        """
        yield from module_state.named_members(
            self, ("buffer", "buffer_np"), prefix, recurse, remove_duplicate
        )

    def buffers(self, recurse: bool = True) -> Iterator[array]:
        """Yield every buffer (PyTorch)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self) -> Iterator[tuple]:
        """Yield ``(name, module)`` for the direct sub-modules (PyTorch)."""
        yield from tree_flatten(Module.children(self), is_leaf=Module.is_module)

    def get_submodule(self, target: str) -> Module:
        """The sub-module at the dotted path ``target`` (``""`` is the module itself).

        Raises:
            AttributeError: naming the part of the path that is missing or not a module.
        """
        mod: Any = self
        if target == "":
            return mod
        for item in target.split("."):
            nxt = module_state.entry(mod, item)
            if nxt is module_state.MISSING:
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            if not isinstance(nxt, (Module, list, tuple)) and not isinstance(nxt, dict):
                raise AttributeError(f"`{item}` is not an nn.Module")
            mod = nxt
        if not isinstance(mod, Module):
            raise AttributeError(f"`{target}` is not an nn.Module")
        return mod

    def get_parameter(self, target: str) -> array:
        """The parameter at the dotted path ``target`` (PyTorch).

        Raises:
            AttributeError: if there is none (a buffer is not a parameter).
        """
        return self._get_array(target, "parameter")

    def get_buffer(self, target: str) -> array:
        """The buffer at the dotted path ``target`` (PyTorch).

        Raises:
            AttributeError: if there is none.
        """
        return self._get_array(target, "buffer")

    def _get_array(self, target: str, what: str) -> array:
        return module_state.get_array(self, target, what)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (``False``) or unfreeze (``True``) every parameter (PyTorch).

        Args:
            requires_grad: whether the parameters should receive gradients.

        Returns:
            The module.
        """
        return self.unfreeze() if requires_grad else self.freeze()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the ``.grad`` of every parameter (PyTorch).

        Args:
            set_to_none: set ``.grad`` to ``None`` (default) or to a new array of zeros.
        """
        for _, p in tree_flatten(Module.parameters(self)):
            if p._grad is not None:
                p._grad = None if set_to_none else from_value(np.zeros_like(p._grad._data))

    def state_dict(
        self, *args: Any, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict:
        """Dotted names mapped to the parameters and persistent buffers (PyTorch's names and
        order: module by module, its parameters, then its buffers).

        The values are the live handles, as PyTorch's share their storage: an optimizer step
        shows through them. Take ``copy.deepcopy`` for a snapshot.

        Args:
            destination: a dict to fill (a new ``OrderedDict`` by default).
            prefix: prepended to every name.
            keep_vars: accepted for PyTorch code (the handles are returned either way).

        Returns:
            The dict.
        """
        if args:  # PyTorch's deprecated positional form (destination, prefix, keep_vars)
            destination = args[0]
            prefix = args[1] if len(args) > 1 else prefix
        return module_state.state_dict(self, destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
        """Copy values from ``state_dict`` into the parameters and buffers (PyTorch).

        Names and shapes are checked first and nothing changes when the check fails (PyTorch
        copies the entries that fit before raising). Values are cast to each array's dtype and
        written into the existing handles, so optimizers bound to them stay bound; with
        ``assign=True`` the given arrays replace them (keeping their own dtype).

        Args:
            state_dict: dotted names mapped to arrays, NumPy arrays or tensor-like objects.
            strict: refuse missing and unexpected names.
            assign: replace the arrays instead of copying into them.

        Returns:
            ``_IncompatibleKeys(missing_keys=[...], unexpected_keys=[...])``.

        Raises:
            StateDictError: a ``RuntimeError`` (and ``ValueError``) with PyTorch's message.
        """
        return module_state.load_state_dict(self, state_dict, strict, assign, StateDictError)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Store a non-trainable array (PyTorch's buffer): a frozen entry of the module.

        Buffers are entries of the MLX tree (``parameters()`` lists them, as MLX lists
        BatchNorm's running statistics) but never trainable; PyTorch's methods
        (``named_parameters``, ``named_buffers``, ``state_dict``) tell them apart.

        Args:
            name: attribute name.
            tensor: the array, or ``None`` (the attribute reads ``None`` until an array is
                assigned, which then becomes the buffer).
            persistent: whether ``state_dict()`` includes it.
        """
        module_state.check_name(self, name, "register_buffer", "buffer")
        self._no_grad.add(name)
        self._buffers.add(name)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        if tensor is None:  # an entry, so the buffer keeps its place in PyTorch's order
            self.__dict__.pop(name, None)
            dict.__setitem__(self, name, None)
            return
        if not isinstance(tensor, array):
            raise TypeError(
                f"register_buffer: cannot assign '{type(tensor).__name__}' object to buffer "
                f"'{name}' (torch Tensor or None required)"
            )
        setattr(self, name, tensor)

    def register_parameter(self, name: str, param: Any) -> None:
        """Store a trainable array under ``name`` (PyTorch); ``None`` makes the attribute
        read ``None``."""
        module_state.check_name(self, name, "register_parameter", "parameter")
        if param is None:
            setattr(self, name, None)
        elif not isinstance(param, array):
            raise TypeError(
                f"register_parameter: cannot assign '{type(param).__name__}' object to parameter "
                f"'{name}' (torch.nn.Parameter or None required)"
            )
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Store a sub-module under ``name`` (PyTorch)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"{type(module).__module__}.{type(module).__name__} is not a Module subclass"
            )
        module_state.check_name(self, name, "add_module", "module")
        if module is None:
            setattr(self, name, None)
        else:
            setattr(self, name, module)

    register_module = add_module

    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> module_state.RemovableHandle:
        """Run ``hook(module, args)`` before every call; a non-``None`` result replaces the
        arguments (PyTorch). Modules without hooks pay nothing per call.

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        return module_state.add_hook(self, "_forward_pre_hooks", hook, prepend, with_kwargs)

    def register_forward_hook(
        self,
        hook: Callable,
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> module_state.RemovableHandle:
        """Run ``hook(module, args, output)`` after every call; a non-``None`` result
        replaces the output (PyTorch).

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        return module_state.add_hook(self, "_forward_hooks", hook, prepend, with_kwargs)

    def register_full_backward_hook(
        self, hook: Callable, prepend: bool = False
    ) -> module_state.RemovableHandle:
        """Run ``hook(module, grad_input, grad_output)`` when the gradients with respect to
        the module's inputs are computed; a non-``None`` result replaces ``grad_input``.

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        return module_state.add_hook(self, "_backward_hooks", hook, prepend, False)

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """PyTorch's ``module.to(device_or_dtype)``: moves (``"cuda"``, ``"cpu"``, a
        ``torch.device``, ``mx.gpu``) and casts floating parameters and buffers in place.

        Returns:
            The module.
        """
        dtype = kwargs.get("dtype")
        device = kwargs.get("device")
        for a in args:
            if isinstance(a, _dt.Dtype):
                dtype = a
            elif isinstance(a, array):  # to(other_tensor): its dtype
                dtype = a.dtype
            else:
                device = a
        if device is not None:
            self._move_in_place(device, "to")
        if dtype is not None:
            if not _dt.issubdtype(dtype, _dt.floating) and not _dt.issubdtype(
                dtype, _dt.complexfloating
            ):
                raise TypeError(
                    f"nn.Module.to only accepts floating point or complex dtypes, but got "
                    f"desired dtype={dtype}"
                )
            self._cast_in_place(dtype)
        return self

    def _cast_in_place(self, dtype: _dt.Dtype) -> Module:
        np_dtype = _dt.to_np(dtype)
        for _, p in tree_flatten(Module.parameters(self)):
            if p._data.dtype.kind == "f" and p._data.dtype != np_dtype:
                p._set_value(p._data.astype(np_dtype))
        return self

    def float(self) -> Module:
        """Cast floating parameters to float32 in place (PyTorch)."""
        return self._cast_in_place(_dt.float32)

    def double(self) -> Module:
        """Cast floating parameters to float64 in place (PyTorch)."""
        return self._cast_in_place(_dt.float64)

    def half(self) -> Module:
        """Cast floating parameters to float16 in place (PyTorch)."""
        return self._cast_in_place(_dt.float16)

    def bfloat16(self) -> Module:
        """Cast floating parameters to bfloat16 in place (PyTorch)."""
        return self._cast_in_place(_dt.bfloat16)

    def _move_in_place(self, device: Any, who: str) -> Module:
        from chainrule.core.tensor_functions import check_device

        kind = check_device(device, who)
        for _, p in tree_flatten(Module.parameters(self)):
            if (kind == "gpu") != _backend.is_gpu(p._data):
                p._set_value(_backend.to_kind(p._data, kind))
        return self

    def cpu(self) -> Module:
        """Move the parameters and buffers to the CPU in place (PyTorch)."""
        return self._move_in_place("cpu", "cpu")

    def cuda(self, device: Any = None) -> Module:
        """Move the parameters and buffers to the GPU in place (PyTorch).

        Raises:
            DeviceUnavailableError: without a GPU, naming what is missing.
        """
        return self._move_in_place("cuda" if device is None else device, "cuda")

    def register_full_backward_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> module_state.RemovableHandle:
        """Run ``hook(module, grad_output)`` when the gradients with respect to the module's
        outputs are known; a non-``None`` result replaces ``grad_output`` (PyTorch).

        Returns:
            A handle whose ``remove()`` unregisters the hook.
        """
        return module_state.add_hook(self, "_backward_pre_hooks", hook, prepend, False)

    # -- weights files ---------------------------------------------------------------------------
    def save_weights(self, file: str | os.PathLike) -> None:
        """Save the parameters to ``.safetensors`` or ``.npz``, atomically.

        The file is written through :mod:`chainrule.core.io`: under a temporary name in its
        folder, flushed to disk and renamed into place, so an interrupted save never leaves a
        truncated file behind; its mode follows the umask. Temporaries that a killed save
        left in the folder are removed first.

        Args:
            file: the path; its extension chooses the format.

        Raises:
            ValueError: for another extension.
            TypeError: for a ``.safetensors`` file and a dtype it cannot hold (complex).
        """
        path = os.fspath(file)
        # not np.ascontiguousarray, which turns a 0-d parameter into shape (1,); the writers
        # handle any memory layout
        flat = {  # GPU values are copied to the host explicitly
            k: _backend.to_host(v._data) for k, v in tree_flatten(Module.parameters(self))
        }
        if path.endswith(".npz"):
            writer = write_npz
        elif path.endswith(".safetensors"):
            writer = write_safetensors_file
        else:
            raise ValueError(
                f"save_weights: unsupported file extension in {path!r}; use '.npz' or "
                "'.safetensors'"
            )
        clean_stale_temporaries(os.path.dirname(os.path.abspath(path)))
        writer(path, flat)

    def load_weights(
        self, file_or_weights: str | os.PathLike | list | dict, strict: bool = True
    ) -> Module:
        """Load parameters from ``.npz`` / ``.safetensors`` or from ``(name, array)`` pairs.

        Every name and shape is checked before anything changes; values are written into the
        existing parameter arrays (keeping the file's dtype), so optimizers bound to them stay
        bound. ``.npz`` files are read with ``allow_pickle=False``.

        A file is checked before its data is read (or, for ``.npz``, decompressed): what each
        member or tensor declares (dtype, shape, size) must be consistent with the file, and
        with ``strict`` the names and shapes must be the model's. With ``strict=False`` only
        the model's names are read. A crafted file (a zip bomb, a lying header) is refused
        with a ``ValueError`` naming the file and the member, before it can claim memory.

        Args:
            file_or_weights: a path, a list of ``(dotted_name, array)`` or a dict.
            strict: require exactly the model's names with matching shapes; otherwise load
                only the names the model has (without checking shapes, as MLX).

        Returns:
            The module.

        Raises:
            ValueError: naming the unexpected, missing or mis-shaped keys, or the file and
                what is wrong with it.
        """
        current = dict(tree_flatten(Module.parameters(self)))
        if isinstance(file_or_weights, (str, os.PathLike)):
            path = os.fspath(file_or_weights)
            weights = list(read_weights(path, current, strict).items())
        elif isinstance(file_or_weights, dict):
            weights = list(file_or_weights.items())
        else:
            weights = list(file_or_weights)
        given = {}
        for pair in weights:
            k, v = pair
            given[k] = _to_value(v, k)
        if strict:
            check_names_and_shapes(
                {k: tuple(v.shape) for k, v in given.items()}, current, "load_weights"
            )
        for k, v in given.items():
            p = current.get(k)
            if p is not None:
                p._set_value(_backend.same_device(v, p._data))  # on the parameter's device
        return self


def _own_call(cls: type) -> Callable | None:
    """The nearest ``__call__`` a class defines itself (not Module's dispatch to forward)."""
    for c in cls.__mro__:
        f = c.__dict__.get("__call__")
        if f is not None and f is not Module.__call__ and not hasattr(f, "hook_wrapper"):
            return f if c is not dict and c is not object else None
    return None


def _to_value(v: Any, name: str) -> np.ndarray:
    """The NumPy value of a checkpoint entry (arrays keep their dtype, float64 included)."""
    if type(v) is array:
        return v._data
    if isinstance(v, np.ndarray):
        return np.array(v)
    try:
        return array(v)._data
    except (TypeError, ValueError) as e:
        raise ValueError(f"weights: entry {name!r} is not an array ({type(v).__name__})") from e


def _unwrap(model, key, value, filter_fn, map_fn, is_leaf_fn):
    if is_leaf_fn(model, key, value):
        return map_fn(value)
    if isinstance(value, Module):
        return {
            k: _unwrap(value, k, v, filter_fn, map_fn, is_leaf_fn)
            for k, v in value.items()
            if filter_fn(value, k, v)
        }
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            tk = f"{key}.{k}"
            out[k] = (
                _unwrap(model, tk, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(model, tk, v)
                else {}
            )
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            tk = f"{key}.{i}"
            out.append(
                _unwrap(model, tk, v, filter_fn, map_fn, is_leaf_fn)
                if filter_fn(model, tk, v)
                else {}
            )
        return out
    raise RuntimeError(f"Module: unexpected leaf {type(value).__name__} at {key!r}")


def _trainable_tree(m: Module) -> dict | None:
    """``filter_and_map(trainable_parameter_filter)`` without the callbacks, for the common
    case (nothing frozen, sub-modules held directly or in lists); ``None`` otherwise."""
    if m._no_grad:
        return None
    out = {}
    for k, v in m.items():
        if k.startswith("_"):
            continue
        if type(v) is array:
            out[k] = v
        elif isinstance(v, Module):
            sub = _trainable_tree(v)
            if sub is None:
                return None
            out[k] = sub
        elif type(v) is list:
            items = []
            for item in v:
                if type(item) is array:
                    items.append(item)
                elif isinstance(item, Module):
                    sub = _trainable_tree(item)
                    if sub is None:
                        return None
                    items.append(sub)
                else:
                    return None
            out[k] = items
        elif isinstance(v, (dict, list)):
            return None
    return out
