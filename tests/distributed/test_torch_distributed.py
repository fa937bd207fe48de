"""PyTorch's torch.distributed, DistributedDataParallel and DistributedSampler: one process
here (errors, a group of one, compared with real PyTorch where it runs without a launcher),
and two real processes (scripts/torch_dist.py under mpiexec)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi_helpers import requires_mpi, run_mpi

import chainrule.torch as torch
import chainrule.torch.distributed as dist
from chainrule.torch.distributed import c10d
from chainrule.torch.nn.parallel import DistributedDataParallel as DDP
from chainrule.torch.utils.data import DistributedSampler


@pytest.fixture
def one_process(monkeypatch):
    """A default group of one process, as ``RANK=0 WORLD_SIZE=1`` gives in PyTorch."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    dist.init_process_group("gloo", init_method="env://")
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_before_init_every_call_gives_pytorchs_error(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier):
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            call()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.all_reduce(torch.ones(2))
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DDP(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        DistributedSampler(list(range(4)))
    with pytest.raises(ValueError, match="environment variable RANK expected, but not set"):
        dist.init_process_group("gloo")
    with pytest.raises(AssertionError, match="Process group cannot be None"):
        dist.destroy_process_group()


def test_init_refuses_what_it_cannot_run(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"not started by an MPI launcher.*mpiexec -n 2"):
        dist.init_process_group("gloo")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(RuntimeError, match="NCCL"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        dist.init_process_group("bogus")
    with pytest.raises(ValueError, match="init_method 'tcp://h:1' is not supported"):
        dist.init_process_group("gloo", init_method="tcp://h:1")
    with pytest.raises(ValueError, match="rank=3 but the MPI launcher made this process rank 0"):
        dist.init_process_group("gloo", rank=3)
    assert not dist.is_initialized()


def test_launcher_variables_become_torchruns(monkeypatch):
    env = {
        "OMPI_COMM_WORLD_RANK": "3",
        "OMPI_COMM_WORLD_SIZE": "4",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
        "LOCAL_RANK": "9",  # already set: kept
    }
    monkeypatch.setattr(c10d.os, "environ", env)
    c10d.export_launcher_ranks()
    got = [env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")]
    assert got == ["3", "4", "9", "2"]
    assert dist.get_node_local_rank() == 9
    hydra = {"PMI_RANK": "1", "PMI_SIZE": "2"}
    monkeypatch.setattr(c10d.os, "environ", hydra)
    c10d.export_launcher_ranks()
    assert hydra["RANK"] == "1" and hydra["LOCAL_WORLD_SIZE"] == "2"
    monkeypatch.setattr(c10d.os, "environ", {})
    assert dist.get_node_local_rank(fallback_rank=3) == 3
    with pytest.raises(RuntimeError, match="LOCAL_RANK is not in the environment"):
        dist.get_node_local_rank()


def test_a_group_of_one(one_process):
    assert dist.is_initialized() and dist.get_backend() == "gloo" == dist.Backend.GLOO
    assert dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.group.WORLD is dist.GroupMember.WORLD and dist.group.WORLD.size() == 1
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group("gloo")
    t = torch.tensor([1.0, 4.0])
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.AVG, dist.ReduceOp.MAX, dist.ReduceOp.PRODUCT):
        assert dist.all_reduce(t, op=op) is None
        np.testing.assert_array_equal(t.numpy(), [1.0, 4.0])
    assert repr(dist.ReduceOp.AVG) == "<RedOpType.AVG: 1>"
    work = dist.broadcast(t, 0, async_op=True)
    assert work.wait() and work.is_completed()
    outs = [torch.zeros(2)]
    dist.all_gather(outs, t)
    np.testing.assert_array_equal(outs[0].numpy(), [1.0, 4.0])
    with pytest.raises(ValueError, match="tensor_list has 2 tensors but the group has 1"):
        dist.all_gather([torch.zeros(2), torch.zeros(2)], t)
    with pytest.raises(TypeError, match="Expected parameter `tensor` of type torch.Tensor"):
        dist.all_reduce([1.0])
    out = torch.zeros(2)
    dist.reduce_scatter(out, [torch.tensor([2.0, 3.0])])
    np.testing.assert_array_equal(out.numpy(), [2.0, 3.0])
    out = torch.zeros(4)
    dist.all_to_all_single(out, torch.arange(4.0))
    np.testing.assert_array_equal(out.numpy(), [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="input_split_sizes .* must have 1 entries summing to 4"):
        dist.all_to_all_single(out, torch.arange(4.0), input_split_sizes=[1, 3])
    with pytest.raises(ValueError, match="Expected ``op`` to be of type"):
        dist.P2POp(dist.send, t, 0)
    assert dist.is_backend_available("mpi") == dist.is_available()
    assert not dist.is_backend_available("nccl") and not dist.is_ucc_available()
    assert dist.get_default_backend_for_device("cpu") == "gloo"
    assert issubclass(dist.DistBackendError, dist.DistError)
    g = dist.new_group([0])
    assert dist.get_process_group_ranks(g) == [0] and dist.get_rank(g) == 0
    with pytest.raises(ValueError, match=r"ranks \[1\] are outside the default group"):
        dist.new_group([0, 1])
    dist.destroy_process_group()
    assert not dist.is_initialized() and dist.group.WORLD is None


def test_ddp_in_one_process_is_the_module(one_process):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model = DDP(net, device_ids=None, find_unused_parameters=True, bucket_cap_mb=1)
    assert model.module is net
    assert list(model.state_dict()) == [f"module.{k}" for k in net.state_dict()]
    x = torch.randn(5, 3)
    np.testing.assert_array_equal(model(x).detach().numpy(), net(x).detach().numpy())
    with model.no_sync():
        model(x).sum().backward()
    assert net[0].weight.grad is not None
    assert isinstance(model, torch.nn.Module) and "DistributedDataParallel" in repr(model)


def test_sampler_matches_pytorch_on_padding_and_drop_last():
    tref = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as Ref

    for n in (3, 10, 11):
        for k in (2, 3, 4):
            for drop in (False, True):
                for r in range(k):
                    ours = DistributedSampler(list(range(n)), k, r, shuffle=False, drop_last=drop)
                    ref = Ref(list(range(n)), k, r, shuffle=False, drop_last=drop)
                    assert list(ours) == list(ref) and len(ours) == len(ref), (n, k, drop, r)
    with pytest.raises(
        ValueError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"
    ):
        DistributedSampler(list(range(4)), 2, 2)
    del tref


def test_sampler_shuffles_as_pytorch_to_the_index():
    pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as Ref

    for n, k, seed, epoch, drop in [
        (10, 2, 0, 0, False),
        (11, 3, 7, 4, False),
        (11, 4, 7, 4, True),
        (1000, 4, 123, 2, False),
        (1, 2, 5, 0, False),
        (3, 1, 2**32 + 9, 1, False),  # PyTorch keeps the seed's low 32 bits
    ]:
        for r in range(k):
            ours = DistributedSampler(list(range(n)), k, r, seed=seed, drop_last=drop)
            ref = Ref(list(range(n)), k, r, seed=seed, drop_last=drop)
            ours.set_epoch(epoch)
            ref.set_epoch(epoch)
            assert list(ours) == list(ref), (n, k, seed, epoch, drop, r)


def test_sampler_shuffles_the_same_order_for_any_number_of_processes():
    """Each global batch of N processes is one process's batch of N times the size."""
    one = list(DistributedSampler(list(range(40)), 1, 0, seed=5))
    shares = [list(DistributedSampler(list(range(40)), 4, r, seed=5)) for r in range(4)]
    for step in range(10):
        together = sorted(s[step] for s in shares)
        assert together == sorted(one[4 * step : 4 * step + 4])


@requires_mpi
def test_torch_distributed_and_ddp_on_two_processes():
    run = run_mpi("torch_dist.py")
    assert run.returncode == 0, run.output
    assert "rank 0 ok" in run.stdout and "rank 1 ok" in run.stdout
