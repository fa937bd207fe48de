"""Adam/AdamW, SGD with momentum, RMSprop, Adagrad and Lion on the GPU as one fused kernel each
(``GpuBackend.fuse``), under the strict CuPy stand-in, whose ``fuse`` runs the same arithmetic
one ufunc at a time: the state stays on the GPU and the steps equal the CPU's unfused ones (to
a few units in the last place: Adam's bias corrections are Python floats there, as in
PyTorch's Adam), in both styles; a kernel that fails warns once and the unfused update is
used; ``amsgrad`` keeps the unfused update."""

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

MAKERS = {  # name: (optimizer, the kernel's cache key without the backend)
    "adam": (lambda: optim.Adam(1e-2), ("Adam",)),
    "adam_bias_correction": (lambda: optim.Adam(1e-2, bias_correction=True), ("Adam",)),
    "adamw": (lambda: optim.AdamW(1e-2, weight_decay=0.1), ("Adam",)),
    "momentum": (lambda: optim.SGD(0.1, momentum=0.9), ("SGD", False)),
    "nesterov": (lambda: optim.SGD(0.1, momentum=0.9, nesterov=True), ("SGD", True)),
    "dampening_decay": (
        lambda: optim.SGD(0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
        ("SGD", False),
    ),
    "rmsprop": (lambda: optim.RMSprop(0.01), ("RMSprop", False)),
    "adagrad": (lambda: optim.Adagrad(0.1), ("Adagrad",)),
    "lion": (lambda: optim.Lion(0.01), ("Lion", False)),
    "lion_decay": (lambda: optim.Lion(0.01, weight_decay=0.1), ("Lion", True)),
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
        state = [v for v in opt.state["w"].values() if isinstance(v, mx.array) and v.ndim]
        assert state and all(type(v._data) is StrictArray for v in state)
        mx.set_default_device(mx.cpu)
    return backend.to_host(p["w"]._data)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mlx_style_steps_equal_the_cpus(name):
    make, key = MAKERS[name]
    O._FUSED.pop(("strict", *key), None)
    want = _run(make, False)
    with backend.use_strict_gpu():
        got = _run(make, True)
        assert callable(O._FUSED[("strict", *key)])  # the fused kernel ran
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def test_adam_with_amsgrad_keeps_the_unfused_update():
    make = lambda: optim.Adam(1e-2, amsgrad=True)  # noqa: E731
    O._FUSED.pop(("strict", "Adam"), None)
    want = _run(make, False)
    with backend.use_strict_gpu():
        got = _run(make, True)
        assert ("strict", "Adam") not in O._FUSED
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, maximize=True),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
        lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    ],
    ids=["sgd", "nesterov", "maximize", "rmsprop_momentum", "adagrad_decay", "adam"],
)
def test_pytorch_style_optimizers_on_cuda_equal_the_cpus(make):
    def run(device):
        torch.manual_seed(0)
        net = torch.nn.Linear(5, 3).to(device)
        opt = make(net.parameters())
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
    want = _run(MAKERS["momentum"][0], False)
    with backend.use_strict_gpu():

        def broken(*args):
            raise RuntimeError("nvrtc: compilation failed")

        monkeypatch.setitem(O._FUSED, ("strict", "SGD", False), broken)
        with pytest.warns(RuntimeWarning, match="SGD: the fused GPU update failed"):
            got = _run(MAKERS["momentum"][0], True)
        assert O._FUSED[("strict", "SGD", False)] is False  # not tried again
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    O._FUSED.pop(("strict", "SGD", False), None)
