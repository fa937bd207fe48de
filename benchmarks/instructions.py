"""Instructions per training step, from callgrind: the deterministic measure of overhead.

Runs a runner of benchmarks/training.py for 10 and for 60 steps under
``valgrind --tool=callgrind`` (OpenBLAS on one thread) and prints the difference divided by 50,
so start-up and warm-up cancel out. Needs valgrind (Debian's package).

Usage: python benchmarks/instructions.py [--workload seed] [--runner mlx|torchstyle|compiled|numpy]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _steps(workload: str, runner: str, steps: int) -> None:
    sys.path.insert(0, str(HERE))
    import training

    spec = training.WORKLOADS[workload]
    data = training.make_data(spec["sizes"], spec["batch"])
    make = {
        "numpy": training.numpy_runner,
        "mlx": training.mlx_runner,
        "torchstyle": training.torchstyle_runner,
        "compiled": lambda *a: training.mlx_runner(*a, compiled=True),
    }[runner]
    step = make(spec["sizes"], spec["opt"], data)
    for k in range(steps):
        step(k)


def count(workload: str, runner: str, steps: int) -> int:
    """Instructions callgrind counts for a whole run of ``steps`` steps.

    Args:
        workload: "seed" or "large".
        runner: which runner of benchmarks/training.py.
        steps: the number of training steps.

    Returns:
        The total instruction count.
    """
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
            workload,
            runner,
            str(steps),
        ]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        m = re.search(r"^summary:\s+(\d+)", out.read_text(), re.M)
        return int(m.group(1))


def main() -> None:
    """Prints instructions per step for the chosen runner."""
    if sys.argv[1:2] == ["--run"]:
        _steps(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="seed", choices=["seed", "large"])
    p.add_argument("--runner", default="mlx", choices=["numpy", "mlx", "torchstyle", "compiled"])
    args = p.parse_args()
    few, many = count(args.workload, args.runner, 10), count(args.workload, args.runner, 60)
    print(f"{args.workload} {args.runner}: {(many - few) / 50 / 1e6:.3f} M instructions per step")


if __name__ == "__main__":
    main()
