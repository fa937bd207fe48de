"""``torch.nn.Module`` and PyTorch's containers over chainrule's one ``Module`` class.

``chainrule.nn.Module`` is MLX's dict tree and answers PyTorch's own names (``state_dict``,
``named_parameters``, hooks...). Where the two libraries give one method name two meanings
(``parameters``, ``children``, ``apply``, ``repr``), the class the module was built from
decides: ``chainrule.torch.nn.Module`` and every class of ``chainrule.torch.nn`` (thin
subclasses) answer PyTorch's way, other modules MLX's. ``isinstance(m, torch.nn.Module)`` holds
for every chainrule module.

``Sequential``, ``ModuleList`` and ``ParameterList`` keep their items under the keys ``"0"``,
``"1"``..., so the state names are PyTorch's (``0.weight``, ``layers.2.bias``).
"""

from __future__ import annotations

import warnings
from abc import ABCMeta
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import chainrule.nn as cnn
from chainrule.core.array import array
from chainrule.nn.module import ParameterTree, _own_call

__all__ = [
    "Container",
    "Module",
    "ModuleDict",
    "ModuleList",
    "ParameterDict",
    "ParameterList",
    "Sequential",
]


class _ModuleMeta(ABCMeta):
    """``isinstance(x, torch.nn.Module)`` is true for every chainrule module. (An ``ABCMeta``
    so that ``class Base(nn.Module, abc.ABC)`` works, as it does in PyTorch.)"""

    def __instancecheck__(cls, obj: Any) -> bool:
        if cls is Module:
            return isinstance(obj, cnn.Module)
        return super().__instancecheck__(obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        if cls is Module:
            return issubclass(sub, cnn.Module)
        return super().__subclasscheck__(sub)


def _addindent(text: str, n: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


def _param_filter(module: cnn.Module, key: str, value: Any) -> bool:
    """MLX's parameter filter without the buffers (PyTorch's ``parameters()``)."""
    return cnn.Module.valid_parameter_filter(module, key, value) and key not in module._buffers


class Module(cnn.Module, metaclass=_ModuleMeta):
    """Base class of PyTorch-style models: ``chainrule.nn.Module`` with PyTorch's meaning for
    the names MLX uses otherwise (``parameters()`` without buffers, ``children()`` an iterator
    of modules, ``apply(fn)`` calling ``fn`` on every module, PyTorch's ``repr``)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Module:
        abstract = cls.__abstractmethods__
        if abstract:  # dict.__new__ skips object's check of abc.abstractmethod
            names = ", ".join(sorted(abstract))
            plural = "s" if len(abstract) > 1 else ""
            raise TypeError(
                f"Can't instantiate abstract class {cls.__name__} with abstract "
                f"method{plural} {names}"
            )
        return super().__new__(cls, *args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation: define it in a subclass (PyTorch); a module with neither
        ``forward`` nor ``__call__`` raises PyTorch's ``NotImplementedError``."""
        call = _own_call(type(self))
        if call is None or getattr(call, "__wrapped_call__", None) is cnn.Module.__call__:
            raise NotImplementedError(
                f'Module [{type(self).__name__}] is missing the required "forward" function'
            )
        return call(self, *args, **kwargs)

    def __setattr__(self, key: str, val: Any) -> None:
        # PyTorch registers only Parameters (plain chainrule arrays: ``nn.Parameter`` makes
        # them) and buffers; a new tensor attribute (``self.src_mask = mask``) stays a plain
        # attribute. (A tensor given to an existing parameter's name replaces the parameter,
        # where PyTorch raises a TypeError asking for nn.Parameter.)
        if (
            type(val) is not array
            and isinstance(val, array)
            and key not in self._buffers
            and not (key in self and isinstance(dict.__getitem__(self, key), array))
        ):
            object.__setattr__(self, key, val)
            return
        if type(val) is not array and isinstance(val, array):
            # a buffer, or a tensor replacing a parameter: the module holds it as the plain
            # array the shared code works on (the same object, so its .grad is the module's)
            val.__class__ = array
        super().__setattr__(key, val)

    def parameters(self, recurse: bool = True) -> ParameterTree:
        """The parameters, buffers excluded (PyTorch), as a tree that iterates its arrays.

        Args:
            recurse: include the sub-modules' parameters.
        """
        tree = self.filter_and_map(_param_filter)
        if not recurse:
            tree = {k: v for k, v in tree.items() if isinstance(v, array)}
        return ParameterTree(tree)

    def modules(self) -> list:
        """Every module, this one first, in pre-order; a module reached twice once (PyTorch)."""
        return [m for _, m in self.named_modules()]

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every sub-module (PyTorch checks ``mode``)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        return super().train(mode)

    def children(self) -> Iterator[cnn.Module]:
        """Yield the direct sub-modules (PyTorch)."""
        for _, m in self.named_children():
            yield m

    def apply(self, fn: Callable[[cnn.Module], Any]) -> Module:
        """Call ``fn`` on every sub-module, then on this module (PyTorch), e.g. to initialise
        weights: ``model.apply(init_fn)``.

        Args:
            fn: called with each module.

        Returns:
            The module.
        """
        _apply_post(self, fn)
        return self

    def extra_repr(self) -> str:
        """The text inside the parentheses of ``repr`` (override it, as in PyTorch)."""
        return self._extra_repr()

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({k}): {_addindent(repr(m), 2)}" for k, m in self.named_children()]
        lines = extra_lines + child_lines
        text = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"


class Container(Module):
    """PyTorch's deprecated ``nn.Container``: a module holding the modules given as keywords
    (subclass ``Module`` instead; building one warns as PyTorch does).

    Args:
        **kwargs: the sub-modules, by name.
    """

    def __init__(self, **kwargs: Any) -> None:
        warnings.warn(
            "`nn.Container` is deprecated. All of its functionality is now implemented in "
            "`nn.Module`. Subclass that instead.",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__()
        for key, value in kwargs.items():
            self.add_module(key, value)


def _apply_post(module: cnn.Module, fn: Callable) -> None:
    for _, child in cnn.Module.named_children(module):
        _apply_post(child, fn)
    fn(module)


def _type_name(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__qualname__}"


class _Indexed(Module):
    """Items under the keys ``"0"``, ``"1"``...: list-like indexing and iteration."""

    _what = "module"

    def _check_item(self, item: Any) -> Any:
        if not isinstance(item, cnn.Module):
            raise TypeError(f"{_type_name(item)} is not a Module subclass")
        return item

    def _items(self) -> list:
        return list(dict.values(self))

    def _reset(self, items: Iterable) -> None:
        dict.clear(self)
        for i, item in enumerate(items):
            cnn.Module.__setattr__(self, str(i), item)

    def _index(self, idx: int) -> int:
        n = dict.__len__(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return idx % n

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return type(self)(self._items()[idx])
        if isinstance(idx, int) and not isinstance(idx, bool):
            return dict.__getitem__(self, str(self._index(idx)))
        return dict.__getitem__(self, idx)

    def __setitem__(self, idx: Any, item: Any) -> None:
        if isinstance(idx, int) and not isinstance(idx, bool):
            idx = str(self._index(idx))
        cnn.Module.__setattr__(self, str(idx), self._check_item(item))

    def __delitem__(self, idx: Any) -> None:
        items = self._items()
        if isinstance(idx, str):
            idx = int(idx)
        del items[idx if isinstance(idx, slice) else self._index(idx)]
        self._reset(items)

    def __iter__(self) -> Iterator:
        return iter(self._items())

    def __reversed__(self) -> Iterator:
        return reversed(self._items())

    def __dir__(self) -> list:
        return sorted(set(object.__dir__(self)))

    def append(self, item: Any) -> _Indexed:
        """Add an item at the end."""
        cnn.Module.__setattr__(self, str(dict.__len__(self)), self._check_item(item))
        return self

    def extend(self, items: Iterable) -> _Indexed:
        """Add items at the end."""
        for item in items:
            self.append(item)
        return self

    def insert(self, index: int, item: Any) -> None:
        """Insert an item before ``index``."""
        items = self._items()
        items.insert(index, self._check_item(item))
        self._reset(items)

    def pop(self, index: int = -1) -> Any:
        """Remove and return the item at ``index``."""
        items = self._items()
        out = items.pop(self._index(index))
        self._reset(items)
        return out

    def __iadd__(self, items: Iterable) -> _Indexed:
        return self.extend(items)

    def __add__(self, other: Iterable) -> _Indexed:
        return type(self)([*self._items(), *other])


class Sequential(_Indexed):
    """Calls its modules in order (PyTorch): ``Sequential(m0, m1, ...)`` or
    ``Sequential(OrderedDict(name=module, ...))``; the modules are named ``"0"``, ``"1"``...
    (or by the given names), so the state names are ``0.weight`` as in PyTorch.

    Args:
        *args: the modules, or one ordered mapping of names to modules.
    """

    passes_tensors = True  # calls the user's modules with the caller's tensors (no door)

    passes_tensors = True  # calls the user's modules with the caller's tensors

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping) and not isinstance(args[0], cnn.Module):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(dict.items(self))[idx]))
        if isinstance(idx, int) and not isinstance(idx, bool):
            return list(dict.values(self))[self._index(idx)]
        return dict.__getitem__(self, idx)

    def __add__(self, other: Iterable) -> Sequential:
        return Sequential(*self, *other)

    def forward(self, x: Any) -> Any:
        """Feed ``x`` through the modules in order."""
        for module in dict.values(self):
            x = module(x)
        return x


class ModuleList(_Indexed):
    """A list of modules (PyTorch's ``nn.ModuleList``), named ``"0"``, ``"1"``...

    Args:
        modules: the initial modules.
    """

    def __init__(self, modules: Iterable[Any] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ModuleList is not callable: iterate over it and call each module")

    def __repr__(self) -> str:
        reprs = [repr(m) for m in self]
        if not reprs:
            return "ModuleList()"
        blocks: list = []  # [start, end, text]: runs of equal reprs print once (PyTorch)
        for i, text in enumerate(reprs):
            if blocks and blocks[-1][2] == text:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, text])
        lines = []
        for start, end, text in blocks:
            head = f"({start}): " if start == end else f"({start}-{end}): {end - start + 1} x "
            lines.append(_addindent(head + text, 2))
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of named modules (PyTorch's ``nn.ModuleDict``).

    Args:
        modules: the initial name-to-module mapping (or pairs).
    """

    def __init__(self, modules: Mapping[str, Any] | Iterable | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __setitem__(self, key: str, module: Any) -> None:
        self.add_module(key, module)

    def update(self, modules: Any, strict: bool = True) -> ModuleDict:
        """Add the modules of a mapping or of ``(name, module)`` pairs (PyTorch's meaning)."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self.add_module(key, module)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ModuleDict is not callable: index it by name and call the module")


class ParameterList(_Indexed):
    """A list of parameters (PyTorch's ``nn.ParameterList``), named ``"0"``, ``"1"``...

    Args:
        values: the initial arrays.
    """

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def _check_item(self, item: Any) -> Any:
        # PyTorch turns plain tensors into Parameters; parameters (leaves) are kept
        if isinstance(item, cnn.Module) or (isinstance(item, array) and item.requires_grad):
            return item
        return cnn.Parameter(item)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ParameterList is not callable")

    def extra_repr(self) -> str:
        """One line per parameter, as PyTorch prints them."""
        lines = []
        for i, p in enumerate(self):
            size = "x".join(str(s) for s in p.shape)
            lines.append(f"({i}): Parameter containing: [{_dtype_text(p)} of size {size}]")
        return "\n".join(lines)


class ParameterDict(Module):
    """A dict of named parameters (PyTorch's ``nn.ParameterDict``).

    Args:
        parameters: the initial name-to-array mapping (or pairs).
    """

    def __init__(self, parameters: Mapping[str, Any] | Iterable | None = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __setitem__(self, key: str, value: Any) -> None:
        if not (isinstance(value, array) and value.requires_grad):
            value = cnn.Parameter(value)
        self.register_parameter(key, value)

    def update(self, parameters: Any, strict: bool = True) -> ParameterDict:
        """Add the arrays of a mapping or of ``(name, array)`` pairs (PyTorch's meaning)."""
        pairs = parameters.items() if isinstance(parameters, Mapping) else parameters
        for key, value in pairs:
            self[key] = value
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("ParameterDict is not callable")

    def extra_repr(self) -> str:
        """One line per parameter, as PyTorch prints them."""
        lines = []
        for k, p in dict.items(self):
            size = "x".join(str(s) for s in p.shape)
            lines.append(f"({k}): Parameter containing: [{_dtype_text(p)} of size {size}]")
        return "\n".join(lines)


def _dtype_text(p: array) -> str:
    return f"torch.{p.dtype}".replace("mlx.core.", "").replace("chainrule.core.", "")
