"""Adam's update on the GPU as one fused kernel (``GpuBackend.fuse``: ``cupy.fuse`` on CuPy),
checked under the strict CuPy stand-in, whose ``fuse`` runs the same arithmetic one ufunc at a
time: the state stays on the GPU and the steps equal the CPU's unfused ones (to a few units in
the last place: the bias corrections are Python floats there, as in PyTorch's Adam)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.optimizers as optim
import chainrule.optimizers.fused_gpu as O
import chainrule.torch as torch
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

RNG = np.random.default_rng(0)
W = RNG.standard_normal((40, 7)).astype(np.float32)
GRADS = [RNG.standard_normal((40, 7)).astype(np.float32) for _ in range(4)]

MAKERS = {
    "adam": lambda: optim.Adam(1e-2),
    "adam_bias_correction": lambda: optim.Adam(1e-2, bias_correction=True),
    "adamw": lambda: optim.AdamW(1e-2, weight_decay=0.1),
    "adam_amsgrad_unfused": lambda: optim.Adam(1e-2, amsgrad=True),
}


def _run(make, gpu: bool) -> np.ndarray:
    if gpu:
        mx.set_default_device(mx.gpu)
    opt = make()
    p = {"w": mx.array(W)}
    for g in GRADS:
        opt.update(p, {"w": mx.array(g)})
    if gpu:
        assert type(p["w"]._data) is StrictArray
        assert type(opt.state["w"]["m"]._data) is StrictArray
        mx.set_default_device(mx.cpu)
    assert p["w"].dtype == mx.float32
    return backend.to_host(p["w"]._data)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mlx_style_steps_equal_the_cpus(name, monkeypatch):
    calls = []
    real = O._fused_adam

    def counting(w):
        fused = real(w)
        if fused is None:
            return None
        return lambda *args: calls.append(1) or fused(*args)

    monkeypatch.setattr(O, "_fused_adam", counting)
    want = _run(MAKERS[name], False)
    assert calls == []  # host data: the unfused update
    with backend.use_strict_gpu():
        got = _run(MAKERS[name], True)
    assert len(calls) == (0 if "amsgrad" in name else len(GRADS))
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def test_pytorch_style_adam_on_cuda_equals_the_cpus():
    def run(device):
        torch.manual_seed(0)
        net = torch.nn.Linear(7, 3).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
        x = torch.tensor(W).to(device)
        for _ in range(4):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
        return backend.to_host(net.weight._data)

    want = run("cpu")
    with backend.use_strict_gpu():
        got = run("cuda")
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def test_a_kernel_that_fails_falls_back_to_the_unfused_update(monkeypatch):
    want = _run(MAKERS["adam"], False)
    with backend.use_strict_gpu():

        def broken(*args):
            raise RuntimeError("nvrtc: compilation failed")

        monkeypatch.setitem(O._FUSED, "strict", broken)
        with pytest.warns(RuntimeWarning, match="fused GPU update failed"):
            got = _run(MAKERS["adam"], True)
        assert O._FUSED["strict"] is False  # not tried again
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
