"""``register_full_backward_hook``: identity steps around a hooked module's call.

Each differentiable array input and each array output of the call passes through an
identity ``custom_function``. The backward pass reaches the outputs' identities first, which
note ``grad_output``; then the inputs' identities, whose cotangents are ``grad_input``: the
hooks run there (``hook(module, grad_input, grad_output)``) and a tuple they return replaces
``grad_input``. When no input is differentiable the hooks run at the outputs with
``grad_input`` all ``None``, as PyTorch does. Only modules that have a backward hook pay for it.
"""

from __future__ import annotations

import warnings
from typing import Any

from chainrule.core.array import array
from chainrule.core.custom import custom_function

__all__ = ["wrap_inputs", "wrap_outputs"]


def _differentiable(x: Any) -> bool:
    return isinstance(x, array) and x._node is not None


def _identity(on_cotangent) -> Any:
    @custom_function
    def ident(x: array) -> array:
        return x

    @ident.vjp
    def _vjp(primals: Any, cotangent: Any, output: Any) -> Any:
        return on_cotangent(cotangent)

    return ident


def _run_hooks(module: Any, grad_input: tuple, grad_output: tuple) -> tuple | None:
    replaced = None
    for hook in list(module.__dict__.get("_backward_hooks", {}).values()):
        res = hook(module, grad_input if replaced is None else replaced, grad_output)
        if res is not None:
            res = tuple(res) if isinstance(res, (tuple, list)) else (res,)
            if len(res) != len(grad_input):
                raise RuntimeError(
                    f"backward hook returned {len(res)} gradients, expected {len(grad_input)}"
                )
            replaced = res
    return replaced


def wrap_inputs(module: Any, args: tuple) -> tuple[tuple, dict]:
    """Pass the differentiable inputs through identities whose VJPs collect ``grad_input``."""
    state: dict = {"module": module, "n_args": len(args), "grad_output": None}
    positions = [i for i, a in enumerate(args) if _differentiable(a)]
    state["positions"] = positions
    if not positions:
        return args, state
    grads: dict = {}
    state["grads"] = grads

    def collector(i: int):
        def on_cotangent(g: array) -> array:
            grads[i] = g
            if len(grads) < len(positions):
                return g
            grad_input = tuple(grads.get(j) for j in range(len(args)))
            grads.clear()
            grad_output = state["grad_output"] or ()
            replaced = _run_hooks(module, grad_input, grad_output)
            return g if replaced is None else replaced[i]

        return on_cotangent

    new = list(args)
    for i in positions:
        new[i] = _identity(collector(i))(args[i])
    return tuple(new), state


_NO_INPUT_GRAD = (
    "Full backward hook is firing when gradients are computed with respect to module outputs "
    "since no inputs require gradients. See https://docs.pytorch.org/docs/main/generated/"
    "torch.nn.Module.html#torch.nn.Module.register_full_backward_hook for more details."
)


def wrap_outputs(module: Any, out: Any, state: dict) -> Any:
    """Pass the array outputs through identities whose VJPs note ``grad_output``."""
    single = not isinstance(out, tuple)
    outs = (out,) if single else out
    which = [i for i, o in enumerate(outs) if _differentiable(o)]
    if not which:
        return out
    got: dict = {}

    def noter(i: int):
        def on_cotangent(g: array) -> array:
            got[i] = g
            if len(got) < len(which):
                return g
            grad_output = tuple(got.get(j) for j in range(len(outs)))
            got.clear()
            for hook in list(module.__dict__.get("_backward_pre_hooks", {}).values()):
                res = hook(module, grad_output)
                if res is not None:
                    grad_output = tuple(res) if isinstance(res, (tuple, list)) else (res,)
            state["grad_output"] = grad_output
            if not state["positions"] and module.__dict__.get("_backward_hooks"):
                warnings.warn(_NO_INPUT_GRAD, stacklevel=2)
                _run_hooks(module, (None,) * state["n_args"], grad_output)
            return grad_output[i]

        return on_cotangent

    new = list(outs)
    for i in which:
        new[i] = _identity(noter(i))(outs[i])
    return new[0] if single else tuple(new)
