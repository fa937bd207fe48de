"""chainrule.distributed without MPI: a group of one process, and the packing logic on a
simulated two-process group (no mpi4py needed)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.distributed as dist
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.distributed import gradients, group, ops
from chainrule.distributed.data_parallel import _chunk
from chainrule.train import Callback, History, ModelCheckpoint, fit
from chainrule.train.fit import _rank_zero_only


@pytest.fixture(autouse=True)
def not_launched(monkeypatch):
    """As if started with plain python, whatever runs the tests."""
    for var in group._LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(group, "_WORLD", None)


# ------------------------------------------------------------------ a group of one process


def test_init_without_a_launcher_is_a_group_of_one():
    g = dist.init()
    assert (g.rank(), g.size()) == (0, 1)
    assert g.comm is None
    assert repr(g) == "Group(rank=0, size=1)"
    assert g.split(3).size() == 1
    assert isinstance(dist.is_available(), bool)
    assert dist.is_available("ring") is False


def test_init_backends():
    with pytest.raises(ValueError, match="backend must be one of"):
        dist.init(backend="tcp")
    with pytest.raises(ValueError, match="backend must be one of"):
        dist.is_available("tcp")
    assert dist.init(backend="ring").size() == 1
    with pytest.raises(RuntimeError, match="'nccl' backend is not implemented"):
        dist.init(strict=True, backend="nccl")


def test_init_checks_all_gather_factory_as_mlx():
    with pytest.raises(ValueError, match="only supported with backend='jaccl'"):
        dist.init(backend="ring", all_gather_factory=lambda rank, size: None)
    with pytest.raises(TypeError, match="all_gather_factory must be a callable"):
        dist.init(backend="jaccl", all_gather_factory="not callable")
    assert dist.init(backend="jaccl", all_gather_factory=lambda rank, size: None).size() == 1


def test_sum_scatter_and_clip_grad_norm_sharded_in_a_group_of_one():
    x = mx.arange(6.0).reshape(3, 2)
    assert dist.sum_scatter(x) is x
    with pytest.raises(ValueError, match=r"first axis of x must divide .* got shape \(\)"):
        dist.sum_scatter(mx.array(1.0))
    grads = {"a": mx.ones((4, 3)) * 3.0, "b": [mx.full((5,), -4.0)]}
    clipped, norm = nn.utils.clip_grad_norm_sharded(grads, max_norm=1.0)
    expected = np.sqrt(12 * 9.0 + 5 * 16.0)
    np.testing.assert_allclose(norm, expected, rtol=1e-6)
    np.testing.assert_allclose(clipped["b"][0], np.full(5, -4.0 / (expected + 1e-6)), rtol=1e-6)
    same, _ = nn.utils.clip_grad_norm_sharded(grads, max_norm=1e9)
    np.testing.assert_allclose(same["a"], grads["a"])
    mlx = pytest.importorskip("mlx.core")
    from mlx.nn.utils import clip_grad_norm_sharded as reference

    ref_clipped, ref_norm = reference(
        {"a": mlx.ones((4, 3)) * 3.0, "b": [mlx.full((5,), -4.0)]}, max_norm=1.0
    )
    np.testing.assert_allclose(norm, np.array(ref_norm), rtol=1e-6)
    np.testing.assert_allclose(clipped["a"], np.array(ref_clipped["a"]), rtol=1e-6)


def test_init_without_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    with pytest.raises(RuntimeError, match=r"pip install 'chainrule\[distributed\]'"):
        dist.init(strict=True)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # launched, but no mpi4py: warn, run alone
    with pytest.warns(RuntimeWarning, match="each process runs alone|Each process runs alone"):
        g = dist.init()
    assert g.size() == 1


def test_collectives_in_a_group_of_one_return_their_input():
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    for op in (dist.all_sum, dist.all_gather, dist.all_max, dist.all_min):
        assert op(x) is x
    tree = {"a": x, "b": [np.ones(2), 3, "s"]}
    assert dist.broadcast(tree) is tree
    dist.barrier()
    assert dist.average_gradients(tree) is tree
    assert mx.allclose(dist.all_sum([1.0, 2.0]), mx.array([1.0, 2.0]))
    p = mx.array([1.0], requires_grad=True)
    p.grad = mx.array([5.0])
    dist.average_parameter_grads([p])
    assert p.grad.item() == 5.0
    dist.broadcast_parameters(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="more than one process"):
        dist.send(x, 0)
    with pytest.raises(ValueError, match="more than one process"):
        dist.recv((2,), mx.float32, 0)
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\)"):
        dist.broadcast(x, root=1)
    with pytest.raises(ValueError, match="all_sum: expected an array"):
        dist.all_sum(object())


def test_all_sum_differentiates_in_a_group_of_one():
    def f(x):
        return (mx.sin(dist.all_sum(x)) * dist.all_gather(x)).sum()

    x = mx.array([0.3, -1.2, 2.0])
    mx.check_grads(f, (x,), order=2)


def test_abort_in_a_group_of_one_exits():
    with pytest.raises(SystemExit) as e:
        dist.abort(3)
    assert e.value.code == 3


def test_comm_stats_reset():
    dist.reset_comm_stats()
    assert dist.comm_stats() == {"seconds": 0.0, "calls": 0, "bytes": 0}


# ------------------------------------------------- a simulated group of two identical ranks


class MirrorComm:
    """Rank 0 of two processes whose peer always sends exactly what this one sends."""

    def __init__(self):
        self.log = []

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Allreduce(self, send, recv, op="sum"):
        buf = recv if send is FAKE_MPI.IN_PLACE else send
        self.log.append(("Allreduce", buf.dtype, buf.size))
        if op == "sum":
            out = buf * 2
        else:
            out = buf
        (recv if send is FAKE_MPI.IN_PLACE else recv)[...] = out

    def allgather(self, obj):
        self.log.append(("allgather",))
        return [obj, obj]

    def Allgather(self, send, recv):
        self.log.append(("Allgather", send.size))
        recv[...] = np.concatenate([send, send])

    def bcast(self, obj, root=0):
        self.log.append(("bcast",))
        return obj

    def Bcast(self, buf, root=0):
        self.log.append(("Bcast", buf.dtype, buf.size))

    def Barrier(self):
        self.log.append(("Barrier",))


FAKE_MPI = types.SimpleNamespace(IN_PLACE=object(), SUM="sum", MAX="max", MIN="min")


@pytest.fixture
def mirror(monkeypatch):
    for module in (ops, gradients):
        monkeypatch.setattr(module, "_mpi", lambda: FAKE_MPI)
    comm = MirrorComm()
    return dist.Group(comm), comm


def test_collectives_differentiate_with_mlx_rules(mirror):
    g, _ = mirror
    x = mx.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(dist.all_sum(x, group=g), [2.0, 4.0, 6.0])
    w = mx.array([0.5, -1.0, 2.0])
    # VJP: the cotangent passes through unchanged (MLX's AllReduce::vjp), at any order
    grad = mx.grad(lambda x: (dist.all_sum(x, group=g) * w).sum())(x)
    np.testing.assert_allclose(grad, np.asarray(w))
    grad2 = mx.grad(lambda x: (dist.all_sum(x, group=g) ** 2).sum())(x)
    np.testing.assert_allclose(grad2, 2 * 2 * np.asarray(x))
    hess = mx.grad(lambda x: mx.grad(lambda y: (dist.all_sum(y, group=g) ** 2).sum())(x).sum())(x)
    np.testing.assert_allclose(hess, [2.0, 2.0, 2.0])
    # all_max / all_min pass the cotangent through too
    for op in (dist.all_max, dist.all_min):
        np.testing.assert_allclose(
            mx.grad(lambda x, op=op: (op(x, group=g) * w).sum())(x), np.asarray(w)
        )
    # JVP: the all_sum of the tangent (MLX's AllReduce::jvp), also inside grad
    _, (jv,) = mx.jvp(lambda x: dist.all_sum(x, group=g), [x], [w])
    np.testing.assert_allclose(jv, 2 * np.asarray(w))
    _, (jv,) = mx.jvp(lambda x: dist.all_sum(x * x, group=g), [x], [w])
    np.testing.assert_allclose(jv, 2 * 2 * np.asarray(x) * np.asarray(w))
    # all_gather: VJP keeps this rank's rows, JVP gathers the tangents
    xs = mx.array([[1.0, 2.0]])
    np.testing.assert_allclose(dist.all_gather(xs, group=g), [[1.0, 2.0], [1.0, 2.0]])
    W = mx.array([[1.0, 2.0], [3.0, 4.0]])
    grad = mx.grad(lambda x: (dist.all_gather(x, group=g) * W).sum())(xs)
    np.testing.assert_allclose(grad, [[1.0, 2.0]])
    _, (jv,) = mx.jvp(lambda x: dist.all_gather(x, group=g), [xs], [mx.array([[5.0, 6.0]])])
    np.testing.assert_allclose(jv, [[5.0, 6.0], [5.0, 6.0]])


def test_average_gradients_one_allreduce_per_bucket(mirror):
    g, comm = mirror
    grads = {
        "layers": [{"w": mx.ones((10, 10)) * i, "b": mx.ones((10,))} for i in range(6)],
        "emb": mx.ones((4, 4), dtype=mx.float64),
        "steps": None,
    }
    out = dist.average_gradients(grads, group=g, all_reduce_size=3 * 110 * 4)
    reduces = [e for e in comm.log if e[0] == "Allreduce"]
    # 6 * 110 float32 values in buckets of >= 330 values: 2 buckets; float64 on its own
    assert [(dt, n) for _, dt, n in reduces] == [
        (np.float32, 330),
        (np.float32, 330),
        (np.float64, 16),
    ]
    for i, layer in enumerate(out["layers"]):
        np.testing.assert_array_equal(layer["w"], np.full((10, 10), float(i)))
        assert layer["w"].dtype == mx.float32 and layer["b"].shape == (10,)
    assert out["emb"].dtype == mx.float64 and out["steps"] is None
    comm.log.clear()
    dist.average_gradients(grads, group=g, all_reduce_size=0)  # one per array
    assert sum(e[0] == "Allreduce" for e in comm.log) == 13
    comm.log.clear()
    dist.average_gradients(grads, group=g, bucket_bytes=1 << 30)
    assert sum(e[0] == "Allreduce" for e in comm.log) == 2


def test_average_gradients_wire_types(mirror):
    g, comm = mirror
    grads = [mx.array([1.0, 3.0], dtype=mx.float16), mx.array([0.25, 0.5])]
    out = dist.average_gradients(grads, group=g)
    assert [o.dtype for o in out] == [mx.float16, mx.float32]
    assert [e[1] for e in comm.log] == [np.float32, np.float32]  # no half floats on the wire
    np.testing.assert_allclose(out[0], [1.0, 3.0])
    out = dist.average_gradients([mx.array([0.1, 0.5])], group=g, communication_type=mx.float16)
    assert out[0].dtype == mx.float32  # reduced in float16, returned in the leaf's dtype
    np.testing.assert_array_equal(out[0], np.array([0.1, 0.5], np.float16).astype(np.float32))


def test_bucket_reducer_weights_and_extra(mirror):
    g, comm = mirror
    reducer = gradients.BucketReducer(g, [((2,), np.float32), ((3,), np.float64)])
    a, b = np.array([1.0, 2.0], np.float32), None
    out, extra = reducer([a, b], scale=4, factor=lambda e: 1 / e[1], extra=np.array([5.0, 8.0]))
    assert len(comm.log) == 2  # the extra rides in the first floating bucket
    np.testing.assert_allclose(extra, [10.0, 16.0])
    np.testing.assert_allclose(out[0], a * 4 * 2 / 16)
    np.testing.assert_array_equal(out[1], np.zeros(3))
    assert out[0].dtype == np.float32 and out[1].dtype == np.float64
    assert not np.shares_memory(out[0], a)


def test_average_parameter_grads_and_broadcast_parameters(mirror):
    g, comm = mirror
    p, q = mx.array([1.0, 2.0], requires_grad=True), mx.array([1.0], requires_grad=True)
    p.grad = mx.array([4.0, 6.0])
    dist.average_parameter_grads([p, q, p], group=g)
    np.testing.assert_allclose(p.grad, [4.0, 6.0])
    assert q.grad is None
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm(2))
    before = {id(a): np.array(a) for a in model.parameters()}
    comm.log.clear()
    dist.broadcast_parameters(model, group=g)
    assert [e[0] for e in comm.log] == ["bcast", "Bcast"]  # one buffer for the float32s
    for a in model.parameters():
        np.testing.assert_array_equal(np.asarray(a), before[id(a)])


def test_broadcast_checks_tree_structure(mirror, monkeypatch):
    g, comm = mirror
    tree = {"a": mx.ones(2), "b": 3}
    assert dist.broadcast(tree, group=g) is tree  # the root keeps its tree
    monkeypatch.setattr(comm, "Get_rank", lambda: 1)
    g1 = dist.Group(comm)
    monkeypatch.setattr(comm, "bcast", lambda obj, root=0: (["a", "c"], []))
    with pytest.raises(ValueError, match="rank 1's tree differs from rank 0's"):
        dist.broadcast(tree, group=g1)


# ------------------------------------------------------------------------- the fit hooks


def test_chunks_split_global_batches_like_array_split():
    for n in range(0, 20):
        for size in (1, 2, 3, 5):
            parts = [_chunk(n, size, r) for r in range(size)]
            expected = np.array_split(np.arange(n), size)
            assert [hi - lo for lo, hi in parts] == [len(e) for e in expected]
            assert [lo for lo, _ in parts] == [
                int(e[0]) if len(e) else lo for (lo, _), e in zip(parts, expected)
            ]


def test_fit_with_a_group_of_one_is_plain_fit():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 2, size=30)

    def run(distributed):
        mx.random.seed(0)
        model = nn.Linear(4, 2)
        h = fit(
            model,
            optim.Adam(learning_rate=0.1),
            nn.losses.cross_entropy,
            (X, y),
            epochs=2,
            batch_size=8,
            progress=False,
            seed=1,
            distributed=distributed,
        )
        return np.array(model.weight), h.history

    w0, h0 = run(None)
    for distributed in (False, dist.Group()):
        w, h = run(distributed)
        np.testing.assert_array_equal(w, w0)
        assert h == h0
    with pytest.raises(TypeError, match="distributed must be None, True, False"):
        run("yes")


def test_rank_zero_only_callbacks(tmp_path):
    assert _rank_zero_only(ModelCheckpoint(tmp_path / "c.safetensors"))
    assert not _rank_zero_only(Callback())

    class Writer(Callback):
        rank_zero_only = True

    class Quiet(ModelCheckpoint):
        rank_zero_only = False

    assert _rank_zero_only(Writer())
    assert not _rank_zero_only(Quiet(tmp_path / "c.safetensors"))


def test_history_of_another_rank_writes_nothing(tmp_path):
    h = History({"loss": [1.0]}, [0])
    h._writes = False
    h.save(tmp_path / "h.json")
    assert h.plot(tmp_path / "h.png") == str(tmp_path / "h.png")
    assert list(tmp_path.iterdir()) == []


def test_mlx_spellings_reach_the_same_functions():
    import chainrule.core as mx
    import chainrule.distributed as dist
    import chainrule.nn as nn

    assert mx.distributed is dist
    assert nn.average_gradients is dist.average_gradients
    assert mx.distributed.init().size() == 1
