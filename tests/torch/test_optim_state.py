"""Optimizer and scheduler state in PyTorch's ``state_dict`` format, through files both ways."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch

_rng = np.random.default_rng(7)
W0 = _rng.standard_normal((4, 3)).astype(np.float32)
B0 = _rng.standard_normal(4).astype(np.float32)
X = _rng.standard_normal((8, 3)).astype(np.float32)
Y = _rng.standard_normal((8, 4)).astype(np.float32)

OPTIMIZERS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "nesterov": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adadelta", {}),
    ("Adamax", {"lr": 0.01}),
    ("NAdam", {"lr": 0.01}),
    ("RAdam", {"lr": 0.01}),
    ("Rprop", {"lr": 0.01, "etas": (0.4, 1.3)}),
    ("ASGD", {"lr": 0.05, "t0": 1, "lambd": 0.01}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]


def _np(x):
    return np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)


def _loss(lib, w, b):
    x, y = lib.tensor(X), lib.tensor(Y)
    return ((x @ w.T + b - y) ** 2).mean()


def _train(lib, opt, params, steps):
    out = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(lib, *params).backward()
        opt.step()
        out.append([_np(p).copy() for p in params])
    return out


def _make(lib, name, kwargs, w=W0, b=B0):
    params = [
        lib.tensor(np.array(w), requires_grad=True),
        lib.tensor(np.array(b), requires_grad=True),
    ]
    return params, getattr(lib.optim, name)(params, **kwargs)


def _norm(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_state_dict_matches_torchs(name, kwargs):
    torch_ref = pytest.importorskip("torch")
    p_ref, o_ref = _make(torch_ref, name, kwargs)
    p, o = _make(torch, name, kwargs)
    _train(torch_ref, o_ref, p_ref, 3)
    _train(torch, o, p, 3)
    theirs, ours = o_ref.state_dict(), o.state_dict()
    assert set(ours) == {"state", "param_groups"}
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for i, ref_state in theirs["state"].items():
        mine = ours["state"][i]
        extra = set(mine) - set(ref_state)
        assert extra <= ({"step"} if name == "SGD" else set()), extra
        assert set(ref_state) <= set(mine)
        for key, ref in ref_state.items():
            got = mine[key]
            if key == "step":
                assert got.shape == () and got.dtype == mx.float32
                assert float(got.item()) == float(ref.item()) == 3.0
            else:
                assert got.dtype == mx.float32 and got.shape == tuple(ref.shape), key
                np.testing.assert_allclose(_np(got), _np(ref), rtol=2e-5, atol=1e-6)
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for g, ref in zip(ours["param_groups"], theirs["param_groups"]):
        assert {k: _norm(v) for k, v in g.items()} == {k: _norm(v) for k, v in ref.items()}


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_torch_state_loads_here_and_training_continues_alike(tmp_path, name, kwargs):
    torch_ref = pytest.importorskip("torch")
    p_ref, o_ref = _make(torch_ref, name, kwargs)
    _train(torch_ref, o_ref, p_ref, 3)
    path = tmp_path / "ckpt.pt"
    torch_ref.save({"w": p_ref[0], "b": p_ref[1], "optim": o_ref.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    params, opt = _make(torch, name, {}, _np(saved["w"]), _np(saved["b"]))
    opt.load_state_dict(saved["optim"])
    assert opt.param_groups[0]["lr"] == o_ref.param_groups[0]["lr"]
    for mine, ref in zip(_train(torch, opt, params, 4), _train(torch_ref, o_ref, p_ref, 4)):
        for a, r in zip(mine, ref):
            np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=IDS)
def test_our_state_loads_in_torch_and_training_continues_alike(tmp_path, name, kwargs):
    torch_ref = pytest.importorskip("torch")
    params, opt = _make(torch, name, kwargs)
    _train(torch, opt, params, 3)
    path = tmp_path / "ours.pt"
    torch.save({"w": params[0], "b": params[1], "optim": opt.state_dict()}, path)
    saved = torch_ref.load(path, weights_only=True)
    p_ref = [saved["w"].detach().requires_grad_(), saved["b"].detach().requires_grad_()]
    o_ref = getattr(torch_ref.optim, name)(p_ref)
    o_ref.load_state_dict(saved["optim"])
    for mine, ref in zip(_train(torch, opt, params, 4), _train(torch_ref, o_ref, p_ref, 4)):
        for a, r in zip(mine, ref):
            np.testing.assert_allclose(a, r, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", ["Adagrad", "Adafactor", "Muon"])
def test_state_and_groups_of_other_optimizers(name):
    torch_ref = pytest.importorskip("torch")
    w_ref = torch_ref.tensor(W0, requires_grad=True)
    w = torch.tensor(W0, requires_grad=True)
    o_ref, o = getattr(torch_ref.optim, name)([w_ref]), getattr(torch.optim, name)([w])
    # PyTorch's Adagrad makes its state in the constructor, the others at the first step
    assert sorted(o.state_dict()["state"]) == sorted(o_ref.state_dict()["state"])
    for _ in range(2):
        for opt, p in ((o_ref, w_ref), (o, w)):
            opt.zero_grad()
            (p * p).sum().backward()
            opt.step()
    theirs, ours = o_ref.state_dict(), o.state_dict()
    assert set(theirs["state"][0]) <= set(ours["state"][0]) <= set(theirs["state"][0]) | {"step"}
    for key, ref in theirs["state"][0].items():
        assert tuple(ours["state"][0][key].shape) == tuple(ref.shape), key
    g, ref = ours["param_groups"][0], theirs["param_groups"][0]
    assert {k: _norm(v) for k, v in g.items()} == {k: _norm(v) for k, v in ref.items()}


def test_plain_sgd_state_from_torch_is_empty_and_loads():
    torch_ref = pytest.importorskip("torch")
    p_ref, o_ref = _make(torch_ref, "SGD", {"lr": 0.1})
    _train(torch_ref, o_ref, p_ref, 2)
    sd = o_ref.state_dict()
    assert sd["state"] == {}
    _, opt = _make(torch, "SGD", {"lr": 0.5})
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.1
    params = [torch.tensor(_np(p), requires_grad=True) for p in p_ref]
    opt = torch.optim.SGD(params, lr=0.5)
    opt.load_state_dict(sd)
    for mine, ref in zip(_train(torch, opt, params, 2), _train(torch_ref, o_ref, p_ref, 2)):
        for a, r in zip(mine, ref):
            np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-7)
    _, o2 = _make(torch, "SGD", {"lr": 0.1})
    o2.load_state_dict(sd)  # the state dict was not changed by loading it
    assert sd["state"] == {} and sd["param_groups"][0]["params"] == [0, 1]


def test_state_follows_the_parameters_dtype_and_step_is_a_count():
    params, opt = _make(torch, "Adam", {"lr": 0.01})
    _train(torch, opt, params, 2)
    sd = copy.deepcopy(opt.state_dict())
    for entry in sd["state"].values():
        entry["exp_avg"] = entry["exp_avg"].astype(mx.float64)
    w64 = [
        torch.tensor(W0.astype(np.float64), requires_grad=True),
        torch.tensor(B0.astype(np.float64), requires_grad=True),
    ]
    o64 = torch.optim.Adam(w64)
    o64.load_state_dict(sd)
    assert o64.state[w64[0]]["exp_avg"].dtype == mx.float64
    assert o64.state_dict()["state"][0]["step"].dtype == mx.float64  # as the parameter's
    _, o32 = _make(torch, "Adam", {})
    o32.load_state_dict(sd)
    state = o32.state_dict()["state"][0]
    assert state["exp_avg"].dtype == mx.float32 and float(state["step"].item()) == 2.0


def test_load_state_dict_refuses_a_mismatch():
    params, opt = _make(torch, "Adam", {"lr": 0.01})
    _train(torch, opt, params, 1)
    sd = opt.state_dict()
    other = torch.optim.Adam([torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="parameter group 0 has 2 parameters"):
        other.load_state_dict(sd)
    two = torch.optim.Adam([{"params": [params[0]]}, {"params": [params[1]]}])
    with pytest.raises(ValueError, match="1 parameter groups, the optimizer has 2"):
        two.load_state_dict(sd)


# -- schedulers ------------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", {"step_size": 2, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 4, 4], "gamma": 0.5}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 5, "eta_min": 0.001}),
    ("LinearLR", {"start_factor": 0.25, "total_iters": 4}),
    ("LambdaLR", {"lr_lambda": lambda e: 0.5**e}),
    ("MultiplicativeLR", {"lr_lambda": lambda e: 0.9}),
    ("ConstantLR", {"factor": 0.5, "total_iters": 3}),
    ("PolynomialLR", {"total_iters": 6, "power": 2.0}),
    ("CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 2, "eta_min": 0.01}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 12}),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, "mode": "triangular2"}),
    ("ReduceLROnPlateau", {"patience": 1, "factor": 0.5}),
    ("SequentialLR", "sequential"),
    ("ChainedScheduler", "chained"),
]
METRICS = [1.0, 0.9, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]


def _sched(lib, name, kwargs):
    w = lib.tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = lib.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = lib.optim.lr_scheduler
    if kwargs == "sequential":
        parts = [sched.LinearLR(opt, 0.2, total_iters=3), sched.ExponentialLR(opt, 0.8)]
        return opt, sched.SequentialLR(opt, parts, milestones=[3])
    if kwargs == "chained":
        parts = [sched.ConstantLR(opt, 0.5, total_iters=4), sched.ExponentialLR(opt, 0.9)]
        return opt, sched.ChainedScheduler(parts, optimizer=opt)
    return opt, getattr(sched, name)(opt, **kwargs)


def _advance(sched, name, steps, start=0):
    lrs = []
    for i in range(start, start + steps):
        if name == "ReduceLROnPlateau":
            sched.step(METRICS[i])
        else:
            sched.optimizer.step()
            sched.step()
        lrs.append(list(sched.get_last_lr()))
    return lrs


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_scheduler_state_dicts_go_both_ways(tmp_path, name, kwargs):
    torch_ref = pytest.importorskip("torch")
    opt_ref, ref = _sched(torch_ref, name, kwargs)
    opt, ours = _sched(torch, name, kwargs)
    np.testing.assert_allclose(_advance(ours, name, 4), _advance(ref, name, 4), rtol=1e-12)
    assert set(ours.state_dict()) == set(ref.state_dict())

    # PyTorch's file into chainrule
    path = tmp_path / "theirs.pt"
    torch_ref.save({"sched": ref.state_dict(), "optim": opt_ref.state_dict()}, path)
    saved = torch.load(path)
    opt2, ours2 = _sched(torch, name, kwargs)
    opt2.load_state_dict(saved["optim"])
    ours2.load_state_dict(saved["sched"])
    # chainrule's file into PyTorch
    path = tmp_path / "ours.pt"
    torch.save({"sched": ours.state_dict(), "optim": opt.state_dict()}, path)
    back = torch_ref.load(path, weights_only=True)
    opt_ref2, ref2 = _sched(torch_ref, name, kwargs)
    opt_ref2.load_state_dict(back["optim"])
    ref2.load_state_dict(back["sched"])

    expect = _advance(ref, name, 6, start=4)
    np.testing.assert_allclose(_advance(ours2, name, 6, start=4), expect, rtol=1e-12)
    np.testing.assert_allclose(_advance(ref2, name, 6, start=4), expect, rtol=1e-12)
    np.testing.assert_allclose(_advance(ours, name, 6, start=4), expect, rtol=1e-12)


def test_swap_in_optimizer_params_and_state_matches_torch():
    torch_ref = pytest.importorskip("torch")

    def run(lib):
        live, opt = _make(lib, "Adam", {"lr": 0.01})
        _train(lib, opt, live, 2)
        before = [_np(p).copy() for p in live]
        other = [lib.tensor(W0 * 2, requires_grad=True), lib.tensor(B0 * 2, requires_grad=True)]
        saved = copy.deepcopy(opt.state_dict())
        saved["param_groups"][0]["lr"] = 0.5
        with lib.optim.swap_in_optimizer_params_and_state(
            opt, {"w": other[0], "b": other[1]}, saved
        ):
            _loss(lib, *other).backward()
            opt.step()
            assert opt.param_groups[0]["lr"] == 0.5
        assert opt.param_groups[0]["lr"] == 0.01
        for p, b in zip(live, before):  # the live parameters did not move
            np.testing.assert_array_equal(_np(p), b)
        return [_np(p) for p in other], saved["state"][0]

    (ours, our_state), (theirs, their_state) = run(torch), run(torch_ref)
    for a, r in zip(ours, theirs):
        np.testing.assert_allclose(a, r, rtol=2e-5, atol=1e-6)
    assert float(our_state["step"].item()) == float(their_state["step"].item()) == 3.0
    np.testing.assert_allclose(_np(our_state["exp_avg"]), _np(their_state["exp_avg"]), rtol=2e-5)
    fresh = torch.optim.Adam([torch.zeros(2, requires_grad=True)])
    with pytest.raises(RuntimeError, match="initialized optimizer state"):
        with torch.optim.swap_in_optimizer_params_and_state(fresh, {}, fresh.state_dict()):
            pass
