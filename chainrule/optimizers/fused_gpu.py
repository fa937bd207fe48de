"""Optimizer updates on the GPU as fused kernels (issue 22).

``GpuBackend.fuse`` is ``cupy.fuse`` on CuPy (one kernel for a function of arithmetic and the
namespace's ufuncs) and the function itself on the strict stand-in (the same arithmetic, one
ufunc call at a time, which the tests compare with the CPU's unfused update).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from chainrule.core import backend as _backend
from chainrule.core.array import array
from chainrule.core.backend import xp
from chainrule.core.extend import from_value

__all__ = ["fused_adam_step", "fused_sgd_momentum_step"]


def fused_adam_step(
    opt: Any, g: Any, w: Any, state: dict, lr: Any, b1: float, b2: float
) -> array | None:
    """Adam's step of one GPU parameter as one fused kernel (``cupy.fuse``), with the unfused
    update's operations in its order.

    Args:
        opt: the ``Adam``/``AdamW`` optimizer (its hyperparameters and step count).
        g: the gradient (backend data, after weight decay and ``maximize``).
        w: the parameter (backend data, after decoupled weight decay).
        state: the parameter's state (``m`` and ``v`` on the GPU).
        lr: the learning rate (a float, or a 0-d array).
        b1: the first moment's coefficient.
        b2: the second moment's coefficient.

    Returns:
        The new parameter; ``None`` where the fused kernel does not apply (host data, mixed
        dtypes) or failed once (a warning; the unfused update is used from then on).
    """
    k, hp = opt._k, opt._group
    fused = _fused_adam(w)
    m, v = state[k["m"]]._data, state[k["v"]]._data
    if fused is None or not (g.dtype == w.dtype == m.dtype == v.dtype) or g.shape != w.shape:
        return None
    if w.dtype.kind != "f":  # bfloat16 (NumPy kind "V"): the unfused update keeps its state
        return None
    # Python floats (as PyTorch's own Adam computes its bias corrections): a 0-d float64
    # array would make the kernel compute in float64
    c2 = 1.0
    if opt._torch or hp["bias_correction"]:
        t = float(opt._count(state))
        c2 = math.sqrt(1 - b2**t)
        lr = lr / (1 - b1**t)
    if isinstance(lr, (xp.ndarray, xp.generic)):
        lr = float(lr)
    elif hasattr(lr, "dtype"):  # a 0-d GPU array (no copy to the host): of w's dtype
        lr = lr.astype(w.dtype)
    try:
        w_new, m_new, v_new = fused(w, g, m, v, b1, 1 - b1, b2, 1 - b2, lr, hp["eps"], c2)
    except Exception as e:  # a kernel the GPU library could not build: unfused from now on
        _FUSED[_backend.GPU[0].name] = False
        warnings.warn(
            f"Adam: the fused GPU update failed ({type(e).__name__}: {e}); the unfused "
            "update (a dozen kernels a parameter) is used instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    dt = w.dtype  # (a kernel that widened a Python float to float64 keeps w's dtype)
    state[k["m"]] = from_value(_as_dtype(m_new, dt))
    state[k["v"]] = from_value(_as_dtype(v_new, dt))
    return from_value(_as_dtype(w_new, dt))


def _as_dtype(a: Any, dt: Any) -> Any:
    """``a`` in dtype ``dt`` (a no-op when it is)."""
    return a if a.dtype == dt else a.astype(dt)


_FUSED: dict = {}
"""The fused Adam step of each GPU backend (``False`` once it failed)."""


def _fused_adam(w: Any) -> Any:
    """The fused Adam step for GPU array ``w`` (built once per backend), else ``None``."""
    gb = _backend.GPU[0]
    if gb is None or gb.fuse is None or not isinstance(w, gb.ndarray):
        return None
    fused = _FUSED.get(gb.name)
    if fused is None:
        sqrt = gb.xp.sqrt

        def adam_step(w, g, m, v, b1, c1, b2, c2_, lr, eps, c2):
            # the unfused update's steps, in its order: m b1 + g (1 - b1), v b2 + g g (1 - b2),
            # w - m / (sqrt(v) / sqrt(1 - b2^t) + eps) * lr
            m = m * b1 + g * c1
            v = v * b2 + g * g * c2_
            return w - m / (sqrt(v) / c2 + eps) * lr, m, v

        fused = _FUSED[gb.name] = gb.fuse(adam_step)
    return fused or None


def fused_sgd_momentum_step(g: Any, w: Any, v: Any, lr: Any, hp: dict) -> tuple | None:
    """SGD with momentum on one GPU parameter as one fused kernel: ``v mu + g (1 - dampening)``,
    then ``w - lr (g + mu v)`` (Nesterov) or ``w - lr v``, the unfused update's arithmetic in
    its order.

    Args:
        g: the gradient (backend data, after weight decay and ``maximize``).
        w: the parameter (backend data).
        v: the momentum buffer (backend data, on the GPU).
        lr: the learning rate (a float, or a 0-d array).
        hp: the optimizer's hyperparameters (``momentum``, ``dampening``, ``nesterov``).

    Returns:
        ``(new parameter, new momentum)`` (backend data); ``None`` where the fused kernel does
        not apply (host data, mixed dtypes, non-float types) or failed once (a warning; the
        unfused update is used from then on).
    """
    gb = _backend.GPU[0]
    if gb is None or gb.fuse is None or not isinstance(w, gb.ndarray):
        return None
    if not (g.dtype == w.dtype == v.dtype) or g.shape != w.shape or w.dtype.kind != "f":
        return None
    key = (gb.name, "sgd", bool(hp["nesterov"]))
    fused = _FUSED.get(key)
    if fused is None:
        nesterov = bool(hp["nesterov"])

        def sgd_momentum_step(w, g, v, mu, keep, lr):
            v = v * mu + g * keep
            return w - ((g + mu * v) if nesterov else v) * lr, v

        sgd_momentum_step.__name__ = "sgd_nesterov_step" if nesterov else "sgd_momentum_step"
        fused = _FUSED[key] = gb.fuse(sgd_momentum_step)
    if fused is False:
        return None
    if isinstance(lr, (xp.ndarray, xp.generic)):
        lr = float(lr)
    elif hasattr(lr, "dtype"):  # a 0-d GPU array (no copy to the host): of w's dtype
        lr = lr.astype(w.dtype)
    try:
        w_new, v_new = fused(w, g, v, float(hp["momentum"]), 1.0 - float(hp["dampening"]), lr)
        return _as_dtype(w_new, w.dtype), _as_dtype(v_new, w.dtype)
    except Exception as e:  # a kernel the GPU library could not build: unfused from now on
        _FUSED[key] = False
        warnings.warn(
            f"SGD: the fused GPU update failed ({type(e).__name__}: {e}); the unfused update "
            "is used instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
