"""The standard optimizers (SGD, Adam, AdamW, Adamax, RMSprop, Adagrad, AdaDelta, Lion,
Adafactor, Muon), ``MultiOptimizer`` and ``clip_grad_norm``.

Each is written once, as MLX writes it (``init_single`` / ``apply_single``); the base class in
``base.py`` drives it from MLX's ``update`` and from PyTorch's ``step``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from chainrule.core.array import array
from chainrule.core.extend import from_value

from .. import core as mx
from ..core import tree as pytree
from ..core.autograd import enable_grad
from ..core.backend import array_module, xp
from ..utils import tree_flatten, tree_unflatten
from .base import (
    _IGNORED_FLAGS,
    _MISSING,
    _REQUIRED,
    LearningRate,
    Optimizer,
    _as_array,
    _ascent_and_decay,
    _check_betas,
    _check_lr,
    _looks_like_params,
    _non_negative,
    _positive,
    _unit_interval,
    _zeros,
    owned_buffer,
)
from .fused_cpu import fused_adam_host
from .fused_gpu import (
    fused_adagrad_step,
    fused_adam_step,
    fused_lion_step,
    fused_rmsprop_step,
    fused_sgd_momentum_step,
)

__all__ = [
    "AdaDelta",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "MultiOptimizer",
    "Muon",
    "Optimizer",
    "RMSprop",
    "SGD",
    "clip_grad_norm",
]


# -- the standard optimizers ---------------------------------------------------------------------


class _Standard(Optimizer):
    """Argument binding shared by the built-in optimizers.

    ``Opt(learning_rate, *mlx_args, **kw)`` is MLX style; ``Opt(params, lr, *torch_args, **kw)``
    is PyTorch style. Each style has its own defaults and positional order (``_mlx_args`` /
    ``_torch_args`` after the learning rate); keywords may use either ``lr`` or
    ``learning_rate``.
    """

    _mlx_args: tuple[str, ...] = ()
    _torch_args: tuple[str, ...] = ()
    _mlx_defaults: dict = {}
    _torch_defaults: dict = {}
    _mlx_lr: Any = _REQUIRED
    _torch_lr: float = 1e-3

    def __init__(self, params_or_learning_rate: Any = _MISSING, /, *args: Any, **kwargs: Any):
        who = type(self).__name__
        first = params_or_learning_rate
        torch_style = _looks_like_params(first)
        if torch_style:
            names = ("lr",) + self._torch_args
            hp = {"lr": self._torch_lr, **self._torch_defaults}
            other = self._mlx_defaults
        else:
            names = ("lr",) + self._mlx_args
            hp = {"lr": self._mlx_lr, **self._mlx_defaults}
            other = self._torch_defaults
            if first is not _MISSING:
                args = (first,) + args
        if len(args) > len(names):
            raise TypeError(
                f"{who}() takes at most {len(names)} positional hyper-parameters "
                f"({', '.join(names)}), {len(args)} were given"
            )
        given = dict(zip(names, args))
        for key, value in kwargs.items():
            if key == "learning_rate":
                key = "lr"
            if key in _IGNORED_FLAGS and key not in hp:
                continue
            if key not in hp and key not in other:
                raise TypeError(f"{who}() got an unexpected keyword argument {key!r}")
            if key in given:
                raise TypeError(f"{who}() got multiple values for argument {key!r}")
            given[key] = value
        hp.update(given)
        lr = hp["lr"]
        if lr is _REQUIRED:
            raise TypeError(f"{who}() missing required argument: 'learning_rate'")
        object.__setattr__(self, "_torch", torch_style)  # _check_hyper reads the style
        self._check_hyper(hp)
        if torch_style:
            if callable(lr) and not isinstance(lr, array):
                raise TypeError(
                    f"{who}: a schedule as lr needs MLX style ({who}(learning_rate=schedule)); "
                    "with parameters use chainrule.optim.lr_scheduler"
                )
            super().__init__(first, hp)
        else:
            hp["lr"] = None
            super().__init__(None, hp)
            if lr is not None:
                self._maybe_schedule("learning_rate", lr)


def _buffer(value, dtype=None):
    """``value`` as a writable array of ``dtype`` (NumPy turns a 0-d product into a scalar, which
    ``+=`` and ``out=`` would not write into)."""
    if dtype is not None and value.dtype != dtype:
        value = value.astype(dtype)
    return xp.asarray(value) if isinstance(value, xp.generic) else value


class SGD(_Standard):
    r"""Stochastic gradient descent with momentum (MLX ``optimizers.SGD``, ``torch.optim.SGD``).

    .. math::

        v_{t+1} = \mu v_t + (1 - \tau) g_t, \qquad w_{t+1} = w_t - \lambda v_{t+1}

    MLX style: ``SGD(learning_rate, momentum=0, weight_decay=0, dampening=0, nesterov=False)``.
    PyTorch style: ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    nesterov=False, *, maximize=False)``; the momentum buffer starts at the first gradient, as in
    PyTorch (MLX starts it at zero, which differs only with dampening).

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        momentum: The momentum :math:`\mu`.
        weight_decay: L2 penalty added to the gradient.
        dampening: Dampening :math:`\tau` of the momentum.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and no dampening).
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("momentum", "weight_decay", "dampening", "nesterov")
    _torch_args = ("momentum", "dampening", "weight_decay", "nesterov")
    _mlx_defaults = {
        "momentum": 0.0,
        "weight_decay": 0.0,
        "dampening": 0.0,
        "nesterov": False,
        "maximize": False,
    }
    _torch_defaults = {**_mlx_defaults, "foreach": None, "differentiable": False, "fused": None}
    _torch_names = {"v": "momentum_buffer"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(
                f"{who}: nesterov momentum requires a momentum > 0 and zero dampening, got "
                f"momentum={hp['momentum']!r}, dampening={hp['dampening']!r}"
            )

    def init_single(self, parameter: array, state: dict) -> None:
        """MLX: a zero momentum buffer. PyTorch: none until the first step."""
        k = self._k
        if not self._torch:
            state[k["v"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the SGD update of ``parameter``; keeps the momentum in ``state["v"]``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        mu = hp["momentum"]
        if mu and type(w) is not xp.ndarray and state.get(k["v"]) is not None:
            # on the GPU: the momentum and the step as one fused kernel
            got = fused_sgd_momentum_step(g, w, state[k["v"]]._data, hp["lr"], hp)
            if got is not None:
                state[k["v"]] = from_value(got[1])
                return from_value(got[0])
        if mu:
            if state.get(k["v"]) is None:
                v = g  # PyTorch starts the buffer at the first gradient (``owned_buffer``
                # lets a later step write it in place only once nobody else holds it)
                state[k["v"]] = from_value(v)
            else:
                v = owned_buffer(state, k["v"])  # in place when only this state holds it
                if v is None:  # a fresh buffer, of the state's own dtype
                    v = _buffer(state[k["v"]]._data * mu, state[k["v"]]._data.dtype)
                    state[k["v"]] = from_value(v)
                else:
                    v *= mu
                damp = hp["dampening"]
                v += g if not damp else (1 - damp) * g
            g = g + mu * v if hp["nesterov"] else v
        # one fresh buffer: the scaled step, then the new weights written over it
        new = g * hp["lr"]
        if isinstance(new, xp.ndarray) and new.dtype == w.dtype and new.shape == w.shape:
            return from_value(xp.subtract(w, new, out=new))
        return from_value(w - new)


class Adam(_Standard):
    r"""Adam (MLX ``optimizers.Adam``, ``torch.optim.Adam``).

    .. math::

        m_{t+1} = \beta_1 m_t + (1 - \beta_1) g_t, \quad
        v_{t+1} = \beta_2 v_t + (1 - \beta_2) g_t^2, \quad
        w_{t+1} = w_t - \lambda \frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``Adam(learning_rate, betas=[0.9, 0.999], eps=1e-8, bias_correction=False)``.
    PyTorch style: ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    amsgrad=False, *, maximize=False)``, always bias-corrected.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients :math:`(\beta_1, \beta_2)`.
        eps: Added to the denominator.
        bias_correction: Divide the moments by :math:`1 - \beta^t` (MLX; PyTorch always does).
        weight_decay: L2 penalty added to the gradient (PyTorch).
        amsgrad: Use the running maximum of :math:`v` (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _decoupled = False  # AdamW decays the weights directly
    _mlx_args = ("betas", "eps", "bias_correction")
    _torch_args = ("betas", "eps", "weight_decay", "amsgrad")
    _mlx_defaults = {
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "bias_correction": False,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    _torch_defaults = {
        **{k: v for k, v in _mlx_defaults.items() if k != "bias_correction"},
        "betas": (0.9, 0.999),
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "decoupled_weight_decay": False,
    }
    _torch_names = {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _check_betas(who, hp["betas"])
        _non_negative(who, "eps", hp["eps"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero first and second moments (and their running maximum with ``amsgrad``)."""
        k = self._k
        state[k["m"]] = _zeros(parameter)
        state[k["v"]] = _zeros(parameter)
        if self._group.get("amsgrad"):
            state[k["v_max"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adam update of ``parameter``; keeps ``m`` and ``v`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        if wd:
            if hp.get("decoupled_weight_decay", self._decoupled):
                w = w * (1 - lr * wd)
            else:
                g = g + wd * w
        if not hp["amsgrad"] and type(w) is not xp.ndarray:  # on the GPU: one fused kernel
            out = fused_adam_step(self, g, w, state, lr, b1, b2)
            if out is not None:
                return out
        out = None if hp["amsgrad"] else fused_adam_host(self, g, w, state, lr, b1, b2)
        if out is not None:  # a large float32 host parameter: three oneDNN passes
            return out
        # ``tmp`` is this step's one new buffer: it ends as the new parameter. The moments are
        # updated in place when only this state holds them (``owned_buffer``), else renewed.
        tmp = _buffer(g * (1 - b1))
        m = owned_buffer(state, k["m"])
        if m is None:  # a fresh buffer, of the state's own dtype (bfloat16 stays bfloat16)
            m = _buffer(state[k["m"]]._data * b1, state[k["m"]]._data.dtype)
            state[k["m"]] = from_value(m)
        else:
            m *= b1
        m += tmp
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v = None if hp["amsgrad"] else owned_buffer(state, k["v"])
        if v is None:
            v = _buffer(state[k["v"]]._data * b2, state[k["v"]]._data.dtype)
            state[k["v"]] = from_value(v)
        else:
            v *= b2
        v += tmp
        if hp["amsgrad"]:
            v_max = state.get(k["v_max"])
            v = v if v_max is None else xp.maximum(v_max._data, v)
            state[k["v_max"]] = from_value(v)
        denom = xp.sqrt(v, out=tmp)
        if self._torch or hp["bias_correction"]:
            t = self._count(state)
            denom /= (1 - b2**t) ** 0.5
            lr = lr / (1 - b1**t)
        denom += hp["eps"]
        xp.divide(m, denom, out=denom)
        denom *= lr
        if type(denom) is xp.ndarray and denom.dtype == w.dtype and denom.shape == w.shape:
            return from_value(xp.subtract(w, denom, out=denom))
        return from_value(w - denom)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (MLX ``optimizers.AdamW``, ``torch.optim.AdamW``).

    The weights shrink by :math:`1 - \lambda \cdot \text{weight\_decay}` before the Adam step.

    MLX style: ``AdamW(learning_rate, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01,
    bias_correction=False)``. PyTorch style: ``AdamW(params, lr=1e-3, betas=(0.9, 0.999),
    eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients.
        eps: Added to the denominator.
        weight_decay: The decoupled weight decay.
        bias_correction: Divide the moments by :math:`1 - \beta^t` (MLX; PyTorch always does).
        amsgrad: Use the running maximum of :math:`v` (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _decoupled = True
    _mlx_args = ("betas", "eps", "weight_decay", "bias_correction")
    _mlx_defaults = {**Adam._mlx_defaults, "weight_decay": 0.01}
    _torch_defaults = {**Adam._torch_defaults, "weight_decay": 0.01, "decoupled_weight_decay": True}


class Adamax(_Standard):
    r"""Adamax, Adam with the infinity norm (MLX ``optimizers.Adamax``, ``torch.optim.Adamax``).

    MLX: :math:`v = \max(\beta_2 v, |g|)`, :math:`w \mathrel{-}= \lambda m / (v + \epsilon)`.
    PyTorch: :math:`u = \max(\beta_2 u, |g| + \epsilon)`,
    :math:`w \mathrel{-}= \lambda / (1 - \beta_1^t) \cdot m / u`.

    MLX style: ``Adamax(learning_rate, betas=[0.9, 0.999], eps=1e-8)``. PyTorch style:
    ``Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
    maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients.
        eps: Stabilising term.
        weight_decay: L2 penalty added to the gradient.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("betas", "eps")
    _torch_args = ("betas", "eps", "weight_decay")
    _mlx_defaults = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "maximize": False}
    _torch_defaults = {
        **_mlx_defaults,
        "betas": (0.9, 0.999),
        "foreach": None,
        "differentiable": False,
        "capturable": False,
    }
    _torch_lr = 2e-3
    _torch_names = {"m": "exp_avg", "v": "exp_inf"}

    _check_hyper = Adam._check_hyper

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero first moment and infinity norm."""
        k = self._k
        state[k["m"]] = _zeros(parameter)
        state[k["v"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adamax update of ``parameter``; keeps ``m`` and ``v`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        eps = hp["eps"]
        m = state[k["m"]]._data * b1
        m += (1 - b1) * g
        state[k["m"]] = from_value(m)
        if self._torch:
            u = xp.maximum(state[k["v"]]._data * b2, xp.abs(g) + eps)
            state[k["v"]] = from_value(u)
            return from_value(w - (lr / (1 - b1 ** self._count(state))) * (m / u))
        v = xp.maximum(state[k["v"]]._data * b2, xp.abs(g))
        state[k["v"]] = from_value(v)
        return from_value(w - lr * (m / (v + eps)))


class RMSprop(_Standard):
    r"""RMSprop (MLX ``optimizers.RMSprop``, ``torch.optim.RMSprop``).

    .. math::

        v_{t+1} = \alpha v_t + (1 - \alpha) g_t^2, \qquad
        w_{t+1} = w_t - \lambda \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``RMSprop(learning_rate, alpha=0.99, eps=1e-8)``. PyTorch style:
    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        alpha: The smoothing constant.
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient.
        momentum: Momentum of the scaled step.
        centered: Normalise by the estimated variance instead of the second moment.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("alpha", "eps")
    _torch_args = ("alpha", "eps", "weight_decay", "momentum", "centered")
    _mlx_defaults = {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "maximize": False,
    }
    _torch_defaults = {
        **_mlx_defaults,
        "capturable": False,
        "foreach": None,
        "differentiable": False,
    }
    _torch_lr = 1e-2
    _torch_names = {"v": "square_avg", "g_avg": "grad_avg", "buf": "momentum_buffer"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _non_negative(who, "alpha", hp["alpha"])
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero second moment (plus momentum and mean-gradient buffers when used)."""
        k = self._k
        state[k["v"]] = _zeros(parameter)
        if self._torch:  # PyTorch makes them at once; MLX has neither
            if self._group["momentum"] > 0:
                state[k["buf"]] = _zeros(parameter)
            if self._group["centered"]:
                state[k["g_avg"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the RMSprop update of ``parameter``; keeps ``v`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        a = hp["alpha"]
        if type(w) is not xp.ndarray and not hp["centered"]:  # on the GPU: one fused kernel
            buf = state.get(k["buf"]) if hp["momentum"] > 0 else None
            if hp["momentum"] <= 0 or buf is not None:
                b = None if buf is None else buf._data
                got = fused_rmsprop_step(g, w, state[k["v"]]._data, b, float(hp["lr"]), hp)
                if got is not None:
                    state[k["v"]] = from_value(got[1])
                    if buf is not None:
                        state[k["buf"]] = from_value(got[2])
                    return from_value(got[0])
        v = state[k["v"]]._data * a
        v += (1 - a) * (g * g)
        state[k["v"]] = from_value(v)
        if hp["centered"]:
            g_avg = state.get(k["g_avg"])
            g_avg = (1 - a) * g if g_avg is None else g_avg._data * a + (1 - a) * g
            state[k["g_avg"]] = from_value(g_avg)
            avg = xp.sqrt(v - g_avg * g_avg)
        else:
            avg = xp.sqrt(v)
        avg += hp["eps"]
        lr = float(hp["lr"])
        mu = hp["momentum"]
        if mu > 0:
            buf = state.get(k["buf"])
            step = g / avg
            if buf is not None:
                step += buf._data * mu
            state[k["buf"]] = from_value(step)
            return from_value(w - lr * step)
        return from_value(w - lr * (g / avg))


class Adagrad(_Standard):
    r"""Adagrad (MLX ``optimizers.Adagrad``, ``torch.optim.Adagrad``).

    .. math::

        v_{t+1} = v_t + g_t^2, \qquad
        w_{t+1} = w_t - \frac{\lambda}{1 + (t - 1) \cdot \text{lr\_decay}}
                  \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``Adagrad(learning_rate, eps=1e-8)``. PyTorch style: ``Adagrad(params, lr=1e-2,
    lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        eps: Added to the denominator.
        lr_decay: Learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: Starting value of :math:`v`.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("eps",)
    _torch_args = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _mlx_defaults = {
        "eps": 1e-8,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "maximize": False,
    }
    _torch_defaults = {
        **_mlx_defaults,
        "eps": 1e-10,
        "foreach": None,
        "differentiable": False,
        "fused": None,
    }
    _torch_lr = 1e-2
    _torch_names = {"v": "sum"}

    def __init__(self, params_or_learning_rate: Any = _MISSING, /, *args: Any, **kwargs: Any):
        super().__init__(params_or_learning_rate, *args, **kwargs)
        if self._torch:  # PyTorch's Adagrad makes every parameter's state at once
            for group in self.param_groups:
                self._group = group
                for p in group["params"]:
                    state = self._param_state[p]
                    state["step"] = 0
                    self.init_single(p, state)

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "lr_decay", hp["lr_decay"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        _non_negative(who, "initial_accumulator_value", hp["initial_accumulator_value"])

    def init_single(self, parameter: array, state: dict) -> None:
        """The accumulator :math:`v`, filled with ``initial_accumulator_value``."""
        k = self._k
        state[k["v"]] = from_value(
            xp.full_like(parameter._data, self._group["initial_accumulator_value"])
        )

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adagrad update of ``parameter``; keeps ``v`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        lr = float(hp["lr"])
        if hp["lr_decay"]:
            lr = lr / (1 + (self._count(state) - 1) * hp["lr_decay"])
        if type(w) is not xp.ndarray:  # on the GPU: one fused kernel
            got = fused_adagrad_step(g, w, state[k["v"]]._data, lr, hp["eps"])
            if got is not None:
                state[k["v"]] = from_value(got[1])
                return from_value(got[0])
        v = state[k["v"]]._data + g * g
        state[k["v"]] = from_value(v)
        denom = xp.sqrt(v)
        denom += hp["eps"]
        return from_value(w - lr * (g / denom))


class AdaDelta(_Standard):
    r"""AdaDelta (MLX ``optimizers.AdaDelta``, ``torch.optim.Adadelta``).

    .. math::

        v_{t+1} = \rho v_t + (1 - \rho) g_t^2, \quad
        \Delta_{t+1} = \frac{\sqrt{u_t + \epsilon}}{\sqrt{v_{t+1} + \epsilon}} g_t, \quad
        u_{t+1} = \rho u_t + (1 - \rho) \Delta_{t+1}^2, \quad
        w_{t+1} = w_t - \lambda \Delta_{t+1}

    MLX style: ``AdaDelta(learning_rate, rho=0.9, eps=1e-6)``. PyTorch style:
    ``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        rho: The averaging coefficient, in ``[0, 1]``.
        eps: Added inside the square roots.
        weight_decay: L2 penalty added to the gradient.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("rho", "eps")
    _torch_args = ("rho", "eps", "weight_decay")
    _mlx_defaults = {"rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False}
    _torch_defaults = {
        **_mlx_defaults,
        "capturable": False,
        "foreach": None,
        "differentiable": False,
    }
    _torch_lr = 1.0
    _torch_names = {"v": "square_avg", "u": "acc_delta"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        if not 0 <= hp["rho"] <= 1:
            raise ValueError(f"{who}: invalid rho {hp['rho']!r} (must be in [0, 1])")
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero running averages of squared gradients ``v`` and squared updates ``u``."""
        k = self._k
        state[k["v"]] = _zeros(parameter)
        state[k["u"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the AdaDelta update of ``parameter``; keeps ``v`` and ``u`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        rho, eps = hp["rho"], hp["eps"]
        u = state[k["u"]]._data
        v = state[k["v"]]._data * rho
        v += (1 - rho) * (g * g)
        d = xp.sqrt(u + eps)
        d /= xp.sqrt(v + eps)
        d *= g
        u = u * rho
        u += (1 - rho) * (d * d)
        state[k["v"]] = from_value(v)
        state[k["u"]] = from_value(u)
        return from_value(w - float(hp["lr"]) * d)


Adadelta = AdaDelta  # PyTorch's spelling


class Lion(_Standard):
    r"""Lion, the sign of an interpolated momentum (MLX ``optimizers.Lion``).

    .. math::

        c = \beta_1 m_t + (1 - \beta_1) g_t, \quad
        m_{t+1} = \beta_2 m_t + (1 - \beta_2) g_t, \quad
        w_{t+1} = w_t - \eta (\text{sign}(c) + \lambda w_t)

    MLX style: ``Lion(learning_rate, betas=[0.9, 0.99], weight_decay=0.0)``. PyTorch style
    (PyTorch has no Lion; the usual third-party defaults): ``Lion(params, lr=1e-4,
    betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The interpolation and momentum coefficients.
        weight_decay: The decoupled weight decay :math:`\lambda`.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("betas", "weight_decay")
    _torch_args = ("betas", "weight_decay")
    _mlx_defaults = {"betas": [0.9, 0.99], "weight_decay": 0.0, "maximize": False}
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.99)}
    _torch_lr = 1e-4
    _torch_names = {"m": "exp_avg"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _check_betas(who, hp["betas"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero momentum ``m``."""
        k = self._k
        state[k["m"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Lion update of ``parameter``; keeps ``m`` in ``state``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        m = state[k["m"]]._data
        if type(w) is not xp.ndarray:  # on the GPU: one fused kernel
            got = fused_lion_step(g, w, m, lr, hp)
            if got is not None:
                state[k["m"]] = from_value(got[1])
                return from_value(got[0])
        c = m * b1 + (1 - b1) * g
        new_m = m * b2
        new_m += (1 - b2) * g
        state[k["m"]] = from_value(new_m)
        if hp["weight_decay"] > 0:
            w = w * (1 - lr * hp["weight_decay"])
        return from_value(w - lr * xp.sign(c))


class Adafactor(_Standard):
    r"""Adafactor: factored second moments, sublinear memory (MLX ``optimizers.Adafactor``,
    ``torch.optim.Adafactor``).

    The two libraries implement different variants of the paper, so each style runs its own:

    * MLX style: ``Adafactor(learning_rate=None, eps=(1e-30, 1e-3), clip_threshold=1.0,
      decay_rate=-0.8, beta_1=None, weight_decay=0.0, scale_parameter=True,
      relative_step=True, warmup_init=False)``.
    * PyTorch style: ``Adafactor(params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
      weight_decay=0.0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        eps: ``(eps1, eps2)``: regulariser of the squared gradient and floor of the parameter
            scale (PyTorch: ``eps1=None`` means the dtype's machine epsilon).
        clip_threshold: Clip the unscaled update at this RMS (MLX).
        decay_rate: Exponent of the second-moment decay (MLX).
        beta_1: First-moment coefficient, ``None`` for none (MLX).
        weight_decay: Weight decay.
        scale_parameter: Scale the step by the parameter's RMS (MLX).
        relative_step: Ignore ``learning_rate`` and use a relative step size (MLX).
        warmup_init: Warm the relative step up with the step count (MLX).
        beta2_decay: Exponent of the second-moment decay (PyTorch).
        d: Clipping threshold of the update's RMS (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = (
        "eps",
        "clip_threshold",
        "decay_rate",
        "beta_1",
        "weight_decay",
        "scale_parameter",
        "relative_step",
        "warmup_init",
    )
    _torch_args = ("beta2_decay", "eps", "d", "weight_decay")
    _mlx_defaults = {
        "eps": (1e-30, 1e-3),
        "clip_threshold": 1.0,
        "decay_rate": -0.8,
        "beta_1": None,
        "weight_decay": 0.0,
        "scale_parameter": True,
        "relative_step": True,
        "warmup_init": False,
        "maximize": False,
    }
    _torch_defaults = {
        "beta2_decay": -0.8,
        "eps": (None, 1e-3),
        "d": 1.0,
        "weight_decay": 0.0,
        "foreach": None,
        "maximize": False,
    }
    _mlx_lr = None
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        eps = hp["eps"]
        if len(eps) != 2:
            raise ValueError(f"{who}: eps must be a pair (eps1, eps2), got {eps!r}")
        if eps[0] is not None:
            _positive(who, "eps[0]", eps[0])
        _positive(who, "eps[1]", eps[1])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        if "beta2_decay" in hp and not hp["beta2_decay"] <= 0:
            raise ValueError(f"{who}: invalid beta2_decay {hp['beta2_decay']!r} (must be <= 0)")
        if "d" in hp and not hp["d"] >= 1:
            raise ValueError(f"{who}: invalid clipping threshold d {hp['d']!r} (must be >= 1)")
        if "clip_threshold" in hp:
            _positive(who, "clip_threshold", hp["clip_threshold"])
        if hp.get("beta_1") is not None:
            _unit_interval(who, "beta_1", hp["beta_1"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Row and column second moments for matrices, a full one for vectors."""
        d = parameter._data
        if self._torch:
            if d.ndim > 1:
                state["row_var"] = from_value(array_module(d).zeros(d.shape[:-1] + (1,), d.dtype))
                state["col_var"] = from_value(
                    array_module(d).zeros(d.shape[:-2] + (1, d.shape[-1]), d.dtype)
                )
            else:
                state["variance"] = _zeros(parameter)
            return
        if d.ndim >= 2:
            state["exp_avg_sq_row"] = from_value(array_module(d).zeros(d.shape[:-1], d.dtype))
            state["exp_avg_sq_col"] = from_value(
                array_module(d).zeros(d.shape[:-2] + d.shape[-1:], d.dtype)
            )
        else:
            state["exp_avg_sq"] = _zeros(parameter)
        if self._group.get("beta_1") is not None:
            state["exp_avg"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adafactor update of ``parameter`` (MLX's or PyTorch's variant)."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        t = int(self._count(state))  # a NumPy integer would make the float32 state float64
        if self._torch:
            return from_value(self._torch_update(hp, g, w, t, state))
        eps1, eps2 = hp["eps"]
        rms_w = math.sqrt(float(xp.mean(w * w))) if w.size else 0.0
        if hp["relative_step"]:
            min_step = 1e-6 * t if hp["warmup_init"] else 1e-2
            rel = min(min_step, 1 / math.sqrt(t))
        else:
            rel = float(hp["lr"])
        lr = rel * (max(eps2, rms_w) if hp["scale_parameter"] else 1.0)
        beta2 = 1.0 - t ** hp["decay_rate"]
        upd = g * g + eps1
        if g.ndim >= 2:
            row = state["exp_avg_sq_row"]._data * beta2 + (1 - beta2) * xp.mean(upd, axis=-1)
            col = state["exp_avg_sq_col"]._data * beta2 + (1 - beta2) * xp.mean(upd, axis=-2)
            state["exp_avg_sq_row"] = from_value(row)
            state["exp_avg_sq_col"] = from_value(col)
            upd = self._approximate_exp_moving_avg(row, col) * g
        else:
            v = state["exp_avg_sq"]._data * beta2 + (1 - beta2) * upd
            state["exp_avg_sq"] = from_value(v)
            upd = g / xp.sqrt(v)
        rms_u = math.sqrt(float(xp.mean(upd * upd))) if upd.size else 0.0
        upd = upd * (lr / max(1.0, rms_u / hp["clip_threshold"]))
        if hp["beta_1"] is not None:
            b = hp["beta_1"]
            upd = state["exp_avg"]._data * b + (1 - b) * upd
            state["exp_avg"] = from_value(upd)
        if hp["weight_decay"]:
            w = w - w * (hp["weight_decay"] * lr)
        return from_value(w - upd)

    @staticmethod
    def _approximate_exp_moving_avg(exp_avg_sq_row, exp_avg_sq_col):
        """MLX's factored estimate of ``1 / sqrt(E[g^2])``: a separable outer product.

        ``r = 1 / sqrt(row / mean(row))`` and ``c = 1 / sqrt(col)`` combine as ``r c^T`` (per
        leading batch index). Takes and returns NumPy values or chainrule arrays alike.
        """
        row = getattr(exp_avg_sq_row, "_data", exp_avg_sq_row)
        col = getattr(exp_avg_sq_col, "_data", exp_avg_sq_col)
        r = 1 / xp.sqrt(row / xp.mean(row, axis=-1, keepdims=True))
        c = 1 / xp.sqrt(col)
        out = r[..., :, None] * c[..., None, :]
        return out if row is exp_avg_sq_row else from_value(out)

    @staticmethod
    def _torch_update(hp: dict, g, w, t: int, state: dict):
        eps1, eps2 = hp["eps"]
        if eps1 is None:
            eps1 = float(xp.finfo(w.dtype).eps)
        lr = float(hp["lr"])
        one_minus_beta2 = t ** hp["beta2_decay"]
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps2, float(xp.linalg.norm(w)) / math.sqrt(w.size)) * rho
        if hp["weight_decay"]:
            w = w * (1 - lr * hp["weight_decay"])
        g2 = g * g
        if g.ndim > 1:
            row = state["row_var"]._data
            col = state["col_var"]._data
            row = row + one_minus_beta2 * (xp.mean(g2, axis=-1, keepdims=True) - row)
            col = col + one_minus_beta2 * (xp.mean(g2, axis=-2, keepdims=True) - col)
            state["row_var"] = from_value(row)
            state["col_var"] = from_value(col)
            var = row @ col
            var /= xp.maximum(xp.mean(row, axis=-2, keepdims=True), eps1)
        else:
            var = state["variance"]._data
            var = var + one_minus_beta2 * (g2 - var)
            state["variance"] = from_value(var)
        upd = g / xp.sqrt(xp.maximum(var, eps1 * eps1))
        denom = max(1.0, float(xp.linalg.norm(upd)) / (math.sqrt(upd.size) * hp["d"]))
        return w - (alpha / denom) * upd


def _newton_schulz(x, coefficients, steps: int, eps: float, clamp: bool):
    """Approximately orthogonalise a matrix (``U V^T`` of its SVD) by a quintic iteration."""
    a, b, c = coefficients
    dtype = x.dtype
    x = x.astype(xp.promote_types(dtype, xp.float32))
    norm = float(xp.linalg.norm(x))
    x = x / (max(norm, eps) if clamp else norm + eps)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    if transposed:
        x = x.T
    return x.astype(dtype, copy=False)


class Muon(_Standard):
    r"""Muon: momentum whose update is orthogonalised by Newton-Schulz iterations
    (MLX ``optimizers.Muon``, ``torch.optim.Muon``).

    For parameters of two or more dimensions (flattened to ``(shape[0], -1)``) the momentum
    update is replaced by an approximation of its nearest orthogonal matrix and the step is
    scaled by :math:`\sqrt{\max(1, A / B)}`; smaller parameters take the plain momentum step.

    MLX style: ``Muon(learning_rate, momentum=0.95, weight_decay=0.01, nesterov=True,
    ns_steps=5)``, weight decay added to the gradient. PyTorch style: ``Muon(params, lr=1e-3,
    weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315),
    eps=1e-7, ns_steps=5, adjust_lr_fn=None)``, 2-D parameters only, decoupled weight decay.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        momentum: The momentum coefficient.
        weight_decay: The weight decay.
        nesterov: Nesterov momentum.
        ns_steps: The number of Newton-Schulz iterations.
        ns_coefficients: The coefficients of the quintic iteration.
        eps: Stabiliser of the normalisation before the iteration.
        adjust_lr_fn: ``None`` / ``"original"`` (:math:`\sqrt{\max(1, A/B)}`) or
            ``"match_rms_adamw"`` (:math:`0.2 \sqrt{\max(A, B)}`).
    """

    _mlx_args = ("momentum", "weight_decay", "nesterov", "ns_steps")
    _torch_args = (
        "weight_decay",
        "momentum",
        "nesterov",
        "ns_coefficients",
        "eps",
        "ns_steps",
        "adjust_lr_fn",
    )
    _mlx_defaults = {
        "momentum": 0.95,
        "weight_decay": 0.01,
        "nesterov": True,
        "ns_steps": 5,
        "ns_coefficients": (3.4445, -4.7750, 2.0315),
        "eps": 1e-7,
        "adjust_lr_fn": None,
    }
    _torch_defaults = {**_mlx_defaults, "weight_decay": 0.1}
    _torch_names = {"v": "momentum_buffer"}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        if self._torch:
            _check_lr(who, hp["lr"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        _positive(who, "eps", hp["eps"])
        if len(hp["ns_coefficients"]) != 3:
            raise ValueError(
                f"{who}: ns_coefficients must be three numbers, got {hp['ns_coefficients']!r}"
            )
        if hp["adjust_lr_fn"] not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"{who}: unknown adjust_lr_fn {hp['adjust_lr_fn']!r}")

    def _check_param(self, parameter: array) -> None:
        if parameter.ndim != 2:
            raise ValueError(
                f"Muon: PyTorch-style Muon only takes 2-D parameters, got shape "
                f"{parameter.shape}; optimise the others with AdamW"
            )

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero momentum buffer ``v``."""
        k = self._k
        state[k["v"]] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Muon update of ``parameter``; keeps the momentum in ``state["v"]``."""
        k = self._k
        hp = self._group
        g, w = gradient._data, parameter._data
        lr = float(hp["lr"])
        mu, wd = hp["momentum"], hp["weight_decay"]
        if wd and not self._torch:
            g = g + wd * w
        v = state[k["v"]]._data * mu
        v += (1 - mu) * g
        state[k["v"]] = from_value(v)
        upd = (1 - mu) * g + mu * v if hp["nesterov"] else v
        scale = 1.0
        if upd.ndim >= 2:
            shape = upd.shape
            mat = _newton_schulz(
                upd.reshape(shape[0], -1),
                hp["ns_coefficients"],
                hp["ns_steps"],
                hp["eps"],
                self._torch,
            )
            rows, cols = mat.shape
            upd = mat.reshape(shape)
            if hp["adjust_lr_fn"] == "match_rms_adamw":
                scale = 0.2 * math.sqrt(max(rows, cols))
            else:
                scale = math.sqrt(max(1.0, rows / cols))
        if wd and self._torch:
            w = w * (1 - lr * wd)
        return from_value(w - (lr * scale) * upd)


# -- combining optimizers ------------------------------------------------------------------------


class MultiOptimizer(Optimizer):
    """Several optimizers, each for the parameters its filter selects (MLX).

    Args:
        optimizers: The optimizers; the last one takes every parameter no filter claimed.
        filters: ``len(optimizers) - 1`` predicates ``filter(path, gradient) -> bool``.
    """

    def __init__(self, optimizers: list[Optimizer], filters: list[Callable] = ()) -> None:
        super().__init__()
        if len(filters) != len(optimizers) - 1:
            raise ValueError(
                f"MultiOptimizer: {len(optimizers)} optimizers need {len(optimizers) - 1} "
                f"filters, got {len(filters)}"
            )
        self.optimizers = list(optimizers)
        self.filters = list(filters) + [lambda *args, **kwargs: True]
        self._torch = any(o._torch for o in self.optimizers)

    def _split(self, gradients):
        if len(self.optimizers) == 1:
            return [gradients]
        parts: list[list] = [[] for _ in self.optimizers]
        for path, g in tree_flatten(gradients):
            for i, keep in enumerate(self.filters):
                if keep(path, g):
                    parts[i].append((path, g))
                    break
        return [tree_unflatten(p) for p in parts]

    def init(self, parameters: Any) -> None:
        """Initialise each optimizer with its share of ``parameters``."""
        for o, p in zip(self.optimizers, self._split(parameters)):
            o.init(p)

    def apply_gradients(self, gradients: Any, parameters: Any) -> Any:
        """Apply each optimizer to its share of ``gradients`` and merge the results."""
        tree: Any = {}
        for o, g in zip(self.optimizers, self._split(gradients)):
            tree = pytree.merge(tree, o.apply_gradients(g, parameters))
        return tree

    def update(self, model: Any, gradients: Any) -> None:
        """Apply ``gradients`` to ``model`` through each optimizer."""
        model.update(self.apply_gradients(gradients, model))

    @property
    def state(self) -> dict:
        """``{"states": [state of each optimizer]}``."""
        return {"states": [o.state for o in self.optimizers]}

    @state.setter
    def state(self, state: dict) -> None:
        if "states" not in state or len(state["states"]) != len(self.optimizers):
            raise ValueError(
                f"MultiOptimizer: expected {{'states': [...]}} with {len(self.optimizers)} states"
            )
        for o, s in zip(self.optimizers, state["states"]):
            o.state = s

    @property
    def learning_rate(self):
        """The first optimizer's learning rate; setting it sets every optimizer's."""
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        for o in self.optimizers:
            o.learning_rate = value

    @property
    def param_groups(self) -> list[dict]:
        """The parameter groups of every PyTorch-style optimizer, in order."""
        return [g for o in self.optimizers for g in o.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:
        pass  # the groups belong to the wrapped optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every wrapped optimizer's parameters."""
        for o in self.optimizers:
            o.zero_grad(set_to_none)

    def _step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for o in self.optimizers:
            o._step(None)
        return loss


def clip_grad_norm(grads: Any, max_norm: float) -> tuple[Any, array]:
    """Rescale a gradient tree so that its global L2 norm is at most ``max_norm`` (MLX).

    Args:
        grads: A tree of gradients.
        max_norm: The largest allowed global norm (>= 0).

    Returns:
        ``(clipped_grads, total_norm)``: the rescaled tree and the norm before clipping.

    Raises:
        ValueError: for a negative ``max_norm``.
    """
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm: max_norm should be >=0, got {max_norm}")
    leaves = pytree.leaves(grads)
    norm_squared: Any = 0.0
    for g in leaves:
        norm_squared = norm_squared + mx.sum(mx.square(g))
    total_norm = mx.sqrt(_as_array(norm_squared))
    normalizer = max_norm / (total_norm + 1e-6)
    # one scalar picks the factor (1 keeps the gradient as it is, exactly): a multiply per
    # leaf instead of a multiply and an elementwise where
    scale = mx.where(total_norm < max_norm, 1.0, normalizer)

    def clipper(g):
        return g * scale

    return pytree.map(clipper, grads), total_norm
