"""A tensor-parallel MLP (MLX's sharded linear layers) against the same MLP in one process.

Usage: mpiexec -n N python tensor_parallel.py   (N divides 32; prints 'rank R of N ok')

Every rank builds the same MLP (same seed), computes its outputs, loss and gradients alone,
then shards it with ``shard_linear`` (all-to-sharded, sharded-to-all, twice) and checks that
the sharded model gives the same outputs, loss, input gradient and this rank's slices of the
weight gradients, MLX style (``nn.value_and_grad``) and PyTorch style (``loss.backward()``),
and that three optimizer steps keep the shards equal to slices of the full model's weights.
Then ``fully_shard`` (MLX's FSDP): each rank trains on its part of a global batch and holds
one block of rows of every parameter, which must equal the rows of one process's model
trained on the whole batch.
"""

from __future__ import annotations

import numpy as np

import chainrule.core as mx
import chainrule.distributed as dist
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.nn.layers.distributed import FullyShardedModule, fully_shard, shard_linear


def close(a, b, what, tol=2e-5):
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=tol, atol=tol, err_msg=what)


class MLP(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i % 2 == 0:
                x = nn.relu(x)
        return x


def loss_fn(model, x, y):
    return nn.losses.mse_loss(model(x), y, reduction="mean")


def main() -> None:
    world = dist.init()
    r, n = world.rank(), world.size()
    mx.random.seed(7)
    full = MLP([nn.Linear(12, 32), nn.Linear(32, 6), nn.Linear(6, 16), nn.Linear(16, 5)])
    sharded = MLP(
        [
            shard_linear(full.layers[0], "all-to-sharded"),
            shard_linear(full.layers[1], "sharded-to-all"),
            shard_linear(full.layers[2], "all-to-sharded"),
            shard_linear(full.layers[3], "sharded-to-all"),
        ]
    )
    x = mx.random.normal((10, 12))
    y = mx.random.normal((10, 5))
    rows = [slice(r * d // n, (r + 1) * d // n) for d in (32, 6, 16, 5)]

    close(sharded(x), full(x), "outputs")

    # MLX style: loss, weight gradients (this rank's slices) and the input's gradient
    l_full, g_full = nn.value_and_grad(full, loss_fn)(full, x, y)
    l_shard, g_shard = nn.value_and_grad(sharded, loss_fn)(sharded, x, y)
    close(l_shard, l_full, "loss")
    for i in (0, 2):  # all-to-sharded: rows of the weight, the bias sharded alike
        close(g_shard["layers"][i]["weight"], g_full["layers"][i]["weight"][rows[i]], f"w{i}")
        close(g_shard["layers"][i]["bias"], g_full["layers"][i]["bias"][rows[i]], f"b{i}")
    for i, k in ((1, 0), (3, 2)):  # sharded-to-all: columns of the weight, the bias whole
        close(g_shard["layers"][i]["weight"], g_full["layers"][i]["weight"][:, rows[k]], f"w{i}")
        close(g_shard["layers"][i]["bias"], g_full["layers"][i]["bias"], f"b{i}")
    gx_full = mx.grad(lambda v: loss_fn(full, v, y))(x)
    gx_shard = mx.grad(lambda v: loss_fn(sharded, v, y))(x)
    close(gx_shard, gx_full, "input gradient")

    # PyTorch style: loss.backward() fills the same gradients
    loss_fn(sharded, x, y).backward()
    close(sharded.layers[0].weight.grad, g_shard["layers"][0]["weight"], "backward w0")
    close(sharded.layers[3].bias.grad, g_shard["layers"][3]["bias"], "backward b3")

    # three SGD steps: the shards stay slices of the full model's weights
    opt_full, opt_shard = optim.SGD(learning_rate=0.1), optim.SGD(learning_rate=0.1)
    for _ in range(3):
        _, g = nn.value_and_grad(full, loss_fn)(full, x, y)
        opt_full.update(full, g)
        _, g = nn.value_and_grad(sharded, loss_fn)(sharded, x, y)
        opt_shard.update(sharded, g)
    close(sharded.layers[0].weight, full.layers[0].weight[rows[0]], "trained w0")
    close(sharded.layers[1].weight, full.layers[1].weight[:, rows[0]], "trained w1")
    close(sharded.layers[3].bias, full.layers[3].bias, "trained b3")
    close(sharded(x), full(x), "trained outputs")
    fsdp(r, n)
    print(f"rank {r} of {n} ok", flush=True)


def fsdp(r: int, n: int) -> None:
    mx.random.seed(3)
    full = MLP([nn.Linear(12, 16), nn.Linear(16, 8)])
    copy = MLP([nn.Linear(12, 16), nn.Linear(16, 8)])
    copy.update(full.parameters())
    wrapped = fully_shard(copy)
    assert isinstance(wrapped, FullyShardedModule) == (n > 1)
    x, y = mx.random.normal((8, 12)), mx.random.normal((8, 8))
    part = slice(r * 8 // n, (r + 1) * 8 // n)
    rows = [slice(r * d // n, (r + 1) * d // n) for d in (16, 8)]
    inner = wrapped["module"] if n > 1 else wrapped
    assert inner.layers[0].weight.shape == (16 // n, 12)
    close(wrapped(x), full(x), "fsdp outputs")
    opt_full, opt_fsdp = optim.SGD(learning_rate=0.1), optim.SGD(learning_rate=0.1)
    for _ in range(3):
        _, g_full = nn.value_and_grad(full, loss_fn)(full, x, y)
        _, g = nn.value_and_grad(wrapped, loss_fn)(wrapped, x[part], y[part])
        g_inner = g["module"] if n > 1 else g
        for i in (0, 1):
            for k in ("weight", "bias"):
                close(g_inner["layers"][i][k], g_full["layers"][i][k][rows[i]], f"fsdp {k}{i}")
        opt_full.update(full, g_full)
        opt_fsdp.update(wrapped, g)
    for i in (0, 1):
        close(inner.layers[i].weight, full.layers[i].weight[rows[i]], f"fsdp trained w{i}")
    close(wrapped(x), full(x), "fsdp trained outputs")


if __name__ == "__main__":
    main()
