"""``polyfit``: PyTorch's tutorial polynomial fit, a loop of tiny (scalar-parameter) ops.

y = sin(x) on 2000 points of [-pi, pi], fitted by a + b x + c x^2 + d x^3 with four scalar
parameters; the loss is the summed squared error; plain gradient descent, lr 1e-6. The
PyTorch style is the tutorial's (``requires_grad`` scalars, ``backward``, updates under
``no_grad``); the MLX style is ``mx.value_and_grad`` of a function of the parameter list
(compiled: the whole update is one compiled function).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import Step, Workload

N, LR = 2000, 1e-6


def points() -> tuple[np.ndarray, np.ndarray]:
    """x on [-pi, pi] and sin(x), float32."""
    x = np.linspace(-math.pi, math.pi, N, dtype=np.float32)
    return x, np.sin(x)


def build_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """The fit, MLX style."""
    mx = lib.mx
    x_np, y_np = points()
    x, y = mx.array(x_np), mx.array(y_np)
    params = [mx.array(v) for v in np.random.default_rng(0).standard_normal(4).astype(np.float32)]

    def loss_fn(p: list, x: Any, y: Any) -> Any:
        a, b, c, d = p
        return ((a + b * x + c * x**2 + d * x**3 - y) ** 2).sum()

    loss_and_grad = mx.value_and_grad(loss_fn)

    def update(p: list, x: Any, y: Any) -> Any:
        loss, grads = loss_and_grad(p, x, y)
        return loss, [w - LR * g for w, g in zip(p, grads)]

    if compiled:
        update = mx.compile(update)
    state = {"p": params}

    def step(k: int) -> Any:
        loss, state["p"] = update(state["p"], x, y)
        mx.eval(loss, state["p"])
        return loss

    return step, lambda loss: loss.item()


def build_torch(torch: Any, device: str) -> Step:
    """The tutorial's fit, PyTorch style."""
    x_np, y_np = points()
    x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
    rng = np.random.default_rng(0)
    params = [
        torch.tensor(float(v), device=device, requires_grad=True) for v in rng.standard_normal(4)
    ]

    def step(k: int) -> Any:
        a, b, c, d = params
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
        return loss

    return step, lambda loss: loss.item()


WORKLOADS = [
    Workload(
        "polyfit",
        "PyTorch tutorial polynomial fit: 4 scalars, 2000 points, plain GD",
        mlx=build_mlx,
        torch=build_torch,
        steps=200,
    )
]
