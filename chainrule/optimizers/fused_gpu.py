"""Optimizer updates on the GPU as fused kernels (issue 22).

``GpuBackend.fuse`` is ``cupy.fuse`` on CuPy (one kernel for a function of arithmetic and the
namespace's ufuncs) and the function itself on the strict stand-in (the same arithmetic, one
ufunc call at a time, which the tests compare with the CPU's unfused update).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from chainrule.core import backend as _backend
from chainrule.core.array import array
from chainrule.core.backend import xp
from chainrule.core.extend import from_value

__all__ = [
    "fused_adam_step",
    "fused_adagrad_step",
    "fused_lion_step",
    "fused_rmsprop_step",
    "fused_sgd_momentum_step",
    "fused_step",
]


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
    gb = _backend.GPU[0]
    if gb is None:
        return None
    # Python floats (as PyTorch's own Adam computes its bias corrections): a 0-d float64
    # array would make the kernel compute in float64
    c2 = 1.0
    if opt._torch or hp["bias_correction"]:
        t = float(opt._count(state))
        c2 = math.sqrt(1 - b2**t)
        lr = lr / (1 - b1**t)
    sqrt = gb.xp.sqrt

    def build() -> Callable:
        def adam_step(w, g, m, v, b1, c1, b2, c2_, lr, eps, c2):
            # the unfused update's steps, in its order: m b1 + g (1 - b1), v b2 + g g (1 - b2),
            # w - m / (sqrt(v) / sqrt(1 - b2^t) + eps) * lr
            m = m * b1 + g * c1
            v = v * b2 + g * g * c2_
            return w - m / (sqrt(v) / c2 + eps) * lr, m, v

        return adam_step

    arrays = (w, g, state[k["m"]]._data, state[k["v"]]._data)
    got = fused_step("Adam", (), build, arrays, (b1, 1 - b1, b2, 1 - b2, lr, float(hp["eps"]), c2))
    if got is None:
        return None
    state[k["m"]] = from_value(got[1])
    state[k["v"]] = from_value(got[2])
    return from_value(got[0])


def _as_dtype(a: Any, dt: Any) -> Any:
    """``a`` in dtype ``dt`` (a no-op when it is)."""
    return a if a.dtype == dt else a.astype(dt)


_FUSED: dict = {}
"""``(backend name, optimizer, variant...) -> fused kernel`` (``False`` once it failed)."""


def fused_step(
    name: str, variant: tuple, build: Callable[[], Callable], arrays: tuple, scalars: tuple
) -> tuple | None:
    """Run one optimizer's update of one GPU parameter as one fused kernel.

    Args:
        name: the optimizer (for the kernel's cache key and the warning).
        variant: what changes the kernel's code (``nesterov``...), part of the cache key.
        build: makes the update's function of ``(*arrays, *scalars)`` (the unfused update's
            arithmetic, in its order), returning its new arrays.
        arrays: the parameter first, then the gradient and the state, all of its shape.
        scalars: Python floats (a 0-d host learning rate is made one; a 0-d GPU array stays on
            the GPU, cast to the parameter's dtype).

    Returns:
        The new arrays, in the parameter's dtype; ``None`` where the fused kernel does not apply
        (host data, mixed dtypes or shapes, non-float types) or failed once (a warning; the
        unfused update is used from then on).
    """
    gb = _backend.GPU[0]
    w = arrays[0]
    if gb is None or gb.fuse is None or not isinstance(w, gb.ndarray) or w.dtype.kind != "f":
        return None
    if any(a.dtype != w.dtype or a.shape != w.shape for a in arrays[1:]):
        return None
    key = (gb.name, name, *variant)
    fused = _FUSED.get(key)
    if fused is False:
        return None
    args = []
    for v in scalars:
        if isinstance(v, (xp.ndarray, xp.generic)):
            v = float(v)
        elif hasattr(v, "dtype"):  # a 0-d GPU array (no copy to the host): of w's dtype
            v = v.astype(w.dtype)
        args.append(v)
    try:
        if fused is None:
            fused = _FUSED[key] = gb.fuse(build())
        out = fused(*arrays, *args)
    except Exception as e:  # a kernel the GPU library could not build: unfused from now on
        _FUSED[key] = False
        warnings.warn(
            f"{name}: the fused GPU update failed ({type(e).__name__}: {e}); the unfused "
            "update is used instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return tuple(_as_dtype(a, w.dtype) for a in out)


def fused_sgd_momentum_step(g: Any, w: Any, v: Any, lr: Any, hp: dict) -> tuple | None:
    """SGD with momentum: ``v mu + g (1 - dampening)``, then ``w - (g + mu v) lr`` (Nesterov)
    or ``w - v lr``. Returns ``(new parameter, new momentum)`` or ``None`` (:func:`fused_step`)."""
    nesterov = bool(hp["nesterov"])

    def build() -> Callable:
        def sgd_momentum_step(w, g, v, mu, keep, lr):
            v = v * mu + g * keep
            return w - ((g + mu * v) if nesterov else v) * lr, v

        return sgd_momentum_step

    mu, keep = float(hp["momentum"]), 1.0 - float(hp["dampening"])
    return fused_step("SGD", (nesterov,), build, (w, g, v), (mu, keep, lr))


def fused_rmsprop_step(g: Any, w: Any, v: Any, buf: Any, lr: float, hp: dict) -> tuple | None:
    """RMSprop (not centered): ``v a + (1 - a) g g``, ``g / (sqrt(v) + eps)`` (plus ``buf mu``
    with momentum), ``w - lr step``. Returns ``(new parameter, new v[, new buffer])`` or
    ``None`` (:func:`fused_step`)."""
    gb = _backend.GPU[0]
    if gb is None:
        return None
    sqrt = gb.xp.sqrt
    with_buf = buf is not None

    def build() -> Callable:
        if with_buf:

            def rmsprop_momentum_step(w, g, v, buf, a, keep, eps, mu, lr):
                v = v * a + keep * (g * g)
                step = g / (sqrt(v) + eps) + buf * mu
                return w - lr * step, v, step

            return rmsprop_momentum_step

        def rmsprop_step(w, g, v, a, keep, eps, lr):
            v = v * a + keep * (g * g)
            return w - lr * (g / (sqrt(v) + eps)), v

        return rmsprop_step

    a, eps = float(hp["alpha"]), float(hp["eps"])
    if with_buf:
        arrays, scalars = (w, g, v, buf), (a, 1 - a, eps, float(hp["momentum"]), lr)
    else:
        arrays, scalars = (w, g, v), (a, 1 - a, eps, lr)
    return fused_step("RMSprop", (with_buf,), build, arrays, scalars)


def fused_adagrad_step(g: Any, w: Any, v: Any, lr: float, eps: float) -> tuple | None:
    """Adagrad: ``v + g g``, then ``w - lr g / (sqrt(v) + eps)``. Returns ``(new parameter,
    new v)`` or ``None`` (:func:`fused_step`)."""
    gb = _backend.GPU[0]
    if gb is None:
        return None
    sqrt = gb.xp.sqrt

    def build() -> Callable:
        def adagrad_step(w, g, v, eps, lr):
            v = v + g * g
            return w - lr * (g / (sqrt(v) + eps)), v

        return adagrad_step

    return fused_step("Adagrad", (), build, (w, g, v), (float(eps), lr))


def fused_lion_step(g: Any, w: Any, m: Any, lr: Any, hp: dict) -> tuple | None:
    """Lion: ``sign(m b1 + (1 - b1) g)`` steps (after decoupled weight decay), ``m b2 + (1 -
    b2) g``. Returns ``(new parameter, new m)`` or ``None`` (:func:`fused_step`)."""
    gb = _backend.GPU[0]
    if gb is None:
        return None
    sign = gb.xp.sign
    wd = float(hp["weight_decay"])

    def build() -> Callable:
        def lion_step(w, g, m, b1, c1, b2, c2, keep, lr):
            c = m * b1 + c1 * g
            m_new = m * b2 + c2 * g
            if wd > 0:
                w = w * keep
            return w - lr * sign(c), m_new

        return lion_step

    b1, b2 = (float(b) for b in hp["betas"])
    lr_f = float(lr) if isinstance(lr, (xp.ndarray, xp.generic, float, int)) else None
    keep = 1 - lr_f * wd if lr_f is not None else None
    if wd > 0 and keep is None:  # a 0-d GPU learning rate with weight decay: unfused
        return None
    scalars = (b1, 1 - b1, b2, 1 - b2, 1.0 if keep is None else keep, lr)
    return fused_step("Lion", (wd > 0,), build, (w, g, m), scalars)
