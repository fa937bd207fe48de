"""Data-parallel step time at 1 and N processes, the global batch held fixed.

Workload: ``large`` of ../shared/bench/anchors.py (MLP 784-512-512-10, global batch 256,
Adam lr=1e-3, float32). With N processes each rank computes on 256/N examples and the
gradients (2.7 MB) are averaged with ``average_gradients`` (one MPI_Allreduce per 4 MiB
bucket: one here) in the MLX style, ``average_parameter_grads`` in the PyTorch style, or
``torch.nn.parallel.DistributedDataParallel`` during ``backward()`` in the ``ddp`` style
(``chainrule.torch``: ``init_process_group``, ``DDP``, one 25 MiB bucket).

Reported per step (rank 0, median of blocks): the step time, the time inside MPI calls
("comm", which includes waiting for the slower rank), the gradient averaging alone after a
barrier ("reduce": the transfer itself), and the speed-up over 1 process with
1 BLAS thread. Each configuration is PROCSxTHREADS (BLAS threads per process): by default
1x1, 1xC (every core in one process) and Nx(C/N), C being the number of cores. On a shared
machine a multi-threaded BLAS suffers most from other load: compare the rows run together.

Usage: python benchmarks/distributed.py [--configs 1x1 1x2 2x1] [--style mlx torch ddp]
       [--steps 30] [--blocks 5]
Needs mpi4py and mpiexec for N > 1 (pip install 'chainrule[distributed]').
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(style: str, steps: int, blocks: int) -> None:
    """One rank's measurement; rank 0 prints a JSON line."""
    sys.path.insert(0, HERE)
    from training import MLP, WORKLOADS, make_data

    import chainrule.core as mx
    import chainrule.distributed as dist
    import chainrule.nn as nn
    import chainrule.optimizers as optim
    from chainrule.distributed.data_parallel import _chunk

    world = dist.init()
    rank, size = world.rank(), world.size()
    cfg = WORKLOADS["large"]
    data = []
    for x, y in make_data(cfg["sizes"], cfg["batch"]):
        lo, hi = _chunk(len(x), size, rank)
        data.append((mx.array(x[lo:hi]), mx.array(y[lo:hi])))
    mx.random.seed(0)

    if style == "mlx":
        model = MLP(cfg["sizes"])
        opt = optim.Adam(learning_rate=1e-3)
        dist.broadcast_parameters(model)

        def loss_fn(m, x, y):
            return nn.losses.cross_entropy(m(x), y, reduction="mean")

        lg = nn.value_and_grad(model, loss_fn)

        def step(k):
            loss, grads = lg(model, *data[k % len(data)])
            opt.update(model, dist.average_gradients(grads))
            return loss

    elif style == "ddp":
        import chainrule.torch as torch
        import chainrule.torch.distributed as tdist
        from chainrule.torch.nn.parallel import DistributedDataParallel

        os.environ.setdefault("RANK", "0")  # one process without a launcher: torchrun's
        os.environ.setdefault("WORLD_SIZE", "1")
        tdist.init_process_group("gloo")
        layers = []
        for a, b in zip(cfg["sizes"][:-1], cfg["sizes"][1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1])
        model = DistributedDataParallel(net)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        lf = torch.nn.CrossEntropyLoss()

        def step(k):
            x, y = data[k % len(data)]
            opt.zero_grad()
            loss = lf(model(x), y)
            loss.backward()
            opt.step()
            return loss

    else:
        layers = []
        for a, b in zip(cfg["sizes"][:-1], cfg["sizes"][1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        params = model.parameters()
        opt = optim.Adam(params, lr=1e-3)
        lf = nn.CrossEntropyLoss()
        dist.broadcast_parameters(model)

        def step(k):
            x, y = data[k % len(data)]
            opt.zero_grad()
            loss = lf(model(x), y)
            loss.backward()
            dist.average_parameter_grads(params)
            opt.step()
            return loss

    for k in range(5):
        step(k)
    times, comms = [], []
    for _ in range(blocks):
        dist.barrier()
        dist.reset_comm_stats()
        t0 = time.perf_counter()
        for k in range(steps):
            loss = step(k)
        times.append((time.perf_counter() - t0) / steps * 1e3)
        comms.append(dist.comm_stats()["seconds"] / steps * 1e3)
    loss = float(dist.all_sum(loss).item()) / size
    # The gradient averaging alone, ranks lined up by a barrier first: the transfer itself,
    # without the waiting for a slower rank that "comm" above includes.
    grads = [mx.zeros(p.shape) for p in model.trainable_parameters()]
    alone = []
    for _ in range(steps if size > 1 else 0):
        dist.barrier()
        t0 = time.perf_counter()
        dist.average_gradients(grads)
        alone.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        print(
            json.dumps(
                {
                    "procs": size,
                    "style": style,
                    "ms_step": statistics.median(times),
                    "ms_comm": statistics.median(comms),
                    "ms_allreduce": statistics.median(alone) if alone else 0.0,
                    "local_batch": int(data[0][0].shape[0]),
                    "loss": loss,
                }
            ),
            flush=True,
        )


def run(procs: int, threads: int, style: str, steps: int, blocks: int) -> dict | None:
    threads = str(threads)
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads
    )
    program = [
        __file__,
        "--worker",
        "--style",
        style,
        "--steps",
        str(steps),
        "--blocks",
        str(blocks),
    ]
    if procs == 1:
        cmd = [sys.executable, *program]
    else:
        from chainrule.distributed.launch import mpiexec_command

        try:
            cmd = mpiexec_command(procs, program)
        except FileNotFoundError as e:
            print(f"  {procs} processes: skipped ({e})")
            return None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        print(f"  {procs} processes failed:\n{out.stdout}\n{out.stderr}")
        return None
    return json.loads(lines[-1])


def _configs(text: list[str] | None) -> list[tuple[int, int]]:
    cores = os.cpu_count() or 1
    if not text:
        out = [(1, 1), (1, cores)] + [(n, max(1, cores // n)) for n in (2,)]
        return list(dict.fromkeys(out))
    out = []
    for t in text:
        procs, _, threads = t.partition("x")
        out.append((int(procs), int(threads or max(1, cores // int(procs)))))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", help="PROCSxTHREADS, e.g. 1x1 1x2 2x1")
    p.add_argument("--style", nargs="+", default=["mlx", "torch"], choices=["mlx", "torch", "ddp"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.style[0], args.steps, args.blocks)
        return
    configs = _configs(args.configs)
    print(f"large workload: MLP 784-512-512-10, global batch 256, Adam; {os.cpu_count()} cores")
    print(
        f"  {'style':6s} {'procs x threads':>15s} {'batch/rank':>10s} {'ms/step':>8s} "
        f"{'comm ms':>8s} {'comm %':>7s} {'reduce ms':>9s} {'speed-up':>8s}"
    )
    for style in args.style:
        base = None
        for n, threads in configs:
            r = run(n, threads, style, args.steps, args.blocks)
            if r is None:
                continue
            if base is None and (n, threads) == (1, 1):
                base = r["ms_step"]
            speed = f"{base / r['ms_step']:8.2f}" if base else "       -"
            share = 100 * r["ms_comm"] / r["ms_step"]
            label = f"{n} x {threads}"
            print(
                f"  {style:6s} {label:>15s} {r['local_batch']:10d} {r['ms_step']:8.2f} "
                f"{r['ms_comm']:8.2f} {share:6.1f}% {r['ms_allreduce']:9.2f} {speed}",
                flush=True,
            )


if __name__ == "__main__":
    main()
