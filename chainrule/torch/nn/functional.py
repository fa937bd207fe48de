"""``torch.nn.functional`` (imported as ``F``): PyTorch's signatures, defaults and layouts.

The functions live by domain in helper modules and are gathered here: activations
(``functional_act``), losses and distances (``functional_loss``), pooling
(``functional_pool``), padding, resizing and grids (``functional_resample``), and
convolutions, normalisation, embeddings, dropout and attention (``functional_misc``). Each is
a composite of chainrule operations, so it differentiates to any order. Convolutions and
pooling take channels-first inputs and PyTorch's weight layout ``(C_out, C_in // groups, *k)``.
"""

from __future__ import annotations

import dataclasses  # noqa: F401 (PyTorch's module namespace has it)
import importlib  # noqa: F401
import math
import sys
import warnings  # noqa: F401
from typing import TYPE_CHECKING, Any, Callable, Optional  # noqa: F401, UP035

import numpy as np  # noqa: F401

from chainrule.core.array import array as Tensor

from . import (
    functional_act,
    functional_attention,
    functional_loss,
    functional_misc,
    functional_pool,
    functional_resample,
    grad,
)
from .functional_act import *  # noqa: F403
from .functional_attention import *  # noqa: F403
from .functional_loss import *  # noqa: F403
from .functional_misc import *  # noqa: F403
from .functional_pool import *  # noqa: F403
from .functional_resample import *  # noqa: F403

GRID_SAMPLE_INTERPOLATION_MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
GRID_SAMPLE_PADDING_MODES = {"zeros": 0, "border": 1, "reflection": 2}

__all__ = sorted(
    set(functional_act.__all__)
    | set(functional_attention.__all__)
    | set(functional_loss.__all__)
    | set(functional_misc.__all__)
    | set(functional_pool.__all__)
    | set(functional_resample.__all__)
)

torch = sys.modules["chainrule.torch"]
_ = (math, Tensor, grad)


# -- the rest of PyTorch's module namespace ----------------------------------------------------

BroadcastingList1 = BroadcastingList2 = BroadcastingList3 = list
DType = int
reproducibility_notes = {"forward_reproducibility_note": "chainrule is deterministic on CPU."}
sparse_support_notes = {"sparse_beta_warning": "chainrule has no sparse layouts."}
tf32_notes = {"tf32_note": "chainrule computes in the given dtype."}


def has_torch_function(relevant_args: Any) -> bool:
    """Always false: chainrule arrays do not override ``__torch_function__``."""
    return False


has_torch_function_unary = has_torch_function_variadic = has_torch_function


def handle_torch_function(
    public_api: Callable, relevant_args: Any, *args: Any, **kwargs: Any
) -> Any:
    """Call ``public_api`` (no ``__torch_function__`` overrides exist in chainrule)."""
    return public_api(*args, **kwargs)


def boolean_dispatch(
    arg_name: str,
    arg_index: int,
    default: bool,
    if_true: Callable,
    if_false: Callable,
    module_name: str | None,
    func_name: str | None,
) -> Callable:
    """A function calling ``if_true`` or ``if_false`` by the boolean argument ``arg_name``."""

    def fn(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get(arg_name, args[arg_index] if len(args) > arg_index else default)
        return if_true(*args, **kwargs) if flag else if_false(*args, **kwargs)

    fn.__name__ = func_name or if_false.__name__
    return fn


def assert_int_or_pair(arg: Any, arg_name: str, message: str) -> None:
    """Check that ``arg`` is an int or a pair (PyTorch's helper)."""
    assert isinstance(arg, int) or len(arg) == 2, message.format(arg_name)
