"""DataPipe decorators: ``functional_datapipe``, determinism and type validation switches."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from .datapipe import IterDataPipe, MapDataPipe

__all__ = [
    "argument_validation",
    "functional_datapipe",
    "guaranteed_datapipes_determinism",
    "non_deterministic",
    "runtime_validation",
    "runtime_validation_disabled",
]

_STATE = {"determinism": False, "runtime_validation": True}


class functional_datapipe:
    """Register a DataPipe class under a functional name: ``@functional_datapipe("map")``.

    Args:
        name: the method name on DataPipes of the class's family.
        enable_df_api_tracing: accepted for PyTorch code.
    """

    def __init__(self, name: str, enable_df_api_tracing: bool = False) -> None:
        self.name = name
        self.enable_df_api_tracing = enable_df_api_tracing

    def __call__(self, cls: type) -> type:
        if isinstance(cls, type) and issubclass(cls, IterDataPipe):
            IterDataPipe.register_datapipe_as_function(self.name, cls)
        elif isinstance(cls, type) and issubclass(cls, MapDataPipe):
            MapDataPipe.register_datapipe_as_function(self.name, cls)
        else:
            raise TypeError(
                f"functional_datapipe: {cls!r} is not an IterDataPipe or MapDataPipe subclass"
            )
        return cls


class guaranteed_datapipes_determinism:
    """Within this context, making a non-deterministic DataPipe raises ``TypeError``."""

    def __init__(self) -> None:
        self.prev = _STATE["determinism"]

    def __enter__(self) -> None:
        _STATE["determinism"] = True

    def __exit__(self, *exc: Any) -> None:
        _STATE["determinism"] = self.prev


def non_deterministic(arg: Any) -> Any:
    """Mark a DataPipe class as non-deterministic (always, or when ``arg(*args)`` is true).

    Args:
        arg: the class, or a function of the constructor's arguments returning whether the
            instance will be non-deterministic (then use as ``@non_deterministic(fn)``).

    Returns:
        The class (or a decorator for it).
    """

    def wrap(cls: type, test: Callable[..., bool] | None) -> type:
        original_new = cls.__new__

        def __new__(klass, *args: Any, **kwargs: Any):
            nondet = True if test is None else bool(test(*args, **kwargs))
            if nondet and _STATE["determinism"]:
                raise TypeError(
                    f"{cls.__name__} is non-deterministic, but you set "
                    "'guaranteed_datapipes_determinism'. You can turn off determinism for this "
                    "DataPipe if that is acceptable for your application"
                )
            if original_new is object.__new__:
                return object.__new__(klass)
            return original_new(klass, *args, **kwargs)

        cls.__new__ = __new__
        return cls

    if isinstance(arg, type):
        if not issubclass(arg, IterDataPipe):
            raise TypeError(f"non_deterministic: only IterDataPipe classes, got {arg.__name__}")
        return wrap(arg, None)
    if not callable(arg):
        raise TypeError(f"non_deterministic: expected a class or a callable, got {arg!r}")
    return lambda cls: wrap(cls, arg)


class runtime_validation_disabled:
    """Within this context, ``runtime_validation`` checks nothing."""

    def __init__(self) -> None:
        self.prev = _STATE["runtime_validation"]

    def __enter__(self) -> None:
        _STATE["runtime_validation"] = False

    def __exit__(self, *exc: Any) -> None:
        _STATE["runtime_validation"] = self.prev


def _item_type(dp: Any) -> Any:
    for base in getattr(type(dp), "__orig_bases__", ()):
        if typing.get_origin(base) in (IterDataPipe, MapDataPipe):
            (t,) = typing.get_args(base)
            return t
    return Any


def _matches(item: Any, t: Any) -> bool:
    if t is Any or isinstance(t, typing.TypeVar):
        return True
    origin = typing.get_origin(t)
    if origin is typing.Union:
        return any(_matches(item, a) for a in typing.get_args(t))
    if origin is not None:
        return isinstance(item, origin)
    return isinstance(item, t) if isinstance(t, type) else True


def runtime_validation(f: Callable) -> Callable:
    """Check that what an ``__iter__`` yields has the DataPipe's declared item type.

    The type is the argument of the class's base (``class P(IterDataPipe[int])``).

    Raises:
        TypeError: when decorating anything but ``__iter__``, or for an item of another type.
    """
    if f.__name__ != "__iter__":
        raise TypeError(f"Can not decorate function {f.__name__} with 'runtime_validation'")

    @functools.wraps(f)
    def wrapper(self: Any):
        t = _item_type(self)
        for item in f(self):
            if _STATE["runtime_validation"] and not _matches(item, t):
                raise RuntimeError(
                    f"Expected an instance as subtype of {t}, but found {item}({type(item)})"
                )
            yield item

    return wrapper


def argument_validation(f: Callable) -> Callable:
    """Check that arguments annotated as DataPipes receive DataPipes of that family.

    Raises:
        TypeError: for an argument that is not an instance of its annotated DataPipe class.
    """
    signature = inspect.signature(f)
    try:
        hints = typing.get_type_hints(f) if f.__annotations__ else {}
    except (NameError, TypeError):  # annotations naming local objects: use those that resolve
        hints = {k: v for k, v in f.__annotations__.items() if not isinstance(v, str)}

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            hint = hints.get(name)
            base = typing.get_origin(hint) or hint
            if isinstance(base, type) and issubclass(base, (IterDataPipe, MapDataPipe)):
                if not isinstance(value, base):
                    raise TypeError(
                        f"Expected argument '{name}' as a {base.__name__}, but found {type(value)}"
                    )
        return f(*args, **kwargs)

    return wrapper
