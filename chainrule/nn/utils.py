"""Helpers for training modules: MLX's ``value_and_grad`` and PyTorch's gradient clipping."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from chainrule.core import lazy as _lazy
from chainrule.core.array import array
from chainrule.core.extend import from_value, value_and_grad_of_leaves

from .. import core as mx
from ..utils import tree_flatten
from .module import Module, _apply_update

__all__ = ["value_and_grad", "checkpoint", "clip_grad_norm_", "clip_grad_value_"]


def value_and_grad(model: Module, fn: Callable) -> Callable:
    """Differentiate ``fn`` with respect to ``model.trainable_parameters()`` (MLX).

    Args:
        model: the module whose trainable parameters to differentiate.
        fn: a function returning a scalar array (or a tuple whose first item is one); it reads
            the parameters through ``model``.

    Returns:
        A function with ``fn``'s arguments returning ``(value, grads)``, ``grads`` shaped like
        ``model.trainable_parameters()``. When it returns, the model holds its own arrays
        again, never the tracers used during the call.

    Examples:
        >>> import chainrule.core as mx
        >>> import chainrule.nn as nn
        >>> model = nn.Linear(2, 1)
        >>> model.weight, model.bias = mx.array([[1.0, -1.0]]), mx.array([0.0])
        >>> def loss_fn(model, x):
        ...     return model(x).sum()
        >>> loss, grads = nn.value_and_grad(model, loss_fn)(model, mx.array([[2.0, 3.0]]))
        >>> loss
        array(-1, dtype=float32)
        >>> grads["weight"], grads["bias"]
        (array([[2, 3]], dtype=float32), array([1], dtype=float32))
    """

    def inner_fn(params, *args, **kwargs):
        _apply_update(model, params)
        return fn(*args, **kwargs)

    value_grad_fn = mx.value_and_grad(inner_fn)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any):
        saved = model.trainable_parameters()
        # The common case: the parameters are requires_grad leaves, and their own nodes serve
        # as the targets of the backward pass (nothing is installed into the model).
        done = value_and_grad_of_leaves(fn, saved, args, kwargs, "nn.value_and_grad")
        if done is not None:
            return done
        # Otherwise tracers go into the model. The parameters are traced as they are: a leaf
        # behind a tracer is never reached (the pass stops at its targets), and an array an
        # outer transform is tracing keeps its graph, so ``grad`` of ``nn.value_and_grad``
        # still works.
        try:
            return value_grad_fn(saved, *args, **kwargs)
        finally:
            _apply_update(model, saved)

    return wrapped


def checkpoint(module: Module, fn: Callable | None = None) -> Callable:
    """MLX's gradient checkpointing wrapper.

    Recomputation is not implemented: the returned function computes exactly what ``fn`` (or
    the module) computes and its gradients are exact, but no memory is saved.

    Args:
        module: the module whose parameters ``fn`` uses.
        fn: the function to wrap (default: the module itself).

    Returns:
        A function with ``fn``'s signature.
    """
    target = module if fn is None else fn

    @functools.wraps(target)
    def wrapped(*args: Any, **kwargs: Any):
        return target(*args, **kwargs)

    return wrapped


def _grads_of(parameters: Any, who: str) -> list[array]:
    """The arrays of ``parameters`` (one array, an iterable, or an MLX tree) that have a grad."""
    if type(parameters) is array:
        items = [parameters]
    elif isinstance(parameters, (dict, list, tuple)):
        items = [v for _, v in tree_flatten(parameters)]
    elif isinstance(parameters, Iterable):
        items = []
        for p in parameters:
            if isinstance(p, dict) and "params" in p:  # a parameter group
                items.extend(v for _, v in tree_flatten(p["params"]))
            else:
                items.append(p)
    else:
        raise TypeError(
            f"{who}: parameters must be an array, an iterable of arrays or a tree of arrays, "
            f"not {type(parameters).__name__}"
        )
    out = []
    for p in items:
        if not isinstance(p, array):
            raise TypeError(f"{who}: expected arrays, found {type(p).__name__}")
        if p._grad is not None:
            out.append(p)
    return out


def clip_grad_norm_(
    parameters: Any,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> array:
    """Scale the gradients so that their joint norm is at most ``max_norm`` (PyTorch).

    ``.grad`` of each parameter is rebound to a new, scaled array (the old gradient array is
    never modified, so anyone still holding it keeps its value).

    Args:
        parameters: an array, an iterable of arrays (or parameter groups), or a tree such as
            ``model.parameters()``; arrays without a gradient are skipped.
        max_norm: the largest allowed norm.
        norm_type: the ``p`` of the p-norm (``float("inf")`` for the largest magnitude).
        error_if_nonfinite: raise if the total norm is NaN or infinite.
        foreach: accepted for PyTorch code.

    Returns:
        The total norm of the original gradients (a float32 scalar array).

    Raises:
        ValueError: for ``max_norm < 0`` or ``norm_type <= 0``.
        RuntimeError: for a non-finite norm when ``error_if_nonfinite`` is set.
    """
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if max_norm < 0 or math.isnan(max_norm):
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0, got {norm_type}")
    params = _grads_of(parameters, "clip_grad_norm_")
    if not params:
        return from_value(np.zeros((), np.float32))
    total = math.inf
    if norm_type == 2.0 and all(p._grad._data.dtype in (np.float32, np.float64) for p in params):
        # one BLAS dot a gradient in its own type: a tenth of the float64 copies' time; a sum
        # of squares that overflows float32 is taken again below
        total = math.sqrt(sum(float(np.vdot(p._grad._data, p._grad._data)) for p in params))
    if not math.isfinite(total):
        grads = [p._grad._data.astype(np.float64, copy=False) for p in params]
        if math.isinf(norm_type):
            total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
        else:
            total = float(sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads)) ** (
                1.0 / norm_type
            )
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef < 1.0:
        for p in params:
            g = p._grad._data
            p._grad = from_value(g * g.dtype.type(coef))
    return from_value(np.array(total, dtype=np.float32))


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clip every gradient element into ``[-clip_value, clip_value]`` (PyTorch).

    ``.grad`` is rebound to a new array; the old gradient array is left as it was.

    Args:
        parameters: an array, an iterable of arrays, or a tree such as ``model.parameters()``.
        clip_value: the largest allowed magnitude.
        foreach: accepted for PyTorch code.

    Raises:
        ValueError: for a negative ``clip_value``.
    """
    clip_value = float(clip_value)
    if clip_value < 0 or math.isnan(clip_value):
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for p in _grads_of(parameters, "clip_grad_value_"):
        g = p._grad._data
        p._grad = from_value(np.clip(g, -clip_value, clip_value).astype(g.dtype, copy=False))


# MLX's nn.utils.average_gradients lives in chainrule.distributed (a higher layer): imported on
# first use (chainrule/core/lazy.py).
_lazy.attach(__name__, globals(), listed=True)
