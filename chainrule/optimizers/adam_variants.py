"""NAdam and RAdam (``torch.optim.NAdam``, ``torch.optim.RAdam``), in both calling styles.

MLX has neither; called MLX's way (``NAdam(learning_rate=2e-3)``, ``optimizer.update(model,
grads)``) they run the same formulas with the optimizer's global step count. Called PyTorch's
way they follow ``torch.optim`` step for step, including its float32 ``mu_product``.
"""

from __future__ import annotations

import math

from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..core.backend import to_host as _to_host
from ..core.backend import xp
from .base import _check_betas, _check_lr, _non_negative, _zeros
from .optimizers import _Standard

__all__ = ["NAdam", "RAdam"]

_TORCH_FLAGS = {"foreach": None, "capturable": False, "differentiable": False}


def _moments(hp: dict, g, w, state: dict, k: dict):
    """PyTorch's shared first steps: ascent, weight decay (L2 or decoupled), both moments.

    Returns the gradient used, the (maybe decayed) weights and the new moments.
    """
    if hp["maximize"]:
        g = -g
    wd = hp["weight_decay"]
    if wd:
        if hp["decoupled_weight_decay"]:
            w = w * (1 - float(hp["lr"]) * wd)
        else:
            g = g + wd * w
    b1, b2 = hp["betas"]
    m = state[k["m"]]._data
    m = m + (1 - b1) * (g - m)  # PyTorch's lerp (weight below 0.5)
    v = state[k["v"]]._data * b2
    v += (1 - b2) * (g * g)
    state[k["m"]] = from_value(m)
    state[k["v"]] = from_value(v)
    return g, w, m, v


def _check(self, hp: dict) -> None:
    who = type(self).__name__
    if self._torch:
        _check_lr(who, hp["lr"])
    _non_negative(who, "eps", hp["eps"])
    _check_betas(who, hp["betas"])
    _non_negative(who, "weight_decay", hp["weight_decay"])
    if "momentum_decay" in hp:
        _non_negative(who, "momentum_decay", hp["momentum_decay"])


class NAdam(_Standard):
    r"""Adam with Nesterov momentum (``torch.optim.NAdam``).

    .. math::

        \mu_t = \beta_1 (1 - \tfrac12 0.96^{t \psi}), \quad
        w_{t} = w_{t-1} - \lambda \Big(\frac{(1 - \mu_t) g_t}{1 - \prod_{i \le t} \mu_i}
                + \frac{\mu_{t+1} m_t}{1 - \prod_{i \le t+1} \mu_i}\Big)
                \Big/ \Big(\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\Big)

    PyTorch style: ``NAdam(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False)``. MLX style:
    ``NAdam(learning_rate, betas=[0.9, 0.999], eps=1e-8, weight_decay=0, momentum_decay=4e-3)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients :math:`(\beta_1, \beta_2)`.
        eps: Added to the denominator.
        weight_decay: Weight decay (L2 added to the gradient, or decoupled).
        momentum_decay: The momentum decay :math:`\psi`.
        decoupled_weight_decay: Shrink the weights directly (NAdamW) instead of L2.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("betas", "eps", "weight_decay", "momentum_decay")
    _torch_args = ("betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay")
    _mlx_defaults = {
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum_decay": 4e-3,
        "decoupled_weight_decay": False,
        "maximize": False,
    }
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.999), **_TORCH_FLAGS}
    _torch_lr = 2e-3
    _torch_names = {"m": "exp_avg", "v": "exp_avg_sq"}

    _check_hyper = _check

    def init_single(self, parameter: array, state: dict) -> None:
        """``mu_product`` (a scalar, 1) and zero first and second moments."""
        k = self._k
        dtype = parameter._data.dtype
        if self._torch:  # PyTorch keeps it in float32 (float64 here for float64 parameters)
            dtype = xp.float64 if dtype == xp.float64 else xp.float32
        state["mu_product"] = from_value(xp.ones((), dtype=dtype))
        state[k["m"]] = _zeros(parameter)
        state[k["v"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the NAdam update of ``parameter``; keeps its moments in ``state``."""
        k = self._k
        hp = self._group
        g, w, m, v = _moments(hp, gradient._data, parameter._data, state, k)
        t = float(self._count(state))
        lr = float(hp["lr"])
        b1, b2 = hp["betas"]
        psi = hp["momentum_decay"]
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        old = _to_host(state["mu_product"]._data)  # a host scalar (also when loaded)
        # PyTorch multiplies its float32 mu_product by mu in float32
        product = float(xp.float32(old) * xp.float32(mu))
        state["mu_product"] = from_value(xp.asarray(product, dtype=old.dtype))
        product_next = product * mu_next
        denom = xp.sqrt(v / (1 - b2**t))
        denom += hp["eps"]
        w = w + (-lr * (1.0 - mu) / (1.0 - product)) * (g / denom)
        return from_value(w + (-lr * mu_next / (1.0 - product_next)) * (m / denom))


class RAdam(_Standard):
    r"""Rectified Adam (``torch.optim.RAdam``).

    While the variance of the adaptive rate is intractable (:math:`\rho_t \le 5`) the step is
    momentum SGD with bias correction; afterwards Adam's step times the rectification
    :math:`r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
    {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}`.

    PyTorch style: ``RAdam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    decoupled_weight_decay=False, *, maximize=False)``. MLX style: ``RAdam(learning_rate,
    betas=[0.9, 0.999], eps=1e-8, weight_decay=0)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients :math:`(\beta_1, \beta_2)`.
        eps: Added to the denominator.
        weight_decay: Weight decay (L2 added to the gradient, or decoupled).
        decoupled_weight_decay: Shrink the weights directly (RAdamW) instead of L2.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("betas", "eps", "weight_decay")
    _torch_args = ("betas", "eps", "weight_decay", "decoupled_weight_decay")
    _mlx_defaults = {
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": False,
        "maximize": False,
    }
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.999), **_TORCH_FLAGS}
    _torch_lr = 1e-3
    _torch_names = {"m": "exp_avg", "v": "exp_avg_sq"}

    _check_hyper = _check

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero first and second moments."""
        k = self._k
        state[k["m"]] = _zeros(parameter)
        state[k["v"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the RAdam update of ``parameter``; keeps its moments in ``state``."""
        k = self._k
        hp = self._group
        _, w, m, v = _moments(hp, gradient._data, parameter._data, state, k)
        t = float(self._count(state))
        lr = float(hp["lr"])
        b1, b2 = hp["betas"]
        bc1 = 1 - b1**t
        bc2 = 1 - b2**t
        corrected = m / bc1
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * (b2**t) / bc2
        if rho_t > 5.0:
            rect = math.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            adaptive = bc2**0.5 / (xp.sqrt(v) + hp["eps"])
            return from_value(w - corrected * lr * adaptive * rect)
        return from_value(w - corrected * lr)
