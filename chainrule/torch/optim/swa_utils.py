"""``torch.optim.swa_utils``: weight averaging (SWA, EMA), ``update_bn`` and ``SWALR``.

``AveragedModel`` keeps a copy of a model whose parameters are the running average of the
model's (SWA) or an exponential moving average (EMA, with ``get_ema_multi_avg_fn``);
``update_bn`` recomputes BatchNorm statistics for the averaged weights with one pass over the
data; ``SWALR`` anneals each group's learning rate to a constant ``swa_lr``. The averages are
PyTorch's formulas (its ``lerp`` and ``(current - average) / (n + 1)``), and the parameters are
updated through the tensors' in-place methods, so the copy's handles stay the same objects.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import chainrule.core as mx
from chainrule.nn import BatchNorm
from chainrule.optimizers import Optimizer
from chainrule.optimizers.lr_scheduler import LRScheduler

from ..nn import Module

__all__ = [
    "SWALR",
    "AveragedModel",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "update_bn",
]


def _lerp(start: mx.array, end: mx.array, weight: float) -> mx.array:
    """PyTorch's ``lerp`` (its two formulas, split at weight 0.5)."""
    if weight < 0.5:
        return start + (end - start) * weight
    return end - (end - start) * (1 - weight)


def _floating(x: mx.array) -> bool:
    return mx.issubdtype(x.dtype, mx.inexact)


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """An EMA update of lists of parameters in place: ``ema = decay * ema + (1 - decay) * w``.

    Args:
        decay: The decay rate, in ``[0, 1]``.

    Returns:
        ``update(ema_params, current_params, num_averaged)``.
    """
    _check_decay(decay)

    def ema_update(ema_params: list, current_params: list, _num_averaged: Any) -> None:
        with mx.no_grad():
            floating = _floating(ema_params[0])
            for ema, cur in zip(ema_params, current_params):
                if floating:
                    ema.copy_(_lerp(ema, cur, 1 - decay))
                else:
                    ema.copy_(ema * decay + cur * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """A running-average update of lists of parameters in place (``1 / (n + 1)`` weights).

    Returns:
        ``update(averaged_params, current_params, num_averaged)``.
    """

    def swa_update(averaged_params: list, current_params: list, num_averaged: Any) -> None:
        with mx.no_grad():
            n = float(num_averaged.item() if isinstance(num_averaged, mx.array) else num_averaged)
            floating = _floating(averaged_params[0])
            for avg, cur in zip(averaged_params, current_params):
                if floating:
                    avg.copy_(_lerp(avg, cur, 1 / (n + 1)))
                else:
                    avg.copy_(avg + (cur - avg) / (num_averaged + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """An EMA of one parameter: ``decay * ema + (1 - decay) * current`` (a new value).

    Args:
        decay: The decay rate, in ``[0, 1]``.

    Returns:
        ``avg(ema_param, current_param, num_averaged)``.
    """
    _check_decay(decay)

    def ema_update(ema_param: mx.array, current_param: mx.array, num_averaged: Any) -> mx.array:
        with mx.no_grad():
            return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable:
    """The running average of one parameter: ``avg + (current - avg) / (n + 1)``.

    Returns:
        ``avg(averaged_param, current_param, num_averaged)``.
    """

    def swa_update(averaged: mx.array, current: mx.array, num_averaged: Any) -> mx.array:
        with mx.no_grad():
            return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


def _params(model: Any, buffers: bool) -> list:
    out = [p for _, p in model.named_parameters()]
    if buffers:
        out += [b for _, b in model.named_buffers()]
    return out


class AveragedModel(Module):
    """A copy of ``model`` whose parameters average the model's (SWA by default, or EMA).

    Args:
        model: The model to average (deep-copied).
        device: Accepted; the CPU is the only device.
        avg_fn: ``avg(averaged, current, n) -> new`` per parameter.
        multi_avg_fn: ``update(averaged_list, current_list, n)`` in place.
        use_buffers: Average the buffers too (else they are copied from the model).
    """

    def __init__(
        self,
        model: Any,
        device: Any = None,
        avg_fn: Callable | None = None,
        multi_avg_fn: Callable | None = None,
        use_buffers: bool = False,
    ) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        self.register_buffer("n_averaged", mx.array(0, dtype=mx.int64))
        object.__setattr__(self, "avg_fn", avg_fn)
        object.__setattr__(self, "multi_avg_fn", multi_avg_fn)
        object.__setattr__(self, "use_buffers", use_buffers)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the averaged copy."""
        return self.module(*args, **kwargs)

    def update_parameters(self, model: Any) -> None:
        """Fold ``model``'s current parameters into the average (copy them the first time).

        Args:
            model: The model being trained (the same architecture).
        """
        mine = _params(self.module, self.use_buffers)
        theirs = [p.detach() for p in _params(model, self.use_buffers)]
        n = self["n_averaged"]
        count = int(n.item())
        with mx.no_grad():
            if count == 0:
                for avg, cur in zip(mine, theirs):
                    avg.copy_(cur)
            else:
                pairs = list(zip(mine, theirs))
                if self.multi_avg_fn is not None:
                    self.multi_avg_fn([a for a, _ in pairs], [c for _, c in pairs], n)
                else:
                    avg_fn = self.avg_fn or get_swa_avg_fn()
                    for avg, cur in pairs:
                        avg.copy_(avg_fn(avg.detach(), cur, n))
            if not self.use_buffers:
                for (_, mine_b), (_, theirs_b) in zip(
                    self.module.named_buffers(), model.named_buffers()
                ):
                    mine_b.copy_(theirs_b.detach())
            n.copy_(n + 1)


def update_bn(loader: Iterable[Any], model: Any, device: Any = None) -> None:
    """Recompute the running statistics of ``model``'s BatchNorm layers with one pass over
    ``loader`` (a cumulative average over its batches, as PyTorch's ``update_bn``).

    Args:
        loader: Batches: tensors, or lists/tuples whose first element is the input.
        model: The model (for instance an ``AveragedModel``).
        device: Accepted; the CPU is the only device.
    """
    momenta = {}
    for module in model.modules():
        if isinstance(module, BatchNorm) and "running_mean" in module:
            with mx.no_grad():
                module.running_mean.copy_(mx.zeros_like(module.running_mean))
                module.running_var.copy_(mx.ones_like(module.running_var))
                if "num_batches_tracked" in module:
                    module.num_batches_tracked.copy_(mx.zeros_like(module.num_batches_tracked))
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    try:
        with mx.no_grad():
            for batch in loader:
                if isinstance(batch, (list, tuple)):
                    batch = batch[0]
                model(batch)
    finally:
        for module, momentum in momenta.items():
            module.momentum = momentum
        model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's learning rate to ``swa_lr`` over ``anneal_epochs`` epochs.

    Args:
        optimizer: A PyTorch-style optimizer.
        swa_lr: The final learning rate (or one per group).
        anneal_epochs: The length of the annealing. Default: ``10``.
        anneal_strategy: ``"cos"`` or ``"linear"``. Default: ``"cos"``.
        last_epoch: The index of the last epoch.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        swa_lr: float | list[float],
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        last_epoch: int = -1,
    ) -> None:
        groups = optimizer.param_groups
        if isinstance(swa_lr, (list, tuple)):
            if len(swa_lr) != len(groups):
                raise ValueError(
                    f"swa_lr must have the same length as optimizer.param_groups: swa_lr has "
                    f"{len(swa_lr)}, optimizer.param_groups has {len(groups)}"
                )
            lrs = list(swa_lr)
        else:
            lrs = [swa_lr] * len(groups)
        for lr, group in zip(lrs, groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def get_lr(self) -> list[float]:
        """The learning rates of the annealing at the current step."""
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use "
                "`get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        groups = self.optimizer.param_groups
        prev = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, prev)]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer and the annealing function."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore attributes saved by :meth:`state_dict`."""
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
