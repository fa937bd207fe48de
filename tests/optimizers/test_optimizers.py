"""Every optimizer of chainrule.optimizers, in both calling styles.

PyTorch style is compared step for step with ``torch.optim`` (when PyTorch is installed); MLX
style with MLX's update formulas, written here in NumPy. ``CASES`` has one row per optimizer;
``test_every_optimizer_is_in_the_table`` fails when an optimizer is added without one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.optimizers as optimizers

# -- the problem: least squares, W (3, 4) and b (3,) ------------------------------------------------

_rng = np.random.default_rng(0)
W0 = _rng.standard_normal((3, 4))
B0 = _rng.standard_normal(3)
X = _rng.standard_normal((5, 4))
Y = _rng.standard_normal((5, 3))
STEPS = 5


def np_grads(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = X @ w.T + b - Y
    k = 2 / r.size
    return k * r.T @ X, k * r.sum(0)


def mx_loss(w, b, x=None, y=None):
    x = mx.array(X, dtype=w.dtype) if x is None else x
    y = mx.array(Y, dtype=w.dtype) if y is None else y
    return mx.mean(mx.square(x @ w.T + b - y))


# -- MLX's formulas in NumPy: (g, w, state, t, **hyper-parameters) -> new w --------------------------


def ref_sgd(g, w, s, t, lr, momentum=0.0, weight_decay=0.0, dampening=0.0, nesterov=False):
    g = g + weight_decay * w
    if momentum <= 0:
        return w - lr * g
    s["v"] = momentum * s.get("v", 0.0) + (1 - dampening) * g
    return w - lr * (g + momentum * s["v"] if nesterov else s["v"])


def ref_adam(g, w, s, t, lr, betas=(0.9, 0.999), eps=1e-8, bias_correction=False):
    b1, b2 = betas
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    if bias_correction:
        return w - lr / (1 - b1**t) * s["m"] / (np.sqrt(s["v"]) / np.sqrt(1 - b2**t) + eps)
    return w - lr * s["m"] / (np.sqrt(s["v"]) + eps)


def ref_adamw(g, w, s, t, lr, weight_decay=0.01, **kw):
    return ref_adam(g, w * (1 - lr * weight_decay), s, t, lr, **kw)


def ref_adamax(g, w, s, t, lr, betas=(0.9, 0.999), eps=1e-8):
    b1, b2 = betas
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = np.maximum(b2 * s.get("v", 0.0), np.abs(g))
    return w - lr * s["m"] / (s["v"] + eps)


def ref_rmsprop(g, w, s, t, lr, alpha=0.99, eps=1e-8):
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    return w - lr * g / (np.sqrt(s["v"]) + eps)


def ref_adagrad(g, w, s, t, lr, eps=1e-8):
    s["v"] = s.get("v", 0.0) + g * g
    return w - lr * g / (np.sqrt(s["v"]) + eps)


def ref_adadelta(g, w, s, t, lr, rho=0.9, eps=1e-6):
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    d = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["v"] + eps) * g
    s["u"] = rho * s.get("u", 0.0) + (1 - rho) * d * d
    return w - lr * d


def ref_lion(g, w, s, t, lr, betas=(0.9, 0.99), weight_decay=0.0):
    b1, b2 = betas
    m = s.get("m", 0.0)
    c = b1 * m + (1 - b1) * g
    s["m"] = b2 * m + (1 - b2) * g
    return w * (1 - lr * weight_decay) - lr * np.sign(c)


def ref_adafactor(
    g,
    w,
    s,
    t,
    lr=None,
    eps=(1e-30, 1e-3),
    clip_threshold=1.0,
    decay_rate=-0.8,
    beta_1=None,
    weight_decay=0.0,
    scale_parameter=True,
    relative_step=True,
    warmup_init=False,
):
    rms = lambda a: np.sqrt(np.mean(a * a))  # noqa: E731
    if relative_step:
        rel = min(1e-6 * t if warmup_init else 1e-2, 1 / np.sqrt(t))
    else:
        rel = lr
    step = rel * (max(eps[1], rms(w)) if scale_parameter else 1.0)
    beta2 = 1 - t**decay_rate
    u = g * g + eps[0]
    if g.ndim >= 2:
        s["row"] = beta2 * s.get("row", 0.0) + (1 - beta2) * u.mean(-1)
        s["col"] = beta2 * s.get("col", 0.0) + (1 - beta2) * u.mean(-2)
        r = 1 / np.sqrt(s["row"] / s["row"].mean(-1, keepdims=True))
        u = np.outer(r, 1 / np.sqrt(s["col"])) * g
    else:
        s["v"] = beta2 * s.get("v", 0.0) + (1 - beta2) * u
        u = g / np.sqrt(s["v"])
    u = step * u / max(1.0, rms(u) / clip_threshold)
    if beta_1 is not None:
        s["m"] = beta_1 * s.get("m", 0.0) + (1 - beta_1) * u
        u = s["m"]
    return w - weight_decay * step * w - u


def _ns5(m, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = m / (np.linalg.norm(m) + 1e-7)
    tr = x.shape[0] > x.shape[1]
    x = x.T if tr else x
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tr else x


def ref_muon(g, w, s, t, lr, momentum=0.95, weight_decay=0.01, nesterov=True, ns_steps=5):
    g = g + weight_decay * w
    s["v"] = momentum * s.get("v", 0.0) + (1 - momentum) * g
    u = g * (1 - momentum) + s["v"] * momentum if nesterov else s["v"]
    if u.ndim < 2:
        return w - lr * u
    return w - lr * math.sqrt(max(1.0, u.shape[0] / u.shape[1])) * _ns5(u, ns_steps)


def _decay(g, w, lr, weight_decay, decoupled_weight_decay):
    if decoupled_weight_decay:
        return g, w * (1 - lr * weight_decay)
    return g + weight_decay * w, w


def ref_nadam(
    g,
    w,
    s,
    t,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
    maximize=False,
):
    """PyTorch's NAdam (Dozat 2016), its mu_product kept in float32 as torch keeps it."""
    g = -g if maximize else g
    g, w = _decay(g, w, lr, weight_decay, decoupled_weight_decay)
    b1, b2 = betas
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    s["mu"] = float(np.float32(s.get("mu", 1.0)) * np.float32(mu))
    denom = np.sqrt(s["v"] / (1 - b2**t)) + eps
    step = lr * (1 - mu) / (1 - s["mu"]) * g + lr * mu_next / (1 - s["mu"] * mu_next) * s["m"]
    return w - step / denom


def ref_radam(
    g,
    w,
    s,
    t,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    decoupled_weight_decay=False,
    maximize=False,
):
    """PyTorch's RAdam (Liu et al. 2019): SGD with momentum until the variance is tractable."""
    g = -g if maximize else g
    g, w = _decay(g, w, lr, weight_decay, decoupled_weight_decay)
    b1, b2 = betas
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1**t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho <= 5:
        return w - lr * m_hat
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    return w - lr * m_hat * r * math.sqrt(1 - b2**t) / (np.sqrt(s["v"]) + eps)


def ref_rprop(g, w, s, t, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False):
    """PyTorch's Rprop: sign-driven per-weight step sizes."""
    g = -g if maximize else g
    sign = np.sign(g * s.get("prev", np.zeros_like(g)))
    factor = np.where(sign > 0, etas[1], np.where(sign < 0, etas[0], 1.0))
    s["size"] = np.clip(s.get("size", np.full_like(g, lr)) * factor, *step_sizes)
    s["prev"] = g = np.where(sign < 0, 0.0, g)
    return w - np.sign(g) * s["size"]


def ref_asgd(g, w, s, t, lr, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False):
    """PyTorch's ASGD, its eta and mu rounded to float32 as torch keeps them."""
    g = -g if maximize else g
    g = g + weight_decay * w
    eta, mu = s.get("eta", float(np.float32(lr))), s.get("mu", 1.0)
    w = w * (1 - lambd * eta) - eta * g
    s["ax"] = s["ax"] + (w - s["ax"]) * mu if mu != 1 else w
    s["eta"] = float(np.float32(lr / (1 + lambd * lr * t) ** alpha))
    s["mu"] = float(np.float32(1 / max(1.0, t - t0)))
    return w


# -- the table ----------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    name: str  # attribute of chainrule.optimizers
    ref: Callable  # MLX's formula
    mlx: list  # MLX-style keyword sets (learning rates exact in float32)
    torch: list  # PyTorch-style keyword sets
    torch_name: str | None = None  # torch.optim class; None: compare with ``ref`` instead
    torch_ref_defaults: dict = field(default_factory=dict)  # ``ref`` options for that case
    only_2d: bool = False  # PyTorch's class takes 2-D parameters only


CASES = [
    Case(
        "SGD",
        "SGD",
        ref_sgd,
        [
            {"learning_rate": 0.125},
            {"learning_rate": 0.125, "momentum": 0.9, "weight_decay": 0.01, "dampening": 0.2},
            {"learning_rate": 0.0625, "momentum": 0.5, "nesterov": True},
        ],
        [
            {"lr": 0.1},
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01},
            {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True},
        ],
        "SGD",
    ),
    Case(
        "Adam",
        "Adam",
        ref_adam,
        [
            {"learning_rate": 0.03125},
            {"learning_rate": 0.03125, "betas": [0.5, 0.75], "bias_correction": True},
        ],
        [
            {"lr": 0.05},
            {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1, "amsgrad": True},
            {"lr": 0.05, "eps": 1e-3, "maximize": True},
        ],
        "Adam",
    ),
    Case(
        "AdamW",
        "AdamW",
        ref_adamw,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "weight_decay": 0.5}],
        [{"lr": 0.05}, {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}],
        "AdamW",
    ),
    Case(
        "Adamax",
        "Adamax",
        ref_adamax,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "betas": [0.5, 0.75]}],
        [{}, {"lr": 0.05, "weight_decay": 0.1, "betas": (0.8, 0.9)}],
        "Adamax",
    ),
    Case(
        "RMSprop",
        "RMSprop",
        ref_rmsprop,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "alpha": 0.5, "eps": 1e-4}],
        [
            {},
            {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.1},
            {"lr": 0.01, "centered": True, "momentum": 0.3},
        ],
        "RMSprop",
    ),
    Case(
        "Adagrad",
        "Adagrad",
        ref_adagrad,
        [{"learning_rate": 0.125}, {"learning_rate": 0.125, "eps": 1e-3}],
        [{}, {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.2}],
        "Adagrad",
    ),
    Case(
        "AdaDelta",
        "AdaDelta",
        ref_adadelta,
        [{"learning_rate": 1.0}, {"learning_rate": 0.5, "rho": 0.5, "eps": 1e-4}],
        [{}, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}],
        "Adadelta",
    ),
    Case(
        "Lion",
        "Lion",
        ref_lion,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "weight_decay": 0.5}],
        [{}, {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1}],
        None,  # not in PyTorch: the PyTorch style is checked against the same formula
    ),
    Case(
        "Adafactor",
        "Adafactor",
        ref_adafactor,
        [
            {},
            {"learning_rate": 0.03125, "relative_step": False, "beta_1": 0.5},
            {"warmup_init": True, "scale_parameter": False, "weight_decay": 0.1},
        ],
        [{}, {"lr": 0.05, "weight_decay": 0.1, "d": 2.0, "eps": (1e-3, 1e-3)}],
        "Adafactor",
    ),
    Case(
        "Muon",
        "Muon",
        ref_muon,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "nesterov": False}],
        [{"lr": 0.02}, {"lr": 0.02, "nesterov": False, "adjust_lr_fn": "match_rms_adamw"}],
        "Muon",
        only_2d=True,
    ),
    Case(
        "NAdam",
        "NAdam",
        ref_nadam,
        [
            {"learning_rate": 0.03125},
            {"learning_rate": 0.03125, "weight_decay": 0.1, "momentum_decay": 0.01},
        ],
        [
            {},
            {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1, "momentum_decay": 0.01},
            {"lr": 0.05, "weight_decay": 0.2, "decoupled_weight_decay": True, "maximize": True},
        ],
        "NAdam",
    ),
    Case(
        "RAdam",
        "RAdam",
        ref_radam,
        [
            {"learning_rate": 0.03125},
            {"learning_rate": 0.03125, "betas": [0.5, 0.75], "weight_decay": 0.1},
        ],
        [
            {},
            {"lr": 0.05, "betas": (0.5, 0.75), "weight_decay": 0.1},
            {"lr": 0.05, "betas": (0.6, 0.7), "weight_decay": 0.2, "decoupled_weight_decay": True},
        ],
        "RAdam",
    ),
    Case(
        "Rprop",
        "Rprop",
        ref_rprop,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "etas": [0.25, 1.5]}],
        [
            {},
            {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.08)},
            {"lr": 0.05, "maximize": True},
        ],
        "Rprop",
    ),
    Case(
        "ASGD",
        "ASGD",
        ref_asgd,
        [{"learning_rate": 0.03125}, {"learning_rate": 0.03125, "t0": 2, "lambd": 0.1}],
        [
            {},
            {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 2, "weight_decay": 0.1},
            {"lr": 0.05, "t0": 0, "maximize": True},
        ],
        "ASGD",
    ),
]

MLX_CASES = [(c, kw) for c in CASES for kw in c.mlx]
TORCH_CASES = [(c, kw) for c in CASES for kw in c.torch]


def _ids(pairs):
    return [f"{c.id}-{i}" for i, (c, _) in enumerate(pairs)]


def test_every_optimizer_is_in_the_table():
    exported = {
        name
        for name in optimizers.__all__
        if isinstance(getattr(optimizers, name), type)
        and issubclass(getattr(optimizers, name), optimizers.Optimizer)
        and getattr(optimizers, name) not in (optimizers.Optimizer, optimizers.MultiOptimizer)
    }
    assert {getattr(optimizers, n).__name__ for n in exported} == {c.name for c in CASES}


# -- MLX style against MLX's formulas ------------------------------------------------------------


@pytest.mark.parametrize(("case", "kwargs"), MLX_CASES, ids=_ids(MLX_CASES))
def test_mlx_style_matches_mlx_formulas(case: Case, kwargs: dict):
    opt = getattr(optimizers, case.name)(**kwargs)
    params = {"w": mx.array(W0, dtype=mx.float64), "b": mx.array(B0, dtype=mx.float64)}
    grad_fn = mx.grad(lambda p: mx_loss(p["w"], p["b"]))
    hp = {("lr" if k == "learning_rate" else k): v for k, v in kwargs.items()}
    w, b, sw, sb = W0.copy(), B0.copy(), {}, {}
    for t in range(1, STEPS + 1):
        params = opt.apply_gradients(grad_fn(params), params)
        gw, gb = np_grads(w, b)
        w, b = case.ref(gw, w, sw, t, **hp), case.ref(gb, b, sb, t, **hp)
        np.testing.assert_allclose(params["w"].numpy(), w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(params["b"].numpy(), b, rtol=1e-9, atol=1e-12)
    assert int(opt.step.item()) == STEPS
    assert opt.state["step"].item() == STEPS
    assert set(opt.state) >= {"step", "w", "b"}
    assert not (W0 == params["w"].numpy()).all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mlx_style_positional_learning_rate_and_init(case: Case):
    opt = getattr(optimizers, case.name)(0.0625)
    assert opt.learning_rate.item() == 0.0625
    assert opt.learning_rate.dtype == mx.float32
    params = {"layers": [{"w": mx.zeros((2, 3))}, {"w": mx.zeros((3, 2))}], "b": mx.zeros((2,))}
    opt.init(params)
    assert set(opt.state) == {"step", "learning_rate", "layers", "b"}
    assert isinstance(opt.state["layers"], list) and len(opt.state["layers"]) == 2
    assert all(isinstance(v, mx.array) for v in opt.state["b"].values())
    opt.learning_rate = 0.5
    assert opt.learning_rate.item() == 0.5


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_mlx_style_arrays_are_values(case: Case):
    """apply_gradients returns new arrays; the old ones and earlier state are untouched."""
    opt = getattr(optimizers, case.name)(learning_rate=0.0625)
    w = mx.array(W0, requires_grad=True)
    params = {"w": w}
    grads = {"w": mx.array(np.ones_like(W0))}
    new = opt.apply_gradients(grads, params)
    before = {k: v.numpy() for k, v in opt.state["w"].items()}
    held = dict(opt.state["w"])
    new2 = opt.apply_gradients(grads, new)
    np.testing.assert_array_equal(w.numpy(), W0.astype(np.float32))
    assert new["w"] is not w and new2["w"] is not new["w"]
    assert new["w"].requires_grad and new["w"].dtype == mx.float32
    for k, v in held.items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_mlx_style_schedule_as_learning_rate():
    opt = optimizers.SGD(learning_rate=optimizers.exponential_decay(0.1, 0.5))
    assert opt.learning_rate.item() == pytest.approx(0.1)
    params = {"w": mx.array([1.0], dtype=mx.float64)}
    for _ in range(3):
        params = opt.apply_gradients({"w": mx.array([1.0], dtype=mx.float64)}, params)
    # updates used 0.1, 0.05, 0.025; the state holds the rate of the last update
    assert params["w"].item() == pytest.approx(1 - 0.175, rel=1e-6)
    assert opt.learning_rate.item() == pytest.approx(0.025)
    opt.learning_rate = 1.0  # a number replaces the schedule
    params = opt.apply_gradients({"w": mx.array([1.0], dtype=mx.float64)}, params)
    assert params["w"].item() == pytest.approx(1 - 1.175, rel=1e-6)


def test_mlx_style_update_on_a_model():
    nn = pytest.importorskip("chainrule.nn")
    model = nn.Linear(4, 3)
    opt = optimizers.Adam(learning_rate=0.01)
    x, y = mx.array(X), mx.array(Y)
    loss_and_grad = nn.value_and_grad(model, lambda m: nn.losses.mse_loss(m(x), y))
    first, _ = loss_and_grad(model)
    for _ in range(20):
        loss, grads = loss_and_grad(model)
        opt.update(model, grads)
    assert loss.item() < first.item()
    assert set(opt.state) == {"step", "learning_rate", "weight", "bias"}
    assert opt.step.item() == 20


def test_mlx_style_step_call_explains():
    opt = optimizers.Adam(1e-3)
    with pytest.raises(RuntimeError, match=r"model.parameters\(\)"):
        opt.step()


# -- PyTorch style against torch.optim -----------------------------------------------------------


def _run_ours(case: Case, kwargs: dict, dtype=mx.float64, steps: int = STEPS):
    w = mx.array(W0, dtype=dtype, requires_grad=True)
    b = mx.array(B0, dtype=dtype, requires_grad=True)
    params = [w] if case.only_2d else [w, b]
    opt = getattr(optimizers, case.name)(params, **kwargs)
    x, y = mx.array(X, dtype=dtype), mx.array(Y, dtype=dtype)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        mx_loss(w, b if not case.only_2d else mx.zeros(3, dtype=dtype), x, y).backward()
        opt.step()
        history.append([p.numpy() for p in params])
    return history, params, opt


def _run_torch(torch, case: Case, kwargs: dict, steps: int = STEPS):
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    params = [w] if case.only_2d else [w, b]
    opt = getattr(torch.optim, case.torch_name)(params, **kwargs)
    x, y = torch.tensor(X), torch.tensor(Y)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        bias = b if not case.only_2d else torch.zeros(3, dtype=torch.float64)
        ((x @ w.T + bias - y) ** 2).mean().backward()
        opt.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


def _full_precision_newton_schulz(torch, grad, coefficients, steps, eps):
    a, b, c = coefficients
    x = grad.T if grad.size(0) > grad.size(1) else grad
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if grad.size(0) > grad.size(1) else x


@pytest.mark.parametrize(("case", "kwargs"), TORCH_CASES, ids=_ids(TORCH_CASES))
def test_torch_style_matches_torch(case: Case, kwargs: dict, monkeypatch):
    ours, _, _ = _run_ours(case, kwargs)
    if case.torch_name is None:
        hp = {k: v for k, v in kwargs.items()}
        hp.setdefault("lr", getattr(optimizers, case.name)._torch_lr)
        w, b, sw, sb = W0.copy(), B0.copy(), {}, {}
        for t, (ow, ob) in enumerate(ours, start=1):
            gw, gb = np_grads(w, b)
            w, b = case.ref(gw, w, sw, t, **hp), case.ref(gb, b, sb, t, **hp)
            np.testing.assert_allclose(ow, w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(ob, b, rtol=1e-10, atol=1e-12)
        return
    torch = pytest.importorskip("torch")
    loose = False
    if case.id == "Muon":
        # PyTorch orthogonalises in bfloat16 (NumPy has none): swap in its iteration at full
        # precision when the private hook exists, else compare to 10% of the step
        muon = getattr(torch.optim, "_muon", None)
        if muon is not None and hasattr(muon, "_zeropower_via_newtonschulz"):
            monkeypatch.setattr(
                muon,
                "_zeropower_via_newtonschulz",
                lambda *args: _full_precision_newton_schulz(torch, *args),
            )
        else:
            loose = True
    theirs = _run_torch(torch, case, kwargs)
    for mine, ref in zip(ours, theirs):
        for a, r, p0 in zip(mine, ref, (W0, B0)):
            if loose:
                assert np.abs(a - r).max() <= 0.1 * np.abs(r - p0).max()
            else:
                np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_torch_style_defaults_are_torch(case: Case):
    if case.torch_name is None:
        pytest.skip(f"{case.name} is not in torch.optim")
    torch = pytest.importorskip("torch")
    ours = getattr(optimizers, case.name)([_leaf(2, 2)])
    theirs = getattr(torch.optim, case.torch_name)([torch.zeros(2, 2, requires_grad=True)])
    for k, v in theirs.defaults.items():
        if k in ours.defaults:
            expect = tuple(v) if isinstance(v, (list, tuple)) else v
            got = ours.defaults[k]
            assert (tuple(got) if isinstance(got, (list, tuple)) else got) == expect, k


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_float16_parameters_stay_float16(case: Case, style: str):
    if style == "torch":
        history, params, _ = _run_ours(case, case.torch[0], dtype=mx.float16, steps=3)
        for p in params:
            assert p.dtype == mx.float16 and p.requires_grad and p.is_leaf
        final = history[-1]
    else:
        opt = getattr(optimizers, case.name)(**case.mlx[0])
        params = {"w": mx.array(W0, dtype=mx.float16), "b": mx.array(B0, dtype=mx.float16)}
        grad_fn = mx.grad(lambda p: mx_loss(p["w"], p["b"]))
        for _ in range(3):
            params = opt.apply_gradients(grad_fn(params), params)
        assert all(p.dtype == mx.float16 for p in params.values())
        assert all(v.dtype == mx.float16 for s in ("w", "b") for v in opt.state[s].values())
        final = [p.numpy() for p in params.values()]
    assert all(np.isfinite(f).all() for f in final)
    assert not np.array_equal(final[0], W0.astype(np.float16))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_torch_style_updates_in_place(case: Case):
    """The model's handles see the step; graphs recorded before keep the old values."""
    w = mx.array(W0, dtype=mx.float64, requires_grad=True)
    model = {"w": w}
    opt = getattr(optimizers, case.name)(model, **case.torch[0])
    loss = mx.sum(w * w)  # recorded before the step
    w.grad = mx.array(np.ones_like(W0), dtype=mx.float64)
    opt.step()
    assert model["w"] is w and w.requires_grad and w.is_leaf
    assert not np.array_equal(w.numpy(), W0)
    w.grad = None
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * W0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_torch_style_state_dict_round_trip(case: Case):
    kwargs = case.torch[-1]
    _, params, opt = _run_ours(case, kwargs, steps=3)
    saved = copy.deepcopy(opt.state_dict())
    values = [p.numpy() for p in params]
    assert sorted(saved["state"]) == list(range(len(params)))
    assert saved["param_groups"][0]["params"] == list(range(len(params)))

    def two_more(params, opt):
        for _ in range(2):
            for p in params:
                p.grad = mx.array(np.full(p.shape, 0.3), dtype=p.dtype)
            opt.step()
        return [p.numpy() for p in params]

    expect = two_more(params, opt)
    fresh = [mx.array(v, dtype=mx.float64, requires_grad=True) for v in values]
    opt2 = getattr(optimizers, case.name)(fresh, **kwargs)
    opt2.load_state_dict(saved)
    for a, b in zip(two_more(fresh, opt2), expect):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="parameter group"):
        getattr(optimizers, case.name)(fresh[:1], **kwargs).load_state_dict(
            {"state": {}, "param_groups": saved["param_groups"] * 2}
        )


# -- PyTorch-style bookkeeping ---------------------------------------------------------------------


def _leaf(*shape):
    return mx.array(np.ones(shape), requires_grad=True)


def test_construction_forms():
    w, b = _leaf(2, 2), _leaf(2)
    assert optimizers.SGD([w, b], 0.5, 0.9).param_groups[0]["momentum"] == 0.9
    assert optimizers.SGD(0.5, 0.9).momentum == 0.9  # MLX positional order
    assert optimizers.SGD((p for p in [w, b]), lr=0.5).param_groups[0]["params"] == [w, b]
    assert optimizers.Adam({"layer": {"w": w, "b": b}}, lr=0.1).param_groups[0]["params"] == [w, b]
    assert optimizers.Adam(1e-3, [0.5, 0.6]).betas == [0.5, 0.6]
    assert optimizers.Adam(learning_rate=1e-3).defaults["bias_correction"] is False
    # PyTorch style always corrects the bias, and its groups hold PyTorch's keys only
    assert "bias_correction" not in optimizers.Adam([w], lr=1e-3).defaults
    assert optimizers.Adam(lr=0.25).learning_rate.item() == 0.25
    named = optimizers.Adam([("w", w), ("b", b)], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    groups = optimizers.SGD([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in groups.param_groups] == [0.1, 0.01]
    assert groups.param_groups[1]["momentum"] == 0.9
    assert optimizers.Adam([w], lr=0.1, foreach=True, fused=False).defaults["lr"] == 0.1
    with pytest.raises(TypeError, match="single array"):
        optimizers.Adam(w, lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        optimizers.Adam([], lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'momentum'"):
        optimizers.Adam([w], momentum=0.9)
    with pytest.raises(TypeError, match="learning_rate"):
        optimizers.SGD()
    with pytest.raises(ValueError, match="non-leaf"):
        optimizers.SGD([w * 2], lr=0.1)


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch")
    w, b = mx.array(W0, requires_grad=True), mx.array(B0, requires_grad=True)
    tw, tb = (
        torch.tensor(W0, dtype=torch.float32, requires_grad=True),
        torch.tensor(B0, dtype=torch.float32, requires_grad=True),
    )
    ours = optimizers.Adam([{"params": [w]}, {"params": [b], "lr": 0.1, "betas": (0.5, 0.6)}])
    theirs = torch.optim.Adam([{"params": [tw]}, {"params": [tb], "lr": 0.1, "betas": (0.5, 0.6)}])
    for _ in range(3):
        ours.zero_grad()
        theirs.zero_grad()
        mx_loss(w, b, mx.array(X), mx.array(Y)).backward()
        (
            (
                torch.tensor(X, dtype=torch.float32) @ tw.T
                + tb
                - torch.tensor(Y, dtype=torch.float32)
            )
            ** 2
        ).mean().backward()
        ours.step()
        theirs.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), tb.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_step_skips_parameters_without_gradients():
    w, b = _leaf(2, 2), _leaf(2)
    opt = optimizers.Adam([w, b], lr=0.1)
    w.grad = mx.ones((2, 2))
    opt.step()
    np.testing.assert_array_equal(b.numpy(), np.ones(2))
    assert b not in opt.state and w in opt.state
    assert opt.state[w]["step"] == 1


def test_zero_grad_and_closure():
    w = _leaf(3)
    opt = optimizers.SGD([w], lr=0.5)
    w.grad = mx.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert w.grad is None

    def closure():
        opt.zero_grad()
        loss = mx.sum(w * w)
        loss.backward()
        return loss

    with mx.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 3.0
    np.testing.assert_allclose(w.numpy(), np.zeros(3))


def test_add_param_group():
    w, b = _leaf(2), _leaf(2)
    opt = optimizers.SGD([w], lr=0.1, momentum=0.5)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1] == {**opt.param_groups[1], "params": [b], "momentum": 0.5}
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(ValueError, match="-1"):
        opt.add_param_group({"params": [_leaf(1)], "lr": -1})


def test_learning_rate_attribute_in_both_styles():
    w = _leaf(2)
    opt = optimizers.SGD([w], lr=0.1)
    assert opt.learning_rate == 0.1
    opt.learning_rate = 0.3
    assert opt.param_groups[0]["lr"] == 0.3
    opt.momentum = 0.9  # hyper-parameters are attributes, as in MLX
    assert opt.param_groups[0]["momentum"] == 0.9
    w.grad = mx.ones(2)
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.7, 0.7])


def test_torch_style_update_with_a_gradient_tree():
    w, b = _leaf(2, 2), _leaf(2)
    model = {"w": w, "b": b}
    opt = optimizers.SGD([w], lr=0.5)
    opt.update(model, {"w": mx.ones((2, 2)), "b": mx.ones(2)})
    assert model["w"] is w
    np.testing.assert_allclose(w.numpy(), np.full((2, 2), 0.5))
    np.testing.assert_array_equal(b.numpy(), np.ones(2))  # not in the optimizer


INVALID = [
    ("SGD", {"lr": 0.1, "momentum": -0.5}, "-0.5"),
    ("SGD", {"lr": 0.1, "nesterov": True}, "nesterov"),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "0.1"),
    ("SGD", {"lr": 0.1, "weight_decay": -2.0}, "-2.0"),
    ("Adam", {"lr": 0.1, "eps": -1e-8}, "eps -1e-08"),
    ("Adam", {"lr": 0.1, "betas": (1.0, 0.999)}, "beta1 1.0"),
    ("Adam", {"lr": 0.1, "betas": (0.9, -0.1)}, "beta2 -0.1"),
    ("AdamW", {"lr": 0.1, "eps": -1e-8}, "-1e-08"),
    ("Adamax", {"lr": 0.1, "betas": (0.9, 1.5)}, "1.5"),
    ("RMSprop", {"lr": 0.1, "alpha": -0.1}, "-0.1"),
    ("RMSprop", {"lr": 0.1, "eps": 0.0}, "eps 0.0"),
    ("Adagrad", {"lr": 0.1, "eps": 0.0}, "eps 0.0"),
    ("Adagrad", {"lr": 0.1, "lr_decay": -1.0}, "-1.0"),
    ("AdaDelta", {"lr": 0.1, "rho": 1.5}, "1.5"),
    ("AdaDelta", {"lr": 0.1, "eps": 0.0}, "eps 0.0"),
    ("Lion", {"lr": 0.1, "betas": (0.9, 1.0)}, "beta2 1.0"),
    ("Adafactor", {"lr": 0.1, "eps": (1e-30, 0.0)}, "0.0"),
    ("Muon", {"lr": 0.1, "momentum": -0.9}, "-0.9"),
    ("Muon", {"lr": 0.1, "eps": 0.0}, "eps 0.0"),
]


@pytest.mark.parametrize(("name", "kwargs", "value"), INVALID, ids=[i[0] for i in INVALID])
@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_invalid_hyper_parameters_are_refused(name, kwargs, value, style):
    cls = getattr(optimizers, name)
    with pytest.raises(ValueError, match=value.replace("(", r"\(").replace(".", r"\.")):
        if style == "torch":
            cls([_leaf(2, 2)], **kwargs)
        else:
            cls(**{("learning_rate" if k == "lr" else k): v for k, v in kwargs.items()})


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adafactor"])
def test_learning_rates_are_checked_as_each_library_does(name):
    cls = getattr(optimizers, name)
    # PyTorch refuses a negative rate; MLX takes it (a negative rate ascends)
    with pytest.raises(ValueError, match=r"learning rate -1\.0 \(must be >=0\)"):
        cls([_leaf(2, 2)], lr=-1.0)
    assert cls(learning_rate=-1.0).learning_rate.item() == -1.0
    # Adam's eps may be 0 in both (MLX: "should be >=0"); RMSprop's must be >0
    optimizers.Adam(learning_rate=0.1, eps=0.0)
    with pytest.raises(ValueError, match=">0"):
        optimizers.RMSprop(learning_rate=0.1, eps=0.0)


def test_muon_torch_style_refuses_non_matrices():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        optimizers.Muon([_leaf(3)], lr=0.1)


# -- MultiOptimizer and clipping ------------------------------------------------------------------


def test_multi_optimizer_routes_by_filter():
    params = {"w": mx.array(W0), "b": mx.array(B0)}
    grads = {"w": mx.array(np.ones_like(W0)), "b": mx.array(np.ones_like(B0))}
    sgd, adam = optimizers.SGD(0.5), optimizers.Adam(0.25)
    multi = optimizers.MultiOptimizer([sgd, adam], [lambda path, g: path == "w"])
    new = multi.apply_gradients(grads, params)
    np.testing.assert_allclose(new["w"].numpy(), (W0 - 0.5).astype(np.float32), rtol=1e-6)
    expect_b = B0 - 0.25 * 0.1 / (np.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(new["b"].numpy(), expect_b, rtol=1e-5)
    assert set(multi.state) == {"states"} and "w" in multi.state["states"][0]
    multi.learning_rate = 0.125
    assert sgd.learning_rate.item() == adam.learning_rate.item() == 0.125
    with pytest.raises(ValueError, match="need 2 filters, got 1"):
        optimizers.MultiOptimizer([sgd, adam, sgd], [lambda p, g: True])


def test_clip_grad_norm_matches_numpy():
    grads = {"a": mx.array([3.0, 4.0]), "b": [mx.array([[12.0]])]}
    clipped, norm = optimizers.clip_grad_norm(grads, max_norm=6.5)
    assert norm.item() == pytest.approx(13.0)
    np.testing.assert_allclose(clipped["a"].numpy(), [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"][0].numpy(), [[6.0]], rtol=1e-6)
    same, norm = optimizers.clip_grad_norm(grads, max_norm=20.0)
    np.testing.assert_array_equal(same["a"].numpy(), [3.0, 4.0])


def test_optim_is_the_same_package():
    import chainrule.optim.lr_scheduler as optim_sched

    import chainrule.optim as optim
    from chainrule.optimizers import lr_scheduler

    for name in optimizers.__all__:
        assert getattr(optim, name) is getattr(optimizers, name) or name == "lr_scheduler"
    for name in lr_scheduler.__all__:
        assert getattr(optim_sched, name) is getattr(lr_scheduler, name)
    assert optim.Adadelta is optim.AdaDelta


def test_an_mlx_style_subclass_serves_both_styles():
    """A user's optimizer written the MLX way (init_single / apply_single on arrays)."""

    class PlainSGD(optimizers.Optimizer):
        def __init__(self, learning_rate):
            super().__init__()
            self._maybe_schedule("learning_rate", learning_rate)

        def init_single(self, parameter, state):
            state["seen"] = mx.zeros_like(parameter)

        def apply_single(self, gradient, parameter, state):
            state["seen"] = state["seen"] + 1
            return parameter - self.learning_rate.astype(gradient.dtype) * gradient

    opt = PlainSGD(0.5)
    params = opt.apply_gradients({"w": mx.ones(2)}, {"w": mx.array([1.0, 2.0])})
    np.testing.assert_allclose(params["w"].numpy(), [0.5, 1.5])
    np.testing.assert_array_equal(opt.state["w"]["seen"].numpy(), [1, 1])
    assert opt.step.item() == 1


def test_nn_namespace_reaches_the_optimizers():
    nn = pytest.importorskip("chainrule.nn")
    assert nn.optim.Adam is optimizers.Adam
    assert nn.lr_scheduler.StepLR is optimizers.lr_scheduler.StepLR


def test_update_refuses_gradients_for_unknown_names():
    import chainrule.nn as nn

    model = nn.Linear(2, 2)
    opt = optimizers.SGD(learning_rate=0.1)
    before = np.array(model.weight)
    with pytest.raises(ValueError, match="'nope'"):
        opt.update(model, {"weight": mx.zeros((2, 2)), "nope": mx.zeros(2)})
    np.testing.assert_array_equal(np.array(model.weight), before)


def test_update_refuses_gradients_that_are_not_arrays():
    import chainrule.nn as nn

    model = nn.Linear(2, 2)
    opt = optimizers.SGD(learning_rate=0.1)
    with pytest.raises(TypeError, match="a gradient must be an array"):
        opt.update(model, {"weight": [[0.0, 0.0], [0.0, 0.0]], "bias": mx.zeros(2)})
