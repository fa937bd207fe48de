"""Memory of a training run against the NumPy floor's: peak, and growth over many steps.

Each measurement runs in its own subprocess, so one runner's peak cannot hide another's:

  peak    ``large`` workload (MLP 784-512-512-10, batch 256, Adam), ``--peak-steps`` steps.
          Peak resident memory (the kernel's high-water mark, VmHWM; getrusage's ru_maxrss
          where /proc is missing) above the resident memory after imports and data creation;
          the high-water mark is reset there (/proc/self/clear_refs) so the transient peak of
          building the data does not count. ``setup`` is what building the runner takes
          (parameters; for chainrule also its own copy of the data batches, since ``mx.array``
          copies like MLX's), reported apart with the copy's size, which is not training memory.
  traced  the same, under tracemalloc: peak of Python and NumPy allocations (NumPy reports its
          buffers to tracemalloc) made after the baseline. Not for PyTorch, whose buffers
          tracemalloc cannot see.
  growth  ``seed`` workload (MLP 784-128-10, batch 64, SGD), ``--steps`` steps (default 10,000,
          the issue's target): resident memory after step 1,000 against after the last step,
          and the number of objects the garbage collector tracks at the same two points.

Runners are those of ``training.py``: numpy (the floor), mlx (chainrule, MLX style), torchstyle
(chainrule, PyTorch style), compiled (``mx.compile``, with ``--compiled``), torch (PyTorch, when
installed). Prints progress on stderr and, on stdout, Markdown tables for docs/performance.md.

Usage: python benchmarks/memory.py [--steps 10000] [--peak-steps 50] [--quick] [--compiled]
Default run: about 1-1.5 minutes on an idle 2-core machine (several times that when other work
loads it: the growth runs are 10,000 steps each); ``--quick`` (2,000 growth steps): ~20 s.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402
from scaling import MachineLoad, have_torch, machine_line  # noqa: E402

MB = 1024 * 1024
GROWTH_FROM = 1000


def rss_now() -> int:
    """Resident memory of this process now, in bytes (Linux /proc; else the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return rss_peak()


def rss_peak() -> int:
    """Peak resident memory of this process, in bytes.

    The kernel's high-water mark (VmHWM) where /proc has it: getrusage's ru_maxrss also counts
    the parent's resident memory at fork, since a child starts with its parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's resident high-water mark to the current RSS, where Linux allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def make_runner(name: str, workload: str):
    """Import what ``name`` needs, make the workload's data; return a thunk building the step."""
    if name == "torch":
        import torch  # noqa: F401  (its import is part of the baseline, not of training)
    cfg = training.WORKLOADS[workload]
    data = training.make_data(cfg["sizes"], cfg["batch"])
    makers = {
        "numpy": training.numpy_runner,
        "mlx": training.mlx_runner,
        "torchstyle": training.torchstyle_runner,
        "compiled": lambda s, o, d: training.mlx_runner(s, o, d, compiled=True),
        "torch": training.torch_runner,
    }
    # The bytes of data the runner copies: chainrule's mx.array copies (as MLX's does), the
    # floor uses the batches as they are, and PyTorch's runner wraps them with from_numpy.
    copied = 0
    if name in ("mlx", "torchstyle", "compiled"):
        import chainrule.core as mx

        x = data[0][0]
        if not np.shares_memory(mx.array(x)._data, x):
            copied = sum(a.nbytes for batch in data for a in batch)
    return (lambda: makers[name](cfg["sizes"], cfg["opt"], data)), copied


def child_peak(name: str, steps: int, traced: bool) -> dict:
    """Peak memory of ``steps`` steps of the large workload, above the post-import baseline."""
    build, copied = make_runner(name, "large")
    gc.collect()
    if traced:
        import tracemalloc

        tracemalloc.start()
        step = build()
        setup = tracemalloc.get_traced_memory()[0]
        for k in range(steps):
            step(k)
        current, peak = tracemalloc.get_traced_memory()
        return dict(setup=setup, peak=peak, end=current, copied=copied)
    base = rss_now()
    exact = reset_peak()
    step = build()
    gc.collect()
    setup = rss_now() - base
    for k in range(steps):
        step(k)
    return dict(
        setup=setup,
        peak=rss_peak() - base,
        end=rss_now() - base,
        exact=exact,
        copied=copied,
    )


def child_growth(name: str, steps: int) -> dict:
    """Resident memory and gc-tracked objects after step 1,000 and after step ``steps``."""
    build, _ = make_runner(name, "seed")
    step = build()
    points = {}
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
        if k + 1 == GROWTH_FROM or k + 1 == steps:
            points[k + 1] = dict(rss=rss_now(), objects=len(gc.get_objects()))
    first, last = points[min(points)], points[steps]
    return dict(
        rss_from=first["rss"],
        rss_to=last["rss"],
        objects_from=first["objects"],
        objects_to=last["objects"],
        ms_per_step=(time.perf_counter() - t0) / steps * 1e3,
    )


def in_child(mode: str, name: str, steps: int) -> dict:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, name, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{mode} {name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mb(b: float) -> str:
    return f"{b / MB:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="growth steps (default 10000)")
    p.add_argument("--peak-steps", type=int, default=None, help="peak steps (default 50)")
    p.add_argument("--quick", action="store_true", help="2,000 growth steps, 20 peak steps")
    p.add_argument("--compiled", action="store_true", help="also measure mx.compile")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--child", nargs=3, metavar=("MODE", "RUNNER", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, name, steps = args.child
        if mode == "growth":
            result = child_growth(name, int(steps))
        else:
            result = child_peak(name, int(steps), traced=mode == "traced")
        print(json.dumps(result))
        return
    steps = args.steps or (2000 if args.quick else 10000)
    if steps <= GROWTH_FROM:
        p.error(f"--steps must exceed {GROWTH_FROM}, got {steps}")
    peak_steps = args.peak_steps or (20 if args.quick else 50)
    names = ["numpy", "mlx", "torchstyle"] + ["compiled"] * args.compiled
    names += ["torch"] * (have_torch() and not args.no_torch)

    load = MachineLoad()
    t0 = time.perf_counter()
    res = {}
    for name in names:
        for mode, n in [("peak", peak_steps), ("traced", peak_steps), ("growth", steps)]:
            if mode == "traced" and name == "torch":
                continue
            t = time.perf_counter()
            res[mode, name] = in_child(mode, name, n)
            print(f"{mode:6s} {name:10s} {time.perf_counter() - t:6.1f} s", file=sys.stderr)
    seconds = time.perf_counter() - t0

    label = {
        "numpy": "NumPy floor",
        "mlx": "chainrule, MLX style",
        "torchstyle": "chainrule, PyTorch style",
        "compiled": "chainrule, mx.compile",
        "torch": "PyTorch",
    }
    floor, floor_t = res["peak", "numpy"]["peak"], res["traced", "numpy"]["peak"]
    exact = all(r.get("exact", True) for r in res.values())
    print(
        f"Memory, {datetime.date.today().isoformat()}; {machine_line()}; {load.note()}; "
        f"{seconds:.0f} s in all."
    )
    print()
    print(
        f"Peak of the `large` workload (784-512-512-10, batch 256, Adam, {peak_steps} steps), MB "
        "above the memory after imports and data"
        + ("" if exact else " (high-water mark not resettable here: peaks may be low)")
        + ". `setup` is building the runner: parameters, the floor's Adam state, and the copy "
        "of the data batches a runner makes (`copied`: chainrule's `mx.array` copies, like "
        "MLX's; the floor and PyTorch's `from_numpy` do not); `less copy` is the peak without "
        "that copy, which is not training memory. `traced` is tracemalloc's peak of Python and "
        "NumPy allocations."
    )
    print()
    print(
        "| runner | peak RSS | x floor | setup | copied | less copy, x floor "
        "| traced peak | x floor | traced setup | less copy, x floor |"
    )
    print("|---|" + "---:|" * 9)
    for name in names:
        r, t = res["peak", name], res.get(("traced", name))
        c = r["copied"]
        cells = [label[name], mb(r["peak"]), f"{r['peak'] / floor:.2f}", mb(r["setup"]), mb(c)]
        cells.append(f"{(r['peak'] - c) / floor:.2f}")
        if t:
            cells += [mb(t["peak"]), f"{t['peak'] / floor_t:.2f}", mb(t["setup"])]
            cells.append(f"{(t['peak'] - c) / floor_t:.2f}")
        else:
            cells += ["-"] * 4
        print("| " + " | ".join(cells) + " |")
    print()
    print(
        f"Growth on the `seed` workload (784-128-10, batch 64, SGD): resident memory and "
        f"gc-tracked objects after step {GROWTH_FROM:,} and after step {steps:,}."
    )
    print()
    print(
        f"| runner | RSS at {GROWTH_FROM:,} (MB) | RSS at {steps:,} (MB) | growth (MB) "
        "| gc objects growth | ms/step |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        g = res["growth", name]
        cells = [
            label[name],
            mb(g["rss_from"]),
            mb(g["rss_to"]),
            f"{(g['rss_to'] - g['rss_from']) / MB:+.2f}",
            f"{g['objects_to'] - g['objects_from']:+d}",
            f"{g['ms_per_step']:.2f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
