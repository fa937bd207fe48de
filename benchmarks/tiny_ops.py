"""Per-operation eager overhead: the polynomial fit of PyTorch's "Learning PyTorch with Examples".

y = a + b x + c x^2 + d x^3 with four scalar parameters, x = linspace(-pi, pi, 2000),
loss = sum((y_pred - y)^2), gradients, a manual SGD step. Every operation is tiny (2000
float32 elements), so the step time is almost all per-operation overhead.

Runners (interleaved in one process, median of blocks):
  torchstyle  chainrule.torch, the tutorial's code: ``loss.backward()``, ``a -= lr * a.grad``
              under ``torch.no_grad()``, ``a.grad = None``
  mlx         chainrule.core: ``mx.value_and_grad`` over a dict of the four scalars, a
              functional SGD update
  torch       PyTorch itself, on one thread (when installed)

``build_polyfit(framework)`` returns a step function for ``"torchstyle"``, ``"mlx"`` or
``"torch"`` (benchmarks/suite.py imports it). ``--callgrind`` counts instructions per step of
the chainrule runners instead (as benchmarks/instructions.py does: a run of 50 steps minus a
run of 10 steps, over 40).

Usage: python benchmarks/tiny_ops.py [--blocks 3] [--steps 300] [--callgrind | --bytecodes]
[--runner torchstyle|mlx|torch|both] (``--callgrind --runner torch`` counts PyTorch's too)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

N_POINTS = 2000
LEARNING_RATE = 1e-6
OPS_PER_STEP = 26
"""Operations of one tutorial step as PyTorch counts them: forward 10 (``b*x``, ``x**2``,
``c*.``, ``x**3``, ``d*.``, three adds, ``-``, ``pow``) + ``sum`` = 11, backward about 11,
update 4. Used only to print a per-operation figure."""


def build_polyfit(framework: str) -> Callable[[], float]:
    """One step of the polynomial fit, as a function returning the loss (a Python float).

    Args:
        framework: ``"torchstyle"`` (chainrule.torch, the tutorial's code), ``"mlx"``
            (chainrule.core, ``value_and_grad`` over a dict of four scalars) or ``"torch"``
            (PyTorch itself, set to one thread).

    Returns:
        A function running one training step.
    """
    if framework == "torchstyle":
        return _torchstyle()
    if framework == "mlx":
        return _mlx()
    if framework == "torch":
        return _torch()
    raise ValueError(f"build_polyfit: unknown framework {framework!r}")


def _torchstyle() -> Callable[[], float]:
    import chainrule.torch as torch

    torch.manual_seed(0)
    x = torch.linspace(-math.pi, math.pi, N_POINTS, dtype=torch.float)
    y = torch.sin(x)
    a = torch.randn((), dtype=torch.float, requires_grad=True)
    b = torch.randn((), dtype=torch.float, requires_grad=True)
    c = torch.randn((), dtype=torch.float, requires_grad=True)
    d = torch.randn((), dtype=torch.float, requires_grad=True)
    lr = LEARNING_RATE

    def step() -> float:
        nonlocal a, b, c, d
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
            c -= lr * c.grad
            d -= lr * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
        return loss.item()

    return step


def _mlx() -> Callable[[], float]:
    import numpy as np

    import chainrule.core as mx

    mx.random.seed(0)
    x = mx.array(np.linspace(-math.pi, math.pi, N_POINTS, dtype=np.float32))
    y = mx.sin(x)
    params = {k: mx.random.normal(()) for k in "abcd"}
    lr = LEARNING_RATE

    def loss_fn(p):
        y_pred = p["a"] + p["b"] * x + p["c"] * x**2 + p["d"] * x**3
        return ((y_pred - y) ** 2).sum()

    vg = mx.value_and_grad(loss_fn)

    def step() -> float:
        nonlocal params
        loss, g = vg(params)
        params = {k: params[k] - lr * g[k] for k in params}
        return loss.item()

    return step


def _torch() -> Callable[[], float]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.linspace(-math.pi, math.pi, N_POINTS, dtype=torch.float)
    y = torch.sin(x)
    a = torch.randn((), dtype=torch.float, requires_grad=True)
    b = torch.randn((), dtype=torch.float, requires_grad=True)
    c = torch.randn((), dtype=torch.float, requires_grad=True)
    d = torch.randn((), dtype=torch.float, requires_grad=True)
    lr = LEARNING_RATE

    def step() -> float:
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a.sub_(lr * a.grad)
            b.sub_(lr * b.grad)
            c.sub_(lr * c.grad)
            d.sub_(lr * d.grad)
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
        return loss.item()

    return step


def measure(steps: int, blocks: int) -> dict[str, list[float]]:
    """Milliseconds per step of each runner, per block (runners interleaved in each block)."""
    runners = {"torchstyle": build_polyfit("torchstyle"), "mlx": build_polyfit("mlx")}
    try:
        runners["torch"] = build_polyfit("torch")
    except ImportError:
        pass
    for step in runners.values():
        for _ in range(20):
            step()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(blocks):
        for name, step in runners.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times


def count(runner: str, steps: int) -> int:
    """Instructions callgrind counts for a whole run of ``steps`` steps of ``runner``."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            runner,
            str(steps),
        ]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
        assert m is not None
        return int(m.group(1))


def print_bytecodes(runner: str, steps: int = 20, top: int = 25) -> None:
    """Bytecodes executed per step by each Python function of ``runner`` (a tracer counting
    opcode events: the interpreter's share of the step, function by function)."""
    step = build_polyfit(runner)
    for _ in range(20):
        step()
    counts: dict = {}
    calls: dict = {}

    def trace(frame, event, arg):
        frame.f_trace_opcodes = True
        code = frame.f_code
        key = f"{code.co_filename.split('chainrule/')[-1]}:{code.co_firstlineno} {code.co_name}"
        table = calls if event == "call" else counts if event == "opcode" else None
        if table is not None:
            table[key] = table.get(key, 0) + 1
        return trace

    sys.settrace(trace)
    for _ in range(steps):
        step()
    sys.settrace(None)
    print(f"polyfit {runner}: {sum(counts.values()) / steps:.0f} bytecodes per step")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {n / steps:8.1f} in {calls.get(key, 0) / steps:5.1f} calls  {key}")


def main() -> None:
    """Prints ms per step, microseconds per operation and ratios to PyTorch."""
    if sys.argv[1:2] == ["--run"]:
        step = build_polyfit(sys.argv[2])
        for _ in range(int(sys.argv[3])):
            step()
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--callgrind", action="store_true", help="count instructions instead")
    p.add_argument("--bytecodes", action="store_true", help="count bytecodes per function")
    p.add_argument("--runner", choices=["torchstyle", "mlx", "torch", "both"], default="both")
    args = p.parse_args()
    names = ["torchstyle", "mlx"] if args.runner == "both" else [args.runner]
    if args.callgrind:
        for name in names:
            few, many = count(name, 10), count(name, 50)
            per = (many - few) / 40
            print(f"polyfit {name}: {per / 1e6:.3f} M instructions per step")
        return
    if args.bytecodes:
        for name in names:
            print_bytecodes(name)
        return
    times = measure(args.steps, args.blocks)
    ms = {k: statistics.median(v) for k, v in times.items()}
    print(f"polyfit ({N_POINTS} points, float32), median of {args.blocks} blocks of {args.steps}")
    print(f"  {'runner':12s} {'ms/step':>8s} {'us/op':>7s} {'x torch':>8s}")
    for name, t in ms.items():
        if "torch" in times:
            r = statistics.median(a / b for a, b in zip(times[name], times["torch"]))
            rt = f"{r:8.2f}"
        else:
            rt = "       -"
        print(f"  {name:12s} {t:8.3f} {t * 1e3 / OPS_PER_STEP:7.2f} {rt}")


if __name__ == "__main__":
    main()
