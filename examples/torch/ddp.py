"""Distributed data-parallel training (pytorch/examples' ``distributed/ddp-tutorial-series``
style), run by chainrule.

Every process builds the same model, wraps it in ``DistributedDataParallel`` and trains on its
share of each epoch (``DistributedSampler``); gradients are averaged during ``backward()``, so
N processes with ``--batch_size B`` train like one process with ``--batch_size N*B``. Rank 0
prints the losses (averaged over the processes with ``all_reduce``) and saves the model's
``state_dict`` (``model.module``) with ``--save``; ``--save-init`` and ``--init-weights`` let
another framework start from the same weights.

    python -m chainrule.distributed -n 2 examples/torch/ddp.py --steps 40
    mpiexec -n 2 .venv/bin/python examples/torch/ddp.py --steps 40
    RANK=0 WORLD_SIZE=1 .venv/bin/python examples/torch/ddp.py --steps 40 --batch_size 64

The launcher sets torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; one process needs
``RANK=0 WORLD_SIZE=1`` (and, under PyTorch itself, ``MASTER_ADDR``/``MASTER_PORT``).
"""

import argparse
import os

import chainrule.torch as torch
import chainrule.torch.nn.functional as F
from chainrule.torch.distributed import destroy_process_group, init_process_group
from chainrule.torch.nn.parallel import DistributedDataParallel as DDP
from chainrule.torch.utils.data import DataLoader, Dataset
from chainrule.torch.utils.data.distributed import DistributedSampler


class MyTrainDataset(Dataset):
    """Inputs and a nonlinear target computed from the index, the same on every process."""

    def __init__(self, size):
        grid = torch.arange(size * 20, dtype=torch.float32).reshape(size, 20)
        self.x = torch.sin(0.37 * grid) + 0.5 * torch.cos(0.011 * grid)
        w = torch.linspace(-1.0, 1.0, 20).unsqueeze(1)
        self.y = torch.tanh(self.x @ w) + 0.05 * torch.cos(self.x.sum(1, keepdim=True))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


class Trainer:
    def __init__(self, model, train_data, optimizer, save_path):
        self.rank = int(os.environ["RANK"])
        self.model = DDP(model)
        self.train_data = train_data
        self.optimizer = optimizer
        self.save_path = save_path
        self.losses = []

    def _run_batch(self, source, targets):
        self.optimizer.zero_grad()
        output = self.model(source)
        loss = F.mse_loss(output, targets)
        loss.backward()
        self.optimizer.step()
        # the loss of the whole global batch: the mean of every process's (equal parts)
        total = loss.detach().clone()
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.AVG)
        self.losses.append(total.item())

    def train(self, steps):
        epoch = 0
        while len(self.losses) < steps:
            self.train_data.sampler.set_epoch(epoch)
            for source, targets in self.train_data:
                self._run_batch(source, targets)
                if len(self.losses) == steps:
                    break
            epoch += 1
        if self.rank == 0:
            print(f"world_size {torch.distributed.get_world_size()}")
            print(f"epochs {epoch}")
            print(f"first_loss {self.losses[0]:.8f}")
            print(f"last_loss {self.losses[-1]:.8f}")
            if self.save_path:
                torch.save(self.model.module.state_dict(), self.save_path)


def main():
    parser = argparse.ArgumentParser(description="Distributed data-parallel training")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps")
    parser.add_argument("--batch_size", type=int, default=32, help="batch size per process")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate")
    parser.add_argument("--save", default="", help="rank 0 saves the state_dict here")
    parser.add_argument("--save-init", default="", help="rank 0 saves the initial weights")
    parser.add_argument("--init-weights", default="", help="start from these weights")
    args = parser.parse_args()

    init_process_group(backend="gloo")
    torch.manual_seed(0)  # rank 0's initial weights are broadcast by DDP anyway
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    if args.init_weights:
        model.load_state_dict(torch.load(args.init_weights))
    if args.save_init and int(os.environ["RANK"]) == 0:
        torch.save(model.state_dict(), args.save_init)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    dataset = MyTrainDataset(512)
    train_data = DataLoader(
        dataset,
        batch_size=args.batch_size,
        pin_memory=True,
        shuffle=False,
        sampler=DistributedSampler(dataset, seed=7),
    )
    Trainer(model, train_data, optimizer, args.save).train(args.steps)
    destroy_process_group()


if __name__ == "__main__":
    main()
