"""PyTorch's learning-rate schedulers (chainrule.optimizers.lr_scheduler).

Each scheduler runs next to ``torch.optim.lr_scheduler`` (when PyTorch is installed) and, where
one exists, against its closed form. ``test_every_scheduler_is_in_the_table`` fails when a
scheduler is added without a row.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.optimizers as optim
from chainrule.optimizers import lr_scheduler

BASE_LRS = (0.1, 0.01)
EPOCHS = 19


def _lambda(epoch):
    return 1.0 / (1.0 + epoch)


def _warm_restarts(base, epoch, t0, mult, eta_min):
    """SGDR's closed form: the period holding ``epoch`` and the position in it."""
    n = 0 if epoch < t0 else int(math.log(epoch / t0 * (mult - 1) + 1, mult))
    t_cur = epoch - t0 * (mult**n - 1) / (mult - 1)
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / (t0 * mult**n))) / 2


CASES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, lambda b, e: b * 0.5 ** (e // 3)),
    (
        "MultiStepLR",
        {"milestones": [2, 5, 5, 9], "gamma": 0.3},
        lambda b, e: b * 0.3 ** sum(m <= e for m in [2, 5, 5, 9]),
    ),
    ("ExponentialLR", {"gamma": 0.9}, lambda b, e: b * 0.9**e),
    (
        "CosineAnnealingLR",
        {"T_max": 7, "eta_min": 0.001},
        lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 7)) / 2,
    ),
    ("LambdaLR", {"lr_lambda": _lambda}, lambda b, e: b * _lambda(e)),
    (
        "LinearLR",
        {"start_factor": 0.25, "total_iters": 6},
        lambda b, e: b * (0.25 + 0.75 * min(e, 6) / 6),
    ),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 0.9}, None),  # no closed form in PyTorch
    ("ConstantLR", {"factor": 0.5, "total_iters": 3}, lambda b, e: b * (0.5 if e < 3 else 1)),
    ("PolynomialLR", {"total_iters": 6, "power": 2.0}, lambda b, e: b * (1 - min(e, 6) / 6) ** 2),
    (
        "CosineAnnealingWarmRestarts",
        {"T_0": 3, "T_mult": 2, "eta_min": 0.001},
        lambda b, e: _warm_restarts(b, e, 3, 2, 0.001),
    ),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3, "mode": "triangular2"}, None),
    (
        "CyclicLR",
        {"base_lr": [0.01, 0.001], "max_lr": 0.2, "step_size_up": 2, "step_size_down": 5},
        None,
    ),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.1, "mode": "exp_range", "gamma": 0.9}, None),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 20}, None),
    (
        "OneCycleLR",
        {
            "max_lr": [0.5, 0.2],
            "total_steps": 20,
            "anneal_strategy": "linear",
            "three_phase": True,
            "pct_start": 0.25,
        },
        None,
    ),
]


def _ours(opt_name="SGD", **kw):
    params = [mx.array(np.ones(2), requires_grad=True) for _ in BASE_LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)]
    kw = {"momentum": 0.9, **kw} if opt_name == "SGD" else kw
    return getattr(optim, opt_name)(groups, **kw), params


def _theirs(torch, opt_name="SGD", **kw):
    params = [torch.ones(2, requires_grad=True) for _ in BASE_LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)]
    kw = {"momentum": 0.9, **kw} if opt_name == "SGD" else kw
    return getattr(torch.optim, opt_name)(groups, **kw), params


def _train(opt, params, scheduler, grad):
    lrs, momenta = [scheduler.get_last_lr()], []
    for _ in range(EPOCHS):
        for p in params:
            p.grad = grad(p)
        opt.step()
        scheduler.step()
        lrs.append(list(scheduler.get_last_lr()))
        momenta.append([g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
    return np.array(lrs, dtype=float), momenta


def test_every_scheduler_is_in_the_table():
    tested = {name for name, _, _ in CASES} | {"ReduceLROnPlateau", "LRScheduler"}
    # made of other schedulers: compared with PyTorch in tests/torch/test_optim_state.py
    tested |= {"SequentialLR", "ChainedScheduler"}
    assert set(lr_scheduler.__all__) == tested


@pytest.mark.parametrize(("name", "kwargs", "closed"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_scheduler_matches_torch(name, kwargs, closed, opt_name):
    torch = pytest.importorskip("torch")
    opt, params = _ours(opt_name)
    ours, our_m = _train(opt, params, getattr(lr_scheduler, name)(opt, **kwargs), mx.ones_like)
    topt, tparams = _theirs(torch, opt_name)
    theirs, their_m = _train(
        topt, tparams, getattr(torch.optim.lr_scheduler, name)(topt, **kwargs), torch.ones_like
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.array(our_m, float), np.array(their_m, float), rtol=1e-12)
    np.testing.assert_allclose(
        [p.numpy() for p in params], [p.detach().numpy() for p in tparams], rtol=1e-5
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "closed"), [c for c in CASES if c[2]], ids=[c[0] for c in CASES if c[2]]
)
def test_scheduler_matches_closed_form(name, kwargs, closed):
    opt, params = _ours()
    scheduler = getattr(lr_scheduler, name)(opt, **kwargs)
    lrs, _ = _train(opt, params, scheduler, mx.ones_like)
    for epoch, row in enumerate(lrs[: kwargs.get("T_max", EPOCHS) + 1]):
        np.testing.assert_allclose(row, [closed(b, epoch) for b in BASE_LRS], rtol=1e-10)
    assert [g["lr"] for g in opt.param_groups] == scheduler.get_last_lr()
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)
    scheduler.step(epoch=4)  # the deprecated jump uses the closed form
    np.testing.assert_allclose(scheduler.get_last_lr(), [closed(b, 4) for b in BASE_LRS])


def test_step_lr_decays_group_lr_as_the_seed_expects():
    w = mx.array(np.ones(3), requires_grad=True)
    opt = optim.Adam([w], lr=0.001)
    scheduler = lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    for _ in range(10):
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4, abs=1e-12)
    w.grad = mx.ones(3)
    opt.step()  # the optimizer uses the decayed rate
    np.testing.assert_allclose(w.numpy(), 1 - 1e-4, rtol=1e-5)


METRICS = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]


def _plateau(module, opt):
    scheduler = module.ReduceLROnPlateau(
        opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.02, 0.001], threshold=0.01
    )
    out = []
    for m in METRICS:
        scheduler.step(m)
        out.append(list(scheduler.get_last_lr()))
    return np.array(out)


def test_reduce_on_plateau():
    opt, _ = _ours()
    lrs = _plateau(lr_scheduler, opt)
    # three bad epochs (> patience 2) halve the rate: at the 5th metric; then a cooldown epoch,
    # an improvement at the 7th, and halvings at the 10th and 14th (floored by min_lr)
    expect = [0.1] * 4 + [0.05] * 5 + [0.025] * 4 + [0.02] * 2
    np.testing.assert_allclose(lrs[:, 0], expect)
    torch = pytest.importorskip("torch")
    topt, _ = _theirs(torch)
    np.testing.assert_allclose(lrs, _plateau(torch.optim.lr_scheduler, topt), rtol=1e-12)


def test_reduce_on_plateau_max_mode_and_array_metric():
    opt, _ = _ours()
    scheduler = lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=0, factor=0.1)
    scheduler.step(mx.array(1.0))
    scheduler.step(mx.array(0.5))
    assert scheduler.get_last_lr() == pytest.approx([0.01, 0.001])
    with pytest.raises(ValueError, match="1.5"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)


def test_scheduler_state_dict_round_trip():
    opt, _ = _ours()
    scheduler = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        scheduler.step()
    saved = scheduler.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 4
    expect = [scheduler.step() or scheduler.get_last_lr() for _ in range(3)]
    opt2, _ = _ours()
    for g, lr in zip(opt2.param_groups, saved["_last_lr"]):
        g["lr"] = lr
    again = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    again.load_state_dict(saved)
    assert [again.step() or again.get_last_lr() for _ in range(3)] == expect


def test_schedulers_need_a_pytorch_style_optimizer():
    with pytest.raises(TypeError, match="schedule"):
        lr_scheduler.StepLR(optim.Adam(1e-3), step_size=1)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=1)
    opt, _ = _ours()
    with pytest.raises(ValueError, match="lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [_lambda])
    with pytest.raises(ValueError, match="total_steps"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    scheduler.step()
    scheduler.step()
    with pytest.raises(ValueError, match="total_steps"):
        scheduler.step()
