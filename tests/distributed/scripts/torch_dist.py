"""PyTorch's torch.distributed and DistributedDataParallel on 2 processes; prints 'rank R ok'.

Usage: mpiexec -n 2 python torch_dist.py
A failed assertion reaches the excepthook that init_process_group installs (through
chainrule.distributed.init), which aborts the job.
"""

from __future__ import annotations

import os

import numpy as np

import chainrule.torch as torch
import chainrule.torch.distributed as dist
from chainrule.core.backend import to_host
from chainrule.torch.nn.parallel import DistributedDataParallel as DDP
from chainrule.torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def close(a, b, tol=1e-6):
    a = np.asarray(to_host(a._data) if hasattr(a, "_data") else a, dtype=np.float64)
    np.testing.assert_allclose(a, np.asarray(b, dtype=np.float64), rtol=tol, atol=tol)


def raises(kind, fn, text):
    try:
        fn()
    except kind as e:
        assert text in str(e), str(e)
    else:
        raise AssertionError(f"expected {kind.__name__} containing {text!r}")


def collectives(r: int, n: int) -> None:
    R = dist.ReduceOp
    cases = (
        (R.SUM, [3, 6]),
        (R.AVG, [1.5, 3]),
        (R.MAX, [2, 4]),
        (R.MIN, [1, 2]),
        (R.PRODUCT, [2, 8]),
    )
    for op, expected in cases:
        t = torch.tensor([1.0, 2.0]) * (r + 1)
        before = t._version
        assert dist.all_reduce(t, op=op) is None
        close(t, expected)
        assert t._version == before + 1 and t.dtype == torch.float32
    i = torch.tensor([3, 5]) * (r + 1)
    dist.all_reduce(i)
    assert i.dtype == torch.int64 and i.tolist() == [9, 15]
    b = torch.tensor([r, 1])
    dist.all_reduce(b, op=R.BAND)
    assert b.tolist() == [0, 1]
    work = dist.all_reduce(torch.ones(2), async_op=True)
    assert work.wait() and work.is_completed()

    t = torch.full((3,), float(r))
    dist.broadcast(t, src=1)
    close(t, [1.0, 1.0, 1.0])

    outs = [torch.zeros(2) for _ in range(n)]
    dist.all_gather(outs, torch.tensor([r, r + 10.0]))
    close(outs[0], [0, 10])
    close(outs[1], [1, 11])
    raises(ValueError, lambda: dist.all_gather([torch.zeros(2)], torch.zeros(2)), "1 tensors")
    big = torch.zeros(2 * n)
    dist.all_gather_into_tensor(big, torch.tensor([r, -r], dtype=torch.float32))
    close(big, [0, 0, 1, -1])

    out = torch.zeros(2)
    dist.reduce_scatter(out, [torch.full((2,), (r + 1.0) * (k + 1)) for k in range(n)])
    close(out, [3.0 * (r + 1)] * 2)
    out = torch.zeros(1)
    dist.reduce_scatter_tensor(out, torch.tensor([1.0, 2.0]) * (r + 1), op=R.AVG)
    close(out, [1.5 * (r + 1)])

    t = torch.tensor([float(r + 1)])
    dist.reduce(t, dst=0)
    close(t, [3.0] if r == 0 else [2.0])  # only the destination changes

    if r == 0:
        dist.send(torch.tensor([1.0, 2.0]), dst=1)
        got = torch.zeros(2, dtype=torch.int64)
        assert dist.recv(got) == 1  # any source: the sender's rank
        assert got.tolist() == [7, 8]
    else:
        got = torch.zeros(2)
        assert dist.recv(got, src=0) == 0
        close(got, [1.0, 2.0])
        dist.send(torch.tensor([7, 8]), dst=0)
    peer = 1 - r
    out = torch.zeros(3)
    reqs = [dist.isend(torch.full((3,), float(r)), dst=peer), dist.irecv(out, src=peer)]
    for q in reqs:
        q.wait()
    close(out, [peer] * 3)

    objs = [None, None]
    dist.all_gather_object(objs, {"rank": r})
    assert objs == [{"rank": 0}, {"rank": 1}]
    items = ["a", r] if r == 0 else [None, None]
    dist.broadcast_object_list(items, src=0)
    assert items == ["a", 0]

    # all to all: block j of rank r's input goes to rank j
    out = torch.zeros(4)
    dist.all_to_all_single(out, torch.tensor([0.0, 1.0, 2.0, 3.0]) + 10 * r)
    close(out, [0, 1, 10, 11] if r == 0 else [2, 3, 12, 13])
    out = torch.zeros(3)  # uneven splits: rank 0 sends 1 row to 0 and 2 to 1; rank 1 2 and 1
    sizes_in = [1, 2] if r == 0 else [2, 1]
    sizes_out = [1, 2] if r == 0 else [2, 1]
    dist.all_to_all_single(out, torch.tensor([1.0, 2.0, 3.0]) * (r + 1), sizes_out, sizes_in)
    close(out, [1, 2, 4] if r == 0 else [2, 3, 6])
    outs = [torch.zeros(2, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)]
    if r == 1:
        outs = [torch.zeros(1, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)]
    ins = [torch.tensor([r] * (2 if r == 0 else 1)), torch.tensor([r + 5] * (1 if r == 0 else 3))]
    dist.all_to_all(outs, ins)
    assert [t.tolist() for t in outs] == ([[0, 0], [1]] if r == 0 else [[5], [6, 6, 6]])
    # batched point to point, object lists
    got = torch.zeros(2)
    works = dist.batch_isend_irecv(
        [dist.P2POp(dist.isend, torch.full((2,), r + 1.0), peer), dist.P2POp(dist.irecv, got, peer)]
    )
    for w in works:
        w.wait()
    close(got, [peer + 1.0] * 2)
    gathered = [None, None] if r == 0 else None
    dist.gather_object({"r": r}, gathered, dst=0)
    assert gathered == ([{"r": 0}, {"r": 1}] if r == 0 else None)
    mine = [None]
    dist.scatter_object_list(mine, ["a", "b"] if r == 1 else None, src=1)
    assert mine == [["a", "b"][r]]
    if r == 0:
        dist.send_object_list([1, "two"], dst=1)
    else:
        slots = [None, None]
        assert dist.recv_object_list(slots) == 0 and slots == [1, "two"]
    assert dist.is_backend_available("gloo") and not dist.is_backend_available("nccl")

    # new_group: members ordered by rank; the others get NON_GROUP_MEMBER and no-ops
    solo = dist.new_group([1])
    if r == 1:
        assert dist.get_rank(solo) == 0 and dist.get_world_size(solo) == 1
        assert dist.get_process_group_ranks(solo) == [1]
    else:
        assert solo is dist.GroupMember.NON_GROUP_MEMBER
        assert dist.get_rank(solo) == -1 and dist.get_world_size(solo) == -1
    t = torch.ones(1)
    dist.all_reduce(t, group=solo)
    close(t, [1.0])
    both = dist.new_group([1, 0])
    assert dist.get_rank(both) == r and dist.get_global_rank(both, 1) == 1
    t = torch.ones(1) * (r + 1)
    dist.all_reduce(t, group=both)
    close(t, [3.0])
    dist.barrier()


class Net(torch.nn.Module):
    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.fc2 = torch.nn.Linear(8, 3)
        if extra:
            self.extra = torch.nn.Linear(8, 3)  # used only when asked
        self.register_buffer("steps", torch.zeros(1))

    def forward(self, x, use_extra=False):
        h = torch.relu(self.fc1(x))
        return self.fc2(h) + (self.extra(h) if use_extra else 0)


def arrays(model) -> dict:
    return {k: to_host(v._data) for k, v in model.state_dict().items()}


def data_parallel(r: int, n: int) -> None:
    torch.manual_seed(100 + r)  # different initial parameters on each rank
    net = Net()
    if r == 1:
        net.steps.fill_(5.0)
    model = DDP(net)
    assert model.module is net
    assert list(model.state_dict()) == [f"module.{k}" for k in net.state_dict()]
    start = arrays(net)
    everyone = [None] * n
    dist.all_gather_object(everyone, start)
    for k in start:  # rank 0's parameters and buffers everywhere
        np.testing.assert_array_equal(everyone[0][k], everyone[1][k], err_msg=k)

    rng = np.random.default_rng(0)  # the same global batches on every rank
    X = rng.standard_normal((4, 8, 4)).astype(np.float32)
    Y = rng.integers(0, 3, (4, 8))
    reference = Net()
    reference.load_state_dict({k: torch.tensor(v) for k, v in start.items()})
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    part = slice(r * 4, (r + 1) * 4)
    for step in range(4):
        x, y = torch.tensor(X[step]), torch.tensor(Y[step])
        opt.zero_grad()
        loss_fn(model(x[part]), y[part]).backward()
        ref_opt.zero_grad()
        loss_fn(reference(x), y).backward()
        for p, q in zip(net.parameters(), reference.parameters()):
            close(p.grad, q.grad, 1e-5)  # the average over the ranks = the full batch's
        opt.step()
        ref_opt.step()
    got, want = arrays(net), arrays(reference)
    for k in want:
        if k != "steps":
            close(got[k], want[k], 1e-5)

    # no_sync: two local micro-batches accumulate, the synchronised backward averages the sum
    opt.zero_grad()
    ref_opt.zero_grad()
    x, y = torch.tensor(X[0]), torch.tensor(Y[0])
    with model.no_sync():
        loss_fn(model(x[part][:2]), y[part][:2]).backward()
    both = [None] * n
    dist.all_gather_object(both, to_host(net.fc1.weight.grad._data))
    assert not np.allclose(both[0], both[1])  # not averaged inside no_sync
    loss_fn(model(x[part][2:]), y[part][2:]).backward()
    for half in (slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)):
        loss_fn(reference(x[half]), y[half]).backward()
    for p, q in zip(net.parameters(), reference.parameters()):
        close(p.grad, to_host(q.grad._data) / n, 1e-5)

    # a parameter left unused without find_unused_parameters: PyTorch's error at the next forward
    unused = DDP(Net(extra=True))
    unused(x[part]).sum().backward()
    raises(RuntimeError, lambda: unused(x[part]), "Expected to have finished reduction")

    # find_unused_parameters: `extra` is used on rank 1 only, then on no rank
    torch.manual_seed(7)
    net2 = Net(extra=True)
    model2 = DDP(net2, find_unused_parameters=True)
    out = model2(x[part], use_extra=(r == 1))
    out.sum().backward()
    g = to_host(net2.extra.weight.grad._data)
    both = [None] * n
    dist.all_gather_object(both, g)
    np.testing.assert_array_equal(both[0], both[1])  # averaged with rank 0's zeros
    assert np.abs(g).sum() > 0
    for p in net2.parameters():
        p.grad = None
    model2(x[part]).sum().backward()
    assert net2.extra.weight.grad is None and net2.fc1.weight.grad is not None

    # evaluation without backward arms nothing that could fail later
    with torch.no_grad():
        model2(x[part])
    model2(x[part])


def sampler(r: int, n: int) -> None:
    data = TensorDataset(torch.arange(11))
    s = DistributedSampler(data, shuffle=True, seed=3)
    assert s.num_replicas == n and s.rank == r and len(s) == 6
    s.set_epoch(2)
    mine = list(s)
    shares = [None] * n
    dist.all_gather_object(shares, mine)
    assert sorted(set(shares[0]) | set(shares[1])) == list(range(11))
    loader = DataLoader(data, batch_size=3, sampler=s)
    assert [int(v) for (b,) in loader for v in b.tolist()] == mine


def main() -> None:
    assert os.environ["RANK"] == os.environ["OMPI_COMM_WORLD_RANK"]
    assert os.environ["WORLD_SIZE"] == "2" and "LOCAL_RANK" in os.environ
    assert not dist.is_initialized() and dist.is_available()
    raises(ValueError, dist.get_rank, "Default process group has not been initialized")
    raises(RuntimeError, lambda: dist.init_process_group("nccl"), "NCCL")
    dist.init_process_group(backend="gloo", init_method="env://")
    raises(ValueError, lambda: dist.init_process_group("gloo"), "twice")
    r, n = dist.get_rank(), dist.get_world_size()
    assert n == 2 and dist.get_backend() == "gloo" and dist.is_initialized()
    collectives(r, n)
    data_parallel(r, n)
    sampler(r, n)
    dist.destroy_process_group()
    assert not dist.is_initialized()
    dist.init_process_group("mpi")  # again, the other backend name: the same MPI job
    assert dist.get_backend() == "mpi" and dist.get_world_size() == 2
    dist.destroy_process_group()
    print(f"rank {r} ok", flush=True)


if __name__ == "__main__":
    main()
