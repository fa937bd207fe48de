"""Which samples each rank sees, per epoch: with a DistributedSampler, and inside fit.

Usage: mpiexec -n 2 python shards.py OUTDIR
Writes OUTDIR/shards-rank<r>.json: {"sampler": [[indices of epoch 0], ...], "fit": [...]}.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import chainrule.distributed as dist
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.data import DataLoader, Dataset
from chainrule.train import Callback, fit

EPOCHS = 3


class Logged(Dataset):
    """Records every index read (no get_batch, so the loader reads sample by sample)."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.X = rng.normal(size=(n, 4)).astype(np.float32)
        self.y = rng.integers(0, 2, size=n)
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        self.seen.append(int(i))
        return self.X[i], int(self.y[i])


class PerEpoch(Callback):
    def __init__(self, dataset: Logged) -> None:
        self.dataset, self.epochs = dataset, []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(list(self.dataset.seen))
        self.dataset.seen.clear()


def main() -> None:
    out = sys.argv[1]
    world = dist.init()
    rank = world.rank()
    result = {}

    # A DistributedSampler in a DataLoader, reshuffled by set_epoch.
    for n in (44, 45):
        ds = Logged(n)
        sampler = dist.DistributedSampler(ds, shuffle=True, seed=5)
        assert (sampler.num_replicas, sampler.rank) == (world.size(), rank)
        loader = DataLoader(ds, batch_size=4, sampler=sampler)
        epochs = []
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            for _ in loader:
                pass
            epochs.append(list(ds.seen))
            ds.seen.clear()
        result[f"sampler{n}"] = epochs

    # fit's own split of the global batches (45 examples, global batch 7).
    ds = Logged(45)
    log = PerEpoch(ds)
    model = nn.Sequential(nn.Linear(4, 2))
    fit(
        model,
        optim.SGD(learning_rate=0.1),
        nn.losses.cross_entropy,
        ds,
        epochs=EPOCHS,
        batch_size=7,
        callbacks=[log],
        progress=False,
        metrics=(),
    )
    result["fit"] = log.epochs

    with open(os.path.join(out, f"shards-rank{rank}.json"), "w") as f:
        json.dump(result, f)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
