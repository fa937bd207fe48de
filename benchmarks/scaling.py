"""Scaling table: chainrule's training-step time over the NumPy floor as batch and width grow.

An MLP 784-W-W-10 trained with Adam (and SGD with ``--opt adam sgd``), at
  batch 16, 64, 256, 1024, 4096 with width 512, and
  width 64, 256, 1024, 4096 with batch 256.
At each size the runners of ``training.py`` (the hand-written NumPy floor, chainrule MLX style,
chainrule PyTorch style, PyTorch itself when installed, and ``mx.compile`` with ``--compiled``)
are measured in the same run, interleaved (the order rotates from block to block), and the
ratio to the floor is the median over blocks of each block's ratio, so a load change on the
machine hits both sides of a ratio alike. Steps per block shrink as sizes grow so each block
lasts about ``--block-seconds`` for the slowest runner, but never below ``--min-steps``: at the
largest sizes one step's time swings with the kernel's work on fresh memory.
Each block follows ``--settle`` seconds of rest: the BLAS and PyTorch worker threads spin for
tens of milliseconds after their last call, and would otherwise slow the next runner's first
steps (PyTorch's 10-step blocks at batch 256, width 512: 13.8 ms/step without rest, 7.0 with).

Prints progress on stderr and, on stdout, a Markdown table for docs/performance.md.

Usage: python benchmarks/scaling.py [--quick] [--opt adam [sgd]] [--blocks 5]
                                    [--block-seconds 0.25] [--min-steps 2] [--settle 0.2]
                                    [--compiled]
Default run: about 2 minutes on an idle 2-core machine, up to 3 when other work loads it
(width 4096 dominates); ``--quick``: 15-30 seconds.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402

BATCHES = [16, 64, 256, 1024, 4096]
BATCH_WIDTH = 512
WIDTHS = [64, 256, 1024, 4096]
WIDTH_BATCH = 256
LABELS = {
    "numpy": "NumPy floor",
    "mlx": "MLX style",
    "torchstyle": "PyTorch style",
    "compiled": "mx.compile",
    "torch": "PyTorch",
}


class MachineLoad:
    """How busy other processes kept the machine while a benchmark ran.

    Other work on a 2-core machine slows a multi-threaded BLAS far more than its share of the
    CPU (a thread waits at each barrier for a core), so a table says how loaded it was: the
    load average, and the fraction of all CPU time that processes other than this one and its
    children used between construction and ``note()`` (from /proc/stat; Linux only).
    """

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                j = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        t = os.times()
        ours = t.user + t.system + t.children_user + t.children_system
        # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
        return (sum(j[:3]) + sum(j[5:8])) / hz, sum(j) / hz, ours

    def others(self) -> float | None:
        """Fraction of all CPU time other processes used since construction (None if unknown)."""
        end = self._sample()
        if not (self.start and end and end[1] > self.start[1]):
            return None
        busy, total, ours = (e - s for e, s in zip(end, self.start))
        return max(0.0, busy - ours) / total

    def note(self) -> str:
        """One sentence on the load, from construction until now."""
        text = f"load average {self.load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
        others = self.others()
        if others is not None:
            text += f"; other processes used {100 * others:.0f}% of the machine's CPU time"
        return text


def have_torch() -> bool:
    """Whether PyTorch is installed (without importing it, which costs memory and time)."""
    return importlib.util.find_spec("torch") is not None


def make_runners(sizes: list[int], opt: str, data: list, compiled: bool, torch: bool) -> dict:
    """The runners of ``training.py`` for one size, the floor first."""
    runners = {
        "numpy": training.numpy_runner(sizes, opt, data),
        "mlx": training.mlx_runner(sizes, opt, data),
        "torchstyle": training.torchstyle_runner(sizes, opt, data),
    }
    if compiled:
        runners["compiled"] = training.mlx_runner(sizes, opt, data, compiled=True)
    if torch:
        runners["torch"] = training.torch_runner(sizes, opt, data)
    return runners


def time_steps(step, first: int, count: int) -> float:
    """Seconds per step of ``count`` steps of ``step``, starting at step index ``first``."""
    t0 = time.perf_counter()
    for k in range(first, first + count):
        step(k)
    return (time.perf_counter() - t0) / count


def measure_blocks(
    runners: dict, blocks: int, block_seconds: float, min_steps: int = 1, settle: float = 0.2
) -> tuple[dict, int]:
    """Per-block milliseconds per step of every runner, interleaved.

    Args:
        runners: name -> step function taking the step index.
        blocks: number of timed blocks per runner.
        block_seconds: target length of one block of the slowest runner.
        min_steps: fewest steps in a block, however slow a step is.
        settle: seconds of rest before each block, untimed.

    Returns:
        (name -> list of ms/step, one per block; steps per block).
    """
    # Two warm-up steps cover lazy work done on the first call (optimizer state, tracing);
    # the next, timed, sets the number of steps per block (for fast steps, the mean of five
    # more if lower, so one step slowed by other work on the machine does not set it).
    slowest = 0.0
    for step in runners.values():
        time_steps(step, 0, 2)
        t = time_steps(step, 2, 1)
        if t < 0.05:
            t = min(t, time_steps(step, 3, 5))
        slowest = max(slowest, t)
    steps = max(min_steps, min(500, round(block_seconds / slowest)))
    warm = min(10, steps)
    for step in runners.values():
        time_steps(step, 3, warm)
    names = list(runners)
    times = {name: [] for name in names}
    for b in range(blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            # OpenBLAS's and PyTorch's worker threads spin for a while after their last call,
            # holding the cores the next runner's threads need: let them go idle first.
            time.sleep(settle)
            times[name].append(time_steps(runners[name], 0, steps) * 1e3)
    return times, steps


def ratios(times: dict) -> dict:
    """name -> median over blocks of (runner's ms / floor's ms in the same block)."""
    floor = times["numpy"]
    return {name: statistics.median(t / f for t, f in zip(ts, floor)) for name, ts in times.items()}


def sizes_to_run(quick: bool) -> list[tuple[int, int]]:
    """(batch, width) pairs: the batch sweep at width 512, then the width sweep at batch 256."""
    if quick:
        return [(16, 512), (256, 512), (4096, 512), (256, 64), (256, 1024)]
    return [(b, BATCH_WIDTH) for b in BATCHES] + [(WIDTH_BATCH, w) for w in WIDTHS]


def run(args: argparse.Namespace) -> list[dict]:
    """Measure every size and optimizer; return one row per (optimizer, batch, width)."""
    torch = have_torch() and not args.no_torch
    rows = []
    for opt in args.opt:
        for batch, width in sizes_to_run(args.quick):
            sizes = [784, width, width, 10]
            data = training.make_data(sizes, batch, n_batches=16 if batch <= 256 else 4)
            runners = make_runners(sizes, opt, data, args.compiled, torch)
            t0 = time.perf_counter()
            load = MachineLoad()
            times, steps = measure_blocks(
                runners, args.blocks, args.block_seconds, args.min_steps, args.settle
            )
            row = dict(
                opt=opt,
                batch=batch,
                width=width,
                steps=steps,
                floor_ms=statistics.median(times["numpy"]),
                ratio=ratios(times),
                others=load.others(),
            )
            rows.append(row)
            print(
                f"{opt} batch {batch:5d} width {width:5d}: {steps:4d} steps/block, "
                f"floor {row['floor_ms']:9.3f} ms, "
                + ", ".join(f"{n} {r:.2f}x" for n, r in row["ratio"].items() if n != "numpy")
                + f"  ({time.perf_counter() - t0:.1f} s, load {os.getloadavg()[0]:.2f})",
                file=sys.stderr,
                flush=True,
            )
            del runners, data
            gc.collect()
    return rows


def machine_line() -> str:
    """One line naming the software and the core count the table came from."""
    parts = [
        f"{os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        f"NumPy {np.__version__}",
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    return ", ".join(parts)


def markdown(rows: list[dict], blocks: int, load: MachineLoad, seconds: float) -> str:
    """The table for docs/performance.md, with how and where it was measured."""
    names = [n for n in rows[0]["ratio"] if n != "numpy"]
    head = ["optimizer", "batch", "width", "NumPy floor (ms/step)"]
    head += [f"{LABELS[n]} (x floor)" for n in names]
    head.append("others' CPU")
    lines = [
        f"Scaling, MLP 784-W-W-10, {datetime.date.today().isoformat()}: ratio to the NumPy floor, "
        f"median of {blocks} interleaved blocks per size (`others' CPU`: share of the machine's "
        f"CPU time other processes used meanwhile; rows above ~10% are unreliable, as other "
        f"work stalls a 2-thread BLAS far beyond its share); {machine_line()}; "
        f"{load.note()}; {seconds:.0f} s in all.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * 3 + "---:|" * (2 + len(names)),
    ]
    for r in rows:
        cells = [
            r["opt"],
            str(r["batch"]),
            str(r["width"]),
            f"{r['floor_ms']:.3g}" if r["floor_ms"] < 100 else f"{r['floor_ms']:.0f}",
        ]
        cells += [f"{r['ratio'][n]:.2f}" for n in names]
        cells.append("?" if r["others"] is None else f"{100 * r['others']:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--opt", nargs="+", default=["adam"], choices=["adam", "sgd"])
    p.add_argument("--blocks", type=int, default=None, help="timed blocks per size (default 5)")
    p.add_argument("--block-seconds", type=float, default=None, help="default 0.25")
    p.add_argument("--min-steps", type=int, default=None, help="fewest steps a block (default 2)")
    p.add_argument("--settle", type=float, default=0.2, help="rest before each block, s")
    p.add_argument("--quick", action="store_true", help="5 sizes, 3 short blocks (~30 s)")
    p.add_argument("--compiled", action="store_true", help="also time mx.compile")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = p.parse_args()
    if args.blocks is None:
        args.blocks = 3 if args.quick else 5
    if args.min_steps is None:
        args.min_steps = 1 if args.quick else 2
    if args.block_seconds is None:
        args.block_seconds = 0.1 if args.quick else 0.25
    load = MachineLoad()
    t0 = time.perf_counter()
    rows = run(args)
    print(markdown(rows, args.blocks, load, time.perf_counter() - t0))


if __name__ == "__main__":
    main()
