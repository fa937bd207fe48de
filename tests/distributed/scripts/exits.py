"""One rank ends while the others wait for it; the whole job must end, not hang.

Usage: mpiexec -n N python exits.py MODE
  raise:     rank 1 raises while rank 0 waits in all_sum.
  exit0:     rank 1 calls sys.exit(0) while rank 0 waits in all_sum.
  exit0-late: rank 1 calls sys.exit(0) at once; rank 0 calls all_sum a second later.
  exit3:     rank 1 calls sys.exit(3) while rank 0 waits in all_sum.
  return:    rank 1's script returns while rank 0 waits in broadcast.
  sigterm:   rank 1 receives SIGTERM while rank 0 waits in barrier.
  raw:       rank 1 calls sys.exit(0) while rank 0 waits in an mpi4py Barrier of its own
             (run with a short CHAINRULE_MPI_EXIT_TIMEOUT).
  all-fail:  every rank calls sys.exit(2) after a collective.
  normal:    a complete program (N >= 3): the last rank ends first; the others then sum over
             a subgroup without it, ranks 0 and 1 send and receive, and rank 0 works on
             after the others have ended.
Prints "rank R passed ...: the job did not stop" where a rank gets past a point it must not.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import chainrule.core as mx
import chainrule.distributed as dist


def main() -> None:
    mode = sys.argv[1]
    world = dist.init()
    rank, size = world.rank(), world.size()
    dist.barrier()  # both ranks are up
    if mode == "normal":
        normal(world)
        return
    if mode == "all-fail":
        dist.all_sum(mx.ones(1))
        sys.exit(2)
    if rank == 1:
        if mode == "exit0-late":
            sys.exit(0)
        time.sleep(0.5)  # rank 0 is waiting by now
        if mode == "raise":
            raise RuntimeError("deliberate failure on rank 1")
        if mode == "exit0":
            sys.exit(0)
        if mode == "exit3":
            print("rank 1: giving up with status 3", file=sys.stderr, flush=True)
            sys.exit(3)
        if mode == "return":
            return
        if mode == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        if mode == "raw":
            sys.exit(0)
        raise SystemExit(f"unknown mode {mode!r}")
    if mode == "exit0-late":
        time.sleep(1.0)
    if mode == "return":
        dist.broadcast(np.zeros(3), root=1)
    elif mode == "sigterm":
        dist.barrier()
    elif mode == "raw":
        world.comm.Barrier()
    else:
        dist.all_sum(mx.ones(3))
    print(f"rank {rank} of {size} passed the collective: the job did not stop", flush=True)


def normal(world: dist.Group) -> None:
    rank, size = world.rank(), world.size()
    total = dist.all_sum(mx.array([float(rank)]))
    assert total.item() == size * (size - 1) / 2
    last = size - 1
    sub = world.split(int(rank == last))
    if rank == last:
        print(f"rank {rank} done", flush=True)
        return  # ends first; the others are told after 0.2 s
    time.sleep(1.0)  # rank `last` has ended and said so
    got = dist.all_sum(mx.ones(1), group=sub)  # it is not in this group: no abort
    assert got.item() == size - 1
    # point to point in the world group, between ranks that are still running: no abort
    if rank == 0:
        dist.send(mx.arange(3), 1)
    elif rank == 1:
        assert dist.recv_like(mx.arange(3), 0).tolist() == [0, 1, 2]
    if rank == 0:
        time.sleep(1.0)  # work on alone (writing files) while the others wait at their end
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main()
