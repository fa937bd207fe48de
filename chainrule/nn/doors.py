"""The doors of chainrule's own layers (``Module.__init_subclass__`` installs one on every layer
class defined under ``chainrule.``): a layer's code is written with MLX's meanings, so a
``chainrule.torch.Tensor`` argument reaches it as a plain handle (``subclass_door``), or, for a
layer marked ``takes_tensors`` whose call reads only its input's slots, as it is
(``light_door``); either way the results get the caller's class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chainrule.core.array import array
from chainrule.core.extend import STATE, from_value
from chainrule.core.versions import replaced


def subclass_door(call: Callable) -> Callable:
    """A layer's ``__call__`` that hands its code plain arrays and gives its results the class
    of the array subclass it was called with (``chainrule.torch.Tensor``, whose methods have
    PyTorch's meanings; layers are written with MLX's). Plain arrays pass at the cost of one
    type test per positional argument. Containers that call the user's modules set
    ``passes_tensors = True`` and get no door (the user's ``forward`` sees tensors)."""

    def door(self, *args: Any, **kwargs: Any) -> Any:
        for a in args:
            if type(a) is not array and isinstance(a, array):
                break
        else:
            return call(self, *args, **kwargs)
        state = STATE
        if state.doors:
            return call(self, *args, **kwargs)
        cls = type(a)
        keep: list = []  # (plain handle, the caller's tensor)

        def plain(x: Any) -> Any:
            if type(x) is not cls:
                return x
            p = from_value(x._data, x._node)
            keep.append((p, x))
            return p

        args = tuple([plain(x) for x in args])
        if kwargs:
            kwargs = {k: plain(v) for k, v in kwargs.items()}
        state.doors = 1
        try:
            out = call(self, *args, **kwargs)
        finally:
            state.doors = 0
        for p, orig in keep:  # an in-place layer (ReLU(inplace=True)) rebound its input
            if p._data is not orig._data or p._node is not orig._node:
                replaced(orig, orig._node, p._node)
                orig._set_value(p._data, p._node)
        return _with_class(out, cls)

    door.__wrapped_call__ = call
    door.__name__, door.__qualname__, door.__doc__ = call.__name__, call.__qualname__, call.__doc__
    return door


def light_door(call: Callable) -> Callable:
    """The door of a layer marked ``takes_tensors``: its ``__call__`` reads only its inputs'
    slots and passes them only to core functions that do (``Linear``, ``RMSNorm``), so it runs
    on the caller's tensors as they are and only its fresh results get their class."""

    def door(self, *args: Any, **kwargs: Any) -> Any:
        out = call(self, *args, **kwargs)
        if STATE.doors:
            return out
        for a in args:
            if type(a) is not array and isinstance(a, array):
                return _with_class(out, type(a))
        return out

    door.__wrapped_call__ = call
    door.__name__, door.__qualname__, door.__doc__ = call.__name__, call.__qualname__, call.__doc__
    return door


def _with_class(r: Any, cls: type) -> Any:
    """``r`` with its fresh arrays (also in tuples and lists) given class ``cls``."""
    t = type(r)
    if t is array:
        r.__class__ = cls
        return r
    if t is tuple or t is list:
        return t(_with_class(v, cls) for v in r)
    return r
