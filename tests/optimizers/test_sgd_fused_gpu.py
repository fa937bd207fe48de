"""SGD with momentum on the GPU as one fused kernel (``GpuBackend.fuse``), under the strict
CuPy stand-in: the momentum stays on the GPU and the steps equal the CPU's unfused ones, in
both styles, with Nesterov, dampening, weight decay and ``maximize``; a kernel that fails warns
once and the unfused update is used."""

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

RNG = np.random.default_rng(1)
W = RNG.standard_normal((30, 5)).astype(np.float32)
GRADS = [RNG.standard_normal((30, 5)).astype(np.float32) for _ in range(4)]

MAKERS = {
    "momentum": lambda: optim.SGD(0.1, momentum=0.9),
    "nesterov": lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
    "dampening_decay": lambda: optim.SGD(0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
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
        assert type(opt.state["w"]["v"]._data) is StrictArray
        mx.set_default_device(mx.cpu)
    return backend.to_host(p["w"]._data)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mlx_style_steps_equal_the_cpus(name):
    O._FUSED.pop(("strict", "sgd", False), None)
    O._FUSED.pop(("strict", "sgd", True), None)
    want = _run(MAKERS[name], False)
    with backend.use_strict_gpu():
        got = _run(MAKERS[name], True)
        assert callable(O._FUSED[("strict", "sgd", name == "nesterov")])  # the fused kernel ran
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs", [{}, {"nesterov": True}, {"maximize": True}])
def test_pytorch_style_sgd_on_cuda_equals_the_cpus(kwargs):
    def run(device):
        torch.manual_seed(0)
        net = torch.nn.Linear(5, 3).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, **kwargs)
        x = torch.tensor(W).to(device)
        for _ in range(4):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
        return backend.to_host(net.weight._data)

    want = run("cpu")
    with backend.use_strict_gpu():
        got = run("cuda")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_a_kernel_that_fails_falls_back_to_the_unfused_update(monkeypatch):
    want = _run(MAKERS["momentum"], False)
    with backend.use_strict_gpu():

        def broken(*args):
            raise RuntimeError("nvrtc: compilation failed")

        monkeypatch.setitem(O._FUSED, ("strict", "sgd", False), broken)
        with pytest.warns(RuntimeWarning, match="SGD: the fused GPU update failed"):
            got = _run(MAKERS["momentum"], True)
        assert O._FUSED[("strict", "sgd", False)] is False  # not tried again
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    O._FUSED.pop(("strict", "sgd", False), None)
