"""Data-parallel ``fit`` in every form the tests check; each rank saves what it ended with.

Usage: mpiexec -n 2 python train_equal.py OUTDIR
Writes OUTDIR/<config>-rank<r>.npz (every array of the model) and .json (history and the
files ModelCheckpoint wrote). ``train(name, distributed=False)`` is the one-process
reference, imported by the test.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import chainrule.core as mx
import chainrule.distributed as dist
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.checkpoint import named_arrays
from chainrule.core.backend import to_host
from chainrule.data import DataLoader, Dataset, TensorDataset
from chainrule.train import ModelCheckpoint, fit

# name: style, examples, global batch, data form, whether one process can reproduce it.
CONFIGS = {
    # 50 = 4 * 12 + 2: the last global batch gives each rank one example.
    "mlx_tuple": dict(style="mlx", n=50, batch=12, data="tuple", same_as_one=True),
    # 49 = 3 * 16 + 1: in the last step rank 1 has no example at all.
    "torch_dataset": dict(style="torch", n=49, batch=16, data="dataset", same_as_one=True),
    # A shuffling DataLoader of the user's: fit splits its global batches.
    "mlx_loader": dict(style="mlx", n=40, batch=7, data="loader", same_as_one=True),
    # Already split per rank with a DistributedSampler; BatchNorm buffers must agree.
    "torch_sampler": dict(style="torch", n=40, batch=6, data="sampler", same_as_one=False),
    # Per-rank batch lists of different lengths (rank 1 has one batch fewer).
    "mlx_uneven": dict(style="mlx", n=40, batch=5, data="uneven", same_as_one=False),
}


def problem(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=2.0, size=(3, 6))
    y = rng.integers(0, 3, size=n)
    X = centers[y] + rng.normal(size=(n, 6))
    return X.astype(np.float32), y.astype(np.int64)


class Samples(Dataset):
    """A dataset without get_batch: the loader collates sample by sample."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        return self.X[i], int(self.y[i])


class Batches:
    """A re-iterable of ready-made batches (no __len__, no __getitem__)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def build(cfg: dict) -> nn.Module:
    layers = [nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)]
    if cfg["data"] == "sampler":
        layers.insert(1, nn.BatchNorm(16))
    return nn.Sequential(*layers)


def train(name: str, distributed, rank: int = 0, size: int = 1, ckpt_path: str | None = None):
    """Train config ``name``; the model's initial values depend on ``rank`` (fit must
    broadcast rank 0's)."""
    cfg = CONFIGS[name]
    X, y = problem(cfg["n"])
    mx.random.seed(100 + rank)
    model = build(cfg)
    if cfg["style"] == "mlx":
        opt = optim.Adam(learning_rate=0.02)
        loss = nn.losses.cross_entropy
    else:
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss = nn.CrossEntropyLoss()
    kind, b = cfg["data"], cfg["batch"]
    val = (X[:17], y[:17])
    if kind == "tuple":
        data = (X, y)
    elif kind == "dataset":
        data = Samples(X, y)
    elif kind == "loader":
        data = DataLoader(TensorDataset(X, y), batch_size=b, shuffle=True)
    elif kind == "sampler":
        ds = TensorDataset(X, y)
        sampler = dist.DistributedSampler(ds, num_replicas=size, rank=rank, seed=3)
        data = DataLoader(ds, batch_size=b, sampler=sampler)
        val = DataLoader(TensorDataset(*val), batch_size=4)
    else:  # uneven: rank r trains on its own list of batches, one fewer on rank 1
        mine = np.arange(rank, cfg["n"], size)
        batches = [(X[mine[s : s + b]], y[mine[s : s + b]]) for s in range(0, len(mine), b)]
        data = Batches(batches[:-1] if rank == 1 else batches)
    callbacks = []
    if ckpt_path is not None:
        callbacks.append(ModelCheckpoint(ckpt_path, monitor="val_loss", save_best_only=False))
    history = fit(
        model,
        opt,
        loss,
        data,
        val_data=val,
        epochs=3,
        batch_size=b,
        metrics=("accuracy",),
        callbacks=callbacks,
        progress=False,
        seed=7,
        distributed=distributed,
    )
    return model, history, callbacks


def arrays(model) -> dict[str, np.ndarray]:
    return {k: to_host(a._data) for k, a in named_arrays(model)}


def main() -> None:
    out = sys.argv[1]
    world = dist.init()
    rank, size = world.rank(), world.size()
    for name in CONFIGS:
        ckpt = os.path.join(out, f"{name}-ckpt.safetensors")
        model, history, callbacks = train(name, None, rank, size, ckpt_path=ckpt)
        np.savez(os.path.join(out, f"{name}-rank{rank}.npz"), **arrays(model))
        history.save(os.path.join(out, f"{name}-history.json"))
        with open(os.path.join(out, f"{name}-rank{rank}.json"), "w") as f:
            json.dump({"history": history.history, "saved": callbacks[0].saved}, f)
    print(f"rank {rank} of {size} done", flush=True)


if __name__ == "__main__":
    main()
