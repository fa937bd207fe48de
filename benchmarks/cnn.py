"""Training-step time of two convolutional networks: chainrule (PyTorch and MLX styles) vs PyTorch.

Workloads (float32, CPU, one thread each: ``torch.set_num_threads(1)``, and OpenBLAS /
OpenMP / MKL limited to one thread before NumPy loads, unless already set):
  lenet   : LeNet-5: conv(1->6, 5) / relu / maxpool 2, conv(6->16, 5) / relu / maxpool 2,
            fc 256 -> 120 -> 84 -> 10, cross-entropy, SGD(0.01); 1x28x28 images, batch 64
  resnet  : a small CIFAR ResNet: conv 3->16, then 3 stages of 2 basic blocks (16/32/64
            channels, stride 2 entering stages 2 and 3, 1x1 projection shortcuts), BatchNorm,
            global average pool, fc 64 -> 10, SGD(0.01, momentum 0.9); 3x32x32, batch 32

Runners: ``torch`` (PyTorch), ``ctorch`` (the same program on ``chainrule.torch``), ``mlx``
(chainrule.nn + chainrule.optimizers + nn.value_and_grad, channels last) and, with
``--compiled``, ``compiled`` (the MLX-style step under ``mx.compile``). Runners are
interleaved within each block, and the figures are medians over blocks: milliseconds per
step and the ratio to PyTorch taken block by block.

The model builders (``build_lenet(framework)``, ``build_resnet(framework)``, ``RUNNERS``) are
importable for other suites: ``framework`` is a module with PyTorch's API (``torch`` or
``chainrule.torch``) or the string ``"mlx"``.

Usage: python benchmarks/cnn.py [--workload lenet|resnet|both] [--blocks 3] [--steps 5]
       [--compiled] [--cpu] [--only ctorch mlx ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import chainrule.core as mx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402
import chainrule.optimizers as coptim  # noqa: E402
import chainrule.torch as ctorch  # noqa: E402

SHAPES = {"lenet": ((64, 1, 28, 28), 10), "resnet": ((32, 3, 32, 32), 10)}


# -- models ------------------------------------------------------------------------------------


def _torch_lenet(torch):
    nn = torch.nn

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(256, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            F = torch.nn.functional
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.reshape(x.shape[0], -1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return LeNet()


class _MlxLeNet(cnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = cnn.Conv2d(1, 6, 5)
        self.conv2 = cnn.Conv2d(6, 16, 5)
        self.pool = cnn.MaxPool2d(2)
        self.fc1 = cnn.Linear(256, 120)
        self.fc2 = cnn.Linear(120, 84)
        self.fc3 = cnn.Linear(84, 10)

    def __call__(self, x):
        x = self.pool(cnn.relu(self.conv1(x)))
        x = self.pool(cnn.relu(self.conv2(x)))
        x = mx.reshape(x, (x.shape[0], -1))
        return self.fc3(cnn.relu(self.fc2(cnn.relu(self.fc1(x)))))


def _torch_resnet(torch):
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.short is None else self.short(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.blocks(F.relu(self.bn(self.conv(x))))
            return self.fc(x.mean((2, 3)))

    return ResNet()


class _MlxBlock(cnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = cnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = cnn.BatchNorm(cout)
        self.conv2 = cnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = cnn.BatchNorm(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = cnn.Sequential(
                cnn.Conv2d(cin, cout, 1, stride, bias=False), cnn.BatchNorm(cout)
            )

    def __call__(self, x):
        y = cnn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return cnn.relu(y + (x if self.short is None else self.short(x)))


class _MlxResNet(cnn.Module):
    def __init__(self):
        super().__init__()
        self.conv = cnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = cnn.BatchNorm(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks += [_MlxBlock(cin, cout, stride), _MlxBlock(cout, cout, 1)]
            cin = cout
        self.blocks = blocks
        self.fc = cnn.Linear(64, 10)

    def __call__(self, x):
        x = cnn.relu(self.bn(self.conv(x)))
        for b in self.blocks:
            x = b(x)
        return self.fc(mx.mean(x, axis=(1, 2)))


def build_lenet(framework: Any) -> Any:
    """LeNet-5 for 1x28x28 inputs in ``framework`` (a PyTorch-API module, or ``"mlx"``)."""
    if framework == "mlx":
        return _MlxLeNet()
    framework.manual_seed(0)
    return _torch_lenet(framework)


def build_resnet(framework: Any) -> Any:
    """A small CIFAR ResNet (3 stages x 2 basic blocks, 16/32/64 channels) in ``framework``."""
    if framework == "mlx":
        return _MlxResNet()
    framework.manual_seed(0)
    return _torch_resnet(framework)


BUILDERS = {"lenet": build_lenet, "resnet": build_resnet}


def data(workload: str, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` fixed batches (channels first, float32 images and int64 labels)."""
    shape, classes = SHAPES[workload]
    rng = np.random.default_rng(0)
    return [
        (
            rng.standard_normal(shape).astype(np.float32),
            rng.integers(0, classes, shape[0]).astype(np.int64),
        )
        for _ in range(n)
    ]


def _optimizer(workload: str, torch, params):
    if workload == "lenet":
        return torch.optim.SGD(params, lr=0.01)
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


# -- runners -----------------------------------------------------------------------------------


def torch_runner(workload: str, torch) -> Any:
    """A train step of ``workload`` written once against PyTorch's API (torch or ctorch)."""
    model = BUILDERS[workload](torch)
    opt = _optimizer(workload, torch, model.parameters())
    batches = [(torch.tensor(x), torch.tensor(y)) for x, y in data(workload)]

    def step(k):
        x, y = batches[k % len(batches)]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def mlx_runner(workload: str, compiled: bool = False) -> Any:
    """A train step of ``workload`` in MLX's style (channels last), optionally compiled."""
    model = BUILDERS[workload]("mlx")
    if workload == "lenet":
        o = coptim.SGD(learning_rate=0.01)
    else:
        o = coptim.SGD(learning_rate=0.01, momentum=0.9)

    def loss_fn(m, x, y):
        return cnn.losses.cross_entropy(m(x), y, reduction="mean")

    lg = cnn.value_and_grad(model, loss_fn)

    def inner(x, y):
        loss, g = lg(model, x, y)
        o.update(model, g)
        return loss

    if compiled:
        state = [model.state, o.state]
        inner = partial(mx.compile, inputs=state, outputs=state)(inner)
    batches = [
        (mx.array(np.ascontiguousarray(x.transpose(0, 2, 3, 1))), mx.array(y.astype(np.int32)))
        for x, y in data(workload)
    ]

    def step(k):
        loss = inner(*batches[k % len(batches)])
        mx.eval(loss, model.state, o.state)
        return loss.item()

    return step


RUNNERS = {
    "ctorch": lambda wl: torch_runner(wl, ctorch),
    "mlx": lambda wl: mlx_runner(wl),
    "compiled": lambda wl: mlx_runner(wl, compiled=True),
}


CLOCK = [time.perf_counter]


def measure(runners: dict, steps: int, blocks: int, warmup: int = 2) -> tuple[dict, dict]:
    """Per-block milliseconds per step of each runner (runners interleaved within a block);
    ``CLOCK[0]`` is the clock (wall time, or this process's CPU time with ``--cpu``)."""
    last = {}
    for name, step in runners.items():
        for k in range(warmup):
            last[name] = step(k)
    times: dict = {name: [] for name in runners}
    for _ in range(blocks):
        for name, step in runners.items():
            time.sleep(0.2)
            t0 = CLOCK[0]()
            for k in range(steps):
                last[name] = step(k)
            times[name].append((CLOCK[0]() - t0) / steps * 1e3)
    return times, last


def run(workload: str, steps: int, blocks: int, compiled: bool, only: list | None = None) -> None:
    """Measure ``workload`` on every runner and print ms/step and the ratio to PyTorch."""
    names = ["ctorch", "mlx"] + (["compiled"] if compiled else [])
    if only:
        names = [n for n in names if n in only]
    runners = {n: RUNNERS[n](workload) for n in names}
    try:
        import torch

        torch.set_num_threads(1)
        runners["torch"] = torch_runner(workload, torch)
    except ImportError:
        print("(PyTorch is not installed: chainrule's times only)")
    times, last = measure(runners, steps, blocks)
    print(f"\n{workload}: {blocks} blocks of {steps} steps, one thread")
    print(f"  {'runner':10s} {'ms/step':>9s} {'x torch':>8s} {'last loss':>10s}")
    for name, v in times.items():
        if "torch" in times:
            ratio = statistics.median(a / b for a, b in zip(v, times["torch"]))
            vs = f"{ratio:8.2f}"
        else:
            vs = "       -"
        print(f"  {name:10s} {statistics.median(v):9.2f} {vs} {float(last[name]):10.4f}")


def main() -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="both", choices=["lenet", "resnet", "both"])
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--compiled", action="store_true")
    p.add_argument("--only", nargs="*", help="chainrule runners to time (default: all)")
    p.add_argument(
        "--cpu",
        action="store_true",
        help="time with this process's CPU time (steadier on a shared machine; one thread)",
    )
    args = p.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    for wl in ["lenet", "resnet"] if args.workload == "both" else [args.workload]:
        run(wl, args.steps, args.blocks, args.compiled, args.only)


if __name__ == "__main__":
    main()
