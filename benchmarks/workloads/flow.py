"""``flow``: MLX's normalizing-flow example (RealNVP on two moons), MLX style only.

The training step of ``examples/mlx/normalizing_flow.py`` with its defaults: 6 masked
affine coupling layers on 2-d points, each conditioner an MLP 2-64-64-4 with gelu,
negative log-likelihood under a standard normal base, batch 64, Adam lr 3e-4. Written
against the modules passed in, so the same source runs on chainrule and real MLX. The two
moons are drawn with NumPy here (the example uses scikit-learn's ``make_moons``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import NotApplicable, Step, Workload, mlx_train

TRANSFORMS, D_PARAMS, D_HIDDEN, N_LAYERS, BATCH = 6, 2, 64, 2, 64


def moons(n: int = 10_000, noise: float = 0.06) -> np.ndarray:
    """Two interleaved half circles with Gaussian noise, standardised (float32)."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, math.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], 1) + noise * rng.standard_normal((n, 2))
    return ((pts - pts.mean(0)) / pts.std(0)).astype(np.float32)


def build_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """RealNVP's training step, MLX style."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = [D_PARAMS] + [D_HIDDEN] * N_LAYERS + [2 * D_PARAMS]
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x: Any) -> Any:
            for layer in self.layers[:-1]:
                x = nn.gelu(layer(x))
            return self.layers[-1](x)

    class RealNVP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mask_list = [
                (mx.arange(D_PARAMS) % 2 == i % 2).astype(mx.bool_) for i in range(TRANSFORMS)
            ]
            self.freeze(keys=["mask_list"])
            self.conditioner_list = [MLP() for _ in range(TRANSFORMS)]

        def __call__(self, x: Any) -> Any:
            log_det = mx.zeros(x.shape[0])
            for mask, cond in zip(self.mask_list[::-1], self.conditioner_list[::-1]):
                shift, log_scale = mx.split(cond(mx.where(mask, 0.0, x)), 2, axis=-1)
                y = (x - shift) * mx.exp(-log_scale)
                log_det = log_det + mx.sum(mx.where(mask, -log_scale, 0.0), axis=-1)
                x = mx.where(mask, y, x)
            base = -0.5 * math.log(2 * math.pi) - 0.5 * x**2
            return log_det + base.sum(-1)

    def loss_fn(m: Any, x: Any) -> Any:
        return -mx.mean(m(x))

    mx.random.seed(0)
    data = moons()
    rng = np.random.default_rng(1)
    batches = [(mx.array(data[rng.choice(len(data), BATCH, replace=False)]),) for _ in range(64)]
    optimizer = optim.Adam(learning_rate=3e-4)
    return mlx_train(lib, RealNVP(), loss_fn, optimizer, batches, compiled)


def no_torch(torch: Any, device: str) -> Step:
    """There is no PyTorch version: this is MLX's example."""
    raise NotApplicable("MLX example (MLX style only)")


WORKLOADS = [
    Workload(
        "flow",
        "MLX normalizing_flow example: RealNVP 6 couplings, MLP 2-64-64-4, batch 64, Adam",
        mlx=build_mlx,
        torch=no_torch,
        steps=50,
    )
]
