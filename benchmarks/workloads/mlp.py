"""``seed`` and ``large``: the MLPs of ``../shared/bench/anchors.py``.

seed  : MLP 784-128-10, batch 64, SGD lr 0.01, cross entropy (overhead-bound)
large : MLP 784-512-512-10, batch 256, Adam lr 1e-3, cross entropy (GEMM-bound)

Data as anchors.py: 4096 Gaussian rows, 64 fixed random batches, cycled.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import Step, Workload, dense_flops, mlx_train, torch_train

CONFIGS = {
    "seed": ([784, 128, 10], 64, "sgd"),
    "large": ([784, 512, 512, 10], 256, "adam"),
}


def data(name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """anchors.py's 64 batches (float32 inputs, int64 labels)."""
    sizes, batch, _ = CONFIGS[name]
    rng = np.random.default_rng(0)
    n = 4096
    x = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n).astype(np.int64)
    idxs = [rng.integers(0, n, batch) for _ in range(64)]
    return [(x[i], y[i]) for i in idxs]


def build_mlx(name: str, lib: SimpleNamespace, compiled: bool) -> Step:
    """The MLX-style MLP step (anchors.py's ``make_mlx``)."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    sizes, _, opt = CONFIGS[name]

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x: Any) -> Any:
            for layer in self.layers[:-1]:
                x = nn.relu(layer(x))
            return self.layers[-1](x)

    model = MLP()
    optimizer = optim.SGD(learning_rate=0.01) if opt == "sgd" else optim.Adam(learning_rate=1e-3)

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    batches = [(mx.array(x), mx.array(y)) for x, y in data(name)]
    return mlx_train(lib, model, loss_fn, optimizer, batches, compiled)


def build_torch(name: str, torch: Any, device: str) -> Step:
    """The PyTorch-style MLP step (anchors.py's ``make_torch``)."""
    nn = torch.nn
    sizes, _, opt = CONFIGS[name]
    torch.manual_seed(0)
    layers: list[Any] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    params = model.parameters()
    optimizer = (
        torch.optim.SGD(params, lr=0.01) if opt == "sgd" else torch.optim.Adam(params, lr=1e-3)
    )
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data(name)]
    return torch_train(torch, model, nn.CrossEntropyLoss(), optimizer, batches, device)


def build_jax(name: str) -> Step:
    """The same step under ``jax.jit`` (plain functions: parameters, SGD or Adam by hand)."""
    import jax
    import jax.numpy as jnp

    sizes, _, opt = CONFIGS[name]
    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        bound = 1 / np.sqrt(a)
        params.append((jax.random.uniform(sub, (a, b), minval=-bound, maxval=bound), jnp.zeros(b)))

    def loss_fn(p: Any, x: Any, y: Any) -> Any:
        for w, b in p[:-1]:
            x = jax.nn.relu(x @ w + b)
        logp = jax.nn.log_softmax(x @ p[-1][0] + p[-1][1])
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    tree_map = jax.tree_util.tree_map

    @jax.jit
    def jstep(p: Any, s: Any, x: Any, y: Any) -> Any:
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        if opt == "sgd":
            return tree_map(lambda a, b: a - 0.01 * b, p, g), s, loss
        m, v, t = s
        t = t + 1
        m = tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        p = tree_map(lambda p, m, v: p - 1e-3 * (m / c1) / (jnp.sqrt(v / c2) + 1e-8), p, m, v)
        return p, (m, v, t), loss

    zeros = tree_map(jnp.zeros_like, params)
    st = {"p": params, "s": (zeros, zeros, 0)}
    batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in data(name)]

    def step(k: int) -> Any:
        st["p"], st["s"], loss = jstep(st["p"], st["s"], *batches[k % len(batches)])
        return loss

    return step, float


WORKLOADS = [
    Workload(
        name,
        f"MLP {'-'.join(map(str, CONFIGS[name][0]))}, batch {CONFIGS[name][1]}, "
        f"{CONFIGS[name][2].upper() if name == 'seed' else 'Adam'}",
        mlx=partial(build_mlx, name),
        torch=partial(build_torch, name),
        jax=partial(build_jax, name),
        flops=dense_flops(CONFIGS[name][1], CONFIGS[name][0]),
        gemm_shape=(CONFIGS[name][1], CONFIGS[name][0][0], CONFIGS[name][0][1]),
        steps=100 if name == "seed" else 20,
    )
    for name in CONFIGS
]
