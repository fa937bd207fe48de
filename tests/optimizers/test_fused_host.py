"""Adam's update of large float32 host parameters in oneDNN's fused passes (optimizers/
fused_cpu.py, core/onednn.py's ``adam_update``) against the NumPy update and PyTorch.

Each case runs the same steps with oneDNN and inside ``onednn.disabled()`` (the NumPy update,
itself checked against PyTorch in test_fused_updates.py), and counts that oneDNN ran.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
import chainrule.torch as ctorch
from chainrule.core import onednn

pytestmark = [
    pytest.mark.skipif(not onednn.available(), reason=onednn.status()),
    pytest.mark.usefixtures("cpu_default_device"),  # oneDNN serves host arrays only
]

SHAPE = (192, 256)  # 49,152 elements: over onednn.ADAM_MIN_SIZE


@pytest.fixture
def calls(monkeypatch):
    """How many times oneDNN's Adam passes ran."""
    count = [0]
    original = onednn._Adam.__call__

    def counted(self, *args):
        count[0] += 1
        return original(self, *args)

    monkeypatch.setattr(onednn._Adam, "__call__", counted)
    return count


def _close(a, b, rtol=5e-5):
    # (after a step, weights one unit in the last place apart give gradients that differ as
    # much, and Adam's m / sqrt(v) magnifies that where a gradient is near zero)
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert float(np.abs(a - b).max()) <= rtol * max(float(np.abs(b).max()), 1e-6)


def _mlx_steps(make_opt, steps=3, compiled=False):
    """A linear layer trained ``steps`` steps, MLX style: its weight, the moments, the losses."""
    mx.random.seed(0)
    model = nn.Linear(*SHAPE[::-1])
    opt = make_opt()
    x = mx.random.normal((8, SHAPE[1]))
    y = mx.random.normal((8, SHAPE[0]))
    loss_and_grad = nn.value_and_grad(model, lambda m: ((m(x) - y) ** 2).mean())

    def step():
        loss, grads = loss_and_grad(model)
        opt.update(model, grads)
        return loss

    if compiled:
        state = [model.state, opt.state]
        step = mx.compile(step, inputs=state, outputs=state)
    losses = []
    for _ in range(steps):
        losses.append(step().item())
        mx.eval(model.state, opt.state)
    s = opt.state["weight"]
    return [model.weight, s["m"], s["v"], losses]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda: optim.Adam(learning_rate=1e-2),
        lambda: optim.Adam(learning_rate=1e-2, bias_correction=True),
        lambda: optim.AdamW(learning_rate=1e-2, weight_decay=0.1),
    ],
    ids=["adam", "bias_correction", "adamw"],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_mlx_style_adam_matches_the_numpy_update(make_opt, compiled, calls):
    got = _mlx_steps(make_opt, compiled=compiled)
    assert calls[0] >= 1 if compiled else calls[0] == 3  # the weight (the bias is small)
    with onednn.disabled():
        want = _mlx_steps(make_opt, compiled=compiled)
    for a, b in zip(got[:3], want[:3]):
        _close(a, b)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-5)


def _torch_steps(lib, make_opt, steps=3):
    lib.manual_seed(0)
    w0 = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    x = np.random.default_rng(2).standard_normal((8, SHAPE[1])).astype(np.float32)
    w = lib.tensor(w0, requires_grad=True)
    opt = make_opt(lib, [w])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((lib.tensor(x) @ w.T) ** 2).mean()
        loss.backward()
        opt.step()
    st = opt.state[w]
    return [w.detach().numpy(), st["exp_avg"].numpy(), st["exp_avg_sq"].numpy()]


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda T, p: T.optim.Adam(p, lr=1e-2),
        lambda T, p: T.optim.Adam(p, lr=1e-2, weight_decay=0.1, maximize=True),
        lambda T, p: T.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ],
    ids=["adam", "weight_decay_maximize", "adamw"],
)
def test_pytorch_style_adam_matches_pytorch(make_opt, calls):
    real_torch = pytest.importorskip("torch")
    real_torch.set_num_threads(1)
    got = _torch_steps(ctorch, make_opt)
    assert calls[0] == 3
    want = _torch_steps(real_torch, make_opt)
    for a, b in zip(got, want):
        _close(a, b)


def test_moments_update_in_place_only_when_the_state_alone_holds_them(calls):
    w = mx.random.normal(SHAPE)
    opt = optim.Adam(learning_rate=1e-2)
    opt.init({"w": w})
    g = {"w": mx.random.normal(SHAPE)}
    opt.apply_gradients(g, {"w": w})
    buffer = weakref.ref(opt.state["w"]["m"]._data)  # only the state holds it: in place
    opt.apply_gradients(g, {"w": w})
    assert opt.state["w"]["m"]._data is buffer()
    held = opt.state["w"]["m"]  # the user holds the moment: it never changes under them
    before = np.array(held)
    opt.apply_gradients(g, {"w": w})
    assert opt.state["w"]["m"] is not held and np.array_equal(np.array(held), before)
    assert calls[0] == 3  # oneDNN each time: in place, or into new moments


def test_small_other_dtypes_and_amsgrad_keep_the_numpy_update(calls):
    for w, opt in [
        (mx.zeros((100, 100)), optim.Adam(learning_rate=1e-2)),  # 10,000 elements: small
        (mx.zeros(SHAPE, dtype=mx.float64), optim.Adam(learning_rate=1e-2)),
        (mx.zeros(SHAPE, dtype=mx.bfloat16), optim.Adam(learning_rate=1e-2)),
        (mx.zeros(SHAPE), optim.Adam(learning_rate=1e-2, amsgrad=True)),
    ]:
        new = opt.apply_gradients({"w": mx.ones(w.shape, dtype=w.dtype)}, {"w": w})
        assert new["w"].dtype == w.dtype
        step = 1e-2 * 0.1 / np.sqrt(0.001)  # MLX's Adam: no bias correction by default
        np.testing.assert_allclose(np.array(new["w"].astype(mx.float32)), -step, rtol=1e-2)
    assert calls[0] == 0


def test_adam_update_declines_what_it_cannot_take():
    a = np.ones(SHAPE, np.float32)
    assert onednn.adam_serves(a) and not onednn.adam_serves(a[:10])
    assert not onednn.adam_serves(a.astype(np.float64))
    with onednn.disabled():
        assert not onednn.adam_serves(a)
    m = np.zeros((SHAPE[1], SHAPE[0]), np.float32).T  # a transposed view cannot be updated in place
    assert onednn.adam_update(a, a, m, m.copy(), 0.9, 0.999, 1e-8, 1.0, 1e-3, True) is None
    assert onednn.adam_update(a, a[:, :10], a, a, 0.9, 0.999, 1e-8, 1.0, 1e-3, False) is None
    w, m2, v2 = onednn.adam_update(a, a, m, m.copy(), 0.9, 0.999, 1e-8, 1.0, 1e-3, False)
    _close(w, np.full(SHAPE, 1 - 1e-3 * 0.1 / (np.sqrt(0.001) + 1e-8), np.float32), 1e-6)
    assert m2.base is None and np.all(m == 0)  # new moments; the given ones untouched


def test_compiled_steps_reuse_the_moments_only_when_nothing_else_holds_them(calls):
    mx.random.seed(0)
    model = nn.Linear(*SHAPE[::-1])
    opt = optim.Adam(learning_rate=1e-2)
    x = mx.random.normal((8, SHAPE[1]))
    loss_and_grad = nn.value_and_grad(model, lambda m: (m(x) ** 2).mean())

    def step():
        loss, grads = loss_and_grad(model)
        opt.update(model, grads)
        return loss

    state = [model.state, opt.state]
    compiled = mx.compile(step, inputs=state, outputs=state)
    for _ in range(4):  # traced, verified, then replayed with the old moments donated
        compiled()
        mx.eval(model.state, opt.state)
    moment = weakref.ref(opt.state["weight"]["m"]._data)
    compiled()
    mx.eval(model.state, opt.state)
    assert opt.state["weight"]["m"]._data is moment()  # written in place: nobody held it
    held = opt.state["weight"]["v"]._data  # a value the user keeps: it must not change
    before = held.copy()
    compiled()
    mx.eval(model.state, opt.state)
    assert np.array_equal(held, before) and opt.state["weight"]["v"]._data is not held
    assert calls[0] >= 6
