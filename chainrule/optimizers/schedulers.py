"""MLX's learning-rate schedules: plain functions of the step count.

A schedule is handed to an MLX-style optimizer in place of a number
(``optim.SGD(learning_rate=optim.cosine_decay(0.1, 1000))``); the optimizer evaluates it at the
current step (an ``array``) before every update and keeps the result in
``optimizer.state["learning_rate"]``. PyTorch-style schedulers that write ``group["lr"]`` live in
:mod:`chainrule.optimizers.lr_scheduler`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .. import core as mx

__all__ = [
    "cosine_decay",
    "exponential_decay",
    "join_schedules",
    "linear_schedule",
    "step_decay",
]

Schedule = Callable[[mx.array], mx.array]


def exponential_decay(init: float, decay_rate: float) -> Schedule:
    """Make an exponential decay schedule: ``init * decay_rate ** step``.

    Args:
        init: The initial value.
        decay_rate: The multiplicative factor applied every step.

    Returns:
        The schedule, a function of the step count.
    """

    def schedule(step):
        return init * decay_rate**step

    return schedule


def step_decay(init: float, decay_rate: float, step_size: int) -> Schedule:
    """Make a step decay schedule: ``init * decay_rate ** (step // step_size)``.

    Args:
        init: The initial value.
        decay_rate: The multiplicative factor applied every ``step_size`` steps.
        step_size: The number of steps between decays.

    Returns:
        The schedule, a function of the step count.
    """
    if step_size < 1:
        raise ValueError(f"step_decay: step_size must be at least 1, got {step_size}")

    def schedule(step):
        return init * (decay_rate ** (step // step_size))

    return schedule


def cosine_decay(init: float, decay_steps: int, end: float = 0.0) -> Schedule:
    """Make a cosine decay schedule from ``init`` to ``end`` over ``decay_steps`` steps.

    Args:
        init: The initial value.
        decay_steps: The number of steps to decay over; the value stays at ``end`` afterwards.
        end: The final value. Default: ``0``.

    Returns:
        The schedule, a function of the step count.
    """
    if decay_steps < 1:
        raise ValueError(f"cosine_decay: decay_steps must be at least 1, got {decay_steps}")

    def schedule(step):
        s = mx.minimum(step, decay_steps)
        decay = 0.5 * (1.0 + mx.cos((math.pi / decay_steps) * s))
        return end + decay * (init - end)

    return schedule


def linear_schedule(init: float, end: float, steps: int) -> Schedule:
    """Make a linear schedule from ``init`` to ``end`` over ``steps`` steps.

    Args:
        init: The initial value.
        end: The final value, kept for every step beyond ``steps``.
        steps: The number of steps of the ramp.

    Returns:
        The schedule, a function of the step count.
    """
    if steps < 1:
        raise ValueError(f"linear_schedule: steps must be at least 1, got {steps}")

    def schedule(step):
        step = mx.minimum(step, steps)
        return step * ((end - init) / steps) + init

    return schedule


def join_schedules(schedules: list[Schedule], boundaries: list[int]) -> Schedule:
    """Chain schedules: schedule ``i + 1`` takes over at ``boundaries[i]``.

    Schedule ``i + 1`` receives the number of steps since its boundary.

    Args:
        schedules: The schedules, at least one.
        boundaries: ``len(schedules) - 1`` step counts at which to switch.

    Returns:
        The joined schedule, a function of the step count.
    """
    if len(schedules) == 0:
        raise ValueError("join_schedules: at least one schedule is needed")
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"join_schedules: {len(schedules)} schedules need {len(schedules) - 1} boundaries, "
            f"got {len(boundaries)}"
        )

    def schedule(step):
        step = mx.array(step) if not isinstance(step, mx.array) else step
        # signed, so that steps before a boundary give negative (unused) counts, not wrap-arounds
        step = step.astype(mx.int64)
        output = schedules[0](step)
        for boundary, later in zip(boundaries, schedules[1:]):
            output = mx.where(step < boundary, output, later(step - boundary))
        return output

    return schedule
