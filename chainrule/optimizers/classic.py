"""Rprop and ASGD (``torch.optim.Rprop``, ``torch.optim.ASGD``), in both calling styles.

MLX has neither; called MLX's way (``Rprop(learning_rate=1e-2)``, ``optimizer.update(model,
grads)``) they run the same per-parameter formulas. Called PyTorch's way they follow
``torch.optim`` step for step, including ASGD's float32 ``eta`` and ``mu``.
"""

from __future__ import annotations

from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..core.backend import xp
from .base import _check_lr, _non_negative, _zeros
from .optimizers import _Standard

__all__ = ["ASGD", "Rprop"]


def _scalar_dtype(parameter: array, torch_style: bool):
    """PyTorch keeps scalar state in float32 (float64 here for float64 parameters)."""
    dtype = parameter._data.dtype
    if torch_style:
        return xp.float64 if dtype == xp.float64 else xp.float32
    return dtype


class Rprop(_Standard):
    r"""Resilient backpropagation (``torch.optim.Rprop``): per-weight step sizes that grow by
    ``etas[1]`` while the gradient keeps its sign and shrink by ``etas[0]`` when it flips.

    PyTorch style: ``Rprop(params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
    maximize=False)``. MLX style: ``Rprop(learning_rate, etas=[0.5, 1.2], step_sizes=[1e-6,
    50])``.

    Args:
        params_or_learning_rate: The learning rate (the initial step size), or the parameters.
        etas: ``(etaminus, etaplus)``, with ``0 < etaminus < 1 < etaplus``.
        step_sizes: ``(min, max)`` bounds of the step sizes.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("etas", "step_sizes")
    _torch_args = ("etas", "step_sizes")
    _mlx_defaults = {"etas": [0.5, 1.2], "step_sizes": [1e-6, 50], "maximize": False}
    _torch_defaults = {
        "etas": (0.5, 1.2),
        "step_sizes": (1e-6, 50),
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "capturable": False,
    }
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        etas = hp["etas"]
        if len(etas) != 2 or not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(
                f"{who}: invalid etas {tuple(etas)!r} (need 0 < etaminus < 1 < etaplus)"
            )
        if len(hp["step_sizes"]) != 2:
            raise ValueError(
                f"{who}: step_sizes must be a pair (min, max), got {hp['step_sizes']!r}"
            )

    def init_single(self, parameter: array, state: dict) -> None:
        """The previous gradient (zero) and the step sizes (the learning rate)."""
        state["prev"] = _zeros(parameter)
        lr = float(self._group["lr"])
        state["step_size"] = from_value(xp.full_like(parameter._data, lr))

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Rprop update of ``parameter``; keeps ``prev`` and ``step_size``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        minus, plus = hp["etas"]
        low, high = hp["step_sizes"]
        sign = xp.sign(g * state["prev"]._data)
        factor = xp.where(sign > 0, plus, xp.where(sign < 0, minus, 1.0)).astype(w.dtype)
        size = xp.clip(state["step_size"]._data * factor, low, high).astype(w.dtype)
        g = xp.where(sign < 0, xp.zeros_like(g), g)  # no step where the sign flipped
        state["step_size"] = from_value(size)
        state["prev"] = from_value(g)
        return from_value(w - xp.sign(g) * size)


class ASGD(_Standard):
    r"""Averaged stochastic gradient descent (``torch.optim.ASGD``).

    Each step decays the weights by :math:`1 - \lambda \eta_t`, takes an SGD step of size
    :math:`\eta_t = \text{lr} / (1 + \lambda\,\text{lr}\,t)^\alpha` and updates the running
    average ``ax`` of the weights, which averages from step :math:`t_0` on
    (:math:`\mu_t = 1 / \max(1, t - t_0)`).

    PyTorch style: ``ASGD(params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, *,
    maximize=False)``. MLX style: ``ASGD(learning_rate, lambd=1e-4, alpha=0.75, t0=1e6,
    weight_decay=0)``.

    Args:
        params_or_learning_rate: The learning rate, or the parameters.
        lambd: The decay term :math:`\lambda`.
        alpha: The power of the step-size decay.
        t0: The step from which the average starts.
        weight_decay: L2 penalty added to the gradient.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("lambd", "alpha", "t0", "weight_decay")
    _torch_args = ("lambd", "alpha", "t0", "weight_decay")
    _mlx_defaults = {
        "lambd": 1e-4,
        "alpha": 0.75,
        "t0": 1e6,
        "weight_decay": 0.0,
        "maximize": False,
    }
    _torch_defaults = {
        **_mlx_defaults,
        "foreach": None,
        "differentiable": False,
        "capturable": False,
    }
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """The step size ``eta`` (the learning rate), ``mu`` (1) and the average ``ax``."""
        dtype = _scalar_dtype(parameter, self._torch)
        lr = float(self._group["lr"])
        state["eta"] = from_value(xp.asarray(xp.float32(lr) if self._torch else lr, dtype=dtype))
        state["mu"] = from_value(xp.ones((), dtype=dtype))
        state["ax"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the ASGD update of ``parameter``; keeps ``eta``, ``mu`` and ``ax``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        if hp["weight_decay"]:
            g = g + hp["weight_decay"] * w
        lambd, lr = hp["lambd"], float(hp["lr"])
        eta = float(state["eta"]._data)
        mu = float(state["mu"]._data)
        w = w * (1 - lambd * eta)
        w = w - eta * g
        ax = state["ax"]._data
        state["ax"] = from_value(ax + (w - ax) * mu if mu != 1 else w.copy())
        t = float(self._count(state))
        # PyTorch stores both in its scalar dtype (float32): round them as it does
        dtype = state["eta"]._data.dtype
        new_eta = xp.float32(lr / ((1 + lambd * lr * t) ** hp["alpha"]))
        new_mu = xp.float32(1 / max(1.0, t - hp["t0"]))
        state["eta"] = from_value(xp.asarray(new_eta, dtype=dtype))
        state["mu"] = from_value(xp.asarray(new_mu, dtype=dtype))
        return from_value(w)
