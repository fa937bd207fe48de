"""NAdam and RAdam against real PyTorch over enough steps to reach RAdam's rectified branch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.optimizers as optimizers
import chainrule.torch as torch

STEPS = 12
_rng = np.random.default_rng(3)
W0 = _rng.standard_normal((4, 3))
X = _rng.standard_normal((6, 3))
Y = _rng.standard_normal((6, 4))

CONFIGS = [
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.05, "betas": (0.8, 0.99), "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.9, 0.9), "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "betas": (0.9, 0.9), "weight_decay": 0.1, "decoupled_weight_decay": 1}),
    ("RAdam", {"lr": 0.01, "betas": (0.8, 0.85), "eps": 1e-3, "maximize": True}),
]


def _ours(name, kwargs, dtype, steps=STEPS):
    w = mx.array(W0, dtype=dtype, requires_grad=True)
    opt = getattr(torch.optim, name)([w], **kwargs)
    x, y = mx.array(X, dtype=dtype), mx.array(Y, dtype=dtype)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        mx.mean(mx.square(x @ w.T - y)).backward()
        opt.step()
        out.append(np.array(w))
    return out, opt, w


def _theirs(torch_ref, name, kwargs, dtype, steps=STEPS):
    w = torch_ref.tensor(W0, dtype=dtype, requires_grad=True)
    opt = getattr(torch_ref.optim, name)([w], **kwargs)
    x, y = torch_ref.tensor(X, dtype=dtype), torch_ref.tensor(Y, dtype=dtype)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        ((x @ w.T - y) ** 2).mean().backward()
        opt.step()
        out.append(w.detach().numpy().copy())
    return out, opt


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS)
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_matches_torch_step_for_step(name, kwargs, precision):
    torch_ref = pytest.importorskip("torch")
    ours, _, _ = _ours(name, kwargs, getattr(mx, precision))
    theirs, _ = _theirs(torch_ref, name, kwargs, getattr(torch_ref, precision))
    tol = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **tol[precision])


def test_radam_reaches_its_rectified_branch():
    """With beta2 = 0.9 the variance is tractable (rho_t > 5) from step 6 on: the update
    changes formula, which the comparison above then covers."""
    b2 = 0.9
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, STEPS + 1)]
    assert rho[0] <= 5 < rho[-1]


@pytest.mark.parametrize("name", ["NAdam", "RAdam"])
def test_defaults_and_groups_are_torchs(name):
    torch_ref = pytest.importorskip("torch")
    ours = getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)])
    theirs = getattr(torch_ref.optim, name)([torch_ref.zeros(2, requires_grad=True)])
    assert ours.defaults == theirs.defaults
    assert ours.param_groups[0].keys() == theirs.param_groups[0].keys()


@pytest.mark.parametrize("name", ["NAdam", "RAdam"])
def test_bad_hyper_parameters_are_value_errors(name):
    w = torch.zeros(2, requires_grad=True)
    cls = getattr(torch.optim, name)
    with pytest.raises(ValueError, match="learning rate -1"):
        cls([w], lr=-1)
    with pytest.raises(ValueError, match="beta1"):
        cls([w], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="weight_decay"):
        cls([w], weight_decay=-0.1)
    with pytest.raises(ValueError, match="eps"):
        cls([w], eps=-1e-8)


def test_nadam_mlx_style_updates_a_model():
    nn = pytest.importorskip("chainrule.nn")
    model = nn.Linear(3, 4)
    opt = optimizers.NAdam(learning_rate=0.05)
    x, y = mx.array(X), mx.array(Y)
    loss_and_grad = nn.value_and_grad(model, lambda m: nn.losses.mse_loss(m(x), y))
    first, _ = loss_and_grad(model)
    for _ in range(20):
        loss, grads = loss_and_grad(model)
        opt.update(model, grads)
    assert loss.item() < first.item()
    assert set(opt.state["weight"]) == {"m", "v", "mu_product"}
