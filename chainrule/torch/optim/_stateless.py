"""``torch.optim.swap_in_optimizer_params_and_state``: step other parameters and state.

Inside the context the optimizer's groups hold the given parameters and hyper-parameters and
its state is the given ``state_dict()``-shaped state; on exit both are restored. PyTorch edits
the given state tensors in place; chainrule's arrays are values, so the new state values are
written back into the given state dict's per-parameter dicts on exit (the parameters, being
handles, are updated as ``step()`` always updates them).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from chainrule.optimizers import Optimizer
from chainrule.optimizers.base import _cast_state, _step_tensor

__all__ = ["swap_in_optimizer_params_and_state"]


def _fail(reason: str) -> RuntimeError:
    return RuntimeError(f"swap_in_optimizer_params_and_state requires {reason}.")


@contextlib.contextmanager
def swap_in_optimizer_params_and_state(
    optimizer: Optimizer, swapin_parameters: dict[str, Any], swapin_optim_state: dict[str, Any]
) -> Iterator[None]:
    """Run the body with ``optimizer`` stepping ``swapin_parameters`` from the given state.

    Args:
        optimizer: A PyTorch-style optimizer whose state is already initialised.
        swapin_parameters: Tensors in the order of the optimizer's parameters (usually
            ``model.named_parameters()`` order).
        swapin_optim_state: An ``optimizer.state_dict()``-shaped dict.

    Raises:
        RuntimeError: For an optimizer without state, or a state dict that does not match
            its groups (PyTorch's errors).
    """
    if not optimizer.state:
        raise _fail("initialized optimizer state")
    if not isinstance(swapin_optim_state, dict):
        raise _fail("a DCP-style optimizer state_dict")
    state = swapin_optim_state.get("state")
    groups = swapin_optim_state.get("param_groups")
    if not isinstance(state, dict):
        raise _fail("a 'state' dict")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise _fail("one saved param group per optimizer param group")
    flat = list(swapin_parameters.values())
    offset = 0
    plan = []
    for live, saved in zip(optimizer.param_groups, groups):
        ids = saved.get("params") if isinstance(saved, dict) else None
        if not isinstance(ids, list) or len(ids) != len(live["params"]):
            raise _fail("each saved param group to list as many params as the live one")
        params = flat[offset : offset + len(ids)]
        if len(params) != len(ids):
            raise _fail("the explicit parameter state to match optimizer.param_groups ordering")
        offset += len(ids)
        plan.append((live, saved, params, ids))
    snapshots = [dict(g) for g in optimizer.param_groups]
    original = optimizer.state
    swapped: defaultdict = defaultdict(dict)
    links = []
    try:
        for live, saved, params, ids in plan:
            live["params"] = params
            live.update({k: v for k, v in saved.items() if k != "params"})
            for p, i in zip(params, ids):
                entry = state.get(i, {})
                swapped[p] = {k: _cast_state(k, v, p) for k, v in entry.items()}
                links.append((p, entry))
        optimizer.state = swapped
        yield
    finally:
        for group, snapshot in zip(optimizer.param_groups, snapshots):
            group.clear()
            group.update(snapshot)
        current = optimizer.state
        optimizer.state = original
        for p, entry in links:  # PyTorch's in-place state updates, as values
            if isinstance(entry, dict):
                for k, v in current.get(p, {}).items():
                    if k in entry:
                        entry[k] = _step_tensor(v, p) if k == "step" else v
