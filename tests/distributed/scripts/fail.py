"""One rank fails; the whole job must stop with a non-zero status and the message.

Usage: mpiexec -n 2 python fail.py MODE
  fit:  rank 1's loss raises in the 3rd step of fit; the script catches the error (as a CLI
        would, to print a one-line message) and tries to exit normally, while rank 0 waits
        in the gradient Allreduce. fit must abort the job itself.
  top:  rank 1 raises at the top level while rank 0 waits in a barrier (init's excepthook).
  ddp:  PyTorch style: rank 1 raises in its forward while rank 0 waits in DDP's gradient
        averaging (init_process_group installs the same handling).
"""

from __future__ import annotations

import sys

import numpy as np

import chainrule.distributed as dist
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.train import fit

MESSAGE = "deliberate failure on rank 1"


def main() -> None:
    mode = sys.argv[1]
    if mode == "ddp":
        ddp()
        return
    world = dist.init()
    rank = world.rank()
    if mode == "top":
        if rank == 1:
            raise RuntimeError(MESSAGE)
        dist.barrier()
        print("rank 0 passed the barrier: the job did not stop", flush=True)
        return

    calls = [0]

    def loss_fn(out, y):
        calls[0] += 1
        if rank == 1 and calls[0] == 3:
            raise ValueError(MESSAGE)
        return nn.losses.cross_entropy(out, y)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=64)
    try:
        fit(
            nn.Linear(4, 2),
            optim.SGD(learning_rate=0.1),
            loss_fn,
            (X, y),
            epochs=2,
            batch_size=8,
            progress=False,
        )
    except ValueError as e:
        print(f"caught: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"rank {rank} finished training: the job did not stop", flush=True)


def ddp() -> None:
    import chainrule.torch as torch
    import chainrule.torch.distributed as tdist
    from chainrule.torch.nn.parallel import DistributedDataParallel

    tdist.init_process_group("gloo")
    rank = tdist.get_rank()
    model = DistributedDataParallel(torch.nn.Linear(4, 2))
    for step in range(3):
        x = torch.ones(8, 4)
        if rank == 1 and step == 2:
            raise RuntimeError(MESSAGE)
        model(x).sum().backward()
    print(f"rank {rank} finished training: the job did not stop", flush=True)


if __name__ == "__main__":
    main()
