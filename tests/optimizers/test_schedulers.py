"""MLX's learning-rate schedules (chainrule.optimizers.schedulers) against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.optimizers as optim
from chainrule.optimizers import schedulers

SCHEDULES = {
    "exponential_decay": (
        lambda: optim.exponential_decay(0.1, 0.9),
        lambda s: 0.1 * 0.9**s,
    ),
    "step_decay": (
        lambda: optim.step_decay(0.1, 0.9, 10),
        lambda s: 0.1 * 0.9 ** (s // 10),
    ),
    "cosine_decay": (
        lambda: optim.cosine_decay(0.1, 40, end=0.01),
        lambda s: 0.01 + 0.5 * (1 + math.cos(math.pi * min(s, 40) / 40)) * 0.09,
    ),
    "linear_schedule": (
        lambda: optim.linear_schedule(0.0, 0.1, 20),
        lambda s: 0.1 * min(s, 20) / 20,
    ),
    "join_schedules": (
        lambda: optim.join_schedules(
            [optim.linear_schedule(0.0, 0.1, 10), optim.cosine_decay(0.1, 30)], [10]
        ),
        lambda s: 0.01 * s if s < 10 else 0.05 * (1 + math.cos(math.pi * min(s - 10, 30) / 30)),
    ),
}


def test_every_schedule_is_tested():
    assert set(schedulers.__all__) == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_formula(name):
    make, formula = SCHEDULES[name]
    schedule = make()
    for s in [0, 1, 5, 9, 10, 11, 25, 39, 40, 41, 100]:
        got = schedule(mx.array(s, dtype=mx.uint64))
        assert float(got) == pytest.approx(formula(s), rel=1e-5, abs=1e-7), s


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_drives_an_optimizer(name):
    """The optimizer evaluates the schedule at the step count before each update (MLX)."""
    make, formula = SCHEDULES[name]
    opt = optim.SGD(learning_rate=make())
    assert float(opt.learning_rate) == pytest.approx(formula(0), abs=1e-7)
    w = {"w": mx.array(np.zeros(1), dtype=mx.float64)}
    total = 0.0
    for step in range(15):
        w = opt.apply_gradients({"w": mx.array(np.ones(1), dtype=mx.float64)}, w)
        total += formula(step)
        assert float(opt.learning_rate) == pytest.approx(formula(step), rel=1e-5, abs=1e-7)
    assert w["w"].item() == pytest.approx(-total, rel=1e-5)


def test_mlx_documented_examples():
    opt = optim.SGD(learning_rate=optim.exponential_decay(1e-1, 0.9))
    for _ in range(5):
        opt.update({}, {})
    assert opt.learning_rate.item() == pytest.approx(0.06561, rel=1e-5)
    opt = optim.SGD(learning_rate=optim.step_decay(1e-1, 0.9, 10))
    for _ in range(21):
        opt.update({}, {})
    assert opt.learning_rate.item() == pytest.approx(0.081, rel=1e-5)
    opt = optim.Adam(
        learning_rate=optim.join_schedules(
            [optim.linear_schedule(0, 1e-1, steps=10), optim.cosine_decay(1e-1, 200)], [10]
        )
    )
    assert opt.learning_rate.item() == 0.0
    for _ in range(12):
        opt.update({}, {})
    assert opt.learning_rate.item() == pytest.approx(0.0999938, rel=1e-5)


def test_invalid_schedules_are_refused():
    with pytest.raises(ValueError, match="0"):
        optim.linear_schedule(0.0, 1.0, 0)
    with pytest.raises(ValueError, match="boundaries"):
        optim.join_schedules([optim.exponential_decay(1.0, 0.5)] * 2, [])
    with pytest.raises(ValueError, match="at least one"):
        optim.join_schedules([], [])
