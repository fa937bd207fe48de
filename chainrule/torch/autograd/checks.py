"""``torch.autograd.gradcheck`` and ``gradgradcheck``: analytical Jacobians (one backward pass
per output element, through the engine) against central finite differences.

As PyTorch: inputs should be float64 tensors (float32 warns, and its rounding usually fails the
check); a mismatch raises ``GradcheckError`` (a ``RuntimeError``) showing both Jacobians, or
returns ``False`` with ``raise_exception=False``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.core import backend
from chainrule.core.extend import array, from_value

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(RuntimeError):
    """An analytical gradient differs from its finite-difference estimate."""


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(func: Callable, inputs: tuple) -> list:
    return [o for o in _as_tuple(func(*inputs)) if isinstance(o, array)]


def _like(value: np.ndarray, x: array) -> array:
    """Host ``value`` as a constant of ``x``'s class (a ``Tensor`` stays a ``Tensor``) on ``x``'s
    device."""
    out = from_value(backend.same_device(value, x._data))
    if type(x) is not array:
        out.__class__ = type(x)
    return out


def _host64(t: array) -> np.ndarray:
    """``t``'s values as a flat float64 host array (an explicit copy from the GPU)."""
    return np.asarray(backend.to_host(t._data), np.float64).ravel()


def _numerical(func: Callable, inputs: tuple, i: int, eps: float) -> list:
    """One ``(out.size, inputs[i].size)`` matrix per output, by central differences."""
    x = inputs[i]
    base = backend.to_host(x._data)  # the perturbations are made on the host, then moved
    cols: list[list] = []
    for j in range(base.size):
        vals = []
        for step in (eps, -eps):
            pert = base.copy()
            pert.flat[j] += step
            args = list(inputs)
            args[i] = _like(pert, x)
            if x.requires_grad:
                args[i].requires_grad_()
            vals.append([_host64(o) for o in _outputs(func, args)])
        cols.append([(a - b) / (2 * eps) for a, b in zip(*vals)])
    n_out = len(cols[0]) if cols else 0
    return [np.stack([c[k] for c in cols], axis=1) for k in range(n_out)]


def _analytical(func: Callable, inputs: tuple, i: int) -> list:
    from . import grad

    outs = _outputs(func, inputs)
    mats = []
    for o in outs:
        rows = []
        for e in range(o._data.size):
            onehot = np.zeros(o._data.size, dtype=o._data.dtype)
            onehot[e] = 1
            if o._node is None:
                rows.append(np.zeros(inputs[i]._data.size))
                continue
            (g,) = grad(
                o,
                inputs[i],
                from_value(backend.same_device(onehot.reshape(o._data.shape), o._data)),
                allow_unused=True,
                materialize_grads=True,
            )
            rows.append(_host64(g))
        mats.append(np.stack(rows) if rows else np.zeros((0, inputs[i]._data.size)))
    return mats


def gradcheck(
    func: Callable,
    inputs: array | Sequence[array],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    **kwargs: Any,
) -> bool:
    """Check ``func``'s gradients with respect to the inputs that require grad.

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        inputs: a tensor or a tuple of them (those requiring grad are checked).
        eps: the finite-difference step.
        atol: absolute tolerance.
        rtol: relative tolerance.
        raise_exception: raise ``GradcheckError`` on a mismatch (else return ``False``).
        **kwargs: PyTorch's other options, accepted.

    Returns:
        ``True`` when every Jacobian matches.
    """
    ins = _as_tuple(inputs)
    checked = [i for i, x in enumerate(ins) if isinstance(x, array) and x.requires_grad]
    if not checked:
        raise ValueError(
            "gradcheck expects at least one input tensor to require gradient, but none of the "
            "them have requires_grad=True."
        )
    for i in checked:
        if ins[i]._data.dtype != np.float64:
            warnings.warn(
                f"Input #{i} requires gradient and is not a double precision floating point. "
                "This check will likely fail if all the inputs are not of double precision "
                "floating point.",
                UserWarning,
                stacklevel=2,
            )
    for i in checked:
        num = _numerical(func, ins, i, eps)
        ana = _analytical(func, ins, i)
        for k, (n, a) in enumerate(zip(num, ana)):
            if not np.allclose(a, n.reshape(a.shape), rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {k} with respect to input {i},\n"
                    f"numerical:{n.T}\nanalytical:{a.T}\n"
                )
    return True


def gradgradcheck(
    func: Callable,
    inputs: array | Sequence[array],
    grad_outputs: array | Sequence[array] | None = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    **kwargs: Any,
) -> bool:
    """Check second derivatives: ``gradcheck`` of the VJP of ``func`` (with random
    ``grad_outputs`` unless given, which are differentiated too)."""
    from . import grad

    ins = _as_tuple(inputs)
    outs = _outputs(func, ins)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        gos = tuple(
            _like(rng.standard_normal(o._data.shape).astype(o._data.dtype), o).requires_grad_()
            for o in outs
        )
    else:
        gos = _as_tuple(grad_outputs)
    n_in = len(ins)
    diff = [i for i, x in enumerate(ins) if isinstance(x, array) and x.requires_grad]

    def vjp_fn(*args: Any) -> tuple:
        xs, cs = args[:n_in], args[n_in:]
        os = _outputs(func, xs)
        gs = grad(
            [o for o in os if o._node is not None],
            [xs[i] for i in diff],
            [c for o, c in zip(os, cs) if o._node is not None],
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
        return tuple(gs)

    return gradcheck(
        vjp_fn,
        ins + tuple(gos),
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
    )
