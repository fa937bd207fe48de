"""Optimizer state buffers updated in place (issue 20): values unchanged, references safe.

Adam's moments and SGD's momentum are written in place only while nothing outside the
optimizer's state holds them (``owned_buffer``); a reference the user took, a ``state_dict()``
snapshot, a gradient and an old parameter never change under their holder.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.optimizers.base import owned_buffer

RNG = np.random.default_rng(0)
W0 = RNG.standard_normal((5, 3)).astype(np.float32)
GRADS = [RNG.standard_normal((5, 3)).astype(np.float32) for _ in range(4)]


def _mlx_adam_reference(steps: int, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for g in GRADS[:steps]:
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * m / (np.sqrt(v) + eps)
    return w, m, v


@pytest.mark.host_only  # in-place reuse of host buffers (reference counts of NumPy arrays)
def test_owned_buffer_refuses_buffers_held_elsewhere():
    state = {"m": mx.zeros((3,))}
    assert owned_buffer(state, "m") is not None
    held = state["m"]
    assert owned_buffer(state, "m") is None  # the user holds the handle
    del held
    data = state["m"]._data
    assert owned_buffer(state, "m") is None  # someone holds the buffer itself
    del data
    state["m"] = mx.array(np.zeros(6, np.float32)[::2])  # a view: its base is shared
    assert owned_buffer(state, "m") is None or state["m"]._data.base is None


@pytest.mark.host_only  # in-place reuse of host buffers (reference counts of NumPy arrays)
def test_mlx_adam_updates_moments_in_place_with_the_same_values():
    opt = optim.Adam(learning_rate=1e-2)
    params = {"w": mx.array(W0)}
    opt.init(params)
    buffers = []
    for g in GRADS[:3]:
        params = opt.apply_gradients({"w": mx.array(g)}, params)
        buffers.append(id(opt.state["w"]["m"]._data))
    w, m, v = _mlx_adam_reference(3)
    np.testing.assert_allclose(np.asarray(params["w"]), w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(opt.state["w"]["m"]), m, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(opt.state["w"]["v"]), v, rtol=1e-6, atol=1e-9)
    assert buffers[1] == buffers[2]  # nothing else held it: written in place


def test_a_reference_into_the_state_never_changes():
    opt = optim.Adam(learning_rate=1e-2)
    params = {"w": mx.array(W0)}
    opt.init(params)
    params = opt.apply_gradients({"w": mx.array(GRADS[0])}, params)
    m_ref = opt.state["w"]["m"]
    v_ref = opt.state["w"]["v"]
    m_val, v_val = np.array(m_ref), np.array(v_ref)
    old_params = params
    old_w = np.array(params["w"])
    snapshot = opt.state_dict()
    params = opt.apply_gradients({"w": mx.array(GRADS[1])}, params)
    np.testing.assert_array_equal(np.asarray(m_ref), m_val)
    np.testing.assert_array_equal(np.asarray(v_ref), v_val)
    np.testing.assert_array_equal(np.asarray(snapshot["state"]["w"]["m"]), m_val)
    np.testing.assert_array_equal(np.asarray(old_params["w"]), old_w)
    assert not np.array_equal(np.asarray(opt.state["w"]["m"]), m_val)
    _, m, _ = _mlx_adam_reference(2)
    np.testing.assert_allclose(np.asarray(opt.state["w"]["m"]), m, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_torch_style_adam_matches_pytorch_and_keeps_snapshots(amsgrad):
    torch = pytest.importorskip("torch")
    p = mx.array(W0, requires_grad=True)
    tp = torch.tensor(W0, requires_grad=True)
    opt = optim.Adam([p], lr=1e-2, amsgrad=amsgrad)
    topt = torch.optim.Adam([tp], lr=1e-2, amsgrad=amsgrad)
    snapshots = []
    for g in GRADS:
        p.grad = mx.array(g)
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        sd = opt.state_dict()
        snapshots.append((sd, np.array(sd["state"][0]["exp_avg"])))
    np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    exp_avg = topt.state[tp]["exp_avg"].numpy()
    np.testing.assert_allclose(np.asarray(opt.state[p]["exp_avg"]), exp_avg, rtol=1e-5, atol=1e-7)
    for sd, value in snapshots:  # every snapshot still holds the value it was taken with
        np.testing.assert_array_equal(np.asarray(sd["state"][0]["exp_avg"]), value)


def test_sgd_momentum_never_writes_into_a_gradient_the_user_holds():
    torch = pytest.importorskip("torch")
    p = mx.array(W0, requires_grad=True)
    tp = torch.tensor(W0, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    held = []
    for g in GRADS:
        p.grad = mx.array(g)
        tp.grad = torch.tensor(g)
        held.append((p.grad, g.copy()))  # the first becomes PyTorch's first momentum buffer
        opt.step()
        topt.step()
        opt.zero_grad()
    np.testing.assert_allclose(np.asarray(p), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    for grad, value in held:
        np.testing.assert_array_equal(np.asarray(grad), value)


@pytest.mark.host_only  # in-place reuse of host buffers (reference counts of NumPy arrays)
def test_sgd_momentum_buffer_is_reused_when_only_the_optimizer_holds_it():
    p = mx.array(W0, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    ids = []
    for g in GRADS:
        p.grad = mx.array(g)
        opt.step()
        opt.zero_grad()
        ids.append(id(opt.state[p]["momentum_buffer"]._data))
    assert ids[2] == ids[3]


def test_mlx_model_training_matches_fresh_buffer_arithmetic():
    mx.random.seed(0)
    model = nn.Linear(4, 3)
    opt = optim.Adam(learning_rate=1e-2, bias_correction=True)
    x = mx.array(RNG.standard_normal((8, 4)).astype(np.float32))
    w0 = np.array(model.weight)
    b1, b2, lr, eps = 0.9, 0.999, 1e-2, 1e-8
    m = np.zeros_like(w0)
    v = np.zeros_like(w0)
    w = w0.copy()

    def loss_fn(mod):
        return (mod(x) ** 2).sum()

    vg = nn.value_and_grad(model, loss_fn)
    for t in range(1, 4):
        _, grads = vg(model)
        g = np.array(grads["weight"])
        opt.update(model, grads)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    np.testing.assert_allclose(np.asarray(model.weight), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make", [lambda p, lib: lib.optim.SGD([p], lr=0.1), lambda p, lib: lib.optim.Adam([p], lr=0.1)]
)
def test_torch_style_step_bumps_the_version_counter_as_pytorch(make):
    torch = pytest.importorskip("torch")
    import chainrule.torch as cr_torch

    counts = []
    for lib in (cr_torch, torch):
        p = lib.ones(3, requires_grad=True)
        opt = make(p, lib)
        before = p._version
        for _ in range(3):
            p.grad = lib.ones(3)
            opt.step()
        counts.append(p._version - before)
    assert counts[0] == counts[1] == 3


@pytest.mark.parametrize(
    "make", [lambda: optim.Adam(learning_rate=0.1), lambda: optim.SGD(0.1, momentum=0.9)]
)
@pytest.mark.usefixtures("cpu_default_device")  # bfloat16/float8 results: CPU only (CuPy has none)
def test_bfloat16_state_is_the_same_whether_or_not_the_user_holds_it(make):
    results = []
    for hold in (False, True):  # in place, then renewed (every buffer stays referenced)
        opt = make()
        params = {"w": mx.ones((3,), dtype=mx.bfloat16)}
        opt.init(params)
        held = []
        for _ in range(3):
            params = opt.apply_gradients({"w": mx.full((3,), 0.37, dtype=mx.bfloat16)}, params)
            if hold:
                held.append(dict(opt.state["w"]))
        assert all(v.dtype == mx.bfloat16 for v in opt.state["w"].values())  # as MLX keeps it
        state = [np.asarray(v.astype(mx.float32)).tolist() for v in opt.state["w"].values()]
        results.append((state, np.asarray(params["w"].astype(mx.float32)).tolist()))
    assert results[0] == results[1]


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_scalar_parameters_and_a_step_without_a_gradient_match_pytorch(name):
    """0-d state buffers renewed out of place (a NumPy scalar, which ``+=`` rebinds) keep the
    sum, and a parameter without a gradient in one step is skipped (PyTorch's dynamic_net)."""
    torch = pytest.importorskip("torch")
    import chainrule.torch as ct

    def run(lib):
        a = lib.nn.Parameter(lib.tensor(1.0))
        e = lib.nn.Parameter(lib.tensor(2.0))
        kw = {"momentum": 0.9} if name == "SGD" else {}
        opt = getattr(lib.optim, name)([a, e], lr=0.1, **kw)
        out = []
        for use in (True, True, False, True, True):
            opt.zero_grad()
            loss = a * 3.0 + (e * e if use else 0.0)
            loss.backward()
            opt.step()
            out.append((a.item(), e.item()))
        return np.array(out)

    np.testing.assert_allclose(run(ct), run(torch), rtol=1e-5, atol=1e-6)
