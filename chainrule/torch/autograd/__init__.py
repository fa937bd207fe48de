"""``torch.autograd`` names over chainrule's one engine: ``grad``, ``backward``, ``Function``
(user-written backward passes, ``function.py``), ``functional`` (``jacobian``, ``hessian``,
``vjp``, ``jvp``), the grad-mode switches and anomaly detection (``chainrule.core.anomaly``)."""

from __future__ import annotations

from collections.abc import Sequence

from chainrule.core import anomaly as _anomaly
from chainrule.core.array import array
from chainrule.core.autograd import backward_pass, enable_grad, no_grad, set_grad_enabled
from chainrule.core.extend import from_value, seed_cotangent

from .._tensor_class import tensors
from . import function, functional
from .checks import GradcheckError, gradcheck, gradgradcheck
from .function import Function, FunctionCtx, InplaceFunction, once_differentiable

__all__ = [
    "GradcheckError",
    "gradcheck",
    "gradgradcheck",
    "Function",
    "FunctionCtx",
    "InplaceFunction",
    "once_differentiable",
    "function",
    "functional",
    "grad",
    "backward",
    "Variable",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
]


def _as_list(x, what: str) -> list:
    if isinstance(x, array):
        return [x]
    if isinstance(x, (list, tuple)):
        return list(x)
    raise TypeError(f"torch.autograd.grad: {what} must be a tensor or a sequence of tensors")


def grad(
    outputs: array | Sequence[array],
    inputs: array | Sequence[array],
    grad_outputs: array | Sequence[array | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs`` (PyTorch's ``autograd.grad``).

    Nothing is written to ``.grad``. Graphs are values here, so ``retain_graph`` is accepted
    and never needed.

    Args:
        outputs: tensors to differentiate (scalars, or with ``grad_outputs``).
        inputs: tensors that require grad (leaves or intermediate results).
        grad_outputs: one cotangent per output (``None`` for a one-element output).
        retain_graph: accepted for PyTorch code.
        create_graph: record the pass, so the gradients can be differentiated again.
        allow_unused: return ``None`` for an input the outputs do not depend on, instead of
            raising.
        materialize_grads: return zeros instead of ``None`` for unused inputs.

    Returns:
        A tuple with one gradient per input.
    """
    outs = _as_list(outputs, "outputs")
    ins = _as_list(inputs, "inputs")
    if grad_outputs is None:
        gos = [None] * len(outs)
    else:
        gos = [grad_outputs] if isinstance(grad_outputs, array) else list(grad_outputs)
    if len(gos) != len(outs):
        raise ValueError(
            f"torch.autograd.grad: got {len(gos)} grad_outputs for {len(outs)} outputs"
        )
    for i, x in enumerate(ins):
        if x._node is None:
            raise RuntimeError(
                f"torch.autograd.grad: input {i} (shape {x.shape}) does not require grad; "
                "create it with requires_grad=True or call .requires_grad_()"
            )
    targets = {x._node for x in ins}
    # an input computed from another input passes its cotangent on (PyTorch sums both paths)
    through = len(targets) > 1 and any(x._node.prim is not None for x in ins)
    total: dict = {}
    for i, (o, go) in enumerate(zip(outs, gos)):
        if o._node is None:
            raise RuntimeError(
                f"torch.autograd.grad: output {i} (shape {o.shape}) does not require grad and "
                "has no grad_fn: it does not depend on any input that requires grad"
            )
        found = backward_pass(
            o._node, seed_cotangent(o, go, "torch.autograd.grad"), targets, create_graph, through
        )
        for key, (_, g) in found.items():
            total[key] = g if key not in total else total[key] + g
    result = []
    for i, x in enumerate(ins):
        g = total.get(id(x._node))
        if g is None:
            if materialize_grads:
                from chainrule.core import ops

                g = ops.zeros_like(x)
            elif not (allow_unused or materialize_grads):
                raise RuntimeError(
                    f"torch.autograd.grad: input {i} (shape {x.shape}) was not used to compute "
                    "the outputs; pass allow_unused=True to get None for it"
                )
        result.append(g)
    return tensors(tuple(result))


def backward(
    tensors: array | Sequence[array],
    grad_tensors: array | Sequence[array | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    grad_variables: None = None,
    inputs: array | Sequence[array] | None = None,
) -> None:
    """``torch.autograd.backward``: ``t.backward(g)`` for each tensor, summing into ``.grad``
    (of ``inputs`` only, when given)."""
    ts = _as_list(tensors, "tensors")
    gs = [None] * len(ts) if grad_tensors is None else _as_list(grad_tensors, "grad_tensors")
    for t, g in zip(ts, gs):
        t.backward(g, create_graph=create_graph, inputs=inputs)


def Variable(data: array, requires_grad: bool = False, volatile: bool = False) -> array:  # noqa: N802
    """PyTorch's legacy ``Variable(tensor, requires_grad=...)``: a new tensor on the same
    values (a leaf requiring grad when asked)."""
    if not isinstance(data, array):
        raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
    out = tensors(from_value(data._data))
    if requires_grad:
        out.requires_grad_()
    return out


def detect_anomaly(check_nan: bool = True):
    """Report the first operation making a NaN or infinity (``mx.detect_anomaly``).

    Args:
        check_nan: accepted for PyTorch code (the check is always on).

    Returns:
        A context manager (also usable as a decorator).
    """
    return _anomaly.detect_anomaly()


def set_detect_anomaly(mode: bool, check_nan: bool = True) -> None:
    """Switch anomaly detection on or off for the whole process."""
    _anomaly.set_detect_anomaly(mode)


is_anomaly_enabled = _anomaly.is_anomaly_enabled
