"""Tensor parallelism with MLX's sharded linear layers: an MLP cut with ``shard_linear`` over
2 and 4 real processes (scripts/tensor_parallel.py) gives one process's outputs, loss and
gradients, and trains alike; in one process, the shards are parameters of their own."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_helpers import requires_mpi, run_mpi

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers.distributed import shard_inplace, shard_linear


def test_shards_are_leaves_that_backward_fills():
    lin = nn.Linear(3, 4)
    layer = shard_linear(lin, "all-to-sharded")
    assert layer.weight.is_leaf and layer.weight.requires_grad
    layer(mx.ones((2, 3))).sum().backward()
    assert layer.weight.grad is not None and lin.weight.grad is None
    np.testing.assert_allclose(layer.weight.grad, np.full((4, 3), 2.0))
    model = nn.Sequential(nn.Linear(3, 4))
    shard_inplace(model, "sharded-to-all")
    assert model.layers[0].weight.is_leaf


@requires_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_tensor_parallel_mlp_equals_one_process(n):
    run = run_mpi("tensor_parallel.py", n=n)
    assert run.returncode == 0, run.output
    assert sorted(line for line in run.stdout.splitlines() if line.startswith("rank")) == [
        f"rank {r} of {n} ok" for r in range(n)
    ]
