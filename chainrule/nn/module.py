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
from collections import namedtuple
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..core import dtypes as _dt
from ..core import tree as pytree
from ..core.autograd import no_grad
from ..core.io import (
    clean_stale_temporaries,
)
from ..utils import tree_flatten
from .weights_files import check_names_and_shapes, read_weights, write_npz, write_safetensors_file

__all__ = ["Module", "Parameter", "StateDictError"]

_osetattr = object.__setattr__
_dict_get = dict.__getitem__
_MISSING = object()


class StateDictError(ValueError, RuntimeError):
    """A checkpoint does not fit the model (a ``ValueError`` for MLX code and a
    ``RuntimeError`` for PyTorch code, which catches that)."""


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


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
        if type(v) is array:
            fn(v)


def Parameter(data: Any, requires_grad: bool = True) -> array:
    """A trainable array, as PyTorch's ``nn.Parameter`` (an ordinary array that requires grad).

    Args:
        data: an array or anything ``mx.array`` accepts.
        requires_grad: whether ``backward()`` should fill its ``.grad``.

    Returns:
        A new array handle on the same (immutable) value.
    """
    out = from_value(data._data) if type(data) is array else array(data)
    if requires_grad:
        out.requires_grad = True
    return out


class ParameterTree(dict):
    """A module's parameter tree: a plain MLX dict tree whose iteration yields the arrays.

    MLX code indexes it and walks it with ``.items()`` / ``tree_flatten``; PyTorch code writes
    ``for p in model.parameters()`` or ``sum(p.numel() for p in model.parameters())``. Only
    direct iteration differs from a ``dict``: use ``.keys()`` for the names.
    """

    def __iter__(self):
        return iter(pytree.leaves(self))  # walks .values(), not this __iter__


def _empty_node(x) -> bool:
    """An empty dict or list in an update: nothing to replace there (as leaf_modules() gives)."""
    return type(x) in (dict, list) and not x


def _update_entry(dst, key, v, where: str, strict: bool, owner: str) -> None:
    """Put module ``v`` at ``dst[key]``, or update the container there with it."""
    if _empty_node(v):
        return
    cur = dst[key]
    if Module.is_module(cur) and Module.is_module(v):
        dst[key] = v
    elif isinstance(cur, (dict, list)):
        _update_modules(cur, v, where, strict, owner)
    elif strict:
        raise ValueError(
            f"update_modules: {where!r} holds a {type(cur).__name__}, received a {type(v).__name__}"
        )


def _update_modules(dst, new, path: str, strict: bool, owner: str) -> None:
    """``Module.update_modules``'s walk (a plain function: a recursive closure would hold the
    module in a reference cycle until the garbage collector ran)."""
    if _empty_node(new):
        return
    if isinstance(new, dict):
        for k, v in new.items():
            where = f"{path}.{k}" if path else str(k)
            if k in dst:
                _update_entry(dst, k, v, where, strict, owner)
            elif strict:
                raise ValueError(f"update_modules: {owner} has no sub-module named {where!r}")
    elif isinstance(new, list):
        if not isinstance(dst, list):
            if strict:
                raise ValueError(
                    f"update_modules: {path!r} holds a {type(dst).__name__}, received a list"
                )
            return
        if len(new) > len(dst) and strict:
            raise ValueError(
                f"update_modules: {path!r} has {len(dst)} entries, received {len(new)}"
            )
        for i, v in enumerate(new[: len(dst)]):
            _update_entry(dst, i, v, f"{path}.{i}", strict, owner)
    elif strict:
        raise ValueError(f"update_modules: received invalid type {type(new).__name__}")


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
        return self

    def __init__(self) -> None:
        """Set up an empty module (kept for ``super().__init__()`` calls)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A PyTorch-style subclass of a layer that overrides only forward() must have its
        # forward() run, not the inherited __call__.
        if "forward" in cls.__dict__ and "__call__" not in cls.__dict__:
            cls.__call__ = Module.__call__

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
            if not key.startswith("_") and key not in self._no_grad:
                if type(val) is array:
                    _make_leaf(val)
                else:
                    _walk_arrays(val, _make_leaf)
            self[key] = val
        else:
            _osetattr(self, key, val)
            if key in self:
                del self[key]

    def __delattr__(self, key: str) -> None:
        if key in self:
            del self[key]
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
        children = tree_flatten(self.children(), is_leaf=self.is_module)
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
            return isinstance(v, Module) and not tree_flatten(v.children())

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
                mod.children(), prefix="." + prefix if prefix else "", is_leaf=Module.is_module
            )
            stack.extend(reversed(children))
        return self

    def modules(self) -> list:
        """All modules in this module, itself included (a list)."""
        out = []
        self.apply_to_modules(lambda k, m: out.append(m))
        return out

    def named_modules(self) -> list:
        """``(dotted_name, module)`` for every module, ``("", self)`` included."""
        out = []
        self.apply_to_modules(lambda k, m: out.append((k, m)))
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

    # -- PyTorch habits ------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple]:
        """Yield ``(dotted_name, array)`` for every parameter (PyTorch).

        Args:
            prefix: prepended to every name.
            recurse: include the sub-modules' parameters.

        Yields:
            Name and array pairs.
        """
        tree = self.parameters()
        if not recurse:
            tree = {k: v for k, v in tree.items() if not Module.is_module(self[k])}
        for k, v in tree_flatten(tree):
            yield (f"{prefix}.{k}" if prefix else k), v

    def named_children(self) -> Iterator[tuple]:
        """Yield ``(dotted_name, module)`` for the direct sub-modules (PyTorch)."""
        yield from tree_flatten(self.children(), is_leaf=Module.is_module)

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
        for _, p in tree_flatten(self.parameters()):
            if p._grad is not None:
                p._grad = None if set_to_none else from_value(np.zeros_like(p._grad._data))

    def state_dict(self, destination: dict | None = None, prefix: str = "") -> dict:
        """Dotted names mapped to the parameter arrays (PyTorch).

        The values are the live parameter handles, as PyTorch's are: an optimizer step shows
        through them. Take ``copy.deepcopy`` for a snapshot.

        Args:
            destination: a dict to fill (a new one by default).
            prefix: prepended to every name.

        Returns:
            The dict.
        """
        out = {} if destination is None else destination
        for k, v in tree_flatten(self.parameters()):
            out[prefix + k] = v
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True):
        """Copy values from ``state_dict`` into the parameters, in place (PyTorch).

        Names and shapes are checked first; nothing changes when the check fails. Values are
        cast to each parameter's dtype and written into the existing arrays, so optimizers
        bound to them stay bound.

        Args:
            state_dict: dotted names mapped to arrays (or anything ``mx.array`` accepts).
            strict: refuse missing and unexpected names.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            StateDictError: a ``ValueError`` and ``RuntimeError`` naming the keys or shapes.
        """
        current = dict(tree_flatten(self.parameters()))
        given = {k: _to_value(v, k) for k, v in dict(state_dict).items()}
        missing = sorted(current.keys() - given.keys())
        unexpected = sorted(given.keys() - current.keys())
        errors = []
        if strict and unexpected:
            errors.append("unexpected key(s): " + ", ".join(unexpected))
        if strict and missing:
            errors.append("missing key(s): " + ", ".join(missing))
        for k, v in given.items():
            if k in current and tuple(v.shape) != current[k].shape:
                errors.append(
                    f"size mismatch for {k}: the checkpoint has shape {tuple(v.shape)}, the "
                    f"model has {current[k].shape}"
                )
        if errors:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__}: " + "; ".join(errors)
            )
        for k, v in given.items():
            if k in current:
                p = current[k]
                p._set_value(v.astype(p._data.dtype, copy=False))
        return _IncompatibleKeys(missing, unexpected)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Store a non-trainable array (PyTorch's buffer): a frozen entry of the module.

        Args:
            name: attribute name.
            tensor: the array (``None`` stores nothing).
            persistent: accepted for PyTorch code; buffers are always saved.
        """
        if tensor is None:
            return
        self._no_grad.add(name)
        self._buffers.add(name)
        setattr(self, name, tensor if type(tensor) is array else array(tensor))

    def register_parameter(self, name: str, param: Any) -> None:
        """Store a trainable array under ``name`` (PyTorch)."""
        if param is not None:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Store a sub-module under ``name`` (PyTorch)."""
        if module is not None:
            setattr(self, name, module)

    register_module = add_module

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """PyTorch's ``module.to(device_or_dtype)``: casts floating parameters in place.

        Only the CPU exists, so a device argument is accepted and otherwise ignored.

        Returns:
            The module.
        """
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, _dt.Dtype):
                dtype = a
        if dtype is not None:
            self._cast_in_place(dtype)
        return self

    def _cast_in_place(self, dtype: _dt.Dtype) -> Module:
        np_dtype = _dt.to_np(dtype)
        for _, p in tree_flatten(self.parameters()):
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
        flat = {k: np.asarray(v._data) for k, v in tree_flatten(self.parameters())}
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
        current = dict(tree_flatten(self.parameters()))
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
                p._set_value(v)
        return self


def _own_call(cls: type) -> Callable | None:
    """The nearest ``__call__`` a class defines itself (not Module's dispatch to forward)."""
    for c in cls.__mro__:
        f = c.__dict__.get("__call__")
        if f is not None and f is not Module.__call__:
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


def _check_update(dst, new, path: str, problems: list) -> None:
    """Collect the reasons a strict update would fail (unknown names, wrong types)."""
    if isinstance(new, (dict, list)) and not new:
        return  # an empty placeholder (MLX's trees keep {} for non-parameter entries)
    if isinstance(new, dict):
        if not isinstance(dst, dict):
            problems.append(f"{path!r} is a {type(dst).__name__}, received a dict")
            return
        for k, v in new.items():
            where = f"{path}.{k}" if path else str(k)
            if k not in dst:
                problems.append(f'the module has no parameter named "{where}"')
                continue
            cur = dst[k]
            if type(cur) is array:
                if type(v) is not array:
                    problems.append(
                        f"parameter {where!r} must be replaced by an array, received "
                        f"{type(v).__name__}"
                    )
            else:
                _check_update(cur, v, where, problems)
    elif isinstance(new, list):
        if not isinstance(dst, list):
            problems.append(f"{path!r} is a {type(dst).__name__}, received a list")
            return
        if len(new) > len(dst):
            problems.append(f"{path!r} has {len(dst)} entries, received {len(new)}")
            return
        for i, v in enumerate(new):
            where = f"{path}.{i}"
            cur = dst[i]
            if type(cur) is array:
                if type(v) is not array:
                    problems.append(
                        f"parameter {where!r} must be replaced by an array, received "
                        f"{type(v).__name__}"
                    )
            else:
                _check_update(cur, v, where, problems)
    elif not (isinstance(new, tuple) and not new):
        problems.append(f"received invalid type {type(new).__name__} at {path or 'the top'!r}")


def _replace(container, key, cur, new) -> None:
    if type(new) is array and new._node is None and type(cur) is array:
        node = cur._node
        if node is not None and node.prim is None and new._data.dtype.kind in "fc":
            new.requires_grad = True
    container[key] = new


def _apply_update(dst, new) -> None:
    if isinstance(new, dict) and isinstance(dst, dict):
        for k, v in new.items():
            if k in dst:
                cur = dst[k]
                if type(cur) is array:
                    if type(v) is array:
                        if v._node is None:  # _replace, inline: this runs every step
                            _replace(dst, k, cur, v)
                        else:
                            dst[k] = v
                else:
                    _apply_update(cur, v)
    elif isinstance(new, list) and isinstance(dst, list):
        for i, v in enumerate(new[: len(dst)]):
            cur = dst[i]
            if type(cur) is array:
                if type(v) is array:
                    _replace(dst, i, cur, v)
            else:
                _apply_update(cur, v)
