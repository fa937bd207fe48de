"""``torch.nn.utils``: gradient clipping (chainrule.nn's own), parameters as one vector and
``skip_init``, with PyTorch's signatures."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core.array import array
from chainrule.nn.utils import clip_grad_norm_, clip_grad_value_

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "parameters_to_vector",
    "skip_init",
    "vector_to_parameters",
]


def _as_list(parameters: Any) -> list:
    if isinstance(parameters, array):
        return [parameters]
    return list(parameters)


def parameters_to_vector(parameters: Iterable[array]) -> array:
    """The parameters flattened and concatenated into one vector (differentiable).

    Args:
        parameters: arrays (``model.parameters()``).

    Returns:
        A 1-d array of their sizes' sum.
    """
    params = _as_list(parameters)
    for p in params:
        if not isinstance(p, array):
            raise TypeError(f"expected torch.Tensor, but got: {type(p).__name__}")
    return mx.concatenate([mx.reshape(p, (-1,)) for p in params])


def vector_to_parameters(vec: array, parameters: Iterable[array]) -> None:
    """Write consecutive slices of ``vec`` into the parameters, in place (the handles keep
    their identity, so optimizers stay bound).

    Args:
        vec: a 1-d array.
        parameters: the arrays to overwrite (``model.parameters()``).

    Raises:
        TypeError: ``vec`` is not an array.
        RuntimeError: ``vec`` is too short for the parameters.
    """
    if not isinstance(vec, array):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    data = vec._data.reshape(-1)  # slices stay on vec's device, as PyTorch's ``param.data =``
    start = 0
    for p in _as_list(parameters):
        n = int(np.prod(p.shape))
        if start + n > data.size:
            raise RuntimeError(
                f"shape '{list(p.shape)}' is invalid for input of size {data.size - start}"
            )
        p._set_value(data[start : start + n].reshape(p.shape).astype(p._data.dtype))
        start += n


def skip_init(module_cls: type, *args: Any, **kwargs: Any) -> Any:
    """Build ``module_cls(*args, **kwargs)`` (PyTorch skips the initialisation by building on
    the meta device; here the module is built and initialised as usual)."""
    kwargs.pop("device", None)
    return module_cls(*args, **kwargs)


from . import rnn  # noqa: E402  (torch.nn.utils.rnn)
